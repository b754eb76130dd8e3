/*
 * tcf.c - IAB TCF v2 core segment decoder (TC string format v2, as in IAB
 * Tech Lab's "Consent string and vendor list formats v2").
 *
 * Layout of the core segment, in bits: Version 6, Created 36, LastUpdated
 * 36, CmpId 12, CmpVersion 12, ConsentScreen 6, ConsentLanguage 12,
 * VendorListVersion 12, TcfPolicyVersion 6, IsServiceSpecific 1,
 * UseNonStandardTexts 1, SpecialFeatureOptIns 12, PurposesConsent 24,
 * PurposesLITransparency 24, PurposeOneTreatment 1, PublisherCC 12, then the
 * vendor consent section, the vendor legitimate interest section (each:
 * MaxVendorId 16, IsRangeEncoding 1, a bitfield or NumEntries 12 and ranges)
 * and publisher restrictions (NumPubRestrictions 12, each PurposeId 6,
 * RestrictionType 2 and a range section).
 *
 * The string is read as a bit string, 6 bits per base64url character, as
 * IAB's reference decoder reads it: a string whose last field ends inside a
 * character (its bit length not a multiple of 8) is valid. What the decoder
 * accepts is checked against that library on thousands of generated strings
 * (tests/tcf-diff).
 */
#include "scrubgate/common.h"
#include "scrubgate/tcf.h"

#include <string.h>

struct bits {
    const unsigned char *p;
    size_t nbits;
    size_t pos;
};

static int get(struct bits *b, unsigned n, uint64_t *out)
{
    uint64_t v = 0;
    if (n > 64 || b->pos + n > b->nbits)
        return -1;
    for (unsigned i = 0; i < n; i++, b->pos++)
        v = (v << 1) | ((b->p[b->pos / 8] >> (7 - b->pos % 8)) & 1u);
    *out = v;
    return 0;
}

static int get_u(struct bits *b, unsigned n, unsigned *out)
{
    uint64_t v;
    if (get(b, n, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/*
 * Decode base64url (no padding needed) into out as a bit string: every
 * character is 6 bits, the last byte holds any bits left over, left-aligned.
 * Returns the number of bits, or -1 on a character outside the alphabet.
 */
static long b64decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int have = 0;
    while (len && s[len - 1] == '=')
        len--;
    if ((len * 6 + 7) / 8 > cap)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = sg_b64val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        have += 6;
        if (have >= 8) {
            have -= 8;
            out[n++] = (unsigned char)(acc >> have);
            acc &= (1u << have) - 1;
        }
    }
    if (have)
        out[n] = (unsigned char)(acc << (8 - have));
    return (long)(len * 6);
}

/*
 * A vendor section (consent or LI): is vendor in it? Ranges are validated
 * whether or not they hold the vendor: a range past MaxVendorId or reversed
 * is malformed.
 */
static int vendor_section(struct bits *b, unsigned vendor, unsigned *max, bool *has,
                          const char **why)
{
    unsigned is_range;
    *has = false;
    if (get_u(b, 16, max) < 0 || get_u(b, 1, &is_range) < 0)
        return *why = "truncated", -1;
    if (!is_range) {
        size_t start = b->pos;
        if (b->pos + *max > b->nbits)
            return *why = "truncated", -1;
        if (vendor >= 1 && vendor <= *max) {
            b->pos = start + vendor - 1;
            unsigned bit;
            /* Cannot fail (the section's bits were counted above), but a
             * result that is only set on success is checked like any other. */
            if (get_u(b, 1, &bit) < 0)
                return *why = "truncated", -1;
            *has = bit != 0;
        }
        b->pos = start + *max;
        return 0;
    }
    unsigned entries;
    if (get_u(b, 12, &entries) < 0)
        return *why = "truncated", -1;
    for (unsigned i = 0; i < entries; i++) {
        unsigned ranged, lo, hi;
        if (get_u(b, 1, &ranged) < 0 || get_u(b, 16, &lo) < 0)
            return *why = "truncated", -1;
        hi = lo;
        if (ranged && get_u(b, 16, &hi) < 0)
            return *why = "truncated", -1;
        if (lo == 0 || hi < lo || hi > *max)
            return *why = "range overflow", -1;
        if (vendor >= lo && vendor <= hi)
            *has = true;
    }
    return 0;
}

/*
 * The segments after the core one decide nothing here, but each must be one
 * IAB's decoder reads: base64url, a known type (1 disclosed vendors, 2
 * allowed vendors, 3 publisher purposes; a second core segment, type 0,
 * would overwrite the first there), each type once, and not cut short. A
 * string that decoder refuses or reads differently is malformed here too.
 */
static bool segments_ok(const char *s, size_t len)
{
    unsigned char buf[SG_TCF_MAX_CHARS * 3 / 4 + 3];
    unsigned seen = 0;
    while (len > 0) {
        const char *dot = memchr(s, '.', len);
        size_t n = dot ? (size_t)(dot - s) : len;
        long bits = b64decode(s, n, buf, sizeof(buf));
        if (bits <= 0) /* empty, or a character outside the alphabet ('=' inside it too) */
            return false;
        struct bits b = {buf, (size_t)bits, 0};
        unsigned type, max, npc, dummy;
        bool has;
        const char *why;
        if (get_u(&b, 3, &type) < 0 || type < 1 || type > 3 || (seen & (1u << type)))
            return false;
        seen |= 1u << type;
        if (type == 3) { /* PubPurposesConsent, PubPurposesLITransparency, custom purposes */
            if (get_u(&b, 24, &dummy) < 0 || get_u(&b, 24, &dummy) < 0 || get_u(&b, 6, &npc) < 0 ||
                get_u(&b, npc, &dummy) < 0 || get_u(&b, npc, &dummy) < 0)
                return false;
        } else if (vendor_section(&b, 0, &max, &has, &why) < 0) {
            return false;
        }
        if (!dot)
            return true;
        len -= n + 1;
        s = dot + 1;
        if (len == 0)
            return false; /* a trailing dot: an empty segment */
    }
    return false;
}

int sg_tcf_decode(const char *s, size_t len, unsigned vendor_id, struct sg_tcf *out,
                  const char **why)
{
    unsigned char buf[SG_TCF_MAX_CHARS * 3 / 4 + 3];
    uint64_t skip;
    unsigned dummy;

    memset(out, 0, sizeof(*out));
    if (len > SG_TCF_MAX_CHARS)
        return *why = "over-long", -1;
    const char *dot = memchr(s, '.', len);
    size_t core_len = dot ? (size_t)(dot - s) : len; /* later segments are skipped */
    long n = b64decode(s, core_len, buf, sizeof(buf));
    if (n <= 0)
        return *why = "bad base64", -1;
    if (dot && !segments_ok(dot + 1, len - core_len - 1))
        return *why = "bad segment", -1;
    struct bits b = {buf, (size_t)n, 0};

    if (get_u(&b, 6, &out->version) < 0 || get(&b, 36, &skip) < 0 || get(&b, 36, &skip) < 0 ||
        get_u(&b, 12, &out->cmp_id) < 0 || get_u(&b, 12, &dummy) < 0 ||
        get_u(&b, 6, &dummy) < 0 || get_u(&b, 12, &dummy) < 0 ||
        get_u(&b, 12, &out->vendor_list_version) < 0 || get_u(&b, 6, &out->policy_version) < 0)
        return *why = "truncated", -1;
    if (out->version != 2)
        return *why = "not version 2", -1;
    if (out->cmp_id < 2) /* IAB's model refuses CMP ids 0 and 1 */
        return *why = "bad CMP id", -1;
    unsigned ss, p1;
    if (get_u(&b, 1, &ss) < 0 || get_u(&b, 1, &dummy) < 0 || get_u(&b, 12, &dummy) < 0 ||
        get_u(&b, 24, &out->purpose_consent) < 0 || get_u(&b, 24, &out->purpose_li) < 0 ||
        get_u(&b, 1, &p1) < 0 || get_u(&b, 12, &dummy) < 0)
        return *why = "truncated", -1;
    if ((dummy >> 6) > 57 || (dummy & 63) > 57) /* PublisherCC: two letters, 'A' + 0..57 */
        return *why = "bad publisher country", -1;
    out->service_specific = ss;
    /* Purposes are numbered from the left: purpose 1 is the first of the 24 bits. */
    uint32_t c = 0, l = 0;
    for (int p = 0; p < 24; p++) {
        c |= ((out->purpose_consent >> (23 - p)) & 1u) << p;
        l |= ((out->purpose_li >> (23 - p)) & 1u) << p;
    }
    out->purpose_consent = c;
    out->purpose_li = l;

    if (vendor_section(&b, vendor_id, &out->max_vendor_consent, &out->vendor_consent, why) < 0 ||
        vendor_section(&b, vendor_id, &out->max_vendor_li, &out->vendor_li, why) < 0)
        return -1;

    unsigned restrictions;
    if (get_u(&b, 12, &restrictions) < 0) /* required in the core segment, even when 0 */
        return *why = "truncated", -1;
    for (unsigned i = 0; i < restrictions; i++) {
        unsigned purpose, type, entries;
        if (get_u(&b, 6, &purpose) < 0 || get_u(&b, 2, &type) < 0 || get_u(&b, 12, &entries) < 0)
            return *why = "truncated", -1;
        /* PurposeId is 6 bits: IAB's decoder takes 1 to 63. Purposes past 24 have no
         * consent bit, so no mapping can name them: read, and not recorded. */
        if (purpose == 0 || type > SG_TCF_REQUIRE_LI)
            return *why = "bad publisher restriction", -1;
        for (unsigned e = 0; e < entries; e++) {
            unsigned ranged, lo, hi;
            if (get_u(&b, 1, &ranged) < 0 || get_u(&b, 16, &lo) < 0)
                return *why = "truncated", -1;
            hi = lo;
            if (ranged && get_u(&b, 16, &hi) < 0)
                return *why = "truncated", -1;
            if (lo == 0 || hi < lo)
                return *why = "range overflow", -1;
            if (vendor_id >= lo && vendor_id <= hi && purpose <= 24)
                out->restricted[type] |= 1u << (purpose - 1);
        }
    }
    return 0;
}

const char *sg_tcf_unusable(const struct sg_tcf *tc)
{
    if (tc->policy_version < 4)
        return "policy version below 4"; /* before TCF 2.2: not valid consent any more */
    if (!tc->service_specific)
        return "not service-specific"; /* global consent is gone from TCF 2.2 */
    return NULL;
}
