/*
 * log.c - timestamped log lines on stderr, one write() per line so that
 * lines from the worker threads do not interleave.
 */
#include "scrubgate/common.h"
#include "scrubgate/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum sg_log_level min_level = SG_LOG_INFO;

void sg_log_set_level(enum sg_log_level level)
{
    min_level = level;
}

enum sg_log_level sg_log_get_level(void)
{
    return min_level;
}

static void vlog(enum sg_log_level level, const char *fmt, va_list ap) SG_PRINTF(2, 0);
static void vlog(enum sg_log_level level, const char *fmt, va_list ap)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[8192];
    struct timespec ts;
    struct tm tm;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, names[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : SG_MIN((size_t)m, sizeof(line) - (size_t)n - 2));
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
