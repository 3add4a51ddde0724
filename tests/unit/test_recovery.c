/*
 * test_recovery.c - crash recovery (recovery/README.md P3-P8): the dirty
 * page table's rules (I4, I7, I8) on their own; redo skipping, without
 * reading them, the pages a checkpoint found written (with and without
 * full-page writes); a skipped page torn on disk, rebuilt from its image
 * (P5 step 3); the end-of-recovery checkpoint (P8); and a crash at every
 * crash point of recovery - at its first, a middle and its last hit for
 * the points hit once per record or undo step - three recoveries in a
 * row, after which a clean open must hold exactly what the LMDB oracle
 * holds (the committed transactions, nothing of the losers), check clean,
 * and equal a reference recovery of a copy of the same crashed directory.
 *
 * Linked with -Wl,--wrap=storage_crash_point: at `ckpt-after-flush` a
 * test runs work inside a checkpoint, between its redo point and the
 * moment it lists the dirty pages, so that some pages are written and
 * clean then (deterministically, not by timing).
 *
 * Scale: WALDEN_TEST_SCALE (default 1, 0.2 under ASan) sets the size of
 * the crashed workload.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "btree/btree.h"
#include "recovery/control.h"
#include "recovery/dpt.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/simtest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "txn/db.h"
#include "wal/format.h"
#include "wal/wal.h"
#include "walden.h"

#define PS 4096u

/* ---- running work inside a checkpoint ------------------------------------ */

void __real_storage_crash_point(const char *name);
void __wrap_storage_crash_point(const char *name);

static const char *hook_at;
static void (*hook_fn)(void *arg);
static void *hook_arg;

/* The next hit of crash point `at` runs fn(arg) first (once). */
static void hook_arm(const char *at, void (*fn)(void *arg), void *arg)
{
	hook_at = at;
	hook_arg = arg;
	hook_fn = fn;
}

void __wrap_storage_crash_point(const char *name)
{
	if (hook_fn && strcmp(name, hook_at) == 0) {
		void (*fn)(void *arg) = hook_fn;
		hook_fn = NULL;
		fn(hook_arg);
	}
	__real_storage_crash_point(name);
}

/* ---- small helpers -------------------------------------------------------- */

static void opts(wd_options *o)
{
	dt_opts(o, 1);
	o->buffer_pool_bytes = 128u * PS; /* pages are evicted during the work */
}

static wd_db *open_db(const char *dir)
{
	wd_options o;
	wd_db *db = NULL;
	opts(&o);
	OK(wd_open(dir, &o, &db));
	return db;
}

/* One put (or, with v NULL, del) in a synchronous transaction of its own. */
static int put_one(wd_db *db, wd_table *t, const char *k, const char *v)
{
	wd_txn *x;
	int rc = wd_begin(db, &x);
	if (rc == 0)
		rc = v ? wd_put(x, t, k, strlen(k), v, strlen(v)) : wd_del(x, t, k, strlen(k));
	if (rc != 0) {
		if (x)
			(void)wd_abort(x);
		return rc;
	}
	return wd_commit(x);
}

/* A table opened (or created) in a forked child. */
static wd_table *child_table(wd_db *db, const char *name)
{
	wd_txn *x;
	wd_table *t;
	COK(wd_begin(db, &x));
	COK(wd_table_open(x, name, WD_CREATE, &t));
	COK(wd_commit(x));
	return t;
}

/* k's value must be want (NULL: absent). */
static void expect_key(wd_db *db, wd_table *t, const char *k, const char *want)
{
	char v[256];
	size_t n = 0;
	wd_txn *x;
	int rc;
	OK(wd_begin(db, &x));
	rc = wd_get(x, t, k, strlen(k), v, sizeof v - 1, &n);
	OK(wd_commit(x));
	if (!want && rc != WD_NOTFOUND)
		fail_msg("%s: present, expected absent", k);
	if (want && (rc != 0 || n != strlen(want) || memcmp(v, want, n) != 0))
		fail_msg("%s: %s, expected '%s'", k, rc ? wd_strerror(rc) : "another value", want);
}

/* The trace of the last open_traced. */
static char *trace_buf;

/* Opens dir with the modules traced into trace_buf. */
static wd_db *open_traced(const char *dir, const char *modules)
{
	wd_options o;
	opts(&o);
	free(trace_buf);
	return dt_open_traced(dir, &o, modules, &trace_buf);
}

/* The part of the trace from the line starting with `from` to the one
 * starting with `to` (a malloc'd copy). */
static char *trace_section(const char *from, const char *to)
{
	const char *a = strstr(trace_buf, from), *b;
	char *s;
	if (!a)
		fail_msg("no '%s' in the trace:\n%s", from, trace_buf);
	b = strstr(a, to);
	if (!b)
		fail_msg("no '%s' after '%s' in the trace", to, from);
	assert_non_null(s = strndup(a, (size_t)(b - a)));
	return s;
}

/* Lines of text containing every one of the NULL-terminated strings. */
static unsigned lines_with(const char *text, ...)
{
	unsigned n = 0;
	for (const char *l = text; l && *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		char *line = strndup(l, len);
		bool all = true;
		va_list ap;
		va_start(ap, text);
		for (const char *w; all && (w = va_arg(ap, const char *));)
			all = strstr(line, w) != NULL;
		va_end(ap);
		n += all;
		free(line);
		l = e ? e + 1 : NULL;
	}
	return n;
}

/* ---- 1. the dirty page table's rules (I4, I7, I8) ------------------------ */

static void expect_entry(const dpt *d, wd_relid rel, wd_blkno blk, wd_lsn rec, wd_lsn first)
{
	const dpt_entry *e = dpt_find(d, rel, blk);
	if (!e)
		fail_msg("page %u/%u: not in the table", rel, blk);
	if (e->rec_lsn != rec || e->first_lsn != first)
		fail_msg("page %u/%u: recLSN %llu first %llu, expected %llu and %llu", rel, blk,
			 (unsigned long long)e->rec_lsn, (unsigned long long)e->first_lsn,
			 (unsigned long long)rec, (unsigned long long)first);
}

/* No checkpoint: every page a record names is dirty from its first
 * record; redo starts at the smallest; nothing dirty: at the end. */
static void dpt_without_checkpoint(void)
{
	dpt *d;
	OK(dpt_create(&d));
	assert_int_equal(dpt_redo_start(d, 9000), 9000);
	OK(dpt_note(d, 5, 1, 1000));
	OK(dpt_note(d, 5, 1, 1100));
	OK(dpt_note(d, 5, 2, 1050));
	OK(dpt_note(d, 6, 1, 1200));
	expect_entry(d, 5, 1, 1000, 1000);
	expect_entry(d, 5, 2, 1050, 1050);
	assert_null(dpt_find(d, 5, 3));
	assert_null(dpt_find(d, 1, 5)); /* the key is (rel, blk), not a sum */
	assert_int_equal(dpt_pages(d), 3);
	assert_int_equal(dpt_redo_start(d, 9000), 1000);
	assert_false(dpt_rules_out_any(d)); /* redo need not ask it */
	dpt_free(d);
}

/*
 * A checkpoint with redo point R = 2000, its dirty pages listed at
 * S = 3000, its record at C = 4000, and a table naming (7,1) since 2500,
 * (7,2) since 1500 (below R), (7,3) since 3500, (7,4) since 2200.
 */
static void dpt_with_checkpoint(void)
{
	wal_ckpt_dpt ck[] = {{7, 1, 2500}, {7, 2, 1500}, {7, 3, 3500}, {7, 4, 2200}};
	uint32_t added, present;
	dpt_entry *v;
	size_t n;
	dpt *d;
	OK(dpt_create(&d));
	OK(dpt_use_checkpoint(d, 2000, 3000, ck, 4));
	OK(dpt_note(d, 7, 2, 2050)); /* (7,2): below R on disk, 2050 not: dirty */
	assert_false(dpt_rules_out_any(d));
	/* (7,9) is not in its table: its changes below S were on disk (I7) */
	OK(dpt_note(d, 7, 9, 2100));
	assert_true(dpt_rules_out_any(d));
	OK(dpt_note(d, 7, 9, 2900));
	expect_entry(d, 7, 9, DPT_CLEAN, 2100);
	assert_false(dpt_is_dirty(dpt_find(d, 7, 9)));
	/* (7,1): below its recLSN there on disk, dirty from it on */
	OK(dpt_note(d, 7, 1, 2100));
	expect_entry(d, 7, 1, DPT_CLEAN, 2100);
	OK(dpt_note(d, 7, 1, 2600));
	expect_entry(d, 7, 1, 2600, 2100);
	/* (7,2): its recLSN clamped to R (I4): every record from R is redone */
	expect_entry(d, 7, 2, 2050, 2050);
	OK(dpt_note(d, 7, 4, 2300));
	/* (7,9) again, at or after S: dirty from there */
	OK(dpt_note(d, 7, 9, 3100));
	expect_entry(d, 7, 9, 3100, 2100);
	assert_int_equal(dpt_pages(d), 4);
	/* the record: its pages not dirty here join (the textbook merge) */
	OK(dpt_merge_checkpoint(d, 4000, &added, &present));
	assert_int_equal(added, 1);
	assert_int_equal(present, 3);
	expect_entry(d, 7, 3, 3500, 0);
	/* after the checkpoint: a new page is dirty from its record, a page
	 * merged keeps its recLSN and learns its first record */
	OK(dpt_note(d, 7, 8, 4100));
	OK(dpt_note(d, 7, 3, 4200));
	expect_entry(d, 7, 8, 4100, 4100);
	expect_entry(d, 7, 3, 3500, 4200);
	assert_int_equal(dpt_redo_start(d, 9000), 2050);
	assert_int_equal(dpt_pages(d), 6);
	OK(dpt_sorted(d, &v, &n));
	assert_int_equal(n, 6);
	for (size_t i = 1; i < n; i++)
		assert_true(v[i - 1].rel < v[i].rel ||
			    (v[i - 1].rel == v[i].rel && v[i - 1].blk < v[i].blk));
	assert_int_equal(v[0].blk, 1);
	assert_int_equal(v[0].rec_lsn, 2600);
	assert_int_equal(v[5].blk, 9);
	free(v);
	dpt_free(d);
}

/* Only the checkpoint's table makes a page dirty: its record is where
 * redo starts (no record of that page lies between its recLSN and it). */
static void dpt_only_checkpoint(void)
{
	wal_ckpt_dpt ck[] = {{1, 1, 2600}};
	uint32_t added, present;
	dpt *d;
	OK(dpt_create(&d));
	OK(dpt_use_checkpoint(d, 2000, 3000, ck, 1));
	OK(dpt_note(d, 1, 1, 2100)); /* on disk: below 2600 */
	OK(dpt_note(d, 2, 1, 2200)); /* on disk: not listed, below S */
	assert_int_equal(dpt_pages(d), 0);
	assert_int_equal(dpt_redo_start(d, 9000), 9000);
	OK(dpt_merge_checkpoint(d, 4000, &added, &present));
	assert_int_equal(added, 1);
	assert_int_equal(present, 0);
	expect_entry(d, 1, 1, 2600, 2100);
	assert_int_equal(dpt_redo_start(d, 9000), 4000);
	dpt_free(d);
}

/* Hundreds of thousands of pages: the table grows, finds every one. */
static void dpt_many_pages(void)
{
	const unsigned n = 300000;
	dpt *d;
	OK(dpt_create(&d));
	for (unsigned i = 0; i < n; i++)
		OK(dpt_note(d, 16 + i % 7, i / 7, 1000 + 8ull * i));
	for (unsigned i = 0; i < n; i++)
		OK(dpt_note(d, 16 + i % 7, i / 7, 999999999));
	assert_int_equal(dpt_pages(d), n);
	for (unsigned i = 0; i < n; i += 97)
		expect_entry(d, 16 + i % 7, i / 7, 1000 + 8ull * i, 1000 + 8ull * i);
	assert_null(dpt_find(d, 16, n));
	dpt_free(d);
}

static void test_dpt_rules(void **state)
{
	(void)state;
	dpt_without_checkpoint();
	dpt_with_checkpoint();
	dpt_only_checkpoint();
	dpt_many_pages();
}

/* ---- 2. redo skips what the checkpoint found written ---------------------- */

/* What the child tells the parent. */
struct skip_shared {
	wd_relid heap_a, index_a;
	wd_blkno blk_a, blk_a2;        /* aX's heap page, aY's */
	uint8_t page_before[PS];       /* aX's heap page as written in the checkpoint */
};

struct skip_child_args {
	const char *dir;
	int fpw;
	bool torn; /* aY on aX's page after the checkpoint, written */
	struct skip_shared *sh;
	wd_db *db;
	wd_table *a, *b;
};

/* The heap block of key k of t. */
static wd_blkno heap_block(wd_table *t, const char *k)
{
	wd_tid tid;
	COK(btree_lookup(db_table_btree(t), k, strlen(k), &tid));
	return tid.blk;
}

/*
 * Inside the checkpoint, between its redo point and its dirty page table:
 * bW (table b's pages and the undo page dirty), aX, then table a's pages
 * and the undo page written (clean when the table is listed), then bX
 * (the undo page dirty again). Redo starts at bW's heap record: it reads
 * aX's records, whose pages it must skip - a's as not in the dirty page
 * table, the undo page's as below its recLSN.
 */
static void inside_checkpoint(void *arg)
{
	struct skip_child_args *c = arg;
	char path[4200];
	int fd;
	COK(put_one(c->db, c->b, "bW", "inside the checkpoint"));
	COK(put_one(c->db, c->a, "aX", "inside the checkpoint"));
	COK(bufmgr_flush_rel(db_pool(c->db), c->sh->heap_a));
	COK(bufmgr_flush_rel(db_pool(c->db), c->sh->index_a));
	COK(bufmgr_flush_rel(db_pool(c->db), UNDO_REL));
	c->sh->blk_a = heap_block(c->a, "aX");
	snprintf(path, sizeof path, "%s/base/%u", c->dir, c->sh->heap_a);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, c->sh->page_before, PS, (off_t)c->sh->blk_a * PS) != PS)
		_exit(5);
	close(fd);
	COK(put_one(c->db, c->b, "bX", "inside the checkpoint"));
}

static void skip_child(void *arg)
{
	struct skip_child_args *c = arg;
	wd_options o;
	char k[16];
	opts(&o);
	o.full_page_writes = c->fpw;
	COK(wd_open(c->dir, &o, &c->db));
	c->a = child_table(c->db, "a");
	c->b = child_table(c->db, "b");
	c->sh->heap_a = db_table_info_of(c->a)->heap_rel;
	c->sh->index_a = db_table_info_of(c->a)->index_rel;
	for (int i = 0; i < 20; i++) {
		snprintf(k, sizeof k, "a%02d", i);
		COK(put_one(c->db, c->a, k, "base"));
		k[0] = 'b';
		COK(put_one(c->db, c->b, k, "base"));
	}
	COK(wd_checkpoint(c->db)); /* every page clean, the base before its redo point */
	hook_arm("ckpt-after-flush", inside_checkpoint, c);
	COK(wd_checkpoint(c->db));
	COK(put_one(c->db, c->b, "bY", "after the checkpoint"));
	if (c->torn) {
		/* aX's page changed after the checkpoint and written: the write
		 * a power loss could tear */
		COK(put_one(c->db, c->a, "aY", "after the checkpoint"));
		COK(bufmgr_flush_all(db_pool(c->db)));
		c->sh->blk_a2 = heap_block(c->a, "aY");
	}
	_exit(0); /* the last commit was synchronous: the log is durable */
}

/* The crashed database's contents after the open. */
static void expect_skip_result(wd_db *db, bool torn)
{
	wd_table *a = dt_table(db, "a", 0), *b = dt_table(db, "b", 0);
	char k[16];
	for (int i = 0; i < 20; i++) {
		snprintf(k, sizeof k, "a%02d", i);
		expect_key(db, a, k, "base");
		k[0] = 'b';
		expect_key(db, b, k, "base");
	}
	expect_key(db, a, "aX", "inside the checkpoint");
	expect_key(db, b, "bW", "inside the checkpoint");
	expect_key(db, b, "bX", "inside the checkpoint");
	expect_key(db, b, "bY", "after the checkpoint");
	expect_key(db, a, "aY", torn ? "after the checkpoint" : NULL);
	dt_check_all(db);
}

/*
 * aX's records lie between the checkpoint's redo point and the moment it
 * listed its dirty pages, and aX's pages were written before that: redo
 * skips them as not in the dirty page table, and never reads them (with
 * full_page_writes off their records carry no image, so without the skip
 * redo would read the pages to compare LSNs; with it on, it would restore
 * their images). aX's undo record lies below the undo page's recLSN.
 */
static void run_skip(int fpw)
{
	char *root = tu_tmpdir("rec-skip"), *dir = tu_path(root, "db");
	struct skip_shared *sh = tw_shared(sizeof *sh);
	struct skip_child_args c = {.dir = dir, .fpw = fpw, .sh = sh};
	const db_recovery_report *r;
	char where[32], read_heap[48], read_index[48], *redo;
	wd_db *db;
	assert_int_equal(tu_run_child(skip_child, &c), 0);
	db = open_traced(dir, "recovery,bufmgr");
	OK(db_recovery_report_get(db, &r));
	redo = trace_section("== redo ==", "== repair ==");
	snprintf(where, sizeof where, " %u/%u ", sh->heap_a, sh->blk_a);
	if (lines_with(redo, "HEAP_INSERT", where, NULL) != 1 ||
	    lines_with(redo, "HEAP_INSERT", where, NULL) !=
		    lines_with(redo, "HEAP_INSERT", where, "skipped (not in dirty page table)",
			       NULL))
		fail_msg("full_page_writes=%d: aX's heap insert on %s is not skipped as not in "
			 "the dirty page table:\n%s", fpw, where, redo);
	if (lines_with(redo, "BTREE_INSERT_LEAF", "skipped (not in dirty page table)",
		       NULL) != 1 ||
	    lines_with(redo, "UNDO_APPEND", "skipped (before recLSN ", NULL) == 0)
		fail_msg("full_page_writes=%d: aX's index or undo record not skipped:\n%s",
			 fpw, redo);
	/* never read during redo: neither a's heap page nor an index page */
	snprintf(read_heap, sizeof read_heap, "read rel=%u blk=%u\n", sh->heap_a, sh->blk_a);
	snprintf(read_index, sizeof read_index, "read rel=%u ", sh->index_a);
	if (strstr(redo, read_heap) || strstr(redo, read_index))
		fail_msg("full_page_writes=%d: redo read a page of table a:\n%s", fpw, redo);
	assert_true(r->skipped_not_dirty > 0 && r->skipped_rec_lsn > 0);
	assert_true(r->applied + r->images > 0); /* b's changes were redone */
	assert_true(r->dpt_pages > 0 && r->redo_start > r->analysis_start);
	free(redo);
	expect_skip_result(db, false);
	OK(wd_close(db));
	tw_shared_free(sh, sizeof *sh);
	tu_rmrf(root);
	free(dir);
	free(root);
}

static void test_redo_skips_written_pages(void **state)
{
	(void)state;
	run_skip(1);
	run_skip(0);
}

/* ---- 3. a skipped page, torn ---------------------------------------------- */

/*
 * aX's page was written in the checkpoint (redo skips aX's records), then
 * changed by aY after it and written again - a write a power loss tears:
 * its last four sectors are the old ones. The first record redo reads it
 * for (aY's) finds the checksum wrong; the page is rebuilt from aX's
 * record (its image) and aY is redone. Without the rebuild the open fails.
 */
static void test_torn_skipped_page(void **state)
{
	char *root = tu_tmpdir("rec-torn"), *dir = tu_path(root, "db");
	struct skip_shared *sh = tw_shared(sizeof *sh);
	struct skip_child_args c = {.dir = dir, .fpw = 1, .torn = true, .sh = sh};
	const db_recovery_report *r;
	uint8_t page[PS];
	char path[4200];
	wd_db *db;
	int fd;
	(void)state;
	assert_int_equal(tu_run_child(skip_child, &c), 0);
	assert_int_equal(sh->blk_a2, sh->blk_a); /* aY went to aX's page */
	snprintf(path, sizeof path, "%s/base/%u", dir, sh->heap_a);
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, page, PS, (off_t)sh->blk_a * PS), PS);
	memcpy(page + PS / 2, sh->page_before + PS / 2, PS / 2);
	assert_int_equal(page_verify(page, PS, sh->blk_a, path), WD_ECORRUPT); /* torn */
	assert_int_equal(pwrite(fd, page, PS, (off_t)sh->blk_a * PS), PS);
	close(fd);
	db = open_traced(dir, "recovery");
	OK(db_recovery_report_get(db, &r));
	assert_int_equal(r->pages_rebuilt, 1);
	if (!strstr(trace_buf, "fails its checksum (a torn write after the checkpoint)"))
		fail_msg("no rebuild on the trace:\n%s", trace_buf);
	expect_skip_result(db, true);
	OK(wd_close(db));
	tw_shared_free(sh, sizeof *sh);
	tu_rmrf(root);
	free(dir);
	free(root);
}

/* ---- 4. the crashed workload and its oracle ------------------------------- */

/*
 * A child runs a script: committed transactions (1-6 puts and dels, every
 * sixth with a savepoint rolled back to) recorded in the LMDB oracle once
 * each commit is acknowledged, and four losers that never end - three
 * from the start (one with savepoints it rolls back to, one that stops
 * writing at the checkpoint), one begun after it - with overwrites,
 * deletes, values up to 16 pages and a burst of long keys that splits
 * leaves. Keys of each transaction are its own (one thread runs them all,
 * so none may wait for another's lock) and lie in two tables. A checkpoint
 * in the middle runs part of the script between its redo point and its
 * dirty page table. The child dies with the log durable.
 */
#define WL_SLOTS 5 /* 0: committed transactions; 1-4: losers */
#define WL_RANGE 500u
#define WL_BURST 100000u
#define WL_VMAX (16u * PS)

struct wl {
	wd_db *db;
	wd_table *t[2];
	wd_txn *x[WL_SLOTS];
	MDB_env *env;
	MDB_dbi dbi[2];
	MDB_txn *mt, *msp; /* the committed transaction's, its savepoint's */
	unsigned ops0, ntx0; /* the committed transaction's ops, transactions */
	unsigned ops3;       /* loser 3's ops (savepoints) */
	uint64_t s;
	unsigned step, steps;
	bool after_ckpt;
	uint8_t *v;
};

static const char *const wl_tables[2] = {"r0", "r1"};

static size_t wl_key(unsigned id, uint8_t *k)
{
	return dt_mixed_key("wk", id, WL_BURST, k);
}

static uint32_t wl_vlen(uint64_t *s)
{
	return dt_mixed_vlen(s, 3 * PS, WL_VMAX);
}

static void wl_die(const char *what, int rc)
{
	fprintf(stderr, "workload: %s: %s (%s)\n", what, wd_strerror(rc), wd_last_error());
	_exit(4);
}

/* An LMDB call in the child must succeed (no cmocka there). */
#define CMDB(expr)                                                            \
	do {                                                                  \
		int m_ = (expr);                                              \
		if (m_ != 0)                                                  \
			wl_die(mdb_strerror(m_), WD_EIO);                     \
	} while (0)

/* The oracle's write transaction (nested in parent if not NULL). */
static MDB_txn *wl_mbegin(struct wl *w, MDB_txn *parent)
{
	MDB_txn *t;
	CMDB(mdb_txn_begin(w->env, parent, 0, &t));
	return t;
}

/* The oracle's side of a committed change. */
static void wl_oracle_op(struct wl *w, unsigned id, bool del, uint32_t vlen)
{
	uint8_t k[128];
	MDB_val mk = {wl_key(id, k), k}, mv = {vlen, w->v};
	MDB_txn *mt = w->msp ? w->msp : w->mt;
	int m = del ? mdb_del(mt, w->dbi[id % 2], &mk, NULL)
		    : mdb_put(mt, w->dbi[id % 2], &mk, &mv, 0);
	if (m != 0 && !(del && m == MDB_NOTFOUND))
		CMDB(m);
}

/* One change of slot's transaction (begun if need be). */
static void wl_op(struct wl *w, int slot, unsigned id, bool del, uint32_t vlen, uint64_t vseed)
{
	uint8_t k[128];
	size_t kl = wl_key(id, k);
	int rc;
	if (!w->x[slot]) {
		if ((rc = wd_begin(w->db, &w->x[slot])) != 0)
			wl_die("begin", rc);
		if (slot == 0)
			w->mt = wl_mbegin(w, NULL);
	}
	ot_fill(w->v, vlen, vseed);
	rc = del ? wd_del(w->x[slot], w->t[id % 2], k, kl)
		 : wd_put(w->x[slot], w->t[id % 2], k, kl, w->v, vlen);
	if (rc != 0 && rc != WD_NOTFOUND)
		wl_die("change", rc);
	if (slot == 0)
		wl_oracle_op(w, id, del, vlen);
}

/* The committed transaction: acknowledged, then into the oracle. */
static void wl_commit(struct wl *w)
{
	int rc = wd_commit(w->x[0]);
	w->x[0] = NULL;
	if (rc != 0)
		wl_die("commit", rc);
	if (w->msp)
		CMDB(mdb_txn_commit(w->msp));
	CMDB(mdb_txn_commit(w->mt));
	w->msp = w->mt = NULL;
	w->ops0 = 0;
	w->ntx0++;
}

/* Savepoints: the committed transaction sets one after its first change
 * in every sixth transaction and rolls back to it after three more;
 * loser 3 sets and rolls back alternately every 25 changes. */
static void wl_savepoints(struct wl *w, int slot)
{
	if (slot == 0 && w->ntx0 % 6 == 5) {
		if (++w->ops0 == 1) {
			if (wd_savepoint(w->x[0], "sp") != 0)
				wl_die("savepoint", WD_EIO);
			w->msp = wl_mbegin(w, w->mt);
		} else if (w->ops0 == 4) {
			if (wd_rollback_to(w->x[0], "sp") != 0)
				wl_die("rollback_to", WD_EIO);
			mdb_txn_abort(w->msp);
			w->msp = wl_mbegin(w, w->mt);
		}
	}
	if (slot == 3 && ++w->ops3 % 25 == 0) {
		int rc = (w->ops3 / 25) % 2 ? wd_savepoint(w->x[3], "p")
					    : wd_rollback_to(w->x[3], "p");
		if (rc != 0)
			wl_die("loser savepoint", rc);
	}
}

/* Step i of the script. */
static void wl_step(struct wl *w)
{
	unsigned r = (unsigned)(tu_rand(&w->s) % 10), id;
	int slot = r < 3 ? 1 : r < 5 ? 2 : r < 6 ? 3 : r < 7 ? 4 : 0;
	if (slot == 4 && !w->after_ckpt)
		slot = 1; /* loser 4 begins after the checkpoint */
	if (slot == 2 && w->after_ckpt)
		slot = 3; /* loser 2 stops at the checkpoint */
	id = (unsigned)slot * WL_RANGE + (unsigned)(tu_rand(&w->s) % WL_RANGE);
	bool del = tu_rand(&w->s) % 5 == 0;
	uint32_t vlen = wl_vlen(&w->s);
	wl_op(w, slot, id, del, vlen, tu_rand(&w->s));
	wl_savepoints(w, slot);
	if (w->step == w->steps / 3) /* loser 1's long keys: leaf splits */
		for (unsigned j = 0; j < 800; j++)
			wl_op(w, 1, WL_BURST + j, false, 20 + (uint32_t)(tu_rand(&w->s) % 100),
			      tu_rand(&w->s));
	if (slot == 0 && tu_rand(&w->s) % 4 == 0)
		wl_commit(w);
	w->step++;
}

/* Inside the mid checkpoint (ckpt-after-flush): a part of the script. */
static void wl_inside_checkpoint(void *arg)
{
	struct wl *w = arg;
	for (unsigned i = 0; i < w->steps / 8; i++)
		wl_step(w);
}

/* The base: every key of every slot's range, committed (and in the
 * oracle). */
static void wl_base(struct wl *w)
{
	for (unsigned id = 0; id < WL_SLOTS * WL_RANGE; id++) {
		wl_op(w, 0, id, false, wl_vlen(&w->s), tu_rand(&w->s));
		if (id % 250 == 249)
			wl_commit(w);
	}
}

struct wl_args {
	const char *dir, *odir;
	unsigned steps;
};

static void wl_child(void *arg)
{
	struct wl_args *a = arg;
	struct wl w = {.s = tu_seed(4242), .steps = a->steps, .v = malloc(WL_VMAX)};
	wd_options o;
	int rc;
	MDB_txn *mt;
	opts(&o);
	CMDB(mdb_env_create(&w.env));
	CMDB(mdb_env_set_mapsize(w.env, 4ull << 30));
	CMDB(mdb_env_set_maxdbs(w.env, 4));
	CMDB(mdb_env_open(w.env, a->odir, MDB_NOSYNC | MDB_NOMETASYNC, 0644));
	if ((rc = wd_open(a->dir, &o, &w.db)) != 0)
		wl_die("open", rc);
	mt = wl_mbegin(&w, NULL);
	for (int i = 0; i < 2; i++) {
		CMDB(mdb_dbi_open(mt, wl_tables[i], MDB_CREATE, &w.dbi[i]));
		w.t[i] = child_table(w.db, wl_tables[i]);
	}
	CMDB(mdb_txn_commit(mt));
	wl_base(&w);
	while (w.step < w.steps) {
		if (w.step == w.steps / 2) {
			hook_arm("ckpt-after-flush", wl_inside_checkpoint, &w);
			if ((rc = wd_checkpoint(w.db)) != 0)
				wl_die("checkpoint", rc);
			w.after_ckpt = true;
		}
		wl_step(&w);
	}
	wl_op(&w, 0, 0, false, 10, 1); /* the last commit makes every loser */
	wl_commit(&w);                  /* record durable */
	_exit(0);
}

/* ---- the crashed directory, its oracle, and the reference recovery ---- */

static char *g_root, *g_crashed, *g_odir;
static uint64_t g_digest;
static ot_oracle g_o;
static MDB_dbi g_dbi[2];

/* FNV-1a over every table's keys and values, in order (with lengths). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001B3ull;
	return h;
}

struct digest {
	wd_db *db;
	uint64_t h;
};

static int digest_table(void *arg, const db_table_info *ti)
{
	struct digest *d = arg;
	const void *k, *v;
	size_t kl, vl;
	wd_cursor *c;
	wd_table *t;
	wd_txn *x;
	int rc;
	OK(wd_begin_flags(d->db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, ti->name, 0, &t));
	OK(wd_cursor_open(x, t, &c));
	d->h = fnv(d->h, ti->name, strlen(ti->name) + 1);
	while ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
		d->h = fnv(d->h, &kl, sizeof kl);
		d->h = fnv(d->h, k, kl);
		d->h = fnv(d->h, &vl, sizeof vl);
		d->h = fnv(d->h, v, vl);
	}
	assert_int_equal(rc, WD_NOTFOUND);
	wd_cursor_close(c);
	OK(wd_commit(x));
	return 0;
}

static uint64_t digest(wd_db *db)
{
	struct digest d = {db, 0xCBF29CE484222325ull};
	OK(db_catalog_list(db, digest_table, &d));
	return d.h;
}

/* The open database must hold what the oracle holds, check clean and
 * (reference 0: being the reference) equal the reference recovery. */
static void verify(wd_db *db, const char *when)
{
	for (int i = 0; i < 2; i++)
		ot_compare_committed(db, wl_tables[i], &g_o, g_dbi[i], when);
	dt_check_all(db);
	if (g_digest && digest(db) != g_digest)
		fail_msg("%s: the tables differ from the reference recovery's", when);
}

static int crash_setup(void **state)
{
	struct wl_args a;
	const db_recovery_report *r;
	char *ref;
	wd_db *db;
	(void)state;
	g_root = tu_tmpdir("rec-crash");
	g_crashed = tu_path(g_root, "crashed");
	g_odir = tu_path(g_root, "oracle");
	a = (struct wl_args){g_crashed, g_odir, (unsigned)(1200 * dt_scale()) + 100};
	assert_int_equal(mkdir(g_odir, 0755), 0);
	if (tu_run_child(wl_child, &a) != 0)
		return -1;
	ot_reopen(&g_o, g_odir);
	for (int i = 0; i < 2; i++)
		g_dbi[i] = ot_dbi(&g_o, wl_tables[i]);
	/* the reference: a copy recovered with no crash */
	ref = tu_path(g_root, "reference");
	tu_copy_tree(g_crashed, ref);
	db = open_db(ref);
	OK(db_recovery_report_get(db, &r));
	print_message("crashed workload: %llu records from the redo point, %llu in redo, "
		      "%llu dirty pages, %llu skipped by the dirty page table, %llu losers, "
		      "%llu undo steps\n", (unsigned long long)r->records,
		      (unsigned long long)r->redo_records, (unsigned long long)r->dpt_pages,
		      (unsigned long long)(r->skipped_not_dirty + r->skipped_rec_lsn),
		      (unsigned long long)r->losers, (unsigned long long)r->undo_steps);
	assert_int_equal(r->losers, 4);
	verify(db, "after the reference recovery");
	g_digest = digest(db);
	OK(wd_close(db));
	tu_rmrf(ref);
	free(ref);
	return 0;
}

static int crash_teardown(void **state)
{
	(void)state;
	ot_close(&g_o);
	tu_rmrf(g_root);
	free(g_root);
	free(g_crashed);
	free(g_odir);
	free(trace_buf);
	trace_buf = NULL;
	return 0;
}

/* ---- 5. crashes during recovery ------------------------------------------- */

struct open_args {
	const char *dir, *point;
	uint64_t nth;              /* 0: no crash, count the hits */
	volatile uint64_t *hits;   /* shared: the point's hits in a whole open */
};

/* In a child: opens dir with point armed at its nth hit; the open must
 * die there (86). With nth 0, counts the point's hits in the open. */
static void open_child(void *arg)
{
	struct open_args *a = arg;
	uint64_t before = storage_crash_hits(a->point); /* the parent's, forked */
	wd_options o;
	wd_db *db;
	int rc;
	opts(&o);
	if (a->nth)
		storage_crash_arm(a->point, a->nth);
	rc = wd_open(a->dir, &o, &db);
	if (a->nth) {
		fprintf(stderr, "open child: the open %s without reaching %s #%llu\n",
			rc ? "failed" : "finished", a->point, (unsigned long long)a->nth);
		_exit(rc ? 4 : 5);
	}
	*a->hits = storage_crash_hits(a->point) - before;
	_exit(rc ? 4 : 0);
}

/* The hits of point in a whole recovery of dir (run on a copy). */
static uint64_t probe_hits(const char *dir, const char *point, volatile uint64_t *hits)
{
	char *copy = tu_path(g_root, "probe");
	struct open_args a = {copy, point, 0, hits};
	tu_copy_tree(dir, copy);
	*hits = 0;
	assert_int_equal(tu_run_child(open_child, &a), 0);
	tu_rmrf(copy);
	free(copy);
	return *hits;
}

/* Where a recovery is killed: its nth hit of the point (n > 0), or the
 * first, a middle or the last hit a whole recovery would make (probed on
 * a copy first). */
#define AT_FIRST (-1)
#define AT_MIDDLE (-2)
#define AT_LAST (-3)

/*
 * Three recoveries of a copy of the crashed directory, in a row, each
 * killed at point: at its nth[i] hit, or (probed) at the FIRST, a MIDDLE
 * or the LAST hit that recovery would make, counted on a copy first (after
 * a kill at the LAST hit of a point that follows its record, the next
 * recovery may have none left: the rest go unkilled). Then a clean open: the oracle's contents, clean checks, the reference's
 * tables; and after a clean close and reopen, the same.
 */
static void crash_sequence(const char *point, const int at[3])
{
	char *dir = tu_path(g_root, "run"), when[160];
	volatile uint64_t *hits = tw_shared(sizeof *hits);
	wd_db *db;
	tu_copy_tree(g_crashed, dir);
	for (int i = 0; i < 3; i++) {
		uint64_t k = (uint64_t)at[i], h;
		struct open_args a;
		if (at[i] < 0) {
			h = probe_hits(dir, point, hits);
			/* killed at the last hit of a point that comes after its
			 * record (a CLR, an ABORT) is inserted, the previous
			 * recovery may have left nothing for this one to do
			 * there: the WAL writer may have written the record out
			 * before the kill. Not so after undo-after-apply, whose
			 * kill precedes the CLR: the step must be undone again,
			 * and no hit there is a failure. */
			if (h == 0 && i > 0 && at[i - 1] == AT_LAST &&
			    (strcmp(point, "undo-after-clr") == 0 ||
			     strcmp(point, "txn-loser-after-abort") == 0)) {
				print_message("%s: recovery %d has no hit left after the last "
					      "one; not killed\n", point, i + 1);
				break;
			}
			if (h == 0)
				fail_msg("%s: recovery %d would not reach it", point, i + 1);
			k = at[i] == AT_FIRST ? 1 : at[i] == AT_MIDDLE ? (h + 1) / 2 : h;
		}
		a = (struct open_args){dir, point, k, hits};
		int status = tu_run_child(open_child, &a);
		if (status != ST_CRASH_EXIT_CODE)
			fail_msg("%s: recovery %d killed at hit %llu exited with %d", point, i + 1,
				 (unsigned long long)k, status);
	}
	snprintf(when, sizeof when, "after 3 recoveries killed at %s", point);
	db = open_db(dir);
	verify(db, when);
	OK(wd_close(db));
	db = open_db(dir);
	verify(db, when);
	OK(wd_close(db));
	tw_shared_free((void *)hits, sizeof *hits);
	tu_rmrf(dir);
	free(dir);
}

/* The points between the passes: one hit per recovery. */
static void test_crash_between_passes(void **state)
{
	static const char *const points[] = {"recovery-after-analysis", "recovery-after-redo",
					     "recovery-after-repair",
					     "recovery-before-end-checkpoint"};
	static const int once[3] = {1, 1, 1};
	(void)state;
	for (size_t i = 0; i < sizeof points / sizeof *points; i++)
		crash_sequence(points[i], once);
}

/* After each record redo applied: the first, a middle and the last. */
static void test_crash_redo_records(void **state)
{
	static const int picks[3] = {AT_FIRST, AT_MIDDLE, AT_LAST};
	static const int picks2[3] = {AT_LAST, AT_FIRST, AT_MIDDLE};
	(void)state;
	crash_sequence("recovery-redo-record", picks);
	crash_sequence("recovery-redo-record", picks2);
}

/* In the losers' undo: after a step is applied (no CLR yet), after its
 * CLR, after a loser's ABORT. */
static void test_crash_undo_steps(void **state)
{
	static const char *const points[] = {"undo-after-apply", "undo-after-clr",
					     "txn-loser-after-abort"};
	static const int picks[3] = {AT_FIRST, AT_MIDDLE, AT_LAST};
	static const int picks2[3] = {AT_MIDDLE, AT_LAST, AT_FIRST};
	(void)state;
	for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
		crash_sequence(points[i], picks);
		crash_sequence(points[i], picks2);
	}
}

/* In the end-of-recovery checkpoint, and in the control file writes
 * (the first: "in crash recovery" at the start; the second: the end
 * checkpoint's). */
static void test_crash_end_checkpoint(void **state)
{
	static const char *const points[] = {"ckpt-begin", "ckpt-after-flush",
					     "ckpt-after-record", "ckpt-after-control"};
	static const char *const control[] = {"control-before-rename",
					      "control-before-dir-sync"};
	static const int once[3] = {1, 1, 1}, both[3] = {2, 1, 2};
	(void)state;
	for (size_t i = 0; i < sizeof points / sizeof *points; i++)
		crash_sequence(points[i], once);
	for (size_t i = 0; i < sizeof control / sizeof *control; i++)
		crash_sequence(control[i], both);
}

/* ---- 6. the end-of-recovery checkpoint ------------------------------------ */

struct end_shared {
	wd_lsn ckpt, redo;
	uint64_t losers;
};

struct end_args {
	const char *dir;
	struct end_shared *sh;
};

/* Recovers dir, notes the end checkpoint and dies without a close. */
static void recover_and_die(void *arg)
{
	struct end_shared *sh = ((struct end_args *)arg)->sh;
	const char *dir = ((struct end_args *)arg)->dir;
	const db_recovery_report *r;
	wd_options o;
	wd_db *db;
	opts(&o);
	COK(wd_open(dir, &o, &db));
	COK(db_recovery_report_get(db, &r));
	sh->ckpt = r->end_checkpoint_lsn;
	sh->redo = r->end_checkpoint_redo;
	sh->losers = r->losers_rolled_back;
	_exit(0);
}

/*
 * After a recovering open the control file names the end checkpoint, in
 * production, its redo point past every record recovery wrote: the open
 * after a crash right then starts there and finds nothing to redo or undo.
 */
static void test_end_checkpoint(void **state)
{
	char *dir = tu_path(g_root, "end");
	struct end_shared *sh = tw_shared(sizeof *sh);
	struct end_args args = {dir, sh};
	const db_recovery_report *r;
	control_data cd;
	wd_db *db;
	(void)state;
	tu_copy_tree(g_crashed, dir);
	assert_int_equal(tu_run_child(recover_and_die, &args), 0);
	assert_int_equal(sh->losers, 4);
	OK(control_read(dir, &cd));
	assert_int_equal(cd.state, CONTROL_IN_PRODUCTION);
	assert_int_equal(cd.checkpoint_lsn, sh->ckpt);
	assert_int_equal(cd.redo_lsn, sh->redo);
	assert_true(sh->redo > 0 && sh->redo <= sh->ckpt);
	db = open_traced(dir, "recovery");
	OK(db_recovery_report_get(db, &r));
	assert_int_equal(r->checkpoint_lsn, sh->ckpt);
	assert_int_equal(r->analysis_start, sh->redo);
	assert_int_equal(r->records, 1); /* the checkpoint record alone */
	assert_int_equal(r->losers, 0);
	assert_int_equal(r->dpt_pages, 0);
	assert_int_equal(r->applied + r->images + r->skipped, 0);
	assert_int_equal(r->repaired + r->undo_steps, 0);
	if (!strstr(trace_buf, "== end-of-recovery checkpoint ==") ||
	    !strstr(trace_buf, "control file: in production"))
		fail_msg("the end checkpoint is not on the trace:\n%s", trace_buf);
	verify(db, "after a crash right after recovery");
	OK(wd_close(db));
	tw_shared_free(sh, sizeof *sh);
	tu_rmrf(dir);
	free(dir);
}

/* For every regular file directly in from/sub (the crashed directory as it
 * was before the open, which may add segments), the "fdatasync dir/sub/NAME"
 * trace line appears in trace before its first `before` line (fails
 * naming the file if not). */
static void expect_synced_before(const char *trace, const char *from, const char *dir,
				 const char *sub, const char *before)
{
	char *src = tu_path(from, sub), line[4400];
	const char *limit = strstr(trace, before), *at;
	struct dirent *de;
	DIR *d = opendir(src);
	unsigned n = 0;
	assert_non_null(d);
	assert_non_null(limit);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(line, sizeof line, "fdatasync %s/%s/%s\n", dir, sub, de->d_name);
		at = strstr(trace, line);
		if (!at || at > limit)
			fail_msg("%s/%s/%s was not fsynced before recovery began", dir, sub,
				 de->d_name);
		n++;
	}
	closedir(d);
	assert_true(n > 0);
	free(src);
}

/*
 * A killed process leaves its last writes in the OS cache; recovery
 * believes them, so every relation file and WAL segment is fsynced before
 * it reads anything (recovery/README.md I11): each file of the crashed
 * directory has its fdatasync on the trace before the analysis begins.
 */
static void test_syncs_before_recovery(void **state)
{
	char *dir = tu_path(g_root, "sync");
	wd_db *db;
	(void)state;
	tu_copy_tree(g_crashed, dir);
	db = open_traced(dir, "storage,recovery");
	expect_synced_before(trace_buf, g_crashed, dir, "base", "== analysis ==");
	expect_synced_before(trace_buf, g_crashed, dir, "wal", "== analysis ==");
	verify(db, "after the synced recovery");
	OK(wd_close(db));
	tu_rmrf(dir);
	free(dir);
}

/* Flips one byte at off of file path. */
static void flip_byte(const char *path, uint64_t off)
{
	uint8_t b;
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5A;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

/* An order-independent digest of every file in dir/wal: names, sizes and
 * bytes (fails if the directory cannot be read). */
static uint64_t wal_dir_digest(const char *dir)
{
	char *wd = tu_path(dir, WAL_DIR), *p;
	uint64_t h = 0;
	struct dirent *de;
	DIR *d = opendir(wd);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		uint8_t *bytes;
		size_t len;
		uint64_t fh = 1469598103934665603ull;
		if (de->d_name[0] == '.')
			continue;
		p = tu_path(wd, de->d_name);
		bytes = simtest_slurp(p, 1u << 30, &len);
		assert_non_null(bytes);
		for (size_t i = 0; de->d_name[i]; i++)
			fh = (fh ^ (uint8_t)de->d_name[i]) * 1099511628211ull;
		for (size_t i = 0; i < len; i++)
			fh = (fh ^ bytes[i]) * 1099511628211ull;
		h += fh ^ len;
		free(bytes);
		free(p);
	}
	closedir(d);
	free(wd);
	return h;
}

/*
 * A log damaged at or before the checkpoint record the control file names
 * ends before it: the open refuses it as corrupt before wal_open, leaving
 * the log untouched (no tail zeroed, no later segment removed), so once
 * the byte is put back every commit is still there.
 */
static void test_log_ending_before_checkpoint(void **state)
{
	char *dir = tu_path(g_root, "before-ckpt"), seg[4400];
	control_data cd;
	uint64_t before;
	wd_options o;
	wd_db *db = NULL;
	(void)state;
	tu_copy_tree(g_crashed, dir);
	OK(control_read(dir, &cd));
	assert_true(cd.checkpoint_lsn >= cd.redo_lsn && cd.checkpoint_lsn > 0);
	OK(wal_seg_path(seg, sizeof seg, dir, cd.checkpoint_lsn / cd.wal_segment_size));
	/* a byte of the record's header: its length or CRC no longer check */
	flip_byte(seg, cd.checkpoint_lsn % cd.wal_segment_size + 2);
	before = wal_dir_digest(dir);
	opts(&o);
	EXPECT(wd_open(dir, &o, &db), WD_ECORRUPT);
	if (!strstr(wd_last_error(), "before the checkpoint record"))
		fail_msg("the error does not say why: %s", wd_last_error());
	assert_true(wal_dir_digest(dir) == before);
	flip_byte(seg, cd.checkpoint_lsn % cd.wal_segment_size + 2);
	OK(wd_open(dir, &o, &db));
	verify(db, "after the damaged byte was put back");
	OK(wd_close(db));
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest alone[] = {
		cmocka_unit_test(test_dpt_rules),
		cmocka_unit_test(test_redo_skips_written_pages),
		cmocka_unit_test(test_torn_skipped_page),
	};
	const struct CMUnitTest crashed[] = {
		cmocka_unit_test(test_end_checkpoint),
		cmocka_unit_test(test_syncs_before_recovery),
		cmocka_unit_test(test_log_ending_before_checkpoint),
		cmocka_unit_test(test_crash_between_passes),
		cmocka_unit_test(test_crash_redo_records),
		cmocka_unit_test(test_crash_undo_steps),
		cmocka_unit_test(test_crash_end_checkpoint),
	};
	int failed = cmocka_run_group_tests_name("recovery", alone, NULL, NULL);
	failed += cmocka_run_group_tests_name("crashes during recovery", crashed, crash_setup,
					      crash_teardown);
	return failed;
}
