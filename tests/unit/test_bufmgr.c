/*
 * test_bufmgr.c - the buffer pool, one thread: round trips through a small
 * pool, data many times the pool, WAL before data (and a refused write when
 * the WAL hook fails), checksum failures naming file and block, new pages,
 * WD_ENOBUFS, extension and the file size, drop_rel, BM_ZERO beyond the end,
 * write and sync errors, crash points, the statistics equations, and the
 * huge-page advice on the frames as the kernel records it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "bufmgr/bufmgr.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"

#define PS 4096u  /* page size used by these tests */
#define REL 7u    /* the relation id used by these tests */

static char *dir;
static char *relpath;

static int setup(void **state)
{
	(void)state;
	dir = tu_tmpdir("bufmgr");
	relpath = tu_path(dir, "rel7");
	storage_fault_clear();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	storage_fault_clear();
	tu_rmrf(dir);
	free(relpath);
	free(dir);
	return 0;
}

/* ---- page contents: every byte follows from (blk, ver) ---- */

static wd_lsn lsn_of(wd_blkno blk, uint32_t ver)
{
	return ((uint64_t)ver << 32) | (blk + 1u);
}

static void fill_page(uint8_t *p, wd_blkno blk, uint32_t ver)
{
	page_init(p, PS, PAGE_KIND_RAW, 0);
	page_set_lsn(p, lsn_of(blk, ver));
	put_le32(p + 32, blk);
	put_le32(p + 36, ver);
	for (uint32_t i = 40; i < PS; i++)
		p[i] = (uint8_t)(blk * 31u + ver * 7u + i);
}

/* true if p is exactly the page fill_page(blk, ver) makes (the checksum
 * field aside, which the pool sets on its copy only). */
static bool page_is(const uint8_t *p, wd_blkno blk, uint32_t ver)
{
	if (page_lsn(p) != lsn_of(blk, ver) || get_le32(p + 32) != blk ||
	    get_le32(p + 36) != ver)
		return false;
	for (uint32_t i = 40; i < PS; i++)
		if (p[i] != (uint8_t)(blk * 31u + ver * 7u + i))
			return false;
	return true;
}

static bufmgr *new_pool(uint32_t npages, uint32_t chunk)
{
	bufmgr_opts o;
	bufmgr *pool = NULL;
	bufmgr_opts_default(&o);
	o.page_size = PS;
	o.pool_bytes = (uint64_t)npages * PS;
	o.extend_chunk_pages = chunk;
	assert_int_equal(bufmgr_create(&o, &pool), 0);
	assert_int_equal(bufmgr_nbuffers(pool), npages);
	return pool;
}

static bufmgr *open_pool(uint32_t npages, unsigned flags)
{
	bufmgr *pool = new_pool(npages, 8);
	assert_int_equal(bufmgr_rel_open(pool, REL, relpath, flags), 0);
	return pool;
}

/* Extends REL by n pages holding version ver, unpinning each at once. */
static void extend_pages(bufmgr *pool, uint32_t n, uint32_t ver)
{
	for (uint32_t i = 0; i < n; i++) {
		bm_buf *b;
		wd_blkno blk;
		assert_int_equal(bufmgr_extend(pool, REL, &blk, &b), 0);
		assert_true(page_is_zero(bufmgr_page(b), PS));
		fill_page(bufmgr_page(b), blk, ver);
		bufmgr_mark_dirty(b, lsn_of(blk, ver));
		bufmgr_unlatch(b);
		bufmgr_unpin(pool, b);
	}
}

/* Pins blk, rewrites it as version ver, unpins. */
static void rewrite_page(bufmgr *pool, wd_blkno blk, uint32_t ver)
{
	bm_buf *b;
	assert_int_equal(bufmgr_pin(pool, REL, blk, BM_READ, &b), 0);
	bufmgr_latch(b, BM_EXCL);
	fill_page(bufmgr_page(b), blk, ver);
	bufmgr_mark_dirty(b, lsn_of(blk, ver));
	bufmgr_unlatch(b);
	bufmgr_unpin(pool, b);
}

/* Asserts that blk reads through the pool as version ver. */
static void expect_page(bufmgr *pool, wd_blkno blk, uint32_t ver)
{
	bm_buf *b;
	assert_int_equal(bufmgr_pin(pool, REL, blk, BM_READ, &b), 0);
	assert_int_equal(bufmgr_buf_blkno(b), blk);
	bufmgr_latch(b, BM_SHARE);
	assert_true(page_is(bufmgr_page(b), blk, ver));
	bufmgr_unlatch(b);
	bufmgr_unpin(pool, b);
}

/* Reads block blk straight from the file (not through the pool). */
static void read_raw(wd_blkno blk, uint8_t *p)
{
	int fd = open(relpath, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = pread(fd, p, PS, (off_t)blk * PS);
	close(fd);
	if (n < (ssize_t)PS)
		memset(p + (n > 0 ? n : 0), 0, PS - (size_t)(n > 0 ? n : 0));
}

static uint64_t file_size(void)
{
	struct stat st;
	assert_int_equal(stat(relpath, &st), 0);
	return (uint64_t)st.st_size;
}

/* The equations of README "Statistics" that hold in every state. */
static void check_equations(bufmgr *pool, bool hook_set)
{
	bm_stats s;
	bufmgr_stats(pool, &s);
	assert_int_equal(s.misses + s.read_errors, s.reads + s.zero_fills);
	assert_int_equal(s.evictions + s.free_used, s.reads + s.zero_fills);
	assert_int_equal(s.evict_writes + s.flush_writes, s.writes + s.write_errors);
	if (hook_set)
		assert_int_equal(s.wal_flushes, s.writes + s.write_errors);
	else
		assert_int_equal(s.wal_flushes + s.wal_errors, 0);
	assert_true(s.valid <= bufmgr_nbuffers(pool));
	assert_true(s.evictions <= s.misses + s.read_errors);
}

/* ---- tests ---- */

/* Write through a pool, flush, destroy; a new pool reads the same bytes
 * and the file holds pages with valid checksums. */
static void test_round_trip(void **state)
{
	bufmgr *pool = open_pool(32, BM_REL_CREATE);
	uint8_t raw[PS];
	(void)state;
	extend_pages(pool, 10, 1);
	rewrite_page(pool, 3, 2);
	expect_page(pool, 3, 2);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_destroy(pool);

	read_raw(3, raw);
	assert_true(page_is(raw, 3, 2));
	assert_int_equal(page_verify(raw, PS, 3, relpath), 0);
	pool = open_pool(32, 0);
	for (wd_blkno b = 0; b < 10; b++)
		expect_page(pool, b, b == 3 ? 2 : 1);
	check_equations(pool, false);
	bufmgr_destroy(pool);
}

/* 16 buffers, 160 pages: every page written, then read back twice in a
 * random order; eviction must have written and re-read them. */
static void test_data_larger_than_pool(void **state)
{
	const uint32_t n = 160;
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	uint64_t seed = 42;
	bm_stats s;
	(void)state;
	extend_pages(pool, n, 1);
	for (uint32_t i = 0; i < n; i += 3)
		rewrite_page(pool, i, 2);
	for (uint32_t k = 0; k < 2 * n; k++) {
		wd_blkno b = (wd_blkno)(tu_rand(&seed) % n);
		expect_page(pool, b, b % 3 == 0 ? 2 : 1);
	}
	bufmgr_stats(pool, &s);
	assert_true(s.evictions > n);
	assert_true(s.evict_writes >= n - 16);
	assert_true(s.reads > n);
	assert_true(s.valid <= 16);
	assert_int_equal(s.pinned, 0);
	check_equations(pool, false);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_destroy(pool);

	pool = open_pool(16, 0); /* a cold pool reads what the first wrote */
	for (uint32_t i = 0; i < n; i++)
		expect_page(pool, i, i % 3 == 0 ? 2 : 1);
	bufmgr_stats(pool, &s);
	assert_int_equal(s.reads, n);
	bufmgr_destroy(pool);
}

/* A WAL hook that records its calls and checks, by reading the file, that
 * the page it is called for has not been written yet. */
struct walrec {
	int calls;
	int fail_with; /* 0: succeed */
	wd_lsn last;
	int bad;       /* calls whose page was already on disk */
};

static int wal_hook(void *arg, wd_lsn upto)
{
	struct walrec *w = arg;
	uint8_t raw[PS];
	wd_blkno blk = (wd_blkno)(upto & 0xFFFFFFFFu) - 1;
	w->calls++;
	w->last = upto;
	read_raw(blk, raw);
	if (page_lsn(raw) >= upto)
		w->bad++;
	return w->fail_with;
}

/* Every write is preceded by the hook with the page's LSN; a failing hook
 * refuses the write (flush and eviction), and the page stays dirty. */
static void test_wal_before_data(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	struct walrec w = {0};
	uint8_t raw[PS];
	bm_buf *b;
	bm_stats s;
	(void)state;
	bufmgr_set_wal_hook(pool, wal_hook, &w);
	extend_pages(pool, 4, 1);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	assert_int_equal(w.calls, 4);
	assert_int_equal(w.bad, 0);

	rewrite_page(pool, 2, 5);
	w.fail_with = WD_EIO;
	assert_int_equal(bufmgr_pin(pool, REL, 2, BM_READ, &b), 0);
	assert_int_equal(bufmgr_flush_buffer(pool, b), WD_EIO);
	assert_int_equal(w.last, lsn_of(2, 5));
	assert_non_null(strstr(wd_last_error(), "WAL flush"));
	assert_true(bufmgr_is_dirty(b));
	read_raw(2, raw);
	assert_true(page_is(raw, 2, 1)); /* the old version stays on disk */
	bufmgr_unpin(pool, b);

	/* once the hook succeeds, eviction writes page 2 (after the hook) */
	w.fail_with = 0;
	extend_pages(pool, 15, 1);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	read_raw(2, raw);
	assert_true(page_is(raw, 2, 5));
	assert_int_equal(w.bad, 0);
	bufmgr_stats(pool, &s);
	assert_true(s.wal_errors >= 1);
	assert_int_equal(s.wal_flushes, s.writes + s.write_errors);
	assert_int_equal(s.wal_flushes, (uint64_t)w.calls - s.wal_errors);
	bufmgr_destroy(pool);
}

/* With every buffer dirty and the hook failing, a miss cannot evict. */
static void test_eviction_refused_when_wal_fails(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	struct walrec w = {0};
	bm_buf *b;
	bm_stats s;
	(void)state;
	extend_pages(pool, 17, 1);      /* no hook yet: one eviction */
	bufmgr_set_wal_hook(pool, wal_hook, &w);
	w.fail_with = WD_EIO;
	assert_int_equal(bufmgr_pin(pool, REL, 0, BM_READ, &b), WD_EIO);
	assert_null(b);
	bufmgr_stats(pool, &s);
	assert_int_equal(s.failed_pins, 1);
	assert_int_equal(s.dirty, 16);
	w.fail_with = 0;
	expect_page(pool, 0, 1);
	assert_int_equal(w.bad, 0);
	bufmgr_destroy(pool);
}

/* A flipped byte in the file: WD_ECORRUPT naming the file and the block,
 * no valid buffer left behind; once repaired the page reads fine. */
static void test_checksum_failure(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	uint8_t byte;
	bm_stats s0, s1;
	bm_buf *b;
	int fd;
	(void)state;
	extend_pages(pool, 6, 1);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	assert_int_equal(bufmgr_drop_rel(pool, REL), 0);

	fd = open(relpath, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, 4 * PS + 1000), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, 4 * PS + 1000), 1);

	bufmgr_stats(pool, &s0);
	assert_int_equal(bufmgr_pin(pool, REL, 4, BM_READ, &b), WD_ECORRUPT);
	assert_null(b);
	assert_non_null(strstr(wd_last_error(), relpath));
	assert_non_null(strstr(wd_last_error(), "block 4"));
	assert_int_equal(bufmgr_pin(pool, REL, 4, BM_READ, &b), WD_ECORRUPT);
	bufmgr_stats(pool, &s1);
	assert_int_equal(s1.reads - s0.reads, 2); /* read again: not cached */
	assert_int_equal(s1.read_errors - s0.read_errors, 2);
	assert_int_equal(s1.failed_pins - s0.failed_pins, 2);
	assert_int_equal(s1.valid, s0.valid);
	check_equations(pool, false);

	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, 4 * PS + 1000), 1);
	close(fd);
	expect_page(pool, 4, 1);
	bufmgr_destroy(pool);
}

/* A block of zeroes in the file (never written) reads as a new page. */
static void test_zero_page_reads_as_new(void **state)
{
	int fd = open(relpath, O_CREAT | O_RDWR, 0644);
	bufmgr *pool;
	wd_blkno n;
	bm_buf *b;
	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * PS), 0);
	close(fd);
	pool = open_pool(16, 0);
	assert_int_equal(bufmgr_rel_nblocks(pool, REL, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(bufmgr_pin(pool, REL, 2, BM_READ, &b), 0);
	assert_true(page_is_zero(bufmgr_page(b), PS));
	bufmgr_unpin(pool, b);
	/* beyond the end is an error that names the file */
	assert_int_equal(bufmgr_pin(pool, REL, 4, BM_READ, &b), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "beyond the end"));
	bufmgr_destroy(pool);
}

/* Every buffer pinned: WD_ENOBUFS; one unpin makes room again. */
static void test_enobufs_when_all_pinned(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	bm_buf *held[16], *b;
	bm_stats s;
	(void)state;
	extend_pages(pool, 20, 1);
	for (int i = 0; i < 16; i++)
		assert_int_equal(bufmgr_pin(pool, REL, (wd_blkno)i, BM_READ, &held[i]), 0);
	assert_int_equal(bufmgr_pin(pool, REL, 17, BM_READ, &b), WD_ENOBUFS);
	assert_non_null(strstr(wd_last_error(), "pinned"));
	/* a cached page can still be pinned again */
	assert_int_equal(bufmgr_pin(pool, REL, 3, BM_READ, &b), 0);
	assert_ptr_equal(b, held[3]);
	bufmgr_unpin(pool, b);
	bufmgr_unpin(pool, held[5]);
	assert_int_equal(bufmgr_pin(pool, REL, 17, BM_READ, &b), 0);
	assert_true(page_is(bufmgr_page(b), 17, 1));
	bufmgr_unpin(pool, b);
	for (int i = 0; i < 16; i++)
		if (i != 5) /* pinned pages kept their identity and bytes */
			assert_true(page_is(bufmgr_page(held[i]), (wd_blkno)i, 1));
	for (int i = 0; i < 16; i++)
		if (i != 5)
			bufmgr_unpin(pool, held[i]);
	bufmgr_stats(pool, &s);
	assert_int_equal(s.pinned, 0);
	bufmgr_destroy(pool);
}

/* The counters against a sequence whose outcome is known exactly. */
static void test_stats_add_up(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	uint64_t pins = 0, seed = 9;
	bm_stats s;
	bm_buf *b;
	(void)state;
	extend_pages(pool, 40, 1); /* 40 extends: 40 zero-fill misses */
	bufmgr_stats(pool, &s);
	assert_int_equal(s.extends, 40);
	assert_int_equal(s.misses, 40);
	assert_int_equal(s.zero_fills, 40);
	assert_int_equal(s.hits, 0);
	assert_int_equal(s.reads, 0);
	assert_int_equal(s.free_used, 16);
	assert_int_equal(s.evictions, 24);
	assert_int_equal(s.evict_writes, 24);
	assert_int_equal(s.writes, 24);
	pins = 40;

	/* the same page twice in a row: the second is a hit */
	for (int i = 0; i < 200; i++) {
		wd_blkno blk = (wd_blkno)(tu_rand(&seed) % 40);
		for (int k = 0; k < 2; k++) {
			assert_int_equal(bufmgr_pin(pool, REL, blk, BM_READ, &b), 0);
			bufmgr_unpin(pool, b);
			pins++;
		}
	}
	assert_int_equal(bufmgr_pin(pool, REL, 1000, BM_READ, &b), WD_ECORRUPT);
	assert_int_equal(bufmgr_pin(pool, 99, 0, BM_READ, &b), WD_NOTFOUND);
	pins += 2;
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_stats(pool, &s);
	assert_int_equal(s.hits + s.misses + s.failed_pins, pins);
	assert_int_equal(s.failed_pins, 2);
	assert_true(s.hits >= 200);
	assert_int_equal(s.misses, s.reads + s.zero_fills);
	assert_int_equal(s.dirty, 0);
	assert_int_equal(s.pinned, 0);
	assert_int_equal(s.writes, 40); /* each extended page written once */
	assert_int_equal(s.syncs, 1);
	check_equations(pool, false);
	bufmgr_destroy(pool);
}

/* The file grows a chunk at a time; the block count is exact while open
 * and, after reopening, includes the reserved pages (which read as new). */
static void test_extend_grows_file(void **state)
{
	bufmgr *pool = new_pool(16, 4);
	wd_blkno n;
	(void)state;
	assert_int_equal(bufmgr_rel_open(pool, REL, relpath, BM_REL_CREATE), 0);
	extend_pages(pool, 1, 1);
	assert_int_equal(file_size(), 4 * PS);
	assert_int_equal(bufmgr_rel_nblocks(pool, REL, &n), 0);
	assert_int_equal(n, 1);
	extend_pages(pool, 4, 1);
	assert_int_equal(file_size(), 8 * PS);
	assert_int_equal(bufmgr_rel_nblocks(pool, REL, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(bufmgr_rel_close(pool, REL), 0); /* writes and syncs */
	assert_int_equal(bufmgr_rel_nblocks(pool, REL, &n), WD_NOTFOUND);

	assert_int_equal(bufmgr_rel_open(pool, REL, relpath, 0), 0);
	assert_int_equal(bufmgr_rel_nblocks(pool, REL, &n), 0);
	assert_int_equal(n, 8);
	expect_page(pool, 4, 1);
	extend_pages(pool, 1, 1); /* block 8: a new chunk */
	assert_int_equal(file_size(), 12 * PS);
	assert_int_equal(bufmgr_rel_open(pool, REL, relpath, 0), WD_EEXIST);
	bufmgr_destroy(pool);
}

/* drop_rel forgets dirty pages without writing them. */
static void test_drop_rel(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	bm_stats s0, s1;
	(void)state;
	extend_pages(pool, 5, 1);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	rewrite_page(pool, 1, 2);
	rewrite_page(pool, 3, 2);
	bufmgr_stats(pool, &s0);
	assert_int_equal(s0.dirty, 2);
	assert_int_equal(bufmgr_drop_rel(pool, REL), 0);
	bufmgr_stats(pool, &s1);
	assert_int_equal(s1.writes, s0.writes);
	assert_int_equal(s1.dirty, 0);
	assert_int_equal(s1.valid, 0);
	expect_page(pool, 1, 1); /* the old version, read from the file */
	expect_page(pool, 3, 1);
	bufmgr_destroy(pool);
}

/* BM_ZERO beyond the end: zeroes without a read, the block count grows,
 * the hole before it reads as new, and the write lands at its block. */
static void test_zero_mode_beyond_end(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	bm_stats s0, s1;
	wd_blkno n;
	uint8_t raw[PS];
	bm_buf *b;
	(void)state;
	extend_pages(pool, 2, 1);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_stats(pool, &s0);
	assert_int_equal(bufmgr_pin(pool, REL, 20, BM_ZERO, &b), 0);
	assert_true(page_is_zero(bufmgr_page(b), PS));
	bufmgr_latch(b, BM_EXCL);
	fill_page(bufmgr_page(b), 20, 3);
	bufmgr_mark_dirty(b, lsn_of(20, 3));
	bufmgr_unlatch(b);
	bufmgr_unpin(pool, b);
	bufmgr_stats(pool, &s1);
	assert_int_equal(s1.reads, s0.reads);
	assert_int_equal(s1.zero_fills, s0.zero_fills + 1);
	assert_int_equal(bufmgr_rel_nblocks(pool, REL, &n), 0);
	assert_int_equal(n, 21);
	assert_int_equal(bufmgr_pin(pool, REL, 12, BM_READ, &b), 0);
	assert_true(page_is_zero(bufmgr_page(b), PS));
	bufmgr_unpin(pool, b);
	/* BM_ZERO on a cached page returns it unchanged */
	assert_int_equal(bufmgr_pin(pool, REL, 1, BM_ZERO, &b), 0);
	assert_true(page_is(bufmgr_page(b), 1, 1));
	bufmgr_unpin(pool, b);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	read_raw(20, raw);
	assert_true(page_is(raw, 20, 3));
	assert_int_equal(file_size(), 21 * PS);
	bufmgr_destroy(pool);
}

/* An injected write error: returned, the buffer stays dirty, the next
 * flush writes it. A failed sync is never retried (WD_EPANIC after). */
static void test_write_and_sync_errors(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	bm_buf *b;
	bm_stats s;
	(void)state;
	extend_pages(pool, 3, 1);
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_EIO, 1, 1, "rel7"), 0);
	assert_int_equal(bufmgr_pin(pool, REL, 1, BM_READ, &b), 0);
	assert_int_equal(bufmgr_flush_buffer(pool, b), WD_EIO);
	assert_non_null(strstr(wd_last_error(), "block 1"));
	assert_true(bufmgr_is_dirty(b));
	assert_int_equal(bufmgr_flush_buffer(pool, b), 0);
	assert_false(bufmgr_is_dirty(b));
	bufmgr_unpin(pool, b);
	bufmgr_stats(pool, &s);
	assert_int_equal(s.write_errors, 1);
	assert_int_equal(s.writes, 1);
	check_equations(pool, false);

	assert_int_equal(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, "rel7"), 0);
	assert_int_equal(bufmgr_flush_all(pool), WD_EIO);
	assert_int_equal(bufmgr_rel_sync(pool, REL), WD_EPANIC);
	assert_int_equal(bufmgr_flush_all(pool), WD_EPANIC);
	bufmgr_destroy(pool);
}

/* Crash points: killed before the write, the file has the old page; killed
 * after it, the new one. */
static void crash_child(void *arg)
{
	const char *point = arg;
	bufmgr *pool = open_pool(16, 0);
	bm_buf *b;
	if (bufmgr_pin(pool, REL, 1, BM_READ, &b) != 0)
		_exit(2);
	bufmgr_latch(b, BM_EXCL);
	fill_page(bufmgr_page(b), 1, 9);
	bufmgr_mark_dirty(b, lsn_of(1, 9));
	bufmgr_unlatch(b);
	storage_crash_arm(point, 1);
	if (bufmgr_flush_buffer(pool, b) != 0)
		_exit(3);
	_exit(4); /* the crash point did not fire */
}

static void test_crash_points(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	uint8_t raw[PS];
	(void)state;
	extend_pages(pool, 3, 1);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_destroy(pool);

	assert_int_equal(tu_run_child(crash_child, "bufmgr-before-write"),
			 ST_CRASH_EXIT_CODE);
	read_raw(1, raw);
	assert_true(page_is(raw, 1, 1));
	assert_int_equal(tu_run_child(crash_child, "bufmgr-after-write"),
			 ST_CRASH_EXIT_CODE);
	read_raw(1, raw);
	assert_true(page_is(raw, 1, 9));
	assert_int_equal(page_verify(raw, PS, 1, relpath), 0);
}

/* The dirty page list reports each dirty page once with its recLSN (the
 * first change's), and nothing after a flush. */
struct dpt {
	int n;
	wd_lsn rec[8];
};

static int collect(void *arg, wd_relid rel, wd_blkno blk, wd_lsn rec_lsn)
{
	struct dpt *d = arg;
	if (rel != REL || blk >= 8)
		return WD_EINVAL;
	d->rec[blk] = rec_lsn;
	d->n++;
	return 0;
}

static void test_dirty_pages_and_reclsn(void **state)
{
	bufmgr *pool = open_pool(16, BM_REL_CREATE);
	struct dpt d = {0};
	(void)state;
	extend_pages(pool, 6, 1);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	rewrite_page(pool, 2, 2);
	rewrite_page(pool, 2, 3); /* recLSN stays that of version 2 */
	rewrite_page(pool, 5, 4);
	assert_int_equal(bufmgr_dirty_pages(pool, collect, &d), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.rec[2], lsn_of(2, 2));
	assert_int_equal(d.rec[5], lsn_of(5, 4));
	assert_int_equal(bufmgr_flush_all(pool), 0);
	d.n = 0;
	assert_int_equal(bufmgr_dirty_pages(pool, collect, &d), 0);
	assert_int_equal(d.n, 0);
	bufmgr_destroy(pool);
}

/*
 * The VmFlags of the mapping holding addr, from /proc/self/smaps, into
 * flags (cap bytes); false if no mapping holds it or smaps is unreadable.
 */
static bool vm_flags_of(const void *addr, char *flags, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, found = false;
	uintptr_t a = (uintptr_t)addr;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = a >= lo && a < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, cap, "%s", line + 8);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Whether the VmFlags line has the two-letter flag f (" hg"). */
static bool has_vm_flag(const char *flags, const char *f)
{
	for (const char *p = flags; (p = strstr(p, f)) != NULL; p += 2)
		if ((p == flags || p[-1] == ' ') && (p[2] == ' ' || p[2] == '\n' || !p[2]))
			return true;
	return false;
}

/*
 * README "Memory": with huge_pages, frames of at least 2 MiB are advised
 * MADV_HUGEPAGE, which the kernel records as the flag "hg" of their
 * mapping, and huge_bytes counts them; without it, or for a pool under
 * 2 MiB, neither. A kernel without THP refuses the advice (asked first
 * on a region of the test's own): then huge_bytes is 0, the flag absent.
 */
static void test_huge_pages(void **state)
{
	static const struct {
		uint32_t npages;
		bool huge;
	} cases[] = {{1024, true}, {1024, false}, {256, true}};
	bool takes = tu_kernel_takes_huge_advice();
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bufmgr_opts o;
		bufmgr *pool = NULL;
		bm_stats st;
		bm_buf *b;
		wd_blkno blk;
		char flags[512];
		bufmgr_opts_default(&o);
		assert_true(o.huge_pages); /* the default */
		o.page_size = PS;
		o.pool_bytes = (uint64_t)cases[i].npages * PS;
		o.huge_pages = cases[i].huge;
		assert_int_equal(bufmgr_create(&o, &pool), 0);
		assert_int_equal(bufmgr_rel_open(pool, REL, relpath, BM_REL_CREATE), 0);
		assert_int_equal(bufmgr_extend(pool, REL, &blk, &b), 0);
		assert_true(vm_flags_of(bufmgr_page(b), flags, sizeof flags));
		bufmgr_stats(pool, &st);
		if (cases[i].huge && cases[i].npages * PS >= (2u << 20)) {
			/* the frames, at least; the descriptors too if 2 MiB */
			assert_int_equal(st.huge_bytes > 0, takes);
			assert_true(st.huge_bytes == 0 || st.huge_bytes >= cases[i].npages * PS);
			assert_int_equal(has_vm_flag(flags, "hg"), takes);
		} else {
			assert_int_equal(st.huge_bytes, 0);
			assert_false(has_vm_flag(flags, "hg"));
		}
		bufmgr_unpin(pool, b);
		bufmgr_destroy(pool);
		assert_int_equal(unlink(relpath), 0);
	}
}

/* Bad options are refused with WD_EINVAL. */
static void test_bad_options(void **state)
{
	bufmgr_opts o;
	bufmgr *pool;
	(void)state;
	bufmgr_opts_default(&o);
	o.page_size = 5000;
	assert_int_equal(bufmgr_create(&o, &pool), WD_EINVAL);
	bufmgr_opts_default(&o);
	o.pool_bytes = 15 * 8192;
	assert_int_equal(bufmgr_create(&o, &pool), WD_EINVAL);
	assert_null(pool);
	o.pool_bytes = 16 * 8192;
	assert_int_equal(bufmgr_create(&o, &pool), 0);
	assert_int_equal(bufmgr_nbuffers(pool), 16);
	bufmgr_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_larger_than_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_before_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_refused_when_wal_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checksum_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_page_reads_as_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enobufs_when_all_pinned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_add_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extend_grows_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_rel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_mode_beyond_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_and_sync_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_pages_and_reclsn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_pages, setup, teardown),
	};
	return cmocka_run_group_tests_name("bufmgr", tests, NULL, NULL);
}
