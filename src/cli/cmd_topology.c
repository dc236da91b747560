/*
 * deployclaw topology — shards, replicas and their lag, tenants and the
 * versions they stand at.
 */
#include <stdlib.h>
#include <string.h>

#include <deployclaw/topology.h>

#include "cli.h"

static const cli_option topology_options[] = {
	{ NULL, 0, NULL, NULL, false },
};

static json_t *nullable_str(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* Milliseconds as an integer: jansson prints reals with 17 digits. */
static json_t *ms_json(double seconds)
{
	return seconds < 0 ? json_null() : json_integer((json_int_t)(seconds * 1000 + 0.5));
}

/* A count, null where it is unknown (negative). */
static json_t *count_json(json_int_t n)
{
	return n < 0 ? json_null() : json_integer(n);
}

static json_t *replica_json(const dc_topology_replica *r)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "index", json_integer((json_int_t)r->index));
	json_object_set_new(o, "dsn", json_string(r->dsn));
	json_object_set_new(o, "ok", json_boolean(r->ok));
	json_object_set_new(o, "reachable", json_boolean(r->reachable));
	json_object_set_new(o, "in_recovery", json_boolean(r->in_recovery));
	json_object_set_new(o, "server_version", nullable_str(r->server_version));
	json_object_set_new(o, "lag_bytes", count_json(r->lag_bytes));
	json_object_set_new(o, "lag_ms", ms_json(r->lag_seconds));
	json_object_set_new(o, "replay_pending_bytes", count_json(r->replay_pending_bytes));
	json_object_set_new(o, "receiver_status", nullable_str(r->receiver_status));
	json_object_set_new(o, "streaming", json_boolean(r->streaming));
	json_object_set_new(o, "matched_by", nullable_str(r->matched_by));
	json_object_set_new(o, "application_name", nullable_str(r->application_name));
	json_object_set_new(o, "client_addr", nullable_str(r->client_addr));
	json_object_set_new(o, "client_port", count_json(r->client_port));
	json_object_set_new(o, "state", nullable_str(r->state));
	json_object_set_new(o, "sync_state", nullable_str(r->sync_state));
	json_object_set_new(o, "replay_lag_ms", ms_json(r->replay_lag_seconds));
	json_object_set_new(o, "error", nullable_str(r->error));
	json_object_set_new(o, "warning", nullable_str(r->warning));
	return o;
}

static json_t *shard_json(const dc_topology_shard *sh)
{
	json_t *o = json_object(), *versions = json_array(), *replicas = json_array();
	size_t j;

	if (!o || !versions || !replicas) {
		json_decref(o);
		json_decref(versions);
		json_decref(replicas);
		return NULL;
	}
	for (j = 0; j < sh->nversions; j++)
		json_array_append_new(versions,
		                      json_pack("{s:o, s:I}", "version",
		                                nullable_str(sh->versions[j].version), "tenants",
		                                (json_int_t)sh->versions[j].tenants));
	for (j = 0; j < sh->nreplicas; j++)
		json_array_append_new(replicas, replica_json(&sh->replicas[j]));
	json_object_set_new(o, "name", json_string(sh->name));
	json_object_set_new(o, "primary", json_string(sh->primary));
	json_object_set_new(o, "ok", json_boolean(sh->ok));
	json_object_set_new(o, "reachable", json_boolean(sh->reachable));
	json_object_set_new(o, "in_recovery", json_boolean(sh->in_recovery));
	json_object_set_new(o, "server_version", nullable_str(sh->server_version));
	json_object_set_new(o, "server_version_num", json_integer(sh->server_version_num));
	json_object_set_new(o, "system_identifier", nullable_str(sh->system_identifier));
	json_object_set_new(o, "state_table", json_boolean(sh->state_table));
	json_object_set_new(o, "tenants",
	                    sh->tenants_known ? json_integer((json_int_t)sh->ntenants)
	                                      : json_null());
	json_object_set_new(o, "partial", json_integer((json_int_t)sh->npartial));
	json_object_set_new(o, "versions", versions);
	json_object_set_new(o, "replicas", replicas);
	json_object_set_new(o, "queries", json_integer((json_int_t)sh->queries));
	json_object_set_new(o, "elapsed_ms", json_integer(sh->elapsed_ms));
	json_object_set_new(o, "error", nullable_str(sh->error));
	return o;
}

static json_t *topology_json(const dc_topology *topo)
{
	json_t *o, *shards = json_array();
	size_t i;

	o = json_pack("{s:b, s:I, s:I, s:o}", "ok", topo->problems == 0, "problems",
	              (json_int_t)topo->problems, "tenants", (json_int_t)topo->ntenants, "shards",
	              shards);
	if (!o)
		return NULL;
	for (i = 0; i < topo->nshards; i++)
		json_array_append_new(shards, shard_json(&topo->shards[i]));
	return o;
}

/* "1.5 MiB", "812 B", "?" */
static void human_bytes(dc_strbuf *out, int64_t n)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	dc_strbuf_reset(out);
	if (n < 0) {
		dc_strbuf_adds(out, "?");
		return;
	}
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		dc_strbuf_addf(out, "%lld B", (long long)n);
	else
		dc_strbuf_addf(out, "%.1f %s", v, units[u]);
}

static void human_seconds(dc_strbuf *out, double s)
{
	dc_strbuf_reset(out);
	if (s < 0)
		dc_strbuf_adds(out, "?");
	else
		dc_strbuf_addf(out, "%.3fs", s);
}

static void print_shard(const dc_topology_shard *sh)
{
	dc_strbuf bytes = DC_STRBUF_INIT, secs = DC_STRBUF_INIT;
	size_t j;

	cli_out("shard '%s'  %s\n", sh->name, sh->primary);
	if (sh->reachable)
		cli_out("  server     PostgreSQL %s, %s\n", sh->server_version,
		        sh->in_recovery ? "IN RECOVERY (not a primary)" : "primary");
	else
		cli_out("  server     unreachable\n");
	if (sh->tenants_known) {
		cli_out("  tenants    %zu%s\n", sh->ntenants,
		        sh->state_table ? ""
		                        : " (no deployclaw.tenant_state: nothing applied yet)");
		if (sh->ntenants) {
			cli_out("    %-24s %8s\n", "version", "tenants");
			for (j = 0; j < sh->nversions; j++)
				cli_out("    %-24s %8zu\n",
				        sh->versions[j].version[0] ? sh->versions[j].version
				                                   : "(none)",
				        sh->versions[j].tenants);
			if (sh->npartial)
				cli_out("    (%zu of them only partially applied)\n", sh->npartial);
		}
	}
	if (sh->error[0])
		cli_out("  error      %s\n", sh->error);
	if (!sh->nreplicas) {
		cli_out("  replicas   none configured\n");
		return;
	}
	cli_out("  replicas   %zu\n", sh->nreplicas);
	cli_out("    %-3s %-12s %12s %10s  %s\n", "#", "state", "lag", "lag time", "dsn");
	for (j = 0; j < sh->nreplicas; j++) {
		const dc_topology_replica *r = &sh->replicas[j];
		const char *state;

		human_bytes(&bytes, r->lag_bytes);
		human_seconds(&secs, r->lag_seconds);
		if (!r->reachable)
			state = "unreachable";
		else if (!r->in_recovery)
			state = "NOT REPLICA";
		else if (!r->ok)
			state = "error";
		else if (r->state)
			state = r->state;
		else
			state = "in recovery";
		cli_out("    %-3zu %-12s %12s %10s  %s\n", r->index, state, bytes.buf, secs.buf,
		        r->dsn);
		if (r->error[0])
			cli_out("        error: %s\n", r->error);
		if (r->warning[0])
			cli_out("        warning: %s\n", r->warning);
	}
	dc_strbuf_release(&bytes);
	dc_strbuf_release(&secs);
}

static int run_topology(cli *c)
{
	dc_config *cfg = NULL;
	dc_topology *topo = NULL;
	dc_error err = { 0 };
	size_t i, j, nreplicas = 0;
	int rc;

	if ((rc = cli_load_config(c, &cfg, &err)) != 0)
		goto out;
	if ((rc = dc_topology_collect(&topo, cfg, &err)) != 0)
		goto out;
	if (c->json) {
		json_t *o = topology_json(topo);

		if (!o) {
			rc = dc_error_set(&err, DC_ENOMEM, "out of memory");
			goto out;
		}
		cli_print_json(o);
		json_decref(o);
	} else {
		for (i = 0; i < topo->nshards; i++) {
			if (i)
				cli_out("\n");
			print_shard(&topo->shards[i]);
		}
	}
	/* The problems on stderr too, one line each, so that a script (and a
	 * --json reader) sees what failed without parsing. */
	for (i = 0; i < topo->nshards; i++) {
		const dc_topology_shard *sh = &topo->shards[i];

		nreplicas += sh->nreplicas;
		if (sh->error[0])
			cli_error(c, "shard '%s': primary '%s': %s", sh->name, sh->primary,
			          sh->error);
		for (j = 0; j < sh->nreplicas; j++)
			if (sh->replicas[j].error[0])
				cli_error(c, "shard '%s': replica %zu '%s': %s", sh->name, j,
				          sh->replicas[j].dsn, sh->replicas[j].error);
	}
	if (!c->json && !c->quiet)
		cli_out("\n%zu shard%s, %zu replica%s, %zu tenants: %s\n", topo->nshards,
		        topo->nshards == 1 ? "" : "s", nreplicas, nreplicas == 1 ? "" : "s",
		        topo->ntenants, topo->problems ? "PROBLEMS (see above)" : "all good");
	if (topo->problems)
		rc = DC_EDB;
out:
	dc_topology_free(topo);
	dc_config_free(cfg);
	if (rc == DC_EDB)
		return 1; /* already reported, one line per problem */
	return rc ? cli_fail(c, rc, &err) : 0;
}

const cli_command cmd_topology = {
	"topology",
	"",
	"per shard: server, role, replicas and their lag, tenants and their versions",
	"Connects to every shard's primary and replicas (shards in parallel) and reports\n"
	"the server version, that the primary is not in recovery and every replica is,\n"
	"each replica's replay lag in bytes and seconds, the shard's tenants and how many\n"
	"stand at each applied version (one query per shard, from deployclaw.tenant_state).\n"
	"Exit code 1 when a primary or replica is unreachable or in the wrong role.",
	topology_options,
	run_topology,
	NULL,
	0,
};
