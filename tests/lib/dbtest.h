/*
 * dbtest.h - what the suites that drive the public API share: small test
 * options, opening a database, checking every table, the scale of long
 * runs, a clock, and the OK / EXPECT / MDBOK assertions (which need
 * <cmocka.h>, and <lmdb.h> for MDBOK, included before this header).
 */
#ifndef WALDEN_DBTEST_H
#define WALDEN_DBTEST_H

#include <stddef.h>
#include <stdint.h>

#include "walden.h"

/* Small pages, segments and pool (so pages are evicted and read back all
 * the time); synchronous_commit = sync. */
void dt_opts(wd_options *o, int sync);

/* Opens dir with dt_opts(sync), failing the test on an error. */
wd_db *dt_open_db(const char *dir, int sync);

/* Opens dir with options o and the trace modules (e.g. "recovery") on;
 * *trace receives every line the open traced, each ending in a newline
 * (malloc'd; the caller frees it). The test fails if the open does. */
wd_db *dt_open_traced(const char *dir, const wd_options *o, const char *modules,
		      char **trace);

/* Table name of db opened (flags: WD_CREATE creates it) in a transaction
 * of its own; the test fails on an error. */
wd_table *dt_table(wd_db *db, const char *name, unsigned flags);

/* Every table of db and the catalog pass db_table_check (else the test
 * fails naming the table). */
void dt_check_all(wd_db *db);

/* The factor WALDEN_TEST_SCALE gives long runs (default 1, 0.2 under
 * AddressSanitizer). */
double dt_scale(void);

/* The key of id for the crash workloads, into k[128]: prefix (2 bytes)
 * and id, padded with letters to 9..93 bytes by id, or 100 bytes for ids
 * from burst on (long keys that split leaves). Returns its length. */
size_t dt_mixed_key(const char *prefix, unsigned id, unsigned burst, uint8_t *k);

/* A value length for the crash workloads: 60% under 200 bytes, 25% up to
 * 1.5 KB, 12% up to 3 pages of 4 KiB, 3% from big_min to big_max. */
uint32_t dt_mixed_vlen(uint64_t *s, uint32_t big_min, uint32_t big_max);

/* Seconds on the monotonic clock (for informative rates only). */
double dt_now_s(void);

/* In a forked child, where cmocka cannot fail the test: rc must be 0, else
 * the child says what failed (what, the code, the detail) on stderr and
 * exits with status 3, which the parent's check of the exit status
 * reports. */
void dt_child_ok(int rc, const char *what);

/* In x, key k (a C string) of t holds want (a C string), or is absent
 * (want NULL); else the test fails naming the key. */
void dt_expect_key(wd_txn *x, wd_table *t, const char *k, const char *want);

/* wd_put of C-string key and value, failing the test on an error. */
void dt_put_str(wd_txn *x, wd_table *t, const char *k, const char *v);

/* Waits (polling the lock manager's counters, db_lock_stats) until some
 * call has gone to sleep on a lock beyond `above` waits; fails the test
 * after a minute. */
void dt_wait_for_lock_waiter(wd_db *db, uint64_t above);

/* A wd_put of C strings run by a thread (dt_put_thread, the pthread
 * start routine): the call's result lands in rc. */
struct dt_put_arg {
	wd_txn *x;
	wd_table *t;
	const char *k, *v;
	int rc;
};
void *dt_put_thread(void *arg);

/* expr must succeed (the detail is shown if it does not). */
#define OK(expr)                                                              \
	do {                                                                  \
		int rc_ = (expr);                                             \
		if (rc_ != 0)                                                 \
			fail_msg("%s: %s (%s)", #expr, wd_strerror(rc_),      \
				 wd_last_error());                            \
	} while (0)

/* expr must fail with code want (the detail is shown if it does not). */
#define EXPECT(expr, want)                                                    \
	do {                                                                  \
		int rc_ = (expr);                                             \
		if (rc_ != (want))                                            \
			fail_msg("%s: %d (%s), expected %s", #expr, rc_,      \
				 rc_ ? wd_last_error() : "success",           \
				 wd_strerror(want));                          \
	} while (0)

/* In a forked child, where a cmocka failure must not unwind into the
 * test runner: a failure prints what failed and exits with status 3 (the
 * parent expects 0, or ST_CRASH_EXIT_CODE for a planned crash). Needs
 * <stdio.h> and <unistd.h>. */
#define COK(expr)                                                             \
	do {                                                                  \
		int rc_ = (expr);                                             \
		if (rc_ != 0) {                                               \
			fprintf(stderr, "child: %s: %s (%s)\n", #expr,        \
				wd_strerror(rc_), wd_last_error());           \
			_exit(3);                                             \
		}                                                             \
	} while (0)

/* In a forked child: an LMDB call must succeed, else the child says what
 * failed on stderr and exits with status 3 (as COK). */
#define CMDBOK(expr)                                                          \
	do {                                                                  \
		int m_ = (expr);                                              \
		if (m_ != 0) {                                                \
			fprintf(stderr, "child: %s: %s\n", #expr,             \
				mdb_strerror(m_));                            \
			_exit(3);                                             \
		}                                                             \
	} while (0)

/* An LMDB call must succeed. */
#define MDBOK(expr)                                                           \
	do {                                                                  \
		int m_ = (expr);                                              \
		if (m_ != 0)                                                  \
			fail_msg("%s: %s", #expr, mdb_strerror(m_));          \
	} while (0)

#endif
