/*
 * util/array.c — growing a caller's array by doubling (see array.h).
 */
#include "util/array.h"

#include <string.h>

#include "util/util.h"

int dc_array_grow(void *itemsp, size_t *alloc, size_t size, size_t first)
{
	size_t na = *alloc ? *alloc * 2 : first;
	void *items, *grown;

	/* memcpy: `itemsp` points at a T *, not at a void * */
	memcpy(&items, itemsp, sizeof(items));
	if (!(grown = dc_realloc_array(items, na, size)))
		return DC_ENOMEM;
	memcpy(itemsp, &grown, sizeof(grown));
	*alloc = na;
	return 0;
}
