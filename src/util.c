/*
 * util.c - allocation wrappers, growable buffers, clocks and string helpers.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void *sg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        sg_die("out of memory allocating %zu bytes", n);
    return p;
}

void *sg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        sg_die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *sg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        sg_die("out of memory reallocating %zu bytes", n);
    return q;
}

char *sg_xstrndup(const char *s, size_t n)
{
    char *p = sg_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sg_xstrdup(const char *s)
{
    return sg_xstrndup(s, strlen(s));
}

char *sg_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        sg_die("vsnprintf failed");
    char *p = sg_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void sg_free_secret(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

int64_t sg_now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

uint64_t sg_now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

bool sg_strncaseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
        if (a[i] == '\0')
            return true;
    }
    return true;
}

bool sg_strcaseeq(const char *a, const char *b)
{
    size_t la = strlen(a);
    return la == strlen(b) && sg_strncaseeq(a, b, la);
}

/*
 * Every byte of the given string a is compared, against the secret b
 * repeated over a's length, and a length mismatch is folded into the same
 * accumulator: there is no early return, so the time depends on a's length
 * only (which its sender knows), never on where a and b first differ or on
 * how long b is.
 */
bool sg_consttime_streq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    volatile unsigned char diff = 0;
    size_t j = 0;
    for (size_t i = 0; i < la; i++) {
        /* b's bytes cycled (the NUL at the end included), so no read goes past it. */
        diff |= (unsigned char)(a[i] ^ b[j]);
        j = j < lb ? j + 1 : 0;
    }
    size_t d = la ^ lb;
    for (size_t k = 0; k < sizeof(d); k++)
        diff |= (unsigned char)(d >> (8 * k));
    return diff == 0;
}

int sg_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sg_b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int sg_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int sg_open_jsonl(const char *path)
{
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    off_t end = lseek(fd, 0, SEEK_END);
    char last = '\n';
    if (end < 0 || (end > 0 && pread(fd, &last, 1, end - 1) != 1) ||
        (last != '\n' && sg_write_all(fd, "\n", 1) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/*
 * The file's lock (flock) is held from finding the end to the cut-back: another process may
 * append to the same file (`scrubgate replay` beside `serve`), and a cut-back must remove our
 * own bytes only, never the lines it appended meanwhile. In one process the callers' mutexes
 * order the threads (they share the descriptor, and so the lock).
 */
int sg_append_lines(int fd, const char *what, const void *p, size_t n, bool sync)
{
    int locked, rc = -1;
    while ((locked = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
        ;
    /* Where the file system has no flock (ENOLCK on some network ones), append unlocked. */
    off_t end = lseek(fd, 0, SEEK_END);
    if (end >= 0 && sg_write_all(fd, p, n) == 0 && (!sync || fdatasync(fd) == 0))
        rc = 0;
    int err = errno;
    if (rc < 0 && end >= 0 && ftruncate(fd, end) < 0)
        sg_error("%s: cannot cut back a partial write: %s; one line may be damaged", what,
                 strerror(errno));
    if (locked == 0)
        flock(fd, LOCK_UN);
    errno = err;
    return rc;
}

int sg_lock_pidfile(const char *path, const char *what)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return sg_error("%s: cannot open %s: %s", what, path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (err == EWOULDBLOCK)
            return sg_error("%s is in use by another scrubgate (pid %s)", what,
                            pid[0] ? pid : "unknown");
        return sg_error("%s: cannot lock %s: %s", what, path, strerror(err));
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        sg_warn("%s: cannot record our pid in %s: %s", what, path, strerror(errno));
    return fd;
}

char *sg_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, off = 0;
    char *buf = sg_xmalloc(cap);
    for (;;) {
        if (off + 1 == cap) /* the file grew since fstat */
            buf = sg_xrealloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + off, cap - off - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            free(buf);
            close(fd);
            errno = err;
            return NULL;
        }
        if (r == 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    buf[off] = '\0';
    *len = off;
    return buf;
}

/* ---- struct sg_buf ---- */

void sg_buf_init(struct sg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void sg_buf_release(struct sg_buf *b)
{
    free(b->data);
    sg_buf_init(b, b->max);
}

void sg_buf_reset(struct sg_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/*
 * The allocation grows by doubling but never past max + 1 (the data and its
 * NUL): the cap bounds memory, not only the length. Sizes that would wrap
 * size_t are refused like an exceeded maximum.
 */
int sg_buf_reserve(struct sg_buf *b, size_t n)
{
    size_t limit = b->max ? b->max : SIZE_MAX - 1;
    if (n > limit || b->len > limit - n)
        return -1;
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (cap > limit + 1)
            cap = limit + 1;
        b->data = sg_xrealloc(b->data, cap);
        b->cap = cap;
        b->data[b->len] = '\0';
    }
    return 0;
}

int sg_buf_add_grow(struct sg_buf *b, const void *p, size_t n)
{
    if (sg_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sg_buf_adds(struct sg_buf *b, const char *s)
{
    return sg_buf_add(b, s, strlen(s));
}

int sg_buf_printf(struct sg_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return sg_buf_add(b, small, (size_t)n);
    char *big = sg_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = sg_buf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

const char *sg_buf_cstr(struct sg_buf *b)
{
    if (!b->data)
        sg_buf_add(b, "", 0);
    return b->data;
}

char *sg_buf_detach(struct sg_buf *b, size_t *len)
{
    sg_buf_cstr(b);
    char *p = b->data;
    if (len)
        *len = b->len;
    sg_buf_init(b, b->max);
    return p;
}

int sg_buf_utf8(struct sg_buf *out, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18 & 0x07));
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return sg_buf_add(out, u, n);
}

/* ---- JSON text ---- */

int sg_buf_json_string(struct sg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = b->len, run = 0;
    if (sg_buf_addc(b, '"') < 0)
        return -1;
    /* 1 for the bytes that need an escape: under 0x20, '"' and '\\' */
    static const unsigned char esc_byte[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ['"'] = 1, ['\\'] = 1};
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!esc_byte[c])
            continue;
        /* the bytes before it as they are, then its escape */
        char esc[6] = {'\\', (char)c};
        size_t k = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        }
        if (sg_buf_add(b, s + run, i - run) < 0 || sg_buf_add(b, esc, k) < 0)
            goto fail;
        run = i + 1;
    }
    if (sg_buf_add(b, s + run, n - run) == 0 && sg_buf_addc(b, '"') == 0)
        return 0;
fail:
    b->len = start;
    if (b->data)
        b->data[start] = '\0';
    return -1;
}

/*
 * A real that is m / 10^k exactly for some k <= 6 and |m| < 10^15 (prices,
 * quantities: most reals of an event), written from m without printf. That is
 * what "%.15g" prints: the double nearest m / 10^k is within half an ulp
 * (2^-53 relative) of it, less than half a step of the 15-digit grid, on which
 * m / 10^k lies, so rounding to 15 digits gives m / 10^k back; and from 1e-4
 * to under 1e15 "%g" uses no exponent. 0 when d is not such a real.
 */
static size_t short_real(double d, char *t)
{
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 0; k < (int)SG_ARRAY_SIZE(p10); k++) {
        double x = a * p10[k];
        if (x >= 1e15)
            return 0;
        unsigned long long m = (unsigned long long)(x + 0.5);
        if ((double)m / p10[k] != a)
            continue;
        char digits[24], *p = digits + sizeof(digits);
        int n = 0;
        for (; n < k && m % 10 == 0; n++) /* trailing zeros of the fraction go */
            m /= 10;
        int frac = k - n;
        do {
            *--p = (char)('0' + m % 10);
            m /= 10;
        } while (m);
        size_t len = (size_t)(digits + sizeof(digits) - p), o = 0;
        if (d < 0)
            t[o++] = '-';
        if ((size_t)frac >= len) { /* 0.000ddd */
            t[o++] = '0';
            t[o++] = '.';
            for (size_t z = (size_t)frac - len; z; z--)
                t[o++] = '0';
            memcpy(t + o, p, len);
            return o + len;
        }
        memcpy(t + o, p, len - (size_t)frac);
        o += len - (size_t)frac;
        t[o++] = '.';
        if (!frac)
            t[o++] = '0';
        memcpy(t + o, p + len - frac, (size_t)frac);
        return o + (size_t)frac;
    }
    return 0;
}

int sg_buf_json_real(struct sg_buf *b, double d)
{
    char t[40];
    size_t fast = short_real(d, t);
    if (fast)
        return sg_buf_add(b, t, fast);
    int n = snprintf(t, sizeof(t), "%.15g", d);
    if (n < 0 || (size_t)n >= sizeof(t) - 3)
        return -1;
    if (!strchr(t, '.') && !strchr(t, 'e')) {
        memcpy(t + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(t, 'e');
    if (e) {
        char *from = e + 1, *to = e + 1;
        if (*from == '-')
            from = ++to;
        else if (*from == '+')
            from++;
        while (*from == '0' && from[1])
            from++;
        memmove(to, from, strlen(from) + 1);
        n = (int)strlen(t);
    }
    return sg_buf_add(b, t, (size_t)n);
}

int sg_buf_json_int(struct sg_buf *b, long long v)
{
    char t[24], *p = t + sizeof(t);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return sg_buf_add(b, p, (size_t)(t + sizeof(t) - p));
}

size_t sg_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 && c < 0xf0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
    if (!need || need >= n)
        return 0;
    /* The second byte's range rules out overlong forms (E0 80..9F, F0 80..8F), surrogates
     * (ED A0..BF) and code points past U+10FFFF (F4 90..BF). */
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k <= need; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return need + 1;
}

bool sg_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) { /* ASCII runs eight bytes a step: most of every event */
            uint64_t w;
            while (i + 8 <= n && (memcpy(&w, p + i, 8), (w & 0x8080808080808080u) == 0))
                i += 8;
            while (i < n && p[i] < 0x80)
                i++;
            continue;
        }
        size_t k = sg_utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}
