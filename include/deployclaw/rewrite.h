/**
 * deployclaw/rewrite.h — `plan --safe`: a migration rewritten into safe phases.
 *
 * dc_rewrite_safe reads a PostgreSQL migration statement by statement through
 * libpg_query's typed protobuf-c tree and writes a native-YAML migration
 * (docs/migrations.md) that makes the same change without holding a
 * blocking lock across a table scan or rewrite:
 *
 * | original | safe phases |
 * | --- | --- |
 * | ADD COLUMN c T NOT NULL [DEFAULT volatile] | add nullable (+ SET DEFAULT); batched backfill; CHECK (c IS NOT NULL) NOT VALID; VALIDATE; SET NOT NULL + drop the CHECK |
 * | ADD COLUMN c T DEFAULT volatile | add nullable + SET DEFAULT; batched backfill |
 * | ADD COLUMN with CHECK / REFERENCES / UNIQUE / PRIMARY KEY | the column, then each constraint as below |
 * | CREATE [UNIQUE] INDEX | CREATE INDEX CONCURRENTLY IF NOT EXISTS with an explicit name, alone in a `transaction: false` phase |
 * | ADD FOREIGN KEY / CHECK | ... NOT VALID; VALIDATE CONSTRAINT in a later phase |
 * | ADD UNIQUE / PRIMARY KEY | CREATE UNIQUE INDEX CONCURRENTLY; ADD CONSTRAINT ... USING INDEX (PRIMARY KEY: its columns first made NOT NULL the CHECK way) |
 * | ALTER COLUMN SET NOT NULL | CHECK ... NOT VALID; VALIDATE; SET NOT NULL + drop the CHECK |
 * | ALTER COLUMN TYPE | new column + sync trigger; batched copy; swap (needs an application deploy between expand and contract — said in the YAML) |
 * | anything else | unchanged, in a phase of its own kind (transactional or not) |
 *
 * Names PostgreSQL would have chosen for unnamed indexes and constraints are
 * reproduced (`<table>_<cols>_idx`, `_key`, `_pkey`, `_fkey`, `_check`, with
 * its 63-byte truncation) but without its numeric suffix on a clash: the
 * rewrite has no catalog. Every generated phase has a down where one exists:
 * validation and backfill phases change no schema and have none (the down of
 * the phase before them undoes their work).
 */
#ifndef DEPLOYCLAW_REWRITE_H
#define DEPLOYCLAW_REWRITE_H

#include <deployclaw/common.h>
#include <deployclaw/migration.h>
#include <deployclaw/strbuf.h>

/** Rows per round of a generated backfill phase (`batch: { rows: N }`). */
#define DC_REWRITE_BATCH_ROWS 1000

/**
 * Appends to `yaml_out` a native-YAML migration (same version, name and audit
 * level as `m`) doing what `m` does in safe phases; `m`'s verify assertions
 * are kept, and one per concurrently built index (it must be valid) is added.
 * `m` must have been loaded with DC_DIALECT_POSTGRES; `source_path` (may be
 * NULL: m->path is used) is named in the header comment of the output.
 *
 * Phases that need no change are copied as they are (with their down). A
 * phase that does is split per statement, and consecutive pieces of the same
 * kind share a phase. Explicit BEGIN/COMMIT are dropped (each phase is a
 * transaction). Statements with no online rewrite (ADD COLUMN of an identity,
 * generated or serial column, EXCLUDE constraints, CREATE INDEX ON ONLY) are
 * kept with a `# deployclaw:` comment saying so.
 *
 * Errors: DC_EPARSE (a statement does not parse; err->file/line/col point at
 * it), DC_EINVAL (m is not a PostgreSQL migration, or a generated statement
 * fails to re-parse — a bug), DC_ENOMEM, DC_ELIMIT. On error `yaml_out` may
 * hold a partial document. Thread-safe; never prints.
 */
DC_API int dc_rewrite_safe(const dc_migration *m,
                           const char *source_path,
                           dc_strbuf *yaml_out,
                           dc_error *err);

#endif
