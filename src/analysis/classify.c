/*
 * dc_pg_classify: which statements PostgreSQL refuses inside a transaction
 * block, read from libpg_query's typed protobuf-c parse tree.
 *
 * The list mirrors the server's PreventInTransactionBlock() callers (PG 15).
 * Where the server decides at run time (DROP SUBSCRIPTION refuses only when
 * the subscription has a replication slot) the statement is classed as
 * autocommit-only: running it outside a transaction always works, running it
 * inside one may not.
 */
#include <pg_query/pg_query.pb-c.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>

#include <deployclaw/analysis.h>

#include "analysis_internal.h"
#include "util/text.h"
#include "util/util.h"

/* 1-based line and column (in characters) of the byte `off` of `s`. */
static void text_pos(const char *s, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	dc_text_advance(s, strnlen(s, off), line, col);
}

/* Byte offset of the 0-based character `chars` of `s`. */
static size_t char_to_byte(const char *s, size_t chars)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		if (((unsigned char)s[i] & 0xC0) == 0x80)
			continue;
		if (chars == 0)
			return i;
		chars--;
	}
	return i;
}

static int copy_name(char out[DC_PG_NAME_MAX], const char *name, dc_error *err)
{
	size_t len = name ? strlen(name) : 0;

	if (len >= DC_PG_NAME_MAX)
		return dc_error_set(err, DC_ELIMIT, "identifier longer than %d bytes",
		                    DC_PG_NAME_MAX - 1);
	if (len)
		memcpy(out, name, len);
	out[len] = '\0';
	return 0;
}

/* A DefElem option's boolean value as the server's defGetBoolean reads it:
 * no argument is true. */
static bool def_bool(const PgQuery__DefElem *d)
{
	const PgQuery__Node *a = d->arg;
	const char *s;

	if (!a)
		return true;
	switch (a->node_case) {
	case PG_QUERY__NODE__NODE_BOOLEAN:
		return a->boolean->boolval;
	case PG_QUERY__NODE__NODE_INTEGER:
		return a->integer->ival != 0;
	case PG_QUERY__NODE__NODE_STRING:
		s = a->string->sval;
		return !(strcasecmp(s, "false") == 0 || strcasecmp(s, "off") == 0 ||
		         strcasecmp(s, "no") == 0 || strcmp(s, "0") == 0);
	default:
		return true;
	}
}

/* The value of option `name` in a list of DefElem nodes, or `dflt`. */
static bool option_bool(PgQuery__Node **opts, size_t n, const char *name, bool dflt)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (opts[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
		    strcasecmp(opts[i]->def_elem->defname, name) == 0)
			return def_bool(opts[i]->def_elem);
	return dflt;
}

static bool has_option(PgQuery__Node **opts, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (opts[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
		    strcasecmp(opts[i]->def_elem->defname, name) == 0)
			return true;
	return false;
}

static const char *autocommit_what(const PgQuery__Node *n)
{
	size_t i;

	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		return n->index_stmt->concurrent ? "CREATE INDEX CONCURRENTLY" : NULL;
	case PG_QUERY__NODE__NODE_DROP_STMT:
		return n->drop_stmt->concurrent && n->drop_stmt->remove_type ==
		                                           PG_QUERY__OBJECT_TYPE__OBJECT_INDEX
		               ? "DROP INDEX CONCURRENTLY"
		               : NULL;
	case PG_QUERY__NODE__NODE_REINDEX_STMT: {
		const PgQuery__ReindexStmt *r = n->reindex_stmt;

		if (option_bool(r->params, r->n_params, "concurrently", false))
			return "REINDEX CONCURRENTLY";
		if (r->kind == PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_SCHEMA ||
		    r->kind == PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_SYSTEM ||
		    r->kind == PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_DATABASE)
			return "REINDEX SCHEMA/SYSTEM/DATABASE";
		return NULL;
	}
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		for (i = 0; i < n->alter_table_stmt->n_cmds; i++) {
			const PgQuery__Node *c = n->alter_table_stmt->cmds[i];

			if (c->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD &&
			    c->alter_table_cmd->subtype ==
			            PG_QUERY__ALTER_TABLE_TYPE__AT_DetachPartition &&
			    c->alter_table_cmd->def &&
			    c->alter_table_cmd->def->node_case ==
			            PG_QUERY__NODE__NODE_PARTITION_CMD &&
			    c->alter_table_cmd->def->partition_cmd->concurrent)
				return "DETACH PARTITION CONCURRENTLY";
		}
		return NULL;
	case PG_QUERY__NODE__NODE_VACUUM_STMT:
		return n->vacuum_stmt->is_vacuumcmd ? "VACUUM" : NULL;
	case PG_QUERY__NODE__NODE_CLUSTER_STMT:
		return n->cluster_stmt->relation ? NULL : "CLUSTER without a table";
	case PG_QUERY__NODE__NODE_CREATEDB_STMT:
		return "CREATE DATABASE";
	case PG_QUERY__NODE__NODE_DROPDB_STMT:
		return "DROP DATABASE";
	case PG_QUERY__NODE__NODE_ALTER_DATABASE_STMT:
		return has_option(n->alter_database_stmt->options,
		                  n->alter_database_stmt->n_options, "tablespace")
		               ? "ALTER DATABASE SET TABLESPACE"
		               : NULL;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_SPACE_STMT:
		return "CREATE TABLESPACE";
	case PG_QUERY__NODE__NODE_DROP_TABLE_SPACE_STMT:
		return "DROP TABLESPACE";
	case PG_QUERY__NODE__NODE_ALTER_SYSTEM_STMT:
		return "ALTER SYSTEM";
	case PG_QUERY__NODE__NODE_CREATE_SUBSCRIPTION_STMT:
		return option_bool(n->create_subscription_stmt->options,
		                   n->create_subscription_stmt->n_options, "create_slot", true)
		               ? "CREATE SUBSCRIPTION"
		               : NULL;
	case PG_QUERY__NODE__NODE_DROP_SUBSCRIPTION_STMT:
		return "DROP SUBSCRIPTION";
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		return n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL
		               ? "DISCARD ALL"
		               : NULL;
	default:
		return NULL;
	}
}

const char *dc_analysis__autocommit_what(const PgQuery__Node *n)
{
	return autocommit_what(n);
}

static const char *transaction_what(const PgQuery__TransactionStmt *t)
{
	switch (t->kind) {
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
		return "BEGIN";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
		return "START TRANSACTION";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
		return "COMMIT";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
		return "ROLLBACK";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
		return "SAVEPOINT";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
		return "RELEASE SAVEPOINT";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
		return "ROLLBACK TO SAVEPOINT";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
		return "PREPARE TRANSACTION";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
		return "COMMIT PREPARED";
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
		return "ROLLBACK PREPARED";
	default:
		return "transaction control";
	}
}

static int classify_one(const PgQuery__Node *n, dc_pg_stmt_info *out, dc_error *err)
{
	const char *what;
	int ret;

	if (n->node_case == PG_QUERY__NODE__NODE_TRANSACTION_STMT) {
		const PgQuery__TransactionStmt *t = n->transaction_stmt;

		if (!out->what[0])
			out->what = transaction_what(t);
		out->is_transaction_control = true;
		/* the server refuses these two inside a transaction block */
		if (t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED ||
		    t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED)
			out->autocommit_only = true;
		return 0;
	}
	what = autocommit_what(n);
	if (!what)
		return 0;
	if (!out->what[0])
		out->what = what;
	out->autocommit_only = true;
	if (n->node_case == PG_QUERY__NODE__NODE_INDEX_STMT && !out->create_index_concurrently) {
		const PgQuery__IndexStmt *ix = n->index_stmt;

		out->create_index_concurrently = true;
		if ((ret = copy_name(out->index_name, ix->idxname, err)) != 0 ||
		    (ret = copy_name(out->schema, ix->relation ? ix->relation->schemaname : NULL,
		                     err)) != 0 ||
		    (ret = copy_name(out->table_name, ix->relation ? ix->relation->relname : NULL,
		                     err)) != 0)
			return ret;
	}
	return 0;
}

static void *arena_pb_alloc(void *data, size_t size)
{
	return dc_arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

ProtobufCAllocator dc_analysis__arena_allocator(dc_arena *a)
{
	ProtobufCAllocator al = { arena_pb_alloc, arena_pb_free, a };

	return al;
}

PgQuery__ParseResult *dc_analysis__unpack(dc_arena *a, const PgQueryProtobuf *pb)
{
	ProtobufCAllocator al = dc_analysis__arena_allocator(a);

	return pg_query__parse_result__unpack(&al, pb->len, (const uint8_t *)pb->data);
}

int dc_analysis__parse(dc_arena *a, const char *sql, PgQuery__ParseResult **tree, dc_error *err)
{
	PgQueryProtobufParseResult res = pg_query_parse_protobuf(sql);
	int rc = 0;

	*tree = NULL;
	if (res.error)
		rc = dc_error_set(err, DC_EPARSE, "%s", res.error->message);
	else if (!(*tree = dc_analysis__unpack(a, &res.parse_tree)))
		rc = dc_error_set(err, DC_ENOMEM, "out of memory unpacking a parse tree");
	pg_query_free_protobuf_parse_result(res);
	return rc;
}

int dc_pg_classify(const char *sql, dc_pg_stmt_info *out, dc_error *err)
{
	dc_arena arena = DC_ARENA_INIT;
	PgQueryProtobufParseResult res;
	PgQuery__ParseResult *tree = NULL;
	size_t i;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	out->what = "";
	res = pg_query_parse_protobuf(sql);
	if (res.error) {
		int pos = res.error->cursorpos, line = 0, col = 0;
		bool fresh = err && err->code == 0; /* the first error survives */

		if (pos > 0)
			text_pos(sql, char_to_byte(sql, (size_t)pos - 1), &line, &col);
		ret = dc_error_set(err, DC_EPARSE, "%s",
		                   res.error->message ? res.error->message : "syntax error");
		if (fresh) {
			err->line = line;
			err->col = col;
		}
		goto out;
	}
	tree = dc_analysis__unpack(&arena, &res.parse_tree);
	if (!tree) {
		ret = dc_error_set(err, DC_ENOMEM, "out of memory reading the parse tree");
		goto out;
	}
	for (i = 0; i < tree->n_stmts; i++) {
		const PgQuery__RawStmt *raw = tree->stmts[i];

		if (!raw->stmt)
			continue;
		out->nstmts++;
		if ((ret = classify_one(raw->stmt, out, err)) != 0)
			goto out;
	}
out:
	dc_arena_release(&arena);
	pg_query_free_protobuf_parse_result(res);
	return ret;
}
