/* Hashing and TikTok normalization, checked against TikTok's official examples. */
#include "testutil.h"

#include "scrubgate/hash.h"

#include <string.h>

static void hash_as_tiktok(int (*norm)(const char *, char *, size_t), const char *in,
                           const char *want_norm, const char *want_hex)
{
    char n[256], hex[SG_HEX256_LEN + 1];
    assert_int_equal(norm(in, n, sizeof(n)), 0);
    assert_string_equal(n, want_norm);
    sg_sha256_hex(n, strlen(n), hex);
    assert_string_equal(hex, want_hex);
}

static void official_email_example(void **state)
{
    (void)state;
    hash_as_tiktok(sg_normalize_email, " ALICE_abc@gmail.com ", "alice_abc@gmail.com",
                   "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f");
}

/* Phone normalization under a region (NULL: none), as the rule engine calls it. */
static const char *phone_region;
static int norm_phone(const char *in, char *out, size_t cap)
{
    return sg_normalize_phone(in, phone_region, out, cap);
}

static void official_phone_example(void **state)
{
    (void)state;
    phone_region = NULL; /* it carries its country code: no region needed */
    hash_as_tiktok(norm_phone, "(+1)2133734253", "+12133734253",
                   "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd");
    phone_region = "US";
    hash_as_tiktok(norm_phone, "(+1)2133734253", "+12133734253",
                   "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd");
}

static void expect_phone(const char *in, const char *region, const char *want)
{
    char n[64];
    int rc = sg_normalize_phone(in, region, n, sizeof(n));
    if (want == NULL) {
        if (rc != -1)
            fail_msg("\"%s\" (region %s) normalized to \"%s\"; wanted it dropped", in,
                     region ? region : "none", n);
        return;
    }
    if (rc != 0 || strcmp(n, want) != 0)
        fail_msg("\"%s\" (region %s): rc %d \"%s\"; wanted \"%s\"", in,
                 region ? region : "none", rc, rc == 0 ? n : "", want);
}

/*
 * Issue 9: the old normalization kept the digits and put a "+" before them, so a national
 * number became another country's ("+2133734253" is Algerian), a UK trunk 0 stayed, and an
 * extension was glued on. Expected values: sha256 of the E.164 form, python3
 * hashlib.sha256(b"+12133734253") and so on.
 */
static void phone_is_e164_under_the_sites_region(void **state)
{
    (void)state;
    phone_region = "US";
    hash_as_tiktok(norm_phone, "213-373-4253", "+12133734253",
                   "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd");
    phone_region = "GB";
    hash_as_tiktok(norm_phone, "020 7946 0958", "+442079460958",
                   "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d");
    phone_region = NULL;
    hash_as_tiktok(norm_phone, "+1 (213) 373-4253 ext. 12", "+12133734253",
                   "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd");
    expect_phone("+1 (213) 373-4253 ext. 12", "US", "+12133734253");
    expect_phone("(213) 373-4253", "US", "+12133734253");
    expect_phone("1 213 373 4253", "US", "+12133734253");
    expect_phone("  213.373.4253\t", "US", "+12133734253");
    /* "00" is the international prefix: no region needed, and it wins over the region. */
    expect_phone("0044 20 7946 0958", NULL, "+442079460958");
    expect_phone("0044 20 7946 0958", "US", "+442079460958");
    expect_phone("+44 20 7946 0958", "US", "+442079460958");
    expect_phone("+44 (0)20 7946 0958", NULL, "+442079460958");
    expect_phone("020 7946 0958", "GB", "+442079460958");
}

static void phone_without_country_code_or_region_is_dropped(void **state)
{
    (void)state;
    /* Never guessed: not as US, not as "+" and the digits. */
    expect_phone("213-373-4253", NULL, NULL);
    expect_phone("2133734253", NULL, NULL);
    expect_phone("020 7946 0958", NULL, NULL);
    expect_phone("1 213 373 4253", NULL, NULL);
    /* A region the library does not know behaves as none (config refuses it anyway). */
    expect_phone("213-373-4253", "XX", NULL);
    expect_phone("213-373-4253", "us", NULL);
    expect_phone("213-373-4253", "", NULL);
    expect_phone("213-373-4253", "USA", NULL);
    expect_phone("+12133734253", "XX", "+12133734253");
}

static void invalid_and_garbage_phones_are_dropped(void **state)
{
    char n[64], big[4096];
    (void)state;
    expect_phone("12345", "US", NULL);                  /* too short */
    expect_phone("1234567890123456", "US", NULL);       /* > 15 digits */
    expect_phone("+1 213 373 425", NULL, NULL);         /* one digit short for the NANP */
    expect_phone("+1 011 373 4253", NULL, NULL);        /* no NANP area code starts with 0 */
    expect_phone("+999 1234 5678", NULL, NULL);         /* no such country code */
    expect_phone("020 7946 0958", "US", NULL);          /* a UK number is not a US one */
    expect_phone("", "US", NULL);
    expect_phone("   ", "US", NULL);
    expect_phone("+", NULL, NULL);
    expect_phone("00", NULL, NULL);
    expect_phone("not a phone", "US", NULL);
    expect_phone("jane@example.com", "US", NULL);
    expect_phone("+1 213 373 4253 and more text to make it long, much longer than a number is",
                 NULL, NULL);
    /* Longer than SG_PHONE_MAX_INPUT, even though it starts with a valid number. */
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big + 100, "+12133734253", 12);
    expect_phone(big, NULL, NULL);
    memset(big, '9', sizeof(big) - 1);
    expect_phone(big, "US", NULL);
    /* Invalid UTF-8, NUL-free: dropped, no crash (ASan builds run this too). */
    expect_phone("+1 213 \xff\xfe 373 4253", NULL, NULL);
    expect_phone("\xc3\x28\xa0\xa1 213-373-4253", "US", NULL);
    expect_phone("\xe2\x82", "US", NULL);
    expect_phone("+1 213 373 4253\xf0\x9f", NULL, NULL);
    /* Full-width digits are digits to libphonenumber (valid UTF-8): that is a real number. */
    expect_phone("\xef\xbc\x8b\xef\xbc\x91 213 373 4253", NULL, "+12133734253");
    /* Too small an output buffer: refused, not cut. */
    assert_int_equal(sg_normalize_phone("+12133734253", NULL, n, 12), -1);
    assert_int_equal(sg_normalize_phone("+12133734253", NULL, n, 13), 0);
    assert_string_equal(n, "+12133734253");
}

static void official_external_id_example(void **state)
{
    (void)state;
    hash_as_tiktok(sg_normalize_text, "user_123", "user_123",
                   "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b");
}

static void normalization_rejects_non_identifiers(void **state)
{
    char n[64];
    (void)state;
    assert_int_equal(sg_normalize_email("   ", n, sizeof(n)), -1);
    assert_int_equal(sg_normalize_email("no-at-sign", n, sizeof(n)), -1);
    assert_int_equal(sg_normalize_email("@example.com", n, sizeof(n)), -1);
    assert_int_equal(sg_normalize_phone("12345", "US", n, sizeof(n)), -1);           /* too short */
    assert_int_equal(sg_normalize_phone("1234567890123456", "US", n, sizeof(n)), -1); /* > 15 digits */
    assert_int_equal(sg_normalize_phone("+44 20 7946 0958", NULL, n, sizeof(n)), 0);
    assert_string_equal(n, "+442079460958");
}

static void hmac_is_keyed_and_domain_separated(void **state)
{
    const unsigned char *key = (const unsigned char *)SG_TEST_SECRET;
    char a[SG_HEX256_LEN + 1], b[SG_HEX256_LEN + 1], c[SG_HEX256_LEN + 1];
    (void)state;
    sg_hmac_hex(key, strlen(SG_TEST_SECRET), "user.ip", "203.0.113.9", 11, a);
    /* Computed independently: python3 hmac.new(key, b"user.ip" + bytes([0]) + b"203.0.113.9", sha256) */
    assert_string_equal(a, "7271b45eba9223a62c9bb48b82a9cab10f1c2d7f48e7f380bd2904882c49fbc8");
    sg_hmac_hex(key, strlen(SG_TEST_SECRET), "session", "203.0.113.9", 11, b);
    assert_string_not_equal(a, b);
    sg_hmac_hex((const unsigned char *)"another-secret-000", 18, "user.ip", "203.0.113.9", 11, c);
    assert_string_not_equal(a, c);
}

/* RFC 2104 over every key size: short, one block, over a block (hashed first), past the
 * per-thread cache's key limit; and more keys than the cache holds, twice round. Expected
 * values from python3 hmac.new(key, b"d\\0msg", sha256). */
static void hmac_key_sizes_and_cache(void **state)
{
    static const struct {
        char ch;
        size_t len;
        const char *want;
    } keys[] = {
        {'k', 1, "048295f470af4c8933b8ca59142638ef2c847fb2178522f380ee983f37a74b18"},
        {'a', 64, "be13743c9bd63231e933c9ab3b928c1b14b017f63e6a1582da6accbcffae7f47"},
        {'b', 65, "57f586ce4fb259199c4f47a0aed024d7374fa907adb69afecc998402297fa311"},
        {'c', 128, "7b5273809c3c06ef0bccc1fe6038985272a99fdd83c13c0a0c2df62d10e41fd7"},
        {'d', 131, "cb8878758e4054405d8f5c470dc89fdc3f93076a06d9880975b2b632c1f88438"},
    };
    char got[SG_HEX256_LEN + 1];
    unsigned char key[200];
    (void)state;
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            memset(key, keys[i].ch, keys[i].len);
            sg_hmac_hex(key, keys[i].len, "d", "msg", 3, got);
            assert_string_equal(got, keys[i].want);
        }
    sg_hash_thread_release();
    memset(key, 'k', 1);
    sg_hmac_hex(key, 1, "d", "msg", 3, got);
    assert_string_equal(got, keys[0].want);
}

static void hex256_detection(void **state)
{
    (void)state;
    assert_true(sg_is_hex256("848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"));
    assert_false(sg_is_hex256("848A771458438FC2EC420560D769FB9B9B86851EE338EC56517BAABD79D3BB4F"));
    assert_false(sg_is_hex256("848a77"));
    assert_false(sg_is_hex256("alice@example.com"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(official_email_example),
        cmocka_unit_test(official_phone_example),
        cmocka_unit_test(phone_is_e164_under_the_sites_region),
        cmocka_unit_test(phone_without_country_code_or_region_is_dropped),
        cmocka_unit_test(invalid_and_garbage_phones_are_dropped),
        cmocka_unit_test(official_external_id_example),
        cmocka_unit_test(normalization_rejects_non_identifiers),
        cmocka_unit_test(hmac_is_keyed_and_domain_separated),
        cmocka_unit_test(hmac_key_sizes_and_cache),
        cmocka_unit_test(hex256_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
