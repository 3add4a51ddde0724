/*
 * test_escalation.c - lock escalation through the public API
 * (lock_escalation_rows, txn/LOCKS.md K7): a cursor scan past the
 * threshold takes the table's S lock, so a writer of that table waits
 * until the scanner commits and then sees its own write land after the
 * scan, while readers and writers of other tables go on; a transaction
 * that wrote to the table escalates to SIX; a deadlock closed through the
 * table lock rolls the victim back; with escalation off, a scan takes a
 * row lock per row and writers are never held up by the table.
 *
 * Takes about a second in release and two in asan (a few hundred rows;
 * the threads wait on locks, never on timers, except the one 50 ms lock
 * timeout).
 */
#define _GNU_SOURCE
#include <pthread.h>
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

#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "walden.h"

#define ROWS 300u
#define THRESHOLD 50u

static wd_db *open_with(const char *dir, uint32_t rows, uint32_t timeout_ms)
{
	wd_options o;
	wd_db *db;
	dt_opts(&o, 0);
	o.lock_escalation_rows = rows;
	o.lock_timeout_ms = timeout_ms;
	OK(wd_open(dir, &o, &db));
	return db;
}

static void key_of(unsigned i, char *k)
{
	snprintf(k, 16, "k%04u", i);
}

/* ROWS keys in t, each holding "v" and its number. */
static void load(wd_db *db, wd_table *t)
{
	wd_txn *x;
	char k[16], v[16];
	OK(wd_begin(db, &x));
	for (unsigned i = 0; i < ROWS; i++) {
		key_of(i, k);
		snprintf(v, sizeof v, "v%u", i);
		dt_put_str(x, t, k, v);
	}
	OK(wd_commit(x));
}

/* Reads every row of t through a cursor in x (left open: the locks stay
 * until x ends); the rows must come in order with their values. */
static void scan_all(wd_txn *x, wd_table *t)
{
	wd_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	unsigned n = 0;
	char want[16];
	OK(wd_cursor_open(x, t, &c));
	while (wd_cursor_next(c, &k, &kl, &v, &vl) == 0) {
		key_of(n, want);
		assert_int_equal(kl, strlen(want));
		assert_memory_equal(k, want, kl);
		n++;
	}
	wd_cursor_close(c);
	assert_int_equal(n, ROWS);
}

/* A scan past the threshold escalates; a writer of the table waits until
 * the scanner commits; a reader of the table and a writer of another
 * table do not wait. */
static void test_scan_escalates(void **state)
{
	char *root = tu_tmpdir("esc-scan");
	wd_db *db = open_with(root, THRESHOLD, 0);
	wd_table *t = dt_table(db, "t", WD_CREATE), *u = dt_table(db, "u", WD_CREATE);
	wd_txn *a, *b, *c;
	lock_stats s0, s1;
	struct dt_put_arg pa;
	pthread_t th;
	(void)state;
	load(db, t);
	db_lock_stats(db, &s0);
	OK(wd_begin(db, &a));
	scan_all(a, t);
	db_lock_stats(db, &s1);
	assert_int_equal(s1.escalations, s0.escalations + 1);
	/* the rows before the escalation, the table lock: not one per row */
	assert_true(s1.held_now <= THRESHOLD + 2);
	/* another reader of t and a writer of u go on */
	OK(wd_begin(db, &c));
	dt_expect_key(c, t, "k0007", "v7");
	dt_put_str(c, u, "x", "1");
	OK(wd_commit(c));
	/* a writer of t waits for the scanner's commit */
	OK(wd_begin(db, &b));
	pa = (struct dt_put_arg){.x = b, .t = t, .k = "k0100", .v = "new", .rc = 1};
	assert_int_equal(pthread_create(&th, NULL, dt_put_thread, &pa), 0);
	dt_wait_for_lock_waiter(db, s1.waits);
	dt_expect_key(a, t, "k0100", "v100"); /* the scanner's read is unchanged */
	OK(wd_commit(a));
	assert_int_equal(pthread_join(th, NULL), 0);
	OK(pa.rc);
	OK(wd_commit(b));
	OK(wd_begin(db, &c));
	dt_expect_key(c, t, "k0100", "new");
	OK(wd_commit(c));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* A transaction that wrote a row escalates to SIX: others still read the
 * rows it did not write, and cannot read the one it did (their 50 ms
 * timeout) nor write any. Its own later writes need nothing more. */
static void test_writer_escalates_to_six(void **state)
{
	char *root = tu_tmpdir("esc-six");
	wd_db *db = open_with(root, THRESHOLD, 50);
	wd_table *t = dt_table(db, "t", WD_CREATE);
	wd_txn *a, *b;
	char buf[16];
	size_t vlen;
	lock_stats s0, s1;
	(void)state;
	load(db, t);
	db_lock_stats(db, &s0);
	OK(wd_begin(db, &a));
	dt_put_str(a, t, "k0003", "mine");
	scan_all(a, t);
	db_lock_stats(db, &s1);
	assert_int_equal(s1.escalations, s0.escalations + 1);
	OK(wd_begin(db, &b));
	dt_expect_key(b, t, "k0200", "v200");
	EXPECT(wd_get(b, t, "k0003", 5, buf, sizeof buf, &vlen), WD_ETIMEDOUT);
	EXPECT(wd_put(b, t, "k0201", 5, "b", 1), WD_ETIMEDOUT);
	assert_non_null(strstr(wd_last_error(), "IX on table"));
	OK(wd_commit(b));
	dt_put_str(a, t, "k0250", "mine too");
	OK(wd_commit(a));
	OK(wd_begin(db, &b));
	dt_expect_key(b, t, "k0003", "mine");
	dt_expect_key(b, t, "k0250", "mine too");
	dt_expect_key(b, t, "k0201", "v201");
	OK(wd_commit(b));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* a scans t (escalated) and then waits to write u's key that b holds; b
 * writing t would wait for a's table lock: a cycle through the table
 * lock. b is the victim, rolled back (its write of u undone); a goes on. */
static void test_deadlock_through_table_lock(void **state)
{
	char *root = tu_tmpdir("esc-deadlock");
	wd_db *db = open_with(root, THRESHOLD, 0);
	wd_table *t = dt_table(db, "t", WD_CREATE), *u = dt_table(db, "u", WD_CREATE);
	wd_txn *a, *b, *c;
	lock_stats s0, s1;
	struct dt_put_arg pa;
	pthread_t th;
	int rc;
	(void)state;
	load(db, t);
	OK(wd_begin(db, &a));
	scan_all(a, t);
	OK(wd_begin(db, &b));
	dt_put_str(b, u, "x", "from b");
	db_lock_stats(db, &s0);
	pa = (struct dt_put_arg){.x = a, .t = u, .k = "x", .v = "from a", .rc = 1};
	assert_int_equal(pthread_create(&th, NULL, dt_put_thread, &pa), 0);
	dt_wait_for_lock_waiter(db, s0.waits);
	rc = wd_put(b, t, "k0001", 5, "b", 1);
	if (rc != WD_EDEADLOCK)
		fail_msg("the put closing the cycle: %d (%s)", rc, wd_last_error());
	assert_non_null(strstr(wd_last_error(), "wants IX on table rel"));
	assert_non_null(strstr(wd_last_error(), "rolled back"));
	assert_int_equal(pthread_join(th, NULL), 0);
	OK(pa.rc);
	db_lock_stats(db, &s1);
	assert_int_equal(s1.deadlocks, s0.deadlocks + 1);
	OK(wd_commit(a));
	dt_expect_key(b, u, "x", "from a"); /* b's write was undone */
	OK(wd_commit(b));
	OK(wd_begin(db, &c));
	dt_expect_key(c, t, "k0001", "v1");
	dt_expect_key(c, u, "x", "from a");
	OK(wd_commit(c));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* lock_escalation_rows 0: a scan takes a row lock per row, and a writer
 * of a row the scan has not read is not held up. */
static void test_escalation_off(void **state)
{
	char *root = tu_tmpdir("esc-off");
	wd_db *db = open_with(root, 0, 50);
	wd_table *t = dt_table(db, "t", WD_CREATE);
	wd_txn *a, *b;
	lock_stats s;
	(void)state;
	load(db, t);
	OK(wd_begin(db, &a));
	scan_all(a, t);
	db_lock_stats(db, &s);
	assert_int_equal(s.escalations, 0);
	assert_true(s.held_now >= ROWS + 1); /* every row and the table's IS */
	OK(wd_begin(db, &b));
	dt_put_str(b, t, "new key", "b");
	EXPECT(wd_put(b, t, "k0005", 5, "b", 1), WD_ETIMEDOUT); /* a read it */
	OK(wd_commit(b));
	OK(wd_commit(a));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_escalates),
		cmocka_unit_test(test_writer_escalates_to_six),
		cmocka_unit_test(test_deadlock_through_table_lock),
		cmocka_unit_test(test_escalation_off),
	};
	return cmocka_run_group_tests_name("escalation", tests, NULL, NULL);
}
