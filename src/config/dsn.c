/*
 * Password redaction for libpq connection strings.
 *
 * Two forms: key=value conninfo (values bare or single-quoted, with backslash
 * escapes) and postgres:// URIs (password in the userinfo or as a query
 * parameter). When the text cannot be parsed we redact from the point where
 * parsing failed to the end: failing closed beats printing a secret.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <deployclaw/config.h>

#include "util/util.h"

#define REDACTED "********"

static bool is_uri(const char *s)
{
	return !strncasecmp(s, "postgresql://", 13) || !strncasecmp(s, "postgres://", 11);
}

static bool is_password_key(const char *k, size_t len)
{
	return len == 8 && !strncasecmp(k, "password", 8);
}

static void redact_uri(dc_strbuf *sb, const char *s)
{
	const char *auth = strstr(s, "://") + 3;
	const char *slash = strchr(auth, '/');
	const char *auth_end = slash ? slash : auth + strlen(auth);
	const char *at = NULL, *p, *q;

	/*
	 * libpq ends the authority at the first '/', and takes the userinfo up
	 * to an '@' before it. A password holding a raw '/' or '@' is malformed,
	 * but must not leak either: take the last '@' before the query string.
	 */
	for (p = auth; p < auth_end; p++)
		if (*p == '@')
			at = p;
	if (!at) {
		const char *qm = strchr(auth, '?');
		const char *stop = qm ? qm : auth + strlen(auth);

		for (p = auth; p < stop; p++)
			if (*p == '@')
				at = p;
	}
	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));

		if (colon) {
			dc_strbuf_add(sb, s, (size_t)(colon + 1 - s));
			dc_strbuf_adds(sb, REDACTED);
			s = at;
		}
		auth_end = strchr(at, '/') ? strchr(at, '/') : at + strlen(at);
	}
	q = strchr(auth_end, '?');
	if (!q) {
		dc_strbuf_adds(sb, s);
		return;
	}
	dc_strbuf_add(sb, s, (size_t)(q + 1 - s));
	p = q + 1;
	while (*p) {
		const char *amp = strchr(p, '&');
		const char *pend = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(pend - p));

		if (eq && is_password_key(p, (size_t)(eq - p))) {
			dc_strbuf_add(sb, p, (size_t)(eq + 1 - p));
			dc_strbuf_adds(sb, REDACTED);
		} else {
			dc_strbuf_add(sb, p, (size_t)(pend - p));
		}
		if (!amp)
			break;
		dc_strbuf_addch(sb, '&');
		p = amp + 1;
	}
}

static void redact_conninfo(dc_strbuf *sb, const char *s)
{
	const char *p = s;

	while (*p) {
		const char *k, *v;
		size_t klen;
		bool secret;

		while (isspace((unsigned char)*p))
			dc_strbuf_addch(sb, *p++);
		if (!*p)
			break;
		k = p;
		while (*p && *p != '=' && !isspace((unsigned char)*p))
			p++;
		klen = (size_t)(p - k);
		secret = is_password_key(k, klen);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=' || klen == 0) {
			/* malformed: keep nothing we cannot account for */
			dc_strbuf_adds(sb, REDACTED);
			return;
		}
		p++;
		while (isspace((unsigned char)*p))
			p++;
		dc_strbuf_add(sb, k, klen);
		dc_strbuf_addch(sb, '=');
		v = p;
		if (*p == '\'') {
			p++;
			while (*p && *p != '\'') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (!*p) {
				/* unterminated quote: the rest may all be the password */
				dc_strbuf_adds(sb, REDACTED);
				return;
			}
			p++;
		} else {
			while (*p && !isspace((unsigned char)*p)) {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
		}
		if (secret)
			dc_strbuf_adds(sb, REDACTED);
		else
			dc_strbuf_add(sb, v, (size_t)(p - v));
	}
}

char *dc_dsn_redact(const char *dsn)
{
	dc_strbuf sb = DC_STRBUF_INIT;

	if (!dsn)
		return dc_strdup("");
	if (is_uri(dsn))
		redact_uri(&sb, dsn);
	else
		redact_conninfo(&sb, dsn);
	return dc_strbuf_detach(&sb, NULL);
}
