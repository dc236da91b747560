/*
 * deployclaw apply — roll pending migrations out across the fleet.
 */
#include <stdlib.h>

#include <deployclaw/rollout.h>

#include "cli.h"

static const cli_option apply_options[] = {
	{ "to", 0, "VERSION", "apply up to and including this version", false },
	{ "tenant", 't', "ID", "only this tenant", true },
	{ "dry-run", 'n', NULL, "plan and evaluate the gates, change nothing", false },
	{ "parallel", 'j', "N", "workers (default: rollout.parallel, the number of cores)", false },
	{ "allow-out-of-order", 0, NULL, "apply versions older than ones already applied", false },
	{ NULL, 0, NULL, NULL, false },
};

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

static int run_apply(cli *c)
{
	const dc_ptrvec *tenants = cli_values(c, "tenant");
	cli_rollout_args a = { DC_ROLLOUT_APPLY, NULL, NULL, 0, false, 0, false, NULL };
	int rc;

	if ((rc = cli_parse_parallel(c, &a.parallel)) != 0)
		return rc;
	a.to = cli_value(c, "to");
	a.tenants = (const char *const *)tenants->items;
	a.ntenants = tenants->len;
	a.dry_run = cli_flag(c, "dry-run") > 0;
	a.allow_out_of_order = cli_flag(c, "allow-out-of-order") > 0;
	return cli_rollout(c, &a);
}

const cli_command cmd_apply = {
	"apply",
	"",
	"roll pending migrations out across the fleet: canary, then waves",
	"Plans every tenant from its history table, checks the preflight gates (sums,\n"
	"ledger, downs, out-of-order, drift), then migrates the canary and each wave,\n"
	"each tenant under a lock and in one transaction with its history row. A\n"
	"failing statement or a false verify assertion rolls the tenant back. Past a\n"
	"wave's failure budget (rollout.max_failures) the rollout stops. Run it again\n"
	"after a crash or an interrupt to resume: applied tenants are skipped.",
	apply_options,
	run_apply,
	NULL,
	0,
};
