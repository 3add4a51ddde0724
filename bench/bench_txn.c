/*
 * bench_txn.c - `walden bench txn`: what transactions cost beyond their
 * changes, walden beside LMDB in the same run.
 *
 *   rollback   One transaction makes --n changes over a committed base
 *              table of n/4 keys: puts of random keys below n/2 (inserts
 *              and overwrites) and about 10% deletes of present keys, the
 *              same list (from --seed) for both engines and every run.
 *              The forward changes are timed, then the abort: walden
 *              reverses one undo record per change (wd_abort), LMDB drops
 *              its dirty pages (mdb_txn_abort). Untimed, the table is then
 *              compared row by row with its base state, and for walden
 *              again after a close and reopen.
 *   contended  --threads threads run --txns short transactions in all,
 *              each a read-modify-write of two distinct keys (get a, get b,
 *              put a+1, put b+1) of --keys keys, where --hot-pct % of the
 *              picks go to the hot 1% of the keys. walden runs them under
 *              its row locks: two transactions that read the same key and
 *              then both write it, or take two keys in opposite orders,
 *              deadlock; the victim (WD_EDEADLOCK, rolled back to its
 *              start, still open) redoes its work in the same transaction.
 *              LMDB runs the same transactions one at a time under its
 *              single-writer lock (the gets inside the write transaction).
 *              Commits are asynchronous (walden synchronous_commit off,
 *              LMDB MDB_NOSYNC) so that the locking, not the fsync, is
 *              measured; a durable variant follows (--durable-txns). Each
 *              value holds a counter: untimed, the counters must add up to
 *              twice the committed transactions, or an update was lost.
 *
 * Keys are 16-byte zero-padded decimals, values 100 bytes stamped with
 * their key, a version byte and a 16-digit counter (tables_keys.c). Every
 * (run, workload, engine) is a forked child on a fresh directory
 * (bench_fork); the engines alternate which goes first. Rates are the
 * medians of --runs runs, ratios the medians of the per-run ratios. Speed
 * never fails the benchmark; a wrong result does (exit 1).
 *
 * This file parses the options, runs the children and reports; the
 * workloads themselves are in txn_workloads.c.
 *
 * Entry point: bench_txn_main.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/tables.h"
#include "bench/txn.h"

#define MAX_RUNS 101
#define MAX_THREADS 256

enum { J_ROLLBACK, J_ASYNC, J_DURABLE, J__N };
static const char *const job_names[J__N] = {"rollback", "contended", "durable"};
enum { E_WALDEN, E_LMDB, E__N };
static const char *const eng_names[E__N] = {"walden", "lmdb"};
static const struct engine *const engines[E__N] = {&walden_engine, &lmdb_engine};

/* ---- options ---------------------------------------------------------------- */

static void txn_usage(FILE *f, const char *name)
{
	(void)name; /* always "txn" */
	fprintf(f,
		"usage: walden bench txn [options]\n"
		"Rollback and lock contention, walden beside LMDB in the same run:\n"
		"  rollback   one transaction of N changes (puts over a base of N/4 keys,\n"
		"             ~10%% deletes), then abort: forward ops/s, rollback steps/s\n"
		"  contended  T threads of short read-modify-write transactions (2 gets,\n"
		"             2 puts) on hot keys, deadlock victims retried; async commits,\n"
		"             then durable ones: committed transactions/s\n"
		"Both check their result (the table equals its base after the abort; no\n"
		"update lost) and exit 1 if it is wrong. A table and a JSON line.\n"
		"  -n, --n N              changes in the rollback transaction (default 1000000)\n"
		"  -r, --runs N           runs; medians are reported (default 5)\n"
		"  -t, --threads N        contended threads (default 8)\n"
		"  -x, --txns N           contended transactions per run, all threads\n"
		"                         (default 200000)\n"
		"  -D, --durable-txns N   durable contended transactions per run\n"
		"                         (default 20000; 0 skips them)\n"
		"  -k, --keys N           keys of the contended table (default 100000)\n"
		"  -H, --hot-pct P        %% of key picks that go to the hot 1%% of the keys\n"
		"                         (default 50)\n"
		"  -s, --seed N           seed of the random keys (default 1)\n"
		"  -m, --pool-mb N        walden buffer pool in MiB (default 1024)\n"
		"  -o, --only W           rollback or contended (default both)\n"
		"  -d, --dir DIR          scratch directory base (default $TMPDIR or\n"
		"                         /var/tmp; must be a real disk, not tmpfs)\n"
		"  -j, --json             print only the JSON line\n"
		"  -h, --help             this text\n");
}

/* A count option that may be 0 (--durable-txns, --hot-pct); -1 if bad. */
static long long parse_count0(const char *s)
{
	return strcmp(s, "0") == 0 ? 0 : bench_parse_count(s);
}

/* The workloads --only names: "rollback" or "contended"; 0 if neither. */
static unsigned jobs_named(const char *s)
{
	if (strcmp(s, "rollback") == 0)
		return 1u << J_ROLLBACK;
	if (strcmp(s, "contended") == 0)
		return 1u << J_ASYNC | 1u << J_DURABLE;
	return 0;
}

/* Applies option c to opts (a struct txn_opts); false if its value is
 * bad. */
static bool txn_opt(void *opts, int c, const char *arg)
{
	struct txn_opts *o = opts;
	/* -d, -o and -j take no number; -D and -H may be 0 */
	long long v = strchr("dojDH", c) ? 1 : bench_parse_count(arg);
	if (v <= 0)
		return false;
	switch (c) {
	case 'n': o->n = v; return v >= 4 && v < (1ll << 40);
	case 'r': o->runs = (int)v; return v <= MAX_RUNS;
	case 't': o->threads = (int)v; return v <= MAX_THREADS;
	case 'x': o->txns = v; return true;
	case 'D': o->durable_txns = parse_count0(arg); return o->durable_txns >= 0;
	case 'k': o->keys = v; return v >= 2 && v < (1ll << 40);
	case 'H': o->hot_pct = (int)parse_count0(arg); return o->hot_pct >= 0 && o->hot_pct <= 100;
	case 's': o->seed = (uint64_t)v; return true;
	case 'm': o->t.pool_mb = (uint64_t)v; return v <= (1 << 20);
	case 'd': o->t.base = arg; return true;
	case 'j': o->t.json = true; return true;
	case 'o': return (o->jobs = jobs_named(arg)) != 0;
	}
	return false;
}

/* Parses argv into o. Returns 0, 1 after --help (exit 0), 2 on misuse. */
static int txn_parse(int argc, char **argv, struct txn_opts *o)
{
	static const struct option longopts[] = {
		{"n", required_argument, NULL, 'n'},
		{"runs", required_argument, NULL, 'r'},
		{"threads", required_argument, NULL, 't'},
		{"txns", required_argument, NULL, 'x'},
		{"durable-txns", required_argument, NULL, 'D'},
		{"keys", required_argument, NULL, 'k'},
		{"hot-pct", required_argument, NULL, 'H'},
		{"seed", required_argument, NULL, 's'},
		{"pool-mb", required_argument, NULL, 'm'},
		{"only", required_argument, NULL, 'o'},
		{"dir", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int rc = bench_getopt(argc, argv, "n:r:t:x:D:k:H:s:m:o:d:jh", longopts, txn_opt, o,
			      txn_usage);
	if (rc != 0)
		return rc;
	if (o->txns < o->threads) {
		fprintf(stderr, "walden bench txn: --txns below --threads\n");
		return 2;
	}
	if (o->durable_txns == 0)
		o->jobs &= ~(1u << J_DURABLE);
	return 0;
}

/* ---- the children and the runs --------------------------------------------------- */

/* What spawn hands its child. */
struct job {
	const struct txn_opts *o;
	int j, eng, run;
	const char *dir;
};

static void job_body(void *arg, void *res)
{
	const struct job *jb = arg;
	const struct engine *e = engines[jb->eng];
	if (jb->j == J_ROLLBACK)
		txn_rollback_job(jb->o, e, jb->eng == E_WALDEN, jb->dir, res);
	else
		txn_contended_job(jb->o, e, jb->run, jb->j == J_DURABLE, jb->dir, res);
}

/* Runs workload j of engine eng in a child on a fresh directory under
 * base. 0, or -1 with the message printed. */
static int spawn(const struct txn_opts *o, int j, int eng, int run, const char *base,
		 struct txn_res *r)
{
	char dir[4200];
	struct job jb = {o, j, eng, run, dir};
	int rc;
	snprintf(dir, sizeof dir, "%s/%s-%s-%d", base, eng_names[eng], job_names[j], run);
	memset(r, 0, sizeof *r);
	rc = bench_fork(job_body, &jb, r, sizeof *r, NULL, r->err, sizeof r->err);
	bench_rmrf(dir);
	if (rc == 0 && r->ok)
		return 0;
	fprintf(stderr, "walden bench txn: %s, %s, run %d: %s\n", eng_names[eng], job_names[j],
		run + 1, r->err);
	return -1;
}

/* Every workload of every run, the engines alternating which goes first. */
static int txn_measure(const struct txn_opts *o, const char *dir,
		       struct txn_res (*res)[J__N][E__N])
{
	for (int i = 0; i < o->runs; i++)
		for (int j = 0; j < J__N; j++)
			for (int k = 0; k < E__N && (o->jobs & 1u << j); k++) {
				int e = i % 2 ? E__N - 1 - k : k;
				uint64_t t0 = bench_now_ns();
				if (spawn(o, j, e, i, dir, &res[i][j][e]) != 0)
					return -1;
				if (!o->t.json)
					fprintf(stderr, "run %d/%d: %s %s done in %.1f s\n", i + 1,
						o->runs, eng_names[e], job_names[j],
						(double)(bench_now_ns() - t0) / 1e9);
			}
	return 0;
}

/* ---- medians and the report ---------------------------------------------------- */

/* The medians of one (workload, engine) over the runs. */
struct med {
	double fwd_ops_s, abort_s, steps_s, inserts, overwrites, deletes;
	double txn_s, committed, deadlocks, retried_txns, max_retries;
};

/* Medians of per-run ratios: walden/LMDB forward rates, walden rollback
 * steps over forward ops, walden/LMDB transactions (async, durable). */
struct ratios {
	double forward, rollback_forward, async, durable;
};

static void medians(const struct txn_opts *o, struct txn_res (*res)[J__N][E__N],
		    struct med m[J__N][E__N])
{
	for (int j = 0; j < J__N; j++)
		for (int e = 0; e < E__N; e++) {
			const void *col = &res[0][j][e];
			size_t stride = sizeof res[0], n = (size_t)o->runs;
			struct med *x = &m[j][e];
#define MF(f) (x->f = bench_median_at(col, stride, n, offsetof(struct txn_res, f)))
			MF(fwd_ops_s), MF(abort_s), MF(steps_s), MF(inserts), MF(overwrites);
			MF(deletes), MF(txn_s), MF(committed), MF(deadlocks), MF(retried_txns);
			MF(max_retries);
#undef MF
		}
}

/* The median over runs of res[j][a].fa / res[j][b].fb (0 where the
 * divisor is 0). */
static double ratio_of(const struct txn_opts *o, struct txn_res (*res)[J__N][E__N], int j,
		       int a, size_t fa, int b, size_t fb)
{
	double col[MAX_RUNS];
	for (int i = 0; i < o->runs; i++) {
		double x, y;
		memcpy(&x, (const char *)&res[i][j][a] + fa, sizeof x);
		memcpy(&y, (const char *)&res[i][j][b] + fb, sizeof y);
		col[i] = y > 0 ? x / y : 0;
	}
	return bench_median(col, (size_t)o->runs);
}

static void ratios(const struct txn_opts *o, struct txn_res (*res)[J__N][E__N], struct ratios *q)
{
	size_t fwd = offsetof(struct txn_res, fwd_ops_s), tx = offsetof(struct txn_res, txn_s);
	q->forward = ratio_of(o, res, J_ROLLBACK, E_WALDEN, fwd, E_LMDB, fwd);
	q->rollback_forward = ratio_of(o, res, J_ROLLBACK, E_WALDEN,
				       offsetof(struct txn_res, steps_s), E_WALDEN, fwd);
	q->async = ratio_of(o, res, J_ASYNC, E_WALDEN, tx, E_LMDB, tx);
	q->durable = ratio_of(o, res, J_DURABLE, E_WALDEN, tx, E_LMDB, tx);
}

static void report_rollback(const struct txn_opts *o, struct med m[J__N][E__N],
			    const struct ratios *q)
{
	const struct med *w = &m[J_ROLLBACK][E_WALDEN], *l = &m[J_ROLLBACK][E_LMDB];
	printf("rollback: one transaction of %lld changes over a base of %lld keys "
	       "(%.0f inserts, %.0f overwrites, %.0f deletes), then abort\n",
	       o->n, o->n / 4, w->inserts, w->overwrites, w->deletes);
	printf("  %-36s %13s %13s %8s\n", "", "walden", "LMDB", "w/L");
	printf("  %-36s %13.0f %13.0f %8.2f\n", "forward changes, ops/s", w->fwd_ops_s,
	       l->fwd_ops_s, q->forward);
	printf("  %-36s %13.3f %13.3f\n", "abort, s", w->abort_s, l->abort_s);
	printf("  %-36s %13.0f %13s\n", "rollback, undo steps/s", w->steps_s, "-");
	printf("  %-36s %13.2f %13s\n", "rollback steps/s / forward ops/s", q->rollback_forward,
	       "-");
	printf("  checked: the table equals its base after the abort (walden: also after "
	       "reopening)\n");
}

/* One row of the contended table: the count at off of both engines. */
static void contended_row(struct med m[J__N][E__N], int j, const char *label, size_t off)
{
	double w, l;
	memcpy(&w, (const char *)&m[j][E_WALDEN] + off, sizeof w);
	memcpy(&l, (const char *)&m[j][E_LMDB] + off, sizeof l);
	printf("  %-36s %13.0f %13.0f\n", label, w, l);
}

static void report_contended(const struct txn_opts *o, struct med m[J__N][E__N],
			     const struct ratios *q)
{
	printf("contended: %d threads, %lld transactions (async) and %lld (durable) per run,\n"
	       "  each get a, get b, put a+1, put b+1 over %lld keys, %d%% of picks on the hot 1%%\n",
	       o->threads, o->txns, (o->jobs & 1u << J_DURABLE) ? o->durable_txns : 0, o->keys,
	       o->hot_pct);
	printf("  %-36s %13s %13s %8s\n", "", "walden", "LMDB", "w/L");
	for (int j = J_ASYNC; j <= J_DURABLE; j++) {
		if (!(o->jobs & 1u << j))
			continue;
		printf("  %-36s %13.0f %13.0f %8.2f\n",
		       j == J_ASYNC ? "async commits, txn/s" : "durable commits, txn/s",
		       m[j][E_WALDEN].txn_s, m[j][E_LMDB].txn_s, j == J_ASYNC ? q->async : q->durable);
		contended_row(m, j, "  deadlocks (each retried)", offsetof(struct med, deadlocks));
		contended_row(m, j, "  transactions retried", offsetof(struct med, retried_txns));
		contended_row(m, j, "  most retries of one transaction",
			      offsetof(struct med, max_retries));
	}
	printf("  checked: every key present, counters add up to 2 x committed transactions\n");
}

static void report_json(const struct txn_opts *o, const char *dir, const char *fs,
			struct med m[J__N][E__N], const struct ratios *q)
{
	const struct med *rw = &m[J_ROLLBACK][E_WALDEN], *rl = &m[J_ROLLBACK][E_LMDB];
	const struct med *aw = &m[J_ASYNC][E_WALDEN], *al = &m[J_ASYNC][E_LMDB];
	const struct med *dw = &m[J_DURABLE][E_WALDEN], *dl = &m[J_DURABLE][E_LMDB];
	printf("{\"bench\":\"txn\",\"runs\":%d,\"seed\":%llu,\"dir\":\"%s\",\"fs\":\"%s\","
	       "\"n\":%lld,\"base_keys\":%lld,\"inserts\":%.0f,\"overwrites\":%.0f,"
	       "\"deletes\":%.0f,\"walden_forward_ops_s\":%.0f,\"walden_abort_s\":%.4f,"
	       "\"walden_rollback_steps_s\":%.0f,\"walden_rollback_forward_ratio\":%.3f,"
	       "\"lmdb_forward_ops_s\":%.0f,\"lmdb_abort_s\":%.4f,\"forward_ratio\":%.3f,",
	       o->runs, (unsigned long long)o->seed, dir, fs, o->n, o->n / 4, rw->inserts,
	       rw->overwrites, rw->deletes, rw->fwd_ops_s, rw->abort_s, rw->steps_s,
	       q->rollback_forward, rl->fwd_ops_s, rl->abort_s, q->forward);
	printf("\"threads\":%d,\"txns\":%lld,\"durable_txns\":%lld,\"keys\":%lld,\"hot_pct\":%d,"
	       "\"contended_walden_txn_s\":%.0f,\"contended_lmdb_txn_s\":%.0f,\"ratio\":%.3f,"
	       "\"deadlocks\":%.0f,\"retried_txns\":%.0f,\"max_retries\":%.0f,"
	       "\"durable_walden_txn_s\":%.0f,\"durable_lmdb_txn_s\":%.0f,\"durable_ratio\":%.3f,"
	       "\"durable_deadlocks\":%.0f,\"verified\":true}\n",
	       o->threads, o->txns, (o->jobs & 1u << J_DURABLE) ? o->durable_txns : 0, o->keys,
	       o->hot_pct, aw->txn_s, al->txn_s, q->async, aw->deadlocks, aw->retried_txns,
	       aw->max_retries, dw->txn_s, dl->txn_s, q->durable, dw->deadlocks);
}

static void report(const struct txn_opts *o, const char *dir, const char *fs,
		   struct txn_res (*res)[J__N][E__N])
{
	struct med m[J__N][E__N];
	struct ratios q;
	medians(o, res, m);
	ratios(o, res, &q);
	if (!o->t.json) {
		printf("walden bench txn: %d run(s), medians; pool %llu MiB; scratch %s (%s)\n",
		       o->runs, (unsigned long long)o->t.pool_mb, dir, fs);
		if (o->jobs & 1u << J_ROLLBACK)
			report_rollback(o, m, &q);
		if (o->jobs & 1u << J_ASYNC)
			report_contended(o, m, &q);
	}
	report_json(o, dir, fs, m, &q);
}

int bench_txn_main(int argc, char **argv)
{
	struct txn_opts o = {.t = {.cmd = "txn", .pool_mb = 1024, .value_bytes = VALUE_BYTES},
			     .n = 1000000, .txns = 200000, .durable_txns = 20000, .keys = 100000,
			     .runs = 5, .threads = 8, .hot_pct = 50, .seed = 1, .jobs = (1u << J__N) - 1};
	struct txn_res (*res)[J__N][E__N] = NULL;
	bool tmpfs;
	char *dir;
	int rc, status = 1;

	if ((rc = txn_parse(argc, argv, &o)) != 0)
		return rc == 1 ? 0 : 2;
	if (!(dir = bench_disk_dir(o.t.base, "txn", &tmpfs))) {
		perror("walden bench txn: scratch directory");
		return 1;
	}
	if (!(res = calloc((size_t)o.runs, sizeof *res)) || txn_measure(&o, dir, res) != 0)
		goto out;
	report(&o, dir, tmpfs ? "tmpfs: durable commits are meaningless here" : "disk", res);
	status = 0;
out:
	free(res);
	bench_rmrf(dir);
	free(dir);
	return status;
}
