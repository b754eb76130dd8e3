/* The queue's names and configuration: what a JetStream deployment depends on. */
#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/jetstream.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define SITE_OK                                                                                    \
    "{\"id\":\"s.1\",\"rules\":\"rules/default.json\",\"secret_env\":\"SGT_SECRET\","              \
    "\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\",\"access_token_env\":"          \
    "\"SGT_TOKEN\",\"id\":\"tt.main\"}]}"

/* Names derived from ids are injective: '_' -> "_u", '.' -> "_d" (and in durables ':' -> "_c",
 * '-' -> "_h"), so "a.b" and "a_b" never share a subject, a message id or a durable. */
static void names(void **state)
{
    (void)state;
    char *s = sg_jetstream_subject("shop", "tiktok:CABC.1");
    assert_string_equal(s, "scrubgate.shop.tiktok:CABC_d1");
    free(s);
    s = sg_jetstream_subject("s.1", "tt.main");
    assert_string_equal(s, "scrubgate.s_d1.tt_dmain");
    char *t = sg_jetstream_subject("s_1", "tt_main");
    assert_string_not_equal(s, t);
    assert_string_equal(t, "scrubgate.s_u1.tt_umain");
    free(t);
    free(s);
    /* The event name is part of it (TikTok dedups on event and event_id), and the event_id's
     * length ends it: "a/b"+"c" and "a"+"b/c" differ. */
    s = sg_jetstream_msg_id("shop", "tiktok:CABC.1", "Lead", "ev-7");
    assert_string_equal(s, "shop/tiktok:CABC.1/ev-7/Lead");
    t = sg_jetstream_msg_id("shop", "d", "Purchase", "ev-7");
    assert_string_not_equal(s, t);
    free(t);
    free(s);
    s = sg_jetstream_msg_id("shop", "d", "c", "a/b");
    t = sg_jetstream_msg_id("shop", "d", "b/c", "a");
    assert_string_not_equal(s, t);
    free(s);
    free(t);
    /* libnats writes CR LF as spaces and trims: encoded, they stay apart. */
    s = sg_jetstream_msg_id("shop", "d", "Lead", "ev\r\nzz");
    t = sg_jetstream_msg_id("shop", "d", "Lead", "ev  zz");
    assert_string_equal(s, "shop/d/ev%0D%0Azz/Lead");
    assert_string_equal(t, "shop/d/ev%20%20zz/Lead");
    free(s);
    free(t);
    /* Durables: '-' separates, so it is escaped too ("a-b"+"c" vs "a"+"b-c"). */
    s = sg_jetstream_durable("a-b", "c");
    t = sg_jetstream_durable("a", "b-c");
    assert_string_equal(s, "sg-a_hb-c");
    assert_string_equal(t, "sg-a-b_hc");
    free(s);
    free(t);
    s = sg_jetstream_durable("shop", "tiktok:CABC.1_x");
    assert_string_equal(s, "sg-shop-tiktok_cCABC_d1_ux");
    free(s);
}

/* Header values survive libnats unchanged: every byte that is not printable ASCII, and '%'
 * and '/', is %XX; decoding takes only what encoding writes. */
static void header_values(void **state)
{
    (void)state;
    static const char *const values[] = {"", " ", "\t", "\r\n", "  x", "x  ", "a%20b",
                                         "caf\xc3\xa9", "[\"rule-1\",\"r 2\"]", "a/b", "\x7f\x01"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char *e = sg_jetstream_hdr_encode(values[i]);
        for (const char *p = e; *p; p++)
            assert_true(*p > ' ' && *p < 0x7f && *p != '/');
        char *d = sg_jetstream_hdr_decode(e);
        assert_non_null(d);
        assert_string_equal(d, values[i]);
        free(d);
        free(e);
    }
    char *e = sg_jetstream_hdr_encode(" a%");
    assert_string_equal(e, "%20a%25");
    free(e);
    static const char *const bad[] = {"a b", "%2", "%zz", "%61", "%00", "%0a", "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(sg_jetstream_hdr_decode(bad[i]));
}

/* The ack wait outlasts the longest TikTok request by 30 s (no redelivery while in flight). */
static void ack_wait(void **state)
{
    (void)state;
    char *log = NULL;
    struct sg_config *cfg = sg_test_config_load("{\"sites\":[" SITE_OK "]}", &log);
    free(log);
    assert_non_null(cfg);
    assert_int_equal(sg_jetstream_ack_wait_ns(cfg), 40LL * 1000000000LL); /* 10 s default */
    cfg->limits.upstream_timeout_ms = 600000;
    assert_int_equal(sg_jetstream_ack_wait_ns(cfg), 630LL * 1000000000LL);
    sg_config_free(cfg);
}

static void jetstream_config(void **state)
{
    (void)state;
    char *log = NULL;
    struct sg_config *cfg = sg_test_config_load("{\"sites\":[" SITE_OK "]}", &log);
    free(log);
    assert_non_null(cfg);
    assert_int_equal(cfg->queue.type, SG_QUEUE_LOCAL); /* the default: nothing changes */
    sg_config_free(cfg);
    cfg = sg_test_config_load("{\"sites\":[" SITE_OK "], \"queue\": {\"type\": \"jetstream\", "
                              "\"servers\": [\"nats://10.0.0.1:4222\", \"nats://10.0.0.2:4222\"], "
                              "\"creds_file\": null}}",
                              &log);
    free(log);
    assert_non_null(cfg);
    assert_int_equal(cfg->queue.type, SG_QUEUE_JETSTREAM);
    assert_int_equal(cfg->queue.n_servers, 2);
    assert_string_equal(cfg->queue.servers[1], "nats://10.0.0.2:4222");
    assert_string_equal(cfg->queue.stream, "SCRUBGATE"); /* defaults */
    assert_int_equal(cfg->queue.replicas, 3);
    assert_null(cfg->queue.creds_file);
    sg_config_free(cfg);
}

#define LONG_IDS                                                                                   \
    "{\"queue\": %s, \"sites\":[{\"id\":\"%s\",\"rules\":\"rules/default.json\","               \
    "\"secret_env\":\"SGT_SECRET\",\"destinations\":[{\"type\":\"tiktok\",\"pixel_code\":\"P1\","   \
    "\"access_token_env\":\"SGT_TOKEN\",\"id\":\"%s\"}]}]}"
#define JS_QUEUE "{\"type\": \"jetstream\", \"servers\": [\"nats://10.0.0.1:4222\"]}"

/* A consumer name NATS would refuse (over 255 bytes once escaped) is a load error naming the
 * destination, at start and on reload: its events could never be delivered. 255 loads. */
static void durable_too_long(void **state)
{
    (void)state;
    char *log = NULL, doc[2048], site[64], dest[65];
    /* "sg-" + 2 * 63 + "-" + 2 * 62 + 1 = 255 bytes: the longest name NATS takes. */
    memset(site, '-', 63);
    site[63] = '\0';
    memset(dest, '.', 62);
    memcpy(dest + 62, "x", 2);
    snprintf(doc, sizeof(doc), LONG_IDS, JS_QUEUE, site, dest);
    struct sg_config *cfg = sg_test_config_load(doc, &log);
    free(log);
    assert_non_null(cfg);
    char *durable = sg_jetstream_durable(cfg->sites[0].id, cfg->sites[0].dests[0].id);
    assert_int_equal(strlen(durable), 255);
    free(durable);
    sg_config_free(cfg);
    memcpy(dest + 62, "xy", 3);
    snprintf(doc, sizeof(doc), LONG_IDS, JS_QUEUE, site, dest);
    assert_null(sg_test_config_load(doc, &log));
    assert_non_null(strstr(log, "sites[0].destinations[0]"));
    assert_non_null(strstr(log, "consumer name would be 256 bytes"));
    free(log);
    /* The local queue has no such limit. */
    snprintf(doc, sizeof(doc), LONG_IDS, "{\"type\": \"local\"}", site, dest);
    cfg = sg_test_config_load(doc, &log);
    free(log);
    assert_non_null(cfg);
    sg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(header_values),
        cmocka_unit_test(ack_wait),
        cmocka_unit_test(jetstream_config),
        cmocka_unit_test(durable_too_long),
    };
    return cmocka_run_group_tests(tests, sg_test_config_env, NULL);
}
