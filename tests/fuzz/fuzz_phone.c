/*
 * fuzz_phone - the phone interface (phone.h, libphonenumber behind phone.cc) on arbitrary
 * bytes, under a region chosen by the first input bytes.
 *
 * Input: byte 0 chooses how the region is picked (0: none; 1: one of a fixed list of known
 * regions, by byte 1; 2: two letters made from bytes 1 and 2; 3: bytes 1 and 2 as they are,
 * garbage included). Regions are only passed when sg_phone_region_known() accepts them (the
 * config refuses any other), else NULL. The rest is the number, in a heap buffer of exactly
 * its size (no NUL: an over-read is an ASan finding).
 *
 * Invariants besides memory safety:
 *   - sg_phone_region_known() accepts only two upper-case letters;
 *   - an E.164 result is "+" and 1 to 15 digits, and is a fixed point: normalizing it again,
 *     under no region and under the chosen one, gives it back;
 *   - never guessed: without a region, a result needs a "+" (ASCII or full-width) in the
 *     input, or a leading "00";
 *   - a region never changes the result for a number that normalizes without one;
 *   - sg_phone_text_candidate() answers -1, 0 or 1.
 */
#include "scrubgate/common.h"
#include "scrubgate/phone.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const known[] = {"US", "GB", "DE", "FR", "IN", "BR", "JP", "AU", "CN", "RU",
                                    "IT", "ES", "MX", "NL", "CH", "SE", "AR", "NG", "AE", "KR",
                                    "CA", "PR", "AG", "IE", "IL", "ZA", "SG", "HK", "NZ", "PL"};

static const char *pick_region(const uint8_t *data, size_t size, char buf[3])
{
    if (size < 3)
        return NULL;
    switch (data[0] & 3u) {
    case 0:
        return NULL;
    case 1:
        return known[data[1] % SG_ARRAY_SIZE(known)];
    case 2:
        buf[0] = (char)('A' + data[1] % 26);
        buf[1] = (char)('A' + data[2] % 26);
        break;
    default:
        buf[0] = (char)data[1];
        buf[1] = (char)data[2];
        break;
    }
    buf[2] = '\0';
    bool ok = sg_phone_region_known(buf);
    if (ok && !(buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'A' && buf[1] <= 'Z'))
        abort(); /* only upper-case alpha-2 codes are regions */
    return ok ? buf : NULL;
}

static bool is_e164(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 16 || s[0] != '+')
        return false;
    for (size_t i = 1; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/*
 * Does the number start with its own "+" (ASCII or full-width U+FF0B)? Before it may come ASCII
 * punctuation and blanks, and these non-ASCII ones a number is written with: no-break space,
 * ideographic space, the byte-order mark, full-width "(". A digit, or any other non-ASCII byte
 * (it could be a digit of another script), before the "+" means no: "0088189579 0958 ... +"
 * starts with "00", and its trailing "+" is junk.
 */
static bool plus_first(const char *s, size_t n)
{
    static const char *const blank[] = {"\xc2\xa0", "\xe3\x80\x80", "\xef\xbb\xbf",
                                        "\xef\xbc\x88"};
    size_t i = 0;
    while (i < n) {
        if (s[i] == '+' || (n - i >= 3 && memcmp(s + i, "\xef\xbc\x8b", 3) == 0))
            return true;
        if (s[i] >= '0' && s[i] <= '9')
            return false;
        size_t step = (unsigned char)s[i] < 0x80;
        for (size_t b = 0; !step && b < SG_ARRAY_SIZE(blank); b++)
            if (n - i >= strlen(blank[b]) && memcmp(s + i, blank[b], strlen(blank[b])) == 0)
                step = strlen(blank[b]);
        if (!step)
            return false;
        i += step;
    }
    return false;
}

/* Could the input carry its own country code: a "+" (or U+FF0B), or "00" after blanks? */
static bool has_country_prefix(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '+' || (i + 2 < n && memcmp(s + i, "\xef\xbc\x8b", 3) == 0))
            return true;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    return n > 2 && s[0] == '0' && s[1] == '0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char rbuf[3], out[SG_PHONE_E164_CAP], again[SG_PHONE_E164_CAP], bare[SG_PHONE_E164_CAP];
    const char *region = pick_region(data, size, rbuf);
    size_t skip = size < 3 ? size : 3;
    size_t n = size - skip;
    char *in = sg_xmalloc(n ? n : 1);
    memcpy(in, data + skip, n);

    if (sg_phone_e164(in, n, region, out, sizeof(out)) == 0) {
        if (!is_e164(out))
            abort();
        if (!region && !has_country_prefix(in, n))
            abort(); /* a number without a country code was guessed */
        if (sg_phone_e164(out, strlen(out), NULL, again, sizeof(again)) != 0 ||
            strcmp(out, again) != 0)
            abort();
        if (region && (sg_phone_e164(out, strlen(out), region, again, sizeof(again)) != 0 ||
                       strcmp(out, again) != 0))
            abort();
        /* The region may not change a number that starts with "+" and its country code.
         * After "00" it may: in a region whose international prefixes include 00x (Singapore:
         * 000 to 019), "0088189579 0958" dialled there is +81 8957 90958, while without a
         * region "00" reads as "+" (+881 ...). */
        if (region && plus_first(in, n) && sg_phone_e164(in, n, NULL, bare, sizeof(bare)) == 0 &&
            strcmp(out, bare))
            abort();
        /* An output buffer one byte too small is refused, not cut. */
        if (sg_phone_e164(in, n, region, again, strlen(out)) != -1)
            abort();
    }
    int c = sg_phone_text_candidate(in, n, region);
    if (c < -1 || c > 1)
        abort();
    free(in);
    return 0;
}
