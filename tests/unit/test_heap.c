/*
 * test_heap.c - heap relations: insert, fetch, update (in place and moved),
 * delete and scan against an in-memory model with keys and values of
 * random sizes (up to a few MB, through a pool much smaller than the data);
 * space reuse after churn; the value limit; the free space map (finds room
 * without growing the file, survives a reopen, is rebuilt when missing);
 * redo (replay rebuilds the same pages, twice gives the same pages) and
 * full-page images (every page's first change after the redo point carries
 * one, and replay repairs a torn page).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bufmgr/bufmgr.h"
#include "heap/heap.h"
#include "heap/heap_internal.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tests/lib/redotest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/format.h"
#include "wal/reader.h"
#include "wal/record.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define PS 8192u
#define REL 1
#define FSM_REL 2

/* ---- environment: a WAL, a pool with its hook, a heap ---- */

typedef struct env {
	char *root, *db, *relpath, *fsmpath;
	wal_opts wo;
	wal *w;
	bufmgr *pool;
	wal_log_ctx log;
	heap_opts ho;
	heap *h;
} env;

/* Opens the pool, the relations and the heap over e->db (WAL open). */
static void env_open_heap(env *e, uint32_t pool_pages)
{
	bufmgr_opts bo;
	bufmgr_opts_default(&bo);
	bo.page_size = PS;
	bo.pool_bytes = (uint64_t)pool_pages * PS;
	assert_int_equal(bufmgr_create(&bo, &e->pool), 0);
	bufmgr_set_wal_hook(e->pool, wal_bufmgr_hook, e->w);
	assert_int_equal(bufmgr_rel_open(e->pool, REL, e->relpath, BM_REL_CREATE), 0);
	assert_int_equal(bufmgr_rel_open(e->pool, FSM_REL, e->fsmpath, BM_REL_CREATE), 0);
	e->log.w = e->w;
	e->log.full_page_writes = true;
	e->log.compress = false;
	e->log.page_size = PS;
	assert_int_equal(heap_open(e->pool, &e->log, REL, &e->ho, &e->h), 0);
}

/* A new database directory under a fresh scratch root. */
static void env_create(env *e, const char *tag, uint32_t pool_pages)
{
	char *base;
	memset(e, 0, sizeof *e);
	heap_rmgr_register();
	e->root = tu_tmpdir(tag);
	e->db = tu_path(e->root, "db");
	base = tu_path(e->db, "base");
	e->relpath = tu_path(base, "1");
	e->fsmpath = tu_path(base, "2");
	assert_int_equal(storage_mkdir(e->db), 0);
	assert_int_equal(storage_mkdir(base), 0);
	free(base);
	tw_opts(&e->wo);
	e->wo.buffers_bytes = 1024 * 1024;
	assert_int_equal(wal_create(e->db, &e->wo, &e->w), 0);
	heap_opts_default(&e->ho);
	e->ho.fsm_rel = FSM_REL;
	env_open_heap(e, pool_pages);
}

/* Clean shutdown: the free space map and every page written and synced,
 * the WAL closed. */
static void env_shutdown(env *e)
{
	assert_int_equal(heap_fsm_flush(e->h), 0);
	heap_close(e->h);
	e->h = NULL;
	assert_int_equal(bufmgr_flush_all(e->pool), 0);
	bufmgr_destroy(e->pool);
	e->pool = NULL;
	assert_int_equal(wal_close(e->w), 0);
	e->w = NULL;
}

/* Reopens a shut-down environment (WAL appended at its end). */
static void env_reopen(env *e, uint32_t pool_pages)
{
	wd_lsn end;
	assert_int_equal(wal_find_end(e->db, &e->wo, WAL_SEG_HEADER_SIZE, &end), 0);
	assert_int_equal(wal_open(e->db, &e->wo, end, &e->w), 0);
	env_open_heap(e, pool_pages);
}

/* A crash: the heap and the pool go without writing a page; only the WAL
 * inserted so far survives (it is written out as a commit would have). */
static void env_kill(env *e)
{
	heap_close(e->h);
	e->h = NULL;
	bufmgr_destroy(e->pool);
	e->pool = NULL;
	assert_int_equal(wal_close(e->w), 0);
	e->w = NULL;
}

static void env_free(env *e)
{
	if (e->h)
		env_shutdown(e);
	tu_rmrf(e->root);
	free(e->root);
	free(e->db);
	free(e->relpath);
	free(e->fsmpath);
}

static wd_blkno nblocks(env *e)
{
	wd_blkno n;
	assert_int_equal(heap_nblocks(e->h, &n), 0);
	return n;
}

/* ---- the model ---- */

typedef struct item {
	bool live;
	heap_tid tid;
	uint8_t key[256];
	uint32_t klen;
	uint8_t *val;
	uint64_t vlen;
} item;

typedef struct model {
	item *it;
	size_t n, cap;
	uint64_t rng;
	wd_lsn prev;
} model;

/* Random value size: mostly small, some spanning pages, a few large. */
static uint64_t rand_vlen(model *m, uint64_t big)
{
	uint64_t r = tu_rand(&m->rng) % 100;
	if (r < 60)
		return tu_rand(&m->rng) % 300;
	if (r < 85)
		return 300 + tu_rand(&m->rng) % 3000;
	if (r < 97)
		return 3000 + tu_rand(&m->rng) % 40000;
	return big ? 40000 + tu_rand(&m->rng) % big : 5000;
}

static uint8_t *rand_bytes(model *m, uint64_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	uint64_t x = tu_rand(&m->rng);
	assert_non_null(p);
	for (uint64_t i = 0; i < len; i++) {
		if ((i & 7) == 0)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(x >> (8 * (i & 7)));
	}
	return p;
}

static item *model_add(model *m)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->it = realloc(m->it, m->cap * sizeof *m->it);
		assert_non_null(m->it);
	}
	memset(&m->it[m->n], 0, sizeof m->it[0]);
	return &m->it[m->n++];
}

static void model_free(model *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->it[i].val);
	free(m->it);
	memset(m, 0, sizeof *m);
}

/* A random live item, or NULL. */
static item *model_pick(model *m)
{
	if (!m->n)
		return NULL;
	for (int tries = 0; tries < 20; tries++) {
		item *it = &m->it[tu_rand(&m->rng) % m->n];
		if (it->live)
			return it;
	}
	return NULL;
}

static void op_insert(env *e, model *m, uint64_t big)
{
	item *it = model_add(m);
	it->klen = (uint32_t)snprintf((char *)it->key, sizeof it->key, "key-%zu-", m->n);
	it->klen += (uint32_t)(tu_rand(&m->rng) % 100);
	memset(it->key + strlen((char *)it->key), 'k', it->klen - strlen((char *)it->key));
	it->vlen = rand_vlen(m, big);
	it->val = rand_bytes(m, it->vlen);
	assert_int_equal(heap_insert(e->h, 7, &m->prev, it->key, it->klen, it->val, it->vlen,
				     &it->tid), 0);
	it->live = true;
}

static void check_item(env *e, const item *it)
{
	uint8_t kbuf[256];
	uint8_t *vbuf = malloc(it->vlen + 1);
	uint32_t klen = 0;
	uint64_t vlen = 0;
	assert_non_null(vbuf);
	assert_int_equal(heap_fetch(e->h, it->tid, kbuf, sizeof kbuf, &klen, vbuf, it->vlen + 1,
				    &vlen), 0);
	assert_int_equal(klen, it->klen);
	assert_memory_equal(kbuf, it->key, klen);
	assert_int_equal(vlen, it->vlen);
	if (vlen)
		assert_memory_equal(vbuf, it->val, vlen);
	free(vbuf);
}

static void op_update(env *e, model *m, item *it, uint64_t big)
{
	heap_tid nt;
	free(it->val);
	it->vlen = rand_vlen(m, big);
	it->val = rand_bytes(m, it->vlen);
	assert_int_equal(heap_update(e->h, 7, &m->prev, it->tid, it->val, it->vlen, &nt), 0);
	it->tid = nt;
}

static void op_delete(env *e, model *m, item *it)
{
	assert_int_equal(heap_delete(e->h, 7, &m->prev, it->tid), 0);
	assert_int_equal(heap_fetch(e->h, it->tid, NULL, 0, NULL, NULL, 0, NULL), WD_NOTFOUND);
	it->live = false;
	free(it->val);
	it->val = NULL;
}

/* nops random operations; big: extra size of the largest values. */
static void run_ops(env *e, model *m, unsigned nops, uint64_t big)
{
	for (unsigned i = 0; i < nops; i++) {
		uint64_t r = tu_rand(&m->rng) % 100;
		item *it = model_pick(m);
		if (r < 45 || !it)
			op_insert(e, m, big);
		else if (r < 65)
			op_update(e, m, it, big);
		else if (r < 85)
			op_delete(e, m, it);
		else
			check_item(e, it);
	}
}

/* The live item at tid, or NULL. */
static item *model_at(model *m, heap_tid tid)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->it[i].live && m->it[i].tid.blk == tid.blk && m->it[i].tid.slot == tid.slot)
			return &m->it[i];
	return NULL;
}

/* Every live item fetches right, and a scan yields exactly the live set. */
static void check_all(env *e, model *m)
{
	size_t live = 0, seen = 0;
	heap_scan *s;
	heap_tid tid;
	const uint8_t *k, *v;
	uint32_t klen;
	uint64_t vlen;
	int rc;
	for (size_t i = 0; i < m->n; i++)
		if (m->it[i].live) {
			check_item(e, &m->it[i]);
			live++;
		}
	assert_int_equal(heap_scan_begin(e->h, &s), 0);
	while ((rc = heap_scan_next(s, &tid, &k, &klen, &v, &vlen)) == 0) {
		item *it = model_at(m, tid);
		assert_non_null(it);
		assert_int_equal(klen, it->klen);
		assert_memory_equal(k, it->key, klen);
		assert_int_equal(vlen, it->vlen);
		if (vlen)
			assert_memory_equal(v, it->val, vlen);
		seen++;
	}
	assert_int_equal(rc, WD_NOTFOUND);
	heap_scan_end(s);
	assert_int_equal(seen, live);
}

static void check_fsm(env *e)
{
	heap_fsm_report r;
	assert_int_equal(heap_fsm_check(e->h, &r), 0);
	assert_int_equal(r.over, 0);
	assert_int_equal(r.unknown, 0);
	assert_int_equal(r.disk_diff, 0);
}

/* ---- tests ---- */

/* Random operations over three seeds through a 32-page pool, values up to
 * ~1.5 MB; checked by fetch and scan, before and after a reopen. */
static void test_model_round_trip(void **state)
{
	uint64_t moved = 0;
	(void)state;
	for (uint64_t seed = 1; seed <= 3; seed++) {
		env e;
		model m = {.rng = tu_seed(seed * 1000003)};
		heap_stats st;
		env_create(&e, "heap-model", 32);
		run_ops(&e, &m, 500, seed == 1 ? 1500000 : 200000);
		if (seed == 1) { /* one value of 3 MB: ~390 overflow pages */
			item *it = model_add(&m);
			it->klen = 3;
			memcpy(it->key, "3mb", 3);
			it->vlen = 3u << 20;
			it->val = rand_bytes(&m, it->vlen);
			assert_int_equal(heap_insert(e.h, 7, &m.prev, it->key, 3, it->val,
						     it->vlen, &it->tid), 0);
			it->live = true;
		}
		check_all(&e, &m);
		check_fsm(&e);
		heap_stats_get(e.h, &st);
		if (getenv("HEAP_DEBUG"))
			fprintf(stderr, "inplace %llu moved %llu ow %llu of %llu nblocks %u\n",
				(unsigned long long)st.updates_in_place,
				(unsigned long long)st.updates_moved,
				(unsigned long long)st.overflow_written,
				(unsigned long long)st.overflow_freed, nblocks(&e));
		assert_true(st.updates_in_place > 0);
		moved += st.updates_moved;
		assert_true(st.overflow_written > 0);
		assert_true(st.overflow_freed > 0);
		env_shutdown(&e);
		env_reopen(&e, 32);
		heap_stats_get(e.h, &st);
		/* the FSM file was whole: only the zero pages bufmgr reserved
		 * past the last block (an extend chunk) are read */
		assert_true(st.fsm_rebuilt < 8);
		check_all(&e, &m);
		run_ops(&e, &m, 100, 100000);
		check_all(&e, &m);
		check_fsm(&e);
		env_free(&e);
		model_free(&m);
	}
	assert_true(moved > 0);
}

/* Updates: in place while the page has room, moved (new TID, old one gone)
 * when it has not, and between inline and overflowed values both ways. */
static void test_update_moves(void **state)
{
	env e;
	model m = {.rng = 3};
	heap_tid t[55], nt;
	uint8_t *big, *small;
	heap_stats st;
	(void)state;
	env_create(&e, "heap-update", 32);
	big = rand_bytes(&m, 100000);
	small = rand_bytes(&m, 1900);
	for (int i = 0; i < 55; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%02d", i);
		assert_int_equal(heap_insert(e.h, 1, NULL, k, 3, small, 120, &t[i]), 0);
		assert_int_equal(t[i].blk, t[0].blk); /* one page: ~8 KB */
	}
	/* grows by 1780 bytes: the page has less free */
	assert_int_equal(heap_update(e.h, 1, NULL, t[5], small, 1900, &nt), 0);
	assert_true(nt.blk != t[5].blk);
	assert_int_equal(heap_fetch(e.h, t[5], NULL, 0, NULL, NULL, 0, NULL), WD_NOTFOUND);
	t[5] = nt;
	/* shrinks: in place */
	assert_int_equal(heap_update(e.h, 1, NULL, t[6], small, 10, &nt), 0);
	assert_true(nt.blk == t[6].blk && nt.slot == t[6].slot);
	/* inline -> overflow -> inline, in place (the tuple shrinks, then grows
	 * back into the room it left) */
	assert_int_equal(heap_update(e.h, 1, NULL, t[7], big, 100000, &nt), 0);
	assert_true(nt.blk == t[7].blk && nt.slot == t[7].slot);
	{
		uint64_t vlen;
		uint8_t *out = malloc(100000);
		assert_int_equal(heap_fetch(e.h, nt, NULL, 0, NULL, out, 100000, &vlen), 0);
		assert_int_equal(vlen, 100000);
		assert_memory_equal(out, big, 100000);
		free(out);
	}
	assert_int_equal(heap_update(e.h, 1, NULL, t[7], small, 120, &nt), 0);
	heap_stats_get(e.h, &st);
	assert_int_equal(st.updates_moved, 1);
	assert_int_equal(st.updates_in_place, 3);
	assert_int_equal(st.overflow_written, st.overflow_freed);
	assert_true(st.overflow_written >= 100000 / PS);
	check_fsm(&e);
	free(big);
	free(small);
	model_free(&m);
	env_free(&e);
}

/* Deleting everything and inserting it again, many times over, reuses the
 * space: the file does not grow, for small tuples and overflow chains. */
static void test_space_reuse(void **state)
{
	env e;
	model m = {.rng = 42};
	wd_blkno after_first;
	(void)state;
	env_create(&e, "heap-reuse", 64);
	for (int round = 0; round < 6; round++) {
		m.rng = 42; /* the same sizes every round */
		for (int i = 0; i < 400; i++)
			op_insert(&e, &m, 0);
		if (round == 0)
			after_first = nblocks(&e);
		check_all(&e, &m);
		for (size_t i = 0; i < m.n; i++)
			if (m.it[i].live)
				op_delete(&e, &m, &m.it[i]);
		if (getenv("HEAP_DEBUG")) { heap_stats s; heap_stats_get(e.h, &s); fprintf(stderr, "round %d nblocks %u extends %llu tried %llu wrong %llu ovfw %llu ovff %llu\n", round, nblocks(&e), (unsigned long long)s.extends, (unsigned long long)s.pages_tried, (unsigned long long)s.fsm_wrong, (unsigned long long)s.overflow_written, (unsigned long long)s.overflow_freed); }
		/* every page is empty again and the map knows it */
		check_fsm(&e);
	}
	assert_true(nblocks(&e) <= after_first + 8);
	/* one large value, freed and written again ten times */
	{
		uint8_t *v = rand_bytes(&m, 600000);
		heap_tid t;
		wd_blkno before = nblocks(&e);
		for (int i = 0; i < 10; i++) {
			assert_int_equal(heap_insert(e.h, 1, NULL, "big", 3, v, 600000, &t), 0);
			assert_int_equal(heap_delete(e.h, 1, NULL, t), 0);
		}
		assert_true(nblocks(&e) <= (before > 80 ? before : 80) + 8);
		free(v);
	}
	model_free(&m);
	env_free(&e);
}

/* Values over the configured maximum: WD_ETOOBIG with a clear message;
 * one at the maximum is fine. Keys over the limit too. */
static void test_value_limit(void **state)
{
	env e;
	heap_tid t;
	uint8_t *v = calloc(1, 100001);
	uint8_t key[4096] = {0};
	(void)state;
	memset(&e, 0, sizeof e);
	env_create(&e, "heap-limit", 32);
	heap_close(e.h);
	e.ho.max_value_bytes = 100000;
	assert_int_equal(heap_open(e.pool, &e.log, REL, &e.ho, &e.h), 0);
	assert_int_equal(heap_insert(e.h, 1, NULL, "k", 1, v, 100001, &t), WD_ETOOBIG);
	assert_non_null(strstr(wd_last_error(), "value of 100001 bytes exceeds the maximum"));
	assert_int_equal(heap_insert(e.h, 1, NULL, "k", 1, v, 100000, &t), 0);
	assert_int_equal(heap_update(e.h, 1, NULL, t, v, 100001, &t), WD_ETOOBIG);
	assert_int_equal(heap_insert(e.h, 1, NULL, key, heap_max_key_len(e.h) + 1, v, 1, &t),
			 WD_ETOOBIG);
	assert_non_null(strstr(wd_last_error(), "key of"));
	/* the btree's limit (1/8 page) is well within the heap's */
	assert_true(heap_max_key_len(e.h) >= PS / 8);
	assert_int_equal(heap_insert(e.h, 1, NULL, key, PS / 8, v, 5000, &t), 0);
	assert_int_equal(heap_fetch(e.h, (heap_tid){t.blk, 99}, NULL, 0, NULL, NULL, 0, NULL),
			 WD_NOTFOUND);
	assert_int_equal(heap_fetch(e.h, (heap_tid){9999, 0}, NULL, 0, NULL, NULL, 0, NULL),
			 WD_NOTFOUND);
	free(v);
	env_free(&e);
}

/* Short buffers: lengths always set, prefixes copied. */
static void test_fetch_short_buffers(void **state)
{
	env e;
	model m = {.rng = 5};
	heap_tid t;
	uint8_t kb[3], vb[10];
	uint32_t klen;
	uint64_t vlen;
	uint8_t *v;
	(void)state;
	env_create(&e, "heap-short", 32);
	v = rand_bytes(&m, 50000);
	assert_int_equal(heap_insert(e.h, 1, NULL, "abcdef", 6, v, 50000, &t), 0);
	assert_int_equal(heap_fetch(e.h, t, kb, sizeof kb, &klen, vb, sizeof vb, &vlen), 0);
	assert_int_equal(klen, 6);
	assert_int_equal(vlen, 50000);
	assert_memory_equal(kb, "abc", 3);
	assert_memory_equal(vb, v, sizeof vb);
	assert_int_equal(heap_fetch(e.h, t, NULL, 0, NULL, NULL, 0, &vlen), 0);
	assert_int_equal(vlen, 50000);
	free(v);
	env_free(&e);
}

/* Copies file from to file to (whole). */
static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;
	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* The FSM sends inserts to pages with room: after deleting from early
 * pages, inserts fill them without growing the file and try about one page
 * each. A missing FSM file is rebuilt at open. A stale one (entries lower
 * than their pages: saved while the pages were full, put back after
 * deletes made room, as a crash that lost FSM writes leaves it) is
 * reported by heap_fsm_check when trusted, and corrected by an open with
 * fsm_trust off: the room is found again. */
static void test_fsm_finds_room(void **state)
{
	env e;
	model m = {.rng = 9};
	heap_stats a, b;
	heap_fsm_report r;
	char *saved;
	wd_blkno n0;
	(void)state;
	env_create(&e, "heap-fsm", 64);
	for (int i = 0; i < 3000; i++) {
		item *it = model_add(&m);
		it->klen = (uint32_t)snprintf((char *)it->key, sizeof it->key, "%06d", i);
		it->vlen = 100;
		it->val = rand_bytes(&m, 100);
		assert_int_equal(heap_insert(e.h, 1, NULL, it->key, it->klen, it->val, 100,
					     &it->tid), 0);
		it->live = true;
	}
	n0 = nblocks(&e);
	for (size_t i = 0; i < m.n; i += 2)
		op_delete(&e, &m, &m.it[i]);
	heap_stats_get(e.h, &a);
	for (int i = 0; i < 1400; i++) {
		item *it = model_add(&m);
		it->klen = (uint32_t)snprintf((char *)it->key, sizeof it->key, "new%06d", i);
		it->vlen = 90;
		it->val = rand_bytes(&m, 90);
		assert_int_equal(heap_insert(e.h, 1, NULL, it->key, it->klen, it->val, 90,
					     &it->tid), 0);
		it->live = true;
	}
	heap_stats_get(e.h, &b);
	check_all(&e, &m);
	check_fsm(&e);
	/* the holes took them all: no new page, about one page tried each */
	assert_int_equal(nblocks(&e), n0);
	assert_int_equal(b.extends, a.extends);
	assert_true(b.pages_tried - a.pages_tried <= 1400 + 1400 / 4);
	/* reopen without the FSM file: rebuilt by reading the heap */
	env_shutdown(&e);
	assert_int_equal(storage_unlink(e.fsmpath), 0);
	env_reopen(&e, 64);
	heap_stats_get(e.h, &a);
	assert_int_equal(a.fsm_rebuilt, nblocks(&e));
	check_fsm(&e);
	/* reopened after a clean shutdown: the FSM file is used as it is */
	env_shutdown(&e);
	env_reopen(&e, 64);
	heap_stats_get(e.h, &a);
	assert_true(a.fsm_rebuilt < 8); /* only the reserved zero pages */
	check_all(&e, &m);
	/* a stale FSM file: saved now (pages full), put back after deletes */
	saved = tu_path(e.root, "fsm.saved");
	env_shutdown(&e);
	copy_file(e.fsmpath, saved);
	env_reopen(&e, 64);
	for (size_t i = 3000; i < m.n; i++)
		op_delete(&e, &m, &m.it[i]);
	env_shutdown(&e);
	copy_file(saved, e.fsmpath);
	env_reopen(&e, 64); /* trusted: the stale entries are counted */
	assert_int_equal(heap_fsm_check(e.h, &r), 0);
	assert_true(r.under > 0);
	assert_int_equal(r.over, 0);
	env_shutdown(&e);
	e.ho.fsm_trust = false; /* as after an unclean shutdown: rebuilt */
	env_reopen(&e, 64);
	check_fsm(&e);
	heap_stats_get(e.h, &a);
	n0 = nblocks(&e); /* with the zero pages reserved past the end */
	for (int i = 0; i < 1400; i++) {
		item *it = model_add(&m);
		it->klen = (uint32_t)snprintf((char *)it->key, sizeof it->key, "again%06d", i);
		it->vlen = 90;
		it->val = rand_bytes(&m, 90);
		assert_int_equal(heap_insert(e.h, 1, NULL, it->key, it->klen, it->val, 90,
					     &it->tid), 0);
		it->live = true;
	}
	heap_stats_get(e.h, &b);
	assert_int_equal(b.extends, a.extends); /* the holes were found */
	assert_int_equal(nblocks(&e), n0);
	check_all(&e, &m);
	check_fsm(&e);
	free(saved);
	model_free(&m);
	env_free(&e);
}

/* Adds a row "<prefix><i>" with a vlen-byte value to e and the model. */
static item *add_row(env *e, model *m, const char *prefix, int i, uint64_t vlen)
{
	item *it = model_add(m);
	it->klen = (uint32_t)snprintf((char *)it->key, sizeof it->key, "%s%06d", prefix, i);
	it->vlen = vlen;
	it->val = rand_bytes(m, vlen);
	assert_int_equal(heap_insert(e->h, 1, NULL, it->key, it->klen, it->val, vlen,
				     &it->tid), 0);
	it->live = true;
	return it;
}

/* The FSM's search skips groups of FSM_GROUP entries by their max: an
 * appending load (every page full behind it) leaves the groups' maxima
 * low, and a page emptied far back, in a group of its own, is still found
 * at once by the next insert, with no extend and one page tried; the
 * insert after it, with no room anywhere, extends. Release and ASan well
 * under a second. */
static void test_fsm_groups(void **state)
{
	env e;
	model m = {.rng = 21};
	heap_stats a, b;
	wd_blkno target = 3 * FSM_GROUP + 5, n0;
	(void)state;
	env_create(&e, "heap-fsm-groups", 256);
	for (int i = 0; nblocks(&e) < 6 * FSM_GROUP; i++)
		add_row(&e, &m, "load", i, 100);
	n0 = nblocks(&e);
	for (size_t i = 0; i < m.n; i++)
		if (m.it[i].live && m.it[i].tid.blk == target)
			op_delete(&e, &m, &m.it[i]);
	/* fill the last page, so only the hole has room */
	heap_stats_get(e.h, &a);
	while (1) {
		item *it = add_row(&e, &m, "fill", (int)m.n, 100);
		heap_stats_get(e.h, &b);
		if (it->tid.blk == target)
			break;
		assert_true(it->tid.blk == n0 - 1); /* the tail page, until full */
		assert_int_equal(b.extends, a.extends);
	}
	assert_int_equal(b.extends, a.extends);
	assert_int_equal(nblocks(&e), n0);
	check_all(&e, &m);
	check_fsm(&e);
	model_free(&m);
	env_free(&e);
}

/* A torn FSM page is rebuilt at open, not an error. */
static void test_fsm_torn(void **state)
{
	env e;
	model m = {.rng = 11};
	uint8_t junk[4096];
	st_file *f;
	heap_stats st;
	(void)state;
	env_create(&e, "heap-fsmtorn", 32);
	run_ops(&e, &m, 300, 0);
	env_shutdown(&e);
	memset(junk, 0x5A, sizeof junk);
	assert_int_equal(storage_open(e.fsmpath, 0, &f), 0);
	assert_int_equal(storage_write(f, junk, sizeof junk, PS / 2), 0);
	assert_int_equal(storage_close(f), 0);
	env_reopen(&e, 32);
	heap_stats_get(e.h, &st);
	assert_int_equal(st.fsm_rebuilt, nblocks(&e));
	check_fsm(&e);
	check_all(&e, &m);
	run_ops(&e, &m, 100, 0);
	check_fsm(&e);
	model_free(&m);
	env_free(&e);
}

/* Replays db's log from `from` into dir (its own scratch directory). */
static void replay(env *e, const char *dir, wd_lsn from, redo_ctx *st)
{
	assert_int_equal(rt_replay(e->db, &e->wo, from, dir, 16, st), 0);
}

/* Redo rebuilds the same pages from an empty directory, and applying the
 * whole log again on top of the result changes nothing. */
static void test_redo_twice(void **state)
{
	env e;
	model m = {.rng = 77};
	redo_ctx st;
	wd_lsn mid;
	char *b;
	(void)state;
	env_create(&e, "heap-redo", 32);
	run_ops(&e, &m, 300, 300000);
	mid = wal_insert_pos(e.w);
	run_ops(&e, &m, 300, 300000);
	env_shutdown(&e);
	b = tu_path(e.root, "replica");
	replay(&e, b, WAL_SEG_HEADER_SIZE, &st);
	assert_true(st.applied > 600);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	/* again from the start: a record that formats its page afresh
	 * (WAL_BLK_WILL_INIT) is applied again, and so are the later ones of
	 * that page; the result is the same */
	replay(&e, b, WAL_SEG_HEADER_SIZE, &st);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	/* again from the middle: changes of pages formatted before it are
	 * skipped by the pageLSN test */
	replay(&e, b, mid, &st);
	assert_true(st.skipped > 0);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	free(b);
	model_free(&m);
	env_free(&e);
}

/* Per block, whether a change after the redo point was seen, and whether
 * its first one could rebuild the page alone (image or WILL_INIT). */
typedef struct fpi_seen {
	uint8_t seen[4096], whole[4096], image[4096];
	wd_lsn first[4096];
} fpi_seen;

/* Reads the log from `from` and checks that every page's first change
 * carries an image or rebuilds the page; returns the blocks with images. */
static unsigned check_images(env *e, wd_lsn from, fpi_seen *f)
{
	wal_reader *r;
	const wal_decoded *rec;
	unsigned images = 0;
	int rc;
	memset(f, 0, sizeof *f);
	assert_int_equal(wal_reader_open(e->db, e->wo.db_id, e->wo.segment_size, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, from), 0);
	while ((rc = wal_reader_next(r, &rec)) == 0) {
		const wal_block_ref *b = &rec->blocks[0];
		assert_int_equal(rec->rmgr, WAL_RMGR_HEAP);
		assert_true(b->blk < 4096);
		if (!f->seen[b->blk]) {
			f->seen[b->blk] = 1;
			f->first[b->blk] = rec->lsn;
			f->image[b->blk] = (b->flags & WAL_BLK_HAS_IMAGE) != 0;
			f->whole[b->blk] = (b->flags & (WAL_BLK_HAS_IMAGE | WAL_BLK_WILL_INIT)) != 0;
			assert_true(f->whole[b->blk]);
			images += f->image[b->blk];
		} else if (f->first[b->blk] != from) {
			/* only the first (a page whose first change is the record
			 * AT the redo point has pageLSN == redo point, which
			 * wal_log_needs_image counts as "at or before": one
			 * redundant image, see heap/README.md) */
			assert_false(b->flags & WAL_BLK_HAS_IMAGE);
		}
	}
	assert_int_equal(rc, WD_NOTFOUND);
	wal_reader_close(r);
	return images;
}

/* Overwrites the second half of block blk of rel in dir with garbage. */
static void tear_page(const char *dir, wd_blkno blk)
{
	char path[4096];
	uint8_t junk[PS / 2];
	st_file *f;
	memset(junk, 0xA5, sizeof junk);
	snprintf(path, sizeof path, "%s/base/%u", dir, REL);
	assert_int_equal(storage_open(path, 0, &f), 0);
	assert_int_equal(storage_write(f, junk, sizeof junk, (uint64_t)blk * PS + PS / 2), 0);
	assert_int_equal(storage_close(f), 0);
}

/* After a redo point is set, each page's first change carries a full-page
 * image (or rebuilds the page), and replaying from the redo point repairs
 * torn pages. */
static void test_full_page_images(void **state)
{
	env e;
	model m = {.rng = 1234};
	fpi_seen *f = calloc(1, sizeof *f);
	wd_lsn redo;
	redo_ctx st;
	unsigned images, torn = 0;
	char *b;
	(void)state;
	env_create(&e, "heap-fpi", 32);
	run_ops(&e, &m, 400, 50000);
	assert_int_equal(wal_set_redo_point(e.w, &redo), 0);
	run_ops(&e, &m, 300, 50000);
	env_shutdown(&e);
	images = check_images(&e, redo, f);
	assert_true(images >= 5);
	b = tu_path(e.root, "replica");
	replay(&e, b, WAL_SEG_HEADER_SIZE, &st);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	for (wd_blkno blk = 0; blk < 4096; blk++)
		if (f->image[blk] && torn++ < 8)
			tear_page(b, blk);
	assert_true(rt_compare_rel(e.db, b, REL, PS) >= 0);
	replay(&e, b, redo, &st);
	assert_true(st.images >= images);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	free(b);
	free(f);
	model_free(&m);
	env_free(&e);
}

/* ---- the image decision and a checkpoint in between (wal/README I11) ---- */

/* The WAL insert hook of test_fpi_race: once armed, moves the redo point
 * at the next insert, between heap_log's image decision and its insert. */
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

/* The pageLSN of heap block blk as the pool has it. */
static wd_lsn block_lsn(env *e, wd_blkno blk)
{
	bm_buf *buf;
	wd_lsn l;
	assert_int_equal(bufmgr_pin(e->pool, REL, blk, BM_READ, &buf), 0);
	bufmgr_latch(buf, BM_SHARE);
	l = page_lsn(bufmgr_page(buf));
	bufmgr_unlatch(buf);
	bufmgr_unpin(e->pool, buf);
	return l;
}

/* Overwrites block blk of rel in dir with zeroes. */
static void zero_page(const char *dir, wd_blkno blk)
{
	char path[4096];
	uint8_t z[PS];
	st_file *f;
	memset(z, 0, sizeof z);
	snprintf(path, sizeof path, "%s/base/%u", dir, REL);
	assert_int_equal(storage_open(path, 0, &f), 0);
	assert_int_equal(storage_write(f, z, sizeof z, (uint64_t)blk * PS), 0);
	assert_int_equal(storage_close(f), 0);
}

/*
 * A checkpoint moves the redo point exactly between heap_log's image
 * decision (no image: the page was changed after the old redo point) and
 * its insert (the WAL insert hook). The insert is refused and heap_log
 * decides again: the record, the first after the new redo point, carries
 * the page's image; read back, it is there. Replaying from the new redo
 * point alone repairs that page torn, or zeroed, in a copy of the file.
 */
static void test_fpi_race(void **state)
{
	env e;
	model m = {.rng = 5};
	uint8_t val[200];
	heap_tid t[40], nt;
	wal_reader *r;
	const wal_decoded *rec;
	wal_counters ws;
	heap_stats hs;
	redo_ctx st;
	wd_lsn before, redo0;
	char *b[2];
	(void)state;
	env_create(&e, "heap-fpi-race", 64);
	memset(val, 'r', sizeof val);
	for (int i = 0; i < 40; i++)
		assert_int_equal(heap_insert(e.h, 3, &m.prev, &i, sizeof i, val, sizeof val, &t[i]),
				 0);
	/* the pages' first changes after this redo point carry images ... */
	assert_int_equal(wal_set_redo_point(e.w, &redo0), 0);
	assert_int_equal(heap_delete(e.h, 3, &m.prev, t[38]), 0);
	assert_int_equal(t[38].blk, t[39].blk);
	/* ... so the next change of that page is decided without one */
	before = block_lsn(&e, t[39].blk);
	assert_true(before >= redo0);
	race.w = e.w;
	race.armed = true;
	wal_set_insert_hook(e.w, race_hook, NULL);
	assert_int_equal(heap_delete(e.h, 3, &m.prev, t[39]), 0);
	wal_set_insert_hook(e.w, NULL, NULL);
	assert_false(race.armed);
	assert_int_equal(race.fpw_seen, before); /* decided without an image */
	assert_true(race.redo > before);
	assert_int_equal(block_lsn(&e, t[39].blk), race.redo); /* landed AT it */
	wal_stats(e.w, &ws);
	assert_int_equal(ws.fpw_retries, 1);
	heap_stats_get(e.h, &hs);
	assert_true(hs.images >= 2); /* the first delete's and the retried one's */
	/* later history on that page and others */
	for (int i = 0; i < 10; i++)
		assert_int_equal(heap_insert(e.h, 3, &m.prev, "k", 1, val, 100, &nt), 0);
	assert_int_equal(heap_delete(e.h, 3, &m.prev, t[0]), 0);
	env_shutdown(&e);
	/* the record at the new redo point: the delete, with the page's image */
	assert_int_equal(wal_reader_open(e.db, e.wo.db_id, e.wo.segment_size, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, race.redo), 0);
	assert_int_equal(wal_reader_next(r, &rec), 0);
	assert_int_equal(rec->lsn, race.redo);
	assert_int_equal(rec->type, HEAP_DELETE);
	assert_int_equal(rec->blocks[0].blk, t[39].blk);
	assert_true(rec->blocks[0].flags & WAL_BLK_HAS_IMAGE);
	wal_reader_close(r);
	/* replay from the new redo point repairs the page torn, or zeroed */
	for (int k = 0; k < 2; k++) {
		b[k] = tu_path(e.root, k ? "zeroed" : "torn");
		replay(&e, b[k], WAL_SEG_HEADER_SIZE, &st);
		if (k)
			zero_page(b[k], t[39].blk);
		else
			tear_page(b[k], t[39].blk);
		assert_int_equal(rt_compare_rel(e.db, b[k], REL, PS), (int64_t)t[39].blk);
		replay(&e, b[k], race.redo, &st);
		assert_true(st.images >= 1);
		assert_int_equal(rt_compare_rel(e.db, b[k], REL, PS), -1);
		free(b[k]);
	}
	model_free(&m);
	env_free(&e);
}

/* Every page of the heap relation as the pool has it (malloc'd). */
static uint8_t *snapshot(env *e, wd_blkno *n)
{
	uint8_t *s;
	*n = nblocks(e);
	s = malloc((size_t)*n * PS + 1);
	assert_non_null(s);
	for (wd_blkno b = 0; b < *n; b++) {
		bm_buf *buf;
		assert_int_equal(bufmgr_pin(e->pool, REL, b, BM_READ, &buf), 0);
		bufmgr_latch(buf, BM_SHARE);
		memcpy(s + (size_t)b * PS, bufmgr_page(buf), PS);
		bufmgr_unlatch(buf);
		bufmgr_unpin(e->pool, buf);
	}
	return s;
}

/* The pages equal the snapshot s of n blocks; at most one block was added
 * (an insert that found no room extends the file before it logs), and it
 * is still a new, all-zero page. */
static void assert_unchanged(env *e, const uint8_t *s, wd_blkno n)
{
	wd_blkno n2;
	uint8_t *now = snapshot(e, &n2);
	assert_true(n2 == n || n2 == n + 1);
	for (wd_blkno b = 0; b < n; b++)
		assert_memory_equal(now + (size_t)b * PS, s + (size_t)b * PS, PS);
	if (n2 > n)
		assert_true(page_is_zero(now + (size_t)n * PS, PS));
	free(now);
}

/* A change whose WAL insert fails (WD_ENOSPC: the disk is full) leaves
 * every page byte for byte as it was - inserts, in-place updates and
 * deletes, with and without a full-page image - and does not go looking
 * for another page (the file does not grow). Once space returns the
 * changes go through, and the log replays to the same pages. */
static void test_failed_wal_insert(void **state)
{
	env e;
	model m = {.rng = 31};
	uint8_t val[300], *snap;
	heap_tid t[40], nt;
	wd_blkno n;
	redo_ctx st;
	int rc = 0, i;
	char *b;
	(void)state;
	env_create(&e, "heap-enospc", 512); /* no eviction (it would need the WAL) */
	memset(val, 'v', sizeof val);
	for (i = 0; i < 40; i++)
		assert_int_equal(heap_insert(e.h, 3, &m.prev, &i, sizeof i, val, 200, &t[i]), 0);
	/* from here each page's first change carries an image */
	assert_int_equal(wal_set_redo_point(e.w, &(wd_lsn){0}), 0);
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, "/wal/"), 0);
	assert_int_equal(heap_insert(e.h, 3, &m.prev, "x", 1, val, 10, &nt), 0);
	assert_int_equal(wal_write_to(e.w, wal_insert_pos(e.w)), WD_ENOSPC);
	/* fill the WAL buffer until an insert is refused */
	for (i = 0; i < 100000; i++) {
		snap = snapshot(&e, &n);
		rc = heap_insert(e.h, 3, &m.prev, &i, sizeof i, val, sizeof val, &nt);
		if (rc != 0)
			break;
		free(snap);
	}
	assert_int_equal(rc, WD_ENOSPC);
	assert_non_null(strstr(wd_last_error(), "no space for WAL"));
	assert_unchanged(&e, snap, n);
	/* an in-place update and a delete of pages not changed since the
	 * redo point: their records would carry an image */
	assert_int_equal(heap_update(e.h, 3, &m.prev, t[0], val, 200, &nt), WD_ENOSPC);
	assert_int_equal(heap_delete(e.h, 3, &m.prev, t[1]), WD_ENOSPC);
	assert_unchanged(&e, snap, n);
	free(snap);
	/* in-place updates of a page that was (no image), each record
	 * smaller than the insert refused: taken until there is no room for
	 * one either, and the refused one changes nothing */
	for (i = 0; i < 100000; i++) {
		snap = snapshot(&e, &n);
		if ((rc = heap_update(e.h, 3, &m.prev, t[39], val, 150, &t[39])) != 0)
			break;
		free(snap);
	}
	assert_int_equal(rc, WD_ENOSPC);
	assert_unchanged(&e, snap, n);
	free(snap);
	/* space again */
	storage_fault_clear();
	assert_int_equal(heap_update(e.h, 3, &m.prev, t[0], val, 250, &nt), 0);
	assert_int_equal(heap_delete(e.h, 3, &m.prev, t[1]), 0);
	assert_int_equal(heap_insert(e.h, 3, &m.prev, "y", 1, val, 10, &nt), 0);
	check_fsm(&e);
	env_shutdown(&e);
	b = tu_path(e.root, "replica");
	replay(&e, b, WAL_SEG_HEADER_SIZE, &st);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	free(b);
	env_free(&e);
}

/* ---- acting at an exact step of a change ----
 * test_heap is linked with -Wl,--wrap=storage_crash_point (Makefile): every
 * crash point the heap passes comes here first, and an armed hook runs at
 * its next hit (then disarms). */
void __real_storage_crash_point(const char *name);
void __wrap_storage_crash_point(const char *name);

static struct {
	const char *name;     /* armed crash point; NULL: none */
	void (*fn)(void);
	env *e;
	uint32_t leave;       /* wal_fill's argument */
	wd_blkno blk;         /* hook_dirty: the block expected dirty */
	bool ran, dirty_ok;
} hook;

void __wrap_storage_crash_point(const char *name)
{
	if (hook.name && strcmp(name, hook.name) == 0) {
		hook.name = NULL;
		hook.ran = true;
		hook.fn();
	}
	__real_storage_crash_point(name);
}

static void hook_arm(env *e, const char *name, void (*fn)(void), uint32_t leave)
{
	hook.e = e;
	hook.fn = fn;
	hook.leave = leave;
	hook.ran = false;
	hook.name = name;
}

/* A WAL record of exactly size bytes (a multiple of WAL_ALIGN), inserted. */
static void wal_put_filler(env *e, uint32_t size)
{
	static uint64_t seq;
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len, base;
	wd_lsn lsn;
	tw_record(&b, 99, ++seq, 0, &rec, &base);
	assert_true(size >= wal_align(base) && size % WAL_ALIGN == 0);
	tw_record(&b, 99, seq, size - base, &rec, &len);
	assert_int_equal(len, size);
	assert_int_equal(wal_insert(e->w, rec, len, &lsn), 0);
	walrec_free(&b);
}

/* Bytes of records that still fit in the WAL buffers while the disk is
 * full: wal_insert refuses a record unless it ends within written +
 * buffer size (wal/README I10). */
static uint64_t wal_room(env *e)
{
	uint32_t seg = e->wo.segment_size;
	return wal_usable_from_lsn(wal_written_lsn(e->w) + e->wo.buffers_bytes, seg) -
	       wal_usable_from_lsn(wal_insert_pos(e->w), seg);
}

/*
 * The WAL disk becomes full (every WAL write fails with ENOSPC) and the
 * buffers are filled so that records of `leave` bytes in all still fit and
 * no more: the next heap record fails with WD_ENOSPC exactly when it needs
 * more. storage_fault_clear + wal_write_to give the space back.
 */
static void wal_fill(env *e, uint32_t leave)
{
	uint64_t room;
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, "/wal/"), 0);
	wal_put_filler(e, 64);
	assert_int_equal(wal_write_to(e->w, wal_insert_pos(e->w)), WD_ENOSPC);
	room = wal_room(e);
	assert_true(room >= leave + 128);
	wal_put_filler(e, (uint32_t)(room - leave));
	assert_int_equal(wal_room(e), leave);
}

/* Space again: the fault goes and the buffers are written out. */
static void wal_unfill(env *e)
{
	storage_fault_clear();
	assert_int_equal(wal_write_to(e->w, wal_insert_pos(e->w)), 0);
}

static void hook_fill(void)
{
	wal_fill(hook.e, hook.leave);
}

static uint64_t fetch_vlen(env *e, heap_tid t, int *rc)
{
	uint64_t vlen = 0;
	*rc = heap_fetch(e->h, t, NULL, 0, NULL, NULL, 0, &vlen);
	return vlen;
}

static unsigned count_tuples(env *e)
{
	heap_scan *s;
	heap_tid tid;
	const uint8_t *k, *v;
	uint32_t klen;
	uint64_t vlen;
	unsigned n = 0;
	int rc;
	assert_int_equal(heap_scan_begin(e->h, &s), 0);
	while ((rc = heap_scan_next(s, &tid, &k, &klen, &v, &vlen)) == 0)
		n++;
	assert_int_equal(rc, WD_NOTFOUND);
	heap_scan_end(s);
	return n;
}

/*
 * Changes that fail part-way (WD_ENOSPC from the WAL at one exact record of
 * a multi-record change) report what happened: an update or delete whose
 * tuple change is logged succeeds even if freeing the old chain then fails
 * (an orphan, counted); a moved update whose old version cannot be deleted
 * is taken back (the new version deleted again: nothing changed, the
 * error returned, *newtid == tid); only if that fails too are both
 * versions left, *newtid naming the new one. The log replays to the same
 * pages.
 */
static void test_update_fails_part_way(void **state)
{
	env e;
	model m = {.rng = 17};
	heap_tid t[55], k1, k2, k3, nt;
	uint8_t *big, *small;
	heap_stats st;
	redo_ctx rs;
	unsigned n0;
	int rc;
	char *b;
	(void)state;
	env_create(&e, "heap-partway", 512); /* no eviction (it would need the WAL) */
	big = rand_bytes(&m, 30000);
	small = rand_bytes(&m, 1900);
	/* one page: three tuples with chains, 52 of 120 bytes (~600 bytes free) */
	assert_int_equal(heap_insert(e.h, 1, &m.prev, "K1", 2, big, 30000, &k1), 0);
	assert_int_equal(heap_insert(e.h, 1, &m.prev, "K2", 2, big, 30000, &k2), 0);
	assert_int_equal(heap_insert(e.h, 1, &m.prev, "K3", 2, big, 30000, &k3), 0);
	for (int i = 0; i < 52; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%02d", i);
		assert_int_equal(heap_insert(e.h, 1, &m.prev, k, 3, small, 120, &t[i]), 0);
		assert_int_equal(t[i].blk, k1.blk);
	}
	n0 = count_tuples(&e);

	/* 1. in place, then the old chain's free fails: done, chain orphaned */
	hook_arm(&e, "heap-update-before-overflow-free", hook_fill, 0);
	assert_int_equal(heap_update(e.h, 1, &m.prev, k1, small, 10, &nt), 0);
	assert_true(hook.ran);
	assert_true(nt.blk == k1.blk && nt.slot == k1.slot);
	assert_int_equal(fetch_vlen(&e, k1, &rc), 10);
	wal_unfill(&e);
	heap_stats_get(e.h, &st);
	assert_int_equal(st.chains_orphaned, 1);

	/* 2. moved (1900 bytes do not fit), then the old chain's free fails:
	 * done, *newtid the new TID, the old slot empty */
	hook_arm(&e, "heap-update-before-overflow-free", hook_fill, 0);
	assert_int_equal(heap_update(e.h, 1, &m.prev, k2, small, 1900, &nt), 0);
	assert_true(hook.ran);
	assert_true(nt.blk != k2.blk);
	assert_int_equal(fetch_vlen(&e, k2, &rc), 0);
	assert_int_equal(rc, WD_NOTFOUND);
	assert_int_equal(fetch_vlen(&e, nt, &rc), 1900);
	k2 = nt;
	wal_unfill(&e);

	/* 3. moved, and the old version's delete fails: its record would carry
	 * a full-page image (the page's first change after the redo point,
	 * ~7 KB) and only 1 KB of WAL fits. The new version's delete fits:
	 * the move is taken back, nothing changed. */
	assert_int_equal(wal_set_redo_point(e.w, &(wd_lsn){0}), 0);
	hook_arm(&e, "heap-update-after-new-version", hook_fill, 1024);
	rc = heap_update(e.h, 1, &m.prev, t[5], small, 1900, &nt);
	assert_true(hook.ran);
	assert_int_equal(rc, WD_ENOSPC);
	assert_non_null(strstr(wd_last_error(), "taken back"));
	assert_true(nt.blk == t[5].blk && nt.slot == t[5].slot);
	assert_int_equal(fetch_vlen(&e, t[5], &rc), 120);
	assert_int_equal(rc, 0);
	assert_int_equal(count_tuples(&e), n0);
	wal_unfill(&e);
	heap_stats_get(e.h, &st);
	assert_int_equal(st.updates_undone, 1);
	assert_int_equal(st.updates_moved, 1);

	/* 4. moved, and no WAL fits at all: neither delete goes in; both
	 * versions are live and *newtid names the new one */
	hook_arm(&e, "heap-update-after-new-version", hook_fill, 0);
	rc = heap_update(e.h, 1, &m.prev, t[6], small, 1900, &nt);
	assert_true(hook.ran);
	assert_int_equal(rc, WD_ENOSPC);
	assert_non_null(strstr(wd_last_error(), "two versions"));
	assert_true(nt.blk != t[6].blk);
	assert_int_equal(fetch_vlen(&e, t[6], &rc), 120);
	assert_int_equal(fetch_vlen(&e, nt, &rc), 1900);
	assert_int_equal(count_tuples(&e), n0 + 1);
	wal_unfill(&e);
	assert_int_equal(heap_delete(e.h, 1, &m.prev, nt), 0); /* the caller's choice */
	assert_int_equal(count_tuples(&e), n0);

	/* 5. a delete whose chain free fails: done, chain orphaned */
	hook_arm(&e, "heap-delete-before-overflow-free", hook_fill, 0);
	assert_int_equal(heap_delete(e.h, 1, &m.prev, k3), 0);
	assert_true(hook.ran);
	assert_int_equal(fetch_vlen(&e, k3, &rc), 0);
	assert_int_equal(rc, WD_NOTFOUND);
	wal_unfill(&e);
	heap_stats_get(e.h, &st);
	assert_int_equal(st.chains_orphaned, 3);
	assert_int_equal(count_tuples(&e), n0 - 1);

	/* the survivors read back; map and log agree with the pages */
	assert_int_equal(fetch_vlen(&e, k2, &rc), 1900);
	for (int i = 0; i < 52; i++)
		assert_int_equal(fetch_vlen(&e, t[i], &rc), 120);
	check_fsm(&e);
	env_shutdown(&e);
	b = tu_path(e.root, "replica");
	replay(&e, b, WAL_SEG_HEADER_SIZE, &rs);
	assert_int_equal(rt_compare_rel(e.db, b, REL, PS), -1);
	free(b);
	free(big);
	free(small);
	model_free(&m);
	env_free(&e);
}

static int find_dirty(void *arg, wd_relid rel, wd_blkno blk, wd_lsn rec_lsn)
{
	wd_lsn *before = arg;
	if (rel == REL && blk == hook.blk && rec_lsn < *before)
		hook.dirty_ok = true;
	return 0;
}

/* At heap-after-wal-insert: what a checkpoint starting now would see. */
static void hook_dirty(void)
{
	wd_lsn redo = wal_insert_pos(hook.e->w); /* the record lies before it */
	assert_int_equal(bufmgr_dirty_pages(hook.e->pool, find_dirty, &redo), 0);
}

/*
 * Log-first ordering against a checkpoint (README I8): as soon as a
 * change's record is in the WAL, its page is dirty with a recLSN at or
 * before the record, so a checkpoint that takes its redo point after the
 * record and then collects dirty pages writes the page (after the change:
 * the write waits for the latch) - redo from that redo point needs no
 * record before it. Without that, a page that was clean would be skipped
 * and the change lost in a crash.
 */
static void test_dirty_before_log(void **state)
{
	env e;
	heap_tid a, b;
	(void)state;
	env_create(&e, "heap-dirty", 32);
	assert_int_equal(heap_insert(e.h, 1, NULL, "a", 1, "AAAA", 4, &a), 0);
	assert_int_equal(bufmgr_flush_all(e.pool), 0); /* the page is clean */
	hook.blk = a.blk;
	hook.dirty_ok = false;
	hook_arm(&e, "heap-after-wal-insert", hook_dirty, 0);
	assert_int_equal(heap_insert(e.h, 1, NULL, "b", 1, "BBBB", 4, &b), 0);
	assert_true(hook.ran);
	assert_int_equal(b.blk, a.blk);
	assert_true(hook.dirty_ok);
	env_free(&e);
}

/*
 * After a crash the FSM file may say "full" for pages that redo emptied
 * (the FSM is not logged, and its dirty pages died with the pool). Opened
 * with fsm_trust, heap_fsm_check reports those entries (FSM-I1: entries
 * equal their pages) and the room is never offered; opened without it
 * (what a caller does after an unclean shutdown), every entry is rebuilt
 * from its page and the room is used again instead of growing the file.
 */
static void test_fsm_after_crash(void **state)
{
	env e;
	heap_tid big, s, t;
	uint8_t *v = calloc(1, 100000);
	heap_fsm_report r;
	heap_stats st;
	wd_lsn from;
	wd_blkno n0;
	(void)state;
	env_create(&e, "heap-fsmcrash", 256);
	assert_int_equal(heap_insert(e.h, 1, NULL, "big", 3, v, 100000, &big), 0);
	assert_int_equal(heap_insert(e.h, 1, NULL, "s", 1, "x", 1, &s), 0);
	env_shutdown(&e);
	env_reopen(&e, 256);
	from = wal_insert_pos(e.w);
	assert_int_equal(heap_delete(e.h, 1, NULL, big), 0); /* 13 chain pages emptied */
	env_kill(&e);
	assert_int_equal(rt_replay(e.db, &e.wo, from, e.db, 16, NULL), 0); /* redo */
	/* trusted: the stale entries are counted (the caller vouched for the
	 * file, so not an error) */
	env_reopen(&e, 256);
	n0 = nblocks(&e);
	assert_int_equal(heap_fsm_check(e.h, &r), 0);
	assert_true(r.under >= 13);
	assert_int_equal(r.over, 0);
	env_shutdown(&e);
	/* not trusted: rebuilt, and the emptied pages take the next chain */
	e.ho.fsm_trust = false;
	env_reopen(&e, 256);
	heap_stats_get(e.h, &st);
	assert_int_equal(st.fsm_rebuilt, nblocks(&e));
	check_fsm(&e);
	assert_int_equal(heap_fsm_check(e.h, &r), 0);
	assert_int_equal(r.under, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(heap_insert(e.h, 1, NULL, "big2", 4, v, 100000, &t), 0);
		assert_int_equal(heap_delete(e.h, 1, NULL, t), 0);
	}
	assert_int_equal(nblocks(&e), n0);
	heap_stats_get(e.h, &st);
	assert_int_equal(st.extends, 0);
	check_fsm(&e);
	free(v);
	env_free(&e);
}

/* The blocks of the chain of the tuple at t (at most 8). */
static unsigned chain_blocks(env *e, heap_tid t, wd_blkno *out)
{
	bm_buf *buf;
	heap_item_view iv;
	heap_overflow_view ov;
	unsigned n = 0;
	wd_blkno blk;
	assert_int_equal(bufmgr_pin(e->pool, REL, t.blk, BM_READ, &buf), 0);
	bufmgr_latch(buf, BM_SHARE);
	assert_int_equal(heap_slot_view_decode(bufmgr_page(buf), PS, t.slot, &iv), 0);
	blk = iv.ovf_first;
	bufmgr_unlatch(buf);
	bufmgr_unpin(e->pool, buf);
	while (blk != WD_INVALID_BLKNO && n < 8) {
		out[n++] = blk;
		assert_int_equal(bufmgr_pin(e->pool, REL, blk, BM_READ, &buf), 0);
		bufmgr_latch(buf, BM_SHARE);
		assert_int_equal(heap_overflow_view_decode(bufmgr_page(buf), PS, &ov), 0);
		blk = ov.next;
		bufmgr_unlatch(buf);
		bufmgr_unpin(e->pool, buf);
	}
	return n;
}

/* Sets the u32 at offset off of block blk (in the pool) to v; returns the
 * old value. The checksum is made when the page is written: the damage is
 * the kind a bug or a bad write with a good checksum leaves. */
static uint32_t poke32(env *e, wd_blkno blk, uint32_t off, uint32_t v)
{
	bm_buf *buf;
	uint32_t old;
	assert_int_equal(bufmgr_pin(e->pool, REL, blk, BM_READ, &buf), 0);
	bufmgr_latch(buf, BM_EXCL);
	old = get_le32(bufmgr_page(buf) + off);
	put_le32(bufmgr_page(buf) + off, v);
	bufmgr_mark_dirty(buf, wal_insert_pos(e->w));
	bufmgr_unlatch(buf);
	bufmgr_unpin(e->pool, buf);
	return old;
}

/* heap_fetch of t: WD_ECORRUPT naming block blk. */
static void assert_chain_corrupt(env *e, heap_tid t, uint8_t *out, wd_blkno blk)
{
	char name[32];
	uint64_t vlen;
	heap_scan *s;
	heap_tid tid;
	const uint8_t *k, *v;
	uint32_t klen;
	int rc;
	assert_int_equal(heap_fetch(e->h, t, NULL, 0, NULL, out, 20000, &vlen), WD_ECORRUPT);
	snprintf(name, sizeof name, "block %u", blk);
	assert_non_null(strstr(wd_last_error(), name));
	assert_int_equal(heap_scan_begin(e->h, &s), 0);
	while ((rc = heap_scan_next(s, &tid, &k, &klen, &v, &vlen)) == 0)
		;
	assert_int_equal(rc, WD_ECORRUPT);
	heap_scan_end(s);
}

/*
 * A damaged overflow chain is never read as a value (README P9): a chunk
 * shorter or longer than the value needs at that point, or a chain that
 * goes on past the value's end, is WD_ECORRUPT naming the block - from
 * heap_fetch and from a scan - not a silent wrong answer.
 */
static void test_damaged_chain(void **state)
{
	env e;
	model m = {.rng = 23};
	wd_blkno c[8];
	heap_tid t;
	uint8_t *v, *out = malloc(20000);
	uint64_t vlen;
	uint32_t old;
	(void)state;
	env_create(&e, "heap-chain-damage", 32);
	v = rand_bytes(&m, 20000); /* chunks of 8152, 8152, 3696 bytes */
	assert_int_equal(heap_insert(e.h, 1, NULL, "v", 1, v, 20000, &t), 0);
	assert_int_equal(chain_blocks(&e, t, c), 3);
	assert_int_equal(heap_fetch(e.h, t, NULL, 0, NULL, out, 20000, &vlen), 0);
	assert_memory_equal(out, v, 20000);
	/* a middle chunk shorter than a whole page */
	old = poke32(&e, c[1], PS - 4, 8000);
	assert_chain_corrupt(&e, t, out, c[1]);
	poke32(&e, c[1], PS - 4, old);
	/* the last chunk longer than what is left of the value */
	old = poke32(&e, c[2], PS - 4, 4000);
	assert_chain_corrupt(&e, t, out, c[2]);
	poke32(&e, c[2], PS - 4, old);
	/* the chain goes on past the value's end */
	old = poke32(&e, c[2], PS - 8, c[0]);
	assert_chain_corrupt(&e, t, out, c[2]);
	poke32(&e, c[2], PS - 8, old);
	/* whole again */
	assert_int_equal(heap_fetch(e.h, t, NULL, 0, NULL, out, 20000, &vlen), 0);
	assert_memory_equal(out, v, 20000);
	free(v);
	free(out);
	model_free(&m);
	env_free(&e);
}

/* Teardown: no injected fault or hook outlives its test, even a failed one. */
static int clear_faults(void **state)
{
	(void)state;
	storage_fault_clear();
	hook.name = NULL;
	return 0;
}

/* heap_fetch_key: the value when the tuple holds the key and is inline,
 * WD_NOTFOUND for another key, an empty slot or a block past the end,
 * WD_ETOOBIG for an overflowed value; the page stays pinned across calls
 * on one block and is let go by a call on another and by release. */
static void test_fetch_key_hold(void **state)
{
	env e;
	model m = {.rng = 9};
	heap_hold hold = {0};
	heap_tid a, b, big;
	uint8_t vb[64], *v;
	uint64_t vlen = 0;
	bm_stats s0, s1;
	(void)state;
	env_create(&e, "heap-hold", 32);
	v = rand_bytes(&m, 30000);
	assert_int_equal(heap_insert(e.h, 1, NULL, "alpha", 5, "one", 3, &a), 0);
	assert_int_equal(heap_insert(e.h, 1, NULL, "beta", 4, "", 0, &b), 0);
	assert_int_equal(heap_insert(e.h, 1, NULL, "gamma", 5, v, 30000, &big), 0);
	assert_int_equal(a.blk, b.blk);
	bufmgr_stats(e.pool, &s0);
	assert_int_equal(heap_fetch_key(e.h, &hold, a, "alpha", 5, vb, sizeof vb, &vlen), 0);
	assert_int_equal(vlen, 3);
	assert_memory_equal(vb, "one", 3);
	assert_non_null(hold.buf);
	assert_int_equal(heap_fetch_key(e.h, &hold, b, "beta", 4, vb, sizeof vb, &vlen), 0);
	assert_int_equal(vlen, 0);
	bufmgr_stats(e.pool, &s1);
	assert_int_equal(s1.hits + s1.misses, s0.hits + s0.misses + 1); /* pinned once */
	assert_int_equal(s1.pinned, s0.pinned + 1);
	/* a short buffer: the length, a prefix */
	assert_int_equal(heap_fetch_key(e.h, &hold, a, "alpha", 5, vb, 2, &vlen), 0);
	assert_int_equal(vlen, 3);
	assert_memory_equal(vb, "on", 2);
	assert_int_equal(heap_fetch_key(e.h, &hold, a, "alphA", 5, vb, sizeof vb, &vlen),
			 WD_NOTFOUND);
	assert_int_equal(heap_fetch_key(e.h, &hold, a, "alph", 4, vb, sizeof vb, &vlen),
			 WD_NOTFOUND);
	assert_int_equal(heap_fetch_key(e.h, &hold, (heap_tid){a.blk, 77}, "alpha", 5, vb,
					sizeof vb, &vlen), WD_NOTFOUND);
	assert_int_equal(heap_fetch_key(e.h, &hold, big, "gamma", 5, vb, sizeof vb, &vlen),
			 WD_ETOOBIG);
	assert_int_equal(heap_fetch_key(e.h, &hold, (heap_tid){99999, 0}, "alpha", 5, vb,
					sizeof vb, &vlen), WD_NOTFOUND);
	assert_null(hold.buf);
	assert_int_equal(heap_fetch_key(e.h, &hold, a, "alpha", 5, vb, sizeof vb, &vlen), 0);
	assert_int_equal(heap_delete(e.h, 1, NULL, b), 0);
	assert_int_equal(heap_fetch_key(e.h, &hold, b, "beta", 4, vb, sizeof vb, &vlen),
			 WD_NOTFOUND);
	heap_hold_release(e.h, &hold);
	assert_null(hold.buf);
	heap_hold_release(e.h, &hold); /* twice is fine */
	bufmgr_stats(e.pool, &s1);
	assert_int_equal(s1.pinned, s0.pinned);
	free(v);
	env_free(&e);
}

/* waldump's lines for heap records. */
/* Scans limited to [first, end) with heap_scan_limit yield exactly the
 * live tuples of those blocks, overflowed values included, and nothing
 * else; a limit after the start or backwards is refused. */
static unsigned scan_range(env *e, model *m, wd_blkno first, wd_blkno end)
{
	heap_scan *s;
	heap_tid tid;
	const uint8_t *k, *v;
	uint32_t klen;
	uint64_t vlen;
	unsigned n = 0, want = 0;
	int rc;
	for (size_t i = 0; i < m->n; i++)
		want += m->it[i].live && m->it[i].tid.blk >= first && m->it[i].tid.blk < end;
	assert_int_equal(heap_scan_begin(e->h, &s), 0);
	assert_int_equal(heap_scan_limit(s, first, end), 0);
	while ((rc = heap_scan_next(s, &tid, &k, &klen, &v, &vlen)) == 0) {
		item *it = model_at(m, tid);
		assert_non_null(it);
		assert_true(tid.blk >= first && tid.blk < end);
		assert_int_equal(vlen, it->vlen);
		assert_memory_equal(v, it->val, vlen);
		n++;
	}
	assert_int_equal(rc, WD_NOTFOUND);
	heap_scan_end(s);
	assert_int_equal(n, want);
	return n;
}

static void test_scan_limit(void **state)
{
	env e;
	model m = {.rng = 17};
	heap_scan *s;
	heap_tid tid;
	const uint8_t *k, *v;
	uint32_t klen;
	uint64_t vlen;
	wd_blkno nb, big_blk;
	(void)state;
	env_create(&e, "heap-scan-limit", 64);
	for (int i = 0; i < 1200; i++) {
		item *it = model_add(&m);
		uint64_t len = i == 600 ? 5 * 4096 : 100; /* one value on overflow pages */
		it->klen = (uint32_t)snprintf((char *)it->key, sizeof it->key, "%06d", i);
		it->vlen = len;
		it->val = rand_bytes(&m, len);
		assert_int_equal(heap_insert(e.h, 1, NULL, it->key, it->klen, it->val, len,
					     &it->tid), 0);
		it->live = true;
	}
	for (size_t i = 0; i < m.n; i += 3)
		op_delete(&e, &m, &m.it[i]);
	nb = nblocks(&e);
	big_blk = m.it[601].tid.blk;
	assert_true(nb > 10);
	/* one block, a few, the overflowed value's, all, past the end, none */
	assert_true(scan_range(&e, &m, 3, 4) > 0);
	assert_true(scan_range(&e, &m, 2, 7) > scan_range(&e, &m, 3, 4));
	assert_true(scan_range(&e, &m, big_blk, big_blk + 1) > 0);
	assert_int_equal(scan_range(&e, &m, 0, nb), count_tuples(&e));
	scan_range(&e, &m, nb - 1, nb + 10);
	assert_int_equal(scan_range(&e, &m, 5, 5), 0);
	assert_int_equal(scan_range(&e, &m, nb + 1, nb + 3), 0);
	/* refused: backwards, or once started */
	assert_int_equal(heap_scan_begin(e.h, &s), 0);
	assert_int_equal(heap_scan_limit(s, 4, 3), WD_EINVAL);
	assert_int_equal(heap_scan_next(s, &tid, &k, &klen, &v, &vlen), 0);
	assert_int_equal(heap_scan_limit(s, 0, 1), WD_EINVAL);
	heap_scan_end(s);
	model_free(&m);
	env_shutdown(&e);
	env_free(&e);
}

static void test_describe(void **state)
{
	env e;
	heap_tid t, t2;
	wal_reader *r;
	const wal_decoded *rec;
	char line[256], all[2048] = "";
	uint8_t *big = calloc(1, 20000);
	(void)state;
	env_create(&e, "heap-describe", 32);
	assert_int_equal(heap_insert(e.h, 3, NULL, "hello", 5, "abc", 3, &t), 0);
	assert_int_equal(heap_insert(e.h, 3, NULL, "k2", 2, big, 20000, &t2), 0);
	assert_int_equal(heap_update(e.h, 3, NULL, t, "abcd", 4, &t), 0);
	assert_int_equal(heap_delete(e.h, 3, NULL, t2), 0);
	env_shutdown(&e);
	assert_int_equal(wal_reader_open(e.db, e.wo.db_id, e.wo.segment_size, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, WAL_SEG_HEADER_SIZE), 0);
	while (wal_reader_next(r, &rec) == 0) {
		wal_rmgr_describe(rec, line, sizeof line);
		strncat(all, line, sizeof all - strlen(all) - 2);
		strcat(all, "\n");
		assert_int_equal(rec->xid, 3);
	}
	wal_reader_close(r);
	assert_non_null(strstr(all, "insert slot 0 on a new page (key 5 bytes, value 3 bytes)"));
	assert_non_null(strstr(all, "overflow chunk 3696 bytes, end of chain"));
	assert_non_null(strstr(all, "insert slot 1 (key 2 bytes, value 20000 bytes in overflow"));
	assert_non_null(strstr(all, "update slot 0 in place (key 5 bytes, value 4 bytes)"));
	assert_non_null(strstr(all, "delete slot 1"));
	assert_non_null(strstr(all, "overflow page freed"));
	free(big);
	env_free(&e);
}

/* Each change's record carries xid and chains to the previous one. */
static void test_xact_chain(void **state)
{
	env e;
	heap_tid t;
	wd_lsn prev = 0, seen_prev = 0, last = 0;
	wal_reader *r;
	const wal_decoded *rec;
	uint8_t *big = calloc(1, 30000);
	int n = 0;
	(void)state;
	env_create(&e, "heap-chain", 32);
	assert_int_equal(heap_insert(e.h, 9, &prev, "a", 1, big, 30000, &t), 0);
	assert_int_equal(heap_update(e.h, 9, &prev, t, "x", 1, &t), 0);
	assert_int_equal(heap_delete(e.h, 9, &prev, t), 0);
	env_shutdown(&e);
	assert_int_equal(wal_reader_open(e.db, e.wo.db_id, e.wo.segment_size, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, WAL_SEG_HEADER_SIZE), 0);
	while (wal_reader_next(r, &rec) == 0) {
		assert_int_equal(rec->prev, seen_prev);
		seen_prev = rec->lsn;
		last = rec->lsn;
		n++;
	}
	wal_reader_close(r);
	assert_true(n >= 6);
	assert_int_equal(prev, last);
	free(big);
	env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_round_trip),
		cmocka_unit_test(test_update_moves),
		cmocka_unit_test(test_space_reuse),
		cmocka_unit_test(test_value_limit),
		cmocka_unit_test(test_fetch_short_buffers),
		cmocka_unit_test(test_fsm_finds_room),
		cmocka_unit_test(test_fsm_groups),
		cmocka_unit_test(test_fsm_torn),
		cmocka_unit_test(test_redo_twice),
		cmocka_unit_test(test_full_page_images),
		cmocka_unit_test(test_fpi_race),
		cmocka_unit_test_teardown(test_failed_wal_insert, clear_faults),
		cmocka_unit_test_teardown(test_update_fails_part_way, clear_faults),
		cmocka_unit_test_teardown(test_dirty_before_log, clear_faults),
		cmocka_unit_test(test_fsm_after_crash),
		cmocka_unit_test(test_damaged_chain),
		cmocka_unit_test(test_fetch_key_hold),
		cmocka_unit_test(test_scan_limit),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_xact_chain),
	};
	return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
