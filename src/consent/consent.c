/*
 * consent.c - every consent signal of one event -> one canonical state.
 *
 * Signals: the event's consent field (a string, a Consent Mode object, and
 * inside it "tcf", "gcs" and "usp"), the event's "gpc" field, the Sec-GPC
 * header, the euconsent-v2 and usprivacy cookies. Every signal present is
 * evaluated; a purpose is granted only when no signal denies it (the most
 * restrictive wins, whatever the order), and purposes no signal decided take
 * the site default. A TC string that is present but malformed or unusable
 * denies every purpose the site's TCF mapping covers: it never falls through
 * to a granting default. Likewise a garbled gcs value denies the two purposes
 * it covers, and a garbled US Privacy string counts as an opt-out. An empty
 * string is no string. The raw strings are never kept.
 */
#include "scrubgate/common.h"
#include "scrubgate/consent.h"
#include "scrubgate/tcf.h"

#include <string.h>

static const char *const purpose_names[SG_PURPOSE__COUNT] = {
    "ad_storage", "ad_user_data", "ad_personalization", "analytics_storage"};

const char *sg_purpose_name(enum sg_purpose p)
{
    return (unsigned)p < SG_PURPOSE__COUNT ? purpose_names[p] : "?";
}

int sg_purpose_from_name(const char *name)
{
    for (int i = 0; i < SG_PURPOSE__COUNT; i++)
        if (strcmp(purpose_names[i], name) == 0)
            return i;
    return -1;
}

const char *sg_consent_state_name(enum sg_consent_state s)
{
    return s == SG_CONSENT_GRANTED ? "granted" : s == SG_CONSENT_DENIED ? "denied" : "unset";
}

int sg_consent_state_from_name(const char *name)
{
    if (strcmp(name, "granted") == 0)
        return SG_CONSENT_GRANTED;
    if (strcmp(name, "denied") == 0)
        return SG_CONSENT_DENIED;
    return -1;
}

const char *sg_consent_source_name(enum sg_consent_source s)
{
    static const char *const names[] = {"none", "event", "gpc", "tcf", "gcs", "usp", "default"};
    return (unsigned)s < SG_ARRAY_SIZE(names) ? names[s] : "none";
}

const char *sg_consent_evidence_name(enum sg_consent_evidence e)
{
    static const char *const names[] = {
        [SG_CEV_NONE] = "none",
        [SG_CEV_EVENT_GRANTED] = "event:granted",
        [SG_CEV_EVENT_DENIED] = "event:denied",
        [SG_CEV_GPC] = "gpc",
        [SG_CEV_TCF_GRANTED] = "tcf:granted",
        [SG_CEV_TCF_NO_PURPOSE_CONSENT] = "tcf:purpose_consent=no",
        [SG_CEV_TCF_NO_VENDOR_CONSENT] = "tcf:vendor_consent=no",
        [SG_CEV_TCF_RESTRICTED] = "tcf:publisher_restriction",
        [SG_CEV_GCS_GRANTED] = "gcs:granted",
        [SG_CEV_GCS_DENIED] = "gcs:denied",
        [SG_CEV_USP_OPT_OUT] = "usp:opt_out",
        [SG_CEV_DEFAULT_GRANTED] = "default:granted",
        [SG_CEV_DEFAULT_DENIED] = "default:denied",
        [SG_CEV_TCF_INVALID] = "tcf:invalid",
        [SG_CEV_TCF_UNUSABLE] = "tcf:unusable",
        [SG_CEV_GCS_INVALID] = "gcs:invalid",
        [SG_CEV_USP_INVALID] = "usp:invalid",
    };
    _Static_assert(SG_ARRAY_SIZE(names) == SG_CEV_USP_INVALID + 1, "a name for every token");
    return (unsigned)e < SG_ARRAY_SIZE(names) ? names[e] : "none";
}

const char *sg_tcf_outcome_name(enum sg_tcf_outcome o)
{
    static const char *const names[] = {"absent", "applied", "malformed", "unusable",
                                        "no_vendor_configured"};
    return (unsigned)o < SG_ARRAY_SIZE(names) ? names[o] : "absent";
}

#define TCF_BIT(p) (1u << ((p) - 1))

void sg_consent_policy_default_tcf(struct sg_consent_policy *p)
{
    /* TCF purposes: 1 store/access on a device, 3 create a personalised ads profile,
     * 4 use it to select ads, 7 measure ad performance, 8 measure content performance. */
    p->tcf_purposes[SG_PURPOSE_AD_STORAGE] = TCF_BIT(1);
    p->tcf_purposes[SG_PURPOSE_AD_USER_DATA] = TCF_BIT(1) | TCF_BIT(7);
    p->tcf_purposes[SG_PURPOSE_AD_PERSONALIZATION] = TCF_BIT(3) | TCF_BIT(4);
    p->tcf_purposes[SG_PURPOSE_ANALYTICS_STORAGE] = TCF_BIT(1) | TCF_BIT(8);
}

/* Most restrictive wins: a denial from any signal overrides a grant. */
static void decide(struct sg_consent *c, int p, enum sg_consent_state s, enum sg_consent_source src,
                   enum sg_consent_evidence ev)
{
    if (c->state[p] == SG_CONSENT_DENIED)
        return;
    if (s == SG_CONSENT_DENIED || c->state[p] == SG_CONSENT_UNSET) {
        c->state[p] = (unsigned char)s;
        c->source[p] = (unsigned char)src;
        c->evidence[p] = (unsigned char)ev;
    }
}

static void deny_ads(struct sg_consent *c, enum sg_consent_source src, enum sg_consent_evidence ev)
{
    decide(c, SG_PURPOSE_AD_STORAGE, SG_CONSENT_DENIED, src, ev);
    decide(c, SG_PURPOSE_AD_USER_DATA, SG_CONSENT_DENIED, src, ev);
    decide(c, SG_PURPOSE_AD_PERSONALIZATION, SG_CONSENT_DENIED, src, ev);
}

/* Deny every purpose the site's TCF mapping covers: a TC string that cannot decide. */
static void deny_tcf_mapped(struct sg_consent *c, const struct sg_consent_policy *pol,
                            enum sg_consent_evidence ev)
{
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        if (pol->tcf_purposes[p])
            decide(c, p, SG_CONSENT_DENIED, SG_CSRC_TCF, ev);
}

/* Of two TC strings' outcomes, the one to report: the one that could not decide. */
static int outcome_rank(unsigned o)
{
    static const int rank[] = {[SG_TCF_ABSENT] = 0, [SG_TCF_APPLIED] = 1, [SG_TCF_NO_VENDOR] = 2,
                               [SG_TCF_UNUSABLE] = 3, [SG_TCF_MALFORMED] = 4};
    return o < SG_ARRAY_SIZE(rank) ? rank[o] : 0;
}

static void set_outcome(struct sg_consent *c, enum sg_tcf_outcome o)
{
    if (outcome_rank(o) > outcome_rank(c->tcf))
        c->tcf = (unsigned char)o;
}

static void apply_tcf(struct sg_consent *c, const struct sg_consent_policy *pol, const char *s,
                      size_t len)
{
    struct sg_tcf tc;
    const char *why;
    if (pol->tcf_vendor_id <= 0) {
        /* No vendor to read the string for: it cannot decide, so it denies. */
        set_outcome(c, SG_TCF_NO_VENDOR);
        deny_tcf_mapped(c, pol, SG_CEV_TCF_UNUSABLE);
        return;
    }
    if (sg_tcf_decode(s, len, (unsigned)pol->tcf_vendor_id, &tc, &why) < 0) {
        set_outcome(c, SG_TCF_MALFORMED);
        deny_tcf_mapped(c, pol, SG_CEV_TCF_INVALID);
        return;
    }
    if (sg_tcf_unusable(&tc)) {
        set_outcome(c, SG_TCF_UNUSABLE);
        deny_tcf_mapped(c, pol, SG_CEV_TCF_UNUSABLE);
        return;
    }
    set_outcome(c, SG_TCF_APPLIED);
    uint32_t blocked = tc.restricted[SG_TCF_NOT_ALLOWED] | tc.restricted[SG_TCF_REQUIRE_LI];
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        uint32_t need = pol->tcf_purposes[p];
        if (!need)
            continue;
        if (need & blocked)
            decide(c, p, SG_CONSENT_DENIED, SG_CSRC_TCF, SG_CEV_TCF_RESTRICTED);
        else if (!tc.vendor_consent)
            decide(c, p, SG_CONSENT_DENIED, SG_CSRC_TCF, SG_CEV_TCF_NO_VENDOR_CONSENT);
        else if ((tc.purpose_consent & need) != need)
            decide(c, p, SG_CONSENT_DENIED, SG_CSRC_TCF, SG_CEV_TCF_NO_PURPOSE_CONSENT);
        else
            decide(c, p, SG_CONSENT_GRANTED, SG_CSRC_TCF, SG_CEV_TCF_GRANTED);
    }
}

/*
 * Google Consent Mode "gcs": G1 + ad_storage + analytics_storage, each 1, 0 or
 * -. A malformed value cannot say what was chosen: it denies both purposes.
 */
static void apply_gcs(struct sg_consent *c, const char *s, size_t len)
{
    static const int purposes[2] = {SG_PURPOSE_AD_STORAGE, SG_PURPOSE_ANALYTICS_STORAGE};
    if (len != 4 || s[0] != 'G' || s[1] != '1' || !memchr("01-", s[2], 3) ||
        !memchr("01-", s[3], 3)) {
        for (int i = 0; i < 2; i++)
            decide(c, purposes[i], SG_CONSENT_DENIED, SG_CSRC_GCS, SG_CEV_GCS_INVALID);
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (s[2 + i] == '1')
            decide(c, purposes[i], SG_CONSENT_GRANTED, SG_CSRC_GCS, SG_CEV_GCS_GRANTED);
        else if (s[2 + i] == '0')
            decide(c, purposes[i], SG_CONSENT_DENIED, SG_CSRC_GCS, SG_CEV_GCS_DENIED);
    }
}

/*
 * IAB US Privacy string: version 1, notice, opt-out of sale, LSPA; each Y, N
 * or -. A US Privacy string can only opt out; a malformed one may hide an
 * opt-out, so it is read as one.
 */
static void apply_usp(struct sg_consent *c, const char *s, size_t len)
{
    if (len != 4 || s[0] != '1' || !memchr("YN-", s[1], 3) || !memchr("YN-", s[2], 3) ||
        !memchr("YN-", s[3], 3)) {
        c->sale_opt_out = true;
        deny_ads(c, SG_CSRC_USP, SG_CEV_USP_INVALID);
        return;
    }
    if (s[2] == 'Y') {
        c->sale_opt_out = true;
        deny_ads(c, SG_CSRC_USP, SG_CEV_USP_OPT_OUT);
    }
}

static const char *const bad_form = "consent: must be \"granted\", \"denied\" or an object";

static int apply_event(struct sg_consent *c, json_t *v, json_t **tcf, const char **reason)
{
    if (json_is_string(v)) {
        int s = sg_consent_state_from_name(json_string_value(v));
        if (s < 0)
            return *reason = bad_form, -1;
        for (int p = 0; p < SG_PURPOSE__COUNT; p++)
            decide(c, p, (enum sg_consent_state)s, SG_CSRC_EVENT,
                   s == SG_CONSENT_GRANTED ? SG_CEV_EVENT_GRANTED : SG_CEV_EVENT_DENIED);
        return 0;
    }
    if (!json_is_object(v))
        return *reason = bad_form, -1;
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        bool str = json_is_string(val);
        if (!strcmp(key, "tcf") || !strcmp(key, "gcs") || !strcmp(key, "usp")) {
            if (!str)
                return *reason = "consent: tcf, gcs and usp must be strings", -1;
            if (json_string_length(val) == 0)
                continue; /* an empty string is no string: nothing to read */
            /* With their JSON length: a string with a NUL inside is malformed, not cut. */
            if (!strcmp(key, "tcf"))
                *tcf = val; /* applied with the cookie's, after the rest */
            else if (!strcmp(key, "gcs"))
                apply_gcs(c, json_string_value(val), json_string_length(val));
            else
                apply_usp(c, json_string_value(val), json_string_length(val));
            continue;
        }
        int p = sg_purpose_from_name(key);
        if (p < 0)
            return *reason = "consent: unknown purpose (ad_storage, ad_user_data, "
                             "ad_personalization, analytics_storage, tcf, gcs, usp)",
                   -1;
        int s = str ? sg_consent_state_from_name(json_string_value(val)) : -1;
        if (s < 0)
            return *reason = "consent: purpose values must be \"granted\" or \"denied\"", -1;
        decide(c, p, (enum sg_consent_state)s, SG_CSRC_EVENT,
               s == SG_CONSENT_GRANTED ? SG_CEV_EVENT_GRANTED : SG_CEV_EVENT_DENIED);
    }
    return 0;
}

int sg_consent_resolve(const struct sg_consent_policy *policy,
                       const struct sg_consent_signals *signals, struct sg_consent *out,
                       const char **reason)
{
    json_t *tcf = NULL;
    json_t *g = signals->event_gpc;
    memset(out, 0, sizeof(*out));
    if (g && !json_is_null(g) && !json_is_boolean(g))
        return *reason = "gpc: must be true or false", -1;
    /* The strongest opt-outs first, so that their evidence is the one recorded. */
    if ((signals->gpc_header || json_is_true(g)) && policy->honor_gpc) {
        out->gpc = true;
        out->sale_opt_out = true;
        deny_ads(out, SG_CSRC_GPC, SG_CEV_GPC);
    }
    /* Cookies: an empty value is no string, as in the event. */
    if (signals->usp_cookie && *signals->usp_cookie)
        apply_usp(out, signals->usp_cookie, strlen(signals->usp_cookie));
    if (signals->event_consent && !json_is_null(signals->event_consent) &&
        apply_event(out, signals->event_consent, &tcf, reason) < 0)
        return -1;
    /* Both TC strings, when both are there: a malformed one in the event must not hide a
     * refusal in the cookie, nor the other way round. */
    if (tcf)
        apply_tcf(out, policy, json_string_value(tcf), json_string_length(tcf));
    if (signals->tcf_cookie && *signals->tcf_cookie)
        apply_tcf(out, policy, signals->tcf_cookie, strlen(signals->tcf_cookie));
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        if (out->state[p] == SG_CONSENT_UNSET) {
            bool granted = policy->default_state == SG_CONSENT_GRANTED;
            out->state[p] = (unsigned char)(granted ? SG_CONSENT_GRANTED : SG_CONSENT_DENIED);
            out->source[p] = SG_CSRC_DEFAULT;
            out->evidence[p] =
                (unsigned char)(granted ? SG_CEV_DEFAULT_GRANTED : SG_CEV_DEFAULT_DENIED);
        }
    return 0;
}

json_t *sg_consent_evidence_json(const struct sg_consent *c)
{
    json_t *o = json_object();
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        json_object_set_new(o, purpose_names[p],
                            json_string(sg_consent_evidence_name(
                                (enum sg_consent_evidence)c->evidence[p])));
    json_object_set_new(o, "tcf", json_string(sg_tcf_outcome_name((enum sg_tcf_outcome)c->tcf)));
    return o;
}
