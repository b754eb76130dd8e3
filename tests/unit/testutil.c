#include "testutil.h"

#include "scrubgate/rules.h"
#include "scrubgate/spool.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int saved_fd = -1;
static char capture_path[64];

void sg_capture_begin(void)
{
    strcpy(capture_path, "/tmp/sg-capture-XXXXXX");
    int fd = mkstemp(capture_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

char *sg_capture_end(void)
{
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    size_t len;
    char *text = sg_read_file(capture_path, &len);
    assert_non_null(text);
    unlink(capture_path);
    return text;
}

/*
 * Each file gets a directory of its own with a "rules" link to the source tree's
 * rules/: a config resolves relative paths against its own directory, and the
 * test configs name "rules/default.json".
 */
char *sg_write_temp(const char *suffix, const char *text)
{
    char dir[] = "/tmp/sg-test-XXXXXX", cwd[4096];
    assert_non_null(mkdtemp(dir));
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char *rules = sg_xasprintf("%s/rules", cwd), *link = sg_xasprintf("%s/rules", dir);
    assert_int_equal(symlink(rules, link), 0);
    free(rules);
    free(link);
    char *path = sg_xasprintf("%s/t%s", dir, suffix);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

struct sg_site *sg_test_site(const char *rules_path)
{
    struct sg_site *s = sg_xcalloc(1, sizeof(*s));
    s->id = sg_xstrdup("test");
    s->secret = (unsigned char *)sg_xstrdup(SG_TEST_SECRET);
    s->secret_len = strlen(SG_TEST_SECRET);
    s->consent.default_state = SG_CONSENT_DENIED;
    s->consent.honor_gpc = true;
    s->rules = sg_ruleset_load(rules_path);
    assert_non_null(s->rules);
    s->event_map = json_pack("{s:[s]}", "won", "Purchase");
    s->standard_events = true;
    s->map_fanout = 1;
    return s;
}

void sg_test_site_free(struct sg_site *s)
{
    sg_ruleset_free(s->rules);
    json_decref(s->event_map);
    free(s->phone_region);
    free(s->secret);
    free(s->id);
    free(s);
}

/* The json text lives in a static buffer: valid until the next call. */
struct sg_spool_entry sg_test_spool_entry(const char *id)
{
    static char json[64];
    snprintf(json, sizeof(json), "{\"event\":\"Lead\",\"event_id\":\"%s\"}", id);
    struct sg_spool_entry e;
    memset(&e, 0, sizeof(e));
    e.site = "shop";
    e.dest = "tiktok:P1";
    e.event = "Lead";
    e.event_id = (char *)id;
    e.rules = "[\"r1\"]";
    e.json = json;
    e.json_len = strlen(json);
    e.first_ts = 1763700000;
    e.consent.evidence[0] = SG_CEV_TCF_GRANTED;
    e.consent.gpc = true;
    return e;
}

struct sg_config *sg_test_config_load(const char *text, char **log)
{
    char *path = sg_write_temp(".json", text);
    sg_capture_begin();
    struct sg_config *cfg = sg_config_load(path);
    *log = sg_capture_end();
    unlink(path);
    free(path);
    return cfg;
}

void sg_test_config_error(const char *text, const char *where, const char *what)
{
    char *log;
    struct sg_config *cfg = sg_test_config_load(text, &log);
    if (cfg)
        fail_msg("loaded, wanted \"%s\" / \"%s\"", where, what);
    if (!strstr(log, where) || !strstr(log, what))
        fail_msg("wanted \"%s\" and \"%s\" in: %s", where, what, log);
    free(log);
}

int sg_test_config_env(void **state)
{
    (void)state;
    setenv("SGT_SECRET", "0123456789abcdef-secret", 1);
    setenv("SGT_TOKEN", "token-value-xyz", 1);
    return 0;
}
