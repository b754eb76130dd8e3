/*
 * fuzz_http - raw bytes into libevent's HTTP server, with the limits a
 * worker applies (max body and header sizes, request timeout, methods).
 *
 * evhttp has no public call that adopts an already connected socket, so each
 * input goes through a pair of AF_UNIX stream sockets made by connect() on a
 * listener in the abstract namespace (no file, no port): the input is written
 * to the client end, the write side is shut, and the loop runs until evhttp
 * closes the connection. The request callback is trivial (no ingest); it
 * checks what evhttp promises us: a body never longer than max_body_bytes.
 *
 * libevent is Debian's build, not instrumented: the coverage libFuzzer sees
 * is this file's, so the callback and the reply reader branch on what evhttp
 * made of the input (method, body size, status of each reply) to give the
 * mutator a signal. Memory errors inside libevent show only as crashes or as
 * allocator errors that ASan's malloc catches (double or invalid free).
 */
#include "scrubgate/common.h"
#include "scrubgate/config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct evhttp *http;
static struct sockaddr_un addr;
static socklen_t addr_len;
static struct sg_limits limits;
static volatile size_t sink; /* keeps the callback's reads from being optimized out */

struct client {
    int fd;
    const uint8_t *data;
    size_t size, off;
    struct event *wev, *rev, *guard;
    char head[16]; /* the start of the reply stream, for the status of the first reply */
    size_t head_len;
};

static void request_cb(struct evhttp_request *req, void *arg)
{
    SG_UNUSED(arg);
    size_t body = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (body > limits.max_body_bytes)
        abort(); /* evhttp let through a body over the limit */
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: sink += 1; break;
    case EVHTTP_REQ_POST: sink += body ? 2 : 3; break;
    case EVHTTP_REQ_OPTIONS: sink += 4; break;
    default: sink += 5; break;
    }
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next)
        sink += strlen(kv->key) + strlen(kv->value);
    /* What ingest reads: the query's site, Host, Content-Type. */
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (query) {
        struct evkeyvalq params;
        if (evhttp_parse_query_str(query, &params) == 0) {
            const char *site = evhttp_find_header(&params, "site");
            sink += site ? strlen(site) : 0;
        }
        evhttp_clear_headers(&params);
    }
    const char *host = evhttp_find_header(in, "Host");
    const char *type = evhttp_find_header(in, "Content-Type");
    sink += (host ? 1u : 0u) + (type ? 2u : 0u);
    struct evbuffer *out = evbuffer_new();
    if (out)
        evbuffer_add(out, "{}\n", 3);
    evhttp_send_reply(req, body ? 202 : 204, "OK", out);
    if (out)
        evbuffer_free(out);
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
            client_done(c); /* evhttp closed the connection */
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
    client_done(arg); /* evhttp's own timeout should have fired first */
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
    http = base ? evhttp_new(base) : NULL;
    if (!http)
        abort();
    /* As a worker does (worker.c: apply_http_limits and the calls after it). */
    evhttp_set_max_body_size(http, (ev_ssize_t)limits.max_body_bytes);
    evhttp_set_max_headers_size(http, (ev_ssize_t)limits.max_header_bytes);
    struct timeval tv = {limits.request_timeout_ms / 1000,
                         (limits.request_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(http, &tv);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http, "application/json");
    evhttp_set_gencb(http, request_cb, NULL);

    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    int n = snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "sg-fuzz-http-%d", getpid());
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, addr_len) < 0 || listen(lfd, 16) < 0 ||
        !evhttp_accept_socket_with_handle(http, lfd))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client c = {.data = data, .size = size};
    c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&addr, addr_len) < 0 ||
        evutil_make_socket_nonblocking(c.fd) < 0)
        abort();
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
    /* What evhttp answered first: a signal for the mutator (400, 413, 2xx...). */
    if (c.head_len >= 12 && memcmp(c.head, "HTTP/1.", 7) == 0) {
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
