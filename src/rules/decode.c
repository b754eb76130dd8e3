/*
 * decode.c - the encodings and look-alike characters that hide personal data
 * from a pattern: percent-encoding, base64, HTML and JavaScript escapes,
 * full-width forms and other spaces, dashes and digits. Pure functions over
 * bytes, writing into a caller's buffer; the scrubber (scrub.c) decides what
 * to scan.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/decode.h"

#include <string.h>

size_t sg_percent_decode_to(const char *s, size_t len, bool plus, char *out)
{
    size_t n = 0;
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
        out[n++] = c;
    }
    out[n] = '\0';
    return n;
}

int sg_percent_decode(const char *s, size_t len, bool plus, struct sg_buf *out)
{
    sg_buf_reset(out);
    if (!memchr(s, '%', len) && !(plus && memchr(s, '+', len))) { /* nothing to decode */
        if (sg_buf_add(out, s, len) < 0)
            return -1;
        sg_buf_cstr(out);
        return 0;
    }
    if (sg_buf_reserve(out, len) < 0) /* the text decoded is never longer */
        return -1;
    out->len = sg_percent_decode_to(s, len, plus, out->data);
    return 0;
}

bool sg_has_escape(const char *s, size_t len)
{
    for (const char *p = s; (p = memchr(p, '%', len - (size_t)(p - s))) != NULL; p++)
        if ((size_t)(p - s) + 2 < len && sg_hexval((unsigned char)p[1]) >= 0 &&
            sg_hexval((unsigned char)p[2]) >= 0)
            return true;
    return false;
}


/*
 * Decode base64 or base64url (padding optional) into out when the result is
 * text: printable ASCII, tabs and newlines, or UTF-8 bytes. 1 when it is, 0
 * when s is not an encoding of text, -1 on overflow.
 */
int sg_b64_text(const char *s, size_t len, struct sg_buf *out)
{
    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len < SG_B64_MIN)
        return 0;
    sg_buf_reset(out);
    unsigned acc = 0, bits = 0;
    size_t pos = 0; /* of the decoded byte */
    char chunk[256];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' || s[i] == '\r') /* MIME wraps lines */
            continue;
        int v = sg_b64val((unsigned char)s[i]);
        if (v < 0)
            return 0;
        acc = (acc << 6) | (unsigned)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            unsigned char c = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
            if (c == 0 && pos++ % 2 == 1)
                continue; /* UTF-16LE text: the high byte of each ASCII character */
            if (c == 0)
                return 0;
            if (c < 0x20 ? !(c == '\t' || c == '\n' || c == '\r') : c == 0x7F)
                return 0;
            chunk[n++] = (char)c;
            if (n == sizeof(chunk)) {
                if (sg_buf_add(out, chunk, n) < 0)
                    return -1;
                n = 0;
            }
            pos++;
        }
    }
    if (sg_buf_add(out, chunk, n) < 0)
        return -1;
    sg_buf_cstr(out);
    return out->len >= SG_B64_MIN * 3 / 4 ? 1 : 0;
}

/* n hex (base 16) or decimal digits of s as a number; -1 if any is not one. */
static long digits_value(const char *s, size_t n, int base)
{
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = base == 16 ? sg_hexval((unsigned char)s[i]) : (sg_is_digit(s[i]) ? s[i] - '0' : -1);
        if (d < 0)
            return -1;
        v = v * base + d;
    }
    return v;
}

/*
 * Character escapes other than percent-encoding, as pages and JavaScript
 * write them: HTML's &#64; &#x40; &commat; &period; &plus; &amp; &nbsp;,
 * JSON's and JavaScript's \u0040 and \x40, and %u0040. True when s had one
 * (out holds s with them replaced).
 */
bool sg_unescape(const char *s, size_t len, struct sg_buf *out)
{
    bool any = memchr(s, '&', len) || memchr(s, '\\', len);
    for (const char *p = s; !any && (p = memchr(p, '%', len - (size_t)(p - s))) != NULL; p++)
        any = (size_t)(p - s) + 1 < len && (p[1] | 32) == 'u';
    if (!any)
        return false; /* the common case: nothing to copy */
    static const struct {
        const char *name;
        unsigned cp;
    } named[] = {{"&commat;", '@'}, {"&period;", '.'}, {"&plus;", '+'}, {"&amp;", '&'},
                 {"&nbsp;", ' '},   {"&hyphen;", '-'}, {"&dash;", '-'}, {"&lpar;", '('},
                 {"&rpar;", ')'}};
    bool changed = false;
    sg_buf_reset(out);
    for (size_t i = 0; i < len;) {
        long cp = -1;
        size_t n = 0;
        if (s[i] == '&' && i + 3 < len && s[i + 1] == '#') {
            bool hex = (s[i + 2] | 32) == 'x';
            size_t st = i + 2 + hex, e = st;
            while (e < len && e - st < 7 && s[e] != ';')
                e++;
            if (e < len && s[e] == ';' && e > st)
                cp = digits_value(s + st, e - st, hex ? 16 : 10), n = e + 1 - i;
        } else if (s[i] == '&') {
            for (size_t k = 0; k < SG_ARRAY_SIZE(named); k++) {
                size_t nl = strlen(named[k].name);
                if (i + nl <= len && sg_strncaseeq(s + i, named[k].name, nl)) {
                    cp = named[k].cp, n = nl;
                    break;
                }
            }
        } else if ((s[i] == '\\' || s[i] == '%') && i + 5 < len + 0 && (s[i + 1] | 32) == 'u') {
            cp = digits_value(s + i + 2, 4, 16), n = 6;
        } else if (s[i] == '\\' && i + 3 < len && s[i + 1] == 'x') {
            cp = digits_value(s + i + 2, 2, 16), n = 4;
        }
        if (cp > 0 && cp <= 0x10FFFF) {
            if (sg_buf_utf8(out, (unsigned)cp) < 0)
                return false;
            changed = true;
            i += n;
        } else {
            if (sg_buf_addc(out, s[i]) < 0)
                return false;
            i++;
        }
    }
    sg_buf_cstr(out);
    return changed;
}

/*
 * Characters that stand for ASCII ones in what people type: other spaces
 * (no-break, thin, ideographic), dashes and the minus sign, invisible ones
 * (zero-width, soft hyphen, BOM: removed), full-width forms (０-９, ＠, Ａ-Ｚ:
 * Japanese and Chinese input methods write these) and other scripts' decimal
 * digits (Arabic-Indic, Devanagari). For identifiers also "_" and ":" as
 * spaces, and a space between a letter and a digit ("ord4111…"). True when
 * out differs from s.
 */
bool sg_fold(const char *s, size_t len, bool identifier, struct sg_buf *out)
{
    size_t k = 0;
    if (!identifier) /* the common case: ASCII, or no lead byte of a folded character */
        for (; k < len; k++) {
            unsigned char c = (unsigned char)s[k];
            if (c >= 0xC2 && (c == 0xC2 || c == 0xD9 || c == 0xDB || (c & 0xF0) == 0xE0 ||
                              c == 0xEF))
                break;
        }
    if (k == len)
        return false;
    bool changed = false;
    sg_buf_reset(out);
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t left = len - i;
        int c = -1;     /* the ASCII character it stands for; -2: nothing */
        size_t n = 1;
        if (left >= 2 && u[0] == 0xC2 && (u[1] == 0xA0 || u[1] == 0xAD))
            c = u[1] == 0xA0 ? ' ' : -2, n = 2;
        else if (left >= 2 && ((u[0] == 0xD9 && u[1] >= 0xA0 && u[1] <= 0xA9) ||
                               (u[0] == 0xDB && u[1] >= 0xB0 && u[1] <= 0xB9)))
            c = '0' + (u[1] & 0x0F), n = 2;
        else if (left >= 3 && u[0] == 0xE0 && u[1] == 0xA5 && u[2] >= 0xA6 && u[2] <= 0xAF)
            c = '0' + u[2] - 0xA6, n = 3;
        else if (left >= 3 && u[0] == 0xE2 && u[1] == 0x80 && u[2] <= 0xAF)
            c = (u[2] <= 0x8A || u[2] == 0xAF) ? ' ' : (u[2] <= 0x8F ? -2 : (u[2] <= 0x95 ? '-' : -1)),
            n = 3;
        else if (left >= 3 && u[0] == 0xE2 && u[1] == 0x81 && (u[2] == 0xA0 || u[2] == 0x9F))
            c = u[2] == 0xA0 ? -2 : ' ', n = 3;
        else if (left >= 3 && u[0] == 0xE2 && u[1] == 0x88 && u[2] == 0x92)
            c = '-', n = 3;
        else if (left >= 3 && u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x80)
            c = ' ', n = 3;
        else if (left >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF)
            c = -2, n = 3;
        else if (left >= 3 && u[0] == 0xEF && u[1] == 0xBC && u[2] >= 0x81)
            c = 0x21 + (u[2] - 0x81), n = 3; /* U+FF01..FF3F */
        else if (left >= 3 && u[0] == 0xEF && u[1] == 0xBD && u[2] >= 0x80 && u[2] <= 0x9E)
            c = 0x60 + (u[2] - 0x80), n = 3; /* U+FF40..FF5E */
        else if (identifier && (u[0] == '_' || u[0] == ':'))
            c = ' ';
        if (c == -1) {
            if (identifier && i > 0 && sg_is_alnum(s[i]) && sg_is_alnum(s[i - 1]) &&
                sg_is_digit(s[i]) != sg_is_digit(s[i - 1])) {
                if (sg_buf_addc(out, ' ') < 0)
                    return false;
                changed = true;
            }
            if (sg_buf_addc(out, s[i]) < 0)
                return false;
            i++;
            continue;
        }
        if (c >= 0 && sg_buf_addc(out, (char)c) < 0)
            return false;
        changed = true;
        i += n;
    }
    sg_buf_cstr(out);
    return changed;
}
