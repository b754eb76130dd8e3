/* struct sg_buf: the hard maximum holds for the data and for the allocation. */
#include "testutil.h"

#include "scrubgate/buf.h"

#include <jansson.h>
#include <stdlib.h>

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
    /* known at run time only, as a caller's length is (a constant lets the compiler see the
     * inline path's memcpy with it, and warn, though that path never takes it) */
    volatile size_t huge = SIZE_MAX;
    (void)state;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_buf_adds(&b, "abc"), 0);
    assert_int_equal(sg_buf_add(&b, "x", huge), -1);
    assert_int_equal(sg_buf_add(&b, "x", huge - 3), -1);
    assert_int_equal(b.len, 3);
    assert_string_equal(sg_buf_cstr(&b), "abc");
    sg_buf_release(&b);
    sg_buf_init(&b, 16);
    assert_int_equal(sg_buf_add(&b, "x", huge), -1);
    assert_int_equal(b.len, 0);
    sg_buf_release(&b);
}

/* The writer's JSON is jansson's, byte for byte: strings, reals, integers. */
static void json_text_as_jansson_writes_it(void **state)
{
    (void)state;
    static const char str[] = "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9\0z";
    static const double reals[] = {1e20,  1e-5, 19.99, 100.0, 1.5e300, -0.0, 123456789012345678.0,
                                   0.1 + 0.2, 5e-324, 1e100, -2.5e-100, 0.0, 12345678901234567890.0};
    struct sg_buf b;
    sg_buf_init(&b, 0);
    json_t *j = json_stringn(str, sizeof(str) - 1);
    char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_int_equal(sg_buf_json_string(&b, str, sizeof(str) - 1), 0);
    assert_string_equal(b.data, want);
    free(want);
    json_decref(j);
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        sg_buf_reset(&b);
        j = json_real(reals[i]);
        want = json_dumps(j, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        assert_int_equal(sg_buf_json_real(&b, reals[i]), 0);
        assert_string_equal(b.data, want);
        free(want);
        json_decref(j);
    }
    sg_buf_reset(&b);
    assert_int_equal(sg_buf_json_int(&b, INT64_MIN), 0);
    assert_string_equal(b.data, "-9223372036854775808");
    /* Over the cap: refused, and the buffer is as it was. */
    struct sg_buf small;
    sg_buf_init(&small, 8);
    assert_int_equal(sg_buf_adds(&small, "ab"), 0);
    assert_int_equal(sg_buf_json_string(&small, "\n\n\n\n", 4), -1);
    assert_string_equal(small.data, "ab");
    sg_buf_release(&small);
    sg_buf_release(&b);
}

/* Reals written without printf (prices, quantities) are "%.15g"'s too: a sweep of such values
 * near the edges of that path, and of random bit patterns, against jansson. */
static void reals_as_jansson_writes_them(void **state)
{
    (void)state;
    static const double edges[] = {1e-4,   9.9999e-5, 0.00010000000000000001, 999999999999999.0,
                                   1e15,   1e15 - 0.5, 99999999999999.9,      0.1,
                                   0.3,    1.005,     2.675,                  1234.5678,
                                   -19.99, -0.0001,   4503599627370497.0,     0.000123456,
                                   1e-7,   7.0,       -7.0,                   123456.789012};
    struct sg_buf b;
    sg_buf_init(&b, 0);
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < 200000 + SG_ARRAY_SIZE(edges); i++) {
        double d;
        if (i < SG_ARRAY_SIZE(edges)) {
            d = edges[i];
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (i % 3 == 0) { /* a decimal with up to 8 places */
                static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
                d = (double)(int64_t)(x % 2000000000000ull - 1000000000000ll) / p10[(x >> 48) % 9];
            } else if (i % 3 == 1) { /* any bit pattern that is a finite number */
                memcpy(&d, &x, sizeof(d));
                if (d != d || d - d != 0)
                    continue;
            } else {
                d = (double)(x % 100000) / 100.0;
            }
        }
        sg_buf_reset(&b);
        json_t *j = json_real(d);
        char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        assert_int_equal(sg_buf_json_real(&b, d), 0);
        if (strcmp(b.data, want) != 0)
            fail_msg("%.17g: wrote %s, jansson %s", d, b.data, want);
        free(want);
        json_decref(j);
    }
    sg_buf_release(&b);
}

static void utf8_validity(void **state)
{
    (void)state;
    assert_true(sg_utf8_valid("caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80", 14));
    assert_true(sg_utf8_valid("a\0b", 3));
    assert_false(sg_utf8_valid("\xc3", 1));             /* cut short */
    assert_false(sg_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(sg_utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    assert_false(sg_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(sg_utf8_valid("\xff", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(growth_is_clamped_to_the_maximum),
        cmocka_unit_test(reals_as_jansson_writes_them),
        cmocka_unit_test(sizes_that_wrap_are_refused),
        cmocka_unit_test(json_text_as_jansson_writes_it),
        cmocka_unit_test(utf8_validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
