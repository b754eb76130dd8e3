/*
 * admin.c - the admin listener (docs/OPERATIONS.md "Admin API"): /healthz
 * without a token; with the admin bearer token /metrics, /admin/sync-log and
 * /admin/test-connection. Runs on one worker's loop.
 *
 * /metrics reads every worker's counters, which are atomics, through
 * sg_worker_each_forwarder() (the table lock it takes is a reload's, never
 * taken per event), and the process-wide ingest reply counters (metrics.h).
 * Another worker may reload and free the configuration its forwarders
 * pointed at as soon as its table lock is released, so every name read
 * under that lock is copied. The admin's own configuration is switched on
 * its loop (sg_admin_set_config) and read only there.
 *
 * /admin/sync-log reads the log file backwards (sg_synclog_query) on a
 * thread of its own per query (at most MAX_QUERIES at once): bounded by the
 * limit it takes milliseconds even on a large log, but a filter that matches
 * nothing reads the whole file, which must not hold up this loop's ingest.
 * /admin/test-connection sends with the admin's own HTTP client on the same
 * loop; the reply waits for TikTok's answers without blocking anything.
 */
#include "scrubgate/common.h"
#include "scrubgate/admin.h"
#include "scrubgate/buf.h"
#include "scrubgate/conn.h"
#include "scrubgate/deadletter.h"
#include "scrubgate/event.h"
#include "scrubgate/forward.h"
#include "scrubgate/http_client.h"
#include "scrubgate/log.h"
#include "scrubgate/metrics.h"
#include "scrubgate/spool.h"
#include "scrubgate/synclog.h"
#include "scrubgate/testconn.h"
#include "scrubgate/worker.h"

#include <errno.h>
#include <pthread.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* At most this many sync-log queries run at once (each on its own thread); more get 503. */
#define MAX_QUERIES 4

/*
 * A request answered later: a test-connection waiting for TikTok's answers,
 * or a sync-log query running on its own thread (a query that reads far back
 * in a large log must not hold up the ingest requests of this loop).
 */
struct pending {
    struct sg_admin *a;
    struct sg_http_req *req; /* NULL once its client left */
    struct sg_testconn *t;      /* test-connection: NULL until started */
    /* sync-log query: the thread owns q's strings, path and out until it activates done_ev */
    bool query;
    pthread_t thread;
    struct event *done_ev;
    struct sg_synclog_query q;
    char *site, *status, *event_id, *path;
    struct sg_buf out;
    int rc, err;
    struct pending *next;
};

struct sg_admin {
    struct sg_conns *conns;      /* owned: the server; the same limits as ingest, its own budget */
    struct sg_http *client;      /* owned: test-connection's requests */
    const struct sg_config *cfg; /* borrowed */
    struct sg_worker **workers;  /* borrowed */
    int n_workers;
    const struct sg_admin_stores *stores; /* borrowed */
    struct pending *pending;     /* owned list */
    int queries;                 /* sync-log queries running */
};

/* ---- replies ---- */

static void reply(struct sg_http_req *req, int code, const char *reason, const char *ctype,
                  struct sg_buf *body)
{
    if (ctype)
        sg_http_add_header(req, "Content-Type", ctype);
    sg_http_add_header(req, "Cache-Control", "no-store");
    sg_http_reply(req, code, reason, body ? body->data : NULL, body ? body->len : 0);
}

static void reply_json(struct sg_http_req *req, int code, const char *reason, json_t *doc)
{
    struct sg_buf b;
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    sg_buf_init(&b, 0);
    sg_buf_adds(&b, text ? text : "{}");
    sg_buf_addc(&b, '\n');
    free(text);
    reply(req, code, reason, "application/json", &b);
    sg_buf_release(&b);
}

static void reply_error(struct sg_http_req *req, int code, const char *reason,
                        const char *msg)
{
    reply_json(req, code, reason, json_pack("{s:s}", "error", msg));
}

/* ---- /metrics ---- */

/* One (site, destination) summed over the workers (and a reload's retired forwarders). */
struct series {
    char *site, *dest; /* owned copies */
    uint64_t queued, paused, retried, auth_pauses;
    uint64_t bucket[SG_DURATION_BUCKETS], count, sum_us;
};

/* One (site, destination, status, reason) of scrubgate_events_total. */
struct outcome_series {
    size_t series; /* index into collect.v */
    char status[16], reason[SG_OUTCOME_REASON_MAX];
    uint64_t n;
};

struct collect {
    struct series *v;
    size_t n, cap;
    struct outcome_series *o;
    size_t no, capo;
};

static size_t series_of(struct collect *c, const char *site, const char *dest)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].site, site) && !strcmp(c->v[i].dest, dest))
            return i;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = sg_xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n] = (struct series){.site = sg_xstrdup(site), .dest = sg_xstrdup(dest)};
    return c->n++;
}

static void add_outcome(struct collect *c, size_t s, const struct sg_outcome *o)
{
    uint64_t n = atomic_load_explicit(&o->n, memory_order_relaxed);
    for (size_t i = 0; i < c->no; i++) {
        struct outcome_series *x = &c->o[i];
        if (x->series == s && !strcmp(x->status, o->status) && !strcmp(x->reason, o->reason)) {
            x->n += n;
            return;
        }
    }
    if (c->no == c->capo) {
        c->capo = c->capo ? c->capo * 2 : 32;
        c->o = sg_xrealloc(c->o, c->capo * sizeof(*c->o));
    }
    struct outcome_series *x = &c->o[c->no++];
    x->series = s;
    x->n = n;
    snprintf(x->status, sizeof(x->status), "%s", o->status);
    snprintf(x->reason, sizeof(x->reason), "%s", o->reason);
}

static void collect_cb(struct sg_forwarder *fw, void *arg)
{
    struct collect *c = arg;
    size_t i = series_of(c, sg_forwarder_site(fw)->id, sg_forwarder_dest(fw)->id);
    struct series *s = &c->v[i];
    const struct sg_forward_stats *st = sg_forwarder_stats(fw);
    s->queued += st->queued;
    s->paused += st->paused ? 1u : 0u;
    s->retried += st->retried;
    s->auth_pauses += st->auth_pauses;
    for (size_t b = 0; b < SG_DURATION_BUCKETS; b++)
        s->bucket[b] += st->duration.bucket[b];
    s->count += st->duration.count;
    s->sum_us += st->duration.sum_us;
    size_t n;
    const struct sg_outcome *o = sg_outcomes_get(&st->outcomes, &n);
    for (size_t k = 0; k < n; k++)
        add_outcome(c, i, &o[k]);
}

static void family(struct sg_buf *b, const char *name, const char *type, const char *help)
{
    sg_buf_printf(b, "# HELP scrubgate_%s %s\n# TYPE scrubgate_%s %s\n", name, help, name, type);
}

/* name{site="..",destination=".." (no closing brace: the caller may add labels) */
static void site_dest(struct sg_buf *b, const char *name, const struct series *s)
{
    sg_buf_printf(b, "scrubgate_%s{site=", name);
    sg_metrics_label(b, s->site);
    sg_buf_adds(b, ",destination=");
    sg_metrics_label(b, s->dest);
}

static void reply_cb(const char *site, int code, uint64_t n, void *arg)
{
    struct sg_buf *b = arg;
    sg_buf_adds(b, "scrubgate_ingest_requests_total{site=");
    sg_metrics_label(b, site);
    sg_buf_printf(b, ",code=\"%d\"} %llu\n", code, (unsigned long long)n);
}

static void per_series(struct sg_buf *b, const struct collect *c, const char *name,
                       size_t offset)
{
    for (size_t i = 0; i < c->n; i++) {
        site_dest(b, name, &c->v[i]);
        sg_buf_printf(b, "} %llu\n",
                      (unsigned long long)*(const uint64_t *)((const char *)&c->v[i] + offset));
    }
}

static void metrics(struct sg_admin *a, struct sg_buf *b)
{
    struct collect c = {0};
    for (int i = 0; i < a->n_workers; i++)
        sg_worker_each_forwarder(a->workers[i], collect_cb, &c);

    family(b, "build_info", "gauge", "Always 1; the version label is scrubgate's version.");
    sg_buf_adds(b, "scrubgate_build_info{version=");
    sg_metrics_label(b, SG_VERSION);
    sg_buf_adds(b, "} 1\n");

    family(b, "ingest_requests_total", "counter",
           "Replies of the ingest listener by site and HTTP status code (site \"\" when no "
           "site was resolved).");
    sg_metrics_each_ingest_reply(reply_cb, b);

    family(b, "events_total", "counter",
           "Event outcomes per destination, as in the sync log: status accepted, "
           "partial_failure, failed or skipped, and its reason.");
    for (size_t i = 0; i < c.no; i++) {
        site_dest(b, "events_total", &c.v[c.o[i].series]);
        sg_buf_adds(b, ",status=");
        sg_metrics_label(b, c.o[i].status);
        sg_buf_adds(b, ",reason=");
        sg_metrics_label(b, c.o[i].reason);
        sg_buf_printf(b, "} %llu\n", (unsigned long long)c.o[i].n);
    }

    /* The families with one value per (site, destination). */
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } per_dest[] = {
        {"queue_events", "gauge",
         "Events held for a destination: waiting, retrying (paused included) or in flight.",
         offsetof(struct series, queued)},
        {"destination_paused", "gauge",
         "1 while a token error has paused the destination (workers paused, summed).",
         offsetof(struct series, paused)},
        {"retries_total", "counter", "Events rescheduled after a throttled or failed request.",
         offsetof(struct series, retried)},
        {"auth_pauses_total", "counter",
         "Times a destination was paused by a token error (not its refused probes).",
         offsetof(struct series, auth_pauses)},
    };
    for (size_t k = 0; k < SG_ARRAY_SIZE(per_dest); k++) {
        family(b, per_dest[k].name, per_dest[k].type, per_dest[k].help);
        per_series(b, &c, per_dest[k].name, per_dest[k].off);
    }

    family(b, "upstream_request_duration_seconds", "histogram",
           "Duration of requests to a destination, replies and failures alike.");
    for (size_t i = 0; i < c.n; i++) {
        const struct series *s = &c.v[i];
        uint64_t cum = 0;
        for (size_t k = 0; k < SG_DURATION_BUCKETS; k++) {
            cum += s->bucket[k];
            site_dest(b, "upstream_request_duration_seconds_bucket", s);
            sg_buf_printf(b, ",le=\"%g\"} %llu\n", sg_duration_bounds[k],
                          (unsigned long long)cum);
        }
        site_dest(b, "upstream_request_duration_seconds_bucket", s);
        sg_buf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)s->count);
        site_dest(b, "upstream_request_duration_seconds_sum", s);
        sg_buf_printf(b, "} %.6f\n", (double)s->sum_us / 1e6);
        site_dest(b, "upstream_request_duration_seconds_count", s);
        sg_buf_printf(b, "} %llu\n", (unsigned long long)s->count);
    }

    family(b, "spool_bytes", "gauge", "Bytes of the on-disk spool (all workers).");
    sg_buf_printf(b, "scrubgate_spool_bytes %llu\n",
                  (unsigned long long)(a->stores && a->stores->spool
                                           ? sg_spool_shared_bytes(a->stores->spool)
                                           : 0));
    family(b, "dead_letter_events", "gauge",
           "Events in the dead-letter file (its lines at start plus those written since).");
    sg_buf_printf(b, "scrubgate_dead_letter_events %llu\n",
                  (unsigned long long)(a->stores && a->stores->dead
                                           ? sg_deadletter_events(a->stores->dead)
                                           : 0));
    for (size_t i = 0; i < c.n; i++) {
        free(c.v[i].site);
        free(c.v[i].dest);
    }
    free(c.v);
    free(c.o);
}

/* ---- /healthz ---- */

/* Add reason to the array unless it is there already (one per destination, not per worker). */
static void add_reason(json_t *reasons, const char *reason)
{
    size_t i;
    json_t *v;
    json_array_foreach(reasons, i, v) {
        if (!strcmp(json_string_value(v), reason))
            return;
    }
    json_array_append_new(reasons, json_string(reason));
}

static void paused_cb(struct sg_forwarder *fw, void *arg)
{
    if (!sg_forwarder_stats(fw)->paused)
        return;
    char *reason = sg_xasprintf("paused:%s", sg_forwarder_dest(fw)->id);
    add_reason(arg, reason);
    free(reason);
}

/*
 * 200 {"status":"ok"} only when every worker accepts events and no
 * destination is paused by a token error (retired ones included: their
 * events wait too); otherwise 503 {"status":"degraded","reasons":[...]}.
 */
static void healthz(struct sg_admin *a, struct sg_http_req *req)
{
    json_t *reasons = json_array();
    for (int i = 0; i < a->n_workers; i++) {
        struct sg_worker *w = a->workers[i];
        if (sg_worker_accepting(w))
            continue;
        /* Name the cause when it is known; sg_worker_accepting() may have others. */
        const char *why = sg_worker_failing(w);
        if (!why)
            why = "not_accepting";
        char *reason = sg_xasprintf("%s:worker%d", why, sg_worker_index(w));
        add_reason(reasons, reason);
        free(reason);
    }
    for (int i = 0; i < a->n_workers; i++)
        sg_worker_each_forwarder(a->workers[i], paused_cb, reasons);
    bool ok = json_array_size(reasons) == 0;
    json_t *doc = ok ? json_pack("{s:s}", "status", "ok")
                     : json_pack("{s:s,s:O}", "status", "degraded", "reasons", reasons);
    json_decref(reasons);
    reply_json(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", doc);
}

/*
 * The request's query into params; false after answering 400 for a malformed query or one
 * with an encoded NUL (%00), which would cut a value short ("site=shop%00x" read as "shop").
 */
static bool parse_query(struct sg_http_req *req, struct evkeyvalq *params)
{
    const char *query = sg_http_query(req);
    TAILQ_INIT(params);
    if ((query && strcasestr(query, "%00")) ||
        evhttp_parse_query_str(query ? query : "", params) < 0) {
        evhttp_clear_headers(params);
        reply_error(req, 400, "Bad Request", "malformed query string");
        return false;
    }
    return true;
}

/* An unsigned decimal written with digits only (no sign, no spaces), into *out. */
static bool decimal(const char *v, long long max, long long *out)
{
    long long n = 0;
    if (!*v)
        return false;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (max - (*v - '0')) / 10)
            return false;
        n = n * 10 + (*v - '0');
    }
    *out = n;
    return true;
}

/* ---- /admin/sync-log ---- */

static const char *const statuses[] = {"accepted", "partial_failure", "failed", "skipped"};

/* Fill q from the query string; NULL, or a one-line reason for a 400 (static or in err). */
static const char *sync_log_params(const struct evkeyvalq *params, struct sg_synclog_query *q,
                                   char *err, size_t errlen)
{
    static const char *const known[] = {"site", "status", "event_id", "since", "limit"};
    const struct evkeyval *kv;
    int seen_limit = 0;
    *q = (struct sg_synclog_query){.limit = 100};
    TAILQ_FOREACH(kv, params, next) {
        size_t k = 0;
        while (k < SG_ARRAY_SIZE(known) && strcmp(known[k], kv->key) != 0)
            k++;
        if (k == SG_ARRAY_SIZE(known)) {
            snprintf(err, errlen, "unknown parameter (known: site, status, event_id, since, "
                                  "limit)");
            return err;
        }
        const char **slot = k == 0 ? &q->site : k == 1 ? &q->status : k == 2 ? &q->event_id
                                                                             : NULL;
        if (slot) {
            if (*slot)
                return "a parameter is given twice";
            *slot = kv->value;
        } else if (k == 3) {
            if (q->has_since)
                return "a parameter is given twice";
            long long v;
            if (decimal(kv->value, INT64_MAX, &v))
                q->since = v;
            else if (sg_parse_rfc3339(kv->value, &q->since) < 0)
                return "since: Unix seconds or an RFC 3339 time";
            q->has_since = true;
        } else {
            long long v;
            if (seen_limit++)
                return "a parameter is given twice";
            if (!decimal(kv->value, SG_SYNCLOG_QUERY_MAX, &v) || v < 1)
                return "limit: an integer from 1 to 1000";
            q->limit = (size_t)v;
        }
    }
    if (q->status) {
        size_t k = 0;
        while (k < SG_ARRAY_SIZE(statuses) && strcmp(statuses[k], q->status) != 0)
            k++;
        if (k == SG_ARRAY_SIZE(statuses))
            return "status: accepted, partial_failure, failed or skipped";
    }
    return NULL;
}

/* ---- requests answered later ---- */

static struct pending *pending_new(struct sg_admin *a, struct sg_http_req *req)
{
    struct pending *p = sg_xcalloc(1, sizeof(*p));
    p->a = a;
    p->req = req;
    p->next = a->pending;
    a->pending = p;
    return p;
}

/* A client that left before its answer: the work runs on and is thrown away. */
static void conn_closed_cb(struct sg_http_req *req, void *arg)
{
    struct sg_admin *a = arg;
    for (struct pending *p = a->pending; p; p = p->next)
        if (p->req == req)
            p->req = NULL;
}

static void pending_free(struct pending *p)
{
    struct sg_admin *a = p->a;
    for (struct pending **pp = &a->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (p->req)
        sg_http_on_close(p->req, NULL, NULL);
    if (p->query) {
        a->queries--;
        if (p->done_ev)
            event_free(p->done_ev);
        free(p->site);
        free(p->status);
        free(p->event_id);
        free(p->path);
        sg_buf_release(&p->out);
    }
    free(p);
}

/* ---- /admin/sync-log ---- */

static void *query_thread(void *arg)
{
    struct pending *p = arg;
    p->rc = sg_synclog_query(p->path, &p->q, &p->out);
    p->err = errno;
    event_active(p->done_ev, EV_READ, 0); /* thread-safe: evthread_use_pthreads */
    return NULL;
}

static void query_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    struct sg_http_req *req = p->req;
    pthread_join(p->thread, NULL);
    p->req = NULL;
    if (req && p->rc < 0) {
        sg_warn("admin: %s: cannot read: %s", p->path, strerror(p->err));
        reply_error(req, 500, "Internal Server Error", "cannot read the sync log");
    } else if (req) {
        sg_buf_addc(&p->out, '\n');
        reply(req, 200, "OK", "application/json", &p->out);
    }
    pending_free(p);
}

static char *dup_or_null(const char *s)
{
    return s ? sg_xstrdup(s) : NULL;
}

static void sync_log(struct sg_admin *a, struct sg_http_req *req)
{
    struct evkeyvalq params;
    struct sg_synclog_query q;
    char err[128];
    if (!parse_query(req, &params))
        return;
    const char *why = sync_log_params(&params, &q, err, sizeof(err));
    if (why) {
        reply_error(req, 400, "Bad Request", why);
        evhttp_clear_headers(&params);
        return;
    }
    if (a->queries >= MAX_QUERIES) {
        sg_http_add_header(req, "Retry-After", "1");
        reply_error(req, 503, "Service Unavailable", "too many sync-log queries, retry later");
        evhttp_clear_headers(&params);
        return;
    }
    struct pending *p = pending_new(a, req);
    p->query = true;
    a->queries++;
    p->q = q;
    p->q.site = p->site = dup_or_null(q.site);
    p->q.status = p->status = dup_or_null(q.status);
    p->q.event_id = p->event_id = dup_or_null(q.event_id);
    evhttp_clear_headers(&params); /* q's strings are gone from here on */
    p->path = sg_xasprintf("%s/sync-log.jsonl", a->cfg->state_dir);
    sg_buf_init(&p->out, 0);
    p->done_ev = event_new(sg_http_base(req), -1, 0, query_done_cb, p);
    if (!p->done_ev || pthread_create(&p->thread, NULL, query_thread, p) != 0) {
        p->req = NULL;
        pending_free(p);
        reply_error(req, 503, "Service Unavailable", "cannot start the query, retry later");
        return;
    }
    sg_http_on_close(req, conn_closed_cb, a);
}

/* ---- /admin/test-connection ---- */

static void test_done(void *arg, const struct sg_testconn_result *r, size_t n)
{
    struct pending *p = arg;
    if (p->req) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, sg_testconn_result_json(&r[i]));
        bool ok = n && sg_testconn_all_ok(r, n);
        struct sg_http_req *req = p->req;
        p->req = NULL;
        reply_json(req, 200, "OK", json_pack("{s:b,s:o}", "ok", ok, "destinations", arr));
    }
    pending_free(p);
}

static void test_connection(struct sg_admin *a, struct sg_http_req *req)
{
    struct evkeyvalq params;
    if (!parse_query(req, &params))
        return;
    const struct evkeyval *kv;
    const char *id = NULL, *why = NULL;
    TAILQ_FOREACH(kv, &params, next) {
        if (strcmp(kv->key, "site") != 0)
            why = "unknown parameter (known: site)";
        else if (id)
            why = "a parameter is given twice";
        else
            id = kv->value;
    }
    if (!why && !id)
        why = "site: required";
    /* The id itself, not a pixel code (sg_config_site_by_id takes either). */
    const struct sg_site *site = why ? NULL : sg_config_site_by_id(a->cfg, id);
    if (site && strcmp(site->id, id) != 0)
        site = NULL;
    evhttp_clear_headers(&params); /* id is gone from here on */
    if (why || !site) {
        reply_error(req, why ? 400 : 404, why ? "Bad Request" : "Not Found",
                    why ? why : "unknown site");
        return;
    }
    struct pending *p = pending_new(a, req);
    sg_http_on_close(req, conn_closed_cb, a);
    struct sg_testconn *t = sg_testconn_start(a->client, site, &a->cfg->limits, test_done, p);
    if (t)
        p->t = t; /* else test_done has run and freed p */
}

/* ---- routing ---- */

/* The admin token, if one is configured and the request carries it. */
static bool authorized(const struct sg_admin *a, struct sg_http_req *req)
{
    const char *token = a->cfg->admin_token; /* NULL when a reload removed it */
    const char *auth = sg_http_header(req, "Authorization");
    return token && auth && sg_strncaseeq(auth, "Bearer ", 7) &&
           sg_consttime_streq(auth + 7, token);
}

enum route { R_HEALTHZ, R_METRICS, R_SYNC_LOG, R_TEST_CONNECTION };

static const struct {
    const char *path;
    enum sg_http_method method;
    const char *allow;
} routes[] = {
    [R_HEALTHZ] = {"/healthz", SG_HTTP_GET, "GET"},
    [R_METRICS] = {"/metrics", SG_HTTP_GET, "GET"},
    [R_SYNC_LOG] = {"/admin/sync-log", SG_HTTP_GET, "GET"},
    [R_TEST_CONNECTION] = {"/admin/test-connection", SG_HTTP_POST, "POST"},
};

static void admin_cb(struct sg_http_req *req, void *arg)
{
    struct sg_admin *a = arg;
    const char *path = sg_http_path(req);
    size_t r = 0;
    while (path && r < SG_ARRAY_SIZE(routes) && strcmp(routes[r].path, path) != 0)
        r++;
    if (r == SG_ARRAY_SIZE(routes)) {
        reply_error(req, 404, "Not Found", "unknown path");
        return;
    }
    if (sg_http_method(req) != routes[r].method) {
        sg_http_add_header(req, "Allow", routes[r].allow);
        reply_error(req, 405, "Method Not Allowed", "method not allowed");
        return;
    }
    if (r == R_HEALTHZ) {
        healthz(a, req);
        return;
    }
    if (!authorized(a, req)) {
        sg_http_add_header(req, "WWW-Authenticate", "Bearer realm=\"scrubgate admin\"");
        reply_error(req, 401, "Unauthorized",
                    a->cfg->admin_token ? "admin token required"
                                        : "no admin token is configured");
        return;
    }
    switch ((enum route)r) {
    case R_METRICS: {
        struct sg_buf b;
        sg_buf_init(&b, 0);
        metrics(a, &b);
        reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &b);
        sg_buf_release(&b);
        return;
    }
    case R_SYNC_LOG:
        sync_log(a, req);
        return;
    case R_TEST_CONNECTION:
        test_connection(a, req);
        return;
    case R_HEALTHZ:
        return;
    }
}

int sg_admin_new(struct event_base *base, const struct sg_config *cfg, struct sg_worker **workers,
                 int n, const struct sg_admin_stores *stores, struct sg_admin **out)
{
    char host[256];
    int port;
    *out = NULL;
    if (!cfg->admin_listen)
        return 0;
    if (!cfg->admin_token)
        sg_warn("admin_listen is set but no admin token: only /healthz answers; /metrics and "
                "the other admin endpoints answer 401 until a reload configures one");
    if (sg_split_hostport(cfg->admin_listen, host, sizeof(host), &port) < 0)
        return sg_error("admin_listen: bad address");
    struct sg_admin *a = sg_xcalloc(1, sizeof(*a));
    a->cfg = cfg;
    a->workers = workers;
    a->n_workers = n;
    a->stores = stores;
    a->client = sg_http_new(base, cfg->limits.max_response_bytes);
    int fd = a->client ? sg_conn_listen(host, &port, true, false) : -1;
    a->conns = fd >= 0 ? sg_conns_new(base, fd, &cfg->limits, SG_CONN_ADMIN, admin_cb, a) : NULL;
    if (!a->conns) {
        sg_admin_free(a);
        return sg_error("admin_listen %s: cannot bind", cfg->admin_listen);
    }
    sg_info("admin API on %s", cfg->admin_listen);
    *out = a;
    return 0;
}

void sg_admin_set_config(struct sg_admin *a, const struct sg_config *cfg)
{
    a->cfg = cfg;
    sg_conns_set_limits(a->conns, &cfg->limits);
}

void sg_admin_free(struct sg_admin *a)
{
    if (!a)
        return;
    /* Work in flight ends without a reply: queries are waited for (a read of the log, bounded
     * by its size), tests forgotten and their transfers aborted below. */
    while (a->pending) {
        struct pending *p = a->pending;
        if (p->query)
            pthread_join(p->thread, NULL);
        else
            sg_testconn_forget(p->t);
        pending_free(p);
    }
    sg_conns_free(a->conns);
    sg_http_free(a->client);
    free(a);
}
