/*
 * testconn.h - scrubgate test-connection: one test event per destination of a
 * site, straight to TikTok, and TikTok's verdict per destination.
 *
 * STUB until the real module lands: this header's one function is the contract
 * the command line calls.
 */
#ifndef SCRUBGATE_TESTCONN_H
#define SCRUBGATE_TESTCONN_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

/*
 * Run test-connection for site_id (borrowed) of cfg (borrowed), printing one
 * line per destination, or one JSON object per destination when json is set.
 * Returns the exit status: 0 when every destination answered ok, 1 otherwise.
 */
int sg_test_connection_cli(const struct sg_config *cfg, const char *site_id, bool json);

#endif
