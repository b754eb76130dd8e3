/*
 * tiktok.c - the TikTok Events API v1.3 destination (tiktok-events-api.md).
 *
 * format_event() is the last gate before data leaves: it emits only TikTok's
 * keys, only fields the rules allowed, types values as TikTok requires, and
 * refuses to emit an identifier TikTok expects hashed unless it is a SHA-256
 * hex digest, so even a faulty rule set cannot send a raw email or phone.
 */
#include "scrubgate/common.h"
#include "scrubgate/dest.h"
#include "scrubgate/hash.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const currencies[] = {
    "AED", "ARS", "AUD", "BDT", "BHD", "BIF", "BOB", "BRL", "CAD", "CHF", "CLP", "CNY", "COP",
    "CRC", "CZK", "DKK", "DZD", "EGP", "EUR", "GBP", "GTQ", "HKD", "HNL", "HUF", "IDR", "ILS",
    "INR", "ISK", "JPY", "KES", "KHR", "KRW", "KWD", "KZT", "MAD", "MOP", "MXN", "MYR", "NGN",
    "NIO", "NOK", "NZD", "OMR", "PEN", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RUB", "SAR",
    "SEK", "SGD", "THB", "TRY", "TWD", "UAH", "USD", "VES", "VND", "ZAR"};

bool sg_tiktok_currency_ok(const char *code)
{
    for (size_t i = 0; i < SG_ARRAY_SIZE(currencies); i++)
        if (strcmp(currencies[i], code) == 0)
            return true;
    return false;
}

/* ---- value typing ---- */

/*
 * A value as TikTok gets it, typed from the event's own JSON: nothing (it does not leave), a
 * string (borrowed from the input), an integer, a real, or an integer written as a string
 * (an id given as a number: a number yields TikTok error 40002).
 */
struct typed {
    enum { T_NONE = 0, T_STR, T_INT, T_REAL, T_INT_STR } kind;
    const char *s;
    size_t n;
    long long i;
    double d;
};

typedef struct typed typer_fn(json_t *v);

static struct typed as_number(json_t *v)
{
    if (json_is_integer(v))
        return (struct typed){.kind = T_INT, .i = json_integer_value(v)};
    if (json_is_real(v))
        return (struct typed){.kind = T_REAL, .d = json_real_value(v)};
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (*s && !*end && errno == 0 && isfinite(d))
            return (struct typed){.kind = T_REAL, .d = d};
    }
    return (struct typed){0};
}

static struct typed as_integer(json_t *v)
{
    if (json_is_integer(v))
        return (struct typed){.kind = T_INT, .i = json_integer_value(v)};
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 9e15)
        return (struct typed){.kind = T_INT, .i = (long long)json_real_value(v)};
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (*s && !*end && errno == 0)
            return (struct typed){.kind = T_INT, .i = n};
    }
    return (struct typed){0};
}

/* A count (num_items): an integer that is not negative (TikTok refuses the whole request). */
static struct typed as_count(json_t *v)
{
    struct typed t = as_integer(v);
    return t.kind && t.i >= 0 ? t : (struct typed){0};
}

/* content_id, order_id, shop_id: strings. */
static struct typed as_id_string(json_t *v)
{
    if (json_is_string(v) && json_string_length(v) > 0)
        return (struct typed){.kind = T_STR, .s = json_string_value(v),
                              .n = json_string_length(v)};
    if (json_is_integer(v))
        return (struct typed){.kind = T_INT_STR, .i = json_integer_value(v)};
    return (struct typed){0};
}

static struct typed as_text(json_t *v)
{
    if (json_is_string(v))
        return (struct typed){.kind = T_STR, .s = json_string_value(v),
                              .n = json_string_length(v)};
    return (struct typed){0};
}

/* ---- writing ---- */

/*
 * The outbound event is written straight into a buffer, keys in a fixed order, as
 * jansson would dump the same document (buf.h): no tree, no allocation per value. An object
 * that would come out empty is taken back (obj_end() false), as the tree's empty objects
 * were left out.
 */
struct obj {
    struct sg_buf *b;
    size_t undo; /* the buffer's length before the object's key */
    bool any;    /* a member was written */
};

static void key(struct obj *o, const char *k)
{
    if (o->any)
        sg_buf_addc(o->b, ',');
    sg_buf_addc(o->b, '"');
    sg_buf_adds(o->b, k);
    sg_buf_add(o->b, "\":", 2);
    o->any = true;
}

static void obj_begin(struct obj *o, struct sg_buf *b, struct obj *parent, const char *k)
{
    o->b = b;
    o->undo = b->len;
    o->any = false;
    if (parent)
        key(parent, k);
    sg_buf_addc(b, '{');
}

/* Close it; an empty one is removed with its key (false), and its parent is as it was. */
static bool obj_end(struct obj *o, struct obj *parent, bool parent_had_any)
{
    if (o->any)
        return sg_buf_addc(o->b, '}'), true;
    o->b->len = o->undo;
    o->b->data[o->undo] = '\0';
    if (parent)
        parent->any = parent_had_any;
    return false;
}

static void put_typed(struct sg_buf *b, const struct typed *t)
{
    switch (t->kind) {
    case T_STR:
        sg_buf_json_string(b, t->s, t->n);
        break;
    case T_INT:
        sg_buf_json_int(b, t->i);
        break;
    case T_REAL:
        sg_buf_json_real(b, t->d);
        break;
    case T_INT_STR:
        sg_buf_addc(b, '"');
        sg_buf_json_int(b, t->i);
        sg_buf_addc(b, '"');
        break;
    case T_NONE:
        break;
    }
}

/* A member, when the value leaves (t->kind != T_NONE). */
static bool put(struct obj *o, const char *k, struct typed t)
{
    if (!t.kind)
        return false;
    key(o, k);
    put_typed(o->b, &t);
    return true;
}

/* A string member; an invalid UTF-8 value does not leave (TikTok would refuse the JSON). */
static void put_str(struct obj *o, const char *k, const char *s)
{
    size_t n = strlen(s);
    if (sg_utf8_valid(s, n))
        put(o, k, (struct typed){.kind = T_STR, .s = s, .n = n});
}

/*
 * One content, from TikTok's own keys or the Segment (product_id, sku, name,
 * category, brand) and GA4 (item_id, item_name, item_category, item_brand)
 * shapes; the first key present in each list whose value types wins.
 */
enum { C_ID, C_NAME, C_CATEGORY, C_PRICE, C_QUANTITY, C_BRAND, C__COUNT };
static const struct {
    const char *key;
    const char *from[4];
    typer_fn *type;
} content_keys[C__COUNT] = {
    {"content_id", {"content_id", "product_id", "item_id", "sku"}, as_id_string},
    {"content_name", {"content_name", "name", "item_name", NULL}, as_text},
    {"content_category", {"content_category", "category", "item_category", NULL}, as_text},
    {"price", {"price", NULL, NULL, NULL}, as_number},
    {"quantity", {"quantity", NULL, NULL, NULL}, as_integer},
    {"brand", {"brand", "item_brand", NULL, NULL}, as_text},
};

/* Type one content; false when nothing of it leaves. */
static bool content_item(json_t *in, struct typed out[C__COUNT])
{
    bool any = false;
    memset(out, 0, C__COUNT * sizeof(*out));
    if (!json_is_object(in))
        return false;
    for (size_t i = 0; i < C__COUNT; i++)
        for (size_t k = 0; k < 4 && content_keys[i].from[k]; k++) {
            json_t *v = json_object_get(in, content_keys[i].from[k]);
            if (v && (out[i] = content_keys[i].type(v)).kind)
                break;
        }
    if (out[C_QUANTITY].kind && out[C_QUANTITY].i < 1)
        out[C_QUANTITY].kind = T_NONE; /* no quantity rather than a meaningless one */
    for (size_t i = 0; i < C__COUNT; i++)
        any |= out[i].kind != T_NONE;
    return any;
}

/*
 * Where the contents come from: properties.contents, else properties.products (Segment),
 * else properties.items (GA4); an array, or a single object taken as one content. Without
 * any of them, an event whose properties are themselves one product (Segment's Product
 * Viewed, Product Added: product_id, name, price... at the top) has that product as its one
 * content. NULL: no contents at all.
 */
static json_t *contents_source(json_t *in)
{
    static const char *const sources[] = {"contents", "products", "items"};
    if (!json_object_get(in, "contents") && !json_object_get(in, "products") &&
        !json_object_get(in, "items") && json_object_get(in, "product_id"))
        return in;
    for (size_t s = 0; s < SG_ARRAY_SIZE(sources); s++) {
        json_t *v = json_object_get(in, sources[s]);
        if (json_is_array(v) || json_is_object(v))
            return v;
    }
    return NULL;
}

/* The i-th content of a source (an array's element, or the one object), else NULL. */
static json_t *content_at(json_t *src, size_t i)
{
    if (json_is_array(src))
        return json_array_get(src, i);
    return i == 0 ? src : NULL;
}

static void write_properties(json_t *in, struct obj *parent)
{
    static const struct {
        const char *key;
        typer_fn *type;
    } scalars[] = {{"value", as_number},        {"num_items", as_count},
                   {"search_string", as_text},  {"description", as_text},
                   {"order_id", as_id_string},  {"shop_id", as_id_string}};
    bool had = parent->any, has[SG_ARRAY_SIZE(scalars)] = {0}, has_type = false, has_ids = false;
    struct obj o;
    json_t *v;
    obj_begin(&o, parent->b, parent, "properties");
    for (size_t i = 0; i < SG_ARRAY_SIZE(scalars); i++)
        if ((v = json_object_get(in, scalars[i].key)))
            has[i] = put(&o, scalars[i].key, scalars[i].type(v));
    /* query (TikTok's older name, Segment's) and search_term (GA4's) leave as search_string;
     * GA4's transaction_id is the order id. */
    if (!has[2] && ((v = json_object_get(in, "query")) || (v = json_object_get(in, "search_term"))))
        put(&o, "search_string", as_text(v));
    if (!has[4] && (v = json_object_get(in, "transaction_id")))
        put(&o, "order_id", as_id_string(v));
    if ((v = json_object_get(in, "currency")) && json_is_string(v) &&
        strlen(json_string_value(v)) == 3) {
        char cur[4] = {0};
        const char *s = json_string_value(v);
        for (int k = 0; k < 3; k++)
            cur[k] = (char)((s[k] >= 'a' && s[k] <= 'z') ? s[k] - 32 : s[k]);
        if (sg_tiktok_currency_ok(cur))
            put(&o, "currency", (struct typed){.kind = T_STR, .s = cur, .n = 3});
    }
    if ((v = json_object_get(in, "content_type")) && json_is_string(v) &&
        (!strcmp(json_string_value(v), "product") ||
         !strcmp(json_string_value(v), "product_group")))
        has_type = put(&o, "content_type", as_text(v));
    if ((v = json_object_get(in, "content_ids")) && json_is_array(v)) {
        json_t *item;
        size_t i, n = 0;
        key(&o, "content_ids");
        sg_buf_addc(o.b, '[');
        json_array_foreach(v, i, item) {
            struct typed t = as_id_string(item);
            if (t.kind) {
                if (n++)
                    sg_buf_addc(o.b, ',');
                put_typed(o.b, &t);
            }
        }
        sg_buf_addc(o.b, ']');
        has_ids = true;
    }
    json_t *src = contents_source(in);
    size_t n_src = json_is_array(src) ? json_array_size(src) : src ? 1 : 0, n_items = 0;
    struct typed c[C__COUNT];
    long long n_units = 0;
    for (size_t i = 0; i < n_src; i++)
        if (content_item(content_at(src, i), c)) {
            long long add = c[C_QUANTITY].kind ? c[C_QUANTITY].i : 1;
            n_units = n_units > INT64_MAX - add ? INT64_MAX : n_units + add;
            n_items++;
        }
    if (n_items) {
        /* Derived when the event does not say: ids, item count, content type. */
        if (!has_ids) {
            size_t n = 0;
            for (size_t i = 0; i < n_src; i++)
                if (content_item(content_at(src, i), c) && c[C_ID].kind) {
                    if (n++ == 0) {
                        key(&o, "content_ids");
                        sg_buf_addc(o.b, '[');
                    } else {
                        sg_buf_addc(o.b, ',');
                    }
                    put_typed(o.b, &c[C_ID]);
                }
            if (n)
                sg_buf_addc(o.b, ']');
        }
        if (!has[1])
            put(&o, "num_items", (struct typed){.kind = T_INT, .i = n_units});
        if (!has_type)
            put(&o, "content_type", (struct typed){.kind = T_STR, .s = "product", .n = 7});
    }
    if (src) {
        size_t n = 0;
        key(&o, "contents");
        sg_buf_addc(o.b, '[');
        for (size_t i = 0; i < n_src; i++) {
            if (!content_item(content_at(src, i), c))
                continue;
            struct obj item;
            if (n++)
                sg_buf_addc(o.b, ',');
            obj_begin(&item, o.b, NULL, NULL);
            for (size_t k = 0; k < C__COUNT; k++)
                put(&item, content_keys[k].key, c[k]);
            obj_end(&item, NULL, false);
        }
        sg_buf_addc(o.b, ']');
    }
    obj_end(&o, parent, had);
}

/* ---- the event ---- */

static const struct {
    enum sg_field field;
    const char *key;
    bool must_be_hashed;
} user_keys[] = {
    {SG_F_USER_EMAIL, "email", true},           {SG_F_USER_PHONE, "phone", true},
    {SG_F_USER_FIRST_NAME, "first_name", true}, {SG_F_USER_LAST_NAME, "last_name", true},
    {SG_F_USER_ZIP_CODE, "zip_code", true},     {SG_F_USER_EXTERNAL_ID, "external_id", true},
    {SG_F_USER_IP, "ip", false},                {SG_F_USER_USER_AGENT, "user_agent", false},
    {SG_F_USER_TTCLID, "ttclid", false},        {SG_F_USER_TTP, "ttp", false},
    {SG_F_USER_LOCALE, "locale", false},
};

static bool may_leave(const struct sg_event *ev, enum sg_field f)
{
    return (ev->allowed & SG_FIELD_BIT(f)) != 0;
}

/* A user value that may leave: never a raw identifier TikTok expects hashed (it would
 * answer 40062, and it must not leave anyway), never invalid UTF-8. */
static bool user_value_ok(size_t i, const char *v)
{
    return (!user_keys[i].must_be_hashed || sg_is_hex256(v)) && sg_utf8_valid(v, strlen(v));
}

static void write_user(const struct sg_event *ev, struct obj *parent)
{
    bool had = parent->any;
    struct obj o;
    obj_begin(&o, parent->b, parent, "user");
    for (size_t i = 0; i < SG_ARRAY_SIZE(user_keys); i++) {
        enum sg_field f = user_keys[i].field;
        if (!ev->val[f] || !may_leave(ev, f))
            continue;
        /* Several values: an array of the digests (TikTok accepts a string or an array). */
        size_t n = sg_field_multi(f) && ev->more[f][0] ? sg_event_count(ev, f) : 1, ok = 0;
        for (size_t k = 0; k < n; k++)
            ok += user_value_ok(i, k ? ev->more[f][k - 1] : ev->val[f]);
        if (!ok)
            continue;
        key(&o, user_keys[i].key);
        if (ok > 1)
            sg_buf_addc(o.b, '[');
        for (size_t k = 0, w = 0; k < n; k++) {
            const char *e = k ? ev->more[f][k - 1] : ev->val[f];
            if (!user_value_ok(i, e))
                continue;
            if (w++)
                sg_buf_addc(o.b, ',');
            sg_buf_json_string(o.b, e, strlen(e));
        }
        if (ok > 1)
            sg_buf_addc(o.b, ']');
    }
    obj_end(&o, parent, had);
}

static void write_event(const struct sg_event *ev, struct sg_buf *b)
{
    struct obj o, page;
    obj_begin(&o, b, NULL, NULL);
    put_str(&o, "event", ev->name);
    put(&o, "event_time", (struct typed){.kind = T_INT, .i = ev->event_time});
    put_str(&o, "event_id", ev->event_id);
    write_user(ev, &o);
    bool had = o.any;
    obj_begin(&page, b, &o, "page");
    if (ev->val[SG_F_PAGE_URL] && may_leave(ev, SG_F_PAGE_URL))
        put_str(&page, "url", ev->val[SG_F_PAGE_URL]);
    if (ev->val[SG_F_PAGE_REFERRER] && may_leave(ev, SG_F_PAGE_REFERRER))
        put_str(&page, "referrer", ev->val[SG_F_PAGE_REFERRER]);
    obj_end(&page, &o, had);
    if (ev->props && may_leave(ev, SG_F_PROPERTIES))
        write_properties(ev->props, &o);
    key(&o, "limited_data_use");
    sg_buf_adds(b, ev->ldu ? "true" : "false");
    obj_end(&o, NULL, false);
}

/* One writer serves every caller: the spool's bytes, and the tree for explain and reports. */
static char *format_event(const struct sg_event *ev)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_reserve(&b, 1024); /* most events: one allocation */
    write_event(ev, &b);
    return sg_buf_detach(&b, NULL);
}

json_t *sg_tiktok_event_json(const struct sg_event *ev)
{
    char *s = format_event(ev);
    json_t *o = json_loads(s, JSON_DECODE_ANY, NULL);
    free(s);
    if (!o)
        abort(); /* the writer writes JSON: a failure here is a bug, never input */
    return o;
}

static int build_body(const struct sg_dest_conf *d, const char *const *events, const size_t *lens,
                      size_t n, bool test, struct sg_buf *out)
{
    sg_buf_reset(out);
    if (sg_buf_printf(out, "{\"event_source\":\"web\",\"event_source_id\":\"%s\",", d->pixel_code) <
        0)
        return -1;
    if (test && d->test_event_code &&
        (sg_buf_adds(out, "\"test_event_code\":") < 0 ||
         sg_buf_json_string(out, d->test_event_code, strlen(d->test_event_code)) < 0 ||
         sg_buf_addc(out, ',') < 0))
        return -1;
    if (sg_buf_adds(out, "\"data\":[") < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((i && sg_buf_addc(out, ',') < 0) || sg_buf_add(out, events[i], lens[i]) < 0)
            return -1;
    return sg_buf_adds(out, "]}");
}

static struct curl_slist *headers(const struct sg_dest_conf *d)
{
    struct curl_slist *h = NULL, *t;
    char *tok = sg_xasprintf("Access-Token: %s", d->access_token ? d->access_token : "");
    h = curl_slist_append(NULL, tok);
    sg_free_secret(tok);
    if (!h)
        return NULL;
    t = curl_slist_append(h, "Content-Type: application/json");
    if (t)
        t = curl_slist_append(t, "Expect:"); /* no 100-continue round trip */
    if (!t) {
        curl_slist_free_all(h);
        return NULL;
    }
    return t;
}

static bool in_list(long code, const long *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == code)
            return true;
    return false;
}

static void classify(long http_status, const char *body, size_t len, struct sg_dest_reply *out)
{
    static const long throttle[] = {40100, 40132, 61000};
    static const long transient[] = {50000, 50002, 60001};
    static const long auth[] = {40102, 40104, 40105, 40106};
    static const long bad[] = {40000, 40001, 40002, 40003, 40006, 40051,
                               40061, 40062, 40063, 40700};
    json_error_t err;
    json_t *root = body && len ? json_loadb(body, len, 0, &err) : NULL;
    json_t *code = root ? json_object_get(root, "code") : NULL;

    out->code = -1;
    out->request_id[0] = '\0';
    if (!json_is_integer(code)) {
        /* Gateways answer HTML or nothing: decide on the HTTP status. */
        if (http_status == 0 || http_status >= 500) {
            out->result = SG_DEST_RETRY;
            out->reason = http_status ? "http_5xx" : "network";
        } else if (http_status == 429) {
            out->result = SG_DEST_RETRY;
            out->reason = "throttled";
        } else if (http_status == 401 || http_status == 403) {
            out->result = SG_DEST_AUTH;
            out->reason = "auth";
        } else if (http_status >= 400) {
            out->result = SG_DEST_FAIL;
            out->reason = "http_4xx";
        } else {
            out->result = SG_DEST_RETRY;
            out->reason = "unparseable_reply";
        }
        json_decref(root);
        return;
    }
    long c = (long)json_integer_value(code);
    json_t *rid = json_object_get(root, "request_id");
    if (json_is_string(rid)) {
        /* Keep only a safe, bounded token: it goes to the sync log. */
        size_t j = 0;
        for (const char *p = json_string_value(rid); *p && j < sizeof(out->request_id) - 1; p++)
            if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                *p == '-' || *p == '_')
                out->request_id[j++] = *p;
        out->request_id[j] = '\0';
    }
    out->code = c;
    if (c == 0) {
        out->result = SG_DEST_OK;
        out->reason = "ok";
    } else if (c == 20001) {
        out->result = SG_DEST_PARTIAL;
        out->reason = "partial_ok";
    } else if (in_list(c, throttle, SG_ARRAY_SIZE(throttle))) {
        out->result = SG_DEST_RETRY;
        out->reason = "throttled";
    } else if (in_list(c, transient, SG_ARRAY_SIZE(transient)) || (c >= 51000 && c < 53000)) {
        out->result = SG_DEST_RETRY;
        out->reason = "transient";
    } else if (in_list(c, auth, SG_ARRAY_SIZE(auth))) {
        out->result = SG_DEST_AUTH;
        out->reason = "auth";
    } else if (in_list(c, bad, SG_ARRAY_SIZE(bad))) {
        out->result = SG_DEST_FAIL;
        out->reason = "bad_request";
    } else if (http_status >= 500) {
        out->result = SG_DEST_RETRY;
        out->reason = "http_5xx";
    } else {
        out->result = SG_DEST_FAIL;
        out->reason = "unknown_code";
    }
    json_decref(root);
}

const struct sg_dest_ops sg_dest_tiktok = {
    .type = "tiktok",
    .format_event = format_event,
    .build_body = build_body,
    .headers = headers,
    .classify = classify,
};
