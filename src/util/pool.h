/**
 * util/pool.h — the process's one worker pool (internal; not installed).
 *
 * Every part of deployclaw that works in parallel (the rollout's workers and
 * its ledger writer, the SQLite prefetch, lint, render, ledger verify,
 * topology) takes its threads from here instead of starting its own. The pool
 * is sized once: its CPU budget is the online CPU count read the first time it
 * is asked (or DEPLOYCLAW_THREADS when set), and the threads it starts are
 * kept and reused by the next job.
 *
 * Two kinds of job:
 *
 *  - CPU work (`dc_pool_run` without DC_POOL_ALL): the caller runs items
 *    itself and borrows only threads that are idle or that the budget still
 *    allows. A job started from inside another job's item (lint's files, then
 *    each file's chunks) therefore shares the budget with its parent instead
 *    of multiplying it, and can never deadlock: the caller alone finishes
 *    every item if no thread is free.
 *  - Work whose items wait on each other or on the network (DC_POOL_ALL, and
 *    `dc_pool_start`): every item gets a thread of its own at once, started
 *    beyond the CPU budget when needed, since the items mostly wait. Those
 *    threads return to the pool afterwards.
 *
 * Threads live until the process exits: an idle one only waits on a
 * condition variable.
 */
#ifndef DC_UTIL_POOL_H
#define DC_UTIL_POOL_H

#include <pthread.h>
#include <stddef.h>

#include <deployclaw/common.h>

/** Runs item `i` of a job; `ctx` is the caller's. */
typedef void (*dc_pool_fn)(size_t i, void *ctx);

/** Flags of dc_pool_run. */
enum {
	/** Every item runs on a thread of its own at the same time (the caller
	 * runs item 0): for items that wait on each other or on I/O. */
	DC_POOL_ALL = 1u << 0
};

/** A job, in the caller's storage; its fields are the pool's. */
typedef struct dc_pool_job {
	dc_pool_fn fn;
	void *ctx;
	size_t n;
	size_t next;      /**< the next item to claim (under the pool's lock) */
	unsigned workers; /**< pool threads attached to the job */
	pthread_cond_t done;
} dc_pool_job;

/** DEPLOYCLAW_THREADS's rule: a whole number from 1 to 1024 into `*out`; DC_EINVAL else. */
int dc_pool_parse_threads(const char *s, unsigned *out);

/** The pool's CPU budget: online CPUs, or DEPLOYCLAW_THREADS (1..1024). Read once. */
unsigned dc_pool_cpus(void);

/**
 * Runs fn(0) ... fn(n - 1), with at most `width` items at a time (0 = the CPU
 * budget), the calling thread being one of the workers. Returns when every
 * item has returned. Without DC_POOL_ALL it never fails: threads that cannot
 * be had only make the run narrower. With DC_POOL_ALL, `width` is ignored and
 * every item gets a thread; DC_ENOMEM (nothing run) when one cannot be
 * started.
 */
int dc_pool_run(size_t n, unsigned width, unsigned flags, dc_pool_fn fn, void *ctx);

/** A background task started with dc_pool_start. */
typedef struct dc_pool_task {
	dc_pool_job job;
	void (*fn)(void *ctx);
	void *ctx;
	int started;
} dc_pool_task;

/**
 * Runs fn(ctx) on a pool thread of its own, starting now (a thread is started
 * beyond the CPU budget when none is idle: such tasks are long-lived loops
 * that mostly wait). `task` must stay put until dc_pool_join. Returns 0, or
 * DC_ENOMEM when no thread could be had (nothing runs; joining is a no-op).
 */
int dc_pool_start(dc_pool_task *task, void (*fn)(void *ctx), void *ctx);

/** The most pool threads that were ever on CPU jobs at once (for the tests): at most the
 * budget less one, the caller of each job being the budget's other thread. */
unsigned dc_pool__cpu_high_water(void);

/** Waits until the task's function has returned. A task never started: no-op. */
void dc_pool_join(dc_pool_task *task);

#endif
