/*
 * The schema fingerprint: a hash of a tenant's schema, deployclaw's own
 * table left out.
 */
#include <stdint.h>

#include <sodium.h>
#include <sqlite3.h>

#include <deployclaw/engine.h>

#include "sqlite_internal.h"
#include "util/util.h"

#define SCHEMA_SELECT                                                                         \
	"SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' " \
	"AND name != 'deployclaw_history' ORDER BY type, name"

static void hash_column(crypto_hash_sha256_state *h, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	uint32_t len = s ? (uint32_t)sqlite3_column_bytes(st, col) : UINT32_MAX;
	unsigned char be[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16),
		                (unsigned char)(len >> 8), (unsigned char)len };

	/* Length-prefixed, so ("ab", "c") and ("a", "bc") differ; NULL differs from "". */
	crypto_hash_sha256_update(h, be, sizeof(be));
	if (s)
		crypto_hash_sha256_update(h, s, len);
}

int dc_sqlite__schema_fingerprint(dc_conn *c, char out[65], dc_error *err)
{
	crypto_hash_sha256_state h;
	unsigned char digest[crypto_hash_sha256_BYTES];
	sqlite3_stmt *st = NULL;
	int ret, rc, i;

	out[0] = '\0';
	if ((ret = dc_sqlite__need_db(c, err)) != 0)
		return ret;
	crypto_hash_sha256_init(&h);
	rc = sqlite3_prepare_v2(c->db, SCHEMA_SELECT, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (i = 0; i < 4; i++)
			hash_column(&h, st, i);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		ret = dc_sqlite__db_fail(c, err, "schema");
		goto out;
	}
	crypto_hash_sha256_final(&h, digest);
	dc_hex_encode(out, digest, sizeof(digest));
out:
	sqlite3_finalize(st);
	return ret;
}
