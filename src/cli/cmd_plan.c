/*
 * deployclaw plan [--live] [VERSION] — what each migration will do: per
 * phase, every statement's lock on each relation, rewrite/scan, whether it
 * runs in a transaction, and a risk summary. --live adds each target
 * table's size and row estimate from the catalog of every shard, summed over
 * the tenants the engine finds (dc_topology_tables: one query per shard,
 * one per tenant database under database tenancy).
 *
 * deployclaw plan --safe MIGRATION [-o FILE] — the same change rewritten in
 * safe phases (dc_rewrite_safe), as a native YAML migration.
 *
 * What plan reads from the configured folder (every migration, or --safe
 * VERSION) is checked against deployclaw.sum first, as every command that
 * reads migrations does. --safe FILE is the authoring path and is exempt,
 * like lint PATH: the file is typically new and not hashed yet, and the
 * rewrite written over it with -o changes it again, so the sum is written
 * once the author is done ('deployclaw hash').
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <deployclaw/analysis.h>
#include <deployclaw/config.h>
#include <deployclaw/migration.h>
#include <deployclaw/rewrite.h>
#include <deployclaw/topology.h>

#include "cli.h"

static const cli_option plan_options[] = {
	{ "live", 0, NULL, "add table sizes and row estimates from every shard's catalog", false },
	{ "safe", 0, NULL, "write MIGRATION rewritten in safe phases (native YAML)", false },
	{ "output", 'o', "FILE", "with --safe: write to FILE instead of standard output", false },
	{ NULL, 0, NULL, NULL, false },
};

/* Table statistics gathered by --live, per relation name (all tenants summed). */
typedef struct live_stat {
	char *name;
	double rows;  /* sum of reltuples over tenants and shards */
	double bytes; /* sum of pg_total_relation_size */
	double max_rows;
	long tenants;
	long unanalyzed; /* tables whose row estimate is unknown (never analyzed) */
} live_stat;

typedef struct live {
	live_stat *v;
	size_t n;
	bool used;
} live;

static live_stat *live_find(const live *lv, const char *name)
{
	size_t i;

	for (i = 0; lv && i < lv->n; i++)
		if (!strcmp(lv->v[i].name, name))
			return &lv->v[i];
	return NULL;
}

static void human_count(dc_strbuf *out, double v)
{
	if (v >= 1e9)
		dc_strbuf_addf(out, "%.1f G", v / 1e9);
	else if (v >= 1e6)
		dc_strbuf_addf(out, "%.0f M", v / 1e6);
	else if (v >= 1e3)
		dc_strbuf_addf(out, "%.0f k", v / 1e3);
	else
		dc_strbuf_addf(out, "%.0f", v < 0 ? 0 : v);
}

static void human_bytes(dc_strbuf *out, double v)
{
	if (v >= 1024.0 * 1024 * 1024)
		dc_strbuf_addf(out, "%.1f GB", v / (1024.0 * 1024 * 1024));
	else if (v >= 1024.0 * 1024)
		dc_strbuf_addf(out, "%.1f MB", v / (1024.0 * 1024));
	else
		dc_strbuf_addf(out, "%.0f kB", v / 1024.0);
}

/* Every shard's catalog, for every relation name the plan touches
 * (dc_topology_tables: the tenants as the engine finds them). */
static int live_collect(cli *c,
                        const dc_config *cfg,
                        const dc_ptrvec *names,
                        live *lv,
                        dc_error *err)
{
	dc_topology_table *tables = NULL;
	size_t i, n = 0, s;
	int rc = 0;

	if (cfg->engine != DC_ENGINE_POSTGRES)
		return dc_error_set(err, DC_ECONFIG, "--live needs engine 'postgres'");
	for (s = 0; s < cfg->nshards && !rc; s++) {
		const dc_shard_config *sh = &cfg->shards[s];

		rc = dc_topology_tables(&tables, &n, cfg, sh, (const char *const *)names->items,
		                        names->len, err);
		if (rc)
			break;
		for (i = 0; i < n && !rc; i++) {
			live_stat *st = live_find(lv, tables[i].name);

			if (!st) {
				live_stat *nv = realloc(lv->v, (lv->n + 1) * sizeof(*nv));

				if (!nv) {
					rc = dc_error_set(err, DC_ENOMEM, "out of memory");
					break;
				}
				lv->v = nv;
				st = &lv->v[lv->n++];
				memset(st, 0, sizeof(*st));
				if (!(st->name = dc_strdup(tables[i].name))) {
					lv->n--;
					rc = dc_error_set(err, DC_ENOMEM, "out of memory");
					break;
				}
			}
			st->rows += tables[i].rows;
			st->bytes += tables[i].bytes;
			if (tables[i].max_rows > st->max_rows)
				st->max_rows = tables[i].max_rows;
			st->tenants += tables[i].tenants;
			st->unanalyzed += tables[i].unanalyzed;
		}
		if (!rc && c->verbose)
			cli_note(c, "shard '%s': %zu table(s) measured", sh->name, n);
		dc_topology_tables_free(tables, n);
		tables = NULL;
	}
	lv->used = rc == 0;
	return rc;
}

static void names_add(dc_ptrvec *names, const char *name)
{
	size_t i;

	for (i = 0; i < names->len; i++)
		if (!strcmp(names->items[i], name))
			return;
	dc_ptrvec_push(names, (void *)(uintptr_t)name);
}

typedef struct phase_plan {
	dc_stmt_list stmts;
} phase_plan;

/* Models of one block, positions taken from the loader (right in YAML too). */
static int analyze_block(const dc_sql *sql, dc_stmt_list *out, dc_error *err)
{
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!sql->text)
		return 0;
	if ((rc = dc_pg_analyze(sql->text, sql->file, sql->line, sql->col, out, err)) != 0)
		return rc;
	if (out->len == sql->nstmts)
		for (i = 0; i < out->len; i++) {
			out->items[i].line = sql->stmts[i].line;
			out->items[i].col = sql->stmts[i].col;
		}
	return 0;
}

static json_t *stmt_json(const dc_stmt_model *m, const live *lv)
{
	json_t *o = json_object(), *rels = json_array(), *rules = json_array();
	size_t i;

	for (i = 0; i < m->nrels; i++) {
		const live_stat *st = lv && lv->used ? live_find(lv, m->rels[i].name) : NULL;
		json_t *r =
		        json_pack("{s:o, s:s, s:s, s:s}", "schema",
		                  m->rels[i].schema ? json_string(m->rels[i].schema) : json_null(),
		                  "name", m->rels[i].name, "lock",
		                  dc_lock_mode_name(m->rels[i].lock), "role", m->rels[i].role);

		if (st) {
			json_object_set_new(r, "rows", json_real(st->rows));
			json_object_set_new(r, "bytes", json_real(st->bytes));
			json_object_set_new(r, "tenants", json_integer(st->tenants));
		}
		json_array_append_new(rels, r);
	}
	for (i = 0; i < m->nrules; i++)
		json_array_append_new(rules, json_string(m->rules[i]->what));
	json_object_set_new(o, "line", json_integer(m->line));
	json_object_set_new(o, "column", json_integer(m->col));
	json_object_set_new(o, "kind", json_string(m->kind));
	json_object_set_new(o, "actions", rules);
	json_object_set_new(o, "lock", json_string(dc_lock_mode_name(m->lock)));
	json_object_set_new(o, "relations", rels);
	json_object_set_new(o, "effect", json_string(dc_effect_name(m->effect)));
	json_object_set_new(o, "transactional", json_boolean(m->transactional));
	json_object_set_new(o, "reversible", json_boolean(m->reversible));
	json_object_set_new(o, "inverse", m->inverse ? json_string(m->inverse) : json_null());
	json_object_set_new(o, "note", m->note ? json_string(m->note) : json_null());
	return o;
}

static void print_stmt(const dc_stmt_model *m, const live *lv)
{
	size_t i;

	cli_out("    %d:%d  %s", m->line, m->col, m->kind);
	for (i = 0; i < m->nrules; i++)
		cli_out("%s%s", i ? "; " : " — ", m->rules[i]->what);
	cli_out("\n");
	for (i = 0; i < m->nrels; i++) {
		const dc_rel_lock *r = &m->rels[i];
		const live_stat *st = lv && lv->used ? live_find(lv, r->name) : NULL;

		cli_out("          %s on %s%s%s (%s)", dc_lock_mode_name(r->lock),
		        r->schema ? r->schema : "", r->schema ? "." : "", r->name, r->role);
		if (st) {
			dc_strbuf sb = DC_STRBUF_INIT;

			dc_strbuf_adds(&sb, " (");
			human_count(&sb, st->rows);
			dc_strbuf_adds(&sb, " rows, ");
			human_bytes(&sb, st->bytes);
			dc_strbuf_addf(&sb, " over %ld tenant table%s", st->tenants,
			               st->tenants == 1 ? "" : "s");
			/* reltuples is -1 until the first ANALYZE: say so rather than show 0 */
			if (st->unanalyzed)
				dc_strbuf_addf(&sb, "; %ld never analyzed, their rows not counted",
				               st->unanalyzed);
			dc_strbuf_addch(&sb, ')');
			cli_out("%s", sb.buf);
			dc_strbuf_release(&sb);
		} else if (lv && lv->used && strcmp(r->role, "new table") != 0) {
			cli_out(" (not found on any shard)");
		}
		cli_out("%s%s%s\n",
		        dc_lock_blocks_reads(r->lock)    ? ": blocks reads and writes"
		        : dc_lock_blocks_writes(r->lock) ? ": blocks writes"
		                                         : "",
		        m->effect >= DC_EFFECT_SCAN && i == 0 ? " with a " : "",
		        m->effect >= DC_EFFECT_SCAN && i == 0
		                ? (m->effect == DC_EFFECT_REWRITE       ? "table rewrite"
		                   : m->effect == DC_EFFECT_MAY_REWRITE ? "possible table rewrite"
		                                                        : "full scan")
		                : "");
	}
	if (!m->transactional)
		cli_out("          cannot run inside a transaction\n");
	if (!m->reversible)
		cli_out("          no mechanical inverse\n");
	if (m->note)
		cli_out("          note: %s\n", m->note);
}

static bool same_folder(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

static int run_safe(cli *c, const dc_config *cfg)
{
	dc_migration_set *set = NULL;
	const dc_migration *m = NULL;
	dc_strbuf yaml = DC_STRBUF_INIT;
	const char *out = cli_value(c, "output");
	dc_error err = { 0 };
	struct stat st;
	int rc;

	if (c->nargs != 1) {
		cli_error(c, "'deployclaw plan --safe' needs MIGRATION (a version or a file)");
		return 2;
	}
	if (stat(c->args[0], &st) == 0 && S_ISREG(st.st_mode)) {
		char *dir = dc_path_dirname(c->args[0]);
		const char *base = strrchr(c->args[0], '/');
		size_t i;

		base = base ? base + 1 : c->args[0];
		rc = dir ? dc_migration_set_load(&set, dir, DC_DIALECT_POSTGRES, &err) : DC_ENOMEM;
		free(dir);
		if (rc)
			goto out;
		for (i = 0; i < set->count; i++) {
			const char *pb = strrchr(set->migrations[i].path, '/');

			if (!strcmp(pb ? pb + 1 : set->migrations[i].path, base))
				m = &set->migrations[i];
		}
	} else {
		if (!cfg) {
			rc = dc_error_set(&err, DC_ENOTFOUND,
			                  "'%s' is not a file and there is no config to find it in",
			                  c->args[0]);
			goto out;
		}
		if ((rc = cli_load_migrations(cfg, false, &set, &err)) != 0)
			goto out;
		m = dc_migration_set_find(set, c->args[0]);
	}
	if (!m) {
		rc = dc_error_set(&err, DC_ENOTFOUND, "no migration '%s'", c->args[0]);
		goto out;
	}
	if ((rc = dc_rewrite_safe(m, m->path, &yaml, &err)) != 0)
		goto out;
	if (!out) {
		cli_write(yaml.buf, yaml.len);
		goto out;
	}
	if ((rc = dc_file_write_atomic(out, yaml.buf, yaml.len, 0644, false, &err)) != 0)
		goto out;
	/* the folder no longer matches its sum: every later command would refuse it */
	if (cfg) {
		char *dir = dc_path_dirname(out);

		if (dir && same_folder(dir, cfg->migrations))
			cli_note(c,
			         "'%s' is in the migrations folder: run 'deployclaw hash' to "
			         "update deployclaw.sum",
			         out);
		free(dir);
	}
out:
	dc_strbuf_release(&yaml);
	dc_migration_set_free(set);
	return rc ? cli_fail(c, rc, &err) : 0;
}

/*
 * Analyses every phase of the migrations the command names (all, or the one
 * in args[0]) into plans[], indexed over all phases in order; `*np` counts
 * the phases reached, for the caller's release. The relations the statements
 * touch go into `names`.
 */
static int analyze_plans(cli *c,
                         const dc_migration_set *set,
                         phase_plan *plans,
                         size_t *np,
                         dc_ptrvec *names,
                         dc_error *err)
{
	size_t i, k, s;
	int rc;

	for (i = 0, *np = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];

		if (c->nargs && strcmp(m->version, c->args[0]) != 0) {
			*np += m->nphases;
			continue;
		}
		for (k = 0; k < m->nphases; k++, (*np)++) {
			if ((rc = analyze_block(&m->phases[k].up, &plans[*np].stmts, err)) != 0)
				return rc;
			for (s = 0; s < plans[*np].stmts.len; s++) {
				const dc_stmt_model *sm = &plans[*np].stmts.items[s];
				size_t r;

				for (r = 0; r < sm->nrels; r++)
					names_add(names, sm->rels[r].name);
			}
		}
	}
	return 0;
}

/*
 * How many statements of `m` leave the tenant: lint's isolation errors
 * (DC501, DC504), the decisions the isolation gate refuses a run on.
 */
static size_t leaves_tenant(const dc_migration *m, const dc_lint_config *lc)
{
	dc_finding_list fl = { NULL, 0, 0 };
	dc_error err = { 0 };
	size_t i, n = 0;

	if (dc_lint_migration(m, lc, &fl, &err) == 0)
		for (i = 0; i < fl.len; i++)
			if (fl.items[i].severity == DC_SEV_ERROR &&
			    (!strcmp(fl.items[i].rule->id, "DC501") ||
			     !strcmp(fl.items[i].rule->id, "DC504")))
				n++;
	dc_finding_list_release(&fl);
	return n;
}

/*
 * One migration's plan: its phases and statements, then the risk summed over
 * them; appended to `root` as JSON, or printed when `root` is NULL. `plans`
 * holds the migration's phases. A migration that leaves its tenant is HIGH
 * risk whatever its locks: the isolation gate refuses it.
 */
static void print_migration(const dc_migration *m,
                            const phase_plan *plans,
                            const live *lv,
                            const dc_lint_config *lc,
                            json_t *root)
{
	size_t escapes = leaves_tenant(m, lc);
	dc_lock_mode worst = DC_LOCK_NONE;
	dc_effect weff = DC_EFFECT_NONE;
	size_t nontx = 0, irrev = 0, blocking = 0, k, s;
	json_t *jm = NULL, *jphases = NULL;

	if (root) {
		jphases = json_array();
		jm = json_pack("{s:s, s:s, s:o}", "version", m->version, "name",
		               m->name ? m->name : "", "phases", jphases);
		json_array_append_new(root, jm);
	} else {
		cli_out("%s  %s\n", m->version, m->name ? m->name : "");
	}
	for (k = 0; k < m->nphases; k++) {
		const dc_phase *ph = &m->phases[k];
		json_t *jst = root ? json_array() : NULL;

		if (root)
			json_array_append_new(jphases,
			                      json_pack("{s:s, s:b, s:o}", "name", ph->name,
			                                "transactional", ph->transactional,
			                                "statements", jst));
		else
			cli_out("  phase %s (%s%s)\n", ph->name,
			        ph->transactional ? "transactional" : "non-transactional",
			        ph->batch_rows > 0 ? ", batched" : "");
		for (s = 0; s < plans[k].stmts.len; s++) {
			const dc_stmt_model *sm = &plans[k].stmts.items[s];

			if (sm->lock > worst)
				worst = sm->lock;
			if (sm->effect > weff)
				weff = sm->effect;
			if (!sm->transactional)
				nontx++;
			if (!sm->reversible)
				irrev++;
			if (dc_lock_blocks_writes(sm->lock))
				blocking++;
			if (jst)
				json_array_append_new(jst, stmt_json(sm, lv));
			else
				print_stmt(sm, lv);
		}
	}
	if (jm) {
		json_object_set_new(jm, "risk",
		                    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "strongest_lock",
		                              dc_lock_mode_name(worst), "worst_effect",
		                              dc_effect_name(weff), "blocking_statements",
		                              (json_int_t)blocking, "non_transactional",
		                              (json_int_t)nontx, "irreversible", (json_int_t)irrev,
		                              "leaves_tenant", (json_int_t)escapes));
	} else {
		cli_out("  risk: %s; strongest lock %s; %zu statement%s blocking writes; "
		        "%zu non-transactional; %zu without a mechanical inverse\n\n",
		        escapes                         ? "HIGH (leaves the tenant: the isolation "
		                                          "gate refuses it, see deployclaw lint)"
		        : weff == DC_EFFECT_REWRITE     ? "HIGH (table rewrite)"
		        : weff == DC_EFFECT_MAY_REWRITE ? "HIGH (possible table rewrite)"
		        : dc_lock_blocks_reads(worst)   ? "MEDIUM (blocks reads)"
		        : weff == DC_EFFECT_SCAN        ? "MEDIUM (full scan)"
		        : dc_lock_blocks_writes(worst)  ? "LOW (blocks writes briefly)"
		                                        : "LOW",
		        dc_lock_mode_name(worst), blocking, blocking == 1 ? "" : "s", nontx, irrev);
	}
}

static int run_plan(cli *c)
{
	dc_config *cfg = NULL;
	dc_migration_set *set = NULL;
	phase_plan *plans = NULL;
	dc_ptrvec names = DC_PTRVEC_INIT;
	live lv = { NULL, 0, false };
	dc_lint_config lc;
	json_t *root = NULL;
	dc_error err = { 0 };
	size_t i, np = 0;
	int rc;

	rc = cli_load_config(c, &cfg, &err);
	if (cli_flag(c, "safe")) {
		if (rc == DC_ENOTFOUND && !c->config_given) {
			dc_error_clear(&err);
			rc = run_safe(c, NULL);
		} else {
			rc = rc ? cli_fail(c, rc, &err) : run_safe(c, cfg);
		}
		dc_config_free(cfg);
		return rc;
	}
	if (rc)
		goto out;
	if (cfg->engine != DC_ENGINE_POSTGRES) {
		rc = dc_error_set(&err, DC_ECONFIG,
		                  "plan analyses PostgreSQL migrations; engine is 'sqlite'");
		goto out;
	}
	if ((rc = cli_load_migrations(cfg, false, &set, &err)) != 0)
		goto out;
	for (i = 0; i < set->count; i++)
		np += set->migrations[i].nphases;
	plans = calloc(np + 1, sizeof(*plans));
	if (!plans) {
		rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = analyze_plans(c, set, plans, &np, &names, &err)) != 0)
		goto out;
	if (c->nargs && !dc_migration_set_find(set, c->args[0])) {
		rc = dc_error_set(&err, DC_ENOTFOUND, "no migration '%s'", c->args[0]);
		goto out;
	}
	if (cli_flag(c, "live") && names.len && (rc = live_collect(c, cfg, &names, &lv, &err)) != 0)
		goto out;
	if ((rc = dc_lint_config_from(&lc, cfg, &err)) != 0)
		goto out;
	if (c->json)
		root = json_array();
	for (i = 0, np = 0; i < set->count; i++) {
		const dc_migration *m = &set->migrations[i];

		if (!c->nargs || strcmp(m->version, c->args[0]) == 0)
			print_migration(m, plans + np, &lv, &lc, root);
		np += m->nphases;
	}
	if (root)
		cli_print_json(root);
out:
	json_decref(root);
	for (i = 0; plans && i < np; i++)
		dc_stmt_list_release(&plans[i].stmts);
	free(plans);
	for (i = 0; i < lv.n; i++)
		free(lv.v[i].name);
	free(lv.v);
	dc_ptrvec_release(&names, NULL);
	dc_migration_set_free(set);
	dc_config_free(cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

const cli_command cmd_plan = {
	"plan",
	"[--safe] [VERSION | MIGRATION]",
	"show each statement's locks, rewrites and risk; --safe rewrites a migration safely",
	"For every migration (or VERSION) and phase: each statement's lock on every\n"
	"relation (PostgreSQL 15's lock table), whether it rewrites or scans the table,\n"
	"whether it can run in a transaction, and a risk summary. --live adds each\n"
	"table's row estimate and size from every shard's catalog, over its tenants\n"
	"(one query per shard). --safe MIGRATION (a version or a file) writes the\n"
	"migration rewritten into safe phases as native YAML. The configured migrations\n"
	"are checked against deployclaw.sum first (exit 4); a MIGRATION given as a\n"
	"file is not.",
	plan_options,
	run_plan,
	NULL,
	1,
};
