/*
 * scrub.h - built-in PII detectors and the URL / free-text scrubber.
 *
 * Detectors are PCRE2 patterns compiled once per process with JIT, each with
 * a match limit; a detector that hits a limit makes the scrub fail (-1) so
 * the caller can refuse to send the event: nothing leaves unscrubbed.
 * Match data is per thread, so scrubbing allocates nothing per pattern.
 */
#ifndef SCRUBGATE_SCRUB_H
#define SCRUBGATE_SCRUB_H

#include "scrubgate/buf.h"
#include "scrubgate/common.h"

enum sg_detector {
    SG_DET_EMAIL = 0,
    SG_DET_PHONE,
    SG_DET_CARD, /* payment card numbers, Luhn-checked */
    SG_DET__COUNT
};

#define SG_DET_ALL ((1u << SG_DET__COUNT) - 1u)

const char *sg_detector_name(enum sg_detector d);
int sg_detector_from_name(const char *name); /* -1 when unknown */

/* Compile the detectors (idempotent, thread-safe). -1 if PCRE2 fails. */
int sg_scrub_init(void);
/* Free this thread's match data and scratch buffers (call before a thread exits). */
void sg_scrub_thread_release(void);

/* What a URL scrub removes besides detector hits. */
struct sg_url_policy {
    unsigned detectors;          /* bitmask of enum sg_detector */
    bool sensitive_params;       /* drop query parameters with sensitive names */
    const char *const *strip;    /* borrowed: parameter names to drop (lowercase) */
    size_t n_strip;
};

/*
 * Scrub free text: every detector hit becomes "[redacted]". Writes the result
 * to out and the number of redactions to *hits. 0, or -1 when a detector hit
 * a PCRE2 limit or the result exceeds out's cap.
 */
int sg_scrub_text(unsigned detectors, const char *in, struct sg_buf *out, unsigned *hits);

/* 1 when s holds a hit of any detector in the mask, 0 when none, -1 on a PCRE2 limit. */
int sg_scrub_detect(unsigned detectors, const char *s, size_t len);

/*
 * Scrub a URL: query parameters whose decoded value holds a detector hit, or
 * whose name is sensitive or stripped, are removed; a path segment with a hit
 * becomes "redacted"; a fragment with a hit is removed. 0 or -1 as above.
 */
int sg_scrub_url(const struct sg_url_policy *pol, const char *url, struct sg_buf *out,
                 unsigned *hits);

/* True when a query parameter name is sensitive (email, phone, name, token...). */
bool sg_scrub_param_name_sensitive(const char *name, size_t len);

/* Percent-decode (and '+' as space when plus) into out. 0 or -1 on overflow. */
int sg_percent_decode(const char *s, size_t len, bool plus, struct sg_buf *out);

#endif
