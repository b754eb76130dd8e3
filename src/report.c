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

/* ---- Markdown and HTML: one walk over the model, two writers ---- */

/*
 * Markdown and HTML say the same things in the same order, so one walk (render_doc) goes
 * over the model and emits through a writer: a handful of block-level calls that each
 * format spells its own way. The walk decides what is said, and the classes HTML styles it
 * with; a writer decides only how it is spelled and escaped.
 */

/* A column header; state is the consent-state key that HTML puts in data-state, or NULL. */
struct col {
    const char *title, *state;
};

/*
 * A table cell (text may be NULL: an empty cell). cls is HTML's class; head makes the cell
 * its row's header (<th>); code marks an identifier: backticks in markdown, <code> in HTML
 * unless a class already styles the cell (td.mono is monospaced).
 */
struct cell {
    const char *text, *cls;
    bool head, code;
};

struct writer;

/*
 * How a format spells each block. Every string is the model's and the writer escapes it,
 * except a paragraph's: that is this file's own prose, written as is.
 */
struct writer_ops {
    void (*doc_begin)(struct writer *w, const char *title, const char *config);
    void (*doc_end)(struct writer *w);
    void (*site_begin)(struct writer *w, const char *id);
    void (*site_end)(struct writer *w);
    /* level 1 to 3; code, unless NULL, follows text as an identifier */
    void (*heading)(struct writer *w, int level, const char *text, const char *code);
    /* text without its final stop; lead_in: it introduces the table below (md_paragraph) */
    void (*paragraph)(struct writer *w, const char *text, bool lead_in);
    /* n == 0 (cols NULL): a key/value table, two columns with no header of their own */
    void (*table_begin)(struct writer *w, const char *cls, const char *id,
                        const struct col *cols, size_t n);
    void (*row)(struct writer *w, const struct cell *cells, size_t n);
    void (*table_end)(struct writer *w);
};

struct writer {
    const struct writer_ops *ops;
    FILE *f;
    bool blocks; /* markdown: a block was written, so the next is set off by a blank line */
    bool thead;  /* HTML: the open table has a <thead>, so its rows are in a <tbody> */
};

/* ---- the walk ---- */

/* A key/value row: the key is the row's header. */
static void kv(struct writer *w, const char *k, const char *v)
{
    const struct cell c[] = {{.text = k, .head = true}, {.text = v}};
    w->ops->row(w, c, SG_ARRAY_SIZE(c));
}

/* The title, the report's own facts, the consent states of the matrix and its legend. */
static void walk_head(struct writer *w, const json_t *r)
{
    static const struct col state_cols[] = {{.title = "column"}, {.title = "signals sent"}};
    static const struct col legend_cols[] = {{.title = "cell"}, {.title = "meaning"}};
    size_t i;
    json_t *v;
    const char *key;
    w->ops->heading(w, 1, STR(r, "title"), NULL);
    w->ops->table_begin(w, "kv", "meta", NULL, 0);
    kv(w, "Generated (UTC)", STR(r, "generated"));
    kv(w, "scrubgate version", STR(r, "scrubgate_version"));
    kv(w, "Configuration file", STR(r, "config"));
    kv(w, "Snippet integrity (SRI)", STR(json_object_get(r, "snippet"), "integrity"));
    w->ops->table_end(w);
    w->ops->heading(w, 2, "Consent states of the policy matrix", NULL);
    w->ops->paragraph(w,
                      "Each column of a site's matrix is what the site's real pipeline did to "
                      "one synthetic probe event carrying every field, sent with these signals",
                      true);
    w->ops->table_begin(w, NULL, "states", state_cols, SG_ARRAY_SIZE(state_cols));
    json_array_foreach(json_object_get(r, "consent_states"), i, v)
        kv(w, STR(v, "title"), STR(v, "signals"));
    w->ops->table_end(w);
    w->ops->table_begin(w, NULL, "legend", legend_cols, SG_ARRAY_SIZE(legend_cols));
    json_object_foreach(json_object_get(r, "outcomes"), key, v) kv(w, key, json_string_value(v));
    w->ops->table_end(w);
}

static void walk_rule_set(struct writer *w, const json_t *site)
{
    json_t *rs = json_object_get(site, "rule_set");
    w->ops->heading(w, 3, "Rule set", NULL);
    w->ops->table_begin(w, "kv", NULL, NULL, 0);
    kv(w, "Path", STR(rs, "path"));
    kv(w, "Name", STR(rs, "name"));
    kv(w, "Version", STR(rs, "version"));
    kv(w, "SHA-256 of the file", STR(rs, "sha256"));
    w->ops->table_end(w);
}

static void walk_rules(struct writer *w, const json_t *site)
{
    static const struct col cols[] = {{.title = "#"},         {.title = "id"},
                                      {.title = "action"},    {.title = "fields"},
                                      {.title = "condition"}, {.title = "options"},
                                      {.title = "why"}};
    size_t j;
    json_t *rule;
    w->ops->heading(w, 3, "Rules (in order)", NULL);
    w->ops->table_begin(w, "rules", NULL, cols, SG_ARRAY_SIZE(cols));
    json_array_foreach(json_object_get(site, "rules"), j, rule) {
        char n[24], *fields = joined(json_object_get(rule, "fields"), "");
        char *cond = condition_text(rule), *opt = options_text(rule);
        snprintf(n, sizeof(n), "%zu", j + 1);
        const struct cell c[] = {{.text = n},
                                 {.text = STR(rule, "id"), .cls = "mono id", .code = true},
                                 {.text = STR(rule, "action")},
                                 {.text = fields, .cls = "mono"},
                                 {.text = cond, .cls = "mono"},
                                 {.text = opt, .cls = "mono"},
                                 {.text = STR(rule, "why"), .cls = "why"}};
        w->ops->row(w, c, SG_ARRAY_SIZE(c));
        free(fields);
        free(cond);
        free(opt);
    }
    w->ops->table_end(w);
}

static void walk_consent(struct writer *w, const json_t *site)
{
    json_t *consent = json_object_get(site, "consent");
    char *vendor = vendor_text(site);
    w->ops->heading(w, 3, "Consent policy", NULL);
    w->ops->table_begin(w, "kv", NULL, NULL, 0);
    kv(w, "Default (purposes no signal decides)", STR(consent, "default"));
    kv(w, "Honour GPC", yes_no(json_object_get(consent, "honor_gpc")));
    kv(w, "TCF vendor id", vendor);
    free(vendor);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        const char *purpose = sg_purpose_name((enum sg_purpose)p);
        char label[96], *t = tcf_text(site, purpose);
        snprintf(label, sizeof(label), "TCF purposes for %s", purpose);
        kv(w, label, t);
        free(t);
    }
    w->ops->table_end(w);
}

static void walk_destinations(struct writer *w, const json_t *site)
{
    static const struct col cols[] = {{.title = "id"},
                                      {.title = "dry run"},
                                      {.title = "test events"},
                                      {.title = "events allowed"}};
    size_t j;
    json_t *d;
    w->ops->heading(w, 3, "Destinations", NULL);
    w->ops->table_begin(w, "dests", NULL, cols, SG_ARRAY_SIZE(cols));
    json_array_foreach(json_object_get(site, "destinations"), j, d) {
        char *ev = joined(json_object_get(d, "events"), "all");
        const struct cell c[] = {{.text = STR(d, "id"), .cls = "mono", .code = true},
                                 {.text = yes_no(json_object_get(d, "dry_run"))},
                                 {.text = yes_no(json_object_get(d, "test"))},
                                 {.text = ev}};
        w->ops->row(w, c, SG_ARRAY_SIZE(c));
        free(ev);
    }
    w->ops->table_end(w);
}

static void walk_event_map(struct writer *w, const json_t *site)
{
    static const struct col cols[] = {
        {.title = "incoming event"}, {.title = "outbound event(s)"}, {.title = "source"}};
    char intro[96];
    const char *key;
    json_t *v;
    snprintf(intro, sizeof(intro), "Keys match case-insensitively; the built-in map is %s",
             json_is_true(json_object_get(site, "standard_events")) ? "on" : "off");
    w->ops->heading(w, 3, "Event map (effective)", NULL);
    w->ops->paragraph(w, intro, false);
    w->ops->table_begin(w, "eventmap", NULL, cols, SG_ARRAY_SIZE(cols));
    json_object_foreach(json_object_get(site, "event_map"), key, v) {
        char *to = joined(json_object_get(v, "to"), "");
        const struct cell c[] = {{.text = key}, {.text = to}, {.text = STR(v, "from")}};
        w->ops->row(w, c, SG_ARRAY_SIZE(c));
        free(to);
    }
    w->ops->table_end(w);
}

/* One row per outbound field, one column per consent state; each cell is classed by outcome. */
static void walk_matrix(struct writer *w, const json_t *site, const json_t *states_)
{
    size_t j, n = json_array_size(states_) + 1;
    struct col *cols = sg_xcalloc(n, sizeof(*cols));
    struct cell *cells = sg_xcalloc(n, sizeof(*cells));
    char(*cls)[64] = sg_xcalloc(n, sizeof(*cls));
    const char *key;
    json_t *v, *row;
    cols[0].title = "outbound field";
    json_array_foreach(states_, j, v) {
        cols[j + 1].title = STR(v, "title");
        cols[j + 1].state = STR(v, "key");
    }
    w->ops->heading(w, 3, "Policy matrix: what leaves, per outbound field and consent state",
                    NULL);
    w->ops->table_begin(w, "matrix", NULL, cols, n);
    json_object_foreach(json_object_get(site, "matrix"), key, row) {
        cells[0] = (struct cell){.text = key, .head = true, .code = true};
        json_array_foreach(states_, j, v) {
            const char *o = STR(row, STR(v, "key"));
            snprintf(cls[j], sizeof(cls[j]), "o-%s", o ? o : "");
            cells[j + 1] = (struct cell){.text = o, .cls = cls[j]};
        }
        w->ops->row(w, cells, n);
    }
    w->ops->table_end(w);
    free(cols);
    free(cells);
    free(cls);
}

static void render_doc(const json_t *r, const struct writer_ops *ops, FILE *f)
{
    struct writer w = {.ops = ops, .f = f};
    json_t *site, *states_ = json_object_get(r, "consent_states");
    size_t i;
    ops->doc_begin(&w, STR(r, "title"), STR(r, "config"));
    walk_head(&w, r);
    json_array_foreach(json_object_get(r, "sites"), i, site) {
        ops->site_begin(&w, STR(site, "id"));
        ops->heading(&w, 2, "Site ", STR(site, "id"));
        walk_rule_set(&w, site);
        walk_rules(&w, site);
        walk_consent(&w, site);
        walk_destinations(&w, site);
        walk_event_map(&w, site);
        walk_matrix(&w, site, states_);
        ops->site_end(&w);
    }
    ops->doc_end(&w);
}

/* ---- the Markdown writer ---- */

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

/* Markdown sets blocks apart by a blank line: one before each block but the first. */
static void md_block(struct writer *w)
{
    if (w->blocks)
        fputc('\n', w->f);
    w->blocks = true;
}

/* A markdown document has no preamble, no sections and no closing; its tables no end mark. */
static void md_doc_begin(struct writer *w, const char *title, const char *config)
{
    (void)w, (void)title, (void)config;
}

static void md_site_begin(struct writer *w, const char *id)
{
    (void)w, (void)id;
}

static void md_nothing(struct writer *w)
{
    (void)w;
}

/* The identifier in a heading stays plain, as markdown reports have always had it. */
static void md_heading(struct writer *w, int level, const char *text, const char *code)
{
    md_block(w);
    fprintf(w->f, "%.*s ", level, "###");
    md(w->f, text);
    md(w->f, code);
    fputc('\n', w->f);
}

/*
 * A paragraph that introduces the table below ("these signals") ends with ':' here and with
 * '.' in HTML, as reports have always been written; scripts compare reports byte for byte.
 */
static void md_paragraph(struct writer *w, const char *text, bool lead_in)
{
    md_block(w);
    fprintf(w->f, "%s%c\n", text, lead_in ? ':' : '.');
}

/* A key/value table still needs a header row in markdown: an empty one. */
static void md_table_begin(struct writer *w, const char *cls, const char *id,
                           const struct col *cols, size_t n)
{
    (void)cls, (void)id;
    md_block(w);
    if (n == 0) {
        fputs("| | |\n|---|---|\n", w->f);
        return;
    }
    fputc('|', w->f);
    for (size_t i = 0; i < n; i++) {
        fputc(' ', w->f);
        md(w->f, cols[i].title);
        fputs(" |", w->f);
    }
    fputs("\n|", w->f);
    for (size_t i = 0; i < n; i++)
        fputs("---|", w->f);
    fputc('\n', w->f);
}

static void md_row(struct writer *w, const struct cell *c, size_t n)
{
    fputc('|', w->f);
    for (size_t i = 0; i < n; i++) {
        fputc(' ', w->f);
        if (c[i].code)
            md_code(w->f, c[i].text);
        else
            md(w->f, c[i].text);
        fputs(" |", w->f);
    }
    fputc('\n', w->f);
}

static const struct writer_ops md_writer = {
    .doc_begin = md_doc_begin,
    .doc_end = md_nothing,
    .site_begin = md_site_begin,
    .site_end = md_nothing,
    .heading = md_heading,
    .paragraph = md_paragraph,
    .table_begin = md_table_begin,
    .row = md_row,
    .table_end = md_nothing,
};

/* ---- the HTML writer ---- */

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

/* ` name="value"`, escaped; nothing when value is NULL. */
static void h_attr(FILE *f, const char *name, const char *value)
{
    if (!value)
        return;
    fprintf(f, " %s=\"", name);
    h(f, value);
    fputc('"', f);
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

static void html_doc_begin(struct writer *w, const char *title, const char *config)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          w->f);
    h(w->f, title);
    fputs(" - ", w->f);
    h(w->f, config);
    fprintf(w->f, "</title>\n<style>%s</style>\n</head>\n<body>\n", css);
}

/* The sign-off block is for the printed page (the .signoff style); markdown has none. */
static void html_doc_end(struct writer *w)
{
    fputs("<h2>Sign-off</h2>\n<table class=\"kv signoff\">\n<tr><th>Reviewed by</th><td></td>"
          "</tr>\n<tr><th>Role</th><td></td></tr>\n<tr><th>Date</th><td></td></tr>\n<tr><th>"
          "Signature</th><td></td></tr>\n</table>\n</body>\n</html>\n",
          w->f);
}

/* A site is a section, so that print starts each one on a new page. */
static void html_site_begin(struct writer *w, const char *id)
{
    fputs("<section class=\"site\"", w->f);
    h_attr(w->f, "data-site", id);
    fputs(">\n", w->f);
}

static void html_site_end(struct writer *w)
{
    fputs("</section>\n", w->f);
}

static void html_heading(struct writer *w, int level, const char *text, const char *code)
{
    fprintf(w->f, "<h%d>", level);
    h(w->f, text);
    if (code) {
        fputs("<code>", w->f);
        h(w->f, code);
        fputs("</code>", w->f);
    }
    fprintf(w->f, "</h%d>\n", level);
}

static void html_paragraph(struct writer *w, const char *text, bool lead_in)
{
    (void)lead_in;
    fprintf(w->f, "<p>%s.</p>\n", text);
}

static void html_table_begin(struct writer *w, const char *cls, const char *id,
                             const struct col *cols, size_t n)
{
    fputs("<table", w->f);
    h_attr(w->f, "class", cls);
    h_attr(w->f, "id", id);
    fputc('>', w->f);
    w->thead = n > 0;
    if (w->thead) {
        fputs("<thead><tr>", w->f);
        for (size_t i = 0; i < n; i++) {
            fputs("<th", w->f);
            h_attr(w->f, "data-state", cols[i].state);
            fputc('>', w->f);
            h(w->f, cols[i].title);
            fputs("</th>", w->f);
        }
        fputs("</tr></thead><tbody>", w->f);
    }
    fputc('\n', w->f);
}

static void html_row(struct writer *w, const struct cell *c, size_t n)
{
    fputs("<tr>", w->f);
    for (size_t i = 0; i < n; i++) {
        const char *tag = c[i].head ? "th" : "td";
        bool code = c[i].code && !c[i].cls;
        fprintf(w->f, "<%s", tag);
        h_attr(w->f, "class", c[i].cls);
        fputs(code ? "><code>" : ">", w->f);
        h(w->f, c[i].text);
        fprintf(w->f, "%s</%s>", code ? "</code>" : "", tag);
    }
    fputs("</tr>\n", w->f);
}

static void html_table_end(struct writer *w)
{
    fputs(w->thead ? "</tbody></table>\n" : "</table>\n", w->f);
}

static const struct writer_ops html_writer = {
    .doc_begin = html_doc_begin,
    .doc_end = html_doc_end,
    .site_begin = html_site_begin,
    .site_end = html_site_end,
    .heading = html_heading,
    .paragraph = html_paragraph,
    .table_begin = html_table_begin,
    .row = html_row,
    .table_end = html_table_end,
};

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
        render_doc(report, &md_writer, out);
        break;
    case SG_REPORT_HTML:
        render_doc(report, &html_writer, out);
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
