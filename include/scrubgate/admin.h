/*
 * admin.h - the admin listener (admin_listen): /healthz (every worker
 * accepting, no destination paused) and, with the admin bearer token,
 * /metrics, /admin/sync-log and /admin/test-connection
 * (docs/OPERATIONS.md "Admin API"). It runs on one worker's loop and reads
 * every worker's counters (atomics) through sg_worker_each_forwarder().
 */
#ifndef SCRUBGATE_ADMIN_H
#define SCRUBGATE_ADMIN_H

#include "scrubgate/config.h"

#include <event2/event.h>

struct sg_admin;
struct sg_deadletter;
struct sg_spool_shared;
struct sg_worker;

/* What /metrics reads besides the workers (borrowed; either may be NULL). */
struct sg_admin_stores {
    struct sg_spool_shared *spool;
    struct sg_deadletter *dead;
};

/*
 * Bind admin_listen on base. workers (borrowed, n of them) and stores (borrowed) outlive the admin
 * listener. *out is NULL when there is no admin_listen. Without an admin
 * token (at start or after a reload) only /healthz answers and every other
 * endpoint is 401 (warned). 0, or -1 when the address cannot be bound
 * (logged).
 */
int sg_admin_new(struct event_base *base, const struct sg_config *cfg, struct sg_worker **workers,
                 int n, const struct sg_admin_stores *stores, struct sg_admin **out);
/* Switch to a reloaded configuration (borrowed; read until the next switch), on the admin's
 * loop. */
void sg_admin_set_config(struct sg_admin *a, const struct sg_config *cfg);
void sg_admin_free(struct sg_admin *a);

#endif
