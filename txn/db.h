/*
 * db.h - what the tools (walden check, inspect, dot) and tests may use of an
 * open database beyond the public API: the catalog's list of tables, a
 * table's heap and B+tree, the pool, and the consistency check of a table.
 * Not exported by the shared library (no wd_ prefix). See txn/README.md.
 *
 *   wd_db *db;  wd_txn *x;  wd_table *t;
 *   wd_open(dir, NULL, &db);
 *   db_catalog_list(db, print_one, NULL);        // every table
 *   wd_begin(db, &x);
 *   wd_table_open(x, "users", 0, &t);
 *   db_table_check(t, &report);                  // heap, index, agreement
 *   btree_dot(db_table_btree(t), stdout);
 *   wd_commit(x);
 *   wd_close(db);
 */
#ifndef WALDEN_TXN_DB_H
#define WALDEN_TXN_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "btree/btree.h"
#include "bufmgr/bufmgr.h"
#include "heap/heap.h"
#include "recovery/recovery.h"
#include "storage/error.h"
#include "storage/types.h"
#include "txn/lockmgr.h"
#include "walden.h"

/* Table relation ids start here; below are the catalog's (README I2). A
 * base/ file with an id in [DB_FIRST_TABLE_RELID, the control file's
 * next_relid) that no catalog entry names is a leftover of an unfinished
 * create or drop, removed at the next open (README P1 step 6). */
#define DB_FIRST_TABLE_RELID 16u

/* A catalog entry (README "Formats"). */
typedef struct db_table_info {
	const char *name;    /* NUL-terminated, valid during the callback */
	wd_relid heap_rel;   /* the table's heap */
	wd_relid fsm_rel;    /* the heap's free space map */
	wd_relid index_rel;  /* the B+tree on the key */
	uint32_t flags;      /* 0 (reserved) */
} db_table_info;

/*
 * Calls fn for every table in name order; a non-zero return from fn stops
 * the walk and is returned. Errors: WD_ECORRUPT (an entry that does not
 * decode, naming it), the pool's.
 */
int db_catalog_list(wd_db *db, int (*fn)(void *arg, const db_table_info *ti),
		    void *arg) WD_MUST_CHECK;

/* The table's access methods and catalog entry (valid while t is). */
heap *db_table_heap(wd_table *t);
btree *db_table_btree(wd_table *t);
const db_table_info *db_table_info_of(wd_table *t);

/* The database's buffer pool, log, page size and directory. */
bufmgr *db_pool(wd_db *db);
struct wal *db_wal(wd_db *db);
uint32_t db_page_size(wd_db *db);
const char *db_dir(wd_db *db);

/* The row lock manager's counters (txn/lockmgr.h): a test that needs a
 * thread to be blocked on a row lock waits until `waits` grows (the
 * counter moves just before the waiter sleeps). */
void db_lock_stats(wd_db *db, lock_stats *out);

/* What db_table_check found. */
typedef struct db_check_report {
	btree_check_report index;  /* btree_check's */
	heap_fsm_report fsm;       /* heap_fsm_check's */
	uint64_t heap_tuples;      /* tuples a heap scan yields */
	uint64_t unindexed;        /* ... whose key the index lacks */
	uint64_t misindexed;       /* ... whose key the index maps elsewhere */
	uint64_t dangling;         /* index entries with no tuple of that key */
	bool ok;
	char msg[320];             /* the first problem, if !ok */
} db_check_report;

/*
 * Checks one table with no change in flight: btree_check, heap_fsm_check,
 * a heap scan in which every tuple's key must map to that tuple's TID in
 * the index, and equal counts (so heap and index agree one to one).
 * Returns 0 if all hold, WD_ECORRUPT (r->msg and the detail say what) if
 * not, or an I/O error; *r is always filled.
 */
int db_table_check(wd_table *t, db_check_report *r) WD_MUST_CHECK;

/* db_table_check of the catalog itself (names -> relation ids). */
int db_catalog_check(wd_db *db, db_check_report *r) WD_MUST_CHECK;

/*
 * Test hook: makes the nth hit from now of the fault point name (README
 * "Fault points": "txn-put-update-index", "txn-put-insert-index",
 * "txn-put-insert-undo", "txn-del-heap", "txn-del-undo") fail with WD_EIO,
 * once. Up to 8 points may be armed at a time; name NULL disarms them all.
 * Unarmed points cost one atomic load.
 */
void db_fault_arm(const char *name, uint64_t nth);

/*
 * The recovery report (recovery/README.md "Recovery report and trace"):
 * what the open that recovered did, pass by pass. Filled by every open
 * that finds the control file in a state other than "shut down cleanly".
 */
typedef recovery_report db_recovery_report;

/* The report of this open's recovery into *out: 0, or WD_NOTFOUND if the
 * open found a cleanly shut down database (no recovery at this open). */
int db_recovery_report_get(wd_db *db, const db_recovery_report **out) WD_MUST_CHECK;

/* true if a call of this run left a table needing the repair of the next
 * open (README "Failures between the heap and the index"). */
bool db_needs_repair_flag(wd_db *db);

#endif
