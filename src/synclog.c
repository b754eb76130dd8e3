/*
 * synclog.c - append-only JSON lines, one write() per line under a mutex so
 * that lines from the worker threads never interleave.
 */
#include "scrubgate/common.h"
#include "scrubgate/log.h"
#include "scrubgate/synclog.h"

#include <errno.h>
#include <fcntl.h>
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
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
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
    json_object_set_new(o, "rules", r->rules ? json_incref(r->rules) : json_array());
    json_object_set_new(o, "rule_set", json_string(r->rule_set_version ? r->rule_set_version : ""));
    return o;
}

int sg_synclog_write(struct sg_synclog *log, const struct sg_sync_record *r)
{
    json_t *o = sg_sync_record_json(r, sg_now_unix());
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line)
        return sg_error("sync log: cannot serialize a record");
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps's NUL becomes the newline; length grows by one */
    int rc = 0;
    pthread_mutex_lock(&log->lock);
    ssize_t w = write(log->fd, line, len + 1);
    if (w != (ssize_t)(len + 1)) {
        if (log->write_errors++ % 1000 == 0)
            sg_error("sync log: write failed: %s", w < 0 ? strerror(errno) : "short write");
        rc = -1;
    }
    pthread_mutex_unlock(&log->lock);
    free(line);
    return rc;
}
