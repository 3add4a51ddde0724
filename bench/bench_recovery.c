/*
 * bench_recovery.c - `walden bench recovery`: recovery time after a crash
 * as a function of max_wal_size, and what each setting costs the forward
 * work, beside LMDB.
 *
 * For each --max-wal setting, a child creates a database with that
 * max_wal_size and the checkpointer running (checkpoint_timeout out of
 * reach, so that WAL volume alone triggers checkpoints, paced by
 * checkpoint_completion_target as in PostgreSQL), W2-loads --n keys
 * (random order, 1000 puts per durable commit), then times --updates W5
 * random overwrites (100 per durable commit) and kills itself (SIGKILL)
 * after its last durable commit. The checkpoints completed meanwhile are
 * counted through the trace callback (the "checkpoint ... rc=0" line of
 * the recovery module). Another child then recovers that directory: the
 * wall time of wd_open and the report of what it replayed. An LMDB child
 * runs the same load and updates in the same run and is killed the same
 * way; its reopen is timed too (copy-on-write: it has nothing to replay).
 *
 * Reported per setting: checkpoints, W5 updates/s and its ratio to LMDB's
 * (the median of the per-run ratios), WAL written by the updates, WAL
 * replayed, wd_open wall time and its growth over the smallest setting,
 * the passes, pages applied and images restored. The crash lands wherever
 * the checkpoint cycle happens to be, so the WAL replayed varies from run
 * to run between about 0 and 2x max_wal_size (a checkpoint in progress
 * does not move the redo point until it ends): medians of --runs runs;
 * the settings and engines rotate which goes first.
 *
 * Entry point: bench_recovery_main.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/recov.h"
#include "tools/tools.h"

/* Per run: the settings, then LMDB. */
#define SLOTS (RECOV_MAX_WAL + 1)

/* What a forward child sends back. */
struct fwd_res {
	int ok;
	double load_s, upd_s, upd_ops_s, upd_wal, checkpoints;
	char err[512];
};

/* One run of one setting (or LMDB): the forward part, the recovery. */
struct slot {
	struct fwd_res f;
	struct recov_res r;
};

/* ---- options ---------------------------------------------------------------- */

static void recovery_usage(FILE *f, const char *name)
{
	(void)name;
	fprintf(f,
		"usage: walden bench recovery [options]\n"
		"Recovery time after a crash as max_wal_size grows, and what each setting\n"
		"costs the forward work. Per setting, a child W2-loads N keys (random order,\n"
		"1000 puts per durable commit), times U W5 random overwrites (100 per durable\n"
		"commit) with the checkpointer running on WAL volume alone, and is killed\n"
		"(SIGKILL) after its last durable commit; a fresh process then recovers it:\n"
		"wd_open wall time, WAL replayed, pass times. LMDB runs the same load and\n"
		"updates in the same run and is killed too; its reopen is timed (it has no\n"
		"log to replay). Reported: checkpoints, W5 updates/s and walden/LMDB ratio,\n"
		"WAL written and replayed, recovery time and its growth over the smallest\n"
		"setting. Medians of the runs. A table and one JSON line.\n"
		"  -n, --n N              keys loaded (default 1000000)\n"
		"  -u, --updates U        timed W5 overwrites per run (default 2000000)\n"
		"  -W, --max-wal LIST     max_wal_size settings in MiB, comma separated, up\n"
		"                         to %d, run in increasing order (default\n"
		"                         64,256,1024)\n"
		"  -m, --pool-mb N        walden buffer pool in MiB, of the run and of the\n"
		"                         recovery (default 256)\n"
		"  -r, --runs N           runs; medians are reported (default 3)\n"
		"  -q, --quick            a smoke-test scale: N 5000, U 20000, settings\n"
		"                         1,2,4 MiB, 1 run, pool 16 MiB (options given still\n"
		"                         apply)\n"
		"  -d, --dir DIR          scratch directory base (default $TMPDIR or\n"
		"                         /var/tmp; must be a real disk, not tmpfs); removed\n"
		"                         at the end\n"
		"  -j, --json             print only the JSON line\n"
		"  -h, --help             this text\n",
		RECOV_MAX_WAL);
}

/* ---- the forward children ------------------------------------------------------ */

/* Checkpoints completed so far in this process, from the trace. */
static atomic_uint_fast64_t ckpts_done;

static void count_checkpoints(void *arg, const char *module, const char *line)
{
	(void)arg;
	(void)module;
	if (strncmp(line, "checkpoint ", 11) == 0 && strstr(line, " rc=0"))
		atomic_fetch_add(&ckpts_done, 1);
}

/* What fwd_body gets: max_wal_mb 0 for LMDB. */
struct fwd_job {
	const struct recov_opts *o;
	uint64_t max_wal_mb;
	int run;
	const char *dir;
};

/* A forward child: load, timed updates; the database is left open for
 * the crash. */
static void fwd_body(void *arg, void *res)
{
	const struct fwd_job *j = arg;
	const struct engine *e = j->max_wal_mb ? &walden_engine : &lmdb_engine;
	struct tables_opts t = j->o->t;
	struct fwd_res *r = res;
	struct eh h = {.o = &t};
	struct keysrc src = recov_update_keys(t.n, j->run);
	uint64_t c0, t0;
	wd_options wo;
	wd_lsn p0 = 0;

	wd_options_default(&wo);
	wo.checkpoint_timeout_s = RECOV_HUGE_TIMEOUT_S;
	wo.max_wal_size_bytes = j->max_wal_mb << 20;
	t.wd = &wo;
	wd_trace_set_callback(count_checkpoints, NULL);
	if (j->max_wal_mb && wd_trace_enable("recovery") != 0)
		goto fail;
	if (e->open(&h, j->dir) != 0 || (r->load_s = recov_load(e, &h, t.n, j->run)) < 0)
		goto fail;
	c0 = atomic_load(&ckpts_done);
	if (j->max_wal_mb)
		p0 = recov_insert_pos(&h);
	t0 = bench_now_ns();
	if ((r->upd_ops_s = tables_puts(e, &h, &src, (uint64_t)t.updates, W5_PER_TXN, 1)) < 0)
		goto fail;
	r->upd_s = (double)(bench_now_ns() - t0) / 1e9;
	r->checkpoints = (double)(atomic_load(&ckpts_done) - c0);
	if (j->max_wal_mb)
		r->upd_wal = (double)(recov_insert_pos(&h) - p0);
	r->ok = 1;
	return;
fail:
	snprintf(r->err, sizeof r->err, "%s", h.err[0] ? h.err : wd_last_error());
}

/* ---- LMDB's reopen after the kill ---------------------------------------------- */

/* What lmdb_reopen_body gets. */
struct reopen_job {
	const struct recov_opts *o;
	const char *dir;
};

/* A fresh process opens the killed LMDB environment (timed), then reads
 * keys back (untimed) and closes it. */
static void lmdb_reopen_body(void *arg, void *res)
{
	const struct reopen_job *j = arg;
	struct recov_res *r = res;
	struct eh h = {.o = &j->o->t};
	uint64_t t0 = bench_now_ns();
	if (lmdb_engine.open(&h, j->dir) != 0)
		goto fail;
	r->open_s = (double)(bench_now_ns() - t0) / 1e9;
	if (recov_check_keys(&lmdb_engine, &h, j->o->t.n, 0xC4EC4ull) != 0)
		goto fail;
	lmdb_engine.close(&h);
	r->ok = 1;
	return;
fail:
	snprintf(r->err, sizeof r->err, "%s", h.err);
}

/* ---- one run -------------------------------------------------------------------- */

/* Setting k (o->nmax_wal: LMDB) of run `run`: the forward child and its
 * kill, then the recovery, in a fresh directory under base that is
 * removed afterwards. 0, or -1 (printed). */
static int run_slot(const struct recov_opts *o, int k, int run, const char *base, struct slot *s)
{
	bool lmdb = k == o->nmax_wal;
	struct fwd_job fj = {o, lmdb ? 0 : o->max_wal_mb[k], run, NULL};
	struct reopen_job rj = {o, NULL};
	char dir[4200];
	int rc;

	snprintf(dir, sizeof dir, "%s/%s-%d-%d", base, lmdb ? "lmdb" : "walden", k, run);
	fj.dir = rj.dir = dir;
	memset(s, 0, sizeof *s);
	rc = bench_fork_crash(fwd_body, &fj, &s->f, sizeof s->f, s->f.err, sizeof s->f.err);
	if (rc != 0 || !s->f.ok) {
		fprintf(stderr, "walden bench recovery: %s, run %d: %s\n", dir, run + 1, s->f.err);
		bench_rmrf(dir);
		return -1;
	}
	if (lmdb)
		rc = bench_fork(lmdb_reopen_body, &rj, &s->r, sizeof s->r, NULL, s->r.err,
				sizeof s->r.err) == 0 && s->r.ok ? 0 : -1;
	else
		rc = recov_recover(o, dir, o->t.pool_mb << 20, &s->r);
	if (rc != 0)
		fprintf(stderr, "walden bench recovery: recovering %s: %s\n", dir, s->r.err);
	bench_rmrf(dir);
	return rc;
}

/* Every setting and LMDB in every run, rotating which goes first. */
static int recovery_measure(const struct recov_opts *o, const char *dir, void *out)
{
	struct slot (*res)[SLOTS] = out;
	int nk = o->nmax_wal + 1;
	for (int i = 0; i < o->t.runs; i++)
		for (int x = 0; x < nk; x++) {
			int k = (x + i) % nk;
			uint64_t t0 = bench_now_ns();
			if (run_slot(o, k, i, dir, &res[i][k]) != 0)
				return -1;
			if (o->t.json)
				continue;
			if (k == o->nmax_wal)
				fprintf(stderr, "run %d/%d: lmdb done in %.1f s\n", i + 1, o->t.runs,
					(double)(bench_now_ns() - t0) / 1e9);
			else
				fprintf(stderr, "run %d/%d: max_wal_size %llu MiB done in %.1f s "
					"(recovery %.2f s)\n", i + 1, o->t.runs,
					(unsigned long long)o->max_wal_mb[k],
					(double)(bench_now_ns() - t0) / 1e9, res[i][k].r.open_s);
		}
	return 0;
}

/* ---- medians and the report ------------------------------------------------------- */

/* Medians over the runs of one setting (or LMDB). */
struct med {
	double upd_ops_s, ratio, upd_wal, checkpoints;
	double open_s, wal_bytes, redo_ms, repair_ms, undo_ms, applied, images, mib_s;
};

static void medians(const struct recov_opts *o, struct slot (*res)[SLOTS], struct med m[SLOTS])
{
	size_t n = (size_t)o->t.runs, stride = sizeof res[0];
	double col[3][RECOV_MAX_RUNS];
	for (int k = 0; k <= o->nmax_wal; k++) {
		const void *c = &res[0][k];
		struct med *x = &m[k];
#define MF(f, field) (x->f = bench_median_at(c, stride, n, offsetof(struct slot, field)))
		MF(upd_ops_s, f.upd_ops_s), MF(upd_wal, f.upd_wal), MF(checkpoints, f.checkpoints);
		MF(open_s, r.open_s), MF(wal_bytes, r.rep.wal_bytes);
		MF(repair_ms, r.rep.repair_ms), MF(undo_ms, r.rep.undo_ms);
		MF(applied, r.rep.applied), MF(images, r.rep.images);
#undef MF
		for (size_t i = 0; i < n; i++) {
			const struct slot *s = &res[i][k], *l = &res[i][o->nmax_wal];
			col[0][i] = l->f.upd_ops_s > 0 ? s->f.upd_ops_s / l->f.upd_ops_s : 0;
			col[1][i] = s->r.open_s > 0 ? s->r.rep.wal_bytes / RECOV_MIB / s->r.open_s : 0;
			col[2][i] = s->r.rep.analysis_ms + s->r.rep.redo_ms;
		}
		x->redo_ms = bench_median(col[2], n); /* analysis and redo */
		x->ratio = bench_median(col[0], n);
		x->mib_s = bench_median(col[1], n);
	}
}

static void report_table(const struct recov_opts *o, const char *dir, const char *fs,
			 const struct med m[SLOTS])
{
	const struct med *l = &m[o->nmax_wal], *first = &m[0], *last = &m[o->nmax_wal - 1];
	printf("walden bench recovery: N=%lld, %lld W5 updates per run (100 per durable "
	       "commit), pool %llu MiB, %d run(s), medians\nscratch %s (%s)\n",
	       o->t.n, o->t.updates, (unsigned long long)o->t.pool_mb, o->t.runs, dir, fs);
	printf("forward: W5 after a W2 load, checkpoints on WAL volume (max_wal_size)\n");
	printf("  %-14s %12s %14s %12s %16s\n", "max_wal_size", "checkpoints", "W5 updates/s",
	       "walden/LMDB", "WAL written MiB");
	for (int k = 0; k < o->nmax_wal; k++)
		printf("  %10llu MiB %12.0f %14.0f %12.2f %16.1f\n",
		       (unsigned long long)o->max_wal_mb[k], m[k].checkpoints, m[k].upd_ops_s,
		       m[k].ratio, m[k].upd_wal / RECOV_MIB);
	printf("  %-14s %12s %14.0f\n", "LMDB", "-", l->upd_ops_s);
	printf("recovery after the kill (wd_open in a fresh process)\n");
	printf("  %-14s %12s %10s %10s %10s %10s %8s %10s %8s %9s\n", "max_wal_size",
	       "replayed MiB", "wd_open s", "x smallest", "anl+redo ms", "repair ms", "undo ms",
	       "applied", "images", "MiB/s");
	for (int k = 0; k < o->nmax_wal; k++)
		printf("  %10llu MiB %12.1f %10.3f %10.2f %10.1f %10.1f %8.1f %10.0f %8.0f %9.1f\n",
		       (unsigned long long)o->max_wal_mb[k], m[k].wal_bytes / RECOV_MIB, m[k].open_s,
		       first->open_s > 0 ? m[k].open_s / first->open_s : 0, m[k].redo_ms,
		       m[k].repair_ms, m[k].undo_ms, m[k].applied, m[k].images, m[k].mib_s);
	printf("  %-14s %12s %10.3f   (mdb_env_open after the kill: no log to replay)\n", "LMDB",
	       "-", l->open_s);
	printf("from max_wal_size %llu to %llu MiB, recovery time x%.2f, WAL replayed x%.2f, "
	       "W5 updates/s x%.2f\n",
	       (unsigned long long)o->max_wal_mb[0],
	       (unsigned long long)o->max_wal_mb[o->nmax_wal - 1],
	       first->open_s > 0 ? last->open_s / first->open_s : 0,
	       first->wal_bytes > 0 ? last->wal_bytes / first->wal_bytes : 0,
	       first->upd_ops_s > 0 ? last->upd_ops_s / first->upd_ops_s : 0);
}

static void report_json(const struct recov_opts *o, const char *dir, const char *fs,
			const struct med m[SLOTS])
{
	const struct med *l = &m[o->nmax_wal];
	printf("{\"bench\":\"recovery\",\"n\":%lld,\"updates\":%lld,\"pool_mb\":%llu,\"runs\":%d,"
	       "\"dir\":",
	       o->t.n, o->t.updates, (unsigned long long)o->t.pool_mb, o->t.runs);
	tool_json_str(stdout, dir);
	printf(",\"fs\":\"%s\",\"settings\":[", fs);
	for (int k = 0; k < o->nmax_wal; k++) {
		const struct med *x = &m[k];
		printf("%s{\"max_wal_mb\":%llu,\"checkpoints\":%.0f,\"updates_s\":%.0f,"
		       "\"ratio_vs_lmdb\":%.3f,\"update_wal_bytes\":%.0f,\"wal_bytes\":%.0f,"
		       "\"open_s\":%.4f,\"redo_ms\":%.1f,\"repair_ms\":%.1f,\"undo_ms\":%.1f,"
		       "\"applied\":%.0f,\"images\":%.0f,\"mib_s\":%.2f}",
		       k ? "," : "", (unsigned long long)o->max_wal_mb[k], x->checkpoints,
		       x->upd_ops_s, x->ratio, x->upd_wal, x->wal_bytes, x->open_s, x->redo_ms,
		       x->repair_ms, x->undo_ms, x->applied, x->images, x->mib_s);
	}
	printf("],\"lmdb\":{\"updates_s\":%.0f,\"open_s\":%.4f}}\n", l->upd_ops_s, l->open_s);
}

/* ---- driver ----------------------------------------------------------------------- */

/* The medians, the table unless --json, the JSON line. */
static void recovery_report(const struct recov_opts *o, const char *dir, const char *fs,
			    void *res)
{
	struct med m[SLOTS];
	medians(o, res, m);
	if (!o->t.json)
		report_table(o, dir, fs, m);
	report_json(o, dir, fs, m);
}

int bench_recovery_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"n", required_argument, NULL, 'n'},       {"updates", required_argument, NULL, 'u'},
		{"max-wal", required_argument, NULL, 'W'}, {"pool-mb", required_argument, NULL, 'm'},
		{"runs", required_argument, NULL, 'r'},    {"quick", no_argument, NULL, 'q'},
		{"dir", required_argument, NULL, 'd'},     {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	static const struct recov_cmd cmd = {
		.shortopts = "n:u:W:m:r:qd:jh", .longopts = longopts, .usage = recovery_usage,
		.full = {.t = {.n = 1000000, .updates = 2000000, .runs = 3, .pool_mb = 256},
			 .max_wal_mb = {64, 256, 1024}, .nmax_wal = 3},
		.quick = {.t = {.n = 5000, .updates = 20000, .runs = 1, .pool_mb = 16},
			  .max_wal_mb = {1, 2, 4}, .nmax_wal = 3},
		.run_size = sizeof(struct slot[SLOTS]), .measure = recovery_measure,
		.report = recovery_report,
	};
	return recov_main(argc, argv, &cmd);
}
