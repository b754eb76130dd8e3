/*
 * buf.h - a growable byte buffer with a hard maximum (curl dynbuf, git strbuf).
 *
 * Every buffer that holds client or upstream bytes has a cap that is checked
 * before growing; exceeding it fails the append instead of allocating.
 */
#ifndef SCRUBGATE_BUF_H
#define SCRUBGATE_BUF_H

#include "scrubgate/common.h"

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
int sg_buf_add(struct sg_buf *b, const void *p, size_t n);
int sg_buf_adds(struct sg_buf *b, const char *s);
int sg_buf_addc(struct sg_buf *b, char c);
int sg_buf_printf(struct sg_buf *b, const char *fmt, ...) SG_PRINTF(2, 3);
/* The contents as a C string (borrowed; valid until the next change). */
const char *sg_buf_cstr(struct sg_buf *b);
/* Hand the allocation to the caller (owned; free()) and reset the buffer. */
char *sg_buf_detach(struct sg_buf *b, size_t *len);

#endif
