/*
 * pipeline.h - the one path every event takes, shared by ingest and explain:
 * request context -> normalize -> consent -> rules. What comes out is the
 * scrubbed canonical event that destinations format.
 */
#ifndef SCRUBGATE_PIPELINE_H
#define SCRUBGATE_PIPELINE_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/event.h"

#include <jansson.h>

struct sg_http_fields;

#define SG_SESSION_COOKIE "sg_sid"
#define SG_CLICK_COOKIE "sg_ttclid" /* the click id of a consented landing */

enum sg_pipe_result {
    SG_PIPE_OK = 0,  /* ready to format and send */
    SG_PIPE_INVALID, /* client error: err holds a one-line reason */
    SG_PIPE_SKIP,    /* valid but not sent: ev->skip_reason says why */
};

/*
 * Fill ctx from the peer address and request headers: client IP (with
 * X-Forwarded-For only from trusted proxies), User-Agent, Sec-GPC, cookies,
 * and the first-party session (a new one when the cookie is absent/invalid).
 * Returns 0, or -1 when no session id could be generated.
 */
int sg_request_ctx_init(struct sg_request_ctx *ctx, const struct sg_config *cfg,
                        const char *peer_ip, const struct sg_http_fields *headers);
void sg_request_ctx_release(struct sg_request_ctx *ctx);

/*
 * Authenticate a site's own server: 1 when the Authorization header carries
 * the site's ingest key, 0 when there is no Authorization header, -1 when it
 * carries a wrong key (or the site has none).
 */
int sg_request_authenticate(const struct sg_site *site, const struct sg_http_fields *headers);

enum sg_pipe_result sg_pipeline_run(const struct sg_site *site, const struct sg_limits *limits,
                                    json_t *in, const struct sg_request_ctx *ctx,
                                    struct sg_event *ev, char *err, size_t errlen);

/* True when the destination's events allowlist admits name. */
bool sg_dest_allows_event(const struct sg_dest_conf *d, const char *name);

/*
 * The decision receipt as JSON (new reference): consent per purpose with the
 * deciding signal, and each rule that fired with field and action. Never a
 * value.
 */
json_t *sg_receipt_json(const struct sg_event *ev);

#endif
