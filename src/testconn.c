/*
 * testconn.c - test-connection (see testconn.h): one test event per
 * destination, sent on the caller's loop with the async HTTP client, and a
 * verdict with a hint per destination. The command-line form runs its own
 * loop until every destination answered.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/dest.h"
#include "scrubgate/event.h"
#include "scrubgate/http_client.h"
#include "scrubgate/log.h"
#include "scrubgate/testconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX 300

struct job {
    struct sg_testconn *t;
    size_t i;
    char *token; /* owned secret copy: redacted from anything shown */
};

struct sg_testconn {
    struct sg_testconn_result *r; /* owned, n of them */
    struct job *jobs;
    size_t n, pending;
    sg_testconn_done_fn *done;
    void *arg;
    bool forgotten;
};

const char *sg_testconn_status_name(enum sg_testconn_status s)
{
    return s == SG_TESTCONN_OK ? "ok" : s == SG_TESTCONN_DRY_RUN ? "dry_run" : "failed";
}

/* What the operator should do about a reply that was not ok. */
static const char *hint_for(const struct sg_dest_reply *reply, long http_status)
{
    if (reply->result == SG_DEST_AUTH)
        return "rotate the access token";
    if (reply->code == 40001)
        return "check pixel_code, and that the access token was generated for this pixel "
               "(else rotate the access token)";
    if (!strcmp(reply->reason, "throttled"))
        return "TikTok is throttling requests: try again later";
    if (!strcmp(reply->reason, "transient") || !strcmp(reply->reason, "http_5xx"))
        return "TikTok had a transient error: try again later";
    if (reply->code < 0 && http_status > 0)
        return "check api_base: the reply was not the Events API's";
    if (!strcmp(reply->reason, "bad_request"))
        return "TikTok refused the request: check pixel_code and test_event_code, and quote the "
               "request_id to TikTok support";
    return "unexpected reply: quote the request_id to TikTok support";
}

/*
 * Blank out of s (in place) the token and every piece of it of TOKEN_PIECE bytes or more: a
 * reply may quote the token whole, cut, or inside another field. Runs before any truncation,
 * so that a cut can never leave the token's first bytes behind.
 */
#define TOKEN_PIECE 8
static void redact(char *s, size_t n, const char *token)
{
    size_t tl = token ? strlen(token) : 0;
    if (tl == 0)
        return;
    size_t w = SG_MIN(tl, (size_t)TOKEN_PIECE);
    for (size_t i = 0; i + w <= n; i++)
        for (size_t k = 0; k + w <= tl; k++) {
            if (memcmp(s + i, token + k, w) != 0)
                continue;
            size_t m = w;
            while (i + m < n && k + m < tl && s[i + m] == token[k + m])
                m++;
            memset(s + i, '*', m);
            break;
        }
}

/* A bounded, printable copy of text with the token (whole or in pieces) blanked out. */
static char *shown_text(const char *text, size_t len, const char *token)
{
    char *s = sg_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        s[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? ' ' : text[i];
    s[len] = '\0';
    redact(s, len, token);
    if (len > MESSAGE_MAX)
        s[MESSAGE_MAX] = '\0';
    return s;
}

static void finish_one(struct sg_testconn *t)
{
    if (--t->pending)
        return;
    if (!t->forgotten)
        t->done(t->arg, t->r, t->n);
    for (size_t i = 0; i < t->n; i++) {
        free(t->r[i].destination);
        free(t->r[i].message);
        sg_free_secret(t->jobs[i].token);
    }
    free(t->r);
    free(t->jobs);
    free(t);
}

static void job_done(void *arg, const struct sg_http_result *res)
{
    struct job *j = arg;
    struct sg_testconn_result *r = &j->t->r[j->i];
    struct sg_dest_reply reply;
    bool replied = res->curl_code == CURLE_OK || res->too_large;

    r->http_status = res->status;
    if (!replied) {
        r->status = SG_TESTCONN_FAILED;
        r->http_status = 0;
        r->message = shown_text(res->error, strlen(res->error), j->token);
        r->hint = "check api_base and network";
        finish_one(j->t);
        return;
    }
    sg_dest_tiktok.classify(res->status, res->body, res->body_len, &reply);
    r->code = reply.code;
    memcpy(r->request_id, reply.request_id, sizeof(r->request_id));
    redact(r->request_id, strlen(r->request_id), j->token); /* echoed by a hostile api_base */
    json_t *doc = res->body_len ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    r->message = msg ? shown_text(msg, strlen(msg), j->token) : sg_xstrdup("");
    json_decref(doc);
    if (reply.result == SG_DEST_OK || reply.result == SG_DEST_PARTIAL) {
        r->status = SG_TESTCONN_OK;
    } else {
        r->status = SG_TESTCONN_FAILED;
        r->hint = hint_for(&reply, res->status);
    }
    finish_one(j->t);
}

/* Start the request of destination i; 0, or -1 when it could not start (result filled). */
static int send_one(struct sg_testconn *t, struct sg_http *http, const struct sg_dest_conf *d,
                    const struct sg_limits *lim, size_t i)
{
    struct sg_event ev;
    struct sg_buf body;
    struct sg_dest_conf test = *d; /* a shallow copy that carries the test code */
    int rc = -1;

    if (!test.test_event_code)
        test.test_event_code = SG_TESTCONN_DEFAULT_CODE;
    sg_event_init(&ev);
    ev.name = sg_xstrdup("Purchase");
    ev.event_id = sg_xasprintf("test-connection-%lld", (long long)sg_now_unix());
    ev.event_time = sg_now_unix();
    char *json = d->ops->format_event(&ev);
    sg_event_release(&ev);
    const char *evs[1] = {json};
    size_t lens[1] = {strlen(json)};
    sg_buf_init(&body, 0);
    if (d->ops->build_body(&test, evs, lens, 1, true, &body) == 0) {
        struct curl_slist *hdrs = d->ops->headers(d);
        size_t len;
        char *data = sg_buf_detach(&body, &len);
        if (!hdrs)
            free(data);
        else
            rc = sg_http_post(http, d->url, hdrs, data, len, lim->upstream_timeout_ms, job_done,
                              &t->jobs[i]);
    }
    sg_buf_release(&body);
    free(json);
    if (rc < 0) {
        t->r[i].status = SG_TESTCONN_FAILED;
        t->r[i].message = sg_xstrdup("the request could not be started");
        t->r[i].hint = "check api_base and network";
    }
    return rc;
}

struct sg_testconn *sg_testconn_start(struct sg_http *http, const struct sg_site *site,
                                      const struct sg_limits *lim, sg_testconn_done_fn *done,
                                      void *arg)
{
    struct sg_testconn *t = sg_xcalloc(1, sizeof(*t));
    t->n = site->n_dests;
    t->r = sg_xcalloc(t->n ? t->n : 1, sizeof(*t->r));
    t->jobs = sg_xcalloc(t->n ? t->n : 1, sizeof(*t->jobs));
    t->done = done;
    t->arg = arg;
    t->pending = 1; /* held until every request started: done comes after this loop */
    for (size_t i = 0; i < t->n; i++) {
        const struct sg_dest_conf *d = &site->dests[i];
        struct sg_testconn_result *r = &t->r[i];
        r->destination = sg_xstrdup(d->id);
        r->code = -1;
        t->jobs[i] = (struct job){t, i, d->access_token ? sg_xstrdup(d->access_token) : NULL};
        if (d->dry_run) {
            r->status = SG_TESTCONN_DRY_RUN;
            r->message = sg_xstrdup("");
            r->hint = "dry run: not sent";
            continue;
        }
        t->pending++;
        if (send_one(t, http, d, lim, i) < 0)
            t->pending--;
    }
    bool last = t->pending == 1;
    finish_one(t);
    return last ? NULL : t;
}

void sg_testconn_forget(struct sg_testconn *t)
{
    if (t)
        t->forgotten = true;
}

json_t *sg_testconn_result_json(const struct sg_testconn_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "destination", json_string(r->destination));
    json_object_set_new(o, "status", json_string(sg_testconn_status_name(r->status)));
    json_object_set_new(o, "http_status", r->http_status ? json_integer(r->http_status)
                                                         : json_null());
    json_object_set_new(o, "code", r->code >= 0 ? json_integer(r->code) : json_null());
    json_object_set_new(o, "message", json_string(r->message ? r->message : ""));
    json_object_set_new(o, "request_id", r->request_id[0] ? json_string(r->request_id)
                                                          : json_null());
    json_object_set_new(o, "hint", r->hint ? json_string(r->hint) : json_null());
    return o;
}

char *sg_testconn_result_line(const struct sg_testconn_result *r)
{
    char rid[100] = "";
    if (r->request_id[0])
        snprintf(rid, sizeof(rid), ", request_id %s", r->request_id);
    if (r->status == SG_TESTCONN_DRY_RUN)
        return sg_xasprintf("%s: dry run: not sent", r->destination);
    if (r->status == SG_TESTCONN_OK)
        return sg_xasprintf("%s: ok (code %ld%s)", r->destination, r->code, rid);
    if (!r->http_status)
        return sg_xasprintf("%s: FAILED (no reply: %s) - %s", r->destination, r->message,
                            r->hint);
    if (r->code < 0)
        return sg_xasprintf("%s: FAILED (http %ld, no API code%s) - %s", r->destination,
                            r->http_status, rid, r->hint);
    return sg_xasprintf("%s: FAILED (http %ld, code %ld: %s%s) - %s", r->destination,
                        r->http_status, r->code, r->message, rid, r->hint);
}

bool sg_testconn_all_ok(const struct sg_testconn_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].status == SG_TESTCONN_FAILED)
            return false;
    return true;
}

/* ---- the command ---- */

struct cli {
    struct event_base *base;
    bool json, finished;
    int rc;
};

static void cli_done(void *arg, const struct sg_testconn_result *r, size_t n)
{
    struct cli *c = arg;
    for (size_t i = 0; i < n; i++) {
        char *line;
        if (c->json) {
            json_t *o = sg_testconn_result_json(&r[i]);
            line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(o);
        } else {
            line = sg_testconn_result_line(&r[i]);
        }
        if (line)
            puts(line);
        free(line);
    }
    fflush(stdout);
    c->rc = n && sg_testconn_all_ok(r, n) ? 0 : 1;
    c->finished = true;
    event_base_loopbreak(c->base);
}

int sg_test_connection_cli(const struct sg_config *cfg, const char *site_id, bool json)
{
    const struct sg_site *site = site_id ? sg_config_site_by_id(cfg, site_id) : NULL;
    if (!site || strcmp(site->id, site_id) != 0) {
        fprintf(stderr, "scrubgate test-connection: %s: no site \"%s\"\n", cfg->path,
                site_id ? site_id : "");
        return 2;
    }
    if (!site->n_dests) {
        fprintf(stderr, "scrubgate test-connection: %s: site \"%s\" has no destination\n",
                cfg->path, site->id);
        return 1;
    }
    struct cli c = {.json = json, .rc = 1};
    c.base = event_base_new();
    struct sg_http *http = c.base ? sg_http_new(c.base, cfg->limits.max_response_bytes) : NULL;
    if (!http) {
        if (c.base)
            event_base_free(c.base);
        fprintf(stderr, "scrubgate test-connection: cannot set up the HTTP client\n");
        return 1;
    }
    sg_testconn_start(http, site, &cfg->limits, cli_done, &c);
    while (!c.finished && event_base_dispatch(c.base) == 0)
        ;
    sg_http_free(http);
    event_base_free(c.base);
    return c.rc;
}
