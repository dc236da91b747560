/*
 * util/array.h — growing a caller's array of structs by doubling (internal: not
 * installed, nothing exported). dc_ptrvec is the vector of pointers; this is for
 * the arrays whose items are held by value.
 */
#ifndef DC_UTIL_ARRAY_H
#define DC_UTIL_ARRAY_H

#include <stddef.h>

/**
 * Doubles the array at `*itemsp` (`itemsp` is the address of a `T *`, items of
 * `size` bytes) from `*alloc` items, or allocates `first` when there are none.
 * 0, or DC_ENOMEM with the array and `*alloc` untouched. Callers call it when
 * the array is full, so that a push that has room costs no call.
 */
int dc_array_grow(void *itemsp, size_t *alloc, size_t size, size_t first);

#endif
