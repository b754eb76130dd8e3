/*
 * forward.c - batch formatted events per destination, deliver, retry, and
 * record one outcome per event.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/deadletter.h"
#include "scrubgate/dest.h"
#include "scrubgate/forward.h"
#include "scrubgate/hash.h"
#include "scrubgate/http_client.h"
#include "scrubgate/log.h"
#include "scrubgate/rules.h"
#include "scrubgate/queue.h"
#include "scrubgate/spool.h"
#include "scrubgate/synclog.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct item {
    char *json;     /* owned: the formatted outbound event */
    size_t len;
    /* For the sync log: name, id, changed-rule ids and the rule-set version that scrubbed it
     * (NULL: the forwarder's), borrowed from block (item_names()). */
    char *block; /* owned */
    char *event;
    char *event_id;
    char *rules;
    char *rule_set;
    struct sg_consent consent;
    int64_t first_ts;
    uint32_t attempts;
    uint64_t due_ms; /* retries: not before this monotonic time */
    uint64_t gen;    /* staged: the spool generation that must be durable before it is sent */
    struct sg_queue_ref ref;
};

struct batch {
    struct sg_forwarder *fw;
    struct item *items;
    size_t n;
    uint64_t started_us; /* for the duration histogram */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A growable FIFO of items (staged and ready). */
struct ring {
    struct item *v;
    size_t cap, head, count;
};

/* Retries, a binary min-heap on due_ms: O(log n) per event whatever the backlog. */
struct heap {
    struct item *v;
    size_t n, cap;
};

struct sg_forwarder {
    struct sg_forwarder_deps d;
    const struct sg_site *site;
    const struct sg_dest_conf *dest;
    const struct sg_limits *limits;
    struct ring staged; /* spooled, waiting for the group commit to make them durable */
    struct ring ready;
    struct heap retry;
    size_t inflight;  /* events in requests (or dead-letter writes) not yet done */
    size_t requests;  /* requests not yet answered */
    struct event *timer;
    bool timer_armed;
    uint64_t timer_at;
    uint64_t paused_until; /* token error: no sends before this monotonic time */
    uint64_t backoff_until; /* throttled or failing: the destination waits until then */
    uint32_t backoff_step;  /* consecutive throttled/failed requests */
    bool closing;
    struct sg_forward_stats stats;
    void *consumer;      /* shared queues: this forwarder's share of the destination's consumer */
    bool retired;        /* a reload removed its destination: it takes nothing new */
    bool draining;       /* shutdown: send what it holds, pull nothing more */
    _Atomic long credit; /* shared queues: events it takes now (read by the consumer's thread) */
};

static void flush(struct sg_forwarder *fw);

/* ---- rings ---- */

static void ring_push(struct ring *r, struct item *it)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        struct item *v = sg_xcalloc(cap, sizeof(*v));
        for (size_t i = 0; i < r->count; i++)
            v[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = v;
        r->cap = cap;
        r->head = 0;
    }
    r->v[(r->head + r->count++) % r->cap] = *it;
}

static struct item ring_pop(struct ring *r)
{
    struct item it = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return it;
}

static void heap_push(struct heap *h, struct item *it)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->v = sg_xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2].due_ms > it->due_ms) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = *it;
}

static struct item heap_pop(struct heap *h)
{
    struct item top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1].due_ms < h->v[c].due_ms)
            c++;
        if (last.due_ms <= h->v[c].due_ms)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

static void item_free(struct item *it)
{
    free(it->json);
    free(it->block);
}

/* The item's sync-log strings (any may be NULL), copied into one block (it->block). */
static void item_names(struct item *it, const char *event, const char *event_id,
                       const char *rules, const char *rule_set)
{
    const char *in[4] = {event, event_id, rules, rule_set};
    char **out[4] = {&it->event, &it->event_id, &it->rules, &it->rule_set};
    size_t len[4], total = 0;
    for (int i = 0; i < 4; i++)
        total += len[i] = in[i] ? strlen(in[i]) + 1 : 0;
    char *p = it->block = sg_xmalloc(total);
    for (int i = 0; i < 4; i++) {
        *out[i] = in[i] ? memcpy(p, in[i], len[i]) : NULL;
        p += len[i];
    }
}

/* ---- outcomes ---- */

/* The outcome's sync log line, staged in the thread's buffer (sg_synclog_flush writes it). */
static void record(struct sg_forwarder *fw, const struct item *it, const char *status,
                   const char *reason, long http_status, long code, const char *request_id)
{
    struct sg_sync_record r = {
        .site = fw->site->id,
        .destination = fw->dest->id,
        .event = it->event,
        .event_id = it->event_id,
        .status = status,
        .reason = reason,
        .http_status = http_status,
        .code = code,
        .request_id = request_id,
        .attempts = (int)it->attempts,
        .rules = it->rules,
        .rule_set_version = it->rule_set ? it->rule_set : sg_ruleset_version(fw->site->rules),
        .consent = &it->consent,
    };
    sg_synclog_stage(&r);
}

static void let_go(struct sg_forwarder *fw, struct item *it, uint64_t delay_ms);

/*
 * The story of n events ends here, all with the same outcome: their sync log lines in one
 * write (a write per line stalled the loop for milliseconds after each batch), then the queue
 * may forget them. Without the lines there is no end: when the write fails, the events stay
 * in the spool and get their outcome after the next start (a shared queue redelivers them),
 * as when the dead letter cannot take them.
 */
static void finish_as(struct sg_forwarder *fw, struct item *items, size_t n, const char *status,
                      const char *reason, long http_status, long code, const char *request_id,
                      enum sg_queue_end how)
{
    for (size_t i = 0; i < n; i++)
        record(fw, &items[i], status, reason, http_status, code, request_id);
    if (sg_synclog_flush(fw->d.log) < 0) {
        sg_warn("destination %s (site %s): the outcome of %zu event(s) could not be written to "
                "the sync log; they are kept and sent again (from the local spool: after the "
                "next start)",
                fw->dest->id, fw->site->id, n);
        for (size_t i = 0; i < n; i++)
            let_go(fw, &items[i], (uint64_t)fw->limits->retry_cap_ms);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sg_outcomes_add(&fw->stats.outcomes, status, reason);
        fw->d.queue->ops->done(fw->d.queue, &items[i].ref, how);
        item_free(&items[i]);
    }
}

static void finish(struct sg_forwarder *fw, struct item *items, size_t n, const char *status,
                   const char *reason, long http_status, long code, const char *request_id)
{
    finish_as(fw, items, n, status, reason, http_status, code, request_id, SG_QUEUE_ACK);
}

/*
 * The forwarder lets go of an event without an outcome (shutdown, a dead letter that
 * failed): it stays in the local spool for the next start; a shared queue gets it back
 * at once (after delay_ms), for any instance to send.
 */
static void let_go(struct sg_forwarder *fw, struct item *it, uint64_t delay_ms)
{
    if (!fw->d.queue->ops->sends_own)
        fw->d.queue->ops->retry(fw->d.queue, &it->ref, delay_ms);
    item_free(it);
}

/* Not now: the local queue keeps it in the retry heap, a shared one gets it back (nak). */
static void requeue(struct sg_forwarder *fw, struct item *it, uint64_t due_ms)
{
    if (fw->d.queue->ops->sends_own) {
        it->due_ms = due_ms;
        heap_push(&fw->retry, it);
        return;
    }
    uint64_t now = sg_now_mono_ms();
    let_go(fw, it, due_ms > now ? due_ms - now : 0);
}

/* A dead-letter write on the worker's background thread (no disk wait on the loop). */
struct dead_job {
    struct sg_forwarder *fw;   /* touched on the loop only (a reload may rebind it meanwhile) */
    struct sg_deadletter *dead;
    char *site, *dest;         /* owned copies: the configuration may be freed meanwhile */
    struct item *items; /* owned */
    size_t n;
    char reason[64];
    long http_status, code;
    char request_id[80];
    bool kept;
};

static void dead_run(void *arg)
{
    struct dead_job *j = arg;
    struct sg_dead_event *evs = sg_xcalloc(j->n, sizeof(*evs));
    for (size_t i = 0; i < j->n; i++)
        evs[i] = (struct sg_dead_event){j->site, j->dest, j->items[i].event,
                                        j->items[i].event_id, j->items[i].json, j->items[i].len,
                                        j->items[i].attempts, j->items[i].first_ts};
    j->kept = sg_deadletter_write(j->dead, evs, j->n, j->reason, j->code, j->request_id) == 0;
    free(evs);
}

static void dead_done(void *arg)
{
    struct dead_job *j = arg;
    struct sg_forwarder *fw = j->fw;
    if (j->kept) {
        finish_as(fw, j->items, j->n, "failed", j->reason, j->http_status, j->code,
                  j->request_id, SG_QUEUE_TERM);
    } else {
        /* The dead letter did not take them: the events stay in the spool and get their
         * one outcome after the next start (a shared queue redelivers them later). */
        for (size_t i = 0; i < j->n; i++)
            let_go(fw, &j->items[i], (uint64_t)fw->limits->retry_cap_ms);
    }
    if (!j->kept)
        sg_warn("destination %s (site %s): %zu event(s) could not be dead-lettered; they stay "
                "in the spool until the next start",
                j->dest, j->site, j->n);
    fw->inflight -= j->n;
    if (j->kept)
        fw->d.queue->ops->kick(fw->d.queue);
    free(j->site);
    free(j->dest);
    free(j->items);
    free(j);
}

/* Bad requests and exhausted retries: durable in the dead letter first, then done.
 * Steals the n items (the array itself stays the caller's). */
static void dead_letter(struct sg_forwarder *fw, struct item *items, size_t n, const char *reason,
                        long http_status, long code, const char *request_id)
{
    struct dead_job *j = sg_xcalloc(1, sizeof(*j));
    j->fw = fw;
    j->dead = fw->d.dead;
    j->site = sg_xstrdup(fw->site->id);
    j->dest = sg_xstrdup(fw->dest->id);
    j->items = sg_xcalloc(n, sizeof(*items));
    memcpy(j->items, items, n * sizeof(*items));
    j->n = n;
    snprintf(j->reason, sizeof(j->reason), "%s", reason);
    j->http_status = http_status;
    j->code = code;
    snprintf(j->request_id, sizeof(j->request_id), "%s", request_id ? request_id : "");
    fw->inflight += n; /* drain and free wait for it */
    fw->d.queue->ops->background(fw->d.queue, dead_run, dead_done, j);
}

/* ---- timers ---- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_forwarder *fw = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    fw->timer_armed = false;
    /* Retries that are due go back to the ready queue. */
    uint64_t now = sg_now_mono_ms();
    while (fw->retry.n && fw->retry.v[0].due_ms <= now) {
        struct item it = heap_pop(&fw->retry);
        ring_push(&fw->ready, &it);
    }
    flush(fw);
}

/* Arm the timer for ms from now, unless it already fires sooner. */
static void arm(struct sg_forwarder *fw, uint64_t ms)
{
    uint64_t at = sg_now_mono_ms() + ms;
    if (fw->closing || (fw->timer_armed && fw->timer_at <= at))
        return;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(fw->timer, &tv);
    fw->timer_armed = true;
    fw->timer_at = at;
}

/* The earliest moment the destination may send again (pause or backoff), or 0. */
static uint64_t hold_until(const struct sg_forwarder *fw)
{
    return SG_MAX(fw->paused_until, fw->backoff_until);
}

/* The queue gauge of /metrics: an O(1) sum, stored whenever the queues change shape. */
static void note_queue(struct sg_forwarder *fw)
{
    size_t pending = sg_forwarder_pending(fw);
    atomic_store_explicit(&fw->stats.queued, pending, memory_order_relaxed);
    if (!fw->consumer)
        return;
    /* A shared queue's consumer pulls only what can leave soon: nothing while paused,
     * backing off or closing (the stream keeps it for another instance), else enough
     * for max_inflight full batches. */
    long credit = 0;
    size_t want = (size_t)fw->limits->max_inflight * fw->limits->batch_max_events;
    if (fw->closing || fw->retired || fw->draining || hold_until(fw) > sg_now_mono_ms())
        credit = 0;
    else if (fw->stats.paused) /* one event for the next probe, once the last one is done */
        credit = fw->requests == 0 && fw->ready.count == 0 ? 1 : 0;
    else if (pending < want)
        credit = (long)(want - pending);
    atomic_store_explicit(&fw->credit, credit, memory_order_relaxed);
}

/* Arm the timer for the next thing due: a batch, the earliest retry, the end of a hold. */
static void arm_next(struct sg_forwarder *fw)
{
    uint64_t now = sg_now_mono_ms(), hold = hold_until(fw);
    note_queue(fw);
    if (hold > now) {
        arm(fw, hold - now); /* nothing can go before */
        return;
    }
    if (fw->ready.count)
        arm(fw, fw->ready.count >= fw->limits->batch_max_events ? 0
                                                                 : (uint64_t)fw->limits->flush_interval_ms);
    if (fw->retry.n) {
        uint64_t due = fw->retry.v[0].due_ms;
        arm(fw, due > now ? due - now : 0);
    }
}

/* ---- lifecycle ---- */

static void deliver_cb(void *arg, struct sg_spool_entry *e, void *msg)
{
    sg_forwarder_deliver(arg, e, msg);
}

struct sg_forwarder *sg_forwarder_new(const struct sg_forwarder_deps *deps,
                                      const struct sg_site *site, const struct sg_dest_conf *dest,
                                      const struct sg_limits *limits)
{
    struct sg_forwarder *fw = sg_xcalloc(1, sizeof(*fw));
    fw->d = *deps;
    fw->site = site;
    fw->dest = dest;
    fw->limits = limits;
    fw->timer = evtimer_new(deps->base, timer_cb, fw);
    if (!fw->timer) {
        free(fw);
        return NULL;
    }
    if (deps->queue->ops->consume) {
        fw->consumer = deps->queue->ops->consume(deps->queue, site->id, dest->id, deliver_cb, fw,
                                                 &fw->credit);
        if (!fw->consumer) {
            event_free(fw->timer);
            free(fw);
            return NULL;
        }
        note_queue(fw); /* its first credit: the consumer's thread starts pulling */
    }
    return fw;
}

void sg_forwarder_free(struct sg_forwarder *fw)
{
    if (!fw)
        return;
    fw->closing = true;
    atomic_store(&fw->credit, 0);
    if (fw->consumer)
        fw->d.queue->ops->unconsume(fw->d.queue, fw->consumer);
    while (fw->staged.count) {
        struct item it = ring_pop(&fw->staged);
        item_free(&it);
    }
    while (fw->ready.count) {
        struct item it = ring_pop(&fw->ready);
        let_go(fw, &it, 0); /* still in the spool: replayed on the next start */
    }
    while (fw->retry.n) {
        struct item it = heap_pop(&fw->retry);
        let_go(fw, &it, 0);
    }
    event_free(fw->timer);
    free(fw->staged.v);
    free(fw->ready.v);
    free(fw->retry.v);
    free(fw);
}

bool sg_forwarder_has_room(const struct sg_forwarder *fw, size_t n)
{
    return !fw->closing && fw->staged.count + fw->ready.count + fw->retry.n + fw->inflight + n <=
                               fw->limits->queue_max_events;
}

const struct sg_forward_stats *sg_forwarder_stats(const struct sg_forwarder *fw)
{
    return &fw->stats;
}

const struct sg_site *sg_forwarder_site(const struct sg_forwarder *fw)
{
    return fw->site;
}

const struct sg_dest_conf *sg_forwarder_dest(const struct sg_forwarder *fw)
{
    return fw->dest;
}

int sg_forwarder_push(struct sg_forwarder *fw, const struct sg_event *ev, const char *rules)
{
    struct item it = {0};
    it.json = fw->dest->ops->format_event(ev);
    it.len = strlen(it.json);
    item_names(&it, ev->name, ev->event_id, rules, sg_ruleset_version(fw->site->rules));
    it.consent = ev->consent;
    it.first_ts = ev->ctx ? ev->ctx->now : sg_now_unix();
    struct sg_spool_entry e = {
        .site = (char *)fw->site->id, .dest = fw->dest->id, .event = it.event,
        .event_id = it.event_id,      .rules = it.rules,    .rule_set = it.rule_set,
        .json = it.json,              .json_len = it.len,   .consent = it.consent,
        .first_ts = it.first_ts,
    };
    if (fw->d.queue->ops->append(fw->d.queue, &e, &it.ref, &it.gen) < 0) {
        item_free(&it);
        return -1;
    }
    if (!fw->d.queue->ops->sends_own) {
        item_free(&it); /* the stream has it: a consumer of any instance will send it */
        return 0;
    }
    ring_push(&fw->staged, &it); /* sent only once the group commit made it durable */
    note_queue(fw);
    return 0;
}

void sg_forwarder_committed(struct sg_forwarder *fw, uint64_t gen, bool ok)
{
    size_t released = 0;
    while (fw->staged.count && fw->staged.v[fw->staged.head].gen <= gen) {
        struct item it = ring_pop(&fw->staged);
        if (!ok) {
            item_free(&it); /* answered 503: never sent, and no longer on disk */
            continue;
        }
        ring_push(&fw->ready, &it);
        released++;
    }
    if (!released || fw->closing)
        return;
    if (fw->dest->test_event_code)
        arm(fw, 0);
    else
        arm_next(fw);
}

void sg_forwarder_restore(struct sg_forwarder *fw, struct sg_spool_entry *e)
{
    sg_forwarder_deliver(fw, e, NULL);
}

void sg_forwarder_deliver(struct sg_forwarder *fw, struct sg_spool_entry *e, void *msg)
{
    struct item it = {0};
    it.json = e->json;
    it.len = e->json_len;
    item_names(&it, e->event, e->event_id, e->rules, e->rule_set);
    it.consent = e->consent;
    it.first_ts = e->first_ts;
    it.attempts = e->attempts;
    it.ref = (struct sg_queue_ref){e->ref.seg, e->ref.idx, msg};
    free(e->site);
    free(e->dest);
    free(e->event);
    free(e->event_id);
    free(e->rules);
    free(e->rule_set);
    memset(e, 0, sizeof(*e));
    ring_push(&fw->ready, &it);
    arm_next(fw);
}

void sg_forwarder_skip(struct sg_forwarder *fw, const struct sg_event *ev, const char *reason,
                       const char *rules)
{
    struct item it = {0};
    it.event = (char *)ev->name;
    it.event_id = ev->event_id;
    it.rules = (char *)rules;
    it.consent = ev->consent;
    record(fw, &it, "skipped", reason, 0, -1, NULL);
}

void sg_forwarder_skip_written(struct sg_forwarder *fw, const char *reason)
{
    sg_outcomes_add(&fw->stats.outcomes, "skipped", reason);
}

/* ---- retries ---- */

/* Full jitter: a uniform delay in [0, min(cap, base * 2^(attempt-1))]. */
static uint64_t backoff_ms(const struct sg_limits *l, uint32_t attempt)
{
    uint64_t ceiling = (uint64_t)l->retry_base_ms;
    for (uint32_t i = 1; i < attempt && ceiling < (uint64_t)l->retry_cap_ms; i++)
        ceiling *= 2;
    if (ceiling > (uint64_t)l->retry_cap_ms)
        ceiling = (uint64_t)l->retry_cap_ms;
    uint64_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = sg_now_mono_ms();
    return r % (ceiling + 1);
}

/*
 * The whole destination backs off when it throttles or fails: the next
 * request waits for a jittered delay that grows with consecutive failures,
 * so a throttling API gets one probe per delay instead of max_inflight
 * requests per flush. A success ends it.
 */
static void destination_backoff(struct sg_forwarder *fw)
{
    if (fw->backoff_step < 32)
        fw->backoff_step++;
    uint64_t half = (uint64_t)fw->limits->retry_base_ms / 2;
    fw->backoff_until = sg_now_mono_ms() + half + backoff_ms(fw->limits, fw->backoff_step);
    note_queue(fw); /* a shared queue's consumer stops pulling before the batch goes back */
}

static void schedule_retry(struct sg_forwarder *fw, struct batch *b, const char *reason,
                           long http_status, long code, const char *request_id)
{
    int64_t now = sg_now_unix();
    uint64_t delay = backoff_ms(fw->limits, b->items[0].attempts);
    struct item *expired = sg_xcalloc(b->n, sizeof(*expired));
    size_t n_expired = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (now - it->first_ts >= fw->limits->retry_give_up_s) {
            expired[n_expired++] = *it;
            continue;
        }
        fw->stats.retried++;
        requeue(fw, it, sg_now_mono_ms() + delay);
    }
    if (n_expired) {
        char why[64];
        snprintf(why, sizeof(why), "retries_exhausted:%s", reason);
        dead_letter(fw, expired, n_expired, why, http_status, code, request_id);
    }
    free(expired);
    sg_debug("destination %s: %zu event(s) retry in %llu ms (%s)", fw->dest->id,
             b->n - n_expired, (unsigned long long)delay, reason);
}

static void request_done(void *arg, const struct sg_http_result *res)
{
    struct batch *b = arg;
    struct sg_forwarder *fw = b->fw;
    struct sg_dest_reply reply;
    /* An over-cap reply was cut off: classify it by its status, as too large. */
    long status = res->curl_code == CURLE_OK || res->too_large ? res->status : 0;

    fw->inflight -= b->n;
    fw->requests--;
    if (res->curl_code == CURLE_ABORTED_BY_CALLBACK) {
        /* Shutting down: the events stay in the spool and are sent after the restart. */
        for (size_t i = 0; i < b->n; i++)
            let_go(fw, &b->items[i], 0);
        goto out;
    }
    fw->dest->ops->classify(status, res->body, res->body_len, &reply);
    if (res->curl_code == CURLE_OPERATION_TIMEDOUT)
        reply.reason = "timeout";
    if (res->too_large && status < 300) {
        reply.result = SG_DEST_RETRY;
        reply.reason = "response_too_large";
    }
    for (size_t i = 0; i < b->n; i++)
        b->items[i].attempts++;
    sg_histogram_observe(&fw->stats.duration, now_us() - b->started_us);
    /*
     * Any reply that is not a token error ends a pause: the token was taken (a
     * 5xx, a 429 or a bad request come after the authentication). Only no
     * reply at all (network error, timeout) says nothing about the token.
     */
    if (reply.result != SG_DEST_AUTH && status != 0 && fw->stats.paused) {
        fw->stats.paused = false;
        fw->paused_until = 0;
        sg_info("destination %s (site %s): token accepted again (%s); sending resumes",
                fw->dest->id, fw->site->id, reply.reason);
    }
    switch (reply.result) {
    case SG_DEST_OK:
    case SG_DEST_PARTIAL:
        fw->paused_until = 0;
        fw->backoff_until = 0;
        fw->backoff_step = 0;
        finish(fw, b->items, b->n, reply.result == SG_DEST_OK ? "accepted" : "partial_failure",
               reply.reason, status, reply.code, reply.request_id);
        break;
    case SG_DEST_AUTH:
        /* Keep everything and stop sending; probe again later. A refused probe is not a
         * new pause. */
        if (!fw->stats.paused)
            fw->stats.auth_pauses++;
        fw->stats.paused = true;
        fw->paused_until = sg_now_mono_ms() + (uint64_t)fw->limits->auth_probe_ms;
        note_queue(fw);
        sg_error("destination %s (site %s): access token refused (code %ld): paused, %zu event(s) "
                 "kept, next probe in %d ms; rotate the token",
                 fw->dest->id, fw->site->id, reply.code, b->n, fw->limits->auth_probe_ms);
        for (size_t i = 0; i < b->n; i++)
            requeue(fw, &b->items[i], fw->paused_until);
        break;
    case SG_DEST_RETRY:
        if (res->curl_code != CURLE_OK)
            sg_warn("destination %s: request failed (%s); will retry", fw->dest->id, res->error);
        destination_backoff(fw);
        schedule_retry(fw, b, reply.reason, status, reply.code, reply.request_id);
        break;
    case SG_DEST_FAIL:
        sg_warn("destination %s (site %s): %zu event(s) refused (code %ld, request %s): dead "
                "letter",
                fw->dest->id, fw->site->id, b->n, reply.code,
                reply.request_id[0] ? reply.request_id : "-");
        dead_letter(fw, b->items, b->n, reply.reason, status, reply.code, reply.request_id);
        break;
    }
    /* The acks buffered above are written and synced by the worker's group commit. */
    fw->d.queue->ops->kick(fw->d.queue);
out:
    free(b->items);
    free(b);
    if (!fw->closing)
        arm_next(fw);
}

/*
 * Show what a dry run would have sent. The body is scrubbed, but values that
 * leave raw with consent (user agent, click ids, locale, URL queries) still
 * do not belong in a log: they are shown by length only. Not a hot path.
 */
static void log_dry_run(struct sg_forwarder *fw, struct sg_buf *body, size_t n)
{
    static const char *const raw_keys[] = {"user_agent", "ttclid", "ttp", "locale"};
    static const char *const url_keys[] = {"url", "referrer"};
    json_t *doc = json_loadb(body->data, body->len, 0, NULL), *ev;
    size_t i;
    json_array_foreach(json_object_get(doc, "data"), i, ev) {
        /* A consented click id may stay in a URL's query: show the query's size only. */
        json_t *page = json_object_get(ev, "page");
        for (size_t k = 0; k < SG_ARRAY_SIZE(url_keys); k++) {
            json_t *v = json_object_get(page, url_keys[k]);
            const char *u = json_string_value(v);
            const char *q = u ? strpbrk(u, "?#") : NULL;
            if (q)
                json_object_set_new(page, url_keys[k],
                                    json_sprintf("%.*s(+%zu bytes of query)", (int)(q - u), u,
                                                 strlen(q)));
        }
        json_t *user = json_object_get(ev, "user");
        for (size_t k = 0; k < SG_ARRAY_SIZE(raw_keys); k++) {
            json_t *v = json_object_get(user, raw_keys[k]);
            if (json_is_string(v))
                json_object_set_new(user, raw_keys[k],
                                    json_sprintf("(%zu bytes)", json_string_length(v)));
        }
    }
    char *shown =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    sg_info("dry-run %s (site %s): would POST %zu event(s) to %s: %s", fw->dest->id,
            fw->site->id, n, fw->dest->url, shown ? shown : "(unprintable)");
    free(shown);
    json_decref(doc);
}

static void send_batch(struct sg_forwarder *fw, struct batch *b)
{
    const char *evs[1000];
    size_t lens[1000];
    struct sg_buf body;
    bool test = fw->dest->test_event_code != NULL;

    sg_buf_init(&body, 0);
    for (size_t i = 0; i < b->n; i++) {
        evs[i] = b->items[i].json;
        lens[i] = b->items[i].len;
    }
    fw->dest->ops->build_body(fw->dest, evs, lens, b->n, test, &body);
    fw->inflight += b->n;
    fw->requests++;
    if (fw->dest->dry_run) {
        log_dry_run(fw, &body, b->n);
        sg_buf_release(&body);
        finish(fw, b->items, b->n, "skipped", "dry_run", 0, -1, NULL);
        fw->inflight -= b->n;
        fw->requests--;
        free(b->items);
        free(b);
        return;
    }
    if (fw->d.queue->ops->sending)
        for (size_t i = 0; i < b->n; i++)
            fw->d.queue->ops->sending(fw->d.queue, &b->items[i].ref);
    size_t len;
    char *data = sg_buf_detach(&body, &len);
    b->started_us = now_us();
    struct curl_slist *hdrs = fw->dest->ops->headers(fw->dest);
    if (!hdrs || sg_http_post(fw->d.http, fw->dest->url, hdrs, data, len,
                              fw->limits->upstream_timeout_ms, request_done, b) < 0) {
        struct sg_http_result res = {.curl_code = CURLE_FAILED_INIT, .error = "cannot start"};
        if (!hdrs)
            free(data);
        request_done(b, &res);
    }
}

static void flush(struct sg_forwarder *fw)
{
    size_t max = fw->dest->test_event_code ? 1 : fw->limits->batch_max_events;
    uint64_t now = sg_now_mono_ms();
    if (hold_until(fw) > now) {
        arm_next(fw);
        return;
    }
    /* While paused by a token error, one probe request at a time. */
    size_t limit = fw->stats.paused ? 1 : fw->limits->max_inflight, sent = 0;
    while (fw->ready.count && fw->requests < limit) {
        sent++;
        struct batch *b = sg_xcalloc(1, sizeof(*b));
        b->fw = fw;
        b->n = SG_MIN(fw->ready.count, max);
        b->items = sg_xcalloc(b->n, sizeof(struct item));
        for (size_t i = 0; i < b->n; i++)
            b->items[i] = ring_pop(&fw->ready);
        send_batch(fw, b);
    }
    /* A shared queue holds a paused destination's events in the stream: the pause restarts
     * with a probe sent, or the consumer would never pull the event that probes. */
    if (fw->stats.paused && (sent || fw->d.queue->ops->sends_own))
        fw->paused_until = now + (uint64_t)fw->limits->auth_probe_ms;
    arm_next(fw);
}

void sg_forwarder_rebind(struct sg_forwarder *fw, const struct sg_site *site,
                         const struct sg_dest_conf *dest, const struct sg_limits *limits)
{
    fw->site = site;
    fw->dest = dest;
    fw->limits = limits;
    arm_next(fw);
}

void sg_forwarder_retire(struct sg_forwarder *fw, bool retired)
{
    fw->retired = retired;
    note_queue(fw);
}

/* A shared queue takes back what the forwarder cannot send now: another instance may. */
static void give_back(struct sg_forwarder *fw)
{
    while (fw->ready.count) {
        struct item it = ring_pop(&fw->ready);
        let_go(fw, &it, 0);
    }
    while (fw->retry.n) {
        struct item it = heap_pop(&fw->retry);
        let_go(fw, &it, 0);
    }
    note_queue(fw);
}

size_t sg_forwarder_drain(struct sg_forwarder *fw)
{
    fw->draining = true; /* a shared queue's consumer stops pulling (note_queue) */
    flush(fw);
    if (!fw->d.queue->ops->sends_own && hold_until(fw) > sg_now_mono_ms())
        give_back(fw); /* backing off or paused: shutdown does not wait for the end of it */
    /* A destination paused by a token error cannot send: its events wait in the spool,
     * so shutdown does not wait for them. */
    return (fw->stats.paused ? 0 : fw->ready.count) + fw->staged.count + fw->inflight;
}

/*
 * Events the forwarder still holds: ready, waiting to retry (a token pause
 * included) or in flight. 0 means freeing it drops nothing and leaves no
 * callback pointing at it (a retired forwarder of a reload is freed then).
 */
size_t sg_forwarder_pending(const struct sg_forwarder *fw)
{
    return fw->staged.count + fw->ready.count + fw->retry.n + fw->inflight;
}

void sg_forwarder_abandon(struct sg_forwarder *fw, const char *reason)
{
    size_t n = fw->ready.count + fw->retry.n;
    if (!n)
        return;
    if (!fw->d.queue->ops->sends_own) {
        /* Instances that still configure the destination (a rolling change) send them; if
         * none does, they wait in the stream until it is configured again. */
        sg_warn("destination %s (site %s) was removed by a reload: %zu event(s) it held go back "
                "to the stream",
                fw->dest->id, fw->site->id, n);
        give_back(fw);
        return;
    }
    struct item *items = sg_xcalloc(n, sizeof(*items));
    size_t k = 0;
    while (fw->ready.count)
        items[k++] = ring_pop(&fw->ready);
    while (fw->retry.n)
        items[k++] = heap_pop(&fw->retry);
    sg_warn("destination %s (site %s) was removed by a reload: %zu event(s) it still held go to "
            "the dead letter (%s)",
            fw->dest->id, fw->site->id, n, reason);
    dead_letter(fw, items, n, reason, 0, -1, NULL);
    free(items);
}
