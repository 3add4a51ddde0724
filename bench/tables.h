/*
 * tables.h - what bench_tables.c and tables_engines.c share: the options
 * of `walden bench load|read|scan|update|tables` and the one interface
 * behind which walden and LMDB run the same workloads. Private to bench/.
 */
#ifndef WALDEN_BENCH_TABLES_H
#define WALDEN_BENCH_TABLES_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walden.h"

#define KEY_BYTES 16 /* the zero-padded decimal of the key's number */

/* The parsed options of one subcommand (bench_tables.c tables_parse). */
struct tables_opts {
	const char *cmd;  /* "load", "read", "scan", "update" or "tables" */
	unsigned mask;    /* 1u << W_* of the workloads measured */
	long long n, reads, updates;
	int runs;
	uint64_t pool_mb;
	size_t value_bytes;
	const char *base;
	bool json;
};

/* One open database of either engine. Calls return 0, 1 for "not found" or
 * "end of scan", -1 on error with the detail in err. */
struct eh {
	const struct tables_opts *o;
	wd_db *db;
	wd_txn *txn;
	wd_table *t;
	wd_cursor *cur;
	uint8_t *buf;
	size_t cap;
	MDB_env *env;
	MDB_txn *mtxn;
	MDB_dbi dbi;
	MDB_cursor *mcur;
	bool mcur_started;
	char err[400];
};

/* One engine's calls; every one returns as struct eh says. get's *v and
 * cur_next's pointers stay valid until the next call on h. */
struct engine {
	int (*open)(struct eh *h, const char *dir);
	int (*close)(struct eh *h);
	int (*begin)(struct eh *h, bool write);
	int (*commit)(struct eh *h);
	int (*put)(struct eh *h, const void *k, size_t kl, const void *v, size_t vl);
	int (*get)(struct eh *h, const void *k, size_t kl, const void **v, size_t *vl);
	int (*cur_open)(struct eh *h);
	int (*cur_next)(struct eh *h, const void **k, size_t *kl, const void **v, size_t *vl);
	void (*cur_close)(struct eh *h);
};

/* walden (wd_open with buffer_pool_bytes from --pool-mb, synchronous
 * commit) and LMDB (default durable flags, a map 4x the data, >= 1 GiB). */
extern const struct engine walden_engine;
extern const struct engine lmdb_engine;

#endif
