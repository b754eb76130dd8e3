/*
 * forward.h - per-destination batching and delivery on one event loop.
 *
 * Each worker loop owns one forwarder per (site, destination): a bounded
 * queue of formatted events, each also written to the worker's durable
 * spool, flushed as one request when it holds batch_max_events or after
 * flush_interval_ms, with at most max_inflight requests at once. Replies are
 * classified (tiktok-events-api.md): accepted and partial events are done;
 * throttling and transient failures retry with full-jitter exponential
 * backoff until retry_give_up_s; token errors pause the destination, which
 * is probed every auth_probe_ms with events kept until any reply that is not
 * a token error (a 5xx or a 429 too) ends the pause; bad requests and exhausted
 * retries go to the dead letter. Every event ends with one sync log line and
 * an ack in the spool.
 */
#ifndef SCRUBGATE_FORWARD_H
#define SCRUBGATE_FORWARD_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/event.h"
#include "scrubgate/metrics.h"

#include <event2/event.h>

struct sg_deadletter;
struct sg_forwarder;
struct sg_http;
struct sg_queue;
struct sg_spool_entry;
struct sg_synclog;

struct sg_forwarder_deps {
    struct event_base *base;
    struct sg_http *http;
    struct sg_synclog *log;
    struct sg_queue *queue;   /* where events wait for their outcome (queue.h) */
    struct sg_deadletter *dead;
};

/* Counters for logs and /metrics (one forwarder's share). */
struct sg_forward_stats {
    /* Written by the owning loop, read by the admin listener on another: atomics. */
    struct sg_outcomes outcomes;     /* events by sync-log status and reason */
    _Atomic uint64_t retried;        /* events rescheduled after a throttled/failed request */
    _Atomic uint64_t auth_pauses;    /* times the destination went from sending to paused */
    _Atomic uint64_t queued;         /* events waiting: staged, ready, retrying or in flight */
    struct sg_histogram duration;    /* upstream request durations (replies and failures) */
    _Atomic bool paused;             /* a token error stopped sending; any other reply clears it */
};

struct sg_forwarder *sg_forwarder_new(const struct sg_forwarder_deps *deps,
                                      const struct sg_site *site, const struct sg_dest_conf *dest,
                                      const struct sg_limits *limits);
/* Frees the queues; events not yet delivered stay in the spool for the next start. */
void sg_forwarder_free(struct sg_forwarder *fw);

/* True when n more events fit in the queue. */
bool sg_forwarder_has_room(const struct sg_forwarder *fw, size_t n);

/*
 * Stage one scrubbed event: formats it now and appends it to the spool (so
 * the queue and the disk hold bytes, never raw data). It is sent only after
 * sg_forwarder_committed() says its generation is durable. The caller
 * checked room and defers its reply to the group commit. rules: JSON array
 * text. -1 when the formatted event is too large to spool (nothing kept).
 */
int sg_forwarder_push(struct sg_forwarder *fw, const struct sg_event *ev, const char *rules);

/*
 * The group commit settled the spool generations up to gen: events pushed
 * in them are sent from now on (ok), or dropped unsent (!ok: their requests
 * were answered 503 and their records taken back off the disk).
 */
void sg_forwarder_committed(struct sg_forwarder *fw, uint64_t gen, bool ok);

/* Queue an event recovered from the spool (steals the entry's strings). */
void sg_forwarder_restore(struct sg_forwarder *fw, struct sg_spool_entry *e);
/* Queue an event a shared queue delivered (steals the strings; msg: the queue's handle). */
void sg_forwarder_deliver(struct sg_forwarder *fw, struct sg_spool_entry *e, void *msg);

/* An event this destination will not send (skipped, with reason): its sync log line is
 * staged; the caller writes it, with the event's others, by sg_synclog_flush(), and only
 * once that succeeded counts it (sg_forwarder_skip_written) and accepts the event. */
void sg_forwarder_skip(struct sg_forwarder *fw, const struct sg_event *ev, const char *reason,
                       const char *rules);
void sg_forwarder_skip_written(struct sg_forwarder *fw, const char *reason);

/* Point a forwarder at a reloaded configuration's site, destination and limits (same ids). */
void sg_forwarder_rebind(struct sg_forwarder *fw, const struct sg_site *site,
                         const struct sg_dest_conf *dest, const struct sg_limits *limits);

/* A reload removed (true) or configured again (false) its destination: a retired
 * forwarder takes no new events from a shared queue (the stream keeps them). */
void sg_forwarder_retire(struct sg_forwarder *fw, bool retired);

/* Flush what is ready now (shutdown); returns events queued ready or in flight. */
size_t sg_forwarder_drain(struct sg_forwarder *fw);
const struct sg_forward_stats *sg_forwarder_stats(const struct sg_forwarder *fw);
const struct sg_site *sg_forwarder_site(const struct sg_forwarder *fw);
const struct sg_dest_conf *sg_forwarder_dest(const struct sg_forwarder *fw);

/* Events queued ready, waiting to retry (paused included) or in flight; 0 when it may be freed. */
size_t sg_forwarder_pending(const struct sg_forwarder *fw);

/*
 * A destination removed by a reload that still holds events after its
 * grace period: what is ready or waiting to retry goes to the dead letter
 * with reason (what a restart does with events of a removed destination),
 * or, with a shared queue, back to the stream (for the instances that still
 * configure it), so the forwarder can be freed. In-flight requests finish on
 * their own.
 */
void sg_forwarder_abandon(struct sg_forwarder *fw, const char *reason);

#endif
