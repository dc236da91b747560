/*
 * Verifying and reading the audit ledger.
 *
 * Verify streams the file through one big buffer: every complete line in
 * the buffer becomes a batch; worker threads parse each line, recompute its
 * hash and check its signature (the expensive part: Ed25519 verification
 * is ~45 us), then this thread walks the batch in order checking seqs and
 * prev links, so the first bad entry is the one reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include <deployclaw/ledger.h>

#include "ledger_internal.h"
#include "ledger_json.h"
#include "util/array.h"
#include "util/pool.h"
#include "util/util.h"

/* Big enough for several maximal lines; one read() fills most of it. */
#define BUF_SIZE    ((size_t)8 * 1024 * 1024)
#define MAX_THREADS 16
/* Below this many lines a batch is checked on this thread alone. */
#define MIN_PARALLEL 64

enum {
	V_OK,
	V_TORN,     /* the final bytes have no newline */
	V_PARSE,    /* not JSON */
	V_FIELD,    /* JSON, but a field is missing or malformed */
	V_MODIFIED, /* hash does not match the content */
	V_KEYID,    /* signed by another key */
	V_BADSIG
};

typedef struct vent {
	const char *line;
	size_t len;
	int64_t lineno;
	int64_t seq;
	int status;
	bool last; /* the file's last line */
	unsigned char hash[32];
	unsigned char prev[32];
	unsigned char sig[64];
	char key_id[17];
	char detail[160];
} vent;

typedef struct worker {
	vent *ents;
	size_t from, to;
	const unsigned char *pk;
	const char *key_id;
	bool check_sigs;
	char *buf;
	size_t cap;
} worker;

static const char *field_hex(json_t *o, const char *key, size_t n)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && dc_ledger__is_hex(s, n) ? s : NULL;
}

static void check_entry(worker *w, vent *e)
{
	static const char *const strings[] = { "ts", "run_id", "actor", "event" };
	unsigned char computed[32];
	json_error_t jerr;
	const char *s, *bad = NULL;
	size_t siglen = 0, i, n;
	json_t *o;

	if (e->status == V_TORN)
		return;
	o = json_loadb(e->line, e->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		e->status = V_PARSE;
		snprintf(e->detail, sizeof(e->detail), "%s", jerr.text);
		return;
	}
	if (!json_is_object(o)) {
		bad = "an object";
		goto field;
	}
	if (!json_is_integer(json_object_get(o, "seq")) ||
	    json_integer_value(json_object_get(o, "seq")) < 1) {
		bad = "'seq'";
		goto field;
	}
	e->seq = json_integer_value(json_object_get(o, "seq"));
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (!json_is_string(json_object_get(o, strings[i]))) {
			bad = strings[i];
			goto field;
		}
	if (!json_is_object(json_object_get(o, "data"))) {
		bad = "'data'";
		goto field;
	}
	if (!(s = field_hex(o, "prev", 64)) || dc_hex_decode(e->prev, 32, s) != 0) {
		bad = "'prev'";
		goto field;
	}
	if (!(s = field_hex(o, "hash", 64)) || dc_hex_decode(e->hash, 32, s) != 0) {
		bad = "'hash'";
		goto field;
	}
	if (!(s = field_hex(o, "key_id", 16))) {
		bad = "'key_id'";
		goto field;
	}
	memcpy(e->key_id, s, 17);
	s = json_string_value(json_object_get(o, "sig"));
	if (!s ||
	    sodium_base642bin(e->sig, sizeof(e->sig), s, strlen(s), NULL, &siglen, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    siglen != sizeof(e->sig)) {
		bad = "'sig'";
		goto field;
	}
	/* the hash covers everything but itself and the signature */
	json_object_del(o, "hash");
	json_object_del(o, "sig");
	for (;;) {
		n = json_dumpb(o, w->buf, w->cap, DC_LEDGER__CANON_FLAGS);
		if (n <= w->cap || n == 0)
			break;
		free(w->buf);
		w->cap = n;
		w->buf = malloc(n);
		if (!w->buf) {
			w->cap = 0;
			n = 0;
			break;
		}
	}
	json_decref(o);
	if (n == 0) {
		e->status = V_MODIFIED; /* cannot serialise (OOM): never report it good */
		snprintf(e->detail, sizeof(e->detail), "out of memory");
		return;
	}
	crypto_hash_sha256(computed, (const unsigned char *)w->buf, n);
	if (sodium_memcmp(computed, e->hash, 32) != 0) {
		e->status = V_MODIFIED;
		return;
	}
	if (w->key_id && strcmp(w->key_id, e->key_id) != 0) {
		e->status = V_KEYID;
		return;
	}
	if (w->check_sigs && crypto_sign_verify_detached(e->sig, e->hash, 32, w->pk) != 0) {
		e->status = V_BADSIG;
		return;
	}
	e->status = V_OK;
	return;
field:
	e->status = V_FIELD;
	snprintf(e->detail, sizeof(e->detail), "missing or invalid %s", bad);
	json_decref(o);
}

static void worker_run(size_t i, void *arg)
{
	worker *w = &((worker *)arg)[i];

	for (size_t k = w->from; k < w->to; k++)
		check_entry(w, &w->ents[k]);
}

/* Checks ents[0..n) in `nw` slices, one per worker struct, on the pool. */
static void check_batch(worker *workers, int nw, vent *ents, size_t n)
{
	int used = n < MIN_PARALLEL ? 1 : nw, i;
	size_t per = (n + (size_t)used - 1) / (size_t)used;

	for (i = 0; i < used; i++) {
		workers[i].ents = ents;
		workers[i].from = (size_t)i * per < n ? (size_t)i * per : n;
		workers[i].to = workers[i].from + per < n ? workers[i].from + per : n;
	}
	/* Never fails: threads that cannot be had make the run narrower. */
	(void)dc_pool_run((size_t)used, (unsigned)used, 0, worker_run, workers);
}

/* Opens the ledger for a consistent snapshot: its size (and, for the caller,
 * the head record) read under a shared lock, which stays held on success.
 * A ledger that does not exist is no error here: `*fd` is -1 and 0 returned
 * (each caller reports it its own way, ledger_missing). */
static int open_snapshot(const char *path, int *fd, off_t *size, dc_error *err)
{
	struct stat st;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT)
		return 0;
	if (*fd < 0)
		return dc_error_set(err, DC_EIO, "cannot open ledger '%s': %s", path,
		                    strerror(errno));
	while (flock(*fd, LOCK_SH) != 0)
		if (errno != EINTR)
			return dc_error_set(err, DC_EIO, "cannot lock ledger '%s': %s", path,
			                    strerror(errno));
	if (fstat(*fd, &st) != 0) {
		flock(*fd, LOCK_UN);
		return dc_error_set(err, DC_EIO, "cannot stat ledger '%s': %s", path,
		                    strerror(errno));
	}
	*size = st.st_size;
	return 0;
}

/* Reads into buf[*end..cap) as far as `remaining` allows; DC_EIO names the
 * ledger `path`. */
static int fill(int fd,
                const char *path,
                char *buf,
                size_t cap,
                size_t *end,
                off_t *remaining,
                dc_error *err)
{
	while (*end<cap && * remaining> 0) {
		size_t want = cap - *end;
		ssize_t n;

		if ((off_t)want > *remaining)
			want = (size_t)*remaining;
		n = read(fd, buf + *end, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dc_error_set(err, DC_EIO, "cannot read ledger '%s': %s", path,
			                    strerror(errno));
		if (n == 0) {
			*remaining = 0; /* shrunk under us: verify what is there */
			break;
		}
		*end += (size_t)n;
		*remaining -= n;
	}
	return 0;
}

typedef struct expect {
	bool given, has_seq, found;
	int64_t seq;
	unsigned char hash[32];
} expect;

static int parse_expect(expect *x, const char *s, dc_error *err)
{
	const char *colon = strchr(s, ':');
	char *end = NULL;

	memset(x, 0, sizeof(*x));
	x->given = true;
	if (colon) {
		errno = 0;
		x->seq = strtoll(s, &end, 10);
		if (errno || end != colon || x->seq < 1)
			goto bad;
		x->has_seq = true;
		s = colon + 1;
	}
	if (!dc_ledger__is_hex(s, 64) || dc_hex_decode(x->hash, 32, s) != 0)
		goto bad;
	return 0;
bad:
	return dc_error_set(err, DC_EINVAL,
	                    "expected head '%s' is not \"seq:hash\" or a 64-character hex hash", s);
}

/* The error for the first bad entry `e`; `expected` is the seq it should have. */
static int report(const char *path,
                  vent *e,
                  vent *batch_end,
                  int64_t expected,
                  bool link_ok,
                  const unsigned char *expected_key,
                  dc_ledger_verify_result *res,
                  dc_error *err)
{
	char want_id[17] = "";
	vent *f;

	res->bad_line = e->lineno;
	res->bad_seq = e->status == V_OK || e->status >= V_MODIFIED ? e->seq : expected;
	switch (e->status) {
	case V_TORN:
		return dc_error_set(
		        err, DC_EINTEGRITY,
		        "ledger '%s' ends in a torn line at line %" PRId64
		        ": the file does not end in a newline (a crash during a write?)",
		        path, e->lineno);
	case V_PARSE:
		if (e->last)
			return dc_error_set(err, DC_EINTEGRITY,
			                    "ledger '%s' ends in a torn line at line %" PRId64
			                    ": the last line does not parse: %s",
			                    path, e->lineno, e->detail);
		return dc_error_set(err, DC_EINTEGRITY,
		                    "ledger '%s': line %" PRId64 " is not a ledger entry: %s", path,
		                    e->lineno, e->detail);
	case V_FIELD:
		return dc_error_set(err, DC_EINTEGRITY,
		                    "ledger '%s': line %" PRId64 " is not a ledger entry: %s", path,
		                    e->lineno, e->detail);
	case V_MODIFIED:
		return dc_error_set(err, DC_EINTEGRITY,
		                    "entry seq %" PRId64 " (line %" PRId64
		                    ") was modified: its hash does not match its content",
		                    e->seq, e->lineno);
	default:
		break;
	}
	if (e->seq > expected) {
		for (f = e + 1; f < batch_end; f++)
			if (f->seq == expected)
				return dc_error_set(
				        err, DC_EINTEGRITY,
				        "entry seq %" PRId64 " (line %" PRId64
				        ") is out of order: entries were reordered (seq %" PRId64
				        " is at line %" PRId64 ")",
				        e->seq, e->lineno, expected, f->lineno);
		if (e->seq == expected + 1)
			return dc_error_set(err, DC_EINTEGRITY,
			                    "entry seq %" PRId64 " (line %" PRId64
			                    ") follows seq %" PRId64 ": entry seq %" PRId64
			                    " was deleted",
			                    e->seq, e->lineno, expected - 1, expected);
		return dc_error_set(err, DC_EINTEGRITY,
		                    "entry seq %" PRId64 " (line %" PRId64 ") follows seq %" PRId64
		                    ": entries seq %" PRId64 "..%" PRId64 " were deleted",
		                    e->seq, e->lineno, expected - 1, expected, e->seq - 1);
	}
	if (e->seq < expected)
		return dc_error_set(err, DC_EINTEGRITY,
		                    "entry seq %" PRId64 " (line %" PRId64
		                    ") repeats an earlier seq after seq %" PRId64
		                    ": an entry was inserted (or replayed)",
		                    e->seq, e->lineno, expected - 1);
	if (!link_ok) /* seq right: the prev link is what broke */
		return dc_error_set(err, DC_EINTEGRITY,
		                    "entry seq %" PRId64 " (line %" PRId64
		                    ") does not link to entry seq %" PRId64
		                    ": its prev hash differs, an entry was inserted or replaced",
		                    e->seq, e->lineno, e->seq - 1);
	if (e->status == V_KEYID) {
		if (expected_key)
			dc_ledger__key_id(want_id, expected_key);
		return dc_error_set(err, DC_EINTEGRITY,
		                    "entry seq %" PRId64 " (line %" PRId64
		                    ") is signed by a different key (key_id %s, expected %s)",
		                    e->seq, e->lineno, e->key_id, want_id);
	}
	return dc_error_set(err, DC_EINTEGRITY,
	                    "entry seq %" PRId64 " (line %" PRId64 ") has a bad signature", e->seq,
	                    e->lineno);
}

/*
 * The ledger file does not exist (open failed with ENOENT). A head record, or
 * an expected head, says entries were written there: the whole ledger was
 * deleted, which is tampering (the tail truncated down to nothing), not a
 * missing file. Without either, nothing says it ever existed. `x` and `res`
 * may be NULL.
 */
static int ledger_missing(const char *path,
                          const unsigned char *pk,
                          const expect *x,
                          dc_ledger_verify_result *res,
                          dc_error *err)
{
	dc_ledger__head head;
	char *head_path = dc_ledger__head_path(path);
	int rc;

	if (!head_path)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	rc = dc_ledger__head_read(&head, head_path, pk, NULL, err);
	if (rc == 0) {
		if (res) {
			res->head_seq = head.seq;
			res->bad_seq = 1;
			res->bad_line = 1;
		}
		rc = dc_error_set(
		        err, DC_EINTEGRITY,
		        "ledger '%s' is missing but its head record '%s' says seq %" PRId64
		        ": the whole ledger was deleted (entries seq 1..%" PRId64 " are gone)",
		        path, head_path, head.seq, head.seq);
	} else if (rc == DC_ENOTFOUND && x && x->given) {
		if (res) {
			res->bad_seq = 1;
			res->bad_line = 1;
		}
		if (x->has_seq)
			rc = dc_error_set(
			        err, DC_EINTEGRITY,
			        "ledger '%s' is missing but the expected head is seq %" PRId64
			        ": the whole ledger was deleted (entries seq 1..%" PRId64
			        " are gone)",
			        path, x->seq, x->seq);
		else
			rc = dc_error_set(
			        err, DC_EINTEGRITY,
			        "ledger '%s' is missing but a head was expected: the whole "
			        "ledger was deleted",
			        path);
	} else if (rc == DC_ENOTFOUND) {
		rc = dc_error_set(err, DC_ENOTFOUND, "cannot open ledger '%s': %s", path,
		                  strerror(ENOENT));
	}
	/* else: a head record that does not parse or verify, named by err */
	free(head_path);
	return rc;
}

/* The state one verify pass carries from step to step. */
typedef struct vpass {
	const char *path;
	const dc_ledger_verify_opts *opts;
	bool fast;
	dc_ledger_verify_result *res;
	worker workers[MAX_THREADS];
	int nw;
	dc_ledger__head head;
	bool have_head, head_hash_seen;
	char *head_path, *buf, pk_id[17];
	unsigned char prev[32], head_hash_at[32], last_sig[64];
	vent *ents; /* the current batch */
	size_t ents_cap, start, end;
	int64_t expected, lineno;
	off_t remaining;
	expect x;
	int fd;
} vpass;

/*
 * Resets the result, takes the options apart, and opens the snapshot: the
 * ledger's size and its head record. Returns 0 with `vp->fd` -1 only if the
 * ledger is missing and ledger_missing() found nothing to report.
 */
static int pass_open(vpass *vp, int threads, dc_error *err)
{
	dc_ledger_verify_result *res = vp->res;
	const dc_ledger_verify_opts *opts = vp->opts;
	off_t size = 0;
	long ncpu;
	int rc, i;

	memset(res, 0, sizeof(*res));
	memcpy(res->head_hash, "0000000000000000000000000000000000000000000000000000000000000000",
	       65);
	res->head_seq = -1;
	rc = dc_ledger__crypto_init(err);
	if (rc)
		return rc;
	if (opts->expect_head) {
		rc = parse_expect(&vp->x, opts->expect_head, err);
		if (rc)
			return rc;
	}
	if (opts->pubkey)
		dc_ledger__key_id(vp->pk_id, opts->pubkey);
	res->signatures_checked = opts->pubkey != NULL;
	vp->head_path = dc_ledger__head_path(vp->path);
	vp->buf = malloc(BUF_SIZE);
	if (!vp->head_path || !vp->buf)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	/* size and head together: appends write the line before the head */
	rc = open_snapshot(vp->path, &vp->fd, &size, err);
	if (rc == 0 && vp->fd < 0)
		rc = ledger_missing(vp->path, opts->pubkey, &vp->x, res, err);
	if (rc || vp->fd < 0)
		return rc;
	rc = dc_ledger__head_read(&vp->head, vp->head_path, opts->pubkey, NULL, err);
	flock(vp->fd, LOCK_UN);
	if (rc == DC_ENOTFOUND) {
		rc = 0;
	} else if (rc) {
		return rc;
	} else {
		vp->have_head = true;
		res->head_seq = vp->head.seq;
	}
	vp->remaining = size;

	ncpu = threads > 0 ? threads : (long)dc_pool_cpus();
	vp->nw = ncpu < 1 ? 1 : ncpu > MAX_THREADS ? MAX_THREADS : (int)ncpu;
	for (i = 0; i < vp->nw; i++) {
		vp->workers[i].pk = opts->pubkey;
		vp->workers[i].key_id = opts->pubkey ? vp->pk_id : NULL;
		vp->workers[i].check_sigs = opts->pubkey && !vp->fast;
	}
	return 0;
}

/*
 * Reads on and makes every complete line in the buffer an entry of the
 * batch, `*n` of them; at the end of the file a final line without a
 * newline becomes a V_TORN entry and `*lines_left` turns false.
 */
static int read_batch(vpass *vp, size_t *n, bool *lines_left, dc_error *err)
{
	const char *p, *nl;
	char *buf = vp->buf;
	int rc;

	*n = 0;
	if ((rc = fill(vp->fd, vp->path, buf, BUF_SIZE, &vp->end, &vp->remaining, err)) != 0)
		return rc;
	for (p = buf + vp->start; (nl = memchr(p, '\n', (size_t)(buf + vp->end - p))); p = nl + 1) {
		if (*n == vp->ents_cap &&
		    dc_array_grow(&vp->ents, &vp->ents_cap, sizeof(*vp->ents), 4096) != 0)
			return dc_error_set(err, DC_ENOMEM, "out of memory");
		if ((size_t)(nl - p) > DC_LEDGER__MAX_LINE) {
			vp->res->bad_line = vp->lineno + 1;
			return dc_error_set(err, DC_ELIMIT,
			                    "ledger '%s': line %" PRId64
			                    " is longer than %zu bytes",
			                    vp->path, vp->lineno + 1, DC_LEDGER__MAX_LINE);
		}
		memset(&vp->ents[*n], 0, sizeof(vp->ents[*n]));
		vp->ents[*n].line = p;
		vp->ents[*n].len = (size_t)(nl - p);
		vp->ents[*n].lineno = ++vp->lineno;
		(*n)++;
	}
	vp->start = (size_t)(p - buf);
	if (vp->remaining == 0) {
		*lines_left = false;
		if (vp->start < vp->end) {
			if (*n == vp->ents_cap) {
				vent *grown = dc_realloc_array(vp->ents, *n + 1, sizeof(*grown));

				if (!grown)
					return dc_error_set(err, DC_ENOMEM, "out of memory");
				vp->ents = grown;
				vp->ents_cap = *n + 1;
			}
			memset(&vp->ents[*n], 0, sizeof(vp->ents[*n]));
			vp->ents[*n].status = V_TORN;
			vp->ents[*n].lineno = ++vp->lineno;
			(*n)++;
			vp->start = vp->end;
		}
		if (*n)
			vp->ents[*n - 1].last = true;
	} else if (vp->end - vp->start > DC_LEDGER__MAX_LINE) {
		vp->res->bad_line = vp->lineno + 1;
		return dc_error_set(err, DC_ELIMIT,
		                    "ledger '%s': line %" PRId64 " is longer than %zu bytes",
		                    vp->path, vp->lineno + 1, DC_LEDGER__MAX_LINE);
	}
	return 0;
}

/*
 * Walks the checked batch ents[0..n) in order: each entry's own status, its
 * seq and prev link, the head record's and the expected head's hash. The
 * first bad entry is the one reported.
 */
static int check_links(vpass *vp, size_t n, dc_error *err)
{
	dc_ledger_verify_result *res = vp->res;
	expect *x = &vp->x;
	size_t k;

	for (k = 0; k < n; k++) {
		vent *e = &vp->ents[k];

		if (e->status != V_OK && e->status != V_KEYID && e->status != V_BADSIG)
			return report(vp->path, e, vp->ents + n, vp->expected, true,
			              vp->opts->pubkey, res, err);
		if (e->seq != vp->expected || memcmp(e->prev, vp->prev, 32) != 0 ||
		    e->status != V_OK)
			return report(vp->path, e, vp->ents + n, vp->expected,
			              memcmp(e->prev, vp->prev, 32) == 0, vp->opts->pubkey, res,
			              err);
		memcpy(vp->prev, e->hash, 32);
		memcpy(vp->last_sig, e->sig, 64);
		if (vp->have_head && e->seq == vp->head.seq) {
			memcpy(vp->head_hash_at, e->hash, 32);
			vp->head_hash_seen = true;
		}
		if (x->given && ((x->has_seq && e->seq == x->seq) || !x->has_seq) &&
		    memcmp(e->hash, x->hash, 32) == 0)
			x->found = true;
		else if (x->given && x->has_seq && e->seq == x->seq) {
			res->bad_seq = e->seq;
			res->bad_line = e->lineno;
			return dc_error_set(
			        err, DC_EINTEGRITY,
			        "entry seq %" PRId64 " (line %" PRId64
			        ") does not match the expected head hash: the ledger was rewritten",
			        e->seq, e->lineno);
		}
		res->entries++;
		res->last_seq = e->seq;
		vp->expected++;
	}
	return 0;
}

/*
 * After the last entry: the head record (its key, its seq against the
 * ledger's end, its hash against the entry it names), the expected head,
 * and in a fast pass the one signature checked, the last entry's.
 */
static int check_end(vpass *vp, dc_error *err)
{
	dc_ledger_verify_result *res = vp->res;
	const dc_ledger_verify_opts *opts = vp->opts;
	dc_ledger__head *head = &vp->head;
	int64_t lineno = vp->lineno;

	/* checked after the entries so an entry signed by another key is named first */
	if (vp->have_head && opts->pubkey && strcmp(head->key_id, vp->pk_id) != 0)
		return dc_error_set(
		        err, DC_EINTEGRITY,
		        "head record '%s' is signed by a different key (key_id %s, expected %s)",
		        vp->head_path, head->key_id, vp->pk_id);
	if (vp->have_head && head->seq > res->last_seq) {
		res->bad_seq = res->last_seq + 1;
		res->bad_line = lineno + 1;
		return dc_error_set(err, DC_EINTEGRITY,
		                    "ledger '%s' ends at seq %" PRId64 " (line %" PRId64
		                    ") but its head record says seq %" PRId64
		                    ": the tail was truncated (entry seq %" PRId64
		                    " onwards is missing)",
		                    vp->path, res->last_seq, lineno, head->seq, res->last_seq + 1);
	}
	if (vp->have_head && head->seq > 0) {
		unsigned char hh[32];

		if (dc_hex_decode(hh, 32, head->hash) != 0 || !vp->head_hash_seen ||
		    memcmp(hh, vp->head_hash_at, 32) != 0) {
			res->bad_seq = head->seq;
			res->bad_line = head->seq;
			return dc_error_set(
			        err, DC_EINTEGRITY,
			        "entry seq %" PRId64
			        " does not match the head record '%s': the ledger was rewritten",
			        head->seq, vp->head_path);
		}
	}
	if (!vp->have_head && res->entries > 0 && !vp->x.given)
		return dc_error_set(
		        err, DC_EINTEGRITY,
		        "head record '%s' is missing but the ledger has %" PRId64
		        " entries: it was deleted (verify against a known head with --expect-head)",
		        vp->head_path, res->entries);
	if (vp->x.given && !vp->x.found) {
		if (vp->x.has_seq && vp->x.seq > res->last_seq) {
			res->bad_seq = res->last_seq + 1;
			res->bad_line = lineno + 1;
			return dc_error_set(err, DC_EINTEGRITY,
			                    "ledger '%s' ends at seq %" PRId64
			                    " but the expected head is seq %" PRId64
			                    ": the tail was truncated",
			                    vp->path, res->last_seq, vp->x.seq);
		}
		return dc_error_set(
		        err, DC_EINTEGRITY,
		        "the expected head hash is not in ledger '%s': it was truncated or rewritten",
		        vp->path);
	}
	if (opts->pubkey && vp->fast && res->entries > 0 &&
	    crypto_sign_verify_detached(vp->last_sig, vp->prev, 32, opts->pubkey) != 0) {
		res->bad_seq = res->last_seq;
		res->bad_line = lineno;
		return dc_error_set(err, DC_EINTEGRITY,
		                    "entry seq %" PRId64 " (line %" PRId64 ") has a bad signature",
		                    res->last_seq, lineno);
	}
	return 0;
}

/* One pass over the ledger; `fast` checks only the last signature. */
static int verify_pass(const char *path,
                       const dc_ledger_verify_opts *opts,
                       bool fast,
                       int threads,
                       dc_ledger_verify_result *result,
                       dc_error *err)
{
	dc_ledger_verify_result local;
	vpass vp = { .path = path,
		     .opts = opts,
		     .fast = fast,
		     .res = result ? result : &local,
		     .expected = 1,
		     .fd = -1 };
	bool lines_left = true;
	size_t n;
	int rc, i;

	rc = pass_open(&vp, threads, err);
	if (rc || vp.fd < 0)
		goto out;
	while (lines_left) {
		rc = read_batch(&vp, &n, &lines_left, err);
		if (rc)
			goto out;
		check_batch(vp.workers, vp.nw, vp.ents, n);
		rc = check_links(&vp, n, err);
		if (rc)
			goto out;
		/* keep the partial last line, make room behind it */
		memmove(vp.buf, vp.buf + vp.start, vp.end - vp.start);
		vp.end -= vp.start;
		vp.start = 0;
	}
	dc_hex_encode(vp.res->head_hash, vp.prev, 32);
	rc = check_end(&vp, err);
out:
	for (i = 0; i < MAX_THREADS; i++)
		free(vp.workers[i].buf);
	if (vp.fd >= 0)
		close(vp.fd);
	free(vp.ents);
	free(vp.buf);
	free(vp.head_path);
	return rc;
}

int dc_ledger_verify_opts_init(dc_ledger_verify_opts *opts, unsigned version)
{
	static const dc_ledger_verify_opts defaults = DC_LEDGER_VERIFY_OPTIONS_INIT;

	if (version == 0 || version > DC_LEDGER_VERIFY_OPTIONS_VERSION)
		return DC_EINVAL;
	*opts = defaults;
	opts->version = version;
	return 0;
}

int dc_ledger_verify(const char *path,
                     const dc_ledger_verify_opts *opts,
                     dc_ledger_verify_result *result,
                     dc_error *err)
{
	static const dc_ledger_verify_opts defaults = DC_LEDGER_VERIFY_OPTIONS_INIT;
	dc_error first = { 0 };
	int rc;

	if (!opts)
		opts = &defaults;
	if (opts->version == 0 || opts->version > DC_LEDGER_VERIFY_OPTIONS_VERSION)
		return dc_error_set(
		        err, DC_EINVAL,
		        "ledger verify options of version %u (this library knows 1 to %d)",
		        opts->version, DC_LEDGER_VERIFY_OPTIONS_VERSION);
	if (!(opts->flags & DC_LEDGER_VERIFY_FAST) || !opts->pubkey)
		return verify_pass(path, opts, false, opts->threads, result, err);
	rc = verify_pass(path, opts, true, opts->threads, result, &first);
	if (rc != DC_EINTEGRITY)
		return rc ? dc_error_set(err, rc, "%s", first.message) : 0;
	/*
	 * Something is wrong. Without every signature the first failure seen
	 * may not be the first bad entry (a re-hashed entry shows up as a
	 * broken link one line later): a full pass names it.
	 */
	rc = verify_pass(path, opts, false, opts->threads, result, err);
	if (rc == 0) /* changed in between (a torn line completed?): still report */
		rc = dc_error_set(err, DC_EINTEGRITY, "%s", first.message);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading with a filter.                                                   */

static bool str_is(json_t *o, const char *key, const char *want)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && strcmp(s, want) == 0;
}

/* `data.tenant` names the tenant, or one of a batch's `data.outcomes[]` does. */
static bool about_tenant(json_t *data, const char *tenant)
{
	json_t *outcomes = json_object_get(data, "outcomes");
	size_t i;

	if (str_is(data, "tenant", tenant))
		return true;
	for (i = 0; i < json_array_size(outcomes); i++)
		if (str_is(json_array_get(outcomes, i), "tenant", tenant))
			return true;
	return false;
}

static int filter_match(json_t *e, const dc_ledger_filter *f, bool *match)
{
	int64_t ts;

	*match = false;
	if (!f) {
		*match = true;
		return 0;
	}
	if (f->run_id && !str_is(e, "run_id", f->run_id))
		return 0;
	if (f->event && !str_is(e, "event", f->event))
		return 0;
	if (f->tenant && !about_tenant(json_object_get(e, "data"), f->tenant))
		return 0;
	if (f->since_ms || f->until_ms) {
		if (dc_time_parse_rfc3339(&ts, json_string_value(json_object_get(e, "ts"))) != 0)
			return -1;
		if (f->since_ms && ts < f->since_ms)
			return 0;
		if (f->until_ms && ts >= f->until_ms)
			return 0;
	}
	*match = true;
	return 0;
}

int dc_ledger__read(const char *path,
                    const dc_ledger_filter *filter,
                    int (*fn)(json_t *entry, void *ctx),
                    void *ctx,
                    dc_error *err)
{
	char *buf = NULL;
	size_t start = 0, end = 0;
	off_t size = 0, remaining;
	int64_t lineno = 0;
	json_t *e = NULL;
	json_error_t jerr;
	bool match;
	int fd = -1, rc = 0;

	buf = malloc(BUF_SIZE);
	if (!buf)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	rc = open_snapshot(path, &fd, &size, err);
	if (rc == 0 && fd < 0)
		rc = ledger_missing(path, NULL, NULL, NULL, err);
	if (rc || fd < 0)
		goto out;
	flock(fd, LOCK_UN);
	remaining = size;
	for (;;) {
		const char *p, *nl;

		if ((rc = fill(fd, path, buf, BUF_SIZE, &end, &remaining, err)) != 0)
			goto out;
		for (p = buf + start; (nl = memchr(p, '\n', (size_t)(buf + end - p))); p = nl + 1) {
			lineno++;
			if ((size_t)(nl - p) > DC_LEDGER__MAX_LINE) {
				rc = dc_error_set(err, DC_ELIMIT,
				                  "ledger '%s': line %" PRId64
				                  " is longer than %zu bytes",
				                  path, lineno, DC_LEDGER__MAX_LINE);
				goto out;
			}
			e = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &jerr);
			if (!e || !json_is_object(e)) {
				rc = dc_error_set(err, DC_EINTEGRITY,
				                  "ledger '%s': line %" PRId64
				                  " is not a ledger entry: %s",
				                  path, lineno, e ? "not an object" : jerr.text);
				goto out;
			}
			if (filter_match(e, filter, &match) != 0) {
				rc = dc_error_set(err, DC_EINTEGRITY,
				                  "ledger '%s': line %" PRId64 " has no valid ts",
				                  path, lineno);
				goto out;
			}
			if (match) {
				rc = fn(e, ctx);
				if (rc)
					goto out;
			}
			json_decref(e);
			e = NULL;
		}
		start = (size_t)(p - buf);
		if (remaining == 0) {
			if (start < end)
				rc = dc_error_set(err, DC_EINTEGRITY,
				                  "ledger '%s' ends in a torn line at line %" PRId64
				                  ": the file does not end in a newline",
				                  path, lineno + 1);
			goto out;
		}
		if (end - start > DC_LEDGER__MAX_LINE) {
			rc = dc_error_set(err, DC_ELIMIT,
			                  "ledger '%s': line %" PRId64 " is longer than %zu bytes",
			                  path, lineno + 1, DC_LEDGER__MAX_LINE);
			goto out;
		}
		memmove(buf, buf + start, end - start);
		end -= start;
		start = 0;
	}
out:
	json_decref(e);
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

typedef struct {
	int (*fn)(const char *entry_json, void *ctx);
	void *ctx;
	bool oom;
} text_reader;

static int read_as_text(json_t *entry, void *arg)
{
	text_reader *r = arg;
	char *text = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);
	int rc;

	if (!text) {
		r->oom = true;
		return DC_ENOMEM;
	}
	rc = r->fn(text, r->ctx);
	free(text);
	return rc;
}

int dc_ledger_read(const char *path,
                   const dc_ledger_filter *filter,
                   int (*fn)(const char *entry_json, void *ctx),
                   void *ctx,
                   dc_error *err)
{
	text_reader r = { fn, ctx, false };
	int rc = dc_ledger__read(path, filter, read_as_text, &r, err);

	if (r.oom)
		dc_error_set(err, rc, "out of memory");
	return rc;
}
