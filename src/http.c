/*
 * http.c - reading one HTTP/1.1 request in place and writing its reply into
 * one buffer. See http.h for the contract; conn.c owns the connection, the
 * framing and the deadlines.
 *
 * The scanner (conn.c) has already decided where the request ends and that
 * its framing is sound: header names are tokens, no control characters, no
 * folding, bare LF or CRLF line ends. What is left here is the request
 * line's three parts and cutting the header block into name/value pairs.
 */
#include "scrubgate/http.h"
#include "http_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const bool sg_http_tchar[256] = {
    ['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true, ['\''] = true,
    ['*'] = true, ['+'] = true, ['-'] = true, ['.'] = true, ['^'] = true, ['_'] = true,
    ['`'] = true, ['|'] = true, ['~'] = true,
    ['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true, ['5'] = true,
    ['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true,
    ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true, ['F'] = true,
    ['G'] = true, ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true, ['L'] = true,
    ['M'] = true, ['N'] = true, ['O'] = true, ['P'] = true, ['Q'] = true, ['R'] = true,
    ['S'] = true, ['T'] = true, ['U'] = true, ['V'] = true, ['W'] = true, ['X'] = true,
    ['Y'] = true, ['Z'] = true,
    ['a'] = true, ['b'] = true, ['c'] = true, ['d'] = true, ['e'] = true, ['f'] = true,
    ['g'] = true, ['h'] = true, ['i'] = true, ['j'] = true, ['k'] = true, ['l'] = true,
    ['m'] = true, ['n'] = true, ['o'] = true, ['p'] = true, ['q'] = true, ['r'] = true,
    ['s'] = true, ['t'] = true, ['u'] = true, ['v'] = true, ['w'] = true, ['x'] = true,
    ['y'] = true, ['z'] = true,
};

/* ---- header fields ---- */

void sg_http_fields_init(struct sg_http_fields *f)
{
    f->v = NULL;
    f->n = f->cap = 0;
}

void sg_http_fields_release(struct sg_http_fields *f)
{
    free(f->v);
    sg_http_fields_init(f);
}

static void fields_push(struct sg_http_fields *f, const char *name, size_t name_len,
                        const char *value)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->v = sg_xrealloc(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->n++] = (struct sg_http_field){name, value, name_len};
}

void sg_http_fields_add(struct sg_http_fields *f, const char *name, const char *value)
{
    fields_push(f, name, strlen(name), value);
}

const char *sg_http_fields_get(const struct sg_http_fields *f, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].name_len == n && strncasecmp(f->v[i].name, name, n) == 0)
            return f->v[i].value;
    return NULL;
}

/* ---- the request ---- */

enum sg_http_method sg_http_method(const struct sg_http_req *r)
{
    return r->method;
}

const char *sg_http_path(const struct sg_http_req *r)
{
    return r->path;
}

const char *sg_http_query(const struct sg_http_req *r)
{
    return r->query;
}

const char *sg_http_query_param(const char *query, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (const char *p = query; p;) {
        if (strncasecmp(p, name, n) == 0 && p[n] == '=') {
            *len = strcspn(p + n + 1, "&");
            return p + n + 1;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return NULL;
}

const struct sg_http_fields *sg_http_headers(const struct sg_http_req *r)
{
    return &r->in;
}

const char *sg_http_header(const struct sg_http_req *r, const char *name)
{
    return sg_http_fields_get(&r->in, name);
}

const char *sg_http_body(const struct sg_http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body_len ? r->body : "";
}

static enum sg_http_method method_of(const char *m, size_t n)
{
    static const struct {
        const char *name;
        enum sg_http_method method;
    } known[] = {{"GET", SG_HTTP_GET},         {"HEAD", SG_HTTP_HEAD},  {"POST", SG_HTTP_POST},
                 {"PUT", SG_HTTP_PUT},         {"DELETE", SG_HTTP_DELETE},
                 {"OPTIONS", SG_HTTP_OPTIONS}, {"PATCH", SG_HTTP_PATCH}};
    for (size_t i = 0; i < SG_ARRAY_SIZE(known); i++)
        if (strlen(known[i].name) == n && memcmp(known[i].name, m, n) == 0)
            return known[i].method;
    return SG_HTTP_OTHER;
}

/* Whether a Connection header's comma-separated list holds token. */
static bool has_token(const char *list, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if ((size_t)(p - start) == n && strncasecmp(start, token, n) == 0)
            return true;
    }
    return false;
}

/*
 * The request target: origin-form ("/path?query"), absolute-form
 * ("http://host/path", as a proxy would send it: the path is what counts) or
 * "*" (OPTIONS). A fragment is not part of the path.
 */
static const char *read_target(struct sg_http_req *r, char *t)
{
    if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
        t = strchr(t + (t[4] == ':' ? 7 : 8), '/');
        if (!t)
            return "bad request target";
    } else if (strcmp(t, "*") == 0) {
        r->path = t;
        return NULL;
    } else if (t[0] != '/') {
        return "bad request target";
    }
    char *q = strpbrk(t, "?#");
    if (q && *q == '?') {
        *q++ = '\0';
        char *frag = strchr(q, '#');
        if (frag)
            *frag = '\0';
        r->query = q;
    } else if (q) {
        *q = '\0';
    }
    r->path = t;
    return NULL;
}

/* The request line, NUL-terminated at p: METHOD SP target SP HTTP/1.x (trailing blanks allowed). */
static const char *read_request_line(struct sg_http_req *r, char *p)
{
    char *sp1 = strchr(p, ' ');
    if (!sp1 || sp1 == p)
        return "bad request line";
    r->method = method_of(p, (size_t)(sp1 - p));
    char *target = sp1 + 1, *sp2 = strchr(target, ' ');
    if (!sp2 || sp2 == target)
        return "bad request line";
    *sp2 = '\0';
    char *version = sp2 + 1;
    size_t vlen = strlen(version);
    while (vlen && (version[vlen - 1] == ' ' || version[vlen - 1] == '\t'))
        version[--vlen] = '\0';
    if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0 || !sg_is_digit(version[7]))
        return "unsupported HTTP version";
    r->http10 = version[7] == '0';
    return read_target(r, target);
}

const char *sg_http_req_parse(struct sg_http_req *r, char *p, size_t head_len)
{
    char *end = p + head_len;
    r->method = SG_HTTP_OTHER;
    r->http10 = r->close_after = false;
    r->path = r->query = NULL;
    r->in.n = 0;
    r->body = NULL;
    r->body_len = 0;
    bool first = true;
    const char *why = NULL;
    while (p < end) {
        char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            lf = end; /* cannot happen: the head ends with an empty line */
        char *eol = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
        if (eol == p)
            break; /* the empty line that ends the head */
        *eol = '\0';
        if (first) {
            first = false;
            why = read_request_line(r, p);
            if (why)
                return why;
        } else {
            char *colon = strchr(p, ':'), *v = colon + 1, *ve = eol;
            if (!colon)
                return "bad header line"; /* the scanner never lets one through */
            *colon = '\0';
            while (*v == ' ' || *v == '\t')
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *ve = '\0';
            fields_push(&r->in, p, (size_t)(colon - p), v);
        }
        p = lf + 1;
    }
    if (first)
        return "bad request line";
    /* Keep-alive: HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive". */
    bool saw_close = false, saw_keep = false;
    for (size_t i = 0; i < r->in.n; i++) {
        if (strcasecmp(r->in.v[i].name, "Connection") != 0)
            continue;
        saw_close |= has_token(r->in.v[i].value, "close");
        saw_keep |= has_token(r->in.v[i].value, "keep-alive");
    }
    bool close = saw_close || (r->http10 && !saw_keep);
    r->close_after = close;
    return NULL;
}

size_t sg_http_dechunk(char *p, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        size_t size = 0;
        int v;
        while (in < n && (v = sg_hexval((unsigned char)p[in])) >= 0) {
            size = size * 16 + (size_t)v;
            in++;
        }
        while (in < n && p[in] != '\n')
            in++; /* the CR */
        in++;
        if (size == 0 || size > n - SG_MIN(in, n))
            break;
        memmove(p + out, p + in, size);
        out += size;
        in += size;
        if (in < n && p[in] == '\r')
            in++;
        in++; /* the LF after the data */
    }
    return out;
}

/* ---- the reply ---- */

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!sg_http_tchar[(unsigned char)*s])
            return false;
    return true;
}

/* The reply header line that starts at p (in r->head) is called name. */
static bool line_is(const char *p, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(p, name, n) == 0 && p[n] == ':';
}

bool sg_http_has_reply_header(const struct sg_http_req *r, const char *name)
{
    if (!r->head.len)
        return false; /* and head.data may be NULL */
    for (const char *p = r->head.data, *e = p + r->head.len; p < e;) {
        if (line_is(p, name))
            return true;
        p = strchr(p, '\n') + 1;
    }
    return false;
}

void sg_http_remove_reply_header(struct sg_http_req *r, const char *name)
{
    if (!r->head.len)
        return; /* and head.data may be NULL */
    char *p = r->head.data, *e = p + r->head.len;
    while (p < e) {
        char *next = strchr(p, '\n') + 1;
        if (line_is(p, name)) {
            memmove(p, next, (size_t)(e - next) + 1);
            r->head.len -= (size_t)(next - p);
            e = r->head.data + r->head.len;
        } else {
            p = next;
        }
    }
}

void sg_http_add_header(struct sg_http_req *r, const char *name, const char *value)
{
    if (!is_token(name) || strpbrk(value, "\r\n"))
        return;
    if (strcasecmp(name, "Connection") == 0) {
        if (has_token(value, "close"))
            r->close_after = true;
        return;
    }
    if (strcasecmp(name, "Date") == 0 || strcasecmp(name, "Content-Length") == 0)
        return;
    sg_buf_adds(&r->head, name);
    sg_buf_add(&r->head, ": ", 2);
    sg_buf_adds(&r->head, value);
    sg_buf_add(&r->head, "\r\n", 2);
}

/* "Date: <IMF-fixdate>\r\n" for now, made once a second per thread. */
static const char *date_line(void)
{
    static _Thread_local char line[48];
    static _Thread_local time_t made = -1;
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != made) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(line, sizeof(line), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        made = now;
    }
    return line;
}

static void add_uint(struct sg_buf *b, unsigned long long v)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sg_buf_add(b, digits + i, sizeof(digits) - i);
}

void sg_http_reply_format(struct sg_http_req *r, struct sg_buf *out, int code, const char *reason,
                          const void *body, size_t len)
{
    bool may_have_body = code >= 200 && code != 204 && code != 304;
    sg_buf_add(out, "HTTP/1.1 ", 9);
    add_uint(out, (unsigned)code);
    sg_buf_addc(out, ' ');
    sg_buf_adds(out, reason);
    sg_buf_add(out, "\r\n", 2);
    sg_buf_adds(out, date_line());
    if (r->head.len)
        sg_buf_add(out, r->head.data, r->head.len);
    if (may_have_body) {
        if (!sg_http_has_reply_header(r, "Content-Type"))
            sg_buf_adds(out, "Content-Type: application/json\r\n");
        sg_buf_add(out, "Content-Length: ", 16);
        add_uint(out, len);
        sg_buf_add(out, "\r\n", 2);
    }
    if (r->close_after)
        sg_buf_adds(out, "Connection: close\r\n");
    else if (r->http10)
        sg_buf_adds(out, "Connection: keep-alive\r\n");
    sg_buf_add(out, "\r\n", 2);
    if (may_have_body && r->method != SG_HTTP_HEAD && len)
        sg_buf_add(out, body, len);
}
