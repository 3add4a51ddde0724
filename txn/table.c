/*
 * table.c - table handles and their life: wd_table_open (open, or create:
 * README P4), wd_table_drop (P5), the handle cache of a database, and the
 * accessors of txn/db.h that tools use (db_table_heap, db_table_btree).
 *
 * A table is three relations: its heap, the heap's free space map, and a
 * B+tree on the key. A handle holds them open in the pool from its first
 * wd_table_open until wd_close or the drop.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "storage/trace.h"
#include "txn/txn_internal.h"

/* The relations of a table in the order they are opened. */
static void table_rels(const db_table_info *ti, wd_relid rels[3])
{
	rels[0] = ti->heap_rel;
	rels[1] = ti->fsm_rel;
	rels[2] = ti->index_rel;
}

/*
 * Opens one relation file of t in the pool. The heap and the index must
 * exist unless they are being created; the FSM is created when absent.
 * After a crash (fsm_stale) heap_open rebuilds the FSM from the heap pages
 * (fsm_trust off, heap README "Open") and the clean close rewrites the file
 * in place: rewriting the same file needs no directory fsync, where
 * unlinking and re-creating it could bring the stale file back after a
 * power loss.
 */
static int open_rel(wd_table *t, wd_relid rel, bool is_fsm, bool create)
{
	char path[4096];
	int rc;
	if (rel == 0)
		return 0;
	if ((rc = db_rel_path(t->db, rel, path, sizeof path)) != 0)
		return rc;
	return bufmgr_rel_open(t->db->pool, rel, path,
			       create || is_fsm ? BM_REL_CREATE : 0);
}

/* Closes (drop: forgets without writing) the relations of t that are open. */
static int close_rels(wd_table *t, unsigned nopen, bool drop)
{
	wd_relid rels[3];
	int rc = 0, r;
	table_rels(&t->info, rels);
	for (unsigned i = 0; i < nopen; i++) {
		if (rels[i] == 0)
			continue;
		if (drop && (r = bufmgr_drop_rel(t->db->pool, rels[i])) != 0 && rc == 0)
			rc = r;
		if ((r = bufmgr_rel_close(t->db->pool, rels[i])) != 0 && rc == 0)
			rc = r;
	}
	return rc;
}

/* Frees t's memory and access-method handles; nopen relations are open.
 * A close that keeps the table first writes its free space map into the
 * pool (heap README FSM-I2), which closing the relations takes to disk. */
static int table_free(wd_table *t, unsigned nopen, bool drop)
{
	int rc = 0, r;
	if (!drop && t->h && nopen >= 2)
		rc = heap_fsm_flush(t->h);
	heap_close(t->h);
	btree_close(t->bt);
	if ((r = close_rels(t, nopen, drop)) != 0 && rc == 0)
		rc = r;
	free(t->name);
	free(t);
	return rc;
}

/* Opens the relations of t, then heap and tree over them (P4 step 3). */
static int table_start(wd_table *t, bool create, unsigned *nopen)
{
	wd_relid rels[3];
	heap_opts ho;
	char base[4096];
	int rc = 0;
	table_rels(&t->info, rels);
	for (*nopen = 0; *nopen < 3 && rc == 0; (*nopen)++)
		rc = open_rel(t, rels[*nopen], *nopen == 1, create);
	if (rc != 0) {
		(*nopen)--; /* the one that failed is not open */
		return rc;
	}
	snprintf(base, sizeof base, "%s/%s", t->db->dir, DB_BASE_DIR);
	/* the files exist before anything is logged to them; a failed fsync
	 * is never retried: the database panics (I9) */
	if (create && (rc = storage_sync_dir(base)) != 0)
		return db_panic_why(t->db, rc, "the fsync of base/ after a table's creation failed");
	heap_opts_default(&ho);
	ho.max_value_bytes = t->db->opts.max_value_bytes;
	ho.fsm_rel = t->info.fsm_rel;
	ho.fsm_trust = !t->db->fsm_stale;
	if ((rc = heap_open(t->db->pool, &t->db->log, t->info.heap_rel, &ho, &t->h)) != 0)
		return rc;
	return create ? btree_create(t->db->pool, t->info.index_rel, &t->db->log, &t->bt)
		      : btree_open(t->db->pool, t->info.index_rel, &t->db->log, &t->bt);
}

/* A handle for the table described by info (P4 step 3 when create); on
 * failure whatever was opened is closed again. */
int table_handle_open(wd_db *db, const char *name, const db_table_info *info,
		      bool create, wd_table **out)
{
	wd_table *t = calloc(1, sizeof *t);
	unsigned nopen = 0;
	int rc;
	if (!t || !(t->name = strdup(name))) {
		free(t);
		return err_set(WD_ENOMEM, "table %s: out of memory", name);
	}
	t->db = db;
	t->info = *info;
	t->info.name = t->name;
	if ((rc = table_start(t, create, &nopen)) != 0) {
		rc = err_wrap(rc, "table %s", *name ? name : "(catalog)");
		(void)table_free(t, nopen, false);
		return rc;
	}
	*out = t;
	return 0;
}

/* Frees a handle; its relations are written, synced and closed. */
int table_handle_close(wd_table *t)
{
	return t ? table_free(t, 3, false) : 0;
}

/* Frees a handle and nothing else: its relations stay open in the pool,
 * unwritten (bufmgr_destroy closes them as a crash would). */
void table_handle_discard(wd_table *t)
{
	if (!t)
		return;
	heap_close(t->h);
	btree_close(t->bt);
	free(t->name);
	free(t);
}

/* The cached handle of name, or NULL. Caller holds db->mu. */
static wd_table *cache_find(wd_db *db, const char *name)
{
	for (wd_table *t = db->tables; t; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

/* Adds t to the cache. */
static void cache_add(wd_db *db, wd_table *t)
{
	pthread_mutex_lock(&db->mu);
	t->next = db->tables;
	db->tables = t;
	pthread_mutex_unlock(&db->mu);
}

/* Takes t out of the cache. Caller holds db->mu. */
static void cache_unlink_locked(wd_db *db, wd_table *t)
{
	for (wd_table **pp = &db->tables; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
}

/* The cached handle of name with txn holding it (I8), found and held
 * under one hold of db->mu so that no drop frees it in between; *t NULL
 * if it is not cached. */
static int cache_find_hold(wd_txn *txn, const char *name, wd_table **t)
{
	int rc = 0;
	pthread_mutex_lock(&txn->db->mu);
	*t = cache_find(txn->db, name);
	if (*t && (rc = txn_hold_table_locked(txn, *t)) != 0)
		*t = NULL;
	pthread_mutex_unlock(&txn->db->mu);
	return rc;
}

/*
 * P5 step 0 (I8): takes the cached handle of name (NULL if none) out of
 * the cache, unless a transaction other than txn holds it: WD_EBUSY, and
 * nothing changes. Once out of the cache, a wd_table_open of name waits
 * for ddl_mu (held by the drop) and then finds no catalog entry.
 */
static int take_unused(wd_txn *txn, const char *name, wd_table **out)
{
	wd_db *db = txn->db;
	wd_table *t;
	int others = 0;
	pthread_mutex_lock(&db->mu);
	t = cache_find(db, name);
	if (t && (others = t->refs - (txn_holds_table(txn, t) ? 1 : 0)) == 0) {
		cache_unlink_locked(db, t);
		txn_forget_table_locked(txn, t);
	}
	pthread_mutex_unlock(&db->mu);
	if (others > 0)
		return err_set(WD_EBUSY, "table %s is in use by %d other transaction(s); "
			       "drop it once they have ended", name, others);
	*out = t;
	return 0;
}

/* Unlinks the files of info (drop step 4, or a create that failed). */
static int unlink_files(wd_db *db, const db_table_info *info)
{
	wd_relid rels[3];
	char path[4096], base[4096];
	int rc = 0, r;
	table_rels(info, rels);
	for (unsigned i = 0; i < 3; i++) {
		if ((r = db_rel_path(db, rels[i], path, sizeof path)) == 0 &&
		    storage_exists(path))
			r = storage_unlink(path);
		if (r != 0 && rc == 0)
			rc = r;
	}
	snprintf(base, sizeof base, "%s/%s", db->dir, DB_BASE_DIR);
	if ((r = storage_sync_dir(base)) != 0 && rc == 0) /* never retried (I9) */
		rc = db_panic_why(db, r, "the fsync of base/ after a table's removal failed");
	return rc;
}

/*
 * The catalog entry of name set to val (NULL: deleted) by a transaction of
 * its own, committed durably before this returns (P4 step 5, P5 steps
 * 1-2): table create and drop are not part of the caller's transaction,
 * so its rollback leaves them done. The entry's row lock and undo record
 * are those of any row change, so a crash before the commit takes the
 * entry back (a loser, README P16).
 */
static int catalog_change(wd_db *db, const char *name, const uint8_t *val)
{
	size_t n = strlen(name);
	wd_txn *itx;
	int rc = txn_begin_internal(db, &itx);
	if (rc != 0)
		return rc;
	rc = txn_lock(itx, db->catalog, name, n, LOCK_X);
	if (rc == 0) {
		txn_op_begin(itx); /* P17 */
		rc = val ? table_put(db->catalog, itx->xid, &itx->prev, name, n, val,
				     CATALOG_VALUE_SIZE, &itx->ru)
			 : table_del(db->catalog, itx->xid, &itx->prev, name, n, &itx->ru);
		txn_op_end(itx, false);
	}
	if (rc == 0) {
		storage_crash_point("txn-ddl-before-commit");
		/* durable on return, also on a full disk: a WD_ENOSPC with the
		 * entry committed would leave a catalog naming files the
		 * caller removes */
		return txn_commit_durable(itx);
	}
	(void)wd_abort(itx); /* takes back what was done; rc stays */
	return rc;
}

/*
 * P4: creates table name. Step 2: relation ids reserved in the control
 * file; step 3: files created and the directory synced; step 4: the tree
 * formatted (BTREE_CREATE); step 5: the catalog entry, logged under txn.
 * Caller holds ddl_mu.
 */
static int table_create(wd_txn *txn, const char *name, wd_table **out)
{
	wd_db *db = txn->db;
	db_table_info info = {.name = name};
	uint8_t val[CATALOG_VALUE_SIZE];
	wd_table *t;
	int rc;
	/* step 2 (I2) */
	if ((rc = db_alloc_relids(db, 3, &info.heap_rel)) != 0)
		return rc;
	info.fsm_rel = info.heap_rel + 1;
	info.index_rel = info.heap_rel + 2;
	/* steps 3 and 4 */
	if ((rc = table_handle_open(db, name, &info, true, &t)) != 0) {
		(void)unlink_files(db, &info);
		return rc;
	}
	storage_crash_point("txn-create-before-catalog");
	/* step 5 */
	catalog_encode(&info, val);
	rc = catalog_change(db, name, val);
	if (rc != 0) {
		(void)table_free(t, 3, true);
		/* on a panicked database the entry's commit may be durable all
		 * the same: the files stay for the next open, which keeps them
		 * or removes them as leftovers (P1 step 6) */
		if (db_check_usable(db) == 0)
			(void)unlink_files(db, &info);
		return err_wrap(rc, "table %s: catalog entry", name);
	}
	TRACE(TR_TXN, "create table %s heap=%u fsm=%u index=%u", name, info.heap_rel,
	      info.fsm_rel, info.index_rel);
	*out = t;
	return 0;
}

/* Checks a table name: 1..255 bytes. */
static int check_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > TABLE_NAME_MAX)
		return err_set(WD_EINVAL, "table name of %zu bytes: must be 1 to %u bytes",
			       n, TABLE_NAME_MAX);
	return 0;
}

/* The slow path of wd_table_open, under ddl_mu: catalog, then open or
 * create. */
static int open_locked(wd_txn *txn, const char *name, unsigned flags, wd_table **t)
{
	wd_db *db = txn->db;
	db_table_info info;
	int rc;
	if ((rc = cache_find_hold(txn, name, t)) != 0 || *t)
		return rc;
	rc = catalog_lookup(db, name, &info);
	if (rc == 0)
		rc = table_handle_open(db, name, &info, false, t);
	else if (rc == WD_NOTFOUND && (flags & WD_CREATE) && txn->rdonly)
		return err_set(WD_EACCES, "table %s does not exist, and transaction %llu "
			       "is read-only", name, (unsigned long long)txn->xid);
	else if (rc == WD_NOTFOUND && (flags & WD_CREATE))
		rc = table_create(txn, name, t);
	else if (rc == WD_NOTFOUND)
		return err_set(WD_NOTFOUND, "table %s does not exist", name);
	if (rc != 0)
		return rc;
	cache_add(db, *t);
	/* ddl_mu held: no drop can take it before the hold */
	return txn_use_table(txn, *t);
}

/* The cached handle if there is one, else the slow path under ddl_mu;
 * either way txn holds it until it ends (I8). */
int wd_table_open(wd_txn *txn, const char *name, unsigned flags, wd_table **t)
{
	int rc;
	if (!t)
		return err_set(WD_EINVAL, "wd_table_open: t is required");
	*t = NULL;
	if ((rc = txn_enter(txn, false)) != 0)
		return rc;
	if ((rc = check_name(name)) == 0 && (flags & ~WD_CREATE))
		rc = err_set(WD_EINVAL, "wd_table_open: unknown flags 0x%x", flags);
	if (rc == 0 && (rc = cache_find_hold(txn, name, t)) == 0 && !*t) {
		pthread_mutex_lock(&txn->db->ddl_mu);
		rc = open_locked(txn, name, flags, t);
		pthread_mutex_unlock(&txn->db->ddl_mu);
	}
	txn_leave(txn);
	return rc;
}

/*
 * P5: drops table name. Step 0: refused (WD_EBUSY) while another
 * transaction holds the handle (I8); step 1: the catalog entry goes
 * (logged under txn); step 2: the log is flushed past it, so the drop is
 * durable before any file goes; step 3: the handle is freed and the
 * buffers forgotten; step 4: the files are unlinked - also when step 3
 * failed: the drop is durable, and files left behind would never be
 * used again (the open removes any that stay, P1 step 6). Caller holds
 * ddl_mu.
 */
static int drop_locked(wd_txn *txn, const char *name)
{
	wd_db *db = txn->db;
	db_table_info info;
	wd_table *t = NULL;
	int rc = catalog_lookup(db, name, &info), r;
	if (rc == WD_NOTFOUND)
		return err_set(WD_NOTFOUND, "table %s does not exist", name);
	if (rc != 0)
		return rc;
	/* step 0 */
	if ((rc = take_unused(txn, name, &t)) != 0)
		return rc;
	/* steps 1 and 2: the delete committed, durably */
	if ((rc = catalog_change(db, name, NULL)) != 0) {
		if (t)
			cache_add(db, t); /* not dropped (durably) */
		return rc;
	}
	/* step 3 */
	if (t && (rc = table_free(t, 3, true)) != 0)
		rc = err_wrap(rc, "table %s: dropped, but closing its relations", name);
	storage_crash_point("txn-drop-before-unlink");
	/* step 4 */
	TRACE(TR_TXN, "drop table %s heap=%u fsm=%u index=%u", name, info.heap_rel,
	      info.fsm_rel, info.index_rel);
	if ((r = unlink_files(db, &info)) != 0 && rc == 0)
		rc = err_wrap(r, "table %s: dropped, but removing its files (the next "
			      "open removes them)", name);
	return rc;
}

/* P5 under ddl_mu (no create or drop runs beside it). */
int wd_table_drop(wd_txn *txn, const char *name)
{
	int rc;
	if ((rc = txn_enter(txn, true)) != 0)
		return rc;
	if ((rc = check_name(name)) == 0) {
		pthread_mutex_lock(&txn->db->ddl_mu);
		rc = drop_locked(txn, name);
		pthread_mutex_unlock(&txn->db->ddl_mu);
	}
	txn_leave(txn);
	return rc;
}

/* db_catalog_list callback of table_open_all. */
static int open_one(void *arg, const db_table_info *ti)
{
	wd_db *db = arg;
	wd_table *t;
	int rc;
	pthread_mutex_lock(&db->mu);
	t = cache_find(db, ti->name);
	pthread_mutex_unlock(&db->mu);
	if (t)
		return 0;
	if ((rc = table_handle_open(db, ti->name, ti, false, &t)) == 0)
		cache_add(db, t);
	return rc;
}

/* After a crash: every table is opened (and repaired by the caller). */
int table_open_all(wd_db *db)
{
	return db_catalog_list(db, open_one, db);
}

heap *db_table_heap(wd_table *t)
{
	return t->h;
}

btree *db_table_btree(wd_table *t)
{
	return t->bt;
}

const db_table_info *db_table_info_of(wd_table *t)
{
	return &t->info;
}
