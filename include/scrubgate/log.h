/*
 * log.h - process log on stderr.
 *
 * Log lines carry no personal data and no secrets: callers pass identifiers
 * (site ids, rule ids, counts), never field values. sg_error() logs and
 * returns -1 so that "return sg_error(...)" reads as one statement (git).
 */
#ifndef SCRUBGATE_LOG_H
#define SCRUBGATE_LOG_H

#include "scrubgate/common.h"

enum sg_log_level { SG_LOG_DEBUG = 0, SG_LOG_INFO, SG_LOG_WARN, SG_LOG_ERROR };

/* text: "TIMESTAMP level: message"; json: {"ts":...,"level":...,"msg":...} per line. */
enum sg_log_format { SG_LOG_TEXT = 0, SG_LOG_JSON };

void sg_log_set_level(enum sg_log_level level);
/*
 * The config's log_format and log_level, applied at start and on reload. A
 * level pinned by sg_log_pin_debug() (the -v option) wins over the config's.
 */
void sg_log_configure(enum sg_log_format format, enum sg_log_level level);
void sg_log_pin_debug(void);
/* The calling thread is worker index: its JSON log lines carry "worker": index. */
void sg_log_set_thread_worker(int index);
/* "error", "warn", "info", "debug" -> the level, or -1 for anything else. */
int sg_log_level_from_name(const char *name);
enum sg_log_level sg_log_get_level(void);
void sg_log(enum sg_log_level level, const char *fmt, ...) SG_PRINTF(2, 3);
int sg_error(const char *fmt, ...) SG_PRINTF(1, 2);
SG_NORETURN void sg_die(const char *fmt, ...) SG_PRINTF(1, 2);

#define sg_debug(...) sg_log(SG_LOG_DEBUG, __VA_ARGS__)
#define sg_info(...) sg_log(SG_LOG_INFO, __VA_ARGS__)
#define sg_warn(...) sg_log(SG_LOG_WARN, __VA_ARGS__)

#endif
