/*
 * The lock table: PostgreSQL 15's lock level, second relation and effect for
 * every statement kind and ALTER TABLE subcommand the model knows, from
 * docs/reference/pg15-locks.md (checked on a 15.18 server). The model
 * (model.c) only decides which row a parse tree is; every lock level and
 * rewrite/scan answer comes from this one table.
 */
#include <deployclaw/analysis.h>

#include "analysis_internal.h"

#define AE  DC_LOCK_ACCESS_EXCLUSIVE
#define EX  DC_LOCK_EXCLUSIVE
#define SRE DC_LOCK_SHARE_ROW_EXCLUSIVE
#define SH  DC_LOCK_SHARE
#define SUE DC_LOCK_SHARE_UPDATE_EXCLUSIVE
#define RE  DC_LOCK_ROW_EXCLUSIVE
#define RS  DC_LOCK_ROW_SHARE
#define AS  DC_LOCK_ACCESS_SHARE
#define NO  DC_LOCK_NONE

#define NONE  DC_EFFECT_NONE
#define SCAN  DC_EFFECT_SCAN
#define MAYRW DC_EFFECT_MAY_REWRITE
#define RW    DC_EFFECT_REWRITE

/* clang-format off */
static const dc_lock_rule lock_table[OP_COUNT] = {
	/* 4.2 ALTER TABLE subcommands */
	[OP_ADD_COLUMN] = { OP_ADD_COLUMN, "ADD COLUMN (no default)", AE, NO, NULL, NONE, true, NULL },
	[OP_ADD_COLUMN_DEFAULT] = { OP_ADD_COLUMN_DEFAULT, "ADD COLUMN with a non-volatile default", AE, NO, NULL, NONE, true,
		"fast default stored in the catalog (PostgreSQL 11+)" },
	[OP_ADD_COLUMN_VOLATILE] = { OP_ADD_COLUMN_VOLATILE, "ADD COLUMN with a volatile default", AE, NO, NULL, RW, true,
		"every row gets its own value: table and all indexes rewritten" },
	[OP_ADD_COLUMN_SERIAL] = { OP_ADD_COLUMN_SERIAL, "ADD COLUMN serial/bigserial", AE, NO, "new sequence", RW, true,
		"nextval() default is volatile: table rewritten" },
	[OP_ADD_COLUMN_IDENTITY] = { OP_ADD_COLUMN_IDENTITY, "ADD COLUMN ... GENERATED AS IDENTITY", AE, NO, "new sequence", RW, true, NULL },
	[OP_ADD_COLUMN_GENERATED] = { OP_ADD_COLUMN_GENERATED, "ADD COLUMN ... GENERATED ALWAYS AS (...) STORED", AE, NO, NULL, RW, true, NULL },
	[OP_ADD_COLUMN_DOMAIN] = { OP_ADD_COLUMN_DOMAIN, "ADD COLUMN of a user-defined type", AE, NO, NULL, MAYRW, true,
		"a domain with CHECK constraints rewrites the table (rows verified); plain enum/composite types do not" },
	[OP_ADD_COLUMN_NOT_NULL] = { OP_ADD_COLUMN_NOT_NULL, "ADD COLUMN ... NOT NULL without a default", AE, NO, NULL, NONE, true,
		"fails on a non-empty table" },
	[OP_ADD_COLUMN_REFERENCES] = { OP_ADD_COLUMN_REFERENCES, "ADD COLUMN ... REFERENCES", AE, SRE, "referenced table", NONE, true,
		"the new column is all NULL: nothing to validate" },
	[OP_ADD_COLUMN_UNIQUE] = { OP_ADD_COLUMN_UNIQUE, "ADD COLUMN ... UNIQUE/PRIMARY KEY", AE, SH, "new index", SCAN, true, "index build" },
	[OP_DROP_COLUMN] = { OP_DROP_COLUMN, "DROP COLUMN", AE, NO, NULL, NONE, true,
		"column marked dropped; dependent indexes and constraints dropped" },
	[OP_TYPE_REWRITE] = { OP_TYPE_REWRITE, "ALTER COLUMN TYPE (not binary-coercible)", AE, NO, "indexes on the column", RW, true,
		"table and all indexes rewritten" },
	[OP_TYPE_NO_REWRITE] = { OP_TYPE_NO_REWRITE, "ALTER COLUMN TYPE (binary-coercible)", AE, NO, NULL, NONE, true,
		"varchar(n)->text, varchar(n)->varchar(m>n), numeric(p,s)->numeric(p'>p,s): catalog only" },
	[OP_TYPE_MAY_REWRITE] = { OP_TYPE_MAY_REWRITE, "ALTER COLUMN TYPE (old type unknown)", AE, NO, "indexes on the column", MAYRW, true,
		"rewrites unless the change is binary-coercible (varchar(n)->text, widening varchar or numeric precision)" },
	[OP_SET_DEFAULT] = { OP_SET_DEFAULT, "ALTER COLUMN SET DEFAULT", AE, NO, NULL, NONE, true, NULL },
	[OP_DROP_DEFAULT] = { OP_DROP_DEFAULT, "ALTER COLUMN DROP DEFAULT", AE, NO, NULL, NONE, true, NULL },
	[OP_SET_NOT_NULL] = { OP_SET_NOT_NULL, "ALTER COLUMN SET NOT NULL", AE, NO, NULL, SCAN, true,
		"full scan, skipped when a valid CHECK (col IS NOT NULL) exists (PostgreSQL 12+)" },
	[OP_DROP_NOT_NULL] = { OP_DROP_NOT_NULL, "ALTER COLUMN DROP NOT NULL", AE, NO, NULL, NONE, true, NULL },
	[OP_SET_STATISTICS] = { OP_SET_STATISTICS, "ALTER COLUMN SET STATISTICS / SET (attribute options)", SUE, NO, NULL, NONE, true, NULL },
	[OP_SET_STORAGE] = { OP_SET_STORAGE, "ALTER COLUMN SET STORAGE / SET COMPRESSION", AE, NO, NULL, NONE, true, "affects future rows only" },
	[OP_ADD_IDENTITY] = { OP_ADD_IDENTITY, "ALTER COLUMN ADD GENERATED AS IDENTITY", AE, NO, "new sequence", NONE, true, NULL },
	[OP_ADD_CHECK] = { OP_ADD_CHECK, "ADD CONSTRAINT CHECK", AE, NO, NULL, SCAN, true, "every row checked under the lock" },
	[OP_ADD_CHECK_NOT_VALID] = { OP_ADD_CHECK_NOT_VALID, "ADD CONSTRAINT CHECK ... NOT VALID", AE, NO, NULL, NONE, true, "brief" },
	[OP_ADD_FK] = { OP_ADD_FK, "ADD FOREIGN KEY", SRE, SRE, "referenced table", SCAN, true,
		"both tables scanned, writes blocked on both" },
	[OP_ADD_FK_NOT_VALID] = { OP_ADD_FK_NOT_VALID, "ADD FOREIGN KEY ... NOT VALID", SRE, SRE, "referenced table", NONE, true, NULL },
	[OP_VALIDATE] = { OP_VALIDATE, "VALIDATE CONSTRAINT", SUE, RS, "referenced table (foreign keys)", SCAN, true,
		"reads and writes continue" },
	[OP_ADD_UNIQUE] = { OP_ADD_UNIQUE, "ADD UNIQUE", AE, SH, "new index", SCAN, true, "index built under ACCESS EXCLUSIVE" },
	[OP_ADD_PK] = { OP_ADD_PK, "ADD PRIMARY KEY", AE, SH, "new index", SCAN, true,
		"index built under ACCESS EXCLUSIVE; nullable columns also get a SET NOT NULL scan" },
	[OP_ADD_EXCLUDE] = { OP_ADD_EXCLUDE, "ADD EXCLUDE", AE, SH, "new index", SCAN, true, "no NOT VALID or USING INDEX form exists" },
	[OP_ADD_USING_INDEX] = { OP_ADD_USING_INDEX, "ADD UNIQUE/PRIMARY KEY USING INDEX", AE, SUE, "index", NONE, true,
		"brief; PRIMARY KEY checks its columns are NOT NULL" },
	[OP_DROP_CONSTRAINT] = { OP_DROP_CONSTRAINT, "DROP CONSTRAINT", AE, NO, NULL, NONE, true,
		"a foreign key also takes ACCESS EXCLUSIVE on the referenced table" },
	[OP_ALTER_CONSTRAINT] = { OP_ALTER_CONSTRAINT, "ALTER CONSTRAINT", AE, NO, NULL, NONE, true, NULL },
	[OP_RENAME] = { OP_RENAME, "RENAME / SET SCHEMA", AE, NO, NULL, NONE, true, NULL },
	[OP_TRIGGER_TOGGLE] = { OP_TRIGGER_TOGGLE, "ENABLE/DISABLE TRIGGER", SRE, NO, NULL, NONE, true, NULL },
	[OP_RULE_RLS] = { OP_RULE_RLS, "ENABLE/DISABLE RULE or ROW LEVEL SECURITY", AE, NO, NULL, NONE, true, NULL },
	[OP_CLUSTER_ON] = { OP_CLUSTER_ON, "CLUSTER ON / SET WITHOUT CLUSTER", SUE, NO, NULL, NONE, true, NULL },
	[OP_SET_RELOPTIONS_LIGHT] = { OP_SET_RELOPTIONS_LIGHT, "SET/RESET (fillfactor, autovacuum_*, toast.*, parallel_workers)", SUE, NO, NULL, NONE, true, NULL },
	[OP_SET_RELOPTIONS] = { OP_SET_RELOPTIONS, "SET/RESET (other storage parameters)", AE, NO, NULL, NONE, true, NULL },
	[OP_SET_LOGGED] = { OP_SET_LOGGED, "SET LOGGED / SET UNLOGGED", AE, NO, NULL, RW, true, NULL },
	[OP_SET_ACCESS_METHOD] = { OP_SET_ACCESS_METHOD, "SET ACCESS METHOD", AE, NO, NULL, RW, true, "same access method: no-op" },
	[OP_SET_TABLESPACE] = { OP_SET_TABLESPACE, "SET TABLESPACE", AE, NO, NULL, RW, true,
		"full copy of the data files (same tablespace: no-op)" },
	[OP_INHERIT] = { OP_INHERIT, "INHERIT / NO INHERIT", AE, SUE, "parent", NONE, true, NULL },
	[OP_ALTER_TABLE_OTHER] = { OP_ALTER_TABLE_OTHER, "ALTER TABLE (OF, OWNER TO, other)", AE, NO, NULL, NONE, true, NULL },
	[OP_REPLICA_IDENTITY] = { OP_REPLICA_IDENTITY, "REPLICA IDENTITY", AE, NO, NULL, NONE, true, NULL },
	[OP_ATTACH_PARTITION] = { OP_ATTACH_PARTITION, "ATTACH PARTITION", SUE, AE, "partition", SCAN, true,
		"the partition is scanned unless a valid CHECK implies the bound; the default partition is locked too" },
	[OP_DETACH_PARTITION] = { OP_DETACH_PARTITION, "DETACH PARTITION", AE, AE, "partition", NONE, true, NULL },
	[OP_DETACH_CONCURRENTLY] = { OP_DETACH_CONCURRENTLY, "DETACH PARTITION ... CONCURRENTLY", SUE, SUE, "partition", NONE, false,
		"two transactions; ACCESS EXCLUSIVE on the partition only at the end" },
	/* 4.3 other statements */
	[OP_CREATE_INDEX] = { OP_CREATE_INDEX, "CREATE INDEX", SH, NO, NULL, SCAN, true, "writes blocked for the whole build" },
	[OP_CREATE_INDEX_CONCURRENTLY] = { OP_CREATE_INDEX_CONCURRENTLY, "CREATE INDEX CONCURRENTLY", SUE, NO, NULL, SCAN, false,
		"two scans; a failure leaves an INVALID index" },
	[OP_CREATE_INDEX_ONLY] = { OP_CREATE_INDEX_ONLY, "CREATE INDEX ON ONLY (partitioned parent)", SH, NO, NULL, NONE, true,
		"creates an invalid parent index; CONCURRENTLY is not supported here" },
	[OP_DROP_INDEX] = { OP_DROP_INDEX, "DROP INDEX", AE, AE, "table", NONE, true, NULL },
	[OP_DROP_INDEX_CONCURRENTLY] = { OP_DROP_INDEX_CONCURRENTLY, "DROP INDEX CONCURRENTLY", SUE, SUE, "table", NONE, false, NULL },
	[OP_REINDEX] = { OP_REINDEX, "REINDEX", SH, AE, "each index", SCAN, true,
		"SHARE on the table (writes wait) and ACCESS EXCLUSIVE on each index (reads using it wait)" },
	[OP_REINDEX_CONCURRENTLY] = { OP_REINDEX_CONCURRENTLY, "REINDEX CONCURRENTLY", SUE, NO, NULL, SCAN, false, NULL },
	[OP_ALTER_INDEX] = { OP_ALTER_INDEX, "ALTER INDEX (RENAME, SET storage parameters)", SUE, NO, NULL, NONE, true, NULL },
	[OP_ALTER_INDEX_TABLESPACE] = { OP_ALTER_INDEX_TABLESPACE, "ALTER INDEX SET TABLESPACE", AE, NO, NULL, RW, true, NULL },
	[OP_CREATE_TRIGGER] = { OP_CREATE_TRIGGER, "CREATE TRIGGER", SRE, NO, NULL, NONE, true, NULL },
	[OP_DROP_TRIGGER] = { OP_DROP_TRIGGER, "DROP TRIGGER", AE, NO, NULL, NONE, true, NULL },
	[OP_CREATE_POLICY] = { OP_CREATE_POLICY, "CREATE POLICY", AE, NO, NULL, NONE, true, NULL },
	[OP_CREATE_TABLE] = { OP_CREATE_TABLE, "CREATE TABLE", NO, SRE, "referenced table", NONE, true, NULL },
	[OP_CREATE_TABLE_AS] = { OP_CREATE_TABLE_AS, "CREATE TABLE AS / SELECT INTO", NO, NO, NULL, NONE, true,
		"reads its source tables (ACCESS SHARE)" },
	[OP_CREATE_VIEW] = { OP_CREATE_VIEW, "CREATE VIEW", NO, NO, NULL, NONE, true, "ACCESS SHARE on its base tables" },
	[OP_CREATE_STATISTICS] = { OP_CREATE_STATISTICS, "CREATE STATISTICS", SUE, NO, NULL, NONE, true, NULL },
	[OP_COMMENT] = { OP_COMMENT, "COMMENT ON", SUE, NO, NULL, NONE, true, NULL },
	[OP_GRANT] = { OP_GRANT, "GRANT / REVOKE", NO, NO, NULL, NONE, true, "catalog row update, no relation lock" },
	[OP_TRUNCATE] = { OP_TRUNCATE, "TRUNCATE", AE, NO, NULL, RW, true, "new relfilenodes; CASCADE extends to referencing tables" },
	[OP_DROP_TABLE] = { OP_DROP_TABLE, "DROP TABLE", AE, NO, NULL, NONE, true, NULL },
	[OP_DROP_OTHER] = { OP_DROP_OTHER, "DROP (view, sequence, type, ...)", AE, NO, NULL, NONE, true, NULL },
	[OP_CLUSTER] = { OP_CLUSTER, "CLUSTER", AE, NO, NULL, RW, true, NULL },
	[OP_VACUUM_FULL] = { OP_VACUUM_FULL, "VACUUM FULL", AE, NO, NULL, RW, false, NULL },
	[OP_VACUUM] = { OP_VACUUM, "VACUUM", SUE, NO, NULL, SCAN, false, NULL },
	[OP_ANALYZE] = { OP_ANALYZE, "ANALYZE", SUE, NO, NULL, SCAN, true, NULL },
	[OP_REFRESH_MV] = { OP_REFRESH_MV, "REFRESH MATERIALIZED VIEW", AE, NO, NULL, RW, true, NULL },
	[OP_REFRESH_MV_CONCURRENTLY] = { OP_REFRESH_MV_CONCURRENTLY, "REFRESH MATERIALIZED VIEW CONCURRENTLY", EX, NO, NULL, SCAN, true,
		"needs a unique index" },
	[OP_LOCK_TABLE] = { OP_LOCK_TABLE, "LOCK TABLE", AE, NO, NULL, NONE, true, "ACCESS EXCLUSIVE unless a mode is given" },
	[OP_ENUM_ADD_VALUE] = { OP_ENUM_ADD_VALUE, "ALTER TYPE ... ADD VALUE", NO, NO, NULL, NONE, true,
		"the new value can't be used before commit" },
	[OP_DOMAIN_ADD_CONSTRAINT] = { OP_DOMAIN_ADD_CONSTRAINT, "ALTER DOMAIN ... ADD CONSTRAINT", NO, SH, "every table using the domain", SCAN, true,
		"each table using the domain is scanned" },
	[OP_DOMAIN_ADD_CONSTRAINT_NOT_VALID] = { OP_DOMAIN_ADD_CONSTRAINT_NOT_VALID, "ALTER DOMAIN ... ADD CONSTRAINT ... NOT VALID", NO, NO, NULL, NONE, true, NULL },
	[OP_ALTER_SEQUENCE] = { OP_ALTER_SEQUENCE, "ALTER SEQUENCE", SRE, NO, NULL, NONE, true, NULL },
	[OP_DML] = { OP_DML, "INSERT / UPDATE / DELETE / MERGE", RE, NO, NULL, NONE, true, "row locks on the rows it changes" },
	[OP_SELECT] = { OP_SELECT, "SELECT", AS, NO, NULL, NONE, true, NULL },
	[OP_CREATE_OTHER] = { OP_CREATE_OTHER, "CREATE (function, type, schema, sequence, extension, ...)", NO, NO, NULL, NONE, true, NULL },
	[OP_SET] = { OP_SET, "SET / RESET", NO, NO, NULL, NONE, true, NULL },
	[OP_TRANSACTION] = { OP_TRANSACTION, "transaction control", NO, NO, NULL, NONE, true, NULL },
	[OP_NON_TRANSACTIONAL] = { OP_NON_TRANSACTIONAL, "statement refused inside a transaction block", NO, NO, NULL, NONE, false, NULL },
	[OP_OTHER] = { OP_OTHER, "other statement", NO, NO, NULL, NONE, true, "not in the lock table: check the manual" },
};

/* clang-format on */

const dc_lock_rule *dc_pg_lock_table(size_t *n)
{
	if (n)
		*n = OP_COUNT;
	return lock_table;
}

const dc_lock_rule *dc_analysis__rule(int op)
{
	if (op < 0 || op >= OP_COUNT)
		op = OP_OTHER;
	return &lock_table[op];
}

static const char *const lock_names[] = {
	"none",  "ACCESS SHARE",        "ROW SHARE", "ROW EXCLUSIVE",    "SHARE UPDATE EXCLUSIVE",
	"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE",
};

const char *dc_lock_mode_name(dc_lock_mode mode)
{
	if ((unsigned)mode >= sizeof(lock_names) / sizeof(lock_names[0]))
		return "unknown";
	return lock_names[mode];
}

bool dc_lock_blocks_reads(dc_lock_mode mode)
{
	return mode == DC_LOCK_ACCESS_EXCLUSIVE;
}

bool dc_lock_blocks_writes(dc_lock_mode mode)
{
	return mode >= DC_LOCK_SHARE;
}

const char *dc_effect_name(dc_effect effect)
{
	switch (effect) {
	case DC_EFFECT_NONE:
		return "catalog only";
	case DC_EFFECT_SCAN:
		return "scan";
	case DC_EFFECT_MAY_REWRITE:
		return "may rewrite";
	case DC_EFFECT_REWRITE:
		return "rewrite";
	default:
		return "unknown";
	}
}
