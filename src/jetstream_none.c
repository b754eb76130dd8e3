/*
 * jetstream_none.c - a build without libnats: the JetStream queue is absent
 * and asking for it stops the start (server.c), never a silent fallback.
 */
#include "scrubgate/common.h"
#include "scrubgate/jetstream.h"

bool sg_jetstream_available(void)
{
    return false;
}

struct sg_jetstream *sg_jetstream_open(const struct sg_config *cfg)
{
    SG_UNUSED(cfg);
    return NULL;
}

void sg_jetstream_free(struct sg_jetstream *js)
{
    SG_UNUSED(js);
}

struct sg_queue *sg_jetstream_queue_new(void *arg, int worker, struct event_base *base,
                                        struct sg_queue *local)
{
    SG_UNUSED(arg);
    SG_UNUSED(worker);
    SG_UNUSED(base);
    SG_UNUSED(local);
    return NULL;
}
