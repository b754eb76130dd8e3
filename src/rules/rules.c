/*
 * rules.c - load, validate and apply rule sets.
 *
 * Loading resolves every name (fields, detectors, purposes, actions) to an
 * index or bitmask, so applying a rule set is a loop over small structs with
 * no string lookups; it allocates only for values it rewrites.
 */
#include "scrubgate/common.h"
#include "scrubgate/arena.h"
#include "scrubgate/buf.h"
#include "scrubgate/eventmap.h"
#include "scrubgate/hash.h"
#include "scrubgate/http.h"
#include "scrubgate/jsonpos.h"
#include "scrubgate/log.h"
#include "scrubgate/netaddr.h"
#include "scrubgate/rules.h"
#include "scrubgate/scrub.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum action {
    ACT_DROP = 0,
    ACT_ALLOW,
    ACT_HASH,
    ACT_SET,
    ACT_REDACT,
    ACT_MAP_EVENT,
    ACT_DROP_EVENT,
    ACT_TRUNCATE_IP,
    ACT_REQUIRE,
};

static const char *const action_names[] = {"drop",      "allow",      "hash",        "set",
                                           "redact",    "map_event",  "drop_event",  "truncate_ip",
                                           "require"};

enum hash_method { HASH_SHA256 = 0, HASH_HMAC };
enum set_source { SET_SESSION = 0, SET_VALUE, SET_HEADER };

struct cond {
    unsigned char consent[SG_PURPOSE__COUNT]; /* 0 = any, else the required state */
    unsigned char consent_any[SG_PURPOSE__COUNT]; /* at least one named purpose in its state */
    bool has_consent_any;
    int gpc;                                  /* -1 any, 0 no, 1 yes */
    int sale_opt_out;                         /* -1 any, 0 no, 1 yes: GPC or US Privacy */
    int bot;                                  /* -1 any, 0 no, 1 yes: the user agent is a bot */
    char **events;                            /* NULL = any */
    size_t n_events;
    char **not_events;                        /* NULL = none excluded */
    size_t n_not_events;
    uint32_t present, absent;                 /* field bitmasks */
};

struct rule {
    char *id;
    char *why;
    struct cond when;
    enum action action;
    uint32_t fields;
    enum hash_method method;
    enum set_source from;
    json_t *value;           /* SET_VALUE: a string or boolean */
    char *header;            /* SET_HEADER: the request header's name */
    unsigned detectors;
    struct sg_pattern *pattern; /* redact: the site's own regex */
    unsigned ipv4_prefix, ipv6_prefix; /* truncate_ip */
    unsigned min;            /* require: at least this many of fields */
    bool sensitive_params;
    char **params;           /* lowercase names of query parameters to strip */
    size_t n_params;
    json_t *map;             /* map_event: own map, else the site's event_map */
    char *reason;            /* drop_event: the sync log reason */
};

struct sg_ruleset {
    char *name;
    char version[24];
    char sha256[SG_HEX256_LEN + 1]; /* of the whole file */
    json_t *described;              /* the rules as written, for check's report */
    struct rule *rules;
    size_t n_rules;
};

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sg_ruleset_free(struct sg_ruleset *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n_rules; i++) {
        struct rule *r = &rs->rules[i];
        free(r->id);
        free(r->why);
        free_strv(r->when.events, r->when.n_events);
        free_strv(r->when.not_events, r->when.n_not_events);
        json_decref(r->value);
        free(r->header);
        sg_pattern_free(r->pattern);
        free_strv(r->params, r->n_params);
        json_decref(r->map);
        free(r->reason);
    }
    free(rs->rules);
    free(rs->name);
    json_decref(rs->described);
    free(rs);
}

const char *sg_ruleset_name(const struct sg_ruleset *rs)
{
    return rs->name;
}

const char *sg_ruleset_version(const struct sg_ruleset *rs)
{
    return rs->version;
}

const char *sg_ruleset_sha256(const struct sg_ruleset *rs)
{
    return rs->sha256;
}

size_t sg_ruleset_count(const struct sg_ruleset *rs)
{
    return rs->n_rules;
}

json_t *sg_ruleset_describe(const struct sg_ruleset *rs)
{
    return rs->described;
}

/*
 * One rule as an auditor reads it: id, action, fields (always an array),
 * the condition as written ("when", null when the rule always applies), why,
 * and the action's other parameters as written. Called on a validated rule.
 */
static json_t *describe_rule(json_t *o)
{
    json_t *fields = json_array(), *options = json_object(), *v;
    const char *key;
    if ((v = json_object_get(o, "field")))
        json_array_append(fields, v);
    else if ((v = json_object_get(o, "fields")))
        json_array_extend(fields, v);
    json_object_foreach(o, key, v) {
        if (strcmp(key, "id") && strcmp(key, "why") && strcmp(key, "when") &&
            strcmp(key, "action") && strcmp(key, "field") && strcmp(key, "fields"))
            json_object_set(options, key, v);
    }
    json_t *when = json_object_get(o, "when");
    return json_pack("{s:O,s:O,s:o,s:O,s:O,s:o}", "id", json_object_get(o, "id"), "action",
                     json_object_get(o, "action"), "fields", fields, "condition",
                     when ? when : json_null(), "why", json_object_get(o, "why"), "options",
                     options);
}

/* ---- loading ---- */

static int load_strings(const struct sg_jsondoc *doc, json_t *arr, const char *path, bool lower,
                        char ***out, size_t *n)
{
    size_t i;
    json_t *v;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return sg_jsondoc_error(doc, path, false, "must be a non-empty array of strings");
    *out = sg_xcalloc(json_array_size(arr), sizeof(char *));
    *n = 0;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            char sub[300];
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            return sg_jsondoc_error(doc, sub, false, "must be a non-empty string");
        }
        char *s = sg_xstrdup(json_string_value(v));
        if (lower)
            for (char *c = s; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
        (*out)[(*n)++] = s;
    }
    return 0;
}

static int load_fields(const struct sg_jsondoc *doc, json_t *v, const char *path, uint32_t *mask)
{
    size_t i;
    json_t *item;
    *mask = 0;
    if (json_is_string(v))
        v = NULL; /* handled below as a one-element list */
    if (!v)
        return -2;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return sg_jsondoc_error(doc, path, false, "must be a non-empty array of field names");
    json_array_foreach(v, i, item) {
        int f = json_is_string(item) ? sg_field_from_name(json_string_value(item)) : -1;
        if (f < 0) {
            char sub[300];
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            return sg_jsondoc_error(doc, sub, false, "unknown field (see docs/RULES.md)");
        }
        *mask |= SG_FIELD_BIT(f);
    }
    return 0;
}

/*
 * when.consent and when.consent_any: an object of purpose: "granted" |
 * "denied". consent_any must name a purpose: empty, it could never hold.
 */
static int load_consent_cond(const struct sg_jsondoc *doc, json_t *v, const char *path,
                             const char *key, unsigned char *states)
{
    char sub[300];
    const char *k;
    json_t *s;
    snprintf(sub, sizeof(sub), "%s.%s", path, key);
    if (!json_is_object(v))
        return sg_jsondoc_error(doc, sub, false, "must be an object of purpose: state");
    if (json_object_size(v) == 0 && strcmp(key, "consent_any") == 0)
        return sg_jsondoc_error(doc, sub, false, "must name at least one purpose");
    json_object_foreach(v, k, s) {
        int p = sg_purpose_from_name(k);
        snprintf(sub, sizeof(sub), "%s.%s.%s", path, key, k);
        if (p < 0)
            return sg_jsondoc_error(doc, sub, true,
                                    "unknown purpose (ad_storage, ad_user_data, "
                                    "ad_personalization, analytics_storage)");
        int st = json_is_string(s) ? sg_consent_state_from_name(json_string_value(s)) : -1;
        if (st < 0)
            return sg_jsondoc_error(doc, sub, false, "must be \"granted\" or \"denied\"");
        states[p] = (unsigned char)st;
    }
    return 0;
}

static int load_cond(const struct sg_jsondoc *doc, json_t *w, const char *path, struct cond *c)
{
    static const char *const keys[] = {"consent", "consent_any", "gpc",     "sale_opt_out",
                                       "bot",     "events",      "not_events", "present",
                                       "absent",  NULL};
    char sub[300];
    json_t *v;

    c->gpc = -1;
    c->sale_opt_out = -1;
    c->bot = -1;
    if (!w)
        return 0;
    if (!json_is_object(w))
        return sg_jsondoc_error(doc, path, false, "must be an object");
    if (sg_jsondoc_check_keys(doc, w, path, keys) < 0)
        return -1;
    if ((v = json_object_get(w, "consent")) && load_consent_cond(doc, v, path, "consent",
                                                                 c->consent) < 0)
        return -1;
    if ((v = json_object_get(w, "consent_any"))) {
        if (load_consent_cond(doc, v, path, "consent_any", c->consent_any) < 0)
            return -1;
        c->has_consent_any = true;
    }
    if ((v = json_object_get(w, "gpc"))) {
        snprintf(sub, sizeof(sub), "%s.gpc", path);
        if (!json_is_boolean(v))
            return sg_jsondoc_error(doc, sub, false, "must be true or false");
        c->gpc = json_is_true(v);
    }
    if ((v = json_object_get(w, "sale_opt_out"))) {
        snprintf(sub, sizeof(sub), "%s.sale_opt_out", path);
        if (!json_is_boolean(v))
            return sg_jsondoc_error(doc, sub, false, "must be true or false");
        c->sale_opt_out = json_is_true(v);
    }
    if ((v = json_object_get(w, "bot"))) {
        snprintf(sub, sizeof(sub), "%s.bot", path);
        if (!json_is_boolean(v))
            return sg_jsondoc_error(doc, sub, false, "must be true or false");
        c->bot = json_is_true(v);
    }
    if ((v = json_object_get(w, "events"))) {
        snprintf(sub, sizeof(sub), "%s.events", path);
        if (load_strings(doc, v, sub, false, &c->events, &c->n_events) < 0)
            return -1;
    }
    if ((v = json_object_get(w, "not_events"))) {
        snprintf(sub, sizeof(sub), "%s.not_events", path);
        if (load_strings(doc, v, sub, false, &c->not_events, &c->n_not_events) < 0)
            return -1;
    }
    if ((v = json_object_get(w, "present"))) {
        snprintf(sub, sizeof(sub), "%s.present", path);
        if (load_fields(doc, v, sub, &c->present) < 0)
            return -1;
    }
    if ((v = json_object_get(w, "absent"))) {
        snprintf(sub, sizeof(sub), "%s.absent", path);
        if (load_fields(doc, v, sub, &c->absent) < 0)
            return -1;
    }
    return 0;
}

/* Which keys each action takes besides id, why, when and action. */
static const char *const *action_keys(enum action a)
{
    static const char *const drop[] = {"id", "why", "when", "action", "field", "fields", NULL};
    static const char *const hash[] = {"id",    "why",   "when",  "action",
                                       "field", "fields", "method", NULL};
    static const char *const set[] = {"id",    "why",  "when",  "action",
                                      "field", "from", "value", "header", NULL};
    static const char *const redact[] = {"id",        "why",    "when",   "action",
                                         "field",     "fields", "detectors", "pattern",
                                         "sensitive_params", "params", NULL};
    static const char *const trunc[] = {"id",    "why",         "when",        "action",
                                        "field", "ipv4_prefix", "ipv6_prefix", NULL};
    static const char *const require[] = {"id",     "why", "when", "action",
                                          "fields", "min", "reason", NULL};
    static const char *const map[] = {"id", "why", "when", "action", "map", NULL};
    static const char *const dropev[] = {"id", "why", "when", "action", "reason", NULL};
    switch (a) {
    case ACT_HASH:
        return hash;
    case ACT_SET:
        return set;
    case ACT_REDACT:
        return redact;
    case ACT_MAP_EVENT:
        return map;
    case ACT_DROP_EVENT:
        return dropev;
    case ACT_TRUNCATE_IP:
        return trunc;
    case ACT_REQUIRE:
        return require;
    default:
        return drop;
    }
}

static int load_rule(const struct sg_jsondoc *doc, json_t *o, size_t idx, struct rule *r,
                     struct sg_ruleset *rs)
{
    char path[64], sub[128];
    json_t *v;
    int rc;

    snprintf(path, sizeof(path), "rules[%zu]", idx);
    if (!json_is_object(o))
        return sg_jsondoc_error(doc, path, false, "must be an object");
    v = json_object_get(o, "id");
    snprintf(sub, sizeof(sub), "%s.id", path);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
        return sg_jsondoc_error(doc, v ? sub : path, false, "\"id\": required, 1-64 characters");
    r->id = sg_xstrdup(json_string_value(v));
    for (size_t i = 0; i < idx; i++)
        if (strcmp(rs->rules[i].id, r->id) == 0)
            return sg_jsondoc_error(doc, sub, false, "duplicate rule id \"%s\"", r->id);
    v = json_object_get(o, "why");
    snprintf(sub, sizeof(sub), "%s.why", path);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return sg_jsondoc_error(doc, v ? sub : path, false,
                                "\"why\": required, the reason shown to auditors");
    r->why = sg_xstrdup(json_string_value(v));
    v = json_object_get(o, "action");
    snprintf(sub, sizeof(sub), "%s.action", path);
    int a = -1;
    for (size_t i = 0; v && json_is_string(v) && i < SG_ARRAY_SIZE(action_names); i++)
        if (strcmp(action_names[i], json_string_value(v)) == 0)
            a = (int)i;
    if (a < 0)
        return sg_jsondoc_error(doc, v ? sub : path, false,
                                "\"action\": one of drop, allow, hash, set, redact, map_event, "
                                "drop_event, truncate_ip, require");
    r->action = (enum action)a;
    if (sg_jsondoc_check_keys(doc, o, path, action_keys(r->action)) < 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s.when", path);
    if (load_cond(doc, json_object_get(o, "when"), sub, &r->when) < 0)
        return -1;

    /* "field": "x" or "fields": [...] for the actions that act on fields. */
    if (r->action != ACT_MAP_EVENT && r->action != ACT_DROP_EVENT) {
        /* every other action names its field(s); require takes "fields" only */
        json_t *one = json_object_get(o, "field"), *many = json_object_get(o, "fields");
        if (one && many)
            return sg_jsondoc_error(doc, path, false, "give \"field\" or \"fields\", not both");
        if (one) {
            snprintf(sub, sizeof(sub), "%s.field", path);
            int f = json_is_string(one) ? sg_field_from_name(json_string_value(one)) : -1;
            if (f < 0)
                return sg_jsondoc_error(doc, sub, false, "unknown field (see docs/RULES.md)");
            r->fields = SG_FIELD_BIT(f);
        } else if (many) {
            snprintf(sub, sizeof(sub), "%s.fields", path);
            if ((rc = load_fields(doc, many, sub, &r->fields)) < 0)
                return rc == -2 ? sg_jsondoc_error(doc, sub, false, "must be an array") : -1;
        } else {
            return sg_jsondoc_error(doc, path, false, "\"field\" or \"fields\" is required");
        }
    }

    switch (r->action) {
    case ACT_HASH:
        v = json_object_get(o, "method");
        snprintf(sub, sizeof(sub), "%s.method", path);
        if (!v || !json_is_string(v) ||
            (strcmp(json_string_value(v), "sha256") && strcmp(json_string_value(v), "hmac_sha256")))
            return sg_jsondoc_error(doc, v ? sub : path, false,
                                    "\"method\": \"sha256\" (TikTok normalization) or "
                                    "\"hmac_sha256\" (keyed with the site secret)");
        r->method = strcmp(json_string_value(v), "sha256") == 0 ? HASH_SHA256 : HASH_HMAC;
        if ((r->fields & SG_FIELD_BIT(SG_F_PROPERTIES)) ||
            (r->fields & SG_FIELD_BIT(SG_F_LIMITED_DATA_USE)))
            return sg_jsondoc_error(doc, path, false, "hash applies to string fields only");
        break;
    case ACT_SET: {
        json_t *from = json_object_get(o, "from"), *value = json_object_get(o, "value");
        json_t *header = json_object_get(o, "header");
        if ((from != NULL) == (value != NULL))
            return sg_jsondoc_error(doc, path, false, "give exactly one of \"from\" or \"value\"");
        if (__builtin_popcount(r->fields) != 1)
            return sg_jsondoc_error(doc, path, false, "set takes a single \"field\"");
        bool ldu = r->fields == SG_FIELD_BIT(SG_F_LIMITED_DATA_USE);
        bool props = (r->fields & SG_FIELD_BIT(SG_F_PROPERTIES)) != 0;
        if (from) {
            const char *f = json_string_value(from);
            snprintf(sub, sizeof(sub), "%s.from", path);
            if (!f || (strcmp(f, "session") && strcmp(f, "header")) || ldu || props)
                return sg_jsondoc_error(doc, sub, false,
                                        "\"from\": \"session\" (a keyed hash of the first-party "
                                        "session) or \"header\", into a string field");
            r->from = strcmp(f, "session") == 0 ? SET_SESSION : SET_HEADER;
            if ((r->from == SET_HEADER) != (header != NULL))
                return sg_jsondoc_error(doc, path, false,
                                        "\"header\" (the request header's name) goes with "
                                        "\"from\": \"header\" only");
            if (header) {
                snprintf(sub, sizeof(sub), "%s.header", path);
                if (!json_is_string(header) || json_string_length(header) == 0 ||
                    strpbrk(json_string_value(header), ": \t\r\n"))
                    return sg_jsondoc_error(doc, sub, false, "must be a header name");
                r->header = sg_xstrdup(json_string_value(header));
            }
        } else {
            snprintf(sub, sizeof(sub), "%s.value", path);
            if (header)
                return sg_jsondoc_error(doc, path, false,
                                        "\"header\" goes with \"from\": \"header\" only");
            if (ldu ? !json_is_boolean(value) : (!json_is_string(value) || props))
                return sg_jsondoc_error(doc, sub, false,
                                        ldu ? "limited_data_use takes true or false"
                                            : "must be a string");
            r->from = SET_VALUE;
            r->value = json_incref(value);
        }
        break;
    }
    case ACT_REDACT: {
        json_t *dets = json_object_get(o, "detectors");
        size_t i;
        json_t *d;
        if (dets) {
            snprintf(sub, sizeof(sub), "%s.detectors", path);
            if (!json_is_array(dets))
                return sg_jsondoc_error(doc, sub, false, "must be an array of detector names");
            json_array_foreach(dets, i, d) {
                int det = json_is_string(d) ? sg_detector_from_name(json_string_value(d)) : -1;
                if (det < 0) {
                    snprintf(sub, sizeof(sub), "%s.detectors[%zu]", path, i);
                    return sg_jsondoc_error(doc, sub, false,
                                            "unknown detector (email, phone, card, iban, ssn, "
                                            "ip, token)");
                }
                r->detectors |= 1u << det;
            }
        }
        if ((v = json_object_get(o, "pattern"))) {
            char err[200];
            snprintf(sub, sizeof(sub), "%s.pattern", path);
            if (!json_is_string(v) || json_string_length(v) == 0)
                return sg_jsondoc_error(doc, sub, false, "must be a regular expression");
            r->pattern = sg_pattern_new(json_string_value(v), err, sizeof(err));
            if (!r->pattern)
                return sg_jsondoc_error(doc, sub, false, "invalid regular expression %s", err);
        }
        v = json_object_get(o, "sensitive_params");
        if (v) {
            snprintf(sub, sizeof(sub), "%s.sensitive_params", path);
            if (!json_is_boolean(v))
                return sg_jsondoc_error(doc, sub, false, "must be true or false");
            r->sensitive_params = json_is_true(v);
        }
        if ((v = json_object_get(o, "params"))) {
            snprintf(sub, sizeof(sub), "%s.params", path);
            if (load_strings(doc, v, sub, true, &r->params, &r->n_params) < 0)
                return -1;
        }
        if (!r->detectors && !r->pattern && !r->sensitive_params && !r->n_params)
            return sg_jsondoc_error(doc, path, false,
                                    "redact needs \"detectors\", \"pattern\", "
                                    "\"sensitive_params\" or \"params\"");
        if (r->fields & SG_FIELD_BIT(SG_F_LIMITED_DATA_USE))
            return sg_jsondoc_error(doc, path, false, "limited_data_use cannot be redacted");
        break;
    }
    case ACT_TRUNCATE_IP: {
        long long p4 = 24, p6 = 48;
        if (r->fields != SG_FIELD_BIT(SG_F_USER_IP))
            return sg_jsondoc_error(doc, path, false, "truncate_ip applies to user.ip only");
        if ((v = json_object_get(o, "ipv4_prefix"))) {
            snprintf(sub, sizeof(sub), "%s.ipv4_prefix", path);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 32)
                return sg_jsondoc_error(doc, sub, false, "must be an integer from 0 to 32");
            p4 = json_integer_value(v);
        }
        if ((v = json_object_get(o, "ipv6_prefix"))) {
            snprintf(sub, sizeof(sub), "%s.ipv6_prefix", path);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 128)
                return sg_jsondoc_error(doc, sub, false, "must be an integer from 0 to 128");
            p6 = json_integer_value(v);
        }
        r->ipv4_prefix = (unsigned)p4;
        r->ipv6_prefix = (unsigned)p6;
        break;
    }
    case ACT_REQUIRE: {
        long long min = 1;
        if ((v = json_object_get(o, "min"))) {
            snprintf(sub, sizeof(sub), "%s.min", path);
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > __builtin_popcount(r->fields))
                return sg_jsondoc_error(doc, sub, false,
                                        "must be from 1 to the number of fields listed");
            min = json_integer_value(v);
        }
        r->min = (unsigned)min;
        if ((v = json_object_get(o, "reason"))) {
            snprintf(sub, sizeof(sub), "%s.reason", path);
            if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
                return sg_jsondoc_error(doc, sub, false, "must be a short string");
            r->reason = sg_xstrdup(json_string_value(v));
        }
        break;
    }
    case ACT_MAP_EVENT:
        if ((v = json_object_get(o, "map"))) {
            const char *k;
            snprintf(sub, sizeof(sub), "%s.map", path);
            char why[256];
            int bad_idx;
            if (!json_is_object(v))
                return sg_jsondoc_error(doc, sub, false,
                                        "must be an object of input name: TikTok event name(s)");
            r->map = sg_event_map_compile(v, NULL, why, sizeof(why), &k, &bad_idx);
            /* checked with the built-in map on: whether a site turns it off is not known here,
             * and a chain through it is a surprise either way */
            if (!r->map || sg_event_map_check_chains(r->map, true, why, sizeof(why), &k) < 0) {
                char idxs[24] = "";
                if (r->map)
                    bad_idx = -1;
                if (bad_idx >= 0)
                    snprintf(idxs, sizeof(idxs), "[%d]", bad_idx);
                snprintf(sub, sizeof(sub), strpbrk(k, ".[]\"") ? "%s.map[\"%s\"]%s" : "%s.map.%s%s",
                         path, k, idxs);
                return sg_jsondoc_error(doc, sub, false, "%s", why);
            }
        }
        break;
    case ACT_DROP_EVENT:
        v = json_object_get(o, "reason");
        if (v) {
            snprintf(sub, sizeof(sub), "%s.reason", path);
            if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 64)
                return sg_jsondoc_error(doc, sub, false, "must be a short string");
            r->reason = sg_xstrdup(json_string_value(v));
        }
        break;
    default:
        break;
    }
    return 0;
}

unsigned sg_ruleset_map_fanout(const struct sg_ruleset *rs)
{
    unsigned most = 1;
    for (size_t i = 0; i < rs->n_rules; i++) {
        const char *k;
        json_t *names;
        if (rs->rules[i].action != ACT_MAP_EVENT || !rs->rules[i].map)
            continue;
        json_object_foreach(rs->rules[i].map, k, names)
            most = SG_MAX(most, json_is_array(names) ? (unsigned)json_array_size(names) : 1u);
    }
    return most;
}

struct sg_ruleset *sg_ruleset_load(const char *path)
{
    static const char *const top_keys[] = {"name", "description", "rules", NULL};
    struct sg_jsondoc doc;
    struct sg_ruleset *rs = NULL;
    json_t *rules, *v;
    size_t i;

    if (sg_scrub_init() < 0 || sg_jsondoc_load(&doc, path, NULL, 0) < 0)
        goto fail;
    if (!json_is_object(doc.root)) {
        sg_jsondoc_error(&doc, "", false, "a rule set is an object with \"name\" and \"rules\"");
        goto fail;
    }
    if (sg_jsondoc_check_keys(&doc, doc.root, "", top_keys) < 0)
        goto fail;
    rs = sg_xcalloc(1, sizeof(*rs));
    v = json_object_get(doc.root, "name");
    if (!json_is_string(v)) {
        sg_jsondoc_error(&doc, v ? "name" : "", false, "\"name\": required, a string");
        goto fail;
    }
    rs->name = sg_xstrdup(json_string_value(v));
    if ((v = json_object_get(doc.root, "description")) && !json_is_string(v)) {
        sg_jsondoc_error(&doc, "description", false, "must be a string");
        goto fail;
    }
    rules = json_object_get(doc.root, "rules");
    if (!json_is_array(rules)) {
        sg_jsondoc_error(&doc, rules ? "rules" : "", false, "\"rules\": required, an array");
        goto fail;
    }
    rs->rules = sg_xcalloc(json_array_size(rules), sizeof(struct rule));
    json_array_foreach(rules, i, v) {
        rs->n_rules = i + 1;
        if (load_rule(&doc, v, i, &rs->rules[i], rs) < 0)
            goto fail;
    }
    rs->described = json_array();
    json_array_foreach(rules, i, v)
        json_array_append_new(rs->described, describe_rule(v));
    sg_sha256_hex(doc.text, doc.len, rs->sha256);
    snprintf(rs->version, sizeof(rs->version), "sha256:%.12s", rs->sha256);
    sg_jsondoc_release(&doc);
    return rs;
fail:
    sg_jsondoc_release(&doc);
    sg_ruleset_free(rs);
    return NULL;
}

/* ---- applying ---- */

static bool field_present(const struct sg_event *ev, int f)
{
    if (f == SG_F_PROPERTIES)
        return ev->props != NULL && json_object_size(ev->props) > 0;
    if (f == SG_F_LIMITED_DATA_USE)
        return ev->ldu;
    return ev->val[f] != NULL;
}

static bool cond_match(const struct cond *c, const struct sg_event *ev)
{
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        if (c->consent[p] && c->consent[p] != ev->consent.state[p])
            return false;
    if (c->has_consent_any) {
        bool any = false;
        for (int p = 0; p < SG_PURPOSE__COUNT && !any; p++)
            any = c->consent_any[p] && c->consent_any[p] == ev->consent.state[p];
        if (!any)
            return false;
    }
    if (c->gpc >= 0 && (bool)c->gpc != ev->consent.gpc)
        return false;
    if (c->sale_opt_out >= 0 && (bool)c->sale_opt_out != ev->consent.sale_opt_out)
        return false;
    if (c->events) {
        bool found = false;
        for (size_t i = 0; i < c->n_events && !found; i++)
            found = strcmp(c->events[i], ev->name) == 0;
        if (!found)
            return false;
    }
    for (size_t i = 0; i < c->n_not_events; i++)
        if (strcmp(c->not_events[i], ev->name) == 0)
            return false;
    if (c->bot >= 0) {
        /* The raw user agent: a later rule may have dropped or redacted the field. */
        const char *ua = ev->ctx ? ev->ctx->user_agent : NULL;
        int is_bot = ua ? sg_scrub_is_bot(ua) : 0;
        if (is_bot < 0 ? c->bot == 0 : (bool)c->bot != (bool)is_bot)
            return false; /* on a regex limit, only "bot: true" rules fire: fail towards dropping */
    }
    for (int f = 0; f < SG_F__COUNT; f++) {
        if ((c->present & SG_FIELD_BIT(f)) && !field_present(ev, f))
            return false;
        if ((c->absent & SG_FIELD_BIT(f)) && field_present(ev, f))
            return false;
    }
    return true;
}

static _Thread_local struct sg_buf tl_out = {NULL, 0, 0, 1024 * 1024};

void sg_rules_thread_release(void)
{
    sg_buf_release(&tl_out);
    sg_scrub_thread_release();
}

/* 64 hex digits in either case: a digest the site already made. */
static bool hex256_any_case(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return i == SG_HEX256_LEN;
}

/* One value of field f hashed as the rule says: a new string (sg_arena_free() it), or NULL when it cannot be. */
static char *hash_value(const struct rule *r, int f, const char *in,
                        const struct sg_rule_env *env)
{
    char norm[512], hex[SG_HEX256_LEN + 1];
    int rc = 0;

    if (r->method == HASH_HMAC) {
        sg_hmac_hex(env->secret, env->secret_len, sg_field_name((enum sg_field)f), in,
                    strlen(in), hex);
        return sg_arena_strdup(hex);
    }
    if (hex256_any_case(in)) {
        /* Already hashed by the site: passed through as TikTok expects, lower-cased
         * (TikTok's digests are lowercase hex). */
        char *out = sg_arena_strdup(in);
        for (char *c = out; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c + 32);
        return out;
    }
    if (f == SG_F_USER_EMAIL)
        rc = sg_normalize_email(in, norm, sizeof(norm));
    else if (f == SG_F_USER_PHONE)
        rc = sg_normalize_phone(in, env->phone_region, norm, sizeof(norm));
    else if (f == SG_F_USER_FIRST_NAME || f == SG_F_USER_LAST_NAME || f == SG_F_USER_ZIP_CODE ||
             f == SG_F_USER_EXTERNAL_ID)
        rc = sg_normalize_text(in, norm, sizeof(norm));
    else
        rc = snprintf(norm, sizeof(norm), "%s", in) >= (int)sizeof(norm) ? -1 : 0;
    if (rc < 0)
        return NULL;
    sg_sha256_hex(norm, strlen(norm), hex);
    return sg_arena_strdup(hex);
}

/*
 * Hash every value of field f. A value that is not a usable identifier cannot be
 * hashed meaningfully, so it does not leave: it is removed, and the field is
 * receipted as dropped when no value is left.
 */
static int hash_field(const struct rule *r, struct sg_event *ev, int f,
                      const struct sg_rule_env *env)
{
    size_t n = sg_event_count(ev, (enum sg_field)f);
    for (size_t i = 0; i < n; i++) {
        char **slot = sg_event_slot(ev, (enum sg_field)f, i);
        char *h = hash_value(r, f, *slot, env);
        sg_arena_free(*slot);
        *slot = h;
    }
    sg_event_pack(ev, (enum sg_field)f);
    if (!ev->val[f]) {
        sg_event_receipt(ev, r->id, f, SG_RA_DROP, 0);
        return 0;
    }
    sg_event_receipt(ev, r->id, f, r->method == HASH_HMAC ? SG_RA_HASH_HMAC : SG_RA_HASH_SHA256,
                     0);
    return 0;
}

/*
 * A JSON number with seven digits or more, as text: an id sent as a number
 * (a card number as a content_id, an order id) is scrubbed like the same
 * digits in a string. NULL for strings, short numbers and everything else.
 */
static json_t *number_text(json_t *v)
{
    char buf[64];
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n > -1000000 && n < 1000000)
            return NULL;
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, n);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 1e6 || d <= -1e6) || d != d || d > 1e21 || d < -1e21)
            return NULL;
        snprintf(buf, sizeof(buf), "%.17g", d);
    } else {
        return NULL;
    }
    return json_string(buf);
}

/* Did scrubbing change the number's text? (It then stays a string: "[redacted]".) */
static bool number_changed(json_t *text)
{
    const char *s = json_string_value(text);
    return strstr(s, "[redacted]") != NULL;
}

/* The number back from its unchanged text. */
static json_t *json_integer_or_real(json_t *text)
{
    const char *s = json_string_value(text);
    if (strpbrk(s, ".eE"))
        return json_real(strtod(s, NULL));
    return json_integer((json_int_t)strtoll(s, NULL, 10));
}

static int redact_json(const struct rule *r, const char *region, json_t *v, unsigned *hits)
{
    const char *key;
    json_t *item;
    size_t i;
    unsigned h;

    if (json_is_string(v)) {
        struct sg_scrub_spec spec = {r->detectors, r->pattern, region};
        if (sg_scrub_text(&spec, json_string_value(v), &tl_out, &h) < 0)
            return -1;
        if (h) {
            json_string_setn(v, tl_out.data, tl_out.len);
            *hits += h;
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, item) {
            json_t *as_text = number_text(item);
            if (as_text) /* scrubbed as text; replaced by its text when that changed */
                json_object_set_new(v, key, as_text);
            if (redact_json(r, region, as_text ? as_text : item, hits) < 0)
                return -1;
            if (as_text && !number_changed(as_text))
                json_object_set_new(v, key, json_integer_or_real(as_text));
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item) {
            json_t *as_text = number_text(item);
            if (as_text)
                json_array_set_new(v, i, as_text);
            if (redact_json(r, region, as_text ? as_text : item, hits) < 0)
                return -1;
            if (as_text && !number_changed(as_text))
                json_array_set_new(v, i, json_integer_or_real(as_text));
        }
    }
    return 0;
}

static int redact_field(const struct rule *r, struct sg_event *ev, int f,
                        const struct sg_rule_env *env)
{
    const char *region = env->phone_region;
    unsigned hits = 0;
    int rc;

    if (f == SG_F_PROPERTIES) {
        rc = redact_json(r, region, ev->props, &hits);
    } else if (f == SG_F_PAGE_URL || f == SG_F_PAGE_REFERRER) {
        struct sg_url_policy pol = {{r->detectors, r->pattern, region}, r->sensitive_params,
                                    (const char *const *)r->params, r->n_params};
        rc = sg_scrub_url(&pol, ev->val[f], &tl_out, &hits);
        if (rc == 0 && hits)
            sg_event_set(ev, (enum sg_field)f, sg_arena_strndup(tl_out.data, tl_out.len));
    } else {
        /* Every value of a multi-valued field is scrubbed in place. */
        struct sg_scrub_spec spec = {r->detectors, r->pattern, region};
        size_t n = sg_event_count(ev, (enum sg_field)f);
        rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            char **slot = sg_event_slot(ev, (enum sg_field)f, i);
            unsigned h = 0;
            rc = sg_scrub_text(&spec, *slot, &tl_out, &h);
            if (rc == 0 && h) {
                sg_arena_free(*slot);
                *slot = sg_arena_strndup(tl_out.data, tl_out.len);
                hits += h;
            }
        }
    }
    if (rc < 0) {
        ev->skip_reason = "scrub_limit";
        return -1;
    }
    if (hits)
        sg_event_receipt(ev, r->id, f, SG_RA_REDACT, hits);
    return 0;
}

/* Zero the host bits of user.ip past the rule's prefix; -1 when it is not an address. */
static int truncate_ip(const struct rule *r, struct sg_event *ev)
{
    int family;
    unsigned char addr[16];
    char out[INET6_ADDRSTRLEN];
    if (sg_addr_parse(ev->val[SG_F_USER_IP], &family, addr) < 0)
        return -1;
    unsigned prefix = family == AF_INET ? r->ipv4_prefix : r->ipv6_prefix;
    unsigned bits = family == AF_INET ? 32 : 128;
    for (unsigned b = prefix; b < bits; b++)
        addr[b / 8] &= (unsigned char)~(0x80u >> (b % 8));
    if (!inet_ntop(family, addr, out, sizeof(out)))
        return -1;
    sg_event_set(ev, SG_F_USER_IP, sg_arena_strdup(out));
    sg_event_receipt(ev, r->id, SG_F_USER_IP, SG_RA_TRUNCATE_IP, prefix);
    return 0;
}

/*
 * Rename the event: the rule's own map, else the site's event_map, then (with
 * standard_events) the built-in map. Applied once. A one-to-many entry keeps
 * the first name in ev->name and the others in ev->also. The receipt says
 * which map applied.
 */
static void map_event(const struct rule *r, struct sg_event *ev, const struct sg_rule_env *env)
{
    json_t *own = r->map ? r->map : env->event_map;
    unsigned src = r->map ? SG_MAP_SRC_RULE : SG_MAP_SRC_SITE;
    json_t *to = sg_event_map_lookup(own, ev->name);
    if (!to && env->standard_events) {
        to = sg_event_map_lookup(sg_event_map_builtin(), ev->name);
        src = SG_MAP_SRC_BUILTIN;
    }
    if (ev->mapped || !to || json_array_size(to) == 0)
        return; /* already mapped by an earlier map_event rule (applied once), or no entry */
    const char *first = json_string_value(json_array_get(to, 0));
    if (json_array_size(to) == 1 && strcmp(first, ev->name) == 0)
        return;
    ev->mapped = true;
    sg_arena_free(ev->name);
    ev->name = sg_arena_strdup(first);
    for (size_t i = 1; i < json_array_size(to) && ev->n_also < SG_ARRAY_SIZE(ev->also); i++)
        ev->also[ev->n_also++] = sg_arena_strdup(json_string_value(json_array_get(to, i)));
    sg_event_receipt(ev, r->id, SG_F__COUNT, SG_RA_MAP_EVENT, src);
}

int sg_ruleset_apply(const struct sg_ruleset *rs, struct sg_event *ev,
                     const struct sg_rule_env *env)
{
    for (size_t i = 0; i < rs->n_rules; i++) {
        const struct rule *r = &rs->rules[i];
        if (!cond_match(&r->when, ev))
            continue;
        switch (r->action) {
        case ACT_MAP_EVENT:
            map_event(r, ev, env);
            continue;
        case ACT_DROP_EVENT:
            ev->dropped = true;
            ev->skip_reason = r->reason ? r->reason : r->id;
            sg_event_receipt(ev, r->id, SG_F__COUNT, SG_RA_DROP_EVENT, 0);
            return 0;
        case ACT_REQUIRE: {
            unsigned have = 0;
            for (int f = 0; f < SG_F__COUNT; f++)
                if ((r->fields & SG_FIELD_BIT(f)) && (ev->allowed & SG_FIELD_BIT(f)) &&
                    field_present(ev, f))
                    have++;
            if (have >= r->min)
                continue;
            ev->dropped = true;
            ev->skip_reason = r->reason ? r->reason : "too_few_identifiers";
            sg_event_receipt(ev, r->id, SG_F__COUNT, SG_RA_REQUIRE, have);
            return 0;
        }
        case ACT_TRUNCATE_IP:
            if (ev->val[SG_F_USER_IP] && truncate_ip(r, ev) < 0)
                sg_event_set(ev, SG_F_USER_IP, NULL); /* not an address: it cannot leave */
            continue;
        default:
            break;
        }
        for (int f = 0; f < SG_F__COUNT; f++) {
            if (!(r->fields & SG_FIELD_BIT(f)))
                continue;
            switch (r->action) {
            case ACT_DROP:
                ev->allowed &= ~SG_FIELD_BIT(f);
                if (!field_present(ev, f))
                    break;
                if (f == SG_F_PROPERTIES) {
                    json_decref(ev->props);
                    ev->props = NULL;
                } else if (f == SG_F_LIMITED_DATA_USE) {
                    ev->ldu = ev->ldu_requested; /* the event's own true stays */
                } else {
                    sg_event_set(ev, (enum sg_field)f, NULL);
                }
                sg_event_receipt(ev, r->id, f, SG_RA_DROP, 0);
                break;
            case ACT_ALLOW:
                ev->allowed |= SG_FIELD_BIT(f);
                if (field_present(ev, f))
                    sg_event_receipt(ev, r->id, f, SG_RA_ALLOW, 0);
                break;
            case ACT_HASH:
                if (ev->val[f])
                    hash_field(r, ev, f, env);
                break;
            case ACT_SET:
                if (f == SG_F_LIMITED_DATA_USE) {
                    ev->ldu = json_is_true(r->value) || ev->ldu_requested;
                } else if (r->from == SET_HEADER) {
                    const char *h = ev->ctx && ev->ctx->headers
                                        ? sg_http_fields_get(ev->ctx->headers, r->header)
                                        : NULL;
                    if (!h || !*h || strlen(h) > 1024)
                        break;
                    sg_event_set(ev, (enum sg_field)f, sg_xstrdup(h)); /* heap: a header, per event */
                } else if (r->from == SET_SESSION) {
                    char hex[SG_HEX256_LEN + 1];
                    if (!ev->ctx || !ev->ctx->session_id[0])
                        break;
                    sg_hmac_hex(env->secret, env->secret_len, "session", ev->ctx->session_id,
                                strlen(ev->ctx->session_id), hex);
                    sg_event_set(ev, (enum sg_field)f, sg_arena_strdup(hex));
                } else {
                    sg_event_set(ev, (enum sg_field)f, sg_arena_strdup(json_string_value(r->value)));
                }
                sg_event_receipt(ev, r->id, f, SG_RA_SET, 0);
                break;
            case ACT_REDACT:
                if (field_present(ev, f) && f != SG_F_LIMITED_DATA_USE &&
                    redact_field(r, ev, f, env) < 0)
                    return -1;
                break;
            default:
                break;
            }
        }
    }
    return 0;
}

char *sg_event_changed_rules(const struct sg_event *ev)
{
    struct sg_buf b;
    size_t n = 0;
    sg_buf_init(&b, 0);
    sg_buf_reserve(&b, 128);
    sg_buf_addc(&b, '[');
    for (size_t i = 0; i < ev->n_receipt; i++) {
        const struct sg_receipt_entry *e = &ev->receipt[i];
        bool seen = false;
        if (e->action == SG_RA_ALLOW)
            continue;
        for (size_t j = 0; j < i && !seen; j++)
            seen = ev->receipt[j].action != SG_RA_ALLOW &&
                   strcmp(ev->receipt[j].rule_id, e->rule_id) == 0;
        if (!seen) {
            if (n++)
                sg_buf_addc(&b, ',');
            sg_buf_json_string(&b, e->rule_id, strlen(e->rule_id));
        }
    }
    sg_buf_addc(&b, ']');
    return sg_buf_detach(&b, NULL);
}
