/*
 * test_lockmgr_table.c - table locks and lock escalation (txn/LOCKS.md
 * "Table locks", K7): every pair of the five table modes against the
 * compatibility that follows from what each mode lets its holder do;
 * conversions (S and IX make SIX); the intention lock a row lock takes;
 * escalation after the threshold, the row locks it spares, a writer
 * blocked until the scanner releases, an escalation refused while another
 * writes and taken later, SIX after writes; a deadlock closed through a
 * table lock; escalation off.
 *
 * Takes well under a second in release and in asan. Waiter threads never
 * call cmocka asserts: they store their result, and the main thread checks
 * it after joining.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "txn/lockmgr.h"

#define T1 16u
#define T2 17u
#define ESCALATE 10u /* the threshold these tests set */

static lockmgr *lm;

static int setup(void **state)
{
	(void)state;
	if (lockmgr_create(&lm) != 0)
		return -1;
	lockmgr_set_escalation(lm, ESCALATE);
	return 0;
}

/* Every test leaves nothing held. */
static int teardown(void **state)
{
	lock_stats s;
	(void)state;
	lockmgr_stats(lm, &s);
	lockmgr_destroy(lm);
	lm = NULL;
	return s.held_now == 0 ? 0 : -1;
}

static lock_owner *owner(uint64_t xid)
{
	lock_owner *o = NULL;
	assert_int_equal(lock_owner_create(lm, xid, &o), 0);
	return o;
}

static lock_stats stats(void)
{
	lock_stats s;
	lockmgr_stats(lm, &s);
	return s;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Row key i of a table: "r" and the number. */
static int row(lock_owner *o, uint32_t rel, unsigned i, int mode, uint32_t timeout_ms)
{
	char k[16];
	int n = snprintf(k, sizeof k, "r%u", i);
	return lock_row(lm, o, rel, k, (uint32_t)n, mode, timeout_ms);
}

static bool row_held(lock_owner *o, uint32_t rel, unsigned i, int mode)
{
	char k[16];
	int n = snprintf(k, sizeof k, "r%u", i);
	return lock_held(lm, o, rel, k, (uint32_t)n, mode);
}

/* ---- a request made by a second thread ---- */

typedef struct waiter {
	lock_owner *o;
	uint32_t rel;
	int row;  /* -1: a table lock */
	int mode;
	pthread_t th;
	int rc;
	atomic_bool done;
} waiter;

static void *waiter_main(void *arg)
{
	waiter *w = arg;
	w->rc = w->row < 0 ? lock_table(lm, w->o, w->rel, w->mode, 0)
			   : row(w->o, w->rel, (unsigned)w->row, w->mode, 0);
	atomic_store(&w->done, true);
	return NULL;
}

/* Starts the request in a thread; returns once it sleeps in the manager. */
static void start_waiting(waiter *w, lock_owner *o, uint32_t rel, int r, int mode)
{
	uint64_t before = stats().waits;
	*w = (waiter){.o = o, .rel = rel, .row = r, .mode = mode};
	assert_int_equal(pthread_create(&w->th, NULL, waiter_main, w), 0);
	for (int i = 0; i < 10000 && stats().waits <= before; i++)
		sleep_ms(1);
	assert_true(stats().waits > before);
	sleep_ms(5);
	assert_false(atomic_load(&w->done));
}

static int finish(waiter *w)
{
	assert_int_equal(pthread_join(w->th, NULL), 0);
	return w->rc;
}

/* ---- the modes ---- */

/*
 * What a table mode lets its holder do, from which conflicts follow: a
 * holder that may write rows it has not locked (X) excludes everyone; one
 * that reads every row without row locks (S, SIX, X) excludes anyone who
 * may write rows (IX, SIX, X). Intention modes alone (IS, IX) never
 * conflict with each other: their row locks settle it.
 */
struct rights {
	int mode;
	const char *name;
	bool reads_all, writes_all, may_write;
};

static const struct rights modes[] = {
	{LOCK_IS, "IS", false, false, false},
	{LOCK_IX, "IX", false, false, true},
	{LOCK_S, "S", true, false, false},
	{LOCK_SIX, "SIX", true, false, true},
	{LOCK_X, "X", true, true, true},
};
#define NMODES (sizeof modes / sizeof modes[0])

static bool expect_conflict(const struct rights *a, const struct rights *b)
{
	return a->writes_all || b->writes_all || (a->reads_all && b->may_write) ||
	       (b->reads_all && a->may_write);
}

/* Every ordered pair: b's request without waiting is refused exactly when
 * the pair conflicts, and with a timeout it names the table. */
static void test_mode_pairs(void **state)
{
	(void)state;
	for (unsigned i = 0; i < NMODES; i++) {
		for (unsigned j = 0; j < NMODES; j++) {
			lock_owner *a = owner(1), *b = owner(2);
			bool conflict = expect_conflict(&modes[i], &modes[j]);
			int rc;
			assert_int_equal(lock_table(lm, a, T1, modes[i].mode, 0), 0);
			rc = lock_table(lm, b, T1, modes[j].mode, LOCK_NOWAIT);
			if (rc != (conflict ? WD_EBUSY : 0))
				fail_msg("%s held, %s asked: rc %d, expected %s", modes[i].name,
					 modes[j].name, rc, conflict ? "a conflict" : "a grant");
			assert_true(lock_table_held(lm, b, T1, modes[j].mode) == !conflict);
			if (conflict) {
				assert_int_equal(lock_table(lm, b, T1, modes[j].mode, 5),
						 WD_ETIMEDOUT);
				assert_non_null(strstr(wd_last_error(), "on table rel 16"));
			}
			lock_owner_destroy(lm, a);
			lock_owner_destroy(lm, b);
		}
	}
}

/* A conversion asks for the weakest mode covering both: S then IX (or IX
 * then S) is SIX, which conflicts with another's IX but not its IS. */
static void test_conversions(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	(void)state;
	assert_int_equal(lock_table(lm, a, T1, LOCK_IX, 0), 0);
	assert_int_equal(lock_table(lm, a, T1, LOCK_S, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_SIX));
	assert_false(lock_table_held(lm, a, T1, LOCK_X));
	assert_int_equal(lock_table(lm, b, T1, LOCK_IS, LOCK_NOWAIT), 0);
	assert_int_equal(lock_table(lm, b, T1, LOCK_IX, LOCK_NOWAIT), WD_EBUSY);
	lock_release_all(lm, a);
	lock_release_all(lm, b);
	assert_int_equal(lock_table(lm, a, T1, LOCK_S, 0), 0);
	assert_int_equal(lock_table(lm, a, T1, LOCK_IX, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_SIX));
	assert_int_equal(lock_table(lm, a, T1, LOCK_IS, 0), 0); /* covered */
	assert_int_equal(lock_table(lm, a, T1, LOCK_X, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_SIX) && lock_table_held(lm, a, T1, LOCK_X));
	assert_int_equal(stats().held_now, 1); /* one entry, converted in place */
	assert_int_equal(lock_table(lm, a, T1, 0, 0), WD_EINVAL);
	assert_int_equal(lock_table(lm, a, T1, 6, 0), WD_EINVAL);
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
}

/* A row S takes IS on its table, a row X takes IX; another's table S then
 * waits for the writer's IX but not for the reader's IS. */
static void test_row_takes_intention(void **state)
{
	lock_owner *a = owner(1), *b = owner(2), *c = owner(3);
	waiter w;
	(void)state;
	assert_int_equal(row(a, T1, 1, LOCK_S, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_IS));
	assert_false(lock_table_held(lm, a, T1, LOCK_IX));
	assert_int_equal(row(b, T1, 2, LOCK_X, 0), 0);
	assert_true(lock_table_held(lm, b, T1, LOCK_IX));
	assert_false(lock_table_held(lm, b, T2, LOCK_IS));
	assert_int_equal(stats().held_now, 4);
	start_waiting(&w, c, T1, -1, LOCK_S);
	lock_release_all(lm, b);
	assert_int_equal(finish(&w), 0);
	assert_true(lock_table_held(lm, c, T1, LOCK_S));
	/* c reads every row of T1 without row locks now; a's S row stays */
	assert_true(row_held(c, T1, 2, LOCK_S));
	assert_int_equal(row(c, T1, 99, LOCK_S, 0), 0);
	assert_int_equal(stats().held_now, 3);
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
	lock_owner_destroy(lm, c);
}

/* ---- escalation ---- */

/* The ESCALATE'th row S lock takes the table's S; later rows cost no
 * lock; a writer of the table waits until the scanner releases, a reader
 * does not. */
static void test_escalation_blocks_writer(void **state)
{
	lock_owner *a = owner(1), *b = owner(2), *c = owner(3);
	lock_stats s0, s1;
	waiter w;
	(void)state;
	for (unsigned i = 0; i < ESCALATE - 1; i++)
		assert_int_equal(row(a, T1, i, LOCK_S, 0), 0);
	assert_false(lock_table_held(lm, a, T1, LOCK_S));
	assert_int_equal(stats().escalations, 0);
	assert_int_equal(row(a, T1, ESCALATE - 1, LOCK_S, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_S));
	assert_int_equal(stats().escalations, 1);
	s0 = stats();
	for (unsigned i = ESCALATE; i < 1000; i++)
		assert_int_equal(row(a, T1, i, LOCK_S, 0), 0);
	s1 = stats();
	assert_int_equal(s1.held_now, s0.held_now); /* no new lock */
	assert_int_equal(s1.fast - s0.fast, 1000 - ESCALATE);
	assert_true(row_held(a, T1, 500, LOCK_S));
	assert_false(row_held(a, T1, 500, LOCK_X));
	/* another table is not covered */
	assert_false(row_held(a, T2, 500, LOCK_S));
	/* a reader goes on; a writer waits for the scanner's end */
	assert_int_equal(row(c, T1, 5, LOCK_S, 0), 0);
	assert_int_equal(row(b, T1, 5000, LOCK_X, LOCK_NOWAIT), WD_EBUSY);
	assert_int_equal(row(b, T1, 5000, LOCK_X, 5), WD_ETIMEDOUT);
	assert_non_null(strstr(wd_last_error(), "wants IX on table rel 16"));
	start_waiting(&w, b, T1, 5000, LOCK_X);
	lock_release_all(lm, c);
	sleep_ms(5);
	assert_false(atomic_load(&w.done));
	lock_release_all(lm, a);
	assert_int_equal(finish(&w), 0);
	assert_true(row_held(b, T1, 5000, LOCK_X));
	assert_true(lock_table_held(lm, b, T1, LOCK_IX));
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
	lock_owner_destroy(lm, c);
}

/* While another owner writes the table, escalation cannot be had: the
 * scanner goes on with row locks, and tries again a threshold later. */
static void test_escalation_refused_then_taken(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	(void)state;
	assert_int_equal(row(b, T1, 100000, LOCK_X, 0), 0);
	for (unsigned i = 0; i < ESCALATE; i++)
		assert_int_equal(row(a, T1, i, LOCK_S, 0), 0);
	assert_false(lock_table_held(lm, a, T1, LOCK_S));
	assert_int_equal(stats().escalations, 0);
	assert_int_equal(stats().waits, 0); /* the try never waits */
	lock_release_all(lm, b);
	for (unsigned i = ESCALATE; i < 2 * ESCALATE - 1; i++)
		assert_int_equal(row(a, T1, i, LOCK_S, 0), 0);
	assert_false(lock_table_held(lm, a, T1, LOCK_S));
	assert_int_equal(row(a, T1, 2 * ESCALATE - 1, LOCK_S, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_S));
	assert_int_equal(stats().escalations, 1);
	/* b's row X waits now (its IX conflicts), without a row conflict */
	assert_int_equal(row(b, T1, 100000, LOCK_X, LOCK_NOWAIT), WD_EBUSY);
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
}

/* A writer queued for IX behind an escalated scanner is not overtaken by a
 * second scanner's escalation (K7 step 4): once the first scanner ends, the
 * writer runs while the second still scans with row locks. Without this a
 * stream of overlapping scanners could keep a writer waiting for ever. */
static void test_escalation_behind_queued_writer(void **state)
{
	lock_owner *a = owner(1), *b = owner(2), *c = owner(3);
	waiter w;
	(void)state;
	assert_int_equal(lock_table(lm, a, T1, LOCK_S, 0), 0); /* an escalated scanner */
	start_waiting(&w, b, T1, 7, LOCK_X);                      /* b queued for IX */
	for (unsigned i = 0; i < 3 * ESCALATE; i++)
		assert_int_equal(row(c, T1, 100 + i, LOCK_S, 0), 0);
	assert_false(lock_table_held(lm, c, T1, LOCK_S));
	assert_int_equal(stats().escalations, 0);
	lock_release_all(lm, a);
	assert_int_equal(finish(&w), 0); /* granted with c still holding */
	assert_true(row_held(b, T1, 7, LOCK_X));
	lock_release_all(lm, b);
	lock_release_all(lm, c);
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
	lock_owner_destroy(lm, c);
}

/* An owner that wrote to the table escalates to SIX: others may still read
 * rows it did not write, and nobody else may write. Then its own write
 * needs no further table lock; a row X still takes its row lock. */
static void test_escalation_six(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	(void)state;
	assert_int_equal(row(a, T1, 0, LOCK_X, 0), 0);
	for (unsigned i = 1; i <= ESCALATE; i++)
		assert_int_equal(row(a, T1, i, LOCK_S, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_SIX));
	assert_false(lock_table_held(lm, a, T1, LOCK_X));
	assert_int_equal(row(b, T1, 5, LOCK_S, LOCK_NOWAIT), 0);
	assert_int_equal(row(b, T1, 0, LOCK_S, LOCK_NOWAIT), WD_EBUSY); /* a's X row */
	assert_int_equal(row(b, T1, 7, LOCK_X, LOCK_NOWAIT), WD_EBUSY);
	assert_int_equal(row(a, T1, 5, LOCK_X, LOCK_NOWAIT), WD_EBUSY); /* b reads it */
	assert_int_equal(row(a, T1, 6, LOCK_X, 0), 0);
	assert_true(row_held(a, T1, 6, LOCK_X));
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
}

/* With escalation off, a million-row reader still takes row locks. */
static void test_escalation_off(void **state)
{
	lock_owner *a = owner(1);
	(void)state;
	lockmgr_set_escalation(lm, 0);
	for (unsigned i = 0; i < 20 * ESCALATE; i++)
		assert_int_equal(row(a, T1, i, LOCK_S, 0), 0);
	assert_false(lock_table_held(lm, a, T1, LOCK_S));
	assert_int_equal(stats().escalations, 0);
	assert_int_equal(stats().held_now, 20 * ESCALATE + 1);
	lock_owner_destroy(lm, a);
}

/* ---- deadlocks through a table lock ---- */

/* a escalated on T1 and waits for b's row on T2; b asking to write T1
 * (IX against a's S) closes the cycle and is the victim; at b's release
 * a is granted. */
static void test_deadlock_through_table(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	waiter w;
	(void)state;
	for (unsigned i = 0; i < ESCALATE; i++)
		assert_int_equal(row(a, T1, i, LOCK_S, 0), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_S));
	assert_int_equal(row(b, T2, 1, LOCK_X, 0), 0);
	start_waiting(&w, a, T2, 1, LOCK_S);
	assert_int_equal(row(b, T1, 3, LOCK_X, 0), WD_EDEADLOCK);
	assert_string_equal(wd_last_error(),
			    "deadlock: xid 2 waits for xid 1 (wants IX on table rel 16)"
			    " which waits for xid 2 (wants S on rel 17 key 0x7231)");
	assert_int_equal(stats().deadlocks, 1);
	assert_false(lock_table_held(lm, b, T1, LOCK_IX));
	lock_release_all(lm, b);
	assert_int_equal(finish(&w), 0);
	assert_true(row_held(a, T2, 1, LOCK_S));
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
}

/* Two owners holding IS both convert to X: the second is the victim and
 * keeps its IS. */
static void test_table_conversion_deadlock(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	waiter w;
	(void)state;
	assert_int_equal(lock_table(lm, a, T1, LOCK_IS, 0), 0);
	assert_int_equal(lock_table(lm, b, T1, LOCK_IS, 0), 0);
	start_waiting(&w, a, T1, -1, LOCK_X);
	assert_int_equal(lock_table(lm, b, T1, LOCK_X, 0), WD_EDEADLOCK);
	assert_true(lock_table_held(lm, b, T1, LOCK_IS));
	assert_false(lock_table_held(lm, b, T1, LOCK_IX));
	lock_release_all(lm, b);
	assert_int_equal(finish(&w), 0);
	assert_true(lock_table_held(lm, a, T1, LOCK_X));
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mode_pairs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conversions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_takes_intention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escalation_blocks_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escalation_refused_then_taken, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_escalation_behind_queued_writer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_escalation_six, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escalation_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadlock_through_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_conversion_deadlock, setup, teardown),
	};
	return cmocka_run_group_tests_name("lockmgr_table", tests, NULL, NULL);
}
