/*
 * state.c -- the linter's state: its lifetime, keys into its sets and the
 * copies of what must outlive the tree of the chunk it came from.
 */
#include <stdlib.h>
#include <string.h>

#include "../lint_internal.h"

/* Key "a.b" (NUL-separated parts would not survive strdup). */
const char *dc_lint__key(lint *l, const char *a, const char *b)
{
	dc_strbuf_reset(&l->key);
	dc_strbuf_adds(&l->key, a ? a : "");
	dc_strbuf_addch(&l->key, '\x1f');
	dc_strbuf_adds(&l->key, b ? b : "");
	if (dc_strbuf_error(&l->key))
		l->failed = DC_ENOMEM;
	return l->key.buf;
}

void dc_lint__put(lint *l, strset *s, const char *key, void *val)
{
	if (dc_lint__set_put(s, key, val))
		l->failed = DC_ENOMEM;
}

/*
 * A column's type outlives the chunk of the file it was parsed from: a deep
 * copy (through the type's own pack/unpack) in l->keep. NULL stays NULL.
 */
void *dc_lint__keep_type(lint *l, const PgQuery__TypeName *tn)
{
	ProtobufCAllocator al = dc_analysis__arena_allocator(&l->keep);
	uint8_t stackbuf[512], *buf = stackbuf;
	size_t len;
	void *copy;

	if (!tn)
		return NULL;
	len = pg_query__type_name__get_packed_size(tn);
	if (len > sizeof(stackbuf) && !(buf = malloc(len))) {
		l->failed = DC_ENOMEM;
		return NULL;
	}
	pg_query__type_name__pack(tn, buf);
	if (!(copy = pg_query__type_name__unpack(&al, len, buf)))
		l->failed = DC_ENOMEM;
	if (buf != stackbuf)
		free(buf);
	return copy;
}

void *dc_lint__keep_str(lint *l, const char *str)
{
	size_t n = strlen(str) + 1;
	char *p = dc_arena_alloc(&l->keep, n);

	if (!p) {
		l->failed = DC_ENOMEM;
		return NULL;
	}
	return memcpy(p, str, n);
}

void dc_lint__init(lint *l,
                   const dc_lint_config *cfg,
                   const dc_lint_config *dflt,
                   dc_finding_list *out)
{
	memset(l, 0, sizeof(*l));
	l->cfg = cfg ? cfg : dflt;
	l->out = out;
	dc_strbuf_init(&l->key, 0);
}

void dc_lint__release(lint *l)
{
	dc_lint__set_release(&l->tables);
	dc_lint__set_release(&l->indexes);
	dc_lint__set_release(&l->types);
	dc_lint__set_release(&l->coltypes);
	dc_lint__set_release(&l->nn_checks);
	dc_lint__set_release(&l->validated);
	dc_lint__set_release(&l->fks);
	dc_lint__set_release(&l->renamed);
	free(l->rls);
	dc_lint__set_release(&l->tx_not_valid);
	dc_lint__set_release(&l->dropped_cons);
	dc_arena_release(&l->trees);
	dc_arena_release(&l->keep);
	dc_strbuf_release(&l->key);
}
