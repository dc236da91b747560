/*
 * deployclaw config show — the resolved configuration, secrets redacted.
 */
#include <stdlib.h>
#include <string.h>

#include <deployclaw/config.h>

#include "cli.h"

static const cli_option show_options[] = {
	{ NULL, 0, NULL, NULL, false },
};

static int run_show(cli *c)
{
	dc_config *cfg = NULL;
	dc_strbuf out = DC_STRBUF_INIT;
	dc_error err = { 0 };
	int rc;

	if ((rc = cli_load_config(c, &cfg, &err)) != 0)
		goto out;
	rc = c->json ? dc_config_dump_json(cfg, &out) : dc_config_dump(cfg, &out);
	if (rc != 0) {
		dc_error_set(&err, rc, "out of memory");
		goto out;
	}
	cli_write(out.buf, out.len);
out:
	dc_strbuf_release(&out);
	dc_config_free(cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

static const cli_command config_subcommands[] = {
	{ "show", "", "print the resolved configuration (defaults filled in, secrets redacted)",
	  "Loads deployclaw.yaml as every command does (${VAR} expanded, relative paths\n"
	  "resolved, defaults filled in) and prints it. Passwords in DSNs are replaced\n"
	  "by '********'.",
	  show_options, run_show, NULL, 0 },
	{ NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0 },
};

const cli_command cmd_config = {
	"config", "", "inspect the configuration", NULL, NULL, NULL, config_subcommands, 0,
};
