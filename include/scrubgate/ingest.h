/*
 * ingest.h - POST /v1/events and its CORS preflight (the ingest listener's
 * request handler).
 */
#ifndef SCRUBGATE_INGEST_H
#define SCRUBGATE_INGEST_H

#include <event2/http.h>

/* evhttp's general callback; arg is the struct sg_worker * that owns the server. */
void sg_ingest_handle(struct evhttp_request *req, void *arg);

#endif
