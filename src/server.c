/*
 * server.c - worker threads, listening sockets, signals and shutdown.
 *
 * Every worker binds its own listening socket to the same address with
 * SO_REUSEPORT, so the kernel spreads connections over the loops and no lock
 * sits on the accept path. The main thread only waits for signals.
 */
#include "scrubgate/common.h"
#include "scrubgate/deadletter.h"
#include "scrubgate/forward.h"
#include "scrubgate/http_client.h"
#include "scrubgate/log.h"
#include "scrubgate/rules.h"
#include "scrubgate/server.h"
#include "scrubgate/spool.h"
#include "scrubgate/synclog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct sg_forwarder *sg_worker_forwarder(struct sg_worker *w, const struct sg_site *site, size_t d)
{
    size_t s = (size_t)(site - w->cfg->sites);
    return w->fw[w->site_offset[s] + d];
}

/* Bind a listening socket; *port 0 picks one and returns it, for the next workers. */
static int listen_socket(const char *host, int *port)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    int fd = -1, one = 1;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    snprintf(portstr, sizeof(portstr), "%d", *port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return sg_error("listen %s:%d: %s", host, *port, gai_strerror(rc));
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        sg_error("listen %s:%d: %s", host, *port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (*port == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* ---- group commit ---- */

static void send_body(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf) {
        evbuffer_add(buf, body, strlen(body));
        evbuffer_add(buf, "\n", 1);
    }
    evhttp_send_reply(req, code, reason, buf);
    if (buf)
        evbuffer_free(buf);
}

/* Answer the deferred requests whose generation is durable (or fail them all). */
static void answer(struct sg_worker *w, uint64_t durable, bool failed)
{
    for (size_t i = 0; i < w->n_pending;) {
        struct sg_pending_reply *p = &w->pending[i];
        if (!failed && (p->gen == 0 || p->gen > durable)) {
            i++;
            continue;
        }
        if (!failed) {
            send_body(p->req, 202, "Accepted", p->body);
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(p->req), "Retry-After", "1");
            send_body(p->req, 503, "Service Unavailable",
                      "{\"error\":\"spool unavailable, retry later\"}");
        }
        free(p->body);
        w->pending[i] = w->pending[--w->n_pending];
    }
}

static void *syncer_main(void *arg)
{
    struct sg_worker *w = arg;
    struct sg_syncer *s = &w->syncer;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->fd < 0 && !s->quit)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->fd < 0 && s->quit)
            break;
        int fd = s->fd;
        uint64_t gen = s->gen;
        pthread_mutex_unlock(&s->lock);
        int rc = fdatasync(fd);
        int err = errno;
        close(fd);
        pthread_mutex_lock(&s->lock);
        if (rc < 0) {
            sg_error("spool: fdatasync failed: %s; refusing new events", strerror(err));
            s->failed = true;
        }
        s->done_gen = gen;
        s->fd = -1;
        event_active(s->done_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/*
 * Write what the requests of this loop turn buffered, tag their replies
 * with a generation, and start a sync unless one is running (then the next
 * sync covers them). A request is answered only after a sync that began
 * after its records were written.
 */
static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    struct sg_syncer *s = &w->syncer;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    w->commit_armed = false;
    pthread_mutex_lock(&s->lock);
    bool busy = s->busy;
    pthread_mutex_unlock(&s->lock);
    if (busy)
        return; /* done_cb runs this again when the current sync ends */
    if (sg_spool_write(w->spool) < 0) {
        answer(w, 0, true);
        return;
    }
    uint64_t gen = ++w->gen_written;
    for (size_t i = 0; i < w->n_pending; i++)
        if (w->pending[i].gen == 0)
            w->pending[i].gen = gen;
    int sfd = sg_spool_take_sync(w->spool);
    if (sfd < 0) {
        answer(w, gen, false); /* nothing unsynced: already durable */
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->fd = sfd;
    s->gen = gen;
    s->busy = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void sync_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    struct sg_syncer *s = &w->syncer;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    pthread_mutex_lock(&s->lock);
    uint64_t durable = s->done_gen;
    bool failed = s->failed;
    s->busy = false;
    pthread_mutex_unlock(&s->lock);
    if (failed)
        sg_spool_set_broken(w->spool);
    answer(w, durable, failed);
    if (w->n_pending || sg_spool_pending_bytes(w->spool)) {
        w->commit_armed = true;
        event_active(w->commit_ev, EV_READ, 0);
    }
}

/* A client that left before its 202: its events are spooled all the same. */
static void conn_close_cb(struct evhttp_connection *conn, void *arg)
{
    struct sg_worker *w = arg;
    for (size_t i = 0; i < w->n_pending;) {
        if (w->pending[i].conn == conn) {
            free(w->pending[i].body);
            w->pending[i] = w->pending[--w->n_pending];
        } else {
            i++;
        }
    }
}

void sg_worker_defer_reply(struct sg_worker *w, struct evhttp_request *req, char *body)
{
    if (w->n_pending == w->cap_pending) {
        w->cap_pending = w->cap_pending ? w->cap_pending * 2 : 64;
        w->pending = sg_xrealloc(w->pending, w->cap_pending * sizeof(*w->pending));
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(conn, conn_close_cb, w);
    w->pending[w->n_pending++] = (struct sg_pending_reply){req, conn, body, 0};
    if (!w->commit_armed) {
        w->commit_armed = true;
        /* Runs after the callbacks already due in this loop turn: they share the fdatasync. */
        event_active(w->commit_ev, EV_READ, 0);
    }
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    size_t pending = 0;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    for (size_t i = 0; i < w->n_fw; i++)
        pending += sg_forwarder_drain(w->fw[i]);
    for (size_t i = 0; i < w->n_retired; i++)
        pending += sg_forwarder_drain(w->retired[i]);
    if (pending == 0 || sg_now_mono_ms() >= w->drain_deadline) {
        if (pending)
            sg_warn("worker %d: shutdown deadline passed with %zu event(s) undelivered",
                    w->index, pending);
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(w->drain_timer, &tv);
}

/*
 * Runs on the worker's loop: stop accepting, answer new requests on open
 * connections with 503, deliver what is queued. The HTTP server itself is
 * freed only after the loop ends, so replies already written (202s among
 * them) still reach their clients.
 */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    w->stopping = true;
    if (w->admin) {
        evhttp_free(w->admin);
        w->admin = NULL;
    }
    if (w->bound) {
        /* Close the listening socket: new clients are refused rather than left waiting. */
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
        w->listener = NULL;
    }
    w->drain_deadline = sg_now_mono_ms() + (uint64_t)w->cfg->limits.shutdown_timeout_ms;
    drain_cb(-1, 0, w);
}

/*
 * Out of file descriptors (max_connections reached): stop accepting for a
 * moment instead of letting the readable listener spin the loop, as nginx
 * does. Connections wait in the kernel's backlog meanwhile.
 */
static _Thread_local struct sg_worker *tl_worker; /* the worker this thread runs */

/* ---- admin listener: /healthz, /metrics (DESIGN.md section 8) ---- */

static struct sg_workers all_workers;
/* Held while a reload swaps a worker's forwarder table and while /metrics reads the tables. */
static pthread_mutex_t fw_tables = PTHREAD_MUTEX_INITIALIZER;

static void metric(struct evbuffer *b, const char *name, const char *site, const char *dest,
                   uint64_t v)
{
    evbuffer_add_printf(b, "scrubgate_%s{site=\"%s\",destination=\"%s\"} %llu\n", name, site, dest,
                        (unsigned long long)v);
}

static void admin_cb(struct evhttp_request *req, void *arg)
{
    struct sg_worker *w = arg;
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
        evhttp_add_header(out, "Content-Type", "application/json");
        evbuffer_add_printf(b, "{\"status\":\"%s\"}\n",
                            sg_spool_broken(w->spool) ? "spool_broken" : "ok");
        evhttp_send_reply(req, sg_spool_broken(w->spool) ? 503 : 200, "OK", b);
        evbuffer_free(b);
        return;
    }
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!auth || !sg_strncaseeq(auth, "Bearer ", 7) ||
        !sg_consttime_streq(auth + 7, w->cfg->admin_token)) {
        evhttp_send_reply(req, 401, "Unauthorized", NULL);
        evbuffer_free(b);
        return;
    }
    if (strcmp(path, "/metrics") != 0) {
        evhttp_send_reply(req, 404, "Not Found", NULL);
        evbuffer_free(b);
        return;
    }
    static const char *const names[] = {"events_accepted_total", "events_partial_total",
                                        "events_failed_total",   "events_skipped_total",
                                        "retries_total",         "dead_letter_total",
                                        "auth_pauses_total",     "destination_paused"};
    pthread_mutex_lock(&fw_tables);
    for (size_t m = 0; m < SG_ARRAY_SIZE(names); m++) {
        evbuffer_add_printf(b, "# TYPE scrubgate_%s %s\n", names[m],
                            m == 7 ? "gauge" : "counter");
        /* One line per site and destination, summed over the workers. */
        for (size_t f = 0; f < w->n_fw; f++) {
            const struct sg_site *site = sg_forwarder_site(w->fw[f]);
            const struct sg_dest_conf *dest = sg_forwarder_dest(w->fw[f]);
            uint64_t v = 0;
            for (int i = 0; i < all_workers.n; i++) {
                struct sg_worker *o = &all_workers.v[i];
                for (size_t g = 0; g < o->n_fw; g++) {
                    if (strcmp(sg_forwarder_site(o->fw[g])->id, site->id) ||
                        strcmp(sg_forwarder_dest(o->fw[g])->id, dest->id))
                        continue;
                    const struct sg_forward_stats *st = sg_forwarder_stats(o->fw[g]);
                    uint64_t vals[] = {st->accepted, st->partial,       st->failed,
                                       st->skipped,  st->retried,       st->dead_lettered,
                                       st->auth_pauses, st->paused ? 1u : 0u};
                    v += vals[m];
                }
            }
            metric(b, names[m], site->id, dest->id, v);
        }
    }
    pthread_mutex_unlock(&fw_tables);
    evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static int admin_start(struct sg_worker *w)
{
    char host[256];
    int port;
    const struct sg_config *cfg = w->cfg;
    if (!cfg->admin_listen)
        return 0;
    if (!cfg->admin_token) {
        sg_warn("admin_listen is set but no admin token: the admin API is off");
        return 0;
    }
    if (sg_split_hostport(cfg->admin_listen, host, sizeof(host), &port) < 0)
        return sg_error("admin_listen: bad address");
    w->admin = evhttp_new(w->base);
    if (!w->admin || evhttp_bind_socket(w->admin, host, (ev_uint16_t)port) < 0)
        return sg_error("admin_listen %s: cannot bind", cfg->admin_listen);
    evhttp_set_gencb(w->admin, admin_cb, w);
    evhttp_set_timeout(w->admin, 10);
    sg_info("admin API on %s", cfg->admin_listen);
    return 0;
}

static void accept_error_cb(struct evconnlistener *listener, void *arg)
{
    struct sg_worker *w = tl_worker; /* arg is evhttp's own pointer, not ours */
    int err = EVUTIL_SOCKET_ERROR();
    SG_UNUSED(arg);
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        sg_warn("worker %d: accept: %s", w->index, evutil_socket_error_to_string(err));
        return;
    }
    evconnlistener_disable(listener);
    struct timeval tv = {0, 100000};
    evtimer_add(w->accept_resume, &tv);
    uint64_t now = sg_now_mono_ms();
    if (now - w->last_accept_warning >= 10000) {
        w->last_accept_warning = now;
        sg_warn("worker %d: connection limit reached (max_connections %zu): pausing accept",
                w->index, w->cfg->limits.max_connections);
    }
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    if (!w->stopping && w->listener)
        evconnlistener_enable(w->listener);
}

/*
 * The connection limit is the process's file descriptor limit: every client
 * connection is one descriptor, and a reserve covers upstream connections,
 * listeners and files. Lowering the soft limit is always allowed.
 */
#define FD_RESERVE 64

static void apply_connection_limit(const struct sg_limits *lim)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)(lim->max_connections + FD_RESERVE);
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) {
        sg_warn("max_connections %zu is above the hard descriptor limit; using %llu",
                lim->max_connections, (unsigned long long)(rl.rlim_max - FD_RESERVE));
        want = rl.rlim_max;
    }
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        sg_warn("cannot set the descriptor limit: %s", strerror(errno));
}

/*
 * SIGHUP, on the worker's loop: adopt the new configuration. Forwarders whose
 * site and destination ids are still configured keep their queues and are
 * pointed at the new structures; new destinations get new forwarders;
 * removed ones are retired (they deliver what they hold, take nothing new).
 * Connections are untouched. The old configuration stays alive (retired
 * forwarders and in-flight work may still read it) until the process exits.
 */
static void reload_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    pthread_mutex_lock(&w->reload_lock);
    const struct sg_config *cfg = w->reload_cfg;
    w->reload_cfg = NULL;
    pthread_mutex_unlock(&w->reload_lock);
    if (!cfg)
        return;
    const struct sg_limits *lim = &cfg->limits;
    pthread_mutex_lock(&fw_tables);
    size_t n_fw = 0;
    size_t *offset = sg_xcalloc(cfg->n_sites ? cfg->n_sites : 1, sizeof(size_t));
    for (size_t s = 0; s < cfg->n_sites; s++) {
        offset[s] = n_fw;
        n_fw += cfg->sites[s].n_dests;
    }
    struct sg_forwarder **fws = sg_xcalloc(n_fw ? n_fw : 1, sizeof(*fws));
    bool *kept = sg_xcalloc(w->n_fw ? w->n_fw : 1, sizeof(bool));
    for (size_t s = 0; s < cfg->n_sites; s++)
        for (size_t d = 0; d < cfg->sites[s].n_dests; d++) {
            const struct sg_site *site = &cfg->sites[s];
            const struct sg_dest_conf *dest = &site->dests[d];
            for (size_t i = 0; i < w->n_fw && !fws[offset[s] + d]; i++)
                if (!kept[i] && !strcmp(sg_forwarder_site(w->fw[i])->id, site->id) &&
                    !strcmp(sg_forwarder_dest(w->fw[i])->id, dest->id)) {
                    kept[i] = true;
                    sg_forwarder_rebind(w->fw[i], site, dest, lim);
                    fws[offset[s] + d] = w->fw[i];
                }
            if (!fws[offset[s] + d]) {
                struct sg_forwarder_deps deps = {w->base, w->client, w->log, w->spool, w->dead};
                fws[offset[s] + d] = sg_forwarder_new(&deps, site, dest, lim);
            }
        }
    for (size_t i = 0; i < w->n_fw; i++)
        if (!kept[i]) {
            w->retired = sg_xrealloc(w->retired, (w->n_retired + 1) * sizeof(*w->retired));
            w->retired[w->n_retired++] = w->fw[i];
        }
    free(kept);
    free(w->fw);
    free(w->site_offset);
    w->fw = fws;
    w->n_fw = n_fw;
    w->site_offset = offset;
    pthread_mutex_unlock(&fw_tables);
    if (w->http) {
        evhttp_set_max_body_size(w->http, (ev_ssize_t)lim->max_body_bytes);
        evhttp_set_max_headers_size(w->http, (ev_ssize_t)lim->max_header_bytes);
        struct timeval tv = {lim->request_timeout_ms / 1000,
                             (lim->request_timeout_ms % 1000) * 1000};
        evhttp_set_timeout_tv(w->http, &tv);
    }
    w->cfg = cfg;
}

static void *worker_main(void *arg)
{
    struct sg_worker *w = arg;
    tl_worker = w;
    event_base_dispatch(w->base);
    sg_rules_thread_release();
    sg_synclog_thread_release();
    sg_spool_thread_release();
    return NULL;
}

static void worker_release(struct sg_worker *w)
{
    if (w->admin)
        evhttp_free(w->admin);
    if (w->http)
        evhttp_free(w->http);
    /* The client first: aborted transfers hand their events back before the forwarders go. */
    sg_http_free(w->client);
    for (size_t i = 0; i < w->n_fw; i++)
        sg_forwarder_free(w->fw[i]);
    for (size_t i = 0; i < w->n_retired; i++)
        sg_forwarder_free(w->retired[i]);
    free(w->retired);
    if (w->reload_ev) {
        event_free(w->reload_ev);
        pthread_mutex_destroy(&w->reload_lock);
    }
    if (w->syncer_started) {
        pthread_mutex_lock(&w->syncer.lock);
        w->syncer.quit = true;
        pthread_cond_signal(&w->syncer.cond);
        pthread_mutex_unlock(&w->syncer.lock);
        pthread_join(w->syncer.thread, NULL);
        pthread_mutex_destroy(&w->syncer.lock);
        pthread_cond_destroy(&w->syncer.cond);
    }
    if (w->syncer.done_ev)
        event_free(w->syncer.done_ev);
    if (w->spool) {
        sg_spool_commit(w->spool); /* the last acks */
        sg_spool_free(w->spool);
    }
    for (size_t i = 0; i < w->n_pending; i++)
        free(w->pending[i].body);
    free(w->pending);
    if (w->commit_ev)
        event_free(w->commit_ev);
    free(w->fw);
    free(w->site_offset);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->accept_resume)
        event_free(w->accept_resume);
    if (w->base)
        event_base_free(w->base);
}

static int worker_init(struct sg_worker *w, const struct sg_config *cfg, struct sg_synclog *log,
                       struct sg_deadletter *dead, struct sg_spool_shared *spool, int fd)
{
    const struct sg_limits *lim = &cfg->limits;
    w->cfg = cfg;
    w->log = log;
    w->dead = dead;
    w->spool = sg_spool_new(spool, w->index);
    w->base = event_base_new();
    if (!w->base)
        return sg_error("worker %d: event_base_new failed", w->index);
    w->http = evhttp_new(w->base);
    w->client = sg_http_new(w->base, lim->max_response_bytes);
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->drain_timer = evtimer_new(w->base, drain_cb, w);
    w->accept_resume = evtimer_new(w->base, accept_resume_cb, w);
    w->commit_ev = event_new(w->base, -1, 0, commit_cb, w);
    w->syncer.fd = -1;
    w->syncer.done_ev = event_new(w->base, -1, 0, sync_done_cb, w);
    w->reload_ev = event_new(w->base, -1, 0, reload_cb, w);
    pthread_mutex_init(&w->reload_lock, NULL);
    if (!w->http || !w->client || !w->stop_ev || !w->drain_timer || !w->accept_resume ||
        !w->commit_ev || !w->syncer.done_ev || !w->reload_ev)
        return sg_error("worker %d: cannot create the loop's objects", w->index);
    evhttp_set_max_body_size(w->http, (ev_ssize_t)lim->max_body_bytes);
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)lim->max_header_bytes);
    struct timeval tv = {lim->request_timeout_ms / 1000, (lim->request_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(w->http, &tv);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(w->http, "application/json");
    evhttp_set_gencb(w->http, sg_ingest_handle, w);
    w->bound = evhttp_accept_socket_with_handle(w->http, fd);
    if (!w->bound)
        return sg_error("worker %d: cannot accept on the listening socket", w->index);
    w->listener = evhttp_bound_socket_get_listener(w->bound);
    evconnlistener_set_error_cb(w->listener, accept_error_cb);

    pthread_mutex_init(&w->syncer.lock, NULL);
    pthread_cond_init(&w->syncer.cond, NULL);
    if (pthread_create(&w->syncer.thread, NULL, syncer_main, w) != 0)
        return sg_error("worker %d: cannot start its sync thread", w->index);
    w->syncer_started = true;
    w->site_offset = sg_xcalloc(cfg->n_sites, sizeof(size_t));
    for (size_t s = 0; s < cfg->n_sites; s++) {
        w->site_offset[s] = w->n_fw;
        w->n_fw += cfg->sites[s].n_dests;
    }
    w->fw = sg_xcalloc(w->n_fw ? w->n_fw : 1, sizeof(*w->fw));
    for (size_t s = 0; s < cfg->n_sites; s++)
        for (size_t d = 0; d < cfg->sites[s].n_dests; d++) {
            struct sg_forwarder_deps deps = {w->base, w->client, log, w->spool, dead};
            struct sg_forwarder *fw =
                sg_forwarder_new(&deps, &cfg->sites[s], &cfg->sites[s].dests[d], lim);
            if (!fw)
                return sg_error("worker %d: cannot create a forwarder", w->index);
            w->fw[w->site_offset[s] + d] = fw;
        }
    return 0;
}

/*
 * Give each recovered segment to one worker (its acks are that worker's to
 * write) and queue its pending events on that worker's forwarders. Events of
 * a destination no longer configured go to the dead letter.
 */
static void restore_spool(const struct sg_config *cfg, struct sg_worker *workers,
                          struct sg_spool_shared *spool, struct sg_spool_recovered *rec)
{
    for (size_t s = 0; s < rec->n_segs; s++) {
        if (!rec->seg_pending[s])
            continue;
        sg_spool_shared_add_bytes(spool, rec->seg_bytes[s]);
        sg_spool_adopt(workers[rec->segs[s] % (uint64_t)cfg->workers].spool, rec->segs[s],
                       rec->seg_pending[s], rec->seg_bytes[s]);
    }
    size_t restored = 0, orphaned = 0;
    for (size_t i = 0; i < rec->n; i++) {
        struct sg_spool_entry *e = &rec->entries[i];
        struct sg_worker *w = &workers[e->ref.seg % (uint64_t)cfg->workers];
        const struct sg_site *site = sg_config_site_by_id(cfg, e->site);
        struct sg_forwarder *fw = NULL;
        for (size_t d = 0; site && d < site->n_dests && !fw; d++)
            if (strcmp(site->dests[d].id, e->dest) == 0)
                fw = sg_worker_forwarder(w, site, d);
        if (fw) {
            sg_forwarder_restore(fw, e);
            restored++;
            continue;
        }
        struct sg_dead_event de = {e->site, e->dest, e->event, e->event_id, e->json,
                                   e->json_len, e->attempts, e->first_ts};
        if (sg_deadletter_write(w->dead, &de, 1, "destination_removed", -1, NULL) == 0)
            sg_spool_ack(w->spool, e->ref);
        orphaned++;
    }
    for (int i = 0; i < cfg->workers; i++)
        sg_spool_commit(workers[i].spool);
    if (rec->n || rec->torn_segments)
        sg_info("spool: %zu event(s) recovered and queued, %zu for removed destinations sent to "
                "the dead letter; %zu torn segment tail(s), %llu byte(s) dropped",
                restored, orphaned, rec->torn_segments, (unsigned long long)rec->torn_bytes);
}

/*
 * SIGHUP: load and validate the configuration file again. Invalid: the
 * running configuration stays (the error says file, line and column). Valid:
 * every worker switches on its own loop. Returns the new configuration
 * (owned by the caller) or NULL.
 */
static struct sg_config *reload(const struct sg_config *cur, struct sg_worker *workers, int n)
{
    sg_info("SIGHUP: reloading %s", cur->path);
    struct sg_config *next = sg_config_load(cur->path);
    if (!next) {
        sg_error("reload: the new configuration is invalid (above); the running one stays");
        return NULL;
    }
    if (strcmp(next->listen, cur->listen) || next->workers != cur->workers ||
        strcmp(next->state_dir, cur->state_dir))
        sg_warn("reload: listen, workers and state_dir changes need a restart; the old values stay");
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&workers[i].reload_lock);
        workers[i].reload_cfg = next;
        pthread_mutex_unlock(&workers[i].reload_lock);
        event_active(workers[i].reload_ev, EV_READ, 0);
    }
    sg_info("reload: %zu site(s) from %s", next->n_sites, next->path);
    return next;
}

int sg_server_run(struct sg_config *cfg)
{
    char host[256];
    int port, rc = 1;
    sigset_t sigs;
    struct sg_synclog *log = NULL;
    struct sg_deadletter *dead = NULL;
    struct sg_spool_shared *spool = NULL;
    struct sg_spool_recovered rec = {0};
    struct sg_worker *workers = NULL;
    struct sg_config **olds = NULL; /* configurations loaded by SIGHUP: freed at exit */
    size_t n_olds = 0;
    int started = 0;

    json_object_seed(0); /* seed jansson's hash once, before threads exist */
    if (evthread_use_pthreads() < 0)
        return sg_error("libevent: no pthreads support"), 1;
    if (sg_split_hostport(cfg->listen, host, sizeof(host), &port) < 0)
        return sg_error("listen: bad address"), 2;
    apply_connection_limit(&cfg->limits);
    log = sg_synclog_open(cfg->state_dir);
    if (!log)
        return 1;
    dead = sg_deadletter_open(cfg->state_dir);
    char *spool_dir = sg_xasprintf("%s/spool", cfg->state_dir);
    int recovered = dead ? sg_spool_recover(spool_dir, &rec) : -1;
    if (recovered == 0)
        spool = sg_spool_shared_new(spool_dir, rec.next_seq, cfg->limits.spool_max_bytes,
                                    cfg->limits.spool_segment_bytes);
    free(spool_dir);
    if (recovered < 0) {
        sg_synclog_free(log);
        sg_deadletter_free(dead);
        return 1;
    }

    /* Signals go to the main thread only: block them before threads inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (EFBIG), not a crash */

    workers = sg_xcalloc((size_t)cfg->workers, sizeof(*workers));
    for (int i = 0; i < cfg->workers; i++) {
        workers[i].index = i;
        int fd = listen_socket(host, &port);
        if (fd < 0 || worker_init(&workers[i], cfg, log, dead, spool, fd) < 0) {
            if (fd >= 0 && !workers[i].http)
                close(fd);
            goto out;
        }
    }
    restore_spool(cfg, workers, spool, &rec);
    all_workers.v = workers;
    all_workers.n = cfg->workers;
    if (admin_start(&workers[0]) < 0)
        goto out;
    for (; started < cfg->workers; started++)
        if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]) != 0) {
            sg_error("cannot start worker thread %d", started);
            goto out;
        }
    sg_info("scrubgate %s listening on %s:%d (%d workers, %zu sites)", SG_VERSION, host, port,
            cfg->workers, cfg->n_sites);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            struct sg_config *next = reload(cfg, workers, started);
            if (next) {
                olds = sg_xrealloc(olds, (n_olds + 1) * sizeof(*olds));
                olds[n_olds++] = next;
            }
            continue;
        }
        sg_info("signal %d: stopping; delivering queued events (at most %d ms)", sig,
                cfg->limits.shutdown_timeout_ms);
        break;
    }
    rc = 0;
out:
    for (int i = 0; i < started; i++)
        event_active(workers[i].stop_ev, EV_READ, 0);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    for (int i = 0; workers && i < cfg->workers; i++)
        worker_release(&workers[i]);
    free(workers);
    for (size_t i = 0; i < n_olds; i++)
        sg_config_free(olds[i]);
    free(olds);
    sg_spool_recovered_free(&rec);
    sg_spool_shared_free(spool);
    sg_deadletter_free(dead);
    sg_synclog_free(log);
    return rc;
}
