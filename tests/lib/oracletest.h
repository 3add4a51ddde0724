/*
 * oracletest.h - the LMDB oracle of the suites that check walden tables
 * against what they must hold: an environment in a test directory, write
 * transactions (nested for savepoints), one named database per table, the
 * side-by-side scan of a walden table and an LMDB database, and the
 * deterministic values both are filled with; and the committed state of
 * one table held in one long write transaction, with a batch the test can
 * take back (the transaction in flight when a child died) and digests a
 * forked child can check without LMDB. Needs <cmocka.h> included before
 * it (as dbtest.h does).
 */
#ifndef WALDEN_ORACLETEST_H
#define WALDEN_ORACLETEST_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walden.h"

typedef struct ot_oracle {
	MDB_env *env;
} ot_oracle;

/* Creates dir and an LMDB environment in it (16 GiB map, 64 databases,
 * no syncs: the oracle outlives a killed process, not a power loss). */
void ot_open(ot_oracle *o, const char *dir);

/* Opens an environment ot_open made before (another process's). */
void ot_reopen(ot_oracle *o, const char *dir);

void ot_close(ot_oracle *o);

/* A write transaction (nested in parent if not NULL). */
MDB_txn *ot_begin(ot_oracle *o, MDB_txn *parent);

/* The oracle's database called name, created if absent. */
MDB_dbi ot_dbi(ot_oracle *o, const char *name);

/* n bytes derived from seed (the same bytes for walden and the oracle). */
void ot_fill(uint8_t *p, size_t n, uint64_t seed);

/*
 * Walks t through x with a cursor and dbi of mt with an LMDB cursor side
 * by side: true if they hold the same keys with the same values. On the
 * first difference diag says what. *items (if not NULL): items compared.
 */
bool ot_scan_equal(wd_txn *x, wd_table *t, MDB_txn *mt, MDB_dbi dbi, char *diag,
		   size_t dcap, uint64_t *items);

/* The committed contents of table name equal dbi of the oracle (read by
 * a read-only transaction), else the test fails saying when. Returns the
 * number of items. */
uint64_t ot_compare_committed(wd_db *db, const char *name, ot_oracle *o, MDB_dbi dbi,
			      const char *when);

/* ---- one table's committed state ---------------------------------------- */

/* An oracle (ot_open's environment) whose unnamed database holds one
 * table's committed state, in one write transaction kept open
 * (MDB_NOSYNC: it only has to outlive the test process); a batch is a
 * transaction nested in it. */
typedef struct ot_state ot_state;

/* A fresh state in directory dir (created; must not hold one yet). Fails
 * the test on an LMDB error. */
ot_state *ot_state_open(const char *dir);

/* Closes the state (any open batch is dropped) and frees it. */
void ot_state_close(ot_state *o);

/* Puts and deletes (a missing key is fine) go into the open batch, if
 * any, else straight into the state. */
void ot_state_put(ot_state *o, const void *k, size_t klen, const void *v, size_t vlen);
void ot_state_del(ot_state *o, const void *k, size_t klen);

/* A batch: kept (ot_batch_commit) or taken back (ot_batch_abort) as a
 * whole. One at a time. */
void ot_batch_begin(ot_state *o);
void ot_batch_commit(ot_state *o);
void ot_batch_abort(ot_state *o);

/*
 * Compares table name of db (a table that does not exist counts as empty)
 * with the state, both in key order (ot_scan_equal): NULL if they hold the
 * same keys with the same values, else a malloc'd line describing the
 * first difference.
 */
char *ot_state_diff(ot_state *o, wd_db *db, const char *name);

/* Calls fn for every key and value of the state, in key order. */
void ot_state_foreach(ot_state *o,
		      void (*fn)(void *arg, const void *k, size_t klen, const void *v,
				 size_t vlen),
		      void *arg);

/* The number of keys and a 64-bit hash (FNV-1a over each key and value,
 * with their lengths, in key order) of the state, and of table name of db
 * (0 and the empty hash if it does not exist; an error is returned, and no
 * cmocka call is made: a forked child may use it). */
void ot_state_digest(ot_state *o, uint64_t *count, uint64_t *hash);
int ot_table_digest(wd_db *db, const char *name, uint64_t *count, uint64_t *hash);

#endif
