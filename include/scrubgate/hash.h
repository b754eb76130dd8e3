/*
 * hash.h - SHA-256 and HMAC-SHA256 as lowercase hex, and TikTok's
 * normalization of identifiers before hashing (tiktok-events-api.md).
 */
#ifndef SCRUBGATE_HASH_H
#define SCRUBGATE_HASH_H

#include "scrubgate/common.h"

#define SG_HEX256_LEN 64

/* out must hold SG_HEX256_LEN + 1 bytes. */
void sg_sha256_hex(const void *data, size_t len, char out[SG_HEX256_LEN + 1]);
/* HMAC-SHA256 over (domain, 0x00, data): the domain separates uses of one key. */
void sg_hmac_hex(const unsigned char *key, size_t key_len, const char *domain, const void *data,
                 size_t len, char out[SG_HEX256_LEN + 1]);
/* Free this thread's keyed contexts (call before a thread that hashed exits). */
void sg_hash_thread_release(void);
/* True when s is exactly 64 lowercase hex characters (an already hashed value). */
bool sg_is_hex256(const char *s);

/*
 * TikTok normalization into out (cap bytes). Email: trim, lowercase. Names
 * and zip: trim, lowercase. Phone: E.164 with the "+" ("+12133734253") of a
 * valid number, through libphonenumber (sg_phone_e164 in phone.h): region is
 * the site's phone_region, assumed for a number written without "+"/"00";
 * with region NULL such a number fails (never guessed); an extension is
 * dropped. Returns 0, or -1 when nothing usable remains (the caller drops
 * the value).
 */
int sg_normalize_email(const char *in, char *out, size_t cap);
int sg_normalize_phone(const char *in, const char *region, char *out, size_t cap);
int sg_normalize_text(const char *in, char *out, size_t cap);

/* Fill buf with n random bytes from the OS CSPRNG as 2n hex chars + NUL. */
int sg_random_hex(char *buf, size_t n);

#endif
