/*
 * locking.c -- the DC1xx rules about locks held too long: index builds and
 * drops without CONCURRENTLY, constraints validated under a strong lock,
 * SET NOT NULL scans, lock and statement timeouts, and the statements
 * (REINDEX, VACUUM FULL, triggers, domains, ...) that block their table.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lint_internal.h"

static void suggest_not_valid(lint *l, dc_strbuf *sb, const PgQuery__RangeVar *rv, const char *con)
{
	size_t e = l->stmt_end;

	while (e > l->stmt_off &&
	       (l->text[e - 1] == ';' || l->text[e - 1] == ' ' || l->text[e - 1] == '\n' ||
	        l->text[e - 1] == '\t' || l->text[e - 1] == '\r'))
		e--;
	dc_strbuf_reset(sb);
	dc_strbuf_add(sb, l->text + l->stmt_off, e - l->stmt_off);
	dc_strbuf_adds(sb, " NOT VALID;\n-- in a later phase:\nALTER TABLE ");
	dc_analysis__qualified(sb, rv);
	dc_strbuf_adds(sb, " VALIDATE CONSTRAINT ");
	dc_analysis__quote_ident(sb, con && con[0] ? con : "<name>");
	dc_strbuf_addch(sb, ';');
}

static bool is_not_null_check(const PgQuery__Constraint *k, const char **col)
{
	const PgQuery__Node *e = k->raw_expr;
	const PgQuery__NullTest *nt;

	if (!e || e->node_case != PG_QUERY__NODE__NODE_NULL_TEST)
		return false;
	nt = e->null_test;
	if (nt->nulltesttype != PG_QUERY__NULL_TEST_TYPE__IS_NOT_NULL || !nt->arg ||
	    nt->arg->node_case != PG_QUERY__NODE__NODE_COLUMN_REF ||
	    nt->arg->column_ref->n_fields != 1)
		return false;
	*col = dc_analysis__str(nt->arg->column_ref->fields[0]);
	return *col != NULL;
}

/*
 * ADD CONSTRAINT's walk: what later sub-commands and statements look at:
 * foreign keys (DC206), CHECK (col IS NOT NULL) (DC108), constraints added
 * NOT VALID in this transaction (DC107).
 */
void dc_lint__add_constraint(lint *l, const PgQuery__RangeVar *rv, const PgQuery__Constraint *k)
{
	const char *t = dc_lint__rvname(rv), *col = NULL;

	if (k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_CHECK && is_not_null_check(k, &col) &&
	    k->conname)
		dc_lint__put(l, &l->nn_checks, dc_lint__key(l, t, k->conname),
		             dc_lint__keep_str(l, col));
	if (k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN && k->conname)
		dc_lint__put(l, &l->fks, dc_lint__key(l, t, k->conname), NULL);
	if ((k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_CHECK ||
	     k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN) &&
	    k->skip_validation && k->conname)
		dc_lint__put(l, &l->tx_not_valid, dc_lint__key(l, t, k->conname), NULL);
}

/* The constraint of type `t` an ADD CONSTRAINT adds to a table this migration did not create. */
static const PgQuery__Constraint *added_constraint(const dc_lint_cmd *cmd, PgQuery__ConstrType t)
{
	const PgQuery__AlterTableCmd *c = cmd->c;

	if ((c->subtype != PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint &&
	     c->subtype != PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraintRecurse) ||
	    !c->def || c->def->node_case != PG_QUERY__NODE__NODE_CONSTRAINT || cmd->is_new ||
	    c->def->constraint->contype != t)
		return NULL;
	return c->def->constraint;
}

/*
 * The constraints an ADD CONSTRAINT or an ADD COLUMN's column adds (DC105,
 * DC106, DC109-DC111): sub-command checks, from rules.def.
 */
void dc_lint__check_fk_validates(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__Constraint *k;
	dc_strbuf sb = DC_STRBUF_INIT;
	const char *col;
	bool has_default;

	if ((k = added_constraint(cmd, PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN)) &&
	    !k->skip_validation) {
		suggest_not_valid(l, &sb, cmd->rv, k->conname);
		dc_lint__emit_at(
		        l, R_FK_VALIDATES, dc_lint__at(l, k->location), sb.buf,
		        "foreign key '%s' on '%s' validates under SHARE ROW EXCLUSIVE on '%s' and "
		        "'%s': writes on both wait",
		        k->conname ? k->conname : "", cmd->qual, cmd->qual,
		        dc_lint__rvname(k->pktable));
	} else if ((k = dc_lint__column_constraint(l, cmd, PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN,
	                                           &col, &has_default)) &&
	           has_default) {
		dc_lint__emit_at(
		        l, R_FK_VALIDATES, dc_lint__at(l, k->location), NULL,
		        "column '%s' references '%s' and has a default: every row is validated "
		        "under SHARE ROW EXCLUSIVE",
		        col, dc_lint__rvname(k->pktable));
	}
	if (dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
}

void dc_lint__check_check_validates(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__Constraint *k;
	dc_strbuf sb = DC_STRBUF_INIT;
	const char *col;
	bool has_default;

	if ((k = added_constraint(cmd, PG_QUERY__CONSTR_TYPE__CONSTR_CHECK)) &&
	    !k->skip_validation) {
		suggest_not_valid(l, &sb, cmd->rv, k->conname);
		dc_lint__emit_at(
		        l, R_CHECK_VALIDATES, dc_lint__at(l, k->location), sb.buf,
		        "CHECK constraint '%s' on '%s' scans the table under ACCESS EXCLUSIVE",
		        k->conname ? k->conname : "", cmd->qual);
	} else if ((k = dc_lint__column_constraint(l, cmd, PG_QUERY__CONSTR_TYPE__CONSTR_CHECK,
	                                           &col, &has_default)) &&
	           !k->skip_validation) {
		dc_lint__emit_at(l, R_CHECK_VALIDATES, dc_lint__at(l, k->location), NULL,
		                 "the CHECK on new column '%s' scans '%s' under ACCESS EXCLUSIVE",
		                 col, cmd->qual);
	}
	if (dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
}

void dc_lint__check_add_pk(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__Constraint *k;
	const char *col;
	bool has_default;

	if ((k = added_constraint(cmd, PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY)) &&
	    !(k->indexname && k->indexname[0]))
		dc_lint__emit_at(l, R_ADD_PK, dc_lint__at(l, k->location), NULL,
		                 "ADD PRIMARY KEY on '%s' builds its index under ACCESS EXCLUSIVE",
		                 cmd->qual);
	else if ((k = dc_lint__column_constraint(l, cmd, PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY,
	                                         &col, &has_default)))
		dc_lint__emit_at(
		        l, R_ADD_PK, dc_lint__at(l, k->location), NULL,
		        "ADD COLUMN '%s' PRIMARY KEY builds an index under ACCESS EXCLUSIVE", col);
}

void dc_lint__check_add_unique(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__Constraint *k;
	const char *col;
	bool has_default;

	if ((k = added_constraint(cmd, PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE)) &&
	    !(k->indexname && k->indexname[0]))
		dc_lint__emit_at(l, R_ADD_UNIQUE, dc_lint__at(l, k->location), NULL,
		                 "ADD UNIQUE on '%s' builds its index under ACCESS EXCLUSIVE",
		                 cmd->qual);
	else if ((k = dc_lint__column_constraint(l, cmd, PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE, &col,
	                                         &has_default)))
		dc_lint__emit_at(l, R_ADD_UNIQUE, dc_lint__at(l, k->location), NULL,
		                 "ADD COLUMN '%s' UNIQUE builds an index under ACCESS EXCLUSIVE",
		                 col);
}

void dc_lint__check_add_exclude(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__Constraint *k =
	        added_constraint(cmd, PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION);

	if (k)
		dc_lint__emit_at(
		        l, R_ADD_EXCLUDE, dc_lint__at(l, k->location), NULL,
		        "ADD EXCLUDE on '%s' builds an index and checks every row under ACCESS "
		        "EXCLUSIVE",
		        cmd->qual);
}

static bool reloption_false(const PgQuery__Node *def, const char *name)
{
	size_t i;

	if (!def || def->node_case != PG_QUERY__NODE__NODE_LIST)
		return false;
	for (i = 0; i < def->list->n_items; i++) {
		const PgQuery__Node *it = def->list->items[i];
		const PgQuery__Node *a;
		const char *s;

		if (it->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
		    strcmp(it->def_elem->defname, name) != 0)
			continue;
		a = it->def_elem->arg;
		if (!a)
			return false;
		if (a->node_case == PG_QUERY__NODE__NODE_BOOLEAN)
			return !a->boolean->boolval;
		if (a->node_case == PG_QUERY__NODE__NODE_INTEGER)
			return a->integer->ival == 0;
		if ((s = dc_analysis__str(a)) != NULL)
			return !strcasecmp(s, "false") || !strcasecmp(s, "off") ||
			       !strcmp(s, "0") || !strcasecmp(s, "no");
	}
	return false;
}

void dc_lint__suggest_concurrently(lint *l, dc_strbuf *sb, const char *word, const char *tail)
{
	const char *s = l->text + l->stmt_off;
	size_t n = l->stmt_end - l->stmt_off, i, wl = strlen(word);

	dc_strbuf_reset(sb);
	for (i = 0; i + wl <= n; i++)
		if (strncasecmp(s + i, word, wl) == 0) {
			dc_strbuf_add(sb, s, i + wl);
			dc_strbuf_adds(sb, tail);
			dc_strbuf_add(sb, s + i + wl, n - i - wl);
			dc_strbuf_addch(sb, ';');
			return;
		}
}

/* CREATE INDEX's walk: the index's name, for DC102's exemption. */
void dc_lint__create_index(lint *l, const PgQuery__IndexStmt *ix)
{
	if (ix->idxname)
		dc_lint__put(l, &l->indexes, ix->idxname, NULL);
}

/* CREATE INDEX's statement checks (DC101, DC214, DC311), from rules.def. */
void dc_lint__check_index_nonconc(lint *l, const PgQuery__Node *n)
{
	const PgQuery__IndexStmt *ix;
	dc_strbuf sb = DC_STRBUF_INIT;

	if (n->node_case != PG_QUERY__NODE__NODE_INDEX_STMT)
		return;
	ix = n->index_stmt;
	if (ix->concurrent || dc_lint__table_is_new(l, ix->relation) || !ix->relation ||
	    !ix->relation->inh)
		return;
	dc_lint__suggest_concurrently(l, &sb, "index",
	                              ix->idxname && !ix->if_not_exists
	                                      ? " CONCURRENTLY IF NOT EXISTS"
	                                      : " CONCURRENTLY");
	dc_lint__emit(l, R_INDEX_NONCONC, sb.len ? sb.buf : NULL,
	              "CREATE INDEX%s%s%s on '%s' blocks writes (SHARE lock) for the whole build",
	              ix->idxname ? " '" : "", ix->idxname ? ix->idxname : "",
	              ix->idxname ? "'" : "", dc_lint__rvname(ix->relation));
	if (dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
}

void dc_lint__check_unique_may_fail(lint *l, const PgQuery__Node *n)
{
	if (n->node_case == PG_QUERY__NODE__NODE_INDEX_STMT && n->index_stmt->unique &&
	    !dc_lint__table_is_new(l, n->index_stmt->relation))
		dc_lint__emit(l, R_UNIQUE_MAY_FAIL, NULL,
		              "the unique index on '%s' fails if existing rows hold duplicates",
		              dc_lint__rvname(n->index_stmt->relation));
}

void dc_lint__check_index_columns(lint *l, const PgQuery__Node *n)
{
	if (n->node_case == PG_QUERY__NODE__NODE_INDEX_STMT && !n->index_stmt->unique &&
	    n->index_stmt->n_index_params > 3)
		dc_lint__emit(l, R_INDEX_COLUMNS, NULL, "index on '%s' has %zu columns",
		              dc_lint__rvname(n->index_stmt->relation),
		              n->index_stmt->n_index_params);
}

static bool setting_is_zero(const PgQuery__VariableSetStmt *v)
{
	const PgQuery__Node *a;

	if (v->n_args != 1 || v->args[0]->node_case != PG_QUERY__NODE__NODE_A_CONST)
		return false;
	a = v->args[0];
	if (a->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL)
		return a->a_const->ival->ival == 0;
	if (a->a_const->val_case == PG_QUERY__A__CONST__VAL_SVAL)
		return atoi(a->a_const->sval->sval) == 0 && a->a_const->sval->sval[0] == '0';
	return false;
}

void dc_lint__set_stmt(lint *l, const PgQuery__VariableSetStmt *v)
{
	bool set = v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE;
	bool reset = v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
	             v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL ||
	             v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT;

	if (!v->name) {
		if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL)
			l->lock_timeout_set = l->statement_timeout_set = false;
		return;
	}
	if (!strcmp(v->name, "lock_timeout")) {
		if (set && setting_is_zero(v))
			dc_lint__emit(
			        l, R_LOCK_TIMEOUT, NULL,
			        "SET lock_timeout = 0 turns off deployclaw's lock timeout: a blocked DDL "
			        "queues every query behind it");
		l->lock_timeout_set = set && !setting_is_zero(v);
		if (reset)
			l->lock_timeout_set = false;
	} else if (!strcmp(v->name, "statement_timeout")) {
		if (set && setting_is_zero(v))
			dc_lint__emit(
			        l, R_STATEMENT_TIMEOUT, NULL,
			        "SET statement_timeout = 0 turns off deployclaw's statement timeout");
		l->statement_timeout_set = set && !setting_is_zero(v);
		if (reset)
			l->statement_timeout_set = false;
	} else if (!strcmp(v->name, "search_path") && l->cfg->schema_tenancy && !reset) {
		dc_lint__emit(
		        l, R_FOREIGN_SCHEMA, NULL,
		        "SET search_path under schema tenancy: deployclaw points it at the tenant's "
		        "schema");
	}
}

/*
 * DC117/DC118 on a statement that takes a lock other queries queue behind,
 * on a table that existed before: once per block each.
 */
void dc_lint__timeouts(lint *l)
{
	dc_stmt_model *m = l->model;

	if (l->cfg->lock_timeout_ms <= 0 && !l->lock_timeout_set && !l->lock_reported) {
		dc_lint__emit(l, R_LOCK_TIMEOUT, "SET lock_timeout = '2s';",
		              "%s takes %s with no lock_timeout set", m->kind,
		              dc_lock_mode_name(m->lock));
		l->lock_reported = true;
	}
	if (l->cfg->statement_timeout_ms <= 0 && !l->statement_timeout_set && !l->stmt_reported) {
		dc_lint__emit(l, R_STATEMENT_TIMEOUT, "SET statement_timeout = '5min';",
		              "%s runs with no statement_timeout set", m->kind);
		l->stmt_reported = true;
	}
}

/* Whether a domain has CHECK or NOT NULL constraints (DC121; DC114 on a later ADD COLUMN). */
static bool domain_constrained(const PgQuery__CreateDomainStmt *d)
{
	size_t i;

	for (i = 0; i < d->n_constraints; i++)
		if (d->constraints[i]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
		    (d->constraints[i]->constraint->contype ==
		             PG_QUERY__CONSTR_TYPE__CONSTR_CHECK ||
		     d->constraints[i]->constraint->contype ==
		             PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL))
			return true;
	return false;
}

/* The domain's name and whether it is constrained, for DC114 on a later ADD COLUMN. */
void dc_lint__create_domain(lint *l, const PgQuery__CreateDomainStmt *d)
{
	const char *name = dc_analysis__last_name(d->domainname, d->n_domainname);

	if (name)
		dc_lint__put(l, &l->types, name,
		             (void *)(uintptr_t)(domain_constrained(d) ? 2 : 1));
}

/*
 * The statements that lock their table as a whole (DC103, DC116, DC119-DC121,
 * DC124): statement checks, from rules.def.
 */
void dc_lint__check_reindex(lint *l, const PgQuery__Node *n)
{
	dc_stmt_model *m = l->model;

	if (n->node_case == PG_QUERY__NODE__NODE_REINDEX_STMT && m->nrules &&
	    m->rules[0]->op == OP_REINDEX &&
	    n->reindex_stmt->kind != PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_SYSTEM)
		dc_lint__emit(
		        l, R_REINDEX_NONCONC, NULL,
		        "REINDEX holds SHARE on the table and ACCESS EXCLUSIVE on each index it "
		        "rebuilds");
}

void dc_lint__check_vacuum_full(lint *l, const PgQuery__Node *n)
{
	dc_stmt_model *m = l->model;
	size_t i;

	if (n->node_case != PG_QUERY__NODE__NODE_VACUUM_STMT &&
	    n->node_case != PG_QUERY__NODE__NODE_CLUSTER_STMT)
		return;
	for (i = 0; i < m->nrules; i++)
		if (m->rules[i]->op == OP_VACUUM_FULL || m->rules[i]->op == OP_CLUSTER)
			dc_lint__emit(l, R_VACUUM_FULL, NULL,
			              "%s rewrites the table under ACCESS EXCLUSIVE",
			              m->rules[i]->what);
}

void dc_lint__check_trigger(lint *l, const PgQuery__Node *n)
{
	if (n->node_case == PG_QUERY__NODE__NODE_CREATE_TRIG_STMT &&
	    !dc_lint__table_is_new(l, n->create_trig_stmt->relation))
		dc_lint__emit(l, R_TRIGGER_EXISTING, NULL,
		              "CREATE TRIGGER '%s' takes SHARE ROW EXCLUSIVE on '%s'",
		              n->create_trig_stmt->trigname ? n->create_trig_stmt->trigname : "",
		              dc_lint__rvname(n->create_trig_stmt->relation));
}

void dc_lint__check_alter_domain(lint *l, const PgQuery__Node *n)
{
	const PgQuery__AlterDomainStmt *d;

	if (n->node_case != PG_QUERY__NODE__NODE_ALTER_DOMAIN_STMT)
		return;
	d = n->alter_domain_stmt;
	if (d->subtype && d->subtype[0] == 'C' && d->def &&
	    d->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
	    !d->def->constraint->skip_validation)
		dc_lint__emit(l, R_ALTER_DOMAIN_CONSTRAINT, NULL,
		              "ALTER DOMAIN '%s' ADD CONSTRAINT scans every table using the domain",
		              dc_analysis__last_name(d->type_name, d->n_type_name));
}

void dc_lint__check_create_domain(lint *l, const PgQuery__Node *n)
{
	const PgQuery__CreateDomainStmt *d;
	const char *name;

	if (n->node_case != PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT)
		return;
	d = n->create_domain_stmt;
	name = dc_analysis__last_name(d->domainname, d->n_domainname);
	if (domain_constrained(d))
		dc_lint__emit(
		        l, R_CREATE_DOMAIN_CONSTRAINT, NULL,
		        "domain '%s' has constraints: adding a column of it rewrites the table",
		        name ? name : "");
}

void dc_lint__check_refresh(lint *l, const PgQuery__Node *n)
{
	if (n->node_case == PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT &&
	    !n->refresh_mat_view_stmt->concurrent)
		dc_lint__emit(l, R_REFRESH_MV, NULL,
		              "REFRESH MATERIALIZED VIEW '%s' takes ACCESS EXCLUSIVE: reads wait",
		              dc_lint__rvname(n->refresh_mat_view_stmt->relation));
}

/* DC108: SET NOT NULL with no validated CHECK (col IS NOT NULL) to skip the scan. */
void dc_lint__check_set_not_null(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__AlterTableCmd *c = cmd->c;
	const char *qual = cmd->qual;
	dc_strbuf sb = DC_STRBUF_INIT;

	if (c->subtype != PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull || cmd->is_new ||
	    dc_lint__set_has(&l->validated, dc_lint__key(l, cmd->table, c->name), NULL))
		return;
	dc_strbuf_adds(&sb, "ALTER TABLE ");
	dc_strbuf_adds(&sb, qual);
	dc_strbuf_adds(&sb, " ADD CONSTRAINT ");
	dc_strbuf_adds(&sb, c->name ? c->name : "");
	dc_strbuf_adds(&sb, "_not_null CHECK (");
	dc_analysis__quote_ident(&sb, c->name);
	dc_strbuf_adds(&sb, " IS NOT NULL) NOT VALID;\n-- later phase:\nALTER TABLE ");
	dc_strbuf_adds(&sb, qual);
	dc_strbuf_adds(&sb, " VALIDATE CONSTRAINT ");
	dc_strbuf_adds(&sb, c->name ? c->name : "");
	dc_strbuf_adds(&sb, "_not_null;\nALTER TABLE ");
	dc_strbuf_adds(&sb, qual);
	dc_strbuf_adds(&sb, " ALTER COLUMN ");
	dc_analysis__quote_ident(&sb, c->name);
	dc_strbuf_adds(&sb, " SET NOT NULL;");
	dc_lint__emit(l, R_SET_NOT_NULL, sb.buf,
	              "SET NOT NULL on '%s.%s' scans the whole table under ACCESS EXCLUSIVE", qual,
	              c->name ? c->name : "");
	if (dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
}

static bool is_validate(const PgQuery__AlterTableCmd *c)
{
	return c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraint ||
	       c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraintRecurse;
}

/* DC107: VALIDATE CONSTRAINT under the lock NOT VALID was meant to avoid. */
void dc_lint__check_validate(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__AlterTableCmd *c = cmd->c;

	if (!is_validate(c))
		return;
	if (dc_lint__in_tx(l) &&
	    dc_lint__set_has(&l->tx_not_valid, dc_lint__key(l, cmd->table, c->name), NULL))
		dc_lint__emit(l, R_VALIDATE_SAME_TX, NULL,
		              "'%s' is validated in the transaction that added it NOT VALID: the "
		              "scan runs under the ADD's ACCESS EXCLUSIVE lock",
		              c->name ? c->name : "");
	else if (dc_lint__in_tx(l) && l->tx_strong_lock)
		dc_lint__emit(
		        l, R_VALIDATE_SAME_TX, NULL,
		        "'%s' is validated in a transaction that already holds a write-blocking "
		        "lock: the scan runs under it",
		        c->name ? c->name : "");
}

/* A validated CHECK (col IS NOT NULL) exempts a later SET NOT NULL from DC108. */
void dc_lint__validate_constraint(lint *l, const PgQuery__AlterTableCmd *c, const char *table)
{
	void *v = NULL;

	if (dc_lint__set_has(&l->nn_checks, dc_lint__key(l, table, c->name), &v) && v)
		dc_lint__put(l, &l->validated, dc_lint__key(l, table, (const char *)v), NULL);
}

/* Storage options, replica identity, DETACH PARTITION (DC123, DC122, DC104). */
void dc_lint__check_autovacuum(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__AlterTableCmd *c = cmd->c;

	if ((c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_SetRelOptions ||
	     c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_ReplaceRelOptions) &&
	    reloption_false(c->def, "autovacuum_enabled"))
		dc_lint__emit(l, R_AUTOVACUUM_OFF, NULL, "autovacuum is disabled for '%s'",
		              cmd->qual);
}

void dc_lint__check_replica_identity(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__Node *def = cmd->c->def;

	if (cmd->c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_ReplicaIdentity && def &&
	    def->node_case == PG_QUERY__NODE__NODE_REPLICA_IDENTITY_STMT &&
	    def->replica_identity_stmt->identity_type &&
	    (def->replica_identity_stmt->identity_type[0] == 'f' ||
	     def->replica_identity_stmt->identity_type[0] == 'n'))
		dc_lint__emit(l, R_REPLICA_IDENTITY, NULL, "REPLICA IDENTITY %s on '%s'",
		              def->replica_identity_stmt->identity_type[0] == 'f' ? "FULL"
		                                                                  : "NOTHING",
		              cmd->qual);
}

void dc_lint__check_detach(lint *l, const dc_lint_cmd *cmd)
{
	const PgQuery__Node *def = cmd->c->def;

	if (cmd->c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartition && def &&
	    def->node_case == PG_QUERY__NODE__NODE_PARTITION_CMD && !def->partition_cmd->concurrent)
		dc_lint__emit(l, R_DETACH_NONCONC, NULL,
		              "DETACH PARTITION '%s' takes ACCESS EXCLUSIVE on '%s' and the "
		              "partition",
		              dc_lint__rvname(def->partition_cmd->name), cmd->qual);
}
