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
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
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

/* The lines dt_open_traced collects. */
struct lines {
	char *s;
	size_t len, cap;
};

static void collect(void *arg, const char *module, const char *line)
{
	struct lines *l = arg;
	size_t n = strlen(line);
	(void)module;
	if (l->len + n + 2 > l->cap) {
		l->cap = 2 * (l->len + n + 2) + 4096;
		assert_non_null(l->s = realloc(l->s, l->cap));
	}
	memcpy(l->s + l->len, line, n);
	l->len += n;
	l->s[l->len++] = '\n';
	l->s[l->len] = 0;
}

wd_db *dt_open_traced(const char *dir, const wd_options *o, const char *modules,
		      char **trace)
{
	struct lines l = {0};
	wd_db *db = NULL;
	int rc;
	assert_non_null(l.s = calloc(1, l.cap = 4096));
	wd_trace_set_callback(collect, &l);
	OK(wd_trace_enable(modules));
	rc = wd_open(dir, o, &db);
	OK(wd_trace_enable(""));
	wd_trace_set_callback(NULL, NULL);
	*trace = l.s;
	OK(rc);
	return db;
}

wd_table *dt_table(wd_db *db, const char *name, unsigned flags)
{
	wd_txn *x;
	wd_table *t;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, name, flags, &t));
	OK(wd_commit(x));
	return t;
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
	if (r.fsm.under) /* a stale FSM file: the close did not write it */
		fail_msg("table %s: %llu FSM entries promise less room than their page has",
			 ti->name, (unsigned long long)r.fsm.under);
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

size_t dt_mixed_key(const char *prefix, unsigned id, unsigned burst, uint8_t *k)
{
	size_t n = (size_t)snprintf((char *)k, 16, "%.2s%07u", prefix, id);
	size_t len = id >= burst ? 100 : 9 + (id % 13) * 7;
	for (; n < len; n++)
		k[n] = (uint8_t)('A' + (id * 7 + n) % 26);
	return len;
}

uint32_t dt_mixed_vlen(uint64_t *s, uint32_t big_min, uint32_t big_max)
{
	uint64_t r = tu_rand(s) % 100;
	if (r < 60)
		return (uint32_t)(tu_rand(s) % 200);
	if (r < 85)
		return (uint32_t)(200 + tu_rand(s) % 1300);
	if (r < 97)
		return (uint32_t)(1500 + tu_rand(s) % (3 * DT_PAGE - 1500));
	return (uint32_t)(big_min + tu_rand(s) % (big_max - big_min));
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

void dt_expect_key(wd_txn *x, wd_table *t, const char *k, const char *want)
{
	char buf[256];
	size_t vlen;
	int rc = wd_get(x, t, k, strlen(k), buf, sizeof buf, &vlen);
	if (!want) {
		if (rc != WD_NOTFOUND)
			fail_msg("key %s: %d (%s), expected absent", k, rc,
				 rc ? wd_last_error() : "present");
		return;
	}
	if (rc != 0)
		fail_msg("key %s: %s (%s), expected \"%s\"", k, wd_strerror(rc), wd_last_error(),
			 want);
	if (vlen != strlen(want) || memcmp(buf, want, vlen) != 0)
		fail_msg("key %s: \"%.*s\", expected \"%s\"", k, (int)vlen, buf, want);
}

void dt_put_str(wd_txn *x, wd_table *t, const char *k, const char *v)
{
	OK(wd_put(x, t, k, strlen(k), v, strlen(v)));
}

void dt_wait_for_lock_waiter(wd_db *db, uint64_t above)
{
	lock_stats st;
	for (unsigned i = 0;; i++) {
		db_lock_stats(db, &st);
		if (st.waits > above)
			return;
		if (i == 600000)
			fail_msg("no call blocked on a lock within a minute");
		usleep(100);
	}
}

void *dt_put_thread(void *arg)
{
	struct dt_put_arg *a = arg;
	a->rc = wd_put(a->x, a->t, a->k, strlen(a->k), a->v, strlen(a->v));
	return NULL;
}
