/*
 * Internal to deployclaw: the statements inside a routine body (a DO block,
 * a function or procedure a migration creates), parsed, with where each sits
 * in the migration's text. The isolation checks (isolation.c) and lint ask it.
 */
#ifndef DC_ANALYSIS_BODY_H
#define DC_ANALYSIS_BODY_H

#include <deployclaw/common.h>
#include <deployclaw/strbuf.h>

/*
 * Called once per statement of a body (`stmt`, a PgQuery__Node *; `why`
 * NULL), and once per part that cannot be checked before it runs (`stmt`
 * NULL, `why` says what: EXECUTE of a string, a body in another language, an
 * expression that does not parse). `base` is the offset in the migration's
 * text of what `stmt`'s locations index into (of the part, when `stmt` is
 * NULL); -1 when the body is not there verbatim (single-quoted). Without
 * `exact`, the statement was compiled into other text than is written (the
 * INTO of SELECT ... INTO is cut out): `base` is where it starts, and its
 * own locations do not map. `routine`
 * names the body: "a DO block", "function 'f'". A nonzero return stops the
 * walk and is returned.
 */
typedef int (*dc_body_fn)(void *ctx,
                          const void *stmt,
                          int base,
                          bool exact,
                          const char *routine,
                          const char *why);

/*
 * For a DO statement or CREATE FUNCTION/PROCEDURE (`node`, a PgQuery__Node *),
 * calls `fn` on what its body runs; other statements have no body: 0.
 * `text` (may be NULL) is the text `node`'s locations index into. Returns 0,
 * `fn`'s nonzero return, or DC_ENOMEM.
 */
int dc_analysis__body_each(const void *node, const char *text, dc_body_fn fn, void *ctx);

/* Prints one statement node (a PgQuery__Node *) as SQL, appended to `out`. */
int dc_analysis__deparse(const void *stmt, dc_strbuf *out, dc_error *err);

#endif
