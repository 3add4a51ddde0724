/*
 * test_wal_conc.c - many threads inserting and committing at once (also
 * run under ThreadSanitizer): every record present exactly once, at the
 * LSN its inserter was given, in order, with no gap or overlap; and a
 * commit never returns before every record below it is durable, checked
 * against the files after a power loss that drops every unsynced write;
 * and a disk that fills up under them and frees again: nobody hangs,
 * nothing is lost, no panic.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/wal.h"

#define NTHREADS 8
#define PER_THREAD 150

static char *root, *db;

static int setup(void **state)
{
	(void)state;
	root = tu_tmpdir("walconc");
	db = tu_path(root, "db");
	assert_int_equal(storage_mkdir(db), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	storage_fault_clear();
	tu_rmrf(root);
	free(root);
	free(db);
	return 0;
}

struct worker {
	wal *w;
	uint32_t tid;
	int fd;              /* report pipe, or -1 */
	int count;           /* records to insert (0: until killed) */
	wd_lsn lsns[PER_THREAD];
	int errors;          /* failed calls or early returns seen */
};

/* One thread: records of varied size (some larger than the buffers),
 * every third committed synchronously, others asynchronously; after each
 * synchronous commit the flushed position must already cover it. */
static void *worker_main(void *arg)
{
	struct worker *t = arg;
	wal_rec_builder b = {0};
	uint64_t seed = t->tid + 1;
	for (int i = 0; t->count == 0 || i < t->count; i++) {
		uint32_t pad = (uint32_t)(tu_rand(&seed) % 900);
		uint8_t *rec;
		uint32_t len;
		wd_lsn l;
		if (tu_rand(&seed) % 61 == 0)
			pad = 70000;
		tw_record(&b, t->tid, (uint64_t)i, pad, &rec, &len);
		if (wal_insert(t->w, rec, len, &l) != 0) {
			t->errors++;
			break;
		}
		if (i < PER_THREAD)
			t->lsns[i] = l;
		if (wal_commit(t->w, l, i % 3 == 0) != 0 ||
		    (i % 3 == 0 && wal_flushed_lsn(t->w) <= l)) {
			t->errors++;
			break;
		}
		if (t->fd >= 0 && i % 3 == 0 && write(t->fd, &l, sizeof l) != sizeof l)
			break;
	}
	walrec_free(&b);
	return NULL;
}

/* Runs NTHREADS workers on w until they finish. */
static void run_workers(wal *w, struct worker *t, int fd, int count)
{
	pthread_t th[NTHREADS];
	for (uint32_t i = 0; i < NTHREADS; i++) {
		t[i] = (struct worker){.w = w, .tid = i + 1, .fd = fd, .count = count};
		pthread_create(&th[i], NULL, worker_main, &t[i]);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
}

/* Checks the log read back: every thread's records form a prefix 0..m of
 * its numbers, each once, in LSN order (the reader only moves forward and
 * stops at the first gap). Returns how many records of thread tid. */
static void check_prefixes(const tw_rec *r, size_t n, uint64_t *per)
{
	memset(per, 0, sizeof(uint64_t) * (NTHREADS + 1));
	for (size_t i = 0; i < n; i++) {
		assert_true(r[i].tid >= 1 && r[i].tid <= NTHREADS);
		assert_true(r[i].pad_ok);
		assert_int_equal(r[i].seq, per[r[i].tid]); /* once, in order */
		per[r[i].tid]++;
		assert_true(i == 0 || r[i].lsn == r[i - 1].end); /* no gap */
	}
}

/* 8 threads in one process: all 1200 records present exactly once at the
 * LSNs they were given. */
static void test_threads_all_present(void **state)
{
	static struct worker t[NTHREADS];
	wal_counters st;
	uint64_t per[NTHREADS + 1];
	wal_opts o;
	wal *w;
	tw_rec *r;
	size_t n;
	wd_lsn end;
	bool clean;
	(void)state;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 5;
	assert_int_equal(wal_create(db, &o, &w), 0);
	run_workers(w, t, -1, PER_THREAD);
	wal_stats(w, &st);
	assert_int_equal(st.records, NTHREADS * PER_THREAD);
	assert_int_equal(wal_close(w), 0);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(t[i].errors, 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	assert_int_equal(n, NTHREADS * PER_THREAD);
	assert_true(clean);
	check_prefixes(r, n, per);
	for (size_t i = 0; i < n; i++)
		assert_true(r[i].lsn == t[r[i].tid - 1].lsns[r[i].seq]);
	assert_true(st.buffer_waits > 0); /* the wrap path was exercised */
	free(r);
}

struct crash_case {
	const char *journal;
	int fd;
};

/* Child: tracks for power loss, runs the workers forever, reporting each
 * synchronous commit's LSN once wal_commit returned. */
static void child_workers(void *arg)
{
	static struct worker t[NTHREADS];
	struct crash_case *c = arg;
	wal_opts o;
	wal *w;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 5;
	if (storage_sim_start(c->journal) != 0 || wal_create(db, &o, &w) != 0)
		_exit(1);
	run_workers(w, t, c->fd, 0);
	_exit(2);
}

/* A killed child's acknowledged commits are all in the log after a power
 * loss that drops every unsynced write: a flush never returns early. */
static void test_commit_never_early(void **state)
{
	static const int kill_after[] = {40, 150, 400};
	(void)state;
	for (unsigned k = 0; k < 3; k++) {
		char *journal = tu_path(root, "journal");
		st_sim_opts so = {.mode = ST_SIM_DROP_ALL};
		uint64_t per[NTHREADS + 1];
		wd_lsn acked = 0, l, end;
		int fds[2], got = 0;
		struct crash_case c;
		wal_opts o;
		tw_rec *r;
		size_t n;
		bool clean;
		pid_t pid;
		tu_rmrf(db);
		assert_int_equal(storage_mkdir(db), 0);
		assert_int_equal(storage_mkdir(journal), 0);
		assert_int_equal(pipe(fds), 0);
		c = (struct crash_case){journal, fds[1]};
		pid = tw_spawn(child_workers, &c);
		close(fds[1]);
		while (got < kill_after[k] && read(fds[0], &l, sizeof l) == sizeof l)
			got++, acked = l > acked ? l : acked;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (read(fds[0], &l, sizeof l) == sizeof l)
			acked = l > acked ? l : acked;
		close(fds[0]);
		assert_int_equal(got, kill_after[k]);
		assert_int_equal(storage_sim_materialize(journal, &so, NULL), 0);
		tw_opts(&o);
		assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
		assert_true(end > acked); /* the latest acknowledged commit is there */
		check_prefixes(r, n, per);
		free(r);
		tu_rmrf(journal);
		free(journal);
	}
}

struct enospc_worker {
	wal *w;
	uint32_t tid;
	int enospc;          /* WD_ENOSPC returns seen (retried) */
	int errors;          /* any other failure */
	_Atomic int commits; /* acknowledged synchronous commits */
};

/* One thread while the disk fills and frees: PER_THREAD records, each
 * retried after WD_ENOSPC (nothing was inserted), every third committed
 * synchronously; a commit failing with WD_ENOSPC is not acknowledged
 * (a later flush covers the record). */
static void *enospc_main(void *arg)
{
	struct enospc_worker *t = arg;
	wal_rec_builder b = {0};
	uint64_t seed = t->tid + 7;
	for (int i = 0; i < PER_THREAD; i++) {
		uint32_t pad = (uint32_t)(tu_rand(&seed) % 900);
		uint8_t *rec;
		uint32_t len;
		wd_lsn l;
		int rc;
		if (tu_rand(&seed) % 61 == 0)
			pad = 70000;
		tw_record(&b, t->tid, (uint64_t)i, pad, &rec, &len);
		while ((rc = wal_insert(t->w, rec, len, &l)) == WD_ENOSPC) {
			t->enospc++;
			usleep(1000);
		}
		if (rc != 0) {
			t->errors++;
			break;
		}
		if (i % 3 != 0)
			continue;
		rc = wal_commit(t->w, l, true);
		if (rc == WD_ENOSPC)
			t->enospc++;
		else if (rc != 0 || wal_flushed_lsn(t->w) <= l)
			t->errors++;
		else
			atomic_fetch_add(&t->commits, 1);
	}
	walrec_free(&b);
	return NULL;
}

struct fired_since {
	uint64_t base, n;
};

static bool faults_fired(void *arg)
{
	struct fired_since *f = arg;
	return storage_fault_fired() >= f->base + f->n;
}

static bool some_commits(void *arg)
{
	struct enospc_worker *t = arg;
	int n = 0;
	for (int i = 0; i < NTHREADS; i++)
		n += atomic_load(&t[i].commits);
	return n >= 20;
}

/* DESIGN.md section 6, ENOSPC, with 8 threads and the WAL writer: after
 * some commits every WAL write fails with ENOSPC until 50 writes have
 * failed, then space returns. Every thread finishes (no committer or
 * inserter hangs), the log never panics, and all 1200 records are there,
 * each once, in per-thread order, with no gap (README I10). */
static void test_enospc_threads(void **state)
{
	static struct enospc_worker t[NTHREADS];
	struct fired_since f;
	pthread_t th[NTHREADS];
	uint64_t per[NTHREADS + 1];
	wal_opts o;
	wal *w;
	tw_rec *r;
	size_t n;
	wd_lsn end;
	bool clean;
	(void)state;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 5;
	assert_int_equal(wal_create(db, &o, &w), 0);
	for (uint32_t i = 0; i < NTHREADS; i++) {
		t[i] = (struct enospc_worker){.w = w, .tid = i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, enospc_main, &t[i]), 0);
	}
	assert_true(tw_wait_for(some_commits, t, 60));
	f = (struct fired_since){storage_fault_fired(), 50};
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, "/wal/"), 0);
	assert_true(tw_wait_for(faults_fired, &f, 60));
	storage_fault_clear(); /* space returns */
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(t[i].errors, 0);
	assert_false(wal_is_panicked(w));
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	assert_int_equal(n, NTHREADS * PER_THREAD);
	assert_true(clean);
	check_prefixes(r, n, per);
	free(r);
}

/* ---- the redo point moved under inserters (README I11) ---- */

#define FPW_PER_THREAD 3000
#define FPW_MAX_REDOS (1u << 20)
#define FPW_PAD_PLAIN 8u  /* a record "without an image" */
#define FPW_PAD_IMAGE 48u /* ... "with one" */

struct fpw_worker {
	wal *w;
	uint32_t tid;
	int errors;
	uint64_t retries;
};

static _Atomic unsigned fpw_running;

/*
 * One thread changing its own "page" (pageLSN = its previous record, 0 for
 * a new page, which needs no image): decides as wal_log_needs_image does,
 * records the decision in the record's size, inserts with the page's LSN as
 * fpw_lsn when without an image, and decides again on WAL_INSERT_RETRY.
 */
static void *fpw_main(void *arg)
{
	struct fpw_worker *t = arg;
	wal_rec_builder b = {0};
	wd_lsn page = 0, l = 0;
	int rc = 0;
	for (uint64_t i = 0; i < FPW_PER_THREAD && rc == 0; i++) {
		do {
			bool image = page != 0 && page < wal_redo_point(t->w);
			uint8_t *rec;
			uint32_t len;
			tw_record(&b, t->tid, i, image ? FPW_PAD_IMAGE : FPW_PAD_PLAIN, &rec, &len);
			rc = wal_insert_fpw(t->w, rec, len, page == 0 || image ? WAL_FPW_NONE : page,
					    &l);
			t->retries += rc == WAL_INSERT_RETRY;
		} while (rc == WAL_INSERT_RETRY);
		page = l;
	}
	t->errors += rc != 0;
	atomic_fetch_sub(&fpw_running, 1);
	walrec_free(&b);
	return NULL;
}

/* The largest of the sorted redo points r[0..n) at or below lsn (0: none). */
static wd_lsn redo_in_force(const wd_lsn *r, size_t n, wd_lsn lsn)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r[mid] <= lsn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? r[lo - 1] : 0;
}

/*
 * 8 threads insert records for their own pages while the main thread
 * moves the redo point as fast as it can (wal_set_redo_point). Afterwards,
 * read back: every record without an image whose page was changed before
 * (its thread's previous record) has that previous change at or after the
 * redo point in force at its LSN (the largest one set at or below it):
 * wal_set_redo_point is atomic with respect to reservations, and the
 * recheck refuses every record that would break this. All records once,
 * in per-thread order.
 */
static void test_redo_point_moves_under_inserts(void **state)
{
	static struct fpw_worker t[NTHREADS];
	static wd_lsn redos[FPW_MAX_REDOS], prev[NTHREADS + 1];
	pthread_t th[NTHREADS];
	wal_rec_builder b = {0};
	uint64_t retries = 0, checked = 0, plain_len;
	size_t nredo = 0, n;
	uint8_t *rec;
	uint32_t len;
	wal_opts o;
	wal *w;
	tw_rec *r;
	wd_lsn end;
	bool clean;
	(void)state;
	tw_record(&b, 1, 0, FPW_PAD_PLAIN, &rec, &len);
	plain_len = len;
	walrec_free(&b);
	tw_opts(&o);
	o.buffers_bytes = 1024 * 1024;
	assert_int_equal(wal_create(db, &o, &w), 0);
	atomic_store(&fpw_running, NTHREADS);
	for (uint32_t i = 0; i < NTHREADS; i++) {
		t[i] = (struct fpw_worker){.w = w, .tid = i + 1};
		assert_int_equal(pthread_create(&th[i], NULL, fpw_main, &t[i]), 0);
	}
	while (atomic_load(&fpw_running) > 0 && nredo < FPW_MAX_REDOS) {
		wd_lsn redo;
		assert_int_equal(wal_set_redo_point(w, &redo), 0);
		if (nredo == 0 || redo != redos[nredo - 1]) {
			assert_true(nredo == 0 || redo > redos[nredo - 1]);
			redos[nredo++] = redo;
		}
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].errors, 0);
		retries += t[i].retries;
	}
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	assert_int_equal(n, NTHREADS * FPW_PER_THREAD);
	assert_true(clean);
	memset(prev, 0, sizeof prev);
	for (size_t i = 0; i < n; i++) {
		assert_true(r[i].tid >= 1 && r[i].tid <= NTHREADS);
		if (r[i].len == plain_len && prev[r[i].tid] != 0) {
			wd_lsn in_force = redo_in_force(redos, nredo, r[i].lsn);
			if (prev[r[i].tid] < in_force)
				fail_msg("record at %llu without an image, its page last changed "
					 "at %llu, before the redo point %llu in force",
					 (unsigned long long)r[i].lsn,
					 (unsigned long long)prev[r[i].tid],
					 (unsigned long long)in_force);
			checked++;
		}
		prev[r[i].tid] = r[i].lsn;
	}
	print_message("%zu redo points, %llu records checked, %llu inserts refused\n", nredo,
		      (unsigned long long)checked, (unsigned long long)retries);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_threads_all_present, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_never_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redo_point_moves_under_inserts, setup, teardown),
	};
	return cmocka_run_group_tests_name("wal_conc", tests, NULL, NULL);
}
