#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <deployclaw/common.h>

#include "util/array.h"

struct pair {
	int a;
	long b;
};

/* The first growth allocates `first` items, each later one doubles, and the
 * items pushed so far survive every move. */
static void grow_starts_at_first_and_doubles(void **state)
{
	struct pair *v = NULL;
	size_t len = 0, alloc = 0, i;

	(void)state;
	for (i = 0; i < 20; i++) {
		if (len == alloc)
			assert_int_equal(dc_array_grow(&v, &alloc, sizeof(*v), 4), 0);
		v[len].a = (int)i;
		v[len].b = (long)i * 1000;
		len++;
		if (i == 0)
			assert_int_equal(alloc, 4);
	}
	assert_int_equal(alloc, 32);
	for (i = 0; i < len; i++) {
		assert_int_equal(v[i].a, (int)i);
		assert_int_equal(v[i].b, (long)i * 1000);
	}
	free(v);
}

/* A size that cannot be allocated leaves the array and its count as they were. */
static void grow_failure_leaves_the_array(void **state)
{
	struct pair *v = NULL, *before;
	size_t alloc = 0;

	(void)state;
	assert_int_equal(dc_array_grow(&v, &alloc, sizeof(*v), 2), 0);
	before = v;
	assert_int_equal(dc_array_grow(&v, &alloc, SIZE_MAX / 2, 2), DC_ENOMEM);
	assert_ptr_equal(v, before);
	assert_int_equal(alloc, 2);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(grow_starts_at_first_and_doubles),
		cmocka_unit_test(grow_failure_leaves_the_array),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
