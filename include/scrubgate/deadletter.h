/*
 * deadletter.h - events that will not be delivered without a person's help:
 * refused by TikTok as a bad request, or out of retries. One JSON line per
 * event in {state_dir}/dead-letter/dead-letter.jsonl, with the scrubbed
 * outbound event and the reason, made durable before the spool forgets the
 * event. `scrubgate replay` sends them again.
 */
#ifndef SCRUBGATE_DEADLETTER_H
#define SCRUBGATE_DEADLETTER_H

#include "scrubgate/common.h"

struct sg_deadletter;

struct sg_dead_event {
    const char *site;
    const char *destination;
    const char *event;
    const char *event_id;
    const char *json; /* the formatted outbound event */
    size_t json_len;
    uint32_t attempts;
    int64_t first_ts;
};

struct sg_deadletter *sg_deadletter_open(const char *state_dir);
void sg_deadletter_free(struct sg_deadletter *dl);
/* Append n events with one reason, then fdatasync. 0 or -1 (logged). */
int sg_deadletter_write(struct sg_deadletter *dl, const struct sg_dead_event *evs, size_t n,
                        const char *reason, long code, const char *request_id);
/* Events in the dead-letter file: its lines when opened, plus those written since (replay
 * does not remove lines). Any thread. */
uint64_t sg_deadletter_events(const struct sg_deadletter *dl);
/* The file's path (owned by dl). */
const char *sg_deadletter_path(const struct sg_deadletter *dl);

#endif
