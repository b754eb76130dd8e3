/*
 * Consent resolution: every signal (event string and object, GPC, TCF from
 * the event and the cookie, gcs, US Privacy), the site default, the most
 * restrictive rule, and the evidence recorded for each purpose.
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
};

static struct sg_consent resolve_ex(const struct sg_consent_policy *pol, struct sigs s, int want_rc)
{
    struct sg_consent c;
    const char *reason = NULL;
    json_t *ev = s.event_json ? json_loads(s.event_json, JSON_DECODE_ANY, NULL) : NULL;
    struct sg_consent_signals sig = {ev, s.gpc, s.tcf_cookie, s.usp_cookie};
    assert_int_equal(sg_consent_resolve(pol, &sig, &c, &reason), want_rc);
    if (want_rc < 0)
        assert_non_null(reason);
    json_decref(ev);
    return c;
}

static struct sg_consent resolve(const char *event_json, bool gpc)
{
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    return resolve_ex(&pol, (struct sigs){event_json, gpc, NULL, NULL}, 0);
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
    struct sg_consent c = resolve_ex(&pol, (struct sigs){"\"granted\"", true, NULL, NULL}, 0);
    assert_false(c.gpc);
    assert_false(c.sale_opt_out);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
}

static void granted_default_applies_to_unset_only(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_GRANTED, true);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){"{\"ad_user_data\":\"denied\"}", false, NULL, NULL}, 0);
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
    struct sg_consent c = resolve_ex(&pol, (struct sigs){ev, false, NULL, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_APPLIED);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);     /* 1 */
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_GRANTED);   /* 1 and 7 */
    assert_int_equal(c.state[SG_PURPOSE_AD_PERSONALIZATION], SG_CONSENT_DENIED); /* 3, 4 missing */
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_PERSONALIZATION), "tcf:purpose_consent=no");
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "tcf:granted");
    free(s);
    /* The same purposes without the vendor: denied, and the receipt says why. */
    s = tc(P(1) | P(7), false, 4);
    c = resolve_ex(&pol, (struct sigs){NULL, false, s, NULL}, 0); /* from the cookie */
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
    struct sg_consent c = resolve_ex(&pol, (struct sigs){NULL, false, s, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "tcf:publisher_restriction");
    free(s);
}

static void tcf_that_cannot_decide_falls_to_the_default(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    char *old = tc(P(1) | P(7), true, 2); /* policy version 2 */
    struct sg_consent c = resolve_ex(&pol, (struct sigs){NULL, false, old, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_UNUSABLE);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "default:denied");
    free(old);
    c = resolve_ex(&pol, (struct sigs){NULL, false, "CPgarbage!!", NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_MALFORMED);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    /* With a granted default, doubt resolves to the default too, as documented. */
    struct sg_consent_policy granted = policy(SG_CONSENT_GRANTED, true);
    c = resolve_ex(&granted, (struct sigs){NULL, false, "CPgarbage!!", NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    /* No vendor configured: TCF decides nothing. */
    pol.tcf_vendor_id = 0;
    char *s = tc(P(1), true, 4);
    c = resolve_ex(&pol, (struct sigs){NULL, false, s, NULL}, 0);
    assert_int_equal(c.tcf, SG_TCF_NO_VENDOR);
    free(s);
}

static void conflicts_resolve_to_the_denial(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    char *s = tc(P(1) | P(7), false, 4); /* TCF: no vendor consent */
    char ev[4096];
    snprintf(ev, sizeof(ev), "{\"ad_storage\":\"granted\",\"ad_user_data\":\"granted\",\"tcf\":\"%s\"}", s);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){ev, false, NULL, NULL}, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "tcf:vendor_consent=no");
    free(s);
    /* And the other way round: a TCF grant does not undo the event's denial. */
    s = tc(P(1) | P(7), true, 4);
    snprintf(ev, sizeof(ev), "{\"ad_storage\":\"denied\",\"tcf\":\"%s\"}", s);
    c = resolve_ex(&pol, (struct sigs){ev, false, NULL, NULL}, 0);
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
    c = resolve("{\"gcs\":\"G2xx\"}", false); /* malformed: decides nothing */
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_STORAGE), "default:denied");
}

static void us_privacy(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    struct sg_consent c = resolve_ex(&pol, (struct sigs){"\"granted\"", false, NULL, "1YYN"}, 0);
    assert_true(c.sale_opt_out);
    assert_false(c.gpc);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_string_equal(EVIDENCE(c, SG_PURPOSE_AD_USER_DATA), "usp:opt_out");
    c = resolve_ex(&pol, (struct sigs){"\"granted\"", false, NULL, "1YNN"}, 0);
    assert_false(c.sale_opt_out);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_GRANTED);
    c = resolve("{\"usp\":\"1-Y-\"}", false);
    assert_true(c.sale_opt_out);
    c = resolve("{\"usp\":\"YYYY\"}", false); /* malformed */
    assert_false(c.sale_opt_out);
}

static void malformed_consent_is_an_error(void **state)
{
    (void)state;
    struct sg_consent_policy pol = policy(SG_CONSENT_DENIED, true);
    const char *bad[] = {"\"yes\"", "42", "{\"ad_storage\":true}", "{\"marketing\":\"granted\"}",
                         "{\"tcf\":7}", "{\"gcs\":1}"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++)
        resolve_ex(&pol, (struct sigs){bad[i], false, NULL, NULL}, -1);
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
        cmocka_unit_test(tcf_that_cannot_decide_falls_to_the_default),
        cmocka_unit_test(conflicts_resolve_to_the_denial),
        cmocka_unit_test(gcs_values),
        cmocka_unit_test(us_privacy),
        cmocka_unit_test(malformed_consent_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
