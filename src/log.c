/*
 * log.c - timestamped log lines on stderr, one write() per line so that
 * lines from the worker threads do not interleave. Plain text, or one JSON
 * object per line (ts, level, msg) for a log collector.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Read by every thread, written by the main thread at start and on reload: a torn read of an
 * int cannot happen on the platforms we run on, and a line logged at the old level while a
 * reload changes it is harmless. */
static volatile enum sg_log_level min_level = SG_LOG_INFO;
static volatile enum sg_log_format log_format = SG_LOG_TEXT;
static volatile bool pinned_debug;

void sg_log_set_level(enum sg_log_level level)
{
    min_level = level;
}

void sg_log_configure(enum sg_log_format format, enum sg_log_level level)
{
    log_format = format;
    min_level = pinned_debug ? SG_LOG_DEBUG : level;
}

static _Thread_local int thread_worker = -1;

void sg_log_set_thread_worker(int index)
{
    thread_worker = index;
}

void sg_log_pin_debug(void)
{
    pinned_debug = true;
    min_level = SG_LOG_DEBUG;
}

int sg_log_level_from_name(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < SG_ARRAY_SIZE(names); i++)
        if (!strcmp(name, names[i]))
            return (int)i;
    return -1;
}

/*
 * Append s to out[*len..cap) as the inside of a JSON string: quote, backslash and
 * control bytes escaped, everything else copied (the message is UTF-8 text we wrote;
 * jansson is not used here because sg_die must work when allocation cannot).
 * Stops early, never mid-escape, when out is full.
 */
static void json_escape(char *out, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)c;
        } else if (c == '\n') {
            esc[n++] = '\\';
            esc[n++] = 'n';
        } else if (c == '\t') {
            esc[n++] = '\\';
            esc[n++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            n = 4;
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        } else if (c >= 0x80) {
            /* A well-formed UTF-8 sequence is copied; any other byte becomes U+FFFD, so
             * that a line is valid JSON whatever a file name in it holds. */
            size_t k = sg_utf8_seq((const unsigned char *)s, strnlen(s, 4));
            if (k) {
                memcpy(esc, s, k);
                n = k;
                s += k - 1;
            } else {
                memcpy(esc, "\\ufffd", 6);
                n = 6;
            }
        } else
            esc[n++] = (char)c;
        if (*len + n >= cap)
            return;
        memcpy(out + *len, esc, n);
        *len += n;
    }
}

enum sg_log_level sg_log_get_level(void)
{
    return min_level;
}

static void vlog(enum sg_log_level level, const char *fmt, va_list ap) SG_PRINTF(2, 0);
static void vlog(enum sg_log_level level, const char *fmt, va_list ap)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[8192], stamp[64];
    struct timespec ts;
    struct tm tm;
    size_t len;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000L);
    if (log_format == SG_LOG_JSON) {
        char msg[6144];
        int m = vsnprintf(msg, sizeof(msg), fmt, ap);
        if (m < 0)
            msg[0] = '\0';
        int n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",", stamp,
                         names[level]);
        if (thread_worker >= 0)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "\"worker\":%d,", thread_worker);
        n += snprintf(line + n, sizeof(line) - (size_t)n, "\"msg\":\"");
        len = (size_t)n;
        json_escape(line, sizeof(line) - 3, &len, msg);
        memcpy(line + len, "\"}", 2);
        len += 2;
    } else {
        int n = snprintf(line, sizeof(line), "%s %s: ", stamp, names[level]);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        len = (size_t)n + (m < 0 ? 0 : SG_MIN((size_t)m, sizeof(line) - (size_t)n - 2));
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nothing sensible to do if stderr is gone */
}

void sg_log(enum sg_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

int sg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(SG_LOG_ERROR, fmt, ap);
    va_end(ap);
    return -1;
}

void sg_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(SG_LOG_ERROR, fmt, ap);
    va_end(ap);
    abort();
}
