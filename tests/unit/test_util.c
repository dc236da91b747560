#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "util/util.h"

/* The published FNV-1a 64 vectors, and hashing in pieces equals hashing at once. */
static void fnv1a64_matches_the_reference(void **state)
{
	(void)state;
	assert_true(dc_fnv1a64(DC_FNV1A64_INIT, "", 0) == 0xcbf29ce484222325ULL);
	assert_true(dc_fnv1a64(DC_FNV1A64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
	assert_true(dc_fnv1a64(DC_FNV1A64_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
	assert_true(dc_fnv1a64(dc_fnv1a64(DC_FNV1A64_INIT, "foo", 3), "bar", 3) ==
	            dc_fnv1a64(DC_FNV1A64_INIT, "foobar", 6));
}

static void strbuf_appends_and_detaches(void **state)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t len = 0;
	char *s;

	(void)state;
	assert_string_equal(sb.buf, "");
	assert_int_equal(dc_strbuf_adds(&sb, "abc"), 0);
	assert_int_equal(dc_strbuf_addf(&sb, "-%d-%s", 42, "x"), 0);
	assert_int_equal(dc_strbuf_addch(&sb, '!'), 0);
	assert_string_equal(sb.buf, "abc-42-x!");
	dc_strbuf_setlen(&sb, 3);
	assert_string_equal(sb.buf, "abc");
	s = dc_strbuf_detach(&sb, &len);
	assert_string_equal(s, "abc");
	assert_int_equal(len, 3);
	assert_string_equal(sb.buf, "");
	free(s);
}

static void strbuf_cap_is_sticky(void **state)
{
	dc_strbuf sb;

	(void)state;
	dc_strbuf_init(&sb, 8);
	assert_int_equal(dc_strbuf_adds(&sb, "12345678"), 0);
	assert_int_equal(dc_strbuf_adds(&sb, "9"), DC_ELIMIT);
	/* sticky: a later small append is refused too, content unchanged */
	dc_strbuf_reset(&sb);
	assert_int_equal(dc_strbuf_error(&sb), 0);
	assert_int_equal(dc_strbuf_adds(&sb, "ab"), 0);
	assert_int_equal(dc_strbuf_addf(&sb, "%s", "1234567"), DC_ELIMIT);
	assert_int_equal(dc_strbuf_adds(&sb, "c"), DC_ELIMIT);
	assert_string_equal(sb.buf, "ab");
	assert_null(dc_strbuf_detach(&sb, NULL));
	dc_strbuf_release(&sb);
	/* no cap at all: SIZE_MAX must not wrap the capacity */
	dc_strbuf_init(&sb, SIZE_MAX);
	assert_int_equal(
	        dc_strbuf_adds(&sb,
	                       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef!"),
	        0);
	assert_int_equal(sb.len, 65);
	assert_true(sb.alloc > 65);
	dc_strbuf_release(&sb);
}

static void durations_parse_and_format(void **state)
{
	int64_t ms = 0;
	char buf[32];

	(void)state;
	assert_int_equal(dc_duration_parse("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(dc_duration_parse("2s", &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(dc_duration_parse("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(dc_duration_parse("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(dc_duration_parse("5", &ms), DC_EINVAL);
	assert_int_equal(dc_duration_parse("5 parsecs", &ms), DC_EINVAL);
	assert_int_equal(dc_duration_parse("-1s", &ms), DC_EINVAL);
	assert_int_equal(dc_duration_parse("99999999999999999999s", &ms), DC_EINVAL);
	dc_duration_format(buf, sizeof(buf), 300000);
	assert_string_equal(buf, "5m");
	dc_duration_format(buf, sizeof(buf), 1500);
	assert_string_equal(buf, "1500ms");
}

static void rfc3339_round_trips_and_refuses_other_forms(void **state)
{
	static const char *const bad[] = {
		"",
		"2026-11-24",
		"2026-11-24T03:07:04",       /* no zone */
		"2026-11-24T03:07:04+00:00", /* only Z */
		"2026-11-24T03:07:04.Z",     /* a point without digits */
		"2026-11-24T03:07:04.123Z ", /* trailing text */
		" 2026-11-24T03:07:04.123Z", /* leading space */
		"2026-1-24T03:07:04.123Z",   /* two-digit month */
		"+026-11-24T03:07:04.123Z",  /* a sign is not a digit */
		"2026-13-24T03:07:04.123Z",  /* month */
		"2026-02-30T03:07:04.123Z",  /* day of the month */
		"2025-02-29T03:07:04.123Z",  /* not a leap year */
		"2026-11-24T24:00:00.000Z",  /* hour */
		"2026-11-24T03:60:04.000Z",  /* minute */
		"2026-11-24 03:07:04.123Z",  /* separator */
	};
	const int64_t samples[] = { 0, 1, 999, 1764126424123, 951782400000 /* 2000-02-29 */ };
	char buf[32];
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		dc_time_rfc3339(buf, samples[i]);
		ms = -1;
		assert_int_equal(dc_time_parse_rfc3339(&ms, buf), 0);
		assert_int_equal(ms, samples[i]);
	}
	assert_int_equal(dc_time_parse_rfc3339(&ms, "2026-11-24T03:07:04Z"), 0);
	assert_int_equal(ms, 1795489624000);
	assert_int_equal(dc_time_parse_rfc3339(&ms, "2026-11-24T03:07:04.5Z"), 0);
	assert_int_equal(ms, 1795489624500);
	assert_int_equal(dc_time_parse_rfc3339(&ms, "2026-11-24T03:07:04.123999Z"), 0);
	assert_int_equal(ms, 1795489624123);
	assert_int_equal(dc_time_parse_rfc3339(&ms, NULL), DC_EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 42;
		if (dc_time_parse_rfc3339(&ms, bad[i]) != DC_EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		assert_int_equal(ms, 42);
	}
}

static void utf8_validation(void **state)
{
	size_t bad = 0;

	(void)state;
	assert_true(dc_utf8_valid("caf\xc3\xa9", 5, &bad));
	assert_true(dc_utf8_valid("\xf0\x9f\x98\x80", 4, &bad));
	assert_false(dc_utf8_valid("ab\xff", 3, &bad));
	assert_int_equal(bad, 2);
	assert_false(dc_utf8_valid("a\xc3", 2, &bad)); /* truncated sequence */
	assert_int_equal(bad, 1);
	assert_false(dc_utf8_valid("\xc0\xaf", 2, &bad));     /* overlong '/' */
	assert_false(dc_utf8_valid("\xed\xa0\x80", 3, &bad)); /* surrogate */
}

static void suggestions(void **state)
{
	static const char *const words[] = { "parallel", "replicas", "primary", "name" };

	(void)state;
	assert_string_equal(dc_suggest("paralel", words, 4), "parallel");
	assert_string_equal(dc_suggest("replica", words, 4), "replicas");
	assert_null(dc_suggest("zzzzzz", words, 4));
	assert_int_equal(dc_edit_distance("kitten", "sitting"), 3);
}

static void hex_roundtrip(void **state)
{
	unsigned char in[4] = { 0x00, 0xab, 0x7f, 0xff }, out[4];
	char hex[9], sha[65];

	(void)state;
	dc_hex_encode(hex, in, 4);
	assert_string_equal(hex, "00ab7fff");
	assert_int_equal(dc_hex_decode(out, 4, hex), 0);
	assert_memory_equal(in, out, 4);
	assert_int_equal(dc_hex_decode(out, 4, "00ab7fzz"), DC_EINVAL);
	assert_int_equal(dc_hex_decode(out, 4, "00ab"), DC_EINVAL);
	dc_sha256_hex(sha, "abc", 3);
	assert_string_equal(sha,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void errors_keep_the_first(void **state)
{
	dc_error err = { 0 };
	char buf[256];

	(void)state;
	assert_int_equal(dc_error_set_at(&err, DC_ECONFIG, "a.yaml", 3, 7, "bad '%s'", "x"),
	                 DC_ECONFIG);
	assert_int_equal(dc_error_set(&err, DC_EIO, "second"), DC_EIO);
	assert_int_equal(err.code, DC_ECONFIG);
	assert_string_equal(dc_error_format(&err, buf, sizeof(buf)), "a.yaml:3:7: bad 'x'");
	dc_error_clear(&err);
	dc_error_set(&err, DC_EIO, "plain");
	assert_string_equal(dc_error_format(&err, buf, sizeof(buf)), "plain");
}

static void paths(void **state)
{
	char *p;

	(void)state;
	p = dc_path_join("a/b", "c.yaml");
	assert_string_equal(p, "a/b/c.yaml");
	free(p);
	p = dc_path_join(".", "c.yaml");
	assert_string_equal(p, "c.yaml");
	free(p);
	p = dc_path_join("a", "/abs");
	assert_string_equal(p, "/abs");
	free(p);
	p = dc_path_dirname("x/y/z.yaml");
	assert_string_equal(p, "x/y");
	free(p);
	p = dc_path_dirname("z.yaml");
	assert_string_equal(p, ".");
	free(p);
}

/* Arena: aligned, distinct, larger-than-a-chunk blocks, reuse after reset. */
static void arena(void **state)
{
	dc_arena a = DC_ARENA_INIT;
	unsigned char *p[1000], *big, *again;
	size_t i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		p[i] = dc_arena_alloc(&a, 1 + i % 200);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % _Alignof(max_align_t), 0);
		memset(p[i], (int)(i & 0xff), 1 + i % 200);
	}
	big = dc_arena_alloc(&a, 10u * 1024u * 1024u);
	assert_non_null(big);
	memset(big, 0xab, 10u * 1024u * 1024u);
	for (i = 0; i < 1000; i++) /* nothing overlapped */
		assert_int_equal(p[i][i % 200], (unsigned char)(i & 0xff));
	dc_arena_reset(&a);
	again = dc_arena_alloc(&a, 5u * 1024u * 1024u);
	assert_ptr_equal(again, big); /* the largest chunk is kept and reused */
	assert_null(dc_arena_alloc(&a, SIZE_MAX - 8));
	assert_null(dc_arena_alloc(&a, SIZE_MAX / 2 + 2));
	dc_arena_release(&a);
	assert_null(a.head);
}

/* How many entries of `dir` are not dotfiles (what a folder scanner would see). */
static int visible_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * The temporary file of an atomic write is a dotfile next to the target:
 * a folder scanned while the write runs (or after a crash left it behind)
 * shows nothing but the target. A folder in the temporary file's place makes
 * the write fail where it would have created it, which reveals its name.
 */
static void atomic_write_uses_a_dotfile(void **state)
{
	char *dir = make_dir(), *path = dc_path_join(dir, "deployclaw.sum"), *text = NULL;
	char tmpname[64], cwd[4096], want[256];
	dc_strbuf blocker = DC_STRBUF_INIT;
	dc_error err = { 0 };
	size_t len = 0;

	(void)state;
	snprintf(tmpname, sizeof(tmpname), ".deployclaw.sum.tmp.%ld", (long)getpid());
	dc_strbuf_addf(&blocker, "%s/%s", dir, tmpname);
	assert_int_equal(mkdir(blocker.buf, 0755), 0);
	assert_int_equal(dc_file_write_atomic(path, "x\n", 2, 0644, false, &err), DC_EIO);
	snprintf(want, sizeof(want), "cannot create '%s':", blocker.buf);
	assert_non_null(strstr(err.message, want));
	assert_false(dc_path_exists(path));
	assert_int_equal(visible_entries(dir), 0);
	assert_int_equal(rmdir(blocker.buf), 0);

	/* done: the target (replaced) and nothing else, also with exclusive */
	put(dir, "deployclaw.sum", "old\n");
	dc_error_clear(&err);
	assert_int_equal(dc_file_write_atomic(path, "x\n", 2, 0644, false, &err), 0);
	assert_int_equal(dc_file_read(&text, &len, path, 100, &err), 0);
	assert_string_equal(text, "x\n");
	free(text);
	dc_strbuf_setlen(&blocker, 0);
	dc_strbuf_addf(&blocker, "%s/other", dir);
	assert_int_equal(dc_file_write_atomic(blocker.buf, "y", 1, 0600, true, &err), 0);
	assert_int_equal(visible_entries(dir), 2);
	{
		DIR *d = opendir(dir);
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			assert_null(strstr(de->d_name, ".tmp."));
		closedir(d);
	}

	/* a bare name: the temporary file is in the current folder */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	snprintf(tmpname, sizeof(tmpname), ".bare.tmp.%ld", (long)getpid());
	assert_int_equal(mkdir(tmpname, 0755), 0);
	dc_error_clear(&err);
	assert_int_equal(dc_file_write_atomic("bare", "z", 1, 0644, false, &err), DC_EIO);
	snprintf(want, sizeof(want), "cannot create '%s':", tmpname);
	assert_non_null(strstr(err.message, want));
	assert_int_equal(rmdir(tmpname), 0);
	assert_int_equal(chdir(cwd), 0);

	dc_strbuf_release(&blocker);
	free(path);
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fnv1a64_matches_the_reference),
		cmocka_unit_test(strbuf_appends_and_detaches),
		cmocka_unit_test(strbuf_cap_is_sticky),
		cmocka_unit_test(durations_parse_and_format),
		cmocka_unit_test(rfc3339_round_trips_and_refuses_other_forms),
		cmocka_unit_test(utf8_validation),
		cmocka_unit_test(suggestions),
		cmocka_unit_test(hex_roundtrip),
		cmocka_unit_test(errors_keep_the_first),
		cmocka_unit_test(paths),
		cmocka_unit_test(arena),
		cmocka_unit_test(atomic_write_uses_a_dotfile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
