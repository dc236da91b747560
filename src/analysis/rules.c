/*
 * The lint rule catalogue: ids, default severities and the texts every
 * finding carries. docs/lint-rules.md documents the same table; the
 * checks themselves are in lint.c.
 */
#include <string.h>
#include <strings.h>

#include <deployclaw/analysis.h>
#include <deployclaw/config.h>
#include <deployclaw/util.h>

#include "lint_internal.h"

/* clang-format off */
static const dc_lint_rule rules[R_COUNT] = {
	[R_SYNTAX] = { "DC000", "syntax-error", DC_SEV_ERROR,
		"the SQL does not parse",
		"PostgreSQL would refuse the migration half way through a rollout",
		"fix the statement at the position shown",
		"squawk syntax-error" },
	[R_UNUSED_IGNORE] = { "DC001", "unused-ignore", DC_SEV_WARNING,
		"a '-- deployclaw:ignore' comment that silences nothing, or names an unknown rule",
		"stale suppressions hide the next real finding on that statement",
		"remove the comment or name the rule that fires",
		"squawk unused-ignore" },
	[R_INDEX_NONCONC] = { "DC101", "create-index-non-concurrent", DC_SEV_WARNING,
		"CREATE INDEX without CONCURRENTLY on a table this migration did not create",
		"CREATE INDEX holds SHARE on the table for the whole build: every INSERT, UPDATE and DELETE waits",
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ... in a phase with 'transaction: false'",
		"squawk require-concurrent-index-creation; Atlas PG101; strong_migrations add_index" },
	[R_DROP_INDEX_NONCONC] = { "DC102", "drop-index-non-concurrent", DC_SEV_WARNING,
		"DROP INDEX without CONCURRENTLY on an index this migration did not create",
		"DROP INDEX takes ACCESS EXCLUSIVE on the table: reads and writes wait",
		"DROP INDEX CONCURRENTLY IF EXISTS <name> in a phase with 'transaction: false'",
		"squawk require-concurrent-index-deletion; Atlas PG102; strong_migrations remove_index" },
	[R_REINDEX_NONCONC] = { "DC103", "reindex-non-concurrent", DC_SEV_WARNING,
		"REINDEX without CONCURRENTLY (REINDEX SYSTEM exempt)",
		"REINDEX holds SHARE on the table (writes wait) and ACCESS EXCLUSIVE on each index (queries using it wait)",
		"REINDEX ... CONCURRENTLY in a phase with 'transaction: false'",
		"squawk require-concurrent-reindex (which overstates the lock as ACCESS EXCLUSIVE on the table)" },
	[R_DETACH_NONCONC] = { "DC104", "detach-partition-non-concurrent", DC_SEV_WARNING,
		"ALTER TABLE ... DETACH PARTITION without CONCURRENTLY or FINALIZE",
		"takes ACCESS EXCLUSIVE on the parent and the partition",
		"DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+) in a phase with 'transaction: false'",
		"squawk require-concurrent-partition-detach" },
	[R_FK_VALIDATES] = { "DC105", "foreign-key-validates", DC_SEV_WARNING,
		"ADD FOREIGN KEY without NOT VALID on a table this migration did not create",
		"validation scans the table holding SHARE ROW EXCLUSIVE on it and on the referenced table: writes on both wait",
		"ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE CONSTRAINT in a later phase",
		"squawk adding-foreign-key-constraint, constraint-missing-not-valid; Atlas PG306; strong_migrations add_foreign_key" },
	[R_CHECK_VALIDATES] = { "DC106", "check-constraint-validates", DC_SEV_WARNING,
		"ADD CONSTRAINT CHECK without NOT VALID on a table this migration did not create",
		"every row is checked while ACCESS EXCLUSIVE is held: reads and writes wait",
		"ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT in a later phase",
		"squawk constraint-missing-not-valid; Atlas PG305; strong_migrations add_check_constraint" },
	[R_VALIDATE_SAME_TX] = { "DC107", "validate-in-same-transaction", DC_SEV_WARNING,
		"VALIDATE CONSTRAINT in the same transaction as its ADD ... NOT VALID, or after a write-blocking lock",
		"the validation scan runs while the earlier, stronger lock is still held, which NOT VALID was meant to avoid",
		"move VALIDATE CONSTRAINT to a later phase (its own transaction)",
		"squawk constraint-missing-not-valid; strong_migrations validate_foreign_key, validate_check_constraint" },
	[R_SET_NOT_NULL] = { "DC108", "set-not-null-scan", DC_SEV_WARNING,
		"ALTER COLUMN ... SET NOT NULL without a validated CHECK (col IS NOT NULL)",
		"SET NOT NULL scans the whole table under ACCESS EXCLUSIVE: reads and writes wait",
		"ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c (later phase); SET NOT NULL (no scan, PostgreSQL 12+); DROP CONSTRAINT c",
		"squawk adding-not-nullable-field; Atlas PG303, MF104; strong_migrations change_column_null_postgresql" },
	[R_ADD_PK] = { "DC109", "primary-key-index-build", DC_SEV_WARNING,
		"ADD PRIMARY KEY without USING INDEX on a table this migration did not create",
		"the primary key's index is built under ACCESS EXCLUSIVE, and nullable columns get a SET NOT NULL scan",
		"CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... PRIMARY KEY USING INDEX",
		"squawk adding-serial-primary-key-field; Atlas PG104, PG304" },
	[R_ADD_UNIQUE] = { "DC110", "unique-constraint-index-build", DC_SEV_WARNING,
		"ADD UNIQUE without USING INDEX (or ADD COLUMN ... UNIQUE) on an existing table",
		"the unique index is built under ACCESS EXCLUSIVE: reads and writes wait",
		"CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX",
		"squawk disallowed-unique-constraint; Atlas PG105; strong_migrations add_unique_constraint" },
	[R_ADD_EXCLUDE] = { "DC111", "exclusion-constraint", DC_SEV_WARNING,
		"ADD EXCLUDE on an existing table",
		"the index is built and every row checked under ACCESS EXCLUSIVE; there is no NOT VALID or USING INDEX form",
		"create the constraint with the table, or accept the lock in a maintenance window",
		"Atlas PG109; strong_migrations add_exclusion_constraint" },
	[R_TYPE_REWRITE] = { "DC112", "column-type-rewrite", DC_SEV_WARNING,
		"ALTER COLUMN ... TYPE that rewrites the table (binary-coercible changes are not reported)",
		"the table and all its indexes are rewritten under ACCESS EXCLUSIVE, and clients may break",
		"add a new column, backfill in batches with a sync trigger, switch reads, drop the old column (plan --safe)",
		"squawk changing-column-type (which also flags safe varchar/numeric widening); Atlas PG301; strong_migrations change_column" },
	[R_ADD_COLUMN_REWRITE] = { "DC113", "add-column-rewrite", DC_SEV_WARNING,
		"ADD COLUMN with a volatile default, serial/bigserial, identity or stored generated column",
		"every row gets a value: the table and all its indexes are rewritten under ACCESS EXCLUSIVE",
		"add the column without a default, SET DEFAULT, backfill in batches; a trigger instead of a stored generated column",
		"squawk adding-field-with-default (misses bigserial); Atlas PG302, PG309, PG310; strong_migrations add_column_default, add_column_auto_incrementing, add_column_generated_stored" },
	[R_ADD_COLUMN_DOMAIN] = { "DC114", "add-column-domain", DC_SEV_INFO,
		"ADD COLUMN of a constrained domain (or of a user type that may be one)",
		"a domain with CHECK constraints makes PostgreSQL verify every row: a table rewrite under ACCESS EXCLUSIVE",
		"add the column with the base type and a NOT VALID CHECK, validate later; 'plan --live' tells whether the type is a constrained domain",
		"none (squawk misses it)" },
	[R_TABLE_REWRITE] = { "DC115", "table-rewrite", DC_SEV_WARNING,
		"SET LOGGED/UNLOGGED, SET ACCESS METHOD or SET TABLESPACE",
		"the whole table is copied under ACCESS EXCLUSIVE",
		"do it in a maintenance window, or build a new table and swap",
		"Atlas PG307, PG311" },
	[R_VACUUM_FULL] = { "DC116", "vacuum-full-or-cluster", DC_SEV_WARNING,
		"VACUUM FULL or CLUSTER",
		"rewrites the table under ACCESS EXCLUSIVE",
		"pg_repack, or REPACK (CONCURRENTLY) on PostgreSQL 19+",
		"squawk prefer-repack" },
	[R_LOCK_TIMEOUT] = { "DC117", "lock-timeout", DC_SEV_WARNING,
		"a slow-locking statement with no lock_timeout (deployclaw sets gates.lock_timeout unless it is 0), or SET lock_timeout = 0",
		"a DDL statement waiting for its lock queues every later query on the table behind it",
		"keep gates.lock_timeout (default 2s) or SET lock_timeout = '2s' at the top",
		"squawk require-lock-timeout; strong_migrations lock_timeout" },
	[R_STATEMENT_TIMEOUT] = { "DC118", "statement-timeout", DC_SEV_WARNING,
		"no statement_timeout (deployclaw sets gates.statement_timeout unless it is 0), or SET statement_timeout = 0",
		"a runaway statement holds its locks for as long as it runs",
		"keep gates.statement_timeout (default 5m) or SET statement_timeout at the top",
		"squawk require-statement-timeout; strong_migrations statement_timeout" },
	[R_TRIGGER_EXISTING] = { "DC119", "trigger-on-existing-table", DC_SEV_INFO,
		"CREATE TRIGGER on a table this migration did not create",
		"takes SHARE ROW EXCLUSIVE (writes wait, briefly) and changes every later write's cost",
		"make sure the trigger function is cheap; run it under lock_timeout",
		"Atlas PG308" },
	[R_ALTER_DOMAIN_CONSTRAINT] = { "DC120", "alter-domain-add-constraint", DC_SEV_WARNING,
		"ALTER DOMAIN ... ADD CONSTRAINT without NOT VALID",
		"every table using the domain is locked SHARE and scanned",
		"put CHECK constraints on the table columns (NOT VALID + VALIDATE), or add the domain constraint NOT VALID",
		"squawk ban-alter-domain-with-add-constraint" },
	[R_CREATE_DOMAIN_CONSTRAINT] = { "DC121", "create-domain-with-constraint", DC_SEV_INFO,
		"CREATE DOMAIN with a CHECK or NOT NULL constraint (a DEFAULT alone is fine)",
		"domain constraints can't be changed online later: every use is re-validated",
		"CHECK constraints on the table columns",
		"squawk ban-create-domain-with-constraint (which also flags DEFAULT)" },
	[R_REPLICA_IDENTITY] = { "DC122", "replica-identity-full", DC_SEV_INFO,
		"REPLICA IDENTITY FULL or NOTHING",
		"FULL logs whole old rows (WAL volume); NOTHING breaks UPDATE/DELETE replication",
		"REPLICA IDENTITY DEFAULT (primary key) or USING INDEX",
		"Atlas PG314" },
	[R_AUTOVACUUM_OFF] = { "DC123", "autovacuum-disabled", DC_SEV_WARNING,
		"SET (autovacuum_enabled = false) on a table",
		"dead rows and transaction-id age accumulate until a forced anti-wraparound vacuum",
		"tune autovacuum_* thresholds instead of disabling it",
		"Atlas PG320" },
	[R_REFRESH_MV] = { "DC124", "refresh-materialized-view-blocking", DC_SEV_INFO,
		"REFRESH MATERIALIZED VIEW without CONCURRENTLY",
		"rewrites the view under ACCESS EXCLUSIVE: reads wait",
		"REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index)",
		"none" },
	[R_DROP_TABLE] = { "DC201", "drop-table", DC_SEV_WARNING,
		"DROP TABLE of a table this migration did not create",
		"data loss; clients still using it break",
		"remove every code reference first, take a backup, drop in a later migration",
		"squawk ban-drop-table; Atlas DS102" },
	[R_DROP_COLUMN] = { "DC202", "drop-column", DC_SEV_WARNING,
		"ALTER TABLE ... DROP COLUMN",
		"data loss; running application versions still reading or writing it fail",
		"stop using the column in code, deploy, then drop it in a later migration",
		"squawk ban-drop-column; Atlas DS103; strong_migrations remove_column" },
	[R_DROP_SCHEMA] = { "DC203", "drop-schema", DC_SEV_WARNING,
		"DROP SCHEMA",
		"drops every object in it (with CASCADE) - data loss",
		"drop the objects explicitly after a backup",
		"Atlas DS101" },
	[R_DROP_DATABASE] = { "DC204", "drop-database", DC_SEV_ERROR,
		"DROP DATABASE",
		"data loss; every client breaks",
		"don't do it in a migration",
		"squawk ban-drop-database" },
	[R_TRUNCATE_CASCADE] = { "DC205", "truncate-cascade", DC_SEV_WARNING,
		"TRUNCATE ... CASCADE",
		"silently truncates every table referencing it, recursively",
		"list the tables to truncate explicitly",
		"squawk ban-truncate-cascade" },
	[R_DROP_FK] = { "DC206", "drop-foreign-key", DC_SEV_INFO,
		"DROP CONSTRAINT of a foreign key (when the migration shows it is one)",
		"also takes ACCESS EXCLUSIVE on the referenced table; referential integrity is lost",
		"make sure nothing relies on the constraint; run under lock_timeout",
		"Atlas CD101" },
	[R_RENAME_TABLE] = { "DC207", "rename-table", DC_SEV_WARNING,
		"ALTER TABLE ... RENAME TO (unless a view with the old name follows)",
		"running application versions use the old name and fail",
		"create a view with the new name, or new table + dual writes + backfill",
		"squawk renaming-table; Atlas BC101; strong_migrations rename_table" },
	[R_RENAME_COLUMN] = { "DC208", "rename-column", DC_SEV_WARNING,
		"ALTER TABLE ... RENAME COLUMN",
		"running application versions use the old name and fail",
		"add a new column, dual-write, backfill, switch reads, drop the old one",
		"squawk renaming-column; Atlas BC102; strong_migrations rename_column" },
	[R_RENAME_SCHEMA] = { "DC209", "rename-schema", DC_SEV_WARNING,
		"ALTER SCHEMA ... RENAME TO",
		"everything qualified with the old name breaks",
		"don't rename schemas in a migration",
		"strong_migrations rename_schema" },
	[R_DROP_NOT_NULL] = { "DC210", "drop-not-null", DC_SEV_WARNING,
		"ALTER COLUMN ... DROP NOT NULL",
		"clients and PL code may not expect NULL in the column",
		"a sentinel value, or a new column",
		"squawk ban-drop-not-null" },
	[R_ADD_REQUIRED] = { "DC211", "add-required-column", DC_SEV_ERROR,
		"ADD COLUMN ... NOT NULL without a (non-NULL) default on an existing table",
		"fails on any non-empty table; old application code inserting without it breaks",
		"add the column nullable, or NOT NULL DEFAULT <non-volatile value>",
		"squawk adding-required-field (misses NOT NULL DEFAULT NULL, flags bigserial); Atlas MF103" },
	[R_RENAME_ENUM_VALUE] = { "DC212", "rename-enum-value", DC_SEV_WARNING,
		"ALTER TYPE ... RENAME VALUE",
		"running application versions write the old label and fail",
		"add the new value, dual-write, backfill, then stop using the old one",
		"strong_migrations rename_enum_value" },
	[R_ENUM_ORDER] = { "DC213", "enum-value-ordering", DC_SEV_INFO,
		"ALTER TYPE ... ADD VALUE without BEFORE or AFTER",
		"the value sorts last, which may break ORDER BY and < comparisons",
		"ADD VALUE 'x' BEFORE/AFTER 'y'",
		"squawk require-enum-value-ordering" },
	[R_UNIQUE_MAY_FAIL] = { "DC214", "unique-index-may-fail", DC_SEV_INFO,
		"a unique index or constraint on existing columns",
		"the migration fails if existing rows hold duplicates",
		"check for duplicates first (SELECT col, count(*) ... HAVING count(*) > 1) in a verify step",
		"Atlas MF101, MF102" },
	[R_PREFER_BIGINT] = { "DC301", "prefer-bigint-over-int", DC_SEV_WARNING,
		"an int/integer/int4/serial column",
		"2^31 values run out; widening later rewrites the table",
		"bigint, or bigint GENERATED ... AS IDENTITY",
		"squawk prefer-bigint-over-int" },
	[R_PREFER_BIGINT_SMALL] = { "DC302", "prefer-bigint-over-smallint", DC_SEV_WARNING,
		"a smallint/int2/smallserial column",
		"2^15 values run out; widening later rewrites the table",
		"bigint (or integer when the range is certain)",
		"squawk prefer-bigint-over-smallint" },
	[R_PREFER_IDENTITY] = { "DC303", "prefer-identity", DC_SEV_INFO,
		"a serial/bigserial column",
		"serial's sequence ownership and permissions are awkward; identity is the SQL standard",
		"bigint GENERATED BY DEFAULT AS IDENTITY",
		"squawk prefer-identity" },
	[R_PREFER_TEXT] = { "DC304", "prefer-text-over-varchar", DC_SEV_INFO,
		"a varchar(n) column",
		"shrinking the limit later rewrites the table; widening still needs ACCESS EXCLUSIVE",
		"text with CHECK (char_length(col) <= n) added NOT VALID",
		"squawk prefer-text-field" },
	[R_PREFER_TIMESTAMPTZ] = { "DC305", "prefer-timestamptz", DC_SEV_WARNING,
		"a timestamp (without time zone) column",
		"the offset is dropped on store: values are ambiguous across time zones",
		"timestamptz",
		"squawk prefer-timestamp-tz" },
	[R_BAN_CHAR] = { "DC306", "ban-char", DC_SEV_WARNING,
		"a char(n)/character/bpchar column (the 1-byte \"char\" type is not flagged)",
		"blank-padded, never faster than text, usually a mistake",
		"text or varchar",
		"squawk ban-char-field (which also flags \"char\")" },
	[R_PREFER_JSONB] = { "DC307", "prefer-jsonb", DC_SEV_INFO,
		"a json column",
		"json has no equality operator (SELECT DISTINCT, UNION break) and is reparsed on every use",
		"jsonb",
		"strong_migrations add_column_json" },
	[R_IDENT_TOO_LONG] = { "DC308", "identifier-too-long", DC_SEV_ERROR,
		"an identifier longer than 63 bytes",
		"PostgreSQL silently truncates it, so later statements naming it in full miss",
		"a name of at most 63 bytes",
		"squawk identifier-too-long" },
	[R_DUPLICATE_COLUMN] = { "DC309", "duplicate-column", DC_SEV_ERROR,
		"the same column twice in CREATE TABLE, INSERT (cols), UPDATE SET or a view's column list",
		"PostgreSQL refuses it at run time, half way through a rollout",
		"remove the duplicate",
		"squawk ban-duplicate-column-assignments" },
	[R_REQUIRE_SCHEMA] = { "DC310", "require-table-schema", DC_SEV_OFF,
		"an unqualified table name in CREATE/ALTER/DROP TABLE (off by default; contrary to schema tenancy)",
		"the table is found through search_path",
		"schema.table",
		"squawk require-table-schema" },
	[R_INDEX_COLUMNS] = { "DC311", "index-too-many-columns", DC_SEV_INFO,
		"a non-unique index on more than 3 columns",
		"rarely used past its leading columns; costs every write",
		"index the 1-3 most selective columns",
		"strong_migrations add_index_columns" },
	[R_ALIGNMENT] = { "DC312", "column-alignment-padding", DC_SEV_OFF,
		"fixed-width columns in CREATE TABLE ordered so that alignment wastes bytes per row",
		"padding between columns makes every row bigger",
		"order fixed-width columns from widest (8-byte) to narrowest, variable-width last",
		"Atlas PG110 (AR101)" },
	[R_NONTX_IN_BLOCK] = { "DC401", "non-transactional-in-transaction-block", DC_SEV_ERROR,
		"a statement PostgreSQL refuses inside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM, ...) after an explicit BEGIN",
		"PostgreSQL errors: it cannot run inside a transaction block",
		"move it out of BEGIN ... COMMIT, into a phase with 'transaction: false'",
		"squawk ban-concurrent-index-creation-in-transaction; Atlas PG103, TX101" },
	[R_TX_CONTROL_WRAPPED] = { "DC402", "transaction-control-in-wrapped-phase", DC_SEV_ERROR,
		"BEGIN/COMMIT/ROLLBACK inside a phase deployclaw runs in a transaction",
		"it ends deployclaw's transaction early: the history row and the rest of the phase are no longer atomic",
		"remove it: deployclaw wraps every transactional phase; use 'transaction: false' for statements that must run alone",
		"squawk transaction-nesting (with --assume-in-transaction); Atlas TX201" },
	[R_TX_NESTING] = { "DC403", "transaction-nesting", DC_SEV_ERROR,
		"BEGIN inside an open transaction, or COMMIT/ROLLBACK with none open",
		"PostgreSQL warns and ignores it: the statements are not grouped as written",
		"one BEGIN ... COMMIT pair",
		"squawk transaction-nesting" },
	[R_TX_UNCOMMITTED] = { "DC404", "uncommitted-transaction", DC_SEV_ERROR,
		"a BEGIN with no COMMIT before the end of the block",
		"the migration seems to succeed but nothing is committed",
		"add COMMIT",
		"squawk ban-uncommitted-transaction" },
	[R_NONTX_IN_PHASE] = { "DC405", "non-transactional-in-transactional-phase", DC_SEV_WARNING,
		"a statement that cannot run in a transaction inside a transactional phase",
		"deployclaw has to run it alone, committing the statements before it: the phase is no longer atomic",
		"give it a phase of its own with 'transaction: false'",
		"Atlas TX101" },
	[R_ROBUST] = { "DC406", "prefer-robust-statements", DC_SEV_WARNING,
		"CREATE/DROP without IF [NOT] EXISTS in a non-transactional phase",
		"a non-transactional phase that fails half way is re-run from its first statement",
		"CREATE ... IF NOT EXISTS / DROP ... IF EXISTS",
		"squawk prefer-robust-stmts" },
	[R_FOREIGN_SCHEMA] = { "DC501", "foreign-schema", DC_SEV_ERROR,
		"under schema tenancy, a statement naming a schema other than the tenant's (or setting search_path)",
		"the migration runs once per tenant: naming another schema changes it once per tenant, or reaches across tenants",
		"leave names unqualified: deployclaw sets search_path to the tenant's schema",
		"none (deployclaw-specific isolation rule)" },
	[R_MISSING_DOWN] = { "DC502", "missing-down", DC_SEV_WARNING,
		"a phase that changes the schema has no down",
		"a failed rollout can't roll this tenant back (an error when gates.require_down is on)",
		"add a down: the mechanical inverse is suggested where there is one",
		"none (deployclaw-specific)" },
	[R_DOWN_NOT_INVERSE] = { "DC503", "down-not-inverse", DC_SEV_WARNING,
		"the down does not undo a statement of its up whose inverse is mechanical",
		"a rollback leaves the tenant between versions",
		"add the suggested inverse statement to the phase's down",
		"none (deployclaw-specific)" },
};

/* clang-format on */

const dc_lint_rule *dc_lint_rules(size_t *n)
{
	if (n)
		*n = R_COUNT;
	return rules;
}

const dc_lint_rule *dc_lint__rule(int idx)
{
	return &rules[idx];
}

int dc_lint__rule_index(const char *id_or_name)
{
	int i;

	for (i = 0; i < R_COUNT; i++)
		if (strcasecmp(rules[i].id, id_or_name) == 0 ||
		    strcasecmp(rules[i].name, id_or_name) == 0)
			return i;
	return -1;
}

const dc_lint_rule *dc_lint_rule_find(const char *id_or_name)
{
	int i = id_or_name ? dc_lint__rule_index(id_or_name) : -1;

	return i < 0 ? NULL : &rules[i];
}

static const char *const sev_names[] = { "off", "info", "warning", "error" };

const char *dc_severity_name(dc_severity sev)
{
	return (unsigned)sev < 4 ? sev_names[sev] : "unknown";
}

int dc_severity_parse(const char *s, dc_severity *out)
{
	int i;

	for (i = 0; s && i < 4; i++)
		if (strcasecmp(s, sev_names[i]) == 0) {
			*out = (dc_severity)i;
			return 0;
		}
	return DC_EINVAL;
}

void dc_lint_config_init(dc_lint_config *cfg)
{
	int i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < R_COUNT; i++)
		cfg->severity[i] = rules[i].severity;
	cfg->lock_timeout_ms = 2000;
	cfg->statement_timeout_ms = 300000;
	cfg->require_down = false;
}

int dc_lint_config_set(dc_lint_config *cfg, const char *rule, dc_severity sev, dc_error *err)
{
	int i = rule ? dc_lint__rule_index(rule) : -1;

	if (i < 0)
		return dc_error_set(err, DC_ENOTFOUND, "unknown lint rule '%s'", rule ? rule : "");
	cfg->severity[i] = sev;
	return 0;
}

int dc_lint_config_from(dc_lint_config *lc, const dc_config *cfg, dc_error *err)
{
	const char *names[2 * R_COUNT];
	size_t i;
	int k;

	dc_lint_config_init(lc);
	if (!cfg)
		return 0;
	lc->schema_tenancy =
	        cfg->engine == DC_ENGINE_POSTGRES && cfg->tenancy.model == DC_TENANCY_SCHEMA;
	lc->lock_timeout_ms = cfg->gates.lock_timeout_ms;
	lc->statement_timeout_ms = cfg->gates.statement_timeout_ms;
	lc->require_down = cfg->gates.require_down;
	for (k = 0; k < R_COUNT; k++) {
		names[2 * k] = rules[k].id;
		names[2 * k + 1] = rules[k].name;
	}
	for (i = 0; i < cfg->lint.nrules; i++) {
		const struct dc_lint_rule_setting *r = &cfg->lint.rules[i];

		k = dc_lint__rule_index(r->rule);
		if (k < 0) {
			const char *hint = dc_suggest(r->rule, names, 2 * R_COUNT);

			if (hint)
				return dc_error_set_at(
				        err, DC_ECONFIG, cfg->path, r->line, r->col,
				        "lint.rules.%s: unknown rule (did you mean '%s'?)", r->rule,
				        hint);
			return dc_error_set_at(
			        err, DC_ECONFIG, cfg->path, r->line, r->col,
			        "lint.rules.%s: unknown rule (see docs/lint-rules.md)", r->rule);
		}
		lc->severity[k] = (dc_severity)r->severity;
	}
	return 0;
}
