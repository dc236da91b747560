/*
 * The resolved config as YAML, the `deployclaw init` template, and amounts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include <deployclaw/config.h>

#include "util/util.h"

size_t dc_amount_of(dc_amount a, size_t total)
{
	size_t v, n;

	if (a.value <= 0 || total == 0)
		return 0;
	if (!a.percent)
		return (uint64_t)a.value >= total ? total : (size_t)a.value;
	if (a.value >= 100)
		return total;
	v = (size_t)a.value;
	/* ceil(total * v / 100) without overflowing total * v */
	n = total / 100 * v + ((total % 100) * v + 99) / 100;
	if (n == 0)
		n = 1;
	return n > total ? total : n;
}

/* A double-quoted YAML string: always quoted, so no value is read back as another type. */
static void add_quoted(dc_strbuf *out, const char *s)
{
	dc_strbuf_addch(out, '"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			dc_strbuf_addf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			dc_strbuf_addf(out, "\\x%02x", ch);
		else
			dc_strbuf_addch(out, (char)ch);
	}
	dc_strbuf_addch(out, '"');
}

static void add_dsn(dc_strbuf *out, const char *dsn)
{
	char *red = dc_dsn_redact(dsn);

	if (!red) {
		/* never fall back to the raw DSN: fail the whole dump instead */
		out->failed = out->failed ? out->failed : DC_ENOMEM;
		return;
	}
	add_quoted(out, red);
	free(red);
}

static void add_amount(dc_strbuf *out, dc_amount a)
{
	dc_strbuf_addf(out, "%lld%s", (long long)a.value, a.percent ? "%" : "");
}

static void add_duration(dc_strbuf *out, const char *indent, const char *key, int64_t ms)
{
	char buf[32];

	dc_duration_format(buf, sizeof(buf), ms);
	dc_strbuf_addf(out, "%s%s: %s\n", indent, key, buf);
}

/* `true` is the default scope (what the migration wrote), as users write it. */
static const char *scope_name(dc_check_scope s)
{
	return s == DC_CHECK_FULL ? "full" : s == DC_CHECK_CHANGED ? "true" : "false";
}

static const char *engine_name(dc_engine_kind e)
{
	return e == DC_ENGINE_POSTGRES ? "postgres" : "sqlite";
}

static const char *model_name(dc_tenancy_model m)
{
	switch (m) {
	case DC_TENANCY_SCHEMA:
		return "schema";
	case DC_TENANCY_ROW:
		return "row";
	case DC_TENANCY_DATABASE:
	default:
		return "database";
	}
}

int dc_config_dump(const dc_config *cfg, dc_strbuf *out)
{
	size_t i, j;

	dc_strbuf_addf(out, "engine: %s\n", engine_name(cfg->engine));
	dc_strbuf_adds(out, "migrations: ");
	add_quoted(out, cfg->migrations);
	dc_strbuf_addf(out, "\ntenancy:\n  model: %s\n", model_name(cfg->tenancy.model));
	if (cfg->tenancy.glob) {
		dc_strbuf_adds(out, "  glob: ");
		add_quoted(out, cfg->tenancy.glob);
		dc_strbuf_addch(out, '\n');
	}
	if (cfg->tenancy.pattern) {
		dc_strbuf_adds(out, "  pattern: ");
		add_quoted(out, cfg->tenancy.pattern);
		dc_strbuf_addch(out, '\n');
	}
	if (cfg->tenancy.query) {
		dc_strbuf_adds(out, "  query: ");
		add_quoted(out, cfg->tenancy.query);
		dc_strbuf_addch(out, '\n');
	}
	if (cfg->tenancy.nlist) {
		dc_strbuf_adds(out, "  list:\n");
		for (i = 0; i < cfg->tenancy.nlist; i++) {
			dc_strbuf_adds(out, "    - ");
			add_quoted(out, cfg->tenancy.list[i]);
			dc_strbuf_addch(out, '\n');
		}
	}
	if (cfg->tenancy.nshared_schemas) {
		dc_strbuf_adds(out, "  shared_schemas:\n");
		for (i = 0; i < cfg->tenancy.nshared_schemas; i++) {
			dc_strbuf_adds(out, "    - ");
			add_quoted(out, cfg->tenancy.shared_schemas[i]);
			dc_strbuf_addch(out, '\n');
		}
	}
	if (cfg->tenancy.run_as) {
		dc_strbuf_adds(out, "  run_as: ");
		add_quoted(out, cfg->tenancy.run_as);
		dc_strbuf_addch(out, '\n');
	}
	if (cfg->tenancy.column) {
		dc_strbuf_adds(out, "  column: ");
		add_quoted(out, cfg->tenancy.column);
		dc_strbuf_addch(out, '\n');
	}
	if (cfg->tenancy.app_role) {
		dc_strbuf_adds(out, "  app_role: ");
		add_quoted(out, cfg->tenancy.app_role);
		dc_strbuf_addch(out, '\n');
	}
	if (cfg->nshards == 0)
		dc_strbuf_adds(out, "shards: []\n");
	else
		dc_strbuf_adds(out, "shards:\n");
	for (i = 0; i < cfg->nshards; i++) {
		const dc_shard_config *sh = &cfg->shards[i];

		dc_strbuf_adds(out, "  - name: ");
		add_quoted(out, sh->name);
		dc_strbuf_adds(out, "\n    primary: ");
		add_dsn(out, sh->primary);
		dc_strbuf_addch(out, '\n');
		if (sh->nreplicas == 0)
			dc_strbuf_adds(out, "    replicas: []\n");
		else
			dc_strbuf_adds(out, "    replicas:\n");
		for (j = 0; j < sh->nreplicas; j++) {
			dc_strbuf_adds(out, "      - ");
			add_dsn(out, sh->replicas[j]);
			dc_strbuf_addch(out, '\n');
		}
		/* 0 means "as rollout.parallel": show the effective budget */
		dc_strbuf_addf(out, "    parallel: %d\n",
		               sh->parallel ? sh->parallel : cfg->rollout.parallel);
	}
	dc_strbuf_adds(out, "gates:\n");
	add_duration(out, "  ", "lock_timeout", cfg->gates.lock_timeout_ms);
	add_duration(out, "  ", "statement_timeout", cfg->gates.statement_timeout_ms);
	dc_strbuf_addf(out, "  require_down: %s\n", cfg->gates.require_down ? "true" : "false");
	dc_strbuf_addf(out, "  integrity_check: %s\n", scope_name(cfg->gates.integrity_check));
	dc_strbuf_addf(out, "  foreign_key_check: %s\n", scope_name(cfg->gates.foreign_key_check));
	dc_strbuf_addf(out, "  allow_out_of_order: %s\n",
	               cfg->gates.allow_out_of_order ? "true" : "false");
	dc_strbuf_addf(out, "  isolation:\n    dynamic_sql: %s\n",
	               cfg->gates.isolation_allow_dynamic_sql ? "allow" : "refuse");
	dc_strbuf_adds(out, "  replication_lag:\n");
	add_duration(out, "    ", "max", cfg->gates.lag_max_ms);
	add_duration(out, "    ", "timeout", cfg->gates.lag_timeout_ms);
	dc_strbuf_adds(out, "rollout:\n  canary: ");
	add_amount(out, cfg->rollout.canary);
	dc_strbuf_adds(out, "\n  waves: [");
	for (i = 0; i < cfg->rollout.nwaves; i++) {
		if (i)
			dc_strbuf_adds(out, ", ");
		add_amount(out, cfg->rollout.waves[i]);
	}
	dc_strbuf_addf(out, "]\n  max_failures: %d\n  parallel: %d\n  retries: %d\n  backup: %s\n",
	               cfg->rollout.max_failures, cfg->rollout.parallel, cfg->rollout.retries,
	               cfg->rollout.backup ? "true" : "false");
	if (cfg->lint.nrules) {
		static const char *const sev[] = { "off", "info", "warning", "error" };

		dc_strbuf_adds(out, "lint:\n  rules:\n");
		for (i = 0; i < cfg->lint.nrules; i++) {
			dc_strbuf_adds(out, "    ");
			add_quoted(out, cfg->lint.rules[i].rule);
			dc_strbuf_addf(out, ": %s\n", sev[cfg->lint.rules[i].severity & 3]);
		}
	}
	dc_strbuf_adds(out, "audit:\n  ledger: ");
	add_quoted(out, cfg->audit.ledger);
	dc_strbuf_adds(out, "\n  key: ");
	add_quoted(out, cfg->audit.key);
	dc_strbuf_addch(out, '\n');
	return dc_strbuf_error(out);
}

static const char template_text[] =
        "# deployclaw.yaml: one file per fleet. Every key is described in docs/config.md.\n"
        "#\n"
        "# Any value may use ${VAR} or ${VAR:-default} from the environment ($$ is a\n"
        "# literal $). Keep passwords out of this file: use PGPASSWORD, ~/.pgpass or a\n"
        "# service file, as for any libpq program. deployclaw never prints them.\n"
        "\n"
        "# sqlite | postgres\n"
        "engine: sqlite\n"
        "\n"
        "# the folder of migrations, relative to this file\n"
        "migrations: migrations\n"
        "\n"
        "tenancy:\n"
        "  # schema | database | row (sqlite: database, one file per tenant)\n"
        "  model: database\n"
        "  # sqlite: the tenant files; a tenant's id is its file name without extension\n"
        "  glob: tenants/*.db\n"
        "  # postgres: a LIKE pattern of schema (or database) names ...\n"
        "  # pattern: \"tenant_%\"\n"
        "  # ... or a query returning the tenant names ...\n"
        "  # query: \"SELECT schema_name FROM app.tenants\"\n"
        "  # ... or an explicit list\n"
        "  # list: [acme, globex]\n"
        "\n"
        "# postgres: one entry per primary; libpq conninfo or postgres:// URI\n"
        "# shards:\n"
        "#   - name: eu-1\n"
        "#     primary: \"host=10.0.0.5 dbname=app user=deploy\"\n"
        "#     replicas: [\"host=10.0.0.6 dbname=app user=deploy\"]\n"
        "#     parallel: 4                 # tenants migrated at once on this shard\n"
        "\n"
        "gates:\n"
        "  lock_timeout: 2s               # SET lock_timeout for every migration\n"
        "  statement_timeout: 5m          # SET statement_timeout\n"
        "  require_down: true             # refuse migrations without down steps\n"
        "  replication_lag: { max: 500ms, timeout: 10m }\n"
        "  integrity_check: true          # sqlite, before each commit: PRAGMA integrity_check of the\n"
        "                                 # tables the migration wrote (full: the whole file)\n"
        "  foreign_key_check: true        # the same for foreign keys, with the tables referencing them\n"
        "  allow_out_of_order: false      # refuse versions older than ones already applied\n"
        "\n"
        "rollout:\n"
        "  canary: 1                      # a count or a percentage, migrated first\n"
        "  waves: [10%, 50%, 100%]        # then these slices of the tenants\n"
        "  max_failures: 0                # per wave; one more stops the run\n"
        "  # parallel: 4                  # default: the number of CPUs\n"
        "  retries: 3                     # per tenant: lock timeouts, deadlocks, lost connections\n"
        "  backup: false                  # sqlite: copy each tenant before touching it\n"
        "\n"
        "audit:\n"
        "  ledger: audit/ledger.jsonl\n"
        "  key: audit/signing.key         # create it with: deployclaw audit keygen\n";

const char *dc_config_template(void)
{
	return template_text;
}

int dc_config_dump_json(const dc_config *cfg, dc_strbuf *out)
{
	dc_strbuf yaml = DC_STRBUF_INIT;
	struct fy_document *doc = NULL;
	char *json = NULL;
	size_t len;
	int rc;

	if ((rc = dc_config_dump(cfg, &yaml)) != 0)
		goto out;
	/* The dump is YAML; libfyaml's emitter turns it into JSON. */
	doc = fy_document_build_from_string(NULL, yaml.buf, yaml.len);
	json = doc ? fy_emit_document_to_string(doc, FYECF_MODE_JSON) : NULL;
	if (!json) {
		rc = DC_ENOMEM;
		goto out;
	}
	len = strlen(json);
	dc_strbuf_add(out, json, len);
	if (len == 0 || json[len - 1] != '\n')
		dc_strbuf_addch(out, '\n');
	rc = dc_strbuf_error(out);
out:
	free(json);
	fy_document_destroy(doc);
	dc_strbuf_release(&yaml);
	return rc;
}
