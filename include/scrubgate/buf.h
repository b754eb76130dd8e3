/*
 * buf.h - a growable byte buffer with a hard maximum (curl dynbuf, git strbuf).
 *
 * Every buffer that holds client or upstream bytes has a cap that is checked
 * before growing; exceeding it fails the append instead of allocating.
 */
#ifndef SCRUBGATE_BUF_H
#define SCRUBGATE_BUF_H

#include "scrubgate/common.h"

#include <string.h>

struct sg_buf {
    char *data; /* owned; always NUL-terminated when len > 0 or after sg_buf_cstr() */
    size_t len;
    size_t cap;
    size_t max; /* 0 means unlimited (only for data we produce ourselves) */
};

void sg_buf_init(struct sg_buf *b, size_t max);
void sg_buf_release(struct sg_buf *b);
void sg_buf_reset(struct sg_buf *b);
/*
 * Append n bytes; -1 if that would exceed max (the buffer is unchanged). The
 * allocation never exceeds max + 1 bytes.
 */
int sg_buf_add_grow(struct sg_buf *b, const void *p, size_t n);
/* Inline while the bytes fit (the allocation is never past max + 1, so fitting is within
 * max); sg_buf_add_grow() does the rest. Hot: every byte of every outbound event. */
static inline int sg_buf_add(struct sg_buf *b, const void *p, size_t n)
{
    if (n >= b->cap - b->len) /* also a buffer never grown: cap 0 */
        return sg_buf_add_grow(b, p, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}
static inline int sg_buf_addc(struct sg_buf *b, char c)
{
    if (b->len + 2 > b->cap)
        return sg_buf_add_grow(b, &c, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
}
int sg_buf_adds(struct sg_buf *b, const char *s);
/* Room for n more bytes without growing (within max); -1 past max. */
int sg_buf_reserve(struct sg_buf *b, size_t n);
int sg_buf_printf(struct sg_buf *b, const char *fmt, ...) SG_PRINTF(2, 3);
/* The contents as a C string (borrowed; valid until the next change). */
const char *sg_buf_cstr(struct sg_buf *b);
/* Hand the allocation to the caller (owned; free()) and reset the buffer. */
char *sg_buf_detach(struct sg_buf *b, size_t *len);
/* Append code point cp (up to U+10FFFF; the caller checks) as UTF-8. */
int sg_buf_utf8(struct sg_buf *b, unsigned cp);

/*
 * JSON text written directly (no tree), as jansson's json_dumps() writes it with
 * JSON_COMPACT | JSON_REAL_PRECISION(15), so that either may produce a document:
 *   string  quoted; '"' '\\' and \b \f \n \r \t escaped short, other bytes under 0x20
 *           as \u00XX; the rest (UTF-8) as it is. The caller checks sg_utf8_valid().
 *   real    "%.15g", with ".0" when it would read as an integer, and the exponent
 *           without '+' or leading zeros (1e20, 1e-5).
 * Each returns sg_buf_add()'s result.
 */
int sg_buf_json_string(struct sg_buf *b, const char *s, size_t n);
int sg_buf_json_real(struct sg_buf *b, double d);
int sg_buf_json_int(struct sg_buf *b, long long v);

/* The length (1 to 4) of the well-formed UTF-8 sequence at s (n bytes readable), or 0:
 * no overlong forms, surrogates or code points past U+10FFFF. */
size_t sg_utf8_seq(const unsigned char *s, size_t n);
/* True when s[0..n) is well-formed UTF-8 (NUL bytes included). */
bool sg_utf8_valid(const char *s, size_t n);

#endif
