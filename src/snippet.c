/*
 * snippet.c - GET /sg.js (docs/BROWSER.md).
 *
 * The script is a constant of the binary, so everything about it is computed
 * once, on first use, by whichever thread gets there first: its ETag (part of
 * its SHA-256), its sha384 Subresource Integrity value, and a gzip copy for
 * clients that accept one. A request then costs a header lookup and a
 * reference to static bytes.
 */
#include "scrubgate/metrics.h"
#include "scrubgate/snippet.h"
#include "scrubgate/common.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
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

void sg_snippet_handle(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    init();
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Allow", "GET, HEAD");
        evhttp_add_header(out, "Content-Type", "application/json");
        struct evbuffer *b = evbuffer_new();
        if (b)
            evbuffer_add_printf(b, "{\"error\":\"use GET\"}\n");
        sg_metrics_ingest_reply("", 405);
    evhttp_send_reply(req, 405, "Method Not Allowed", b);
        if (b)
            evbuffer_free(b);
        return;
    }
    /* A public, credential-free script: any page may load it, with SRI (crossorigin). */
    evhttp_add_header(out, "Cache-Control", "public, max-age=3600");
    evhttp_add_header(out, "ETag", snip.etag);
    evhttp_add_header(out, "Vary", "Accept-Encoding");
    evhttp_add_header(out, "Access-Control-Allow-Origin", "*");
    evhttp_add_header(out, "Cross-Origin-Resource-Policy", "cross-origin");
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    bool gz;
    if (sg_snippet_negotiate(evhttp_find_header(in, "If-None-Match"),
                             evhttp_find_header(in, "Accept-Encoding"), &gz) == 304) {
        sg_metrics_ingest_reply("", 304);
    evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    evhttp_add_header(out, "Content-Type", "text/javascript; charset=utf-8");
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        sg_metrics_ingest_reply("", 503);
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    if (cmd == EVHTTP_REQ_HEAD) { /* the headers a GET would get, Content-Length included */
        char len[24];
        snprintf(len, sizeof(len), "%zu", gz ? snip.gz_len : sg_snippet_js_len);
        evhttp_add_header(out, "Content-Length", len);
        if (gz)
            evhttp_add_header(out, "Content-Encoding", "gzip");
        evhttp_send_reply(req, 200, "OK", NULL);
        evbuffer_free(b);
        return;
    }
    if (gz) {
        evhttp_add_header(out, "Content-Encoding", "gzip");
        evbuffer_add_reference(b, snip.gz, snip.gz_len, NULL, NULL);
    } else {
        evbuffer_add_reference(b, sg_snippet_js, sg_snippet_js_len, NULL, NULL);
    }
    sg_metrics_ingest_reply("", 200);
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}
