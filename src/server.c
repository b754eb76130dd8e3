/*
 * server.c - the serve command: ownership of state_dir, descriptor limits,
 * listening sockets, signals, start and stop of the workers, recovery
 * hand-out.
 *
 * Every worker binds its own listening socket to the same address with
 * SO_REUSEPORT, so the kernel spreads connections over the loops and no lock
 * sits on the accept path. The main thread only waits for signals.
 */
#include "scrubgate/common.h"
#include "scrubgate/admin.h"
#include "scrubgate/conn.h"
#include "scrubgate/deadletter.h"
#include "scrubgate/jetstream.h"
#include "scrubgate/log.h"
#include "scrubgate/server.h"
#include "scrubgate/spool.h"
#include "scrubgate/synclog.h"
#include "scrubgate/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int sg_server_lock_state_dir(const char *state_dir)
{
    if (mkdir(state_dir, 0750) < 0 && errno != EEXIST)
        return sg_error("state_dir %s: cannot create: %s", state_dir, strerror(errno));
    char *path = sg_xasprintf("%s/scrubgate.lock", state_dir);
    char *what = sg_xasprintf("state_dir %s", state_dir);
    int fd = sg_lock_pidfile(path, what);
    free(what);
    free(path);
    return fd;
}


/*
 * Descriptors: max_connections for clients, which conn.c counts (all workers
 * together) and never lets past it, plus a reserve that clients therefore
 * never take: files, loops, the sync threads' descriptors, upstream
 * connections and the admin listener (sg_conn_fd_reserve(), computed from
 * workers, destinations and max_inflight). The soft limit becomes their sum,
 * up to the hard limit; when the hard limit is lower, clients get what the
 * reserve leaves.
 */
static void apply_connection_limit(const struct sg_config *cfg)
{
    size_t reserve = sg_conn_fd_reserve(cfg), clients = cfg->limits.max_connections;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = (rlim_t)(clients + reserve);
        if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) {
            want = rl.rlim_max;
            clients = rl.rlim_max > reserve + 16 ? (size_t)rl.rlim_max - reserve : 16;
            sg_warn("max_connections %zu plus %zu reserved descriptors exceed the hard "
                    "descriptor limit %llu: serving at most %zu clients",
                    cfg->limits.max_connections, reserve, (unsigned long long)rl.rlim_max,
                    clients);
        }
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            sg_warn("cannot set the descriptor limit: %s", strerror(errno));
    }
    sg_conn_set_client_limit(clients);
}

/*
 * Give each recovered segment to one worker (its acks are that worker's to
 * write) and queue its pending events on that worker's forwarders. Events of
 * a destination no longer configured go to the dead letter.
 */
static void restore_spool(const struct sg_config *cfg, struct sg_worker **workers,
                          struct sg_synclog *log, struct sg_deadletter *dead,
                          struct sg_spool_shared *spool,
                          struct sg_spool_recovered *rec)
{
    int n = cfg->workers;
    for (size_t s = 0; s < rec->n_segs; s++) {
        if (!rec->seg_pending[s])
            continue;
        sg_spool_shared_add_bytes(spool, rec->seg_bytes[s]);
        sg_spool_adopt(sg_worker_spool(workers[rec->segs[s] % (uint64_t)n]), rec->segs[s],
                       rec->seg_pending[s], rec->seg_bytes[s]);
    }
    size_t restored = 0, orphaned = 0;
    for (size_t i = 0; i < rec->n; i++) {
        struct sg_spool_entry *e = &rec->entries[i];
        struct sg_worker *w = workers[e->ref.seg % (uint64_t)n];
        if (sg_worker_restore(w, e) == 0) {
            restored++;
            continue;
        }
        struct sg_dead_event de = {e->site, e->dest, e->event, e->event_id, e->json,
                                   e->json_len, e->attempts, e->first_ts};
        if (sg_deadletter_write(dead, &de, 1, "destination_removed", -1, NULL) == 0) {
            /* Its one outcome, like any other dead-lettered event's. */
            struct sg_sync_record r = {
                .site = e->site, .destination = e->dest, .event = e->event,
                .event_id = e->event_id, .status = "failed", .reason = "destination_removed",
                .code = -1, .attempts = (int)e->attempts, .rules = e->rules,
                .rule_set_version = e->rule_set, .consent = &e->consent,
            };
            sg_synclog_write(log, &r);
            sg_spool_ack(sg_worker_spool(w), e->ref);
        }
        orphaned++;
    }
    for (int i = 0; i < n; i++)
        sg_spool_commit(sg_worker_spool(workers[i]));
    if (rec->n || rec->torn_segments)
        sg_info("spool: %zu event(s) recovered and queued, %zu for removed destinations sent to "
                "the dead letter; %zu torn segment tail(s), %llu byte(s) dropped",
                restored, orphaned, rec->torn_segments, (unsigned long long)rec->torn_bytes);
}

/* ---- reload ---- */

/*
 * Configurations loaded by SIGHUP, oldest first; the last one runs. Each has
 * an epoch (the one given to sg_server_run is 0 and belongs to the caller).
 * One is freed once every worker's oldest epoch is past it: no worker, admin
 * listener or retired forwarder reads it any more.
 */
struct held {
    struct sg_config *cfg;
    uint64_t epoch;
    uint64_t unused_since; /* monotonic ms when no worker read it any more; 0: still read */
};

/*
 * How long a configuration no worker reads any more is kept before it is
 * freed. The epochs say when it is safe; this margin is defence in depth:
 * a storm of thousands of reloads a second with events being dead-lettered
 * once showed a forwarder still bound to a configuration just freed, and
 * its cause was not found (see docs/ARCHITECTURE.md, "Reload").
 */
#define CONFIG_GRACE_MS 500

struct reloads {
    struct held *v;
    size_t n;
    uint64_t epoch;     /* of the running configuration */
    uint64_t announced; /* the newest epoch logged as applied by every worker */
};

/*
 * Settings read once at start. A reload that changes them is told so by name
 * and keeps the running values: they are copied into next, so that nothing
 * reading the new configuration sees a value the process does not use.
 */
static bool queue_conf_equal(const struct sg_queue_conf *a, const struct sg_queue_conf *b)
{
    if (a->type != b->type || a->replicas != b->replicas || a->n_servers != b->n_servers ||
        !a->stream != !b->stream || (a->stream && strcmp(a->stream, b->stream)) ||
        !a->creds_file != !b->creds_file || (a->creds_file && strcmp(a->creds_file, b->creds_file)))
        return false;
    for (size_t i = 0; i < a->n_servers; i++)
        if (strcmp(a->servers[i], b->servers[i]))
            return false;
    return true;
}

/* Replace dst (freed) with a deep copy of src. */
static void queue_conf_copy(struct sg_queue_conf *dst, const struct sg_queue_conf *src)
{
    for (size_t i = 0; i < dst->n_servers; i++)
        free(dst->servers[i]);
    free(dst->servers);
    free(dst->stream);
    free(dst->creds_file);
    *dst = *src;
    dst->servers = sg_xcalloc(src->n_servers + 1, sizeof(char *));
    for (size_t i = 0; i < src->n_servers; i++)
        dst->servers[i] = sg_xstrdup(src->servers[i]);
    dst->stream = src->stream ? sg_xstrdup(src->stream) : NULL;
    dst->creds_file = src->creds_file ? sg_xstrdup(src->creds_file) : NULL;
}

static void keep_restart_settings(const struct sg_config *cur, struct sg_config *next)
{
    char names[256] = "";
#define CHANGED(name)                                                                              \
    snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", names[0] ? ", " : "",  \
             name)
    if (strcmp(next->listen, cur->listen)) {
        CHANGED("listen");
        free(next->listen);
        next->listen = sg_xstrdup(cur->listen);
    }
    if (next->workers != cur->workers) {
        CHANGED("workers");
        next->workers = cur->workers;
    }
    if (strcmp(next->state_dir, cur->state_dir)) {
        CHANGED("state_dir");
        free(next->state_dir);
        next->state_dir = sg_xstrdup(cur->state_dir);
    }
    if (!next->admin_listen != !cur->admin_listen ||
        (cur->admin_listen && strcmp(next->admin_listen, cur->admin_listen))) {
        CHANGED("admin_listen");
        free(next->admin_listen);
        next->admin_listen = cur->admin_listen ? sg_xstrdup(cur->admin_listen) : NULL;
    }
    if (!queue_conf_equal(&cur->queue, &next->queue)) {
        CHANGED("queue");
        queue_conf_copy(&next->queue, &cur->queue);
    }
#define LIMIT(field)                                                                               \
    if (next->limits.field != cur->limits.field) {                                                 \
        CHANGED("limits." #field);                                                                 \
        next->limits.field = cur->limits.field;                                                    \
    }
    LIMIT(max_connections)   /* the descriptor limit */
    LIMIT(spool_max_bytes)   /* the shared spool's cap */
    LIMIT(spool_segment_bytes)
    LIMIT(max_response_bytes) /* each worker's HTTP client */
#undef LIMIT
#undef CHANGED
    if (names[0])
        sg_warn("reload: changed settings that need a restart (the running values stay): %s",
                names);
}

/*
 * SIGHUP: load and validate the configuration file again. Invalid: the
 * running configuration stays (the error says file, line and column).
 * Returns the new configuration (owned by the caller) or NULL.
 */
static struct sg_config *reload(const struct sg_config *cur, bool admin_running)
{
    sg_info("SIGHUP: reloading %s", cur->path);
    struct sg_config *next = sg_config_load(cur->path);
    if (!next) {
        sg_error("reload: the new configuration is invalid (above); the running one stays");
        return NULL;
    }
    keep_restart_settings(cur, next);
    size_t site, dest, len;
    if (next->queue.type == SG_QUEUE_JETSTREAM && !sg_jetstream_names_fit(next, &site, &dest, &len)) {
        /* The file names another queue, the running jetstream one stays: its names count. */
        sg_error("reload: %s: sites[%zu].destinations[%zu]: its JetStream consumer name would be "
                 "%zu bytes, over NATS's %d; the running configuration stays",
                 cur->path, site, dest, len, SG_JETSTREAM_NAME_MAX);
        sg_config_free(next);
        return NULL;
    }
    sg_config_announce(next); /* log_format, log_level; the per-process-key warning again */
    if (admin_running && cur->admin_token && !next->admin_token)
        sg_warn("reload: no admin token any more: /metrics and every admin endpoint but "
                "/healthz answer 401 until one is configured");
    else if (admin_running && !cur->admin_token && next->admin_token)
        sg_info("reload: admin token configured: the admin endpoints are on");
    else if (!admin_running && !cur->admin_token && next->admin_token)
        sg_warn("reload: an admin token is configured but the admin listener is not running "
                "(no admin_listen at start): it needs a restart");
    return next;
}

static int wait_signal(const sigset_t *sigs, int timeout_ms)
{
    int sig = 0;
    if (timeout_ms < 0)
        return sigwait(sigs, &sig) == 0 ? sig : 0;
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    sig = sigtimedwait(sigs, NULL, &ts);
    return sig > 0 ? sig : 0; /* timeout or EINTR */
}

/*
 * After a signal or a timeout: log a reload once every worker applied it,
 * and free the configurations no worker reads any more. Returns how long the
 * main thread may wait for the next look (-1: until a signal).
 */
static int reap(struct reloads *r, struct sg_worker **workers, int n)
{
    uint64_t applied = r->epoch, oldest = r->epoch;
    for (int i = 0; i < n; i++) {
        applied = SG_MIN(applied, sg_worker_applied_epoch(workers[i]));
        oldest = SG_MIN(oldest, sg_worker_oldest_epoch(workers[i]));
    }
    size_t kept = 0;
    uint64_t now = sg_now_mono_ms();
    bool waiting = false;
    for (size_t i = 0; i < r->n; i++) {
        if (i + 1 < r->n && r->v[i].epoch < oldest) {
            if (!r->v[i].unused_since)
                r->v[i].unused_since = now;
            if (now - r->v[i].unused_since >= CONFIG_GRACE_MS) {
                sg_config_free(r->v[i].cfg);
                continue;
            }
            waiting = true;
        }
        r->v[kept++] = r->v[i];
    }
    r->n = kept;
    if (applied > r->announced) {
        size_t in_use = 0;
        for (size_t i = 0; i < r->n; i++)
            in_use += r->v[i].unused_since == 0;
        r->announced = applied;
        sg_info("reload %llu applied by every worker (%zu reloaded configuration(s) in use, %zu "
                "more freed within %d ms)",
                (unsigned long long)applied, in_use, r->n - in_use, CONFIG_GRACE_MS);
    }
    if (r->announced < r->epoch)
        return 5;
    if (waiting)
        return 100; /* configurations in their grace */
    /* Waiting for retired forwarders to empty: they are checked every second. */
    return oldest < r->epoch ? 1000 : -1;
}

int sg_server_run(struct sg_config *cfg)
{
    char host[256];
    int port, rc = 1, lock_fd = -1;
    sigset_t sigs;
    struct sg_synclog *log = NULL;
    struct sg_deadletter *dead = NULL;
    struct sg_spool_shared *spool = NULL;
    struct sg_spool_recovered rec = {0};
    struct sg_worker **workers = NULL;
    struct reloads r = {0};
    struct sg_admin *admin = NULL;
    struct sg_jetstream *js = NULL;
    struct sg_queue_factory qf = {sg_jetstream_queue_new, NULL};
    int started = 0, timeout = -1;

    json_object_seed(0); /* seed jansson's hash once, before threads exist */
    /* Signals go to the main thread only: block them before any thread exists (libnats
     * starts its own in sg_jetstream_open()), or a SIGHUP could reach one whose default
     * action ends the process. One that comes during the start waits for wait_signal(). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (EFBIG), not a crash */
    if (evthread_use_pthreads() < 0)
        return sg_error("libevent: no pthreads support"), 1;
    if (sg_split_hostport(cfg->listen, host, sizeof(host), &port) < 0)
        return sg_error("listen: bad address"), 2;
    /* Ownership first: a second instance must not touch the spool or bind the port. */
    lock_fd = sg_server_lock_state_dir(cfg->state_dir);
    if (lock_fd < 0)
        return 1;
    apply_connection_limit(cfg);
    log = sg_synclog_open(cfg->state_dir);
    dead = log ? sg_deadletter_open(cfg->state_dir) : NULL;
    char *spool_dir = sg_xasprintf("%s/spool", cfg->state_dir);
    if (dead && sg_spool_recover(spool_dir, &rec) == 0)
        spool = sg_spool_shared_new(spool_dir, rec.next_seq, cfg->limits.spool_max_bytes,
                                    cfg->limits.spool_segment_bytes);
    free(spool_dir);
    if (!spool)
        goto out;
    if (cfg->queue.type == SG_QUEUE_JETSTREAM) {
        if (!sg_jetstream_available()) {
            sg_error("queue: the jetstream queue is not available in this build (built without "
                     "libnats)");
            goto out;
        }
        if (rec.n) {
            /* Never strand them: they were answered 202 by this box and only it has them. */
            sg_error("queue: the local spool under %s still holds %zu event(s); run with the "
                     "local queue until they are delivered, then switch to jetstream",
                     cfg->state_dir, rec.n);
            goto out;
        }
        js = sg_jetstream_open(cfg);
        if (!js)
            goto out;
        qf.arg = js;
    }

    workers = sg_xcalloc((size_t)cfg->workers, sizeof(*workers));
    for (int i = 0; i < cfg->workers; i++) {
        int fd = sg_conn_listen(host, &port, false, true);
        if (fd < 0)
            goto out;
        workers[i] = sg_worker_new(i, cfg, log, dead, spool, js ? &qf : NULL, fd);
        if (!workers[i])
            goto out;
    }
    restore_spool(cfg, workers, log, dead, spool, &rec);
    struct sg_admin_stores stores = {spool, dead}; /* lives until the workers are joined */
    if (sg_admin_new(sg_worker_base(workers[0]), cfg, workers, cfg->workers, &stores, &admin) < 0)
        goto out;
    sg_worker_attach_admin(workers[0], admin);
    for (; started < cfg->workers; started++)
        if (sg_worker_start(workers[started]) < 0)
            goto out;
    sg_info("scrubgate %s listening on %s:%d (%d workers, %zu sites)", SG_VERSION, host, port,
            cfg->workers, cfg->n_sites);

    for (;;) {
        int sig = wait_signal(&sigs, timeout);
        const struct sg_config *cur = r.n ? r.v[r.n - 1].cfg : cfg;
        if (sig == SIGHUP) {
            struct sg_config *next = reload(cur, admin != NULL);
            if (next) {
                r.v = sg_xrealloc(r.v, (r.n + 1) * sizeof(*r.v));
                r.v[r.n++] = (struct held){next, ++r.epoch, 0};
                for (int i = 0; i < started; i++)
                    sg_worker_reload(workers[i], next, r.epoch);
                sg_info("reload: %zu site(s) from %s", next->n_sites, next->path);
            }
        } else if (sig) {
            sg_info("signal %d: stopping; delivering queued events (at most %d ms)", sig,
                    cur->limits.shutdown_timeout_ms);
            break;
        }
        timeout = reap(&r, workers, started);
    }
    rc = 0;
out:
    for (int i = 0; i < started; i++)
        sg_worker_stop(workers[i]);
    for (int i = 0; i < started; i++)
        sg_worker_join(workers[i]);
    for (int i = 0; workers && i < cfg->workers; i++)
        sg_worker_free(workers[i]);
    free(workers);
    /* The workers are gone: nothing reads a configuration any more. */
    for (size_t i = 0; i < r.n; i++)
        sg_config_free(r.v[i].cfg);
    free(r.v);
    sg_spool_recovered_free(&rec);
    sg_jetstream_free(js); /* after the workers: their queues used its connection */
    sg_spool_shared_free(spool);
    sg_deadletter_free(dead);
    sg_synclog_free(log);
    if (lock_fd >= 0)
        close(lock_fd);
    return rc;
}
