/*
 * testconn.c - STUB of scrubgate test-connection, so that the command line
 * builds and its parsing is tested before the real module lands. Replace this
 * file (and the header) with the real implementation.
 */
#include "scrubgate/common.h"
#include "scrubgate/testconn.h"

#include <stdio.h>

int sg_test_connection_cli(const struct sg_config *cfg, const char *site_id, bool json)
{
    (void)cfg;
    (void)site_id;
    (void)json;
    fputs("test-connection: not built yet\n", stderr);
    return 1;
}
