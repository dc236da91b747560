#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <deployclaw/config.h>

/* ------------------------------------------------------------------------ */
/* Invalid configurations: each names its exact message and position.       */

typedef struct bad_case {
	const char *name;
	const char *yaml;
	int line;
	int col;
	const char *message; /* exact */
} bad_case;

#define SQLITE_OK_HEAD "tenancy:\n  glob: t/*.db\n"
#define PG_HEAD        "engine: postgres\ntenancy:\n  model: schema\n  pattern: \"tenant_%\"\n"
#define ROW_HEAD       "engine: postgres\ntenancy:\n  model: row\n"
#define PG_SHARD       "shards:\n  - { name: a, primary: \"host=a\" }\n"

static const bad_case bad_cases[] = {
	{ "syntax_unclosed_flow", SQLITE_OK_HEAD "rollout:\n  waves: [10%, 50%\n", 5, 1,
	  "syntax error: flow sequence without a closing bracket" },
	{ "syntax_unclosed_quote", "engine: 'sqlite\n", 1, 10,
	  "syntax error: single-quoted scalar without closing quote" },
	{ "syntax_tab_indent", "tenancy:\n\tglob: x\n", 2, 1,
	  "syntax error: tab character may not be used as indentation" },
	{ "syntax_bad_indent", "gates:\n  lock_timeout: 2s\n statement_timeout: 5m\n", 3, 2,
	  "syntax error: invalid indentation in mapping" },
	{ "empty_file", "", 1, 1,
	  "the file is empty (expected a mapping with 'engine', 'tenancy', ...)" },
	{ "only_comments", "# nothing here\n\n", 1, 1,
	  "the file is empty (expected a mapping with 'engine', 'tenancy', ...)" },
	{ "root_sequence", "- engine\n", 1, 1,
	  "expected a mapping at the top level, got a sequence" },
	{ "root_scalar", "\n  sqlite\n", 2, 3,
	  "expected a mapping at the top level, got a scalar" },
	{ "unknown_root_key_suggest", "engine: sqlite\nenigne: sqlite\n", 2, 1,
	  "enigne: unknown key (did you mean 'engine'?)" },
	{ "unknown_root_key", SQLITE_OK_HEAD "colour: red\n", 3, 1, "colour: unknown key" },
	{ "lint_bad_severity", SQLITE_OK_HEAD "lint:\n  rules:\n    DC101: loud\n", 5, 12,
	  "lint.rules.DC101: unknown value 'loud' (expected 'off', 'info', 'warning' or 'error')" },
	{ "lint_unknown_key", SQLITE_OK_HEAD "lint:\n  rule: {}\n", 4, 3,
	  "lint.rule: unknown key (did you mean 'rules'?)" },
	{ "lint_duplicate_rule",
	  SQLITE_OK_HEAD "lint:\n  rules:\n    DC101: off\n    DC101: error\n", 6, 5,
	  "lint.rules.DC101: duplicate key (first at line 5, column 5)" },
	{ "unknown_gates_key", SQLITE_OK_HEAD "gates:\n  lock_timout: 2s\n", 4, 3,
	  "gates.lock_timout: unknown key (did you mean 'lock_timeout'?)" },
	{ "unknown_shard_key",
	  PG_HEAD
	  "shards:\n  - name: a\n    primary: host=a\n  - name: b\n    primary: host=b\n    paralel: 2\n",
	  10, 5, "shards[1].paralel: unknown key (did you mean 'parallel'?)" },
	{ "unknown_lag_key", SQLITE_OK_HEAD "gates:\n  replication_lag: { max: 1s, timeot: 1m }\n",
	  4, 31, "gates.replication_lag.timeot: unknown key (did you mean 'timeout'?)" },
	{ "unknown_audit_key", SQLITE_OK_HEAD "audit:\n  kee: k\n", 4, 3,
	  "audit.kee: unknown key (did you mean 'key'?)" },
	{ "duplicate_root_key", "engine: sqlite\n" SQLITE_OK_HEAD "engine: postgres\n", 4, 1,
	  "engine: duplicate key (first at line 1, column 1)" },
	{ "duplicate_nested_key", SQLITE_OK_HEAD "gates:\n  lock_timeout: 2s\n  lock_timeout: 3s\n",
	  5, 3, "gates.lock_timeout: duplicate key (first at line 4, column 3)" },
	{ "key_not_scalar", SQLITE_OK_HEAD "? [a, b]\n: 1\n", 3, 3,
	  "keys must be plain strings, got a sequence" },
	{ "engine_unknown", "engine: mysql\n", 1, 9,
	  "engine: unknown value 'mysql' (expected 'sqlite' or 'postgres')" },
	{ "engine_typo", "engine: postgress\n", 1, 9,
	  "engine: unknown value 'postgress' (did you mean 'postgres'?)" },
	{ "engine_mapping", "engine:\n  name: sqlite\n", 2, 3,
	  "engine: expected a string, got a mapping" },
	{ "engine_empty", "engine:\n" SQLITE_OK_HEAD, 1, 1,
	  "engine: expected a string, got an empty value" },
	{ "tenancy_sequence", "tenancy: [a]\n", 1, 10,
	  "tenancy: expected a mapping, got a sequence" },
	{ "tenancy_model_typo", "tenancy:\n  model: databse\n  glob: x\n", 2, 10,
	  "tenancy.model: unknown value 'databse' (did you mean 'database'?)" },
	{ "tenancy_list_item_mapping", "tenancy:\n  list:\n    - a\n    - { id: b }\n", 4, 7,
	  "tenancy.list[1]: expected a string, got a mapping" },
	{ "tenancy_list_duplicate", "tenancy:\n  list: [acme, globex, initech, globex]\n", 2, 33,
	  "tenancy.list[3]: duplicate tenant 'globex' (first at tenancy.list[1], line 2)" },
	{ "shards_mapping", PG_HEAD "shards:\n  eu-1: host=a\n", 6, 3,
	  "shards: expected a sequence, got a mapping" },
	{ "shard_scalar", PG_HEAD "shards:\n  - eu-1\n", 6, 5,
	  "shards[0]: expected a mapping, got a scalar" },
	{ "shard_missing_name", PG_HEAD "shards:\n  - primary: host=a\n", 6, 5,
	  "shards[0]: missing required key 'name'" },
	{ "shard_missing_primary",
	  PG_HEAD "shards:\n  - name: a\n    primary: host=a\n  - name: b\n    parallel: 2\n", 8, 5,
	  "shards[1]: missing required key 'primary'" },
	{ "shard_empty_name", PG_HEAD "shards:\n  - name: ''\n    primary: host=a\n", 6, 11,
	  "shards[0].name: must not be empty" },
	{ "shard_replica_mapping",
	  PG_HEAD
	  "shards:\n  - name: a\n    primary: host=a\n  - name: b\n    primary: host=b\n    replicas:\n      - { host: c }\n",
	  11, 9, "shards[1].replicas[0]: expected a string, got a mapping" },
	{ "shard_replicas_scalar",
	  PG_HEAD "shards:\n  - name: a\n    primary: host=a\n    replicas: host=b\n", 8, 15,
	  "shards[0].replicas: expected a sequence, got a scalar" },
	{ "shard_parallel_zero",
	  PG_HEAD "shards:\n  - name: a\n    primary: host=a\n    parallel: 0\n", 8, 15,
	  "shards[0].parallel: 0 is out of range (1..1024)" },
	{ "shard_parallel_word",
	  PG_HEAD "shards:\n  - name: a\n    primary: host=a\n    parallel: four\n", 8, 15,
	  "shards[0].parallel: expected an integer, got 'four'" },
	{ "shard_duplicate_name",
	  PG_HEAD
	  "shards:\n  - name: eu-1\n    primary: host=a\n  - name: eu-2\n    primary: host=b\n  - name: eu-1\n    primary: host=c\n",
	  10, 11, "shards[2].name: duplicate shard name 'eu-1' (first at shards[0], line 6)" },
	{ "postgres_no_shards", "engine: postgres\ntenancy: { model: schema }\n", 1, 9,
	  "engine: 'postgres' needs at least one shard under 'shards'" },
	{ "postgres_empty_shards", "engine: postgres\nshards: []\n", 2, 9,
	  "shards: engine 'postgres' needs at least one shard" },
	{ "sqlite_no_discovery", "engine: sqlite\ntenancy:\n  model: database\n", 3, 3,
	  "tenancy: engine 'sqlite' needs 'glob' or 'list'" },
	{ "sqlite_no_tenancy", "engine: sqlite\n", 1, 9,
	  "engine: 'sqlite' needs 'tenancy' with 'glob' or 'list'" },
	{ "sqlite_no_tenancy_default_engine", "\nmigrations: m\n", 2, 1,
	  "missing required key 'tenancy' (engine 'sqlite' needs 'glob' or 'list')" },
	{ "sqlite_schema_model", "tenancy:\n  model: schema\n  glob: x\n", 2, 10,
	  "tenancy.model: engine 'sqlite' supports only 'database' (one file per tenant)" },
	{ "rls_column_under_schema", PG_HEAD "  column: tenant_id\n  app_role: app\n" PG_SHARD, 5,
	  11,
	  "tenancy.column: only row tenancy (tenancy.model: row) has a tenant column that row-level security guards" },
	{ "rls_column_without_role", ROW_HEAD "  column: tenant_id\n" PG_SHARD, 4, 11,
	  "tenancy.column: needs tenancy.app_role, the application's role that row-level security must hold back" },
	{ "rls_role_without_column", ROW_HEAD "  app_role: app\n" PG_SHARD, 4, 13,
	  "tenancy.app_role: needs tenancy.column, the tenant column row-level security filters on" },
	{ "rls_column_too_long",
	  ROW_HEAD "  column: c234567890123456789012345678901234567890123456789012345678901234\n",
	  4, 11, "tenancy.column: longer than 63 bytes, PostgreSQL's limit for a name" },
	{ "rls_role_empty", ROW_HEAD "  column: tenant_id\n  app_role: ''\n", 5, 13,
	  "tenancy.app_role: must not be empty" },
	{ "gates_scalar", SQLITE_OK_HEAD "gates: strict\n", 3, 8,
	  "gates: expected a mapping, got a scalar" },
	{ "duration_bare_number", SQLITE_OK_HEAD "gates:\n  lock_timeout: 2\n", 4, 17,
	  "gates.lock_timeout: invalid duration '2' (expected a number and a unit: 500ms, 2s, 5m, 1h)" },
	{ "duration_word", SQLITE_OK_HEAD "gates:\n  replication_lag:\n    max: fast\n", 5, 10,
	  "gates.replication_lag.max: invalid duration 'fast' (expected a number and a unit: 500ms, 2s, 5m, 1h)" },
	{ "duration_too_long", SQLITE_OK_HEAD "gates:\n  statement_timeout: 30d\n", 4, 22,
	  "gates.statement_timeout: duration '30d' is out of range (at most 2147483647ms)" },
	{ "isolation_dynamic_sql", SQLITE_OK_HEAD "gates:\n  isolation:\n    dynamic_sql: permit\n",
	  5, 18, "gates.isolation.dynamic_sql: unknown value 'permit' (expected refuse or allow)" },
	{ "isolation_unknown_key", SQLITE_OK_HEAD "gates:\n  isolation: { dynamic: allow }\n", 4,
	  16, "gates.isolation.dynamic: unknown key (did you mean 'dynamic_sql'?)" },
	{ "pattern_nbsp",
	  "engine: postgres\ntenancy:\n  model: schema\n  pattern: \"tenant\\_%\"\nshards: [{ name: a, primary: x }]\n",
	  4, 12,
	  "tenancy.pattern: holds a no-break space, which is what YAML makes of \\_ in double quotes: write the pattern in single quotes ('tenant\\_%') or as \\\\_" },
	{ "shared_schemas_sqlite", SQLITE_OK_HEAD "  shared_schemas: [public]\n", 3, 19,
	  "tenancy.shared_schemas: only PostgreSQL's schema tenancy has schemas that tenants share" },
	{ "shared_schemas_own",
	  PG_HEAD "  shared_schemas: [public, deployclaw]\nshards: [{ name: a, primary: x }]\n", 5,
	  28,
	  "tenancy.shared_schemas[1]: 'deployclaw' is not a schema tenants share: it is deployclaw's own, which migrations never touch" },
	{ "shared_schemas_scalar",
	  PG_HEAD "  shared_schemas: public\nshards: [{ name: a, primary: x }]\n", 5, 19,
	  "tenancy.shared_schemas: expected a sequence, got a scalar" },
	{ "run_as_bad_placeholder",
	  PG_HEAD "  run_as: \"{tenant_id}_owner\"\nshards:\n  - name: a\n    primary: host=a\n", 5,
	  11,
	  "tenancy.run_as: '{tenant_id}_owner' is neither 'owner' nor a role name holding "
	  "'{tenant}' once (for example '{tenant}_owner')" },
	{ "run_as_no_placeholder",
	  PG_HEAD "  run_as: owners\nshards:\n  - name: a\n    primary: host=a\n", 5, 11,
	  "tenancy.run_as: 'owners' is neither 'owner' nor a role name holding '{tenant}' once "
	  "(for example '{tenant}_owner')" },
	{ "run_as_sqlite", SQLITE_OK_HEAD "  run_as: owner\n", 3, 11,
	  "tenancy.run_as: applies only to engine 'postgres' with tenancy.model 'schema'" },
	{ "run_as_row",
	  "engine: postgres\ntenancy:\n  model: row\n  run_as: owner\nshards:\n  - name: a\n"
	  "    primary: host=a\n",
	  4, 11, "tenancy.run_as: applies only to engine 'postgres' with tenancy.model 'schema'" },
	{ "lag_scalar", SQLITE_OK_HEAD "gates:\n  replication_lag: 1s\n", 4, 20,
	  "gates.replication_lag: expected a mapping, got a scalar" },
	{ "bool_yes", SQLITE_OK_HEAD "gates:\n  require_down: yes\n", 4, 17,
	  "gates.require_down: expected true or false, got 'yes'" },
	{ "check_scope", SQLITE_OK_HEAD "gates:\n  foreign_key_check: partial\n", 4, 22,
	  "gates.foreign_key_check: expected true (the tables the migration wrote), full or false, got 'partial'" },
	{ "canary_percent_high", SQLITE_OK_HEAD "rollout:\n  canary: 150%\n", 4, 11,
	  "rollout.canary: invalid percentage '150%' (expected 1%..100%)" },
	{ "canary_word", SQLITE_OK_HEAD "rollout:\n  canary: some\n", 4, 11,
	  "rollout.canary: expected a count or a percentage, got 'some'" },
	{ "canary_negative", SQLITE_OK_HEAD "rollout:\n  canary: -1\n", 4, 11,
	  "rollout.canary: -1 is out of range (0..10000000, or a percentage)" },
	{ "wave_zero_percent", SQLITE_OK_HEAD "rollout:\n  waves: [10%, 0%, 100%]\n", 4, 16,
	  "rollout.waves[1]: invalid percentage '0%' (expected 1%..100%)" },
	{ "wave_zero_count", SQLITE_OK_HEAD "rollout:\n  waves:\n    - 0\n", 5, 7,
	  "rollout.waves[0]: 0 is out of range (1..10000000, or a percentage)" },
	{ "waves_empty", SQLITE_OK_HEAD "rollout:\n  waves: []\n", 4, 10,
	  "rollout.waves: must list at least one wave" },
	{ "max_failures_negative", SQLITE_OK_HEAD "rollout:\n  max_failures: -1\n", 4, 17,
	  "rollout.max_failures: -1 is out of range (at least 0)" },
	{ "rollout_parallel_zero", SQLITE_OK_HEAD "rollout:\n  parallel: 0\n", 4, 13,
	  "rollout.parallel: 0 is out of range (1..1024)" },
	{ "migrations_empty", SQLITE_OK_HEAD "migrations: \"\"\n", 3, 13,
	  "migrations: must not be empty" },
	{ "alias", "engine: &e sqlite\nmigrations: *e\n" SQLITE_OK_HEAD, 2, 13,
	  "migrations: aliases are not supported" },
	{ "two_documents", SQLITE_OK_HEAD "---\nengine: sqlite\n", 3, 1,
	  "only one YAML document is allowed" },
	{ "undefined_variable",
	  PG_HEAD
	  "shards:\n  - name: a\n    primary: \"host=${DC_TEST_UNSET_HOST} password=${DC_TEST_UNSET_PW}\"\n",
	  7, 20,
	  "shards[0].primary: undefined environment variable 'DC_TEST_UNSET_HOST' (set it, or write ${DC_TEST_UNSET_HOST:-default})" },
	{ "undefined_variable_plain_later",
	  SQLITE_OK_HEAD "audit:\n  ledger: /var/${DC_TEST_SET}/${DC_TEST_UNSET_DIR}/l.jsonl\n", 4,
	  31,
	  "audit.ledger: undefined environment variable 'DC_TEST_UNSET_DIR' (set it, or write ${DC_TEST_UNSET_DIR:-default})" },
	{ "unterminated_variable", SQLITE_OK_HEAD "migrations: db/${HOME\n", 3, 16,
	  "migrations: unterminated '${' (write '$$' for a literal '$')" },
	{ "bad_variable_name", SQLITE_OK_HEAD "migrations: db/${1X}\n", 3, 16,
	  "migrations: invalid variable reference (expected ${NAME} or ${NAME:-default})" },
	{ "nul_byte", "engine: sqlite\ntenancy: { glob: \"a\\0b\" }\n", 2, 18,
	  "tenancy.glob: value contains a NUL character" },
	{ "invalid_utf8", "engine: sqlite\nmigrations: ab\xff\n", 2, 15,
	  "the file is not valid UTF-8" },
};

static void bad_config_is_refused(void **state)
{
	const bad_case *bc = *state;
	dc_config *cfg = (dc_config *)1;
	dc_error err = { 0 };
	int rc;

	setenv("DC_TEST_SET", "set", 1);
	unsetenv("DC_TEST_UNSET_HOST");
	unsetenv("DC_TEST_UNSET_DIR");
	rc = dc_config_parse(&cfg, "conf/deployclaw.yaml", bc->yaml, strlen(bc->yaml), &err);
	if (rc != DC_ECONFIG || err.line != bc->line || err.col != bc->col)
		print_error("case %s: rc %d at %d:%d: %s\n", bc->name, rc, err.line, err.col,
		            err.message);
	assert_int_equal(rc, DC_ECONFIG);
	assert_null(cfg);
	assert_int_equal(err.code, DC_ECONFIG);
	assert_string_equal(err.file, "conf/deployclaw.yaml");
	assert_string_equal(err.message, bc->message);
	assert_int_equal(err.line, bc->line);
	assert_int_equal(err.col, bc->col);
}

/* ------------------------------------------------------------------------ */
/* Valid configurations.                                                    */

static dc_config *parse_ok(const char *yaml)
{
	dc_config *cfg = NULL;
	dc_error err = { 0 };
	int rc = dc_config_parse(&cfg, "fleet/deployclaw.yaml", yaml, strlen(yaml), &err);

	if (rc != 0)
		print_error("unexpected error %d at %d:%d: %s\n", rc, err.line, err.col,
		            err.message);
	assert_int_equal(rc, 0);
	assert_non_null(cfg);
	return cfg;
}

static const char full_yaml[] =
        "engine: postgres                  # sqlite | postgres\n"
        "migrations: db/migrations\n"
        "tenancy:\n"
        "  model: schema\n"
        "  pattern: \"tenant_%\"\n"
        "  query: \"SELECT schema_name FROM app.tenants\"\n"
        "  list: [acme, globex]\n"
        "  shared_schemas: [public, ext]\n"
        "  run_as: \"{tenant}_owner\"\n"
        "shards:\n"
        "  - name: eu-1\n"
        "    primary: \"host=10.0.0.5 dbname=app user=deploy\"\n"
        "    replicas: [\"host=10.0.0.6 dbname=app user=deploy\", \"host=10.0.0.7\"]\n"
        "    parallel: 4\n"
        "  - name: us-1\n"
        "    primary: postgres://deploy@10.1.0.5/app\n"
        "gates:\n"
        "  lock_timeout: 3s\n"
        "  statement_timeout: 10m\n"
        "  require_down: false\n"
        "  integrity_check: full\n"
        "  foreign_key_check: false\n"
        "  replication_lag: { max: 250ms, timeout: 1h }\n"
        "rollout:\n"
        "  canary: 5%\n"
        "  waves: [10%, 50, 100%]\n"
        "  max_failures: 2\n"
        "  parallel: 8\n"
        "audit:\n"
        "  ledger: /var/lib/deployclaw/ledger.jsonl\n"
        "  key: keys/signing.key\n";

static void full_config(void **state)
{
	dc_config *cfg;

	(void)state;
	cfg = parse_ok(full_yaml);
	assert_string_equal(cfg->path, "fleet/deployclaw.yaml");
	assert_string_equal(cfg->dir, "fleet");
	assert_int_equal(cfg->engine, DC_ENGINE_POSTGRES);
	assert_string_equal(cfg->migrations, "fleet/db/migrations");
	assert_int_equal(cfg->tenancy.model, DC_TENANCY_SCHEMA);
	assert_null(cfg->tenancy.glob);
	assert_string_equal(cfg->tenancy.pattern, "tenant_%");
	assert_string_equal(cfg->tenancy.query, "SELECT schema_name FROM app.tenants");
	assert_int_equal(cfg->tenancy.nlist, 2);
	assert_string_equal(cfg->tenancy.list[1], "globex");
	assert_string_equal(cfg->tenancy.run_as, "{tenant}_owner");
	assert_int_equal(cfg->nshards, 2);
	assert_string_equal(cfg->shards[0].name, "eu-1");
	assert_string_equal(cfg->shards[0].primary, "host=10.0.0.5 dbname=app user=deploy");
	assert_int_equal(cfg->shards[0].nreplicas, 2);
	assert_string_equal(cfg->shards[0].replicas[1], "host=10.0.0.7");
	assert_int_equal(cfg->shards[0].parallel, 4);
	assert_int_equal(cfg->tenancy.nshared_schemas, 2);
	assert_string_equal(cfg->tenancy.shared_schemas[1], "ext");
	assert_int_equal(cfg->shards[0].line, 11);
	assert_int_equal(cfg->shards[0].col, 5);
	assert_string_equal(cfg->shards[1].name, "us-1");
	assert_int_equal(cfg->shards[1].nreplicas, 0);
	assert_int_equal(cfg->shards[1].parallel, 0);
	assert_int_equal(cfg->shards[1].line, 15);
	assert_int_equal(cfg->gates.lock_timeout_ms, 3000);
	assert_int_equal(cfg->gates.statement_timeout_ms, 600000);
	assert_false(cfg->gates.require_down);
	assert_int_equal(cfg->gates.integrity_check, DC_CHECK_FULL);
	assert_int_equal(cfg->gates.foreign_key_check, DC_CHECK_OFF);
	assert_int_equal(cfg->gates.lag_max_ms, 250);
	assert_int_equal(cfg->gates.lag_timeout_ms, 3600000);
	assert_true(cfg->rollout.canary.percent);
	assert_int_equal(cfg->rollout.canary.value, 5);
	assert_int_equal(cfg->rollout.nwaves, 3);
	assert_true(cfg->rollout.waves[0].percent);
	assert_int_equal(cfg->rollout.waves[0].value, 10);
	assert_false(cfg->rollout.waves[1].percent);
	assert_int_equal(cfg->rollout.waves[1].value, 50);
	assert_int_equal(cfg->rollout.max_failures, 2);
	assert_int_equal(cfg->rollout.parallel, 8);
	assert_string_equal(cfg->audit.ledger, "/var/lib/deployclaw/ledger.jsonl");
	assert_string_equal(cfg->audit.key, "fleet/keys/signing.key");
	dc_config_free(cfg);
}

static void minimal_sqlite_gets_defaults(void **state)
{
	dc_config *cfg;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	cfg = parse_ok("tenancy:\n  glob: tenants/*.db\n");
	assert_int_equal(cfg->engine, DC_ENGINE_SQLITE);
	assert_string_equal(cfg->migrations, "fleet/migrations");
	assert_int_equal(cfg->tenancy.model, DC_TENANCY_DATABASE);
	assert_string_equal(cfg->tenancy.glob, "fleet/tenants/*.db");
	assert_int_equal(cfg->nshards, 0);
	assert_int_equal(cfg->gates.lock_timeout_ms, 2000);
	assert_int_equal(cfg->gates.statement_timeout_ms, 300000);
	assert_true(cfg->gates.require_down);
	assert_int_equal(cfg->gates.integrity_check, DC_CHECK_CHANGED);
	assert_int_equal(cfg->gates.foreign_key_check, DC_CHECK_CHANGED);
	assert_int_equal(cfg->gates.lag_max_ms, 500);
	assert_int_equal(cfg->gates.lag_timeout_ms, 600000);
	assert_false(cfg->rollout.canary.percent);
	assert_int_equal(cfg->rollout.canary.value, 1);
	assert_int_equal(cfg->rollout.nwaves, 1);
	assert_true(cfg->rollout.waves[0].percent);
	assert_int_equal(cfg->rollout.waves[0].value, 100);
	assert_int_equal(cfg->rollout.max_failures, 0);
	assert_int_equal(cfg->rollout.parallel, ncpu < 1 ? 1 : ncpu > 1024 ? 1024 : ncpu);
	assert_string_equal(cfg->audit.ledger, "fleet/audit/ledger.jsonl");
	assert_string_equal(cfg->audit.key, "fleet/audit/signing.key");
	dc_config_free(cfg);
}

static void empty_sections_mean_defaults(void **state)
{
	dc_config *cfg;

	(void)state;
	cfg = parse_ok("engine: sqlite\ntenancy:\n  list: [a]\ngates:\nrollout:\n  waves:\n"
	               "audit: ~\nshards:\n");
	assert_int_equal(cfg->gates.lock_timeout_ms, 2000);
	assert_int_equal(cfg->rollout.nwaves, 1);
	assert_int_equal(cfg->rollout.waves[0].value, 100);
	assert_int_equal(cfg->nshards, 0);
	assert_string_equal(cfg->audit.key, "fleet/audit/signing.key");
	dc_config_free(cfg);
}

static void postgres_with_shards(void **state)
{
	dc_config *cfg;

	(void)state;
	cfg = parse_ok("engine: postgres\n"
	               "tenancy: { model: row }\n"
	               "shards:\n"
	               "  - { name: a, primary: \"host=a\" }\n"
	               "  - name: b\n"
	               "    primary: \"postgresql://u@b:5433/app?sslmode=require\"\n"
	               "    replicas:\n"
	               "      - host=b2\n"
	               "    parallel: 16\n");
	assert_int_equal(cfg->engine, DC_ENGINE_POSTGRES);
	assert_int_equal(cfg->tenancy.model, DC_TENANCY_ROW);
	assert_int_equal(cfg->nshards, 2);
	assert_string_equal(cfg->shards[0].primary, "host=a");
	assert_int_equal(cfg->shards[0].line, 4);
	assert_int_equal(cfg->shards[0].col, 5);
	assert_string_equal(cfg->shards[1].primary, "postgresql://u@b:5433/app?sslmode=require");
	assert_string_equal(cfg->shards[1].replicas[0], "host=b2");
	assert_int_equal(cfg->shards[1].parallel, 16);
	assert_int_equal(cfg->shards[1].line, 5);
	assert_int_equal(cfg->shards[1].col, 5);
	dc_config_free(cfg);
}

/* Row tenancy's RLS keys: read, dumped by `config show`, and the dump reloads. */
static void rls_keys(void **state)
{
	dc_strbuf out = DC_STRBUF_INIT;
	dc_config *cfg;

	(void)state;
	cfg = parse_ok(ROW_HEAD "  column: tenant_id\n  app_role: app\n" PG_SHARD);
	assert_string_equal(cfg->tenancy.column, "tenant_id");
	assert_string_equal(cfg->tenancy.app_role, "app");
	assert_int_equal(dc_config_dump(cfg, &out), 0);
	assert_non_null(
	        strstr(out.buf, "  model: row\n  column: \"tenant_id\"\n  app_role: \"app\"\n"));
	dc_config_free(cfg);
	cfg = parse_ok(out.buf);
	assert_string_equal(cfg->tenancy.column, "tenant_id");
	assert_string_equal(cfg->tenancy.app_role, "app");
	dc_config_free(cfg);
	dc_strbuf_release(&out);
}

static void env_expansion(void **state)
{
	dc_config *cfg;

	(void)state;
	setenv("DC_TEST_PGHOST", "db.internal", 1);
	setenv("DC_TEST_EMPTY", "", 1);
	setenv("DC_TEST_PAR", "6", 1);
	unsetenv("DC_TEST_UNSET");
	cfg = parse_ok("engine: postgres\n"
	               "migrations: ${DC_TEST_UNSET:-db}/m\n"
	               "tenancy: { model: row }\n"
	               "shards:\n"
	               "  - name: ${DC_TEST_UNSET:-eu-1}\n"
	               "    primary: \"host=${DC_TEST_PGHOST} user=${DC_TEST_EMPTY:-deploy}\"\n"
	               "    replicas: [\"host=${DC_TEST_EMPTY}x\"]\n"
	               "    parallel: ${DC_TEST_PAR}\n"
	               "audit:\n"
	               "  ledger: cost$$${DC_TEST_UNSET:-}.jsonl\n"
	               "  key: $HOME/a$b\n");
	assert_string_equal(cfg->migrations, "fleet/db/m");
	assert_string_equal(cfg->shards[0].name, "eu-1");
	assert_string_equal(cfg->shards[0].primary, "host=db.internal user=deploy");
	assert_string_equal(cfg->shards[0].replicas[0], "host=x");
	assert_int_equal(cfg->shards[0].parallel, 6);
	assert_string_equal(cfg->audit.ledger, "fleet/cost$.jsonl");
	/* only ${...} is expanded: a bare $NAME is kept as written */
	assert_string_equal(cfg->audit.key, "fleet/$HOME/a$b");
	dc_config_free(cfg);
}

static void quoted_scalars(void **state)
{
	dc_config *cfg;

	(void)state;
	unsetenv("DC_TEST_UNSET");
	/* libfyaml 0.7.12 misreads runs of '' escapes: we decode them ourselves */
	cfg = parse_ok("tenancy:\n"
	               "  list:\n"
	               "    - 'x''y''''z'\n"
	               "    - ''''\n"
	               "    - ''''''''''''\n"
	               "    - 'a\n"
	               "       b  \n"
	               "\n"
	               "      c'\n"
	               "    - \"d\\tq\\\"\"\n"
	               "    - ' lead'\n"
	               "    - 'it''s ${DC_TEST_UNSET:-x}'\n");
	assert_int_equal(cfg->tenancy.nlist, 7);
	assert_string_equal(cfg->tenancy.list[0], "x'y''z");
	assert_string_equal(cfg->tenancy.list[1], "'");
	assert_string_equal(cfg->tenancy.list[2], "'''''");
	assert_string_equal(cfg->tenancy.list[3], "a b\nc");
	assert_string_equal(cfg->tenancy.list[4], "d\tq\"");
	assert_string_equal(cfg->tenancy.list[5], " lead");
	assert_string_equal(cfg->tenancy.list[6], "it's x");
	dc_config_free(cfg);
}

static void keys_are_not_expanded(void **state)
{
	dc_config *cfg = NULL;
	dc_error err = { 0 };
	const char *yaml = SQLITE_OK_HEAD "${DC_TEST_PGHOST}: x\n";

	(void)state;
	setenv("DC_TEST_PGHOST", "engine", 1);
	assert_int_equal(dc_config_parse(&cfg, "c.yaml", yaml, strlen(yaml), &err), DC_ECONFIG);
	assert_string_equal(err.message, "${DC_TEST_PGHOST}: unknown key");
	assert_int_equal(err.line, 3);
	assert_int_equal(err.col, 1);
}

static void template_loads_cleanly(void **state)
{
	char dir[] = "/tmp/dc_test_config_XXXXXX";
	char path[256];
	dc_config *cfg = NULL;
	dc_error err = { 0 };
	const char *tpl = dc_config_template();
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/deployclaw.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(tpl, 1, strlen(tpl), f), strlen(tpl));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(dc_config_load(&cfg, path, &err), 0);
	assert_int_equal(cfg->engine, DC_ENGINE_SQLITE);
	assert_int_equal(cfg->tenancy.model, DC_TENANCY_DATABASE);
	snprintf(path, sizeof(path), "%s/tenants/*.db", dir);
	assert_string_equal(cfg->tenancy.glob, path);
	snprintf(path, sizeof(path), "%s/migrations", dir);
	assert_string_equal(cfg->migrations, path);
	snprintf(path, sizeof(path), "%s/audit/ledger.jsonl", dir);
	assert_string_equal(cfg->audit.ledger, path);
	snprintf(path, sizeof(path), "%s/audit/signing.key", dir);
	assert_string_equal(cfg->audit.key, path);
	assert_int_equal(cfg->rollout.nwaves, 3);
	/* the template documents the shards example, commented out */
	assert_non_null(strstr(tpl, "# shards:"));
	assert_non_null(strstr(tpl, "#   - name: eu-1"));
	dc_config_free(cfg);
	snprintf(path, sizeof(path), "%s/deployclaw.yaml", dir);
	unlink(path);
	rmdir(dir);
}

static void load_missing_file(void **state)
{
	dc_config *cfg = NULL;
	dc_error err = { 0 };

	(void)state;
	assert_int_equal(dc_config_load(&cfg, "/nonexistent/deployclaw.yaml", &err), DC_ENOTFOUND);
	assert_null(cfg);
	assert_string_equal(err.file, "/nonexistent/deployclaw.yaml");
}

static void load_reports_file_position(void **state)
{
	char dir[] = "/tmp/dc_test_config_XXXXXX";
	char path[256];
	dc_config *cfg = NULL;
	dc_error err = { 0 };
	char buf[2048];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/deployclaw.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(SQLITE_OK_HEAD "rollout:\n  canary: 101%\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(dc_config_load(&cfg, path, &err), DC_ECONFIG);
	assert_null(cfg);
	snprintf(buf, sizeof(buf),
	         "%s:4:11: rollout.canary: invalid percentage '101%%' (expected 1%%..100%%)", path);
	{
		char got[2048];

		assert_string_equal(dc_error_format(&err, got, sizeof(got)), buf);
	}
	unlink(path);
	rmdir(dir);
}

static void too_large_is_refused(void **state)
{
	size_t len = DC_CONFIG_MAX_BYTES + 1;
	char *big = malloc(len);
	dc_config *cfg = NULL;
	dc_error err = { 0 };

	(void)state;
	assert_non_null(big);
	memset(big, '#', len);
	assert_int_equal(dc_config_parse(&cfg, "big.yaml", big, len, &err), DC_ECONFIG);
	assert_string_equal(err.message, "configuration is larger than 1048576 bytes");
	assert_string_equal(err.file, "big.yaml");
	free(big);
}

static void deep_nesting_is_refused(void **state)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	dc_config *cfg = NULL;
	dc_error err = { 0 };
	int i;

	(void)state;
	dc_strbuf_adds(&sb, "tenancy: ");
	for (i = 0; i < 200; i++)
		dc_strbuf_addch(&sb, '[');
	for (i = 0; i < 200; i++)
		dc_strbuf_addch(&sb, ']');
	assert_int_equal(dc_strbuf_error(&sb), 0);
	assert_int_equal(dc_config_parse(&cfg, "deep.yaml", sb.buf, sb.len, &err), DC_ECONFIG);
	assert_null(cfg);
	assert_int_equal(err.line, 1);
	assert_true(err.col > 1);
	dc_strbuf_release(&sb);
}

/* ------------------------------------------------------------------------ */
/* Passwords.                                                               */

static void dsn_redaction(void **state)
{
	static const char *const cases[][2] = {
		{ "host=a password=secret dbname=app", "host=a password=******** dbname=app" },
		{ "host=a password = 'se cr\\'et' user=u", "host=a password=******** user=u" },
		{ "password=secret", "password=********" },
		{ "host=a dbname=app", "host=a dbname=app" },
		{ "host=a password='unterminated secret", "host=a password=********" },
		{ "host=a garbage secret", "host=a ********" },
		{ "postgres://user:secret@host:5432/db", "postgres://user:********@host:5432/db" },
		{ "postgresql://user@host/db?password=secret&sslmode=require",
		  "postgresql://user@host/db?password=********&sslmode=require" },
		{ "postgres://u:s%40cret@h/db?sslmode=disable&password=x",
		  "postgres://u:********@h/db?sslmode=disable&password=********" },
		{ "postgres://u:sec/ret@h/db", "postgres://u:********@h/db" },
		{ "postgres://host/db", "postgres://host/db" },
		{ "", "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = dc_dsn_redact(cases[i][0]);

		assert_non_null(r);
		assert_string_equal(r, cases[i][1]);
		free(r);
	}
}

static void passwords_never_leak(void **state)
{
	static const char *const bad[] = {
		/* an error in the shard holding the password */
		PG_HEAD "shards:\n  - name: a\n    primary: \"host=a password=hunter2\"\n"
		        "    replicas: [\"postgres://u:hunter2@b/db\", { x: 1 }]\n",
		PG_HEAD "shards:\n  - name: a\n    primary: [\"host=a password=hunter2\"]\n",
		PG_HEAD
		"shards:\n  - name: a\n    primary: \"host=a password=hunter2 ${DC_TEST_UNSET}\"\n",
		PG_HEAD
		"shards:\n  - name: a\n    primary: \"host=a password=hunter2\"\n"
		"  - name: a\n    primary: \"postgres://u:hunter2@b/db?password=hunter2\"\n",
		PG_HEAD "shards:\n  - name: a\n    primary: \"host=a password=hunter2\n",
		PG_HEAD
		"shards:\n  - name: a\n    primary: \"host=a password=hunter2\"\n    parallel: x\n",
	};
	const char *good = PG_HEAD "shards:\n"
	                           "  - name: a\n"
	                           "    primary: \"host=a password=hunter2 user=u\"\n"
	                           "    replicas:\n"
	                           "      - \"postgres://u:hunter2@b/db\"\n"
	                           "      - \"postgres://u@c/db?password=hunter2\"\n"
	                           "      - \"host=d password='hunter2 with spaces'\"\n";
	dc_strbuf out = DC_STRBUF_INIT;
	dc_config *cfg = NULL;
	size_t i;

	(void)state;
	unsetenv("DC_TEST_UNSET");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dc_error err = { 0 };
		char line[2048];

		assert_int_equal(dc_config_parse(&cfg, "c.yaml", bad[i], strlen(bad[i]), &err),
		                 DC_ECONFIG);
		dc_error_format(&err, line, sizeof(line));
		if (strstr(line, "hunter"))
			print_error("case %zu leaks: %s\n", i, line);
		assert_null(strstr(line, "hunter"));
		assert_true(err.line > 0);
	}
	cfg = parse_ok(good);
	assert_int_equal(dc_config_dump(cfg, &out), 0);
	assert_null(strstr(out.buf, "hunter"));
	assert_non_null(strstr(out.buf, "primary: \"host=a password=******** user=u\""));
	assert_non_null(strstr(out.buf, "- \"postgres://u:********@b/db\""));
	assert_non_null(strstr(out.buf, "- \"postgres://u@c/db?password=********\""));
	assert_non_null(strstr(out.buf, "- \"host=d password=********\""));
	dc_strbuf_release(&out);
	dc_config_free(cfg);
}

/* ------------------------------------------------------------------------ */
/* Dump and amounts.                                                        */

static void dump_is_complete_and_reloads(void **state)
{
	static const char expected[] = "engine: postgres\n"
	                               "migrations: \"fleet/db/migrations\"\n"
	                               "tenancy:\n"
	                               "  model: schema\n"
	                               "  pattern: \"tenant_%\"\n"
	                               "  query: \"SELECT schema_name FROM app.tenants\"\n"
	                               "  list:\n"
	                               "    - \"acme\"\n"
	                               "    - \"globex\"\n"
	                               "  shared_schemas:\n"
	                               "    - \"public\"\n"
	                               "    - \"ext\"\n"
	                               "  run_as: \"{tenant}_owner\"\n"
	                               "shards:\n"
	                               "  - name: \"eu-1\"\n"
	                               "    primary: \"host=10.0.0.5 dbname=app user=deploy\"\n"
	                               "    replicas:\n"
	                               "      - \"host=10.0.0.6 dbname=app user=deploy\"\n"
	                               "      - \"host=10.0.0.7\"\n"
	                               "    parallel: 4\n"
	                               "  - name: \"us-1\"\n"
	                               "    primary: \"postgres://deploy@10.1.0.5/app\"\n"
	                               "    replicas: []\n"
	                               "    parallel: 8\n"
	                               "gates:\n"
	                               "  lock_timeout: 3s\n"
	                               "  statement_timeout: 10m\n"
	                               "  require_down: false\n"
	                               "  integrity_check: full\n"
	                               "  foreign_key_check: false\n"
	                               "  allow_out_of_order: false\n"
	                               "  isolation:\n"
	                               "    dynamic_sql: refuse\n"
	                               "  replication_lag:\n"
	                               "    max: 250ms\n"
	                               "    timeout: 1h\n"
	                               "rollout:\n"
	                               "  canary: 5%\n"
	                               "  waves: [10%, 50, 100%]\n"
	                               "  max_failures: 2\n"
	                               "  parallel: 8\n"
	                               "  retries: 3\n"
	                               "  backup: false\n"
	                               "audit:\n"
	                               "  ledger: \"/var/lib/deployclaw/ledger.jsonl\"\n"
	                               "  key: \"fleet/keys/signing.key\"\n";
	dc_strbuf a = DC_STRBUF_INIT, b = DC_STRBUF_INIT;
	dc_config *cfg, *again = NULL;
	dc_error err = { 0 };

	(void)state;
	cfg = parse_ok(full_yaml);
	assert_int_equal(dc_config_dump(cfg, &a), 0);
	assert_string_equal(a.buf, expected);
	/* paths are already resolved: reload without a folder to anchor them */
	assert_int_equal(dc_config_parse(&again, NULL, a.buf, a.len, &err), 0);
	assert_int_equal(dc_config_dump(again, &b), 0);
	assert_string_equal(a.buf, b.buf);
	dc_strbuf_release(&a);
	dc_strbuf_release(&b);
	dc_config_free(cfg);
	dc_config_free(again);
}

static void dump_of_defaults(void **state)
{
	dc_strbuf out = DC_STRBUF_INIT;
	dc_config *cfg;

	(void)state;
	cfg = parse_ok("tenancy: { glob: \"t/\\\"q\\\".db\" }\nrollout: { parallel: 3 }\n");
	assert_int_equal(dc_config_dump(cfg, &out), 0);
	assert_string_equal(out.buf, "engine: sqlite\n"
	                             "migrations: \"fleet/migrations\"\n"
	                             "tenancy:\n"
	                             "  model: database\n"
	                             "  glob: \"fleet/t/\\\"q\\\".db\"\n"
	                             "shards: []\n"
	                             "gates:\n"
	                             "  lock_timeout: 2s\n"
	                             "  statement_timeout: 5m\n"
	                             "  require_down: true\n"
	                             "  integrity_check: true\n"
	                             "  foreign_key_check: true\n"
	                             "  allow_out_of_order: false\n"
	                             "  isolation:\n"
	                             "    dynamic_sql: refuse\n"
	                             "  replication_lag:\n"
	                             "    max: 500ms\n"
	                             "    timeout: 10m\n"
	                             "rollout:\n"
	                             "  canary: 1\n"
	                             "  waves: [100%]\n"
	                             "  max_failures: 0\n"
	                             "  parallel: 3\n"
	                             "  retries: 3\n"
	                             "  backup: false\n"
	                             "audit:\n"
	                             "  ledger: \"fleet/audit/ledger.jsonl\"\n"
	                             "  key: \"fleet/audit/signing.key\"\n");
	dc_strbuf_release(&out);
	dc_config_free(cfg);
}

static void amounts(void **state)
{
	dc_amount count3 = { 3, false }, zero = { 0, false }, p10 = { 10, true }, p1 = { 1, true },
	          p100 = { 100, true }, p50 = { 50, true };

	(void)state;
	assert_int_equal(dc_amount_of(count3, 10), 3);
	assert_int_equal(dc_amount_of(count3, 2), 2);
	assert_int_equal(dc_amount_of(count3, 0), 0);
	assert_int_equal(dc_amount_of(zero, 10), 0);
	assert_int_equal(dc_amount_of(p10, 100), 10);
	assert_int_equal(dc_amount_of(p10, 101), 11); /* rounds up */
	assert_int_equal(dc_amount_of(p10, 5), 1);    /* at least one */
	assert_int_equal(dc_amount_of(p1, 1), 1);
	assert_int_equal(dc_amount_of(p10, 0), 0);
	assert_int_equal(dc_amount_of(p100, 7), 7);
	assert_int_equal(dc_amount_of(p50, 7), 4);
	assert_int_equal(dc_amount_of(p50, SIZE_MAX), SIZE_MAX / 2 + 1);
	assert_int_equal(dc_amount_of(p100, SIZE_MAX), SIZE_MAX);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(full_config),
		cmocka_unit_test(minimal_sqlite_gets_defaults),
		cmocka_unit_test(empty_sections_mean_defaults),
		cmocka_unit_test(postgres_with_shards),
		cmocka_unit_test(env_expansion),
		cmocka_unit_test(quoted_scalars),
		cmocka_unit_test(keys_are_not_expanded),
		cmocka_unit_test(template_loads_cleanly),
		cmocka_unit_test(load_missing_file),
		cmocka_unit_test(load_reports_file_position),
		cmocka_unit_test(too_large_is_refused),
		cmocka_unit_test(deep_nesting_is_refused),
		cmocka_unit_test(dsn_redaction),
		cmocka_unit_test(passwords_never_leak),
		cmocka_unit_test(dump_is_complete_and_reloads),
		cmocka_unit_test(rls_keys),
		cmocka_unit_test(dump_of_defaults),
		cmocka_unit_test(amounts),
	};

	enum {
		NFIXED = sizeof(fixed) / sizeof(fixed[0]),
		NBAD = sizeof(bad_cases) / sizeof(bad_cases[0])
	};
	struct CMUnitTest tests[NFIXED + NBAD];
	size_t i;

	for (i = 0; i < NFIXED; i++)
		tests[i] = fixed[i];
	for (i = 0; i < NBAD; i++) {
		memset(&tests[NFIXED + i], 0, sizeof(tests[0]));
		tests[NFIXED + i].name = bad_cases[i].name;
		tests[NFIXED + i].test_func = bad_config_is_refused;
		tests[NFIXED + i].initial_state = (void *)(uintptr_t)&bad_cases[i];
	}
	return _cmocka_run_group_tests("config", tests, NFIXED + NBAD, NULL, NULL);
}
