/*
 * http_client.h - outbound HTTP POSTs with libcurl's multi interface driven by
 * a libevent loop (curl's hiperfifo / multi-event shape). Nothing blocks the
 * loop; connections are reused through the multi handle's connection cache.
 * One client per event loop; not thread-safe.
 */
#ifndef SCRUBGATE_HTTP_CLIENT_H
#define SCRUBGATE_HTTP_CLIENT_H

#include "scrubgate/common.h"

#include <curl/curl.h>
#include <event2/event.h>

struct sg_http;

struct sg_http_result {
    CURLcode curl_code;   /* CURLE_OK when a reply was read */
    long status;          /* HTTP status of the reply's status line, 0 when none; set even
                             when curl_code is not CURLE_OK (e.g. too_large) */
    const char *body;     /* borrowed, valid during the callback; NUL-terminated */
    size_t body_len;
    bool too_large;       /* the reply exceeded max_response_bytes: the transfer was aborted
                             there (curl_code CURLE_WRITE_ERROR, or CURLE_FILESIZE_EXCEEDED when
                             its Content-Length said so; body holds what came before) */
    const char *error;    /* borrowed error text, "" when none; starts with
                             "response_too_large: " when too_large */
};

typedef void sg_http_done_fn(void *arg, const struct sg_http_result *res);

struct sg_http *sg_http_new(struct event_base *base, size_t max_response_bytes);
/* Abort what is in flight (each done() is called with CURLE_ABORTED_BY_CALLBACK) and free. */
void sg_http_free(struct sg_http *h);

/*
 * Start a POST. Steals headers and body (freed when the transfer ends).
 * done(arg, result) is called exactly once, from the loop. 0 or -1.
 */
int sg_http_post(struct sg_http *h, const char *url, struct curl_slist *headers, char *body,
                 size_t len, long timeout_ms, sg_http_done_fn *done, void *arg);

size_t sg_http_inflight(const struct sg_http *h);

#endif
