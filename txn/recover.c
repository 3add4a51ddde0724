/*
 * recover.c - the database's side of crash recovery (README P2):
 * db_recover hands recovery_run (recovery/recovery.h) the control data,
 * the pool, the checkpointer and the callbacks for what needs tables -
 * relations opened for redo, the repair of every table (P3), the losers'
 * rollback (P16), and going into production before the end-of-recovery
 * checkpoint. The passes themselves live in recovery/ (its README, P3).
 */
#define _GNU_SOURCE
#include <stdio.h>

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

/* P3 for every table the catalog names that has not had it yet. */
static int repair_all(wd_db *db, uint64_t *fixed)
{
	int rc = table_open_all(db);
	for (wd_table *t = db->tables; rc == 0 && t; t = t->next)
		if (!t->repaired && (rc = table_repair(t, fixed)) == 0)
			t->repaired = true;
	return rc;
}

/* recovery_ops.repair: P3, the catalog first (its entries name the
 * tables), then every table. */
static int repair(void *arg, uint64_t *fixed)
{
	wd_db *db = arg;
	uint64_t before = *fixed;
	int rc = table_repair(db->catalog, fixed);
	if (rc == 0)
		rc = repair_all(db, fixed);
	TRACE(TR_RECOVERY, "open %s: %llu index or heap entries repaired", db->dir,
	      (unsigned long long)(*fixed - before));
	return rc;
}

/* recovery_ops.undo: P16 steps 2-3. Table creates and drops first, so
 * that a table whose drop is taken back is open (and repaired) before
 * the other losers' changes to it are undone. */
static int undo(void *arg, const undo_xtab *xt, uint64_t *losers, uint64_t *steps)
{
	wd_db *db = arg;
	uint64_t fixed = 0;
	int rc = db_rollback_losers(db, xt, true, losers, steps);
	if (rc == 0 && (rc = repair_all(db, &fixed)) == 0)
		rc = db_rollback_losers(db, xt, false, losers, steps);
	db->rr.repaired += fixed;
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
	db->recovered = true;
	return recovery_run(&c, &db->rr);
}
