/**
 * deployclaw/config.h — deployclaw.yaml, parsed with libfyaml.
 *
 * The schema is docs/config.md (and docs/design.md's "Files a user writes"). Every error names
 * file:line:col and the key path ("shards[1].replicas[0]") in dc_error:
 * err->file/line/col hold the position, err->message starts with the key
 * path, e.g. "shards[1].paralel: unknown key (did you mean 'parallel'?)".
 * Passwords in DSNs never reach an error message or any output.
 */
#ifndef DEPLOYCLAW_CONFIG_H
#define DEPLOYCLAW_CONFIG_H

#include <deployclaw/common.h>
#include <deployclaw/strbuf.h>

/** Largest deployclaw.yaml accepted (1 MiB); larger input is DC_ECONFIG. */
#define DC_CONFIG_MAX_BYTES (1024 * 1024)

typedef enum dc_engine_kind {
	DC_ENGINE_SQLITE = 0,
	DC_ENGINE_POSTGRES = 1
} dc_engine_kind;

typedef enum dc_tenancy_model {
	DC_TENANCY_DATABASE = 0,
	DC_TENANCY_SCHEMA = 1,
	DC_TENANCY_ROW = 2
} dc_tenancy_model;

/** A count ("3") or a percentage ("10%"). */
typedef struct dc_amount {
	int64_t value; /**< the count, or the percentage 0..100 */
	bool percent;
} dc_amount;

/** Resolves an amount against a total: percentages round up, at least 1 when total > 0 and
 * value > 0; never more than total. */
DC_API size_t dc_amount_of(dc_amount a, size_t total);

typedef struct dc_shard_config {
	char *name;
	char *primary; /**< libpq conninfo or URI, after ${VAR} expansion */
	char **replicas;
	size_t nreplicas;
	int parallel; /**< per-shard worker budget; 0 = rollout.parallel */
	int line;     /**< position of the shard's mapping in the file */
	int col;
} dc_shard_config;

/**
 * What a per-tenant consistency check (gates.integrity_check,
 * gates.foreign_key_check) covers: nothing, what the tenant's migration
 * wrote (`true` or `changed`: the tables it wrote, their indexes, and for
 * foreign keys the tables that reference them), or the whole database.
 */
typedef enum dc_check_scope {
	DC_CHECK_OFF = 0,
	DC_CHECK_CHANGED = 1,
	DC_CHECK_FULL = 2
} dc_check_scope;

/** The placeholder of tenancy.run_as's role pattern ("{tenant}_owner"). */
#define DC_RUN_AS_TENANT "{tenant}"

typedef struct dc_config {
	char *path; /**< the file as given */
	char *dir;  /**< folder of the file; relative paths below resolve against it */

	dc_engine_kind engine;
	char *migrations; /**< resolved path of the migrations folder */

	struct {
		dc_tenancy_model model;
		char *glob;    /**< sqlite: glob of tenant files (resolved path) */
		char *pattern; /**< postgres: LIKE pattern of schema/database names */
		char *query;   /**< postgres: SQL returning tenant names */
		char **list; /**< explicit tenants: sqlite file paths (relative to the config), or postgres names */
		size_t nlist;
		/** postgres, schema tenancy: schemas every tenant of a shard shares (extensions,
		 * helpers, lookup tables), on each tenant's search_path after its own schema;
		 * tenant migrations may read them, shard migrations change them */
		char **shared_schemas;
		size_t nshared_schemas;
		/** postgres, schema model: the role each tenant transaction runs as
		 * (SET LOCAL ROLE): "owner" (the schema's owner) or a name in which
		 * DC_RUN_AS_TENANT stands for the tenant id; NULL: off */
		char *run_as;
		/** row tenancy: the tenant column (e.g. tenant_id); set, it turns on the RLS gates
		 * (`rls`, `rls_after`). NULL: none */
		char *column;
		/** row tenancy: the application's role, which row-level security must hold back
		 * (set together with `column`). NULL: none */
		char *app_role;
	} tenancy;

	dc_shard_config *shards;
	size_t nshards;

	struct {
		int64_t lock_timeout_ms;          /**< default 2s */
		int64_t statement_timeout_ms;     /**< default 5m */
		bool require_down;                /**< default true */
		int64_t lag_max_ms;               /**< replication_lag.max, default 500ms */
		int64_t lag_timeout_ms;           /**< replication_lag.timeout, default 10m */
		dc_check_scope integrity_check;   /**< per tenant, default changed */
		dc_check_scope foreign_key_check; /**< per tenant, default changed */
		bool allow_out_of_order; /**< apply versions older than applied ones, default false */
		/** isolation.dynamic_sql: allow: let DO blocks past the isolation gate (default
		 * false: refused, dynamic SQL cannot be checked statically) */
		bool isolation_allow_dynamic_sql;
	} gates;

	struct {
		dc_amount canary; /**< default 1 */
		dc_amount *waves; /**< default [100%] */
		size_t nwaves;
		int max_failures; /**< per wave, default 0 */
		int parallel;     /**< default: number of online CPUs */
		int retries;      /**< per tenant, for lock timeouts, deadlocks, serialization
				       failures, lost connections; default 3 */
		bool backup; /**< online copy of each tenant before touching it, default false */
	} rollout;

	/**
	 * lint: { rules: { <rule id or name>: off|info|warning|error } }. Rule
	 * names are checked by the linter (the config module does not know the
	 * rule list); each entry keeps its position for that message.
	 */
	struct {
		struct dc_lint_rule_setting {
			char *rule;
			int severity; /**< 0 off, 1 info, 2 warning, 3 error (dc_severity) */
			int line, col;
		} * rules;

		size_t nrules;
	} lint;

	struct {
		char *ledger; /**< resolved path, default audit/ledger.jsonl */
		char *key;    /**< resolved path of the private key, default audit/signing.key */
	} audit;
} dc_config;

/**
 * Loads and validates `path`. On success `*out` is a new config the caller
 * frees with dc_config_free. A missing file is DC_ENOTFOUND; anything
 * invalid is DC_ECONFIG with position and key path in `err`.
 */
DC_API int dc_config_load(dc_config **out, const char *path, dc_error *err);

/**
 * As dc_config_load, from `len` bytes of YAML; `path` names the file in
 * messages and anchors relative paths.
 */
DC_API int dc_config_parse(dc_config **out,
                           const char *path,
                           const char *text,
                           size_t len,
                           dc_error *err);

/** Frees `cfg`; NULL is a no-op. */
DC_API void dc_config_free(dc_config *cfg);

/**
 * Appends the resolved config as YAML to `out` (all defaults filled in,
 * paths resolved), with every password in a DSN replaced by "********".
 */
DC_API int dc_config_dump(const dc_config *cfg, dc_strbuf *out);

/** The same document as dc_config_dump, as JSON (one object, newline-terminated). */
DC_API int dc_config_dump_json(const dc_config *cfg, dc_strbuf *out);

/**
 * A copy of a libpq conninfo ("host=x password=secret") or URI
 * ("postgres://u:secret@h/db?password=x") with the password replaced by
 * "********". Heap; NULL on OOM.
 */
DC_API char *dc_dsn_redact(const char *dsn);

/** The fixed template `deployclaw init` writes: commented YAML. Static storage. */
DC_API const char *dc_config_template(void);

#endif
