/*
 * tcf_diff - compare scrubgate's TC string decoder with IAB's reference
 * library, line by line (tests/tcf-diff/gen.cjs writes the lines: a TC string
 * IAB's encoder made and IAB's decoder's view of it).
 *
 * For each string and each vendor asked about, sg_tcf_decode must accept it
 * and report the same version, policy version, CMP id, vendor list version,
 * service-specific flag, purpose consents and legitimate interests,
 * MaxVendorIds, vendor consent and legitimate interest, and publisher
 * restrictions. Then sg_consent_resolve, on a site whose default is
 * "granted" with the documented TCF mapping and that vendor, must decide each
 * purpose as CONSENT.md says it follows from IAB's view.
 *
 * Reads stdin; prints every disagreement (at most 20) and a summary; exit 0
 * only when there were lines and none disagreed.
 */
#include "scrubgate/common.h"
#include "scrubgate/consent.h"
#include "scrubgate/tcf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long disagreements;
/* Coverage: what the strings exercised, so that a generator that stops producing some kind of
 * string fails the test instead of passing it on easy input. */
static unsigned long with_consent, with_li, with_restriction, high_vendor, unusable;

static void disagree(const char *s, unsigned vendor, const char *what, unsigned long want,
                     unsigned long got)
{
    if (++disagreements <= 20)
        fprintf(stderr, "tcf-diff: %s (vendor %u): %s: IAB %lu, scrubgate %lu\n", s, vendor, what,
                want, got);
}

static unsigned long num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_boolean(v))
        return json_is_true(v);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        fprintf(stderr, "tcf-diff: bad input line: no %s\n", key);
        exit(2);
    }
    return (unsigned long)json_integer_value(v);
}

/* What CONSENT.md says a valid, usable-or-not TC string decides for one canonical purpose. */
static const char *expected_evidence(uint32_t need, bool usable, bool vendor_consent,
                                     uint32_t consent, const uint32_t restricted[3])
{
    if (!usable)
        return "tcf:unusable";
    if (need & (restricted[SG_TCF_NOT_ALLOWED] | restricted[SG_TCF_REQUIRE_LI]))
        return "tcf:publisher_restriction";
    if (!vendor_consent)
        return "tcf:vendor_consent=no";
    if ((consent & need) != need)
        return "tcf:purpose_consent=no";
    return "tcf:granted";
}

static void check_query(const char *s, size_t len, json_t *line, json_t *q)
{
    unsigned vendor = (unsigned)json_integer_value(json_array_get(q, 0));
    bool want_vc = json_integer_value(json_array_get(q, 1)) != 0;
    bool want_vli = json_integer_value(json_array_get(q, 2)) != 0;
    uint32_t want_r[3];
    for (int i = 0; i < 3; i++)
        want_r[i] = (uint32_t)json_integer_value(json_array_get(q, (size_t)(3 + i)));

    with_consent += want_vc;
    with_li += want_vli;
    with_restriction += (want_r[0] | want_r[1] | want_r[2]) != 0;
    high_vendor += want_vc && vendor > 65000;

    struct sg_tcf tc;
    const char *why = NULL;
    if (sg_tcf_decode(s, len, vendor, &tc, &why) < 0) {
        if (++disagreements <= 20)
            fprintf(stderr, "tcf-diff: %s (vendor %u): IAB decodes it, scrubgate says %s\n", s,
                    vendor, why);
        return;
    }
#define SAME(key, got)                                                                             \
    do {                                                                                           \
        unsigned long want_ = num(line, key);                                                      \
        if (want_ != (unsigned long)(got))                                                         \
            disagree(s, vendor, key, want_, (unsigned long)(got));                                 \
    } while (0)
    SAME("version", tc.version);
    SAME("policy", tc.policy_version);
    SAME("cmp", tc.cmp_id);
    SAME("vlv", tc.vendor_list_version);
    SAME("ss", tc.service_specific);
    SAME("pc", tc.purpose_consent);
    SAME("pli", tc.purpose_li);
    SAME("maxc", tc.max_vendor_consent);
    SAME("maxli", tc.max_vendor_li);
#undef SAME
    if (want_vc != tc.vendor_consent)
        disagree(s, vendor, "vendor consent", want_vc, tc.vendor_consent);
    if (want_vli != tc.vendor_li)
        disagree(s, vendor, "vendor legitimate interest", want_vli, tc.vendor_li);
    static const char *const rnames[3] = {"not-allowed restrictions",
                                          "require-consent restrictions",
                                          "require-LI restrictions"};
    for (int i = 0; i < 3; i++)
        if (want_r[i] != tc.restricted[i])
            disagree(s, vendor, rnames[i], want_r[i], tc.restricted[i]);

    /* The decision, from IAB's view, on a site that grants by default. */
    struct sg_consent_policy pol = {SG_CONSENT_GRANTED, true, (long)vendor, {0}};
    sg_consent_policy_default_tcf(&pol);
    struct sg_consent_signals sig = {NULL, false, NULL, s, NULL};
    struct sg_consent c;
    const char *reason;
    if (sg_consent_resolve(&pol, &sig, &c, &reason) < 0) {
        disagree(s, vendor, "resolve failed", 0, 1);
        return;
    }
    bool usable = num(line, "policy") >= 4 && num(line, "ss");
    unusable += !usable;
    if (c.tcf != (usable ? SG_TCF_APPLIED : SG_TCF_UNUSABLE))
        disagree(s, vendor, "outcome (1 applied, 3 unusable)", usable ? SG_TCF_APPLIED : SG_TCF_UNUSABLE,
                 c.tcf);
    for (int p = 0; p < SG_PURPOSE__COUNT; p++) {
        const char *want = expected_evidence(pol.tcf_purposes[p], usable, want_vc,
                                             (uint32_t)num(line, "pc"), want_r);
        const char *got = sg_consent_evidence_name((enum sg_consent_evidence)c.evidence[p]);
        bool granted = strcmp(want, "tcf:granted") == 0;
        if (strcmp(want, got) != 0 ||
            c.state[p] != (granted ? SG_CONSENT_GRANTED : SG_CONSENT_DENIED)) {
            if (++disagreements <= 20)
                fprintf(stderr, "tcf-diff: %s (vendor %u): %s: expected %s, scrubgate %s (%s)\n",
                        s, vendor, sg_purpose_name((enum sg_purpose)p), want, got,
                        sg_consent_state_name((enum sg_consent_state)c.state[p]));
        }
    }
}

int main(void)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lines = 0, queries = 0, six_bit = 0, segments = 0, ranges = 0, bitfields = 0;
    size_t longest = 0;

    while ((n = getline(&buf, &cap, stdin)) > 0) {
        json_error_t err;
        json_t *line = json_loadb(buf, (size_t)n, 0, &err);
        json_t *str = json_object_get(line, "s"), *qs = json_object_get(line, "q");
        if (!json_is_string(str) || !json_is_array(qs) || json_array_size(qs) == 0) {
            fprintf(stderr, "tcf-diff: bad input line %lu: %s\n", lines + 1, err.text);
            return 2;
        }
        const char *s = json_string_value(str);
        size_t len = json_string_length(str);
        const char *dot = memchr(s, '.', len);
        size_t core = dot ? (size_t)(dot - s) : len;
        lines++;
        six_bit += core * 6 % 8 != 0;
        segments += dot != NULL;
        longest = SG_MAX(longest, len);
        json_t *enc = json_object_get(line, "enc");
        for (size_t i = 0; i < 2; i++) {
            bool range = json_integer_value(json_array_get(enc, i)) != 0;
            ranges += range;
            bitfields += !range;
        }
        size_t i;
        json_t *q;
        json_array_foreach(qs, i, q) {
            check_query(s, len, line, q);
            queries++;
        }
        json_decref(line);
    }
    free(buf);
    printf("tcf-diff: %lu strings from IAB's encoder, %lu vendor queries: %lu disagreements\n"
           "tcf-diff: vendor sections %lu range-encoded, %lu bitfields; %lu strings 6-bit aligned; "
           "%lu with later segments; longest %zu characters\n",
           lines, queries, disagreements, ranges, bitfields, six_bit, segments, longest);
    printf("tcf-diff: queries with vendor consent %lu, with legitimate interest %lu, restricted "
           "%lu, consent above vendor id 65000 %lu, on unusable strings %lu\n",
           with_consent, with_li, with_restriction, high_vendor, unusable);
    if (lines < 100 || !ranges || !bitfields || !six_bit || !segments || lines == segments ||
        !with_consent || !with_li || !with_restriction || !high_vendor || !unusable ||
        unusable == queries) {
        fprintf(stderr, "tcf-diff: too little input, or input that misses a kind of string\n");
        return 1;
    }
    return disagreements ? 1 : 0;
}
