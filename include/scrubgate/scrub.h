/*
 * scrub.h - built-in PII detectors, site patterns, and the URL / free-text
 * scrubber.
 *
 * Detectors are PCRE2 patterns compiled once per process with JIT, each with
 * a match and depth limit, some followed by a checksum (Luhn, mod-97) or a
 * parser (inet_pton). A pattern that hits a limit makes the scrub fail (-1)
 * so the caller refuses to send the event: nothing leaves unscrubbed. Match
 * data and scratch buffers are per thread, so scrubbing does not allocate
 * once warm.
 */
#ifndef SCRUBGATE_SCRUB_H
#define SCRUBGATE_SCRUB_H

#include "scrubgate/buf.h"
#include "scrubgate/common.h"

enum sg_detector {
    SG_DET_EMAIL = 0,
    SG_DET_PHONE,
    SG_DET_CARD,  /* payment card numbers, Luhn-checked */
    SG_DET_IBAN,  /* IBANs, mod-97 checked */
    SG_DET_SSN,   /* US social security numbers, grouped (123-45-6789) */
    SG_DET_IP,    /* IPv4 and IPv6 literals (IPv6 checked by inet_pton) */
    SG_DET_TOKEN, /* JWTs and "Bearer ..." credentials */
    SG_DET__COUNT
};

#define SG_DET_ALL ((1u << SG_DET__COUNT) - 1u)

const char *sg_detector_name(enum sg_detector d);
int sg_detector_from_name(const char *name); /* -1 when unknown */

/* A site's own pattern (a rule's "pattern"), compiled with JIT and the same limits. */
struct sg_pattern;
/* Compile; NULL with a message in err (naming the offset) when invalid. */
struct sg_pattern *sg_pattern_new(const char *regex, char *err, size_t errlen);
void sg_pattern_free(struct sg_pattern *p);

/* What to look for: built-in detectors and at most one site pattern. */
struct sg_scrub_spec {
    unsigned detectors;           /* bitmask of enum sg_detector */
    const struct sg_pattern *extra; /* borrowed, may be NULL */
    const char *phone_region;       /* the site's phone_region, or NULL (see phone.h) */
};

/*
 * The longest text (or URL) the scrubber is guaranteed to take: its scratch
 * buffers hold four times this, since a redaction grows text (the shortest
 * built-in hit, "::1" and a separator, becomes "[redacted]": at most x2.75).
 * Config validation keeps max_field_bytes at or below it. Longer input, or a
 * site pattern whose hits are shorter still, may fail with -1 (the event is
 * then not sent), never pass unscrubbed.
 */
#define SG_SCRUB_MAX_TEXT (64u * 1024u)

/* Compile the detectors (idempotent, thread-safe). -1 if PCRE2 fails. */
int sg_scrub_init(void);
/* Free this thread's match data and scratch buffers (call before a thread exits). */
void sg_scrub_thread_release(void);

/* What a URL scrub removes besides detector hits. */
struct sg_url_policy {
    struct sg_scrub_spec spec;
    bool sensitive_params;       /* drop query parameters with sensitive names */
    const char *const *strip;    /* borrowed: parameter names to drop (lowercase) */
    size_t n_strip;
};

/*
 * Scrub free text: every hit becomes "[redacted]", repeated until a pass
 * finds nothing. Writes the result to out and the number of redactions to
 * *hits. 0, or -1 when a pattern hit a PCRE2 limit, the text would not
 * settle, or the result exceeds out's cap.
 */
int sg_scrub_text(const struct sg_scrub_spec *spec, const char *in, struct sg_buf *out,
                  unsigned *hits);

/* 1 when s holds a hit (as written or decoded), 0 when none, -1 on a PCRE2 limit. */
int sg_scrub_detect(const struct sg_scrub_spec *spec, const char *s, size_t len);

/*
 * The same for an identifier that leaves as it is (an event name, an event
 * id): "_" and ":" also count as spaces and letters glued to digits are set
 * apart ("Lead_415_555_2671", "ord4111111111111111").
 */
int sg_scrub_detect_identifier(const struct sg_scrub_spec *spec, const char *s, size_t len);

/*
 * Scrub a URL: query parameters whose decoded name or value holds a hit, or
 * whose name is sensitive or stripped, are removed; a path segment with a hit
 * becomes "redacted"; a fragment with a hit is removed; userinfo is removed.
 * 0 or -1 as above.
 */
int sg_scrub_url(const struct sg_url_policy *pol, const char *url, struct sg_buf *out,
                 unsigned *hits);

/* True when a query parameter name is sensitive (email, phone, name, token...). */
bool sg_scrub_param_name_sensitive(const char *name, size_t len);

/* True when a user agent is a known crawler, monitor or headless browser. */
int sg_scrub_is_bot(const char *user_agent);


#endif
