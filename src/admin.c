/*
 * admin.c - the admin listener: /healthz and bearer-protected /metrics
 * (docs/API.md, "Admin API"). Runs on one worker's loop; reads every worker's
 * counters, which are atomics, through sg_worker_each_forwarder().
 *
 * Another worker may reload and free the configuration its forwarders
 * pointed at as soon as its table lock is released, so every name read
 * under that lock is copied. The admin's own configuration is switched on
 * its loop (sg_admin_set_config) and read only there.
 */
#include "scrubgate/common.h"
#include "scrubgate/admin.h"
#include "scrubgate/conn.h"
#include "scrubgate/forward.h"
#include "scrubgate/log.h"
#include "scrubgate/spool.h"
#include "scrubgate/worker.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

struct sg_admin {
    struct evhttp *http;
    struct sg_conns *conns;      /* owned: the same limits as ingest, its own budget */
    const struct sg_config *cfg; /* borrowed */
    struct sg_worker **workers;  /* borrowed */
    int n_workers;
};

/* One (site, destination) line of a metric family, summed over the workers. */
struct series {
    char *site, *dest; /* owned copies */
    uint64_t v[8];
};

struct collect {
    struct series *v;
    size_t n, cap;
};

static void collect_cb(struct sg_forwarder *fw, void *arg)
{
    struct collect *c = arg;
    const char *site = sg_forwarder_site(fw)->id, *dest = sg_forwarder_dest(fw)->id;
    struct series *s = NULL;
    for (size_t i = 0; i < c->n && !s; i++)
        if (!strcmp(c->v[i].site, site) && !strcmp(c->v[i].dest, dest))
            s = &c->v[i];
    if (!s) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 16;
            c->v = sg_xrealloc(c->v, c->cap * sizeof(*c->v));
        }
        s = &c->v[c->n++];
        *s = (struct series){.site = sg_xstrdup(site), .dest = sg_xstrdup(dest)};
    }
    const struct sg_forward_stats *st = sg_forwarder_stats(fw);
    uint64_t vals[] = {st->accepted, st->partial,       st->failed,
                       st->skipped,  st->retried,       st->dead_lettered,
                       st->auth_pauses, st->paused ? 1u : 0u};
    for (size_t m = 0; m < SG_ARRAY_SIZE(vals); m++)
        s->v[m] += vals[m];
}

static void metrics(struct sg_admin *a, struct evbuffer *b)
{
    static const char *const names[] = {"events_accepted_total", "events_partial_total",
                                        "events_failed_total",   "events_skipped_total",
                                        "retries_total",         "dead_letter_total",
                                        "auth_pauses_total",     "destination_paused"};
    struct collect c = {0};
    for (int i = 0; i < a->n_workers; i++)
        sg_worker_each_forwarder(a->workers[i], collect_cb, &c);
    for (size_t m = 0; m < SG_ARRAY_SIZE(names); m++) {
        evbuffer_add_printf(b, "# TYPE scrubgate_%s %s\n", names[m],
                            m == 7 ? "gauge" : "counter");
        for (size_t i = 0; i < c.n; i++)
            evbuffer_add_printf(b, "scrubgate_%s{site=\"%s\",destination=\"%s\"} %llu\n",
                                names[m], c.v[i].site, c.v[i].dest,
                                (unsigned long long)c.v[i].v[m]);
    }
    for (size_t i = 0; i < c.n; i++) {
        free(c.v[i].site);
        free(c.v[i].dest);
    }
    free(c.v);
}

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
static void healthz(struct sg_admin *a, struct evhttp_request *req, struct evbuffer *b)
{
    json_t *reasons = json_array();
    for (int i = 0; i < a->n_workers; i++) {
        struct sg_worker *w = a->workers[i];
        if (sg_worker_accepting(w))
            continue;
        /* Name the cause when it is known; sg_worker_accepting() may have others. */
        const char *why = sg_spool_failing(sg_worker_spool(w)) ? "spool_broken" : "not_accepting";
        char *reason = sg_xasprintf("%s:worker%d", why, sg_worker_index(w));
        add_reason(reasons, reason);
        free(reason);
    }
    for (int i = 0; i < a->n_workers; i++)
        sg_worker_each_forwarder(a->workers[i], paused_cb, reasons);
    bool ok = json_array_size(reasons) == 0;
    json_t *doc = ok ? json_pack("{s:s}", "status", "ok")
                     : json_pack("{s:s,s:O}", "status", "degraded", "reasons", reasons);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!text) {
        evhttp_send_error(req, 500, NULL);
        goto out;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    evbuffer_add_printf(b, "%s\n", text);
    evhttp_send_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", b);
out:
    free(text);
    json_decref(doc);
    json_decref(reasons);
}

/* The admin token, if one is configured and the request carries it. */
static bool authorized(const struct sg_admin *a, struct evhttp_request *req)
{
    const char *token = a->cfg->admin_token; /* NULL when a reload removed it */
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    return token && auth && sg_strncaseeq(auth, "Bearer ", 7) &&
           sg_consttime_streq(auth + 7, token);
}

static void admin_cb(struct evhttp_request *req, void *arg)
{
    struct sg_admin *a = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    if (!b || !path) {
        evhttp_send_error(req, 500, NULL);
        if (b)
            evbuffer_free(b);
        return;
    }
    if (!strcmp(path, "/healthz")) {
        healthz(a, req, b);
        evbuffer_free(b);
        return;
    }
    if (!authorized(a, req)) {
        evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"scrubgate admin\"");
        evhttp_send_reply(req, 401, "Unauthorized", NULL);
        evbuffer_free(b);
        return;
    }
    if (strcmp(path, "/metrics") != 0) {
        evhttp_send_reply(req, 404, "Not Found", NULL);
        evbuffer_free(b);
        return;
    }
    metrics(a, b);
    evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

int sg_admin_new(struct event_base *base, const struct sg_config *cfg, struct sg_worker **workers,
                 int n, struct sg_admin **out)
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
    a->http = evhttp_new(base);
    struct evhttp_bound_socket *bound =
        a->http ? evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)port) : NULL;
    if (!bound) {
        sg_admin_free(a);
        return sg_error("admin_listen %s: cannot bind", cfg->admin_listen);
    }
    evhttp_set_gencb(a->http, admin_cb, a);
    a->conns = sg_conns_new(a->http, evhttp_bound_socket_get_listener(bound), &cfg->limits,
                            SG_CONN_ADMIN);
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
    if (a->http)
        evhttp_free(a->http);
    sg_conns_free(a->conns);
    free(a);
}
