/* Configuration: defaults, and every error names file, line and column. */
#include "testutil.h"

#include "scrubgate/config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SITE_OK                                                                                    \
    "{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","                \
    "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":\"SGT_TOKEN\"}]}"

/* Ids go into metric labels, file names and logs: [A-Za-z0-9_.-], 1..64. */
static void identifiers(void **state)
{
    char *log;
    (void)state;
#define SITE_ID(id, dests)                                                                         \
    "{\"sites\":[{\"id\":\"" id "\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\"," \
    "\"destinations\":[" dests "]}]}"
#define DEST(extra) "{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":\"SGT_TOKEN\"" extra "}"
    sg_test_config_error(SITE_ID("sh\\\"op x", DEST("")), ":1:17: sites[0].id",
                         "must be 1 to 64 characters of A-Z, a-z, 0-9");
    sg_test_config_error(SITE_ID("", DEST("")), "sites[0].id", "non-empty");
    sg_test_config_error(SITE_ID("a234567890123456789012345678901234567890123456789012345678901234x",
                                 DEST("")),
                         "sites[0].id", "1 to 64 characters");
    sg_test_config_error(SITE_ID("s", "{\"type\":\"tiktok\",\"pixel_code\":\"P 1\",\"dry_run\":true}"),
                         "sites[0].destinations[0].pixel_code", "1 to 64 characters");
    sg_test_config_error(SITE_ID("s", DEST(",\"id\":\"a/b\"")), "sites[0].destinations[0].id",
                         "1 to 64 characters");
    sg_test_config_error(SITE_ID("s", DEST("") "," DEST("")), "sites[0].destinations[1]",
                         "duplicate destination id \"tiktok:P1\"");
    struct sg_config *cfg = sg_test_config_load(
        SITE_ID("shop.eu-1_x", DEST("") "," DEST(",\"id\":\"tiktok-second\"")), &log);
    assert_non_null(cfg);
    assert_string_equal(cfg->sites[0].dests[0].id, "tiktok:P1");
    assert_string_equal(cfg->sites[0].dests[1].id, "tiktok-second");
    sg_config_free(cfg);
    free(log);
}

/* Relative paths resolve against the config file's directory; absolute ones stay. */
static void paths_relative_to_the_config(void **state)
{
    char *log;
    (void)state;
    struct sg_config *cfg = sg_test_config_load("{\"state_dir\":\"st\",\"sites\":[" SITE_OK "]}", &log);
    assert_non_null(cfg);
    const char *slash = strrchr(cfg->path, '/');
    size_t dl = (size_t)(slash - cfg->path);
    assert_memory_equal(cfg->state_dir, cfg->path, dl);
    assert_string_equal(cfg->state_dir + dl, "/st");
    assert_memory_equal(cfg->sites[0].rules_path, cfg->path, dl);
    assert_string_equal(cfg->sites[0].rules_path + dl, "/rules/default.json");
    sg_config_free(cfg);
    free(log);
    cfg = sg_test_config_load("{\"state_dir\":\"/var/tmp/sg-abs\",\"sites\":[" SITE_OK "]}", &log);
    assert_non_null(cfg);
    assert_string_equal(cfg->state_dir, "/var/tmp/sg-abs");
    sg_config_free(cfg);
    free(log);
    /* The shipped config names ../rules from conf/. */
    cfg = sg_config_load("conf/scrubgate.json");
    assert_non_null(cfg);
    assert_string_equal(cfg->sites[0].rules_path, "rules/default.json");
    assert_string_equal(cfg->state_dir, "var");
    sg_config_free(cfg);
}

static void logging_keys(void **state)
{
    char *log;
    (void)state;
    struct sg_config *cfg = sg_test_config_load("{\"sites\":[" SITE_OK "]}", &log);
    assert_non_null(cfg);
    assert_int_equal(cfg->log_format, SG_LOG_TEXT);
    assert_int_equal(cfg->log_level, SG_LOG_INFO);
    sg_config_free(cfg);
    free(log);
    cfg = sg_test_config_load(
        "{\"log_format\":\"json\",\"log_level\":\"warn\",\"sites\":[" SITE_OK "]}", &log);
    assert_non_null(cfg);
    assert_int_equal(cfg->log_format, SG_LOG_JSON);
    assert_int_equal(cfg->log_level, SG_LOG_WARN);
    sg_config_free(cfg);
    free(log);
    sg_test_config_error("{\"log_format\":\"xml\",\"sites\":[" SITE_OK "]}", ":1:15: log_format",
                         "must be \"text\" or \"json\"");
    sg_test_config_error("{\"log_level\":\"trace\",\"sites\":[" SITE_OK "]}", "log_level",
                         "must be \"error\", \"warn\", \"info\" or \"debug\"");
}

static void valid_config_and_defaults(void **state)
{
    char *log;
    (void)state;
    struct sg_config *cfg = sg_test_config_load("{\"sites\":[" SITE_OK "]}", &log);
    assert_non_null(cfg);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_int_equal(cfg->limits.max_body_bytes, 65536);
    assert_int_equal(cfg->limits.max_events_per_request, 100);
    assert_int_equal(cfg->limits.flush_interval_ms, 250);
    assert_int_equal(cfg->limits.batch_max_events, 1000);
    assert_true(cfg->workers >= 1);
    const struct sg_site *s = sg_config_site_by_id(cfg, "s");
    assert_non_null(s);
    assert_int_equal(s->consent.default_state, SG_CONSENT_DENIED);
    assert_true(s->consent.honor_gpc);
    assert_string_equal(s->dests[0].url,
                        "https://business-api.tiktok.com/open_api/v1.3/event/track/");
    assert_string_equal(s->dests[0].access_token, "token-value-xyz");
    assert_null(strstr(log, "token-value-xyz"));
    free(log);
    sg_config_free(cfg);
}

static void shipped_config_is_valid(void **state)
{
    (void)state;
    unsetenv("SCRUBGATE_SHOP_SECRET");
    sg_capture_begin();
    struct sg_config *cfg = sg_config_load("conf/scrubgate.json");
    free(sg_capture_end());
    assert_non_null(cfg);
    assert_true(cfg->sites[0].dests[0].dry_run);
    assert_true(cfg->sites[0].secret_ephemeral); /* allowed: nothing can leave a dry run */
    sg_config_free(cfg);
}

static void errors_with_positions(void **state)
{
    (void)state;
    sg_test_config_error("{\"sites\":[" SITE_OK "],\n  \"listne\": \"x\"}", ":2:3: listne", "unknown key");
    sg_test_config_error("{\"sites\":[\n" SITE_OK ",\n{\"id\":\"s\"}]}", ":3:1: sites[1]",
                 "\"rules\" is required");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"limits\": {\"batch_max_events\": 5000}}",
                 ":1:", "limits.batch_max_events: must be an integer from 1 to 1000");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"trusted_proxies\": [\"10.0.0.0/33\"]}",
                 "trusted_proxies[0]", "CIDR");
    sg_test_config_error("{\"sites\": [], \"listen\": \"x\"}", "listen", "host:port");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"type\": \"jetstream\"}}",
                         "queue", "at least one nats:// URL");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"type\": \"jetstream\", "
                         "\"servers\": [\"nats://a:4222\", \"http://b\"]}}",
                         "queue.servers[1]", "nats:// or tls:// URL");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"type\": \"jetstream\", "
                         "\"servers\": [\"nats://a:4222\"], \"replicas\": 7}}",
                         "queue.replicas", "from 1 to 5");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"type\": \"jetstream\", "
                         "\"servers\": [\"nats://a:4222\"], \"stream\": \"A.B\"}}",
                         "queue.stream", "letters, digits");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"type\": \"jetstream\", "
                         "\"servers\": [\"nats://a:4222\"], \"creds_file\": \"/no/such.creds\"}}",
                         "queue.creds_file", "cannot read /no/such.creds");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"type\": \"redis\"}}",
                         "queue.type", "must be \"local\"");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"type\": \"local\", "
                         "\"stream\": \"S\"}}", "queue", "no other key");
    sg_test_config_error("{\"sites\": [" SITE_OK "], \"queue\": {\"tpye\": \"local\"}}",
                         "queue.tpye", "unknown key");
    sg_test_config_error("{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_NOPE\","
                 "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":\"SGT_TOKEN\"}]}]}",
                 "sites[0]", "secret's environment variable SGT_NOPE is not set");
    sg_test_config_error("{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","
                 "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\"}]}]}",
                 "sites[0].destinations[0]", "access_token_env or access_token_file is required");
    sg_test_config_error("{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","
                 "\"destinations\":[{\"type\":\"facebook\",\"pixel_code\":\"P1\"}]}]}",
                 "sites[0].destinations[0].type", "unknown destination type");
    sg_test_config_error("{\"sites\":[{\"id\":\"s\",\"rules\":\"no/such.json\",\"secret_env\":\"SGT_SECRET\","
                 "\"destinations\":[]}]}",
                 "no/such.json", "cannot open");
    sg_test_config_error("{\"sites\": [" SITE_OK "] \"x\": 1}", ":1:", "");
    sg_test_config_error("{\"sites\":[" SITE_OK "," SITE_OK "]}", "sites[1].id", "duplicate site id");
    sg_test_config_error("{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","
                 "\"consent\":{\"default\":\"maybe\"},\"destinations\":[]}]}",
                 ":1:97: sites[0].consent.default", "must be \"granted\" or \"denied\"");
    sg_test_config_error("{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","
                 "\"consent\":{\"tcf\":{\"vendor_id\":1,\"purposes\":{\"ad_storage\":[1,25]}}},"
                 "\"destinations\":[]}]}",
                 "sites[0].consent.tcf.purposes.ad_storage[1]", "a TCF purpose id is 1 to 24");
    sg_test_config_error("{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","
                 "\"consent\":{\"tcf\":{\"vendor_id\":1,\"purposes\":{\"marketing\":[1]}}},"
                 "\"destinations\":[]}]}",
                 "sites[0].consent.tcf.purposes.marketing", "unknown purpose");
}

/*
 * Limits the code cannot honour are refused at load, with the position of
 * the value: a body whose event cannot fit in one spool record (it would be
 * answered 202 and then be unreadable at recovery), a field longer than the
 * scrubber can hold (its event would be skipped as "scrub_limit").
 */
static void limits_the_code_cannot_honour(void **state)
{
    char *log;
    (void)state;
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"max_body_bytes\": 67108864}}",
                 ":2:31: limits.max_body_bytes",
                 "must be an integer from 1024 to 8388608 (an event must fit in one 16 MiB "
                 "spool record)");
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"max_body_bytes\": 16777216}}",
                 ":2:31: limits.max_body_bytes", "from 1024 to 8388608");
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"max_field_bytes\": 1048576}}",
                 ":2:32: limits.max_field_bytes",
                 "must be an integer from 64 to 65536 (the longest text the scrubber takes)");
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"max_field_bytes\": 65537}}",
                 ":2:32: limits.max_field_bytes", "from 64 to 65536");
    /* The largest values that are honoured still load. */
    struct sg_config *cfg =
        sg_test_config_load("{\"sites\": [" SITE_OK "], \"limits\": {\"max_body_bytes\": 8388608, "
             "\"max_field_bytes\": 65536}}",
             &log);
    assert_non_null(cfg);
    assert_int_equal(cfg->limits.max_body_bytes, 8388608);
    assert_int_equal(cfg->limits.max_field_bytes, 65536);
    free(log);
    sg_config_free(cfg);
}

#define SITE_REGION(r)                                                                             \
    "{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\",\n" \
    " \"phone_region\": " r ",\n"                                                                  \
    " \"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":\"SGT_TOKEN\"}]}]}"

/* phone_region: an upper-case region libphonenumber knows, or absent (no region). */
static void phone_region(void **state)
{
    char *log;
    (void)state;
    struct sg_config *cfg = sg_test_config_load(SITE_REGION("\"US\""), &log);
    assert_non_null(cfg);
    assert_string_equal(cfg->sites[0].phone_region, "US");
    free(log);
    sg_config_free(cfg);
    cfg = sg_test_config_load(SITE_REGION("null"), &log);
    assert_non_null(cfg);
    assert_null(cfg->sites[0].phone_region);
    free(log);
    sg_config_free(cfg);
    cfg = sg_test_config_load("{\"sites\":[" SITE_OK "]}", &log);
    assert_non_null(cfg);
    assert_null(cfg->sites[0].phone_region);
    free(log);
    sg_config_free(cfg);
    sg_test_config_error(SITE_REGION("\"XX\""), ":2:18: sites[0].phone_region",
                 "\"XX\" is not a region libphonenumber knows");
    sg_test_config_error(SITE_REGION("\"UK\""), ":2:18: sites[0].phone_region", "\"UK\" is not a region");
    sg_test_config_error(SITE_REGION("\"USA\""), ":2:18: sites[0].phone_region", "not a region");
    sg_test_config_error(SITE_REGION("\"\""), ":2:18: sites[0].phone_region", "not a region");
    sg_test_config_error(SITE_REGION("\"ZZ\""), ":2:18: sites[0].phone_region", "not a region");
    sg_test_config_error(SITE_REGION("\"001\""), ":2:18: sites[0].phone_region", "not a region");
    sg_test_config_error(SITE_REGION("\"us\""), ":2:18: sites[0].phone_region",
                 "a region code is upper case: \"US\"");
    sg_test_config_error(SITE_REGION("\"xx\""), ":2:18: sites[0].phone_region", "\"xx\" is not a region");
    sg_test_config_error(SITE_REGION("1"), ":2:18: sites[0].phone_region", "must be a region code");
}

static void secret_never_in_errors(void **state)
{
    char *log;
    (void)state;
    setenv("SGT_SHORT", "tiny-secret", 1);
    struct sg_config *cfg = sg_test_config_load("{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\","
                                 "\"secret_env\":\"SGT_SHORT\",\"destinations\":[{\"type\":\"tiktok\","
                                 "\"pixel_code\":\"P1\",\"access_token_env\":\"SGT_TOKEN\"}]}]}",
                                 &log);
    assert_null(cfg);
    assert_non_null(strstr(log, "at least 16 bytes"));
    assert_null(strstr(log, "tiny-secret"));
    assert_null(strstr(log, "token-value-xyz"));
    free(log);
}

static void cidrs_and_hosts(void **state)
{
    struct sg_cidr c;
    int fam;
    unsigned char a[16];
    (void)state;
    assert_int_equal(sg_cidr_parse("10.1.0.0/16", &c), 0);
    sg_addr_parse("10.1.200.3", &fam, a);
    assert_true(sg_cidr_match(&c, fam, a));
    sg_addr_parse("10.2.0.1", &fam, a);
    assert_false(sg_cidr_match(&c, fam, a));
    assert_int_equal(sg_cidr_parse("2001:db8::/32", &c), 0);
    sg_addr_parse("2001:db8:ffff::1", &fam, a);
    assert_true(sg_cidr_match(&c, fam, a));
    sg_addr_parse("::ffff:10.1.2.3", &fam, a); /* IPv4-mapped counts as IPv4 */
    assert_int_equal(fam, AF_INET);
    assert_int_equal(sg_cidr_parse("10.0.0.0/33", &c), -1);
    assert_int_equal(sg_cidr_parse("nope/8", &c), -1);
    char host[64];
    int port;
    assert_int_equal(sg_split_hostport("[::1]:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_int_equal(sg_split_hostport("127.0.0.1:99999", host, sizeof(host), &port), -1);
}

/* A site with the given extra keys (JSON members, no leading comma). */
#define SITE_WITH(extra)                                                                           \
    "{\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","     \
    "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":"            \
    "\"SGT_TOKEN\"}]," extra "}]}"

static void origins_and_cookies(void **state)
{
    (void)state;
    char *log;
    struct sg_config *cfg = sg_test_config_load(
        SITE_WITH("\"allowed_origins\":[\"https://*.example.com\",\"http://127.0.0.1:8000\","
                  "\"https://[::1]:8443\"],\"cookie_domain\":\".Shop.Example.com\","
                  "\"click_id_days\":7"),
        &log);
    free(log);
    assert_non_null(cfg);
    const struct sg_site *s = &cfg->sites[0];
    assert_string_equal(s->cookie_domain, "shop.example.com"); /* no dot, lower case */
    assert_int_equal(s->click_id_days, 7);
    assert_true(sg_host_within("sg.shop.example.com:443", "shop.example.com"));
    assert_true(sg_host_within("SHOP.EXAMPLE.COM", "shop.example.com"));
    assert_false(sg_host_within("evilshop.example.com", "shop.example.com"));
    assert_false(sg_host_within("example.com", "shop.example.com"));
    assert_false(sg_host_within("[::1]:80", "shop.example.com"));
    static const struct { const char *origin; bool ok; } cases[] = {
        {"https://shop.example.com", true},
        {"https://a.b.example.com", true},
        {"HTTPS://Shop.Example.COM", true},
        {"https://example.com", false},         /* not the bare domain */
        {"http://shop.example.com", false},     /* same scheme only */
        {"https://shop.example.com:8443", false}, /* default port only */
        {"https://evil-example.com", false},
        {"https://shop.example.com.evil.net", false},
        {"https://.example.com", false},
        {"https://a..example.com", false},
        {"https://a_b.example.com", false},
        {"http://127.0.0.1:8000", true},
        {"http://127.0.0.1:8001", false},
        {"http://127.0.0.1", false},
        {"https://[::1]:8443", true},
        {"null", false},
        {"", false},
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(cases); i++)
        if (sg_site_origin_allowed(s, cases[i].origin) != cases[i].ok)
            fail_msg("origin %s: expected %s", cases[i].origin, cases[i].ok ? "allowed" : "refused");
    /* A pixel code names its site (ttq.load(pixel) on a page that swapped the pixel). */
    assert_ptr_equal(sg_config_site_by_id(cfg, "P1"), s);
    assert_null(sg_config_site_by_id(cfg, "P2"));
    sg_config_free(cfg);

    cfg = sg_test_config_load(SITE_WITH("\"allowed_origins\":[]"), &log);
    free(log);
    assert_int_equal(cfg->sites[0].click_id_days, 28);
    assert_null(cfg->sites[0].cookie_domain);
    sg_config_free(cfg);

    sg_test_config_error(SITE_WITH("\"allowed_origins\":[\"https://shop.example.com/\"]"),
                         "sites[0].allowed_origins[0]", "no trailing /");
    sg_test_config_error(SITE_WITH("\"allowed_origins\":[\"shop.example.com\"]"),
                         "sites[0].allowed_origins[0]", "http(s)://host[:port]");
    sg_test_config_error(SITE_WITH("\"allowed_origins\":[\"https://*.com\"]"),
                         "sites[0].allowed_origins[0]", "at least two labels");
    sg_test_config_error(SITE_WITH("\"allowed_origins\":[\"https://*.example.com:8443\"]"),
                         "sites[0].allowed_origins[0]", "no port");
    sg_test_config_error(SITE_WITH("\"allowed_origins\":[\"https://a.example.com:99999\"]"),
                         "sites[0].allowed_origins[0]", "host[:port]");
    sg_test_config_error(SITE_WITH("\"allowed_origins\":[\"https://a.*.example.com\"]"),
                         "sites[0].allowed_origins[0]", "host[:port]");
    sg_test_config_error(SITE_WITH("\"cookie_domain\":\"com\""), "sites[0].cookie_domain",
                         "at least two labels");
    sg_test_config_error(SITE_WITH("\"cookie_domain\":\"shop.example.com; Secure\""),
                         "sites[0].cookie_domain", "domain name");
    sg_test_config_error(SITE_WITH("\"hosts\":[\"sg.shop.example.com\"],"
                                   "\"cookie_domain\":\"evil.example\""),
                         "sites[0].cookie_domain", "covers none of the site's hosts");
    sg_test_config_error(SITE_WITH("\"click_id_days\":0"), "sites[0].click_id_days", "1 to 400");
    sg_test_config_error(SITE_WITH("\"click_id_days\":401"), "sites[0].click_id_days", "400");
}

/* Rate limits: defaults (100 per IP, per site off), 0 turns either off, bad values are refused
 * with their position. */
static void rate_limits(void **state)
{
    char *log;
    (void)state;
    struct sg_config *cfg = sg_test_config_load("{\"sites\":[" SITE_OK "]}", &log);
    assert_non_null(cfg);
    assert_int_equal(cfg->limits.rate_per_ip, 100);
    assert_int_equal(cfg->limits.rate_per_site, 0);
    sg_config_free(cfg);
    free(log);
    cfg = sg_test_config_load("{\"sites\":[" SITE_OK "], \"limits\": {\"rate_per_ip\": 0, "
                              "\"rate_per_site\": 5000}}",
                              &log);
    assert_non_null(cfg);
    assert_int_equal(cfg->limits.rate_per_ip, 0);
    assert_int_equal(cfg->limits.rate_per_site, 5000);
    sg_config_free(cfg);
    free(log);
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"rate_per_ip\": -1}}",
                         ":2:28: limits.rate_per_ip",
                         "must be an integer from 0 to 1000000 (events per second per client "
                         "IP, 0 for no limit)");
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"rate_per_ip\": 2.5}}",
                         ":2:28: limits.rate_per_ip", "must be an integer");
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"rate_per_site\": \"10\"}}",
                         ":2:30: limits.rate_per_site", "must be an integer from 0 to 10000000");
    sg_test_config_error("{\"sites\": [" SITE_OK "],\n \"limits\": {\"rate_per_sight\": 1}}",
                         ":2:13: limits.rate_per_sight", "unknown key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_config_and_defaults),
        cmocka_unit_test(shipped_config_is_valid),
        cmocka_unit_test(errors_with_positions),
        cmocka_unit_test(identifiers),
        cmocka_unit_test(paths_relative_to_the_config),
        cmocka_unit_test(logging_keys),
        cmocka_unit_test(limits_the_code_cannot_honour),
        cmocka_unit_test(phone_region),
        cmocka_unit_test(secret_never_in_errors),
        cmocka_unit_test(cidrs_and_hosts),
        cmocka_unit_test(origins_and_cookies),
        cmocka_unit_test(rate_limits),
    };
    return cmocka_run_group_tests(tests, sg_test_config_env, NULL);
}
