/*
 * test_checkpoint_conc.c - wd_checkpoint while 4 threads put, delete,
 * commit and abort (txn/README.md P17: the table of active transactions
 * read while they run), built for TSan too; then the process dies mid
 * workload with a long transaction open, and a reopen must hold exactly
 * the acknowledged commits (or, for each thread, the one in flight), and
 * nothing of the long transaction.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include "tests/lib/waltest.h"
#include "walden.h"

#define NTHREADS 4
#define NKEYS 32
#define NCKPT 6
#define ABSENT (-1)

/* Shared with the parent (tw_shared): what each thread's commits left. */
struct shared {
	int32_t acked[NTHREADS][NKEYS];  /* value seq, or ABSENT */
	int32_t fly_key[NTHREADS];       /* the key in flight, or -1 */
	int32_t fly_val[NTHREADS];       /* its value if that commit lands */
	uint32_t commits[NTHREADS];
	uint32_t checkpoints;
};

struct worker {
	wd_db *db;
	wd_table *t;
	volatile struct shared *sh;
	int id;
	atomic_bool *stop;
};

static void opts(wd_options *o)
{
	wd_options_default(o);
	o->page_size = 4096;
	o->buffer_pool_bytes = 128u * 4096;
	o->wal_segment_size = 256u << 10;
	o->wal_buffers_bytes = 1u << 20;
	o->wal_init_zero = 0;
}

static void key_of(char *k, int id, int key)
{
	snprintf(k, 32, "t%d-%03d", id, key);
}

/* One transaction: put (value seq) or delete one key, sometimes aborted. */
static void one_txn(struct worker *w, uint32_t seq, uint64_t *rng)
{
	int key = (int)(tu_rand(rng) % NKEYS), rc;
	bool del = seq % 4 == 0, abort_it = seq % 7 == 0;
	char k[32], v[32];
	wd_txn *x;
	key_of(k, w->id, key);
	snprintf(v, sizeof v, "%u", seq);
	COK(wd_begin(w->db, &x));
	rc = del ? wd_del(x, w->t, k, strlen(k)) : wd_put(x, w->t, k, strlen(k), v, strlen(v));
	if (rc != 0 && !(del && rc == WD_NOTFOUND))
		COK(rc);
	if (abort_it) {
		COK(wd_abort(x));
		return;
	}
	w->sh->fly_val[w->id] = del ? ABSENT : (int32_t)seq;
	w->sh->fly_key[w->id] = key; /* from here the commit may land */
	COK(wd_commit(x));
	w->sh->acked[w->id][key] = del ? ABSENT : (int32_t)seq;
	w->sh->fly_key[w->id] = -1;
	w->sh->commits[w->id]++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = 1000 + (uint64_t)w->id;
	for (uint32_t seq = 1; !atomic_load(w->stop); seq++)
		one_txn(w, seq, &rng);
	return NULL;
}

static void nap_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

struct child_args {
	const char *dir;
	volatile struct shared *sh;
};

/* The child: workers run; the main thread writes a long transaction L
 * between checkpoints; then the process dies with everything running. */
static void run_child(void *arg)
{
	struct child_args *a = arg;
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	atomic_bool stop = false;
	wd_options o;
	wd_db *db;
	wd_txn *l;
	wd_table *t;
	char k[32];
	opts(&o);
	COK(wd_open(a->dir, &o, &db));
	COK(wd_begin(db, &l));
	COK(wd_table_open(l, "t", WD_CREATE, &t));
	COK(wd_commit(l));
	COK(wd_begin(db, &l));
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){db, t, a->sh, i, &stop};
		if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
			_exit(5);
	}
	for (int c = 0; c < NCKPT; c++) {
		for (int i = 0; i < 20; i++) {
			snprintf(k, sizeof k, "L-%d-%d", c, i);
			COK(wd_put(l, t, k, strlen(k), "LONG", 4));
		}
		nap_ms(50);
		COK(wd_checkpoint(db));
		a->sh->checkpoints++;
	}
	nap_ms(50);
	_exit(0); /* killed mid workload: L open, workers committing */
}

static void test_checkpoint_under_load(void **state)
{
	char *root = tu_tmpdir("ckpt-conc");
	char *dir = tu_path(root, "db");
	volatile struct shared *sh = tw_shared(sizeof *sh);
	struct child_args a = {dir, sh};
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	char k[32], v[32];
	(void)state;
	for (int i = 0; i < NTHREADS; i++) {
		sh->fly_key[i] = -1;
		for (int j = 0; j < NKEYS; j++)
			sh->acked[i][j] = ABSENT;
	}
	assert_int_equal(tu_run_child(run_child, &a), 0);
	assert_int_equal(sh->checkpoints, NCKPT);
	opts(&o);
	assert_int_equal(wd_open(dir, &o, &db), 0);
	assert_int_equal(wd_begin(db, &x), 0);
	assert_int_equal(wd_table_open(x, "t", 0, &t), 0);
	for (int i = 0; i < NTHREADS; i++) {
		assert_true(sh->commits[i] > 0);
		for (int j = 0; j < NKEYS; j++) {
			size_t n = 0;
			int rc, got;
			key_of(k, i, j);
			rc = wd_get(x, t, k, strlen(k), v, sizeof v - 1, &n);
			assert_true(rc == 0 || rc == WD_NOTFOUND);
			v[rc == 0 ? n : 0] = 0;
			got = rc == 0 ? atoi(v) : ABSENT;
			if (got != sh->acked[i][j] &&
			    !(sh->fly_key[i] == j && got == sh->fly_val[i]))
				fail_msg("%s: %d, acknowledged %d", k, got, sh->acked[i][j]);
		}
	}
	for (int c = 0; c < NCKPT; c++)
		for (int i = 0; i < 20; i++) {
			size_t n;
			snprintf(k, sizeof k, "L-%d-%d", c, i);
			assert_int_equal(wd_get(x, t, k, strlen(k), v, sizeof v, &n), WD_NOTFOUND);
		}
	assert_int_equal(wd_commit(x), 0);
	assert_int_equal(wd_close(db), 0);
	tw_shared_free((void *)sh, sizeof *sh);
	tu_rmrf(root);
	free(dir);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checkpoint_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
