#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/util.h"

#define ARENA_FIRST    (64u * 1024u)
#define ARENA_MAX_STEP (4u * 1024u * 1024u)

struct dc_arena_chunk {
	dc_arena_chunk *prev;
	size_t size; /* usable bytes in data */
	size_t used;
	alignas(max_align_t) unsigned char data[];
};

void *dc_arena_alloc(dc_arena *a, size_t size)
{
	const size_t align = alignof(max_align_t);
	dc_arena_chunk *c = a->head;
	size_t need = (size + align - 1) & ~(align - 1);

	if (need < size)
		return NULL;
	if (!c || c->size - c->used < need) {
		size_t cap = a->next_size ? a->next_size : ARENA_FIRST;

		while (cap < need) {
			if (cap > SIZE_MAX / 2)
				return NULL;
			cap *= 2;
		}
		if (cap > SIZE_MAX - sizeof(*c) || !(c = malloc(sizeof(*c) + cap)))
			return NULL;
		c->prev = a->head;
		c->size = cap;
		c->used = 0;
		a->head = c;
		/* the next chunk doubles up to ARENA_MAX_STEP; one huge request does not set it */
		if (!a->next_size)
			a->next_size = ARENA_FIRST;
		if (a->next_size < ARENA_MAX_STEP)
			a->next_size *= 2;
	}
	c->used += need;
	return c->data + c->used - need;
}

void dc_arena_reset(dc_arena *a)
{
	dc_arena_chunk *c = a->head, *keep = NULL;

	while (c) {
		dc_arena_chunk *prev = c->prev;

		if (!keep || c->size > keep->size) {
			free(keep);
			keep = c;
		} else {
			free(c);
		}
		c = prev;
	}
	if (keep) {
		keep->prev = NULL;
		keep->used = 0;
	}
	a->head = keep;
}

void dc_arena_release(dc_arena *a)
{
	dc_arena_chunk *c = a->head;

	while (c) {
		dc_arena_chunk *prev = c->prev;

		free(c);
		c = prev;
	}
	a->head = NULL;
	a->next_size = 0;
}
