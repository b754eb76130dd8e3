/*
 * queue_local.c - the local queue: the worker's spool and group commit
 * behind the queue interface (queue.h). Nothing here is new behaviour: it
 * forwards to spool.c and commit.c, which keep their own contracts.
 */
#include "scrubgate/common.h"
#include "scrubgate/commit.h"
#include "scrubgate/queue.h"
#include "scrubgate/spool.h"

#include <stdlib.h>

struct local_queue {
    struct sg_queue q; /* first */
    struct sg_spool *spool;
    struct sg_commit *commit;
};

#define LQ(q) ((struct local_queue *)(q))
#define CLQ(q) ((const struct local_queue *)(q))

static int local_append(struct sg_queue *q, struct sg_spool_entry *e, struct sg_queue_ref *ref,
                        uint64_t *gen)
{
    if (sg_spool_append(LQ(q)->spool, e) < 0)
        return -1;
    ref->seg = e->ref.seg;
    ref->idx = e->ref.idx;
    ref->msg = NULL;
    *gen = sg_spool_gen(LQ(q)->spool);
    return 0;
}

static uint64_t local_appended(const struct sg_queue *q)
{
    return sg_spool_appended(CLQ(q)->spool);
}

static bool local_has_room(const struct sg_queue *q, size_t bytes)
{
    return sg_spool_has_room(CLQ(q)->spool, bytes);
}

static const char *local_failing(const struct sg_queue *q)
{
    return sg_spool_failing(CLQ(q)->spool) ? "spool_broken" : NULL;
}

static bool local_accepts(const struct sg_queue *q)
{
    SG_UNUSED(q);
    return true;
}

static void local_defer(struct sg_queue *q, struct sg_http_req *req, const char *site,
                        char *body)
{
    sg_commit_defer(LQ(q)->commit, req, site, body);
}

static size_t local_waiting(const struct sg_queue *q)
{
    return sg_commit_waiting(CLQ(q)->commit);
}

static void local_done(struct sg_queue *q, struct sg_queue_ref *ref, enum sg_queue_end how)
{
    SG_UNUSED(how); /* the dead letter holds a given-up event: an ack is all the spool needs */
    sg_spool_ack(LQ(q)->spool, (struct sg_spool_ref){ref->seg, ref->idx});
}

static void local_retry(struct sg_queue *q, struct sg_queue_ref *ref, uint64_t delay_ms)
{
    /* Not reached: with sends_own the forwarder keeps retries in its own heap. */
    SG_UNUSED(q);
    SG_UNUSED(ref);
    SG_UNUSED(delay_ms);
}

static void local_kick(struct sg_queue *q)
{
    sg_commit_kick(LQ(q)->commit);
}

static void local_background(struct sg_queue *q, sg_queue_job_fn *run, sg_queue_job_fn *done,
                             void *arg)
{
    sg_commit_background(LQ(q)->commit, run, done, arg);
}

static void local_free(struct sg_queue *q)
{
    free(q); /* the spool and the commit belong to the worker */
}

static const struct sg_queue_ops local_ops = {
    .type = "local",
    .sends_own = true,
    .append = local_append,
    .appended = local_appended,
    .has_room = local_has_room,
    .failing = local_failing,
    .accepts = local_accepts,
    .defer = local_defer,
    .waiting = local_waiting,
    .done = local_done,
    .retry = local_retry,
    .kick = local_kick,
    .background = local_background,
    .consume = NULL,
    .unconsume = NULL,
    .free = local_free,
};

struct sg_queue *sg_queue_local_new(struct sg_spool *spool, struct sg_commit *commit)
{
    struct local_queue *lq = sg_xcalloc(1, sizeof(*lq));
    lq->q.ops = &local_ops;
    lq->spool = spool;
    lq->commit = commit;
    return &lq->q;
}
