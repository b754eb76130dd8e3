/*
 * The fast JSON parser against jansson's (jsonparse.h): on every document
 * it takes, the same values down to the bits; everything jansson refuses it
 * leaves to jansson; and the documents of a real event are taken, so the
 * fast path is the one that runs.
 */
#include "testutil.h"
#include "scrubgate/jsonparse.h"

#include <stdlib.h>
#include <string.h>

/* jansson's answer for text, and whether the fast parser took it and agreed. */
static bool agrees(const char *text, size_t len, bool *taken)
{
    json_error_t err;
    json_t *slow = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    json_t *fast = sg_json_parse_fast(text, len);
    json_t *both = sg_json_load(text, len, &err);
    *taken = fast != NULL;
    bool ok = fast ? slow && sg_json_identical(fast, slow) : true;
    ok = ok && (slow ? both && sg_json_identical(both, slow) : !both);
    json_decref(slow);
    json_decref(fast);
    json_decref(both);
    return ok;
}

#define TAKEN(s)                                                                                   \
    do {                                                                                           \
        bool t_;                                                                                   \
        if (!agrees(s, sizeof(s) - 1, &t_) || !t_)                                                 \
            fail_msg("not taken or not jansson's: %s", s);                                         \
    } while (0)
#define AGREES(s)                                                                                  \
    do {                                                                                           \
        bool t_;                                                                                   \
        if (!agrees(s, sizeof(s) - 1, &t_))                                                        \
            fail_msg("not jansson's: %s", s);                                                      \
    } while (0)

static void documents_of_events_are_taken(void **state)
{
    (void)state;
    TAKEN("[{\"event\":\"Purchase\",\"consent\":\"granted\",\"page\":{\"url\":\"https://shop.example."
          "com/thanks?utm_source=tiktok&ttclid=E.C.P.bench&email=jane%40example.com\"},"
          "\"properties\":{\"value\":19.99,\"currency\":\"USD\",\"contents\":[{\"content_id\":"
          "\"sku-1\",\"quantity\":1,\"price\":19.99,\"content_name\":\"Mug\"}]},\"user\":{"
          "\"email\":\"jane@example.com\",\"phone\":\"+12133734253\"}}]");
    TAKEN(" {\"events\" : [ ] , \"a\":{}}\r\n\t");
    TAKEN("[true,false,null,\"\",0,-0,0.0,-0.0,1e2,1E-2,1.5e+3,123456789012345678]");
    TAKEN("[\"caf\xc3\xa9 \xf0\x9f\x98\x80\",\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\"]");
    TAKEN("[0.1,0.2,0.30000000000000004,19.99,1e22,1e-22,123456789012345,4.35,2.675]");
    TAKEN("[1234567890123456789,-9223372036854775808,9223372036854775807]"); /* strtoll */
    TAKEN("[1.7976931348623157e308,2.2250738585072014e-308,5e-324,1e-400,0.1e1]"); /* strtod */
    TAKEN("[12345678901234567890.5,0.000000000000000000000000000001234]");
    TAKEN("{\"\\u0041\":1,\"A\\u0042\":2,\"k\":\"\\u0041\"}"); /* keys with escapes */
}

static void what_jansson_refuses_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", " ", "1", "\"s\"", "null", "[", "]", "{", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\"}",
        "{\"a\":}", "{a:1}", "[01]", "[-]", "[1.]", "[.5]", "[1e]", "[1e+]", "[+1]", "[0x1]",
        "[1]x", "[1] [2]", "{\"a\":1,\"a\":2}", "[\"\\u0000\"]", "[\"\\ud800\"]", "[\"\\udc00\"]",
        "[\"\\ud800\\u0041\"]", "[\"\\x\"]", "[\"\\u12\"]", "[\"a\nb\"]", "[\"\xc3\"]",
        "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xff\"]", "[tru]",
        "[nul]", "[falsey]", "[1e400]", "[-1e400]", "[9223372036854775808]",
        "[-9223372036854775809]", "\xef\xbb\xbf[]", "[\"unterminated]", "[\"a\\",
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++) {
        bool taken;
        if (!agrees(bad[i], strlen(bad[i]), &taken) || taken)
            fail_msg("taken, or not jansson's: %s", bad[i]);
    }
    /* A huge exponent that a long run of zeros would bring back into range, were its last
     * digits dropped: 0.(99999 zeros)1e1000000 is 10^900000, jansson's overflow. */
    static const char lead[] = "[0.", tail[] = "1e1000000]";
    size_t zeros = 99999, n = strlen(lead) + zeros + strlen(tail);
    char *huge = malloc(n);
    assert_non_null(huge);
    memcpy(huge, lead, strlen(lead));
    memset(huge + strlen(lead), '0', zeros);
    memcpy(huge + strlen(lead) + zeros, tail, strlen(tail));
    bool taken;
    assert_true(agrees(huge, n, &taken));
    assert_false(taken);
    free(huge);
    /* a NUL byte in the text */
    assert_true(agrees("[\"a\0b\"]", 7, &taken));
    assert_false(taken);
}

static void deep_documents_go_to_jansson(void **state)
{
    (void)state;
    char deep[6000];
    for (size_t depth = 100; depth <= 2 * 2048 + 100; depth += 700) {
        if (2 * depth > sizeof(deep))
            break;
        memset(deep, '[', depth);
        memset(deep + depth, ']', depth);
        bool taken;
        assert_true(agrees(deep, 2 * depth, &taken));
        assert_true(taken == (depth <= 128));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(documents_of_events_are_taken),
        cmocka_unit_test(what_jansson_refuses_is_refused),
        cmocka_unit_test(deep_documents_go_to_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
