/*
 * cli.h — the command table and what every command receives.
 *
 * Commands are data (git's builtin table, redis' command table): a name, a
 * usage line, an option table and a function. main.c parses the global and
 * the command's options from the same tables, generates --help from them,
 * and maps the command's DC_E... return code to the exit code of docs/design.md.
 */
#ifndef DC_CLI_H
#define DC_CLI_H

#include <stdio.h>

#include <jansson.h>

#include <deployclaw/common.h>
#include <deployclaw/config.h>
#include <deployclaw/migration.h>

#include "util/util.h"

#define CLI_MAX_OPTS 24

typedef struct cli_option {
	const char *name; /* long name without "--" */
	char shortname;   /* 0 when none */
	const char *arg;  /* metavar ("FILE") or NULL for a flag */
	const char *help;
	bool multi; /* may repeat; every value is kept */
} cli_option;

typedef struct cli cli;

typedef struct cli_command {
	const char *name;
	const char *args; /* positional part of the usage line, "" when none */
	const char *summary;
	const char *description; /* a paragraph for --help, may be NULL */
	const cli_option *options;
	int (*run)(cli *c);
	const struct cli_command *subcommands; /* NULL-terminated by name; run is NULL then */
	int max_args;                          /* positional arguments accepted */
} cli_command;

struct cli {
	/* global options */
	const char *config_path;
	bool config_given;
	bool json;
	int quiet;
	int verbose;
	bool color; /* stderr diagnostics in colour */

	const cli_command *cmd;
	const char *cmd_path; /* "audit verify" */

	/* the command's options, by index in cmd->options */
	const char *values[CLI_MAX_OPTS];
	int counts[CLI_MAX_OPTS];
	dc_ptrvec multi[CLI_MAX_OPTS];

	char **args; /* positional arguments */
	int nargs;
};

/* The command's option `name`: its last value, or NULL when absent. */
const char *cli_value(const cli *c, const char *name);

/* How often the flag `name` was given. */
int cli_flag(const cli *c, const char *name);

/* Every value of a repeatable option. */
const dc_ptrvec *cli_values(const cli *c, const char *name);

/* Diagnostics on stderr, prefixed "deployclaw: ". */
void cli_error(const cli *c, const char *fmt, ...) DC_PRINTF(2, 3);
void cli_warn(const cli *c, const char *fmt, ...) DC_PRINTF(2, 3);
void cli_note(const cli *c, const char *fmt, ...) DC_PRINTF(2, 3);

/* Reports `err` (file:line:col: message) and returns the exit code for `rc`. */
int cli_fail(const cli *c, int rc, const dc_error *err);

/* Exit code of docs/design.md for a DC_E... code. */
int cli_exit_code(int rc);

/* Loads the config named by --config (default ./deployclaw.yaml). */
int cli_load_config(cli *c, dc_config **out, dc_error *err);

/* Data on stdout; write errors are detected at exit. */
void cli_out(const char *fmt, ...) DC_PRINTF(1, 2);
void cli_write(const char *data, size_t len);

/*
 * Loads the configured migration set (dialect from the engine) and, unless
 * `skip_sum`, checks it against deployclaw.sum first (DC_EINTEGRITY).
 */
int cli_load_migrations(const dc_config *cfg,
                        bool skip_sum,
                        struct dc_migration_set **out,
                        dc_error *err);

/*
 * Appends one entry to the configured ledger, signed with the configured
 * key, and returns once it is durable. `data` is borrowed. `seq` may be NULL.
 */
int cli_record(const dc_config *cfg, const char *event, json_t *data, int64_t *seq, dc_error *err);

/* Prints a JSON value on stdout (indented) followed by a newline. */
void cli_print_json(json_t *value);

/* What apply, rollback and demo ask of a rollout. */
typedef struct cli_rollout_args {
	int direction; /* dc_rollout_direction */
	const char *to;
	const char *const *tenants;
	size_t ntenants;
	bool dry_run;
	int parallel;
	bool allow_out_of_order;
	const char *task; /* the JSON log's "task"; NULL = derived */
} cli_rollout_args;

/* Runs a rollout with the config at c->config_path, printing progress and the summary
 * (or the JSON log). Returns the exit code. */
int cli_rollout(cli *c, const cli_rollout_args *a);

/* apply and rollback: the rollout in `direction` (dc_rollout_direction) that the
 * command's --to, --tenant, --dry-run, --parallel and --allow-out-of-order ask for. */
int cli_rollout_command(cli *c, int direction);

/* Prints the fleet's status for the config at c->config_path; the exit code. */
int cli_status(cli *c, int parallel);

/* --parallel N of apply and rollback: 0 when absent; an exit code on bad input. */
int cli_parse_parallel(cli *c, int *out);

/* Commands (one file each). */
extern const cli_command cmd_init;
extern const cli_command cmd_hash;
extern const cli_command cmd_audit;
extern const cli_command cmd_config;
extern const cli_command cmd_apply;
extern const cli_command cmd_rollback;
extern const cli_command cmd_status;
extern const cli_command cmd_demo;
extern const cli_command cmd_topology;
extern const cli_command cmd_lint;
extern const cli_command cmd_plan;

#endif
