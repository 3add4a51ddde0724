/*
 * tables.h - what the table benchmarks (bench_tables.c, bench_txn.c) share:
 * their options, the one interface behind which walden and LMDB run the
 * same workloads (tables_engines.c), and the keys and values they write
 * (tables_keys.c). Private to bench/.
 */
#ifndef WALDEN_BENCH_TABLES_H
#define WALDEN_BENCH_TABLES_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walden.h"

#define KEY_BYTES 16 /* the zero-padded decimal of the key's number */
#define TABLES_TABLE_NAME "bench" /* the one table of every database */
#define W2_PER_TXN 1000 /* puts per durable commit of a load (W1, W2) */
#define W5_PER_TXN 100  /* ... of random updates (W5) */

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
	bool nosync; /* commits need not be durable (walden synchronous_commit
		      * off, LMDB MDB_NOSYNC); bench_tables leaves it false */
	const wd_options *wd; /* walden's settings before pool_mb and nosync
			       * apply; NULL: wd_options_default */
	bool no_huge; /* walden's pool on ordinary pages (huge_pages 0) */
};

/* One open database of either engine. Calls return 0, 1 for "not found" or
 * "end of scan", -1 on error with the detail in err, or EH_DEADLOCK when
 * walden chose the transaction as a deadlock victim: its changes are then
 * undone and it is still open, to retry, commit or abort. */
#define EH_DEADLOCK (-2)
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
 * cur_next's pointers stay valid until the next call on h. attach makes h
 * a second handle on the database `from` has open, for another thread
 * (its own transaction and buffers); detach frees it, leaving the
 * database open. */
struct engine {
	int (*open)(struct eh *h, const char *dir);
	int (*close)(struct eh *h);
	int (*attach)(struct eh *h, const struct eh *from);
	void (*detach)(struct eh *h);
	int (*begin)(struct eh *h, bool write);
	int (*commit)(struct eh *h);
	int (*abort)(struct eh *h);
	int (*put)(struct eh *h, const void *k, size_t kl, const void *v, size_t vl);
	int (*get)(struct eh *h, const void *k, size_t kl, const void **v, size_t *vl);
	int (*del)(struct eh *h, const void *k, size_t kl);
	int (*cur_open)(struct eh *h);
	int (*cur_next)(struct eh *h, const void **k, size_t *kl, const void **v, size_t *vl);
	void (*cur_close)(struct eh *h);
};

/* walden (wd_open with o->wd or the default options, buffer_pool_bytes
 * from --pool-mb, synchronous commit unless nosync) and LMDB (default
 * durable flags unless nosync, a map 4x the data, >= 1 GiB). open creates
 * the database, or opens the one already in dir (after a crash: walden
 * recovers it). */
extern const struct engine walden_engine;
extern const struct engine lmdb_engine;

/* ---- keys, values and puts (tables_keys.c) ---- */

/* Where the next key number comes from: 0, 1, 2...; a permutation; or
 * uniformly random below n (splitmix64 from state). */
struct keysrc {
	enum { K_SEQ, K_PERM, K_RAND } mode;
	const uint64_t *perm;
	uint64_t i, n, state;
};

uint64_t key_next(struct keysrc *s);

/* A random permutation of 0..n-1 (Fisher-Yates from seed), malloc'd;
 * NULL if out of memory. */
uint64_t *key_permutation(uint64_t n, uint64_t seed);

/* W1, W2, W5: count puts of keys from src, per_txn per committed
 * transaction, values of version ver. Returns ops/s, -1 on error (h->err
 * says what). */
double tables_puts(const struct engine *e, struct eh *h, struct keysrc *src, uint64_t count,
		   uint64_t per_txn, uint8_t ver);

/* The key of number x: 16 zero-padded decimal digits. */
void key_fmt(uint8_t k[KEY_BYTES], uint64_t x);

/* Fills the vb bytes of v with the fixed filler pattern of every value. */
void value_fill(uint8_t *v, size_t vb);

/* A value buffer of vb bytes with the filler pattern (malloc'd, one
 * spare byte), NULL if out of memory. */
uint8_t *value_new(size_t vb);

/* Stamps key k and version ver into the head of value v. */
void value_stamp(uint8_t *v, size_t vb, const uint8_t k[KEY_BYTES], uint8_t ver);

/* Whether value v is one value_stamp made for key k (any version) and of
 * h->o->value_bytes bytes. */
bool value_ok(const struct eh *h, const uint8_t *k, const void *v, size_t vl);

#endif
