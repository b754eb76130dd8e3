/*
 * Detectors and the URL scrubber: positives and negatives for every
 * detector, what must survive, and the false-positive rate on a corpus of
 * ordinary e-commerce URLs and text (tests/data/scrub-corpus).
 */
#include "testutil.h"

#include "scrubgate/scrub.h"
#include "scrubgate/decode.h"

#include <stdio.h>
#include <string.h>

static char *text(unsigned dets, const char *in, unsigned *hits)
{
    struct sg_buf out;
    struct sg_scrub_spec spec = {dets, NULL, NULL};
    sg_buf_init(&out, 65536);
    assert_int_equal(sg_scrub_text(&spec, in, &out, hits), 0);
    return sg_buf_detach(&out, NULL);
}

static void expect_text(unsigned dets, const char *in, const char *want, unsigned want_hits)
{
    unsigned hits;
    char *got = text(dets, in, &hits);
    if (strcmp(got, want) != 0 || hits != want_hits)
        fail_msg("\"%s\" -> \"%s\" (%u hits); wanted \"%s\" (%u)", in, got, hits, want,
                 want_hits);
    free(got);
}

#define D(x) (1u << SG_DET_##x)

static void email_detector(void **state)
{
    (void)state;
    expect_text(D(EMAIL), "contact jane.doe+tag@mail.example.co.uk now", "contact [redacted] now", 1);
    expect_text(D(EMAIL), "a@b.io and c@d.org", "[redacted] and [redacted]", 2);
    expect_text(D(EMAIL), "no address @ here, user@localhost", "no address @ here, user@localhost", 0);
}

static void phone_detector(void **state)
{
    (void)state;
    expect_text(D(PHONE), "call +12133734253", "call [redacted]", 1);
    expect_text(D(PHONE), "call (213) 373-4253 today", "call [redacted] today", 1);
    expect_text(D(PHONE), "uk +44 20 7946 0958", "uk [redacted]", 1);
    expect_text(D(PHONE), "213.373.4253", "[redacted]", 1);
    expect_text(D(PHONE), "order 1234567890", "order 1234567890", 0);
    expect_text(D(PHONE), "SKU-123-4567", "SKU-123-4567", 0);
    expect_text(D(PHONE), "2026-11-22", "2026-11-22", 0);
    expect_text(D(PHONE), "price 1299.00", "price 1299.00", 0);
}

static void card_detector(void **state)
{
    (void)state;
    expect_text(D(CARD), "card 4111 1111 1111 1111 ok", "card [redacted] ok", 1);
    expect_text(D(CARD), "4111-1111-1111-1111", "[redacted]", 1);
    expect_text(D(CARD), "5500005555555559", "[redacted]", 1);
    expect_text(D(CARD), "tracking 4111111111111112", "tracking 4111111111111112", 0); /* Luhn */
    expect_text(D(CARD), "12 digits 411111111111", "12 digits 411111111111", 0);
}

static void iban_detector(void **state)
{
    (void)state;
    expect_text(D(IBAN), "IBAN DE89 3704 0044 0532 0130 00.", "IBAN [redacted].", 1);
    expect_text(D(IBAN), "GB82WEST12345698765432", "[redacted]", 1);
    expect_text(D(IBAN), "FR1420041010050500013M02606", "[redacted]", 1);
    /* Right shape, wrong check digits (mod 97): kept. */
    expect_text(D(IBAN), "DE88370400440532013000", "DE88370400440532013000", 0);
    expect_text(D(IBAN), "SKU AB12CDEFGHIJKLMNOP", "SKU AB12CDEFGHIJKLMNOP", 0);
}

static void ssn_detector(void **state)
{
    (void)state;
    expect_text(D(SSN), "ssn 078-05-1120", "ssn [redacted]", 1);
    expect_text(D(SSN), "ssn 078 05 1120", "ssn [redacted]", 1);
    expect_text(D(SSN), "000-12-3456 666-12-3456 900-12-3456", "000-12-3456 666-12-3456 900-12-3456", 0);
    expect_text(D(SSN), "123-00-4567 123-45-0000 078-05/1120", "123-00-4567 123-45-0000 078-05/1120", 0);
    expect_text(D(SSN), "isbn 978-3-16-148410-0", "isbn 978-3-16-148410-0", 0);
}

static void ip_detector(void **state)
{
    (void)state;
    expect_text(D(IP), "from 203.0.113.77:443", "from [redacted]:443", 1);
    expect_text(D(IP), "client 2001:db8::8a2e:370:7334 done", "client [redacted] done", 1);
    expect_text(D(IP), "v6 ::ffff:192.0.2.1", "v6 [redacted]", 1);
    expect_text(D(IP), "version 1.2.3 and 256.1.1.1 and 10.0.0", "version 1.2.3 and 256.1.1.1 and 10.0.0", 0);
    expect_text(D(IP), "at 12:30:45 or a:b", "at 12:30:45 or a:b", 0);
}

static void token_detector(void **state)
{
    (void)state;
    expect_text(D(TOKEN),
                "t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c;",
                "t=[redacted];", 1);
    expect_text(D(TOKEN), "Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456",
                "Authorization: [redacted]", 1);
    expect_text(D(TOKEN), "bearer of good news", "bearer of good news", 0);
    expect_text(D(TOKEN), "eyJ short", "eyJ short", 0);
}

static void specific_detectors_run_before_broad_ones(void **state)
{
    (void)state;
    /* The phone pattern alone would take "3704 0044 0532" and leave the rest of the IBAN. */
    expect_text(SG_DET_ALL, "IBAN DE89 3704 0044 0532 0130 00", "IBAN [redacted]", 1);
}

static void site_pattern(void **state)
{
    char err[200];
    unsigned hits;
    struct sg_buf out;
    (void)state;
    assert_null(sg_pattern_new("(unclosed", err, sizeof(err)));
    assert_non_null(strstr(err, "offset"));
    struct sg_pattern *p = sg_pattern_new("\\bCUST-\\d{6}\\b", err, sizeof(err));
    assert_non_null(p);
    struct sg_scrub_spec spec = {0, p, NULL};
    sg_buf_init(&out, 4096);
    assert_int_equal(sg_scrub_text(&spec, "loyalty CUST-123456 ok", &out, &hits), 0);
    assert_string_equal(out.data, "loyalty [redacted] ok");
    sg_pattern_free(p);
    /* Catastrophic backtracking hits the match limit: an error, never a pass. */
    p = sg_pattern_new("^(a+)+$", err, sizeof(err));
    char evil[64];
    memset(evil, 'a', 40);
    strcpy(evil + 40, "!");
    spec.extra = p;
    assert_int_equal(sg_scrub_text(&spec, evil, &out, &hits), -1);
    assert_int_equal(sg_scrub_detect(&spec, evil, strlen(evil)), -1);
    sg_pattern_free(p);
    sg_buf_release(&out);
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
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\" -> \"%s\"; wanted \"%s\"", in, got, want);
    assert_int_equal(hits > 0, strcmp(in, want) != 0);
    free(got);
}

static const char *const strip_ttclid[] = {"ttclid"};
static const struct sg_url_policy default_urls = {{SG_DET_ALL, NULL, NULL}, true, NULL, 0};

static void url_scrubbing(void **state)
{
    (void)state;
    const struct sg_url_policy *p = &default_urls;
    expect_url(p, "https://shop.example.com/p?email=a%40b.com&utm_source=tt",
               "https://shop.example.com/p?utm_source=tt");
    expect_url(p, "https://x.example/s?q=jane%40doe.com&page=2", "https://x.example/s?page=2");
    expect_url(p, "https://x.example/s?q=jane+doe+%2B1+213+373+4253", "https://x.example/s");
    expect_url(p, "https://x.example/u/jane.doe@example.com/orders", "https://x.example/u/redacted/orders");
    expect_url(p, "https://x.example/u/jane.doe%40example.com", "https://x.example/u/redacted");
    expect_url(p, "https://x.example/cb#access_token=abc&state=1", "https://x.example/cb");
    expect_url(p, "https://x.example/p#reviews", "https://x.example/p#reviews");
    expect_url(p, "https://user:pw@x.example/p", "https://x.example/p");
    expect_url(p, "https://x.example/?firstName=J&customer%5Bphone%5D=1&password=x&sku=A1",
               "https://x.example/?sku=A1");
    expect_url(p, "https://x.example/?ref=DE89370400440532013000&a=1", "https://x.example/?a=1");
    expect_url(p, "https://x.example/?client=203.0.113.9&a=1", "https://x.example/?a=1");
    /* Found by fuzz_ingest: an email in a parameter name, and in a "scheme" that is not one. */
    expect_url(p, "https://x.example/?jane@doe.comutm_source=tt&a=1", "https://x.example/?a=1");
    expect_url(p, "hjane@doe.comttps://x.example/p", "redacted//x.example/p");
    struct sg_url_policy s = {{0, NULL, NULL}, false, strip_ttclid, 1};
    expect_url(&s, "https://x.example/?ttclid=E.C.P.a&a=1", "https://x.example/?a=1");
    expect_url(&s, "https://x.example/?TTCLID=E.C.P.a", "https://x.example/");
    /* a click id anywhere in the URL: a hash route, a nested redirect, other spellings */
    expect_url(&s, "https://x.example/t?x=1#/?ttclid=E.C.P.a", "https://x.example/t?x=1");
    expect_url(&s, "https://x.example/?next=https%3A%2F%2Fy.example%2F%3Fttclid%3DE.C.P.a&a=1",
               "https://x.example/?a=1");
    expect_url(&s, "https://x.example/?a=1;ttclid=E.C.P.a&b=2", "https://x.example/?b=2");
    expect_url(&s, "https://x.example/?a=1&amp;ttclid=E.C.P.a", "https://x.example/?a=1");
    expect_url(&s, "https://x.example/?_ttclid=E&ttclid[]=E&ttclid%20=E&b=2", "https://x.example/?b=2");
    expect_url(&s, "https://x.example/?%EF%BD%94tclid=E&b=2", "https://x.example/?b=2"); /* ｔ */
    expect_url(&s, "https://x.example/p/ttclid=E.C.P.a/q", "https://x.example/p/redacted/q");
    expect_url(&s, "https://x.example/?xttclid=1&ttclid2=1", "https://x.example/?xttclid=1&ttclid2=1");
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

static void bots(void **state)
{
    (void)state;
    assert_int_equal(sg_scrub_is_bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"), 1);
    assert_int_equal(sg_scrub_is_bot("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0"), 1);
    assert_int_equal(sg_scrub_is_bot("curl/7.88.1"), 1);
    assert_int_equal(sg_scrub_is_bot("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"), 0);
    assert_int_equal(sg_scrub_is_bot("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"), 0);
}

/* Real phone and crawler user agents: tokens decide, not substrings. */
static void bots_by_token(void **state)
{
    static const char *const phones[] = {
        "Mozilla/5.0 (Linux; Android 12; CUBOT P80) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; Cubot_X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/96.0.4664.104 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; KingKong Power) AppleWebKit/537.36 Chrome/118.0 Mobile",
        "Mozilla/5.0 (Linux; Android 11; Robotics Lab Tablet) AppleWebKit/537.36 Chrome/110.0",
        "Mozilla/5.0 (Linux; U; Android 9; Botswana-ROM; SM-J730F) AppleWebKit/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    };
    static const char *const crawlers[] = {
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
        "+https://openai.com/gptbot)",
        "AdsBot-Google (+http://www.google.com/adsbot.html)",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        "python-requests/2.31.0",
        "Go-http-client/2.0",
        "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    };
    (void)state;
    for (size_t i = 0; i < SG_ARRAY_SIZE(phones); i++)
        if (sg_scrub_is_bot(phones[i]) != 0)
            fail_msg("a phone taken for a bot: %s", phones[i]);
    for (size_t i = 0; i < SG_ARRAY_SIZE(crawlers); i++)
        if (sg_scrub_is_bot(crawlers[i]) != 1)
            fail_msg("a crawler taken for a person: %s", crawlers[i]);
}

/*
 * The misses and false positives an outside measurement found, one by one:
 * each must now be caught, or left alone.
 */
static void outside_findings(void **state)
{
    (void)state;
    static const char *const phones[] = {
        "+44 7911 123456", "06 12 34 56 78", "+49 151 23456789", "+91 98765 43210",
        "+55 11 98765-4321", "(11) 98765-4321", "+90 532 123 45 67", "0044 7911 123456",
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(phones); i++) {
        char in[64], want[64];
        snprintf(in, sizeof(in), "call %s now", phones[i]);
        snprintf(want, sizeof(want), "call [redacted] now");
        expect_text(SG_DET_ALL, in, want, 1);
    }
    /* ordinary strings: no three groups cut out of a longer run */
    expect_text(SG_DET_ALL, "AL47 212A 1009 0000 0002 3569 8741", "AL47 212A 1009 0000 0002 3569 8741", 0);
    expect_text(SG_DET_ALL, "4012-8888-8888-1882", "4012-8888-8888-1882", 0);
    expect_text(SG_DET_ALL, "Tracking 9400 1000 0000 0000 0000 00", "Tracking 9400 1000 0000 0000 0000 00", 0);
    /* a checksum that fails on a too-long candidate: a shorter one is tried */
    expect_text(SG_DET_ALL, "IBAN: DE89370400440532013000 BIC: COBADEFFXXX",
                "IBAN: [redacted] BIC: COBADEFFXXX", 1);
    expect_text(SG_DET_ALL, "card 4111 1111 1111 1111 123", "card [redacted] 123", 1);
    expect_text(SG_DET_ALL, "card 4111111111111111 cvv 123", "card [redacted] cvv 123", 1);
    /* boundaries */
    expect_text(SG_DET_ALL, "from 203.0.113.7.", "from [redacted].", 1);
    expect_text(SG_DET_ALL, "from 2001:db8::1.", "from [redacted].", 1);
    expect_text(SG_DET_ALL, "order-4111111111111111", "order-[redacted]", 1);
    expect_text(SG_DET_ALL, "ssn 078.05.1120", "ssn [redacted]", 1);
    expect_text(SG_DET_ALL, "SSN: 078051120", "SSN: [redacted]", 1);
    expect_text(SG_DET_ALL, "itin 912-70-1234", "itin [redacted]", 1);
    expect_text(SG_DET_ALL, "de89 3704 0044 0532 0130 00", "[redacted]", 1);
    expect_text(SG_DET_ALL, "DE89-3704-0044-0532-0130-00", "[redacted]", 1);
    expect_text(SG_DET_ALL, "mail info@bäckerei-müller.de", "mail [redacted]", 1);
    /* encodings */
    expect_text(SG_DET_ALL, "mail jane%40example.com now", "mail [redacted] now", 1);
    expect_text(SG_DET_ALL, "u=amFuZUBleGFtcGxlLmNvbQ", "[redacted]", 1);
    expect_url(&default_urls, "https://x.example/?u=amFuZUBleGFtcGxlLmNvbQ&a=1", "https://x.example/?a=1");
    expect_url(&default_urls, "https://x.example/?u=amFuZUBleGFtcGxlLmNvbQ==&a=1", "https://x.example/?a=1");
    expect_url(&default_urls, "https://x.example/?r=jane%2540example.com&a=1", "https://x.example/?a=1");
    expect_url(&default_urls, "https://x.example/?r=jane%252540example.com&a=1", "https://x.example/?a=1");
    expect_url(&default_urls, "https://x.example/a%252540b.io/x", "https://x.example/redacted/x");
    /* secrets by name */
    expect_url(&default_urls, "https://x.example/cb?code=4/0AfJohXk&state=af0ifjsldkj",
               "https://x.example/cb?state=af0ifjsldkj");
    expect_url(&default_urls, "https://x.example/cart;jsessionid=0AB1C2D3E4F5?a=1",
               "https://x.example/cart?a=1");
    expect_url(&default_urls, "https://x.example/p;v=2;jsessionid=0AB1C2/q", "https://x.example/p;v=2/q");
    expect_url(&default_urls, "https://x.example/?PHPSESSID=9f8e7d6c&api_key=sk_live_123&x-api-key=1&a=1",
               "https://x.example/?a=1");
    /* ordinary URLs survive the decoding */
    expect_url(&default_urls, "https://x.example/p?discount_code=SUMMER10&variant=44012345678901",
               "https://x.example/p?discount_code=SUMMER10&variant=44012345678901");
}

/* What an adversarial review found after the first round: each leak, then each false positive. */
static void adversarial_findings(void **state)
{
    (void)state;
    /* a number after the phone, words near it, separators people type */
    expect_text(SG_DET_ALL, "Call 415-555-2671 3 times", "Call [redacted] 3 times", 1);
    expect_text(SG_DET_ALL, "Call +44 20 7930 4832 24/7", "Call [redacted]", 1); /* "+", 15 digits */
    expect_text(SG_DET_ALL, "Call 020 7930 4832 24/7", "Call [redacted] 24/7", 1);
    expect_text(SG_DET_ALL, "Questions about your order? Call 415 555 2671",
                "Questions about your order? Call [redacted]", 1);
    expect_text(SG_DET_ALL, "Order placed from 203.0.113.5", "Order placed from [redacted]", 1);
    expect_text(SG_DET_ALL, "Item 3: ship to tel 0612345678", "Item 3: ship to tel [redacted]", 1);
    expect_text(SG_DET_ALL, "Call 415  555  2671 now", "Call [redacted] now", 1);
    expect_text(SG_DET_ALL, "415-555-2671 (mobile)", "[redacted] (mobile)", 1);
    expect_text(SG_DET_ALL, "Tel. +1 202 456 1111 / Fax +1 202 456 11112",
                "Tel. [redacted] / Fax [redacted]", 2);
    expect_text(SG_DET_ALL, "wa.me/14155552671", "wa.me/[redacted]", 1);
    expect_text(SG_DET_ALL, "card 4111.1111.1111.1111", "card [redacted]", 1);
    expect_text(SG_DET_ALL, "order_id: 4111_1111_1111_1111", "order_id: [redacted]", 1);
    expect_text(SG_DET_ALL, "card 4111-1111-1111-1111-0", "card [redacted]-0", 1);
    expect_text(SG_DET_ALL, "SSN 123/45/6789", "SSN [redacted]", 1);
    expect_text(SG_DET_ALL, "SSN is 123456789", "SSN is [redacted]", 1);
    expect_text(SG_DET_ALL, "IBANDE89370400440532013000", "IBAN[redacted]", 1);
    expect_text(SG_DET_ALL, "ES-58-0049-0290-3424-1352-8341 DE 89 3704 0044 0532 0130 00",
                "[redacted] [redacted]", 2);
    expect_text(SG_DET_ALL, "o'brien@example.com", "[redacted]", 1);
    /* look-alike characters: the folded text replaces the original when it held data */
    expect_text(SG_DET_ALL, "call 415\xc2\xa0" "555\xc2\xa0" "2671", "call [redacted]", 1);
    expect_text(SG_DET_ALL, "call 415\xe2\x80\x93" "555\xe2\x80\x93" "2671", "call [redacted]", 1);
    expect_text(SG_DET_ALL, "\xef\xbc\x90\xef\xbc\x99\xef\xbc\x90-\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93"
                            "\xef\xbc\x94-\xef\xbc\x95\xef\xbc\x96\xef\xbc\x97\xef\xbc\x98",
                "[redacted]", 1); /* ０９０-１２３４-５６７８ */
    expect_text(SG_DET_ALL, "jane\xef\xbc\xa0" "example.com", "[redacted]", 1); /* jane＠example.com */
    expect_text(SG_DET_ALL, "jane@example.\xe2\x80\x8b" "com", "[redacted]", 1);
    expect_text(SG_DET_ALL, "Ｍｕｇ ３５０ ｍｌ", "Ｍｕｇ ３５０ ｍｌ", 0); /* nothing found: kept as written */
    /* escapes and encodings */
    expect_text(SG_DET_ALL, "mail jane&#64;example.com", "mail [redacted]", 1);
    expect_text(SG_DET_ALL, "mail jane&commat;example.com", "mail [redacted]", 1);
    expect_text(SG_DET_ALL, "mail jane\\u0040example.com", "mail [redacted]", 1);
    expect_text(SG_DET_ALL, "user-amFuZUBleGFtcGxlLmNvbQ", "[redacted]", 1);
    expect_text(SG_DET_ALL, "agBhAG4AZQBAAGUAeABhAG0AcABsAGUALgBjAG8AbQA=", "[redacted]", 1);
    expect_text(SG_DET_ALL, "YW1GdVpVQmxlR0Z0Y0d4bExtTnZiUT09", "[redacted]", 1); /* twice */
    expect_text(SG_DET_ALL, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0", "[redacted]", 1);
    expect_url(&default_urls, "https://s.example/p?p=+447911123456&a=1", "https://s.example/p?a=1");
    expect_url(&default_urls, "https://s.example/p?ref=amFuZUBleGFt%0AcGxlLmNvbQ%3D%3D&a=1",
               "https://s.example/p?a=1");
    expect_url(&default_urls, "https://s.example/p?birth_date=1990-01-01&authuser=j&a=1",
               "https://s.example/p?a=1");
    /* false positives */
    expect_text(SG_DET_ALL, "Chrome 131.0.6778.135", "Chrome 131.0.6778.135", 0);
    expect_text(SG_DET_ALL, "16.0.17126.20132", "16.0.17126.20132", 0);
    expect_text(SG_DET_ALL, "Chrome/120.0.0.0", "Chrome/120.0.0.0", 0);
    expect_text(SG_DET_ALL, "sizes 38 40 42 44 46", "sizes 38 40 42 44 46", 0);
    expect_text(SG_DET_ALL, "2024-01-01 2024-01-02 2024-01-03 2024-01-04 2024-01-05",
                "2024-01-01 2024-01-02 2024-01-03 2024-01-04 2024-01-05", 0);
    expect_text(SG_DET_ALL, "USPS 9400 4759 3042 4025 6041 05", "USPS 9400 4759 3042 4025 6041 05", 0);
    expect_text(SG_DET_ALL, "Amazon 053-6457516-8211567", "Amazon 053-6457516-8211567", 0);
    expect_text(SG_DET_ALL, "ISBN 0-7503-0197-X", "ISBN 0-7503-0197-X", 0);
    expect_text(SG_DET_ALL, "BA59 1290 0794 0102 8494", "BA59 1290 0794 0102 8494", 0);
    expect_text(SG_DET_ALL, "NL91 ABNA 0417 1643 01", "NL91 ABNA 0417 1643 01", 0);
    expect_url(&default_urls, "https://s.example/s?q=ISBN-13%3A+9781492052203",
               "https://s.example/s?q=ISBN-13%3A+9781492052203");
    assert_int_equal(sg_scrub_is_bot("Nokia6300/2.0 (05.00) Profile/MIDP-2.0 Configuration/CLDC-1.1 "
                                     "UCWEB/2.0 (Java; U; MIDP-2.0; en-US; nokia6300) U2/1.0.0 "
                                     "UCBrowser/8.9.0.251 U2/1.0.0 Mobile"), 0);
    assert_int_equal(sg_scrub_is_bot("Mozilla/5.0 (compatible; Google-InspectionTool/1.0)"), 1);
    assert_int_equal(sg_scrub_is_bot("PostmanRuntime/7.36.0"), 1);
}

/*
 * Input built against the phone pre-filter: every "(" starts a candidate. The
 * pre-filter's runs are bounded (16 groups), so this field is scrubbed in
 * linear time (tests/bench/scrub_cost.sh reports the time; here, that it
 * completes and is scrubbed, not refused).
 */
static void adversarial_parentheses(void **state)
{
    struct sg_scrub_spec spec = {SG_DET_ALL, NULL, NULL};
    struct sg_buf out;
    unsigned hits;
    (void)state;
    char *in = sg_xmalloc(SG_SCRUB_MAX_TEXT + 1);
    for (size_t i = 0; i < SG_SCRUB_MAX_TEXT; i++)
        in[i] = "(12)-"[i % 5];
    in[SG_SCRUB_MAX_TEXT] = '\0';
    sg_buf_init(&out, 4 * SG_SCRUB_MAX_TEXT);
    assert_int_equal(sg_scrub_text(&spec, in, &out, &hits), 0);
    sg_buf_release(&out);
    free(in);
}

/*
 * Bytes that are not UTF-8 (percent-decoded URL parts, raw headers) are
 * matched safely (PCRE2_MATCH_INVALID_UTF): the valid parts are still
 * scrubbed, nothing crashes.
 */
static void invalid_utf8(void **state)
{
    (void)state;
    expect_text(SG_DET_ALL, "\xff\xfe jane@example.com \xc3", "\xff\xfe [redacted] \xc3", 1);
    expect_text(SG_DET_ALL, "\xe2\x82 call +44 7911 123456 \xf0\x9f", "\xe2\x82 call [redacted] \xf0\x9f", 1);
    expect_text(SG_DET_ALL, "\xc3\xa4\xc3jane@example.com", "\xc3\xa4\xc3[redacted]", 1);
    expect_url(&default_urls, "https://x.example/?q=%FF%FEjane%40example.com&a=1", "https://x.example/?a=1");
    assert_int_equal(sg_scrub_is_bot("\xff\xfeGooglebot/2.1 \xc3"), 1);
}

static void scrubbing_reaches_a_fixed_point(void **state)
{
    (void)state;
    /* Found by fuzz_url: removing a card number exposed a phone number next to it. */
    const char *in = "a373-42131111 111252 1111111 11 111 37-31 1111 111252 1111111 11 "
                     "\345\345\345\345\345\345\345\345111 or jae.com";
    const char *inputs[] = {in, "4111 1111 1111 1111 213 373 4253 a@b.co 203.0.113.1",
                            "DE89 3704 0044 0532 0130 00 078-05-1120"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(inputs); i++) {
        unsigned hits, again;
        char *once = text(SG_DET_ALL, inputs[i], &hits);
        char *twice = text(SG_DET_ALL, once, &again);
        assert_int_equal(again, 0);
        assert_string_equal(once, twice);
        free(once);
        free(twice);
    }
}

/*
 * The corpus: each line of ordinary-*.txt must come through unchanged (a
 * change is a false positive); each line of pii.txt must change (a line that
 * does not is a miss). The rates are printed for the record; the bounds
 * below are what the suite holds the detectors to.
 */
static void run_corpus(const char *file, bool expect_change, unsigned *lines, unsigned *wrong)
{
    char path[256], line[4096];
    snprintf(path, sizeof(path), "tests/data/scrub-corpus/%s", file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        unsigned hits;
        char *out = !strncmp(line, "http", 4) ? url(&default_urls, line, &hits)
                                              : text(SG_DET_ALL, line, &hits);
        bool changed = strcmp(out, line) != 0;
        (*lines)++;
        if (changed != expect_change) {
            (*wrong)++;
            print_message("  %s: %s\n", expect_change ? "missed" : "false positive", line);
        }
        free(out);
    }
    fclose(f);
}

static void corpus_rates(void **state)
{
    unsigned ok_lines = 0, fp = 0, pii_lines = 0, missed = 0;
    (void)state;
    run_corpus("ordinary-urls.txt", false, &ok_lines, &fp);
    run_corpus("ordinary-text.txt", false, &ok_lines, &fp);
    run_corpus("pii.txt", true, &pii_lines, &missed);
    print_message("scrub corpus: %u/%u ordinary lines changed (false positives, %.1f%%), "
                  "%u/%u personal-data lines missed\n",
                  fp, ok_lines, 100.0 * fp / ok_lines, missed, pii_lines);
    assert_true(ok_lines >= 80 && pii_lines >= 20);
    assert_int_equal(missed, 0);
    /* Today: 2 of 90, both parameters removed by name whatever the value (session,
     * postcode). A change that adds false positives fails here; test_pii_corpus measures
     * the same on the larger corpus built from public test data. */
    assert_true(fp <= 2);
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

/*
 * What config validation promises (max_field_bytes <= SG_SCRUB_MAX_TEXT): a
 * field that long, made of the hits that grow text the most, is scrubbed and
 * not refused. Twice as long is more than the scratch holds and is refused
 * (-1: the event is not sent), never passed through.
 */
static void longest_allowed_field_is_scrubbed(void **state)
{
    struct sg_scrub_spec spec = {SG_DET_ALL, NULL, NULL};
    struct sg_buf out;
    unsigned hits;
    (void)state;
    size_t n = SG_SCRUB_MAX_TEXT / 4;
    char *in = sg_xmalloc(2 * SG_SCRUB_MAX_TEXT + 1);
    for (size_t i = 0; i < 2 * n; i++)
        memcpy(in + 4 * i, "::1 ", 4);
    in[4 * n] = '\0';
    sg_buf_init(&out, 0);
    assert_int_equal(sg_scrub_text(&spec, in, &out, &hits), 0);
    assert_int_equal(hits, n);
    assert_int_equal(out.len, n * 11);
    assert_null(strstr(out.data, "::1"));
    in[4 * n] = ':';
    in[8 * n] = '\0';
    assert_int_equal(sg_scrub_text(&spec, in, &out, &hits), -1);
    sg_buf_release(&out);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(email_detector),
        cmocka_unit_test(phone_detector),
        cmocka_unit_test(card_detector),
        cmocka_unit_test(iban_detector),
        cmocka_unit_test(ssn_detector),
        cmocka_unit_test(ip_detector),
        cmocka_unit_test(token_detector),
        cmocka_unit_test(specific_detectors_run_before_broad_ones),
        cmocka_unit_test(site_pattern),
        cmocka_unit_test(url_scrubbing),
        cmocka_unit_test(sensitive_names),
        cmocka_unit_test(bots),
        cmocka_unit_test(bots_by_token),
        cmocka_unit_test(outside_findings),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(adversarial_findings),
        cmocka_unit_test(adversarial_parentheses),
        cmocka_unit_test(scrubbing_reaches_a_fixed_point),
        cmocka_unit_test(corpus_rates),
        cmocka_unit_test(percent_decoding),
        cmocka_unit_test(longest_allowed_field_is_scrubbed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_scrub_thread_release();
    return rc;
}
