/*
 * config.h - the proxy configuration (docs/CONFIG.md), validated strictly.
 *
 * Unknown keys and wrong types are errors with file:line:column. Secrets come
 * from *_env or *_file keys only, are held in memory and wiped on free.
 */
#ifndef SCRUBGATE_CONFIG_H
#define SCRUBGATE_CONFIG_H

#include "scrubgate/common.h"
#include "scrubgate/consent.h"
#include "scrubgate/log.h"
#include "scrubgate/netaddr.h"

#include <jansson.h>

struct sg_ruleset;
struct sg_dest_ops;

/* Every limit has a default; all are overridable under "limits". */
struct sg_limits {
    size_t max_body_bytes;         /* 65536 */
    size_t max_header_bytes;       /* 8192 */
    size_t max_events_per_request; /* 100 */
    size_t max_field_bytes;        /* 4096: any one string in an event */
    int request_timeout_ms;        /* 10000: one whole request, from its first byte */
    int header_timeout_ms;         /* 5000: its headers, from its first byte (or the accept) */
    int keepalive_timeout_ms;      /* 30000: an idle keep-alive connection is closed */
    size_t queue_max_events;       /* 100000 per worker and destination */
    int flush_interval_ms;         /* 250 */
    size_t batch_max_events;       /* 1000 (TikTok's maximum) */
    int upstream_timeout_ms;       /* 10000 per TikTok request */
    size_t max_inflight;           /* 4 concurrent requests per worker and destination */
    size_t max_response_bytes;     /* 65536 read from TikTok per reply */
    int shutdown_timeout_ms;       /* 5000 to deliver queued events on SIGTERM */
    size_t max_connections;        /* 4096 open client connections, all workers together */
    uint64_t spool_segment_bytes;  /* 16 MiB per spool segment file */
    uint64_t spool_max_bytes;      /* 1 GiB on disk, all workers together; beyond it 503 */
    int retry_base_ms;             /* 1000: full-jitter exponential backoff base */
    int retry_cap_ms;              /* 60000: backoff cap */
    int retry_give_up_s;           /* 86400: after this long an event goes to the dead letter */
    int auth_probe_ms;             /* 30000: a paused destination is probed this often */
    uint32_t rate_per_ip;          /* 100 events/s per client IP (burst 2x), per worker; 0 off */
    uint32_t rate_per_site;        /* 0 (off): events/s per site (burst 2x), per worker */
};

struct sg_dest_conf {
    char *id; /* its "id", else "<type>:<pixel_code>"; for logs and the sync log */
    const struct sg_dest_ops *ops;
    char *pixel_code;
    char *access_token; /* secret; NULL for dry run */
    char *api_base;
    char *url;          /* api_base + the track path */
    char **events;      /* allowlist of outbound names, NULL = all */
    size_t n_events;
    char *test_event_code;
    bool dry_run;
};

struct sg_site {
    char *id;
    char **hosts;
    size_t n_hosts;
    char **origins;
    size_t n_origins;
    unsigned char *secret; /* HMAC key for IP and session hashes */
    size_t secret_len;
    bool secret_ephemeral; /* generated because the env var was missing (dry run only) */
    char *ingest_key;      /* secret; NULL when server ingest is off */
    char *ingest_key_env_unset; /* the ingest_key_env variable that was not set, or NULL */
    char *rules_path;
    struct sg_ruleset *rules;
    struct sg_consent_policy consent;
    json_t *event_map;     /* owned; compiled (eventmap.h): lower-case keys, arrays of names */
    json_t *event_map_src; /* owned; the map as written, for check */
    bool standard_events;  /* the built-in map applies after event_map (default true) */
    unsigned map_fanout;   /* most outbound events one input event can become (>= 1) */
    char *phone_region;    /* ISO 3166-1 alpha-2 ("US") libphonenumber knows, or NULL */
    char *cookie_domain;   /* Domain= of the proxy's cookies (no leading dot), or NULL */
    int click_id_days;     /* Max-Age of the sg_ttclid cookie, in days (default 28) */
    struct sg_dest_conf *dests;
    size_t n_dests;
};

/* The queue of accepted events (docs/SCALING.md): the local spool or a JetStream stream. */
enum sg_queue_type { SG_QUEUE_LOCAL = 0, SG_QUEUE_JETSTREAM };
struct sg_queue_conf {
    enum sg_queue_type type;
    char **servers;      /* jetstream: nats:// URLs (owned) */
    size_t n_servers;
    char *stream;        /* jetstream: the stream's name (default "SCRUBGATE") */
    int replicas;        /* jetstream: 1..5 (default 3) */
    char *creds_file;    /* jetstream: resolved path of a NATS credentials file, or NULL */
};

struct sg_config {
    char *path;
    char *listen;        /* "host:port" */
    char *admin_listen;  /* NULL when absent */
    char *admin_token;   /* secret */
    char *admin_token_env_unset; /* the admin_token_env variable that was not set, or NULL */
    char *state_dir;     /* absolute, or relative to the directory of the config file */
    struct sg_cidr *trusted;
    size_t n_trusted;
    struct sg_site *sites;
    size_t n_sites;
    struct sg_limits limits;
    int workers;         /* event loops; default: number of CPUs (at most 16) */
    struct sg_queue_conf queue; /* read once at start (a reload keeps the running one) */
    enum sg_log_format log_format; /* default text */
    enum sg_log_level log_level;   /* default info */
};

/*
 * Load and validate; logs "file:line:col: path: reason" and returns NULL on error.
 * Relative paths in the file (rules, *_file, state_dir) are resolved against the
 * directory of path; the resolved paths are what the struct holds.
 */
struct sg_config *sg_config_load(const char *path);
/* What serve does with a loaded configuration, at start and on each reload: apply its
 * log_format and log_level, and warn once per site that runs on a per-process key. */
void sg_config_announce(const struct sg_config *cfg);
void sg_config_free(struct sg_config *cfg);
void sg_limits_default(struct sg_limits *l);

/* The site with this id, else the one site with a destination of this pixel code (a page
 * that swapped TikTok's pixel for sg.js may still call ttq.load(pixel_code)). */
const struct sg_site *sg_config_site_by_id(const struct sg_config *cfg, const char *id);
const struct sg_site *sg_config_site_by_host(const struct sg_config *cfg, const char *host);
bool sg_config_is_trusted_proxy(const struct sg_config *cfg, const char *ip);
/* Origin (scheme://host[:port]) is one of the site's allowed_origins: an exact entry, or a
 * wildcard entry (host "*.domain" after the scheme) covering any subdomain of domain at any
 * depth (same scheme, default port, not domain itself). */
bool sg_site_origin_allowed(const struct sg_site *site, const char *origin);

/* host (a Host header: name[:port]) is domain or a subdomain of it, case-insensitively. */
bool sg_host_within(const char *host, const char *domain);

/* Split "host:port" / "[v6]:port" into parts. 0 or -1. */
int sg_split_hostport(const char *s, char *host, size_t hostcap, int *port);

#endif
