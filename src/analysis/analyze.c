/*
 * analyze.c -- dc_pg_analyze: the statement models of a text, for plan.
 * The text goes through the linter's pass with every rule off, so plan and
 * lint model statements by one code path.
 */
#include <string.h>

#include <deployclaw/analysis.h>

#include "lint_internal.h"

int dc_pg_analyze(const char *sql,
                  const char *file,
                  int line,
                  int col,
                  dc_stmt_list *out,
                  dc_error *err)
{
	PgQueryProtobufParseResult res;
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
	/* analysed through the linter with every rule off: one code path */
	memset(&cfg, 0, sizeof(cfg));
	dc_lint__init(&l, &cfg, NULL, &sink);
	memset(&b, 0, sizeof(b));
	b.text = sql;
	b.file = file;
	b.line = line;
	b.col = col;
	b.exact = true;
	b.wrapped = true;
	b.models = out;
	rc = dc_lint__block(&l, &b);
	if (rc == 0 && l.syntax_error) /* parsed at once above, not in its chunks: a bad cut */
		rc = dc_error_set_at(err, DC_EPARSE, file ? file : "", line, col,
		                     "the statements could not be analysed piece by piece");
	else if (rc)
		rc = dc_error_set(err, rc, "out of memory analysing '%s'", file ? file : "sql");
	dc_lint__release(&l);
	dc_finding_list_release(&sink);
	return rc;
}
