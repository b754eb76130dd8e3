/*
 * The group commit on a real event loop and a real spool directory: a
 * generation is reported durable only after its sync, a failed write is
 * reported as failed (and the next generation succeeds), background jobs
 * run off the loop in order, and freeing the commit flushes what is left.
 */
#include "testutil.h"

#include "scrubgate/commit.h"
#include "scrubgate/spool.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

struct fixture {
    struct event_base *base;
    struct sg_spool_shared *sh;
    struct sg_spool *sp;
    struct sg_commit *c;
    uint64_t last_gen;
    bool last_ok;
    int calls;
};

static void done_cb(void *arg, uint64_t gen, bool ok)
{
    struct fixture *f = arg;
    f->last_gen = gen;
    f->last_ok = ok;
    f->calls++;
    event_base_loopbreak(f->base);
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    strcpy(dir, "/tmp/sg-commit-XXXXXX");
    assert_non_null(mkdtemp(dir));
    evthread_use_pthreads();
    f.base = event_base_new();
    struct sg_spool_recovered rec;
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    f.sh = sg_spool_shared_new(dir, rec.next_seq, 1 << 20, 1 << 20);
    sg_spool_recovered_free(&rec);
    f.sp = sg_spool_new(f.sh, 0);
    f.c = sg_commit_new(f.base, f.sp, done_cb, &f);
    assert_non_null(f.c);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sg_commit_free(f->c);
    sg_spool_free(f->sp);
    sg_spool_shared_free(f->sh);
    event_base_free(f->base);
    char *cmd = sg_xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

static void append(struct sg_spool *sp, const char *id)
{
    struct sg_spool_entry e = sg_test_spool_entry(id);
    sg_spool_append(sp, &e);
}

/* Run the loop until the commit reports (bounded: a report that never comes fails). */
static void run_until_report(struct fixture *f)
{
    struct timeval limit = {5, 0};
    int before = f->calls;
    event_base_loopexit(f->base, &limit);
    event_base_dispatch(f->base);
    assert_int_equal(f->calls, before + 1);
}

static void generation_is_durable_after_its_sync(void **state)
{
    struct fixture *f = *state;
    append(f->sp, "a");
    uint64_t gen = sg_spool_gen(f->sp);
    sg_commit_kick(f->c);
    assert_int_equal(f->calls, 0); /* nothing happens before the loop runs */
    run_until_report(f);
    assert_true(f->last_ok);
    assert_int_equal(f->last_gen, gen);
    struct sg_spool_recovered rec;
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    assert_int_equal(rec.n, 1);
    sg_spool_recovered_free(&rec);
}

static void failed_write_is_reported_then_heals(void **state)
{
    struct fixture *f = *state;
    append(f->sp, "b");
    /* The segment's file cannot be created: a directory is in its place. */
    char *blocker = sg_xasprintf("%s/%020llu.seg", dir, 1ULL);
    assert_int_equal(mkdir(blocker, 0750), 0);
    uint64_t gen = sg_spool_gen(f->sp);
    sg_commit_kick(f->c);
    sg_capture_begin();
    event_base_loop(f->base, EVLOOP_NONBLOCK); /* the write fails on the loop */
    free(sg_capture_end());
    assert_int_equal(f->calls, 1);
    assert_false(f->last_ok);
    assert_int_equal(f->last_gen, gen);
    append(f->sp, "c");
    sg_commit_kick(f->c);
    run_until_report(f);
    assert_true(f->last_ok);
    assert_int_equal(rmdir(blocker), 0);
    free(blocker);
}

struct bg {
    pthread_t loop_thread, ran_on;
    int *runs;     /* touched by the background thread only: the order the jobs ran in */
    int *finishes; /* touched by the loop only: the order their done callbacks ran in */
    int ran, finished;
    struct fixture *f;
};

static void bg_run(void *arg)
{
    struct bg *b = arg;
    b->ran_on = pthread_self();
    b->ran = (*b->runs)++;
}

static void bg_done(void *arg)
{
    struct bg *b = arg;
    assert_true(pthread_equal(pthread_self(), b->loop_thread));
    b->finished = (*b->finishes)++;
    if (b->finished == 1)
        event_base_loopbreak(b->f->base);
}

static void background_jobs_run_off_the_loop_in_order(void **state)
{
    struct fixture *f = *state;
    int runs = 0, finishes = 0;
    struct bg one = {.loop_thread = pthread_self(), .runs = &runs, .finishes = &finishes, .f = f};
    struct bg two = one;
    sg_commit_background(f->c, bg_run, bg_done, &one);
    sg_commit_background(f->c, bg_run, bg_done, &two);
    struct timeval limit = {5, 0};
    event_base_loopexit(f->base, &limit);
    event_base_dispatch(f->base);
    assert_int_equal(runs, 2);
    assert_int_equal(finishes, 2);
    assert_true(one.ran < two.ran);
    assert_true(one.finished < two.finished);
    assert_false(pthread_equal(one.ran_on, one.loop_thread));
}

static void free_flushes_what_is_buffered(void **state)
{
    struct fixture *f = *state;
    append(f->sp, "d");
    sg_commit_free(f->c); /* the loop never ran: the last generation is written here */
    f->c = NULL;
    assert_true(f->last_ok);
    struct sg_spool_recovered rec;
    assert_int_equal(sg_spool_recover(dir, &rec), 0);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.entries[0].event_id, "d");
    sg_spool_recovered_free(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(generation_is_durable_after_its_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_is_reported_then_heals, setup, teardown),
        cmocka_unit_test_setup_teardown(background_jobs_run_off_the_loop_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(free_flushes_what_is_buffered, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_spool_thread_release();
    return rc;
}
