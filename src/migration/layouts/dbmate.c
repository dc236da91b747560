/*
 * layouts/dbmate.c — dbmate: <version>_<name>.sql, one file with a
 * "-- migrate:up" section and an optional "-- migrate:down" section.
 */
#include <ctype.h>
#include <string.h>

#include "../migration_internal.h"

enum {
	MARK_NONE,
	MARK_UP,
	MARK_DOWN
};

/* Recognises "-- migrate:up [options]" at raw[s, e) (one line). */
static int dbmate_marker(const char *raw, size_t s, size_t e, size_t *opts)
{
	size_t p = s;

	if (e - s < 2 || raw[s] != '-' || raw[s + 1] != '-')
		return MARK_NONE;
	p += 2;
	while (p < e && (raw[p] == ' ' || raw[p] == '\t'))
		p++;
	if (e - p >= 10 && memcmp(raw + p, "migrate:up", 10) == 0 &&
	    (p + 10 == e || dc_migration__is_blank((unsigned char)raw[p + 10]))) {
		*opts = p + 10;
		return MARK_UP;
	}
	if (e - p >= 12 && memcmp(raw + p, "migrate:down", 12) == 0 &&
	    (p + 12 == e || dc_migration__is_blank((unsigned char)raw[p + 12]))) {
		*opts = p + 12;
		return MARK_DOWN;
	}
	return MARK_NONE;
}

static int dbmate_options(const char *raw,
                          size_t p,
                          size_t e,
                          struct srcmap *m,
                          const char *path,
                          bool *transactional,
                          dc_error *err)
{
	static const char *const known[] = { "transaction:true", "transaction:false" };
	char word[64];
	int line, col;

	for (;;) {
		size_t w, n;

		while (p < e && dc_migration__is_blank((unsigned char)raw[p]))
			p++;
		if (p >= e)
			return 0;
		w = p;
		while (p < e && !dc_migration__is_blank((unsigned char)raw[p]))
			p++;
		n = p - w;
		if (n == 16 && memcmp(raw + w, "transaction:true", n) == 0) {
			*transactional = true;
			continue;
		}
		if (n == 17 && memcmp(raw + w, "transaction:false", n) == 0) {
			*transactional = false;
			continue;
		}
		dc_migration__copy_word(word, sizeof(word), raw + w, n);
		dc_migration__srcmap_pos(m, w, &line, &col);
		{
			const char *hint = dc_suggest(word, known, 2);

			return dc_error_set_at(err, DC_EPARSE, path, line, col,
			                       "unknown option '%s' on a dbmate marker%s%s%s", word,
			                       hint ? " (did you mean '" : "", hint ? hint : "",
			                       hint ? "'?)" : "");
		}
	}
}

static int load(struct loader *L,
                dc_migration *mig,
                const char *raw,
                size_t len,
                const char *down,
                size_t dlen)
{
	const char *path = mig->path, *name = dc_path_basename(mig->path);
	size_t p = 0, up_s = 0, up_e = 0, down_s = 0, down_e = 0, opts = 0;
	bool have_up = false, have_down = false, up_tx = true, down_tx = true;
	struct srcmap m, mm;
	int rc, line, col;

	(void)down;
	(void)dlen;
	dc_migration__srcmap_init(&m, raw, len, 1, 1);
	while (p < len) {
		size_t e = p, next;
		int kind;

		while (e < len && raw[e] != '\n')
			e++;
		next = e < len ? e + 1 : len;
		kind = dbmate_marker(raw, p, e, &opts);
		if (kind != MARK_NONE) {
			dc_migration__srcmap_pos(&m, p, &line, &col);
			if ((kind == MARK_UP && have_up) || (kind == MARK_DOWN && have_down))
				return dc_error_set_at(L->err, DC_EPARSE, path, line, col,
				                       "'%s' has a second '-- migrate:%s' marker",
				                       name, kind == MARK_UP ? "up" : "down");
			if (kind == MARK_DOWN && !have_up)
				return dc_error_set_at(
				        L->err, DC_EPARSE, path, line, col,
				        "'%s' has '-- migrate:down' before '-- migrate:up'", name);
			if (!have_up) {
				size_t s = dc_migration__skip_space_comments(raw, 0, p, false);

				if (s < p) {
					dc_migration__srcmap_pos(&m, s, &line, &col);
					return dc_error_set_at(
					        L->err, DC_EPARSE, path, line, col,
					        "'%s' has sql before '-- migrate:up'", name);
				}
			}
			rc = dbmate_options(raw, opts, e, &m, path,
			                    kind == MARK_UP ? &up_tx : &down_tx, L->err);
			if (rc < 0)
				return rc;
			if (kind == MARK_UP) {
				have_up = true;
				up_s = up_e = next;
			} else {
				have_down = true;
				up_e = p;
				down_s = down_e = next;
			}
		}
		p = next;
		if (have_down)
			down_e = p;
		else if (have_up)
			up_e = p;
	}
	if (!have_up)
		return dc_error_set_at(L->err, DC_EPARSE, path, 0, 0,
		                       "'%s' has no '-- migrate:up' marker", name);
	rc = dc_migration__phases_alloc(mig, 1, L->err);
	if (rc < 0)
		return rc;
	mig->phases[0].name = dc_strdup("main");
	if (!mig->phases[0].name)
		return dc_error_set(L->err, DC_ENOMEM, "out of memory");
	/* dc_phase has one flag: the up marker decides (down runs as a repair). */
	mig->phases[0].transactional = up_tx;
	dc_migration__srcmap_init(&mm, raw, len, 1, 1);
	mm.base = up_s;
	rc = dc_migration__sql_fill(L, &mig->phases[0].up, raw + up_s, up_e - up_s, &mm, path);
	if (rc < 0)
		return rc;
	if (mig->phases[0].up.nstmts == 0) {
		dc_migration__srcmap_pos(&m, up_s, &line, &col);
		return dc_error_set_at(L->err, DC_EPARSE, path, line, col,
		                       "the '-- migrate:up' section of '%s' has no sql statement",
		                       name);
	}
	if (have_down && !dc_migration__only_space_comments(raw + down_s, down_e - down_s)) {
		dc_migration__srcmap_init(&mm, raw, len, 1, 1);
		mm.base = down_s;
		rc = dc_migration__sql_fill(L, &mig->phases[0].down, raw + down_s, down_e - down_s,
		                            &mm, path);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int detect(const char *name, struct dc_migration__entry *e)
{
	size_t len = strlen(name), v, t, end;

	/* golang-migrate's files end in .sql too: they are not dbmate's */
	if (!dc_migration__ends_with(name, len, ".sql") ||
	    dc_migration__ends_with(name, len, ".up.sql") ||
	    dc_migration__ends_with(name, len, ".down.sql") || !isdigit((unsigned char)name[0]))
		return 0;
	end = len - 4;
	for (v = 0; isdigit((unsigned char)name[v]); v++)
		;
	if (name[v] != '_' || v > MAX_VERSION_LEN)
		return 0;
	t = v + 1;
	if (t >= end)
		return 0;
	e->kind = KIND_ONLY;
	return dc_migration__entry_named(e, name, v, name + t, end - t);
}

const struct dc_migration__layout dc_migration__layout_dbmate = {
	.id = DC_LAYOUT_DBMATE,
	.name = "dbmate",
	.expected = "<version>_<name>.sql (dbmate)",
	.down_files = false,
	.detect = detect,
	.load = load,
};
