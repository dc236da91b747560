#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"
#include "util/util.h"

char dc_strbuf__empty[1];

void dc_strbuf_init(dc_strbuf *sb, size_t max)
{
	sb->buf = dc_strbuf__empty;
	sb->len = 0;
	sb->alloc = 0;
	sb->max = max ? max : DC_STRBUF_DEFAULT_MAX;
	sb->failed = 0;
}

void dc_strbuf_release(dc_strbuf *sb)
{
	size_t max = sb->max;

	if (sb->alloc)
		free(sb->buf);
	dc_strbuf_init(sb, max);
}

void dc_strbuf_reset(dc_strbuf *sb)
{
	sb->len = 0;
	sb->failed = 0;
	if (sb->alloc)
		sb->buf[0] = '\0';
}

int dc_strbuf_grow(dc_strbuf *sb, size_t extra)
{
	size_t need, cap;
	char *p;

	if (sb->failed)
		return sb->failed;
	if (extra > sb->max || sb->len > sb->max - extra) {
		sb->failed = DC_ELIMIT;
		return sb->failed;
	}
	need = sb->len + extra + 1;
	if (need <= sb->alloc)
		return 0;
	cap = sb->alloc ? sb->alloc : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (sb->max < SIZE_MAX && cap > sb->max + 1)
		cap = sb->max + 1;
	p = realloc(sb->alloc ? sb->buf : NULL, cap);
	if (!p) {
		sb->failed = DC_ENOMEM;
		return sb->failed;
	}
	if (!sb->alloc)
		p[0] = '\0';
	sb->buf = p;
	sb->alloc = cap;
	return 0;
}

int dc_strbuf_add(dc_strbuf *sb, const void *data, size_t len)
{
	if (dc_strbuf_grow(sb, len))
		return sb->failed;
	if (len)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
	return 0;
}

int dc_strbuf_adds(dc_strbuf *sb, const char *s)
{
	return dc_strbuf_add(sb, s, strlen(s));
}

int dc_strbuf_addch(dc_strbuf *sb, int c)
{
	char ch = (char)c;

	return dc_strbuf_add(sb, &ch, 1);
}

int dc_strbuf_vaddf(dc_strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (sb->failed)
		return sb->failed;
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0) {
		sb->failed = DC_EINVAL;
		return sb->failed;
	}
	if (dc_strbuf_grow(sb, (size_t)n))
		return sb->failed;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
	return 0;
}

int dc_strbuf_addf(dc_strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = dc_strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
	return rc;
}

void dc_strbuf_setlen(dc_strbuf *sb, size_t len)
{
	if (len < sb->len) {
		sb->len = len;
		sb->buf[len] = '\0';
	}
}

int dc_strbuf_error(const dc_strbuf *sb)
{
	return sb->failed;
}

char *dc_strbuf_detach(dc_strbuf *sb, size_t *len)
{
	char *s;
	size_t max = sb->max;

	if (sb->failed) {
		dc_strbuf_release(sb);
		return NULL;
	}
	if (!sb->alloc) {
		s = calloc(1, 1);
	} else {
		s = sb->buf;
	}
	if (s && len)
		*len = sb->len;
	dc_strbuf_init(sb, max);
	return s;
}

int dc_ptrvec_push(dc_ptrvec *v, void *p)
{
	if (v->len == v->alloc && dc_array_grow(&v->items, &v->alloc, sizeof(*v->items), 8) != 0)
		return DC_ENOMEM;
	v->items[v->len++] = p;
	return 0;
}

void dc_ptrvec_release(dc_ptrvec *v, void (*free_fn)(void *))
{
	size_t i;

	if (free_fn)
		for (i = 0; i < v->len; i++)
			free_fn(v->items[i]);
	free(v->items);
	v->items = NULL;
	v->len = v->alloc = 0;
}
