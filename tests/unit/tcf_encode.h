/* A small TC string (TCF v2 core segment) encoder, for building test strings. */
#ifndef SG_TCF_ENCODE_H
#define SG_TCF_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tcf_restriction {
    unsigned purpose, type, lo, hi;
};

struct tcf_spec {
    unsigned version;          /* 2 */
    unsigned policy;           /* 4 or 5 */
    bool service_specific;
    uint32_t purpose_consent;  /* bit p-1 for purpose p */
    uint32_t purpose_li;
    unsigned max_vendor;
    const unsigned *vendors;   /* consent */
    size_t n_vendors;
    bool range;                /* encode the consent section with ranges */
    const unsigned *li_vendors;
    size_t n_li;
    struct tcf_restriction restr[4];
    size_t n_restr;
};

/* The base64url string (owned: free()), padded to whole bytes as most CMPs do. */
char *tcf_encode(const struct tcf_spec *s);
/* The same without the byte padding: the last field may end inside a base64 character, so
 * the bit length need not be a multiple of 8 (IAB's decoder reads such strings). */
char *tcf_encode_6bit(const struct tcf_spec *s);

#endif
