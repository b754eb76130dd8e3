/* One request's JSON in one region (arena.h): what jansson makes inside a span is released at
 * its end, what it made outside is freed as always, whichever side frees it. */
#include "testutil.h"

#include "scrubgate/arena.h"

#include <jansson.h>
#include <string.h>

static void spans_and_the_heap(void **state)
{
    (void)state;
    json_t *outside = json_pack("{s:[i,i]}", "kept", 1, 2); /* heap */
    for (int round = 0; round < 50; round++) {
        sg_json_arena_begin();
        /* a request's worth: a parsed body, values added and removed, a big string */
        json_t *doc = json_loads("[{\"event\":\"Lead\",\"properties\":{\"value\":1.5,"
                                 "\"contents\":[{\"content_id\":\"a\"},{\"content_id\":\"b\"}]}}]",
                                 0, NULL);
        assert_non_null(doc);
        char big[200000];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        json_object_set_new(json_array_get(doc, 0), "note", json_string(big)); /* > a chunk */
        for (int i = 0; i < 2000; i++)
            json_array_append_new(doc, json_integer(i));
        json_object_del(outside, "gone"); /* a heap value freed inside a span: freed */
        char *text = sg_json_text(doc, JSON_COMPACT); /* malloc()ed, inside a span */
        assert_non_null(text);
        assert_non_null(strstr(text, "\"content_id\":\"b\""));
        free(text);
        json_decref(doc);
        sg_json_arena_end();
        json_object_set_new(outside, "gone", json_string("made outside a span"));
    }
    json_t *kept = json_object_get(outside, "kept");
    assert_int_equal(json_integer_value(json_array_get(kept, 1)), 2);
    char *text = json_dumps(outside, JSON_COMPACT); /* outside a span: plain malloc */
    assert_non_null(text);
    free(text);
    json_decref(outside);
    sg_json_arena_thread_release();
}

int main(void)
{
    sg_json_alloc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spans_and_the_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
