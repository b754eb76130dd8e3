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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SCRUB_MATCH_LIMIT 100000u
#define SCRUB_DEPTH_LIMIT 1000u
#define SCRATCH_MAX (4u * SG_SCRUB_MAX_TEXT) /* see SG_SCRUB_MAX_TEXT */

typedef bool validate_fn(const char *s, size_t len);

static bool luhn_ok(const char *s, size_t len);
static bool iban_ok(const char *s, size_t len);
static bool ipv6_ok(const char *s, size_t len);

static const struct {
    const char *name;
    const char *pattern;
    validate_fn *validate; /* NULL: the pattern alone decides */
} builtin[SG_DET__COUNT] = {
    /* email: local@domain.tld */
    [SG_DET_EMAIL] = {"email", "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}",
                      NULL},
    /* phone: E.164 (+ and 8-15 digits) or a grouped national number such as
     * (213) 373-4253, 213-373-4253, +44 20 7946 0958. Bare digit runs are not
     * phones: they are far more often order numbers and SKUs. */
    [SG_DET_PHONE] = {"phone",
                      ("(?<![\\w+])(?:\\+\\d{8,15}|(?:\\+\\d{1,3}[\\s.-]?)?"
                       "(?:\\(\\d{2,4}\\)[\\s.-]?|\\d{2,4}[\\s.-])\\d{3,4}[\\s.-]\\d{3,4})(?![\\w])"),
                      NULL},
    /* card: an issuer digit 2-6, then 15-16 digits in a bare run (13-14 digit runs are far
     * more often EANs and product ids), or 13-19 digits grouped by spaces or dashes; Luhn */
    [SG_DET_CARD] = {"card",
                     ("(?<![\\d-])(?:[2-6]\\d{14,15}|[2-6]\\d{3}(?:[ -]\\d{3,6}){2,4})"
                      "(?![\\d]|-\\d)"),
                     luhn_ok},
    /* IBAN: country, check digits, 11-30 alphanumerics, optionally in groups of 4; mod-97 */
    [SG_DET_IBAN] = {"iban", "(?<![A-Za-z0-9])[A-Z]{2}\\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])",
                     iban_ok},
    /* US SSN, grouped: never area 000, 666 or 9xx, group 00 or serial 0000 */
    [SG_DET_SSN] = {"ssn",
                    "(?<![\\d-])(?!000|666|9\\d\\d)\\d{3}([- ])(?!00)\\d{2}\\1(?!0000)\\d{4}(?![\\d-])",
                    NULL},
    /* IPv4 dotted quads and IPv6 literals (the latter confirmed by inet_pton) */
    [SG_DET_IP] = {"ip",
                   ("(?<![\\w.])(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}"
                    "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?![\\w.])"
                    "|(?<![\\w:])(?=[0-9A-Fa-f:.]*::|(?:[0-9A-Fa-f]{1,4}:){7})"
                    "[0-9A-Fa-f:.]{3,45}(?![\\w:])"),
                   ipv6_ok},
    /* JWTs (three base64url parts, the first two JSON objects) and bearer credentials */
    [SG_DET_TOKEN] = {"token",
                      ("eyJ[A-Za-z0-9_-]{5,}\\.eyJ[A-Za-z0-9_-]{5,}\\.[A-Za-z0-9_-]{10,}"
                       "|(?i:bearer)\\s+[A-Za-z0-9._~+/-]{16,}=*"),
                      NULL},
};

/* Crawlers, monitors and headless browsers, by user agent token. */
static const char bot_pattern[] =
    "(?i)bot\\b|bot/|crawl|spider|slurp|headless|phantomjs|lighthouse|pingdom|uptime|"
    "monitor|curl/|wget/|python-requests|go-http-client|java/|okhttp|facebookexternalhit|"
    "bingpreview|preview/";

struct sg_pattern {
    pcre2_code *code;
};

static pcre2_code *codes[SG_DET__COUNT];
static pcre2_code *bot_code;
static pcre2_match_context *mctx;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -1;

static _Thread_local pcre2_match_data *tl_md;
static _Thread_local struct sg_buf tl_scratch[3];
static _Thread_local bool tl_ready;

const char *sg_detector_name(enum sg_detector d)
{
    return (unsigned)d < SG_DET__COUNT ? builtin[d].name : "?";
}

int sg_detector_from_name(const char *name)
{
    for (int i = 0; i < SG_DET__COUNT; i++)
        if (strcmp(builtin[i].name, name) == 0)
            return i;
    return -1;
}

static pcre2_code *compile(const char *re, char *err, size_t errlen)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &errcode,
                                  &erroff, NULL);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        snprintf(err, errlen, "at offset %zu: %s", (size_t)erroff, (const char *)msg);
        return NULL;
    }
    /* JIT is an optimization: without it (an unsupported CPU) matching still works. */
    pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
    return c;
}

static void do_init(void)
{
    char err[200];
    mctx = pcre2_match_context_create(NULL);
    if (!mctx)
        return;
    pcre2_set_match_limit(mctx, SCRUB_MATCH_LIMIT);
    pcre2_set_depth_limit(mctx, SCRUB_DEPTH_LIMIT);
    for (int i = 0; i < SG_DET__COUNT; i++)
        if (!(codes[i] = compile(builtin[i].pattern, err, sizeof(err)))) {
            sg_error("scrub: detector %s does not compile %s", builtin[i].name, err);
            return;
        }
    if (!(bot_code = compile(bot_pattern, err, sizeof(err)))) {
        sg_error("scrub: the bot pattern does not compile %s", err);
        return;
    }
    init_rc = 0;
}

int sg_scrub_init(void)
{
    pthread_once(&init_once, do_init);
    return init_rc;
}

struct sg_pattern *sg_pattern_new(const char *regex, char *err, size_t errlen)
{
    if (sg_scrub_init() < 0) {
        snprintf(err, errlen, "detectors unavailable");
        return NULL;
    }
    pcre2_code *c = compile(regex, err, errlen);
    if (!c)
        return NULL;
    struct sg_pattern *p = sg_xcalloc(1, sizeof(*p));
    p->code = c;
    return p;
}

void sg_pattern_free(struct sg_pattern *p)
{
    if (!p)
        return;
    pcre2_code_free(p->code);
    free(p);
}

static int thread_ready(void)
{
    if (tl_ready)
        return 0;
    if (sg_scrub_init() < 0)
        return -1;
    tl_md = pcre2_match_data_create(4, NULL);
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

/* ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1. */
static bool iban_ok(const char *s, size_t len)
{
    char c[40];
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ') {
            if (n == sizeof(c))
                return false;
            c[n++] = s[i];
        }
    if (n < 15 || n > 34)
        return false;
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        char ch = c[(k + 4) % n];
        if (ch >= '0' && ch <= '9')
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else if (ch >= 'A' && ch <= 'Z')
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
        else
            return false;
    }
    return rem == 1;
}

static bool ipv6_ok(const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    if (memchr(s, ':', len) == NULL)
        return true; /* the IPv4 alternative: the pattern already checked each octet */
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1;
}

/*
 * The next hit of code (validated by fn) in s[from..len). 1 with
 * [*start,*end), 0 for none, -1 when PCRE2 gave up (limit) or failed.
 */
static int next_match(const pcre2_code *code, validate_fn *fn, const char *s, size_t len,
                      size_t from, size_t *start, size_t *end)
{
    while (from <= len) {
        int rc = pcre2_match(code, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, tl_md, mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc < 0)
            return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tl_md);
        if (fn && !fn(s + ov[0], ov[1] - ov[0])) {
            from = ov[0] + 1;
            continue;
        }
        *start = ov[0];
        *end = ov[1];
        return 1;
    }
    return 0;
}

/*
 * The order detectors run in: the most specific first, so that a broad one
 * (a phone number is any grouped digits) cannot take part of a longer
 * identifier (an IBAN, a card) and leave the rest of it behind.
 */
static const int run_order[SG_DET__COUNT] = {SG_DET_TOKEN, SG_DET_EMAIL, SG_DET_IBAN, SG_DET_CARD,
                                             SG_DET_SSN,   SG_DET_IP,    SG_DET_PHONE};

/* Matchers of a spec, in run order; i == SG_DET__COUNT is the site pattern. */
static bool matcher(const struct sg_scrub_spec *spec, int i, const pcre2_code **code,
                    validate_fn **fn)
{
    if (i < SG_DET__COUNT) {
        int d = run_order[i];
        if (!(spec->detectors & (1u << d)))
            return false;
        *code = codes[d];
        *fn = builtin[d].validate;
        return true;
    }
    if (!spec->extra)
        return false;
    *code = spec->extra->code;
    *fn = NULL;
    return true;
}

/* Does s hold a hit of the spec? 1, 0 or -1. */
static int detect_any(const struct sg_scrub_spec *spec, const char *s, size_t len)
{
    size_t a, b;
    const pcre2_code *code;
    validate_fn *fn;
    for (int i = 0; i <= SG_DET__COUNT; i++) {
        if (!matcher(spec, i, &code, &fn))
            continue;
        int rc = next_match(code, fn, s, len, 0, &a, &b);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sg_scrub_is_bot(const char *user_agent)
{
    size_t a, b;
    if (!user_agent || thread_ready() < 0)
        return user_agent ? -1 : 0;
    return next_match(bot_code, NULL, user_agent, strlen(user_agent), 0, &a, &b);
}

/* One pass of every matcher of spec over cur; the result ends in *cur. */
static int scrub_pass(const struct sg_scrub_spec *spec, struct sg_buf **cur, struct sg_buf **next,
                      unsigned *hits)
{
    const pcre2_code *code;
    validate_fn *fn;
    for (int i = 0; i <= SG_DET__COUNT; i++) {
        if (!matcher(spec, i, &code, &fn))
            continue;
        size_t pos = 0, a, b;
        int rc;
        bool changed = false;
        sg_buf_reset(*next);
        while ((rc = next_match(code, fn, (*cur)->data, (*cur)->len, pos, &a, &b)) == 1) {
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

int sg_scrub_text(const struct sg_scrub_spec *spec, const char *in, struct sg_buf *out,
                  unsigned *hits)
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
        if (pass == SCRUB_MAX_PASSES || scrub_pass(spec, &cur, &next, &found) < 0)
            return -1;
        *hits += found;
        if (!found)
            break;
    }
    sg_buf_reset(out);
    return sg_buf_add(out, cur->data, cur->len);
}

int sg_scrub_detect(const struct sg_scrub_spec *spec, const char *s, size_t len)
{
    if (thread_ready() < 0)
        return -1;
    return detect_any(spec, s, len);
}

int sg_percent_decode(const char *s, size_t len, bool plus, struct sg_buf *out)
{
    sg_buf_reset(out);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int hi = i + 2 < len ? sg_hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < len ? sg_hexval((unsigned char)s[i + 2]) : -1;
        if (c == '%' && hi >= 0 && lo >= 0) {
            c = (char)(hi * 16 + lo);
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
    int rc = detect_any(&pol->spec, dec->data, dec->len); /* names carry data too */
    if (rc != 0 || !eq)
        return rc;
    if (sg_percent_decode(eq + 1, len - nlen - 1, true, dec) < 0)
        return -1;
    return detect_any(&pol->spec, dec->data, dec->len);
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
        int rc = detect_any(&pol->spec, dec->data, dec->len);
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
        verdict = detect_any(&pol->spec, dec->data, dec->len);
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
