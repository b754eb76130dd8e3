/* struct sg_buf: the hard maximum holds for the data and for the allocation. */
#include "testutil.h"

#include "scrubgate/buf.h"

#include <stdint.h>
#include <string.h>

/*
 * A capped buffer never allocates past its maximum (plus the NUL): doubling
 * stops at the cap, so a 256 KiB buffer 200 KiB full does not ask for 512 KiB.
 */
static void growth_is_clamped_to_the_maximum(void **state)
{
    static char chunk[60000];
    struct sg_buf b;
    (void)state;
    memset(chunk, 'x', sizeof(chunk));
    sg_buf_init(&b, 100);
    assert_int_equal(sg_buf_add(&b, chunk, 64), 0);
    assert_int_equal(sg_buf_add(&b, chunk, 30), 0);
    assert_true(b.cap <= 101);
    assert_int_equal(sg_buf_add(&b, chunk, 6), 0); /* exactly the maximum */
    assert_int_equal(b.len, 100);
    assert_int_equal(b.cap, 101);
    assert_int_equal(b.data[100], '\0');
    assert_int_equal(sg_buf_addc(&b, 'y'), -1); /* one more is refused, unchanged */
    assert_int_equal(b.len, 100);
    sg_buf_release(&b);

    sg_buf_init(&b, 200000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sg_buf_add(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(b.len, 3 * sizeof(chunk));
    assert_true(b.cap <= 200001);
    assert_int_equal(sg_buf_add(&b, chunk, 200000 - b.len), 0);
    assert_int_equal(b.cap, 200001);
    sg_buf_release(&b);

    sg_buf_init(&b, 10); /* smaller than the first allocation */
    assert_int_equal(sg_buf_adds(&b, "abc"), 0);
    assert_true(b.cap <= 11);
    assert_string_equal(sg_buf_cstr(&b), "abc");
    sg_buf_release(&b);
}

/* A length that would wrap size_t is refused, with or without a maximum. */
static void sizes_that_wrap_are_refused(void **state)
{
    struct sg_buf b;
    (void)state;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_adds(&b, "abc"), 0);
    assert_int_equal(sg_buf_add(&b, "x", SIZE_MAX), -1);
    assert_int_equal(sg_buf_add(&b, "x", SIZE_MAX - 3), -1);
    assert_int_equal(b.len, 3);
    assert_string_equal(sg_buf_cstr(&b), "abc");
    sg_buf_release(&b);
    sg_buf_init(&b, 16);
    assert_int_equal(sg_buf_add(&b, "x", SIZE_MAX), -1);
    assert_int_equal(b.len, 0);
    sg_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(growth_is_clamped_to_the_maximum),
        cmocka_unit_test(sizes_that_wrap_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
