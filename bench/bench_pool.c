/*
 * bench_pool.c - `walden bench pool`: out-of-core random page reads through
 * the buffer pool versus raw pread of the same pages. The data file is
 * `ratio` times the pool (default 8x) and sits in the OS page cache (read
 * once beforehand), so the comparison is of CPU paths, not of the disk:
 *
 *   pool          bufmgr_pin + bufmgr_unpin (hash lookup; on a miss clock
 *                 sweep, pread via storage/, checksum verify)
 *   pread (a)     pread(2) of the page into one buffer
 *   pread (b)     pread(2) into a pool-sized array at slot blk % pool pages
 *                 (the same memory footprint as the pool, no lookup; with
 *                 several threads each has its own share of the array)
 *
 * All three follow the same random block sequence in the same run; each
 * touches the block number stored in the page. Target: pool >= 0.8x (a).
 *
 * Entry point: bench_pool_main.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bufmgr/bufmgr.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"

#define POOL_REL 1u
#define TARGET_RATIO 0.8
#define MAX_THREADS 64

struct pool_opts {
	int runs, threads;
	uint32_t page_size;
	uint64_t pool_mb, data_mb;
	double ratio;
	long long reads;
	bool json;
};

static void pool_usage(FILE *f, const char *name)
{
	fprintf(f,
		"usage: walden bench %s [options]\n"
		"Random page reads through the buffer pool versus raw pread of the\n"
		"same pages, data in the OS page cache and larger than the pool.\n"
		"  -r, --runs N        runs; medians are reported (default 5)\n"
		"  -m, --pool-mb N     buffer pool size in MiB (default 64)\n"
		"  -R, --ratio N       data size as a multiple of the pool (default 8)\n"
		"  -d, --data-mb N     data size in MiB (overrides --ratio)\n"
		"  -p, --page-size N   page size in bytes (default 8192)\n"
		"  -n, --reads N       random page reads per run (default 300000)\n"
		"  -t, --threads N     reader threads (default 1)\n"
		"  -j, --json          print only the JSON line (also --json-only)\n"
		"  -h, --help          this text\n"
		"Scratch files go to $TMPDIR (default /tmp) and are removed.\n",
		name);
}

/* Applies one option to o; false if its value is bad. */
static bool pool_opt(struct pool_opts *o, int c, const char *arg)
{
	long long v = c == 'j' ? 1 : bench_parse_count(arg);
	if (v <= 0)
		return false;
	switch (c) {
	case 'r': o->runs = (int)v; return v <= 1000;
	case 'm': o->pool_mb = (uint64_t)v; return v <= (1 << 20);
	case 'R': o->ratio = (double)v; return v <= 1000;
	case 'd': o->data_mb = (uint64_t)v; return v <= (1 << 24);
	case 'p': o->page_size = (uint32_t)v; return page_size_valid(o->page_size);
	case 'n': o->reads = v; return true;
	case 't': o->threads = (int)v; return v <= MAX_THREADS;
	case 'j': o->json = true; return true;
	}
	return false;
}

/* Parses argv into o. Returns 0, 1 after --help (exit 0), 2 on misuse. */
static int pool_parse(int argc, char **argv, struct pool_opts *o)
{
	static const struct option longopts[] = {
		{"runs", required_argument, NULL, 'r'},
		{"pool-mb", required_argument, NULL, 'm'},
		{"ratio", required_argument, NULL, 'R'},
		{"data-mb", required_argument, NULL, 'd'},
		{"page-size", required_argument, NULL, 'p'},
		{"reads", required_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"json-only", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	*o = (struct pool_opts){.runs = 5, .threads = 1, .page_size = 8192,
				.pool_mb = 64, .ratio = 8, .reads = 300000};
	optind = 0;
	while ((c = getopt_long(argc, argv, "r:m:R:d:p:n:t:jh", longopts, NULL)) != -1) {
		if (c == 'h') {
			pool_usage(stdout, argv[0]);
			return 1;
		}
		if (c == '?' || !pool_opt(o, c, optarg)) {
			if (c != '?')
				fprintf(stderr, "walden bench %s: bad value '%s'\n", argv[0], optarg);
			pool_usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		pool_usage(stderr, argv[0]);
		return 2;
	}
	if (!o->data_mb)
		o->data_mb = (uint64_t)(o->ratio * (double)o->pool_mb);
	return 0;
}

/* ---- the data file ---- */

/* Writes npages valid pages (block number at byte 32, checksummed) to path
 * in 1 MiB batches through storage/. */
static int make_data(const char *path, uint32_t ps, uint64_t npages)
{
	const uint64_t batch = (1u << 20) / ps;
	uint8_t *buf = aligned_alloc(4096, batch * ps);
	st_file *f = NULL;
	int rc;

	if (!buf)
		return err_set(WD_ENOMEM, "bench: out of memory");
	if ((rc = storage_open(path, ST_CREATE | ST_TRUNC, &f)) != 0)
		goto out;
	for (uint64_t b0 = 0; b0 < npages && rc == 0; b0 += batch) {
		uint64_t n = npages - b0 < batch ? npages - b0 : batch;
		for (uint64_t i = 0; i < n; i++) {
			uint8_t *p = buf + i * ps;
			page_init(p, ps, PAGE_KIND_RAW, 0);
			put_le64(p + 32, b0 + i);
			page_checksum_set(p, ps, (wd_blkno)(b0 + i));
		}
		rc = storage_write(f, buf, n * ps, b0 * ps);
	}
out:
	if (f)
		(void)storage_close(f);
	free(buf);
	return rc;
}

/* Reads the whole file once so that it sits in the OS page cache. */
static int warm_page_cache(const char *path)
{
	char *buf = malloc(1 << 20);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t off = 0;
	ssize_t n;
	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((n = pread(fd, buf, 1 << 20, off)) > 0)
		off += n;
	close(fd);
	free(buf);
	return n < 0 ? -1 : 0;
}

/* ---- the timed passes ---- */

enum { K_POOL, K_PREAD_ONE, K_PREAD_ARRAY, K__COUNT };

struct pass {
	int kind;
	bufmgr *pool;
	int fd;
	uint32_t ps, slots;     /* K_PREAD_ARRAY: this thread's share of slots */
	uint8_t *mem;           /* K_PREAD_ONE: one page; K_PREAD_ARRAY: slots */
	const wd_blkno *seq;
	long long n;
	pthread_barrier_t *start;
	uint64_t bad;           /* pages whose stored block number was wrong */
	int rc;
};

/* One random read of each block in p->seq, the way p->kind says. */
static void *pass_main(void *arg)
{
	struct pass *p = arg;
	pthread_barrier_wait(p->start);
	for (long long i = 0; i < p->n && p->rc == 0; i++) {
		wd_blkno blk = p->seq[i];
		const uint8_t *page;
		bm_buf *b = NULL;
		if (p->kind == K_POOL) {
			if ((p->rc = bufmgr_pin(p->pool, POOL_REL, blk, BM_READ, &b)) != 0)
				break;
			page = bufmgr_page(b);
		} else {
			uint8_t *dst = p->mem;
			if (p->kind == K_PREAD_ARRAY)
				dst += (size_t)(blk % p->slots) * p->ps;
			if (pread(p->fd, dst, p->ps, (off_t)blk * p->ps) != (ssize_t)p->ps)
				p->rc = WD_EIO;
			page = dst;
		}
		p->bad += get_le64(page + 32) != blk;
		if (b)
			bufmgr_unpin(p->pool, b);
	}
	return NULL;
}

struct bench_ctx {
	struct pool_opts o;
	bufmgr *pool;
	int fd;
	uint32_t slots;
	uint8_t *array, *one[MAX_THREADS];
	wd_blkno *seq;
};

/* Runs one pass of kind over the whole sequence with o.threads threads;
 * returns pages per second, or -1 on an error or a wrong page. */
static double run_pass(struct bench_ctx *c, int kind)
{
	struct pass p[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t start;
	long long per = c->o.reads / c->o.threads;
	uint64_t t0, t1;
	bool bad = false;

	pthread_barrier_init(&start, NULL, (unsigned)c->o.threads + 1);
	for (int i = 0; i < c->o.threads; i++) {
		/* each thread its own share of the array: no two threads
		 * pread into one slot at once */
		uint32_t share = c->slots / (uint32_t)c->o.threads;
		uint8_t *mem = kind == K_PREAD_ARRAY
				       ? c->array + (size_t)i * share * c->o.page_size
				       : c->one[i];
		p[i] = (struct pass){kind, c->pool, c->fd, c->o.page_size, share, mem,
				     c->seq + i * per, per, &start, 0, 0};
		pthread_create(&th[i], NULL, pass_main, &p[i]);
	}
	pthread_barrier_wait(&start);
	t0 = bench_now_ns();
	for (int i = 0; i < c->o.threads; i++) {
		pthread_join(th[i], NULL);
		bad |= p[i].rc != 0 || p[i].bad != 0;
	}
	t1 = bench_now_ns();
	pthread_barrier_destroy(&start);
	return bad ? -1 : (double)(per * c->o.threads) * 1e9 / (double)(t1 - t0);
}

/* ---- setup, report, main ---- */

/* Creates the data file in dir, warms the page cache, creates the pool
 * and the raw-read buffers, draws the random sequence. */
static int ctx_setup(struct bench_ctx *c, const char *dir)
{
	uint32_t ps = c->o.page_size;
	uint64_t npages = c->o.data_mb * (1u << 20) / ps;
	bufmgr_opts bo;
	char path[4096];
	uint64_t seed = 2024;
	int rc;

	snprintf(path, sizeof path, "%s/data.rel", dir);
	if (npages < 16 || npages >= WD_INVALID_BLKNO)
		return err_set(WD_EINVAL, "bench: data of %llu pages is out of range",
			      (unsigned long long)npages);
	if ((rc = make_data(path, ps, npages)) != 0)
		return rc;
	if (warm_page_cache(path) != 0 ||
	    (c->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_errno(errno, "bench: reading %s", path);
	bufmgr_opts_default(&bo);
	bo.page_size = ps;
	bo.pool_bytes = c->o.pool_mb << 20;
	if ((rc = bufmgr_create(&bo, &c->pool)) != 0 ||
	    (rc = bufmgr_rel_open(c->pool, POOL_REL, path, 0)) != 0)
		return rc;
	c->slots = bufmgr_nbuffers(c->pool);
	c->array = aligned_alloc(4096, (size_t)c->slots * ps);
	c->seq = malloc((size_t)c->o.reads * sizeof *c->seq);
	for (int i = 0; i < c->o.threads; i++)
		if (!(c->one[i] = aligned_alloc(4096, ps)))
			return err_set(WD_ENOMEM, "bench: out of memory");
	if (!c->array || !c->seq)
		return err_set(WD_ENOMEM, "bench: out of memory");
	memset(c->array, 0, (size_t)c->slots * ps);
	for (long long i = 0; i < c->o.reads; i++)
		c->seq[i] = (wd_blkno)(bench_rand(&seed) % npages);
	return 0;
}

static void ctx_free(struct bench_ctx *c)
{
	bufmgr_destroy(c->pool);
	if (c->fd >= 0)
		close(c->fd);
	free(c->array);
	free(c->seq);
	for (int i = 0; i < MAX_THREADS; i++)
		free(c->one[i]);
}

static void pool_report(const struct bench_ctx *c, const double *med, double hit_rate)
{
	const struct pool_opts *o = &c->o;
	double ra = med[K_POOL] / med[K_PREAD_ONE], rb = med[K_POOL] / med[K_PREAD_ARRAY];
	bool met = ra >= TARGET_RATIO;
	static const char *const label[K__COUNT] = {
		"pool: bufmgr_pin + bufmgr_unpin", "raw pread into one buffer",
		"raw pread into a pool-sized array"};
	if (!o->json) {
		printf("bench pool: page %u B, pool %llu MiB (%u pages), data %llu MiB (%.1fx), "
		       "%lld random reads, %d thread(s), %d runs (medians)\n",
		       o->page_size, (unsigned long long)o->pool_mb, c->slots,
		       (unsigned long long)o->data_mb, (double)o->data_mb / (double)o->pool_mb,
		       o->reads, o->threads, o->runs);
		printf("  %-36s %12s %9s %9s\n", "method", "pages/s", "ns/page", "pool/this");
		for (int k = 0; k < K__COUNT; k++)
			printf("  %-36s %12.0f %9.0f %9.2f\n", label[k], med[k],
			       1e9 / med[k], med[K_POOL] / med[k]);
		printf("  pool hit rate %.3f; target pool >= %.1fx raw pread: %s (%.2fx)\n",
		       hit_rate, TARGET_RATIO, met ? "met" : "NOT met", ra);
	}
	printf("{\"bench\":\"pool\",\"page_size\":%u,\"pool_mb\":%llu,\"data_mb\":%llu,"
	       "\"reads\":%lld,\"threads\":%d,\"runs\":%d,\"pages_per_s\":{\"pool\":%.0f,"
	       "\"pread_one_buffer\":%.0f,\"pread_pool_array\":%.0f},\"ratio_vs_pread\":%.3f,"
	       "\"ratio_vs_pread_array\":%.3f,\"hit_rate\":%.4f,\"target_ratio\":%.1f,"
	       "\"target_met\":%s}\n",
	       o->page_size, (unsigned long long)o->pool_mb, (unsigned long long)o->data_mb,
	       o->reads, o->threads, o->runs, med[K_POOL], med[K_PREAD_ONE],
	       med[K_PREAD_ARRAY], ra, rb, hit_rate, TARGET_RATIO, met ? "true" : "false");
}

/* Runs every pass o.runs times (rotating their order) and reports the
 * medians. -1 on a failed pass. */
static int pool_runs(struct bench_ctx *c)
{
	double r[K__COUNT][1000], med[K__COUNT];
	bm_stats s0, s1;
	if (run_pass(c, K_POOL) < 0) /* warm-up: fill the pool */
		return -1;
	bufmgr_stats(c->pool, &s0);
	for (int i = 0; i < c->o.runs; i++)
		for (int j = 0; j < K__COUNT; j++) {
			int k = (i + j) % K__COUNT;
			if ((r[k][i] = run_pass(c, k)) < 0)
				return -1;
		}
	bufmgr_stats(c->pool, &s1);
	for (int k = 0; k < K__COUNT; k++)
		med[k] = bench_median(r[k], (size_t)c->o.runs);
	pool_report(c, med, (double)(s1.hits - s0.hits) /
				    (double)(s1.hits - s0.hits + s1.misses - s0.misses));
	return 0;
}

int bench_pool_main(int argc, char **argv)
{
	struct bench_ctx c = {.fd = -1};
	char *dir = NULL;
	int rc, status = 1;

	if ((rc = pool_parse(argc, argv, &c.o)) != 0)
		return rc == 1 ? 0 : 2;
	if (c.o.reads < c.o.threads)
		c.o.reads = c.o.threads;
	if (!(dir = bench_scratch_dir("pool"))) {
		perror("walden bench pool: scratch directory");
		goto out;
	}
	if ((rc = ctx_setup(&c, dir)) != 0) {
		fprintf(stderr, "walden bench pool: %s: %s\n", wd_strerror(rc), wd_last_error());
		goto out;
	}
	if (pool_runs(&c) != 0) {
		fprintf(stderr, "walden bench pool: a pass failed or read a wrong page: %s\n",
			wd_last_error());
		goto out;
	}
	status = 0;
out:
	ctx_free(&c);
	bench_rmrf(dir);
	free(dir);
	return status;
}
