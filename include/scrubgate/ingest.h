/*
 * ingest.h - POST /v1/events and its CORS preflight (the ingest listener's
 * request handler).
 */
#ifndef SCRUBGATE_INGEST_H
#define SCRUBGATE_INGEST_H

#include "scrubgate/http.h"

#include <stdbool.h>

/* The ingest server's handler; arg is the struct sg_worker * that owns the server. */
void sg_ingest_handle(struct sg_http_req *req, void *arg);

/*
 * The answer to a request whose events waited for their queue (queue.h defer()): 202 with
 * body, or, when they were not made durable, 503 with Retry-After, the error why_503 and no
 * cookie (nothing was accepted). Clears the connection's close callback.
 */
void sg_ingest_answer(struct sg_http_req *req, const char *site, bool ok, const char *body,
                      const char *why_503);

#endif
