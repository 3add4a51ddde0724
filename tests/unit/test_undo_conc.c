/*
 * test_undo_conc.c - the undo log under threads (also run under TSan):
 * each thread appends to its own chain, rolls parts of it back, and
 * commits, releasing pages the other threads then take from the shared
 * free list; each reads its chain back as it goes. Afterwards every page
 * of the relation is owned by exactly one chain or free, and the log
 * replays to the same pages.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/lib/testutil.h"
#include "tests/lib/undotest.h"
#include "wal/format.h"
#include "wal/rmgr.h"

enum { THREADS = 4, STEPS = 300 };

typedef struct worker {
	ut_env *e;
	ut_chain ch;
	wd_xid next_xid;
	uint64_t rng;
	uint64_t commits;
} worker;

/* Undoes the chain back to a random one of its records. */
static void partial_rollback(worker *w)
{
	size_t keep = tu_rand(&w->rng) % w->ch.n;
	UT_OK(undo_rollback(w->e->u, &w->ch.c, &w->ch.prev, keep ? w->ch.r[keep - 1].self : 0,
			    ut_no_apply, NULL, NULL));
	ut_model_cut(&w->ch, keep);
}

/* Checks the chain, commits, releases its pages, starts the next one. */
static void commit(worker *w)
{
	ut_check_chain(w->e, &w->ch);
	ut_log_xact(w->e, w->ch.c.xid, XACT_COMMIT, &w->ch.prev);
	ut_chain_free(w->e, &w->ch);
	ut_chain_init(&w->ch, w->next_xid++);
	w->commits++;
}

static void *work(void *arg)
{
	worker *w = arg;
	ut_mode = UT_THREAD;
	ut_chain_init(&w->ch, w->next_xid++);
	for (int i = 0; i < STEPS; i++) {
		uint64_t r = tu_rand(&w->rng) % 100;
		if (r < 80 || w->ch.n == 0)
			ut_append(w->e, &w->ch, ut_rand_rec(&w->rng));
		else if (r < 90)
			partial_rollback(w);
		else
			commit(w);
	}
	ut_check_chain(w->e, &w->ch);
	return NULL;
}

/* Every block is owned by one chain or free, never both or twice. */
static void check_ownership(ut_env *e, worker *w)
{
	undo_stats st;
	wd_blkno nb;
	uint8_t *seen;
	uint64_t owned = 0;
	assert_int_equal(bufmgr_rel_nblocks(e->pool, UNDO_REL, &nb), 0);
	undo_stats_get(e->u, &st);
	assert_int_equal(st.pages_allocated, nb);
	seen = calloc(nb, 1);
	assert_non_null(seen);
	for (int t = 0; t < THREADS; t++)
		for (uint32_t i = 0; i < w[t].ch.c.npages; i++) {
			assert_true(w[t].ch.c.pages[i] < nb);
			assert_int_equal(seen[w[t].ch.c.pages[i]]++, 0);
			owned++;
		}
	assert_int_equal(owned + st.pages_free, nb);
	free(seen);
}

static void test_threads(void **state)
{
	ut_env e;
	worker w[THREADS];
	pthread_t th[THREADS];
	undo_stats st;
	uint64_t commits = 0;
	(void)state;
	ut_env_create(&e, "undo-conc", 64);
	for (int t = 0; t < THREADS; t++) {
		w[t] = (worker){.e = &e, .next_xid = 1000 * (wd_xid)(t + 1), .rng = 7 + (uint64_t)t};
		assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
	}
	for (int i = 0; i < 1000; i++)
		undo_stats_get(e.u, &st); /* readers of the counters meanwhile */
	for (int t = 0; t < THREADS; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		commits += w[t].commits;
	}
	assert_true(commits > 0);
	undo_stats_get(e.u, &st);
	assert_true(st.pages_reused > 0);
	check_ownership(&e, w);
	for (int t = 0; t < THREADS; t++)
		ut_chain_free(&e, &w[t].ch);
	ut_env_stop(&e, true);
	ut_replay_same(&e, WAL_SEG_HEADER_SIZE, NULL);
	ut_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
