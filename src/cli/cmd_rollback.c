/*
 * deployclaw rollback — the down path, through the same rollout.
 */
#include <deployclaw/rollout.h>

#include "cli.h"

static const cli_option rollback_options[] = {
	{ "to", 0, "VERSION",
	  "roll back to this version (it stays applied); default: undo the "
	  "latest",
	  false },
	{ "tenant", 't', "ID", "only this tenant", true },
	{ "dry-run", 'n', NULL, "plan and evaluate the gates, change nothing", false },
	{ "parallel", 'j', "N", "workers (default: rollout.parallel)", false },
	{ NULL, 0, NULL, NULL, false },
};

static int run_rollback(cli *c)
{
	return cli_rollout_command(c, DC_ROLLOUT_ROLLBACK);
}

const cli_command cmd_rollback = {
	"rollback",
	"",
	"undo applied migrations across the fleet (the down path, same gates and waves)",
	"Runs each migration's down phases in reverse order, newest migration first,\n"
	"through the same canary, waves, failure budget, locks and ledger as apply.\n"
	"Without --to, undoes each tenant's latest applied migration.",
	rollback_options,
	run_rollback,
	NULL,
	0,
};
