/*
 * conn.c - client connections of one evhttp server: request framing,
 * total deadlines, the connection budget. See conn.h for the contract and
 * docs/ARCHITECTURE.md "Connection handling" for the why.
 *
 * Shape of one connection (libevent 2.1 has no per-request hook before the
 * headers are parsed, so the hook is the bufferevent evhttp reads from):
 *
 *   socket bufferevent  ->  filter bufferevent (ours)  ->  evhttp
 *      sock                   input filter: scan, hold partial requests
 *                             free_context: the connection is gone
 *
 * The input filter leaves a request's bytes in the socket bufferevent's
 * input until the scanner says the request is complete, then moves it to
 * evhttp in one piece; evhttp never sees a partial or ambiguous request, so
 * a deadline can close the connection at any time evhttp is not answering.
 * Errors found here (framing, deadlines, refusals) are answered by this
 * module directly on the socket, JSON like ingest's, then the connection is
 * closed.
 *
 * Output takes a detour: a filter bufferevent in libevent 2.1 hands data to
 * its socket only when the socket happens to become writable, and calls
 * evhttp's write callback as soon as the data left the filter, before it
 * reached the socket, so evhttp would close "Connection: close" replies
 * unsent. Instead an evbuffer callback moves evhttp's output straight to the
 * socket bufferevent, and evhttp's write callback is triggered from the
 * socket's, once everything is in the kernel.
 *
 * Not here: what a request means (ingest.c, admin.c), TLS, HTTP/2.
 */
#include "scrubgate/conn.h"
#include "scrubgate/common.h"
#include "scrubgate/log.h"
#include "scrubgate/metrics.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

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

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
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

/* The methods after which libevent reads a body (evhttp_method_may_have_body). */
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
        /* s->hdr holds, while the name is read, a bit per header name that no longer matches */
        for (int h = H_CL; h <= H_EXPECT; h++) {
            if ((size_t)s->sub >= hdr_lens[h] || lower(c) != (unsigned char)hdr_names[h][s->sub])
                s->hdr |= 1 << h;
        }
        if (s->sub < 1024)
            s->sub++;
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
        if (s->state == ST_VALUE && s->hdr == H_OTHER && !(s->flags & F_CR)) {
            /* The value of a header that does not decide the framing: its bytes up to the
             * line end (or a control character) at once, within max_header; whatever ends
             * the run goes through the byte-wise path below. */
            size_t run = 0, room = s->max_header > s->head_bytes ? s->max_header - s->head_bytes : 0;
            while (i + run < n && run < room && !is_ctl(u[i + run]))
                run++;
            i += run;
            s->total += run;
            s->head_bytes += run;
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

enum phase { P_HEAD, P_BODY, P_IDLE };

struct conn {
    struct sg_conns *pool;                     /* a reference */
    struct bufferevent *bev;                   /* the filter: evhttp's bufferevent */
    struct bufferevent *sock;                  /* the socket bufferevent under it */
    bufferevent_data_cb sock_read, sock_write; /* the filter's own socket callbacks, chained */
    bufferevent_event_cb sock_event;
    void *sock_arg;
    struct evbuffer_cb_entry *out_cb;
    struct event *timer;
    TAILQ_ENTRY(conn) idle_link;
    bool idle_listed;
    struct sg_conn_scan scan; /* the request being received */
    enum phase phase;
    uint64_t req_start; /* ms: its first byte (the accept, for the first request) */
    uint64_t idle_since;
    uint64_t close_at;
    uint64_t armed;            /* the deadline the timer is set for, 0 for none */
    size_t discarded;          /* input dropped after an error */
    unsigned in_flight;        /* requests handed to evhttp and not yet answered */
    bool out_pending;          /* evhttp's reply is on its way to the socket */
    bool eof_held;             /* the client half-closed while a reply was due: told to
                                * evhttp once the replies are out */
    bool discard;              /* input is dropped: an error reply is due or written */
    const struct reply *error; /* the reply to write when evhttp is not answering */
    struct reply bad;          /* a 400's: the scanner's reason (static text) */
    bool closing;              /* the error reply is written: close once it is sent */
    bool refused;              /* over the budget: answered 503 */
    bool evict;                /* idle and chosen to make room */
    bool pausing;              /* refused or evicted, not yet gone: accept is paused for it */
    bool lingering;            /* refused, reply sent, reading what the client still sends */
    bool closed;               /* handed back to evhttp to free */
};

struct limits {
    size_t max_header, max_body;
    uint64_t header_ms, request_ms, keepalive_ms;
};

struct sg_conns {
    struct evhttp *http;             /* borrowed; NULL after sg_conns_free */
    struct evconnlistener *listener; /* borrowed; NULL once forgotten */
    enum sg_conn_kind kind;
    struct budget *budget;
    struct budget own; /* the admin listener's */
    struct limits lim;
    TAILQ_HEAD(, conn) idle; /* idle keep-alive connections, oldest first */
    size_t open;
    int refs;      /* the owner's and one per connection */
    int pausing;   /* connections refused or evicted and not yet gone: accept is paused */
    int lingering; /* refused connections lingering after their 503 */
    uint64_t last_note, last_refusal;
    unsigned long n_deadline, n_refused, n_evicted, n_bad;
};

/*
 * After an error reply the connection lingers, reading and dropping what the
 * client still sends, so that the reply is not lost to a reset: for at most
 * LINGER_MS, and at most DISCARD_MAX bytes (a client pushing a huge body is
 * not read to its end).
 */
#define LINGER_MS 1000
#define REFUSED_LINGER_MS 200
#define DISCARD_MAX (1024 * 1024)

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

static void pool_unref(struct sg_conns *cs)
{
    if (--cs->refs == 0)
        free(cs);
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

/* False once evhttp has freed the connection (its callbacks are cleared). */
static bool alive(const struct conn *c)
{
    bufferevent_event_cb ecb = NULL;
    if (c->closed)
        return false;
    bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
    return ecb != NULL;
}

static bool busy(const struct conn *c)
{
    return c->in_flight > 0 || c->out_pending;
}

static void idle_remove(struct conn *c)
{
    if (c->idle_listed) {
        TAILQ_REMOVE(&c->pool->idle, c, idle_link);
        c->idle_listed = false;
    }
}

/* Hand the connection back to evhttp to free, as its own timeout would. */
static void close_now(struct conn *c)
{
    if (!alive(c))
        return;
    c->closed = true;
    idle_remove(c);
    bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

/* The deadline (monotonic ms) that applies now; 0 for none while evhttp is answering. */
static uint64_t deadline(const struct conn *c)
{
    const struct limits *l = &c->pool->lim;
    if (c->closing)
        return c->close_at;
    if (busy(c) || c->discard)
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
    if (c->closed)
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

/*
 * Write the pending error reply on the socket (evhttp has nothing of this
 * request and is not answering another) and close once it is sent.
 */
static void write_error(struct conn *c)
{
    if (c->closing || !alive(c))
        return;
    idle_remove(c);
    c->closing = true;
    const struct reply *r = c->error;
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s%s\"}\n",
                     r == &c->bad ? "bad framing: " : "", r->error);
    if (c->pool->kind == SG_CONN_INGEST)
        sg_metrics_ingest_reply("", atoi(r->status)); /* no request reached a site */
    evbuffer_add_printf(
        bufferevent_get_output(c->sock),
        "HTTP/1.1 %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
        "%sConnection: close\r\nContent-Length: %d\r\n\r\n%s",
        r->status, r->extra, n, body);
    c->close_at = sg_now_mono_ms() + LINGER_MS;
    arm(c);
}

/* Stop reading requests; answer with reply when evhttp is done with earlier ones. */
static void fail(struct conn *c, const struct reply *reply)
{
    c->discard = true;
    c->error = reply;
    if (!busy(c))
        write_error(c);
}

/* The request at the front of src is complete: move it to evhttp (dst). */
static void pass_request(struct conn *c, struct evbuffer *src, struct evbuffer *dst)
{
    const struct sg_conn_scan *s = &c->scan;
    evbuffer_drain(src, s->lead);
    if (s->trailer_at) {
        /* Trailer fields are dropped: libevent would add them to the request's headers. */
        evbuffer_remove_buffer(src, dst, s->trailer_at - s->lead);
        evbuffer_drain(src, s->total - s->trailer_at);
        evbuffer_add(dst, "\r\n", 2);
    } else {
        evbuffer_remove_buffer(src, dst, s->total - s->lead);
    }
}

/* Scan src from where the scanner stopped until it reports something. */
static enum sg_conn_frame scan_more(struct conn *c, struct evbuffer *src)
{
    struct evbuffer_iovec v[16];
    struct evbuffer_ptr at;
    for (;;) {
        size_t off = c->scan.total;
        if (evbuffer_get_length(src) <= off ||
            evbuffer_ptr_set(src, &at, off, EVBUFFER_PTR_SET) < 0)
            return SG_FRAME_MORE;
        int n = evbuffer_peek(src, -1, &at, v, (int)SG_ARRAY_SIZE(v));
        if (n <= 0)
            return SG_FRAME_MORE;
        for (int i = 0; i < n && i < (int)SG_ARRAY_SIZE(v); i++) {
            size_t used;
            enum sg_conn_frame r = sg_conn_scan_feed(&c->scan, v[i].iov_base, v[i].iov_len, &used);
            if (r != SG_FRAME_MORE)
                return r;
        }
    }
}

static void new_request(struct conn *c, uint64_t start)
{
    sg_conn_scan_init(&c->scan, c->pool->lim.max_header, c->pool->lim.max_body);
    c->phase = P_HEAD;
    c->req_start = start;
    idle_remove(c);
}

/* Drop input after an error; past DISCARD_MAX, close (from the timer, not from in here). */
static void drop(struct conn *c, struct evbuffer *src)
{
    c->discarded += evbuffer_get_length(src);
    evbuffer_drain(src, evbuffer_get_length(src));
    uint64_t now = sg_now_mono_ms();
    if (c->discarded > DISCARD_MAX && c->closing && !c->closed && c->close_at > now) {
        c->close_at = now;
        arm(c);
    }
}

/*
 * The filter between the socket and evhttp (src is the socket's input, dst
 * evhttp's). Whole requests go through; a partial one stays in src, where
 * the scanner resumes when more arrives.
 */
static enum bufferevent_filter_result input_filter_cb(struct evbuffer *src, struct evbuffer *dst,
                                                      ev_ssize_t limit,
                                                      enum bufferevent_flush_mode mode, void *arg)
{
    struct conn *c = arg;
    bool moved = false;
    SG_UNUSED(limit); /* evhttp sets no read watermark */
    SG_UNUSED(mode);

    if (c->discard || c->refused) {
        drop(c, src);
        return BEV_NEED_MORE;
    }
    while (evbuffer_get_length(src) > c->scan.total && !c->discard) {
        /* One request at a time: a pipelined one waits in the socket's input (whose read
         * watermark then stops reading) until the reply before it is out, so a client
         * that never reads its replies cannot make evhttp buffer without end. */
        if (c->in_flight)
            break;
        if (c->phase == P_IDLE)
            new_request(c, sg_now_mono_ms());
        switch (scan_more(c, src)) {
        case SG_FRAME_MORE:
            break;
        case SG_FRAME_HEAD:
            c->phase = P_BODY;
            /* Tell a client that waits for it to send the body (libevent would, but it only
             * sees the request once the body is here). */
            if (c->scan.expect_continue && !c->scan.http10 && !busy(c))
                bufferevent_write(c->sock, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            continue;
        case SG_FRAME_DONE:
            pass_request(c, src, dst);
            moved = true;
            c->in_flight++;
            sg_conn_scan_init(&c->scan, c->pool->lim.max_header, c->pool->lim.max_body);
            c->phase = P_IDLE;
            continue;
        case SG_FRAME_BAD:
            note(c->pool, &c->pool->n_bad);
            sg_debug("%s: closing a connection: bad framing: %s", kind_name[c->pool->kind],
                     c->scan.why ? c->scan.why : "?");
            c->bad = (struct reply){"400 Bad Request", "", c->scan.why ? c->scan.why : "?"};
            fail(c, &c->bad);
            break;
        case SG_FRAME_HEAD_TOO_LARGE:
            note(c->pool, &c->pool->n_bad);
            fail(c, &reply_head_too_large);
            break;
        case SG_FRAME_BODY_TOO_LARGE:
            fail(c, &reply_body_too_large);
            break;
        }
        break;
    }
    if (c->discard)
        drop(c, src);
    arm(c);
    return moved ? BEV_OK : BEV_NEED_MORE;
}

/* evhttp's output is only ever moved by out_added_cb. */
static enum bufferevent_filter_result output_filter_cb(struct evbuffer *src, struct evbuffer *dst,
                                                       ev_ssize_t limit,
                                                       enum bufferevent_flush_mode mode, void *arg)
{
    SG_UNUSED(src);
    SG_UNUSED(dst);
    SG_UNUSED(limit);
    SG_UNUSED(mode);
    SG_UNUSED(arg);
    return BEV_NEED_MORE;
}

/* evhttp wrote to its output: straight on to the socket (see the file comment). */
static void out_added_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    if (!info->n_added || !evbuffer_get_length(buf))
        return;
    c->out_pending = true;
    evbuffer_add_buffer(bufferevent_get_output(c->sock), buf);
}

static void sock_read_cb(struct bufferevent *sock, void *arg)
{
    struct conn *c = arg;
    c->sock_read(sock, c->sock_arg);
}

static void sock_event_cb(struct bufferevent *sock, short what, void *arg)
{
    struct conn *c = arg;
    if ((what & BEV_EVENT_EOF) && busy(c)) {
        /* A half-close (HTTP allows it): the replies due still go out, then evhttp hears
         * of the end. Told now, it would free the connection with them unsent. */
        c->eof_held = true;
        return;
    }
    c->sock_event(sock, what, c->sock_arg);
}

/* A reply is out: hand evhttp the next pipelined request, or the client's end. */
static void next_request(struct conn *c)
{
    if (evbuffer_get_length(bufferevent_get_input(c->sock)))
        c->sock_read(c->sock, c->sock_arg); /* the filter's own read: runs input_filter_cb */
    if (alive(c) && c->eof_held && !busy(c)) {
        c->eof_held = false;
        c->sock_event(c->sock, BEV_EVENT_EOF | BEV_EVENT_READING, c->sock_arg);
    }
}

/* The socket sent everything it had. */
static void sock_write_cb(struct bufferevent *sock, void *arg)
{
    struct conn *c = arg;
    c->sock_write(sock, c->sock_arg);
    if (evbuffer_get_length(bufferevent_get_output(sock)) || c->closed)
        return;
    if (c->closing) {
        /* The reply is out: a FIN after it, so a client still sending sees it before the
         * close; what it sends meanwhile is read and dropped until then. A refused client
         * lingers briefly: its listener stays paused meanwhile. */
        evutil_socket_t fd = bufferevent_getfd(sock);
        if (fd >= 0)
            shutdown(fd, SHUT_WR);
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
            arm(c);
        }
        return;
    }
    if (!c->out_pending)
        return;
    c->out_pending = false;
    if (c->in_flight)
        c->in_flight--;
    bufferevent_trigger(c->bev, EV_WRITE, 0); /* evhttp: the reply is sent */
    if (!alive(c))
        return;
    next_request(c);
    if (!alive(c))
        return;
    if (c->discard && !busy(c)) {
        write_error(c);
        return;
    }
    if (c->phase == P_IDLE && !busy(c)) {
        c->idle_since = sg_now_mono_ms();
        TAILQ_INSERT_TAIL(&c->pool->idle, c, idle_link);
        c->idle_listed = true;
    }
    arm(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    if (!alive(c)) {
        idle_remove(c);
        return;
    }
    if (c->refused && !c->closing) {
        c->discard = true;
        c->error = &reply_refused;
        write_error(c);
        return;
    }
    if (c->closing) {
        close_now(c);
        return;
    }
    if (c->evict) {
        /* Chosen to make room; unless a request arrived since, which then goes on. */
        c->evict = false;
        if (c->phase == P_IDLE && !busy(c)) {
            close_now(c);
            return;
        }
        resume_accept(c->pool, c);
    }
    uint64_t due = deadline(c);
    if (!due)
        return; /* evhttp is answering: armed again when its reply is sent */
    if (sg_now_mono_ms() < due) {
        arm(c);
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

static void free_conn_cb(void *arg)
{
    struct conn *c = arg;
    struct sg_conns *cs = c->pool;
    idle_remove(c);
    if (c->out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    if (c->timer)
        event_free(c->timer);
    atomic_fetch_sub(&cs->budget->open, 1);
    cs->open--;
    resume_accept(cs, c);
    if (c->lingering)
        cs->lingering--;
    free(c);
    pool_unref(cs);
}

/* Over the budget: close the oldest idle keep-alive connection, or refuse this one. */
static void over_budget(struct sg_conns *cs, struct conn *c)
{
    struct conn *old;
    while ((old = TAILQ_FIRST(&cs->idle)) != NULL) {
        idle_remove(old);
        if (!alive(old) || busy(old))
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

/* evhttp accepted a connection: give it our bufferevent (evhttp sets its descriptor). */
static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
    struct sg_conns *cs = arg;
    struct conn *c = sg_xcalloc(1, sizeof(*c));
    struct bufferevent *sock = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *bev = NULL;
    c->timer = evtimer_new(base, timer_cb, c);
    if (sock && c->timer)
        bev = bufferevent_filter_new(sock, input_filter_cb, output_filter_cb, BEV_OPT_CLOSE_ON_FREE,
                                     free_conn_cb, c);
    if (!bev) {
        /* evhttp then makes a plain bufferevent: this connection goes uncounted */
        sg_warn("%s: cannot set up a connection's filter", kind_name[cs->kind]);
        if (sock)
            bufferevent_free(sock);
        if (c->timer)
            event_free(c->timer);
        free(c);
        return NULL;
    }
    c->pool = cs;
    c->bev = bev;
    c->sock = sock;
    cs->refs++;
    cs->open++;
    bufferevent_getcb(sock, &c->sock_read, &c->sock_write, &c->sock_event, &c->sock_arg);
    /* At most one request (and framing overhead) is held in the socket's input: past it,
     * reading stops until evhttp took the request before (see input_filter_cb). */
    bufferevent_setwatermark(sock, EV_READ, 0,
                             2 * (cs->lim.max_header + cs->lim.max_body) + 65536);
    bufferevent_setcb(sock, sock_read_cb, sock_write_cb, sock_event_cb, c);
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), out_added_cb, c);
    new_request(c, sg_now_mono_ms());
    size_t open = atomic_fetch_add(&cs->budget->open, 1) + 1;
    if (open > atomic_load(&cs->budget->max))
        over_budget(cs, c);
    if (!c->refused)
        arm(c);
    return bev;
}

void sg_conns_set_limits(struct sg_conns *cs, const struct sg_limits *lim)
{
    cs->lim.max_header = lim->max_header_bytes;
    cs->lim.max_body = lim->max_body_bytes;
    cs->lim.header_ms = (uint64_t)lim->header_timeout_ms;
    cs->lim.request_ms = (uint64_t)lim->request_timeout_ms;
    cs->lim.keepalive_ms = (uint64_t)lim->keepalive_timeout_ms;
    if (!cs->http)
        return;
    /* evhttp checks the same limits again, and its inactivity timeout stays as a backstop
     * that never fires first (it also bounds writing a reply). */
    evhttp_set_max_body_size(cs->http, (ev_ssize_t)lim->max_body_bytes);
    evhttp_set_max_headers_size(cs->http, (ev_ssize_t)lim->max_header_bytes);
    uint64_t ms = cs->lim.header_ms > cs->lim.request_ms ? cs->lim.header_ms : cs->lim.request_ms;
    ms = (cs->lim.keepalive_ms > ms ? cs->lim.keepalive_ms : ms) + 1000;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evhttp_set_timeout_tv(cs->http, &tv);
}

struct sg_conns *sg_conns_new(struct evhttp *http, struct evconnlistener *listener,
                              const struct sg_limits *lim, enum sg_conn_kind kind)
{
    struct sg_conns *cs = sg_xcalloc(1, sizeof(*cs));
    cs->http = http;
    cs->listener = listener;
    cs->kind = kind;
    cs->refs = 1;
    TAILQ_INIT(&cs->idle);
    if (kind == SG_CONN_ADMIN) {
        atomic_init(&cs->own.open, 0);
        atomic_init(&cs->own.max, SG_CONN_ADMIN_MAX);
        cs->budget = &cs->own;
    } else {
        cs->budget = &clients;
    }
    sg_conns_set_limits(cs, lim);
    evhttp_set_bevcb(http, bev_cb, cs);
    return cs;
}

void sg_conns_forget_listener(struct sg_conns *cs)
{
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
    cs->http = NULL;
    cs->listener = NULL;
    pool_unref(cs);
}
