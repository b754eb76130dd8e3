/*
 * forward.c - batch formatted events per destination and deliver them.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/dest.h"
#include "scrubgate/forward.h"
#include "scrubgate/http_client.h"
#include "scrubgate/log.h"
#include "scrubgate/rules.h"
#include "scrubgate/synclog.h"

#include <stdlib.h>
#include <string.h>

struct item {
    char *json;     /* owned: the formatted outbound event */
    size_t len;
    char *event;    /* owned: name and id, for the sync log */
    char *event_id;
    json_t *rules;  /* owned reference */
    struct sg_consent consent; /* the evidence, for the sync log */
};

struct batch {
    struct sg_forwarder *fw;
    struct item *items;
    size_t n;
};

struct sg_forwarder {
    struct event_base *base;
    struct sg_http *http;
    const struct sg_site *site;
    const struct sg_dest_conf *dest;
    const struct sg_limits *limits;
    struct sg_synclog *log;
    struct item *ring;
    size_t cap, head, count;
    size_t inflight; /* events in requests not yet answered */
    size_t requests; /* requests not yet answered */
    struct event *timer;
    bool timer_armed;
    bool closing;
};

static void flush(struct sg_forwarder *fw);

static void item_free(struct item *it)
{
    free(it->json);
    free(it->event);
    free(it->event_id);
    json_decref(it->rules);
}

static void record(struct sg_forwarder *fw, const char *event, const char *event_id,
                   json_t *rules, const struct sg_consent *consent, const char *status,
                   const char *reason, long http_status, long code, const char *request_id,
                   int attempts)
{
    struct sg_sync_record r = {
        .site = fw->site->id,
        .destination = fw->dest->id,
        .event = event,
        .event_id = event_id,
        .status = status,
        .reason = reason,
        .http_status = http_status,
        .code = code,
        .request_id = request_id,
        .attempts = attempts,
        .rules = rules,
        .rule_set_version = sg_ruleset_version(fw->site->rules),
        .consent = consent,
    };
    sg_synclog_write(fw->log, &r);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sg_forwarder *fw = arg;
    SG_UNUSED(fd);
    SG_UNUSED(what);
    fw->timer_armed = false;
    flush(fw);
}

static void arm(struct sg_forwarder *fw, int ms)
{
    if (fw->timer_armed && ms > 0)
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(fw->timer, &tv);
    fw->timer_armed = true;
}

struct sg_forwarder *sg_forwarder_new(struct event_base *base, struct sg_http *http,
                                      const struct sg_site *site, const struct sg_dest_conf *dest,
                                      const struct sg_limits *limits, struct sg_synclog *log)
{
    struct sg_forwarder *fw = sg_xcalloc(1, sizeof(*fw));
    fw->base = base;
    fw->http = http;
    fw->site = site;
    fw->dest = dest;
    fw->limits = limits;
    fw->log = log;
    fw->timer = evtimer_new(base, timer_cb, fw);
    if (!fw->timer) {
        free(fw);
        return NULL;
    }
    return fw;
}

void sg_forwarder_free(struct sg_forwarder *fw)
{
    if (!fw)
        return;
    fw->closing = true;
    while (fw->count) {
        struct item *it = &fw->ring[fw->head];
        record(fw, it->event, it->event_id, it->rules, &it->consent, "failed", "shutdown", 0, -1, NULL, 0);
        item_free(it);
        fw->head = (fw->head + 1) % fw->cap;
        fw->count--;
    }
    event_free(fw->timer);
    free(fw->ring);
    free(fw);
}

bool sg_forwarder_has_room(const struct sg_forwarder *fw, size_t n)
{
    return !fw->closing && fw->count + n <= fw->limits->queue_max_events;
}

static void grow(struct sg_forwarder *fw)
{
    size_t cap = fw->cap ? fw->cap * 2 : 256;
    struct item *ring = sg_xcalloc(cap, sizeof(*ring));
    for (size_t i = 0; i < fw->count; i++)
        ring[i] = fw->ring[(fw->head + i) % fw->cap];
    free(fw->ring);
    fw->ring = ring;
    fw->cap = cap;
    fw->head = 0;
}

void sg_forwarder_push(struct sg_forwarder *fw, const struct sg_event *ev, json_t *rules)
{
    if (fw->count == fw->cap)
        grow(fw);
    struct item *it = &fw->ring[(fw->head + fw->count) % fw->cap];
    it->json = fw->dest->ops->format_event(ev);
    it->len = strlen(it->json);
    it->event = sg_xstrdup(ev->name);
    it->event_id = sg_xstrdup(ev->event_id);
    it->rules = json_incref(rules);
    it->consent = ev->consent;
    fw->count++;
    if (fw->count >= fw->limits->batch_max_events || fw->dest->test_event_code)
        arm(fw, 0);
    else
        arm(fw, fw->limits->flush_interval_ms);
}

void sg_forwarder_skip(struct sg_forwarder *fw, const struct sg_event *ev, const char *reason,
                       json_t *rules)
{
    record(fw, ev->name, ev->event_id, rules, &ev->consent, "skipped", reason, 0, -1, NULL, 0);
}

static void request_done(void *arg, const struct sg_http_result *res)
{
    struct batch *b = arg;
    struct sg_forwarder *fw = b->fw;
    struct sg_dest_reply reply;
    const char *status;

    fw->dest->ops->classify(res->curl_code == CURLE_OK ? res->status : 0, res->body,
                            res->body_len, &reply);
    if (res->curl_code == CURLE_OPERATION_TIMEDOUT)
        reply.reason = "timeout";
    else if (res->curl_code == CURLE_ABORTED_BY_CALLBACK)
        reply.reason = "shutdown";
    switch (reply.result) {
    case SG_DEST_OK:
        status = "accepted";
        break;
    case SG_DEST_PARTIAL:
        status = "partial_failure";
        break;
    case SG_DEST_AUTH:
        sg_error("destination %s (site %s): access token refused (code %ld); rotate the token",
                 fw->dest->id, fw->site->id, reply.code);
        status = "failed";
        break;
    default:
        /* Retries and the dead letter come with the durable spool (a later issue). */
        if (res->curl_code != CURLE_OK && res->curl_code != CURLE_ABORTED_BY_CALLBACK)
            sg_warn("destination %s: request failed: %s", fw->dest->id, res->error);
        status = "failed";
        break;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        record(fw, it->event, it->event_id, it->rules, &it->consent, status, reply.reason,
               res->curl_code == CURLE_OK ? res->status : 0, reply.code, reply.request_id, 1);
        item_free(it);
    }
    fw->inflight -= b->n;
    fw->requests--;
    free(b->items);
    free(b);
    if (!fw->closing && fw->count)
        arm(fw, fw->count >= fw->limits->batch_max_events ? 0 : fw->limits->flush_interval_ms);
}

/*
 * Show what a dry run would have sent. The body is scrubbed, but values that
 * leave raw with consent (user agent, click ids, locale, URL queries) still
 * do not belong in a log: they are shown by length only. Not a hot path.
 */
static void log_dry_run(struct sg_forwarder *fw, struct sg_buf *body, size_t n)
{
    static const char *const raw_keys[] = {"user_agent", "ttclid", "ttp", "locale"};
    static const char *const url_keys[] = {"url", "referrer"};
    json_t *doc = json_loadb(body->data, body->len, 0, NULL), *ev;
    size_t i;
    json_array_foreach(json_object_get(doc, "data"), i, ev) {
        /* A consented click id may stay in a URL's query: show the query's size only. */
        json_t *page = json_object_get(ev, "page");
        for (size_t k = 0; k < SG_ARRAY_SIZE(url_keys); k++) {
            json_t *v = json_object_get(page, url_keys[k]);
            const char *u = json_string_value(v);
            const char *q = u ? strpbrk(u, "?#") : NULL;
            if (q)
                json_object_set_new(page, url_keys[k],
                                    json_sprintf("%.*s(+%zu bytes of query)", (int)(q - u), u,
                                                 strlen(q)));
        }
        json_t *user = json_object_get(ev, "user");
        for (size_t k = 0; k < SG_ARRAY_SIZE(raw_keys); k++) {
            json_t *v = json_object_get(user, raw_keys[k]);
            if (json_is_string(v))
                json_object_set_new(user, raw_keys[k],
                                    json_sprintf("(%zu bytes)", json_string_length(v)));
        }
    }
    char *shown =
        doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    sg_info("dry-run %s (site %s): would POST %zu event(s) to %s: %s", fw->dest->id,
            fw->site->id, n, fw->dest->url, shown ? shown : "(unprintable)");
    free(shown);
    json_decref(doc);
}

static void send_batch(struct sg_forwarder *fw, struct batch *b)
{
    const char *evs[1000];
    size_t lens[1000];
    struct sg_buf body;
    bool test = fw->dest->test_event_code != NULL;

    sg_buf_init(&body, 0);
    for (size_t i = 0; i < b->n; i++) {
        evs[i] = b->items[i].json;
        lens[i] = b->items[i].len;
    }
    fw->dest->ops->build_body(fw->dest, evs, lens, b->n, test, &body);
    fw->inflight += b->n;
    fw->requests++;
    if (fw->dest->dry_run) {
        log_dry_run(fw, &body, b->n);
        sg_buf_release(&body);
        for (size_t i = 0; i < b->n; i++) {
            struct item *it = &b->items[i];
            record(fw, it->event, it->event_id, it->rules, &it->consent, "skipped", "dry_run", 0, -1, NULL, 0);
            item_free(it);
        }
        fw->inflight -= b->n;
        fw->requests--;
        free(b->items);
        free(b);
        return;
    }
    size_t len;
    char *data = sg_buf_detach(&body, &len);
    struct curl_slist *hdrs = fw->dest->ops->headers(fw->dest);
    if (!hdrs || sg_http_post(fw->http, fw->dest->url, hdrs, data, len,
                              fw->limits->upstream_timeout_ms, request_done, b) < 0) {
        struct sg_http_result res = {.curl_code = CURLE_FAILED_INIT, .error = "cannot start"};
        if (!hdrs)
            free(data);
        request_done(b, &res);
    }
}

static void flush(struct sg_forwarder *fw)
{
    size_t max = fw->dest->test_event_code ? 1 : fw->limits->batch_max_events;
    while (fw->count && fw->requests < fw->limits->max_inflight) {
        struct batch *b = sg_xcalloc(1, sizeof(*b));
        b->fw = fw;
        b->n = SG_MIN(fw->count, max);
        b->items = sg_xcalloc(b->n, sizeof(struct item));
        for (size_t i = 0; i < b->n; i++) {
            b->items[i] = fw->ring[fw->head];
            fw->head = (fw->head + 1) % fw->cap;
        }
        fw->count -= b->n;
        send_batch(fw, b);
    }
}

size_t sg_forwarder_drain(struct sg_forwarder *fw)
{
    flush(fw);
    return fw->count + fw->inflight;
}

size_t sg_forwarder_pending(const struct sg_forwarder *fw)
{
    return fw->count + fw->inflight;
}
