/*
 * The TikTok destination: golden files (every JSON file in tests/data/golden: an input
 * event and request, the rule set, the site's phone_region when it has one, the exact
 * expected outbound event), the
 * request body, and reply classification.
 */
#include "testutil.h"

#include "scrubgate/dest.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/rules.h"

#include <dirent.h>
#include <string.h>

#define GOLDEN_DIR "tests/data/golden"

static void run_golden(const char *path)
{
    json_error_t jerr;
    json_t *g = json_load_file(path, 0, &jerr);
    if (!g)
        fail_msg("%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    json_t *req = json_object_get(g, "request");
    struct sg_site *site = sg_test_site(json_string_value(json_object_get(g, "rules")));
    const char *region = json_string_value(json_object_get(g, "phone_region"));
    struct sg_request_ctx ctx;
    struct sg_limits lim;
    struct sg_event ev;
    char err[256];

    site->phone_region = region ? sg_xstrdup(region) : NULL;
    sg_limits_default(&lim);
    memset(&ctx, 0, sizeof(ctx));
    ctx.now = 1763700000;
    snprintf(ctx.ip, sizeof(ctx.ip), "%s", json_string_value(json_object_get(req, "ip")));
    snprintf(ctx.session_id, sizeof(ctx.session_id), "%s",
             json_string_value(json_object_get(req, "session")));
    ctx.user_agent = json_string_value(json_object_get(req, "user_agent"));
    ctx.cookie_ttp = json_string_value(json_object_get(req, "ttp"));
    ctx.gpc = json_is_true(json_object_get(req, "gpc"));
    sg_event_init(&ev);
    enum sg_pipe_result pr =
        sg_pipeline_run(site, &lim, json_object_get(g, "event"), &ctx, &ev, err, sizeof(err));
    const char *want_skip = json_string_value(json_object_get(g, "expected_skip"));
    if (want_skip) {
        /* A golden skip: the event must not be sent, for exactly this reason. */
        if (pr != SG_PIPE_SKIP || strcmp(ev.skip_reason, want_skip) != 0)
            fail_msg("%s: wanted skipped (%s), got result %d (%s)", path, want_skip, pr,
                     ev.skip_reason ? ev.skip_reason : err);
        sg_event_release(&ev);
        sg_test_site_free(site);
        json_decref(g);
        return;
    }
    if (pr != SG_PIPE_OK)
        fail_msg("%s: pipeline result %d: %s", path, pr, err);
    json_t *got = sg_tiktok_event_json(&ev);
    json_t *want = json_object_get(g, "expected");
    if (!json_equal(got, want)) {
        char *a = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
        char *b = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS);
        print_error("%s\n--- got\n%s\n--- expected\n%s\n", path, a, b);
        free(a);
        free(b);
        fail_msg("%s: outbound event differs from the golden file", path);
    }
    json_decref(got);
    sg_event_release(&ev);
    sg_test_site_free(site);
    json_decref(g);
}

static void golden_files(void **state)
{
    (void)state;
    DIR *d = opendir(GOLDEN_DIR);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, e->d_name);
        run_golden(path);
        n++;
    }
    closedir(d);
    assert_true(n >= 11); /* the fixtures are really there and were all read */
}

static void raw_identifiers_never_formatted(void **state)
{
    (void)state;
    struct sg_event ev;
    sg_event_init(&ev);
    ev.name = sg_xstrdup("Lead");
    ev.event_id = sg_xstrdup("x");
    ev.event_time = 1;
    ev.val[SG_F_USER_EMAIL] = sg_xstrdup("alice@example.com");
    ev.val[SG_F_USER_PHONE] = sg_xstrdup("+12133734253");
    ev.val[SG_F_USER_EXTERNAL_ID] = sg_xstrdup("crm-1");
    ev.allowed = ~0u; /* even a rule set that allows everything */
    json_t *o = sg_tiktok_event_json(&ev);
    assert_null(json_object_get(o, "user"));
    json_decref(o);
    sg_event_release(&ev);
}

static void request_body(void **state)
{
    (void)state;
    struct sg_dest_conf d = {0};
    struct sg_buf b;
    const char *evs[] = {"{\"event\":\"A\"}", "{\"event\":\"B\"}"};
    size_t lens[] = {13, 13};
    d.pixel_code = "CPIX1";
    d.test_event_code = "TEST\"1";
    sg_buf_init(&b, 0);
    assert_int_equal(sg_dest_tiktok.build_body(&d, evs, lens, 2, false, &b), 0);
    assert_string_equal(b.data, "{\"event_source\":\"web\",\"event_source_id\":\"CPIX1\","
                                "\"data\":[{\"event\":\"A\"},{\"event\":\"B\"}]}");
    assert_int_equal(sg_dest_tiktok.build_body(&d, evs, lens, 1, true, &b), 0);
    json_t *j = json_loads(b.data, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "test_event_code")), "TEST\"1");
    assert_null(json_object_get(j, "partner_name"));
    json_decref(j);
    sg_buf_release(&b);
}

static void expect_class(long http, const char *body, enum sg_dest_result r, const char *reason,
                         long code)
{
    struct sg_dest_reply rep;
    sg_dest_tiktok.classify(http, body, body ? strlen(body) : 0, &rep);
    assert_int_equal(rep.result, r);
    assert_string_equal(rep.reason, reason);
    assert_int_equal(rep.code, code);
}

static void reply_classification(void **state)
{
    (void)state;
    expect_class(200, "{\"code\":0,\"message\":\"OK\",\"request_id\":\"r-1\",\"data\":{}}", SG_DEST_OK, "ok", 0);
    expect_class(200, "{\"code\":20001,\"message\":\"partial\"}", SG_DEST_PARTIAL, "partial_ok", 20001);
    expect_class(200, "{\"code\":40100}", SG_DEST_RETRY, "throttled", 40100);
    expect_class(200, "{\"code\":61000}", SG_DEST_RETRY, "throttled", 61000);
    expect_class(200, "{\"code\":51234}", SG_DEST_RETRY, "transient", 51234);
    expect_class(200, "{\"code\":50002}", SG_DEST_RETRY, "transient", 50002);
    expect_class(200, "{\"code\":40105}", SG_DEST_AUTH, "auth", 40105);
    expect_class(200, "{\"code\":40104}", SG_DEST_AUTH, "auth", 40104);
    expect_class(200, "{\"code\":40062}", SG_DEST_FAIL, "bad_request", 40062);
    expect_class(200, "{\"code\":40061}", SG_DEST_FAIL, "bad_request", 40061);
    expect_class(200, "{\"code\":40700}", SG_DEST_FAIL, "bad_request", 40700);
    expect_class(502, "<html>Bad Gateway</html>", SG_DEST_RETRY, "http_5xx", -1);
    expect_class(0, NULL, SG_DEST_RETRY, "network", -1);
    expect_class(429, "", SG_DEST_RETRY, "throttled", -1);
    expect_class(404, "<html>", SG_DEST_FAIL, "http_4xx", -1);
    expect_class(200, "not json", SG_DEST_RETRY, "unparseable_reply", -1);
    struct sg_dest_reply rep;
    const char *b = "{\"code\":0,\"request_id\":\"abc-123\\n<script>\"}";
    sg_dest_tiktok.classify(200, b, strlen(b), &rep);
    assert_string_equal(rep.request_id, "abc-123script"); /* only a safe token is kept */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_files),
        cmocka_unit_test(raw_identifiers_never_formatted),
        cmocka_unit_test(request_body),
        cmocka_unit_test(reply_classification),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_rules_thread_release();
    return rc;
}
