/*
 * The spool: records survive a "crash" (the spool is dropped without
 * cleanup), acks hide delivered records, sealed and fully acked segments are
 * deleted, and a torn tail keeps the records before it.
 */
#include "testutil.h"

#include "scrubgate/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
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
static struct sg_spool *open_spool_seg(struct sg_spool_shared **sh, uint64_t segment_bytes)
{
    struct sg_spool_recovered rec;
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    *sh = sg_spool_shared_new(dir, rec.next_seq, 1 << 20, segment_bytes);
    sg_spool_recovered_free(&rec);
    return sg_spool_new(*sh, 0);
}

static struct sg_spool *open_spool(struct sg_spool_shared **sh)
{
    return open_spool_seg(sh, 1 << 20);
}

static char *seg_file(uint64_t seq)
{
    return sg_xasprintf("%s/%020llu.seg", dir, (unsigned long long)seq);
}

/* The event ids recovery finds pending, sorted, joined by commas (owned). */
static char *pending_ids(void)
{
    struct sg_spool_recovered rec;
    struct sg_buf b;
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    sg_buf_init(&b, 0);
    for (size_t i = 0; i < rec.n; i++) {
        if (i)
            sg_buf_adds(&b, ",");
        sg_buf_adds(&b, rec.entries[i].event_id);
    }
    sg_buf_addc(&b, 0);
    sg_spool_recovered_free(&rec);
    return sg_buf_detach(&b, NULL);
}

static struct sg_spool_entry entry(const char *id)
{
    return sg_test_spool_entry(id);
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
    assert_non_null(strstr(log, "corrupt or torn"));
    free(log);
    sg_spool_recovered_free(&rec);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
}

/* One bad record in the middle costs that record only; the reader finds the next one. */
static void corrupt_record_loses_only_itself(void **state)
{
    (void)state;
    struct sg_spool_shared *sh;
    struct sg_spool *sp = open_spool(&sh);
    struct sg_spool_entry a = entry("m1"), b = entry("m2"), c = entry("m3");
    sg_spool_append(sp, &a);
    assert_int_equal(sg_spool_commit(sp), 0);
    char *path = seg_file(a.ref.seg);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    off_t second = st.st_size;
    sg_spool_append(sp, &b);
    sg_spool_append(sp, &c);
    assert_int_equal(sg_spool_commit(sp), 0);
    sg_spool_ack(sp, a.ref); /* an ack after the damage is still read */
    assert_int_equal(sg_spool_commit(sp), 0);
    int fd = open(path, O_RDWR);
    assert_int_equal(pwrite(fd, "XX", 2, second + 20), 2); /* inside m2's payload */
    close(fd);
    free(path);
    sg_capture_begin();
    char *ids = pending_ids();
    char *log = sg_capture_end();
    assert_string_equal(ids, "m3");
    assert_non_null(strstr(log, "corrupt or torn"));
    free(ids);
    free(log);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
}

/*
 * Acks live with their segment: deleting a later segment (fully acked)
 * does not take the acks of an earlier, still pinned one with it.
 */
static void acks_survive_deletion_of_later_segments(void **state)
{
    (void)state;
    struct sg_spool_shared *sh;
    struct sg_spool *sp = open_spool_seg(&sh, 64); /* every generation rolls the segment */
    struct sg_spool_entry a = entry("s1"), b = entry("s2");
    sg_spool_append(sp, &a);
    sg_spool_append(sp, &b);
    assert_int_equal(sg_spool_commit(sp), 0);
    struct sg_spool_entry c = entry("s3");
    sg_spool_append(sp, &c); /* a new segment: the first is sealed */
    assert_int_equal(sg_spool_commit(sp), 0);
    assert_true(c.ref.seg != a.ref.seg);
    sg_spool_ack(sp, a.ref); /* the first segment stays: s2 pins it */
    sg_spool_ack(sp, c.ref);
    assert_int_equal(sg_spool_commit(sp), 0);
    struct sg_spool_entry d = entry("s4");
    sg_spool_append(sp, &d); /* seals the second segment, now fully acked: deleted */
    assert_int_equal(sg_spool_commit(sp), 0);
    assert_int_equal(sg_spool_commit(sp), 0); /* the deferred unlink */
    char *second = seg_file(c.ref.seg);
    assert_int_equal(access(second, F_OK), -1);
    free(second);
    char *ids = pending_ids();
    assert_string_equal(ids, "s2,s4"); /* s1's ack was not lost with the second segment */
    free(ids);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
}

/* An ack names exactly one record: no ack can alias a record of another segment. */
static void acks_match_segment_and_index_exactly(void **state)
{
    (void)state;
    struct sg_spool_shared *sh;
    struct sg_spool *sp = open_spool_seg(&sh, 64);
    struct sg_spool_entry a = entry("x-a");
    sg_spool_append(sp, &a);
    assert_int_equal(sg_spool_commit(sp), 0);
    struct sg_spool_entry b = entry("x-b");
    sg_spool_append(sp, &b); /* the next segment */
    assert_int_equal(sg_spool_commit(sp), 0);
    assert_true(b.ref.seg == a.ref.seg + 1 && b.ref.idx == 0);
    /* An ack in b's segment whose index, packed with b's number, would read as a's record
     * (seg << 24 ^ idx): it must ack nothing of a. */
    struct sg_spool_ref alias = {b.ref.seg, (uint32_t)((b.ref.seg ^ a.ref.seg) << 24)};
    sg_spool_ack(sp, alias);
    assert_int_equal(sg_spool_commit(sp), 0);
    char *ids = pending_ids();
    assert_string_equal(ids, "x-a,x-b");
    free(ids);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
}

/* A segment that cannot be read stops recovery, and nothing is deleted. */
static void unreadable_segment_stops_recovery(void **state)
{
    (void)state;
    struct sg_spool_shared *sh;
    struct sg_spool *sp = open_spool(&sh);
    struct sg_spool_entry a = entry("u1");
    sg_spool_append(sp, &a);
    assert_int_equal(sg_spool_commit(sp), 0);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
    char *bad = seg_file(a.ref.seg + 1);
    assert_int_equal(mkdir(bad, 0750), 0); /* read() fails: EISDIR */
    struct sg_spool_recovered rec;
    sg_capture_begin();
    assert_int_equal(sg_spool_recover(dir, &rec), -1);
    char *log = sg_capture_end();
    assert_non_null(strstr(log, bad));
    assert_int_equal(count_segments(), 2); /* the good one too: nothing deleted */
    assert_int_equal(rmdir(bad), 0);
    free(bad);
    free(log);
    char *ids = pending_ids();
    assert_string_equal(ids, "u1");
    free(ids);
}

/* A failed write refuses that generation only: its records never come back, the next
 * generation goes to a new segment and is durable. */
static void failed_write_discards_its_generation_and_heals(void **state)
{
    (void)state;
    struct sg_spool_shared *sh;
    struct sg_spool *sp = open_spool(&sh);
    struct sg_spool_entry a = entry("f1");
    sg_spool_append(sp, &a);
    char *blocker = seg_file(a.ref.seg);
    assert_int_equal(mkdir(blocker, 0750), 0); /* creating the segment fails */
    uint64_t gen = sg_spool_gen(sp);
    struct sg_spool_job job;
    sg_capture_begin();
    assert_int_equal(sg_spool_write(sp, &job), SG_SPOOL_FAILED);
    assert_int_equal(job.gen, gen);
    sg_spool_job_done(sp, &job);
    char *log = sg_capture_end();
    assert_non_null(strstr(log, "cannot create"));
    assert_true(sg_spool_failing(sp));
    assert_true(sg_spool_gen(sp) > gen);
    struct sg_spool_entry b = entry("f2");
    sg_spool_append(sp, &b);
    assert_true(b.ref.seg != a.ref.seg);
    assert_int_equal(sg_spool_commit(sp), 0);
    assert_false(sg_spool_failing(sp));
    assert_int_equal(rmdir(blocker), 0);
    free(blocker);
    free(log);
    sg_spool_free(sp);
    sg_spool_shared_free(sh);
    char *ids = pending_ids();
    assert_string_equal(ids, "f2");
    free(ids);
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
    assert_int_equal(sg_crc32c_portable("123456789", 9), 0xE3069283u);
    /* The instruction and the table agree at every length and alignment. */
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= sizeof(buf); len++)
            assert_int_equal(sg_crc32c(buf + off, len), sg_crc32c_portable(buf + off, len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(survives_a_crash_and_honours_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail_keeps_what_came_before, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_record_loses_only_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(acks_survive_deletion_of_later_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(acks_match_segment_and_index_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(unreadable_segment_stops_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_discards_its_generation_and_heals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(cap_is_enforced, setup, teardown),
        cmocka_unit_test(crc32c_known_value),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_spool_thread_release();
    return rc;
}
