/*
 * demo.c - `walden demo DIR`: what walden can do so far, step by step.
 *
 * 1. create a database directory and its control file;
 * 2. write N pages through a buffer pool a quarter of their size, fsync;
 * 3. a child process (the "writer") turns on the power-loss journal,
 *    rewrites every page, syncs the first quarter, lets the pool write the
 *    next half without fsync, and is killed at a crash point;
 * 4. the parent materialises a power loss from a seed: each unsynced write
 *    kept, dropped or torn at 512-byte sectors;
 * 5. every page is read back through a fresh pool and classified: new
 *    version, old version, or torn (caught by the checksum) - and the result
 *    is checked against the materialiser's plan and the fsyncs made.
 * Later parts of walden (WAL, full-page images, recovery) repair what this
 * demo can only detect.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bufmgr/bufmgr.h"
#include "recovery/control.h"
#include "storage/page.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "tools/tools.h"

#define DEMO_REL 1

struct demo {
	const char *dir;
	char base[4096], rel[4096], journal[4096];
	uint32_t npages, pool_pages, page_size;
	uint64_t seed;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden demo DIR [--seed S] [--pages N]\n"
		"\n"
		"Creates a database in DIR (which must not exist), writes pages\n"
		"through a small buffer pool, kills the writing process in the\n"
		"middle of its work, simulates a power loss from the seed and shows\n"
		"which writes survived, which were lost and which were torn - and\n"
		"that every torn page is caught by its checksum.\n"
		"Options:\n"
		"  -s, --seed S    power-loss seed (default 7)\n"
		"  -n, --pages N   pages to write, a multiple of 4, >= 64 (default 64)\n"
		"  -h, --help      this help\n");
}

/* Fills a page with a recognisable image of (blk, version): every byte
 * depends on both, so any mix of two versions' sectors is detectable. */
static void make_page(uint8_t *p, uint32_t page_size, wd_blkno blk, unsigned version)
{
	char label[64];
	uint8_t *body;
	uint32_t free_bytes;
	int n = snprintf(label, sizeof label, "demo page %u version %u", blk, version);

	page_init(p, page_size, PAGE_KIND_RAW, 0);
	page_set_lsn(p, version);
	if (page_item_add(p, label, (uint32_t)n, PAGE_SLOT_NEW) < 0)
		abort();
	free_bytes = page_free_space(p);
	body = malloc(free_bytes);
	for (uint32_t i = 0; i < free_bytes; i++)
		body[i] = (uint8_t)(blk * 31 + version * 97 + i);
	if (page_item_add(p, body, free_bytes, PAGE_SLOT_NEW) < 0)
		abort();
	free(body);
}

static int open_pool(const struct demo *d, bufmgr **pool)
{
	bufmgr_opts o;
	int rc;
	bufmgr_opts_default(&o);
	o.page_size = d->page_size;
	o.pool_bytes = (uint64_t)d->pool_pages * d->page_size;
	if ((rc = bufmgr_create(&o, pool)) != 0)
		return rc;
	rc = bufmgr_rel_open(*pool, DEMO_REL, d->rel, BM_REL_CREATE);
	if (rc != 0)
		bufmgr_destroy(*pool);
	return rc;
}

/* Rewrites blocks [from, to) as version `version` through the pool. */
static int write_pages(bufmgr *pool, const struct demo *d, wd_blkno from,
		       wd_blkno to, unsigned version, bool extend)
{
	for (wd_blkno b = from; b < to; b++) {
		bm_buf *buf;
		wd_blkno got = b;
		int rc = extend ? bufmgr_extend(pool, DEMO_REL, &got, &buf)
				: bufmgr_pin(pool, DEMO_REL, b, BM_READ, &buf);
		if (rc != 0)
			return rc;
		if (!extend)
			bufmgr_latch(buf, BM_EXCL);
		make_page(bufmgr_page(buf), d->page_size, b, version);
		bufmgr_mark_dirty(buf, version);
		bufmgr_unlatch(buf);
		bufmgr_unpin(pool, buf);
	}
	return 0;
}

/* Step 3, in the child: never returns. */
static _Noreturn void writer(const struct demo *d)
{
	bufmgr *pool;
	uint32_t q = d->npages / 4;
	int rc = storage_sim_start(d->journal);
	if (rc == 0)
		rc = open_pool(d, &pool);
	/* the first quarter: rewritten, written and fsynced: durable */
	if (rc == 0)
		rc = write_pages(pool, d, 0, q, 2, false);
	if (rc == 0)
		rc = bufmgr_flush_all(pool);
	/* the rest: rewritten; the pool writes pages out as it evicts them,
	 * but nothing fsyncs them, and the last pool-full stay in memory */
	if (rc == 0)
		rc = write_pages(pool, d, q, d->npages, 2, false);
	if (rc != 0) {
		fprintf(stderr, "writer: %s\n", wd_last_error());
		_exit(1);
	}
	storage_crash_arm("demo-before-sync", 1);
	storage_crash_point("demo-before-sync");
	_exit(1); /* not reached */
}

/* What the reader found on one page. */
enum verdict { V_OLD, V_NEW, V_TORN, V_WRONG };

static enum verdict classify(bufmgr *pool, const struct demo *d, wd_blkno b,
			     uint8_t *expect)
{
	bm_buf *buf;
	enum verdict v = V_WRONG;
	int rc = bufmgr_pin(pool, DEMO_REL, b, BM_READ, &buf);
	if (rc == WD_ECORRUPT)
		return V_TORN;
	if (rc != 0)
		return V_WRONG;
	for (unsigned version = 1; version <= 2; version++) {
		make_page(expect, d->page_size, b, version);
		page_checksum_set(expect, d->page_size, b);
		if (memcmp(bufmgr_page(buf), expect, d->page_size) == 0)
			v = version == 1 ? V_OLD : V_NEW;
	}
	bufmgr_unpin(pool, buf);
	return v;
}

/*
 * What the plan says block b must read as: V_NEW if its write was kept (or
 * torn with every sector kept), V_OLD if dropped (or torn with none kept),
 * V_TORN if some sectors of each version survived; -1 if it had no
 * unsynced write. Each block is written at most once by the writer.
 */
static int planned(const st_sim_report *r, wd_blkno b, uint32_t page_size)
{
	for (size_t i = 0; i < r->nops; i++) {
		const st_sim_op *op = &r->ops[i];
		uint32_t kept = 0;
		if (op->kind != ST_SIM_WRITE || op->off != (uint64_t)b * page_size)
			continue;
		for (uint32_t s = 0; s < op->nsectors; s++)
			kept += (op->mask[s / 8] >> (s % 8)) & 1;
		return kept == op->nsectors ? V_NEW : kept == 0 ? V_OLD : V_TORN;
	}
	return -1;
}

/* Step 5: reads every page back and checks it against the plan. */
static int read_back(const struct demo *d, const st_sim_report *r)
{
	static const char mark[] = {'1', '2', 'T', '?'};
	uint32_t q = d->npages / 4, count[4] = {0}, bad = 0;
	uint8_t *expect = malloc(d->page_size);
	char first_torn[600] = "";
	bufmgr *pool;
	int rc = open_pool(d, &pool);

	if (rc != 0 || !expect)
		return tool_fail("demo", rc ? rc : WD_ENOMEM, "opening the pool");
	printf("   block  ");
	for (wd_blkno b = 0; b < d->npages; b++) {
		enum verdict v = classify(pool, d, b, expect);
		int plan = planned(r, b, d->page_size);
		bool ok;
		if (v == V_TORN && !first_torn[0])
			snprintf(first_torn, sizeof first_torn, "%s", wd_last_error());
		if (b < q)
			ok = v == V_NEW; /* fsynced before the crash */
		else if (plan < 0)
			ok = v == V_OLD; /* never written: still in the pool when killed */
		else
			ok = (int)v == plan;
		bad += !ok;
		count[v]++;
		putchar(mark[v]);
		if (b % 64 == 63 && b + 1 < d->npages)
			printf("\n          ");
	}
	printf("\n   (1 = old version, 2 = new version, T = torn: checksum failure)\n");
	printf("   %u new, %u old, %u torn and detected, %u unreadable otherwise;\n"
	       "   %u disagree with the fsyncs made and the power-loss plan\n",
	       count[V_NEW], count[V_OLD], count[V_TORN], count[V_WRONG], bad);
	if (first_torn[0])
		printf("   a torn page reads as an error, never as data:\n     %s\n", first_torn);
	bufmgr_destroy(pool);
	free(expect);
	return bad ? EXIT_ERROR : EXIT_OK;
}

static int create_db(struct demo *d)
{
	control_data cd;
	char id[33];
	int rc;
	if ((rc = storage_mkdir(d->dir)) != 0 ||
	    (rc = control_create(d->dir, d->page_size, &cd)) != 0 ||
	    (rc = storage_mkdir(d->base)) != 0 || (rc = storage_sync_dir(d->dir)) != 0)
		return rc;
	control_format_id(cd.db_id, id);
	printf("1. created database %s: page size %u, id %s\n", d->dir, cd.page_size, id);
	return 0;
}

/* Step 2: version 1 of every page, written and fsynced. */
static int initial_load(const struct demo *d)
{
	bufmgr *pool;
	bm_stats st;
	int rc = open_pool(d, &pool);
	if (rc == 0)
		rc = write_pages(pool, d, 0, d->npages, 1, true);
	if (rc == 0)
		rc = bufmgr_flush_all(pool);
	if (rc == 0) {
		bufmgr_stats(pool, &st);
		printf("2. wrote %u pages (version 1) through a %u-page buffer pool and "
		       "fsynced them:\n   %" PRIu64 " evictions, %" PRIu64
		       " page writes (%" PRIu64 " by eviction), %" PRIu64 " fdatasync\n",
		       d->npages, d->pool_pages, st.evictions, st.writes,
		       st.evict_writes, st.syncs);
		rc = bufmgr_rel_close(pool, DEMO_REL);
	}
	bufmgr_destroy(pool);
	return rc;
}

/* Step 3: run the writer and wait for its planned death. */
static int run_writer(const struct demo *d)
{
	int status;
	pid_t pid;
	uint32_t q = d->npages / 4;
	printf("3. a writer process rewrites every page (version 2): blocks 0-%u are\n"
	       "   written and fsynced; blocks %u-%u are written by evictions, not\n"
	       "   fsynced; the last %u stay dirty in its pool. Then it is killed.\n",
	       q - 1, q, d->npages - q - 1, q);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return err_errno(errno, "fork");
	if (pid == 0)
		writer(d);
	if (waitpid(pid, &status, 0) != pid)
		return err_errno(errno, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != ST_CRASH_EXIT_CODE)
		return err_set(WD_EIO, "the writer did not die at its crash point (status %d)",
			      status);
	printf("   writer killed at crash point demo-before-sync (exit status %d)\n",
	       ST_CRASH_EXIT_CODE);
	return 0;
}

static int parse_args(int argc, char **argv, struct demo *d)
{
	static const struct option opts[] = {
		{"seed", required_argument, NULL, 's'},
		{"pages", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "s:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': d->seed = strtoull(optarg, NULL, 10); break;
		case 'n': d->npages = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || d->npages < 64 || d->npages % 4 || d->npages > 1u << 20) {
		usage(stderr);
		return EXIT_USAGE;
	}
	d->dir = argv[optind];
	return 0;
}

int demo_main(int argc, char **argv)
{
	struct demo d = {.npages = 64, .page_size = 8192, .seed = 7};
	st_sim_opts so = {.mode = ST_SIM_TORN, .sector_bytes = 512};
	st_sim_report r;
	int rc = parse_args(argc, argv, &d);

	if (rc != 0)
		return rc < 0 ? EXIT_OK : rc;
	d.pool_pages = d.npages / 4;
	if (strlen(d.dir) > 4000) {
		fprintf(stderr, "walden demo: directory name too long\n");
		return EXIT_USAGE;
	}
	snprintf(d.base, sizeof d.base, "%.4000s/%s", d.dir, DB_BASE_DIR);
	snprintf(d.rel, sizeof d.rel, "%.4000s/%s/%u", d.dir, DB_BASE_DIR, DEMO_REL);
	snprintf(d.journal, sizeof d.journal, "%.4000s.journal", d.dir);
	if (storage_exists(d.dir) || storage_exists(d.journal)) {
		fprintf(stderr, "walden demo: %s or %s already exists; pick a new DIR\n",
			d.dir, d.journal);
		return EXIT_ERROR;
	}
	if ((rc = create_db(&d)) != 0)
		return tool_fail("demo", rc, "creating the database");
	if ((rc = initial_load(&d)) != 0)
		return tool_fail("demo", rc, "writing version 1");
	if ((rc = storage_mkdir(d.journal)) != 0 || (rc = run_writer(&d)) != 0)
		return tool_fail("demo", rc, "running the writer");
	so.seed = d.seed;
	if ((rc = storage_sim_materialize(d.journal, &so, &r)) != 0)
		return tool_fail("demo", rc, "simulating the power loss");
	rmdir(d.journal); /* empty once materialised */
	printf("4. power loss simulated (seed %" PRIu64 ", 512-byte sectors): of %" PRIu64
	       " writes not covered by an fsync,\n   %" PRIu64 " kept, %" PRIu64
	       " dropped, %" PRIu64 " torn\n",
	       d.seed, r.data_pending, r.data_kept, r.data_dropped, r.data_torn);
	printf("5. every page read back through a fresh pool (checksums verified):\n");
	rc = read_back(&d, &r);
	storage_sim_report_free(&r);
	printf("%s\n", rc == 0 ? "   every page is what the fsyncs and the power loss allow: "
				 "synced pages survived,\n   torn ones were caught. The "
				 "write-ahead log (next) will repair them."
			       : "   MISMATCH: a page is not what the fault model allows");
	printf("\nLook closer: walden inspect %s; walden inspect %s --rel %u --block %u\n",
	       d.dir, d.dir, DEMO_REL, d.npages / 4);
	return rc;
}
