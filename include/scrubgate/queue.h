/*
 * queue.h - where an accepted event waits for its outcome: one small vtable
 * per backend, so ingest and the forwarders never name a backend.
 *
 * Two backends exist: the local spool (queue_local.c: segment files and the
 * worker's group commit, the default) and NATS JetStream (jetstream.c: a
 * replicated stream shared by several instances). Each worker owns one
 * queue and calls it on its own loop only, except where noted.
 *
 * An event's life through a queue:
 *   append()   stage the scrubbed, formatted event (never a raw one);
 *   defer()    answer the request 202 once everything appended so far is
 *              durable (written and synced, or acknowledged by the stream),
 *              or 503 if that failed;
 *   settled    local: the forwarder that appended the event sends it itself
 *              once its generation is durable (sg_forwarder_committed());
 *              shared: the queue hands events to forwarders of any instance
 *              (sg_queue_deliver_fn), whoever has room;
 *   done()     the final outcome has its sync-log line: forget the event
 *              (ack), or, after a give-up written to the dead letter, end it
 *              (term);
 *   retry()    not now: local keeps it in the forwarder's retry heap;
 *              shared hands it back to the stream with a delay (nak).
 */
#ifndef SCRUBGATE_QUEUE_H
#define SCRUBGATE_QUEUE_H

#include "scrubgate/common.h"
#include "scrubgate/http.h"

struct sg_queue;
struct sg_spool_entry;

/* Where an event lives in its queue: a spool record, or a message of the stream. */
struct sg_queue_ref {
    uint64_t seg;   /* local: segment and index of the data record */
    uint32_t idx;
    void *msg;      /* shared: the delivered message (owned by the queue until done/retry) */
};

enum sg_queue_end {
    SG_QUEUE_ACK = 0, /* delivered, skipped or refused: its outcome is written */
    SG_QUEUE_TERM,    /* given up (in the dead letter): never redeliver */
};

/* An event the queue hands to a forwarder (steals e's strings, as sg_forwarder_restore());
 * msg is the queue's handle of it, given back in ref->msg to done() or retry(). */
typedef void sg_queue_deliver_fn(void *fw, struct sg_spool_entry *e, void *msg);
typedef void sg_queue_job_fn(void *arg);

struct sg_queue_ops {
    const char *type; /* "local", "jetstream" */
    /* true: the forwarder that appends an event sends it itself once its generation is
     * durable; false: events come back through a consumer (sg_queue_consume()). */
    bool sends_own;
    /* Stage one event; fills ref and *gen (the generation that must settle). 0, or -1
     * when it cannot be taken at all (too large): nothing staged. */
    int (*append)(struct sg_queue *q, struct sg_spool_entry *e, struct sg_queue_ref *ref,
                  uint64_t *gen);
    /* Events appended since the queue was created (ingest: "did this request stage any"). */
    uint64_t (*appended)(const struct sg_queue *q);
    /* True when about `bytes` more fit (a spool cap, a publish window). */
    bool (*has_room)(const struct sg_queue *q, size_t bytes);
    /* From any thread: NULL when events are accepted, else why not ("spool_broken",
     * "queue_unreachable"): /healthz names it, ingest answers 503. */
    const char *(*failing)(const struct sg_queue *q);
    /* Ingest asks before staging: false answers 503 at once (a shared queue that cannot be
     * reached). The local spool says true even while failing: its next write heals it. */
    bool (*accepts)(const struct sg_queue *q);
    /* Answer req (202 with body, stolen) once all appended so far is durable, else 503. */
    void (*defer)(struct sg_queue *q, struct sg_http_req *req, const char *site, char *body);
    /* Replies waiting, plus work in progress that shutdown must wait for. */
    size_t (*waiting)(const struct sg_queue *q);
    void (*done)(struct sg_queue *q, struct sg_queue_ref *ref, enum sg_queue_end how);
    /* A send of the event starts (it may take upstream_timeout_ms): a shared queue restarts
     * its redelivery timer. NULL when nothing is to be done (the local queue). */
    void (*sending)(struct sg_queue *q, struct sg_queue_ref *ref);
    /* Hand the event back for a later attempt, not before delay_ms (shared queues only). */
    void (*retry)(struct sg_queue *q, struct sg_queue_ref *ref, uint64_t delay_ms);
    /* Outcomes were recorded outside a request: make them durable soon. */
    void (*kick)(struct sg_queue *q);
    /* Run run(arg) off the loop (disk work such as dead-letter writes), then done(arg) on it. */
    void (*background)(struct sg_queue *q, sg_queue_job_fn *run, sg_queue_job_fn *done,
                       void *arg);
    /*
     * Shared queues: start taking events of (site, dest) for fw, delivered with fn on the
     * loop; *credit (owned by fw, read from other threads) says how many more fw takes now
     * (0 while it is paused or full). Returns a handle for sg_queue_unconsume(), or NULL.
     */
    void *(*consume)(struct sg_queue *q, const char *site, const char *dest,
                     sg_queue_deliver_fn *fn, void *fw, _Atomic long *credit);
    /* Stop delivering to that forwarder; events not yet handed over go back to the stream. */
    void (*unconsume)(struct sg_queue *q, void *handle);
    void (*free)(struct sg_queue *q);
};

/* Every backend embeds this first. */
struct sg_queue {
    const struct sg_queue_ops *ops;
};

struct sg_commit;
struct sg_spool;
/* The local backend over a worker's spool and group commit (both borrowed). */
struct sg_queue *sg_queue_local_new(struct sg_spool *spool, struct sg_commit *commit);

/*
 * How a worker gets its queue of a shared backend: new(arg, worker index, the worker's loop,
 * its local queue (borrowed: background disk work still runs on it)). NULL on failure.
 */
struct event_base;
struct sg_queue_factory {
    struct sg_queue *(*new)(void *arg, int worker, struct event_base *base,
                            struct sg_queue *local);
    void *arg;
};

/* NULL is a no-op. */
static inline void sg_queue_free(struct sg_queue *q)
{
    if (q)
        q->ops->free(q);
}

#endif
