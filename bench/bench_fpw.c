/*
 * bench_fpw.c - `walden bench fpw`: what full-page writes cost, with and
 * without wal_compression, beside LMDB.
 *
 * Each (run, setting) is a child on a fresh database: it W2-loads --n keys
 * (random order, 1000 puts per durable commit; untimed), takes a
 * checkpoint (wd_checkpoint; checkpoint_timeout and max_wal_size are out
 * of reach, so no other checkpoint runs), and times --updates W5 random
 * overwrites (100 per durable commit). Right after a checkpoint, the
 * first change of each page logs that page's image (full_page_writes
 * on), so W5 pays for as many images as it touches pages: the cost a
 * workload pays once per checkpoint cycle. Measured: the WAL written
 * during W5 (the log's insert position before and after), per update,
 * and, read back from the log itself afterwards (untimed), the records,
 * the images and their stored bytes, of the heap and of the index.
 * The settings: full_page_writes on (wal_compression off, then on) and
 * off. wal_compression compresses images only: with full_page_writes off
 * there is nothing to compress, so that combination is not run. An LMDB
 * child runs the same load and W5 in the same run; the ratio is the
 * median of the per-run walden/LMDB ratios. The settings and LMDB rotate
 * which goes first.
 *
 * Entry point: bench_fpw_main.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/recov.h"
#include "recovery/control.h"
#include "tools/tools.h"
#include "txn/db.h"
#include "wal/reader.h"

enum { S_FPW, S_FPW_ZLIB, S_NOFPW, S_LMDB, S__N };
static const struct {
	const char *label, *json;
	int fpw, compression;
} settings[S__N] = {
	{"full_page_writes on", "fpw", 1, 0},
	{"  + wal_compression", "fpw_compression", 1, 1},
	{"full_page_writes off", "no_fpw", 0, 0},
	{"LMDB", "lmdb", 0, 0},
};

/* What the log holds between two positions. */
struct tally {
	double records, images, image_bytes, heap_images, index_images;
};

/* What a child sends back (walden's WAL fields stay 0 for LMDB). */
struct fpw_res {
	int ok;
	double upd_ops_s, wal_bytes;
	struct tally t;
	char err[512];
};

/* ---- options ---------------------------------------------------------------- */

static void fpw_usage(FILE *f, const char *name)
{
	(void)name;
	fprintf(f,
		"usage: walden bench fpw [options]\n"
		"What full-page writes cost. Per setting, a child W2-loads N keys (random\n"
		"order, 1000 puts per durable commit; untimed), takes a checkpoint, then\n"
		"times U W5 random overwrites (100 per durable commit): right after the\n"
		"checkpoint, each page's first change logs its image. Settings:\n"
		"full_page_writes on with wal_compression off and on, and full_page_writes\n"
		"off (compression only applies to images, so it is not run without them).\n"
		"Reported: W5 updates/s and walden/LMDB ratio (LMDB runs the same load and\n"
		"W5 in the same run), WAL bytes written during W5 and per update, and, read\n"
		"back from the log, the images logged (heap, index) and their bytes.\n"
		"Medians of the runs. A table and one JSON line.\n"
		"  -n, --n N              keys loaded (default 1000000)\n"
		"  -u, --updates U        W5 overwrites (default 200000)\n"
		"  -m, --pool-mb N        walden buffer pool in MiB (default 256)\n"
		"  -r, --runs N           runs; medians are reported (default 3)\n"
		"  -q, --quick            a smoke-test scale: N 5000, U 5000, 1 run, pool\n"
		"                         16 MiB (options given still apply)\n"
		"  -d, --dir DIR          scratch directory base (default $TMPDIR or\n"
		"                         /var/tmp; must be a real disk, not tmpfs); removed\n"
		"                         at the end\n"
		"  -j, --json             print only the JSON line\n"
		"  -h, --help             this text\n");
}

/* ---- reading the log back -------------------------------------------------------- */

/* Adds one record's images to t, by the relation they belong to. */
static void tally_record(const wal_decoded *rec, const db_table_info *ti, struct tally *t)
{
	t->records++;
	for (unsigned b = 0; b < rec->nblocks; b++) {
		const wal_block_ref *ref = &rec->blocks[b];
		if (!ref->image_len)
			continue;
		t->images++;
		t->image_bytes += ref->image_len;
		if (ref->rel == ti->heap_rel)
			t->heap_images++;
		else if (ref->rel == ti->index_rel)
			t->index_images++;
	}
}

/* The records of the log of h's database from `from` up to `to` (both
 * record positions, the log flushed up to `to`), into t. 0 or -1. */
static int tally_log(struct eh *h, const wd_options *wo, wd_lsn from, wd_lsn to,
		     struct tally *t)
{
	const db_table_info *ti = db_table_info_of(h->t);
	const wal_decoded *rec;
	wal_reader *r = NULL;
	control_data cd;
	int rc = control_read(db_dir(h->db), &cd);
	if (rc == 0)
		rc = wal_reader_open(db_dir(h->db), cd.db_id, wo->wal_segment_size,
				     db_page_size(h->db), &r);
	if (rc == 0)
		rc = wal_reader_seek(r, from);
	while (rc == 0 && wal_reader_position(r) < to && (rc = wal_reader_next(r, &rec)) == 0)
		tally_record(rec, ti, t);
	wal_reader_close(r);
	if (rc != 0)
		snprintf(h->err, sizeof h->err, "reading the log back: %s: %s", wd_strerror(rc),
			 wd_last_error());
	return rc ? -1 : 0;
}

/* ---- one child ---------------------------------------------------------------- */

/* What fpw_body gets. */
struct fpw_job {
	const struct recov_opts *o;
	int s, run;
	const char *dir;
};

/* walden's options for setting s: no checkpoint but the one we take. */
static void setting_options(int s, wd_options *wo)
{
	wd_options_default(wo);
	wo->full_page_writes = settings[s].fpw;
	wo->wal_compression = settings[s].compression;
	wo->checkpoint_timeout_s = RECOV_HUGE_TIMEOUT_S;
	wo->max_wal_size_bytes = UINT64_MAX / 4;
}

/* walden: the checkpoint after the load, then W5 timed and the log read
 * back. false on error. */
static bool walden_w5(const struct fpw_job *j, const wd_options *wo, struct eh *h,
		      struct keysrc *src, struct fpw_res *r)
{
	wd_lsn p0, p1;
	int rc = wd_checkpoint(h->db);
	if (rc != 0) {
		snprintf(h->err, sizeof h->err, "wd_checkpoint: %s: %s", wd_strerror(rc),
			 wd_last_error());
		return false;
	}
	p0 = recov_insert_pos(h);
	if ((r->upd_ops_s = tables_puts(&walden_engine, h, src, (uint64_t)j->o->t.updates,
					W5_PER_TXN, 1)) < 0)
		return false;
	p1 = recov_insert_pos(h);
	r->wal_bytes = (double)(p1 - p0);
	return tally_log(h, wo, p0, p1, &r->t) == 0;
}

static void fpw_body(void *arg, void *res)
{
	const struct fpw_job *j = arg;
	const struct engine *e = j->s == S_LMDB ? &lmdb_engine : &walden_engine;
	struct tables_opts t = j->o->t;
	struct fpw_res *r = res;
	struct eh h = {.o = &t};
	struct keysrc src = recov_update_keys(t.n, j->run);
	wd_options wo;

	setting_options(j->s, &wo);
	t.wd = &wo;
	if (e->open(&h, j->dir) != 0 || recov_load(e, &h, t.n, j->run) < 0)
		goto fail;
	if (j->s == S_LMDB
		    ? (r->upd_ops_s = tables_puts(e, &h, &src, (uint64_t)t.updates, W5_PER_TXN, 1)) < 0
		    : !walden_w5(j, &wo, &h, &src, r))
		goto fail;
	if (e->close(&h) != 0)
		goto fail;
	r->ok = 1;
	return;
fail:
	snprintf(r->err, sizeof r->err, "%s", h.err);
}

/* Setting s of run `run` in a child on a fresh directory under base,
 * removed afterwards. 0, or -1 (printed). */
static int spawn(const struct recov_opts *o, int s, int run, const char *base, struct fpw_res *r)
{
	char dir[4200];
	struct fpw_job j = {o, s, run, dir};
	int rc;
	snprintf(dir, sizeof dir, "%s/%s-%d", base, settings[s].json, run);
	memset(r, 0, sizeof *r);
	rc = bench_fork(fpw_body, &j, r, sizeof *r, NULL, r->err, sizeof r->err);
	bench_rmrf(dir);
	if (rc == 0 && r->ok)
		return 0;
	fprintf(stderr, "walden bench fpw: %s, run %d: %s\n", settings[s].json, run + 1, r->err);
	return -1;
}

/* Every setting in every run, rotating which goes first. */
static int fpw_measure(const struct recov_opts *o, const char *dir, void *out)
{
	struct fpw_res (*res)[S__N] = out;
	for (int i = 0; i < o->t.runs; i++)
		for (int x = 0; x < S__N; x++) {
			int s = (x + i) % S__N;
			uint64_t t0 = bench_now_ns();
			if (spawn(o, s, i, dir, &res[i][s]) != 0)
				return -1;
			if (!o->t.json)
				fprintf(stderr, "run %d/%d: %s done in %.1f s\n", i + 1, o->t.runs,
					settings[s].json, (double)(bench_now_ns() - t0) / 1e9);
		}
	return 0;
}

/* ---- medians and the report ------------------------------------------------------- */

struct med {
	double upd_ops_s, ratio, wal_bytes, records, images, image_bytes, heap_images, index_images;
};

static void medians(const struct recov_opts *o, struct fpw_res (*res)[S__N], struct med m[S__N])
{
	size_t n = (size_t)o->t.runs, stride = sizeof res[0];
	double col[RECOV_MAX_RUNS];
	for (int s = 0; s < S__N; s++) {
		const void *c = &res[0][s];
		struct med *x = &m[s];
#define MF(f, field) (x->f = bench_median_at(c, stride, n, offsetof(struct fpw_res, field)))
		MF(upd_ops_s, upd_ops_s), MF(wal_bytes, wal_bytes), MF(records, t.records);
		MF(images, t.images), MF(image_bytes, t.image_bytes);
		MF(heap_images, t.heap_images), MF(index_images, t.index_images);
#undef MF
		for (size_t i = 0; i < n; i++)
			col[i] = res[i][S_LMDB].upd_ops_s > 0
					 ? res[i][s].upd_ops_s / res[i][S_LMDB].upd_ops_s
					 : 0;
		x->ratio = bench_median(col, n);
	}
}

static void report_table(const struct recov_opts *o, const char *dir, const char *fs,
			 const struct med m[S__N])
{
	double u = (double)o->t.updates;
	printf("walden bench fpw: N=%lld, %lld W5 updates right after a checkpoint (100 per "
	       "durable commit), pool %llu MiB, %d run(s), medians\nscratch %s (%s)\n",
	       o->t.n, o->t.updates, (unsigned long long)o->t.pool_mb, o->t.runs, dir, fs);
	printf("  %-22s %12s %8s %9s %9s %9s %14s %10s %7s\n", "setting", "updates/s",
	       "vs LMDB", "WAL MiB", "B/update", "images", "heap+index", "image MiB", "% WAL");
	for (int s = 0; s < S_LMDB; s++) {
		const struct med *x = &m[s];
		char split[32];
		snprintf(split, sizeof split, "%.0f+%.0f", x->heap_images, x->index_images);
		printf("  %-22s %12.0f %8.2f %9.1f %9.0f %9.0f %14s %10.1f %7.1f\n",
		       settings[s].label, x->upd_ops_s, x->ratio, x->wal_bytes / RECOV_MIB,
		       x->wal_bytes / u, x->images, split, x->image_bytes / RECOV_MIB,
		       x->wal_bytes > 0 ? 100 * x->image_bytes / x->wal_bytes : 0);
	}
	printf("  %-22s %12.0f %8s %9s\n", "LMDB (no log)", m[S_LMDB].upd_ops_s, "1", "-");
	if (m[S_NOFPW].wal_bytes > 0)
		printf("full_page_writes on writes x%.2f the WAL of off (x%.2f with "
		       "wal_compression); W5 updates/s x%.2f (x%.2f)\n",
		       m[S_FPW].wal_bytes / m[S_NOFPW].wal_bytes,
		       m[S_FPW_ZLIB].wal_bytes / m[S_NOFPW].wal_bytes,
		       m[S_NOFPW].upd_ops_s > 0 ? m[S_FPW].upd_ops_s / m[S_NOFPW].upd_ops_s : 0,
		       m[S_NOFPW].upd_ops_s > 0 ? m[S_FPW_ZLIB].upd_ops_s / m[S_NOFPW].upd_ops_s : 0);
}

static void report_json(const struct recov_opts *o, const char *dir, const char *fs,
			const struct med m[S__N])
{
	printf("{\"bench\":\"fpw\",\"n\":%lld,\"updates\":%lld,\"pool_mb\":%llu,\"runs\":%d,"
	       "\"dir\":",
	       o->t.n, o->t.updates, (unsigned long long)o->t.pool_mb, o->t.runs);
	tool_json_str(stdout, dir);
	printf(",\"fs\":\"%s\",\"settings\":{", fs);
	for (int s = 0; s < S_LMDB; s++) {
		const struct med *x = &m[s];
		printf("%s\"%s\":{\"full_page_writes\":%s,\"wal_compression\":%s,"
		       "\"updates_s\":%.0f,\"ratio_vs_lmdb\":%.3f,\"wal_bytes\":%.0f,"
		       "\"bytes_per_update\":%.1f,\"records\":%.0f,\"images\":%.0f,"
		       "\"heap_images\":%.0f,\"index_images\":%.0f,\"image_bytes\":%.0f}",
		       s ? "," : "", settings[s].json, settings[s].fpw ? "true" : "false",
		       settings[s].compression ? "true" : "false", x->upd_ops_s, x->ratio,
		       x->wal_bytes, x->wal_bytes / (double)o->t.updates, x->records, x->images,
		       x->heap_images, x->index_images, x->image_bytes);
	}
	printf("},\"lmdb\":{\"updates_s\":%.0f}}\n", m[S_LMDB].upd_ops_s);
}

/* ---- driver ----------------------------------------------------------------------- */

/* The medians, the table unless --json, the JSON line. */
static void fpw_report(const struct recov_opts *o, const char *dir, const char *fs, void *res)
{
	struct med m[S__N];
	medians(o, res, m);
	if (!o->t.json)
		report_table(o, dir, fs, m);
	report_json(o, dir, fs, m);
}

int bench_fpw_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"n", required_argument, NULL, 'n'},       {"updates", required_argument, NULL, 'u'},
		{"pool-mb", required_argument, NULL, 'm'}, {"runs", required_argument, NULL, 'r'},
		{"quick", no_argument, NULL, 'q'},         {"dir", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const struct recov_cmd cmd = {
		.shortopts = "n:u:m:r:qd:jh", .longopts = longopts, .usage = fpw_usage,
		.full = {.t = {.n = 1000000, .updates = 200000, .runs = 3, .pool_mb = 256}},
		.quick = {.t = {.n = 5000, .updates = 5000, .runs = 1, .pool_mb = 16}},
		.run_size = sizeof(struct fpw_res[S__N]), .measure = fpw_measure,
		.report = fpw_report,
	};
	return recov_main(argc, argv, &cmd);
}
