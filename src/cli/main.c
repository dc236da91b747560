/*
 * main.c — the command table, global options, option parsing, help and
 * exit codes. Commands live in cmd_<name>.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DC_HAVE_MIMALLOC
#include <mimalloc.h>
#endif

#include <deployclaw/common.h>
#include <deployclaw/config.h>
#include <deployclaw/engine.h>

#include "cli.h"
#include "util/pool.h"
#include "util/util.h"

static const cli_command *const commands[] = {
	&cmd_init,   &cmd_apply, &cmd_rollback, &cmd_status, &cmd_hash, &cmd_audit,
	&cmd_config, &cmd_demo,  &cmd_topology, &cmd_lint,   &cmd_plan,
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Global options: accepted before or after the command. */
enum {
	G_CONFIG,
	G_JSON,
	G_QUIET,
	G_VERBOSE,
	G_NO_COLOR,
	G_HELP,
	G_VERSION,
	G_COUNT
};

static const cli_option global_options[] = {
	{ "config", 0, "FILE", "fleet configuration (default: ./deployclaw.yaml)", false },
	{ "json", 0, NULL, "machine-readable output on stdout", false },
	{ "quiet", 'q', NULL, "print only errors", false },
	{ "verbose", 'v', NULL, "print more detail (repeat for more)", false },
	{ "no-color", 0, NULL, "no colour in diagnostics (also: NO_COLOR=1)", false },
	{ "help", 'h', NULL, "show help for the command", false },
	{ "version", 0, NULL, "print the version and exit", false },
	{ NULL, 0, NULL, NULL, false },
};

static bool stderr_color;

DC_PRINTF(3, 0)

static void vdiag(const char *label, const char *color, const char *fmt, va_list ap)
{
	if (stderr_color)
		fprintf(stderr, "deployclaw: %s%s:\033[0m ", color, label);
	else
		fprintf(stderr, "deployclaw: %s: ", label);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_error(const cli *c, const char *fmt, ...)
{
	va_list ap;

	(void)c;
	va_start(ap, fmt);
	vdiag("error", "\033[1;31m", fmt, ap);
	va_end(ap);
}

void cli_warn(const cli *c, const char *fmt, ...)
{
	va_list ap;

	if (c && c->quiet)
		return;
	va_start(ap, fmt);
	vdiag("warning", "\033[1;33m", fmt, ap);
	va_end(ap);
}

void cli_note(const cli *c, const char *fmt, ...)
{
	va_list ap;

	if (c && c->quiet)
		return;
	va_start(ap, fmt);
	vdiag("note", "\033[1;36m", fmt, ap);
	va_end(ap);
}

int cli_exit_code(int rc)
{
	switch (rc) {
	case DC_OK:
		return 0;
	case DC_EINTEGRITY:
		return 4;
	case DC_EGATE:
		return 3;
	case DC_ECONFIG:
	case DC_EINVAL:
	case DC_EPARSE:
	case DC_ENOTFOUND:
	case DC_EEXISTS:
	case DC_ELIMIT:
		return 2;
	default:
		return 1;
	}
}

int cli_fail(const cli *c, int rc, const dc_error *err)
{
	char buf[2048];

	if (err && err->code)
		cli_error(c, "%s", dc_error_format(err, buf, sizeof(buf)));
	else
		cli_error(c, "%s", dc_strerror(rc));
	return cli_exit_code(rc);
}

void cli_write(const char *data, size_t len)
{
	fwrite(data, 1, len, stdout);
}

void cli_out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
}

int cli_load_config(cli *c, dc_config **out, dc_error *err)
{
	int rc = dc_config_load(out, c->config_path, err);

	if (rc == DC_ENOTFOUND && !c->config_given) {
		dc_error_clear(err);
		return dc_error_set(err, rc,
		                    "no '%s' here: run 'deployclaw init' or pass --config FILE",
		                    c->config_path);
	}
	return rc;
}

static int option_index(const cli_option *opts, const char *name)
{
	int i;

	for (i = 0; opts && opts[i].name; i++)
		if (strcmp(opts[i].name, name) == 0)
			return i;
	return -1;
}

static int short_index(const cli_option *opts, char ch)
{
	int i;

	for (i = 0; opts && opts[i].name; i++)
		if (opts[i].shortname && opts[i].shortname == ch)
			return i;
	return -1;
}

const char *cli_value(const cli *c, const char *name)
{
	int i = option_index(c->cmd->options, name);

	return i < 0 ? NULL : c->values[i];
}

int cli_flag(const cli *c, const char *name)
{
	int i = option_index(c->cmd->options, name);

	return i < 0 ? 0 : c->counts[i];
}

const dc_ptrvec *cli_values(const cli *c, const char *name)
{
	int i = option_index(c->cmd->options, name);

	return i < 0 ? NULL : &c->multi[i];
}

/* ------------------------------------------------------------------------ */
/* Help, generated from the tables.                                         */

static void print_options(FILE *f, const char *title, const cli_option *opts)
{
	int i;

	if (!opts || !opts[0].name)
		return;
	fprintf(f, "\n%s:\n", title);
	for (i = 0; opts[i].name; i++) {
		char left[64];

		if (opts[i].shortname)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", opts[i].shortname,
			         opts[i].name, opts[i].arg ? " " : "",
			         opts[i].arg ? opts[i].arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", opts[i].name,
			         opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
		fprintf(f, "  %-28s %s%s\n", left, opts[i].help,
		        opts[i].multi ? " (repeatable)" : "");
	}
}

static void print_command_help(FILE *f, const char *path, const cli_command *cmd)
{
	const cli_command *sub;

	if (cmd->subcommands) {
		fprintf(f, "usage: deployclaw %s <command> [options]\n\n%s\n", path, cmd->summary);
		if (cmd->description)
			fprintf(f, "\n%s\n", cmd->description);
		fprintf(f, "\ncommands:\n");
		for (sub = cmd->subcommands; sub->name; sub++)
			fprintf(f, "  %-10s %s\n", sub->name, sub->summary);
		fprintf(f, "\nsee 'deployclaw %s <command> --help' for a command's options\n",
		        path);
		return;
	}
	fprintf(f, "usage: deployclaw %s [options]%s%s\n\n%s\n", path, cmd->args[0] ? " " : "",
	        cmd->args, cmd->summary);
	if (cmd->description)
		fprintf(f, "\n%s\n", cmd->description);
	print_options(f, "options", cmd->options);
	print_options(f, "global options", global_options);
}

static void print_main_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: deployclaw [--config FILE] [--json] [-q] [-v] [--no-color] <command> "
	           "[options]\n\n"
	           "deployclaw rolls schema migrations across a multi-tenant fleet behind safety\n"
	           "gates, with automatic rollback, resume and a signed audit ledger.\n\n"
	           "commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(f, "  %-10s %s\n", "help", "show help for a command");
	print_options(f, "global options", global_options);
	fprintf(f, "\nexit codes: 0 done; 1 a tenant failed or the run stopped; 2 usage or config "
	           "error;\n            3 a gate refused; 4 integrity failure (ledger or "
	           "checksum)\n");
}

static const cli_command *find_in(const cli_command *const *list, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i]->name, name) == 0)
			return list[i];
	return NULL;
}

static const cli_command *find_sub(const cli_command *cmd, const char *name)
{
	const cli_command *sub;

	for (sub = cmd->subcommands; sub->name; sub++)
		if (strcmp(sub->name, name) == 0)
			return sub;
	return NULL;
}

static void unknown_command(const char *prefix,
                            const char *name,
                            const char *const *names,
                            size_t n)
{
	const char *hint = dc_suggest(name, names, n);

	if (hint)
		cli_error(NULL, "'%s' is not a deployclaw%s%s command (did you mean '%s'?)", name,
		          prefix[0] ? " " : "", prefix, hint);
	else
		cli_error(NULL, "'%s' is not a deployclaw%s%s command; see 'deployclaw%s%s --help'",
		          name, prefix[0] ? " " : "", prefix, prefix[0] ? " " : "", prefix);
}

/* The name part of "name=value" (or all of it), cut to fit `size`. */
static void option_name(char *out, size_t size, const char *s, const char *eq)
{
	size_t n = eq ? (size_t)(eq - s) : strlen(s);

	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/*
 * `arg` as given on the command line is no option of the command at `path`
 * ("" before the command: global options only). A long option is named
 * without its value; a short one by its letter, as typed ('-c', not '--c').
 */
static void unknown_option(const cli_command *cmd, const char *path, const char *arg)
{
	const char *names[2 * CLI_MAX_OPTS];
	const char *hint;
	char shown[72], word[64];
	size_t n = 0, len = 1;
	int i;

	for (i = 0; global_options[i].name; i++)
		names[n++] = global_options[i].name;
	for (i = 0; cmd && cmd->options && cmd->options[i].name; i++)
		names[n++] = cmd->options[i].name;
	if (arg[1] == '-') {
		option_name(word, sizeof(word), arg + 2, strchr(arg + 2, '='));
		snprintf(shown, sizeof(shown), "--%s", word);
	} else {
		/* the whole letter, UTF-8 continuation bytes included */
		while (arg[1] && len < 4 && ((unsigned char)arg[1 + len] & 0xc0) == 0x80)
			len++;
		if (!arg[1])
			len = 0;
		shown[0] = '-';
		memcpy(shown + 1, arg + 1, len);
		shown[1 + len] = '\0';
		/* "-check": the long name typed with one dash */
		option_name(word, sizeof(word), arg + 1, strchr(arg + 1, '='));
	}
	hint = word[0] ? dc_suggest(word, names, n) : NULL;
	if (!path[0] && hint)
		cli_error(NULL, "unknown option '%s' (did you mean '--%s'?)", shown, hint);
	else if (!path[0])
		cli_error(NULL, "unknown option '%s'; see 'deployclaw --help'", shown);
	else if (hint)
		cli_error(NULL, "unknown option '%s' for 'deployclaw %s' (did you mean '--%s'?)",
		          shown, path, hint);
	else
		cli_error(NULL,
		          "unknown option '%s' for 'deployclaw %s'; see 'deployclaw %s --help'",
		          shown, path, path);
}

/* Applies a global option; returns 1 when `i` was consumed as global. */
static int set_global(cli *c, int idx, const char *value)
{
	switch (idx) {
	case G_CONFIG:
		c->config_path = value;
		c->config_given = true;
		break;
	case G_JSON:
		c->json = true;
		break;
	case G_QUIET:
		c->quiet++;
		break;
	case G_VERBOSE:
		c->verbose++;
		break;
	case G_NO_COLOR:
		c->color = false;
		stderr_color = false;
		break;
	default:
		break;
	}
	return 1;
}

/*
 * Parses argv after the command words. Returns -1 to continue, or an exit
 * code (help printed, usage error).
 */
static int parse_options(cli *c, int argc, char **argv, int start, dc_ptrvec *args, bool *help)
{
	const cli_command *cmd = c->cmd;
	bool only_args = false;
	int i;

	for (i = start; i < argc; i++) {
		const char *a = argv[i], *value = NULL, *eq;
		const cli_option *opts = NULL;
		char name[64];
		int idx = -1;
		bool global = false;

		if (only_args || a[0] != '-' || strcmp(a, "-") == 0) {
			if (dc_ptrvec_push(args, argv[i]))
				return 1;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
			continue;
		}
		if (a[1] == '-') {
			eq = strchr(a + 2, '=');
			option_name(name, sizeof(name), a + 2, eq);
			if (eq)
				value = eq + 1;
			if ((idx = option_index(cmd->options, name)) >= 0) {
				opts = cmd->options;
			} else if ((idx = option_index(global_options, name)) >= 0) {
				opts = global_options;
				global = true;
			}
		} else {
			snprintf(name, sizeof(name), "%c", a[1]);
			if ((idx = short_index(cmd->options, a[1])) >= 0) {
				opts = cmd->options;
			} else if ((idx = short_index(global_options, a[1])) >= 0) {
				opts = global_options;
				global = true;
			}
			if (a[2])
				value = a + 2;
		}
		if (!opts) {
			unknown_option(cmd, c->cmd_path, a);
			return 2;
		}
		if (opts[idx].arg && !value) {
			if (i + 1 >= argc) {
				cli_error(NULL, "option '--%s' needs a value (%s)", opts[idx].name,
				          opts[idx].arg);
				return 2;
			}
			value = argv[++i];
		} else if (!opts[idx].arg && value) {
			cli_error(NULL, "option '--%s' takes no value", opts[idx].name);
			return 2;
		}
		if (global) {
			if (idx == G_HELP)
				*help = true;
			else if (idx == G_VERSION) {
				printf("deployclaw %s\n", DC_VERSION);
				return 0;
			} else
				set_global(c, idx, value);
			continue;
		}
		c->values[idx] = value;
		c->counts[idx]++;
		if (opts[idx].multi && dc_ptrvec_push(&c->multi[idx], (void *)(uintptr_t)value))
			return 1;
	}
	return -1;
}

static int finish_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error(NULL, "write error on standard output: %s",
		          strerror(errno ? errno : EIO));
		return 1;
	}
	return 0;
}

static int help_command(int argc, char **argv)
{
	const char *names[NCOMMANDS];
	const cli_command *cmd, *sub;
	char path[128];
	size_t i;

	if (argc < 1) {
		print_main_help(stdout);
		return 0;
	}
	for (i = 0; i < NCOMMANDS; i++)
		names[i] = commands[i]->name;
	cmd = find_in(commands, NCOMMANDS, argv[0]);
	if (!cmd) {
		unknown_command("", argv[0], names, NCOMMANDS);
		return 2;
	}
	if (argc > 1 && cmd->subcommands) {
		sub = find_sub(cmd, argv[1]);
		if (!sub) {
			cli_error(NULL, "'%s' is not a deployclaw %s command", argv[1], cmd->name);
			return 2;
		}
		snprintf(path, sizeof(path), "%s %s", cmd->name, sub->name);
		print_command_help(stdout, path, sub);
		return 0;
	}
	print_command_help(stdout, cmd->name, cmd);
	return 0;
}

#ifdef DC_HAVE_MIMALLOC
/*
 * SQLite's allocations go straight to mimalloc, which knows each block's size:
 * SQLite's system-malloc wrapper would add an 8-byte header to every block to
 * remember it. A migration allocates and frees thousands of small blocks per
 * tenant (parse trees, schema objects, VDBE programs: Debian's SQLite has no
 * lookaside), and mimalloc's per-thread free lists serve them several times
 * cheaper than glibc's arenas (docs/performance.md). Linking mimalloc also
 * makes it the program's malloc; sanitizer builds keep the system allocator
 * (meson.build).
 */
static void *mi_sqlite_malloc(int n)
{
	return mi_malloc((size_t)n);
}

static void mi_sqlite_free(void *p)
{
	mi_free(p);
}

static void *mi_sqlite_realloc(void *p, int n)
{
	return mi_realloc(p, (size_t)n);
}

static int mi_sqlite_size(void *p)
{
	return (int)mi_usable_size(p);
}

static int mi_sqlite_roundup(int n)
{
	return (int)mi_good_size((size_t)n);
}

static const dc_sqlite_mem mi_sqlite = {
	mi_sqlite_malloc, mi_sqlite_free, mi_sqlite_realloc, mi_sqlite_size, mi_sqlite_roundup,
};
#define SQLITE_MEM (&mi_sqlite)
#else
#define SQLITE_MEM NULL
#endif

/*
 * Parses the global options before the command word, from argv[1]; `*next`
 * is left at the first argument that is not one. Returns -1 to continue, or
 * an exit code (version or help printed, usage error).
 */
static int parse_globals(cli *c, int argc, char **argv, int *next)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		int idx = -1;

		if (strncmp(a, "--", 2) == 0) {
			const char *eq = strchr(a, '=');
			char name[64];

			option_name(name, sizeof(name), a + 2, eq);
			idx = option_index(global_options, name);
			if (idx == G_CONFIG && !eq) {
				if (i + 1 >= argc) {
					cli_error(NULL, "option '--config' needs a value (FILE)");
					return 2;
				}
				set_global(c, idx, argv[++i]);
				continue;
			}
			if (idx == G_CONFIG) {
				set_global(c, idx, eq + 1);
				continue;
			}
		} else if (a[1]) {
			idx = short_index(global_options, a[1]);
			/* every global short option is a flag: "-qx" is not "-q -x" */
			if (idx >= 0 && a[2]) {
				cli_error(NULL, "option '--%s' takes no value",
				          global_options[idx].name);
				return 2;
			}
		}
		if (idx < 0) {
			unknown_option(NULL, "", a);
			return 2;
		}
		if (idx == G_VERSION) {
			printf("deployclaw %s\n", DC_VERSION);
			return finish_stdout();
		}
		if (idx == G_HELP) {
			print_main_help(stdout);
			return finish_stdout();
		}
		set_global(c, idx, NULL);
	}
	*next = i;
	return -1;
}

/*
 * Finds the command (and sub-command) named at argv[*next], moving `*next`
 * past its words and writing its full name to `path`. Returns -1 with
 * `*found` set to continue, or an exit code (the help command run, help
 * printed, unknown command).
 */
static int lookup_command(int argc,
                          char **argv,
                          int *next,
                          char *path,
                          size_t path_size,
                          const cli_command **found)
{
	const char *names[NCOMMANDS + 1];
	const cli_command *cmd, *sub;
	int i = *next, k, rc;

	if (i >= argc) {
		print_main_help(stderr);
		return 2;
	}
	if (strcmp(argv[i], "help") == 0) {
		rc = help_command(argc - i - 1, argv + i + 1);
		return rc ? rc : finish_stdout();
	}
	for (k = 0; k < (int)NCOMMANDS; k++)
		names[k] = commands[k]->name;
	names[NCOMMANDS] = "help";
	cmd = find_in(commands, NCOMMANDS, argv[i]);
	if (!cmd) {
		unknown_command("", argv[i], names, NCOMMANDS + 1);
		return 2;
	}
	snprintf(path, path_size, "%s", cmd->name);
	i++;
	if (cmd->subcommands) {
		const char *subnames[16];
		size_t n = 0;

		if (i >= argc || argv[i][0] == '-') {
			bool want_help = i < argc && (strcmp(argv[i], "--help") == 0 ||
			                              strcmp(argv[i], "-h") == 0);

			print_command_help(want_help ? stdout : stderr, path, cmd);
			return want_help ? finish_stdout() : 2;
		}
		sub = find_sub(cmd, argv[i]);
		if (!sub) {
			for (sub = cmd->subcommands; sub->name && n < 16; sub++)
				subnames[n++] = sub->name;
			unknown_command(cmd->name, argv[i], subnames, n);
			return 2;
		}
		snprintf(path, path_size, "%s %s", cmd->name, sub->name);
		cmd = sub;
		i++;
	}
	*next = i;
	*found = cmd;
	return -1;
}

int main(int argc, char **argv)
{
	dc_ptrvec args = DC_PTRVEC_INIT;
	const cli_command *cmd = NULL;
	char path[128] = "";
	bool help = false;
	int i = 1, rc = 2, k;
	cli c;

	/* Process-wide, so the program (not the library) decides; before SQLite's first use. */
	(void)dc_engine_sqlite_setup(SQLITE_MEM);
	memset(&c, 0, sizeof(c));
	c.config_path = "deployclaw.yaml";
	c.color = isatty(STDERR_FILENO) && !getenv("NO_COLOR");
	stderr_color = c.color;
	if (getenv("DEPLOYCLAW_THREADS")) {
		unsigned n;

		if (dc_pool_parse_threads(getenv("DEPLOYCLAW_THREADS"), &n) != 0) {
			cli_error(NULL,
			          "DEPLOYCLAW_THREADS='%s': expected a whole number from 1 to 1024",
			          getenv("DEPLOYCLAW_THREADS"));
			return 2;
		}
	}

	/* globals before the command */
	if ((rc = parse_globals(&c, argc, argv, &i)) >= 0)
		return rc;
	if ((rc = lookup_command(argc, argv, &i, path, sizeof(path), &cmd)) >= 0)
		return rc;
	c.cmd = cmd;
	c.cmd_path = path;
	rc = parse_options(&c, argc, argv, i, &args, &help);
	if (rc >= 0)
		goto out;
	if (help) {
		print_command_help(stdout, path, cmd);
		rc = 0;
		goto out;
	}
	if ((int)args.len > cmd->max_args) {
		cli_error(&c, "'deployclaw %s' takes %s; unexpected argument '%s'", path,
		          cmd->max_args ? "fewer arguments" : "no arguments",
		          (const char *)args.items[cmd->max_args]);
		rc = 2;
		goto out;
	}
	c.args = (char **)args.items;
	c.nargs = (int)args.len;
	rc = cmd->run(&c);
out:
	for (k = 0; k < CLI_MAX_OPTS; k++)
		dc_ptrvec_release(&c.multi[k], NULL);
	dc_ptrvec_release(&args, NULL);
	if (finish_stdout() && rc == 0)
		rc = 1;
	return rc;
}
