/*
 * The demo fleet of 'deployclaw demo': SQLite tenants with accounts and
 * orders, a config and three migrations, made the same way every time (a
 * seeded generator), with a few tenants deliberately inconsistent so that a
 * verify assertion rolls them back.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "demo.h"
#include "util/util.h"

#define DEMO_MARKER ".deployclaw-demo"

static const char demo_config[] = "# deployclaw demo fleet: one SQLite database per tenant.\n"
                                  "engine: sqlite\n"
                                  "migrations: migrations\n"
                                  "tenancy:\n"
                                  "  model: database\n"
                                  "  glob: tenants/*.db\n"
                                  "gates:\n"
                                  "  lock_timeout: 5s\n"
                                  "  require_down: true\n"
                                  "rollout:\n"
                                  "  canary: 1%%\n"
                                  "  waves: [10%%, 50%%, 100%%]\n"
                                  "  max_failures: %zu\n"
                                  "  parallel: %d\n"
                                  "audit:\n"
                                  "  ledger: audit/ledger.jsonl\n"
                                  "  key: audit/signing.key\n";

static const char mig1[] =
        "version: \"0001\"\n"
        "name: add a plan to every account\n"
        "audit: critical\n"
        "phases:\n"
        "  - name: expand\n"
        "    up: ALTER TABLE accounts ADD COLUMN plan TEXT;\n"
        "    down: ALTER TABLE accounts DROP COLUMN plan;\n"
        "  - name: backfill\n"
        "    batch: { rows: 50 }\n"
        "    up: |\n"
        "      UPDATE accounts SET plan = CASE WHEN seats > 10 THEN 'team' ELSE 'solo' END\n"
        "       WHERE id IN (SELECT id FROM accounts WHERE plan IS NULL LIMIT 50);\n"
        "  - name: contract\n"
        "    up: CREATE INDEX accounts_plan ON accounts (plan);\n"
        "    down: DROP INDEX accounts_plan;\n"
        "verify:\n"
        "  - SELECT count(*) = 0 FROM accounts WHERE plan IS NULL\n";

static const char mig2[] = "version: \"0002\"\n"
                           "name: create invoices\n"
                           "phases:\n"
                           "  - name: expand\n"
                           "    up: |\n"
                           "      CREATE TABLE invoices (\n"
                           "        id INTEGER PRIMARY KEY,\n"
                           "        account_id INTEGER NOT NULL REFERENCES accounts (id),\n"
                           "        amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),\n"
                           "        issued_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
                           "      );\n"
                           "      CREATE INDEX invoices_account ON invoices (account_id);\n"
                           "    down: DROP TABLE invoices;\n"
                           "verify:\n"
                           "  - SELECT count(*) = 0 FROM invoices\n";

static const char mig3[] =
        "version: \"0003\"\n"
        "name: store order totals\n"
        "phases:\n"
        "  - name: expand\n"
        "    up: |\n"
        "      ALTER TABLE orders ADD COLUMN total_cents INTEGER;\n"
        "      UPDATE orders SET total_cents = quantity * unit_price_cents;\n"
        "    down: ALTER TABLE orders DROP COLUMN total_cents;\n"
        "verify:\n"
        "  # a negative total means the tenant holds inconsistent orders: roll it back\n"
        "  - SELECT count(*) = 0 FROM orders WHERE total_cents IS NULL OR total_cents < 0\n";

static const char schema[] =
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;"
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
        " seats INTEGER NOT NULL, created_at TEXT NOT NULL);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY,"
        " account_id INTEGER NOT NULL REFERENCES accounts (id), sku TEXT NOT NULL,"
        " quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL);"
        "CREATE INDEX orders_account ON orders (account_id);";

static int write_file(const char *dir, const char *name, const char *text, dc_error *err)
{
	char *path = dc_path_join(dir, name);
	int rc;

	if (!path)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	rc = dc_file_write_atomic(path, text, strlen(text), 0644, false, err);
	free(path);
	return rc;
}

/* Removes a previous demo fleet (only one that carries the marker). */
static int clear_dir(const char *dir, dc_error *err)
{
	char *marker = dc_path_join(dir, DEMO_MARKER);
	int rc = 0;

	if (!marker)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	if (!dc_path_exists(dir))
		goto out;
	if (!dc_path_exists(marker)) {
		rc = dc_error_set(err, DC_EEXISTS,
		                  "'%s' exists and is not a demo fleet: pass --dir for another "
		                  "folder",
		                  dir);
		goto out;
	}
	/* a tree of our own making, marked as such: remove it file by file */
	{
		static const char *const subdirs[] = { "tenants", "migrations", "audit", "" };
		size_t i;

		for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
			char *sub = subdirs[i][0] ? dc_path_join(dir, subdirs[i]) : dc_strdup(dir);
			DIR *d = sub ? opendir(sub) : NULL;
			struct dirent *de;

			while (d && (de = readdir(d)) != NULL) {
				char *p;

				if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
					continue;
				p = dc_path_join(sub, de->d_name);
				if (p)
					unlink(p);
				free(p);
			}
			if (d)
				closedir(d);
			if (sub && subdirs[i][0])
				rmdir(sub);
			free(sub);
		}
	}
out:
	free(marker);
	return rc;
}

/* A deterministic generator, so every demo fleet is the same. */
static uint32_t next_rand(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static int make_tenant(const char *path, size_t index, bool inconsistent, dc_error *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *acc = NULL, *ord = NULL;
	uint32_t seed = (uint32_t)index * 2654435761u + 7;
	int naccounts = 5 + (int)(next_rand(&seed) % 16), i, k, rc = 0;
	char email[64];

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	            SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO accounts VALUES (?, ?, ?, ?)", -1, &acc, NULL) !=
	            SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO orders (account_id, sku, quantity, unit_price_cents) "
	                       "VALUES (?, ?, ?, ?)",
	                       -1, &ord, NULL) != SQLITE_OK) {
		rc = dc_error_set(err, DC_EDB, "cannot create demo tenant '%s': %s", path,
		                  db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	for (i = 1; i <= naccounts && rc == 0; i++) {
		int norders = 1 + (int)(next_rand(&seed) % 4);

		snprintf(email, sizeof(email), "user%d@tenant%zu.example", i, index);
		sqlite3_bind_int(acc, 1, i);
		sqlite3_bind_text(acc, 2, email, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(acc, 3, 1 + (int)(next_rand(&seed) % 25));
		sqlite3_bind_text(acc, 4, "2026-01-15T09:00:00Z", -1, SQLITE_STATIC);
		if (sqlite3_step(acc) != SQLITE_DONE)
			rc = DC_EDB;
		sqlite3_reset(acc);
		for (k = 0; k < norders && rc == 0; k++) {
			/* an inconsistent tenant has one order with a negative quantity */
			int qty = inconsistent && i == 2 && k == 0
			                  ? -3
			                  : 1 + (int)(next_rand(&seed) % 9);

			sqlite3_bind_int(ord, 1, i);
			sqlite3_bind_text(ord, 2, k % 2 ? "widget" : "gadget", -1, SQLITE_STATIC);
			sqlite3_bind_int(ord, 3, qty);
			sqlite3_bind_int(ord, 4, 100 + (int)(next_rand(&seed) % 9900));
			if (sqlite3_step(ord) != SQLITE_DONE)
				rc = DC_EDB;
			sqlite3_reset(ord);
		}
	}
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = DC_EDB;
	if (rc)
		dc_error_set(err, DC_EDB, "cannot fill demo tenant '%s': %s", path,
		             sqlite3_errmsg(db));
out:
	sqlite3_finalize(acc);
	sqlite3_finalize(ord);
	sqlite3_close(db);
	return rc;
}

int dc_demo__create(const char *dir, size_t n, int parallel, size_t *inconsistent, dc_error *err)
{
	char *tenants_dir = NULL, *mig_dir = NULL;
	dc_strbuf text = DC_STRBUF_INIT, path = DC_STRBUF_INIT;
	size_t i, nbad, *bad = NULL;
	int rc, width;

	/* a few inconsistent tenants, spread over the later waves (never the canary) */
	nbad = n / 200 < 3 ? 3 : n / 200;
	bad = calloc(nbad, sizeof(*bad));
	tenants_dir = dc_path_join(dir, "tenants");
	mig_dir = dc_path_join(dir, "migrations");
	if (!bad || !tenants_dir || !mig_dir) {
		rc = dc_error_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < nbad; i++)
		bad[i] = n / 10 + (n - n / 10) * (2 * i + 1) / (2 * nbad);
	if ((rc = clear_dir(dir, err)) != 0)
		goto out;
	if ((rc = dc_mkdir_p(tenants_dir, 0755, err)) != 0 ||
	    (rc = dc_mkdir_p(mig_dir, 0755, err)) != 0 ||
	    (rc = write_file(dir, DEMO_MARKER, "a fleet made by 'deployclaw demo'\n", err)) != 0)
		goto out;
	dc_strbuf_addf(&text, demo_config, nbad, parallel);
	if ((rc = write_file(dir, "deployclaw.yaml", text.buf, err)) != 0 ||
	    (rc = write_file(mig_dir, "0001_add_plan.yaml", mig1, err)) != 0 ||
	    (rc = write_file(mig_dir, "0002_create_invoices.yaml", mig2, err)) != 0 ||
	    (rc = write_file(mig_dir, "0003_order_totals.yaml", mig3, err)) != 0)
		goto out;
	width = n >= 100000 ? 6 : n >= 10000 ? 5 : 4;
	for (i = 0; i < n; i++) {
		size_t k;
		bool bad_one = false;

		for (k = 0; k < nbad; k++)
			bad_one |= bad[k] == i;
		dc_strbuf_reset(&path);
		dc_strbuf_addf(&path, "%s/tenant-%0*zu.db", tenants_dir, width, i + 1);
		if (dc_strbuf_error(&path)) {
			rc = dc_error_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = make_tenant(path.buf, i + 1, bad_one, err)) != 0)
			goto out;
	}
	*inconsistent = nbad;
out:
	free(bad);
	free(tenants_dir);
	free(mig_dir);
	dc_strbuf_release(&text);
	dc_strbuf_release(&path);
	return rc;
}
