/*
 * Appending to the audit ledger: one line per entry, written under an
 * exclusive flock with a single write(), fsync'd, then the signed head
 * record is replaced atomically under the same lock.
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
#include "util/util.h"

#define ZERO_HASH  "0000000000000000000000000000000000000000000000000000000000000000"
#define MAX_RUN_ID 128
#define MAX_DEPTH  64

struct dc_ledger {
	char *path;
	char *head_path;
	int fd;
	const dc_signing_key *key;
	char *run_id;
	char actor[256];
	/*
	 * The tail as this handle left it: the last line it wrote (with its
	 * newline), that entry's seq and hash, the ledger's size then and the
	 * head record's bytes. While the ledger still ends in exactly those
	 * bytes at that size and the head record holds exactly what it wrote,
	 * nobody else appended or rewrote either, and the next append need not
	 * parse, re-hash and re-check the tail and head record it wrote itself
	 * (a batch of tenant outcomes is ~100 KiB of JSON). Anything else takes
	 * the full path: read_tail and check_head.
	 */
	dc_strbuf tail_line;
	dc_strbuf head_text; /* the head record as this handle last wrote it */
	int64_t tail_seq;
	char tail_hash[65];
	off_t tail_size;
	dev_t tail_dev;
	ino_t tail_ino;
	bool tail_known;
};

int dc_ledger_open(dc_ledger **out,
                   const char *path,
                   const dc_signing_key *key,
                   const char *run_id,
                   dc_error *err)
{
	dc_ledger *l = NULL;
	char *dir = NULL;
	unsigned char rnd[8];
	char id[17];
	bool created = false;
	int rc = 0, fd;

	*out = NULL;
	rc = dc_ledger__crypto_init(err);
	if (rc)
		return rc;
	if (!path || !*path || !key)
		return dc_error_set(err, DC_EINVAL, "a ledger needs a path and a signing key");
	if (run_id && (!*run_id || strlen(run_id) > MAX_RUN_ID))
		return dc_error_set(err, DC_EINVAL, "run id must be 1 to %d characters",
		                    MAX_RUN_ID);
	l = calloc(1, sizeof(*l));
	if (!l)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	l->fd = -1;
	l->key = key;
	dc_strbuf_init(&l->tail_line, 0);
	dc_strbuf_init(&l->head_text, 0);
	if (!run_id) {
		randombytes_buf(rnd, sizeof(rnd));
		dc_hex_encode(id, rnd, sizeof(rnd));
		run_id = id;
	}
	l->path = dc_strdup(path);
	l->head_path = dc_ledger__head_path(path);
	l->run_id = dc_strdup(run_id);
	dir = dc_path_dirname(path);
	if (!l->path || !l->head_path || !l->run_id || !dir) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	dc_actor(l->actor, sizeof(l->actor));
	rc = dc_mkdir_p(dir, 0755, err);
	if (rc)
		goto out;
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0)
		created = true;
	else if (errno == EEXIST)
		fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		rc = dc_error_set(err, DC_EIO, "cannot open ledger '%s': %s", path,
		                  strerror(errno));
		goto out;
	}
	l->fd = fd;
	if (created) {
		/* the new name must survive a crash as much as the lines will */
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			if (fsync(dfd) != 0 && errno != EINVAL)
				rc = dc_error_set(err, DC_EIO, "cannot sync folder '%s': %s", dir,
				                  strerror(errno));
			close(dfd);
		}
		if (rc)
			goto out;
	}
	*out = l;
	l = NULL;
out:
	free(dir);
	dc_ledger_close(l);
	return rc;
}

void dc_ledger_close(dc_ledger *ledger)
{
	if (!ledger)
		return;
	if (ledger->fd >= 0)
		close(ledger->fd);
	free(ledger->path);
	free(ledger->head_path);
	free(ledger->run_id);
	dc_strbuf_release(&ledger->tail_line);
	dc_strbuf_release(&ledger->head_text);
	free(ledger);
}

const char *dc_ledger_run_id(const dc_ledger *ledger)
{
	return ledger->run_id;
}

/* ------------------------------------------------------------------------ */
/* The tail: seq and hash of the last entry, read backwards from the end.  */

static int pread_all(int fd, char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* Line number of the line starting at byte `upto` (error paths only). */
static int64_t line_at(int fd, off_t upto)
{
	char buf[65536];
	int64_t lines = 1;
	off_t off = 0;

	while (off < upto) {
		size_t want =
		        (size_t)(upto - off) < sizeof(buf) ? (size_t)(upto - off) : sizeof(buf);
		const char *p, *end;

		if (pread_all(fd, buf, want, off) != 0)
			return 0;
		for (p = buf, end = buf + want; (p = memchr(p, '\n', (size_t)(end - p))); p++)
			lines++;
		off += (off_t)want;
	}
	return lines;
}

/* Recomputes an entry's hash from its content (a parsed line). */
static int entry_hash_ok(json_t *entry, const char *hash_hex)
{
	json_t *copy = json_copy(entry);
	char *canon = NULL, hex[65];
	int ok = 0;

	if (!copy)
		return 0;
	json_object_del(copy, "hash");
	json_object_del(copy, "sig");
	canon = json_dumps(copy, DC_LEDGER__CANON_FLAGS);
	if (canon) {
		dc_sha256_hex(hex, canon, strlen(canon));
		ok = strcmp(hex, hash_hex) == 0;
	}
	free(canon);
	json_decref(copy);
	return ok;
}

static int read_tail(dc_ledger *l, off_t size, int64_t *seq, char hash[65], dc_error *err)
{
	size_t limit = DC_LEDGER__MAX_LINE + 1, want = 65536, len;
	char *buf = NULL, *start;
	json_t *entry = NULL;
	json_error_t jerr;
	const char *h;
	int rc = 0;

	*seq = 0;
	memcpy(hash, ZERO_HASH, 65);
	if (size == 0)
		return 0;
	for (;;) {
		len = (off_t)want < size ? want : (size_t)size;
		free(buf);
		buf = malloc(len);
		if (!buf) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if (pread_all(l->fd, buf, len, size - (off_t)len) != 0) {
			rc = dc_error_set(err, DC_EIO, "cannot read ledger '%s': %s", l->path,
			                  strerror(errno));
			goto out;
		}
		if (buf[len - 1] != '\n') {
			const char *nl = NULL;
			size_t i;

			for (i = len; i > 0; i--)
				if (buf[i - 1] == '\n') {
					nl = buf + i - 1;
					break;
				}
			if (!nl && (off_t)len < size && want < limit) {
				want = want * 4 < limit ? want * 4 : limit;
				continue;
			}
			rc = dc_error_set(
			        err, DC_EINTEGRITY,
			        "ledger '%s' ends in a torn line at line %" PRId64
			        ": the file does not end in a newline (a crash during a write?); nothing is appended until it is inspected and removed",
			        l->path,
			        line_at(l->fd,
			                nl ? size - (off_t)(len - (size_t)(nl - buf) - 1) : 0));
			goto out;
		}
		/* find the newline before the last line */
		start = NULL;
		for (size_t i = len - 1; i > 0; i--)
			if (buf[i - 1] == '\n') {
				start = buf + i;
				break;
			}
		if (!start && (off_t)len < size) {
			if (want >= limit) {
				rc = dc_error_set(
				        err, DC_ELIMIT,
				        "ledger '%s': the last line is longer than %zu bytes",
				        l->path, DC_LEDGER__MAX_LINE);
				goto out;
			}
			want = want * 4 < limit ? want * 4 : limit;
			continue;
		}
		if (!start)
			start = buf;
		break;
	}
	entry = json_loadb(start, (size_t)(buf + len - 1 - start), JSON_REJECT_DUPLICATES, &jerr);
	if (!entry) {
		rc = dc_error_set(
		        err, DC_EINTEGRITY,
		        "ledger '%s' ends in a torn line at line %" PRId64
		        ": the last line does not parse: %s; nothing is appended until it is inspected and removed",
		        l->path, line_at(l->fd, size - (off_t)(buf + len - start)), jerr.text);
		goto out;
	}
	h = json_string_value(json_object_get(entry, "hash"));
	if (!json_is_integer(json_object_get(entry, "seq")) || !h || !dc_ledger__is_hex(h, 64)) {
		rc = dc_error_set(err, DC_EINTEGRITY,
		                  "ledger '%s': the last line (line %" PRId64
		                  ") is not a ledger entry (no seq or hash)",
		                  l->path, line_at(l->fd, size - (off_t)(buf + len - start)));
		goto out;
	}
	*seq = json_integer_value(json_object_get(entry, "seq"));
	if (!entry_hash_ok(entry, h)) {
		rc = dc_error_set(err, DC_EINTEGRITY,
		                  "ledger '%s': entry seq %" PRId64 " (line %" PRId64
		                  ") was modified: its hash does not match its content",
		                  l->path, *seq, line_at(l->fd, size - (off_t)(buf + len - start)));
		goto out;
	}
	memcpy(hash, h, 65);
out:
	json_decref(entry);
	free(buf);
	return rc;
}

/*
 * The head record must not be ahead of the ledger (a truncated tail) and
 * must name the same entry when it is at the tail. Behind is fine: a crash
 * between the ledger fsync and the head rename leaves it one append behind,
 * and this append repairs it.
 */
static int check_head(dc_ledger *l, int64_t tail_seq, const char *tail_hash, dc_error *err)
{
	dc_ledger__head head;
	dc_error tmp = { 0 };
	int rc;

	rc = dc_ledger__head_read(&head, l->head_path, l->key->pk, NULL, &tmp);
	if (rc == DC_ENOTFOUND) {
		if (tail_seq == 0)
			return 0;
		return dc_error_set(
		        err, DC_EINTEGRITY,
		        "ledger '%s' has %" PRId64
		        " entries but its head record '%s' is missing (deleted?); run 'deployclaw audit verify' with --expect-head before appending",
		        l->path, tail_seq, l->head_path);
	}
	if (rc)
		return dc_error_set(err, rc, "%s", tmp.message);
	if (head.seq > tail_seq)
		return dc_error_set(err, DC_EINTEGRITY,
		                    "ledger '%s' ends at seq %" PRId64
		                    " but its head record says seq %" PRId64
		                    ": the tail was truncated",
		                    l->path, tail_seq, head.seq);
	if (head.seq == tail_seq && strcmp(head.hash, tail_hash) != 0)
		return dc_error_set(err, DC_EINTEGRITY,
		                    "ledger '%s': entry seq %" PRId64
		                    " does not match the head record: the tail was rewritten",
		                    l->path, tail_seq);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Building entries.                                                        */

static int check_data(json_t *v, int depth)
{
	const char *k;
	json_t *item;
	size_t i;
	int rc;

	if (depth > MAX_DEPTH)
		return DC_ELIMIT;
	switch (json_typeof(v)) {
	case JSON_REAL:
		return DC_EINVAL;
	case JSON_OBJECT:
		json_object_foreach(v, k, item)
		{
			rc = check_data(item, depth + 1);
			if (rc)
				return rc;
		}
		return 0;
	case JSON_ARRAY:
		json_array_foreach(v, i, item)
		{
			rc = check_data(item, depth + 1);
			if (rc)
				return rc;
		}
		return 0;
	case JSON_STRING:
	case JSON_INTEGER:
	case JSON_TRUE:
	case JSON_FALSE:
	case JSON_NULL:
		return 0;
	}
	return DC_EINVAL;
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
	return !v || json_object_set_new(obj, key, v) != 0 ? -1 : 0;
}

/* The last occurrence of `key` in `s`, or NULL: searched from the end, where
 * the top-level keys after `data` are. */
static const char *last_key(const char *s, const char *key)
{
	size_t n = strlen(s), k = strlen(key);
	const char *p;

	if (n < k)
		return NULL;
	for (p = s + n - k;; p--) {
		if (*p == *key && memcmp(p, key, k) == 0)
			return p;
		if (p == s)
			return NULL;
	}
}

/* Appends one entry's line (with its newline) to `out`; `hash` is in/out: prev -> this. */
static int build_line(dc_ledger *l,
                      int64_t seq,
                      char hash[65],
                      const dc_ledger__event *ev,
                      dc_strbuf *out,
                      dc_error *err)
{
	unsigned char raw[crypto_hash_sha256_BYTES], sig[crypto_sign_BYTES];
	char ts[32], sig_b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES,
	                                               sodium_base64_VARIANT_ORIGINAL)];
	char *canon = NULL;
	json_t *entry = NULL;
	size_t len;
	int rc = 0;

	if (!ev->event || !*ev->event)
		return dc_error_set(err, DC_EINVAL, "a ledger entry needs an event name");
	if (ev->data && !json_is_object(ev->data))
		return dc_error_set(err, DC_EINVAL, "ledger data of event '%s' must be an object",
		                    ev->event);
	if (ev->data) {
		rc = check_data(ev->data, 0);
		if (rc == DC_ELIMIT)
			return dc_error_set(err, rc,
			                    "ledger data of event '%s' is nested deeper than %d",
			                    ev->event, MAX_DEPTH);
		if (rc)
			return dc_error_set(
			        err, rc,
			        "ledger data of event '%s' holds a real number: use an integer or a string",
			        ev->event);
	}
	dc_time_rfc3339(ts, dc_time_now_ms());
	entry = json_object();
	if (!entry || set_new(entry, "seq", json_integer(seq)) ||
	    set_new(entry, "ts", json_string(ts)) ||
	    set_new(entry, "run_id", json_string(l->run_id)) ||
	    set_new(entry, "actor", json_string(l->actor)) ||
	    set_new(entry, "event", json_string(ev->event)) ||
	    set_new(entry, "data", ev->data ? json_incref(ev->data) : json_object()) ||
	    set_new(entry, "prev", json_string(hash)) ||
	    set_new(entry, "key_id", json_string(l->key->key_id))) {
		/* json_string refuses invalid UTF-8; otherwise this is OOM */
		rc = dc_error_set(
		        err, DC_EINVAL,
		        "cannot build ledger entry for event '%s' (invalid UTF-8 or out of memory)",
		        ev->event);
		goto out;
	}
	canon = json_dumps(entry, DC_LEDGER__CANON_FLAGS);
	if (!canon) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	crypto_hash_sha256(raw, (const unsigned char *)canon, strlen(canon));
	dc_hex_encode(hash, raw, sizeof(raw));
	crypto_sign_detached(sig, NULL, raw, sizeof(raw), l->key->sk);
	sodium_bin2base64(sig_b64, sizeof(sig_b64), sig, sizeof(sig),
	                  sodium_base64_VARIANT_ORIGINAL);
	/* The line is the canonical JSON of the entry with `hash` and `sig`:
	 * in byte order of keys they come right before `key_id` and `ts`, the
	 * last top-level occurrences of those keys (whatever `data` holds comes
	 * before them, and nothing after them can hold a quote unescaped). So
	 * the line is `canon` with the two members spliced in, not a second
	 * serialisation of the whole entry. */
	{
		const char *k = last_key(canon, ",\"key_id\":\""),
		           *t = last_key(canon, ",\"ts\":\"");
		size_t before = out->len;

		if (!k || !t || t < k) {
			rc = dc_error_set(err, DC_EINVAL,
			                  "ledger entry for event '%s': no key_id or ts",
			                  ev->event);
			goto out;
		}
		dc_strbuf_add(out, canon, (size_t)(k - canon));
		dc_strbuf_addf(out, ",\"hash\":\"%s\"", hash);
		dc_strbuf_add(out, k, (size_t)(t - k));
		dc_strbuf_addf(out, ",\"sig\":\"%s\"", sig_b64);
		dc_strbuf_adds(out, t);
		len = out->len - before;
		if (!dc_strbuf_error(out) && len > DC_LEDGER__MAX_LINE) {
			out->len = before;
			out->buf[before] = '\0';
			rc = dc_error_set(
			        err, DC_ELIMIT,
			        "ledger entry for event '%s' is %zu bytes, more than the %zu allowed",
			        ev->event, len, DC_LEDGER__MAX_LINE);
			goto out;
		}
	}
	dc_strbuf_addch(out, '\n');
	if (dc_strbuf_error(out))
		rc = dc_error_set(err, dc_strbuf_error(out), "ledger batch is too large");
out:
	/* `data` was incref'd into the entry: the decref hands it back untouched */
	json_decref(entry);
	free(canon);
	return rc;
}

static int write_head(dc_ledger *l, int64_t seq, const char *hash, dc_error *err)
{
	unsigned char sig[crypto_sign_BYTES];
	char msg[160], sig_b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES,
	                                                 sodium_base64_VARIANT_ORIGINAL)];
	dc_strbuf sb = DC_STRBUF_INIT;
	int n, rc;

	n = dc_ledger__head_message(msg, sizeof(msg), seq, hash);
	if (n < 0)
		return dc_error_set(err, DC_EINVAL, "head record message too long");
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg, (unsigned long long)n,
	                     l->key->sk);
	sodium_bin2base64(sig_b64, sizeof(sig_b64), sig, sizeof(sig),
	                  sodium_base64_VARIANT_ORIGINAL);
	/* written directly in canonical form: keys in byte order, compact */
	dc_strbuf_addf(&sb,
	               "{\"hash\":\"%s\",\"key_id\":\"%s\",\"seq\":%" PRId64 ",\"sig\":\"%s\"}\n",
	               hash, l->key->key_id, seq, sig_b64);
	if (dc_strbuf_error(&sb)) {
		dc_strbuf_release(&sb);
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	}
	rc = dc_file_write_atomic(l->head_path, sb.buf, sb.len, 0644, false, err);
	dc_strbuf_reset(&l->head_text);
	if (rc == 0)
		dc_strbuf_add(&l->head_text, sb.buf, sb.len);
	dc_strbuf_release(&sb);
	return rc;
}

static int lock_fd(int fd, int op)
{
	while (flock(fd, op) != 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/* The cached tail still is the file's: see struct dc_ledger. */
static bool tail_is_ours(dc_ledger *l, const struct stat *st)
{
	size_t len = l->tail_line.len, hlen = 0;
	char *buf, *head = NULL;
	bool same;

	if (!l->tail_known || st->st_dev != l->tail_dev || st->st_ino != l->tail_ino ||
	    st->st_size != l->tail_size || (off_t)len > st->st_size ||
	    dc_strbuf_error(&l->head_text))
		return false;
	/* the head record by its bytes: a file's identity can be reused */
	if (dc_file_read(&head, &hlen, l->head_path, DC_LEDGER__MAX_HEAD, NULL) != 0)
		return false;
	same = hlen == l->head_text.len && memcmp(head, l->head_text.buf, hlen) == 0;
	free(head);
	if (!same)
		return false;
	buf = malloc(len);
	if (!buf)
		return false;
	same = pread_all(l->fd, buf, len, st->st_size - (off_t)len) == 0 &&
	       memcmp(buf, l->tail_line.buf, len) == 0;
	free(buf);
	return same;
}

/* Remembers the tail just written: the last line of `lines`. */
static void tail_remember(dc_ledger *l, const dc_strbuf *lines, int64_t seq, const char *hash)
{
	struct stat st;
	size_t start = lines->len - 1;

	while (start > 0 && lines->buf[start - 1] != '\n')
		start--;
	dc_strbuf_reset(&l->tail_line);
	dc_strbuf_add(&l->tail_line, lines->buf + start, lines->len - start);
	if (dc_strbuf_error(&l->tail_line) || fstat(l->fd, &st) != 0)
		return;
	l->tail_seq = seq;
	memcpy(l->tail_hash, hash, sizeof(l->tail_hash));
	l->tail_size = st.st_size;
	l->tail_dev = st.st_dev;
	l->tail_ino = st.st_ino;
	l->tail_known = true;
}

int dc_ledger__append_batch(dc_ledger *ledger,
                            const dc_ledger__event *events,
                            size_t n,
                            int64_t *first_seq,
                            dc_error *err)
{
	dc_strbuf lines = DC_STRBUF_INIT;
	char hash[65];
	struct stat st, pst;
	int64_t tail_seq = 0;
	bool locked = false;
	size_t i, done = 0;
	int rc = 0;

	if (first_seq)
		*first_seq = 0;
	if (!ledger || (!events && n))
		return dc_error_set(err, DC_EINVAL, "no ledger or no events");
	if (n == 0)
		return 0;
	if (n > DC_LEDGER_BATCH_MAX)
		return dc_error_set(err, DC_ELIMIT, "a ledger batch holds at most %d events",
		                    DC_LEDGER_BATCH_MAX);
	if (lock_fd(ledger->fd, LOCK_EX) != 0)
		return dc_error_set(err, DC_EIO, "cannot lock ledger '%s': %s", ledger->path,
		                    strerror(errno));
	locked = true;
	if (fstat(ledger->fd, &st) != 0) {
		rc = dc_error_set(err, DC_EIO, "cannot stat ledger '%s': %s", ledger->path,
		                  strerror(errno));
		goto out;
	}
	/* a ledger renamed or removed under us would take our lines with it */
	if (stat(ledger->path, &pst) != 0 || pst.st_ino != st.st_ino || pst.st_dev != st.st_dev) {
		rc = dc_error_set(err, DC_EIO, "ledger '%s' was moved or removed while open",
		                  ledger->path);
		goto out;
	}
	if (tail_is_ours(ledger, &st)) {
		tail_seq = ledger->tail_seq;
		memcpy(hash, ledger->tail_hash, sizeof(hash));
	} else {
		rc = read_tail(ledger, st.st_size, &tail_seq, hash, err);
		if (rc)
			goto out;
		rc = check_head(ledger, tail_seq, hash, err);
		if (rc)
			goto out;
	}
	ledger->tail_known = false;
	for (i = 0; i < n; i++) {
		rc = build_line(ledger, tail_seq + 1 + (int64_t)i, hash, &events[i], &lines, err);
		if (rc)
			goto out;
	}
	/* one write() for the lot; loop only for a (rare) short write */
	while (done < lines.len) {
		ssize_t w = write(ledger->fd, lines.buf + done, lines.len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : ENOSPC;

			/* we hold the lock: nobody else appended, cut our partial line off */
			if (done && ftruncate(ledger->fd, st.st_size) != 0)
				rc = dc_error_set(
				        err, DC_EIO,
				        "cannot write ledger '%s' (%s) nor remove the partial line: %s",
				        ledger->path, strerror(e), strerror(errno));
			else
				rc = dc_error_set(err, DC_EIO, "cannot write ledger '%s': %s",
				                  ledger->path, strerror(e));
			goto out;
		}
		done += (size_t)w;
	}
	if (fsync(ledger->fd) != 0) {
		rc = dc_error_set(err, DC_EIO, "cannot sync ledger '%s': %s", ledger->path,
		                  strerror(errno));
		goto out;
	}
	if (first_seq)
		*first_seq = tail_seq + 1;
	rc = write_head(ledger, tail_seq + (int64_t)n, hash, err);
	if (rc == 0)
		tail_remember(ledger, &lines, tail_seq + (int64_t)n, hash);
out:
	if (locked)
		lock_fd(ledger->fd, LOCK_UN);
	dc_strbuf_release(&lines);
	return rc;
}

int dc_ledger__append(dc_ledger *ledger,
                      const char *event,
                      json_t *data,
                      int64_t *seq,
                      dc_error *err)
{
	dc_ledger__event ev = { event, data };

	return dc_ledger__append_batch(ledger, &ev, 1, seq, err);
}

/* The data of a public append: a JSON object's text, or NULL for {}. */
static int parse_data(json_t **out, const char *event, const char *text, dc_error *err)
{
	json_error_t jerr;

	*out = NULL;
	if (!text)
		return 0;
	*out = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out)
		return dc_error_set(err, DC_EINVAL,
		                    "data of event '%s' is not JSON (line %d, column %d): %s",
		                    event ? event : "", jerr.line, jerr.column, jerr.text);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return dc_error_set(err, DC_EINVAL, "data of event '%s' is not a JSON object",
		                    event ? event : "");
	}
	return 0;
}

int dc_ledger_append_batch(dc_ledger *ledger,
                           const dc_ledger_event *events,
                           size_t n,
                           int64_t *first_seq,
                           dc_error *err)
{
	dc_ledger__event *evs = NULL;
	size_t i, parsed = 0;
	int rc = 0;

	if (n > DC_LEDGER_BATCH_MAX)
		return dc_error_set(err, DC_ELIMIT, "more than %d events in one batch",
		                    DC_LEDGER_BATCH_MAX);
	if (n && !(evs = calloc(n, sizeof(*evs))))
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (i = 0; i < n && rc == 0; i++, parsed++) {
		evs[i].event = events[i].event;
		rc = parse_data(&evs[i].data, events[i].event, events[i].data_json, err);
	}
	if (rc == 0)
		rc = dc_ledger__append_batch(ledger, evs, n, first_seq, err);
	for (i = 0; i < parsed; i++)
		json_decref(evs[i].data);
	free(evs);
	return rc;
}

int dc_ledger_append(dc_ledger *ledger,
                     const char *event,
                     const char *data_json,
                     int64_t *seq,
                     dc_error *err)
{
	dc_ledger_event ev = { event, data_json };

	return dc_ledger_append_batch(ledger, &ev, 1, seq, err);
}
