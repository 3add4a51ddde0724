/*
 * recov.h - what the recovery benchmarks share: `walden bench redo`
 * (bench_redo.c), `walden bench recovery` (bench_recovery.c) and `walden
 * bench fpw` (bench_fpw.c), with their helpers in recov_util.c: one option
 * parser with full and --quick defaults, the W2 load and W5 updates of a
 * child, the timed recovering open of a crashed directory, and the one
 * function that reads walden's recovery report. Private to bench/.
 */
#ifndef WALDEN_BENCH_RECOV_H
#define WALDEN_BENCH_RECOV_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/tables.h"
#include "storage/types.h"

#define RECOV_MAX_RUNS 101
#define RECOV_MAX_WAL 8        /* settings --max-wal may list */
#define RECOV_VALUE_BYTES 100
#define RECOV_CHECK_KEYS 1000  /* keys read back after each recovery */
#define RECOV_HUGE_TIMEOUT_S 1000000u /* checkpoint_timeout that never fires */
#define RECOV_MIB (1024.0 * 1024.0)

/* The parsed options; the names are the long options'. A field left 0 by
 * the command line takes the command's default (full or --quick). */
struct recov_opts {
	struct tables_opts t;  /* cmd, n, updates, runs, pool_mb, base, json,
				* value_bytes; wd: walden's settings */
	uint64_t wal_mb;       /* redo: WAL to write */
	uint64_t gen_pool_mb;  /* redo: the pool of the run that writes it */
	uint64_t max_wal_mb[RECOV_MAX_WAL]; /* recovery: the settings */
	int nmax_wal;
	bool quick, cold;
};

/* One recovery benchmark, as recov_main runs it. */
struct recov_cmd {
	const char *shortopts;          /* its options among n: u: r: m: g: w: W: c q d: j h */
	const struct option *longopts;
	void (*usage)(FILE *f, const char *name);
	struct recov_opts full, quick;  /* the defaults (t.n, t.updates, t.runs, t.pool_mb,
					 * wal_mb, gen_pool_mb, max_wal_mb) */
	size_t head_size, run_size;     /* its results: a head, then one block a run */
	/* Fills the results res (zeroed) using the scratch directory dir.
	 * 0, or -1 having printed why. */
	int (*measure)(const struct recov_opts *o, const char *dir, void *res);
	/* The medians, the table (unless --json) and the JSON line. */
	void (*report)(const struct recov_opts *o, const char *dir, const char *fs, void *res);
};

/*
 * The whole of a recovery benchmark's main: parses argv (the options not
 * given take c's defaults, --quick's with --quick), makes the scratch
 * directory, measures, reports, removes the scratch directory. Returns the
 * exit code: 0, 1 (error), 2 (usage).
 */
int recov_main(int argc, char **argv, const struct recov_cmd *c);

/* ---- in a child ---- */

/* W2: the n keys in the random permutation of run `run`, W2_PER_TXN per
 * durable commit. Seconds taken, or -1 (h->err says why). */
double recov_load(const struct engine *e, struct eh *h, long long n, int run);

/* The W5 key source of run `run`: uniformly random keys below n. */
struct keysrc recov_update_keys(long long n, int run);

/* Where walden's log inserts next, and how far that is past the redo
 * point of the last checkpoint (bytes). */
wd_lsn recov_insert_pos(const struct eh *h);
uint64_t recov_wal_since_redo(const struct eh *h);

/* What a recovery did, from walden's report (all doubles, for medians). */
struct recov_rep {
	double wal_bytes;      /* WAL replayed: end of WAL - redo start */
	double records, applied, skipped, images, losers;
	double analysis_ms, redo_ms; /* the first two passes */
	double repair_ms, undo_ms, checkpoint_ms; /* the rest; checkpoint: the end one */
};

/*
 * In a fresh process: opens the crashed database in dir with a pool of
 * pool_bytes, timing the whole wd_open into *open_s and reading its
 * recovery report into *r; then reads RECOV_CHECK_KEYS random keys below
 * n back (each must hold its value) and closes the database (untimed).
 * 0, or -1 with the reason in err.
 */
int recov_open_timed(const struct recov_opts *o, const char *dir, uint64_t pool_bytes,
		     double *open_s, struct recov_rep *r, char *err, size_t err_cap);

/* One recovery as the parent sees it. */
struct recov_res {
	int ok;
	double open_s;       /* wall time of the recovering wd_open */
	double resident_pct; /* of the directory's bytes in the OS page cache
			      * just before */
	struct recov_rep rep;
	char err[512];
};

/* Notes how much of the crashed database in dir is in the OS page cache,
 * then runs recov_open_timed on it in a forked child, into r. 0, or -1
 * with r->err set. */
int recov_recover(const struct recov_opts *o, const char *dir, uint64_t pool_bytes,
		  struct recov_res *r);

/* RECOV_CHECK_KEYS random keys (from seed) below n read back through
 * engine e, each value checked. 0, or -1 with h->err set. */
int recov_check_keys(const struct engine *e, struct eh *h, long long n, uint64_t seed);

#endif
