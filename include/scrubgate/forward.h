/*
 * forward.h - per-destination batching and delivery on one event loop.
 *
 * Each worker loop owns one forwarder per (site, destination): a bounded
 * in-memory queue of formatted events, flushed as one request when it holds
 * batch_max_events or after flush_interval_ms, with at most max_inflight
 * requests at once. Every event ends with one sync log line.
 * (Durable spool and retries: a later issue; see docs/ARCHITECTURE.md.)
 */
#ifndef SCRUBGATE_FORWARD_H
#define SCRUBGATE_FORWARD_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/event.h"

#include <event2/event.h>
#include <jansson.h>

struct sg_forwarder;
struct sg_http;
struct sg_synclog;

struct sg_forwarder *sg_forwarder_new(struct event_base *base, struct sg_http *http,
                                      const struct sg_site *site, const struct sg_dest_conf *dest,
                                      const struct sg_limits *limits, struct sg_synclog *log);
/* Every event still queued is recorded as failed with reason "shutdown". */
void sg_forwarder_free(struct sg_forwarder *fw);

/* True when n more events fit in the queue. */
bool sg_forwarder_has_room(const struct sg_forwarder *fw, size_t n);

/*
 * Queue one scrubbed event: formats it now (so the queue holds bytes, not raw
 * data). The caller checked room. rules is borrowed (the changed-rule ids).
 */
void sg_forwarder_push(struct sg_forwarder *fw, const struct sg_event *ev, json_t *rules);

/* Record an event that will not be sent (skipped, with reason). */
void sg_forwarder_skip(struct sg_forwarder *fw, const struct sg_event *ev, const char *reason,
                       json_t *rules);

/* Flush everything now (shutdown); returns events queued or in flight. */
size_t sg_forwarder_drain(struct sg_forwarder *fw);
size_t sg_forwarder_pending(const struct sg_forwarder *fw);

#endif
