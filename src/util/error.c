#include <stdio.h>
#include <string.h>

#include <deployclaw/common.h>

#include "util/util.h"

int dc_error_vset(dc_error *err, int code, const char *fmt, va_list ap)
{
	if (!err || err->code != 0)
		return code;
	memset(err, 0, sizeof(*err));
	err->code = code;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	return code;
}

int dc_error_set(dc_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dc_error_vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int dc_error_set_at(dc_error *err,
                    int code,
                    const char *file,
                    int line,
                    int col,
                    const char *fmt,
                    ...)
{
	va_list ap;

	if (!err || err->code != 0)
		return code;
	va_start(ap, fmt);
	dc_error_vset(err, code, fmt, ap);
	va_end(ap);
	if (file)
		snprintf(err->file, sizeof(err->file), "%s", file);
	err->line = line;
	err->col = col;
	return code;
}

void dc_error_clear(dc_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

const char *dc_error_format(const dc_error *err, char *buf, size_t size)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	size_t n;

	if (size == 0)
		return buf;
	if (err->file[0] && err->line > 0 && err->col > 0)
		dc_strbuf_addf(&sb, "%s:%d:%d: ", err->file, err->line, err->col);
	else if (err->file[0] && err->line > 0)
		dc_strbuf_addf(&sb, "%s:%d: ", err->file, err->line);
	else if (err->file[0])
		dc_strbuf_addf(&sb, "%s: ", err->file);
	dc_strbuf_adds(&sb, err->message[0] ? err->message : dc_strerror(err->code));
	n = sb.len < size - 1 ? sb.len : size - 1;
	memcpy(buf, sb.buf, n);
	buf[n] = '\0';
	dc_strbuf_release(&sb);
	return buf;
}

const char *dc_strerror(int code)
{
	switch (code) {
	case DC_OK:
		return "success";
	case DC_ENOMEM:
		return "out of memory";
	case DC_EINVAL:
		return "invalid input";
	case DC_EIO:
		return "input/output error";
	case DC_ECONFIG:
		return "invalid configuration";
	case DC_EPARSE:
		return "parse error";
	case DC_EINTEGRITY:
		return "integrity failure";
	case DC_ENOTFOUND:
		return "not found";
	case DC_EEXISTS:
		return "already exists";
	case DC_ELIMIT:
		return "size limit exceeded";
	case DC_EDB:
		return "database error";
	case DC_EGATE:
		return "a gate refused";
	case DC_ELOCKED:
		return "locked by another process";
	case DC_ETENANT:
		return "a tenant failed";
	case DC_EINTERRUPTED:
		return "interrupted";
	default:
		return "unknown error";
	}
}
