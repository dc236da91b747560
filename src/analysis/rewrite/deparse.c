/*
 * plan --safe: building protobuf nodes (in the rewrite's arena) and printing
 * them with libpg_query's deparser, generated object names put in place
 * afterwards (the deparser prints them unquoted).
 */
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include <deployclaw/analysis.h>
#include <deployclaw/rewrite.h>

#include "../analysis_internal.h"
#include "../body.h"
#include "rewrite_internal.h"

int dc_rewrite__oom(rw *r)
{
	return dc_error_set(r->err, DC_ENOMEM, "out of memory");
}

void *dc_rewrite__alloc(rw *r, size_t size)
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
PgQuery__Node **dc_rewrite__alloc_nodes(rw *r, size_t n)
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

char *dc_rewrite__strdup(rw *r, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = dc_rewrite__alloc(r, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

PgQuery__Node *dc_rewrite__node_new(rw *r)
{
	PgQuery__Node *n = dc_rewrite__alloc(r, sizeof(*n));

	if (n)
		pg_query__node__init(n);
	return n;
}

PgQuery__Node *dc_rewrite__string_node(rw *r, const char *s)
{
	PgQuery__Node *n = dc_rewrite__node_new(r);
	PgQuery__String *str = dc_rewrite__alloc(r, sizeof(*str));
	char *copy = dc_rewrite__strdup(r, s);

	if (!n || !str || !copy)
		return NULL;
	pg_query__string__init(str);
	str->sval = copy;
	n->node_case = PG_QUERY__NODE__NODE_STRING;
	n->string = str;
	return n;
}

PgQuery__Node *dc_rewrite__column_ref(rw *r, const char *col)
{
	PgQuery__Node *n = dc_rewrite__node_new(r);
	PgQuery__ColumnRef *c = dc_rewrite__alloc(r, sizeof(*c));
	PgQuery__Node **fields = dc_rewrite__alloc(r, sizeof(*fields));

	if (!n || !c || !fields || !(fields[0] = dc_rewrite__string_node(r, col)))
		return NULL;
	pg_query__column_ref__init(c);
	c->n_fields = 1;
	c->fields = fields;
	c->location = -1;
	n->node_case = PG_QUERY__NODE__NODE_COLUMN_REF;
	n->column_ref = c;
	return n;
}

PgQuery__Node *dc_rewrite__index_elem(rw *r, const char *col)
{
	PgQuery__Node *n = dc_rewrite__node_new(r);
	PgQuery__IndexElem *e = dc_rewrite__alloc(r, sizeof(*e));
	char *copy = dc_rewrite__strdup(r, col);

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
int dc_rewrite__deparse(rw *r, PgQuery__Node *stmt, dc_strbuf *out)
{
	dc_error err = { 0 };
	int rc = dc_analysis__deparse(stmt, out, &err);

	if (rc == DC_ENOMEM)
		return dc_rewrite__oom(r);
	if (rc)
		return dc_error_set(r->err, DC_EINVAL, "cannot print a rewritten statement: %s",
		                    err.message);
	return 0;
}

/* Deparses an expression: printed as "SELECT <expr>", the keyword cut off. */
int dc_rewrite__deparse_expr(rw *r, PgQuery__Node *expr, dc_strbuf *out)
{
	static const char kw[] = "SELECT ";
	PgQuery__Node *n = dc_rewrite__node_new(r);
	PgQuery__SelectStmt *sel = dc_rewrite__alloc(r, sizeof(*sel));
	PgQuery__Node *tn = dc_rewrite__node_new(r);
	PgQuery__ResTarget *rt = dc_rewrite__alloc(r, sizeof(*rt));
	PgQuery__Node **tl = dc_rewrite__alloc(r, sizeof(*tl));
	dc_strbuf tmp = DC_STRBUF_INIT;
	int rc;

	if (!n || !sel || !tn || !rt || !tl)
		return dc_rewrite__oom(r);
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
	if ((rc = dc_rewrite__deparse(r, n, &tmp)) != 0)
		goto out;
	if (strncmp(tmp.buf, kw, sizeof(kw) - 1) != 0) {
		rc = dc_error_set(r->err, DC_EINVAL, "cannot print an expression: '%.200s'",
		                  tmp.buf);
		goto out;
	}
	dc_strbuf_adds(out, tmp.buf + sizeof(kw) - 1);
	if (dc_strbuf_error(out))
		rc = dc_rewrite__oom(r);
out:
	dc_strbuf_release(&tmp);
	return rc;
}

/* A fresh lowercase name the deparser prints bare; replaced after printing. */
char *dc_rewrite__placeholder(rw *r)
{
	char buf[48];

	snprintf(buf, sizeof(buf), "dc_rewrite_placeholder_%u", ++r->nplaceholders);
	return dc_rewrite__strdup(r, buf);
}

static bool ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Replaces the one whole-word occurrence of `ph` in `sb` by `name`, quoted. */
int dc_rewrite__replace_placeholder(rw *r, dc_strbuf *sb, const char *ph, const char *name)
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
		rc = dc_rewrite__oom(r);
		goto out;
	}
	dc_strbuf_reset(sb);
	dc_strbuf_add(sb, out.buf, out.len);
	if (dc_strbuf_error(sb))
		rc = dc_rewrite__oom(r);
out:
	dc_strbuf_release(&out);
	return rc;
}

/* An ALTER TABLE of `orig`'s relation with the single command `cmd`. */
PgQuery__Node *dc_rewrite__alter_stmt(rw *r,
                                      const PgQuery__AlterTableStmt *orig,
                                      PgQuery__Node *cmd)
{
	PgQuery__Node *n = dc_rewrite__node_new(r);
	PgQuery__AlterTableStmt *a = dc_rewrite__alloc(r, sizeof(*a));
	PgQuery__Node **cmds = dc_rewrite__alloc(r, sizeof(*cmds));

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

PgQuery__Node *dc_rewrite__cmd_node(rw *r,
                                    PgQuery__AlterTableType subtype,
                                    const char *name,
                                    PgQuery__Node *def)
{
	PgQuery__Node *n = dc_rewrite__node_new(r);
	PgQuery__AlterTableCmd *c = dc_rewrite__alloc(r, sizeof(*c));

	if (!n || !c)
		return NULL;
	pg_query__alter_table_cmd__init(c);
	c->subtype = subtype;
	c->name = name ? dc_rewrite__strdup(r, name) : NULL;
	if (name && !c->name)
		return NULL;
	c->def = def;
	c->behavior = PG_QUERY__DROP_BEHAVIOR__DROP_RESTRICT;
	n->node_case = PG_QUERY__NODE__NODE_ALTER_TABLE_CMD;
	n->alter_table_cmd = c;
	return n;
}
