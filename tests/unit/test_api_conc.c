/*
 * test_api_conc.c - threads sharing one database through the public API
 * (also run under ThreadSanitizer): four writers put and delete keys of
 * their own ranges (values from empty to three pages, so tuples move and
 * overflow chains come and go), while two readers get keys and scan with
 * cursors. Every value carries its key and a version and is a function of
 * both, so a reader can tell a torn or misattributed value; scans must be
 * in strictly increasing key order. Readers lock what they read (shared
 * row locks), so each get and each scan is a transaction of its own, and a
 * deadlock between a scan and a writer is expected now and then: the
 * victim (reader or writer) is rolled back and goes on, a writer with its
 * model taken back to its last commit. Readers do a minimum number of gets
 * and scans however fast the writers finish, and the test asserts it. At the end the table equals the union
 * of the writers' models and db_table_check is clean, after a reopen too.
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
#include <cmocka.h>

#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "walden.h"

#define PS 4096u
#define WRITERS 4
#define READERS 2
#define KEYS 600u /* per writer */
/* Each reader does at least this many gets and cursor runs, however fast
 * the writers finish (a reader keeps going while writers run, too). */
#define MIN_GETS 3000u
#define MIN_SCANS 60u

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static wd_db *db;
static wd_table *table;
static atomic_int writers_left;
static atomic_uint reader_errors;
static atomic_ulong reads_done, scans_done, scanned, deadlocks;
static char first_error[256];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

/* What each writer believes: version (0: absent) and length per key. */
static uint32_t model_ver[WRITERS][KEYS];
static uint32_t model_len[WRITERS][KEYS];

static void note_error(const char *fmt, ...)
{
	va_list ap;
	atomic_fetch_add(&reader_errors, 1);
	pthread_mutex_lock(&err_mu);
	if (!first_error[0]) {
		va_start(ap, fmt);
		vsnprintf(first_error, sizeof first_error, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_mu);
}

static size_t key_of(char *k, unsigned w, unsigned n)
{
	return (size_t)snprintf(k, 32, "w%u-%05u-%.*s", w, n, (int)(n % 17),
				"abcdefghijklmnopq");
}

/* Value: u32 version, u32 key hash, then bytes from both. */
static uint32_t key_hash(const void *k, size_t kl)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < kl; i++)
		h = (h ^ ((const uint8_t *)k)[i]) * 16777619u;
	return h;
}

static void make_val(uint8_t *v, size_t len, const char *k, size_t kl, uint32_t ver)
{
	uint32_t h = key_hash(k, kl);
	for (size_t i = 0; i < len; i++)
		v[i] = (uint8_t)(h + ver * 31 + i * 7);
	if (len >= 8) {
		memcpy(v, &ver, 4);
		memcpy(v + 4, &h, 4);
	}
}

/* true if v is a value some version of key k could have. */
static bool val_ok(const uint8_t *v, size_t len, const void *k, size_t kl)
{
	uint32_t ver = 0, h = key_hash(k, kl);
	if (len < 8)
		return true; /* short values carry no version */
	memcpy(&ver, v, 4);
	if (memcmp(v + 4, &h, 4) != 0)
		return false;
	for (size_t i = 8; i < len; i++)
		if (v[i] != (uint8_t)(h + ver * 31 + i * 7))
			return false;
	return true;
}

static size_t val_len(uint64_t *s)
{
	uint64_t r = tu_rand(s) % 100;
	if (r < 60)
		return tu_rand(s) % 200;
	if (r < 95)
		return 200 + tu_rand(s) % 1500;
	return PS + tu_rand(s) % (2 * PS);
}

struct writer_arg {
	unsigned w, ops;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	uint64_t s = 1000 + a->w;
	uint8_t *v = malloc(3 * PS);
	char k[32];
	wd_txn *x = NULL;
	static _Thread_local uint32_t saved_ver[KEYS], saved_len[KEYS];
	int rc = wd_begin(db, &x);
	memcpy(saved_ver, model_ver[a->w], sizeof saved_ver);
	memcpy(saved_len, model_len[a->w], sizeof saved_len);
	for (unsigned i = 0; rc == 0 && i < a->ops; i++) {
		unsigned n = (unsigned)(tu_rand(&s) % KEYS);
		size_t kl = key_of(k, a->w, n);
		if (tu_rand(&s) % 4 == 0) {
			rc = wd_del(x, table, k, kl);
			if (rc == WD_NOTFOUND && model_ver[a->w][n] == 0)
				rc = 0;
			model_ver[a->w][n] = 0;
		} else {
			size_t len = val_len(&s);
			uint32_t ver = model_ver[a->w][n] + 1 + i;
			make_val(v, len, k, kl, ver);
			rc = wd_put(x, table, k, kl, v, len);
			model_ver[a->w][n] = ver;
			model_len[a->w][n] = (uint32_t)len;
		}
		if (rc == WD_EDEADLOCK) {
			/* rolled back to its beginning: so is the model */
			memcpy(model_ver[a->w], saved_ver, sizeof saved_ver);
			memcpy(model_len[a->w], saved_len, sizeof saved_len);
			atomic_fetch_add(&deadlocks, 1);
			rc = 0;
		}
		if (rc == 0 && i % 64 == 63 && (rc = wd_commit(x)) == 0 &&
		    (rc = wd_begin(db, &x)) == 0) {
			memcpy(saved_ver, model_ver[a->w], sizeof saved_ver);
			memcpy(saved_len, model_len[a->w], sizeof saved_len);
		}
	}
	if (rc == 0)
		rc = wd_commit(x);
	if (rc != 0)
		note_error("writer %u: %s (%s)", a->w, wd_strerror(rc), wd_last_error());
	free(v);
	atomic_fetch_sub(&writers_left, 1);
	return NULL;
}

/* One cursor run from a random key: strictly increasing keys, each value
 * its key's. */
static void reader_scan(wd_txn *x, uint64_t *s)
{
	char prev[64], k0[32];
	size_t prevlen = 0, kl0 = key_of(k0, (unsigned)(tu_rand(s) % WRITERS),
					  (unsigned)(tu_rand(s) % KEYS));
	const void *k, *v;
	size_t kl, vl;
	wd_cursor *c;
	int rc = wd_cursor_open(x, table, &c);
	if (rc == 0)
		rc = wd_cursor_seek(c, k0, kl0);
	for (unsigned i = 0; rc == 0 && i < 200; i++) {
		if ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) != 0)
			break;
		size_t m = kl < prevlen ? kl : prevlen;
		int cmp = memcmp(prev, k, m);
		if (i > 0 && (cmp > 0 || (cmp == 0 && prevlen >= kl)))
			note_error("scan out of order at %.*s", (int)kl, (const char *)k);
		if (!val_ok(v, vl, k, kl))
			note_error("scan: wrong value for %.*s", (int)kl, (const char *)k);
		memcpy(prev, k, kl);
		prevlen = kl;
		atomic_fetch_add(&scanned, 1);
	}
	if (rc == WD_EDEADLOCK)
		atomic_fetch_add(&deadlocks, 1);
	else if (rc != 0 && rc != WD_NOTFOUND)
		note_error("scan: %s (%s)", wd_strerror(rc), wd_last_error());
	wd_cursor_close(c);
	atomic_fetch_add(&scans_done, 1);
}

static void *reader(void *p)
{
	uint64_t s = (uint64_t)(uintptr_t)p;
	uint8_t *v = malloc(3 * PS);
	char k[32];
	unsigned gets = 0, scans = 0;
	wd_txn *x;
	while (atomic_load(&writers_left) > 0 || gets < MIN_GETS || scans < MIN_SCANS) {
		size_t kl = key_of(k, (unsigned)(tu_rand(&s) % WRITERS),
				   (unsigned)(tu_rand(&s) % KEYS)), vl;
		int rc = wd_begin(db, &x);
		if (rc != 0) {
			note_error("reader: begin: %s", wd_last_error());
			break;
		}
		rc = wd_get(x, table, k, kl, v, 3 * PS, &vl);
		if (rc == 0 && !val_ok(v, vl, k, kl))
			note_error("get: wrong value for %s", k);
		else if (rc != 0 && rc != WD_NOTFOUND)
			note_error("get: %s (%s)", wd_strerror(rc), wd_last_error());
		atomic_fetch_add(&reads_done, 1);
		gets++;
		/* a get waits for one lock while holding none: no deadlock */
		if (wd_commit(x) != 0 || wd_begin(db, &x) != 0) {
			note_error("reader: commit: %s", wd_last_error());
			break;
		}
		if (tu_rand(&s) % 50 == 0 || (gets >= MIN_GETS && scans < MIN_SCANS)) {
			reader_scan(x, &s);
			scans++;
		}
		if (wd_commit(x) != 0)
			note_error("reader: commit: %s", wd_last_error());
	}
	free(v);
	return NULL;
}

/* The table equals the union of the models, in order. */
static void check_final(void)
{
	unsigned expected = 0, seen = 0;
	const void *k, *v;
	size_t kl, vl;
	wd_txn *x;
	wd_cursor *c;
	db_check_report r;
	uint8_t *want = malloc(3 * PS);
	char kb[32];
	int rc;
	for (unsigned w = 0; w < WRITERS; w++)
		for (unsigned n = 0; n < KEYS; n++)
			expected += model_ver[w][n] != 0;
	assert_int_equal(wd_begin(db, &x), 0);
	assert_int_equal(wd_table_open(x, "conc", 0, &table), 0);
	assert_int_equal(wd_cursor_open(x, table, &c), 0);
	while ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
		unsigned w, n;
		assert_int_equal(sscanf(k, "w%u-%5u", &w, &n), 2);
		assert_true(w < WRITERS && n < KEYS);
		assert_int_not_equal(model_ver[w][n], 0);
		assert_int_equal(vl, model_len[w][n]);
		key_of(kb, w, n);
		make_val(want, vl, kb, kl, model_ver[w][n]);
		assert_memory_equal(v, want, vl);
		seen++;
	}
	assert_int_equal(rc, WD_NOTFOUND);
	assert_int_equal(seen, expected);
	wd_cursor_close(c);
	rc = db_table_check(table, &r);
	if (rc != 0)
		fail_msg("check: %s", wd_last_error());
	assert_int_equal(wd_commit(x), 0);
	free(want);
}

static void test_writers_and_readers(void **state)
{
	char *root = tu_tmpdir("api-conc");
	pthread_t wt[WRITERS], rt[READERS];
	struct writer_arg wa[WRITERS];
	wd_options o;
	wd_txn *x;
	(void)state;
	wd_options_default(&o);
	o.page_size = PS;
	o.buffer_pool_bytes = 96u * PS; /* small: eviction under the threads */
	o.wal_segment_size = 1u << 20;
	o.wal_buffers_bytes = 1u << 20;
	o.wal_init_zero = 0;
	o.synchronous_commit = 0;
	assert_int_equal(wd_open(root, &o, &db), 0);
	assert_int_equal(wd_begin(db, &x), 0);
	assert_int_equal(wd_table_open(x, "conc", WD_CREATE, &table), 0);
	assert_int_equal(wd_commit(x), 0);
	atomic_store(&writers_left, WRITERS);
	for (unsigned w = 0; w < WRITERS; w++) {
		wa[w] = (struct writer_arg){w, SANITIZED ? 6000 : 25000};
		assert_int_equal(pthread_create(&wt[w], NULL, writer, &wa[w]), 0);
	}
	for (uintptr_t r = 0; r < READERS; r++)
		assert_int_equal(pthread_create(&rt[r], NULL, reader, (void *)(r + 77)), 0);
	for (unsigned w = 0; w < WRITERS; w++)
		pthread_join(wt[w], NULL);
	for (unsigned r = 0; r < READERS; r++)
		pthread_join(rt[r], NULL);
	if (atomic_load(&reader_errors))
		fail_msg("%u errors; first: %s", atomic_load(&reader_errors), first_error);
	print_message("%u writers x %u ops, %lu reads, %lu scans of %lu items, "
		      "%lu deadlocks\n", WRITERS, wa[0].ops, atomic_load(&reads_done),
		      atomic_load(&scans_done), atomic_load(&scanned),
		      atomic_load(&deadlocks));
	/* the readers really read, whatever the speed of the writers */
	assert_true(atomic_load(&reads_done) >= READERS * MIN_GETS);
	assert_true(atomic_load(&scans_done) >= READERS * MIN_SCANS);
	assert_true(atomic_load(&scanned) > 0);
	check_final();
	assert_int_equal(wd_close(db), 0);
	assert_int_equal(wd_open(root, &o, &db), 0);
	check_final();
	assert_int_equal(wd_close(db), 0);
	tu_rmrf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writers_and_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
