/*
 * snippet.h - GET /sg.js: the first-party browser snippet (web/sg.js, minified into the
 * binary at build time) with its ETag, gzip copy and Subresource Integrity value.
 */
#ifndef SCRUBGATE_SNIPPET_H
#define SCRUBGATE_SNIPPET_H

#include <stdbool.h>
#include <stddef.h>

struct sg_http_req;

#define SG_SNIPPET_PATH "/sg.js"

/* Answer GET or HEAD /sg.js (200, or 304 for a matching If-None-Match); 405 otherwise. */
void sg_snippet_handle(struct sg_http_req *req);

/* What a request gets: 304 when If-None-Match lists the ETag (or "*"), else 200, gzip when
 * Accept-Encoding admits it. Either header may be NULL. */
int sg_snippet_negotiate(const char *if_none_match, const char *accept_encoding, bool *gzip);

/* "sha384-<base64>" of the bytes served, for the integrity attribute. */
const char *sg_snippet_sri(void);

/* The script as served (uncompressed), and its gzip size. */
const unsigned char *sg_snippet_bytes(size_t *len);
size_t sg_snippet_gzip_len(void);

#endif
