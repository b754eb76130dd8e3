/*
 * main.c - the scrubgate command line (docs/OPERATIONS.md, "Commands").
 *
 * Exit status: 0 success, 1 runtime failure, 2 bad usage or invalid config.
 */
#include "scrubgate/common.h"
#include "scrubgate/dest.h"
#include "scrubgate/eventmap.h"
#include "scrubgate/jsonpos.h"
#include "scrubgate/log.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/replay.h"
#include "scrubgate/report.h"
#include "scrubgate/rules.h"
#include "scrubgate/snippet.h"
#include "scrubgate/server.h"

#include <curl/curl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  scrubgate serve -c FILE                 run the proxy (default command)\n"
          "  scrubgate check -c FILE [--json | --format md|html|csv|json] [-o FILE]\n"
          "                                          validate config and rule sets; print the\n"
          "                                          policy matrix per site, or write the\n"
          "                                          audit report (docs/OPERATIONS.md)\n"
          "  scrubgate explain -c FILE --site ID [--ip A] [--ua S] [--gpc]\n"
          "                    [--header 'K: V']... [EVENT.json|-]\n"
          "                                          dry run of one event; sends nothing\n"
          "  scrubgate replay -c FILE [--site ID] [--since TIME]\n"
          "                                          send dead-lettered events again\n"
          "  scrubgate version\n",
          f);
}

struct args {
    const char *config;
    const char *site;
    const char *ip;
    const char *ua;
    bool gpc;
    bool json;
    const char *headers[32];
    int n_headers;
    const char *input;
    const char *since;
    const char *format; /* check: text, json, md, html, csv (--json means json) */
    const char *output; /* check: -o FILE, written atomically; NULL = stdout */
};

static int parse_args(int argc, char **argv, int start, struct args *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = start; i < argc; i++) {
        const char *s = argv[i];
        bool has_next = i + 1 < argc;
        if ((!strcmp(s, "-c") || !strcmp(s, "--config")) && has_next)
            a->config = argv[++i];
        else if (!strcmp(s, "--site") && has_next)
            a->site = argv[++i];
        else if (!strcmp(s, "--ip") && has_next)
            a->ip = argv[++i];
        else if (!strcmp(s, "--since") && has_next)
            a->since = argv[++i];
        else if (!strcmp(s, "--ua") && has_next)
            a->ua = argv[++i];
        else if (!strcmp(s, "--header") && has_next && a->n_headers < 32)
            a->headers[a->n_headers++] = argv[++i];
        else if (!strcmp(s, "--format") && has_next)
            a->format = argv[++i];
        else if (!strcmp(s, "-o") && has_next)
            a->output = argv[++i];
        else if (!strcmp(s, "--gpc"))
            a->gpc = true;
        else if (!strcmp(s, "--json"))
            a->json = true;
        else if (!strcmp(s, "-v") || !strcmp(s, "--verbose"))
            sg_log_set_level(SG_LOG_DEBUG);
        else if ((s[0] != '-' || !strcmp(s, "-")) && !a->input)
            a->input = s;
        else {
            fprintf(stderr, "scrubgate: unknown or incomplete option: %s\n", s);
            return -1;
        }
    }
    if (!a->config) {
        fprintf(stderr, "scrubgate: -c FILE is required\n");
        return -1;
    }
    return 0;
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
    struct evkeyvalq headers;
    struct sg_request_ctx ctx;
    struct sg_event ev;
    json_error_t jerr;
    char err[256];
    const char *name = a->input && strcmp(a->input, "-") ? a->input : "(stdin)";

    TAILQ_INIT(&headers);
    memset(&ctx, 0, sizeof(ctx));
    sg_event_init(&ev);
    if (!a->site) {
        fprintf(stderr, "scrubgate explain: --site ID is required\n");
        goto out;
    }
    if (!(cfg = sg_config_load(a->config)))
        goto out;
    const struct sg_site *site = sg_config_site_by_id(cfg, a->site);
    if (!site) {
        fprintf(stderr, "scrubgate explain: %s: no site \"%s\"\n", a->config, a->site);
        goto out;
    }
    in = strcmp(name, "(stdin)") ? json_load_file(a->input, JSON_REJECT_DUPLICATES, &jerr)
                                 : json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
    if (!in) {
        char why[200];
        sg_json_syntax_error(&jerr, why, sizeof(why));
        fprintf(stderr, "scrubgate explain: %s: %s\n", name, why);
        goto out;
    }
    if (a->ua)
        evhttp_add_header(&headers, "User-Agent", a->ua);
    if (a->gpc)
        evhttp_add_header(&headers, "Sec-GPC", "1");
    for (int i = 0; i < a->n_headers; i++) {
        const char *colon = strchr(a->headers[i], ':');
        if (!colon || colon == a->headers[i]) {
            fprintf(stderr, "scrubgate explain: --header wants 'Name: value'\n");
            goto out;
        }
        char *k = sg_xstrndup(a->headers[i], (size_t)(colon - a->headers[i]));
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        evhttp_add_header(&headers, k, v);
        free(k);
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
        char *name0 = ev.name, *id0 = ev.event_id;
        for (unsigned k = 1; k <= ev.n_also; k++) {
            char idbuf[SG_EVENT_NAME_MAX + 160];
            const char *id;
            ev.name = (char *)sg_event_outbound(&ev, k, idbuf, sizeof(idbuf), &id);
            ev.event_id = (char *)id;
            json_array_append_new(more, pr == SG_PIPE_OK
                                            ? sg_tiktok_event_json(&ev)
                                            : json_pack("{s:s,s:s}", "event", ev.name,
                                                        "event_id", ev.event_id));
        }
        ev.name = name0;
        ev.event_id = id0;
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
    evhttp_clear_headers(&headers);
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

static int cmd_serve(const struct args *a)
{
    struct sg_config *cfg = sg_config_load(a->config);
    if (!cfg)
        return 2;
    int rc = sg_server_run(cfg);
    sg_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 && argv[1][0] != '-' ? argv[1] : "serve";
    int start = argc > 1 && argv[1][0] != '-' ? 2 : 1;
    struct args a;
    int rc;

    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("scrubgate %s\n", SG_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || (argc > 1 && !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "serve") && strcmp(cmd, "check") && strcmp(cmd, "explain") &&
        strcmp(cmd, "replay")) {
        fprintf(stderr, "scrubgate: unknown command: %s\n", cmd);
        usage(stderr);
        return 2;
    }
    if (parse_args(argc, argv, start, &a) < 0) {
        usage(stderr);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "scrubgate: curl_global_init failed\n");
        return 1;
    }
    if (!strcmp(cmd, "check"))
        rc = cmd_check(&a);
    else if (!strcmp(cmd, "explain"))
        rc = cmd_explain(&a);
    else if (!strcmp(cmd, "replay"))
        rc = cmd_replay(&a);
    else
        rc = cmd_serve(&a);
    curl_global_cleanup();
    return rc;
}
