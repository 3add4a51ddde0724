/*
 * txn.h - what the two halves of `walden bench txn` share: bench_txn.c
 * (options, the children and the runs, the report) and txn_workloads.c
 * (the rollback and contended workloads, run inside a child). Private to
 * bench/.
 */
#ifndef WALDEN_BENCH_TXN_H
#define WALDEN_BENCH_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/tables.h"

#define VALUE_BYTES 100

/* The parsed options (bench_txn.c txn_parse); the names are the long
 * options'. */
struct txn_opts {
	struct tables_opts t; /* pool_mb, value_bytes, base, json for the engines */
	long long n, txns, durable_txns, keys;
	int runs, threads, hot_pct;
	uint64_t seed;
	unsigned jobs; /* 1u << J_* (bench_txn.c) of the workloads to run */
};

/* What a child sends back; fields of the other workload stay 0. */
struct txn_res {
	int ok;
	/* rollback */
	double fwd_ops_s, abort_s, steps_s, inserts, overwrites, deletes;
	/* contended */
	double txn_s, committed, deadlocks, retried_txns, max_retries;
	char err[512];
};

/* A rollback child on engine e in the fresh directory dir: commits a base
 * of n/4 keys, times n changes in one transaction (the same in every run)
 * and its abort into r, then checks the table is its base again (reopen:
 * also after a close and reopen). r->ok on success, else r->err says what
 * went wrong. */
void txn_rollback_job(const struct txn_opts *o, const struct engine *e, bool reopen,
		      const char *dir, struct txn_res *r);

/* A contended child: commits --keys keys, runs --threads threads of
 * read-modify-write transactions (--durable-txns durable ones, or --txns
 * asynchronous ones), then checks no update was lost. As above for r. */
void txn_contended_job(const struct txn_opts *o, const struct engine *e, int run, bool durable,
		       const char *dir, struct txn_res *r);

#endif
