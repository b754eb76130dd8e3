/*
 * phone_cost - what normalizing one phone number costs (issue 9: "measure the cost per
 * event"). An event carries at most one user.phone, hashed once by a sha256 hash rule, so the
 * cost per event is one sg_normalize_phone (libphonenumber through phone.cc) plus one SHA-256.
 * Also measured: the whole rule pipeline (sg_pipeline_run, rules/advanced-matching.json, site
 * phone_region "US") on one event with and without a phone, so the phone's share of an event
 * shows; and sg_phone_text_candidate, the redact detector's check of one candidate found in
 * text (with no phone_region it tries up to 30 regions).
 *
 * Built with the tests (target phone_cost); not a test. From the source tree:
 *   build-release/tests/phone_cost [ITERATIONS=20000] [RUNS=7] [ONLY]
 * prints, per case, the median over RUNS of the mean ns per call over ITERATIONS calls (ONLY:
 * run only the cases whose name contains it; --list prints the names), and the cost of the
 * first call (libphonenumber loads its metadata: once per process).
 *
 * Wall-clock figures need an idle machine. tests/bench/phone_cost.sh counts instructions per
 * call under valgrind --tool=callgrind instead, which other load does not change.
 */
#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/hash.h"
#include "scrubgate/phone.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keep the compiler from dropping the work. */
static volatile unsigned sink;

static struct sg_site site;
static json_t *events[2]; /* without, with user.phone */

static void normalize(const char *number, const char *region, bool hash)
{
    char out[SG_PHONE_E164_CAP] = "", hex[SG_HEX256_LEN + 1] = "";
    int rc = sg_normalize_phone(number, region, out, sizeof(out));
    if (rc == 0 && hash)
        sg_sha256_hex(out, strlen(out), hex);
    sink += (unsigned)rc + (unsigned char)out[1] + (unsigned char)hex[0];
}

static void candidate(const char *text, const char *region, bool unused)
{
    (void)unused;
    sink += (unsigned)sg_phone_text_candidate(text, strlen(text), region);
}

static void pipeline(const char *unused1, const char *unused2, bool with_phone)
{
    struct sg_request_ctx ctx;
    struct sg_limits lim;
    struct sg_event ev;
    char err[256];
    (void)unused1;
    (void)unused2;
    sg_limits_default(&lim);
    memset(&ctx, 0, sizeof(ctx));
    strcpy(ctx.ip, "203.0.113.9");
    strcpy(ctx.session_id, "0123456789abcdef0123456789abcdef");
    ctx.user_agent = "Mozilla/5.0 (X11; Linux x86_64) bench";
    ctx.now = 1763700000;
    sg_event_init(&ev);
    if (sg_pipeline_run(&site, &lim, events[with_phone], &ctx, &ev, err, sizeof(err)) !=
            SG_PIPE_OK ||
        (with_phone && !ev.val[SG_F_USER_PHONE]))
        abort(); /* not measuring what it claims */
    sink += (unsigned)ev.n_receipt;
    sg_event_release(&ev);
}

struct bench_case {
    const char *name;
    void (*fn)(const char *, const char *, bool);
    const char *arg;
    const char *region;
    bool flag;
};

static const struct bench_case cases[] = {
    {"normalize national, region US", normalize, "213-373-4253", "US", false},
    {"normalize+sha256 national, region US", normalize, "213-373-4253", "US", true},
    {"normalize +1 with extension, no region", normalize, "+1 (213) 373-4253 ext. 12", NULL, false},
    {"normalize national, region GB", normalize, "020 7946 0958", "GB", false},
    {"normalize 00 prefix, no region", normalize, "0044 20 7946 0958", NULL, false},
    {"normalize national, no region (dropped)", normalize, "213-373-4253", NULL, false},
    {"normalize invalid +1 (dropped)", normalize, "+1 213 373 425", NULL, false},
    {"candidate 213-373-4253, region US", candidate, "213-373-4253", "US", false},
    {"candidate 213-373-4253, no region", candidate, "213-373-4253", NULL, false},
    {"candidate 123-456-7890 (no), region US", candidate, "123-456-7890", "US", false},
    {"candidate 123-456-7890 (no), no region", candidate, "123-456-7890", NULL, false},
    {"candidate +44 20 7946 0958", candidate, "+44 20 7946 0958", NULL, false},
    {"pipeline event without user.phone", pipeline, NULL, NULL, false},
    {"pipeline event with user.phone", pipeline, NULL, NULL, true},
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_ns(const struct bench_case *c, long iterations, int runs)
{
    double *v = sg_xcalloc((size_t)runs, sizeof(double)), m;
    for (int r = 0; r < runs; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iterations; i++)
            c->fn(c->arg, c->region, c->flag);
        v[r] = (now_ns() - t0) / (double)iterations;
    }
    qsort(v, (size_t)runs, sizeof(double), cmp_double);
    m = v[runs / 2];
    free(v);
    return m;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < SG_ARRAY_SIZE(cases); i++)
            puts(cases[i].name);
        return 0;
    }
    long iterations = argc > 1 ? atol(argv[1]) : 20000;
    int runs = argc > 2 ? atoi(argv[2]) : 7;
    const char *only = argc > 3 ? argv[3] : NULL;
    char out[SG_PHONE_E164_CAP];
    if (iterations < 1 || runs < 1) {
        fprintf(stderr, "usage: phone_cost [ITERATIONS >= 1] [RUNS >= 1] [ONLY] | --list\n");
        return 2;
    }

    double t0 = now_ns();
    int rc = sg_normalize_phone("213-373-4253", "US", out, sizeof(out));
    printf("first call (loads libphonenumber's metadata, once per process): %.2f ms (rc %d)\n",
           (now_ns() - t0) / 1e6, rc);

    site.id = "bench";
    site.secret = (unsigned char *)"bench-secret-0123456789";
    site.secret_len = strlen((const char *)site.secret);
    site.consent.default_state = SG_CONSENT_DENIED;
    site.consent.honor_gpc = true;
    site.phone_region = "US";
    site.rules = sg_ruleset_load("rules/advanced-matching.json");
    if (!site.rules) {
        fprintf(stderr, "run from the source tree (rules/advanced-matching.json)\n");
        return 1;
    }
    events[0] = json_loads("{\"event\":\"Purchase\",\"event_id\":\"b1\",\"consent\":\"granted\","
                           "\"user\":{\"email\":\"jane@example.com\"},"
                           "\"page\":{\"url\":\"https://shop.example.com/thanks?utm_source=tt\"},"
                           "\"properties\":{\"value\":19.99,\"currency\":\"USD\"}}",
                           0, NULL);
    events[1] = json_deep_copy(events[0]);
    json_object_set_new(json_object_get(events[1], "user"), "phone", json_string("213-373-4253"));

    /* Warm-up: every case a few times (caches, the rule set's first use). */
    for (size_t i = 0; i < SG_ARRAY_SIZE(cases); i++)
        for (int k = 0; k < 10; k++)
            cases[i].fn(cases[i].arg, cases[i].region, cases[i].flag);

    printf("%ld calls per run, median of %d runs\n", iterations, runs);
    for (size_t i = 0; i < SG_ARRAY_SIZE(cases); i++)
        if (!only || strstr(cases[i].name, only))
            printf("%-44s %10.0f ns\n", cases[i].name, median_ns(&cases[i], iterations, runs));

    json_decref(events[0]);
    json_decref(events[1]);
    sg_ruleset_free(site.rules);
    sg_rules_thread_release();
    return 0;
}
