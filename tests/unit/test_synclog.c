/* The sync log line: valid JSON, the documented keys, and the same as the jansson form. */
#include "testutil.h"

#include "scrubgate/buf.h"
#include "scrubgate/consent.h"
#include "scrubgate/synclog.h"

#include <string.h>

static void check_same(const struct sg_sync_record *r)
{
    struct sg_buf b;
    json_error_t err;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_synclog_format(r, 1763700000, &b), 0);
    assert_int_equal(b.data[b.len - 1], '\n');
    assert_null(memchr(b.data, '\n', b.len - 1)); /* exactly one line */
    json_t *got = json_loadb(b.data, b.len, 0, &err);
    if (!got)
        fail_msg("not JSON (%s): %s", err.text, b.data);
    json_t *want = sg_sync_record_json(r, 1763700000);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    sg_buf_release(&b);
}

static void lines_match_the_json_form(void **state)
{
    (void)state;
    const char *rules = "[\"drop-raw-pii\",\"odd\\\"id\\\\\"]";
    struct sg_consent consent = {{0}, {0}, {SG_CEV_TCF_NO_VENDOR_CONSENT, SG_CEV_GPC,
                                           SG_CEV_EVENT_GRANTED, SG_CEV_DEFAULT_DENIED},
                                 SG_TCF_APPLIED, true, true};
    struct sg_sync_record full = {"shop", "tiktok:P1", "Purchase", "order \"1\"\t\x01", "accepted",
                                  "ok", 200, 0, "req-1", 1, rules, "sha256:abc", &consent};
    struct sg_sync_record empty = {"shop", "tiktok:P1", "Lead", "x", "skipped", NULL,
                                   0, -1, NULL, 0, NULL, NULL, NULL};
    check_same(&full);
    check_same(&empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(lines_match_the_json_form)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
