/* Small shared pieces: the constant-time token comparison, the metrics helpers, the rate
 * limiter's buckets. */
#include "testutil.h"

#include "scrubgate/buf.h"
#include "scrubgate/log.h"
#include "scrubgate/metrics.h"
#include "scrubgate/ratelimit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Two processes append to one log (`scrubgate replay` beside `serve`). An append holds the
 * file's lock from finding the end to its cut-back after a failed write, so a cut-back removes
 * only its own bytes: here the test holds the lock, as another process's append would, and the
 * child's append waits for it instead of slipping its line in.
 */
static void appends_wait_for_the_file_lock(void **state)
{
    (void)state;
    char path[] = "/tmp/sg-append-XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    close(tmp);
    int holder = open(path, O_WRONLY | O_APPEND); /* its own open file: its own lock */
    assert_true(holder >= 0);
    assert_int_equal(flock(holder, LOCK_EX), 0);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_APPEND);
        _exit(fd >= 0 && write(ready[1], "x", 1) == 1 &&
                      sg_append_lines(fd, "test", "child\n", 6, false) == 0
                  ? 0
                  : 1);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    /* The child is at its append. However long it is given, nothing may go in while the
     * lock is held (the old code wrote at once). */
    usleep(200 * 1000);
    struct stat st;
    assert_int_equal(fstat(holder, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(write(holder, "parent\n", 7), 7);
    assert_int_equal(flock(holder, LOCK_UN), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t len;
    char *text = sg_read_file(path, &len);
    assert_non_null(text);
    assert_string_equal(text, "parent\nchild\n");
    free(text);
    close(holder);
    close(ready[0]);
    close(ready[1]);
    unlink(path);
}

/* Equal only when equal; a prefix, an extension, the empty string never pass. */
static void consttime_streq_compares_whole_strings(void **state)
{
    (void)state;
    assert_true(sg_consttime_streq("admin-secret-1", "admin-secret-1"));
    assert_true(sg_consttime_streq("", ""));
    assert_false(sg_consttime_streq("admin-secret-2", "admin-secret-1"));
    assert_false(sg_consttime_streq("Admin-secret-1", "admin-secret-1"));
    assert_false(sg_consttime_streq("admin-secret", "admin-secret-1"));   /* a prefix */
    assert_false(sg_consttime_streq("admin-secret-1x", "admin-secret-1")); /* longer */
    assert_false(sg_consttime_streq("", "admin-secret-1"));
    assert_false(sg_consttime_streq("admin-secret-1", ""));
    /* The secret repeated (the comparison cycles over it) is still not the secret. */
    assert_false(sg_consttime_streq("abcabc", "abc"));
    assert_false(sg_consttime_streq("abc\x01" "abc", "abc"));
    /* Lengths that differ by a multiple of 256 (a length folded into one byte would agree). */
    char long_a[300], long_b[44];
    memset(long_a, 'k', sizeof(long_a) - 1);
    long_a[sizeof(long_a) - 1] = '\0';
    memset(long_b, 'k', sizeof(long_b) - 1);
    long_b[sizeof(long_b) - 1] = '\0';
    assert_false(sg_consttime_streq(long_a, long_b));
}

/* JSON log lines are valid UTF-8 JSON whatever bytes a message holds: well-formed sequences are
 * kept; a stray byte, an overlong form, a surrogate or a code point past U+10FFFF is U+FFFD. */
static void json_log_lines_are_valid_utf8(void **state)
{
    (void)state;
    sg_log_configure(SG_LOG_JSON, SG_LOG_INFO);
    sg_capture_begin();
    sg_error("x %s|%s|%s|%s|%s|%s|%s", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
             "\xed\xa0\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xf4\x90\x80\x80\xff");
    char *out = sg_capture_end();
    sg_log_configure(SG_LOG_TEXT, SG_LOG_INFO);
    assert_non_null(strstr(out, "\"level\":\"error\""));
    assert_non_null(strstr(out, "x caf\xc3\xa9|\xe2\x82\xac|\xf0\x9f\x98\x80|"));
    assert_null(strstr(out, "\xed\xa0\x80"));
    assert_null(strstr(out, "\xc0"));
    assert_null(strstr(out, "\xe0\x80"));
    assert_null(strstr(out, "\xf4\x90"));
    assert_null(strstr(out, "\xff"));
    assert_non_null(strstr(out, "|\\ufffd"));
    free(out);
}

static void label_values_are_escaped(void **state)
{
    struct sg_buf b;
    (void)state;
    sg_buf_init(&b, 0);
    sg_metrics_label(&b, "a\\b\"c\nd");
    assert_string_equal(sg_buf_cstr(&b), "\"a\\\\b\\\"c\\nd\"");
    sg_buf_reset(&b);
    sg_metrics_label(&b, NULL);
    assert_string_equal(sg_buf_cstr(&b), "\"\"");
    sg_buf_release(&b);
}

/* The reason table stays bounded: a long tail of reasons folds into "other" per status. */
static void outcomes_are_bounded(void **state)
{
    static struct sg_outcomes o;
    char reason[32];
    size_t n;
    (void)state;
    for (int i = 0; i < 500; i++) {
        snprintf(reason, sizeof(reason), "rule-%d", i);
        sg_outcomes_add(&o, "skipped", reason);
        sg_outcomes_add(&o, "accepted", "ok");
    }
    sg_outcomes_add(&o, "failed", "bad_request");
    const struct sg_outcome *v = sg_outcomes_get(&o, &n);
    assert_true(n <= SG_OUTCOMES_MAX);
    uint64_t skipped = 0, other = 0, accepted = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(v[i].status, "skipped"))
            skipped += v[i].n;
        if (!strcmp(v[i].status, "skipped") && !strcmp(v[i].reason, "other"))
            other += v[i].n;
        if (!strcmp(v[i].status, "accepted"))
            accepted += v[i].n;
        if (!strcmp(v[i].status, "failed"))
            failed += v[i].n;
    }
    assert_int_equal(skipped, 500); /* nothing lost */
    assert_true(other > 400);
    assert_int_equal(accepted, 500);
    assert_int_equal(failed, 1);
}

/* Burst 2 x rate, refill at rate per second, Retry-After in whole seconds (>= 1). */
static void token_buckets(void **state)
{
    (void)state;
    struct sg_ratelimit *rl = sg_ratelimit_new(64);
    uint64_t t = 1000000;
    assert_int_equal(sg_ratelimit_check(rl, "1.2.3.4", 5, 10, t), 0);
    sg_ratelimit_take(rl, "1.2.3.4", 5, 10, t);
    assert_int_equal(sg_ratelimit_check(rl, "1.2.3.4", 5, 1, t), 1);
    assert_int_equal(sg_ratelimit_check(rl, "1.2.3.4", 5, 10, t), 2);
    assert_int_equal(sg_ratelimit_check(rl, "5.6.7.8", 5, 10, t), 0); /* its own bucket */
    assert_int_equal(sg_ratelimit_check(rl, "1.2.3.4", 5, 1, t + 200), 0); /* 1 token back */
    assert_int_equal(sg_ratelimit_check(rl, "1.2.3.4", 0, 1000, t), 0);    /* 0: no limit */
    /* More than the burst in one request passes on a full bucket (then owes it). */
    assert_int_equal(sg_ratelimit_check(rl, "9.9.9.9", 5, 50, t), 0);
    sg_ratelimit_take(rl, "9.9.9.9", 5, 50, t);
    assert_true(sg_ratelimit_check(rl, "9.9.9.9", 5, 1, t) >= 8);
    /* A spray of new keys (the table is fixed, it cannot grow) evicts the fullest buckets
     * of a set first: the limited client keeps its debt instead of getting a fresh bucket. */
    char ip[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        sg_ratelimit_take(rl, ip, 5, 1, t);
    }
    assert_true(sg_ratelimit_check(rl, "9.9.9.9", 5, 1, t) >= 8);
    sg_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_wait_for_the_file_lock),
        cmocka_unit_test(consttime_streq_compares_whole_strings),
        cmocka_unit_test(json_log_lines_are_valid_utf8),
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(outcomes_are_bounded),
        cmocka_unit_test(token_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
