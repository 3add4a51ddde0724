/*
 * undotest.c - see undotest.h.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/storage.h"
#include "tests/lib/redotest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/undotest.h"
#include "tests/lib/waltest.h"
#include "txn/rmgrs.h"
#include "wal/format.h"
#include "wal/record.h"
#include "wal/rmgr.h"

_Thread_local int ut_mode = UT_CMOCKA;

void ut_ok(int rc, const char *expr, const char *file, int line)
{
	if (rc == 0)
		return;
	if (ut_mode == UT_CHILD)
		_exit(3);
	if (ut_mode == UT_THREAD) {
		fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", file, line, expr, wd_strerror(rc),
			wd_last_error());
		abort();
	}
	print_error("%s failed: %s (%s)\n", expr, wd_strerror(rc), wd_last_error());
	_fail(file, line);
}

/* ---- environment ---- */

/* Opens the pool (one page per extend), relation 3 and the undo log over
 * e->db (WAL open). */
static void open_undo(ut_env *e, uint32_t pool_pages)
{
	bufmgr_opts bo;
	bufmgr_opts_default(&bo);
	bo.page_size = UT_PS;
	bo.pool_bytes = (uint64_t)pool_pages * UT_PS;
	bo.extend_chunk_pages = 1;
	UT_OK(bufmgr_create(&bo, &e->pool));
	bufmgr_set_wal_hook(e->pool, wal_bufmgr_hook, e->w);
	UT_OK(bufmgr_rel_open(e->pool, UNDO_REL, e->relpath, BM_REL_CREATE));
	e->log.w = e->w;
	e->log.full_page_writes = true;
	e->log.compress = false;
	e->log.page_size = UT_PS;
	UT_OK(undo_open(e->pool, &e->log, &e->u));
}

void ut_env_paths(ut_env *e, const char *tag)
{
	char *base;
	memset(e, 0, sizeof *e);
	UT_OK(walden_register_rmgrs());
	e->root = tu_tmpdir(tag);
	e->db = tu_path(e->root, "db");
	base = tu_path(e->db, "base");
	e->relpath = tu_path(base, "3");
	UT_OK(storage_mkdir(e->db));
	UT_OK(storage_mkdir(base));
	free(base);
	tw_opts(&e->wo);
	e->wo.segment_size = 4u << 20;
	e->wo.buffers_bytes = 1u << 20;
}

void ut_env_start(ut_env *e, uint32_t pool_pages)
{
	UT_OK(wal_create(e->db, &e->wo, &e->w));
	open_undo(e, pool_pages);
}

void ut_env_create(ut_env *e, const char *tag, uint32_t pool_pages)
{
	ut_env_paths(e, tag);
	ut_env_start(e, pool_pages);
}

void ut_env_stop(ut_env *e, bool clean)
{
	undo_close(e->u);
	e->u = NULL;
	if (clean)
		UT_OK(bufmgr_flush_all(e->pool));
	bufmgr_destroy(e->pool);
	e->pool = NULL;
	UT_OK(wal_close(e->w));
	e->w = NULL;
}

void ut_env_reopen(ut_env *e, uint32_t pool_pages)
{
	wd_lsn end;
	UT_OK(wal_find_end(e->db, &e->wo, WAL_SEG_HEADER_SIZE, &end));
	UT_OK(wal_open(e->db, &e->wo, end, &e->w));
	open_undo(e, pool_pages);
}

void ut_env_free(ut_env *e)
{
	if (e->u)
		ut_env_stop(e, true);
	tu_rmrf(e->root);
	free(e->root);
	free(e->db);
	free(e->relpath);
}

/* ---- the model ---- */

void ut_chain_init(ut_chain *mc, wd_xid xid)
{
	memset(mc, 0, sizeof *mc);
	undo_chain_init(&mc->c, xid);
}

void ut_model_cut(ut_chain *mc, size_t n)
{
	for (size_t i = n; i < mc->n; i++) {
		free(mc->r[i].key);
		free(mc->r[i].val);
	}
	mc->n = n;
}

void ut_forget_pages(ut_chain *mc)
{
	free(mc->c.pages);
	mc->c.pages = NULL;
	mc->c.npages = mc->c.cap = 0;
}

void ut_chain_free(ut_env *e, ut_chain *mc)
{
	ut_model_cut(mc, 0);
	free(mc->r);
	if (e->u)
		undo_chain_release(e->u, &mc->c);
	free(mc->c.pages);
}

uint8_t *ut_bytes(uint64_t seed, uint64_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	if (!p)
		abort();
	for (uint64_t i = 0; i < len; i++) {
		if ((i & 7) == 0)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(x >> (8 * (i & 7)));
	}
	return p;
}

/* Value sizes: some empty, mostly small, some over one or several pages. */
static uint64_t rand_vlen(uint64_t *rng)
{
	uint64_t r = tu_rand(rng) % 100;
	if (r < 15)
		return 0;
	if (r < 55)
		return tu_rand(rng) % 200;
	if (r < 80)
		return tu_rand(rng) % 9000;
	if (r < 97)
		return tu_rand(rng) % 40000;
	return 40000 + tu_rand(rng) % 100000;
}

ut_rec ut_make_rec(uint64_t *rng, uint32_t klen, uint64_t vlen)
{
	ut_rec m = {0};
	m.kind = UNDO_ROW_INSERT + (unsigned)(tu_rand(rng) % 3);
	m.rel = 16 + (wd_relid)(tu_rand(rng) % 100);
	m.klen = klen;
	m.vlen = vlen;
	m.key = ut_bytes(tu_rand(rng), klen);
	m.val = ut_bytes(tu_rand(rng), vlen);
	return m;
}

ut_rec ut_rand_rec(uint64_t *rng)
{
	uint32_t klen = tu_rand(rng) % 8 == 0 ? 0 : (uint32_t)(tu_rand(rng) % 300);
	return ut_make_rec(rng, klen, rand_vlen(rng));
}

undo_ptr ut_append(ut_env *e, ut_chain *mc, ut_rec m)
{
	wd_lsn before = mc->prev;
	undo_ptr p = 0;
	m.prev = mc->c.head;
	UT_OK(undo_append(e->u, &mc->c, &mc->prev, m.kind, m.rel, m.key, m.klen, m.val, m.vlen,
			  &p));
	m.self = p;
	UT_CHECK(mc->c.head == p && mc->prev > before);
	if (mc->n == mc->cap) {
		mc->cap = mc->cap ? 2 * mc->cap : 64;
		if (!(mc->r = realloc(mc->r, mc->cap * sizeof *mc->r)))
			abort();
	}
	mc->r[mc->n++] = m;
	return p;
}

bool ut_same_content(const undo_rec *r, const ut_rec *m)
{
	return r->kind == m->kind && r->rel == m->rel && r->klen == m->klen &&
	       r->vlen == m->vlen && (!m->klen || memcmp(r->key, m->key, m->klen) == 0) &&
	       (!m->vlen || memcmp(r->val, m->val, m->vlen) == 0);
}

void ut_check_chain(ut_env *e, const ut_chain *mc)
{
	undo_rec r = {0};
	undo_ptr p = mc->c.head;
	for (size_t i = mc->n; i-- > 0;) {
		const ut_rec *m = &mc->r[i];
		UT_CHECK(p == m->self);
		UT_OK(undo_read(e->u, p, &r));
		UT_CHECK(r.self == m->self && r.prev == m->prev && r.xid == mc->c.xid);
		UT_CHECK(ut_same_content(&r, m));
		p = r.prev;
	}
	UT_CHECK(p == 0);
	undo_rec_free(&r);
}

void ut_log_xact(ut_env *e, wd_xid xid, unsigned type, wd_lsn *prev)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	walrec_begin(&b, WAL_RMGR_XACT, type, xid, *prev, 0, 0);
	UT_OK(walrec_assemble(&b, &rec, &len));
	UT_OK(wal_insert(e->w, rec, len, prev));
	walrec_free(&b);
}

void ut_replay_same(ut_env *e, wd_lsn from, redo_ctx *st)
{
	char *replica = tu_path(e->root, "replica");
	UT_OK(rt_replay(e->db, &e->wo, from, replica, 16, st));
	UT_CHECK(rt_compare_rel(e->db, replica, UNDO_REL, UT_PS) == -1);
	free(replica);
}

int ut_no_apply(void *arg, const undo_rec *r)
{
	(void)arg;
	(void)r;
	return 0;
}
