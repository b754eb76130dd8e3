/*
 * eventmap.c - TikTok event names and event-name maps (see eventmap.h).
 * The tables come from event_names.def, the single source that the
 * generated docs/MAPPING.md is also printed from.
 */
#include "scrubgate/common.h"
#include "scrubgate/eventmap.h"
#include "scrubgate/scrub.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const std_events[] = {
#define SG_STD_EVENT(name) name,
#include "event_names.def"
};

static const struct sg_event_map_entry builtin_entries[] = {
#define SG_MAP(from, to, vocabulary) {from, to, vocabulary},
#include "event_names.def"
};

const char *sg_map_source_name(unsigned src)
{
    static const char *const names[] = {"rule", "site", "builtin"};
    return src < SG_ARRAY_SIZE(names) ? names[src] : "?";
}

bool sg_tiktok_standard_event(const char *name)
{
    for (size_t i = 0; i < SG_ARRAY_SIZE(std_events); i++)
        if (strcmp(std_events[i], name) == 0)
            return true;
    return false;
}

size_t sg_tiktok_standard_event_count(void)
{
    return SG_ARRAY_SIZE(std_events);
}

const char *sg_tiktok_standard_event_at(size_t i)
{
    return i < SG_ARRAY_SIZE(std_events) ? std_events[i] : NULL;
}

size_t sg_event_map_builtin_count(void)
{
    return SG_ARRAY_SIZE(builtin_entries);
}

const struct sg_event_map_entry *sg_event_map_builtin_at(size_t i)
{
    return i < SG_ARRAY_SIZE(builtin_entries) ? &builtin_entries[i] : NULL;
}

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ .:-"

bool sg_event_name_charset_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= SG_EVENT_NAME_MAX && name[strspn(name, NAME_CHARS)] == '\0';
}

/*
 * Seven digits or more in a row, spaces, dots, dashes, underscores, colons
 * and parentheses between them ignored: in an event name that is a phone
 * number, an account or a card far more likely than a name (14155559931,
 * 415 555 9931).
 */
static bool long_digit_run(const char *s)
{
    unsigned run = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            if (++run >= 7)
                return true;
        } else if (!strchr(" .-()_:", *s)) {
            run = 0;
        }
    }
    return false;
}

bool sg_event_name_has_pii(const char *name, const char *phone_region)
{
    const struct sg_scrub_spec all = {SG_DET_ALL, NULL, phone_region};
    return long_digit_run(name) || sg_scrub_detect_identifier(&all, name, strlen(name)) != 0;
}

/* ASCII lower case into out (SG_EVENT_NAME_MAX + 1 bytes); false when too long. */
static bool fold(const char *name, char *out)
{
    size_t n = strlen(name);
    if (n > SG_EVENT_NAME_MAX)
        return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    return true;
}

int sg_event_map_target_check(const char *name, const char *phone_region, char *why,
                              size_t whylen)
{
    if (!sg_event_name_charset_ok(name)) {
        snprintf(why, whylen, "a TikTok event name is 1..%d bytes of letters, digits, space "
                              "and _ . : -", SG_EVENT_NAME_MAX);
        return -1;
    }
    size_t n = strlen(name);
    if (name[0] == ' ' || name[n - 1] == ' ') {
        snprintf(why, whylen, "a TikTok event name neither starts nor ends with a space");
        return -1;
    }
    if (!sg_tiktok_standard_event(name)) {
        for (size_t i = 0; i < SG_ARRAY_SIZE(std_events); i++)
            if (sg_strcaseeq(std_events[i], name)) {
                snprintf(why, whylen,
                         "TikTok's standard event is spelled \"%s\" (event names are "
                         "case-sensitive; this one would leave as a custom event)",
                         std_events[i]);
                return -1;
            }
    }
    if (sg_scrub_init() < 0 || sg_event_name_has_pii(name, phone_region)) {
        snprintf(why, whylen, "looks like personal data (a phone, card or IP address, an "
                              "email, an IBAN or a national id)");
        return -1;
    }
    return 0;
}

json_t *sg_event_map_compile(json_t *in, const char *phone_region, char *why, size_t whylen,
                             const char **bad_key, int *bad_index)
{
    json_t *out = json_object(), *v;
    const char *k;
    char key[SG_EVENT_NAME_MAX + 1];

    *bad_key = NULL;
    *bad_index = -1;
    json_object_foreach(in, k, v) {
        *bad_key = k;
        *bad_index = -1;
        if (!*k || !fold(k, key)) {
            snprintf(why, whylen, "an input event name is 1..%d bytes", SG_EVENT_NAME_MAX);
            goto fail;
        }
        if (json_object_get(out, key)) {
            snprintf(why, whylen, "the same input name twice (keys match case-insensitively)");
            goto fail;
        }
        json_t *names = json_array();
        json_object_set_new(out, key, names);
        if (json_is_string(v)) {
            json_array_append(names, v);
        } else if (json_is_array(v) && json_array_size(v) >= 1 &&
                   json_array_size(v) <= SG_EVENT_MAP_MAX_NAMES) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                *bad_index = (int)i;
                if (!json_is_string(e)) {
                    snprintf(why, whylen, "must be a TikTok event name (a string)");
                    goto fail;
                }
                for (size_t j = 0; j < i; j++)
                    if (strcmp(json_string_value(json_array_get(names, j)),
                               json_string_value(e)) == 0) {
                        snprintf(why, whylen, "the same event name twice in one entry");
                        goto fail;
                    }
                json_array_append(names, e);
            }
        } else {
            snprintf(why, whylen,
                     "must be a TikTok event name or an array of 1..%d names",
                     SG_EVENT_MAP_MAX_NAMES);
            goto fail;
        }
        size_t i;
        json_t *e;
        json_array_foreach(names, i, e) {
            if (json_is_array(v))
                *bad_index = (int)i;
            if (sg_event_map_target_check(json_string_value(e), phone_region, why, whylen) < 0)
                goto fail;
        }
    }
    *bad_key = NULL;
    *bad_index = -1;
    return out;
fail:
    json_decref(out);
    return NULL;
}

json_t *sg_event_map_lookup(const json_t *compiled, const char *name)
{
    char key[SG_EVENT_NAME_MAX + 1];
    if (!compiled || !fold(name, key))
        return NULL;
    return json_object_get(compiled, key);
}

static json_t *builtin_map;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_build(void)
{
    builtin_map = json_object();
    char key[SG_EVENT_NAME_MAX + 1];
    for (size_t i = 0; i < SG_ARRAY_SIZE(builtin_entries); i++) {
        if (!fold(builtin_entries[i].from, key))
            abort(); /* the table is ours: unit-tested */
        json_object_set_new(builtin_map, key, json_pack("[s]", builtin_entries[i].to));
    }
}

json_t *sg_event_map_builtin(void)
{
    pthread_once(&builtin_once, builtin_build);
    return builtin_map;
}

int sg_event_map_check_chains(const json_t *map, bool builtin, char *why, size_t whylen,
                              const char **bad_key)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)map, k, v) {
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t) {
            const char *to = json_string_value(t);
            json_t *next = sg_event_map_lookup(map, to);
            const char *via = "this map";
            if (!next && builtin) {
                next = sg_event_map_lookup(sg_event_map_builtin(), to);
                via = "the built-in map (standard_events)";
            }
            if (!next)
                continue;
            if (json_array_size(next) == 1 && strcmp(json_string_value(json_array_get(next, 0)),
                                                     to) == 0)
                continue; /* "purchase": "Purchase" and then Purchase -> Purchase: a fixpoint */
            *bad_key = k;
            snprintf(why, whylen,
                     "\"%s\" is itself mapped by %s (to \"%s\"%s); a map is applied once, so "
                     "this is a chain or a loop: name the final TikTok event here",
                     to, via, json_string_value(json_array_get(next, 0)),
                     json_array_size(next) > 1 ? ", ..." : "");
            return -1;
        }
    }
    return 0;
}

json_t *sg_effective_event_map(const json_t *site_src, const json_t *site_map, bool builtin)
{
    json_t *out = json_object();
    if (builtin) {
        for (size_t i = 0; i < SG_ARRAY_SIZE(builtin_entries); i++) {
            const struct sg_event_map_entry *e = &builtin_entries[i];
            if (sg_event_map_lookup(site_map, e->from))
                continue;
            json_object_set_new(out, e->from, json_pack("{s:[s],s:s}", "to", e->to, "from",
                                                        "builtin"));
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)site_src, k, v)
        json_object_set_new(out, k, json_pack("{s:O,s:s}", "to", sg_event_map_lookup(site_map, k),
                                              "from", "site"));
    return out;
}
