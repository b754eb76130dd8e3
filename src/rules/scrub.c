/*
 * scrub.c - built-in detectors (PCRE2, JIT) and the URL / free-text scrubber.
 *
 * Patterns are compiled once per process; matching uses per-thread match
 * data and scratch buffers, so the hot path does not allocate once warm.
 * Every match runs under a match and depth limit; hitting one is an error
 * that the caller turns into "do not send", never into "send unscrubbed".
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/log.h"
#include "scrubgate/scrub.h"

#include <pcre2.h>
#include <pthread.h>
#include <string.h>

#define SCRUB_MATCH_LIMIT 100000u
#define SCRUB_DEPTH_LIMIT 1000u
#define SCRATCH_MAX (256u * 1024u)

static const char *const detector_names[SG_DET__COUNT] = {"email", "phone", "card"};

static const char *const detector_patterns[SG_DET__COUNT] = {
    /* email: local@domain.tld */
    "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}",
    /* phone: E.164 (+ and 8-15 digits) or a grouped national number such as
     * (213) 373-4253, 213-373-4253, +44 20 7946 0958. Bare digit runs are not
     * phones: they are far more often order numbers and SKUs. */
    ("(?<![\\w+])(?:\\+\\d{8,15}|(?:\\+\\d{1,3}[\\s.-]?)?(?:\\(\\d{2,4}\\)[\\s.-]?|\\d{2,4}[\\s.-])"
     "\\d{3,4}[\\s.-]\\d{3,4})(?![\\w])"),
    /* card: 13-19 digits, optionally grouped by spaces or dashes; Luhn checked below */
    "(?<!\\d)(?:\\d[ -]?){12,18}\\d(?!\\d)",
};

static pcre2_code *codes[SG_DET__COUNT];
static pcre2_match_context *mctx;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -1;

static _Thread_local pcre2_match_data *tl_md;
static _Thread_local struct sg_buf tl_scratch[3];
static _Thread_local bool tl_ready;

const char *sg_detector_name(enum sg_detector d)
{
    return (unsigned)d < SG_DET__COUNT ? detector_names[d] : "?";
}

int sg_detector_from_name(const char *name)
{
    for (int i = 0; i < SG_DET__COUNT; i++)
        if (strcmp(detector_names[i], name) == 0)
            return i;
    return -1;
}

static void do_init(void)
{
    int errcode;
    PCRE2_SIZE erroff;
    mctx = pcre2_match_context_create(NULL);
    if (!mctx)
        return;
    pcre2_set_match_limit(mctx, SCRUB_MATCH_LIMIT);
    pcre2_set_depth_limit(mctx, SCRUB_DEPTH_LIMIT);
    for (int i = 0; i < SG_DET__COUNT; i++) {
        codes[i] = pcre2_compile((PCRE2_SPTR)detector_patterns[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_NO_UTF_CHECK, &errcode, &erroff, NULL);
        if (!codes[i]) {
            sg_error("scrub: detector %s does not compile at %zu", detector_names[i],
                     (size_t)erroff);
            return;
        }
        /* JIT is an optimization: without it (unsupported CPU) matching still works. */
        pcre2_jit_compile(codes[i], PCRE2_JIT_COMPLETE);
    }
    init_rc = 0;
}

int sg_scrub_init(void)
{
    pthread_once(&init_once, do_init);
    return init_rc;
}

static int thread_ready(void)
{
    if (tl_ready)
        return 0;
    if (sg_scrub_init() < 0)
        return -1;
    tl_md = pcre2_match_data_create(2, NULL);
    if (!tl_md)
        return -1;
    for (size_t i = 0; i < SG_ARRAY_SIZE(tl_scratch); i++)
        sg_buf_init(&tl_scratch[i], SCRATCH_MAX);
    tl_ready = true;
    return 0;
}

void sg_scrub_thread_release(void)
{
    if (!tl_ready)
        return;
    pcre2_match_data_free(tl_md);
    tl_md = NULL;
    for (size_t i = 0; i < SG_ARRAY_SIZE(tl_scratch); i++)
        sg_buf_release(&tl_scratch[i]);
    tl_ready = false;
}

static bool luhn_ok(const char *s, size_t len)
{
    int sum = 0, n = 0;
    for (size_t i = len; i-- > 0;) {
        if (s[i] < '0' || s[i] > '9')
            continue;
        int d = s[i] - '0';
        if (n++ % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return n >= 13 && n <= 19 && sum % 10 == 0;
}

/*
 * Find the next hit of detector d in s[from..len). 1 with [*start,*end),
 * 0 for none, -1 when PCRE2 gave up (limit) or failed.
 */
static int next_hit(int d, const char *s, size_t len, size_t from, size_t *start, size_t *end)
{
    while (from <= len) {
        int rc = pcre2_match(codes[d], (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, tl_md, mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc < 0)
            return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tl_md);
        if (d == SG_DET_CARD && !luhn_ok(s + ov[0], ov[1] - ov[0])) {
            from = ov[0] + 1;
            continue;
        }
        *start = ov[0];
        *end = ov[1];
        return 1;
    }
    return 0;
}

/* Does s hold a hit of any detector in mask? 1, 0 or -1. */
static int detect_any(unsigned mask, const char *s, size_t len)
{
    size_t a, b;
    for (int d = 0; d < SG_DET__COUNT; d++) {
        if (!(mask & (1u << d)))
            continue;
        int rc = next_hit(d, s, len, 0, &a, &b);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One pass of every detector in mask over cur; the result ends in *cur. */
static int scrub_pass(unsigned detectors, struct sg_buf **cur, struct sg_buf **next,
                      unsigned *hits)
{
    for (int d = 0; d < SG_DET__COUNT; d++) {
        if (!(detectors & (1u << d)))
            continue;
        size_t pos = 0, a, b;
        int rc;
        bool changed = false;
        sg_buf_reset(*next);
        while ((rc = next_hit(d, (*cur)->data, (*cur)->len, pos, &a, &b)) == 1) {
            if (sg_buf_add(*next, (*cur)->data + pos, a - pos) < 0 ||
                sg_buf_adds(*next, "[redacted]") < 0)
                return -1;
            (*hits)++;
            changed = true;
            pos = b > a ? b : b + 1;
            if (pos > (*cur)->len)
                break;
        }
        if (rc < 0)
            return -1;
        if (changed) {
            if (pos < (*cur)->len && sg_buf_add(*next, (*cur)->data + pos, (*cur)->len - pos) < 0)
                return -1;
            struct sg_buf *t = *cur;
            *cur = *next;
            *next = t;
        }
    }
    return 0;
}

/*
 * A redaction changes its neighbourhood (digits next to a removed card
 * number can now read as a phone number), so passes repeat until one finds
 * nothing. Text that still changes after a few passes is refused.
 */
#define SCRUB_MAX_PASSES 4

int sg_scrub_text(unsigned detectors, const char *in, struct sg_buf *out, unsigned *hits)
{
    *hits = 0;
    if (thread_ready() < 0)
        return -1;
    struct sg_buf *cur = &tl_scratch[0], *next = &tl_scratch[1];
    sg_buf_reset(cur);
    if (sg_buf_adds(cur, in) < 0)
        return -1;
    for (int pass = 0;; pass++) {
        unsigned found = 0;
        if (pass == SCRUB_MAX_PASSES || scrub_pass(detectors, &cur, &next, &found) < 0)
            return -1;
        *hits += found;
        if (!found)
            break;
    }
    sg_buf_reset(out);
    return sg_buf_add(out, cur->data, cur->len);
}

/* Does s hold a hit of any detector in mask? 1, 0 or -1 (sg_scrub_detect's core). */
int sg_scrub_detect(unsigned detectors, const char *s, size_t len)
{
    if (thread_ready() < 0)
        return -1;
    return detect_any(detectors, s, len);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sg_percent_decode(const char *s, size_t len, bool plus, struct sg_buf *out)
{
    sg_buf_reset(out);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (plus && c == '+') {
            c = ' ';
        }
        if (sg_buf_addc(out, c) < 0)
            return -1;
    }
    sg_buf_cstr(out);
    return 0;
}

/*
 * Sensitive query parameter names: split the name into alphanumeric tokens;
 * a token that is, or ends with, one of these words marks the parameter.
 * Matching on tokens keeps "hotel" and "utm_content" while catching
 * "user_email", "customer[phone]", "firstName" and "access_token".
 */
static const char *const sensitive_words[] = {
    "email", "mail", "phone", "tel", "mobile", "msisdn", "name", "address", "addr", "street",
    "password", "passwd", "pwd", "pass", "token", "secret", "auth", "ssn", "dob", "birthdate",
    "birthday", "zip", "postcode", "postal", "iban", "card", "cc", "cvv", "session", "sid",
};

bool sg_scrub_param_name_sensitive(const char *name, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && !((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                            (name[i] >= '0' && name[i] <= '9')))
            i++;
        size_t start = i;
        char tok[64];
        size_t n = 0;
        while (i < len && ((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                           (name[i] >= '0' && name[i] <= '9'))) {
            if (n < sizeof(tok) - 1)
                tok[n++] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
            i++;
        }
        tok[n] = '\0';
        if (i == start)
            break;
        for (size_t w = 0; w < SG_ARRAY_SIZE(sensitive_words); w++) {
            size_t wl = strlen(sensitive_words[w]);
            /* Short words only as whole tokens ("tel" must not catch "hotel"). */
            if (strcmp(tok, sensitive_words[w]) == 0)
                return true;
            if (wl >= 4 && n > wl && strcmp(tok + n - wl, sensitive_words[w]) == 0)
                return true;
        }
    }
    return false;
}

static bool name_stripped(const struct sg_url_policy *pol, const char *name, size_t len)
{
    for (size_t i = 0; i < pol->n_strip; i++)
        if (strlen(pol->strip[i]) == len && sg_strncaseeq(pol->strip[i], name, len))
            return true;
    return false;
}

/* Query-like text (a=b&c=d): 1 when any pair must go, 0 when none, -1 on error. */
static int query_pair_verdict(const struct sg_url_policy *pol, const char *p, size_t len,
                              struct sg_buf *dec)
{
    const char *eq = memchr(p, '=', len);
    size_t nlen = eq ? (size_t)(eq - p) : len;
    if (sg_percent_decode(p, nlen, true, dec) < 0)
        return -1;
    if ((pol->sensitive_params && sg_scrub_param_name_sensitive(dec->data, dec->len)) ||
        name_stripped(pol, dec->data, dec->len))
        return 1;
    int rc = detect_any(pol->detectors, dec->data, dec->len); /* names carry data too */
    if (rc != 0 || !eq)
        return rc;
    if (sg_percent_decode(eq + 1, len - nlen - 1, true, dec) < 0)
        return -1;
    return detect_any(pol->detectors, dec->data, dec->len);
}

int sg_scrub_url(const struct sg_url_policy *pol, const char *url, struct sg_buf *out,
                 unsigned *hits)
{
    *hits = 0;
    if (thread_ready() < 0)
        return -1;
    struct sg_buf *dec = &tl_scratch[2];
    size_t len = strlen(url);
    const char *frag = memchr(url, '#', len);
    size_t before_frag = frag ? (size_t)(frag - url) : len;
    const char *query = memchr(url, '?', before_frag);
    size_t path_end = query ? (size_t)(query - url) : before_frag;
    size_t pos = 0;

    sg_buf_reset(out);
    /* scheme://authority: userinfo (user:password@) never leaves. */
    const char *scheme_end = strstr(url, "://");
    /* Only a real scheme (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / ".")) starts an
     * authority; anything else is scrubbed as path text. */
    if (scheme_end && (scheme_end == url || !((url[0] | 32) >= 'a' && (url[0] | 32) <= 'z') ||
                       strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") !=
                           (size_t)(scheme_end - url)))
        scheme_end = NULL;
    if (scheme_end && (size_t)(scheme_end - url) < path_end) {
        size_t auth_start = (size_t)(scheme_end - url) + 3;
        size_t auth_end = auth_start;
        while (auth_end < path_end && url[auth_end] != '/')
            auth_end++;
        const char *at = NULL;
        for (size_t i = auth_start; i < auth_end; i++)
            if (url[i] == '@')
                at = url + i;
        if (sg_buf_add(out, url, auth_start) < 0)
            return -1;
        if (at) {
            (*hits)++;
            auth_start = (size_t)(at - url) + 1;
        }
        if (sg_buf_add(out, url + auth_start, auth_end - auth_start) < 0)
            return -1;
        pos = auth_end;
    }
    /* Path segments. */
    while (pos < path_end) {
        size_t seg_end = pos;
        if (url[seg_end] == '/') {
            if (sg_buf_addc(out, '/') < 0)
                return -1;
            pos++;
            seg_end++;
        }
        while (seg_end < path_end && url[seg_end] != '/')
            seg_end++;
        if (seg_end == pos)
            continue;
        if (sg_percent_decode(url + pos, seg_end - pos, false, dec) < 0)
            return -1;
        int rc = detect_any(pol->detectors, dec->data, dec->len);
        if (rc < 0)
            return -1;
        if (rc) {
            (*hits)++;
            if (sg_buf_adds(out, "redacted") < 0)
                return -1;
        } else if (sg_buf_add(out, url + pos, seg_end - pos) < 0) {
            return -1;
        }
        pos = seg_end;
    }
    /* Query: keep the pairs that pass, in order, with their original encoding. */
    if (query) {
        const char *p = query + 1, *end = url + before_frag;
        bool first = true;
        while (p <= end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            if (!amp)
                amp = end;
            if (amp > p) {
                int rc = query_pair_verdict(pol, p, (size_t)(amp - p), dec);
                if (rc < 0)
                    return -1;
                if (rc) {
                    (*hits)++;
                } else {
                    if (sg_buf_addc(out, first ? '?' : '&') < 0 ||
                        sg_buf_add(out, p, (size_t)(amp - p)) < 0)
                        return -1;
                    first = false;
                }
            }
            p = amp + 1;
        }
    }
    /* Fragment: kept whole or dropped whole (it may carry OAuth tokens as pairs). */
    if (frag) {
        const char *f = frag + 1, *end = url + len;
        int verdict = 0;
        if (sg_percent_decode(f, (size_t)(end - f), false, dec) < 0)
            return -1;
        verdict = detect_any(pol->detectors, dec->data, dec->len);
        for (const char *p = f; verdict == 0 && p < end;) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            if (!amp)
                amp = end;
            if (memchr(p, '=', (size_t)(amp - p)))
                verdict = query_pair_verdict(pol, p, (size_t)(amp - p), dec);
            p = amp + 1;
        }
        if (verdict < 0)
            return -1;
        if (verdict)
            (*hits)++;
        else if (sg_buf_add(out, frag, (size_t)(end - frag)) < 0)
            return -1;
    }
    sg_buf_cstr(out);
    return 0;
}
