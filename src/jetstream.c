/*
 * jetstream.c - the shared queue over NATS JetStream. See jetstream.h and
 * docs/SCALING.md. What it does not do: hold events of its own. A publish
 * the stream did not acknowledge is answered 503, never 202 from a buffer.
 */
#include "scrubgate/common.h"
#include "scrubgate/http.h"
#include "scrubgate/ingest.h"
#include "scrubgate/jetstream.h"
#include "scrubgate/log.h"
#include "scrubgate/spool.h"

#include <event2/event.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DUP_WINDOW_NS (120LL * 1000000000LL) /* TikTok dedups event_id; the stream, 2 minutes */
#define PUB_WINDOW 8192                     /* publishes awaiting their ack, per worker */
#define PUB_WAIT_MS 1000                    /* a publish's own ack timeout (libnats) */
#define ANSWER_MS 900                       /* a request without every ack by then: 503 */
#define TICK_MS 50
#define FETCH_MAX 256
#define FETCH_WAIT_MS 500
#define API_WAIT_MS 500 /* a JetStream API call from a pull thread (libnats's default: 5 s) */
#define STR_(x) #x
#define STR(x) STR_(x)

struct sg_jetstream {
    natsConnection *nc;
    char *stream;
    int64_t ack_wait_ns; /* sg_jetstream_ack_wait_ns() of the configuration at the start */
    int replicas;
    _Atomic bool connected;
    /* Publishes: the last acked and the last failed (monotonic ms), for failing(). */
    _Atomic uint64_t pub_ok_ms, pub_fail_ms;
    _Atomic uint64_t warn_s;   /* the second of the last "publish not acknowledged" line */
    _Atomic unsigned long warn_skipped;
    _Atomic bool stream_lost;  /* a publish found no stream: the pull threads create it again */
    _Atomic bool stream_bad;   /* it exists with settings that could drop events: 503 */
    _Atomic uint64_t ensure_ms; /* the last attempt at that (one a second, all threads) */
    _Atomic unsigned stream_gen; /* another stream was seen this many times (note_stream) */
    _Atomic int64_t stream_created; /* the creation time of the stream last seen */
    _Atomic bool closing;
    pthread_mutex_t close_mu; /* closed: set by closed_cb() */
    pthread_cond_t close_cv;
    bool closed;
};

#define UNUSABLE_MS 10000 /* a failed publish newer than any acked one: /healthz degraded */

bool sg_jetstream_available(void)
{
    return true;
}

/* ---- connection and setup ---- */

/* A server URL for a log line: user and password (nats://user:pass@host) never appear, even
 * when the password holds an '@', '/', '?' or '#' (libnats takes them as they are): the host
 * is what follows the last '@' of the URL. */
static void redact_url(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://"), *at = scheme ? strrchr(scheme + 3, '@') : NULL;
    if (at)
        snprintf(out, cap, "%.*s***%s", (int)(scheme + 3 - url), url, at);
    else
        snprintf(out, cap, "%s", url);
}

static void disconnected_cb(natsConnection *nc, void *arg)
{
    struct sg_jetstream *js = arg;
    SG_UNUSED(nc);
    atomic_store(&js->connected, false);
    if (!atomic_load(&js->closing))
        sg_warn("jetstream: connection to NATS lost; ingest answers 503 until it is back");
}

/* libnats's last callback of a connection (its callbacks run in order on its own thread):
 * sg_jetstream_free() waits for it before freeing what the callbacks use. */
static void closed_cb(natsConnection *nc, void *arg)
{
    struct sg_jetstream *js = arg;
    SG_UNUSED(nc);
    pthread_mutex_lock(&js->close_mu);
    js->closed = true;
    pthread_cond_signal(&js->close_cv);
    pthread_mutex_unlock(&js->close_mu);
}

static void reconnected_cb(natsConnection *nc, void *arg)
{
    struct sg_jetstream *js = arg;
    char url[256] = "", shown[300];
    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    redact_url(url, shown, sizeof(shown));
    atomic_store(&js->connected, true);
    sg_info("jetstream: reconnected to %s", shown);
}

static int nats_fail(const char *what, natsStatus s, jsErrCode jerr)
{
    return sg_error("jetstream: %s: %s (status %d, JetStream error %d)", what,
                    natsStatus_GetText(s), (int)s, (int)jerr);
}

/* The stream seen now: another one than the last seen (removed and created again, by us or
 * anyone) has none of the consumers, which the pull threads then create (stream_gen). */
static void note_stream(struct sg_jetstream *js, int64_t created)
{
    int64_t last = atomic_exchange(&js->stream_created, created);
    if (last && last != created)
        atomic_fetch_add(&js->stream_gen, 1);
}

/* Create the stream, or check the one there: 0, -1 on an API error, -2 when it exists with
 * settings that could lose an accepted event (logged). quiet: no line for a good one. */
static int ensure_stream(struct sg_jetstream *js, jsCtx *ctx, int replicas, bool quiet)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, ctx, js->stream, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamConfig *c = si->Config;
        const char *bad = NULL;
        char want[64], got[64];
        note_stream(js, si->Created);
        if (c->Storage != js_FileStorage) {
            bad = "storage";
            snprintf(want, sizeof(want), "file");
            snprintf(got, sizeof(got), "memory");
        } else if (c->Replicas != replicas) {
            bad = "replicas";
            snprintf(want, sizeof(want), "%d", replicas);
            snprintf(got, sizeof(got), "%lld", (long long)c->Replicas);
        } else if (c->Duplicates != DUP_WINDOW_NS) {
            bad = "duplicate window";
            snprintf(want, sizeof(want), "120 s");
            snprintf(got, sizeof(got), "%lld s", (long long)(c->Duplicates / 1000000000LL));
        } else if (c->Retention != js_WorkQueuePolicy) {
            bad = "retention";
            snprintf(want, sizeof(want), "workqueue");
            snprintf(got, sizeof(got), "%s",
                     c->Retention == js_LimitsPolicy ? "limits" : "interest");
        } else if (c->MaxMsgs > 0 || c->MaxBytes > 0 || c->MaxAge > 0 ||
                   c->MaxMsgsPerSubject > 0 || c->MaxMsgSize > 0) {
            /* Any limit drops (discard old) or refuses (discard new) an event once reached:
             * an accepted event is never dropped, and the stream only holds the backlog. */
            bad = c->MaxMsgs > 0 ? "max_msgs" : c->MaxBytes > 0 ? "max_bytes"
                  : c->MaxAge > 0 ? "max_age" : c->MaxMsgsPerSubject > 0 ? "max_msgs_per_subject"
                  : "max_msg_size";
            snprintf(want, sizeof(want), "unlimited");
            snprintf(got, sizeof(got), "%lld",
                     (long long)(c->MaxMsgs > 0 ? c->MaxMsgs : c->MaxBytes > 0 ? c->MaxBytes
                                 : c->MaxAge > 0 ? c->MaxAge : c->MaxMsgsPerSubject > 0
                                 ? c->MaxMsgsPerSubject : (int64_t)c->MaxMsgSize));
        } else if (c->SubjectsLen != 1 || strcmp(c->Subjects[0], "scrubgate.>") != 0) {
            bad = "subjects";
            snprintf(want, sizeof(want), "scrubgate.>");
            snprintf(got, sizeof(got), "%.50s%s", c->SubjectsLen ? c->Subjects[0] : "(none)",
                     c->SubjectsLen > 1 ? ",..." : "");
        }
        jsStreamInfo_Destroy(si);
        if (bad) {
            sg_error("jetstream: stream %s exists with another %s (%s, configured: %s); "
                     "fix the configuration or the stream (nats stream edit/rm)",
                     js->stream, bad, got, want);
            return -2;
        }
        if (!quiet)
            sg_info("jetstream: stream %s adopted (file storage, workqueue retention, %d "
                    "replica(s), 2-minute duplicate window)",
                    js->stream, replicas);
        return 0;
    }
    if (jerr != JSStreamNotFoundErr && s != NATS_NOT_FOUND)
        return nats_fail("stream info", s, jerr);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {"scrubgate.>"};
    cfg.Name = js->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    /* An acked event is removed: the stream holds only what waits for delivery. Every
     * destination's durable filters on its own subject (no overlap, as WorkQueue requires). */
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Replicas = replicas;
    cfg.Duplicates = DUP_WINDOW_NS;
    s = js_AddStream(&si, ctx, &cfg, NULL, &jerr);
    if (s != NATS_OK)
        return nats_fail("cannot create the stream", s, jerr);
    note_stream(js, si->Created);
    jsStreamInfo_Destroy(si);
    sg_info("jetstream: stream %s created (file storage, workqueue retention, %d replica(s), "
            "2-minute duplicate window)",
            js->stream, replicas);
    return 0;
}

/* Why an existing consumer cannot serve as the destination's, or NULL. */
static const char *consumer_mismatch(const jsConsumerConfig *c, const char *subject)
{
    if (c->DeliverSubject && *c->DeliverSubject)
        return "delivery (push, want pull)";
    if (c->AckPolicy != js_AckExplicit)
        return "ack_policy (want explicit)";
    if (!c->FilterSubject || strcmp(c->FilterSubject, subject) != 0)
        return "filter_subject";
    if (c->MaxDeliver > 0)
        return "max_deliver (want unlimited: a retry must never be dropped)";
    if (c->DeliverPolicy != js_DeliverAll)
        return "deliver_policy (want all)";
    /* Each of these makes a pull deliver nothing, or bodies without their event. */
    if (c->HeadersOnly)
        return "headers_only (want false: the event is the body)";
    if (c->MaxRequestBatch > 0 && c->MaxRequestBatch < FETCH_MAX)
        return "max_batch (want unlimited or at least " STR(FETCH_MAX) ")";
    if (c->MaxRequestExpires > 0 && c->MaxRequestExpires < FETCH_WAIT_MS * 1000000LL)
        return "max_expires (want unlimited or at least " STR(FETCH_WAIT_MS) " ms)";
    if (c->MaxRequestMaxBytes > 0)
        return "max_bytes (want unlimited)";
    /* Backoff replaces the ack wait for redeliveries: an event being sent could be
     * redelivered to another instance while its send is in flight. */
    if (c->BackOffLen > 0)
        return "backoff (want none: scrubgate's own retry delays apply)";
    return NULL;
}

/* Create the destination's durable pull consumer, or check an existing one. A missing stream
 * sets stream_lost (the pull threads create it again). */
static int ensure_consumer(struct sg_jetstream *js, jsCtx *ctx, const char *site,
                           const char *dest)
{
    const char *stream = js->stream;
    int64_t ack_wait = js->ack_wait_ns;
    char *durable = sg_jetstream_durable(site, dest), *subject = sg_jetstream_subject(site, dest);
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    int rc = -1;
    natsStatus s = js_GetConsumerInfo(&ci, ctx, stream, durable, NULL, &jerr);
    if (s == NATS_OK) {
        jsConsumerConfig *c = ci->Config;
        const char *bad = consumer_mismatch(c, subject);
        if (bad) {
            sg_error("jetstream: consumer %s of stream %s exists with another %s; remove it "
                     "(nats consumer rm) and scrubgate creates it (pull, explicit acks, ack "
                     "wait upstream_timeout_ms + 30 s, max_deliver unlimited, deliver all, "
                     "filter %s)",
                     durable, stream, bad, subject);
        } else if (c->AckWait < ack_wait) {
            /* Shorter than a TikTok request can take: a slow send would be redelivered while
             * in flight (sent twice). Raised to ours; a longer one (another instance's larger
             * upstream_timeout_ms) is kept: it only delays a redelivery after a crash. */
            jsConsumerConfig up = *c;
            jsConsumerInfo *ui = NULL;
            up.AckWait = ack_wait;
            s = js_UpdateConsumer(&ui, ctx, stream, &up, NULL, &jerr);
            if (s != NATS_OK) {
                sg_error("jetstream: consumer %s of stream %s has an ack_wait of %lld ms, below "
                         "upstream_timeout_ms + 30 s (%lld ms), and cannot be updated: %s",
                         durable, stream, (long long)(c->AckWait / 1000000),
                         (long long)(ack_wait / 1000000), natsStatus_GetText(s));
            } else {
                sg_info("jetstream: consumer %s: ack_wait raised to %lld ms", durable,
                        (long long)(ack_wait / 1000000));
                rc = 0;
            }
            jsConsumerInfo_Destroy(ui);
        } else {
            rc = 0;
        }
        jsConsumerInfo_Destroy(ci);
        goto out;
    }
    if (jerr == JSStreamNotFoundErr) {
        if (!atomic_exchange(&js->stream_lost, true))
            sg_warn("jetstream: stream %s not found; creating it again", stream);
        goto out;
    }
    if (jerr != JSConsumerNotFoundErr && s != NATS_NOT_FOUND) {
        nats_fail("consumer info", s, jerr);
        goto out;
    }
    jsConsumerConfig cfg;
    jsConsumerConfig_Init(&cfg);
    cfg.Durable = durable;
    cfg.AckPolicy = js_AckExplicit;
    cfg.AckWait = ack_wait;
    cfg.DeliverPolicy = js_DeliverAll;
    cfg.FilterSubject = subject;
    cfg.MaxAckPending = 100000;
    cfg.MaxDeliver = -1; /* the give-up is scrubgate's (retry_give_up_s from first_ts) */
    s = js_AddConsumer(&ci, ctx, stream, &cfg, NULL, &jerr);
    if (s != NATS_OK && jerr != JSConsumerNameExistErr) {
        nats_fail("cannot create a consumer", s, jerr);
        goto out;
    }
    jsConsumerInfo_Destroy(ci);
    rc = 0;
out:
    free(durable);
    free(subject);
    return rc;
}

struct sg_jetstream *sg_jetstream_open(const struct sg_config *cfg)
{
    const struct sg_queue_conf *qc = &cfg->queue;
    struct sg_jetstream *js = sg_xcalloc(1, sizeof(*js));
    natsOptions *o = NULL;
    jsCtx *ctx = NULL;
    natsStatus s;
    pthread_mutex_init(&js->close_mu, NULL);
    pthread_cond_init(&js->close_cv, NULL);
    js->stream = sg_xstrdup(qc->stream);
    js->ack_wait_ns = sg_jetstream_ack_wait_ns(cfg);
    js->replicas = qc->replicas;
    if ((s = natsOptions_Create(&o)) != NATS_OK ||
        (s = natsOptions_SetServers(o, (const char **)qc->servers, (int)qc->n_servers)) !=
            NATS_OK ||
        (s = natsOptions_SetTimeout(o, 2000)) != NATS_OK ||
        (s = natsOptions_SetMaxReconnect(o, -1)) != NATS_OK ||
        (s = natsOptions_SetReconnectWait(o, 200)) != NATS_OK ||
        /* No buffering while disconnected: a publish then fails at once (503), it never
         * waits in a local buffer that a crash would lose. */
        (s = natsOptions_SetReconnectBufSize(o, 0)) != NATS_OK ||
        (s = natsOptions_SetPingInterval(o, 1000)) != NATS_OK ||
        (s = natsOptions_SetMaxPingsOut(o, 2)) != NATS_OK ||
        /* The loop's publishes only append to this buffer (libnats's flusher thread writes
         * it); a full buffer on a stalled connection costs at most the write deadline. */
        (s = natsOptions_SetIOBufSize(o, 1 << 20)) != NATS_OK ||
        (s = natsOptions_SetWriteDeadline(o, 200)) != NATS_OK ||
        (s = natsOptions_SetDisconnectedCB(o, disconnected_cb, js)) != NATS_OK ||
        (s = natsOptions_SetReconnectedCB(o, reconnected_cb, js)) != NATS_OK ||
        (s = natsOptions_SetClosedCB(o, closed_cb, js)) != NATS_OK ||
        (s = natsOptions_SetName(o, "scrubgate")) != NATS_OK) {
        nats_fail("options", s, 0);
        goto fail;
    }
    /* A tls:// URL requires TLS (server certificate checked against the system's CAs): a
     * server that does not offer it is refused, never used in plaintext. */
    for (size_t i = 0; i < qc->n_servers; i++)
        if (strncasecmp(qc->servers[i], "tls://", 6) == 0) {
            if ((s = natsOptions_SetSecure(o, true)) != NATS_OK) {
                nats_fail("TLS (a tls:// server)", s, 0);
                goto fail;
            }
            break;
        }
    if (qc->creds_file &&
        (s = natsOptions_SetUserCredentialsFromFiles(o, qc->creds_file, NULL)) != NATS_OK) {
        /* The status text only: a credentials file's content never reaches a log. */
        nats_fail("creds_file", s, 0);
        goto fail;
    }
    s = natsConnection_Connect(&js->nc, o);
    if (s != NATS_OK) {
        char shown[300];
        redact_url(qc->servers[0], shown, sizeof(shown));
        sg_error("jetstream: cannot connect to %s%s: %s", shown,
                 qc->n_servers > 1 ? " (or the other servers)" : "", natsStatus_GetText(s));
        goto fail;
    }
    atomic_store(&js->connected, true);
    if ((s = natsConnection_JetStream(&ctx, js->nc, NULL)) != NATS_OK) {
        nats_fail("JetStream context", s, 0);
        goto fail;
    }
    if (ensure_stream(js, ctx, qc->replicas, false) < 0)
        goto fail;
    for (size_t i = 0; i < cfg->n_sites; i++)
        for (size_t d = 0; d < cfg->sites[i].n_dests; d++)
            if (ensure_consumer(js, ctx, cfg->sites[i].id, cfg->sites[i].dests[d].id) < 0)
                goto fail;
    jsCtx_Destroy(ctx);
    natsOptions_Destroy(o);
    return js;
fail:
    jsCtx_Destroy(ctx);
    natsOptions_Destroy(o);
    sg_jetstream_free(js);
    return NULL;
}

void sg_jetstream_free(struct sg_jetstream *js)
{
    if (!js)
        return;
    if (js->nc) {
        atomic_store(&js->closing, true);
        natsConnection_Close(js->nc);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5; /* never a hang at exit: libnats calls it at once */
        pthread_mutex_lock(&js->close_mu);
        while (!js->closed &&
               pthread_cond_timedwait(&js->close_cv, &js->close_mu, &until) == 0)
            ;
        bool closed = js->closed;
        pthread_mutex_unlock(&js->close_mu);
        natsConnection_Destroy(js->nc);
        if (!closed)
            return; /* a callback may still come: leave js to the exit rather than free it */
    }
    pthread_cond_destroy(&js->close_cv);
    pthread_mutex_destroy(&js->close_mu);
    free(js->stream);
    free(js);
}

/* ---- the per-worker queue ---- */

/* One request's publishes: answered once all are acked (202) or any failed or timed out (503). */
struct group {
    struct group *next;
    struct sg_http_req *req; /* NULL once answered or its client left */
    char *body;
    char site[72];
    size_t pending;  /* publishes without an ack */
    bool failed;
    bool deferred;   /* defer() was called */
    bool answered;
    uint64_t deadline;
};

struct pub { natsMsg *msg; struct group *g; };

/*
 * A message handed to a forwarder, until done() or retry(). The forwarder may keep it longer
 * than the ack wait (a batch's flush interval, a backoff, a token pause, a busy slot): the
 * server would then redeliver it, and another instance send it while this one still holds it.
 * So the queue marks it in progress every third of the ack wait, oldest mark first.
 */
struct consumer;
struct held {
    natsMsg *m;        /* NULL once its consumer stopped (the message was handed back then) */
    struct consumer *c;
    struct held *prev, *next;
    uint64_t mark_ms; /* its ack wait last started (delivery, a send, a mark) */
};
struct ack { struct group *g; bool ok; };

struct js_queue {
    struct sg_queue q; /* first */
    struct sg_jetstream *js;
    struct sg_queue *local; /* background jobs */
    struct event_base *base;
    jsCtx *ctx;
    int worker;
    uint64_t appended;
    struct group *open;    /* the request being staged now */
    struct group *groups;  /* deferred and not yet settled */
    size_t n_waiting;
    struct event *ack_ev, *tick;
    pthread_mutex_t mu;    /* pubs and acks: the ack handler runs on a libnats thread */
    struct pub *pubs;      /* a FIFO of publishes awaiting their ack */
    size_t pub_head, pub_n;
    struct ack *acks;      /* handed to the loop */
    size_t n_acks, cap_acks;
    size_t inflight;       /* on the loop: publishes not settled */
    struct held *held, *held_tail; /* by mark_ms, oldest first (loop only) */
    uint64_t mark_every_ms;
};

#define JQ(q) ((struct js_queue *)(q))

static void answer(struct js_queue *jq, struct group *g, bool ok)
{
    if (g->answered)
        return;
    g->answered = true;
    jq->n_waiting--;
    if (!g->req)
        return; /* the client left: its events were published (or not) all the same */
    sg_ingest_answer(g->req, g->site, ok, g->body,
                     "{\"error\":\"queue did not acknowledge, retry later\"}");
    g->req = NULL;
}

/* Answer what can be answered; free groups with nothing pending any more. */
static void settle(struct js_queue *jq)
{
    uint64_t now = sg_now_mono_ms();
    struct group **pp = &jq->groups;
    while (*pp) {
        struct group *g = *pp;
        if (!g->answered && g->pending == 0)
            answer(jq, g, !g->failed);
        else if (!g->answered && (g->failed || now >= g->deadline))
            answer(jq, g, false); /* never a hang: 503 within ANSWER_MS + TICK_MS */
        if (g->answered && g->pending == 0) {
            *pp = g->next;
            free(g->body);
            free(g);
            continue;
        }
        pp = &g->next;
    }
}

static void ack_handler(jsCtx *ctx, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    struct js_queue *jq = closure;
    SG_UNUSED(ctx);
    bool ok = pa != NULL && pae == NULL; /* a duplicate is acked too (pa->Duplicate) */
    pthread_mutex_lock(&jq->mu);
    struct group *g = NULL;
    /* Acks come in publish order almost always: the search ends at the head. */
    for (size_t i = 0; i < jq->pub_n; i++) {
        struct pub *p = &jq->pubs[(jq->pub_head + i) % PUB_WINDOW];
        if (p->msg == msg) {
            g = p->g;
            p->msg = NULL;
            break;
        }
    }
    while (jq->pub_n && !jq->pubs[jq->pub_head].msg) {
        jq->pub_head = (jq->pub_head + 1) % PUB_WINDOW;
        jq->pub_n--;
    }
    if (g) {
        if (jq->n_acks == jq->cap_acks) {
            jq->cap_acks = jq->cap_acks ? jq->cap_acks * 2 : 256;
            jq->acks = sg_xrealloc(jq->acks, jq->cap_acks * sizeof(*jq->acks));
        }
        jq->acks[jq->n_acks++] = (struct ack){g, ok};
    }
    pthread_mutex_unlock(&jq->mu);
    struct sg_jetstream *js = jq->js;
    uint64_t now = sg_now_mono_ms();
    if (ok) {
        atomic_store(&js->pub_ok_ms, now);
    } else {
        atomic_store(&js->pub_fail_ms, now);
        if (pae && (pae->Err == NATS_NO_RESPONDERS || pae->ErrCode == JSStreamNotFoundErr ||
                    pae->ErrCode == JSStreamNotMatchErr))
            atomic_store(&js->stream_lost, true);
        /* One line a second at most, with the count of those not logged. */
        uint64_t sec = now / 1000;
        if (atomic_exchange(&js->warn_s, sec) != sec) {
            unsigned long skipped = atomic_exchange(&js->warn_skipped, 0);
            const char *why = pae && pae->ErrText ? pae->ErrText
                                                  : natsStatus_GetText(pae ? pae->Err : NATS_TIMEOUT);
            if (skipped)
                sg_warn("jetstream: publish not acknowledged: %s (error %d); %lu more not "
                        "logged since the last such line",
                        why, pae ? (int)pae->ErrCode : 0, skipped);
            else
                sg_warn("jetstream: publish not acknowledged: %s (error %d)", why,
                        pae ? (int)pae->ErrCode : 0);
        } else {
            atomic_fetch_add(&js->warn_skipped, 1);
        }
    }
    /* The handler owns the message (libnats 3.4): its entry above is gone, so the address
     * may be reused by the next publish without being mistaken for this one. */
    natsMsg_Destroy(msg);
    event_active(jq->ack_ev, EV_READ, 0);
}

static void ack_cb(evutil_socket_t fd, short what, void *arg)
{
    struct js_queue *jq = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    pthread_mutex_lock(&jq->mu);
    struct ack *v = jq->acks;
    size_t n = jq->n_acks;
    jq->acks = NULL;
    jq->n_acks = jq->cap_acks = 0;
    pthread_mutex_unlock(&jq->mu);
    for (size_t i = 0; i < n; i++) {
        v[i].g->pending--;
        jq->inflight--;
        if (!v[i].ok)
            v[i].g->failed = true;
    }
    free(v);
    settle(jq);
}

static void held_unlink(struct js_queue *jq, struct held *h)
{
    *(h->prev ? &h->prev->next : &jq->held) = h->next;
    *(h->next ? &h->next->prev : &jq->held_tail) = h->prev;
    h->prev = h->next = NULL;
}

static void held_append(struct js_queue *jq, struct held *h, uint64_t now)
{
    h->mark_ms = now;
    h->prev = jq->held_tail;
    h->next = NULL;
    *(jq->held_tail ? &jq->held_tail->next : &jq->held) = h;
    jq->held_tail = h;
}

/* Messages held for a third of the ack wait: in progress (the server restarts their wait). */
static void keep_held(struct js_queue *jq, uint64_t now)
{
    while (jq->held && now - jq->held->mark_ms >= jq->mark_every_ms) {
        struct held *h = jq->held;
        natsMsg_InProgress(h->m, NULL); /* asynchronous: a lost one costs a redelivery */
        held_unlink(jq, h);
        held_append(jq, h, now);
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    SG_UNUSED(fd);
    SG_UNUSED(what);
    settle(arg);
    keep_held(arg, sg_now_mono_ms());
}

static struct group *open_group(struct js_queue *jq)
{
    if (!jq->open)
        jq->open = sg_xcalloc(1, sizeof(*jq->open));
    return jq->open;
}

static natsStatus add_hex(natsMsg *m, const char *key, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char buf[256];
    for (size_t i = 0; i < n && 2 * i + 2 < sizeof(buf); i++) {
        buf[2 * i] = hex[p[i] >> 4];
        buf[2 * i + 1] = hex[p[i] & 15];
        buf[2 * i + 2] = '\0';
    }
    return natsMsgHeader_Set(m, key, n ? buf : "");
}

/* A text header, %-encoded: libnats would turn CR and LF into spaces and trim the value. */
static natsStatus set_text(natsMsg *m, const char *key, const char *value)
{
    char *enc = sg_jetstream_hdr_encode(value);
    natsStatus s = natsMsgHeader_Set(m, key, enc);
    free(enc);
    return s;
}

static int js_append(struct sg_queue *q, struct sg_spool_entry *e, struct sg_queue_ref *ref,
                     uint64_t *gen)
{
    struct js_queue *jq = JQ(q);
    char *subject = sg_jetstream_subject(e->site, e->dest);
    char *id = sg_jetstream_msg_id(e->site, e->dest, e->event, e->event_id);
    natsMsg *m = NULL;
    int rc = 0;
    memset(ref, 0, sizeof(*ref));
    *gen = 0;
    if ((int64_t)e->json_len > natsConnection_GetMaxPayload(jq->js->nc) - 4096) {
        rc = -1; /* larger than the servers take: the event is not accepted (its own error) */
        goto out;
    }
    struct group *g = open_group(jq);
    jq->appended++;
    if (natsMsg_Create(&m, subject, NULL, e->json, (int)e->json_len) != NATS_OK) {
        g->failed = true;
        goto out;
    }
    unsigned char consent[3 * SG_PURPOSE__COUNT + 2];
    memcpy(consent, e->consent.state, SG_PURPOSE__COUNT);
    memcpy(consent + SG_PURPOSE__COUNT, e->consent.source, SG_PURPOSE__COUNT);
    memcpy(consent + 2 * SG_PURPOSE__COUNT, e->consent.evidence, SG_PURPOSE__COUNT);
    consent[3 * SG_PURPOSE__COUNT] = e->consent.tcf;
    consent[3 * SG_PURPOSE__COUNT + 1] =
        (unsigned char)((e->consent.gpc ? 1 : 0) | (e->consent.sale_opt_out ? 2 : 0));
    char ts[32];
    snprintf(ts, sizeof(ts), "%lld", (long long)e->first_ts);
    /* A header that cannot be set would make a message decode() refuses: 503, not 202. */
    if (set_text(m, "Sg-Site", e->site) != NATS_OK ||
        set_text(m, "Sg-Dest", e->dest) != NATS_OK ||
        set_text(m, "Sg-Event", e->event) != NATS_OK ||
        set_text(m, "Sg-Event-Id", e->event_id) != NATS_OK ||
        set_text(m, "Sg-Rules", e->rules ? e->rules : "[]") != NATS_OK ||
        (e->rule_set && set_text(m, "Sg-Rule-Set", e->rule_set) != NATS_OK) ||
        natsMsgHeader_Set(m, "Sg-First-Ts", ts) != NATS_OK ||
        add_hex(m, "Sg-Consent", consent, sizeof(consent)) != NATS_OK) {
        g->failed = true;
        natsMsg_Destroy(m);
        goto out;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = PUB_WAIT_MS;
    /* Only our stream's ack is an ack: another stream on the same subjects (a stream made by
     * someone else, with limits that drop events) answers with an error instead. */
    po.ExpectStream = jq->js->stream;
    /* Registered before the publish: its ack may arrive before js_PublishMsgAsync returns. */
    pthread_mutex_lock(&jq->mu);
    if (jq->pub_n == PUB_WINDOW) {
        pthread_mutex_unlock(&jq->mu);
        g->failed = true; /* has_room() keeps this from happening; never a blocking wait */
        natsMsg_Destroy(m);
        goto out;
    }
    jq->pubs[(jq->pub_head + jq->pub_n++) % PUB_WINDOW] = (struct pub){m, g};
    pthread_mutex_unlock(&jq->mu);
    natsMsg *sent = m;
    natsStatus s = atomic_load(&jq->js->connected) ? js_PublishMsgAsync(jq->ctx, &m, &po)
                                                   : NATS_CONNECTION_DISCONNECTED;
    if (s != NATS_OK) {
        pthread_mutex_lock(&jq->mu);
        for (size_t i = 0; i < jq->pub_n; i++) {
            struct pub *p = &jq->pubs[(jq->pub_head + i) % PUB_WINDOW];
            if (p->msg == sent)
                p->msg = NULL;
        }
        pthread_mutex_unlock(&jq->mu);
        natsMsg_Destroy(m);
        g->failed = true;
        if (s != NATS_CONNECTION_DISCONNECTED)
            atomic_store(&jq->js->pub_fail_ms, sg_now_mono_ms());
        goto out;
    }
    g->pending++;
    jq->inflight++;
out:
    free(subject);
    free(id);
    return rc;
}

static uint64_t js_appended(const struct sg_queue *q)
{
    return ((const struct js_queue *)q)->appended;
}

static bool js_has_room(const struct sg_queue *q, size_t bytes)
{
    const struct js_queue *jq = (const struct js_queue *)q;
    SG_UNUSED(bytes);
    return jq->inflight + 1024 < PUB_WINDOW; /* a request's events fit in what is left */
}

/* For /healthz: unreachable, or connected but the last publishes failed (the stream is gone,
 * full, or without quorum). Ingest keeps trying (accepts()): an acked publish clears it. */
static const char *js_failing(const struct sg_queue *q)
{
    const struct sg_jetstream *js = ((const struct js_queue *)q)->js;
    if (!atomic_load(&js->connected))
        return "queue_unreachable";
    uint64_t fail = atomic_load(&js->pub_fail_ms), ok = atomic_load(&js->pub_ok_ms);
    if (fail && fail > ok && sg_now_mono_ms() - fail < UNUSABLE_MS)
        return "stream_unusable";
    if (atomic_load(&js->stream_bad))
        return "stream_misconfigured";
    return NULL;
}

static bool js_accepts(const struct sg_queue *q)
{
    const struct sg_jetstream *js = ((const struct js_queue *)q)->js;
    return atomic_load(&js->connected) && !atomic_load(&js->stream_bad);
}

static void group_close_cb(struct sg_http_req *req, void *arg)
{
    struct js_queue *jq = arg;
    for (struct group *g = jq->groups; g; g = g->next)
        if (g->req == req)
            g->req = NULL;
}

static void js_defer(struct sg_queue *q, struct sg_http_req *req, const char *site, char *body)
{
    struct js_queue *jq = JQ(q);
    struct group *g = open_group(jq);
    jq->open = NULL;
    g->req = req;
    g->body = body;
    snprintf(g->site, sizeof(g->site), "%s", site);
    g->deferred = true;
    g->deadline = sg_now_mono_ms() + ANSWER_MS;
    g->next = jq->groups;
    jq->groups = g;
    jq->n_waiting++;
    sg_http_on_close(req, group_close_cb, jq);
    settle(jq); /* a publish that failed at once answers now */
}

static size_t js_waiting(const struct sg_queue *q)
{
    return ((const struct js_queue *)q)->n_waiting;
}

/* The forwarder is done with the message: it leaves the held list. NULL when its consumer
 * already handed it back (js_unconsume()). */
static natsMsg *release(struct js_queue *jq, struct sg_queue_ref *ref)
{
    struct held *h = ref->msg;
    if (!h)
        return NULL;
    natsMsg *m = h->m;
    if (m)
        held_unlink(jq, h);
    free(h);
    ref->msg = NULL;
    return m;
}

static void js_done(struct sg_queue *q, struct sg_queue_ref *ref, enum sg_queue_end how)
{
    natsMsg *m = release(JQ(q), ref);
    if (!m)
        return;
    /* Asynchronous: an ack lost with the connection means a redelivery (at least once). */
    if (how == SG_QUEUE_TERM)
        natsMsg_Term(m, NULL);
    else
        natsMsg_Ack(m, NULL);
    natsMsg_Destroy(m);
}

/* The ack wait starts again now: the send has all of it (upstream_timeout_ms + 30 s). */
static void js_sending(struct sg_queue *q, struct sg_queue_ref *ref)
{
    struct js_queue *jq = JQ(q);
    struct held *h = ref->msg;
    if (!h || !h->m)
        return;
    natsMsg_InProgress(h->m, NULL);
    held_unlink(jq, h);
    held_append(jq, h, sg_now_mono_ms());
}

static void js_retry(struct sg_queue *q, struct sg_queue_ref *ref, uint64_t delay_ms)
{
    natsMsg *m = release(JQ(q), ref);
    if (!m)
        return;
    if (delay_ms)
        natsMsg_NakWithDelay(m, (int64_t)delay_ms, NULL);
    else
        natsMsg_Nak(m, NULL);
    natsMsg_Destroy(m);
}

static void js_kick(struct sg_queue *q)
{
    SG_UNUSED(q); /* acks go out as they are made */
}

static void js_background(struct sg_queue *q, sg_queue_job_fn *run, sg_queue_job_fn *done,
                          void *arg)
{
    struct sg_queue *local = JQ(q)->local;
    local->ops->background(local, run, done, arg);
}

/* ---- consumers: a pull thread per forwarder ---- */

struct consumer {
    struct js_queue *jq;
    char *site, *dest, *durable, *subject;
    sg_queue_deliver_fn *fn;
    void *fw;
    _Atomic long *credit;
    pthread_t thread;
    _Atomic bool quit;
    natsSubscription *sub; /* set by the pull thread; destroyed by js_unconsume() */
    uint64_t recover_ms; /* the pull thread's last recover() */
    unsigned stream_gen; /* the stream_gen its consumer was last made for */
    struct event *ev;
    pthread_mutex_t mu;
    natsMsg **inbox;
    size_t n_inbox, cap_inbox;
};

/* A text header (set_text()), decoded; NULL when absent or not an encoding of ours. */
static char *hdr(natsMsg *m, const char *key)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(m, key, &v) != NATS_OK || !v)
        return NULL;
    return sg_jetstream_hdr_decode(v);
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (!s || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* A delivered message back into a spool entry (owned strings). -1 when it is not ours. */
static int decode(natsMsg *m, struct sg_spool_entry *e)
{
    memset(e, 0, sizeof(*e));
    const char *cs = NULL, *ts = NULL;
    unsigned char consent[3 * SG_PURPOSE__COUNT + 2];
    e->site = hdr(m, "Sg-Site");
    e->dest = hdr(m, "Sg-Dest");
    e->event = hdr(m, "Sg-Event");
    e->event_id = hdr(m, "Sg-Event-Id");
    e->rules = hdr(m, "Sg-Rules");
    e->rule_set = hdr(m, "Sg-Rule-Set");
    natsMsgHeader_Get(m, "Sg-Consent", &cs);
    natsMsgHeader_Get(m, "Sg-First-Ts", &ts);
    if (!e->site || !e->dest || !e->event || !e->event_id || !e->rules || !ts ||
        unhex(cs, consent, sizeof(consent)) < 0 || natsMsg_GetDataLength(m) <= 0) {
        sg_spool_entry_release(e);
        return -1;
    }
    memcpy(e->consent.state, consent, SG_PURPOSE__COUNT);
    memcpy(e->consent.source, consent + SG_PURPOSE__COUNT, SG_PURPOSE__COUNT);
    memcpy(e->consent.evidence, consent + 2 * SG_PURPOSE__COUNT, SG_PURPOSE__COUNT);
    e->consent.tcf = consent[3 * SG_PURPOSE__COUNT];
    e->consent.gpc = consent[3 * SG_PURPOSE__COUNT + 1] & 1;
    e->consent.sale_opt_out = (consent[3 * SG_PURPOSE__COUNT + 1] & 2) != 0;
    e->first_ts = strtoll(ts, NULL, 10);
    e->json_len = (size_t)natsMsg_GetDataLength(m);
    e->json = sg_xmalloc(e->json_len + 1);
    memcpy(e->json, natsMsg_GetData(m), e->json_len);
    e->json[e->json_len] = '\0';
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        e->attempts = meta->NumDelivered > 1 ? (uint32_t)(meta->NumDelivered - 1) : 0;
        jsMsgMetaData_Destroy(meta);
    }
    return 0;
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    struct consumer *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    pthread_mutex_lock(&c->mu);
    natsMsg **v = c->inbox;
    size_t n = c->n_inbox;
    c->inbox = NULL;
    c->n_inbox = c->cap_inbox = 0;
    pthread_mutex_unlock(&c->mu);
    uint64_t now = sg_now_mono_ms();
    for (size_t i = 0; i < n; i++) {
        struct sg_spool_entry e;
        if (decode(v[i], &e) < 0) {
            sg_warn("jetstream: a message on %s is not a scrubgate event: terminated",
                    c->subject);
            natsMsg_Term(v[i], NULL);
            natsMsg_Destroy(v[i]);
            continue;
        }
        struct held *h = sg_xcalloc(1, sizeof(*h));
        h->m = v[i];
        h->c = c;
        held_append(c->jq, h, now);
        c->fn(c->fw, &e, h); /* steals e's strings; h comes back through done/retry */
    }
    free(v);
}

/*
 * The stream as it is now, checked by one pull thread at a time: created again when it is
 * gone (each second while it is), checked when it is there (every 10 s: someone may have
 * removed it and created it again with a limit that drops events). While it has such
 * settings, ingest answers 503 (stream_misconfigured) and consumers still deliver what it
 * holds. A stream created again has none of the consumers: every pull thread creates its
 * own (stream_gen), not only those whose fetch happened to fail.
 */
static void watch_stream(struct sg_jetstream *js, jsCtx *ctx)
{
    uint64_t now = sg_now_mono_ms(), last = atomic_load(&js->ensure_ms);
    bool lost = atomic_load(&js->stream_lost);
    if (now - last < (lost ? 1000u : 10000u) ||
        !atomic_compare_exchange_strong(&js->ensure_ms, &last, now))
        return;
    int rc = ensure_stream(js, ctx, js->replicas, true);
    if (rc == -2 && !atomic_exchange(&js->stream_bad, true))
        sg_error("jetstream: ingest answers 503 until the stream %s is fixed or removed",
                 js->stream);
    if (rc == 0 && atomic_exchange(&js->stream_bad, false))
        sg_info("jetstream: stream %s usable again", js->stream);
    if (rc != -1 && lost)
        atomic_store(&js->stream_lost, false);
}

/* Sleep ms, or less when the consumer is stopped (js_unconsume() joins the thread on the loop). */
static void nap(struct consumer *c, unsigned ms)
{
    for (unsigned slept = 0; slept < ms && !atomic_load(&c->quit); slept += 20)
        usleep(20000);
}

/* The stream or this consumer is gone: create them again, at most once a second. */
static void recover(struct consumer *c, jsCtx *ctx)
{
    struct sg_jetstream *js = c->jq->js;
    nap(c, 100);
    uint64_t now = sg_now_mono_ms();
    if (now - c->recover_ms < 1000)
        return;
    c->recover_ms = now;
    watch_stream(js, ctx);
    unsigned gen = atomic_load(&js->stream_gen);
    if (!atomic_load(&js->stream_lost) && ensure_consumer(js, ctx, c->site, c->dest) == 0)
        c->stream_gen = gen;
}

static void *pull_main(void *arg)
{
    struct consumer *c = arg;
    natsSubscription *sub = NULL; /* c->sub once made: js_unconsume() destroys it */
    jsCtx *ctx = NULL;
    /* Every call here ends within API_WAIT_MS or FETCH_WAIT_MS (or a nap): js_unconsume()
     * joins this thread from the worker's loop (a reload, the shutdown), even while NATS
     * does not answer. */
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = API_WAIT_MS;
    while (!atomic_load(&c->quit)) {
        if (!atomic_load(&c->jq->js->connected)) {
            nap(c, 100);
            continue;
        }
        if (!ctx && natsConnection_JetStream(&ctx, c->jq->js->nc, &jo) != NATS_OK) {
            nap(c, 500);
            continue;
        }
        watch_stream(c->jq->js, ctx);
        if (atomic_load(&c->jq->js->stream_lost) ||
            c->stream_gen != atomic_load(&c->jq->js->stream_gen)) {
            recover(c, ctx);
            continue;
        }
        if (!sub) {
            /* Created here, off the loop: a reload that adds a destination blocks nothing. */
            jsErrCode jerr = 0;
            jsSubOptions so;
            jsSubOptions_Init(&so);
            so.Stream = c->jq->js->stream;
            so.Consumer = c->durable;
            if (ensure_consumer(c->jq->js, ctx, c->site, c->dest) < 0 ||
                js_PullSubscribe(&sub, ctx, c->subject, c->durable, NULL, &so, &jerr) != NATS_OK) {
                sub = NULL;
                nap(c, 1000);
                continue;
            }
            c->sub = sub;
        }
        long credit = atomic_load(c->credit);
        if (credit <= 0) {
            nap(c, 20);
            continue;
        }
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, sub, (int)SG_MIN(credit, FETCH_MAX), FETCH_WAIT_MS,
                                              &jerr);
        if (s != NATS_OK || list.Count == 0) {
            natsMsgList_Destroy(&list);
            if (s != NATS_TIMEOUT || atomic_load(&c->jq->js->stream_lost))
                recover(c, ctx);
            continue;
        }
        atomic_fetch_sub(c->credit, (long)list.Count);
        pthread_mutex_lock(&c->mu);
        if (c->n_inbox + (size_t)list.Count > c->cap_inbox) {
            c->cap_inbox = c->n_inbox + (size_t)list.Count + 64;
            c->inbox = sg_xrealloc(c->inbox, c->cap_inbox * sizeof(*c->inbox));
        }
        for (int i = 0; i < list.Count; i++) {
            c->inbox[c->n_inbox++] = list.Msgs[i];
            list.Msgs[i] = NULL; /* ours now */
        }
        pthread_mutex_unlock(&c->mu);
        natsMsgList_Destroy(&list);
        event_active(c->ev, EV_READ, 0);
    }
    jsCtx_Destroy(ctx);
    nats_ReleaseThreadMemory();
    return NULL;
}

static void *js_consume(struct sg_queue *q, const char *site, const char *dest,
                        sg_queue_deliver_fn *fn, void *fw, _Atomic long *credit)
{
    struct js_queue *jq = JQ(q);
    struct consumer *c = sg_xcalloc(1, sizeof(*c));
    c->jq = jq;
    c->site = sg_xstrdup(site);
    c->dest = sg_xstrdup(dest);
    c->durable = sg_jetstream_durable(site, dest);
    c->subject = sg_jetstream_subject(site, dest);
    c->fn = fn;
    c->fw = fw;
    c->credit = credit;
    pthread_mutex_init(&c->mu, NULL);
    c->ev = event_new(jq->base, -1, 0, deliver_cb, c);
    if (!c->ev || pthread_create(&c->thread, NULL, pull_main, c) != 0) {
        sg_error("jetstream: cannot start the consumer of %s", c->subject);
        if (c->ev)
            event_free(c->ev);
        free(c->site);
        free(c->dest);
        free(c->durable);
        free(c->subject);
        free(c);
        return NULL;
    }
    return c;
}

static void js_unconsume(struct sg_queue *q, void *handle)
{
    struct consumer *c = handle;
    struct js_queue *jq = JQ(q);
    atomic_store(&c->quit, true);
    pthread_join(c->thread, NULL); /* within FETCH_WAIT_MS or API_WAIT_MS (pull_main) */
    /* Everything it pulled goes back now, for another instance, while its subscription is
     * still there (a message is acked through it): what waits in the inbox, and what the
     * forwarder holds (whose later done() or retry() then has nothing to do). */
    for (size_t i = 0; i < c->n_inbox; i++) {
        natsMsg_Nak(c->inbox[i], NULL);
        natsMsg_Destroy(c->inbox[i]);
    }
    for (struct held *h = jq->held, *next; h; h = next) {
        next = h->next;
        if (h->c != c)
            continue;
        held_unlink(jq, h);
        natsMsg_Nak(h->m, NULL);
        natsMsg_Destroy(h->m);
        h->m = NULL;
    }
    natsSubscription_Destroy(c->sub);
    free(c->inbox);
    event_free(c->ev);
    pthread_mutex_destroy(&c->mu);
    free(c->site);
    free(c->dest);
    free(c->durable);
    free(c->subject);
    free(c);
}

static void js_free(struct sg_queue *q)
{
    struct js_queue *jq = JQ(q);
    /* Requests still waiting get their 503; their publishes may still land (the client's
     * retry is then a duplicate the stream drops). */
    for (struct group *g = jq->groups; g; g = g->next)
        if (!g->answered)
            answer(jq, g, false);
    /* The loop has ended: wait (briefly) for outstanding acks, so that no ack handler runs
     * on this queue once it is freed. */
    if (jq->ctx) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 2 * PUB_WAIT_MS;
        js_PublishAsyncComplete(jq->ctx, &po);
    }
    jsCtx_Destroy(jq->ctx);
    while (jq->groups) {
        struct group *g = jq->groups;
        jq->groups = g->next;
        free(g->body);
        free(g);
    }
    free(jq->open);
    while (jq->held) { /* forwarders are freed first: none should be left */
        struct sg_queue_ref ref = {.msg = jq->held};
        js_retry(q, &ref, 0);
    }
    if (jq->ack_ev)
        event_free(jq->ack_ev);
    if (jq->tick)
        event_free(jq->tick);
    free(jq->pubs);
    free(jq->acks);
    pthread_mutex_destroy(&jq->mu);
    free(jq);
}

static const struct sg_queue_ops js_ops = {
    .type = "jetstream",
    .sends_own = false,
    .append = js_append,
    .appended = js_appended,
    .has_room = js_has_room,
    .failing = js_failing,
    .accepts = js_accepts,
    .defer = js_defer,
    .waiting = js_waiting,
    .done = js_done,
    .sending = js_sending,
    .retry = js_retry,
    .kick = js_kick,
    .background = js_background,
    .consume = js_consume,
    .unconsume = js_unconsume,
    .free = js_free,
};

struct sg_queue *sg_jetstream_queue_new(void *arg, int worker, struct event_base *base,
                                        struct sg_queue *local)
{
    struct sg_jetstream *js = arg;
    struct js_queue *jq = sg_xcalloc(1, sizeof(*jq));
    jq->q.ops = &js_ops;
    jq->js = js;
    jq->local = local;
    jq->base = base;
    jq->worker = worker;
    jq->pubs = sg_xcalloc(PUB_WINDOW, sizeof(*jq->pubs));
    jq->mark_every_ms = (uint64_t)(js->ack_wait_ns / 1000000 / 3);
    pthread_mutex_init(&jq->mu, NULL);
    jsOptions o;
    jsOptions_Init(&o);
    o.PublishAsync.AckHandler = ack_handler;
    o.PublishAsync.AckHandlerClosure = jq;
    o.PublishAsync.MaxPending = 2 * PUB_WINDOW; /* never reached: has_room() bounds it */
    jq->ack_ev = event_new(base, -1, 0, ack_cb, jq);
    jq->tick = event_new(base, -1, EV_PERSIST, tick_cb, jq);
    struct timeval tv = {0, TICK_MS * 1000};
    if (!jq->ack_ev || !jq->tick || event_add(jq->tick, &tv) < 0 ||
        natsConnection_JetStream(&jq->ctx, js->nc, &o) != NATS_OK) {
        sg_error("worker %d: cannot create its JetStream queue", worker);
        js_free(&jq->q);
        return NULL;
    }
    return &jq->q;
}
