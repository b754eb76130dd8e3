/*
 * fuzz_headers - the request headers a browser controls, through the code
 * that reads them: Origin against exact and wildcard allowed_origins, the
 * Cookie header(s) (session, click-id and consent cookies), X-Forwarded-For
 * and Sec-GPC (sg_request_ctx_init), and /sg.js's If-None-Match and
 * Accept-Encoding. The input is lines: Origin, Cookie, X-Forwarded-For,
 * Sec-GPC, If-None-Match, Accept-Encoding.
 * Invariants besides memory safety: an origin a wildcard admits has the
 * wildcard's scheme and ends in its domain; a session id taken from a cookie
 * is 32 hex digits.
 */
#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/http.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/snippet.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *origins[] = {"https://shop.example.com", "https://*.example.com",
                          "http://127.0.0.1:8080"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"Origin", "Cookie", "X-Forwarded-For", "Sec-GPC",
                                        "If-None-Match", "Accept-Encoding"};
    const char *val[SG_ARRAY_SIZE(names)] = {NULL};
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *p = copy;
    for (size_t i = 0; i < SG_ARRAY_SIZE(names) && p; i++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        val[i] = p;
        p = nl ? nl + 1 : NULL;
    }

    struct sg_site site = {.id = "fuzz", .origins = origins, .n_origins = 3};
    if (val[0] && sg_site_origin_allowed(&site, val[0]) &&
        !sg_strcaseeq(val[0], origins[0]) && !sg_strcaseeq(val[0], origins[2])) {
        size_t n = strlen(val[0]);
        if (!sg_strncaseeq(val[0], "https://", 8) || n < 13 ||
            !sg_strcaseeq(val[0] + n - 12, ".example.com"))
            abort(); /* the wildcard admitted what it does not cover */
    }

    struct sg_cidr trusted;
    struct sg_config cfg = {.trusted = &trusted, .n_trusted = 1};
    if (sg_cidr_parse("127.0.0.0/8", &trusted) < 0)
        abort();
    struct sg_http_fields headers;
    sg_http_fields_init(&headers);
    for (size_t i = 0; i < 4; i++)
        if (val[i])
            sg_http_fields_add(&headers, names[i], val[i]);
    struct sg_request_ctx ctx;
    if (sg_request_ctx_init(&ctx, &cfg, "127.0.0.1", &headers) == 0) {
        if (strlen(ctx.session_id) != 32 || strspn(ctx.session_id, "0123456789abcdef") != 32)
            abort();
        sg_request_ctx_release(&ctx);
    }
    sg_http_fields_release(&headers);

    bool gz;
    int code = sg_snippet_negotiate(val[4], val[5], &gz);
    if (code != 200 && code != 304)
        abort();
    free(copy);
    return 0;
}
