/*
 * consent.c - every consent signal of one event -> one canonical state.
 *
 * Signals: the event's consent field (a string, a Consent Mode object, and
 * inside it "tcf", "gcs" and "usp"), the Sec-GPC header, the euconsent-v2
 * and usprivacy cookies. Each decides some purposes; when two disagree the
 * denial wins; purposes nothing decided take the site default. Untrusted
 * strings (TC, gcs, US Privacy) that are malformed decide nothing, so any
 * doubt ends at the site default. The raw strings are never kept.
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
        "none",          "event:granted",          "event:denied",
        "gpc",           "tcf:granted",            "tcf:purpose_consent=no",
        "tcf:vendor_consent=no", "tcf:publisher_restriction", "gcs:granted",
        "gcs:denied",    "usp:opt_out",            "default:granted",
        "default:denied"};
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

static void apply_tcf(struct sg_consent *c, const struct sg_consent_policy *pol, const char *s)
{
    struct sg_tcf tc;
    const char *why;
    if (pol->tcf_vendor_id <= 0) {
        c->tcf = SG_TCF_NO_VENDOR;
        return;
    }
    if (sg_tcf_decode(s, strlen(s), (unsigned)pol->tcf_vendor_id, &tc, &why) < 0) {
        c->tcf = SG_TCF_MALFORMED;
        return;
    }
    if (sg_tcf_unusable(&tc)) {
        c->tcf = SG_TCF_UNUSABLE;
        return;
    }
    c->tcf = SG_TCF_APPLIED;
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

/* Google Consent Mode "gcs": G1 + ad_storage + analytics_storage, each 1, 0 or -. */
static void apply_gcs(struct sg_consent *c, const char *s)
{
    static const int purposes[2] = {SG_PURPOSE_AD_STORAGE, SG_PURPOSE_ANALYTICS_STORAGE};
    if (strlen(s) != 4 || s[0] != 'G' || s[1] != '1' || !strchr("01-", s[2]) ||
        !strchr("01-", s[3]))
        return; /* malformed: decides nothing */
    for (int i = 0; i < 2; i++) {
        if (s[2 + i] == '1')
            decide(c, purposes[i], SG_CONSENT_GRANTED, SG_CSRC_GCS, SG_CEV_GCS_GRANTED);
        else if (s[2 + i] == '0')
            decide(c, purposes[i], SG_CONSENT_DENIED, SG_CSRC_GCS, SG_CEV_GCS_DENIED);
    }
}

/* IAB US Privacy string: version 1, notice, opt-out of sale, LSPA; each Y, N or -. */
static void apply_usp(struct sg_consent *c, const char *s)
{
    if (strlen(s) != 4 || s[0] != '1' || !strchr("YN-", s[1]) || !strchr("YN-", s[2]) ||
        !strchr("YN-", s[3]))
        return;
    if (s[2] == 'Y') {
        c->sale_opt_out = true;
        deny_ads(c, SG_CSRC_USP, SG_CEV_USP_OPT_OUT);
    }
}

static const char *const bad_form = "consent: must be \"granted\", \"denied\" or an object";

static int apply_event(struct sg_consent *c, json_t *v, const char **tcf, const char **reason)
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
            if (!strcmp(key, "tcf"))
                *tcf = json_string_value(val); /* the event's TC string beats the cookie */
            else if (!strcmp(key, "gcs"))
                apply_gcs(c, json_string_value(val));
            else
                apply_usp(c, json_string_value(val));
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
    const char *tcf = NULL;
    memset(out, 0, sizeof(*out));
    /* The strongest opt-outs first, so that their evidence is the one recorded. */
    if (signals->gpc_header && policy->honor_gpc) {
        out->gpc = true;
        out->sale_opt_out = true;
        deny_ads(out, SG_CSRC_GPC, SG_CEV_GPC);
    }
    if (signals->usp_cookie)
        apply_usp(out, signals->usp_cookie);
    if (signals->event_consent && !json_is_null(signals->event_consent) &&
        apply_event(out, signals->event_consent, &tcf, reason) < 0)
        return -1;
    if (!tcf)
        tcf = signals->tcf_cookie;
    if (tcf)
        apply_tcf(out, policy, tcf);
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
