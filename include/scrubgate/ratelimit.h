/*
 * ratelimit.h - token buckets keyed by a short string (a client IP, a site
 * id), in a fixed-size table: O(1) per request and bounded memory whatever
 * number of keys a client sprays at it.
 *
 * A bucket refills at rate tokens per second up to a burst of 2 x rate. A
 * request of n events passes when the bucket holds min(n, burst) tokens and
 * then takes n (a request larger than the burst may run the bucket into
 * debt, so it is not refused forever). The table is 4-way set associative:
 * a new key takes an empty way of its set, else the way whose bucket is
 * fullest after refill (a full bucket carries no history, so evicting it
 * loses nothing); the hash is keyed with a per-process random seed.
 *
 * Not thread-safe: one table per worker loop (docs/OPERATIONS.md "Rate
 * limits": the limits are per worker).
 */
#ifndef SCRUBGATE_RATELIMIT_H
#define SCRUBGATE_RATELIMIT_H

#include "scrubgate/common.h"

#define SG_RATELIMIT_KEY_MAX 64 /* longer keys are cut (an IPv6 address is at most 45) */

struct sg_ratelimit;

/* A table of about slots buckets (rounded up to a multiple of 4). */
struct sg_ratelimit *sg_ratelimit_new(size_t slots);
void sg_ratelimit_free(struct sg_ratelimit *rl);

/*
 * Would n events of key pass at rate per second now (monotonic ms)? 0 when
 * they would, else the whole seconds (>= 1) until they would. Refills the
 * bucket, takes nothing. rate 0 means no limit.
 */
unsigned sg_ratelimit_check(struct sg_ratelimit *rl, const char *key, uint32_t rate, size_t n,
                            uint64_t now_ms);
/* Take n events from key's bucket (after a check said 0). */
void sg_ratelimit_take(struct sg_ratelimit *rl, const char *key, uint32_t rate, size_t n,
                       uint64_t now_ms);

#endif
