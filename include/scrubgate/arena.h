/*
 * arena.h - one request's JSON in one region.
 *
 * An ingest request parses its body into a jansson tree, reads it, and drops
 * it: a hundred small allocations and frees per event for memory whose life
 * is the request's. While a thread is inside sg_json_arena_begin() ..
 * sg_json_arena_end(), jansson allocates from a per-thread region instead
 * (bump allocation in one reserved address range), its frees cost nothing,
 * and the end releases everything at once (memory a large request touched
 * past the first MiB goes back to the system). Outside such a span jansson
 * uses the heap. A value freed inside a span is not reused before its end:
 * a request's peak memory is what it allocated, not what it kept.
 *
 * The rule that makes it safe: no jansson value made inside a span may be
 * used after its end (the tree of a request is freed before the reply goes
 * anyway). Address sanitizer builds poison the region at the end, so a value
 * that outlives its request is a test failure, not a silent reuse.
 */
#ifndef SCRUBGATE_ARENA_H
#define SCRUBGATE_ARENA_H

#include <jansson.h>

/* Route jansson's allocations through here: call once, before anything uses jansson. */
void sg_json_alloc_init(void);

void sg_json_arena_begin(void);
void sg_json_arena_end(void);

/* json_dumps() for code that runs inside a span: the text is malloc()ed (free() it), where
 * json_dumps()'s own would be the region's. NULL on failure. */
char *sg_json_text(const json_t *v, size_t flags);

/*
 * A request's strings (an event's fields): from the region inside a span,
 * from the heap outside one; either way sg_arena_free() is their free()
 * (a no-op for a region block, free() for a heap one, NULL-safe). The same
 * rule holds: nothing made inside a span is used after its end. A region
 * block is freed only at the span's end: copies made once per event of
 * something that does not come from the body (a header) belong on the heap.
 */
char *sg_arena_strndup(const char *s, size_t n);
char *sg_arena_strdup(const char *s);
void sg_arena_free(void *p);

/* Bytes handed out in this thread's current span (0 outside one): for tests and diagnostics. */
size_t sg_json_arena_used(void);

/* Free this thread's chunks (call before a thread that used the arena exits). */
void sg_json_arena_thread_release(void);

#endif
