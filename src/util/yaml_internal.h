/*
 * yaml_internal.h — the one way deployclaw reads YAML (deployclaw.yaml and
 * native migrations), on top of libfyaml.
 *
 * A document becomes a small tree in which every node carries its 1-based
 * line and column, and every scalar the byte span of its source text, so
 * that any error can name file:line:col, and a scalar's content can be
 * mapped back to the file byte by byte (SQL statements in a migration).
 * Aliases stay alias nodes (never expanded: a tiny file must not grow into
 * a huge one); a second document and nesting deeper than DC_YAML_MAX_DEPTH
 * are refused. Unknown, duplicate and non-string keys are found by one
 * function, and the "did you mean" for an unknown key comes from one place.
 */
#ifndef DEPLOYCLAW_YAML_INTERNAL_H
#define DEPLOYCLAW_YAML_INTERNAL_H

#include "util/util.h"

#define DC_YAML_MAX_DEPTH 32

typedef enum dc_yaml_kind {
	DC_YAML_SCALAR,
	DC_YAML_SEQ,
	DC_YAML_MAP,
	DC_YAML_ALIAS
} dc_yaml_kind;

typedef enum dc_yaml_style {
	DC_YAML_PLAIN,
	DC_YAML_SINGLE_QUOTED,
	DC_YAML_DOUBLE_QUOTED,
	DC_YAML_LITERAL, /* | */
	DC_YAML_FOLDED   /* > */
} dc_yaml_style;

/* A node of the parsed YAML. A mapping's kids alternate key, value. */
typedef struct dc_yaml_node {
	dc_yaml_kind kind;
	dc_yaml_style style; /* scalars only */
	/*
	 * 1-based; a quoted scalar at its opening quote, an alias at its '*',
	 * an empty value at its key (or its parent when it has no key).
	 */
	int line;
	int col;
	/*
	 * Scalars: the bytes [pos, end) of the source that hold it (pos at the
	 * opening quote of a quoted scalar, end at its closing quote; a block
	 * scalar from the line after its indicator). Valid when has_span.
	 */
	size_t pos;
	size_t end;
	bool has_span;
	bool null;  /* a plain empty, ~ or null scalar */
	char *text; /* scalars: the value, NUL-terminated, but may hold a NUL: see len */
	size_t len;
	struct dc_yaml_node **kids;
	size_t nkids;
	size_t alloc;
} dc_yaml_node;

/* Why a text is not a YAML document we read. */
typedef struct dc_yaml_problem {
	int line; /* 1-based */
	int col;
	bool syntax; /* libfyaml's syntax error (msg is its text), else one of our limits */
	char msg[200];
} dc_yaml_problem;

/*
 * Parses text[0, len) into `*root` (NULL for an empty document); free it
 * with dc_yaml__free. DC_EPARSE with `*why` filled, or DC_ENOMEM. Never
 * prints: libfyaml's diagnostics are collected.
 */
int dc_yaml__parse(dc_yaml_node **root, const char *text, size_t len, dc_yaml_problem *why);

/* Frees a tree; scalar texts are wiped first (a config holds passwords). */
void dc_yaml__free(dc_yaml_node *n);

/* "a mapping", "a sequence", "an alias", "an empty value", "a scalar". */
const char *dc_yaml__kind_name(const dc_yaml_node *n);

/* Whether `n` is a scalar whose text is exactly `s`. */
bool dc_yaml__is(const dc_yaml_node *n, const char *s);

/* The value of `key` in mapping `m` (checked by dc_yaml__check_keys), or NULL. */
const dc_yaml_node *dc_yaml__get(const dc_yaml_node *m, const char *key);

typedef enum dc_yaml_key_check {
	DC_YAML_KEYS_OK,
	DC_YAML_KEY_NOT_STRING, /* a mapping, sequence, alias or empty key */
	DC_YAML_KEY_DUPLICATE,
	DC_YAML_KEY_UNKNOWN
} dc_yaml_key_check;

/*
 * Checks that every key of mapping `m` is a string, given once, and one of
 * `known`. On the first key that is not, returns what is wrong with it and
 * points `*bad` at it (and `*first` at the earlier key for a duplicate).
 * Stops at the first bad key, so the quadratic duplicate scan sees at most
 * `nknown` + 1 keys.
 */
dc_yaml_key_check dc_yaml__check_keys(const dc_yaml_node *m,
                                      const char *const *known,
                                      size_t nknown,
                                      const dc_yaml_node **bad,
                                      const dc_yaml_node **first);

/*
 * The known key that unknown `key` most likely meant, for "did you mean":
 * NULL when none is close (or the key holds a NUL). Borrowed from `known`.
 */
const char *dc_yaml__suggest_key(const dc_yaml_node *key, const char *const *known, size_t nknown);

#endif
