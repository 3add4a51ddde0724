/*
 * test_wal_bufmgr.c - WAL before data: the buffer pool, with the WAL's hook,
 * never writes a page before the WAL is durable up to the page's LSN.
 * In-process (the flushed LSN passes every written page's LSN) and across
 * crashes: a child changes pages through a small pool, logging each change
 * first, and is killed at a random I/O call; after a simulated power loss
 * every page on disk that verifies carries an LSN whose record is in the
 * log.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bufmgr/bufmgr.h"
#include "storage/page.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/wal.h"

#define PS 8192u
#define REL 1
#define NPAGES 32u
#define CHANGES 300u

static char *root, *db, *journal, *relpath;

static int setup(void **state)
{
	char *base;
	(void)state;
	root = tu_tmpdir("walbuf");
	db = tu_path(root, "db");
	journal = tu_path(root, "journal");
	base = tu_path(db, "base");
	relpath = tu_path(base, "1");
	assert_int_equal(storage_mkdir(db), 0);
	assert_int_equal(storage_mkdir(base), 0);
	assert_int_equal(storage_mkdir(journal), 0);
	free(base);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(root);
	free(root);
	free(db);
	free(journal);
	free(relpath);
	return 0;
}

/* A 16-page pool over NPAGES pages, with the WAL's hook. */
static bufmgr *make_pool(wal *w)
{
	bufmgr_opts o;
	bufmgr *pool = NULL;
	bufmgr_opts_default(&o);
	o.page_size = PS;
	o.pool_bytes = 16 * PS;
	if (bufmgr_create(&o, &pool) != 0 ||
	    bufmgr_rel_open(pool, REL, relpath, BM_REL_CREATE) != 0)
		return NULL;
	bufmgr_set_wal_hook(pool, wal_bufmgr_hook, w);
	return pool;
}

/*
 * One logged change: a WAL record first, then the page changed with that
 * record's LSN as its pageLSN (DESIGN.md section 2, step 2).
 */
static int change_page(wal *w, bufmgr *pool, wal_rec_builder *b, wd_blkno blk,
		       uint64_t seq, bool extend, wd_lsn *lsn)
{
	uint8_t *rec;
	uint32_t len;
	bm_buf *buf;
	char item[32];
	int rc;
	tw_record(b, 1, seq, 40, &rec, &len);
	if ((rc = wal_insert(w, rec, len, lsn)) != 0)
		return rc;
	rc = extend ? bufmgr_extend(pool, REL, &blk, &buf)
		    : bufmgr_pin(pool, REL, blk, BM_READ, &buf);
	if (rc != 0)
		return rc;
	if (!extend)
		bufmgr_latch(buf, BM_EXCL);
	page_init(bufmgr_page(buf), PS, PAGE_KIND_RAW, 0);
	snprintf(item, sizeof item, "change %llu", (unsigned long long)seq);
	if (page_item_add(bufmgr_page(buf), item, (uint32_t)strlen(item), PAGE_SLOT_NEW) < 0)
		abort();
	page_set_lsn(bufmgr_page(buf), *lsn);
	bufmgr_mark_dirty(buf, *lsn);
	bufmgr_unlatch(buf);
	bufmgr_unpin(pool, buf);
	return 0;
}

/* In one process: pages are written only after the WAL passed their LSN. */
static void test_flush_waits_for_wal(void **state)
{
	wal_rec_builder b = {0};
	wd_lsn lsn, last = 0;
	wal_opts o;
	bufmgr *pool;
	bm_stats st;
	wal *w;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	assert_non_null(pool = make_pool(w));
	for (wd_blkno i = 0; i < 8; i++) { /* fits the pool: no eviction */
		assert_int_equal(change_page(w, pool, &b, i, i, true, &lsn), 0);
		last = lsn;
	}
	assert_true(wal_flushed_lsn(w) <= last); /* nothing forced it yet */
	assert_int_equal(bufmgr_flush_all(pool), 0);
	assert_true(wal_flushed_lsn(w) > last);
	bufmgr_stats(pool, &st);
	assert_true(st.wal_flushes >= 1);
	assert_int_equal(st.writes, 8);
	bufmgr_destroy(pool);
	walrec_free(&b);
	assert_int_equal(wal_close(w), 0);
}

struct child_case {
	uint64_t io;
};

/* Child: CHANGES logged page changes over NPAGES pages through a 16-page
 * pool (evictions write pages), with a flush_all now and then; killed
 * before I/O call io. */
static void child_changes(void *arg)
{
	struct child_case *c = arg;
	wal_rec_builder b = {0};
	wal_opts o;
	bufmgr *pool;
	wd_lsn lsn;
	wal *w;
	tw_opts(&o);
	if (storage_sim_start(journal) != 0 || wal_create(db, &o, &w) != 0 ||
	    !(pool = make_pool(w)))
		_exit(1);
	storage_crash_arm_io(storage_io_count() + c->io);
	for (uint64_t i = 0; i < CHANGES; i++) {
		if (change_page(w, pool, &b, (wd_blkno)(i % NPAGES), i, i < NPAGES, &lsn) != 0)
			_exit(1);
		if (i % 97 == 96 && bufmgr_flush_all(pool) != 0)
			_exit(1);
	}
	_exit(0);
}

/* true if lsn is the LSN of one of the n records read back. */
static bool in_log(const tw_rec *r, size_t n, wd_lsn lsn)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].lsn == lsn)
			return true;
	return false;
}

/* Checks every page of the relation file against the log; returns how
 * many verified pages carried a logged change. */
static unsigned check_pages(const tw_rec *r, size_t n)
{
	uint8_t page[PS];
	unsigned logged = 0;
	uint64_t size = 0;
	st_file *f = NULL;
	if (storage_open(relpath, ST_RDONLY, &f) != 0)
		return 0; /* the file's creation was lost: no page to check */
	assert_int_equal(storage_size(f, &size), 0);
	for (wd_blkno blk = 0; (uint64_t)(blk + 1) * PS <= size; blk++) {
		size_t got;
		assert_int_equal(storage_read(f, page, PS, (uint64_t)blk * PS, &got), 0);
		if (page_verify(page, PS, blk, relpath) != 0)
			continue; /* never written, or torn: full-page images' job */
		assert_true(in_log(r, n, page_lsn(page)));
		logged++;
	}
	assert_int_equal(storage_close(f), 0);
	return logged;
}

/* Across crashes at many I/O indices and power losses: no page on disk is
 * ahead of the log. */
static void test_crash_never_data_before_wal(void **state)
{
	unsigned checked = 0;
	(void)state;
	for (uint64_t k = 5; k < 400; k += 13) {
		struct child_case c = {k};
		st_sim_opts so = {.mode = (k & 1) ? ST_SIM_TORN : ST_SIM_RANDOM,
				  .seed = k, .sector_bytes = 512};
		wal_opts o;
		tw_rec *r = NULL;
		size_t n = 0;
		wd_lsn end;
		bool clean;
		int status = tu_run_child(child_changes, &c);
		assert_true(status == ST_CRASH_EXIT_CODE || status == 0);
		assert_int_equal(storage_sim_materialize(journal, &so, NULL), 0);
		tw_opts(&o);
		if (tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean) == 0)
			checked += check_pages(r, n);
		else
			checked += check_pages(NULL, 0); /* no log: no page may verify */
		free(r);
		tu_rmrf(db);
		{
			char *base = tu_path(db, "base");
			assert_int_equal(storage_mkdir(db), 0);
			assert_int_equal(storage_mkdir(base), 0);
			free(base);
		}
	}
	assert_true(checked > 100); /* pages really were written and checked */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flush_waits_for_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_never_data_before_wal, setup, teardown),
	};
	return cmocka_run_group_tests_name("wal_bufmgr", tests, NULL, NULL);
}
