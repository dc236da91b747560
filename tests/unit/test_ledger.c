#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include <deployclaw/ledger.h>

#include "ledger/ledger_json.h"
#include "util/util.h"

#define N 20

typedef struct fx {
	char dir[64];
	char key[128];
	char ledger[128];
	char head[140];
	dc_signing_key *k;
	unsigned char pk[32];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	dc_error err = { 0 };

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/dc-ledger-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->key, sizeof(f->key), "%s/keys/signing.key", f->dir);
	snprintf(f->ledger, sizeof(f->ledger), "%s/audit/ledger.jsonl", f->dir);
	snprintf(f->head, sizeof(f->head), "%s.head", f->ledger);
	if (dc_signing_key_generate(f->key, NULL, &err) != 0 ||
	    dc_signing_key_load(&f->k, f->key, &err) != 0)
		return -1;
	memcpy(f->pk, f->k->pk, 32);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	char cmd[128];

	dc_signing_key_free(f->k);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Appends `n` entries "tenant.applied" {"tenant":"t<i>","n":<i>} with `key`. */
static void append_n(const fx *f, const dc_signing_key *key, int from, int n, const char *run)
{
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	int64_t seq = 0;
	int i;

	assert_int_equal(dc_ledger_open(&l, f->ledger, key, run, &err), 0);
	for (i = from; i < from + n; i++) {
		json_t *data =
		        json_pack("{s:s+, s:i}", "tenant", "t", i % 2 ? "odd" : "even", "n", i);

		assert_non_null(data);
		assert_int_equal(dc_ledger__append(l, i % 3 ? "tenant.applied" : "wave.started",
		                                   data, &seq, &err),
		                 0);
		json_decref(data);
	}
	dc_ledger_close(l);
}

/* The file as lines (without their newlines); returns the count. */
static size_t read_lines(const char *path, char ***out)
{
	char *text = NULL, *p, *nl, **lines = NULL;
	size_t len = 0, n = 0;
	dc_error err = { 0 };

	assert_int_equal(dc_file_read(&text, &len, path, 1 << 26, &err), 0);
	for (p = text; (nl = strchr(p, '\n')); p = nl + 1) {
		lines = realloc(lines, (n + 1) * sizeof(*lines));
		assert_non_null(lines);
		lines[n++] = dc_strndup(p, (size_t)(nl - p));
	}
	free(text);
	*out = lines;
	return n;
}

static void write_lines(const char *path, char **lines, size_t n)
{
	FILE *fp = fopen(path, "w");
	size_t i;

	assert_non_null(fp);
	for (i = 0; i < n; i++)
		fprintf(fp, "%s\n", lines[i]);
	fclose(fp);
}

static void free_lines(char **lines, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static const char *field(const char *line, const char *key, char *out, size_t size)
{
	json_t *o = json_loads(line, 0, NULL);

	assert_non_null(o);
	snprintf(out, size, "%s", json_string_value(json_object_get(o, key)));
	json_decref(o);
	return out;
}

/* Verifies with the fixture's key; returns the code, `msg` the message. */
static int verify(const fx *f, const char *expect_head, dc_ledger_verify_result *res, char *msg)
{
	dc_ledger_verify_opts opts = DC_LEDGER_VERIFY_OPTIONS_INIT;
	dc_error err = { 0 };
	int rc;

	opts.pubkey = f->pk;
	opts.expect_head = expect_head;
	rc = dc_ledger_verify(f->ledger, &opts, res, &err);

	snprintf(msg, 1024, "%s", err.message);
	return rc;
}

#define assert_contains(hay, needle)                                             \
	do {                                                                     \
		if (!strstr((hay), (needle)))                                    \
			fail_msg("'%s' does not contain '%s'", (hay), (needle)); \
	} while (0)

/* ------------------------------------------------------------------------ */

static void keygen_is_private_and_refuses_overwrite(void **state)
{
	fx *f = *state;
	char key_id[17], pub[160], again[140], msg[1024];
	unsigned char pk[32];
	dc_signing_key *k = NULL;
	dc_error err = { 0 };
	struct stat st;

	snprintf(again, sizeof(again), "%s/other/dir/k", f->dir);
	assert_int_equal(dc_signing_key_generate(again, key_id, &err), 0);
	assert_int_equal(stat(again, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(pub, sizeof(pub), "%s.pub", again);
	assert_int_equal(stat(pub, &st), 0);
	assert_int_equal(dc_public_key_load(pk, msg, pub, &err), 0);
	assert_string_equal(msg, key_id);
	assert_int_equal(strlen(key_id), 16);

	/* refuses to overwrite, and leaves the old key alone */
	assert_int_equal(dc_signing_key_generate(again, NULL, &err), DC_EEXISTS);
	assert_contains(err.message, "refusing to overwrite");
	dc_error_clear(&err);
	assert_int_equal(dc_signing_key_load(&k, again, &err), 0);
	assert_string_equal(k->key_id, key_id);
	assert_memory_equal(k->pk, pk, 32);
	dc_signing_key_free(k);
	k = NULL;

	/* a readable private key is refused */
	assert_int_equal(chmod(again, 0644), 0);
	assert_int_equal(dc_signing_key_load(&k, again, &err), DC_EINVAL);
	assert_null(k);
	assert_contains(err.message, "chmod 600");
	dc_signing_key_free(NULL);
}

static void appends_and_verifies(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024], hash[65], prev[65], **lines = NULL, *canon;
	unsigned char sig[64], raw[32];
	size_t n, siglen = 0;
	json_t *o;

	append_n(f, f->k, 1, N, "run-1");
	assert_int_equal(verify(f, NULL, &res, msg), 0);
	assert_int_equal(res.entries, N);
	assert_int_equal(res.last_seq, N);
	assert_int_equal(res.head_seq, N);
	assert_int_equal(res.bad_seq, 0);
	assert_true(res.signatures_checked);

	n = read_lines(f->ledger, &lines);
	assert_int_equal(n, N);
	assert_string_equal(field(lines[0], "prev", prev, sizeof(prev)),
	                    "0000000000000000000000000000000000000000000000000000000000000000");
	assert_string_equal(field(lines[N - 1], "hash", hash, sizeof(hash)), res.head_hash);
	assert_string_equal(field(lines[1], "prev", prev, sizeof(prev)),
	                    field(lines[0], "hash", hash, sizeof(hash)));

	/* the documented recipe: canonical JSON without hash and sig, SHA-256, Ed25519 */
	o = json_loads(lines[4], 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 5);
	assert_string_equal(json_string_value(json_object_get(o, "run_id")), "run-1");
	assert_string_equal(json_string_value(json_object_get(o, "key_id")), f->k->key_id);
	assert_non_null(strchr(json_string_value(json_object_get(o, "actor")), '@'));
	assert_int_equal(strlen(json_string_value(json_object_get(o, "ts"))), 24);
	assert_int_equal(sodium_base642bin(sig, 64, json_string_value(json_object_get(o, "sig")),
	                                   88, NULL, &siglen, NULL, sodium_base64_VARIANT_ORIGINAL),
	                 0);
	snprintf(hash, sizeof(hash), "%s", json_string_value(json_object_get(o, "hash")));
	/* the line itself is in canonical form */
	canon = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(canon, lines[4]);
	free(canon);
	json_object_del(o, "hash");
	json_object_del(o, "sig");
	canon = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	assert_non_null(canon);
	crypto_hash_sha256(raw, (unsigned char *)canon, strlen(canon));
	dc_hex_encode(prev, raw, 32);
	assert_string_equal(prev, hash);
	assert_int_equal(crypto_sign_verify_detached(sig, raw, 32, f->pk), 0);
	free(canon);
	json_decref(o);
	free_lines(lines, n);

	/* fast mode, one thread, and no key at all */
	{
		dc_ledger_verify_opts opts = DC_LEDGER_VERIFY_OPTIONS_INIT;
		dc_ledger_verify_opts nokey = DC_LEDGER_VERIFY_OPTIONS_INIT;
		dc_error err = { 0 };

		opts.pubkey = f->pk;
		opts.flags = DC_LEDGER_VERIFY_FAST;

		assert_int_equal(dc_ledger_verify(f->ledger, &opts, &res, &err), 0);
		assert_int_equal(res.entries, N);
		opts.flags = 0;
		opts.threads = 1;
		assert_int_equal(dc_ledger_verify(f->ledger, &opts, &res, &err), 0);
		assert_int_equal(dc_ledger_verify(f->ledger, &nokey, &res, &err), 0);
		assert_false(res.signatures_checked);
		assert_int_equal(dc_ledger_verify(f->ledger, NULL, NULL, &err), 0);
	}
	/* an expected head that is there (both forms) passes */
	{
		char eh[100];

		snprintf(eh, sizeof(eh), "%d:%s", N, res.head_hash);
		assert_int_equal(verify(f, eh, &res, msg), 0);
		snprintf(eh, sizeof(eh), "%s", res.head_hash);
		assert_int_equal(verify(f, eh, &res, msg), 0);
		assert_int_equal(verify(f, "nonsense", &res, msg), DC_EINVAL);
	}
}

static void empty_ledger_verifies(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	char msg[1024];

	assert_int_equal(dc_ledger_open(&l, f->ledger, f->k, NULL, &err), 0);
	assert_int_equal(strlen(dc_ledger_run_id(l)), 16);
	dc_ledger_close(l);
	assert_int_equal(verify(f, NULL, &res, msg), 0);
	assert_int_equal(res.entries, 0);
	assert_int_equal(res.head_seq, -1);
}

/* Options carry their version: an unknown one is refused, a known one gets its defaults. */
static void verify_options_are_versioned(void **state)
{
	fx *f = *state;
	dc_ledger_verify_opts opts;
	dc_ledger_verify_result res;
	dc_error err = { 0 };

	append_n(f, f->k, 1, 3, "run-v");
	assert_int_equal(dc_ledger_verify_opts_init(&opts, 0), DC_EINVAL);
	assert_int_equal(dc_ledger_verify_opts_init(&opts, DC_LEDGER_VERIFY_OPTIONS_VERSION + 1),
	                 DC_EINVAL);
	memset(&opts, 0x5a, sizeof(opts));
	assert_int_equal(dc_ledger_verify_opts_init(&opts, DC_LEDGER_VERIFY_OPTIONS_VERSION), 0);
	assert_null(opts.pubkey);
	assert_null(opts.expect_head);
	assert_int_equal(opts.flags, 0);
	assert_int_equal(opts.threads, 0);
	opts.pubkey = f->pk;
	assert_int_equal(dc_ledger_verify(f->ledger, &opts, &res, &err), 0);
	assert_int_equal(res.entries, 3);
	assert_true(res.signatures_checked);
	opts.version = DC_LEDGER_VERIFY_OPTIONS_VERSION + 1;
	assert_int_equal(dc_ledger_verify(f->ledger, &opts, &res, &err), DC_EINVAL);
	assert_string_equal(err.message,
	                    "ledger verify options of version 2 (this library knows 1 to 1)");
}

/* The public API takes and gives JSON text: no jansson type in the installed headers. */
static int collect_text(const char *entry_json, void *ctx)
{
	dc_strbuf *sb = ctx;

	dc_strbuf_adds(sb, entry_json);
	dc_strbuf_addch(sb, '\n');
	return 0;
}

static void public_api_takes_json_text(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	dc_strbuf seen = DC_STRBUF_INIT;
	dc_ledger_event evs[2] = { { "b.one", "{\"tenant\":\"t1\",\"n\":1}" }, { "b.two", NULL } };
	dc_ledger_filter tenant = { NULL, NULL, "t1", 0, 0 };
	int64_t seq = 0;
	char msg[1024];

	assert_int_equal(dc_ledger_open(&l, f->ledger, f->k, "run-t", &err), 0);
	assert_int_equal(dc_ledger_append(l, "a.text", "{\"k\": [1, \"x\", null]}", &seq, &err), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(dc_ledger_append_batch(l, evs, 2, &seq, &err), 0);
	assert_int_equal(seq, 2);
	/* not JSON: refused with where it broke, nothing written */
	assert_int_equal(dc_ledger_append(l, "bad", "{\"k\": }", NULL, &err), DC_EINVAL);
	assert_non_null(strstr(err.message, "data of event 'bad' is not JSON (line 1, column"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(dc_ledger_append(l, "bad", "[1]", NULL, &err), DC_EINVAL);
	assert_string_equal(err.message, "data of event 'bad' is not a JSON object");
	memset(&err, 0, sizeof(err));
	/* a batch with one bad event writes none of it */
	evs[1].data_json = "7";
	assert_int_equal(dc_ledger_append_batch(l, evs, 2, NULL, &err), DC_EINVAL);
	memset(&err, 0, sizeof(err));
	dc_ledger_close(l);

	assert_int_equal(verify(f, NULL, &res, msg), 0);
	assert_int_equal(res.entries, 3);
	assert_int_equal(dc_ledger_read(f->ledger, NULL, collect_text, &seen, &err), 0);
	assert_non_null(strstr(seen.buf, "\"event\":\"a.text\""));
	assert_non_null(strstr(seen.buf, "\"data\":{\"k\":[1,\"x\",null]}"));
	assert_non_null(strstr(seen.buf, "\"event\":\"b.two\""));
	assert_non_null(strstr(seen.buf, "\"data\":{}"));
	dc_strbuf_reset(&seen);
	assert_int_equal(dc_ledger_read(f->ledger, &tenant, collect_text, &seen, &err), 0);
	assert_non_null(strstr(seen.buf, "\"event\":\"b.one\""));
	assert_null(strstr(seen.buf, "a.text"));
	dc_strbuf_release(&seen);
}

/* Rewrites line `i` (0-based) with data.n changed; `rehash` recomputes its hash. */
static void modify_line(const fx *f, size_t i, bool rehash)
{
	char **lines = NULL, *canon, hex[65];
	unsigned char raw[32];
	size_t n = read_lines(f->ledger, &lines);
	json_t *o = json_loads(lines[i], 0, NULL);

	assert_non_null(o);
	json_object_set_new(json_object_get(o, "data"), "n", json_integer(999));
	if (rehash) {
		json_t *c = json_copy(o);

		json_object_del(c, "hash");
		json_object_del(c, "sig");
		canon = json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT);
		crypto_hash_sha256(raw, (unsigned char *)canon, strlen(canon));
		dc_hex_encode(hex, raw, 32);
		json_object_set_new(o, "hash", json_string(hex));
		free(canon);
		json_decref(c);
	}
	free(lines[i]);
	lines[i] = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(o);
	write_lines(f->ledger, lines, n);
	free_lines(lines, n);
}

static void detects_modified_data(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024];

	append_n(f, f->k, 1, N, NULL);
	modify_line(f, 6, false);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg,
	                "entry seq 7 (line 7) was modified: its hash does not match its content");
	assert_int_equal(res.bad_seq, 7);
	assert_int_equal(res.bad_line, 7);
}

static void detects_rehashed_entry_by_signature(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_ledger_verify_opts opts = DC_LEDGER_VERIFY_OPTIONS_INIT;
	dc_error err = { 0 };
	char msg[1024];

	opts.pubkey = f->pk;
	opts.flags = DC_LEDGER_VERIFY_FAST;

	append_n(f, f->k, 1, N, NULL);
	modify_line(f, 6, true);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "entry seq 7 (line 7) has a bad signature");
	assert_int_equal(res.bad_seq, 7);
	assert_int_equal(res.bad_line, 7);
	/* fast mode falls back to a full pass and names the same entry */
	assert_int_equal(dc_ledger_verify(f->ledger, &opts, &res, &err), DC_EINTEGRITY);
	assert_contains(err.message, "entry seq 7 (line 7) has a bad signature");
}

static void detects_deleted_line(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024], **lines = NULL;
	size_t n;

	append_n(f, f->k, 1, N, NULL);
	n = read_lines(f->ledger, &lines);
	free(lines[9]);
	memmove(lines + 9, lines + 10, (n - 10) * sizeof(*lines));
	write_lines(f->ledger, lines, n - 1);
	free_lines(lines, n - 1);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "entry seq 11 (line 10) follows seq 9: entry seq 10 was deleted");
	assert_int_equal(res.bad_seq, 11);
	assert_int_equal(res.bad_line, 10);
}

static void detects_inserted_lines(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024], **lines = NULL, *copy;
	size_t n;

	append_n(f, f->k, 1, N, NULL);
	/* a copy of an earlier, validly signed entry replayed after line 5 */
	n = read_lines(f->ledger, &lines);
	lines = realloc(lines, (n + 1) * sizeof(*lines));
	memmove(lines + 6, lines + 5, (n - 5) * sizeof(*lines));
	lines[5] = dc_strdup(lines[2]);
	write_lines(f->ledger, lines, n + 1);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "entry seq 3 (line 6) repeats an earlier seq");
	assert_contains(msg, "inserted");
	assert_int_equal(res.bad_line, 6);

	/* a forged entry 6 that links to entry 5, with a recomputed hash: the signature fails */
	free(lines[5]);
	{
		json_t *o = json_loads(lines[6], 0, NULL), *c;
		unsigned char raw[32];
		char hex[65], *canon;

		json_object_set_new(o, "event", json_string("tenant.skipped"));
		c = json_copy(o);
		json_object_del(c, "hash");
		json_object_del(c, "sig");
		canon = json_dumps(c, JSON_SORT_KEYS | JSON_COMPACT);
		crypto_hash_sha256(raw, (unsigned char *)canon, strlen(canon));
		dc_hex_encode(hex, raw, 32);
		json_object_set_new(o, "hash", json_string(hex));
		copy = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
		free(canon);
		json_decref(c);
		json_decref(o);
	}
	lines[5] = copy;
	write_lines(f->ledger, lines, n + 1);
	free_lines(lines, n + 1);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "entry seq 6 (line 6) has a bad signature");
	assert_int_equal(res.bad_seq, 6);
}

static void detects_swapped_lines(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024], **lines = NULL, *t;
	size_t n;

	append_n(f, f->k, 1, N, NULL);
	n = read_lines(f->ledger, &lines);
	t = lines[3];
	lines[3] = lines[4];
	lines[4] = t;
	write_lines(f->ledger, lines, n);
	free_lines(lines, n);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "entry seq 5 (line 4) is out of order: entries were reordered");
	assert_int_equal(res.bad_seq, 5);
	assert_int_equal(res.bad_line, 4);
}

static void truncate_to(const fx *f, size_t keep)
{
	char **lines = NULL;
	size_t n = read_lines(f->ledger, &lines);

	write_lines(f->ledger, lines, keep);
	free_lines(lines, n);
}

static void detects_truncated_tail_by_head(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	char msg[1024];

	append_n(f, f->k, 1, N, NULL);
	truncate_to(f, N - 3);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "ends at seq 17 (line 17) but its head record says seq 20");
	assert_contains(msg, "truncated");
	assert_int_equal(res.bad_seq, 18);
	assert_int_equal(res.bad_line, 18);
	/* and an append does not paper over it */
	assert_int_equal(dc_ledger_open(&l, f->ledger, f->k, NULL, &err), 0);
	assert_int_equal(dc_ledger__append(l, "x", NULL, NULL, &err), DC_EINTEGRITY);
	assert_contains(err.message, "truncated");
	dc_ledger_close(l);
}

/* One open handle appending again must still see a tail changed under it. */
static void open_handle_rechecks_a_changed_tail(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	char msg[1024], **lines = NULL, *p, *orig;
	size_t n;
	int i;

	assert_int_equal(dc_ledger_open(&l, f->ledger, f->k, "run-1", &err), 0);
	for (i = 1; i <= 3; i++) {
		json_t *d = json_pack("{s:i}", "n", i);

		assert_int_equal(dc_ledger__append(l, "step", d, NULL, &err), 0);
		json_decref(d);
	}

	/* the last entry edited in place, same length */
	n = read_lines(f->ledger, &lines);
	assert_int_equal(n, 3);
	orig = dc_strdup(lines[2]);
	p = strstr(lines[2], "\"n\":3");
	assert_non_null(p);
	p[4] = '4';
	write_lines(f->ledger, lines, n);
	assert_int_equal(dc_ledger__append(l, "step", NULL, NULL, &err), DC_EINTEGRITY);
	assert_contains(err.message, "entry seq 3 (line 3) was modified");
	dc_error_clear(&err);

	/* put back: the handle appends again, chained onto seq 3 */
	free(lines[2]);
	lines[2] = orig;
	write_lines(f->ledger, lines, n);
	free_lines(lines, n);
	assert_int_equal(dc_ledger__append(l, "step", NULL, NULL, &err), 0);
	assert_int_equal(verify(f, NULL, &res, msg), 0);
	assert_int_equal(res.entries, 4);

	/* another writer appended, then the ledger was cut back to exactly the
	 * bytes this handle left: the head record says more, and is believed */
	{
		dc_ledger *other = NULL;

		assert_int_equal(dc_ledger_open(&other, f->ledger, f->k, "run-2", &err), 0);
		assert_int_equal(dc_ledger__append(other, "step", NULL, NULL, &err), 0);
		dc_ledger_close(other);
	}
	truncate_to(f, 4);
	assert_int_equal(dc_ledger__append(l, "step", NULL, NULL, &err), DC_EINTEGRITY);
	assert_contains(err.message, "ends at seq 4 but its head record says seq 5");
	dc_error_clear(&err);

	/* its own last entry cut off */
	truncate_to(f, 3);
	assert_int_equal(dc_ledger__append(l, "step", NULL, NULL, &err), DC_EINTEGRITY);
	assert_contains(err.message, "ends at seq 3 but its head record says seq 5");
	dc_error_clear(&err);
	dc_ledger_close(l);
}

static void detects_truncated_tail_by_expected_head(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024], eh[100], **lines = NULL, hash[65];
	size_t n;

	append_n(f, f->k, 1, N, NULL);
	n = read_lines(f->ledger, &lines);
	snprintf(eh, sizeof(eh), "%d:%s", N, field(lines[N - 1], "hash", hash, sizeof(hash)));
	free_lines(lines, n);
	truncate_to(f, N - 3);
	/* the attacker also removed the head record */
	assert_int_equal(unlink(f->head), 0);
	assert_int_equal(verify(f, eh, &res, msg), DC_EINTEGRITY);
	assert_contains(msg,
	                "ends at seq 17 but the expected head is seq 20: the tail was truncated");
	assert_int_equal(res.bad_seq, 18);
	/* a hash-only expected head that is gone */
	assert_int_equal(verify(f, hash, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "expected head hash is not in ledger");
	/* an expected head at a seq whose hash differs */
	eh[0] = '5';
	eh[1] = ':';
	memmove(eh + 2, eh + 3, strlen(eh + 3) + 1);
	assert_int_equal(verify(f, eh, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "entry seq 5 (line 5) does not match the expected head hash");
}

static void detects_deleted_head(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024], eh[100];

	append_n(f, f->k, 1, N, NULL);
	assert_int_equal(verify(f, NULL, &res, msg), 0);
	snprintf(eh, sizeof(eh), "%d:%s", N, res.head_hash);
	assert_int_equal(unlink(f->head), 0);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "is missing but the ledger has 20 entries");
	/* with a known head the ledger itself is fine */
	assert_int_equal(verify(f, eh, &res, msg), 0);
}

static void detects_forged_head(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024], *text = NULL, *p;
	size_t len = 0;
	dc_error err = { 0 };

	append_n(f, f->k, 1, N, NULL);
	/* an attacker rolls the head back to seq 17 to hide a truncation */
	truncate_to(f, 17);
	assert_int_equal(dc_file_read(&text, &len, f->head, 4096, &err), 0);
	p = strstr(text, "\"seq\":20");
	assert_non_null(p);
	memcpy(p, "\"seq\":17", 8);
	assert_int_equal(dc_file_write_atomic(f->head, text, len, 0644, false, &err), 0);
	free(text);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "has a bad signature");
}

static void detects_other_key(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_signing_key *other = NULL;
	dc_error err = { 0 };
	char msg[1024], path[160];

	snprintf(path, sizeof(path), "%s/other.key", f->dir);
	assert_int_equal(dc_signing_key_generate(path, NULL, &err), 0);
	assert_int_equal(dc_signing_key_load(&other, path, &err), 0);
	append_n(f, f->k, 1, 10, NULL);
	append_n(f, other, 11, 5, NULL);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "entry seq 11 (line 11) is signed by a different key");
	assert_contains(msg, other->key_id);
	assert_int_equal(res.bad_seq, 11);
	assert_int_equal(res.bad_line, 11);
	dc_signing_key_free(other);
}

static void torn_last_line_fails_verify_and_append(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	char msg[1024];
	FILE *fp;

	append_n(f, f->k, 1, N, NULL);
	fp = fopen(f->ledger, "a");
	assert_non_null(fp);
	fputs("{\"actor\":\"x@y\",\"data\":{\"ten", fp);
	fclose(fp);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "ends in a torn line at line 21");
	assert_int_equal(res.bad_line, 21);
	assert_int_equal(dc_ledger_open(&l, f->ledger, f->k, NULL, &err), 0);
	assert_int_equal(dc_ledger__append(l, "x", NULL, NULL, &err), DC_EINTEGRITY);
	assert_contains(err.message, "ends in a torn line at line 21");
	dc_error_clear(&err);

	/* a torn line that got a newline (garbage last line) is torn too */
	fp = fopen(f->ledger, "a");
	assert_non_null(fp);
	fputs("\n", fp);
	fclose(fp);
	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "ends in a torn line at line 21: the last line does not parse");
	assert_int_equal(dc_ledger__append(l, "x", NULL, NULL, &err), DC_EINTEGRITY);
	assert_contains(err.message, "ends in a torn line at line 21");
	dc_ledger_close(l);
	/* nothing was appended behind it */
	{
		char **lines = NULL;
		size_t n = read_lines(f->ledger, &lines);

		assert_int_equal(n, 21);
		free_lines(lines, n);
	}
}

static void concurrent_writers(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	char msg[1024];
	pid_t pids[4];
	int i, status;

	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			dc_signing_key *k = NULL;
			dc_ledger *l = NULL;
			dc_error err = { 0 };
			char run[16];
			int j, ok = 1;

			snprintf(run, sizeof(run), "writer-%d", i);
			if (dc_signing_key_load(&k, f->key, &err) != 0 ||
			    dc_ledger_open(&l, f->ledger, k, run, &err) != 0)
				_exit(2);
			for (j = 0; j < 200 && ok; j++) {
				json_t *d = json_pack("{s:i, s:i}", "writer", i, "j", j);

				ok = d &&
				     dc_ledger__append(l, "tenant.applied", d, NULL, &err) == 0;
				json_decref(d);
			}
			if (!ok)
				fprintf(stderr, "writer %d: %s\n", i, err.message);
			dc_ledger_close(l);
			dc_signing_key_free(k);
			_exit(ok ? 0 : 1);
		}
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(verify(f, NULL, &res, msg), 0);
	assert_int_equal(res.entries, 800);
	assert_int_equal(res.last_seq, 800);
	assert_int_equal(res.head_seq, 800);
}

typedef struct collect {
	int count;
	int64_t last_seq;
	int stop_after;
} collect;

static int collect_entry(json_t *entry, void *ctx)
{
	collect *c = ctx;
	int64_t seq = json_integer_value(json_object_get(entry, "seq"));

	assert_true(seq > c->last_seq);
	c->last_seq = seq;
	c->count++;
	return c->stop_after && c->count >= c->stop_after ? 42 : 0;
}

static void filtered_read(void **state)
{
	fx *f = *state;
	dc_ledger_filter flt;
	dc_error err = { 0 };
	collect c;
	int64_t now = dc_time_now_ms();

	append_n(f, f->k, 1, 12, "run-a"); /* events: 4 wave.started, 8 tenant.applied */
	append_n(f, f->k, 13, 6, "run-b");

#define READ(...)                                                                               \
	do {                                                                                    \
		memset(&flt, 0, sizeof(flt));                                                   \
		memset(&c, 0, sizeof(c));                                                       \
		__VA_ARGS__;                                                                    \
		assert_int_equal(dc_ledger__read(f->ledger, &flt, collect_entry, &c, &err), 0); \
	} while (0)

	READ((void)0);
	assert_int_equal(c.count, 18);
	READ(flt.run_id = "run-b");
	assert_int_equal(c.count, 6);
	assert_int_equal(c.last_seq, 18);
	READ(flt.event = "wave.started");
	assert_int_equal(c.count, 6); /* i = 3, 6, ..., 18 */
	READ(flt.event = "wave.started"; flt.run_id = "run-a");
	assert_int_equal(c.count, 4);
	READ(flt.tenant = "todd");
	assert_int_equal(c.count, 9);
	READ(flt.tenant = "nobody");
	assert_int_equal(c.count, 0);
	READ(flt.since_ms = now - 60000; flt.until_ms = now + 60000);
	assert_int_equal(c.count, 18);
	READ(flt.since_ms = now + 60000);
	assert_int_equal(c.count, 0);
	READ(flt.until_ms = now - 60000);
	assert_int_equal(c.count, 0);
#undef READ
	memset(&c, 0, sizeof(c));
	c.stop_after = 5;
	assert_int_equal(dc_ledger__read(f->ledger, NULL, collect_entry, &c, &err), 42);
	assert_int_equal(c.count, 5);
	assert_int_equal(dc_ledger__read("/nonexistent/ledger", NULL, collect_entry, &c, &err),
	                 DC_ENOTFOUND);
}

static void batch_and_limits(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_ledger__event evs[50];
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	json_t *d, *big;
	int64_t first = 0;
	char msg[1024], *huge;
	int i;

	assert_int_equal(dc_ledger_open(&l, f->ledger, f->k, NULL, &err), 0);
	assert_int_equal(dc_ledger__append(l, "run.started", NULL, &first, &err), 0);
	assert_int_equal(first, 1);
	for (i = 0; i < 50; i++) {
		evs[i].event = "tenant.applied";
		evs[i].data = json_pack("{s:i}", "i", i);
	}
	assert_int_equal(dc_ledger__append_batch(l, evs, 50, &first, &err), 0);
	assert_int_equal(first, 2);
	for (i = 0; i < 50; i++)
		json_decref(evs[i].data);

	/* refused without writing anything */
	d = json_pack("{s:f}", "seconds", 1.5);
	assert_int_equal(dc_ledger__append(l, "x", d, NULL, &err), DC_EINVAL);
	assert_contains(err.message, "real number");
	json_decref(d);
	dc_error_clear(&err);
	d = json_pack("[i]", 1);
	assert_int_equal(dc_ledger__append(l, "x", d, NULL, &err), DC_EINVAL);
	json_decref(d);
	dc_error_clear(&err);
	assert_int_equal(dc_ledger__append(l, "", NULL, NULL, &err), DC_EINVAL);
	dc_error_clear(&err);
	huge = malloc(1100000);
	memset(huge, 'a', 1099999);
	huge[1099999] = '\0';
	big = json_pack("{s:s}", "blob", huge);
	free(huge);
	assert_int_equal(dc_ledger__append(l, "x", big, NULL, &err), DC_ELIMIT);
	json_decref(big);
	dc_error_clear(&err);
	/* a batch is all or nothing: the bad event 3 stops the lot */
	for (i = 0; i < 5; i++) {
		evs[i].event = "tenant.applied";
		evs[i].data = i == 3 ? json_pack("{s:f}", "x", 0.5) : NULL;
	}
	assert_int_equal(dc_ledger__append_batch(l, evs, 5, &first, &err), DC_EINVAL);
	json_decref(evs[3].data);
	dc_ledger_close(l);

	assert_int_equal(verify(f, NULL, &res, msg), 0);
	assert_int_equal(res.entries, 51);
}

static int count_entry(json_t *entry, void *ctx)
{
	(void)entry;
	(*(int *)ctx)++;
	return 0;
}

/*
 * The whole ledger file deleted while its signed head record (or a head the
 * auditor noted) says entries were written: tampering naming the head's seq,
 * not "cannot open". Without either a missing ledger stays not found.
 */
static void detects_deleted_ledger(void **state)
{
	fx *f = *state;
	dc_ledger_verify_result res;
	dc_error err = { 0 };
	char msg[1024], eh[100], hash[65];
	int seen = 0;

	append_n(f, f->k, 1, N, NULL);
	assert_int_equal(verify(f, NULL, &res, msg), 0);
	snprintf(eh, sizeof(eh), "%d:%s", N, res.head_hash);
	snprintf(hash, sizeof(hash), "%s", res.head_hash);
	assert_int_equal(unlink(f->ledger), 0);

	assert_int_equal(verify(f, NULL, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "is missing but its head record");
	assert_contains(msg,
	                "says seq 20: the whole ledger was deleted (entries seq 1..20 are gone)");
	assert_int_equal(res.head_seq, N);
	assert_int_equal(res.bad_seq, 1);
	assert_int_equal(res.entries, 0);
	assert_int_equal(verify(f, eh, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "says seq 20: the whole ledger was deleted");
	/* reading it (audit show, export) is refused the same way */
	assert_int_equal(dc_ledger__read(f->ledger, NULL, count_entry, &seen, &err), DC_EINTEGRITY);
	assert_contains(err.message, "says seq 20: the whole ledger was deleted");

	/* the head record deleted too: the expected head still catches it */
	assert_int_equal(unlink(f->head), 0);
	assert_int_equal(verify(f, eh, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "is missing but the expected head is seq 20: the whole ledger was "
	                     "deleted (entries seq 1..20 are gone)");
	assert_int_equal(res.bad_seq, 1);
	assert_int_equal(verify(f, hash, &res, msg), DC_EINTEGRITY);
	assert_contains(msg, "is missing but a head was expected: the whole ledger was deleted");

	/* nothing says a ledger ever existed: not found, as before */
	assert_int_equal(verify(f, NULL, &res, msg), DC_ENOTFOUND);
	assert_contains(msg, "cannot open ledger");
	assert_contains(msg, "No such file or directory");
	dc_error_clear(&err);
	assert_int_equal(dc_ledger__read(f->ledger, NULL, count_entry, &seen, &err), DC_ENOTFOUND);
	assert_int_equal(seen, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(keygen_is_private_and_refuses_overwrite, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(appends_and_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_ledger_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(public_api_takes_json_text, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_options_are_versioned, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_modified_data, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_rehashed_entry_by_signature, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(detects_deleted_line, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_inserted_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_swapped_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_truncated_tail_by_head, setup, teardown),
		cmocka_unit_test_setup_teardown(open_handle_rechecks_a_changed_tail, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(detects_truncated_tail_by_expected_head, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(detects_deleted_head, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_forged_head, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_other_key, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_last_line_fails_verify_and_append, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(filtered_read, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(detects_deleted_ledger, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
