/**
 * deployclaw/topology.h — what a PostgreSQL fleet looks like right now.
 *
 * For every configured shard, in parallel (one thread and one connection
 * per shard, replicas visited one after the other by that thread):
 *
 *  - the primary: server version, and that it is not in recovery;
 *  - its tenants (as dc_pg_tenants_sql in engine.h defines them) and the
 *    latest applied version of each, read from the shard-level state table
 *    `deployclaw.tenant_state` in the same query: discovery and versions
 *    cost one query per shard;
 *  - every configured replica: reachable, in recovery, a replica of this
 *    primary's cluster (same system identifier, where the role may read
 *    it), and its lag: bytes as the primary's pg_current_wal_lsn() minus the
 *    replica's pg_last_wal_replay_lsn() (the primary is sampled after the
 *    replica, so the figure errs high, never low), seconds as
 *    now() - pg_last_xact_replay_timestamp() on the replica while it is
 *    behind (0 when it has replayed everything).
 *
 * A configured replica is matched to its row of pg_stat_replication on the
 * primary by what the replica itself reports in pg_stat_wal_receiver, in
 * this order: its replication slot (pg_replication_slots.active_pid is the
 * walsender's pid), then its application_name (from its primary_conninfo,
 * else its cluster_name, else "walreceiver") when exactly one row carries it,
 * then — one unmatched replica, one unmatched row — the only candidate.
 * Addresses are not used: NAT, proxies and hostnames make them unreliable.
 * An unmatched replica is a warning, not an error: a cascading replica
 * streams from another replica, and its lag is measured all the same.
 *
 * Problems found on a server (unreachable, wrong role, a query that failed)
 * are data, recorded per shard and per replica with the DSN's password
 * redacted; dc_topology_collect fails only for configuration errors and
 * out-of-memory. The library never prints.
 */
#ifndef DEPLOYCLAW_TOPOLOGY_H
#define DEPLOYCLAW_TOPOLOGY_H

#include <deployclaw/common.h>
#include <deployclaw/config.h>

/** Rows a shard's discovery query may return (tenants x applied versions). */
#define DC_TOPOLOGY_MAX_ROWS 5000000

/** Seconds to wait for a connection unless the DSN sets connect_timeout. */
#define DC_TOPOLOGY_CONNECT_TIMEOUT_S 5

/** One configured replica. Strings are heap, owned by the topology. */
typedef struct dc_topology_replica {
	size_t index;         /**< position in the shard's `replicas` list */
	char *dsn;            /**< the configured DSN, password redacted */
	bool ok;              /**< reachable, in recovery, of the primary's cluster */
	bool reachable;       /**< a connection and the first query succeeded */
	bool in_recovery;     /**< pg_is_in_recovery() */
	char *server_version; /**< "15.5"; NULL when unreachable */
	int64_t lag_bytes;    /**< primary's current LSN - replica's replay LSN; -1 unknown */
	double lag_seconds;   /**< 0 when caught up, else time since the last replayed
	                           transaction; < 0 unknown */
	int64_t replay_pending_bytes; /**< received but not yet replayed; -1 unknown */
	char *receiver_status;        /**< pg_stat_wal_receiver.status ("streaming"); NULL */

	/* The replica's row of pg_stat_replication on the primary, when matched. */
	bool streaming;            /**< matched to a row */
	const char *matched_by;    /**< "slot", "application_name", "only"; NULL (static) */
	char *application_name;    /**< NULL when unmatched */
	char *client_addr;         /**< NULL when unmatched or a Unix socket */
	int client_port;           /**< -1 when unknown */
	char *state;               /**< "streaming", "catchup", ...; NULL when unmatched */
	char *sync_state;          /**< "async", "sync", ...; NULL when unmatched */
	double replay_lag_seconds; /**< the primary's replay_lag; < 0 unknown or idle */

	char error[512];   /**< why `!ok`, "" when ok; names no password */
	char warning[512]; /**< something worth knowing that is not an error, or "" */
} dc_topology_replica;

/** How many tenants of a shard stand at one version. */
typedef struct dc_topology_version {
	char *version; /**< "" for tenants with nothing applied */
	size_t tenants;
} dc_topology_version;

/** One configured shard. Strings are heap, owned by the topology. */
typedef struct dc_topology_shard {
	char *name;
	char *primary; /**< the configured DSN, password redacted */
	bool ok;       /**< primary fine, tenants read, every replica ok */
	bool reachable;
	bool in_recovery;        /**< true is an error: a primary must not be in recovery */
	char *server_version;    /**< "15.5"; NULL when unreachable */
	int server_version_num;  /**< 150005; 0 when unreachable */
	char *system_identifier; /**< the cluster's; NULL when the role may not read it */
	bool state_table;        /**< deployclaw.tenant_state exists */
	bool tenants_known;      /**< the discovery query succeeded */
	size_t ntenants;
	size_t npartial;               /**< tenants whose latest version is only 'partial' */
	dc_topology_version *versions; /**< natural version order, "" (nothing) first */
	size_t nversions;
	dc_topology_replica *replicas;
	size_t nreplicas;
	size_t queries; /**< round trips to the primary */
	int64_t elapsed_ms;
	char error[512]; /**< the primary's problem, "" when none */
} dc_topology_shard;

typedef struct dc_topology {
	dc_topology_shard *shards; /**< in config order */
	size_t nshards;
	size_t problems; /**< shards and replicas that are not ok */
	size_t ntenants; /**< over all shards */
} dc_topology;

/**
 * Inspects every shard of `cfg` (engine postgres). On success `*out` is a
 * new topology the caller frees with dc_topology_free — check `problems`:
 * unreachable servers and wrong roles are reported there, not as errors.
 * DC_ECONFIG when the engine is not postgres or the tenancy model lacks a
 * way to find tenants (pattern, query or list); DC_ENOMEM.
 */
DC_API int dc_topology_collect(dc_topology **out, const dc_config *cfg, dc_error *err);

/** Frees `topo`; NULL is a no-op. */
DC_API void dc_topology_free(dc_topology *topo);

/** The tables of one name in the tenants of a shard, summed (catalog estimates). */
typedef struct dc_topology_table {
	char *name;      /**< the relation's name (heap, owned by the array) */
	double rows;     /**< sum of pg_class.reltuples; never-analyzed tables add 0 */
	double bytes;    /**< sum of pg_total_relation_size */
	double max_rows; /**< the largest tenant table's estimate */
	long tenants;    /**< tenant tables of this name */
	long unanalyzed; /**< of those, never analyzed: their row estimate is unknown */
} dc_topology_table;

/**
 * Measures, from the catalog of shard `shard` of `cfg` (engine postgres), the
 * tables named `names[0 .. nnames)` in the shard's tenants -- the schemas
 * dc_pg_tenants_sql finds (model schema: one query on the primary), every
 * tenant database (model database: one connection per tenant database), or
 * the shard's database (model row); system schemas and `deployclaw` never
 * count. Connections use DC_TOPOLOGY_CONNECT_TIMEOUT_S unless the DSN sets
 * connect_timeout, and queries the timeouts of dc_topology_collect.
 *
 * On success `*out` holds `*n` tables, one per name found (NULL and 0 when
 * none), freed with dc_topology_tables_free. DC_EDB naming the shard when it
 * cannot be reached ("shard 'x': cannot connect: ...") or a query fails;
 * DC_ECONFIG; DC_ENOMEM.
 */
DC_API int dc_topology_tables(dc_topology_table **out,
                              size_t *n,
                              const dc_config *cfg,
                              const dc_shard_config *shard,
                              const char *const *names,
                              size_t nnames,
                              dc_error *err);

/** Frees `n` tables and the array; NULL is a no-op. */
DC_API void dc_topology_tables_free(dc_topology_table *tables, size_t n);

#endif
