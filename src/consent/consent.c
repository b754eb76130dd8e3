/*
 * consent.c - resolve the event's consent field, GPC and the site default
 * into one canonical state. The TCF decoder is a later issue: until then a
 * TC string decides nothing, so its purposes fall to the site default (fail
 * closed); docs/CONSENT.md says so.
 */
#include "scrubgate/common.h"
#include "scrubgate/consent.h"

#include <string.h>

static const char *const purpose_names[SG_PURPOSE__COUNT] = {
    "ad_storage", "ad_user_data", "ad_personalization", "analytics_storage"};

const char *sg_purpose_name(enum sg_purpose p)
{
    return (unsigned)p < SG_PURPOSE__COUNT ? purpose_names[p] : "?";
}

int sg_purpose_from_name(const char *name)
{
    for (int i = 0; i < SG_PURPOSE__COUNT; i++)
        if (strcmp(purpose_names[i], name) == 0)
            return i;
    return -1;
}

const char *sg_consent_state_name(enum sg_consent_state s)
{
    switch (s) {
    case SG_CONSENT_GRANTED:
        return "granted";
    case SG_CONSENT_DENIED:
        return "denied";
    default:
        return "unset";
    }
}

int sg_consent_state_from_name(const char *name)
{
    if (strcmp(name, "granted") == 0)
        return SG_CONSENT_GRANTED;
    if (strcmp(name, "denied") == 0)
        return SG_CONSENT_DENIED;
    return -1;
}

const char *sg_consent_source_name(enum sg_consent_source s)
{
    switch (s) {
    case SG_CSRC_EVENT:
        return "event";
    case SG_CSRC_GPC:
        return "gpc";
    case SG_CSRC_TCF:
        return "tcf";
    case SG_CSRC_DEFAULT:
        return "default";
    default:
        return "none";
    }
}

/* Most restrictive wins: a denial from any signal overrides a grant. */
static void decide(struct sg_consent *c, int p, enum sg_consent_state s, enum sg_consent_source src)
{
    if (c->state[p] == SG_CONSENT_DENIED)
        return;
    if (s == SG_CONSENT_DENIED || c->state[p] == SG_CONSENT_UNSET) {
        c->state[p] = (unsigned char)s;
        c->source[p] = (unsigned char)src;
    }
}

static int from_event(struct sg_consent *c, json_t *v, const char **reason)
{
    if (json_is_string(v)) {
        int s = sg_consent_state_from_name(json_string_value(v));
        if (s < 0) {
            *reason = "consent: must be \"granted\", \"denied\" or an object";
            return -1;
        }
        for (int p = 0; p < SG_PURPOSE__COUNT; p++)
            decide(c, p, (enum sg_consent_state)s, SG_CSRC_EVENT);
        return 0;
    }
    if (!json_is_object(v)) {
        *reason = "consent: must be \"granted\", \"denied\" or an object";
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (strcmp(key, "tcf") == 0) {
            if (!json_is_string(val)) {
                *reason = "consent.tcf: must be a string";
                return -1;
            }
            continue; /* decoded in a later issue; decides nothing yet */
        }
        int p = sg_purpose_from_name(key);
        if (p < 0) {
            *reason = "consent: unknown purpose (ad_storage, ad_user_data, "
                      "ad_personalization, analytics_storage, tcf)";
            return -1;
        }
        int s = json_is_string(val) ? sg_consent_state_from_name(json_string_value(val)) : -1;
        if (s < 0) {
            *reason = "consent: purpose values must be \"granted\" or \"denied\"";
            return -1;
        }
        decide(c, p, (enum sg_consent_state)s, SG_CSRC_EVENT);
    }
    return 0;
}

int sg_consent_resolve(const struct sg_consent_policy *policy,
                       const struct sg_consent_signals *signals, struct sg_consent *out,
                       const char **reason)
{
    memset(out, 0, sizeof(*out));
    if (signals->event_consent && !json_is_null(signals->event_consent) &&
        from_event(out, signals->event_consent, reason) < 0)
        return -1;
    if (signals->gpc_header && policy->honor_gpc) {
        out->gpc = true;
        /* GPC is an opt-out of sale/sharing: every ad purpose is denied. */
        decide(out, SG_PURPOSE_AD_STORAGE, SG_CONSENT_DENIED, SG_CSRC_GPC);
        decide(out, SG_PURPOSE_AD_USER_DATA, SG_CONSENT_DENIED, SG_CSRC_GPC);
        decide(out, SG_PURPOSE_AD_PERSONALIZATION, SG_CONSENT_DENIED, SG_CSRC_GPC);
    }
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        if (out->state[p] == SG_CONSENT_UNSET) {
            out->state[p] = (unsigned char)(policy->default_state == SG_CONSENT_GRANTED
                                                ? SG_CONSENT_GRANTED
                                                : SG_CONSENT_DENIED);
            out->source[p] = SG_CSRC_DEFAULT;
        }
    return 0;
}
