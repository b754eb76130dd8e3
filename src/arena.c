/*
 * arena.c - one request's JSON in one region (arena.h).
 *
 * Each thread reserves one range of address space for its region (256 MiB,
 * MAP_NORESERVE: pages cost memory only once touched) and bumps a pointer in
 * it. Whether a block is the region's is then one comparison, whatever the
 * size of the request (a list of chunks made every free cost a walk: a
 * request of many values took time quadratic in its size). Outside a span,
 * or when the range is used up or could not be reserved, jansson's blocks
 * are plain malloc() blocks, so a json_dumps() result made there is free()d
 * as always. (One made inside a span is the region's: free() it and the
 * allocator aborts; such text is taken with sg_json_text().)
 *
 * At the end of a span the bump pointer goes back to the start; the pages a
 * large request touched past the first MiB are given back to the system.
 */
#include "scrubgate/arena.h"
#include "scrubgate/common.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

#define RESERVE ((size_t)256 << 20) /* address space per thread; past it, the heap */
#define KEEP ((size_t)1 << 20)      /* touched pages a thread keeps between requests */

static _Thread_local struct {
    bool active;
    bool unavailable;     /* the reservation failed: the heap serves */
    unsigned char *base;  /* RESERVE bytes, reserved at the first span */
    size_t used;          /* handed out in this span */
    size_t touched;       /* high-water mark since the last give-back */
} tl;

static bool mine(const unsigned char *p)
{
    return tl.base && p >= tl.base && p < tl.base + RESERVE;
}

static void *region_alloc(size_t size)
{
    if (!tl.base && !tl.unavailable) {
        void *p = mmap(NULL, RESERVE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            tl.unavailable = true; /* e.g. an address-space limit: slower, still correct */
        else
            tl.base = p;
    }
    size_t need = size ? (size + 15) & ~(size_t)15 : 16;
    if (!tl.base || need > RESERVE - tl.used)
        return malloc(size); /* a free() of it is a free(): it is not in the range */
    unsigned char *p = tl.base + tl.used;
    tl.used += need;
    if (tl.used > tl.touched)
        tl.touched = tl.used;
    UNPOISON(p, need);
    return p;
}

static void *json_alloc(size_t size)
{
    return tl.active ? region_alloc(size) : malloc(size);
}

static void json_free(void *ptr)
{
    if (!mine(ptr))
        free(ptr); /* a region block waits for the end of its span */
}

char *sg_arena_strndup(const char *s, size_t n)
{
    char *p = tl.active ? region_alloc(n + 1) : NULL;
    if (!p)
        p = sg_xmalloc(n + 1); /* dies when out of memory, as sg_xstrndup does */
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sg_arena_strdup(const char *s)
{
    return sg_arena_strndup(s, strlen(s));
}

void sg_arena_free(void *p)
{
    json_free(p);
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

size_t sg_json_arena_used(void)
{
    return tl.active ? tl.used : 0;
}

void sg_json_arena_end(void)
{
    tl.active = false;
    if (!tl.base)
        return;
    POISON(tl.base, tl.used); /* a value used past its request is an ASan error */
    tl.used = 0;
    if (tl.touched > KEEP) {
        madvise(tl.base + KEEP, tl.touched - KEEP, MADV_DONTNEED);
        tl.touched = KEEP;
    }
}

void sg_json_arena_thread_release(void)
{
    sg_json_arena_end();
    if (tl.base) {
        UNPOISON(tl.base, RESERVE);
        munmap(tl.base, RESERVE);
        tl.base = NULL;
    }
}
