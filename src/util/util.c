#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

void *dc_malloc_array(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return malloc(n && size ? n * size : 1);
}

void *dc_realloc_array(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return realloc(p, n && size ? n * size : 1);
}

char *dc_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *dc_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int dc_utf8_valid(const char *str, size_t len, size_t *bad)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t n, k;
		unsigned cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			goto invalid;
		}
		if (len - i <= n)
			goto invalid;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				goto invalid;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			goto invalid;
		i += n + 1;
	}
	return 1;
invalid:
	if (bad)
		*bad = i;
	return 0;
}

unsigned dc_edit_distance(const char *a, const char *b)
{
	unsigned row[64];
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la >= 63 || lb >= 63)
		return 255;
	for (j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		unsigned prev = row[0];

		row[0] = (unsigned)i;
		for (j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned cost =
			        tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1])
			                ? 0
			                : 1;
			unsigned best = prev + cost;

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

const char *dc_suggest(const char *word, const char *const *candidates, size_t n)
{
	const char *best = NULL;
	unsigned best_d = UINT_MAX, limit;
	size_t i, len = strlen(word);

	limit = len / 3 > 2 ? (unsigned)(len / 3) : 2;
	for (i = 0; i < n; i++) {
		unsigned d = dc_edit_distance(word, candidates[i]);

		/* a prefix of a long name is a plausible abbreviation too */
		if (len >= 3 && strncmp(candidates[i], word, len) == 0 && d > 1)
			d = 1;
		if (d < best_d) {
			best_d = d;
			best = candidates[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

void dc_hex_encode(char *out, const unsigned char *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int dc_hex_decode(unsigned char *out, size_t len, const char *hex)
{
	size_t i;

	if (strlen(hex) != 2 * len)
		return DC_EINVAL;
	for (i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return DC_EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void dc_sha256_hex(char out[65], const void *data, size_t len)
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	dc_hex_encode(out, h, sizeof(h));
}

int dc_duration_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	int64_t v = 0, mult;

	while (*p == ' ')
		p++;
	if (!isdigit((unsigned char)*p))
		return DC_EINVAL;
	while (isdigit((unsigned char)*p)) {
		if (v > (INT64_MAX - 9) / 10)
			return DC_EINVAL;
		v = v * 10 + (*p++ - '0');
	}
	if (strcmp(p, "ms") == 0)
		mult = 1;
	else if (strcmp(p, "s") == 0)
		mult = 1000;
	else if (strcmp(p, "m") == 0 || strcmp(p, "min") == 0)
		mult = 60 * 1000;
	else if (strcmp(p, "h") == 0)
		mult = 3600 * 1000;
	else if (strcmp(p, "d") == 0)
		mult = 86400 * 1000;
	else
		return DC_EINVAL;
	if (v > INT64_MAX / mult)
		return DC_EINVAL;
	*ms = v * mult;
	return 0;
}

void dc_duration_format(char *out, size_t size, int64_t ms)
{
	if (ms != 0 && ms % (3600 * 1000) == 0)
		snprintf(out, size, "%lldh", (long long)(ms / (3600 * 1000)));
	else if (ms != 0 && ms % (60 * 1000) == 0)
		snprintf(out, size, "%lldm", (long long)(ms / (60 * 1000)));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(out, size, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, size, "%lldms", (long long)ms);
}

int64_t dc_time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dc_time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dc_sleep_ms(int64_t ms, volatile sig_atomic_t *stop)
{
	/* With a stop flag, in slices: the signal that sets it may be handled on
	 * another thread, and this one's sleep would not be interrupted. */
	int64_t slice_max = stop ? 50 : ms;

	while (ms > 0 && !(stop && *stop)) {
		int64_t slice = ms < slice_max ? ms : slice_max;
		struct timespec ts = { (time_t)(slice / 1000), (long)(slice % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !(stop && *stop))
			;
		ms -= slice;
	}
}

void dc_sleep_poll(int64_t deadline_ms, int64_t poll_ms)
{
	int64_t left = deadline_ms - dc_time_mono_ms();

	dc_sleep_ms(left < poll_ms ? (left > 0 ? left : 1) : poll_ms, NULL);
}

uint64_t dc_fnv1a64(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void dc_time_rfc3339(char out[32], int64_t epoch_ms)
{
	time_t secs = (time_t)(epoch_ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + 19, 32 - 19, ".%03uZ", (unsigned)(((epoch_ms % 1000) + 1000) % 1000));
}

/* The `n` decimal digits at `s` as a number; -1 when one is not a digit
 * (the string's NUL included, so nothing past it is read). */
static int fixed_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int dc_time_parse_rfc3339(int64_t *out_ms, const char *s)
{
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0, n;
	const char *p;
	struct tm tm;

	if (!s || (y = fixed_digits(s, 4)) < 0 || s[4] != '-' ||
	    (mo = fixed_digits(s + 5, 2)) < 0 || s[7] != '-' || (d = fixed_digits(s + 8, 2)) < 0 ||
	    s[10] != 'T' || (h = fixed_digits(s + 11, 2)) < 0 || s[13] != ':' ||
	    (mi = fixed_digits(s + 14, 2)) < 0 || s[16] != ':' ||
	    (sec = fixed_digits(s + 17, 2)) < 0)
		return DC_EINVAL;
	p = s + 19;
	if (*p == '.') {
		for (n = 0, p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				ms = ms * 10 + (*p - '0');
		if (n == 0)
			return DC_EINVAL;
		for (; n < 3; n++)
			ms *= 10;
	}
	if (p[0] != 'Z' || p[1] != '\0')
		return DC_EINVAL;
	/* sec 60: a leap second, which timegm carries into the next minute */
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400 != 0))) || h > 23 ||
	    mi > 59 || sec > 60)
		return DC_EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out_ms = (int64_t)timegm(&tm) * 1000 + ms;
	return 0;
}

int dc_file_read(char **out, size_t *len, const char *path, size_t max, dc_error *err)
{
	dc_strbuf sb = DC_STRBUF_INIT;
	char chunk[65536];
	FILE *f = NULL;
	int rc = 0;
	size_t n;

	*out = NULL;
	dc_strbuf_init(&sb, max);
	f = fopen(path, "rb");
	if (!f)
		return dc_error_set(err, errno == ENOENT ? DC_ENOTFOUND : DC_EIO,
		                    "cannot open '%s': %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (dc_strbuf_add(&sb, chunk, n)) {
			rc = dc_error_set(err, sb.failed, "'%s' is larger than %zu bytes", path,
			                  max);
			goto out;
		}
	}
	if (ferror(f)) {
		rc = dc_error_set(err, DC_EIO, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if (len)
		*len = sb.len;
	*out = dc_strbuf_detach(&sb, NULL);
	if (!*out)
		rc = dc_error_set(err, DC_ENOMEM, "out of memory reading '%s'", path);
out:
	dc_strbuf_release(&sb);
	fclose(f);
	return rc;
}

static int fsync_dir(const char *path)
{
	char *dir = dc_path_dirname(path);
	int fd, rc = 0;

	if (!dir)
		return DC_ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		if (fsync(fd) != 0 && errno != EINVAL)
			rc = DC_EIO;
		close(fd);
	}
	free(dir);
	return rc;
}

int dc_file_write_atomic(const char *path,
                         const void *data,
                         size_t len,
                         unsigned mode,
                         bool exclusive,
                         dc_error *err)
{
	dc_strbuf tmp = DC_STRBUF_INIT;
	const char *p = data, *base = strrchr(path, '/');
	int fd = -1, rc = 0;
	size_t off = 0;

	if (exclusive && dc_path_exists(path))
		return dc_error_set(err, DC_EEXISTS, "'%s' already exists, refusing to overwrite",
		                    path);
	/*
	 * A dotfile: folders are scanned by other commands at the same time (the
	 * migration loader reads the folder deployclaw.sum is written into), and a
	 * crash leaves the temporary file behind; scanners skip dotfiles.
	 */
	base = base ? base + 1 : path;
	dc_strbuf_add(&tmp, path, (size_t)(base - path));
	dc_strbuf_addf(&tmp, ".%s.tmp.%ld", base, (long)getpid());
	if (dc_strbuf_error(&tmp))
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	fd = open(tmp.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0) {
		rc = dc_error_set(err, DC_EIO, "cannot create '%s': %s", tmp.buf, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = dc_error_set(err, DC_EIO, "cannot write '%s': %s", tmp.buf,
			                  strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
		rc = dc_error_set(err, DC_EIO, "cannot sync '%s': %s", tmp.buf, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (exclusive) {
		/* link(2) fails when the target appeared meanwhile: no clobbering race */
		if (link(tmp.buf, path) != 0) {
			rc = dc_error_set(err, errno == EEXIST ? DC_EEXISTS : DC_EIO,
			                  "cannot create '%s': %s", path, strerror(errno));
			goto out;
		}
		unlink(tmp.buf);
	} else if (rename(tmp.buf, path) != 0) {
		rc = dc_error_set(err, DC_EIO, "cannot rename '%s' to '%s': %s", tmp.buf, path,
		                  strerror(errno));
		goto out;
	}
	if (fsync_dir(path) != 0)
		rc = dc_error_set(err, DC_EIO, "cannot sync the folder of '%s'", path);
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp.buf);
	dc_strbuf_release(&tmp);
	return rc;
}

int dc_mkdir_p(const char *path, unsigned mode, dc_error *err)
{
	char *p = dc_strdup(path), *s;
	int rc = 0;

	if (!p)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
			rc = dc_error_set(err, DC_EIO, "cannot create folder '%s': %s", p,
			                  strerror(errno));
			goto out;
		}
		*s = '/';
	}
	if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
		rc = dc_error_set(err, DC_EIO, "cannot create folder '%s': %s", p, strerror(errno));
out:
	free(p);
	return rc;
}

int dc_path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

char *dc_path_join(const char *dir, const char *name)
{
	dc_strbuf sb = DC_STRBUF_INIT;

	if (name[0] == '/' || !dir || !dir[0] || strcmp(dir, ".") == 0)
		return dc_strdup(name);
	dc_strbuf_adds(&sb, dir);
	if (sb.len && sb.buf[sb.len - 1] != '/')
		dc_strbuf_addch(&sb, '/');
	dc_strbuf_adds(&sb, name);
	return dc_strbuf_detach(&sb, NULL);
}

char *dc_path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return dc_strdup(".");
	if (slash == path)
		return dc_strdup("/");
	return dc_strndup(path, (size_t)(slash - path));
}

void dc_actor(char *out, size_t size)
{
	char host[256] = "localhost";
	const char *user = getenv("USER");
	struct passwd *pw;

	if (!user || !*user) {
		pw = getpwuid(geteuid());
		user = pw ? pw->pw_name : "unknown";
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(out, size, "%s@%s", user, host);
}
