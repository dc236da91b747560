/*
 * The worker pool (pool.h). Threads are handed to jobs by the submitter, under
 * the pool's one lock, rather than picking work themselves: a job then knows
 * exactly which threads it holds, and a CPU job can take only what the budget
 * allows at the moment it starts.
 */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct pool_thread {
	pthread_cond_t wake;
	dc_pool_job *job; /* set by the submitter; NULL while idle */
	int cpu;          /* the job counts against the CPU budget */
	struct pool_thread *next_idle;
} pool_thread;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_thread *idle_threads; /* under pool_lock */
static unsigned cpu_busy;         /* pool threads on CPU jobs, under pool_lock */
static unsigned cpu_busy_max;     /* its high-water mark, for the tests */

static pthread_once_t cpus_once = PTHREAD_ONCE_INIT;
static unsigned cpus_budget;

int dc_pool_parse_threads(const char *s, unsigned *out)
{
	char *end;
	long n;

	if (!s || !*s)
		return DC_EINVAL;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || *end || n < 1 || n > 1024)
		return DC_EINVAL;
	*out = (unsigned)n;
	return 0;
}

static void read_cpus(void)
{
	unsigned n;
	long online;

	/* an invalid value was refused by the program already (main.c): ignored here */
	if (dc_pool_parse_threads(getenv("DEPLOYCLAW_THREADS"), &n) == 0) {
		cpus_budget = n;
		return;
	}
	online = sysconf(_SC_NPROCESSORS_ONLN);
	cpus_budget = online < 1 ? 1 : online > 1024 ? 1024 : (unsigned)online;
}

unsigned dc_pool_cpus(void)
{
	pthread_once(&cpus_once, read_cpus);
	return cpus_budget;
}

/* Claims and runs items until none is left. Called and returns with pool_lock held. */
static void work(dc_pool_job *job)
{
	while (job->next < job->n) {
		size_t i = job->next++;

		pthread_mutex_unlock(&pool_lock);
		job->fn(i, job->ctx);
		pthread_mutex_lock(&pool_lock);
	}
}

static void *thread_main(void *arg)
{
	pool_thread *t = arg;

	pthread_mutex_lock(&pool_lock);
	for (;;) {
		dc_pool_job *job;

		while (!t->job)
			pthread_cond_wait(&t->wake, &pool_lock);
		job = t->job;
		work(job);
		if (--job->workers == 0)
			pthread_cond_signal(&job->done);
		if (t->cpu)
			cpu_busy--;
		t->job = NULL;
		t->cpu = 0;
		t->next_idle = idle_threads;
		idle_threads = t;
	}
	return NULL;
}

/* Starts a thread and puts it on the idle list. Under pool_lock. */
static int spawn_idle(void)
{
	pthread_attr_t attr;
	pthread_t tid;
	pool_thread *t = calloc(1, sizeof(*t));
	int rc = DC_ENOMEM;

	if (!t)
		return DC_ENOMEM;
	if (pthread_cond_init(&t->wake, NULL) != 0) {
		free(t);
		return DC_ENOMEM;
	}
	/* Detached: an idle thread lives until the process exits, and nobody waits for it. */
	if (pthread_attr_init(&attr) == 0) {
		if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
		    pthread_create(&tid, &attr, thread_main, t) == 0)
			rc = 0;
		pthread_attr_destroy(&attr);
	}
	if (rc != 0) {
		pthread_cond_destroy(&t->wake);
		free(t);
		return rc;
	}
	t->next_idle = idle_threads;
	idle_threads = t;
	return 0;
}

/* Hands an idle thread to `job`. Under pool_lock, with idle_threads non-empty. */
static void assign(dc_pool_job *job, int cpu)
{
	pool_thread *t = idle_threads;

	idle_threads = t->next_idle;
	t->next_idle = NULL;
	t->job = job;
	t->cpu = cpu;
	if (cpu && ++cpu_busy > cpu_busy_max)
		cpu_busy_max = cpu_busy;
	job->workers++;
	pthread_cond_signal(&t->wake);
}

unsigned dc_pool__cpu_high_water(void)
{
	unsigned n;

	pthread_mutex_lock(&pool_lock);
	n = cpu_busy_max;
	pthread_mutex_unlock(&pool_lock);
	return n;
}

static unsigned idle_count(void)
{
	unsigned n = 0;

	for (const pool_thread *t = idle_threads; t; t = t->next_idle)
		n++;
	return n;
}

/* Makes sure `want` threads are idle, starting the missing ones. Under pool_lock. */
static int reserve(size_t want)
{
	size_t have = idle_count();

	while (have < want) {
		int rc = spawn_idle();

		if (rc != 0)
			return rc;
		have++;
	}
	return 0;
}

int dc_pool_run(size_t n, unsigned width, unsigned flags, dc_pool_fn fn, void *ctx)
{
	dc_pool_job job = { .fn = fn, .ctx = ctx, .n = n };
	unsigned cpus = dc_pool_cpus();
	size_t helpers;
	int rc = 0;

	if (n == 0)
		return 0;
	if (pthread_cond_init(&job.done, NULL) != 0)
		return DC_ENOMEM;
	pthread_mutex_lock(&pool_lock);
	if (flags & DC_POOL_ALL) {
		helpers = n - 1;
		rc = reserve(helpers);
		if (rc != 0)
			goto out;
		while (helpers--)
			assign(&job, 0);
	} else {
		/* The caller is one of the CPU budget's threads already; it borrows
		 * what is left, idle threads first, new ones while the budget allows. */
		size_t free_cpus = cpus - 1 > cpu_busy ? cpus - 1 - cpu_busy : 0;

		if (width == 0 || width > cpus)
			width = cpus;
		helpers = width - 1;
		if (helpers > n - 1)
			helpers = n - 1;
		if (helpers > free_cpus)
			helpers = free_cpus;
		while (helpers--) {
			if (!idle_threads && spawn_idle() != 0)
				break;
			assign(&job, 1);
		}
	}
	work(&job);
	while (job.workers > 0)
		pthread_cond_wait(&job.done, &pool_lock);
out:
	pthread_mutex_unlock(&pool_lock);
	pthread_cond_destroy(&job.done);
	return rc;
}

static void task_run(size_t i, void *ctx)
{
	dc_pool_task *task = ctx;

	(void)i;
	task->fn(task->ctx);
}

int dc_pool_start(dc_pool_task *task, void (*fn)(void *ctx), void *ctx)
{
	int rc;

	task->fn = fn;
	task->ctx = ctx;
	task->started = 0;
	task->job = (dc_pool_job){ .fn = task_run, .ctx = task, .n = 1 };
	if (pthread_cond_init(&task->job.done, NULL) != 0)
		return DC_ENOMEM;
	pthread_mutex_lock(&pool_lock);
	rc = reserve(1);
	if (rc == 0) {
		assign(&task->job, 0);
		task->started = 1;
	}
	pthread_mutex_unlock(&pool_lock);
	if (rc != 0)
		pthread_cond_destroy(&task->job.done);
	return rc;
}

void dc_pool_join(dc_pool_task *task)
{
	if (!task->started)
		return;
	pthread_mutex_lock(&pool_lock);
	while (task->job.workers > 0)
		pthread_cond_wait(&task->job.done, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
	pthread_cond_destroy(&task->job.done);
	task->started = 0;
}
