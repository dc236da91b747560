/*
 * plan --safe: each pattern gives the expected phases and SQL. The rewritten
 * YAML is loaded back through dc_migration_set_load, so every test also
 * checks that the output is a valid native migration whose statements parse.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <deployclaw/analysis.h>
#include <deployclaw/migration.h>
#include <deployclaw/rewrite.h>

#include "tmpdir.h"

/* ---- helpers ---- */

typedef struct rewritten {
	char *yaml;            /* dc_rewrite_safe's output */
	dc_migration_set *set; /* that output, loaded back */
} rewritten;

/* Appends `sql` as a literal block, each line indented by 6. */
static void block(dc_strbuf *sb, const char *key, const char *sql)
{
	const char *p = sql;

	dc_strbuf_addf(sb, "    %s: |\n", key);
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		dc_strbuf_adds(sb, "      ");
		dc_strbuf_add(sb, p, len);
		dc_strbuf_addch(sb, '\n');
		p += len + (e ? 1 : 0);
	}
}

/* Loads a migration of one phase (`transactional` or not) with `up` and `down`. */
static dc_migration_set *load_phase(const char *up, const char *down, bool transactional)
{
	dc_strbuf src = DC_STRBUF_INIT;
	dc_migration_set *in = NULL;
	dc_error err;
	char *d1 = make_dir();
	int rc;

	dc_strbuf_adds(&src, "version: \"7\"\nname: test\nphases:\n  - name: main\n");
	if (!transactional)
		dc_strbuf_adds(&src, "    transaction: false\n");
	block(&src, "up", up);
	if (down)
		block(&src, "down", down);
	dc_strbuf_adds(&src, "verify:\n  - SELECT true\n");
	put(d1, "7.yaml", src.buf);
	memset(&err, 0, sizeof(err));
	rc = dc_migration_set_load(&in, d1, DC_DIALECT_POSTGRES, &err);
	if (rc)
		fail_msg("load: %s\n%s", err.message, src.buf);
	dc_strbuf_release(&src);
	remove_dir(d1);
	return in;
}

/* A migration of one phase (`transactional` or not) with `up` and `down`. */
static void rewrite_phase(const char *up, const char *down, bool transactional, rewritten *out)
{
	dc_migration_set *in = load_phase(up, down, transactional);
	dc_error err;
	char *d2 = make_dir();
	dc_strbuf yaml = DC_STRBUF_INIT;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = dc_rewrite_safe(&in->migrations[0], "7.yaml", &yaml, &err);
	if (rc)
		fail_msg("rewrite: %s (%d:%d)", err.message, err.line, err.col);
	put(d2, "7.yaml", yaml.buf);
	memset(&err, 0, sizeof(err));
	out->set = NULL;
	rc = dc_migration_set_load(&out->set, d2, DC_DIALECT_POSTGRES, &err);
	if (rc)
		fail_msg("the rewrite does not load: %s at %d:%d\n%s", err.message, err.line,
		         err.col, yaml.buf);
	out->yaml = dc_strbuf_detach(&yaml, NULL);
	dc_migration_set_free(in);
	remove_dir(d2);
}

static void rewrite(const char *up, const char *down, rewritten *out)
{
	rewrite_phase(up, down, true, out);
}

static void release(rewritten *rw)
{
	free(rw->yaml);
	dc_migration_set_free(rw->set);
}

static const dc_migration *mig(const rewritten *rw)
{
	assert_int_equal(rw->set->count, 1);
	return &rw->set->migrations[0];
}

/* Phase `i` has `name`, is (not) transactional, batches `batch` rows and
 * holds `n` statements. */
static const dc_phase *phase(const rewritten *rw,
                             size_t i,
                             const char *name,
                             bool tx,
                             int64_t batch,
                             size_t n)
{
	const dc_migration *m = mig(rw);
	const dc_phase *p;

	if (i >= m->nphases)
		fail_msg("no phase %zu in\n%s", i, rw->yaml);
	p = &m->phases[i];
	if (strcmp(p->name, name) != 0 || p->transactional != tx || p->batch_rows != batch ||
	    p->up.nstmts != n)
		fail_msg(
		        "phase %zu: want %s tx=%d batch=%lld n=%zu, got %s tx=%d batch=%lld n=%zu\n%s",
		        i, name, tx, (long long)batch, n, p->name, p->transactional,
		        (long long)p->batch_rows, p->up.nstmts, rw->yaml);
	return p;
}

static void expect_sql(const rewritten *rw, const dc_sql *sql, size_t i, const char *want)
{
	if (i >= sql->nstmts)
		fail_msg("no statement %zu (want '%s') in\n%s", i, want, rw->yaml);
	if (strcmp(sql->stmts[i].sql, want) != 0)
		fail_msg("statement %zu:\n want '%s'\n got  '%s'\n%s", i, want, sql->stmts[i].sql,
		         rw->yaml);
}

static void expect_up(const rewritten *rw, const dc_phase *p, size_t i, const char *want)
{
	expect_sql(rw, &p->up, i, want);
}

static void expect_down(const rewritten *rw, const dc_phase *p, size_t i, const char *want)
{
	expect_sql(rw, &p->down, i, want);
}

static void expect_no_down(const rewritten *rw, const dc_phase *p)
{
	if (p->down.text)
		fail_msg("phase '%s' has a down:\n%s", p->name, rw->yaml);
}

static void expect_text(const rewritten *rw, const char *needle)
{
	if (!strstr(rw->yaml, needle))
		fail_msg("'%s' not in\n%s", needle, rw->yaml);
}

static void expect_nphases(const rewritten *rw, size_t n)
{
	if (mig(rw)->nphases != n)
		fail_msg("want %zu phases, got %zu\n%s", n, mig(rw)->nphases, rw->yaml);
}

/* ---- ADD COLUMN ---- */

static void add_column_not_null_volatile_default(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
	        "ALTER TABLE users DROP COLUMN token;", &rw);
	expect_nphases(&rw, 5);
	assert_string_equal(mig(&rw)->version, "7");
	p = phase(&rw, 0, "expand", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE users ADD COLUMN token uuid");
	expect_up(&rw, p, 1, "ALTER TABLE users ALTER COLUMN token SET DEFAULT gen_random_uuid()");
	expect_down(&rw, p, 0, "ALTER TABLE users DROP COLUMN IF EXISTS token");
	p = phase(&rw, 1, "backfill", false, DC_REWRITE_BATCH_ROWS, 1);
	expect_up(&rw, p, 0,
	          "UPDATE users SET token = DEFAULT WHERE ctid = ANY (ARRAY(SELECT ctid FROM users "
	          "WHERE token IS NULL LIMIT 1000)) AND token IS NULL");
	expect_no_down(&rw, p);
	p = phase(&rw, 2, "expand_2", true, 0, 1);
	expect_up(&rw, p, 0,
	          "ALTER TABLE users ADD CONSTRAINT users_token_not_null CHECK (token IS NOT NULL) "
	          "NOT VALID");
	expect_down(&rw, p, 0, "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_token_not_null");
	p = phase(&rw, 3, "validate", true, 0, 1);
	expect_up(&rw, p, 0, "ALTER TABLE users VALIDATE CONSTRAINT users_token_not_null");
	p = phase(&rw, 4, "contract", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE users ALTER COLUMN token SET NOT NULL");
	expect_up(&rw, p, 1, "ALTER TABLE users DROP CONSTRAINT users_token_not_null");
	expect_down(
	        &rw, p, 0,
	        "ALTER TABLE users ADD CONSTRAINT users_token_not_null CHECK (token IS NOT NULL) "
	        "NOT VALID");
	expect_down(&rw, p, 1, "ALTER TABLE users ALTER COLUMN token DROP NOT NULL");
	/* the original verify is kept */
	assert_int_equal(mig(&rw)->nverify, 1);
	release(&rw);
}

static void add_column_not_null_without_default(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE app.\"Users\" ADD COLUMN \"Nick\" text NOT NULL;", NULL, &rw);
	expect_nphases(&rw, 3);
	p = phase(&rw, 0, "expand", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE app.\"Users\" ADD COLUMN \"Nick\" text");
	expect_up(
	        &rw, p, 1,
	        "ALTER TABLE app.\"Users\" ADD CONSTRAINT \"Users_Nick_not_null\" CHECK (\"Nick\" "
	        "IS NOT NULL) NOT VALID");
	/* downs run in reverse */
	expect_down(&rw, p, 0,
	            "ALTER TABLE app.\"Users\" DROP CONSTRAINT IF EXISTS \"Users_Nick_not_null\"");
	expect_down(&rw, p, 1, "ALTER TABLE app.\"Users\" DROP COLUMN IF EXISTS \"Nick\"");
	phase(&rw, 1, "validate", true, 0, 1);
	phase(&rw, 2, "contract", true, 0, 2);
	expect_text(&rw, "'Nick' has no default");
	release(&rw);
}

static void add_column_stable_default_is_kept(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	/* PG11+ stores a non-volatile default in the catalog: no rewrite, no scan */
	rewrite("ALTER TABLE users ADD COLUMN score bigint NOT NULL DEFAULT 0;\n"
	        "ALTER TABLE users ADD COLUMN seen timestamptz DEFAULT now();",
	        "ALTER TABLE users DROP COLUMN seen;\nALTER TABLE users DROP COLUMN score;", &rw);
	expect_nphases(&rw, 1);
	p = phase(&rw, 0, "main", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE users ADD COLUMN score bigint NOT NULL DEFAULT 0");
	expect_down(&rw, p, 0, "ALTER TABLE users DROP COLUMN seen");
	release(&rw);
}

static void add_column_volatile_default_nullable(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE users ADD COLUMN r float8 DEFAULT random();", NULL, &rw);
	expect_nphases(&rw, 2);
	p = phase(&rw, 0, "expand", true, 0, 2);
	expect_up(&rw, p, 1, "ALTER TABLE users ALTER COLUMN r SET DEFAULT random()");
	phase(&rw, 1, "backfill", false, DC_REWRITE_BATCH_ROWS, 1);
	release(&rw);
}

static void add_column_with_column_constraints(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE users ADD COLUMN org_id bigint REFERENCES orgs (id) "
	        "CHECK (org_id > 0) UNIQUE;",
	        NULL, &rw);
	/* each constraint in turn: NOT VALID, then its validation */
	expect_nphases(&rw, 6);
	p = phase(&rw, 0, "expand", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE users ADD COLUMN org_id bigint");
	expect_up(&rw, p, 1,
	          "ALTER TABLE users ADD CONSTRAINT users_org_id_fkey FOREIGN KEY (org_id) "
	          "REFERENCES orgs (id) NOT VALID");
	p = phase(&rw, 1, "validate", true, 0, 1);
	expect_up(&rw, p, 0, "ALTER TABLE users VALIDATE CONSTRAINT users_org_id_fkey");
	p = phase(&rw, 2, "expand_2", true, 0, 1);
	expect_up(
	        &rw, p, 0,
	        "ALTER TABLE users ADD CONSTRAINT users_org_id_check CHECK (org_id > 0) NOT VALID");
	p = phase(&rw, 3, "validate_2", true, 0, 1);
	expect_up(&rw, p, 0, "ALTER TABLE users VALIDATE CONSTRAINT users_org_id_check");
	p = phase(&rw, 4, "index", false, 0, 1);
	expect_up(&rw, p, 0,
	          "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_org_id_key ON users USING "
	          "btree (org_id)");
	p = phase(&rw, 5, "contract", true, 0, 1);
	expect_up(&rw, p, 0,
	          "ALTER TABLE users ADD CONSTRAINT users_org_id_key UNIQUE USING INDEX "
	          "users_org_id_key");
	release(&rw);
}

/* ---- CREATE INDEX ---- */

static void create_index(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("CREATE INDEX users_email_idx ON users (email) WHERE deleted_at IS NULL;",
	        "DROP INDEX users_email_idx;", &rw);
	expect_nphases(&rw, 1);
	p = phase(&rw, 0, "index", false, 0, 1);
	expect_up(&rw, p, 0,
	          "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users USING btree "
	          "(email) WHERE deleted_at IS NULL");
	expect_down(&rw, p, 0, "DROP INDEX CONCURRENTLY IF EXISTS users_email_idx");
	/* the build must have left a valid index */
	assert_int_equal(mig(&rw)->nverify, 2);
	assert_non_null(strstr(mig(&rw)->verify[1].stmts[0].sql, "indisvalid"));
	assert_non_null(strstr(mig(&rw)->verify[1].stmts[0].sql, "to_regclass('users_email_idx')"));
	release(&rw);
}

static void create_index_quoted_and_unnamed(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("CREATE UNIQUE INDEX \"Idx\" ON \"S\".\"T\" (\"A\");\n"
	        "CREATE INDEX ON users (lower(email), created_at);\n"
	        "CREATE INDEX ON a_table_with_a_long_name_of_forty_bytes_xx "
	        "(a_column_with_a_long_name_of_forty_bytes);",
	        NULL, &rw);
	expect_nphases(&rw, 3);
	p = phase(&rw, 0, "index", false, 0, 1);
	/* libpg_query's deparser would print the name bare: "Idx" must stay quoted */
	expect_up(
	        &rw, p, 0,
	        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"Idx\" ON \"S\".\"T\" USING btree "
	        "(\"A\")");
	expect_down(&rw, p, 0, "DROP INDEX CONCURRENTLY IF EXISTS \"S\".\"Idx\"");
	p = phase(&rw, 1, "index_2", false, 0, 1);
	expect_up(&rw, p, 0,
	          "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_lower_created_at_idx ON users "
	          "USING btree (lower(email), created_at)");
	p = phase(&rw, 2, "index_3", false, 0, 1);
	/* PostgreSQL's makeObjectName: 63 bytes, the longer part shortened first */
	expect_up(&rw, p, 0,
	          "CREATE INDEX CONCURRENTLY IF NOT EXISTS "
	          "a_table_with_a_long_name_of_f_a_column_with_a_long_name_of__idx ON "
	          "a_table_with_a_long_name_of_forty_bytes_xx USING btree "
	          "(a_column_with_a_long_name_of_forty_bytes)");
	release(&rw);
}

static void create_index_safe_already(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite_phase("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);",
	              "DROP INDEX CONCURRENTLY IF EXISTS i;", false, &rw);
	expect_nphases(&rw, 1);
	p = phase(&rw, 0, "main", false, 0, 1);
	expect_up(&rw, p, 0, "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)");
	expect_down(&rw, p, 0, "DROP INDEX CONCURRENTLY IF EXISTS i");
	release(&rw);
}

static void create_index_on_new_table_is_kept(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("CREATE TABLE t (id bigint, a text);\nCREATE INDEX t_a ON t (a);\n"
	        "ALTER TABLE t ADD CONSTRAINT t_a_key UNIQUE (a);",
	        "DROP TABLE t;", &rw);
	expect_nphases(&rw, 1);
	p = phase(&rw, 0, "main", true, 0, 3);
	expect_up(&rw, p, 1, "CREATE INDEX t_a ON t (a)");
	release(&rw);
}

/* ---- constraints ---- */

static void add_foreign_key(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) "
	        "REFERENCES orgs (id) ON DELETE CASCADE;",
	        "ALTER TABLE users DROP CONSTRAINT users_org_fk;", &rw);
	expect_nphases(&rw, 2);
	p = phase(&rw, 0, "expand", true, 0, 1);
	expect_up(&rw, p, 0,
	          "ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES "
	          "orgs (id) ON DELETE CASCADE NOT VALID");
	expect_down(&rw, p, 0, "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_org_fk");
	p = phase(&rw, 1, "validate", true, 0, 1);
	expect_up(&rw, p, 0, "ALTER TABLE users VALIDATE CONSTRAINT users_org_fk");
	release(&rw);
}

static void add_check_unnamed_and_quoted(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE \"order\" ADD CHECK (total >= 0);\n"
	        "ALTER TABLE \"order\" ADD CONSTRAINT \"Positive\" CHECK (total > 0 AND qty > 0);\n"
	        "ALTER TABLE \"order\" ADD CHECK (total > qty);",
	        NULL, &rw);
	p = phase(&rw, 0, "expand", true, 0, 1);
	/* "order" is a reserved word: quoted; the one-column CHECK is <table>_<col>_check */
	expect_up(
	        &rw, p, 0,
	        "ALTER TABLE \"order\" ADD CONSTRAINT order_total_check CHECK (total >= 0) NOT VALID");
	p = phase(&rw, 2, "expand_2", true, 0, 1);
	expect_up(&rw, p, 0,
	          "ALTER TABLE \"order\" ADD CONSTRAINT \"Positive\" CHECK (total > 0 AND qty > 0) "
	          "NOT VALID");
	p = phase(&rw, 3, "validate_2", true, 0, 1);
	expect_up(&rw, p, 0, "ALTER TABLE \"order\" VALIDATE CONSTRAINT \"Positive\"");
	p = phase(&rw, 4, "expand_3", true, 0, 1);
	/* two columns: <table>_check */
	expect_up(&rw, p, 0,
	          "ALTER TABLE \"order\" ADD CONSTRAINT order_check CHECK (total > qty) NOT VALID");
	release(&rw);
}

static void not_valid_already_is_kept(void **state)
{
	rewritten rw;

	(void)state;
	rewrite("ALTER TABLE users ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\n"
	        "ALTER TABLE users VALIDATE CONSTRAINT c;",
	        "ALTER TABLE users DROP CONSTRAINT c;", &rw);
	expect_nphases(&rw, 1);
	phase(&rw, 0, "main", true, 0, 2);
	release(&rw);
}

static void add_unique(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE users ADD CONSTRAINT \"Email\" UNIQUE (email) INCLUDE (id) "
	        "WITH (fillfactor = 90) DEFERRABLE INITIALLY DEFERRED;",
	        NULL, &rw);
	expect_nphases(&rw, 2);
	p = phase(&rw, 0, "index", false, 0, 1);
	expect_up(&rw, p, 0,
	          "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"Email\" ON users USING btree "
	          "(email) INCLUDE (id) WITH (fillfactor=90)");
	expect_down(&rw, p, 0, "DROP INDEX CONCURRENTLY IF EXISTS \"Email\"");
	p = phase(&rw, 1, "contract", true, 0, 1);
	expect_up(
	        &rw, p, 0,
	        "ALTER TABLE users ADD CONSTRAINT \"Email\" UNIQUE USING INDEX \"Email\" DEFERRABLE "
	        "INITIALLY DEFERRED");
	expect_down(&rw, p, 0, "ALTER TABLE users DROP CONSTRAINT IF EXISTS \"Email\"");
	release(&rw);
}

static void add_primary_key(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE s.accounts ADD PRIMARY KEY (id);", NULL, &rw);
	expect_nphases(&rw, 5);
	p = phase(&rw, 0, "expand", true, 0, 1);
	expect_up(
	        &rw, p, 0,
	        "ALTER TABLE s.accounts ADD CONSTRAINT accounts_id_not_null CHECK (id IS NOT NULL) "
	        "NOT VALID");
	phase(&rw, 1, "validate", true, 0, 1);
	p = phase(&rw, 2, "contract", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE s.accounts ALTER COLUMN id SET NOT NULL");
	/* dropping a primary key leaves NOT NULL: so does this down */
	expect_down(
	        &rw, p, 0,
	        "ALTER TABLE s.accounts ADD CONSTRAINT accounts_id_not_null CHECK (id IS NOT NULL) "
	        "NOT VALID");
	assert_int_equal(p->down.nstmts, 1);
	p = phase(&rw, 3, "index", false, 0, 1);
	expect_up(
	        &rw, p, 0,
	        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_pkey ON s.accounts USING "
	        "btree (id)");
	expect_down(&rw, p, 0, "DROP INDEX CONCURRENTLY IF EXISTS s.accounts_pkey");
	p = phase(&rw, 4, "contract_2", true, 0, 1);
	expect_up(&rw, p, 0,
	          "ALTER TABLE s.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY USING INDEX "
	          "accounts_pkey");
	release(&rw);
}

/* ---- SET NOT NULL ---- */

static void set_not_null(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE ONLY users ALTER COLUMN \"user\" SET NOT NULL;",
	        "ALTER TABLE users ALTER COLUMN \"user\" DROP NOT NULL;", &rw);
	expect_nphases(&rw, 3);
	p = phase(&rw, 0, "expand", true, 0, 1);
	expect_up(
	        &rw, p, 0,
	        "ALTER TABLE ONLY users ADD CONSTRAINT users_user_not_null CHECK (\"user\" IS NOT "
	        "NULL) NOT VALID");
	p = phase(&rw, 1, "validate", true, 0, 1);
	expect_up(&rw, p, 0, "ALTER TABLE ONLY users VALIDATE CONSTRAINT users_user_not_null");
	/* a validation is undone by the same constraint again, NOT VALID */
	expect_down(&rw, p, 0,
	            "ALTER TABLE ONLY users DROP CONSTRAINT IF EXISTS users_user_not_null");
	expect_down(
	        &rw, p, 1,
	        "ALTER TABLE ONLY users ADD CONSTRAINT users_user_not_null CHECK (\"user\" IS NOT "
	        "NULL) NOT VALID");
	p = phase(&rw, 2, "contract", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE ONLY users ALTER COLUMN \"user\" SET NOT NULL");
	expect_down(&rw, p, 1, "ALTER TABLE ONLY users ALTER COLUMN \"user\" DROP NOT NULL");
	release(&rw);
}

/* ---- ALTER COLUMN TYPE ---- */

static void alter_type(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE users ALTER COLUMN id TYPE bigint;",
	        "ALTER TABLE users ALTER COLUMN id TYPE integer;", &rw);
	expect_nphases(&rw, 3);
	p = phase(&rw, 0, "expand", true, 0, 3);
	expect_up(&rw, p, 0, "ALTER TABLE users ADD COLUMN id_dc_new bigint");
	expect_up(&rw, p, 1,
	          "CREATE FUNCTION users_id_dc_sync() RETURNS trigger LANGUAGE plpgsql AS $dc$\n"
	          "BEGIN\n  NEW.id_dc_new := new.id::bigint;\n  RETURN NEW;\nEND\n$dc$");
	expect_up(&rw, p, 2,
	          "CREATE TRIGGER users_id_dc_sync BEFORE INSERT OR UPDATE ON users FOR EACH ROW "
	          "EXECUTE FUNCTION users_id_dc_sync()");
	expect_down(&rw, p, 0, "DROP TRIGGER IF EXISTS users_id_dc_sync ON users");
	expect_down(&rw, p, 2, "ALTER TABLE users DROP COLUMN IF EXISTS id_dc_new");
	p = phase(&rw, 1, "backfill", false, DC_REWRITE_BATCH_ROWS, 1);
	expect_up(
	        &rw, p, 0,
	        "UPDATE users SET id_dc_new = id::bigint WHERE ctid = ANY (ARRAY(SELECT ctid FROM "
	        "users WHERE id_dc_new IS NULL AND (id::bigint) IS NOT NULL LIMIT 1000)) AND "
	        "id_dc_new IS NULL AND (id::bigint) IS NOT NULL");
	p = phase(&rw, 2, "contract", true, 0, 4);
	expect_up(&rw, p, 2, "ALTER TABLE users DROP COLUMN id");
	expect_up(&rw, p, 3, "ALTER TABLE users RENAME COLUMN id_dc_new TO id");
	/* the original down, the only statement that knows the old type */
	expect_down(&rw, p, 0, "ALTER TABLE users ALTER COLUMN id TYPE integer");
	expect_text(&rw, "APPLICATION DEPLOY NEEDED before this phase");
	release(&rw);
}

static void alter_type_using(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	rewrite("ALTER TABLE s.\"Prices\" ALTER COLUMN \"Cents\" TYPE numeric(12,2) "
	        "USING \"Cents\" / 100.0 + bonus;",
	        NULL, &rw);
	p = phase(&rw, 0, "expand", true, 0, 3);
	expect_up(&rw, p, 0, "ALTER TABLE s.\"Prices\" ADD COLUMN \"Cents_dc_new\" numeric(12, 2)");
	/* every column of the USING expression is read from NEW */
	expect_up(
	        &rw, p, 1,
	        "CREATE FUNCTION s.\"Prices_Cents_dc_sync\"() RETURNS trigger LANGUAGE plpgsql AS "
	        "$dc$\nBEGIN\n  NEW.\"Cents_dc_new\" := (new.\"Cents\" / 100.0) + new.bonus;\n  "
	        "RETURN NEW;\nEND\n$dc$");
	p = phase(&rw, 2, "contract", true, 0, 4);
	expect_no_down(&rw, p);
	expect_text(&rw, "no down: the old type of 'Cents'");
	release(&rw);
}

static void alter_type_widening_is_kept(void **state)
{
	rewritten rw;

	(void)state;
	rewrite("ALTER TABLE users ALTER COLUMN name TYPE text;", "SELECT 1;", &rw);
	expect_nphases(&rw, 1);
	phase(&rw, 0, "main", true, 0, 1);
	release(&rw);
}

/* ---- mixed ---- */

static void passthrough_and_split(void **state)
{
	rewritten rw;
	const dc_phase *p;

	(void)state;
	/* BEGIN/COMMIT go; a CIC in a transactional phase gets a phase of its own;
	 * what is safe stays, with its mechanical inverse as down */
	rewrite("BEGIN;\n"
	        "CREATE TABLE audit (id bigint, at timestamptz);\n"
	        "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_a ON users (a);\n"
	        "ALTER TABLE users ADD COLUMN note text, ADD CONSTRAINT users_note_len "
	        "CHECK (char_length(note) < 100);\n"
	        "COMMENT ON TABLE users IS 'x';\n"
	        "COMMIT;",
	        NULL, &rw);
	p = phase(&rw, 0, "main", true, 0, 1);
	expect_up(&rw, p, 0, "CREATE TABLE audit (id bigint, at timestamptz)");
	expect_down(&rw, p, 0, "DROP TABLE IF EXISTS audit");
	p = phase(&rw, 1, "main_2", false, 0, 1);
	expect_up(&rw, p, 0, "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_a ON users (a)");
	expect_down(&rw, p, 0, "DROP INDEX CONCURRENTLY IF EXISTS users_a");
	p = phase(&rw, 2, "expand", true, 0, 2);
	expect_up(&rw, p, 0, "ALTER TABLE users ADD COLUMN note text");
	expect_up(&rw, p, 1,
	          "ALTER TABLE users ADD CONSTRAINT users_note_len CHECK (char_length(note) < 100) "
	          "NOT VALID");
	p = phase(&rw, 3, "validate", true, 0, 1);
	p = phase(&rw, 4, "main_3", true, 0, 1);
	expect_up(&rw, p, 0, "COMMENT ON TABLE users IS 'x'");
	expect_text(&rw, "dropped 'BEGIN'");
	expect_text(&rw, "no mechanical inverse of 'COMMENT ON TABLE users IS 'x''");
	release(&rw);
}

static void unsupported_is_kept_with_a_note(void **state)
{
	rewritten rw;

	(void)state;
	rewrite("ALTER TABLE users ADD COLUMN n bigint GENERATED ALWAYS AS IDENTITY NOT NULL;",
	        "ALTER TABLE users DROP COLUMN n;", &rw);
	expect_nphases(&rw, 1);
	phase(&rw, 0, "main", true, 0, 1);
	expect_text(&rw,
	            "no online rewrite for adding the identity, generated or serial column 'n'");
	release(&rw);
}

static void every_schema_phase_has_a_down(void **state)
{
	rewritten rw;
	const dc_migration *m;
	size_t i;

	(void)state;
	rewrite("ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();\n"
	        "CREATE INDEX ON users (token);\n"
	        "ALTER TABLE users ADD FOREIGN KEY (org) REFERENCES orgs;\n"
	        "ALTER TABLE users ADD UNIQUE (token);\n"
	        "ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
	        NULL, &rw);
	m = mig(&rw);
	for (i = 0; i < m->nphases; i++) {
		const dc_phase *p = &m->phases[i];
		if (p->batch_rows == 0 && !p->down.text)
			fail_msg("phase '%s' has no down\n%s", p->name, rw.yaml);
	}
	release(&rw);
}

/* ---- the rewrite lints clean ---- */

/*
 * dc_lint_migration (the analysis module's lint) must find nothing at
 * warning or above in a rewrite. The inputs use bigint/text so that rules
 * about the user's own type choices stay quiet.
 */

/*
 * Known gap, reported to the lint's owner: the primary key's NOT NULL step
 * keeps NOT NULL on rollback on purpose (as DROP CONSTRAINT does; the column
 * may have been NOT NULL before) and says so with "-- deployclaw:ignore
 * down-not-inverse", but that rule is checked per phase and the ignore does
 * not reach it yet. Tolerated for that input only; remove once it does.
 */
static bool known_lint_gap(const char *input, const dc_finding *f)
{
	/* The type swap's contract is undone by the original's down (the old
	 * type is in no other statement): a full rollback is right, but that
	 * down is not the statement-by-statement inverse the rule looks for. */
	if (strstr(input, " TYPE ") && strcmp(f->rule->name, "down-not-inverse") == 0)
		return true;
	return strstr(input, "PRIMARY KEY") && (strcmp(f->rule->name, "down-not-inverse") == 0 ||
	                                        strcmp(f->rule->name, "unused-ignore") == 0);
}

static void rewrites_lint_clean(void **state)
{
	static const char *const inputs[] = {
		"ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
		"ALTER TABLE users ADD COLUMN r float8 DEFAULT random();",
		"ALTER TABLE users ADD COLUMN nick text NOT NULL;",
		"ALTER TABLE users ADD COLUMN org_id bigint REFERENCES orgs (id) CHECK (org_id > 0);",
		"CREATE INDEX ON users (lower(email), created_at);",
		"CREATE UNIQUE INDEX users_email ON users (email);",
		"ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs (id);",
		"ALTER TABLE users ADD CHECK (score >= 0);",
		"ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
		"ALTER TABLE accounts ADD PRIMARY KEY (id);",
		"ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
		"ALTER TABLE users ALTER COLUMN qty TYPE numeric(20, 0);",
		"BEGIN;\nCREATE INDEX users_a ON users (a);\nCOMMIT;",
	};
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		rewritten rw;
		dc_finding_list l = { NULL, 0, 0 };
		dc_strbuf shown = DC_STRBUF_INIT;
		dc_error err;

		memset(&err, 0, sizeof(err));
		/* the swap's down is the original's: only it knows the old type */
		rewrite(inputs[i],
		        strstr(inputs[i], " TYPE ")
		                ? "ALTER TABLE users ALTER COLUMN qty TYPE bigint;"
		                : NULL,
		        &rw);
		assert_int_equal(dc_lint_migration(mig(&rw), NULL, &l, &err), 0);
		for (k = 0; k < l.len; k++)
			if (l.items[k].severity >= DC_SEV_WARNING &&
			    !known_lint_gap(inputs[i], &l.items[k]))
				dc_strbuf_addf(&shown, "  %d:%d %s %s\n", l.items[k].line,
				               l.items[k].col, l.items[k].rule->name,
				               l.items[k].message);
		if (shown.len)
			fail_msg("the rewrite of '%s' does not lint clean:\n%s%s", inputs[i],
			         shown.buf, rw.yaml);
		dc_strbuf_release(&shown);
		dc_finding_list_release(&l);
		release(&rw);
	}
}

/* ---- plan and plan --safe agree ---- */

/*
 * For every default, `plan` (the statement model) and `plan --safe` give the
 * same answer to "does ADD COLUMN ... NOT NULL DEFAULT <expr> rewrite the
 * table": PostgreSQL 11+ evaluates a non-volatile (stable or immutable)
 * default once and stores it in the catalog; a volatile one is evaluated per
 * row. `volatile_` is that answer.
 */
static void plan_and_safe_agree_on_defaults(void **state)
{
	static const struct {
		const char *expr;
		bool volatile_;
	} defaults[] = {
		{ "0", false },
		{ "'x'", false },
		{ "'x'::text", false },
		{ "CAST(1 AS text)", false },
		{ "'a' || 'b'", false },
		{ "now()", false },
		{ "now()::text", false },
		{ "pg_catalog.now()::text", false },
		{ "CURRENT_TIMESTAMP::text", false },
		{ "statement_timestamp()::text", false },
		{ "current_setting('app.x')", false },
		{ "current_setting('app.x', true)", false },
		{ "coalesce(current_setting('app.x', true), 'none')", false },
		{ "greatest('a', 'b')", false },
		{ "lower('X')", false },
		{ "md5('x')", false },
		{ "clock_timestamp()::text", true },
		{ "timeofday()", true },
		{ "random()::text", true },
		{ "gen_random_uuid()::text", true },
		{ "nextval('s')::text", true },
		{ "md5(random()::text)", true },
		{ "coalesce(NULL, random()::text)", true },
		{ "app.lower('X')", true },
		{ "my_func()", true },
	};

	size_t i;

	(void)state;
	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		dc_strbuf sql = DC_STRBUF_INIT;
		dc_stmt_list l = { NULL, 0, 0 };
		dc_error err;
		rewritten rw;
		bool plan_rewrites, safe_backfills;

		memset(&err, 0, sizeof(err));
		dc_strbuf_addf(&sql, "ALTER TABLE users ADD COLUMN c text NOT NULL DEFAULT %s;",
		               defaults[i].expr);
		assert_int_equal(dc_pg_analyze(sql.buf, "t.sql", 1, 1, &l, &err), 0);
		assert_int_equal(l.len, 1);
		plan_rewrites = l.items[0].effect == DC_EFFECT_REWRITE;
		if (!plan_rewrites && l.items[0].effect != DC_EFFECT_NONE)
			fail_msg("'%s': plan says %s", defaults[i].expr,
			         dc_effect_name(l.items[0].effect));
		rewrite(sql.buf, "ALTER TABLE users DROP COLUMN c;", &rw);
		safe_backfills = strstr(rw.yaml, "name: \"backfill\"") != NULL;
		if (!safe_backfills && mig(&rw)->nphases != 1)
			fail_msg("'%s': kept but in %zu phases\n%s", defaults[i].expr,
			         mig(&rw)->nphases, rw.yaml);
		if (plan_rewrites != defaults[i].volatile_ ||
		    safe_backfills != defaults[i].volatile_)
			fail_msg("DEFAULT %s: want %s, plan says %s, plan --safe %s\n%s",
			         defaults[i].expr,
			         defaults[i].volatile_ ? "volatile" : "non-volatile",
			         dc_effect_name(l.items[0].effect),
			         safe_backfills ? "backfills" : "keeps it", rw.yaml);
		release(&rw);
		dc_stmt_list_release(&l);
		dc_strbuf_release(&sql);
	}
}

/* ---- identifiers that are keywords ---- */

/*
 * "left" is a keyword (type_func_name) that the old hand-written list in the
 * model lacked: its inverse came out as `DROP COLUMN left`, which does not
 * parse. The inverse must parse and quote it, as plan --safe's down does.
 */
static void keyword_column_inverse_is_quoted(void **state)
{
	static const char *const cols[] = { "left", "select", "user", "time", "between" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		dc_strbuf sql = DC_STRBUF_INIT, want = DC_STRBUF_INIT;
		dc_stmt_list l = { NULL, 0, 0 }, back = { NULL, 0, 0 };
		dc_error err;
		rewritten rw;
		const dc_phase *p;

		memset(&err, 0, sizeof(err));
		dc_strbuf_addf(&sql, "ALTER TABLE users ADD COLUMN \"%s\" int", cols[i]);
		dc_strbuf_addf(&want, "ALTER TABLE users DROP COLUMN \"%s\"", cols[i]);
		assert_int_equal(dc_pg_analyze(sql.buf, "t.sql", 1, 1, &l, &err), 0);
		assert_int_equal(l.len, 1);
		assert_non_null(l.items[0].inverse);
		assert_string_equal(l.items[0].inverse, want.buf);
		assert_int_equal(dc_pg_analyze(l.items[0].inverse, "inv.sql", 1, 1, &back, &err),
		                 0);
		assert_int_equal(back.len, 1);
		/* plan --safe quotes the same way */
		dc_strbuf_adds(&sql, " CHECK (\"");
		dc_strbuf_adds(&sql, cols[i]);
		dc_strbuf_adds(&sql, "\" > 0);");
		rewrite(sql.buf, NULL, &rw);
		p = phase(&rw, 0, "expand", true, 0, 2);
		dc_strbuf_reset(&want);
		dc_strbuf_addf(&want, "ALTER TABLE users DROP COLUMN IF EXISTS \"%s\"", cols[i]);
		expect_down(&rw, p, 1, want.buf);
		release(&rw);
		dc_stmt_list_release(&back);
		dc_stmt_list_release(&l);
		dc_strbuf_release(&sql);
		dc_strbuf_release(&want);
	}
}

/*
 * The lint's down-not-inverse check parses each statement's inverse; an
 * inverse that did not parse (`DROP COLUMN left`) made it skip the
 * statement without a word. A down that does not drop "left" is reported,
 * one that does is not.
 */
static void keyword_column_down_is_checked(void **state)
{
	static const struct {
		const char *down;
		bool reported;
	} downs[] = {
		{ "ALTER TABLE users DROP COLUMN \"right\";", true },
		{ "ALTER TABLE users DROP COLUMN \"left\";", false },
	};

	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(downs) / sizeof(downs[0]); i++) {
		dc_migration_set *set = load_phase("ALTER TABLE users ADD COLUMN \"left\" int;",
		                                   downs[i].down, true);
		dc_finding_list l = { NULL, 0, 0 };
		dc_error err;
		bool reported = false;

		memset(&err, 0, sizeof(err));
		assert_int_equal(dc_lint_migration(&set->migrations[0], NULL, &l, &err), 0);
		for (k = 0; k < l.len; k++)
			if (strcmp(l.items[k].rule->name, "down-not-inverse") == 0)
				reported = true;
		if (reported != downs[i].reported)
			fail_msg("down '%s': down-not-inverse %s", downs[i].down,
			         reported ? "reported" : "not reported");
		dc_finding_list_release(&l);
		dc_migration_set_free(set);
	}
}

static void bad_input(void **state)
{
	dc_migration m;
	dc_strbuf sb = DC_STRBUF_INIT;
	dc_error err;

	(void)state;
	memset(&m, 0, sizeof(m));
	memset(&err, 0, sizeof(err));
	assert_int_equal(dc_rewrite_safe(NULL, NULL, &sb, &err), DC_EINVAL);
	memset(&err, 0, sizeof(err));
	m.version = (char *)(uintptr_t) "1";
	assert_int_equal(dc_rewrite_safe(&m, NULL, &sb, &err), DC_EINVAL);
	assert_non_null(strstr(err.message, "no phases"));
	dc_strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_column_not_null_volatile_default),
		cmocka_unit_test(add_column_not_null_without_default),
		cmocka_unit_test(add_column_stable_default_is_kept),
		cmocka_unit_test(add_column_volatile_default_nullable),
		cmocka_unit_test(add_column_with_column_constraints),
		cmocka_unit_test(create_index),
		cmocka_unit_test(create_index_quoted_and_unnamed),
		cmocka_unit_test(create_index_safe_already),
		cmocka_unit_test(create_index_on_new_table_is_kept),
		cmocka_unit_test(add_foreign_key),
		cmocka_unit_test(add_check_unnamed_and_quoted),
		cmocka_unit_test(not_valid_already_is_kept),
		cmocka_unit_test(add_unique),
		cmocka_unit_test(add_primary_key),
		cmocka_unit_test(set_not_null),
		cmocka_unit_test(alter_type),
		cmocka_unit_test(alter_type_using),
		cmocka_unit_test(alter_type_widening_is_kept),
		cmocka_unit_test(passthrough_and_split),
		cmocka_unit_test(unsupported_is_kept_with_a_note),
		cmocka_unit_test(every_schema_phase_has_a_down),
		cmocka_unit_test(rewrites_lint_clean),
		cmocka_unit_test(plan_and_safe_agree_on_defaults),
		cmocka_unit_test(keyword_column_inverse_is_quoted),
		cmocka_unit_test(keyword_column_down_is_checked),
		cmocka_unit_test(bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
