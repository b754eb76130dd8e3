/*
 * The audit report's renderers on a hand-made model with hostile strings:
 * CSV quoting (RFC 4180), HTML and Markdown escaping, the atomic write, and
 * the rule descriptions the report is built from.
 */
#include "scrubgate/common.h"
#include "scrubgate/report.h"
#include "scrubgate/rules.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const hostile = "a \"quoted\", <script>alert(1)</script> & | pipe\nline";

static json_t *model(void)
{
    json_t *rule = json_pack("{s:s,s:s,s:[s],s:{s:b},s:s,s:{}}", "id", "r1", "action", "drop",
                             "fields", "user.email", "condition", "bot", 1, "why", hostile,
                             "options");
    json_t *site = json_pack(
        "{s:s,s:{s:s,s:s,s:s,s:s},s:[o],s:{s:s,s:b,s:{s:i,s:{s:[i]}}},s:[{s:s,s:b,s:b,s:n}],"
        "s:{},s:b,s:{s:{s:s,s:s}}}",
        "id", "shop", "rule_set", "path", "rules/x,y.json", "name", "x", "version", "sha256:abc",
        "sha256", "abcdef", "rules", rule, "consent", "default", "denied", "honor_gpc", 1, "tcf",
        "vendor_id", 7, "purposes", "ad_storage", 1, "destinations", "id", "tiktok:P1", "dry_run",
        1, "test", 0, "events", "event_map", "standard_events", 1, "matrix", "user.email",
        "granted", hostile, "denied", "dropped");
    return json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:s,s:s},{s:s,s:s,s:s}],s:{s:s},s:{s:s},s:[o]}",
                     "title", "scrubgate audit report", "generated", "2026-01-01T00:00:00Z",
                     "scrubgate_version", "9.9.9", "config", "c.json", "consent_states", "key",
                     "granted", "title", "all, granted", "signals", "s", "key", "denied", "title",
                     "denied", "signals", "s", "outcomes", "dropped", "does not leave", "snippet",
                     "integrity", "sha384-x", "sites", site);
}

static char *render(const json_t *m, enum sg_report_format fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(sg_report_render(m, fmt, f), 0);
    fclose(f);
    return buf;
}

static void test_format_names(void **state)
{
    (void)state;
    assert_int_equal(sg_report_format_from_name("md"), SG_REPORT_MD);
    assert_int_equal(sg_report_format_from_name("markdown"), SG_REPORT_MD);
    assert_int_equal(sg_report_format_from_name("html"), SG_REPORT_HTML);
    assert_int_equal(sg_report_format_from_name("csv"), SG_REPORT_CSV);
    assert_int_equal(sg_report_format_from_name("json"), SG_REPORT_JSON);
    assert_int_equal(sg_report_format_from_name("text"), SG_REPORT_TEXT);
    assert_int_equal(sg_report_format_from_name("HTML"), -1);
    assert_int_equal(sg_report_format_from_name("pdf"), -1);
}

static void test_csv_quotes_rfc4180(void **state)
{
    (void)state;
    json_t *m = model();
    char *out = render(m, SG_REPORT_CSV);
    /* header, then 1 field x 2 states; CRLF line ends; quotes doubled; a field with a comma,
     * quote or line break is quoted, others are not. */
    assert_non_null(strstr(out, "site,rule_set,rule_set_sha256,outbound_field,consent_state,"
                                "consent_state_title,outcome,generated,scrubgate_version\r\n"));
    assert_non_null(strstr(out, "shop,\"rules/x,y.json\",abcdef,user.email,granted,"
                                "\"all, granted\",\"a \"\"quoted\"\", <script>alert(1)</script> "
                                "& | pipe\nline\",2026-01-01T00:00:00Z,9.9.9\r\n"));
    assert_non_null(strstr(out, "shop,\"rules/x,y.json\",abcdef,user.email,denied,denied,dropped,"
                                "2026-01-01T00:00:00Z,9.9.9\r\n"));
    free(out);
    json_decref(m);
}

/* A cell a spreadsheet would run as a formula shows as text (a leading '), quoted or not. */
static void test_csv_defuses_formulas(void **state)
{
    (void)state;
    json_t *m = model();
    json_t *site = json_array_get(json_object_get(m, "sites"), 0);
    json_object_set_new(site, "id", json_string("-2-1"));
    json_object_set_new(json_object_get(site, "rule_set"), "path",
                        json_string("=cmd|' /C calc'!A0,x"));
    char *out = render(m, SG_REPORT_CSV);
    assert_non_null(strstr(out, "\r\n'-2-1,\"'=cmd|' /C calc'!A0,x\",abcdef,user.email,denied,"));
    assert_null(strstr(out, "\r\n-2-1"));
    assert_null(strstr(out, ",=cmd"));
    free(out);
    json_decref(m);
}

static void test_html_escapes_everything(void **state)
{
    (void)state;
    json_t *m = model();
    char *out = render(m, SG_REPORT_HTML);
    assert_null(strstr(out, "<script"));
    assert_null(strstr(out, "src="));
    assert_null(strstr(out, "href="));
    assert_non_null(strstr(out, "a &quot;quoted&quot;, &lt;script&gt;alert(1)&lt;/script&gt; "
                                "&amp; | pipe\nline"));
    assert_non_null(strstr(out, "<style>"));
    assert_non_null(strstr(out, "<td>7</td>")); /* the TCF vendor id */
    assert_non_null(strstr(out, "</html>\n"));
    free(out);
    json_decref(m);
}

static void test_markdown_cells_stay_cells(void **state)
{
    (void)state;
    json_t *m = model();
    char *out = render(m, SG_REPORT_MD);
    assert_null(strstr(out, "<script"));
    /* no raw |, no line break, no markup inside a cell */
    assert_non_null(strstr(out, "a \"quoted\", &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\| "
                                "pipe line |"));
    assert_non_null(strstr(out, "| outbound field | all, granted | denied |\n|---|---|---|\n"));
    assert_non_null(strstr(out, "| TCF vendor id | 7 |"));
    assert_non_null(strstr(out, "| `tiktok:P1` | yes | no | all |"));
    free(out);
    json_decref(m);
}

static void test_write_is_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-report-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], bad[128];
    snprintf(path, sizeof(path), "%s/r.csv", dir);
    snprintf(bad, sizeof(bad), "%s/missing/r.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    json_t *m = model();
    assert_int_equal(sg_report_write(m, SG_REPORT_CSV, path), 0);
    f = fopen(path, "r");
    char head[5] = {0};
    assert_int_equal(fread(head, 1, 4, f), 4);
    fclose(f);
    assert_string_equal(head, "site");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(sg_report_write(m, SG_REPORT_CSV, bad), -1);
    unlink(path);
    assert_int_equal(rmdir(dir), 0); /* nothing else was left behind */
    json_decref(m);
}

static void test_rules_as_written(void **state)
{
    (void)state;
    struct sg_ruleset *rs = sg_ruleset_load("rules/default.json");
    assert_non_null(rs);
    json_t *d = sg_ruleset_describe(rs);
    assert_int_equal(json_array_size(d), sg_ruleset_count(rs));
    json_t *first = json_array_get(d, 0);
    assert_string_equal(json_string_value(json_object_get(first, "id")), "drop-bots");
    assert_true(json_is_true(json_object_get(json_object_get(first, "condition"), "bot")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(first, "options"), "reason")), "bot");
    assert_int_equal(json_array_size(json_object_get(first, "fields")), 0);
    /* "field" (one) is reported as an array like "fields" */
    size_t i;
    json_t *r;
    bool seen = false;
    json_array_foreach(d, i, r) {
        if (!strcmp(json_string_value(json_object_get(r, "id")), "ip-keyed-hash")) {
            seen = true;
            assert_string_equal(json_string_value(json_array_get(json_object_get(r, "fields"), 0)),
                                "user.ip");
            assert_true(json_is_null(json_object_get(r, "condition")));
            assert_non_null(json_object_get(r, "why"));
        }
    }
    assert_true(seen);
    assert_int_equal(strlen(sg_ruleset_sha256(rs)), 64);
    assert_memory_equal(sg_ruleset_version(rs) + 7, sg_ruleset_sha256(rs), 12);
    sg_ruleset_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_csv_quotes_rfc4180),
        cmocka_unit_test(test_csv_defuses_formulas),
        cmocka_unit_test(test_html_escapes_everything),
        cmocka_unit_test(test_markdown_cells_stay_cells),
        cmocka_unit_test(test_write_is_atomic),
        cmocka_unit_test(test_rules_as_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
