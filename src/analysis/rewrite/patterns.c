/*
 * plan --safe: the rewrites of ADD COLUMN, SET NOT NULL, CREATE INDEX and
 * ADD CONSTRAINT into phases that hold no blocking lock across a scan.
 */
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include <deployclaw/analysis.h>
#include <deployclaw/rewrite.h>

#include "../analysis_internal.h"
#include "rewrite_internal.h"

/* A SQL string literal. */
static void add_literal(dc_strbuf *sb, const char *s)
{
	dc_strbuf_addch(sb, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			dc_strbuf_addch(sb, '\'');
		dc_strbuf_addch(sb, *s);
	}
	dc_strbuf_addch(sb, '\'');
}

/*
 * VALIDATE CONSTRAINT `name` (just added NOT VALID by `added`, undone by
 * `dropped`) in a validation phase. Undoing a validation: the same
 * constraint again, NOT VALID.
 */
static int emit_validate(rw *r,
                         const PgQuery__RangeVar *rel,
                         const char *name,
                         const dc_strbuf *added,
                         const dc_strbuf *dropped)
{
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	int rc;

	dc_strbuf_add(&down, dropped->buf, dropped->len);
	dc_strbuf_adds(&down, ";\n");
	dc_strbuf_add(&down, added->buf, added->len);
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "VALIDATE CONSTRAINT ");
	dc_analysis__quote_ident(&up, name);
	rc = dc_rewrite__emit(r, K_VALIDATE, "validate", &up, &down);
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

/* CHECK (col IS NOT NULL) NOT VALID; VALIDATE; SET NOT NULL; drop the CHECK. */
int dc_rewrite__not_null(rw *r, const PgQuery__RangeVar *rel, const char *col, bool drop_on_down)
{
	dc_strbuf ck = DC_STRBUF_INIT, up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	dc_strbuf addck = DC_STRBUF_INIT;
	int rc;

	dc_rewrite__object_name(&ck, rel->relname, col, "not_null");
	dc_rewrite__add_alter(&addck, rel);
	dc_strbuf_adds(&addck, "ADD CONSTRAINT ");
	dc_analysis__quote_ident(&addck, ck.buf);
	dc_strbuf_adds(&addck, " CHECK (");
	dc_analysis__quote_ident(&addck, col);
	dc_strbuf_adds(&addck, " IS NOT NULL) NOT VALID");
	dc_strbuf_add(&up, addck.buf, addck.len);
	dc_rewrite__drop_if_exists(&down, rel, "CONSTRAINT", ck.buf);
	if ((rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down)) != 0 ||
	    (rc = emit_validate(r, rel, ck.buf, &up, &down)) != 0)
		goto out;

	/* PG12+: SET NOT NULL skips its scan when a valid CHECK proves it */
	dc_strbuf_reset(&up);
	dc_strbuf_reset(&down);
	if (!drop_on_down) {
		/* for a primary key: its down leaves NOT NULL, as DROP CONSTRAINT
		 * does, since the column may have been NOT NULL before */
		dc_rewrite__lint_ignore(r, "down-not-inverse");
	}
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "ALTER COLUMN ");
	dc_analysis__quote_ident(&up, col);
	dc_strbuf_adds(&up, " SET NOT NULL");
	if (drop_on_down) {
		/* the inverse of SET NOT NULL, back to what the table was */
		dc_strbuf_adds(&down, "-- deployclaw:ignore drop-not-null\n");
		dc_rewrite__add_alter(&down, rel);
		dc_strbuf_adds(&down, "ALTER COLUMN ");
		dc_analysis__quote_ident(&down, col);
		dc_strbuf_adds(&down, " DROP NOT NULL");
	}
	if ((rc = dc_rewrite__emit(r, K_DDL, "contract", &up, &down)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "DROP CONSTRAINT ");
	dc_analysis__quote_ident(&up, ck.buf);
	rc = dc_rewrite__emit(r, K_DDL, "contract", &up, &addck);
out:
	dc_strbuf_release(&addck);
	dc_strbuf_release(&ck);
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

/* Verify assertion: the index a concurrent build made is valid (a failed
 * build leaves an INVALID index that IF NOT EXISTS would then keep). */
static int verify_index_valid(rw *r, const PgQuery__RangeVar *rel, const char *index)
{
	dc_strbuf q = DC_STRBUF_INIT, sb = DC_STRBUF_INIT;
	char *s = NULL;
	int rc = 0;

	dc_analysis__qualified_name(&q, rel->schemaname, index);
	dc_strbuf_adds(&sb, "SELECT coalesce((SELECT indisvalid FROM pg_catalog.pg_index "
	                    "WHERE indexrelid = pg_catalog.to_regclass(");
	add_literal(&sb, q.buf);
	dc_strbuf_adds(&sb, ")), false)");
	if (dc_strbuf_error(&q) || !(s = dc_strbuf_detach(&sb, NULL)) ||
	    dc_ptrvec_push(&r->verify, s) != 0) {
		free(s);
		rc = dc_rewrite__oom(r);
	}
	dc_strbuf_release(&q);
	dc_strbuf_release(&sb);
	return rc;
}

static void drop_index_sql(dc_strbuf *sb, const PgQuery__RangeVar *rel, const char *name)
{
	dc_strbuf_adds(sb, "DROP INDEX CONCURRENTLY IF EXISTS ");
	dc_analysis__qualified_name(sb, rel->schemaname, name);
}

/* Emits `ix` (any CREATE INDEX) as CREATE INDEX CONCURRENTLY IF NOT EXISTS
 * `name`, in a phase of its own. */
static int emit_concurrent_index(rw *r, const PgQuery__IndexStmt *ix, const char *name)
{
	PgQuery__Node *n = dc_rewrite__node_new(r);
	PgQuery__IndexStmt *copy = dc_rewrite__alloc(r, sizeof(*copy));
	char *ph = dc_rewrite__placeholder(r);
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	int rc;

	if (!n || !copy || !ph) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	*copy = *ix;
	copy->idxname = ph;
	copy->concurrent = true;
	copy->if_not_exists = true;
	n->node_case = PG_QUERY__NODE__NODE_INDEX_STMT;
	n->index_stmt = copy;
	if ((rc = dc_rewrite__deparse(r, n, &up)) != 0 ||
	    (rc = dc_rewrite__replace_placeholder(r, &up, ph, name)) != 0)
		goto out;
	drop_index_sql(&down, ix->relation, name);
	if ((rc = dc_rewrite__emit(r, K_CONCURRENT, "index", &up, &down)) != 0)
		goto out;
	rc = verify_index_valid(r, ix->relation, name);
out:
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

int dc_rewrite__index(rw *r, const PgQuery__IndexStmt *ix)
{
	dc_strbuf name = DC_STRBUF_INIT;
	int rc;

	dc_rewrite__index_name(&name, ix);
	rc = dc_strbuf_error(&name) ? dc_rewrite__oom(r) : emit_concurrent_index(r, ix, name.buf);
	dc_strbuf_release(&name);
	return rc;
}

/* FOREIGN KEY / CHECK `con` named `name`: added NOT VALID (undone by
 * `down`), validated in a later phase. */
static int not_valid_then_validate(rw *r,
                                   const PgQuery__AlterTableStmt *a,
                                   const PgQuery__Constraint *con,
                                   const char *name,
                                   const dc_strbuf *down)
{
	dc_strbuf up = DC_STRBUF_INIT;
	PgQuery__Constraint *copy = dc_rewrite__alloc(r, sizeof(*copy));
	PgQuery__Node *cn = dc_rewrite__node_new(r), *stmt;
	char *ph = dc_rewrite__placeholder(r);
	int rc;

	if (!copy || !ph || !cn) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	*copy = *con;
	copy->conname = ph;
	copy->skip_validation = true;
	copy->initially_valid = false;
	cn->node_case = PG_QUERY__NODE__NODE_CONSTRAINT;
	cn->constraint = copy;
	if (!(stmt = dc_rewrite__alter_stmt(
	              r, a,
	              dc_rewrite__cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint, NULL,
	                                   cn))) ||
	    !stmt->alter_table_stmt->cmds[0]) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	if ((rc = dc_rewrite__deparse(r, stmt, &up)) != 0 ||
	    (rc = dc_rewrite__replace_placeholder(r, &up, ph, name)) != 0 ||
	    (rc = dc_rewrite__emit(r, K_DDL, "expand", &up, down)) != 0)
		goto out;
	rc = emit_validate(r, a->relation, name, &up, down);
out:
	dc_strbuf_release(&up);
	return rc;
}

/* The unique index for UNIQUE / PRIMARY KEY `con` on `rel`, built
 * concurrently as `name`. */
static int unique_index(rw *r,
                        const PgQuery__RangeVar *rel,
                        const PgQuery__Constraint *con,
                        const char *name)
{
	PgQuery__IndexStmt *ix = dc_rewrite__alloc(r, sizeof(*ix));
	PgQuery__Node **params = dc_rewrite__alloc_nodes(r, con->n_keys);
	PgQuery__Node **incl = dc_rewrite__alloc_nodes(r, con->n_including);
	char *am = dc_rewrite__strdup(
	        r, con->access_method && con->access_method[0] ? con->access_method : "btree");
	bool ok = ix && params && incl && am;
	size_t i;

	for (i = 0; ok && i < con->n_keys; i++)
		ok = dc_analysis__str(con->keys[i]) &&
		     (params[i] = dc_rewrite__index_elem(r, dc_analysis__str(con->keys[i])));
	for (i = 0; ok && i < con->n_including; i++)
		ok = dc_analysis__str(con->including[i]) &&
		     (incl[i] = dc_rewrite__index_elem(r, dc_analysis__str(con->including[i])));
	if (!ok)
		return r->err && r->err->code ? r->err->code : dc_rewrite__oom(r);
	pg_query__index_stmt__init(ix);
	ix->relation = rel->inh ? (PgQuery__RangeVar *)(uintptr_t)rel : NULL;
	if (!rel->inh) {
		/* CONCURRENTLY takes the table with its children */
		PgQuery__RangeVar *rv = dc_rewrite__alloc(r, sizeof(*rv));

		if (!rv)
			return dc_rewrite__oom(r);
		*rv = *rel;
		rv->inh = true;
		ix->relation = rv;
	}
	ix->access_method = am;
	ix->n_index_params = con->n_keys;
	ix->index_params = params;
	ix->n_index_including_params = con->n_including;
	ix->index_including_params = incl;
	ix->n_options = con->n_options;
	ix->options = con->options;
	ix->table_space = con->indexspace;
	ix->unique = true;
	ix->nulls_not_distinct = con->nulls_not_distinct;
	return emit_concurrent_index(r, ix, name);
}

/* ADD CONSTRAINT: FOREIGN KEY / CHECK NOT VALID then VALIDATE; UNIQUE /
 * PRIMARY KEY from a unique index built concurrently. */
int dc_rewrite__constraint(rw *r, const PgQuery__AlterTableStmt *a, const PgQuery__Constraint *con)
{
	const PgQuery__RangeVar *rel = a->relation;
	dc_strbuf name = DC_STRBUF_INIT, up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	size_t i;
	int rc = 0;

	dc_rewrite__constraint_name(&name, rel, con);
	if (dc_strbuf_error(&name)) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	dc_rewrite__drop_if_exists(&down, rel, "CONSTRAINT", name.buf);

	if (con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN ||
	    con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_CHECK) {
		rc = not_valid_then_validate(r, a, con, name.buf, &down);
		goto out;
	}

	/* UNIQUE / PRIMARY KEY */
	if (con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY) {
		/* ADD PRIMARY KEY USING INDEX sets its columns NOT NULL, scanning
		 * under ACCESS EXCLUSIVE unless a valid CHECK proves it. The
		 * primary key's down leaves NOT NULL, as DROP CONSTRAINT would. */
		for (i = 0; i < con->n_keys; i++)
			if (dc_analysis__str(con->keys[i]) &&
			    (rc = dc_rewrite__not_null(r, rel, dc_analysis__str(con->keys[i]),
			                               false)) != 0)
				goto out;
	}
	if ((rc = unique_index(r, rel, con, name.buf)) != 0)
		goto out;
	dc_rewrite__add_alter(&up, rel);
	dc_strbuf_adds(&up, "ADD CONSTRAINT ");
	dc_analysis__quote_ident(&up, name.buf);
	dc_strbuf_adds(&up, con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY ? " PRIMARY KEY"
	                                                                          : " UNIQUE");
	dc_strbuf_adds(&up, " USING INDEX ");
	dc_analysis__quote_ident(&up, name.buf);
	if (con->deferrable)
		dc_strbuf_adds(&up, " DEFERRABLE");
	if (con->initdeferred)
		dc_strbuf_adds(&up, " INITIALLY DEFERRED");
	rc = dc_rewrite__emit(r, K_DDL, "contract", &up, &down);
out:
	dc_strbuf_release(&name);
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

/* The column of `cd` alone, keeping only a default (and NOT NULL) that
 * PostgreSQL stores in the catalog. */
static int add_bare_column(rw *r,
                           const PgQuery__AlterTableStmt *a,
                           const PgQuery__AlterTableCmd *cmd,
                           const colplan *cp)
{
	const PgQuery__ColumnDef *cd = dc_rewrite__cmd_column(cmd);
	PgQuery__ColumnDef *base = dc_rewrite__alloc(r, sizeof(*base));
	PgQuery__Node *def = dc_rewrite__node_new(r);
	PgQuery__Node **keep = dc_rewrite__alloc_nodes(r, cd->n_constraints);
	PgQuery__Node *cmdn, *stmt;
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	size_t i, nkeep = 0;
	int rc = 0;

	if (!base || !def || !keep) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	*base = *cd;
	base->is_not_null = cd->is_not_null && cp->stable_default;
	for (i = 0; i < cd->n_constraints; i++) {
		PgQuery__Node *n = cd->constraints[i];
		PgQuery__ConstrType t;

		if (n->node_case != PG_QUERY__NODE__NODE_CONSTRAINT)
			continue;
		t = n->constraint->contype;
		if (t == PG_QUERY__CONSTR_TYPE__CONSTR_NULL ||
		    (t == PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT && cp->stable_default) ||
		    (t == PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL && cp->stable_default))
			keep[nkeep++] = n;
	}
	base->n_constraints = nkeep;
	base->constraints = keep;
	def->node_case = PG_QUERY__NODE__NODE_COLUMN_DEF;
	def->column_def = base;
	if (!(cmdn = dc_rewrite__cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn, NULL,
	                                  def)) ||
	    !(stmt = dc_rewrite__alter_stmt(r, a, cmdn))) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	cmdn->alter_table_cmd->missing_ok = cmd->missing_ok;
	if ((rc = dc_rewrite__deparse(r, stmt, &up)) != 0)
		goto out;
	dc_rewrite__drop_if_exists(&down, a->relation, "COLUMN", cd->colname);
	rc = dc_rewrite__emit(r, K_DDL, "expand", &up, &down);
out:
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

/* A volatile default: new rows get it at once, existing rows in batches. */
static int backfill_default(rw *r,
                            const PgQuery__AlterTableStmt *a,
                            const PgQuery__ColumnDef *cd,
                            const colplan *cp)
{
	dc_strbuf up = DC_STRBUF_INIT;
	PgQuery__Node *cmdn, *stmt;
	int rc;

	if (!(cmdn = dc_rewrite__cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault,
	                                  cd->colname, cp->def->raw_expr)) ||
	    !(stmt = dc_rewrite__alter_stmt(r, a, cmdn))) {
		rc = dc_rewrite__oom(r);
		goto out;
	}
	if ((rc = dc_rewrite__deparse(r, stmt, &up)) != 0 ||
	    (rc = dc_rewrite__emit(r, K_DDL, "expand", &up, NULL)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_rewrite__batched_update(&up, a->relation, cd->colname, "DEFAULT", NULL);
	dc_rewrite__note(r, "backfill: fills '%s' in rounds of %d rows, each its own transaction",
	                 cd->colname, DC_REWRITE_BATCH_ROWS);
	rc = dc_rewrite__emit(r, K_BATCH, "backfill", &up, NULL);
out:
	dc_strbuf_release(&up);
	return rc;
}

/* The column constraints of `cd` (CHECK, REFERENCES, UNIQUE, PRIMARY KEY)
 * as table constraints on its column, each rewritten as ADD CONSTRAINT. */
static int column_constraints(rw *r, const PgQuery__AlterTableStmt *a, const PgQuery__ColumnDef *cd)
{
	PgQuery__Constraint *last = NULL;
	size_t i;
	int rc = 0;

	for (i = 0; i < cd->n_constraints; i++) {
		PgQuery__Node *n = cd->constraints[i];
		PgQuery__Constraint *c, *tc;
		PgQuery__Node **cols;

		if (n->node_case != PG_QUERY__NODE__NODE_CONSTRAINT)
			continue;
		c = n->constraint;
		switch (c->contype) {
		case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_DEFERRABLE:
			if (last)
				last->deferrable = true;
			continue;
		case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_DEFERRED:
			if (last)
				last->initdeferred = true;
			continue;
		case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_NOT_DEFERRABLE:
			if (last)
				last->deferrable = false;
			continue;
		case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_IMMEDIATE:
			if (last)
				last->initdeferred = false;
			continue;
		case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
			break;
		default:
			continue;
		}
		if (!(tc = dc_rewrite__alloc(r, sizeof(*tc))) ||
		    !(cols = dc_rewrite__alloc(r, sizeof(*cols))) ||
		    !(cols[0] = dc_rewrite__string_node(r, cd->colname))) {
			rc = dc_rewrite__oom(r);
			goto out;
		}
		*tc = *c;
		if (c->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN) {
			tc->n_fk_attrs = 1;
			tc->fk_attrs = cols;
		} else if (c->contype != PG_QUERY__CONSTR_TYPE__CONSTR_CHECK) {
			tc->n_keys = 1;
			tc->keys = cols;
		}
		last = tc;
		/* deferrability follows in the list: look ahead before emitting */
		while (i + 1 < cd->n_constraints &&
		       cd->constraints[i + 1]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
		       cd->constraints[i + 1]->constraint->contype >=
		               PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_DEFERRABLE) {
			PgQuery__ConstrType t = cd->constraints[++i]->constraint->contype;

			if (t == PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_DEFERRABLE)
				tc->deferrable = true;
			else if (t == PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_NOT_DEFERRABLE)
				tc->deferrable = false;
			else if (t == PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_DEFERRED)
				tc->initdeferred = true;
			else
				tc->initdeferred = false;
		}
		if ((rc = dc_rewrite__constraint(r, a, tc)) != 0)
			goto out;
	}
out:
	return rc;
}

/* ADD COLUMN: the bare column (keeping a stable default), then what it carried. */
int dc_rewrite__add_column(rw *r,
                           const PgQuery__AlterTableStmt *a,
                           const PgQuery__AlterTableCmd *cmd)
{
	const PgQuery__ColumnDef *cd = dc_rewrite__cmd_column(cmd);
	colplan cp;
	int rc;

	dc_rewrite__plan_column(cd, &cp);
	if ((rc = add_bare_column(r, a, cmd, &cp)) != 0)
		return rc;
	if (cp.def && !cp.stable_default && (rc = backfill_default(r, a, cd, &cp)) != 0)
		return rc;
	if (cp.not_null && !cp.stable_default) {
		if (!cp.def)
			dc_rewrite__note(
			        r,
			        "'%s' has no default: the original fails on a table with rows; fill the "
			        "column before 'validate' or validation fails the same way",
			        cd->colname);
		if ((rc = dc_rewrite__not_null(r, a->relation, cd->colname, true)) != 0)
			return rc;
	}
	return column_constraints(r, a, cd);
}
