/*
 * The phone interface (phone.h, libphonenumber behind phone.cc) at its edges: which regions
 * are known, regions it was never meant to get, lengths and buffers. The normalization cases of
 * issue 9 are in test_hash.c, the text detector's in test_scrub.c.
 */
#include "testutil.h"

#include "scrubgate/phone.h"

#include <string.h>

static void regions_known(void **state)
{
    (void)state;
    const char *yes[] = {"US", "GB", "DE", "FR", "JP", "BR", "IN", "AG", "GG", "PR"};
    const char *no[] = {NULL, "", "U", "us", "Us", "USA", "UK", "XX", "ZZ", "001", "U1",
                        "\xc3\x9c" "S", "US "};
    for (size_t i = 0; i < SG_ARRAY_SIZE(yes); i++)
        if (!sg_phone_region_known(yes[i]))
            fail_msg("%s: wanted known", yes[i]);
    for (size_t i = 0; i < SG_ARRAY_SIZE(no); i++)
        if (sg_phone_region_known(no[i]))
            fail_msg("%s: wanted unknown", no[i] ? no[i] : "NULL");
}

/*
 * The config passes only known regions, but an unknown one must not crash or guess: it
 * behaves as no region (a number with its country code still works).
 */
static void unknown_regions_behave_as_none(void **state)
{
    const char *bad[] = {"XX", "ZZ", "", "us", "USA", "001", "\xff\xfe"};
    char out[SG_PHONE_E164_CAP];
    (void)state;
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++) {
        assert_int_equal(sg_phone_e164("213-373-4253", 12, bad[i], out, sizeof(out)), -1);
        assert_int_equal(sg_phone_e164("+12133734253", 12, bad[i], out, sizeof(out)), 0);
        assert_string_equal(out, "+12133734253");
        /* detection tries the common regions after the site's (US among them) */
        assert_int_equal(sg_phone_text_candidate("213-373-4253", 12, bad[i]), 1);
        assert_int_equal(sg_phone_text_candidate("000 000 0000", 12, bad[i]), 0);
        assert_int_equal(sg_phone_text_candidate("+1 213 373 4253", 15, bad[i]), 1);
    }
}

/*
 * A number dialled with an international prefix other than "00": only the
 * site's region says which (Australia's 0011, Brazil's carrier codes, the
 * US's 011); without a region "0011 …" is not read as "+11 …" (it would lose
 * a digit), and in text such numbers are caught through the region.
 */
static void international_prefixes(void **state)
{
    char out[SG_PHONE_E164_CAP];
    (void)state;
    assert_int_equal(sg_phone_e164("0011 32 12345678", 16, "AU", out, sizeof(out)), 0);
    assert_string_equal(out, "+3212345678");
    assert_int_equal(sg_phone_e164("0043 33 612345678", 17, "BR", out, sizeof(out)), 0);
    assert_string_equal(out, "+33612345678");
    assert_int_equal(sg_phone_e164("011 44 20 7946 0958", 19, "US", out, sizeof(out)), 0);
    assert_string_equal(out, "+442079460958");
    assert_int_equal(sg_phone_e164("0011 32 12345678", 16, NULL, out, sizeof(out)), -1);
    assert_int_equal(sg_phone_e164("0044 20 7946 0958", 17, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "+442079460958");
    assert_int_equal(sg_phone_text_candidate("011 44 20 7946 0958", 19, "US"), 1);
    assert_int_equal(sg_phone_text_candidate("00 1 213 373 4253", 17, "GB"), 1);
}

/* Only len bytes are read: the number need not end with a NUL, and what follows is ignored. */
static void length_is_respected(void **state)
{
    char out[SG_PHONE_E164_CAP];
    const char *s = "+12133734253999";
    (void)state;
    assert_int_equal(sg_phone_e164(s, 12, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "+12133734253");
    assert_int_equal(sg_phone_e164(s, 15, NULL, out, sizeof(out)), -1); /* too long for +1 */
    assert_int_equal(sg_phone_e164(s, 0, NULL, out, sizeof(out)), -1);
    assert_int_equal(sg_phone_text_candidate(s, 0, NULL), 0);
    /* A NUL inside the given length is not a number. */
    assert_int_equal(sg_phone_e164("+1213\0" "3734253", 12, NULL, out, sizeof(out)), -1);
    /* At most SG_PHONE_MAX_INPUT bytes (after leading blanks) are parsed. */
    char buf[SG_PHONE_MAX_INPUT + 2];
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, "+12133734253", 12);
    assert_int_equal(sg_phone_e164(buf, SG_PHONE_MAX_INPUT, NULL, out, sizeof(out)), 0);
    assert_int_equal(sg_phone_e164(buf, SG_PHONE_MAX_INPUT + 1, NULL, out, sizeof(out)), -1);
    assert_int_equal(sg_phone_text_candidate(buf, SG_PHONE_MAX_INPUT + 1, NULL), 0);
}

static void output_never_cut(void **state)
{
    char out[SG_PHONE_E164_CAP];
    (void)state;
    memset(out, 'x', sizeof(out));
    assert_int_equal(sg_phone_e164("+12133734253", 12, NULL, out, 12), -1);
    assert_int_equal(out[0], 'x'); /* untouched on failure */
    assert_int_equal(sg_phone_e164("+12133734253", 12, NULL, out, 0), -1);
    /* A 13-digit number fits (SG_PHONE_E164_CAP has room for the 15 E.164 allows). */
    assert_int_equal(sg_phone_e164("+86 131 2345 6789", 17, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "+8613123456789");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(regions_known),
        cmocka_unit_test(unknown_regions_behave_as_none),
        cmocka_unit_test(international_prefixes),
        cmocka_unit_test(length_is_respected),
        cmocka_unit_test(output_never_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
