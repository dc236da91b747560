/*
 * deployclaw lint [PATH...] — the lint rules over migrations.
 *
 * PATH may be a migrations folder (loaded as a migration set, so phases,
 * downs and transaction modes are known), a native .yaml migration (its
 * folder is loaded once), or a .sql file (linted as one transactional
 * phase, parsed once). Without PATH: the configured migrations.
 *
 * The configured migrations are checked against deployclaw.sum first, as
 * every command that reads them does, and must load as a migration set. PATH
 * is exempt: it names files being written, not hashed yet.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deployclaw/analysis.h>
#include <deployclaw/config.h>
#include <deployclaw/migration.h>

#include "cli.h"
#include "util/pool.h"
#include "util/text.h"

static const cli_option lint_options[] = {
	{ "format", 'f', "FORMAT", "human (default), json, sarif or github", false },
	{ NULL, 0, NULL, NULL, false },
};

#define LINT_MAX_FILE ((size_t)256 * 1024 * 1024)

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

static int lint_sql_file(const char *path,
                         const dc_lint_config *lc,
                         dc_finding_list *out,
                         dc_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if ((rc = dc_file_read(&text, &len, path, LINT_MAX_FILE, err)) != 0)
		return rc;
	rc = dc_lint_sql(text, path, lc, out, err);
	free(text);
	return rc;
}

/* Moves every finding of `from` to the end of `to` (ownership of the strings moves too). */
static int move_findings(dc_finding_list *to, dc_finding_list *from)
{
	dc_finding *items;

	if (from->len == 0)
		return 0;
	items = dc_realloc_array(to->items, to->len + from->len, sizeof(*items));
	if (!items)
		return DC_ENOMEM;
	memcpy(items + to->len, from->items, from->len * sizeof(*items));
	to->items = items;
	to->len += from->len;
	to->alloc = to->len;
	free(from->items);
	memset(from, 0, sizeof(*from));
	return 0;
}

/* Files are independent: the pool lints them at once, each into its own list. */
typedef struct file_batch {
	const char *const *paths;
	const dc_lint_config *lc;
	dc_finding_list *lists; /* one per file, merged in file order */
	dc_error *errs;         /* one per file */
	int *rcs;
} file_batch;

static void lint_one(size_t i, void *arg)
{
	file_batch *b = arg;

	b->rcs[i] = lint_sql_file(b->paths[i], b->lc, &b->lists[i], &b->errs[i]);
}

static int lint_sql_files(const char *const *paths,
                          size_t n,
                          const dc_lint_config *lc,
                          dc_finding_list *out,
                          dc_error *err)
{
	file_batch b;
	size_t i;
	int rc = 0;

	memset(&b, 0, sizeof(b));
	b.paths = paths;
	b.lc = lc;
	b.lists = calloc(n + 1, sizeof(*b.lists));
	b.errs = calloc(n + 1, sizeof(*b.errs));
	b.rcs = calloc(n + 1, sizeof(*b.rcs));
	if (!b.lists || !b.errs || !b.rcs) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	/* Never fails: threads that cannot be had make the run narrower. A large
	 * file's chunks share the same budget. */
	(void)dc_pool_run(n, 0, 0, lint_one, &b);
	/* the first failing file, in the order given, decides */
	for (i = 0; i < n && rc == 0; i++) {
		if (b.rcs[i]) {
			*err = b.errs[i];
			rc = b.rcs[i];
		} else if (move_findings(out, &b.lists[i]) != 0) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		}
	}
out:
	for (i = 0; b.lists && i < n; i++)
		dc_finding_list_release(&b.lists[i]);
	free(b.lists);
	free(b.errs);
	free(b.rcs);
	return rc;
}

static int lint_set(const dc_migration_set *set,
                    const char *only,
                    const dc_lint_config *lc,
                    dc_finding_list *out,
                    dc_error *err)
{
	size_t i;
	int rc;

	for (i = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];

		if (only && strcmp(dc_path_basename(m->path), dc_path_basename(only)) != 0)
			continue;
		if ((rc = dc_lint_migration(m, lc, out, err)) != 0)
			return rc;
		if (only)
			return 0;
	}
	if (only)
		return dc_error_set(err, DC_ENOTFOUND, "'%s' is not a migration of its folder",
		                    only);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A folder that does not load as a migration set (mixed layouts, a syntax
 * error, plain .sql files): lint its .sql files one by one, so a syntax error
 * is a finding at its position rather than the end of the run.
 */
static int lint_sql_folder(cli *c,
                           const char *dir,
                           const dc_error *why,
                           const dc_lint_config *lc,
                           dc_finding_list *out,
                           dc_error *err)
{
	dc_ptrvec names = DC_PTRVEC_INIT;
	struct dirent *de;
	DIR *d = opendir(dir);
	char buf[2048];
	int rc = 0;

	if (!d)
		return dc_error_set(err, DC_ENOTFOUND, "cannot open folder '%s'", dir);
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (!has_suffix(de->d_name, ".sql"))
			continue;
		if (!(p = dc_path_join(dir, de->d_name)) || dc_ptrvec_push(&names, p)) {
			free(p);
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (names.len == 0) {
		dc_error_clear(err);
		rc = dc_error_set(err, why->code ? why->code : DC_EINVAL, "%s",
		                  dc_error_format(why, buf, sizeof(buf)));
		goto out;
	}
	if (c->verbose)
		cli_note(c, "'%s' is not a migration set (%s): linting its .sql files one by one",
		         dir, dc_error_format(why, buf, sizeof(buf)));
	qsort(names.items, names.len, sizeof(*names.items), name_cmp);
	rc = lint_sql_files((const char *const *)names.items, names.len, lc, out, err);
out:
	closedir(d);
	dc_ptrvec_release(&names, free);
	return rc;
}

static int lint_dir(cli *c,
                    const char *dir,
                    const char *only,
                    const dc_lint_config *lc,
                    dc_finding_list *out,
                    dc_error *err)
{
	dc_migration_set *set = NULL;
	dc_error lerr = { 0 };
	int rc;

	rc = dc_migration_set_load(&set, dir, DC_DIALECT_POSTGRES, &lerr);
	if (rc == DC_ENOMEM) {
		*err = lerr;
		return rc;
	}
	if (rc) {
		if (only && !has_suffix(only, ".sql")) {
			*err = lerr;
			return rc;
		}
		if (only)
			return lint_sql_file(only, lc, out, err);
		return lint_sql_folder(c, dir, &lerr, lc, out, err);
	}
	rc = lint_set(set, only, lc, out, err);
	dc_migration_set_free(set);
	return rc;
}

/* Findings from native YAML have positions but no source text: read it. */
static void fill_sources(dc_finding_list *l)
{
	char *text = NULL, *cur = NULL;
	size_t len = 0, i;

	for (i = 0; i < l->len; i++) {
		dc_finding *f = &l->items[i];
		const char *p, *e;
		int line;

		if (f->source || !f->file || f->line < 1)
			continue;
		if (!cur || strcmp(cur, f->file) != 0) {
			free(text);
			free(cur);
			text = NULL;
			cur = dc_strdup(f->file);
			if (dc_file_read(&text, &len, f->file, LINT_MAX_FILE, NULL) != 0)
				text = NULL;
		}
		if (!text)
			continue;
		for (p = text, line = 1; *p && line < f->line; p++)
			if (*p == '\n')
				line++;
		for (e = p; *e && *e != '\n' && *e != '\r'; e++)
			;
		f->source = dc_strndup(p, (size_t)(e - p));
	}
	free(text);
	free(cur);
}

static int run_lint(cli *c)
{
	dc_config *cfg = NULL;
	dc_migration_set *set = NULL;
	dc_lint_config lc;
	dc_finding_list findings = { NULL, 0, 0 };
	dc_strbuf out = DC_STRBUF_INIT;
	dc_lint_format fmt = c->json ? DC_LINT_JSON : DC_LINT_HUMAN;
	const char *f = cli_value(c, "format");
	dc_error err = { 0 };
	int rc = 0, i;
	bool color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && c->color;

	if (f && dc_lint_format_parse(f, &fmt) != 0) {
		cli_error(c,
		          "--format: unknown format '%s' (expected human, json, sarif or github)",
		          f);
		return 2;
	}
	rc = cli_load_config(c, &cfg, &err);
	if (rc == DC_ENOTFOUND && c->nargs > 0 && !c->config_given) {
		dc_error_clear(&err); /* linting files needs no fleet */
		rc = 0;
	}
	if (rc)
		goto out;
	if ((rc = dc_lint_config_from(&lc, cfg, &err)) != 0)
		goto out;
	if (c->nargs == 0) {
		if (cfg->engine != DC_ENGINE_POSTGRES) {
			if (!c->quiet)
				cli_note(c, "lint checks PostgreSQL migrations; engine is '%s'",
				         "sqlite");
			goto out;
		}
		if ((rc = cli_load_migrations(cfg, false, &set, &err)) != 0 ||
		    (rc = lint_set(set, NULL, &lc, &findings, &err)) != 0)
			goto out;
	}
	for (i = 0; i < c->nargs && !rc; i++) {
		const char *p = c->args[i];
		struct stat st;
		int k;

		if (stat(p, &st) != 0) {
			rc = dc_error_set(&err, DC_ENOTFOUND, "'%s' does not exist", p);
			break;
		}
		/* a run of plain files is linted in parallel */
		for (k = i; k < c->nargs && !has_suffix(c->args[k], ".yaml") &&
		            !has_suffix(c->args[k], ".yml") && stat(c->args[k], &st) == 0 &&
		            S_ISREG(st.st_mode);
		     k++)
			;
		if (k - i > 1) {
			rc = lint_sql_files((const char *const *)(c->args + i), (size_t)(k - i),
			                    &lc, &findings, &err);
			i = k - 1;
			continue;
		}
		stat(p, &st);
		if (S_ISDIR(st.st_mode)) {
			rc = lint_dir(c, p, NULL, &lc, &findings, &err);
		} else if (has_suffix(p, ".yaml") || has_suffix(p, ".yml")) {
			char *dir = dc_path_dirname(p);

			rc = dir ? lint_dir(c, dir, p, &lc, &findings, &err)
			         : dc_error_set(&err, DC_ENOMEM, "out of memory");
			free(dir);
		} else {
			rc = lint_sql_file(p, &lc, &findings, &err);
		}
	}
	if (rc)
		goto out;
	dc_finding_list_sort(&findings);
	if (fmt == DC_LINT_HUMAN)
		fill_sources(&findings);
	if (fmt == DC_LINT_HUMAN && findings.len == 0) {
		if (!c->quiet)
			cli_out("no findings\n");
	} else if ((rc = dc_lint_render(&findings, fmt, color, &out)) != 0) {
		dc_error_set(&err, rc, "out of memory rendering findings");
		goto out;
	} else if (!(c->quiet && fmt == DC_LINT_HUMAN)) {
		cli_write(out.buf, out.len);
	}
out:
	dc_strbuf_release(&out);
	dc_migration_set_free(set);
	if (rc) {
		dc_finding_list_release(&findings);
		dc_config_free(cfg);
		return cli_fail(c, rc, &err);
	}
	rc = dc_finding_list_count(&findings, DC_SEV_ERROR) ? 1 : 0;
	dc_finding_list_release(&findings);
	dc_config_free(cfg);
	return rc;
}

const cli_command cmd_lint = {
	"lint",
	"[PATH...]",
	"check migrations for locking, rewriting and unsafe statements",
	"PATH is a migrations folder, a native .yaml migration or a .sql file; without\n"
	"PATH the configured migrations are checked, after deployclaw.sum (exit 4 when\n"
	"a migration changed without 'deployclaw hash'). Each finding names its rule\n"
	"(docs/lint-rules.md); severities are set under 'lint: { rules: ... }' in\n"
	"deployclaw.yaml, and '-- deployclaw:ignore <rule>' silences the next\n"
	"statement. Exit 1 when an error-severity finding remains.",
	lint_options,
	run_lint,
	NULL,
	1000000,
};
