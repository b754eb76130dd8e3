/*
 * http_client.c - libcurl multi on libevent.
 *
 * Sharp edges handled here (STYLE.md): the socket callback adds or removes
 * one event per socket; the timer callback only arms a libevent timer and
 * never calls libcurl itself; each transfer owns its body, header list and
 * a size-capped response buffer until CURLMSG_DONE.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/http_client.h"
#include "scrubgate/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sg_http {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    size_t max_response;
    size_t inflight;
    struct transfer *transfers; /* doubly linked: aborted on free */
};

struct transfer {
    struct sg_http *h;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    struct sg_buf resp;
    bool too_large;
    sg_http_done_fn *done;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
    struct transfer *prev, *next;
};

struct sockctx {
    struct event *ev;
};

static void check_done(struct sg_http *h);

static void finish(struct transfer *t, CURLcode code)
{
    struct sg_http *h = t->h;
    struct sg_http_result res = {0};
    res.curl_code = code;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &res.status);
    res.body = sg_buf_cstr(&t->resp);
    res.body_len = t->resp.len;
    if (code == CURLE_FILESIZE_EXCEEDED) /* a Content-Length over the cap: nothing was read */
        t->too_large = true;
    res.too_large = t->too_large;
    res.error = code == CURLE_OK ? "" : (t->errbuf[0] ? t->errbuf : curl_easy_strerror(code));
    if (t->too_large) {
        /* curl's own text ("Failure writing output") would hide the cause. */
        snprintf(t->errbuf, sizeof(t->errbuf),
                 "response_too_large: the reply exceeds max_response_bytes (%zu); transfer "
                 "aborted",
                 t->resp.max);
        res.error = t->errbuf;
    }

    curl_multi_remove_handle(h->multi, t->easy);
    if (t->prev)
        t->prev->next = t->next;
    else
        h->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    h->inflight--;
    t->done(t->arg, &res);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    free(t->body);
    sg_buf_release(&t->resp);
    free(t);
}

static void check_done(struct sg_http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct transfer *t = NULL;
        CURLcode code = msg->data.result; /* read before finish() invalidates msg */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        finish(t, code);
    }
}

static void event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_http *h = arg;
    int running;
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(h->multi, fd, action, &running);
    check_done(h);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_http *h = arg;
    int running;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
    struct sg_http *h = arg;
    SG_UNUSED(multi);
    if (timeout_ms < 0) {
        evtimer_del(h->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(h->timer, &tv); /* 0 ms fires on the next loop turn, outside this callback */
    return 0;
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
    struct sg_http *h = arg;
    struct sockctx *sc = sockp;
    SG_UNUSED(easy);
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            event_free(sc->ev);
            free(sc);
            curl_multi_assign(h->multi, s, NULL);
        }
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (!sc) {
        sc = sg_xcalloc(1, sizeof(*sc));
        curl_multi_assign(h->multi, s, sc);
    } else {
        event_free(sc->ev);
    }
    sc->ev = event_new(h->base, s, kind, event_cb, h);
    if (!sc->ev || event_add(sc->ev, NULL) < 0)
        return -1;
    return 0;
}

/*
 * Past the cap the transfer is aborted, not drained: returning less than n
 * makes curl end it with CURLE_WRITE_ERROR. Reading on and discarding would
 * let an endless (chunked) reply hold the connection and burn CPU until the
 * upstream timeout, gigabytes later.
 */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct transfer *t = arg;
    size_t n = size * nmemb;
    if (sg_buf_add(&t->resp, ptr, n) < 0) {
        t->too_large = true;
        return 0;
    }
    return n;
}

struct sg_http *sg_http_new(struct event_base *base, size_t max_response_bytes)
{
    struct sg_http *h = sg_xcalloc(1, sizeof(*h));
    h->base = base;
    h->max_response = max_response_bytes;
    h->multi = curl_multi_init();
    h->timer = evtimer_new(base, timer_cb, h);
    if (!h->multi || !h->timer) {
        sg_http_free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    return h;
}

void sg_http_free(struct sg_http *h)
{
    if (!h)
        return;
    while (h->transfers)
        finish(h->transfers, CURLE_ABORTED_BY_CALLBACK);
    if (h->multi)
        curl_multi_cleanup(h->multi); /* before the timer: cleanup may call the timer callback */
    if (h->timer)
        event_free(h->timer);
    free(h);
}

int sg_http_post(struct sg_http *h, const char *url, struct curl_slist *headers, char *body,
                 size_t len, long timeout_ms, sg_http_done_fn *done, void *arg)
{
    struct transfer *t = sg_xcalloc(1, sizeof(*t));
    t->h = h;
    t->headers = headers;
    t->body = body;
    t->done = done;
    t->arg = arg;
    sg_buf_init(&t->resp, h->max_response);
    t->easy = curl_easy_init();
    if (!t->easy) {
        curl_slist_free_all(headers);
        free(body);
        free(t);
        return sg_error("http: curl_easy_init failed");
    }
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    /* A declared length over the cap fails before the body (CURLE_FILESIZE_EXCEEDED);
     * write_cb stops the rest (chunked or lying replies). */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_response);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "scrubgate/" SG_VERSION);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(headers);
        free(body);
        sg_buf_release(&t->resp);
        free(t);
        return sg_error("http: curl_multi_add_handle failed");
    }
    t->next = h->transfers;
    if (h->transfers)
        h->transfers->prev = t;
    h->transfers = t;
    h->inflight++;
    return 0;
}

size_t sg_http_inflight(const struct sg_http *h)
{
    return h->inflight;
}
