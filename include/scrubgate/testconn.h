/*
 * testconn.h - test-connection: one Purchase test event per destination of a
 * site, straight to the API (no spool, no queue), and the API's verdict per
 * destination with what to do about it.
 *
 * The event has event id "test-connection-<unix time>" and carries the
 * destination's test_event_code, or TEST_CONNECTION when it has none, so it
 * shows in the pixel's Test Events tab and never in reporting. A dry-run
 * destination is not sent to. The access token is never part of a result,
 * a printed line or a log line.
 */
#ifndef SCRUBGATE_TESTCONN_H
#define SCRUBGATE_TESTCONN_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

#include <jansson.h>

struct sg_http;

#define SG_TESTCONN_DEFAULT_CODE "TEST_CONNECTION"

enum sg_testconn_status { SG_TESTCONN_OK = 0, SG_TESTCONN_FAILED, SG_TESTCONN_DRY_RUN };

/* One destination's verdict. */
struct sg_testconn_result {
    char *destination;              /* owned: the destination's id */
    enum sg_testconn_status status; /* ok: code 0 or 20001 */
    long http_status;               /* 0 when no reply came (or dry run) */
    long code;                      /* the API's code, -1 when none */
    char *message;                  /* owned: the API's message (bounded, printable), or a
                                     * transport error; "" when none */
    char request_id[80];            /* "" when none */
    const char *hint;               /* static: what to do, or NULL when ok */
};

/*
 * Called once, from the loop, when every destination answered (or failed);
 * results (borrowed, n of them, in the site's destination order) live until
 * it returns.
 */
typedef void sg_testconn_done_fn(void *arg, const struct sg_testconn_result *results, size_t n);

struct sg_testconn;

/*
 * Start a test of every destination of site on http's loop. Everything needed
 * from site and lim is copied now, so a reload may free them meanwhile.
 * done may be called before this returns (a site with no destination to
 * send to). Returns the running test (owned by itself: it frees itself
 * after done), or NULL when done was already called.
 */
struct sg_testconn *sg_testconn_start(struct sg_http *http, const struct sg_site *site,
                                      const struct sg_limits *lim, sg_testconn_done_fn *done,
                                      void *arg);
/* The caller is going away: done will not be called (the test ends with http's abort). */
void sg_testconn_forget(struct sg_testconn *t);

const char *sg_testconn_status_name(enum sg_testconn_status s);
/* {"destination","status","http_status","code","message","request_id","hint"} (new ref). */
json_t *sg_testconn_result_json(const struct sg_testconn_result *r);
/* The one-line human form, without a newline (owned). */
char *sg_testconn_result_line(const struct sg_testconn_result *r);
/* True when every result is ok or dry run. */
bool sg_testconn_all_ok(const struct sg_testconn_result *r, size_t n);

/*
 * The test-connection command: print one line per destination of site_id
 * (one JSON object per line with json) to standard output. Returns the exit
 * status: 0 when every destination answered code 0 or 20001 (a dry run counts
 * as ok), 1 otherwise (or no destination), 2 when cfg has no such site.
 */
int sg_test_connection_cli(const struct sg_config *cfg, const char *site_id, bool json);

#endif
