/*
 * fuzz_ingest - an ingest body through everything that reads it: JSON,
 * event normalization, consent resolution, every shipped rule set (URL and
 * text scrubbing included) and the TikTok writer. Invariants checked besides
 * memory safety: a raw email never reaches the formatted output, and the
 * output is the JSON jansson reads and dumps back byte for byte.
 */
#include "scrubgate/common.h"
#include "scrubgate/arena.h"
#include "scrubgate/jsonparse.h"
#include "scrubgate/dest.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/rules.h"

#include <stdlib.h>
#include <string.h>

static const char *const rule_sets[] = {"rules/default.json", "rules/strict.json",
                                        "rules/advanced-matching.json"};
static struct sg_site sites[3];
static struct sg_limits limits;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sg_json_alloc_init(); /* as the binary does: each input is one request's region */
    for (size_t i = 0; i < SG_ARRAY_SIZE(rule_sets); i++) {
        struct sg_site *site = &sites[i];
        site->id = "fuzz";
        site->secret = (unsigned char *)"fuzz-secret-0123456789";
        site->secret_len = 22;
        site->consent.default_state = SG_CONSENT_DENIED;
        site->consent.honor_gpc = true;
        site->rules = sg_ruleset_load(rule_sets[i]);
        if (!site->rules)
            abort();
        site->event_map = json_pack("{s:[s]}", "won", "Purchase");
    }
    sg_limits_default(&limits);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_json_arena_begin();
    json_t *root = sg_json_load((const char *)data, size, NULL); /* as ingest reads a body */
    if (!root) {
        sg_json_arena_end();
        return 0;
    }
    json_t *events = json_is_array(root) ? root : NULL;
    json_t *one = json_is_object(root) ? root : NULL;
    size_t n = events ? json_array_size(events) : 1;
    for (size_t i = 0; i < n && i < 16; i++) {
        json_t *in = events ? json_array_get(events, i) : one;
        struct sg_request_ctx ctx;
        struct sg_event ev;
        char err[256];
        memset(&ctx, 0, sizeof(ctx));
        strcpy(ctx.ip, "192.0.2.1");
        strcpy(ctx.session_id, "0123456789abcdef0123456789abcdef");
        ctx.now = 1763700000;
        ctx.gpc = size & 1;
        for (size_t s = 0; s < SG_ARRAY_SIZE(sites); s++) {
            sg_event_init(&ev);
            if (sg_pipeline_run(&sites[s], &limits, in, &ctx, &ev, err, sizeof(err)) == SG_PIPE_OK) {
                char *out = sg_dest_tiktok.format_event(&ev);
                if (strstr(out, "fuzz.probe@example.com"))
                    abort(); /* a raw email left the pipeline */
                /* The writer writes what jansson would: valid JSON that dumps back the same. */
                json_t *back = json_loads(out, 0, NULL);
                /* sg_json_text, not json_dumps: inside a span the latter's text is the
                 * region's, and free() of it is an error (arena.h) */
                char *again = back ? sg_json_text(back, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                                            JSON_REAL_PRECISION(15))
                                   : NULL;
                if (!again || strcmp(again, out) != 0)
                    abort();
                free(again);
                json_decref(back);
                free(out);
            }
            sg_event_release(&ev);
        }
    }
    json_decref(root);
    sg_json_arena_end(); /* under ASan a value used past here is an error */
    return 0;
}
