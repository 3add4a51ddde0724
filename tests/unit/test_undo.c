/*
 * test_undo.c - the undo log: records of random sizes (up to a 1 MiB value)
 * appended to interleaved chains and read back through their prev
 * pointers, also after a reopen; record headers at a page's end; rollback
 * (newest first, the stop pointer, CLRs in the WAL, an apply error and the
 * retry, appends after a partial rollback); release and reuse of pages;
 * redo (replay rebuilds the same pages, twice, from the middle, with
 * full-page images); appends that fail part way; the transaction table;
 * real crashes at each crash point followed by redo, analysis and the
 * rollback of the loser; damaged pointers and pages; waldump's and
 * inspect's view of it all.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bufmgr/bufmgr.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tests/lib/redotest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/undotest.h"
#include "tests/lib/waltest.h"
#include "txn/rmgrs.h"
#include "undo/undo.h"
#include "wal/format.h"
#include "wal/reader.h"
#include "wal/record.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define DATA 64u /* the first record byte of a page (README "Formats") */
#define HDR 32u  /* a record header */
#define ROOM (UT_PS - DATA)

/* true if blk is one of the chain's pages. */
static bool owns(const ut_chain *mc, wd_blkno blk)
{
	for (uint32_t i = 0; i < mc->c.npages; i++)
		if (mc->c.pages[i] == blk)
			return true;
	return false;
}

/* An XLOG_NOOP of xid: a record of a transaction that wrote no undo. */
static void log_noop(ut_env *e, wd_xid xid, wd_lsn *prev)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, xid, *prev, 0, 0);
	assert_int_equal(walrec_set_main(&b, "noop", 4), 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	assert_int_equal(wal_insert(e->w, rec, len, prev), 0);
	walrec_free(&b);
}

/* Calls fn for every record of the log (written out first if open). */
static void each_record(ut_env *e, void (*fn)(void *arg, const wal_decoded *rec), void *arg)
{
	wal_reader *r;
	const wal_decoded *rec;
	int rc;
	if (e->w)
		assert_int_equal(wal_write_to(e->w, wal_insert_pos(e->w)), 0);
	assert_int_equal(wal_reader_open(e->db, e->wo.db_id, e->wo.segment_size, UT_PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, WAL_SEG_HEADER_SIZE), 0);
	while ((rc = wal_reader_next(r, &rec)) == 0)
		fn(arg, rec);
	assert_int_equal(rc, WD_NOTFOUND);
	wal_reader_close(r);
}

static void note_rec(void *arg, const wal_decoded *rec)
{
	assert_int_equal(undo_xtab_note(arg, rec), 0);
}

/* The losers of the whole log. */
static void losers_of(ut_env *e, undo_xact **l, size_t *n)
{
	undo_xtab *t;
	assert_int_equal(undo_xtab_create(&t), 0);
	each_record(e, note_rec, t);
	assert_int_equal(undo_xtab_losers(t, l, n), 0);
	undo_xtab_free(t);
}

/* A rollback's apply callback that records what it was given and fails
 * with WD_EIO on call number fail_at (0: never). */
typedef struct applied {
	undo_ptr self[256];
	unsigned n, calls, fail_at;
} applied;

static int record_apply(void *arg, const undo_rec *r)
{
	applied *a = arg;
	if (++a->calls == a->fail_at)
		return err_set(WD_EIO, "apply fails on purpose");
	if (a->n < 256)
		a->self[a->n++] = r->self;
	return 0;
}

/* ---- append and read ---- */

/* Two chains interleaved, records of every size up to a 1 MiB value: each
 * reads back through its chain, each chain's records lie in its own pages,
 * the counters add up, and all reads the same after a reopen. */
static void test_round_trip(void **state)
{
	ut_env e;
	ut_chain a, b;
	uint64_t rng = 1, bytes = 0;
	undo_stats st;
	(void)state;
	ut_env_create(&e, "undo-rt", 64);
	ut_chain_init(&a, 7);
	ut_chain_init(&b, 8);
	for (int i = 0; i < 400; i++)
		ut_append(&e, tu_rand(&rng) & 1 ? &a : &b, ut_rand_rec(&rng));
	ut_append(&e, &a, ut_make_rec(&rng, 20, 1u << 20));
	ut_append(&e, &a, ut_make_rec(&rng, 5, 10));
	ut_check_chain(&e, &a);
	ut_check_chain(&e, &b);
	for (size_t i = 0; i < a.n; i++)
		assert_false(owns(&b, UNDO_PTR_BLK(a.r[i].self)));
	for (size_t i = 0; i < b.n; i++)
		assert_true(owns(&b, UNDO_PTR_BLK(b.r[i].self)));
	for (size_t i = 0; i < a.n; i++)
		bytes += HDR + a.r[i].klen + a.r[i].vlen;
	for (size_t i = 0; i < b.n; i++)
		bytes += HDR + b.r[i].klen + b.r[i].vlen;
	undo_stats_get(e.u, &st);
	assert_int_equal(st.records, a.n + b.n);
	assert_int_equal(st.bytes, bytes);
	assert_int_equal(st.pages_allocated, a.c.npages + b.c.npages);
	assert_true(a.c.npages > (1u << 20) / UT_PS);
	assert_int_equal(st.pages_reused, 0);
	assert_int_equal(st.pages_free, 0);
	ut_env_stop(&e, true);
	ut_env_reopen(&e, 16);
	undo_stats_get(e.u, &st);
	assert_int_equal(st.pages_free, a.c.npages + b.c.npages);
	ut_check_chain(&e, &a);
	ut_check_chain(&e, &b);
	ut_forget_pages(&a);
	ut_forget_pages(&b);
	ut_chain_free(&e, &a);
	ut_chain_free(&e, &b);
	ut_env_free(&e);
}

/* Shares page blk of the pool: a copy of its bytes. */
static void read_page(ut_env *e, wd_blkno blk, uint8_t *out)
{
	bm_buf *buf;
	assert_int_equal(bufmgr_pin(e->pool, UNDO_REL, blk, BM_READ, &buf), 0);
	bufmgr_latch(buf, BM_SHARE);
	memcpy(out, bufmgr_page(buf), UT_PS);
	bufmgr_unlatch(buf);
	bufmgr_unpin(e->pool, buf);
}

/* The records starting on page blk, walked with the tools' decoders. */
static unsigned records_on(ut_env *e, wd_blkno blk)
{
	static uint8_t p[UT_PS];
	undo_page_view v;
	undo_rec_view rv;
	unsigned n = 0;
	read_page(e, blk, p);
	assert_int_equal(undo_page_view_decode(p, UT_PS, &v), 0);
	for (uint32_t off = v.first; off && off < v.used; off = rv.end, n++)
		assert_int_equal(undo_rec_view_decode(p, UT_PS, off, &rv), 0);
	return n;
}

/* A record header never straddles a page end: with fewer than 32 bytes
 * left the next record starts on a new page; a header that just fits has
 * its whole body on the next page; a record may end exactly at the end. */
static void test_page_end(void **state)
{
	ut_env e;
	ut_chain a;
	uint64_t rng = 5;
	(void)state;
	ut_env_create(&e, "undo-end", 32);
	ut_chain_init(&a, 9);
	ut_append(&e, &a, ut_make_rec(&rng, 10, ROOM - 20 - HDR - 10)); /* 20 bytes left */
	ut_append(&e, &a, ut_make_rec(&rng, 3, 100));
	assert_int_equal(UNDO_PTR_OFF(a.r[1].self), DATA);
	assert_int_not_equal(UNDO_PTR_BLK(a.r[1].self), UNDO_PTR_BLK(a.r[0].self));
	/* fill the second page exactly */
	ut_append(&e, &a, ut_make_rec(&rng, 0, ROOM - (HDR + 103) - HDR));
	ut_append(&e, &a, ut_make_rec(&rng, 7, 50));
	assert_int_equal(UNDO_PTR_OFF(a.r[3].self), DATA);
	assert_int_equal(a.c.npages, 3);
	/* leave exactly one header's room: the next header fits, its body not */
	ut_append(&e, &a, ut_make_rec(&rng, 1, ROOM - (HDR + 57) - HDR - HDR - 1));
	ut_append(&e, &a, ut_make_rec(&rng, 100, 5000));
	assert_int_equal(UNDO_PTR_OFF(a.r[5].self), UT_PS - HDR);
	assert_int_equal(a.c.npages, 4);
	/* 31 bytes left: the next record moves on */
	ut_append(&e, &a, ut_make_rec(&rng, 0, ROOM - (5100) - HDR - 31));
	ut_append(&e, &a, ut_make_rec(&rng, 2, 2));
	assert_int_equal(UNDO_PTR_OFF(a.r[7].self), DATA);
	assert_int_equal(a.c.npages, 5);
	ut_check_chain(&e, &a);
	assert_int_equal(records_on(&e, a.c.pages[0]), 1);
	assert_int_equal(records_on(&e, a.c.pages[1]), 2);
	assert_int_equal(records_on(&e, a.c.pages[2]), 3);
	assert_int_equal(records_on(&e, a.c.pages[3]), 1); /* 5's body, then 6 */
	assert_int_equal(records_on(&e, a.c.pages[4]), 1);
	ut_chain_free(&e, &a);
	ut_env_free(&e);
}

/* ---- rollback ---- */

/* The CLRs and the WAL chain of one transaction, read back from the log. */
typedef struct xact_log {
	wd_xid xid;
	wd_lsn last;          /* LSN of its previous record */
	unsigned records, clrs;
	undo_ptr clr[256][2]; /* undone, undo_next */
} xact_log;

static void collect_xact(void *arg, const wal_decoded *rec)
{
	xact_log *x = arg;
	if (rec->xid != x->xid)
		return;
	assert_int_equal(rec->prev, x->last); /* the transaction's chain is whole */
	x->last = rec->lsn;
	x->records++;
	if (rec->rmgr == WAL_RMGR_UNDO && rec->type == UNDO_CLR) {
		assert_true(rec->flags & WAL_REC_CLR);
		assert_int_equal(rec->nblocks, 0);
		assert_true(x->clrs < 256);
		x->clr[x->clrs][0] = get_le64(rec->main_data);
		x->clr[x->clrs][1] = get_le64(rec->main_data + 8);
		x->clrs++;
	}
}

/* Rollback walks newest first, stops at the stop pointer and leaves the
 * chain appendable; an apply error stops it at the failed record and a
 * retry resumes there; every step leaves a CLR in the WAL naming the
 * undone record and the next one, on the transaction's prev chain. */
static void test_rollback(void **state)
{
	ut_env e;
	ut_chain a;
	applied ap = {0};
	undo_ptr clrs[256][2];
	unsigned nclr = 0;
	uint64_t rng = 21, steps = 0;
	xact_log xl = {.xid = 21};
	undo_stats st;
	(void)state;
	ut_env_create(&e, "undo-rb", 32);
	ut_chain_init(&a, 21);
	for (int i = 0; i < 20; i++)
		ut_append(&e, &a, ut_rand_rec(&rng));
	/* back to record 9 */
	assert_int_equal(undo_rollback(e.u, &a.c, &a.prev, a.r[9].self, record_apply, &ap, &steps), 0);
	assert_int_equal(steps, 10);
	assert_int_equal(a.c.head, a.r[9].self);
	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(ap.self[i], a.r[19 - i].self);
		clrs[nclr][0] = a.r[19 - i].self;
		clrs[nclr++][1] = a.r[19 - i].prev;
	}
	ut_model_cut(&a, 10);
	/* appends go on from the new head */
	for (int i = 0; i < 5; i++)
		ut_append(&e, &a, ut_rand_rec(&rng));
	assert_int_equal(a.r[10].prev, a.r[9].self);
	ut_check_chain(&e, &a);
	/* an error at the third record: two undone, the head names the third */
	ap = (applied){.fail_at = 3};
	assert_int_equal(undo_rollback(e.u, &a.c, &a.prev, 0, record_apply, &ap, &steps), WD_EIO);
	assert_int_equal(steps, 12);
	assert_int_equal(a.c.head, a.r[12].self);
	for (unsigned i = 0; i < 2; i++) {
		clrs[nclr][0] = a.r[14 - i].self;
		clrs[nclr++][1] = a.r[14 - i].prev;
	}
	/* the retry resumes there and goes to the end */
	ap = (applied){0};
	assert_int_equal(undo_rollback(e.u, &a.c, &a.prev, 0, record_apply, &ap, &steps), 0);
	assert_int_equal(steps, 25);
	assert_int_equal(a.c.head, 0);
	assert_int_equal(ap.n, 13);
	for (unsigned i = 0; i < 13; i++) {
		assert_int_equal(ap.self[i], a.r[12 - i].self);
		clrs[nclr][0] = a.r[12 - i].self;
		clrs[nclr++][1] = a.r[12 - i].prev;
	}
	/* a stop pointer the chain never meets */
	assert_int_equal(undo_rollback(e.u, &a.c, &a.prev, a.r[3].self, record_apply, &ap, NULL),
			 WD_ECORRUPT);
	/* the CLRs in the WAL */
	each_record(&e, collect_xact, &xl);
	assert_int_equal(xl.last, a.prev);
	assert_int_equal(xl.clrs, nclr);
	for (unsigned i = 0; i < nclr; i++) {
		assert_int_equal(xl.clr[i][0], clrs[i][0]);
		assert_int_equal(xl.clr[i][1], clrs[i][1]);
	}
	undo_stats_get(e.u, &st);
	assert_int_equal(st.clrs, nclr);
	ut_chain_free(&e, &a);
	ut_env_free(&e);
}

/* ---- release and reuse ---- */

/* Appends records of 3000-byte values until the chain owns n pages. */
static void grow_to(ut_env *e, ut_chain *mc, uint32_t n, uint64_t *rng)
{
	while (mc->c.npages < n)
		ut_append(e, mc, ut_make_rec(rng, 8, 3000));
}

/* Released pages go back on the free list, newest on top, and the next
 * chains take them (counted) before the file grows; reused pages read back
 * right; the whole history replays to the same pages. */
static void test_release_reuse(void **state)
{
	ut_env e;
	ut_chain a, b, c;
	wd_blkno apages[16];
	uint64_t rng = 31;
	undo_stats st;
	(void)state;
	ut_env_create(&e, "undo-reuse", 32);
	ut_chain_init(&a, 31);
	grow_to(&e, &a, 10, &rng);
	memcpy(apages, a.c.pages, 10 * sizeof apages[0]);
	undo_stats_get(e.u, &st);
	assert_int_equal(st.pages_allocated, 10);
	assert_int_equal(st.pages_free, 0);
	ut_log_xact(&e, 31, XACT_COMMIT, &a.prev);
	undo_chain_release(e.u, &a.c);
	assert_int_equal(a.c.head, 0);
	assert_int_equal(a.c.npages, 0);
	undo_stats_get(e.u, &st);
	assert_int_equal(st.pages_free, 10);
	ut_chain_init(&b, 32);
	grow_to(&e, &b, 6, &rng);
	for (uint32_t i = 0; i < 6; i++)
		assert_int_equal(b.c.pages[i], apages[9 - i]);
	undo_stats_get(e.u, &st);
	assert_int_equal(st.pages_reused, 6);
	assert_int_equal(st.pages_allocated, 10);
	assert_int_equal(st.pages_free, 4);
	ut_chain_init(&c, 33);
	grow_to(&e, &c, 6, &rng);
	undo_stats_get(e.u, &st);
	assert_int_equal(st.pages_reused, 10);
	assert_int_equal(st.pages_allocated, 12);
	assert_int_equal(st.pages_free, 0);
	ut_check_chain(&e, &b);
	ut_check_chain(&e, &c);
	ut_env_stop(&e, true);
	ut_replay_same(&e, WAL_SEG_HEADER_SIZE, NULL);
	ut_chain_free(&e, &a);
	ut_chain_free(&e, &b);
	ut_chain_free(&e, &c);
	ut_env_free(&e);
}

/* ---- redo ---- */


/* One random step of a mixed workload on three chains: mostly appends,
 * some partial rollbacks, some commits (then the chain starts over as a
 * new transaction, on released pages). */
static void workload_step(ut_env *e, ut_chain *ch, wd_xid *next_xid, uint64_t *rng)
{
	ut_chain *mc = &ch[tu_rand(rng) % 3];
	uint64_t r = tu_rand(rng) % 100;
	size_t keep;
	if (r < 85 || mc->n == 0) {
		ut_append(e, mc, ut_rand_rec(rng));
	} else if (r < 93) {
		keep = tu_rand(rng) % mc->n;
		assert_int_equal(undo_rollback(e->u, &mc->c, &mc->prev, keep ? mc->r[keep - 1].self : 0,
					       ut_no_apply, NULL, NULL), 0);
		ut_model_cut(mc, keep);
	} else {
		ut_log_xact(e, mc->c.xid, XACT_COMMIT, &mc->prev);
		ut_chain_free(e, mc);
		ut_chain_init(mc, (*next_xid)++);
	}
}

/* Replay of the log rebuilds the same undo pages from nothing, again on top
 * of the result, and from the middle (skipping by pageLSN); pages changed
 * after a redo point carry full-page images that replay restores. */
static void test_redo(void **state)
{
	ut_env e;
	ut_chain ch[3];
	wd_xid next_xid = 44;
	uint64_t rng = 41;
	wd_lsn mid;
	redo_ctx st;
	(void)state;
	ut_env_create(&e, "undo-redo", 48);
	for (int i = 0; i < 3; i++)
		ut_chain_init(&ch[i], 41 + (wd_xid)i);
	for (int i = 0; i < 150; i++)
		workload_step(&e, ch, &next_xid, &rng);
	mid = wal_insert_pos(e.w);
	for (int i = 0; i < 150; i++)
		workload_step(&e, ch, &next_xid, &rng);
	/* each page's first change from here on carries an image */
	assert_int_equal(wal_set_redo_point(e.w, &(wd_lsn){0}), 0);
	for (int i = 0; i < 300; i++)
		workload_step(&e, ch, &next_xid, &rng);
	for (int i = 0; i < 3; i++)
		ut_check_chain(&e, &ch[i]);
	ut_env_stop(&e, true);
	ut_replay_same(&e, WAL_SEG_HEADER_SIZE, &st);
	assert_true(st.images > 0);
	ut_replay_same(&e, WAL_SEG_HEADER_SIZE, &st); /* on top of the result */
	ut_replay_same(&e, mid, &st);
	assert_true(st.skipped > 0);
	for (int i = 0; i < 3; i++)
		ut_chain_free(&e, &ch[i]);
	ut_env_free(&e);
}

/* ---- the image decision and a checkpoint in between (wal/README I11) ---- */

/* The WAL insert hook of test_fpi_race: once armed, moves the redo point
 * at the next insert, between log_write's image decision and its insert. */
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

/*
 * An append to a chain's page decided without an image (the page was
 * changed after the redo point) while a checkpoint moves the redo point
 * between that decision and the insert (the WAL insert hook): the insert is
 * refused, log_write decides again and the UNDO_APPEND at the new redo
 * point carries the page's image. Replay from there alone repairs the page
 * torn in a copy of the file, and the chain reads back whole.
 */
static void test_fpi_race(void **state)
{
	ut_env e;
	ut_chain ch;
	uint64_t rng = 9;
	wal_counters ws;
	wal_reader *r;
	const wal_decoded *rec;
	redo_ctx st;
	wd_lsn redo0;
	wd_blkno blk;
	char *b, *path;
	uint8_t junk[512];
	st_file *f;
	(void)state;
	ut_env_create(&e, "undo-fpi-race", 48);
	ut_chain_init(&ch, 61);
	ut_append(&e, &ch, ut_make_rec(&rng, 10, 50)); /* formats the page */
	ut_append(&e, &ch, ut_make_rec(&rng, 10, 50));
	assert_int_equal(wal_set_redo_point(e.w, &redo0), 0);
	ut_append(&e, &ch, ut_make_rec(&rng, 10, 50)); /* the page's image */
	race.w = e.w;
	race.armed = true;
	wal_set_insert_hook(e.w, race_hook, NULL);
	ut_append(&e, &ch, ut_make_rec(&rng, 10, 50));
	wal_set_insert_hook(e.w, NULL, NULL);
	assert_false(race.armed);
	assert_true(race.fpw_seen >= redo0 && race.fpw_seen < race.redo); /* no image */
	assert_int_equal(ch.prev, race.redo); /* the append landed at the redo point */
	wal_stats(e.w, &ws);
	assert_int_equal(ws.fpw_retries, 1);
	for (int i = 0; i < 5; i++) /* later history */
		ut_append(&e, &ch, ut_make_rec(&rng, 10, 50));
	ut_check_chain(&e, &ch);
	ut_env_stop(&e, true);
	/* the record at the new redo point carries the page's image */
	assert_int_equal(wal_reader_open(e.db, e.wo.db_id, e.wo.segment_size, UT_PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, race.redo), 0);
	assert_int_equal(wal_reader_next(r, &rec), 0);
	assert_int_equal(rec->lsn, race.redo);
	assert_int_equal(rec->type, UNDO_APPEND);
	assert_true(rec->blocks[0].flags & WAL_BLK_HAS_IMAGE);
	blk = rec->blocks[0].blk;
	wal_reader_close(r);
	/* the page torn in a copy; replay from the redo point repairs it */
	b = tu_path(e.root, "torn");
	assert_int_equal(rt_replay(e.db, &e.wo, WAL_SEG_HEADER_SIZE, b, 16, &st), 0);
	path = malloc(strlen(b) + 32);
	sprintf(path, "%s/base/%u", b, UNDO_REL);
	memset(junk, 0xA5, sizeof junk);
	assert_int_equal(storage_open(path, 0, &f), 0);
	assert_int_equal(storage_write(f, junk, sizeof junk, (uint64_t)blk * UT_PS + 4096), 0);
	assert_int_equal(storage_close(f), 0);
	assert_int_equal(rt_compare_rel(e.db, b, UNDO_REL, UT_PS), (int64_t)blk);
	assert_int_equal(rt_replay(e.db, &e.wo, race.redo, b, 16, &st), 0);
	assert_true(st.images >= 1);
	assert_int_equal(rt_compare_rel(e.db, b, UNDO_REL, UT_PS), -1);
	free(path);
	free(b);
	ut_chain_free(&e, &ch);
	ut_env_free(&e);
}

/* ---- failures part way ---- */

static int clear_faults(void **state)
{
	(void)state;
	storage_fault_clear();
	return 0;
}

/* An append that fails after some of its pages (no space for the undo
 * file, then a full WAL disk) leaves the head where it was; the chain
 * goes on once space is back, reads right, the transaction table takes
 * the last complete record as the head, and the log replays. */
static void test_append_fails(void **state)
{
	ut_env e;
	ut_chain a;
	ut_rec m;
	uint64_t rng = 51;
	undo_ptr head, p;
	undo_stats st, st2;
	undo_xact *l;
	size_t n;
	wd_lsn before;
	(void)state;
	ut_env_create(&e, "undo-fail", 512); /* no eviction: it would need the WAL */
	ut_chain_init(&a, 51);
	for (int i = 0; i < 5; i++)
		ut_append(&e, &a, ut_rand_rec(&rng));
	head = a.c.head;
	undo_stats_get(e.u, &st);
	/* the file cannot grow by a third page */
	assert_int_equal(storage_fault_add(ST_OP_ALLOCATE, ST_FAULT_ENOSPC, 3, 0, "base/3"), 0);
	m = ut_make_rec(&rng, 10, 6 * UT_PS);
	before = a.prev;
	assert_int_equal(undo_append(e.u, &a.c, &a.prev, m.kind, m.rel, m.key, m.klen, m.val,
				     m.vlen, &p), WD_ENOSPC);
	assert_int_equal(a.c.head, head);
	assert_true(a.prev > before); /* two pages' records went in */
	undo_stats_get(e.u, &st2);
	assert_int_equal(st2.records, st.records);
	storage_fault_clear();
	ut_append(&e, &a, m);
	ut_check_chain(&e, &a);
	/* the WAL disk fills up in the middle of a 2 MiB record */
	head = a.c.head;
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, "/wal/"), 0);
	assert_int_equal(wal_write_to(e.w, wal_insert_pos(e.w)), WD_ENOSPC);
	m = ut_make_rec(&rng, 10, 2u << 20);
	assert_int_equal(undo_append(e.u, &a.c, &a.prev, m.kind, m.rel, m.key, m.klen, m.val,
				     m.vlen, &p), WD_ENOSPC);
	assert_int_equal(a.c.head, head);
	storage_fault_clear();
	free(m.key);
	free(m.val);
	ut_append(&e, &a, ut_rand_rec(&rng));
	ut_check_chain(&e, &a);
	losers_of(&e, &l, &n);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].head, a.c.head);
	assert_int_equal(l[0].last_lsn, a.prev);
	free(l);
	ut_env_stop(&e, true);
	ut_replay_same(&e, WAL_SEG_HEADER_SIZE, NULL);
	ut_env_reopen(&e, 64);
	ut_check_chain(&e, &a);
	ut_forget_pages(&a);
	ut_chain_free(&e, &a);
	ut_env_free(&e);
}

/* ---- the transaction table ---- */

/* Feeds the records up to (not including) the LSN `cut`. */
typedef struct cut_feed {
	undo_xtab *t;
	wd_lsn cut;
} cut_feed;

static void feed_until(void *arg, const wal_decoded *rec)
{
	cut_feed *f = arg;
	if (rec->lsn < f->cut)
		assert_int_equal(undo_xtab_note(f->t, rec), 0);
}

/* The LSN of the last UNDO_APPEND of xid. */
typedef struct last_append {
	wd_xid xid;
	wd_lsn lsn;
} last_append;

static void find_last_append(void *arg, const wal_decoded *rec)
{
	last_append *f = arg;
	if (rec->xid == f->xid && rec->rmgr == WAL_RMGR_UNDO && rec->type == UNDO_APPEND)
		f->lsn = rec->lsn;
}

/* Rolls loser x back and checks that it undoes the model's first n
 * records, newest first. */
static void roll_back_loser(ut_env *e, const undo_xact *x, const ut_chain *mc, size_t n)
{
	applied ap = {0};
	undo_chain c;
	wd_lsn prev = x->last_lsn;
	uint64_t steps = 0;
	undo_chain_for_loser(&c, x);
	assert_int_equal(c.head, n ? mc->r[n - 1].self : 0);
	assert_int_equal(undo_rollback(e->u, &c, &prev, 0, record_apply, &ap, &steps), 0);
	assert_int_equal(steps, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ap.self[i], mc->r[n - 1 - i].self);
	undo_chain_release(e->u, &c); /* owns nothing: a no-op */
}

/* Committed, aborted, partly rolled back and unfinished transactions: the
 * losers are the unfinished ones with the right heads and last LSNs; a
 * record cut short by the end of the log is not the head; the losers
 * roll back through undo_chain_for_loser. */
static void test_xtab(void **state)
{
	ut_env e;
	ut_chain x[4]; /* xids 10..13 */
	uint64_t rng = 61;
	wd_lsn p15 = 0, p0 = 0;
	undo_xact *l;
	size_t n;
	last_append la = {.xid = 13};
	cut_feed f;
	(void)state;
	ut_env_create(&e, "undo-xtab", 64);
	for (int i = 0; i < 4; i++)
		ut_chain_init(&x[i], 10 + (wd_xid)i);
	for (int i = 0; i < 3; i++)
		ut_append(&e, &x[0], ut_rand_rec(&rng));
	ut_log_xact(&e, 10, XACT_COMMIT, &x[0].prev);
	for (int i = 0; i < 2; i++)
		ut_append(&e, &x[1], ut_rand_rec(&rng));
	assert_int_equal(undo_rollback(e.u, &x[1].c, &x[1].prev, 0, ut_no_apply, NULL, NULL), 0);
	ut_log_xact(&e, 11, XACT_ABORT, &x[1].prev);
	for (int i = 0; i < 5; i++)
		ut_append(&e, &x[2], ut_rand_rec(&rng));
	assert_int_equal(undo_rollback(e.u, &x[2].c, &x[2].prev, x[2].r[2].self, ut_no_apply, NULL,
				       NULL), 0);
	for (int i = 0; i < 2; i++)
		ut_append(&e, &x[3], ut_rand_rec(&rng));
	log_noop(&e, 15, &p15);
	log_noop(&e, 0, &p0);
	ut_append(&e, &x[3], ut_make_rec(&rng, 10, 30000)); /* four pages */
	losers_of(&e, &l, &n);
	assert_int_equal(n, 3);
	assert_int_equal(l[0].xid, 12);
	assert_int_equal(l[0].head, x[2].r[2].self);
	assert_int_equal(l[0].last_lsn, x[2].prev);
	assert_int_equal(l[1].xid, 13);
	assert_int_equal(l[1].head, x[3].r[2].self);
	assert_int_equal(l[1].last_lsn, x[3].prev);
	assert_int_equal(l[2].xid, 15);
	assert_int_equal(l[2].head, 0);
	assert_int_equal(l[2].last_lsn, p15);
	roll_back_loser(&e, &l[0], &x[2], 3);
	roll_back_loser(&e, &l[1], &x[3], 3);
	free(l);
	/* the log cut before the last page of xid 13's big record */
	each_record(&e, find_last_append, &la);
	assert_int_equal(undo_xtab_create(&f.t), 0);
	f.cut = la.lsn;
	each_record(&e, feed_until, &f);
	assert_int_equal(undo_xtab_losers(f.t, &l, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(l[1].head, x[3].r[1].self);
	free(l);
	undo_xtab_free(f.t);
	for (int i = 0; i < 4; i++)
		ut_chain_free(&e, &x[i]);
	ut_env_free(&e);
}

/* Thousands of transactions coming and going (the hash table grows and
 * deletes), against a plain array; malformed UNDO records are refused. */
/* A decoded record of xid at lsn for the transaction table: an XLOG_NOOP,
 * a COMMIT, or a CLR whose undo_next is head (main must hold 16 bytes). */
static wal_decoded xrec(wd_xid xid, wd_lsn lsn, int kind, undo_ptr head, uint8_t *main)
{
	wal_decoded d;
	memset(&d, 0, sizeof d);
	d.xid = xid;
	d.lsn = lsn;
	d.rmgr = WAL_RMGR_XLOG;
	d.type = XLOG_NOOP;
	if (kind == 1) {
		d.rmgr = WAL_RMGR_XACT;
		d.type = XACT_COMMIT;
	} else if (kind == 2) {
		d.rmgr = WAL_RMGR_UNDO;
		d.type = UNDO_CLR;
		put_le64(main, 1);
		put_le64(main + 8, head);
		d.main_data = main;
		d.main_len = 16;
	}
	return d;
}

/*
 * undo_xtab_seed (recovery/README.md P4 step 3): the checkpoint's entries
 * join the table the scan built from the redo point. xid 1: unknown to the scan
 * (added whole); 2: ended after the redo point (skipped); 3: seen with a
 * record that set no head (newer last_lsn kept, the checkpoint's head);
 * 4: seen with a CLR (its head kept); 6: in the checkpoint, ends after it
 * (removed as usual); 1 also writes after the checkpoint (newer last LSN).
 * The ended xids are tracked all (undo_xtab_track_ended) or, as analysis
 * does, only those of the checkpoint's table (undo_xtab_watch_ended).
 */
static void xtab_seed_case(bool watch)
{
	undo_xtab *t;
	undo_xact *l;
	size_t n;
	uint8_t m[16];
	wal_decoded d;
	const undo_xact att[] = {
		{.xid = 1, .last_lsn = 100, .head = 0x10001},
		{.xid = 2, .last_lsn = 110, .head = 0x20001},
		{.xid = 3, .last_lsn = 120, .head = 0x30001},
		{.xid = 4, .last_lsn = 130, .head = 0x40001},
		{.xid = 6, .last_lsn = 140, .head = 0x60001},
	};
	const wd_xid watched[] = {1, 2, 3, 4, 6};
	assert_int_equal(undo_xtab_create(&t), 0);
	if (watch)
		assert_int_equal(undo_xtab_watch_ended(t, watched, 5), 0);
	else
		assert_int_equal(undo_xtab_track_ended(t, true), 0);
	d = xrec(5, 190, 1, 0, m); /* not in the checkpoint: no matter */
	assert_int_equal(undo_xtab_note(t, &d), 0);
	d = xrec(2, 200, 1, 0, m); /* xid 2 commits after the redo point */
	assert_int_equal(undo_xtab_note(t, &d), 0);
	d = xrec(3, 210, 0, 0, m);
	assert_int_equal(undo_xtab_note(t, &d), 0);
	d = xrec(4, 220, 2, 0x40000 + 7, m);
	assert_int_equal(undo_xtab_note(t, &d), 0);
	assert_int_equal(undo_xtab_seed(t, att, sizeof att / sizeof *att), 0);
	d = xrec(6, 300, 1, 0, m); /* after the checkpoint record: removed */
	assert_int_equal(undo_xtab_note(t, &d), 0);
	d = xrec(1, 310, 0, 0, m);
	assert_int_equal(undo_xtab_note(t, &d), 0);
	assert_int_equal(undo_xtab_losers(t, &l, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(l[0].xid, 1);
	assert_int_equal(l[0].last_lsn, 310);
	assert_int_equal(l[0].head, 0x10001);
	assert_int_equal(l[1].xid, 3);
	assert_int_equal(l[1].last_lsn, 210);
	assert_int_equal(l[1].head, 0x30001);
	assert_int_equal(l[2].xid, 4);
	assert_int_equal(l[2].last_lsn, 220);
	assert_int_equal(l[2].head, 0x40000 + 7);
	free(l);
	undo_xtab_free(t);
}

static void test_xtab_seed(void **state)
{
	(void)state;
	xtab_seed_case(false);
	xtab_seed_case(true);
}

static void test_xtab_many(void **state)
{
	enum { N = 5000 };
	static wd_lsn last[N + 1]; /* 0: not active */
	undo_xtab *t;
	undo_xact *l;
	wal_decoded d;
	size_t n, k = 0;
	uint64_t rng = 71;
	uint8_t junk[8] = {0};
	(void)state;
	assert_int_equal(undo_xtab_create(&t), 0);
	memset(last, 0, sizeof last);
	for (wd_lsn lsn = 8; lsn < 8 * 40000; lsn += 8) {
		memset(&d, 0, sizeof d);
		d.lsn = lsn;
		d.xid = 1 + tu_rand(&rng) % N;
		if (tu_rand(&rng) % 3 == 0) {
			d.rmgr = WAL_RMGR_XACT;
			d.type = tu_rand(&rng) & 1 ? XACT_COMMIT : XACT_ABORT;
			last[d.xid] = 0;
		} else {
			d.rmgr = WAL_RMGR_XLOG;
			d.type = XLOG_NOOP;
			last[d.xid] = lsn;
		}
		assert_int_equal(undo_xtab_note(t, &d), 0);
	}
	assert_int_equal(undo_xtab_losers(t, &l, &n), 0);
	for (wd_xid xid = 1; xid <= N; xid++) {
		if (!last[xid])
			continue;
		assert_true(k < n);
		assert_int_equal(l[k].xid, xid);
		assert_int_equal(l[k].last_lsn, last[xid]);
		assert_int_equal(l[k].head, 0);
		k++;
	}
	assert_int_equal(k, n);
	free(l);
	memset(&d, 0, sizeof d);
	d.xid = 3;
	d.rmgr = WAL_RMGR_UNDO;
	d.type = UNDO_APPEND;
	d.main_data = junk;
	d.main_len = sizeof junk;
	assert_int_equal(undo_xtab_note(t, &d), WD_ECORRUPT);
	d.type = UNDO_CLR;
	assert_int_equal(undo_xtab_note(t, &d), WD_ECORRUPT);
	undo_xtab_free(t);
}

/* ---- a real crash ---- */

#define CRASH_RECS 16

/* The crash child's records: deterministic, one of 200 KB (25 pages). */
static ut_rec crash_rec(uint64_t *rng, int i)
{
	if (i == 12)
		return ut_make_rec(rng, 16, 200000);
	return ut_make_rec(rng, 1 + (uint32_t)(tu_rand(rng) % 40),
			i % 5 == 4 ? 2 * UT_PS + 100 : tu_rand(rng) % 1000);
}

/* What the child acknowledges through shared memory. */
typedef struct crash_ack {
	uint32_t appended; /* appends returned and flushed */
	uint32_t undone;   /* rollback steps whose CLR was flushed */
} crash_ack;

typedef struct crash_arg {
	ut_env *e;
	const char *point;
	uint64_t nth;
	crash_ack *ack;
} crash_arg;

/* Rollback callback of the child: everything logged so far is flushed,
 * so every CLR written before this step is durable. */
static int flushing_apply(void *arg, const undo_rec *r)
{
	crash_arg *ca = arg;
	undo_stats st;
	(void)r;
	UT_OK(wal_flush_to(ca->e->w, wal_insert_pos(ca->e->w)));
	undo_stats_get(ca->e->u, &st);
	ca->ack->undone = (uint32_t)st.clrs;
	return 0;
}

/* The child: appends CRASH_RECS records (each flushed, as a commit of the
 * statement would be) and rolls them all back, with the crash point armed. */
static void crash_child(void *arg)
{
	crash_arg *ca = arg;
	ut_chain a;
	uint64_t rng = 81;
	ut_mode = UT_CHILD;
	ut_env_start(ca->e, 24);
	storage_crash_arm(ca->point, ca->nth);
	ut_chain_init(&a, 1);
	for (int i = 0; i < CRASH_RECS; i++) {
		ut_append(ca->e, &a, crash_rec(&rng, i));
		UT_OK(wal_flush_to(ca->e->w, a.prev));
		ca->ack->appended = (uint32_t)i + 1;
	}
	UT_OK(undo_rollback(ca->e->u, &a.c, &a.prev, 0, flushing_apply, ca, NULL));
	_exit(0);
}

/* The expected records of the crash child, oldest first. */
static void crash_expect(ut_rec *exp)
{
	uint64_t rng = 81;
	for (int i = 0; i < CRASH_RECS; i++)
		exp[i] = crash_rec(&rng, i);
}

/* A rollback callback checking each record against exp, newest first. */
typedef struct expect_apply {
	const ut_rec *exp;
	size_t next; /* records still expected */
} expect_apply;

static int check_apply(void *arg, const undo_rec *r)
{
	expect_apply *ea = arg;
	assert_true(ea->next > 0);
	assert_true(ut_same_content(r, &ea->exp[--ea->next]));
	assert_int_equal(r->xid, 1);
	return 0;
}

/* The records in the chain from head, read back and checked against exp
 * (the newest is exp[k - 1]); returns k. */
static size_t chain_length(ut_env *e, undo_ptr head, const ut_rec *exp)
{
	undo_rec r = {0};
	size_t k = 0, i;
	for (undo_ptr p = head; p; p = r.prev, k++) {
		assert_true(k < CRASH_RECS);
		assert_int_equal(undo_read(e->u, p, &r), 0);
	}
	i = k;
	for (undo_ptr p = head; p; p = r.prev) {
		assert_int_equal(undo_read(e->u, p, &r), 0);
		assert_true(ut_same_content(&r, &exp[--i]));
	}
	undo_rec_free(&r);
	return k;
}

/*
 * The child dies at `point` (nth hit). Recovery as the engine does it: redo
 * of the whole log into the same directory, analysis (the transaction
 * table), then the loser rolled back through its chain. The chain read
 * after redo holds exactly the records whose append completed in the WAL:
 * every acknowledged one and perhaps the one in flight; a rollback
 * resumes after the last CLR in the WAL. The pages then equal a replay.
 */
static void crash_case(const char *point, uint64_t nth)
{
	ut_env e;
	crash_ack *ack = tw_shared(sizeof *ack);
	crash_arg ca = {.e = &e, .point = point, .nth = nth, .ack = ack};
	ut_rec exp[CRASH_RECS];
	expect_apply ea = {.exp = exp};
	undo_xact *l;
	undo_chain c;
	size_t n, k;
	uint64_t steps = 0;
	wd_lsn prev;

	ut_env_paths(&e, "undo-crash");
	crash_expect(exp);
	assert_int_equal(tu_run_child(crash_child, &ca), ST_CRASH_EXIT_CODE);
	assert_int_equal(rt_replay(e.db, &e.wo, WAL_SEG_HEADER_SIZE, e.db, 16, NULL), 0);
	ut_env_reopen(&e, 24);
	losers_of(&e, &l, &n);
	assert_true(n == 1 || (n == 0 && ack->appended == 0)); /* nothing durable yet */
	if (n == 0)
		l = calloc(1, sizeof *l);
	assert_non_null(l);
	k = n ? chain_length(&e, l[0].head, exp) : 0;
	if (strcmp(point, "undo-after-append") == 0) {
		assert_true(k >= ack->appended && k <= ack->appended + 1);
	} else {
		assert_int_equal(ack->appended, CRASH_RECS);
		assert_true(CRASH_RECS - k >= ack->undone && CRASH_RECS - k <= ack->undone + 1);
	}
	undo_chain_for_loser(&c, &l[0]);
	prev = l[0].last_lsn;
	ea.next = k;
	assert_int_equal(undo_rollback(e.u, &c, &prev, 0, check_apply, &ea, &steps), 0);
	assert_int_equal(steps, k);
	ut_log_xact(&e, 1, XACT_ABORT, &prev);
	free(l);
	losers_of(&e, &l, &n);
	assert_int_equal(n, 0);
	ut_env_stop(&e, true);
	ut_replay_same(&e, WAL_SEG_HEADER_SIZE, NULL);
	for (int i = 0; i < CRASH_RECS; i++) {
		free(exp[i].key);
		free(exp[i].val);
	}
	tw_shared_free(ack, sizeof *ack);
	ut_env_free(&e);
}

/* Crashes at every undo crash point, early and late hits, including one in
 * the middle of a 25-page record. */
static void test_crash(void **state)
{
	(void)state;
	crash_case("undo-after-append", 1);
	crash_case("undo-after-append", 2);
	crash_case("undo-after-append", 9);
	crash_case("undo-after-append", 30);
	crash_case("undo-after-apply", 1);
	crash_case("undo-after-apply", 7);
	crash_case("undo-after-clr", 1);
	crash_case("undo-after-clr", CRASH_RECS);
}

/* ---- damaged input ---- */

/* Writes len bytes at offset off of block blk in the pool (the old bytes
 * into old if not NULL): damage with a good checksum, as a bug leaves. */
static void poke(ut_env *e, wd_blkno blk, uint32_t off, const void *bytes, uint32_t len, void *old)
{
	bm_buf *buf;
	assert_int_equal(bufmgr_pin(e->pool, UNDO_REL, blk, BM_READ, &buf), 0);
	bufmgr_latch(buf, BM_EXCL);
	if (old)
		memcpy(old, bufmgr_page(buf) + off, len);
	memcpy(bufmgr_page(buf) + off, bytes, len);
	bufmgr_mark_dirty(buf, wal_insert_pos(e->w));
	bufmgr_unlatch(buf);
	bufmgr_unpin(e->pool, buf);
}

/* Adds a block to relation 3 holding page (not through the undo log). */
static wd_blkno add_page(ut_env *e, const uint8_t *page)
{
	bm_buf *buf;
	wd_blkno blk;
	assert_int_equal(bufmgr_extend(e->pool, UNDO_REL, &blk, &buf), 0);
	memcpy(bufmgr_page(buf), page, UT_PS);
	bufmgr_mark_dirty(buf, wal_insert_pos(e->w));
	bufmgr_unlatch(buf);
	bufmgr_unpin(e->pool, buf);
	return blk;
}

/* undo_read of p fails with WD_ECORRUPT and a detail holding `what`. */
static void assert_corrupt(ut_env *e, undo_ptr p, const char *what)
{
	undo_rec r = {0};
	char name[48];
	assert_int_equal(undo_read(e->u, p, &r), WD_ECORRUPT);
	snprintf(name, sizeof name, "undo record %u/%u", UNDO_PTR_BLK(p), UNDO_PTR_OFF(p));
	if (!strstr(wd_last_error(), name) && !strstr(wd_last_error(), "undo pointer"))
		fail_msg("detail without the pointer: %s", wd_last_error());
	if (what && !strstr(wd_last_error(), what))
		fail_msg("detail without \"%s\": %s", what, wd_last_error());
	undo_rec_free(&r);
}

/* A made-up undo page whose record at 64 has the given lengths and whose
 * written bytes end at used, linked to next. */
static wd_blkno fake_page(ut_env *e, uint32_t klen, uint64_t vlen, uint32_t used, wd_blkno next)
{
	uint8_t p[UT_PS] = {0};
	page_init(p, UT_PS, PAGE_KIND_UNDO, 0);
	put_le64(p + 32, 1234);
	put_le32(p + 40, WD_INVALID_BLKNO);
	put_le32(p + 44, next);
	put_le32(p + 52, DATA);
	put_le32(p + 56, used);
	put_le32(p + PH_LOWER, (used + 3) & ~3u);
	memcpy(p + DATA, "UNDR", 4);
	p[DATA + 4] = UNDO_ROW_UPDATE;
	put_le32(p + DATA + 12, klen);
	put_le64(p + DATA + 16, vlen);
	return add_page(e, p);
}

/* Pointers that name no record, pages of other kinds, garbage, lengths
 * past the chain, a continuation of another chain, a chain leading into
 * another transaction or round in a circle: WD_ECORRUPT naming the
 * pointer, never a crash or a wrong record. */
static void test_corrupt(void **state)
{
	ut_env e;
	ut_chain a;
	uint64_t rng = 91;
	uint8_t page[UT_PS], old[8], bad[8] = {0x4D, 0, 0, 0, 0, 0, 0, 0};
	wd_blkno heap_blk, junk_blk, nb;
	undo_ptr big;
	undo_chain c;
	undo_xact x;
	undo_rec r = {0};
	(void)state;
	ut_env_create(&e, "undo-bad", 64);
	ut_chain_init(&a, 95);
	for (int i = 0; i < 10; i++)
		ut_append(&e, &a, ut_make_rec(&rng, 8, i == 4 ? 3 * UT_PS : 100));
	big = a.r[4].self;
	assert_corrupt(&e, 0, "no record can start");
	assert_corrupt(&e, UNDO_PTR(0, 10), "no record can start");
	assert_corrupt(&e, UNDO_PTR(0, UT_PS - 10), "no record can start");
	assert_corrupt(&e, UNDO_PTR(999, DATA), "block 999 beyond the end");
	assert_corrupt(&e, a.r[1].self + 40, "no undo record header");
	assert_corrupt(&e, UNDO_PTR(UNDO_PTR_BLK(a.r[9].self), UT_PS - 100), "outside the written");
	/* a page of another kind */
	page_init(page, UT_PS, PAGE_KIND_HEAP, 0);
	heap_blk = add_page(&e, page);
	assert_corrupt(&e, UNDO_PTR(heap_blk, DATA), "heap page where an undo page");
	/* lengths: over the limit, past the written bytes, into a missing,
	 * foreign or absent next page */
	assert_corrupt(&e, UNDO_PTR(fake_page(&e, 8, UNDO_MAX_VALUE + 1, UT_PS, WD_INVALID_BLKNO), DATA),
		       "lengths out of bounds");
	assert_corrupt(&e, UNDO_PTR(fake_page(&e, 8, 20000, UT_PS - 8, WD_INVALID_BLKNO), DATA),
		       "runs past the written bytes");
	assert_corrupt(&e, UNDO_PTR(fake_page(&e, 8, 20000, UT_PS, WD_INVALID_BLKNO), DATA),
		       "runs past the chain's written bytes");
	assert_corrupt(&e, UNDO_PTR(fake_page(&e, 8, 20000, UT_PS, a.c.pages[2]), DATA),
		       "is not the next page");
	assert_corrupt(&e, UNDO_PTR(fake_page(&e, 8, 20000, UT_PS, 77777), DATA), "beyond the end");
	assert_corrupt(&e, UNDO_PTR(fake_page(&e, 8, 20, 100, 77777), DATA), "runs past");
	/* the continuation page of a real record claims another chain */
	poke(&e, UNDO_PTR_BLK(big) + 1, 32, bad, 8, old);
	assert_corrupt(&e, big, "is not the next page");
	poke(&e, UNDO_PTR_BLK(big) + 1, 32, old, 8, NULL);
	assert_int_equal(undo_read(e.u, big, &r), 0);
	/* garbage: every pointer into it is refused or a real record */
	for (uint32_t i = 0; i < UT_PS; i += 8)
		put_le64(page + i, tu_rand(&rng));
	page[PH_KIND] = PAGE_KIND_UNDO;
	page[PH_VERSION] = PAGE_FORMAT_VERSION;
	put_le32(page + PH_LOWER, UT_PS);
	put_le32(page + PH_UPPER, UT_PS);
	put_le32(page + PH_SPECIAL, UT_PS);
	put_le32(page + 56, UT_PS);
	junk_blk = add_page(&e, page);
	assert_corrupt(&e, UNDO_PTR(junk_blk, DATA), NULL);
	assert_int_equal(bufmgr_rel_nblocks(e.pool, UNDO_REL, &nb), 0);
	for (int i = 0; i < 5000; i++) {
		undo_ptr p = UNDO_PTR(tu_rand(&rng) % (nb + 2), tu_rand(&rng) % UT_PS);
		int rc = undo_read(e.u, p, &r);
		assert_true(rc == 0 || rc == WD_ECORRUPT);
		if (rc == 0)
			assert_int_equal(r.xid, 95);
	}
	undo_rec_free(&r);
	/* rollback: a chain of another transaction, a chain going round */
	x = (undo_xact){.xid = 999, .head = a.c.head};
	undo_chain_for_loser(&c, &x);
	assert_int_equal(undo_rollback(e.u, &c, NULL, 0, ut_no_apply, NULL, NULL), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "belongs to xid 95"));
	put_le64(old, a.r[7].self);
	poke(&e, UNDO_PTR_BLK(a.r[5].self), UNDO_PTR_OFF(a.r[5].self) + 24, old, 8, NULL);
	assert_int_equal(undo_rollback(e.u, &a.c, &a.prev, 0, ut_no_apply, NULL, NULL), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "does not lie before"));
	assert_int_equal(a.c.head, a.r[7].self);
	ut_chain_free(&e, &a);
	ut_env_free(&e);
}

/* ---- the tools' view ---- */

/* Descriptions of the UNDO records of the log, in order. */
typedef struct descs {
	char line[32][200];
	unsigned n;
} descs;

static void describe_rec(void *arg, const wal_decoded *rec)
{
	descs *d = arg;
	if (rec->rmgr == WAL_RMGR_UNDO && d->n < 32)
		wal_rmgr_describe(rec, d->line[d->n++], sizeof d->line[0]);
}

/* s holds part, else the test fails showing s. */
static void assert_has(const char *s, const char *part)
{
	if (!strstr(s, part))
		fail_msg("\"%s\" not in:\n%s", part, s);
}

/* waldump's lines for appends (page formatted, record started, continued,
 * ended) and CLRs; `walden inspect` on an undo page and on a continuation
 * page. */
static void test_describe_inspect(void **state)
{
	ut_env e;
	ut_chain a;
	ut_rec m;
	uint64_t rng = 101;
	descs *d = calloc(1, sizeof *d);
	char out[1 << 14], err[1024], want[200];
	(void)state;
	ut_env_create(&e, "undo-desc", 32);
	ut_chain_init(&a, 51);
	m = ut_make_rec(&rng, 3, 10);
	memcpy(m.key, "abc", 3);
	m.kind = UNDO_ROW_UPDATE;
	m.rel = 17;
	ut_append(&e, &a, m);
	m = ut_make_rec(&rng, 4, 3 * UT_PS);
	m.kind = UNDO_ROW_DELETE;
	ut_append(&e, &a, m);
	assert_int_equal(undo_rollback(e.u, &a.c, &a.prev, a.r[0].self, ut_no_apply, NULL, NULL), 0);
	each_record(&e, describe_rec, d);
	assert_int_equal(d->n, 1 + 4 + 1);
	assert_string_equal(d->line[0], "blk 0 off 64 bytes 45, formats the page (chain page 0), "
					"record 0/64 starts here and ends");
	snprintf(want, sizeof want, "blk 0 off 109 bytes %u, record 0/109 starts here", UT_PS - 109);
	assert_string_equal(d->line[1], want);
	assert_string_equal(d->line[2], "blk 1 off 64 bytes 8128, formats the page (chain page 1, "
					"after blk 0), record 0/109 continues");
	assert_non_null(strstr(d->line[4], "continues and ends"));
	assert_string_equal(d->line[5], "undone=0/109 undo_next=0/64");
	ut_env_stop(&e, true);
	assert_int_equal(tu_run_tool((const char *[]){"inspect", "--file", e.relpath, "--block", "0",
						     "--page-size", "8192", NULL},
				     out, sizeof out, err, sizeof err), 0);
	assert_has(out, "undo page  xid 51, chain page 0, prev blk -, next blk 1");
	assert_has(out, "record 0/64     update  rel 17  prev none  value 10 bytes  key[3]");
	assert_has(out, "\"abc\"");
	assert_has(out, "record 0/109    delete");
	assert_has(out, "prev 0/64");
	assert_has(out, "continues on the next page");
	assert_int_equal(tu_run_tool((const char *[]){"inspect", "--file", e.relpath, "--block", "2",
						     "--page-size", "8192", NULL},
				     out, sizeof out, err, sizeof err), 0);
	assert_has(out, "none start here");
	free(d);
	ut_chain_free(&e, &a);
	ut_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_page_end),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_release_reuse),
		cmocka_unit_test(test_redo),
		cmocka_unit_test(test_fpi_race),
		cmocka_unit_test_teardown(test_append_fails, clear_faults),
		cmocka_unit_test(test_xtab),
		cmocka_unit_test(test_xtab_many),
		cmocka_unit_test(test_xtab_seed),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_describe_inspect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
