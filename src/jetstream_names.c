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

/* ---- header values ---- */

static bool hdr_plain(unsigned char c)
{
    return c > ' ' && c < 0x7f && c != '%' && c != '/';
}

char *sg_jetstream_hdr_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += hdr_plain(*p) ? 1 : 3;
    char *out = sg_xmalloc(n + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (hdr_plain(*p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

char *sg_jetstream_hdr_decode(const char *s)
{
    char *out = sg_xmalloc(strlen(s) + 1), *o = out;
    for (const char *p = s; *p; p++) {
        if (*p != '%') {
            if (!hdr_plain((unsigned char)*p))
                goto bad;
            *o++ = *p;
            continue;
        }
        int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
        if (lo < 0 || (hi == 0 && lo == 0) || hdr_plain((unsigned char)(hi << 4 | lo)))
            goto bad; /* only what the encoder writes: one encoding per value, no NUL */
        *o++ = (char)(hi << 4 | lo);
        p += 2;
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* TikTok counts an event once per (event, event_id): so does the stream's duplicate window.
 * The event_id and the event name are written as header values (no '/' in them), and the
 * ids hold no '/': two different events never share an id. */
char *sg_jetstream_msg_id(const char *site, const char *dest, const char *event,
                          const char *event_id)
{
    char *id = sg_jetstream_hdr_encode(event_id), *ev = sg_jetstream_hdr_encode(event);
    char *out = sg_xasprintf("%s/%s/%s/%s", site, dest, id, ev);
    free(id);
    free(ev);
    return out;
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

bool sg_jetstream_names_fit(const struct sg_config *cfg, size_t *site, size_t *dest, size_t *len)
{
    for (size_t i = 0; i < cfg->n_sites; i++)
        for (size_t d = 0; d < cfg->sites[i].n_dests; d++) {
            char *durable = sg_jetstream_durable(cfg->sites[i].id, cfg->sites[i].dests[d].id);
            size_t n = strlen(durable);
            free(durable);
            if (n > SG_JETSTREAM_NAME_MAX) {
                *site = i;
                *dest = d;
                *len = n;
                return false;
            }
        }
    return true;
}

/* The consumers' ack wait: an unacked message is redelivered after it (an instance that died).
 * Longer than the longest TikTok request can take (upstream_timeout_ms), with 30 s to spare for
 * the wait in a batch, so that a slow send is never redelivered while it is still in flight. */
int64_t sg_jetstream_ack_wait_ns(const struct sg_config *cfg)
{
    return ((int64_t)cfg->limits.upstream_timeout_ms + 30000) * 1000000LL;
}
