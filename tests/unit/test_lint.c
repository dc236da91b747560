/*
 * Lint rules: per rule, statements that must fire it and statements that
 * must not (quoted identifiers, schema-qualified names, IF [NOT] EXISTS,
 * BEGIN/COMMIT, multi-statement files, dollar-quoted bodies); ignore
 * comments; migrations with phases and downs; the output formats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <deployclaw/analysis.h>
#include <deployclaw/config.h>
#include <deployclaw/migration.h>

#include "analysis/lint_internal.h"

enum {
	CFG_DEFAULT,
	CFG_SCHEMA,
	CFG_NO_TIMEOUTS,
	CFG_ALL_ON
};

typedef struct lint_case {
	const char *rule; /* id */
	bool fires;
	int cfg;
	const char *sql;
} lint_case;

/* clang-format off */
static const lint_case cases[] = {
	/* syntax */
	{ "DC000", true, 0, "ALTER TABLE t ADD COLUMN;" },
	{ "DC000", false, 0, "SELECT 1;" },
	/* ignores */
	{ "DC001", true, 0, "-- deployclaw:ignore DC202\nSELECT 1;" },
	{ "DC001", true, 0, "-- deployclaw:ignore no-such-rule\nSELECT 1;" },
	{ "DC001", true, 0, "SELECT 1;\n-- deployclaw:ignore DC202\n" },
	{ "DC001", false, 0, "-- deployclaw:ignore DC202\nALTER TABLE t DROP COLUMN c;" },
	{ "DC202", false, 0, "-- deployclaw:ignore drop-column\nALTER TABLE t DROP COLUMN c;" },
	{ "DC202", true, 0, "-- deployclaw:ignore DC202\nSELECT 1;\nALTER TABLE t DROP COLUMN c;" },
	/* DC101 */
	{ "DC101", true, 0, "CREATE INDEX i ON t (a);" },
	{ "DC101", true, 0, "CREATE INDEX IF NOT EXISTS i ON app.\"Users\" (a);" },
	{ "DC101", true, 0, "CREATE TABLE a (id bigint);\nCREATE INDEX i ON b (x);" },
	{ "DC101", false, 0, "CREATE TABLE t (a bigint);\nCREATE INDEX i ON t (a);" },
	{ "DC101", false, 0, "CREATE INDEX i ON ONLY parent (a);" },
	{ "DC101", false, 0, "CREATE INDEX CONCURRENTLY i ON t (a);" },
	/* DC102 */
	{ "DC102", true, 0, "DROP INDEX i;" },
	{ "DC102", true, 0, "DROP INDEX IF EXISTS app.i;" },
	{ "DC102", false, 0, "DROP INDEX CONCURRENTLY i;" },
	{ "DC102", false, 0, "CREATE INDEX CONCURRENTLY i ON t (a);\nDROP INDEX i;" },
	/* DC103 */
	{ "DC103", true, 0, "REINDEX INDEX i;" },
	{ "DC103", true, 0, "REINDEX TABLE app.t;" },
	{ "DC103", false, 0, "REINDEX INDEX CONCURRENTLY i;" },
	{ "DC103", false, 0, "REINDEX (CONCURRENTLY) TABLE t;" },
	/* DC104 */
	{ "DC104", true, 0, "ALTER TABLE p DETACH PARTITION p1;" },
	{ "DC104", false, 0, "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;" },
	{ "DC104", false, 0, "ALTER TABLE p DETACH PARTITION p1 FINALIZE;" },
	/* DC105 */
	{ "DC105", true, 0, "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id);" },
	{ "DC105", true, 0, "ALTER TABLE \"Orders\" ADD FOREIGN KEY (u) REFERENCES app.u (id);" },
	{ "DC105", false, 0, "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id) NOT VALID;" },
	{ "DC105", false, 0, "CREATE TABLE o (id bigint, u bigint REFERENCES u (id));" },
	{ "DC105", false, 0, "CREATE TABLE o (u bigint);\nALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id);" },
	{ "DC105", false, 0, "ALTER TABLE o ADD COLUMN u bigint REFERENCES u (id);" },
	/* DC106 */
	{ "DC106", true, 0, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);" },
	{ "DC106", false, 0, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;" },
	{ "DC106", false, 0, "CREATE TABLE t (a bigint);\nALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);" },
	/* DC107 */
	{ "DC107", true, 0, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT c;" },
	{ "DC107", false, 0, "ALTER TABLE t VALIDATE CONSTRAINT c;" },
	/* DC108 */
	{ "DC108", true, 0, "ALTER TABLE t ALTER COLUMN a SET NOT NULL;" },
	{ "DC108", true, 0, "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL);\nALTER TABLE t ALTER COLUMN b SET NOT NULL;" },
	{ "DC108", false, 0, "CREATE TABLE t (a bigint);\nALTER TABLE t ALTER COLUMN a SET NOT NULL;" },
	/* DC109 */
	{ "DC109", true, 0, "ALTER TABLE t ADD PRIMARY KEY (id);" },
	{ "DC109", true, 0, "ALTER TABLE t ADD COLUMN id bigint PRIMARY KEY;" },
	{ "DC109", false, 0, "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX t_pk;" },
	/* DC110 */
	{ "DC110", true, 0, "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a);" },
	{ "DC110", true, 0, "ALTER TABLE t ADD COLUMN a text UNIQUE;" },
	{ "DC110", false, 0, "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX t_u;" },
	/* DC111 */
	{ "DC111", true, 0, "ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (r WITH &&);" },
	{ "DC111", false, 0, "CREATE TABLE t (r tstzrange, EXCLUDE USING gist (r WITH &&));" },
	/* DC112: rewrites, and the binary-coercible changes it must not report */
	{ "DC112", true, 0, "ALTER TABLE t ALTER COLUMN a TYPE bigint USING a::bigint;" },
	{ "DC112", true, 0, "CREATE TABLE t (a int);\nCOMMIT;\nALTER TABLE x ALTER COLUMN a TYPE text;" },
	{ "DC112", false, 0, "CREATE TABLE t (a varchar(10));\nALTER TABLE t ALTER COLUMN a TYPE text;" },
	{ "DC112", false, 0, "CREATE TABLE t (a bigint);\nALTER TABLE t ALTER COLUMN a TYPE bigint;" },
	/* DC113 */
	{ "DC113", true, 0, "ALTER TABLE t ADD COLUMN id uuid DEFAULT gen_random_uuid();" },
	{ "DC113", true, 0, "ALTER TABLE t ADD COLUMN n bigserial;" },
	{ "DC113", true, 0, "ALTER TABLE t ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY;" },
	{ "DC113", true, 0, "ALTER TABLE t ADD COLUMN g bigint GENERATED ALWAYS AS (a * 2) STORED;" },
	{ "DC113", false, 0, "ALTER TABLE t ADD COLUMN a bigint DEFAULT -1;" },
	{ "DC113", false, 0, "ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now();" },
	{ "DC113", false, 0, "ALTER TABLE t ADD COLUMN a date DEFAULT CURRENT_DATE;" },
	{ "DC113", false, 0, "ALTER TABLE t ADD COLUMN a jsonb DEFAULT '{}'::jsonb;" },
	/* DC114 */
	{ "DC114", true, 0, "CREATE DOMAIN pos AS bigint CHECK (VALUE > 0);\nALTER TABLE t ADD COLUMN p pos;" },
	{ "DC114", true, 0, "ALTER TABLE t ADD COLUMN p app.money_amount;" },
	{ "DC114", false, 0, "CREATE TYPE mood AS ENUM ('a', 'b');\nALTER TABLE t ADD COLUMN m mood;" },
	{ "DC114", false, 0, "ALTER TABLE t ADD COLUMN a text;" },
	/* DC115 */
	{ "DC115", true, 0, "ALTER TABLE t SET LOGGED;" },
	{ "DC115", true, 0, "ALTER TABLE t SET TABLESPACE fast;" },
	{ "DC115", false, 0, "ALTER TABLE t SET (fillfactor = 70);" },
	/* DC116 */
	{ "DC116", true, 0, "VACUUM FULL t;" },
	{ "DC116", true, 0, "CLUSTER t USING t_pkey;" },
	{ "DC116", false, 0, "VACUUM t;" },
	/* DC117/DC118 */
	{ "DC117", true, CFG_NO_TIMEOUTS, "ALTER TABLE t ADD COLUMN a text;" },
	{ "DC117", true, 0, "SET lock_timeout = 0;" },
	{ "DC117", false, 0, "ALTER TABLE t ADD COLUMN a text;" },
	{ "DC117", false, CFG_NO_TIMEOUTS, "SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN a text;" },
	{ "DC117", false, CFG_NO_TIMEOUTS, "CREATE TABLE t (a bigint);" },
	{ "DC118", true, CFG_NO_TIMEOUTS, "DROP INDEX CONCURRENTLY i;" },
	{ "DC118", true, 0, "SET statement_timeout TO 0;" },
	{ "DC118", false, CFG_NO_TIMEOUTS, "SET statement_timeout = '5min';\nALTER TABLE t ADD COLUMN a text;" },
	/* DC119 */
	{ "DC119", true, 0, "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();" },
	{ "DC119", false, 0, "CREATE TABLE t (a bigint);\nCREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();" },
	/* DC120 */
	{ "DC120", true, 0, "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0);" },
	{ "DC120", false, 0, "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0) NOT VALID;" },
	/* DC121 */
	{ "DC121", true, 0, "CREATE DOMAIN d AS text CHECK (VALUE <> '');" },
	{ "DC121", false, 0, "CREATE DOMAIN d AS text DEFAULT 'x';" },
	/* DC122 */
	{ "DC122", true, 0, "ALTER TABLE t REPLICA IDENTITY FULL;" },
	{ "DC122", false, 0, "ALTER TABLE t REPLICA IDENTITY DEFAULT;" },
	/* DC123 */
	{ "DC123", true, 0, "ALTER TABLE t SET (autovacuum_enabled = false);" },
	{ "DC123", false, 0, "ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.01);" },
	/* DC124 */
	{ "DC124", true, 0, "REFRESH MATERIALIZED VIEW mv;" },
	{ "DC124", false, 0, "REFRESH MATERIALIZED VIEW CONCURRENTLY mv;" },
	/* DC201 */
	{ "DC201", true, 0, "DROP TABLE t;" },
	{ "DC201", true, 0, "DROP TABLE IF EXISTS app.\"T\";" },
	{ "DC201", false, 0, "CREATE TABLE tmp (a bigint);\nDROP TABLE tmp;" },
	{ "DC201", false, 0, "DROP VIEW v;" },
	/* DC202 */
	{ "DC202", true, 0, "ALTER TABLE t DROP COLUMN c;" },
	{ "DC202", true, 0, "ALTER TABLE app.t DROP COLUMN IF EXISTS \"C\";" },
	{ "DC202", false, 0, "ALTER TABLE t DROP CONSTRAINT c;" },
	/* DC203-DC205 */
	{ "DC203", true, 0, "DROP SCHEMA s CASCADE;" },
	{ "DC203", false, 0, "DROP TYPE s;" },
	{ "DC204", true, 0, "DROP DATABASE d;" },
	{ "DC204", false, 0, "DROP TABLE d;" },
	{ "DC205", true, 0, "TRUNCATE t CASCADE;" },
	{ "DC205", false, 0, "TRUNCATE t;" },
	/* DC206 */
	{ "DC206", true, 0, "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id) NOT VALID;\nALTER TABLE o DROP CONSTRAINT fk;" },
	{ "DC206", false, 0, "ALTER TABLE o DROP CONSTRAINT chk;" },
	/* DC207 */
	{ "DC207", true, 0, "ALTER TABLE a RENAME TO b;" },
	{ "DC207", false, 0, "ALTER TABLE a RENAME TO b;\nCREATE VIEW a AS SELECT * FROM b;" },
	{ "DC207", false, 0, "ALTER INDEX a RENAME TO b;" },
	/* DC208-DC210 */
	{ "DC208", true, 0, "ALTER TABLE t RENAME COLUMN a TO b;" },
	{ "DC208", false, 0, "CREATE TABLE t (a bigint);\nALTER TABLE t RENAME COLUMN a TO b;" },
	{ "DC209", true, 0, "ALTER SCHEMA s RENAME TO s2;" },
	{ "DC209", false, 0, "ALTER TABLE s RENAME COLUMN x TO y;" },
	{ "DC210", true, 0, "ALTER TABLE t ALTER COLUMN a DROP NOT NULL;" },
	{ "DC210", false, 0, "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;" },
	/* DC211 */
	{ "DC211", true, 0, "ALTER TABLE t ADD COLUMN a text NOT NULL;" },
	{ "DC211", true, 0, "ALTER TABLE t ADD COLUMN a text NOT NULL DEFAULT NULL;" },
	{ "DC211", false, 0, "ALTER TABLE t ADD COLUMN a text NOT NULL DEFAULT '';" },
	{ "DC211", false, 0, "ALTER TABLE t ADD COLUMN a bigserial NOT NULL;" },
	{ "DC211", false, 0, "CREATE TABLE t (a bigint);\nALTER TABLE t ADD COLUMN b text NOT NULL;" },
	/* DC212/DC213 */
	{ "DC212", true, 0, "ALTER TYPE mood RENAME VALUE 'a' TO 'b';" },
	{ "DC212", false, 0, "ALTER TYPE mood ADD VALUE 'c' AFTER 'b';" },
	{ "DC213", true, 0, "ALTER TYPE mood ADD VALUE 'c';" },
	{ "DC213", false, 0, "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'c' BEFORE 'a';" },
	/* DC214 */
	{ "DC214", true, 0, "CREATE UNIQUE INDEX CONCURRENTLY u ON t (a);" },
	{ "DC214", false, 0, "CREATE TABLE t (a bigint);\nCREATE UNIQUE INDEX u ON t (a);" },
	/* types */
	{ "DC301", true, 0, "CREATE TABLE t (a integer);" },
	{ "DC301", true, 0, "ALTER TABLE t ADD COLUMN a int4;" },
	{ "DC301", true, 0, "CREATE TABLE t (a serial);" },
	{ "DC301", false, 0, "CREATE TABLE t (a bigint);" },
	{ "DC301", false, 0, "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS $$ SELECT 1::int $$;" },
	{ "DC302", true, 0, "CREATE TABLE t (a smallint);" },
	{ "DC302", false, 0, "CREATE TABLE t (a bigint);" },
	{ "DC303", true, 0, "CREATE TABLE t (id bigserial);" },
	{ "DC303", false, 0, "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY);" },
	{ "DC304", true, 0, "CREATE TABLE t (a varchar(10));" },
	{ "DC304", false, 0, "CREATE TABLE t (a varchar);" },
	{ "DC305", true, 0, "CREATE TABLE t (a timestamp);" },
	{ "DC305", true, 0, "CREATE TABLE t (a timestamp(3) without time zone);" },
	{ "DC305", false, 0, "CREATE TABLE t (a timestamptz);" },
	{ "DC306", true, 0, "CREATE TABLE t (a char(3));" },
	{ "DC306", true, 0, "CREATE TABLE t (a character(3)[]);" },
	{ "DC306", false, 0, "CREATE TABLE t (a \"char\");" },
	{ "DC307", true, 0, "CREATE TABLE t (a json);" },
	{ "DC307", false, 0, "CREATE TABLE t (a jsonb);" },
	{ "DC308", true, 0, "CREATE TABLE t (a_column_name_that_is_much_longer_than_sixty_three_bytes_in_total_x bigint);" },
	{ "DC308", false, 0, "CREATE TABLE t (a_short_name bigint);" },
	{ "DC309", true, 0, "CREATE TABLE t (a bigint, a text);" },
	{ "DC309", true, 0, "UPDATE t SET a = 1, a = 2;" },
	{ "DC309", true, 0, "INSERT INTO t (a, a) VALUES (1, 2);" },
	{ "DC309", false, 0, "UPDATE t SET arr[1] = 1, arr[2] = 2;" },
	{ "DC309", false, 0, "INSERT INTO t (a, \"A\") VALUES (1, 2);" },
	{ "DC310", true, CFG_ALL_ON, "CREATE TABLE t (a bigint);" },
	{ "DC310", false, CFG_ALL_ON, "CREATE TABLE app.t (a bigint);" },
	{ "DC310", false, 0, "CREATE TABLE t (a bigint);" },
	{ "DC311", true, 0, "CREATE INDEX CONCURRENTLY i ON t (a, b, c, d);" },
	{ "DC311", false, 0, "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a, b, c, d);" },
	{ "DC312", true, CFG_ALL_ON, "CREATE TABLE t (a boolean, b bigint);" },
	{ "DC312", false, CFG_ALL_ON, "CREATE TABLE t (b bigint, a boolean);" },
	/* transactions */
	{ "DC401", true, 0, "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;" },
	{ "DC401", false, 0, "CREATE INDEX CONCURRENTLY i ON t (a);" },
	{ "DC402", true, 0, "BEGIN;\nSELECT 1;\nCOMMIT;" },
	{ "DC402", false, 0, "SELECT 1;" },
	{ "DC404", false, 0, "BEGIN;\nCOMMIT;" },
	{ "DC405", true, 0, "ALTER TABLE t ADD COLUMN a text;\nCREATE INDEX CONCURRENTLY i ON t (a);" },
	{ "DC405", true, 0, "VACUUM t;\nUPDATE t SET a = 1;" },
	{ "DC405", false, 0, "SET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY i ON t (a);" },
	{ "DC405", false, 0, "CREATE INDEX i ON t (a);" },
	/* schema tenancy */
	{ "DC501", true, CFG_SCHEMA, "ALTER TABLE public.t ADD COLUMN a text;" },
	{ "DC501", true, CFG_SCHEMA, "INSERT INTO t SELECT * FROM other_tenant.t;" },
	{ "DC501", true, CFG_SCHEMA, "SET search_path TO other;" },
	{ "DC501", true, CFG_SCHEMA, "DROP TABLE IF EXISTS other.t;" },
	{ "DC501", false, CFG_SCHEMA, "ALTER TABLE t ADD COLUMN a text;" },
	{ "DC501", false, CFG_SCHEMA, "SELECT count(*) FROM pg_catalog.pg_class;" },
	{ "DC501", false, 0, "ALTER TABLE public.t ADD COLUMN a text;" },
	/* isolation: what the isolation gate refuses on PostgreSQL (analysis/isolation.c) */
	{ "DC504", true, 0, "UPDATE deployclaw.history SET checksum = '';" },
	{ "DC504", true, 0, "SET search_path TO tenant_0003;\nUPDATE orders SET total = 0;" },
	{ "DC504", true, 0, "SET LOCAL role TO postgres;" },
	{ "DC504", true, 0, "RESET session_authorization;" },
	{ "DC504", true, 0, "RESET ALL;\nCREATE TABLE leaked (a int);" },
	{ "DC504", true, 0, "DISCARD ALL;" },
	{ "DC504", true, 0, "SELECT set_config('search_path', 'tenant_0003', false);" },
	{ "DC504", true, 0, "COPY t FROM PROGRAM 'cat /etc/passwd';" },
	{ "DC504", true, 0, "COPY t TO '/tmp/out.csv';" },
	{ "DC504", true, 0, "SELECT * FROM dblink('host=x', 'SELECT 1') AS r(a int);" },
	{ "DC504", true, 0, "SELECT lo_import('/etc/passwd');" },
	{ "DC504", true, 0, "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw;" },
	{ "DC504", true, 0, "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO x;" },
	{ "DC504", true, 0, "DO $$ BEGIN EXECUTE format('UPDATE %I.orders SET total = 0', 'tenant_0003'); END $$;" },
	{ "DC504", false, 0, "DO $$ BEGIN EXECUTE 'UPDATE orders SET total = 0'; END $$;" },
	{ "DC501", true, CFG_SCHEMA, "DO $$ BEGIN EXECUTE 'UPDATE tenant_0003.orders SET total = 0'; END $$;" },
	{ "DC504", false, 0, "UPDATE orders SET total = 0;" },
	{ "DC504", false, 0, "SELECT * FROM deployclaw.history;" },
	{ "DC504", false, 0, "SET lock_timeout = '1s';" },
	{ "DC504", false, 0, "SET LOCAL statement_timeout = '5s';" },
	{ "DC504", false, 0, "SELECT set_config('lock_timeout', '1s', true);" },
	{ "DC504", false, 0, "COPY t FROM STDIN;" },
	{ "DC504", false, CFG_SCHEMA, "SET search_path TO other;" },
	{ "DC504", false, 0, "DO $$ BEGIN UPDATE orders SET total = 0; END $$;" },
	{ "DC504", true, 0, "DO $$ BEGIN SET search_path TO other; END $$;" },
	{ "DC504", true, CFG_SCHEMA, "CREATE EXTENSION pg_trgm;" },
	{ "DC504", false, 0, "CREATE EXTENSION pg_trgm;" },
	{ "DC501", true, CFG_SCHEMA, "DO $$ BEGIN UPDATE other.t SET a = 1; END $$;" },
	{ "DC501", true, CFG_SCHEMA, "SELECT other.f();" },
	/* catalog lookups under schema tenancy: scoped to a schema, or not */
	{ "DC505", true, CFG_SCHEMA, "SELECT 1 FROM pg_constraint WHERE conname = 'u';" },
	{ "DC505", true, CFG_SCHEMA, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'u') THEN ALTER TABLE t ADD CONSTRAINT u UNIQUE (a); END IF; END $$;" },
	{ "DC505", true, CFG_SCHEMA, "SELECT 1 FROM information_schema.columns WHERE table_name = 't';" },
	{ "DC505", true, CFG_SCHEMA, "SELECT 1 FROM pg_indexes WHERE tablename = 't';" },
	{ "DC505", false, CFG_SCHEMA, "SELECT 1 FROM pg_constraint WHERE conname = 'u' AND conrelid = 't'::regclass;" },
	{ "DC505", false, CFG_SCHEMA, "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'i';" },
	{ "DC505", false, CFG_SCHEMA, "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema();" },
	{ "DC505", false, CFG_SCHEMA, "SELECT * FROM tables;" },
	{ "DC505", false, 0, "SELECT 1 FROM pg_constraint WHERE conname = 'u';" },
	/* DC506: row-level security weakened */
	{ "DC506", true, 0, "ALTER TABLE accounts DISABLE ROW LEVEL SECURITY;" },
	{ "DC506", true, 0, "ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY;\nALTER TABLE accounts ENABLE ROW LEVEL SECURITY;" },
	{ "DC506", true, 0, "DROP POLICY p ON accounts;\nCREATE POLICY p ON invoices USING (true);" },
	{ "DC506", false, 0, "DROP POLICY p ON accounts;\nCREATE POLICY p ON accounts USING (tenant_id = 1);" },
	{ "DC506", false, 0, "ALTER TABLE a DISABLE ROW LEVEL SECURITY;\nUPDATE a SET x = 1;\nALTER TABLE a ENABLE ROW LEVEL SECURITY;" },
	{ "DC506", false, 0, "DROP POLICY p ON a;\nDROP TABLE a;" },
	{ "DC506", false, 0, "ALTER TABLE a ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;" },
	/* dollar-quoted bodies are not statements of the migration */
	{ "DC201", false, 0, "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$ BEGIN DROP TABLE t; END $fn$;" },
	{ "DC402", false, 0, "DO $$ BEGIN COMMIT; END $$;" },
};

/* clang-format on */

static void config_for(int which, dc_lint_config *lc)
{
	size_t n, i;

	dc_lint_config_init(lc);
	if (which == CFG_SCHEMA)
		lc->schema_tenancy = true;
	if (which == CFG_NO_TIMEOUTS)
		lc->lock_timeout_ms = lc->statement_timeout_ms = 0;
	if (which == CFG_ALL_ON) {
		dc_lint_rules(&n);
		for (i = 0; i < n; i++)
			if (lc->severity[i] == DC_SEV_OFF)
				lc->severity[i] = DC_SEV_WARNING;
	}
}

static bool fires(const dc_finding_list *l, const char *id)
{
	size_t i;

	for (i = 0; i < l->len; i++)
		if (!strcmp(l->items[i].rule->id, id))
			return true;
	return false;
}

/* gates.isolation.dynamic_sql: allow turns EXECUTE into a warning (the gate lets it
 * through to the run-time checks); the rest of DC504 stays an error. */
static void dynamic_sql_allowed_is_a_warning(void **state)
{
	static const char sql[] =
	        "DO $$ BEGIN EXECUTE format('SELECT %s', 1); END $$;\nRESET ALL;\n";
	dc_finding_list l = { NULL, 0, 0 };
	dc_lint_config lc;
	dc_error err = { 0 };

	(void)state;
	config_for(CFG_DEFAULT, &lc);
	lc.allow_dynamic_sql = true;
	assert_int_equal(dc_lint_sql(sql, "case.sql", &lc, &l, &err), 0);
	dc_finding_list_sort(&l);
	assert_int_equal(l.len, 2);
	assert_string_equal(l.items[0].rule->id, "DC504");
	assert_int_equal(l.items[0].severity, DC_SEV_WARNING);
	assert_int_equal(l.items[0].col, 13);
	assert_non_null(strstr(l.items[0].message, "allowed by gates.isolation.dynamic_sql"));
	assert_int_equal(l.items[1].severity, DC_SEV_ERROR);
	assert_int_equal(l.items[1].line, 2);
	dc_finding_list_release(&l);
	lc.allow_dynamic_sql = false;
	assert_int_equal(dc_lint_sql(sql, "case.sql", &lc, &l, &err), 0);
	assert_int_equal(dc_finding_list_count(&l, DC_SEV_ERROR), 2);
	dc_finding_list_release(&l);
}

static void rule_cases(void **state)
{
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_finding_list l = { NULL, 0, 0 };
		dc_lint_config lc;
		dc_error err = { 0 };

		config_for(cases[i].cfg, &lc);
		assert_int_equal(dc_lint_sql(cases[i].sql, "case.sql", &lc, &l, &err), 0);
		if (fires(&l, cases[i].rule) != cases[i].fires) {
			size_t k;

			fprintf(stderr, "case %zu: %s should %sfire on: %s\n  got:", i,
			        cases[i].rule, cases[i].fires ? "" : "not ", cases[i].sql);
			for (k = 0; k < l.len; k++)
				fprintf(stderr, " %s", l.items[k].rule->id);
			fprintf(stderr, "\n");
			bad++;
		}
		dc_finding_list_release(&l);
	}
	assert_int_equal(bad, 0);
}

/* Every rule (but the migration-level ones tested below) has a case that fires
 * and one that must not. */
static void every_rule_covered(void **state)
{
	const dc_lint_rule *rules;
	size_t n, i, k;

	(void)state;
	rules = dc_lint_rules(&n);
	for (i = 0; i < n; i++) {
		bool yes = false, no = false;

		if (!strcmp(rules[i].id, "DC403") || !strcmp(rules[i].id, "DC404") ||
		    !strcmp(rules[i].id, "DC406") || !strcmp(rules[i].id, "DC502") ||
		    !strcmp(rules[i].id, "DC503"))
			continue; /* migration_rules */
		for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
			if (strcmp(cases[k].rule, rules[i].id) != 0)
				continue;
			yes = yes || cases[k].fires;
			no = no || !cases[k].fires;
		}
		if (!yes || !no)
			fprintf(stderr, "rule %s lacks a %s case\n", rules[i].id,
			        !yes ? "firing" : "silent");
		assert_true(yes && no);
	}
}

static void positions_and_suggestions(void **state)
{
	dc_finding_list l = { NULL, 0, 0 };
	dc_error err = { 0 };
	const char *sql = "SELECT 1;\n\n  CREATE INDEX idx ON users (email);\n";

	(void)state;
	assert_int_equal(dc_lint_sql(sql, "m.sql", NULL, &l, &err), 0);
	assert_int_equal(l.len, 1);
	assert_string_equal(l.items[0].rule->id, "DC101");
	assert_string_equal(l.items[0].file, "m.sql");
	assert_int_equal(l.items[0].line, 3);
	assert_int_equal(l.items[0].col, 3);
	assert_int_equal(l.items[0].severity, DC_SEV_WARNING);
	assert_string_equal(l.items[0].suggestion,
	                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx ON users (email);");
	assert_string_equal(l.items[0].source, "  CREATE INDEX idx ON users (email);");
	dc_finding_list_release(&l);

	/* a syntax error is a finding at the parser's position */
	assert_int_equal(
	        dc_lint_sql("SELECT 1;\nALTER TABLE t ADD COLUMN;\n", "s.sql", NULL, &l, &err), 0);
	assert_int_equal(l.len, 1);
	assert_string_equal(l.items[0].rule->id, "DC000");
	assert_int_equal(l.items[0].line, 2);
	assert_int_equal(l.items[0].col, 25);
	assert_int_equal(dc_finding_list_count(&l, DC_SEV_ERROR), 1);
	dc_finding_list_release(&l);
}

static void severities_configurable(void **state)
{
	dc_finding_list l = { NULL, 0, 0 };
	dc_lint_config lc;
	dc_error err = { 0 };

	(void)state;
	dc_lint_config_init(&lc);
	assert_int_equal(dc_lint_config_set(&lc, "create-index-non-concurrent", DC_SEV_ERROR, &err),
	                 0);
	assert_int_equal(dc_lint_config_set(&lc, "DC202", DC_SEV_OFF, &err), 0);
	assert_int_equal(dc_lint_config_set(&lc, "DC999", DC_SEV_OFF, &err), DC_ENOTFOUND);
	assert_int_equal(dc_lint_sql("CREATE INDEX i ON t (a);\nALTER TABLE t DROP COLUMN c;", NULL,
	                             &lc, &l, &err),
	                 0);
	assert_int_equal(l.len, 1);
	assert_int_equal(l.items[0].severity, DC_SEV_ERROR);
	dc_finding_list_release(&l);
}

/* A migrations folder in a temporary directory. */
static char *make_dir(const char *const *names, const char *const *texts, size_t n)
{
	char tmpl[] = "/tmp/dc-lint-XXXXXX";
	char *d = mkdtemp(tmpl), path[512];
	size_t i;

	assert_non_null(d);
	for (i = 0; i < n; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", d, names[i]);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(texts[i], f);
		fclose(f);
	}
	return strdup(d);
}

static void remove_dir(char *d)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
	free(d);
}

static void lint_set(const char *yaml, dc_finding_list *l)
{
	const char *names[] = { "0001_x.yaml" };
	const char *texts[] = { yaml };
	char *d = make_dir(names, texts, 1);
	dc_migration_set *set = NULL;
	dc_error err = { 0 };
	size_t i;

	assert_int_equal(dc_migration_set_load(&set, d, DC_DIALECT_POSTGRES, &err), 0);
	for (i = 0; i < set->count; i++)
		assert_int_equal(dc_lint_migration(&set->migrations[i], NULL, l, &err), 0);
	dc_migration_set_free(set);
	remove_dir(d);
}

static void migration_rules(void **state)
{
	dc_finding_list l = { NULL, 0, 0 };

	(void)state;
	/* no down */
	lint_set("version: '1'\nname: x\nphases:\n  - name: expand\n    up: ALTER TABLE users ADD "
	         "COLUMN a text;\n",
	         &l);
	assert_true(fires(&l, "DC502"));
	assert_string_equal(l.items[0].suggestion, "ALTER TABLE users DROP COLUMN a;\n");
	assert_int_equal(l.items[0].line, 5);
	dc_finding_list_release(&l);

	/* the right down */
	lint_set("version: '1'\nname: x\nphases:\n  - name: expand\n    up: ALTER TABLE users ADD "
	         "COLUMN a text;\n    down: ALTER TABLE users DROP COLUMN IF EXISTS a;\n",
	         &l);
	assert_false(fires(&l, "DC502"));
	assert_false(fires(&l, "DC503"));
	assert_false(fires(&l, "DC202")); /* dropping what the up added is no data loss */
	dc_finding_list_release(&l);

	/* a down that undoes something else */
	lint_set("version: '1'\nname: x\nphases:\n  - name: expand\n    up: |\n      CREATE TABLE "
	         "t (id bigint);\n      ALTER TABLE users ADD COLUMN a text;\n    down: DROP TABLE "
	         "t;\n",
	         &l);
	assert_true(fires(&l, "DC503"));
	assert_false(fires(&l, "DC201"));
	dc_finding_list_release(&l);

	/* a backfill phase with only DML needs no down */
	lint_set("version: '1'\nname: x\nphases:\n  - name: backfill\n    up: UPDATE users SET a = "
	         "1;\n",
	         &l);
	assert_false(fires(&l, "DC502"));
	dc_finding_list_release(&l);

	/* non-transactional phases: robustness, nesting, an open BEGIN */
	lint_set(
	        "version: '1'\nname: x\nphases:\n  - name: idx\n    transaction: false\n    up: |\n"
	        "      CREATE INDEX CONCURRENTLY i ON users (a);\n      COMMIT;\n      BEGIN;\n"
	        "      BEGIN;\n      CREATE TABLE IF NOT EXISTS t (id bigint);\n"
	        "    down: |\n      DROP TABLE IF EXISTS t;\n      DROP INDEX CONCURRENTLY IF EXISTS i;\n",
	        &l);
	assert_true(fires(&l, "DC406"));
	assert_true(fires(&l, "DC403"));
	assert_true(fires(&l, "DC404"));
	assert_false(fires(&l, "DC405"));
	assert_false(fires(&l, "DC503"));
	dc_finding_list_release(&l);

	lint_set(
	        "version: '1'\nname: x\nphases:\n  - name: idx\n    transaction: false\n    up: |\n"
	        "      CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (a);\n"
	        "    down: DROP INDEX CONCURRENTLY IF EXISTS i;\n",
	        &l);
	assert_false(fires(&l, "DC406"));
	assert_false(fires(&l, "DC403"));
	assert_false(fires(&l, "DC404"));
	dc_finding_list_release(&l);
}

/* Under schema tenancy a shard migration (`scope: shard`) may name shared schemas:
 * DC501 is the tenant's rule; DC504 (deployclaw's own schema) still holds. */
static void shard_scope_lint(void **state)
{
	const char *names[] = { "0001_shared.yaml", "0002_tenant.yaml" };
	const char *texts[] = {
		"version: '1'\nscope: shard\nphases:\n  - up: |\n      CREATE SCHEMA shared;\n"
		"      CREATE TABLE shared.countries (code text);\n"
		"      DELETE FROM deployclaw.tenant_state;\n"
		"    down: DROP SCHEMA shared CASCADE;\n",
		"version: '2'\nphases:\n  - up: CREATE TABLE shared.other (code text);\n"
		"    down: DROP TABLE shared.other;\n"
	};
	char *d = make_dir(names, texts, 2);
	dc_migration_set *set = NULL;
	dc_finding_list shard = { NULL, 0, 0 }, tenant = { NULL, 0, 0 };
	dc_lint_config lc;
	dc_error err = { 0 };

	(void)state;
	config_for(CFG_SCHEMA, &lc);
	assert_int_equal(dc_migration_set_load(&set, d, DC_DIALECT_POSTGRES, &err), 0);
	assert_int_equal(dc_lint_migration(&set->migrations[0], &lc, &shard, &err), 0);
	assert_int_equal(dc_lint_migration(&set->migrations[1], &lc, &tenant, &err), 0);
	assert_false(fires(&shard, "DC501"));
	assert_true(fires(&shard, "DC504"));
	assert_true(fires(&tenant, "DC501"));
	assert_true(lc.schema_tenancy); /* the caller's config is left alone */
	dc_finding_list_release(&shard);
	dc_finding_list_release(&tenant);
	dc_migration_set_free(set);
	remove_dir(d);
}

static void formats(void **state)
{
	dc_finding_list l = { NULL, 0, 0 };
	dc_strbuf out = DC_STRBUF_INIT;
	dc_error err = { 0 };
	json_error_t jerr;
	json_t *root, *res;
	dc_lint_format fmt;

	(void)state;
	assert_int_equal(
	        dc_lint_sql("CREATE INDEX i ON t (a);\nALTER TABLE t ADD COLUMN b text NOT "
	                    "NULL;\n",
	                    "dir/m,1.sql", NULL, &l, &err),
	        0);
	assert_int_equal(l.len, 2);

	assert_int_equal(dc_lint_render(&l, DC_LINT_JSON, false, &out), 0);
	root = json_loads(out.buf, 0, &jerr);
	assert_non_null(root);
	assert_int_equal(json_array_size(json_object_get(root, "findings")), 2);
	res = json_array_get(json_object_get(root, "findings"), 1);
	assert_string_equal(json_string_value(json_object_get(res, "rule")), "DC211");
	assert_string_equal(json_string_value(json_object_get(res, "severity")), "error");
	assert_int_equal(json_integer_value(json_object_get(res, "line")), 2);
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(root, "summary"), "errors")), 1);
	json_decref(root);

	dc_strbuf_reset(&out);
	assert_int_equal(dc_lint_render(&l, DC_LINT_SARIF, false, &out), 0);
	root = json_loads(out.buf, 0, &jerr);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "version")), "2.1.0");
	res = json_object_get(json_array_get(json_object_get(root, "runs"), 0), "results");
	assert_int_equal(json_array_size(res), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "ruleId")),
	                    "DC101");
	assert_string_equal(json_string_value(json_object_get(json_array_get(res, 1), "level")),
	                    "error");
	json_decref(root);

	dc_strbuf_reset(&out);
	assert_int_equal(dc_lint_render(&l, DC_LINT_GITHUB, false, &out), 0);
	assert_non_null(strstr(out.buf, "::warning file=dir/m%2C1.sql,line=1,col=1,title=DC101 "
	                                "create-index-non-concurrent::CREATE INDEX 'i' on 't'"));
	assert_non_null(strstr(out.buf, "::error file=dir/m%2C1.sql,line=2,col="));

	dc_strbuf_reset(&out);
	assert_int_equal(dc_lint_render(&l, DC_LINT_HUMAN, false, &out), 0);
	assert_non_null(
	        strstr(out.buf, "dir/m,1.sql:1:1: warning [DC101 create-index-non-concurrent]"));
	assert_non_null(strstr(out.buf, "    1 | CREATE INDEX i ON t (a);\n       | ^\n"));
	assert_non_null(strstr(out.buf, "1 error, 1 warning, 0 notes"));

	assert_int_equal(dc_lint_format_parse("sarif", &fmt), 0);
	assert_int_equal(fmt, DC_LINT_SARIF);
	assert_int_equal(dc_lint_format_parse("xml", &fmt), DC_EINVAL);
	dc_strbuf_release(&out);
	dc_finding_list_release(&l);
}

static void config_lint_section(void **state)
{
	const char *yaml = "engine: postgres\ntenancy:\n  model: schema\n  pattern: \"t_%\"\n"
	                   "shards:\n  - name: a\n    primary: host=x\n"
	                   "lint:\n  rules:\n    DC101: error\n    drop-column: off\n";
	const char *bad = "engine: postgres\ntenancy:\n  model: schema\n  pattern: \"t_%\"\n"
	                  "shards:\n  - name: a\n    primary: host=x\n"
	                  "lint:\n  rules:\n    DC1O1: error\n";
	dc_config *cfg = NULL;
	dc_lint_config lc;
	dc_error err = { 0 };

	(void)state;
	assert_int_equal(dc_config_parse(&cfg, "/tmp/d.yaml", yaml, strlen(yaml), &err), 0);
	assert_int_equal(dc_lint_config_from(&lc, cfg, &err), 0);
	assert_true(lc.schema_tenancy);
	assert_int_equal(lc.severity[dc_lint_rule_find("DC101") - dc_lint_rules(NULL)],
	                 DC_SEV_ERROR);
	assert_int_equal(lc.severity[dc_lint_rule_find("DC202") - dc_lint_rules(NULL)], DC_SEV_OFF);
	dc_config_free(cfg);
	cfg = NULL;
	assert_int_equal(dc_config_parse(&cfg, "/tmp/d.yaml", bad, strlen(bad), &err), 0);
	assert_int_equal(dc_lint_config_from(&lc, cfg, &err), DC_ECONFIG);
	assert_int_equal(err.line, 10);
	assert_int_equal(err.col, 5);
	assert_string_equal(err.message, "lint.rules.DC1O1: unknown rule (did you mean 'DC101'?)");
	dc_config_free(cfg);
}

/* Linear work: 20,000 statements with many created tables stay fast. */
static void many_statements(void **state)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	dc_finding_list l = { NULL, 0, 0 };
	dc_error err = { 0 };
	int i;

	(void)state;
	for (i = 0; i < 20000; i++)
		dc_strbuf_addf(&sql,
		               "CREATE TABLE t%d (id bigint);\nCREATE INDEX i%d ON t%d (id);\n", i,
		               i, i);
	assert_int_equal(dc_lint_sql(sql.buf, "big.sql", NULL, &l, &err), 0);
	assert_int_equal(l.len, 0);
	dc_finding_list_release(&l);
	dc_strbuf_release(&sql);
}

/* Counts the findings of rule `id`. */
static size_t count_rule(const dc_finding_list *l, const char *id)
{
	size_t i, n = 0;

	for (i = 0; i < l->len; i++)
		n += strcmp(l->items[i].rule->id, id) == 0;
	return n;
}

/*
 * A file large enough to be parsed in chunks (and on several threads): every
 * finding is where it is in the file, chunk cuts never split a statement (a
 * dollar-quoted body holds ';'), an ignore works wherever it lands, a
 * column's type is known across chunks, and a syntax error anywhere is the
 * file's only finding.
 */
static void large_file_in_chunks(void **state)
{
	/* 5 lines per unit; the DC101 that is not ignored: line 4, column 6 (after a UTF-8 comment) */
#define UNIT                                                                              \
	"CREATE FUNCTION f%d() RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT %d; $$;\n" \
	"-- deployclaw:ignore DC101\nCREATE INDEX a%d ON users (email);\n"                \
	"/*é*/CREATE INDEX b%d ON users (email);\n"                                      \
	"SELECT %d;\n"

	enum {
		UNITS = 6000,
		LINES = 5
	};

	dc_strbuf sql = DC_STRBUF_INIT;
	dc_finding_list l = { NULL, 0, 0 };
	dc_error err = { 0 };
	size_t i;
	int k;

	(void)state;
	dc_strbuf_adds(&sql, "ALTER TABLE acct ADD COLUMN code varchar(10);\n"
	                     "ALTER TABLE acct ADD COLUMN n int;\n");
	for (k = 0; k < UNITS; k++)
		dc_strbuf_addf(&sql, UNIT, k, k, k, k, k);
	/* binary-coercible: no finding, because the type from line 1 is still known */
	dc_strbuf_adds(&sql, "ALTER TABLE acct ALTER COLUMN code TYPE varchar(20);\n"
	                     "ALTER TABLE acct ALTER COLUMN n TYPE bigint;\n");
	assert_false(dc_strbuf_error(&sql));
	assert_true(sql.len > 1024 * 1024);
	assert_int_equal(dc_lint_sql(sql.buf, "big.sql", NULL, &l, &err), 0);
	dc_finding_list_sort(&l);
	assert_int_equal(count_rule(&l, "DC101"), UNITS);
	assert_int_equal(count_rule(&l, "DC112"), 1);
	for (i = 0, k = 0; i < l.len; i++) {
		const dc_finding *f = &l.items[i];

		if (strcmp(f->rule->id, "DC101") == 0) {
			assert_int_equal(f->line, 2 + k * LINES + 4);
			assert_int_equal(f->col, 6);
			k++;
		} else if (strcmp(f->rule->id, "DC112") == 0) {
			assert_int_equal(f->line, 2 + UNITS * LINES + 2);
			assert_non_null(strstr(f->message, "rewrites the table and its indexes"));
		}
	}
	assert_int_equal(k, UNITS);
	/* JSON of thousands of findings (rendered in slices on threads): one
	 * document, every finding in order */
	{
		dc_strbuf out = DC_STRBUF_INIT;
		json_error_t jerr;
		json_t *root, *arr;

		assert_int_equal(dc_lint_render(&l, DC_LINT_JSON, false, &out), 0);
		root = json_loads(out.buf, 0, &jerr);
		assert_non_null(root);
		arr = json_object_get(root, "findings");
		assert_int_equal(json_array_size(arr), l.len);
		for (i = 0; i < l.len; i++) {
			json_t *f = json_array_get(arr, i);

			assert_int_equal(json_integer_value(json_object_get(f, "line")),
			                 l.items[i].line);
			assert_string_equal(json_string_value(json_object_get(f, "rule")),
			                    l.items[i].rule->id);
		}
		assert_int_equal(json_integer_value(json_object_get(
		                         json_object_get(root, "summary"), "warnings")),
		                 (json_int_t)dc_finding_list_count(&l, DC_SEV_WARNING));
		assert_string_equal(out.buf + out.len - 4, "}\n}\n");
		json_decref(root);
		dc_strbuf_release(&out);
	}
	dc_finding_list_release(&l);

	/* a syntax error deep in the file: its only finding, at its position */
	{
		size_t cut = sql.len * 2 / 3;
		dc_strbuf bad = DC_STRBUF_INIT;
		int line = 1;

		while (sql.buf[cut - 1] != '\n')
			cut++;
		for (i = 0; i < cut; i++)
			line += sql.buf[i] == '\n';
		dc_strbuf_add(&bad, sql.buf, cut);
		dc_strbuf_adds(&bad, "SELECT 1 FROM WHERE;\n");
		dc_strbuf_adds(&bad, sql.buf + cut);
		assert_int_equal(dc_lint_sql(bad.buf, "bad.sql", NULL, &l, &err), 0);
		assert_int_equal(l.len, 1);
		assert_string_equal(l.items[0].rule->id, "DC000");
		assert_int_equal(l.items[0].line, line);
		assert_int_equal(l.items[0].col, 15);
		dc_finding_list_release(&l);
		dc_strbuf_release(&bad);
	}
	dc_strbuf_release(&sql);

	/* SQL-standard bodies hold ';' the scanner would cut at: such a file is
	 * never cut inside one (no false syntax error, every statement modelled) */
	{
		dc_stmt_list models = { NULL, 0, 0 };

		for (k = 0; sql.len < 300 * 1024; k++)
			dc_strbuf_addf(
			        &sql,
			        "CREATE FUNCTION g%d() RETURNS int LANGUAGE sql BEGIN ATOMIC "
			        "SELECT 1; SELECT 2; SELECT 3; SELECT 4; SELECT 5; SELECT 6; END;\n",
			        k);
		assert_int_equal(dc_lint_sql(sql.buf, "atomic.sql", NULL, &l, &err), 0);
		assert_int_equal(count_rule(&l, "DC000"), 0);
		dc_finding_list_release(&l);
		assert_int_equal(dc_pg_analyze(sql.buf, "atomic.sql", 1, 1, &models, &err), 0);
		assert_int_equal(models.len, (size_t)k);
		dc_stmt_list_release(&models);
		dc_strbuf_release(&sql);
	}
#undef UNIT
}

/* ---- docs/lint-rules.md documents the rule table ---- */

/* A file of the source tree (DC_SOURCE_ROOT), read whole; NULL when it cannot be. */
static char *read_source(const char *rel)
{
	const char *root = getenv("DC_SOURCE_ROOT");
	char path[4096];
	FILE *f;
	char *buf = NULL;
	long n;

	snprintf(path, sizeof(path), "%s/%s", root ? root : ".", rel);
	if (!(f = fopen(path, "rb")))
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
			buf[n] = '\0';
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

/* Compares a documented field with the table's, saying which rule and field differ. */
static int doc_field(const char *id, const char *field, const char *doc, const char *table)
{
	if (!strcmp(doc, table))
		return 0;
	fprintf(stderr, "%s %s differs:\n  docs/lint-rules.md: %s\n  rules.def:          %s\n", id,
	        field, doc, table);
	return 1;
}

/* "| DC101 | `name` | warning | what | equivalents |": one rule's row of the table. */
static int doc_row(char *line, const dc_lint_rule **seen)
{
	char *cell[5], *p = line + 1;
	const dc_lint_rule *r;
	size_t k, len;
	int bad = 0;

	for (k = 0; k < 5; k++) {
		char *bar = strstr(p, " |");

		if (!bar) {
			fprintf(stderr, "docs/lint-rules.md: a rule row with %zu cells: %s\n", k,
			        line);
			return 1;
		}
		*bar = '\0';
		cell[k] = p + (*p == ' ');
		p = bar + 2;
	}
	len = strlen(cell[1]);
	if (len >= 2 && cell[1][0] == '`' && cell[1][len - 1] == '`') {
		cell[1][len - 1] = '\0';
		cell[1]++;
	}
	if (!(r = dc_lint_rule_find(cell[0]))) {
		fprintf(stderr, "docs/lint-rules.md documents %s, which is not in the table\n",
		        cell[0]);
		return 1;
	}
	if (seen[r - dc_lint_rules(NULL)]) {
		fprintf(stderr, "docs/lint-rules.md has two rows for %s\n", r->id);
		bad++;
	}
	seen[r - dc_lint_rules(NULL)] = r;
	bad += doc_field(r->id, "name", cell[1], r->name);
	bad += doc_field(r->id, "default severity", cell[2], dc_severity_name(r->severity));
	bad += doc_field(r->id, "what", cell[3], r->summary);
	bad += doc_field(r->id, "equivalents", cell[4], r->equivalents);
	return bad;
}

/*
 * "### DC101 `name` (warning)" and its "- **What**: ..." lines: one rule's
 * section. `next` is the text after the heading line (read, not changed).
 */
static int doc_section(char *heading, char *next, const dc_lint_rule **seen)
{
	static const char *const labels[] = { "- **What**: ", "- **Why**: ",
		                              "- **Safe alternative**: ", "- **Equivalent**: " };
	static const char *const fields[] = { "what", "why", "safe alternative", "equivalent" };
	char id[16], name[96], sev[16];
	const dc_lint_rule *r;
	const char *want[4];
	size_t k;
	int bad = 0;

	if (sscanf(heading, "### %15s `%95[^`]` (%15[^)])", id, name, sev) != 3) {
		fprintf(stderr,
		        "docs/lint-rules.md: a rule heading not as '### DCnnn `name` "
		        "(severity)': %s\n",
		        heading);
		return 1;
	}
	if (!(r = dc_lint_rule_find(id))) {
		fprintf(stderr, "docs/lint-rules.md documents %s, which is not in the table\n", id);
		return 1;
	}
	if (seen[r - dc_lint_rules(NULL)]) {
		fprintf(stderr, "docs/lint-rules.md has two sections for %s\n", r->id);
		bad++;
	}
	seen[r - dc_lint_rules(NULL)] = r;
	bad += doc_field(r->id, "name", name, r->name);
	bad += doc_field(r->id, "default severity", sev, dc_severity_name(r->severity));
	want[0] = r->summary;
	want[1] = r->why;
	want[2] = r->help;
	want[3] = r->equivalents;
	while (*next == '\n')
		next++;
	for (k = 0; k < 4; k++) {
		size_t len = strcspn(next, "\n"), ll = strlen(labels[k]);
		char *text;

		if (len < ll || strncmp(next, labels[k], ll) != 0) {
			fprintf(stderr, "%s: expected '%s...' in its section, found '%.*s'\n",
			        r->id, labels[k], (int)len, next);
			return bad + 1;
		}
		assert_non_null(text = strndup(next + ll, len - ll));
		bad += doc_field(r->id, fields[k], text, want[k]);
		free(text);
		next += len + (next[len] == '\n');
	}
	return bad;
}

/*
 * Every rule of the table has a row and a section in docs/lint-rules.md with
 * the table's texts, and the doc names no rule the table does not have.
 */
static void rules_match_docs(void **state)
{
	const dc_lint_rule *rules, *rows[DC_LINT_MAX_RULES] = { 0 },
	                           *sections[DC_LINT_MAX_RULES] = { 0 };
	char *doc = read_source("docs/lint-rules.md"), *line, *next;
	size_t n, i;
	int bad = 0;

	(void)state;
	assert_non_null(doc);
	rules = dc_lint_rules(&n);
	for (line = doc; line && *line; line = next) {
		char *eol = strchr(line, '\n');

		next = eol ? eol + 1 : NULL;
		if (eol)
			*eol = '\0';
		if (!strncmp(line, "| DC", 4))
			bad += doc_row(line, rows);
		else if (!strncmp(line, "### DC", 6) && next)
			bad += doc_section(line, next, sections);
	}
	for (i = 0; i < n; i++) {
		if (!rows[i]) {
			fprintf(stderr, "%s has no row in docs/lint-rules.md\n", rules[i].id);
			bad++;
		}
		if (!sections[i]) {
			fprintf(stderr, "%s has no section in docs/lint-rules.md\n", rules[i].id);
			bad++;
		}
	}
	free(doc);
	assert_int_equal(bad, 0);
}

/*
 * Every rule's entry carries its check: a statement check and/or an ALTER
 * TABLE sub-command check, or else the functions that report it, each one
 * defined in src/analysis/lint/.
 */
static void rule_entries_carry_checks(void **state)
{
	static const char *const files[] = {
		"alter_table.c", "breaking.c", "downs.c",    "findings.c",     "ignores.c",
		"locking.c",     "naming.c",   "rewrites.c", "transactions.c", "tenancy.c",
	};
	char *src[sizeof(files) / sizeof(files[0])];
	size_t i, k, n;
	int bad = 0;

	(void)state;
	for (k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
		char rel[256];

		snprintf(rel, sizeof(rel), "src/analysis/lint/%s", files[k]);
		assert_non_null(src[k] = read_source(rel));
	}
	dc_lint_rules(&n);
	for (i = 0; i < n; i++) {
		const dc_lint_check *c = dc_lint__check((int)i);
		const char *p;

		if ((c->stmt || c->cmd) == (c->reported_by != NULL)) {
			fprintf(stderr, "%s: neither checks nor reported by the walk, or both\n",
			        dc_lint__rule((int)i)->id);
			bad++;
			continue;
		}
		for (p = c->reported_by; p && *p;) {
			size_t len = strcspn(p, ", ");
			char def[128];
			bool found = false;

			snprintf(def, sizeof(def), " %.*s(lint *l", (int)(len < 100 ? len : 100),
			         p);
			for (k = 0; k < sizeof(files) / sizeof(files[0]) && !found; k++)
				found = strstr(src[k], def) != NULL;
			if (!found) {
				fprintf(stderr, "%s: '%.*s' reports it, but is not defined here\n",
				        dc_lint__rule((int)i)->id, (int)len, p);
				bad++;
			}
			p += len;
			p += strspn(p, ", ");
		}
	}
	for (k = 0; k < sizeof(files) / sizeof(files[0]); k++)
		free(src[k]);
	assert_int_equal(bad, 0);
}

/*
 * The table drives the checks it names: with one such rule enabled and every
 * other rule off, each case of the rule reports that rule (when it fires)
 * and nothing else; with its entry off too, nothing is reported.
 */
static void table_drives_checks(void **state)
{
	size_t i, k, n, ran = 0;
	int bad = 0;

	(void)state;
	dc_lint_rules(&n);
	for (i = 0; i < n; i++) {
		const dc_lint_check *c = dc_lint__check((int)i);
		const char *id = dc_lint__rule((int)i)->id;

		if (!c->stmt && !c->cmd)
			continue;
		for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
			dc_finding_list l = { NULL, 0, 0 };
			dc_lint_config lc;
			dc_error err = { 0 };
			size_t j, other = 0;
			int r;

			if (strcmp(cases[k].rule, id) != 0)
				continue;
			config_for(cases[k].cfg, &lc);
			for (r = 0; r < (int)n; r++)
				if (r != (int)i)
					lc.severity[r] = DC_SEV_OFF;
			assert_int_equal(dc_lint_sql(cases[k].sql, "case.sql", &lc, &l, &err), 0);
			for (j = 0; j < l.len; j++)
				other += strcmp(l.items[j].rule->id, id) != 0;
			if (fires(&l, id) != cases[k].fires || other) {
				fprintf(stderr,
				        "%s alone: case %zu: %zu findings, %zu of other rules\n",
				        id, k, l.len, other);
				bad++;
			}
			dc_finding_list_release(&l);
			lc.severity[i] = DC_SEV_OFF;
			assert_int_equal(dc_lint_sql(cases[k].sql, "case.sql", &lc, &l, &err), 0);
			if (l.len) {
				fprintf(stderr, "%s off: case %zu still reports %s\n", id, k,
				        l.items[0].rule->id);
				bad++;
			}
			dc_finding_list_release(&l);
			ran++;
		}
	}
	assert_true(ran > 0);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rule_cases),
		cmocka_unit_test(dynamic_sql_allowed_is_a_warning),
		cmocka_unit_test(every_rule_covered),
		cmocka_unit_test(rules_match_docs),
		cmocka_unit_test(rule_entries_carry_checks),
		cmocka_unit_test(table_drives_checks),
		cmocka_unit_test(positions_and_suggestions),
		cmocka_unit_test(severities_configurable),
		cmocka_unit_test(migration_rules),
		cmocka_unit_test(shard_scope_lint),
		cmocka_unit_test(formats),
		cmocka_unit_test(config_lint_section),
		cmocka_unit_test(many_statements),
		cmocka_unit_test(large_file_in_chunks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
