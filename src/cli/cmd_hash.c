/*
 * deployclaw hash [--check] — write or verify deployclaw.sum.
 */
#include <stdlib.h>
#include <string.h>

#include <deployclaw/config.h>
#include <deployclaw/migration.h>

#include "cli.h"

static const cli_option hash_options[] = {
	{ "check", 0, NULL, "verify deployclaw.sum without writing (exit 4 on mismatch)", false },
	{ NULL, 0, NULL, NULL, false },
};

static int run_hash(cli *c)
{
	dc_config *cfg = NULL;
	dc_migration_set *set = NULL;
	dc_strbuf sum = DC_STRBUF_INIT;
	json_t *data = NULL;
	char *sum_path = NULL, total[65] = "";
	dc_error err = { 0 };
	int64_t seq = 0;
	bool check = cli_flag(c, "check") > 0;
	int rc;
	size_t i;

	if ((rc = cli_load_config(c, &cfg, &err)) != 0)
		goto out;
	if ((rc = cli_load_migrations(cfg, true, &set, &err)) != 0)
		goto out;
	sum_path = dc_sum_path(set);
	if ((rc = dc_sum_render(set, &sum)) != 0) {
		dc_error_set(&err, rc, "out of memory rendering the sum file");
		goto out;
	}
	if (strncmp(sum.buf, "total ", 6) == 0)
		snprintf(total, sizeof(total), "%.64s", sum.buf + 6);

	if (check) {
		rc = dc_sum_check(set, &err);
		if (rc == DC_ENOTFOUND) {
			/* nothing to compare with is an integrity failure, not a usage error */
			dc_error_clear(&err);
			rc = dc_error_set(&err, DC_EINTEGRITY,
			                  "no sum file '%s': run 'deployclaw hash' to write it",
			                  sum_path);
		}
		if (rc)
			goto out;
		if (c->json) {
			json_t *o = json_pack("{s:b, s:s, s:i, s:s}", "ok", 1, "sum", sum_path,
			                      "migrations", (int)set->count, "total", total);

			cli_print_json(o);
			json_decref(o);
		} else if (!c->quiet) {
			cli_out("'%s' matches %zu migration%s (total %.12s)\n", sum_path,
			        set->count, set->count == 1 ? "" : "s", total);
		}
		goto out;
	}

	/* Recorded before it is done: the ledger never misses a change. */
	data = json_pack("{s:s, s:s, s:s, s:[]}", "sum", sum_path, "total", total, "layout",
	                 dc_layout_name(set->layout), "migrations");
	if (!data) {
		rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < set->count; i++)
		json_array_append_new(json_object_get(data, "migrations"),
		                      json_pack("{s:s, s:s}", "version", set->migrations[i].version,
		                                "checksum", set->migrations[i].checksum));
	if ((rc = cli_record(cfg, "hash", data, &seq, &err)) != 0)
		goto out;
	if ((rc = dc_sum_write(set, &err)) != 0)
		goto out;
	if (c->json) {
		json_t *o =
		        json_pack("{s:s, s:i, s:s, s:I}", "sum", sum_path, "migrations",
		                  (int)set->count, "total", total, "ledger_seq", (json_int_t)seq);

		cli_print_json(o);
		json_decref(o);
	} else if (!c->quiet) {
		cli_out("wrote '%s': %zu migration%s (%s layout), total %.12s\n", sum_path,
		        set->count, set->count == 1 ? "" : "s", dc_layout_name(set->layout), total);
		if (c->verbose)
			for (i = 0; i < set->count; i++)
				cli_out("  %-16s %s  %s\n", set->migrations[i].version,
				        set->migrations[i].checksum, set->migrations[i].name);
	}
out:
	json_decref(data);
	dc_strbuf_release(&sum);
	free(sum_path);
	dc_migration_set_free(set);
	dc_config_free(cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

const cli_command cmd_hash = {
	"hash",
	"",
	"write deployclaw.sum (the migrations' chained checksums), or --check it",
	"Every command that reads migrations verifies deployclaw.sum first: an edited,\n"
	"added, removed or reordered migration is reported by name (exit 4). Run\n"
	"'deployclaw hash' after adding a migration; the new sum is recorded in the\n"
	"audit ledger.",
	hash_options,
	run_hash,
	NULL,
	0,
};
