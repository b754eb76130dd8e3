/*
 * jsonparse.h - the ingest body's JSON, parsed in one pass.
 *
 * jansson's own parser reads a byte at a time through a stream with a
 * UTF-8 check and a growing token buffer per byte: about 150 instructions
 * a byte, the largest single cost of an event. This one reads the text in
 * place and builds the same jansson values (in the request's region, like
 * jansson's). It takes only what it is sure of; anything else (an error, a
 * duplicate key, a number strtoll or strtod would refuse, deep nesting) it
 * leaves to json_loadb(), which then decides and gives its error. So the
 * result, and every error message, is exactly json_loadb()'s with
 * JSON_REJECT_DUPLICATES: tests/fuzz/fuzz_jsonparse.c checks the two
 * against each other, value by value, down to the bits of each real and the
 * order of each object's keys.
 */
#ifndef SCRUBGATE_JSONPARSE_H
#define SCRUBGATE_JSONPARSE_H

#include "scrubgate/common.h"

#include <jansson.h>

/* The document (owned), or NULL when this parser leaves it to json_loadb(). */
json_t *sg_json_parse_fast(const char *text, size_t len);

/* json_loadb(text, len, JSON_REJECT_DUPLICATES, err), the fast way when it can be. */
json_t *sg_json_load(const char *text, size_t len, json_error_t *err);

/*
 * a and b are the same document down to the bits: same types (1 is not 1.0),
 * reals bit for bit (0.0 is not -0.0), strings byte for byte, objects with
 * the same keys in the same order. For the tests that hold the two parsers
 * to each other.
 */
bool sg_json_identical(const json_t *a, const json_t *b);

#endif
