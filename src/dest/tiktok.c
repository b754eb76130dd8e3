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

static json_t *as_number(json_t *v)
{
    if (json_is_integer(v) || json_is_real(v))
        return json_incref(v);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (*s && !*end && errno == 0 && isfinite(d))
            return json_real(d);
    }
    return NULL;
}

static json_t *as_integer(json_t *v);

/* A count (num_items): an integer that is not negative (TikTok refuses the whole request). */
static json_t *as_count(json_t *v)
{
    json_t *n = as_integer(v);
    if (n && json_integer_value(n) < 0) {
        json_decref(n);
        return NULL;
    }
    return n;
}

static json_t *as_integer(json_t *v)
{
    if (json_is_integer(v))
        return json_incref(v);
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 9e15)
        return json_integer((json_int_t)json_real_value(v));
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (*s && !*end && errno == 0)
            return json_integer(n);
    }
    return NULL;
}

/* content_id, order_id, shop_id: strings (a number yields TikTok error 40002). */
static json_t *as_id_string(json_t *v)
{
    if (json_is_string(v) && json_string_length(v) > 0)
        return json_incref(v);
    if (json_is_integer(v))
        return json_sprintf("%lld", (long long)json_integer_value(v));
    return NULL;
}

static json_t *as_text(json_t *v)
{
    return json_is_string(v) ? json_incref(v) : NULL;
}

typedef json_t *typer_fn(json_t *v);

static void put(json_t *obj, const char *key, json_t *v)
{
    if (v)
        json_object_set_new(obj, key, v);
}

/*
 * One content, from TikTok's own keys or the Segment (product_id, sku, name,
 * category, brand) and GA4 (item_id, item_name, item_category, item_brand)
 * shapes; the first key present in each list wins.
 */
static json_t *content_item(json_t *in)
{
    static const struct {
        const char *key;
        const char *from[4];
        typer_fn *type;
    } keys[] = {
        {"content_id", {"content_id", "product_id", "item_id", "sku"}, as_id_string},
        {"content_name", {"content_name", "name", "item_name", NULL}, as_text},
        {"content_category", {"content_category", "category", "item_category", NULL}, as_text},
        {"price", {"price", NULL, NULL, NULL}, as_number},
        {"quantity", {"quantity", NULL, NULL, NULL}, as_integer},
        {"brand", {"brand", "item_brand", NULL, NULL}, as_text},
    };
    if (!json_is_object(in))
        return NULL;
    json_t *out = json_object();
    for (size_t i = 0; i < SG_ARRAY_SIZE(keys); i++) {
        for (size_t k = 0; k < 4 && keys[i].from[k]; k++) {
            json_t *v = json_object_get(in, keys[i].from[k]);
            json_t *t = v ? keys[i].type(v) : NULL;
            if (t) {
                put(out, keys[i].key, t);
                break;
            }
        }
    }
    json_t *q = json_object_get(out, "quantity");
    if (q && json_integer_value(q) < 1)
        json_object_del(out, "quantity"); /* no quantity rather than a meaningless one */
    if (json_object_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/*
 * properties.contents, else properties.products (Segment), else
 * properties.items (GA4); an array, or a single object taken as one content.
 * Without any of them, an event whose properties are themselves one product
 * (Segment's Product Viewed, Product Added: product_id, name, price... at the
 * top) has that product as its one content.
 */
static json_t *typed_contents(json_t *in)
{
    static const char *const sources[] = {"contents", "products", "items"};
    if (!json_object_get(in, "contents") && !json_object_get(in, "products") &&
        !json_object_get(in, "items") && json_object_get(in, "product_id")) {
        json_t *arr = json_array(), *c = content_item(in);
        if (c)
            json_array_append_new(arr, c);
        return arr;
    }
    for (size_t s = 0; s < SG_ARRAY_SIZE(sources); s++) {
        json_t *v = json_object_get(in, sources[s]), *item;
        size_t i;
        if (!json_is_array(v) && !json_is_object(v))
            continue;
        json_t *arr = json_array();
        if (json_is_object(v)) {
            json_t *c = content_item(v);
            if (c)
                json_array_append_new(arr, c);
        } else {
            json_array_foreach(v, i, item) {
                json_t *c = content_item(item);
                if (c)
                    json_array_append_new(arr, c);
            }
        }
        return arr;
    }
    return NULL;
}

static json_t *typed_properties(json_t *in)
{
    static const struct {
        const char *key;
        typer_fn *type;
    } scalars[] = {{"value", as_number},        {"num_items", as_count},
                   {"search_string", as_text},  {"description", as_text},
                   {"order_id", as_id_string},  {"shop_id", as_id_string}};
    json_t *out = json_object(), *v;
    size_t i;

    for (i = 0; i < SG_ARRAY_SIZE(scalars); i++)
        if ((v = json_object_get(in, scalars[i].key)))
            put(out, scalars[i].key, scalars[i].type(v));
    /* query (TikTok's older name, Segment's) and search_term (GA4's) leave as search_string;
     * GA4's transaction_id is the order id. */
    if (!json_object_get(out, "search_string") &&
        ((v = json_object_get(in, "query")) || (v = json_object_get(in, "search_term"))))
        put(out, "search_string", as_text(v));
    if (!json_object_get(out, "order_id") && (v = json_object_get(in, "transaction_id")))
        put(out, "order_id", as_id_string(v));
    if ((v = json_object_get(in, "currency")) && json_is_string(v)) {
        char cur[4] = {0};
        const char *s = json_string_value(v);
        if (strlen(s) == 3) {
            for (int k = 0; k < 3; k++)
                cur[k] = (char)((s[k] >= 'a' && s[k] <= 'z') ? s[k] - 32 : s[k]);
            if (sg_tiktok_currency_ok(cur))
                put(out, "currency", json_string(cur));
        }
    }
    if ((v = json_object_get(in, "content_type")) && json_is_string(v) &&
        (!strcmp(json_string_value(v), "product") ||
         !strcmp(json_string_value(v), "product_group")))
        put(out, "content_type", json_incref(v));
    if ((v = json_object_get(in, "content_ids")) && json_is_array(v)) {
        json_t *ids = json_array(), *item;
        json_array_foreach(v, i, item) {
            json_t *s = as_id_string(item);
            if (s)
                json_array_append_new(ids, s);
        }
        put(out, "content_ids", ids);
    }
    json_t *contents = typed_contents(in);
    if (contents && json_array_size(contents) > 0) {
        json_t *item;
        /* Derived when the event does not say: ids, item count, content type. */
        if (!json_object_get(out, "content_ids")) {
            json_t *ids = json_array();
            json_array_foreach(contents, i, item) {
                json_t *id = json_object_get(item, "content_id");
                if (id)
                    json_array_append(ids, id);
            }
            if (json_array_size(ids))
                put(out, "content_ids", ids);
            else
                json_decref(ids);
        }
        if (!json_object_get(out, "num_items")) {
            json_int_t n = 0;
            json_array_foreach(contents, i, item) {
                json_t *q = json_object_get(item, "quantity");
                json_int_t add = q ? json_integer_value(q) : 1;
                n = n > INT64_MAX - add ? INT64_MAX : n + add;
            }
            put(out, "num_items", json_integer(n));
        }
        if (!json_object_get(out, "content_type"))
            put(out, "content_type", json_string("product"));
    }
    if (contents)
        put(out, "contents", contents);
    return out;
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

json_t *sg_tiktok_event_json(const struct sg_event *ev)
{
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string(ev->name));
    json_object_set_new(o, "event_time", json_integer(ev->event_time));
    json_object_set_new(o, "event_id", json_string(ev->event_id));

    json_t *user = json_object();
    for (size_t i = 0; i < SG_ARRAY_SIZE(user_keys); i++) {
        enum sg_field f = user_keys[i].field;
        const char *v = ev->val[f];
        if (!v || !may_leave(ev, f))
            continue;
        if (sg_field_multi(f) && ev->more[f][0]) {
            /* Several values: an array of the digests (TikTok accepts a string or an array). */
            json_t *arr = json_array();
            size_t n = sg_event_count(ev, f);
            for (size_t k = 0; k < n; k++) {
                const char *e = k ? ev->more[f][k - 1] : v;
                if (!user_keys[i].must_be_hashed || sg_is_hex256(e))
                    json_array_append_new(arr, json_string(e));
            }
            if (json_array_size(arr) == 1)
                json_object_set(user, user_keys[i].key, json_array_get(arr, 0));
            else if (json_array_size(arr) > 1)
                json_object_set(user, user_keys[i].key, arr);
            json_decref(arr);
            continue;
        }
        if (user_keys[i].must_be_hashed && !sg_is_hex256(v))
            continue; /* never raw: TikTok would answer 40062, and it must not leave anyway */
        json_object_set_new(user, user_keys[i].key, json_string(v));
    }
    if (json_object_size(user))
        json_object_set_new(o, "user", user);
    else
        json_decref(user);

    json_t *page = json_object();
    if (ev->val[SG_F_PAGE_URL] && may_leave(ev, SG_F_PAGE_URL))
        json_object_set_new(page, "url", json_string(ev->val[SG_F_PAGE_URL]));
    if (ev->val[SG_F_PAGE_REFERRER] && may_leave(ev, SG_F_PAGE_REFERRER))
        json_object_set_new(page, "referrer", json_string(ev->val[SG_F_PAGE_REFERRER]));
    if (json_object_size(page))
        json_object_set_new(o, "page", page);
    else
        json_decref(page);

    if (ev->props && may_leave(ev, SG_F_PROPERTIES)) {
        json_t *p = typed_properties(ev->props);
        if (json_object_size(p))
            json_object_set_new(o, "properties", p);
        else
            json_decref(p);
    }
    json_object_set_new(o, "limited_data_use", json_boolean(ev->ldu));
    return o;
}

static char *format_event(const struct sg_event *ev)
{
    json_t *o = sg_tiktok_event_json(ev);
    /* 15 significant digits: 89.99 stays 89.99 rather than 89.989999999999995. */
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(o);
    if (!s)
        abort(); /* only on OOM */
    return s;
}

static int build_body(const struct sg_dest_conf *d, const char *const *events, const size_t *lens,
                      size_t n, bool test, struct sg_buf *out)
{
    sg_buf_reset(out);
    if (sg_buf_printf(out, "{\"event_source\":\"web\",\"event_source_id\":\"%s\",", d->pixel_code) <
        0)
        return -1;
    if (test && d->test_event_code) {
        json_t *code = json_string(d->test_event_code);
        char *enc = json_dumps(code, JSON_ENCODE_ANY);
        json_decref(code);
        int rc = sg_buf_printf(out, "\"test_event_code\":%s,", enc ? enc : "\"\"");
        free(enc);
        if (rc < 0)
            return -1;
    }
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
