/* The sync log line: valid JSON, the documented keys, and the same as the jansson form. */
#include "testutil.h"

#include "scrubgate/buf.h"
#include "scrubgate/consent.h"
#include "scrubgate/synclog.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

/*
 * A full disk in the middle of a line (here: the file size limit, EFBIG)
 * leaves no fragment behind: the file is cut back, so the next line is
 * whole. The sync log, the dead letter and replay's marks all append this
 * way.
 */
static void failed_append_leaves_no_partial_line(void **state)
{
    (void)state;
    char *path = sg_write_temp(".jsonl", "{\"first\":1}\n");
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(fd >= 0);
    struct rlimit old, small = {.rlim_cur = 64, .rlim_max = RLIM_INFINITY};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\n';
    sg_capture_begin();
    int rc = sg_append_lines(fd, path, big, sizeof(big), true);
    free(sg_capture_end());
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(sg_append_lines(fd, path, "{\"next\":2}\n", 11, true), 0);
    close(fd);
    size_t len;
    char *text = sg_read_file(path, &len);
    assert_string_equal(text, "{\"first\":1}\n{\"next\":2}\n");
    free(text);
    unlink(path);
    free(path);
}

/* The query's answer as a list of event ids, newest first. */
static char *query_ids(const char *path, const struct sg_synclog_query *q)
{
    struct sg_buf b, ids;
    sg_buf_init(&b, 0);
    sg_buf_init(&ids, 0);
    assert_int_equal(sg_synclog_query(path, q, &b), 0);
    json_t *arr = json_loadb(b.data, b.len, 0, NULL);
    assert_true(json_is_array(arr));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        sg_buf_printf(&ids, "%s%s", i ? "," : "",
                      json_string_value(json_object_get(v, "event_id")));
    }
    json_decref(arr);
    sg_buf_release(&b);
    sg_buf_adds(&ids, "");
    return sg_buf_detach(&ids, &i);
}

/*
 * Reading backwards: newest first, a line over the 1 MiB line cap (longer than
 * what one read brings back) and a line
 * that is not JSON skipped (the lines around them still found), a last line
 * without its newline left out, a value in another field not matched, since
 * stops the read, a missing file is an empty answer.
 */
static void query_reads_backwards(void **state)
{
    (void)state;
    struct sg_buf f;
    sg_buf_init(&f, 0);
    sg_buf_adds(&f, "{\"ts\":100,\"site\":\"shop\",\"event_id\":\"a\",\"status\":\"accepted\"}\n");
    sg_buf_adds(&f, "{\"ts\":101,\"site\":\"shop\",\"event_id\":\"b\",\"status\":\"failed\"}\n");
    sg_buf_adds(&f, "{\"ts\":102,\"site\":\"x");
    for (int i = 0; i < 2500000; i++)
        sg_buf_addc(&f, 'x');
    sg_buf_adds(&f, "\"}\n");
    sg_buf_adds(&f, "{\"ts\":103,\"site\":\"shop\",\"event_id\":\"c\",\"status\":\"skipped\","
                    "\"reason\":\"\\\"status\\\":\\\"failed\\\"\"}\n");
    sg_buf_adds(&f, "not json at all\n");
    sg_buf_adds(&f, "{\"ts\":104,\"site\":\"blog\",\"event_id\":\"d\",\"status\":\"accepted\"}\n");
    sg_buf_adds(&f, "{\"ts\":105,\"site\":\"shop\",\"event_id\":\"partial");
    char *path = sg_write_temp(".jsonl", sg_buf_cstr(&f));
    sg_buf_release(&f);

    struct sg_synclog_query q = {.limit = 100};
    char *ids = query_ids(path, &q);
    assert_string_equal(ids, "d,c,b,a");
    free(ids);
    q.limit = 2;
    ids = query_ids(path, &q);
    assert_string_equal(ids, "d,c");
    free(ids);
    q = (struct sg_synclog_query){.limit = 100, .status = "failed"};
    ids = query_ids(path, &q); /* c holds the text "status":"failed" in its reason only */
    assert_string_equal(ids, "b");
    free(ids);
    q = (struct sg_synclog_query){.limit = 100, .site = "shop", .has_since = true, .since = 103};
    ids = query_ids(path, &q);
    assert_string_equal(ids, "c");
    free(ids);
    q = (struct sg_synclog_query){.limit = 100, .has_since = true, .since = 200};
    ids = query_ids(path, &q);
    assert_string_equal(ids, "");
    free(ids);
    unlink(path);
    q = (struct sg_synclog_query){.limit = 100};
    ids = query_ids(path, &q);
    assert_string_equal(ids, "");
    free(ids);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(lines_match_the_json_form),
                                       cmocka_unit_test(failed_append_leaves_no_partial_line),
                                       cmocka_unit_test(query_reads_backwards)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
