/*
 * rules.h - the rule engine: a site's ordered rule set, compiled at load.
 *
 * A rule set is a JSON file: {"name", "rules": [ {id, why, when?, action, ...} ]}.
 * Rules run in order over a canonical event. Minimization by default: a
 * field that no rule allows does not leave. The language is documented in
 * docs/RULES.md. Applying a rule set allocates only for values it rewrites.
 */
#ifndef SCRUBGATE_RULES_H
#define SCRUBGATE_RULES_H

#include "scrubgate/common.h"
#include "scrubgate/event.h"

#include <jansson.h>

struct sg_ruleset;

/* What a rule may read besides the event: the site's secret and event map. */
struct sg_rule_env {
    const unsigned char *secret; /* borrowed; the site's HMAC key */
    size_t secret_len;
    json_t *event_map; /* borrowed; the site's compiled event_map (eventmap.h), or NULL */
    bool standard_events; /* the built-in map applies after event_map */
    const char *phone_region; /* borrowed; the site's phone_region, or NULL */
};

/* Load and compile a rule set; logs file:line:column and returns NULL on error. */
struct sg_ruleset *sg_ruleset_load(const char *path);
void sg_ruleset_free(struct sg_ruleset *rs);
/* The most outbound events one input event can become through the rule set's own maps (>= 1). */
unsigned sg_ruleset_map_fanout(const struct sg_ruleset *rs);
const char *sg_ruleset_name(const struct sg_ruleset *rs);
/* Content hash of the file ("sha256:" + 12 hex), recorded in the sync log. */
const char *sg_ruleset_version(const struct sg_ruleset *rs);
/* SHA-256 of the rule-set file, 64 lowercase hex characters. */
const char *sg_ruleset_sha256(const struct sg_ruleset *rs);
size_t sg_ruleset_count(const struct sg_ruleset *rs);
/*
 * The rules as an auditor reads them (borrowed; lives as long as rs): an array
 * of {id, action, fields: [...], condition: the "when" object as written or
 * null, why, options: the action's other parameters as written}, in order.
 */
json_t *sg_ruleset_describe(const struct sg_ruleset *rs);

/*
 * Run the rules over ev (consent already resolved). Returns 0; -1 when a
 * scrub could not complete (for example a PCRE2 limit): the event must then
 * not be sent and ev->skip_reason says why.
 */
int sg_ruleset_apply(const struct sg_ruleset *rs, struct sg_event *ev,
                     const struct sg_rule_env *env);

/* Free this thread's scratch buffer (call before a thread exits). */
void sg_rules_thread_release(void);

/*
 * Ids of the rules that changed ev, each once, as the text of a JSON array of
 * strings (owned: free()). Rules that only allowed a field are not listed.
 */
char *sg_event_changed_rules(const struct sg_event *ev);

#endif
