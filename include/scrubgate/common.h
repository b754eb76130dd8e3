/*
 * common.h - first include of every scrubgate source file.
 *
 * Feature macros, small helpers and the allocation wrappers that abort on
 * out-of-memory (as Redis, git and h2o do): callers never branch on OOM.
 */
#ifndef SCRUBGATE_COMMON_H
#define SCRUBGATE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SG_UNUSED(x) ((void)(x))
#define SG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SG_NORETURN __attribute__((noreturn))
#define SG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SG_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation wrappers: abort with a message on failure. */
void *sg_xmalloc(size_t n);
void *sg_xcalloc(size_t n, size_t size);
void *sg_xrealloc(void *p, size_t n);
char *sg_xstrdup(const char *s);
char *sg_xstrndup(const char *s, size_t n);
char *sg_xasprintf(const char *fmt, ...) SG_PRINTF(1, 2);

/* Free a string that may hold a secret: wiped first. NULL is a no-op. */
void sg_free_secret(char *s);

/* Wall clock in Unix seconds and a monotonic clock in milliseconds. */
int64_t sg_now_unix(void);
uint64_t sg_now_mono_ms(void);

/* The value of a hexadecimal digit, or -1. */
/* ASCII classes (the C library's depend on the locale). */
static inline bool sg_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool sg_is_alnum(char c)
{
    return sg_is_digit(c) || ((c | 32) >= 'a' && (c | 32) <= 'z');
}

int sg_hexval(int c);
/* The value of a base64 or base64url character (both alphabets), or -1. */
int sg_b64val(int c);
/* Case-insensitive ASCII comparisons that do not depend on the locale. */
bool sg_strcaseeq(const char *a, const char *b);
bool sg_strncaseeq(const char *a, const char *b, size_t n);

/* write() all of p, retrying on EINTR and short writes. 0, or -1 with errno set. */
int sg_write_all(int fd, const void *p, size_t n);
/*
 * Append whole lines to a log file (fd opened O_APPEND, writers serialized
 * by the caller in the process, and with other processes by the file's flock
 * lock), then fdatasync it when sync is set: all or nothing. On a
 * failed or short write (a full disk) the file is cut back to where it was,
 * so no partial line is left to swallow the next one. 0, or -1 with errno
 * set (of the write or sync; a failed cut-back is logged).
 */
int sg_append_lines(int fd, const char *what, const void *p, size_t n, bool sync);
/*
 * Open a JSON-lines log for appending (created mode 0640 if missing). A file that does not end
 * with a newline (a crash in the middle of a write, before sg_append_lines could cut it back)
 * gets one first: the torn record stays one unreadable line, and the next record starts a
 * line of its own instead of being glued to it. The descriptor, or -1 with errno set.
 */
int sg_open_jsonl(const char *path);
/*
 * Take an exclusive advisory lock (flock) on path, created if missing, and
 * write our pid in it. Returns the descriptor (the lock lives as long as it
 * is open, and dies with the process), or -1 with a message saying that
 * what "is in use by another scrubgate (pid N)".
 */
int sg_lock_pidfile(const char *path, const char *what);
/* A whole file into memory (owned, NUL-terminated; *len without the NUL). NULL with errno. */
char *sg_read_file(const char *path, size_t *len);

/* Constant-time comparison of two NUL-terminated strings (for keys and tokens): a is what a
 * client sent, b the secret; the time depends on strlen(a) only (no early return, not even
 * on a length mismatch). */
bool sg_consttime_streq(const char *a, const char *b);

#endif
