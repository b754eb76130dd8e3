/*
 * fuzz_conn - the request framing scanner on arbitrary bytes. Invariants
 * besides memory safety: the verdict and the request's length do not depend
 * on how the bytes are split (the first input byte picks the split), and a
 * complete request scanned again on its own is complete at the same length.
 */
#include "scrubgate/common.h"
#include "scrubgate/conn.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct verdict {
    enum sg_conn_frame r;
    size_t consumed;
};

static struct verdict run(const char *p, size_t n, size_t step)
{
    struct sg_conn_scan s;
    struct verdict v = {SG_FRAME_MORE, 0};
    sg_conn_scan_init(&s, 512, 256);
    while (v.consumed < n) {
        size_t used, k = SG_MIN(step, n - v.consumed);
        v.r = sg_conn_scan_feed(&s, p + v.consumed, k, &used);
        if (used > k)
            abort();
        v.consumed += used;
        if (v.r == SG_FRAME_HEAD) {
            v.r = SG_FRAME_MORE;
            continue;
        }
        if (v.r != SG_FRAME_MORE)
            break;
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    struct verdict whole = run(p, n, n ? n : 1), split = run(p, n, step);
    if (whole.r != split.r)
        abort();
    if (whole.r == SG_FRAME_DONE || whole.r == SG_FRAME_MORE) {
        if (whole.consumed != split.consumed)
            abort();
    }
    if (whole.r == SG_FRAME_DONE) {
        struct verdict again = run(p, whole.consumed, step);
        if (again.r != SG_FRAME_DONE || again.consumed != whole.consumed)
            abort();
    }
    return 0;
}
