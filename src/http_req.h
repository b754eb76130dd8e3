/*
 * http_req.h - the request object shared by http.c (reading a request,
 * writing a reply) and conn.c (the connection it came on). Private to them.
 */
#ifndef SCRUBGATE_HTTP_REQ_H
#define SCRUBGATE_HTTP_REQ_H

#include "scrubgate/buf.h"
#include "scrubgate/http.h"

struct conn;

/* RFC 9110 tchar: the bytes of a token (a method, a header name). */
extern const bool sg_http_tchar[256];

struct sg_http_req {
    struct conn *conn;
    enum sg_http_method method;
    bool http10;      /* the request line says HTTP/1.0 */
    bool close_after; /* no keep-alive: the connection closes after the reply */
    const char *path, *query;
    struct sg_http_fields in;
    const char *body;
    size_t body_len;
    struct sg_buf head; /* the reply's header lines so far ("Name: value\r\n" each) */
    sg_http_close_fn *close_cb;
    void *close_arg;
};

/*
 * Read a request head (request line and header fields, head_len bytes from p,
 * framing already checked by sg_conn_scan_feed) in place: names and values
 * are NUL-terminated where they lie, r->in points at them. NULL, or why the
 * request cannot be served (a 400's reason, static).
 */
const char *sg_http_req_parse(struct sg_http_req *r, char *p, size_t head_len);

/* Remove chunked framing from n bytes at p (checked by the scanner), in place: the body length. */
size_t sg_http_dechunk(char *p, size_t n);

/*
 * Append the reply to out: status line, Date, r->head, Content-Type (default
 * application/json) and Content-Length where a body may be, Connection, the
 * body unless HEAD, 1xx, 204 or 304. out has no cap: like every sg_x*
 * allocation, running out of memory ends the process.
 */
void sg_http_reply_format(struct sg_http_req *r, struct sg_buf *out, int code, const char *reason,
                          const void *body, size_t len);

#endif
