/*
 * http.h - one HTTP/1.1 request as a handler sees it, and its reply
 * (docs/ARCHITECTURE.md "Connection handling").
 *
 * conn.c frames each request itself (sg_conn_scan_feed), so it also reads
 * it: the request line, the header fields and the body are views into the
 * connection's input buffer (no copy, no allocation), valid until the reply
 * is written or the connection goes away, whichever comes first. A reply is
 * one buffer: status line, headers and body written with one send().
 *
 * A handler answers with sg_http_reply(), at once or later (a 202 waits for
 * the group commit): until then the connection reads no further request.
 * A handler that answers later registers a close callback: if the client
 * goes away first, the callback runs and the request must not be touched
 * again.
 *
 * Everything here runs on the connection's loop.
 */
#ifndef SCRUBGATE_HTTP_H
#define SCRUBGATE_HTTP_H

#include "scrubgate/common.h"

#include <event2/event.h>

enum sg_http_method {
    SG_HTTP_OTHER = 0, /* anything else: the server answers 501 itself */
    SG_HTTP_GET,
    SG_HTTP_HEAD,
    SG_HTTP_POST,
    SG_HTTP_PUT,
    SG_HTTP_DELETE,
    SG_HTTP_OPTIONS,
    SG_HTTP_PATCH
};

/* ---- header fields: name/value pairs, names compared without case ---- */

struct sg_http_field {
    const char *name, *value; /* borrowed, NUL-terminated */
    size_t name_len;
};

struct sg_http_fields {
    struct sg_http_field *v;
    size_t n, cap;
};

void sg_http_fields_init(struct sg_http_fields *f);
void sg_http_fields_release(struct sg_http_fields *f);
/* Add a field; name and value are borrowed and must outlive f's use. */
void sg_http_fields_add(struct sg_http_fields *f, const char *name, const char *value);
/* The first field called name, or NULL. */
const char *sg_http_fields_get(const struct sg_http_fields *f, const char *name);

/* ---- a request ---- */

struct sg_http_req;
typedef void sg_http_handler_fn(struct sg_http_req *req, void *arg);
typedef void sg_http_close_fn(struct sg_http_req *req, void *arg);

enum sg_http_method sg_http_method(const struct sg_http_req *req);
/* The request target's path (as sent: not percent-decoded) and its query (NULL if none). */
const char *sg_http_path(const struct sg_http_req *req);
const char *sg_http_query(const struct sg_http_req *req);
/*
 * The first value of query parameter name (its name compared without case, as libevent's
 * query parser did; the value not decoded: *len bytes, up to '&'), or NULL.
 */
const char *sg_http_query_param(const char *query, const char *name, size_t *len);
const struct sg_http_fields *sg_http_headers(const struct sg_http_req *req);
/* The first header field called name, or NULL. */
const char *sg_http_header(const struct sg_http_req *req, const char *name);
/* The body (chunked framing removed, trailer fields dropped); *len 0 when there is none. */
const char *sg_http_body(const struct sg_http_req *req, size_t *len);
/* The peer's address as text ("" if unknown). */
const char *sg_http_peer(const struct sg_http_req *req);
struct event_base *sg_http_base(const struct sg_http_req *req);

/*
 * A header for the reply (copied; a value with CR or LF is dropped, as is
 * a name that is not a token). Content-Length, Date and Connection are the
 * server's; "Connection: close" from a handler closes the connection after
 * the reply.
 */
void sg_http_add_header(struct sg_http_req *req, const char *name, const char *value);
/* Whether the reply has a header called name so far; remove every one of them. */
bool sg_http_has_reply_header(const struct sg_http_req *req, const char *name);
void sg_http_remove_reply_header(struct sg_http_req *req, const char *name);

/*
 * Answer: status code, reason phrase (static), body (copied; none for HEAD,
 * 204 and 304). Without a Content-Type header, one with a body gets the
 * server's default (application/json). The request is gone afterwards.
 */
void sg_http_reply(struct sg_http_req *req, int code, const char *reason, const void *body,
                   size_t len);

/*
 * Call cb(req, arg) if the connection goes away before the reply (the
 * client left, or the server shuts down). Replying clears it; NULL clears it.
 */
void sg_http_on_close(struct sg_http_req *req, sg_http_close_fn *cb, void *arg);

#endif
