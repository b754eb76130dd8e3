/*
 * jetstream_names.c - what the JetStream queue derives from the configuration: NATS names from
 * ids and the consumers' ack wait. Built with or without libnats (the unit tests use it).
 */
#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/jetstream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

/* An injective escape of an id ([A-Za-z0-9_.-], a destination's also ':'): letters, digits
 * (and '-' or ':' where they are not special) as they are, '_' written "_u", '.' "_d", ':'
 * "_c", '-' "_h". Two different ids never give the same name (docs/SCALING.md). */
static char *escape_id(const char *id, bool durable)
{
    size_t n = 0;
    for (const char *c = id; *c; c++)
        n += (*c == '_' || *c == '.' || (durable && (*c == ':' || *c == '-'))) ? 2 : 1;
    char *out = sg_xmalloc(n + 1), *o = out;
    for (const char *c = id; *c; c++) {
        char e = *c == '_' ? 'u' : *c == '.' ? 'd' : (durable && *c == ':') ? 'c'
                 : (durable && *c == '-') ? 'h' : 0;
        if (e) {
            *o++ = '_';
            *o++ = e;
        } else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

char *sg_jetstream_subject(const char *site, const char *dest)
{
    char *s = escape_id(site, false), *d = escape_id(dest, false);
    char *out = sg_xasprintf("scrubgate.%s.%s", s, d);
    free(s);
    free(d);
    return out;
}

/* TikTok counts an event once per (event, event_id): so does the stream's duplicate window.
 * Ids hold no '/'; the event_id's length ends it, so an event name or event_id holding '/'
 * cannot make two events share an id. */
char *sg_jetstream_msg_id(const char *site, const char *dest, const char *event,
                          const char *event_id)
{
    return sg_xasprintf("%s/%s/%zu/%s/%s", site, dest, strlen(event_id), event_id, event);
}

/* A durable name: one token, no '.', '*', '>' or ':'; '-' separates site and destination. */
char *sg_jetstream_durable(const char *site, const char *dest)
{
    char *s = escape_id(site, true), *d = escape_id(dest, true);
    char *out = sg_xasprintf("sg-%s-%s", s, d);
    free(s);
    free(d);
    return out;
}

/* The consumers' ack wait: an unacked message is redelivered after it (an instance that died).
 * Longer than the longest TikTok request can take (upstream_timeout_ms), with 30 s to spare for
 * the wait in a batch, so that a slow send is never redelivered while it is still in flight. */
int64_t sg_jetstream_ack_wait_ns(const struct sg_config *cfg)
{
    return ((int64_t)cfg->limits.upstream_timeout_ms + 30000) * 1000000LL;
}
