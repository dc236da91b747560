/*
 * Ed25519 signing keys for the audit ledger, and the head record helpers
 * shared by append and verify.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <deployclaw/ledger.h>

#include "ledger_internal.h"
#include "util/util.h"

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int crypto_status = -1;

static void crypto_init_once(void)
{
	crypto_status = sodium_init() < 0 ? -1 : 0;
}

int dc_ledger__crypto_init(dc_error *err)
{
	if (pthread_once(&crypto_once, crypto_init_once) != 0 || crypto_status != 0)
		return dc_error_set(err, DC_EIO, "cannot initialise libsodium");
	return 0;
}

void dc_ledger__key_id(char out[17], const unsigned char pk[32])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, pk, 32);
	dc_hex_encode(out, h, 8);
}

int dc_ledger__is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[n] == '\0';
}

char *dc_ledger__head_path(const char *ledger_path)
{
	dc_strbuf sb = DC_STRBUF_INIT;

	dc_strbuf_addf(&sb, "%s.head", ledger_path);
	return dc_strbuf_detach(&sb, NULL);
}

int dc_ledger__head_message(char *out, size_t size, int64_t seq, const char *hash_hex)
{
	int n = snprintf(out, size, "deployclaw-ledger-head-v1:%" PRId64 ":%s", seq, hash_hex);

	return n < 0 || (size_t)n >= size ? -1 : n;
}

int dc_ledger__head_read(dc_ledger__head *head,
                         const char *path,
                         const unsigned char *pk,
                         bool *sig_checked,
                         dc_error *err)
{
	char *text = NULL, msg[160], key_id[17];
	json_t *root = NULL, *v;
	json_error_t jerr;
	const char *s;
	size_t len = 0, siglen = 0;
	dc_error tmp = { 0 };
	int rc = 0, n;

	memset(head, 0, sizeof(*head));
	if (sig_checked)
		*sig_checked = false;
	rc = dc_file_read(&text, &len, path, DC_LEDGER__MAX_HEAD, &tmp);
	if (rc == DC_ENOTFOUND)
		return rc; /* the caller decides whether that is tampering */
	if (rc) {
		dc_error_set(err, rc, "%s", tmp.message);
		goto out;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		rc = dc_error_set(err, DC_EINTEGRITY, "head record '%s' does not parse: %s", path,
		                  root ? "not an object" : jerr.text);
		goto out;
	}
	v = json_object_get(root, "seq");
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		goto bad;
	head->seq = json_integer_value(v);
	s = json_string_value(json_object_get(root, "hash"));
	if (!s || !dc_ledger__is_hex(s, 64))
		goto bad;
	memcpy(head->hash, s, 65);
	s = json_string_value(json_object_get(root, "key_id"));
	if (!s || !dc_ledger__is_hex(s, 16))
		goto bad;
	memcpy(head->key_id, s, 17);
	s = json_string_value(json_object_get(root, "sig"));
	if (!s ||
	    sodium_base642bin(head->sig, sizeof(head->sig), s, strlen(s), NULL, &siglen, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    siglen != sizeof(head->sig))
		goto bad;
	if (pk) {
		dc_ledger__key_id(key_id, pk);
		if (strcmp(key_id, head->key_id) == 0) {
			n = dc_ledger__head_message(msg, sizeof(msg), head->seq, head->hash);
			if (n < 0 ||
			    crypto_sign_verify_detached(head->sig, (const unsigned char *)msg,
			                                (unsigned long long)n, pk) != 0) {
				rc = dc_error_set(err, DC_EINTEGRITY,
				                  "head record '%s' has a bad signature", path);
				goto out;
			}
			if (sig_checked)
				*sig_checked = true;
		}
	}
	goto out;
bad:
	rc = dc_error_set(err, DC_EINTEGRITY,
	                  "head record '%s' is malformed: it needs seq, hash, key_id and sig",
	                  path);
out:
	json_decref(root);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Keys.                                                                    */

int dc_signing_key_generate(const char *path, char *key_id, dc_error *err)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char sk_hex[2 * crypto_sign_SECRETKEYBYTES + 2], pk_hex[2 * crypto_sign_PUBLICKEYBYTES + 2];
	char *pub_path = NULL, *dir = NULL;
	dc_strbuf pub = DC_STRBUF_INIT;
	bool wrote_private = false;
	int rc = 0;

	rc = dc_ledger__crypto_init(err);
	if (rc)
		return rc;
	dc_strbuf_addf(&pub, "%s.pub", path);
	pub_path = dc_strbuf_detach(&pub, NULL);
	dir = dc_path_dirname(path);
	if (!pub_path || !dir) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if (dc_path_exists(path) || dc_path_exists(pub_path)) {
		rc = dc_error_set(err, DC_EEXISTS,
		                  "signing key '%s' already exists, refusing to overwrite",
		                  dc_path_exists(path) ? path : pub_path);
		goto out;
	}
	rc = dc_mkdir_p(dir, 0755, err);
	if (rc)
		goto out;
	crypto_sign_keypair(pk, sk);
	dc_hex_encode(sk_hex, sk, sizeof(sk));
	strcat(sk_hex, "\n");
	dc_hex_encode(pk_hex, pk, sizeof(pk));
	strcat(pk_hex, "\n");
	rc = dc_file_write_atomic(path, sk_hex, strlen(sk_hex), 0600, true, err);
	if (rc)
		goto out;
	wrote_private = true;
	rc = dc_file_write_atomic(pub_path, pk_hex, strlen(pk_hex), 0644, true, err);
	if (rc)
		goto out;
	if (key_id)
		dc_ledger__key_id(key_id, pk);
out:
	/* a half-written pair is useless: do not leave the private half behind */
	if (rc && wrote_private)
		unlink(path);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk_hex, sizeof(sk_hex));
	free(pub_path);
	free(dir);
	return rc;
}

/*
 * Reads a small key file into `buf` (NUL-terminated, trailing whitespace
 * cut). A fixed stack buffer rather than dc_file_read: a growing heap
 * buffer would leave copies of the secret in freed memory.
 */
static int read_key_file(char *buf,
                         size_t size,
                         const char *path,
                         bool secret,
                         const char *what,
                         dc_error *err)
{
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return dc_error_set(err, errno == ENOENT ? DC_ENOTFOUND : DC_EIO,
		                    "cannot open %s '%s': %s", what, path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = dc_error_set(err, DC_EIO, "cannot stat %s '%s': %s", what, path,
		                  strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = dc_error_set(err, DC_EINVAL, "%s '%s' is not a regular file", what, path);
		goto out;
	}
	if (secret && (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH))) {
		rc = dc_error_set(
		        err, DC_EINVAL,
		        "signing key '%s' is accessible by group or others (mode %04o): run chmod 600 '%s'",
		        path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	for (;;) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = dc_error_set(err, DC_EIO, "cannot read %s '%s': %s", what, path,
			                  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size - 1) {
			rc = dc_error_set(err, DC_EINVAL, "%s '%s' is not a deployclaw key file",
			                  what, path);
			goto out;
		}
	}
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		buf[--len] = '\0';
out:
	close(fd);
	return rc;
}

int dc_signing_key_load(dc_signing_key **out, const char *path, dc_error *err)
{
	unsigned char seed_pk[crypto_sign_PUBLICKEYBYTES], seed_sk[crypto_sign_SECRETKEYBYTES];
	dc_signing_key *key = NULL;
	char buf[256];
	int rc;

	*out = NULL;
	rc = dc_ledger__crypto_init(err);
	if (rc)
		return rc;
	rc = read_key_file(buf, sizeof(buf), path, true, "signing key", err);
	if (rc)
		goto out;
	key = malloc(sizeof(*key));
	if (!key) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	if (dc_hex_decode(key->sk, sizeof(key->sk), buf) != 0) {
		rc = dc_error_set(
		        err, DC_EINVAL,
		        "signing key '%s' is not 128 hex characters (a libsodium Ed25519 secret key)",
		        path);
		goto out;
	}
	/* the secret key is seed || pk: re-derive it to catch a damaged file */
	crypto_sign_seed_keypair(seed_pk, seed_sk, key->sk);
	if (sodium_memcmp(seed_sk, key->sk, sizeof(seed_sk)) != 0) {
		rc = dc_error_set(
		        err, DC_EINVAL,
		        "signing key '%s' is damaged: its public half does not match its seed",
		        path);
		goto out;
	}
	memcpy(key->pk, seed_pk, sizeof(key->pk));
	dc_ledger__key_id(key->key_id, key->pk);
	*out = key;
	key = NULL;
out:
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(seed_sk, sizeof(seed_sk));
	dc_signing_key_free(key);
	return rc;
}

int dc_public_key_load(unsigned char pk[32], char *key_id, const char *path, dc_error *err)
{
	char buf[256];
	int rc;

	rc = dc_ledger__crypto_init(err);
	if (rc)
		return rc;
	rc = read_key_file(buf, sizeof(buf), path, false, "public key", err);
	if (rc)
		return rc;
	if (dc_hex_decode(pk, 32, buf) != 0)
		return dc_error_set(
		        err, DC_EINVAL,
		        "public key '%s' is not 64 hex characters (an Ed25519 public key)", path);
	if (key_id)
		dc_ledger__key_id(key_id, pk);
	return 0;
}

void dc_signing_key_free(dc_signing_key *key)
{
	if (!key)
		return;
	sodium_memzero(key, sizeof(*key));
	free(key);
}
