/*
 * Detection measured on a corpus built from public test data
 * (tests/data/pii-corpus, README.md there): every string of pii.tsv is put
 * in free text and in URLs, in the shapes sites send (as written, in a
 * sentence, percent-encoded, encoded twice, base64url), and must not survive
 * the default scrub; every string of ordinary.txt, in the same shapes, must
 * come through unchanged. The table printed is the one docs/RULES.md
 * publishes; the bounds below are the targets the detectors are held to.
 *
 * SG_CORPUS_VERBOSE=1 prints each miss and each false positive.
 */
#include "testutil.h"

#include "scrubgate/scrub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORPUS "tests/data/pii-corpus/"

static bool verbose;

/* Percent-encode everything but RFC 3986 unreserved characters; space as '+' when plus. */
static void pct(const char *in, bool plus, struct sg_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    sg_buf_reset(out);
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            sg_buf_addc(out, (char)*p);
        } else if (plus && *p == ' ') {
            sg_buf_addc(out, '+');
        } else {
            sg_buf_addc(out, '%');
            sg_buf_addc(out, hex[*p >> 4]);
            sg_buf_addc(out, hex[*p & 15]);
        }
    }
    sg_buf_cstr(out);
}

static void b64url(const char *in, struct sg_buf *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = (const unsigned char *)in;
    size_t n = strlen(in);
    sg_buf_reset(out);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        sg_buf_addc(out, al[v >> 18 & 63]);
        sg_buf_addc(out, al[v >> 12 & 63]);
        if (i + 1 < n)
            sg_buf_addc(out, al[v >> 6 & 63]);
        if (i + 2 < n)
            sg_buf_addc(out, al[v & 63]);
    }
    sg_buf_cstr(out);
}

/* Letters and digits only, lower-cased: what identifies a value however it is spaced. */
static void core(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 1 < cap; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || *p >= 0x80)
            out[n++] = (char)*p;
        else if (*p >= 'A' && *p <= 'Z')
            out[n++] = (char)(*p + 32);
    out[n] = '\0';
}

enum { SHAPE_TEXT_BARE, SHAPE_TEXT_SENTENCE, SHAPE_TEXT_PCT, N_TEXT,
       SHAPE_URL_VALUE = N_TEXT, SHAPE_URL_SENTENCE, SHAPE_URL_PATH, SHAPE_URL_TWICE,
       SHAPE_URL_B64, N_SHAPES };

static const char *const shape_names[N_SHAPES] = {
    "text", "text: in a sentence", "text: percent-encoded", "url: ?q=value",
    "url: ?q=in+a+sentence", "url: /path/value/", "url: encoded twice", "url: base64url value"};

/*
 * Put value in shape s: into in (what is scrubbed) and into token (what must
 * not survive, besides the value itself).
 */
static bool is_url(int s)
{
    return s >= N_TEXT;
}

static void render(int s, const char *value, struct sg_buf *in, struct sg_buf *token,
                   struct sg_buf *tmp)
{
    sg_buf_reset(in);
    sg_buf_reset(token);
    switch (s) {
    case SHAPE_TEXT_BARE:
        sg_buf_adds(token, value);
        sg_buf_adds(in, value);
        break;
    case SHAPE_TEXT_SENTENCE:
        sg_buf_adds(token, value);
        sg_buf_printf(in, "Please reach me at %s.", value);
        break;
    case SHAPE_TEXT_PCT:
        pct(value, false, token);
        sg_buf_printf(in, "ref %s ok", token->data);
        break;
    case SHAPE_URL_VALUE:
        pct(value, true, token);
        sg_buf_printf(in, "https://shop.example.com/search?q=%s&page=2", token->data);
        break;
    case SHAPE_URL_SENTENCE:
        sg_buf_reset(tmp);
        sg_buf_printf(tmp, "call me at %s", value);
        pct(value, true, token);
        pct(tmp->data, true, tmp);
        sg_buf_printf(in, "https://shop.example.com/contact?msg=%s", tmp->data);
        break;
    case SHAPE_URL_PATH:
        pct(value, false, token);
        sg_buf_printf(in, "https://shop.example.com/account/%s/orders", token->data);
        break;
    case SHAPE_URL_TWICE:
        pct(value, false, tmp);
        pct(tmp->data, false, token);
        sg_buf_printf(in, "https://shop.example.com/r?next=%s", token->data);
        break;
    case SHAPE_URL_B64:
        b64url(value, token);
        sg_buf_printf(in, "https://shop.example.com/r?u=%s", token->data);
        break;
    }
    sg_buf_cstr(in);
    sg_buf_cstr(token);
}

static int scrub(int s, const char *region, const char *in, struct sg_buf *out)
{
    unsigned hits;
    struct sg_url_policy pol = {{SG_DET_ALL, NULL, region}, true, NULL, 0};
    return is_url(s) ? sg_scrub_url(&pol, in, out, &hits) : sg_scrub_text(&pol.spec, in, out, &hits);
}

struct tally {
    unsigned n[2], bad[2]; /* [0] text shapes, [1] URL shapes */
};

/* Was the value caught in this shape? Neither it nor its encoded token may survive. */
static bool caught(const char *value, const char *token, const char *out)
{
    char cv[256], co[8192];
    core(value, cv, sizeof(cv));
    core(out, co, sizeof(co));
    if (strstr(out, token) || strstr(out, value))
        return false;
    return strlen(cv) < 4 || strstr(co, cv) == NULL;
}

/* The buffers one measurement uses. */
struct bufs {
    struct sg_buf in, out, token, tmp;
};

static FILE *measure_start(const char *file, struct bufs *b, struct tally *t)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    sg_buf_init(&b->in, 0);
    sg_buf_init(&b->out, 0);
    sg_buf_init(&b->token, 0);
    sg_buf_init(&b->tmp, 0);
    memset(t, 0, sizeof(*t));
    return f;
}

static void measure_end(FILE *f, struct bufs *b)
{
    fclose(f);
    sg_buf_release(&b->in);
    sg_buf_release(&b->out);
    sg_buf_release(&b->token);
    sg_buf_release(&b->tmp);
}

static void measure_pii(const char *type, const char *region_mode, struct tally *t)
{
    char line[1024];
    struct bufs b;
    FILE *f = measure_start(CORPUS "pii.tsv", &b, t);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#')
            continue;
        char *region = strchr(line, '\t');
        assert_non_null(region);
        *region++ = '\0';
        char *value = strchr(region, '\t');
        assert_non_null(value);
        *value++ = '\0';
        if (strcmp(line, type) != 0)
            continue;
        const char *use = strcmp(region_mode, "own") == 0 && strcmp(region, "-") != 0 ? region : NULL;
        for (int s = 0; s < N_SHAPES; s++) {
            render(s, value, &b.in, &b.token, &b.tmp);
            assert_int_equal(scrub(s, use, b.in.data, &b.out), 0);
            bool ok = caught(value, b.token.data, b.out.data);
            t->n[is_url(s)]++;
            if (!ok) {
                t->bad[is_url(s)]++;
                if (verbose)
                    print_message("  missed %s (%s, %s): %s -> %s\n", type, shape_names[s],
                                  use ? use : "no region", b.in.data, b.out.data);
            }
        }
    }
    measure_end(f, &b);
}

static void measure_ordinary(struct tally *t)
{
    char line[1024];
    struct bufs b;
    FILE *f = measure_start(CORPUS "ordinary.txt", &b, t);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || !line[0])
            continue;
        for (int s = 0; s < N_SHAPES; s++) {
            render(s, line, &b.in, &b.token, &b.tmp);
            assert_int_equal(scrub(s, NULL, b.in.data, &b.out), 0);
            t->n[is_url(s)]++;
            if (strcmp(b.in.data, b.out.data) != 0) {
                t->bad[is_url(s)]++;
                if (verbose)
                    print_message("  altered (%s): %s -> %s\n", shape_names[s], b.in.data,
                                  b.out.data);
            }
        }
    }
    measure_end(f, &b);
}

static double pct_of(unsigned a, unsigned n)
{
    return n ? 100.0 * a / n : 0.0;
}

static void corpus_recall_and_alteration(void **state)
{
    static const struct {
        const char *type, *region_mode, *label;
        bool held; /* held to the 98% target */
    } rows[] = {
        {"email", "none", "email", true},
        {"phone", "none", "phone, international (+, 00)", true},
        {"phone-national", "own", "phone, national, with the site's phone_region", true},
        {"phone-national", "none", "phone, national, no phone_region (informational)", false},
        {"card", "none", "payment card", true},
        {"iban", "none", "IBAN", true},
        {"ssn", "none", "US SSN / ITIN", true},
        {"ip", "none", "IP address", true},
    };
    unsigned short_of = 0; /* rows under the recall target; all are printed first */
    (void)state;
    verbose = getenv("SG_CORPUS_VERBOSE") != NULL;
    print_message("| type | strings x shapes | recall in text | recall in URLs |\n");
    print_message("|---|---|---|---|\n");
    for (size_t i = 0; i < SG_ARRAY_SIZE(rows); i++) {
        struct tally t;
        measure_pii(rows[i].type, rows[i].region_mode, &t);
        double rt = 100.0 - pct_of(t.bad[0], t.n[0]), ru = 100.0 - pct_of(t.bad[1], t.n[1]);
        print_message("| %s | %u | %.1f%% | %.1f%% |\n", rows[i].label, t.n[0] + t.n[1], rt, ru);
        assert_true(t.n[0] > 0 && t.n[1] > 0);
        if (rows[i].held && (rt < 98.0 || ru < 98.0))
            short_of++;
    }
    struct tally o;
    measure_ordinary(&o);
    double at = pct_of(o.bad[0], o.n[0]), au = pct_of(o.bad[1], o.n[1]);
    print_message("| ordinary strings altered | %u | %.1f%% | %.1f%% |\n", o.n[0] + o.n[1], at, au);
    assert_int_equal(short_of, 0);
    assert_true(o.n[0] >= 900);
    assert_true(at <= 2.0);
    assert_true(au <= 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_recall_and_alteration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
