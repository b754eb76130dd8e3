/* The rule engine: loading errors with positions, and every action. */
#include "testutil.h"

#include "scrubgate/pipeline.h"
#include "scrubgate/rules.h"

#include <event2/http.h>
#include "scrubgate/http.h"
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

/* Load a rule set from text; on failure return what was logged (owned). */
static char *load_error(const char *text)
{
    char *path = sg_write_temp(".json", text);
    sg_capture_begin();
    struct sg_ruleset *rs = sg_ruleset_load(path);
    char *log = sg_capture_end();
    assert_null(rs);
    unlink(path);
    free(path);
    return log;
}

static void expect_load_error(const char *text, const char *where, const char *what)
{
    char *log = load_error(text);
    if (!strstr(log, where) || !strstr(log, what))
        fail_msg("wanted \"%s\" and \"%s\" in: %s", where, what, log);
    free(log);
}

static void invalid_rule_sets_say_where(void **state)
{
    (void)state;
    expect_load_error("{\"name\":\"x\",\"rules\":[\n {\"id\":\"a\",\"why\":\"w\",\"action\":\"drop\",\n"
                      "  \"feilds\":[\"user.email\"]}]}",
                      ".json:3:3: rules[0].feilds", "unknown key");
    expect_load_error("{\"name\":\"x\",\"rules\":[{\"id\":\"a\",\"why\":\"w\",\"action\":\"explode\","
                      "\"field\":\"user.ip\"}]}",
                      ":1:51: rules[0].action", "one of drop");
    expect_load_error("{\"name\":\"x\",\"rules\":[{\"id\":\"a\",\"why\":\"w\",\"action\":\"redact\","
                      "\"field\":\"page.url\",\"detectors\":[\"email\",\"dna\"]}]}",
                      "rules[0].detectors[1]", "unknown detector");
    expect_load_error("{\"name\":\"x\",\"rules\":[{\"id\":\"a\",\"action\":\"drop\",\"field\":\"user.ip\"}]}",
                      "rules[0]", "\"why\": required");
    expect_load_error("{\"name\":\"x\",\"rules\":[{\"id\":\"a\",\"why\":\"w\",\"action\":\"drop\","
                      "\"field\":\"user.password\"}]}",
                      "rules[0].field", "unknown field");
    expect_load_error("{\"name\":\"x\",\"rules\":[{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\","
                      "\"field\":\"user.ip\",\"when\":{\"consent\":{\"ad_storage\":\"maybe\"}}}]}",
                      "rules[0].when.consent.ad_storage", "granted");
    expect_load_error("{\"name\":\"x\",\"rules\":[{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\","
                      "\"field\":\"user.ip\"},{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\","
                      "\"field\":\"user.ip\"}]}",
                      "rules[1].id", "duplicate");
    expect_load_error("{\"name\":\"x\",\"rules\":[{\"id\":\"a\",\"why\":\"w\",\"action\":\"hash\","
                      "\"field\":\"user.ip\",\"method\":\"md5\"}]}",
                      "rules[0].method", "hmac_sha256");
    expect_load_error("{\"name\":\"x\",\"rules\":[", ".json:1:", "");
}

/* Run one rule set (inline text) over one event under a consent string. */
struct run {
    struct sg_site *site;
    struct sg_request_ctx ctx;
    struct sg_event ev;
    enum sg_pipe_result pr;
    char *path;
};

static const char *test_ua = "UA/1";
static const char *test_region; /* the site's phone_region in run(), NULL: none */
static struct sg_http_fields test_headers;

static void run(struct run *r, const char *rules, const char *event, bool gpc)
{
    struct sg_limits lim;
    char err[256];
    sg_limits_default(&lim);
    r->path = sg_write_temp(".json", rules);
    r->site = sg_test_site(r->path);
    r->site->phone_region = test_region ? sg_xstrdup(test_region) : NULL;
    memset(&r->ctx, 0, sizeof(r->ctx));
    strcpy(r->ctx.ip, "203.0.113.9");
    strcpy(r->ctx.session_id, "0123456789abcdef0123456789abcdef");
    r->ctx.user_agent = test_ua;
    r->ctx.headers = &test_headers;
    r->ctx.gpc = gpc;
    r->ctx.now = 1763700000;
    json_t *in = json_loads(event, 0, NULL);
    assert_non_null(in);
    sg_event_init(&r->ev);
    r->pr = sg_pipeline_run(r->site, &lim, in, &r->ctx, &r->ev, err, sizeof(err));
    json_decref(in);
}

static void run_free(struct run *r)
{
    sg_event_release(&r->ev);
    sg_test_site_free(r->site);
    unlink(r->path);
    free(r->path);
}

#define RULESET(...) "{\"name\":\"t\",\"rules\":[" __VA_ARGS__ "]}"

static void minimization_by_default(void **state)
{
    struct run r;
    (void)state;
    run(&r, RULESET(), "{\"event\":\"Lead\",\"user\":{\"email\":\"a@b.co\"},\"consent\":\"granted\"}", false);
    assert_int_equal(r.pr, SG_PIPE_OK);
    assert_int_equal(r.ev.allowed, 0); /* nothing allowed: only event, time and id leave */
    run_free(&r);
}

static void hash_sha256_and_hmac(void **state)
{
    struct run r;
    (void)state;
    run(&r,
        RULESET("{\"id\":\"h\",\"why\":\"w\",\"action\":\"hash\",\"fields\":[\"user.email\",\"user.phone\"],\"method\":\"sha256\"},"
                "{\"id\":\"k\",\"why\":\"w\",\"action\":\"hash\",\"field\":\"user.ip\",\"method\":\"hmac_sha256\"}"),
        "{\"event\":\"Lead\",\"user\":{\"email\":\" ALICE_abc@gmail.com \",\"phone\":\"(+1)2133734253\"}}", false);
    assert_string_equal(r.ev.val[SG_F_USER_EMAIL],
                        "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f");
    assert_string_equal(r.ev.val[SG_F_USER_PHONE],
                        "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd");
    assert_string_equal(r.ev.val[SG_F_USER_IP],
                        "7271b45eba9223a62c9bb48b82a9cab10f1c2d7f48e7f380bd2904882c49fbc8");
    run_free(&r);
}

static bool has_receipt(const struct sg_event *ev, int field, enum sg_receipt_action a)
{
    for (size_t i = 0; i < ev->n_receipt; i++)
        if (ev->receipt[i].field == field && ev->receipt[i].action == a)
            return true;
    return false;
}

/*
 * Issue 9: user.phone is hashed in its E.164 form under the site's phone_region; without a
 * region, a number lacking "+"/"00" is dropped (receipt "drop"), never guessed.
 */
static void hash_phone_under_the_sites_region(void **state)
{
    struct run r;
    const char *rules = RULESET(
        "{\"id\":\"h\",\"why\":\"w\",\"action\":\"hash\",\"field\":\"user.phone\",\"method\":\"sha256\"},"
        "{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.phone\"}");
    /* python3: hashlib.sha256(b"+12133734253").hexdigest() */
    const char *us = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd";
    (void)state;
    test_region = "US";
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":\"213-373-4253\"}}", false);
    assert_int_equal(r.pr, SG_PIPE_OK);
    assert_string_equal(r.ev.val[SG_F_USER_PHONE], us);
    assert_true(has_receipt(&r.ev, SG_F_USER_PHONE, SG_RA_HASH_SHA256));
    run_free(&r);
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":\"+1 (213) 373-4253 ext. 12\"}}", false);
    assert_string_equal(r.ev.val[SG_F_USER_PHONE], us);
    run_free(&r);
    /* Already hashed by the site: passes through as it is. */
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":\"96ab453ec560042aff0169cd3cb16fe81e11bedf16db276e54ca7d5452d6d278\"}}", false);
    assert_string_equal(r.ev.val[SG_F_USER_PHONE],
                        "96ab453ec560042aff0169cd3cb16fe81e11bedf16db276e54ca7d5452d6d278");
    run_free(&r);
    /* Not a valid US number: dropped. */
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":\"020 7946 0958\"}}", false);
    assert_null(r.ev.val[SG_F_USER_PHONE]);
    assert_true(has_receipt(&r.ev, SG_F_USER_PHONE, SG_RA_DROP));
    assert_false(has_receipt(&r.ev, SG_F_USER_PHONE, SG_RA_HASH_SHA256));
    run_free(&r);
    test_region = "GB";
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":\"020 7946 0958\"}}", false);
    /* python3: hashlib.sha256(b"+442079460958").hexdigest() */
    assert_string_equal(r.ev.val[SG_F_USER_PHONE],
                        "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d");
    run_free(&r);
    test_region = NULL;
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":\"213-373-4253\"}}", false);
    assert_int_equal(r.pr, SG_PIPE_OK);
    assert_null(r.ev.val[SG_F_USER_PHONE]);
    assert_true(has_receipt(&r.ev, SG_F_USER_PHONE, SG_RA_DROP));
    run_free(&r);
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":\"0044 20 7946 0958\"}}", false);
    assert_string_equal(r.ev.val[SG_F_USER_PHONE],
                        "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d");
    run_free(&r);
}

/* Issue 10: every value of an array is hashed on its own; upper-case digests are lower-cased. */
static void hash_each_value_of_an_array(void **state)
{
    struct run r;
    const char *rules = RULESET(
        "{\"id\":\"h\",\"why\":\"w\",\"action\":\"hash\",\"fields\":[\"user.email\",\"user.phone\"],\"method\":\"sha256\"},"
        "{\"id\":\"k\",\"why\":\"w\",\"action\":\"hash\",\"field\":\"user.external_id\",\"method\":\"hmac_sha256\"}");
    (void)state;
    test_region = "US";
    run(&r, rules,
        "{\"event\":\"Lead\",\"user\":{\"phone\":[\"213-373-4253\",\"nope\",\"+1 202 555 0100\"],"
        "\"email\":[\"5FF860BF1190596C7188AB851DB691F0F3169C453936E9E1EBA2F9A47F7A0018\",\" ALICE_abc@gmail.com \"],"
        "\"external_id\":[\"u1\",\"u2\"]}}",
        false);
    test_region = NULL;
    assert_int_equal(r.pr, SG_PIPE_OK);
    /* python3: hashlib.sha256(b"+12133734253"), hashlib.sha256(b"+12025550100") */
    assert_int_equal(sg_event_count(&r.ev, SG_F_USER_PHONE), 2); /* "nope" is no number: gone */
    assert_string_equal(r.ev.val[SG_F_USER_PHONE],
                        "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd");
    assert_string_equal(r.ev.more[SG_F_USER_PHONE][0],
                        "56bcf01f15ebc008e3e50bad3555d6cfafa76c6472eb64c8d4b24f06f3c995d8");
    assert_null(r.ev.more[SG_F_USER_PHONE][1]);
    assert_string_equal(r.ev.val[SG_F_USER_EMAIL],
                        "5ff860bf1190596c7188ab851db691f0f3169c453936e9e1eba2f9a47f7a0018");
    assert_string_equal(r.ev.more[SG_F_USER_EMAIL][0],
                        "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f");
    assert_int_equal(sg_event_count(&r.ev, SG_F_USER_EXTERNAL_ID), 2);
    assert_int_equal(strlen(r.ev.more[SG_F_USER_EXTERNAL_ID][0]), 64);
    assert_string_not_equal(r.ev.val[SG_F_USER_EXTERNAL_ID], r.ev.more[SG_F_USER_EXTERNAL_ID][0]);
    run_free(&r);
    /* No value usable: the field is gone, receipted as dropped. */
    run(&r, rules, "{\"event\":\"Lead\",\"user\":{\"phone\":[\"x\",\"y\"]}}", false);
    assert_int_equal(sg_event_count(&r.ev, SG_F_USER_PHONE), 0);
    assert_true(has_receipt(&r.ev, SG_F_USER_PHONE, SG_RA_DROP));
    run_free(&r);
}

/* The event's limited_data_use: true sticks; false never un-sets a rule's (or GPC's) true. */
static void limited_data_use_only_restricts(void **state)
{
    struct run r;
    const char *rules = RULESET(
        "{\"id\":\"f\",\"why\":\"w\",\"action\":\"set\",\"field\":\"limited_data_use\",\"value\":false},"
        "{\"id\":\"d\",\"why\":\"w\",\"action\":\"drop\",\"field\":\"limited_data_use\"},"
        "{\"id\":\"g\",\"why\":\"w\",\"when\":{\"gpc\":true},\"action\":\"set\",\"field\":\"limited_data_use\",\"value\":true}");
    (void)state;
    run(&r, rules, "{\"event\":\"Lead\",\"limited_data_use\":true}", false);
    assert_true(r.ev.ldu);
    run_free(&r);
    run(&r, rules, "{\"event\":\"Lead\",\"limited_data_use\":false}", true);
    assert_true(r.ev.ldu); /* GPC's true stays */
    run_free(&r);
    run(&r, rules, "{\"event\":\"Lead\",\"limited_data_use\":false}", false);
    assert_false(r.ev.ldu);
    run_free(&r);
}

static void set_from_session_and_value(void **state)
{
    struct run r;
    (void)state;
    run(&r,
        RULESET("{\"id\":\"s\",\"why\":\"w\",\"action\":\"set\",\"field\":\"user.external_id\",\"from\":\"session\"},"
                "{\"id\":\"l\",\"why\":\"w\",\"action\":\"set\",\"field\":\"limited_data_use\",\"value\":true,\"when\":{\"gpc\":true}}"),
        "{\"event\":\"Lead\"}", true);
    /* python3: hmac.new(b"golden-secret-0123456789", b"session\0" + sid, sha256) */
    assert_string_equal(r.ev.val[SG_F_USER_EXTERNAL_ID],
                        "165ebf87ac7ef9cafce81c51743615e53d861a963280f9b2d84ad6401099f4c2");
    assert_true(r.ev.ldu);
    run_free(&r);
    run(&r,
        RULESET("{\"id\":\"l\",\"why\":\"w\",\"action\":\"set\",\"field\":\"limited_data_use\",\"value\":true,\"when\":{\"gpc\":true}}"),
        "{\"event\":\"Lead\"}", false);
    assert_false(r.ev.ldu);
    run_free(&r);
}

static void when_conditions(void **state)
{
    struct run r;
    (void)state;
    const char *rs = RULESET(
        "{\"id\":\"ua\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.user_agent\","
        "\"when\":{\"consent\":{\"ad_user_data\":\"granted\"},\"events\":[\"Purchase\"],\"present\":[\"properties\"]}}");
    run(&r, rs, "{\"event\":\"Purchase\",\"consent\":\"granted\",\"properties\":{\"value\":1}}", false);
    assert_true(r.ev.allowed & SG_FIELD_BIT(SG_F_USER_USER_AGENT));
    run_free(&r);
    run(&r, rs, "{\"event\":\"Lead\",\"consent\":\"granted\",\"properties\":{\"value\":1}}", false);
    assert_false(r.ev.allowed & SG_FIELD_BIT(SG_F_USER_USER_AGENT));
    run_free(&r);
    run(&r, rs, "{\"event\":\"Purchase\",\"consent\":\"denied\",\"properties\":{\"value\":1}}", false);
    assert_false(r.ev.allowed & SG_FIELD_BIT(SG_F_USER_USER_AGENT));
    run_free(&r);
    run(&r, rs, "{\"event\":\"Purchase\",\"consent\":\"granted\"}", false);
    assert_false(r.ev.allowed & SG_FIELD_BIT(SG_F_USER_USER_AGENT));
    run_free(&r);
}

static void drop_removes_and_disallows(void **state)
{
    struct run r;
    (void)state;
    run(&r,
        RULESET("{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.email\"},"
                "{\"id\":\"d\",\"why\":\"w\",\"action\":\"drop\",\"field\":\"user.email\"}"),
        "{\"event\":\"Lead\",\"user\":{\"email\":\"a@b.co\"}}", false);
    assert_null(r.ev.val[SG_F_USER_EMAIL]);
    assert_false(r.ev.allowed & SG_FIELD_BIT(SG_F_USER_EMAIL));
    char *changed = sg_event_changed_rules(&r.ev);
    assert_string_equal(changed, "[\"d\"]");
    free(changed);
    run_free(&r);
}

static void redact_map_and_drop_event(void **state)
{
    struct run r;
    (void)state;
    run(&r,
        RULESET("{\"id\":\"m\",\"why\":\"w\",\"action\":\"map_event\"},"
                "{\"id\":\"r\",\"why\":\"w\",\"action\":\"redact\",\"fields\":[\"properties\",\"page.url\"],\"detectors\":[\"email\"]}"),
        "{\"event\":\"won\",\"page\":{\"url\":\"https://x/?who=a%40b.co\"},"
        "\"properties\":{\"description\":\"for a@b.co\",\"contents\":[{\"content_name\":\"c@d.io\"}]}}", false);
    assert_string_equal(r.ev.name, "Purchase");
    assert_string_equal(r.ev.val[SG_F_PAGE_URL], "https://x/");
    assert_string_equal(json_string_value(json_object_get(r.ev.props, "description")), "for [redacted]");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r.ev.props, "contents"), 0), "content_name")),
                        "[redacted]");
    run_free(&r);
    run(&r,
        RULESET("{\"id\":\"bots\",\"why\":\"w\",\"action\":\"drop_event\",\"reason\":\"bot\",\"when\":{\"events\":[\"Crawl\"]}},"
                "{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.ip\"}"),
        "{\"event\":\"Crawl\"}", false);
    assert_int_equal(r.pr, SG_PIPE_SKIP);
    assert_string_equal(r.ev.skip_reason, "bot");
    assert_false(r.ev.allowed & SG_FIELD_BIT(SG_F_USER_IP)); /* rules after a drop do not run */
    run_free(&r);
}

static void truncate_ip_then_hash(void **state)
{
    struct run r;
    (void)state;
    const char *rs = RULESET(
        "{\"id\":\"t\",\"why\":\"w\",\"action\":\"truncate_ip\",\"field\":\"user.ip\",\"ipv6_prefix\":32},"
        "{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.ip\"}");
    run(&r, rs, "{\"event\":\"Lead\"}", false); /* ctx ip 203.0.113.9 */
    assert_string_equal(r.ev.val[SG_F_USER_IP], "203.0.113.0");
    run_free(&r);
    run(&r, rs, "{\"event\":\"Lead\",\"ip\":\"2001:db8:abcd:12::1\"}", false);
    /* the body ip is ignored without an ingest key: still the connection's address */
    assert_string_equal(r.ev.val[SG_F_USER_IP], "203.0.113.0");
    run_free(&r);
    expect_load_error(RULESET("{\"id\":\"t\",\"why\":\"w\",\"action\":\"truncate_ip\",\"field\":\"user.email\"}"),
                      "rules[0]", "user.ip only");
    expect_load_error(RULESET("{\"id\":\"t\",\"why\":\"w\",\"action\":\"truncate_ip\",\"field\":\"user.ip\",\"ipv4_prefix\":33}"),
                      "rules[0].ipv4_prefix", "0 to 32");
}

static void set_from_header(void **state)
{
    struct run r;
    (void)state;
    run(&r, RULESET("{\"id\":\"h\",\"why\":\"w\",\"action\":\"set\",\"field\":\"user.locale\",\"from\":\"header\",\"header\":\"X-Locale\"}"),
        "{\"event\":\"Lead\"}", false);
    assert_string_equal(r.ev.val[SG_F_USER_LOCALE], "de-DE");
    run_free(&r);
    run(&r, RULESET("{\"id\":\"h\",\"why\":\"w\",\"action\":\"set\",\"field\":\"user.locale\",\"from\":\"header\",\"header\":\"X-Absent\"}"),
        "{\"event\":\"Lead\"}", false);
    assert_null(r.ev.val[SG_F_USER_LOCALE]); /* an absent header sets nothing */
    run_free(&r);
    expect_load_error(RULESET("{\"id\":\"h\",\"why\":\"w\",\"action\":\"set\",\"field\":\"user.locale\",\"from\":\"header\"}"),
                      "rules[0]", "\"header\"");
}

static void redact_with_site_pattern(void **state)
{
    struct run r;
    (void)state;
    run(&r, RULESET("{\"id\":\"p\",\"why\":\"w\",\"action\":\"redact\",\"fields\":[\"properties\",\"page.url\"],\"pattern\":\"CUST-\\\\d{6}\"}"),
        "{\"event\":\"Lead\",\"page\":{\"url\":\"https://x/?loyalty=CUST-123456&a=1\"},\"properties\":{\"description\":\"member CUST-654321\"}}", false);
    assert_string_equal(r.ev.val[SG_F_PAGE_URL], "https://x/?a=1");
    assert_string_equal(json_string_value(json_object_get(r.ev.props, "description")), "member [redacted]");
    run_free(&r);
    expect_load_error(RULESET("{\"id\":\"p\",\"why\":\"w\",\"action\":\"redact\",\"field\":\"page.url\",\"pattern\":\"(x\"}"),
                      "rules[0].pattern", "invalid regular expression");
}

static void pathological_pattern_skips_the_event(void **state)
{
    struct run r;
    (void)state;
    run(&r, RULESET("{\"id\":\"p\",\"why\":\"w\",\"action\":\"redact\",\"field\":\"properties\",\"pattern\":\"^(a+)+$\"},"
                    "{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"properties\"}"),
        "{\"event\":\"Lead\",\"properties\":{\"description\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"}}", false);
    assert_int_equal(r.pr, SG_PIPE_SKIP);
    assert_string_equal(r.ev.skip_reason, "scrub_limit");
    run_free(&r);
}

static void drop_bots_and_allowlist(void **state)
{
    struct run r;
    (void)state;
    const char *rs = RULESET(
        "{\"id\":\"bots\",\"why\":\"w\",\"action\":\"drop_event\",\"reason\":\"bot\",\"when\":{\"bot\":true}},"
        "{\"id\":\"allow\",\"why\":\"w\",\"action\":\"drop_event\",\"reason\":\"not_allowed\",\"when\":{\"not_events\":[\"Purchase\",\"Lead\"]}}");
    run(&r, rs, "{\"event\":\"Lead\"}", false); /* ctx UA "UA/1" */
    assert_int_equal(r.pr, SG_PIPE_OK);
    run_free(&r);
    test_ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    run(&r, rs, "{\"event\":\"Lead\"}", false);
    test_ua = "UA/1";
    assert_int_equal(r.pr, SG_PIPE_SKIP);
    assert_string_equal(r.ev.skip_reason, "bot");
    run_free(&r);
    run(&r, rs, "{\"event\":\"Pageview\"}", false);
    assert_int_equal(r.pr, SG_PIPE_SKIP);
    assert_string_equal(r.ev.skip_reason, "not_allowed");
    run_free(&r);
}

static void require_identifiers(void **state)
{
    struct run r;
    (void)state;
    const char *rs = RULESET(
        "{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.ttclid\",\"when\":{\"consent\":{\"ad_storage\":\"granted\"}}},"
        "{\"id\":\"need\",\"why\":\"w\",\"action\":\"require\",\"fields\":[\"user.ttclid\",\"user.external_id\"],\"min\":1}");
    run(&r, rs, "{\"event\":\"Lead\",\"ttclid\":\"E.C.P.x\",\"consent\":\"granted\"}", false);
    assert_int_equal(r.pr, SG_PIPE_OK);
    run_free(&r);
    /* Present but not allowed does not count: it will not leave. */
    run(&r, rs, "{\"event\":\"Lead\",\"ttclid\":\"E.C.P.x\",\"consent\":\"denied\"}", false);
    assert_int_equal(r.pr, SG_PIPE_SKIP);
    assert_string_equal(r.ev.skip_reason, "too_few_identifiers");
    run_free(&r);
    expect_load_error(RULESET("{\"id\":\"n\",\"why\":\"w\",\"action\":\"require\",\"fields\":[\"user.ip\"],\"min\":2}"),
                      "rules[0].min", "number of fields");
}

static void consent_any_condition(void **state)
{
    struct run r;
    (void)state;
    const char *rs = RULESET(
        "{\"id\":\"strip\",\"why\":\"w\",\"action\":\"redact\",\"field\":\"page.url\","
        "\"params\":[\"ttclid\"],\"when\":{\"consent_any\":{\"ad_storage\":\"denied\","
        "\"ad_user_data\":\"denied\"}}},"
        "{\"id\":\"url\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"page.url\"}");
    static const struct {
        const char *consent;
        bool stripped;
    } cases[] = {
        {"\"granted\"", false},
        {"\"denied\"", true},
        {"{\"ad_storage\":\"granted\",\"ad_user_data\":\"denied\"}", true},
        {"{\"ad_storage\":\"denied\",\"ad_user_data\":\"granted\"}", true},
        {"{\"ad_storage\":\"granted\",\"ad_user_data\":\"granted\"}", false},
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(cases); i++) {
        char ev[512];
        snprintf(ev, sizeof(ev),
                 "{\"event\":\"Lead\",\"consent\":%s,"
                 "\"page\":{\"url\":\"https://a.example/p?ttclid=E.C.P.x&x=1\"}}",
                 cases[i].consent);
        run(&r, rs, ev, false);
        assert_int_equal(r.pr, SG_PIPE_OK);
        bool has = strstr(r.ev.val[SG_F_PAGE_URL], "ttclid") != NULL;
        if (has == cases[i].stripped)
            fail_msg("consent %s: ttclid %s", cases[i].consent, has ? "kept" : "stripped");
        run_free(&r);
    }
    expect_load_error(RULESET("{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.ip\","
                              "\"when\":{\"consent_any\":{}}}"),
                      "rules[0].when.consent_any", "at least one purpose");
    expect_load_error(RULESET("{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.ip\","
                              "\"when\":{\"consent_any\":{\"ad_storage\":\"no\"}}}"),
                      "rules[0].when.consent_any.ad_storage", "granted");
    expect_load_error(RULESET("{\"id\":\"a\",\"why\":\"w\",\"action\":\"allow\",\"field\":\"user.ip\","
                              "\"when\":{\"consent_any\":{\"storage\":\"denied\"}}}"),
                      "rules[0].when.consent_any.storage", "unknown purpose");
}

/* Every shipped rule set: a click id (user.ttclid, user.ttp, ttclid in the page URLs) leaves
 * only with ad_storage and ad_user_data both granted, never with one of them alone. */
static void shipped_rule_sets_need_both_purposes_for_click_ids(void **state)
{
    (void)state;
    static const char *const sets[] = {"rules/default.json", "rules/strict.json",
                                       "rules/advanced-matching.json"};
    static const struct {
        const char *consent;
        bool leaves;
    } cases[] = {
        {"\"granted\"", true},
        {"\"denied\"", false},
        {"{\"ad_storage\":\"granted\",\"ad_user_data\":\"denied\",\"ad_personalization\":"
         "\"granted\",\"analytics_storage\":\"granted\"}",
         false},
        {"{\"ad_storage\":\"denied\",\"ad_user_data\":\"granted\",\"ad_personalization\":"
         "\"granted\",\"analytics_storage\":\"granted\"}",
         false},
        {"{\"ad_storage\":\"granted\",\"ad_user_data\":\"granted\"}", true},
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(sets); i++) {
        size_t len;
        char *text = sg_read_file(sets[i], &len);
        assert_non_null(text);
        for (size_t k = 0; k < SG_ARRAY_SIZE(cases); k++) {
            struct run r;
            char ev[1024];
            snprintf(ev, sizeof(ev),
                     "{\"event\":\"Purchase\",\"consent\":%s,\"ttclid\":\"E.C.P.c\","
                     "\"user\":{\"ttp\":\"ttp-1\"},\"page\":{\"url\":"
                     "\"https://a.example/p?ttclid=E.C.P.c&x=1\",\"referrer\":"
                     "\"https://b.example/?ttclid=E.C.P.c\"}}",
                     cases[k].consent);
            run(&r, text, ev, false);
            assert_int_equal(r.pr, SG_PIPE_OK);
            bool ttclid = (r.ev.allowed & SG_FIELD_BIT(SG_F_USER_TTCLID)) &&
                          r.ev.val[SG_F_USER_TTCLID];
            bool ttp = (r.ev.allowed & SG_FIELD_BIT(SG_F_USER_TTP)) && r.ev.val[SG_F_USER_TTP];
            bool url = strstr(r.ev.val[SG_F_PAGE_URL], "ttclid") != NULL;
            bool ref = strstr(r.ev.val[SG_F_PAGE_REFERRER], "ttclid") != NULL;
            if (ttclid != cases[k].leaves || ttp != cases[k].leaves || url != cases[k].leaves ||
                ref != cases[k].leaves)
                fail_msg("%s, consent %s: ttclid %d ttp %d url %d referrer %d", sets[i],
                         cases[k].consent, ttclid, ttp, url, ref);
            run_free(&r);
        }
        free(text);
    }
}

static void shipped_default_loads(void **state)
{
    (void)state;
    struct sg_ruleset *rs = sg_ruleset_load("rules/default.json");
    assert_non_null(rs);
    assert_string_equal(sg_ruleset_name(rs), "default");
    assert_int_equal(strncmp(sg_ruleset_version(rs), "sha256:", 7), 0);
    sg_ruleset_free(rs);
}

int main(void)
{
    sg_http_fields_init(&test_headers);
    sg_http_fields_add(&test_headers, "X-Locale", "de-DE");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(invalid_rule_sets_say_where),
        cmocka_unit_test(minimization_by_default),
        cmocka_unit_test(hash_sha256_and_hmac),
        cmocka_unit_test(hash_phone_under_the_sites_region),
        cmocka_unit_test(hash_each_value_of_an_array),
        cmocka_unit_test(limited_data_use_only_restricts),
        cmocka_unit_test(set_from_session_and_value),
        cmocka_unit_test(when_conditions),
        cmocka_unit_test(drop_removes_and_disallows),
        cmocka_unit_test(redact_map_and_drop_event),
        cmocka_unit_test(truncate_ip_then_hash),
        cmocka_unit_test(set_from_header),
        cmocka_unit_test(redact_with_site_pattern),
        cmocka_unit_test(pathological_pattern_skips_the_event),
        cmocka_unit_test(drop_bots_and_allowlist),
        cmocka_unit_test(require_identifiers),
        cmocka_unit_test(consent_any_condition),
        cmocka_unit_test(shipped_rule_sets_need_both_purposes_for_click_ids),
        cmocka_unit_test(shipped_default_loads),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_http_fields_release(&test_headers);
    sg_rules_thread_release();
    return rc;
}
