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
#define REC_MAX_PAYLOAD (16u * 1024u * 1024u)

/* ---- CRC-32C (Castagnoli), table-driven ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t sg_crc32c(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    pthread_once(&crc_once, crc_init);
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
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
    _Atomic uint64_t next_seq;
    _Atomic uint64_t total_bytes;
    uint64_t max_bytes;
    uint64_t segment_bytes;
};

struct sg_spool_shared *sg_spool_shared_new(const char *dir, uint64_t next_seq,
                                            uint64_t max_bytes, uint64_t segment_bytes)
{
    struct sg_spool_shared *sh = sg_xcalloc(1, sizeof(*sh));
    sh->dir = sg_xstrdup(dir);
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
    free(sh->dir);
    free(sh);
}

void sg_spool_shared_add_bytes(struct sg_spool_shared *sh, uint64_t bytes)
{
    atomic_fetch_add(&sh->total_bytes, bytes);
}

/* ---- a worker's spool ---- */

struct segment {
    uint64_t seq;
    size_t pending; /* data records not yet acked */
    uint64_t bytes;
    bool sealed;    /* no more appends: deletable once pending is 0 */
};

struct sg_spool {
    struct sg_spool_shared *sh;
    int fd;              /* the active segment, -1 when none */
    uint64_t active_seq;
    uint32_t active_count; /* data records in the active segment */
    uint64_t active_bytes; /* committed bytes in the active segment */
    struct sg_buf buf;   /* records not yet written */
    bool unsynced;       /* written to the active segment but not yet fdatasync'ed */
    struct segment *segs;
    size_t n_segs, cap_segs;
    bool broken;
};

static char *seg_path(const struct sg_spool_shared *sh, uint64_t seq)
{
    return sg_xasprintf("%s/%020llu.seg", sh->dir, (unsigned long long)seq);
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
    if (sp->n_segs == sp->cap_segs) {
        sp->cap_segs = sp->cap_segs ? sp->cap_segs * 2 : 8;
        sp->segs = sg_xrealloc(sp->segs, sp->cap_segs * sizeof(*sp->segs));
    }
    struct segment *s = &sp->segs[sp->n_segs++];
    memset(s, 0, sizeof(*s));
    s->seq = seq;
    return s;
}

/* Delete a sealed segment with nothing pending. */
static void maybe_delete(struct sg_spool *sp, struct segment *s)
{
    if (!s->sealed || s->pending)
        return;
    char *path = seg_path(sp->sh, s->seq);
    if (unlink(path) == 0 || errno == ENOENT)
        atomic_fetch_sub(&sp->sh->total_bytes, s->bytes);
    else
        sg_warn("spool: cannot delete %s: %s", path, strerror(errno));
    free(path);
    *s = sp->segs[--sp->n_segs];
}

struct sg_spool *sg_spool_new(struct sg_spool_shared *sh, int worker)
{
    struct sg_spool *sp = sg_xcalloc(1, sizeof(*sp));
    sp->sh = sh;
    (void)worker; /* one spool per worker; the index is only for the caller's bookkeeping */
    sp->fd = -1;
    sg_buf_init(&sp->buf, 0);
    return sp;
}

static void seal_active(struct sg_spool *sp)
{
    if (sp->fd < 0)
        return;
    close(sp->fd);
    sp->fd = -1;
    struct segment *s = find_seg(sp, sp->active_seq);
    if (s) {
        s->sealed = true;
        maybe_delete(sp, s);
    }
}

void sg_spool_free(struct sg_spool *sp)
{
    if (!sp)
        return;
    seal_active(sp);
    sg_buf_release(&sp->buf);
    free(sp->segs);
    free(sp);
}

void sg_spool_adopt(struct sg_spool *sp, uint64_t seg, size_t pending, uint64_t bytes)
{
    struct segment *s = add_seg(sp, seg);
    s->pending = pending;
    s->bytes = bytes;
    s->sealed = true;
}

bool sg_spool_broken(const struct sg_spool *sp)
{
    return sp->broken;
}

bool sg_spool_has_room(const struct sg_spool *sp, size_t bytes)
{
    return !sp->broken &&
           atomic_load(&sp->sh->total_bytes) + sp->buf.len + bytes <= sp->sh->max_bytes;
}

size_t sg_spool_pending_bytes(const struct sg_spool *sp)
{
    return sp->buf.len;
}

/* Open a new active segment (and make its name durable in the directory). */
static int open_active(struct sg_spool *sp)
{
    uint64_t seq = atomic_fetch_add(&sp->sh->next_seq, 1);
    char *path = seg_path(sp->sh, seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        sg_error("spool: cannot create %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    free(path);
    int dfd = open(sp->sh->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    sp->fd = fd;
    sp->active_seq = seq;
    sp->active_count = 0;
    sp->active_bytes = 0;
    add_seg(sp, seq);
    return 0;
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

void sg_spool_append(struct sg_spool *sp, struct sg_spool_entry *e)
{
    struct sg_buf *p = &tl_payload;
    if (sp->fd < 0 && open_active(sp) < 0) {
        sp->broken = true;
        e->ref.seg = 0;
        e->ref.idx = UINT32_MAX;
        return;
    }
    sg_buf_reset(p);
    sg_buf_addc(p, 1); /* payload version */
    put64(p, (uint64_t)e->first_ts);
    put32(p, e->attempts);
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
    putstr(p, e->json, e->json_len);
    add_record(&sp->buf, REC_DATA, p);
    e->ref.seg = sp->active_seq;
    e->ref.idx = sp->active_count++;
    find_seg(sp, sp->active_seq)->pending++;
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
    struct sg_buf *p = &tl_payload;
    sg_buf_reset(p);
    put64(p, ref.seg);
    put32(p, ref.idx);
    if (sp->fd >= 0 || open_active(sp) == 0)
        add_record(&sp->buf, REC_ACK, p);
}

void sg_spool_thread_release(void)
{
    sg_buf_release(&tl_payload);
}

int sg_spool_write(struct sg_spool *sp)
{
    if (sp->buf.len == 0)
        return sp->broken ? -1 : 0;
    if (sp->broken || sp->fd < 0) {
        sg_buf_reset(&sp->buf);
        sp->broken = true;
        return -1;
    }
    if (sg_write_all(sp->fd, sp->buf.data, sp->buf.len) < 0) {
        sg_error("spool: write failed: %s; refusing new events", strerror(errno));
        sp->broken = true;
        sg_buf_reset(&sp->buf);
        return -1;
    }
    struct segment *s = find_seg(sp, sp->active_seq);
    if (s)
        s->bytes += sp->buf.len;
    sp->active_bytes += sp->buf.len;
    atomic_fetch_add(&sp->sh->total_bytes, sp->buf.len);
    sg_buf_reset(&sp->buf);
    sp->unsynced = true;
    if (sp->active_bytes >= sp->sh->segment_bytes) {
        /* Rare (once per segment): sync here so that no later sync needs the old file. */
        if (fdatasync(sp->fd) < 0) {
            sg_error("spool: fdatasync failed: %s; refusing new events", strerror(errno));
            sp->broken = true;
            return -1;
        }
        sp->unsynced = false;
        seal_active(sp); /* the next append opens a new segment */
    }
    return 0;
}

int sg_spool_take_sync(struct sg_spool *sp)
{
    if (!sp->unsynced || sp->fd < 0)
        return -1;
    sp->unsynced = false;
    return dup(sp->fd);
}

void sg_spool_set_broken(struct sg_spool *sp)
{
    sp->broken = true;
}

int sg_spool_commit(struct sg_spool *sp)
{
    if (sg_spool_write(sp) < 0)
        return -1;
    if (sp->unsynced && sp->fd >= 0) {
        if (fdatasync(sp->fd) < 0) {
            sg_error("spool: fdatasync failed: %s; refusing new events", strerror(errno));
            sp->broken = true;
            return -1;
        }
        sp->unsynced = false;
    }
    return sp->broken ? -1 : 0;
}

/* ---- entries ---- */

void sg_spool_entry_release(struct sg_spool_entry *e)
{
    free(e->site);
    free(e->dest);
    free(e->event);
    free(e->event_id);
    free(e->rules);
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

static int parse_data(const unsigned char *p, size_t len, struct sg_spool_entry *e)
{
    struct reader r = {p, len, 0};
    memset(e, 0, sizeof(*e));
    if (len < 1 + 8 + 4 + 3 * SG_PURPOSE__COUNT + 2 || p[0] != 1)
        return -1;
    r.pos = 1;
    e->first_ts = (int64_t)get64(p + r.pos);
    r.pos += 8;
    e->attempts = get32(p + r.pos);
    r.pos += 4;
    memcpy(e->consent.state, p + r.pos, SG_PURPOSE__COUNT);
    memcpy(e->consent.source, p + r.pos + SG_PURPOSE__COUNT, SG_PURPOSE__COUNT);
    memcpy(e->consent.evidence, p + r.pos + 2 * SG_PURPOSE__COUNT, SG_PURPOSE__COUNT);
    r.pos += 3 * SG_PURPOSE__COUNT;
    e->consent.tcf = p[r.pos++];
    e->consent.gpc = p[r.pos] & 1;
    e->consent.sale_opt_out = (p[r.pos++] & 2) != 0;
    if (rd_str(&r, &e->site, NULL) < 0 || rd_str(&r, &e->dest, NULL) < 0 ||
        rd_str(&r, &e->event, NULL) < 0 || rd_str(&r, &e->event_id, NULL) < 0 ||
        rd_str(&r, &e->rules, NULL) < 0 || rd_str(&r, &e->json, &e->json_len) < 0) {
        sg_spool_entry_release(e);
        return -1;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t ack_key(uint64_t seg, uint32_t idx)
{
    return seg << 24 ^ idx; /* segments fit well below 2^40, indexes below 2^24 */
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
        char *end;
        unsigned long long seq = strtoull(de->d_name, &end, 10);
        if (end == de->d_name || strcmp(end, ".seg") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            seqs = sg_xrealloc(seqs, cap * sizeof(*seqs));
        }
        seqs[n++] = seq;
    }
    closedir(d);
    if (n)
        qsort(seqs, n, sizeof(*seqs), cmp_u64);

    uint64_t *acks = NULL;
    size_t n_acks = 0, cap_acks = 0, cap_entries = 0;
    struct sg_spool_shared tmp = {.dir = (char *)dir};
    out->segs = sg_xcalloc(n ? n : 1, sizeof(uint64_t));
    out->seg_pending = sg_xcalloc(n ? n : 1, sizeof(size_t));
    out->seg_bytes = sg_xcalloc(n ? n : 1, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        char *path = seg_path(&tmp, seqs[i]);
        size_t len = 0, pos = 0;
        uint32_t idx = 0;
        unsigned char *buf = (unsigned char *)sg_read_file(path, &len);
        out->segs[i] = seqs[i];
        out->seg_bytes[i] = len;
        out->n_segs = i + 1;
        if (seqs[i] >= out->next_seq)
            out->next_seq = seqs[i] + 1;
        while (buf && len - pos >= REC_HEADER) {
            uint32_t magic = get32(buf + pos), type = get32(buf + pos + 4);
            uint32_t plen = get32(buf + pos + 8), crc = get32(buf + pos + 12);
            if (magic != REC_MAGIC || (type != REC_DATA && type != REC_ACK) ||
                plen > REC_MAX_PAYLOAD || plen > len - pos - REC_HEADER ||
                sg_crc32c(buf + pos + REC_HEADER, plen) != crc)
                break;
            const unsigned char *payload = buf + pos + REC_HEADER;
            if (type == REC_ACK && plen == 12) {
                if (n_acks == cap_acks) {
                    cap_acks = cap_acks ? cap_acks * 2 : 256;
                    acks = sg_xrealloc(acks, cap_acks * sizeof(*acks));
                }
                acks[n_acks++] = ack_key(get64(payload), get32(payload + 8));
            } else if (type == REC_DATA) {
                struct sg_spool_entry e;
                if (parse_data(payload, plen, &e) < 0)
                    break; /* a record whose CRC holds but does not parse: treat as the tail */
                e.ref.seg = seqs[i];
                e.ref.idx = idx++;
                if (out->n == cap_entries) {
                    cap_entries = cap_entries ? cap_entries * 2 : 256;
                    out->entries = sg_xrealloc(out->entries, cap_entries * sizeof(*out->entries));
                }
                out->entries[out->n++] = e;
            }
            pos += REC_HEADER + plen;
        }
        if (buf && pos < len) {
            out->torn_segments++;
            out->torn_bytes += len - pos;
            sg_warn("spool: %s: torn or corrupt tail at offset %zu: %zu byte(s) dropped, "
                    "%u event record(s) before it kept",
                    path, pos, len - pos, idx);
        }
        free(buf);
        free(path);
    }
    if (n_acks)
        qsort(acks, n_acks, sizeof(*acks), cmp_u64);
    /* Keep what was not acked; count it per segment. */
    size_t kept = 0;
    for (size_t i = 0; i < out->n; i++) {
        uint64_t key = ack_key(out->entries[i].ref.seg, out->entries[i].ref.idx);
        if (n_acks && bsearch(&key, acks, n_acks, sizeof(*acks), cmp_u64)) {
            sg_spool_entry_release(&out->entries[i]);
            continue;
        }
        for (size_t s = 0; s < out->n_segs; s++)
            if (out->segs[s] == out->entries[i].ref.seg)
                out->seg_pending[s]++;
        out->entries[kept++] = out->entries[i];
    }
    out->n = kept;
    /* Segments with nothing pending are done. */
    for (size_t s = 0; s < out->n_segs; s++)
        if (out->seg_pending[s] == 0) {
            char *path = seg_path(&tmp, out->segs[s]);
            unlink(path);
            free(path);
            out->seg_bytes[s] = 0;
        }
    free(acks);
    free(seqs);
    return 0;
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
