/*
 * The TC string decoder: IAB's published example strings (as decoded by
 * independent implementations), strings built by tcf_encode.c in every
 * encoding, with and without byte padding, and malformed input, which must
 * be refused and never crash. tests/tcf-diff compares the decoder with IAB's
 * own library on thousands of generated strings.
 */
#include "testutil.h"

#include "scrubgate/tcf.h"
#include "tcf_encode.h"

#include <stdlib.h>
#include <string.h>

#define P(n) (1u << ((n) - 1))

static struct sg_tcf decode(const char *s, unsigned vendor)
{
    struct sg_tcf tc;
    const char *why = NULL;
    if (sg_tcf_decode(s, strlen(s), vendor, &tc, &why) < 0)
        fail_msg("decode failed: %s", why);
    return tc;
}

static bool listed(const unsigned *v, size_t n, unsigned id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

/* Every vendor id 1..upto: consent and legitimate interest exactly as listed. */
static void check_vendors(const char *s, const unsigned *consent, size_t nc, const unsigned *li,
                          size_t nl, unsigned upto)
{
    for (unsigned v = 1; v <= upto; v++) {
        struct sg_tcf tc = decode(s, v);
        if (tc.vendor_consent != listed(consent, nc, v) || tc.vendor_li != listed(li, nl, v))
            fail_msg("vendor %u: consent %d li %d", v, tc.vendor_consent, tc.vendor_li);
    }
}

static void published_bitfield_string(void **state)
{
    (void)state;
    const char *s = "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
    static const unsigned consent[] = {2,  3,  6,  7,  8,  10, 12, 13, 14, 15, 16, 21,  25,  27,
                                       30, 31, 34, 35, 37, 38, 39, 42, 43, 49, 52, 54,  55,  56,
                                       57, 59, 60, 63, 64, 65, 66, 67, 68, 69, 73, 74,  76,  78,
                                       83, 86, 87, 89, 90, 92, 96, 99, 100, 106, 109, 110, 114, 115};
    static const unsigned li[] = {1, 9, 26, 27, 30, 36, 37, 43, 86, 97, 110, 113};
    struct sg_tcf tc = decode(s, 1);
    assert_int_equal(tc.version, 2);
    assert_int_equal(tc.policy_version, 2);
    assert_int_equal(tc.cmp_id, 21);
    assert_int_equal(tc.vendor_list_version, 23);
    assert_true(tc.service_specific);
    assert_int_equal(tc.purpose_consent, P(1) | P(3) | P(9) | P(10));
    assert_int_equal(tc.purpose_li, P(3) | P(4) | P(5) | P(8) | P(9) | P(10));
    assert_int_equal(tc.max_vendor_consent, 115);
    assert_int_equal(tc.max_vendor_li, 113);
    check_vendors(s, consent, SG_ARRAY_SIZE(consent), li, SG_ARRAY_SIZE(li), 120);
    assert_int_equal(tc.restricted[0] | tc.restricted[1] | tc.restricted[2], 0);
    /* Policy version 2 predates TCF 2.2: decoded, but it may not decide consent. */
    assert_non_null(sg_tcf_unusable(&tc));
    /* A publisher TC segment after the core is skipped safely. */
    tc = decode("CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA"
                ".argAC0gAAAAAAAAAAAA", 2);
    assert_true(tc.vendor_consent);
}

static void published_range_string(void **state)
{
    (void)state;
    const char *s = "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA";
    static const unsigned consent[] = {23, 42, 126, 127, 128, 587, 613, 626};
    static const unsigned li[] = {24, 44, 129, 130, 131, 591, 614, 628};
    struct sg_tcf tc = decode(s, 1);
    assert_int_equal(tc.policy_version, 2);
    assert_false(tc.service_specific);
    assert_int_equal(tc.purpose_consent, 0);
    assert_int_equal(tc.max_vendor_consent, 626);
    assert_int_equal(tc.max_vendor_li, 628);
    check_vendors(s, consent, SG_ARRAY_SIZE(consent), li, SG_ARRAY_SIZE(li), 630);
}

static void encoded_strings_round_trip(void **state)
{
    (void)state;
    static const unsigned vendors[] = {5, 6, 7, 1234, 2000};
    static const unsigned li[] = {1234};
    for (int range = 0; range <= 1; range++) {
        struct tcf_spec spec = {2, 4, true, P(1) | P(7), P(2), 2000, vendors, 5, range, li, 1,
                                {{0}}, 0};
        char *s = tcf_encode(&spec);
        struct sg_tcf tc = decode(s, 1234);
        assert_int_equal(tc.policy_version, 4);
        assert_null(sg_tcf_unusable(&tc));
        assert_int_equal(tc.purpose_consent, P(1) | P(7));
        assert_int_equal(tc.purpose_li, P(2));
        assert_true(tc.vendor_consent);
        assert_true(tc.vendor_li);
        tc = decode(s, 6);
        assert_true(tc.vendor_consent);
        assert_false(tc.vendor_li);
        tc = decode(s, 1233);
        assert_false(tc.vendor_consent);
        tc = decode(s, 4000); /* beyond MaxVendorId: absent */
        assert_false(tc.vendor_consent);
        free(s);
    }
}

static void publisher_restrictions(void **state)
{
    (void)state;
    static const unsigned vendors[] = {1234};
    struct tcf_spec spec = {2, 5, true, P(1) | P(3) | P(4) | P(7), 0, 1234, vendors, 1, false, NULL,
                            0, {{7, 0, 1000, 1300}, {3, 2, 1234, 1234}, {4, 1, 1, 5}}, 3};
    char *s = tcf_encode(&spec);
    struct sg_tcf tc = decode(s, 1234);
    assert_int_equal(tc.restricted[0], P(7));
    assert_int_equal(tc.restricted[2], P(3));
    assert_int_equal(tc.restricted[1], 0); /* the purpose 4 range does not hold 1234 */
    free(s);
}

/* The reject-all string of issue 9: 45 characters, 270 bits, its last field ends 6 bits into
 * a byte. IAB's decoder reads it; so must this one. */
#define REJECT_ALL "CQlH_MAQlH_MAAKABAENCbFgAAAAAAAAAAYgAAAAIAAAA"

static void six_bit_aligned_strings_decode(void **state)
{
    (void)state;
    assert_int_equal(strlen(REJECT_ALL) * 6 % 8, 6);
    struct sg_tcf tc = decode(REJECT_ALL, 1234);
    assert_int_equal(tc.version, 2);
    assert_int_equal(tc.policy_version, 5);
    assert_true(tc.service_specific);
    assert_int_equal(tc.cmp_id, 10);
    assert_int_equal(tc.vendor_list_version, 155);
    assert_int_equal(tc.purpose_consent, 0);
    assert_int_equal(tc.purpose_li, 0);
    assert_int_equal(tc.max_vendor_consent, 0);
    assert_int_equal(tc.max_vendor_li, 8); /* a bitfield of 8 vendors, none set */
    assert_false(tc.vendor_consent);
    assert_false(tc.vendor_li);
    assert_null(sg_tcf_unusable(&tc));
    /* One character less cuts the last field: refused, as IAB's decoder refuses it. */
    struct sg_tcf bad;
    const char *why = NULL;
    assert_int_equal(sg_tcf_decode(REJECT_ALL, strlen(REJECT_ALL) - 1, 1234, &bad, &why), -1);
    assert_string_equal(why, "truncated");

    /* Strings built without byte padding, for every remainder of the bit length: the same
     * answers as the padded strings. */
    static const unsigned vendors[] = {3, 4, 5, 77, 1234};
    unsigned remainders = 0;
    for (unsigned max = 1234; max < 1234 + 8; max++) {
        for (int range = 0; range <= 1; range++) {
            struct tcf_spec spec = {2, 4, true, P(1) | P(7), P(2), max, vendors, 5, range,
                                    vendors, 2, {{7, 1, 1, 2}}, 1};
            char *six = tcf_encode_6bit(&spec), *eight = tcf_encode(&spec);
            remainders |= 1u << (strlen(six) * 6 % 8);
            for (unsigned v = 1; v <= max + 1; v += (v < 10 ? 1 : 97)) {
                struct sg_tcf a = decode(six, v), b = decode(eight, v);
                assert_memory_equal(&a, &b, sizeof(a));
            }
            struct sg_tcf a = decode(six, 1234);
            assert_true(a.vendor_consent);
            assert_int_equal(a.purpose_consent, P(1) | P(7));
            free(six);
            free(eight);
        }
    }
    assert_int_equal(remainders, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 6));
}

static void later_segments_and_restriction_purposes(void **state)
{
    (void)state;
    char buf[256];
    /* Segments after the core are skipped, but must be non-empty base64url. */
    snprintf(buf, sizeof(buf), "%s.IAAA.YAAAAAAAAAA", REJECT_ALL);
    decode(buf, 1);
    static const char *const bad[] = {".", ".IAAA.", "..IAAA", ".!!", ".IA A"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++) {
        struct sg_tcf tc;
        const char *why = NULL;
        snprintf(buf, sizeof(buf), "%s%s", REJECT_ALL, bad[i]);
        if (sg_tcf_decode(buf, strlen(buf), 1, &tc, &why) == 0)
            fail_msg("accepted \"%s\"", buf);
        assert_string_equal(why, "bad segment");
    }
    /* PurposeId is 6 bits: a restriction on purpose 25 to 63 is valid (IAB reads it) and no
     * consent bit exists for it, so it restricts nothing that a mapping can name. */
    static const unsigned v[] = {1234};
    struct tcf_spec spec = {2, 4, true, P(1), 0, 1234, v, 1, false, NULL, 0,
                            {{63, 0, 1, 2000}, {25, 2, 1234, 1234}, {24, 0, 1234, 1234}}, 3};
    char *s = tcf_encode(&spec);
    struct sg_tcf tc = decode(s, 1234);
    assert_int_equal(tc.restricted[SG_TCF_NOT_ALLOWED], P(24));
    assert_int_equal(tc.restricted[SG_TCF_REQUIRE_LI], 0);
    free(s);
}

static void expect_malformed(const char *s, size_t len, const char *want)
{
    struct sg_tcf tc;
    const char *why = NULL;
    assert_int_equal(sg_tcf_decode(s, len, 1234, &tc, &why), -1);
    if (!why || (want && strcmp(why, want) != 0))
        fail_msg("wanted \"%s\", got \"%s\"", want ? want : "(any)", why ? why : "(null)");
}

static void malformed_strings(void **state)
{
    (void)state;
    static const unsigned vendors[] = {1234};
    struct tcf_spec spec = {2, 4, true, P(1), 0, 1234, vendors, 1, true, NULL, 0, {{0}}, 0};
    char *good = tcf_encode(&spec);
    size_t n = strlen(good);
    /* Every truncation of a valid string is refused, never read past its end. */
    for (size_t cut = 0; cut < n - 2; cut++)
        expect_malformed(good, cut, NULL);
    expect_malformed("C!!!notbase64", 13, "bad base64");
    expect_malformed("", 0, "bad base64");
    char *huge = malloc(SG_TCF_MAX_CHARS + 2);
    memset(huge, 'A', SG_TCF_MAX_CHARS + 1);
    huge[SG_TCF_MAX_CHARS + 1] = '\0';
    expect_malformed(huge, SG_TCF_MAX_CHARS + 1, "over-long");
    free(huge);
    /* Version 1 strings (they start with B) are not TCF v2. */
    expect_malformed("BOQ6ZEAOQ6ZEAABACDENAOwAAAAHCADAACAAQAAQ", 40, "not version 2");
    /* A range past MaxVendorId, and a reversed range. */
    static const unsigned over[] = {1234, 1300};
    struct tcf_spec bad = {2, 4, true, P(1), 0, 1234, over, 2, true, NULL, 0, {{0}}, 0};
    char *s = tcf_encode(&bad);
    expect_malformed(s, strlen(s), "range overflow");
    free(s);
    /* A restriction on purpose 0, or of type 3: IAB's decoder refuses both. */
    struct tcf_spec r0 = {2, 4, true, P(1), 0, 1234, vendors, 1, false, NULL, 0,
                          {{0, 0, 1, 2}}, 1};
    s = tcf_encode(&r0);
    expect_malformed(s, strlen(s), "bad publisher restriction");
    free(s);
    struct tcf_spec r3 = {2, 4, true, P(1), 0, 1234, vendors, 1, false, NULL, 0,
                          {{1, 3, 1, 2}}, 1};
    s = tcf_encode(&r3);
    expect_malformed(s, strlen(s), "bad publisher restriction");
    free(s);
    /* Bytes that are not base64url, invalid UTF-8 among them, anywhere in the core. */
    expect_malformed("CQlH_MAQlH_MAAKABAENCbFgAAAAAAAAAAYgAAAAIA\xff\xfe" "A", 45, "bad base64");
    expect_malformed("CQlH_MAQlH_MAAKABAENCbFgAAAAA\xc3\xa9" "AAAAYgAAAAIAAAA", 46, "bad base64");
    free(good);
}

/* Every input up to the cap is decoded in one pass: a cap-sized string of valid characters
 * is refused (as truncated or overflowing) quickly, and so is one far over the cap. */
static void enormous_inputs_are_bounded(void **state)
{
    (void)state;
    size_t big = 4u << 20;
    char *s = malloc(big + 1);
    memset(s, '_', big); /* all ones: the largest counts and ranges */
    s[big] = '\0';
    s[0] = 'C';
    struct sg_tcf tc;
    const char *why = NULL;
    for (size_t len = SG_TCF_MAX_CHARS - 3; len <= SG_TCF_MAX_CHARS; len++)
        assert_int_equal(sg_tcf_decode(s, len, 1234, &tc, &why), -1);
    assert_int_equal(sg_tcf_decode(s, big, 1234, &tc, &why), -1);
    assert_string_equal(why, "over-long");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(published_bitfield_string),
        cmocka_unit_test(published_range_string),
        cmocka_unit_test(encoded_strings_round_trip),
        cmocka_unit_test(publisher_restrictions),
        cmocka_unit_test(six_bit_aligned_strings_decode),
        cmocka_unit_test(later_segments_and_restriction_purposes),
        cmocka_unit_test(malformed_strings),
        cmocka_unit_test(enormous_inputs_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
