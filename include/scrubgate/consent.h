/*
 * consent.h - every consent signal of one event -> one canonical state.
 *
 * Four purposes (Consent Mode names), each granted, denied or unset, plus
 * GPC, and for each purpose the signal that decided it. Resolution fails
 * closed: a purpose no signal decided takes the site default (denied unless
 * configured), when signals conflict the most restrictive wins, and a TC
 * string that is present but malformed or unusable denies what it maps.
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
    SG_CSRC_EVENT,   /* the event's "consent" field (string or Consent Mode object) */
    SG_CSRC_GPC,     /* Sec-GPC: 1 with honor_gpc */
    SG_CSRC_TCF,     /* IAB TC string */
    SG_CSRC_GCS,     /* Google Consent Mode gcs value */
    SG_CSRC_USP,     /* IAB US Privacy string */
    SG_CSRC_DEFAULT, /* the site default */
};

/* Why a signal decided as it did: short fixed tokens for receipts and the sync log. */
enum sg_consent_evidence {
    SG_CEV_NONE = 0,
    SG_CEV_EVENT_GRANTED,
    SG_CEV_EVENT_DENIED,
    SG_CEV_GPC,
    SG_CEV_TCF_GRANTED,
    SG_CEV_TCF_NO_PURPOSE_CONSENT,
    SG_CEV_TCF_NO_VENDOR_CONSENT,
    SG_CEV_TCF_RESTRICTED,
    SG_CEV_GCS_GRANTED,
    SG_CEV_GCS_DENIED,
    SG_CEV_USP_OPT_OUT,
    SG_CEV_DEFAULT_GRANTED,
    SG_CEV_DEFAULT_DENIED,
    /* Appended, never inserted: spooled events store these numbers. */
    SG_CEV_TCF_INVALID,  /* a TC string was present but malformed: mapped purposes denied */
    SG_CEV_TCF_UNUSABLE, /* present, valid, but unusable (policy version < 4, not
                          * service-specific, or no vendor id configured): mapped purposes denied */
    SG_CEV_GCS_INVALID,  /* a malformed gcs value: ad_storage and analytics_storage denied */
    SG_CEV_USP_INVALID,  /* a malformed US Privacy string: read as an opt-out */
};

/*
 * What became of the TC strings sent (the event's and the euconsent-v2
 * cookie's; with two, the worse outcome: malformed, then unusable, then
 * no_vendor_configured, then applied). A string present that cannot be
 * applied denies every purpose the site's TCF mapping covers.
 */
enum sg_tcf_outcome {
    SG_TCF_ABSENT = 0,
    SG_TCF_APPLIED,          /* decoded and used */
    SG_TCF_MALFORMED,        /* mapped purposes denied (tcf:invalid) */
    SG_TCF_UNUSABLE,         /* valid but too old or not service-specific: denied (tcf:unusable) */
    SG_TCF_NO_VENDOR,        /* the site configured no vendor id: denied (tcf:unusable) */
};

struct sg_consent {
    unsigned char state[SG_PURPOSE__COUNT];    /* enum sg_consent_state */
    unsigned char source[SG_PURPOSE__COUNT];   /* enum sg_consent_source */
    unsigned char evidence[SG_PURPOSE__COUNT]; /* enum sg_consent_evidence */
    unsigned char tcf;                         /* enum sg_tcf_outcome */
    bool gpc;                                  /* Sec-GPC: 1 was seen and honoured */
    bool sale_opt_out;                         /* GPC or a US Privacy opt-out of sale */
};

struct sg_consent_policy {
    enum sg_consent_state default_state; /* SG_CONSENT_DENIED unless configured */
    bool honor_gpc;                      /* default true */
    long tcf_vendor_id;                  /* 0 when not configured */
    /* TCF purposes (bit p-1 for purpose p) that must all have consent for each canonical
     * purpose; 0 means TCF does not decide that purpose. */
    uint32_t tcf_purposes[SG_PURPOSE__COUNT];
};

/* The documented default mapping (CONSENT.md); used unless consent.tcf.purposes is set. */
void sg_consent_policy_default_tcf(struct sg_consent_policy *p);

struct sg_consent_signals {
    json_t *event_consent;  /* borrowed; the event's "consent" value or NULL */
    bool gpc_header;        /* Sec-GPC: 1 */
    json_t *event_gpc;      /* borrowed; the event's "gpc" value or NULL (true restricts) */
    const char *tcf_cookie; /* borrowed; euconsent-v2 cookie or NULL */
    const char *usp_cookie; /* borrowed; usprivacy cookie or NULL */
};

/*
 * Resolve signals under policy into out: every signal present is evaluated,
 * and a purpose is granted only when none of them denies it; a purpose no
 * signal decided takes the site default. Returns 0, or -1 with *reason (a
 * static string) when the event's consent or gpc field is malformed: the
 * caller rejects that event rather than guessing.
 */
int sg_consent_resolve(const struct sg_consent_policy *policy,
                       const struct sg_consent_signals *signals, struct sg_consent *out,
                       const char **reason);

const char *sg_purpose_name(enum sg_purpose p);
int sg_purpose_from_name(const char *name); /* -1 when unknown */
const char *sg_consent_state_name(enum sg_consent_state s);
int sg_consent_state_from_name(const char *name); /* -1 when unknown */
const char *sg_consent_source_name(enum sg_consent_source s);
const char *sg_consent_evidence_name(enum sg_consent_evidence e);
const char *sg_tcf_outcome_name(enum sg_tcf_outcome o);
/* The per-purpose evidence and TCF outcome as a JSON object (new reference). */
json_t *sg_consent_evidence_json(const struct sg_consent *c);

#endif
