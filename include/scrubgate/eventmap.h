/*
 * eventmap.h - event names: TikTok's standard events, the rule an outbound
 * name must follow, and event-name maps (a site's event_map, a map_event
 * rule's own map, and the built-in map from src/rules/event_names.def).
 *
 * A compiled map is a JSON object whose keys are the input names in ASCII
 * lower case and whose values are arrays of 1..SG_EVENT_MAP_MAX_NAMES
 * outbound names: lookups are case-insensitive, and one input event may
 * become several outbound events. A map is applied once: its targets are not
 * looked up again.
 */
#ifndef SCRUBGATE_EVENTMAP_H
#define SCRUBGATE_EVENTMAP_H

#include "scrubgate/common.h"

#include <jansson.h>

#define SG_EVENT_NAME_MAX 100     /* bytes, input and outbound */
#define SG_EVENT_MAP_MAX_NAMES 8  /* outbound events one input event may become */

/* Which map renamed an event (kept in the receipt entry's count). */
enum sg_map_source { SG_MAP_SRC_RULE = 0, SG_MAP_SRC_SITE, SG_MAP_SRC_BUILTIN };
const char *sg_map_source_name(unsigned src); /* "rule", "site", "builtin" */

/* Exactly one of TikTok's standard event names (case-sensitive). */
bool sg_tiktok_standard_event(const char *name);
size_t sg_tiktok_standard_event_count(void);
const char *sg_tiktok_standard_event_at(size_t i);

/* 1..100 bytes of letters, digits, space and _ . : - (what may leave as a name). */
bool sg_event_name_charset_ok(const char *name);

/*
 * True when a name looks like personal data (an email, a phone, card or IP
 * number, an IBAN or a national id, or seven digits in a row): such a name is
 * refused before anything else, so that it is never logged or written.
 */
bool sg_event_name_has_pii(const char *name, const char *phone_region);

/*
 * Whether name may be a map's target: the outbound rule, and not a standard
 * event spelled in another case ("purchase" would leave as a custom event).
 * 0, or -1 with a one-line reason in why (which never quotes the name).
 */
int sg_event_map_target_check(const char *name, const char *phone_region, char *why,
                              size_t whylen);

/*
 * Compile a map written as {"input name": "Target" | ["Target", ...]}.
 * Returns a new reference, or NULL with why and *bad_key (borrowed from in)
 * and *bad_index (the array element, -1 for the value as a whole) set.
 */
json_t *sg_event_map_compile(json_t *in, const char *phone_region, char *why, size_t whylen,
                             const char **bad_key, int *bad_index);

/* The targets for name (borrowed array), or NULL. Case-insensitive. */
json_t *sg_event_map_lookup(const json_t *compiled, const char *name);

/* The built-in map, compiled once (borrowed; never NULL). */
json_t *sg_event_map_builtin(void);

/*
 * Check that a map is applied once without surprise: no target of map is
 * itself an input name that the effective map (map, then the built-in one
 * when builtin) sends somewhere else. That covers loops (a -> b, b -> a) and
 * chains (a -> b, b -> c). 0, or -1 with why and *bad_key (a key of map).
 */
int sg_event_map_check_chains(const json_t *map, bool builtin, char *why, size_t whylen,
                              const char **bad_key);

/*
 * The effective map as {input: {"to": [targets], "from": "site"|"builtin"}}
 * (new reference): site entries (spelled as in site_src, the map as written;
 * site_map compiled from it) win over built-in ones.
 */
json_t *sg_effective_event_map(const json_t *site_src, const json_t *site_map, bool builtin);

struct sg_event_map_entry {
    const char *from, *to, *vocabulary;
};
size_t sg_event_map_builtin_count(void);
const struct sg_event_map_entry *sg_event_map_builtin_at(size_t i);

#endif
