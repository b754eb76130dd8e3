/*
 * ratelimit.c - token buckets in a set-associative table (see ratelimit.h).
 */
#include "scrubgate/common.h"
#include "scrubgate/ratelimit.h"

#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct bucket {
    char key[SG_RATELIMIT_KEY_MAX + 1]; /* "" = empty */
    double tokens;
    uint64_t at_ms; /* when tokens was last brought up to date */
};

struct sg_ratelimit {
    struct bucket *b;
    size_t sets;
    uint64_t seed;
};

struct sg_ratelimit *sg_ratelimit_new(size_t slots)
{
    struct sg_ratelimit *rl = sg_xcalloc(1, sizeof(*rl));
    rl->sets = slots / WAYS + 1;
    rl->b = sg_xcalloc(rl->sets * WAYS, sizeof(*rl->b));
    if (RAND_bytes((unsigned char *)&rl->seed, sizeof(rl->seed)) != 1)
        rl->seed = (uint64_t)(uintptr_t)rl ^ sg_now_mono_ms();
    return rl;
}

void sg_ratelimit_free(struct sg_ratelimit *rl)
{
    if (!rl)
        return;
    free(rl->b);
    free(rl);
}

static uint64_t hash(const struct sg_ratelimit *rl, const char *key)
{
    uint64_t h = 14695981039346656037ull ^ rl->seed;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h ^ (h >> 29);
}

static double burst(uint32_t rate)
{
    return 2.0 * rate;
}

static double refilled(const struct bucket *b, uint32_t rate, uint64_t now_ms)
{
    double t = b->tokens + (double)(now_ms - SG_MIN(b->at_ms, now_ms)) * rate / 1000.0;
    return t > burst(rate) ? burst(rate) : t;
}

/* key's bucket, brought up to date; a new one (full) when key had none. */
static struct bucket *find(struct sg_ratelimit *rl, const char *key, uint32_t rate,
                           uint64_t now_ms)
{
    char k[SG_RATELIMIT_KEY_MAX + 1];
    snprintf(k, sizeof(k), "%s", key);
    struct bucket *set = &rl->b[(hash(rl, k) % rl->sets) * WAYS], *victim = NULL;
    double fullest = -INFINITY;
    for (int i = 0; i < WAYS; i++) {
        struct bucket *b = &set[i];
        if (b->key[0] && !strcmp(b->key, k)) {
            b->tokens = refilled(b, rate, now_ms);
            b->at_ms = now_ms;
            return b;
        }
        double t = b->key[0] ? refilled(b, rate, now_ms) : INFINITY;
        if (t > fullest) {
            fullest = t;
            victim = b;
        }
    }
    memcpy(victim->key, k, sizeof(k));
    victim->tokens = burst(rate);
    victim->at_ms = now_ms;
    return victim;
}

unsigned sg_ratelimit_check(struct sg_ratelimit *rl, const char *key, uint32_t rate, size_t n,
                            uint64_t now_ms)
{
    if (!rate)
        return 0;
    struct bucket *b = find(rl, key, rate, now_ms);
    double need = SG_MIN((double)n, burst(rate));
    if (b->tokens >= need)
        return 0;
    double wait = ceil((need - b->tokens) / rate);
    return wait < 1 ? 1 : (unsigned)wait;
}

void sg_ratelimit_take(struct sg_ratelimit *rl, const char *key, uint32_t rate, size_t n,
                       uint64_t now_ms)
{
    if (!rate)
        return;
    struct bucket *b = find(rl, key, rate, now_ms);
    b->tokens -= (double)n;
}
