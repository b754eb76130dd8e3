/*
 * arena.c - one request's JSON in one region (arena.h).
 *
 * Outside a span jansson's blocks are plain malloc() blocks, so that a
 * json_dumps() result made there is free()d as always. A block is the
 * region's when it lies in one of this thread's chunks: its free is nothing.
 * (A json_dumps() result made inside a span is the region's: free() it and the
 * allocator aborts; such text is taken with json_dumpb() instead.)
 */
#include "scrubgate/arena.h"
#include "scrubgate/common.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK (64 * 1024)
#define KEEP (1024 * 1024) /* chunk bytes a thread keeps between requests */

struct chunk {
    struct chunk *next;
    size_t size, used; /* of data[] */
    _Alignas(16) unsigned char data[];
};

static _Thread_local struct {
    bool active;
    struct chunk *chunks; /* in use, the current one first */
    struct chunk *spare;  /* emptied by the last end, CHUNK bytes each */
    size_t spare_bytes;
} tl;

static void *region_alloc(size_t size)
{
    size_t need = (size + 15) & ~(size_t)15;
    if (need == 0)
        need = 16;
    struct chunk *c = tl.chunks;
    if (!c || c->size - c->used < need) {
        if (need <= CHUNK && tl.spare) {
            c = tl.spare;
            tl.spare = c->next;
            tl.spare_bytes -= c->size;
        } else {
            /* a block larger than a chunk gets a chunk of its own */
            size_t cap = need > CHUNK ? need : CHUNK;
            c = malloc(sizeof(*c) + cap);
            if (!c)
                return NULL;
            c->size = cap;
            POISON(c->data, cap);
        }
        c->used = 0;
        c->next = tl.chunks;
        tl.chunks = c;
    }
    unsigned char *p = c->data + c->used;
    c->used += need;
    UNPOISON(p, need);
    return p;
}

static void *json_alloc(size_t size)
{
    return tl.active ? region_alloc(size) : malloc(size);
}

static bool in_chunks(const struct chunk *c, const unsigned char *p)
{
    for (; c; c = c->next)
        if (p >= c->data && p < c->data + c->size)
            return true;
    return false;
}

static void json_free(void *ptr)
{
    const unsigned char *p = ptr;
    if (p && (in_chunks(tl.chunks, p) || in_chunks(tl.spare, p)))
        return; /* the region's: released at the end of its span */
    free(ptr);
}

char *sg_json_text(const json_t *v, size_t flags)
{
    size_t n = json_dumpb(v, NULL, 0, flags);
    char *s = n ? malloc(n + 1) : NULL;
    if (!s || json_dumpb(v, s, n, flags) != n) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    return s;
}

void sg_json_alloc_init(void)
{
    json_set_alloc_funcs(json_alloc, json_free);
}

void sg_json_arena_begin(void)
{
    tl.active = true;
}

/* Every chunk in use becomes spare (up to KEEP bytes, chunk-sized ones) or is freed. */
void sg_json_arena_end(void)
{
    tl.active = false;
    while (tl.chunks) {
        struct chunk *c = tl.chunks;
        tl.chunks = c->next;
        if (c->size == CHUNK && tl.spare_bytes + c->size <= KEEP) {
            POISON(c->data, c->size);
            c->next = tl.spare;
            tl.spare = c;
            tl.spare_bytes += c->size;
        } else {
            free(c);
        }
    }
}

void sg_json_arena_thread_release(void)
{
    sg_json_arena_end();
    while (tl.spare) {
        struct chunk *c = tl.spare;
        tl.spare = c->next;
        free(c);
    }
    tl.spare_bytes = 0;
}
