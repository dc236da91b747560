/*
 * Lint: the rules of rules.c applied to libpg_query's typed tree.
 *
 * Every block of SQL (a file, a phase's up or down) is parsed exactly once;
 * each statement is modelled once (model.c) and every rule looks at that
 * statement's tree and model in a single pass. What rules need to remember
 * across statements (tables this migration created, constraints added NOT
 * VALID, column types, the transaction state) lives in hash sets, so the
 * work stays linear in the number of statements.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <deployclaw/analysis.h>
#include <deployclaw/util.h>

#include "analysis_internal.h"
#include "lint_internal.h"

#define MAX_IGNORES    16
#define PG_NAMEDATALEN 63

/* ------------------------------------------------------------------------ */
/* A string set (open addressing) with a borrowed value per key.            */

typedef struct strset {
	char **keys;
	void **vals;
	size_t cap, len;
} strset;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static void set_release(strset *s)
{
	size_t i;

	for (i = 0; i < s->cap; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->vals);
	memset(s, 0, sizeof(*s));
}

static size_t set_slot(const strset *s, const char *key)
{
	size_t i = (size_t)hash_str(key) & (s->cap - 1);

	while (s->keys[i] && strcmp(s->keys[i], key) != 0)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static bool set_has(const strset *s, const char *key, void **val)
{
	size_t i;

	if (!s->cap)
		return false;
	i = set_slot(s, key);
	if (!s->keys[i])
		return false;
	if (val)
		*val = s->vals[i];
	return true;
}

static int set_put(strset *s, const char *key, void *val)
{
	size_t i;

	if (2 * (s->len + 1) > s->cap) {
		strset n = { NULL, NULL, s->cap ? s->cap * 2 : 64, 0 };

		n.keys = calloc(n.cap, sizeof(*n.keys));
		n.vals = calloc(n.cap, sizeof(*n.vals));
		if (!n.keys || !n.vals) {
			free(n.keys);
			free(n.vals);
			return DC_ENOMEM;
		}
		for (i = 0; i < s->cap; i++)
			if (s->keys[i]) {
				size_t j = set_slot(&n, s->keys[i]);

				n.keys[j] = s->keys[i];
				n.vals[j] = s->vals[i];
				n.len++;
			}
		free(s->keys);
		free(s->vals);
		*s = n;
	}
	i = set_slot(s, key);
	if (!s->keys[i]) {
		if (!(s->keys[i] = dc_strdup(key)))
			return DC_ENOMEM;
		s->len++;
	}
	s->vals[i] = val;
	return 0;
}

static void set_del(strset *s, const char *key)
{
	size_t i, j;

	if (!s->cap)
		return;
	i = set_slot(s, key);
	if (!s->keys[i])
		return;
	free(s->keys[i]);
	s->keys[i] = NULL;
	s->len--;
	/* re-insert the rest of the cluster */
	for (j = (i + 1) & (s->cap - 1); s->keys[j]; j = (j + 1) & (s->cap - 1)) {
		char *k = s->keys[j];
		void *v = s->vals[j];
		size_t t;

		s->keys[j] = NULL;
		t = set_slot(s, k);
		s->keys[t] = k;
		s->vals[t] = v;
	}
}

/* ------------------------------------------------------------------------ */
/* The linter's state.                                                      */

typedef struct ignore {
	int rule; /* index, or -1 for an unknown name */
	size_t off;
	bool used;
	char name[48];
} ignore;

typedef struct lint {
	const dc_lint_config *cfg;
	dc_finding_list *out;
	int failed;

	/* migration-wide */
	strset tables;    /* relname: created by this migration */
	strset indexes;   /* index names created */
	strset types;     /* user types created: name -> (void*)1 plain, 2 constrained domain */
	strset coltypes;  /* "t.c" -> PgQuery__TypeName* (trees are kept alive) */
	strset nn_checks; /* "t.con" -> column name of a CHECK (col IS NOT NULL) */
	strset validated; /* "t.col": a validated CHECK (col IS NOT NULL) */
	strset fks;       /* "t.con": foreign keys */
	strset renamed;   /* old table name -> finding index + 1 */
	dc_arena trees;   /* parse trees of small blocks, kept until the end */
	dc_arena keep;    /* copies of what outlives a chunk's tree (column types) */

	/* the current block */
	const char *file;
	const char *text;
	size_t textlen;
	int line0, col0;
	bool exact; /* text is verbatim in the file: positions are computed from it */
	const dc_statement *stmts;
	size_t nstmts, stmt_i;
	size_t cur_off;
	int cur_line, cur_col;
	bool wrapped;     /* deployclaw runs the block in a transaction */
	bool explicit_tx; /* after a BEGIN */
	size_t begin_off;
	strset tx_not_valid; /* "t.con" added NOT VALID in the current transaction */
	strset dropped_cons; /* "t.con" dropped earlier in the block */
	bool tx_strong_lock;
	bool lock_timeout_set, statement_timeout_set, lock_reported, stmt_reported;

	/* non-transactional statements of a transactional block: reported at its
	 * end, and only when it has other statements to lose atomicity with */
	struct {
		size_t off, stmt_i;
		const char *what;
	} nontx[32];

	size_t nnontx, substantive;
	dc_strbuf key;

	/* the current statement */
	const PgQuery__Node *node;
	dc_stmt_model *model;
	size_t stmt_off, stmt_end;
	size_t base;          /* offset in text of what the current tree was parsed from */
	size_t cur_chunk_end; /* its end, when it is a chunk of the text (else 0) */
	bool syntax_error;    /* the block did not parse */
} lint;

static bool in_tx(const lint *l)
{
	return l->wrapped || l->explicit_tx;
}

/* Key "a.b" (NUL-separated parts would not survive strdup). */
static const char *key2(lint *l, const char *a, const char *b)
{
	dc_strbuf_reset(&l->key);
	dc_strbuf_adds(&l->key, a ? a : "");
	dc_strbuf_addch(&l->key, '\x1f');
	dc_strbuf_adds(&l->key, b ? b : "");
	if (dc_strbuf_error(&l->key))
		l->failed = DC_ENOMEM;
	return l->key.buf;
}

static void put(lint *l, strset *s, const char *key, void *val)
{
	if (set_put(s, key, val))
		l->failed = DC_ENOMEM;
}

/*
 * A column's type outlives the chunk of the file it was parsed from: a deep
 * copy (through the type's own pack/unpack) in l->keep. NULL stays NULL.
 */
static void *keep_type(lint *l, const PgQuery__TypeName *tn)
{
	ProtobufCAllocator al = dc_analysis__arena_allocator(&l->keep);
	uint8_t stackbuf[512], *buf = stackbuf;
	size_t len;
	void *copy;

	if (!tn)
		return NULL;
	len = pg_query__type_name__get_packed_size(tn);
	if (len > sizeof(stackbuf) && !(buf = malloc(len))) {
		l->failed = DC_ENOMEM;
		return NULL;
	}
	pg_query__type_name__pack(tn, buf);
	if (!(copy = pg_query__type_name__unpack(&al, len, buf)))
		l->failed = DC_ENOMEM;
	if (buf != stackbuf)
		free(buf);
	return copy;
}

static void *keep_str(lint *l, const char *str)
{
	size_t n = strlen(str) + 1;
	char *p = dc_arena_alloc(&l->keep, n);

	if (!p) {
		l->failed = DC_ENOMEM;
		return NULL;
	}
	return memcpy(p, str, n);
}

/* ------------------------------------------------------------------------ */
/* Positions.                                                               */

static void pos_of(lint *l, size_t off, int *line, int *col)
{
	if (!l->exact) {
		if (l->stmts && l->stmt_i < l->nstmts) {
			*line = l->stmts[l->stmt_i].line;
			*col = l->stmts[l->stmt_i].col;
		} else {
			*line = l->line0;
			*col = l->col0;
		}
		return;
	}
	if (off > l->textlen)
		off = l->textlen;
	if (off < l->cur_off) {
		l->cur_off = 0;
		l->cur_line = l->line0;
		l->cur_col = l->col0;
	}
	for (; l->cur_off < off; l->cur_off++) {
		unsigned char c = (unsigned char)l->text[l->cur_off];

		if (c == '\n') {
			l->cur_line++;
			l->cur_col = 1;
		} else if ((c & 0xC0) != 0x80) {
			l->cur_col++;
		}
	}
	*line = l->cur_line;
	*col = l->cur_col;
}

static char *source_line(const lint *l, size_t off)
{
	size_t s = off, e = off;

	if (!l->exact || off > l->textlen)
		return NULL;
	while (s > 0 && l->text[s - 1] != '\n')
		s--;
	while (e < l->textlen && l->text[e] != '\n' && l->text[e] != '\r')
		e++;
	return dc_strndup(l->text + s, e - s);
}

/* Skips blanks and comments (nested block comments, as PostgreSQL). */
static size_t skip_blank(const char *t, size_t s, size_t e)
{
	while (s < e) {
		char c = t[s];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
			s++;
		} else if (c == '-' && s + 1 < e && t[s + 1] == '-') {
			while (s < e && t[s] != '\n')
				s++;
		} else if (c == '/' && s + 1 < e && t[s + 1] == '*') {
			int depth = 1;

			s += 2;
			while (s < e && depth) {
				if (t[s] == '*' && s + 1 < e && t[s + 1] == '/') {
					depth--;
					s += 2;
				} else if (t[s] == '/' && s + 1 < e && t[s + 1] == '*') {
					depth++;
					s += 2;
				} else {
					s++;
				}
			}
		} else {
			break;
		}
	}
	return s;
}

/* ------------------------------------------------------------------------ */
/* Findings.                                                                */

static dc_finding *push_finding(lint *l)
{
	dc_finding_list *fl = l->out;

	if (fl->len == fl->alloc) {
		size_t na = fl->alloc ? fl->alloc * 2 : 16;
		dc_finding *nv = dc_realloc_array(fl->items, na, sizeof(*nv));

		if (!nv) {
			l->failed = DC_ENOMEM;
			return NULL;
		}
		fl->items = nv;
		fl->alloc = na;
	}
	memset(&fl->items[fl->len], 0, sizeof(dc_finding));
	return &fl->items[fl->len++];
}

static void vemit(lint *l,
                  int rule,
                  dc_severity sev,
                  size_t off,
                  const char *suggestion,
                  const char *fmt,
                  va_list ap) DC_PRINTF(6, 0);

static void vemit(lint *l,
                  int rule,
                  dc_severity sev,
                  size_t off,
                  const char *suggestion,
                  const char *fmt,
                  va_list ap)
{
	dc_strbuf msg = DC_STRBUF_INIT;
	dc_finding *f;

	if (sev == DC_SEV_OFF)
		return;
	if (!(f = push_finding(l)))
		return;
	f->rule = dc_lint__rule(rule);
	f->severity = sev;
	pos_of(l, off, &f->line, &f->col);
	dc_strbuf_vaddf(&msg, fmt, ap);
	f->message = dc_strbuf_detach(&msg, NULL);
	f->file = l->file ? dc_strdup(l->file) : NULL;
	f->suggestion = suggestion ? dc_strdup(suggestion) : NULL;
	f->source = source_line(l, off);
	if (!f->message || (l->file && !f->file) || (suggestion && !f->suggestion))
		l->failed = DC_ENOMEM;
}

static void emit_at(lint *l, int rule, size_t off, const char *suggestion, const char *fmt, ...)
        DC_PRINTF(5, 6);

static void emit_at(lint *l, int rule, size_t off, const char *suggestion, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit(l, rule, l->cfg->severity[rule], off, suggestion, fmt, ap);
	va_end(ap);
}

/* A finding at the current statement's start. */
static void emit(lint *l, int rule, const char *suggestion, const char *fmt, ...) DC_PRINTF(4, 5);

static void emit(lint *l, int rule, const char *suggestion, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit(l, rule, l->cfg->severity[rule], l->stmt_off, suggestion, fmt, ap);
	va_end(ap);
}

static void emit_sev(lint *l, int rule, dc_severity sev, const char *fmt, ...) DC_PRINTF(4, 5);

static void emit_sev(lint *l, int rule, dc_severity sev, const char *fmt, ...)
{
	va_list ap;

	if (l->cfg->severity[rule] == DC_SEV_OFF)
		return;
	if (sev > l->cfg->severity[rule])
		sev = l->cfg->severity[rule];
	va_start(ap, fmt);
	vemit(l, rule, sev, l->stmt_off, NULL, fmt, ap);
	va_end(ap);
}

/* Offset in the text of a node location inside the current statement. */
static size_t at(const lint *l, int32_t loc)
{
	size_t off = l->base + (size_t)loc;

	if (loc < 0 || off < l->stmt_off || off > l->stmt_end)
		return l->stmt_off;
	return off;
}

void dc_finding_list_release(dc_finding_list *fl)
{
	size_t i;

	if (!fl)
		return;
	for (i = 0; i < fl->len; i++) {
		free(fl->items[i].file);
		free(fl->items[i].message);
		free(fl->items[i].suggestion);
		free(fl->items[i].source);
	}
	free(fl->items);
	memset(fl, 0, sizeof(*fl));
}

size_t dc_finding_list_count(const dc_finding_list *fl, dc_severity min)
{
	size_t i, n = 0;

	for (i = 0; fl && i < fl->len; i++)
		if (fl->items[i].severity >= min && fl->items[i].severity != DC_SEV_OFF)
			n++;
	return n;
}

static int finding_cmp(const void *a, const void *b)
{
	const dc_finding *x = a, *y = b;
	int d = strcmp(x->file ? x->file : "", y->file ? y->file : "");

	if (d)
		return d;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return strcmp(x->rule->id, y->rule->id);
}

void dc_finding_list_sort(dc_finding_list *fl)
{
	if (fl && fl->len > 1)
		qsort(fl->items, fl->len, sizeof(*fl->items), finding_cmp);
}

/* Drops findings marked off (silenced after the fact), keeping order. */
static void compact(dc_finding_list *fl, size_t from)
{
	size_t i, o = from;

	for (i = from; i < fl->len; i++) {
		if (fl->items[i].severity == DC_SEV_OFF) {
			free(fl->items[i].file);
			free(fl->items[i].message);
			free(fl->items[i].suggestion);
			free(fl->items[i].source);
			continue;
		}
		fl->items[o++] = fl->items[i];
	}
	fl->len = o;
}

/* ------------------------------------------------------------------------ */
/* Helpers on trees.                                                        */

static bool table_is_new(lint *l, const PgQuery__RangeVar *rv)
{
	return rv && rv->relname && set_has(&l->tables, rv->relname, NULL);
}

static const char *rvname(const PgQuery__RangeVar *rv)
{
	return rv && rv->relname ? rv->relname : "";
}

/* "schema.table" for messages, into the lint's scratch buffer 2. */
static void qual(dc_strbuf *sb, const PgQuery__RangeVar *rv)
{
	dc_strbuf_reset(sb);
	if (rv)
		dc_analysis__qualified(sb, rv);
}

static bool col_has(const PgQuery__ColumnDef *cd,
                    PgQuery__ConstrType t,
                    const PgQuery__Constraint **out)
{
	size_t i;

	for (i = 0; i < cd->n_constraints; i++)
		if (cd->constraints[i]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
		    cd->constraints[i]->constraint->contype == t) {
			if (out)
				*out = cd->constraints[i]->constraint;
			return true;
		}
	return false;
}

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
static void check_ident(lint *l, const char *name, int32_t loc, const char *what)
{
	const char *s = l->text + l->stmt_off;
	size_t n = l->stmt_end - l->stmt_off, i, len = name ? strlen(name) : 0, full;

	(void)loc;
	if (len < PG_NAMEDATALEN)
		return;
	for (i = 0; i + len <= n; i++) {
		if (strncasecmp(s + i, name, len) != 0 ||
		    (i > 0 && ident_char((unsigned char)s[i - 1])))
			continue;
		for (full = len; i + full < n && ident_char((unsigned char)s[i + full]); full++)
			;
		if (full > PG_NAMEDATALEN || (i + full < n && s[i + full] != '"' && full > len)) {
			emit_at(l, R_IDENT_TOO_LONG, l->stmt_off + i, NULL,
			        "%s name '%.40s...' is %zu bytes: PostgreSQL truncates it to 63",
			        what, name, full);
			return;
		}
	}
}

static bool allowed_schema(const char *s)
{
	return !strcmp(s, "pg_catalog") || !strcmp(s, "information_schema") ||
	       !strcmp(s, "pg_temp");
}

static void check_schema(lint *l, const PgQuery__RangeVar *rv)
{
	if (!l->cfg->schema_tenancy || !rv || !rv->schemaname || !rv->schemaname[0] ||
	    allowed_schema(rv->schemaname))
		return;
	emit_at(l, R_FOREIGN_SCHEMA, at(l, rv->location), NULL,
	        "'%s.%s' names the schema '%s': under schema tenancy every statement must stay in "
	        "the tenant's schema",
	        rv->schemaname, rv->relname ? rv->relname : "", rv->schemaname);
}

/* Every RangeVar anywhere in a message, through protobuf-c's reflection. */
static void walk_rangevars(lint *l, const ProtobufCMessage *msg, int depth)
{
	const ProtobufCMessageDescriptor *d;
	unsigned i;

	if (!msg || depth > 200)
		return;
	d = msg->descriptor;
	if (d == &pg_query__range_var__descriptor) {
		check_schema(l, (const PgQuery__RangeVar *)msg);
		return;
	}
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)msg;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n, k;
			ProtobufCMessage **arr;

			/* memcpy: the field offsets come as bytes */
			memcpy(&n, base + f->quantifier_offset, sizeof(n));
			memcpy(&arr, base + f->offset, sizeof(arr));
			for (k = 0; k < n; k++)
				walk_rangevars(l, arr[k], depth + 1);
		} else {
			ProtobufCMessage *sub;

			if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
				uint32_t cse;

				memcpy(&cse, base + f->quantifier_offset, sizeof(cse));
				if (cse != f->id)
					continue;
			}
			memcpy(&sub, base + f->offset, sizeof(sub));
			walk_rangevars(l, sub, depth + 1);
		}
	}
}

/* Type rules on one column type. */
static void check_type(lint *l, const PgQuery__TypeName *tn, const char *col)
{
	bool builtin;
	const char *t;
	size_t off;

	if (!tn)
		return;
	t = dc_analysis__type_base(tn, &builtin);
	off = at(l, tn->location);
	if (!builtin)
		return;
	if (!strcmp(t, "int4") || !strcmp(t, "int") || !strcmp(t, "integer") ||
	    !strcmp(t, "serial") || !strcmp(t, "serial4"))
		emit_at(l, R_PREFER_BIGINT, off, NULL,
		        "column '%s' is %s: 32-bit integers overflow", col,
		        !strcmp(t, "serial") || !strcmp(t, "serial4") ? "serial" : "integer");
	else if (!strcmp(t, "int2") || !strcmp(t, "smallint") || !strcmp(t, "smallserial") ||
	         !strcmp(t, "serial2"))
		emit_at(l, R_PREFER_BIGINT_SMALL, off, NULL,
		        "column '%s' is smallint: 16-bit integers overflow", col);
	if (dc_analysis__is_serial(tn))
		emit_at(l, R_PREFER_IDENTITY, off, NULL,
		        "column '%s' is %s: prefer bigint GENERATED BY DEFAULT AS IDENTITY", col,
		        t);
	if (!strcmp(t, "varchar") && tn->n_typmods > 0)
		emit_at(l, R_PREFER_TEXT, off, NULL, "column '%s' is varchar(n): prefer text", col);
	if (!strcmp(t, "timestamp"))
		emit_at(l, R_PREFER_TIMESTAMPTZ, off, NULL,
		        "column '%s' is timestamp without time zone", col);
	if (!strcmp(t, "bpchar") || (tn->n_names == 2 && !strcmp(t, "char")))
		emit_at(l, R_BAN_CHAR, off, NULL, "column '%s' is char(n): blank-padded", col);
	if (!strcmp(t, "json"))
		emit_at(l, R_PREFER_JSONB, off, NULL, "column '%s' is json: prefer jsonb", col);
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

/* ------------------------------------------------------------------------ */
/* Rules by statement.                                                      */

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

static void add_constraint(lint *l,
                           const PgQuery__RangeVar *rv,
                           const PgQuery__Constraint *k,
                           bool is_new)
{
	dc_strbuf sb = DC_STRBUF_INIT, q = DC_STRBUF_INIT;
	const char *t = rvname(rv), *col = NULL;

	qual(&q, rv);
	check_ident(l, k->conname, k->location, "constraint");
	if (k->conname && k->conname[0] && !in_tx(l) &&
	    !set_has(&l->dropped_cons, key2(l, t, k->conname), NULL))
		emit_at(l, R_ROBUST, at(l, k->location), NULL,
		        "ADD CONSTRAINT '%s' in a non-transactional phase fails when re-run: drop it "
		        "IF EXISTS first",
		        k->conname);
	switch (k->contype) {
	case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
		if (is_not_null_check(k, &col) && k->conname)
			put(l, &l->nn_checks, key2(l, t, k->conname), keep_str(l, col));
		if (k->skip_validation) {
			if (k->conname)
				put(l, &l->tx_not_valid, key2(l, t, k->conname), NULL);
		} else if (!is_new) {
			suggest_not_valid(l, &sb, rv, k->conname);
			emit_at(l, R_CHECK_VALIDATES, at(l, k->location), sb.buf,
			        "CHECK constraint '%s' on '%s' scans the table under ACCESS EXCLUSIVE",
			        k->conname ? k->conname : "", q.buf);
		}
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
		if (k->conname)
			put(l, &l->fks, key2(l, t, k->conname), NULL);
		if (k->skip_validation) {
			if (k->conname)
				put(l, &l->tx_not_valid, key2(l, t, k->conname), NULL);
		} else if (!is_new) {
			suggest_not_valid(l, &sb, rv, k->conname);
			emit_at(l, R_FK_VALIDATES, at(l, k->location), sb.buf,
			        "foreign key '%s' on '%s' validates under SHARE ROW EXCLUSIVE on '%s' and "
			        "'%s': writes on both wait",
			        k->conname ? k->conname : "", q.buf, q.buf, rvname(k->pktable));
		}
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
		if (!(k->indexname && k->indexname[0]) && !is_new)
			emit_at(l, R_ADD_PK, at(l, k->location), NULL,
			        "ADD PRIMARY KEY on '%s' builds its index under ACCESS EXCLUSIVE",
			        q.buf);
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
		if (!(k->indexname && k->indexname[0]) && !is_new)
			emit_at(l, R_ADD_UNIQUE, at(l, k->location), NULL,
			        "ADD UNIQUE on '%s' builds its index under ACCESS EXCLUSIVE",
			        q.buf);
		break;
	case PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION:
		if (!is_new)
			emit_at(l, R_ADD_EXCLUDE, at(l, k->location), NULL,
			        "ADD EXCLUDE on '%s' builds an index and checks every row under ACCESS "
			        "EXCLUSIVE",
			        q.buf);
		break;
	default:
		break;
	}
	if (dc_strbuf_error(&sb) || dc_strbuf_error(&q))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
	dc_strbuf_release(&q);
}

static void add_column(lint *l,
                       const PgQuery__RangeVar *rv,
                       const PgQuery__AlterTableCmd *c,
                       const PgQuery__ColumnDef *cd,
                       bool is_new)
{
	const PgQuery__Constraint *def = NULL, *k = NULL;
	dc_strbuf q = DC_STRBUF_INIT;
	const char *col = cd->colname ? cd->colname : "";
	bool has_def, nulldef, serial, ident, gen, notnull, builtin;
	size_t off = at(l, cd->location);
	const char *tname;
	void *tv = NULL;

	qual(&q, rv);
	check_ident(l, cd->colname, cd->location, "column");
	check_type(l, cd->type_name, col);
	has_def = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT, &def);
	nulldef = has_def && def->raw_expr &&
	          def->raw_expr->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	          def->raw_expr->a_const->isnull;
	serial = dc_analysis__is_serial(cd->type_name);
	ident = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY, NULL);
	gen = col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED, NULL);
	notnull = cd->is_not_null || col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL, NULL);
	tname = dc_analysis__type_base(cd->type_name, &builtin);
	if (!in_tx(l) && !c->missing_ok)
		emit_at(l, R_ROBUST, off, NULL,
		        "ADD COLUMN '%s' in a non-transactional phase fails when re-run: use ADD COLUMN "
		        "IF NOT EXISTS",
		        col);
	if (!is_new) {
		if (serial || ident || gen)
			emit_at(l, R_ADD_COLUMN_REWRITE, off, NULL,
			        "adding the %s column '%s' rewrites '%s' and its indexes under ACCESS "
			        "EXCLUSIVE",
			        serial  ? tname
			        : ident ? "identity"
			                : "stored generated",
			        col, q.buf);
		else if (has_def && !nulldef && !dc_analysis__default_is_fast(def->raw_expr))
			emit_at(l, R_ADD_COLUMN_REWRITE, at(l, def->location), NULL,
			        "the default of '%s' is volatile (or not known to be stable): adding it "
			        "rewrites '%s' and its indexes under ACCESS EXCLUSIVE",
			        col, q.buf);
		else if (!builtin && set_has(&l->types, tname, &tv) && tv == (void *)2)
			emit_at(l, R_ADD_COLUMN_DOMAIN, off, NULL,
			        "column '%s' has the domain '%s', which has constraints: adding it "
			        "rewrites '%s' (every row verified) under ACCESS EXCLUSIVE",
			        col, tname, q.buf);
		else if (!builtin && !set_has(&l->types, tname, NULL))
			emit_at(l, R_ADD_COLUMN_DOMAIN, off, NULL,
			        "column '%s' has the user-defined type '%s': if it is a domain with "
			        "constraints, adding it rewrites '%s' (check with 'deployclaw plan --live')",
			        col, tname, q.buf);
		if (notnull && (!has_def || nulldef) && !serial && !ident && !gen)
			emit_at(l, R_ADD_REQUIRED, off, NULL,
			        "adding '%s' NOT NULL without a default fails on a non-empty '%s'",
			        col, q.buf);
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN, &k) && has_def && !nulldef)
			emit_at(l, R_FK_VALIDATES, at(l, k->location), NULL,
			        "column '%s' references '%s' and has a default: every row is validated "
			        "under SHARE ROW EXCLUSIVE",
			        col, rvname(k->pktable));
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY, &k))
			emit_at(l, R_ADD_PK, at(l, k->location), NULL,
			        "ADD COLUMN '%s' PRIMARY KEY builds an index under ACCESS EXCLUSIVE",
			        col);
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE, &k))
			emit_at(l, R_ADD_UNIQUE, at(l, k->location), NULL,
			        "ADD COLUMN '%s' UNIQUE builds an index under ACCESS EXCLUSIVE",
			        col);
		if (col_has(cd, PG_QUERY__CONSTR_TYPE__CONSTR_CHECK, &k) && !k->skip_validation)
			emit_at(l, R_CHECK_VALIDATES, at(l, k->location), NULL,
			        "the CHECK on new column '%s' scans '%s' under ACCESS EXCLUSIVE",
			        col, q.buf);
	}
	put(l, &l->coltypes, key2(l, rvname(rv), col), keep_type(l, cd->type_name));
	if (dc_strbuf_error(&q))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&q);
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

static void alter_table(lint *l, const PgQuery__AlterTableStmt *a)
{
	const PgQuery__RangeVar *rv = a->relation;
	const char *t = rvname(rv);
	bool is_new = table_is_new(l, rv);
	dc_strbuf q = DC_STRBUF_INIT, sb = DC_STRBUF_INIT;
	size_t i;

	if (a->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_TABLE)
		return;
	qual(&q, rv);
	if (rv && !(rv->schemaname && rv->schemaname[0]))
		emit(l, R_REQUIRE_SCHEMA, NULL, "'%s' is not schema-qualified", t);
	for (i = 0; i < a->n_cmds; i++) {
		const PgQuery__AlterTableCmd *c;
		const PgQuery__Node *def;
		void *v = NULL;

		if (a->cmds[i]->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
			continue;
		c = a->cmds[i]->alter_table_cmd;
		def = c->def;
		switch (c->subtype) {
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumnRecurse:
			if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				add_column(l, rv, c, def->column_def, is_new);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumn:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropColumnRecurse:
			if (!is_new && !set_has(&l->coltypes, key2(l, t, c->name), NULL))
				emit(l, R_DROP_COLUMN, NULL,
				     "dropping column '%s' of '%s' breaks clients that still use it",
				     c->name ? c->name : "", q.buf);
			if (!in_tx(l) && !c->missing_ok)
				emit(l, R_ROBUST, NULL,
				     "DROP COLUMN '%s' in a non-transactional phase fails when re-run: use "
				     "DROP COLUMN IF EXISTS",
				     c->name ? c->name : "");
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType: {
			const PgQuery__ColumnDef *cd =
			        def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF
			                ? def->column_def
			                : NULL;
			const PgQuery__TypeName *from = NULL;
			int op;

			if (!cd)
				break;
			check_type(l, cd->type_name, c->name ? c->name : "");
			if (set_has(&l->coltypes, key2(l, t, c->name), &v))
				from = v;
			op = dc_analysis__type_change_op(from, cd->type_name,
			                                 cd->raw_default != NULL);
			if (!is_new && op == OP_TYPE_REWRITE)
				emit(l, R_TYPE_REWRITE, NULL,
				     "changing the type of '%s.%s' rewrites the table and its indexes under "
				     "ACCESS EXCLUSIVE",
				     q.buf, c->name ? c->name : "");
			else if (!is_new && op == OP_TYPE_MAY_REWRITE)
				emit_sev(
				        l, R_TYPE_REWRITE, DC_SEV_INFO,
				        "changing the type of '%s.%s' rewrites the table unless the "
				        "change is binary-coercible (the old type is not known here)",
				        q.buf, c->name ? c->name : "");
			put(l, &l->coltypes, key2(l, t, c->name), keep_type(l, cd->type_name));
			break;
		}
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetNotNull:
			if (!is_new && !set_has(&l->validated, key2(l, t, c->name), NULL)) {
				dc_strbuf_reset(&sb);
				dc_strbuf_adds(&sb, "ALTER TABLE ");
				dc_strbuf_adds(&sb, q.buf);
				dc_strbuf_adds(&sb, " ADD CONSTRAINT ");
				dc_strbuf_adds(&sb, c->name ? c->name : "");
				dc_strbuf_adds(&sb, "_not_null CHECK (");
				dc_analysis__quote_ident(&sb, c->name);
				dc_strbuf_adds(
				        &sb,
				        " IS NOT NULL) NOT VALID;\n-- later phase:\nALTER TABLE ");
				dc_strbuf_adds(&sb, q.buf);
				dc_strbuf_adds(&sb, " VALIDATE CONSTRAINT ");
				dc_strbuf_adds(&sb, c->name ? c->name : "");
				dc_strbuf_adds(&sb, "_not_null;\nALTER TABLE ");
				dc_strbuf_adds(&sb, q.buf);
				dc_strbuf_adds(&sb, " ALTER COLUMN ");
				dc_analysis__quote_ident(&sb, c->name);
				dc_strbuf_adds(&sb, " SET NOT NULL;");
				emit(l, R_SET_NOT_NULL, sb.buf,
				     "SET NOT NULL on '%s.%s' scans the whole table under ACCESS EXCLUSIVE",
				     q.buf, c->name ? c->name : "");
			}
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropNotNull:
			if (!is_new)
				emit(l, R_DROP_NOT_NULL, NULL,
				     "'%s.%s' may now hold NULL: clients may not expect it", q.buf,
				     c->name ? c->name : "");
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraintRecurse:
			if (def && def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
				add_constraint(l, rv, def->constraint, is_new);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ValidateConstraintRecurse:
			if (in_tx(l) && set_has(&l->tx_not_valid, key2(l, t, c->name), NULL))
				emit(l, R_VALIDATE_SAME_TX, NULL,
				     "'%s' is validated in the transaction that added it NOT VALID: the "
				     "scan runs under the ADD's ACCESS EXCLUSIVE lock",
				     c->name ? c->name : "");
			else if (in_tx(l) && l->tx_strong_lock)
				emit(l, R_VALIDATE_SAME_TX, NULL,
				     "'%s' is validated in a transaction that already holds a write-blocking "
				     "lock: the scan runs under it",
				     c->name ? c->name : "");
			if (set_has(&l->nn_checks, key2(l, t, c->name), &v) && v)
				put(l, &l->validated, key2(l, t, (const char *)v), NULL);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraint:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DropConstraintRecurse:
			if (set_has(&l->fks, key2(l, t, c->name), NULL))
				emit(l, R_DROP_FK, NULL,
				     "dropping the foreign key '%s' also locks its referenced table ACCESS "
				     "EXCLUSIVE",
				     c->name ? c->name : "");
			if (!in_tx(l) && !c->missing_ok)
				emit(l, R_ROBUST, NULL,
				     "DROP CONSTRAINT '%s' in a non-transactional phase fails when re-run: use "
				     "DROP CONSTRAINT IF EXISTS",
				     c->name ? c->name : "");
			put(l, &l->dropped_cons, key2(l, t, c->name), NULL);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetLogged:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetUnLogged:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetAccessMethod:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetTableSpace:
			if (!is_new)
				emit(l, R_TABLE_REWRITE, NULL,
				     "this copies all of '%s' under ACCESS EXCLUSIVE", q.buf);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_SetRelOptions:
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ReplaceRelOptions:
			if (reloption_false(def, "autovacuum_enabled"))
				emit(l, R_AUTOVACUUM_OFF, NULL, "autovacuum is disabled for '%s'",
				     q.buf);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_ReplicaIdentity:
			if (def && def->node_case == PG_QUERY__NODE__NODE_REPLICA_IDENTITY_STMT &&
			    def->replica_identity_stmt->identity_type &&
			    (def->replica_identity_stmt->identity_type[0] == 'f' ||
			     def->replica_identity_stmt->identity_type[0] == 'n'))
				emit(l, R_REPLICA_IDENTITY, NULL, "REPLICA IDENTITY %s on '%s'",
				     def->replica_identity_stmt->identity_type[0] == 'f'
				             ? "FULL"
				             : "NOTHING",
				     q.buf);
			break;
		case PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartition:
			if (def && def->node_case == PG_QUERY__NODE__NODE_PARTITION_CMD &&
			    !def->partition_cmd->concurrent)
				emit(l, R_DETACH_NONCONC, NULL,
				     "DETACH PARTITION '%s' takes ACCESS EXCLUSIVE on '%s' and the partition",
				     rvname(def->partition_cmd->name), q.buf);
			break;
		default:
			break;
		}
	}
	if (dc_strbuf_error(&q) || dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&q);
	dc_strbuf_release(&sb);
}

static void create_table(lint *l, const PgQuery__CreateStmt *cs)
{
	const PgQuery__RangeVar *rv = cs->relation;
	size_t i, j;
	int offset = 0, padding = 0;

	if (!rv)
		return;
	check_ident(l, rv->relname, rv->location, "table");
	if (!in_tx(l) && !cs->if_not_exists)
		emit(l, R_ROBUST, NULL,
		     "CREATE TABLE '%s' in a non-transactional phase fails when re-run: use IF NOT "
		     "EXISTS",
		     rvname(rv));
	if (!(rv->schemaname && rv->schemaname[0]) &&
	    !(rv->relpersistence && rv->relpersistence[0] == 't'))
		emit(l, R_REQUIRE_SCHEMA, NULL, "'%s' is not schema-qualified", rvname(rv));
	for (i = 0; i < cs->n_table_elts; i++) {
		const PgQuery__Node *e = cs->table_elts[i];

		if (e->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF) {
			const PgQuery__ColumnDef *cd = e->column_def;
			int w, al;

			check_ident(l, cd->colname, cd->location, "column");
			check_type(l, cd->type_name, cd->colname ? cd->colname : "");
			for (j = 0; j < i; j++)
				if (cs->table_elts[j]->node_case ==
				            PG_QUERY__NODE__NODE_COLUMN_DEF &&
				    cd->colname && cs->table_elts[j]->column_def->colname &&
				    !strcmp(cs->table_elts[j]->column_def->colname, cd->colname)) {
					emit_at(l, R_DUPLICATE_COLUMN, at(l, cd->location), NULL,
					        "column '%s' is defined twice in '%s'", cd->colname,
					        rvname(rv));
					break;
				}
			put(l, &l->coltypes, key2(l, rv->relname, cd->colname),
			    keep_type(l, cd->type_name));
			w = type_width(cd->type_name, &al);
			if (offset >= 0 && w > 0) {
				if (offset % al) {
					padding += al - offset % al;
					offset += al - offset % al;
				}
				offset += w;
			} else if (w == 0) {
				offset = -1; /* variable width: later offsets unknown */
			}
		} else if (e->node_case == PG_QUERY__NODE__NODE_CONSTRAINT) {
			check_ident(l, e->constraint->conname, e->constraint->location,
			            "constraint");
			if (e->constraint->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN &&
			    e->constraint->conname)
				put(l, &l->fks, key2(l, rv->relname, e->constraint->conname), NULL);
		}
	}
	if (padding > 0)
		emit(l, R_ALIGNMENT, NULL,
		     "the column order of '%s' wastes %d byte%s of alignment padding per row",
		     rvname(rv), padding, padding == 1 ? "" : "s");
	put(l, &l->tables, rv->relname, NULL);
}

static void suggest_concurrently(lint *l, dc_strbuf *sb, const char *word, const char *tail)
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

static void create_index(lint *l, const PgQuery__IndexStmt *ix)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	bool is_new = table_is_new(l, ix->relation);

	check_ident(l, ix->idxname, -1, "index");
	if (!ix->concurrent && !is_new && ix->relation && ix->relation->inh) {
		suggest_concurrently(l, &sb, "index",
		                     ix->idxname && !ix->if_not_exists
		                             ? " CONCURRENTLY IF NOT EXISTS"
		                             : " CONCURRENTLY");
		emit(l, R_INDEX_NONCONC, sb.len ? sb.buf : NULL,
		     "CREATE INDEX%s%s%s on '%s' blocks writes (SHARE lock) for the whole build",
		     ix->idxname ? " '" : "", ix->idxname ? ix->idxname : "",
		     ix->idxname ? "'" : "", rvname(ix->relation));
	}
	if (ix->concurrent && !ix->if_not_exists && !in_tx(l))
		emit(l, R_ROBUST, NULL,
		     "a failed CREATE INDEX CONCURRENTLY leaves an INVALID index%s%s%s: re-running "
		     "fails without IF NOT EXISTS",
		     ix->idxname ? " '" : "", ix->idxname ? ix->idxname : "",
		     ix->idxname ? "'" : "");
	if (ix->unique && !is_new)
		emit(l, R_UNIQUE_MAY_FAIL, NULL,
		     "the unique index on '%s' fails if existing rows hold duplicates",
		     rvname(ix->relation));
	if (!ix->unique && ix->n_index_params > 3)
		emit(l, R_INDEX_COLUMNS, NULL, "index on '%s' has %zu columns",
		     rvname(ix->relation), ix->n_index_params);
	if (ix->idxname)
		put(l, &l->indexes, ix->idxname, NULL);
	if (dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
}

static void drop(lint *l, const PgQuery__DropStmt *d)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t i;

	if (!in_tx(l) && !d->missing_ok)
		emit(l, R_ROBUST, NULL,
		     "DROP in a non-transactional phase fails when re-run: use DROP ... IF EXISTS");
	for (i = 0; i < d->n_objects; i++) {
		const PgQuery__Node *o = d->objects[i];
		const PgQuery__List *li =
		        o->node_case == PG_QUERY__NODE__NODE_LIST ? o->list : NULL;
		const char *name = NULL, *schema = NULL;

		if (li && li->n_items) {
			name = dc_analysis__str(li->items[li->n_items - 1]);
			schema = li->n_items >= 2 ? dc_analysis__str(li->items[li->n_items - 2])
			                          : NULL;
		} else {
			name = dc_analysis__str(o);
		}
		if (!name)
			continue;
		switch (d->remove_type) {
		case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
			if (!set_has(&l->tables, name, NULL))
				emit(l, R_DROP_TABLE, NULL, "dropping table '%s' loses its data",
				     name);
			else
				set_del(&l->tables, name);
			break;
		case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
			if (!d->concurrent && !set_has(&l->indexes, name, NULL)) {
				suggest_concurrently(l, &sb, "index",
				                     d->missing_ok ? " CONCURRENTLY"
				                                   : " CONCURRENTLY IF EXISTS");
				emit(l, R_DROP_INDEX_NONCONC, sb.len ? sb.buf : NULL,
				     "DROP INDEX '%s' takes ACCESS EXCLUSIVE on its table", name);
			}
			break;
		case PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA:
			emit(l, R_DROP_SCHEMA, NULL, "dropping schema '%s'", name);
			if (l->cfg->schema_tenancy)
				emit(l, R_FOREIGN_SCHEMA, NULL,
				     "DROP SCHEMA '%s' under schema tenancy: tenants' schemas are managed by "
				     "deployclaw",
				     name);
			schema = NULL;
			break;
		default:
			break;
		}
		if (schema && l->cfg->schema_tenancy && !allowed_schema(schema) &&
		    d->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_TRIGGER &&
		    d->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_POLICY &&
		    d->remove_type != PG_QUERY__OBJECT_TYPE__OBJECT_TABCONSTRAINT)
			emit(l, R_FOREIGN_SCHEMA, NULL,
			     "'%s.%s' names the schema '%s': under schema tenancy every statement must "
			     "stay in the tenant's schema",
			     schema, name, schema);
	}
	if (dc_strbuf_error(&sb))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&sb);
}

static void rename_stmt(lint *l, const PgQuery__RenameStmt *r)
{
	check_ident(l, r->newname, -1, "new");
	switch (r->rename_type) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN:
		if (r->relation_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE &&
		    !table_is_new(l, r->relation))
			emit(l, R_RENAME_COLUMN, NULL,
			     "renaming '%s.%s' to '%s' breaks running application versions",
			     rvname(r->relation), r->subname ? r->subname : "",
			     r->newname ? r->newname : "");
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
		if (!table_is_new(l, r->relation)) {
			emit(l, R_RENAME_TABLE, NULL,
			     "renaming '%s' to '%s' breaks running application versions",
			     rvname(r->relation), r->newname ? r->newname : "");
			if (l->out->len &&
			    l->out->items[l->out->len - 1].rule == dc_lint__rule(R_RENAME_TABLE))
				put(l, &l->renamed, rvname(r->relation),
				    (void *)(uintptr_t)l->out->len);
		} else if (r->newname) {
			set_del(&l->tables, rvname(r->relation));
			put(l, &l->tables, r->newname, NULL);
		}
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA:
		emit(l, R_RENAME_SCHEMA, NULL, "renaming schema '%s' to '%s'",
		     r->subname ? r->subname : "", r->newname ? r->newname : "");
		break;
	default:
		break;
	}
}

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
				emit_at(l, R_DUPLICATE_COLUMN, at(l, a->location), NULL,
				        "column '%s' is assigned twice in %s", a->name, what);
				break;
			}
		}
	}
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

static void set_stmt(lint *l, const PgQuery__VariableSetStmt *v)
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
			emit(l, R_LOCK_TIMEOUT, NULL,
			     "SET lock_timeout = 0 turns off deployclaw's lock timeout: a blocked DDL "
			     "queues every query behind it");
		l->lock_timeout_set = set && !setting_is_zero(v);
		if (reset)
			l->lock_timeout_set = false;
	} else if (!strcmp(v->name, "statement_timeout")) {
		if (set && setting_is_zero(v))
			emit(l, R_STATEMENT_TIMEOUT, NULL,
			     "SET statement_timeout = 0 turns off deployclaw's statement timeout");
		l->statement_timeout_set = set && !setting_is_zero(v);
		if (reset)
			l->statement_timeout_set = false;
	} else if (!strcmp(v->name, "search_path") && l->cfg->schema_tenancy && !reset) {
		emit(l, R_FOREIGN_SCHEMA, NULL,
		     "SET search_path under schema tenancy: deployclaw points it at the tenant's "
		     "schema");
	}
}

static void tx_reset(lint *l)
{
	set_release(&l->tx_not_valid);
	l->tx_strong_lock = false;
}

static void transaction(lint *l, const PgQuery__TransactionStmt *t)
{
	switch (t->kind) {
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
		if (l->wrapped)
			emit(l, R_TX_CONTROL_WRAPPED, NULL,
			     "BEGIN inside a phase deployclaw already runs in a transaction");
		else if (l->explicit_tx)
			emit(l, R_TX_NESTING, NULL, "BEGIN inside an open transaction");
		l->explicit_tx = true;
		l->begin_off = l->stmt_off;
		tx_reset(l);
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
		if (l->wrapped)
			emit(l, R_TX_CONTROL_WRAPPED, NULL,
			     "%s inside a phase deployclaw runs in a transaction ends it early",
			     t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT
			             ? "COMMIT"
			             : "ROLLBACK");
		else if (!l->explicit_tx)
			emit(l, R_TX_NESTING, NULL, "%s with no open transaction",
			     t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT
			             ? "COMMIT"
			             : "ROLLBACK");
		if (!t->chain)
			l->explicit_tx = false;
		tx_reset(l);
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
		if (l->wrapped)
			emit(l, R_TX_CONTROL_WRAPPED, NULL,
			     "PREPARE TRANSACTION inside a phase deployclaw runs in a transaction");
		l->explicit_tx = false;
		tx_reset(l);
		break;
	default:
		break;
	}
}

static void lint_node(lint *l, const PgQuery__Node *n)
{
	dc_stmt_model *m = l->model;
	size_t i;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		alter_table(l, n->alter_table_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		create_table(l, n->create_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		if (n->create_table_as_stmt->into && n->create_table_as_stmt->into->rel) {
			check_ident(l, n->create_table_as_stmt->into->rel->relname, -1, "table");
			put(l, &l->tables, n->create_table_as_stmt->into->rel->relname, NULL);
		}
		break;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		create_index(l, n->index_stmt);
		break;
	case PG_QUERY__NODE__NODE_DROP_STMT:
		drop(l, n->drop_stmt);
		break;
	case PG_QUERY__NODE__NODE_DROPDB_STMT:
		emit(l, R_DROP_DATABASE, NULL, "dropping database '%s'",
		     n->dropdb_stmt->dbname ? n->dropdb_stmt->dbname : "");
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		rename_stmt(l, n->rename_stmt);
		break;
	case PG_QUERY__NODE__NODE_REINDEX_STMT:
		if (m->nrules && m->rules[0]->op == OP_REINDEX &&
		    n->reindex_stmt->kind != PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_SYSTEM)
			emit(l, R_REINDEX_NONCONC, NULL,
			     "REINDEX holds SHARE on the table and ACCESS EXCLUSIVE on each index it "
			     "rebuilds");
		break;
	case PG_QUERY__NODE__NODE_VACUUM_STMT:
	case PG_QUERY__NODE__NODE_CLUSTER_STMT:
		for (i = 0; i < m->nrules; i++)
			if (m->rules[i]->op == OP_VACUUM_FULL || m->rules[i]->op == OP_CLUSTER)
				emit(l, R_VACUUM_FULL, NULL,
				     "%s rewrites the table under ACCESS EXCLUSIVE",
				     m->rules[i]->what);
		break;
	case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
		if (n->truncate_stmt->behavior == PG_QUERY__DROP_BEHAVIOR__DROP_CASCADE)
			emit(l, R_TRUNCATE_CASCADE, NULL,
			     "TRUNCATE ... CASCADE also empties every table referencing these");
		break;
	case PG_QUERY__NODE__NODE_CREATE_TRIG_STMT:
		check_ident(l, n->create_trig_stmt->trigname, -1, "trigger");
		if (!table_is_new(l, n->create_trig_stmt->relation))
			emit(l, R_TRIGGER_EXISTING, NULL,
			     "CREATE TRIGGER '%s' takes SHARE ROW EXCLUSIVE on '%s'",
			     n->create_trig_stmt->trigname ? n->create_trig_stmt->trigname : "",
			     rvname(n->create_trig_stmt->relation));
		break;
	case PG_QUERY__NODE__NODE_ALTER_DOMAIN_STMT: {
		const PgQuery__AlterDomainStmt *d = n->alter_domain_stmt;

		if (d->subtype && d->subtype[0] == 'C' && d->def &&
		    d->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
		    !d->def->constraint->skip_validation)
			emit(l, R_ALTER_DOMAIN_CONSTRAINT, NULL,
			     "ALTER DOMAIN '%s' ADD CONSTRAINT scans every table using the domain",
			     dc_analysis__last_name(d->type_name, d->n_type_name));
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT: {
		const PgQuery__CreateDomainStmt *d = n->create_domain_stmt;
		const char *name = dc_analysis__last_name(d->domainname, d->n_domainname);
		bool constrained = false;

		for (i = 0; i < d->n_constraints; i++)
			if (d->constraints[i]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
			    (d->constraints[i]->constraint->contype ==
			             PG_QUERY__CONSTR_TYPE__CONSTR_CHECK ||
			     d->constraints[i]->constraint->contype ==
			             PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL))
				constrained = true;
		if (constrained)
			emit(l, R_CREATE_DOMAIN_CONSTRAINT, NULL,
			     "domain '%s' has constraints: adding a column of it rewrites the table",
			     name ? name : "");
		if (name)
			put(l, &l->types, name, (void *)(uintptr_t)(constrained ? 2 : 1));
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_ENUM_STMT:
		if (dc_analysis__last_name(n->create_enum_stmt->type_name,
		                           n->create_enum_stmt->n_type_name))
			put(l, &l->types,
			    dc_analysis__last_name(n->create_enum_stmt->type_name,
			                           n->create_enum_stmt->n_type_name),
			    (void *)1);
		break;
	case PG_QUERY__NODE__NODE_COMPOSITE_TYPE_STMT:
		if (n->composite_type_stmt->typevar && n->composite_type_stmt->typevar->relname)
			put(l, &l->types, n->composite_type_stmt->typevar->relname, (void *)1);
		break;
	case PG_QUERY__NODE__NODE_ALTER_ENUM_STMT: {
		const PgQuery__AlterEnumStmt *e = n->alter_enum_stmt;

		if (e->old_val && e->old_val[0])
			emit(l, R_RENAME_ENUM_VALUE, NULL,
			     "renaming enum value '%s' to '%s' breaks running application versions",
			     e->old_val, e->new_val ? e->new_val : "");
		else if (!(e->new_val_neighbor && e->new_val_neighbor[0]))
			emit(l, R_ENUM_ORDER, NULL,
			     "enum value '%s' is added last in the sort order",
			     e->new_val ? e->new_val : "");
		break;
	}
	case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
		if (!n->refresh_mat_view_stmt->concurrent)
			emit(l, R_REFRESH_MV, NULL,
			     "REFRESH MATERIALIZED VIEW '%s' takes ACCESS EXCLUSIVE: reads wait",
			     rvname(n->refresh_mat_view_stmt->relation));
		break;
	case PG_QUERY__NODE__NODE_VIEW_STMT: {
		const PgQuery__ViewStmt *v = n->view_stmt;
		void *fi = NULL;

		check_ident(l, v->view ? v->view->relname : NULL, -1, "view");
		if (v->view && v->view->relname && set_has(&l->renamed, v->view->relname, &fi) &&
		    fi) {
			/* BC101's exemption: a view keeps the old name working */
			l->out->items[(uintptr_t)fi - 1].severity = DC_SEV_OFF;
			set_del(&l->renamed, v->view->relname);
		}
		for (i = 1; i < v->n_aliases; i++) {
			size_t j;
			const char *a = dc_analysis__str(v->aliases[i]);

			for (j = 0; a && j < i; j++)
				if (dc_analysis__str(v->aliases[j]) &&
				    !strcmp(dc_analysis__str(v->aliases[j]), a)) {
					emit(l, R_DUPLICATE_COLUMN, NULL,
					     "column '%s' appears twice in the column list of view '%s'",
					     a, rvname(v->view));
					break;
				}
		}
		break;
	}
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
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		set_stmt(l, n->variable_set_stmt);
		break;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		transaction(l, n->transaction_stmt);
		break;
	case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
		if (l->cfg->schema_tenancy)
			emit(l, R_FOREIGN_SCHEMA, NULL,
			     "SET SCHEMA '%s' moves an object out of the tenant's schema",
			     n->alter_object_schema_stmt->newschema
			             ? n->alter_object_schema_stmt->newschema
			             : "");
		break;
	case PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT:
		if (l->cfg->schema_tenancy)
			emit(l, R_FOREIGN_SCHEMA, NULL,
			     "CREATE SCHEMA '%s' under schema tenancy: tenants' schemas are managed by "
			     "deployclaw",
			     n->create_schema_stmt->schemaname ? n->create_schema_stmt->schemaname
			                                       : "");
		break;
	default:
		break;
	}
}

/* Rules that look at the model rather than the tree. */
static void lint_model(lint *l, const PgQuery__Node *n)
{
	dc_stmt_model *m = l->model;
	bool existing = false;
	size_t i;

	if (!m->transactional && !m->transaction_control) {
		const char *what = dc_analysis__autocommit_what(n);

		if (l->explicit_tx)
			emit(l, R_NONTX_IN_BLOCK, NULL, "%s cannot run inside a transaction block",
			     what ? what : m->kind);
		else if (l->wrapped && l->nnontx < sizeof(l->nontx) / sizeof(l->nontx[0])) {
			l->nontx[l->nnontx].off = l->stmt_off;
			l->nontx[l->nnontx].stmt_i = l->stmt_i;
			l->nontx[l->nnontx].what = what ? what : m->kind;
			l->nnontx++;
		}
	}
	if (n->node_case != PG_QUERY__NODE__NODE_VARIABLE_SET_STMT &&
	    n->node_case != PG_QUERY__NODE__NODE_TRANSACTION_STMT)
		l->substantive++;
	for (i = 0; i < m->nrels; i++)
		if (!set_has(&l->tables, m->rels[i].name, NULL) &&
		    strcmp(m->rels[i].role, "new table") != 0)
			existing = true;
	if (existing && m->lock >= DC_LOCK_SHARE_UPDATE_EXCLUSIVE &&
	    n->node_case != PG_QUERY__NODE__NODE_LOCK_STMT) {
		if (l->cfg->lock_timeout_ms <= 0 && !l->lock_timeout_set && !l->lock_reported) {
			emit(l, R_LOCK_TIMEOUT, "SET lock_timeout = '2s';",
			     "%s takes %s with no lock_timeout set", m->kind,
			     dc_lock_mode_name(m->lock));
			l->lock_reported = true;
		}
		if (l->cfg->statement_timeout_ms <= 0 && !l->statement_timeout_set &&
		    !l->stmt_reported) {
			emit(l, R_STATEMENT_TIMEOUT, "SET statement_timeout = '5min';",
			     "%s runs with no statement_timeout set", m->kind);
			l->stmt_reported = true;
		}
	}
	if (m->lock >= DC_LOCK_SHARE_ROW_EXCLUSIVE && existing)
		l->tx_strong_lock = in_tx(l) ? true : l->tx_strong_lock;
	if (l->cfg->schema_tenancy)
		walk_rangevars(l, (const ProtobufCMessage *)n, 0);
}

/* ------------------------------------------------------------------------ */
/* Ignore comments.                                                         */

static size_t parse_ignores(const char *t, size_t s, size_t e, ignore *ig, size_t max)
{
	static const char tag[] = "deployclaw:ignore";
	size_t n = 0, tl = sizeof(tag) - 1;

	while (s + tl <= e) {
		const char *p = memchr(t + s, 'd', e - s);
		size_t i;

		if (!p)
			break;
		i = (size_t)(p - t);
		if (i + tl > e)
			break;
		if (strncmp(p, tag, tl) != 0) {
			s = i + 1;
			continue;
		}
		i += tl;
		while (i < e && t[i] != '\n' && !(t[i] == '*' && i + 1 < e && t[i + 1] == '/')) {
			size_t b;

			while (i < e && (t[i] == ' ' || t[i] == '\t' || t[i] == ','))
				i++;
			b = i;
			while (i < e && t[i] != ' ' && t[i] != '\t' && t[i] != ',' &&
			       t[i] != '\n' && t[i] != '\r' &&
			       !(t[i] == '*' && i + 1 < e && t[i + 1] == '/'))
				i++;
			if (i > b && n < max) {
				size_t len = i - b < sizeof(ig[n].name) - 1
				                     ? i - b
				                     : sizeof(ig[n].name) - 1;

				memcpy(ig[n].name, t + b, len);
				ig[n].name[len] = '\0';
				ig[n].rule = dc_lint__rule_index(ig[n].name);
				ig[n].off = (size_t)(p - t);
				ig[n].used = false;
				n++;
			}
			while (i < e && (t[i] == '\r'))
				i++;
		}
		s = i;
	}
	return n;
}

static void report_unused(lint *l, ignore *ig, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ig[i].used)
			continue;
		if (ig[i].rule < 0)
			emit_at(l, R_UNUSED_IGNORE, ig[i].off, NULL,
			        "'deployclaw:ignore %s' names no known rule", ig[i].name);
		else
			emit_at(l, R_UNUSED_IGNORE, ig[i].off, NULL,
			        "'deployclaw:ignore %s' silences nothing: %s does not fire on the next "
			        "statement",
			        ig[i].name, dc_lint__rule(ig[i].rule)->id);
	}
}

/* Silences findings [from, len) that an ignore names. */
static void apply_ignores(lint *l, size_t from, ignore *ig, size_t n)
{
	size_t i, k;

	for (i = from; i < l->out->len; i++)
		for (k = 0; k < n; k++)
			if (ig[k].rule >= 0 && l->out->items[i].rule == dc_lint__rule(ig[k].rule) &&
			    l->out->items[i].severity != DC_SEV_OFF) {
				l->out->items[i].severity = DC_SEV_OFF;
				ig[k].used = true;
			}
}

/* ------------------------------------------------------------------------ */
/* Blocks.                                                                  */

typedef struct block {
	const char *text;
	const char *file;
	int line, col;
	bool exact;
	const dc_statement *stmts;
	size_t nstmts;
	bool wrapped;
	dc_stmt_list *models; /* NULL: models are built and dropped per statement */
} block;

/*
 * Large blocks (a 100,000-statement file) are parsed in chunks of whole
 * statements, cut where the scanner ends a statement: each chunk's tree is
 * linted and freed before the next, so memory stays at one chunk's tree, and
 * other threads parse the chunks ahead while this one lints in order.
 */
#define CHUNK_MIN_TEXT    (256u * 1024u) /* smaller blocks are parsed at once */
#define CHUNK_TEXT        (32u * 1024u)
#define CHUNK_MAX_WORKERS 4

typedef struct chunk {
	size_t off, len;
	dc_arena arena;
	PgQuery__ParseResult *tree; /* in arena */
	char *error;                /* the parser's message, or NULL */
	int cursorpos;              /* of the error, 1-based characters in the chunk */
	int rc;                     /* DC_ENOMEM */
	bool ready;
} chunk;

static void chunk_parse(const char *text, chunk *c)
{
	char *sql = dc_strndup(text + c->off, c->len);
	PgQueryProtobufParseResult res;

	c->tree = NULL;
	c->error = NULL;
	c->cursorpos = 0;
	c->rc = 0;
	if (!sql) {
		c->rc = DC_ENOMEM;
		return;
	}
	res = pg_query_parse_protobuf(sql);
	if (res.error) {
		c->cursorpos = res.error->cursorpos;
		if (!(c->error =
		              dc_strdup(res.error->message ? res.error->message : "syntax error")))
			c->rc = DC_ENOMEM;
	} else if (!(c->tree = dc_analysis__unpack(&c->arena, &res.parse_tree))) {
		c->rc = DC_ENOMEM;
	}
	pg_query_free_protobuf_parse_result(res);
	free(sql);
}

typedef struct pipeline {
	const char *text;
	chunk *slots;
	size_t nslots;
	const size_t *cuts; /* chunk i is [cuts[i], cuts[i + 1]) */
	size_t nchunks;
	size_t next;     /* the next chunk a worker takes */
	size_t consumed; /* chunks linted: slot i % nslots is free for i < consumed + nslots */
	bool stop;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
} pipeline;

static void *chunk_worker(void *arg)
{
	pipeline *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		size_t i;
		chunk *c;

		while (!p->stop && p->next < p->nchunks && p->next >= p->consumed + p->nslots)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop || p->next >= p->nchunks)
			break;
		i = p->next++;
		c = &p->slots[i % p->nslots];
		pthread_mutex_unlock(&p->mu);
		c->off = p->cuts[i];
		c->len = p->cuts[i + 1] - p->cuts[i];
		chunk_parse(p->text, c);
		pthread_mutex_lock(&p->mu);
		c->ready = true;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Whether `word` (lower case) occurs in `text`, in any case. */
static bool has_word_ci(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (; *text; text++)
		if ((*text | 0x20) == word[0] && strncasecmp(text, word, n) == 0)
			return true;
	return false;
}

/*
 * Chunk boundaries: statement starts (just after a top-level ';'), about
 * CHUNK_TEXT apart. Fewer than two chunks, or a text the scanner rejects
 * (the parser then reports the error), returns 0.
 */
static size_t chunk_cuts(const char *text, size_t len, size_t **cuts)
{
	PgQuerySplitResult sr;
	size_t n = 0, last = 0;
	int i;

	*cuts = NULL;
	if (len < CHUNK_MIN_TEXT)
		return 0;
	/* The scanner ends a statement at every top-level ';', also inside a
	 * SQL-standard body (CREATE FUNCTION ... BEGIN ATOMIC ...; ...; END):
	 * a text that may hold one is parsed at once. */
	if (has_word_ci(text, "atomic"))
		return 0;
	sr = pg_query_split_with_scanner(text);
	if (!sr.error && sr.n_stmts > 1 &&
	    (*cuts = dc_malloc_array(len / CHUNK_TEXT + 2, sizeof(**cuts))) != NULL) {
		(*cuts)[n++] = 0;
		for (i = 1; i < sr.n_stmts; i++) {
			size_t at = (size_t)sr.stmts[i]->stmt_location;

			if (at > last && at - last >= CHUNK_TEXT && at < len &&
			    n < len / CHUNK_TEXT + 1) {
				(*cuts)[n++] = at;
				last = at;
			}
		}
		(*cuts)[n] = len;
	}
	pg_query_free_split_result(sr);
	if (n < 2) {
		free(*cuts);
		*cuts = NULL;
		return 0;
	}
	return n;
}

/* The syntax error of a chunk (or of the whole block: base 0). */
static void syntax_finding(lint *l, size_t base, const char *message, int cursorpos)
{
	size_t off = base, chars;

	if (cursorpos > 0) {
		chars = (size_t)cursorpos - 1;
		for (; off < l->textlen; off++) {
			if (((unsigned char)l->text[off] & 0xC0) == 0x80)
				continue;
			if (chars == 0)
				break;
			chars--;
		}
	}
	l->stmt_i = 0;
	emit_at(l, R_SYNTAX, off, NULL, "%s", message ? message : "syntax error");
}

/* Lints the statements of one tree, parsed from the text at l->base. */
static int lint_tree(lint *l, const block *b, const PgQuery__ParseResult *tree, size_t *prev_end)
{
	ignore ig[MAX_IGNORES];
	size_t i, nig;
	int rc = 0;

	for (i = 0; i < tree->n_stmts && !l->failed; i++) {
		const PgQuery__RawStmt *raw = tree->stmts[i];
		size_t loc = l->base + (raw->stmt_location > 0 ? (size_t)raw->stmt_location : 0);
		size_t end = raw->stmt_len > 0 ? loc + (size_t)raw->stmt_len : l->textlen;
		size_t first = l->out->len;
		dc_stmt_model model, *mp = &model;

		if (!raw->stmt)
			continue;
		if (end > l->textlen || (raw->stmt_len == 0 && l->cur_chunk_end))
			end = l->cur_chunk_end ? l->cur_chunk_end : l->textlen;
		l->stmt_off = skip_blank(l->text, loc, end);
		l->stmt_end = end;
		l->node = raw->stmt;
		nig = parse_ignores(l->text, loc, l->stmt_off, ig, MAX_IGNORES);
		if (b->models) {
			dc_stmt_model *nv;

			if (b->models->len == b->models->alloc) {
				size_t na = b->models->alloc ? b->models->alloc * 2 : 16;

				if (!(nv = dc_realloc_array(b->models->items, na, sizeof(*nv))))
					return DC_ENOMEM;
				b->models->items = nv;
				b->models->alloc = na;
			}
			mp = &b->models->items[b->models->len];
		}
		if ((rc = dc_analysis__model(raw->stmt, l->text, l->stmt_off, end - l->stmt_off,
		                             mp)) != 0)
			return rc;
		mp->file = b->file;
		pos_of(l, l->stmt_off, &mp->line, &mp->col);
		l->model = mp;
		lint_node(l, raw->stmt);
		lint_model(l, raw->stmt);
		if (nig) {
			apply_ignores(l, first, ig, nig);
			report_unused(l, ig, nig);
		}
		if (b->models)
			b->models->len++;
		else
			dc_analysis__model_release(mp);
		l->model = NULL;
		*prev_end = end;
		if (l->stmts && l->stmt_i + 1 < l->nstmts)
			l->stmt_i++;
	}
	return 0;
}

/*
 * A syntax error in chunk k of a large block: what the chunks before it
 * found is dropped, so the block reports its syntax error alone, as a block
 * parsed at once does.
 */
static void drop_block_results(lint *l, const block *b, size_t findings_from, size_t models_from)
{
	size_t i;

	for (i = findings_from; i < l->out->len; i++)
		l->out->items[i].severity = DC_SEV_OFF;
	if (b->models) {
		for (i = models_from; i < b->models->len; i++)
			dc_analysis__model_release(&b->models->items[i]);
		b->models->len = models_from;
	}
}

/* Parses the chunks on other threads (when there are CPUs for it) and lints them in order. */
static int lint_chunks(lint *l,
                       const block *b,
                       const size_t *cuts,
                       size_t nchunks,
                       size_t *prev_end)
{
	pipeline p;
	pthread_t threads[CHUNK_MAX_WORKERS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nworkers = cpus < 2                   ? 0
	                  : cpus > CHUNK_MAX_WORKERS ? CHUNK_MAX_WORKERS
	                                             : (size_t)cpus;
	size_t started = 0, i, findings_from = l->out->len;
	size_t models_from = b->models ? b->models->len : 0;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	p.text = l->text;
	p.cuts = cuts;
	p.nchunks = nchunks;
	p.nslots = nworkers ? 2 * nworkers : 1;
	if (!(p.slots = calloc(p.nslots, sizeof(*p.slots))))
		return DC_ENOMEM;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.work, NULL);
	pthread_cond_init(&p.done, NULL);
	for (i = 0; i < nworkers && i < nchunks; i++)
		if (pthread_create(&threads[started], NULL, chunk_worker, &p) == 0)
			started++;
	for (i = 0; i < nchunks && !rc && !l->failed; i++) {
		chunk *c = &p.slots[i % p.nslots];

		if (started == 0) { /* no thread: parse here */
			c->off = cuts[i];
			c->len = cuts[i + 1] - cuts[i];
			chunk_parse(l->text, c);
		} else {
			pthread_mutex_lock(&p.mu);
			while (!c->ready)
				pthread_cond_wait(&p.done, &p.mu);
			pthread_mutex_unlock(&p.mu);
		}
		l->base = c->off;
		l->cur_chunk_end = c->off + c->len;
		if (c->rc) {
			rc = c->rc;
		} else if (c->error) {
			drop_block_results(l, b, findings_from, models_from);
			syntax_finding(l, c->off, c->error, c->cursorpos);
			l->syntax_error = true;
		} else {
			rc = lint_tree(l, b, c->tree, prev_end);
		}
		free(c->error);
		c->error = NULL;
		c->tree = NULL;
		dc_arena_reset(&c->arena);
		pthread_mutex_lock(&p.mu);
		c->ready = false;
		p.consumed++;
		if (l->syntax_error || rc || l->failed)
			p.stop = true;
		pthread_cond_broadcast(&p.work);
		pthread_mutex_unlock(&p.mu);
		if (l->syntax_error)
			break;
	}
	pthread_mutex_lock(&p.mu);
	p.stop = true;
	pthread_cond_broadcast(&p.work);
	pthread_mutex_unlock(&p.mu);
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	for (i = 0; i < p.nslots; i++) {
		free(p.slots[i].error);
		dc_arena_release(&p.slots[i].arena);
	}
	free(p.slots);
	pthread_cond_destroy(&p.done);
	pthread_cond_destroy(&p.work);
	pthread_mutex_destroy(&p.mu);
	l->base = 0;
	l->cur_chunk_end = 0;
	return rc;
}

/* Lints one block. */
static int lint_block(lint *l, const block *b)
{
	ignore ig[MAX_IGNORES];
	size_t i, nig, prev_end = 0, *cuts = NULL, nchunks;
	int rc = 0;

	l->file = b->file;
	l->text = b->text;
	l->textlen = strlen(b->text);
	l->line0 = b->line > 0 ? b->line : 1;
	l->col0 = b->col > 0 ? b->col : 1;
	l->exact = b->exact;
	l->stmts = b->stmts;
	l->nstmts = b->nstmts;
	l->stmt_i = 0;
	l->cur_off = 0;
	l->cur_line = l->line0;
	l->cur_col = l->col0;
	l->wrapped = b->wrapped;
	l->explicit_tx = false;
	l->lock_timeout_set = l->statement_timeout_set = false;
	l->lock_reported = l->stmt_reported = false;
	l->nnontx = l->substantive = 0;
	l->base = 0;
	l->cur_chunk_end = 0;
	l->syntax_error = false;
	tx_reset(l);
	set_release(&l->dropped_cons);

	if ((nchunks = chunk_cuts(l->text, l->textlen, &cuts)) > 0) {
		rc = lint_chunks(l, b, cuts, nchunks, &prev_end);
		free(cuts);
		if (rc || l->syntax_error)
			goto out;
	} else {
		PgQueryProtobufParseResult res;

		/* nothing points into earlier blocks' trees (column types are copies) */
		dc_arena_reset(&l->trees);
		res = pg_query_parse_protobuf(b->text);
		PgQuery__ParseResult *tree = NULL;

		if (res.error) {
			syntax_finding(l, 0, res.error->message, res.error->cursorpos);
			l->syntax_error = true;
		} else if (!(tree = dc_analysis__unpack(&l->trees, &res.parse_tree))) {
			rc = DC_ENOMEM;
		}
		pg_query_free_protobuf_parse_result(res);
		if (rc || l->syntax_error)
			goto out;
		if ((rc = lint_tree(l, b, tree, &prev_end)) != 0)
			goto out;
	}
	/* ignores after the last statement silence nothing */
	nig = parse_ignores(l->text, prev_end, l->textlen, ig, MAX_IGNORES);
	if (nig) {
		l->stmt_off = prev_end;
		report_unused(l, ig, nig);
	}
	if (l->substantive > l->nnontx)
		for (i = 0; i < l->nnontx; i++) {
			l->stmt_off = l->nontx[i].off;
			l->stmt_i = l->nontx[i].stmt_i;
			emit(l, R_NONTX_IN_PHASE, NULL,
			     "%s cannot run in a transaction: deployclaw runs it alone, committing the "
			     "statements before it; give it a phase with 'transaction: false'",
			     l->nontx[i].what);
		}
	if (l->explicit_tx) {
		l->stmt_off = l->begin_off;
		emit(l, R_TX_UNCOMMITTED, "COMMIT;", "BEGIN with no COMMIT before the end");
	}
out:
	if (!rc && l->failed)
		rc = l->failed;
	return rc;
}

static void lint_init(lint *l,
                      const dc_lint_config *cfg,
                      const dc_lint_config *dflt,
                      dc_finding_list *out)
{
	memset(l, 0, sizeof(*l));
	l->cfg = cfg ? cfg : dflt;
	l->out = out;
	dc_strbuf_init(&l->key, 0);
}

static void lint_release(lint *l)
{
	set_release(&l->tables);
	set_release(&l->indexes);
	set_release(&l->types);
	set_release(&l->coltypes);
	set_release(&l->nn_checks);
	set_release(&l->validated);
	set_release(&l->fks);
	set_release(&l->renamed);
	set_release(&l->tx_not_valid);
	set_release(&l->dropped_cons);
	dc_arena_release(&l->trees);
	dc_arena_release(&l->keep);
	dc_strbuf_release(&l->key);
}

int dc_lint_sql(const char *sql,
                const char *file,
                const dc_lint_config *cfg,
                dc_finding_list *out,
                dc_error *err)
{
	dc_lint_config dflt;
	lint l;
	block b;
	size_t from = out->len;
	int rc;

	if (!cfg)
		dc_lint_config_init(&dflt);
	lint_init(&l, cfg, &dflt, out);
	memset(&b, 0, sizeof(b));
	b.text = sql ? sql : "";
	b.file = file;
	b.line = b.col = 1;
	b.exact = true;
	b.wrapped = true;
	rc = lint_block(&l, &b);
	compact(out, from);
	lint_release(&l);
	if (rc)
		return dc_error_set(err, rc, "out of memory linting '%s'", file ? file : "sql");
	return 0;
}

int dc_pg_analyze(const char *sql,
                  const char *file,
                  int line,
                  int col,
                  dc_stmt_list *out,
                  dc_error *err)
{
	PgQueryProtobufParseResult res;
	PgQuery__ParseResult *tree = NULL;
	dc_lint_config cfg;
	dc_finding_list sink = { NULL, 0, 0 };
	lint l;
	block b;
	int rc = 0;

	/* a syntax error is an error here, not a finding */
	res = pg_query_parse_protobuf(sql ? sql : "");
	if (res.error) {
		size_t off = 0;
		int pos = res.error->cursorpos, ln = line > 0 ? line : 1, cl = col > 0 ? col : 1;
		size_t chars = pos > 0 ? (size_t)pos - 1 : 0;

		for (off = 0; sql[off] && (chars || ((unsigned char)sql[off] & 0xC0) == 0x80);
		     off++) {
			if (((unsigned char)sql[off] & 0xC0) == 0x80)
				continue;
			chars--;
			if (sql[off] == '\n') {
				ln++;
				cl = 1;
			} else {
				cl++;
			}
		}
		rc = dc_error_set_at(err, DC_EPARSE, file ? file : "", ln, cl, "%s",
		                     res.error->message ? res.error->message : "syntax error");
		pg_query_free_protobuf_parse_result(res);
		return rc;
	}
	pg_query_free_protobuf_parse_result(res);
	(void)tree;
	/* analysed through the linter with every rule off: one code path */
	memset(&cfg, 0, sizeof(cfg));
	lint_init(&l, &cfg, NULL, &sink);
	memset(&b, 0, sizeof(b));
	b.text = sql;
	b.file = file;
	b.line = line;
	b.col = col;
	b.exact = true;
	b.wrapped = true;
	b.models = out;
	rc = lint_block(&l, &b);
	if (rc == 0 && l.syntax_error) /* parsed at once above, not in its chunks: a bad cut */
		rc = dc_error_set_at(err, DC_EPARSE, file ? file : "", line, col,
		                     "the statements could not be analysed piece by piece");
	else if (rc)
		rc = dc_error_set(err, rc, "out of memory analysing '%s'", file ? file : "sql");
	lint_release(&l);
	dc_finding_list_release(&sink);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Migrations: phases, downs and their inverses.                            */

/* Keys naming what a statement does, for comparing a down with an up's inverse. */
static void stmt_keys(lint *l,
                      const PgQuery__Node *n,
                      strset *into,
                      bool check,
                      const strset *against,
                      bool *all_found)
{
	dc_strbuf k = DC_STRBUF_INIT;
	size_t i;

#define KEY_DONE()                                          \
	do {                                                \
		if (check) {                                \
			if (!set_has(against, k.buf, NULL)) \
				*all_found = false;         \
		} else {                                    \
			put(l, into, k.buf, NULL);          \
		}                                           \
		dc_strbuf_reset(&k);                        \
	} while (0)

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_DROP_STMT:
		for (i = 0; i < n->drop_stmt->n_objects; i++) {
			const PgQuery__Node *o = n->drop_stmt->objects[i];
			const char *name =
			        o->node_case == PG_QUERY__NODE__NODE_LIST && o->list->n_items
			                ? dc_analysis__str(o->list->items[o->list->n_items - 1])
			                : dc_analysis__str(o);

			dc_strbuf_addf(&k, "drop:%d:%s", (int)n->drop_stmt->remove_type,
			               name ? name : "");
			KEY_DONE();
		}
		break;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		for (i = 0; i < n->alter_table_stmt->n_cmds; i++) {
			const PgQuery__AlterTableCmd *c;
			const char *name;

			if (n->alter_table_stmt->cmds[i]->node_case !=
			    PG_QUERY__NODE__NODE_ALTER_TABLE_CMD)
				continue;
			c = n->alter_table_stmt->cmds[i]->alter_table_cmd;
			name = c->name;
			if (c->def && c->def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
				name = c->def->constraint->conname;
			else if (c->def && c->def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
				name = c->def->column_def->colname;
			else if (c->def && c->def->node_case == PG_QUERY__NODE__NODE_PARTITION_CMD)
				name = rvname(c->def->partition_cmd->name);
			dc_strbuf_addf(&k, "alter:%s:%d:%s", rvname(n->alter_table_stmt->relation),
			               (int)c->subtype, name ? name : "");
			KEY_DONE();
		}
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		dc_strbuf_addf(&k, "rename:%d:%s:%s:%s", (int)n->rename_stmt->rename_type,
		               n->rename_stmt->subname ? n->rename_stmt->subname
		                                       : rvname(n->rename_stmt->relation),
		               n->rename_stmt->newname ? n->rename_stmt->newname : "",
		               n->rename_stmt->subname ? rvname(n->rename_stmt->relation) : "");
		KEY_DONE();
		break;
	default:
		break;
	}
#undef KEY_DONE
	if (dc_strbuf_error(&k))
		l->failed = DC_ENOMEM;
	dc_strbuf_release(&k);
}

static bool is_schema_change(const dc_stmt_model *m)
{
	size_t i;

	for (i = 0; i < m->nrules; i++) {
		int op = m->rules[i]->op;

		if (op != OP_DML && op != OP_SELECT && op != OP_SET && op != OP_TRANSACTION &&
		    op != OP_VACUUM && op != OP_ANALYZE && op != OP_REFRESH_MV &&
		    op != OP_REFRESH_MV_CONCURRENTLY && op != OP_LOCK_TABLE && op != OP_COMMENT &&
		    op != OP_GRANT)
			return true;
	}
	return false;
}

/* Down checks of one phase, given the up's models. */
static int check_down(lint *l, const dc_phase *ph, const dc_stmt_list *up, size_t mig_nphases)
{
	dc_strbuf inv = DC_STRBUF_INIT;
	strset downkeys = { NULL, NULL, 0, 0 };
	dc_arena scratch = DC_ARENA_INIT;
	bool changes = false, all_rev = true;
	size_t i;
	int rc = 0;

	(void)mig_nphases;
	for (i = 0; i < up->len; i++) {
		if (is_schema_change(&up->items[i]))
			changes = true;
		if (!up->items[i].reversible)
			all_rev = false;
	}
	/* the inverse, last statement first */
	for (i = up->len; i-- > 0;)
		if (up->items[i].inverse) {
			dc_strbuf_adds(&inv, up->items[i].inverse);
			dc_strbuf_adds(&inv, ";\n");
		}
	if (dc_strbuf_error(&inv)) {
		rc = DC_ENOMEM;
		goto out;
	}
	l->file = ph->up.file;
	l->exact = false;
	l->stmts = ph->up.stmts;
	l->nstmts = ph->up.nstmts;
	l->stmt_i = 0;
	l->stmt_off = 0;
	l->line0 = ph->up.line;
	l->col0 = ph->up.col;
	if (!ph->down.text) {
		if (changes) {
			const dc_lint_rule *r = dc_lint__rule(R_MISSING_DOWN);
			dc_severity sev = l->cfg->severity[R_MISSING_DOWN];
			size_t before = l->out->len;

			if (sev != DC_SEV_OFF) {
				emit(l, R_MISSING_DOWN, all_rev && inv.len ? inv.buf : NULL,
				     "phase '%s' changes the schema but has no down%s", ph->name,
				     all_rev ? ""
				             : " (some statements have no mechanical inverse)");
				if (l->cfg->require_down && l->out->len > before)
					l->out->items[before].severity = DC_SEV_ERROR;
			}
			(void)r;
		}
		goto out;
	}
	/* keys of what the down does */
	{
		PgQueryProtobufParseResult res = pg_query_parse_protobuf(ph->down.text);
		PgQuery__ParseResult *tree = NULL;

		if (!res.error)
			tree = dc_analysis__unpack(&scratch, &res.parse_tree);
		for (i = 0; tree && i < tree->n_stmts; i++)
			if (tree->stmts[i]->stmt)
				stmt_keys(l, tree->stmts[i]->stmt, &downkeys, false, NULL, NULL);
		dc_arena_reset(&scratch);
		pg_query_free_protobuf_parse_result(res);
	}
	/* each up statement's inverse must be in the down */
	for (i = 0; i < up->len; i++) {
		PgQueryProtobufParseResult res;
		PgQuery__ParseResult *tree = NULL;
		bool found = true;
		size_t k;

		if (!up->items[i].inverse)
			continue;
		res = pg_query_parse_protobuf(up->items[i].inverse);
		if (!res.error)
			tree = dc_analysis__unpack(&scratch, &res.parse_tree);
		for (k = 0; tree && k < tree->n_stmts; k++)
			if (tree->stmts[k]->stmt)
				stmt_keys(l, tree->stmts[k]->stmt, NULL, true, &downkeys, &found);
		dc_arena_reset(&scratch);
		pg_query_free_protobuf_parse_result(res);
		if (!found) {
			l->stmt_i = i < ph->up.nstmts ? i : 0;
			emit(l, R_DOWN_NOT_INVERSE, up->items[i].inverse,
			     "the down of phase '%s' does not undo this %s", ph->name,
			     up->items[i].kind);
		}
	}
out:
	dc_arena_release(&scratch);
	set_release(&downkeys);
	dc_strbuf_release(&inv);
	if (!rc && l->failed)
		rc = l->failed;
	return rc;
}

int dc_lint_migration(const dc_migration *m,
                      const dc_lint_config *cfg,
                      dc_finding_list *out,
                      dc_error *err)
{
	dc_lint_config dflt;
	dc_stmt_list up = { NULL, 0, 0 };
	lint l;
	size_t i, from = out->len;
	int rc = 0;

	if (!cfg)
		dc_lint_config_init(&dflt);
	lint_init(&l, cfg, &dflt, out);
	for (i = 0; i < m->nphases && !rc; i++) {
		const dc_phase *ph = &m->phases[i];
		block b;

		memset(&b, 0, sizeof(b));
		b.text = ph->up.text ? ph->up.text : "";
		b.file = ph->up.file ? ph->up.file : m->path;
		b.line = ph->up.line;
		b.col = ph->up.col;
		b.exact = m->layout != DC_LAYOUT_NATIVE;
		b.stmts = ph->up.stmts;
		b.nstmts = ph->up.nstmts;
		b.wrapped = ph->transactional;
		b.models = &up;
		if ((rc = lint_block(&l, &b)) != 0)
			break;
		if ((rc = check_down(&l, ph, &up, m->nphases)) != 0)
			break;
		dc_stmt_list_release(&up);
	}
	/* the downs run in reverse phase order, after every up: what the ups
	 * created (tables, indexes, columns) is known, so dropping it again is
	 * not reported as data loss */
	for (i = m->nphases; i-- > 0 && !rc;) {
		const dc_phase *ph = &m->phases[i];
		block b;

		if (!ph->down.text)
			continue;
		memset(&b, 0, sizeof(b));
		b.text = ph->down.text;
		b.file = ph->down.file ? ph->down.file : m->path;
		b.line = ph->down.line;
		b.col = ph->down.col;
		b.exact = m->layout != DC_LAYOUT_NATIVE;
		b.stmts = ph->down.stmts;
		b.nstmts = ph->down.nstmts;
		b.wrapped = ph->transactional;
		rc = lint_block(&l, &b);
	}
	dc_stmt_list_release(&up);
	compact(out, from);
	lint_release(&l);
	if (rc)
		return dc_error_set(err, rc, "out of memory linting '%s'", m->path ? m->path : "");
	return 0;
}
