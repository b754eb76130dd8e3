/*
 * fuzz_jsonparse - the fast JSON parser against jansson's, differentially:
 * whatever the fast one takes, jansson takes too and reads the same values
 * (types, reals bit for bit, key order); whatever jansson refuses, the fast
 * one leaves to it; and sg_json_load() always answers as json_loadb().
 */
#include "scrubgate/jsonparse.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_error_t err;
    json_t *slow = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
    json_t *fast = sg_json_parse_fast(text, size);
    json_t *both = sg_json_load(text, size, &err);
    if (fast && !sg_json_identical(fast, slow))
        abort();
    if (slow ? !sg_json_identical(both, slow) : both != NULL)
        abort();
    json_decref(slow);
    json_decref(fast);
    json_decref(both);
    return 0;
}
