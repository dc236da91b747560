/*
 * walk.c -- one walk over a libpg_query tree through protobuf-c's reflection,
 * for the passes that look for one kind of node anywhere in a statement (lint's
 * RangeVars under schema tenancy, the rewrite's ColumnRefs).
 */
#include <string.h>

#include "analysis_internal.h"

int dc_analysis__walk(ProtobufCMessage *msg,
                      const ProtobufCMessageDescriptor *want,
                      int depth,
                      dc_analysis__visit_fn fn,
                      void *ctx)
{
	const ProtobufCMessageDescriptor *d;
	unsigned i;
	int rc;

	if (!msg || depth < 0)
		return 0;
	d = msg->descriptor;
	if (d == want)
		return fn(ctx, msg);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)msg;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n, k;
			ProtobufCMessage **arr;

			/* memcpy: the field offsets come as bytes */
			memcpy(&n, base + f->quantifier_offset, sizeof(n));
			memcpy(&arr, base + f->offset, sizeof(arr));
			for (k = 0; k < n; k++)
				if ((rc = dc_analysis__walk(arr[k], want, depth - 1, fn, ctx)) != 0)
					return rc;
		} else {
			ProtobufCMessage *sub;

			if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
				uint32_t which;

				memcpy(&which, base + f->quantifier_offset, sizeof(which));
				if (which != f->id)
					continue;
			}
			memcpy(&sub, base + f->offset, sizeof(sub));
			if ((rc = dc_analysis__walk(sub, want, depth - 1, fn, ctx)) != 0)
				return rc;
		}
	}
	return 0;
}
