#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/text.h"

/* The name after the last '/', pointing into the path itself. */
static void basename_is_the_last_component(void **state)
{
	const char *p = "migrations/0001_init.sql";

	(void)state;
	assert_ptr_equal(dc_path_basename(p), p + 11);
	assert_string_equal(dc_path_basename("/a/b/c.yaml"), "c.yaml");
	assert_string_equal(dc_path_basename("plain.sql"), "plain.sql");
	assert_string_equal(dc_path_basename("dir/"), "");
}

/* A server message loses its severity prefix and everything after its first line. */
static void first_line_strips_severity_and_later_lines(void **state)
{
	char out[64];

	(void)state;
	dc_text_first_line(out, sizeof(out), "ERROR:  relation \"t\" does not exist\nLINE 1: x");
	assert_string_equal(out, "relation \"t\" does not exist");
	dc_text_first_line(out, sizeof(out), "FATAL:  password authentication failed\n");
	assert_string_equal(out, "password authentication failed");
	dc_text_first_line(out, sizeof(out), "could not connect to server");
	assert_string_equal(out, "could not connect to server");
	/* only the exact libpq prefix (two spaces) is a severity */
	dc_text_first_line(out, sizeof(out), "ERROR: one space");
	assert_string_equal(out, "ERROR: one space");
	dc_text_first_line(out, sizeof(out), NULL);
	assert_string_equal(out, "");
}

/* A line longer than the buffer is cut, still terminated. */
static void first_line_cuts_to_the_buffer(void **state)
{
	char out[6];

	(void)state;
	dc_text_first_line(out, sizeof(out), "ERROR:  abcdefghij");
	assert_string_equal(out, "abcde");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(basename_is_the_last_component),
		cmocka_unit_test(first_line_strips_severity_and_later_lines),
		cmocka_unit_test(first_line_cuts_to_the_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
