/*
 * fuzz_http - raw bytes into scrubgate's HTTP server (conn.c framing and
 * connection, http.c reading the request and writing the reply), with the
 * limits a worker applies (max body and header sizes, request timeout).
 *
 * Each input is written to one end of a socket pair whose other end the
 * server adopts (sg_conns_adopt), the write side is shut, and the loop runs
 * until the server closes the connection. The handler checks what the
 * server promises its handlers: a body never longer than max_body_bytes, a
 * path that starts with '/' (or is "*"), header names that are tokens and
 * values without CR, LF or NUL. Every other request is answered later, from
 * a timer, as a 202 waiting for the group commit is, with a close callback
 * that drops the answer if the connection goes first. The client checks
 * that every reply stream starts with a status line.
 */
#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/conn.h"
#include "scrubgate/http.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct sg_conns *server;
static struct sg_limits limits;
static volatile size_t sink; /* keeps the callback's reads from being optimized out */
static struct event *later;  /* answers the deferred request */
static struct sg_http_req *deferred;
static unsigned n_requests;

struct client {
    int fd;
    const uint8_t *data;
    size_t size, off;
    struct event *wev, *rev, *guard;
    char head[16]; /* the start of the reply stream, for the status of the first reply */
    size_t head_len;
};

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!sg_is_alnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static void answer(struct sg_http_req *req)
{
    size_t body;
    sg_http_body(req, &body);
    sg_http_add_header(req, "X-Seen", sg_http_path(req)); /* a path is safe to echo here */
    sg_http_reply(req, body ? 202 : 204, "OK", "{}\n", 3);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    SG_UNUSED(fd);
    SG_UNUSED(what);
    SG_UNUSED(arg);
    struct sg_http_req *req = deferred;
    deferred = NULL;
    if (req)
        answer(req);
}

static void closed_cb(struct sg_http_req *req, void *arg)
{
    SG_UNUSED(arg);
    if (req != deferred)
        abort(); /* a close callback for a request nobody registered */
    deferred = NULL;
}

static void request_cb(struct sg_http_req *req, void *arg)
{
    SG_UNUSED(arg);
    size_t body;
    const char *b = sg_http_body(req, &body);
    if (body > limits.max_body_bytes)
        abort(); /* a body over the limit reached a handler */
    for (size_t i = 0; i < body; i++)
        sink += (unsigned char)b[i];
    switch (sg_http_method(req)) {
    case SG_HTTP_GET: sink += 1; break;
    case SG_HTTP_POST: sink += body ? 2 : 3; break;
    case SG_HTTP_OPTIONS: sink += 4; break;
    case SG_HTTP_OTHER: abort(); /* the server answers those itself */
    default: sink += 5; break;
    }
    const char *path = sg_http_path(req);
    if (!path || (path[0] != '/' && strcmp(path, "*") != 0))
        abort();
    const struct sg_http_fields *in = sg_http_headers(req);
    for (size_t i = 0; i < in->n; i++) {
        if (!is_token(in->v[i].name) || strpbrk(in->v[i].value, "\r\n"))
            abort();
        sink += strlen(in->v[i].name) + strlen(in->v[i].value);
    }
    /* What ingest reads: the query's site, Host, Content-Type. */
    const char *query = sg_http_query(req);
    size_t site_len = 0;
    const char *site = query ? sg_http_query_param(query, "site", &site_len) : NULL;
    if (site && (site_len > strlen(site) || site < query))
        abort(); /* a value outside the query */
    sink += site_len;
    const char *host = sg_http_header(req, "Host");
    const char *type = sg_http_header(req, "Content-Type");
    sink += (host ? 1u : 0u) + (type ? 2u : 0u);
    if (++n_requests % 2 == 0 && !deferred) {
        deferred = req;
        sg_http_on_close(req, closed_cb, NULL);
        event_active(later, EV_TIMEOUT, 0);
        return;
    }
    answer(req);
}

static void client_done(struct client *c)
{
    event_del(c->wev);
    event_del(c->rev);
    event_del(c->guard);
    event_base_loopbreak(base);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    SG_UNUSED(what);
    while (c->off < c->size) {
        ssize_t w = write(fd, c->data + c->off, c->size - c->off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return; /* wait for room */
        if (w <= 0)
            break; /* the server closed early: fine */
        c->off += (size_t)w;
    }
    shutdown(fd, SHUT_WR); /* EOF: the request stream ends here */
    event_del(c->wev);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    char buf[4096];
    SG_UNUSED(what);
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) {
            client_done(c); /* the server closed the connection */
            return;
        }
        size_t take = SG_MIN((size_t)r, sizeof(c->head) - c->head_len);
        memcpy(c->head + c->head_len, buf, take);
        c->head_len += take;
    }
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
    SG_UNUSED(fd);
    SG_UNUSED(what);
    client_done(arg); /* the server's request deadline should have closed it first */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    SG_UNUSED(argc);
    SG_UNUSED(argv);
    signal(SIGPIPE, SIG_IGN);
    sg_limits_default(&limits);
    /* Small enough that inputs reach them; in the range config accepts. */
    limits.max_body_bytes = 4096;
    limits.max_header_bytes = 2048;
    limits.request_timeout_ms = 2000;
    base = event_base_new();
    server = base ? sg_conns_new(base, -1, &limits, SG_CONN_INGEST, request_cb, NULL) : NULL;
    later = base ? evtimer_new(base, later_cb, NULL) : NULL;
    if (!server || !later)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client c = {.data = data, .size = size};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0 ||
        sg_conns_adopt(server, sv[1], NULL, 0) < 0)
        abort();
    c.fd = sv[0];
    c.wev = event_new(base, c.fd, EV_WRITE | EV_PERSIST, write_cb, &c);
    c.rev = event_new(base, c.fd, EV_READ | EV_PERSIST, read_cb, &c);
    c.guard = evtimer_new(base, guard_cb, &c);
    struct timeval tv = {limits.request_timeout_ms / 1000 + 1, 0};
    if (!c.wev || !c.rev || !c.guard)
        abort();
    event_add(c.wev, NULL);
    event_add(c.rev, NULL);
    event_add(c.guard, &tv);
    event_base_dispatch(base);
    /* Any reply starts with a status line; what the server answered first is a signal for
     * the mutator (400, 413, 2xx...). */
    if (c.head_len && (c.head_len < 12 || memcmp(c.head, "HTTP/1.1 ", 9) != 0))
        abort();
    if (c.head_len >= 12) {
        switch (c.head[9]) {
        case '2': sink += c.head[11] == '2' ? 10 : 11; break;
        case '4': sink += c.head[10] == '1' ? 12 : c.head[11] == '0' ? 13 : 14; break;
        case '5': sink += 15; break;
        default: sink += 16; break;
        }
    }
    event_free(c.wev);
    event_free(c.rev);
    event_free(c.guard);
    close(c.fd);
    return 0;
}
