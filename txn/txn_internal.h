/*
 * txn_internal.h - the structs behind the public handles (wd_db, wd_txn,
 * wd_table, wd_cursor) and the helpers the files of txn/ share. Only txn/
 * includes it; tools use txn/db.h. Protocols: txn/README.md.
 */
#ifndef WALDEN_TXN_INTERNAL_H
#define WALDEN_TXN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "btree/btree.h"
#include "bufmgr/bufmgr.h"
#include "heap/heap.h"
#include "recovery/control.h"
#include "recovery/recovery.h"
#include "storage/error.h"
#include "txn/db.h"
#include "txn/lockmgr.h"
#include "undo/undo.h"
#include "wal/redo.h"
#include "wal/wal.h"
#include "walden.h"

/* The catalog's own relations (README "Formats"). */
#define CATALOG_HEAP_REL 1u
#define CATALOG_INDEX_REL 2u
/* Relation ids below this are reserved; the first table gets it. A
 * control file whose next_relid is below it belongs to a database whose
 * creation never finished. */
#define FIRST_USER_RELID DB_FIRST_TABLE_RELID
/* Transaction ids are reserved in the control file this many at a time. */
#define TXN_XID_BATCH 4096u
/* Key latches (README I4): a power of two. */
#define TXN_STRIPES 256u
#define TABLE_NAME_MAX 255u
#define LOCK_FILE "lock"
/* Ended transaction handles kept (not freed) so that a late call on one
 * gets WD_ESTATE instead of touching freed memory (README I11). */
#define TXN_QUARANTINE 1024u
#define TXN_MAGIC 0x7778646eu /* "nxdw": a live or quarantined wd_txn */
#define SAVEPOINT_NAME_MAX 255u

struct wd_table {
	wd_db *db;
	char *name;           /* "" for the catalog */
	db_table_info info;   /* relation ids and flags */
	heap *h;
	btree *bt;
	int refs;             /* transactions holding the handle (I8); db->mu */
	bool repaired;        /* P3 done on it (an open after a crash) */
	struct wd_table *next; /* the db's cache */
};

struct wd_db {
	char *dir;
	int lock_fd;
	dev_t dev;            /* the directory's identity, for the */
	ino_t ino;            /* in-process registry of open databases */
	wd_options opts;      /* page and segment size: the control file's */
	wal_opts wo;
	bufmgr *pool;
	wal *w;
	wal_log_ctx log;
	bool fsm_stale;       /* opened after a crash: rebuild each FSM */
	/* A durable write of the control file failed: every later call is
	 * WD_EPANIC and wd_close writes nothing (DESIGN.md section 3). */
	atomic_bool panicked;
	char panic_msg[320];    /* set once, before panicked */
	/* A put or del left heap and index out of step and could not take
	 * its change back: wd_close leaves the control file IN_PRODUCTION so
	 * that the next open repairs (README P3, I1). */
	atomic_bool needs_repair;
	/* this open's recovery repairs every table in full (the control
	 * file's CONTROL_F_NEEDS_REPAIR, README P3), and did so */
	bool repair_full, repaired_full;
	/* recovery's hints for tables not open before the DDL losers'
	 * rollback (recover.c; valid during recovery_run) */
	const struct recovery_hint **deferred;
	size_t ndeferred;

	pthread_mutex_t ctl_mu; /* guards cd and next_xid */
	control_data cd;        /* as last written */
	wd_xid next_xid;        /* next to hand out; < cd.next_xid */
	db_recovery_report rr;  /* this open's recovery (txn/db.h) */
	bool recovered;         /* ... if it recovered at all */

	pthread_mutex_t mu;     /* guards tables and ntxn */
	wd_table *tables;       /* open user tables */
	int ntxn;               /* transactions begun and not ended */
	pthread_mutex_t ddl_mu; /* serialises table create and drop */
	wd_table *catalog;

	pthread_mutex_t stripes[TXN_STRIPES]; /* key latches (I4) */

	undo_log *undo;         /* undo chains of every transaction (undo/) */
	lockmgr *locks;         /* row locks (LOCKS.md) */
	/* ended handles, oldest first, at most TXN_QUARANTINE (I11); db->mu */
	wd_txn *ended_head, *ended_tail;
	unsigned nended;
	/* transactions begun and not ended, for the checkpoint's table of
	 * active transactions (README I15); db->mu */
	wd_txn *active;
	struct checkpointer *ckpt; /* recovery/checkpoint.h; NULL until open ends */
};

/* Where a row change writes its undo record first (ops.c log_undo), and a
 * scratch buffer for the old value. */
typedef struct row_undo {
	undo_log *log;
	undo_chain *chain;
	uint8_t *buf;
	uint64_t cap;
} row_undo;

typedef struct savepoint {
	char *name;
	undo_ptr at; /* the chain's head when it was set */
} savepoint;

enum txn_state { TXN_ACTIVE = 1, TXN_COMMITTED, TXN_ABORTED };

struct wd_txn {
	uint32_t magic;     /* TXN_MAGIC (I11) */
	int state;          /* enum txn_state; ended handles stay readable (I11) */
	atomic_int busy;    /* a call is running on it (I12) */
	bool rdonly;        /* wd_begin_flags(WD_TXN_RDONLY) */
	bool failed;        /* a rollback to a savepoint failed midway (P14) */
	wd_db *db;
	wd_xid xid;
	wd_lsn prev; /* the transaction's last record; 0: wrote nothing */
	bool sync;   /* synchronous_commit for this transaction */
	undo_chain undo;    /* its undo records, newest at undo.head */
	row_undo ru;        /* ops.c's view of undo, with the scratch buffer */
	lock_owner *lo;     /* its row locks (strict 2PL: kept until it ends) */
	savepoint *sps;     /* oldest first */
	unsigned nsps, spcap;
	wd_txn *next_ended; /* the quarantine list (I11) */
	/* The checkpoint's view of this transaction (README I15, P17): op_seq
	 * is odd while an operation that moves prev or undo.head runs; the
	 * pub_* copies are stored before it turns even again. */
	wd_txn *act_prev, *act_next; /* db->active; db->mu */
	atomic_uint_fast64_t op_seq;
	_Atomic wd_lsn pub_prev;
	_Atomic undo_ptr pub_head;
	atomic_bool pub_done;        /* its COMMIT or ABORT record is logged */
	/* Table handles this transaction holds a reference on (I8): taken at
	 * wd_table_open or the first call on the table, dropped at the end. */
	wd_table *last;  /* the last one used (a cache for the common case) */
	wd_table **tabs;
	unsigned ntabs, cap;
};

/* ---- tids: the heap's and the index's spelling of one address ---- */

static inline heap_tid tid_to_heap(wd_tid t)
{
	return (heap_tid){.blk = t.blk, .slot = t.slot};
}

static inline wd_tid tid_from_heap(heap_tid t)
{
	return (wd_tid){.blk = t.blk, .slot = t.slot};
}

/* ---- db.c ---- */

/* 0, or WD_EPANIC (with a detail) once the log or the database has
 * panicked. */
int db_check_usable(wd_db *db) WD_MUST_CHECK;

/* Puts db in the panic state after a failed durable write (cause, whose
 * detail is the current one) and returns WD_EPANIC. Sticky until reopen. */
int db_panic(wd_db *db, int cause);
/* The same with what failed ("a rollback failed"). */
int db_panic_why(wd_db *db, int cause, const char *what);

/* control_write of cd while the database is open: on failure (a failed
 * fsync cannot be retried) db panics. Caller holds ctl_mu. */
int db_control_write(wd_db *db, const control_data *cd) WD_MUST_CHECK;

/* Notes that heap and index of t may disagree until the next open
 * repairs them (wd_close then keeps the control file IN_PRODUCTION).
 * Returns code with the detail extended to say so. */
int db_needs_repair(wd_table *t, int code);

/* An index entry of t points at heap block blk, where no tuple is: 0 if
 * blk is a heap page (the entry is out of step: db_needs_repair), else
 * WD_ECORRUPT naming the heap file and block (past its end, all zero, or
 * another kind of page: the file is damaged, not a change half done). */
int table_heap_block_lost(wd_table *t, wd_blkno blk) WD_MUST_CHECK;

/* DIR/base/<rel> into out[cap]. WD_EINVAL if it does not fit. */
int db_rel_path(const wd_db *db, wd_relid rel, char *out, size_t cap) WD_MUST_CHECK;

/* Reserves n relation ids (durably: control file first). */
int db_alloc_relids(wd_db *db, unsigned n, wd_relid *first) WD_MUST_CHECK;

/* The undo log opened (DIR/base/3, created if absent; P1 step 5). */
int db_undo_start(wd_db *db) WD_MUST_CHECK;

/* Every table handle freed, the catalog's too (relations closed). */
int db_close_tables(wd_db *db) WD_MUST_CHECK;

/* cd says "in production" with the next batch of transaction ids
 * reserved into db->next_xid (P1 step 7). Caller holds ctl_mu. */
void db_production_data(wd_db *db, control_data *cd);

/* ---- lock.c ---- */

int db_lock_acquire(wd_db *db) WD_MUST_CHECK;
void db_lock_release(wd_db *db);

/* ---- recover.c ---- */

/* P2: crash recovery (recovery_run) from the redo point `from`, the log
 * ending at `end`; db->rr is its report. Needs the pool and the
 * checkpointer (its thread not started); leaves the undo log and the
 * catalog open, the database in production. */
int db_recover(wd_db *db, wd_lsn from, wd_lsn end, unsigned end_reason) WD_MUST_CHECK;

/* ---- table.c ---- */

/* Opens the relations of info and the heap and B+tree over them; with
 * create, the files are new and the tree is formatted. */
int table_handle_open(wd_db *db, const char *name, const db_table_info *info,
		      bool create, wd_table **out) WD_MUST_CHECK;

/* Frees the handle and closes its relations in the pool (dirty pages are
 * written first). */
int table_handle_close(wd_table *t);

/* Frees the handle without writing anything (its relations stay open in
 * the pool, for bufmgr_destroy to drop). */
void table_handle_discard(wd_table *t);

/* Opens a handle for every table of the catalog into db's cache. */
int table_open_all(wd_db *db) WD_MUST_CHECK;

/* ---- ops.c: one key's change, atomic across heap and index (I4) ---- */

/* ru: where the change's undo record goes first (NULL: none, for undo
 * steps and repairs). */
int table_put(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
	      size_t klen, const void *v, size_t vlen, row_undo *ru) WD_MUST_CHECK;
int table_get(wd_table *t, const void *k, size_t klen, void *buf, size_t cap,
	      size_t *vlen) WD_MUST_CHECK;
int table_del(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
	      size_t klen, row_undo *ru) WD_MUST_CHECK;

/* The key latch of (t, k): held across one key's heap and index change. */
pthread_mutex_t *table_key_latch(wd_table *t, const void *k, size_t klen);

/* A test-only fault point (see db.h db_fault_arm): 0, or WD_EIO when the
 * named point is armed and due. */
int txn_fault_point(const char *name) WD_MUST_CHECK;

/* ---- xact.c: the state of a handle (I11, I12) ---- */

/* Every call on txn starts here: WD_EINVAL (NULL or not a transaction
 * handle), WD_ESTATE (already committed or aborted), WD_EBUSY (another
 * thread is in a call on it), WD_EACCES (write on a read-only
 * transaction), WD_EPANIC. On 0 the caller must txn_leave. */
int txn_enter(wd_txn *txn, bool write) WD_MUST_CHECK;
void txn_leave(wd_txn *txn);

/* A transaction for the engine's own use (table create and drop commit on
 * their own: README P4, P5). */
int txn_begin_internal(wd_db *db, wd_txn **out) WD_MUST_CHECK;
/* wd_commit that, once its COMMIT record is in the log, waits for space
 * on a full disk instead of returning WD_ENOSPC with the transaction
 * committed but not durable (catalog changes: README P4, P5). */
int txn_commit_durable(wd_txn *txn) WD_MUST_CHECK;

/* Logs an XACT record (XACT_COMMIT, XACT_ABORT) of xid chained to *prev,
 * which becomes its LSN. */
int xact_log(wd_db *db, unsigned type, wd_xid xid, wd_lsn *prev) WD_MUST_CHECK;

/* README P17: brackets an operation that may move txn->prev or
 * txn->undo.head (a row change, a rollback, the COMMIT or ABORT record).
 * txn_op_end publishes both for the checkpoint; ended: that operation
 * logged the transaction's COMMIT or ABORT. */
void txn_op_begin(wd_txn *txn);
void txn_op_end(wd_txn *txn, bool ended);

/* README P17 steps 2-3: after the redo point was set, waits until no
 * registered transaction is inside an operation begun before, then gives
 * the published (xid, last LSN, undo head) of every registered one that
 * wrote something and has not logged its end, in a malloc'd array. */
int db_att_snapshot(wd_db *db, undo_xact **out, size_t *n) WD_MUST_CHECK;

/* Frees every handle in the quarantine (wd_close, open failure). */
void txn_quarantine_free(wd_db *db);

/* ---- rollback.c: undo of a transaction's changes (README P12-P16) ---- */

/* A key as recovery's trace shows it: its first 16 bytes, printable ones
 * as they are, others as \xNN, "..." if longer (4 x 16 + 3 + 1 bytes). */
#define TXN_KEY_SHOWN 72
void txn_key_shown(const void *key, size_t klen, char out[TXN_KEY_SHOWN]);

/* Takes (rel of t, k) in mode for txn (LOCKS.md). On a deadlock txn is the
 * victim: it is rolled back whole, its locks released, and the call
 * returns WD_EDEADLOCK with txn still usable (P15). */
int txn_lock(wd_txn *txn, wd_table *t, const void *k, size_t klen, int mode) WD_MUST_CHECK;
/* txn_lock with its own timeout: LOCK_NOWAIT gives WD_EBUSY (nothing
 * changed) where txn_lock would wait. */
int txn_lock_wait(wd_txn *txn, wd_table *t, const void *k, size_t klen, int mode,
		  uint32_t timeout_ms) WD_MUST_CHECK;

/* Undoes txn's changes newer than stop (0: all) newest first, a CLR per
 * step (P12). Leaves the savepoints alone: the caller drops those that go
 * (wd_rollback_to the ones set after its own, a deadlock victim all) -
 * stop 0 is also the point of a savepoint set before the first change. */
int txn_rollback(wd_txn *txn, undo_ptr stop) WD_MUST_CHECK;

/* After a crash: rolls back the losers of xt that are table creates and
 * drops (ddl) or the others (undo through each chain, then XACT_ABORT),
 * with the tables open (P16). *n and *steps grow by the losers rolled
 * back and the undo records reversed. */
int db_rollback_losers(wd_db *db, const undo_xtab *xt, bool ddl, uint64_t *n,
		       uint64_t *steps) WD_MUST_CHECK;

/* ---- xact.c / table.c: table references of a transaction (I8) ---- */

/* Before txn's first call on t: WD_EINVAL if t belongs to another
 * database; else txn holds a reference on t until it ends. Cheap when txn
 * used t last. Every call that takes a table (put, get, del, cursor open)
 * makes it first. */
int txn_use_table(wd_txn *txn, wd_table *t) WD_MUST_CHECK;

/* txn_use_table with db->mu already held (wd_table_open, under the same
 * hold as its cache lookup, so no drop frees t in between). */
int txn_hold_table_locked(wd_txn *txn, wd_table *t) WD_MUST_CHECK;

/* Whether txn holds a reference on t; caller holds db->mu. */
bool txn_holds_table(const wd_txn *txn, const wd_table *t);

/* Drops txn's reference on t (the drop of t by txn). Caller holds db->mu. */
void txn_forget_table_locked(wd_txn *txn, wd_table *t);

/* ---- catalog.c ---- */

#define CATALOG_VALUE_SIZE 20u
#define CATALOG_VALUE_VERSION 1u

void catalog_encode(const db_table_info *ti, uint8_t out[CATALOG_VALUE_SIZE]);
int catalog_decode(const char *name, const uint8_t *v, size_t len,
		   db_table_info *ti) WD_MUST_CHECK;

/* Opens (create: formats) the catalog table of db. */
int catalog_open(wd_db *db, bool create) WD_MUST_CHECK;

/* The catalog entry of name: 0, WD_NOTFOUND, or an error. */
int catalog_lookup(wd_db *db, const char *name, db_table_info *ti) WD_MUST_CHECK;

/* The open handle of the table whose heap is rel (the catalog for
 * CATALOG_HEAP_REL), txn's own first (txn may be NULL); NULL if none is
 * open (rollback.c). */
wd_table *table_by_rel(wd_db *db, wd_txn *txn, wd_relid rel);

/* ---- repair.c ---- */

/* After a crash: makes heap and index of t agree (README P3). */
int table_repair(wd_table *t, uint64_t *fixed) WD_MUST_CHECK;

/* After a crash: the same decisions as table_repair for key alone - its
 * tuples on the heap blocks blocks[n] (WD_INVALID_BLKNO entries skipped)
 * and its index entry with the tuple that entry points at (README P3).
 * *fixed grows by the fixes made. Nothing else may run on t. */
int table_repair_key(wd_table *t, const void *key, size_t klen, const wd_blkno *blocks,
		     size_t n, uint64_t *fixed) WD_MUST_CHECK;

/* At every open: removes base/<n>, 16 <= n < next_relid, that no catalog
 * entry names (leftovers of an unfinished create or drop). */
int db_remove_orphans(wd_db *db, uint64_t *removed) WD_MUST_CHECK;

#endif
