/*
 * conn.h - scrubgate's HTTP/1.1 server: client connections on one loop
 * (docs/API.md "Connection limits"; docs/ARCHITECTURE.md "Connection
 * handling").
 *
 * Each connection reads into one buffer, frames each request itself
 * (sg_conn_scan_feed) and hands whole requests only to the handler
 * (http.h), one at a time, so that:
 *   - deadlines are totals, not inactivity timeouts: headers within
 *     header_timeout_ms, the whole request within request_timeout_ms (both
 *     from its first byte; from the accept for a connection's first request),
 *     an idle keep-alive connection closed after keepalive_timeout_ms, a
 *     reply the client does not take within request_timeout_ms;
 *   - ambiguous framing never reaches a handler: it is answered 400 and the
 *     connection closed;
 *   - connections are counted against a budget, and past it the oldest idle
 *     keep-alive connection is closed, or the new client refused with 503,
 *     before any descriptor of the reserve is used.
 * The ingest servers of all workers share one budget (max_connections); the
 * admin listener has its own small one (SG_CONN_ADMIN_MAX).
 *
 * Everything here runs on the server's loop unless it says otherwise.
 */
#ifndef SCRUBGATE_CONN_H
#define SCRUBGATE_CONN_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

#include "scrubgate/http.h"

#include <event2/listener.h>
#include <sys/socket.h>

/* Connections the admin listener keeps open at most; part of the descriptor reserve. */
#define SG_CONN_ADMIN_MAX 16

/* ---- the framing of one request, byte by byte ---- */

/*
 * What sg_conn_scan_feed() found. Everything other than SG_FRAME_MORE and
 * SG_FRAME_HEAD ends the request.
 */
enum sg_conn_frame {
    SG_FRAME_MORE = 0,       /* every byte given was consumed; the request goes on */
    SG_FRAME_HEAD,           /* the header block is complete and valid; a body follows */
    SG_FRAME_DONE,           /* the request is complete (its length is total) */
    SG_FRAME_BAD,            /* ambiguous or malformed framing (why says which): 400 */
    SG_FRAME_HEAD_TOO_LARGE, /* the header block (or trailer) passed max_header: 400 */
    SG_FRAME_BODY_TOO_LARGE  /* the body passed max_body: 413 */
};

/*
 * The scanner's state: a value embedded by its user (not opaque, like git's
 * strbuf), reset per request with sg_conn_scan_init(). The fields below the
 * line are results, read-only for callers; the rest is private.
 */
struct sg_conn_scan {
    size_t max_header, max_body;
    int state;
    int sub; /* position inside the current token */
    int hdr; /* which interesting header the current line is */
    unsigned flags;
    char method[8];
    size_t method_len;
    char tail[8]; /* the request line's last 8 bytes: the version */
    size_t line_len;
    char value[16]; /* the current Transfer-Encoding or Expect value */
    size_t value_len;
    uint64_t num;       /* the current Content-Length or chunk size */
    uint64_t remaining; /* body or chunk bytes still expected */
    size_t head_bytes;  /* counted against max_header (trailer included) */
    /* ---- results ---- */
    size_t total;            /* bytes of this request consumed so far */
    size_t lead;             /* empty lines before the request line (dropped) */
    size_t head_end;         /* offset just after the header block, once known */
    size_t trailer_at;       /* offset of the trailer section (chunked), else 0 */
    uint64_t content_length; /* declared length, or the chunked body's length so far */
    bool chunked;
    bool http10;          /* the request line ends with HTTP/1.0 */
    bool expect_continue; /* "Expect: 100-continue" */
    const char *why;      /* for SG_FRAME_BAD: a short reason (static) */
};

void sg_conn_scan_init(struct sg_conn_scan *s, size_t max_header, size_t max_body);
/*
 * Consume up to n bytes of a request (p borrowed) and say what was found.
 * *used is how many of the n bytes belong to this request so far: on
 * SG_FRAME_DONE the rest belongs to the next request; on SG_FRAME_HEAD call
 * again with the rest. After an error the state is undefined until init.
 *
 * The grammar is RFC 9112's, made strict where peers disagree: header names
 * are tokens (no space before the colon), no obsolete line folding, no NUL,
 * no bare CR, Content-Length is digits only and several must agree,
 * Transfer-Encoding is exactly one "chunked" and never with Content-Length
 * or in HTTP/1.0, a method without a body (HEAD, TRACE, unknown) carries
 * none, chunk sizes are hex digits only (no extensions), and chunk data ends
 * with CRLF. Lines end with LF or CRLF, as libevent reads them.
 */
enum sg_conn_frame sg_conn_scan_feed(struct sg_conn_scan *s, const char *p, size_t n, size_t *used);

/* ---- connections ---- */

struct sg_conns;
enum sg_conn_kind { SG_CONN_INGEST = 0, SG_CONN_ADMIN };

/*
 * The process's budget of ingest connections, all workers together: set
 * once at start (server.c), from max_connections and the descriptor limit.
 * The count is atomic; any thread may read it.
 */
void sg_conn_set_client_limit(size_t max);
size_t sg_conn_client_limit(void);
size_t sg_conn_client_count(void);

/*
 * Descriptors the process needs besides client connections: a fixed margin
 * (stdio, lock file, sync log, dead letter, config and rule files, resolver),
 * per worker its loop, wake-up pipes, listener, spool files and sync thread,
 * per worker and destination max_inflight upstream connections with their
 * resolver sockets, the admin listener with SG_CONN_ADMIN_MAX connections,
 * and per server the few clients past its budget on their way out.
 * docs/OPERATIONS.md has the formula.
 */
size_t sg_conn_fd_reserve(const struct sg_config *cfg);

/*
 * A server on one loop: accept on the listening socket fd (owned; -1 for
 * none, sg_conns_adopt() then brings the connections), frame each request,
 * apply lim's header, body and time limits (copied), count connections
 * against the ingest budget or the admin one, and hand every complete
 * request to handler(req, arg) (http.h). NULL on failure (fd is closed).
 */
struct sg_conns *sg_conns_new(struct event_base *base, evutil_socket_t fd,
                              const struct sg_limits *lim, enum sg_conn_kind kind,
                              sg_http_handler_fn *handler, void *arg);
/* Serve a connected socket (non-blocking; owned from here on); sa is the peer (may be NULL). */
int sg_conns_adopt(struct sg_conns *c, evutil_socket_t fd, const struct sockaddr *sa,
                   socklen_t salen);
/* Header, body and time limits (copied), for connections open and to come. */
void sg_conns_set_limits(struct sg_conns *c, const struct sg_limits *lim);
/* The accepting socket (borrowed), for an error callback; NULL once closed. */
struct evconnlistener *sg_conns_listener(struct sg_conns *c);
/* Close the listening socket (shutdown): new clients are refused by the kernel. */
void sg_conns_close_listener(struct sg_conns *c);
/* Connections open now (this server only). */
size_t sg_conns_open(const struct sg_conns *c);
/*
 * Close every connection (a request still waiting for its reply sees its
 * close callback) and the listener, and free. NULL is a no-op.
 */
void sg_conns_free(struct sg_conns *c);

/*
 * A listening socket on host:port (a numeric address; names too when
 * names is true); *port 0 picks one and returns it. reuseport lets the
 * workers' sockets share the port. -1 (logged) on failure.
 */
int sg_conn_listen(const char *host, int *port, bool names, bool reuseport);

#endif
