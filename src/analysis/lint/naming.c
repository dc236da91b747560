/*
 * naming.c -- the DC3xx rules: column types, identifier length, duplicate
 * columns, schema-qualified names and alignment padding, and the CREATE
 * TABLE walk, which records the table, its column types and foreign keys.
 */
#include <string.h>
#include <strings.h>

#include "../lint_internal.h"

static bool ident_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

/*
 * The parser truncates identifiers to 63 bytes (with a NOTICE), so the tree
 * never holds a longer one: a 63-byte name is looked up in the statement's
 * text to see whether it went on.
 */
static void check_ident(lint *l, const char *name, const char *what)
{
	const char *s = l->text + l->stmt_off;
	size_t n = l->stmt_end - l->stmt_off, i, len = name ? strlen(name) : 0, full;

	if (len < DC_PG_IDENT_MAX)
		return;
	for (i = 0; i + len <= n; i++) {
		if (strncasecmp(s + i, name, len) != 0 ||
		    (i > 0 && ident_char((unsigned char)s[i - 1])))
			continue;
		for (full = len; i + full < n && ident_char((unsigned char)s[i + full]); full++)
			;
		if (full > DC_PG_IDENT_MAX || (i + full < n && s[i + full] != '"' && full > len)) {
			dc_lint__emit_at(
			        l, R_IDENT_TOO_LONG, l->stmt_off + i, NULL,
			        "%s name '%.40s...' is %zu bytes: PostgreSQL truncates it to 63",
			        what, name, full);
			return;
		}
	}
}

/* ALTER TABLE's ADD COLUMN and ADD CONSTRAINT names, in order. */
static void alter_table_idents(lint *l, const PgQuery__AlterTableStmt *a)
{
	size_t i;

	if (a->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE)
		return;
	for (i = 0; i < a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c;

		if (a->cmds[i]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			continue;
		c = a->cmds[i]->alter_table_cmd;
		if (!c->def)
			continue;
		if ((c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn ||
		     c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse) &&
		    c->def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
			check_ident(l, c->def->column_def->colname, "column");
		else if ((c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint ||
		          c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraintRecurse) &&
		         c->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
			check_ident(l, c->def->constraint->conname, "constraint");
	}
}

/* DC308: the names a statement gives, in the order it gives them (a statement check). */
void dc_lint__check_ident_length(lint *l, const PgQuery__Node *n)
{
	size_t i;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_STMT: {
		const PgQuery__CreateStmt *cs = n->create_stmt;

		if (!cs->relation)
			break;
		check_ident(l, cs->relation->relname, "table");
		for (i = 0; i < cs->n_table_elts; i++)
			if (cs->table_elts[i]->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				check_ident(l, cs->table_elts[i]->column_def->colname, "column");
			else if (cs->table_elts[i]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
				check_ident(l, cs->table_elts[i]->constraint->conname,
				            "constraint");
		break;
	}
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		alter_table_idents(l, n->alter_table_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		if (n->create_table_as_stmt->into && n->create_table_as_stmt->into->rel)
			check_ident(l, n->create_table_as_stmt->into->rel->relname, "table");
		break;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		check_ident(l, n->index_stmt->idxname, "index");
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		check_ident(l, n->rename_stmt->newname, "new");
		break;
	case PG_QUERY__NODE__NODE_CREATE_TRIG_STMT:
		check_ident(l, n->create_trig_stmt->trigname, "trigger");
		break;
	case PG_QUERY__NODE__NODE_VIEW_STMT:
		check_ident(l, n->view_stmt->view ? n->view_stmt->view->relname : NULL, "view");
		break;
	default:
		break;
	}
}

/*
 * The type rules (DC301-DC307) look at every column type a statement
 * declares: CREATE TABLE's columns, ALTER TABLE's ADD COLUMN and ALTER
 * COLUMN ... TYPE, in order. Each is a statement check of its own.
 */
typedef void type_rule(lint *l,
                       const PgQuery__TypeName *tn,
                       const char *t,
                       const char *col,
                       size_t off);

static void each_type(lint *l, const PgQuery__TypeName *tn, const char *col, type_rule *rule)
{
	bool builtin;
	const char *t;

	if (!tn)
		return;
	t = dc_analysis__type_base(tn, &builtin);
	if (builtin)
		rule(l, tn, t, col, dc_lint__at(l, tn->location));
}

static void each_column_type(lint *l, const PgQuery__Node *n, type_rule *rule)
{
	size_t i;

	if (n->node_case == PG_QUERY__NODE__NODE_CREATE_STMT && n->create_stmt->relation) {
		const PgQuery__CreateStmt *cs = n->create_stmt;

		for (i = 0; i < cs->n_table_elts; i++)
			if (cs->table_elts[i]->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				each_type(l, cs->table_elts[i]->column_def->type_name,
				          cs->table_elts[i]->column_def->colname
				                  ? cs->table_elts[i]->column_def->colname
				                  : "",
				          rule);
	} else if (n->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_STMT &&
	           n->alter_table_stmt->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE) {
		const PgQuery__AlterTableStmt *a = n->alter_table_stmt;

		for (i = 0; i < a->n_cmds; i++) {
			const PgQuery__AlterTableCmd *c;

			if (a->cmds[i]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
				continue;
			c = a->cmds[i]->alter_table_cmd;
			if (!c->def || c->def->node_case != PG_QUERY__NODE__NODE_COLUMN_DEF)
				continue;
			if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn ||
			    c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse)
				each_type(l, c->def->column_def->type_name,
				          c->def->column_def->colname ? c->def->column_def->colname
				                                      : "",
				          rule);
			else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType)
				each_type(l, c->def->column_def->type_name, c->name ? c->name : "",
				          rule);
		}
	}
}

static void prefer_bigint(lint *l,
                          const PgQuery__TypeName *tn,
                          const char *t,
                          const char *col,
                          size_t off)
{
	(void)tn;
	if (!strcmp(t, "int4") || !strcmp(t, "int") || !strcmp(t, "integer") ||
	    !strcmp(t, "serial") || !strcmp(t, "serial4"))
		dc_lint__emit_at(l, R_PREFER_BIGINT, off, NULL,
		                 "column '%s' is %s: 32-bit integers overflow", col,
		                 !strcmp(t, "serial") || !strcmp(t, "serial4") ? "serial"
		                                                               : "integer");
}

static void prefer_bigint_small(lint *l,
                                const PgQuery__TypeName *tn,
                                const char *t,
                                const char *col,
                                size_t off)
{
	(void)tn;
	if (!strcmp(t, "int2") || !strcmp(t, "smallint") || !strcmp(t, "smallserial") ||
	    !strcmp(t, "serial2"))
		dc_lint__emit_at(l, R_PREFER_BIGINT_SMALL, off, NULL,
		                 "column '%s' is smallint: 16-bit integers overflow", col);
}

static void prefer_identity(lint *l,
                            const PgQuery__TypeName *tn,
                            const char *t,
                            const char *col,
                            size_t off)
{
	if (dc_analysis__is_serial(tn))
		dc_lint__emit_at(
		        l, R_PREFER_IDENTITY, off, NULL,
		        "column '%s' is %s: prefer bigint GENERATED BY DEFAULT AS IDENTITY", col,
		        t);
}

static void prefer_text(lint *l,
                        const PgQuery__TypeName *tn,
                        const char *t,
                        const char *col,
                        size_t off)
{
	if (!strcmp(t, "varchar") && tn->n_typmods > 0)
		dc_lint__emit_at(l, R_PREFER_TEXT, off, NULL,
		                 "column '%s' is varchar(n): prefer text", col);
}

static void prefer_timestamptz(lint *l,
                               const PgQuery__TypeName *tn,
                               const char *t,
                               const char *col,
                               size_t off)
{
	(void)tn;
	if (!strcmp(t, "timestamp"))
		dc_lint__emit_at(l, R_PREFER_TIMESTAMPTZ, off, NULL,
		                 "column '%s' is timestamp without time zone", col);
}

static void ban_char(lint *l,
                     const PgQuery__TypeName *tn,
                     const char *t,
                     const char *col,
                     size_t off)
{
	if (!strcmp(t, "bpchar") || (tn->n_names == 2 && !strcmp(t, "char")))
		dc_lint__emit_at(l, R_BAN_CHAR, off, NULL, "column '%s' is char(n): blank-padded",
		                 col);
}

static void prefer_jsonb(lint *l,
                         const PgQuery__TypeName *tn,
                         const char *t,
                         const char *col,
                         size_t off)
{
	(void)tn;
	if (!strcmp(t, "json"))
		dc_lint__emit_at(l, R_PREFER_JSONB, off, NULL, "column '%s' is json: prefer jsonb",
		                 col);
}

void dc_lint__check_prefer_bigint(lint *l, const PgQuery__Node *n)
{
	each_column_type(l, n, prefer_bigint);
}

void dc_lint__check_prefer_bigint_small(lint *l, const PgQuery__Node *n)
{
	each_column_type(l, n, prefer_bigint_small);
}

void dc_lint__check_prefer_identity(lint *l, const PgQuery__Node *n)
{
	each_column_type(l, n, prefer_identity);
}

void dc_lint__check_prefer_text(lint *l, const PgQuery__Node *n)
{
	each_column_type(l, n, prefer_text);
}

void dc_lint__check_prefer_timestamptz(lint *l, const PgQuery__Node *n)
{
	each_column_type(l, n, prefer_timestamptz);
}

void dc_lint__check_ban_char(lint *l, const PgQuery__Node *n)
{
	each_column_type(l, n, ban_char);
}

void dc_lint__check_prefer_jsonb(lint *l, const PgQuery__Node *n)
{
	each_column_type(l, n, prefer_jsonb);
}

/* Fixed width and alignment of a built-in type (0: variable width). */
static int type_width(const PgQuery__TypeName *tn, int *align)
{
	bool b;
	const char *t = dc_analysis__type_base(tn, &b);

	*align = 1;
	if (!b || tn->n_array_bounds)
		return 0;
	if (!strcmp(t, "int8") || !strcmp(t, "bigint") || !strcmp(t, "float8") ||
	    !strcmp(t, "timestamptz") || !strcmp(t, "timestamp") || !strcmp(t, "bigserial") ||
	    !strcmp(t, "serial8") || !strcmp(t, "time") || !strcmp(t, "money")) {
		*align = 8;
		return 8;
	}
	if (!strcmp(t, "uuid"))
		return 16;
	if (!strcmp(t, "int4") || !strcmp(t, "int") || !strcmp(t, "integer") ||
	    !strcmp(t, "float4") || !strcmp(t, "date") || !strcmp(t, "serial") ||
	    !strcmp(t, "serial4") || !strcmp(t, "oid")) {
		*align = 4;
		return 4;
	}
	if (!strcmp(t, "int2") || !strcmp(t, "smallint") || !strcmp(t, "serial2") ||
	    !strcmp(t, "smallserial")) {
		*align = 2;
		return 2;
	}
	if (!strcmp(t, "bool") || !strcmp(t, "boolean"))
		return 1;
	return 0;
}

void dc_lint__create_table(lint *l, const PgQuery__CreateStmt *cs)
{
	const PgQuery__RangeVar *rv = cs->relation;
	size_t i;

	if (!rv)
		return;
	for (i = 0; i < cs->n_table_elts; i++) {
		const PgQuery__Node *e = cs->table_elts[i];

		if (e->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF) {
			const PgQuery__ColumnDef *cd = e->column_def;

			dc_lint__put(l, &l->coltypes, dc_lint__key(l, rv->relname, cd->colname),
			             dc_lint__keep_type(l, cd->type_name));
		} else if (e->node_case == PG_QUERY__NODE__NODE_CONSTRAINT) {
			if (e->constraint->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN &&
			    e->constraint->conname)
				dc_lint__put(l, &l->fks,
				             dc_lint__key(l, rv->relname, e->constraint->conname),
				             NULL);
		}
	}
	dc_lint__put(l, &l->tables, rv->relname, NULL);
}

/* DC310 on CREATE TABLE (a temporary table exempt) and ALTER TABLE: a statement check. */
void dc_lint__check_require_schema(lint *l, const PgQuery__Node *n)
{
	const PgQuery__RangeVar *rv = NULL;

	if (n->node_case == PG_QUERY__NODE__NODE_CREATE_STMT)
		rv = n->create_stmt->relation;
	else if (n->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_STMT &&
	         n->alter_table_stmt->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE)
		rv = n->alter_table_stmt->relation;
	if (rv && !(rv->schemaname && rv->schemaname[0]) &&
	    !(n->node_case == PG_QUERY__NODE__NODE_CREATE_STMT && rv->relpersistence &&
	      rv->relpersistence[0] == 't'))
		dc_lint__emit(l, R_REQUIRE_SCHEMA, NULL, "'%s' is not schema-qualified",
		              dc_lint__rvname(rv));
}

/* DC312: the alignment padding CREATE TABLE's column order costs, a statement check. */
void dc_lint__check_alignment(lint *l, const PgQuery__Node *n)
{
	const PgQuery__CreateStmt *cs;
	int offset = 0, padding = 0;
	size_t i;

	if (n->node_case != PG_QUERY__NODE__NODE_CREATE_STMT || !n->create_stmt->relation)
		return;
	cs = n->create_stmt;
	for (i = 0; i < cs->n_table_elts; i++) {
		int w, al;

		if (cs->table_elts[i]->node_case != PG_QUERY__NODE__NODE_COLUMN_DEF)
			continue;
		w = type_width(cs->table_elts[i]->column_def->type_name, &al);
		if (offset >= 0 && w > 0) {
			if (offset % al) {
				padding += al - offset % al;
				offset += al - offset % al;
			}
			offset += w;
		} else if (w == 0) {
			offset = -1; /* variable width: later offsets unknown */
		}
	}
	if (padding > 0)
		dc_lint__emit(
		        l, R_ALIGNMENT, NULL,
		        "the column order of '%s' wastes %d byte%s of alignment padding per row",
		        dc_lint__rvname(cs->relation), padding, padding == 1 ? "" : "s");
}

/* A name assigned twice in a target list (INSERT's columns, UPDATE ... SET). */
static void duplicate_names(lint *l, PgQuery__Node *const *items, size_t n, const char *what)
{
	size_t i, j;

	if (n > 1600)
		return; /* PostgreSQL's column limit: anything longer fails anyway */
	for (i = 1; i < n; i++) {
		const PgQuery__ResTarget *a, *b;

		if (items[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
			continue;
		a = items[i]->res_target;
		if (!a->name || a->n_indirection)
			continue;
		for (j = 0; j < i; j++) {
			if (items[j]->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
				continue;
			b = items[j]->res_target;
			if (b->name && !b->n_indirection && !strcmp(a->name, b->name)) {
				dc_lint__emit_at(l, R_DUPLICATE_COLUMN, dc_lint__at(l, a->location),
				                 NULL, "column '%s' is assigned twice in %s",
				                 a->name, what);
				break;
			}
		}
	}
}

/* DC309: a column defined or assigned twice, or named twice in a view's column list. */
static void duplicate_table_column(lint *l, const PgQuery__CreateStmt *cs)
{
	size_t i, j;

	for (i = 0; i < cs->n_table_elts; i++) {
		const PgQuery__ColumnDef *cd;

		if (cs->table_elts[i]->node_case != PG_QUERY__NODE__NODE_COLUMN_DEF)
			continue;
		cd = cs->table_elts[i]->column_def;
		for (j = 0; j < i; j++)
			if (cs->table_elts[j]->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF &&
			    cd->colname && cs->table_elts[j]->column_def->colname &&
			    !strcmp(cs->table_elts[j]->column_def->colname, cd->colname)) {
				dc_lint__emit_at(l, R_DUPLICATE_COLUMN,
				                 dc_lint__at(l, cd->location), NULL,
				                 "column '%s' is defined twice in '%s'",
				                 cd->colname, dc_lint__rvname(cs->relation));
				break;
			}
	}
}

static void duplicate_view_column(lint *l, const PgQuery__ViewStmt *v)
{
	size_t i, j;

	for (i = 1; i < v->n_aliases; i++) {
		const char *a = dc_analysis__str(v->aliases[i]);

		for (j = 0; a && j < i; j++)
			if (dc_analysis__str(v->aliases[j]) &&
			    !strcmp(dc_analysis__str(v->aliases[j]), a)) {
				dc_lint__emit(
				        l, R_DUPLICATE_COLUMN, NULL,
				        "column '%s' appears twice in the column list of view '%s'",
				        a, dc_lint__rvname(v->view));
				break;
			}
	}
}

void dc_lint__check_duplicate_column(lint *l, const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		if (n->create_stmt->relation)
			duplicate_table_column(l, n->create_stmt);
		break;
	case PG_QUERY__NODE__NODE_VIEW_STMT:
		duplicate_view_column(l, n->view_stmt);
		break;
	case PG_QUERY__NODE__NODE_INSERT_STMT: {
		const PgQuery__InsertStmt *ins = n->insert_stmt;

		duplicate_names(l, ins->cols, ins->n_cols, "INSERT's column list");
		if (ins->on_conflict_clause)
			duplicate_names(l, ins->on_conflict_clause->target_list,
			                ins->on_conflict_clause->n_target_list,
			                "ON CONFLICT DO UPDATE");
		break;
	}
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		duplicate_names(l, n->update_stmt->target_list, n->update_stmt->n_target_list,
		                "UPDATE ... SET");
		break;
	default:
		break;
	}
}
