/*
 * event.h - the canonical event: one ingested event, normalized, in memory.
 *
 * It holds raw personal data for the duration of one request only: it is
 * never written anywhere. Rules transform it; a destination formats what the
 * rules allowed. Fields are a fixed table so that rules address them by
 * index (no string lookups per event).
 */
#ifndef SCRUBGATE_EVENT_H
#define SCRUBGATE_EVENT_H

#include "scrubgate/common.h"
#include "scrubgate/consent.h"
#include "scrubgate/eventmap.h"

#include <jansson.h>
#include <netinet/in.h>

struct sg_http_fields;

struct sg_site;
struct sg_limits;

enum sg_field {
    SG_F_USER_EMAIL = 0,
    SG_F_USER_PHONE,
    SG_F_USER_FIRST_NAME,
    SG_F_USER_LAST_NAME,
    SG_F_USER_ZIP_CODE,
    SG_F_USER_EXTERNAL_ID,
    SG_F_USER_IP,
    SG_F_USER_USER_AGENT,
    SG_F_USER_TTCLID,
    SG_F_USER_TTP,
    SG_F_USER_LOCALE,
    SG_F_PAGE_URL,
    SG_F_PAGE_REFERRER,
    SG_F_PROPERTIES,       /* value lives in sg_event.props */
    SG_F_LIMITED_DATA_USE, /* value lives in sg_event.ldu */
    SG_F__COUNT
};

const char *sg_field_name(enum sg_field f);
int sg_field_from_name(const char *name); /* -1 when unknown */

enum sg_receipt_action {
    SG_RA_DROP = 0,
    SG_RA_ALLOW,
    SG_RA_HASH_SHA256,
    SG_RA_HASH_HMAC,
    SG_RA_SET,
    SG_RA_REDACT,
    SG_RA_MAP_EVENT,
    SG_RA_DROP_EVENT,
    SG_RA_TRUNCATE_IP,
    SG_RA_REQUIRE, /* a require rule was not met: the event is skipped */
};
const char *sg_receipt_action_name(enum sg_receipt_action a);

/* One line of the decision receipt: which rule did what to which field. */
struct sg_receipt_entry {
    const char *rule_id;    /* borrowed from the rule set */
    unsigned char field;    /* enum sg_field, or SG_F__COUNT for the event itself */
    unsigned char action;   /* enum sg_receipt_action */
    unsigned short count;   /* redactions made, for SG_RA_REDACT */
};

#define SG_RECEIPT_MAX 48

/* Bytes of a click id (ttclid, ttp) kept at all; a longer one is dropped. */
#define SG_CLICK_ID_MAX 512

/* At most this many values for a multi-valued user field (sg_field_multi). */
#define SG_MULTI_MAX 5

/* What the request contributes to every event in it (ingest or explain). */
struct sg_request_ctx {
    char ip[INET6_ADDRSTRLEN];   /* canonical client IP, "" when unknown */
    const char *user_agent;      /* borrowed; NULL when absent */
    bool gpc;                    /* Sec-GPC: 1 */
    bool trusted_server;         /* authenticated with the site's ingest key */
    const char *cookie_ttclid;   /* borrowed; sg_ttclid, else ttclid, else _ttclid cookie */
    bool has_click_cookie;       /* the request carries the proxy's sg_ttclid cookie */
    const char *cookie_ttp;      /* borrowed; _ttp cookie */
    const char *cookie_tcf;      /* borrowed; euconsent-v2 cookie */
    const char *cookie_usp;      /* borrowed; usprivacy cookie */
    char session_id[33];         /* first-party session id (32 hex), never leaves */
    bool new_session;            /* the reply must set the session cookie */
    int64_t now;                 /* Unix seconds at request start */
    char *cookies;               /* owned: copy of the Cookie header the pointers above use */
    const struct sg_http_fields *headers;   /* borrowed: the request headers, for set-from-header rules */
    bool input_disposable;       /* the input events are read once (ingest): the pipeline may
                                  * take their properties instead of copying them */
};

struct sg_event {
    char *name;                  /* owned; the input name, after map_event the first outbound one */
    char *also[SG_EVENT_MAP_MAX_NAMES - 1]; /* owned; the further outbound names of a
                                              * one-to-many map, each sent with event id
                                              * "<event_id>:<name>" */
    unsigned n_also;
    bool mapped;                 /* a map_event rule renamed it: maps apply once */
    char *event_id;              /* owned */
    bool event_id_generated;
    int64_t event_time;          /* Unix seconds */
    char *val[SG_F__COUNT];      /* owned strings; NULL = absent */
    /* user.email, user.phone and user.external_id may hold up to SG_MULTI_MAX values
     * (TikTok accepts arrays): val[f] is the first, more[f][0..] the others, packed
     * (the first NULL ends them; val[f] NULL means none). Other fields keep more[f] empty. */
    char *more[SG_F__COUNT][SG_MULTI_MAX - 1];
    json_t *props;               /* owned; properties object or NULL */
    bool ldu;                    /* limited_data_use */
    bool ldu_requested;          /* the event asked for limited_data_use: no rule un-sets it */
    uint32_t allowed;            /* bit per enum sg_field: may leave */
    json_t *consent_field;       /* borrowed from the input: the event's consent value */
    struct sg_consent consent;
    const struct sg_request_ctx *ctx; /* borrowed */
    bool dropped;                /* a drop_event rule fired */
    const char *skip_reason;     /* static or rule id: why the event will not be sent */
    char *click_id;              /* owned: the click id the event or its page.url brought
                                  * (not a cookie's), for the sg_ttclid cookie; NULL if none */
    struct sg_receipt_entry receipt[SG_RECEIPT_MAX];
    size_t n_receipt;
};

#define SG_FIELD_BIT(f) (1u << (unsigned)(f))

void sg_event_init(struct sg_event *ev);
void sg_event_release(struct sg_event *ev);
/* Replace a field's value, and all of its values when it has several (takes
 * ownership of v; v may be NULL). */
void sg_event_set(struct sg_event *ev, enum sg_field f, char *v);
/* Fields that may hold several values: user.email, user.phone, user.external_id. */
bool sg_field_multi(enum sg_field f);
/* How many values f holds (0 when absent). */
size_t sg_event_count(const struct sg_event *ev, enum sg_field f);
/* The i-th value's slot (i < SG_MULTI_MAX; i > 0 only for a multi field). A caller
 * that empties a slot calls sg_event_pack afterwards. */
char **sg_event_slot(struct sg_event *ev, enum sg_field f, size_t i);
/* Close the gaps left by emptied slots, keeping the order of the values. */
void sg_event_pack(struct sg_event *ev, enum sg_field f);
void sg_event_receipt(struct sg_event *ev, const char *rule_id, int field,
                      enum sg_receipt_action a, unsigned count);

/*
 * A walk over ev's outbound events, one per mapped name (event_map arrays):
 *
 *     struct sg_outbound o;
 *     for (sg_event_outbound_begin(&o, &ev, 0); sg_event_outbound_next(&o);)
 *         ... ev.name and ev.event_id are this outbound event's ...
 *
 * The i-th event (first <= i <= ev->n_also) has the i-th name and, past the
 * first, the id "<event_id>:<name>". ev->name and ev->event_id are the
 * event's own again once next() returned false: walk to the end.
 */
struct sg_outbound {
    struct sg_event *ev;
    char *name0, *id0;
    unsigned next;
    char idbuf[SG_EVENT_NAME_MAX + 160];
};
void sg_event_outbound_begin(struct sg_outbound *o, struct sg_event *ev, unsigned first);
bool sg_event_outbound_next(struct sg_outbound *o);

/*
 * Validate one input event object and fill ev (ev must be initialized).
 * Only known fields are read; everything else in the input is ignored and so
 * can never leave. On a client error returns -1 with a one-line reason in err
 * that names the field, never its value. phone_region is the site's (or
 * NULL), for the personal-data checks of the event name and id.
 */
int sg_event_from_json(struct sg_event *ev, json_t *in, const struct sg_request_ctx *ctx,
                       const char *phone_region,
                       const struct sg_limits *limits, char *err, size_t errlen);

/* Parse an RFC 3339 timestamp into Unix seconds. 0 or -1. */
int sg_parse_rfc3339(const char *s, int64_t *out);

/* Value of query parameter name in url (percent-decoded, owned) or NULL. */
char *sg_url_query_param(const char *url, const char *name);

#endif
