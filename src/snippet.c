/*
 * snippet.c - GET /sg.js (docs/BROWSER.md).
 *
 * The script is a constant of the binary, so everything about it is computed
 * once, on first use, by whichever thread gets there first: its ETag (part of
 * its SHA-256), its sha384 Subresource Integrity value, and a gzip copy for
 * clients that accept one. A request then costs a header lookup and a
 * reference to static bytes.
 */
#include "scrubgate/common.h"
#include "scrubgate/http.h"
#include "scrubgate/metrics.h"
#include "scrubgate/snippet.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

extern const unsigned char sg_snippet_js[];
extern const size_t sg_snippet_js_len;

static struct {
    pthread_once_t once;
    char etag[2 + 32 + 1];        /* "<32 hex>" with its quotes */
    char sri[7 + 64 + 1];         /* sha384-<64 base64> */
    unsigned char *gz;            /* NULL when compression failed: identity only */
    size_t gz_len;
} snip = {.once = PTHREAD_ONCE_INIT};

static void compute(void)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";

    if (EVP_Digest(sg_snippet_js, sg_snippet_js_len, md, &mdlen, EVP_sha256(), NULL) == 1) {
        snip.etag[0] = '"';
        for (int i = 0; i < 16; i++) {
            snip.etag[1 + 2 * i] = hex[md[i] >> 4];
            snip.etag[2 + 2 * i] = hex[md[i] & 15];
        }
        snip.etag[33] = '"';
    }
    if (EVP_Digest(sg_snippet_js, sg_snippet_js_len, md, &mdlen, EVP_sha384(), NULL) == 1) {
        memcpy(snip.sri, "sha384-", 7);
        EVP_EncodeBlock((unsigned char *)snip.sri + 7, md, (int)mdlen);
    }

    /* gzip (windowBits 15 + 16), best compression: done once, served many times. */
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    uLong cap = deflateBound(&z, (uLong)sg_snippet_js_len);
    unsigned char *out = sg_xmalloc(cap);
    z.next_in = (Bytef *)(uintptr_t)sg_snippet_js;
    z.avail_in = (uInt)sg_snippet_js_len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) == Z_STREAM_END) {
        snip.gz = out;
        snip.gz_len = z.total_out;
    } else {
        free(out);
    }
    deflateEnd(&z);
}

static void init(void)
{
    pthread_once(&snip.once, compute);
}

const char *sg_snippet_sri(void)
{
    init();
    return snip.sri;
}

const unsigned char *sg_snippet_bytes(size_t *len)
{
    *len = sg_snippet_js_len;
    return sg_snippet_js;
}

size_t sg_snippet_gzip_len(void)
{
    init();
    return snip.gz_len;
}

/* The next comma-separated element of a header list, trimmed; false at the end. */
static bool next_elem(const char **p, const char **e, size_t *n)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (!*s)
        return false;
    size_t len = strcspn(s, ",");
    *p = s + len;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    *e = s;
    *n = len;
    return true;
}

/* If-None-Match lists our ETag (weak comparison, RFC 9110 13.1.2) or is "*". */
static bool etag_matches(const char *inm)
{
    const char *e;
    size_t n;
    while (inm && next_elem(&inm, &e, &n)) {
        if (n >= 2 && e[0] == 'W' && e[1] == '/') {
            e += 2;
            n -= 2;
        }
        if ((n == 1 && e[0] == '*') || (n == strlen(snip.etag) && !memcmp(e, snip.etag, n)))
            return true;
    }
    return false;
}

/*
 * The q value of an Accept-Encoding element's parameters (";level=1;q=0.5"): 1 when absent,
 * -1 when malformed (RFC 9110 12.4.2: "0" to "1" with up to three decimals).
 */
static double qvalue(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        size_t n = (size_t)(end - p), pl = 0;
        while (pl < n && p[pl] != ';')
            pl++;
        if (pl >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            const char *v = p + 2, *ve = p + pl;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (v == ve || (*v != '0' && *v != '1'))
                return -1;
            double q = *v - '0', scale = 0.1;
            const char *d = v + 1;
            if (d < ve && *d++ != '.')
                return -1;
            for (int k = 0; d < ve; d++, k++) {
                if (k == 3 || !isdigit((unsigned char)*d))
                    return -1;
                q += (*d - '0') * scale;
                scale /= 10;
            }
            return q > 1 ? -1 : q;
        }
        p += pl;
    }
    return 1;
}

/* Accept-Encoding admits gzip: its own q when listed (q=0 refuses it even beside "*"), else
 * the q of "*"; absent or malformed means no. */
static bool accepts_gzip(const char *ae)
{
    const char *e;
    size_t n;
    double gz = -1, star = -1;
    while (ae && next_elem(&ae, &e, &n)) {
        size_t tok = strcspn(e, "; \t");
        if (tok > n)
            tok = n;
        if (tok == 4 && sg_strncaseeq(e, "gzip", 4))
            gz = qvalue(e + tok, e + n);
        else if (tok == 1 && e[0] == '*')
            star = qvalue(e + tok, e + n);
    }
    return (gz >= 0 ? gz : star) > 0;
}

int sg_snippet_negotiate(const char *if_none_match, const char *accept_encoding, bool *gzip)
{
    init();
    *gzip = false;
    if (etag_matches(if_none_match))
        return 304;
    *gzip = snip.gz && accepts_gzip(accept_encoding);
    return 200;
}

void sg_snippet_handle(struct sg_http_req *req)
{
    enum sg_http_method cmd = sg_http_method(req);

    init();
    if (cmd != SG_HTTP_GET && cmd != SG_HTTP_HEAD) {
        static const char use_get[] = "{\"error\":\"use GET\"}\n";
        sg_http_add_header(req, "Allow", "GET, HEAD");
        sg_http_add_header(req, "Content-Type", "application/json");
        sg_metrics_ingest_reply("", 405);
        sg_http_reply(req, 405, "Method Not Allowed", use_get, sizeof(use_get) - 1);
        return;
    }
    /* A public, credential-free script: any page may load it, with SRI (crossorigin). */
    sg_http_add_header(req, "Cache-Control", "public, max-age=3600");
    sg_http_add_header(req, "ETag", snip.etag);
    sg_http_add_header(req, "Vary", "Accept-Encoding");
    sg_http_add_header(req, "Access-Control-Allow-Origin", "*");
    sg_http_add_header(req, "Cross-Origin-Resource-Policy", "cross-origin");
    sg_http_add_header(req, "X-Content-Type-Options", "nosniff");
    bool gz;
    if (sg_snippet_negotiate(sg_http_header(req, "If-None-Match"),
                             sg_http_header(req, "Accept-Encoding"), &gz) == 304) {
        sg_metrics_ingest_reply("", 304);
        sg_http_reply(req, 304, "Not Modified", NULL, 0);
        return;
    }
    sg_http_add_header(req, "Content-Type", "text/javascript; charset=utf-8");
    if (gz)
        sg_http_add_header(req, "Content-Encoding", "gzip");
    sg_metrics_ingest_reply("", 200);
    /* HEAD gets the headers a GET would, Content-Length included, and no body. */
    if (gz)
        sg_http_reply(req, 200, "OK", snip.gz, snip.gz_len);
    else
        sg_http_reply(req, 200, "OK", sg_snippet_js, sg_snippet_js_len);
}
