#include "tcf_encode.h"

#include "scrubgate/common.h"

#include <stdlib.h>
#include <string.h>

struct w {
    unsigned char bits[8192];
    size_t n;
};

static void put(struct w *w, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0;)
        w->bits[w->n++] = (unsigned char)((v >> i) & 1u);
}

static bool listed(const unsigned *v, size_t n, unsigned id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static void vendors(struct w *w, unsigned max, const unsigned *v, size_t n, bool range)
{
    put(w, max, 16);
    put(w, range, 1);
    if (!range) {
        for (unsigned id = 1; id <= max; id++)
            put(w, listed(v, n, id), 1);
        return;
    }
    put(w, n, 12); /* one single-id entry per vendor, or a range when consecutive ids */
    for (size_t i = 0; i < n; i++) {
        bool is_range = i + 1 < n && v[i + 1] == v[i] + 1;
        put(w, is_range, 1);
        put(w, v[i], 16);
        if (is_range)
            put(w, v[++i], 16);
    }
}

static void fix_range_count(struct w *w, size_t count_at, unsigned count)
{
    for (unsigned i = 0; i < 12; i++)
        w->bits[count_at + i] = (unsigned char)((count >> (11 - i)) & 1u);
}

static char *encode(const struct tcf_spec *s, bool byte_pad)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    struct w *w = calloc(1, sizeof(*w));
    put(w, s->version, 6);
    put(w, 16000000000ull, 36); /* created, deciseconds */
    put(w, 16000000000ull, 36);
    put(w, 7, 12);  /* CMP id */
    put(w, 1, 12);  /* CMP version */
    put(w, 1, 6);   /* consent screen */
    put(w, (('E' - 'A') << 6) | ('N' - 'A'), 12);
    put(w, 150, 12); /* vendor list version */
    put(w, s->policy, 6);
    put(w, s->service_specific, 1);
    put(w, 0, 1);
    put(w, 0, 12);
    for (int p = 1; p <= 24; p++)
        put(w, (s->purpose_consent >> (p - 1)) & 1u, 1);
    for (int p = 1; p <= 24; p++)
        put(w, (s->purpose_li >> (p - 1)) & 1u, 1);
    put(w, 0, 1);
    put(w, (('D' - 'A') << 6) | ('E' - 'A'), 12);
    if (s->range) {
        /* Count entries as written (consecutive ids fold into one range). */
        put(w, s->max_vendor, 16);
        put(w, 1, 1);
        size_t count_at = w->n;
        put(w, 0, 12);
        unsigned entries = 0;
        for (size_t i = 0; i < s->n_vendors; i++, entries++) {
            bool is_range = i + 1 < s->n_vendors && s->vendors[i + 1] == s->vendors[i] + 1;
            size_t j = i;
            while (j + 1 < s->n_vendors && s->vendors[j + 1] == s->vendors[j] + 1)
                j++;
            put(w, is_range, 1);
            put(w, s->vendors[i], 16);
            if (is_range)
                put(w, s->vendors[j], 16);
            i = j;
        }
        fix_range_count(w, count_at, entries);
    } else {
        vendors(w, s->max_vendor, s->vendors, s->n_vendors, false);
    }
    vendors(w, s->max_vendor, s->li_vendors, s->n_li, false);
    put(w, s->n_restr, 12);
    for (size_t i = 0; i < s->n_restr; i++) {
        put(w, s->restr[i].purpose, 6);
        put(w, s->restr[i].type, 2);
        put(w, 1, 12);
        bool is_range = s->restr[i].hi != s->restr[i].lo;
        put(w, is_range, 1);
        put(w, s->restr[i].lo, 16);
        if (is_range)
            put(w, s->restr[i].hi, 16);
    }
    /* Pad to whole bytes (as most CMPs do), then to whole base64 characters. */
    while (byte_pad && w->n % 8)
        w->bits[w->n++] = 0;
    while (w->n % 6)
        w->bits[w->n++] = 0;
    char *out = malloc(w->n / 6 + 1);
    size_t k = 0;
    for (size_t i = 0; i < w->n; i += 6) {
        unsigned v = 0;
        for (int j = 0; j < 6; j++)
            v = (v << 1) | w->bits[i + (size_t)j];
        out[k++] = b64[v];
    }
    out[k] = '\0';
    free(w);
    return out;
}

char *tcf_encode(const struct tcf_spec *s)
{
    return encode(s, true);
}

char *tcf_encode_6bit(const struct tcf_spec *s)
{
    return encode(s, false);
}
