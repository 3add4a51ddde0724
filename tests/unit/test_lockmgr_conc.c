/*
 * test_lockmgr_conc.c - the row lock manager under several threads (also
 * run under ThreadSanitizer): random S/X transactions on a small hot key
 * set, checked against a shared count of holders per key (never two owners
 * in conflict), with deadlock victims and timed-out transactions retrying
 * (S locks unshared and published as X requests come and go);
 * the same through table locks (row locks with their intention locks,
 * escalation after two rows, and whole-table S and X requests: a table
 * lock counts as that lock on every key of the table); and rings of owners
 * closing a cycle at the same moment, where exactly one of them must be the
 * victim.
 *
 * Worker threads never call cmocka asserts (they are not thread-safe): they
 * count failures, and the main thread asserts the counts are zero.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
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

#include "tests/lib/testutil.h"
#include "txn/lockmgr.h"

#define NTHREADS 8
#define NKEYS 12  /* the hot set: keys 0..5 in rel 16, 6..11 in rel 17 */
#define MAX_OPS 5 /* lock requests per transaction */
#define SHORT_MS 2u     /* the timeout of an impatient request */
#define LONG_MS 20000u  /* a patient one: timing out means a missed wake-up */

/* Fewer transactions under the sanitizers, which are 5-20x slower. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TXNS 300
#else
#define TXNS 1000
#endif

/* ---- the checker: owners holding each key, per mode ---- */

static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER;
static int holders_s[NKEYS], holders_x[NKEYS];

struct worker {
	lockmgr *lm;
	int id;
	bool tables; /* lock_row and lock_table instead of lock_acquire */
	uint64_t seed;
	lock_owner *o;
	int mine[NKEYS]; /* the mode this worker holds on each key, 0: none */
	uint64_t commits, deadlocks, timeouts, granted, errors;
	char msg[600];
};

static _Atomic uint64_t next_xid = 1;

static void wfail(struct worker *w, const char *what, int rc)
{
	if (!w->errors++)
		snprintf(w->msg, sizeof w->msg, "thread %d: %s rc %d (%s)", w->id, what, rc,
			 wd_last_error());
}

static void key_of(int k, uint32_t *rel, uint8_t key[2])
{
	*rel = k < NKEYS / 2 ? 16u : 17u;
	key[0] = 'k';
	key[1] = (uint8_t)('a' + k % (NKEYS / 2));
}

/* Right after a grant of mode on key k: no other owner may hold a
 * conflicting lock. An upgrade moves this worker from the S to the X count. */
static void note_grant(struct worker *w, int k, int mode)
{
	int had = w->mine[k];
	if (had >= mode)
		return;
	pthread_mutex_lock(&check_mu);
	if (had == LOCK_S)
		holders_s[k]--;
	if (holders_x[k] > 0 || (mode == LOCK_X && holders_s[k] > 0))
		wfail(w, "conflicting locks granted", 0);
	if (mode == LOCK_X)
		holders_x[k]++;
	else
		holders_s[k]++;
	pthread_mutex_unlock(&check_mu);
	w->mine[k] = mode;
}

/* Just before lock_release_all: this worker holds nothing any more. */
static void note_release(struct worker *w)
{
	pthread_mutex_lock(&check_mu);
	for (int k = 0; k < NKEYS; k++) {
		if (w->mine[k] == LOCK_X)
			holders_x[k]--;
		else if (w->mine[k] == LOCK_S)
			holders_s[k]--;
		w->mine[k] = 0;
	}
	pthread_mutex_unlock(&check_mu);
}

/* After a grant through table locks: what w now holds on each key, its
 * row lock or its table's lock, whichever is stronger, goes to the
 * checker. */
static void note_all(struct worker *w)
{
	for (int k = 0; k < NKEYS; k++) {
		uint32_t rel;
		uint8_t key[2];
		key_of(k, &rel, key);
		if (lock_held(w->lm, w->o, rel, key, 2, LOCK_X))
			note_grant(w, k, LOCK_X);
		else if (lock_held(w->lm, w->o, rel, key, 2, LOCK_S))
			note_grant(w, k, LOCK_S);
	}
}

/* A request through table locks: mostly a row (lock_row), one in twelve
 * a whole table in S or X. */
static int table_request(struct worker *w, int k, int mode, uint32_t timeout_ms)
{
	uint32_t rel;
	uint8_t key[2];
	key_of(k, &rel, key);
	if (tu_rand(&w->seed) % 12 == 0)
		return lock_table(w->lm, w->o, rel, mode, timeout_ms);
	return lock_row(w->lm, w->o, rel, key, 2, mode, timeout_ms);
}

/* One lock request of a transaction: 0 granted, or the error that ends
 * the attempt (a deadlock or an impatient timeout); other errors count. */
static int one_request(struct worker *w)
{
	int k = (int)(tu_rand(&w->seed) % NKEYS);
	int mode = tu_rand(&w->seed) % 2 ? LOCK_X : LOCK_S;
	bool impatient = tu_rand(&w->seed) % 10 == 0;
	uint32_t rel, timeout_ms = impatient ? SHORT_MS : LONG_MS;
	uint8_t key[2];
	int rc;
	key_of(k, &rel, key);
	rc = w->tables ? table_request(w, k, mode, timeout_ms)
		       : lock_acquire(w->lm, w->o, rel, key, 2, mode, timeout_ms);
	if (rc == 0 && w->tables) {
		w->granted++;
		note_all(w);
	} else if (rc == 0) {
		w->granted++;
		note_grant(w, k, mode);
		if (!lock_held(w->lm, w->o, rel, key, 2, mode))
			wfail(w, "granted lock not held", 0);
	} else if (rc == WD_EDEADLOCK) {
		w->deadlocks++;
	} else if (rc == WD_ETIMEDOUT && impatient) {
		w->timeouts++;
	} else {
		wfail(w, "lock_acquire", rc);
	}
	return rc;
}

static void nap(void)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 3 * 1000000L};
	nanosleep(&ts, NULL);
}

/* Runs one transaction to its commit: after a deadlock or a timeout it
 * releases everything and starts again with the same owner. */
static void one_transaction(struct worker *w)
{
	int nops = 1 + (int)(tu_rand(&w->seed) % MAX_OPS);
	int rc = 0;
	if (lock_owner_create(w->lm, atomic_fetch_add(&next_xid, 1), &w->o) != 0) {
		wfail(w, "lock_owner_create", -1);
		return;
	}
	do {
		for (int i = 0; i < nops && (rc = one_request(w)) == 0; i++)
			if (tu_rand(&w->seed) % 4 == 0)
				sched_yield();
		if (rc == 0 && tu_rand(&w->seed) % 32 == 0)
			nap(); /* long enough for impatient waiters to give up */
		note_release(w);
		lock_release_all(w->lm, w->o);
	} while (rc != 0 && !w->errors);
	w->commits++;
	lock_owner_destroy(w->lm, w->o);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int t = 0; t < TXNS && !w->errors; t++)
		one_transaction(w);
	return NULL;
}

/* The totals of the workers agree with the manager's counters (with
 * table locks, a request may take two locks: its count of grants is not
 * the manager's). */
static void check_totals(lockmgr *lm, const struct worker *ws, bool tables)
{
	uint64_t commits = 0, deadlocks = 0, timeouts = 0, granted = 0;
	lock_stats s;
	for (int i = 0; i < NTHREADS; i++) {
		commits += ws[i].commits;
		deadlocks += ws[i].deadlocks;
		timeouts += ws[i].timeouts;
		granted += ws[i].granted;
	}
	lockmgr_stats(lm, &s);
	print_message("%llu transactions, %llu grants (%llu fast, %llu unshared), "
		      "%llu published, %llu waits, %llu deadlocks, %llu timeouts\n",
		      (unsigned long long)commits, (unsigned long long)granted,
		      (unsigned long long)s.fast, (unsigned long long)s.unshared,
		      (unsigned long long)s.published, (unsigned long long)s.waits,
		      (unsigned long long)deadlocks, (unsigned long long)timeouts);
	assert_int_equal(commits, (uint64_t)NTHREADS * TXNS);
	if (tables)
		assert_true(s.acquired >= granted && s.escalations > 0);
	else
		assert_int_equal(s.acquired, granted);
	assert_int_equal(s.deadlocks, deadlocks);
	assert_int_equal(s.timeouts, timeouts);
	assert_int_equal(s.held_now, 0);
	assert_true(deadlocks > 0);
	assert_true(timeouts > 0);
	assert_true(s.waits > 0);
	/* both ways of an S lock were taken, and X requests published some */
	assert_true(s.unshared > 0 && s.unshared < s.acquired);
	assert_true(s.published > 0);
}

static void run_random(bool tables)
{
	lockmgr *lm;
	struct worker *ws = calloc(NTHREADS, sizeof *ws);
	pthread_t th[NTHREADS];
	assert_int_equal(lockmgr_create(&lm), 0);
	if (tables)
		lockmgr_set_escalation(lm, 2);
	for (int i = 0; i < NTHREADS; i++) {
		ws[i] = (struct worker){.lm = lm, .id = i, .seed = 77u + (uint64_t)i,
					.tables = tables};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &ws[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (ws[i].errors)
			fail_msg("%s (%llu errors)", ws[i].msg, (unsigned long long)ws[i].errors);
	}
	for (int k = 0; k < NKEYS; k++)
		assert_true(holders_s[k] == 0 && holders_x[k] == 0);
	check_totals(lm, ws, tables);
	lockmgr_destroy(lm);
	free(ws);
}

static void test_random_transactions(void **state)
{
	(void)state;
	run_random(false);
}

/* The same with table locks and escalation (LOCKS.md K7). About half a
 * second in release, asan and tsan (TXNS is smaller under the
 * sanitizers). */
static void test_random_with_tables(void **state)
{
	(void)state;
	run_random(true);
}

/* ---- rings: n owners, each holding its key, all ask for the next ---- */

#define RING_MAX 4
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define ROUNDS 60
#else
#define ROUNDS 300
#endif

struct ring {
	lockmgr *lm;
	pthread_barrier_t bar;
	int n;
	_Atomic int victims;
	_Atomic uint64_t errors;
};

struct member {
	struct ring *r;
	int i;
};

/* One member of one round: holds key i, asks for key i+1 at the moment
 * every other member asks too; a victim releases so the ring unwinds. */
static void ring_round(struct ring *r, lock_owner *o, int i)
{
	uint8_t mine = (uint8_t)i, next = (uint8_t)((i + 1) % r->n);
	int rc;
	if (lock_acquire(r->lm, o, 16, &mine, 1, LOCK_X, 0) != 0)
		atomic_fetch_add(&r->errors, 1);
	pthread_barrier_wait(&r->bar);
	rc = lock_acquire(r->lm, o, 16, &next, 1, i % 2 ? LOCK_S : LOCK_X, LONG_MS);
	if (rc == WD_EDEADLOCK)
		atomic_fetch_add(&r->victims, 1);
	else if (rc != 0)
		atomic_fetch_add(&r->errors, 1);
	lock_release_all(r->lm, o);
	pthread_barrier_wait(&r->bar); /* every member released */
}

static void *member_main(void *arg)
{
	struct member *m = arg;
	lock_owner *o;
	if (lock_owner_create(m->r->lm, (uint64_t)m->i + 1, &o) != 0) {
		atomic_fetch_add(&m->r->errors, 1);
		return NULL;
	}
	for (int round = 0; round < ROUNDS; round++)
		ring_round(m->r, o, m->i);
	lock_owner_destroy(m->r->lm, o);
	return NULL;
}

/* Every round of a ring of n closes one cycle, at once from all sides:
 * exactly one member is the victim (at least one, or the ring hangs; at
 * most one, or a victim was chosen without a cycle). */
static void run_ring(int n)
{
	struct ring r = {.n = n};
	struct member m[RING_MAX];
	pthread_t th[RING_MAX];
	lock_stats s;
	assert_int_equal(lockmgr_create(&r.lm), 0);
	assert_int_equal(pthread_barrier_init(&r.bar, NULL, (unsigned)n), 0);
	for (int i = 0; i < n; i++) {
		m[i] = (struct member){.r = &r, .i = i};
		assert_int_equal(pthread_create(&th[i], NULL, member_main, &m[i]), 0);
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(atomic_load(&r.errors), 0);
	assert_int_equal(atomic_load(&r.victims), ROUNDS);
	lockmgr_stats(r.lm, &s);
	assert_int_equal(s.deadlocks, ROUNDS);
	assert_int_equal(s.held_now, 0);
	pthread_barrier_destroy(&r.bar);
	lockmgr_destroy(r.lm);
}

static void test_simultaneous_cycles(void **state)
{
	(void)state;
	for (int n = 2; n <= RING_MAX; n++)
		run_ring(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_transactions),
		cmocka_unit_test(test_random_with_tables),
		cmocka_unit_test(test_simultaneous_cycles),
	};
	return cmocka_run_group_tests_name("lockmgr_conc", tests, NULL, NULL);
}
