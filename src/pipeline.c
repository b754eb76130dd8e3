/*
 * pipeline.c - request context, and the normalize -> consent -> rules path.
 */
#include "scrubgate/common.h"
#include "scrubgate/buf.h"
#include "scrubgate/hash.h"
#include "scrubgate/http.h"
#include "scrubgate/netaddr.h"
#include "scrubgate/pipeline.h"
#include "scrubgate/rules.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * What a consent cookie reads as when the request carries it twice with
 * different values (a CMP writing one for the domain and one for a
 * subdomain): no decoder accepts it, so it denies (TC string: tcf:invalid;
 * US Privacy: an opt-out). Which copy the site meant cannot be known, and the
 * grant must not be the one that wins.
 */
static const char conflicting_values[] = "!";

/*
 * Split a copy of the Cookie header(s) in place into name=value pairs and
 * point the context at the values it reads. Empty values are absent. The
 * first occurrence of a name wins, except for the consent cookies, whose
 * differing copies conflict.
 */
static void parse_cookies(struct sg_request_ctx *ctx, const char **sid)
{
    const char *ttclid = NULL, *ttclid_alt = NULL, *sg_ttclid = NULL;
    for (char *p = ctx->cookies; p && *p;) {
        char *end = strchr(p, ';');
        if (end)
            *end = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            for (char *t = eq; t > p && (t[-1] == ' ' || t[-1] == '\t');) /* "name =" */
                *--t = '\0';
            char *v = eq + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t l = strlen(v);
            while (l > 0 && (v[l - 1] == ' ' || v[l - 1] == '\t'))
                v[--l] = '\0';
            if (l >= 2 && v[0] == '"' && v[l - 1] == '"') { /* RFC 6265 quoted value */
                v[l - 1] = '\0';
                v++;
            }
            const char **slot = !strcmp(p, SG_CLICK_COOKIE)  ? &sg_ttclid
                                : !strcmp(p, "ttclid")       ? &ttclid
                                : !strcmp(p, "_ttclid")      ? &ttclid_alt
                                : !strcmp(p, "_ttp")         ? &ctx->cookie_ttp
                                : !strcmp(p, "euconsent-v2") ? &ctx->cookie_tcf
                                : !strcmp(p, "usprivacy")    ? &ctx->cookie_usp
                                : !strcmp(p, SG_SESSION_COOKIE) ? sid
                                                                : NULL;
            bool consent = slot == &ctx->cookie_tcf || slot == &ctx->cookie_usp;
            if (slot && *v && !*slot)
                *slot = v;
            else if (slot && *v && consent && strcmp(*slot, v) != 0)
                *slot = conflicting_values;
        }
        p = end ? end + 1 : NULL;
    }
    /* The proxy's own cookie first: it holds the click id of a consented landing. */
    ctx->has_click_cookie = sg_ttclid != NULL;
    ctx->cookie_ttclid = sg_ttclid ? sg_ttclid : ttclid ? ttclid : ttclid_alt;
}

/* Sec-GPC: "1"; a list ("1, 1", "0, 1") counts when any element is "1". */
static bool gpc_value(const char *v)
{
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t t = n;
        while (t > 0 && (v[t - 1] == ' ' || v[t - 1] == '\t'))
            t--;
        if (t == 1 && v[0] == '1')
            return true;
        v += n;
    }
    return false;
}

static bool valid_session_id(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 32;
}

/* The client behind trusted proxies: walk X-Forwarded-For from the right. */
static void client_ip(struct sg_request_ctx *ctx, const struct sg_config *cfg, const char *peer,
                      const char *xff)
{
    char canon[INET6_ADDRSTRLEN];
    if (sg_addr_canonical(peer, canon, sizeof(canon)) < 0) {
        ctx->ip[0] = '\0';
        return;
    }
    memcpy(ctx->ip, canon, sizeof(canon));
    if (!xff || !sg_config_is_trusted_proxy(cfg, canon))
        return;
    char buf[1024];
    size_t n = strlen(xff);
    if (n >= sizeof(buf))
        return; /* an absurd header is ignored: the peer address stands */
    memcpy(buf, xff, n + 1);
    while (n > 0) {
        char *comma = NULL;
        for (size_t i = n; i-- > 0;)
            if (buf[i] == ',') {
                comma = buf + i;
                break;
            }
        char *hop = comma ? comma + 1 : buf;
        while (*hop == ' ' || *hop == '\t')
            hop++;
        char *e = hop + strlen(hop);
        while (e > hop && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (sg_addr_canonical(hop, canon, sizeof(canon)) < 0)
            return; /* garbage in the chain: stop at the last address we could trust */
        memcpy(ctx->ip, canon, sizeof(canon));
        if (!sg_config_is_trusted_proxy(cfg, canon))
            return;
        if (!comma)
            return;
        *comma = '\0';
        n = (size_t)(comma - buf);
    }
}

int sg_request_ctx_init(struct sg_request_ctx *ctx, const struct sg_config *cfg,
                        const char *peer_ip, const struct sg_http_fields *headers)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->now = sg_now_unix();
    ctx->headers = headers;
    client_ip(ctx, cfg, peer_ip ? peer_ip : "", sg_http_fields_get(headers, "X-Forwarded-For"));
    ctx->user_agent = sg_http_fields_get(headers, "User-Agent");
    /* Every Sec-GPC header and every Cookie header counts, not the first only: a refusal
     * must not hide behind an earlier copy. */
    struct sg_buf cookies;
    sg_buf_init(&cookies, 0);
    for (size_t i = 0; i < headers->n; i++) {
        const struct sg_http_field *h = &headers->v[i];
        if (!strcasecmp(h->name, "Sec-GPC"))
            ctx->gpc |= gpc_value(h->value);
        else if (!strcasecmp(h->name, "Cookie")) {
            if (cookies.len)
                sg_buf_adds(&cookies, "; ");
            sg_buf_adds(&cookies, h->value);
        }
    }
    const char *sid = NULL;
    if (cookies.len) {
        ctx->cookies = sg_buf_detach(&cookies, NULL);
        parse_cookies(ctx, &sid);
    }
    sg_buf_release(&cookies);
    if (sid && valid_session_id(sid)) {
        memcpy(ctx->session_id, sid, 33);
    } else {
        if (sg_random_hex(ctx->session_id, 16) < 0)
            return -1;
        ctx->new_session = true;
    }
    return 0;
}

void sg_request_ctx_release(struct sg_request_ctx *ctx)
{
    free(ctx->cookies);
    memset(ctx, 0, sizeof(*ctx));
}

int sg_request_authenticate(const struct sg_site *site, const struct sg_http_fields *headers)
{
    const char *auth = sg_http_fields_get(headers, "Authorization");
    if (!auth)
        return 0;
    if (!site->ingest_key || !sg_strncaseeq(auth, "Bearer ", 7))
        return -1;
    return sg_consttime_streq(auth + 7, site->ingest_key) ? 1 : -1;
}

enum sg_pipe_result sg_pipeline_run(const struct sg_site *site, const struct sg_limits *limits,
                                    json_t *in, const struct sg_request_ctx *ctx,
                                    struct sg_event *ev, char *err, size_t errlen)
{
    const char *reason = NULL;
    if (sg_event_from_json(ev, in, ctx, site->phone_region, limits, err, errlen) < 0)
        return SG_PIPE_INVALID;
    struct sg_consent_signals sig = {ev->consent_field, ctx->gpc, json_object_get(in, "gpc"),
                                     ctx->cookie_tcf, ctx->cookie_usp};
    if (sg_consent_resolve(&site->consent, &sig, &ev->consent, &reason) < 0) {
        snprintf(err, errlen, "%s", reason);
        return SG_PIPE_INVALID;
    }
    struct sg_rule_env env = {site->secret, site->secret_len, site->event_map,
                              site->standard_events, site->phone_region};
    int applied = sg_ruleset_apply(site->rules, ev, &env);
    /* Any input name was accepted for mapping; what leaves (and what the sync log records,
     * even for a skipped event) must be a name TikTok takes. Map targets were checked at
     * load, so this refuses an unmapped name only; the reason never quotes it. */
    if (!sg_event_name_charset_ok(ev->name)) {
        snprintf(err, errlen, "%s: not mapped to a TikTok event, and a custom name has only "
                              "letters, digits, space and _ . : - (add it to the site's "
                              "event_map)", "event");
        return SG_PIPE_INVALID;
    }
    if (applied < 0)
        return SG_PIPE_SKIP;
    return ev->dropped ? SG_PIPE_SKIP : SG_PIPE_OK;
}

bool sg_dest_allows_event(const struct sg_dest_conf *d, const char *name)
{
    if (!d->events)
        return true;
    for (size_t i = 0; i < d->n_events; i++)
        if (strcmp(d->events[i], name) == 0)
            return true;
    return false;
}

json_t *sg_receipt_json(const struct sg_event *ev)
{
    json_t *o = json_object(), *consent = json_object(), *rules = json_array();
    for (int p = 0; p < SG_PURPOSE__COUNT; p++)
        json_object_set_new(
            consent, sg_purpose_name((enum sg_purpose)p),
            json_pack("{s:s,s:s,s:s}", "state",
                      sg_consent_state_name((enum sg_consent_state)ev->consent.state[p]), "source",
                      sg_consent_source_name((enum sg_consent_source)ev->consent.source[p]),
                      "evidence",
                      sg_consent_evidence_name((enum sg_consent_evidence)ev->consent.evidence[p])));
    json_object_set_new(consent, "gpc", json_boolean(ev->consent.gpc));
    json_object_set_new(consent, "sale_opt_out", json_boolean(ev->consent.sale_opt_out));
    json_object_set_new(consent, "tcf",
                        json_string(sg_tcf_outcome_name((enum sg_tcf_outcome)ev->consent.tcf)));
    json_object_set_new(o, "consent", consent);
    for (size_t i = 0; i < ev->n_receipt; i++) {
        const struct sg_receipt_entry *e = &ev->receipt[i];
        json_t *r = json_pack("{s:s,s:s,s:s}", "rule", e->rule_id, "field",
                              sg_field_name((enum sg_field)e->field), "action",
                              sg_receipt_action_name((enum sg_receipt_action)e->action));
        if (e->action == SG_RA_MAP_EVENT) {
            json_object_set_new(r, "map", json_string(sg_map_source_name(e->count)));
            json_t *to = json_array();
            json_array_append_new(to, json_string(ev->name));
            for (unsigned k = 0; k < ev->n_also; k++)
                json_array_append_new(to, json_string(ev->also[k]));
            json_object_set_new(r, "to", to);
        } else if (e->action == SG_RA_REDACT)
            json_object_set_new(r, "count", json_integer(e->count));
        else if (e->action == SG_RA_TRUNCATE_IP)
            json_object_set_new(r, "prefix", json_integer(e->count));
        else if (e->action == SG_RA_REQUIRE)
            json_object_set_new(r, "found", json_integer(e->count));
        json_array_append_new(rules, r);
    }
    json_object_set_new(o, "rules", rules);
    if (ev->skip_reason)
        json_object_set_new(o, "skipped", json_string(ev->skip_reason));
    return o;
}
