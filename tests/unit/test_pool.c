/*
 * The worker pool: every item runs once, DC_POOL_ALL items really run at the
 * same time, nested CPU jobs share one budget, and a started task runs beside
 * its caller. The budget is set to 2 (DEPLOYCLAW_THREADS) before the pool is
 * first asked, so the figures do not depend on this machine's CPU count.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "util/pool.h"

#define ITEMS 200

static void count_item(size_t i, void *ctx)
{
	int *ran = ctx;

	__atomic_add_fetch(&ran[i], 1, __ATOMIC_SEQ_CST);
}

static void every_item_runs_once(void **state)
{
	static int ran[ITEMS];

	(void)state;
	assert_int_equal(dc_pool_cpus(), 2);
	for (unsigned width = 0; width <= 3; width++) {
		memset(ran, 0, sizeof(ran));
		assert_int_equal(dc_pool_run(ITEMS, width, 0, count_item, ran), 0);
		for (size_t i = 0; i < ITEMS; i++)
			assert_int_equal(ran[i], 1);
	}
	memset(ran, 0, sizeof(ran));
	assert_int_equal(dc_pool_run(0, 0, 0, count_item, ran), 0);
	assert_int_equal(ran[0], 0);
}

/* A rendezvous of all items: it completes only if every item runs at once.
 * The wait is bounded so that a pool that serialises them fails instead of
 * hanging; a correct pool never comes near the bound. */
typedef struct {
	pthread_mutex_t m;
	pthread_cond_t c;
	size_t n, arrived;
	int timed_out;
} rendezvous;

static void meet(size_t i, void *ctx)
{
	rendezvous *r = ctx;
	struct timespec until;

	(void)i;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 60;
	pthread_mutex_lock(&r->m);
	if (++r->arrived == r->n)
		pthread_cond_broadcast(&r->c);
	while (r->arrived < r->n && !r->timed_out)
		if (pthread_cond_timedwait(&r->c, &r->m, &until) != 0)
			r->timed_out = 1;
	pthread_mutex_unlock(&r->m);
}

static void all_items_run_at_once(void **state)
{
	rendezvous r = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 9, 0, 0 };

	(void)state;
	/* Nine items on a budget of two: DC_POOL_ALL goes past the budget. */
	assert_int_equal(dc_pool_run(r.n, 0, DC_POOL_ALL, meet, &r), 0);
	assert_int_equal(r.arrived, 9);
	assert_false(r.timed_out);
	/* The threads went back to the pool and serve the next job. */
	r.arrived = 0;
	assert_int_equal(dc_pool_run(r.n, 0, DC_POOL_ALL, meet, &r), 0);
	assert_false(r.timed_out);
}

/* Nested CPU jobs: the distinct threads that ran any item stay within the budget. */
typedef struct {
	pthread_mutex_t m;
	pthread_t seen[64];
	size_t nseen;
	int inner_ran;
} nest;

static void note_thread(nest *ns)
{
	pthread_t self = pthread_self();

	pthread_mutex_lock(&ns->m);
	for (size_t i = 0; i < ns->nseen; i++)
		if (pthread_equal(ns->seen[i], self))
			goto out;
	if (ns->nseen < 64)
		ns->seen[ns->nseen++] = self;
out:
	pthread_mutex_unlock(&ns->m);
}

static void inner_item(size_t i, void *ctx)
{
	nest *ns = ctx;

	(void)i;
	note_thread(ns);
	__atomic_add_fetch(&ns->inner_ran, 1, __ATOMIC_SEQ_CST);
}

static void outer_item(size_t i, void *ctx)
{
	nest *ns = ctx;

	(void)i;
	note_thread(ns);
	assert_int_equal(dc_pool_run(8, 0, 0, inner_item, ns), 0);
}

static void nested_jobs_share_the_budget(void **state)
{
	nest ns = { .m = PTHREAD_MUTEX_INITIALIZER };

	(void)state;
	assert_int_equal(dc_pool_run(8, 0, 0, outer_item, &ns), 0);
	assert_int_equal(ns.inner_ran, 64);
	assert_true(ns.nseen >= 1);
	assert_true(ns.nseen <= 2);
	/* Held when the helpers were handed out, whatever the timing: the outer
	 * job took the budget's one spare thread, so no inner job got another. */
	assert_int_equal(dc_pool__cpu_high_water(), 1);
}

typedef struct {
	pthread_mutex_t m;
	pthread_cond_t c;
	int go, done;
} handshake;

static void task_fn(void *ctx)
{
	handshake *h = ctx;

	/* Waits for the caller, which proves the task runs beside it. */
	pthread_mutex_lock(&h->m);
	while (!h->go)
		pthread_cond_wait(&h->c, &h->m);
	h->done = 1;
	pthread_mutex_unlock(&h->m);
}

static void a_started_task_runs_beside_its_caller(void **state)
{
	handshake h = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	dc_pool_task task, never = { 0 };

	(void)state;
	assert_int_equal(dc_pool_start(&task, task_fn, &h), 0);
	pthread_mutex_lock(&h.m);
	h.go = 1;
	pthread_cond_signal(&h.c);
	pthread_mutex_unlock(&h.m);
	dc_pool_join(&task);
	assert_int_equal(h.done, 1);
	dc_pool_join(&never);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_item_runs_once),
		cmocka_unit_test(all_items_run_at_once),
		cmocka_unit_test(nested_jobs_share_the_budget),
		cmocka_unit_test(a_started_task_runs_beside_its_caller),
	};

	setenv("DEPLOYCLAW_THREADS", "2", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
