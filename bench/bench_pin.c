/*
 * bench_pin.c - `walden bench pin`: the cost of pinning and unpinning a page
 * that is already in the pool (the hit path of bufmgr_pin: partition lock,
 * hash lookup, one CAS; bufmgr_unpin: one atomic decrement), single-threaded
 * and with two threads on the same page and on distinct pages, beside a
 * memcpy of one page for scale. Target: under 100 ns single-threaded.
 *
 * Entry point: bench_pin_main.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bufmgr/bufmgr.h"
#include "storage/page.h"

#define PIN_REL 1u
#define PIN_PAGES 64u    /* cached pages used by the random variant */
#define PIN_SEQ 4096u    /* length of the random block sequence */
#define TARGET_NS 100.0

struct pin_opts {
	int runs;
	uint32_t page_size;
	long long ops;
	bool json;
};

static void pin_usage(FILE *f, const char *name)
{
	fprintf(f,
		"usage: walden bench %s [options]\n"
		"Nanoseconds per pin+unpin of a cached page (1 and 2 threads)\n"
		"beside a memcpy of one page. Prints a table and a JSON line.\n"
		"  -r, --runs N        runs; medians are reported (default 5)\n"
		"  -p, --page-size N   page size in bytes (default 8192)\n"
		"  -n, --ops N         pin+unpin pairs per run and thread (default 5000000)\n"
		"  -j, --json          print only the JSON line (also --json-only)\n"
		"  -h, --help          this text\n",
		name);
}

/* Parses argv into o. Returns 0, 1 after --help (exit 0), 2 on misuse. */
static int pin_parse(int argc, char **argv, struct pin_opts *o)
{
	static const struct option longopts[] = {
		{"runs", required_argument, NULL, 'r'},
		{"page-size", required_argument, NULL, 'p'},
		{"ops", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"json-only", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	long long v;
	int c;
	*o = (struct pin_opts){.runs = 5, .page_size = 8192, .ops = 5000000};
	optind = 0;
	while ((c = getopt_long(argc, argv, "r:p:n:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': o->runs = (int)(v = bench_parse_count(optarg)); break;
		case 'p': o->page_size = (uint32_t)(v = bench_parse_count(optarg)); break;
		case 'n': o->ops = v = bench_parse_count(optarg); break;
		case 'j': o->json = true; v = 1; break;
		case 'h': pin_usage(stdout, argv[0]); return 1;
		default: pin_usage(stderr, argv[0]); return 2;
		}
		if (v <= 0 || v > (1ll << 40)) {
			fprintf(stderr, "walden bench %s: bad value '%s'\n", argv[0], optarg);
			return 2;
		}
	}
	if (optind < argc || !page_size_valid(o->page_size) || o->runs > 1000) {
		pin_usage(stderr, argv[0]);
		return 2;
	}
	return 0;
}

/* A pool of 256 pages with PIN_PAGES pages of PIN_REL cached in it. */
static int pin_setup(const struct pin_opts *o, const char *dir, bufmgr **out)
{
	bufmgr_opts bo;
	char path[4096];
	int rc;
	bufmgr_opts_default(&bo);
	bo.page_size = o->page_size;
	bo.pool_bytes = 256ull * o->page_size;
	if ((rc = bufmgr_create(&bo, out)) != 0)
		return rc;
	snprintf(path, sizeof path, "%s/pin.rel", dir);
	if ((rc = bufmgr_rel_open(*out, PIN_REL, path, BM_REL_CREATE)) != 0)
		return rc;
	for (uint32_t i = 0; i < PIN_PAGES; i++) {
		bm_buf *b;
		wd_blkno blk;
		if ((rc = bufmgr_extend(*out, PIN_REL, &blk, &b)) != 0)
			return rc;
		page_init(bufmgr_page(b), o->page_size, PAGE_KIND_RAW, 0);
		bufmgr_mark_dirty(b, 1);
		bufmgr_unlatch(b);
		bufmgr_unpin(*out, b);
	}
	return 0;
}

/* The timed loop: ops pin+unpin pairs over seq[i % PIN_SEQ]. 0 or the
 * first pin error. */
static int pin_loop(bufmgr *pool, const wd_blkno *seq, long long ops)
{
	for (long long i = 0; i < ops; i++) {
		bm_buf *b;
		int rc = bufmgr_pin(pool, PIN_REL, seq[i & (PIN_SEQ - 1)], BM_READ, &b);
		if (rc != 0)
			return rc;
		bufmgr_unpin(pool, b);
	}
	return 0;
}

struct pin_thread {
	bufmgr *pool;
	const wd_blkno *seq;
	long long ops;
	pthread_barrier_t *start;
	int rc;
};

static void *pin_thread_main(void *arg)
{
	struct pin_thread *t = arg;
	pthread_barrier_wait(t->start);
	t->rc = pin_loop(t->pool, t->seq, t->ops);
	return NULL;
}

/*
 * Runs nthreads loops at once, thread i over seqs[i]; returns the wall time
 * per op per thread in ns (so equal to the single-thread figure if the
 * threads did not slow each other down), or -1 on a pin error.
 */
static double pin_run(bufmgr *pool, const wd_blkno *const *seqs, int nthreads,
		      long long ops)
{
	pthread_t th[2];
	struct pin_thread t[2];
	pthread_barrier_t start;
	uint64_t t0, t1;
	int bad = 0;

	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		t[i] = (struct pin_thread){pool, seqs[i], ops, &start, 0};
		pthread_create(&th[i], NULL, pin_thread_main, &t[i]);
	}
	pthread_barrier_wait(&start);
	t0 = bench_now_ns();
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		bad |= t[i].rc != 0;
	}
	t1 = bench_now_ns();
	pthread_barrier_destroy(&start);
	return bad ? -1 : (double)(t1 - t0) / (double)ops;
}

/* ns per memcpy of one page, alternating two targets so that the copy
 * cannot be elided. */
static double memcpy_run(uint32_t page_size, long long ops)
{
	uint8_t *src = aligned_alloc(64, page_size), *dst = aligned_alloc(64, 2ull * page_size);
	uint64_t t0, t1;
	memset(src, 7, page_size);
	memset(dst, 0, 2ull * page_size);
	t0 = bench_now_ns();
	for (long long i = 0; i < ops; i++) {
		memcpy(dst + (i & 1) * page_size, src, page_size);
		__asm__ volatile("" : : "r"(dst) : "memory");
	}
	t1 = bench_now_ns();
	free(src);
	free(dst);
	return (double)(t1 - t0) / (double)ops;
}

enum { M_ONE, M_RANDOM, M_TWO_SAME, M_TWO_DISTINCT, M_MEMCPY, M__COUNT };

static const char *const m_label[M__COUNT] = {
	"pin+unpin, 1 thread, one page",
	"pin+unpin, 1 thread, 64 pages at random",
	"pin+unpin, 2 threads, same page",
	"pin+unpin, 2 threads, distinct pages",
	"memcpy of one page",
};
static const char *const m_key[M__COUNT] = {
	"pin_unpin_1t", "pin_unpin_1t_random", "pin_unpin_2t_same",
	"pin_unpin_2t_distinct", "memcpy_page",
};

/* One run of every measurement into r[M__COUNT]. -1 on a pin error. */
static int pin_measure(bufmgr *pool, const struct pin_opts *o, wd_blkno seqs[4][PIN_SEQ],
		       double *r)
{
	const wd_blkno *one[1] = {seqs[0]}, *rnd[1] = {seqs[1]};
	const wd_blkno *same[2] = {seqs[0], seqs[0]}, *dist[2] = {seqs[2], seqs[3]};
	r[M_ONE] = pin_run(pool, one, 1, o->ops);
	r[M_RANDOM] = pin_run(pool, rnd, 1, o->ops);
	r[M_TWO_SAME] = pin_run(pool, same, 2, o->ops);
	r[M_TWO_DISTINCT] = pin_run(pool, dist, 2, o->ops);
	r[M_MEMCPY] = memcpy_run(o->page_size, o->ops / 4 + 1);
	for (int m = 0; m < M__COUNT; m++)
		if (r[m] < 0)
			return -1;
	return 0;
}

static void pin_report(const struct pin_opts *o, const double *med)
{
	bool met = med[M_ONE] < TARGET_NS;
	if (!o->json) {
		printf("bench pin: page %u B, %d runs x %lld ops per thread (medians; "
		       "2-thread figures are wall time per op per thread)\n",
		       o->page_size, o->runs, o->ops);
		printf("  %-44s %10s\n", "operation", "ns/op");
		for (int m = 0; m < M__COUNT; m++)
			printf("  %-44s %10.1f\n", m_label[m], med[m]);
		printf("  target: pin+unpin under %.0f ns single-threaded: %s\n",
		       TARGET_NS, met ? "met" : "NOT met");
	}
	printf("{\"bench\":\"pin\",\"page_size\":%u,\"runs\":%d,\"ops\":%lld,\"ns_per_op\":{",
	       o->page_size, o->runs, o->ops);
	for (int m = 0; m < M__COUNT; m++)
		printf("%s\"%s\":%.1f", m ? "," : "", m_key[m], med[m]);
	printf("},\"target_ns\":%.0f,\"target_met\":%s}\n", TARGET_NS,
	       met ? "true" : "false");
}

/* Fills the block sequences: [0] always block 0, [1] random over the
 * cached pages, [2] and [3] two distinct blocks for two threads. */
static void pin_seqs(wd_blkno seqs[4][PIN_SEQ])
{
	uint64_t seed = 12345;
	for (uint32_t i = 0; i < PIN_SEQ; i++) {
		seqs[0][i] = 0;
		seqs[1][i] = (wd_blkno)(bench_rand(&seed) % PIN_PAGES);
		seqs[2][i] = 1;
		seqs[3][i] = 2;
	}
}

int bench_pin_main(int argc, char **argv)
{
	static wd_blkno seqs[4][PIN_SEQ];
	struct pin_opts o;
	double (*r)[M__COUNT] = NULL, med[M__COUNT], col[1000];
	bufmgr *pool = NULL;
	char *dir = NULL;
	int rc, status = 1;

	if ((rc = pin_parse(argc, argv, &o)) != 0)
		return rc == 1 ? 0 : 2;
	if (!(dir = bench_scratch_dir("pin"))) {
		perror("walden bench pin: scratch directory");
		goto out;
	}
	if ((rc = pin_setup(&o, dir, &pool)) != 0) {
		fprintf(stderr, "walden bench pin: %s: %s\n", wd_strerror(rc), wd_last_error());
		goto out;
	}
	pin_seqs(seqs);
	r = calloc((size_t)o.runs, sizeof *r);
	for (int i = 0; i < o.runs; i++)
		if (pin_measure(pool, &o, seqs, r[i]) != 0) {
			fprintf(stderr, "walden bench pin: pin failed: %s\n", wd_last_error());
			goto out;
		}
	for (int m = 0; m < M__COUNT; m++) {
		for (int i = 0; i < o.runs; i++)
			col[i] = r[i][m];
		med[m] = bench_median(col, (size_t)o.runs);
	}
	pin_report(&o, med);
	status = 0;
out:
	free(r);
	bufmgr_destroy(pool);
	bench_rmrf(dir);
	free(dir);
	return status;
}
