/*
 * server.h - the serve command: take ownership of state_dir, recover the
 * spool, bind the listening sockets, run N workers (worker.h), wait for
 * signals (SIGHUP reloads, SIGTERM/SIGINT stop).
 */
#ifndef SCRUBGATE_SERVER_H
#define SCRUBGATE_SERVER_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

/* Run the proxy until SIGTERM or SIGINT. Returns the process exit status. */
int sg_server_run(struct sg_config *cfg);

/*
 * Take the advisory lock on {state_dir}/scrubgate.lock and write our pid in
 * it. Returns the lock's descriptor (held for the process's life), or -1
 * with a message naming the directory and, when known, the owner's pid.
 */
int sg_server_lock_state_dir(const char *state_dir);

#endif
