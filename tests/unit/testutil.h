/*
 * testutil.h - helpers shared by the unit tests: capture what the code logs
 * (to assert on error messages), write temporary files, build a test site.
 */
#ifndef SG_TESTUTIL_H
#define SG_TESTUTIL_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

/* Redirect stderr to a temporary file until sg_capture_end(), which returns it (owned). */
void sg_capture_begin(void);
char *sg_capture_end(void);

/* Write text to a new temporary file; returns its path (owned). */
char *sg_write_temp(const char *suffix, const char *text);

/* Load a config written as text; *log gets what was logged (owned). NULL when refused. */
struct sg_config *sg_test_config_load(const char *text, char **log);
/* The config must be refused with a message holding both where and what. */
void sg_test_config_error(const char *text, const char *where, const char *what);
/* cmocka setup: the environment variables test configs name (SGT_SECRET, SGT_TOKEN). */
int sg_test_config_env(void **state);

/* A site with the given rule set and a fixed secret, for pipeline tests. */
#define SG_TEST_SECRET "golden-secret-0123456789"
struct sg_site *sg_test_site(const char *rules_path);
void sg_test_site_free(struct sg_site *s);

/* A spool data record for event id (borrowed strings; the id must outlive it). */
struct sg_spool_entry;
struct sg_spool_entry sg_test_spool_entry(const char *id);

#endif
