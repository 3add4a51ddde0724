/*
 * demo.c - `walden demo-wal DIR`: the log and the pages alone, step by step.
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
 *    is checked against the materialiser's plan and the fsyncs made;
 * 6. the write-ahead log is read back: every change was logged before its
 *    page was written (the pool's WAL-before-data hook), so every intact
 *    page's LSN names a record in the log.
 * Later parts of walden (full-page images, recovery) repair what this demo
 * can only detect.
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
#include "wal/reader.h"
#include "wal/record.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define DEMO_REL 1

struct demo {
	const char *dir;
	char base[4096], rel[4096], journal[4096];
	uint32_t npages, pool_pages, page_size;
	uint64_t seed;
	wal_opts wo;          /* the log's settings and the database id */
	wd_lsn *page_lsn;     /* step 5: LSN of each intact page read back */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden demo-wal DIR [--seed S] [--pages N]\n"
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

/* A pool of pool_pages over the demo relation; with w, WAL before data. */
static int open_pool(const struct demo *d, wal *w, bufmgr **pool)
{
	bufmgr_opts o;
	int rc;
	bufmgr_opts_default(&o);
	o.page_size = d->page_size;
	o.pool_bytes = (uint64_t)d->pool_pages * d->page_size;
	if ((rc = bufmgr_create(&o, pool)) != 0)
		return rc;
	if (w)
		bufmgr_set_wal_hook(*pool, wal_bufmgr_hook, w);
	rc = bufmgr_rel_open(*pool, DEMO_REL, d->rel, BM_REL_CREATE);
	if (rc != 0)
		bufmgr_destroy(*pool);
	return rc;
}

/* Opens the log where it ends (its writer thread runs). */
static int open_wal(const struct demo *d, wal **w)
{
	wd_lsn end;
	int rc = wal_find_end(d->dir, &d->wo, WAL_SEG_HEADER_SIZE, &end);
	return rc ? rc : wal_open(d->dir, &d->wo, end, w);
}

/*
 * Logs the change of block b to `version` (an XLOG_NOOP record naming the
 * page: the demo has no page kind of its own) and returns its LSN, which
 * becomes the page's pageLSN (DESIGN.md section 2, step 2).
 */
static int log_change(wal *w, wal_rec_builder *rb, wd_blkno b, unsigned version,
		      wd_lsn *lsn)
{
	char what[48];
	uint8_t *rec;
	uint32_t len;
	int n = snprintf(what, sizeof what, "demo page %u version %u", b, version);
	int rc;
	walrec_begin(rb, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	if ((rc = walrec_add_block(rb, DEMO_REL, b, 0, NULL, 0, false, NULL, 0)) != 0 ||
	    (rc = walrec_set_main(rb, what, (uint32_t)n)) != 0 ||
	    (rc = walrec_assemble(rb, &rec, &len)) != 0)
		return rc;
	return wal_insert(w, rec, len, lsn);
}

/* Rewrites blocks [from, to) as version `version` through the pool,
 * logging each change first. */
static int write_pages(bufmgr *pool, wal *w, const struct demo *d, wd_blkno from,
		       wd_blkno to, unsigned version, bool extend)
{
	wal_rec_builder rb = {0};
	int rc = 0;
	for (wd_blkno b = from; b < to && rc == 0; b++) {
		bm_buf *buf;
		wd_blkno got = b;
		wd_lsn lsn;
		if ((rc = log_change(w, &rb, b, version, &lsn)) != 0)
			break;
		rc = extend ? bufmgr_extend(pool, DEMO_REL, &got, &buf)
			    : bufmgr_pin(pool, DEMO_REL, b, BM_READ, &buf);
		if (rc != 0)
			break;
		if (!extend)
			bufmgr_latch(buf, BM_EXCL);
		make_page(bufmgr_page(buf), d->page_size, b, version);
		page_set_lsn(bufmgr_page(buf), lsn);
		bufmgr_mark_dirty(buf, lsn);
		bufmgr_unlatch(buf);
		bufmgr_unpin(pool, buf);
	}
	walrec_free(&rb);
	return rc;
}

/* Step 3, in the child: never returns. */
static _Noreturn void writer(const struct demo *d)
{
	bufmgr *pool = NULL;
	wal *w = NULL;
	uint32_t q = d->npages / 4;
	int rc = storage_sim_start(d->journal);
	if (rc == 0)
		rc = open_wal(d, &w);
	if (rc == 0)
		rc = open_pool(d, w, &pool);
	/* the first quarter: rewritten, written and fsynced: durable */
	if (rc == 0)
		rc = write_pages(pool, w, d, 0, q, 2, false);
	if (rc == 0)
		rc = bufmgr_flush_all(pool);
	/* the rest: rewritten; the pool writes pages out as it evicts them
	 * (each after flushing the log up to its LSN), but nothing fsyncs
	 * them, and the last pool-full stay in memory */
	if (rc == 0)
		rc = write_pages(pool, w, d, q, d->npages, 2, false);
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

static enum verdict classify(bufmgr *pool, struct demo *d, wd_blkno b,
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
		page_set_lsn(expect, page_lsn(bufmgr_page(buf)));
		page_checksum_set(expect, d->page_size, b);
		if (memcmp(bufmgr_page(buf), expect, d->page_size) == 0)
			v = version == 1 ? V_OLD : V_NEW;
	}
	d->page_lsn[b] = v == V_WRONG ? 0 : page_lsn(bufmgr_page(buf));
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
	static const char rel_tail[] = "/" DB_BASE_DIR "/1"; /* DEMO_REL's file */
	for (size_t i = 0; i < r->nops; i++) {
		const st_sim_op *op = &r->ops[i];
		uint32_t kept = 0;
		size_t plen = op->path ? strlen(op->path) : 0;
		if (op->kind != ST_SIM_WRITE || op->off != (uint64_t)b * page_size ||
		    plen < sizeof rel_tail - 1 ||
		    strcmp(op->path + plen - (sizeof rel_tail - 1), rel_tail) != 0)
			continue; /* not a write of this block of the demo relation */
		for (uint32_t s = 0; s < op->nsectors; s++)
			kept += (op->mask[s / 8] >> (s % 8)) & 1;
		return kept == op->nsectors ? V_NEW : kept == 0 ? V_OLD : V_TORN;
	}
	return -1;
}

/* Step 5: reads every page back and checks it against the plan. */
static int read_back(struct demo *d, const st_sim_report *r)
{
	static const char mark[] = {'1', '2', 'T', '?'};
	uint32_t q = d->npages / 4, count[4] = {0}, bad = 0;
	uint8_t *expect = malloc(d->page_size);
	char first_torn[600] = "";
	bufmgr *pool;
	int rc = open_pool(d, NULL, &pool);

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

/* Step 1: control file, base/ and the log (small 64 KiB segments). */
static int create_db(struct demo *d)
{
	control_data cd;
	char id[33];
	wal *w;
	int rc;
	if ((rc = storage_mkdir(d->dir)) != 0 ||
	    (rc = control_create(d->dir, d->page_size, &cd)) != 0 ||
	    (rc = storage_mkdir(d->base)) != 0 || (rc = storage_sync_dir(d->dir)) != 0)
		return rc;
	wal_opts_default(&d->wo);
	d->wo.segment_size = WAL_SEG_SIZE_MIN;
	d->wo.page_size = d->page_size;
	memcpy(d->wo.db_id, cd.db_id, sizeof cd.db_id);
	cd.wal_segment_size = d->wo.segment_size;
	if ((rc = control_write(d->dir, &cd)) != 0 || (rc = wal_create(d->dir, &d->wo, &w)) != 0 ||
	    (rc = wal_close(w)) != 0)
		return rc;
	control_format_id(cd.db_id, id);
	printf("1. created database %s: page size %u, id %s,\n   write-ahead log in "
	       "%s/%s (%u KiB segments)\n",
	       d->dir, cd.page_size, id, d->dir, WAL_DIR, d->wo.segment_size >> 10);
	return 0;
}

/* Step 2: version 1 of every page, written and fsynced. */
static int initial_load(const struct demo *d)
{
	bufmgr *pool = NULL;
	wal *w = NULL;
	bm_stats st;
	wal_counters wc;
	int rc = open_wal(d, &w);
	if (rc == 0)
		rc = open_pool(d, w, &pool);
	if (rc == 0)
		rc = write_pages(pool, w, d, 0, d->npages, 1, true);
	if (rc == 0)
		rc = bufmgr_flush_all(pool);
	if (rc == 0) {
		bufmgr_stats(pool, &st);
		wal_stats(w, &wc);
		printf("2. wrote %u pages (version 1) through a %u-page buffer pool, each change\n"
		       "   logged first, and fsynced them: %" PRIu64 " evictions, %" PRIu64
		       " page writes\n   (%" PRIu64 " by eviction), %" PRIu64 " WAL records, %" PRIu64
		       " WAL fdatasyncs\n",
		       d->npages, d->pool_pages, st.evictions, st.writes, st.evict_writes,
		       wc.records, wc.fsyncs);
		rc = bufmgr_rel_close(pool, DEMO_REL);
	}
	bufmgr_destroy(pool);
	if (w && wal_close(w) != 0 && rc == 0)
		rc = WD_EIO;
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

/* true if lsn is one of the n (ascending) LSNs of lsns. */
static bool lsn_in(const wd_lsn *lsns, size_t n, wd_lsn lsn)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (lsns[mid] < lsn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && lsns[lo] == lsn;
}

/*
 * Step 6: reads the whole log back (after the power loss) and checks WAL
 * before data: every intact page's LSN is the LSN of a record in the log.
 */
static int check_log(const struct demo *d)
{
	wal_reader *rd = NULL;
	const wal_decoded *rec;
	wal_end_reason why;
	const char *detail;
	wd_lsn *lsns = NULL, end;
	size_t n = 0, cap = 0;
	uint32_t intact = 0, missing = 0;
	int rc = wal_reader_open(d->dir, d->wo.db_id, d->wo.segment_size,
				 d->page_size, &rd);
	if (rc == 0)
		rc = wal_reader_seek(rd, WAL_SEG_HEADER_SIZE);
	while (rc == 0 && (rc = wal_reader_next(rd, &rec)) == 0) {
		if (n == cap && !(lsns = realloc(lsns, (cap = cap ? 2 * cap : 256) * sizeof *lsns)))
			return tool_fail("demo", WD_ENOMEM, "reading the log");
		lsns[n++] = rec->lsn;
	}
	if (rc != WD_NOTFOUND) {
		wal_reader_close(rd);
		free(lsns);
		return tool_fail("demo", rc, "reading the log");
	}
	wal_reader_end(rd, &end, &why, &detail);
	for (wd_blkno b = 0; b < d->npages; b++) {
		if (!d->page_lsn[b])
			continue;
		intact++;
		missing += !lsn_in(lsns, n, d->page_lsn[b]);
	}
	printf("6. the write-ahead log after the power loss: %zu records, ending at " LSN_FMT
	       " (%s).\n   Of %u intact pages, %u carry an LSN that is not in the log%s\n",
	       n, LSN_ARGS(end), wal_end_reason_name(why), intact, missing,
	       missing ? ": WAL BEFORE DATA BROKEN"
		       : ": every page write\n   waited for the log to be durable up to "
			 "the page's LSN (WAL before data).");
	wal_reader_close(rd);
	free(lsns);
	return missing ? EXIT_ERROR : EXIT_OK;
}

int demo_main(int argc, char **argv)
{
	struct demo d = {.npages = 64, .page_size = 8192, .seed = 7};
	int rc2;
	st_sim_opts so = {.mode = ST_SIM_TORN, .sector_bytes = 512};
	st_sim_report r;
	int rc = parse_args(argc, argv, &d);

	if (rc != 0)
		return rc < 0 ? EXIT_OK : rc;
	d.pool_pages = d.npages / 4;
	if (strlen(d.dir) > 4000) {
		fprintf(stderr, "walden demo-wal: directory name too long\n");
		return EXIT_USAGE;
	}
	snprintf(d.base, sizeof d.base, "%.4000s/%s", d.dir, DB_BASE_DIR);
	snprintf(d.rel, sizeof d.rel, "%.4000s/%s/%u", d.dir, DB_BASE_DIR, DEMO_REL);
	snprintf(d.journal, sizeof d.journal, "%.4000s.journal", d.dir);
	if (storage_exists(d.dir) || storage_exists(d.journal)) {
		fprintf(stderr, "walden demo-wal: %s or %s already exists; pick a new DIR\n",
			d.dir, d.journal);
		return EXIT_ERROR;
	}
	if (!(d.page_lsn = calloc(d.npages, sizeof *d.page_lsn)))
		return tool_fail("demo", WD_ENOMEM, "allocating");
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
				 "synced pages survived,\n   torn ones were caught (full-page "
				 "images in the log will repair them)."
			       : "   MISMATCH: a page is not what the fault model allows");
	rc2 = check_log(&d);
	free(d.page_lsn);
	printf("\nLook closer: walden inspect %s; walden inspect %s --rel %u --block %u;\n"
	       "             walden waldump %s | tail; walden waldump %s --stats\n",
	       d.dir, d.dir, DEMO_REL, d.npages / 4, d.dir, d.dir);
	return rc ? rc : rc2;
}
