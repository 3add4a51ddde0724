/*
 * bench_redo.c - `walden bench redo`: how fast recovery replays the log.
 *
 * One child writes the log: it creates a database with checkpoints held
 * off (checkpoint_timeout and max_wal_size out of reach), W2-loads --n keys
 * in a random permutation (1000 puts per durable commit), then makes W5
 * random overwrites (100 per durable commit) until the WAL past the redo
 * point reaches --wal-mb. Its pool (--gen-pool-mb) holds every page, so no
 * page reaches the disk before the crash: after its last commit is
 * durable the child kills itself (SIGKILL), and recovery has to replay
 * every record of the log onto pages that are zero on disk.
 *
 * Each measurement recovers a fresh copy of that crashed directory (the
 * copy is fsync'd first, so that its write-back does not run during the
 * measurement) in a fresh process: the wall time of wd_open, and the
 * report of what it did. Two pools: one that holds every page (--pool-mb,
 * by default sized from the data files) and one 8x smaller, which must
 * evict and re-read during redo. How much of the copy sat in the OS page
 * cache is measured (mincore) before each open; --cold asks the kernel to
 * drop it (fdatasync + POSIX_FADV_DONTNEED, no privilege needed; best
 * effort). After the open, untimed, RECOV_CHECK_KEYS random keys are read
 * back and checked, and the database is closed.
 *
 * Reported per pool: WAL replayed (end of WAL - redo start), wd_open wall
 * time, the passes (analysis+redo, repair, undo), MiB/s and records/s of
 * the replay, page changes applied / images restored / skipped, and the
 * ratio of replay speed to the speed at which the child wrote the log.
 * Medians of --runs recoveries per pool; the pools alternate which goes
 * first. LMDB keeps no log (copy-on-write: the last committed meta page
 * is the state after a crash), so there is no peer to compare with, and
 * the report says so.
 *
 * Entry point: bench_redo_main.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/recov.h"
#include "tools/tools.h"

enum { P_ALL, P_EIGHTH, P__N };
static const char *const pool_names[P__N] = {"all-pages", "eighth"};

/* What the writing child sends back. */
struct gen_res {
	int ok;
	double load_s, load_wal, upd_s, upd_wal, updates, wal_total;
	char err[512];
};

/* All the results: the log written once, the pools, then each run's
 * recovery with each pool. */
struct redo_res {
	struct gen_res g;
	uint64_t pool[P__N];
	double data_bytes;
	struct recov_res run[][P__N];
};

/* ---- options ---------------------------------------------------------------- */

static void redo_usage(FILE *f, const char *name)
{
	(void)name;
	fprintf(f,
		"usage: walden bench redo [options]\n"
		"How fast crash recovery replays the WAL. A child W2-loads N keys (random\n"
		"order, 1000 puts per durable commit), then makes W5 random overwrites (100\n"
		"per durable commit) until --wal-mb of WAL lie past the redo point, with\n"
		"checkpoints held off and a pool holding every page; after its last\n"
		"durable commit it is killed (SIGKILL). Copies of that crashed directory\n"
		"are then recovered (wd_open in a fresh process), with a pool that holds\n"
		"every page and with one 8x smaller. Per pool: WAL replayed, wd_open wall\n"
		"time, pass times, MiB/s and records/s replayed, pages applied / images /\n"
		"skipped, and replay speed over the speed that wrote the log. LMDB keeps no\n"
		"log to replay (copy-on-write), so there is no peer ratio. Medians of the\n"
		"runs. A table and one JSON line.\n"
		"  -n, --n N              keys loaded (default 1000000)\n"
		"  -w, --wal-mb N         MiB of WAL to replay (default 1024)\n"
		"  -m, --pool-mb N        the large recovery pool in MiB (default: the data\n"
		"                         files' size + 1/8 + 16 MiB); the small is 1/8 of it\n"
		"  -g, --gen-pool-mb N    pool of the run that writes the log (default 1024)\n"
		"  -r, --runs N           recoveries per pool; medians (default 3)\n"
		"  -c, --cold             drop the copy from the OS page cache before each\n"
		"                         open (fdatasync + POSIX_FADV_DONTNEED; best effort,\n"
		"                         the resident share is reported either way)\n"
		"  -q, --quick            a smoke-test scale: N 5000, 4 MiB of WAL, 1 run,\n"
		"                         a 64 MiB writing pool (options given still apply)\n"
		"  -d, --dir DIR          scratch directory base (default $TMPDIR or\n"
		"                         /var/tmp; must be a real disk, not tmpfs); needs\n"
		"                         about 2x (WAL + data) free; removed at the end\n"
		"  -j, --json             print only the JSON line\n"
		"  -h, --help             this text\n");
}

/* ---- the child that writes the log and dies ------------------------------------ */

/* Until the WAL past the redo point reaches --wal-mb: W5 updates, one
 * durable commit of W5_PER_TXN at a time. false on error. */
static bool update_until(const struct recov_opts *o, struct eh *h, struct gen_res *r)
{
	struct keysrc src = recov_update_keys(o->t.n, 0);
	uint64_t target = o->wal_mb << 20, t0 = bench_now_ns();
	wd_lsn p0 = recov_insert_pos(h);
	while (recov_wal_since_redo(h) < target) {
		if (tables_puts(&walden_engine, h, &src, W5_PER_TXN, W5_PER_TXN, 1) < 0)
			return false;
		r->updates += W5_PER_TXN;
	}
	r->upd_s = (double)(bench_now_ns() - t0) / 1e9;
	r->upd_wal = (double)(recov_insert_pos(h) - p0);
	return true;
}

/* What gen_body gets. */
struct gen_job {
	const struct recov_opts *o;
	const char *dir;
};

/* The body of the writing child: the database is left open for the crash. */
static void gen_body(void *arg, void *res)
{
	const struct gen_job *j = arg;
	const struct recov_opts *o = j->o;
	struct gen_res *r = res;
	struct tables_opts t = o->t;
	struct eh h = {.o = &t};
	wd_options wo;
	wd_lsn p0;

	wd_options_default(&wo);
	wo.checkpoint_timeout_s = RECOV_HUGE_TIMEOUT_S;
	wo.max_wal_size_bytes = UINT64_MAX / 4;
	t.wd = &wo;
	t.pool_mb = o->gen_pool_mb;
	if (walden_engine.open(&h, j->dir) != 0)
		goto fail;
	p0 = recov_insert_pos(&h);
	if ((r->load_s = recov_load(&walden_engine, &h, o->t.n, 0)) < 0)
		goto fail;
	r->load_wal = (double)(recov_insert_pos(&h) - p0);
	if (!update_until(o, &h, r))
		goto fail;
	r->wal_total = (double)recov_wal_since_redo(&h);
	r->ok = 1;
	return;
fail:
	snprintf(r->err, sizeof r->err, "%s", h.err);
}

/* ---- the recovering children ---------------------------------------------------- */

/* A copy of crashed at copy, dropped from the cache with --cold, its
 * resident share noted, recovered in a child; the copy is removed. */
static int recover_copy(const struct recov_opts *o, const char *crashed, const char *copy,
			uint64_t pool_bytes, struct recov_res *r)
{
	int rc;
	memset(r, 0, sizeof *r);
	if (bench_copy_tree(crashed, copy, r->err, sizeof r->err) != 0) {
		bench_rmrf(copy);
		return -1;
	}
	if (o->cold && bench_cache_drop(copy) != 0)
		fprintf(stderr, "walden bench redo: could not drop %s from the page cache\n", copy);
	rc = recov_recover(o, copy, pool_bytes, r);
	bench_rmrf(copy);
	return rc;
}

/* The large pool: the data files (all but wal/) + 1/8 + 16 MiB, unless
 * --pool-mb; the small one 1/8 of it (at least 32 pages of 8 KiB). */
static void pool_sizes(const struct recov_opts *o, const char *crashed, uint64_t pool[P__N],
		       double *data_bytes)
{
	struct bench_du d;
	bench_du(crashed, &d);
	*data_bytes = d.bytes - d.wal_bytes;
	pool[P_ALL] = o->t.pool_mb ? o->t.pool_mb << 20
				   : ((uint64_t)(*data_bytes * 1.125) + (16u << 20)) & ~((1ull << 20) - 1);
	pool[P_EIGHTH] = pool[P_ALL] / 8 > (256u << 10) ? pool[P_ALL] / 8 : 256u << 10;
}

/* ---- medians and the report ------------------------------------------------------- */

/* Medians over the runs of one pool. */
struct med {
	double open_s, resident_pct, wal_bytes, records, applied, skipped, images;
	double analysis_ms, redo_ms, repair_ms, undo_ms, checkpoint_ms, other_ms;
	double mib_s, redo_mib_s, records_s, vs_gen;
};

static void medians(const struct recov_opts *o, const struct gen_res *g,
		    const struct recov_res (*res)[P__N], struct med m[P__N])
{
	double gen_mib_s = g->wal_total / RECOV_MIB / (g->load_s + g->upd_s);
	double col[4][RECOV_MAX_RUNS];
	size_t n = (size_t)o->t.runs, stride = sizeof res[0];
	for (int p = 0; p < P__N; p++) {
		const void *c = &res[0][p];
		struct med *x = &m[p];
#define MF(f, field) (x->f = bench_median_at(c, stride, n, offsetof(struct recov_res, field)))
		MF(open_s, open_s), MF(resident_pct, resident_pct), MF(wal_bytes, rep.wal_bytes);
		MF(records, rep.records), MF(applied, rep.applied), MF(skipped, rep.skipped);
		MF(images, rep.images), MF(redo_ms, rep.redo_ms), MF(repair_ms, rep.repair_ms);
		MF(undo_ms, rep.undo_ms), MF(analysis_ms, rep.analysis_ms);
		MF(checkpoint_ms, rep.checkpoint_ms);
#undef MF
		for (size_t i = 0; i < n; i++) {
			const struct recov_res *r = &res[i][p];
			col[0][i] = r->rep.wal_bytes / RECOV_MIB / r->open_s;
			col[1][i] = r->rep.redo_ms > 0 ? r->rep.wal_bytes / RECOV_MIB / (r->rep.redo_ms / 1e3) : 0;
			col[2][i] = r->rep.records / r->open_s;
			col[3][i] = r->open_s * 1e3 - r->rep.analysis_ms - r->rep.redo_ms -
				    r->rep.repair_ms - r->rep.undo_ms - r->rep.checkpoint_ms;
		}
		x->other_ms = bench_median(col[3], n);
		x->mib_s = bench_median(col[0], n);
		x->redo_mib_s = bench_median(col[1], n);
		x->records_s = bench_median(col[2], n);
		x->vs_gen = gen_mib_s > 0 ? x->mib_s / gen_mib_s : 0;
	}
}

static const char lmdb_note[] =
	"LMDB: no log to replay (copy-on-write: after a crash the last committed meta "
	"page is the state), so no peer ratio";

static void report_table(const struct recov_opts *o, const char *dir, const char *fs,
			 const struct gen_res *g, double data_bytes, const uint64_t pool[P__N],
			 const struct med m[P__N])
{
	double gen_s = g->load_s + g->upd_s;
	printf("walden bench redo: N=%lld, %d B keys, %d B values, WAL target %llu MiB, %d "
	       "run(s), medians\nscratch %s (%s)\n",
	       o->t.n, KEY_BYTES, RECOV_VALUE_BYTES, (unsigned long long)o->wal_mb, o->t.runs, dir,
	       fs);
	printf("writing the log (one child, checkpoints held off, pool %llu MiB, killed after "
	       "its last durable commit):\n",
	       (unsigned long long)o->gen_pool_mb);
	printf("  W2 rand-load   %10.0f puts %8.1f s %9.1f MiB WAL %8.1f MiB/s\n", (double)o->t.n,
	       g->load_s, g->load_wal / RECOV_MIB, g->load_wal / RECOV_MIB / g->load_s);
	printf("  W5 updates     %10.0f puts %8.1f s %9.1f MiB WAL %8.1f MiB/s\n", g->updates,
	       g->upd_s, g->upd_wal / RECOV_MIB, g->upd_s > 0 ? g->upd_wal / RECOV_MIB / g->upd_s : 0);
	printf("  past the redo point            %8.1f s %9.1f MiB WAL %8.1f MiB/s\n", gen_s,
	       g->wal_total / RECOV_MIB, g->wal_total / RECOV_MIB / gen_s);
	printf("data files %.1f MiB; each recovery opens a fresh fsync'd copy%s\n",
	       data_bytes / RECOV_MIB, o->cold ? ", dropped from the page cache (--cold)" : "");
	printf("  %-36s %14s %14s\n", "recovery (wd_open, fresh process)", "all pages", "1/8 pool");
	printf("  %-36s %14.0f %14.0f\n", "pool, MiB", (double)pool[P_ALL] / RECOV_MIB,
	       (double)pool[P_EIGHTH] / RECOV_MIB);
#define ROW(label, fmt, f) printf("  %-36s " fmt " " fmt "\n", label, m[P_ALL].f, m[P_EIGHTH].f)
	ROW("OS page cache resident before, %", "%14.1f", resident_pct);
	ROW("WAL replayed, MiB", "%14.1f", wal_bytes / RECOV_MIB);
	ROW("wd_open wall, s", "%14.3f", open_s);
	ROW("  analysis, ms", "%14.1f", analysis_ms);
	ROW("  redo, ms", "%14.1f", redo_ms);
	ROW("  repair, ms", "%14.1f", repair_ms);
	ROW("  undo, ms", "%14.1f", undo_ms);
	ROW("  end-of-recovery checkpoint, ms", "%14.1f", checkpoint_ms);
	ROW("  rest (fsyncs, end-of-WAL scan, setup)", "%14.1f", other_ms);
	ROW("replay MiB/s (WAL / wall)", "%14.1f", mib_s);
	ROW("redo pass MiB/s (WAL / redo)", "%14.1f", redo_mib_s);
	ROW("records/s (wall)", "%14.0f", records_s);
	ROW("records scanned", "%14.0f", records);
	ROW("page changes applied", "%14.0f", applied);
	ROW("full-page images restored", "%14.0f", images);
	ROW("skipped, page newer", "%14.0f", skipped);
	ROW("replay / writing speed", "%14.2f", vs_gen);
#undef ROW
	printf("%s\n", lmdb_note);
}

static void report_json(const struct recov_opts *o, const char *dir, const char *fs,
			const struct gen_res *g, double data_bytes, const uint64_t pool[P__N],
			const struct med m[P__N])
{
	printf("{\"bench\":\"redo\",\"n\":%lld,\"key_bytes\":%d,\"value_bytes\":%d,\"wal_mb\":%llu,"
	       "\"runs\":%d,\"cold\":%s,\"dir\":",
	       o->t.n, KEY_BYTES, RECOV_VALUE_BYTES, (unsigned long long)o->wal_mb, o->t.runs,
	       o->cold ? "true" : "false");
	tool_json_str(stdout, dir);
	printf(",\"fs\":\"%s\",\"write\":{\"load_s\":%.3f,\"load_wal_bytes\":%.0f,"
	       "\"updates\":%.0f,\"update_s\":%.3f,\"update_wal_bytes\":%.0f,\"wal_bytes\":%.0f,"
	       "\"mib_s\":%.2f,\"pool_mb\":%llu},\"data_bytes\":%.0f,\"recovery\":{",
	       fs, g->load_s, g->load_wal, g->updates, g->upd_s, g->upd_wal, g->wal_total,
	       g->wal_total / RECOV_MIB / (g->load_s + g->upd_s), (unsigned long long)o->gen_pool_mb,
	       data_bytes);
	for (int p = 0; p < P__N; p++) {
		const struct med *x = &m[p];
		printf("%s\"%s\":{\"pool_bytes\":%llu,\"resident_pct\":%.1f,\"wal_bytes\":%.0f,"
		       "\"open_s\":%.4f,\"analysis_ms\":%.1f,\"redo_ms\":%.1f,\"repair_ms\":%.1f,"
		       "\"undo_ms\":%.1f,\"checkpoint_ms\":%.1f,\"other_ms\":%.1f,"
		       "\"mib_s\":%.2f,\"redo_mib_s\":%.2f,\"records_s\":%.0f,\"records\":%.0f,"
		       "\"applied\":%.0f,\"images\":%.0f,\"skipped\":%.0f,\"ratio_vs_write\":%.3f}",
		       p ? "," : "", pool_names[p], (unsigned long long)pool[p], x->resident_pct,
		       x->wal_bytes, x->open_s, x->analysis_ms, x->redo_ms, x->repair_ms, x->undo_ms,
		       x->checkpoint_ms, x->other_ms, x->mib_s,
		       x->redo_mib_s, x->records_s, x->records, x->applied, x->images, x->skipped,
		       x->vs_gen);
	}
	printf("},\"lmdb\":\"%s\"}\n", lmdb_note);
}

/* ---- driver ----------------------------------------------------------------------- */

/* Writes the log in a child that dies, into crashed. 0 or -1 (printed). */
static int write_log(const struct recov_opts *o, const char *crashed, struct gen_res *g)
{
	struct gen_job j = {o, crashed};
	uint64_t t0 = bench_now_ns();
	memset(g, 0, sizeof *g);
	if (bench_fork_crash(gen_body, &j, g, sizeof *g, g->err, sizeof g->err) != 0 || !g->ok) {
		fprintf(stderr, "walden bench redo: writing the log: %s\n", g->err);
		return -1;
	}
	if (!o->t.json)
		fprintf(stderr, "log written: %.1f MiB in %.1f s, child killed\n",
			g->wal_total / RECOV_MIB, (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}

/* The log written once, then every recovery of every run, the pools
 * alternating which goes first. */
static int redo_measure(const struct recov_opts *o, const char *dir, void *out)
{
	struct redo_res *res = out;
	char crashed[4200], copy[4200];
	snprintf(crashed, sizeof crashed, "%s/crashed", dir);
	if (write_log(o, crashed, &res->g) != 0)
		return -1;
	pool_sizes(o, crashed, res->pool, &res->data_bytes);
	for (int i = 0; i < o->t.runs; i++)
		for (int k = 0; k < P__N; k++) {
			int p = i % 2 ? P__N - 1 - k : k;
			struct recov_res *r = &res->run[i][p];
			snprintf(copy, sizeof copy, "%s/copy-%d-%s", dir, i, pool_names[p]);
			if (recover_copy(o, crashed, copy, res->pool[p], r) != 0) {
				fprintf(stderr, "walden bench redo: run %d, pool %s: %s\n", i + 1,
					pool_names[p], r->err);
				return -1;
			}
			if (!o->t.json)
				fprintf(stderr, "run %d/%d: pool %s: wd_open %.2f s\n", i + 1,
					o->t.runs, pool_names[p], r->open_s);
		}
	return 0;
}

/* The medians, the table unless --json, the JSON line. */
static void redo_report(const struct recov_opts *o, const char *dir, const char *fs, void *out)
{
	struct redo_res *res = out;
	struct med m[P__N];
	medians(o, &res->g, res->run, m);
	if (!o->t.json)
		report_table(o, dir, fs, &res->g, res->data_bytes, res->pool, m);
	report_json(o, dir, fs, &res->g, res->data_bytes, res->pool, m);
}

int bench_redo_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"n", required_argument, NULL, 'n'},       {"wal-mb", required_argument, NULL, 'w'},
		{"pool-mb", required_argument, NULL, 'm'}, {"gen-pool-mb", required_argument, NULL, 'g'},
		{"runs", required_argument, NULL, 'r'},    {"cold", no_argument, NULL, 'c'},
		{"quick", no_argument, NULL, 'q'},         {"dir", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const struct recov_cmd cmd = {
		.shortopts = "n:w:m:g:r:cqd:jh", .longopts = longopts, .usage = redo_usage,
		.full = {.t = {.n = 1000000, .runs = 3}, .wal_mb = 1024, .gen_pool_mb = 1024},
		.quick = {.t = {.n = 5000, .runs = 1}, .wal_mb = 4, .gen_pool_mb = 64},
		.head_size = sizeof(struct redo_res), .run_size = sizeof(struct recov_res[P__N]),
		.measure = redo_measure, .report = redo_report,
	};
	return recov_main(argc, argv, &cmd);
}
