/*
 * config_internal.h — what the config module's files share.
 *
 * values.c reads one value (typed, ${VAR} expanded, with a message naming
 * the key path and line:col); schema.c knows which keys each section has
 * and fills dc_config from them; validate.c holds the rules that look at
 * more than one value; config.c is the public API.
 */
#ifndef DEPLOYCLAW_CONFIG_INTERNAL_H
#define DEPLOYCLAW_CONFIG_INTERNAL_H

#include <deployclaw/config.h>

#include "util/util.h"
#include "util/yaml_internal.h"

#define MAX_SCALAR      ((size_t)64 * 1024)
#define MAX_SHARDS      4096
#define MAX_REPLICAS    64
#define MAX_WAVES       100
#define MAX_PARALLEL    1024
#define MAX_FAILURES    1000000
#define MAX_COUNT       10000000
#define MAX_DURATION_MS 2147483647LL /* PostgreSQL's timeouts are int milliseconds */
#define MAX_VARNAME     128

#define N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct ctx {
	const char *file; /* for messages; may be NULL */
	const char *text;
	size_t len;
	dc_error *err;
} ctx;

/* values.c: errors ---------------------------------------------------------- */

/* DC_ECONFIG at file:line:col. */
int dc_config__fail_at(ctx *c, int line, int col, const char *fmt, ...) DC_PRINTF(4, 5);

/* DC_ECONFIG at the position of node `n`. */
#define fail(c, n, ...) dc_config__fail_at((c), (n)->line, (n)->col, __VA_ARGS__)

/*
 * Copies user text for a message: at most 64 bytes, control characters and
 * quotes replaced, so a message stays one line. Never used on a DSN.
 */
const char *dc_config__shown(char *out, size_t size, const char *s, size_t len);

/* values.c: one value each; `path` is the key path for messages ------------- */

/* A scalar, ${VAR} expanded. `*out` is heap, freed by the caller. */
int dc_config__get_str(ctx *c, const dc_yaml_node *n, const char *path, char **out);
/* As dc_config__get_str, and not empty (never echoes the value: it may be a DSN). */
int dc_config__get_nonempty(ctx *c, const dc_yaml_node *n, const char *path, char **out);
/* tenancy.run_as: 'owner', or a role name holding '{tenant}' once (and no
 * other brace), kept as written. */
int dc_config__get_run_as(ctx *c, const dc_yaml_node *n, char **out);
/* A PostgreSQL name (a column, a role): non-empty, at most 63 bytes. */
int dc_config__get_pg_name(ctx *c, const dc_yaml_node *n, const char *path, char **out);
int dc_config__get_int(ctx *c,
                       const dc_yaml_node *n,
                       const char *path,
                       int64_t min,
                       int64_t max,
                       int *out);
int dc_config__get_bool(ctx *c, const dc_yaml_node *n, const char *path, bool *out);
/* A consistency check's scope: true or changed, full, false. */
int dc_config__get_check_scope(ctx *c,
                               const dc_yaml_node *n,
                               const char *path,
                               dc_check_scope *out);
int dc_config__get_duration(ctx *c, const dc_yaml_node *n, const char *path, int64_t *out);
/* A count (min_count..MAX_COUNT) or a percentage (1%..100%). */
int dc_config__get_amount(ctx *c,
                          const dc_yaml_node *n,
                          const char *path,
                          int64_t min_count,
                          dc_amount *out);
/* One of `names`; its index in `*out`. */
int dc_config__get_enum(ctx *c,
                        const dc_yaml_node *n,
                        const char *path,
                        const char *const *names,
                        size_t nnames,
                        const char *expected,
                        int *out);
/* Empty values stand for "not given" where a mapping or sequence is expected. */
const dc_yaml_node *dc_config__present(const dc_yaml_node *n);
int dc_config__expect(ctx *c, const dc_yaml_node *n, const char *path, dc_yaml_kind kind);
/* Every key of mapping `m` a string, known, and given once (dc_yaml__check_keys). */
int dc_config__check_keys(ctx *c,
                          const dc_yaml_node *m,
                          const char *path,
                          const char *const *keys,
                          size_t nkeys);
int dc_config__get_str_list(ctx *c,
                            const dc_yaml_node *seq,
                            const char *path,
                            size_t max,
                            char ***out,
                            size_t *nout);

/* schema.c ------------------------------------------------------------------ */

/* The values a key left out stands for. DC_ENOMEM or 0. */
int dc_config__set_defaults(dc_config *cfg);
/* Fills cfg from the document's root, checking every key and value. */
int dc_config__load_root(ctx *c, dc_config *cfg, const dc_yaml_node *root);

/* validate.c ---------------------------------------------------------------- */

/* Duplicate tenant ids of tenancy.list (its node `seq`). */
int dc_config__check_tenant_list(ctx *c, const dc_config *cfg, const dc_yaml_node *seq);
int dc_config__check_across_keys(ctx *c, const dc_config *cfg, const dc_yaml_node *root);

#endif
