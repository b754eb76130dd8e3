/*
 * Event-name mapping (docs/MAPPING.md, docs/CONFIG.md): the built-in table, case-insensitive
 * lookups, one-to-many maps, config errors with positions, the site's map winning over
 * the built-in one, and unmapped invalid names refused per event without echoing them.
 */
#include "testutil.h"

#include "scrubgate/config.h"
#include "scrubgate/eventmap.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/rules.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SITE_HEAD                                                                                  \
    "{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","    \
    "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":"           \
    "\"SGT_TOKEN\"}]"

/*
 * A map_event rule's own map may fan out further than the site's event_map: the room ingest
 * reserves in the spool and the queues (map_fanout) counts it too. Targets with spaces around
 * them are refused.
 */
static void rule_maps_count_in_the_fanout(void **state)
{
    char *log;
    (void)state;
    const char *rules = "{\"name\":\"r\",\"rules\":[{\"id\":\"m\",\"why\":\"w\",\"action\":\"map_event\","
                        "\"map\":{\"won\":[\"Purchase\",\"Lead\",\"Subscribe\"]}}]}";
    char *rpath = sg_write_temp(".json", rules);
    char cfg_text[1024];
    snprintf(cfg_text, sizeof(cfg_text),
             "{\"sites\":[{\"id\":\"s\",\"rules\":\"%s\",\"secret_env\":\"SGT_SECRET\","
             "\"event_map\":{\"a\":[\"Lead\",\"Purchase\"]},"
             "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\","
             "\"access_token_env\":\"SGT_TOKEN\"}]}]}",
             rpath);
    struct sg_config *cfg = sg_test_config_load(cfg_text, &log);
    if (!cfg)
        fail_msg("%s", log);
    assert_int_equal(cfg->sites[0].map_fanout, 3);
    sg_config_free(cfg);
    free(log);
    unlink(rpath);
    free(rpath);
    sg_test_config_error(SITE_HEAD ",\"event_map\":{\"a\":\"Buy \"}}]}", "event_map.a",
                 "neither starts nor ends with a space");
    /* a rule's own map is checked for chains through the built-in map, like event_map */
    char *chain = sg_write_temp(".json", "{\"name\":\"r\",\"rules\":[{\"id\":\"m\",\"why\":\"w\","
                                         "\"action\":\"map_event\",\"map\":{\"a\":\"Order Completed\"}}]}");
    struct sg_ruleset *rs;
    sg_capture_begin();
    rs = sg_ruleset_load(chain);
    log = sg_capture_end();
    assert_null(rs);
    assert_non_null(strstr(log, "map.a"));
    free(log);
    unlink(chain);
    free(chain);
}

/* Every built-in target is a standard event; no key twice; applied once without surprise. */
static void builtin_table_is_sound(void **state)
{
    (void)state;
    char why[256];
    const char *bad = NULL;
    assert_true(sg_event_map_builtin_count() >= 20);
    assert_int_equal(sg_tiktok_standard_event_count(), 18);
    for (size_t i = 0; i < sg_event_map_builtin_count(); i++) {
        const struct sg_event_map_entry *e = sg_event_map_builtin_at(i);
        if (!sg_tiktok_standard_event(e->to))
            fail_msg("%s -> %s: not a standard event", e->from, e->to);
        for (size_t j = 0; j < i; j++)
            if (sg_strcaseeq(e->from, sg_event_map_builtin_at(j)->from))
                fail_msg("%s twice", e->from);
    }
    assert_int_equal(json_object_size(sg_event_map_builtin()), sg_event_map_builtin_count());
    assert_int_equal(sg_event_map_check_chains(sg_event_map_builtin(), true, why, sizeof(why),
                                               &bad), 0);
    assert_false(sg_tiktok_standard_event("Pageview"));
    assert_false(sg_tiktok_standard_event("purchase"));
}

static const char *target(const json_t *map, const char *name, size_t i)
{
    json_t *to = sg_event_map_lookup(map, name);
    return to ? json_string_value(json_array_get(to, i)) : NULL;
}

static void lookups_are_case_insensitive(void **state)
{
    (void)state;
    json_t *b = sg_event_map_builtin();
    assert_string_equal(target(b, "Order Completed", 0), "Purchase");
    assert_string_equal(target(b, "order completed", 0), "Purchase");
    assert_string_equal(target(b, "ORDER COMPLETED", 0), "Purchase");
    assert_string_equal(target(b, "Add_To_Cart", 0), "AddToCart");
    assert_string_equal(target(b, "completepayment", 0), "Purchase");
    assert_string_equal(target(b, "SubmitForm", 0), "Lead");
    assert_null(target(b, "Pageview", 0));
    assert_null(target(b, "Order Completed ", 0));

    char why[256];
    const char *bad;
    int idx;
    json_t *in = json_pack("{s:s,s:[s,s]}", "Sign Up / Register", "CompleteRegistration",
                           "Won", "Purchase", "Won Deal");
    json_t *m = sg_event_map_compile(in, NULL, why, sizeof(why), &bad, &idx);
    assert_non_null(m);
    assert_string_equal(target(m, "sign up / register", 0), "CompleteRegistration");
    assert_string_equal(target(m, "WON", 0), "Purchase");
    assert_string_equal(target(m, "won", 1), "Won Deal");
    json_decref(m);
    json_decref(in);
}

static void map_values_are_checked(void **state)
{
    (void)state;
    static const struct {
        const char *json, *key, *why;
        int idx;
    } bad[] = {
        {"{\"a\": \"Add to Cart (v2)\"}", "a", "letters, digits", -1},
        {"{\"a\": \"purchase\"}", "a", "spelled \"Purchase\"", -1},
        {"{\"a\": \"Lead 415 555 2671\"}", "a", "personal data", -1},
        {"{\"a\": [\"Lead\", 7]}", "a", "a string", 1},
        {"{\"a\": [\"Lead\", \"Lead\"]}", "a", "twice in one entry", 1},
        {"{\"a\": []}", "a", "array of 1..8", -1},
        {"{\"a\": \"Lead\", \"A\": \"Purchase\"}", "A", "case-insensitively", -1},
        {"{\"a\": \"\"}", "a", "letters, digits", -1},
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(bad); i++) {
        char why[256] = "";
        const char *key = NULL;
        int idx = 99;
        json_t *in = json_loads(bad[i].json, 0, NULL);
        json_t *m = sg_event_map_compile(in, NULL, why, sizeof(why), &key, &idx);
        if (m || !key || strcmp(key, bad[i].key) || !strstr(why, bad[i].why) || idx != bad[i].idx)
            fail_msg("%s: key %s idx %d: %s", bad[i].json, key ? key : "-", idx, why);
        assert_null(strstr(why, "415"));
        json_decref(in);
    }
}

static void chains_and_loops(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "{\"a\": \"B\", \"b\": \"A\"}",            /* a loop */
        "{\"won\": \"Qualified\", \"qualified\": \"Lead\"}", /* a chain */
        "{\"won\": \"CompletePayment\"}",            /* through the built-in map */
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(refused); i++) {
        char why[256];
        const char *bad = NULL;
        int idx;
        json_t *in = json_loads(refused[i], 0, NULL);
        json_t *m = sg_event_map_compile(in, NULL, why, sizeof(why), &bad, &idx);
        assert_non_null(m);
        if (sg_event_map_check_chains(m, true, why, sizeof(why), &bad) != -1)
            fail_msg("%s: accepted", refused[i]);
        assert_non_null(strstr(why, "applied once"));
        json_decref(m);
        json_decref(in);
    }
    /* A fixpoint is no chain; without the built-in map CompletePayment stays as written. */
    static const char *const fine[] = {"{\"purchase\": \"Purchase\", \"won\": \"Purchase\"}",
                                       "{\"won\": [\"Purchase\", \"Lead\"]}"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(fine); i++) {
        char why[256];
        const char *bad = NULL;
        int idx;
        json_t *in = json_loads(fine[i], 0, NULL);
        json_t *m = sg_event_map_compile(in, NULL, why, sizeof(why), &bad, &idx);
        assert_non_null(m);
        assert_int_equal(sg_event_map_check_chains(m, true, why, sizeof(why), &bad), 0);
        json_decref(m);
        json_decref(in);
    }
    json_t *in = json_pack("{s:s}", "won", "CompletePayment");
    char why[256];
    const char *bad;
    int idx;
    json_t *m = sg_event_map_compile(in, NULL, why, sizeof(why), &bad, &idx);
    assert_int_equal(sg_event_map_check_chains(m, false, why, sizeof(why), &bad), 0);
    json_decref(m);
    json_decref(in);
}

static void config_errors_have_positions(void **state)
{
    (void)state;
    sg_test_config_error(SITE_HEAD ",\n\"event_map\": {\"won\": \"Add to Cart (v2)\"}}]}",
                 ":2:22: sites[0].event_map.won", "letters, digits");
    sg_test_config_error(SITE_HEAD ",\n\"event_map\": {\"Sign.Up\": [\"Lead\", \"lead\"]}}]}",
                 ":2:35: sites[0].event_map[\"Sign.Up\"][1]", "spelled \"Lead\"");
    sg_test_config_error(SITE_HEAD ",\n\"event_map\": {\"a\": \"B\",\n \"b\": \"A\"}}]}",
                 "sites[0].event_map.", "chain or a loop");
    sg_test_config_error(SITE_HEAD ",\n\"event_map\": {\"won\": \"Lead\", \"WON\": \"Purchase\"}}]}",
                 ":2:37: sites[0].event_map.WON", "case-insensitively");
    sg_test_config_error(SITE_HEAD ",\n\"standard_events\": \"yes\"}]}", ":2:20: sites[0].standard_events",
                 "true or false");
    sg_test_config_error(SITE_HEAD ",\n\"event_map\": [\"won\"]}]}", ":2:14: sites[0].event_map",
                 "must be an object");

    char *log;
    struct sg_config *cfg =
        sg_test_config_load(SITE_HEAD ",\"event_map\": {\"Sign Up / Register\": \"CompleteRegistration\","
                       "\"Won\": [\"Purchase\", \"Won Deal\"]}}]}", &log);
    free(log);
    assert_non_null(cfg);
    assert_true(cfg->sites[0].standard_events);
    assert_int_equal(cfg->sites[0].map_fanout, 2);
    json_t *eff = sg_effective_event_map(cfg->sites[0].event_map_src, cfg->sites[0].event_map,
                                         true);
    assert_string_equal(json_string_value(json_object_get(json_object_get(eff, "Won"), "from")),
                        "site");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(eff, "Order Completed"), "from")),
        "builtin");
    json_decref(eff);
    sg_config_free(cfg);
}

/* A map_event rule's own map is checked like event_map, with the position of the entry. */
static void rule_map_errors_have_positions(void **state)
{
    (void)state;
    char *path = sg_write_temp(".json",
        "{\"name\": \"t\", \"rules\": [\n"
        " {\"id\": \"m\", \"why\": \"w\", \"action\": \"map_event\",\n"
        "  \"map\": {\"a.b\": [\"Lead\", \"Add to Cart (v2)\"]}}]}");
    sg_capture_begin();
    struct sg_ruleset *rs = sg_ruleset_load(path);
    char *log = sg_capture_end();
    assert_null(rs);
    if (!strstr(log, ":3:27: rules[0].map[\"a.b\"][1]") || !strstr(log, "letters, digits"))
        fail_msg("%s", log);
    free(log);
    unlink(path);
    free(path);
}

/* Run one event through the pipeline of a test site with the default rule set. */
static enum sg_pipe_result run(struct sg_site *site, const char *text, struct sg_event *ev,
                               char *err)
{
    struct sg_limits limits;
    sg_limits_default(&limits);
    static struct sg_request_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.now = 1763700000;
    strcpy(ctx.ip, "203.0.113.9");
    json_t *in = json_loads(text, 0, NULL);
    assert_non_null(in);
    sg_event_init(ev);
    enum sg_pipe_result r = sg_pipeline_run(site, &limits, in, &ctx, ev, err, 256);
    json_decref(in);
    return r;
}

static const char *map_source(const struct sg_event *ev)
{
    for (size_t i = 0; i < ev->n_receipt; i++)
        if (ev->receipt[i].action == SG_RA_MAP_EVENT)
            return sg_map_source_name(ev->receipt[i].count);
    return NULL;
}

static void site_map_wins_and_receipt_says_which(void **state)
{
    (void)state;
    struct sg_site *site = sg_test_site("rules/default.json");
    char why[256], err[256];
    const char *bad;
    int idx;
    json_decref(site->event_map);
    json_t *src = json_pack("{s:s,s:[s,s],s:s}", "Order Completed", "Order Done",
                            "won", "Purchase", "Won Deal", "Sign Up / Register",
                            "CompleteRegistration");
    site->event_map = sg_event_map_compile(src, NULL, why, sizeof(why), &bad, &idx);
    json_decref(src);
    assert_non_null(site->event_map);
    struct sg_event ev;

    assert_int_equal(run(site, "{\"event\":\"order completed\"}", &ev, err), SG_PIPE_OK);
    assert_string_equal(ev.name, "Order Done");
    assert_string_equal(map_source(&ev), "site");
    sg_event_release(&ev);

    assert_int_equal(run(site, "{\"event\":\"Product Added\"}", &ev, err), SG_PIPE_OK);
    assert_string_equal(ev.name, "AddToCart");
    assert_string_equal(map_source(&ev), "builtin");
    json_t *receipt = sg_receipt_json(&ev);
    char *txt = json_dumps(receipt, JSON_COMPACT);
    assert_non_null(strstr(txt, "\"action\":\"map_event\",\"map\":\"builtin\""));
    free(txt);
    json_decref(receipt);
    sg_event_release(&ev);

    /* One-to-many: derived ids. */
    assert_int_equal(run(site, "{\"event\":\"WON\",\"event_id\":\"X\"}", &ev, err), SG_PIPE_OK);
    assert_int_equal(ev.n_also, 1);
    struct sg_outbound o;
    sg_event_outbound_begin(&o, &ev, 0);
    assert_true(sg_event_outbound_next(&o));
    assert_string_equal(ev.name, "Purchase");
    assert_string_equal(ev.event_id, "X");
    assert_true(sg_event_outbound_next(&o));
    assert_string_equal(ev.name, "Won Deal");
    assert_string_equal(ev.event_id, "X:Won Deal");
    assert_false(sg_event_outbound_next(&o));
    assert_string_equal(ev.name, "Purchase"); /* the event's own again */
    assert_string_equal(ev.event_id, "X");
    sg_event_outbound_begin(&o, &ev, 1); /* from the second */
    assert_true(sg_event_outbound_next(&o));
    assert_string_equal(ev.name, "Won Deal");
    assert_false(sg_event_outbound_next(&o));
    sg_event_release(&ev);

    assert_int_equal(run(site, "{\"event\":\"Sign Up / Register\"}", &ev, err), SG_PIPE_OK);
    assert_string_equal(ev.name, "CompleteRegistration");
    sg_event_release(&ev);

    /* Unmapped and invalid: refused for that event, the reason does not repeat the name. */
    assert_int_equal(run(site, "{\"event\":\"Add to Cart (v2)\"}", &ev, err), SG_PIPE_INVALID);
    assert_non_null(strstr(err, "event: not mapped"));
    assert_null(strstr(err, "Cart"));
    sg_event_release(&ev);
    /* Personal data in the input name: refused before any map, never echoed. */
    assert_int_equal(run(site, "{\"event\":\"Signup jane@doe.com\"}", &ev, err), SG_PIPE_INVALID);
    assert_non_null(strstr(err, "personal data"));
    assert_null(strstr(err, "jane"));
    sg_event_release(&ev);
    /* Unknown valid names pass as custom events. */
    assert_int_equal(run(site, "{\"event\":\"Pageview\"}", &ev, err), SG_PIPE_OK);
    assert_string_equal(ev.name, "Pageview");
    assert_null(map_source(&ev));
    sg_event_release(&ev);

    /* standard_events: false turns the built-in map off. */
    site->standard_events = false;
    assert_int_equal(run(site, "{\"event\":\"Product Added\"}", &ev, err), SG_PIPE_OK);
    assert_string_equal(ev.name, "Product Added");
    sg_event_release(&ev);
    sg_test_site_free(site);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtin_table_is_sound),
        cmocka_unit_test(lookups_are_case_insensitive),
        cmocka_unit_test(map_values_are_checked),
        cmocka_unit_test(chains_and_loops),
        cmocka_unit_test(config_errors_have_positions),
        cmocka_unit_test(rule_map_errors_have_positions),
        cmocka_unit_test(rule_maps_count_in_the_fanout),
        cmocka_unit_test(site_map_wins_and_receipt_says_which),
    };
    return cmocka_run_group_tests(tests, sg_test_config_env, NULL);
}
