/*
 * replay.h - `scrubgate replay`: send dead-lettered events again.
 *
 * Reads {state_dir}/dead-letter/dead-letter.jsonl, sends the selected events
 * (by site and time) to their destinations with the same batching rules,
 * records each outcome in the sync log, and appends the ids that went
 * through to dead-letter/replayed.jsonl so that a later replay skips them.
 * The dead-letter file itself is never rewritten (a running proxy appends to
 * it). Blocking by design: this is a command, not the server.
 *
 * The dead letter is read as untrusted input: a line that is not what the
 * proxy writes is skipped, counted and reported by line number and reason,
 * never by value. Events for a destination that is now a dry run are not
 * sent and not marked replayed (they wait for a replay that can send them).
 */
#ifndef SCRUBGATE_REPLAY_H
#define SCRUBGATE_REPLAY_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/spool.h"

#include <jansson.h>

struct sg_replay_opts {
    const char *site;  /* NULL: every site */
    int64_t since;     /* Unix seconds; 0: all */
};

/*
 * The longest dead-letter line read: an event's record (SG_SPOOL_MAX_PAYLOAD)
 * plus room for the line's own fields. A longer line is skipped unread.
 */
#define SG_REPLAY_MAX_LINE (SG_SPOOL_MAX_PAYLOAD + 65536u)

/* One dead-letter line, checked. */
struct sg_replay_line {
    json_t *doc;             /* owned: the parsed line */
    const char *site;        /* borrowed from doc, like the next three: non-empty strings */
    const char *destination;
    const char *event;
    const char *event_id;
    int64_t ts;              /* when it was dead-lettered, Unix seconds */
    int64_t first_ts;        /* when the proxy first accepted it */
    int attempts;            /* requests made so far, 0..INT_MAX-1 */
    char *event_json;        /* owned: the formatted outbound event (a JSON object), compact */
};

/*
 * Parse and check one line (len bytes, without its newline; need not be
 * NUL-terminated). 0 with *out filled (release it), or -1 with *why set to a
 * static reason that names the offending key, never a value; *out is then
 * empty. Lines longer than SG_REPLAY_MAX_LINE are refused unparsed.
 */
int sg_replay_line_parse(const char *text, size_t len, struct sg_replay_line *out,
                         const char **why);
void sg_replay_line_release(struct sg_replay_line *l);

/*
 * Returns the exit status: 0 when every selected, readable event was
 * delivered, 1 otherwise (a failure, a dry-run destination, an unreadable
 * dead letter, or a failed write to replayed.jsonl or the sync log).
 * Malformed lines are reported and counted but do not change the status:
 * which selection they belong to cannot be known.
 */
int sg_replay_run(const struct sg_config *cfg, const struct sg_replay_opts *opts);

#endif
