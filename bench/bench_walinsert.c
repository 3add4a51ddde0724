/*
 * bench_walinsert.c - `walden bench walinsert`: bytes per second of WAL
 * records appended (wal_insert: reserve, stamp with LSN and CRC, copy into
 * the WAL buffers, write to the OS when the buffers fill) by 1 and 2
 * threads with no flush, beside a memcpy of the same bytes into a buffer of
 * the same size. One 1 GiB fallocated segment, so no segment switch (and no
 * fdatasync) happens inside a run.
 *
 * Entry point: bench_walinsert_main.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "wal/record.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define MAX_RUNS 101

struct wi_opts {
	int runs;
	long long mb;       /* MiB of records per run (all threads) */
	uint32_t rec_bytes; /* main data bytes per record */
	bool json;
};

static void wi_usage(FILE *f, const char *name)
{
	fprintf(f,
		"usage: walden bench %s [options]\n"
		"Bytes/s of WAL records appended by 1 and 2 threads (no flush) beside\n"
		"memcpy of the same bytes. Prints a table and a JSON line.\n"
		"  -r, --runs N        runs; medians are reported (default 5)\n"
		"  -m, --mb N          MiB of records per run (default 256, max 900)\n"
		"  -b, --bytes N       main data bytes per record (default 80)\n"
		"  -j, --json          print only the JSON line\n"
		"  -h, --help          this text\n",
		name);
}

static int wi_parse(int argc, char **argv, struct wi_opts *o)
{
	static const struct option longopts[] = {
		{"runs", required_argument, NULL, 'r'},
		{"mb", required_argument, NULL, 'm'},
		{"bytes", required_argument, NULL, 'b'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	long long v = 1;
	int c;
	*o = (struct wi_opts){.runs = 5, .mb = 256, .rec_bytes = 80};
	optind = 0;
	while ((c = getopt_long(argc, argv, "r:m:b:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': o->runs = (int)(v = bench_parse_count(optarg)); break;
		case 'm': o->mb = v = bench_parse_count(optarg); break;
		case 'b': o->rec_bytes = (uint32_t)(v = bench_parse_count(optarg)); break;
		case 'j': o->json = true; break;
		case 'h': wi_usage(stdout, argv[0]); return 1;
		default: wi_usage(stderr, argv[0]); return 2;
		}
		if (v <= 0) {
			fprintf(stderr, "walden bench %s: bad value '%s'\n", argv[0], optarg);
			return 2;
		}
	}
	if (optind < argc || o->runs > MAX_RUNS || o->mb > 900 || o->rec_bytes > (1u << 20)) {
		wi_usage(stderr, argv[0]);
		return 2;
	}
	return 0;
}

struct wi_thread {
	wal *w;
	uint32_t rec_bytes;
	long long count;
	pthread_barrier_t *start;
	int rc;
};

static void *wi_thread_main(void *arg)
{
	struct wi_thread *t = arg;
	wal_rec_builder b = {0};
	uint8_t *main_data = calloc(1, t->rec_bytes), *rec;
	uint32_t len;
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 1, 0, 0, 0);
	if (walrec_set_main(&b, main_data, t->rec_bytes) != 0 || walrec_assemble(&b, &rec, &len))
		abort();
	pthread_barrier_wait(t->start);
	for (long long i = 0; i < t->count && t->rc == 0; i++) {
		wd_lsn lsn;
		t->rc = wal_insert(t->w, rec, len, &lsn);
	}
	walrec_free(&b);
	free(main_data);
	return NULL;
}

/* The size of one assembled record of rec_bytes main data, aligned. */
static uint32_t wi_rec_size(uint32_t rec_bytes)
{
	wal_rec_builder b = {0};
	uint8_t *main_data = calloc(1, rec_bytes), *rec;
	uint32_t len;
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 1, 0, 0, 0);
	if (walrec_set_main(&b, main_data, rec_bytes) != 0 || walrec_assemble(&b, &rec, &len))
		abort();
	walrec_free(&b);
	free(main_data);
	return wal_align(len);
}

/* Bytes/s appended by nthreads into a fresh log under dir; -1 on error. */
static double wi_run(const char *dir, const struct wi_opts *o, int nthreads)
{
	static int seq;
	char db[4096];
	wal_opts wo;
	struct wi_thread t[2];
	pthread_t th[2];
	pthread_barrier_t start;
	uint64_t t0, t1, recsz = wi_rec_size(o->rec_bytes);
	long long per = ((long long)o->mb << 20) / (long long)recsz / nthreads;
	bool bad = false;
	wal *w;
	snprintf(db, sizeof db, "%s/db%d", dir, seq++);
	wal_opts_default(&wo);
	wo.segment_size = 1u << 30; /* one segment: no switch, no fdatasync */
	wo.init_zero = false;
	wo.no_writer_thread = true;
	if (mkdir(db, 0755) != 0 || wal_create(db, &wo, &w) != 0)
		return -1;
	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		t[i] = (struct wi_thread){w, o->rec_bytes, per, &start, 0};
		pthread_create(&th[i], NULL, wi_thread_main, &t[i]);
	}
	pthread_barrier_wait(&start);
	t0 = bench_now_ns();
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		bad |= t[i].rc != 0;
	}
	t1 = bench_now_ns();
	pthread_barrier_destroy(&start);
	if (wal_close(w) != 0)
		bad = true;
	bench_rmrf(db);
	return bad ? -1 : (double)(per * nthreads) * (double)recsz * 1e9 / (double)(t1 - t0);
}

/* Bytes/s of memcpy of the same records into a 16 MiB circular buffer. */
static double wi_memcpy(const struct wi_opts *o)
{
	uint64_t recsz = wi_rec_size(o->rec_bytes), size = 16u << 20, off = 0;
	long long n = ((long long)o->mb << 20) / (long long)recsz;
	uint8_t *src = calloc(1, recsz), *dst = aligned_alloc(4096, size);
	uint64_t t0, t1;
	memset(dst, 0, size);
	t0 = bench_now_ns();
	for (long long i = 0; i < n; i++) {
		if (off + recsz > size)
			off = 0;
		memcpy(dst + off, src, recsz);
		__asm__ volatile("" : : "r"(dst) : "memory");
		off += recsz;
	}
	t1 = bench_now_ns();
	free(src);
	free(dst);
	return (double)n * (double)recsz * 1e9 / (double)(t1 - t0);
}

enum { W_ONE, W_TWO, W_MEMCPY, W__COUNT };
static const char *const w_label[W__COUNT] = {"wal_insert, 1 thread", "wal_insert, 2 threads",
					      "memcpy of the same bytes"};
static const char *const w_key[W__COUNT] = {"insert_1t", "insert_2t", "memcpy"};

static void wi_report(const struct wi_opts *o, const char *dir, const double *med)
{
	if (!o->json) {
		printf("bench walinsert: %u-byte records (%u B main data), %lld MiB per run, "
		       "%d runs (medians), scratch %s\n",
		       wi_rec_size(o->rec_bytes), o->rec_bytes, o->mb, o->runs, dir);
		printf("  %-32s %10s %12s\n", "measurement", "MB/s", "records/s");
		for (int m = 0; m < W__COUNT; m++)
			printf("  %-32s %10.0f %12.0f\n", w_label[m], med[m] / 1e6,
			       med[m] / wi_rec_size(o->rec_bytes));
		printf("  insert 1 thread / memcpy: %.2f; 2 threads / 1 thread: %.2f\n",
		       med[W_ONE] / med[W_MEMCPY], med[W_TWO] / med[W_ONE]);
	}
	printf("{\"bench\":\"walinsert\",\"record_bytes\":%u,\"mb\":%lld,\"runs\":%d,"
	       "\"bytes_per_s\":{",
	       wi_rec_size(o->rec_bytes), o->mb, o->runs);
	for (int m = 0; m < W__COUNT; m++)
		printf("%s\"%s\":%.0f", m ? "," : "", w_key[m], med[m]);
	printf("}}\n");
}

int bench_walinsert_main(int argc, char **argv)
{
	struct wi_opts o;
	double (*r)[W__COUNT] = NULL, med[W__COUNT], col[MAX_RUNS];
	const char *base = getenv("TMPDIR");
	char *dir = NULL;
	int rc, status = 1;
	if ((rc = wi_parse(argc, argv, &o)) != 0)
		return rc == 1 ? 0 : 2;
	if (asprintf(&dir, "%s/walden-bench-walinsert-XXXXXX", base && *base ? base : "/var/tmp") < 0 ||
	    !mkdtemp(dir)) {
		perror("walden bench walinsert: scratch directory");
		goto out;
	}
	r = calloc((size_t)o.runs, sizeof *r);
	for (int i = 0; i < o.runs; i++) {
		r[i][W_ONE] = wi_run(dir, &o, 1);
		r[i][W_TWO] = wi_run(dir, &o, 2);
		r[i][W_MEMCPY] = wi_memcpy(&o);
		if (r[i][W_ONE] < 0 || r[i][W_TWO] < 0) {
			fprintf(stderr, "walden bench walinsert: %s\n", wd_last_error());
			goto out;
		}
	}
	for (int m = 0; m < W__COUNT; m++) {
		for (int i = 0; i < o.runs; i++)
			col[i] = r[i][m];
		med[m] = bench_median(col, (size_t)o.runs);
	}
	wi_report(&o, dir, med);
	status = 0;
out:
	free(r);
	bench_rmrf(dir);
	free(dir);
	return status;
}
