/*
 * synclog.h - one JSON line per event and destination outcome
 * ({state_dir}/sync-log.jsonl, docs/API.md "The sync log").
 *
 * A line names identifiers only (site, destination, event name, event_id,
 * rule ids, codes), never a field's value. Safe to call from any thread.
 */
#ifndef SCRUBGATE_SYNCLOG_H
#define SCRUBGATE_SYNCLOG_H

#include "scrubgate/common.h"

#include <jansson.h>

struct sg_consent;

struct sg_synclog;

struct sg_sync_record {
    const char *site;
    const char *destination;
    const char *event;
    const char *event_id;
    const char *status; /* accepted | partial_failure | failed | skipped */
    const char *reason;
    long http_status;   /* 0 when nothing was sent */
    long code;          /* the API's code, -1 when none */
    const char *request_id;
    int attempts;
    const char *rules;  /* borrowed: JSON array text of rule ids that changed the event */
    const char *rule_set_version;
    const struct sg_consent *consent; /* borrowed: evidence per purpose, or NULL */
};

/* Create state_dir if needed and open the log for appending. NULL on error. */
struct sg_synclog *sg_synclog_open(const char *state_dir);
void sg_synclog_free(struct sg_synclog *log);
/* Append one line; 0 or -1 (logged) when the write failed. */
int sg_synclog_write(struct sg_synclog *log, const struct sg_sync_record *r);
/*
 * The same in two steps, for many lines in one write: stage the line in this
 * thread's buffer; flush appends everything the thread staged to log, in one
 * write, and empties the buffer (0, or -1 logged: those lines are lost).
 */
void sg_synclog_stage(const struct sg_sync_record *r);
int sg_synclog_flush(struct sg_synclog *log);
/* The line (with its newline) into b: what sg_synclog_write() appends. */
struct sg_buf;
int sg_synclog_format(const struct sg_sync_record *r, int64_t ts, struct sg_buf *b);
/* The same line added at the end of b. */
int sg_synclog_append(const struct sg_sync_record *r, int64_t ts, struct sg_buf *b);
/* Free this thread's line buffer (call before a thread exits). */
void sg_synclog_thread_release(void);

/* ---- reading (the admin API) ---- */

#define SG_SYNCLOG_QUERY_MAX 1000

/* What GET /admin/sync-log asks for; NULL/false fields match everything. */
struct sg_synclog_query {
    const char *site, *status, *event_id; /* borrowed; exact matches */
    bool has_since;
    int64_t since;                        /* Unix seconds: lines with ts >= since */
    size_t limit;                         /* 1..SG_SYNCLOG_QUERY_MAX */
};

/*
 * The newest lines of the sync log at path that match q, newest first, as a
 * JSON array text into out (each element is a line exactly as the log holds
 * it). The file is read backwards from its end in blocks with pread(), with
 * no lock: writers append whole lines, a last line still without its newline
 * is left out, and a line that does not parse is skipped. Reading stops at
 * limit matches, or at the first line older than since by more than
 * SG_SYNCLOG_SINCE_SLACK seconds (lines are stamped just before their write,
 * so neighbours may be a little out of order). A missing file is an empty
 * array. 0, or -1 with errno.
 */
#define SG_SYNCLOG_SINCE_SLACK 2
int sg_synclog_query(const char *path, const struct sg_synclog_query *q, struct sg_buf *out);

/* Serialize a record into a new JSON object (for tests and the admin API). */
json_t *sg_sync_record_json(const struct sg_sync_record *r, int64_t ts);

#endif
