/*
 * replay.c - send dead-lettered events again (see replay.h).
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/dest.h"
#include "scrubgate/log.h"
#include "scrubgate/replay.h"
#include "scrubgate/rules.h"
#include "scrubgate/synclog.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct line {
    json_t *doc;   /* owned: the dead-letter line */
    char *json;    /* owned: the formatted event */
    const struct sg_site *site;
    const struct sg_dest_conf *dest;
    bool done;
};

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    struct sg_buf *b = arg;
    if (sg_buf_add(b, p, size * n) < 0)
        return 0;
    return size * n;
}

/* ids already replayed: "site destination event_id first_ts" keys. */
static char *key_of(json_t *doc)
{
    return sg_xasprintf("%s %s %s %lld", json_string_value(json_object_get(doc, "site")),
                        json_string_value(json_object_get(doc, "destination")),
                        json_string_value(json_object_get(doc, "event_id")),
                        (long long)json_integer_value(json_object_get(doc, "first_ts")));
}

static bool replayed(json_t *done, json_t *doc)
{
    char *k = key_of(doc);
    bool r = json_object_get(done, k) != NULL;
    free(k);
    return r;
}

static json_t *load_replayed(const char *path)
{
    json_t *done = json_object();
    FILE *f = fopen(path, "r");
    char buf[4096];
    while (f && fgets(buf, sizeof(buf), f)) {
        json_t *o = json_loads(buf, 0, NULL);
        if (o && json_is_string(json_object_get(o, "key")))
            json_object_set_new(done, json_string_value(json_object_get(o, "key")), json_true());
        json_decref(o);
    }
    if (f)
        fclose(f);
    return done;
}

/* Send one batch; returns the classification. */
static void send_batch(CURL *curl, const struct sg_limits *lim, struct line **batch, size_t n,
                       struct sg_dest_reply *reply, long *http_status)
{
    const struct sg_dest_conf *d = batch[0]->dest;
    const char *evs[1000];
    size_t lens[1000];
    struct sg_buf body, resp;
    sg_buf_init(&body, 0);
    sg_buf_init(&resp, lim->max_response_bytes);
    for (size_t i = 0; i < n; i++) {
        evs[i] = batch[i]->json;
        lens[i] = strlen(batch[i]->json);
    }
    d->ops->build_body(d, evs, lens, n, d->test_event_code != NULL, &body);
    struct curl_slist *h = d->ops->headers(d);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, d->url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, sg_buf_cstr(&body));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)lim->upstream_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(curl);
    *http_status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, http_status);
    d->ops->classify(*http_status, resp.data, resp.len, reply);
    curl_slist_free_all(h);
    sg_buf_release(&body);
    sg_buf_release(&resp);
}

int sg_replay_run(const struct sg_config *cfg, const struct sg_replay_opts *opts)
{
    char *path = sg_xasprintf("%s/dead-letter/dead-letter.jsonl", cfg->state_dir);
    char *done_path = sg_xasprintf("%s/dead-letter/replayed.jsonl", cfg->state_dir);
    FILE *f = fopen(path, "r");
    struct line *lines = NULL;
    size_t n = 0, cap = 0, delivered = 0, failed = 0, skipped_unknown = 0;
    int status = 0;

    if (!f) {
        printf("replay: %s: %s; nothing to replay\n", path,
               errno == ENOENT ? "no dead letter" : strerror(errno));
        free(path);
        free(done_path);
        return errno == ENOENT ? 0 : 1;
    }
    json_t *done = load_replayed(done_path);
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t len;
    while ((len = getline(&buf, &bufcap, f)) > 0) {
        json_t *doc = json_loadb(buf, (size_t)len, 0, NULL);
        json_t *ev = doc ? json_object_get(doc, "event_json") : NULL;
        const char *site_id = json_string_value(json_object_get(doc, "site"));
        if (!ev || !site_id || (opts->site && strcmp(opts->site, site_id) != 0) ||
            json_integer_value(json_object_get(doc, "ts")) < opts->since || replayed(done, doc)) {
            json_decref(doc);
            continue;
        }
        struct line l = {doc, json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER), NULL, NULL,
                         false};
        l.site = sg_config_site_by_id(cfg, site_id);
        const char *dest_id = json_string_value(json_object_get(doc, "destination"));
        for (size_t d = 0; l.site && dest_id && d < l.site->n_dests; d++)
            if (strcmp(l.site->dests[d].id, dest_id) == 0)
                l.dest = &l.site->dests[d];
        if (!l.dest) {
            skipped_unknown++;
            json_decref(doc);
            free(l.json);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            lines = sg_xrealloc(lines, cap * sizeof(*lines));
        }
        lines[n++] = l;
    }
    free(buf);
    fclose(f);

    struct sg_synclog *log = sg_synclog_open(cfg->state_dir);
    FILE *donef = fopen(done_path, "a");
    CURL *curl = curl_easy_init();
    if (!log || !donef || !curl) {
        status = 1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (lines[i].done)
            continue;
        /* A batch: this event and the next ones for the same destination. */
        struct line *batch[1000] = {0};
        size_t bn = 0, max = lines[i].dest->test_event_code ? 1 : cfg->limits.batch_max_events;
        for (size_t j = i; j < n && bn < max; j++)
            if (!lines[j].done && lines[j].dest == lines[i].dest)
                batch[bn++] = &lines[j];
        struct sg_dest_reply reply;
        long http_status;
        bool ok;
        if (lines[i].dest->dry_run) {
            reply.result = SG_DEST_OK;
            reply.reason = "dry_run";
            reply.code = -1;
            reply.request_id[0] = '\0';
            http_status = 0;
        } else {
            send_batch(curl, &cfg->limits, batch, bn, &reply, &http_status);
        }
        ok = reply.result == SG_DEST_OK || reply.result == SG_DEST_PARTIAL;
        for (size_t k = 0; k < bn; k++) {
            json_t *doc = batch[k]->doc;
            batch[k]->done = true;
            struct sg_sync_record r = {
                .site = batch[k]->site->id,
                .destination = batch[k]->dest->id,
                .event = json_string_value(json_object_get(doc, "event")),
                .event_id = json_string_value(json_object_get(doc, "event_id")),
                .status = !ok                                   ? "failed"
                          : lines[i].dest->dry_run              ? "skipped"
                          : reply.result == SG_DEST_PARTIAL     ? "partial_failure"
                                                                : "accepted",
                .reason = reply.reason,
                .http_status = http_status,
                .code = reply.code,
                .request_id = reply.request_id,
                .attempts = (int)json_integer_value(json_object_get(doc, "attempts")) + 1,
                .rules = NULL,
                .rule_set_version = sg_ruleset_version(batch[k]->site->rules),
                .consent = NULL,
            };
            if (!r.event || !r.event_id)
                continue;
            sg_synclog_write(log, &r);
            if (ok) {
                char *key = key_of(doc);
                json_t *rec = json_pack("{s:s,s:I}", "key", key, "ts", (json_int_t)sg_now_unix());
                char *txt = json_dumps(rec, JSON_COMPACT);
                fprintf(donef, "%s\n", txt);
                free(txt);
                json_decref(rec);
                free(key);
                delivered++;
            } else {
                failed++;
            }
        }
        if (!ok)
            fprintf(stderr, "replay: %s: %zu event(s) not delivered (%s, code %ld)\n",
                    lines[i].dest->id, bn, reply.reason, reply.code);
    }
    fflush(donef);
    fdatasync(fileno(donef));
    printf("replay: %zu delivered, %zu failed, %zu for destinations no longer configured\n",
           delivered, failed, skipped_unknown);
    status = failed ? 1 : 0;
out:
    if (curl)
        curl_easy_cleanup(curl);
    if (donef)
        fclose(donef);
    sg_synclog_free(log);
    for (size_t i = 0; i < n; i++) {
        json_decref(lines[i].doc);
        free(lines[i].json);
    }
    free(lines);
    json_decref(done);
    free(path);
    free(done_path);
    return status;
}
