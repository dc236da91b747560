/*
 * deployclaw apply — roll pending migrations out across the fleet.
 */
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

static int run_apply(cli *c)
{
	return cli_rollout_command(c, DC_ROLLOUT_APPLY);
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
