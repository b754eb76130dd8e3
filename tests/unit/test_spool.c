/*
 * The spool: records survive a "crash" (the spool is dropped without
 * cleanup), acks hide delivered records, sealed and fully acked segments are
 * deleted, and a torn tail keeps the records before it.
 */
#include "testutil.h"

#include "scrubgate/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/sg-spool-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = sg_xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

static size_t count_segments(void)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".seg") != NULL;
    closedir(d);
    return n;
}

/* A worker's spool on the test directory, after a (trivial) recovery, as at start. */
static struct sg_spool *open_spool(struct sg_spool_shared **sh)
{
    struct sg_spool_recovered rec;
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    *sh = sg_spool_shared_new(dir, rec.next_seq, 1 << 20, 1 << 20);
    sg_spool_recovered_free(&rec);
    return sg_spool_new(*sh, 0);
}

static struct sg_spool_entry entry(const char *id)
{
    static char json[64];
    snprintf(json, sizeof(json), "{\"event\":\"Lead\",\"event_id\":\"%s\"}", id);
    struct sg_spool_entry e;
    memset(&e, 0, sizeof(e));
    e.site = "shop";
    e.dest = "tiktok:P1";
    e.event = "Lead";
    e.event_id = (char *)id;
    e.rules = "[\"r1\"]";
    e.json = json;
    e.json_len = strlen(json);
    e.first_ts = 1763700000;
    e.consent.evidence[0] = SG_CEV_TCF_GRANTED;
    e.consent.gpc = true;
    return e;
}

static void survives_a_crash_and_honours_acks(void **state)
{
    (void)state;
    struct sg_spool_recovered rec;
    struct sg_spool_shared *sh;
    struct sg_spool *sp = open_spool(&sh);
    struct sg_spool_entry a = entry("a"), b = entry("b"), c = entry("c");
    sg_spool_append(sp, &a);
    sg_spool_append(sp, &b);
    sg_spool_append(sp, &c);
    assert_int_equal(sg_spool_commit(sp), 0);
    sg_spool_ack(sp, b.ref);
    assert_int_equal(sg_spool_commit(sp), 0);
    /* A crash: nothing more happens; the file is read back as it is. */
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    assert_int_equal(rec.n, 2);
    assert_string_equal(rec.entries[0].event_id, "a");
    assert_string_equal(rec.entries[1].event_id, "c");
    assert_string_equal(rec.entries[1].json, "{\"event\":\"Lead\",\"event_id\":\"c\"}");
    assert_string_equal(rec.entries[1].rules, "[\"r1\"]");
    assert_int_equal(rec.entries[1].consent.evidence[0], SG_CEV_TCF_GRANTED);
    assert_true(rec.entries[1].consent.gpc);
    assert_int_equal(rec.entries[1].first_ts, 1763700000);
    assert_int_equal(rec.torn_segments, 0);
    sg_spool_recovered_free(&rec);
    /* All acked: once the spool is closed (the segment sealed), the file goes. */
    sg_spool_ack(sp, a.ref);
    sg_spool_ack(sp, c.ref);
    assert_int_equal(sg_spool_commit(sp), 0);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
    assert_int_equal(count_segments(), 0);
}

static void torn_tail_keeps_what_came_before(void **state)
{
    (void)state;
    struct sg_spool_recovered rec;
    struct sg_spool_shared *sh;
    struct sg_spool *sp = open_spool(&sh);
    struct sg_spool_entry a = entry("x1"), b = entry("x2");
    sg_spool_append(sp, &a);
    sg_spool_append(sp, &b);
    assert_int_equal(sg_spool_commit(sp), 0);
    char *path = sg_xasprintf("%s/%020llu.seg", dir, (unsigned long long)a.ref.seg);
    /* Corrupt the second record's last byte: its CRC fails, the first survives. */
    int fd = open(path, O_RDWR);
    off_t end = lseek(fd, 0, SEEK_END);
    assert_int_equal(pwrite(fd, "#", 1, end - 1), 1);
    assert_int_equal(write(fd, "SGR1 partial", 12), 12);
    close(fd);
    free(path);
    sg_capture_begin();
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    char *log = sg_capture_end();
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.entries[0].event_id, "x1");
    assert_int_equal(rec.torn_segments, 1);
    assert_non_null(strstr(log, "torn or corrupt tail"));
    free(log);
    sg_spool_recovered_free(&rec);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
}

static void cap_is_enforced(void **state)
{
    (void)state;
    struct sg_spool_shared *sh = sg_spool_shared_new(dir, 1000, 4096, 1 << 20);
    struct sg_spool *sp = sg_spool_new(sh, 0);
    assert_true(sg_spool_has_room(sp, 1000));
    for (int i = 0; i < 100 && sg_spool_has_room(sp, 200); i++) {
        struct sg_spool_entry e = entry("cap");
        sg_spool_append(sp, &e);
        assert_int_equal(sg_spool_commit(sp), 0);
    }
    assert_false(sg_spool_has_room(sp, 200));
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
}

static void crc32c_known_value(void **state)
{
    (void)state;
    assert_int_equal(sg_crc32c("123456789", 9), 0xE3069283u); /* the standard check value */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(survives_a_crash_and_honours_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail_keeps_what_came_before, setup, teardown),
        cmocka_unit_test_setup_teardown(cap_is_enforced, setup, teardown),
        cmocka_unit_test(crc32c_known_value),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_spool_thread_release();
    return rc;
}
