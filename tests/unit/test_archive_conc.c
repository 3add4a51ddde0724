/*
 * test_archive_conc.c - WAL archiving under concurrency (wal/README.md P7,
 * I12; also run under ThreadSanitizer): committer threads (synchronous and
 * asynchronous commits) and a thread forcing checkpoints, while the
 * archiver thread copies each segment a flush completes and the
 * checkpoints archive what they retire. After a clean close the archive
 * holds every completed segment, archive + live WAL read as one log, and
 * every value the threads left is in the table and in the log.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tests/lib/archtest.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "wal/wal.h"

#define THREADS 4u
#define KEYS 40u   /* per thread */
#define VAL 300u

static wd_db *db;
static wd_table *table;
static atomic_bool done;
static unsigned txns_per_thread;
/* per thread and key: the transaction number of its last value (0: none) */
static uint64_t last[THREADS][KEYS];
/* the first failure of a thread (cmocka fails the test in the main one) */
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_error[512];

/* Notes rc's failure (the first one is kept); returns rc. */
static int note(int rc, const char *what)
{
	if (rc == 0)
		return 0;
	pthread_mutex_lock(&err_mu);
	if (!first_error[0])
		snprintf(first_error, sizeof first_error, "%s: %s (%s)", what, wd_strerror(rc),
			 wd_last_error());
	pthread_mutex_unlock(&err_mu);
	return rc;
}
#define TRY(expr)                                                             \
	do {                                                                  \
		if (note((expr), #expr) != 0)                                 \
			return NULL;                                          \
	} while (0)

/* The value of key k of thread tid written by its transaction n: the tag
 * of (tid << 24 | n, k), then bytes of both. */
static void value_of(unsigned tid, uint64_t n, unsigned k, uint8_t *v)
{
	uint64_t s = (uint64_t)tid << 32 | n << 8 | k;
	at_tag(v, (uint64_t)tid << 24 | n, k);
	for (unsigned i = AT_TAG_LEN; i < VAL; i++)
		v[i] = (uint8_t)tu_rand(&s);
}

static size_t key_of(unsigned tid, unsigned k, char *buf)
{
	return (size_t)snprintf(buf, 16, "t%u-%03u", tid, k);
}

/* Thread tid: transactions 1..txns_per_thread, each putting 1-3 of its own
 * keys; every other one commits asynchronously. */
static void *committer(void *arg)
{
	unsigned tid = (unsigned)(uintptr_t)arg;
	uint64_t s = 77 + tid;
	uint8_t v[VAL];
	char k[16];
	for (uint64_t n = 1; n <= txns_per_thread; n++) {
		unsigned nk = 1 + (unsigned)(tu_rand(&s) % 3), keys[3];
		wd_txn *x;
		TRY(wd_begin(db, &x));
		TRY(wd_txn_set_synchronous(x, n % 2));
		for (unsigned i = 0; i < nk; i++) {
			keys[i] = (unsigned)(tu_rand(&s) % KEYS);
			value_of(tid, n, keys[i], v);
			TRY(wd_put(x, table, k, key_of(tid, keys[i], k), v, VAL));
		}
		TRY(wd_commit(x));
		for (unsigned i = 0; i < nk; i++)
			last[tid][keys[i]] = n;
	}
	return NULL;
}

/* Forced checkpoints, one after the other, until the committers are done. */
static void *checkpoint_loop(void *arg)
{
	unsigned *count = arg;
	while (!atomic_load(&done)) {
		TRY(wd_checkpoint(db));
		++*count;
	}
	return NULL;
}

static void test_archive_under_load(void **state)
{
	char *root = tu_tmpdir("walarch-conc"), *dir = tu_path(root, "db");
	char *arch = tu_path(root, "archive");
	pthread_t th[THREADS], cp;
	unsigned checkpoints = 0;
	uint8_t v[VAL], got[VAL];
	wal_counters c;
	wd_options o;
	at_seen s;
	wd_txn *x;
	(void)state;
	txns_per_thread = (unsigned)(400 * dt_scale());
	assert_int_equal(mkdir(arch, 0755), 0);
	dt_opts(&o, 1);
	o.wal_segment_size = 64u << 10;
	o.wal_buffers_bytes = 1u << 20;
	o.wal_writer_delay_ms = 10;
	o.archive_dir = arch;
	OK(wd_open(dir, &o, &db));
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &table));
	OK(wd_commit(x));
	assert_int_equal(pthread_create(&cp, NULL, checkpoint_loop, &checkpoints), 0);
	for (unsigned t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, committer, (void *)(uintptr_t)t), 0);
	for (unsigned t = 0; t < THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	atomic_store(&done, true);
	assert_int_equal(pthread_join(cp, NULL), 0);
	if (first_error[0])
		fail_msg("%s", first_error);
	wal_stats(db_wal(db), &c);
	assert_true(c.segs_archived > 0);
	assert_int_equal(c.archive_failures, 0);
	OK(wd_close(db));
	at_check_archive(root, dir, arch, &o, &s);
	/* every thread's last value of each key: in the table and in the log */
	OK(wd_open(dir, &o, &db));
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &table));
	for (unsigned t = 0; t < THREADS; t++)
		for (unsigned k = 0; k < KEYS; k++) {
			char key[16];
			size_t kl = key_of(t, k, key), vlen = 0;
			int rc = wd_get(x, table, key, kl, got, sizeof got, &vlen);
			if (!last[t][k]) {
				EXPECT(rc, WD_NOTFOUND);
				continue;
			}
			OK(rc);
			value_of(t, last[t][k], k, v);
			assert_int_equal(vlen, VAL);
			assert_memory_equal(got, v, VAL);
			if (!at_tag_logged(&s, v, VAL))
				fail_msg("%s: its last value is in no WAL record", key);
		}
	OK(wd_commit(x));
	OK(wd_close(db));
	print_message("%u threads x %u transactions, %u checkpoints, %llu segments archived, "
		      "%llu records read back\n", THREADS, txns_per_thread, checkpoints,
		      (unsigned long long)c.segs_archived, (unsigned long long)s.records);
	at_seen_free(&s);
	tu_rmrf(root);
	free(root);
	free(dir);
	free(arch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_archive_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
