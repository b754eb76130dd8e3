/*
 * replay.h - `scrubgate replay`: send dead-lettered events again.
 *
 * Reads {state_dir}/dead-letter/dead-letter.jsonl, sends the selected events
 * (by site and time) to their destinations with the same batching rules,
 * records each outcome in the sync log, and appends the ids that went
 * through to dead-letter/replayed.jsonl so that a later replay skips them.
 * The dead-letter file itself is never rewritten (a running proxy appends to
 * it). Blocking by design: this is a command, not the server.
 */
#ifndef SCRUBGATE_REPLAY_H
#define SCRUBGATE_REPLAY_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

struct sg_replay_opts {
    const char *site;  /* NULL: every site */
    int64_t since;     /* Unix seconds; 0: all */
};

/* Returns the exit status: 0 when everything selected was delivered, 1 otherwise. */
int sg_replay_run(const struct sg_config *cfg, const struct sg_replay_opts *opts);

#endif
