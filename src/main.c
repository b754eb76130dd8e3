/*
 * main.c - the scrubgate command line (docs/OPERATIONS.md, "Commands").
 *
 * Exit status: 0 success, 1 runtime failure, 2 bad usage or invalid config.
 */
#include "scrubgate/common.h"
#include "scrubgate/arena.h"
#include "scrubgate/dest.h"
#include "scrubgate/eventmap.h"
#include "scrubgate/http.h"
#include "scrubgate/jsonpos.h"
#include "scrubgate/log.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/replay.h"
#include "scrubgate/report.h"
#include "scrubgate/rules.h"
#include "scrubgate/server.h"
#include "scrubgate/snippet.h"
#include "scrubgate/testconn.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The command line: one table of options, one table of commands saying which
 * options each takes, one parser. An option a command does not take, a
 * missing option argument and a missing required option are bad usage (2).
 */
enum opt {
    OPT_CONFIG = 1u << 0,
    OPT_SITE = 1u << 1,
    OPT_IP = 1u << 2,
    OPT_UA = 1u << 3,
    OPT_GPC = 1u << 4,
    OPT_HEADER = 1u << 5,
    OPT_JSON = 1u << 6,
    OPT_FORMAT = 1u << 7,
    OPT_OUTPUT = 1u << 8,
    OPT_SINCE = 1u << 9,
    OPT_INPUT = 1u << 10, /* the positional EVENT.json|- */
};

static const struct {
    enum opt opt;
    const char *short_name, *long_name;
    bool has_arg;
} options[] = {
    {OPT_CONFIG, "-c", "--config", true}, {OPT_SITE, NULL, "--site", true},
    {OPT_IP, NULL, "--ip", true},         {OPT_UA, NULL, "--ua", true},
    {OPT_GPC, NULL, "--gpc", false},      {OPT_HEADER, NULL, "--header", true},
    {OPT_JSON, NULL, "--json", false},    {OPT_FORMAT, NULL, "--format", true},
    {OPT_OUTPUT, "-o", "--output", true}, {OPT_SINCE, NULL, "--since", true},
};

#define MAX_HEADERS 32

struct args {
    const char *config;
    const char *site;
    const char *ip;
    const char *ua;
    bool gpc;
    bool json;
    const char *format; /* check: md, html, csv or json (--json is --format json); NULL: text */
    const char *output; /* check: -o FILE; NULL: standard output */
    const char *headers[MAX_HEADERS];
    int n_headers;
    const char *input;
    const char *since;
};

struct command {
    const char *name;
    int (*run)(const struct args *a);
    unsigned takes;    /* enum opt bits */
    unsigned requires; /* enum opt bits */
    const char *usage; /* after "scrubgate NAME" */
    const char *what;
};

static int cmd_serve(const struct args *a);
static int cmd_check(const struct args *a);
static int cmd_explain(const struct args *a);
static int cmd_test_connection(const struct args *a);
static int cmd_replay(const struct args *a);
static int cmd_version(const struct args *a);

static const struct command commands[] = {
    {"serve", cmd_serve, OPT_CONFIG, OPT_CONFIG, "-c FILE",
     "run the proxy (the default command)"},
    {"check", cmd_check, OPT_CONFIG | OPT_JSON | OPT_FORMAT | OPT_OUTPUT, OPT_CONFIG,
     "-c FILE [--json] [--format md|html|csv|json] [-o FILE]",
     "validate the config and its rule sets; print the policy matrix per site\n"
     "(--json is --format json; -o writes the report to FILE)"},
    {"explain", cmd_explain,
     OPT_CONFIG | OPT_SITE | OPT_IP | OPT_UA | OPT_GPC | OPT_HEADER | OPT_INPUT,
     OPT_CONFIG | OPT_SITE,
     "-c FILE --site ID [--ip A] [--ua S] [--gpc] [--header 'K: V']... [EVENT.json|-]",
     "dry run of one event (from the file, or standard input): print the outbound\n"
     "event and the decision receipt; sends nothing"},
    {"test-connection", cmd_test_connection, OPT_CONFIG | OPT_SITE | OPT_JSON,
     OPT_CONFIG | OPT_SITE, "-c FILE --site ID [--json]",
     "send one test event per destination of the site; print TikTok's verdict"},
    {"replay", cmd_replay, OPT_CONFIG | OPT_SITE | OPT_SINCE, OPT_CONFIG,
     "-c FILE [--site ID] [--since TIME]",
     "send dead-lettered events again (TIME: Unix seconds or RFC 3339)"},
    {"version", cmd_version, 0, 0, "", "print the version"},
};

static void command_usage(FILE *f, const struct command *c)
{
    fprintf(f, "usage: scrubgate %s%s%s\n\n", c->name, c->usage[0] ? " " : "", c->usage);
    fprintf(f, "%s\n\nEvery command also takes -h, --help (this text) and -v, --verbose (debug "
               "log).\n", c->what);
}

static void usage(FILE *f)
{
    fputs("usage: scrubgate [COMMAND] [OPTIONS]\n\ncommands:\n", f);
    for (size_t i = 0; i < SG_ARRAY_SIZE(commands); i++)
        fprintf(f, "  scrubgate %s%s%s\n", commands[i].name, commands[i].usage[0] ? " " : "",
                commands[i].usage);
    fputs("  scrubgate --version\n  scrubgate help [COMMAND]\n\n"
          "With no command, serve. \"scrubgate COMMAND --help\" describes one command.\n"
          "Exit status: 0 success, 1 runtime failure, 2 bad usage or invalid config.\n",
          f);
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < SG_ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int bad_usage(const struct command *c, const char *fmt, ...) SG_PRINTF(2, 3);
static int bad_usage(const struct command *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "scrubgate %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    command_usage(stderr, c);
    return 2;
}

/*
 * Parse argv[start..] for command c into a. Returns -1 when parsing is done
 * and the command should run, else the exit status (0 after --help, 2 on bad
 * usage).
 */
static int parse_args(const struct command *c, int argc, char **argv, int start, struct args *a)
{
    unsigned seen = 0;
    memset(a, 0, sizeof(*a));
    for (int i = start; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            command_usage(stdout, c);
            return 0;
        }
        if (!strcmp(s, "-v") || !strcmp(s, "--verbose")) {
            sg_log_pin_debug();
            continue;
        }
        if (s[0] != '-' || !strcmp(s, "-")) {
            if (!(c->takes & OPT_INPUT) || a->input)
                return bad_usage(c, "unexpected argument: %s", s);
            a->input = s;
            seen |= OPT_INPUT;
            continue;
        }
        size_t k;
        for (k = 0; k < SG_ARRAY_SIZE(options); k++)
            if ((options[k].short_name && !strcmp(s, options[k].short_name)) ||
                !strcmp(s, options[k].long_name))
                break;
        if (k == SG_ARRAY_SIZE(options))
            return bad_usage(c, "unknown option: %s", s);
        if (!(c->takes & options[k].opt))
            return bad_usage(c, "this command does not take the option %s", s);
        const char *v = NULL;
        if (options[k].has_arg) {
            if (i + 1 >= argc)
                return bad_usage(c, "the option %s needs an argument", s);
            v = argv[++i];
        }
        seen |= options[k].opt;
        switch (options[k].opt) {
        case OPT_CONFIG: a->config = v; break;
        case OPT_SITE: a->site = v; break;
        case OPT_IP: a->ip = v; break;
        case OPT_UA: a->ua = v; break;
        case OPT_GPC: a->gpc = true; break;
        case OPT_JSON: a->json = true; break;
        case OPT_OUTPUT: a->output = v; break;
        case OPT_SINCE: a->since = v; break;
        case OPT_FORMAT:
            if (strcmp(v, "md") && strcmp(v, "html") && strcmp(v, "csv") && strcmp(v, "json"))
                return bad_usage(c, "--format takes md, html, csv or json, not \"%s\"", v);
            a->format = v;
            break;
        case OPT_HEADER:
            if (a->n_headers == MAX_HEADERS)
                return bad_usage(c, "at most %d %s options", MAX_HEADERS, s);
            a->headers[a->n_headers++] = v;
            break;
        case OPT_INPUT: break;
        }
    }
    if (a->json && a->format && strcmp(a->format, "json"))
        return bad_usage(c, "--json and --format %s disagree", a->format);
    if (a->json)
        a->format = "json";
    else if (a->format && !strcmp(a->format, "json"))
        a->json = true;
    if ((c->requires & OPT_CONFIG) && !(seen & OPT_CONFIG))
        return bad_usage(c, "%s is required", "-c FILE");
    if ((c->requires & OPT_SITE) && !(seen & OPT_SITE))
        return bad_usage(c, "%s is required", "--site ID");
    return -1;
}

/* ---- check: validate, then the policy matrix or the audit report (report.h) ---- */

/* The report's generated time: SOURCE_DATE_EPOCH when set (reproducible reports), else now. */
static time_t report_time(void)
{
    const char *e = getenv("SOURCE_DATE_EPOCH");
    char *end;
    if (e && *e) {
        long long t = strtoll(e, &end, 10);
        if (!*end && t >= 0)
            return (time_t)t;
    }
    return time(NULL);
}

static int cmd_check(const struct args *a)
{
    int fmt = SG_REPORT_TEXT;
    if (a->format && (fmt = sg_report_format_from_name(a->format)) < 0) {
        fprintf(stderr, "scrubgate: --format: one of text, json, md, html, csv\n");
        return 2;
    }
    if (a->json && !a->format)
        fmt = SG_REPORT_JSON;
    struct sg_config *cfg = sg_config_load(a->config);
    if (!cfg)
        return 2;
    json_t *report = sg_report_build(cfg, a->config, report_time());
    int rc = sg_report_write(report, (enum sg_report_format)fmt, a->output) < 0 ? 1 : 0;
    json_decref(report);
    sg_config_free(cfg);
    return rc;
}

/* ---- explain ---- */

static int cmd_explain(const struct args *a)
{
    int rc = 2;
    struct sg_config *cfg = NULL;
    json_t *in = NULL, *report = NULL;
    struct sg_http_fields headers;
    char *names[MAX_HEADERS] = {0}; /* the --header names, kept while headers points at them */
    struct sg_request_ctx ctx;
    struct sg_event ev;
    json_error_t jerr;
    char err[256];
    const char *name = a->input && strcmp(a->input, "-") ? a->input : "(stdin)";

    sg_http_fields_init(&headers);
    memset(&ctx, 0, sizeof(ctx));
    sg_event_init(&ev);
    if (!(cfg = sg_config_load(a->config)))
        goto out;
    const struct sg_site *site = sg_config_site_by_id(cfg, a->site);
    if (!site) {
        fprintf(stderr, "scrubgate explain: %s: no site \"%s\"\n", a->config, a->site);
        goto out;
    }
    if (strcmp(name, "(stdin)")) {
        /* Open it here: jansson reports a file it cannot read as "line -1 column -1". */
        struct stat st;
        FILE *fp = fopen(a->input, "rb");
        if (fp && fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
            fclose(fp);
            fp = NULL;
            errno = EISDIR;
        }
        if (!fp) {
            fprintf(stderr, "scrubgate explain: cannot read the event file %s: %s\n", a->input,
                    strerror(errno));
            goto out;
        }
        in = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
        fclose(fp);
    } else
        in = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
    if (!in) {
        char why[200];
        sg_json_syntax_error(&jerr, why, sizeof(why));
        fprintf(stderr, "scrubgate explain: %s: %s\n", name, why);
        goto out;
    }
    if (a->ua)
        sg_http_fields_add(&headers, "User-Agent", a->ua);
    if (a->gpc)
        sg_http_fields_add(&headers, "Sec-GPC", "1");
    for (int i = 0; i < a->n_headers; i++) {
        const char *colon = strchr(a->headers[i], ':');
        if (!colon || colon == a->headers[i]) {
            fprintf(stderr, "scrubgate explain: --header wants 'Name: value'\n");
            goto out;
        }
        names[i] = sg_xstrndup(a->headers[i], (size_t)(colon - a->headers[i]));
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        sg_http_fields_add(&headers, names[i], v);
    }
    if (sg_request_ctx_init(&ctx, cfg, a->ip ? a->ip : "", &headers) < 0) {
        rc = 1;
        goto out;
    }
    int auth = sg_request_authenticate(site, &headers);
    if (auth < 0) {
        fprintf(stderr, "scrubgate explain: invalid ingest key for site %s\n", site->id);
        goto out;
    }
    ctx.trusted_server = auth == 1;
    enum sg_pipe_result pr = sg_pipeline_run(site, &cfg->limits, in, &ctx, &ev, err, sizeof(err));
    if (pr == SG_PIPE_INVALID) {
        fprintf(stderr, "scrubgate explain: %s: %s\n", name, err);
        goto out;
    }
    report = json_object();
    json_object_set_new(report, "site", json_string(site->id));
    json_object_set_new(report, "rule_set",
                        json_pack("{s:s,s:s}", "name", sg_ruleset_name(site->rules), "version",
                                  sg_ruleset_version(site->rules)));
    json_object_set_new(report, "session", json_string(ctx.new_session ? "new" : "cookie"));
    json_object_set_new(report, "event", pr == SG_PIPE_OK ? sg_tiktok_event_json(&ev) : json_null());
    if (ev.n_also) {
        /* A one-to-many map: the further outbound events, each with its derived id. */
        json_t *more = json_array();
        struct sg_outbound o;
        for (sg_event_outbound_begin(&o, &ev, 1); sg_event_outbound_next(&o);)
            json_array_append_new(more, pr == SG_PIPE_OK
                                            ? sg_tiktok_event_json(&ev)
                                            : json_pack("{s:s,s:s}", "event", ev.name,
                                                        "event_id", ev.event_id));
        json_object_set_new(report, "more_events", more);
    }
    json_t *dests = json_array();
    for (size_t d = 0; d < site->n_dests; d++) {
        const struct sg_dest_conf *dc = &site->dests[d];
        const char *decision = "send", *reason = NULL;
        if (pr == SG_PIPE_SKIP) {
            decision = "skipped";
            reason = ev.skip_reason;
        } else if (!sg_dest_allows_event(dc, ev.name)) {
            decision = "skipped";
            reason = "not_in_allowlist";
        } else if (dc->dry_run) {
            decision = "skipped";
            reason = "dry_run";
        }
        json_t *o = json_pack("{s:s,s:s,s:s}", "id", dc->id, "url", dc->url, "decision", decision);
        if (reason)
            json_object_set_new(o, "reason", json_string(reason));
        json_array_append_new(dests, o);
    }
    json_object_set_new(report, "destinations", dests);
    json_object_set_new(report, "receipt", sg_receipt_json(&ev));
    char *txt = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    puts(txt);
    free(txt);
    rc = 0;
out:
    json_decref(report);
    json_decref(in);
    sg_event_release(&ev);
    sg_request_ctx_release(&ctx);
    sg_http_fields_release(&headers);
    for (int i = 0; i < a->n_headers; i++)
        free(names[i]);
    sg_config_free(cfg);
    return rc;
}

static int cmd_replay(const struct args *a)
{
    struct sg_replay_opts opts = {a->site, 0};
    if (a->since) {
        char *end;
        long long v = strtoll(a->since, &end, 10);
        if (*end == '\0' && end != a->since) {
            opts.since = v;
        } else if (sg_parse_rfc3339(a->since, &opts.since) < 0) {
            fprintf(stderr, "scrubgate replay: --since takes Unix seconds or RFC 3339\n");
            return 2;
        }
    }
    struct sg_config *cfg = sg_config_load(a->config);
    if (!cfg)
        return 2;
    if (a->site && !sg_config_site_by_id(cfg, a->site)) {
        fprintf(stderr, "scrubgate replay: %s: no site \"%s\"\n", a->config, a->site);
        sg_config_free(cfg);
        return 2;
    }
    int rc = sg_replay_run(cfg, &opts);
    sg_config_free(cfg);
    return rc;
}

static int cmd_test_connection(const struct args *a)
{
    struct sg_config *cfg = sg_config_load(a->config);
    if (!cfg)
        return 2;
    if (!sg_config_site_by_id(cfg, a->site)) {
        fprintf(stderr, "scrubgate test-connection: %s: no site \"%s\"\n", a->config, a->site);
        sg_config_free(cfg);
        return 2;
    }
    int rc = sg_test_connection_cli(cfg, a->site, a->json);
    sg_config_free(cfg);
    return rc;
}

static int cmd_serve(const struct args *a)
{
    struct sg_config *cfg = sg_config_load(a->config);
    if (!cfg)
        return 2;
    sg_config_announce(cfg);
    int rc = sg_server_run(cfg);
    sg_config_free(cfg);
    return rc;
}

static int cmd_version(const struct args *a)
{
    (void)a;
    printf("scrubgate %s\n", SG_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    const char *first = argc > 1 ? argv[1] : NULL;
    const struct command *c;
    int start = 2;
    struct args a;

    sg_json_alloc_init(); /* before any JSON value exists */
    if (first && !strcmp(first, "--version"))
        return cmd_version(NULL);
    if (first && (!strcmp(first, "-h") || !strcmp(first, "--help"))) {
        usage(stdout);
        return 0;
    }
    if (first && !strcmp(first, "help")) {
        if (argc > 2 && (c = find_command(argv[2]))) {
            command_usage(stdout, c);
            return 0;
        }
        if (argc > 2) {
            fprintf(stderr, "scrubgate help: unknown command: %s\n", argv[2]);
            usage(stderr);
            return 2;
        }
        usage(stdout);
        return 0;
    }
    if (!first || first[0] == '-') {
        c = find_command("serve");
        start = 1;
    } else if (!(c = find_command(first))) {
        fprintf(stderr, "scrubgate: unknown command: %s\n", first);
        usage(stderr);
        return 2;
    }
    int rc = parse_args(c, argc, argv, start, &a);
    if (rc >= 0)
        return rc;
    if (c->run == cmd_version)
        return cmd_version(&a);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "scrubgate: curl_global_init failed\n");
        return 1;
    }
    rc = c->run(&a);
    curl_global_cleanup();
    return rc;
}
