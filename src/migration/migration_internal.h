/*
 * migration_internal.h — what the migration module's files share.
 *
 * migration.c turns a folder into an ordered set; split.c splits SQL into
 * statements with positions; each file of layouts/ knows one folder layout
 * (its file names and how one migration is read). The layouts are a table
 * (dc_migration__layouts): adding one is a new file in layouts/, its
 * dc_layout value and a row in the table.
 */
#ifndef DEPLOYCLAW_MIGRATION_INTERNAL_H
#define DEPLOYCLAW_MIGRATION_INTERNAL_H

#include <sqlite3.h>

#include <deployclaw/migration.h>

#include "util/text.h"
#include "util/util.h"

#define MAX_VERSION_LEN 128

static inline bool dc_migration__is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ------------------------------------------------------------------------ */
/* Positions: offsets in an SQL text → line:col in the file it came from.   */

struct srcmap {
	const char *raw; /* the text positions count in (usually the whole file) */
	size_t rawlen;
	const size_t *map; /* SQL offset → raw offset; NULL: raw offset = base + offset */
	size_t maplen;
	size_t base;
	size_t origin; /* raw offset whose position is line0:col0 */
	int line0, col0;
	/* Cursor: statements come in increasing order, so scanning resumes. */
	size_t cur;
	int line, col;
};

void dc_migration__srcmap_init(struct srcmap *m,
                               const char *raw,
                               size_t rawlen,
                               int line0,
                               int col0);
void dc_migration__srcmap_set_origin(struct srcmap *m, size_t off, int line, int col);
void dc_migration__srcmap_pos(struct srcmap *m, size_t off, int *line, int *col);

/* ------------------------------------------------------------------------ */
/* Splitting (split.c).                                                     */

struct splitter {
	dc_dialect dialect;
	sqlite3 *db; /* in-memory, only ever prepares */
};

int dc_migration__splitter_open(struct splitter *sp, dc_dialect dialect, dc_error *err);
void dc_migration__splitter_close(struct splitter *sp);
/* `sql` must be NUL-terminated at `len`. */
int dc_migration__split_sql(struct splitter *sp,
                            const char *sql,
                            size_t len,
                            struct srcmap *m,
                            const char *file,
                            dc_statement **out,
                            size_t *n,
                            dc_error *err);
/* Skips blanks and comments from `s`; `nest` for PostgreSQL's nested block comments. */
size_t dc_migration__skip_space_comments(const char *sql, size_t s, size_t e, bool nest);
bool dc_migration__only_space_comments(const char *sql, size_t len);

/* ------------------------------------------------------------------------ */
/* Loading one migration (migration.c).                                     */

struct loader {
	struct splitter sp;
	dc_error *err;
};

/* The first bytes of s[0, len) as a C string; a long word is cut (in messages only). */
void dc_migration__copy_word(char *dst, size_t size, const char *src, size_t len);
bool dc_migration__version_valid(const char *v);
void dc_migration__sql_release(dc_sql *s);
int dc_migration__phases_alloc(dc_migration *m, size_t n, dc_error *err);
/* Fills `out` from sql[0, len) (a copy is kept) and splits it. */
int dc_migration__sql_fill(struct loader *L,
                           dc_sql *out,
                           const char *sql,
                           size_t len,
                           struct srcmap *m,
                           const char *path);
/*
 * A single-phase migration from an up file and an optional down file (both
 * whole SQL files): golang-migrate and Flyway.
 */
int dc_migration__load_up_down(struct loader *L,
                               dc_migration *m,
                               const char *raw,
                               size_t len,
                               const char *down,
                               size_t dlen);

/* ------------------------------------------------------------------------ */
/* A migration's scope (scope.c).                                           */

/* Sets m->scope from word[0, len) ("tenant" or "shard"); DC_EPARSE at
 * path:line:col otherwise. */
int dc_migration__scope_parse(struct loader *L,
                              dc_migration *m,
                              const char *word,
                              size_t len,
                              const char *path,
                              int line,
                              int col);
/* A shard-scoped migration must be transactional and unbatched;
 * DC_EPARSE at line:col (where the scope was given) otherwise. */
int dc_migration__scope_check(struct loader *L, const dc_migration *m, int line, int col);
/* The SQL-file layouts: "-- deployclaw:scope <scope>" among the comment
 * lines heading the up (or only) file raw[0, len); where its value stands
 * goes to at_line:at_col (left alone when there is none). */
int dc_migration__scope_directive(struct loader *L,
                                  dc_migration *m,
                                  const char *raw,
                                  size_t len,
                                  int *at_line,
                                  int *at_col);

/* ------------------------------------------------------------------------ */
/* Layouts (layouts/).                                                      */

enum {
	KIND_ONLY, /* the one file of a migration */
	KIND_UP,
	KIND_DOWN
};

/* A file of the migrations folder, as its layout reads its name. */
struct dc_migration__entry {
	char *name;
	dc_layout layout;
	int kind;
	char *version; /* from the name; NULL when the file holds it (native) */
	char *title;
};

struct dc_migration__layout {
	dc_layout id;
	const char *name; /* dc_layout_name() */
	/* the file names it expects, for the message about a file nobody claims */
	const char *expected;
	/* down migrations are files of their own, paired with their up by version */
	bool down_files;
	/*
	 * 1 when `name` is one of this layout's files (sets kind, version,
	 * title of `e`), 0 when it is not, DC_ENOMEM. Layouts are asked in table
	 * order, so a catch-all pattern (dbmate's) comes after the ones it would
	 * swallow (golang-migrate's .up.sql).
	 */
	int (*detect)(const char *name, struct dc_migration__entry *e);
	/*
	 * Fills m's phases (and verify, name, version when the file holds them)
	 * from its up (or only) file raw[0, len) and its down file (NULL
	 * unless down_files). Errors go to L->err.
	 */
	int (*load)(struct loader *L,
	            dc_migration *m,
	            const char *raw,
	            size_t len,
	            const char *down,
	            size_t dlen);
};

/* Ends with `suffix`: for detect functions. */
bool dc_migration__ends_with(const char *s, size_t len, const char *suffix);

/* For detect functions: the version (`vlen` bytes at `version`) and the title
 * (`tlen` at `title`) of the entry, copied out of its file name; 1 (the layout
 * claims the file) or DC_ENOMEM. */
int dc_migration__entry_named(struct dc_migration__entry *e,
                              const char *version,
                              size_t vlen,
                              const char *title,
                              size_t tlen);

extern const struct dc_migration__layout dc_migration__layout_native;
extern const struct dc_migration__layout dc_migration__layout_golang_migrate;
extern const struct dc_migration__layout dc_migration__layout_dbmate;
extern const struct dc_migration__layout dc_migration__layout_flyway;

#endif
