/*
 * decode.h - the encodings and look-alike characters the scrubber sees
 * through (src/rules/decode.c). Each writes into out (reset first) and never
 * reads past len; none allocates beyond out's cap.
 */
#ifndef SCRUBGATE_DECODE_H
#define SCRUBGATE_DECODE_H

#include "scrubgate/buf.h"
#include "scrubgate/common.h"

/* Shorter runs of base64 letters are words, not encodings. */
#define SG_B64_MIN 8

/* Percent-decode (and '+' as space when plus) into out. 0 or -1 on overflow. */
int sg_percent_decode(const char *s, size_t len, bool plus, struct sg_buf *out);
/* The same into out, which has room for len + 1 bytes (the text and a NUL): the length. */
size_t sg_percent_decode_to(const char *s, size_t len, bool plus, char *out);

/* Does s hold a %XX escape? */
bool sg_has_escape(const char *s, size_t len);

/*
 * Decode base64 or base64url (padding optional, line breaks skipped) into out
 * when the result is text: printable ASCII, tabs and newlines, UTF-8 bytes,
 * or UTF-16LE of those. 1 when it is, 0 when not, -1 on overflow.
 */
int sg_b64_text(const char *s, size_t len, struct sg_buf *out);

/*
 * HTML's &#64; &#x40; &commat; (and a few more named ones), JavaScript's
 * \u0040 and \x40, and %u0040 replaced by their characters (UTF-8). True when
 * s had one; out is then s unescaped.
 */
bool sg_unescape(const char *s, size_t len, struct sg_buf *out);

/*
 * Characters that stand for ASCII ones in what people type, folded to them:
 * other spaces (no-break, thin, ideographic), dashes and the minus sign,
 * invisible ones (zero-width, soft hyphen, BOM: removed), full-width forms
 * (０-９, ＠, Ａ-Ｚ) and Arabic-Indic and Devanagari digits. For identifiers
 * also "_" and ":" as spaces, and a space between a letter and a digit
 * ("ord4111..."). True when out differs from s.
 */
bool sg_fold(const char *s, size_t len, bool identifier, struct sg_buf *out);

#endif
