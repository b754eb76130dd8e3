/*
 * config.c - load and validate conf/scrubgate.json (docs/CONFIG.md).
 *
 * Strict: unknown keys, wrong types and bad values are errors with
 * file:line:column. Secrets are read from the environment or files named in
 * the config, never from the config itself, and never appear in messages.
 */
#include "scrubgate/common.h"
#include "scrubgate/config.h"
#include "scrubgate/eventmap.h"
#include "scrubgate/dest.h"
#include "scrubgate/hash.h"
#include "scrubgate/jetstream.h"
#include "scrubgate/jsonpos.h"
#include "scrubgate/log.h"
#include "scrubgate/phone.h"
#include "scrubgate/rules.h"
#include "scrubgate/scrub.h"
#include "scrubgate/spool.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TIKTOK_TRACK_PATH "/open_api/v1.3/event/track/"
#define TIKTOK_API_BASE "https://business-api.tiktok.com"

void sg_limits_default(struct sg_limits *l)
{
    l->max_body_bytes = 64 * 1024;
    l->max_header_bytes = 8 * 1024;
    l->max_events_per_request = 100;
    l->max_field_bytes = 4096;
    l->request_timeout_ms = 10000;
    l->header_timeout_ms = 5000;
    l->keepalive_timeout_ms = 30000;
    l->queue_max_events = 100000;
    l->flush_interval_ms = 250;
    l->batch_max_events = 1000;
    l->upstream_timeout_ms = 10000;
    l->max_inflight = 4;
    l->max_response_bytes = 64 * 1024;
    l->shutdown_timeout_ms = 5000;
    l->max_connections = 4096;
    l->spool_segment_bytes = 16u * 1024 * 1024;
    l->spool_max_bytes = 1024u * 1024 * 1024;
    l->retry_base_ms = 1000;
    l->retry_cap_ms = 60000;
    l->retry_give_up_s = 86400;
    l->auth_probe_ms = 30000;
    l->rate_per_ip = 100;
    l->rate_per_site = 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void sg_config_free(struct sg_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_sites; i++) {
        struct sg_site *s = &cfg->sites[i];
        free(s->id);
        free_strv(s->hosts, s->n_hosts);
        free_strv(s->origins, s->n_origins);
        if (s->secret)
            OPENSSL_cleanse(s->secret, s->secret_len);
        free(s->secret);
        sg_free_secret(s->ingest_key);
        free(s->ingest_key_env_unset);
        free(s->rules_path);
        sg_ruleset_free(s->rules);
        json_decref(s->event_map);
        json_decref(s->event_map_src);
        free(s->phone_region);
        free(s->cookie_domain);
        for (size_t j = 0; j < s->n_dests; j++) {
            struct sg_dest_conf *d = &s->dests[j];
            free(d->id);
            free(d->pixel_code);
            sg_free_secret(d->access_token);
            free(d->api_base);
            free(d->url);
            free_strv(d->events, d->n_events);
            free(d->test_event_code);
        }
        free(s->dests);
    }
    free(cfg->sites);
    free(cfg->trusted);
    free(cfg->path);
    free(cfg->listen);
    free(cfg->admin_listen);
    sg_free_secret(cfg->admin_token);
    free(cfg->admin_token_env_unset);
    free(cfg->state_dir);
    free_strv(cfg->queue.servers, cfg->queue.n_servers);
    free(cfg->queue.stream);
    free(cfg->queue.creds_file);
    free(cfg);
}

int sg_split_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        hlen = (size_t)(close - s - 1);
        s++;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostcap)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535)
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

/* ---- typed getters that report positions ---- */

struct loader {
    struct sg_jsondoc doc;
    char path[256];
    char *dir; /* owned: the directory of the config file, "" for the working directory */
};

/*
 * A path from the config, made absolute against the directory of the config
 * file so that the process's working directory does not matter (a service
 * manager starts it anywhere). An absolute path stays. Leading "../" steps
 * are folded into the directory where it names them ("conf" + "../rules/x"
 * is "rules/x"), so that messages show a short path. Owned by the caller.
 */
static char *resolve(const struct loader *L, const char *p)
{
    if (p[0] == '/' || !L->dir[0])
        return sg_xstrdup(p);
    char *dir = sg_xstrdup(L->dir);
    while (!strncmp(p, "../", 3)) {
        char *slash = strrchr(dir, '/');
        const char *last = slash ? slash + 1 : dir;
        if (!*last || !strcmp(last, "..") || !strcmp(last, ".") || (slash && slash == dir))
            break;
        if (slash)
            *slash = '\0';
        else
            dir[0] = '\0';
        p += 3;
    }
    char *out = dir[0] ? sg_xasprintf("%s/%s", dir, p) : sg_xstrdup(p);
    free(dir);
    return out;
}

/*
 * An identifier that appears in metric labels, file names and logs: 1..64 of
 * [A-Za-z0-9_.-]. Fails with the value's position.
 */
static int check_ident(struct loader *L, const char *value, const char *path)
{
    size_t n = strlen(value);
    bool ok = n >= 1 && n <= 64;
    for (const char *c = value; ok && *c; c++)
        ok = isalnum((unsigned char)*c) || *c == '_' || *c == '.' || *c == '-';
    if (!ok)
        return sg_jsondoc_error(&L->doc, path, false,
                                "must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'");
    return 0;
}

static const char *at(struct loader *L, const char *fmt, ...) SG_PRINTF(2, 3);
static const char *at(struct loader *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->path, sizeof(L->path), fmt, ap);
    va_end(ap);
    return L->path;
}

static int get_str(struct loader *L, json_t *obj, const char *key, const char *path,
                   bool required, char **out)
{
    json_t *v = json_object_get(obj, key);
    char sub[300];
    snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
    if (!v || json_is_null(v)) {
        if (required)
            return sg_jsondoc_error(&L->doc, path, false, "\"%s\" is required", key);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return sg_jsondoc_error(&L->doc, sub, false, "must be a non-empty string");
    *out = sg_xstrdup(json_string_value(v));
    return 0;
}

static int get_strv(struct loader *L, json_t *obj, const char *key, const char *path,
                    char ***out, size_t *n)
{
    json_t *v = json_object_get(obj, key), *item;
    size_t i;
    char sub[300];
    snprintf(sub, sizeof(sub), "%s.%s", path, key);
    *out = NULL;
    *n = 0;
    if (!v)
        return 0;
    if (!json_is_array(v))
        return sg_jsondoc_error(&L->doc, sub, false, "must be an array of strings");
    *out = sg_xcalloc(json_array_size(v) + 1, sizeof(char *));
    json_array_foreach(v, i, item) {
        if (!json_is_string(item) || json_string_length(item) == 0) {
            snprintf(sub, sizeof(sub), "%s.%s[%zu]", path, key, i);
            return sg_jsondoc_error(&L->doc, sub, false, "must be a non-empty string");
        }
        (*out)[(*n)++] = sg_xstrdup(json_string_value(item));
    }
    return 0;
}

static int get_bool(struct loader *L, json_t *obj, const char *key, const char *path, bool *out)
{
    json_t *v = json_object_get(obj, key);
    char sub[300];
    if (!v)
        return 0;
    snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
    if (!json_is_boolean(v))
        return sg_jsondoc_error(&L->doc, sub, false, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* An integer in [lo, hi]; why, when not NULL, says where hi comes from. */
static int get_num_why(struct loader *L, json_t *obj, const char *key, const char *path,
                       long long lo, long long hi, const char *why, long long *out)
{
    json_t *v = json_object_get(obj, key);
    char sub[300];
    if (!v)
        return 0;
    snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return sg_jsondoc_error(&L->doc, sub, false, "must be an integer from %lld to %lld%s%s%s",
                                lo, hi, why ? " (" : "", why ? why : "", why ? ")" : "");
    *out = json_integer_value(v);
    return 0;
}

static int get_num(struct loader *L, json_t *obj, const char *key, const char *path, long long lo,
                   long long hi, long long *out)
{
    return get_num_why(L, obj, key, path, lo, hi, NULL, out);
}

/*
 * A secret from KEY_env (an environment variable) or KEY_file (a file).
 * Returns 0 with *out NULL when neither key is present or the variable is
 * unset and *missing is set; -1 on a hard error.
 */
static int get_secret(struct loader *L, json_t *obj, const char *base, const char *path,
                      char **out, bool *missing)
{
    char envkey[64], filekey[64];
    snprintf(envkey, sizeof(envkey), "%s_env", base);
    snprintf(filekey, sizeof(filekey), "%s_file", base);
    json_t *e = json_object_get(obj, envkey), *f = json_object_get(obj, filekey);
    char sub[300];
    *out = NULL;
    *missing = false;
    if (e && f)
        return sg_jsondoc_error(&L->doc, path, false, "give %s or %s, not both", envkey, filekey);
    if (e) {
        snprintf(sub, sizeof(sub), "%s.%s", path, envkey);
        if (!json_is_string(e) || json_string_length(e) == 0)
            return sg_jsondoc_error(&L->doc, sub, false, "must name an environment variable");
        const char *val = getenv(json_string_value(e));
        if (!val || !*val) {
            *missing = true;
            return 0;
        }
        *out = sg_xstrdup(val);
        return 0;
    }
    if (f) {
        snprintf(sub, sizeof(sub), "%s.%s", path, filekey);
        if (!json_is_string(f) || json_string_length(f) == 0)
            return sg_jsondoc_error(&L->doc, sub, false, "must name a file");
        char *fpath = resolve(L, json_string_value(f));
        FILE *fp = fopen(fpath, "rb");
        if (!fp) {
            int err = errno;
            sg_jsondoc_error(&L->doc, sub, false, "cannot open %s: %s", fpath, strerror(err));
            free(fpath);
            return -1;
        }
        free(fpath);
        struct stat st;
        if (fstat(fileno(fp), &st) == 0 && (st.st_mode & 077))
            sg_warn("%s: %s: secret file is readable by group or others (chmod 600)",
                    L->doc.file, sub);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        if (n == 0) {
            OPENSSL_cleanse(buf, sizeof(buf));
            return sg_jsondoc_error(&L->doc, sub, false, "file is empty");
        }
        *out = sg_xstrdup(buf);
        OPENSSL_cleanse(buf, sizeof(buf));
        return 0;
    }
    return 0;
}

/* The name of the environment variable KEY_env in obj, for "... is not set" (never the value). */
static const char *env_name(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "?";
}

static int load_dest(struct loader *L, json_t *o, const char *path, struct sg_dest_conf *d)
{
    static const char *const keys[] = {"type",    "pixel_code",      "access_token_env",
                                       "access_token_file", "api_base", "events",
                                       "test_event_code",   "dry_run",  "id", NULL};
    char *type = NULL;
    bool missing;

    if (!json_is_object(o))
        return sg_jsondoc_error(&L->doc, path, false, "must be an object");
    if (sg_jsondoc_check_keys(&L->doc, o, path, keys) < 0)
        return -1;
    if (get_str(L, o, "type", path, true, &type) < 0)
        return -1;
    d->ops = sg_dest_ops_find(type);
    free(type);
    if (!d->ops)
        return sg_jsondoc_error(&L->doc, at(L, "%s.type", path), false,
                                "unknown destination type (known: tiktok)");
    if (get_str(L, o, "pixel_code", path, true, &d->pixel_code) < 0)
        return -1;
    if (check_ident(L, d->pixel_code, at(L, "%s.pixel_code", path)) < 0)
        return -1;
    if (get_str(L, o, "id", path, false, &d->id) < 0)
        return -1;
    if (d->id && check_ident(L, d->id, at(L, "%s.id", path)) < 0)
        return -1;
    if (!d->id)
        d->id = sg_xasprintf("%s:%s", d->ops->type, d->pixel_code);
    if (get_bool(L, o, "dry_run", path, &d->dry_run) < 0 ||
        get_str(L, o, "api_base", path, false, &d->api_base) < 0 ||
        get_strv(L, o, "events", path, &d->events, &d->n_events) < 0)
        return -1;
    json_t *tec = json_object_get(o, "test_event_code");
    if (tec && !json_is_null(tec) && get_str(L, o, "test_event_code", path, true,
                                             &d->test_event_code) < 0)
        return -1;
    if (!d->api_base)
        d->api_base = sg_xstrdup(TIKTOK_API_BASE);
    if (strncmp(d->api_base, "https://", 8) && strncmp(d->api_base, "http://", 7))
        return sg_jsondoc_error(&L->doc, at(L, "%s.api_base", path), false,
                                "must start with https:// (or http:// for a local test server)");
    size_t bl = strlen(d->api_base);
    while (bl && d->api_base[bl - 1] == '/')
        d->api_base[--bl] = '\0';
    d->url = sg_xasprintf("%s%s", d->api_base, TIKTOK_TRACK_PATH);
    if (get_secret(L, o, "access_token", path, &d->access_token, &missing) < 0)
        return -1;
    if (!d->access_token && !d->dry_run) {
        if (missing)
            return sg_jsondoc_error(&L->doc, path, false,
                                    "the access token's environment variable %s is not set",
                                    env_name(o, "access_token_env"));
        return sg_jsondoc_error(&L->doc, path, false,
                                "access_token_env or access_token_file is required unless "
                                "dry_run is true");
    }
    return 0;
}

/*
 * consent.tcf.purposes: {"ad_storage": [1], "ad_user_data": [1, 7], ...}. A canonical purpose
 * that is named replaces its default mapping; [] means TCF never decides it.
 */
static int load_tcf_purposes(struct loader *L, json_t *o, const char *path,
                             struct sg_consent_policy *c)
{
    const char *key;
    json_t *list, *item;
    size_t i;
    if (!json_is_object(o))
        return sg_jsondoc_error(&L->doc, at(L, "%s.purposes", path), false,
                                "must be an object of purpose: [TCF purpose ids]");
    json_object_foreach(o, key, list) {
        int p = sg_purpose_from_name(key);
        char sub[600];
        snprintf(sub, sizeof(sub), "%.280s.purposes.%.280s", path, key);
        if (p < 0)
            return sg_jsondoc_error(&L->doc, sub, true,
                                    "unknown purpose (ad_storage, ad_user_data, "
                                    "ad_personalization, analytics_storage)");
        if (!json_is_array(list))
            return sg_jsondoc_error(&L->doc, sub, false, "must be an array of TCF purpose ids");
        c->tcf_purposes[p] = 0;
        json_array_foreach(list, i, item) {
            if (!json_is_integer(item) || json_integer_value(item) < 1 ||
                json_integer_value(item) > 24) {
                snprintf(sub, sizeof(sub), "%.280s.purposes.%.280s[%zu]", path, key, i);
                return sg_jsondoc_error(&L->doc, sub, false, "a TCF purpose id is 1 to 24");
            }
            c->tcf_purposes[p] |= 1u << (json_integer_value(item) - 1);
        }
    }
    return 0;
}

static int load_consent(struct loader *L, json_t *o, const char *path,
                        struct sg_consent_policy *c)
{
    static const char *const keys[] = {"default", "honor_gpc", "tcf", NULL};
    static const char *const tcf_keys[] = {"vendor_id", "purposes", NULL};
    c->default_state = SG_CONSENT_DENIED;
    c->honor_gpc = true;
    sg_consent_policy_default_tcf(c);
    if (!o)
        return 0;
    if (!json_is_object(o))
        return sg_jsondoc_error(&L->doc, path, false, "must be an object");
    if (sg_jsondoc_check_keys(&L->doc, o, path, keys) < 0)
        return -1;
    json_t *def = json_object_get(o, "default");
    if (def) {
        int st = json_is_string(def) ? sg_consent_state_from_name(json_string_value(def)) : -1;
        if (st < 0)
            return sg_jsondoc_error(&L->doc, at(L, "%s.default", path), false,
                                    "must be \"granted\" or \"denied\"");
        c->default_state = (enum sg_consent_state)st;
    }
    if (get_bool(L, o, "honor_gpc", path, &c->honor_gpc) < 0)
        return -1;
    json_t *tcf = json_object_get(o, "tcf");
    if (tcf) {
        char sub[300];
        snprintf(sub, sizeof(sub), "%s.tcf", path);
        long long vid = 0;
        if (!json_is_object(tcf))
            return sg_jsondoc_error(&L->doc, sub, false, "must be an object");
        if (sg_jsondoc_check_keys(&L->doc, tcf, sub, tcf_keys) < 0 ||
            get_num(L, tcf, "vendor_id", sub, 1, 65535, &vid) < 0)
            return -1;
        json_t *p = json_object_get(tcf, "purposes");
        if (p && load_tcf_purposes(L, p, sub, c) < 0)
            return -1;
        c->tcf_vendor_id = (long)vid;
    }
    return 0;
}

/*
 * phone_region: the region assumed for a phone number written without "+"/"00", in hashing
 * and in text detection (phone.h). Upper case only, as ISO 3166-1 and libphonenumber spell it:
 * "us" is refused with a hint rather than silently upper-cased, so that a config has one
 * spelling. A region libphonenumber does not know is refused: a typo must not quietly turn
 * into "no region" (national numbers dropped).
 */
static int load_phone_region(struct loader *L, json_t *o, const char *path, struct sg_site *s)
{
    json_t *v = json_object_get(o, "phone_region");
    const char *r;
    if (!v || json_is_null(v))
        return 0;
    at(L, "%s.phone_region", path);
    if (!json_is_string(v))
        return sg_jsondoc_error(&L->doc, L->path, false,
                                "must be a region code such as \"US\" (ISO 3166-1 alpha-2)");
    r = json_string_value(v);
    if (strlen(r) == 2 && r[0] >= 'a' && r[0] <= 'z' && r[1] >= 'a' && r[1] <= 'z') {
        char upper[3] = {(char)(r[0] - 32), (char)(r[1] - 32), '\0'};
        if (sg_phone_region_known(upper))
            return sg_jsondoc_error(&L->doc, L->path, false,
                                    "a region code is upper case: \"%s\"", upper);
    }
    if (!sg_phone_region_known(r))
        return sg_jsondoc_error(&L->doc, L->path, false,
                                "\"%.16s\" is not a region libphonenumber knows (an ISO "
                                "3166-1 alpha-2 code such as \"US\" or \"GB\")", r);
    s->phone_region = sg_xstrdup(r);
    return 0;
}

/* The path of an event_map entry: .key, or ["key"] when the key holds . or [. */
static const char *map_path(struct loader *L, const char *path, const char *key, int index)
{
    bool plain = !strpbrk(key, ".[]\"") && *key;
    char idx[24] = "";
    if (index >= 0)
        snprintf(idx, sizeof(idx), "[%d]", index);
    return at(L, plain ? "%s.event_map.%s%s" : "%s.event_map[\"%s\"]%s", path, key, idx);
}

/*
 * event_map and standard_events (docs/CONFIG.md, docs/MAPPING.md): keys case-insensitive,
 * values one valid TikTok name or an array of them, applied once (no chains,
 * no loops, counting the built-in map when it is on).
 */
static int load_event_map(struct loader *L, json_t *o, const char *path, struct sg_site *s)
{
    json_t *v = json_object_get(o, "standard_events");
    s->standard_events = true;
    s->map_fanout = 1;
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return sg_jsondoc_error(&L->doc, at(L, "%s.standard_events", path), false,
                                    "must be true or false");
        s->standard_events = json_is_true(v);
    }
    json_t *em = json_object_get(o, "event_map");
    if (!em || json_is_null(em))
        return 0;
    if (!json_is_object(em))
        return sg_jsondoc_error(&L->doc, at(L, "%s.event_map", path), false,
                                "must be an object of input name: TikTok event name(s)");
    char why[256];
    const char *bad;
    int idx;
    s->event_map = sg_event_map_compile(em, s->phone_region, why, sizeof(why), &bad, &idx);
    if (!s->event_map)
        return sg_jsondoc_error(&L->doc, map_path(L, path, bad, idx), false, "%s", why);
    if (sg_event_map_check_chains(s->event_map, s->standard_events, why, sizeof(why), &bad) < 0)
        return sg_jsondoc_error(&L->doc, map_path(L, path, bad, -1), false, "%s", why);
    s->event_map_src = json_incref(em);
    const char *k;
    json_t *names;
    json_object_foreach(s->event_map, k, names)
        s->map_fanout = SG_MAX(s->map_fanout, (unsigned)json_array_size(names));
    return 0;
}

/* A DNS name: dot-separated labels of letters, digits and '-' (not at a label's ends). */
static bool dns_name(const char *s, size_t n, size_t min_labels)
{
    size_t labels = 0, len = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (len == 0 || len > 63 || s[i - 1] == '-')
                return false;
            labels++;
            len = 0;
        } else if (isalnum((unsigned char)s[i]) || (s[i] == '-' && len > 0)) {
            len++;
        } else {
            return false;
        }
    }
    return labels >= min_labels;
}

/*
 * NULL when v is an allowed_origins entry: "http(s)://host[:port]" as a browser sends it in
 * Origin (a name, an IPv4 or a [v6] address; no path, no trailing slash), or a wildcard
 * whose host is "*.domain" (a subdomain at any depth, default port; at least two labels after
 * the star, so that "*.com" is refused).
 */
static const char *origin_problem(const char *v)
{
    const char *host;
    if (!strncmp(v, "https://", 8))
        host = v + 8;
    else if (!strncmp(v, "http://", 7))
        host = v + 7;
    else
        return "an origin is http(s)://host[:port] (lower-case scheme)";
    if (!strncmp(host, "*.", 2))
        return dns_name(host + 2, strlen(host + 2), 2)
                   ? NULL
                   : "a wildcard origin is http(s)://*.domain with at least two labels after "
                     "the star (https://*.example.com), no port, no path";
    size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    bool ok = host[0] == '[' ? host[n - 1] == ']' && n > 2 && strspn(host + 1, "0123456789abcdefABCDEF:.") == n - 2
                             : dns_name(host, n, 1);
    if (ok && host[n] == ':') {
        char *end;
        long port = strtol(host + n + 1, &end, 10);
        ok = end != host + n + 1 && *end == '\0' && port > 0 && port <= 65535 &&
             isdigit((unsigned char)host[n + 1]);
    } else if (ok) {
        ok = host[n] == '\0';
    }
    return ok ? NULL
              : "an origin is http(s)://host[:port], exactly as a browser sends it: no path, "
                "no trailing /, no user or query";
}

/*
 * cookie_domain (the Domain= of the session and click-id cookies; a leading dot is dropped, as
 * browsers do) and click_id_days (the click-id cookie's lifetime; browsers cap any cookie at
 * 400 days).
 */
static int load_cookies(struct loader *L, json_t *o, const char *path, struct sg_site *s)
{
    long long days = 28;
    char *dom = NULL;
    if (get_str(L, o, "cookie_domain", path, false, &dom) < 0 ||
        get_num_why(L, o, "click_id_days", path, 1, 400, "browsers keep a cookie 400 days at "
                    "most", &days) < 0)
        return -1;
    s->click_id_days = (int)days;
    if (!dom)
        return 0;
    const char *d = dom[0] == '.' ? dom + 1 : dom;
    if (!dns_name(d, strlen(d), 2)) {
        free(dom);
        return sg_jsondoc_error(&L->doc, at(L, "%s.cookie_domain", path), false,
                                "must be a domain name with at least two labels, such as "
                                "\"shop.example.com\"");
    }
    s->cookie_domain = sg_xstrdup(d);
    for (char *c = s->cookie_domain; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    free(dom);
    /* With hosts listed, the proxy answers on one of them: a cookie_domain covering none is a
     * mistake every browser would punish by dropping the cookies. */
    bool covered = s->n_hosts == 0;
    for (size_t i = 0; i < s->n_hosts && !covered; i++)
        covered = sg_host_within(s->hosts[i], s->cookie_domain);
    if (!covered)
        return sg_jsondoc_error(&L->doc, at(L, "%s.cookie_domain", path), false,
                                "covers none of the site's hosts (a browser drops a cookie whose "
                                "domain does not cover the host that set it)");
    return 0;
}

static int load_site(struct loader *L, json_t *o, const char *path, struct sg_site *s)
{
    static const char *const keys[] = {
        "id",      "hosts",          "allowed_origins", "secret_env",
        "secret_file", "ingest_key_env", "ingest_key_file", "rules",
        "consent", "event_map",      "destinations",    "phone_region",
        "standard_events", "cookie_domain", "click_id_days", NULL};
    bool missing;
    char *secret = NULL;

    if (!json_is_object(o))
        return sg_jsondoc_error(&L->doc, path, false, "must be an object");
    if (sg_jsondoc_check_keys(&L->doc, o, path, keys) < 0 ||
        get_str(L, o, "id", path, true, &s->id) < 0 ||
        get_strv(L, o, "hosts", path, &s->hosts, &s->n_hosts) < 0 ||
        get_strv(L, o, "allowed_origins", path, &s->origins, &s->n_origins) < 0 ||
        get_str(L, o, "rules", path, true, &s->rules_path) < 0)
        return -1;
    if (check_ident(L, s->id, at(L, "%s.id", path)) < 0)
        return -1;
    char *rules_rel = s->rules_path;
    s->rules_path = resolve(L, rules_rel);
    free(rules_rel);
    for (size_t i = 0; i < s->n_origins; i++) {
        const char *why = origin_problem(s->origins[i]);
        if (why)
            return sg_jsondoc_error(&L->doc, at(L, "%s.allowed_origins[%zu]", path, i), false,
                                    "%s", why);
    }
    if (load_cookies(L, o, path, s) < 0)
        return -1;
    /* A local copy: load_consent formats sub-paths with at(), which reuses L->path. */
    char cpath[256];
    snprintf(cpath, sizeof(cpath), "%s.consent", path);
    if (load_consent(L, json_object_get(o, "consent"), cpath, &s->consent) < 0)
        return -1;
    if (load_phone_region(L, o, path, s) < 0 || load_event_map(L, o, path, s) < 0)
        return -1;
    json_t *dests = json_object_get(o, "destinations");
    if (!json_is_array(dests))
        return sg_jsondoc_error(&L->doc, dests ? at(L, "%s.destinations", path) : path, false,
                                "\"destinations\": required, an array");
    s->dests = sg_xcalloc(json_array_size(dests), sizeof(*s->dests));
    size_t i;
    json_t *d;
    bool all_dry = true;
    json_array_foreach(dests, i, d) {
        char dpath[256];
        snprintf(dpath, sizeof(dpath), "%s.destinations[%zu]", path, i);
        s->n_dests = i + 1;
        if (load_dest(L, d, dpath, &s->dests[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->dests[j].id, s->dests[i].id))
                return sg_jsondoc_error(&L->doc, dpath, false,
                                        "duplicate destination id \"%s\" in this site (give one "
                                        "of them its own \"id\")",
                                        s->dests[i].id);
        all_dry = all_dry && s->dests[i].dry_run;
    }

    if (get_secret(L, o, "secret", path, &secret, &missing) < 0)
        return -1;
    if (!secret) {
        if (!all_dry && missing)
            return sg_jsondoc_error(&L->doc, path, false,
                                    "the site secret's environment variable %s is not set",
                                    env_name(o, "secret_env"));
        if (!all_dry)
            return sg_jsondoc_error(&L->doc, path, false, "secret_env or secret_file is required");
        /* Nothing can leave a dry-run site, so a per-process key is safe; say so. */
        s->secret = sg_xmalloc(32);
        char hex[65];
        if (sg_random_hex(hex, 32) < 0)
            return sg_error("cannot read random bytes");
        memcpy(s->secret, hex, 32);
        s->secret_len = 32;
        s->secret_ephemeral = true;
        OPENSSL_cleanse(hex, sizeof(hex)); /* serve says so: sg_config_announce() */
    } else {
        if (strlen(secret) < 16) {
            sg_free_secret(secret);
            return sg_jsondoc_error(&L->doc, path, false,
                                    "the site secret must be at least 16 bytes");
        }
        s->secret_len = strlen(secret);
        s->secret = (unsigned char *)secret;
    }
    if (get_secret(L, o, "ingest_key", path, &s->ingest_key, &missing) < 0)
        return -1;
    if (missing) /* serve says so: sg_config_announce() */
        s->ingest_key_env_unset = sg_xstrdup(env_name(o, "ingest_key_env"));
    s->rules = sg_ruleset_load(s->rules_path);
    if (!s->rules)
        return sg_jsondoc_error(&L->doc, at(L, "%s.rules", path), false,
                                "rule set did not load (error above)");
    /* a map_event rule's own map may fan out more than the site's */
    s->map_fanout = SG_MAX(s->map_fanout, sg_ruleset_map_fanout(s->rules));
    return 0;
}

/*
 * queue: {"type": "local"} (the default: the on-disk spool under state_dir) or
 * {"type": "jetstream", "servers": [...], "stream": "SCRUBGATE", "replicas": 3,
 * "creds_file": null}: several instances over one NATS JetStream cluster (docs/SCALING.md).
 * An unknown type is an error, never a fallback (a silent local spool would lose the
 * sharing the operator asked for).
 */
static int load_queue(struct loader *L, json_t *q, struct sg_queue_conf *out)
{
    static const char *const keys[] = {"type", "servers", "stream", "replicas", "creds_file",
                                       NULL};
    if (!q)
        return 0;
    if (!json_is_object(q))
        return sg_jsondoc_error(&L->doc, "queue", false, "must be an object with a \"type\"");
    if (sg_jsondoc_check_keys(&L->doc, q, "queue", keys) < 0)
        return -1;
    const char *t = json_string_value(json_object_get(q, "type"));
    if (t && !strcmp(t, "local")) {
        if (json_object_size(q) > 1)
            return sg_jsondoc_error(&L->doc, "queue", false,
                                    "the local queue takes no other key than \"type\"");
        return 0;
    }
    if (!t || strcmp(t, "jetstream") != 0)
        return sg_jsondoc_error(&L->doc, json_object_get(q, "type") ? "queue.type" : "queue",
                                false, "must be \"local\" or \"jetstream\"");
    out->type = SG_QUEUE_JETSTREAM;
    if (get_strv(L, q, "servers", "queue", &out->servers, &out->n_servers) < 0)
        return -1;
    if (!out->n_servers)
        return sg_jsondoc_error(&L->doc, json_object_get(q, "servers") ? "queue.servers" : "queue",
                                false, "jetstream needs \"servers\": at least one nats:// URL");
    for (size_t i = 0; i < out->n_servers; i++)
        if (strncmp(out->servers[i], "nats://", 7) != 0 && strncmp(out->servers[i], "tls://", 6))
            return sg_jsondoc_error(&L->doc, at(L, "queue.servers[%zu]", i), false,
                                    "must be a nats:// or tls:// URL");
    if (get_str(L, q, "stream", "queue", false, &out->stream) < 0)
        return -1;
    if (!out->stream)
        out->stream = sg_xstrdup("SCRUBGATE");
    /* A stream name is a subject token: no '.', '*', '>' or spaces. */
    size_t len = strlen(out->stream);
    if (len == 0 || len > SG_JETSTREAM_NAME_MAX)
        return sg_jsondoc_error(&L->doc, "queue.stream", false, "must be 1 to %d bytes (NATS)",
                                SG_JETSTREAM_NAME_MAX);
    for (const char *c = out->stream; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
            return sg_jsondoc_error(&L->doc, "queue.stream", false,
                                    "must be letters, digits, '_' or '-'");
    long long replicas = 3;
    if (get_num_why(L, q, "replicas", "queue", 1, 5, "JetStream's limit", &replicas) < 0)
        return -1;
    out->replicas = (int)replicas;
    json_t *cf = json_object_get(q, "creds_file");
    if (cf && !json_is_null(cf)) {
        if (!json_is_string(cf) || json_string_length(cf) == 0)
            return sg_jsondoc_error(&L->doc, "queue.creds_file", false,
                                    "must name a file, or be null");
        out->creds_file = resolve(L, json_string_value(cf));
        if (access(out->creds_file, R_OK) < 0)
            return sg_jsondoc_error(&L->doc, "queue.creds_file", false, "cannot read %s: %s",
                                    out->creds_file, strerror(errno));
    }
    return 0;
}

/* log_format: "text" (default) or "json"; log_level: error, warn, info (default), debug. */
static int load_logging(struct loader *L, json_t *root, struct sg_config *cfg)
{
    json_t *f = json_object_get(root, "log_format"), *l = json_object_get(root, "log_level");
    if (f) {
        const char *v = json_string_value(f);
        if (v && !strcmp(v, "text"))
            cfg->log_format = SG_LOG_TEXT;
        else if (v && !strcmp(v, "json"))
            cfg->log_format = SG_LOG_JSON;
        else
            return sg_jsondoc_error(&L->doc, "log_format", false, "must be \"text\" or \"json\"");
    }
    if (l) {
        int lv = json_is_string(l) ? sg_log_level_from_name(json_string_value(l)) : -1;
        if (lv < 0)
            return sg_jsondoc_error(&L->doc, "log_level", false,
                                    "must be \"error\", \"warn\", \"info\" or \"debug\"");
        cfg->log_level = (enum sg_log_level)lv;
    }
    return 0;
}

static int load_limits(struct loader *L, json_t *o, struct sg_limits *l)
{
    static const char *const keys[] = {
        "max_body_bytes",   "max_header_bytes",  "max_events_per_request", "max_field_bytes",
        "request_timeout_ms", "queue_max_events", "flush_interval_ms",      "batch_max_events",
        "upstream_timeout_ms", "max_inflight",    "max_response_bytes",     "shutdown_timeout_ms",
        "max_connections",     "spool_segment_bytes", "spool_max_bytes", "retry_base_ms",
        "retry_cap_ms",        "retry_give_up_s",     "auth_probe_ms",   "header_timeout_ms",
        "keepalive_timeout_ms", "rate_per_ip",       "rate_per_site",   NULL};
    long long v;
    if (!o)
        return 0;
    if (!json_is_object(o))
        return sg_jsondoc_error(&L->doc, "limits", false, "must be an object");
    if (sg_jsondoc_check_keys(&L->doc, o, "limits", keys) < 0)
        return -1;
#define LIMIT_WHY(key, lo, hi, why, field, type)                                                   \
    do {                                                                                           \
        v = (long long)l->field;                                                                   \
        if (get_num_why(L, o, key, "limits", lo, hi, why, &v) < 0)                                 \
            return -1;                                                                             \
        l->field = (type)v;                                                                        \
    } while (0)
#define LIMIT(key, lo, hi, field, type) LIMIT_WHY(key, lo, hi, NULL, field, type)
    /*
     * Maxima that other code must honour. A body's event becomes one spool
     * record, and recovery reads no record over SG_SPOOL_MAX_PAYLOAD: a body
     * up to half of it leaves room for what formatting adds (redaction
     * markers, content_ids derived from contents, hashes) and the record's
     * metadata. A field is scrubbed in buffers sized for SG_SCRUB_MAX_TEXT.
     */
    LIMIT_WHY("max_body_bytes", 1024, SG_SPOOL_MAX_PAYLOAD / 2,
              "an event must fit in one 16 MiB spool record", max_body_bytes, size_t);
    LIMIT("max_header_bytes", 1024, 1024 * 1024, max_header_bytes, size_t);
    LIMIT("max_events_per_request", 1, 10000, max_events_per_request, size_t);
    LIMIT_WHY("max_field_bytes", 64, SG_SCRUB_MAX_TEXT, "the longest text the scrubber takes",
              max_field_bytes, size_t);
    LIMIT("request_timeout_ms", 100, 600000, request_timeout_ms, int);
    LIMIT("header_timeout_ms", 100, 600000, header_timeout_ms, int);
    LIMIT("keepalive_timeout_ms", 100, 3600000, keepalive_timeout_ms, int);
    LIMIT("queue_max_events", 1, 100000000, queue_max_events, size_t);
    LIMIT("flush_interval_ms", 1, 60000, flush_interval_ms, int);
    LIMIT("batch_max_events", 1, 1000, batch_max_events, size_t);
    LIMIT("upstream_timeout_ms", 100, 600000, upstream_timeout_ms, int);
    LIMIT("max_inflight", 1, 64, max_inflight, size_t);
    LIMIT("max_response_bytes", 1024, 16 * 1024 * 1024, max_response_bytes, size_t);
    LIMIT("shutdown_timeout_ms", 0, 600000, shutdown_timeout_ms, int);
    LIMIT("max_connections", 16, 1000000, max_connections, size_t);
    LIMIT("spool_segment_bytes", 4096, 1024LL * 1024 * 1024, spool_segment_bytes, uint64_t);
    LIMIT("spool_max_bytes", 65536, 1LL << 50, spool_max_bytes, uint64_t);
    LIMIT("retry_base_ms", 1, 3600000, retry_base_ms, int);
    LIMIT("retry_cap_ms", 1, 86400000, retry_cap_ms, int);
    LIMIT("retry_give_up_s", 1, 30 * 86400, retry_give_up_s, int);
    LIMIT("auth_probe_ms", 10, 86400000, auth_probe_ms, int);
    LIMIT_WHY("rate_per_ip", 0, 1000000, "events per second per client IP, 0 for no limit",
              rate_per_ip, uint32_t);
    LIMIT_WHY("rate_per_site", 0, 10000000, "events per second per site, 0 for no limit",
              rate_per_site, uint32_t);
#undef LIMIT
#undef LIMIT_WHY
    return 0;
}

/* NATS refuses a consumer name over 255 bytes: a destination whose escaped site and
 * destination ids are that long could take events and never deliver them. */
static int check_durables(struct loader *L, const struct sg_config *cfg)
{
    size_t site, dest, n;
    if (sg_jetstream_names_fit(cfg, &site, &dest, &n))
        return 0;
    return sg_jsondoc_error(&L->doc, at(L, "sites[%zu].destinations[%zu]", site, dest), false,
                            "its JetStream consumer name would be %zu bytes, over NATS's %d: "
                            "shorten the site or destination id ('_', '.', ':' and '-' count "
                            "twice)",
                            n, SG_JETSTREAM_NAME_MAX);
}

struct sg_config *sg_config_load(const char *path)
{
    static const char *const keys[] = {"listen",   "admin_listen", "admin_token_env",
                                       "admin_token_file", "state_dir", "trusted_proxies",
                                       "sites",    "limits",       "workers", "log_format",
                                       "log_level", "queue", NULL};
    struct loader L;
    struct sg_config *cfg = sg_xcalloc(1, sizeof(*cfg));
    bool missing;

    cfg->path = sg_xstrdup(path);
    sg_limits_default(&cfg->limits);
    cfg->log_level = SG_LOG_INFO;
    const char *slash = strrchr(path, '/');
    L.dir = slash ? sg_xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : sg_xstrdup("");
    if (sg_jsondoc_load(&L.doc, path, NULL, 0) < 0)
        goto fail;
    json_t *root = L.doc.root;
    if (!json_is_object(root)) {
        sg_jsondoc_error(&L.doc, "", false, "the configuration is a JSON object");
        goto fail;
    }
    if (sg_jsondoc_check_keys(&L.doc, root, "", keys) < 0 ||
        get_str(&L, root, "listen", "", false, &cfg->listen) < 0 ||
        get_str(&L, root, "admin_listen", "", false, &cfg->admin_listen) < 0 ||
        get_str(&L, root, "state_dir", "", false, &cfg->state_dir) < 0 ||
        get_secret(&L, root, "admin_token", "", &cfg->admin_token, &missing) < 0 ||
        load_limits(&L, json_object_get(root, "limits"), &cfg->limits) < 0)
        goto fail;
    if (!cfg->listen)
        cfg->listen = sg_xstrdup("127.0.0.1:8080");
    char *state_rel = cfg->state_dir ? cfg->state_dir : sg_xstrdup("var");
    cfg->state_dir = resolve(&L, state_rel);
    free(state_rel);
    if (missing) /* as with no token at all; serve says so: sg_config_announce() */
        cfg->admin_token_env_unset = sg_xstrdup(env_name(root, "admin_token_env"));
    if (load_logging(&L, root, cfg) < 0 || load_queue(&L, json_object_get(root, "queue"), &cfg->queue) < 0)
        goto fail;
    char host[256];
    int port;
    if (sg_split_hostport(cfg->listen, host, sizeof(host), &port) < 0) {
        sg_jsondoc_error(&L.doc, "listen", false, "must be host:port or [v6]:port");
        goto fail;
    }
    if (cfg->admin_listen && sg_split_hostport(cfg->admin_listen, host, sizeof(host), &port) < 0) {
        sg_jsondoc_error(&L.doc, "admin_listen", false, "must be host:port or [v6]:port");
        goto fail;
    }
    long long workers = 0;
    if (get_num(&L, root, "workers", "", 0, 64, &workers) < 0)
        goto fail;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n < 1 ? 1 : (n > 16 ? 16 : n);
    }
    cfg->workers = (int)workers;

    json_t *tp = json_object_get(root, "trusted_proxies"), *item;
    size_t i;
    if (tp && !json_is_array(tp)) {
        sg_jsondoc_error(&L.doc, "trusted_proxies", false, "must be an array of CIDR ranges");
        goto fail;
    }
    cfg->trusted = sg_xcalloc(tp ? json_array_size(tp) : 1, sizeof(struct sg_cidr));
    json_array_foreach(tp, i, item) {
        if (!json_is_string(item) ||
            sg_cidr_parse(json_string_value(item), &cfg->trusted[i]) < 0) {
            sg_jsondoc_error(&L.doc, at(&L, "trusted_proxies[%zu]", i), false,
                             "not an IPv4 or IPv6 CIDR range");
            goto fail;
        }
        cfg->n_trusted = i + 1;
    }

    json_t *sites = json_object_get(root, "sites");
    if (!json_is_array(sites) || json_array_size(sites) == 0) {
        sg_jsondoc_error(&L.doc, sites ? "sites" : "", false,
                         "\"sites\": required, a non-empty array");
        goto fail;
    }
    cfg->sites = sg_xcalloc(json_array_size(sites), sizeof(struct sg_site));
    json_array_foreach(sites, i, item) {
        char spath[64];
        snprintf(spath, sizeof(spath), "sites[%zu]", i);
        cfg->n_sites = i + 1;
        if (load_site(&L, item, spath, &cfg->sites[i]) < 0)
            goto fail;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->sites[j].id, cfg->sites[i].id) == 0) {
                sg_jsondoc_error(&L.doc, at(&L, "sites[%zu].id", i), false,
                                 "duplicate site id \"%s\"", cfg->sites[i].id);
                goto fail;
            }
    }
    if (cfg->queue.type == SG_QUEUE_JETSTREAM && check_durables(&L, cfg) < 0)
        goto fail;
    sg_jsondoc_release(&L.doc);
    free(L.dir);
    return cfg;
fail:
    sg_jsondoc_release(&L.doc);
    free(L.dir);
    sg_config_free(cfg);
    return NULL;
}

void sg_config_announce(const struct sg_config *cfg)
{
    sg_log_configure(cfg->log_format, cfg->log_level);
    if (cfg->admin_token_env_unset)
        sg_warn("%s: the admin token's environment variable %s is not set", cfg->path,
                cfg->admin_token_env_unset);
    for (size_t i = 0; i < cfg->n_sites; i++) {
        const struct sg_site *s = &cfg->sites[i];
        if (s->secret_ephemeral)
            sg_warn("site %s: no secret set; using a random per-process key (allowed only "
                    "because every destination is dry_run; hashes change on restart)",
                    s->id);
        if (s->ingest_key_env_unset)
            sg_warn("site %s: the ingest key's environment variable %s is not set; "
                    "authenticated server ingest is off",
                    s->id, s->ingest_key_env_unset);
    }
}

const struct sg_site *sg_config_site_by_id(const struct sg_config *cfg, const char *id)
{
    const struct sg_site *by_pixel = NULL;
    for (size_t i = 0; i < cfg->n_sites; i++)
        if (strcmp(cfg->sites[i].id, id) == 0)
            return &cfg->sites[i];
    for (size_t i = 0; i < cfg->n_sites; i++)
        for (size_t d = 0; d < cfg->sites[i].n_dests; d++) {
            const char *pc = cfg->sites[i].dests[d].pixel_code;
            if (pc && strcmp(pc, id) == 0 && by_pixel != &cfg->sites[i]) {
                if (by_pixel)
                    return NULL; /* two sites send to this pixel: the code names neither */
                by_pixel = &cfg->sites[i];
            }
        }
    return by_pixel;
}

const struct sg_site *sg_config_site_by_host(const struct sg_config *cfg, const char *host)
{
    char h[256];
    size_t n = strcspn(host, ":"); /* ignore a port */
    if (host[0] == '[')
        n = strcspn(host, "]") + 1;
    if (n >= sizeof(h))
        return NULL;
    memcpy(h, host, n);
    h[n] = '\0';
    for (size_t i = 0; i < cfg->n_sites; i++)
        for (size_t j = 0; j < cfg->sites[i].n_hosts; j++)
            if (sg_strcaseeq(cfg->sites[i].hosts[j], h))
                return &cfg->sites[i];
    return NULL;
}

bool sg_config_is_trusted_proxy(const struct sg_config *cfg, const char *ip)
{
    int family;
    unsigned char addr[16];
    if (sg_addr_parse(ip, &family, addr) < 0)
        return false;
    for (size_t i = 0; i < cfg->n_trusted; i++)
        if (sg_cidr_match(&cfg->trusted[i], family, addr))
            return true;
    return false;
}

/* A wildcard entry (host "*.domain") covers origin: same scheme, a host ending in ".domain"
 * with at least one label before it, and no port (browsers omit the default one). */
static bool wildcard_covers(const char *pattern, const char *origin)
{
    const char *star = strstr(pattern, "://*.");
    if (!star)
        return false;
    size_t scheme = (size_t)(star - pattern) + 3; /* "https://" */
    if (!sg_strncaseeq(pattern, origin, scheme))
        return false;
    const char *host = origin + scheme, *domain = star + 4; /* ".example.com" */
    size_t hl = strlen(host), dl = strlen(domain);
    if (hl <= dl || host[0] == '.' || !sg_strcaseeq(host + hl - dl, domain))
        return false;
    for (size_t i = 0; i < hl - dl; i++) /* the subdomain part: labels only */
        if (!(isalnum((unsigned char)host[i]) || host[i] == '-' || host[i] == '.'))
            return false;
    return host[hl - dl - 1] != '.';
}

bool sg_host_within(const char *host, const char *domain)
{
    size_t n = host[0] == '[' ? 0 : strcspn(host, ":"), dl = strlen(domain);
    if (n < dl || (n > dl && host[n - dl - 1] != '.'))
        return false;
    return sg_strncaseeq(host + n - dl, domain, dl);
}

bool sg_site_origin_allowed(const struct sg_site *site, const char *origin)
{
    for (size_t i = 0; i < site->n_origins; i++)
        if (sg_strcaseeq(site->origins[i], origin) || wildcard_covers(site->origins[i], origin))
            return true;
    return false;
}
