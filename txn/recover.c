/*
 * recover.c - the database's side of crash recovery (README P2):
 * db_recover hands recovery_run (recovery/recovery.h) the control data,
 * the pool, the checkpointer and the callbacks for what needs tables -
 * relations opened for redo, the repair of each loser's in-flight row
 * change (or of every table, when the control file asks: P3), the losers'
 * rollback (P16), and going into production before the end-of-recovery
 * checkpoint. The passes themselves live in recovery/ (its README, P3).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "storage/trace.h"
#include "txn/txn_internal.h"

/* recovery_ops.rel_open: DIR/base/<rel> opened in the pool, no create;
 * WD_ENOENT if the file is gone (a dropped table's, I6). */
static int rel_open(void *arg, wd_relid rel)
{
	wd_db *db = arg;
	char path[4096];
	int rc = db_rel_path(db, rel, path, sizeof path);
	return rc ? rc : bufmgr_rel_open(db->pool, rel, path, 0);
}

/* recovery_ops.start: the undo log and the catalog, on the replayed
 * pages. Every free space map is rebuilt from its heap pages as tables
 * open (the maps are hints, not logged), the catalog's included. */
static int start(void *arg)
{
	wd_db *db = arg;
	int rc;
	db->fsm_stale = true;
	if ((rc = db_undo_start(db)) == 0)
		rc = catalog_open(db, false);
	return rc;
}

/* P3 in full for every table the catalog names that has not had it yet
 * (each opened on the way: its free space map is rebuilt as it opens). */
static int repair_all(wd_db *db, recovery_report *r)
{
	int rc = table_open_all(db);
	for (wd_table *t = db->tables; rc == 0 && t; t = t->next)
		if (!t->repaired && (rc = table_repair(t, &r->repaired)) == 0) {
			t->repaired = true;
			r->tables_repaired++;
		}
	return rc;
}

/* P3 step 1, the table in full (once). */
static int repair_full(wd_table *t, recovery_report *r)
{
	int rc = 0;
	if (!t->repaired && (rc = table_repair(t, &r->repaired)) == 0) {
		t->repaired = true;
		r->tables_repaired++;
	}
	return rc;
}

/*
 * 1 if the change of undo record rec may be a delete cut between its index
 * and heap steps with no page of t's heap named (nheap 0): a del (kind
 * DELETE, forward) or the rollback of an insert (kind INSERT) removes the
 * index entry first, and the tuple it then deletes lies wherever the key
 * was put, maybe before the loser's last undo record. Only if the entry
 * is gone; 0 otherwise; an error of the lookup.
 */
static int delete_cut(wd_table *t, const undo_rec *rec, size_t nheap)
{
	wd_tid tid;
	int rc;
	if (nheap > 0 || (rec->kind != UNDO_ROW_DELETE && rec->kind != UNDO_ROW_INSERT))
		return 0;
	rc = btree_lookup(t->bt, rec->key, rec->klen, &tid);
	return rc == WD_NOTFOUND ? 1 : rc;
}

/* P3 step 2: hint h of loser xid, whose undo record rec names a key of
 * table t - that key checked on the pages of t's heap the hint lists, or
 * the table in full if the hint's pages are unknown. */
static int repair_hint(wd_table *t, const recovery_hint *h, const undo_rec *rec,
		       recovery_report *r)
{
	const char *name = *t->name ? t->name : "(catalog)";
	wd_blkno blocks[RECOVERY_HINT_BLOCKS];
	char key[TXN_KEY_SHOWN];
	uint64_t before = r->repaired;
	size_t n = 0;
	int rc;
	txn_key_shown(rec->key, rec->klen, key);
	for (uint32_t i = 0; i < h->nblocks; i++)
		if (h->blocks[i].rel == t->info.heap_rel)
			blocks[n++] = h->blocks[i].blk;
	if (!h->unknown && (rc = delete_cut(t, rec, n)) != 0) {
		if (rc < 0)
			return rc;
		TRACE(TR_RECOVERY, "  table %s in full: loser xid=%llu (head %u:%u, key '%s') "
		      "may be deleting the key with its heap step not logged: its tuple may lie "
		      "on any page", name, (unsigned long long)h->xid,
		      (unsigned)UNDO_PTR_BLK(h->head), (unsigned)UNDO_PTR_OFF(h->head), key);
		return repair_full(t, r);
	}
	if (h->unknown) {
		TRACE(TR_RECOVERY, "  table %s in full: loser xid=%llu (head %u:%u, key '%s') "
		      "may have begun its change before the redo point or named too many pages",
		      name, (unsigned long long)h->xid, (unsigned)UNDO_PTR_BLK(h->head),
		      (unsigned)UNDO_PTR_OFF(h->head), key);
		return repair_full(t, r);
	}
	if (t->repaired)
		return 0; /* repaired in full already */
	if ((rc = table_repair_key(t, rec->key, rec->klen, blocks, n, &r->repaired)) != 0)
		return rc;
	r->keys_checked++;
	TRACE(TR_RECOVERY, "  key '%s' of table %s (loser xid %llu, head %u:%u): checked %zu "
	      "block%s, %llu fixed", key, name, (unsigned long long)h->xid,
	      (unsigned)UNDO_PTR_BLK(h->head), (unsigned)UNDO_PTR_OFF(h->head), n,
	      n == 1 ? "" : "s", (unsigned long long)(r->repaired - before));
	return 0;
}

/* Remembers h for after the DDL losers' rollback (P16 step 2). */
static int defer(wd_db *db, const recovery_hint *h)
{
	const recovery_hint **v = realloc(db->deferred, (db->ndeferred + 1) * sizeof *v);
	if (!v)
		return err_set(WD_ENOMEM, "repair: out of memory");
	v[db->ndeferred++] = h;
	db->deferred = v;
	return 0;
}

/* The hints of catalog (rows of the catalog: catalog true) or of user
 * tables. A user table not open yet waits (defer: its drop may be taken
 * back, P16) when deferring, else the table is gone and every table is
 * repaired in full, as nothing vouches for that. */
static int repair_hints(wd_db *db, const recovery_hint *const *hv, size_t n, bool catalog,
			bool deferring, recovery_report *r)
{
	undo_rec rec = {0};
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		wd_table *t;
		if ((rc = undo_read(db->undo, hv[i]->head, &rec)) != 0)
			break;
		if ((rec.rel == CATALOG_HEAP_REL) != catalog)
			continue;
		if ((t = table_by_rel(db, NULL, rec.rel)) != NULL)
			rc = repair_hint(t, hv[i], &rec, r);
		else if (deferring)
			rc = defer(db, hv[i]);
		else {
			TRACE(TR_RECOVERY, "  loser xid=%llu changed relation %u, which no table "
			      "names: every table in full", (unsigned long long)hv[i]->xid,
			      rec.rel);
			rc = repair_all(db, r);
		}
	}
	undo_rec_free(&rec);
	return rc;
}

/* recovery_ops.repair: P3. In full (the control file says a repair is
 * pending): the catalog first (its entries name the tables), then every
 * table. Else the key of each loser's in-flight change: the catalog's
 * first, then every table opened (their maps rebuilt), then the others. */
static int repair(void *arg, const recovery_hint *hints, size_t n, recovery_report *r)
{
	wd_db *db = arg;
	const recovery_hint **hv = NULL;
	uint64_t before = r->repaired;
	int rc = 0;
	if (db->repair_full) {
		TRACE(TR_RECOVERY, "  every table in full: the control file says heap and index "
		      "may disagree where no loser explains it");
		if ((rc = repair_full(db->catalog, r)) == 0)
			rc = repair_all(db, r);
		db->repaired_full = rc == 0;
	} else {
		if (n && !(hv = malloc(n * sizeof *hv)))
			return err_set(WD_ENOMEM, "repair: out of memory");
		for (size_t i = 0; i < n; i++)
			hv[i] = &hints[i];
		rc = repair_hints(db, hv, n, true, false, r);
		if (rc == 0)
			rc = table_open_all(db);
		if (rc == 0)
			rc = repair_hints(db, hv, n, false, true, r);
		free(hv);
	}
	TRACE(TR_RECOVERY, "open %s: %llu index or heap entries repaired", db->dir,
	      (unsigned long long)(r->repaired - before));
	return rc;
}

/* recovery_ops.undo: P16 steps 2-3. Table creates and drops first, so
 * that a table whose drop is taken back is open (and repaired: the hints
 * deferred by repair, or in full) before the other losers' changes to it
 * are undone. */
static int undo(void *arg, const undo_xtab *xt, uint64_t *losers, uint64_t *steps)
{
	wd_db *db = arg;
	int rc = db_rollback_losers(db, xt, true, losers, steps);
	if (rc == 0 && db->repair_full)
		rc = repair_all(db, &db->rr);
	else if (rc == 0 && (rc = table_open_all(db)) == 0)
		rc = repair_hints(db, db->deferred, db->ndeferred, false, false, &db->rr);
	free(db->deferred);
	db->deferred = NULL;
	db->ndeferred = 0;
	if (rc == 0)
		rc = db_rollback_losers(db, xt, false, losers, steps);
	TRACE(TR_RECOVERY, "open %s: %llu loser transactions rolled back, %llu undo steps",
	      db->dir, (unsigned long long)*losers, (unsigned long long)*steps);
	/* every map is rebuilt; a loser's undone create leaves a handle of a
	 * table the catalog no longer names: all handles go and reopen lazily */
	db->fsm_stale = false;
	if (rc == 0 && *losers > 0 && (rc = db_close_tables(db)) == 0)
		rc = catalog_open(db, false);
	return rc;
}

/* recovery_ops.production: in production with a batch of transaction ids
 * (P1 step 7), in memory; the end checkpoint's control write (ckpt_ops
 * .control) makes it durable together with the checkpoint. */
static int production(void *arg)
{
	wd_db *db = arg;
	pthread_mutex_lock(&db->ctl_mu);
	db_production_data(db, &db->cd);
	/* a full repair done, and nothing out of step since: the end
	 * checkpoint's control write clears the mark (P3) */
	if (db->repaired_full && !atomic_load(&db->needs_repair))
		db->cd.flags &= ~(uint32_t)CONTROL_F_NEEDS_REPAIR;
	pthread_mutex_unlock(&db->ctl_mu);
	return 0;
}

int db_recover(wd_db *db, wd_lsn from, wd_lsn end, unsigned end_reason)
{
	recovery_ctx c = {.dir = db->dir, .cd = &db->cd, .pool = db->pool,
			  .page_size = db->opts.page_size, .from = from, .end = end,
			  .end_reason = end_reason,
			  .ckpt = db->ckpt, .arg = db,
			  .ops = {rel_open, start, repair, undo, production}};
	int rc;
	db->recovered = true;
	db->repair_full = (db->cd.flags & CONTROL_F_NEEDS_REPAIR) != 0;
	rc = recovery_run(&c, &db->rr);
	free(db->deferred);
	db->deferred = NULL;
	db->ndeferred = 0;
	return rc;
}
