/*
 * ledger_bench — append and verify rates of the audit ledger, each with a
 * baseline measured in the same run on the same disk:
 *
 *   durable append  vs  write() + fsync() of a line of the same size
 *   batch append    (dc_ledger_append_batch, one fsync per batch)
 *   verify          vs  SHA-256 over the file, and reading it line by line
 *
 * Usage: ledger_bench --dir DIR [--durable N] [--total N] [--batch N]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include <deployclaw/ledger.h>

#include "ledger/ledger_json.h"
#include "util/util.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const dc_error *err)
{
	fprintf(stderr, "ledger_bench: %s: %s\n", what, err ? err->message : "failed");
	exit(1);
}

/* A realistic per-tenant outcome. */
static json_t *event_data(long i)
{
	char tenant[32];

	snprintf(tenant, sizeof(tenant), "tenant_%06ld", i % 100000);
	return json_pack("{s:s, s:s, s:s, s:i, s:s}", "tenant", tenant, "shard", "eu-1", "version",
	                 "2024_001", "duration_ms", (json_int_t)(i % 997), "outcome", "applied");
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	long durable = 10000, total = 1000000, batch = 1000, i, j;
	char key_path[512], small[512], big[512], raw[512];
	dc_signing_key *key = NULL;
	dc_ledger *l = NULL;
	dc_error err = { 0 };
	dc_ledger__event *evs;
	double t, dt_append, dt_raw, dt_batch, dt_full, dt_full1, dt_fast, dt_sha, dt_lines;
	size_t line_len;
	int a;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--dir") == 0 && a + 1 < argc)
			dir = argv[++a];
		else if (strcmp(argv[a], "--durable") == 0 && a + 1 < argc)
			durable = atol(argv[++a]);
		else if (strcmp(argv[a], "--total") == 0 && a + 1 < argc)
			total = atol(argv[++a]);
		else if (strcmp(argv[a], "--batch") == 0 && a + 1 < argc)
			batch = atol(argv[++a]);
		else {
			fprintf(stderr,
			        "usage: ledger_bench --dir DIR [--durable N] [--total N] [--batch N]\n");
			return 2;
		}
	}
	if (!dir || durable < 1 || total < 1 || batch < 1 || batch > DC_LEDGER_BATCH_MAX) {
		fprintf(stderr, "ledger_bench: --dir is required; counts must be positive\n");
		return 2;
	}
	if (sodium_init() < 0)
		die("sodium_init", NULL);
	snprintf(key_path, sizeof(key_path), "%s/signing.key", dir);
	snprintf(small, sizeof(small), "%s/durable.jsonl", dir);
	snprintf(big, sizeof(big), "%s/big.jsonl", dir);
	snprintf(raw, sizeof(raw), "%s/raw.jsonl", dir);
	if (dc_signing_key_generate(key_path, NULL, &err) ||
	    dc_signing_key_load(&key, key_path, &err))
		die("key", &err);

	/* (a) durable appends: one entry, one lock, write, fsync, head record each */
	if (dc_ledger_open(&l, small, key, "bench-durable", &err))
		die("open", &err);
	t = now();
	for (i = 0; i < durable; i++) {
		json_t *d = event_data(i);

		if (dc_ledger__append(l, "tenant.applied", d, NULL, &err))
			die("append", &err);
		json_decref(d);
	}
	dt_append = now() - t;
	dc_ledger_close(l);
	l = NULL;
	line_len = (size_t)file_size(small) / (size_t)durable;

	/* baseline: the same bytes with plain write() + fsync() per line */
	{
		char *line = malloc(line_len);
		int fd = open(raw, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);

		if (!line || fd < 0)
			die("baseline", NULL);
		memset(line, 'x', line_len);
		line[line_len - 1] = '\n';
		t = now();
		for (i = 0; i < durable; i++)
			if (write(fd, line, line_len) != (ssize_t)line_len || fsync(fd) != 0)
				die("baseline write", NULL);
		dt_raw = now() - t;
		close(fd);
		free(line);
		unlink(raw);
	}
	printf("durable append   %8ld entries  %9.0f entries/s   baseline write+fsync %9.0f lines/s   ratio %.2f\n",
	       durable, durable / dt_append, durable / dt_raw, dt_raw / dt_append);

	/* (b) batch appends up to `total` entries */
	evs = calloc((size_t)batch, sizeof(*evs));
	if (!evs || dc_ledger_open(&l, big, key, "bench-batch", &err))
		die("open", &err);
	t = now();
	for (i = 0; i < total; i += batch) {
		long n = total - i < batch ? total - i : batch;

		for (j = 0; j < n; j++) {
			evs[j].event = "tenant.applied";
			evs[j].data = event_data(i + j);
		}
		if (dc_ledger__append_batch(l, evs, (size_t)n, NULL, &err))
			die("append_batch", &err);
		for (j = 0; j < n; j++)
			json_decref(evs[j].data);
	}
	dt_batch = now() - t;
	dc_ledger_close(l);
	free(evs);
	printf("batch append     %8ld entries  %9.0f entries/s   (batches of %ld, one fsync each; %.0f MB)\n",
	       total, total / dt_batch, batch, (double)file_size(big) / 1e6);

	/* baselines for verify: SHA-256 over the file, and reading its lines */
	{
		unsigned char buf[1 << 16], h[32];
		crypto_hash_sha256_state st;
		FILE *fp = fopen(big, "rb");
		char *line = NULL;
		size_t cap = 0, n;
		long lines = 0;

		if (!fp)
			die("open big", NULL);
		t = now();
		crypto_hash_sha256_init(&st);
		while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
			crypto_hash_sha256_update(&st, buf, n);
		crypto_hash_sha256_final(&st, h);
		dt_sha = now() - t;
		rewind(fp);
		t = now();
		while (getline(&line, &cap, fp) > 0)
			lines++;
		dt_lines = now() - t;
		free(line);
		fclose(fp);
		if (lines != total)
			die("line count", NULL);
	}

	{
		dc_ledger_verify_opts opts = DC_LEDGER_VERIFY_OPTIONS_INIT;
		dc_ledger_verify_result res;

		opts.pubkey = key->pk;

		t = now();
		if (dc_ledger_verify(big, &opts, &res, &err) || res.entries != total)
			die("verify", &err);
		dt_full = now() - t;
		t = now();
		opts.threads = 1;
		if (dc_ledger_verify(big, &opts, &res, &err) || res.entries != total)
			die("verify", &err);
		dt_full1 = now() - t;
		t = now();
		opts.threads = 0;
		opts.flags = DC_LEDGER_VERIFY_FAST;
		if (dc_ledger_verify(big, &opts, &res, &err) || res.entries != total)
			die("verify --fast", &err);
		dt_fast = now() - t;
	}
	printf("verify (full)    %8ld entries  %9.0f entries/s   (%ld CPUs; 1 thread: %.0f entries/s)\n",
	       total, total / dt_full, sysconf(_SC_NPROCESSORS_ONLN), total / dt_full1);
	printf("verify (fast)    %8ld entries  %9.0f entries/s\n", total, total / dt_fast);
	printf("baseline sha256 over the file %9.0f entries/s; getline %9.0f lines/s\n",
	       total / dt_sha, total / dt_lines);
	printf("ratio verify/sha256: full %.1fx slower, fast %.1fx slower; verify/getline: full %.1fx, fast %.1fx\n",
	       dt_full / dt_sha, dt_fast / dt_sha, dt_full / dt_lines, dt_fast / dt_lines);
	dc_signing_key_free(key);
	return 0;
}
