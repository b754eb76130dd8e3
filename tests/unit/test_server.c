/*
 * One owner per state_dir: the lock is exclusive, names the owner's pid to
 * the second comer, and is released with its descriptor (a dead process
 * never leaves a stale lock).
 */
#include "testutil.h"

#include "scrubgate/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void second_owner_is_refused_with_the_pid(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-lock-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int fd = sg_server_lock_state_dir(dir);
    assert_true(fd >= 0);
    /* flock locks belong to the open file: another process is a real second owner. */
    pid_t child = fork();
    if (child == 0) {
        sg_capture_begin();
        int rc = sg_server_lock_state_dir(dir);
        char *log = sg_capture_end();
        char pid[32];
        snprintf(pid, sizeof(pid), "pid %ld", (long)getppid());
        _exit(rc == -1 && strstr(log, "is in use by another scrubgate") && strstr(log, pid) &&
                      strstr(log, dir)
                  ? 0
                  : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd); /* released: the next owner gets it */
    fd = sg_server_lock_state_dir(dir);
    assert_true(fd >= 0);
    close(fd);
    char *cmd = sg_xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(second_owner_is_refused_with_the_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
