/*
 * test_bufmgr_conc.c - the buffer pool under several threads (also run under
 * ThreadSanitizer): eviction under pressure with a data set many times the
 * pool while some pages stay pinned for long; writers, shared counters and a
 * checkpointer at once; every page right at the end; statistics add up.
 *
 * Worker threads never call cmocka asserts (they are not thread-safe): they
 * count failures, and the main thread asserts the counts are zero.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bufmgr/bufmgr.h"
#include "bufmgr/bufmgr_internal.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "tests/lib/testutil.h"

#define PS 4096u
#define REL 3u
#define NTHREADS 6
#define PATTERN 256u /* bytes of (blk, version) pattern checked per page */

/* Fewer iterations under the sanitizers, which are 5-20x slower. */
#if defined(__SANITIZE_THREAD__)
#define ITERS 50000
#elif defined(__SANITIZE_ADDRESS__)
#define ITERS 100000
#else
#define ITERS 200000
#endif

static char *dir;
static char *relpath;

static int setup(void **state)
{
	(void)state;
	dir = tu_tmpdir("bufmgr-conc");
	relpath = tu_path(dir, "rel3");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	free(relpath);
	free(dir);
	return 0;
}

/* ---- page contents ----
 * [32] u32 blk  [36] u32 version  [40] u64 counter  [48..48+PATTERN) bytes
 * derived from (blk, version). */

static void set_page(uint8_t *p, wd_blkno blk, uint32_t ver, uint64_t counter,
		     wd_lsn lsn)
{
	page_init(p, PS, PAGE_KIND_RAW, 0);
	page_set_lsn(p, lsn);
	put_le32(p + 32, blk);
	put_le32(p + 36, ver);
	put_le64(p + 40, counter);
	for (uint32_t i = 0; i < PATTERN; i++)
		p[48 + i] = (uint8_t)(blk * 13u + ver * 101u + i);
}

/* true if p is a complete page of blk (any version). */
static bool page_whole(const uint8_t *p, wd_blkno blk)
{
	uint32_t ver = get_le32(p + 36);
	if (get_le32(p + 32) != blk)
		return false;
	for (uint32_t i = 0; i < PATTERN; i++)
		if (p[48 + i] != (uint8_t)(blk * 13u + ver * 101u + i))
			return false;
	return true;
}

/* A stand-in WAL: an insert position, and a hook that checks it is never
 * asked to flush past what was inserted. */
static _Atomic uint64_t wal_insert = 1;
static _Atomic uint64_t wal_calls, wal_bad;

static int wal_hook(void *arg, wd_lsn upto)
{
	(void)arg;
	atomic_fetch_add(&wal_calls, 1);
	if (upto == 0 || upto > atomic_load(&wal_insert))
		atomic_fetch_add(&wal_bad, 1);
	return 0;
}

static bufmgr *make_pool(uint32_t npages)
{
	bufmgr_opts o;
	bufmgr *pool = NULL;
	bufmgr_opts_default(&o);
	o.page_size = PS;
	o.pool_bytes = (uint64_t)npages * PS;
	assert_int_equal(bufmgr_create(&o, &pool), 0);
	assert_int_equal(bufmgr_rel_open(pool, REL, relpath, BM_REL_CREATE), 0);
	bufmgr_set_wal_hook(pool, wal_hook, NULL);
	atomic_store(&wal_calls, 0); /* counts this pool's hook calls */
	return pool;
}

/* Creates n pages of version 0 through the pool, then flushes. */
static void populate(bufmgr *pool, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		bm_buf *b;
		wd_blkno blk;
		assert_int_equal(bufmgr_extend(pool, REL, &blk, &b), 0);
		assert_int_equal(blk, i);
		set_page(bufmgr_page(b), blk, 0, 0, atomic_fetch_add(&wal_insert, 1));
		bufmgr_mark_dirty(b, page_lsn(bufmgr_page(b)));
		bufmgr_unlatch(b);
		bufmgr_unpin(pool, b);
	}
	assert_int_equal(bufmgr_flush_all(pool), 0);
}

/* The statistics equations once every thread has joined. */
static void check_stats(bufmgr *pool, const bm_stats *before, uint64_t pins)
{
	bm_stats s;
	bufmgr_stats(pool, &s);
	assert_int_equal(s.pinned, 0);
	assert_int_equal(s.failed_pins, before->failed_pins);
	assert_int_equal((s.hits - before->hits) + (s.misses - before->misses), pins);
	assert_int_equal(s.misses + s.read_errors, s.reads + s.zero_fills);
	assert_int_equal(s.evictions + s.free_used, s.reads + s.zero_fills);
	assert_int_equal(s.evict_writes + s.flush_writes, s.writes + s.write_errors);
	assert_int_equal(s.wal_flushes, s.writes + s.write_errors);
	assert_int_equal(s.wal_flushes, atomic_load(&wal_calls));
	assert_true(s.evictions - before->evictions > pins / 4); /* real pressure */
}

/* ---- test 1: readers, writers, counters, long pins, a checkpointer ---- */

#define NPAGES 384u /* 8x the pool of 48 */
#define POOL1 48u
#define OWNED(p) ((p) % 8u < NTHREADS) /* else a shared counter page */

struct worker {
	bufmgr *pool;
	int id;
	uint64_t seed;
	uint32_t version[NPAGES]; /* of the pages this thread owns */
	uint64_t increments, pins, errors;
	bm_buf *held[2];
	wd_blkno held_blk[2];
	char msg[160];
};

static atomic_bool stop_checkpointer;

static void wfail(struct worker *w, const char *what, wd_blkno blk, int rc)
{
	if (!w->errors++)
		snprintf(w->msg, sizeof w->msg, "thread %d: %s blk %u rc %d (%s)",
			 w->id, what, blk, rc, wd_last_error());
}

/* Pins blk, counting the call; records a failure. NULL on error. */
static bm_buf *wpin(struct worker *w, wd_blkno blk)
{
	bm_buf *b = NULL;
	int rc = bufmgr_pin(w->pool, REL, blk, BM_READ, &b);
	w->pins++;
	if (rc != 0) {
		wfail(w, "pin", blk, rc);
		return NULL;
	}
	if (bufmgr_buf_blkno(b) != blk)
		wfail(w, "pinned buffer has the wrong tag", blk, 0);
	return b;
}

/* A long-held pin must keep its identity whatever the others evict. */
static void check_held(struct worker *w)
{
	for (int i = 0; i < 2; i++) {
		if (!w->held[i])
			continue;
		bufmgr_latch(w->held[i], BM_SHARE);
		if (bufmgr_buf_blkno(w->held[i]) != w->held_blk[i] ||
		    !page_whole(bufmgr_page(w->held[i]), w->held_blk[i]))
			wfail(w, "held page changed identity", w->held_blk[i], 0);
		bufmgr_unlatch(w->held[i]);
	}
}

static void op_read(struct worker *w, wd_blkno blk)
{
	bm_buf *b = wpin(w, blk);
	if (!b)
		return;
	bufmgr_latch(b, BM_SHARE);
	if (!page_whole(bufmgr_page(b), blk))
		wfail(w, "torn or foreign page", blk, 0);
	bufmgr_unlatch(b);
	bufmgr_unpin(w->pool, b);
}

/* Rewrites one of our own pages as its next version, or adds one to a
 * shared counter page: both under the exclusive latch. */
static void op_write(struct worker *w, wd_blkno blk)
{
	bm_buf *b = wpin(w, blk);
	uint8_t *p;
	if (!b)
		return;
	bufmgr_latch(b, BM_EXCL);
	p = bufmgr_page(b);
	if (!page_whole(p, blk))
		wfail(w, "torn page before write", blk, 0);
	if (OWNED(blk)) {
		if (get_le32(p + 36) != w->version[blk])
			wfail(w, "lost update of own page", blk, 0);
		w->version[blk]++;
		set_page(p, blk, w->version[blk], 0, atomic_fetch_add(&wal_insert, 1));
	} else {
		put_le64(p + 40, get_le64(p + 40) + 1);
		page_set_lsn(p, atomic_fetch_add(&wal_insert, 1));
		w->increments++;
	}
	bufmgr_mark_dirty(b, page_lsn(p));
	bufmgr_unlatch(b);
	bufmgr_unpin(w->pool, b);
}

/* Replaces one long-held pin with a pin on a random page. */
static void op_hold(struct worker *w, wd_blkno blk)
{
	int i = (int)(tu_rand(&w->seed) & 1);
	if (w->held[i])
		bufmgr_unpin(w->pool, w->held[i]);
	w->held[i] = wpin(w, blk);
	w->held_blk[i] = blk;
}

static wd_blkno own_page(struct worker *w)
{
	wd_blkno k = (wd_blkno)(tu_rand(&w->seed) % (NPAGES / 8));
	return k * 8 + (wd_blkno)w->id;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int it = 0; it < ITERS; it++) {
		unsigned op = (unsigned)(tu_rand(&w->seed) % 20);
		wd_blkno any = (wd_blkno)(tu_rand(&w->seed) % NPAGES);
		if (op < 11)
			op_read(w, any);
		else if (op < 15)
			op_write(w, own_page(w));
		else if (op < 19)
			op_write(w, (wd_blkno)((any & ~7u) + 6 + (any & 1)));
		else
			op_hold(w, any);
		if (it % 16 == 0)
			check_held(w);
	}
	for (int i = 0; i < 2; i++)
		if (w->held[i])
			bufmgr_unpin(w->pool, w->held[i]);
	return NULL;
}

/* Checkpoints over and over while the workers run. */
static int count_dirty(void *arg, wd_relid rel, wd_blkno blk, wd_lsn rec)
{
	(void)rel;
	if (blk >= NPAGES || rec == 0)
		return WD_EINVAL;
	(*(uint64_t *)arg)++;
	return 0;
}

static void *checkpointer_main(void *arg)
{
	bufmgr *pool = arg;
	uint64_t *errors = calloc(1, sizeof *errors);
	while (!atomic_load(&stop_checkpointer)) {
		uint64_t n = 0;
		if (bufmgr_dirty_pages(pool, count_dirty, &n) != 0 ||
		    bufmgr_flush_all(pool) != 0)
			(*errors)++;
	}
	return errors;
}

/* Verifies every page from a cold pool: own pages at their last version,
 * counters summing to the increments made. */
static void verify_all(struct worker *ws, uint64_t increments)
{
	bufmgr *pool = make_pool(POOL1);
	uint64_t sum = 0;
	for (wd_blkno blk = 0; blk < NPAGES; blk++) {
		bm_buf *b;
		assert_int_equal(bufmgr_pin(pool, REL, blk, BM_READ, &b), 0);
		assert_true(page_whole(bufmgr_page(b), blk));
		if (OWNED(blk))
			assert_int_equal(get_le32(bufmgr_page(b) + 36),
					 ws[blk % 8].version[blk]);
		else
			sum += get_le64(bufmgr_page(b) + 40);
		bufmgr_unpin(pool, b);
	}
	assert_int_equal(sum, increments);
	bufmgr_destroy(pool);
}

static void test_threads_with_checkpointer(void **state)
{
	bufmgr *pool = make_pool(POOL1);
	struct worker *ws = calloc(NTHREADS, sizeof *ws);
	pthread_t th[NTHREADS], ckpt;
	uint64_t pins = 0, increments = 0, *ckpt_errors;
	bm_stats before;
	(void)state;
	populate(pool, NPAGES);
	bufmgr_stats(pool, &before);
	atomic_store(&stop_checkpointer, false);
	assert_int_equal(pthread_create(&ckpt, NULL, checkpointer_main, pool), 0);
	for (int i = 0; i < NTHREADS; i++) {
		ws[i] = (struct worker){.pool = pool, .id = i, .seed = 1000u + (uint64_t)i};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &ws[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (ws[i].errors)
			fail_msg("%s (%llu errors)", ws[i].msg,
				 (unsigned long long)ws[i].errors);
		pins += ws[i].pins;
		increments += ws[i].increments;
	}
	atomic_store(&stop_checkpointer, true);
	assert_int_equal(pthread_join(ckpt, (void **)&ckpt_errors), 0);
	assert_int_equal(*ckpt_errors, 0);
	free(ckpt_errors);
	assert_int_equal(atomic_load(&wal_bad), 0);
	check_stats(pool, &before, pins);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_destroy(pool);
	verify_all(ws, increments);
	free(ws);
}

/* ---- test 2: a tiny pool, read-only data, pages pinned throughout ---- */

#define POOL2 16u
#define NPAGES2 256u
#define HOLD 6 /* pages the holder keeps pinned: 6 + 4 readers < 16 */

struct reader {
	bufmgr *pool;
	uint64_t seed, pins, errors;
	char msg[160];
};

/* Random reads over a hot set twice the pool (so several threads miss on
 * the same page at once) and over the whole data set. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	for (int it = 0; it < ITERS; it++) {
		uint64_t x = tu_rand(&r->seed);
		wd_blkno blk = (wd_blkno)((x & 1) ? (x >> 1) % (2 * POOL2)
						  : (x >> 1) % NPAGES2);
		bm_buf *b = NULL;
		int rc = bufmgr_pin(r->pool, REL, blk, BM_READ, &b);
		r->pins++;
		if (rc != 0 || bufmgr_buf_blkno(b) != blk ||
		    !page_whole(bufmgr_page(b), blk)) {
			if (!r->errors++)
				snprintf(r->msg, sizeof r->msg, "blk %u rc %d %s", blk,
					 rc, wd_last_error());
			if (rc == 0)
				bufmgr_unpin(r->pool, b);
			continue;
		}
		bufmgr_unpin(r->pool, b);
	}
	return NULL;
}

static void test_pinned_pages_survive_pressure(void **state)
{
	bufmgr *pool = make_pool(POOL2);
	struct reader rs[4];
	pthread_t th[4];
	bm_buf *held[HOLD];
	uint8_t *snap[HOLD];
	uint64_t pins = 0;
	bm_stats before;
	(void)state;
	populate(pool, NPAGES2);
	for (int i = 0; i < HOLD; i++) {
		assert_int_equal(bufmgr_pin(pool, REL, (wd_blkno)(100 + 7 * i),
					    BM_READ, &held[i]), 0);
		snap[i] = malloc(PS);
		memcpy(snap[i], bufmgr_page(held[i]), PS);
	}
	bufmgr_stats(pool, &before);
	for (int i = 0; i < 4; i++) {
		rs[i] = (struct reader){.pool = pool, .seed = 77u + (uint64_t)i};
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rs[i]), 0);
	}
	for (int round = 0; round < 50; round++) /* check while they run */
		for (int i = 0; i < HOLD; i++) {
			assert_int_equal(bufmgr_buf_blkno(held[i]), 100 + 7 * i);
			bufmgr_latch(held[i], BM_SHARE);
			assert_memory_equal(bufmgr_page(held[i]), snap[i], PS);
			bufmgr_unlatch(held[i]);
		}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (rs[i].errors)
			fail_msg("reader %d: %s", i, rs[i].msg);
		pins += rs[i].pins;
	}
	for (int i = 0; i < HOLD; i++) {
		assert_memory_equal(bufmgr_page(held[i]), snap[i], PS);
		bufmgr_unpin(pool, held[i]);
		free(snap[i]);
	}
	check_stats(pool, &before, pins);
	bufmgr_destroy(pool);
}

/* ---- drop_rel against a flush in progress ---- */

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_cv = PTHREAD_COND_INITIALIZER;
static bool hook_blocks, hook_entered;

/* A WAL hook that, while hook_blocks is set, parks the writer inside the
 * write-out (buffer pinned, I/O flagged) until the test lets it go. */
static int parking_hook(void *arg, wd_lsn upto)
{
	(void)arg;
	(void)upto;
	pthread_mutex_lock(&hook_mu);
	hook_entered = true;
	pthread_cond_broadcast(&hook_cv);
	while (hook_blocks)
		pthread_cond_wait(&hook_cv, &hook_mu);
	pthread_mutex_unlock(&hook_mu);
	return 0;
}

static void *flush_main(void *arg)
{
	return (void *)(intptr_t)bufmgr_flush_all(arg);
}

static void *drop_main(void *arg)
{
	return (void *)(intptr_t)bufmgr_drop_rel(arg, REL);
}

/*
 * bufmgr_drop_rel must not return 0 while a flush is writing one of the
 * relation's pages: after drop returns the caller may truncate or close the
 * file, and the write would land in it (or in freed memory). The race is
 * forced: drop claims the buffer, is held at the partition lock, a flush
 * pins the same buffer and parks in its WAL hook, then drop goes on.
 */
static void test_drop_waits_for_flush_in_progress(void **state)
{
	bufmgr *pool = make_pool(32);
	pthread_mutex_t *part;
	pthread_t flusher, dropper;
	bm_buf *b;
	void *ret;
	bm_stats st;
	(void)state;
	populate(pool, 4);
	assert_int_equal(bufmgr_pin(pool, REL, 2, BM_READ, &b), 0);
	bufmgr_latch(b, BM_EXCL);
	set_page(bufmgr_page(b), 2, 1, 1, atomic_fetch_add(&wal_insert, 1));
	bufmgr_mark_dirty(b, page_lsn(bufmgr_page(b)));
	bufmgr_unlatch(b);
	bufmgr_unpin(pool, b);
	bufmgr_set_wal_hook(pool, parking_hook, NULL);
	hook_blocks = true;
	hook_entered = false;
	part = bm_part_lock(pool, bm_tag_hash((bm_tag){REL, 2}));
	pthread_mutex_lock(part); /* holds drop between its claim and forget */
	assert_int_equal(pthread_create(&dropper, NULL, drop_main, pool), 0);
	while (BM_REFS(atomic_load(&b->state)) != 1) /* drop claimed block 2 */
		sched_yield();
	assert_int_equal(pthread_create(&flusher, NULL, flush_main, pool), 0);
	pthread_mutex_lock(&hook_mu);
	while (!hook_entered)
		pthread_cond_wait(&hook_cv, &hook_mu);
	pthread_mutex_unlock(&hook_mu);
	pthread_mutex_unlock(part);
	/* the flusher holds block 2 pinned mid-write: drop must not succeed */
	assert_int_equal(pthread_join(dropper, &ret), 0);
	assert_int_equal((int)(intptr_t)ret, WD_EBUSY);
	pthread_mutex_lock(&hook_mu);
	hook_blocks = false;
	pthread_cond_broadcast(&hook_cv);
	pthread_mutex_unlock(&hook_mu);
	assert_int_equal(pthread_join(flusher, &ret), 0);
	assert_int_equal((int)(intptr_t)ret, 0);
	assert_int_equal(bufmgr_drop_rel(pool, REL), 0);
	bufmgr_stats(pool, &st);
	assert_int_equal(st.valid, 0);
	assert_int_equal(st.pinned, 0);
	bufmgr_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_threads_with_checkpointer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinned_pages_survive_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_waits_for_flush_in_progress, setup, teardown),
	};
	return cmocka_run_group_tests_name("bufmgr_conc", tests, NULL, NULL);
}
