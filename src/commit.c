/*
 * commit.c - group commit with fdatasync on a background thread. See
 * commit.h for the contract.
 */
#include "scrubgate/common.h"
#include "scrubgate/commit.h"
#include "scrubgate/log.h"
#include "scrubgate/spool.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A 202 waiting for the group commit that makes its events durable. */
struct pending {
    struct evhttp_request *req;   /* borrowed from evhttp until the reply or the close */
    struct evhttp_connection *conn;
    char *body;                   /* owned */
    uint64_t gen;                 /* the write generation holding its events; 0 = not written */
};

struct sg_commit {
    struct sg_spool *spool;
    sg_commit_done_fn *done;
    void *done_arg;
    struct pending *pending;
    size_t n_pending, cap_pending;
    struct event *commit_ev;      /* write, then hand the sync to the thread */
    bool commit_armed;
    uint64_t gen_written;

    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int fd;                 /* to sync, -1 when idle */
    uint64_t gen;           /* the generation fd's sync makes durable */
    uint64_t done_gen;      /* the last generation made durable */
    bool failed;            /* a sync failed: the spool is broken */
    bool busy;              /* a job is queued or running */
    bool quit;
    struct event *done_ev;  /* activated (thread-safe) when a sync finishes */
};

static void send_body(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf) {
        evbuffer_add(buf, body, strlen(body));
        evbuffer_add(buf, "\n", 1);
    }
    evhttp_send_reply(req, code, reason, buf);
    if (buf)
        evbuffer_free(buf);
}

/* Answer the deferred requests whose generation is durable (or fail them all). */
static void answer(struct sg_commit *c, uint64_t durable, bool failed)
{
    for (size_t i = 0; i < c->n_pending;) {
        struct pending *p = &c->pending[i];
        if (!failed && (p->gen == 0 || p->gen > durable)) {
            i++;
            continue;
        }
        if (!failed) {
            send_body(p->req, 202, "Accepted", p->body);
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(p->req), "Retry-After", "1");
            send_body(p->req, 503, "Service Unavailable",
                      "{\"error\":\"spool unavailable, retry later\"}");
        }
        free(p->body);
        c->pending[i] = c->pending[--c->n_pending];
    }
}

static void *syncer_main(void *arg)
{
    struct sg_commit *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (c->fd < 0 && !c->quit)
            pthread_cond_wait(&c->cond, &c->lock);
        if (c->fd < 0 && c->quit)
            break;
        int fd = c->fd;
        uint64_t gen = c->gen;
        pthread_mutex_unlock(&c->lock);
        int rc = fdatasync(fd);
        int err = errno;
        close(fd);
        pthread_mutex_lock(&c->lock);
        if (rc < 0) {
            sg_error("spool: fdatasync failed: %s; refusing new events", strerror(err));
            c->failed = true;
        }
        c->done_gen = gen;
        c->fd = -1;
        event_active(c->done_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_commit *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    c->commit_armed = false;
    pthread_mutex_lock(&c->lock);
    bool busy = c->busy;
    pthread_mutex_unlock(&c->lock);
    if (busy)
        return; /* sync_done_cb runs this again when the current sync ends */
    if (sg_spool_write(c->spool) < 0) {
        answer(c, 0, true);
        return;
    }
    uint64_t gen = ++c->gen_written;
    for (size_t i = 0; i < c->n_pending; i++)
        if (c->pending[i].gen == 0)
            c->pending[i].gen = gen;
    int sfd = sg_spool_take_sync(c->spool);
    if (sfd < 0) {
        answer(c, gen, false); /* nothing unsynced: already durable */
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->fd = sfd;
    c->gen = gen;
    c->busy = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void sync_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_commit *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    pthread_mutex_lock(&c->lock);
    uint64_t durable = c->done_gen;
    bool failed = c->failed;
    c->busy = false;
    pthread_mutex_unlock(&c->lock);
    if (failed)
        sg_spool_set_broken(c->spool);
    answer(c, durable, failed);
    if (c->n_pending || sg_spool_pending_bytes(c->spool))
        sg_commit_kick(c);
}

/* A client that left before its 202: its events are spooled all the same. */
static void conn_close_cb(struct evhttp_connection *conn, void *arg)
{
    struct sg_commit *c = arg;
    for (size_t i = 0; i < c->n_pending;) {
        if (c->pending[i].conn == conn) {
            free(c->pending[i].body);
            c->pending[i] = c->pending[--c->n_pending];
        } else {
            i++;
        }
    }
}

void sg_commit_kick(struct sg_commit *c)
{
    if (!c->commit_armed) {
        c->commit_armed = true;
        /* Runs after the callbacks already due in this loop turn: they share the fdatasync. */
        event_active(c->commit_ev, EV_READ, 0);
    }
}

void sg_commit_defer(struct sg_commit *c, struct evhttp_request *req, char *body)
{
    if (c->n_pending == c->cap_pending) {
        c->cap_pending = c->cap_pending ? c->cap_pending * 2 : 64;
        c->pending = sg_xrealloc(c->pending, c->cap_pending * sizeof(*c->pending));
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(conn, conn_close_cb, c);
    c->pending[c->n_pending++] = (struct pending){req, conn, body, 0};
    sg_commit_kick(c);
}

struct sg_commit *sg_commit_new(struct event_base *base, struct sg_spool *spool,
                                sg_commit_done_fn *done, void *arg)
{
    struct sg_commit *c = sg_xcalloc(1, sizeof(*c));
    c->spool = spool;
    c->done = done;
    c->done_arg = arg;
    c->fd = -1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->commit_ev = event_new(base, -1, 0, commit_cb, c);
    c->done_ev = event_new(base, -1, 0, sync_done_cb, c);
    if (!c->commit_ev || !c->done_ev || pthread_create(&c->thread, NULL, syncer_main, c) != 0) {
        sg_error("cannot start a sync thread");
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
        pthread_join(c->thread, NULL);
    }
    sg_spool_commit(c->spool); /* the last acks */
    for (size_t i = 0; i < c->n_pending; i++)
        free(c->pending[i].body);
    free(c->pending);
    if (c->commit_ev)
        event_free(c->commit_ev);
    if (c->done_ev)
        event_free(c->done_ev);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}
