/**
 * deployclaw/status.h — where every tenant of a fleet stands (deployclaw
 * status): per version, how many tenants are at it; which tenants have
 * migrations pending, failed (a partial history row, an unreadable history,
 * or a failure in the ledger's latest outcome not since recovered from) or
 * drifted (an applied checksum differs from its file).
 */
#ifndef DEPLOYCLAW_STATUS_H
#define DEPLOYCLAW_STATUS_H

#include <deployclaw/common.h>
#include <deployclaw/config.h>
#include <deployclaw/engine.h>
#include <deployclaw/migration.h>

/** Where a version stands across the fleet (deployclaw status). */
typedef struct dc_status_version {
	char version[64];
	char name[128];
	size_t tenants; /**< tenants whose latest applied version is this one */
} dc_status_version;

typedef struct dc_status_tenant {
	const dc_tenant *tenant; /**< borrowed from the status */
	char version[64];        /**< latest applied ("" = none) */
	size_t pending;          /**< migrations of the set not applied */
	bool failed;             /**< history has a partial row, or the tenant could not be read */
	bool drifted;            /**< an applied checksum differs from its file */
	char detail[512];        /**< why failed / which versions drifted */
} dc_status_tenant;

/** Where a shard's shard-scoped migrations (`scope: shard`) stand. */
typedef struct dc_status_shard {
	char shard[128];
	char applied[512]; /**< versions applied, space-separated (cut when long) */
	size_t pending;    /**< shard migrations of the set not applied */
	char pending_versions[512];
	bool drifted;     /**< an applied checksum differs from its file */
	char detail[512]; /**< which versions drifted */
} dc_status_shard;

typedef struct dc_status {
	dc_tenant *tenants;
	size_t ntenants;
	dc_status_tenant *rows;      /**< one per tenant */
	dc_status_version *versions; /**< one per migration of the set, plus "" (none) first */
	size_t nversions;
	size_t pending; /**< tenants with pending migrations */
	size_t failed;
	size_t drifted;
	dc_status_shard *shards; /**< one per shard when the set has shard migrations */
	size_t nshards;
} dc_status;

/**
 * Reads every tenant's history (in parallel, `parallel` workers; 0 =
 * rollout.parallel) against the set, and the ledger (cfg->audit.ledger, when
 * it exists) for each tenant's latest outcome. `*out` is the caller's, freed
 * with dc_status_free.
 */
DC_API int dc_status_collect(dc_status **out,
                             const dc_config *cfg,
                             const dc_migration_set *set,
                             int parallel,
                             dc_error *err);

/** Frees `status`; NULL is a no-op. */
DC_API void dc_status_free(dc_status *status);

#endif
