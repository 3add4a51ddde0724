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
#include "storage/error.h"
#include "txn/db.h"
#include "wal/redo.h"
#include "wal/wal.h"
#include "walden.h"

/* The catalog's own relations (README "Formats"). */
#define CATALOG_HEAP_REL 1u
#define CATALOG_INDEX_REL 2u
/* Relation ids below this are reserved; the first table gets it. A
 * control file whose next_relid is below it belongs to a database whose
 * creation never finished. */
#define FIRST_USER_RELID 16u
/* Transaction ids are reserved in the control file this many at a time. */
#define TXN_XID_BATCH 4096u
/* Key latches (README I4): a power of two. */
#define TXN_STRIPES 256u
#define TABLE_NAME_MAX 255u
#define LOCK_FILE "lock"

struct wd_table {
	wd_db *db;
	char *name;           /* "" for the catalog */
	db_table_info info;   /* relation ids and flags */
	heap *h;
	btree *bt;
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

	pthread_mutex_t ctl_mu; /* guards cd and next_xid */
	control_data cd;        /* as last written */
	wd_xid next_xid;        /* next to hand out; < cd.next_xid */

	pthread_mutex_t mu;     /* guards tables and ntxn */
	wd_table *tables;       /* open user tables */
	int ntxn;               /* transactions begun and not ended */
	pthread_mutex_t ddl_mu; /* serialises table create and drop */
	wd_table *catalog;

	pthread_mutex_t stripes[TXN_STRIPES]; /* key latches (I4) */
};

struct wd_txn {
	wd_db *db;
	wd_xid xid;
	wd_lsn prev; /* the transaction's last record; 0: wrote nothing */
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

/* 0, or WD_EPANIC (with a detail) once the log has panicked. */
int db_check_usable(wd_db *db) WD_MUST_CHECK;

/* DIR/base/<rel> into out[cap]. WD_EINVAL if it does not fit. */
int db_rel_path(const wd_db *db, wd_relid rel, char *out, size_t cap) WD_MUST_CHECK;

/* Reserves n relation ids (durably: control file first). */
int db_alloc_relids(wd_db *db, unsigned n, wd_relid *first) WD_MUST_CHECK;

/* ---- lock.c ---- */

int db_lock_acquire(wd_db *db) WD_MUST_CHECK;
void db_lock_release(wd_db *db);

/* ---- replay.c ---- */

/* Repeats history from `from` to the end of the log (README P2). */
int db_replay(wd_db *db, wd_lsn from) WD_MUST_CHECK;

/* ---- table.c ---- */

/* Opens the relations of info and the heap and B+tree over them; with
 * create, the files are new and the tree is formatted. */
int table_handle_open(wd_db *db, const char *name, const db_table_info *info,
		      bool create, wd_table **out) WD_MUST_CHECK;

/* Frees the handle and closes its relations in the pool (dirty pages are
 * written first). */
int table_handle_close(wd_table *t);

/* Opens a handle for every table of the catalog into db's cache. */
int table_open_all(wd_db *db) WD_MUST_CHECK;

/* ---- ops.c: one key's change, atomic across heap and index (I4) ---- */

int table_put(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
	      size_t klen, const void *v, size_t vlen) WD_MUST_CHECK;
int table_get(wd_table *t, const void *k, size_t klen, void *buf, size_t cap,
	      size_t *vlen) WD_MUST_CHECK;
int table_del(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
	      size_t klen) WD_MUST_CHECK;

/* The key latch of (t, k): held across one key's heap and index change. */
pthread_mutex_t *table_key_latch(wd_table *t, const void *k, size_t klen);

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

/* ---- repair.c ---- */

/* After a crash: makes heap and index of t agree (README P3). */
int table_repair(wd_table *t, uint64_t *fixed) WD_MUST_CHECK;

/* After a crash: removes base/ files no catalog entry names. */
int db_remove_orphans(wd_db *db, uint64_t *removed) WD_MUST_CHECK;

#endif
