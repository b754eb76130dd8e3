/* Detectors and the URL scrubber: positives, negatives, and what must survive. */
#include "testutil.h"

#include "scrubgate/scrub.h"

#include <string.h>

static char *text(unsigned dets, const char *in, unsigned *hits)
{
    struct sg_buf out;
    sg_buf_init(&out, 65536);
    assert_int_equal(sg_scrub_text(dets, in, &out, hits), 0);
    return sg_buf_detach(&out, NULL);
}

static void expect_text(unsigned dets, const char *in, const char *want, unsigned want_hits)
{
    unsigned hits;
    char *got = text(dets, in, &hits);
    assert_string_equal(got, want);
    assert_int_equal(hits, want_hits);
    free(got);
}

static void email_detector(void **state)
{
    (void)state;
    unsigned m = 1u << SG_DET_EMAIL;
    expect_text(m, "contact jane.doe+tag@mail.example.co.uk now", "contact [redacted] now", 1);
    expect_text(m, "a@b.io and c@d.org", "[redacted] and [redacted]", 2);
    expect_text(m, "no address @ here, user@localhost", "no address @ here, user@localhost", 0);
}

static void phone_detector(void **state)
{
    (void)state;
    unsigned m = 1u << SG_DET_PHONE;
    expect_text(m, "call +12133734253", "call [redacted]", 1);
    expect_text(m, "call (213) 373-4253 today", "call [redacted] today", 1);
    expect_text(m, "uk +44 20 7946 0958", "uk [redacted]", 1);
    expect_text(m, "213.373.4253", "[redacted]", 1);
    /* What must survive: order numbers, SKUs, dates, prices. */
    expect_text(m, "order 1234567890", "order 1234567890", 0);
    expect_text(m, "SKU-123-4567", "SKU-123-4567", 0);
    expect_text(m, "2026-11-22", "2026-11-22", 0);
    expect_text(m, "price 1299.00", "price 1299.00", 0);
}

static void card_detector_checks_luhn(void **state)
{
    (void)state;
    unsigned m = 1u << SG_DET_CARD;
    expect_text(m, "card 4111 1111 1111 1111 ok", "card [redacted] ok", 1);
    expect_text(m, "4111-1111-1111-1111", "[redacted]", 1);
    expect_text(m, "5500005555555559", "[redacted]", 1);
    /* 16 digits failing Luhn: a tracking number, not a card. */
    expect_text(m, "tracking 4111111111111112", "tracking 4111111111111112", 0);
}

static char *url(const struct sg_url_policy *pol, const char *in, unsigned *hits)
{
    struct sg_buf out;
    sg_buf_init(&out, 65536);
    assert_int_equal(sg_scrub_url(pol, in, &out, hits), 0);
    return sg_buf_detach(&out, NULL);
}

static void expect_url(const struct sg_url_policy *pol, const char *in, const char *want)
{
    unsigned hits;
    char *got = url(pol, in, &hits);
    assert_string_equal(got, want);
    assert_int_equal(hits > 0, strcmp(in, want) != 0);
    free(got);
}

static const char *const strip_ttclid[] = {"ttclid"};

static void url_scrubbing(void **state)
{
    (void)state;
    struct sg_url_policy p = {SG_DET_ALL, true, NULL, 0};
    expect_url(&p, "https://shop.example.com/p?email=a%40b.com&utm_source=tt",
               "https://shop.example.com/p?utm_source=tt");
    /* A detector hit in a value, percent-encoded, under an innocent name. */
    expect_url(&p, "https://x.example/s?q=jane%40doe.com&page=2", "https://x.example/s?page=2");
    expect_url(&p, "https://x.example/s?q=jane+doe+%2B1+213+373+4253", "https://x.example/s");
    /* Path segments and fragments. */
    expect_url(&p, "https://x.example/u/jane.doe@example.com/orders",
               "https://x.example/u/redacted/orders");
    expect_url(&p, "https://x.example/cb#access_token=abc&state=1", "https://x.example/cb");
    expect_url(&p, "https://x.example/p#reviews", "https://x.example/p#reviews");
    /* Userinfo never leaves. */
    expect_url(&p, "https://user:pw@x.example/p", "https://x.example/p");
    /* Sensitive names go whatever the value. */
    expect_url(&p, "https://x.example/?firstName=J&customer%5Bphone%5D=1&password=x&sku=A1",
               "https://x.example/?sku=A1");
    /* Ordinary e-commerce URLs survive byte for byte. */
    expect_url(&p,
               "https://shop.example.com/product/sku-12345?utm_source=tiktok&utm_medium=paid"
               "&utm_content=hotel-deals&ttclid=E.C.P.abc&order=998877&price=19.99#details",
               "https://shop.example.com/product/sku-12345?utm_source=tiktok&utm_medium=paid"
               "&utm_content=hotel-deals&ttclid=E.C.P.abc&order=998877&price=19.99#details");
    /* Found by fuzz_ingest: an email in a parameter name, and in a "scheme" that is not one. */
    expect_url(&p, "https://x.example/?jane@doe.comutm_source=tt&a=1", "https://x.example/?a=1");
    expect_url(&p, "hjane@doe.comttps://x.example/p", "redacted//x.example/p");
    struct sg_url_policy s = {0, false, strip_ttclid, 1};
    expect_url(&s, "https://x.example/?ttclid=E.C.P.a&a=1", "https://x.example/?a=1");
    expect_url(&s, "https://x.example/?TTCLID=E.C.P.a", "https://x.example/");
}

static void sensitive_names(void **state)
{
    (void)state;
    const char *yes[] = {"email", "user_email", "customer[phone]", "tel", "firstName", "last-name",
                         "access_token", "Password", "zip", "street_address"};
    const char *no[] = {"hotel", "utm_content", "sku", "page", "ttclid", "q", "category", "price"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(yes); i++)
        assert_true(sg_scrub_param_name_sensitive(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < SG_ARRAY_SIZE(no); i++)
        assert_false(sg_scrub_param_name_sensitive(no[i], strlen(no[i])));
}

static void scrubbing_reaches_a_fixed_point(void **state)
{
    (void)state;
    /* Found by fuzz_url: removing a card number exposed a phone number next to it. */
    const char *in = "a373-42131111 111252 1111111 11 111 37-31 1111 111252 1111111 11 "
                     "\345\345\345\345\345\345\345\345111 or jae.com";
    unsigned hits, again;
    char *once = text(SG_DET_ALL, in, &hits);
    assert_true(hits > 0);
    char *twice = text(SG_DET_ALL, once, &again);
    assert_int_equal(again, 0);
    assert_string_equal(once, twice);
    free(once);
    free(twice);
}

static void percent_decoding(void **state)
{
    struct sg_buf b;
    (void)state;
    sg_buf_init(&b, 64);
    assert_int_equal(sg_percent_decode("a%40b+c%zz%4", 12, true, &b), 0);
    assert_string_equal(b.data, "a@b c%zz%4");
    sg_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(email_detector),  cmocka_unit_test(phone_detector),
        cmocka_unit_test(card_detector_checks_luhn), cmocka_unit_test(url_scrubbing),
        cmocka_unit_test(sensitive_names), cmocka_unit_test(percent_decoding),
        cmocka_unit_test(scrubbing_reaches_a_fixed_point),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_scrub_thread_release();
    return rc;
}
