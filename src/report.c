/*
 * report.c - the audit report of `scrubgate check` (report.h).
 *
 * Builds one jansson model and renders it; the renderers read only the model,
 * so every format says the same thing. The policy matrix comes from running
 * the site's real pipeline (normalize, consent, rules, TikTok formatting) on a
 * synthetic probe event under each consent state; nothing in it is written by
 * hand. The probe's values are synthetic and never copied into the model:
 * each cell names what became of a field, not its value.
 */
#include "scrubgate/common.h"
#include "scrubgate/report.h"
#include "scrubgate/dest.h"
#include "scrubgate/eventmap.h"
#include "scrubgate/log.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/rules.h"
#include "scrubgate/snippet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the policy matrix ---- */

/* What became of outbound field f in out (the TikTok event) and ev (its receipt). */
static const char *treatment(const struct sg_event *ev, json_t *out, int f)
{
    if (f == SG_F_LIMITED_DATA_USE)
        return json_is_true(json_object_get(out, "limited_data_use")) ? "true" : "false";
    bool present = false;
    if (f == SG_F_PROPERTIES)
        present = json_object_get(out, "properties") != NULL;
    else if (f == SG_F_PAGE_URL || f == SG_F_PAGE_REFERRER)
        present = json_object_get(json_object_get(out, "page"),
                                  f == SG_F_PAGE_URL ? "url" : "referrer") != NULL;
    else
        present = (ev->allowed & SG_FIELD_BIT(f)) && ev->val[f];
    if (!present)
        return "dropped";
    const char *t = "raw";
    bool truncated = false;
    for (size_t i = 0; i < ev->n_receipt; i++) {
        const struct sg_receipt_entry *e = &ev->receipt[i];
        if (e->field != f)
            continue;
        if (e->action == SG_RA_TRUNCATE_IP) {
            truncated = true;
            t = "truncated";
        } else if (e->action == SG_RA_HASH_HMAC)
            t = truncated ? "truncated+keyed_hash" : "keyed_hash";
        else if (e->action == SG_RA_HASH_SHA256)
            t = "sha256";
        else if (e->action == SG_RA_SET)
            t = f == SG_F_USER_EXTERNAL_ID ? "keyed_hash(session)" : "set";
        else if (e->action == SG_RA_REDACT && !strcmp(t, "raw"))
            t = "scrubbed";
    }
    return t;
}

/*
 * The consent states of the matrix, as the probe sends them: the event's
 * consent field, Sec-GPC, and the usprivacy cookie. The first five keys are
 * those of earlier releases (scripts read them); the order is the columns'.
 */
static const struct {
    const char *key, *title, *signals, *consent, *usp;
    bool gpc;
} states[] = {
    {"granted", "consent granted", "consent: \"granted\"", "\"granted\"", NULL, false},
    {"denied", "consent denied", "consent: \"denied\"", "\"denied\"", NULL, false},
    {"gpc", "GPC", "consent: \"granted\" with the header Sec-GPC: 1", "\"granted\"", NULL, true},
    {"ad_storage_denied", "no ad_storage",
     "Consent Mode: ad_storage denied, ad_user_data, ad_personalization and analytics_storage "
     "granted",
     "{\"ad_storage\":\"denied\",\"ad_user_data\":\"granted\","
     "\"ad_personalization\":\"granted\",\"analytics_storage\":\"granted\"}",
     NULL, false},
    {"ad_user_data_denied", "no ad_user_data",
     "Consent Mode: ad_user_data denied, ad_storage, ad_personalization and analytics_storage "
     "granted",
     "{\"ad_storage\":\"granted\",\"ad_user_data\":\"denied\","
     "\"ad_personalization\":\"granted\",\"analytics_storage\":\"granted\"}",
     NULL, false},
    {"usp_opt_out", "US opt-out",
     "consent: \"granted\" with the cookie usprivacy=1YYN (US Privacy: opted out of sale)",
     "\"granted\"", "1YYN", false},
};

/* What each cell value means, for the legend. */
static const char *const outcomes[][2] = {
    {"raw", "leaves as received"},
    {"scrubbed", "leaves with personal data removed (detectors, sensitive query parameters)"},
    {"sha256", "leaves as SHA-256 of the normalized value (TikTok's matching form)"},
    {"keyed_hash", "leaves as HMAC-SHA256 under the site secret (not reversible without it)"},
    {"truncated", "leaves with the host part of the address zeroed"},
    {"truncated+keyed_hash", "truncated, then keyed hash"},
    {"keyed_hash(session)", "derived: HMAC-SHA256 of the first-party session id"},
    {"set", "set by a rule to a configured value"},
    {"dropped", "does not leave"},
    {"kept", "page.*.ttclid: the click id stays in the page URLs"},
    {"removed", "page.*.ttclid: the click id is removed from the page URLs"},
    {"true", "limited_data_use: true (TikTok restricts its use of the event)"},
    {"false", "limited_data_use: false"},
    {"event_skipped", "the whole event is not sent under this state"},
};

/* The matrix's row for a click id inside the page URLs: kept, removed, or no URL left. */
#define TTCLID_IN_URLS "page.*.ttclid"

static const char *ttclid_in_urls(json_t *out)
{
    json_t *page = json_object_get(out, "page");
    const char *u[2] = {json_string_value(json_object_get(page, "url")),
                        json_string_value(json_object_get(page, "referrer"))};
    if (!u[0] && !u[1])
        return "dropped";
    for (int i = 0; i < 2; i++)
        if (u[i] && (strstr(u[i], "?ttclid=") || strstr(u[i], "&ttclid=")))
            return "kept";
    return "removed";
}

static json_t *site_matrix(const struct sg_config *cfg, const struct sg_site *site)
{
    /* Every field present, with values that the built-in detectors catch. */
    static const char *const probe =
        "{\"event\":\"Purchase\",\"event_id\":\"probe\",\"timestamp\":1700000000,"
        "\"user\":{\"email\":\"probe@example.com\",\"phone\":\"+12025550100\","
        "\"first_name\":\"Probe\",\"last_name\":\"Probe\",\"zip_code\":\"12345\","
        "\"ttp\":\"probe-ttp\"},\"ttclid\":\"probe-click\",\"locale\":\"en_US\","
        "\"page\":{\"url\":\"https://example.com/p?email=probe%40example.com&ttclid=x\","
        "\"referrer\":\"https://example.com/?phone=2025550100&ttclid=x\"},"
        "\"properties\":{\"value\":1,\"currency\":\"USD\",\"description\":\"probe@example.com\"}}";
    json_t *m = json_object();
    for (int f = 0; f < SG_F__COUNT; f++) {
        json_object_set_new(m, sg_field_name((enum sg_field)f), json_object());
        if (f == SG_F_PAGE_REFERRER)
            json_object_set_new(m, TTCLID_IN_URLS, json_object());
    }
    for (size_t s = 0; s < SG_ARRAY_SIZE(states); s++) {
        struct sg_request_ctx ctx;
        struct sg_event ev;
        char err[256];
        json_t *in = json_loads(probe, 0, NULL);
        memset(&ctx, 0, sizeof(ctx));
        strcpy(ctx.ip, "192.0.2.1");
        ctx.user_agent = "Mozilla/5.0 (probe)";
        ctx.gpc = states[s].gpc;
        ctx.cookie_usp = states[s].usp;
        ctx.now = 1700000000;
        memset(ctx.session_id, 'a', 32);
        json_object_set_new(in, "consent", json_loads(states[s].consent, JSON_DECODE_ANY, NULL));
        sg_event_init(&ev);
        enum sg_pipe_result pr =
            sg_pipeline_run(site, &cfg->limits, in, &ctx, &ev, err, sizeof(err));
        json_t *out = pr == SG_PIPE_OK ? sg_tiktok_event_json(&ev) : json_object();
        for (int f = 0; f < SG_F__COUNT; f++)
            json_object_set_new(
                json_object_get(m, sg_field_name((enum sg_field)f)), states[s].key,
                json_string(pr == SG_PIPE_OK ? treatment(&ev, out, f) : "event_skipped"));
        json_object_set_new(json_object_get(m, TTCLID_IN_URLS), states[s].key,
                            json_string(pr == SG_PIPE_OK ? ttclid_in_urls(out) : "event_skipped"));
        json_decref(out);
        json_decref(in);
        sg_event_release(&ev);
    }
    return m;
}

/* ---- the model ---- */

static json_t *consent_policy(const struct sg_consent_policy *p)
{
    json_t *purposes = json_object();
    for (int i = 0; i < SG_PURPOSE__COUNT; i++) {
        json_t *tcf = json_array();
        for (int bit = 0; bit < 32; bit++)
            if (p->tcf_purposes[i] & (UINT32_C(1) << bit))
                json_array_append_new(tcf, json_integer(bit + 1));
        json_object_set_new(purposes, sg_purpose_name((enum sg_purpose)i), tcf);
    }
    return json_pack("{s:s,s:b,s:{s:o,s:o}}", "default", sg_consent_state_name(p->default_state),
                     "honor_gpc", p->honor_gpc, "tcf", "vendor_id",
                     p->tcf_vendor_id ? json_integer(p->tcf_vendor_id) : json_null(),
                     "purposes", purposes);
}

static json_t *destinations(const struct sg_site *s)
{
    json_t *dests = json_array();
    for (size_t d = 0; d < s->n_dests; d++) {
        const struct sg_dest_conf *dc = &s->dests[d];
        json_t *events = json_null();
        if (dc->events) {
            events = json_array();
            for (size_t e = 0; e < dc->n_events; e++)
                json_array_append_new(events, json_string(dc->events[e]));
        }
        json_array_append_new(dests, json_pack("{s:s,s:s?,s:b,s:b,s:o}", "id", dc->id,
                                               "pixel_code", dc->pixel_code, "dry_run",
                                               dc->dry_run, "test", dc->test_event_code != NULL,
                                               "events", events));
    }
    return dests;
}

json_t *sg_report_build(const struct sg_config *cfg, const char *config_path, time_t generated)
{
    char ts[32];
    struct tm tm;
    gmtime_r(&generated, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

    json_t *st = json_array(), *legend = json_object(), *sites = json_array();
    for (size_t i = 0; i < SG_ARRAY_SIZE(states); i++)
        json_array_append_new(st, json_pack("{s:s,s:s,s:s}", "key", states[i].key, "title",
                                            states[i].title, "signals", states[i].signals));
    for (size_t i = 0; i < SG_ARRAY_SIZE(outcomes); i++)
        json_object_set_new(legend, outcomes[i][0], json_string(outcomes[i][1]));
    for (size_t i = 0; i < cfg->n_sites; i++) {
        const struct sg_site *s = &cfg->sites[i];
        json_t *site = json_pack(
            "{s:s,s:{s:s,s:s,s:s,s:s},s:s,s:b,s:s?,s:o,s:b,s:o,s:O,s:o}", "id", s->id,
            "rule_set", "path", s->rules_path, "name", sg_ruleset_name(s->rules), "version",
            sg_ruleset_version(s->rules), "sha256", sg_ruleset_sha256(s->rules),
            "consent_default", sg_consent_state_name(s->consent.default_state), "honor_gpc",
            s->consent.honor_gpc, "phone_region", s->phone_region, "consent",
            consent_policy(&s->consent), "standard_events", s->standard_events, "event_map",
            sg_effective_event_map(s->event_map_src, s->event_map, s->standard_events), "rules",
            sg_ruleset_describe(s->rules), "destinations", destinations(s));
        json_object_set_new(site, "matrix", site_matrix(cfg, s));
        json_array_append_new(sites, site);
    }
    size_t js_len;
    sg_snippet_bytes(&js_len);
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:{s:s,s:s,s:I,s:I},s:o}", "title",
                     "scrubgate audit report", "generated", ts, "scrubgate_version", SG_VERSION,
                     "config", config_path, "consent_states", st, "outcomes", legend, "snippet",
                     "path", SG_SNIPPET_PATH, "integrity", sg_snippet_sri(), "bytes",
                     (json_int_t)js_len, "gzip_bytes", (json_int_t)sg_snippet_gzip_len(), "sites",
                     sites);
}

int sg_report_format_from_name(const char *name)
{
    static const struct {
        const char *name;
        enum sg_report_format fmt;
    } names[] = {{"text", SG_REPORT_TEXT}, {"json", SG_REPORT_JSON}, {"md", SG_REPORT_MD},
                 {"markdown", SG_REPORT_MD}, {"html", SG_REPORT_HTML}, {"csv", SG_REPORT_CSV}};
    for (size_t i = 0; i < SG_ARRAY_SIZE(names); i++)
        if (!strcmp(names[i].name, name))
            return (int)names[i].fmt;
    return -1;
}

/* ---- helpers shared by the renderers ---- */

#define STR(o, k) json_string_value(json_object_get((o), (k)))

/* A JSON value as one compact line (owned): conditions and options as written. */
static char *compact(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

/* "a, b, c" of an array of strings (owned); `none` when the array is empty or null. */
static char *joined(const json_t *arr, const char *none)
{
    size_t i, len = 1;
    json_t *v;
    json_array_foreach(arr, i, v) len += (json_is_string(v) ? json_string_length(v) : 24) + 2;
    if (json_array_size(arr) == 0)
        return sg_xstrdup(none);
    char *s = sg_xmalloc(len), *p = s;
    json_array_foreach(arr, i, v) {
        p += i ? sprintf(p, ", ") : 0;
        if (json_is_string(v))
            p += sprintf(p, "%s", json_string_value(v));
        else
            p += sprintf(p, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    }
    return s;
}

static char *condition_text(const json_t *rule)
{
    const json_t *c = json_object_get(rule, "condition");
    return json_is_object(c) ? compact(c) : sg_xstrdup("always");
}

static char *options_text(const json_t *rule)
{
    const json_t *o = json_object_get(rule, "options");
    return json_object_size(o) ? compact(o) : sg_xstrdup("");
}

static char *tcf_text(const json_t *site, const char *purpose)
{
    json_t *tcf = json_object_get(json_object_get(site, "consent"), "tcf");
    return joined(json_object_get(json_object_get(tcf, "purposes"), purpose), "not decided by TCF");
}

static char *vendor_text(const json_t *site)
{
    json_t *v = json_object_get(json_object_get(json_object_get(site, "consent"), "tcf"),
                                "vendor_id");
    char buf[64];
    if (!json_is_integer(v))
        return sg_xstrdup("none (a TC string denies every purpose TCF decides)");
    snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return sg_xstrdup(buf);
}

static const char *yes_no(const json_t *v)
{
    return json_is_true(v) ? "yes" : "no";
}

/* ---- text ---- */

static void render_text(const json_t *r, FILE *f)
{
    size_t i;
    json_t *site, *states_ = json_object_get(r, "consent_states");
    json_t *snip = json_object_get(r, "snippet");
    fprintf(f, "%s: ok\n", STR(r, "config"));
    fprintf(f, "scrubgate %s, generated %s\n", STR(r, "scrubgate_version"), STR(r, "generated"));
    fprintf(f, "snippet %s: integrity=\"%s\" (%" JSON_INTEGER_FORMAT " bytes, %" JSON_INTEGER_FORMAT
               " gzipped)\n",
            STR(snip, "path"), STR(snip, "integrity"),
            json_integer_value(json_object_get(snip, "bytes")),
            json_integer_value(json_object_get(snip, "gzip_bytes")));
    json_array_foreach(json_object_get(r, "sites"), i, site) {
        json_t *rs = json_object_get(site, "rule_set");
        const char *region = STR(site, "phone_region");
        fprintf(f, "\nsite %s: rules %s (%s, %s), consent default %s, GPC %s, phone region %s\n",
                STR(site, "id"), STR(rs, "name"), STR(rs, "path"), STR(rs, "version"),
                STR(site, "consent_default"),
                json_is_true(json_object_get(site, "honor_gpc")) ? "honoured" : "ignored",
                region ? region : "none (a number without +/00 is not hashed)");
        fprintf(f, "  rule set sha256 %s, %zu rules:\n", STR(rs, "sha256"),
                json_array_size(json_object_get(site, "rules")));
        size_t j;
        json_t *d, *rule;
        json_array_foreach(json_object_get(site, "rules"), j, rule) {
            char *fields = joined(json_object_get(rule, "fields"), "-");
            char *cond = condition_text(rule);
            fprintf(f, "    %-24s %-11s %s  when %s\n", STR(rule, "id"), STR(rule, "action"),
                    fields, cond);
            free(fields);
            free(cond);
        }
        json_array_foreach(json_object_get(site, "destinations"), j, d) {
            char *ev = joined(json_object_get(d, "events"), "all");
            fprintf(f, "  destination %s%s%s, events: %s\n", STR(d, "id"),
                    json_is_true(json_object_get(d, "dry_run")) ? " (dry run)" : "",
                    json_is_true(json_object_get(d, "test")) ? " (test events)" : "",
                    json_is_array(json_object_get(d, "events")) ? ev : "all");
            free(ev);
        }
        json_t *em = json_object_get(site, "event_map");
        fprintf(f,
                "  event map (case-insensitive, applied once; the site's entries win%s): "
                "%zu entries\n",
                json_is_true(json_object_get(site, "standard_events"))
                    ? ", built-in map on (standard_events)"
                    : "; built-in map off (standard_events: false)",
                json_object_size(em));
        const char *from;
        json_t *entry;
        json_object_foreach(em, from, entry) {
            char *to = joined(json_object_get(entry, "to"), "");
            fprintf(f, "    %-28s -> %s  (%s)\n", from, to, STR(entry, "from"));
            free(to);
        }
        size_t last = json_array_size(states_) - 1;
        fprintf(f, "  %-18s", "outbound field");
        for (size_t k = 0; k <= last; k++)
            fprintf(f, k < last ? " %-20s" : " %s\n", STR(json_array_get(states_, k), "title"));
        const char *field;
        json_t *row;
        json_object_foreach(json_object_get(site, "matrix"), field, row) {
            fprintf(f, "  %-18s", field);
            for (size_t k = 0; k <= last; k++)
                fprintf(f, k < last ? " %-20s" : " %s\n",
                        STR(row, STR(json_array_get(states_, k), "key")));
        }
    }
}

/* ---- Markdown ---- */

/* A table cell: no line breaks, | escaped, and no raw HTML (entities for & < >). */
static void md(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '|': fputs("\\|", f); break;
        case '\\': fputs("\\\\", f); break;
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '\n': case '\r': case '\t': fputc(' ', f); break;
        default: fputc(*s, f);
        }
    }
}

/* Like md() inside backticks, for identifiers; a backtick in the value falls back to plain. */
static void md_code(FILE *f, const char *s)
{
    if (!s || !*s || strchr(s, '`') || strchr(s, '|') || strchr(s, '\n')) {
        md(f, s);
        return;
    }
    fprintf(f, "`%s`", s);
}

static void md_row2(FILE *f, const char *k, const char *v)
{
    fputs("| ", f);
    md(f, k);
    fputs(" | ", f);
    md(f, v);
    fputs(" |\n", f);
}

static void render_md(const json_t *r, FILE *f)
{
    size_t i, j;
    json_t *site, *v, *states_ = json_object_get(r, "consent_states");
    fprintf(f, "# ");
    md(f, STR(r, "title"));
    fputs("\n\n| | |\n|---|---|\n", f);
    md_row2(f, "Generated (UTC)", STR(r, "generated"));
    md_row2(f, "scrubgate version", STR(r, "scrubgate_version"));
    md_row2(f, "Configuration file", STR(r, "config"));
    md_row2(f, "Snippet integrity (SRI)", STR(json_object_get(r, "snippet"), "integrity"));
    fputs("\n## Consent states of the policy matrix\n\nEach column of a site's matrix is what "
          "the site's real pipeline did to one synthetic probe event carrying every field, "
          "sent with these signals:\n\n| column | signals sent |\n|---|---|\n",
          f);
    json_array_foreach(states_, i, v) md_row2(f, STR(v, "title"), STR(v, "signals"));
    fputs("\n| cell | meaning |\n|---|---|\n", f);
    const char *key;
    json_object_foreach(json_object_get(r, "outcomes"), key, v) md_row2(f, key,
                                                                          json_string_value(v));
    json_array_foreach(json_object_get(r, "sites"), i, site) {
        json_t *rs = json_object_get(site, "rule_set"), *rule, *d;
        fputs("\n## Site ", f);
        md(f, STR(site, "id"));
        fputs("\n\n### Rule set\n\n| | |\n|---|---|\n", f);
        md_row2(f, "Path", STR(rs, "path"));
        md_row2(f, "Name", STR(rs, "name"));
        md_row2(f, "Version", STR(rs, "version"));
        md_row2(f, "SHA-256 of the file", STR(rs, "sha256"));
        fputs("\n### Rules (in order)\n\n| # | id | action | fields | condition | options | why "
              "|\n|---|---|---|---|---|---|---|\n",
              f);
        json_array_foreach(json_object_get(site, "rules"), j, rule) {
            char *fields = joined(json_object_get(rule, "fields"), "");
            char *cond = condition_text(rule), *opt = options_text(rule);
            fprintf(f, "| %zu | ", j + 1);
            md_code(f, STR(rule, "id"));
            fputs(" | ", f);
            md(f, STR(rule, "action"));
            fputs(" | ", f);
            md(f, fields);
            fputs(" | ", f);
            md(f, cond);
            fputs(" | ", f);
            md(f, opt);
            fputs(" | ", f);
            md(f, STR(rule, "why"));
            fputs(" |\n", f);
            free(fields);
            free(cond);
            free(opt);
        }
        json_t *consent = json_object_get(site, "consent");
        char *vendor = vendor_text(site);
        fputs("\n### Consent policy\n\n| | |\n|---|---|\n", f);
        md_row2(f, "Default (purposes no signal decides)", STR(consent, "default"));
        md_row2(f, "Honour GPC", yes_no(json_object_get(consent, "honor_gpc")));
        md_row2(f, "TCF vendor id", vendor);
        free(vendor);
        for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
            char label[96], *t = tcf_text(site, sg_purpose_name((enum sg_purpose)p));
            snprintf(label, sizeof(label), "TCF purposes for %s",
                     sg_purpose_name((enum sg_purpose)p));
            md_row2(f, label, t);
            free(t);
        }
        fputs("\n### Destinations\n\n| id | dry run | test events | events allowed "
              "|\n|---|---|---|---|\n",
              f);
        json_array_foreach(json_object_get(site, "destinations"), j, d) {
            char *ev = joined(json_object_get(d, "events"), "all");
            fputs("| ", f);
            md_code(f, STR(d, "id"));
            fprintf(f, " | %s | %s | ", yes_no(json_object_get(d, "dry_run")),
                    yes_no(json_object_get(d, "test")));
            md(f, ev);
            fputs(" |\n", f);
            free(ev);
        }
        fprintf(f, "\n### Event map (effective)\n\nKeys match case-insensitively; the built-in "
                   "map is %s.\n\n| incoming event | outbound event(s) | source |\n|---|---|---|\n",
                json_is_true(json_object_get(site, "standard_events")) ? "on" : "off");
        json_object_foreach(json_object_get(site, "event_map"), key, v) {
            char *to = joined(json_object_get(v, "to"), "");
            fputs("| ", f);
            md(f, key);
            fputs(" | ", f);
            md(f, to);
            fputs(" | ", f);
            md(f, STR(v, "from"));
            fputs(" |\n", f);
            free(to);
        }
        fputs("\n### Policy matrix: what leaves, per outbound field and consent state\n\n"
              "| outbound field |",
              f);
        json_array_foreach(states_, j, v) {
            fputc(' ', f);
            md(f, STR(v, "title"));
            fputs(" |", f);
        }
        fputs("\n|---|", f);
        for (j = 0; j < json_array_size(states_); j++)
            fputs("---|", f);
        fputc('\n', f);
        json_t *row;
        json_object_foreach(json_object_get(site, "matrix"), key, row) {
            fputs("| ", f);
            md_code(f, key);
            fputs(" |", f);
            json_array_foreach(states_, j, v) {
                fputc(' ', f);
                md(f, STR(row, STR(v, "key")));
                fputs(" |", f);
            }
            fputc('\n', f);
        }
    }
}

/* ---- HTML ---- */

static void h(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* <tag attrs>escaped text</tag> */
static void hcell(FILE *f, const char *tag, const char *cls, const char *s)
{
    fprintf(f, "<%s", tag);
    if (cls) {
        fputs(" class=\"", f);
        h(f, cls);
        fputc('"', f);
    }
    fputc('>', f);
    h(f, s);
    fprintf(f, "</%s>", tag);
}

static void h_row2(FILE *f, const char *k, const char *v)
{
    fputs("<tr>", f);
    hcell(f, "th", NULL, k);
    hcell(f, "td", NULL, v);
    fputs("</tr>\n", f);
}

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#111;"
    "margin:2em auto;max-width:80em;padding:0 1em}"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #333;margin-top:2em}"
    "h3{margin-top:1.4em}"
    "table{border-collapse:collapse;margin:.5em 0 1em;width:100%}"
    "th,td{border:1px solid #999;padding:.25em .5em;text-align:left;vertical-align:top}"
    "thead th{background:#eee}tbody th{font-weight:600;white-space:nowrap}"
    "table.kv{width:auto}table.kv th{background:#f6f6f6}"
    "code,td.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;"
    "overflow-wrap:anywhere}td.id{white-space:nowrap}"
    "td.o-dropped,td.o-removed{background:#f1f1f1;color:#555}"
    "td.o-raw,td.o-kept{background:#fde9c8}"
    "td.o-event_skipped{background:#e0e0e0}"
    ".signoff td{height:2.5em}"
    "@media print{body{margin:0;max-width:none;font-size:10pt}"
    "section.site{break-before:page}tr,td,th{break-inside:avoid}"
    "thead{display:table-header-group}"
    "td.o-raw,td.o-kept,td.o-dropped,td.o-removed,thead th{-webkit-print-color-adjust:exact;"
    "print-color-adjust:exact}}";

static void render_html(const json_t *r, FILE *f)
{
    size_t i, j;
    json_t *site, *v, *states_ = json_object_get(r, "consent_states");
    const char *key;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    h(f, STR(r, "title"));
    fputs(" - ", f);
    h(f, STR(r, "config"));
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>", css);
    h(f, STR(r, "title"));
    fputs("</h1>\n<table class=\"kv\" id=\"meta\">\n", f);
    h_row2(f, "Generated (UTC)", STR(r, "generated"));
    h_row2(f, "scrubgate version", STR(r, "scrubgate_version"));
    h_row2(f, "Configuration file", STR(r, "config"));
    h_row2(f, "Snippet integrity (SRI)", STR(json_object_get(r, "snippet"), "integrity"));
    fputs("</table>\n<h2>Consent states of the policy matrix</h2>\n<p>Each column of a site's "
          "matrix is what the site's real pipeline did to one synthetic probe event carrying "
          "every field, sent with these signals.</p>\n<table id=\"states\"><thead><tr><th>column"
          "</th><th>signals sent</th></tr></thead><tbody>\n",
          f);
    json_array_foreach(states_, i, v) h_row2(f, STR(v, "title"), STR(v, "signals"));
    fputs("</tbody></table>\n<table id=\"legend\"><thead><tr><th>cell</th><th>meaning</th></tr>"
          "</thead><tbody>\n",
          f);
    json_object_foreach(json_object_get(r, "outcomes"), key, v) h_row2(f, key,
                                                                         json_string_value(v));
    fputs("</tbody></table>\n", f);
    json_array_foreach(json_object_get(r, "sites"), i, site) {
        json_t *rs = json_object_get(site, "rule_set"), *rule, *d;
        fputs("<section class=\"site\" data-site=\"", f);
        h(f, STR(site, "id"));
        fputs("\">\n<h2>Site <code>", f);
        h(f, STR(site, "id"));
        fputs("</code></h2>\n<h3>Rule set</h3>\n<table class=\"kv\">\n", f);
        h_row2(f, "Path", STR(rs, "path"));
        h_row2(f, "Name", STR(rs, "name"));
        h_row2(f, "Version", STR(rs, "version"));
        h_row2(f, "SHA-256 of the file", STR(rs, "sha256"));
        fputs("</table>\n<h3>Rules (in order)</h3>\n<table class=\"rules\"><thead><tr><th>#</th>"
              "<th>id</th><th>action</th><th>fields</th><th>condition</th><th>options</th>"
              "<th>why</th></tr></thead><tbody>\n",
              f);
        json_array_foreach(json_object_get(site, "rules"), j, rule) {
            char n[24], *fields = joined(json_object_get(rule, "fields"), "");
            char *cond = condition_text(rule), *opt = options_text(rule);
            snprintf(n, sizeof(n), "%zu", j + 1);
            fputs("<tr>", f);
            hcell(f, "td", NULL, n);
            hcell(f, "td", "mono id", STR(rule, "id"));
            hcell(f, "td", NULL, STR(rule, "action"));
            hcell(f, "td", "mono", fields);
            hcell(f, "td", "mono", cond);
            hcell(f, "td", "mono", opt);
            hcell(f, "td", "why", STR(rule, "why"));
            fputs("</tr>\n", f);
            free(fields);
            free(cond);
            free(opt);
        }
        json_t *consent = json_object_get(site, "consent");
        char *vendor = vendor_text(site);
        fputs("</tbody></table>\n<h3>Consent policy</h3>\n<table class=\"kv\">\n", f);
        h_row2(f, "Default (purposes no signal decides)", STR(consent, "default"));
        h_row2(f, "Honour GPC", yes_no(json_object_get(consent, "honor_gpc")));
        h_row2(f, "TCF vendor id", vendor);
        free(vendor);
        for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
            char label[96], *t = tcf_text(site, sg_purpose_name((enum sg_purpose)p));
            snprintf(label, sizeof(label), "TCF purposes for %s",
                     sg_purpose_name((enum sg_purpose)p));
            h_row2(f, label, t);
            free(t);
        }
        fputs("</table>\n<h3>Destinations</h3>\n<table class=\"dests\"><thead><tr><th>id</th>"
              "<th>dry run</th><th>test events</th><th>events allowed</th></tr></thead><tbody>\n",
              f);
        json_array_foreach(json_object_get(site, "destinations"), j, d) {
            char *ev = joined(json_object_get(d, "events"), "all");
            fputs("<tr>", f);
            hcell(f, "td", "mono", STR(d, "id"));
            hcell(f, "td", NULL, yes_no(json_object_get(d, "dry_run")));
            hcell(f, "td", NULL, yes_no(json_object_get(d, "test")));
            hcell(f, "td", NULL, ev);
            fputs("</tr>\n", f);
            free(ev);
        }
        fprintf(f, "</tbody></table>\n<h3>Event map (effective)</h3>\n<p>Keys match "
                   "case-insensitively; the built-in map is %s.</p>\n<table class=\"eventmap\">"
                   "<thead><tr><th>incoming event</th><th>outbound event(s)</th><th>source</th>"
                   "</tr></thead><tbody>\n",
                json_is_true(json_object_get(site, "standard_events")) ? "on" : "off");
        json_object_foreach(json_object_get(site, "event_map"), key, v) {
            char *to = joined(json_object_get(v, "to"), "");
            fputs("<tr>", f);
            hcell(f, "td", NULL, key);
            hcell(f, "td", NULL, to);
            hcell(f, "td", NULL, STR(v, "from"));
            fputs("</tr>\n", f);
            free(to);
        }
        fputs("</tbody></table>\n<h3>Policy matrix: what leaves, per outbound field and consent "
              "state</h3>\n<table class=\"matrix\"><thead><tr><th>outbound field</th>",
              f);
        json_array_foreach(states_, j, v) {
            fputs("<th data-state=\"", f);
            h(f, STR(v, "key"));
            fputs("\">", f);
            h(f, STR(v, "title"));
            fputs("</th>", f);
        }
        fputs("</tr></thead><tbody>\n", f);
        json_t *row;
        json_object_foreach(json_object_get(site, "matrix"), key, row) {
            fputs("<tr><th><code>", f);
            h(f, key);
            fputs("</code></th>", f);
            json_array_foreach(states_, j, v) {
                const char *o = STR(row, STR(v, "key"));
                char cls[64];
                snprintf(cls, sizeof(cls), "o-%s", o ? o : "");
                hcell(f, "td", cls, o);
            }
            fputs("</tr>\n", f);
        }
        fputs("</tbody></table>\n</section>\n", f);
    }
    fputs("<h2>Sign-off</h2>\n<table class=\"kv signoff\">\n<tr><th>Reviewed by</th><td></td>"
          "</tr>\n<tr><th>Role</th><td></td></tr>\n<tr><th>Date</th><td></td></tr>\n<tr><th>"
          "Signature</th><td></td></tr>\n</table>\n</body>\n</html>\n",
          f);
}

/* ---- CSV (RFC 4180) ---- */

/*
 * One cell. A cell a spreadsheet would read as a formula (starting with = + - @, a tab or a
 * carriage return: OWASP's "CSV injection") gets a leading ' so that it shows as text; a site
 * id such as "-2-1" or a rule-set path is the operator's, but the report is opened by others.
 */
static void csv(FILE *f, const char *s, bool last)
{
    bool formula = s && *s && strchr("=+-@\t\r", *s);
    if (formula && !strpbrk(s, ",\"\r\n"))
        fputc('\'', f);
    if (s && strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        if (formula)
            fputc('\'', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else if (s) {
        fputs(s, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

static void render_csv(const json_t *r, FILE *f)
{
    size_t i, j;
    json_t *site, *v, *row, *states_ = json_object_get(r, "consent_states");
    const char *field;
    fputs("site,rule_set,rule_set_sha256,outbound_field,consent_state,consent_state_title,"
          "outcome,generated,scrubgate_version\r\n",
          f);
    json_array_foreach(json_object_get(r, "sites"), i, site) {
        json_t *rs = json_object_get(site, "rule_set");
        json_object_foreach(json_object_get(site, "matrix"), field, row) {
            json_array_foreach(states_, j, v) {
                csv(f, STR(site, "id"), false);
                csv(f, STR(rs, "path"), false);
                csv(f, STR(rs, "sha256"), false);
                csv(f, field, false);
                csv(f, STR(v, "key"), false);
                csv(f, STR(v, "title"), false);
                csv(f, STR(row, STR(v, "key")), false);
                csv(f, STR(r, "generated"), false);
                csv(f, STR(r, "scrubgate_version"), true);
            }
        }
    }
}

int sg_report_render(const json_t *report, enum sg_report_format fmt, FILE *out)
{
    switch (fmt) {
    case SG_REPORT_JSON: {
        char *txt = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                           JSON_REAL_PRECISION(15));
        if (!txt)
            return -1;
        fputs(txt, out);
        fputc('\n', out);
        free(txt);
        break;
    }
    case SG_REPORT_MD:
        render_md(report, out);
        break;
    case SG_REPORT_HTML:
        render_html(report, out);
        break;
    case SG_REPORT_CSV:
        render_csv(report, out);
        break;
    case SG_REPORT_TEXT:
    default:
        render_text(report, out);
        break;
    }
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

int sg_report_write(const json_t *report, enum sg_report_format fmt, const char *path)
{
    if (!path) {
        if (sg_report_render(report, fmt, stdout) < 0)
            return sg_error("writing the report to standard output: %s", strerror(errno));
        return 0;
    }
    struct stat st;
    size_t plen = strlen(path);
    if ((stat(path, &st) == 0 && S_ISDIR(st.st_mode)) || (plen && path[plen - 1] == '/'))
        return sg_error("%s: is a directory; -o takes the report's file name", path);
    size_t n = plen + 16;
    char *tmp = sg_xmalloc(n);
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int rc = -1, fd = mkstemp(tmp);
    FILE *f = NULL;
    if (fd < 0) {
        sg_error("%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        goto out;
    }
    (void)fchmod(fd, 0644); /* a report is meant to be shared; mkstemp makes 0600 */
    if (!(f = fdopen(fd, "w"))) {
        sg_error("%s: %s", tmp, strerror(errno));
        close(fd);
        goto unlink;
    }
    if (sg_report_render(report, fmt, f) < 0 || fsync(fileno(f)) < 0) {
        sg_error("%s: write failed: %s", tmp, strerror(errno));
        fclose(f);
        goto unlink;
    }
    if (fclose(f) != 0) {
        sg_error("%s: write failed: %s", tmp, strerror(errno));
        goto unlink;
    }
    if (rename(tmp, path) < 0) {
        sg_error("%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto unlink;
    }
    rc = 0;
    goto out;
unlink:
    unlink(tmp);
out:
    free(tmp);
    return rc;
}
