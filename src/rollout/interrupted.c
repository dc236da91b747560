/*
 * interrupted.c — runs an earlier process started and never ended: found in
 * the ledger, recorded as `run_interrupted` when their process is gone (a run
 * of a live process on this host is concurrent, not interrupted).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollout_internal.h"
#include "util/util.h"

typedef struct open_runs {
	char run_ids[64][33];
	int pids[64];
	long long starts[64];
	char hosts[64][128];
	size_t n;
} open_runs;

static int scan_run(json_t *e, void *ctx)
{
	open_runs *o = ctx;
	const char *ev = json_string_value(json_object_get(e, "event"));
	const char *run = json_string_value(json_object_get(e, "run_id"));
	json_t *data = json_object_get(e, "data");
	size_t i;

	if (!ev || !run)
		return 0;
	if (strcmp(ev, "run_start") == 0 && o->n < 64) {
		snprintf(o->run_ids[o->n], sizeof(o->run_ids[0]), "%s", run);
		o->pids[o->n] = (int)json_integer_value(json_object_get(data, "pid"));
		o->starts[o->n] = (long long)json_integer_value(json_object_get(data, "pid_start"));
		snprintf(o->hosts[o->n], sizeof(o->hosts[0]), "%s",
		         json_string_value(json_object_get(data, "host"))
		                 ? json_string_value(json_object_get(data, "host"))
		                 : "");
		o->n++;
		return 0;
	}
	if (strcmp(ev, "run_end") != 0 && strcmp(ev, "run_interrupted") != 0)
		return 0;
	if (strcmp(ev, "run_interrupted") == 0)
		run = json_string_value(json_object_get(data, "interrupted_run"));
	for (i = 0; run && i < o->n; i++) {
		if (strcmp(o->run_ids[i], run) == 0) {
			o->n--;
			memmove(&o->run_ids[i], &o->run_ids[i + 1],
			        (o->n - i) * sizeof(o->run_ids[0]));
			memmove(&o->pids[i], &o->pids[i + 1], (o->n - i) * sizeof(o->pids[0]));
			memmove(&o->starts[i], &o->starts[i + 1],
			        (o->n - i) * sizeof(o->starts[0]));
			memmove(&o->hosts[i], &o->hosts[i + 1], (o->n - i) * sizeof(o->hosts[0]));
			break;
		}
	}
	return 0;
}

/*
 * When process `pid` started, in clock ticks since boot (field 22 of
 * /proc/PID/stat), or -1 when it does not exist or is a zombie: a killed
 * run whose parent has not reaped it yet must count as gone.
 */
long long dc_rollout__process_start(int pid)
{
	char path[64], buf[1024], state = '?';
	long long start = -1;
	const char *p;
	FILE *f;
	size_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: fields start after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c", &state) != 1 || state == 'Z' || state == 'X')
		return -1;
	for (field = 3, p += 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		start = strtoll(p, NULL, 10);
	return start;
}

/* Whether the run of `pid` (started at `start`, 0 = unknown) is still running here. A
 * reused pid has another start time. */
static bool process_alive(int pid, long long start)
{
	long long now;

	if (pid <= 0)
		return false;
	if (access("/proc/self/stat", R_OK) != 0)
		return kill(pid, 0) == 0; /* no /proc: the best there is */
	now = dc_rollout__process_start(pid);
	return now >= 0 && (start <= 0 || now == start);
}

int dc_rollout__record_interrupted(dc_rollout__batch *b, const char *ledger_path, dc_error *err)
{
	open_runs *o = calloc(1, sizeof(*o));
	char host[128] = "";
	size_t i;
	int rc = 0;

	if (!o)
		return dc_error_set(err, DC_ENOMEM, "out of memory");
	gethostname(host, sizeof(host) - 1);
	if (dc_path_exists(ledger_path) &&
	    (rc = dc_ledger__read(ledger_path, NULL, scan_run, o, err)) != 0)
		goto out;
	for (i = 0; i < o->n; i++) {
		/* a run of a live process on this host is not interrupted, just concurrent */
		if (strcmp(o->hosts[i], host) == 0 && process_alive(o->pids[i], o->starts[i]))
			continue;
		if ((rc = dc_rollout__batch_record(
		             b, "run_interrupted",
		             json_pack("{s:s}", "interrupted_run", o->run_ids[i]), err)) != 0)
			goto out;
	}
out:
	free(o);
	return rc;
}
