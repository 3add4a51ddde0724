/*
 * test_badfiles.c - damaged and misplaced files (DESIGN.md section 6:
 * "truncated file, wrong page size, a WAL or control file from another
 * database -> a clear error naming the file and page; never a silent wrong
 * answer"). The database of tests/lib/badtest.c (built once, closed
 * cleanly, an LMDB oracle of its contents) has one of its files cut,
 * zeroed or replaced by another database's, then is opened and read in
 * full; the open or the read must fail with a clear error naming the file
 * (and the block, where there is one), or return exactly the oracle's
 * rows. Every case prints one line: what was done and what came of it.
 *
 *   test_zeroed_pages        a whole page of each kind zeroed
 *   test_truncated_relations every relation file cut mid-page, a page
 *                            short, to zero bytes
 *   test_truncated_control   the control file cut, or missing
 *   test_truncated_wal       the segment holding the checkpoint cut
 *   test_page_size           another page size configured; a relation
 *                            file of an 8 KiB database in a 4 KiB one
 *   test_foreign_files       control file, WAL segment, relation file of
 *                            another database
 *
 * Time on the 2-core machine (scratch in /dev/shm): about 1.5 s in
 * release, 5-7 s under ASan.
 */
#define _GNU_SOURCE
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "recovery/control.h"
#include "tests/lib/badtest.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "walden.h"

#define CRASH_KEYS 200u /* commits after the checkpoint: a few pages of log */

/* One outcome: a clear error naming file (and blk unless
 * WD_INVALID_BLKNO) with code want (0: any of WD_ECORRUPT, WD_EFOREIGN,
 * WD_EVERSION), or - if ok_rows - no error and the oracle's rows. */
static void expect(bt_db *b, const char *what, const char *file, wd_blkno blk, int want,
		   bool ok_rows, uint32_t page_size)
{
	bt_result r;
	bt_trial(b, page_size, &r);
	printf("  %-58s %s%s%s\n", what, r.rc ? wd_strerror(r.rc) : "no error",
	       r.rc ? ": " : (r.wrong ? ", WRONG ROWS" : ", rows as the oracle's"),
	       r.rc ? r.msg : "");
	if (r.wrong)
		fail_msg("%s: a wrong answer: %s (error: %s)", what, r.diag, r.rc ? r.msg : "none");
	if (r.rc == 0) {
		if (!ok_rows)
			fail_msg("%s: no error", what);
	} else {
		bool code_ok = want ? r.rc == want
				    : (r.rc == WD_ECORRUPT || r.rc == WD_EFOREIGN ||
				       r.rc == WD_EVERSION);
		if (!code_ok || !bt_names(r.msg, file, blk))
			fail_msg("%s: %s: %s (expected %s naming %s%s)", what, wd_strerror(r.rc),
				 r.msg, want ? wd_strerror(want) : "a clear error", file,
				 blk == WD_INVALID_BLKNO ? "" : " and the block");
	}
	bt_restore(b);
}

/* Cuts file i of the database to len bytes. */
static void cut(bt_db *b, uint32_t i, uint64_t len)
{
	char *path = bt_path(b, i);
	assert_int_equal(truncate(path, (off_t)len), 0);
	free(path);
}

/* Replaces file i of b by the bytes (len) of another. */
static void replace(bt_db *b, uint32_t i, const uint8_t *p, size_t len)
{
	char *path = bt_path(b, i);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
	free(path);
}

/* ---- whole pages zeroed ----------------------------------------------------------- */

/* A page read as all zero is "never written" (storage I6): the first,
 * a middle and the last page of each kind zeroed. */
static void test_zeroed_pages(void **state)
{
	bt_db b;
	uint8_t *zero;
	(void)state;
	bt_build(&b, "zeroed", 0, 3);
	assert_non_null(zero = calloc(1, b.ps));
	for (int c = 0; c < BT_NCLASS; c++) {
		size_t seen = 0, n = b.nclass[c];
		for (size_t i = 0; i < b.npages; i++) {
			const bt_page *pg = &b.pages[i];
			char what[160];
			if ((int)pg->cls != c || c == BT_ZERO)
				continue;
			seen++;
			if (seen != 1 && seen != (n + 1) / 2 && seen != n)
				continue;
			bt_write_at(&b, pg->file, (uint64_t)pg->blk * b.ps, zero, b.ps);
			snprintf(what, sizeof what, "%s block %u (%s) zeroed",
				 b.files[pg->file].name, pg->blk, bt_class_names[c]);
			expect(&b, what, b.files[pg->file].name, pg->blk, WD_ECORRUPT, true, 0);
		}
	}
	free(zero);
	bt_free(&b);
}

/* ---- truncated files ------------------------------------------------------------------ */

static void test_truncated_relations(void **state)
{
	bt_db b;
	(void)state;
	bt_build(&b, "truncrel", 0, 4);
	for (uint32_t i = 0; i < b.nfiles; i++) {
		const bt_file *f = &b.files[i];
		const uint64_t lens[] = {f->len - b.ps / 2, f->len - b.ps, 0};
		const char *how[] = {"cut mid-page", "its last page missing", "cut to zero bytes"};
		if (strncmp(f->name, "base/", 5) != 0 || f->len == 0)
			continue;
		for (int k = 0; k < 3; k++) {
			char what[160];
			wd_blkno blk = k == 0 ? (wd_blkno)(f->len / b.ps - 1) : WD_INVALID_BLKNO;
			if (k == 1 && f->len < b.ps)
				continue;
			cut(&b, i, lens[k]);
			snprintf(what, sizeof what, "%s (%zu pages) %s", f->name, f->len / b.ps,
				 how[k]);
			expect(&b, what, f->name, blk, 0, true, 0);
		}
	}
	bt_free(&b);
}

static void test_truncated_control(void **state)
{
	bt_db b;
	int ci;
	char *path;
	(void)state;
	bt_build(&b, "truncctl", 0, 5);
	assert_true((ci = bt_file_index(&b, "control")) >= 0);
	for (uint64_t len = 0; len < 512; len += len < 16 ? 8 : 248) {
		char what[96];
		cut(&b, (uint32_t)ci, len);
		snprintf(what, sizeof what, "control cut to %llu bytes", (unsigned long long)len);
		expect(&b, what, "control", WD_INVALID_BLKNO, WD_ECORRUPT, false, 0);
	}
	path = bt_path(&b, (uint32_t)ci);
	assert_int_equal(unlink(path), 0);
	free(path);
	expect(&b, "control missing", "control", WD_INVALID_BLKNO, 0, false, 0);
	bt_free(&b);
}

/* The segment the control file's checkpoint record lies in (recycled
 * segments may have higher numbers). */
static int checkpoint_segment(const bt_db *b)
{
	control_data cd;
	char name[64];
	int i;
	OK(control_read(b->dir, &cd));
	snprintf(name, sizeof name, "wal/%016llX",
		 (unsigned long long)(cd.checkpoint_lsn / cd.wal_segment_size));
	assert_true((i = bt_file_index(b, name)) >= 0);
	return i;
}

static void test_truncated_wal(void **state)
{
	bt_db b;
	int si;
	(void)state;
	bt_build(&b, "truncwal", 0, 6);
	si = checkpoint_segment(&b);
	const uint64_t lens[] = {0, 32, 64, b.files[si].len / 2};
	for (int k = 0; k < 4; k++) {
		char what[96];
		cut(&b, (uint32_t)si, lens[k]);
		snprintf(what, sizeof what, "%s cut to %llu bytes", b.files[si].name,
			 (unsigned long long)lens[k]);
		expect(&b, what, b.files[si].name, WD_INVALID_BLKNO, 0, false, 0);
	}
	bt_free(&b);
}

/* A child commits keys "zz<i>" (synchronously) into "small" after the
 * checkpoint, and dies without closing: recovery needs the records. */
static void commit_and_die(void *arg)
{
	bt_db *b = arg;
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	bt_opts(&o, b->ps);
	COK(wd_open(b->dir, &o, &db));
	for (unsigned i = 0; i < CRASH_KEYS; i++) {
		char k[16], v[64];
		snprintf(k, sizeof k, "zz%04u", i);
		snprintf(v, sizeof v, "value %u after the checkpoint", i);
		COK(wd_begin(db, &x));
		COK(wd_table_open(x, "small", 0, &t));
		COK(wd_put(x, t, k, strlen(k), v, strlen(v)));
		COK(wd_commit(x));
	}
	_exit(0);
}

/* The oracle learns what commit_and_die committed. */
static void oracle_add_crash_keys(bt_db *b)
{
	MDB_txn *mt = ot_begin(&b->o, NULL);
	MDB_dbi dbi;
	MDBOK(mdb_dbi_open(mt, "small", 0, &dbi));
	for (unsigned i = 0; i < CRASH_KEYS; i++) {
		char k[16], v[64];
		MDB_val mk = {0, k}, mv = {0, v};
		mk.mv_size = (size_t)snprintf(k, sizeof k, "zz%04u", i);
		mv.mv_size = (size_t)snprintf(v, sizeof v, "value %u after the checkpoint", i);
		MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
	}
	MDBOK(mdb_txn_commit(mt));
}

/* A crashed database whose last segment holds durable commits after the
 * redo point: cut behind them, the open must refuse, not recover up to
 * the cut (wal/README.md R-I5); uncut, recovery brings every commit. */
static void test_truncated_wal_after_crash(void **state)
{
	bt_db b;
	control_data cd;
	char name[64];
	uint64_t off;
	int si;
	(void)state;
	bt_build(&b, "crashwal", 0, 10);
	assert_int_equal(tu_run_child(commit_and_die, &b), 0);
	oracle_add_crash_keys(&b);
	bt_snapshot(&b);
	OK(control_read(b.dir, &cd));
	assert_int_not_equal(cd.state, CONTROL_SHUTDOWN);
	/* the segment of the redo point holds the first commits after it */
	snprintf(name, sizeof name, "wal/%016llX",
		 (unsigned long long)(cd.redo_lsn / cd.wal_segment_size));
	assert_true((si = bt_file_index(&b, name)) >= 0);
	off = cd.redo_lsn % cd.wal_segment_size;
	for (uint64_t past = 600; past <= 4096; past += 3496) {
		char what[128];
		cut(&b, (uint32_t)si, off + past);
		snprintf(what, sizeof what, "crashed; %s cut %llu bytes past the redo point",
			 name, (unsigned long long)past);
		expect(&b, what, name, WD_INVALID_BLKNO, WD_ECORRUPT, false, 0);
	}
	expect(&b, "crashed; the log whole", name, WD_INVALID_BLKNO, 0, true, 0);
	bt_free(&b);
}

/* ---- page size -------------------------------------------------------------------------- */

static void test_page_size(void **state)
{
	bt_db b, big;
	(void)state;
	bt_build(&b, "ps4k", 4096, 7);
	bt_build(&big, "ps8k", 8192, 7);
	/* the page size is the control file's, fixed at creation */
	expect(&b, "4 KiB database opened with page_size 8192", "control", WD_INVALID_BLKNO, 0,
	       true, 8192);
	expect(&big, "8 KiB database opened with page_size 4096", "control", WD_INVALID_BLKNO,
	       0, true, 4096);
	for (uint32_t i = 0; i < b.nfiles; i++) {
		const bt_file *f = &b.files[i];
		int j = bt_file_index(&big, f->name);
		char what[160];
		if (strncmp(f->name, "base/", 5) != 0 || j < 0)
			continue;
		replace(&b, i, big.files[j].data, big.files[j].len);
		snprintf(what, sizeof what, "%s of an 8 KiB database in a 4 KiB one", f->name);
		expect(&b, what, f->name, WD_INVALID_BLKNO, 0, true, 0);
		replace(&big, (uint32_t)j, f->data, f->len);
		snprintf(what, sizeof what, "%s of a 4 KiB database in an 8 KiB one", f->name);
		expect(&big, what, f->name, WD_INVALID_BLKNO, 0, true, 0);
	}
	bt_free(&big);
	bt_free(&b);
}

/* ---- files of another database ---------------------------------------------------------- */

/* The control file and the WAL segments of another database (same
 * options and schema) in place of ours: the segment the checkpoint lies in
 * and the control file are refused as foreign, naming the file; recycled
 * segments past the end of the log are never read. (Relation files carry
 * no database id: one of another database is not caught as foreign.) */
static void test_foreign_files(void **state)
{
	bt_db b, other;
	(void)state;
	int ci, si;
	bt_build(&b, "mine", 0, 8);
	bt_build(&other, "other", 0, 9);
	assert_true((ci = bt_file_index(&b, "control")) >= 0);
	si = checkpoint_segment(&b);
	for (uint32_t i = 0; i < b.nfiles; i++) {
		const bt_file *f = &b.files[i];
		int j = bt_file_index(&other, f->name);
		char what[160];
		if (j < 0 || strncmp(f->name, "base/", 5) == 0)
			continue;
		replace(&b, i, other.files[j].data, other.files[j].len);
		snprintf(what, sizeof what, "%s of another database", f->name);
		if ((int)i == ci || (int)i == si)
			expect(&b, what, f->name, WD_INVALID_BLKNO, WD_EFOREIGN, false, 0);
		else /* recycled: never read */
			expect(&b, what, f->name, WD_INVALID_BLKNO, WD_EFOREIGN, true, 0);
	}
	bt_free(&other);
	bt_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zeroed_pages),
		cmocka_unit_test(test_truncated_relations),
		cmocka_unit_test(test_truncated_control),
		cmocka_unit_test(test_truncated_wal),
		cmocka_unit_test(test_truncated_wal_after_crash),
		cmocka_unit_test(test_page_size),
		cmocka_unit_test(test_foreign_files),
	};
	if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
