/*
 * consent.h - every consent signal of one event -> one canonical state.
 *
 * Four purposes (Consent Mode names), each granted, denied or unset, plus
 * GPC, and for each purpose the signal that decided it. Resolution fails
 * closed: a purpose no signal decided takes the site default (denied unless
 * configured), and when signals conflict the most restrictive wins.
 */
#ifndef SCRUBGATE_CONSENT_H
#define SCRUBGATE_CONSENT_H

#include "scrubgate/common.h"

#include <jansson.h>

enum sg_consent_state { SG_CONSENT_UNSET = 0, SG_CONSENT_DENIED, SG_CONSENT_GRANTED };

enum sg_purpose {
    SG_PURPOSE_AD_STORAGE = 0,
    SG_PURPOSE_AD_USER_DATA,
    SG_PURPOSE_AD_PERSONALIZATION,
    SG_PURPOSE_ANALYTICS_STORAGE,
    SG_PURPOSE__COUNT
};

/* Which signal decided a purpose: recorded in receipts, never the raw signal. */
enum sg_consent_source {
    SG_CSRC_NONE = 0,
    SG_CSRC_EVENT,   /* the event's "consent" field */
    SG_CSRC_GPC,     /* Sec-GPC: 1 with honor_gpc */
    SG_CSRC_TCF,     /* IAB TC string (decoder: a later issue; see CONSENT.md) */
    SG_CSRC_DEFAULT, /* the site default */
};

struct sg_consent {
    unsigned char state[SG_PURPOSE__COUNT];  /* enum sg_consent_state */
    unsigned char source[SG_PURPOSE__COUNT]; /* enum sg_consent_source */
    bool gpc;                                /* Sec-GPC: 1 was seen and honoured */
};

struct sg_consent_policy {
    enum sg_consent_state default_state; /* SG_CONSENT_DENIED unless configured */
    bool honor_gpc;                      /* default true */
    long tcf_vendor_id;                  /* 0 when not configured */
};

struct sg_consent_signals {
    json_t *event_consent;  /* borrowed; the event's "consent" value or NULL */
    bool gpc_header;        /* Sec-GPC: 1 */
    const char *tcf_cookie; /* borrowed; euconsent-v2 cookie or NULL */
};

/*
 * Resolve signals under policy into out. Returns 0, or -1 with *reason (a
 * static string) when the event's consent field is malformed: the caller
 * rejects that event rather than guessing.
 */
int sg_consent_resolve(const struct sg_consent_policy *policy,
                       const struct sg_consent_signals *signals, struct sg_consent *out,
                       const char **reason);

const char *sg_purpose_name(enum sg_purpose p);
int sg_purpose_from_name(const char *name); /* -1 when unknown */
const char *sg_consent_state_name(enum sg_consent_state s);
int sg_consent_state_from_name(const char *name); /* -1 when unknown */
const char *sg_consent_source_name(enum sg_consent_source s);

#endif
