/*
 * replay.c - send dead-lettered events again (see replay.h).
 *
 * The dead letter is read line by line with a hard cap per line; each line
 * is checked by sg_replay_line_parse() (also the fuzz target) before any of
 * it is used. Outcomes go to the sync log; what was delivered is appended to
 * replayed.jsonl, one checked and synced write per batch, before the next
 * batch is sent.
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
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest replayed.jsonl line read back; ours are a few hundred bytes. */
#define DONE_MAX_LINE 4096u

/* ---- one line ---- */

void sg_replay_line_release(struct sg_replay_line *l)
{
    json_decref(l->doc);
    free(l->event_json);
    memset(l, 0, sizeof(*l));
}

static const char *nonempty_string(json_t *doc, const char *key)
{
    const char *s = json_string_value(json_object_get(doc, key));
    return s && *s ? s : NULL;
}

static bool integer_in(json_t *doc, const char *key, json_int_t lo, json_int_t hi, int64_t *out)
{
    json_t *v = json_object_get(doc, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

int sg_replay_line_parse(const char *text, size_t len, struct sg_replay_line *out,
                         const char **why)
{
    int64_t attempts = 0;
    memset(out, 0, sizeof(*out));
    if (len > SG_REPLAY_MAX_LINE)
        return *why = "line longer than the dead letter's line limit", -1;
    if (len == 0)
        return *why = "empty line", -1;
    /* jansson's error text may quote the input: it is not used. */
    json_t *doc = json_loadb(text, len, 0, NULL);
    if (!doc)
        return *why = "not JSON", -1;
    json_t *ev = json_object_get(doc, "event_json");
    if (!json_is_object(doc))
        *why = "not a JSON object";
    else if (!json_is_object(ev))
        *why = "event_json: missing or not an object";
    else if (!(out->site = nonempty_string(doc, "site")))
        *why = "site: missing or not a non-empty string";
    else if (!(out->destination = nonempty_string(doc, "destination")))
        *why = "destination: missing or not a non-empty string";
    else if (!(out->event = nonempty_string(doc, "event")))
        *why = "event: missing or not a non-empty string";
    else if (!(out->event_id = nonempty_string(doc, "event_id")))
        *why = "event_id: missing or not a non-empty string";
    else if (!integer_in(doc, "ts", 0, INT64_MAX, &out->ts))
        *why = "ts: missing or not a non-negative integer";
    else if (!integer_in(doc, "first_ts", 0, INT64_MAX, &out->first_ts))
        *why = "first_ts: missing or not a non-negative integer";
    else if (!integer_in(doc, "attempts", 0, INT_MAX - 1, &attempts))
        *why = "attempts: missing or not an integer from 0 to 2147483646";
    else if (!(out->event_json = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        *why = "event_json: cannot be written back as JSON";
    else
        *why = NULL;
    if (*why) {
        json_decref(doc);
        memset(out, 0, sizeof(*out));
        return -1;
    }
    out->doc = doc;
    out->attempts = (int)attempts;
    return 0;
}

/* ---- reading lines with a cap ---- */

struct line_reader {
    FILE *f;
    struct sg_buf line; /* capped: a longer line is skipped, not held */
    size_t lineno;
};

/*
 * The next line (without its newline) into r->line. 1 when there was one:
 * *complete says whether it ended with a newline (a line without one may
 * still be being written), *too_long that it was longer than the cap and was
 * skipped unread (r->line is then empty). 0 at the end, -1 on a read error.
 */
static int next_line(struct line_reader *r, bool *complete, bool *too_long)
{
    char chunk[4096];
    size_t n = 0;
    bool any = false;
    int c;
    sg_buf_reset(&r->line);
    *complete = *too_long = false;
    while ((c = getc_unlocked(r->f)) != EOF) {
        any = true;
        if (c == '\n') {
            *complete = true;
            break;
        }
        if (*too_long)
            continue;
        chunk[n++] = (char)c;
        if (n == sizeof(chunk)) {
            if (sg_buf_add(&r->line, chunk, n) < 0)
                *too_long = true;
            n = 0;
        }
    }
    if (ferror(r->f))
        return -1;
    if (!*too_long && n && sg_buf_add(&r->line, chunk, n) < 0)
        *too_long = true;
    if (*too_long)
        sg_buf_reset(&r->line);
    if (!any)
        return 0;
    r->lineno++;
    return 1;
}

/* ---- replayed.jsonl: "site destination event_id first_ts" keys ---- */

static char *key_of(const struct sg_replay_line *l)
{
    return sg_xasprintf("%s %s %s %lld", l->site, l->destination, l->event_id,
                        (long long)l->first_ts);
}

/*
 * The keys already replayed. Lines that are not ours are ignored (the worst
 * outcome is an event sent twice, which TikTok deduplicates by event_id).
 * (A torn last line is ended by sg_open_jsonl before anything is appended.)
 * 0, or -1 (printed) when the file exists but cannot be read.
 */
static int load_replayed(const char *path, json_t *done)
{
    struct line_reader r = {fopen(path, "r"), {0}, 0};
    bool complete = true, too_long;
    int rc;
    if (!r.f) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "replay: %s: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    sg_buf_init(&r.line, DONE_MAX_LINE);
    while ((rc = next_line(&r, &complete, &too_long)) == 1) {
        json_t *o = complete && !too_long ? json_loadb(r.line.data, r.line.len, 0, NULL) : NULL;
        const char *key = json_string_value(json_object_get(o, "key"));
        if (key)
            json_object_set_new(done, key, json_true());
        json_decref(o);
    }
    if (rc < 0)
        fprintf(stderr, "replay: %s: cannot read: %s\n", path, strerror(errno));
    sg_buf_release(&r.line);
    fclose(r.f);
    return rc < 0 ? -1 : 0;
}

/*
 * Append the marks of one batch and sync them. On any failure the file is
 * cut back to where it was, so no partial line is left to swallow the next
 * one, and -1 is returned (printed).
 */
static int append_marks(int fd, const char *path, struct sg_buf *marks)
{
    if (sg_append_lines(fd, path, marks->data, marks->len, true) == 0)
        return 0;
    fprintf(stderr, "replay: %s: write failed: %s; the batch's events are not marked replayed\n",
            path, strerror(errno));
    return -1;
}

/* ---- sending ---- */

struct line {
    struct sg_replay_line l; /* owned */
    const struct sg_site *site;
    const struct sg_dest_conf *dest;
    bool done;
};

struct capped {
    struct sg_buf buf;
    bool too_large;
};

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    struct capped *c = arg;
    if (sg_buf_add(&c->buf, p, size * n) < 0) {
        c->too_large = true;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    return size * n;
}

/* Send one batch and classify the reply. */
static void send_batch(CURL *curl, const struct sg_limits *lim, struct line **batch, size_t n,
                       struct sg_dest_reply *reply, long *http_status)
{
    const struct sg_dest_conf *d = batch[0]->dest;
    const char *evs[1000];
    size_t lens[1000];
    struct sg_buf body;
    struct capped resp = {.too_large = false};
    sg_buf_init(&body, 0);
    sg_buf_init(&resp.buf, lim->max_response_bytes);
    for (size_t i = 0; i < n; i++) {
        evs[i] = batch[i]->l.event_json;
        lens[i] = strlen(batch[i]->l.event_json);
    }
    d->ops->build_body(d, evs, lens, n, d->test_event_code != NULL, &body);
    struct curl_slist *h = d->ops->headers(d);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, d->url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, sg_buf_cstr(&body));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)lim->max_response_bytes);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)lim->upstream_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = h ? curl_easy_perform(curl) : CURLE_FAILED_INIT;
    *http_status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, http_status);
    d->ops->classify(*http_status, resp.buf.data, resp.buf.len, reply);
    if (resp.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        /* Whatever the reply said, it was not read: not delivered, as far as we know. */
        reply->result = SG_DEST_RETRY;
        reply->reason = "response_too_large";
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        reply->reason = "timeout";
    }
    curl_slist_free_all(h);
    sg_buf_release(&body);
    sg_buf_release(&resp.buf);
}

/* Events of a destination that is now a dry run: counted, neither sent nor marked. */
struct dry {
    const struct sg_dest_conf *dest;
    const struct sg_site *site;
    size_t n;
};

static void count_dry(struct dry **v, size_t *n, const struct line *l)
{
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].dest == l->dest) {
            (*v)[i].n++;
            return;
        }
    *v = sg_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = (struct dry){l->dest, l->site, 1};
}

int sg_replay_run(const struct sg_config *cfg, const struct sg_replay_opts *opts)
{
    char *path = sg_xasprintf("%s/dead-letter/dead-letter.jsonl", cfg->state_dir);
    char *done_path = sg_xasprintf("%s/dead-letter/replayed.jsonl", cfg->state_dir);
    struct line_reader rd = {fopen(path, "r"), {0}, 0};
    struct line *lines = NULL;
    struct dry *dry = NULL;
    size_t n = 0, cap = 0, n_dry = 0, delivered = 0, failed = 0, skipped_unknown = 0;
    size_t malformed = 0, dry_events = 0;
    json_t *done = json_object();
    struct sg_synclog *log = NULL;
    struct sg_buf marks;
    CURL *curl = NULL;
    int donefd = -1, lockfd = -1, status = 1, rc;
    bool log_failed = false, write_failed = false, complete, too_long;

    sg_buf_init(&rd.line, SG_REPLAY_MAX_LINE);
    sg_buf_init(&marks, 0);
    if (!rd.f) {
        int err = errno;
        printf("replay: %s: %s; nothing to replay\n", path,
               err == ENOENT ? "no dead letter" : strerror(err));
        status = err == ENOENT ? 0 : 1;
        goto out;
    }
    /* One replay at a time: two would both send what neither has marked yet. */
    char *lock_path = sg_xasprintf("%s/dead-letter/replay.lock", cfg->state_dir);
    char *what = sg_xasprintf("replay of %s/dead-letter", cfg->state_dir);
    lockfd = sg_lock_pidfile(lock_path, what);
    free(what);
    free(lock_path);
    if (lockfd < 0)
        goto out;
    /* Where the marks go must be readable and writable before anything is sent. */
    if (load_replayed(done_path, done) < 0)
        goto out;
    donefd = sg_open_jsonl(done_path);
    if (donefd < 0) {
        fprintf(stderr, "replay: %s: cannot open: %s\n", done_path, strerror(errno));
        goto out;
    }

    while ((rc = next_line(&rd, &complete, &too_long)) == 1) {
        struct line l = {.site = NULL};
        const char *why = NULL;
        if (too_long)
            why = "line longer than the dead letter's line limit; not read";
        else if (!complete)
            why = "last line has no newline (still being written?); left for a later replay";
        else
            sg_replay_line_parse(rd.line.data, rd.line.len, &l.l, &why);
        if (why) {
            /* Never the line's content: it may hold anything. */
            fprintf(stderr, "replay: %s:%zu: skipped: %s\n", path, rd.lineno, why);
            malformed++;
            continue;
        }
        if ((opts->site && strcmp(opts->site, l.l.site) != 0) || l.l.ts < opts->since) {
            sg_replay_line_release(&l.l);
            continue;
        }
        char *key = key_of(&l.l);
        bool seen = json_object_get(done, key) != NULL;
        free(key);
        if (seen) {
            sg_replay_line_release(&l.l);
            continue;
        }
        l.site = sg_config_site_by_id(cfg, l.l.site);
        for (size_t d = 0; l.site && d < l.site->n_dests; d++)
            if (strcmp(l.site->dests[d].id, l.l.destination) == 0)
                l.dest = &l.site->dests[d];
        if (!l.dest) {
            skipped_unknown++;
            sg_replay_line_release(&l.l);
            continue;
        }
        if (l.dest->dry_run) {
            count_dry(&dry, &n_dry, &l);
            dry_events++;
            sg_replay_line_release(&l.l);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            lines = sg_xrealloc(lines, cap * sizeof(*lines));
        }
        lines[n++] = l;
    }
    if (rc < 0) {
        fprintf(stderr, "replay: %s: cannot read: %s\n", path, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < n_dry; i++)
        fprintf(stderr,
                "replay: destination %s (site %s) is a dry run: %zu event(s) not sent and not "
                "marked replayed; set its dry_run to false and replay again\n",
                dry[i].dest->id, dry[i].site->id, dry[i].n);

    log = sg_synclog_open(cfg->state_dir);
    curl = curl_easy_init();
    if (!log || !curl)
        goto out;
    for (size_t i = 0; i < n && !write_failed; i++) {
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
        send_batch(curl, &cfg->limits, batch, bn, &reply, &http_status);
        bool ok = reply.result == SG_DEST_OK || reply.result == SG_DEST_PARTIAL;
        sg_buf_reset(&marks);
        for (size_t k = 0; k < bn; k++) {
            const struct sg_replay_line *l = &batch[k]->l;
            batch[k]->done = true;
            struct sg_sync_record r = {
                .site = batch[k]->site->id,
                .destination = batch[k]->dest->id,
                .event = l->event,
                .event_id = l->event_id,
                .status = !ok                               ? "failed"
                          : reply.result == SG_DEST_PARTIAL ? "partial_failure"
                                                            : "accepted",
                .reason = reply.reason,
                .http_status = http_status,
                .code = reply.code,
                .request_id = reply.request_id,
                .attempts = l->attempts + 1,
                .rules = NULL,
                .rule_set_version = sg_ruleset_version(batch[k]->site->rules),
                .consent = NULL,
            };
            if (sg_synclog_write(log, &r) < 0)
                log_failed = true;
            if (!ok) {
                failed++;
                continue;
            }
            char *key = key_of(l);
            json_t *rec = json_pack("{s:s,s:I}", "key", key, "ts", (json_int_t)sg_now_unix());
            char *txt = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
            if (!txt)
                sg_die("replay: cannot format a replayed.jsonl line");
            sg_buf_adds(&marks, txt);
            sg_buf_addc(&marks, '\n');
            free(txt);
            json_decref(rec);
            free(key);
        }
        if (!ok)
            fprintf(stderr, "replay: %s: %zu event(s) not delivered (%s, code %ld)\n",
                    lines[i].dest->id, bn, reply.reason, reply.code);
        if (ok && append_marks(donefd, done_path, &marks) < 0) {
            /* Delivered but not marked: a later replay sends them again (TikTok
             * deduplicates by event_id). Send nothing more that could not be marked. */
            fprintf(stderr,
                    "replay: %zu event(s) were delivered but are not marked replayed: a later "
                    "replay sends them again; stopping\n",
                    bn);
            write_failed = true;
            break;
        }
        if (ok) {
            delivered += bn;
        }
    }
    printf("replay: %zu delivered, %zu failed, %zu for destinations no longer configured, "
           "%zu for dry-run destinations (not sent), %zu malformed line(s) skipped\n",
           delivered, failed, skipped_unknown, dry_events, malformed);
    if (log_failed)
        fprintf(stderr, "replay: %s/sync-log.jsonl: some outcomes could not be written\n",
                cfg->state_dir);
    status = failed || dry_events || write_failed || log_failed ? 1 : 0;
out:
    if (curl)
        curl_easy_cleanup(curl);
    if (donefd >= 0)
        close(donefd);
    if (lockfd >= 0)
        close(lockfd);
    sg_synclog_free(log);
    for (size_t i = 0; i < n; i++)
        sg_replay_line_release(&lines[i].l);
    free(lines);
    free(dry);
    json_decref(done);
    sg_buf_release(&marks);
    sg_buf_release(&rd.line);
    if (rd.f)
        fclose(rd.f);
    free(path);
    free(done_path);
    return status;
}
