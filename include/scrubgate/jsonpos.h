/*
 * jsonpos.h - strict JSON documents with positions for error messages.
 *
 * jansson reports line and column for syntax errors but keeps no positions
 * for values. A configuration or rule file error must still say where, so
 * struct sg_jsondoc keeps the text beside the tree, and sg_jsondoc_error()
 * finds a value by its path ("sites[0].consent.default") with a small
 * scanner over the text. This is load-time code; nothing here is on the
 * event path.
 */
#ifndef SCRUBGATE_JSONPOS_H
#define SCRUBGATE_JSONPOS_H

#include "scrubgate/common.h"

#include <jansson.h>

struct sg_jsondoc {
    char *file;   /* owned: the name used in messages */
    char *text;   /* owned */
    size_t len;
    json_t *root; /* owned */
};

/*
 * Load a file (or, with text != NULL, parse text under the name file).
 * On error logs "file:line:col: reason" and returns -1.
 */
int sg_jsondoc_load(struct sg_jsondoc *doc, const char *file, const char *text, size_t len);
void sg_jsondoc_release(struct sg_jsondoc *doc);

/*
 * Log "file:line:col: path: message" and return -1. The position is that of
 * the value at path (or of its key when at_key), or 1:1 when not found.
 */
int sg_jsondoc_error(const struct sg_jsondoc *doc, const char *path, bool at_key,
                     const char *fmt, ...) SG_PRINTF(4, 5);

/* Fail with the position of the first key of obj not in allowed (NULL-terminated). */
int sg_jsondoc_check_keys(const struct sg_jsondoc *doc, json_t *obj, const char *path,
                          const char *const *allowed);

/*
 * jansson's syntax error without the fragment of input it quotes ("invalid
 * token near 'jane@...'"): safe to show for untrusted bodies. Writes
 * "line L column C: reason" into out.
 */
void sg_json_syntax_error(const json_error_t *e, char *out, size_t cap);

/*
 * Locate path in text: 0 and the 1-based line/column of the value (and of its
 * key, when the last segment is a key), or -1 when the path is not there.
 */
int sg_jsonpos_find(const char *text, size_t len, const char *path, int *line, int *col,
                    bool at_key);

#endif
