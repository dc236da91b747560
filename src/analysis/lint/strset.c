/*
 * strset.c -- the string sets lint remembers things in across statements
 * (open addressing, a borrowed value per key), so the work stays linear in
 * the number of statements.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../lint_internal.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

void dc_lint__set_release(strset *s)
{
	size_t i;

	for (i = 0; i < s->cap; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->vals);
	memset(s, 0, sizeof(*s));
}

static size_t set_slot(const strset *s, const char *key)
{
	size_t i = (size_t)hash_str(key) & (s->cap - 1);

	while (s->keys[i] && strcmp(s->keys[i], key) != 0)
		i = (i + 1) & (s->cap - 1);
	return i;
}

bool dc_lint__set_has(const strset *s, const char *key, void **val)
{
	size_t i;

	if (!s->cap)
		return false;
	i = set_slot(s, key);
	if (!s->keys[i])
		return false;
	if (val)
		*val = s->vals[i];
	return true;
}

int dc_lint__set_put(strset *s, const char *key, void *val)
{
	size_t i;

	if (2 * (s->len + 1) > s->cap) {
		strset n = { NULL, NULL, s->cap ? s->cap * 2 : 64, 0 };

		n.keys = calloc(n.cap, sizeof(*n.keys));
		n.vals = calloc(n.cap, sizeof(*n.vals));
		if (!n.keys || !n.vals) {
			free(n.keys);
			free(n.vals);
			return DC_ENOMEM;
		}
		for (i = 0; i < s->cap; i++)
			if (s->keys[i]) {
				size_t j = set_slot(&n, s->keys[i]);

				n.keys[j] = s->keys[i];
				n.vals[j] = s->vals[i];
				n.len++;
			}
		free(s->keys);
		free(s->vals);
		*s = n;
	}
	i = set_slot(s, key);
	if (!s->keys[i]) {
		if (!(s->keys[i] = dc_strdup(key)))
			return DC_ENOMEM;
		s->len++;
	}
	s->vals[i] = val;
	return 0;
}

void dc_lint__set_del(strset *s, const char *key)
{
	size_t i, j;

	if (!s->cap)
		return;
	i = set_slot(s, key);
	if (!s->keys[i])
		return;
	free(s->keys[i]);
	s->keys[i] = NULL;
	s->len--;
	/* re-insert the rest of the cluster */
	for (j = (i + 1) & (s->cap - 1); s->keys[j]; j = (j + 1) & (s->cap - 1)) {
		char *k = s->keys[j];
		void *v = s->vals[j];
		size_t t;

		s->keys[j] = NULL;
		t = set_slot(s, k);
		s->keys[t] = k;
		s->vals[t] = v;
	}
}
