/*
 * commit.h - a worker's group commit: no 202 before the events it answers
 * for are written and fdatasync'ed.
 *
 * Requests of one loop turn share one write and one fdatasync. The sync runs
 * on the worker's background thread (Redis's bio) so the loop keeps serving;
 * requests arriving meanwhile form the next, larger group. The same thread
 * closes and unlinks spool files, so no disk wait happens on the loop.
 */
#ifndef SCRUBGATE_COMMIT_H
#define SCRUBGATE_COMMIT_H

#include "scrubgate/common.h"
#include "scrubgate/http.h"

#include <event2/event.h>

struct sg_commit;
struct sg_spool;

/*
 * Told when the records buffered up to generation gen (sg_spool_gen()) are
 * durable (ok) or were discarded after a failed write or sync (!ok): the
 * caller releases or drops what it staged for them.
 */
typedef void sg_commit_done_fn(void *arg, uint64_t gen, bool ok);

/* spool is borrowed and outlives the commit. NULL on failure (logged). */
struct sg_commit *sg_commit_new(struct event_base *base, struct sg_spool *spool,
                                sg_commit_done_fn *done, void *arg);
/* Write and sync what is left (synchronously), stop the thread. NULL is a no-op. */
void sg_commit_free(struct sg_commit *c);

/*
 * Answer req with 202 and body (steals it) once everything buffered in the
 * spool so far is durable, or with 503 if that write or sync fails. A client
 * that goes away first loses only its reply, not its events. site (borrowed, copied) labels
 * the reply in the ingest counters (metrics.h).
 */
void sg_commit_defer(struct sg_commit *c, struct sg_http_req *req, const char *site,
                     char *body);
/* Replies waiting for their generation to be durable, plus one while a sync runs:
 * shutdown waits for them, so no client that will get a 202 is cut off. */
size_t sg_commit_waiting(const struct sg_commit *c);
/* Acks (or records) were buffered outside a request: write them soon. */
void sg_commit_kick(struct sg_commit *c);

/*
 * Run run(arg) on the background thread, then done(arg) on the loop (jobs
 * run one at a time, in order, behind the spool's syncs). For disk work that
 * must not stall the loop, such as the dead letter's write and fdatasync.
 * At shutdown (sg_commit_free) queued jobs still run, and their done
 * callbacks run on the freeing thread.
 */
typedef void sg_commit_job_fn(void *arg);
void sg_commit_background(struct sg_commit *c, sg_commit_job_fn *run, sg_commit_job_fn *done,
                          void *arg);

#endif
