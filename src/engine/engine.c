#include <stdlib.h>

#include <deployclaw/engine.h>

void dc_tenants_free(dc_tenant *tenants, size_t n)
{
	size_t i;

	if (!tenants)
		return;
	for (i = 0; i < n; i++) {
		free(tenants[i].id);
		free(tenants[i].shard);
		free(tenants[i].target);
	}
	free(tenants);
}

const char *dc_history_status_name(dc_history_status status)
{
	switch (status) {
	case DC_HISTORY_APPLIED:
		return "applied";
	case DC_HISTORY_ROLLED_BACK:
		return "rolled_back";
	case DC_HISTORY_PARTIAL:
		return "partial";
	}
	return "unknown";
}

void dc_history_row_release(dc_history_row *row)
{
	free(row->version);
	free(row->name);
	free(row->checksum);
	free(row->phase);
	free(row->run_id);
	free(row->actor);
}

void dc_history_rows_free(dc_history_row *rows, size_t n)
{
	size_t i;

	if (!rows)
		return;
	for (i = 0; i < n; i++)
		dc_history_row_release(&rows[i]);
	free(rows);
}

const dc_engine_ops *dc_engine_for(dc_engine_kind kind)
{
	switch (kind) {
	case DC_ENGINE_SQLITE:
		return &dc_engine_sqlite;
	case DC_ENGINE_POSTGRES:
		return &dc_engine_pg;
	}
	return NULL;
}
