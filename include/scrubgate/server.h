/*
 * server.h - the serve command: N worker threads, each with its own event
 * loop, HTTP server on a SO_REUSEPORT socket, HTTP client and forwarders.
 * Workers share only read-only configuration and the sync log (see
 * docs/ARCHITECTURE.md for why).
 */
#ifndef SCRUBGATE_SERVER_H
#define SCRUBGATE_SERVER_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <pthread.h>

struct sg_deadletter;
struct sg_forwarder;
struct sg_http;
struct sg_spool;
struct sg_synclog;

/* A 202 waiting for the group commit that makes its events durable. */
struct sg_pending_reply {
    struct evhttp_request *req;   /* borrowed from evhttp until the reply or the close */
    struct evhttp_connection *conn;
    char *body;                   /* owned */
    uint64_t gen;                 /* the write generation holding its events; 0 = not written */
};

/*
 * fdatasync runs on a per-worker thread so the loop keeps serving while the
 * disk works: the loop writes a generation of records, hands a dup of the
 * descriptor to the syncer, and answers that generation's requests when the
 * sync returns. Requests arriving meanwhile form the next, larger group.
 */
struct sg_syncer {
    pthread_t thread;
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

struct sg_worker {
    int index;
    const struct sg_config *cfg; /* borrowed, read-only */
    struct sg_synclog *log;      /* borrowed, shared */
    struct sg_deadletter *dead;  /* borrowed, shared */
    struct sg_spool *spool;      /* owned: this worker's spool */
    struct sg_pending_reply *pending;
    size_t n_pending, cap_pending;
    struct event *commit_ev;     /* group commit: write, then hand the sync to the syncer */
    bool commit_armed;
    uint64_t gen_written;        /* the last generation written */
    struct sg_syncer syncer;
    bool syncer_started;
    struct evhttp *admin;        /* worker 0 only: the admin listener */
    struct event_base *base;
    struct evhttp *http;
    struct sg_http *client;
    struct sg_forwarder **fw;    /* per site: fw[site_offset[s] + d] */
    struct sg_forwarder **retired; /* destinations a reload removed: they finish their queue */
    size_t n_retired;
    struct event *reload_ev;     /* SIGHUP: switch to reload_cfg on this loop */
    const struct sg_config *reload_cfg;
    pthread_mutex_t reload_lock;
    size_t *site_offset;
    size_t n_fw;
    struct event *stop_ev;
    struct event *drain_timer;
    struct event *accept_resume;   /* re-enables accepting after a pause on EMFILE */
    struct evconnlistener *listener; /* borrowed from evhttp */
    struct evhttp_bound_socket *bound; /* borrowed from evhttp */
    uint64_t last_accept_warning;
    bool stopping;                 /* SIGTERM seen: new requests get 503 */
    uint64_t drain_deadline;
    pthread_t thread;
};

/* Run the proxy until SIGTERM or SIGINT. Returns the process exit status. */
int sg_server_run(struct sg_config *cfg);

/* The forwarder of a site's d-th destination on this worker. */
struct sg_forwarder *sg_worker_forwarder(struct sg_worker *w, const struct sg_site *site,
                                         size_t d);

/*
 * Answer req with 202 and body (steals it) once the spool has been committed;
 * if the commit fails, the request is answered 503 instead.
 */
void sg_worker_defer_reply(struct sg_worker *w, struct evhttp_request *req, char *body);

/* All workers, for the admin listener (read-only, counters are atomic). */
struct sg_workers {
    struct sg_worker *v;
    int n;
};

/* The ingest endpoint's request handler (ingest.c). */
void sg_ingest_handle(struct evhttp_request *req, void *worker);

#endif
