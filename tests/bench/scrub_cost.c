/*
 * scrub_cost - what scrubbing costs per event, and the worst case per field.
 *
 *   tests/bench/scrub_cost.sh     (builds, runs, counts instructions under callgrind)
 *   build/tests/bench_scrub_cost [events] [worst|phone]
 *
 * "Per event" scrubs the text fields of a representative pixel event with
 * the default rule set's detectors: the page URL and referrer (query
 * parameters with utm tags and a click id), a content name, a search string
 * and a free-text note. "Worst" scrubs 64 KB fields built to be hard for each
 * detector (thousands of phone-shaped runs, digit groups, '@' runs, base64,
 * nested percent-encoding, invalid UTF-8) and prints the time of each.
 */
#include "scrubgate/scrub.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const urls[] = {
    "https://shop.example.com/products/ceramic-mug-350?variant=44012345678901&utm_source=tiktok"
    "&utm_medium=paid_social&utm_campaign=bf-2026&ttclid=E.C.P.CvcBx3V0d2JhbmRvbXN0cmluZw",
    "https://www.google.com/search?q=ceramic+mug+white&hl=en",
};
static const char *const texts[] = {
    "Ceramic mug 350 ml, white",
    "white mug gift set",
    "Please gift-wrap it and deliver after 5 pm, the side door is open",
};
/* The same event, its note holding a phone number (each phone candidate costs a
 * libphonenumber check). */
static const char note_with_phone[] =
    "Please gift-wrap it, deliver after 5 pm, call 213-373-4253 if nobody answers";
static bool with_phone;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void one_event(struct sg_buf *out)
{
    struct sg_url_policy pol = {.spec = {.detectors = SG_DET_ALL}, .sensitive_params = true};
    unsigned hits;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        if (sg_scrub_url(&pol, urls[i], out, &hits) < 0)
            abort();
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (sg_scrub_text(&pol.spec, with_phone && i == 2 ? note_with_phone : texts[i], out,
                          &hits) < 0)
            abort();
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A 64 KB field of `unit` repeated. */
static char *field_of(const char *unit, size_t size)
{
    size_t n = strlen(unit);
    char *s = malloc(size + 1);
    for (size_t i = 0; i < size; i++)
        s[i] = unit[i % n];
    s[size] = '\0';
    return s;
}

static void worst(void)
{
    static const struct {
        const char *name, *unit;
    } cases[] = {
        {"phone runs, international", "+44 7911 123456, "},
        {"phone runs, national", "06 12 34 56 78; "},
        {"phone-shaped non-phones", "123 4567 89, "},
        {"one long run of digit groups", "1234 "},
        {"card-shaped runs", "4111 1111 1111 1112 "},
        {"IBAN-shaped runs", "DE00 3704 0044 0532 0130 00 "},
        {"'@' runs", "a@b@c.d@"},
        {"base64 text", "amFuZUBleGFtcGxlLmNvbQ "},
        {"nested percent-encoding", "%2525252540"},
        {"digits and dots", "1.2.3.4.5.6.7.8.9."},
        {"parenthesised groups", "(12)-"},
        {"full-width digits", "\xef\xbc\x94\xef\xbc\x91 "},
        {"HTML escapes", "&#52;&#49; "},
        {"invalid UTF-8", "\xff\xfe\xc3(\xe2\x82"},
    };
    const size_t size = SG_SCRUB_MAX_TEXT;
    struct sg_buf out;
    sg_buf_init(&out, 0);
    struct sg_url_policy pol = {.spec = {.detectors = SG_DET_ALL}, .sensitive_params = true};
    printf("worst case per %zu-byte field (ms, text / as a URL query value):\n", size);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *f = field_of(cases[i].unit, size);
        char *u = malloc(size + 40);
        snprintf(u, size + 40, "https://x.example/?q=%s", f);
        unsigned hits;
        double t0 = now_ns();
        int rc = sg_scrub_text(&pol.spec, f, &out, &hits);
        double t1 = now_ns();
        int rcu = sg_scrub_url(&pol, u, &out, &hits);
        double t2 = now_ns();
        printf("  %-32s %8.2f (%s) %8.2f (%s)\n", cases[i].name, (t1 - t0) / 1e6,
               rc == 0 ? "scrubbed" : "refused", (t2 - t1) / 1e6, rcu == 0 ? "scrubbed" : "refused");
        free(f);
        free(u);
    }
    sg_buf_release(&out);
}

/* The measured loop, a function of its own so callgrind can count it alone
 * (--toggle-collect=measured). */
__attribute__((noinline)) void measured(int events, struct sg_buf *out);
__attribute__((noinline)) void measured(int events, struct sg_buf *out)
{
    for (int i = 0; i < events; i++)
        one_event(out);
}

int main(int argc, char **argv)
{
    int events = argc > 1 ? atoi(argv[1]) : 20000;
    with_phone = argc > 2 && strcmp(argv[2], "phone") == 0;
    struct sg_buf out;
    sg_buf_init(&out, 0);
    if (sg_scrub_init() < 0)
        return 1;
    one_event(&out); /* warm: JIT, libphonenumber's metadata, thread buffers */
    double runs[5];
    for (int r = 0; r < 5; r++) {
        double t0 = now_ns();
        measured(events, &out);
        runs[r] = (now_ns() - t0) / events;
    }
    qsort(runs, 5, sizeof(runs[0]), cmp);
    printf("scrub per event%s: %.0f ns (median of 5 runs of %d events)\n",
           with_phone ? " (a phone number in its note)" : "", runs[2], events);
    if (argc > 2 && strcmp(argv[2], "worst") == 0)
        worst();
    sg_buf_release(&out);
    sg_scrub_thread_release();
    return 0;
}
