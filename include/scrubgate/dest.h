/*
 * dest.h - destinations: a small vtable per type (Fluent Bit output plugins).
 *
 * A destination formats one scrubbed event (at ingest time, so queues hold
 * ready bytes), builds a request body from a batch, and classifies a reply.
 * Formatting and classification are pure functions, tested with golden files.
 */
#ifndef SCRUBGATE_DEST_H
#define SCRUBGATE_DEST_H

#include "scrubgate/buf.h"
#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/event.h"

/* How a reply is handled; the sync log status follows from it. */
enum sg_dest_result {
    SG_DEST_OK = 0,      /* accepted */
    SG_DEST_PARTIAL,     /* accepted, data flagged: partial_failure */
    SG_DEST_RETRY,       /* transient or throttled: retry later */
    SG_DEST_AUTH,        /* token expired/invalid/revoked: pause the destination */
    SG_DEST_FAIL,        /* bad request: no retry, dead letter */
};

struct sg_dest_reply {
    enum sg_dest_result result;
    long code;            /* the API's code, -1 when the reply had none */
    char request_id[80];  /* the API's request id, "" when none */
    const char *reason;   /* static short token for the sync log: "ok", "bad_request", ... */
};

struct sg_dest_ops {
    const char *type;
    /* The outbound event as compact JSON (owned), from what the rules allowed. */
    char *(*format_event)(const struct sg_event *ev);
    /* The request body for n formatted events. 0 or -1. */
    int (*build_body)(const struct sg_dest_conf *d, const char *const *events,
                      const size_t *lens, size_t n, bool test, struct sg_buf *out);
    /* Request headers (curl_slist, owned by the caller) for this destination. */
    struct curl_slist *(*headers)(const struct sg_dest_conf *d);
    void (*classify)(long http_status, const char *body, size_t len, struct sg_dest_reply *out);
};

const struct sg_dest_ops *sg_dest_ops_find(const char *type);

extern const struct sg_dest_ops sg_dest_tiktok;

/* TikTok pieces, exposed for tests (golden files) and explain. */
json_t *sg_tiktok_event_json(const struct sg_event *ev);
bool sg_tiktok_currency_ok(const char *code);

#endif
