/*
 * dbtest.c - the helpers of dbtest.h: test options, open, check_all,
 * scale and clock, a child's checks, shared by the suites that drive the
 * public API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/lib/dbtest.h"
#include "txn/db.h"

#define DT_PAGE 4096u

#if defined(__SANITIZE_ADDRESS__)
#define DT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DT_ASAN 1
#endif
#endif
#ifndef DT_ASAN
#define DT_ASAN 0
#endif

void dt_opts(wd_options *o, int sync)
{
	wd_options_default(o);
	o->page_size = DT_PAGE;
	o->buffer_pool_bytes = 512u * DT_PAGE;
	o->wal_segment_size = 4u << 20;
	o->wal_buffers_bytes = 4u << 20;
	o->wal_init_zero = 0;
	o->synchronous_commit = sync;
}

wd_db *dt_open_db(const char *dir, int sync)
{
	wd_options o;
	wd_db *db = NULL;
	dt_opts(&o, sync);
	OK(wd_open(dir, &o, &db));
	return db;
}

/* db_catalog_list callback: checks one table. */
static int check_one(void *arg, const db_table_info *ti)
{
	wd_db *db = arg;
	wd_txn *x;
	wd_table *t;
	db_check_report r;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, ti->name, 0, &t));
	if (db_table_check(t, &r) != 0)
		fail_msg("table %s: %s", ti->name, wd_last_error());
	OK(wd_commit(x));
	return 0;
}

void dt_check_all(wd_db *db)
{
	db_check_report r;
	if (db_catalog_check(db, &r) != 0)
		fail_msg("catalog: %s", wd_last_error());
	OK(db_catalog_list(db, check_one, db));
}

double dt_scale(void)
{
	const char *s = getenv("WALDEN_TEST_SCALE");
	if (s && *s)
		return atof(s);
	return DT_ASAN ? 0.2 : 1.0;
}

double dt_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void dt_child_ok(int rc, const char *what)
{
	if (rc == 0)
		return;
	fprintf(stderr, "child: %s: %s (%s)\n", what, wd_strerror(rc), wd_last_error());
	_exit(3);
}
