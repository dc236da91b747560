/*
 * rollout_cli.c — what apply, rollback and demo share: load, sign, roll
 * out, show progress, print the summary or the JSON log.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <deployclaw/ledger.h>
#include <deployclaw/report.h>
#include <deployclaw/rollout.h>

#include "cli.h"
#include "report/report_internal.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

typedef struct progress_ctx {
	cli *c;
	bool tty;
	int64_t started;
	int64_t last_draw;
} progress_ctx;

static void on_progress(const dc_rollout_progress *p, void *ctx)
{
	progress_ctx *pc = ctx;
	dc_strbuf line = DC_STRBUF_INIT;
	int64_t now = dc_time_mono_ms();

	if (pc->c->quiet || pc->c->json)
		return;
	if (!pc->started)
		pc->started = now;
	if (pc->tty) {
		/* redraw at most ten times a second, and always at a wave's end */
		if (!p->wave_done && p->outcome && now - pc->last_draw < 100)
			return;
		pc->last_draw = now;
		dc_report_progress_line(p, now - pc->started, &line);
		fprintf(stderr, "\r\033[K%s%s", line.buf, p->wave_done ? "\n" : "");
		fflush(stderr);
	} else if (p->wave_done) {
		dc_report_progress_line(p, now - pc->started, &line);
		cli_out("%s\n", line.buf);
	}
	dc_strbuf_release(&line);
}

int cli_parse_parallel(cli *c, int *out)
{
	const char *v = cli_value(c, "parallel");
	char *end = NULL;
	long n;

	*out = 0;
	if (!v)
		return 0;
	n = strtol(v, &end, 10);
	if (!*v || *end || n < 1 || n > 1024) {
		cli_error(c, "--parallel '%s': expected a number of workers from 1 to 1024", v);
		return 2;
	}
	*out = (int)n;
	return 0;
}

static int config_hash(const char *path, char out[65], dc_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = dc_file_read(&text, &len, path, 1 << 20, err);

	if (rc == 0)
		dc_sha256_hex(out, text, len);
	free(text);
	return rc;
}

/* Each shard's shard-scoped migrations (`scope: shard`): planned, or what ran. */
static void print_shards(const dc_rollout_report *rep)
{
	size_t i;

	for (i = 0; i < rep->nshards; i++) {
		const dc_shard_outcome *o = &rep->shards[i];

		if (!o->pending)
			cli_out("  shard %-18s no shard migration to run\n", o->shard);
		else if (o->status == DC_TENANT_FAILED)
			cli_out("  shard %-18s shard migrations failed, rolled back: %s\n",
			        o->shard, o->error);
		else
			cli_out("  shard %-18s shard migration%s %s %s\n", o->shard,
			        o->pending == 1 ? "" : "s", o->versions,
			        o->status == DC_TENANT_SUCCEEDED
			                ? (rep->direction == DC_ROLLOUT_APPLY ? "applied"
			                                                      : "rolled back")
			                : "pending");
	}
}

/* A dry run's plan: the gates, the shards and the first tenants that need work. */
static void print_dry_run(const dc_rollout_report *rep)
{
	size_t i, shown = 0;

	cli_out("plan (dry run, nothing changed): %zu of %zu tenants need work, target "
	        "'%s'\n",
	        rep->planned, rep->ntenants, rep->target);
	print_shards(rep);
	for (i = 0; i < rep->ngates; i++)
		cli_out("  gate %-18s %-7s %s\n", rep->gates[i].gate,
		        dc_gate_verdict_name(rep->gates[i].verdict), rep->gates[i].detail);
	for (i = 0; i < rep->ntenants && shown < 10; i++) {
		const dc_tenant_outcome *o = &rep->outcomes[i];

		if (strcmp(o->from, rep->target) == 0)
			continue;
		cli_out("  %-24s '%s' -> '%s'\n", o->tenant->id, o->from[0] ? o->from : "(none)",
		        rep->target);
		shown++;
	}
	if (rep->planned > shown)
		cli_out("  ... and %zu more tenants\n", rep->planned - shown);
}

/*
 * What the rollout did, as the execution log (--json) or in words, and the
 * gates that warned when one refused. `rc` is the rollout's result.
 */
static void print_outcome(cli *c, const cli_rollout_args *a, dc_rollout_report *rep, int rc)
{
	char task[256];

	if (c->json) {
		json_t *log;

		if (a->task)
			snprintf(task, sizeof(task), "%s", a->task);
		else
			snprintf(task, sizeof(task), "%s%s %s across %zu tenants",
			         a->dry_run ? "plan: " : "",
			         a->direction == DC_ROLLOUT_APPLY ? "apply migrations up to"
			                                          : "roll back to",
			         a->direction == DC_ROLLOUT_APPLY ? rep->target
			         : a->to                          ? a->to
			                                          : "the previous version",
			         rep->ntenants);
		log = dc_report__execution_log(rep, task);
		if (log)
			cli_print_json(log);
		json_decref(log);
	} else if (!c->quiet && a->dry_run && rc == 0) {
		print_dry_run(rep);
	} else if (!c->quiet && rep->nwaves) {
		dc_strbuf sum = DC_STRBUF_INIT;

		print_shards(rep);
		dc_report_summary(rep, c->verbose ? 1000 : 20, &sum);
		cli_write(sum.buf, sum.len);
		dc_strbuf_release(&sum);
	} else if (!c->quiet && (rc == 0 || rep->nshards)) {
		print_shards(rep);
		if (rc == 0)
			cli_out("nothing to do: all %zu tenants are at '%s'\n", rep->ntenants,
			        rep->target[0] ? rep->target : "(none)");
	}
	if (rc == DC_EGATE && !c->json) {
		size_t i;

		for (i = 0; i < rep->ngates; i++)
			if (rep->gates[i].verdict == DC_GATE_WARN)
				cli_warn(c, "gate '%s': %s", rep->gates[i].gate,
				         rep->gates[i].detail);
	}
}

int cli_rollout(cli *c, const cli_rollout_args *a)
{
	dc_config *cfg = NULL;
	dc_migration_set *set = NULL;
	dc_signing_key *key = NULL;
	dc_ledger *ledger = NULL;
	dc_rollout_report *rep = NULL;
	dc_rollout_opts opts = DC_ROLLOUT_OPTIONS_INIT;
	progress_ctx pc;
	struct sigaction sa, old_int, old_term;
	dc_error err = { 0 };
	char chash[65];
	int rc;

	memset(&pc, 0, sizeof(pc));
	memset(&sa, 0, sizeof(sa));
	if ((rc = cli_load_config(c, &cfg, &err)) != 0)
		goto out;
	if ((rc = config_hash(cfg->path, chash, &err)) != 0)
		goto out;
	/* the sum file is checked by the rollout's preflight gate, which records it */
	if ((rc = cli_load_migrations(cfg, true, &set, &err)) != 0)
		goto out;
	rc = dc_signing_key_load(&key, cfg->audit.key, &err);
	if (rc == DC_ENOTFOUND) {
		dc_error_clear(&err);
		rc = dc_error_set(&err, rc,
		                  "signing key '%s' not found: run 'deployclaw audit keygen' first",
		                  cfg->audit.key);
	}
	if (rc)
		goto out;
	if (!a->dry_run && (rc = dc_ledger_open(&ledger, cfg->audit.ledger, key, NULL, &err)) != 0)
		goto out;

	opts.direction = (dc_rollout_direction)a->direction;
	opts.to_version = a->to;
	opts.tenants = a->tenants;
	opts.ntenants = a->ntenants;
	opts.dry_run = a->dry_run;
	opts.parallel = a->parallel;
	opts.allow_out_of_order = a->allow_out_of_order;
	opts.stop = &stop_flag;
	opts.config_hash = chash;
	opts.ledger_pubkey = key->pk;
	pc.c = c;
	pc.tty = isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
	opts.progress = on_progress;
	opts.progress_ctx = &pc;

	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	rc = dc_rollout_run(&rep, cfg, set, ledger, &opts, &err);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);

	if (rep)
		print_outcome(c, a, rep, rc);
out:
	dc_rollout_report_free(rep);
	dc_ledger_close(ledger);
	dc_signing_key_free(key);
	dc_migration_set_free(set);
	dc_config_free(cfg);
	if (rc == DC_EGATE)
		cli_error(c, "%s; nothing was changed", err.message);
	else if (rc)
		return cli_fail(c, rc, &err);
	return cli_exit_code(rc);
}

int cli_rollout_command(cli *c, int direction)
{
	const dc_ptrvec *tenants = cli_values(c, "tenant");
	cli_rollout_args a = { direction, NULL, NULL, 0, false, 0, false, NULL };
	int rc;

	if ((rc = cli_parse_parallel(c, &a.parallel)) != 0)
		return rc;
	a.to = cli_value(c, "to");
	a.tenants = (const char *const *)tenants->items;
	a.ntenants = tenants->len;
	a.dry_run = cli_flag(c, "dry-run") > 0;
	/* rollback has no such option: cli_flag reads 0 */
	a.allow_out_of_order = cli_flag(c, "allow-out-of-order") > 0;
	return cli_rollout(c, &a);
}
