/*
 * driver.c -- lint's entry points and its pass over a block of SQL.
 *
 * Every block of SQL (a file, a phase's up or down) is parsed exactly once;
 * each statement is modelled once (model.c) and every rule looks at that
 * statement's tree and model in a single pass. What rules need to remember
 * across statements (tables this migration created, constraints added NOT
 * VALID, column types, the transaction state) lives in hash sets, so the
 * work stays linear in the number of statements.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <deployclaw/migration.h>

#include "../lint_internal.h"
#include "migration/migration_internal.h"
#include "util/array.h"

/*
 * The walk of the statement's kind, in the file of the rule family it mostly
 * reports: it reports the rules rules.def says it reports (other families'
 * too, where the order of a statement's parts matters) and records what later
 * statements look at. The statement checks of rules.def run after it.
 */
static void lint_node(lint *l, const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		dc_lint__alter_table(l, n->alter_table_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		dc_lint__create_table(l, n->create_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		if (n->create_table_as_stmt->into && n->create_table_as_stmt->into->rel)
			dc_lint__put(l, &l->tables, n->create_table_as_stmt->into->rel->relname,
			             NULL);
		break;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		dc_lint__create_index(l, n->index_stmt);
		break;
	case PG_QUERY__NODE__NODE_DROP_STMT:
		dc_lint__drop(l, n->drop_stmt);
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		dc_lint__rename(l, n->rename_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT:
		dc_lint__create_domain(l, n->create_domain_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_ENUM_STMT:
		if (dc_analysis__last_name(n->create_enum_stmt->type_name,
		                           n->create_enum_stmt->n_type_name))
			dc_lint__put(l, &l->types,
			             dc_analysis__last_name(n->create_enum_stmt->type_name,
			                                    n->create_enum_stmt->n_type_name),
			             (void *)1);
		break;
	case PG_QUERY__NODE__NODE_COMPOSITE_TYPE_STMT:
		if (n->composite_type_stmt->typevar && n->composite_type_stmt->typevar->relname)
			dc_lint__put(l, &l->types, n->composite_type_stmt->typevar->relname,
			             (void *)1);
		break;
	case PG_QUERY__NODE__NODE_VIEW_STMT:
		dc_lint__view(l, n->view_stmt);
		break;
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		dc_lint__set_stmt(l, n->variable_set_stmt);
		break;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		dc_lint__transaction(l, n->transaction_stmt);
		break;
	case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
	case PG_QUERY__NODE__NODE_CREATE_SCHEMA_STMT:
		dc_lint__schema_node(l, n);
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

	dc_lint__nontx(l, n);
	for (i = 0; i < m->nrels; i++)
		if (!dc_lint__set_has(&l->tables, m->rels[i].name, NULL) &&
		    strcmp(m->rels[i].role, "new table") != 0)
			existing = true;
	if (existing && m->lock >= DC_LOCK_SHARE_UPDATE_EXCLUSIVE &&
	    n->node_case != PG_QUERY__NODE__NODE_LOCK_STMT)
		dc_lint__timeouts(l);
	if (m->lock >= DC_LOCK_SHARE_ROW_EXCLUSIVE && existing)
		l->tx_strong_lock = dc_lint__in_tx(l) ? true : l->tx_strong_lock;
	if (l->cfg->schema_tenancy)
		dc_lint__walk_rangevars(l, n);
}

/* Lints the statements of one tree, parsed from the text at l->base. */
int dc_lint__tree(lint *l, const block *b, const PgQuery__ParseResult *tree, size_t *prev_end)
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
		/* blanks and comments before it, nested block comments as PostgreSQL */
		l->stmt_off = dc_migration__skip_space_comments(l->text, loc, end, true);
		l->stmt_end = end;
		l->node = raw->stmt;
		nig = dc_lint__parse_ignores(l->text, loc, l->stmt_off, ig, MAX_IGNORES);
		if (b->models) {
			if (b->models->len == b->models->alloc &&
			    dc_array_grow(&b->models->items, &b->models->alloc,
			                  sizeof(*b->models->items), 16) != 0)
				return DC_ENOMEM;
			mp = &b->models->items[b->models->len];
		}
		if ((rc = dc_analysis__model(raw->stmt, l->text, l->stmt_off, end - l->stmt_off,
		                             mp)) != 0)
			return rc;
		mp->file = b->file;
		dc_lint__pos_of(l, l->stmt_off, &mp->line, &mp->col);
		l->model = mp;
		lint_node(l, raw->stmt);
		dc_lint__stmt_checks(l, raw->stmt);
		lint_model(l, raw->stmt);
		if (nig) {
			dc_lint__apply_ignores(l, first, ig, nig);
			dc_lint__report_unused(l, ig, nig);
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

/* Lints one block. */
int dc_lint__block(lint *l, const block *b)
{
	ignore ig[MAX_IGNORES];
	size_t nig, prev_end = 0, *cuts = NULL, nchunks;
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
	dc_lint__tx_reset(l);
	dc_lint__set_release(&l->dropped_cons);

	if ((nchunks = dc_lint__chunk_cuts(l->text, l->textlen, &cuts)) > 0) {
		rc = dc_lint__chunks(l, b, cuts, nchunks, &prev_end);
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
			dc_lint__syntax_finding(l, 0, res.error->message, res.error->cursorpos);
			l->syntax_error = true;
		} else if (!(tree = dc_analysis__unpack(&l->trees, &res.parse_tree))) {
			rc = DC_ENOMEM;
		}
		pg_query_free_protobuf_parse_result(res);
		if (rc || l->syntax_error)
			goto out;
		if ((rc = dc_lint__tree(l, b, tree, &prev_end)) != 0)
			goto out;
	}
	/* ignores after the last statement silence nothing */
	nig = dc_lint__parse_ignores(l->text, prev_end, l->textlen, ig, MAX_IGNORES);
	if (nig) {
		l->stmt_off = prev_end;
		dc_lint__report_unused(l, ig, nig);
	}
	dc_lint__block_end(l);
out:
	if (!rc && l->failed)
		rc = l->failed;
	return rc;
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
	dc_lint__init(&l, cfg, &dflt, out);
	memset(&b, 0, sizeof(b));
	b.text = sql ? sql : "";
	b.file = file;
	b.line = b.col = 1;
	b.exact = true;
	b.wrapped = true;
	rc = dc_lint__block(&l, &b);
	dc_lint__compact(out, from);
	dc_lint__release(&l);
	if (rc)
		return dc_error_set(err, rc, "out of memory linting '%s'", file ? file : "sql");
	return 0;
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
	if (m->scope == DC_SCOPE_SHARD) {
		/* it runs in the shard's database, in no tenant's schema: the
		 * tenant-schema rule (DC501) is not its own, as in the isolation gate */
		if (cfg)
			dflt = *cfg;
		dflt.schema_tenancy = false;
		cfg = NULL;
	}
	dc_lint__init(&l, cfg, &dflt, out);
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
		if ((rc = dc_lint__block(&l, &b)) != 0)
			break;
		if ((rc = dc_lint__check_down(&l, ph, &up)) != 0)
			break;
		dc_stmt_list_release(&up);
	}
	/* the downs run in reverse phase order, after every up: what the ups
	 * created (tables, indexes, columns) is known, so dropping it again is
	 * not reported as data loss */
	dc_lint__rls_reset(&l);
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
		rc = dc_lint__block(&l, &b);
	}
	dc_stmt_list_release(&up);
	dc_lint__compact(out, from);
	dc_lint__release(&l);
	if (rc)
		return dc_error_set(err, rc, "out of memory linting '%s'", m->path ? m->path : "");
	return 0;
}
