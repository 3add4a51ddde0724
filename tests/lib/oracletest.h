/*
 * oracletest.h - the LMDB oracle of the suites that check walden tables
 * against what they must hold: an environment in a test directory, write
 * transactions (nested for savepoints), one named database per table, the
 * side-by-side scan of a walden table and an LMDB database, and the
 * deterministic values both are filled with. Needs <cmocka.h> and
 * <lmdb.h> included before it (as dbtest.h's MDBOK does).
 */
#ifndef WALDEN_ORACLETEST_H
#define WALDEN_ORACLETEST_H

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

#endif
