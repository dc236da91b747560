/*
 * deployclaw audit keygen|verify|show|export — the signed ledger.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <deployclaw/config.h>
#include <deployclaw/ledger.h>

#include "cli.h"
#include "ledger/ledger_json.h"

/*
 * Ledger and key paths: from the config when there is one; without a
 * config (an auditor holding only the ledger) the defaults of docs/config.md, or
 * the --ledger / --key / --pubkey options.
 */
typedef struct audit_paths {
	dc_config *cfg;
	const char *ledger;
	const char *key;
} audit_paths;

static int load_paths(cli *c, audit_paths *p, dc_error *err)
{
	const char *ledger = cli_value(c, "ledger"), *key = cli_value(c, "key");
	int rc;

	memset(p, 0, sizeof(*p));
	p->ledger = "audit/ledger.jsonl";
	p->key = "audit/signing.key";
	rc = dc_config_load(&p->cfg, c->config_path, err);
	if (rc == DC_ENOTFOUND && !c->config_given) {
		dc_error_clear(err);
		rc = 0;
	} else if (rc) {
		return rc;
	} else {
		p->ledger = p->cfg->audit.ledger;
		p->key = p->cfg->audit.key;
	}
	if (ledger)
		p->ledger = ledger;
	if (key)
		p->key = key;
	return 0;
}

/* "2026-11-24", "2026-11-24T03:07:04Z", "...04.123Z", or a duration ago ("2h").
 * A date is its midnight and a time without its Z is UTC all the same: both
 * are completed to the form dc_time_parse_rfc3339 reads. */
static int parse_time(const char *s, int64_t *ms)
{
	char full[64];
	size_t len = strlen(s);
	int64_t ago;

	if (dc_duration_parse(s, &ago) == 0) {
		*ms = dc_time_now_ms() - ago;
		return 0;
	}
	if (len + sizeof("T00:00:00Z") > sizeof(full))
		return DC_EINVAL;
	snprintf(full, sizeof(full), "%s%s", s,
	         len == 10                      ? "T00:00:00Z"
	         : len > 0 && s[len - 1] != 'Z' ? "Z"
	                                        : "");
	return dc_time_parse_rfc3339(ms, full);
}

static int load_filter(cli *c, dc_ledger_filter *f, dc_error *err)
{
	const char *since = cli_value(c, "since"), *until = cli_value(c, "until");

	memset(f, 0, sizeof(*f));
	f->run_id = cli_value(c, "run");
	f->event = cli_value(c, "event");
	f->tenant = cli_value(c, "tenant");
	if (since && parse_time(since, &f->since_ms))
		return dc_error_set(err, DC_EINVAL,
		                    "--since '%s': expected a date (2026-11-24), a time "
		                    "(2026-11-24T03:07:04Z) or a duration ago (2h)",
		                    since);
	if (until && parse_time(until, &f->until_ms))
		return dc_error_set(err, DC_EINVAL,
		                    "--until '%s': expected a date (2026-11-24), a time "
		                    "(2026-11-24T03:07:04Z) or a duration ago (2h)",
		                    until);
	return 0;
}

/* ------------------------------------------------------------------------ */

static const cli_option keygen_options[] = {
	{ "key", 0, "FILE", "private key to write (default: audit.key of the config)", false },
	{ NULL, 0, NULL, NULL, false },
};

static int run_keygen(cli *c)
{
	audit_paths p;
	dc_error err = { 0 };
	char key_id[17] = "";
	int rc;

	if ((rc = load_paths(c, &p, &err)) != 0)
		goto out;
	if ((rc = dc_signing_key_generate(p.key, key_id, &err)) != 0)
		goto out;
	if (c->json) {
		json_t *o = json_pack("{s:s, s:s++, s:s}", "key", p.key, "pubkey", p.key, ".pub",
		                      "key_id", key_id);

		cli_print_json(o);
		json_decref(o);
	} else if (!c->quiet) {
		cli_out("wrote signing key '%s' (mode 0600) and public key '%s.pub'\n", p.key,
		        p.key);
		cli_out("key id %s — give the .pub file to auditors; keep the key private\n",
		        key_id);
	}
out:
	dc_config_free(p.cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

/* ------------------------------------------------------------------------ */

static const cli_option verify_options[] = {
	{ "pubkey", 0, "FILE", "public key to verify with (default: <audit.key>.pub)", false },
	{ "expect-head", 0, "SEQ:HASH", "the head an earlier verify printed (catches truncation)",
	  false },
	{ "ledger", 0, "FILE", "ledger to verify (default: audit.ledger of the config)", false },
	{ NULL, 0, NULL, NULL, false },
};

static int run_verify(cli *c)
{
	dc_ledger_verify_opts opts = DC_LEDGER_VERIFY_OPTIONS_INIT;
	dc_ledger_verify_result res;
	unsigned char pk[32];
	char key_id[17] = "", *pub = NULL;
	const char *pubkey = cli_value(c, "pubkey");
	audit_paths p;
	dc_error err = { 0 };
	int rc;

	memset(&res, 0, sizeof(res));
	if ((rc = load_paths(c, &p, &err)) != 0)
		goto out;
	if (!pubkey) {
		dc_strbuf sb = DC_STRBUF_INIT;

		dc_strbuf_addf(&sb, "%s.pub", p.key);
		pub = dc_strbuf_detach(&sb, NULL);
		if (!pub) {
			rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
			goto out;
		}
		pubkey = pub;
	}
	if ((rc = dc_public_key_load(pk, key_id, pubkey, &err)) != 0)
		goto out;
	opts.pubkey = pk;
	opts.expect_head = cli_value(c, "expect-head");
	rc = dc_ledger_verify(p.ledger, &opts, &res, &err);
	if (c->json) {
		json_t *o = json_pack("{s:s, s:b, s:I, s:s, s:s}", "ledger", p.ledger, "ok",
		                      rc == 0, "entries", (json_int_t)res.entries, "key_id", key_id,
		                      "head", res.head_hash);

		if (rc) {
			char buf[2048];

			json_object_set_new(o, "bad_seq", json_integer(res.bad_seq));
			json_object_set_new(o, "bad_line", json_integer(res.bad_line));
			json_object_set_new(o, "error",
			                    json_string(dc_error_format(&err, buf, sizeof(buf))));
		}
		cli_print_json(o);
		json_decref(o);
	}
	if (rc)
		goto out;
	if (!c->json && !c->quiet)
		cli_out("ledger '%s' verified: %lld entr%s, every link and signature good (key id "
		        "%s)\nhead %lld:%s\n",
		        p.ledger, (long long)res.entries, res.entries == 1 ? "y" : "ies", key_id,
		        (long long)res.entries, res.head_hash);
out:
	free(pub);
	dc_config_free(p.cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

/* ------------------------------------------------------------------------ */

#define FILTER_OPTIONS                                                                             \
	{ "run", 0, "ID", "only entries of this run", false },                                     \
	        { "event", 0, "NAME", "only entries of this event", false },                       \
	        { "tenant", 0, "ID", "only entries about this tenant", false },                    \
	        { "since", 0, "TIME", "from this time (2026-11-24, an RFC 3339 time, or 2h)",      \
		  false },                                                                         \
	        { "until", 0, "TIME", "before this time", false },                                 \
	{                                                                                          \
		"ledger", 0, "FILE", "ledger to read (default: audit.ledger of the config)", false \
	}

static const cli_option show_options[] = {
	FILTER_OPTIONS,
	{ NULL, 0, NULL, NULL, false },
};

typedef struct show_ctx {
	cli *c;
	const char *tenant;
	size_t shown;
} show_ctx;

static int show_line(json_t *entry, const char *event, json_t *data)
{
	char *s = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);

	if (data && !s)
		return DC_ENOMEM;
	cli_out("%6lld  %s  %-16s %-20s run %s  %s\n",
	        (long long)json_integer_value(json_object_get(entry, "seq")),
	        json_string_value(json_object_get(entry, "ts")), event,
	        json_string_value(json_object_get(entry, "actor")),
	        json_string_value(json_object_get(entry, "run_id")), s ? s : "{}");
	free(s);
	return 0;
}

/*
 * One line per entry; a `tenants` entry (a batch of tenant outcomes, signed
 * as one) is shown as one `tenant` line per outcome under its seq, only the
 * named tenant's with --tenant. --json prints entries as they are signed.
 */
static int show_entry(json_t *entry, void *ctx)
{
	show_ctx *s = ctx;
	const char *event = json_string_value(json_object_get(entry, "event"));
	json_t *data = json_object_get(entry, "data"), *outcomes;
	char *line;
	size_t i;
	int rc;

	s->shown++;
	if (s->c->json) {
		line = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!line)
			return DC_ENOMEM;
		cli_out("%s\n", line);
		free(line);
		return 0;
	}
	outcomes = json_object_get(data, "outcomes");
	if (!event || strcmp(event, "tenants") != 0 || !json_is_array(outcomes))
		return show_line(entry, event ? event : "?", data);
	for (i = 0; i < json_array_size(outcomes); i++) {
		json_t *o = json_array_get(outcomes, i);
		const char *id = json_string_value(json_object_get(o, "tenant"));

		if (s->tenant && (!id || strcmp(id, s->tenant) != 0))
			continue;
		if ((rc = show_line(entry, "tenant", o)) != 0)
			return rc;
	}
	return 0;
}

static int run_show(cli *c)
{
	dc_ledger_filter f;
	audit_paths p;
	show_ctx s = { c, NULL, 0 };
	dc_error err = { 0 };
	int rc;

	if ((rc = load_paths(c, &p, &err)) != 0 || (rc = load_filter(c, &f, &err)) != 0)
		goto out;
	s.tenant = f.tenant;
	if ((rc = dc_ledger__read(p.ledger, &f, show_entry, &s, &err)) != 0)
		goto out;
	if (!c->json && !c->quiet && s.shown == 0)
		cli_note(c, "no entry of '%s' matches", p.ledger);
out:
	dc_config_free(p.cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

/* ------------------------------------------------------------------------ */

static const cli_option export_options[] = {
	{ "format", 0, "FORMAT", "jsonl (default) or csv", false },
	{ "output", 'o', "FILE", "write here instead of stdout (atomically)", false },
	{ "pubkey", 0, "FILE", "public key the ledger is verified with first", false },
	FILTER_OPTIONS,
	{ NULL, 0, NULL, NULL, false },
};

typedef struct export_ctx {
	dc_strbuf out;
	bool csv;
} export_ctx;

/* RFC 4180: quote every field that needs it, double the quotes inside. */
static void csv_field(dc_strbuf *sb, const char *s, bool last)
{
	if (strpbrk(s, ",\"\r\n")) {
		dc_strbuf_addch(sb, '"');
		for (; *s; s++) {
			if (*s == '"')
				dc_strbuf_addch(sb, '"');
			dc_strbuf_addch(sb, *s);
		}
		dc_strbuf_addch(sb, '"');
	} else {
		dc_strbuf_adds(sb, s);
	}
	dc_strbuf_addch(sb, last ? '\n' : ',');
}

static int export_entry(json_t *entry, void *ctx)
{
	static const char *const cols[] = { "seq",    "ts",   "run_id", "actor", "event",
		                            "key_id", "prev", "hash",   "sig" };
	export_ctx *e = ctx;
	char *s, num[32];
	size_t i;

	if (!e->csv) {
		s = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!s)
			return DC_ENOMEM;
		dc_strbuf_adds(&e->out, s);
		dc_strbuf_addch(&e->out, '\n');
		free(s);
		return dc_strbuf_error(&e->out);
	}
	for (i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		json_t *v = json_object_get(entry, cols[i]);

		if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			csv_field(&e->out, num, false);
		} else {
			csv_field(&e->out, json_is_string(v) ? json_string_value(v) : "", false);
		}
	}
	s = json_dumps(json_object_get(entry, "data"), JSON_COMPACT | JSON_SORT_KEYS);
	if (!s)
		return DC_ENOMEM;
	csv_field(&e->out, s, true);
	free(s);
	return dc_strbuf_error(&e->out);
}

static int run_export(cli *c)
{
	const char *format = cli_value(c, "format"), *output = cli_value(c, "output");
	const char *pubkey = cli_value(c, "pubkey");
	dc_ledger_verify_opts opts = DC_LEDGER_VERIFY_OPTIONS_INIT;
	dc_ledger_verify_result res;
	export_ctx e = { DC_STRBUF_INIT, false };
	dc_ledger_filter f;
	unsigned char pk[32];
	char *pub = NULL;
	audit_paths p;
	dc_error err = { 0 };
	int rc;

	if (format && strcmp(format, "csv") == 0) {
		e.csv = true;
	} else if (format && strcmp(format, "jsonl") != 0) {
		rc = dc_error_set(&err, DC_EINVAL, "--format '%s': expected 'jsonl' or 'csv'",
		                  format);
		p.cfg = NULL;
		goto out;
	}
	if ((rc = load_paths(c, &p, &err)) != 0 || (rc = load_filter(c, &f, &err)) != 0)
		goto out;
	/* A tampered ledger is never exported as if it were whole. */
	if (!pubkey) {
		dc_strbuf sb = DC_STRBUF_INIT;

		dc_strbuf_addf(&sb, "%s.pub", p.key);
		pubkey = pub = dc_strbuf_detach(&sb, NULL);
	}
	if (!pubkey) {
		rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = dc_public_key_load(pk, NULL, pubkey, &err)) != 0)
		goto out;
	opts.pubkey = pk;
	if ((rc = dc_ledger_verify(p.ledger, &opts, &res, &err)) != 0)
		goto out;
	if (e.csv)
		dc_strbuf_adds(&e.out, "seq,ts,run_id,actor,event,key_id,prev,hash,sig,data\n");
	if ((rc = dc_ledger__read(p.ledger, &f, export_entry, &e, &err)) != 0) {
		dc_error_set(&err, rc, "could not export '%s'", p.ledger);
		goto out;
	}
	if (output)
		rc = dc_file_write_atomic(output, e.out.buf, e.out.len, 0644, false, &err);
	else
		cli_write(e.out.buf, e.out.len);
out:
	free(pub);
	dc_strbuf_release(&e.out);
	dc_config_free(p.cfg);
	return rc ? cli_fail(c, rc, &err) : 0;
}

/* ------------------------------------------------------------------------ */

static const cli_command audit_subcommands[] = {
	{ "keygen", "", "write an Ed25519 signing key pair for the ledger",
	  "Writes the private key (mode 0600) and FILE.pub. Refuses to overwrite either.",
	  keygen_options, run_keygen, NULL, 0 },
	{ "verify", "", "check every link and signature of the ledger (exit 4 on tampering)",
	  "Names the first bad entry by seq and line: modified, deleted, inserted,\n"
	  "reordered, truncated (against the signed head record or --expect-head), a torn\n"
	  "last line, or signed by a different key. Needs only the ledger and the public\n"
	  "key: an auditor can run it offline.",
	  verify_options, run_verify, NULL, 0 },
	{ "show", "", "print ledger entries, filtered by run, event, tenant or time", NULL,
	  show_options, run_show, NULL, 0 },
	{ "export", "", "export the verified ledger as JSON Lines or CSV",
	  "Verifies the ledger first and refuses (exit 4) to export a tampered one.",
	  export_options, run_export, NULL, 0 },
	{ NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0 },
};

const cli_command cmd_audit = {
	"audit",
	"",
	"the signed audit ledger: keygen, verify, show, export",
	NULL,
	NULL,
	NULL,
	audit_subcommands,
	0,
};
