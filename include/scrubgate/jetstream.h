/*
 * jetstream.h - the shared queue over NATS JetStream (docs/SCALING.md).
 *
 * One connection per process (libnats runs its socket I/O, reconnects and
 * timers on its own threads); one queue per worker (queue.h), whose calls
 * on the loop never block: publishes are asynchronous with a bounded window,
 * their acks come back to the loop through an event, and each forwarder's
 * pulls run on a thread of their own that hands messages to the loop.
 *
 * Stream: file storage, `replicas`, a 2-minute duplicate window, subjects
 * scrubgate.>; subject scrubgate.<site>.<destination> ('.' in either id
 * escaped, jetstream_names.c); header Nats-Msg-Id:
 * <site>/<destination>/<event_id>/<event> (the last two %-encoded, as every
 * Sg-* text header). One durable pull consumer per destination, shared by
 * every instance.
 */
#ifndef SCRUBGATE_JETSTREAM_H
#define SCRUBGATE_JETSTREAM_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/queue.h"

struct sg_jetstream;

/* True when this build has the JetStream queue (libnats was found). */
bool sg_jetstream_available(void);

/*
 * Connect to cfg->queue.servers, create the stream and one consumer per
 * configured destination, or adopt existing ones whose settings match (a
 * mismatch is an error naming the setting). Blocking: call before workers
 * start. NULL on failure (logged; credentials never are).
 */
struct sg_jetstream *sg_jetstream_open(const struct sg_config *cfg);
void sg_jetstream_free(struct sg_jetstream *js);

/* The factory workers call (queue.h): arg is the sg_jetstream. */
struct sg_queue *sg_jetstream_queue_new(void *arg, int worker, struct event_base *base,
                                        struct sg_queue *local);

/* The subject, message id and durable name of an event (jetstream_names.c; exposed for
 * tests). Injective: two different ids never share a name. Owned by the caller. */
char *sg_jetstream_subject(const char *site, const char *dest);
char *sg_jetstream_msg_id(const char *site, const char *dest, const char *event,
                          const char *event_id);
/*
 * A value as a NATS header carries it unchanged: libnats writes CR and LF as spaces and
 * trims white space at both ends, so every byte outside '!'..'~', and '%' and '/', is
 * written %XX (upper case). decode() takes only what encode() writes (NULL otherwise).
 */
char *sg_jetstream_hdr_encode(const char *s);
char *sg_jetstream_hdr_decode(const char *s);
char *sg_jetstream_durable(const char *site, const char *dest);
#define SG_JETSTREAM_NAME_MAX 255 /* NATS's longest stream or consumer name */
/* True when every destination's durable name fits; else the first that does not (indexes into
 * cfg->sites and its dests) and its length. Checked by every load with the jetstream queue,
 * and by a reload whose file names another queue (the running one stays). */
bool sg_jetstream_names_fit(const struct sg_config *cfg, size_t *site, size_t *dest, size_t *len);

/* The consumers' ack wait in ns: upstream_timeout_ms + 30 s. */
int64_t sg_jetstream_ack_wait_ns(const struct sg_config *cfg);

#endif
