/*
 * deadletter.c - append-only JSON lines, durable before the spool acks.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/deadletter.h"
#include "scrubgate/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sg_deadletter {
    int fd;
    char *path;
    pthread_mutex_t lock;
    _Atomic uint64_t events; /* lines in the file: counted at open, then per write */
};

/* Lines in the file at path (0 when it cannot be read): one pass, 64 KiB at a time. */
static uint64_t count_lines(const char *path)
{
    char block[65536];
    uint64_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t got;
    while ((got = read(fd, block, sizeof(block))) > 0)
        for (const char *p = block; (p = memchr(p, '\n', (size_t)(block + got - p))); p++)
            n++;
    close(fd);
    return n;
}

struct sg_deadletter *sg_deadletter_open(const char *state_dir)
{
    char *dir = sg_xasprintf("%s/dead-letter", state_dir);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        sg_error("%s: cannot create: %s", dir, strerror(errno));
        free(dir);
        return NULL;
    }
    char *path = sg_xasprintf("%s/dead-letter.jsonl", dir);
    free(dir);
    int fd = sg_open_jsonl(path);
    if (fd < 0) {
        sg_error("%s: cannot open: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    struct sg_deadletter *dl = sg_xcalloc(1, sizeof(*dl));
    dl->fd = fd;
    dl->path = path;
    dl->events = count_lines(path);
    pthread_mutex_init(&dl->lock, NULL);
    return dl;
}

void sg_deadletter_free(struct sg_deadletter *dl)
{
    if (!dl)
        return;
    close(dl->fd);
    free(dl->path);
    pthread_mutex_destroy(&dl->lock);
    free(dl);
}

uint64_t sg_deadletter_events(const struct sg_deadletter *dl)
{
    return dl->events;
}

const char *sg_deadletter_path(const struct sg_deadletter *dl)
{
    return dl->path;
}

int sg_deadletter_write(struct sg_deadletter *dl, const struct sg_dead_event *evs, size_t n,
                        const char *reason, long code, const char *request_id)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        const struct sg_dead_event *e = &evs[i];
        json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "ts", (json_int_t)sg_now_unix(),
                              "site", e->site, "destination", e->destination, "event", e->event,
                              "event_id", e->event_id, "reason", reason, "attempts",
                              (json_int_t)e->attempts, "first_ts", (json_int_t)e->first_ts);
        json_object_set_new(o, "code", code >= 0 ? json_integer(code) : json_null());
        json_object_set_new(o, "request_id",
                            request_id && *request_id ? json_string(request_id) : json_null());
        char *head = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        /* Splice the already formatted event in as the last member. */
        sg_buf_add(&b, head, strlen(head) - 1);
        sg_buf_adds(&b, ",\"event_json\":");
        sg_buf_add(&b, e->json, e->json_len);
        sg_buf_adds(&b, "}\n");
        free(head);
    }
    int rc = 0;
    pthread_mutex_lock(&dl->lock);
    if (sg_append_lines(dl->fd, dl->path, b.data, b.len, true) < 0)
        rc = sg_error("dead letter: write failed: %s", strerror(errno));
    else
        dl->events += n;
    pthread_mutex_unlock(&dl->lock);
    sg_buf_release(&b);
    return rc;
}
