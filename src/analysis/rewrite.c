/*
 * dc_rewrite_safe: `plan --safe`, a PostgreSQL migration rewritten into
 * phases that never hold a blocking lock across a scan or a rewrite.
 *
 * Every statement is read through libpg_query's typed protobuf-c tree. New
 * statements are built from protobuf nodes (the original's, shallow-copied
 * and changed, or new ones) and printed with pg_query_deparse_protobuf where
 * its output is right; the short fixed ones (VALIDATE, DROP CONSTRAINT, the
 * batched UPDATE, the sync trigger) are printed here with identifiers quoted
 * as quote_identifier() does. The deparser of libpg_query 15-4.0.0 prints the
 * name of a CREATE INDEX and of an ADD CONSTRAINT without quotes ("Uq" comes
 * back as Uq): those names go into the tree as a generated placeholder, which
 * is then replaced by the quoted name. Every generated statement is parsed
 * again before it is written out.
 *
 * The output keeps the order of the original statements: statement N's last
 * phase runs before statement N+1's first, so nothing depends on a change
 * that has not happened yet. Consecutive pieces of the same kind share a
 * phase (catalog-only DDL with catalog-only DDL, validations with
 * validations); a concurrent index build or a backfill is a phase alone.
 */
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include <deployclaw/analysis.h>
#include <deployclaw/rewrite.h>

#include "analysis_internal.h"

/* PostgreSQL's NAMEDATALEN - 1: longer identifiers are truncated. */
#define PG_NAME_MAX 63

/* Most phases a rewrite may produce (each statement yields at most ~10). */
#define MAX_OUT_PHASES 100000

enum kind {
	K_DDL = 0,        /* transactional, catalog-only or brief: merges with K_DDL */
	K_VALIDATE = 1,   /* VALIDATE CONSTRAINT: scans under SHARE UPDATE EXCLUSIVE */
	K_CONCURRENT = 2, /* CREATE/DROP INDEX CONCURRENTLY: transaction: false, alone */
	K_BATCH = 3,      /* batched backfill: transaction: false, alone */
	K_NONTX = 4,      /* another autocommit-only statement, alone */
	K_VERBATIM = 5    /* an original phase copied as it is */
};

typedef struct out_phase {
	int kind;
	char *name;
	dc_strbuf comment;   /* "# ...\n" lines written before the phase */
	dc_strbuf up;        /* statements, each ending with ";\n" */
	dc_ptrvec downs;     /* char *: statements undoing `up`, in the order of up */
	char *down_text;     /* K_VERBATIM: the original down (NULL when none) */
	const char *up_text; /* K_VERBATIM: the original up, borrowed */
	bool transactional;
	int64_t batch_rows;
} out_phase;

typedef struct rw {
	const dc_migration *m;
	dc_error *err;
	dc_ptrvec phases;       /* out_phase * */
	dc_ptrvec verify;       /* char *: assertions added to the migration's */
	dc_ptrvec arena;        /* nodes and strings built here */
	dc_ptrvec created;      /* char *: "schema\x1frel" created in the current phase */
	dc_strbuf pending;      /* comment lines for the phase of the next statement */
	dc_strbuf notes;        /* comment lines for the top of the document */
	const dc_phase *src;    /* the original phase being rewritten */
	const dc_statement *st; /* the statement being rewritten */
	int32_t pgversion;
	unsigned nplaceholders;
	bool fresh;         /* the next statement starts a new phase */
	const char *ignore; /* lint rule silenced for the next statement */
} rw;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static int oom(rw *r)
{
	return dc_error_set(r->err, DC_ENOMEM, "out of memory");
}

static void *arena_alloc(rw *r, size_t size)
{
	void *p = calloc(1, size);

	if (!p)
		return NULL;
	if (dc_ptrvec_push(&r->arena, p) != 0) {
		free(p);
		return NULL;
	}
	return p;
}

/* An array of `n` pointers (at least one), zeroed, owned by the arena. */
static PgQuery__Node **arena_nodes(rw *r, size_t n)
{
	PgQuery__Node **a = dc_malloc_array(n ? n : 1, sizeof(*a));

	if (!a)
		return NULL;
	memset(a, 0, (n ? n : 1) * sizeof(*a));
	if (dc_ptrvec_push(&r->arena, a) != 0) {
		free(a);
		return NULL;
	}
	return a;
}

static char *arena_strdup(rw *r, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = arena_alloc(r, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

static void phase_free(void *p)
{
	out_phase *ph = p;

	if (!ph)
		return;
	free(ph->name);
	dc_strbuf_release(&ph->comment);
	dc_strbuf_release(&ph->up);
	dc_ptrvec_release(&ph->downs, free);
	free(ph->down_text);
	free(ph);
}

/* Appends `fmt` as a "# " comment line to `sb`, control characters shown as '?'. */
static void comment_line(dc_strbuf *sb, const char *fmt, va_list ap) DC_PRINTF(2, 0);

static void comment_line(dc_strbuf *sb, const char *fmt, va_list ap)
{
	dc_strbuf line = DC_STRBUF_INIT;
	size_t i;

	dc_strbuf_vaddf(&line, fmt, ap);
	dc_strbuf_adds(sb, "# ");
	for (i = 0; i < line.len; i++) {
		unsigned char ch = (unsigned char)line.buf[i];

		dc_strbuf_addch(sb, ch < 0x20 || ch == 0x7f ? '?' : ch);
	}
	dc_strbuf_addch(sb, '\n');
	if (dc_strbuf_error(&line))
		sb->failed = DC_ENOMEM;
	dc_strbuf_release(&line);
}

/* A comment written above the phase that receives the next statement. */
static void note(rw *r, const char *fmt, ...) DC_PRINTF(2, 3);

static void note(rw *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	comment_line(&r->pending, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Identifiers                                                              */

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

/* "ALTER TABLE [ONLY] rel " */
static void add_alter(dc_strbuf *sb, const PgQuery__RangeVar *rv)
{
	dc_strbuf_adds(sb, "ALTER TABLE ");
	if (!rv->inh)
		dc_strbuf_adds(sb, "ONLY ");
	dc_analysis__qualified(sb, rv);
	dc_strbuf_addch(sb, ' ');
}

/* Length of the longest prefix of `s` of at most `n` bytes that ends on a
 * UTF-8 character boundary (pg_mbcliplen). */
static size_t clip_utf8(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/*
 * makeObjectName(): name1[_name2][_label] within 63 bytes, shortening the
 * longer of name1 and name2 first, as PostgreSQL names unnamed objects.
 */
static void object_name(dc_strbuf *out, const char *name1, const char *name2, const char *label)
{
	size_t n1 = strlen(name1), n2 = name2 ? strlen(name2) : 0, overhead = 0, avail;

	if (name2)
		overhead++;
	if (label)
		overhead += strlen(label) + 1;
	avail = overhead < PG_NAME_MAX ? PG_NAME_MAX - overhead : 0;
	while (n1 + n2 > avail) {
		if (n1 > n2)
			n1--;
		else
			n2--;
	}
	n1 = clip_utf8(name1, n1);
	dc_strbuf_add(out, name1, n1);
	if (name2) {
		dc_strbuf_addch(out, '_');
		dc_strbuf_add(out, name2, clip_utf8(name2, n2));
	}
	if (label) {
		dc_strbuf_addch(out, '_');
		dc_strbuf_adds(out, label);
	}
}

/* ChooseIndexNameAddition(): names joined by '_', stopping past 63 bytes. */
static void name_addition(dc_strbuf *sb, const char *name)
{
	if (sb->len > PG_NAME_MAX)
		return;
	if (sb->len)
		dc_strbuf_addch(sb, '_');
	dc_strbuf_adds(sb, name);
}

static const char *str_val(const PgQuery__Node *n)
{
	return n && n->node_case == PG_QUERY__NODE__NODE_STRING ? n->string->sval : NULL;
}

/* FigureIndexColname(), for the common shapes: a column, a function call, a cast. */
static const char *expr_colname(const PgQuery__Node *n)
{
	const char *s;

	if (!n)
		return NULL;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_COLUMN_REF:
		return n->column_ref->n_fields
		               ? str_val(n->column_ref->fields[n->column_ref->n_fields - 1])
		               : NULL;
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		return n->func_call->n_funcname
		               ? str_val(n->func_call->funcname[n->func_call->n_funcname - 1])
		               : NULL;
	case PG_QUERY__NODE__NODE_TYPE_CAST:
		if ((s = expr_colname(n->type_cast->arg)) != NULL)
			return s;
		return n->type_cast->type_name && n->type_cast->type_name->n_names
		               ? str_val(n->type_cast->type_name
		                                 ->names[n->type_cast->type_name->n_names - 1])
		               : NULL;
	default:
		return NULL;
	}
}

static const char *index_elem_name(const PgQuery__Node *n)
{
	const PgQuery__IndexElem *e;
	const char *s;

	if (!n || n->node_case != PG_QUERY__NODE__NODE_INDEX_ELEM)
		return "expr";
	e = n->index_elem;
	if (e->indexcolname && e->indexcolname[0])
		return e->indexcolname;
	if (e->name && e->name[0])
		return e->name;
	s = expr_colname(e->expr);
	return s ? s : "expr";
}

/* ------------------------------------------------------------------------ */
/* Protobuf nodes and the deparser                                          */

static PgQuery__Node *node_new(rw *r)
{
	PgQuery__Node *n = arena_alloc(r, sizeof(*n));

	if (n)
		pg_query__node__init(n);
	return n;
}

static PgQuery__Node *string_node(rw *r, const char *s)
{
	PgQuery__Node *n = node_new(r);
	PgQuery__String *str = arena_alloc(r, sizeof(*str));
	char *copy = arena_strdup(r, s);

	if (!n || !str || !copy)
		return NULL;
	pg_query__string__init(str);
	str->sval = copy;
	n->node_case = PG_QUERY__NODE__NODE_STRING;
	n->string = str;
	return n;
}

static PgQuery__Node *column_ref(rw *r, const char *col)
{
	PgQuery__Node *n = node_new(r);
	PgQuery__ColumnRef *c = arena_alloc(r, sizeof(*c));
	PgQuery__Node **fields = arena_alloc(r, sizeof(*fields));

	if (!n || !c || !fields || !(fields[0] = string_node(r, col)))
		return NULL;
	pg_query__column_ref__init(c);
	c->n_fields = 1;
	c->fields = fields;
	c->location = -1;
	n->node_case = PG_QUERY__NODE__NODE_COLUMN_REF;
	n->column_ref = c;
	return n;
}

static PgQuery__Node *index_elem(rw *r, const char *col)
{
	PgQuery__Node *n = node_new(r);
	PgQuery__IndexElem *e = arena_alloc(r, sizeof(*e));
	char *copy = arena_strdup(r, col);

	if (!n || !e || !copy)
		return NULL;
	pg_query__index_elem__init(e);
	e->name = copy;
	e->ordering = PG_QUERY__SORT_BY_DIR__SORTBY_DEFAULT;
	e->nulls_ordering = PG_QUERY__SORT_BY_NULLS__SORTBY_NULLS_DEFAULT;
	n->node_case = PG_QUERY__NODE__NODE_INDEX_ELEM;
	n->index_elem = e;
	return n;
}

/* Deparses one statement node into `out` (appended). */
static int deparse(rw *r, PgQuery__Node *stmt, dc_strbuf *out)
{
	PgQuery__ParseResult pr = PG_QUERY__PARSE_RESULT__INIT;
	PgQuery__RawStmt raw = PG_QUERY__RAW_STMT__INIT;
	PgQuery__RawStmt *rawp = &raw;
	PgQueryProtobuf pb = { 0, NULL };
	PgQueryDeparseResult d = { NULL, NULL };
	uint8_t *buf = NULL;
	int rc = 0;

	raw.stmt = stmt;
	pr.version = r->pgversion;
	pr.n_stmts = 1;
	pr.stmts = &rawp;
	pb.len = pg_query__parse_result__get_packed_size(&pr);
	if (!(buf = malloc(pb.len ? pb.len : 1))) {
		rc = oom(r);
		goto out;
	}
	pg_query__parse_result__pack(&pr, buf);
	pb.data = (char *)buf;
	d = pg_query_deparse_protobuf(pb);
	if (d.error) {
		rc = dc_error_set(r->err, DC_EINVAL, "cannot print a rewritten statement: %s",
		                  d.error->message);
		goto out;
	}
	dc_strbuf_adds(out, d.query);
	if (dc_strbuf_error(out))
		rc = oom(r);
out:
	pg_query_free_deparse_result(d);
	free(buf);
	return rc;
}

/* Deparses an expression: printed as "SELECT <expr>", the keyword cut off. */
static int deparse_expr(rw *r, PgQuery__Node *expr, dc_strbuf *out)
{
	static const char kw[] = "SELECT ";
	PgQuery__Node *n = node_new(r);
	PgQuery__SelectStmt *sel = arena_alloc(r, sizeof(*sel));
	PgQuery__Node *tn = node_new(r);
	PgQuery__ResTarget *rt = arena_alloc(r, sizeof(*rt));
	PgQuery__Node **tl = arena_alloc(r, sizeof(*tl));
	dc_strbuf tmp = DC_STRBUF_INIT;
	int rc;

	if (!n || !sel || !tn || !rt || !tl)
		return oom(r);
	pg_query__select_stmt__init(sel);
	pg_query__res_target__init(rt);
	rt->val = expr;
	rt->location = -1;
	tn->node_case = PG_QUERY__NODE__NODE_RES_TARGET;
	tn->res_target = rt;
	tl[0] = tn;
	sel->n_target_list = 1;
	sel->target_list = tl;
	sel->limit_option = PG_QUERY__LIMIT_OPTION__LIMIT_OPTION_DEFAULT;
	sel->op = PG_QUERY__SET_OPERATION__SETOP_NONE;
	n->node_case = PG_QUERY__NODE__NODE_SELECT_STMT;
	n->select_stmt = sel;
	if ((rc = deparse(r, n, &tmp)) != 0)
		goto out;
	if (strncmp(tmp.buf, kw, sizeof(kw) - 1) != 0) {
		rc = dc_error_set(r->err, DC_EINVAL, "cannot print an expression: '%.200s'",
		                  tmp.buf);
		goto out;
	}
	dc_strbuf_adds(out, tmp.buf + sizeof(kw) - 1);
	if (dc_strbuf_error(out))
		rc = oom(r);
out:
	dc_strbuf_release(&tmp);
	return rc;
}

/* A fresh lowercase name the deparser prints bare; replaced after printing. */
static char *placeholder(rw *r)
{
	char buf[48];

	snprintf(buf, sizeof(buf), "dc_rewrite_placeholder_%u", ++r->nplaceholders);
	return arena_strdup(r, buf);
}

static bool ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Replaces the one whole-word occurrence of `ph` in `sb` by `name`, quoted. */
static int replace_placeholder(rw *r, dc_strbuf *sb, const char *ph, const char *name)
{
	dc_strbuf out = DC_STRBUF_INIT;
	size_t phlen = strlen(ph);
	const char *p, *hit = NULL;
	int found = 0, rc = 0;

	for (p = strstr(sb->buf, ph); p; p = strstr(p + 1, ph)) {
		if ((p > sb->buf && ident_char(p[-1])) || ident_char(p[phlen]))
			continue;
		hit = p;
		found++;
	}
	if (found != 1 || !hit) {
		rc = dc_error_set(r->err, DC_EINVAL, "cannot name a rewritten object in '%.200s'",
		                  sb->buf);
		goto out;
	}
	dc_strbuf_add(&out, sb->buf, (size_t)(hit - sb->buf));
	dc_analysis__quote_ident(&out, name);
	dc_strbuf_adds(&out, hit + phlen);
	if (dc_strbuf_error(&out)) {
		rc = oom(r);
		goto out;
	}
	dc_strbuf_reset(sb);
	dc_strbuf_add(sb, out.buf, out.len);
	if (dc_strbuf_error(sb))
		rc = oom(r);
out:
	dc_strbuf_release(&out);
	return rc;
}

/* An ALTER TABLE of `orig`'s relation with the single command `cmd`. */
static PgQuery__Node *alter_stmt(rw *r, const PgQuery__AlterTableStmt *orig, PgQuery__Node *cmd)
{
	PgQuery__Node *n = node_new(r);
	PgQuery__AlterTableStmt *a = arena_alloc(r, sizeof(*a));
	PgQuery__Node **cmds = arena_alloc(r, sizeof(*cmds));

	if (!n || !a || !cmds)
		return NULL;
	*a = *orig;
	cmds[0] = cmd;
	a->n_cmds = 1;
	a->cmds = cmds;
	a->missing_ok = false;
	n->node_case = PG_QUERY__NODE__NODE_ALTER_TABLE_STMT;
	n->alter_table_stmt = a;
	return n;
}

static PgQuery__Node *cmd_node(rw *r,
                               PgQuery__AlterTableType subtype,
                               const char *name,
                               PgQuery__Node *def)
{
	PgQuery__Node *n = node_new(r);
	PgQuery__AlterTableCmd *c = arena_alloc(r, sizeof(*c));

	if (!n || !c)
		return NULL;
	pg_query__alter_table_cmd__init(c);
	c->subtype = subtype;
	c->name = name ? arena_strdup(r, name) : NULL;
	if (name && !c->name)
		return NULL;
	c->def = def;
	c->behavior = PG_QUERY__DROP_BEHAVIOR__DROP_RESTRICT;
	n->node_case = PG_QUERY__NODE__NODE_ALTER_TABLE_CMD;
	n->alter_table_cmd = c;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Phases                                                                   */

static bool phase_name_taken(const rw *r, const char *name)
{
	size_t i;
	const out_phase *p;

	dc_vec_foreach(&r->phases, i, p) {
		if (strcmp(p->name, name) == 0)
			return true;
	}
	return false;
}

static out_phase *phase_new(rw *r, int kind, const char *hint)
{
	out_phase *p = NULL;
	dc_strbuf name = DC_STRBUF_INIT;
	unsigned n = 1;

	if (r->phases.len >= MAX_OUT_PHASES) {
		dc_error_set(r->err, DC_ELIMIT, "the rewrite needs more than %d phases",
		             MAX_OUT_PHASES);
		return NULL;
	}
	dc_strbuf_adds(&name, hint);
	while (!dc_strbuf_error(&name) && phase_name_taken(r, name.buf)) {
		dc_strbuf_reset(&name);
		dc_strbuf_addf(&name, "%s_%u", hint, ++n);
	}
	if (!(p = calloc(1, sizeof(*p))) || dc_strbuf_error(&name))
		goto fail;
	p->kind = kind;
	dc_strbuf_init(&p->comment, 0);
	dc_strbuf_init(&p->up, 0);
	p->transactional = kind == K_DDL || kind == K_VALIDATE;
	if (kind == K_BATCH)
		p->batch_rows = DC_REWRITE_BATCH_ROWS;
	if (!(p->name = dc_strbuf_detach(&name, NULL)) || dc_ptrvec_push(&r->phases, p) != 0)
		goto fail;
	if (r->pending.len) {
		dc_strbuf_add(&p->comment, r->pending.buf, r->pending.len);
		dc_strbuf_reset(&r->pending);
	}
	return p;
fail:
	dc_strbuf_release(&name);
	phase_free(p);
	oom(r);
	return NULL;
}

/* Parses generated SQL again: a statement that does not parse is a bug here. */
static int check_sql(rw *r, const char *sql)
{
	PgQueryProtobufParseResult res = pg_query_parse_protobuf(sql);
	int rc = 0;

	if (res.error)
		rc = dc_error_set(
		        r->err, DC_EINVAL,
		        "internal error: rewritten statement does not parse (%s): '%.300s'",
		        res.error->message, sql);
	pg_query_free_protobuf_parse_result(res);
	return rc;
}

/*
 * Adds statement `up` (and `down`, its inverse, may be NULL) to the last
 * phase when it is of the same mergeable kind, else to a new phase named
 * after `hint`. `generated`: parse both again first.
 */
static int emit_sql(rw *r,
                    int kind,
                    const char *hint,
                    const char *up,
                    const char *down,
                    bool generated)
{
	out_phase *p = r->phases.len ? r->phases.items[r->phases.len - 1] : NULL;
	char *d = NULL;
	int rc;

	if (generated && ((rc = check_sql(r, up)) != 0 || (down && (rc = check_sql(r, down)) != 0)))
		return rc;
	if (!p || r->fresh || p->kind != kind || (kind != K_DDL && kind != K_VALIDATE)) {
		if (!(p = phase_new(r, kind, hint)))
			return r->err && r->err->code ? r->err->code : DC_ENOMEM;
		r->fresh = false;
	} else if (r->pending.len) {
		dc_strbuf_add(&p->comment, r->pending.buf, r->pending.len);
		dc_strbuf_reset(&r->pending);
	}
	if (r->ignore)
		dc_strbuf_addf(&p->up, "-- deployclaw:ignore %s\n", r->ignore);
	r->ignore = NULL;
	dc_strbuf_adds(&p->up, up);
	dc_strbuf_adds(&p->up, ";\n");
	if (down && (!(d = dc_strdup(down)) || dc_ptrvec_push(&p->downs, d) != 0)) {
		free(d);
		return oom(r);
	}
	if (dc_strbuf_error(&p->up))
		return oom(r);
	return 0;
}

static int emit(rw *r, int kind, const char *hint, const dc_strbuf *up, const dc_strbuf *down)
{
	if (dc_strbuf_error(up) || (down && dc_strbuf_error(down)))
		return oom(r);
	return emit_sql(r, kind, hint, up->buf, down && down->len ? down->buf : NULL, true);
}

/* Silences lint rule `rule` (static string) for the next emitted statement
 * ("-- deployclaw:ignore <rule>" before it), where the rewrite does on
 * purpose what the rule warns about. */
static void lint_ignore(rw *r, const char *rule)
{
	r->ignore = rule;
}

/* ------------------------------------------------------------------------ */
/* What needs a rewrite                                                     */

static bool name_in(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* What an ADD COLUMN carries. */
typedef struct colplan {
	PgQuery__Constraint *def; /* DEFAULT, NULL when none */
	bool not_null;
	bool stable_default;
	bool unsupported; /* identity, generated or serial: no online rewrite */
	size_t nextra;    /* CHECK, REFERENCES, UNIQUE, PRIMARY KEY */
} colplan;

static void plan_column(const PgQuery__ColumnDef *cd, colplan *cp)
{
	static const char *const serials[] = { "serial",      "serial4", "bigserial", "serial8",
		                               "smallserial", "serial2", NULL };
	const PgQuery__TypeName *tn = cd->type_name;
	size_t i;

	memset(cp, 0, sizeof(*cp));
	cp->not_null = cd->is_not_null;
	if (tn && tn->n_names == 1 && str_val(tn->names[0]) &&
	    name_in(str_val(tn->names[0]), serials))
		cp->unsupported = true;
	if (cd->identity && cd->identity[0])
		cp->unsupported = true;
	if (cd->generated && cd->generated[0])
		cp->unsupported = true;
	if (cd->raw_default)
		cp->unsupported = true; /* only set by CREATE TABLE LIKE/OF paths */
	for (i = 0; i < cd->n_constraints; i++) {
		const PgQuery__Node *n = cd->constraints[i];
		PgQuery__Constraint *c;

		if (n->node_case != PG_QUERY__NODE__NODE_CONSTRAINT)
			continue;
		c = n->constraint;
		switch (c->contype) {
		case PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL:
			cp->not_null = true;
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT:
			cp->def = c;
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY:
		case PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED:
		case PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION:
			cp->unsupported = true;
			break;
		case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
			cp->nextra++;
			break;
		default:
			break;
		}
	}
	cp->stable_default = cp->def && dc_analysis__default_is_fast(cp->def->raw_expr);
}

static bool column_needs_rewrite(const colplan *cp)
{
	if (cp->unsupported)
		return false;
	return (cp->def && !cp->stable_default) || (cp->not_null && !cp->stable_default) ||
	       cp->nextra > 0;
}

/*
 * Whether ALTER COLUMN ... TYPE rewrites the table. Without the catalog the
 * old type is unknown: no USING and a target of text, varchar (no length),
 * numeric (no precision) or citext is taken as the binary-coercible widening
 * it nearly always is (varchar(n) -> text, numeric(p,s) -> numeric); every
 * other change counts as a rewrite.
 */
static bool type_change_rewrites(const PgQuery__ColumnDef *cd)
{
	static const char *const widening[] = { "text", "varchar", "numeric", "citext", NULL };
	const PgQuery__TypeName *tn = cd->type_name;
	const char *last;

	if (cd->raw_default || !tn || tn->n_typmods || tn->n_array_bounds || !tn->n_names)
		return true;
	last = str_val(tn->names[tn->n_names - 1]);
	if (tn->n_names == 2 &&
	    (!str_val(tn->names[0]) || strcmp(str_val(tn->names[0]), "pg_catalog")))
		return true;
	return !last || !name_in(last, widening);
}

static const PgQuery__Constraint *cmd_constraint(const PgQuery__AlterTableCmd *c)
{
	return c->def && c->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT ? c->def->constraint
	                                                                      : NULL;
}

static const PgQuery__ColumnDef *cmd_column(const PgQuery__AlterTableCmd *c)
{
	return c->def && c->def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF ? c->def->column_def
	                                                                      : NULL;
}

static bool constraint_needs_rewrite(const PgQuery__Constraint *con)
{
	switch (con->contype) {
	case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
	case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		return !con->skip_validation;
	case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
	case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
		return !con->indexname || !con->indexname[0];
	default:
		return false;
	}
}

static bool cmd_needs_rewrite(const PgQuery__AlterTableCmd *c)
{
	const PgQuery__Constraint *con;
	const PgQuery__ColumnDef *cd;
	colplan cp;

	switch (c->subtype) {
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
		if (!(cd = cmd_column(c)))
			return false;
		plan_column(cd, &cp);
		return column_needs_rewrite(&cp);
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
		return (con = cmd_constraint(c)) != NULL && constraint_needs_rewrite(con);
	case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
		return true;
	case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
		return (cd = cmd_column(c)) != NULL && type_change_rewrites(cd);
	default:
		return false;
	}
}

static void created_key(dc_strbuf *sb, const PgQuery__RangeVar *rv)
{
	dc_strbuf_adds(sb, rv->schemaname ? rv->schemaname : "");
	dc_strbuf_addch(sb, '\x1f');
	dc_strbuf_adds(sb, rv->relname ? rv->relname : "");
}

/* The table was created earlier in the phase being rewritten: it is empty
 * and nobody else sees it yet, so nothing on it needs care. */
static bool created_here(const rw *r, const PgQuery__RangeVar *rv)
{
	dc_strbuf key = DC_STRBUF_INIT;
	const char *s;
	bool found = false;
	size_t i;

	if (!rv)
		return false;
	created_key(&key, rv);
	dc_vec_foreach(&r->created, i, s) {
		if (strcmp(s, key.buf) == 0)
			found = true;
	}
	dc_strbuf_release(&key);
	return found;
}

static bool stmt_needs_rewrite(const rw *r, const PgQuery__Node *n)
{
	const PgQuery__IndexStmt *ix;
	const PgQuery__AlterTableStmt *a;
	size_t i;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		return true;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		ix = n->index_stmt;
		if (!ix->relation || !ix->relation->inh || created_here(r, ix->relation))
			return false;
		return !ix->concurrent || !ix->idxname || !ix->idxname[0] || !ix->if_not_exists;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		a = n->alter_table_stmt;
		if (a->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE || !a->relation ||
		    created_here(r, a->relation))
			return false;
		for (i = 0; i < a->n_cmds; i++)
			if (a->cmds[i]->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD &&
			    cmd_needs_rewrite(a->cmds[i]->alter_table_cmd))
				return true;
		return false;
	default:
		return false;
	}
}

/* ------------------------------------------------------------------------ */
/* The patterns                                                             */

/* CHECK (col IS NOT NULL) NOT VALID; VALIDATE; SET NOT NULL; drop the CHECK. */
static int do_not_null(rw *r, const PgQuery__RangeVar *rel, const char *col, bool drop_on_down)
{
	dc_strbuf ck = DC_STRBUF_INIT, up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	dc_strbuf addck = DC_STRBUF_INIT;
	int rc;

	object_name(&ck, rel->relname, col, "not_null");
	add_alter(&addck, rel);
	dc_strbuf_adds(&addck, "ADD CONSTRAINT ");
	dc_analysis__quote_ident(&addck, ck.buf);
	dc_strbuf_adds(&addck, " CHECK (");
	dc_analysis__quote_ident(&addck, col);
	dc_strbuf_adds(&addck, " IS NOT NULL) NOT VALID");
	dc_strbuf_add(&up, addck.buf, addck.len);
	add_alter(&down, rel);
	dc_strbuf_adds(&down, "DROP CONSTRAINT IF EXISTS ");
	dc_analysis__quote_ident(&down, ck.buf);
	if ((rc = emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;

	/* undoing a validation: the same constraint again, NOT VALID */
	dc_strbuf_adds(&down, ";\n");
	dc_strbuf_add(&down, up.buf, up.len);
	dc_strbuf_reset(&up);
	add_alter(&up, rel);
	dc_strbuf_adds(&up, "VALIDATE CONSTRAINT ");
	dc_analysis__quote_ident(&up, ck.buf);
	if ((rc = emit(r, K_VALIDATE, "validate", &up, &down)) != 0)
		goto out;

	/* PG12+: SET NOT NULL skips its scan when a valid CHECK proves it */
	dc_strbuf_reset(&up);
	dc_strbuf_reset(&down);
	if (!drop_on_down) {
		/* for a primary key: its down leaves NOT NULL, as DROP CONSTRAINT
		 * does, since the column may have been NOT NULL before */
		lint_ignore(r, "down-not-inverse");
	}
	add_alter(&up, rel);
	dc_strbuf_adds(&up, "ALTER COLUMN ");
	dc_analysis__quote_ident(&up, col);
	dc_strbuf_adds(&up, " SET NOT NULL");
	if (drop_on_down) {
		/* the inverse of SET NOT NULL, back to what the table was */
		dc_strbuf_adds(&down, "-- deployclaw:ignore drop-not-null\n");
		add_alter(&down, rel);
		dc_strbuf_adds(&down, "ALTER COLUMN ");
		dc_analysis__quote_ident(&down, col);
		dc_strbuf_adds(&down, " DROP NOT NULL");
	}
	if ((rc = emit(r, K_DDL, "contract", &up, &down)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	add_alter(&up, rel);
	dc_strbuf_adds(&up, "DROP CONSTRAINT ");
	dc_analysis__quote_ident(&up, ck.buf);
	rc = emit(r, K_DDL, "contract", &up, &addck);
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
		rc = oom(r);
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
	PgQuery__Node *n = node_new(r);
	PgQuery__IndexStmt *copy = arena_alloc(r, sizeof(*copy));
	char *ph = placeholder(r);
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	int rc;

	if (!n || !copy || !ph) {
		rc = oom(r);
		goto out;
	}
	*copy = *ix;
	copy->idxname = ph;
	copy->concurrent = true;
	copy->if_not_exists = true;
	n->node_case = PG_QUERY__NODE__NODE_INDEX_STMT;
	n->index_stmt = copy;
	if ((rc = deparse(r, n, &up)) != 0 || (rc = replace_placeholder(r, &up, ph, name)) != 0)
		goto out;
	drop_index_sql(&down, ix->relation, name);
	if ((rc = emit(r, K_CONCURRENT, "index", &up, &down)) != 0)
		goto out;
	rc = verify_index_valid(r, ix->relation, name);
out:
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

static int do_index(rw *r, const PgQuery__IndexStmt *ix)
{
	dc_strbuf name = DC_STRBUF_INIT, add = DC_STRBUF_INIT;
	size_t i;
	int rc;

	if (ix->idxname && ix->idxname[0]) {
		dc_strbuf_adds(&name, ix->idxname);
	} else {
		/* ChooseIndexName(): <table>_<columns>_idx */
		for (i = 0; i < ix->n_index_params; i++)
			name_addition(&add, index_elem_name(ix->index_params[i]));
		for (i = 0; i < ix->n_index_including_params; i++)
			name_addition(&add, index_elem_name(ix->index_including_params[i]));
		object_name(&name, ix->relation->relname, add.len ? add.buf : NULL,
		            ix->primary ? "pkey" : "idx");
	}
	if (dc_strbuf_error(&name) || dc_strbuf_error(&add)) {
		rc = oom(r);
		goto out;
	}
	rc = emit_concurrent_index(r, ix, name.buf);
out:
	dc_strbuf_release(&name);
	dc_strbuf_release(&add);
	return rc;
}

/* The name PostgreSQL gives an unnamed table constraint (ChooseConstraintName). */
static void collect_columns(const ProtobufCMessage *msg, dc_ptrvec *cols);

static void constraint_name(dc_strbuf *out,
                            const PgQuery__RangeVar *rel,
                            const PgQuery__Constraint *con)
{
	dc_strbuf add = DC_STRBUF_INIT;
	dc_ptrvec cols = DC_PTRVEC_INIT;
	size_t i;

	if (con->conname && con->conname[0]) {
		dc_strbuf_adds(out, con->conname);
		return;
	}
	switch (con->contype) {
	case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
		object_name(out, rel->relname, NULL, "pkey");
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		for (i = 0; i < con->n_keys; i++)
			if (str_val(con->keys[i]))
				name_addition(&add, str_val(con->keys[i]));
		object_name(out, rel->relname, add.len ? add.buf : NULL, "key");
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		for (i = 0; i < con->n_fk_attrs; i++)
			if (str_val(con->fk_attrs[i]))
				name_addition(&add, str_val(con->fk_attrs[i]));
		object_name(out, rel->relname, add.len ? add.buf : NULL, "fkey");
		break;
	default:
		/* CHECK: <table>_<column>_check when it names one column, else <table>_check */
		if (con->raw_expr)
			collect_columns(&con->raw_expr->base, &cols);
		object_name(out, rel->relname, cols.len == 1 ? (const char *)cols.items[0] : NULL,
		            "check");
		break;
	}
	dc_strbuf_release(&add);
	dc_ptrvec_release(&cols, NULL);
}

/*
 * Walks any message of the tree by its protobuf-c descriptor and calls
 * `fn` on every ColumnRef; `fn` returns nonzero to stop.
 */
typedef int (*colref_fn)(void *ctx, PgQuery__ColumnRef *ref);

static int walk_colrefs(ProtobufCMessage *msg, colref_fn fn, void *ctx)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	unsigned i;
	int rc;

	if (d == &pg_query__column_ref__descriptor)
		return fn(ctx, (PgQuery__ColumnRef *)(void *)msg);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *base = (char *)msg;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n, k;
			ProtobufCMessage **arr;

			memcpy(&n, base + f->quantifier_offset, sizeof(n));
			memcpy(&arr, base + f->offset, sizeof(arr));
			for (k = 0; k < n; k++)
				if (arr[k] && (rc = walk_colrefs(arr[k], fn, ctx)) != 0)
					return rc;
		} else {
			ProtobufCMessage *sub;

			if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
				uint32_t which;

				memcpy(&which, base + f->quantifier_offset, sizeof(which));
				if (which != f->id)
					continue;
			}
			memcpy(&sub, base + f->offset, sizeof(sub));
			if (sub && (rc = walk_colrefs(sub, fn, ctx)) != 0)
				return rc;
		}
	}
	return 0;
}

static int collect_one(void *ctx, PgQuery__ColumnRef *ref)
{
	dc_ptrvec *cols = ctx;
	const char *name = ref->n_fields ? str_val(ref->fields[ref->n_fields - 1]) : NULL;
	size_t i;

	if (!name)
		return 0;
	for (i = 0; i < cols->len; i++)
		if (strcmp(cols->items[i], name) == 0)
			return 0;
	/* the (const char *) is only ever read */
	return dc_ptrvec_push(cols, (void *)(uintptr_t)name) != 0;
}

static void collect_columns(const ProtobufCMessage *msg, dc_ptrvec *cols)
{
	walk_colrefs((ProtobufCMessage *)(uintptr_t)msg, collect_one, cols);
}

/* ADD CONSTRAINT: FOREIGN KEY / CHECK NOT VALID then VALIDATE; UNIQUE /
 * PRIMARY KEY from a unique index built concurrently. */
static int do_constraint(rw *r, const PgQuery__AlterTableStmt *a, const PgQuery__Constraint *con)
{
	const PgQuery__RangeVar *rel = a->relation;
	dc_strbuf name = DC_STRBUF_INIT, up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	PgQuery__Constraint *copy = NULL;
	PgQuery__Node *cn, *stmt;
	char *ph = NULL;
	size_t i;
	int rc = 0;

	constraint_name(&name, rel, con);
	if (dc_strbuf_error(&name)) {
		rc = oom(r);
		goto out;
	}
	add_alter(&down, rel);
	dc_strbuf_adds(&down, "DROP CONSTRAINT IF EXISTS ");
	dc_analysis__quote_ident(&down, name.buf);

	if (con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN ||
	    con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_CHECK) {
		if (!(copy = arena_alloc(r, sizeof(*copy))) || !(ph = placeholder(r)) ||
		    !(cn = node_new(r))) {
			rc = oom(r);
			goto out;
		}
		*copy = *con;
		copy->conname = ph;
		copy->skip_validation = true;
		copy->initially_valid = false;
		cn->node_case = PG_QUERY__NODE__NODE_CONSTRAINT;
		cn->constraint = copy;
		if (!(stmt = alter_stmt(r, a,
		                        cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint,
		                                 NULL, cn))) ||
		    !stmt->alter_table_stmt->cmds[0]) {
			rc = oom(r);
			goto out;
		}
		if ((rc = deparse(r, stmt, &up)) != 0 ||
		    (rc = replace_placeholder(r, &up, ph, name.buf)) != 0 ||
		    (rc = emit(r, K_DDL, "expand", &up, &down)) != 0)
			goto out;
		/* undoing a validation: the same constraint again, NOT VALID */
		dc_strbuf_adds(&down, ";\n");
		dc_strbuf_add(&down, up.buf, up.len);
		dc_strbuf_reset(&up);
		add_alter(&up, rel);
		dc_strbuf_adds(&up, "VALIDATE CONSTRAINT ");
		dc_analysis__quote_ident(&up, name.buf);
		rc = emit(r, K_VALIDATE, "validate", &up, &down);
		goto out;
	}

	/* UNIQUE / PRIMARY KEY */
	if (con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY) {
		/* ADD PRIMARY KEY USING INDEX sets its columns NOT NULL, scanning
		 * under ACCESS EXCLUSIVE unless a valid CHECK proves it. The
		 * primary key's down leaves NOT NULL, as DROP CONSTRAINT would. */
		for (i = 0; i < con->n_keys; i++)
			if (str_val(con->keys[i]) &&
			    (rc = do_not_null(r, rel, str_val(con->keys[i]), false)) != 0)
				goto out;
	}
	{
		PgQuery__Node *n = node_new(r);
		PgQuery__IndexStmt *ix = arena_alloc(r, sizeof(*ix));
		PgQuery__Node **params = arena_nodes(r, con->n_keys);
		PgQuery__Node **incl = arena_nodes(r, con->n_including);
		char *am = arena_strdup(r, con->access_method && con->access_method[0]
		                                   ? con->access_method
		                                   : "btree");
		bool ok = n && ix && params && incl && am;

		for (i = 0; ok && i < con->n_keys; i++)
			ok = str_val(con->keys[i]) &&
			     (params[i] = index_elem(r, str_val(con->keys[i])));
		for (i = 0; ok && i < con->n_including; i++)
			ok = str_val(con->including[i]) &&
			     (incl[i] = index_elem(r, str_val(con->including[i])));
		if (!ok) {
			rc = r->err && r->err->code ? r->err->code : oom(r);
			goto out;
		}
		pg_query__index_stmt__init(ix);
		ix->relation = rel->inh ? (PgQuery__RangeVar *)(uintptr_t)rel : NULL;
		if (!rel->inh) {
			/* CONCURRENTLY takes the table with its children */
			PgQuery__RangeVar *rv = arena_alloc(r, sizeof(*rv));

			if (!rv) {
				rc = oom(r);
				goto out;
			}
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
		n->node_case = PG_QUERY__NODE__NODE_INDEX_STMT;
		n->index_stmt = ix;
		if ((rc = emit_concurrent_index(r, ix, name.buf)) != 0)
			goto out;
	}
	dc_strbuf_reset(&up);
	add_alter(&up, rel);
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
	rc = emit(r, K_DDL, "contract", &up, &down);
out:
	dc_strbuf_release(&name);
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

/* ADD COLUMN: the bare column (keeping a stable default), then what it carried. */
static int do_add_column(rw *r, const PgQuery__AlterTableStmt *a, const PgQuery__AlterTableCmd *cmd)
{
	const PgQuery__ColumnDef *cd = cmd_column(cmd);
	const PgQuery__RangeVar *rel = a->relation;
	PgQuery__ColumnDef *base = arena_alloc(r, sizeof(*base));
	PgQuery__Node *def = node_new(r);
	PgQuery__Node **keep = arena_nodes(r, cd->n_constraints);
	PgQuery__Node *cmdn, *stmt;
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT;
	PgQuery__Constraint *last = NULL;
	colplan cp;
	size_t i, nkeep = 0;
	int rc = 0;

	if (!base || !def || !keep) {
		rc = oom(r);
		goto out;
	}
	plan_column(cd, &cp);
	*base = *cd;
	base->is_not_null = cd->is_not_null && cp.stable_default;
	for (i = 0; i < cd->n_constraints; i++) {
		PgQuery__Node *n = cd->constraints[i];
		PgQuery__ConstrType t;

		if (n->node_case != PG_QUERY__NODE__NODE_CONSTRAINT)
			continue;
		t = n->constraint->contype;
		if (t == PG_QUERY__CONSTR_TYPE__CONSTR_NULL ||
		    (t == PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT && cp.stable_default) ||
		    (t == PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL && cp.stable_default))
			keep[nkeep++] = n;
	}
	base->n_constraints = nkeep;
	base->constraints = keep;
	def->node_case = PG_QUERY__NODE__NODE_COLUMN_DEF;
	def->column_def = base;
	if (!(cmdn = cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn, NULL, def)) ||
	    !(stmt = alter_stmt(r, a, cmdn))) {
		rc = oom(r);
		goto out;
	}
	cmdn->alter_table_cmd->missing_ok = cmd->missing_ok;
	if ((rc = deparse(r, stmt, &up)) != 0)
		goto out;
	add_alter(&down, rel);
	dc_strbuf_adds(&down, "DROP COLUMN IF EXISTS ");
	dc_analysis__quote_ident(&down, cd->colname);
	if ((rc = emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;

	if (cp.def && !cp.stable_default) {
		/* new rows get the default at once; existing rows in batches */
		dc_strbuf_reset(&up);
		if (!(cmdn = cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault, cd->colname,
		                      cp.def->raw_expr)) ||
		    !(stmt = alter_stmt(r, a, cmdn))) {
			rc = oom(r);
			goto out;
		}
		if ((rc = deparse(r, stmt, &up)) != 0 ||
		    (rc = emit(r, K_DDL, "expand", &up, NULL)) != 0)
			goto out;
		dc_strbuf_reset(&up);
		dc_strbuf_adds(&up, "UPDATE ");
		dc_analysis__qualified(&up, rel);
		dc_strbuf_adds(&up, " SET ");
		dc_analysis__quote_ident(&up, cd->colname);
		dc_strbuf_adds(&up, " = DEFAULT WHERE ctid = ANY (ARRAY(SELECT ctid FROM ");
		dc_analysis__qualified(&up, rel);
		dc_strbuf_adds(&up, " WHERE ");
		dc_analysis__quote_ident(&up, cd->colname);
		dc_strbuf_addf(&up, " IS NULL LIMIT %d)) AND ", DC_REWRITE_BATCH_ROWS);
		dc_analysis__quote_ident(&up, cd->colname);
		dc_strbuf_adds(&up, " IS NULL");
		note(r, "backfill: fills '%s' in rounds of %d rows, each its own transaction",
		     cd->colname, DC_REWRITE_BATCH_ROWS);
		if ((rc = emit(r, K_BATCH, "backfill", &up, NULL)) != 0)
			goto out;
	}
	if (cp.not_null && !cp.stable_default) {
		if (!cp.def)
			note(r,
			     "'%s' has no default: the original fails on a table with rows; fill the "
			     "column before 'validate' or validation fails the same way",
			     cd->colname);
		if ((rc = do_not_null(r, rel, cd->colname, true)) != 0)
			goto out;
	}

	/* column constraints become table constraints on this column */
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
		if (!(tc = arena_alloc(r, sizeof(*tc))) ||
		    !(cols = arena_alloc(r, sizeof(*cols))) ||
		    !(cols[0] = string_node(r, cd->colname))) {
			rc = oom(r);
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
		if ((rc = do_constraint(r, a, tc)) != 0)
			goto out;
	}
out:
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	return rc;
}

/* A ColumnRef changed by qualify_new, to put back before the parse tree
 * it belongs to is freed. */
typedef struct saved_ref {
	PgQuery__ColumnRef *ref;
	size_t n_fields;
	PgQuery__Node **fields;
} saved_ref;

typedef struct qualify_ctx {
	rw *r;
	dc_ptrvec saved; /* saved_ref *, in the arena */
} qualify_ctx;

/* Qualifies column references with NEW (for the trigger body): `col` and
 * `tbl.col` both become `new.col`. */
static int qualify_new(void *ctx, PgQuery__ColumnRef *ref)
{
	qualify_ctx *q = ctx;
	saved_ref *sv;
	PgQuery__Node **fields;

	if (ref->n_fields < 1 || ref->n_fields > 2 || !str_val(ref->fields[ref->n_fields - 1]))
		return 0;
	if (!(sv = arena_alloc(q->r, sizeof(*sv))) || dc_ptrvec_push(&q->saved, sv) != 0 ||
	    !(fields = arena_nodes(q->r, 2)) || !(fields[0] = string_node(q->r, "new")))
		return oom(q->r);
	sv->ref = ref;
	sv->n_fields = ref->n_fields;
	sv->fields = ref->fields;
	fields[1] = ref->fields[ref->n_fields - 1];
	ref->fields = fields;
	ref->n_fields = 2;
	return 0;
}

static void qualify_undo(qualify_ctx *q)
{
	size_t i;

	for (i = q->saved.len; i > 0; i--) {
		saved_ref *sv = q->saved.items[i - 1];

		sv->ref->n_fields = sv->n_fields;
		sv->ref->fields = sv->fields;
	}
	dc_ptrvec_release(&q->saved, NULL);
}

/* ALTER COLUMN TYPE that rewrites: new column kept in step by a trigger,
 * batched copy, then the swap. */
static int do_alter_type(rw *r, const PgQuery__AlterTableStmt *a, const PgQuery__AlterTableCmd *cmd)
{
	const PgQuery__ColumnDef *cd = cmd_column(cmd);
	const PgQuery__RangeVar *rel = a->relation;
	const char *col = cmd->name;
	dc_strbuf newcol = DC_STRBUF_INIT, fn = DC_STRBUF_INIT, fnq = DC_STRBUF_INIT;
	dc_strbuf expr = DC_STRBUF_INIT, newexpr = DC_STRBUF_INIT;
	dc_strbuf up = DC_STRBUF_INIT, down = DC_STRBUF_INIT, tag = DC_STRBUF_INIT;
	PgQuery__ColumnDef *ncd = arena_alloc(r, sizeof(*ncd));
	PgQuery__Node *def = node_new(r), *conv, *cmdn, *stmt;
	unsigned k = 0;
	int rc = 0;

	if (!ncd || !def || !col) {
		rc = col ? oom(r)
		         : dc_error_set(r->err, DC_EINVAL, "ALTER COLUMN TYPE without a column");
		goto out;
	}
	object_name(&newcol, col, NULL, "dc_new");
	object_name(&fn, rel->relname, col, "dc_sync");
	dc_analysis__qualified_name(&fnq, rel->schemaname, fn.buf);
	if (dc_strbuf_error(&newcol) || dc_strbuf_error(&fn) || dc_strbuf_error(&fnq)) {
		rc = oom(r);
		goto out;
	}

	/* the conversion: the USING expression, else a cast of the column */
	if (cd->raw_default) {
		conv = cd->raw_default;
	} else {
		PgQuery__TypeCast *tc = arena_alloc(r, sizeof(*tc));

		if (!(conv = node_new(r)) || !tc) {
			rc = oom(r);
			goto out;
		}
		pg_query__type_cast__init(tc);
		if (!(tc->arg = column_ref(r, col))) {
			rc = oom(r);
			goto out;
		}
		tc->type_name = cd->type_name;
		tc->location = -1;
		conv->node_case = PG_QUERY__NODE__NODE_TYPE_CAST;
		conv->type_cast = tc;
	}
	if ((rc = deparse_expr(r, conv, &expr)) != 0)
		goto out;
	{
		qualify_ctx q = { r, DC_PTRVEC_INIT };

		rc = walk_colrefs(&conv->base, qualify_new, &q);
		if (rc == 0)
			rc = deparse_expr(r, conv, &newexpr);
		qualify_undo(&q);
		if (rc)
			goto out;
	}

	/* expand: the new column and the trigger keeping it in step */
	pg_query__column_def__init(ncd);
	ncd->colname = arena_strdup(r, newcol.buf);
	ncd->type_name = cd->type_name;
	ncd->coll_clause = cd->coll_clause;
	ncd->is_local = true;
	ncd->location = -1;
	def->node_case = PG_QUERY__NODE__NODE_COLUMN_DEF;
	def->column_def = ncd;
	if (!ncd->colname ||
	    !(cmdn = cmd_node(r, PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn, NULL, def)) ||
	    !(stmt = alter_stmt(r, a, cmdn))) {
		rc = oom(r);
		goto out;
	}
	note(r,
	     "'%s' changes type through a new column '%s': a trigger keeps it in step, "
	     "'backfill' copies the rows, 'contract' swaps the columns",
	     col, newcol.buf);
	r->fresh = true;
	if ((rc = deparse(r, stmt, &up)) != 0)
		goto out;
	add_alter(&down, rel);
	dc_strbuf_adds(&down, "DROP COLUMN IF EXISTS ");
	dc_analysis__quote_ident(&down, newcol.buf);
	if ((rc = emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;

	do {
		dc_strbuf_reset(&tag);
		dc_strbuf_addf(&tag, k ? "$dc%u$" : "$dc$", k);
		k++;
	} while (!dc_strbuf_error(&tag) && strstr(newexpr.buf, tag.buf));
	dc_strbuf_reset(&up);
	dc_strbuf_reset(&down);
	dc_strbuf_adds(&up, "CREATE FUNCTION ");
	dc_strbuf_adds(&up, fnq.buf);
	dc_strbuf_addf(&up, "() RETURNS trigger LANGUAGE plpgsql AS %s\nBEGIN\n  NEW.", tag.buf);
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " := %s;\n  RETURN NEW;\nEND\n%s", newexpr.buf, tag.buf);
	dc_strbuf_addf(&down, "DROP FUNCTION IF EXISTS %s()", fnq.buf);
	if ((rc = emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_strbuf_reset(&down);
	dc_strbuf_adds(&up, "CREATE TRIGGER ");
	dc_analysis__quote_ident(&up, fn.buf);
	dc_strbuf_adds(&up, " BEFORE INSERT OR UPDATE ON ");
	dc_analysis__qualified(&up, rel);
	dc_strbuf_addf(&up, " FOR EACH ROW EXECUTE FUNCTION %s()", fnq.buf);
	dc_strbuf_adds(&down, "DROP TRIGGER IF EXISTS ");
	dc_analysis__quote_ident(&down, fn.buf);
	dc_strbuf_adds(&down, " ON ");
	dc_analysis__qualified(&down, rel);
	if ((rc = emit(r, K_DDL, "expand", &up, &down)) != 0)
		goto out;

	/* backfill: rows the trigger has not seen yet */
	dc_strbuf_reset(&up);
	dc_strbuf_adds(&up, "UPDATE ");
	dc_analysis__qualified(&up, rel);
	dc_strbuf_adds(&up, " SET ");
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " = %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM ", expr.buf);
	dc_analysis__qualified(&up, rel);
	dc_strbuf_adds(&up, " WHERE ");
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " IS NULL AND (%s) IS NOT NULL LIMIT %d)) AND ", expr.buf,
	               DC_REWRITE_BATCH_ROWS);
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_addf(&up, " IS NULL AND (%s) IS NOT NULL", expr.buf);
	if ((rc = emit(r, K_BATCH, "backfill", &up, NULL)) != 0)
		goto out;

	/* contract: the swap */
	note(r,
	     "APPLICATION DEPLOY NEEDED before this phase: running code must work with '%s' "
	     "of the new type (and not depend on the old column's indexes, constraints, "
	     "default or NOT NULL, which are not carried over: recreate them on '%s' in "
	     "'expand'). To deploy in between, move this phase and those after it into a "
	     "later migration",
	     col, newcol.buf);
	r->fresh = true;
	dc_strbuf_reset(&up);
	dc_strbuf_adds(&up, "DROP TRIGGER ");
	dc_analysis__quote_ident(&up, fn.buf);
	dc_strbuf_adds(&up, " ON ");
	dc_analysis__qualified(&up, rel);
	if ((rc = emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	dc_strbuf_reset(&up);
	dc_strbuf_addf(&up, "DROP FUNCTION %s()", fnq.buf);
	if ((rc = emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	/* dropping and renaming is the point of the swap, done after the deploy */
	lint_ignore(r, "drop-column");
	dc_strbuf_reset(&up);
	add_alter(&up, rel);
	dc_strbuf_adds(&up, "DROP COLUMN ");
	dc_analysis__quote_ident(&up, col);
	if ((rc = emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	lint_ignore(r, "rename-column");
	dc_strbuf_reset(&up);
	add_alter(&up, rel);
	dc_strbuf_adds(&up, "RENAME COLUMN ");
	dc_analysis__quote_ident(&up, newcol.buf);
	dc_strbuf_adds(&up, " TO ");
	dc_analysis__quote_ident(&up, col);
	if ((rc = emit(r, K_DDL, "contract", &up, NULL)) != 0)
		goto out;
	/* The old type is not in the statement: the swap is undone by the
	 * original phase's own down when that phase held only this change. */
	if (r->src && r->src->up.nstmts == 1 && r->src->down.text) {
		out_phase *p = r->phases.items[r->phases.len - 1];
		char *d = dc_strdup(r->src->down.text);

		if (!d || dc_ptrvec_push(&p->downs, d) != 0) {
			free(d);
			rc = oom(r);
			goto out;
		}
	} else {
		out_phase *p = r->phases.items[r->phases.len - 1];

		dc_strbuf_adds(&p->comment, "# no down: the old type of '");
		dc_strbuf_adds(&p->comment, col);
		dc_strbuf_adds(&p->comment, "' is not known here; write one by hand\n");
	}
	r->fresh = true; /* what follows does not wait for the deploy */
out:
	dc_strbuf_release(&newcol);
	dc_strbuf_release(&fn);
	dc_strbuf_release(&fnq);
	dc_strbuf_release(&expr);
	dc_strbuf_release(&newexpr);
	dc_strbuf_release(&up);
	dc_strbuf_release(&down);
	dc_strbuf_release(&tag);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Pass-through                                                             */

/* The mechanical inverse of a statement kept as it is, or "" when none. */
static void inverse_of(rw *r, const PgQuery__Node *n, dc_strbuf *out)
{
	const PgQuery__AlterTableStmt *a;
	const PgQuery__AlterTableCmd *c;
	const PgQuery__Constraint *con;
	const PgQuery__ColumnDef *cd;
	const PgQuery__IndexStmt *ix;

	(void)r;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		if (!n->create_stmt->relation)
			return;
		dc_strbuf_adds(out, "DROP TABLE IF EXISTS ");
		dc_analysis__qualified(out, n->create_stmt->relation);
		return;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		ix = n->index_stmt;
		if (!ix->idxname || !ix->idxname[0])
			return;
		dc_strbuf_adds(out, ix->concurrent ? "DROP INDEX CONCURRENTLY IF EXISTS "
		                                   : "DROP INDEX IF EXISTS ");
		dc_analysis__qualified_name(out, ix->relation->schemaname, ix->idxname);
		return;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		a = n->alter_table_stmt;
		if (a->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE || a->n_cmds != 1 ||
		    a->cmds[0]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			return;
		c = a->cmds[0]->alter_table_cmd;
		if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn &&
		    (cd = cmd_column(c))) {
			add_alter(out, a->relation);
			dc_strbuf_adds(out, "DROP COLUMN IF EXISTS ");
			dc_analysis__quote_ident(out, cd->colname);
		} else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint &&
		           (con = cmd_constraint(c)) && con->conname && con->conname[0]) {
			add_alter(out, a->relation);
			dc_strbuf_adds(out, "DROP CONSTRAINT IF EXISTS ");
			dc_analysis__quote_ident(out, con->conname);
		}
		return;
	default:
		return;
	}
}

static int passthrough(rw *r, const PgQuery__Node *n, const char *sql)
{
	dc_pg_stmt_info info;
	dc_strbuf down = DC_STRBUF_INIT;
	const char *hint = r->src && r->src->name ? r->src->name : "main";
	int rc;

	if ((rc = dc_pg_classify(sql, &info, r->err)) != 0)
		return rc;
	inverse_of(r, n, &down);
	if (dc_strbuf_error(&down)) {
		rc = oom(r);
		goto out;
	}
	if (!down.len)
		note(r, "no mechanical inverse of '%.60s': give this phase a down by hand", sql);
	if (info.autocommit_only)
		rc = emit_sql(r, K_NONTX, hint, sql, down.len ? down.buf : NULL, false);
	else
		rc = emit_sql(r, K_DDL, hint, sql, down.len ? down.buf : NULL, false);
out:
	dc_strbuf_release(&down);
	return rc;
}

/* An ALTER TABLE of which some commands need a rewrite: those are
 * rewritten, runs of the others are kept together as one ALTER TABLE. */
static int do_alter(rw *r,
                    const PgQuery__AlterTableStmt *a,
                    const char *sql,
                    const PgQuery__Node *n)
{
	PgQuery__Node **keep = NULL;
	size_t i, nkeep = 0;
	int rc = 0;

	if (a->n_cmds == 1 && !cmd_needs_rewrite(a->cmds[0]->alter_table_cmd))
		return passthrough(r, n, sql);
	if (!(keep = arena_nodes(r, a->n_cmds)))
		return oom(r);
	for (i = 0; i <= a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c =
		        i < a->n_cmds ? a->cmds[i]->alter_table_cmd : NULL;

		if (c && !cmd_needs_rewrite(c)) {
			keep[nkeep++] = a->cmds[i];
			continue;
		}
		if (nkeep) {
			PgQuery__Node *stmt = alter_stmt(r, a, keep[0]);
			dc_strbuf up = DC_STRBUF_INIT;

			if (!stmt) {
				rc = oom(r);
				goto out;
			}
			stmt->alter_table_stmt->n_cmds = nkeep;
			stmt->alter_table_stmt->cmds = keep;
			stmt->alter_table_stmt->missing_ok = a->missing_ok;
			rc = deparse(r, stmt, &up);
			if (rc == 0)
				rc = emit(r, K_DDL, "expand", &up, NULL);
			dc_strbuf_release(&up);
			if (rc)
				goto out;
			if (!(keep = arena_nodes(r, a->n_cmds))) {
				rc = oom(r);
				goto out;
			}
			nkeep = 0;
		}
		if (!c)
			break;
		switch (c->subtype) {
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
			rc = do_add_column(r, a, c);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
			rc = do_constraint(r, a, cmd_constraint(c));
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
			rc = do_not_null(r, a->relation, c->name, true);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
			rc = do_alter_type(r, a, c);
			break;
		default:
			break;
		}
		if (rc)
			goto out;
	}
out:
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Statements and phases                                                    */

static int parse_stmt(rw *r, const dc_statement *st, PgQuery__ParseResult **tree)
{
	PgQueryProtobufParseResult res = pg_query_parse_protobuf(st->sql);
	int rc = 0;

	*tree = NULL;
	if (res.error) {
		rc = dc_error_set_at(r->err, DC_EPARSE, st->file ? st->file : "", st->line, st->col,
		                     "%s", res.error->message);
		goto out;
	}
	*tree = pg_query__parse_result__unpack(NULL, res.parse_tree.len,
	                                       (const uint8_t *)res.parse_tree.data);
	if (!*tree)
		rc = oom(r);
	else
		r->pgversion = (*tree)->version;
out:
	pg_query_free_protobuf_parse_result(res);
	return rc;
}

static int remember_created(rw *r, const PgQuery__Node *n)
{
	dc_strbuf key = DC_STRBUF_INIT;
	char *s;

	if (n->node_case != PG_QUERY__NODE__NODE_CREATE_STMT || !n->create_stmt->relation)
		return 0;
	created_key(&key, n->create_stmt->relation);
	if (!(s = dc_strbuf_detach(&key, NULL)) || dc_ptrvec_push(&r->created, s) != 0) {
		free(s);
		return oom(r);
	}
	return 0;
}

static int rewrite_stmt(rw *r, const dc_statement *st, const PgQuery__Node *n)
{
	r->st = st;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		note(r, "dropped '%.40s': deployclaw runs each phase in its own transaction",
		     st->sql);
		return 0;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		if (!n->index_stmt->relation || !n->index_stmt->relation->inh) {
			note(r,
			     "CREATE INDEX ON ONLY: a partitioned parent cannot be indexed "
			     "concurrently; build each partition's index concurrently and ATTACH it");
			return passthrough(r, n, st->sql);
		}
		if (!stmt_needs_rewrite(r, n))
			return passthrough(r, n, st->sql);
		return do_index(r, n->index_stmt);
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		if (!stmt_needs_rewrite(r, n))
			return passthrough(r, n, st->sql);
		return do_alter(r, n->alter_table_stmt, st->sql, n);
	default:
		return passthrough(r, n, st->sql);
	}
}

/* Notes what has no online rewrite in a statement kept as it is. */
static void note_unsupported(rw *r, const PgQuery__Node *n)
{
	const PgQuery__AlterTableStmt *a;
	size_t i;

	if (n->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_STMT)
		return;
	a = n->alter_table_stmt;
	for (i = 0; i < a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c = a->cmds[i]->alter_table_cmd;
		const PgQuery__ColumnDef *cd;
		const PgQuery__Constraint *con;
		colplan cp;

		if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn &&
		    (cd = cmd_column(c))) {
			plan_column(cd, &cp);
			if (cp.unsupported)
				note(r,
				     "deployclaw: no online rewrite for adding the identity, generated "
				     "or serial column '%s' (it rewrites the table): kept as it is",
				     cd->colname);
		} else if (c->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint &&
		           (con = cmd_constraint(c)) &&
		           con->contype == PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION) {
			note(r,
			     "deployclaw: no online rewrite for an EXCLUDE constraint (it cannot be "
			     "NOT VALID nor use an existing index): kept as it is");
		}
	}
}

static int copy_verbatim(rw *r, const dc_phase *ph)
{
	out_phase *p = phase_new(r, K_VERBATIM, ph->name ? ph->name : "main");

	if (!p)
		return r->err && r->err->code ? r->err->code : DC_ENOMEM;
	p->transactional = ph->transactional;
	p->batch_rows = ph->batch_rows;
	p->up_text = ph->up.text ? ph->up.text : "";
	if (ph->down.text && !(p->down_text = dc_strdup(ph->down.text)))
		return oom(r);
	return 0;
}

static int rewrite_phase(rw *r, const dc_phase *ph)
{
	PgQuery__ParseResult **trees = NULL;
	bool rewrite = false;
	size_t i;
	int rc = 0;

	r->src = ph;
	dc_ptrvec_release(&r->created, free);
	if (ph->up.nstmts && !(trees = calloc(ph->up.nstmts, sizeof(*trees))))
		return oom(r);
	for (i = 0; i < ph->up.nstmts; i++) {
		const PgQuery__Node *n;
		dc_pg_stmt_info info;

		if ((rc = parse_stmt(r, &ph->up.stmts[i], &trees[i])) != 0)
			goto out;
		if (!trees[i]->n_stmts)
			continue;
		n = trees[i]->stmts[0]->stmt;
		if ((rc = remember_created(r, n)) != 0)
			goto out;
		if (stmt_needs_rewrite(r, n))
			rewrite = true;
		if (ph->transactional) {
			/* an autocommit-only statement in a transactional phase */
			if ((rc = dc_pg_classify(ph->up.stmts[i].sql, &info, r->err)) != 0)
				goto out;
			if (info.autocommit_only)
				rewrite = true;
		}
	}
	if (!rewrite || ph->batch_rows > 0) {
		for (i = 0; i < ph->up.nstmts; i++)
			if (trees[i]->n_stmts)
				note_unsupported(r, trees[i]->stmts[0]->stmt);
		rc = copy_verbatim(r, ph);
		goto out;
	}
	dc_ptrvec_release(&r->created, free);
	r->fresh = true;
	for (i = 0; i < ph->up.nstmts; i++) {
		const PgQuery__Node *n;

		if (!trees[i]->n_stmts)
			continue;
		n = trees[i]->stmts[0]->stmt;
		note_unsupported(r, n);
		if ((rc = rewrite_stmt(r, &ph->up.stmts[i], n)) != 0)
			goto out;
		if ((rc = remember_created(r, n)) != 0)
			goto out;
	}
out:
	if (rc && r->err && r->st && !r->err->file[0] && rc != DC_EPARSE) {
		/* point at the statement being rewritten */
		const char *f = r->st->file ? r->st->file : "";
		size_t k;

		for (k = 0; f[k] && k + 1 < sizeof(r->err->file); k++)
			r->err->file[k] = f[k];
		r->err->file[k] = '\0';
		r->err->line = r->st->line;
		r->err->col = r->st->col;
	}
	for (i = 0; trees && i < ph->up.nstmts; i++)
		if (trees[i])
			pg_query__parse_result__free_unpacked(trees[i], NULL);
	free(trees);
	r->st = NULL;
	return rc;
}

/* ------------------------------------------------------------------------ */
/* YAML                                                                     */

static void yaml_quoted(dc_strbuf *sb, const char *s)
{
	dc_strbuf_addch(sb, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			dc_strbuf_addf(sb, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			dc_strbuf_addf(sb, "\\x%02x", ch);
		else
			dc_strbuf_addch(sb, ch);
	}
	dc_strbuf_addch(sb, '"');
}

/* `key: |` and `text` as a literal block indented by `indent` spaces. Leading
 * blank space is dropped so the first line sets the indentation. */
static void yaml_block(dc_strbuf *sb, const char *prefix, const char *text, int indent)
{
	const char *p = text;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	dc_strbuf_adds(sb, prefix);
	dc_strbuf_adds(sb, "|\n");
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len)
			dc_strbuf_addf(sb, "%*s", indent, "");
		dc_strbuf_add(sb, p, len);
		dc_strbuf_addch(sb, '\n');
		p += len;
		if (*p == '\n')
			p++;
	}
}

static void write_phase(dc_strbuf *sb, const out_phase *p)
{
	dc_strbuf down = DC_STRBUF_INIT;
	size_t i;

	if (p->comment.len) {
		const char *s = p->comment.buf;

		while (*s) {
			const char *e = strchr(s, '\n');
			size_t len = e ? (size_t)(e - s) : strlen(s);

			dc_strbuf_adds(sb, "  ");
			dc_strbuf_add(sb, s, len);
			dc_strbuf_addch(sb, '\n');
			s += len + (e ? 1 : 0);
		}
	}
	dc_strbuf_adds(sb, "  - name: ");
	yaml_quoted(sb, p->name);
	dc_strbuf_addch(sb, '\n');
	if (!p->transactional)
		dc_strbuf_adds(sb, "    transaction: false\n");
	if (p->batch_rows > 0)
		dc_strbuf_addf(sb, "    batch: { rows: %lld }\n", (long long)p->batch_rows);
	yaml_block(sb, "    up: ", p->kind == K_VERBATIM ? p->up_text : p->up.buf, 6);
	if (p->kind == K_VERBATIM) {
		if (p->down_text)
			yaml_block(sb, "    down: ", p->down_text, 6);
		return;
	}
	for (i = p->downs.len; i > 0; i--) {
		dc_strbuf_adds(&down, p->downs.items[i - 1]);
		dc_strbuf_adds(&down, ";\n");
	}
	if (down.len)
		yaml_block(sb, "    down: ", down.buf, 6);
	if (dc_strbuf_error(&down))
		sb->failed = DC_ENOMEM;
	dc_strbuf_release(&down);
}

static int write_yaml(rw *r, const char *source, dc_strbuf *out)
{
	const dc_migration *m = r->m;
	const out_phase *p;
	const char *v;
	size_t i;

	dc_strbuf_addf(out,
	               "# deployclaw plan --safe: '%s' in phases that do not block reads or "
	               "writes\n",
	               source);
	dc_strbuf_adds(out, "# (generated; review it, then use it in place of the original)\n");
	dc_strbuf_add(out, r->notes.buf, r->notes.len);
	dc_strbuf_adds(out, "version: ");
	yaml_quoted(out, m->version ? m->version : "");
	dc_strbuf_addch(out, '\n');
	if (m->name) {
		dc_strbuf_adds(out, "name: ");
		yaml_quoted(out, m->name);
		dc_strbuf_addch(out, '\n');
	}
	if (m->audit) {
		dc_strbuf_adds(out, "audit: ");
		yaml_quoted(out, m->audit);
		dc_strbuf_addch(out, '\n');
	}
	dc_strbuf_adds(out, "phases:\n");
	dc_vec_foreach(&r->phases, i, p) {
		write_phase(out, p);
	}
	if (m->nverify || r->verify.len) {
		dc_strbuf_adds(out, "verify:\n");
		for (i = 0; i < m->nverify; i++)
			if (m->verify[i].text)
				yaml_block(out, "  - ", m->verify[i].text, 4);
		dc_vec_foreach(&r->verify, i, v) {
			yaml_block(out, "  - ", v, 4);
		}
	}
	return dc_strbuf_error(out) ? oom(r) : 0;
}

int dc_rewrite_safe(const dc_migration *m,
                    const char *source_path,
                    dc_strbuf *yaml_out,
                    dc_error *err)
{
	rw r;
	size_t i;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	r.m = m;
	r.err = err;
	dc_strbuf_init(&r.pending, 0);
	dc_strbuf_init(&r.notes, 0);
	r.pgversion = PG_VERSION_NUM;
	if (!m || !yaml_out)
		return dc_error_set(err, DC_EINVAL, "no migration to rewrite");
	if (!m->nphases) {
		rc = dc_error_set(err, DC_EINVAL, "migration '%s' has no phases",
		                  m->version ? m->version : "");
		goto out;
	}
	for (i = 0; i < m->nphases; i++)
		if ((rc = rewrite_phase(&r, &m->phases[i])) != 0)
			goto out;
	if (r.pending.len) {
		/* notes after the last statement */
		dc_strbuf_add(&r.notes, r.pending.buf, r.pending.len);
		dc_strbuf_reset(&r.pending);
	}
	rc = write_yaml(&r, source_path ? source_path : (m->path ? m->path : ""), yaml_out);
out:
	dc_ptrvec_release(&r.phases, phase_free);
	dc_ptrvec_release(&r.verify, free);
	dc_ptrvec_release(&r.arena, free);
	dc_ptrvec_release(&r.created, free);
	dc_strbuf_release(&r.pending);
	dc_strbuf_release(&r.notes);
	return rc;
}
