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

static void official_phone_example(void **state)
{
    (void)state;
    hash_as_tiktok(sg_normalize_phone, "(+1)2133734253", "+12133734253",
                   "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd");
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
    assert_int_equal(sg_normalize_phone("12345", n, sizeof(n)), -1);           /* too short */
    assert_int_equal(sg_normalize_phone("1234567890123456", n, sizeof(n)), -1); /* > 15 digits */
    assert_int_equal(sg_normalize_phone("+44 20 7946 0958", n, sizeof(n)), 0);
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
        cmocka_unit_test(official_external_id_example),
        cmocka_unit_test(normalization_rejects_non_identifiers),
        cmocka_unit_test(hmac_is_keyed_and_domain_separated),
        cmocka_unit_test(hex256_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
