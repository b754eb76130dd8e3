/*
 * synclog.c - append-only JSON lines, written under a mutex so that lines
 * from the worker threads never interleave: one write() per line, or one for
 * all the lines a thread staged (a forwarder's reply: hundreds of outcomes).
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/consent.h"
#include "scrubgate/log.h"
#include "scrubgate/synclog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sg_synclog {
    int fd;
    pthread_mutex_t lock;
    unsigned long write_errors;
};

static int mkdir_p(const char *dir)
{
    char *p = sg_xstrdup(dir);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0750) < 0 && errno != EEXIST) {
                free(p);
                return -1;
            }
            *s = '/';
        }
    }
    int rc = (mkdir(p, 0750) < 0 && errno != EEXIST) ? -1 : 0;
    free(p);
    return rc;
}

struct sg_synclog *sg_synclog_open(const char *state_dir)
{
    if (mkdir_p(state_dir) < 0) {
        sg_error("state_dir %s: cannot create: %s", state_dir, strerror(errno));
        return NULL;
    }
    char *path = sg_xasprintf("%s/sync-log.jsonl", state_dir);
    int fd = sg_open_jsonl(path);
    if (fd < 0) {
        sg_error("%s: cannot open: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    free(path);
    struct sg_synclog *log = sg_xcalloc(1, sizeof(*log));
    log->fd = fd;
    pthread_mutex_init(&log->lock, NULL);
    return log;
}

void sg_synclog_free(struct sg_synclog *log)
{
    if (!log)
        return;
    close(log->fd);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

json_t *sg_sync_record_json(const struct sg_sync_record *r, int64_t ts)
{
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_integer(ts));
    json_object_set_new(o, "site", json_string(r->site));
    json_object_set_new(o, "destination", json_string(r->destination));
    json_object_set_new(o, "event", json_string(r->event));
    json_object_set_new(o, "event_id", json_string(r->event_id));
    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "reason", json_string(r->reason ? r->reason : ""));
    json_object_set_new(o, "http_status", r->http_status ? json_integer(r->http_status) : json_null());
    json_object_set_new(o, "code", r->code >= 0 ? json_integer(r->code) : json_null());
    json_object_set_new(o, "request_id",
                        r->request_id && *r->request_id ? json_string(r->request_id) : json_null());
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_t *rules = r->rules ? json_loads(r->rules, 0, NULL) : NULL;
    json_object_set_new(o, "rules", rules ? rules : json_array());
    json_object_set_new(o, "rule_set", json_string(r->rule_set_version ? r->rule_set_version : ""));
    if (r->consent)
        json_object_set_new(o, "consent", sg_consent_evidence_json(r->consent));
    return o;
}

/* Append s as a JSON string (quoted, escaped). */
static void add_json_string(struct sg_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sg_buf_addc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            sg_buf_addc(b, '\\');
            sg_buf_addc(b, (char)*p);
        } else if (*p < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            sg_buf_add(b, esc, sizeof(esc));
        } else {
            sg_buf_addc(b, (char)*p);
        }
    }
    sg_buf_addc(b, '"');
}

static void add_field(struct sg_buf *b, const char *key, const char *value)
{
    sg_buf_adds(b, ",\"");
    sg_buf_adds(b, key);
    sg_buf_adds(b, "\":");
    if (value && *value)
        add_json_string(b, value);
    else
        sg_buf_adds(b, value ? "\"\"" : "null");
}

/*
 * The line is built by hand, in the same key order as sg_sync_record_json():
 * a line per event must not cost a tree of allocations. The unit tests check
 * that both forms agree.
 */

int sg_synclog_append(const struct sg_sync_record *r, int64_t ts, struct sg_buf *b)
{
    sg_buf_adds(b, "{\"ts\":");
    sg_buf_json_int(b, ts);
    add_field(b, "site", r->site);
    add_field(b, "destination", r->destination);
    add_field(b, "event", r->event);
    add_field(b, "event_id", r->event_id);
    add_field(b, "status", r->status);
    add_field(b, "reason", r->reason ? r->reason : "");
    sg_buf_adds(b, ",\"http_status\":");
    if (r->http_status)
        sg_buf_json_int(b, r->http_status);
    else
        sg_buf_adds(b, "null");
    sg_buf_adds(b, ",\"code\":");
    if (r->code >= 0)
        sg_buf_json_int(b, r->code);
    else
        sg_buf_adds(b, "null");
    add_field(b, "request_id", r->request_id && *r->request_id ? r->request_id : NULL);
    /* rules is JSON made by sg_event_changed_rules(): an array of rule ids, spliced as is. */
    sg_buf_adds(b, ",\"attempts\":");
    sg_buf_json_int(b, r->attempts);
    sg_buf_adds(b, ",\"rules\":");
    sg_buf_adds(b, r->rules ? r->rules : "[]");
    add_field(b, "rule_set", r->rule_set_version ? r->rule_set_version : "");
    if (r->consent) {
        /* Fixed tokens only (sg_consent_evidence_name): nothing here needs escaping. */
        sg_buf_adds(b, ",\"consent\":{");
        for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
            sg_buf_adds(b, p ? ",\"" : "\"");
            sg_buf_adds(b, sg_purpose_name((enum sg_purpose)p));
            sg_buf_adds(b, "\":\"");
            sg_buf_adds(b, sg_consent_evidence_name((enum sg_consent_evidence)r->consent->evidence[p]));
            sg_buf_addc(b, '"');
        }
        sg_buf_adds(b, ",\"tcf\":\"");
        sg_buf_adds(b, sg_tcf_outcome_name((enum sg_tcf_outcome)r->consent->tcf));
        sg_buf_adds(b, "\"}");
    }
    return sg_buf_adds(b, "}\n");
}

int sg_synclog_format(const struct sg_sync_record *r, int64_t ts, struct sg_buf *b)
{
    sg_buf_reset(b);
    return sg_synclog_append(r, ts, b);
}

/* The thread's staged lines (sg_synclog_stage), or the one line sg_synclog_write writes. */
static _Thread_local struct sg_buf tl_lines;

void sg_synclog_stage(const struct sg_sync_record *r)
{
    sg_synclog_append(r, sg_now_unix(), &tl_lines);
}

int sg_synclog_flush(struct sg_synclog *log)
{
    int rc = 0;
    if (tl_lines.len) {
        pthread_mutex_lock(&log->lock);
        if (sg_append_lines(log->fd, "sync log", tl_lines.data, tl_lines.len, false) < 0) {
            if (log->write_errors++ % 1000 == 0)
                sg_error("sync log: write failed: %s", strerror(errno));
            rc = -1;
        }
        pthread_mutex_unlock(&log->lock);
    }
    if (tl_lines.cap > 1024 * 1024) /* a batch of long lines: give the memory back */
        sg_buf_release(&tl_lines);
    else
        sg_buf_reset(&tl_lines);
    return rc;
}

int sg_synclog_write(struct sg_synclog *log, const struct sg_sync_record *r)
{
    sg_synclog_stage(r);
    return sg_synclog_flush(log);
}

void sg_synclog_thread_release(void)
{
    sg_buf_release(&tl_lines);
}

/* ---- reading backwards (the admin API) ---- */

#define READ_BLOCK 65536
#define LINE_MAX_BYTES (1024 * 1024) /* a longer "line" is not the log's: skipped */

/* Append the JSON encoding of s (a quoted string) to b, as the log writes it. */
static void needle(struct sg_buf *b, const char *key, const char *s)
{
    sg_buf_printf(b, "\"%s\":", key);
    add_json_string(b, s);
}

static bool has(const char *line, size_t len, const struct sg_buf *n)
{
    return n->len == 0 || memmem(line, len, n->data, n->len) != NULL;
}

/*
 * One complete line (without its newline). The cheap checks (a substring
 * of the exact encoded field, the ts prefix) come first; a candidate is
 * then parsed so that a value appearing in another field does not match.
 * Returns 1 to keep, 0 to skip, -1 to stop (older than since).
 */
static int consider(const char *line, size_t len, const struct sg_synclog_query *q,
                    struct sg_buf needles[3])
{
    static const char ts_key[] = "{\"ts\":";
    if (len < sizeof(ts_key) || memcmp(line, ts_key, sizeof(ts_key) - 1) != 0)
        return 0;
    /* The digits, read within the line: the block holding it is not NUL-terminated. */
    long long ts = 0;
    for (size_t i = sizeof(ts_key) - 1; i < len && line[i] >= '0' && line[i] <= '9' &&
                                        ts < (LLONG_MAX - 9) / 10;
         i++)
        ts = ts * 10 + (line[i] - '0');
    if (q->has_since && ts < q->since) {
        if (ts < q->since - SG_SYNCLOG_SINCE_SLACK)
            return -1;
        return 0;
    }
    for (int i = 0; i < 3; i++)
        if (!has(line, len, &needles[i]))
            return 0;
    json_t *o = json_loadb(line, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return 0;
    }
    const char *want[3] = {q->site, q->status, q->event_id};
    const char *key[3] = {"site", "status", "event_id"};
    int keep = 1;
    for (int i = 0; i < 3 && keep; i++) {
        const char *v = json_string_value(json_object_get(o, key[i]));
        if (want[i] && (!v || strcmp(v, want[i]) != 0))
            keep = 0;
    }
    json_decref(o);
    return keep;
}

int sg_synclog_query(const char *path, const struct sg_synclog_query *q, struct sg_buf *out)
{
    struct sg_buf needles[3];
    const char *want[3] = {q->site, q->status, q->event_id};
    const char *key[3] = {"site", "status", "event_id"};
    char *buf = NULL;
    size_t found = 0;
    int rc = -1;

    sg_buf_reset(out);
    sg_buf_addc(out, '[');
    for (int i = 0; i < 3; i++) {
        sg_buf_init(&needles[i], 0);
        if (want[i])
            needle(&needles[i], key[i], want[i]);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? 0 : -1;
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        goto out;
    /*
     * buf holds the file's bytes [pos, pos + have): whole lines after a
     * leading fragment whose start is in an earlier block. Lines are taken
     * from the end of buf; what is left is the fragment, kept in front of the
     * next block read.
     */
    off_t pos = st.st_size;
    size_t have = 0, cap = 0;
    bool first = true, stop = false;
    while (!stop && pos > 0) {
        size_t want_bytes = (size_t)SG_MIN((off_t)READ_BLOCK, pos);
        if (have + want_bytes > cap) {
            cap = have + want_bytes;
            buf = sg_xrealloc(buf, cap);
        }
        memmove(buf + want_bytes, buf, have);
        pos -= (off_t)want_bytes;
        ssize_t got = pread(fd, buf, want_bytes, pos);
        if (got != (ssize_t)want_bytes)
            goto out; /* the file shrank under us or a read failed */
        have += want_bytes;
        size_t end = have;
        if (first) {
            /* A last line without its newline is still being written: leave it out. */
            while (end > 0 && buf[end - 1] != '\n')
                end--;
            if (end == 0 && pos > 0 && have < LINE_MAX_BYTES)
                continue; /* no newline yet in what was read: read further back */
            first = false;
        }
        /* end is just after a newline (or 0); take the lines that are whole. */
        while (end > 0 && !stop) {
            size_t line_end = end - 1; /* the newline */
            size_t start = line_end;
            while (start > 0 && buf[start - 1] != '\n')
                start--;
            if (start == 0 && pos > 0)
                break; /* its beginning is in an earlier block */
            int k = line_end - start > LINE_MAX_BYTES
                        ? 0 /* no line of ours is this long */
                        : consider(buf + start, line_end - start, q, needles);
            if (k < 0) {
                stop = true;
            } else if (k > 0) {
                if (found++)
                    sg_buf_addc(out, ',');
                sg_buf_add(out, buf + start, line_end - start);
                stop = found >= q->limit;
            }
            end = start;
        }
        have = end;
        if (have > LINE_MAX_BYTES) {
            /* A fragment this long is no line of ours: drop it, go on before it. */
            have = 0;
            first = true;
        }
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    for (int i = 0; i < 3; i++)
        sg_buf_release(&needles[i]);
    sg_buf_addc(out, ']');
    return rc;
}
