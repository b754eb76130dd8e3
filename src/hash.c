/*
 * hash.c - hashing with OpenSSL's one-shot EVP digests.
 */
#include "scrubgate/common.h"
#include "scrubgate/hash.h"
#include "scrubgate/phone.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void sg_sha256_hex(const void *data, size_t len, char out[SG_HEX256_LEN + 1])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    to_hex(md, 32, out);
}

void sg_hmac_hex(const unsigned char *key, size_t key_len, const char *domain, const void *data,
                 size_t len, char out[SG_HEX256_LEN + 1])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    unsigned char stackbuf[512];
    size_t dlen = strlen(domain);
    size_t total = dlen + 1 + len;
    unsigned char *msg = total <= sizeof(stackbuf) ? stackbuf : sg_xmalloc(total);

    memcpy(msg, domain, dlen);
    msg[dlen] = 0;
    memcpy(msg + dlen + 1, data, len);
    HMAC(EVP_sha256(), key, (int)key_len, msg, total, md, &mdlen);
    if (msg != stackbuf)
        free(msg);
    to_hex(md, 32, out);
}

bool sg_is_hex256(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == SG_HEX256_LEN;
}

static int trimmed_lower(const char *in, char *out, size_t cap)
{
    while (*in == ' ' || *in == '\t' || *in == '\r' || *in == '\n')
        in++;
    size_t n = strlen(in);
    while (n && (in[n - 1] == ' ' || in[n - 1] == '\t' || in[n - 1] == '\r' || in[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + 32) : in[i];
    out[n] = '\0';
    return 0;
}

int sg_normalize_email(const char *in, char *out, size_t cap)
{
    if (trimmed_lower(in, out, cap) < 0)
        return -1;
    const char *at = strchr(out, '@');
    return (at && at != out && at[1]) ? 0 : -1;
}

int sg_normalize_text(const char *in, char *out, size_t cap)
{
    return trimmed_lower(in, out, cap);
}

int sg_normalize_phone(const char *in, const char *region, char *out, size_t cap)
{
    return sg_phone_e164(in, strlen(in), region, out, cap);
}

int sg_random_hex(char *buf, size_t n)
{
    unsigned char raw[64];
    if (n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1)
        return -1;
    to_hex(raw, n, buf);
    return 0;
}
