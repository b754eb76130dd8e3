/*
 * conn.c - scrubgate's HTTP/1.1 server: client connections, request
 * framing, total deadlines, the connection budget. See conn.h for the
 * contract, http.c for reading a request and writing its reply, and
 * docs/ARCHITECTURE.md "Connection handling" for the why.
 *
 * Shape of one connection: a socket, a read and a write event, a timer.
 *
 *   recv -> input buffer -> scanner (one request's framing, byte by byte)
 *        -> complete request: read in place (http.c) -> handler
 *   reply -> output buffer -> send (at once; the rest when writable)
 *
 * The input is read into one buffer per connection; a complete request is
 * read where it lies and handed over, and its bytes stay until the reply is
 * written. One request at a time: the next is scanned once the reply
 * before it has reached the kernel. A handler may answer later (a 202
 * waits for the group commit); meanwhile no deadline runs, the connection
 * still reads (to see a client leave) without moving the request's bytes.
 * Errors found here (framing, deadlines, refusals) are answered by this
 * module, JSON like ingest's, then the connection is closed.
 *
 * A connection is freed only from its own timer callback (close_now()
 * activates it), so that nothing up the stack holds a freed connection.
 *
 * Not here: what a request means (ingest.c, admin.c), TLS, HTTP/2.
 */
#include "scrubgate/conn.h"
#include "scrubgate/common.h"
#include "scrubgate/log.h"
#include "scrubgate/metrics.h"

#include "http_req.h"

#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the scanner ---- */

enum {
    ST_START,   /* before the request line: empty lines are skipped */
    ST_RL,      /* request line */
    ST_HL,      /* start of a header line, or the empty line that ends the block */
    ST_NAME,    /* header name */
    ST_VALUE,   /* header value */
    ST_BODY,    /* Content-Length body */
    ST_CH_SIZE, /* chunk size line */
    ST_CH_DATA, /* chunk data */
    ST_CH_END   /* the CRLF after chunk data */
};

/* Headers whose value decides the framing. */
enum { H_OTHER = 0, H_CL, H_TE, H_EXPECT };
static const char *const hdr_names[] = {NULL, "content-length", "transfer-encoding", "expect"};
static const size_t hdr_lens[] = {0, sizeof("content-length") - 1, sizeof("transfer-encoding") - 1,
                                  sizeof("expect") - 1};

#define F_CR 0x01u       /* the previous byte was a CR: an LF must follow */
#define F_CL 0x02u       /* Content-Length seen */
#define F_TE 0x04u       /* Transfer-Encoding seen */
#define F_TRAILER 0x08u  /* header lines are the chunked trailer */
#define F_CL_HUGE 0x10u  /* a Content-Length too large to hold */
#define F_OVERLONG 0x20u /* the collected value did not fit */
#define F_SPACE 0x40u    /* a space was seen in the collected value (trailing so far) */

/* Past this many digits a length is larger than any limit: stop multiplying. */
#define HUGE_LENGTH 1000000000000000ULL

void sg_conn_scan_init(struct sg_conn_scan *s, size_t max_header, size_t max_body)
{
    memset(s, 0, sizeof(*s));
    s->max_header = max_header;
    s->max_body = max_body;
    s->state = ST_START;
}

static bool is_tchar(unsigned char c)
{
    return sg_http_tchar[c];
}

/* A control character that may not appear inside a line (HT may). */
static bool is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* The methods whose requests may carry a body (as libevent reads them); others carry none. */
static bool method_has_body(const struct sg_conn_scan *s)
{
    static const char *const m[] = {"POST", "PUT", "PATCH", "GET", "DELETE", "OPTIONS", "CONNECT"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(m); i++)
        if (s->method_len == strlen(m[i]) && memcmp(s->method, m[i], s->method_len) == 0)
            return true;
    return false;
}

static bool request_is_http10(const struct sg_conn_scan *s)
{
    char last[8];
    if (s->line_len < 8)
        return false;
    for (size_t i = 0; i < 8; i++)
        last[i] = s->tail[(s->line_len + i) % 8];
    return memcmp(last, "HTTP/1.0", 8) == 0;
}

static enum sg_conn_frame bad(struct sg_conn_scan *s, const char *why)
{
    s->why = why;
    return SG_FRAME_BAD;
}

/* A header line ended: act on the framing headers. */
static enum sg_conn_frame end_header(struct sg_conn_scan *s)
{
    if (s->flags & F_TRAILER)
        return SG_FRAME_MORE;
    switch (s->hdr) {
    case H_CL: {
        if (s->sub == 0)
            return bad(s, "invalid Content-Length");
        uint64_t v = (s->flags & F_CL_HUGE) ? UINT64_MAX : s->num;
        if (s->flags & F_CL) {
            if (v != s->content_length)
                return bad(s, "conflicting Content-Length headers");
        } else {
            s->content_length = v;
            s->flags |= F_CL;
        }
        break;
    }
    case H_TE:
        if (s->flags & F_TE)
            return bad(s, "more than one Transfer-Encoding header");
        if ((s->flags & F_OVERLONG) || s->value_len != 7 || memcmp(s->value, "chunked", 7) != 0)
            return bad(s, "Transfer-Encoding other than chunked");
        s->flags |= F_TE;
        break;
    case H_EXPECT:
        if (!(s->flags & F_OVERLONG) && s->value_len == 12 &&
            memcmp(s->value, "100-continue", 12) == 0)
            s->expect_continue = true;
        break;
    default:
        break;
    }
    return SG_FRAME_MORE;
}

/* The empty line after the headers: decide how the body is framed. */
static enum sg_conn_frame end_head(struct sg_conn_scan *s)
{
    if (s->flags & F_TRAILER)
        return SG_FRAME_DONE;
    s->head_end = s->total;
    s->http10 = request_is_http10(s);
    if ((s->flags & F_TE) && (s->flags & F_CL))
        return bad(s, "Content-Length together with Transfer-Encoding");
    if ((s->flags & F_TE) && s->http10)
        return bad(s, "Transfer-Encoding in an HTTP/1.0 request");
    if (!method_has_body(s)) {
        if ((s->flags & F_TE) || ((s->flags & F_CL) && s->content_length > 0))
            return bad(s, "a body on a method that takes none");
        return SG_FRAME_DONE;
    }
    if (s->flags & F_TE) {
        s->chunked = true;
        s->content_length = 0;
        s->state = ST_CH_SIZE;
        s->sub = 0;
        s->num = 0;
        return SG_FRAME_HEAD;
    }
    if ((s->flags & F_CL) && s->content_length > 0) {
        if (s->content_length > s->max_body)
            return SG_FRAME_BODY_TOO_LARGE;
        s->remaining = s->content_length;
        s->state = ST_BODY;
        return SG_FRAME_HEAD;
    }
    return SG_FRAME_DONE;
}

/* Collect a Transfer-Encoding or Expect value: lower case, surrounding blanks trimmed. */
static void collect(struct sg_conn_scan *s, unsigned char c)
{
    if (c == ' ' || c == '\t') {
        if (s->value_len)
            s->flags |= F_SPACE;
        return;
    }
    if (s->flags & F_SPACE) { /* a blank inside the value: keep it, it is not a token */
        s->flags &= ~F_SPACE;
        if (s->value_len < sizeof(s->value))
            s->value[s->value_len++] = ' ';
        else
            s->flags |= F_OVERLONG;
    }
    if (s->value_len < sizeof(s->value))
        s->value[s->value_len++] = (char)lower(c);
    else
        s->flags |= F_OVERLONG;
}

/* One byte of a Content-Length value: blanks, digits, blanks. */
static enum sg_conn_frame cl_byte(struct sg_conn_scan *s, unsigned char c)
{
    if (c == ' ' || c == '\t') {
        if (s->sub == 1)
            s->sub = 2;
        return SG_FRAME_MORE;
    }
    if (c < '0' || c > '9' || s->sub == 2)
        return bad(s, "invalid Content-Length");
    s->sub = 1;
    if (s->num >= HUGE_LENGTH)
        s->flags |= F_CL_HUGE;
    else
        s->num = s->num * 10 + (uint64_t)(c - '0');
    return SG_FRAME_MORE;
}

/* End of a chunk size line. */
static enum sg_conn_frame end_chunk_size(struct sg_conn_scan *s)
{
    if (s->sub == 0)
        return bad(s, "malformed chunk size");
    if (s->num == 0) {
        s->trailer_at = s->total;
        s->flags |= F_TRAILER;
        s->state = ST_HL;
        return SG_FRAME_MORE;
    }
    s->content_length += s->num;
    if (s->content_length > s->max_body)
        return SG_FRAME_BODY_TOO_LARGE;
    s->remaining = s->num;
    s->state = ST_CH_DATA;
    return SG_FRAME_MORE;
}

/* One byte at a line end (LF) in the current state. */
static enum sg_conn_frame line_end(struct sg_conn_scan *s)
{
    enum sg_conn_frame r;
    switch (s->state) {
    case ST_START:
        s->lead = s->total;
        return SG_FRAME_MORE;
    case ST_RL:
        s->state = ST_HL;
        return SG_FRAME_MORE;
    case ST_HL:
        return end_head(s);
    case ST_VALUE:
        r = end_header(s);
        s->state = ST_HL;
        return r;
    case ST_CH_SIZE:
        return end_chunk_size(s);
    case ST_CH_END:
        s->state = ST_CH_SIZE;
        s->sub = 0;
        s->num = 0;
        return SG_FRAME_MORE;
    default:
        return bad(s, "line break inside a header name");
    }
}

/*
 * One token byte of a header name. s->hdr holds, while the name is read, a
 * bit per framing header name that no longer matches; s->sub counts the
 * name's bytes (up to 1024).
 */
static inline void name_byte(struct sg_conn_scan *s, unsigned char c)
{
    if ((s->hdr & 0xe) != 0xe) {
        for (int h = H_CL; h <= H_EXPECT; h++) {
            if ((size_t)s->sub >= hdr_lens[h] || lower(c) != (unsigned char)hdr_names[h][s->sub])
                s->hdr |= 1 << h;
        }
    }
    if (s->sub < 1024)
        s->sub++;
}

/* One byte that is not a line end. */
static enum sg_conn_frame byte(struct sg_conn_scan *s, unsigned char c)
{
    switch (s->state) {
    case ST_START:
        s->state = ST_RL;
        /* fall through */
    case ST_RL:
        if (is_ctl(c) || c == '\t')
            return bad(s, "control character in the request line");
        if (s->sub == 0) {
            if (c == ' ')
                s->sub = 1; /* the method ended */
            else if (s->method_len < sizeof(s->method))
                s->method[s->method_len++] = (char)c;
            else
                s->method_len = sizeof(s->method) + 1; /* longer than any we know */
        }
        if (c != ' ') /* libevent drops trailing blanks before reading the version */
            s->tail[s->line_len++ % 8] = (char)c;
        return SG_FRAME_MORE;
    case ST_HL:
        if (c == ' ' || c == '\t')
            return bad(s, "obsolete line folding");
        if (!is_tchar(c))
            return bad(s, c == ':' ? "empty header name" : "invalid header name");
        s->state = ST_NAME;
        s->sub = 0;
        s->hdr = 0;
        s->num = 0;
        s->value_len = 0;
        s->flags &= ~(F_OVERLONG | F_SPACE | F_CL_HUGE);
        /* fall through */
    case ST_NAME:
        if (c == ':') {
            int match = 0;
            for (int h = H_CL; h <= H_EXPECT && !(s->flags & F_TRAILER); h++)
                if ((s->hdr & (1 << h)) == 0 && hdr_lens[h] == (size_t)s->sub)
                    match = h;
            s->hdr = match;
            s->sub = 0;
            s->state = ST_VALUE;
            return SG_FRAME_MORE;
        }
        if (!is_tchar(c))
            return bad(s, "invalid header name");
        name_byte(s, c);
        return SG_FRAME_MORE;
    case ST_VALUE:
        if (is_ctl(c))
            return bad(s, "control character in a header");
        if (s->hdr == H_CL)
            return cl_byte(s, c);
        if (s->hdr == H_TE || s->hdr == H_EXPECT)
            collect(s, c);
        return SG_FRAME_MORE;
    case ST_CH_SIZE: {
        int v = sg_hexval(c);
        if (v < 0)
            return bad(s, c == ';' ? "chunk extensions are not accepted" : "malformed chunk size");
        s->num = s->num * 16 + (uint64_t)v;
        s->sub++;
        if (s->content_length + s->num > s->max_body)
            return SG_FRAME_BODY_TOO_LARGE;
        return SG_FRAME_MORE;
    }
    case ST_CH_END:
        return bad(s, "chunk data longer than its size");
    default:
        return bad(s, "unexpected byte");
    }
}

/*
 * Header bytes that need no byte-wise look, taken at once within max_header:
 * a name's token bytes, or the value of a header that does not decide the
 * framing up to its line end (or a control character). Whatever ends the run
 * goes through the byte-wise path. The number of bytes taken.
 */
static size_t header_run(struct sg_conn_scan *s, const unsigned char *u, size_t n)
{
    size_t run = 0, room = s->max_header > s->head_bytes ? s->max_header - s->head_bytes : 0;
    n = SG_MIN(n, room);
    if (s->state == ST_NAME) {
        while (run < n && is_tchar(u[run]))
            name_byte(s, u[run++]);
    } else {
        while (run < n && !is_ctl(u[run]))
            run++;
    }
    s->total += run;
    s->head_bytes += run;
    return run;
}

static bool in_head(const struct sg_conn_scan *s)
{
    return s->state == ST_START || s->state == ST_RL || s->state == ST_HL || s->state == ST_NAME ||
           s->state == ST_VALUE;
}

enum sg_conn_frame sg_conn_scan_feed(struct sg_conn_scan *s, const char *p, size_t n, size_t *used)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    enum sg_conn_frame r = SG_FRAME_MORE;

    while (i < n && r == SG_FRAME_MORE) {
        if (s->state == ST_BODY || s->state == ST_CH_DATA) {
            size_t take = (size_t)SG_MIN((uint64_t)(n - i), s->remaining);
            i += take;
            s->total += take;
            s->remaining -= take;
            if (s->remaining == 0) {
                if (s->state == ST_BODY)
                    r = SG_FRAME_DONE;
                else
                    s->state = ST_CH_END;
            }
            continue;
        }
        if (!(s->flags & F_CR) &&
            (s->state == ST_NAME || (s->state == ST_VALUE && s->hdr == H_OTHER))) {
            i += header_run(s, u + i, n - i);
            if (i == n)
                break;
        }
        unsigned char c = u[i++];
        s->total++;
        if (in_head(s) || (s->flags & F_TRAILER)) {
            if (++s->head_bytes > s->max_header) {
                r = SG_FRAME_HEAD_TOO_LARGE;
                break;
            }
        } else if (s->total - s->head_end > 2 * s->max_body + 4096) {
            r = SG_FRAME_BODY_TOO_LARGE; /* chunk framing many times the data it carries */
            break;
        }
        if (s->flags & F_CR) {
            s->flags &= ~F_CR;
            r = c == '\n' ? line_end(s) : bad(s, "CR without LF");
            continue;
        }
        if (c == '\r' && s->state != ST_NAME) {
            s->flags |= F_CR;
            continue;
        }
        r = c == '\n' ? line_end(s) : byte(s, c);
    }
    *used = i;
    return r;
}

/* ---- budgets ---- */

struct budget {
    atomic_size_t open;
    atomic_size_t max;
};

/*
 * The ingest budget is the process's, like the descriptor limit it guards:
 * every worker counts against it with one atomic add per accept.
 */
static struct budget clients = {0, SIZE_MAX};

void sg_conn_set_client_limit(size_t max)
{
    atomic_store(&clients.max, max);
}

size_t sg_conn_client_limit(void)
{
    return atomic_load(&clients.max);
}

size_t sg_conn_client_count(void)
{
    return atomic_load(&clients.open);
}

/*
 * The reserve (docs/OPERATIONS.md): a fixed margin; per loop its epoll and
 * wake-up descriptors, listener, spool segments and sync thread; per server
 * (each worker's ingest, the admin listener) the clients past its budget on
 * their way out: one refused or evicted at a time plus up to
 * REFUSED_LINGER_MAX refused ones lingering; per upstream request in flight
 * its socket, the resolver's socket pair and a cached connection.
 */
#define REFUSED_LINGER_MAX 8
#define FD_MARGIN 64
#define FD_PER_LOOP 8
#define FD_LEAVING (1 + REFUSED_LINGER_MAX)
#define FD_PER_UPSTREAM 4

size_t sg_conn_fd_reserve(const struct sg_config *cfg)
{
    size_t dests = 0;
    for (size_t s = 0; s < cfg->n_sites; s++)
        dests += cfg->sites[s].n_dests;
    size_t workers = cfg->workers > 0 ? (size_t)cfg->workers : 1;
    size_t upstream = dests * cfg->limits.max_inflight * FD_PER_UPSTREAM;
    return FD_MARGIN + workers * (FD_PER_LOOP + FD_LEAVING + upstream) +
           (SG_CONN_ADMIN_MAX + 1 + FD_LEAVING);
}

/* ---- listening ---- */

int sg_conn_listen(const char *host, int *port, bool names, bool reuseport)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    int fd = -1, one = 1;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | (names ? 0 : AI_NUMERICHOST);
    snprintf(portstr, sizeof(portstr), "%d", *port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return sg_error("listen %s:%d: %s", host, *port, gai_strerror(rc));
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        sg_error("listen %s:%d: %s", host, *port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (*port == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* ---- connections ---- */

/* An error reply: fixed text only, nothing from the request is echoed. */
struct reply {
    const char *status; /* "400 Bad Request" */
    const char *extra;  /* more header lines, or "" */
    const char *error;  /* the JSON "error" value */
};

static const struct reply reply_head_too_large = {"431 Request Header Fields Too Large", "",
                                                  "request headers too large"};
static const struct reply reply_body_too_large = {"413 Payload Too Large", "",
                                                  "request body too large"};
static const struct reply reply_timeout = {"408 Request Timeout", "",
                                           "request not received in time"};
static const struct reply reply_refused = {"503 Service Unavailable", "Retry-After: 1\r\n",
                                           "too many connections, retry later"};
static const struct reply reply_not_implemented = {"501 Not Implemented", "",
                                                   "method not implemented"};

enum phase { P_HEAD, P_BODY, P_IDLE };

struct conn {
    struct sg_conns *pool;
    evutil_socket_t fd;
    struct event *rev, *wev, *timer;
    struct event *resume; /* the next request, on the loop's next turn (sent()) */
    TAILQ_ENTRY(conn) link; /* every connection of the pool */
    TAILQ_ENTRY(conn) idle_link;
    bool idle_listed;
    struct sg_conn_scan scan; /* the request being received */
    enum phase phase;
    /* Input: bytes [in_start, in_len) of in are unconsumed; a request starts at in_start. */
    char *in;
    size_t in_start, in_len, in_cap;
    struct sg_buf out; /* output not yet sent, from out_sent */
    size_t out_sent;
    struct sg_http_req req; /* the request the handler has, while in_flight */
    size_t req_len;         /* its bytes in the input, from in_start */
    char peer[64];
    uint64_t req_start; /* ms: its first byte (the accept, for the first request) */
    uint64_t idle_since;
    uint64_t out_since; /* output has waited for the socket since */
    uint64_t close_at;
    uint64_t armed;            /* the deadline the timer is set for, 0 for none */
    size_t discarded;          /* input dropped after an error */
    bool in_flight;            /* the handler has a request and has not answered */
    bool dispatching;          /* inside process(): a reply sent meanwhile does not recurse */
    bool reading;              /* the read event is added */
    bool eof;                  /* the client half-closed */
    bool dead;                 /* closed for good: freed from its timer */
    bool discard;              /* input is dropped: an error reply is due or written */
    const struct reply *error; /* the reply to write once nothing is in progress */
    struct reply bad;          /* a 400's: the scanner's reason (static text) */
    bool closing;              /* the last reply is written: close once it is sent */
    bool refused;              /* over the budget: answered 503 */
    bool evict;                /* idle and chosen to make room */
    bool pausing;              /* refused or evicted, not yet gone: accept is paused for it */
    bool lingering;            /* refused, reply sent, reading what the client still sends */
};

struct limits {
    size_t max_header, max_body;
    uint64_t header_ms, request_ms, keepalive_ms;
};

struct sg_conns {
    struct event_base *base;
    struct evconnlistener *listener; /* owned; NULL once closed */
    sg_http_handler_fn *handler;
    void *handler_arg;
    enum sg_conn_kind kind;
    struct budget *budget;
    struct budget own; /* the admin listener's */
    struct limits lim;
    TAILQ_HEAD(, conn) all;
    TAILQ_HEAD(, conn) idle; /* idle keep-alive connections, oldest first */
    size_t open;
    int pausing;   /* connections refused or evicted and not yet gone: accept is paused */
    int lingering; /* refused connections lingering after their 503 */
    uint64_t last_note, last_refusal;
    unsigned long n_deadline, n_refused, n_evicted, n_bad;
};

/*
 * After its last reply a connection lingers, reading and dropping what the
 * client still sends, so that the reply is not lost to a reset: for at most
 * LINGER_MS, and at most DISCARD_MAX bytes (a client pushing a huge body is
 * not read to its end).
 */
#define LINGER_MS 1000
#define REFUSED_LINGER_MS 200
#define DISCARD_MAX (1024 * 1024)
/* The input buffer's first size; past IN_KEEP it is freed once a request is answered. */
#define IN_FIRST 4096
#define IN_KEEP (16 * 1024)

static const char *const kind_name[] = {"ingest", "admin"};

/* Count what was cut off, and say so at most every 10 s (never any request content). */
static void note(struct sg_conns *cs, unsigned long *counter)
{
    uint64_t now = sg_now_mono_ms();
    (*counter)++;
    if (counter == &cs->n_refused && (!cs->last_refusal || now - cs->last_refusal >= 10000)) {
        cs->last_refusal = now;
        sg_warn("%s: connection limit reached (%s %zu): refusing new clients with 503",
                kind_name[cs->kind], cs->kind == SG_CONN_ADMIN ? "admin" : "max_connections",
                atomic_load(&cs->budget->max));
    }
    if (cs->last_note && now - cs->last_note < 10000)
        return;
    cs->last_note = now;
    sg_info("%s connections since the last note: %lu closed at a deadline, %lu refused, %lu "
            "idle closed to make room, %lu with bad framing",
            kind_name[cs->kind], cs->n_deadline, cs->n_refused, cs->n_evicted, cs->n_bad);
    cs->n_deadline = cs->n_refused = cs->n_evicted = cs->n_bad = 0;
}

/*
 * While a connection accepted past the budget (refused, or the idle one
 * closed for it) still holds its descriptor, accept stops: libevent's accept
 * loop checks between connections, so a burst waits in the kernel backlog.
 */
static void pause_accept(struct sg_conns *cs, struct conn *c)
{
    c->pausing = true;
    if (cs->pausing++ == 0 && cs->listener)
        evconnlistener_disable(cs->listener);
}

static void resume_accept(struct sg_conns *cs, struct conn *c)
{
    if (!c->pausing)
        return;
    c->pausing = false;
    if (--cs->pausing == 0 && cs->listener)
        evconnlistener_enable(cs->listener);
}

static bool out_pending(const struct conn *c)
{
    return c->out_sent < c->out.len;
}

static bool busy(const struct conn *c)
{
    return c->in_flight || out_pending(c);
}

static void idle_remove(struct conn *c)
{
    if (c->idle_listed) {
        TAILQ_REMOVE(&c->pool->idle, c, idle_link);
        c->idle_listed = false;
    }
}

static void set_reading(struct conn *c, bool on)
{
    if (c->reading == on || c->dead)
        return;
    c->reading = on;
    if (on)
        event_add(c->rev, NULL);
    else
        event_del(c->rev);
}

/* The handler's request is gone with its connection: tell whoever waits to answer it. */
static void forget_request(struct conn *c)
{
    if (!c->in_flight)
        return;
    c->in_flight = false;
    sg_http_close_fn *cb = c->req.close_cb;
    c->req.close_cb = NULL;
    if (cb)
        cb(&c->req, c->req.close_arg);
}

/*
 * Close the connection: from here on nothing is read, written or answered.
 * The memory goes from the timer's callback, so that no caller up the stack
 * (a handler, process()) holds a freed connection.
 */
static void close_now(struct conn *c)
{
    if (c->dead)
        return;
    set_reading(c, false);
    c->dead = true;
    idle_remove(c);
    event_del(c->wev);
    forget_request(c);
    event_active(c->timer, EV_TIMEOUT, 0);
}

static void conn_free(struct conn *c)
{
    struct sg_conns *cs = c->pool;
    forget_request(c);
    idle_remove(c);
    TAILQ_REMOVE(&cs->all, c, link);
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    event_free(c->resume);
    evutil_closesocket(c->fd);
    atomic_fetch_sub(&cs->budget->open, 1);
    cs->open--;
    resume_accept(cs, c);
    if (c->lingering)
        cs->lingering--;
    free(c->in);
    sg_buf_release(&c->out);
    sg_buf_release(&c->req.head);
    sg_http_fields_release(&c->req.in);
    free(c);
}

/* The deadline (monotonic ms) that applies now; 0 for none while a reply is due. */
static uint64_t deadline(const struct conn *c)
{
    const struct limits *l = &c->pool->lim;
    if (c->closing)
        return c->close_at;
    if (c->in_flight)
        return 0;
    if (out_pending(c))
        return c->out_since + l->request_ms; /* a reply the client does not take */
    if (c->discard)
        return 0;
    if (c->phase == P_IDLE)
        return c->idle_since + l->keepalive_ms;
    if (c->phase == P_HEAD)
        return c->req_start + SG_MIN(l->header_ms, l->request_ms);
    return c->req_start + l->request_ms;
}

/*
 * Set the timer for deadline(). A timer already set for the same deadline is
 * left alone: libevent takes an expired timer that is added again off its
 * active list, so re-adding it on every read would let a client that sends
 * a byte every loop turn put its deadline off for ever.
 */
static void arm(struct conn *c)
{
    if (c->dead)
        return;
    uint64_t due = deadline(c);
    if (!due) {
        event_del(c->timer);
        c->armed = 0;
        return;
    }
    if (due == c->armed && event_pending(c->timer, EV_TIMEOUT, NULL))
        return;
    c->armed = due;
    uint64_t now = sg_now_mono_ms(), left = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void sent(struct conn *c);

/* Send what output is pending; the rest when the socket can take it. */
static void flush_out(struct conn *c)
{
    while (out_pending(c)) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!event_pending(c->wev, EV_WRITE, NULL)) {
                c->out_since = sg_now_mono_ms();
                event_add(c->wev, NULL);
                arm(c);
            }
            return;
        }
        close_now(c); /* the client is gone */
        return;
    }
    sg_buf_reset(&c->out);
    c->out_sent = 0;
    event_del(c->wev);
    sent(c);
}

/*
 * The last reply is written: close once it is out (sent() takes it from
 * there), or when the client has not taken it within the request deadline.
 */
static void close_after_output(struct conn *c)
{
    idle_remove(c);
    c->closing = true;
    c->discard = true;
    c->close_at = sg_now_mono_ms() + c->pool->lim.request_ms;
}

/* Write the pending error reply (nothing is in progress) and close once it is sent. */
static void write_error(struct conn *c)
{
    if (c->closing || c->dead)
        return;
    const struct reply *r = c->error;
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s%s\"}\n",
                     r == &c->bad ? "bad framing: " : "", r->error);
    if (c->pool->kind == SG_CONN_INGEST)
        sg_metrics_ingest_reply("", atoi(r->status)); /* no request reached a site */
    sg_buf_printf(&c->out,
                  "HTTP/1.1 %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                  "%sConnection: close\r\nContent-Length: %d\r\n\r\n%s",
                  r->status, r->extra, n, body);
    close_after_output(c);
    arm(c);
    flush_out(c);
}

/* Stop reading requests and answer with reply (nothing is in progress when this runs). */
static void fail(struct conn *c, const struct reply *reply)
{
    c->discard = true;
    c->error = reply;
    if (!busy(c))
        write_error(c);
}

static void new_request(struct conn *c, uint64_t start)
{
    sg_conn_scan_init(&c->scan, c->pool->lim.max_header, c->pool->lim.max_body);
    c->phase = P_HEAD;
    c->req_start = start;
    idle_remove(c);
}

/* Drop input after an error; past DISCARD_MAX, close (from the timer). */
static void drop(struct conn *c)
{
    c->discarded += c->in_len - c->in_start;
    c->in_start = c->in_len = 0;
    uint64_t now = sg_now_mono_ms();
    if (c->discarded > DISCARD_MAX && c->closing && !c->dead && c->close_at > now) {
        c->close_at = now;
        arm(c);
    }
}

/*
 * The request at in_start is complete: read it in place and give it to the
 * handler. Its bytes stay where they are until the reply is written.
 */
static void dispatch(struct conn *c)
{
    const struct sg_conn_scan *s = &c->scan;
    struct sg_http_req *r = &c->req;
    char *p = c->in + c->in_start;
    sg_buf_reset(&r->head);
    r->close_cb = NULL;
    c->req_len = s->total;
    const char *why = sg_http_req_parse(r, p + s->lead, s->head_end - s->lead);
    if (s->chunked) {
        size_t end = s->trailer_at ? s->trailer_at : s->total;
        r->body = p + s->head_end;
        r->body_len = sg_http_dechunk(p + s->head_end, end - s->head_end);
    } else {
        r->body = p + s->head_end;
        r->body_len = (size_t)s->content_length;
    }
    sg_conn_scan_init(&c->scan, c->pool->lim.max_header, c->pool->lim.max_body);
    c->phase = P_IDLE;
    if (why) {
        note(c->pool, &c->pool->n_bad);
        c->bad = (struct reply){"400 Bad Request", "", why};
        fail(c, &c->bad);
        return;
    }
    if (r->method == SG_HTTP_OTHER) {
        fail(c, &reply_not_implemented);
        return;
    }
    c->in_flight = true;
    arm(c); /* no deadline while the handler answers */
    c->pool->handler(r, c->pool->handler_arg);
}

/* The input buffer has no room: make some, unless a request in it is being answered. */
static bool make_room(struct conn *c)
{
    if (c->in_flight)
        return false;
    if (c->in_start) {
        memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
        c->in_len -= c->in_start;
        c->in_start = 0;
        return true;
    }
    size_t max = 2 * (c->pool->lim.max_header + c->pool->lim.max_body) + 65536;
    if (c->in_cap >= max)
        return false; /* one request never needs more: the scanner says so first */
    size_t cap = c->in_cap ? SG_MIN(c->in_cap * 2, max) : IN_FIRST;
    char *in = realloc(c->in, cap);
    if (!in)
        return false;
    c->in = in;
    c->in_cap = cap;
    return true;
}

/*
 * Scan the input for the next request and hand it over, one request at a
 * time: a pipelined one waits in the input until the reply before it is
 * sent, so a client that never reads its replies cannot make the server
 * buffer without end.
 */
static void process(struct conn *c)
{
    if (c->dispatching)
        return; /* the loop below goes on */
    c->dispatching = true;
    while (!c->dead && !c->discard && !busy(c) && c->in_len - c->in_start > c->scan.total) {
        if (c->phase == P_IDLE)
            new_request(c, sg_now_mono_ms());
        size_t used, at = c->in_start + c->scan.total;
        enum sg_conn_frame r = sg_conn_scan_feed(&c->scan, c->in + at, c->in_len - at, &used);
        if (r == SG_FRAME_MORE)
            break;
        if (r == SG_FRAME_HEAD) {
            c->phase = P_BODY;
            /* Tell a client that waits for it to send the body. */
            if (c->scan.expect_continue && !c->scan.http10) {
                sg_buf_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                flush_out(c);
            }
            continue;
        }
        if (r == SG_FRAME_DONE) {
            dispatch(c);
            continue;
        }
        if (r == SG_FRAME_BODY_TOO_LARGE) {
            fail(c, &reply_body_too_large);
            break;
        }
        note(c->pool, &c->pool->n_bad);
        if (r == SG_FRAME_HEAD_TOO_LARGE) {
            fail(c, &reply_head_too_large);
            break;
        }
        sg_debug("%s: closing a connection: bad framing: %s", kind_name[c->pool->kind],
                 c->scan.why ? c->scan.why : "?");
        c->bad = (struct reply){"400 Bad Request", "", c->scan.why ? c->scan.why : "?"};
        fail(c, &c->bad);
    }
    c->dispatching = false;
    if (c->dead)
        return;
    if (c->discard && !c->closing && !busy(c))
        write_error(c);
    if (c->discard)
        drop(c);
    else if (c->eof && !busy(c))
        close_now(c); /* the client is done and nothing is due to it */
    arm(c);
}

/* Everything written so far has reached the kernel. */
static void sent(struct conn *c)
{
    if (c->closing) {
        /* The last reply is out: a FIN after it, so a client still sending sees it before
         * the close; what it sends meanwhile is read and dropped until then. A refused
         * client lingers briefly: its listener stays paused meanwhile. */
        shutdown(c->fd, SHUT_WR);
        if (c->eof) {
            close_now(c);
            return;
        }
        c->close_at = sg_now_mono_ms() + LINGER_MS;
        if (c->refused && !c->lingering) {
            /* The 503 is out: accept again. A few refused clients linger so that theirs
             * reaches them, not a reset; the rest, and hostile ones, are closed at once. */
            resume_accept(c->pool, c);
            if (c->pool->lingering >= REFUSED_LINGER_MAX) {
                close_now(c);
                return;
            }
            c->lingering = true;
            c->pool->lingering++;
            c->close_at = sg_now_mono_ms() + REFUSED_LINGER_MS;
        }
        c->armed = 0; /* the deadline moved: set the timer again */
        arm(c);
        return;
    }
    if (c->in_flight)
        return; /* a 100 Continue went out: the request goes on */
    set_reading(c, !c->eof);
    if (c->phase == P_IDLE && c->in_len == c->in_start && !c->idle_listed) {
        c->idle_since = sg_now_mono_ms();
        TAILQ_INSERT_TAIL(&c->pool->idle, c, idle_link);
        c->idle_listed = true;
    }
    /* The next request: at once inside process()'s loop; from anywhere else (a reply a
     * handler gave later, from its own loop over waiting requests) on the loop's next turn,
     * so that no handler runs inside another's reply. */
    if (c->dispatching)
        return;
    if (c->in_len > c->in_start || c->eof)
        event_active(c->resume, EV_TIMEOUT, 0);
    else
        arm(c);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    SG_UNUSED(fd);
    SG_UNUSED(what);
    process(arg);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    SG_UNUSED(what);
    if (c->in_len == c->in_cap && !make_room(c)) {
        set_reading(c, false); /* until the request before is answered */
        return;
    }
    ssize_t n = recv(fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            close_now(c); /* reset: whatever is due to it cannot reach it */
        return;
    }
    if (n == 0) {
        /* A half-close (HTTP allows it): replies due still go out, then the connection
         * closes. */
        c->eof = true;
        set_reading(c, false);
        if (c->closing && !out_pending(c)) {
            close_now(c);
            return;
        }
        if (!c->discard)
            process(c);
        return;
    }
    c->in_len += (size_t)n;
    if (c->discard || c->refused) {
        drop(c);
        return;
    }
    process(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    SG_UNUSED(fd);
    SG_UNUSED(what);
    flush_out(arg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (c->refused && !c->closing) {
        c->discard = true;
        c->error = &reply_refused;
        write_error(c);
        return;
    }
    if (c->closing) {
        if (sg_now_mono_ms() >= c->close_at)
            close_now(c);
        else
            arm(c);
        return;
    }
    if (c->evict) {
        /* Chosen to make room; unless a request arrived since, which then goes on. */
        c->evict = false;
        if (c->phase == P_IDLE && !busy(c) && c->in_len == c->in_start) {
            close_now(c);
            return;
        }
        resume_accept(c->pool, c);
    }
    uint64_t due = deadline(c);
    if (!due)
        return; /* a reply is due: armed again when it is sent */
    if (sg_now_mono_ms() < due) {
        arm(c);
        return;
    }
    if (out_pending(c)) {
        note(c->pool, &c->pool->n_deadline);
        close_now(c); /* the client does not take its reply */
        return;
    }
    if (c->phase == P_IDLE) {
        close_now(c); /* an idle keep-alive connection: nothing to answer */
        return;
    }
    note(c->pool, &c->pool->n_deadline);
    if (c->phase == P_HEAD && c->scan.total == 0)
        close_now(c); /* not one byte of a request: nothing to answer either */
    else
        fail(c, &reply_timeout);
}

/* Over the budget: close the oldest idle keep-alive connection, or refuse this one. */
static void over_budget(struct sg_conns *cs, struct conn *c)
{
    struct conn *old;
    while ((old = TAILQ_FIRST(&cs->idle)) != NULL) {
        idle_remove(old);
        if (old->dead || busy(old))
            continue;
        old->evict = true;
        pause_accept(cs, old);
        event_active(old->timer, EV_TIMEOUT, 0);
        note(cs, &cs->n_evicted);
        return;
    }
    c->refused = true;
    pause_accept(cs, c);
    event_active(c->timer, EV_TIMEOUT, 0);
    note(cs, &cs->n_refused);
}

int sg_conns_adopt(struct sg_conns *cs, evutil_socket_t fd, const struct sockaddr *sa,
                   socklen_t salen)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c) {
        c->rev = event_new(cs->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
        c->wev = event_new(cs->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
        c->timer = evtimer_new(cs->base, timer_cb, c);
        c->resume = evtimer_new(cs->base, resume_cb, c);
    }
    if (!c || !c->rev || !c->wev || !c->timer || !c->resume) {
        sg_warn("%s: cannot set up a connection: out of memory", kind_name[cs->kind]);
        if (c) {
            struct event *ev[] = {c->rev, c->wev, c->timer, c->resume};
            for (size_t i = 0; i < SG_ARRAY_SIZE(ev); i++)
                if (ev[i])
                    event_free(ev[i]);
        }
        free(c);
        evutil_closesocket(fd);
        return -1;
    }
    c->pool = cs;
    c->fd = fd;
    sg_buf_init(&c->out, 0);
    sg_buf_init(&c->req.head, 0);
    sg_http_fields_init(&c->req.in);
    c->req.conn = c;
    if (!sa || getnameinfo(sa, salen, c->peer, sizeof(c->peer), NULL, 0, NI_NUMERICHOST) != 0)
        c->peer[0] = '\0';
    TAILQ_INSERT_TAIL(&cs->all, c, link);
    cs->open++;
    set_reading(c, true);
    new_request(c, sg_now_mono_ms());
    size_t open = atomic_fetch_add(&cs->budget->open, 1) + 1;
    if (open > atomic_load(&cs->budget->max))
        over_budget(cs, c);
    if (!c->refused)
        arm(c);
    return 0;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    SG_UNUSED(l);
    sg_conns_adopt(arg, fd, sa, (socklen_t)len);
}

void sg_conns_set_limits(struct sg_conns *cs, const struct sg_limits *lim)
{
    cs->lim.max_header = lim->max_header_bytes;
    cs->lim.max_body = lim->max_body_bytes;
    cs->lim.header_ms = (uint64_t)lim->header_timeout_ms;
    cs->lim.request_ms = (uint64_t)lim->request_timeout_ms;
    cs->lim.keepalive_ms = (uint64_t)lim->keepalive_timeout_ms;
}

struct sg_conns *sg_conns_new(struct event_base *base, evutil_socket_t fd,
                              const struct sg_limits *lim, enum sg_conn_kind kind,
                              sg_http_handler_fn *handler, void *arg)
{
    struct sg_conns *cs = sg_xcalloc(1, sizeof(*cs));
    cs->base = base;
    cs->handler = handler;
    cs->handler_arg = arg;
    cs->kind = kind;
    TAILQ_INIT(&cs->all);
    TAILQ_INIT(&cs->idle);
    if (kind == SG_CONN_ADMIN) {
        atomic_init(&cs->own.open, 0);
        atomic_init(&cs->own.max, SG_CONN_ADMIN_MAX);
        cs->budget = &cs->own;
    } else {
        cs->budget = &clients;
    }
    sg_conns_set_limits(cs, lim);
    if (fd >= 0) {
        /* Backlog 0: fd already listens (sg_conn_listen's 1024); -1 would listen again, 128. */
        cs->listener = evconnlistener_new(base, accept_cb, cs,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
        if (!cs->listener) {
            evutil_closesocket(fd);
            free(cs);
            return NULL;
        }
    }
    return cs;
}

struct evconnlistener *sg_conns_listener(struct sg_conns *cs)
{
    return cs->listener;
}

void sg_conns_close_listener(struct sg_conns *cs)
{
    if (cs->listener)
        evconnlistener_free(cs->listener);
    cs->listener = NULL;
}

size_t sg_conns_open(const struct sg_conns *cs)
{
    return cs->open;
}

void sg_conns_free(struct sg_conns *cs)
{
    if (!cs)
        return;
    sg_conns_close_listener(cs);
    struct conn *c;
    while ((c = TAILQ_FIRST(&cs->all)) != NULL)
        conn_free(c);
    free(cs);
}

/* ---- the request's connection (http.h) ---- */

const char *sg_http_peer(const struct sg_http_req *req)
{
    return req->conn->peer;
}

struct event_base *sg_http_base(const struct sg_http_req *req)
{
    return req->conn->pool->base;
}

void sg_http_on_close(struct sg_http_req *req, sg_http_close_fn *cb, void *arg)
{
    req->close_cb = cb;
    req->close_arg = arg;
}

void sg_http_reply(struct sg_http_req *req, int code, const char *reason, const void *body,
                   size_t len)
{
    struct conn *c = req->conn;
    if (!c->in_flight || c->dead)
        return;
    req->close_cb = NULL;
    c->in_flight = false;
    sg_http_reply_format(req, &c->out, code, reason, body, len);
    /* The request's bytes are done with. */
    c->in_start += c->req_len;
    if (c->in_start == c->in_len) {
        c->in_start = c->in_len = 0;
        if (c->in_cap > IN_KEEP) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    if (req->close_after)
        close_after_output(c);
    arm(c);
    flush_out(c);
}
