/*
 * worker.c - one event loop: HTTP server, forwarder table, group commit,
 * drain on stop, configuration switch on reload. See worker.h.
 */
#include "scrubgate/common.h"
#include "scrubgate/arena.h"
#include "scrubgate/admin.h"
#include "scrubgate/commit.h"
#include "scrubgate/conn.h"
#include "scrubgate/forward.h"
#include "scrubgate/hash.h"
#include "scrubgate/http_client.h"
#include "scrubgate/ingest.h"
#include "scrubgate/log.h"
#include "scrubgate/queue.h"
#include "scrubgate/ratelimit.h"
#include "scrubgate/rules.h"
#include "scrubgate/spool.h"
#include "scrubgate/synclog.h"
#include "scrubgate/worker.h"

#include <errno.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a retired forwarder still reads, and since when it has been retired. */
struct retired_info {
    uint64_t epoch; /* the configuration it was last bound to */
    uint64_t since; /* monotonic ms */
};

struct sg_worker {
    int index;
    const struct sg_config *cfg; /* borrowed, read-only */
    struct sg_synclog *log;      /* borrowed, shared */
    struct sg_deadletter *dead;  /* borrowed, shared */
    struct sg_spool *spool;      /* owned: this worker's spool */
    struct sg_commit *commit;    /* owned */
    struct sg_queue *local;      /* owned: the spool and commit behind the queue interface */
    struct sg_queue *shared;     /* owned: a shared backend's queue (NULL: local only) */
    struct sg_queue *queue;      /* where new events go: local or shared */
    struct sg_admin *admin;      /* owned, when this worker runs the admin listener */
    struct event_base *base;
    struct sg_conns *conns;      /* owned: the ingest server (conn.c) */
    struct sg_http *client;
    struct sg_ratelimit *rate_ip, *rate_site; /* owned: ingest's token buckets (this loop's) */
    /* The forwarder table: per site, fw[site_offset[s] + d]. Swapped by a reload under
     * fw_lock, which the admin listener takes to read it from another thread. */
    pthread_mutex_t fw_lock;
    struct sg_forwarder **fw;
    size_t *site_offset;
    size_t n_fw;
    struct sg_forwarder **retired; /* destinations a reload removed: they finish their queue */
    struct retired_info *retired_info; /* per retired forwarder: its epoch, since when */
    size_t n_retired;
    struct event *sweep_timer;     /* frees retired forwarders once they hold nothing */
    /* Configurations are numbered by the main thread (the first is 0). epoch is w->cfg's, on
     * the loop; applied and oldest publish it and the oldest configuration anything of this
     * worker still reads (w->cfg, the admin's, retired forwarders') to the main thread. */
    uint64_t epoch;
    _Atomic uint64_t applied;
    _Atomic uint64_t oldest;
    struct event *reload_ev;     /* SIGHUP: switch to reload_cfg on this loop */
    const struct sg_config *reload_cfg;
    uint64_t reload_epoch;
    pthread_mutex_t reload_lock;
    struct event *stop_ev;
    struct event *drain_timer;
    struct event *accept_resume;   /* re-enables accepting after a pause on EMFILE */
    uint64_t last_accept_warning;
    bool stopping;                 /* stop seen: new requests get 503 */
    uint64_t drain_deadline;
    pthread_t thread;
    bool started;
};

static _Thread_local struct sg_worker *tl_worker; /* the worker this thread runs */

struct sg_forwarder *sg_worker_forwarder(struct sg_worker *w, const struct sg_site *site, size_t d)
{
    size_t s = (size_t)(site - w->cfg->sites);
    return w->fw[w->site_offset[s] + d];
}

const struct sg_config *sg_worker_config(const struct sg_worker *w)
{
    return w->cfg;
}

bool sg_worker_stopping(const struct sg_worker *w)
{
    return w->stopping;
}

struct sg_queue *sg_worker_queue(struct sg_worker *w)
{
    return w->queue;
}

struct sg_synclog *sg_worker_synclog(struct sg_worker *w)
{
    return w->log;
}

struct sg_spool *sg_worker_spool(struct sg_worker *w)
{
    return w->spool;
}

struct event_base *sg_worker_base(struct sg_worker *w)
{
    return w->base;
}

struct sg_ratelimit *sg_worker_rate_ip(struct sg_worker *w)
{
    return w->rate_ip;
}

struct sg_ratelimit *sg_worker_rate_site(struct sg_worker *w)
{
    return w->rate_site;
}

int sg_worker_index(const struct sg_worker *w)
{
    return w->index;
}

bool sg_worker_accepting(const struct sg_worker *w)
{
    return sg_worker_failing(w) == NULL;
}

const char *sg_worker_failing(const struct sg_worker *w)
{
    return w->queue->ops->failing(w->queue);
}

void sg_worker_attach_admin(struct sg_worker *w, struct sg_admin *admin)
{
    w->admin = admin;
}

void sg_worker_each_forwarder(struct sg_worker *w, sg_worker_fw_fn *fn, void *arg)
{
    pthread_mutex_lock(&w->fw_lock);
    for (size_t i = 0; i < w->n_fw; i++)
        fn(w->fw[i], arg);
    for (size_t i = 0; i < w->n_retired; i++)
        fn(w->retired[i], arg);
    pthread_mutex_unlock(&w->fw_lock);
}

int sg_worker_restore(struct sg_worker *w, struct sg_spool_entry *e)
{
    const struct sg_site *site = sg_config_site_by_id(w->cfg, e->site);
    for (size_t d = 0; site && d < site->n_dests; d++)
        if (strcmp(site->dests[d].id, e->dest) == 0) {
            sg_forwarder_restore(sg_worker_forwarder(w, site, d), e);
            return 0;
        }
    return -1;
}

/* ---- stop and drain ---- */

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
    pending += w->queue->ops->waiting(w->queue);
    if (w->queue != w->local)
        pending += sg_commit_waiting(w->commit);
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
    sg_admin_free(w->admin);
    w->admin = NULL;
    /* Close the listening socket: new clients are refused rather than left waiting. */
    sg_conns_close_listener(w->conns);
    w->drain_deadline = sg_now_mono_ms() + (uint64_t)w->cfg->limits.shutdown_timeout_ms;
    drain_cb(-1, 0, w);
}

void sg_worker_stop(struct sg_worker *w)
{
    event_active(w->stop_ev, EV_READ, 0);
}

/* ---- accept throttling ---- */

/*
 * Out of file descriptors: stop accepting for a moment instead of letting
 * the readable listener spin the loop, as nginx does. Connections wait in
 * the kernel's backlog meanwhile.
 */
static void accept_error_cb(struct evconnlistener *listener, void *arg)
{
    struct sg_worker *w = tl_worker; /* arg is the server's own pointer, not ours */
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
    if (!w->stopping && sg_conns_listener(w->conns))
        evconnlistener_enable(sg_conns_listener(w->conns));
}

/* ---- reload ---- */

static void apply_http_limits(struct sg_worker *w, const struct sg_limits *lim)
{
    sg_conns_set_limits(w->conns, lim);
}

/*
 * Publish which configurations this worker may still read: the one it runs
 * and those its retired forwarders were last bound to. Both numbers only
 * grow, so a stale read on the main thread errs on the side of keeping.
 */
static void publish_epochs(struct sg_worker *w)
{
    uint64_t oldest = w->epoch;
    for (size_t i = 0; i < w->n_retired; i++)
        oldest = SG_MIN(oldest, w->retired_info[i].epoch);
    atomic_store(&w->oldest, oldest);
    atomic_store(&w->applied, w->epoch);
}

/*
 * Free the retired forwarders that hold nothing any more (no event ready,
 * waiting to retry or in flight: no transfer can call back into them), then
 * publish the epochs. Runs from the loop only, never from inside a
 * forwarder's own callback. While some remain, look again in a second.
 */
static void sweep_retired(struct sg_worker *w)
{
    size_t kept = 0;
    uint64_t now = sg_now_mono_ms(), grace = (uint64_t)w->cfg->limits.shutdown_timeout_ms;
    pthread_mutex_lock(&w->fw_lock);
    for (size_t i = 0; i < w->n_retired; i++) {
        struct sg_forwarder *fw = w->retired[i];
        if (sg_forwarder_pending(fw) && now - w->retired_info[i].since >= grace)
            sg_forwarder_abandon(fw, "destination_removed"); /* as a restart would */
        if (sg_forwarder_pending(fw) == 0) {
            sg_debug("worker %d: destination %s (site %s) removed by a reload: queue empty, "
                     "freed",
                     w->index, sg_forwarder_dest(fw)->id, sg_forwarder_site(fw)->id);
            sg_forwarder_free(fw);
            continue;
        }
        w->retired[kept] = fw;
        w->retired_info[kept] = w->retired_info[i];
        kept++;
    }
    w->n_retired = kept;
    if (!kept) {
        free(w->retired);
        free(w->retired_info);
        w->retired = NULL;
        w->retired_info = NULL;
    }
    pthread_mutex_unlock(&w->fw_lock);
    publish_epochs(w);
    if (kept) {
        struct timeval tv = {1, 0};
        evtimer_add(w->sweep_timer, &tv);
    }
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    SG_UNUSED(fd);
    SG_UNUSED(what);
    sweep_retired(arg);
}

/* Take the first forwarder of v[0..n) for (site, dest) ids that is not taken yet. */
static struct sg_forwarder *take(struct sg_forwarder **v, size_t n, bool *taken,
                                 const struct sg_site *site, const struct sg_dest_conf *dest)
{
    for (size_t i = 0; i < n; i++)
        if (!taken[i] && !strcmp(sg_forwarder_site(v[i])->id, site->id) &&
            !strcmp(sg_forwarder_dest(v[i])->id, dest->id)) {
            taken[i] = true;
            return v[i];
        }
    return NULL;
}

/*
 * On the worker's loop: adopt configuration cfg (number epoch). A forwarder
 * whose site and destination ids are still configured keeps its queue and is
 * pointed at the new structures at once, so its in-flight requests read the
 * new configuration when they complete. A destination removed earlier and
 * configured again takes its retired forwarder back (with its queue), so no
 * destination ever has two forwarders sending. New destinations get new
 * forwarders; removed ones are retired: they deliver what they hold, take
 * nothing new and keep reading the configuration they were bound to until
 * they are empty and freed. Connections are untouched.
 *
 * Everything this loop reads from a configuration (w->cfg, the forwarders,
 * the admin listener's) has switched before the epochs are published: the
 * main thread frees a configuration only once every worker's oldest epoch
 * is past it (docs/ARCHITECTURE.md, "Reload").
 */
static void reload_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_worker *w = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    pthread_mutex_lock(&w->reload_lock);
    const struct sg_config *cfg = w->reload_cfg;
    uint64_t epoch = w->reload_epoch;
    w->reload_cfg = NULL;
    pthread_mutex_unlock(&w->reload_lock);
    if (!cfg)
        return;
    const struct sg_limits *lim = &cfg->limits;
    size_t n_fw = 0;
    size_t *offset = sg_xcalloc(cfg->n_sites ? cfg->n_sites : 1, sizeof(size_t));
    for (size_t s = 0; s < cfg->n_sites; s++) {
        offset[s] = n_fw;
        n_fw += cfg->sites[s].n_dests;
    }
    struct sg_forwarder **fws = sg_xcalloc(n_fw ? n_fw : 1, sizeof(*fws));
    bool *kept = sg_xcalloc(w->n_fw ? w->n_fw : 1, sizeof(bool));
    bool *adopted = sg_xcalloc(w->n_retired ? w->n_retired : 1, sizeof(bool));
    pthread_mutex_lock(&w->fw_lock);
    for (size_t s = 0; s < cfg->n_sites; s++)
        for (size_t d = 0; d < cfg->sites[s].n_dests; d++) {
            const struct sg_site *site = &cfg->sites[s];
            const struct sg_dest_conf *dest = &site->dests[d];
            struct sg_forwarder *fw = take(w->fw, w->n_fw, kept, site, dest);
            if (!fw && (fw = take(w->retired, w->n_retired, adopted, site, dest)))
                sg_info("worker %d: destination %s (site %s) configured again: it resumes with "
                        "the %zu event(s) it still held",
                        w->index, dest->id, site->id, sg_forwarder_pending(fw));
            if (fw) {
                sg_forwarder_retire(fw, false);
                sg_forwarder_rebind(fw, site, dest, lim);
            } else {
                struct sg_forwarder_deps deps = {w->base, w->client, w->log, w->queue,
                                                 w->dead};
                fw = sg_forwarder_new(&deps, site, dest, lim);
                if (!fw)
                    sg_die("worker %d: cannot create a forwarder", w->index);
            }
            fws[offset[s] + d] = fw;
        }
    /* The retired list: those not taken back, then the forwarders this reload removes, which
     * still read the configuration the worker ran until now. */
    size_t n_retired = 0;
    for (size_t i = 0; i < w->n_retired; i++)
        if (!adopted[i]) {
            w->retired[n_retired] = w->retired[i];
            w->retired_info[n_retired++] = w->retired_info[i];
        }
    for (size_t i = 0; i < w->n_fw; i++)
        if (!kept[i]) {
            w->retired = sg_xrealloc(w->retired, (n_retired + 1) * sizeof(*w->retired));
            w->retired_info =
                sg_xrealloc(w->retired_info, (n_retired + 1) * sizeof(*w->retired_info));
            w->retired[n_retired] = w->fw[i];
            sg_forwarder_retire(w->fw[i], true);
            w->retired_info[n_retired++] = (struct retired_info){w->epoch, sg_now_mono_ms()};
        }
    w->n_retired = n_retired;
    free(kept);
    free(adopted);
    free(w->fw);
    free(w->site_offset);
    w->fw = fws;
    w->n_fw = n_fw;
    w->site_offset = offset;
    w->cfg = cfg;
    w->epoch = epoch;
    pthread_mutex_unlock(&w->fw_lock);
    apply_http_limits(w, lim);
    if (w->admin)
        sg_admin_set_config(w->admin, cfg);
    sweep_retired(w); /* frees what is already empty and publishes the epochs */
}

void sg_worker_reload(struct sg_worker *w, const struct sg_config *cfg, uint64_t epoch)
{
    pthread_mutex_lock(&w->reload_lock);
    w->reload_cfg = cfg;
    w->reload_epoch = epoch;
    pthread_mutex_unlock(&w->reload_lock);
    event_active(w->reload_ev, EV_READ, 0);
}

uint64_t sg_worker_applied_epoch(const struct sg_worker *w)
{
    return atomic_load(&w->applied);
}

uint64_t sg_worker_oldest_epoch(const struct sg_worker *w)
{
    return atomic_load(&w->oldest);
}

/* ---- lifecycle ---- */

/* The group commit finished generations up to gen: staged events go out or are dropped. */
static void committed_cb(void *arg, uint64_t gen, bool ok)
{
    struct sg_worker *w = arg;
    for (size_t i = 0; i < w->n_fw; i++)
        sg_forwarder_committed(w->fw[i], gen, ok);
    for (size_t i = 0; i < w->n_retired; i++)
        sg_forwarder_committed(w->retired[i], gen, ok);
}

static void *worker_main(void *arg)
{
    struct sg_worker *w = arg;
    tl_worker = w;
    sg_log_set_thread_worker(w->index); /* the "worker" field of JSON log lines */
    event_base_dispatch(w->base);
    sg_rules_thread_release();
    sg_hash_thread_release();
    sg_json_arena_thread_release();
    sg_synclog_thread_release();
    sg_spool_thread_release();
    return NULL;
}

int sg_worker_start(struct sg_worker *w)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return sg_error("cannot start worker thread %d", w->index);
    w->started = true;
    return 0;
}

void sg_worker_join(struct sg_worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = false;
}

void sg_worker_free(struct sg_worker *w)
{
    if (!w)
        return;
    sg_admin_free(w->admin);
    sg_conns_free(w->conns); /* requests still waiting for a reply are forgotten */
    /* The client first: aborted transfers hand their events back before the forwarders go. */
    sg_http_free(w->client);
    /* Then the background work (dead-letter writes end on their forwarders) and the last
     * records and acks, while the forwarders still exist. */
    sg_commit_free(w->commit);
    for (size_t i = 0; i < w->n_fw; i++)
        sg_forwarder_free(w->fw[i]);
    for (size_t i = 0; i < w->n_retired; i++)
        sg_forwarder_free(w->retired[i]);
    free(w->retired);
    free(w->retired_info);
    sg_queue_free(w->shared);
    sg_queue_free(w->local);
    sg_spool_free(w->spool);
    sg_ratelimit_free(w->rate_ip);
    sg_ratelimit_free(w->rate_site);
    free(w->fw);
    free(w->site_offset);
    if (w->reload_ev)
        event_free(w->reload_ev);
    if (w->sweep_timer)
        event_free(w->sweep_timer);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->accept_resume)
        event_free(w->accept_resume);
    if (w->base)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->reload_lock);
    pthread_mutex_destroy(&w->fw_lock);
    free(w);
}

struct sg_worker *sg_worker_new(int index, const struct sg_config *cfg, struct sg_synclog *log,
                                struct sg_deadletter *dead, struct sg_spool_shared *spool,
                                const struct sg_queue_factory *qf, int fd)
{
    const struct sg_limits *lim = &cfg->limits;
    struct sg_worker *w = sg_xcalloc(1, sizeof(*w));
    /* 16384 client IPs (about 1.4 MiB) per worker: past that, the fullest buckets are reused. */
    w->rate_ip = sg_ratelimit_new(16384);
    w->rate_site = sg_ratelimit_new(256);
    w->index = index;
    w->cfg = cfg;
    w->log = log;
    w->dead = dead;
    pthread_mutex_init(&w->reload_lock, NULL);
    pthread_mutex_init(&w->fw_lock, NULL);
    w->spool = sg_spool_new(spool, index);
    w->base = event_base_new();
    if (!w->base) {
        close(fd);
        sg_error("worker %d: event_base_new failed", index);
        goto fail;
    }
    w->client = sg_http_new(w->base, lim->max_response_bytes);
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->drain_timer = evtimer_new(w->base, drain_cb, w);
    w->accept_resume = evtimer_new(w->base, accept_resume_cb, w);
    w->reload_ev = event_new(w->base, -1, 0, reload_cb, w);
    w->sweep_timer = evtimer_new(w->base, sweep_cb, w);
    w->commit = sg_commit_new(w->base, w->spool, committed_cb, w);
    w->local = w->commit ? sg_queue_local_new(w->spool, w->commit) : NULL;
    w->queue = w->local;
    if (qf && w->local) {
        w->shared = qf->new(qf->arg, index, w->base, w->local);
        w->queue = w->shared;
    }
    if (!w->queue || !w->client || !w->stop_ev || !w->drain_timer || !w->accept_resume ||
        !w->reload_ev || !w->sweep_timer || !w->commit) {
        close(fd);
        sg_error("worker %d: cannot create the loop's objects", index);
        goto fail;
    }
    w->conns = sg_conns_new(w->base, fd, lim, SG_CONN_INGEST, sg_ingest_handle, w);
    if (!w->conns) {
        sg_error("worker %d: cannot accept on the listening socket", index);
        goto fail;
    }
    evconnlistener_set_error_cb(sg_conns_listener(w->conns), accept_error_cb);

    w->site_offset = sg_xcalloc(cfg->n_sites ? cfg->n_sites : 1, sizeof(size_t));
    for (size_t s = 0; s < cfg->n_sites; s++) {
        w->site_offset[s] = w->n_fw;
        w->n_fw += cfg->sites[s].n_dests;
    }
    w->fw = sg_xcalloc(w->n_fw ? w->n_fw : 1, sizeof(*w->fw));
    for (size_t s = 0; s < cfg->n_sites; s++)
        for (size_t d = 0; d < cfg->sites[s].n_dests; d++) {
            struct sg_forwarder_deps deps = {w->base, w->client, log, w->queue, dead};
            struct sg_forwarder *fw =
                sg_forwarder_new(&deps, &cfg->sites[s], &cfg->sites[s].dests[d], lim);
            if (!fw) {
                sg_error("worker %d: cannot create a forwarder", index);
                goto fail;
            }
            w->fw[w->site_offset[s] + d] = fw;
        }
    return w;
fail:
    sg_worker_free(w);
    return NULL;
}
