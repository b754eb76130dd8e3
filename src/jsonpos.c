/*
 * jsonpos.c - locate values in JSON text by path, for file:line:column errors.
 *
 * The scanner trusts that the text already parsed with jansson, so it only
 * needs to skip values correctly; it never allocates.
 */
#include "scrubgate/common.h"
#include "scrubgate/jsonpos.h"
#include "scrubgate/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *s;
    size_t len;
    size_t pos;
};

static void skip_ws(struct scan *sc)
{
    while (sc->pos < sc->len && strchr(" \t\r\n", sc->s[sc->pos]) && sc->s[sc->pos])
        sc->pos++;
}

/* Skip a string starting at '"'; returns the position after the closing quote. */
static void skip_string(struct scan *sc)
{
    sc->pos++;
    while (sc->pos < sc->len && sc->s[sc->pos] != '"') {
        if (sc->s[sc->pos] == '\\')
            sc->pos++;
        sc->pos++;
    }
    sc->pos++;
}

static void skip_value(struct scan *sc)
{
    skip_ws(sc);
    if (sc->pos >= sc->len)
        return;
    char c = sc->s[sc->pos];
    if (c == '"') {
        skip_string(sc);
    } else if (c == '{' || c == '[') {
        int depth = 0;
        while (sc->pos < sc->len) {
            c = sc->s[sc->pos];
            if (c == '"') {
                skip_string(sc);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0) {
                sc->pos++;
                return;
            }
            sc->pos++;
        }
    } else {
        while (sc->pos < sc->len && !strchr(",]} \t\r\n", sc->s[sc->pos]))
            sc->pos++;
    }
}

/* Compare the JSON string at pos (raw, escapes compared literally) with key. */
static bool key_equals(const struct scan *sc, const char *key, size_t klen)
{
    size_t start = sc->pos + 1;
    size_t end = start;
    while (end < sc->len && sc->s[end] != '"') {
        if (sc->s[end] == '\\')
            end++;
        end++;
    }
    return end - start == klen && memcmp(sc->s + start, key, klen) == 0;
}

static void line_col(const char *s, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        if (s[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)s[i] & 0xC0) != 0x80) {
            c++; /* count characters, not UTF-8 continuation bytes */
        }
    }
    *line = l;
    *col = c;
}

int sg_jsonpos_find(const char *text, size_t len, const char *path, int *line, int *col,
                    bool at_key)
{
    struct scan sc = {text, len, 0};
    const char *p = path;
    size_t key_pos = 0;

    skip_ws(&sc);
    while (*p) {
        if (*p == '.')
            p++;
        skip_ws(&sc);
        if (sc.pos >= len)
            return -1;
        const char *key = p, *after = NULL;
        size_t klen = 0;
        if (p[0] == '[' && p[1] == '"') {
            /* ["a key with . or ["]: an object key that a dotted path cannot spell */
            const char *q = strstr(p + 2, "\"]");
            if (!q)
                return -1;
            key = p + 2;
            klen = (size_t)(q - key);
            after = q + 2;
        } else if (*p != '[') {
            klen = strcspn(p, ".[");
            after = p + klen;
        }
        if (!after) {
            char *end;
            errno = 0;
            unsigned long idx = strtoul(p + 1, &end, 10);
            if (*end != ']' || sc.s[sc.pos] != '[')
                return -1;
            p = end + 1;
            sc.pos++;
            for (unsigned long i = 0;; i++) {
                skip_ws(&sc);
                if (sc.pos >= len || sc.s[sc.pos] == ']')
                    return -1;
                if (i == idx)
                    break;
                skip_value(&sc);
                skip_ws(&sc);
                if (sc.pos < len && sc.s[sc.pos] == ',')
                    sc.pos++;
            }
            key_pos = sc.pos;
        } else {
            if (sc.s[sc.pos] != '{')
                return -1;
            sc.pos++;
            for (;;) {
                skip_ws(&sc);
                if (sc.pos >= len || sc.s[sc.pos] != '"')
                    return -1;
                bool match = key_equals(&sc, key, klen);
                key_pos = sc.pos;
                skip_string(&sc);
                skip_ws(&sc);
                if (sc.pos < len && sc.s[sc.pos] == ':')
                    sc.pos++;
                skip_ws(&sc);
                if (match)
                    break;
                skip_value(&sc);
                skip_ws(&sc);
                if (sc.pos < len && sc.s[sc.pos] == ',')
                    sc.pos++;
            }
            p = after;
        }
    }
    line_col(text, at_key ? key_pos : sc.pos, line, col);
    return 0;
}

void sg_json_syntax_error(const json_error_t *e, char *out, size_t cap)
{
    const char *near = strstr(e->text, " near ");
    int keep = near ? (int)(near - e->text) : (int)strlen(e->text);
    snprintf(out, cap, "line %d column %d: %.*s", e->line, e->column, keep, e->text);
}

int sg_jsondoc_load(struct sg_jsondoc *doc, const char *file, const char *text, size_t len)
{
    json_error_t jerr;
    memset(doc, 0, sizeof(*doc));
    doc->file = sg_xstrdup(file);
    if (text) {
        doc->text = sg_xstrndup(text, len);
        doc->len = len;
    } else {
        doc->text = sg_read_file(file, &doc->len);
        if (!doc->text)
            return sg_error("%s: cannot open: %s", file, strerror(errno));
    }
    doc->root = json_loadb(doc->text, doc->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc->root)
        return sg_error("%s:%d:%d: %s", file, jerr.line, jerr.column, jerr.text);
    return 0;
}

void sg_jsondoc_release(struct sg_jsondoc *doc)
{
    free(doc->file);
    free(doc->text);
    json_decref(doc->root);
    memset(doc, 0, sizeof(*doc));
}

int sg_jsondoc_error(const struct sg_jsondoc *doc, const char *path, bool at_key,
                     const char *fmt, ...)
{
    char msg[512];
    int line = 1, col = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (doc->text)
        sg_jsonpos_find(doc->text, doc->len, path, &line, &col, at_key);
    return sg_error("%s:%d:%d: %s: %s", doc->file, line, col, *path ? path : "(top level)", msg);
}

int sg_jsondoc_check_keys(const struct sg_jsondoc *doc, json_t *obj, const char *path,
                          const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                ok = true;
        if (!ok) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
            return sg_jsondoc_error(doc, sub, true, "unknown key \"%s\"", key);
        }
    }
    return 0;
}
