/*
 * body.c -- the statements inside a routine body: a DO block, or a function
 * or procedure a migration creates. PL/pgSQL is compiled by libpg_query
 * (pg_query_parse_plpgsql, the server's own PL/pgSQL grammar) into a tree
 * whose expressions keep their SQL text; each is parsed again as SQL and
 * handed to the caller with where it sits in the migration's text. SQL
 * functions' bodies are parsed as SQL. What cannot be known before it runs
 * -- EXECUTE of a string, a body in another language -- is reported as such,
 * so the isolation checks treat a DO block like any other statement and
 * refuse only what they cannot see.
 */
#include "body.h"

#include <pg_query/pg_query.pb-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <pg_query.h>

#include "analysis_internal.h"

typedef struct body {
	const char *text; /* the migration's text the statement's locations index into */
	const char *src;  /* the body as written in it, or NULL when not found verbatim */
	int src_off;      /* its offset in `text` */
	const char *what; /* "a DO block", "function 'f'" */
	dc_body_fn fn;
	void *ctx;
	/* the statement being handed over was found by its first word only (the
	 * compiled text differs from what is written, e.g. SELECT ... INTO) */
	bool inexact;
	int rc;
} body;

int dc_analysis__deparse(const void *stmt, dc_strbuf *out, dc_error *err)
{
	PgQuery__ParseResult pr = PG_QUERY__PARSE_RESULT__INIT;
	PgQuery__RawStmt raw = PG_QUERY__RAW_STMT__INIT;
	PgQuery__RawStmt *rawp = &raw;
	PgQueryProtobuf pb = { 0, NULL };
	PgQueryDeparseResult d = { NULL, NULL };
	uint8_t *buf = NULL;
	int rc = 0;

	raw.stmt = (PgQuery__Node *)(uintptr_t)stmt; /* packing only reads */
	pr.version = PG_VERSION_NUM;
	pr.n_stmts = 1;
	pr.stmts = &rawp;
	pb.len = pg_query__parse_result__get_packed_size(&pr);
	if (!(buf = malloc(pb.len ? pb.len : 1))) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	pg_query__parse_result__pack(&pr, buf);
	pb.data = (char *)buf;
	d = pg_query_deparse_protobuf(pb);
	if (d.error) {
		rc = dc_error_set(err, DC_EINVAL, "%s", d.error->message);
		goto out;
	}
	if (dc_strbuf_adds(out, d.query))
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
out:
	pg_query_free_deparse_result(d);
	free(buf);
	return rc;
}

static const char *defelem_str(PgQuery__Node **opts, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const PgQuery__DefElem *d = opts[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM
		                                    ? opts[i]->def_elem
		                                    : NULL;

		if (!d || !d->defname || strcmp(d->defname, name) || !d->arg)
			continue;
		if (d->arg->node_case == PG_QUERY__NODE__NODE_STRING)
			return d->arg->string->sval;
		/* a function's AS: the body, or a C function's object file and symbol */
		if (d->arg->node_case == PG_QUERY__NODE__NODE_LIST && d->arg->list->n_items == 1 &&
		    d->arg->list->items[0]->node_case == PG_QUERY__NODE__NODE_STRING)
			return d->arg->list->items[0]->string->sval;
		return "";
	}
	return NULL;
}

static int defelem_loc(PgQuery__Node **opts, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (opts[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
		    opts[i]->def_elem->defname && !strcmp(opts[i]->def_elem->defname, name))
			return opts[i]->def_elem->location;
	return -1;
}

/*
 * Where the body string `sval` starts in the text: the AS (or the DO's
 * string) is at `loc`; a dollar-quoted body is there verbatim. A body in
 * single quotes is not (its quotes are doubled): NULL, and findings in it
 * are placed at the statement.
 */
static void find_source(body *b, int loc, const char *sval)
{
	const char *p, *q;

	b->src = NULL;
	if (!b->text || loc < 0 || !sval)
		return;
	p = b->text + loc;
	if (!strncasecmp(p, "AS", 2))
		p += 2;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p != '$' || !(q = strchr(p + 1, '$')))
		return;
	q++;
	if (strncmp(q, sval, strlen(sval)) != 0)
		return;
	b->src = q;
	b->src_off = (int)(q - b->text);
}

/* The start of body line `lineno` (the body's start when it has fewer). */
static const char *line_start(const body *b, int lineno)
{
	const char *p = b->src;
	int line;

	for (line = 1; line < lineno && (p = strchr(p, '\n')) != NULL; line++)
		p++;
	return p ? p : b->src;
}

/* The offset in the text of `sql`, an expression of body line `lineno`; -1: not found. */
static int locate(const body *b, int lineno, const char *sql)
{
	const char *hit;

	if (!b->src || !sql || !*sql)
		return -1;
	if (!(hit = strstr(line_start(b, lineno), sql)) && !(hit = strstr(b->src, sql)))
		return -1;
	return b->src_off + (int)(hit - b->src);
}

/* Where a statement the compiler rewrote (SELECT ... INTO loses its INTO) starts:
 * its first word, on its line; -1: not found. */
static int locate_start(const body *b, int lineno, const char *sql)
{
	size_t n = strcspn(sql, " \t\n(");
	const char *p;

	if (!b->src || n == 0)
		return -1;
	for (p = line_start(b, lineno); *p; p++)
		if (!strncasecmp(p, sql, n))
			return b->src_off + (int)(p - b->src);
	return -1;
}

/* Calls the caller on each statement of `sql`, parsed; `shift` + a location in
 * `sql` is its offset in the migration's text (shift < 0: not known). */
static int each_stmt(body *b, const char *sql, int shift, int skip)
{
	dc_arena arena = DC_ARENA_INIT;
	PgQuery__ParseResult *tree = NULL;
	size_t i;
	int rc = dc_analysis__parse(&arena, sql, &tree, NULL);

	if (rc == DC_ENOMEM)
		b->rc = DC_ENOMEM;
	for (i = 0; rc == 0 && i < tree->n_stmts && !b->rc; i++)
		if (tree->stmts[i]->stmt)
			b->rc = b->fn(b->ctx, tree->stmts[i]->stmt, shift < 0 ? -1 : shift - skip,
			              !b->inexact, b->what, NULL);
	dc_arena_release(&arena);
	return rc == DC_EPARSE; /* 1: does not parse */
}

static void unknowable(body *b, int loc, const char *why)
{
	if (!b->rc)
		b->rc = b->fn(b->ctx, NULL, loc, true, b->what, why);
}

/*
 * One PL/pgSQL expression: a whole statement (`full`: the SQL a statement of
 * the body runs), else an expression, checked as SELECT <expr> -- after the
 * target of an assignment (`x := expr`) is cut off.
 */
static void expr(body *b, const char *q, int lineno, bool full)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	const char *e = q, *assign;
	int loc = locate(b, lineno, q), skip;

	/* PERFORM x is compiled as SELECT x */
	if (loc < 0 && !strncmp(q, "SELECT ", 7) && (loc = locate(b, lineno, q + 7)) >= 0)
		loc -= 7;
	/* else its start, and findings in it are placed there */
	b->inexact = loc < 0 && full && (loc = locate_start(b, lineno, q)) >= 0;

	if (!full && (assign = strstr(q, ":=")) != NULL &&
	    strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.[]\" \t") ==
	            (size_t)(assign - q))
		e = assign + 2;
	if (full && each_stmt(b, q, loc, 0) == 0)
		goto out;
	skip = (int)strlen("SELECT ") - (int)(e - q);
	if (dc_strbuf_adds(&sql, "SELECT ") || dc_strbuf_adds(&sql, e)) {
		b->rc = DC_ENOMEM;
		goto out;
	}
	if (each_stmt(b, sql.buf, loc, skip) == 0 || each_stmt(b, q, loc, 0) == 0)
		goto out;
	unknowable(b, loc, "an expression that does not parse as SQL, so it cannot be checked");
out:
	b->inexact = false;
	dc_strbuf_release(&sql);
}

static bool dynamic_key(const char *k)
{
	return !strcmp(k, "PLpgSQL_stmt_dynexecute") || !strcmp(k, "PLpgSQL_stmt_dynfors") ||
	       !strcmp(k, "dynquery");
}

/* The text of a PLpgSQL_expr, under `v` or its "query" member; NULL: none. */
static const char *expr_query(json_t *v)
{
	json_t *e = json_object_get(v, "PLpgSQL_expr");

	if (!e)
		e = json_object_get(json_object_get(v, "query"), "PLpgSQL_expr");
	return json_string_value(json_object_get(e, "query"));
}

/* `q` is one string constant ('...', E'...', $$...$$): its value, heap; else NULL. */
static char *constant_string(const char *q)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	dc_arena arena = DC_ARENA_INIT;
	PgQuery__ParseResult *tree = NULL;
	const PgQuery__SelectStmt *s;
	const PgQuery__Node *v;
	char *out = NULL;

	if (dc_strbuf_adds(&sql, "SELECT ") || dc_strbuf_adds(&sql, q))
		return NULL;
	if (dc_analysis__parse(&arena, sql.buf, &tree, NULL) == 0 && tree->n_stmts == 1 &&
	    tree->stmts[0]->stmt->node_case == PG_QUERY__NODE__NODE_SELECT_STMT &&
	    (s = tree->stmts[0]->stmt->select_stmt)->n_target_list == 1 && s->n_from_clause == 0 &&
	    !s->where_clause && s->target_list[0]->node_case == PG_QUERY__NODE__NODE_RES_TARGET &&
	    (v = s->target_list[0]->res_target->val) != NULL &&
	    v->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	    v->a_const->val_case == PG_QUERY__A__CONST__VAL_SVAL && v->a_const->sval->sval)
		out = dc_strdup(v->a_const->sval->sval);
	dc_arena_release(&arena);
	dc_strbuf_release(&sql);
	return out;
}

/*
 * EXECUTE of `q`: a string constant is SQL known before it runs, checked like
 * the body's own statements (placed at the EXECUTE: the string's quotes keep
 * its positions from mapping); anything else is built at run time.
 */
static void dynamic(body *b, const char *q, int lineno)
{
	int loc = locate(b, lineno, "EXECUTE");
	char *sql = q ? constant_string(q) : NULL;

	if (sql) {
		b->inexact = true;
		if (each_stmt(b, sql, loc, 0) != 0)
			unknowable(b, loc, "EXECUTE of a string that does not parse as SQL");
		b->inexact = false;
	} else {
		unknowable(b, loc,
		           "EXECUTE runs SQL built at run time, which cannot be checked before it "
		           "runs");
	}
	free(sql);
}

/* The compiled body: every PLpgSQL_expr, and every statement whose SQL is built at
 * run time. `key` is what holds `v` in its parent. */
static void walk(body *b, json_t *v, int lineno, const char *key)
{
	const char *k;
	json_t *x;
	size_t i;

	if (b->rc)
		return;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) walk(b, x, lineno, key);
		return;
	}
	if (!json_is_object(v))
		return;
	if (json_is_integer(x = json_object_get(v, "lineno")))
		lineno = (int)json_integer_value(x);
	json_object_foreach(v, k, x)
	{
		if (dynamic_key(k))
			dynamic(b, expr_query(x), lineno);
		if (!strcmp(k, "PLpgSQL_expr") && json_is_string(json_object_get(x, "query")))
			expr(b, json_string_value(json_object_get(x, "query")), lineno,
			     key && !strcmp(key, "sqlstmt"));
		else
			walk(b, x, lineno, k);
		if (b->rc)
			return;
	}
}

static void plpgsql(body *b, const PgQuery__Node *stmt)
{
	dc_strbuf sql = DC_STRBUF_INIT;
	PgQueryPlpgsqlParseResult res = { NULL, NULL };
	dc_error err = { 0 };
	json_t *tree = NULL;
	char why[400];

	if (dc_analysis__deparse(stmt, &sql, &err)) {
		b->rc = err.code == DC_ENOMEM ? DC_ENOMEM : 0;
		if (!b->rc)
			unknowable(b, -1, "its body could not be read back to check it");
		goto out;
	}
	res = pg_query_parse_plpgsql(sql.buf);
	if (res.error) {
		snprintf(why, sizeof(why), "its PL/pgSQL does not compile: %s", res.error->message);
		unknowable(b, -1, why);
		goto out;
	}
	if (!(tree = json_loads(res.plpgsql_funcs, 0, NULL))) {
		b->rc = DC_ENOMEM;
		goto out;
	}
	walk(b, tree, 1, NULL);
out:
	json_decref(tree);
	pg_query_free_plpgsql_parse_result(res);
	dc_strbuf_release(&sql);
}

/* The body of a routine in `lang` at option list `opts`. */
static void routine(body *b,
                    const PgQuery__Node *stmt,
                    PgQuery__Node **opts,
                    size_t n,
                    const char *lang)
{
	const char *src = defelem_str(opts, n, "as");
	char why[200];

	find_source(b, defelem_loc(opts, n, "as"), src);
	if (!strcasecmp(lang, "plpgsql"))
		plpgsql(b, stmt);
	else if (!strcasecmp(lang, "sql")) {
		if (src && each_stmt(b, src, b->src ? b->src_off : -1, 0) != 0)
			unknowable(b, -1, "its SQL body does not parse, so it cannot be checked");
	} else if (src || strcasecmp(lang, "internal")) {
		snprintf(why, sizeof(why), "a body in language '%s' cannot be checked", lang);
		unknowable(b, -1, why);
	}
}

int dc_analysis__body_each(const void *node, const char *text, dc_body_fn fn, void *ctx)
{
	const PgQuery__Node *n = node;
	body b = { text, NULL, 0, NULL, fn, ctx, false, 0 };
	char what[96];

	if (n->node_case == PG_QUERY__NODE__NODE_DO_STMT) {
		const PgQuery__DoStmt *d = n->do_stmt;
		const char *lang = defelem_str(d->args, d->n_args, "language");

		b.what = "a DO block";
		routine(&b, n, d->args, d->n_args, lang ? lang : "plpgsql");
	} else if (n->node_case == PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT) {
		const PgQuery__CreateFunctionStmt *f = n->create_function_stmt;
		const char *lang = defelem_str(f->options, f->n_options, "language");
		const PgQuery__Node *last = f->n_funcname ? f->funcname[f->n_funcname - 1] : NULL;

		if (f->sql_body) /* BEGIN ATOMIC: already part of the tree */
			return 0;
		snprintf(what, sizeof(what), "%s '%s'", f->is_procedure ? "procedure" : "function",
		         last && last->node_case == PG_QUERY__NODE__NODE_STRING ? last->string->sval
		                                                                : "");
		b.what = what;
		routine(&b, n, f->options, f->n_options, lang ? lang : "sql");
	}
	return b.rc;
}
