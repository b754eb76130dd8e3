/* Consent resolution: every basic signal, the default, and the most restrictive rule. */
#include "testutil.h"

#include "scrubgate/consent.h"

static const struct sg_consent_policy deny_default = {SG_CONSENT_DENIED, true, 0};

static struct sg_consent resolve(const struct sg_consent_policy *pol, const char *event_json,
                                 bool gpc, int want_rc)
{
    struct sg_consent c;
    const char *reason = NULL;
    json_t *ev = event_json ? json_loads(event_json, JSON_DECODE_ANY, NULL) : NULL;
    struct sg_consent_signals sig = {ev, gpc, NULL};
    assert_int_equal(sg_consent_resolve(pol, &sig, &c, &reason), want_rc);
    if (want_rc < 0)
        assert_non_null(reason);
    json_decref(ev);
    return c;
}

static void nothing_sent_fails_closed(void **state)
{
    (void)state;
    struct sg_consent c = resolve(&deny_default, NULL, false, 0);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        assert_int_equal(c.state[p], SG_CONSENT_DENIED);
        assert_int_equal(c.source[p], SG_CSRC_DEFAULT);
    }
    assert_false(c.gpc);
}

static void granted_string_grants_all(void **state)
{
    (void)state;
    struct sg_consent c = resolve(&deny_default, "\"granted\"", false, 0);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        assert_int_equal(c.state[p], SG_CONSENT_GRANTED);
        assert_int_equal(c.source[p], SG_CSRC_EVENT);
    }
}

static void consent_mode_object_sets_each_purpose(void **state)
{
    (void)state;
    struct sg_consent c =
        resolve(&deny_default, "{\"ad_storage\":\"granted\",\"ad_user_data\":\"denied\"}", false, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_int_equal(c.source[SG_PURPOSE_AD_USER_DATA], SG_CSRC_EVENT);
    /* Unsent purposes take the site default. */
    assert_int_equal(c.state[SG_PURPOSE_AD_PERSONALIZATION], SG_CONSENT_DENIED);
    assert_int_equal(c.source[SG_PURPOSE_AD_PERSONALIZATION], SG_CSRC_DEFAULT);
}

static void gpc_overrides_a_grant(void **state)
{
    (void)state;
    struct sg_consent c = resolve(&deny_default, "\"granted\"", true, 0);
    assert_true(c.gpc);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_DENIED);
    assert_int_equal(c.source[SG_PURPOSE_AD_STORAGE], SG_CSRC_GPC);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_int_equal(c.state[SG_PURPOSE_AD_PERSONALIZATION], SG_CONSENT_DENIED);
    /* GPC is about sale/sharing: analytics keeps what the event said. */
    assert_int_equal(c.state[SG_PURPOSE_ANALYTICS_STORAGE], SG_CONSENT_GRANTED);
}

static void gpc_ignored_when_not_honoured(void **state)
{
    (void)state;
    struct sg_consent_policy pol = {SG_CONSENT_DENIED, false, 0};
    struct sg_consent c = resolve(&pol, "\"granted\"", true, 0);
    assert_false(c.gpc);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
}

static void granted_default_applies_to_unset_only(void **state)
{
    (void)state;
    struct sg_consent_policy pol = {SG_CONSENT_GRANTED, true, 0};
    struct sg_consent c = resolve(&pol, "{\"ad_user_data\":\"denied\"}", false, 0);
    assert_int_equal(c.state[SG_PURPOSE_AD_USER_DATA], SG_CONSENT_DENIED);
    assert_int_equal(c.state[SG_PURPOSE_AD_STORAGE], SG_CONSENT_GRANTED);
    assert_int_equal(c.source[SG_PURPOSE_AD_STORAGE], SG_CSRC_DEFAULT);
}

static void tcf_string_decides_nothing_yet(void **state)
{
    (void)state;
    struct sg_consent c = resolve(&deny_default, "{\"tcf\":\"CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA\"}", false, 0);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        assert_int_equal(c.state[p], SG_CONSENT_DENIED);
}

static void malformed_consent_is_an_error(void **state)
{
    (void)state;
    resolve(&deny_default, "\"yes\"", false, -1);
    resolve(&deny_default, "42", false, -1);
    resolve(&deny_default, "{\"ad_storage\":true}", false, -1);
    resolve(&deny_default, "{\"marketing\":\"granted\"}", false, -1);
    resolve(&deny_default, "{\"tcf\":7}", false, -1);
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
        cmocka_unit_test(tcf_string_decides_nothing_yet),
        cmocka_unit_test(malformed_consent_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
