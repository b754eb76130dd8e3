/*
 * worker.h - one event loop of the serve command: its HTTP server on a
 * SO_REUSEPORT socket, HTTP client, forwarders (one per site and
 * destination), spool and group commit. Workers share only read-only
 * configuration, the sync log and the dead letter (docs/ARCHITECTURE.md).
 *
 * Everything here runs on the worker's own thread unless it says otherwise.
 */
#ifndef SCRUBGATE_WORKER_H
#define SCRUBGATE_WORKER_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

#include <event2/event.h>

struct sg_admin;
struct sg_commit;
struct sg_deadletter;
struct sg_forwarder;
struct sg_queue;
struct sg_queue_factory;
struct sg_ratelimit;
struct sg_spool;
struct sg_spool_entry;
struct sg_spool_shared;
struct sg_synclog;
struct sg_worker;

/*
 * Create worker index with its loop, HTTP server on the listening socket fd
 * (steals it, also on failure), spool and forwarders. cfg, log, dead and
 * spool are borrowed and must outlive the worker. NULL on failure (logged).
 */
struct sg_worker *sg_worker_new(int index, const struct sg_config *cfg, struct sg_synclog *log,
                                struct sg_deadletter *dead, struct sg_spool_shared *spool,
                                const struct sg_queue_factory *qf, int fd);
/* Free a worker whose thread has ended (or never started). NULL is a no-op. */
void sg_worker_free(struct sg_worker *w);

/* Start the worker's thread. 0 or -1. */
int sg_worker_start(struct sg_worker *w);
/* From any thread: stop accepting, drain, end the loop. sg_worker_join() waits for it. */
void sg_worker_stop(struct sg_worker *w);
void sg_worker_join(struct sg_worker *w);
/*
 * From any thread: switch to cfg (borrowed), numbered epoch, on the worker's
 * loop. Epochs grow with each call; the configuration given to
 * sg_worker_new() is epoch 0. A newer call before the loop ran replaces the
 * pending one. cfg must live until sg_worker_oldest_epoch() is past epoch
 * (or the worker is freed).
 */
void sg_worker_reload(struct sg_worker *w, const struct sg_config *cfg, uint64_t epoch);
/* From any thread: the epoch of the configuration the worker has switched to. */
uint64_t sg_worker_applied_epoch(const struct sg_worker *w);
/*
 * From any thread: the oldest epoch whose configuration the worker may still
 * read (its own, or one a retired forwarder with events left is bound to).
 * Every configuration older than this is no longer read by this worker.
 */
uint64_t sg_worker_oldest_epoch(const struct sg_worker *w);

/* Before start: queue an event recovered from the spool (steals its strings), or return -1
 * when its site or destination is no longer configured (the entry is left as it was). */
int sg_worker_restore(struct sg_worker *w, struct sg_spool_entry *e);
/* Before start: the worker's spool, for recovery hand-out. Borrowed. From any thread, only
 * sg_spool_failing() may be asked of it (the admin's /healthz). */
struct sg_spool *sg_worker_spool(struct sg_worker *w);
/* Before start: run the admin listener on this worker's loop (freed when it stops). */
void sg_worker_attach_admin(struct sg_worker *w, struct sg_admin *admin);
struct event_base *sg_worker_base(struct sg_worker *w);

/* On the worker's thread (ingest): */
const struct sg_config *sg_worker_config(const struct sg_worker *w);
bool sg_worker_stopping(const struct sg_worker *w);
/* Where ingest stages events (borrowed). */
struct sg_queue *sg_worker_queue(struct sg_worker *w);
/* The process's sync log, shared by every worker (borrowed). */
struct sg_synclog *sg_worker_synclog(struct sg_worker *w);
/* Ingest's token buckets on this worker, per client IP and per site (borrowed). */
struct sg_ratelimit *sg_worker_rate_ip(struct sg_worker *w);
struct sg_ratelimit *sg_worker_rate_site(struct sg_worker *w);
/* The forwarder of a site's d-th destination on this worker (borrowed). */
struct sg_forwarder *sg_worker_forwarder(struct sg_worker *w, const struct sg_site *site,
                                         size_t d);

/*
 * From any thread (admin listener): call fn for every forwarder of the
 * worker, live and retired, while a reload cannot swap the table. fn must
 * only read the forwarder's site, destination and atomic stats.
 */
typedef void sg_worker_fw_fn(struct sg_forwarder *fw, void *arg);
void sg_worker_each_forwarder(struct sg_worker *w, sg_worker_fw_fn *fn, void *arg);
/* From any thread: true when the worker's queue accepts events. */
bool sg_worker_accepting(const struct sg_worker *w);
/* From any thread: NULL, or why the queue refuses events ("spool_broken", ...). */
const char *sg_worker_failing(const struct sg_worker *w);
int sg_worker_index(const struct sg_worker *w);

#endif
