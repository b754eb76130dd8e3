/*
 * report.h - the audit report of `scrubgate check`: one model, five renderings.
 *
 * The model (a jansson object) is built once from a loaded configuration: the
 * generated time, the scrubgate version, the config path and, per site, the
 * rule set (path, name, version, SHA-256 of the file), every rule with its
 * condition and why, the consent policy, the effective event map, the
 * destinations, and the policy matrix. The matrix is not written by hand: it
 * is what the real pipeline does to a synthetic probe event under each
 * consent state. The model holds no secrets and no personal data (the probe's
 * values never appear, only what became of each field).
 *
 * Renderings: text (the human-readable output of `check`), json, md, html
 * (one self-contained file, every string escaped) and csv (RFC 4180, one row
 * per site, outbound field and consent state). docs/OPERATIONS.md documents
 * the formats.
 */
#ifndef SCRUBGATE_REPORT_H
#define SCRUBGATE_REPORT_H

#include "scrubgate/common.h"
#include "scrubgate/config.h"

#include <jansson.h>
#include <stdio.h>
#include <time.h>

enum sg_report_format {
    SG_REPORT_TEXT = 0,
    SG_REPORT_JSON,
    SG_REPORT_MD,
    SG_REPORT_HTML,
    SG_REPORT_CSV,
};

/* "text", "json", "md" (or "markdown"), "html", "csv"; -1 when unknown. */
int sg_report_format_from_name(const char *name);

/*
 * Build the report model of cfg (borrowed), loaded from config_path
 * (borrowed, printed as given), generated at `generated` (UTC). Returns a new
 * reference.
 */
json_t *sg_report_build(const struct sg_config *cfg, const char *config_path, time_t generated);

/* Render report (borrowed) as fmt onto out. 0, or -1 on a write error. */
int sg_report_render(const json_t *report, enum sg_report_format fmt, FILE *out);

/*
 * Render report to path atomically: a temporary file beside it, fsynced,
 * then renamed over path; a failure leaves path as it was. NULL path means
 * standard output. Logs and returns -1 on failure.
 */
int sg_report_write(const json_t *report, enum sg_report_format fmt, const char *path);

#endif
