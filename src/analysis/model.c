/*
 * The statement model: which lock-table rows (locks.c) a parse tree is,
 * which relations it touches, and its mechanical inverse.
 *
 * Only the decision "which row" lives here; locks and effects come from the
 * table. Things the parse tree cannot tell (is this type a constrained
 * domain? what was the column's old type?) come out as DC_EFFECT_MAY_REWRITE
 * with a note; lint resolves the old type when the migration created it,
 * plan --live may resolve the rest from the catalog.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <deployclaw/analysis.h>

#include "analysis_internal.h"
#include "util/util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

const char *dc_analysis__str(const PgQuery__Node *n)
{
	if (n && n->node_case == PG_QUERY__NODE__NODE_STRING && n->string)
		return n->string->sval;
	return NULL;
}

const char *dc_analysis__last_name(PgQuery__Node *const *names, size_t n)
{
	return n ? dc_analysis__str(names[n - 1]) : NULL;
}

/* True when `s` is a keyword that quote_identifier() must quote (anything
 * but an unreserved keyword), asked of the real scanner: its keyword list
 * is the server's, where a hand-written subset misses words ("left"). */
static bool is_quoted_keyword(const char *s)
{
	PgQueryScanResult res = pg_query_scan(s);
	PgQuery__ScanResult *scan = NULL;
	bool kw = false;

	if (res.error)
		goto out;
	scan = pg_query__scan_result__unpack(NULL, res.pbuf.len, (const uint8_t *)res.pbuf.data);
	if (scan && scan->n_tokens == 1)
		kw = scan->tokens[0]->keyword_kind != PG_QUERY__KEYWORD_KIND__NO_KEYWORD &&
		     scan->tokens[0]->keyword_kind != PG_QUERY__KEYWORD_KIND__UNRESERVED_KEYWORD;
out:
	if (scan)
		pg_query__scan_result__free_unpacked(scan, NULL);
	pg_query_free_scan_result(res);
	return kw;
}

/* quote_identifier(): bare when lowercase letters, digits and '_' (not
 * starting with a digit) and not a keyword; else double-quoted. */
void dc_analysis__quote_ident(dc_strbuf *sb, const char *name)
{
	const char *s = name ? name : "";
	bool bare = (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_';
	const char *p;

	for (p = s; *p && bare; p++)
		bare = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
	if (bare && !is_quoted_keyword(s)) {
		dc_strbuf_adds(sb, s);
		return;
	}
	dc_strbuf_addch(sb, '"');
	for (p = s; *p; p++) {
		if (*p == '"')
			dc_strbuf_addch(sb, '"');
		dc_strbuf_addch(sb, *p);
	}
	dc_strbuf_addch(sb, '"');
}

void dc_analysis__qualified_name(dc_strbuf *sb, const char *schema, const char *name)
{
	if (schema && schema[0]) {
		dc_analysis__quote_ident(sb, schema);
		dc_strbuf_addch(sb, '.');
	}
	dc_analysis__quote_ident(sb, name);
}

void dc_analysis__qualified(dc_strbuf *sb, const PgQuery__RangeVar *rv)
{
	dc_analysis__qualified_name(sb, rv->schemaname, rv->relname);
}

/* ------------------------------------------------------------------------ */
/* Types.                                                                   */

/* Built-in type names as a user may write them unqualified. */
static const char *const builtin_types[] = {
	"text",      "int2",        "int4",        "int8",          "int",       "integer",
	"smallint",  "bigint",      "serial",      "serial2",       "serial4",   "serial8",
	"bigserial", "smallserial", "varchar",     "bpchar",        "char",      "json",
	"jsonb",     "uuid",        "timestamptz", "timestamp",     "date",      "time",
	"timetz",    "interval",    "bool",        "boolean",       "numeric",   "decimal",
	"float4",    "float8",      "real",        "money",         "bytea",     "inet",
	"cidr",      "macaddr",     "xml",         "tsvector",      "tsquery",   "bit",
	"varbit",    "oid",         "citext",      "point",         "line",      "box",
	"polygon",   "circle",      "path",        "lseg",          "int4range", "int8range",
	"numrange",  "tsrange",     "tstzrange",   "daterange",     "hstore",    "name",
	"regclass",  "macaddr8",    "pg_lsn",      "txid_snapshot",
};

const char *dc_analysis__type_base(const PgQuery__TypeName *tn, bool *builtin)
{
	const char *first, *last;
	size_t i;

	*builtin = false;
	if (!tn || tn->n_names == 0)
		return "";
	first = dc_analysis__str(tn->names[0]);
	last = dc_analysis__last_name(tn->names, tn->n_names);
	if (!last)
		return "";
	if (tn->n_names == 2 && first && strcmp(first, "pg_catalog") == 0) {
		*builtin = true;
		return last;
	}
	if (tn->n_names == 1)
		for (i = 0; i < N(builtin_types); i++)
			if (strcmp(builtin_types[i], last) == 0) {
				*builtin = true;
				return last;
			}
	return last;
}

bool dc_analysis__is_serial(const PgQuery__TypeName *tn)
{
	bool b;
	const char *t = dc_analysis__type_base(tn, &b);

	return b && tn->n_names == 1 &&
	       (strcmp(t, "serial") == 0 || strcmp(t, "bigserial") == 0 ||
	        strcmp(t, "smallserial") == 0 || strcmp(t, "serial2") == 0 ||
	        strcmp(t, "serial4") == 0 || strcmp(t, "serial8") == 0);
}

/* Integer typmod `i` of a type, or -1. */
static long typmod(const PgQuery__TypeName *tn, size_t i)
{
	const PgQuery__Node *n;

	if (!tn || i >= tn->n_typmods)
		return -1;
	n = tn->typmods[i];
	if (n->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	    n->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL)
		return n->a_const->ival->ival;
	return -1;
}

static const char *canon(const char *t)
{
	if (!strcmp(t, "int") || !strcmp(t, "integer"))
		return "int4";
	if (!strcmp(t, "bigint"))
		return "int8";
	if (!strcmp(t, "smallint"))
		return "int2";
	if (!strcmp(t, "decimal"))
		return "numeric";
	if (!strcmp(t, "boolean"))
		return "bool";
	return t;
}

int dc_analysis__type_change_op(const PgQuery__TypeName *from,
                                const PgQuery__TypeName *to,
                                bool has_using)
{
	const char *f, *t;
	bool fb, tb;

	if (has_using)
		return OP_TYPE_REWRITE;
	if (!from)
		return OP_TYPE_MAY_REWRITE;
	f = canon(dc_analysis__type_base(from, &fb));
	t = canon(dc_analysis__type_base(to, &tb));
	if (from->n_array_bounds != to->n_array_bounds)
		return OP_TYPE_REWRITE;
	if (!fb || !tb)
		return strcmp(f, t) == 0 && fb == tb ? OP_TYPE_NO_REWRITE : OP_TYPE_MAY_REWRITE;
	if (!strcmp(f, "varchar")) {
		long n = typmod(from, 0), m = typmod(to, 0);

		if (!strcmp(t, "text") || !strcmp(t, "citext"))
			return OP_TYPE_NO_REWRITE;
		if (!strcmp(t, "varchar"))
			return (m < 0 || (n >= 0 && m >= n)) ? OP_TYPE_NO_REWRITE : OP_TYPE_REWRITE;
		return OP_TYPE_REWRITE;
	}
	if (!strcmp(f, "text") || !strcmp(f, "citext")) {
		if (!strcmp(t, "text") || !strcmp(t, "citext"))
			return OP_TYPE_NO_REWRITE;
		if (!strcmp(t, "varchar") && to->n_typmods == 0)
			return OP_TYPE_NO_REWRITE;
		return OP_TYPE_REWRITE;
	}
	if (!strcmp(f, "numeric") && !strcmp(t, "numeric")) {
		long p = typmod(from, 0), s = typmod(from, 1), p2 = typmod(to, 0),
		     s2 = typmod(to, 1);

		if (s < 0 && p >= 0)
			s = 0;
		if (s2 < 0 && p2 >= 0)
			s2 = 0;
		if (to->n_typmods == 0)
			return OP_TYPE_NO_REWRITE;
		if (from->n_typmods == 0)
			return OP_TYPE_REWRITE;
		return (s2 == s && p2 >= p) ? OP_TYPE_NO_REWRITE : OP_TYPE_REWRITE;
	}
	if (!strcmp(f, "cidr") && !strcmp(t, "inet"))
		return OP_TYPE_NO_REWRITE;
	if (!strcmp(f, "timestamp") && !strcmp(t, "timestamptz"))
		return OP_TYPE_MAY_REWRITE; /* no rewrite only when the session TimeZone is UTC */
	if (!strcmp(f, t)) {
		long n = typmod(from, 0), m = typmod(to, 0);

		if (from->n_typmods == to->n_typmods && n == m)
			return OP_TYPE_NO_REWRITE;
		if ((!strcmp(f, "timestamp") || !strcmp(f, "timestamptz") || !strcmp(f, "time") ||
		     !strcmp(f, "interval") || !strcmp(f, "varbit")) &&
		    (m < 0 || (n >= 0 && m >= n)))
			return OP_TYPE_NO_REWRITE;
		return OP_TYPE_REWRITE;
	}
	return OP_TYPE_REWRITE;
}

/* ------------------------------------------------------------------------ */
/* Volatility of a column default.                                          */

/*
 * Built-ins whose pg_proc.provolatile is 's' or 'i' (checked on PostgreSQL
 * 15). A default calling only these, unqualified or in pg_catalog, is stored
 * as a fast default; anything else (random(), nextval(), clock_timestamp(),
 * a user's function) counts as volatile: the table is then taken as
 * rewritten, which is merely pessimistic for a stable function missing here.
 */
static const char *const nonvolatile_funcs[] = {
	"now",
	"transaction_timestamp",
	"statement_timestamp",
	"current_setting",
	"current_database",
	"current_schema",
	"inet_client_addr",
	"lower",
	"upper",
	"btrim",
	"trim",
	"replace",
	"substring",
	"left",
	"right",
	"length",
	"char_length",
	"concat",
	"format",
	"md5",
	"abs",
	"round",
	"to_char",
	"to_date",
	"to_timestamp",
	"to_json",
	"to_jsonb",
	"json_build_object",
	"json_build_array",
	"jsonb_build_object",
	"jsonb_build_array",
	"array_fill",
	"make_date",
	"make_interval",
	"make_timestamptz",
	"timezone",
	"date_trunc",
	"date_part",
	"extract",
};

const char *const *dc_analysis__nonvolatile_funcs(size_t *n)
{
	*n = N(nonvolatile_funcs);
	return nonvolatile_funcs;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; s && i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* The function's name when it is unqualified or in pg_catalog, else NULL:
 * a schema-qualified user function of the same name may be volatile. */
static const char *builtin_func_name(const PgQuery__FuncCall *f)
{
	const char *schema;

	if (f->n_funcname == 1)
		return dc_analysis__str(f->funcname[0]);
	schema = f->n_funcname == 2 ? dc_analysis__str(f->funcname[0]) : NULL;
	if (schema && strcmp(schema, "pg_catalog") == 0)
		return dc_analysis__str(f->funcname[1]);
	return NULL;
}

static bool all_fast(PgQuery__Node *const *args, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!dc_analysis__default_is_fast(args[i]))
			return false;
	return true;
}

bool dc_analysis__default_is_fast(const PgQuery__Node *e)
{
	const PgQuery__FuncCall *f;

	if (!e)
		return true;
	switch (e->node_case) {
	case PG_QUERY__NODE__NODE_A_CONST:
	case PG_QUERY__NODE__NODE_SQLVALUE_FUNCTION:
		return true;
	case PG_QUERY__NODE__NODE_TYPE_CAST:
		return dc_analysis__default_is_fast(e->type_cast->arg);
	case PG_QUERY__NODE__NODE_COLLATE_CLAUSE:
		return dc_analysis__default_is_fast(e->collate_clause->arg);
	case PG_QUERY__NODE__NODE_A_EXPR:
		return dc_analysis__default_is_fast(e->a_expr->lexpr) &&
		       dc_analysis__default_is_fast(e->a_expr->rexpr);
	case PG_QUERY__NODE__NODE_BOOL_EXPR:
		return all_fast(e->bool_expr->args, e->bool_expr->n_args);
	case PG_QUERY__NODE__NODE_A_ARRAY_EXPR:
		return all_fast(e->a_array_expr->elements, e->a_array_expr->n_elements);
	case PG_QUERY__NODE__NODE_COALESCE_EXPR:
		return all_fast(e->coalesce_expr->args, e->coalesce_expr->n_args);
	case PG_QUERY__NODE__NODE_MIN_MAX_EXPR: /* GREATEST, LEAST */
		return all_fast(e->min_max_expr->args, e->min_max_expr->n_args);
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		f = e->func_call;
		if (f->agg_star || f->over ||
		    !in_list(builtin_func_name(f), nonvolatile_funcs, N(nonvolatile_funcs)))
			return false;
		return all_fast(f->args, f->n_args);
	default:
		return false;
	}
}

/* ------------------------------------------------------------------------ */
/* Building a model.                                                        */

typedef struct builder {
	dc_stmt_model *m;
	dc_strbuf inv; /* inverse statements, "; "-separated */
	bool inv_ok;   /* every part so far had a mechanical inverse */
	bool inv_any;  /* at least one part produced text */
	int failed;
} builder;

static void add_rule(builder *b, int op)
{
	const dc_lock_rule *r = dc_analysis__rule(op), **nr;
	size_t i;

	for (i = 0; i < b->m->nrules; i++)
		if (b->m->rules[i] == r)
			return;
	nr = dc_realloc_array(b->m->rules, b->m->nrules + 1, sizeof(*nr));
	if (!nr) {
		b->failed = DC_ENOMEM;
		return;
	}
	b->m->rules = nr;
	b->m->rules[b->m->nrules++] = r;
	if (r->effect > b->m->effect)
		b->m->effect = r->effect;
	if (!r->transactional)
		b->m->transactional = false;
}

static void add_rel(builder *b,
                    const char *schema,
                    const char *name,
                    dc_lock_mode lock,
                    const char *role)
{
	dc_rel_lock *nr, *r;
	size_t i;

	if (!name || !name[0])
		return;
	if (lock > b->m->lock)
		b->m->lock = lock;
	for (i = 0; i < b->m->nrels; i++) {
		r = &b->m->rels[i];
		if (strcmp(r->name, name) == 0 &&
		    ((!r->schema && !schema) ||
		     (r->schema && schema && !strcmp(r->schema, schema)))) {
			if (lock > r->lock)
				r->lock = lock;
			return;
		}
	}
	nr = dc_realloc_array(b->m->rels, b->m->nrels + 1, sizeof(*nr));
	if (!nr) {
		b->failed = DC_ENOMEM;
		return;
	}
	b->m->rels = nr;
	r = &nr[b->m->nrels];
	memset(r, 0, sizeof(*r));
	r->name = dc_strdup(name);
	r->schema = schema && schema[0] ? dc_strdup(schema) : NULL;
	r->lock = lock;
	r->role = role;
	if (!r->name || (schema && schema[0] && !r->schema)) {
		free(r->name);
		free(r->schema);
		b->failed = DC_ENOMEM;
		return;
	}
	b->m->nrels++;
}

static void add_rv(builder *b, const PgQuery__RangeVar *rv, dc_lock_mode lock, const char *role)
{
	if (rv)
		add_rel(b, rv->schemaname, rv->relname, lock, role);
}

/* add_rv for each RangeVar of a node list (TRUNCATE a, b; LOCK a, b; ...). */
static void add_rv_list(builder *b,
                        PgQuery__Node *const *nodes,
                        size_t n,
                        dc_lock_mode lock,
                        const char *role)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (nodes[i]->node_case == PG_QUERY__NODE__NODE_RANGE_VAR)
			add_rv(b, nodes[i]->range_var, lock, role);
}

/* A rule applied to the statement's relation `rv` (and `other` when the row has one). */
static void apply(builder *b, int op, const PgQuery__RangeVar *rv, const PgQuery__RangeVar *other)
{
	const dc_lock_rule *r = dc_analysis__rule(op);

	add_rule(b, op);
	if (rv && r->lock != DC_LOCK_NONE)
		add_rv(b, rv, r->lock, "table");
	if (other && r->other_lock != DC_LOCK_NONE)
		add_rv(b, other, r->other_lock, r->other ? r->other : "relation");
}

static void inv_begin(builder *b)
{
	if (b->inv_any)
		dc_strbuf_adds(&b->inv, ";\n");
	b->inv_any = true;
}

static void inv_alter(builder *b, const PgQuery__RangeVar *rv)
{
	inv_begin(b);
	dc_strbuf_adds(&b->inv, "ALTER TABLE ");
	dc_analysis__qualified(&b->inv, rv);
	dc_strbuf_addch(&b->inv, ' ');
}

/* Appends the inverse "ALTER TABLE rv ALTER COLUMN col <action>". */
static void inv_alter_column(builder *b,
                             const PgQuery__RangeVar *rv,
                             const char *col,
                             const char *action)
{
	inv_alter(b, rv);
	dc_strbuf_adds(&b->inv, "ALTER COLUMN ");
	dc_analysis__quote_ident(&b->inv, col);
	dc_strbuf_addch(&b->inv, ' ');
	dc_strbuf_adds(&b->inv, action);
}

static const PgQuery__Constraint *find_constraint(const PgQuery__ColumnDef *cd,
                                                  PgQuery__ConstrType t)
{
	size_t i;

	for (i = 0; i < cd->n_constraints; i++)
		if (cd->constraints[i]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
		    cd->constraints[i]->constraint->contype == t)
			return cd->constraints[i]->constraint;
	return NULL;
}

static bool has_constraint(const PgQuery__ColumnDef *cd, PgQuery__ConstrType t)
{
	return find_constraint(cd, t) != NULL;
}

static void add_column(builder *b, const PgQuery__RangeVar *rv, const PgQuery__ColumnDef *cd)
{
	const PgQuery__Constraint *def = find_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT);
	const PgQuery__Constraint *fk = find_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN);
	const PgQuery__Constraint *gen =
	        find_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED);
	bool builtin, notnull = cd->is_not_null ||
	                        has_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL);
	bool nulldefault = def && def->raw_expr &&
	                   def->raw_expr->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	                   def->raw_expr->a_const->isnull;
	int op = OP_ADD_COLUMN;

	dc_analysis__type_base(cd->type_name, &builtin);
	if (dc_analysis__is_serial(cd->type_name))
		op = OP_ADD_COLUMN_SERIAL;
	else if (has_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY))
		op = OP_ADD_COLUMN_IDENTITY;
	else if (gen)
		op = OP_ADD_COLUMN_GENERATED;
	else if (def && !nulldefault && !dc_analysis__default_is_fast(def->raw_expr))
		op = OP_ADD_COLUMN_VOLATILE;
	else if (!builtin)
		op = OP_ADD_COLUMN_DOMAIN;
	else if (def && !nulldefault)
		op = OP_ADD_COLUMN_DEFAULT;
	else if (notnull)
		op = OP_ADD_COLUMN_NOT_NULL;
	apply(b, op, rv, NULL);
	if (op == OP_ADD_COLUMN_DOMAIN && !b->m->note) {
		dc_strbuf n = DC_STRBUF_INIT;

		dc_strbuf_addf(
		        &n,
		        "column '%s' has the user-defined type '%s': if it is a domain "
		        "with CHECK constraints the table is rewritten (plan --live resolves "
		        "it)",
		        cd->colname ? cd->colname : "",
		        dc_analysis__last_name(cd->type_name->names, cd->type_name->n_names));
		b->m->note = dc_strbuf_detach(&n, NULL);
	}
	if (fk) {
		apply(b, OP_ADD_COLUMN_REFERENCES, rv, fk->pktable);
		if (def && !nulldefault)
			apply(b, OP_ADD_FK, rv, fk->pktable); /* a default must be validated */
	}
	if (has_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE) ||
	    has_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY))
		apply(b, OP_ADD_COLUMN_UNIQUE, rv, NULL);
	if (has_constraint(cd, PG_QUERY__CONSTR_TYPE__CONSTR_CHECK))
		apply(b, OP_ADD_CHECK, rv, NULL);
	inv_alter(b, rv);
	dc_strbuf_adds(&b->inv, "DROP COLUMN ");
	dc_analysis__quote_ident(&b->inv, cd->colname);
}

static int constraint_op(const PgQuery__Constraint *c)
{
	switch (c->contype) {
	case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		return c->skip_validation ? OP_ADD_CHECK_NOT_VALID : OP_ADD_CHECK;
	case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		return c->skip_validation ? OP_ADD_FK_NOT_VALID : OP_ADD_FK;
	case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		return c->indexname && c->indexname[0] ? OP_ADD_USING_INDEX : OP_ADD_UNIQUE;
	case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
		return c->indexname && c->indexname[0] ? OP_ADD_USING_INDEX : OP_ADD_PK;
	case PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION:
		return OP_ADD_EXCLUDE;
	default:
		return OP_ALTER_TABLE_OTHER;
	}
}

/* Storage parameters ALTER TABLE SET changes under SHARE UPDATE EXCLUSIVE. */
static bool light_reloptions(const PgQuery__Node *def)
{
	static const char *const light[] = { "fillfactor",
		                             "parallel_workers",
		                             "vacuum_index_cleanup",
		                             "vacuum_truncate",
		                             "log_autovacuum_min_duration",
		                             "toast_tuple_target",
		                             "user_catalog_table" };
	size_t i;

	if (!def || def->node_case != PG_QUERY__NODE__NODE_LIST)
		return false;
	for (i = 0; i < def->list->n_items; i++) {
		const PgQuery__Node *it = def->list->items[i];
		const PgQuery__DefElem *d;

		if (it->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			return false;
		d = it->def_elem;
		if ((d->defnamespace && !strcmp(d->defnamespace, "toast")) ||
		    strncmp(d->defname, "autovacuum_", 11) == 0 ||
		    in_list(d->defname, light, N(light)))
			continue;
		return false;
	}
	return true;
}

/* ALTER TABLE commands on one column. False when `c` is none of them. */
static bool alter_column_cmd(builder *b,
                             const PgQuery__RangeVar *rv,
                             const PgQuery__AlterTableCmd *c)
{
	const PgQuery__Node *def = c->def;

	switch (c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse:
		if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
			add_column(b, rv, def->column_def);
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumn:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumnRecurse:
		apply(b, OP_DROP_COLUMN, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType: {
		const PgQuery__ColumnDef *cd =
		        def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF ? def->column_def
		                                                                 : NULL;

		apply(b,
		      cd ? dc_analysis__type_change_op(NULL, cd->type_name, cd->raw_default != NULL)
		         : OP_TYPE_MAY_REWRITE,
		      rv, NULL);
		b->inv_ok = false;
		break;
	}
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_CookedColumnDefault:
		apply(b, def ? OP_SET_DEFAULT : OP_DROP_DEFAULT, rv, NULL);
		b->inv_ok = false; /* the previous default is not known */
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
		apply(b, OP_SET_NOT_NULL, rv, NULL);
		inv_alter_column(b, rv, c->name, "DROP NOT NULL");
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropNotNull:
		apply(b, OP_DROP_NOT_NULL, rv, NULL);
		inv_alter_column(b, rv, c->name, "SET NOT NULL");
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetStatistics:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetOptions:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ResetOptions:
		apply(b, OP_SET_STATISTICS, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetStorage:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetCompression:
		apply(b, OP_SET_STORAGE, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddIdentity:
		apply(b, OP_ADD_IDENTITY, rv, NULL);
		inv_alter_column(b, rv, c->name, "DROP IDENTITY");
		break;
	default:
		return false;
	}
	return true;
}

/* ALTER TABLE commands on constraints. False when `c` is none of them. */
static bool alter_constraint_cmd(builder *b,
                                 const PgQuery__RangeVar *rv,
                                 const PgQuery__AlterTableCmd *c)
{
	const PgQuery__Node *def = c->def;

	switch (c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraintRecurse:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddIndexConstraint: {
		const PgQuery__Constraint *k =
		        def && def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT ? def->constraint
		                                                                 : NULL;

		if (!k) {
			apply(b, OP_ALTER_TABLE_OTHER, rv, NULL);
			b->inv_ok = false;
			break;
		}
		apply(b, constraint_op(k), rv, k->pktable);
		if (k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY ||
		    k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE) {
			if (k->indexname && k->indexname[0])
				add_rel(b, rv->schemaname, k->indexname,
				        DC_LOCK_SHARE_UPDATE_EXCLUSIVE, "index");
		}
		if (k->conname && k->conname[0]) {
			inv_alter(b, rv);
			dc_strbuf_adds(&b->inv, "DROP CONSTRAINT ");
			dc_analysis__quote_ident(&b->inv, k->conname);
		} else {
			b->inv_ok = false; /* the server picks the name */
		}
		break;
	}
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraint:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraintRecurse:
		apply(b, OP_VALIDATE, rv, NULL);
		break; /* nothing to undo */
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraint:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraintRecurse:
		apply(b, OP_DROP_CONSTRAINT, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterConstraint:
		apply(b, OP_ALTER_CONSTRAINT, rv, NULL);
		b->inv_ok = false;
		break;
	default:
		return false;
	}
	return true;
}

/* ALTER TABLE ENABLE/DISABLE of triggers, rules and row security. False
 * when `c` is none of them. */
static bool alter_trigger_rule_cmd(builder *b,
                                   const PgQuery__RangeVar *rv,
                                   const PgQuery__AlterTableCmd *c)
{
	switch (c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrig:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableAlwaysTrig:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableReplicaTrig:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrigAll:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrigUser:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DisableTrig:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DisableTrigAll:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DisableTrigUser: {
		bool enable = c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrig ||
		              c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableAlwaysTrig ||
		              c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableReplicaTrig ||
		              c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrigAll ||
		              c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrigUser;

		apply(b, OP_TRIGGER_TOGGLE, rv, NULL);
		inv_alter(b, rv);
		dc_strbuf_adds(&b->inv, enable ? "DISABLE TRIGGER " : "ENABLE TRIGGER ");
		if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrigAll ||
		    c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DisableTrigAll)
			dc_strbuf_adds(&b->inv, "ALL");
		else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableTrigUser ||
		         c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DisableTrigUser)
			dc_strbuf_adds(&b->inv, "USER");
		else
			dc_analysis__quote_ident(&b->inv, c->name);
		break;
	}
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableRule:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableAlwaysRule:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableReplicaRule:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DisableRule:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_EnableRowSecurity:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DisableRowSecurity:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ForceRowSecurity:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_NoForceRowSecurity: {
		const char *undo = NULL;

		apply(b, OP_RULE_RLS, rv, NULL);
		if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_EnableRowSecurity)
			undo = "DISABLE ROW LEVEL SECURITY";
		else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DisableRowSecurity)
			undo = "ENABLE ROW LEVEL SECURITY";
		else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_ForceRowSecurity)
			undo = "NO FORCE ROW LEVEL SECURITY";
		else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_NoForceRowSecurity)
			undo = "FORCE ROW LEVEL SECURITY";
		if (undo) {
			inv_alter(b, rv);
			dc_strbuf_adds(&b->inv, undo);
		} else {
			b->inv_ok = false;
		}
		break;
	}
	default:
		return false;
	}
	return true;
}

/* ALTER TABLE commands on the table as a whole (storage, inheritance,
 * partitions). False when `c` is none of them. */
static bool alter_table_level_cmd(builder *b,
                                  const PgQuery__RangeVar *rv,
                                  const PgQuery__AlterTableCmd *c)
{
	const PgQuery__Node *def = c->def;

	switch (c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ClusterOn:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropCluster:
		apply(b, OP_CLUSTER_ON, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetRelOptions:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ResetRelOptions:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ReplaceRelOptions:
		apply(b, light_reloptions(def) ? OP_SET_RELOPTIONS_LIGHT : OP_SET_RELOPTIONS, rv,
		      NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetLogged:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetUnLogged:
		apply(b, OP_SET_LOGGED, rv, NULL);
		inv_alter(b, rv);
		dc_strbuf_adds(&b->inv, c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_SetLogged
		                                ? "SET UNLOGGED"
		                                : "SET LOGGED");
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetAccessMethod:
		apply(b, OP_SET_ACCESS_METHOD, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetTableSpace:
		apply(b, OP_SET_TABLESPACE, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddInherit:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DropInherit: {
		const PgQuery__RangeVar *parent =
		        def && def->node_case == PG_QUERY__NODE__NODE_RANGE_VAR ? def->range_var
		                                                                : NULL;

		apply(b, OP_INHERIT, rv, parent);
		b->inv_ok = false;
		break;
	}
	case PG_QUERY__ALTER_TABLE_TYPE__AT_ReplicaIdentity:
		apply(b, OP_REPLICA_IDENTITY, rv, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AttachPartition:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartition:
	case PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartitionFinalize: {
		const PgQuery__PartitionCmd *pc =
		        def && def->node_case == PG_QUERY__NODE__NODE_PARTITION_CMD
		                ? def->partition_cmd
		                : NULL;
		int op = c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AttachPartition
		                 ? OP_ATTACH_PARTITION
		         : (pc && pc->concurrent) ? OP_DETACH_CONCURRENTLY
		         : c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartitionFinalize
		                 ? OP_DETACH_CONCURRENTLY
		                 : OP_DETACH_PARTITION;

		apply(b, op, rv, pc ? pc->name : NULL);
		if (pc && pc->name && op == OP_ATTACH_PARTITION) {
			inv_alter(b, rv);
			dc_strbuf_adds(&b->inv, "DETACH PARTITION ");
			dc_analysis__qualified(&b->inv, pc->name);
		} else {
			b->inv_ok = false; /* re-attaching needs the bound */
		}
		break;
	}
	default:
		return false;
	}
	return true;
}

static void alter_cmd(builder *b, const PgQuery__RangeVar *rv, const PgQuery__AlterTableCmd *c)
{
	if (alter_column_cmd(b, rv, c) || alter_constraint_cmd(b, rv, c) ||
	    alter_trigger_rule_cmd(b, rv, c) || alter_table_level_cmd(b, rv, c))
		return;
	apply(b, OP_ALTER_TABLE_OTHER, rv, NULL);
	b->inv_ok = false;
}

static void drop_stmt(builder *b, const PgQuery__DropStmt *d)
{
	size_t i;
	int op;

	switch (d->remove_type) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
		op = OP_DROP_TABLE;
		b->m->kind = "DROP TABLE";
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
		op = d->concurrent ? OP_DROP_INDEX_CONCURRENTLY : OP_DROP_INDEX;
		b->m->kind = "DROP INDEX";
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_TRIGGER:
		op = OP_DROP_TRIGGER;
		b->m->kind = "DROP TRIGGER";
		break;
	default:
		op = OP_DROP_OTHER;
		b->m->kind = "DROP";
		break;
	}
	add_rule(b, op);
	b->inv_ok = false;
	for (i = 0; i < d->n_objects; i++) {
		const PgQuery__Node *o = d->objects[i];
		const PgQuery__List *l = o->node_case == PG_QUERY__NODE__NODE_LIST ? o->list : NULL;
		const char *schema = NULL, *name = NULL;

		if (!l || l->n_items == 0)
			continue;
		if (op == OP_DROP_TRIGGER) {
			/* [schema,] table, trigger */
			if (l->n_items >= 2) {
				name = dc_analysis__str(l->items[l->n_items - 2]);
				schema = l->n_items >= 3 ? dc_analysis__str(l->items[0]) : NULL;
			}
		} else if (d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE ||
		           d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_INDEX ||
		           d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_VIEW ||
		           d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW ||
		           d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE ||
		           d->remove_type == PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE) {
			name = dc_analysis__str(l->items[l->n_items - 1]);
			schema =
			        l->n_items >= 2 ? dc_analysis__str(l->items[l->n_items - 2]) : NULL;
		}
		if (name)
			add_rel(b, schema, name, dc_analysis__rule(op)->lock,
			        op == OP_DROP_INDEX || op == OP_DROP_INDEX_CONCURRENTLY ? "index"
			                                                                : "table");
	}
}

static int lock_mode_of(int32_t mode)
{
	/* LockStmt.mode is the server's LOCKMODE: 1 AccessShare .. 8 AccessExclusive */
	return mode >= 1 && mode <= 8 ? mode : DC_LOCK_ACCESS_EXCLUSIVE;
}

/* ALTER TABLE (and ALTER INDEX / VIEW / SEQUENCE, which share its node). */
static void alter_table(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;
	size_t i;
	const PgQuery__AlterTableStmt *a = n->alter_table_stmt;

	if (a->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_INDEX) {
		bool ts = false;

		m->kind = "ALTER INDEX";
		for (i = 0; i < a->n_cmds; i++)
			if (a->cmds[i]->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD &&
			    a->cmds[i]->alter_table_cmd->subtype ==
			            PG_QUERY__ALTER_TABLE_TYPE__AT_SetTableSpace)
				ts = true;
		add_rule(b, ts ? OP_ALTER_INDEX_TABLESPACE : OP_ALTER_INDEX);
		add_rv(b, a->relation,
		       dc_analysis__rule(ts ? OP_ALTER_INDEX_TABLESPACE : OP_ALTER_INDEX)->lock,
		       "index");
		b->inv_ok = false;
		return;
	}
	m->kind = a->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE      ? "ALTER TABLE"
	          : a->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW  ? "ALTER MATERIALIZED VIEW"
	          : a->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_VIEW     ? "ALTER VIEW"
	          : a->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE ? "ALTER SEQUENCE"
	                                                                 : "ALTER TABLE";
	/* undo in reverse order: collect forward, the inverse of one ALTER TABLE
	 * with several actions is itself one statement per action */
	for (i = 0; i < a->n_cmds; i++)
		if (a->cmds[i]->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			alter_cmd(b, a->relation, a->cmds[i]->alter_table_cmd);
}

static void rename_stmt(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;
	const PgQuery__RenameStmt *r = n->rename_stmt;

	m->kind = "RENAME";
	if (r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_INDEX) {
		add_rule(b, OP_ALTER_INDEX);
		add_rv(b, r->relation, DC_LOCK_SHARE_UPDATE_EXCLUSIVE, "index");
	} else {
		apply(b, OP_RENAME, r->relation, NULL);
	}
	if (r->relation && (r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN ||
	                    r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABCONSTRAINT)) {
		inv_alter(b, r->relation);
		dc_strbuf_adds(&b->inv, r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN
		                                ? "RENAME COLUMN "
		                                : "RENAME CONSTRAINT ");
		dc_analysis__quote_ident(&b->inv, r->newname);
		dc_strbuf_adds(&b->inv, " TO ");
		dc_analysis__quote_ident(&b->inv, r->subname);
	} else if (r->relation && (r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE ||
	                           r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_INDEX ||
	                           r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_VIEW)) {
		PgQuery__RangeVar nv = *r->relation;

		nv.relname = r->newname;
		inv_begin(b);
		dc_strbuf_adds(&b->inv, r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_INDEX
		                                ? "ALTER INDEX "
		                        : r->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_VIEW
		                                ? "ALTER VIEW "
		                                : "ALTER TABLE ");
		dc_analysis__qualified(&b->inv, &nv);
		dc_strbuf_adds(&b->inv, " RENAME TO ");
		dc_analysis__quote_ident(&b->inv, r->relation->relname);
	} else {
		b->inv_ok = false;
	}
}

/* CREATE INDEX, CREATE TABLE, CREATE TABLE AS. False when `n` is none of them. */
static bool create_relation(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;
	size_t i;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_INDEX_STMT: {
		const PgQuery__IndexStmt *ix = n->index_stmt;
		int op = ix->concurrent                         ? OP_CREATE_INDEX_CONCURRENTLY
		         : (ix->relation && !ix->relation->inh) ? OP_CREATE_INDEX_ONLY
		                                                : OP_CREATE_INDEX;

		m->kind = ix->unique ? "CREATE UNIQUE INDEX" : "CREATE INDEX";
		apply(b, op, ix->relation, NULL);
		if (ix->idxname && ix->idxname[0]) {
			inv_begin(b);
			dc_strbuf_adds(&b->inv, ix->concurrent
			                                ? "DROP INDEX CONCURRENTLY IF EXISTS "
			                                : "DROP INDEX IF EXISTS ");
			dc_analysis__qualified_name(&b->inv,
			                            ix->relation ? ix->relation->schemaname : NULL,
			                            ix->idxname);
		} else {
			b->inv_ok = false;
		}
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_STMT: {
		const PgQuery__CreateStmt *cs = n->create_stmt;

		m->kind = "CREATE TABLE";
		add_rule(b, OP_CREATE_TABLE);
		add_rv(b, cs->relation, DC_LOCK_ACCESS_EXCLUSIVE, "new table");
		for (i = 0; i < cs->n_table_elts; i++) {
			const PgQuery__Node *e = cs->table_elts[i];
			const PgQuery__Constraint *fk = NULL;

			if (e->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				fk = find_constraint(e->column_def,
				                     PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN);
			else if (e->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
			         e->constraint->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN)
				fk = e->constraint;
			if (fk && fk->pktable)
				add_rv(b, fk->pktable, DC_LOCK_SHARE_ROW_EXCLUSIVE,
				       "referenced table");
		}
		if (cs->partbound) {
			/* CREATE TABLE ... PARTITION OF parent: like ATTACH PARTITION */
			add_rv_list(b, cs->inh_relations, cs->n_inh_relations,
			            DC_LOCK_ACCESS_EXCLUSIVE, "parent");
		}
		inv_begin(b);
		dc_strbuf_adds(&b->inv, "DROP TABLE ");
		dc_analysis__qualified(&b->inv, cs->relation);
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT: {
		const PgQuery__CreateTableAsStmt *ct = n->create_table_as_stmt;
		bool mv = ct->objtype == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW;

		m->kind = mv ? "CREATE MATERIALIZED VIEW" : "CREATE TABLE AS";
		add_rule(b, OP_CREATE_TABLE_AS);
		if (ct->into && ct->into->rel) {
			add_rv(b, ct->into->rel, DC_LOCK_ACCESS_EXCLUSIVE, "new table");
			inv_begin(b);
			dc_strbuf_adds(&b->inv, mv ? "DROP MATERIALIZED VIEW " : "DROP TABLE ");
			dc_analysis__qualified(&b->inv, ct->into->rel);
		}
		break;
	}
	default:
		return false;
	}
	return true;
}

/* CREATE VIEW, and objects hanging on a table: triggers, policies,
 * statistics. False when `n` is none of them. */
static bool create_on_table(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_VIEW_STMT:
		m->kind = "CREATE VIEW";
		add_rule(b, OP_CREATE_VIEW);
		if (n->view_stmt->replace) {
			b->inv_ok = false;
		} else {
			inv_begin(b);
			dc_strbuf_adds(&b->inv, "DROP VIEW ");
			dc_analysis__qualified(&b->inv, n->view_stmt->view);
		}
		break;
	case PG_QUERY__NODE__NODE_CREATE_TRIG_STMT: {
		const PgQuery__CreateTrigStmt *t = n->create_trig_stmt;

		m->kind = "CREATE TRIGGER";
		apply(b, OP_CREATE_TRIGGER, t->relation, NULL);
		if (t->replace) {
			b->inv_ok = false;
		} else {
			inv_begin(b);
			dc_strbuf_adds(&b->inv, "DROP TRIGGER ");
			dc_analysis__quote_ident(&b->inv, t->trigname);
			dc_strbuf_adds(&b->inv, " ON ");
			dc_analysis__qualified(&b->inv, t->relation);
		}
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_POLICY_STMT: {
		const PgQuery__CreatePolicyStmt *p = n->create_policy_stmt;

		m->kind = "CREATE POLICY";
		apply(b, OP_CREATE_POLICY, p->table, NULL);
		inv_begin(b);
		dc_strbuf_adds(&b->inv, "DROP POLICY ");
		dc_analysis__quote_ident(&b->inv, p->policy_name);
		dc_strbuf_adds(&b->inv, " ON ");
		dc_analysis__qualified(&b->inv, p->table);
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_STATS_STMT:
		m->kind = "CREATE STATISTICS";
		add_rule(b, OP_CREATE_STATISTICS);
		add_rv_list(b, n->create_stats_stmt->relations, n->create_stats_stmt->n_relations,
		            DC_LOCK_SHARE_UPDATE_EXCLUSIVE, "table");
		b->inv_ok = false;
		break;
	default:
		return false;
	}
	return true;
}

/* CREATE of objects that are not relations: sequences, schemas, extensions,
 * types, functions (and DO). False when `n` is none of them. */
static bool create_object(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_SEQ_STMT:
		m->kind = "CREATE SEQUENCE";
		add_rule(b, OP_CREATE_OTHER);
		inv_begin(b);
		dc_strbuf_adds(&b->inv, "DROP SEQUENCE ");
		dc_analysis__qualified(&b->inv, n->create_seq_stmt->sequence);
		break;
	case PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT:
		m->kind = "CREATE SCHEMA";
		add_rule(b, OP_CREATE_OTHER);
		inv_begin(b);
		dc_strbuf_adds(&b->inv, "DROP SCHEMA ");
		dc_analysis__quote_ident(&b->inv, n->create_schema_stmt->schemaname);
		break;
	case PG_QUERY__NODE__NODE_CREATE_EXTENSION_STMT:
		m->kind = "CREATE EXTENSION";
		add_rule(b, OP_CREATE_OTHER);
		inv_begin(b);
		dc_strbuf_adds(&b->inv, "DROP EXTENSION ");
		dc_analysis__quote_ident(&b->inv, n->create_extension_stmt->extname);
		break;
	case PG_QUERY__NODE__NODE_CREATE_ENUM_STMT:
	case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT:
	case PG_QUERY__NODE__NODE_COMPOSITE_TYPE_STMT: {
		PgQuery__Node **names = NULL;
		size_t nn = 0, k;

		m->kind = n->node_case == PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT ? "CREATE DOMAIN"
		                                                                  : "CREATE TYPE";
		add_rule(b, OP_CREATE_OTHER);
		if (n->node_case == PG_QUERY__NODE__NODE_CREATE_ENUM_STMT) {
			names = n->create_enum_stmt->type_name;
			nn = n->create_enum_stmt->n_type_name;
		} else if (n->node_case == PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT) {
			names = n->create_domain_stmt->domainname;
			nn = n->create_domain_stmt->n_domainname;
		}
		if (nn) {
			inv_begin(b);
			dc_strbuf_adds(&b->inv,
			               n->node_case == PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT
			                       ? "DROP DOMAIN "
			                       : "DROP TYPE ");
			for (k = 0; k < nn; k++) {
				if (k)
					dc_strbuf_addch(&b->inv, '.');
				dc_analysis__quote_ident(&b->inv, dc_analysis__str(names[k]));
			}
		} else {
			b->inv_ok = false;
		}
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
	case PG_QUERY__NODE__NODE_DO_STMT:
		m->kind = n->node_case == PG_QUERY__NODE__NODE_DO_STMT ? "DO" : "CREATE FUNCTION";
		add_rule(b, OP_CREATE_OTHER);
		b->inv_ok = false;
		break;
	default:
		return false;
	}
	return true;
}

/* REINDEX, TRUNCATE, CLUSTER, VACUUM, ANALYZE, REFRESH, LOCK. False when `n` is none of them. */
static bool maintenance_stmt(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;
	size_t i;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_REINDEX_STMT: {
		const PgQuery__ReindexStmt *r = n->reindex_stmt;
		bool conc = dc_analysis__autocommit_what(n) != NULL &&
		            r->kind != PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_SCHEMA &&
		            r->kind != PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_SYSTEM &&
		            r->kind != PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_DATABASE;
		size_t k;

		for (k = 0; !conc && k < r->n_params; k++)
			if (r->params[k]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
			    !strcasecmp(r->params[k]->def_elem->defname, "concurrently"))
				conc = true;
		m->kind = "REINDEX";
		add_rule(b, conc ? OP_REINDEX_CONCURRENTLY : OP_REINDEX);
		if (r->relation) {
			if (r->kind == PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_INDEX)
				add_rv(b, r->relation,
				       conc ? DC_LOCK_SHARE_UPDATE_EXCLUSIVE
				            : DC_LOCK_ACCESS_EXCLUSIVE,
				       "index");
			else
				add_rv(b, r->relation,
				       conc ? DC_LOCK_SHARE_UPDATE_EXCLUSIVE : DC_LOCK_SHARE,
				       "table");
		}
		b->inv_ok = false;
		break;
	}
	case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
		m->kind = "TRUNCATE";
		add_rule(b, OP_TRUNCATE);
		add_rv_list(b, n->truncate_stmt->relations, n->truncate_stmt->n_relations,
		            DC_LOCK_ACCESS_EXCLUSIVE, "table");
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_CLUSTER_STMT:
		m->kind = "CLUSTER";
		apply(b, OP_CLUSTER, n->cluster_stmt->relation, NULL);
		if (!n->cluster_stmt->relation)
			add_rule(b, OP_NON_TRANSACTIONAL);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_VACUUM_STMT: {
		const PgQuery__VacuumStmt *v = n->vacuum_stmt;
		bool full = false;
		int op;

		for (i = 0; i < v->n_options; i++)
			if (v->options[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
			    !strcasecmp(v->options[i]->def_elem->defname, "full"))
				full = true;
		op = !v->is_vacuumcmd ? OP_ANALYZE : full ? OP_VACUUM_FULL : OP_VACUUM;
		m->kind = v->is_vacuumcmd ? "VACUUM" : "ANALYZE";
		add_rule(b, op);
		for (i = 0; i < v->n_rels; i++)
			if (v->rels[i]->node_case == PG_QUERY__NODE__NODE_VACUUM_RELATION)
				add_rv(b, v->rels[i]->vacuum_relation->relation,
				       dc_analysis__rule(op)->lock, "table");
		b->inv_ok = false;
		break;
	}
	case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
		m->kind = "REFRESH MATERIALIZED VIEW";
		apply(b,
		      n->refresh_mat_view_stmt->concurrent ? OP_REFRESH_MV_CONCURRENTLY
		                                           : OP_REFRESH_MV,
		      n->refresh_mat_view_stmt->relation, NULL);
		break; /* refreshing is idempotent: nothing to undo */
	case PG_QUERY__NODE__NODE_LOCK_STMT:
		m->kind = "LOCK TABLE";
		add_rule(b, OP_LOCK_TABLE);
		add_rv_list(b, n->lock_stmt->relations, n->lock_stmt->n_relations,
		            (dc_lock_mode)lock_mode_of(n->lock_stmt->mode), "table");
		break;
	default:
		return false;
	}
	return true;
}

/* SET SCHEMA, COMMENT, GRANT, ALTER TYPE/DOMAIN/SEQUENCE. False when `n` is none of them. */
static bool misc_ddl_stmt(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
		m->kind = "SET SCHEMA";
		apply(b, OP_RENAME, n->alter_object_schema_stmt->relation, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_COMMENT_STMT:
		m->kind = "COMMENT";
		add_rule(b, OP_COMMENT);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_GRANT_STMT:
	case PG_QUERY__NODE__NODE_GRANT_ROLE_STMT:
		m->kind = "GRANT";
		add_rule(b, OP_GRANT);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_ALTER_ENUM_STMT:
		m->kind = "ALTER TYPE";
		add_rule(b, n->alter_enum_stmt->old_val && n->alter_enum_stmt->old_val[0]
		                    ? OP_OTHER
		                    : OP_ENUM_ADD_VALUE);
		b->inv_ok = false; /* enum values can't be dropped */
		break;
	case PG_QUERY__NODE__NODE_ALTER_DOMAIN_STMT: {
		const PgQuery__AlterDomainStmt *d = n->alter_domain_stmt;
		const PgQuery__Constraint *k =
		        d->def && d->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT
		                ? d->def->constraint
		                : NULL;

		m->kind = "ALTER DOMAIN";
		if (d->subtype && d->subtype[0] == 'C')
			add_rule(b, k && k->skip_validation ? OP_DOMAIN_ADD_CONSTRAINT_NOT_VALID
			                                    : OP_DOMAIN_ADD_CONSTRAINT);
		else
			add_rule(b, OP_OTHER);
		b->inv_ok = false;
		break;
	}
	case PG_QUERY__NODE__NODE_ALTER_SEQ_STMT:
		m->kind = "ALTER SEQUENCE";
		add_rule(b, OP_ALTER_SEQUENCE);
		add_rv(b, n->alter_seq_stmt->sequence, DC_LOCK_SHARE_ROW_EXCLUSIVE, "sequence");
		b->inv_ok = false;
		break;
	default:
		return false;
	}
	return true;
}

/* DML, SELECT, SET and transaction control. False when `n` is none of them. */
static bool dml_or_session_stmt(builder *b, const PgQuery__Node *n)
{
	dc_stmt_model *m = b->m;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		m->kind = "INSERT";
		apply(b, OP_DML, n->insert_stmt->relation, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		m->kind = "UPDATE";
		apply(b, OP_DML, n->update_stmt->relation, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		m->kind = "DELETE";
		apply(b, OP_DML, n->delete_stmt->relation, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		m->kind = "MERGE";
		apply(b, OP_DML, n->merge_stmt->relation, NULL);
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		m->kind = "SELECT";
		add_rule(b, OP_SELECT);
		if (n->select_stmt->into_clause) {
			m->kind = "SELECT INTO";
			add_rule(b, OP_CREATE_TABLE_AS);
			add_rv(b, n->select_stmt->into_clause->rel, DC_LOCK_ACCESS_EXCLUSIVE,
			       "new table");
		}
		b->inv_ok = false;
		break;
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		m->kind = "SET";
		add_rule(b, OP_SET);
		break;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		m->kind = "transaction control";
		m->transaction_control = true;
		add_rule(b, OP_TRANSACTION);
		b->inv_ok = false;
		break;
	default:
		return false;
	}
	return true;
}

static void model_node(builder *b, const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		alter_table(b, n);
		break;
	case PG_QUERY__NODE__NODE_DROP_STMT:
		drop_stmt(b, n->drop_stmt);
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		rename_stmt(b, n);
		break;
	default:
		if (create_relation(b, n) || create_on_table(b, n) || create_object(b, n) ||
		    maintenance_stmt(b, n) || misc_ddl_stmt(b, n) || dml_or_session_stmt(b, n))
			break;
		b->m->kind = "other";
		add_rule(b, OP_OTHER);
		b->inv_ok = false;
		break;
	}
	if (dc_analysis__autocommit_what(n) && b->m->transactional)
		add_rule(b, OP_NON_TRANSACTIONAL);
}

int dc_analysis__model(const PgQuery__Node *n,
                       const char *sql,
                       size_t off,
                       size_t len,
                       dc_stmt_model *out)
{
	builder b;

	(void)sql;
	memset(out, 0, sizeof(*out));
	memset(&b, 0, sizeof(b));
	b.m = out;
	b.inv_ok = true;
	dc_strbuf_init(&b.inv, 0);
	out->offset = off;
	out->len = len;
	out->transactional = true;
	out->kind = "other";
	model_node(&b, n);
	if (b.failed || dc_strbuf_error(&b.inv)) {
		dc_strbuf_release(&b.inv);
		dc_analysis__model_release(out);
		return DC_ENOMEM;
	}
	if (b.inv_ok && b.inv_any) {
		out->reversible = true;
		out->inverse = dc_strbuf_detach(&b.inv, NULL);
		if (!out->inverse) {
			dc_analysis__model_release(out);
			return DC_ENOMEM;
		}
	} else {
		/* statements with nothing to undo (VALIDATE, REFRESH, SET) are reversible */
		out->reversible = b.inv_ok;
		dc_strbuf_release(&b.inv);
	}
	return 0;
}

void dc_analysis__model_release(dc_stmt_model *m)
{
	size_t i;

	for (i = 0; i < m->nrels; i++) {
		free(m->rels[i].schema);
		free(m->rels[i].name);
	}
	free(m->rels);
	free((void *)m->rules);
	free(m->inverse);
	free(m->note);
	memset(m, 0, sizeof(*m));
}

void dc_stmt_list_release(dc_stmt_list *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->len; i++)
		dc_analysis__model_release(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}
