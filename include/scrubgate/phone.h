/*
 * phone.h - phone numbers through libphonenumber (src/rules/phone.cc, the
 * project's only C++ file, behind this C interface).
 *
 * A region is an ISO 3166-1 alpha-2 code ("US", "GB"): the country assumed
 * for a number written without its country code. Nothing here guesses one: a
 * number without "+"/"00" and without a region is not normalized.
 *
 * Every function is thread-safe, never throws into C, and never logs the
 * number (the library's logger is muted).
 */
#ifndef SCRUBGATE_PHONE_H
#define SCRUBGATE_PHONE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest input the functions parse; longer input is "not a number". */
#define SG_PHONE_MAX_INPUT 64u
/* Room for an E.164 number: "+", up to 15 digits, NUL. */
#define SG_PHONE_E164_CAP 17u

/* True when libphonenumber knows the region (upper-case alpha-2). */
bool sg_phone_region_known(const char *region);

/*
 * E.164 ("+12133734253") of a number as a person wrote it: "+" or "00" and a
 * country code, or a national number when region is not NULL. Extensions are
 * dropped. 0 with out filled; -1 when it is not a valid number for its
 * country, has no country code and region is NULL, or does not fit.
 */
int sg_phone_e164(const char *in, size_t len, const char *region, char *out, size_t cap);

/*
 * Is this candidate from free text (digits in groups, an optional "+"/"00"
 * prefix, parentheses) a phone number? With a country code: valid for that
 * country. Without: valid for region (when not NULL) or for one of a fixed
 * list of common regions (phone.cc says which and why): removing a number is
 * the safe direction, so detection tries more than normalization does. 1 yes, 0 no, -1 on an internal failure (the caller
 * removes the candidate: a detector that cannot decide does not leak).
 */
int sg_phone_text_candidate(const char *s, size_t len, const char *region);

#ifdef __cplusplus
}
#endif

#endif
