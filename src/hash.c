/*
 * hash.c - SHA-256 and HMAC-SHA256 on OpenSSL's SHA-256, and random ids.
 */
#include "scrubgate/common.h"
#include "scrubgate/hash.h"
#include "scrubgate/log.h"
#include "scrubgate/phone.h"

#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init and friends: see sg_sha256_hex() */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
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

/*
 * SHA-256 through OpenSSL's low-level interface: a SHA256_CTX is a plain struct, so hashing
 * an event's identifiers costs no allocation and no algorithm fetch (EVP_Digest() and
 * HMAC() do both on every call, most of their cost for inputs this short). The interface is
 * deprecated in OpenSSL 3 but kept; should it go, these few functions move to EVP with
 * per-thread contexts.
 */
void sg_sha256_hex(const void *data, size_t len, char out[SG_HEX256_LEN + 1])
{
    unsigned char md[32];
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(md, &c);
    to_hex(md, 32, out);
}

/*
 * HMAC-SHA256 (RFC 2104) from two SHA-256 states prepared once per key: the key padded to a
 * block and XORed with 0x36 (inner) and 0x5c (outer). Each thread keeps the states of its
 * last few keys; keys are compared by value, so a key freed and another allocated at the
 * same address (a reload) never meets the wrong states. Cleared when the thread exits.
 */
#define HMAC_CACHED 4
#define HMAC_KEY_MAX 128

static _Thread_local struct hmac_slot {
    bool used;
    size_t len;
    unsigned char key[HMAC_KEY_MAX];
    SHA256_CTX inner, outer;
} tl_hmac[HMAC_CACHED];
static _Thread_local unsigned tl_hmac_next;

static void hmac_prepare(struct hmac_slot *s, const unsigned char *key, size_t key_len)
{
    unsigned char block[64] = {0}, pad[64];
    if (key_len > sizeof(block)) {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, key, key_len);
        SHA256_Final(block, &c);
    } else {
        memcpy(block, key, key_len);
    }
    for (size_t i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(&s->inner);
    SHA256_Update(&s->inner, pad, 64);
    for (size_t i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&s->outer);
    SHA256_Update(&s->outer, pad, 64);
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
}

static const struct hmac_slot *hmac_slot(const unsigned char *key, size_t key_len)
{
    for (unsigned i = 0; i < HMAC_CACHED; i++) {
        const struct hmac_slot *s = &tl_hmac[i];
        if (s->used && s->len == key_len && memcmp(s->key, key, key_len) == 0)
            return s;
    }
    struct hmac_slot *s = &tl_hmac[tl_hmac_next++ % HMAC_CACHED];
    hmac_prepare(s, key, key_len);
    memcpy(s->key, key, key_len);
    s->len = key_len;
    s->used = true;
    return s;
}

void sg_hash_thread_release(void)
{
    OPENSSL_cleanse(tl_hmac, sizeof(tl_hmac));
}

void sg_hmac_hex(const unsigned char *key, size_t key_len, const char *domain, const void *data,
                 size_t len, char out[SG_HEX256_LEN + 1])
{
    unsigned char md[32];
    struct hmac_slot one;
    const struct hmac_slot *s;
    if (key_len <= HMAC_KEY_MAX) {
        s = hmac_slot(key, key_len);
    } else {
        hmac_prepare(&one, key, key_len); /* no such keys are configured: not cached */
        s = &one;
    }
    SHA256_CTX c = s->inner;
    SHA256_Update(&c, domain, strlen(domain) + 1); /* the domain and its NUL */
    SHA256_Update(&c, data, len);
    SHA256_Final(md, &c);
    c = s->outer;
    SHA256_Update(&c, md, sizeof(md));
    SHA256_Final(md, &c);
    OPENSSL_cleanse(&c, sizeof(c));
    if (s == &one)
        OPENSSL_cleanse(&one, sizeof(one));
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

/* Random bytes are drawn from the CSPRNG a block at a time (each draw has a fixed cost that
 * dominates 16 bytes), per thread; a byte handed out is wiped from the pool. */
static _Thread_local struct {
    unsigned char b[512];
    size_t left;
} tl_rand;

int sg_random_hex(char *buf, size_t n)
{
    if (n > 64)
        return -1;
    if (tl_rand.left < n) {
        if (RAND_bytes(tl_rand.b, (int)sizeof(tl_rand.b)) != 1)
            return -1;
        tl_rand.left = sizeof(tl_rand.b);
    }
    unsigned char *raw = tl_rand.b + tl_rand.left - n;
    to_hex(raw, n, buf);
    OPENSSL_cleanse(raw, n);
    tl_rand.left -= n;
    return 0;
}
