/*
 * test_lockmgr.c - the row lock manager: S/S compatible and S/X, X/S, X/X
 * conflicts (a second thread blocks until the release), timeouts, free
 * re-acquisition, upgrades, FIFO wake-ups, a million locks in one owner,
 * keys of 0..8192 bytes, deadlocks of two and three owners and of two
 * upgraders, and no false deadlock in a chain; unshared S locks (counted,
 * published by an X request, shared while an X is counted on their
 * bucket, in a deadlock like any other lock; a million of them).
 *
 * Waiter threads never call cmocka asserts: they store their result, and
 * the main thread checks it after joining.
 */
#define _GNU_SOURCE
#include <malloc.h>
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

#define REL 16u

static lockmgr *lm;

static int setup(void **state)
{
	(void)state;
	return lockmgr_create(&lm);
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

/* Destroys the owners given (NULL: none). */
static void drop(lock_owner *a, lock_owner *b, lock_owner *c)
{
	lock_owner_destroy(lm, a);
	lock_owner_destroy(lm, b);
	lock_owner_destroy(lm, c);
}

static int get(lock_owner *o, const char *key, int mode, uint32_t timeout_ms)
{
	return lock_acquire(lm, o, REL, key, (uint32_t)strlen(key), mode, timeout_ms);
}

static bool held(lock_owner *o, const char *key, int mode)
{
	return lock_held(lm, o, REL, key, (uint32_t)strlen(key), mode);
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

/* ---- a request made by a second thread ---- */

typedef struct waiter {
	lock_owner *o;
	const char *key;
	int mode;
	uint32_t timeout_ms;
	pthread_t th;
	int rc;
	atomic_bool done;
	char err[512];
} waiter;

static void *waiter_main(void *arg)
{
	waiter *w = arg;
	w->rc = get(w->o, w->key, w->mode, w->timeout_ms);
	snprintf(w->err, sizeof w->err, "%s", wd_last_error());
	atomic_store(&w->done, true);
	return NULL;
}

/* Waits up to 10 s until the manager counts `waits` sleeping requests. */
static void until_waits(uint64_t waits)
{
	for (int i = 0; i < 10000 && stats().waits < waits; i++)
		sleep_ms(1);
	assert_true(stats().waits >= waits);
}

/* Starts w's request in a thread and returns once it sleeps in the
 * manager (the count of waits has grown by one). */
static void start_waiting(waiter *w, lock_owner *o, const char *key, int mode,
			  uint32_t timeout_ms)
{
	uint64_t before = stats().waits;
	*w = (waiter){.o = o, .key = key, .mode = mode, .timeout_ms = timeout_ms};
	assert_int_equal(pthread_create(&w->th, NULL, waiter_main, w), 0);
	until_waits(before + 1);
	sleep_ms(5);
	assert_false(atomic_load(&w->done));
}

static int finish(waiter *w)
{
	assert_int_equal(pthread_join(w->th, NULL), 0);
	return w->rc;
}

/* ---- compatibility and conflicts ---- */

static void test_shared_compatible(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	(void)state;
	assert_int_equal(get(a, "k", LOCK_S, 0), 0);
	assert_int_equal(get(b, "k", LOCK_S, 0), 0);
	assert_true(held(a, "k", LOCK_S) && held(b, "k", LOCK_S));
	assert_false(held(a, "k", LOCK_X));
	assert_false(held(a, "other", LOCK_S));
	assert_int_equal(stats().waits, 0);
	assert_int_equal(stats().held_now, 2);
	drop(a, b, NULL);
	assert_int_equal(stats().held_now, 0);
}

/* b's request for m2 waits while a holds m1, and is granted at a's
 * release; with a timeout it fails with WD_ETIMEDOUT naming the holder. */
static void check_conflict(int m1, int m2)
{
	lock_owner *a = owner(1), *b = owner(2);
	waiter w;
	assert_int_equal(get(a, "k", m1, 0), 0);
	assert_int_equal(get(b, "k", m2, 20), WD_ETIMEDOUT);
	assert_non_null(strstr(wd_last_error(), "timed out after 20 ms: xid 2 wants"));
	assert_non_null(strstr(wd_last_error(), "rel 16 key 0x6b; blocked by xid 1 (holds"));
	assert_false(held(b, "k", LOCK_S));
	start_waiting(&w, b, "k", m2, 0);
	lock_release_all(lm, a);
	assert_int_equal(finish(&w), 0);
	assert_true(held(b, "k", m2));
	assert_false(held(a, "k", LOCK_S));
	drop(a, b, NULL);
}

static void test_conflicts(void **state)
{
	(void)state;
	check_conflict(LOCK_S, LOCK_X);
	check_conflict(LOCK_X, LOCK_S);
	check_conflict(LOCK_X, LOCK_X);
	assert_int_equal(stats().timeouts, 3);
	assert_int_equal(stats().deadlocks, 0);
}

static void test_reacquire_is_free(void **state)
{
	lock_owner *a = owner(1);
	lock_stats s0, s1;
	(void)state;
	assert_int_equal(get(a, "k", LOCK_X, 0), 0);
	s0 = stats();
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(get(a, "k", LOCK_X, 0), 0);
		assert_int_equal(get(a, "k", LOCK_S, 0), 0);
	}
	s1 = stats();
	assert_int_equal(s1.fast - s0.fast, 2000);
	assert_int_equal(s1.acquired - s0.acquired, 2000);
	assert_int_equal(s1.held_now, 1);
	lock_owner_destroy(lm, a);
	assert_int_equal(stats().fast, 2000); /* kept after the owner went */
}

static void test_bad_arguments(void **state)
{
	lock_owner *a = owner(1);
	static char big[LOCK_KEY_MAX + 1];
	(void)state;
	assert_int_equal(lock_acquire(lm, a, REL, "k", 1, 3, 0), WD_EINVAL);
	assert_int_equal(lock_acquire(lm, a, REL, "k", 1, 0, 0), WD_EINVAL);
	assert_int_equal(lock_acquire(lm, a, REL, big, LOCK_KEY_MAX + 1, LOCK_S, 0), WD_EINVAL);
	assert_int_equal(lock_acquire(lm, a, REL, NULL, 1, LOCK_S, 0), WD_EINVAL);
	assert_int_equal(lock_acquire(lm, a, REL, NULL, 0, LOCK_S, 0), 0);
	assert_true(lock_held(lm, a, REL, "", 0, LOCK_S));
	assert_int_equal(stats().held_now, 1);
	lock_owner_destroy(lm, a);
}

/* ---- upgrades and wake-ups ---- */

static void test_upgrade(void **state)
{
	lock_owner *a = owner(1), *b = owner(2), *c = owner(3);
	waiter wa, wc;
	(void)state;
	assert_int_equal(get(a, "k", LOCK_S, 0), 0);
	assert_int_equal(get(a, "k", LOCK_X, 0), 0); /* alone: at once */
	assert_true(held(a, "k", LOCK_X));
	assert_int_equal(stats().held_now, 1);
	lock_release_all(lm, a);

	/* a and b share; c waits for X; a's upgrade goes before c */
	assert_int_equal(get(a, "k", LOCK_S, 0), 0);
	assert_int_equal(get(b, "k", LOCK_S, 0), 0);
	start_waiting(&wc, c, "k", LOCK_X, 0);
	start_waiting(&wa, a, "k", LOCK_X, 0);
	lock_release_all(lm, b);
	assert_int_equal(finish(&wa), 0);
	assert_true(held(a, "k", LOCK_X));
	sleep_ms(5);
	assert_false(atomic_load(&wc.done));
	lock_release_all(lm, a);
	assert_int_equal(finish(&wc), 0);
	assert_true(held(c, "k", LOCK_X));
	assert_int_equal(stats().deadlocks, 0);
	drop(a, b, c);
}

/* A release grants every compatible waiter at once, in FIFO order: an S
 * waiter behind an X waiter waits for it. */
static void test_release_wakes_waiters(void **state)
{
	lock_owner *a = owner(1), *o[3];
	waiter w[3];
	(void)state;
	for (int i = 0; i < 3; i++)
		o[i] = owner(2 + (uint64_t)i);
	assert_int_equal(get(a, "k", LOCK_X, 0), 0);
	for (int i = 0; i < 3; i++)
		start_waiting(&w[i], o[i], "k", LOCK_S, 0);
	lock_release_all(lm, a);
	for (int i = 0; i < 3; i++)
		assert_int_equal(finish(&w[i]), 0);
	for (int i = 0; i < 3; i++)
		lock_release_all(lm, o[i]);

	assert_int_equal(get(a, "k", LOCK_X, 0), 0);
	start_waiting(&w[0], o[0], "k", LOCK_X, 0);
	start_waiting(&w[1], o[1], "k", LOCK_S, 0);
	lock_release_all(lm, a);
	assert_int_equal(finish(&w[0]), 0);
	sleep_ms(5);
	assert_false(atomic_load(&w[1].done));
	lock_release_all(lm, o[0]);
	assert_int_equal(finish(&w[1]), 0);
	lock_owner_destroy(lm, a);
	drop(o[0], o[1], o[2]);
}

/* A waiter that times out leaves the queue and lets those behind it in:
 * h holds S, w1 waits for X (200 ms), w2 for S behind w1. */
static void test_timeout_wakes_those_behind(void **state)
{
	lock_owner *h = owner(1), *o1 = owner(2), *o2 = owner(3);
	waiter w1, w2;
	(void)state;
	assert_int_equal(get(h, "k", LOCK_S, 0), 0);
	start_waiting(&w1, o1, "k", LOCK_X, 200);
	start_waiting(&w2, o2, "k", LOCK_S, 0);
	assert_int_equal(finish(&w1), WD_ETIMEDOUT);
	assert_non_null(strstr(w1.err, "blocked by xid 1 (holds S)"));
	assert_int_equal(finish(&w2), 0);
	assert_true(held(o2, "k", LOCK_S));
	assert_false(held(o1, "k", LOCK_S));
	assert_int_equal(stats().held_now, 2);
	drop(h, o1, o2);
}

/* ---- many locks, many keys ---- */

#define MANY 1000000u

/* Heap bytes in use; 0 under ASan, whose allocator mallinfo2 does not
 * see (the memory checks are then skipped). */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 0;
#else
	return mallinfo2().uordblks;
#endif
}

static void take_many(lock_owner *a, int mode)
{
	for (uint32_t i = 0; i < MANY; i++) {
		uint64_t k = i;
		assert_int_equal(lock_acquire(lm, a, REL, &k, sizeof k, mode, 0), 0);
	}
}

/* One owner holds a million locks of mode: memory stays under `limit`
 * bytes a lock, the release gives it back, and a second round costs no
 * more. */
static void million_locks(int mode, size_t limit)
{
	lock_owner *a = owner(1);
	size_t base = heap_in_use(), peak;
	uint64_t k = 123456;
	for (int round = 0; round < 2; round++) {
		take_many(a, mode);
		peak = heap_in_use();
		assert_int_equal(stats().held_now, MANY);
		assert_true(lock_held(lm, a, REL, &k, sizeof k, mode));
		assert_int_equal(lock_acquire(lm, a, REL, &k, sizeof k, LOCK_S, 0), 0);
		if (base) {
			print_message("%zu bytes per %s lock (8-byte keys)\n", (peak - base) / MANY,
				      mode == LOCK_X ? "X" : "unshared S");
			assert_true(peak - base < (size_t)MANY * limit);
		}
		lock_release_all(lm, a);
		assert_int_equal(stats().held_now, 0);
		assert_false(lock_held(lm, a, REL, &k, sizeof k, LOCK_S));
	}
	lock_owner_destroy(lm, a);
	if (base)
		assert_true(heap_in_use() < base + 1024 * 1024);
}

/* X locks: about 100 bytes in all for an 8-byte key (entry, object, both
 * tables); unshared S ones have no object: about 60 (entry, local table,
 * the key in the arena). */
static void test_million_locks(void **state)
{
	(void)state;
	million_locks(LOCK_X, 108);
	assert_int_equal(stats().unshared, 0);
	million_locks(LOCK_S, 72);
	assert_int_equal(stats().unshared, 2 * MANY);
}

/* Keys of every length 0..8192, each a prefix of the next, are distinct
 * locks; the same keys in another relation are others again. */
static void test_keys_distinct(void **state)
{
	static uint8_t key[LOCK_KEY_MAX];
	lock_owner *a = owner(1), *b = owner(2);
	(void)state;
	for (uint32_t i = 0; i < LOCK_KEY_MAX; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (uint32_t n = 0; n <= LOCK_KEY_MAX; n++)
		assert_int_equal(lock_acquire(lm, a, REL, key, n, LOCK_X, 0), 0);
	assert_int_equal(stats().fast, 0);
	assert_int_equal(stats().held_now, LOCK_KEY_MAX + 1);
	for (uint32_t n = 0; n <= LOCK_KEY_MAX; n++)
		assert_int_equal(lock_acquire(lm, b, REL + 1, key, n, LOCK_X, 0), 0);
	for (uint32_t n = 0; n <= LOCK_KEY_MAX; n += 1024)
		assert_int_equal(lock_acquire(lm, b, REL, key, n, LOCK_S, 1), WD_ETIMEDOUT);
	key[LOCK_KEY_MAX - 1] ^= 1; /* the longest key, one bit changed */
	assert_int_equal(lock_acquire(lm, b, REL, key, LOCK_KEY_MAX, LOCK_X, 0), 0);
	assert_false(lock_held(lm, a, REL, key, LOCK_KEY_MAX, LOCK_S));
	assert_true(lock_held(lm, a, REL, key, 100, LOCK_X));
	assert_false(lock_held(lm, a, REL + 1, key, 100, LOCK_S));
	assert_int_equal(stats().held_now, 2 * (LOCK_KEY_MAX + 1) + 1);
	drop(a, b, NULL);
}

/* ---- deadlocks ---- */

/* a holds k1, b holds k2; a waits for k2; b asking for k1 is the victim,
 * keeps k2 until it releases, and then a is granted. */
static void test_two_owner_deadlock(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	waiter wa;
	(void)state;
	assert_int_equal(get(a, "k1", LOCK_X, 0), 0);
	assert_int_equal(get(b, "k2", LOCK_X, 0), 0);
	start_waiting(&wa, a, "k2", LOCK_X, 0);
	assert_int_equal(get(b, "k1", LOCK_S, 0), WD_EDEADLOCK);
	assert_string_equal(wd_last_error(),
			    "deadlock: xid 2 waits for xid 1 (wants S on rel 16 key 0x6b31)"
			    " which waits for xid 2 (wants X on rel 16 key 0x6b32)");
	assert_true(held(b, "k2", LOCK_X));
	assert_false(held(b, "k1", LOCK_S));
	sleep_ms(5);
	assert_false(atomic_load(&wa.done));
	lock_release_all(lm, b);
	assert_int_equal(finish(&wa), 0);
	assert_true(held(a, "k2", LOCK_X));
	assert_int_equal(stats().deadlocks, 1);
	drop(a, b, NULL);
}

static void test_three_owner_cycle(void **state)
{
	lock_owner *a = owner(1), *b = owner(2), *c = owner(3);
	waiter wa, wb;
	(void)state;
	assert_int_equal(get(a, "k1", LOCK_X, 0), 0);
	assert_int_equal(get(b, "k2", LOCK_X, 0), 0);
	assert_int_equal(get(c, "k3", LOCK_S, 0), 0);
	start_waiting(&wa, a, "k2", LOCK_S, 0);
	start_waiting(&wb, b, "k3", LOCK_X, 0);
	assert_int_equal(get(c, "k1", LOCK_X, 1000), WD_EDEADLOCK);
	assert_string_equal(wd_last_error(),
			    "deadlock: xid 3 waits for xid 1 (wants X on rel 16 key 0x6b31)"
			    " which waits for xid 2 (wants S on rel 16 key 0x6b32)"
			    " which waits for xid 3 (wants X on rel 16 key 0x6b33)");
	lock_release_all(lm, c);
	assert_int_equal(finish(&wb), 0);
	lock_release_all(lm, b);
	assert_int_equal(finish(&wa), 0);
	assert_int_equal(stats().deadlocks, 1);
	drop(a, b, c);
}

/* Two S holders both upgrading: the second is the victim and keeps its S;
 * once it releases, the first gets X. */
static void test_upgrade_deadlock(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	waiter wa;
	(void)state;
	assert_int_equal(get(a, "k", LOCK_S, 0), 0);
	assert_int_equal(get(b, "k", LOCK_S, 0), 0);
	start_waiting(&wa, a, "k", LOCK_X, 0);
	assert_int_equal(get(b, "k", LOCK_X, 0), WD_EDEADLOCK);
	assert_non_null(strstr(wd_last_error(), "deadlock: xid 2 waits for xid 1"));
	assert_true(held(b, "k", LOCK_S));
	assert_false(held(b, "k", LOCK_X));
	lock_release_all(lm, b);
	assert_int_equal(finish(&wa), 0);
	assert_true(held(a, "k", LOCK_X));
	drop(a, b, NULL);
}

/* a waits for b, which waits for c (not waiting): no deadlock; the chain
 * unwinds as each releases. */
static void test_chain_is_no_deadlock(void **state)
{
	lock_owner *a = owner(1), *b = owner(2), *c = owner(3);
	waiter wa, wb;
	(void)state;
	assert_int_equal(get(a, "ka", LOCK_X, 0), 0);
	assert_int_equal(get(b, "kb", LOCK_X, 0), 0);
	assert_int_equal(get(c, "kc", LOCK_X, 0), 0);
	start_waiting(&wb, b, "kc", LOCK_S, 0);
	start_waiting(&wa, a, "kb", LOCK_X, 0);
	assert_int_equal(get(c, "kd", LOCK_X, 0), 0); /* c goes on */
	assert_int_equal(stats().deadlocks, 0);
	lock_release_all(lm, c);
	assert_int_equal(finish(&wb), 0);
	lock_release_all(lm, b);
	assert_int_equal(finish(&wa), 0);
	assert_int_equal(stats().deadlocks, 0);
	assert_int_equal(stats().waits, 2);
	drop(a, b, c);
}

/* ---- unshared S locks (K8) ---- */

/* With no X request on their bucket, S locks are unshared: counted as
 * held, compatible with each other. An X request publishes every one of
 * its row and waits for them like for any holder; while an X is held or
 * waits, S requests of its bucket go the shared way and wait behind it;
 * once it is released (or its request failed) they are unshared again. */
static void test_unshared_s_locks(void **state)
{
	lock_owner *a = owner(1), *b = owner(2), *c = owner(3), *d = owner(4);
	lock_stats s;
	waiter w;
	(void)state;
	assert_int_equal(get(a, "k", LOCK_S, 0), 0);
	assert_int_equal(get(b, "k", LOCK_S, 0), 0);
	assert_int_equal(get(a, "k", LOCK_S, 0), 0); /* held: a re-acquisition */
	s = stats();
	assert_int_equal(s.unshared, 2);
	assert_int_equal(s.fast, 1);
	assert_int_equal(s.acquired, 3);
	assert_int_equal(s.held_now, 2);
	assert_int_equal(s.published, 0);
	assert_true(held(a, "k", LOCK_S) && held(b, "k", LOCK_S));
	assert_false(held(a, "k", LOCK_X));

	/* c's X publishes both, waits, and names both when it times out */
	assert_int_equal(get(c, "k", LOCK_X, 20), WD_ETIMEDOUT);
	assert_non_null(strstr(wd_last_error(), "xid 1 (holds S)"));
	assert_non_null(strstr(wd_last_error(), "xid 2 (holds S)"));
	s = stats();
	assert_int_equal(s.published, 2);
	assert_int_equal(s.held_now, 2);
	assert_true(held(a, "k", LOCK_S) && held(b, "k", LOCK_S));
	/* the failed X is no longer counted: d's S is unshared */
	assert_int_equal(get(d, "k", LOCK_S, 0), 0);
	assert_int_equal(stats().unshared, 3);
	lock_release_all(lm, d);

	/* c waits for X; d's S now goes the shared way and queues behind it */
	start_waiting(&w, c, "k", LOCK_X, 0);
	assert_int_equal(get(d, "k", LOCK_S, 20), WD_ETIMEDOUT);
	assert_non_null(strstr(wd_last_error(), "xid 3 (waits for X)"));
	lock_release_all(lm, a);
	sleep_ms(5);
	assert_false(atomic_load(&w.done));
	lock_release_all(lm, b);
	assert_int_equal(finish(&w), 0);
	assert_true(held(c, "k", LOCK_X));
	/* held X: S requests are shared and wait for it */
	assert_int_equal(get(d, "k", LOCK_S, 20), WD_ETIMEDOUT);
	assert_non_null(strstr(wd_last_error(), "blocked by xid 3 (holds X)"));
	s = stats();
	assert_int_equal(s.unshared, 3);
	/* released: unshared again */
	lock_release_all(lm, c);
	assert_int_equal(get(d, "k", LOCK_S, 0), 0);
	s = stats();
	assert_int_equal(s.unshared, 4);
	assert_int_equal(s.published, 2);
	assert_int_equal(s.held_now, 1);
	/* its owner's own X publishes it and converts it in place */
	assert_int_equal(get(d, "k", LOCK_X, 0), 0);
	s = stats();
	assert_int_equal(s.published, 3);
	assert_int_equal(s.held_now, 1);
	assert_true(held(d, "k", LOCK_X));
	lock_owner_destroy(lm, d);
	drop(a, b, c);
}

/* Two readers each hold an unshared S and each asks for X on the other's
 * row: the first waits (having published the second's S), the second's
 * request publishes the first's, closes the cycle and is the victim. */
static void test_deadlock_through_unshared(void **state)
{
	lock_owner *a = owner(1), *b = owner(2);
	waiter wa;
	(void)state;
	assert_int_equal(get(a, "k1", LOCK_S, 0), 0);
	assert_int_equal(get(b, "k2", LOCK_S, 0), 0);
	assert_int_equal(stats().unshared, 2);
	start_waiting(&wa, a, "k2", LOCK_X, 0);
	assert_int_equal(get(b, "k1", LOCK_X, 0), WD_EDEADLOCK);
	assert_string_equal(wd_last_error(),
			    "deadlock: xid 2 waits for xid 1 (wants X on rel 16 key 0x6b31)"
			    " which waits for xid 2 (wants X on rel 16 key 0x6b32)");
	assert_int_equal(stats().published, 2);
	assert_true(held(b, "k2", LOCK_S));
	lock_release_all(lm, b);
	assert_int_equal(finish(&wa), 0);
	assert_true(held(a, "k2", LOCK_X) && held(a, "k1", LOCK_S));
	drop(a, b, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_shared_compatible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reacquire_is_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_wakes_waiters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_wakes_those_behind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_million_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_distinct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_owner_deadlock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_three_owner_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_deadlock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_is_no_deadlock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unshared_s_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadlock_through_unshared, setup, teardown),
	};
	return cmocka_run_group_tests_name("lockmgr", tests, NULL, NULL);
}
