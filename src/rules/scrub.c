/*
 * scrub.c - built-in detectors (PCRE2, JIT) and the URL / free-text scrubber.
 *
 * Patterns are compiled once per process; matching uses per-thread match
 * data and scratch buffers, so the hot path does not allocate once warm.
 * Every match runs under a match and depth limit; hitting one is an error
 * that the caller turns into "do not send", never into "send unscrubbed".
 *
 * A pattern finds candidates; a validator decides (Luhn, mod-97 with the
 * registered length, SSN ranges, inet_pton, libphonenumber through phone.h).
 * Besides the text as written, the scrubber scans what it decodes to
 * (decode.c: percent-encoding, escapes, base64, look-alike characters) and
 * removes the word or parameter that held the hit. docs/RULES.md describes
 * each detector and publishes what they catch on public test data.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/log.h"
#include "scrubgate/scrub.h"
#include "scrubgate/decode.h"
#include "scrubgate/phone.h"

#include <pcre2.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRUB_MATCH_LIMIT 100000u
#define SCRUB_DEPTH_LIMIT 1000u
#define SCRATCH_MAX (4u * SG_SCRUB_MAX_TEXT) /* see SG_SCRUB_MAX_TEXT */
/*
 * Phone candidates that reach libphonenumber in one field (each costs tens of
 * microseconds, up to a few hundred when no region decides it). Past this the
 * remaining candidates of the field are removed without asking: the time per
 * field stays bounded, and a detector that cannot decide does not leak.
 */
#define PHONE_CHECKS_MAX 24u

/*
 * A validator looks at a pattern's hit [*a, *b) in s[0, len): 1 to keep it
 * (it may narrow the span, e.g. to the card inside a longer run of digit
 * groups), 0 to reject it, -1 on an internal failure.
 */
typedef int validate_fn(const char *s, size_t len, size_t *a, size_t *b,
                        const struct sg_scrub_spec *spec);

static validate_fn phone_ok, card_ok, iban_ok, ssn_ok, ip_ok;

/* Any code point outside ASCII (patterns are compiled in UTF mode). */
#define NONASCII "\\x{80}-\\x{10ffff}"
/* A phone number's group, and what may join two. */
#define PHONE_ITEM "(?:\\(\\d++(?:[ -]\\d++)?\\)|\\d++)"
#define PHONE_SEP "(?:[./-]| - | {1,3})"

static const struct {
    const char *name;
    const char *pattern;
    validate_fn *validate; /* NULL: the pattern alone decides */
} builtin[SG_DET__COUNT] = {
    /* email: local@domain.tld, internationalized (UTF-8 local parts and domains, punycode) */
    [SG_DET_EMAIL] = {"email",
                      ("[A-Za-z0-9._%+'!#$&*=?^`{|}~" NONASCII "-]+@[A-Za-z0-9" NONASCII "-]+"
                       "(?:\\.[A-Za-z0-9" NONASCII "-]+)*\\.(?:[A-Za-z]{2,}|xn--[A-Za-z0-9-]+|[" NONASCII
                       "]{2,})"),
                      NULL},
    /*
     * phone: a pre-filter for whole runs of digit groups - an optional "+"/"00",
     * groups of digits or "(digits)" joined by a separator (one of " ./-", up to
     * three spaces, " - ") - that never starts inside a longer run and has at
     * most 16 groups (a run that goes on is no candidate: linear time whatever
     * the input); libphonenumber decides (phone_ok).
     */
    [SG_DET_PHONE] = {"phone",
                      ("(?<![\\w+%])(?<!%[0-9A-Fa-f])(?<!\\d[ ./-])(?<!\\d {2})(?<!\\d {3})(?<!\\d - )"
                       "(?<![A-Za-z][-.])(?<!\\))(?<!\\)[ ./-])"
                       "(?:\\+ ?|\\b00)?" PHONE_ITEM "(?:" PHONE_SEP "?" PHONE_ITEM "){0,15}+"
                       "(?!" PHONE_SEP "?(?:\\(\\d|\\d))(?![\\w])(?![-.][A-Za-z0-9])"),
                      phone_ok},
    /* card: a run of at most 12 digit groups (joined by " ", "-", "." or "_"; or a bare
     * run) with at least 13 digits; card_ok checks it, or it without a trailing CVV */
    [SG_DET_CARD] = {"card",
                     ("(?<![\\w.%])(?<!%[0-9A-Fa-f])(?<!\\d[ ._-])(?=(?:\\d[ ._-]?){13})\\d++"
                      "(?:[ ._-]\\d++){0,11}+(?![ ._-]?\\d)"),
                     card_ok},
    /* IBAN: country, check digits, then alphanumerics, in any case, optionally grouped by
     * spaces, dashes or dots; iban_ok cuts it to the country's registered length and checks
     * mod-97 */
    [SG_DET_IBAN] = {"iban",
                     "(?:(?<![A-Za-z0-9])|(?<=(?i:iban)))[A-Za-z]{2}[ -]?\\d{2}(?:[ .-]?[A-Za-z0-9]){11,32}",
                     iban_ok},
    /* US SSN and ITIN: grouped by "-", "." or " " (ssn_ok checks the number ranges), or
     * nine bare digits right after a label that names one */
    [SG_DET_SSN] = {"ssn",
                    ("(?<![\\w.%/-])(?<!%[0-9A-Fa-f])(?<!\\d )\\d{3}([-. /])\\d{2}\\1\\d{4}(?![\\d]|[-./]\\d)"
                     "|(?i:\\b(?:ssn|itin|social security(?: number)?|tax id)\\b)[\\s:#=.-]{0,4}"
                     "(?i:(?:no\\.?|number|is|#)\\s?)?\\K\\d{9}(?!\\d)"),
                    ssn_ok},
    /* IPv4 dotted quads (a sentence's final dot is not part of one) and IPv6 literals
     * (the latter confirmed by inet_pton) */
    [SG_DET_IP] = {"ip",
                   ("(?<![\\w.%])(?<!%[0-9A-Fa-f])(?<!\\w/)(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}"
                    "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?!\\w|\\.\\d)"
                    "|(?<![\\w:])(?=[0-9A-Fa-f:.]{0,43}::|(?:[0-9A-Fa-f]{1,4}:){7})"
                    "[0-9A-Fa-f:.]{3,45}(?![\\w:])"),
                   ip_ok},
    /* JWTs (base64url parts, the first two JSON objects; the signature may be absent, as
     * in unsigned tokens) and bearer credentials */
    [SG_DET_TOKEN] = {"token",
                      ("eyJ[A-Za-z0-9_-]{5,}\\.eyJ[A-Za-z0-9_-]{5,}(?:\\.[A-Za-z0-9_-]*)?"
                       "|(?i:bearer)\\s+[A-Za-z0-9._~+/-]{16,}=*"),
                      NULL},
};

/*
 * Crawlers, monitors, headless browsers and HTTP libraries, matched on whole
 * user-agent tokens: "Googlebot/2.1" and "AdsBot-Google" are bots, the Cubot
 * phone ("CUBOT P80") and words that merely contain "bot" are not.
 */
static const char bot_pattern[] =
    "(?i)(?<![a-z0-9])(?:(?!cubot)[a-z0-9_]*bots?|[a-z0-9_]*(?:spider|crawler)|crawl|slurp|"
    "headless(?:chrome)?|phantomjs|lighthouse|pingdom|uptimerobot|uptime|statuscake|"
    "monitor(?:ing)?|facebookexternalhit|facebookcatalog|meta-externalagent|bingpreview|"
    "ia_archiver|scrapy|curl|wget|python-requests|python-urllib|python-httpx|aiohttp|"
    "go-http-client|java(?=/\\d)|okhttp|axios|node-fetch|libwww-perl|apache-httpclient|guzzlehttp|"
    "postmanruntime|playwright|selenium|webdriver|puppeteer|datadog|"
    "google-inspectiontool|googleother|mediapartners-google|apis-google|feedfetcher-google|"
    "google-read-aloud|google-extended|chatgpt-user|claude-user|perplexity-user|preview)"
    "(?![a-z])";

struct sg_pattern {
    pcre2_code *code;
};

static pcre2_code *codes[SG_DET__COUNT];
static pcre2_code *bot_code;
static pcre2_match_context *mctx;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -1;

static _Thread_local pcre2_match_data *tl_md;
/* 0-1 text passes, 2-6 decoded forms, 7 the folded text's passes */
static _Thread_local struct sg_buf tl_scratch[8];
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
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode,
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
    /* libphonenumber loads its metadata on first use (about 6 ms): here, at start, not on
     * a worker's first phone-shaped string. */
    (void)sg_phone_region_known("US");
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

/* The digits of s[a, b) into d (at most cap - 1 of them, NUL-terminated); their count. */
static size_t digits_of(const char *s, size_t a, size_t b, char *d, size_t cap)
{
    size_t n = 0;
    for (size_t i = a; i < b; i++)
        if (sg_is_digit(s[i])) {
            if (n + 1 >= cap)
                return cap; /* too many: no caller accepts that many */
            d[n++] = s[i];
        }
    d[n] = '\0';
    return n;
}

static bool luhn(const char *d, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int v = d[n - 1 - i] - '0';
        if (i % 2 == 1 && (v *= 2) > 9)
            v -= 9;
        sum += v;
    }
    return sum % 10 == 0;
}

/*
 * A payment card number: 13-19 digits, an issuer digit 2-6 (1 for UATP's 15),
 * Luhn. A bare run (no separators) is held to the networks' lengths: 13 digits
 * only for Visa (4), 14 for Diners (30[0-5], 36, 38, 39), 15 for Amex (34, 37)
 * and UATP, 16-19 for any; and a bare 13 or 14 digits that is a valid EAN-13 /
 * GTIN-14 barcode (content ids are) is taken for the barcode.
 */
/* GS1's check digit (EAN-13, GTIN-14): weights 3 and 1 from the right. */
static bool gtin_ok(const char *d, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i + 1 < n; i++)
        sum += (d[n - 2 - i] - '0') * (i % 2 == 0 ? 3 : 1);
    return (10 - sum % 10) % 10 == d[n - 1] - '0';
}

static bool card_number(const char *d, size_t n, bool bare)
{
    bool uatp = n == 15 && d[0] == '1'; /* UATP airline cards */
    if (n < 13 || n > 19 || ((d[0] < '2' || d[0] > '6') && !uatp) || !luhn(d, n))
        return false;
    if (!bare)
        return true;
    if (n == 13 || n == 14) /* Visa's old 13 digits, Diners' 14; never a valid barcode */
        return !gtin_ok(d, n) &&
               (n == 13 ? d[0] == '4'
                        : (d[0] == '3' && (d[1] == '6' || d[1] == '8' || d[1] == '9' ||
                                           (d[1] == '0' && d[2] <= '5'))));
    if (n == 15)
        return uatp || (d[0] == '3' && (d[1] == '4' || d[1] == '7'));
    return true;
}

/*
 * Is s[at] inside an IBAN-shaped string, "XX00 ABCD 1234 ...", that the IBAN
 * detector did not take (a wrong check digit, an unknown country)? Its digit
 * groups are then not a card or a phone number either.
 */
static bool iban_shaped_before(const char *s, size_t at)
{
    size_t i = at;
    for (int groups = 0; groups < 8 && i >= 2 && s[i - 1] == ' ' && sg_is_alnum(s[i - 2]); groups++) {
        size_t end = i - 1, st = end;
        while (st > 0 && sg_is_alnum(s[st - 1]) && end - st < 5)
            st--;
        if (end - st > 4 || (st > 0 && sg_is_alnum(s[st - 1])))
            return false;
        if (end - st == 4 && !sg_is_digit(s[st]) && !sg_is_digit(s[st + 1]) && sg_is_digit(s[st + 2]) &&
            sg_is_digit(s[st + 3]))
            return true; /* reached "XX00" */
        i = st;
    }
    return false;
}

#define CARD_GROUPS_MAX 12

/*
 * The hit is a run of digit groups: the card is all of it, or all of it but
 * a trailing group of 1-4 digits (a CVV, an expiry's month). Nothing else is
 * cut out: a longer run (a tracking number) holds a Luhn-valid 16 digits one
 * time in ten at any group boundary.
 */
static int card_ok(const char *s, size_t len, size_t *a, size_t *b,
                   const struct sg_scrub_spec *spec)
{
    size_t gs[CARD_GROUPS_MAX], ge[CARD_GROUPS_MAX], g = 0;
    char d[24];
    (void)len;
    (void)spec;
    for (size_t i = *a; i < *b && g < CARD_GROUPS_MAX;) {
        gs[g] = i;
        while (i < *b && sg_is_digit(s[i]))
            i++;
        ge[g++] = i;
        i++; /* the separator */
    }
    if (iban_shaped_before(s, *a))
        return 0;
    if (g > 1 && ge[0] - gs[0] != 4)
        return 0; /* printed cards start with a group of four (215-7764031-…: an order id) */
    size_t n = digits_of(s, *a, *b, d, sizeof(d));
    if (card_number(d, n, g == 1))
        return 1;
    size_t last = ge[g - 1] - gs[g - 1];
    if (g < 3 || last > 4)
        return 0;
    n = digits_of(s, *a, ge[g - 2], d, sizeof(d));
    if (!card_number(d, n, false))
        return 0;
    *b = ge[g - 2];
    return 1;
}

/* Registered IBAN lengths by country (ISO 13616 registry, as published by SWIFT). */
static const struct {
    char cc[3];
    unsigned char len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AO", 25}, {"AT", 20}, {"AX", 18}, {"AZ", 28},
    {"BA", 20}, {"BE", 16}, {"BF", 28}, {"BG", 22}, {"BH", 22}, {"BI", 27}, {"BJ", 28},
    {"BL", 27}, {"BR", 29}, {"BY", 28}, {"CF", 27}, {"CG", 27}, {"CH", 21}, {"CI", 28},
    {"CM", 27}, {"CR", 22}, {"CV", 25}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DJ", 27},
    {"DK", 18}, {"DO", 28}, {"DZ", 26}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GA", 27}, {"GB", 22}, {"GE", 22}, {"GF", 27},
    {"GI", 23}, {"GL", 18}, {"GP", 27}, {"GQ", 27}, {"GR", 27}, {"GT", 28}, {"GW", 25},
    {"HN", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IR", 26},
    {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KM", 27}, {"KW", 30}, {"KZ", 20}, {"LB", 28},
    {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"LY", 25}, {"MA", 28},
    {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MF", 27}, {"MG", 27}, {"MK", 19}, {"ML", 28},
    {"MN", 20}, {"MQ", 27}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"MZ", 25}, {"NC", 27},
    {"NE", 28}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PF", 27}, {"PK", 24},
    {"PL", 28}, {"PM", 27}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RE", 27}, {"RO", 24},
    {"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19},
    {"SK", 24}, {"SM", 27}, {"SN", 28}, {"SO", 23}, {"ST", 25}, {"SV", 28}, {"TD", 27},
    {"TF", 27}, {"TG", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22},
    {"VG", 24}, {"WF", 27}, {"XK", 20}, {"YE", 30}, {"YT", 27},
};

static unsigned iban_length(char c0, char c1)
{
    size_t lo = 0, hi = SG_ARRAY_SIZE(iban_lengths);
    char cc[2] = {(char)(c0 & ~32), (char)(c1 & ~32)};
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = memcmp(cc, iban_lengths[mid].cc, 2);
        if (cmp == 0)
            return iban_lengths[mid].len;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/*
 * ISO 13616: the country's registered length, then mod 97 == 1 over the
 * characters rotated by four (letters as 10..35). The span is cut to that
 * length, so a BIC or a word after the IBAN does not hide it; characters that
 * continue it without a separator make it something else.
 */
static int iban_ok(const char *s, size_t len, size_t *a, size_t *b,
                   const struct sg_scrub_spec *spec)
{
    char c[40];
    size_t n = 0, i = *a;
    (void)spec;
    unsigned want = iban_length(s[*a], s[*a + 1]);
    if (want == 0)
        return 0;
    for (; i < *b && n < want; i++)
        if (s[i] != ' ' && s[i] != '-' && s[i] != '.')
            c[n++] = (char)((s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i]);
    if (n < want || (i < len && sg_is_alnum(s[i])))
        return 0;
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        char ch = c[(k + 4) % n];
        if (sg_is_digit(ch))
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    if (rem != 1)
        return 0;
    *b = i;
    return 1;
}

/*
 * US SSN: area not 000, 666 or 9xx, group not 00, serial not 0000. ITIN: area
 * 9xx with group 50-65, 70-88, 90-92 or 94-99.
 */
static int ssn_ok(const char *s, size_t len, size_t *a, size_t *b,
                  const struct sg_scrub_spec *spec)
{
    char d[16];
    (void)len;
    (void)spec;
    if (digits_of(s, *a, *b, d, sizeof(d)) != 9)
        return 0;
    int area = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    int group = (d[3] - '0') * 10 + (d[4] - '0');
    int serial = atoi(d + 5);
    if (area >= 900)
        return (group >= 50 && group <= 65) || (group >= 70 && group <= 88) ||
               (group >= 90 && group <= 92) || group >= 94;
    return area != 0 && area != 666 && group != 0 && serial != 0;
}

/* Is one of the words within 24 bytes before s[a], as a word of its own? */
static bool word_before(const char *s, size_t a, const char *const *words, size_t n_words)
{
    size_t from = a > 24 ? a - 24 : 0;
    for (size_t i = from; i < a; i++) {
        if (i > 0 && sg_is_alnum(s[i - 1]))
            continue; /* a word starts here or not at all */
        for (size_t k = 0; k < n_words; k++) {
            size_t n = strlen(words[k]);
            if (i + n <= a && sg_strncaseeq(s + i, words[k], n) &&
                (i + n == a || !((s[i + n] | 32) >= 'a' && (s[i + n] | 32) <= 'z')))
                return true;
        }
    }
    return false;
}

/* Words that, just before a bare run of digits, say it is a phone number. */
static const char *const phone_words[] = {
    "phone", "tel", "mobile", "cell", "call", "whatsapp", "fax", "sms", "handy",
    "telefon", "telefono", "numero", "contact", "tlf", "mob", "wa",
};

/* Words that say the digits right after them name a thing, not a person: product and
 * part numbers, versions, references, sizes (a phone or IPv4 shape after one is not one). */
static const char *const thing_words[] = {
    "sku", "part", "model", "item", "art", "order", "invoice", "batch", "lot", "build",
    "isbn", "issn", "ean", "gtin", "upc", "version", "firmware", "serial", "po", "tracking",
    "catalogue", "catalog", "release", "size", "sizes", "chrome", "firefox", "safari",
    "edge", "android", "ios", "windows", "v", "rv",
};

/* Words that may stand between such a word and its number ("Part no. 0451-103-359"). */
static const char *const number_words[] = {"no", "nr", "number", "num", "id"};

static bool is_word(const char *s, size_t st, size_t end, const char *const *words,
                    size_t n_words)
{
    for (size_t k = 0; k < n_words; k++)
        if (strlen(words[k]) == end - st && sg_strncaseeq(s + st, words[k], end - st))
            return true;
    return false;
}

/* The word that ends just before s[at], separators (" :#.=-/") skipped: [*st, *end). */
static bool word_ending_at(const char *s, size_t at, size_t *st, size_t *end)
{
    size_t i = at, skipped = 0;
    while (i > 0 && skipped < 4 && strchr(" \t:#.=+-/", s[i - 1]) && s[i - 1] != '\0') {
        i--;
        skipped++;
    }
    *end = i;
    while (i > 0 && ((s[i - 1] | 32) >= 'a' && (s[i - 1] | 32) <= 'z'))
        i--;
    *st = i;
    return *end > *st && (i == 0 || !sg_is_alnum(s[i - 1]));
}

/* Is the run at s[a] the number of a thing: a thing word right before it? */
static bool thing_number(const char *s, size_t a)
{
    size_t st, end;
    if (!word_ending_at(s, a, &st, &end))
        return false;
    if (is_word(s, st, end, number_words, SG_ARRAY_SIZE(number_words)) &&
        !word_ending_at(s, st, &st, &end))
        return false;
    return is_word(s, st, end, thing_words, SG_ARRAY_SIZE(thing_words));
}

static int ip_ok(const char *s, size_t len, size_t *a, size_t *b,
                   const struct sg_scrub_spec *spec)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    size_t n = *b - *a;
    (void)len;
    (void)spec;
    if (memchr(s + *a, ':', n) == NULL) /* IPv4: the pattern checked each octet */
        return !thing_number(s, *a);
    while (n > 0 && s[*a + n - 1] == '.') /* a sentence's final dot */
        n--;
    if (n >= sizeof(buf))
        return 0;
    memcpy(buf, s + *a, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET6, buf, addr) != 1)
        return 0;
    *b = *a + n;
    return 1;
}

static _Thread_local unsigned tl_phone_checks; /* libphonenumber calls in this field */

/*
 * Digit groups shaped like a date at the start of a run, the same "-", "/" or
 * "." between them: 2026-11-26, 26.11.2026, 11/26/2026 (a time or a suffix
 * may follow a four-digit year), 11/26/26 alone. Phone numbers are grouped
 * by spaces far more often, or by mixed separators.
 */
static bool date_shaped(const char *s, const size_t *gst, const size_t *glen, size_t g)
{
    if (g < 3)
        return false;
    char sep = s[gst[0] + glen[0]];
    if ((sep != '-' && sep != '/' && sep != '.') || s[gst[1] + glen[1]] != sep)
        return false;
    int v[3];
    for (int k = 0; k < 3; k++) {
        v[k] = 0;
        for (size_t i = 0; i < glen[k] && i < 4; i++)
            v[k] = v[k] * 10 + (s[gst[k] + i] - '0');
    }
    if (glen[0] == 4 && glen[1] <= 2 && glen[2] <= 2) /* year, month, day */
        return v[0] >= 1900 && v[0] <= 2099 && v[1] >= 1 && v[1] <= 12 && v[2] >= 1 && v[2] <= 31;
    if (glen[0] <= 2 && glen[1] <= 2 && (glen[2] == 4 || (glen[2] == 2 && g == 3)))
        return v[0] >= 1 && v[1] >= 1 && ((v[0] <= 31 && v[1] <= 12) || (v[0] <= 12 && v[1] <= 31)) &&
               (glen[2] == 2 || (v[2] >= 1900 && v[2] <= 2099));
    return false;
}

/*
 * Is the run s[a, b) a phone number? "+" and 8 to 15 digits is one, valid
 * or mistyped. Else 7 to 15 digits (a "00" run, or grouped, or bare after a
 * label such as "tel:"), not a date, a version or a thing's number, that
 * libphonenumber finds valid for its country, the site's region or a common
 * one. Over the field's budget, or when the library fails, it is taken for
 * one.
 */
static bool phone_run(const char *s, size_t a, size_t b, const struct sg_scrub_spec *spec)
{
    size_t gst[16], glen[16], g = 0, digits = 0, slashes = 0;
    bool intl = s[a] == '+' || (s[a] == '0' && a + 1 < b && s[a + 1] == '0');
    bool parens = false, dots = false;
    for (size_t i = a; i < b;) {
        if (!sg_is_digit(s[i])) {
            parens |= s[i] == '(';
            dots |= s[i] == '.';
            slashes += s[i] == '/';
            i++;
            continue;
        }
        size_t st = i;
        while (i < b && sg_is_digit(s[i]))
            i++;
        if (g < SG_ARRAY_SIZE(glen)) {
            gst[g] = st;
            glen[g++] = i - st;
        }
        digits += i - st;
    }
    if (intl && s[a] == '0')
        digits -= 2;
    if (digits < 7 || digits > 15)
        return false;
    /* "+" and 8-15 digits: a phone number, valid or mistyped; but not an ISBN-13 (978/979)
     * whose space a query string wrote as "+" */
    bool isbn13 = digits == 13 && glen[0] >= 3 && !strncmp(s + gst[0], "97", 2) &&
                  (s[gst[0] + 2] == '8' || s[gst[0] + 2] == '9');
    if (s[a] == '+' && digits >= 8 && !isbn13)
        return true;
    if (!intl) {
        if (g == 1 && !word_before(s, a, phone_words, SG_ARRAY_SIZE(phone_words)))
            return false; /* a bare run: an order number far more often than a phone */
        bool short_group = false, long_group = false;
        for (size_t k = 0; k < g; k++) {
            short_group |= glen[k] == 1;
            long_group |= glen[k] >= 5;
        }
        /* 1.0.2026.1, 120.0.6099.199, 12/345/6789, 16.30.176, 2026-11-22 14 */
        if (g > 1 && (glen[g - 1] == 1 || slashes > 1 ||
                      (dots && (digits < 9 || short_group || long_group)) ||
                      (!parens && date_shaped(s, gst, glen, g))))
            return false;
        if (thing_number(s, a) || iban_shaped_before(s, a))
            return false;
        if (g == 3 && glen[0] == 3 && glen[1] == 2 && glen[2] == 4 && s[gst[1] - 1] == '-' &&
            s[gst[2] - 1] == '-')
            return false; /* 078-05-1120: the SSN detector's shape, not a phone's */
    }
    if (++tl_phone_checks > PHONE_CHECKS_MAX)
        return true;
    return sg_phone_text_candidate(s + a, b - a, spec ? spec->phone_region : NULL) != 0;
}

/*
 * The pre-filter's run, or it without one or two short trailing groups that a
 * space or a slash set apart ("call 415-555-2671 3 times", "+44 20 7930 4832
 * 24/7"). Nothing longer is cut out of a run.
 */
static int phone_ok(const char *s, size_t len, size_t *a, size_t *b,
                    const struct sg_scrub_spec *spec)
{
    size_t end = *b;
    (void)len;
    for (int dropped = 0;; dropped++) {
        if (phone_run(s, *a, end, spec)) {
            *b = end;
            return 1;
        }
        size_t i = end;
        while (i > *a && sg_is_digit(s[i - 1]))
            i--;
        if (dropped == 2 || end - i > 2 || i <= *a + 1 || (s[i - 1] != ' ' && s[i - 1] != '/'))
            return 0;
        end = i - 1;
        while (end > *a && s[end - 1] == ' ')
            end--;
        if (end == *a || !sg_is_digit(s[end - 1]))
            return 0;
    }
}

/* Past continuation bytes: the next UTF-8 character boundary at or after i. */
static size_t char_boundary(const char *s, size_t len, size_t i)
{
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

/*
 * The next hit of code (validated by fn) in s[from..len). 1 with
 * [*start,*end), 0 for none, -1 when PCRE2 gave up (limit) or failed.
 */
static int next_match(const pcre2_code *code, validate_fn *fn, const struct sg_scrub_spec *spec,
                      const char *s, size_t len, size_t from, size_t *start, size_t *end)
{
    while (from <= len) {
        int rc = pcre2_match(code, (PCRE2_SPTR)s, len, from, 0, tl_md, mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc < 0)
            return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tl_md);
        size_t a = ov[0], b = ov[1];
        if (fn) {
            int ok = fn(s, len, &a, &b, spec);
            if (ok < 0)
                return -1;
            if (ok == 0) {
                from = char_boundary(s, len, ov[0] + 1);
                continue;
            }
        }
        *start = a;
        *end = b;
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

/*
 * The built-in detectors that could match s at all, from one pass over its
 * bytes: every hit of the email pattern has an '@', of the number patterns
 * a digit, of IPv6 a ':', of the token pattern "eyJ" or "bearer". Most
 * strings of an event (names, categories, campaign tags) have none of these,
 * and no pattern runs on them.
 */
static unsigned possible_detectors(const char *s, size_t len)
{
    unsigned m = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (sg_is_digit(c))
            m |= 1u << SG_DET_PHONE | 1u << SG_DET_CARD | 1u << SG_DET_IBAN | 1u << SG_DET_SSN |
                 1u << SG_DET_IP;
        else if (c == '@')
            m |= 1u << SG_DET_EMAIL;
        else if (c == ':')
            m |= 1u << SG_DET_IP;
        else if ((c == 'e' && i + 2 < len && s[i + 1] == 'y' && s[i + 2] == 'J') ||
                 ((c | 32) == 'b' && i + 6 <= len && sg_strncaseeq(s + i, "bearer", 6)))
            m |= 1u << SG_DET_TOKEN;
    }
    return m;
}

/* Matchers of a spec, in run order, among those possible; i == SG_DET__COUNT is the site
 * pattern (always possible). */
static bool matcher(const struct sg_scrub_spec *spec, unsigned possible, int i,
                    const pcre2_code **code, validate_fn **fn)
{
    if (i < SG_DET__COUNT) {
        int d = run_order[i];
        if (!(spec->detectors & possible & (1u << d)))
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

/* Does s hold a hit of the spec, as written? 1, 0 or -1. */
static int detect_raw(const struct sg_scrub_spec *spec, const char *s, size_t len)
{
    size_t a, b;
    const pcre2_code *code;
    validate_fn *fn;
    unsigned possible = possible_detectors(s, len);
    for (int i = 0; i <= SG_DET__COUNT; i++) {
        if (!matcher(spec, possible, i, &code, &fn))
            continue;
        int rc = next_match(code, fn, spec, s, len, 0, &a, &b);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Does s hold a hit as written (unless !self), folded, or unescaped? Uses scratch 5. */
static int detect_forms(const struct sg_scrub_spec *spec, const char *s, size_t len, bool self)
{
    struct sg_buf *f = &tl_scratch[5];
    int rc;
    if (self && (rc = detect_raw(spec, s, len)) != 0)
        return rc;
    if (sg_fold(s, len, false, f) && (rc = detect_raw(spec, f->data, f->len)) != 0)
        return rc;
    if (sg_unescape(s, len, f) && (rc = detect_raw(spec, f->data, f->len)) != 0)
        return rc;
    return 0;
}

static int detect_b64(const struct sg_scrub_spec *spec, const char *s, size_t len, int depth);

/* One base64 candidate: *text when it decodes to text; 1 when that holds a hit. */
static int b64_piece(const struct sg_scrub_spec *spec, const char *p, size_t n, int depth,
                     bool *text)
{
    struct sg_buf *b64 = &tl_scratch[depth ? 6 : 4];
    int rc;
    *text = false;
    if (n < SG_B64_MIN)
        return 0;
    if ((rc = sg_b64_text(p, n, b64)) <= 0)
        return rc;
    *text = true;
    if ((rc = detect_forms(spec, b64->data, b64->len, true)) != 0)
        return rc;
    return depth == 0 ? detect_b64(spec, b64->data, b64->len, 1) : 0;
}

/*
 * Base64 runs of s that decode to text with a hit. A run that is no encoding
 * of text is tried in its pieces between '-' and '_' (base64url shares them
 * with names: "user-amFuZUBleGFtcGxlLmNvbQ"); depth 1 looks once more inside
 * what a run decodes to. Uses scratch 4 (depth 0), 5 and 6.
 */
static int detect_b64(const struct sg_scrub_spec *spec, const char *s, size_t len, int depth)
{
    bool text;
    int rc;
    for (size_t i = 0; i < len;) {
        while (i < len && sg_b64val((unsigned char)s[i]) < 0)
            i++;
        size_t st = i;
        while (i < len && (sg_b64val((unsigned char)s[i]) >= 0 ||
                           ((s[i] == '\n' || s[i] == '\r') && i + 1 < len &&
                            (sg_b64val((unsigned char)s[i + 1]) >= 0 || s[i + 1] == '\n'))))
            i++;
        while (i < len && s[i] == '=') /* padding ends a run */
            i++;
        if ((rc = b64_piece(spec, s + st, i - st, depth, &text)) != 0)
            return rc;
        if (text || i - st < SG_B64_MIN)
            continue;
        for (size_t p = st; p < i;) {
            size_t q = p;
            while (q < i && s[q] != '-' && s[q] != '_')
                q++;
            if (q - p < i - st && (rc = b64_piece(spec, s + p, q - p, depth, &text)) != 0)
                return rc;
            p = q + 1;
        }
    }
    return 0;
}

/*
 * Does the value hold a hit once decoded? Values hide data behind encodings:
 * percent-encoding, applied twice (%2540 is "@"), a '+' left raw in a query
 * (read both as a space and as a plus), HTML and JavaScript escapes, look-
 * alike characters (full-width digits, no-break spaces), and base64 /
 * base64url (?u=amFuZUBleGFtcGxlLmNvbQ is an email). The value is percent-
 * decoded to a fixed point (each round is scanned, folded and unescaped),
 * then each base64-shaped run in it that decodes to text is scanned. Uses
 * scratch 2-6. 1, 0 or -1. With decoded_only, the value as written is not
 * scanned (the caller did, in its context: the words around a number decide
 * what it is).
 */
#define DECODE_ROUNDS 4

static int detect_decoded(const struct sg_scrub_spec *spec, const char *s, size_t len, bool plus,
                          bool decoded_only)
{
    struct sg_buf *dec = &tl_scratch[2], *alt = &tl_scratch[3];
    int rc;
    if (sg_percent_decode(s, len, plus, dec) < 0)
        return -1;
    bool same = dec->len == len && memcmp(dec->data, s, len) == 0;
    if ((rc = detect_forms(spec, dec->data, dec->len, !(same && decoded_only))) != 0)
        return rc;
    if (plus && memchr(s, '+', len)) { /* a '+' the page did not encode: "?p=+4479..." */
        if (sg_percent_decode(s, len, false, alt) < 0)
            return -1;
        if ((rc = detect_forms(spec, alt->data, alt->len, true)) != 0)
            return rc;
        if ((rc = detect_b64(spec, alt->data, alt->len, 0)) != 0) /* '+' is base64's too */
            return rc;
    }
    for (int round = 1; round < DECODE_ROUNDS && sg_has_escape(dec->data, dec->len); round++) {
        if (sg_percent_decode(dec->data, dec->len, false, alt) < 0)
            return -1;
        struct sg_buf *t = dec;
        dec = alt;
        alt = t;
        if ((rc = detect_forms(spec, dec->data, dec->len, true)) != 0)
            return rc;
    }
    return detect_b64(spec, dec->data, dec->len, 0);
}

int sg_scrub_is_bot(const char *user_agent)
{
    size_t a, b;
    if (!user_agent || thread_ready() < 0)
        return user_agent ? -1 : 0;
    return next_match(bot_code, NULL, NULL, user_agent, strlen(user_agent), 0, &a, &b);
}

/* One pass of every matcher of spec over cur; the result ends in *cur. */
static int scrub_pass(const struct sg_scrub_spec *spec, struct sg_buf **cur, struct sg_buf **next,
                      unsigned *hits)
{
    const pcre2_code *code;
    validate_fn *fn;
    /* once per pass: a redaction only takes characters away ("[redacted]" adds none that
     * make a detector possible) */
    unsigned possible = possible_detectors((*cur)->data, (*cur)->len);
    for (int i = 0; i <= SG_DET__COUNT; i++) {
        if (!matcher(spec, possible, i, &code, &fn))
            continue;
        size_t pos = 0, a, b;
        int rc;
        bool changed = false;
        sg_buf_reset(*next);
        while ((rc = next_match(code, fn, spec, (*cur)->data, (*cur)->len, pos, &a, &b)) == 1) {
            if (sg_buf_add(*next, (*cur)->data + pos, a - pos) < 0 ||
                sg_buf_adds(*next, "[redacted]") < 0)
                return -1;
            (*hits)++;
            changed = true;
            pos = b > a ? b : char_boundary((*cur)->data, (*cur)->len, b + 1);
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

/* Characters that end a word of free text for the decoding pass. */
static bool word_break(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == '<' ||
           c == '>' || c == '(' || c == ')' || c == '[' || c == ']' || c == '{' || c == '}' ||
           c == ',';
}

/* Might the word hide data behind an encoding? (cheap: most words are not) */
static bool word_encoded(const char *w, size_t n)
{
    if (sg_has_escape(w, n))
        return true;
    for (size_t i = 0; i + 1 < n; i++)
        if ((w[i] == '&' && (w[i + 1] == '#' || (w[i + 1] | 32) == 'c' || (w[i + 1] | 32) == 'p')) ||
            ((w[i] == '\\' || w[i] == '%') && (w[i + 1] | 32) == 'u') ||
            (w[i] == '\\' && w[i + 1] == 'x'))
            return true;
    size_t run = 0;
    for (size_t i = 0; i < n; i++)
        if (sg_b64val((unsigned char)w[i]) >= 0) {
            if (++run >= SG_B64_MIN)
                return true;
        } else {
            run = 0;
        }
    return false;
}

/* Words of cur whose decoded form holds a hit become "[redacted]". */
static int scrub_encoded_words(const struct sg_scrub_spec *spec, struct sg_buf **cur,
                               struct sg_buf **next, unsigned *hits)
{
    const char *s = (*cur)->data;
    size_t len = (*cur)->len, done = 0;
    bool changed = false;
    sg_buf_reset(*next);
    for (size_t i = 0; i < len;) {
        while (i < len && word_break(s[i]))
            i++;
        size_t st = i;
        while (i < len && !word_break(s[i]))
            i++;
        if (i == st || !word_encoded(s + st, i - st))
            continue;
        int rc = detect_decoded(spec, s + st, i - st, false, true);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue;
        if (sg_buf_add(*next, s + done, st - done) < 0 || sg_buf_adds(*next, "[redacted]") < 0)
            return -1;
        done = i;
        changed = true;
        (*hits)++;
    }
    if (!changed)
        return 0;
    if (sg_buf_add(*next, s + done, len - done) < 0)
        return -1;
    struct sg_buf *t = *cur;
    *cur = *next;
    *next = t;
    return 0;
}

/*
 * Text with look-alike characters (full-width digits, no-break spaces,
 * zero-width characters, other dashes): the passes run on its folded copy,
 * and when they find something the folded, scrubbed text replaces it (text
 * that held personal data is changed anyway); otherwise it stays as written.
 * Uses scratch 7.
 */
static int scrub_folded(const struct sg_scrub_spec *spec, struct sg_buf **cur,
                        struct sg_buf **next, unsigned *hits)
{
    struct sg_buf *f = *next, *spare = &tl_scratch[7];
    unsigned found = 0;
    if (!sg_fold((*cur)->data, (*cur)->len, false, f))
        return 0;
    if (scrub_pass(spec, &f, &spare, &found) < 0)
        return -1;
    if (!found)
        return 0;
    sg_buf_reset(*cur);
    if (sg_buf_add(*cur, f->data, f->len) < 0)
        return -1;
    *hits += found;
    return 0;
}

/*
 * A redaction changes its neighbourhood (digits next to a removed card
 * number can now read as a phone number), so passes repeat until one finds
 * nothing. Text that still changes after a few passes is refused.
 */
#define SCRUB_MAX_PASSES 6

/* Start of a public call: this field's budget of phone checks. */
static int field_start(void)
{
    if (thread_ready() < 0)
        return -1;
    tl_phone_checks = 0;
    return 0;
}

int sg_scrub_text(const struct sg_scrub_spec *spec, const char *in, struct sg_buf *out,
                  unsigned *hits)
{
    *hits = 0;
    if (field_start() < 0)
        return -1;
    struct sg_buf *cur = &tl_scratch[0], *next = &tl_scratch[1];
    sg_buf_reset(cur);
    if (sg_buf_adds(cur, in) < 0)
        return -1;
    /* Detectors until a pass finds nothing; then encoded words, then look-alike
     * characters; after either removes something, the detectors again (a removed word
     * may have been what made a number look like a part number). */
    for (int pass = 0;; pass++) {
        unsigned found = 0;
        if (pass == SCRUB_MAX_PASSES || scrub_pass(spec, &cur, &next, &found) < 0)
            return -1;
        if (!found && scrub_encoded_words(spec, &cur, &next, &found) < 0)
            return -1;
        if (!found && scrub_folded(spec, &cur, &next, &found) < 0)
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
    if (field_start() < 0)
        return -1;
    int rc = detect_raw(spec, s, len);
    if (rc == 0)
        rc = detect_decoded(spec, s, len, false, true);
    return rc;
}

int sg_scrub_detect_identifier(const struct sg_scrub_spec *spec, const char *s, size_t len)
{
    int rc = sg_scrub_detect(spec, s, len);
    if (rc != 0)
        return rc;
    struct sg_buf *f = &tl_scratch[7];
    return sg_fold(s, len, true, f) ? detect_raw(spec, f->data, f->len) : 0;
}


/*
 * Sensitive query parameter names: split the name into alphanumeric tokens;
 * a token that is, or ends with, one of these words marks the parameter.
 * Matching on tokens keeps "hotel" and "utm_content" while catching
 * "user_email", "customer[phone]", "firstName" and "access_token".
 */
struct word {
    const char *s;
    size_t len;
};
#define W(x) {x, sizeof(x) - 1}

static const struct word sensitive_words[] = {
    W("email"),    W("mail"),      W("phone"),      W("tel"),       W("mobile"),
    W("msisdn"),   W("name"),      W("address"),    W("addr"),      W("street"),
    W("password"), W("passwd"),    W("pwd"),        W("pass"),      W("token"),
    W("secret"),   W("auth"),      W("ssn"),        W("dob"),       W("birthdate"),
    W("birthday"), W("zip"),       W("postcode"),   W("postal"),    W("iban"),
    W("card"),     W("cc"),        W("cvv"),        W("session"),   W("sid"),
    W("sessionid"), W("sessid"),   W("jsessionid"), W("phpsessid"), W("apikey"),
    W("credential"), W("credentials"), W("otp"),    W("signature"),
};

/*
 * Whole names (letters and digits only, lower-cased) that are secrets by
 * themselves: an OAuth authorization code, API keys, signatures.
 */
static const struct word sensitive_names[] = {
    W("code"),   W("authcode"),  W("authorizationcode"), W("key"),        W("apikey"),
    W("xapikey"), W("accesskey"), W("accesskeyid"),      W("secretkey"),  W("privatekey"),
    W("clientsecret"), W("sig"), W("pin"), W("birthdate"), W("dateofbirth"),
    W("geburtsdatum"), W("authuser"), W("samlresponse"), W("samlrequest"),
};

static bool word_is(const struct word *w, const char *s, size_t n)
{
    return w->len == n && memcmp(w->s, s, n) == 0;
}

bool sg_scrub_param_name_sensitive(const char *name, size_t len)
{
    char lower[64];
    size_t cn = 0;
    for (size_t i = 0; i < len && cn < sizeof(lower); i++)
        if (sg_is_alnum(name[i]))
            lower[cn++] = (char)(name[i] | ((name[i] >= 'A' && name[i] <= 'Z') ? 32 : 0));
    for (size_t w = 0; w < SG_ARRAY_SIZE(sensitive_names); w++)
        if (word_is(&sensitive_names[w], lower, cn))
            return true;
    for (size_t i = 0; i < len;) {
        while (i < len && !sg_is_alnum(name[i]))
            i++;
        char tok[64];
        size_t n = 0;
        while (i < len && sg_is_alnum(name[i])) {
            if (n < sizeof(tok))
                tok[n++] = (char)(name[i] | ((name[i] >= 'A' && name[i] <= 'Z') ? 32 : 0));
            i++;
        }
        for (size_t w = 0; n > 0 && w < SG_ARRAY_SIZE(sensitive_words); w++) {
            const struct word *sw = &sensitive_words[w];
            /* Short words only as whole tokens ("tel" must not catch "hotel"). */
            if (word_is(sw, tok, n) ||
                (sw->len >= 4 && n > sw->len && memcmp(tok + n - sw->len, sw->s, sw->len) == 0))
                return true;
        }
    }
    return false;
}

/* Does s mention one of the policy's stripped names as a word of its own (any case)? */
static bool mentions_stripped(const struct sg_url_policy *pol, const char *s, size_t len)
{
    for (size_t k = 0; k < pol->n_strip; k++) {
        size_t n = strlen(pol->strip[k]);
        for (size_t i = 0; n > 0 && i + n <= len; i++)
            if (sg_strncaseeq(s + i, pol->strip[k], n) && (i == 0 || !sg_is_alnum(s[i - 1])) &&
                (i + n == len || !sg_is_alnum(s[i + n])))
                return true;
    }
    return false;
}

/*
 * Does the URL part mention a stripped name (a click id parameter that must
 * not leave), as written, percent-decoded to a fixed point, or folded? Any
 * mention counts: "_ttclid", "ttclid[]", a redirect target's own query
 * ("?next=https%3A%2F%2Fx%2F%3Fttclid%3D…"), a hash route ("#/?ttclid=…").
 * Uses scratch 2, 3 and 5.
 */
static int mentions_decoded(const struct sg_url_policy *pol, const char *p, size_t len, bool plus)
{
    struct sg_buf *dec = &tl_scratch[2], *alt = &tl_scratch[3], *f = &tl_scratch[5];
    if (pol->n_strip == 0)
        return 0;
    if (sg_percent_decode(p, len, plus, dec) < 0)
        return -1;
    for (int round = 0;; round++) {
        if (mentions_stripped(pol, dec->data, dec->len) ||
            (sg_fold(dec->data, dec->len, false, f) && mentions_stripped(pol, f->data, f->len)))
            return 1;
        if (round + 1 == DECODE_ROUNDS || !sg_has_escape(dec->data, dec->len))
            return 0;
        if (sg_percent_decode(dec->data, dec->len, false, alt) < 0)
            return -1;
        struct sg_buf *t = dec;
        dec = alt;
        alt = t;
    }
}

/* A name=value pair (query, fragment or ;matrix parameter): 1 when it must go, 0 when not, -1. */
static int pair_verdict(const struct sg_url_policy *pol, const char *p, size_t len)
{
    struct sg_buf *dec = &tl_scratch[2], *alt = &tl_scratch[3];
    const char *eq = memchr(p, '=', len);
    size_t nlen = eq ? (size_t)(eq - p) : len;
    if (sg_percent_decode(p, nlen, true, dec) < 0)
        return -1;
    for (int round = 0;; round++) { /* a name encoded twice is still its name */
        if (pol->sensitive_params && sg_scrub_param_name_sensitive(dec->data, dec->len))
            return 1;
        if (round + 1 == DECODE_ROUNDS || !sg_has_escape(dec->data, dec->len))
            break;
        if (sg_percent_decode(dec->data, dec->len, false, alt) < 0)
            return -1;
        struct sg_buf *t = dec;
        dec = alt;
        alt = t;
    }
    int rc = mentions_decoded(pol, p, len, true); /* in the name, or in a nested URL */
    if (rc != 0)
        return rc;
    rc = detect_decoded(&pol->spec, p, nlen, true, false); /* names carry data too */
    if (rc != 0 || !eq)
        return rc;
    return detect_decoded(&pol->spec, eq + 1, len - nlen - 1, true, false);
}

/* Copy pairs of p[0, len) separated by sep that pass, each after lead; count the rest in hits. */
static int keep_pairs(const struct sg_url_policy *pol, const char *p, size_t len, char sep,
                      char lead, char first_lead, struct sg_buf *out, unsigned *hits)
{
    const char *end = p + len;
    bool first = true;
    while (p <= end) {
        const char *cut = memchr(p, sep, (size_t)(end - p));
        if (!cut)
            cut = end;
        if (cut > p) {
            int rc = pair_verdict(pol, p, (size_t)(cut - p));
            if (rc < 0)
                return -1;
            if (rc) {
                (*hits)++;
            } else {
                if (sg_buf_addc(out, first ? first_lead : lead) < 0 ||
                    sg_buf_add(out, p, (size_t)(cut - p)) < 0)
                    return -1;
                first = false;
            }
        }
        p = cut + 1;
    }
    return 0;
}

int sg_scrub_url(const struct sg_url_policy *pol, const char *url, struct sg_buf *out,
                 unsigned *hits)
{
    *hits = 0;
    if (field_start() < 0)
        return -1;
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
    /* Path segments; a segment's ;parameters (;jsessionid=...) are pairs like the query's. */
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
        const char *semi = memchr(url + pos, ';', seg_end - pos);
        size_t main_end = semi ? (size_t)(semi - url) : seg_end;
        int rc = mentions_decoded(pol, url + pos, main_end - pos, false);
        if (rc == 0)
            rc = detect_decoded(&pol->spec, url + pos, main_end - pos, false, false);
        if (rc < 0)
            return -1;
        if (rc) {
            (*hits)++;
            if (sg_buf_adds(out, "redacted") < 0)
                return -1;
        } else if (sg_buf_add(out, url + pos, main_end - pos) < 0) {
            return -1;
        }
        if (semi && keep_pairs(pol, semi + 1, seg_end - main_end - 1, ';', ';', ';', out, hits) < 0)
            return -1;
        pos = seg_end;
    }
    /* Query: keep the pairs that pass, in order, with their original encoding. */
    if (query && keep_pairs(pol, query + 1, before_frag - path_end - 1, '&', '&', '?', out, hits) < 0)
        return -1;
    /* Fragment: kept whole or dropped whole (it may carry OAuth tokens as pairs). */
    if (frag) {
        const char *f = frag + 1, *end = url + len;
        int verdict = mentions_decoded(pol, f, (size_t)(end - f), false);
        if (verdict == 0)
            verdict = detect_decoded(&pol->spec, f, (size_t)(end - f), false, false);
        for (const char *p = f; verdict == 0 && p < end;) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            if (!amp)
                amp = end;
            if (memchr(p, '=', (size_t)(amp - p)))
                verdict = pair_verdict(pol, p, (size_t)(amp - p));
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
