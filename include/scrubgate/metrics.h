/*
 * metrics.h - the counters behind GET /metrics, written on the hot path
 * without locks and read by the admin listener on another thread.
 *
 * - ingest replies by (site, status code): one process-wide table, shared by
 *   the workers' ingest servers, lock-free (a slot is claimed once with a
 *   compare-and-swap, then only its counter moves);
 * - event outcomes by (status, reason): a bounded table per forwarder with
 *   one writer (the forwarder's loop) and any number of readers;
 * - request durations: a histogram with fixed buckets;
 * - Prometheus text helpers (label value escaping).
 * Label values come from configuration ids and fixed tokens only, never
 * from request data, so every table stays small.
 */
#ifndef SCRUBGATE_METRICS_H
#define SCRUBGATE_METRICS_H

#include "scrubgate/common.h"

#include <stdatomic.h>

struct sg_buf;

/* ---- ingest replies ---- */

/*
 * Count one reply of the ingest listener: site is the site's id, or NULL /
 * "" when no site was resolved (an unknown site, a connection-level error).
 * Any thread. Past the table's capacity (1024 pairs) a pair is counted under
 * site "(other)".
 */
void sg_metrics_ingest_reply(const char *site, int code);

typedef void sg_metrics_reply_fn(const char *site, int code, uint64_t n, void *arg);
/* Every (site, code) counted so far, in no particular order. Any thread. */
void sg_metrics_each_ingest_reply(sg_metrics_reply_fn *fn, void *arg);

/* ---- event outcomes ---- */

#define SG_OUTCOMES_MAX 48
#define SG_OUTCOME_REASON_MAX 64

struct sg_outcome {
    _Atomic uint64_t n;
    char status[16];                     /* accepted | partial_failure | failed | skipped */
    char reason[SG_OUTCOME_REASON_MAX];  /* truncated; "other" past the table's room */
};

/* Zero-initialized before use. One writer; readers on any thread. */
struct sg_outcomes {
    _Atomic size_t n; /* slots published (release): their strings never change again */
    struct sg_outcome v[SG_OUTCOMES_MAX];
};

/* Count one event outcome (the writer's thread only). */
void sg_outcomes_add(struct sg_outcomes *o, const char *status, const char *reason);
/* The published slots: *n of them (acquire). */
const struct sg_outcome *sg_outcomes_get(const struct sg_outcomes *o, size_t *n);

/* ---- durations ---- */

#define SG_DURATION_BUCKETS 12
/* Upper bounds in seconds: 0.005 .. 30 (the +Inf bucket is the count). */
extern const double sg_duration_bounds[SG_DURATION_BUCKETS];

struct sg_histogram {
    _Atomic uint64_t bucket[SG_DURATION_BUCKETS]; /* not cumulative: observations in (b-1, b] */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

void sg_histogram_observe(struct sg_histogram *h, uint64_t us);

/* ---- exposition ---- */

/* Append v as a Prometheus label value (quoted; backslash, double quote and newline escaped). */
void sg_metrics_label(struct sg_buf *b, const char *v);

#endif
