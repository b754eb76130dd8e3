/*
 * Connections: the request framing scanner on its own (every split of the
 * input gives the same verdict), the descriptor reserve, and the real
 * server on 127.0.0.1: requests served whole, deadlines, the budget, error
 * replies.
 */
#include "testutil.h"

#include "scrubgate/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include "scrubgate/buf.h"
#include "scrubgate/http.h"

#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the scanner ---- */

#define MAX_HEADER 1024
#define MAX_BODY 100

struct verdict {
    enum sg_conn_frame r;
    size_t consumed;
    bool saw_head;
    struct sg_conn_scan s;
};

/* Feed text in pieces of step bytes until the request ends or the text does. */
static struct verdict feed(const char *text, size_t len, size_t step)
{
    struct verdict v = {SG_FRAME_MORE, 0, false, {0}};
    sg_conn_scan_init(&v.s, MAX_HEADER, MAX_BODY);
    while (v.consumed < len) {
        size_t used, k = SG_MIN(step, len - v.consumed);
        v.r = sg_conn_scan_feed(&v.s, text + v.consumed, k, &used);
        v.consumed += used;
        if (v.r == SG_FRAME_HEAD) {
            v.saw_head = true;
            v.r = SG_FRAME_MORE;
            continue;
        }
        if (v.r != SG_FRAME_MORE)
            break;
    }
    return v;
}

/* The verdict on text, the same whatever the pieces it arrives in. */
static struct verdict scan(const char *text, size_t len)
{
    static const size_t steps[] = {1, 2, 3, 7, 64, 100000};
    struct verdict first = feed(text, len, steps[0]);
    for (size_t i = 1; i < SG_ARRAY_SIZE(steps); i++) {
        struct verdict v = feed(text, len, steps[i]);
        assert_int_equal(v.r, first.r);
        if (v.r != SG_FRAME_BAD && v.r != SG_FRAME_HEAD_TOO_LARGE && v.r != SG_FRAME_BODY_TOO_LARGE)
            assert_int_equal(v.consumed, first.consumed);
        assert_int_equal(v.saw_head, first.saw_head);
    }
    return first;
}

#define SCAN(lit) scan(lit, sizeof(lit) - 1)

static void expect_bad(const char *text, const char *why)
{
    struct verdict v = scan(text, strlen(text));
    if (v.r != SG_FRAME_BAD)
        fail_msg("wanted 400 (%s), got %d for: %s", why, v.r, text);
    if (!v.s.why || !strstr(v.s.why, why))
        fail_msg("wanted \"%s\", got \"%s\" for: %s", why, v.s.why ? v.s.why : "", text);
}

static void content_length_request(void **state)
{
    (void)state;
    struct verdict v =
        SCAN("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(v.r, SG_FRAME_DONE);
    assert_true(v.saw_head);
    assert_int_equal(v.consumed, strlen("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                        "5\r\n\r\nhello"));
    assert_int_equal(v.s.content_length, 5);
    assert_int_equal(v.s.head_end, v.consumed - 5);
    assert_false(v.s.chunked);

    /* Bare LF line ends (libevent accepts them), blanks around the value, repeated equal values. */
    v = SCAN("POST / HTTP/1.1\nContent-Length:\t 3 \nContent-Length: 3\n\nabc");
    assert_int_equal(v.r, SG_FRAME_DONE);
    assert_int_equal(v.s.content_length, 3);

    /* No body: done at the empty line; Content-Length: 0 on HEAD is fine. */
    v = SCAN("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(v.r, SG_FRAME_DONE);
    assert_false(v.saw_head);
    v = SCAN("HEAD / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(v.r, SG_FRAME_DONE);
}

static void pipelined_and_leading_blank_lines(void **state)
{
    (void)state;
    const char two[] = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\n\r\n";
    struct verdict v = SCAN(two);
    assert_int_equal(v.r, SG_FRAME_DONE);
    assert_memory_equal(two + v.consumed, "GET /b", 6);

    /* An empty line or two before a request (some clients add one after a body) is skipped. */
    v = SCAN("\r\n\nGET / HTTP/1.1\r\n\r\n");
    assert_int_equal(v.r, SG_FRAME_DONE);
    assert_int_equal(v.s.lead, 3);
}

static void content_length_ambiguity_is_400(void **state)
{
    (void)state;
    expect_bad("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
               "conflicting Content-Length");
    expect_bad("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", "invalid Content-Length");
    expect_bad("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", "invalid Content-Length");
    expect_bad("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\nhello", "invalid Content-Length");
    expect_bad("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", "invalid Content-Length");
    expect_bad("POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello", "invalid Content-Length");
    /* A name libevent would not match but a proxy in front might. */
    expect_bad("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", "invalid header name");
    expect_bad("POST / HTTP/1.1\r\nHost: x\r\n Content-Length: 5\r\n\r\nhello",
               "obsolete line folding");
    expect_bad("HEAD / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "method that takes none");
    expect_bad("FROB / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "method that takes none");
}

static void transfer_encoding_ambiguity_is_400(void **state)
{
    (void)state;
    expect_bad("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n0\r\n\r\n",
               "Content-Length together with Transfer-Encoding");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
               "Content-Length together with Transfer-Encoding");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "other than chunked");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", "other than chunked");
    expect_bad(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "more than one Transfer-Encoding");
    expect_bad("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.0");
}

static void chunked_bodies(void **state)
{
    (void)state;
    const char ok[] = "POST / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n"
                      "3\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
    struct verdict v = SCAN(ok);
    assert_int_equal(v.r, SG_FRAME_DONE);
    assert_true(v.s.chunked);
    assert_int_equal(v.s.content_length, 13);
    assert_int_equal(v.consumed, sizeof(ok) - 1 - 4);
    assert_memory_equal(ok + v.s.trailer_at, "X-Trailer", 9);

    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
               "malformed chunk size");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
               "chunk extensions");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n",
               "malformed chunk size");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
               "malformed chunk size");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
               "malformed chunk size");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
               "malformed chunk size");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
               "chunk data longer than its size");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n",
               "chunk data longer than its size");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n",
               "CR without LF");
    expect_bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
               "Bad Name: 1\r\n\r\n",
               "invalid header name");
}

static void bytes_that_split_parsers(void **state)
{
    (void)state;
    static const char nul[] = "POST / HTTP/1.1\r\nContent-Length: 5\0 7\r\n\r\nhello";
    struct verdict v = scan(nul, sizeof(nul) - 1);
    assert_int_equal(v.r, SG_FRAME_BAD);
    expect_bad("POST / HTTP/1.1\r\nX-A: a\rContent-Length: 5\r\n\r\nhello", "CR without LF");
    expect_bad("POST / HTTP/1.1\r\nX-A: a\x01\r\n\r\n", "control character in a header");
    expect_bad("POST /\x7f HTTP/1.1\r\n\r\n", "control character in the request line");
    expect_bad("POST / HTTP/1.1\r\n: x\r\n\r\n", "empty header name");
    expect_bad("POST / HTTP/1.1\r\nX-A\r\n\r\n", "invalid header name");
    expect_bad("POST / HTTP/1.1\r\nX-A\n\n", "line break inside a header name");
}

static void limits(void **state)
{
    (void)state;
    struct verdict v = SCAN("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
    assert_int_equal(v.r, SG_FRAME_BODY_TOO_LARGE);
    v = SCAN("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n");
    assert_int_equal(v.r, SG_FRAME_BODY_TOO_LARGE);
    v = SCAN("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n");
    assert_int_equal(v.r, SG_FRAME_MORE);
    v = SCAN("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n60\r\n");
    assert_int_equal(v.r, SG_FRAME_MORE);
    v = SCAN("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n");
    assert_int_equal(v.r, SG_FRAME_BODY_TOO_LARGE);
    v = SCAN("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n");
    assert_int_equal(v.r, SG_FRAME_BODY_TOO_LARGE);

    /* Leading zeros are legal, but not without end: framing many times the data is refused. */
    char *many = sg_xcalloc(1, 8000);
    strcpy(many, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    memset(many + strlen(many), '0', 7000);
    v = scan(many, strlen(many));
    assert_int_equal(v.r, SG_FRAME_BODY_TOO_LARGE);

    /* The header block, then a trailer that would push it over. */
    memset(many, 0, 8000);
    strcpy(many, "GET / HTTP/1.1\r\nX-Big: ");
    memset(many + strlen(many), 'a', 1100);
    strcat(many, "\r\n\r\n");
    v = scan(many, strlen(many));
    assert_int_equal(v.r, SG_FRAME_HEAD_TOO_LARGE);
    memset(many, 0, 8000);
    strcpy(many, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: ");
    memset(many + strlen(many), 'a', 1000);
    strcat(many, "\r\n\r\n");
    v = scan(many, strlen(many));
    assert_int_equal(v.r, SG_FRAME_HEAD_TOO_LARGE);
    free(many);
}

static void expect_continue_is_seen(void **state)
{
    (void)state;
    struct verdict v =
        SCAN("POST / HTTP/1.1\r\nExpect:  100-Continue\r\nContent-Length: 2\r\n\r\n");
    assert_int_equal(v.r, SG_FRAME_MORE);
    assert_true(v.saw_head);
    assert_true(v.s.expect_continue);
    v = SCAN("POST / HTTP/1.1\r\nExpect: 100-continue-ish\r\nContent-Length: 2\r\n\r\n");
    assert_false(v.s.expect_continue);
}

/* ---- configuration ---- */

#define SITE_OK                                                                                    \
    "{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","                \
    "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":"           \
    "\"SGT_TOKEN\"}]}"

static struct sg_config *load(const char *limits, char **log)
{
    char *text = sg_xasprintf("{\"sites\":[" SITE_OK "]%s%s}", limits ? ",\"limits\":" : "",
                              limits ? limits : "");
    char *path = sg_write_temp(".json", text);
    setenv("SGT_SECRET", "0123456789abcdef-secret", 1);
    setenv("SGT_TOKEN", "token-value-xyz", 1);
    sg_capture_begin();
    struct sg_config *cfg = sg_config_load(path);
    *log = sg_capture_end();
    unlink(path);
    free(path);
    free(text);
    return cfg;
}

static void config_keys(void **state)
{
    char *log;
    (void)state;
    struct sg_config *cfg = load(NULL, &log);
    assert_non_null(cfg);
    assert_int_equal(cfg->limits.header_timeout_ms, 5000);
    assert_int_equal(cfg->limits.request_timeout_ms, 10000);
    assert_int_equal(cfg->limits.keepalive_timeout_ms, 30000);
    sg_config_free(cfg);
    free(log);

    cfg = load("{\"header_timeout_ms\":1500,\"keepalive_timeout_ms\":2500}", &log);
    assert_non_null(cfg);
    assert_int_equal(cfg->limits.header_timeout_ms, 1500);
    assert_int_equal(cfg->limits.keepalive_timeout_ms, 2500);
    sg_config_free(cfg);
    free(log);

    cfg = load("{\"header_timeout_ms\":50}", &log);
    assert_null(cfg);
    assert_non_null(strstr(log, "limits.header_timeout_ms: must be an integer from 100"));
    free(log);
    cfg = load("{\"keepalive_timeout_ms\":\"30s\"}", &log);
    assert_null(cfg);
    assert_non_null(strstr(log, "limits.keepalive_timeout_ms"));
    free(log);
}

/* ---- the descriptor reserve ---- */

static void reserve_follows_the_config(void **state)
{
    (void)state;
    struct sg_site sites[2];
    struct sg_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    memset(sites, 0, sizeof(sites));
    sg_limits_default(&cfg.limits);
    cfg.sites = sites;
    cfg.n_sites = 2;
    sites[0].n_dests = 1;
    sites[1].n_dests = 2;
    cfg.workers = 2;
    size_t base = sg_conn_fd_reserve(&cfg);
    /* per worker: its loop (8), clients on their way out (9), 3 destinations x 4 in flight x 4;
     * the admin listener, its connections and those on their way out */
    assert_int_equal(base, 64 + 2 * (8 + 9 + 3 * 4 * 4) + SG_CONN_ADMIN_MAX + 1 + 9);
    cfg.workers = 4;
    assert_int_equal(sg_conn_fd_reserve(&cfg) - base, 2 * (8 + 9 + 3 * 4 * 4));
    cfg.limits.max_inflight = 8;
    assert_int_equal(sg_conn_fd_reserve(&cfg),
                     64 + 4 * (8 + 9 + 3 * 8 * 4) + SG_CONN_ADMIN_MAX + 1 + 9);
}

/* ---- a live server ---- */

struct live {
    struct event_base *base;
    struct sg_conns *conns;
    struct sg_limits lim;
    int port;
    int handled;
    char last_body[256];
    struct sg_http_req *later; /* a request answered from the timer */
    struct event *later_ev;
    int gone_before_reply;     /* close callbacks seen */
    bool in_reply;             /* inside a later reply: no handler may run meanwhile */
};

/* The reply: what the request was, read when the reply is written. */
static void answer(struct sg_http_req *req)
{
    struct sg_buf out;
    size_t n;
    const char *in = sg_http_body(req, &n);
    const char *q = sg_http_query(req);
    sg_buf_init(&out, 0);
    if (strcmp(sg_http_path(req), "/big") == 0) {
        for (int i = 0; i < 100000; i++)
            sg_buf_printf(&out, "line %06d\n", i);
    } else if (strcmp(sg_http_path(req), "/huge") == 0) {
        sg_buf_reserve(&out, 16 << 20);
        memset(out.data, 'x', 16 << 20);
        out.len = 16 << 20;
    } else {
        const char *t = sg_http_header(req, "X-Trailer");
        sg_buf_printf(&out, "n=%zu trailer=%s path=%s query=%s body=%.*s.", n, t ? t : "none",
                      sg_http_path(req), q ? q : "-", (int)n, in);
    }
    sg_http_reply(req, 200, "OK", out.data, out.len);
    sg_buf_release(&out);
}

static void gone_cb(struct sg_http_req *req, void *arg)
{
    struct live *L = arg;
    assert_ptr_equal(req, L->later);
    L->later = NULL;
    L->gone_before_reply++;
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct live *L = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    struct sg_http_req *req = L->later;
    L->later = NULL;
    if (req) {
        /* A handler's loop over its waiting requests (commit.c's settle) must not see the
         * next pipelined request's handler run inside this reply. */
        L->in_reply = true;
        answer(req);
        L->in_reply = false;
    }
}

static void handler(struct sg_http_req *req, void *arg)
{
    struct live *L = arg;
    size_t n;
    const char *in = sg_http_body(req, &n);
    assert_false(L->in_reply);
    L->handled++;
    memset(L->last_body, 0, sizeof(L->last_body));
    memcpy(L->last_body, in, SG_MIN(n, sizeof(L->last_body) - 1));
    if (strcmp(sg_http_path(req), "/later") == 0) {
        /* Answered 100 ms later, as a 202 that waits for the group commit. */
        struct timeval tv = {0, 100000};
        L->later = req;
        sg_http_on_close(req, gone_cb, L);
        evtimer_add(L->later_ev, &tv);
        return;
    }
    answer(req);
}

static void live_start(struct live *L)
{
    L->base = event_base_new();
    int fd = sg_conn_listen("127.0.0.1", &L->port, false, false);
    assert_true(fd >= 0);
    L->conns = sg_conns_new(L->base, fd, &L->lim, SG_CONN_INGEST, handler, L);
    assert_non_null(L->conns);
    L->later_ev = evtimer_new(L->base, later_cb, L);
}

static int live_setup(void **state)
{
    struct live *L = sg_xcalloc(1, sizeof(*L));
    sg_limits_default(&L->lim);
    L->lim.header_timeout_ms = 300;
    L->lim.request_timeout_ms = 600;
    L->lim.keepalive_timeout_ms = 300;
    L->lim.max_body_bytes = 4096;
    sg_conn_set_client_limit(SIZE_MAX);
    *state = L;
    return 0;
}

static int live_teardown(void **state)
{
    struct live *L = *state;
    sg_conns_free(L->conns);
    if (L->later_ev)
        event_free(L->later_ev);
    if (L->base)
        event_base_free(L->base); /* runs the connections' last callbacks */
    assert_int_equal(sg_conn_client_count(), 0);
    sg_conn_set_client_limit(SIZE_MAX);
    free(L);
    return 0;
}

static int dial(struct live *L)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)L->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    /* The kernel completes the handshake from the backlog; the loop accepts later. */
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void say(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

struct reply {
    char *data; /* owned, NUL-terminated */
    size_t len;
    bool eof;
    uint64_t ms; /* when the wait ended, from its start */
};

/*
 * Run the loop until fd has received `want` (a substring) or EOF, or ms pass.
 * Polling with a bound: the loop and the client share this thread.
 */
static struct reply wait_for(struct live *L, int fd, const char *want, int ms)
{
    struct reply r = {sg_xcalloc(1, 1), 0, false, 0};
    uint64_t start = sg_now_mono_ms();
    while (sg_now_mono_ms() - start < (uint64_t)ms) {
        event_base_loop(L->base, EVLOOP_NONBLOCK);
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            r.data = sg_xrealloc(r.data, r.len + (size_t)n + 1);
            memcpy(r.data + r.len, buf, (size_t)n);
            r.len += (size_t)n;
            r.data[r.len] = 0;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            r.eof = true;
            break;
        }
        if (want && r.len && strstr(r.data, want))
            break;
        if (n < 0)
            usleep(1000);
    }
    r.ms = sg_now_mono_ms() - start;
    return r;
}

/*
 * Send p one byte every `every` ms while running the loop, until sent or the
 * connection ends; then wait up to 2 s for the end. Everything received.
 */
static struct reply trickle(struct live *L, int fd, const char *p, size_t n, int every)
{
    struct reply all = {sg_xcalloc(1, 1), 0, false, 0};
    for (size_t i = 0; i <= n && !all.eof; i++) {
        if (i < n && send(fd, p + i, 1, MSG_NOSIGNAL) != 1)
            i = n;
        struct reply r = wait_for(L, fd, NULL, i < n ? every : 2000);
        all.data = sg_xrealloc(all.data, all.len + r.len + 1);
        memcpy(all.data + all.len, r.data, r.len + 1);
        all.len += r.len;
        all.eof = r.eof;
        free(r.data);
    }
    return all;
}

/*
 * A client on its own thread that sends prefix, then fill bytes `chunk` at a
 * time every `gap_us`, until sending fails (the proxy closed) or `ms` pass:
 * unlike trickle(), its bytes arrive in (nearly) every turn of the loop.
 */
struct pusher {
    int fd;
    const char *prefix;
    size_t chunk;
    unsigned gap_us;
    uint64_t ms;
    size_t sent;
    atomic_bool failed;         /* sending failed: the proxy closed the connection */
    atomic_uint_least64_t took; /* until then, or until ms passed; 0 while sending */
    uint64_t answered;          /* ms from the start to the proxy's first byte, 0 for none */
    pthread_t thread;
};

static void *push_main(void *arg)
{
    struct pusher *p = arg;
    static char fill[65536];
    memset(fill, 'a', sizeof(fill));
    uint64_t start = sg_now_mono_ms();
    if (send(p->fd, p->prefix, strlen(p->prefix), MSG_NOSIGNAL) < 0)
        p->failed = true;
    while (!p->failed && sg_now_mono_ms() - start < p->ms) {
        ssize_t n = send(p->fd, fill, SG_MIN(p->chunk, sizeof(fill)), MSG_NOSIGNAL);
        if (n <= 0)
            p->failed = true;
        else
            p->sent += (size_t)n;
        if (p->gap_us)
            usleep(p->gap_us);
    }
    p->took = sg_now_mono_ms() - start;
    return NULL;
}

/* Run the loop while p pushes, until it is done; everything received. */
static struct reply push(struct live *L, struct pusher *p)
{
    struct reply all = {sg_xcalloc(1, 1), 0, false, 0};
    struct timeval tv = {1, 0};
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* the loop must run meanwhile */
    uint64_t start = sg_now_mono_ms();
    assert_int_equal(pthread_create(&p->thread, NULL, push_main, p), 0);
    for (;;) {
        struct reply r = wait_for(L, p->fd, NULL, 5);
        if (r.len && !p->answered)
            p->answered = sg_now_mono_ms() - start;
        all.data = sg_xrealloc(all.data, all.len + r.len + 1);
        memcpy(all.data + all.len, r.data, r.len + 1);
        all.len += r.len;
        all.eof = all.eof || r.eof;
        free(r.data);
        if (p->took) /* the thread is done */
            break;
    }
    pthread_join(p->thread, NULL);
    return all;
}

/* Run the loop for ms (for things that must not happen). */
static void spin(struct live *L, int ms)
{
    uint64_t start = sg_now_mono_ms();
    while (sg_now_mono_ms() - start < (uint64_t)ms) {
        event_base_loop(L->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void serves_whole_requests(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = dial(L);
    say(fd, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello");
    spin(L, 50);
    assert_int_equal(L->handled, 0); /* the handler has not seen a partial request */
    say(fd, " world");
    struct reply r = wait_for(L, fd, "n=11", 2000);
    assert_non_null(strstr(r.data, "HTTP/1.1 200 OK"));
    assert_string_equal(L->last_body, "hello world");
    free(r.data);

    /* Two requests in one write, then one that asks for the close: all answered in order. */
    say(fd, "POST /x HTTP/1.1\r\nContent-Length: 1\r\n\r\naGET /x HTTP/1.1\r\n\r\n");
    r = wait_for(L, fd, "n=0 ", 2000);
    assert_int_equal(count(r.data, "HTTP/1.1 200 OK"), 2);
    assert_true(strstr(r.data, "n=1 ") < strstr(r.data, "n=0 "));
    free(r.data);
    say(fd, "GET /big HTTP/1.1\r\nConnection: close\r\n\r\n");
    r = wait_for(L, fd, NULL, 5000);
    assert_true(r.eof);
    assert_non_null(strstr(r.data, "line 099999\n")); /* the whole reply before the close */
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 4);
}

static void chunked_trailer_is_dropped(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = dial(L);
    say(fd, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
            "X-Trailer: injected\r\n\r\n");
    struct reply r = wait_for(L, fd, "trailer=", 2000);
    assert_non_null(strstr(r.data, "n=5 trailer=none"));
    assert_string_equal(L->last_body, "hello");
    free(r.data);
    close(fd);
}

static void expect_continue(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = dial(L);
    say(fd, "POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    struct reply r = wait_for(L, fd, "\r\n\r\n", 2000);
    assert_string_equal(r.data, "HTTP/1.1 100 Continue\r\n\r\n");
    free(r.data);
    say(fd, "abc");
    r = wait_for(L, fd, "n=3", 2000);
    assert_non_null(strstr(r.data, "HTTP/1.1 200 OK"));
    assert_null(strstr(r.data, "100 Continue")); /* libevent does not send a second one */
    free(r.data);
    close(fd);
}

static void bad_framing_is_400_and_never_reaches_the_handler(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = dial(L);
    say(fd, "POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabcGET /smuggled "
            "HTTP/1.1\r\n\r\n");
    struct reply r = wait_for(L, fd, NULL, 3000);
    assert_true(r.eof);
    assert_non_null(strstr(r.data, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(r.data, "Connection: close\r\n"));
    assert_non_null(
        strstr(r.data, "{\"error\":\"bad framing: conflicting Content-Length headers\"}"));
    assert_int_equal(count(r.data, "HTTP/1.1"), 1);
    /* The declared lengths match the bodies (the replies are fixed strings). */
    const char *body = strstr(r.data, "\r\n\r\n") + 4;
    char want[64];
    snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(r.data, want));
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 0);

    /* After a good request on the same connection: that one is answered first. */
    fd = dial(L);
    say(fd, "GET /x HTTP/1.1\r\n\r\nPOST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    r = wait_for(L, fd, NULL, 3000);
    assert_true(r.eof);
    assert_true(strstr(r.data, "200 OK") < strstr(r.data, "400 Bad Request"));
    assert_non_null(strstr(r.data, "malformed chunk size"));
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 1);

    fd = dial(L);
    say(fd, "POST /x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
    r = wait_for(L, fd, NULL, 3000);
    assert_true(r.eof);
    assert_non_null(strstr(r.data, "HTTP/1.1 413 Payload Too Large\r\n"));
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 1);
}

static void a_refused_body_is_not_read_to_its_end(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = dial(L);
    /* Pushed as fast as the proxy reads: closed once 1 MiB was dropped after the 413, well
     * before the 1 s linger ends. */
    struct pusher p = {.fd = fd,
                       .prefix = "POST /x HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n",
                       .chunk = 65536,
                       .ms = 5000};
    struct reply r = push(L, &p);
    assert_true(p.failed);
    assert_in_range(p.took, 0, 700);
    assert_true(p.sent > 1u << 20);
    assert_non_null(strstr(r.data, "HTTP/1.1 413 Payload Too Large\r\n"));
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 0);
}

static void deadlines_are_totals(void **state)
{
    struct live *L = *state;
    L->lim.max_header_bytes = 1 << 20;
    live_start(L);

    /* Headers trickled: cut at header_timeout_ms (300) however often bytes come. */
    int fd = dial(L);
    uint64_t start = sg_now_mono_ms();
    const char *head = "POST /x HTTP/1.1\r\nHost: a\r\nX-Slow: abcdefghijklmnopqrstuvwxyz";
    struct reply r = trickle(L, fd, head, strlen(head), 20);
    uint64_t took = sg_now_mono_ms() - start;
    assert_true(r.eof);
    assert_in_range(took, 280, 900);
    assert_non_null(strstr(r.data, "HTTP/1.1 408 Request Timeout"));
    free(r.data);
    close(fd);

    /* Bytes in every turn of the loop do not put the deadline off either (a timer added
     * again once due is taken off libevent's active list). */
    fd = dial(L);
    struct pusher fast = {
        .fd = fd, .prefix = "GET /x HTTP/1.1\r\nX-Fast: ", .chunk = 1, .gap_us = 20, .ms = 3000};
    r = push(L, &fast);
    assert_true(fast.failed);
    assert_in_range(fast.answered, 280, 600);
    assert_non_null(strstr(r.data, "HTTP/1.1 408 Request Timeout"));
    free(r.data);
    close(fd);

    /* Headers on time, body trickled: cut at request_timeout_ms (600) from the first byte. */
    fd = dial(L);
    start = sg_now_mono_ms();
    say(fd, "POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
    char body[100];
    memset(body, 'x', sizeof(body));
    r = trickle(L, fd, body, sizeof(body), 20);
    took = sg_now_mono_ms() - start;
    assert_true(r.eof);
    assert_in_range(took, 580, 1300);
    assert_non_null(strstr(r.data, "HTTP/1.1 408 Request Timeout"));
    free(r.data);
    close(fd);

    /* Connected, nothing sent: closed at the header deadline, silently. */
    fd = dial(L);
    r = wait_for(L, fd, NULL, 2000);
    assert_true(r.eof);
    assert_int_equal(r.len, 0);
    assert_in_range(r.ms, 280, 900);
    free(r.data);
    close(fd);

    /* Idle keep-alive: closed keepalive_timeout_ms (300) after the reply, silently. */
    fd = dial(L);
    say(fd, "GET /x HTTP/1.1\r\n\r\n");
    r = wait_for(L, fd, "n=0", 2000);
    free(r.data);
    r = wait_for(L, fd, NULL, 2000);
    assert_true(r.eof);
    assert_int_equal(r.len, 0);
    assert_in_range(r.ms, 280, 900);
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 1);
}

static void budget_refuses_or_makes_room(void **state)
{
    struct live *L = *state;
    sg_conn_set_client_limit(2);
    L->lim.header_timeout_ms = 10000;
    L->lim.request_timeout_ms = 10000;
    L->lim.keepalive_timeout_ms = 10000;
    live_start(L);

    /* Two clients mid-request take the budget: the third is refused with 503. */
    int a = dial(L), b = dial(L);
    say(a, "POST /x HTTP/1.1\r\n");
    say(b, "POST /x HTTP/1.1\r\n");
    spin(L, 50);
    assert_int_equal(sg_conn_client_count(), 2);
    int c = dial(L);
    say(c, "GET /x HTTP/1.1\r\n\r\n");
    struct reply r = wait_for(L, c, NULL, 2000);
    assert_true(r.eof);
    assert_non_null(strstr(r.data, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(r.data, "Retry-After: 1\r\n"));
    free(r.data);
    close(c);
    assert_int_equal(L->handled, 0);

    /* A slot frees: the next client is served. */
    close(a);
    spin(L, 50);
    c = dial(L);
    say(c, "GET /x HTTP/1.1\r\n\r\n");
    r = wait_for(L, c, "n=0", 2000);
    assert_non_null(strstr(r.data, "200 OK"));
    free(r.data);

    /* b finishes too: both are idle keep-alive now, c the newer. A new client makes room by
     * closing the oldest idle one (b), not by being refused. */
    say(b, "\r\n");
    r = wait_for(L, b, "n=0", 2000);
    free(r.data);
    spin(L, 20);
    say(c, "GET /x HTTP/1.1\r\n\r\n");
    r = wait_for(L, c, "n=0", 2000);
    free(r.data);
    int d = dial(L);
    say(d, "GET /x HTTP/1.1\r\n\r\n");
    r = wait_for(L, d, "n=0", 2000);
    assert_non_null(strstr(r.data, "200 OK"));
    free(r.data);
    r = wait_for(L, b, NULL, 2000);
    assert_true(r.eof);
    assert_int_equal(r.len, 0);
    free(r.data);
    r = wait_for(L, c, NULL, 100);
    assert_false(r.eof); /* the most recently used stays */
    free(r.data);
    close(b);
    close(c);
    close(d);
    spin(L, 50);
    assert_int_equal(sg_conns_open(L->conns), 0);
}

/* Read one reply's status line and headers from r (NULL-terminated); the header block's end. */
static const char *head_end(const struct reply *r)
{
    const char *e = strstr(r->data, "\r\n\r\n");
    assert_non_null(e);
    return e + 4;
}

static void request_lines_and_versions(void **state)
{
    struct live *L = *state;
    live_start(L);
    static const struct {
        const char *request, *status, *error;
    } refused[] = {
        {"BREW /x HTTP/1.1\r\n\r\n", "501 Not Implemented", "method not implemented"},
        {"TRACE /x HTTP/1.1\r\n\r\n", "501 Not Implemented", "method not implemented"},
        {"GET x HTTP/1.1\r\n\r\n", "400 Bad Request", "bad request target"},
        {"GET http://host HTTP/1.1\r\n\r\n", "400 Bad Request", "bad request target"},
        {"GET / HTTP/2.0\r\n\r\n", "400 Bad Request", "unsupported HTTP version"},
        {"GET /\r\n\r\n", "400 Bad Request", "bad request line"},
        {"GET  / HTTP/1.1\r\n\r\n", "400 Bad Request", "bad request line"},
    };
    for (size_t i = 0; i < SG_ARRAY_SIZE(refused); i++) {
        int fd = dial(L);
        say(fd, refused[i].request);
        say(fd, "GET /x HTTP/1.1\r\n\r\n"); /* never read: the connection closes */
        struct reply r = wait_for(L, fd, NULL, 3000);
        assert_true(r.eof);
        assert_true(strncmp(r.data, "HTTP/1.1 ", 9) == 0);
        assert_true(strncmp(r.data + 9, refused[i].status, strlen(refused[i].status)) == 0);
        assert_non_null(strstr(r.data, refused[i].error));
        assert_non_null(strstr(r.data, "Connection: close\r\n"));
        assert_int_equal(count(r.data, "HTTP/1.1 "), 1);
        free(r.data);
        close(fd);
    }
    assert_int_equal(L->handled, 0);

    /* Absolute form: the path and query are what count; a fragment is not part of either. */
    int fd = dial(L);
    say(fd, "GET http://shop.example/v1/x?site=shop#frag HTTP/1.1\r\n\r\n");
    struct reply r = wait_for(L, fd, "body=", 2000);
    assert_non_null(strstr(r.data, "path=/v1/x query=site=shop body="));
    assert_non_null(strstr(r.data, "Date: "));
    free(r.data);

    /* HEAD: the length a GET would get, no body; the connection goes on. */
    say(fd, "HEAD /x HTTP/1.1\r\n\r\n");
    r = wait_for(L, fd, "\r\n\r\n", 2000);
    spin(L, 50);
    free(r.data);
    r = wait_for(L, fd, NULL, 50);
    assert_int_equal(r.len, 0); /* nothing after the head */
    free(r.data);
    say(fd, "GET /x HTTP/1.1\r\n\r\n");
    r = wait_for(L, fd, "body=.", 2000);
    assert_non_null(strstr(r.data, "HTTP/1.1 200 OK"));
    free(r.data);
    close(fd);

    /* HTTP/1.0 closes after the reply unless it asks to keep the connection. */
    fd = dial(L);
    say(fd, "GET /x HTTP/1.0\r\n\r\n");
    r = wait_for(L, fd, NULL, 2000);
    assert_true(r.eof);
    assert_non_null(strstr(r.data, "Connection: close\r\n"));
    assert_non_null(strstr(head_end(&r), "body=."));
    free(r.data);
    close(fd);
    fd = dial(L);
    say(fd, "GET /x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    r = wait_for(L, fd, "body=.", 2000);
    assert_false(r.eof);
    assert_non_null(strstr(r.data, "Connection: keep-alive\r\n"));
    free(r.data);
    say(fd, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
    r = wait_for(L, fd, NULL, 2000);
    assert_true(r.eof);
    assert_non_null(strstr(r.data, "Connection: close\r\n"));
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 6);
}

static void a_later_reply_keeps_its_request_and_order(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = dial(L);
    /* The first is answered later; the second is pipelined behind it, and more bytes arrive
     * while the first waits: the first's bytes stay where they are, the second waits. */
    say(fd, "POST /later HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nfir\r\n2\r\nst\r\n0\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 6\r\n\r\nsec");
    spin(L, 20);
    assert_int_equal(L->handled, 1);
    char filler[4000]; /* within max_body_bytes (4096) */
    memset(filler, 'y', sizeof(filler));
    say(fd, "ond");
    say(fd, "POST /x HTTP/1.1\r\nContent-Length: 4000\r\n\r\n");
    assert_int_equal(send(fd, filler, sizeof(filler), MSG_NOSIGNAL), (ssize_t)sizeof(filler));
    spin(L, 20);
    assert_int_equal(L->handled, 1);
    struct reply r = wait_for(L, fd, "n=4000", 3000);
    const char *first = strstr(r.data, "n=5 trailer=none path=/later query=- body=first.");
    const char *second = strstr(r.data, "n=6 trailer=none path=/x query=- body=second.");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    assert_int_equal(count(r.data, "HTTP/1.1 200 OK"), 3);
    free(r.data);
    close(fd);
    assert_int_equal(L->handled, 3);
    assert_int_equal(L->gone_before_reply, 0);
}

static void a_client_gone_before_its_reply(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = dial(L);
    say(fd, "POST /later HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    spin(L, 20);
    assert_int_equal(L->handled, 1);
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd); /* a reset: the reply cannot reach it */
    spin(L, 200);
    assert_int_equal(L->gone_before_reply, 1);
    assert_int_equal(sg_conns_open(L->conns), 0);

    /* A half-close is not a departure: the reply still goes out, then the connection ends. */
    fd = dial(L);
    say(fd, "POST /later HTTP/1.1\r\nContent-Length: 2\r\n\r\nho");
    shutdown(fd, SHUT_WR);
    struct reply r = wait_for(L, fd, NULL, 2000);
    assert_true(r.eof);
    assert_non_null(strstr(r.data, "body=ho."));
    free(r.data);
    close(fd);
    assert_int_equal(L->gone_before_reply, 1);
}

static void a_reply_not_taken_is_cut_at_the_request_deadline(void **state)
{
    struct live *L = *state;
    live_start(L);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    close(fd);
    fd = dial(L);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    say(fd, "GET /huge HTTP/1.1\r\n\r\n"); /* 16 MiB, never read */
    while (L->handled == 0)
        spin(L, 1);
    assert_int_equal(sg_conns_open(L->conns), 1);
    uint64_t start = sg_now_mono_ms();
    while (sg_conns_open(L->conns) && sg_now_mono_ms() - start < 3000)
        spin(L, 10);
    assert_int_equal(sg_conns_open(L->conns), 0);
    assert_in_range(sg_now_mono_ms() - start, 550, 1500); /* request_timeout_ms 600 */
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(content_length_request),
        cmocka_unit_test(pipelined_and_leading_blank_lines),
        cmocka_unit_test(content_length_ambiguity_is_400),
        cmocka_unit_test(transfer_encoding_ambiguity_is_400),
        cmocka_unit_test(chunked_bodies),
        cmocka_unit_test(bytes_that_split_parsers),
        cmocka_unit_test(limits),
        cmocka_unit_test(expect_continue_is_seen),
        cmocka_unit_test(config_keys),
        cmocka_unit_test(reserve_follows_the_config),
        cmocka_unit_test_setup_teardown(serves_whole_requests, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(chunked_trailer_is_dropped, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(expect_continue, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(bad_framing_is_400_and_never_reaches_the_handler, live_setup,
                                        live_teardown),
        cmocka_unit_test_setup_teardown(a_refused_body_is_not_read_to_its_end, live_setup,
                                        live_teardown),
        cmocka_unit_test_setup_teardown(deadlines_are_totals, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(budget_refuses_or_makes_room, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(request_lines_and_versions, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(a_later_reply_keeps_its_request_and_order, live_setup,
                                        live_teardown),
        cmocka_unit_test_setup_teardown(a_client_gone_before_its_reply, live_setup, live_teardown),
        cmocka_unit_test_setup_teardown(a_reply_not_taken_is_cut_at_the_request_deadline,
                                        live_setup, live_teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
