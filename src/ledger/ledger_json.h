/*
 * ledger/ledger_json.h — the ledger's appends and reads on jansson values,
 * for the library's own callers (the rollout, the CLI, the tests), which
 * build entries as json_t and should not print and re-parse them. The public
 * header takes and gives JSON text instead, so that no jansson type is part
 * of the installed API; dc_ledger_append and friends are thin wrappers over
 * these. Same contracts as their public twins in deployclaw/ledger.h.
 */
#ifndef DC_LEDGER_JSON_H
#define DC_LEDGER_JSON_H

#include <jansson.h>

#include <deployclaw/ledger.h>

/** One event of dc_ledger__append_batch; `data` borrowed, NULL = {}. */
typedef struct dc_ledger__event {
	const char *event;
	json_t *data;
} dc_ledger__event;

int dc_ledger__append(dc_ledger *ledger,
                      const char *event,
                      json_t *data,
                      int64_t *seq,
                      dc_error *err);

int dc_ledger__append_batch(dc_ledger *ledger,
                            const dc_ledger__event *events,
                            size_t n,
                            int64_t *first_seq,
                            dc_error *err);

/** `entry` is borrowed for the call (json_incref it to keep it). */
int dc_ledger__read(const char *path,
                    const dc_ledger_filter *filter,
                    int (*fn)(json_t *entry, void *ctx),
                    void *ctx,
                    dc_error *err);

#endif
