/*
 * deployclaw init [DIR] — a new project: config, an example migration, its
 * sum file, a signing key, and the ledger's first entry.
 */
#include <stdlib.h>
#include <string.h>

#include <deployclaw/config.h>
#include <deployclaw/ledger.h>
#include <deployclaw/migration.h>

#include "cli.h"

static const char example_migration[] =
        "# An example migration in deployclaw's native format (docs/migrations.md).\n"
        "# Each phase has an `up` and a `down`; `verify` assertions must all be true\n"
        "# before a tenant commits, or the tenant is rolled back.\n"
        "version: \"0001\"\n"
        "name: create accounts\n"
        "phases:\n"
        "  - name: expand\n"
        "    up: |\n"
        "      CREATE TABLE accounts (\n"
        "        id INTEGER PRIMARY KEY,\n"
        "        email TEXT NOT NULL UNIQUE,\n"
        "        created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
        "      );\n"
        "      CREATE INDEX accounts_created_at ON accounts (created_at);\n"
        "    down: |\n"
        "      DROP TABLE accounts;\n"
        "verify:\n"
        "  - SELECT count(*) = 0 FROM accounts WHERE email IS NULL\n";

#define EXAMPLE_NAME "0001_create_accounts.yaml"

static const cli_option init_options[] = {
	{ NULL, 0, NULL, NULL, false },
};

/* The first line of a sum file is "total <hex>". */
static void sum_total(const dc_migration_set *set, char out[65])
{
	dc_strbuf sb = DC_STRBUF_INIT;

	out[0] = '\0';
	if (dc_sum_render(set, &sb) == 0 && strncmp(sb.buf, "total ", 6) == 0)
		snprintf(out, 65, "%.64s", sb.buf + 6);
	dc_strbuf_release(&sb);
}

static int run_init(cli *c)
{
	const char *dir = c->nargs ? c->args[0] : ".";
	char *config_path = NULL, *mig_dir = NULL, *mig_path = NULL, *tenants = NULL;
	dc_config *cfg = NULL;
	dc_migration_set *set = NULL;
	json_t *data = NULL;
	const char *tmpl = dc_config_template();
	char key_id[17] = "", total[65];
	dc_error err = { 0 };
	int64_t seq = 0;
	int rc;
	size_t i;

	config_path = dc_path_join(dir, "deployclaw.yaml");
	mig_dir = dc_path_join(dir, "migrations");
	tenants = dc_path_join(dir, "tenants");
	if (!config_path || !mig_dir || !tenants) {
		rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
		goto out;
	}
	mig_path = dc_path_join(mig_dir, EXAMPLE_NAME);
	if (!mig_path) {
		rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
		goto out;
	}
	/* Refuse before writing anything, so a refused init leaves no debris. */
	if (dc_path_exists(config_path)) {
		rc = dc_error_set(
		        &err, DC_EEXISTS,
		        "'%s' already exists: this folder is already a deployclaw project",
		        config_path);
		goto out;
	}
	if ((rc = dc_mkdir_p(dir, 0755, &err)) != 0)
		goto out;
	if ((rc = dc_file_write_atomic(config_path, tmpl, strlen(tmpl), 0644, true, &err)) != 0)
		goto out;
	if ((rc = dc_config_load(&cfg, config_path, &err)) != 0)
		goto out;
	if (dc_path_exists(cfg->audit.key)) {
		rc = dc_error_set(&err, DC_EEXISTS, "signing key '%s' already exists",
		                  cfg->audit.key);
		goto out;
	}
	if ((rc = dc_mkdir_p(mig_dir, 0755, &err)) != 0 ||
	    (rc = dc_mkdir_p(tenants, 0755, &err)) != 0)
		goto out;
	if ((rc = dc_file_write_atomic(mig_path, example_migration, strlen(example_migration), 0644,
	                               true, &err)) != 0)
		goto out;
	if ((rc = dc_signing_key_generate(cfg->audit.key, key_id, &err)) != 0)
		goto out;
	if ((rc = cli_load_migrations(cfg, true, &set, &err)) != 0)
		goto out;
	if ((rc = dc_sum_write(set, &err)) != 0)
		goto out;
	sum_total(set, total);

	data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[]}", "dir", dir, "engine",
	                 cfg->engine == DC_ENGINE_POSTGRES ? "postgres" : "sqlite", "key_id",
	                 key_id, "sum_total", total, "layout", dc_layout_name(set->layout),
	                 "migrations");
	if (!data) {
		rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < set->count; i++)
		json_array_append_new(json_object_get(data, "migrations"),
		                      json_string(set->migrations[i].version));
	if ((rc = cli_record(cfg, "init", data, &seq, &err)) != 0)
		goto out;

	if (c->json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "dir", dir, "config",
		                      config_path, "migrations", cfg->migrations, "key",
		                      cfg->audit.key, "key_id", key_id, "ledger", cfg->audit.ledger,
		                      "ledger_seq", (json_int_t)seq);

		cli_print_json(o);
		json_decref(o);
	} else if (!c->quiet) {
		cli_out("initialised a deployclaw project in '%s'\n", dir);
		cli_out("  %-44s fleet configuration (engine: sqlite)\n", config_path);
		cli_out("  %-44s example migration\n", mig_path);
		cli_out("  %s/%-*s checksums of the migrations\n", cfg->migrations,
		        (int)(43 - strlen(cfg->migrations)), "deployclaw.sum");
		cli_out("  %-44s Ed25519 signing key (key id %s, mode 0600)\n", cfg->audit.key,
		        key_id);
		cli_out("  %s%-*s public key for auditors\n", cfg->audit.key,
		        (int)(44 - strlen(cfg->audit.key)), ".pub");
		cli_out("  %-44s audit ledger (entry %lld: init)\n", cfg->audit.ledger,
		        (long long)seq);
		cli_out("  %-44s put one SQLite database per tenant here\n", tenants);
		cli_out("next: add migrations, then 'deployclaw hash' to record their checksums\n");
	}
out:
	json_decref(data);
	dc_migration_set_free(set);
	dc_config_free(cfg);
	free(config_path);
	free(mig_dir);
	free(mig_path);
	free(tenants);
	return rc ? cli_fail(c, rc, &err) : 0;
}

const cli_command cmd_init = {
	"init",
	"[DIR]",
	"create a project: deployclaw.yaml, migrations/, a signing key, the ledger",
	"Writes a commented deployclaw.yaml (SQLite engine, one database per tenant),\n"
	"migrations/ with one example migration and its deployclaw.sum, an Ed25519\n"
	"signing key for the audit ledger, and the ledger's first entry. Refuses to\n"
	"overwrite an existing project.",
	init_options,
	run_init,
	NULL,
	1,
};
