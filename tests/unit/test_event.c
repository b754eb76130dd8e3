/* Normalizing one input event: timestamps, fields, limits, click ids. */
#include "testutil.h"

#include "scrubgate/arena.h"
#include "scrubgate/event.h"
#include "scrubgate/scrub.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static struct sg_limits limits;

static const char *phone_region; /* the site's, for the tests that set one */

static int normalize(const char *json, struct sg_request_ctx *ctx, struct sg_event *ev, char *err)
{
    json_t *in = json_loads(json, 0, NULL);
    assert_non_null(in);
    sg_event_init(ev);
    int rc = sg_event_from_json(ev, in, ctx, phone_region, &limits, err, 256);
    json_decref(in); /* the event keeps only copies */
    ev->consent_field = NULL;
    return rc;
}

static void rfc3339(void **state)
{
    int64_t t;
    (void)state;
    assert_int_equal(sg_parse_rfc3339("2025-11-21T04:53:20Z", &t), 0);
    assert_int_equal(t, 1763700800);
    assert_int_equal(sg_parse_rfc3339("2025-11-21T06:53:20.123+02:00", &t), 0);
    assert_int_equal(t, 1763700800);
    assert_int_equal(sg_parse_rfc3339("1970-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(sg_parse_rfc3339("2025-11-21", &t), -1);
    assert_int_equal(sg_parse_rfc3339("2024-02-30T00:00:00Z", &t), -1); /* no such day */
    assert_int_equal(sg_parse_rfc3339("2023-02-29T00:00:00Z", &t), -1);
    assert_int_equal(sg_parse_rfc3339("2024-02-29T00:00:00Z", &t), 0); /* leap year */
    assert_int_equal(sg_parse_rfc3339("2025-04-31T00:00:00Z", &t), -1);
    assert_int_equal(sg_parse_rfc3339("2025-13-21T00:00:00Z", &t), -1);
    assert_int_equal(sg_parse_rfc3339("2025-11-21T00:00:00", &t), -1);
    assert_int_equal(sg_parse_rfc3339("2025-11-21T00:00:00Zjunk", &t), -1);
}

static void timestamps_and_ids(void **state)
{
    struct sg_request_ctx ctx = {.now = 1763700000};
    struct sg_event ev;
    char err[256];
    (void)state;
    assert_int_equal(normalize("{\"event\":\"Lead\",\"timestamp\":1763699000123}", &ctx, &ev, err), 0);
    assert_int_equal(ev.event_time, 1763699000);
    assert_true(ev.event_id_generated);
    assert_int_equal(strlen(ev.event_id), 32);
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"event_id\":42}", &ctx, &ev, err), 0);
    assert_string_equal(ev.event_id, "42");
    assert_int_equal(ev.event_time, 1763700000); /* absent means now */
    sg_event_release(&ev);
    /* A little clock skew is clamped to now; the future is refused. */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"timestamp\":1763700100}", &ctx, &ev, err), 0);
    assert_int_equal(ev.event_time, 1763700000);
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"timestamp\":1763709000}", &ctx, &ev, err), -1);
    assert_string_equal(err, "timestamp: in the future");
    sg_event_release(&ev);
}

static void click_id_precedence(void **state)
{
    struct sg_request_ctx ctx = {.now = 1763700000, .cookie_ttclid = "cookie", .cookie_ttp = "tp"};
    struct sg_event ev;
    char err[256];
    (void)state;
    assert_int_equal(normalize("{\"event\":\"Lead\",\"page\":{\"url\":\"https://x/?a=1&ttclid=E.C.P.u%2B1\"}}", &ctx, &ev, err), 0);
    assert_string_equal(ev.val[SG_F_USER_TTCLID], "E.C.P.u+1"); /* %2B is a plus */
    assert_string_equal(ev.val[SG_F_USER_TTP], "tp");
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"ttclid\":\"ev\"},\"page\":{\"url\":\"https://x/?ttclid=u\"}}", &ctx, &ev, err), 0);
    assert_string_equal(ev.val[SG_F_USER_TTCLID], "ev");
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\"}", &ctx, &ev, err), 0);
    assert_string_equal(ev.val[SG_F_USER_TTCLID], "cookie");
    sg_event_release(&ev);
}

static void body_ip_needs_trust(void **state)
{
    struct sg_request_ctx ctx = {.now = 1763700000, .ip = "127.0.0.1", .user_agent = "conn-ua"};
    struct sg_event ev;
    char err[256];
    (void)state;
    const char *j = "{\"event\":\"Lead\",\"ip\":\"::ffff:198.51.100.4\",\"user_agent\":\"body-ua\"}";
    assert_int_equal(normalize(j, &ctx, &ev, err), 0);
    assert_string_equal(ev.val[SG_F_USER_IP], "127.0.0.1");
    assert_string_equal(ev.val[SG_F_USER_USER_AGENT], "conn-ua");
    sg_event_release(&ev);
    ctx.trusted_server = true;
    assert_int_equal(normalize(j, &ctx, &ev, err), 0);
    assert_string_equal(ev.val[SG_F_USER_IP], "198.51.100.4"); /* canonical IPv4 */
    assert_string_equal(ev.val[SG_F_USER_USER_AGENT], "body-ua");
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"ip\":\"not-an-ip\"}", &ctx, &ev, err), -1);
    sg_event_release(&ev);
}

static void errors_name_the_field_not_the_value(void **state)
{
    struct sg_request_ctx ctx = {.now = 1763700000};
    struct sg_event ev;
    char err[256];
    (void)state;
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"email\":{\"a\":\"secret@x.com\"}}}", &ctx, &ev, err), -1);
    assert_string_equal(err, "user.email: must be a string or an array of up to 5 strings");
    sg_event_release(&ev);
    char big[5000];
    snprintf(big, sizeof(big), "{\"event\":\"Lead\",\"page\":{\"url\":\"%04000d\"}}", 7);
    assert_int_equal(normalize(big, &ctx, &ev, err), -1);
    assert_string_equal(err, "page.url: longer than the field limit");
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"properties\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}}", &ctx, &ev, err), -1);
    sg_event_release(&ev);
}

/* email, phone and external_id: a string or an array of up to 5 values of one type. */
static void identifier_arrays(void **state)
{
    struct sg_request_ctx ctx = {.now = 1763700000};
    struct sg_event ev;
    char err[256];
    (void)state;
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"phone\":[\"+1 1\",\"2\",\"\",\"3\",\"4\"],"
                               "\"email\":[\"a@x.io\"],\"external_id\":[7,8]}}", &ctx, &ev, err), 0);
    assert_int_equal(sg_event_count(&ev, SG_F_USER_PHONE), 4); /* the empty string is no value */
    assert_string_equal(ev.val[SG_F_USER_PHONE], "+1 1");
    assert_string_equal(ev.more[SG_F_USER_PHONE][2], "4");
    assert_int_equal(sg_event_count(&ev, SG_F_USER_EMAIL), 1);
    assert_int_equal(sg_event_count(&ev, SG_F_USER_EXTERNAL_ID), 2);
    assert_string_equal(ev.more[SG_F_USER_EXTERNAL_ID][0], "8");
    sg_event_release(&ev);
    /* phone wins over phone_number, whole: no value of the other is kept */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"phone_number\":[\"1\",\"2\"],\"phone\":\"3\"}}",
                               &ctx, &ev, err), 0);
    assert_int_equal(sg_event_count(&ev, SG_F_USER_PHONE), 1);
    assert_string_equal(ev.val[SG_F_USER_PHONE], "3");
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"email\":[]}}", &ctx, &ev, err), 0);
    assert_int_equal(sg_event_count(&ev, SG_F_USER_EMAIL), 0);
    sg_event_release(&ev);
    /* six values: refused for this event, the reason names the field only */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"email\":[\"a@x.io\",\"b@x.io\",\"c@x.io\","
                               "\"d@x.io\",\"e@x.io\",\"f@x.io\"]}}", &ctx, &ev, err), -1);
    assert_string_equal(err, "user.email: more than 5 values");
    sg_event_release(&ev);
    /* mixed types, nested arrays, null and numbers where only strings go: refused */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"external_id\":[\"a\",1]}}", &ctx, &ev, err), -1);
    assert_string_equal(err, "user.external_id: an array must hold only strings or only integers");
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"phone\":[\"+12025550100\",12025550101]}}", &ctx, &ev, err), -1);
    assert_string_equal(err, "user.phone: an array must hold only strings");
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"email\":[[\"a@x.io\"]]}}", &ctx, &ev, err), -1);
    assert_null(strstr(err, "a@x.io"));
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"email\":[null]}}", &ctx, &ev, err), -1);
    sg_event_release(&ev);
    /* a replaced multi value leaves no stale element behind */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"user\":{\"email\":[\"a@x.io\",\"b@x.io\"]}}", &ctx, &ev, err), 0);
    sg_event_set(&ev, SG_F_USER_EMAIL, sg_xstrdup("c"));
    assert_int_equal(sg_event_count(&ev, SG_F_USER_EMAIL), 1);
    assert_null(ev.more[SG_F_USER_EMAIL][0]);
    sg_event_release(&ev);
}

static void limited_data_use_from_event(void **state)
{
    struct sg_request_ctx ctx = {.now = 1763700000};
    struct sg_event ev;
    char err[256];
    (void)state;
    assert_int_equal(normalize("{\"event\":\"Lead\",\"limited_data_use\":true}", &ctx, &ev, err), 0);
    assert_true(ev.ldu);
    assert_true(ev.ldu_requested);
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"limited_data_use\":false}", &ctx, &ev, err), 0);
    assert_false(ev.ldu);
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"limited_data_use\":\"yes\"}", &ctx, &ev, err), -1);
    assert_string_equal(err, "limited_data_use: must be true or false");
    sg_event_release(&ev);
}

static void identifiers_cannot_carry_personal_data(void **state)
{
    struct sg_request_ctx ctx = {.now = 1763700000, .cookie_ttp = "bad value@x.io"};
    struct sg_event ev;
    char err[256];
    (void)state;
    /* Found by fuzz_ingest: event names and ids leave as they are. */
    assert_int_equal(normalize("{\"event\":\"Pur jane@doe.com\"}", &ctx, &ev, err), -1);
    assert_non_null(strstr(err, "event: looks like personal data"));
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"event_id\":\"order-jane@doe.com\"}", &ctx, &ev, err), -1);
    assert_non_null(strstr(err, "event_id: looks like personal data"));
    sg_event_release(&ev);
    /* Names with personal data in them are refused, and the reason does not repeat them. */
    static const char *const names[] = {"14155559931", "415 555 9931", "4111111111111111",
                                        "198.51.100.77", "Lead 078-05-1120",
                                        "DE89370400440532013000", "Lead 07911 123456"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(names); i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"event\":\"%s\"}", names[i]);
        assert_int_equal(normalize(json, &ctx, &ev, err), -1);
        assert_non_null(strstr(err, "event: looks like personal data"));
        assert_null(strstr(err, names[i]));
        sg_event_release(&ev);
    }
    static const char *const fine[] = {"Purchase", "AddToCart", "Checkout Step 2",
                                       "Promo 2026 Q4", "view_item_list", "Lead v1.2.3"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(fine); i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"event\":\"%s\"}", fine[i]);
        assert_int_equal(normalize(json, &ctx, &ev, err), 0);
        sg_event_release(&ev);
    }
    /* a national number of the site's region in an event id (Argentina is not one of the
     * common regions: only the site's phone_region knows it) */
    phone_region = "AR";
    assert_int_equal(normalize("{\"event\":\"Lead\",\"event_id\":\"011 15-2345-6789\"}", &ctx, &ev, err), -1);
    assert_non_null(strstr(err, "event_id: looks like personal data"));
    sg_event_release(&ev);
    phone_region = NULL;
    /* a card after a separator in an event id */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"event_id\":\"order-4111111111111111\"}", &ctx, &ev, err), -1);
    assert_non_null(strstr(err, "event_id: looks like personal data"));
    sg_event_release(&ev);
    /* Random ids keep their ids: UUIDs (crypto.randomUUID) and the proxy's own 32-hex ids,
     * whose digit runs read as phone or card numbers about one time in eight. A value of
     * another shape (an email in the last group) is still checked. */
    static const char *const random_ids[] = {
        "029b28e5-8149-4976-9740-42d82cebd7dd", "{029B28E5-8149-4976-9740-42D82CEBD7DD}",
        "0d2c8149497697404a2d82cebd7dd1f3",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(random_ids); i++) {
        char json[160];
        snprintf(json, sizeof(json), "{\"event\":\"Lead\",\"event_id\":\"%s\"}", random_ids[i]);
        assert_int_equal(normalize(json, &ctx, &ev, err), 0);
        assert_string_equal(ev.event_id, random_ids[i]);
        sg_event_release(&ev);
    }
    /* ...but a card number hidden in one is still found. */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"event_id\":"
                               "\"abcdef4111111111111111abcdefabcd\"}", &ctx, &ev, err), -1);
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"event_id\":"
                               "\"abcd4111-1111-1111-1111-abcdefabcdef\"}", &ctx, &ev, err), -1);
    sg_event_release(&ev);
    assert_int_equal(normalize("{\"event\":\"Lead\",\"event_id\":"
                               "\"029b28e5-8149-4976-9740-jane@doe.com\"}", &ctx, &ev, err), -1);
    sg_event_release(&ev);
    /* Token-shaped values that are not tokens are dropped, not forwarded. */
    assert_int_equal(normalize("{\"event\":\"Lead\",\"ttclid\":\"E.C.P.ok_1-2\",\"locale\":\"en US <x>\"}", &ctx, &ev, err), 0);
    assert_string_equal(ev.val[SG_F_USER_TTCLID], "E.C.P.ok_1-2");
    assert_null(ev.val[SG_F_USER_TTP]);
    assert_null(ev.val[SG_F_USER_LOCALE]);
    sg_event_release(&ev);
}

/*
 * A click id that carries a phone or card number, glued to letters or set apart with "_" or
 * "-", is dropped, from the event, its page URL and the cookie alike; real click ids (base64url after "E.C.P.") are kept: 20,000
 * random ones, none flagged.
 */
static void click_ids_carry_no_personal_data(void **state)
{
    (void)state;
    /* (a bare run of digits, "tel2133734253", is no phone number to the detectors: RULES.md) */
    static const char *const bad[] = {"+12133734253", "id4111111111111111",
                                      "x_213_373_4253"};
    struct sg_event ev;
    char err[256], json[512];
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++) {
        struct sg_request_ctx none = {.now = 1763700000};
        snprintf(json, sizeof(json), "{\"event\":\"Lead\",\"ttclid\":\"%s\",\"ttp\":\"%s\"}",
                 bad[i], bad[i]);
        assert_int_equal(normalize(json, &none, &ev, err), 0);
        if (ev.val[SG_F_USER_TTCLID] || ev.val[SG_F_USER_TTP] || ev.click_id)
            fail_msg("kept as a click id: %s", bad[i]);
        sg_event_release(&ev);
        snprintf(json, sizeof(json),
                 "{\"event\":\"Lead\",\"page\":{\"url\":\"https://x/?ttclid=%s\"}}", bad[i]);
        assert_int_equal(normalize(json, &none, &ev, err), 0);
        assert_null(ev.val[SG_F_USER_TTCLID]);
        sg_event_release(&ev);
        struct sg_request_ctx cookie = {.now = 1763700000, .cookie_ttclid = bad[i],
                                        .cookie_ttp = bad[i]};
        assert_int_equal(normalize("{\"event\":\"Lead\"}", &cookie, &ev, err), 0);
        assert_null(ev.val[SG_F_USER_TTCLID]);
        assert_null(ev.val[SG_F_USER_TTP]);
        sg_event_release(&ev);
    }
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t x = 0x2545F4914F6CDD1Du;
    struct sg_request_ctx none = {.now = 1763700000};
    for (int i = 0; i < 20000; i++) {
        char id[80] = "E.C.P.";
        size_t n = 6 + 20 + (size_t)(i % 40);
        for (size_t k = 6; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            id[k] = b64url[x % 64];
        }
        id[n] = '\0';
        snprintf(json, sizeof(json), "{\"event\":\"Lead\",\"ttclid\":\"%s\"}", id);
        assert_int_equal(normalize(json, &none, &ev, err), 0);
        if (!ev.val[SG_F_USER_TTCLID] || strcmp(ev.val[SG_F_USER_TTCLID], id) != 0)
            fail_msg("a random click id was dropped: %s", id);
        sg_event_release(&ev);
    }
}

static void query_param(void **state)
{
    (void)state;
    char *v = sg_url_query_param("https://x/?a=1&ttclid=E.C.P.x#frag", "ttclid");
    assert_string_equal(v, "E.C.P.x");
    free(v);
    assert_null(sg_url_query_param("https://x/?xttclid=1", "ttclid"));
    assert_null(sg_url_query_param("https://x/#ttclid=1", "ttclid"));
}

/* The error an event with this timestamp gets, or "" when it is accepted. */
static const char *time_verdict(const char *ts, int64_t *event_time)
{
    static char err[256];
    struct sg_request_ctx ctx = {.now = 1763700000};
    struct sg_event ev;
    char *json = sg_xasprintf("{\"event\":\"Lead\",\"timestamp\":%s}", ts);
    err[0] = '\0';
    if (normalize(json, &ctx, &ev, err) == 0) {
        *event_time = ev.event_time;
        err[0] = '\0';
    }
    sg_event_release(&ev);
    free(json);
    return err;
}

/*
 * Out-of-range times are a per-event error, never a cast of a double that
 * does not fit (undefined behaviour that used to yield INT64_MIN, accepted
 * as the event's time), and a time before 1970 is refused however it is
 * written.
 */
static void timestamps_out_of_range(void **state)
{
    int64_t t = 0;
    (void)state;
    static const char *const future[] = {"1e300", "1.7976931348623157e308", "9.3e18",
                                         "9.3e21", "9223372036854775807"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(future); i++) {
        const char *err = time_verdict(future[i], &t);
        if (strcmp(err, "timestamp: in the future") != 0)
            fail_msg("timestamp %s: wanted \"in the future\", got \"%s\" (t=%lld)", future[i], err,
                     (long long)t);
    }
    static const char *const early[] = {"0", "-1", "-1e300", "0.5", "\"1969-12-31T23:59:59Z\"",
                                        "\"1970-01-01T00:00:00Z\"", "\"0001-01-01T00:00:00Z\"",
                                        "\"1970-01-01T00:30:00+01:00\""};
    for (size_t i = 0; i < SG_ARRAY_SIZE(early); i++) {
        const char *err = time_verdict(early[i], &t);
        if (strcmp(err, "timestamp: must be after 1970-01-01T00:00:00Z") != 0)
            fail_msg("timestamp %s: wanted a refusal, got \"%s\" (t=%lld)", early[i], err,
                     (long long)t);
    }
    /* The first second after the epoch, and a millisecond time, still pass. */
    assert_string_equal(time_verdict("\"1970-01-01T00:00:01Z\"", &t), "");
    assert_int_equal(t, 1);
    assert_string_equal(time_verdict("1", &t), "");
    assert_int_equal(t, 1);
    assert_string_equal(time_verdict("1763699000999.9", &t), "");
    assert_int_equal(t, 1763699000);
}

static void header_copies_do_not_pile_up_in_the_region(void **state)
{
    /* Every event of a batch copies the request's user agent and cookie ids. Those copies
     * come from the heap and go with their event: in the request's region each would stay
     * until the request ends, and a batch would grow with events times header bytes. */
    (void)state;
    size_t big = 60000, keep = limits.max_field_bytes;
    char *ua = sg_xmalloc(big + 1), *id = sg_xmalloc(big + 1);
    memset(ua, 'u', big);
    memset(id, 'b', big);
    ua[big] = id[big] = '\0';
    limits.max_field_bytes = 65536;
    struct sg_request_ctx ctx = {
        .now = 1763700000, .user_agent = ua, .cookie_ttclid = id, .cookie_ttp = id};
    struct sg_event ev;
    char err[256];
    sg_json_arena_begin();
    for (int i = 0; i < 200; i++) {
        assert_int_equal(normalize("{\"event\":\"Lead\"}", &ctx, &ev, err), 0);
        assert_non_null(ev.val[SG_F_USER_USER_AGENT]); /* the copies were made */
        sg_event_release(&ev);
    }
    assert_in_range(sg_json_arena_used(), 1, 1 << 20); /* 200 x 180 KB if they were the region's */
    sg_json_arena_end();
    limits.max_field_bytes = keep;
    free(ua);
    free(id);
}

int main(void)
{
    sg_limits_default(&limits);
    limits.max_field_bytes = 2048;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_copies_do_not_pile_up_in_the_region),
        cmocka_unit_test(rfc3339),           cmocka_unit_test(timestamps_and_ids),
        cmocka_unit_test(click_id_precedence), cmocka_unit_test(body_ip_needs_trust),
        cmocka_unit_test(errors_name_the_field_not_the_value),
        cmocka_unit_test(identifier_arrays), cmocka_unit_test(limited_data_use_from_event), cmocka_unit_test(query_param),
        cmocka_unit_test(identifiers_cannot_carry_personal_data),
        cmocka_unit_test(click_ids_carry_no_personal_data),
        cmocka_unit_test(timestamps_out_of_range),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_scrub_thread_release();
    return rc;
}
