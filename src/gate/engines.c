/*
 * engines.c — what the gates that ask the engines' checks share: the shards
 * of a run, each with its tenants, and the problem lines a check returns
 * made into one line of a gate's detail.
 */
#include "gate_internal.h"

int dc_gate__each_shard(const dc_gate__preflight *pf, dc_gate__shard_fn fn, void *ctx)
{
	size_t i, k;
	int rc = 0;

	/* discovery keeps each engine's tenants together */
	for (i = 0; i < pf->ntenants && rc == 0; i = k) {
		for (k = i; k < pf->ntenants && pf->tenant_engine[k] == pf->tenant_engine[i]; k++)
			;
		rc = fn(ctx, pf->ops, pf->engines[pf->tenant_engine[i]], &pf->tenants[i], k - i);
	}
	return rc;
}

size_t dc_gate__join_lines(const dc_strbuf *lines, char *out, size_t size)
{
	size_t i, len = 0, n = 0;

	for (i = 0; i < lines->len; i++) {
		if (lines->buf[i] == '\n')
			n++;
		if (len + 3 >= size)
			continue;
		if (lines->buf[i] != '\n') {
			out[len++] = lines->buf[i];
		} else if (i + 1 < lines->len) {
			out[len++] = ';';
			out[len++] = ' ';
		}
	}
	if (size)
		out[len] = '\0';
	return n;
}
