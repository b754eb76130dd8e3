/*
 * jsonparse.c - the ingest body's JSON in one pass over the text, building
 * jansson values; whatever it is not sure of goes to json_loadb(). See
 * jsonparse.h for the contract.
 *
 * The grammar is RFC 8259's as jansson 2.14 reads it without flags but
 * JSON_REJECT_DUPLICATES: an object or an array at the top, white space
 * (space, tab, LF, CR) between tokens and nothing after the value; strings
 * of well-formed UTF-8 without control bytes, escapes \" \\ \/ \b \f \n \r
 * \t and \uXXXX (surrogates in pairs, never \u0000); numbers without
 * leading zeros, an integer when there is no fraction or exponent (a
 * json_int_t, as strtoll reads it), else a real (as strtod reads it).
 */
#include "scrubgate/jsonparse.h"
#include "scrubgate/buf.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Deeper documents go to jansson (whose own limit is 2048): the recursion here stays small. */
#define MAX_DEPTH 128
/* A number token longer than this goes to jansson too (strtod needs a copy). */
#define MAX_NUMBER 64

struct parser {
    const char *p, *end;
    int depth;
    struct sg_buf *scratch; /* decoded strings with escapes */
};

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

/* Four hex digits at s (n readable): the value, or -1. */
static long hex4(const char *s, size_t n)
{
    long v = 0;
    if (n < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int d = sg_hexval((unsigned char)s[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/*
 * The string whose opening quote was just read: *s and *n are its bytes, in
 * the text itself when it has no escape, else in the scratch buffer. -1 to
 * leave the document to jansson.
 */
static int string(struct parser *ps, const char **s, size_t *n)
{
    const char *start = ps->p, *q = start;
    while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    if (q >= ps->end || (unsigned char)*q < 0x20)
        return -1;
    if (*q == '"') {
        if (!sg_utf8_valid(start, (size_t)(q - start)))
            return -1;
        *s = start;
        *n = (size_t)(q - start);
        ps->p = q + 1;
        return 0;
    }
    struct sg_buf *b = ps->scratch;
    sg_buf_reset(b);
    sg_buf_add(b, start, (size_t)(q - start));
    while (q < ps->end && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            const char *run = q;
            while (q < ps->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
                q++;
            sg_buf_add(b, run, (size_t)(q - run));
            continue;
        }
        if (++q >= ps->end)
            return -1;
        char e = *q++, out;
        switch (e) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            long cp = hex4(q, (size_t)(ps->end - q));
            if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
                return -1; /* \u0000, a lone low surrogate, or no hex */
            q += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (ps->end - q < 6 || q[0] != '\\' || q[1] != 'u')
                    return -1;
                long lo = hex4(q + 2, 4);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                q += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            sg_buf_utf8(b, (unsigned)cp);
            continue;
        }
        default:
            return -1;
        }
        sg_buf_addc(b, out);
    }
    /* An escape always writes a whole sequence, so checking the result checks the raw runs. */
    if (q >= ps->end || !b->data || !sg_utf8_valid(b->data, b->len))
        return -1;
    ps->p = q + 1;
    *s = b->data;
    *n = b->len;
    return 0;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static json_t *number(struct parser *ps)
{
    const char *start = ps->p, *q = start;
    bool neg = false, real = false;
    unsigned long long m = 0; /* the significant digits, while there are at most 18 */
    int digits = 0, scale = 0;
    if (*q == '-') {
        neg = true;
        q++;
    }
    if (q >= ps->end || !sg_is_digit(*q))
        return NULL;
    if (*q == '0' && q + 1 < ps->end && sg_is_digit(q[1]))
        return NULL; /* a leading zero */
    for (; q < ps->end && sg_is_digit(*q); q++)
        if (digits || *q != '0') {
            if (++digits <= 18)
                m = m * 10 + (unsigned)(*q - '0');
            else
                scale++;
        }
    if (q < ps->end && *q == '.') {
        real = true;
        if (++q >= ps->end || !sg_is_digit(*q))
            return NULL;
        for (; q < ps->end && sg_is_digit(*q); q++)
            if (digits || *q != '0') {
                if (++digits <= 18) {
                    m = m * 10 + (unsigned)(*q - '0');
                    scale--;
                }
            } else {
                scale--;
            }
    }
    long exp = 0;
    bool exp_cut = false; /* digits of a huge exponent were dropped: strtod reads it */
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        real = true;
        bool eneg = false;
        if (++q < ps->end && (*q == '+' || *q == '-'))
            eneg = *q++ == '-';
        if (q >= ps->end || !sg_is_digit(*q))
            return NULL;
        for (; q < ps->end && sg_is_digit(*q); q++) {
            if (exp >= 100000)
                exp_cut = true;
            else
                exp = exp * 10 + (*q - '0');
        }
        if (eneg)
            exp = -exp;
    }
    size_t len = (size_t)(q - start);
    ps->p = q;
    if (!real) {
        if (digits <= 18) /* exact in a json_int_t */
            return json_integer(neg ? -(json_int_t)m : (json_int_t)m);
    } else if (digits <= 15 && !exp_cut) {
        /* Both operands exact (m < 2^53, a power of ten to 10^22): one correctly rounded
         * operation gives what strtod gives. */
        long e10 = scale + exp;
        if (e10 >= -22 && e10 <= 22) {
            double d = (double)m;
            d = e10 < 0 ? d / pow10_exact[-e10] : d * pow10_exact[e10];
            return json_real(neg ? -d : d);
        }
    }
    if (len >= MAX_NUMBER)
        return NULL;
    char tok[MAX_NUMBER];
    memcpy(tok, start, len);
    tok[len] = '\0';
    errno = 0;
    if (!real) {
        long long v = strtoll(tok, NULL, 10);
        return errno == ERANGE ? NULL : json_integer((json_int_t)v);
    }
    double d = strtod(tok, NULL);
    if (errno == ERANGE && isinf(d))
        return NULL; /* jansson's "real number overflow" */
    return json_real(d);
}

static json_t *value(struct parser *ps);

static json_t *array(struct parser *ps)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(ps);
        if (!v || json_array_append_new(a, v) < 0)
            break;
        skip_ws(ps);
        if (ps->p >= ps->end)
            break;
        char c = *ps->p++;
        if (c == ']')
            return a;
        if (c != ',')
            break;
    }
    json_decref(a);
    return NULL;
}

static json_t *object(struct parser *ps)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return o;
    }
    for (;;) {
        const char *k;
        size_t kn;
        if (ps->p >= ps->end || *ps->p++ != '"' || string(ps, &k, &kn) < 0)
            break;
        /* a key with escapes is in the scratch buffer, which the value may reuse */
        char small[64], *copy = NULL;
        const char *key = k;
        if (k == ps->scratch->data) {
            copy = kn < sizeof(small) ? small : malloc(kn);
            if (!copy)
                break;
            key = memcpy(copy, k, kn);
        }
        json_t *v = NULL;
        if (!json_object_getn(o, key, kn)) { /* a duplicate: jansson's error */
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p++ == ':')
                v = value(ps);
        }
        int rc = v ? json_object_setn_new_nocheck(o, key, kn, v) : -1;
        if (copy != small)
            free(copy);
        if (rc < 0)
            break;
        skip_ws(ps);
        if (ps->p >= ps->end)
            break;
        char c = *ps->p++;
        if (c == '}')
            return o;
        if (c != ',')
            break;
        skip_ws(ps);
    }
    json_decref(o);
    return NULL;
}

static json_t *value(struct parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return NULL;
    const char *s;
    size_t n;
    json_t *v = NULL;
    switch (*ps->p) {
    case '{':
    case '[':
        if (ps->depth >= MAX_DEPTH)
            return NULL;
        ps->depth++;
        v = *ps->p++ == '{' ? object(ps) : array(ps);
        ps->depth--;
        return v;
    case '"':
        ps->p++;
        return string(ps, &s, &n) < 0 ? NULL : json_stringn_nocheck(s, n);
    case 't':
        if (ps->end - ps->p >= 4 && memcmp(ps->p, "true", 4) == 0) {
            ps->p += 4;
            return json_true();
        }
        return NULL;
    case 'f':
        if (ps->end - ps->p >= 5 && memcmp(ps->p, "false", 5) == 0) {
            ps->p += 5;
            return json_false();
        }
        return NULL;
    case 'n':
        if (ps->end - ps->p >= 4 && memcmp(ps->p, "null", 4) == 0) {
            ps->p += 4;
            return json_null();
        }
        return NULL;
    default:
        return number(ps);
    }
}

json_t *sg_json_parse_fast(const char *text, size_t len)
{
    struct sg_buf scratch;
    sg_buf_init(&scratch, 0);
    struct parser ps = {text, text + len, 0, &scratch};
    skip_ws(&ps);
    json_t *doc = ps.p < ps.end && (*ps.p == '{' || *ps.p == '[') ? value(&ps) : NULL;
    skip_ws(&ps);
    if (doc && ps.p != ps.end) {
        json_decref(doc);
        doc = NULL;
    }
    sg_buf_release(&scratch);
    return doc;
}

json_t *sg_json_load(const char *text, size_t len, json_error_t *err)
{
    json_t *doc = sg_json_parse_fast(text, len);
    return doc ? doc : json_loadb(text, len, JSON_REJECT_DUPLICATES, err);
}

bool sg_json_identical(const json_t *a, const json_t *b)
{
    if (!a || !b || json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia),
                         ib = json_object_iter_next((json_t *)b, ib)) {
            size_t na = json_object_iter_key_len(ia), nb = json_object_iter_key_len(ib);
            if (na != nb || memcmp(json_object_iter_key(ia), json_object_iter_key(ib), na) != 0 ||
                !sg_json_identical(json_object_iter_value(ia), json_object_iter_value(ib)))
                return false;
        }
        return !ia && !ib;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!sg_json_identical(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof(x)) == 0;
    }
    default:
        return true; /* true, false, null */
    }
}
