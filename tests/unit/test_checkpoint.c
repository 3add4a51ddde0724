/*
 * test_checkpoint.c - checkpoints (recovery/README.md P1-P4, txn/README.md
 * I15, P17) through the public API: a long transaction spanning two
 * checkpoints is undone after a kill while the transactions that committed
 * around it stay (with and without records after the last checkpoint, so
 * that only the checkpoint's table knows it); a crash at every checkpoint
 * crash point while a workload runs and the checkpointer thread works;
 * WAL segments before the redo point are gone and not needed by a reopen;
 * walden waldump shows the checkpoint record with its tables. State is
 * compared with a model of what must be there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "recovery/control.h"
#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "txn/db.h"
#include "wal/format.h"
#include "walden.h"

#define PS 4096u

static void test_opts(wd_options *o)
{
	wd_options_default(o);
	o->page_size = PS;
	o->buffer_pool_bytes = 256u * PS;
	o->wal_segment_size = 64u << 10; /* many segments */
	o->wal_buffers_bytes = 1u << 20;
	o->wal_init_zero = 0;
}

static void key_of(char *k, const char *p, unsigned i)
{
	snprintf(k, 32, "%s%06u", p, i);
}

/* One key put by its own (synchronous) transaction. */
static int put_one(wd_db *db, wd_table *t, const char *k, const char *v)
{
	wd_txn *x;
	int rc = wd_begin(db, &x);
	if (rc == 0 && (rc = wd_put(x, t, k, strlen(k), v, strlen(v))) != 0) {
		(void)wd_abort(x);
		return rc;
	}
	return rc ? rc : wd_commit(x);
}

/* The value of k into v[cap] ("" if absent). */
static void get_one(wd_db *db, wd_table *t, const char *k, char *v, size_t cap)
{
	wd_txn *x;
	size_t n = 0;
	int rc;
	OK(wd_begin(db, &x));
	rc = wd_get(x, t, k, strlen(k), v, cap - 1, &n);
	if (rc != 0 && rc != WD_NOTFOUND)
		fail_msg("get %s: %s", k, wd_last_error());
	v[rc == 0 ? n : 0] = 0;
	OK(wd_commit(x));
}

static wd_table *table(wd_db *db, const char *name)
{
	return dt_table(db, name, WD_CREATE);
}

/* ---- (a) a long transaction spanning two checkpoints ---- */

#define BASE 200u
#define PHASE 150u

struct long_args {
	const char *dir;
	bool write_after; /* the long one writes after the last checkpoint too */
};

/* The long transaction L overwrites and deletes base keys and adds its
 * own, before, between and (maybe) after two checkpoints, while others
 * commit c-keys; then the process dies with L open. */
static void long_child(void *arg)
{
	struct long_args *a = arg;
	wd_options o;
	wd_db *db;
	wd_txn *l;
	wd_table *t;
	char k[32];
	unsigned c = 0;
	test_opts(&o);
	COK(wd_open(a->dir, &o, &db));
	COK(wd_begin(db, &l));
	COK(wd_table_open(l, "t", WD_CREATE, &t));
	COK(wd_commit(l));
	for (unsigned i = 0; i < BASE; i++) {
		key_of(k, "b", i);
		COK(put_one(db, t, k, "base"));
	}
	COK(wd_begin(db, &l));
	for (unsigned phase = 0; phase < 3; phase++) {
		if (phase < 2 || a->write_after)
			for (unsigned i = 0; i < PHASE; i++) {
				unsigned b = (phase * PHASE + i) % BASE;
				key_of(k, "b", b);
				if (i % 3 == 0) {
					int r = wd_del(l, t, k, strlen(k));
					COK(r == WD_NOTFOUND ? 0 : r); /* deleted before */
				} else
					COK(wd_put(l, t, k, strlen(k), "LONG", 4));
				key_of(k, "l", phase * PHASE + i);
				COK(wd_put(l, t, k, strlen(k), "LONG", 4));
			}
		for (unsigned i = 0; i < PHASE; i++, c++) {
			key_of(k, "c", c);
			COK(put_one(db, t, k, "committed"));
		}
		if (phase < 2)
			COK(wd_checkpoint(db));
	}
	/* the log is durable past L's records (the last commit was
	 * synchronous); L never ends */
	_exit(0);
}

static void check_long_result(const char *dir)
{
	wd_options o;
	wd_db *db;
	wd_table *t;
	char k[32], v[64];
	test_opts(&o);
	OK(wd_open(dir, &o, &db));
	t = table(db, "t");
	unsigned bad = 0;
	for (unsigned i = 0; i < BASE; i++) {
		key_of(k, "b", i);
		get_one(db, t, k, v, sizeof v);
		if (strcmp(v, "base") != 0 && bad++ < 5)
			print_message("%s: '%s', expected base (L undone)\n", k, v);
	}
	if (bad)
		fail_msg("%u base keys wrong", bad);
	for (unsigned i = 0; i < 3 * PHASE; i++) {
		key_of(k, "l", i);
		get_one(db, t, k, v, sizeof v);
		if (*v)
			fail_msg("%s of the long transaction survived", k);
		key_of(k, "c", i);
		get_one(db, t, k, v, sizeof v);
		if (strcmp(v, "committed") != 0)
			fail_msg("%s: '%s', expected committed", k, v);
	}
	OK(wd_close(db));
}

static void run_long(bool write_after)
{
	char *dir = tu_tmpdir("ckpt-long");
	char *db = tu_path(dir, "db");
	struct long_args a = {db, write_after};
	control_data cd;
	assert_int_equal(tu_run_child(long_child, &a), 0);
	/* the control file names the last checkpoint, in production */
	OK(control_read(db, &cd));
	assert_int_equal(cd.state, CONTROL_IN_PRODUCTION);
	assert_true(cd.checkpoint_lsn != 0 && cd.redo_lsn <= cd.checkpoint_lsn);
	check_long_result(db);
	/* twice: the recovery's own result survives a clean reopen */
	check_long_result(db);
	tu_rmrf(dir);
	free(db);
	free(dir);
}

static void test_long_txn_two_checkpoints(void **state)
{
	(void)state;
	run_long(true);
}

/* Only the checkpoint's table of active transactions knows L: it wrote
 * nothing after the last checkpoint's redo point. */
static void test_long_txn_only_in_checkpoint(void **state)
{
	(void)state;
	run_long(false);
}

/* ---- (b) a crash at each checkpoint crash point ---- */

#define WORK_MAX 100000u

struct crash_args {
	const char *dir;
	const char *point;
	volatile uint32_t *acked; /* shared: commits acknowledged */
};

/* A workload of synchronous commits with a long transaction open, the
 * checkpointer thread running every second, until the armed point kills
 * the process (exit 86). */
static void crash_child(void *arg)
{
	struct crash_args *a = arg;
	wd_options o;
	wd_db *db;
	wd_txn *l;
	wd_table *t;
	char k[32];
	test_opts(&o);
	o.checkpoint_timeout_s = 1;
	o.checkpoint_completion_target = 0.2;
	COK(wd_open(a->dir, &o, &db));
	COK(wd_begin(db, &l));
	COK(wd_table_open(l, "t", WD_CREATE, &t));
	COK(wd_commit(l));
	COK(wd_begin(db, &l));
	storage_crash_arm(a->point, 1);
	for (uint32_t i = 0; i < WORK_MAX; i++) {
		key_of(k, "l", i);
		COK(wd_put(l, t, k, strlen(k), "LONG", 4));
		key_of(k, "c", i);
		COK(put_one(db, t, k, "committed"));
		*a->acked = i + 1;
	}
	_exit(4); /* the point never fired */
}

static void test_crash_points(void **state)
{
	static const char *points[] = {"ckpt-begin", "ckpt-after-flush", "ckpt-after-record",
				       "ckpt-after-control"};
	volatile uint32_t *acked = tw_shared(sizeof *acked);
	(void)state;
	for (size_t p = 0; p < sizeof points / sizeof *points; p++) {
		char *dir = tu_tmpdir("ckpt-crash");
		char *dbp = tu_path(dir, "db");
		struct crash_args a = {dbp, points[p], acked};
		wd_options o;
		wd_db *db;
		wd_table *t;
		char k[32], v[64];
		*acked = 0;
		assert_int_equal(tu_run_child(crash_child, &a), ST_CRASH_EXIT_CODE);
		assert_true(*acked > 0);
		test_opts(&o);
		OK(wd_open(dbp, &o, &db));
		t = table(db, "t");
		for (uint32_t i = 0; i <= *acked; i++) {
			key_of(k, "l", i);
			get_one(db, t, k, v, sizeof v);
			if (*v)
				fail_msg("%s: %s of the long transaction survived", points[p], k);
			key_of(k, "c", i);
			get_one(db, t, k, v, sizeof v);
			/* the one after the last acknowledged may be either */
			if (i < *acked && strcmp(v, "committed") != 0)
				fail_msg("%s: %s lost", points[p], k);
		}
		OK(wd_close(db));
		tu_rmrf(dir);
		free(dbp);
		free(dir);
	}
	tw_shared_free((void *)acked, sizeof *acked);
}

/* ---- (c) WAL before the redo point goes ---- */

/* The lowest segment number in DIR/wal. */
static uint64_t oldest_segment(const char *dbdir)
{
	char *w = tu_path(dbdir, "wal");
	DIR *d = opendir(w);
	struct dirent *e;
	uint64_t lo = UINT64_MAX;
	assert_non_null(d);
	while ((e = readdir(d)))
		if (strlen(e->d_name) == WAL_SEG_NAME_LEN) {
			uint64_t n = strtoull(e->d_name, NULL, 16);
			lo = n < lo ? n : lo;
		}
	closedir(d);
	free(w);
	return lo;
}

static void seg_child(void *arg)
{
	const char *dir = arg;
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	char k[32], v[200];
	test_opts(&o);
	COK(wd_open(dir, &o, &db));
	COK(wd_begin(db, &x));
	COK(wd_table_open(x, "t", WD_CREATE, &t));
	COK(wd_commit(x));
	memset(v, 'v', sizeof v - 1);
	v[sizeof v - 1] = 0;
	for (unsigned i = 0; i < 3000; i++) { /* some 20 segments of 64 KiB */
		key_of(k, "k", i);
		COK(put_one(db, t, k, v));
	}
	COK(wd_checkpoint(db));
	for (unsigned i = 3000; i < 3100; i++) {
		key_of(k, "k", i);
		COK(put_one(db, t, k, v));
	}
	_exit(0);
}

static void test_segments_recycled(void **state)
{
	char *dir = tu_tmpdir("ckpt-seg");
	char *dbp = tu_path(dir, "db");
	control_data cd;
	wd_options o;
	wd_db *db;
	wd_table *t;
	char k[32], v[256];
	(void)state;
	assert_int_equal(tu_run_child(seg_child, dbp), 0);
	OK(control_read(dbp, &cd));
	assert_true(wal_segno(cd.redo_lsn, cd.wal_segment_size) > 10);
	/* every segment before the redo point's is gone or renamed ahead */
	assert_true(oldest_segment(dbp) >= wal_segno(cd.redo_lsn, cd.wal_segment_size));
	test_opts(&o);
	OK(wd_open(dbp, &o, &db));
	t = table(db, "t");
	for (unsigned i = 0; i < 3100; i++) {
		key_of(k, "k", i);
		get_one(db, t, k, v, sizeof v);
		assert_int_equal(strlen(v), 199);
	}
	OK(wd_close(db));
	tu_rmrf(dir);
	free(dbp);
	free(dir);
}

/* ---- (e) waldump shows the record ---- */

static void test_waldump_shows_checkpoint(void **state)
{
	char *dir = tu_tmpdir("ckpt-dump");
	char *dbp = tu_path(dir, "db");
	static char out[1 << 20], err[4096];
	wd_options o;
	wd_db *db;
	wd_txn *l;
	wd_table *t;
	(void)state;
	test_opts(&o);
	OK(wd_open(dbp, &o, &db));
	t = table(db, "t");
	OK(wd_begin(db, &l));
	OK(wd_put(l, t, "k", 1, "v", 1));
	OK(wd_checkpoint(db));
	OK(wd_abort(l));
	OK(wd_close(db));
	assert_int_equal(tu_run_tool((const char *[]){"waldump", dbp, NULL}, out, sizeof out, err,
				     sizeof err), 0);
	/* the forced one with the open transaction, the shutdown one without */
	if (!strstr(out, "XLOG_CHECKPOINT") || !strstr(out, "att 1 dpt ") ||
	    !strstr(out, "; att: xid ") || !strstr(out, "att 0 dpt "))
		fail_msg("waldump output lacks the checkpoint's tables:\n%s", out);
	tu_rmrf(dir);
	free(dbp);
	free(dir);
}

/* ---- the checkpointer's triggers ---- */

static bool has_checkpoint(const char *dir)
{
	control_data cd;
	OK(control_read(dir, &cd));
	return cd.checkpoint_lsn != 0;
}

/* Waits up to 10 s for the control file to name a checkpoint. */
static bool wait_checkpoint(const char *dir)
{
	for (int i = 0; i < 200; i++) {
		control_data cd;
		OK(control_read(dir, &cd));
		if (cd.checkpoint_lsn != 0)
			return true;
		usleep(50000);
	}
	return false;
}

/* max_wal_size: a checkpoint comes once that much WAL is past the redo
 * point (the timeout is far away); checkpoint_timeout: one comes after a
 * second with no WAL written at all. */
static void test_checkpointer_triggers(void **state)
{
	char *dir = tu_tmpdir("ckpt-trig");
	char *dbp = tu_path(dir, "db");
	char k[32], v[512];
	wd_options o;
	wd_db *db;
	wd_table *t;
	(void)state;
	memset(v, 'w', sizeof v - 1);
	v[sizeof v - 1] = 0;
	test_opts(&o);
	o.checkpoint_timeout_s = 3600;
	o.max_wal_size_bytes = 256u << 10;
	OK(wd_open(dbp, &o, &db));
	t = table(db, "t");
	/* WAL keeps coming, as a paced checkpoint expects (its writes keep
	 * pace with the WAL written since its redo point) */
	for (unsigned i = 0; !has_checkpoint(dbp); i++) {
		assert_true(i < 50000);
		key_of(k, "k", i % 2000);
		OK(put_one(db, t, k, v));
	}
	OK(wd_close(db));
	tu_rmrf(dir);
	free(dbp);
	free(dir);

	dir = tu_tmpdir("ckpt-trig");
	dbp = tu_path(dir, "db");
	test_opts(&o);
	o.checkpoint_timeout_s = 1;
	OK(wd_open(dbp, &o, &db));
	assert_true(wait_checkpoint(dbp));
	OK(wd_close(db));
	tu_rmrf(dir);
	free(dbp);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_txn_two_checkpoints),
		cmocka_unit_test(test_long_txn_only_in_checkpoint),
		cmocka_unit_test(test_crash_points),
		cmocka_unit_test(test_segments_recycled),
		cmocka_unit_test(test_waldump_shows_checkpoint),
		cmocka_unit_test(test_checkpointer_triggers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
