/*
 * spool.h - the durable spool: scrubbed events on disk until they have an
 * outcome (docs/ARCHITECTURE.md, "Durability").
 *
 * Segment files {state_dir}/spool/NNNNNNNNNNNNNNNNNNNN.seg hold records:
 *   u32 magic, u32 type, u32 length, u32 CRC-32C of the payload, payload.
 * A data record is one formatted (scrubbed) event for one destination and
 * carries its own index in its segment; an ack record names a data record
 * of the same segment that reached an outcome. Acks live with their
 * segment, so deleting a segment never forgets an ack of another one.
 *
 * Each worker owns one spool and appends to its own active segment. Data
 * records are buffered in generations: sg_spool_write() writes the buffered
 * generation and returns a job whose fdatasync (on a background thread)
 * makes it durable; sg_spool_job_done() then says whether it did. A failed
 * write or sync takes the generation's records back off the disk (the file
 * is truncated to what was durable and the segment abandoned), so events
 * refused with 503 are never sent, and the next generation starts afresh in
 * a new segment: a transient EMFILE or ENOSPC heals by itself.
 *
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
    char *rule_set;    /* the rule-set version that scrubbed it (NULL: unknown) */
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
    size_t torn_segments;  /* segments with a torn tail or corrupt records */
    uint64_t torn_bytes;   /* bytes skipped: torn tails and corrupt records */
    size_t corrupt_records; /* corrupt stretches skipped in the middle of a segment */
};

/*
 * Read every segment under dir (created if missing): collect the data
 * records not acked, skip corrupt records (the reader resynchronizes on the
 * next valid record) and torn tails (logged), delete segments with nothing
 * pending, and check that dir is writable. A segment that cannot be read
 * stops recovery: -1 with a message naming the file, and nothing is
 * deleted. Called once, before workers start. 0 or -1.
 */
int sg_spool_recover(const char *dir, struct sg_spool_recovered *out);
void sg_spool_recovered_free(struct sg_spool_recovered *r);

/* Shared by all workers' spools: the directory, disk use and the cap. */
struct sg_spool_shared;
struct sg_spool_shared *sg_spool_shared_new(const char *dir, uint64_t next_seq,
                                            uint64_t max_bytes, uint64_t segment_bytes);
void sg_spool_shared_free(struct sg_spool_shared *sh);
/* Account for recovered segments (bytes on disk). */
void sg_spool_shared_add_bytes(struct sg_spool_shared *sh, uint64_t bytes);
uint64_t sg_spool_shared_bytes(const struct sg_spool_shared *sh);

struct sg_spool *sg_spool_new(struct sg_spool_shared *sh, int worker);
/* Close the active segment (its last generation must be synced: sg_spool_commit()). */
void sg_spool_free(struct sg_spool *sp);

/* Adopt a recovered segment: its pending count and size, so acks can delete it. */
void sg_spool_adopt(struct sg_spool *sp, uint64_t seg, size_t pending, uint64_t bytes);

/* True when appending about n more bytes stays under the cap. */
bool sg_spool_has_room(const struct sg_spool *sp, size_t bytes);
/* True when the last write or sync failed (cleared by the next that succeeds). */
bool sg_spool_failing(const struct sg_spool *sp);
/* From any thread: can a file be created, written, synced and deleted in the spool's
 * directory? 0, or -1 with errno. Logs nothing (it runs while faults persist). */
int sg_spool_probe(const struct sg_spool *sp);
/* A probe succeeded: stop reporting the spool as failing (a later write may say otherwise). */
void sg_spool_set_healthy(struct sg_spool *sp);

/* Buffer a data record in the current generation; fills e->ref. -1 (nothing buffered)
 * when the record would exceed SG_SPOOL_MAX_PAYLOAD, which recovery refuses. */
int sg_spool_append(struct sg_spool *sp, struct sg_spool_entry *e);
/* The generation sg_spool_append() buffers into now (starts at 1). */
uint64_t sg_spool_gen(const struct sg_spool *sp);
/* Data records appended since the spool was created. */
uint64_t sg_spool_appended(const struct sg_spool *sp);
/* Queue an ack for ref; written and synced with a later generation. */
void sg_spool_ack(struct sg_spool *sp, struct sg_spool_ref ref);
/* True when records, acks or file chores wait for a write round. */
bool sg_spool_dirty(const struct sg_spool *sp);
/* True when acks wait only because their segment's file could not be opened or
 * written: the caller retries after a pause instead of spinning. */
bool sg_spool_acks_blocked(const struct sg_spool *sp);

/*
 * One write round and its sync. The job is embedded by the caller:
 * sg_spool_write() fills it on the loop, sg_spool_job_run() runs on any
 * thread (fdatasync, the directory's fsync, then the closes and unlinks the
 * spool deferred to keep them off the loop), sg_spool_job_done() settles it
 * on the loop. Only one job may be outstanding per spool.
 */
struct sg_spool_job {
    uint64_t gen;        /* the generation written; durable once the job succeeds */
    int fd;              /* fdatasync'ed (borrowed from the spool); -1: nothing to sync */
    int dir_fd;          /* fsync'ed too when a segment was created (borrowed); -1: not */
    int *close_fds;      /* owned: closed after the sync */
    size_t n_close;
    char **unlinks;      /* owned: unlinked after the sync */
    size_t n_unlink;
    int err;             /* set by sg_spool_job_run(): errno of a failed sync, 0 if none */
    bool vanished;       /* set by sg_spool_job_run(): the file was deleted under us */
    /* private: what a failure must undo */
    uint64_t seq, start_bytes, bytes;
    uint32_t start_count, n_data;
    struct sg_spool_ref *acks;
    size_t n_acks;
};

enum sg_spool_write_result {
    SG_SPOOL_WRITTEN = 0, /* the job carries the sync (or only chores) */
    SG_SPOOL_FAILED,      /* the write failed: generation job->gen was discarded (logged) */
};

enum sg_spool_write_result sg_spool_write(struct sg_spool *sp, struct sg_spool_job *job);
void sg_spool_job_run(struct sg_spool_job *job);
/*
 * Settle a job on the loop and free its chores. Returns 0 when generation
 * job->gen is durable; otherwise the newest generation whose records were
 * discarded (job->gen, or later ones that shared the abandoned segment).
 */
uint64_t sg_spool_job_done(struct sg_spool *sp, struct sg_spool_job *job);
/* The synchronous form (start-up and shutdown): write, sync, settle. 0 or -1. */
int sg_spool_commit(struct sg_spool *sp);

uint32_t sg_crc32c(const void *data, size_t len);
/* The same, always table-driven (the fallback where the CPU has no CRC instruction). */
uint32_t sg_crc32c_portable(const void *data, size_t len);
/* Free this thread's encoding buffer (call before a thread exits). */
void sg_spool_thread_release(void);

#endif
