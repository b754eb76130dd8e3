/*
 * spool.h - the durable spool: scrubbed events on disk until they have an
 * outcome (DESIGN.md section 1).
 *
 * Segment files {state_dir}/spool/NNNNNNNNNNNNNNNNNNNN.seg hold records:
 *   u32 magic, u32 type, u32 length, u32 CRC-32C of the payload, payload.
 * A data record is one formatted (scrubbed) event for one destination; an
 * ack record names a data record that reached an outcome. Each worker owns
 * one spool and appends to its own active segment; records are buffered and
 * made durable together (write + fdatasync) before any 202 that depends on
 * them goes out. A segment is deleted once every data record in it is acked.
 * Nothing raw is ever written: the payload is what would be sent.
 */
#ifndef SCRUBGATE_SPOOL_H
#define SCRUBGATE_SPOOL_H

#include "scrubgate/buf.h"
#include "scrubgate/common.h"
#include "scrubgate/consent.h"

/*
 * The largest data record payload recovery reads back (a longer length field
 * is taken for corruption). Config validation keeps max_body_bytes well under
 * it, so that one event always fits in one record.
 */
#define SG_SPOOL_MAX_PAYLOAD (16u * 1024u * 1024u)

struct sg_spool;

/* Where a data record lives: its segment and its index in that segment. */
struct sg_spool_ref {
    uint64_t seg;
    uint32_t idx;
};

/* A data record's contents; strings are borrowed on append, owned after recovery. */
struct sg_spool_entry {
    char *site;
    char *dest;
    char *event;
    char *event_id;
    char *rules;       /* JSON array text of changed-rule ids */
    char *json;        /* the formatted outbound event */
    size_t json_len;
    struct sg_consent consent;
    int64_t first_ts;  /* Unix seconds when it was first accepted */
    uint32_t attempts;
    struct sg_spool_ref ref;
};

void sg_spool_entry_release(struct sg_spool_entry *e);

/* What recovery found; the entries are owned by the caller (sg_spool_recovered_free). */
struct sg_spool_recovered {
    struct sg_spool_entry *entries;
    size_t n;
    uint64_t *segs;        /* the segments the entries came from */
    size_t *seg_pending;   /* unacked data records per segment */
    uint64_t *seg_bytes;
    size_t n_segs;
    uint64_t next_seq;     /* the first unused segment number */
    size_t torn_segments;  /* segments with a torn or corrupt tail */
    uint64_t torn_bytes;   /* bytes past the last valid record, dropped */
};

/*
 * Read every segment under dir (created if missing): collect the data
 * records not acked, report torn tails (logged), delete segments with
 * nothing pending. Called once, before workers start. 0 or -1.
 */
int sg_spool_recover(const char *dir, struct sg_spool_recovered *out);
void sg_spool_recovered_free(struct sg_spool_recovered *r);

/* Shared by all workers' spools: disk use and the cap. */
struct sg_spool_shared;
struct sg_spool_shared *sg_spool_shared_new(const char *dir, uint64_t next_seq,
                                            uint64_t max_bytes, uint64_t segment_bytes);
void sg_spool_shared_free(struct sg_spool_shared *sh);
/* Account for recovered segments (bytes on disk). */
void sg_spool_shared_add_bytes(struct sg_spool_shared *sh, uint64_t bytes);

struct sg_spool *sg_spool_new(struct sg_spool_shared *sh, int worker);
void sg_spool_free(struct sg_spool *sp);

/* Adopt a recovered segment: its pending count and size, so acks can delete it. */
void sg_spool_adopt(struct sg_spool *sp, uint64_t seg, size_t pending, uint64_t bytes);

/* True when appending about n more bytes stays under the cap and the disk is healthy. */
bool sg_spool_has_room(const struct sg_spool *sp, size_t bytes);
bool sg_spool_broken(const struct sg_spool *sp);

/* Buffer a data record; fills e->ref. Durable only after sg_spool_commit(). */
void sg_spool_append(struct sg_spool *sp, struct sg_spool_entry *e);
/* Buffer an ack for ref (made durable with the next commit; an ack lost in a crash
 * only means a duplicate send, which TikTok deduplicates by event_id). */
void sg_spool_ack(struct sg_spool *sp, struct sg_spool_ref ref);
/* Write what is buffered and fdatasync. 0, or -1 (logged): the spool is broken. */
int sg_spool_commit(struct sg_spool *sp);
/*
 * The pipelined form of commit: sg_spool_write() writes what is buffered
 * (no sync); sg_spool_take_sync() then returns a dup of the descriptor that
 * must be fdatasync'ed for those writes to be durable (the caller syncs and
 * closes it, possibly on another thread), or -1 when nothing is unsynced.
 * A segment that fills is synced and sealed inside sg_spool_write().
 */
int sg_spool_write(struct sg_spool *sp);
int sg_spool_take_sync(struct sg_spool *sp);
/* Mark the spool broken (a sync failed elsewhere): ingest answers 503 from now on. */
void sg_spool_set_broken(struct sg_spool *sp);
/* Buffered bytes not yet committed. */
size_t sg_spool_pending_bytes(const struct sg_spool *sp);

uint32_t sg_crc32c(const void *data, size_t len);
/* Free this thread's encoding buffer (call before a thread exits). */
void sg_spool_thread_release(void);

#endif
