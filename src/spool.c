/*
 * spool.c - append-only segment files with CRC-32C records, group commit,
 * acks, recovery. See spool.h for the format and the rules.
 */
#include "scrubgate/common.h"
#include "scrubgate/log.h"
#include "scrubgate/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_MAGIC 0x53475231u /* "SGR1" */
#define REC_DATA 1u
#define REC_ACK 2u
#define REC_HEADER 16u
#define REC_MAX_PAYLOAD SG_SPOOL_MAX_PAYLOAD

/*
 * ---- CRC-32C (Castagnoli) ----
 * With the SSE4.2 instruction where the CPU has it (eight bytes a step: the
 * spool checksums every record it writes), else table-driven, a byte a step.
 * Both give the same value (tests/unit/test_spool.c checks them against each
 * other).
 */

static uint32_t crc_table[256];
static uint32_t (*crc_update)(uint32_t c, const unsigned char *p, size_t len);
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static uint32_t crc_by_table(uint32_t c, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc_by_sse42(uint32_t c, const unsigned char *p,
                                                               size_t len)
{
    uint64_t c64 = c;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    c = (uint32_t)c64;
    for (; len; p++, len--)
        c = __builtin_ia32_crc32qi(c, *p);
    return c;
}
#endif

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_update = crc_by_table;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        crc_update = crc_by_sse42;
#endif
}

uint32_t sg_crc32c(const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return crc_update(0xFFFFFFFFu, data, len) ^ 0xFFFFFFFFu;
}

uint32_t sg_crc32c_portable(const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return crc_by_table(0xFFFFFFFFu, data, len) ^ 0xFFFFFFFFu;
}

/* ---- little-endian encoding ---- */

static void put32(struct sg_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    sg_buf_add(b, x, 4);
}

static void put64(struct sg_buf *b, uint64_t v)
{
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}

static void putstr(struct sg_buf *b, const char *s, size_t len)
{
    put32(b, (uint32_t)len);
    sg_buf_add(b, s, len);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- shared state ---- */

struct sg_spool_shared {
    char *dir;
    int dir_fd;            /* fsync'ed after a segment is created, so its name is durable */
    _Atomic uint64_t next_seq;
    _Atomic uint64_t total_bytes;
    uint64_t max_bytes;
    uint64_t segment_bytes;
};

struct sg_spool_shared *sg_spool_shared_new(const char *dir, uint64_t next_seq,
                                            uint64_t max_bytes, uint64_t segment_bytes)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        sg_error("spool %s: cannot open: %s", dir, strerror(errno));
        return NULL;
    }
    struct sg_spool_shared *sh = sg_xcalloc(1, sizeof(*sh));
    sh->dir = sg_xstrdup(dir);
    sh->dir_fd = dfd;
    atomic_init(&sh->next_seq, next_seq);
    atomic_init(&sh->total_bytes, 0);
    sh->max_bytes = max_bytes;
    sh->segment_bytes = segment_bytes;
    return sh;
}

void sg_spool_shared_free(struct sg_spool_shared *sh)
{
    if (!sh)
        return;
    close(sh->dir_fd);
    free(sh->dir);
    free(sh);
}

void sg_spool_shared_add_bytes(struct sg_spool_shared *sh, uint64_t bytes)
{
    atomic_fetch_add(&sh->total_bytes, bytes);
}

uint64_t sg_spool_shared_bytes(const struct sg_spool_shared *sh)
{
    return atomic_load(&sh->total_bytes);
}

/* ---- a worker's spool ---- */

struct segment {
    uint64_t seq;
    size_t pending;  /* data records not yet acked */
    uint64_t bytes;  /* bytes on disk */
    bool sealed;     /* no more appends: deletable once pending is 0 */
    bool has_file;
    bool gone;       /* its file was deleted under us (noticed when acks were appended) */
};

struct sg_spool {
    struct sg_spool_shared *sh;
    uint64_t active_seq;   /* the segment appends go to; 0 until the first append */
    int fd;                /* its file, -1 until the first write creates it */
    uint32_t active_count; /* indexes handed out in the active segment */
    uint64_t active_bytes; /* bytes in the active file */
    struct sg_buf buf;     /* data records of the current generation, not yet written */
    uint32_t buf_data;
    uint64_t gen;          /* the generation appends buffer into */
    uint64_t appended;
    struct sg_spool_ref *acks; /* acks not yet written */
    size_t n_acks, cap_acks;
    int *close_fds;        /* chores for the next job (off the loop) */
    size_t n_close, cap_close;
    char **unlinks;
    size_t n_unlink, cap_unlink;
    _Atomic bool failing;  /* the last write or sync failed (read by the admin thread) */
    bool acks_blocked;     /* acks of a sealed segment could not be written: retry later */
    uint64_t log_at;       /* when the last write error was logged (monotonic ms) */
    size_t log_quiet;      /* write errors not logged since (a full disk fails every request) */
    struct segment *segs;
    size_t n_segs, cap_segs;
};

#define GROW(v, n, cap)                                                                            \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap) * 2 : 8;                                                         \
            (v) = sg_xrealloc((v), (cap) * sizeof(*(v)));                                          \
        }                                                                                          \
    } while (0)

/*
 * Log write errors once per 10 s per worker while they repeat: a full disk
 * fails every request, and the log must not fill what is left of it. The
 * first error of a run is always logged; the count of the others follows.
 */
#define LOG_EVERY_MS 10000

static bool may_log(struct sg_spool *sp)
{
    uint64_t now = sg_now_mono_ms();
    if (sp->log_at && now - sp->log_at < LOG_EVERY_MS) {
        sp->log_quiet++;
        return false;
    }
    if (sp->log_quiet)
        sg_error("spool: %zu more write error(s) in the last %d s (not logged one by one)",
                 sp->log_quiet, LOG_EVERY_MS / 1000);
    sp->log_at = now;
    sp->log_quiet = 0;
    return true;
}

/* A write or sync succeeded: the next error is news again. */
static void healed(struct sg_spool *sp)
{
    if (!sp->failing)
        return;
    sg_info("spool: writes succeed again%s", sp->log_quiet ? " (after repeated errors)" : "");
    sp->failing = false;
    sp->log_at = 0;
    sp->log_quiet = 0;
}

static char *seg_path(const char *dir, uint64_t seq)
{
    return sg_xasprintf("%s/%020llu.seg", dir, (unsigned long long)seq);
}

static struct segment *find_seg(struct sg_spool *sp, uint64_t seq)
{
    for (size_t i = 0; i < sp->n_segs; i++)
        if (sp->segs[i].seq == seq)
            return &sp->segs[i];
    return NULL;
}

static struct segment *add_seg(struct sg_spool *sp, uint64_t seq)
{
    GROW(sp->segs, sp->n_segs, sp->cap_segs);
    struct segment *s = &sp->segs[sp->n_segs++];
    memset(s, 0, sizeof(*s));
    s->seq = seq;
    return s;
}

static void defer_close(struct sg_spool *sp, int fd)
{
    GROW(sp->close_fds, sp->n_close, sp->cap_close);
    sp->close_fds[sp->n_close++] = fd;
}

/* Forget a sealed segment with nothing pending; its file is unlinked off the loop. */
static void maybe_delete(struct sg_spool *sp, struct segment *s)
{
    if (!s->sealed || s->pending)
        return;
    if (s->has_file) {
        GROW(sp->unlinks, sp->n_unlink, sp->cap_unlink);
        sp->unlinks[sp->n_unlink++] = seg_path(sp->sh->dir, s->seq);
        atomic_fetch_sub(&sp->sh->total_bytes, s->bytes);
    }
    *s = sp->segs[--sp->n_segs];
}

/* No more appends to the active segment; the next append starts a new one. */
static void seal_active(struct sg_spool *sp)
{
    if (!sp->active_seq)
        return;
    if (sp->fd >= 0)
        defer_close(sp, sp->fd); /* after any sync still running on it: jobs run in order */
    sp->fd = -1;
    struct segment *s = find_seg(sp, sp->active_seq);
    sp->active_seq = 0;
    if (s) {
        s->sealed = true;
        maybe_delete(sp, s);
    }
}

struct sg_spool *sg_spool_new(struct sg_spool_shared *sh, int worker)
{
    struct sg_spool *sp = sg_xcalloc(1, sizeof(*sp));
    sp->sh = sh;
    (void)worker; /* one spool per worker; the index is only for the caller's bookkeeping */
    sp->fd = -1;
    sp->gen = 1;
    sg_buf_init(&sp->buf, 0);
    return sp;
}

static void do_chores(int *fds, size_t n_close, char **unlinks, size_t n_unlink)
{
    for (size_t i = 0; i < n_close; i++)
        close(fds[i]);
    for (size_t i = 0; i < n_unlink; i++) {
        if (unlink(unlinks[i]) < 0 && errno != ENOENT)
            sg_warn("spool: cannot delete %s: %s", unlinks[i], strerror(errno));
        free(unlinks[i]);
    }
    free(fds);
    free(unlinks);
}

void sg_spool_free(struct sg_spool *sp)
{
    if (!sp)
        return;
    seal_active(sp);
    do_chores(sp->close_fds, sp->n_close, sp->unlinks, sp->n_unlink);
    sg_buf_release(&sp->buf);
    free(sp->acks);
    free(sp->segs);
    free(sp);
}

void sg_spool_adopt(struct sg_spool *sp, uint64_t seg, size_t pending, uint64_t bytes)
{
    struct segment *s = add_seg(sp, seg);
    s->pending = pending;
    s->bytes = bytes;
    s->sealed = true;
    s->has_file = true;
}

bool sg_spool_failing(const struct sg_spool *sp)
{
    return sp->failing;
}

bool sg_spool_has_room(const struct sg_spool *sp, size_t bytes)
{
    return atomic_load(&sp->sh->total_bytes) + sp->buf.len + bytes <= sp->sh->max_bytes;
}

uint64_t sg_spool_gen(const struct sg_spool *sp)
{
    return sp->gen;
}

uint64_t sg_spool_appended(const struct sg_spool *sp)
{
    return sp->appended;
}

bool sg_spool_dirty(const struct sg_spool *sp)
{
    return sp->buf.len || (sp->n_acks && !sp->acks_blocked) || sp->n_close || sp->n_unlink;
}

bool sg_spool_acks_blocked(const struct sg_spool *sp)
{
    return sp->n_acks && sp->acks_blocked;
}

static void add_record(struct sg_buf *b, uint32_t type, const struct sg_buf *payload)
{
    put32(b, REC_MAGIC);
    put32(b, type);
    put32(b, (uint32_t)payload->len);
    put32(b, sg_crc32c(payload->data, payload->len));
    sg_buf_add(b, payload->data, payload->len);
}

static _Thread_local struct sg_buf tl_payload;

#define PAYLOAD_VERSION 2 /* 1: no index, no rule set (still read) */

int sg_spool_append(struct sg_spool *sp, struct sg_spool_entry *e)
{
    struct sg_buf *p = &tl_payload;
    size_t strings = strlen(e->site) + strlen(e->dest) + strlen(e->event) +
                     strlen(e->event_id) + (e->rules ? strlen(e->rules) : 2) +
                     (e->rule_set ? strlen(e->rule_set) : 0) + e->json_len;
    if (strings > REC_MAX_PAYLOAD - 256)
        return -1; /* recovery would refuse the record: never buffer what cannot come back */
    if (sp->active_seq && sp->buf_data == 0 && sp->active_bytes >= sp->sh->segment_bytes)
        seal_active(sp); /* full: roll over between generations, never inside one */
    if (!sp->active_seq) {
        sp->active_seq = atomic_fetch_add(&sp->sh->next_seq, 1);
        sp->active_count = 0;
        sp->active_bytes = 0;
        add_seg(sp, sp->active_seq);
    }
    e->ref.seg = sp->active_seq;
    e->ref.idx = sp->active_count++;
    sg_buf_reset(p);
    sg_buf_addc(p, PAYLOAD_VERSION);
    put64(p, (uint64_t)e->first_ts);
    put32(p, e->attempts);
    put32(p, e->ref.idx);
    sg_buf_add(p, e->consent.state, SG_PURPOSE__COUNT);
    sg_buf_add(p, e->consent.source, SG_PURPOSE__COUNT);
    sg_buf_add(p, e->consent.evidence, SG_PURPOSE__COUNT);
    sg_buf_addc(p, (char)e->consent.tcf);
    sg_buf_addc(p, (char)((e->consent.gpc ? 1 : 0) | (e->consent.sale_opt_out ? 2 : 0)));
    putstr(p, e->site, strlen(e->site));
    putstr(p, e->dest, strlen(e->dest));
    putstr(p, e->event, strlen(e->event));
    putstr(p, e->event_id, strlen(e->event_id));
    putstr(p, e->rules ? e->rules : "[]", e->rules ? strlen(e->rules) : 2);
    putstr(p, e->rule_set ? e->rule_set : "", e->rule_set ? strlen(e->rule_set) : 0);
    putstr(p, e->json, e->json_len);
    add_record(&sp->buf, REC_DATA, p);
    sp->buf_data++;
    sp->appended++;
    find_seg(sp, sp->active_seq)->pending++;
    return 0;
}

void sg_spool_ack(struct sg_spool *sp, struct sg_spool_ref ref)
{
    struct segment *s = find_seg(sp, ref.seg);
    if (!s || ref.idx == UINT32_MAX)
        return;
    if (s->pending)
        s->pending--;
    if (s->sealed && s->pending == 0) {
        maybe_delete(sp, s); /* the file goes, so no ack record is needed */
        return;
    }
    GROW(sp->acks, sp->n_acks, sp->cap_acks);
    sp->acks[sp->n_acks++] = ref;
    sp->acks_blocked = false; /* new work: worth a round */
}

static void encode_ack(struct sg_buf *b, struct sg_spool_ref ref)
{
    struct sg_buf *p = &tl_payload;
    sg_buf_reset(p);
    put64(p, ref.seg);
    put32(p, ref.idx);
    add_record(b, REC_ACK, p);
}

static int cmp_ref(const void *a, const void *b)
{
    uint64_t x = ((const struct sg_spool_ref *)a)->seg, y = ((const struct sg_spool_ref *)b)->seg;
    return x < y ? -1 : x > y;
}

/*
 * Acks of sealed segments are appended to their own files (acks live with
 * their segment). They are not fsync'ed: a kill loses nothing written, and
 * an ack lost to a power cut only means a duplicate send (at least once).
 * Those whose file cannot be opened or written stay queued (acks_blocked:
 * retried after a pause); those of a segment deleted meanwhile are dropped.
 * The active segment's acks move to job->acks: they go with the data.
 */
static void write_sealed_acks(struct sg_spool *sp, struct sg_spool_job *job)
{
    struct sg_buf b;
    size_t keep = 0, j, cap_active = 0;
    sg_buf_init(&b, 0);
    sp->acks_blocked = false;
    if (sp->n_acks > 1)
        qsort(sp->acks, sp->n_acks, sizeof(*sp->acks), cmp_ref);
    for (size_t i = 0; i < sp->n_acks; i = j) {
        uint64_t seq = sp->acks[i].seg;
        for (j = i; j < sp->n_acks && sp->acks[j].seg == seq; j++)
            ;
        struct segment *s = find_seg(sp, seq);
        if (!s || s->gone)
            continue; /* deleted meanwhile: nothing to ack */
        if (seq == sp->active_seq) {
            for (size_t k = i; k < j; k++) {
                GROW(job->acks, job->n_acks, cap_active);
                job->acks[job->n_acks++] = sp->acks[k];
            }
            continue;
        }
        sg_buf_reset(&b);
        for (size_t k = i; k < j; k++)
            encode_ack(&b, sp->acks[k]);
        char *path = seg_path(sp->sh->dir, seq);
        int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd >= 0 && sg_write_all(fd, b.data, b.len) == 0) {
            s->bytes += b.len;
            atomic_fetch_add(&sp->sh->total_bytes, b.len);
        } else if (fd < 0 && errno == ENOENT) {
            s->gone = true;
            sg_error("spool: %s was deleted while in use: its %zu event(s) not yet delivered "
                     "stay queued in memory but are no longer on disk",
                     path, s->pending);
        } else {
            if (may_log(sp))
                sg_warn("spool: cannot append acks to %s: %s; will retry", path,
                        strerror(errno));
            memmove(sp->acks + keep, sp->acks + i, (j - i) * sizeof(*sp->acks));
            keep += j - i;
            sp->acks_blocked = true;
        }
        if (fd >= 0)
            defer_close(sp, fd);
        free(path);
    }
    sp->n_acks = keep;
    sg_buf_release(&b);
}

/* Put acks that were not made durable back in the queue. */
static void requeue_acks(struct sg_spool *sp, struct sg_spool_job *job)
{
    for (size_t i = 0; i < job->n_acks; i++) {
        GROW(sp->acks, sp->n_acks, sp->cap_acks);
        sp->acks[sp->n_acks++] = job->acks[i];
    }
    free(job->acks);
    job->acks = NULL;
    job->n_acks = 0;
}

/* Take the records of a failed generation back: truncate the file to what was durable. */
static void take_back(struct sg_spool *sp, uint64_t seq, int fd, uint64_t len)
{
    char *path = seg_path(sp->sh->dir, seq);
    int rc = fd >= 0 ? ftruncate(fd, (off_t)len) : truncate(path, (off_t)len);
    if (rc < 0 && errno != ENOENT) /* always logged: it is what a restart may re-send */
        sg_error("spool: cannot take the records of failed requests back out of %s: %s; they "
                 "may be sent after a restart (their clients were answered 503)",
                 path, strerror(errno));
    free(path);
}

/* Drop the buffered generation: its requests are answered 503 and its events never sent. */
static uint64_t discard_buffer(struct sg_spool *sp)
{
    struct segment *s = find_seg(sp, sp->active_seq);
    if (s)
        s->pending -= SG_MIN(s->pending, (size_t)sp->buf_data);
    sg_buf_reset(&sp->buf);
    sp->buf_data = 0;
    sp->failing = true;
    return sp->gen++;
}

static void move_chores(struct sg_spool *sp, struct sg_spool_job *job)
{
    job->close_fds = sp->close_fds;
    job->n_close = sp->n_close;
    job->unlinks = sp->unlinks;
    job->n_unlink = sp->n_unlink;
    sp->close_fds = NULL;
    sp->n_close = sp->cap_close = 0;
    sp->unlinks = NULL;
    sp->n_unlink = sp->cap_unlink = 0;
}

enum sg_spool_write_result sg_spool_write(struct sg_spool *sp, struct sg_spool_job *job)
{
    memset(job, 0, sizeof(*job));
    job->fd = -1;
    job->dir_fd = -1;
    write_sealed_acks(sp, job); /* leaves the active segment's acks in job->acks */
    if (sp->buf_data || job->n_acks) {
        bool created = false;
        if (sp->fd < 0) {
            char *path = seg_path(sp->sh->dir, sp->active_seq);
            sp->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
            if (sp->fd < 0 && may_log(sp))
                sg_error("spool: cannot create %s: %s; its requests are answered 503", path,
                         strerror(errno));
            free(path);
            created = sp->fd >= 0;
        }
        struct segment *s = find_seg(sp, sp->active_seq);
        if (sp->fd >= 0 && s) {
            s->has_file = true;
            job->start_bytes = sp->active_bytes;
            job->start_count = sp->active_count - sp->buf_data;
            for (size_t i = 0; i < job->n_acks; i++)
                encode_ack(&sp->buf, job->acks[i]);
            if (sg_write_all(sp->fd, sp->buf.data, sp->buf.len) == 0) {
                job->gen = sp->buf_data ? sp->gen++ : 0;
                job->fd = sp->fd;
                job->dir_fd = created ? sp->sh->dir_fd : -1;
                job->seq = sp->active_seq;
                job->bytes = sp->buf.len;
                job->n_data = sp->buf_data; /* job->acks stay until the sync says durable */
                sp->active_bytes += sp->buf.len;
                s->bytes += sp->buf.len;
                atomic_fetch_add(&sp->sh->total_bytes, sp->buf.len);
                sg_buf_reset(&sp->buf);
                sp->buf_data = 0;
                move_chores(sp, job);
                return SG_SPOOL_WRITTEN;
            }
            if (may_log(sp))
                sg_error("spool: write to segment %llu failed: %s; its requests are answered "
                         "503",
                         (unsigned long long)sp->active_seq, strerror(errno));
            take_back(sp, sp->active_seq, sp->fd, job->start_bytes);
        }
        /* Creating or writing failed: this generation is refused; the next starts afresh
         * in a new segment, and the active segment's acks go to its file later. */
        requeue_acks(sp, job);
        job->gen = discard_buffer(sp);
        seal_active(sp);
        move_chores(sp, job);
        return SG_SPOOL_FAILED;
    }
    move_chores(sp, job);
    return SG_SPOOL_WRITTEN;
}

void sg_spool_job_run(struct sg_spool_job *job)
{
    struct stat st;
    job->err = 0;
    job->vanished = false;
    if (job->fd >= 0) {
        if (fdatasync(job->fd) < 0)
            job->err = errno;
        else if (job->dir_fd >= 0 && fsync(job->dir_fd) < 0)
            job->err = errno;
        else if (fstat(job->fd, &st) == 0 && st.st_nlink == 0)
            job->vanished = true;
    }
    do_chores(job->close_fds, job->n_close, job->unlinks, job->n_unlink);
    job->close_fds = NULL;
    job->unlinks = NULL;
    job->n_close = job->n_unlink = 0;
}

uint64_t sg_spool_job_done(struct sg_spool *sp, struct sg_spool_job *job)
{
    uint64_t failed = 0;
    do_chores(job->close_fds, job->n_close, job->unlinks, job->n_unlink); /* if not run */
    job->close_fds = NULL;
    job->unlinks = NULL;
    job->n_close = job->n_unlink = 0;
    if (job->fd < 0)
        return 0;
    if (!job->err && !job->vanished) {
        healed(sp);
        free(job->acks);
        job->acks = NULL;
        return 0;
    }
    char *path = seg_path(sp->sh->dir, job->seq);
    if (!may_log(sp))
        ;
    else if (job->vanished)
        sg_error("spool: %s was deleted while in use: events it held are no longer on disk "
                 "(they stay queued in memory); new events go to a new segment",
                 path);
    else
        sg_error("spool: fdatasync of %s failed: %s; its requests are answered 503", path,
                 strerror(job->err));
    free(path);
    struct segment *s = find_seg(sp, job->seq);
    if (!job->vanished)
        take_back(sp, job->seq, -1, job->start_bytes);
    if (s) {
        s->pending -= SG_MIN(s->pending, (size_t)job->n_data);
        s->bytes -= SG_MIN(s->bytes, job->bytes);
    }
    atomic_fetch_sub(&sp->sh->total_bytes, job->bytes);
    /* The acks it carried are written again (to the segment's file, now sealed). */
    requeue_acks(sp, job);
    failed = job->gen;
    sp->failing = true;
    if (job->seq == sp->active_seq) {
        /* Records buffered since share the segment (their indexes follow the lost ones). */
        if (sp->buf_data)
            failed = discard_buffer(sp);
        seal_active(sp);
    } else if (s) {
        maybe_delete(sp, s);
    }
    return failed ? failed : job->gen;
}

int sg_spool_commit(struct sg_spool *sp)
{
    struct sg_spool_job job;
    if (sg_spool_write(sp, &job) == SG_SPOOL_FAILED) {
        sg_spool_job_done(sp, &job);
        return -1;
    }
    sg_spool_job_run(&job);
    return sg_spool_job_done(sp, &job) == 0 ? 0 : -1;
}

void sg_spool_thread_release(void)
{
    sg_buf_release(&tl_payload);
}

/* ---- entries ---- */

void sg_spool_entry_release(struct sg_spool_entry *e)
{
    free(e->site);
    free(e->dest);
    free(e->event);
    free(e->event_id);
    free(e->rules);
    free(e->rule_set);
    free(e->json);
    memset(e, 0, sizeof(*e));
}

/* ---- recovery ---- */

struct reader {
    const unsigned char *p;
    size_t len, pos;
};

static int rd_str(struct reader *r, char **out, size_t *outlen)
{
    if (r->len - r->pos < 4)
        return -1;
    uint32_t n = get32(r->p + r->pos);
    r->pos += 4;
    if (n > r->len - r->pos)
        return -1;
    *out = sg_xstrndup((const char *)r->p + r->pos, n);
    if (outlen)
        *outlen = n;
    r->pos += n;
    return 0;
}

/* Decode a data record; *idx is its index (version 1 records: left as the caller's count). */
static int parse_data(const unsigned char *p, size_t len, struct sg_spool_entry *e, uint32_t *idx)
{
    struct reader r = {p, len, 0};
    memset(e, 0, sizeof(*e));
    if (len < 1 || (p[0] != 1 && p[0] != PAYLOAD_VERSION))
        return -1;
    unsigned version = p[0];
    size_t fixed = 1 + 8 + 4 + (version >= 2 ? 4 : 0) + 3 * SG_PURPOSE__COUNT + 2;
    if (len < fixed)
        return -1;
    r.pos = 1;
    e->first_ts = (int64_t)get64(p + r.pos);
    r.pos += 8;
    e->attempts = get32(p + r.pos);
    r.pos += 4;
    if (version >= 2) {
        *idx = get32(p + r.pos);
        r.pos += 4;
    }
    memcpy(e->consent.state, p + r.pos, SG_PURPOSE__COUNT);
    memcpy(e->consent.source, p + r.pos + SG_PURPOSE__COUNT, SG_PURPOSE__COUNT);
    memcpy(e->consent.evidence, p + r.pos + 2 * SG_PURPOSE__COUNT, SG_PURPOSE__COUNT);
    r.pos += 3 * SG_PURPOSE__COUNT;
    e->consent.tcf = p[r.pos++];
    e->consent.gpc = p[r.pos] & 1;
    e->consent.sale_opt_out = (p[r.pos++] & 2) != 0;
    if (rd_str(&r, &e->site, NULL) < 0 || rd_str(&r, &e->dest, NULL) < 0 ||
        rd_str(&r, &e->event, NULL) < 0 || rd_str(&r, &e->event_id, NULL) < 0 ||
        rd_str(&r, &e->rules, NULL) < 0 ||
        (version >= 2 && rd_str(&r, &e->rule_set, NULL) < 0) ||
        rd_str(&r, &e->json, &e->json_len) < 0 || r.pos != len) {
        sg_spool_entry_release(e);
        return -1;
    }
    if (e->rule_set && !e->rule_set[0]) {
        free(e->rule_set);
        e->rule_set = NULL;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_ack(const void *a, const void *b)
{
    const struct sg_spool_ref *x = a, *y = b;
    if (x->seg != y->seg)
        return x->seg < y->seg ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A whole, valid record at pos: its payload length, or -1. */
static int64_t record_at(const unsigned char *buf, size_t len, size_t pos)
{
    if (len - pos < REC_HEADER)
        return -1;
    uint32_t magic = get32(buf + pos), type = get32(buf + pos + 4);
    uint32_t plen = get32(buf + pos + 8), crc = get32(buf + pos + 12);
    if (magic != REC_MAGIC || (type != REC_DATA && type != REC_ACK) || plen > REC_MAX_PAYLOAD ||
        plen > len - pos - REC_HEADER || sg_crc32c(buf + pos + REC_HEADER, plen) != crc)
        return -1;
    return plen;
}

/* The next offset after pos where a valid record starts, or len. */
static size_t resync(const unsigned char *buf, size_t len, size_t pos)
{
    static const unsigned char magic[4] = {REC_MAGIC & 0xFF, (REC_MAGIC >> 8) & 0xFF,
                                           (REC_MAGIC >> 16) & 0xFF, REC_MAGIC >> 24};
    for (size_t p = pos + 1; p + REC_HEADER <= len; p++) {
        const unsigned char *m = memchr(buf + p, magic[0], len - p);
        if (!m)
            break;
        p = (size_t)(m - buf);
        if (len - p >= REC_HEADER && memcmp(m, magic, 4) == 0 && record_at(buf, len, p) >= 0)
            return p;
    }
    return len;
}

struct collect {
    struct sg_spool_ref *acks;
    size_t n_acks, cap_acks, cap_entries;
};

/* Read one segment's records into out and c. */
static void read_segment(const char *path, uint64_t seq, const unsigned char *buf, size_t len,
                         struct sg_spool_recovered *out, struct collect *c)
{
    size_t pos = 0, skipped = 0, stretches = 0;
    uint32_t count = 0;
    while (pos < len) {
        int64_t plen = record_at(buf, len, pos);
        if (plen < 0) {
            size_t next = resync(buf, len, pos);
            skipped += next - pos;
            stretches++;
            pos = next;
            continue;
        }
        const unsigned char *payload = buf + pos + REC_HEADER;
        uint32_t type = get32(buf + pos + 4);
        pos += REC_HEADER + (size_t)plen;
        if (type == REC_ACK && plen == 12) {
            GROW(c->acks, c->n_acks, c->cap_acks);
            c->acks[c->n_acks++] = (struct sg_spool_ref){get64(payload), get32(payload + 8)};
        } else if (type == REC_DATA) {
            struct sg_spool_entry e;
            uint32_t idx = count;
            if (parse_data(payload, (size_t)plen, &e, &idx) < 0) {
                sg_warn("spool: %s: a record at offset %zu passes its checksum but does not "
                        "decode: skipped",
                        path, pos - REC_HEADER - (size_t)plen);
                continue;
            }
            count++;
            e.ref.seg = seq;
            e.ref.idx = idx;
            GROW(out->entries, out->n, c->cap_entries);
            out->entries[out->n++] = e;
        }
    }
    if (skipped) {
        out->torn_segments++;
        out->torn_bytes += skipped;
        out->corrupt_records += stretches;
        sg_warn("spool: %s: %zu corrupt or torn stretch(es), %zu byte(s) skipped; the %u event "
                "record(s) around them are kept",
                path, stretches, skipped, count);
    }
}

/* Can we create, write, sync and delete a file in dir? 0, or -1 with errno. */
static int probe_dir(const char *dir)
{
    char *path = sg_xasprintf("%s/.probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = fd >= 0 && sg_write_all(fd, "x", 1) == 0 && fdatasync(fd) == 0 ? 0 : -1;
    int err = errno;
    if (fd >= 0)
        close(fd);
    unlink(path);
    free(path);
    errno = err;
    return rc;
}

int sg_spool_probe(const struct sg_spool *sp)
{
    return probe_dir(sp->sh->dir);
}

void sg_spool_set_healthy(struct sg_spool *sp)
{
    healed(sp);
}

int sg_spool_recover(const char *dir, struct sg_spool_recovered *out)
{
    memset(out, 0, sizeof(*out));
    out->next_seq = 1;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return sg_error("spool %s: cannot create: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return sg_error("spool %s: cannot open: %s", dir, strerror(errno));
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        /* Only the names the spool writes: 20 digits and ".seg" (a copy under another
         * name would be read twice). */
        char *end;
        unsigned long long seq = strtoull(de->d_name, &end, 10);
        if (strlen(de->d_name) != 24 || end != de->d_name + 20 || strcmp(end, ".seg") != 0 ||
            de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        GROW(seqs, n, cap);
        seqs[n++] = seq;
    }
    closedir(d);
    if (n)
        qsort(seqs, n, sizeof(*seqs), cmp_u64);

    struct collect c = {0};
    int rc = 0;
    out->segs = sg_xcalloc(n ? n : 1, sizeof(uint64_t));
    out->seg_pending = sg_xcalloc(n ? n : 1, sizeof(size_t));
    out->seg_bytes = sg_xcalloc(n ? n : 1, sizeof(uint64_t));
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path = seg_path(dir, seqs[i]);
        size_t len = 0;
        errno = 0;
        unsigned char *buf = (unsigned char *)sg_read_file(path, &len);
        if (!buf) {
            /* Never treat what we could not read as empty: stop, delete nothing. */
            rc = sg_error("spool: cannot read %s: %s; fix or move the file away, then start "
                          "again (nothing was deleted)",
                          path, errno ? strerror(errno) : "read error");
        } else {
            out->segs[i] = seqs[i];
            out->seg_bytes[i] = len;
            out->n_segs = i + 1;
            if (seqs[i] >= out->next_seq)
                out->next_seq = seqs[i] + 1;
            read_segment(path, seqs[i], buf, len, out, &c);
        }
        free(buf);
        free(path);
    }
    if (rc == 0 && c.n_acks)
        qsort(c.acks, c.n_acks, sizeof(*c.acks), cmp_ack);
    /* Keep what was not acked; count it per segment. */
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (c.n_acks &&
            bsearch(&out->entries[i].ref, c.acks, c.n_acks, sizeof(*c.acks), cmp_ack)) {
            sg_spool_entry_release(&out->entries[i]);
            continue;
        }
        for (size_t s = 0; s < out->n_segs; s++)
            if (out->segs[s] == out->entries[i].ref.seg)
                out->seg_pending[s]++;
        out->entries[kept++] = out->entries[i];
    }
    if (rc == 0)
        out->n = kept;
    /* Segments with nothing pending are done. */
    for (size_t s = 0; rc == 0 && s < out->n_segs; s++)
        if (out->seg_pending[s] == 0) {
            char *path = seg_path(dir, out->segs[s]);
            if (unlink(path) < 0 && errno != ENOENT)
                sg_warn("spool: cannot delete %s: %s", path, strerror(errno));
            free(path);
            out->seg_bytes[s] = 0;
        }
    free(c.acks);
    free(seqs);
    if (rc == 0 && probe_dir(dir) < 0)
        rc = sg_error("spool %s: not writable: %s", dir, strerror(errno));
    if (rc < 0)
        sg_spool_recovered_free(out);
    return rc;
}

void sg_spool_recovered_free(struct sg_spool_recovered *r)
{
    for (size_t i = 0; i < r->n; i++)
        sg_spool_entry_release(&r->entries[i]);
    free(r->entries);
    free(r->segs);
    free(r->seg_pending);
    free(r->seg_bytes);
    memset(r, 0, sizeof(*r));
}
