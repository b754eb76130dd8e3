/*
 * tcf.h - IAB TCF v2 (2.2/2.3) TC string decoder, for one vendor.
 *
 * The string is untrusted: every read is bounds-checked, the input length is
 * capped, and anything malformed is reported as such (the caller then lets
 * TCF decide nothing). Only the core segment is decoded; other segments
 * (disclosed vendors, publisher TC) are skipped. Nothing is allocated.
 */
#ifndef SCRUBGATE_TCF_H
#define SCRUBGATE_TCF_H

#include "scrubgate/common.h"

/* Longest TC string accepted (characters); longer is malformed. */
#define SG_TCF_MAX_CHARS 8192

enum sg_tcf_restriction {
    SG_TCF_NOT_ALLOWED = 0,      /* purpose flatly not allowed by the publisher */
    SG_TCF_REQUIRE_CONSENT = 1,
    SG_TCF_REQUIRE_LI = 2,
};

struct sg_tcf {
    unsigned version;
    unsigned policy_version;
    unsigned cmp_id;
    unsigned vendor_list_version;
    bool service_specific;
    uint32_t purpose_consent;  /* bit p-1 set: purpose p has consent */
    uint32_t purpose_li;       /* bit p-1 set: purpose p legitimate interest established */
    unsigned max_vendor_consent;
    unsigned max_vendor_li;
    /* For the vendor asked about: */
    bool vendor_consent;
    bool vendor_li;
    uint32_t restricted[3];    /* per enum sg_tcf_restriction: purposes restricted for the vendor */
};

/*
 * Decode s (len bytes) and answer for vendor_id. Returns 0, or -1 with *why
 * (a static string: "bad base64", "truncated", "range overflow", ...) when
 * the string is malformed. Version, policy version and service-specific
 * flags are reported, not judged: see sg_tcf_usable().
 */
int sg_tcf_decode(const char *s, size_t len, unsigned vendor_id, struct sg_tcf *out,
                  const char **why);

/* NULL when a decoded string may decide consent, else why not (static). */
const char *sg_tcf_unusable(const struct sg_tcf *tc);

#endif
