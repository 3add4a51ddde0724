/*
 * test_btree_conc.c - concurrent writers and readers on one B+tree (also
 * run under ThreadSanitizer): four writers insert and delete keys of their
 * own ranges (plainly, and in alternate rounds by position: lookup_pos then
 * insert_at, and update_tid_at on present keys, README P7), emptying whole
 * runs of leaves so that splits and page deletions happen all the time,
 * and all four append ascending keys of one shared tail range by position,
 * so that they contend for the kept rightmost leaf (README P8) while its
 * splits drop it, while two readers look up keys that are
 * stably present and scan with cursors both ways. Readers must never see
 * keys out of order or miss a stable key; at the end the tree holds
 * exactly the union of the writers' models and btree_check is clean.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "btree/btree.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/wal.h"

#define PS 4096u
#define REL 9u
#define WRITERS 4
#define READERS 2
#define RANGE 3000u   /* keys per writer */
#define STABLE 100u   /* every STABLE-th key is stable */
#define ROUNDS 4
#define TAIL 150u     /* tail keys each writer appends a round */
_Static_assert(ROUNDS * TAIL * WRITERS <= RANGE, "the tail range holds every append");

static btree *tree;
static atomic_int writers_left;
static atomic_uint reader_errors;
/* present[WRITERS]: the tail range, key n appended by writer n % WRITERS */
static bool present[WRITERS + 1][RANGE];

/* "w<w>-<n, 8 digits>" then n-dependent padding of 0..90 bytes: ordered by
 * (w, n) whatever the padding. */
static size_t key_of(uint8_t *k, unsigned w, unsigned n)
{
	int len = snprintf((char *)k, 32, "w%u-%08u", w, n);
	size_t pad = (n * 37u) % 91u;
	for (size_t i = 0; i < pad; i++)
		k[len + i] = (uint8_t)('a' + (n + i) % 26);
	return (size_t)len + pad;
}

static bool parse_key(const uint8_t *k, size_t len, unsigned *w, unsigned *n)
{
	char buf[16];
	if (len < 11)
		return false;
	memcpy(buf, k, 11);
	buf[11] = 0;
	return sscanf(buf, "w%u-%8u", w, n) == 2;
}

/* btree_lookup_pos then btree_insert_at (README P7) for an absent key. */
static void positioned_insert(uint8_t *k, unsigned w, unsigned n)
{
	size_t len = key_of(k, w, n);
	btree_pos pos;
	wd_tid got;
	wd_lsn lsn;
	if (btree_lookup_pos(tree, k, len, &got, &pos) != WD_NOTFOUND || pos.found)
		abort();
	if (btree_insert_at(tree, &pos, w + 1, 0, k, len, (wd_tid){n, (uint16_t)w}, &lsn) != 0)
		abort();
}

/* btree_lookup_pos then btree_update_tid_at for a present key. */
static void positioned_update(uint8_t *k, unsigned w, unsigned n)
{
	size_t len = key_of(k, w, n);
	btree_pos pos;
	wd_tid got;
	wd_lsn lsn;
	if (btree_lookup_pos(tree, k, len, &got, &pos) != 0 || !pos.found || got.blk != n)
		abort();
	if (btree_update_tid_at(tree, &pos, w + 1, 0, k, len, (wd_tid){n, (uint16_t)w}, &lsn) != 0)
		abort();
}

static void *writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	uint64_t rs = 1000 + w;
	uint8_t k[128];
	wd_lsn lsn;
	for (int round = 0; round < ROUNDS; round++) {
		for (unsigned i = 0; i < RANGE; i++) {
			unsigned n = (i * 7u + (unsigned)round) % RANGE;
			if (n % STABLE == 0 || present[w][n])
				continue;
			if (round % 2 == 0) {
				if (btree_insert(tree, w + 1, 0, k, key_of(k, w, n),
						 (wd_tid){n, (uint16_t)w}, &lsn) != 0)
					abort();
			} else {
				positioned_insert(k, w, n);
			}
			present[w][n] = true;
		}
		/* the tail: ascending, interleaved with the other writers' */
		for (unsigned j = 0; j < TAIL; j++) {
			unsigned n = ((unsigned)round * TAIL + j) * WRITERS + w;
			positioned_insert(k, WRITERS, n);
			present[WRITERS][n] = true;
		}
		/* repoint present keys (to the same tid, so readers' checks
		 * hold) through positions that other writers' splits and page
		 * deletions may have made stale */
		for (unsigned i = 0; i < RANGE / 4; i++) {
			unsigned n = (unsigned)(tu_rand(&rs) % RANGE);
			if (n % STABLE != 0 && present[w][n])
				positioned_update(k, w, n);
		}
		/* empty the range in random order (last round: keep half of its
		 * first quarter), so runs of leaves empty out and are freed */
		for (unsigned i = 0; i < RANGE * 8; i++) {
			unsigned n = (unsigned)(tu_rand(&rs) % RANGE);
			if (n % STABLE == 0 || !present[w][n] ||
			    (round == ROUNDS - 1 && n < RANGE / 4 && n % 2 == 0))
				continue;
			if (btree_delete(tree, w + 1, 0, k, key_of(k, w, n), NULL, &lsn) != 0)
				abort();
			present[w][n] = false;
		}
	}
	atomic_fetch_sub(&writers_left, 1);
	return NULL;
}

/* A cursor run of up to 300 keys from a random key: order must be strict
 * and no stable key may be skipped between two consecutive keys. */
static void reader_scan(uint64_t *rs, int dir)
{
	btree_cursor *c;
	uint8_t k[128], prev[128];
	size_t prev_len = 0;
	unsigned pw = 0, pn = 0;
	const void *ck;
	size_t cl;
	wd_tid tid;
	if (btree_cursor_open(tree, &c) != 0)
		abort();
	unsigned w0 = (unsigned)(tu_rand(rs) % WRITERS), n0 = (unsigned)(tu_rand(rs) % RANGE);
	if (btree_cursor_seek(c, k, key_of(k, w0, n0), dir) != 0)
		abort();
	for (int i = 0; i < 300 && btree_cursor_next(c, &ck, &cl, &tid) == 0; i++) {
		unsigned w, n;
		if (!parse_key(ck, cl, &w, &n) || tid.blk != n || tid.slot != w)
			atomic_fetch_add(&reader_errors, 1);
		if (i > 0) {
			int cmp = memcmp(prev, ck, prev_len < cl ? prev_len : cl);
			if (cmp == 0)
				cmp = prev_len < cl ? -1 : prev_len > cl;
			if (cmp * dir >= 0)
				atomic_fetch_add(&reader_errors, 1); /* out of order */
			unsigned lo = dir > 0 ? pn : n, hi = dir > 0 ? n : pn;
			if (w == pw && w < WRITERS && hi > lo &&
			    (hi - 1) / STABLE * STABLE > lo)
				atomic_fetch_add(&reader_errors, 1); /* a stable key missed */
		}
		memcpy(prev, ck, cl);
		prev_len = cl;
		pw = w;
		pn = n;
	}
	btree_cursor_close(c);
}

static void *reader(void *arg)
{
	uint64_t rs = 77 + (uintptr_t)arg;
	uint8_t k[128];
	while (atomic_load(&writers_left) > 0) {
		unsigned w = (unsigned)(tu_rand(&rs) % WRITERS);
		unsigned n = (unsigned)(tu_rand(&rs) % (RANGE / STABLE)) * STABLE;
		wd_tid tid;
		if (btree_lookup(tree, k, key_of(k, w, n), &tid) != 0 || tid.blk != n)
			atomic_fetch_add(&reader_errors, 1);
		reader_scan(&rs, tu_rand(&rs) % 2 ? BT_FORWARD : BT_BACKWARD);
	}
	return NULL;
}

static void test_concurrent_writers_readers(void **state)
{
	char *root = tu_tmpdir("btree-conc"), *db = tu_path(root, "db");
	char *base = tu_path(db, "base"), path[4096];
	pthread_t wt[WRITERS], rt[READERS];
	btree_check_report r;
	wal_log_ctx log = {0};
	bufmgr_opts bo;
	bufmgr *pool;
	wal_opts o;
	uint8_t k[128];
	wd_lsn lsn;
	wal *w;
	(void)state;
	assert_int_equal(storage_mkdir(db), 0);
	assert_int_equal(storage_mkdir(base), 0);
	tw_opts(&o);
	o.page_size = PS;
	o.segment_size = 16u << 20;
	o.buffers_bytes = 1u << 20;
	o.no_writer_thread = false;
	assert_int_equal(wal_create(db, &o, &w), 0);
	bufmgr_opts_default(&bo);
	bo.page_size = PS;
	bo.pool_bytes = 4096ull * PS;
	assert_int_equal(bufmgr_create(&bo, &pool), 0);
	bufmgr_set_wal_hook(pool, wal_bufmgr_hook, w);
	snprintf(path, sizeof path, "%s/%u", base, REL);
	assert_int_equal(bufmgr_rel_open(pool, REL, path, BM_REL_CREATE), 0);
	log.w = w;
	log.full_page_writes = true;
	log.page_size = PS;
	assert_int_equal(btree_create(pool, REL, &log, &tree), 0);
	for (unsigned ww = 0; ww < WRITERS; ww++) /* the stable keys */
		for (unsigned n = 0; n < RANGE; n += STABLE) {
			assert_int_equal(btree_insert(tree, 1, 0, k, key_of(k, ww, n),
						      (wd_tid){n, (uint16_t)ww}, &lsn), 0);
			present[ww][n] = true;
		}
	atomic_store(&writers_left, WRITERS);
	for (uintptr_t i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&rt[i], NULL, reader, (void *)i), 0);
	for (uintptr_t i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&wt[i], NULL, writer, (void *)i), 0);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(wt[i], NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(rt[i], NULL);
	assert_int_equal(atomic_load(&reader_errors), 0);
	if (btree_check(tree, &r) != 0)
		fail_msg("btree_check: %s (blk %u item %d)", r.msg, r.bad_blk, r.bad_item);
	assert_true(r.height >= 2);
	assert_true(r.free_pages > 10); /* emptied pages were reclaimed */
	/* the tree is the union of the writers' models, in order */
	btree_cursor *c;
	const void *ck;
	size_t cl, expect = 0, seen = 0;
	wd_tid tid;
	for (unsigned ww = 0; ww <= WRITERS; ww++)
		for (unsigned n = 0; n < RANGE; n++)
			expect += present[ww][n];
	assert_int_equal(btree_cursor_open(tree, &c), 0);
	assert_int_equal(btree_cursor_seek(c, NULL, 0, BT_FORWARD), 0);
	for (unsigned ww = 0; ww <= WRITERS; ww++)
		for (unsigned n = 0; n < RANGE; n++) {
			if (!present[ww][n])
				continue;
			assert_int_equal(btree_cursor_next(c, &ck, &cl, &tid), 0);
			assert_int_equal(cl, key_of(k, ww, n));
			assert_memory_equal(ck, k, cl);
			seen++;
		}
	assert_int_equal(btree_cursor_next(c, &ck, &cl, &tid), WD_NOTFOUND);
	btree_cursor_close(c);
	assert_int_equal(seen, expect);
	assert_int_equal(r.items, expect);
	assert_true(btree_rightmost_hits(tree) > 0);
	if (getenv("BT_DEBUG"))
		print_message("rightmost hits %llu\n", (unsigned long long)btree_rightmost_hits(tree));
	btree_close(tree);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_destroy(pool);
	assert_int_equal(wal_close(w), 0);
	tu_rmrf(root);
	free(root);
	free(db);
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_writers_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
