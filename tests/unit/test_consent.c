/*
 * Consent resolution: every signal (event string and object, GPC from the
 * header and the event, TCF from the event and the cookie, gcs, US
 * Privacy), the site default, the most restrictive rule, TC strings that
 * cannot decide (they deny what they map), and the evidence recorded for
 * each purpose.
 */
#include "testutil.h"

#include "scrubgate/consent.h"
#include "tcf_encode.h"

#include <stdlib.h>
#include <string.h>

#define P(n) (1u << ((n) - 1))
#define VENDOR 1234

static struct sg_consent_policy policy(enum sg_consent_state def, bool gpc)
{
    struct sg_consent_policy p;
    memset(&p, 0, sizeof(p));
    p.default_state = def;
    p.honor_gpc = gpc;
    p.tcf_vendor_id = VENDOR;
    sg_consent_policy_default_tcf(&p);
    return p;
}

struct sigs {
    const char *event_json;
    bool gpc;
    const char *tcf_cookie;
    const char *usp_cookie;
    const char *event_gpc_json; /* the event's "gpc" value, or NULL */
};

static struct sg_consent resolve_ex(const struct sg_consent_policy *pol, struct sigs s, int want_rc)
{
    struct sg_consent c;
    const char *reason = NULL;
    json_t *ev = s.event_json ? json_loads(s.event_json, JSON_DECODE_ANY, NULL) : NULL;
    json_t *gpc = s.event_gpc_json ? json_loads(s.event_gpc_json, JSON_DECODE_ANY, NULL) : NULL;
    struct sg_consent_signals sig = {ev, s.gpc, gpc, s.tcf_cookie, s.usp_cookie};
    assert_int_equal(sg_consent_resolve(pol, &sig, &c, &reason), want_rc);
    if (want_rc < 0)
        assert_non_null(reason);
    json_decref(ev);
    json_decref(gpc);
    return c;
}

static struct sg_consent resolve(const char *event_json, bool gpc)
{
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    return resolve_ex(&pol, (struct sigs){event_json, gpc, NULL, NULL, NULL}, 0);
}

#define EVIDENCE(c, p) sg_consent_evidence_name((enum sg_consent_evidence)(c).evidence[p])

static void nothing_sent_fails_closed(void **state)
{
    (void)state;
    struct sg_consent c = resolve(NULL, false);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        assert_int_equal(c.state[p], SG_CONSENT_DENIED);
        assert_int_equal(c.source[p], SG_CSRC_DEFAULT);
        assert_string_equal(EVIDENCE(c, p), "default:denied");
    }
    assert_false(c.gpc);
    assert_int_equal(c.tcf, SG_TCF_ABSENT);
}

static void granted_string_grants_all(void **state)
{
    (void)state;
    struct sg_consent c = resolve("\"granted\"", false);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        assert_int_equal(c.state[p], SG_CONSENT_GRANTED);
        assert_string_equal(EVIDENCE(c, p), "event:granted");
    }
}

static void consent_mode_object_sets_each_purpose(void **state)
{
    (void)state;
    struct sg_consent c = resolve("{\"ad_storage\":\"granted\",\"ad_user_data\":\"denied\"}", false);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_int_equal(c.state[SG_PURPOSE_AD_PERSONALIZATION], SG_CONSENT_DENIED);
    assert_int_equal(c.source[SG_PURPOSE_AD_PERSONALIZATION], SG_CSRC_DEFAULT);
}

static void gpc_overrides_a_grant(void **state)
{
    (void)state;
    struct sg_consent c = resolve("\"granted\"", true);
    assert_true(c.gpc);
    assert_true(c.sale_opt_out);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "gpc");
    assert_int_equal(c.state[SG_PURPOSE_AD_PERSONALIZATION], SG_CONSENT_DENIED);
    assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_GRANTED);
}

static void gpc_ignored_when_not_honoured(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, false);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){"\"granted\"", true, NULL, NULL, NULL}, 0);
    assert_false(c.gpc);
    assert_false(c.sale_opt_out);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
}

static void granted_default_applies_to_unset_only(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_GRANTED, true);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){"{\"ad_user_data\":\"denied\"}", false, NULL, NULL, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "default:granted");
}

static char *tc(uint32_t purposes, bool vendor, unsigned policy_version)
{
    static const unsigned v[] = {VENDOR};
    struct tcf_spec spec = {2, policy_version, true, purposes, 0, VENDOR, v, vendor ? 1u : 0u,
                            false, NULL, 0, {{0}}, 0};
    return tcf_encode(&spec);
}

static void tcf_maps_purposes(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    char *s = tc(P(1) | P(7), true, 4);
    char ev[4096];
    snprintf(ev, sizeof(ev), "{\"tcf\":\"%s\"}", s);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){ev, false, NULL, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_APPLIED);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);     /* 1 */
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_GRANTED);   /* 1 and 7 */
    assert_int_equal(c.state[SG_PURPOSE_AD_PERSONALIZATION], SG_CONSENT_DENIED); /* 3, 4 missing */
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_PERSONALIZATION), "tcf:purpose_consent=no");
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "tcf:granted");
    free(s);
    /* The same purposes without the vendor: denied, and the receipt says why. */
    s = tc(P(1) | P(7), false, 4);
    c = resolve_ex(&pol, (struct sigs){NULL, false, s, NULL, NULL}, 0); /* from the cookie */
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "tcf:vendor_consent=no");
    free(s);
}

static void tcf_restriction_denies(void **state)
{
    (void)state;
    static const unsigned v[] = {VENDOR};
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    struct tcf_spec spec = {2, 4, true, P(1) | P(7), 0, VENDOR, v, 1, false, NULL, 0,
                            {{7, 0, VENDOR, VENDOR}}, 1};
    char *s = tcf_encode(&spec);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){NULL, false, s, NULL, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "tcf:publisher_restriction");
    free(s);
}

#define ALL_DENIED(c, ev)                                                                          \
    do {                                                                                           \
        for (int p_ = 0; p_ < SG_PURPOSE__COUNT; p_++) {                                           \
            assert_int_equal((c).state[p_], SG_CONSENT_DENIED);                                    \
            assert_string_equal(EVIDENCE(c, p_), ev);                                              \
        }                                                                                          \
    } while (0)

/* A TC string that is present but cannot decide denies every mapped purpose: it never falls
 * through to the site default, even a granting one, nor is it overridden by a grant. */
static void tcf_that_cannot_decide_denies(void **state)
{
    (void)state;
    struct sg_consent_policy granted = policy(SG_CONSENT_GRANTED, true);
    char *old = tc(P(1) | P(7), true, 2); /* policy version 2: before TCF 2.2 */
    struct sg_consent c = resolve_ex(&granted, (struct sigs){NULL, false, old, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_UNUSABLE);
    ALL_DENIED(c, "tcf:unusable");
    assert_int_equal(c.source[SG_PURPOSE_AD_STORAGE], SG_CSRC_TCF);
    free(old);
    static const unsigned v[] = {VENDOR};
    struct tcf_spec global = {2, 5, false, P(1) | P(7), 0, VENDOR, v, 1, false, NULL, 0, {{0}}, 0};
    char *s = tcf_encode(&global); /* not service-specific */
    c = resolve_ex(&granted, (struct sigs){"\"granted\"", false, s, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_UNUSABLE);
    ALL_DENIED(c, "tcf:unusable");
    free(s);
    /* Malformed: garbage, a truncated string, invalid UTF-8, something enormous. */
    static const char *const bad[] = {"CPgarbage!!", "CQlH_MAQlH_MAAKABAENCbFgAAAAAAAAAAYgAAAAIAAA",
                                      "\xff\xfe\xfd", "."};
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++) {
        c = resolve_ex(&granted, (struct sigs){"\"granted\"", false, bad[i], NULL, NULL}, 0);
        assert_int_equal(c.tcf, SG_TCF_MALFORMED);
        ALL_DENIED(c, "tcf:invalid");
    }
    char *huge = malloc(1u << 20);
    memset(huge, 'A', (1u << 20) - 1);
    huge[(1u << 20) - 1] = '\0';
    c = resolve_ex(&granted, (struct sigs){NULL, false, huge, NULL, NULL}, 0);
    ALL_DENIED(c, "tcf:invalid");
    free(huge);
    /* An empty string is no string (a CMP with nothing to say, gdprApplies false). */
    c = resolve_ex(&granted, (struct sigs){"{\"tcf\":\"\",\"gcs\":\"\",\"usp\":\"\"}", false, "",
                                          "", NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_ABSENT);
    assert_false(c.sale_opt_out);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        assert_string_equal(EVIDENCE(c, p), "default:granted");
    /* No vendor configured: the string cannot be read for anyone, so it denies too. */
    struct sg_consent_policy novendor = granted;
    novendor.tcf_vendor_id = 0;
    s = tc(P(1) | P(7), true, 4);
    c = resolve_ex(&novendor, (struct sigs){"\"granted\"", false, s, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_NO_VENDOR);
    ALL_DENIED(c, "tcf:unusable");
    /* Only the purposes the mapping covers: [] keeps TCF out of a purpose altogether. */
    novendor.tcf_purposes[SG_PURPOSE_ANALYTICS_STORAGE] = 0;
    c = resolve_ex(&novendor, (struct sigs){NULL, false, "CPgarbage!!", NULL, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_GRANTED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_ANALYTICS_STORAGE), "default:granted");
    free(s);
}

/* Both TC strings are read: a malformed one in the event does not hide the cookie's refusal,
 * and a grant in one does not undo a refusal in the other. */
static void event_and_cookie_tc_strings_both_count(void **state)
{
    (void)state;
    struct sg_consent_policy granted = policy(SG_CONSENT_GRANTED, true);
    char ev[4096];
    char *yes = tc(P(1) | P(3) | P(4) | P(7) | P(8), true, 4);
    char *no = tc(P(1) | P(3) | P(4) | P(7) | P(8), false, 4);
    snprintf(ev, sizeof(ev), "{\"tcf\":\"%s\"}", "CPgarbage!!");
    struct sg_consent c = resolve_ex(&granted, (struct sigs){ev, false, yes, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_MALFORMED);
    ALL_DENIED(c, "tcf:invalid");
    snprintf(ev, sizeof(ev), "{\"tcf\":\"%s\"}", yes);
    c = resolve_ex(&granted, (struct sigs){ev, false, no, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_APPLIED);
    ALL_DENIED(c, "tcf:vendor_consent=no");
    snprintf(ev, sizeof(ev), "{\"tcf\":\"%s\"}", no);
    c = resolve_ex(&granted, (struct sigs){ev, false, yes, NULL, NULL}, 0);
    ALL_DENIED(c, "tcf:vendor_consent=no");
    c = resolve_ex(&granted, (struct sigs){"\"granted\"", false, "CPgarbage!!", NULL, NULL}, 0);
    ALL_DENIED(c, "tcf:invalid");
    /* Both grant: granted, with the event's string as the evidence. */
    snprintf(ev, sizeof(ev), "{\"tcf\":\"%s\"}", yes);
    c = resolve_ex(&granted, (struct sigs){ev, false, yes, NULL, NULL}, 0);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        assert_int_equal(c.state[p], SG_CONSENT_GRANTED);
        assert_string_equal(EVIDENCE(c, p), "tcf:granted");
    }
    /* The worse outcome is reported: malformed over unusable over applied. */
    char *old = tc(P(1), true, 2);
    snprintf(ev, sizeof(ev), "{\"tcf\":\"%s\"}", old);
    c = resolve_ex(&granted, (struct sigs){ev, false, yes, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_UNUSABLE);
    c = resolve_ex(&granted, (struct sigs){ev, false, "!", NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_MALFORMED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "tcf:unusable"); /* the first */
    free(old);
    free(yes);
    free(no);
}

/* The reject-all string of issue 9 (6-bit aligned) refuses, whatever the event says. */
static void a_refusal_in_the_cookie_beats_an_event_grant(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_GRANTED, true);
    struct sg_consent c = resolve_ex(
        &pol,
        (struct sigs){"\"granted\"", false, "CQlH_MAQlH_MAAKABAENCbFgAAAAAAAAAAYgAAAAIAAAA", NULL,
                      NULL},
        0);
    assert_int_equal(c.tcf, SG_TCF_APPLIED);
    ALL_DENIED(c, "tcf:vendor_consent=no");
    c = resolve_ex(&pol,
                   (struct sigs){"{\"ad_storage\":\"granted\",\"gcs\":\"G111\"}", false,
                                 "CQlH_MAQlH_MAAKABAENCbFgAAAAAAAAAAYgAAAAIAAAA", NULL, NULL},
                   0);
    ALL_DENIED(c, "tcf:vendor_consent=no");
}

/* TCF purpose 1 alone (storage): ad_storage only; ad_user_data needs purpose 7 too. */
static void storage_consent_alone_is_not_ad_user_data(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_GRANTED, true);
    char *s = tc(P(1), true, 4);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){NULL, false, s, NULL, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "tcf:purpose_consent=no");
    free(s);
}

/* The event's "gpc": true counts as Sec-GPC; false grants nothing; anything else is refused. */
static void event_gpc_field(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){"\"granted\"", false, NULL, NULL, "true"}, 0);
    assert_true(c.gpc);
    assert_true(c.sale_opt_out);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "gpc");
    assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_GRANTED);
    c = resolve_ex(&pol, (struct sigs){"\"granted\"", true, NULL, NULL, "false"}, 0);
    assert_true(c.gpc); /* the header still counts: false cannot un-restrict */
    c = resolve_ex(&pol, (struct sigs){NULL, false, NULL, NULL, "false"}, 0);
    assert_false(c.gpc);
    ALL_DENIED(c, "default:denied");
    c = resolve_ex(&pol, (struct sigs){"\"granted\"", false, NULL, NULL, "null"}, 0);
    assert_false(c.gpc);
    static const char *const bad[] = {"\"yes\"", "1", "{}", "\"true\""};
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++)
        resolve_ex(&pol, (struct sigs){"\"granted\"", false, NULL, NULL, bad[i]}, -1);
    struct sg_consent_policy ignore = policy(SG_CONSENT_DENIED, false);
    c = resolve_ex(&ignore, (struct sigs){"\"granted\"", false, NULL, NULL, "true"}, 0);
    assert_false(c.gpc);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
}

/* A string with a NUL inside (jansson can hold one) is read whole: malformed, never cut. */
static void strings_with_a_nul_are_malformed(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_GRANTED, true);
    char *s = tc(P(1) | P(3) | P(4) | P(7) | P(8), true, 4);
    char buf[512];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", s);
    buf[n] = '\0';
    memcpy(buf + n + 1, "AAAA", 5);
    json_t *ev = json_pack("{s:s%}", "tcf", buf, n + 5);
    struct sg_consent_signals sig = {ev, false, NULL, NULL, NULL};
    struct sg_consent c;
    const char *reason = NULL;
    assert_int_equal(sg_consent_resolve(&pol, &sig, &c, &reason), 0);
    assert_int_equal(c.tcf, SG_TCF_MALFORMED);
    ALL_DENIED(c, "tcf:invalid");
    json_decref(ev);
    ev = json_pack("{s:s%}", "gcs", "G111\0x", (size_t)6);
    sig.event_consent = ev;
    assert_int_equal(sg_consent_resolve(&pol, &sig, &c, &reason), 0);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "gcs:invalid");
    json_decref(ev);
    free(s);
}

/* Whatever the order the signals come in, one denial is enough, and its evidence is kept. */
static void most_restrictive_whatever_the_order(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_GRANTED, true);
    static const char *const events[] = {
        "{\"gcs\":\"G111\",\"ad_storage\":\"denied\",\"ad_user_data\":\"granted\"}",
        "{\"ad_storage\":\"denied\",\"ad_user_data\":\"granted\",\"gcs\":\"G111\"}",
        "{\"ad_user_data\":\"granted\",\"gcs\":\"G111\",\"ad_storage\":\"denied\"}"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(events); i++) {
        struct sg_consent c = resolve_ex(&pol, (struct sigs){events[i], false, NULL, NULL, NULL}, 0);
        assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
        assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "event:denied");
        assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_GRANTED);
        assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_GRANTED);
    }
    /* gcs denies what the event object grants, in either order. */
    struct sg_consent c = resolve_ex(
        &pol, (struct sigs){"{\"analytics_storage\":\"granted\",\"gcs\":\"G100\"}", false, NULL, NULL, NULL}, 0);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_ANALYTICS_STORAGE), "gcs:denied");
    c = resolve_ex(
        &pol, (struct sigs){"{\"gcs\":\"G100\",\"analytics_storage\":\"granted\"}", false, NULL, NULL, NULL}, 0);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_ANALYTICS_STORAGE), "gcs:denied");
}

static void conflicts_resolve_to_the_denial(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    char *s = tc(P(1) | P(7), false, 4); /* TCF: no vendor consent */
    char ev[4096];
    snprintf(ev, sizeof(ev), "{\"ad_storage\":\"granted\",\"ad_user_data\":\"granted\",\"tcf\":\"%s\"}", s);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){ev, false, NULL, NULL, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "tcf:vendor_consent=no");
    free(s);
    /* And the other way round: a TCF grant does not undo the event's denial. */
    s = tc(P(1) | P(7), true, 4);
    snprintf(ev, sizeof(ev), "{\"ad_storage\":\"denied\",\"tcf\":\"%s\"}", s);
    c = resolve_ex(&pol, (struct sigs){ev, false, NULL, NULL, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "event:denied");
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_GRANTED);
    free(s);
}

static void gcs_values(void **state)
{
    (void)state;
    struct sg_consent c = resolve("{\"gcs\":\"G110\"}", false);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "gcs:granted");
    assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_ANALYTICS_STORAGE), "gcs:denied");
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "default:denied");
    c = resolve("{\"gcs\":\"G1-1\"}", false);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "default:denied");
    assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_GRANTED);
    /* Malformed: it cannot say what was chosen, so it denies both of its purposes, even on a
     * site whose default grants. */
    struct sg_consent_policy granted = policy(SG_CONSENT_GRANTED, true);
    static const char *const bad[] = {"{\"gcs\":\"G2xx\"}", "{\"gcs\":\"G11\"}",
                                      "{\"gcs\":\"G1101\"}", "{\"gcs\":\"g110\"}"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++) {
        c = resolve_ex(&granted, (struct sigs){bad[i], false, NULL, NULL, NULL}, 0);
        assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "gcs:invalid");
        assert_string_equal(EVIDENCE(c, SG_PURPOSE_ANALYTICS_STORAGE), "gcs:invalid");
        assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_GRANTED);
    }
}

static void us_privacy(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){"\"granted\"", false, NULL, "1YYN", NULL}, 0);
    assert_true(c.sale_opt_out);
    assert_false(c.gpc);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "usp:opt_out");
    c = resolve_ex(&pol, (struct sigs){"\"granted\"", false, NULL, "1YNN", NULL}, 0);
    assert_false(c.sale_opt_out);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_GRANTED);
    c = resolve("{\"usp\":\"1-Y-\"}", false);
    assert_true(c.sale_opt_out);
    c = resolve("{\"usp\":\"1NNN\"}", false);
    assert_false(c.sale_opt_out);
    /* Malformed: a US Privacy string can only opt out, and this one may hide an opt-out. */
    struct sg_consent_policy granted = policy(SG_CONSENT_GRANTED, true);
    c = resolve_ex(&granted, (struct sigs){"{\"usp\":\"YYYY\"}", false, NULL, NULL, NULL}, 0);
    assert_true(c.sale_opt_out);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "usp:invalid");
    assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_GRANTED);
    c = resolve_ex(&granted, (struct sigs){"\"granted\"", false, NULL, "\xff", NULL}, 0);
    assert_true(c.sale_opt_out);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "usp:invalid");
}

static void malformed_consent_is_an_error(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    const char *bad[] = {"\"yes\"", "42", "{\"ad_storage\":true}", "{\"marketing\":\"granted\"}",
                         "{\"tcf\":7}", "{\"gcs\":1}"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++)
        resolve_ex(&pol, (struct sigs){bad[i], false, NULL, NULL, NULL}, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nothing_sent_fails_closed),
        cmocka_unit_test(granted_string_grants_all),
        cmocka_unit_test(consent_mode_object_sets_each_purpose),
        cmocka_unit_test(gpc_overrides_a_grant),
        cmocka_unit_test(gpc_ignored_when_not_honoured),
        cmocka_unit_test(granted_default_applies_to_unset_only),
        cmocka_unit_test(tcf_maps_purposes),
        cmocka_unit_test(tcf_restriction_denies),
        cmocka_unit_test(tcf_that_cannot_decide_denies),
        cmocka_unit_test(event_and_cookie_tc_strings_both_count),
        cmocka_unit_test(a_refusal_in_the_cookie_beats_an_event_grant),
        cmocka_unit_test(storage_consent_alone_is_not_ad_user_data),
        cmocka_unit_test(event_gpc_field),
        cmocka_unit_test(strings_with_a_nul_are_malformed),
        cmocka_unit_test(most_restrictive_whatever_the_order),
        cmocka_unit_test(conflicts_resolve_to_the_denial),
        cmocka_unit_test(gcs_values),
        cmocka_unit_test(us_privacy),
        cmocka_unit_test(malformed_consent_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
