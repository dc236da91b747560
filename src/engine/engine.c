#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <deployclaw/engine.h>

#include "engine_internal.h"

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

int dc_engine__parse_status(dc_history_status *out, const char *s)
{
	static const dc_history_status all[] = { DC_HISTORY_APPLIED, DC_HISTORY_ROLLED_BACK,
		                                 DC_HISTORY_PARTIAL };
	size_t i;

	for (i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, dc_history_status_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return DC_EINVAL;
}

void dc_engine__copy_cut(char *out, size_t size, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	if (len)
		memcpy(out, s, len);
	out[len] = '\0';
}

int dc_engine__vfail(dc_error *err,
                     int code,
                     const dc_engine__where *where,
                     const char *fmt,
                     va_list ap)
{
	if (!err || err->code != 0)
		return code;
	dc_error_vset(err, code, fmt, ap);
	if (where->file) {
		dc_engine__copy_cut(err->file, sizeof(err->file), where->file);
		err->line = where->line;
		err->col = where->col;
	}
	if (where->tenant)
		dc_engine__copy_cut(err->tenant, sizeof(err->tenant), where->tenant);
	if (where->shard)
		dc_engine__copy_cut(err->shard, sizeof(err->shard), where->shard);
	if (where->sqlstate)
		dc_engine__copy_cut(err->sqlstate, sizeof(err->sqlstate), where->sqlstate);
	return code;
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

/* The first operation the rollout calls unconditionally that `o` lacks, or NULL. */
static const char *missing_op(const dc_engine_ops *o)
{
	if (!o->open)
		return "open";
	if (!o->close)
		return "close";
	if (!o->discover)
		return "discover";
	if (!o->connect)
		return "connect";
	if (!o->disconnect)
		return "disconnect";
	if (!o->enter)
		return "enter";
	if (!o->lock_tenant)
		return "lock_tenant";
	if (!o->unlock_tenant)
		return "unlock_tenant";
	if (!o->begin)
		return "begin";
	if (!o->commit)
		return "commit";
	if (!o->rollback)
		return "rollback";
	if (!o->exec)
		return "exec";
	if (!o->query_bool)
		return "query_bool";
	if (!o->history_ensure)
		return "history_ensure";
	if (!o->history_read)
		return "history_read";
	if (!o->history_write)
		return "history_write";
	if (!o->query_text)
		return "query_text";
	if (!o->schema_fingerprint)
		return "schema_fingerprint";
	return NULL;
}

int dc_engine_ops_check(const dc_engine_ops *ops, dc_error *err)
{
	const char *missing;

	if (!ops || !ops->name || !*ops->name)
		return dc_error_set(err, DC_EINVAL, "an engine needs a name");
	if (ops->version == 0 || ops->version > DC_ENGINE_OPS_VERSION)
		return dc_error_set(err, DC_EINVAL,
		                    "engine '%s' implements interface version %u; this library "
		                    "knows 1 to %d",
		                    ops->name, ops->version, DC_ENGINE_OPS_VERSION);
	if ((missing = missing_op(ops)) != NULL)
		return dc_error_set(err, DC_EINVAL, "engine '%s' lacks the required operation '%s'",
		                    ops->name, missing);
	return 0;
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

bool dc_engine__does_check(const dc_engine_ops *ops, dc_check_kind kind, bool shard)
{
	unsigned bit = 1u << kind;

	if (!ops)
		return false;
	if (ops->version < 2) /* before check_kinds: check did the two SQLite kinds */
		return !shard && ops->check &&
		       (kind == DC_CHECK_INTEGRITY || kind == DC_CHECK_FOREIGN_KEYS);
	if (shard)
		return ops->shard_check && (ops->shard_check_kinds & bit);
	return ops->check && (ops->check_kinds & bit);
}
