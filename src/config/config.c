/*
 * deployclaw.yaml -> dc_config: the public API.
 *
 * The YAML is read by the shared reader (src/util/yaml.c), which gives
 * every node its line and column; schema.c checks it against the keys each
 * section has and fills dc_config, values.c reads each value, validate.c
 * checks the rules across values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config_internal.h"

/* ------------------------------------------------------------------------ */
/* Public API.                                                              */

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void dc_config_free(dc_config *cfg)
{
	size_t i, j;

	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->dir);
	free(cfg->migrations);
	free(cfg->tenancy.glob);
	free(cfg->tenancy.pattern);
	free(cfg->tenancy.query);
	free(cfg->tenancy.run_as);
	for (i = 0; i < cfg->tenancy.nlist; i++)
		free(cfg->tenancy.list[i]);
	free(cfg->tenancy.list);
	for (i = 0; i < cfg->tenancy.nshared_schemas; i++)
		free(cfg->tenancy.shared_schemas[i]);
	free(cfg->tenancy.shared_schemas);
	free(cfg->tenancy.column);
	free(cfg->tenancy.app_role);
	for (i = 0; i < cfg->nshards; i++) {
		dc_shard_config *sh = &cfg->shards[i];

		free(sh->name);
		wipe_free(sh->primary);
		for (j = 0; j < sh->nreplicas; j++)
			wipe_free(sh->replicas[j]);
		free(sh->replicas);
	}
	free(cfg->shards);
	free(cfg->rollout.waves);
	for (i = 0; i < cfg->lint.nrules; i++)
		free(cfg->lint.rules[i].rule);
	free(cfg->lint.rules);
	free(cfg->audit.ledger);
	free(cfg->audit.key);
	free(cfg);
}

int dc_config_parse(dc_config **out, const char *path, const char *text, size_t len, dc_error *err)
{
	ctx c = { path, text, len, err };
	dc_config *cfg = NULL;
	dc_yaml_node *root = NULL;
	dc_yaml_problem why;
	const char *nul;
	size_t bad = 0;
	int rc = 0;

	*out = NULL;
	if (!text && len > 0)
		return dc_error_set(err, DC_EINVAL, "no configuration text");
	if (len > DC_CONFIG_MAX_BYTES) {
		rc = dc_error_set_at(err, DC_ECONFIG, path, 0, 0,
		                     "configuration is larger than %d bytes", DC_CONFIG_MAX_BYTES);
		goto out;
	}
	nul = len ? memchr(text, '\0', len) : NULL;
	if (!dc_utf8_valid(text ? text : "", len, &bad) || nul) {
		int line = 1, col = 1;
		size_t i, at = nul && (size_t)(nul - text) < bad ? (size_t)(nul - text) : bad;

		for (i = 0; i < at && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		rc = dc_config__fail_at(&c, line, col, "%s",
		                        nul && (size_t)(nul - text) == at
		                                ? "the file contains a NUL byte"
		                                : "the file is not valid UTF-8");
		goto out;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	cfg->path = path ? dc_strdup(path) : NULL;
	cfg->dir = path ? dc_path_dirname(path) : dc_strdup(".");
	if ((path && !cfg->path) || !cfg->dir || dc_config__set_defaults(cfg) != 0) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	c.text = text ? text : "";
	rc = dc_yaml__parse(&root, c.text, len, &why);
	if (rc == DC_EPARSE)
		rc = dc_config__fail_at(&c, why.line, why.col, "%s%s",
		                        why.syntax ? "syntax error: " : "", why.msg);
	else if (rc != 0)
		rc = dc_error_set(err, rc, "out of memory");
	if (rc != 0)
		goto out;
	if ((rc = dc_config__load_root(&c, cfg, root)) != 0)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	dc_yaml__free(root);
	dc_config_free(cfg);
	return rc;
}

int dc_config_load(dc_config **out, const char *path, dc_error *err)
{
	dc_error ferr = { 0 };
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	/* one byte over the limit is enough to know it is too large */
	rc = dc_file_read(&text, &len, path, (size_t)DC_CONFIG_MAX_BYTES + 1, &ferr);
	if (rc == DC_ELIMIT)
		rc = dc_error_set_at(err, DC_ECONFIG, path, 0, 0,
		                     "configuration is larger than %d bytes", DC_CONFIG_MAX_BYTES);
	else if (rc != 0)
		rc = dc_error_set_at(err, rc, path, 0, 0, "%s", ferr.message);
	else
		rc = dc_config_parse(out, path, text, len, err);
	free(text);
	return rc;
}
