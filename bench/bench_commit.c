/*
 * bench_commit.c - `walden bench commit`: durable commits per second (a
 * commit = insert one XACT_COMMIT-sized record + wal_commit synchronous) at
 * 1..64 threads, against the rate the measured fdatasync latency of a
 * preallocated file on the same disk allows; asynchronous commits on one
 * thread and the async loss window (largest gap between a commit's
 * acknowledgement and the flush that made it durable); LMDB durable commits
 * (one small put per transaction, default sync) at 1 and 16 threads, all in
 * the same run. Medians of --runs runs.
 *
 * Entry point: bench_commit_main.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "wal/record.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define MAX_THREADS 16
#define MAX_RUNS 101

struct commit_opts {
	int runs;
	double seconds;
	int threads[MAX_THREADS];
	int nthreads;
	bool json;
	const char *base;
};

static void commit_usage(FILE *f, const char *name)
{
	fprintf(f,
		"usage: walden bench %s [options]\n"
		"Durable WAL commits/s at several thread counts against the fdatasync\n"
		"rate of the same disk; async commits/s and the async loss window;\n"
		"LMDB durable commits at 1 and 16 threads. A table and a JSON line.\n"
		"  -r, --runs N         runs; medians are reported (default 3)\n"
		"  -s, --seconds S      seconds per measurement (default 1)\n"
		"  -t, --threads LIST   thread counts (default 1,2,4,16,64)\n"
		"  -d, --dir DIR        scratch directory base (default $TMPDIR or\n"
		"                       /var/tmp; must be a real disk, not tmpfs)\n"
		"  -j, --json           print only the JSON line\n"
		"  -h, --help           this text\n",
		name);
}

/* Parses "1,2,4" into o->threads. false if malformed. */
static bool parse_threads(const char *s, struct commit_opts *o)
{
	char *copy = strdup(s), *save = NULL, *tok;
	o->nthreads = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long long v = bench_parse_count(tok);
		if (v <= 0 || v > 1024 || o->nthreads == MAX_THREADS) {
			free(copy);
			return false;
		}
		o->threads[o->nthreads++] = (int)v;
	}
	free(copy);
	return o->nthreads > 0;
}

/* Parses argv into o. Returns 0, 1 after --help, 2 on misuse. */
static int commit_parse(int argc, char **argv, struct commit_opts *o)
{
	static const struct option longopts[] = {
		{"runs", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 's'},
		{"threads", required_argument, NULL, 't'},
		{"dir", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	*o = (struct commit_opts){.runs = 3, .seconds = 1.0, .threads = {1, 2, 4, 16, 64},
				  .nthreads = 5};
	optind = 0;
	while ((c = getopt_long(argc, argv, "r:s:t:d:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': o->runs = (int)bench_parse_count(optarg); break;
		case 's': o->seconds = atof(optarg); break;
		case 't':
			if (!parse_threads(optarg, o))
				o->runs = -1;
			break;
		case 'd': o->base = optarg; break;
		case 'j': o->json = true; break;
		case 'h': commit_usage(stdout, argv[0]); return 1;
		default: commit_usage(stderr, argv[0]); return 2;
		}
	}
	if (optind < argc || o->runs <= 0 || o->runs > MAX_RUNS || o->seconds <= 0 ||
	    o->seconds > 600) {
		commit_usage(stderr, argv[0]);
		return 2;
	}
	return 0;
}

/* ---- the fdatasync reference ---------------------------------------------- */

/* Median ns of (pwrite 128 B at the next offset + fdatasync) on a file
 * preallocated by zero-filling (prealloc) or growing with each write. */
static double fsync_latency(const char *dir, bool prealloc, double seconds)
{
	char path[4096];
	static double lat[200000];
	uint8_t blk[128];
	size_t n = 0;
	uint64_t t_end;
	int fd;
	snprintf(path, sizeof path, "%s/fsync-ref", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	memset(blk, 0x5A, sizeof blk);
	if (prealloc) {
		static uint8_t zero[1 << 20];
		for (int i = 0; i < 16; i++)
			if (pwrite(fd, zero, sizeof zero, (off_t)i << 20) != (ssize_t)sizeof zero)
				return -1;
		fdatasync(fd);
	}
	t_end = bench_now_ns() + (uint64_t)(seconds * 1e9);
	while (n < 200000 && n * sizeof blk < (15u << 20) && bench_now_ns() < t_end) {
		uint64_t t0 = bench_now_ns();
		if (pwrite(fd, blk, sizeof blk, (off_t)(n * sizeof blk)) != (ssize_t)sizeof blk ||
		    fdatasync(fd) != 0)
			return -1;
		lat[n++] = (double)(bench_now_ns() - t0);
	}
	close(fd);
	unlink(path);
	return bench_median(lat, n);
}

/* ---- walden commits --------------------------------------------------------- */

struct commit_run {
	wal *w;
	_Atomic bool stop;
	bool synchronous;
	pthread_barrier_t *start;
	_Atomic uint64_t commits;
	int rc;
	/* async loss window: acknowledgements and flushes, in order */
	uint64_t (*acks)[2];
	size_t nacks, cap;
	uint64_t (*flushes)[2];
	size_t nflushes, fcap;
};

/* Builds an XACT_COMMIT-sized record (header + 16 bytes of main data). */
static void commit_record(wal_rec_builder *b, uint8_t **rec, uint32_t *len)
{
	uint8_t main_data[16] = {0};
	walrec_begin(b, WAL_RMGR_XACT, XACT_COMMIT, 1, 0, 0, 0);
	if (walrec_set_main(b, main_data, sizeof main_data) != 0 ||
	    walrec_assemble(b, rec, len) != 0)
		abort();
}

static void *committer(void *arg)
{
	struct commit_run *cr = arg;
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	commit_record(&b, &rec, &len);
	pthread_barrier_wait(cr->start);
	while (!atomic_load_explicit(&cr->stop, memory_order_relaxed)) {
		wd_lsn lsn;
		int rc = wal_insert(cr->w, rec, len, &lsn);
		if (rc == 0)
			rc = wal_commit(cr->w, lsn, cr->synchronous);
		if (rc != 0) {
			cr->rc = rc;
			break;
		}
		if (cr->acks && cr->nacks < cr->cap) {
			cr->acks[cr->nacks][0] = lsn;
			cr->acks[cr->nacks++][1] = bench_now_ns();
		}
		atomic_fetch_add_explicit(&cr->commits, 1, memory_order_relaxed);
	}
	walrec_free(&b);
	return NULL;
}

/* Records every flush for the loss window (flushes are serialised). */
static void on_flush(void *arg, wd_lsn flushed, uint64_t now_ns)
{
	struct commit_run *cr = arg;
	if (cr->nflushes < cr->fcap) {
		cr->flushes[cr->nflushes][0] = flushed;
		cr->flushes[cr->nflushes++][1] = now_ns;
	}
}

/* The largest gap between an acknowledged commit and the first flush past
 * it, in ns (both lists are in order). */
static double loss_window(const struct commit_run *cr)
{
	size_t f = 0;
	uint64_t worst = 0;
	for (size_t i = 0; i < cr->nacks; i++) {
		while (f < cr->nflushes && cr->flushes[f][0] <= cr->acks[i][0])
			f++;
		if (f == cr->nflushes)
			break;
		if (cr->flushes[f][1] > cr->acks[i][1] && cr->flushes[f][1] - cr->acks[i][1] > worst)
			worst = cr->flushes[f][1] - cr->acks[i][1];
	}
	return (double)worst;
}

/* One measurement in a fresh database under dir: commits/s of nthreads
 * committers for `seconds`; async: also *window_ns. -1 on error. */
static double wal_commit_rate(const char *dir, int nthreads, bool synchronous,
			      double seconds, double *window_ns)
{
	static int seq;
	char db[4096];
	wal_opts o;
	pthread_t *th = calloc((size_t)nthreads, sizeof *th);
	pthread_barrier_t start;
	struct commit_run cr = {.synchronous = synchronous, .start = &start};
	uint64_t t0, t1;
	double rate = -1;

	snprintf(db, sizeof db, "%s/db%d", dir, seq++);
	if (mkdir(db, 0755) != 0)
		goto out;
	wal_opts_default(&o);
	if (!synchronous) {
		cr.cap = 20000000;
		cr.acks = malloc(cr.cap * sizeof *cr.acks);
		cr.fcap = 1000000;
		cr.flushes = malloc(cr.fcap * sizeof *cr.flushes);
		o.on_flush = on_flush;
		o.on_flush_arg = &cr;
	}
	if (wal_create(db, &o, &cr.w) != 0)
		goto out;
	usleep(100000); /* let the writer prepare the next segment */
	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, committer, &cr);
	pthread_barrier_wait(&start);
	t0 = bench_now_ns();
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&cr.stop, true);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	t1 = bench_now_ns();
	pthread_barrier_destroy(&start);
	if (!synchronous) /* let the writer flush the last commits itself */
		while (cr.nacks && wal_flushed_lsn(cr.w) <= cr.acks[cr.nacks - 1][0])
			usleep(1000);
	if (cr.rc == 0)
		rate = (double)atomic_load(&cr.commits) * 1e9 / (double)(t1 - t0);
	if (window_ns)
		*window_ns = loss_window(&cr);
	if (wal_close(cr.w) != 0)
		rate = -1;
out:
	free(cr.acks);
	free(cr.flushes);
	free(th);
	return rate;
}

/* ---- LMDB ------------------------------------------------------------------ */

struct lmdb_run {
	MDB_env *env;
	MDB_dbi dbi;
	_Atomic bool stop;
	_Atomic uint64_t commits;
	pthread_barrier_t *start;
	int id;
};

static void *lmdb_committer(void *arg)
{
	struct lmdb_run *lr = arg;
	uint64_t k = (uint64_t)__atomic_fetch_add(&lr->id, 1, __ATOMIC_RELAXED) << 40;
	char val[50] = {0};
	pthread_barrier_wait(lr->start);
	while (!atomic_load_explicit(&lr->stop, memory_order_relaxed)) {
		MDB_txn *txn;
		MDB_val key = {sizeof k, &k}, v = {sizeof val, val};
		k++;
		if (mdb_txn_begin(lr->env, NULL, 0, &txn) != 0)
			break;
		if (mdb_put(txn, lr->dbi, &key, &v, 0) != 0 || mdb_txn_commit(txn) != 0)
			break;
		atomic_fetch_add_explicit(&lr->commits, 1, memory_order_relaxed);
	}
	return NULL;
}

/* LMDB durable commits/s (default flags: sync on commit). -1 on error. */
static double lmdb_rate(const char *dir, int nthreads, double seconds)
{
	static int seq;
	char path[4096];
	struct lmdb_run lr = {0};
	pthread_barrier_t start;
	pthread_t th[64];
	MDB_txn *txn;
	uint64_t t0, t1;
	snprintf(path, sizeof path, "%s/lmdb%d", dir, seq++);
	if (mkdir(path, 0755) != 0 || mdb_env_create(&lr.env) != 0)
		return -1;
	mdb_env_set_mapsize(lr.env, 1ull << 30);
	if (mdb_env_open(lr.env, path, 0, 0644) != 0 || mdb_txn_begin(lr.env, NULL, 0, &txn) != 0 ||
	    mdb_dbi_open(txn, NULL, 0, &lr.dbi) != 0 || mdb_txn_commit(txn) != 0) {
		mdb_env_close(lr.env);
		return -1;
	}
	lr.start = &start;
	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, lmdb_committer, &lr);
	pthread_barrier_wait(&start);
	t0 = bench_now_ns();
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&lr.stop, true);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	t1 = bench_now_ns();
	pthread_barrier_destroy(&start);
	mdb_env_close(lr.env);
	return (double)atomic_load(&lr.commits) * 1e9 / (double)(t1 - t0);
}

/* ---- driver ----------------------------------------------------------------- */

enum { R_FSYNC_PRE, R_FSYNC_GROW, R_ASYNC, R_WINDOW, R_LMDB1, R_LMDB16, R__FIXED };
#define R_SYNC(i) (R__FIXED + (i))

/* One run of every measurement into r. -1 on error. */
static int commit_measure(const struct commit_opts *o, const char *dir, double *r)
{
	r[R_FSYNC_PRE] = fsync_latency(dir, true, o->seconds);
	r[R_FSYNC_GROW] = fsync_latency(dir, false, o->seconds);
	for (int i = 0; i < o->nthreads; i++)
		if ((r[R_SYNC(i)] = wal_commit_rate(dir, o->threads[i], true, o->seconds, NULL)) < 0)
			return -1;
	r[R_ASYNC] = wal_commit_rate(dir, 1, false, o->seconds, &r[R_WINDOW]);
	r[R_LMDB1] = lmdb_rate(dir, 1, o->seconds);
	r[R_LMDB16] = lmdb_rate(dir, 16, o->seconds);
	for (int m = 0; m < R__FIXED; m++)
		if (r[m] < 0)
			return -1;
	return 0;
}

/* The measured rate at `threads` threads, or 0 if not measured. */
static double at_threads(const struct commit_opts *o, const double *med, int threads)
{
	for (int i = 0; i < o->nthreads; i++)
		if (o->threads[i] == threads)
			return med[R_SYNC(i)];
	return 0;
}

static void commit_report(const struct commit_opts *o, const char *dir, const char *fs,
			  const double *med)
{
	double allowed = 1e9 / med[R_FSYNC_PRE], one = at_threads(o, med, 1);
	double t16 = at_threads(o, med, 16), t64 = at_threads(o, med, 64), best = 0;
	bool m1, m16, m64, m50k, masync;
	for (int i = 0; i < o->nthreads; i++)
		best = med[R_SYNC(i)] > best ? med[R_SYNC(i)] : best;
	m1 = one >= 0.9 * allowed;
	m16 = t16 >= 8 * one;
	m64 = t64 >= t16;
	m50k = best >= 50000;
	masync = med[R_ASYNC] >= 300000;
	if (!o->json) {
		printf("bench commit: scratch %s (%s), %d runs x %.2f s (medians)\n", dir, fs,
		       o->runs, o->seconds);
		printf("  fdatasync after a 128 B write, preallocated file: %8.1f us -> %.0f/s\n",
		       med[R_FSYNC_PRE] / 1000, allowed);
		printf("  fdatasync after a 128 B write, growing file:      %8.1f us\n",
		       med[R_FSYNC_GROW] / 1000);
		printf("  %-40s %12s\n", "measurement", "commits/s");
		for (int i = 0; i < o->nthreads; i++)
			printf("  durable commits, %3d thread(s)           %12.0f\n", o->threads[i],
			       med[R_SYNC(i)]);
		printf("  async commits, 1 thread                  %12.0f\n", med[R_ASYNC]);
		printf("  async loss window (max ack -> flush)     %9.1f ms\n", med[R_WINDOW] / 1e6);
		printf("  LMDB durable commits, 1 thread           %12.0f\n", med[R_LMDB1]);
		printf("  LMDB durable commits, 16 threads         %12.0f\n", med[R_LMDB16]);
		printf("  1 thread / fdatasync rate: %.2f (target >= 0.9): %s\n", one / allowed,
		       m1 ? "met" : "NOT met");
		printf("  16 threads / 1 thread: %.1f (target >= 8): %s\n", one ? t16 / one : 0,
		       m16 ? "met" : "NOT met");
		printf("  64 threads / 16 threads: %.2f (target >= 1): %s\n", t16 ? t64 / t16 : 0,
		       m64 ? "met" : "NOT met");
		printf("  best durable rate %.0f/s (target >= 50000): %s\n", best,
		       m50k ? "met" : "NOT met");
		printf("  async 1 thread (target >= 300000/s): %s\n", masync ? "met" : "NOT met");
	}
	printf("{\"bench\":\"commit\",\"dir\":\"%s\",\"fs\":\"%s\",\"runs\":%d,\"seconds\":%.2f,"
	       "\"fdatasync_prealloc_us\":%.1f,\"fdatasync_growing_us\":%.1f,\"fdatasync_rate\":%.0f,"
	       "\"durable\":{",
	       dir, fs, o->runs, o->seconds, med[R_FSYNC_PRE] / 1000, med[R_FSYNC_GROW] / 1000,
	       allowed);
	for (int i = 0; i < o->nthreads; i++)
		printf("%s\"%d\":%.0f", i ? "," : "", o->threads[i], med[R_SYNC(i)]);
	printf("},\"async_1t\":%.0f,\"async_window_ms\":%.2f,\"lmdb_1t\":%.0f,\"lmdb_16t\":%.0f,"
	       "\"targets\":{\"one_vs_fsync\":%s,\"t16_vs_t1\":%s,\"t64_vs_t16\":%s,"
	       "\"best_50k\":%s,\"async_300k\":%s}}\n",
	       med[R_ASYNC], med[R_WINDOW] / 1e6, med[R_LMDB1], med[R_LMDB16],
	       m1 ? "true" : "false", m16 ? "true" : "false", m64 ? "true" : "false",
	       m50k ? "true" : "false", masync ? "true" : "false");
}

/* The scratch base under --dir, $TMPDIR or /var/tmp; and its fs kind. */
static char *commit_dir(const struct commit_opts *o, const char **fs)
{
	bool tmpfs;
	char *dir = bench_disk_dir(o->base, "commit", &tmpfs);
	*fs = tmpfs ? "tmpfs: fdatasync is meaningless here" : "disk";
	return dir;
}

int bench_commit_main(int argc, char **argv)
{
	struct commit_opts o;
	double (*r)[R__FIXED + MAX_THREADS] = NULL, med[R__FIXED + MAX_THREADS], col[MAX_RUNS];
	const char *fs = "";
	char *dir = NULL;
	int rc, status = 1;

	if ((rc = commit_parse(argc, argv, &o)) != 0)
		return rc == 1 ? 0 : 2;
	if (!(dir = commit_dir(&o, &fs))) {
		perror("walden bench commit: scratch directory");
		goto out;
	}
	r = calloc((size_t)o.runs, sizeof *r);
	for (int i = 0; i < o.runs; i++) {
		if (commit_measure(&o, dir, r[i]) != 0) {
			fprintf(stderr, "walden bench commit: %s\n", wd_last_error());
			goto out;
		}
		if (!o.json)
			fprintf(stderr, "run %d/%d done\n", i + 1, o.runs);
	}
	for (int m = 0; m < R__FIXED + o.nthreads; m++) {
		for (int i = 0; i < o.runs; i++)
			col[i] = r[i][m];
		med[m] = bench_median(col, (size_t)o.runs);
	}
	commit_report(&o, dir, fs, med);
	status = 0;
out:
	free(r);
	bench_rmrf(dir);
	free(dir);
	return status;
}
