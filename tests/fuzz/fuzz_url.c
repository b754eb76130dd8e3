/*
 * fuzz_url - the URL and free-text scrubbers and the bot matcher on arbitrary
 * bytes, with a phone_region picked by the first byte (phone candidates reach
 * libphonenumber). Invariant besides memory safety: after a scrub with every
 * detector, scrubbing the output again finds nothing (nothing a detector
 * matches survives, encoded or not).
 */
#include "scrubgate/common.h"
#include "scrubgate/scrub.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const strip[] = {"ttclid"};
static const char *const regions[] = {NULL, "US", "GB", "DE", "FR", "IN", "BR", "NU"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_buf out, again;
    unsigned hits;
    if (size == 0)
        return 0;
    const char *region = regions[data[0] % SG_ARRAY_SIZE(regions)];
    char *s = sg_xstrndup((const char *)data + 1, size - 1);
    struct sg_url_policy pol = {{SG_DET_ALL, NULL, region}, true, strip, 1};
    struct sg_scrub_spec all = {SG_DET_ALL, NULL, region};

    sg_buf_init(&out, 1 << 20);
    sg_buf_init(&again, 1 << 20);
    if (sg_scrub_text(&all, s, &out, &hits) == 0) {
        char *first = sg_xstrndup(out.data ? out.data : "", out.len);
        if (sg_scrub_text(&all, first, &again, &hits) == 0 && hits)
            abort();
        free(first);
    }
    sg_scrub_url(&pol, s, &out, &hits);
    sg_scrub_is_bot(s);
    sg_buf_release(&out);
    sg_buf_release(&again);
    free(s);
    return 0;
}
