/*
 * metrics.c - lock-free counters for /metrics (see metrics.h).
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/metrics.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

/* ---- ingest replies: open addressing, slots claimed once ---- */

#define REPLY_SLOTS 1024
#define SITE_MAX 65

enum { SLOT_EMPTY = 0, SLOT_CLAIMED, SLOT_READY };

struct reply_slot {
    _Atomic int state;
    int code;
    char site[SITE_MAX];
    _Atomic uint64_t n;
};

static struct reply_slot replies[REPLY_SLOTS];

static uint32_t reply_hash(const char *site, int code)
{
    uint32_t h = 2166136261u ^ (uint32_t)code;
    for (const unsigned char *p = (const unsigned char *)site; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* Find or claim the slot of (site, code); NULL when the table is full. */
static struct reply_slot *reply_slot(const char *site, int code)
{
    uint32_t h = reply_hash(site, code);
    for (uint32_t i = 0; i < REPLY_SLOTS; i++) {
        struct reply_slot *s = &replies[(h + i) % REPLY_SLOTS];
        int st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == SLOT_EMPTY) {
            int expect = SLOT_EMPTY;
            if (atomic_compare_exchange_strong(&s->state, &expect, SLOT_CLAIMED)) {
                s->code = code;
                snprintf(s->site, sizeof(s->site), "%s", site);
                atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
                return s;
            }
            st = expect;
        }
        /* Another thread is filling this slot: its key is known in a few instructions. */
        while (st == SLOT_CLAIMED) {
            sched_yield();
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        }
        if (s->code == code && strncmp(s->site, site, SITE_MAX - 1) == 0)
            return s;
    }
    return NULL;
}

void sg_metrics_ingest_reply(const char *site, int code)
{
    struct reply_slot *s = reply_slot(site ? site : "", code);
    if (!s)
        s = reply_slot("(other)", code);
    if (s)
        atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed);
}

void sg_metrics_each_ingest_reply(sg_metrics_reply_fn *fn, void *arg)
{
    for (size_t i = 0; i < REPLY_SLOTS; i++) {
        struct reply_slot *s = &replies[i];
        if (atomic_load_explicit(&s->state, memory_order_acquire) == SLOT_READY)
            fn(s->site, s->code, atomic_load_explicit(&s->n, memory_order_relaxed), arg);
    }
}

/* ---- outcomes ---- */

void sg_outcomes_add(struct sg_outcomes *o, const char *status, const char *reason)
{
    size_t n = atomic_load_explicit(&o->n, memory_order_relaxed);
    if (!reason)
        reason = "";
    /* Four slots stay for "other" (one per status), so a long tail of reasons (rule ids of
     * a big rule set) folds into them instead of being lost. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            struct sg_outcome *s = &o->v[i];
            if (!strcmp(s->status, status) &&
                !strncmp(s->reason, reason, SG_OUTCOME_REASON_MAX - 1)) {
                atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed);
                return;
            }
        }
        if (n < SG_OUTCOMES_MAX - 4 || (pass == 1 && n < SG_OUTCOMES_MAX))
            break;
        reason = "other";
    }
    if (n >= SG_OUTCOMES_MAX)
        return; /* unreachable: at most 4 statuses use the reserved slots */
    struct sg_outcome *s = &o->v[n];
    snprintf(s->status, sizeof(s->status), "%s", status);
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    atomic_store_explicit(&s->n, 1, memory_order_relaxed);
    atomic_store_explicit(&o->n, n + 1, memory_order_release);
}

const struct sg_outcome *sg_outcomes_get(const struct sg_outcomes *o, size_t *n)
{
    *n = atomic_load_explicit(&o->n, memory_order_acquire);
    return o->v;
}

/* ---- durations ---- */

const double sg_duration_bounds[SG_DURATION_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                        0.5,   1,    2.5,   5,    10,  30};

void sg_histogram_observe(struct sg_histogram *h, uint64_t us)
{
    for (size_t i = 0; i < SG_DURATION_BUCKETS; i++) {
        if ((double)us <= sg_duration_bounds[i] * 1e6) {
            atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
            break;
        }
    }
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* ---- exposition ---- */

void sg_metrics_label(struct sg_buf *b, const char *v)
{
    sg_buf_addc(b, '"');
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\')
            sg_buf_adds(b, "\\\\");
        else if (*p == '"')
            sg_buf_adds(b, "\\\"");
        else if (*p == '\n')
            sg_buf_adds(b, "\\n");
        else
            sg_buf_addc(b, *p);
    }
    sg_buf_addc(b, '"');
}
