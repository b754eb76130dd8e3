/*
 * fuzz_tcf - the TC string decoder and consent resolution on arbitrary
 * bytes. Invariants besides memory safety: an accepted string reports a
 * version of 2; a string that decided nothing never grants, even on a site
 * whose default is "granted": every purpose the TCF mapping covers is denied.
 */
#include "scrubgate/common.h"
#include "scrubgate/consent.h"
#include "scrubgate/tcf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = sg_xstrndup((const char *)data, size);
    struct sg_tcf tc;
    const char *why;
    unsigned vendor = size ? data[0] * 7u + 1 : 1;

    if (sg_tcf_decode(s, strlen(s), vendor, &tc, &why) == 0 && tc.version != 2)
        abort();

    struct sg_consent_policy pol = {SG_CONSENT_GRANTED, true, (long)vendor, {0}};
    sg_consent_policy_default_tcf(&pol);
    struct sg_consent_signals sig = {NULL, false, NULL, s, NULL};
    struct sg_consent c;
    const char *reason;
    if (sg_consent_resolve(&pol, &sig, &c, &reason) != 0)
        abort(); /* no event field: nothing to reject */
    if (*s && c.tcf != SG_TCF_APPLIED) /* an empty string is no string: the default */
        for (int p = 0; p < SG_PURPOSE__COUNT; p++)
            if (c.state[p] == SG_CONSENT_GRANTED)
                abort(); /* a string that decided nothing granted something */
    /* The same bytes as a US Privacy string: it can only restrict. */
    struct sg_consent_signals usp = {NULL, false, NULL, NULL, s};
    if (sg_consent_resolve(&pol, &usp, &c, &reason) != 0)
        abort();
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        if (c.state[p] == SG_CONSENT_DENIED && c.source[p] != SG_CSRC_USP)
            abort();
    free(s);
    return 0;
}
