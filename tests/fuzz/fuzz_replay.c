/*
 * fuzz_replay - replay's dead-letter line parser on arbitrary bytes (the
 * dead letter is a file anyone with access to state_dir can edit, and a crash
 * can tear its last line). Invariants besides memory safety: a refused line
 * has a reason and leaves nothing behind; an accepted one has every field
 * replay uses, and its event is a JSON object that reads back.
 */
#include "scrubgate/common.h"
#include "scrubgate/replay.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_replay_line l;
    const char *why = NULL;
    /* A copy of exactly size bytes, so that reading past the line is caught. */
    char *text = sg_xmalloc(size);
    memcpy(text, data, size);
    if (sg_replay_line_parse(text, size, &l, &why) < 0) {
        if (!why || l.doc || l.event_json || l.site)
            abort();
        free(text);
        return 0;
    }
    if (why || !l.doc || !l.site || !*l.site || !l.destination || !*l.destination || !l.event ||
        !*l.event || !l.event_id || !*l.event_id || l.ts < 0 || l.first_ts < 0 ||
        l.attempts < 0 || l.attempts == INT_MAX || !l.event_json)
        abort();
    json_t *ev = json_loads(l.event_json, 0, NULL);
    if (!json_is_object(ev))
        abort();
    json_decref(ev);
    sg_replay_line_release(&l);
    free(text);
    return 0;
}
