/*
 * commit.c - group commit and the worker's background thread. See commit.h.
 *
 * The loop writes a generation of records (sg_spool_write) and queues its
 * fdatasync as a job; the thread runs jobs in order and hands each back to
 * the loop (an event activated from the thread), where the spool settles
 * it and the deferred replies of that generation get their 202, or their
 * 503 when the write or the sync failed. While a sync runs, new requests
 * buffer the next generation: one write and one sync serve them all.
 */
#include "scrubgate/common.h"
#include "scrubgate/commit.h"
#include "scrubgate/ingest.h"
#include "scrubgate/log.h"
#include "scrubgate/spool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 202 waiting for the group commit that makes its events durable. */
struct pending {
    struct sg_http_req *req;   /* borrowed from the server; NULL once its client left */
    char *body;                   /* owned */
    uint64_t gen;                 /* the spool generation holding its events */
    char site[65];                /* the request's site id, for the reply counters */
};

struct job {
    sg_commit_job_fn *run, *done;
    void *arg;
    struct job *next;
};

struct sg_commit {
    struct sg_spool *spool;
    sg_commit_done_fn *done;
    void *done_arg;
    struct pending *pending;
    size_t n_pending, cap_pending;
    struct event *commit_ev;      /* a write round, soon */
    struct event *retry_ev;       /* a write round after a pause (acks that could not be written) */
    struct event *probe_ev;       /* while the spool is failing: probe the disk each second */
    bool probing;
    bool probe_ok;
    bool commit_armed;
    bool syncing;                 /* a spool job is queued or running */
    struct sg_spool_job sync;     /* that job */

    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *todo, **todo_tail; /* for the thread */
    struct job *finished, **finished_tail; /* back to the loop */
    bool quit;
    struct event *finished_ev;    /* activated (thread-safe) when a job finishes */
};

static void arm_probe(struct sg_commit *c)
{
    struct timeval tv = {1, 0};
    if (!c->probing)
        evtimer_add(c->probe_ev, &tv);
}

/* Generations up to gen are settled: answer their requests and tell the owner. */
static void settle(struct sg_commit *c, uint64_t gen, bool ok)
{
    if (!ok)
        arm_probe(c); /* /healthz must not wait for a request to find the disk healthy again */
    for (size_t i = 0; i < c->n_pending;) {
        struct pending *p = &c->pending[i];
        if (p->gen > gen) {
            i++;
            continue;
        }
        if (p->req)
            sg_ingest_answer(p->req, p->site, ok, p->body,
                             "{\"error\":\"spool unavailable, retry later\"}");
        free(p->body);
        c->pending[i] = c->pending[--c->n_pending];
    }
    c->done(c->done_arg, gen, ok);
}

static void *thread_main(void *arg)
{
    struct sg_commit *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->todo && !c->quit)
            pthread_cond_wait(&c->cond, &c->lock);
        struct job *j = c->todo;
        if (!j)
            break; /* quit, and nothing left to do */
        c->todo = j->next;
        if (!c->todo)
            c->todo_tail = &c->todo;
        pthread_mutex_unlock(&c->lock);
        j->run(j->arg);
        pthread_mutex_lock(&c->lock);
        j->next = NULL;
        *c->finished_tail = j;
        c->finished_tail = &j->next;
        event_active(c->finished_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

void sg_commit_background(struct sg_commit *c, sg_commit_job_fn *run, sg_commit_job_fn *done,
                          void *arg)
{
    struct job *j = sg_xcalloc(1, sizeof(*j));
    j->run = run;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&c->lock);
    *c->todo_tail = j;
    c->todo_tail = &j->next;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Back on the loop: run the done callbacks of finished jobs, in order. */
static void finished_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_commit *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    pthread_mutex_lock(&c->lock);
    struct job *j = c->finished;
    c->finished = NULL;
    c->finished_tail = &c->finished;
    pthread_mutex_unlock(&c->lock);
    while (j) {
        struct job *next = j->next;
        j->done(j->arg);
        free(j);
        j = next;
    }
}

static void sync_run(void *arg)
{
    struct sg_commit *c = arg;
    sg_spool_job_run(&c->sync);
}

static void sync_done(void *arg)
{
    struct sg_commit *c = arg;
    uint64_t gen = c->sync.gen;
    uint64_t failed = sg_spool_job_done(c->spool, &c->sync);
    c->syncing = false;
    if (failed)
        settle(c, failed, false);
    else if (gen)
        settle(c, gen, true);
    if (c->n_pending || sg_spool_dirty(c->spool)) {
        sg_commit_kick(c);
    } else if (sg_spool_acks_blocked(c->spool)) {
        struct timeval tv = {1, 0};
        evtimer_add(c->retry_ev, &tv);
    }
}

/*
 * While the spool is failing and no request comes to try it, a probe on the
 * background thread checks the disk each second, so /healthz recovers by
 * itself: a load balancer that stops sending requests to a degraded
 * instance would otherwise never see it healthy again.
 */
static void probe_run(void *arg)
{
    struct sg_commit *c = arg;
    c->probe_ok = sg_spool_probe(c->spool) == 0;
}

static void probe_done(void *arg)
{
    struct sg_commit *c = arg;
    c->probing = false;
    if (!sg_spool_failing(c->spool))
        return;
    if (c->probe_ok)
        sg_spool_set_healthy(c->spool);
    else
        arm_probe(c);
}

static void probe_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_commit *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    if (!sg_spool_failing(c->spool))
        return;
    c->probing = true;
    sg_commit_background(c, probe_run, probe_done, c);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    SG_UNUSED(fd);
    SG_UNUSED(what);
    sg_commit_kick(arg);
}

/*
 * Write what the requests of this loop turn buffered and queue its sync,
 * unless a sync is running: then the next round, when it ends, covers them.
 */
static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_commit *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    c->commit_armed = false;
    if (c->syncing)
        return; /* sync_done kicks again */
    if (sg_spool_write(c->spool, &c->sync) == SG_SPOOL_FAILED) {
        uint64_t failed = sg_spool_job_done(c->spool, &c->sync);
        settle(c, failed ? failed : c->sync.gen, false);
        return;
    }
    c->syncing = true;
    sg_commit_background(c, sync_run, sync_done, c);
}

/* A client that left before its reply: its events stay spooled and are sent. */
static void conn_close_cb(struct sg_http_req *req, void *arg)
{
    struct sg_commit *c = arg;
    for (size_t i = 0; i < c->n_pending; i++)
        if (c->pending[i].req == req)
            c->pending[i].req = NULL;
}

size_t sg_commit_waiting(const struct sg_commit *c)
{
    return c->n_pending + (c->syncing ? 1 : 0);
}

void sg_commit_kick(struct sg_commit *c)
{
    if (!c->commit_armed) {
        c->commit_armed = true;
        /* Runs after the callbacks already due in this loop turn: they share the fdatasync. */
        event_active(c->commit_ev, EV_READ, 0);
    }
}

void sg_commit_defer(struct sg_commit *c, struct sg_http_req *req, const char *site,
                     char *body)
{
    if (c->n_pending == c->cap_pending) {
        c->cap_pending = c->cap_pending ? c->cap_pending * 2 : 64;
        c->pending = sg_xrealloc(c->pending, c->cap_pending * sizeof(*c->pending));
    }
    sg_http_on_close(req, conn_close_cb, c);
    struct pending *p = &c->pending[c->n_pending++];
    *p = (struct pending){req, body, sg_spool_gen(c->spool), ""};
    snprintf(p->site, sizeof(p->site), "%s", site);
    sg_commit_kick(c);
}

struct sg_commit *sg_commit_new(struct event_base *base, struct sg_spool *spool,
                                sg_commit_done_fn *done, void *arg)
{
    struct sg_commit *c = sg_xcalloc(1, sizeof(*c));
    c->spool = spool;
    c->done = done;
    c->done_arg = arg;
    c->todo_tail = &c->todo;
    c->finished_tail = &c->finished;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->commit_ev = event_new(base, -1, 0, commit_cb, c);
    c->finished_ev = event_new(base, -1, 0, finished_cb, c);
    c->retry_ev = evtimer_new(base, retry_cb, c);
    c->probe_ev = evtimer_new(base, probe_cb, c);
    if (!c->commit_ev || !c->finished_ev || !c->retry_ev || !c->probe_ev ||
        pthread_create(&c->thread, NULL, thread_main, c) != 0) {
        sg_error("cannot start a background thread");
        sg_commit_free(c);
        return NULL;
    }
    c->started = true;
    return c;
}

void sg_commit_free(struct sg_commit *c)
{
    if (!c)
        return;
    if (c->started) {
        pthread_mutex_lock(&c->lock);
        c->quit = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL); /* it runs what is queued first */
    }
    finished_cb(-1, 0, c);
    /* The last records and acks, synchronously: the loop has ended. */
    uint64_t gen = sg_spool_gen(c->spool);
    settle(c, gen, sg_spool_commit(c->spool) == 0);
    for (size_t i = 0; i < c->n_pending; i++)
        free(c->pending[i].body);
    free(c->pending);
    if (c->commit_ev)
        event_free(c->commit_ev);
    if (c->finished_ev)
        event_free(c->finished_ev);
    if (c->retry_ev)
        event_free(c->retry_ev);
    if (c->probe_ev)
        event_free(c->probe_ev);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}
