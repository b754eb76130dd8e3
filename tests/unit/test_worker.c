/*
 * One worker and the admin listener on a real loop, with real sockets on
 * 127.0.0.1 and dry-run destinations (nothing leaves the machine): an event
 * is answered 202 and reaches an outcome per destination; /healthz speaks
 * for the worker; /metrics needs the token; a reload that removes a
 * destination switches the forwarder table on the worker's loop.
 */
#include "testutil.h"

#include "scrubgate/admin.h"
#include "scrubgate/deadletter.h"
#include "scrubgate/forward.h"
#include "scrubgate/spool.h"
#include "scrubgate/synclog.h"
#include "scrubgate/worker.h"

#include <arpa/inet.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[64];

#define DEST(p)                                                                                    \
    "{\"type\":\"tiktok\",\"pixel_code\":\"" p "\",\"access_token_env\":\"SGW_TOKEN\","          \
    "\"dry_run\":true}"

static struct sg_config *load(int admin_port, bool two_dests)
{
    char *text = sg_xasprintf(
        "{\"listen\":\"127.0.0.1:0\",\"state_dir\":\"%s\",\"workers\":1,"
        "\"admin_listen\":\"127.0.0.1:%d\",\"admin_token_env\":\"SGW_ADMIN\","
        "\"sites\":[{\"id\":\"s\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGW_SECRET\","
        "\"destinations\":[" DEST("P1") "%s]}]}",
        dir, admin_port, two_dests ? "," DEST("P2") : "");
    char *path = sg_write_temp(".json", text);
    struct sg_config *cfg = sg_config_load(path);
    unlink(path);
    free(path);
    free(text);
    assert_non_null(cfg);
    return cfg;
}

static int listen_any(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int free_port(void)
{
    int port, fd = listen_any(&port);
    close(fd);
    return port;
}

/* One HTTP/1.0 exchange on a fresh connection; the whole reply (owned). */
static char *http(int port, const char *request)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(sg_write_all(fd, request, strlen(request)), 0);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        sg_buf_add(&b, chunk, (size_t)n);
    close(fd);
    sg_buf_addc(&b, 0);
    return sg_buf_detach(&b, NULL);
}

static void count_cb(struct sg_forwarder *fw, void *arg)
{
    (void)fw;
    ++*(int *)arg;
}

static int forwarders(struct sg_worker *w)
{
    int n = 0;
    sg_worker_each_forwarder(w, count_cb, &n);
    return n;
}

static size_t sync_lines(void)
{
    char *path = sg_xasprintf("%s/sync-log.jsonl", dir);
    size_t len = 0, lines = 0;
    char *text = sg_read_file(path, &len);
    for (size_t i = 0; text && i < len; i++)
        lines += text[i] == '\n';
    free(text);
    free(path);
    return lines;
}

static void serves_reloads_and_reports_health(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/sg-worker-XXXXXX");
    assert_non_null(mkdtemp(dir));
    setenv("SGW_SECRET", "worker-secret-0123456789", 1);
    setenv("SGW_TOKEN", "unused-token", 1);
    setenv("SGW_ADMIN", "admin-token-xyz", 1);
    evthread_use_pthreads();
    int admin_port = free_port();
    struct sg_config *cfg = load(admin_port, true), *next = load(admin_port, false);
    struct sg_synclog *log = sg_synclog_open(dir);
    struct sg_deadletter *dead = sg_deadletter_open(dir);
    char *spool_dir = sg_xasprintf("%s/spool", dir);
    struct sg_spool_recovered rec;
    assert_int_equal(sg_spool_recover(spool_dir, &rec), 0);
    struct sg_spool_shared *sh = sg_spool_shared_new(spool_dir, rec.next_seq, 1 << 20, 1 << 20);
    sg_spool_recovered_free(&rec);
    int port, fd = listen_any(&port);
    struct sg_worker *w = sg_worker_new(0, cfg, log, dead, sh, NULL, fd);
    assert_non_null(w);
    struct sg_admin *admin = NULL;
    assert_int_equal(sg_admin_new(sg_worker_base(w), cfg, &w, 1, NULL, &admin), 0);
    assert_non_null(admin);
    sg_worker_attach_admin(w, admin);
    assert_int_equal(sg_worker_start(w), 0);
    assert_int_equal(forwarders(w), 2);

    const char *body = "{\"event\":\"Lead\",\"event_id\":\"w1\"}";
    char *req = sg_xasprintf("POST /v1/events?site=s HTTP/1.0\r\nContent-Type: application/json"
                             "\r\nUser-Agent: Mozilla/5.0\r\nContent-Length: %zu\r\n\r\n%s",
                             strlen(body), body);
    char *reply = http(port, req);
    assert_non_null(strstr(reply, " 202 "));
    assert_non_null(strstr(reply, "\"w1\""));
    free(reply);
    for (int i = 0; i < 500 && sync_lines() < 2; i++)
        usleep(10000);
    assert_int_equal(sync_lines(), 2); /* one outcome per destination (dry run: skipped) */

    reply = http(admin_port, "GET /healthz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(reply, " 200 "));
    assert_non_null(strstr(reply, "{\"status\":\"ok\"}"));
    free(reply);
    reply = http(admin_port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(reply, " 401 "));
    free(reply);
    reply = http(admin_port, "GET /metrics HTTP/1.0\r\nAuthorization: Bearer admin-token-xyz\r\n\r\n");
    assert_non_null(strstr(reply, " 200 "));
    assert_non_null(strstr(reply, "destination=\"tiktok:P2\""));
    free(reply);

    sg_worker_reload(w, next, 1);
    for (int i = 0; i < 500 && sg_worker_applied_epoch(w) < 1; i++)
        usleep(10000);
    assert_int_equal(sg_worker_applied_epoch(w), 1);
    assert_int_equal(forwarders(w), 1); /* the removed one had nothing left: freed */
    reply = http(port, req);
    assert_non_null(strstr(reply, " 202 "));
    free(reply);
    for (int i = 0; i < 500 && sync_lines() < 3; i++)
        usleep(10000);
    assert_int_equal(sync_lines(), 3); /* one destination left */

    sg_worker_stop(w);
    sg_worker_join(w);
    sg_worker_free(w);
    free(req);
    sg_spool_shared_free(sh);
    free(spool_dir);
    sg_deadletter_free(dead);
    sg_synclog_free(log);
    sg_config_free(next);
    sg_config_free(cfg);
    char *cmd = sg_xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(serves_reloads_and_reports_health),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sg_spool_thread_release();
    return rc;
}
