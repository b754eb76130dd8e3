/*
 * ingest.c - POST /v1/events (docs/API.md, "Ingest").
 *
 * Limits are enforced before work: body size and header size by conn.c, the
 * content type and event count here. A malformed event is reported in the
 * 202 body and does not reject its valid neighbours. Replies never echo a
 * value from the request.
 */
#include "scrubgate/common.h"
#include "scrubgate/arena.h"
#include "scrubgate/buf.h"
#include "scrubgate/decode.h"
#include "scrubgate/forward.h"
#include "scrubgate/jsonpos.h"
#include "scrubgate/log.h"
#include "scrubgate/metrics.h"
#include "scrubgate/netaddr.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/ratelimit.h"
#include "scrubgate/rules.h"
#include "scrubgate/snippet.h"
#include "scrubgate/synclog.h"
#include "scrubgate/ingest.h"
#include "scrubgate/jsonparse.h"
#include "scrubgate/queue.h"
#include "scrubgate/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_MAX_AGE 34128000 /* 395 days, like TikTok's own _ttp cookie (13 months) */
/* The per-event error of an event a destination skips, when the sync log cannot take its line. */
#define OUTCOME_UNRECORDED "outcome: the sync log cannot be written, send the event again"

enum route_step { ROUTE_STAGE_SKIPS, ROUTE_COUNT_SKIPS, ROUTE_PUSH };

/*
 * One step for each of ev's outbound events (one per mapped name, event_map arrays: each with
 * its own id and outcome) and each destination. A pair is skipped when the rules or consent
 * skipped the event (skip_all) or the destination's allowlist does not name it; a skipped pair's
 * sync log line is staged (ROUTE_STAGE_SKIPS), then, once written, counted (ROUTE_COUNT_SKIPS);
 * any other pair is pushed to its forwarder (ROUTE_PUSH). Returns how many pairs the step
 * took, or -1 when a push failed. The walk always ends (event.h: it restores ev's own name).
 */
static long route(struct sg_worker *w, const struct sg_site *s, struct sg_event *ev,
                  bool skip_all, const char *rules, enum route_step step)
{
    long n = 0;
    bool failed = false;
    struct sg_outbound o;
    for (sg_event_outbound_begin(&o, ev, 0); sg_event_outbound_next(&o);) {
        for (size_t d = 0; d < s->n_dests; d++) {
            const char *skip = skip_all ? ev->skip_reason
                               : sg_dest_allows_event(&s->dests[d], ev->name)
                                   ? NULL
                                   : "not_in_allowlist";
            if ((skip != NULL) == (step == ROUTE_PUSH))
                continue;
            struct sg_forwarder *fw = sg_worker_forwarder(w, s, d);
            if (step == ROUTE_STAGE_SKIPS)
                sg_forwarder_skip(fw, ev, skip, rules);
            else if (step == ROUTE_COUNT_SKIPS)
                sg_forwarder_skip_written(fw, skip);
            else if (sg_forwarder_push(fw, ev, rules) < 0)
                failed = true;
            n++;
        }
    }
    return failed ? -1 : n;
}

/* The reply: body and a newline. */
static void send_text(struct sg_http_req *req, int code, const char *reason, const char *body)
{
    char small[512];
    size_t n = strlen(body);
    char *text = n < sizeof(small) ? small : sg_xmalloc(n + 1);
    memcpy(text, body, n);
    text[n] = '\n';
    sg_http_reply(req, code, reason, text, n + 1);
    if (text != small)
        free(text);
}

void sg_ingest_answer(struct sg_http_req *req, const char *site, bool ok, const char *body,
                      const char *why_503)
{
    sg_metrics_ingest_reply(site, ok ? 202 : 503);
    if (!ok) {
        sg_http_remove_reply_header(req, "Set-Cookie");
        sg_http_add_header(req, "Retry-After", "1");
        body = why_503;
    }
    send_text(req, ok ? 202 : 503, ok ? "Accepted" : "Service Unavailable", body);
}

/* Every reply of the ingest API goes through here and is counted per site (NULL: none). */
static void reply_text(struct sg_http_req *req, const struct sg_site *site, int code,
                       const char *reason, const char *body)
{
    sg_metrics_ingest_reply(site ? site->id : "", code);
    sg_http_add_header(req, "Content-Type", "application/json");
    sg_http_add_header(req, "Cache-Control", "no-store");
    send_text(req, code, reason, body);
}

static void reply_json(struct sg_http_req *req, const struct sg_site *site, int code,
                       const char *reason, json_t *body)
{
    char *s = sg_json_text(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    reply_text(req, site, code, reason, s ? s : "{}");
    free(s);
    json_decref(body);
}

static void reply_error(struct sg_http_req *req, const struct sg_site *site, int code,
                        const char *reason, const char *msg)
{
    reply_json(req, site, code, reason, json_pack("{s:s}", "error", msg));
}

/* The site named by ?site=, else the first event's "site", else the Host header. */
static const struct sg_site *request_site(const struct sg_config *cfg,
                                          struct sg_http_req *req, json_t *events,
                                          bool *named_unknown)
{
    const char *query = sg_http_query(req);
    *named_unknown = false;
    size_t n;
    const char *raw = query ? sg_http_query_param(query, "site", &n) : NULL;
    if (raw) {
        /* Decoded ('+' as space, as HTML forms encode); one with a NUL names no site. */
        char id[256];
        const struct sg_site *s = NULL;
        if (n < sizeof(id) && sg_percent_decode_to(raw, n, true, id) == strlen(id))
            s = sg_config_site_by_id(cfg, id);
        *named_unknown = s == NULL;
        return s;
    }
    if (events) {
        json_t *first = json_array_get(events, 0);
        json_t *id = json_is_object(first) ? json_object_get(first, "site") : NULL;
        if (json_is_string(id)) {
            const struct sg_site *s = sg_config_site_by_id(cfg, json_string_value(id));
            *named_unknown = s == NULL;
            return s;
        }
    }
    const char *host = sg_http_header(req, "Host");
    return host ? sg_config_site_by_host(cfg, host) : NULL;
}

static void add_cors(struct sg_http_req *req, const struct sg_site *site)
{
    const char *origin = sg_http_header(req, "Origin");
    sg_http_add_header(req, "Vary", "Origin");
    if (!origin || !site || !sg_site_origin_allowed(site, origin))
        return;
    sg_http_add_header(req, "Access-Control-Allow-Origin", origin);
    sg_http_add_header(req, "Access-Control-Allow-Credentials", "true");
    sg_http_add_header(req, "Access-Control-Expose-Headers", "Content-Type");
}

static bool content_type_ok(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return (n == 16 && sg_strncaseeq(ct, "application/json", 16)) ||
           (n == 10 && sg_strncaseeq(ct, "text/plain", 10));
}

/* Over TLS (as told by a trusted proxy, or a secure page origin) the cookie is Secure. */
static bool request_is_tls(const struct sg_config *cfg, struct sg_http_req *req,
                           const char *peer)
{
    const char *proto = sg_http_header(req, "X-Forwarded-Proto");
    const char *origin = sg_http_header(req, "Origin");
    if (proto && sg_strcaseeq(proto, "https") && sg_config_is_trusted_proxy(cfg, peer))
        return true;
    return origin && sg_strncaseeq(origin, "https://", 8);
}

/*
 * One of the proxy's cookies: first-party, HttpOnly, SameSite=Lax, and Domain= the site's
 * cookie_domain when the request's Host lies within it. A browser drops a cookie whose domain
 * does not cover the host that set it, so for any other Host (an IP, a name outside the
 * domain) the cookie stays host-only rather than being lost.
 */
static void add_cookie(struct sg_http_req *req, const struct sg_site *site, const char *name,
                       const char *value, long max_age, bool tls)
{
    char cookie[SG_CLICK_ID_MAX + 400];
    char domain[270] = "";
    const char *host = sg_http_header(req, "Host");
    if (site->cookie_domain && host && sg_host_within(host, site->cookie_domain))
        snprintf(domain, sizeof(domain), "; Domain=%s", site->cookie_domain);
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%ld%s; HttpOnly; SameSite=Lax%s",
             name, value, max_age, domain, tls ? "; Secure" : "");
    sg_http_add_header(req, "Set-Cookie", cookie);
}

/*
 * What the 202 does with the sg_ttclid cookie (docs/BROWSER.md): an event whose ad_storage or
 * ad_user_data is not granted expires it (the most restrictive event of a batch wins);
 * otherwise the last click id an event or its page.url brought is kept for click_id_days.
 */
struct click_cookie {
    bool expire;
    char keep[SG_CLICK_ID_MAX + 1]; /* "" when no event brought a click id */
};

static void click_cookie_note(struct click_cookie *cc, const struct sg_event *ev)
{
    size_t n = ev->click_id ? strlen(ev->click_id) : 0;
    if (ev->consent.state[SG_PURPOSE_AD_STORAGE] != SG_CONSENT_GRANTED ||
        ev->consent.state[SG_PURPOSE_AD_USER_DATA] != SG_CONSENT_GRANTED)
        cc->expire = true;
    else if (n && n <= SG_CLICK_ID_MAX)
        memcpy(cc->keep, ev->click_id, n + 1);
}

static void set_cookies(struct sg_http_req *req, const struct sg_config *cfg,
                        const struct sg_site *site, const struct sg_request_ctx *ctx,
                        const struct click_cookie *cc, const char *peer)
{
    bool tls = request_is_tls(cfg, req, peer ? peer : "");
    if (ctx->new_session)
        add_cookie(req, site, SG_SESSION_COOKIE, ctx->session_id, SESSION_MAX_AGE, tls);
    if (cc->expire)
        add_cookie(req, site, SG_CLICK_COOKIE, "", 0, tls);
    else if (cc->keep[0])
        add_cookie(req, site, SG_CLICK_COOKIE, cc->keep, (long)site->click_id_days * 86400, tls);
}

static void preflight(struct sg_worker *w, struct sg_http_req *req)
{
    const struct sg_site *site;
    bool unknown;
    site = request_site(sg_worker_config(w), req, NULL, &unknown);
    add_cors(req, site);
    if (sg_http_has_reply_header(req, "Access-Control-Allow-Origin")) {
        sg_http_add_header(req, "Access-Control-Allow-Methods", "POST, OPTIONS");
        sg_http_add_header(req, "Access-Control-Allow-Headers", "Content-Type, Authorization");
        sg_http_add_header(req, "Access-Control-Max-Age", "600");
    }
    sg_metrics_ingest_reply(site ? site->id : "", 204);
    sg_http_reply(req, 204, "No Content", NULL, 0);
}

/* Parse the body into an array of events (borrowed from *root). NULL + reason on error. */
static json_t *body_events(struct sg_http_req *req, json_t **root, char *err, size_t errlen)
{
    size_t len;
    const char *data = sg_http_body(req, &len);
    json_error_t jerr;
    *root = NULL;
    if (len == 0) {
        snprintf(err, errlen, "body: empty");
        return NULL;
    }
    *root = sg_json_load(data, len, &jerr);
    if (!*root) {
        /* jansson quotes the offending input ("near 'jane@...'"): keep only the reason. */
        char why[200];
        sg_json_syntax_error(&jerr, why, sizeof(why));
        snprintf(err, errlen, "body: invalid JSON at %s", why);
        return NULL;
    }
    if (json_is_array(*root))
        return *root;
    if (json_is_object(*root)) {
        json_t *evs = json_object_get(*root, "events");
        if (evs && json_is_array(evs))
            return evs;
        if (evs) {
            snprintf(err, errlen, "body: \"events\" must be an array");
            return NULL;
        }
        /* A single event: wrap it so that one code path handles every shape. */
        json_t *arr = json_pack("[O]", *root);
        json_decref(*root);
        *root = arr;
        return arr;
    }
    snprintf(err, errlen, "body: must be an event object, an array or {\"events\": [...]}");
    return NULL;
}

/*
 * The rate limits (limits.rate_per_ip, limits.rate_per_site): n events of
 * this request against the client IP's bucket (not for a site's own servers,
 * authenticated with its ingest key) and the site's. Both are checked before
 * either is charged, so a refused request costs nothing. false when refused:
 * the 429 is sent, with Retry-After.
 */
/*
 * The client a per-IP bucket counts: an IPv4 address, or an IPv6 address's /64 (one subscriber
 * or host usually holds a whole /64, and could otherwise take a fresh bucket per address).
 */
static void rate_client(const char *ip, char *key, size_t cap)
{
    int family;
    unsigned char a[16];
    if (sg_addr_parse(ip, &family, a) < 0 || family != AF_INET6) {
        snprintf(key, cap, "%s", ip);
        return;
    }
    snprintf(key, cap, "%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", a[0], a[1], a[2], a[3], a[4],
             a[5], a[6], a[7]);
}

static bool rate_allows(struct sg_worker *w, struct sg_http_req *req,
                        const struct sg_site *site, const struct sg_request_ctx *ctx, size_t n)
{
    const struct sg_limits *l = &sg_worker_config(w)->limits;
    struct sg_ratelimit *by_ip = sg_worker_rate_ip(w), *by_site = sg_worker_rate_site(w);
    uint64_t now = sg_now_mono_ms();
    uint32_t ip_rate = ctx->trusted_server ? 0 : l->rate_per_ip;
    char client[48];
    rate_client(ctx->ip, client, sizeof(client));
    unsigned wait = sg_ratelimit_check(by_ip, client, ip_rate, n, now);
    const char *what = "too many events from this client";
    if (!wait) {
        wait = sg_ratelimit_check(by_site, site->id, l->rate_per_site, n, now);
        what = "too many events for this site";
    }
    if (wait) {
        char secs[16], msg[96];
        snprintf(secs, sizeof(secs), "%u", wait);
        snprintf(msg, sizeof(msg), "%s, retry after %u s", what, wait);
        sg_http_add_header(req, "Retry-After", secs);
        reply_error(req, site, 429, "Too Many Requests", msg);
        return false;
    }
    sg_ratelimit_take(by_ip, client, ip_rate, n, now);
    sg_ratelimit_take(by_site, site->id, l->rate_per_site, n, now);
    return true;
}

static void handle_post(struct sg_worker *w, struct sg_http_req *req)
{
    const struct sg_config *cfg = sg_worker_config(w);
    struct sg_queue *queue = sg_worker_queue(w);
    char err[256];
    json_t *root = NULL, *events;
    struct sg_request_ctx ctx;
    bool unknown;
    const char *peer = sg_http_peer(req);

    if (!content_type_ok(sg_http_header(req, "Content-Type"))) {
        reply_error(req, NULL, 415, "Unsupported Media Type",
                    "Content-Type must be application/json or text/plain");
        return;
    }
    events = body_events(req, &root, err, sizeof(err));
    if (!events) {
        const struct sg_site *s = request_site(cfg, req, NULL, &unknown);
        add_cors(req, s);
        reply_error(req, s, 400, "Bad Request", err);
        json_decref(root);
        return;
    }
    const struct sg_site *site = request_site(cfg, req, events, &unknown);
    add_cors(req, site);
    if (!site) {
        reply_error(req, NULL, 404, "Not Found",
                    unknown ? "unknown site" : "no site: use ?site=, the event's site or a "
                                               "configured Host");
        json_decref(root);
        return;
    }
    size_t n = json_array_size(events);
    if (n == 0) {
        reply_error(req, site, 400, "Bad Request", "body: no events");
        json_decref(root);
        return;
    }
    if (n > cfg->limits.max_events_per_request) {
        snprintf(err, sizeof(err), "too many events: at most %zu per request",
                 cfg->limits.max_events_per_request);
        reply_error(req, site, 413, "Payload Too Large", err);
        json_decref(root);
        return;
    }
    int auth = sg_request_authenticate(site, sg_http_headers(req));
    if (auth < 0) {
        reply_error(req, site, 401, "Unauthorized", "invalid ingest key");
        json_decref(root);
        return;
    }
    /* A browser page on another origin: a simple request (sendBeacon, text/plain) is sent
     * without a preflight and with the visitor's cookies, so CORS alone would not stop a
     * foreign page from writing events into this site's sessions. Servers send no Origin. */
    const char *origin = sg_http_header(req, "Origin");
    if (origin && auth != 1 && !sg_site_origin_allowed(site, origin)) {
        reply_error(req, site, 403, "Forbidden", "origin not in the site's allowed_origins");
        json_decref(root);
        return;
    }
    if (sg_request_ctx_init(&ctx, cfg, peer, sg_http_headers(req)) < 0) {
        reply_error(req, site, 503, "Service Unavailable", "no randomness for a session id");
        json_decref(root);
        return;
    }
    ctx.trusted_server = auth == 1;
    ctx.input_disposable = true; /* each event is read once, and the tree freed after */
    if (!rate_allows(w, req, site, &ctx, n)) {
        sg_request_ctx_release(&ctx);
        json_decref(root);
        return;
    }
    /* Room for every event in every destination, or nothing is taken (no partial 202). */
    size_t body_len;
    sg_http_body(req, &body_len);
    /* A mapped event may become up to map_fanout outbound events (event_map arrays). */
    size_t fan = site->map_fanout ? site->map_fanout : 1;
    if (!queue->ops->accepts(queue)) {
        /* A shared queue that cannot be reached: refuse now, never a 202 from a local
         * buffer (the spool's own faults are found by its next write, which heals them). */
        sg_http_add_header(req, "Retry-After", "1");
        reply_error(req, site, 503, "Service Unavailable", "queue unavailable, retry later");
        sg_request_ctx_release(&ctx);
        json_decref(root);
        return;
    }
    bool room = queue->ops->has_room(queue, (body_len + 512 * n) * fan * (site->n_dests + 1));
    for (size_t d = 0; room && d < site->n_dests; d++)
        room = sg_forwarder_has_room(sg_worker_forwarder(w, site, d), n * fan);
    if (!room) {
        sg_http_add_header(req, "Retry-After", "1");
        reply_error(req, site, 503, "Service Unavailable", "queue full, retry later");
        sg_request_ctx_release(&ctx);
        json_decref(root);
        return;
    }

    /* The reply's event ids are written as the events go: a request with only valid events
     * builds no JSON tree for its reply. */
    struct sg_buf ids;
    size_t n_ids = 0;
    sg_buf_init(&ids, 0);
    sg_buf_reserve(&ids, 64 + 40 * n);
    json_t *errors = json_array(), *item;
    struct click_cookie cc = {0};
    uint64_t appended = queue->ops->appended(queue);
    size_t accepted = 0, failed_here = 0, i;
    json_array_foreach(events, i, item) {
        struct sg_event ev;
        sg_event_init(&ev);
        json_t *esite = json_is_object(item) ? json_object_get(item, "site") : NULL;
        const struct sg_site *s = site;
        enum sg_pipe_result pr;
        if (esite && json_is_string(esite) &&
            sg_config_site_by_id(cfg, json_string_value(esite)) != site) {
            /* One request, one site: its limits, key and CORS decision cover the batch. */
            snprintf(err, sizeof(err), "site: differs from the request's site");
            pr = SG_PIPE_INVALID;
        } else {
            pr = sg_pipeline_run(s, &cfg->limits, item, &ctx, &ev, err, sizeof(err));
        }
        if (pr == SG_PIPE_INVALID) {
            json_array_append_new(errors, json_pack("{s:I,s:s}", "index", (json_int_t)i, "reason",
                                                    err));
            sg_event_release(&ev);
            continue;
        }
        click_cookie_note(&cc, &ev);
        char *rules_txt = sg_event_changed_rules(&ev);
        /* Skipped outcomes first, all of the event's in one write: an event is taken only
         * once every destination that will not send it has its line. Then the rest is
         * spooled, in this request's group commit, so the 202 covers every one. */
        const char *why = NULL;
        bool skip_all = pr == SG_PIPE_SKIP;
        long skips = route(w, s, &ev, skip_all, rules_txt, ROUTE_STAGE_SKIPS);
        if (skips && sg_synclog_flush(sg_worker_synclog(w)) < 0) {
            why = OUTCOME_UNRECORDED; /* a full or failing disk: the client sends it again */
            failed_here++;
        } else {
            if (skips)
                route(w, s, &ev, skip_all, rules_txt, ROUTE_COUNT_SKIPS);
            if (route(w, s, &ev, skip_all, rules_txt, ROUTE_PUSH) < 0)
                why = "event: too large to spool"; /* only with limits near their maxima */
        }
        free(rules_txt);
        if (why) {
            json_array_append_new(errors,
                                  json_pack("{s:I,s:s}", "index", (json_int_t)i, "reason", why));
            sg_event_release(&ev);
            continue;
        }
        if (sg_utf8_valid(ev.event_id, strlen(ev.event_id))) {
            if (n_ids++)
                sg_buf_addc(&ids, ',');
            sg_buf_json_string(&ids, ev.event_id, strlen(ev.event_id));
        }
        accepted++;
        sg_event_release(&ev);
    }

    if (accepted == 0) {
        json_t *first = json_array_get(errors, 0);
        const char *reason = json_string_value(json_object_get(first, "reason"));
        snprintf(err, sizeof(err), "%s: %s%s", failed_here ? "no event taken" : "no valid event",
                 reason ? reason : "invalid", n > 1 ? " (and others, see errors)" : "");
        json_t *body = json_pack("{s:s,s:o}", "error", err, "errors", errors);
        sg_buf_release(&ids);
        sg_request_ctx_release(&ctx);
        json_decref(root);
        if (failed_here) { /* our fault, not the request's: worth sending again */
            sg_http_add_header(req, "Retry-After", "1");
            reply_json(req, site, 503, "Service Unavailable", body);
        } else {
            reply_json(req, site, 400, "Bad Request", body);
        }
        return;
    }
    struct sg_buf body;
    sg_buf_init(&body, 0);
    sg_buf_reserve(&body, ids.len + 64);
    sg_buf_adds(&body, "{\"accepted\":");
    sg_buf_json_int(&body, (long long)accepted);
    sg_buf_adds(&body, ",\"dropped\":");
    sg_buf_json_int(&body, (long long)(n - accepted));
    sg_buf_adds(&body, ",\"event_ids\":[");
    sg_buf_add(&body, ids.data, ids.len);
    sg_buf_addc(&body, ']');
    if (json_array_size(errors)) {
        char *e = sg_json_text(errors, JSON_COMPACT | JSON_PRESERVE_ORDER);
        sg_buf_adds(&body, ",\"errors\":");
        sg_buf_adds(&body, e ? e : "[]");
        free(e);
    }
    sg_buf_addc(&body, '}');
    sg_buf_release(&ids);
    json_decref(errors);
    set_cookies(req, cfg, site, &ctx, &cc, peer);
    sg_request_ctx_release(&ctx);
    json_decref(root);
    if (queue->ops->appended(queue) == appended) {
        /* nothing to make durable (all skipped) */
        reply_text(req, site, 202, "Accepted", sg_buf_cstr(&body));
        sg_buf_release(&body);
        return;
    }
    /* The 202 waits for the group commit: never a 202 before the events are on disk. */
    sg_http_add_header(req, "Content-Type", "application/json");
    sg_http_add_header(req, "Cache-Control", "no-store");
    queue->ops->defer(queue, req, site->id, sg_buf_detach(&body, NULL));
}

void sg_ingest_handle(struct sg_http_req *req, void *arg)
{
    struct sg_worker *w = arg;
    const char *path = sg_http_path(req);

    if (sg_worker_stopping(w)) {
        sg_http_add_header(req, "Connection", "close");
        sg_http_add_header(req, "Retry-After", "1");
        reply_error(req, NULL, 503, "Service Unavailable", "shutting down, retry later");
        return;
    }
    if (path && strcmp(path, SG_SNIPPET_PATH) == 0) {
        sg_snippet_handle(req);
        return;
    }
    if (!path || strcmp(path, "/v1/events") != 0) {
        reply_error(req, NULL, 404, "Not Found", "unknown path");
        return;
    }
    switch (sg_http_method(req)) {
    case SG_HTTP_POST:
        /* The request's JSON lives in one region, released here (arena.h). */
        sg_json_arena_begin();
        handle_post(w, req);
        sg_json_arena_end();
        return;
    case SG_HTTP_OPTIONS:
        preflight(w, req);
        return;
    default:
        sg_http_add_header(req, "Allow", "POST, OPTIONS");
        reply_error(req, NULL, 405, "Method Not Allowed", "use POST");
        return;
    }
}
