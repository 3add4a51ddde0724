/*
 * test_btree.c - the B+tree against an in-memory sorted model: randomized
 * insert/delete/lookup/update_tid and cursor scans both ways from random
 * keys over several seeds, with btree_check after every batch; key limits
 * and duplicates; root splits and height shrink; page reuse when a tree
 * grows, shrinks and grows again; redo rebuilding the same pages, twice;
 * full-page images repairing torn pages after a redo point; positioned
 * changes (lookup_pos, then insert_at / update_tid_at) with positions made
 * stale by splits, deletes and page reuse; the kept rightmost leaf used by
 * a sequential load and not when stale; bt_ops_fit never promising an
 * in-place change that bt_ops_apply would refuse.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "btree/bt_internal.h"
#include "btree/btree.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tests/lib/redotest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/reader.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define PS 4096u
#define REL 7u
#define MAXK (PS / 8)

/* ---- environment: a database directory with WAL, pool and tree ---- */

typedef struct env {
	char *root, *db;
	wal_opts o;
	wal *w;
	bufmgr *pool;
	wal_log_ctx log;
	btree *t;
	uint64_t xid;
} env;

static char *relpath(const char *db)
{
	char *p = malloc(strlen(db) + 32);
	sprintf(p, "%s/base/%u", db, REL);
	return p;
}

static void env_open(env *e, const char *tag, uint32_t pool_pages)
{
	bufmgr_opts bo;
	char *base, *rp;
	memset(e, 0, sizeof *e);
	assert_int_equal(btree_rmgr_register(), 0);
	e->root = tu_tmpdir(tag);
	e->db = tu_path(e->root, "db");
	base = tu_path(e->db, "base");
	assert_int_equal(storage_mkdir(e->db), 0);
	assert_int_equal(storage_mkdir(base), 0);
	tw_opts(&e->o);
	e->o.page_size = PS;
	e->o.segment_size = 16u << 20;
	e->o.buffers_bytes = 1u << 20;
	assert_int_equal(wal_create(e->db, &e->o, &e->w), 0);
	bufmgr_opts_default(&bo);
	bo.page_size = PS;
	bo.pool_bytes = (uint64_t)pool_pages * PS;
	assert_int_equal(bufmgr_create(&bo, &e->pool), 0);
	bufmgr_set_wal_hook(e->pool, wal_bufmgr_hook, e->w);
	rp = relpath(e->db);
	assert_int_equal(bufmgr_rel_open(e->pool, REL, rp, BM_REL_CREATE), 0);
	e->log.w = e->w;
	e->log.full_page_writes = true;
	e->log.page_size = PS;
	if (btree_create(e->pool, REL, &e->log, &e->t) != 0)
		fail_msg("btree_create: %s", wd_last_error());
	free(base);
	free(rp);
}

/* Clean shutdown: every page written, the log flushed and closed. */
static void env_close(env *e, bool remove)
{
	btree_close(e->t);
	assert_int_equal(bufmgr_flush_all(e->pool), 0);
	bufmgr_destroy(e->pool);
	assert_int_equal(wal_close(e->w), 0);
	if (remove)
		tu_rmrf(e->root);
	if (remove) {
		free(e->root);
		free(e->db);
	}
}

static void env_free(env *e)
{
	tu_rmrf(e->root);
	free(e->root);
	free(e->db);
}

static void check_clean(btree *t, btree_check_report *r)
{
	int rc = btree_check(t, r);
	if (rc)
		fail_msg("btree_check: %s (blk %u item %d)", r->msg, r->bad_blk, r->bad_item);
}

/* ---- the model: a sorted array of keys ---- */

typedef struct mkey {
	uint8_t k[MAXK];
	uint16_t len;
	wd_tid tid;
} mkey;

typedef struct model {
	mkey *a;
	size_t n, cap;
} model;

static int kcmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	size_t n = al < bl ? al : bl;
	int c = n ? memcmp(a, b, n) : 0;
	return c ? c : (al < bl ? -1 : al > bl);
}

/* First index with key >= k. */
static size_t m_lower(const model *m, const uint8_t *k, size_t len)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (kcmp(m->a[mid].k, m->a[mid].len, k, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool m_find(const model *m, const uint8_t *k, size_t len, size_t *at)
{
	*at = m_lower(m, k, len);
	return *at < m->n && kcmp(m->a[*at].k, m->a[*at].len, k, len) == 0;
}

static void m_insert(model *m, size_t at, const uint8_t *k, size_t len, wd_tid tid)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 1024;
		m->a = realloc(m->a, m->cap * sizeof *m->a);
	}
	memmove(&m->a[at + 1], &m->a[at], (m->n - at) * sizeof *m->a);
	memcpy(m->a[at].k, k, len);
	m->a[at].len = (uint16_t)len;
	m->a[at].tid = tid;
	m->n++;
}

static void m_remove(model *m, size_t at)
{
	memmove(&m->a[at], &m->a[at + 1], (m->n - at - 1) * sizeof *m->a);
	m->n--;
}

/* A random key of 1..MAXK bytes sharing one of a few prefixes; mostly short
 * so that pages hold many keys, sometimes up to the limit. */
static size_t gen_key(uint64_t *rs, uint8_t *k)
{
	static const char *pre[] = {"", "a", "user:", "user:1", "zz\xff", "order/2024/"};
	const char *p = pre[tu_rand(rs) % 6];
	size_t plen = strlen(p), len;
	uint64_t r = tu_rand(rs) % 100;
	len = r < 50 ? 1 + tu_rand(rs) % 40 : r < 85 ? 1 + tu_rand(rs) % 200 : 1 + tu_rand(rs) % MAXK;
	if (len < plen)
		len = plen ? plen : 1;
	memcpy(k, p, plen);
	for (size_t i = plen; i < len; i++)
		k[i] = (uint8_t)("abcdefgh\x00\xfe"[tu_rand(rs) % 10]);
	return len;
}

/* ---- comparing scans ---- */

/* Checks up to steps keys of a cursor from (k, dir) against the model. */
static void scan_compare(btree *t, const model *m, const uint8_t *k, size_t len, int dir,
			 size_t steps)
{
	btree_cursor *c;
	const void *ck;
	size_t cl, i, found_at;
	wd_tid tid;
	int64_t at;
	assert_int_equal(btree_cursor_open(t, &c), 0);
	assert_int_equal(btree_cursor_seek(c, k, len, dir), 0);
	if (!k)
		at = dir > 0 ? 0 : (int64_t)m->n - 1;
	else if (dir > 0)
		at = (int64_t)m_lower(m, k, len);
	else
		at = m_find(m, k, len, &found_at) ? (int64_t)found_at
						    : (int64_t)m_lower(m, k, len) - 1;
	for (i = 0; i < steps; i++, at += dir) {
		int rc = btree_cursor_next(c, &ck, &cl, &tid);
		if (at < 0 || at >= (int64_t)m->n) {
			assert_int_equal(rc, WD_NOTFOUND);
			break;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(cl, m->a[at].len);
		assert_memory_equal(ck, m->a[at].k, cl);
		assert_int_equal(tid.blk, m->a[at].tid.blk);
		assert_int_equal(tid.slot, m->a[at].tid.slot);
	}
	btree_cursor_close(c);
}

/* ---- tests ---- */

/* One seed of random operations against the model. */
static void run_random(uint64_t seed, size_t nops)
{
	env e;
	model m = {0};
	uint64_t rs = seed;
	uint8_t k[MAXK];
	btree_check_report r;
	wd_lsn lsn;
	uint32_t max_height = 0;
	/* a position from an earlier lookup, used by a later insert or update
	 * after whatever ops came between (stale or not: same results) */
	btree_pos pend;
	uint8_t pk[MAXK];
	size_t plen = 0;
	bool have_pend = false;
	env_open(&e, "btree-rand", 2048);
	for (size_t op = 1; op <= nops; op++) {
		uint64_t dice = tu_rand(&rs) % 100;
		size_t at, len;
		wd_tid tid = {(wd_blkno)(tu_rand(&rs) % 100000), (uint16_t)op};
		bool in;
		/* delete existing keys often enough that leaves empty out */
		bool grow = op % 10000 < 6000;
		uint64_t ins = grow ? 70 : 10, del = ins + (grow ? 10 : 70);
		if (dice < ins && have_pend && op % 2) {
			in = m_find(&m, pk, plen, &at);
			assert_int_equal(btree_insert_at(e.t, &pend, 1, 0, pk, plen, tid, &lsn),
					 in ? WD_EEXIST : 0);
			if (!in)
				m_insert(&m, at, pk, plen, tid);
			have_pend = false;
		} else if (dice < ins) {
			len = gen_key(&rs, k);
			in = m_find(&m, k, len, &at);
			assert_int_equal(btree_insert(e.t, 1, 0, k, len, tid, &lsn),
					 in ? WD_EEXIST : 0);
			if (!in)
				m_insert(&m, at, k, len, tid);
		} else if (dice < del && m.n) {
			at = tu_rand(&rs) % m.n;
			wd_tid old;
			assert_int_equal(btree_delete(e.t, 1, 0, m.a[at].k, m.a[at].len, &old, &lsn), 0);
			assert_int_equal(old.blk, m.a[at].tid.blk);
			m_remove(&m, at);
		} else if (dice < del + 7 && have_pend && op % 2) {
			in = m_find(&m, pk, plen, &at);
			assert_int_equal(btree_update_tid_at(e.t, &pend, 1, 0, pk, plen, tid, &lsn),
					 in ? 0 : WD_NOTFOUND);
			if (in)
				m.a[at].tid = tid;
			have_pend = false;
		} else if (dice < del + 7 && m.n) {
			at = tu_rand(&rs) % m.n;
			assert_int_equal(btree_update_tid(e.t, 1, 0, m.a[at].k, m.a[at].len, tid, &lsn), 0);
			m.a[at].tid = tid;
		} else {
			len = gen_key(&rs, k);
			in = m_find(&m, k, len, &at);
			wd_tid got;
			int rc = btree_lookup_pos(e.t, k, len, &got, &pend);
			assert_int_equal(rc, in ? 0 : WD_NOTFOUND);
			assert_int_equal(pend.found, in);
			if (in)
				assert_int_equal(got.slot, m.a[at].tid.slot);
			memcpy(pk, k, len);
			plen = len;
			have_pend = true;
		}
		if (op % 1000 == 0) {
			check_clean(e.t, &r);
			assert_int_equal(r.items, m.n);
			if (getenv("BT_DEBUG"))
				print_message("op %zu items %llu pages %llu height %u free %llu\n", op,
					      (unsigned long long)r.items, (unsigned long long)r.pages,
					      r.height, (unsigned long long)r.free_pages);
			if (r.height > max_height)
				max_height = r.height;
			scan_compare(e.t, &m, NULL, 0, BT_FORWARD, m.n + 1);
			scan_compare(e.t, &m, NULL, 0, BT_BACKWARD, m.n + 1);
			for (int s = 0; s < 20; s++) {
				len = gen_key(&rs, k);
				scan_compare(e.t, &m, k, len, s % 2 ? BT_BACKWARD : BT_FORWARD, 60);
			}
		}
	}
	if (max_height < 3) /* several levels were exercised */
		fail_msg("height only %u", max_height);
	env_close(&e, true);
	free(m.a);
}

static void test_random_vs_model(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 4; seed++)
		run_random(tu_seed(seed * 7919), 20000);
}

/* Key limits and uniqueness. */
static void test_limits(void **state)
{
	env e;
	uint8_t k[MAXK + 1];
	wd_tid tid = {1, 2}, got;
	wd_lsn lsn;
	btree_cursor *c;
	(void)state;
	env_open(&e, "btree-lim", 256);
	memset(k, 'x', sizeof k);
	assert_int_equal(btree_max_key(e.t), MAXK);
	assert_int_equal(btree_insert(e.t, 1, 0, k, MAXK + 1, tid, &lsn), WD_ETOOBIG);
	assert_int_equal(btree_lookup(e.t, k, MAXK + 1, &got), WD_ETOOBIG);
	assert_int_equal(btree_cursor_open(e.t, &c), 0);
	assert_int_equal(btree_cursor_seek(c, k, MAXK + 1, BT_FORWARD), WD_ETOOBIG);
	btree_cursor_close(c);
	assert_int_equal(btree_insert(e.t, 1, 0, k, MAXK, tid, &lsn), 0);
	assert_int_equal(btree_insert(e.t, 1, 0, k, MAXK, tid, &lsn), WD_EEXIST);
	assert_int_equal(btree_insert(e.t, 1, 0, "", 0, tid, &lsn), 0);
	assert_int_equal(btree_lookup(e.t, "", 0, &got), 0);
	assert_int_equal(btree_delete(e.t, 1, 0, "nope", 4, NULL, &lsn), WD_NOTFOUND);
	assert_int_equal(btree_update_tid(e.t, 1, 0, "nope", 4, tid, &lsn), WD_NOTFOUND);
	assert_int_equal(btree_lookup(e.t, k, MAXK, &got), 0);
	assert_int_equal(got.blk, 1);
	assert_int_equal(got.slot, 2);
	env_close(&e, true);
}

/* Fixed-width keys "key-%06u" padded to len bytes. */
static size_t num_key(uint8_t *k, unsigned n, size_t len)
{
	int w = snprintf((char *)k, MAXK, "key-%06u", n);
	for (size_t i = (size_t)w; i < len; i++)
		k[i] = (uint8_t)('a' + (n + i) % 26);
	return len > (size_t)w ? len : (size_t)w;
}

/* The tid stored under num_key(n, 40), which must be present. */
static wd_tid tid_of(env *e, unsigned n)
{
	uint8_t k[MAXK];
	size_t len = num_key(k, n, 40);
	wd_tid t = {0, 0};
	assert_int_equal(btree_lookup(e->t, k, len, &t), 0);
	return t;
}

/*
 * Positioned changes (README P7): a fresh position goes straight to its
 * leaf; one made stale by a change to the leaf, a split of it, the same key
 * arriving meanwhile, or the leaf being emptied, freed and reused, still
 * gives the results of the unpositioned calls.
 */
static void test_positions(void **state)
{
	env e;
	btree_check_report r;
	uint8_t k[MAXK];
	btree_pos pos;
	wd_tid tid;
	wd_lsn lsn;
	size_t len;
	(void)state;
	env_open(&e, "btree-pos", 1024);
	for (unsigned n = 0; n < 2000; n += 2) {
		len = num_key(k, n, 40);
		assert_int_equal(btree_insert(e.t, 1, 0, k, len, (wd_tid){n, 1}, &lsn), 0);
	}
	/* fresh: absent, inserted at the position; present, repointed */
	len = num_key(k, 1001, 40);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), WD_NOTFOUND);
	assert_false(pos.found);
	assert_int_not_equal(pos.leaf, WD_INVALID_BLKNO);
	assert_int_equal(btree_insert_at(e.t, &pos, 1, 0, k, len, (wd_tid){1001, 2}, &lsn), 0);
	assert_int_equal(tid_of(&e, 1001).slot, 2);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), 0);
	assert_true(pos.found);
	assert_int_equal(btree_update_tid_at(e.t, &pos, 1, 0, k, len, (wd_tid){1001, 3}, &lsn), 0);
	assert_int_equal(tid_of(&e, 1001).slot, 3);
	/* stale: a neighbour went into the same leaf first (index shifted) */
	len = num_key(k, 1005, 40);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), WD_NOTFOUND);
	uint8_t k2[MAXK];
	size_t l2 = num_key(k2, 1003, 40);
	assert_int_equal(btree_insert(e.t, 1, 0, k2, l2, (wd_tid){1003, 1}, &lsn), 0);
	assert_int_equal(btree_insert_at(e.t, &pos, 1, 0, k, len, (wd_tid){1005, 1}, &lsn), 0);
	/* stale: the same key arrived meanwhile */
	len = num_key(k, 1007, 40);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), WD_NOTFOUND);
	assert_int_equal(btree_insert(e.t, 1, 0, k, len, (wd_tid){1007, 1}, &lsn), 0);
	assert_int_equal(btree_insert_at(e.t, &pos, 1, 0, k, len, (wd_tid){1007, 9}, &lsn),
			 WD_EEXIST);
	assert_int_equal(tid_of(&e, 1007).slot, 1);
	/* stale: the leaf split under the position (odd keys fill it) */
	len = num_key(k, 1101, 40);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), WD_NOTFOUND);
	for (unsigned n = 1009; n < 1400; n += 2)
		if (n != 1101) {
			l2 = num_key(k2, n, 40);
			assert_int_equal(btree_insert(e.t, 1, 0, k2, l2, (wd_tid){n, 1}, &lsn), 0);
		}
	assert_int_equal(btree_insert_at(e.t, &pos, 1, 0, k, len, (wd_tid){1101, 1}, &lsn), 0);
	/* stale: present at lookup, deleted before the update */
	len = num_key(k, 1200, 40);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), 0);
	assert_int_equal(btree_delete(e.t, 1, 0, k, len, NULL, &lsn), 0);
	assert_int_equal(btree_update_tid_at(e.t, &pos, 1, 0, k, len, (wd_tid){1200, 5}, &lsn),
			 WD_NOTFOUND);
	/* stale: the whole tree emptied (the leaf freed) and refilled (pages
	 * reused) before the insert */
	len = num_key(k, 5001, 40);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), WD_NOTFOUND);
	for (unsigned n = 0; n < 2000; n++) {
		l2 = num_key(k2, n, 40);
		int rc = btree_delete(e.t, 1, 0, k2, l2, NULL, &lsn);
		assert_true(rc == 0 || rc == WD_NOTFOUND);
	}
	check_clean(e.t, &r);
	assert_int_equal(r.items, 0);
	for (unsigned n = 4000; n < 6000; n += 2) {
		l2 = num_key(k2, n, 40);
		assert_int_equal(btree_insert(e.t, 1, 0, k2, l2, (wd_tid){n, 1}, &lsn), 0);
	}
	assert_int_equal(btree_insert_at(e.t, &pos, 1, 0, k, len, (wd_tid){5001, 7}, &lsn), 0);
	assert_int_equal(tid_of(&e, 5001).slot, 7);
	/* no position at all: the plain calls */
	len = num_key(k, 5003, 40);
	assert_int_equal(btree_insert_at(e.t, NULL, 1, 0, k, len, (wd_tid){5003, 1}, &lsn), 0);
	check_clean(e.t, &r);
	assert_int_equal(r.items, 1002);
	env_close(&e, true);
}

/* Appends key n (num_key, 40 bytes) the way a put does: a change's
 * lookup, then the insert at its position. Returns how many lookups the
 * kept rightmost leaf answered meanwhile (0 or 1). */
static uint64_t put_at(env *e, unsigned n)
{
	uint8_t k[MAXK];
	size_t len = num_key(k, n, 40);
	uint64_t before = btree_rightmost_hits(e->t);
	btree_pos pos;
	wd_tid tid;
	wd_lsn lsn;
	assert_int_equal(btree_lookup_pos(e->t, k, len, &tid, &pos), WD_NOTFOUND);
	assert_int_equal(btree_insert_at(e->t, &pos, 1, 0, k, len, (wd_tid){n, 1}, &lsn), 0);
	return btree_rightmost_hits(e->t) - before;
}

/* The hits of one change's lookup of key n, which must find it (or not). */
static uint64_t lookup_at(env *e, unsigned n, bool present)
{
	uint8_t k[MAXK];
	size_t len = num_key(k, n, 40);
	uint64_t before = btree_rightmost_hits(e->t);
	btree_pos pos;
	wd_tid tid;
	assert_int_equal(btree_lookup_pos(e->t, k, len, &tid, &pos), present ? 0 : WD_NOTFOUND);
	assert_int_equal(pos.found, present);
	if (present)
		assert_int_equal(tid.blk, n);
	return btree_rightmost_hits(e->t) - before;
}

/*
 * The kept rightmost leaf (README P8, I13): an ascending load finds its
 * leaf there, not by descent, except right after the leaf splits; it is not
 * used when the leaf is empty or the key sorts before the leaf's first key
 * (the hint switched off until a descent ends there again), and it is
 * dropped when the leaf splits, is freed, or the tree is checked (smo
 * exclusive). The tree stays valid throughout, and each answer is the
 * model's (btree_insert_at trusts a fresh position's index, so a wrong leaf
 * would show in btree_check). Its pin is counted as a kept one and given
 * back at close.
 */
static void test_rightmost_leaf(void **state)
{
	const unsigned N = 3000;
	btree_check_report r;
	bm_stats st;
	uint64_t hits = 0;
	uint8_t k[MAXK];
	wd_lsn lsn;
	env e;
	(void)state;
	env_open(&e, "btree-rightmost", 1024);
	/* the empty root leaf is noted, then refused (no first key) */
	assert_int_equal(lookup_at(&e, 0, false), 0);
	assert_int_equal(lookup_at(&e, 0, false), 0);
	for (unsigned n = 0; n < N; n++)
		hits += put_at(&e, n);
	check_clean(e.t, &r);
	assert_int_equal(r.items, N);
	assert_true(r.height >= 2);
	/* a leaf holds about 70 keys of 40 bytes: a descent after each split of
	 * the rightmost leaf and at the first put, the kept leaf for the others */
	assert_true(hits < N && hits > N - N / 20);
	for (unsigned n = 0; n < N; n += 7)
		assert_int_equal(tid_of(&e, n).blk, n);
	/* a key before the leaf's first: a descent, and the hint is off until a
	 * descent ends in the rightmost leaf again */
	assert_int_equal(lookup_at(&e, 5, true), 0);
	assert_int_equal(lookup_at(&e, N - 1, true), 0);
	assert_int_equal(lookup_at(&e, N - 1, true), 1);
	assert_int_equal(lookup_at(&e, N + 1, false), 1);
	/* the kept leaf splits under plain inserts (smo exclusive: dropped) */
	for (unsigned n = N; n < N + 200; n++) {
		size_t len = num_key(k, n, 40);
		assert_int_equal(btree_insert(e.t, 1, 0, k, len, (wd_tid){n, 1}, &lsn), 0);
	}
	assert_int_equal(put_at(&e, N + 200), 0);
	assert_int_equal(put_at(&e, N + 201), 1);
	/* the kept leaf is freed: the top 301 keys deleted */
	for (unsigned n = N + 201; n >= N - 99; n--) {
		size_t len = num_key(k, n, 40);
		assert_int_equal(btree_delete(e.t, 1, 0, k, len, NULL, &lsn), 0);
	}
	assert_int_equal(lookup_at(&e, N + 500, false), 0);
	assert_int_equal(lookup_at(&e, N - 100, true), 1);
	/* the freed pages come back into the tree as the load goes on */
	hits = 0;
	for (unsigned n = N + 1000; n < N + 2000; n++)
		hits += put_at(&e, n);
	assert_true(hits > 1000 - 1000 / 20);
	/* every pin left is a kept one, the rightmost leaf's among them */
	bufmgr_stats(e.pool, &st);
	assert_true(st.kept >= 1);
	assert_int_equal(st.pinned, st.kept);
	check_clean(e.t, &r); /* smo exclusive: the kept leaf goes */
	assert_int_equal(r.items, N - 99 + 1000);
	assert_int_equal(put_at(&e, N + 2000), 0);
	assert_int_equal(put_at(&e, N + 2001), 1);
	for (unsigned n = 0; n < N + 2000; n += 3)
		(void)lookup_at(&e, n, n < N - 99 || n >= N + 1000);
	/* a position in the kept leaf made stale by another insert there: the
	 * change descends and gives its own pin back */
	btree_pos pos;
	wd_tid tid;
	size_t len = num_key(k, N + 2003, 40);
	assert_int_equal(btree_lookup_pos(e.t, k, len, &tid, &pos), WD_NOTFOUND);
	assert_int_equal(put_at(&e, N + 2002), 1);
	assert_int_equal(btree_insert_at(e.t, &pos, 1, 0, k, len, (wd_tid){N + 2003, 1}, &lsn),
			 0);
	bufmgr_stats(e.pool, &st);
	assert_int_equal(st.pinned, st.kept);
	check_clean(e.t, &r);
	assert_int_equal(r.items, N - 99 + 1000 + 4);
	btree_close(e.t);
	bufmgr_stats(e.pool, &st);
	assert_int_equal(st.kept, 0);
	assert_int_equal(st.pinned, 0);
	assert_int_equal(btree_open(e.pool, REL, &e.log, &e.t), 0);
	env_close(&e, true);
}

/*
 * The search warm-up prefetches the keys of exactly the probes the first
 * BT_WARM_LEVELS levels of bt_leaf_search can make: for n items from 1 to
 * 400, a binary search (the loop of bt_leaf_search) for every key and every
 * gap between keys probes, in its first levels, only positions that
 * bt_warm_probes lists, and every listed position is probed by some
 * search; the first listed is the first probe, and none is listed twice.
 */
static void test_warm_probes(void **state)
{
	(void)state;
	for (uint32_t n = 1; n <= 400; n++) {
		uint32_t mids[BT_WARM_NODES], k = bt_warm_probes(n, mids);
		bool listed[400] = {false}, probed[400] = {false};
		assert_true(k >= 1 && k <= BT_WARM_NODES);
		assert_int_equal(mids[0], n / 2);
		for (uint32_t i = 0; i < k; i++) {
			assert_true(mids[i] < n);
			assert_false(listed[mids[i]]);
			listed[mids[i]] = true;
		}
		/* key i is 2i + 1; a search for v in [0, 2n] */
		for (uint32_t v = 0; v <= 2 * n; v++) {
			uint32_t lo = 0, hi = n;
			for (unsigned d = 0; d < BT_WARM_LEVELS && lo < hi; d++) {
				uint32_t mid = lo + (hi - lo) / 2, key = 2 * mid + 1;
				assert_true(listed[mid]);
				probed[mid] = true;
				if (key < v)
					lo = mid + 1;
				else if (key > v)
					hi = mid;
				else
					break;
			}
		}
		for (uint32_t i = 0; i < n; i++)
			assert_int_equal(listed[i], probed[i]);
		if (n >= BT_WARM_NODES)
			assert_int_equal(k, BT_WARM_NODES);
	}
}

/*
 * bt_leaf_search on leaves built as the tree builds them: keys of 1 to 24
 * random bytes arrive in random order, each at its sorted index, so the
 * items lie on the page in arrival order while the line pointers are in
 * key order. Every key is found at its index, and keys that are absent
 * (drawn at random, and each present key with a byte appended) report the
 * index a linear scan gives, for item counts on both sides of the search
 * warm-up's threshold (64) and up to a full 8 KiB page.
 */
static void test_leaf_search_page(void **state)
{
	enum { LPS = 8192, KMAX = 24, NMAX = 500 };
	static const unsigned counts[] = {1, 2, 63, 64, 65, 100, 250, NMAX};
	static uint8_t page[LPS], keys[NMAX][KMAX];
	static size_t klen[NMAX];
	uint8_t item[BT_TID_SIZE + KMAX + 1], probe[KMAX + 1];
	uint64_t rs = tu_seed(4242);
	unsigned searched = 0;
	(void)state;
	for (unsigned c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		unsigned n = 0;
		page_init(page, LPS, PAGE_KIND_BTREE, BT_SPECIAL);
		while (n < counts[c]) {
			size_t l = 1 + (size_t)(tu_rand(&rs) % KMAX);
			uint8_t k[KMAX];
			unsigned at = 0;
			bool dup = false;
			for (size_t i = 0; i < l; i++)
				k[i] = (uint8_t)(tu_rand(&rs) % 4 ? 'a' + tu_rand(&rs) % 3 : tu_rand(&rs));
			while (at < n && !dup) {
				int r = kcmp(keys[at], klen[at], k, l);
				dup = r == 0;
				if (r >= 0)
					break;
				at++;
			}
			if (dup)
				continue;
			uint32_t il = bt_leaf_item(item, k, l, (wd_tid){at, 1});
			if (page_item_add(page, item, il, at) < 0)
				break; /* the page is full */
			memmove(keys[at + 1], keys[at], (n - at) * sizeof keys[0]);
			memmove(&klen[at + 1], &klen[at], (n - at) * sizeof klen[0]);
			memcpy(keys[at], k, l);
			klen[at] = l;
			n++;
		}
		assert_int_equal(bt_nitems(page), n);
		assert_true(n == counts[c] || n > 250);
		for (unsigned i = 0; i < n; i++) {
			bool found = false;
			assert_int_equal(bt_leaf_search(page, keys[i], klen[i], &found), i);
			assert_true(found);
			searched++;
			/* the key with a byte appended sorts right after it */
			if (klen[i] < KMAX) {
				memcpy(probe, keys[i], klen[i]);
				probe[klen[i]] = 0;
				unsigned want = i + 1;
				if (want < n && kcmp(keys[want], klen[want], probe, klen[i] + 1) == 0)
					continue;
				assert_int_equal(bt_leaf_search(page, probe, klen[i] + 1, &found), want);
				assert_false(found);
			}
		}
		for (unsigned t = 0; t < 200; t++) {
			size_t l = (size_t)(tu_rand(&rs) % (KMAX + 1));
			unsigned want = 0;
			bool found = false, present = false;
			for (size_t i = 0; i < l; i++)
				probe[i] = (uint8_t)('a' + tu_rand(&rs) % 3);
			while (want < n && kcmp(keys[want], klen[want], probe, l) < 0)
				want++;
			present = want < n && kcmp(keys[want], klen[want], probe, l) == 0;
			assert_int_equal(bt_leaf_search(page, probe, l, &found), want);
			assert_int_equal(found, present);
		}
	}
	assert_true(searched > 800);
}

/*
 * bt_ops_fit (README P2 in place) promises that bt_ops_apply will not fail:
 * random single ops against pages of every fill, with indexes and lengths
 * around the limits. A promise that apply breaks would leave a logged
 * change unapplied, so any disagreement fails; the cases it refuses are
 * counted to make sure both answers were exercised.
 */
static void test_ops_fit(void **state)
{
	uint8_t page[PS], copy[PS], item[PS];
	uint64_t rs = 99;
	unsigned yes = 0, no = 0;
	(void)state;
	memset(item, 'x', sizeof item);
	for (unsigned round = 0; round < 4000; round++) {
		bt_bytes ops = {0};
		page_init(page, PS, PAGE_KIND_BTREE, BT_SPECIAL);
		unsigned fill = (unsigned)(tu_rand(&rs) % 400);
		for (unsigned i = 0; i < fill; i++) {
			uint32_t l = 1 + (uint32_t)(tu_rand(&rs) % 40);
			if (page_item_add(page, item, l, bt_nitems(page)) < 0)
				break;
		}
		uint32_t n = bt_nitems(page);
		uint32_t idx = (uint32_t)(tu_rand(&rs) % (n + 3));
		uint32_t ilen = (uint32_t)(tu_rand(&rs) % 4 == 0 ? tu_rand(&rs) % PS
								   : tu_rand(&rs) % 64);
		switch (tu_rand(&rs) % 3) {
		case 0: bt_op_add(&ops, idx, item, ilen); break;
		case 1: bt_op_remove(&ops, idx); break;
		default: bt_op_replace(&ops, idx, item, ilen); break;
		}
		assert_false(ops.oom);
		memcpy(copy, page, PS);
		int rc = bt_ops_apply(copy, PS, ops.b, ops.len);
		if (bt_ops_fit(page, PS, ops.b, ops.len)) {
			assert_int_equal(rc, 0);
			yes++;
		} else {
			no++;
		}
		bt_bytes_free(&ops);
	}
	assert_true(yes > 500 && no > 500);
}

/* Grows, empties and regrows a tree three times: the height goes up and
 * back to one, and pages are reused rather than added. */
static void test_grow_shrink_reuse(void **state)
{
	env e;
	btree_check_report r;
	uint8_t k[MAXK];
	wd_blkno first = 0, nb;
	wd_lsn lsn;
	const unsigned N = 3000;
	(void)state;
	env_open(&e, "btree-reuse", 4096);
	for (int round = 0; round < 3; round++) {
		for (unsigned i = 0; i < N; i++) {
			unsigned n = (i * 7919u) % N; /* a scrambled order */
			size_t len = num_key(k, n + (unsigned)round * 11, 20 + (n * 31) % 200);
			assert_int_equal(btree_insert(e.t, 1, 0, k, len, (wd_tid){n, 0}, &lsn), 0);
		}
		check_clean(e.t, &r);
		assert_true(r.height >= 3);
		assert_int_equal(r.items, N);
		assert_int_equal(bufmgr_rel_nblocks(e.pool, REL, &nb), 0);
		if (round == 0)
			first = nb;
		/* regrowth reuses the free list: at most a little slack */
		assert_true(nb <= first + first / 10 + 8);
		for (unsigned i = 0; i < N; i++) {
			unsigned n = (i * 4099u) % N;
			size_t len = num_key(k, n + (unsigned)round * 11, 20 + (n * 31) % 200);
			assert_int_equal(btree_delete(e.t, 1, 0, k, len, NULL, &lsn), 0);
		}
		check_clean(e.t, &r);
		assert_int_equal(r.items, 0);
		assert_int_equal(r.height, 1);          /* the root is a leaf again */
		assert_int_equal(r.pages, 1);
		assert_int_equal(r.unused_pages, 0); /* every block accounted for */
		assert_int_equal(r.free_pages + 2, r.nblocks);
		assert_true(r.free_pages >= first / 2); /* reclaimed, not leaked */
	}
	env_close(&e, true);
}

/*
 * An ascending load splits the last page of each level at its last item
 * (split.c appends), so it leaves full pages behind: about half the leaves
 * and internal pages of the half-and-half split, which a descending load,
 * never an append, still makes. Both trees check clean and hold every key.
 * Release and ASan under a second.
 */
static void test_append_splits_fill_pages(void **state)
{
	const unsigned N = 20000;
	const size_t klen = 16;
	/* a leaf item is tid + key and a line pointer; a page holds
	 * PS - header - special bytes of them */
	const uint64_t per_leaf = (PS - PAGE_HEADER_SIZE - BT_SPECIAL) /
				  (BT_TID_SIZE + klen + PAGE_LP_SIZE);
	const uint64_t min_leaves = (N + per_leaf - 1) / per_leaf;
	uint64_t leaves[2];
	(void)state;
	for (int desc = 0; desc < 2; desc++) {
		env e;
		btree_check_report r;
		uint8_t k[MAXK];
		wd_lsn lsn;
		env_open(&e, "btree-append", 4096);
		for (unsigned i = 0; i < N; i++) {
			unsigned n = desc ? N - 1 - i : i;
			num_key(k, n, klen);
			assert_int_equal(btree_insert(e.t, 1, 0, k, klen, (wd_tid){n, 0}, &lsn), 0);
		}
		check_clean(e.t, &r);
		assert_int_equal(r.items, N);
		for (unsigned i = 0; i < N; i++) {
			wd_tid got;
			num_key(k, i, klen);
			assert_int_equal(btree_lookup(e.t, k, klen, &got), 0);
			assert_int_equal(got.blk, i);
		}
		leaves[desc] = r.leaves;
		env_close(&e, true);
	}
	print_message("leaves: ascending %llu, descending %llu, at least %llu\n",
		      (unsigned long long)leaves[0], (unsigned long long)leaves[1],
		      (unsigned long long)min_leaves);
	assert_true(leaves[0] <= min_leaves + min_leaves / 50 + 1);
	assert_true(leaves[1] >= leaves[0] + leaves[0] * 8 / 10);
}

/* Looks up every key of the test below; each must carry its tid. */
static void lookup_all(btree *t, unsigned n, unsigned salt)
{
	uint8_t k[MAXK];
	wd_tid got;
	for (unsigned i = 0; i < n; i++) {
		size_t len = num_key(k, i + salt, 20 + (i * 31) % 200);
		assert_int_equal(btree_lookup(t, k, len, &got), 0);
		assert_int_equal(got.blk, i);
	}
}

/*
 * Kept upper levels (README I12): descents keep internal pages pinned, at
 * most BT_KEEP_SLOTS and within the pool's budget; the kept pages follow
 * the tree through splits; a shrink to a single leaf frees every internal
 * page and gives its kept pin back; regrowth keeps the new ones;
 * btree_close gives every kept pin back. Release about 1 s, ASan about 3 s.
 */
static void test_kept_upper_levels(void **state)
{
	static const uint32_t pools[] = {4096, 64};
	const unsigned N = 3000;
	(void)state;
	for (size_t pi = 0; pi < sizeof pools / sizeof *pools; pi++) {
		env e;
		btree_check_report r;
		bm_stats st;
		uint8_t k[MAXK];
		wd_lsn lsn;
		uint32_t budget = pools[pi] / BM_KEEP_DIV;
		env_open(&e, "btree-kept", pools[pi]);
		for (unsigned round = 0; round < 2; round++) {
			for (unsigned i = 0; i < N; i++) {
				size_t len = num_key(k, i + round * 7, 20 + (i * 31) % 200);
				assert_int_equal(btree_insert(e.t, 1, 0, k, len, (wd_tid){i, 0},
							      &lsn), 0);
			}
			lookup_all(e.t, N, round * 7);
			check_clean(e.t, &r);
			assert_true(r.height >= 3);
			bufmgr_stats(e.pool, &st);
			/* every pin left is a kept one, within both limits */
			assert_true(st.kept > 0);
			assert_true(st.kept <= BT_KEEP_SLOTS && st.kept <= budget);
			assert_int_equal(st.pinned, st.kept);
			for (unsigned i = 0; i < N; i++) {
				size_t len = num_key(k, i + round * 7, 20 + (i * 31) % 200);
				assert_int_equal(btree_delete(e.t, 1, 0, k, len, NULL, &lsn), 0);
				if (i % 97 == 0) { /* a lookup of a key still there */
					size_t l2 = num_key(k, N - 1 + round * 7,
							    20 + ((N - 1) * 31) % 200);
					wd_tid got;
					assert_int_equal(btree_lookup(e.t, k, l2, &got), 0);
					assert_int_equal(got.blk, N - 1);
				}
			}
			check_clean(e.t, &r);
			assert_int_equal(r.height, 1);
			/* every internal page was freed, and with it its kept pin */
			bufmgr_stats(e.pool, &st);
			assert_int_equal(st.kept, 0);
			assert_int_equal(st.pinned, 0);
		}
		btree_close(e.t);
		bufmgr_stats(e.pool, &st);
		assert_int_equal(st.kept, 0);
		assert_int_equal(st.pinned, 0);
		assert_int_equal(btree_open(e.pool, REL, &e.log, &e.t), 0);
		check_clean(e.t, &r);
		env_close(&e, true);
	}
}

/* Runs random operations against e (no model) for the redo tests. */
static void churn(env *e, uint64_t seed, size_t nops)
{
	uint64_t rs = seed;
	uint8_t k[MAXK];
	wd_lsn lsn;
	for (size_t op = 0; op < nops; op++) {
		size_t len = gen_key(&rs, k);
		wd_tid tid = {(wd_blkno)op, (uint16_t)op};
		int rc;
		if ((op / 3000) % 2 == 0 || tu_rand(&rs) % 4 == 0)
			rc = btree_insert(e->t, e->xid, 0, k, len, tid, &lsn);
		else {
			btree_cursor *c;
			const void *ck;
			size_t cl;
			uint8_t cur[MAXK];
			assert_int_equal(btree_cursor_open(e->t, &c), 0);
			assert_int_equal(btree_cursor_seek(c, k, len, BT_FORWARD), 0);
			rc = btree_cursor_next(c, &ck, &cl, &tid);
			if (rc == 0) {
				memcpy(cur, ck, cl);
				rc = btree_delete(e->t, e->xid, 0, cur, cl, NULL, &lsn);
			}
			btree_cursor_close(c);
		}
		assert_true(rc == 0 || rc == WD_EEXIST || rc == WD_NOTFOUND);
	}
}

/* Redo rebuilds the same pages, and redo applied twice gives the same. */
static void test_redo_twice(void **state)
{
	env e;
	btree_check_report r;
	redo_ctx st;
	(void)state;
	env_open(&e, "btree-redo", 512); /* small pool: evictions too */
	churn(&e, 42, 6000);
	wd_lsn mid = wal_insert_pos(e.w);
	churn(&e, 43, 6000);
	check_clean(e.t, &r);
	assert_true(r.height >= 3);
	assert_true(r.free_pages > 0);
	env_close(&e, false);
	char *b = tu_path(e.root, "replay");
	assert_int_equal(rt_replay(e.db, &e.o, WAL_SEG_HEADER_SIZE, b, 256, &st), 0);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	assert_int_equal(rt_replay(e.db, &e.o, WAL_SEG_HEADER_SIZE, b, 256, &st), 0);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	/* from the middle: pages already past a record skip it (pageLSN rule) */
	assert_int_equal(rt_replay(e.db, &e.o, mid, b, 256, &st), 0);
	assert_true(st.skipped > 0);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	free(b);
	env_free(&e);
}

/* Copies file src to dst. */
static void copy_file(const char *src, const char *dst)
{
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	char buf[65536];
	size_t n;
	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
}

/*
 * Redo over mixed on-disk states (README "Crash behaviour"): a redo point
 * (flush, then wal_set_redo_point) mid-run, then copies of the data
 * file taken at different times while a small pool evicts pages at
 * different times, so each copy holds some pages from before the redo
 * point, some written since, some never written. Replaying the log from the
 * redo point onto every copy must give the final file page for page: pages
 * already past a record skip it (pageLSN), the others are rebuilt from
 * their image, their WILL_INIT, or their ops. With full_page_writes and
 * without (no images: the pageLSN rule alone).
 */
static void redo_mixed(bool fpw)
{
	enum { NOPS = 16000, REDO_AT = 5000, NSNAP = 10 };
	env e;
	char *snap[NSNAP];
	int nsnap = 0;
	wd_lsn from = 0;
	uint64_t rs = fpw ? 11 : 12;
	uint8_t k[MAXK];
	btree_check_report r;
	env_open(&e, fpw ? "btree-mixed-fpw" : "btree-mixed", 40); /* evicts often */
	e.log.full_page_writes = fpw;
	char *src = relpath(e.db);
	for (int op = 0; op < NOPS; op++) {
		size_t len = 1 + tu_rand(&rs) % 8 + (tu_rand(&rs) % 4 == 0 ? tu_rand(&rs) % MAXK : 0);
		if (len > MAXK)
			len = MAXK;
		for (size_t i = 0; i < len; i++)
			k[i] = (uint8_t)('a' + tu_rand(&rs) % 3);
		wd_tid tid = {(wd_blkno)op, (uint16_t)op}, got;
		btree_pos pos;
		wd_lsn lsn;
		int rc;
		if ((int)(tu_rand(&rs) % 20) < ((op / 4000) % 2 ? 9 : 17)) {
			rc = btree_lookup_pos(e.t, k, len, &got, &pos);
			if (rc == WD_NOTFOUND)
				rc = btree_insert_at(e.t, &pos, 1, 0, k, len, tid, &lsn);
			else if (rc == 0)
				rc = btree_update_tid_at(e.t, &pos, 1, 0, k, len, tid, &lsn);
		} else {
			btree_cursor *c;
			const void *ck;
			size_t cl;
			uint8_t cur[MAXK];
			assert_int_equal(btree_cursor_open(e.t, &c), 0);
			assert_int_equal(btree_cursor_seek(c, k, len, BT_FORWARD), 0);
			rc = btree_cursor_next(c, &ck, &cl, &got);
			if (rc == 0) {
				memcpy(cur, ck, cl);
				rc = btree_delete(e.t, 1, 0, cur, cl, NULL, &lsn);
			}
			btree_cursor_close(c);
		}
		if (rc && rc != WD_NOTFOUND && rc != WD_EEXIST)
			fail_msg("op %d: %s", op, wd_last_error());
		if (op == REDO_AT) { /* the checkpoint: flush, then the redo point */
			assert_int_equal(bufmgr_flush_all(e.pool), 0);
			assert_int_equal(wal_set_redo_point(e.w, &from), 0);
		}
		if (op > REDO_AT && (op - REDO_AT) % ((NOPS - REDO_AT) / NSNAP) == 0 &&
		    nsnap < NSNAP) {
			char tag[16];
			snprintf(tag, sizeof tag, "snap%d", nsnap);
			snap[nsnap] = tu_path(e.root, tag);
			char *sb = tu_path(snap[nsnap], "base"), *dst = relpath(snap[nsnap]);
			assert_int_equal(storage_mkdir(snap[nsnap]), 0);
			assert_int_equal(storage_mkdir(sb), 0);
			copy_file(src, dst); /* whatever the pool has written so far */
			free(sb);
			free(dst);
			nsnap++;
		}
	}
	check_clean(e.t, &r);
	assert_true(r.height >= 2);
	env_close(&e, false);
	assert_true(nsnap >= 5);
	for (int i = 0; i < nsnap; i++) {
		redo_ctx st;
		assert_int_equal(rt_replay(e.db, &e.o, from, snap[i], 64, &st), 0);
		int64_t diff = rt_compare_rel(e.db, snap[i], REL, PS);
		if (diff >= 0)
			fail_msg("full_page_writes=%d snapshot %d: block %lld differs after redo "
				 "(applied %llu skipped %llu images %llu)", fpw, i, (long long)diff,
				 (unsigned long long)st.applied, (unsigned long long)st.skipped,
				 (unsigned long long)st.images);
		free(snap[i]);
	}
	free(src);
	env_free(&e);
}

static void test_redo_mixed_states(void **state)
{
	(void)state;
	redo_mixed(false);
	redo_mixed(true);
}

/* Tears every page of the copy at path that differs from the final file:
 * one 512-byte sector replaced by garbage. Returns how many. */
static unsigned tear_changed(const char *copy, const char *final)
{
	FILE *a = fopen(copy, "r+b"), *f = fopen(final, "rb");
	uint8_t pa[PS], pf[PS];
	unsigned torn = 0;
	assert_non_null(a);
	assert_non_null(f);
	for (long blk = 0; fread(pa, 1, PS, a) == PS; blk++) {
		if (fread(pf, 1, PS, f) != PS || page_is_zero(pa, PS))
			continue;
		if (memcmp(pa + 12, pf + 12, PS - 12) == 0)
			continue;
		memset(pa + 1024, 0xA5, 512);
		assert_int_equal(fseek(a, blk * (long)PS, SEEK_SET), 0);
		assert_int_equal(fwrite(pa, 1, PS, a), PS);
		assert_int_equal(fseek(a, (blk + 1) * (long)PS, SEEK_SET), 0);
		torn++;
	}
	fclose(a);
	fclose(f);
	return torn;
}

/* After a redo point (a checkpoint's flush), every page's first change
 * carries an image, so replay repairs pages torn in the checkpoint copy. */
static void test_fpi_repairs_torn_pages(void **state)
{
	env e;
	redo_ctx st;
	(void)state;
	env_open(&e, "btree-fpi", 1024);
	churn(&e, 7, 8000);
	assert_int_equal(bufmgr_flush_all(e.pool), 0); /* the checkpoint */
	char *b = tu_path(e.root, "replay"), *bb = tu_path(b, "base");
	char *src = relpath(e.db), *dst = relpath(b);
	assert_int_equal(storage_mkdir(b), 0);
	assert_int_equal(storage_mkdir(bb), 0);
	copy_file(src, dst);
	wd_lsn rp;
	assert_int_equal(wal_set_redo_point(e.w, &rp), 0);
	churn(&e, 8, 6000);
	env_close(&e, false);
	unsigned torn = tear_changed(dst, src);
	assert_true(torn > 10);
	assert_int_equal(rt_replay(e.db, &e.o, rp, b, 256, &st), 0);
	assert_true(st.images > torn / 2); /* the rest were rebuilt (WILL_INIT) */
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	free(b);
	free(bb);
	free(src);
	free(dst);
	env_free(&e);
}

/* ---- the image decision and a checkpoint in between (wal/README I11) ---- */

/* The WAL insert hook of test_fpi_race: once armed, moves the redo point
 * at the next insert, between bt_log_commit's decision and its insert. */
static struct {
	wal *w;
	bool armed;
	wd_lsn fpw_seen, redo;
} race;

static void race_hook(void *arg, wd_lsn fpw_lsn)
{
	(void)arg;
	if (race.armed) {
		race.armed = false;
		race.fpw_seen = fpw_lsn;
		assert_int_equal(wal_set_redo_point(race.w, &race.redo), 0);
	}
}

/* Replaces one 512-byte sector of block blk of the file at path with
 * garbage. */
static void tear_block(const char *path, wd_blkno blk)
{
	uint8_t junk[512];
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	memset(junk, 0xA5, sizeof junk);
	assert_int_equal(fseek(f, (long)blk * PS + 1024, SEEK_SET), 0);
	assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
	assert_int_equal(fclose(f), 0);
}

/*
 * A leaf insert decided in place, without an image (the leaf was changed
 * after the redo point), while a checkpoint moves the redo point between
 * that decision and the insert (the WAL insert hook): the insert is
 * refused, bt_log_commit decides again and logs the leaf's image from a
 * copy. The record at the new redo point carries it, and replay from there
 * alone repairs the leaf torn in a copy of the file.
 */
static void test_fpi_race(void **state)
{
	env e;
	redo_ctx st;
	wal_counters ws;
	wal_reader *r;
	const wal_decoded *rec;
	btree_check_report cr;
	wd_lsn lsn, redo0;
	wd_tid tid = {1, 1};
	char k[16];
	wd_blkno leaf;
	(void)state;
	env_open(&e, "btree-fpi-race", 256);
	for (int i = 0; i < 20; i++) {
		snprintf(k, sizeof k, "k%03d", i * 2);
		assert_int_equal(btree_insert(e.t, 1, 0, k, strlen(k), tid, &lsn), 0);
	}
	assert_int_equal(wal_set_redo_point(e.w, &redo0), 0);
	assert_int_equal(btree_insert(e.t, 1, 0, "k001", 4, tid, &lsn), 0); /* image */
	race.w = e.w;
	race.armed = true;
	wal_set_insert_hook(e.w, race_hook, NULL);
	assert_int_equal(btree_insert(e.t, 1, 0, "k003", 4, tid, &lsn), 0);
	wal_set_insert_hook(e.w, NULL, NULL);
	assert_false(race.armed);
	assert_true(race.fpw_seen >= redo0 && race.fpw_seen < race.redo); /* no image */
	assert_int_equal(lsn, race.redo);
	wal_stats(e.w, &ws);
	assert_int_equal(ws.fpw_retries, 1);
	for (int i = 0; i < 10; i++) { /* later history */
		snprintf(k, sizeof k, "k%03d", 100 + i);
		assert_int_equal(btree_insert(e.t, 1, 0, k, strlen(k), tid, &lsn), 0);
	}
	check_clean(e.t, &cr);
	env_close(&e, false);
	/* the record at the new redo point: the leaf insert, with its image */
	assert_int_equal(wal_reader_open(e.db, e.o.db_id, e.o.segment_size, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, race.redo), 0);
	assert_int_equal(wal_reader_next(r, &rec), 0);
	assert_int_equal(rec->lsn, race.redo);
	assert_int_equal(rec->type, BTREE_INSERT_LEAF);
	assert_true(rec->blocks[0].flags & WAL_BLK_HAS_IMAGE);
	leaf = rec->blocks[0].blk;
	wal_reader_close(r);
	/* the final file, its leaf torn, repaired by replay from the redo point */
	char *b = tu_path(e.root, "replay"), *dst = relpath(b);
	assert_int_equal(rt_replay(e.db, &e.o, WAL_SEG_HEADER_SIZE, b, 64, &st), 0);
	tear_block(dst, leaf);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), (int64_t)leaf);
	assert_int_equal(rt_replay(e.db, &e.o, race.redo, b, 64, &st), 0);
	assert_true(st.images >= 1);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	free(b);
	free(dst);
	env_free(&e);
}

/* ---- dirty before logged (README I11) ---- */

/* For each WAL insert attempt, in order: the pages dirty at its start, as
 * bufmgr_dirty_pages reports them (it needs no latch, so the hook may run
 * while the inserting thread holds the record's page latches). */
#define SNAP_MAX 64
typedef struct dirty_snap {
	unsigned n;
	bool overflow;
	wd_relid rel[SNAP_MAX];
	wd_blkno blk[SNAP_MAX];
} dirty_snap;

static struct {
	bufmgr *pool;
	dirty_snap *s;
	size_t n, cap;
} snaps;

static int snap_add(void *arg, wd_relid rel, wd_blkno blk, wd_lsn rec_lsn)
{
	dirty_snap *s = arg;
	(void)rec_lsn;
	if (s->n == SNAP_MAX) {
		s->overflow = true;
		return 0;
	}
	s->rel[s->n] = rel;
	s->blk[s->n++] = blk;
	return 0;
}

/* The WAL insert hook of test_dirty_before_insert: runs at the start of
 * every insert, in the inserting thread, before the record is placed. */
static void snap_hook(void *arg, wd_lsn fpw_lsn)
{
	(void)arg;
	(void)fpw_lsn;
	if (snaps.n == snaps.cap) {
		snaps.cap = snaps.cap ? 2 * snaps.cap : 1024;
		snaps.s = realloc(snaps.s, snaps.cap * sizeof *snaps.s);
		assert_non_null(snaps.s);
	}
	dirty_snap *s = &snaps.s[snaps.n++];
	s->n = 0;
	s->overflow = false;
	assert_int_equal(bufmgr_dirty_pages(snaps.pool, snap_add, s), 0);
}

static bool snap_has(const dirty_snap *s, wd_relid rel, wd_blkno blk)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->rel[i] == rel && s->blk[i] == blk)
			return true;
	return false;
}

/* Every page of the tree written out and clean, so that a page dirty at
 * the next insert was made dirty by that change. */
static void clean_all(env *e)
{
	assert_int_equal(bufmgr_flush_rel(e->pool, REL), 0);
}

/*
 * README I11: every page a btree record changes is already dirty when the
 * record is inserted. The WAL insert hook notes the dirty pages at the
 * start of every insert, with the pool written clean before each
 * operation; afterwards the log is read back and each record's blocks
 * must be in the snapshot of its own insert. The run covers every btree
 * record: in-place leaf inserts, deletes and tid updates, the same through
 * copies with images (after a redo point), splits with a sibling, new
 * roots, unlinks and shrinks, and a tree's creation. Marking dirty only
 * after wal_insert (the old order) fails at the first record.
 */
static void test_dirty_before_insert(void **state)
{
	env e;
	btree_check_report r;
	btree *t2 = NULL;
	wal_reader *rd;
	const wal_decoded *rec;
	uint8_t k[MAXK];
	unsigned seen[9] = {0}, images = 0;
	wd_lsn lsn, start, rp;
	const unsigned N = 1500;
	size_t len, i = 0;
	(void)state;
	env_open(&e, "btree-dirty-first", 512);
	start = wal_insert_pos(e.w);
	snaps.pool = e.pool;
	snaps.n = 0;
	wal_set_insert_hook(e.w, snap_hook, NULL);
	for (unsigned n = 0; n < N; n++) { /* leaf inserts, splits, new roots */
		clean_all(&e);
		len = num_key(k, (n * 7919u) % N, 200);
		assert_int_equal(btree_insert(e.t, 1, 0, k, len, (wd_tid){n, 1}, &lsn), 0);
	}
	check_clean(e.t, &r);
	assert_true(r.height >= 3);
	for (unsigned n = 0; n < N; n += 3) { /* tid updates */
		clean_all(&e);
		len = num_key(k, n, 200);
		assert_int_equal(btree_update_tid(e.t, 1, 0, k, len, (wd_tid){n, 2}, &lsn), 0);
	}
	assert_int_equal(wal_set_redo_point(e.w, &rp), 0); /* now: images */
	for (unsigned n = 0; n < N; n++) { /* deletes, unlinks, shrinks */
		clean_all(&e);
		len = num_key(k, n, 200);
		assert_int_equal(btree_delete(e.t, 1, 0, k, len, NULL, &lsn), 0);
	}
	check_clean(e.t, &r);
	assert_int_equal(r.items, 0);
	char *rp2 = tu_path(e.db, "base/8");
	assert_int_equal(bufmgr_rel_open(e.pool, REL + 1, rp2, BM_REL_CREATE), 0);
	assert_int_equal(btree_create(e.pool, REL + 1, &e.log, &t2), 0);
	wal_set_insert_hook(e.w, NULL, NULL);
	btree_close(t2);
	free(rp2);
	env_close(&e, false);

	assert_int_equal(wal_reader_open(e.db, e.o.db_id, e.o.segment_size, PS, &rd), 0);
	assert_int_equal(wal_reader_seek(rd, start), 0);
	for (i = 0; wal_reader_next(rd, &rec) == 0; i++) {
		assert_true(i < snaps.n); /* one insert attempt per record: no retry */
		const dirty_snap *s = &snaps.s[i];
		assert_false(s->overflow);
		assert_int_equal(rec->rmgr, WAL_RMGR_BTREE);
		assert_true(rec->type < 9);
		seen[rec->type]++;
		for (unsigned b = 0; b < rec->nblocks; b++) {
			if (rec->blocks[b].image_len)
				images++;
			if (!snap_has(s, rec->blocks[b].rel, rec->blocks[b].blk))
				fail_msg("record %zu (type %u, LSN %llu): block %u of rel %u "
					 "not dirty when it was inserted", i, rec->type,
					 (unsigned long long)rec->lsn, rec->blocks[b].blk,
					 rec->blocks[b].rel);
		}
	}
	wal_reader_close(rd);
	assert_int_equal(i, snaps.n);
	for (unsigned t = BTREE_CREATE; t <= BTREE_SHRINK; t++)
		if (!seen[t])
			fail_msg("no record of type %u in the run", t);
	assert_true(seen[BTREE_NEWROOT] >= 2);
	assert_true(images > 0);
	free(snaps.s);
	snaps.s = NULL;
	snaps.cap = snaps.n = 0;
	env_free(&e);
}

/* ---- damaged pages with valid checksums (README "Tests that prove it") ---- */

/* Closes the tree and the relation (pages written, buffers forgotten), so
 * the file can be edited under the pool. */
static void env_detach(env *e)
{
	btree_close(e->t);
	e->t = NULL;
	assert_int_equal(bufmgr_rel_close(e->pool, REL), 0);
}

/* Reopens the relation and the tree after env_detach. */
static void env_attach(env *e)
{
	char *rp = relpath(e->db);
	assert_int_equal(bufmgr_rel_open(e->pool, REL, rp, 0), 0);
	if (btree_open(e->pool, REL, &e->log, &e->t) != 0)
		fail_msg("btree_open: %s", wd_last_error());
	free(rp);
}

static void block_io(env *e, wd_blkno blk, uint8_t *page, bool write)
{
	char *rp = relpath(e->db);
	FILE *f = fopen(rp, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, (long)blk * (long)PS, SEEK_SET), 0);
	if (write) {
		page_checksum_set(page, PS, blk); /* damage the checksum does not see */
		assert_int_equal(fwrite(page, 1, PS, f), PS);
	} else {
		assert_int_equal(fread(page, 1, PS, f), PS);
	}
	fclose(f);
	free(rp);
}

static void block_read(env *e, wd_blkno blk, uint8_t *page) { block_io(e, blk, page, false); }
static void block_write(env *e, wd_blkno blk, uint8_t *page) { block_io(e, blk, page, true); }

/* The metapage as written (between env_detach and env_attach). */
static bt_meta meta_of(env *e)
{
	uint8_t page[PS];
	bt_meta m;
	block_read(e, BT_META_BLK, page);
	bt_meta_decode(page, &m);
	return m;
}

/* Sets a tree page's special-area field (u16 or u32) in place. */
static void spec_put(uint8_t *page, unsigned off, uint32_t v, bool wide)
{
	uint8_t *sp = page + PS - BT_SPECIAL + off;
	if (wide)
		put_le32(sp, v);
	else
		put_le16(sp, (uint16_t)v);
}

/* Expects btree_check to report damage at block blk. */
static void expect_damage(btree *t, wd_blkno blk, const char *what)
{
	btree_check_report r;
	assert_int_equal(btree_check(t, &r), WD_ECORRUPT);
	assert_false(r.ok);
	if (r.bad_blk != blk || !strstr(r.msg, what))
		fail_msg("expected block %u \"%s\", got block %u: %s", blk, what, r.bad_blk, r.msg);
}

/*
 * A root leaf rewritten (valid checksum) with keys longer than the limit:
 * 1, 2000 and 1800 bytes on a 4 KiB page (limit 512). A cursor reaching the
 * long key, and a split whose separator it would be, return WD_ECORRUPT
 * naming the page instead of copying it into buffers sized by the limit
 * (under ASan: no report).
 */
static void test_oversized_key_on_disk(void **state)
{
	env e;
	uint8_t page[PS], item[PS], big[2000];
	bt_bytes ops = {0};
	const void *ck;
	size_t cl;
	btree_cursor *c;
	wd_tid tid;
	wd_lsn lsn;
	(void)state;
	env_open(&e, "btree-bigkey", 256);
	assert_int_equal(btree_insert(e.t, 1, 0, "a", 1, (wd_tid){1, 1}, &lsn), 0);
	env_detach(&e);
	bt_meta m = meta_of(&e);
	block_read(&e, m.root, page);
	wd_lsn plsn = page_lsn(page);
	memset(page, 0, PS);
	bt_op_init(&ops, 0, BTF_LEAF | BTF_ROOT, WD_INVALID_BLKNO, WD_INVALID_BLKNO,
		   WD_INVALID_BLKNO);
	bt_op_add(&ops, 0, item, bt_leaf_item(item, "a", 1, (wd_tid){1, 1}));
	memset(big, 'b', sizeof big);
	bt_op_add(&ops, 1, item, bt_leaf_item(item, big, 2000, (wd_tid){1, 2}));
	memset(big, 'c', sizeof big);
	bt_op_add(&ops, 2, item, bt_leaf_item(item, big, 1800, (wd_tid){1, 3}));
	assert_int_equal(bt_ops_apply(page, PS, ops.b, ops.len), 0);
	bt_bytes_free(&ops);
	page_set_lsn(page, plsn);
	block_write(&e, m.root, page);
	env_attach(&e);
	expect_damage(e.t, m.root, "longer than");
	/* forward: "a", then the long key */
	assert_int_equal(btree_cursor_open(e.t, &c), 0);
	assert_int_equal(btree_cursor_seek(c, NULL, 0, BT_FORWARD), 0);
	assert_int_equal(btree_cursor_next(c, &ck, &cl, &tid), 0);
	assert_int_equal(cl, 1);
	assert_int_equal(btree_cursor_next(c, &ck, &cl, &tid), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "block"));
	/* backward: the long key first */
	assert_int_equal(btree_cursor_seek(c, NULL, 0, BT_BACKWARD), 0);
	assert_int_equal(btree_cursor_next(c, &ck, &cl, &tid), WD_ECORRUPT);
	btree_cursor_close(c);
	/* a 300-byte key does not fit: the root splits at item 2 (1800 bytes) */
	memset(big, 'd', sizeof big);
	assert_int_equal(btree_insert(e.t, 1, 0, big, 300, (wd_tid){1, 4}, &lsn), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "separator"));
	assert_int_equal(btree_lookup(e.t, "a", 1, &tid), 0); /* nothing changed */
	env_close(&e, true);
}

/* Fills e with n keys of 100 bytes, then deletes them all: a root leaf and
 * a free list. */
static void fill_and_empty(env *e, unsigned n)
{
	uint8_t k[MAXK];
	wd_lsn lsn;
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(btree_insert(e->t, 1, 0, k, num_key(k, i, 100), (wd_tid){i, 0},
					      &lsn), 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(btree_delete(e->t, 1, 0, k, num_key(k, i, 100), NULL, &lsn), 0);
}

/*
 * The head of the free list rewritten as a B+tree-kind page whose special
 * offset is the page size (header bounds valid, checksum valid): btree_check
 * and the split that would pop it return WD_ECORRUPT naming it, without
 * reading the flags and next link past the page.
 */
static void test_free_list_bad_special(void **state)
{
	env e;
	uint8_t page[PS], k[MAXK];
	wd_lsn lsn;
	int rc = 0;
	(void)state;
	env_open(&e, "btree-badfree", 256);
	fill_and_empty(&e, 300);
	env_detach(&e);
	bt_meta m = meta_of(&e);
	assert_int_not_equal(m.free_head, WD_INVALID_BLKNO);
	block_read(&e, m.free_head, page);
	wd_lsn plsn = page_lsn(page);
	page_init(page, PS, PAGE_KIND_BTREE, 0); /* special == PS */
	page_set_lsn(page, plsn);
	block_write(&e, m.free_head, page);
	env_attach(&e);
	expect_damage(e.t, m.free_head, "not a deleted");
	for (unsigned i = 0; i < 300 && rc == 0; i++)
		rc = btree_insert(e.t, 1, 0, k, num_key(k, i, 100), (wd_tid){i, 0}, &lsn);
	assert_int_equal(rc, WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "free-list"));
	env_close(&e, true);
}

/*
 * btree_check against what the README claims, one damage at a time, each
 * with a valid checksum: an internal page with a sibling link (I5), a leaf
 * with an unknown flag bit, and a deleted page dropped from the free list
 * (neither reachable nor free, not zero: a lost page, not a leak).
 */
static void test_check_finds_damage(void **state)
{
	env e;
	uint8_t page[PS];
	uint8_t k[MAXK];
	wd_lsn lsn;
	bt_meta m;
	(void)state;
	/* I5: internal pages have no sibling links */
	env_open(&e, "btree-chk", 256);
	for (unsigned i = 0; i < 300; i++)
		assert_int_equal(btree_insert(e.t, 1, 0, k, num_key(k, i, 100), (wd_tid){i, 0},
					      &lsn), 0);
	env_detach(&e);
	m = meta_of(&e);
	assert_true(m.level >= 1);
	block_read(&e, m.root, page);
	spec_put(page, BTS_LEFT, 1, true);
	block_write(&e, m.root, page);
	env_attach(&e);
	expect_damage(e.t, m.root, "sibling links");
	env_detach(&e);
	spec_put(page, BTS_LEFT, WD_INVALID_BLKNO, true);
	spec_put(page, BTS_RIGHT, 1, true);
	block_write(&e, m.root, page);
	env_attach(&e);
	expect_damage(e.t, m.root, "sibling links");
	env_detach(&e);
	spec_put(page, BTS_RIGHT, WD_INVALID_BLKNO, true);
	block_write(&e, m.root, page);
	/* an unknown flag bit on the leftmost leaf */
	wd_blkno leaf = bt_item_child(page, 0);
	uint8_t lp[PS];
	block_read(&e, leaf, lp);
	spec_put(lp, BTS_FLAGS, BTF_LEAF | 0x8u, false);
	block_write(&e, leaf, lp);
	env_attach(&e);
	expect_damage(e.t, leaf, "unknown flag");
	env_close(&e, true);

	/* a deleted page off the free list */
	env_open(&e, "btree-chk2", 256);
	fill_and_empty(&e, 300);
	env_detach(&e);
	m = meta_of(&e);
	assert_true(m.nfree >= 2);
	wd_blkno lost = m.free_head;
	block_read(&e, lost, page);
	m.free_head = bt_next_free(page);
	m.nfree--;
	block_read(&e, BT_META_BLK, page);
	bt_bytes ops = {0};
	bt_op_meta(&ops, &m);
	wd_lsn plsn = page_lsn(page);
	assert_int_equal(bt_ops_apply(page, PS, ops.b, ops.len), 0);
	bt_bytes_free(&ops);
	page_set_lsn(page, plsn);
	block_write(&e, BT_META_BLK, page);
	env_attach(&e);
	expect_damage(e.t, lost, "neither reachable");
	env_close(&e, true);
}

/* The DOT output names every page and the leaf chain. */
static void test_dot(void **state)
{
	env e;
	char *buf = NULL;
	size_t len = 0;
	uint8_t k[MAXK];
	wd_lsn lsn;
	(void)state;
	env_open(&e, "btree-dot", 256);
	for (unsigned i = 0; i < 300; i++)
		assert_int_equal(btree_insert(e.t, 1, 0, k, num_key(k, i, 100), (wd_tid){i, 0},
					      &lsn), 0);
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(btree_dot(e.t, f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "digraph"));
	assert_non_null(strstr(buf, "style=dashed"));
	assert_non_null(strstr(buf, "-inf"));
	free(buf);
	env_close(&e, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_dot),
		cmocka_unit_test(test_random_vs_model),
		cmocka_unit_test(test_grow_shrink_reuse),
		cmocka_unit_test(test_kept_upper_levels),
		cmocka_unit_test(test_append_splits_fill_pages),
		cmocka_unit_test(test_positions),
		cmocka_unit_test(test_rightmost_leaf),
		cmocka_unit_test(test_ops_fit),
		cmocka_unit_test(test_leaf_search_page),
		cmocka_unit_test(test_warm_probes),
		cmocka_unit_test(test_redo_twice),
		cmocka_unit_test(test_fpi_repairs_torn_pages),
		cmocka_unit_test(test_fpi_race),
		cmocka_unit_test(test_dirty_before_insert),
		cmocka_unit_test(test_redo_mixed_states),
		cmocka_unit_test(test_oversized_key_on_disk),
		cmocka_unit_test(test_free_list_bad_special),
		cmocka_unit_test(test_check_finds_damage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
