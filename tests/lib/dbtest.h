/*
 * dbtest.h - what the suites that drive the public API share: small test
 * options, opening a database, checking every table, the scale of long
 * runs, a clock, and the OK / EXPECT / MDBOK assertions (which need
 * <cmocka.h>, and <lmdb.h> for MDBOK, included before this header).
 */
#ifndef WALDEN_DBTEST_H
#define WALDEN_DBTEST_H

#include "walden.h"

/* Small pages, segments and pool (so pages are evicted and read back all
 * the time); synchronous_commit = sync. */
void dt_opts(wd_options *o, int sync);

/* Opens dir with dt_opts(sync), failing the test on an error. */
wd_db *dt_open_db(const char *dir, int sync);

/* Every table of db and the catalog pass db_table_check (else the test
 * fails naming the table). */
void dt_check_all(wd_db *db);

/* The factor WALDEN_TEST_SCALE gives long runs (default 1, 0.2 under
 * AddressSanitizer). */
double dt_scale(void);

/* Seconds on the monotonic clock (for informative rates only). */
double dt_now_s(void);

/* In a forked child, where cmocka cannot fail the test: rc must be 0, else
 * the child says what failed (what, the code, the detail) on stderr and
 * exits with status 3, which the parent's check of the exit status
 * reports. */
void dt_child_ok(int rc, const char *what);

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

/* An LMDB call must succeed. */
#define MDBOK(expr)                                                           \
	do {                                                                  \
		int m_ = (expr);                                              \
		if (m_ != 0)                                                  \
			fail_msg("%s: %s", #expr, mdb_strerror(m_));          \
	} while (0)

#endif
