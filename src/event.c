/*
 * event.c - validate and normalize one input event into the canonical form.
 *
 * Only fields this file names are read; everything else in the input is
 * ignored and therefore can never be forwarded. Error messages name the
 * field, never its value.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/config.h"
#include "scrubgate/event.h"
#include "scrubgate/arena.h"
#include "scrubgate/hash.h"
#include "scrubgate/netaddr.h"
#include "scrubgate/scrub.h"
#include "scrubgate/decode.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const field_names[SG_F__COUNT] = {
    "user.email",     "user.phone",      "user.first_name",  "user.last_name",
    "user.zip_code",  "user.external_id", "user.ip",         "user.user_agent",
    "user.ttclid",    "user.ttp",        "user.locale",      "page.url",
    "page.referrer",  "properties",      "limited_data_use",
};

const char *sg_field_name(enum sg_field f)
{
    return (unsigned)f < SG_F__COUNT ? field_names[f] : "event";
}

int sg_field_from_name(const char *name)
{
    for (int i = 0; i < SG_F__COUNT; i++)
        if (strcmp(field_names[i], name) == 0)
            return i;
    return -1;
}

const char *sg_receipt_action_name(enum sg_receipt_action a)
{
    static const char *const names[] = {"drop",      "allow",      "hash:sha256",
                                        "hash:hmac_sha256", "set", "redact",
                                        "map_event", "drop_event", "truncate_ip",
                                        "require"};
    return (unsigned)a < SG_ARRAY_SIZE(names) ? names[a] : "?";
}

void sg_event_init(struct sg_event *ev)
{
    memset(ev, 0, sizeof(*ev));
}

void sg_event_release(struct sg_event *ev)
{
    sg_arena_free(ev->name);
    for (unsigned i = 0; i < ev->n_also; i++)
        sg_arena_free(ev->also[i]);
    sg_arena_free(ev->event_id);
    for (int i = 0; i < SG_F__COUNT; i++) {
        sg_arena_free(ev->val[i]);
        for (size_t k = 0; k < SG_MULTI_MAX - 1; k++)
            sg_arena_free(ev->more[i][k]);
    }
    json_decref(ev->props);
    sg_arena_free(ev->click_id);
    sg_event_init(ev);
}

void sg_event_set(struct sg_event *ev, enum sg_field f, char *v)
{
    sg_arena_free(ev->val[f]);
    ev->val[f] = v;
    for (size_t k = 0; k < SG_MULTI_MAX - 1; k++) {
        sg_arena_free(ev->more[f][k]);
        ev->more[f][k] = NULL;
    }
}

bool sg_field_multi(enum sg_field f)
{
    return f == SG_F_USER_EMAIL || f == SG_F_USER_PHONE || f == SG_F_USER_EXTERNAL_ID;
}

size_t sg_event_count(const struct sg_event *ev, enum sg_field f)
{
    if ((unsigned)f >= SG_F__COUNT || !ev->val[f])
        return 0;
    size_t n = 1;
    while (n < SG_MULTI_MAX && ev->more[f][n - 1])
        n++;
    return n;
}

char **sg_event_slot(struct sg_event *ev, enum sg_field f, size_t i)
{
    return i == 0 ? &ev->val[f] : &ev->more[f][i - 1];
}

void sg_event_pack(struct sg_event *ev, enum sg_field f)
{
    size_t w = 0;
    for (size_t i = 0; i < SG_MULTI_MAX; i++) {
        char **s = sg_event_slot(ev, f, i);
        if (!*s)
            continue;
        char *v = *s;
        *s = NULL;
        *sg_event_slot(ev, f, w++) = v;
    }
}

void sg_event_receipt(struct sg_event *ev, const char *rule_id, int field,
                      enum sg_receipt_action a, unsigned count)
{
    if (ev->n_receipt >= SG_RECEIPT_MAX)
        return; /* receipts are bounded; the rule ids in the sync log still name the rules */
    struct sg_receipt_entry *e = &ev->receipt[ev->n_receipt++];
    e->rule_id = rule_id;
    e->field = (unsigned char)field;
    e->action = (unsigned char)a;
    e->count = (unsigned short)SG_MIN(count, 65535u);
}

void sg_event_outbound_begin(struct sg_outbound *o, struct sg_event *ev, unsigned first)
{
    o->ev = ev;
    o->name0 = ev->name;
    o->id0 = ev->event_id;
    o->next = first;
}

bool sg_event_outbound_next(struct sg_outbound *o)
{
    struct sg_event *ev = o->ev;
    unsigned i = o->next;
    ev->name = o->name0;
    ev->event_id = o->id0;
    if (i > ev->n_also)
        return false;
    o->next++;
    if (i > 0) {
        snprintf(o->idbuf, sizeof(o->idbuf), "%s:%s", o->id0, ev->also[i - 1]);
        ev->name = ev->also[i - 1];
        ev->event_id = o->idbuf;
    }
    return true;
}

/* ---- timestamps ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar. */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int sg_parse_rfc3339(const char *s, int64_t *out)
{
    int Y, M, D, h, m, sec, oh = 0, om = 0;
    if (strlen(s) < 20 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) ||
        s[7] != '-' || digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || sec > 60 ||
        D > mdays[M - 1] + (M == 2 && leap ? 1 : 0))
        return -1; /* 2024-02-30 is no date, not 1 March */
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    int64_t t = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 +
                (sec == 60 ? 59 : sec);
    t -= sign * (oh * 3600 + om * 60);
    *out = t;
    return 0;
}

/* ---- query parameters ---- */

char *sg_url_query_param(const char *url, const char *name)
{
    const char *q = strchr(url, '?');
    if (!q)
        return NULL;
    q++;
    size_t nlen = strlen(name);
    const char *end = q + strcspn(q, "#");
    while (q < end) {
        const char *amp = q;
        while (amp < end && *amp != '&')
            amp++;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        if (eq && (size_t)(eq - q) == nlen && memcmp(q, name, nlen) == 0) {
            struct sg_buf b;
            sg_buf_init(&b, 4096);
            if (sg_percent_decode(eq + 1, (size_t)(amp - eq - 1), true, &b) < 0 || b.len == 0) {
                sg_buf_release(&b);
                return NULL;
            }
            return sg_buf_detach(&b, NULL);
        }
        q = amp + 1;
    }
    return NULL;
}

/* ---- the event object ---- */

/* Token characters: letters, digits and ._~+/=- (a click id, a cookie); a locale's: letters,
 * digits, _ and -. */
static bool token_char(unsigned char c)
{
    return sg_is_alnum((char)c) || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' ||
           c == '=' || c == '-';
}

static bool locale_char(unsigned char c)
{
    return sg_is_alnum((char)c) || c == '_' || c == '-';
}

static bool charset_ok(const char *s, bool (*allowed)(unsigned char))
{
    for (; *s; s++)
        if (!allowed((unsigned char)*s))
            return false;
    return true;
}

/* Drop a token-shaped value (click id, cookie, locale) that is not one. */
static void keep_token(struct sg_event *ev, enum sg_field f, bool (*allowed)(unsigned char),
                       size_t max)
{
    const char *v = ev->val[f];
    if (v && (strlen(v) > max || !charset_ok(v, allowed)))
        sg_event_set(ev, f, NULL);
}

/*
 * A click id (ttclid, ttp) leaves as it is and may be kept in a cookie: a token, and nothing a
 * detector reads as personal data (a phone number or a card passed as a click id). Detection
 * as for an identifier, letters glued to digits set apart ("tel2133734253"): it flags none of
 * 20,000 random "E.C.P." + base64url click ids (tests/unit/test_event.c).
 */
static void keep_click_id(struct sg_event *ev, enum sg_field f, const char *phone_region)
{
    const struct sg_scrub_spec all = {SG_DET_ALL, NULL, phone_region};
    keep_token(ev, f, token_char, SG_CLICK_ID_MAX);
    if (ev->val[f] && sg_scrub_detect_identifier(&all, ev->val[f], strlen(ev->val[f])) != 0)
        sg_event_set(ev, f, NULL);
}

struct reader {
    const struct sg_limits *limits;
    char *err;
    size_t errlen;
};

/* Write a one-line reason naming the field (never its value) and yield -1. */
#define FAIL(r, ...) (snprintf((r)->err, (r)->errlen, __VA_ARGS__), -1)

/*
 * Read an optional string field into *out (owned copy). Numbers are accepted
 * for identifier-like fields and turned into their decimal text.
 */
static int get_string(struct reader *r, json_t *obj, const char *key, const char *label,
                      bool allow_number, char **out)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        size_t len = json_string_length(v);
        if (len > r->limits->max_field_bytes)
            return FAIL(r, "%s: longer than the field limit", label);
        if (memchr(json_string_value(v), '\0', len))
            return FAIL(r, "%s: contains a NUL character", label);
        sg_arena_free(*out);
        *out = len ? sg_arena_strndup(json_string_value(v), len) : NULL;
        return 0;
    }
    if (allow_number && json_is_integer(v)) {
        sg_arena_free(*out);
        *out = sg_xasprintf("%lld", (long long)json_integer_value(v));
        return 0;
    }
    return FAIL(r, allow_number ? "%s: must be a string or an integer" : "%s: must be a string",
                label);
}

/*
 * user.email, user.phone(_number), user.external_id: a string (or, with
 * allow_number, an integer) or an array of up to SG_MULTI_MAX of them, all of
 * one JSON type; each element is read as a single value would be (an empty
 * string is no value). Present, it replaces what an earlier key gave.
 */
static int get_identifiers(struct reader *r, json_t *obj, const char *key, const char *label,
                           bool allow_number, struct sg_event *ev, enum sg_field f)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL, *item;
    size_t i, n = 0;
    if (v && !json_is_array(v) && !json_is_null(v) && !json_is_string(v) &&
        !(allow_number && json_is_integer(v)))
        return FAIL(r,
                    allow_number ? "%s: must be a string, an integer or an array of up to 5"
                                 : "%s: must be a string or an array of up to 5 strings",
                    label);
    if (!v || !json_is_array(v)) {
        char *one = ev->val[f] ? sg_arena_strdup(ev->val[f]) : NULL;
        int rc = get_string(r, obj, key, label, allow_number, &one);
        if (rc == 0 && v && !json_is_null(v))
            sg_event_set(ev, f, one); /* a single value replaces every earlier one */
        else
            sg_arena_free(one);
        return rc;
    }
    if (json_array_size(v) > SG_MULTI_MAX)
        return FAIL(r, "%s: more than %d values", label, SG_MULTI_MAX);
    json_t *first = json_array_get(v, 0);
    json_array_foreach(v, i, item) {
        bool ok = json_is_string(item) || (allow_number && json_is_integer(item));
        if (!ok || json_typeof(item) != json_typeof(first))
            return FAIL(r,
                        allow_number ? "%s: an array must hold only strings or only integers"
                                     : "%s: an array must hold only strings",
                        label);
        if (json_is_string(item) && json_string_length(item) > r->limits->max_field_bytes)
            return FAIL(r, "%s: longer than the field limit", label);
        if (json_is_string(item) && memchr(json_string_value(item), '\0', json_string_length(item)))
            return FAIL(r, "%s: contains a NUL character", label);
    }
    sg_event_set(ev, f, NULL);
    json_array_foreach(v, i, item) {
        char *s;
        if (json_is_integer(item))
            s = sg_xasprintf("%lld", (long long)json_integer_value(item));
        else if (json_string_length(item) > 0)
            s = sg_arena_strndup(json_string_value(item), json_string_length(item));
        else
            continue;
        *sg_event_slot(ev, f, n++) = s;
    }
    return 0;
}

static int get_object(struct reader *r, json_t *obj, const char *key, json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return FAIL(r, "%s: must be an object", key);
    *out = v;
    return 0;
}

static int read_time(struct reader *r, json_t *v, int64_t now, int64_t *out)
{
    if (!v || json_is_null(v)) {
        *out = now;
        return 0;
    }
    int64_t t;
    if (json_is_integer(v) || json_is_real(v)) {
        double d = json_number_value(v);
        if (isnan(d) || d < 1.0)
            return FAIL(r, "%s: must be after 1970-01-01T00:00:00Z", "timestamp");
        /* Seconds until year 5138; anything larger is milliseconds. */
        if (d >= 1e11)
            d /= 1000.0;
        /* Compare before converting: a double beyond int64_t's range has no
         * defined conversion (C11 6.3.1.4), and anything past the skew
         * allowance is refused below anyway. */
        if (d > (double)(now + 300))
            return FAIL(r, "%s: in the future", "timestamp");
        t = (int64_t)d;
    } else if (json_is_string(v)) {
        if (sg_parse_rfc3339(json_string_value(v), &t) < 0)
            return FAIL(r, "%s: not an RFC 3339 date-time", "timestamp");
    } else {
        return FAIL(r, "%s: must be Unix seconds, milliseconds or an RFC 3339 string",
                    "timestamp");
    }
    /* Unix time 0 and earlier: what a numeric time can never be, and no
     * real event's time; refused the same way whatever the notation. */
    if (t < 1)
        return FAIL(r, "%s: must be after 1970-01-01T00:00:00Z", "timestamp");
    /* TikTok refuses future times: allow small clock skew and clamp it. */
    if (t > now + 300)
        return FAIL(r, "%s: in the future", "timestamp");
    *out = t > now ? now : t;
    return 0;
}

/* Properties are free-form input: bound their depth and every string in them. */
static int check_props(struct reader *r, json_t *v, int depth)
{
    size_t i;
    const char *key;
    json_t *item;

    if (depth > 4)
        return FAIL(r, "%s: nested too deeply", "properties");
    if (json_is_string(v) && json_string_length(v) > r->limits->max_field_bytes)
        return FAIL(r, "%s: a string is longer than the field limit", "properties");
    if (json_is_object(v)) {
        json_object_foreach(v, key, item) if (check_props(r, item, depth + 1) < 0) return -1;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item) if (check_props(r, item, depth + 1) < 0) return -1;
    }
    return 0;
}

/*
 * A random id, by its shape: a UUID (8-4-4-4-12 hex digits, either case, in braces or not) or
 * 32, 40 or 64 hex digits (the proxy's own generated ids, hashes), with at least one letter.
 * Read as a whole, its dashed groups of digits look like a phone or card number to the
 * detectors about one UUID in eight; so such an id is checked with its dashes removed and for
 * payment cards only (an email cannot take this shape): about one random UUID in 3,800 is
 * still refused (a Luhn-valid card-length digit run), and a card hidden in one never leaves.
 * Returns 1 when it has this shape and holds a card, 0 when it has this shape and does not,
 * -1 when it has another shape (the caller applies every detector).
 */
static int random_id_card_check(const char *s, size_t n)
{
    char hex[65];
    size_t h = 0;
    bool letter = false;
    if (n == 38 && s[0] == '{' && s[37] == '}')
        s++, n -= 2;
    bool uuid = n == 36;
    if (!uuid && n != 32 && n != 40 && n != 64)
        return -1;
    for (size_t i = 0; i < n; i++) {
        bool dash_at = uuid && (i == 8 || i == 13 || i == 18 || i == 23);
        if (dash_at ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return -1;
        if (!dash_at)
            hex[h++] = s[i];
        letter |= isalpha((unsigned char)s[i]) != 0;
    }
    if (!letter)
        return -1;
    const struct sg_scrub_spec cards = {1u << SG_DET_CARD, NULL, NULL};
    return sg_scrub_detect_identifier(&cards, hex, h) != 0;
}

int sg_event_from_json(struct sg_event *ev, json_t *in, const struct sg_request_ctx *ctx,
                       const char *phone_region,
                       const struct sg_limits *limits, char *err, size_t errlen)
{
    struct reader r = {limits, err, errlen};
    json_t *user, *page, *props;

    ev->ctx = ctx;
    if (!json_is_object(in))
        return FAIL(&r, "%s: must be an object", "event");
    json_t *name = json_object_get(in, "event");
    if (!name || !json_is_string(name) || json_string_length(name) == 0)
        return FAIL(&r, "%s: required, a non-empty string", "event");
    if (json_string_length(name) > SG_EVENT_NAME_MAX)
        return FAIL(&r, "%s: longer than %d bytes", "event", SG_EVENT_NAME_MAX);
    if (memchr(json_string_value(name), '\0', json_string_length(name)))
        return FAIL(&r, "%s: contains a NUL character", "event");
    /* The input name may be any text (it is mapped first; the outbound name is checked
     * after the rules, pipeline.c), but it must not carry personal data: the name is
     * matched, may be logged, and an unmapped name leaves. Refused here, before any use. */
    if (sg_event_name_has_pii(json_string_value(name), phone_region))
        return FAIL(&r, "%s: looks like personal data (a phone, card or IP address, an "
                        "email, an IBAN or a national id)",
                    "event");
    /* Spaces around a name are not part of it ("Deal Won " is "Deal Won"); nothing but
     * spaces is no name. */
    const char *nm = json_string_value(name);
    size_t nlen = strlen(nm);
    while (nlen > 0 && (*nm == ' ' || *nm == '\t'))
        nm++, nlen--;
    while (nlen > 0 && (nm[nlen - 1] == ' ' || nm[nlen - 1] == '\t'))
        nlen--;
    if (nlen == 0)
        return FAIL(&r, "%s: required, a non-empty string", "event");
    ev->name = sg_arena_strndup(nm, nlen);
    const struct sg_scrub_spec all = {SG_DET_ALL, NULL, phone_region};

    if (get_string(&r, in, "event_id", "event_id", true, &ev->event_id) < 0)
        return -1;
    if (ev->event_id && strlen(ev->event_id) > 128)
        return FAIL(&r, "%s: longer than 128 bytes", "event_id");
    /* Identifiers leave as they are, so they must not be able to carry personal data. */
    int random = ev->event_id ? random_id_card_check(ev->event_id, strlen(ev->event_id)) : 0;
    if (random == 1 ||
        (random < 0 && sg_scrub_detect_identifier(&all, ev->event_id, strlen(ev->event_id)) != 0))
        return FAIL(&r, "%s: looks like personal data (an email, phone or card number)",
                    "event_id");
    if (!ev->event_id) {
        char id[33];
        if (sg_random_hex(id, 16) < 0)
            return FAIL(&r, "%s: cannot generate", "event_id");
        ev->event_id = sg_arena_strdup(id);
        ev->event_id_generated = true;
    }
    if (read_time(&r, json_object_get(in, "timestamp"), ctx->now, &ev->event_time) < 0)
        return -1;

    if (get_object(&r, in, "user", &user) < 0 || get_object(&r, in, "page", &page) < 0 ||
        get_object(&r, in, "properties", &props) < 0)
        return -1;

    /* The site may restrict its own data use, never un-restrict: true sticks (rules.c). */
    json_t *ldu = json_object_get(in, "limited_data_use");
    if (ldu && !json_is_null(ldu) && !json_is_boolean(ldu)) {
        return FAIL(&r, "%s: must be true or false", "limited_data_use");
    }
    if (json_is_true(ldu))
        ev->ldu = ev->ldu_requested = true;

    if (get_string(&r, page, "url", "page.url", false, &ev->val[SG_F_PAGE_URL]) < 0 ||
        get_string(&r, page, "referrer", "page.referrer", false, &ev->val[SG_F_PAGE_REFERRER]) < 0)
        return -1;

    /* Raw identifiers are read so that rules can hash or drop them explicitly. */
    if (get_identifiers(&r, user, "email", "user.email", false, ev, SG_F_USER_EMAIL) < 0 ||
        get_identifiers(&r, user, "phone_number", "user.phone_number", false, ev,
                        SG_F_USER_PHONE) < 0 ||
        get_identifiers(&r, user, "phone", "user.phone", false, ev, SG_F_USER_PHONE) < 0 ||
        get_string(&r, user, "first_name", "user.first_name", false,
                   &ev->val[SG_F_USER_FIRST_NAME]) < 0 ||
        get_string(&r, user, "last_name", "user.last_name", false,
                   &ev->val[SG_F_USER_LAST_NAME]) < 0 ||
        get_string(&r, user, "zip_code", "user.zip_code", true, &ev->val[SG_F_USER_ZIP_CODE]) < 0 ||
        get_identifiers(&r, user, "external_id", "user.external_id", true, ev,
                        SG_F_USER_EXTERNAL_ID) < 0 ||
        get_string(&r, in, "locale", "locale", false, &ev->val[SG_F_USER_LOCALE]) < 0 ||
        get_string(&r, user, "locale", "user.locale", false, &ev->val[SG_F_USER_LOCALE]) < 0)
        return -1;

    /* Click id: the event, then the landing URL, then the cookie. */
    if (get_string(&r, in, "ttclid", "ttclid", false, &ev->val[SG_F_USER_TTCLID]) < 0 ||
        get_string(&r, user, "ttclid", "user.ttclid", false, &ev->val[SG_F_USER_TTCLID]) < 0 ||
        get_string(&r, in, "ttp", "ttp", false, &ev->val[SG_F_USER_TTP]) < 0 ||
        get_string(&r, user, "ttp", "user.ttp", false, &ev->val[SG_F_USER_TTP]) < 0)
        return -1;
    if (!ev->val[SG_F_USER_TTCLID] && ev->val[SG_F_PAGE_URL])
        ev->val[SG_F_USER_TTCLID] = sg_url_query_param(ev->val[SG_F_PAGE_URL], "ttclid");
    keep_click_id(ev, SG_F_USER_TTCLID, phone_region);
    if (ev->val[SG_F_USER_TTCLID]) /* a click id from this event: the cookie may keep it */
        ev->click_id = sg_arena_strdup(ev->val[SG_F_USER_TTCLID]);
    /* What comes from the request's headers (the cookies' ids, the user agent) is copied to
     * the heap, not the request's region: every event of a batch takes its own copy, and in
     * the region each would stay until the request ends (a region free is a no-op), so a
     * batch's memory would grow with events times header bytes. From the heap each copy goes
     * with its event. What comes from the body stays in proportion to the body. */
    if (!ev->val[SG_F_USER_TTCLID] && ctx->cookie_ttclid && *ctx->cookie_ttclid &&
        strlen(ctx->cookie_ttclid) <= limits->max_field_bytes) {
        ev->val[SG_F_USER_TTCLID] = sg_xstrdup(ctx->cookie_ttclid);
        keep_click_id(ev, SG_F_USER_TTCLID, phone_region); /* the cookie's, not checked yet */
    }
    if (!ev->val[SG_F_USER_TTP] && ctx->cookie_ttp && *ctx->cookie_ttp &&
        strlen(ctx->cookie_ttp) <= limits->max_field_bytes)
        ev->val[SG_F_USER_TTP] = sg_xstrdup(ctx->cookie_ttp);
    /* Click ids and the locale are tokens; anything else in them is noise or worse. */
    keep_click_id(ev, SG_F_USER_TTP, phone_region);
    keep_token(ev, SG_F_USER_LOCALE, locale_char, 35);

    /* IP and user agent: from the connection, or from an authenticated server's body. */
    char *body_ip = NULL, *body_ua = NULL;
    if (ctx->trusted_server) {
        if (get_string(&r, in, "ip", "ip", false, &body_ip) < 0 ||
            get_string(&r, in, "user_agent", "user_agent", false, &body_ua) < 0 ||
            get_string(&r, user, "ip", "user.ip", false, &body_ip) < 0 ||
            get_string(&r, user, "user_agent", "user.user_agent", false, &body_ua) < 0) {
            sg_arena_free(body_ip);
            sg_arena_free(body_ua);
            return -1;
        }
    }
    if (body_ip) {
        char canon[INET6_ADDRSTRLEN];
        int bad = sg_addr_canonical(body_ip, canon, sizeof(canon));
        sg_arena_free(body_ip);
        if (bad < 0) {
            sg_arena_free(body_ua);
            return FAIL(&r, "%s: not an IP address", "ip");
        }
        ev->val[SG_F_USER_IP] = sg_arena_strdup(canon);
    } else if (ctx->ip[0]) {
        ev->val[SG_F_USER_IP] = sg_arena_strdup(ctx->ip);
    }
    if (body_ua)
        ev->val[SG_F_USER_USER_AGENT] = body_ua;
    else if (ctx->user_agent && *ctx->user_agent &&
             strlen(ctx->user_agent) <= limits->max_field_bytes)
        ev->val[SG_F_USER_USER_AGENT] = sg_xstrdup(ctx->user_agent);

    if (props) {
        if (check_props(&r, props, 0) < 0)
            return -1;
        /* The rules change properties in place: a copy, unless the input is read once. */
        ev->props = ctx->input_disposable ? json_incref(props) : json_deep_copy(props);
    }
    ev->consent_field = json_object_get(in, "consent");
    return 0;
}
