/*
 * common.c — what several commands share: loading the migration set behind
 * its sum check, and recording to the ledger.
 */
#include <stdlib.h>

#include <deployclaw/config.h>
#include <deployclaw/ledger.h>
#include <deployclaw/migration.h>

#include "cli.h"
#include "ledger/ledger_json.h"

int cli_load_migrations(const dc_config *cfg, bool skip_sum, dc_migration_set **out, dc_error *err)
{
	dc_dialect dialect =
	        cfg->engine == DC_ENGINE_POSTGRES ? DC_DIALECT_POSTGRES : DC_DIALECT_SQLITE;
	int rc;

	*out = NULL;
	rc = dc_migration_set_load(out, cfg->migrations, dialect, err);
	if (rc == 0 && !skip_sum)
		rc = dc_sum_check(*out, err);
	if (rc) {
		dc_migration_set_free(*out);
		*out = NULL;
	}
	return rc;
}

int cli_record(const dc_config *cfg, const char *event, json_t *data, int64_t *seq, dc_error *err)
{
	dc_signing_key *key = NULL;
	dc_ledger *ledger = NULL;
	int rc;

	rc = dc_signing_key_load(&key, cfg->audit.key, err);
	if (rc == DC_ENOTFOUND) {
		dc_error_clear(err);
		rc = dc_error_set(err, rc,
		                  "signing key '%s' not found: run 'deployclaw audit keygen' first",
		                  cfg->audit.key);
	}
	if (rc)
		goto out;
	if ((rc = dc_ledger_open(&ledger, cfg->audit.ledger, key, NULL, err)) != 0)
		goto out;
	rc = dc_ledger__append(ledger, event, data, seq, err);
out:
	dc_ledger_close(ledger);
	dc_signing_key_free(key);
	return rc;
}

void cli_print_json(json_t *value)
{
	char *s = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s) {
		cli_out("%s\n", s);
		free(s);
	}
}
