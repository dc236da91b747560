/*
 * chunks.c -- large blocks parsed in chunks of whole statements, on the
 * pool's threads while one of them lints the chunks in order.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lint_internal.h"
#include "util/pool.h"

/*
 * Large blocks (a 100,000-statement file) are parsed in chunks of whole
 * statements, cut where the scanner ends a statement: each chunk's tree is
 * linted and freed before the next, so memory stays at one chunk's tree, and
 * other threads parse the chunks ahead while this one lints in order.
 */
#define CHUNK_MIN_TEXT    (256u * 1024u) /* smaller blocks are parsed at once */
#define CHUNK_TEXT        (32u * 1024u)
#define CHUNK_MAX_WORKERS 4

typedef struct chunk {
	size_t off, len;
	dc_arena arena;
	PgQuery__ParseResult *tree; /* in arena */
	char *error;                /* the parser's message, or NULL */
	int cursorpos;              /* of the error, 1-based characters in the chunk */
	int rc;                     /* DC_ENOMEM */
	bool ready;
} chunk;

static void chunk_parse(const char *text, chunk *c)
{
	char *sql = dc_strndup(text + c->off, c->len);
	PgQueryProtobufParseResult res;

	c->tree = NULL;
	c->error = NULL;
	c->cursorpos = 0;
	c->rc = 0;
	if (!sql) {
		c->rc = DC_ENOMEM;
		return;
	}
	res = pg_query_parse_protobuf(sql);
	if (res.error) {
		c->cursorpos = res.error->cursorpos;
		if (!(c->error =
		              dc_strdup(res.error->message ? res.error->message : "syntax error")))
			c->rc = DC_ENOMEM;
	} else if (!(c->tree = dc_analysis__unpack(&c->arena, &res.parse_tree))) {
		c->rc = DC_ENOMEM;
	}
	pg_query_free_protobuf_parse_result(res);
	free(sql);
}

typedef struct pipeline {
	const char *text;
	chunk *slots;
	size_t nslots;
	const size_t *cuts; /* chunk i is [cuts[i], cuts[i + 1]) */
	size_t nchunks;
	size_t next;     /* the next chunk a worker takes */
	size_t consumed; /* chunks linted: slot i % nslots is free for i < consumed + nslots */
	bool stop;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
} pipeline;

static void chunk_worker(pipeline *p)
{
	pthread_mutex_lock(&p->mu);
	for (;;) {
		size_t i;
		chunk *c;

		while (!p->stop && p->next < p->nchunks && p->next >= p->consumed + p->nslots)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop || p->next >= p->nchunks)
			break;
		i = p->next++;
		c = &p->slots[i % p->nslots];
		pthread_mutex_unlock(&p->mu);
		c->off = p->cuts[i];
		c->len = p->cuts[i + 1] - p->cuts[i];
		chunk_parse(p->text, c);
		pthread_mutex_lock(&p->mu);
		c->ready = true;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Whether `word` (lower case) occurs in `text`, in any case. */
static bool has_word_ci(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (; *text; text++)
		if ((*text | 0x20) == word[0] && strncasecmp(text, word, n) == 0)
			return true;
	return false;
}

/*
 * Chunk boundaries: statement starts (just after a top-level ';'), about
 * CHUNK_TEXT apart. Fewer than two chunks, or a text the scanner rejects
 * (the parser then reports the error), returns 0.
 */
size_t dc_lint__chunk_cuts(const char *text, size_t len, size_t **cuts)
{
	PgQuerySplitResult sr;
	size_t n = 0, last = 0;
	int i;

	*cuts = NULL;
	if (len < CHUNK_MIN_TEXT)
		return 0;
	/* The scanner ends a statement at every top-level ';', also inside a
	 * SQL-standard body (CREATE FUNCTION ... BEGIN ATOMIC ...; ...; END):
	 * a text that may hold one is parsed at once. */
	if (has_word_ci(text, "atomic"))
		return 0;
	sr = pg_query_split_with_scanner(text);
	if (!sr.error && sr.n_stmts > 1 &&
	    (*cuts = dc_malloc_array(len / CHUNK_TEXT + 2, sizeof(**cuts))) != NULL) {
		(*cuts)[n++] = 0;
		for (i = 1; i < sr.n_stmts; i++) {
			size_t at = (size_t)sr.stmts[i]->stmt_location;

			if (at > last && at - last >= CHUNK_TEXT && at < len &&
			    n < len / CHUNK_TEXT + 1) {
				(*cuts)[n++] = at;
				last = at;
			}
		}
		(*cuts)[n] = len;
	}
	pg_query_free_split_result(sr);
	if (n < 2) {
		free(*cuts);
		*cuts = NULL;
		return 0;
	}
	return n;
}

/*
 * A syntax error in chunk k of a large block: what the chunks before it
 * found is dropped, so the block reports its syntax error alone, as a block
 * parsed at once does.
 */
static void drop_block_results(lint *l, const block *b, size_t findings_from, size_t models_from)
{
	size_t i;

	for (i = findings_from; i < l->out->len; i++)
		l->out->items[i].severity = DC_SEV_OFF;
	if (b->models) {
		for (i = models_from; i < b->models->len; i++)
			dc_analysis__model_release(&b->models->items[i]);
		b->models->len = models_from;
	}
}

/* One run of the pipeline: item 0 lints the chunks in order, the others parse ahead. */
typedef struct chunk_run {
	pipeline p;
	lint *l;
	const block *b;
	size_t *prev_end;
	size_t findings_from, models_from;
	int rc;
} chunk_run;

/* Lints the chunks in order, parsing here each one no parser has taken yet:
 * the run never waits on a parser that has no thread. */
static void consume(chunk_run *r)
{
	pipeline *p = &r->p;
	lint *l = r->l;
	size_t i;

	for (i = 0; i < p->nchunks && !r->rc && !l->failed; i++) {
		chunk *c = &p->slots[i % p->nslots];

		pthread_mutex_lock(&p->mu);
		if (p->next == i) { /* unclaimed: its slot is free, parse it here */
			p->next++;
			pthread_mutex_unlock(&p->mu);
			c->off = p->cuts[i];
			c->len = p->cuts[i + 1] - p->cuts[i];
			chunk_parse(p->text, c);
		} else {
			while (!c->ready)
				pthread_cond_wait(&p->done, &p->mu);
			pthread_mutex_unlock(&p->mu);
		}
		l->base = c->off;
		l->cur_chunk_end = c->off + c->len;
		if (c->rc) {
			r->rc = c->rc;
		} else if (c->error) {
			drop_block_results(l, r->b, r->findings_from, r->models_from);
			dc_lint__syntax_finding(l, c->off, c->error, c->cursorpos);
			l->syntax_error = true;
		} else {
			r->rc = dc_lint__tree(l, r->b, c->tree, r->prev_end);
		}
		free(c->error);
		c->error = NULL;
		c->tree = NULL;
		dc_arena_reset(&c->arena);
		pthread_mutex_lock(&p->mu);
		c->ready = false;
		p->consumed++;
		if (l->syntax_error || r->rc || l->failed)
			p->stop = true;
		pthread_cond_broadcast(&p->work);
		pthread_mutex_unlock(&p->mu);
		if (l->syntax_error)
			break;
	}
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
}

static void pipeline_item(size_t i, void *arg)
{
	chunk_run *r = arg;

	if (i == 0)
		consume(r);
	else
		chunk_worker(&r->p);
}

/* Parses the chunks on the pool's threads (as far as its budget goes) and lints them in order. */
int dc_lint__chunks(lint *l, const block *b, const size_t *cuts, size_t nchunks, size_t *prev_end)
{
	chunk_run r;
	unsigned cpus = dc_pool_cpus();
	size_t nparsers = cpus > CHUNK_MAX_WORKERS ? CHUNK_MAX_WORKERS : cpus, i;

	memset(&r, 0, sizeof(r));
	r.l = l;
	r.b = b;
	r.prev_end = prev_end;
	r.findings_from = l->out->len;
	r.models_from = b->models ? b->models->len : 0;
	r.p.text = l->text;
	r.p.cuts = cuts;
	r.p.nchunks = nchunks;
	r.p.nslots = 2 * nparsers;
	if (!(r.p.slots = calloc(r.p.nslots, sizeof(*r.p.slots))))
		return DC_ENOMEM;
	pthread_mutex_init(&r.p.mu, NULL);
	pthread_cond_init(&r.p.work, NULL);
	pthread_cond_init(&r.p.done, NULL);
	/* Never fails: without threads, the consumer parses every chunk itself. */
	(void)dc_pool_run(1 + nparsers, (unsigned)(1 + nparsers), 0, pipeline_item, &r);
	for (i = 0; i < r.p.nslots; i++) {
		free(r.p.slots[i].error);
		dc_arena_release(&r.p.slots[i].arena);
	}
	free(r.p.slots);
	pthread_cond_destroy(&r.p.done);
	pthread_cond_destroy(&r.p.work);
	pthread_mutex_destroy(&r.p.mu);
	l->base = 0;
	l->cur_chunk_end = 0;
	return r.rc;
}
