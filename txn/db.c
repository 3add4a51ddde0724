/*
 * db.c - opening and closing a database: wd_open (README P1: lock, create
 * or read the control file, open the log, replay after a crash, open the
 * catalog) and wd_close (write everything, mark a clean shutdown), plus the
 * small accessors of txn/db.h and the control-file helpers the other files
 * of txn/ share (db_alloc_relids).
 */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recovery/checkpoint.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "storage/trace.h"
#include "txn/rmgrs.h"
#include "txn/txn_internal.h"
#include "wal/format.h"

/* Checks the settings wd_open itself relies on; the pool and the log check
 * theirs when they start. */
static int check_options(const wd_options *o)
{
	if (!page_size_valid(o->page_size))
		return err_set(WD_EINVAL, "page_size %u: must be a power of two from %u to %u",
			       o->page_size, PAGE_SIZE_MIN, PAGE_SIZE_MAX);
	if (o->max_value_bytes < 1 || o->max_value_bytes > HEAP_MAX_VALUE_LIMIT)
		return err_set(WD_EINVAL, "max_value_bytes %llu: must be 1 to 2^40",
			       (unsigned long long)o->max_value_bytes);
	if (o->checkpoint_timeout_s < 1 || !(o->checkpoint_completion_target >= 0.0 &&
					      o->checkpoint_completion_target <= 1.0))
		return err_set(WD_EINVAL, "checkpoint_timeout_s %u, checkpoint_completion_target "
			       "%g: must be at least 1 and within [0, 1]", o->checkpoint_timeout_s,
			       o->checkpoint_completion_target);
	if (o->buffer_pool_bytes / o->page_size < BM_MIN_BUFFERS)
		return err_set(WD_EINVAL, "buffer_pool_bytes %llu: must hold at least %u pages",
			       (unsigned long long)o->buffer_pool_bytes, BM_MIN_BUFFERS);
	return wal_archive_check_dir(o->archive_dir); /* before anything is created */
}

/* A zeroed handle for dir with its mutexes ready and the options copied. */
static int db_alloc(const char *dir, const wd_options *o, wd_db **out)
{
	wd_db *db = calloc(1, sizeof *db);
	if (!db || !(db->dir = strdup(dir))) {
		free(db);
		return err_set(WD_ENOMEM, "%s: out of memory", dir);
	}
	db->lock_fd = -1;
	if (o)
		db->opts = *o;
	else
		wd_options_default(&db->opts);
	pthread_mutex_init(&db->ctl_mu, NULL);
	pthread_mutex_init(&db->mu, NULL);
	pthread_mutex_init(&db->ddl_mu, NULL);
	for (unsigned i = 0; i < TXN_STRIPES; i++)
		pthread_mutex_init(&db->stripes[i], NULL);
	*out = db;
	return 0;
}

/* Frees every table handle (closing their relations). First error wins. */
static int close_tables(wd_db *db)
{
	int rc = 0, r;
	while (db->tables) {
		wd_table *t = db->tables;
		db->tables = t->next;
		if ((r = table_handle_close(t)) != 0 && rc == 0)
			rc = r;
	}
	if (db->catalog && (r = table_handle_close(db->catalog)) != 0 && rc == 0)
		rc = r;
	db->catalog = NULL;
	return rc;
}

/* Tears down whatever of db exists, writing no page (as a crash would,
 * apart from the log's own flush at wal_close), and frees it. */
static void db_free(wd_db *db)
{
	checkpointer_free(db->ckpt); /* first: its thread uses everything */
	db->ckpt = NULL;
	while (db->tables) {
		wd_table *t = db->tables;
		db->tables = t->next;
		table_handle_discard(t);
	}
	table_handle_discard(db->catalog);
	db->catalog = NULL;
	undo_close(db->undo);
	db->undo = NULL;
	txn_quarantine_free(db);
	if (db->locks)
		lockmgr_destroy(db->locks);
	if (db->w)
		(void)wal_close(db->w);
	bufmgr_destroy(db->pool);
	if (db->lock_fd >= 0)
		db_lock_release(db);
	pthread_mutex_destroy(&db->ctl_mu);
	pthread_mutex_destroy(&db->mu);
	pthread_mutex_destroy(&db->ddl_mu);
	for (unsigned i = 0; i < TXN_STRIPES; i++)
		pthread_mutex_destroy(&db->stripes[i]);
	free(db->dir);
	free(db);
}

/* The pool (WAL before data through the log's hook) and the logging
 * context the access methods share. Needs db->w. */
static int pool_start(wd_db *db)
{
	bufmgr_opts bo;
	int rc;
	bufmgr_opts_default(&bo);
	bo.page_size = db->opts.page_size;
	bo.pool_bytes = db->opts.buffer_pool_bytes;
	if ((rc = bufmgr_create(&bo, &db->pool)) != 0)
		return rc;
	bufmgr_set_wal_hook(db->pool, wal_bufmgr_hook, db->w);
	db->log.w = db->w;
	db->log.full_page_writes = db->opts.full_page_writes != 0;
	db->log.compress = db->opts.wal_compression != 0;
	db->log.page_size = db->opts.page_size;
	return 0; /* the redo point is the log's: 0 until one is set */
}

/* The undo log: DIR/base/3 in the pool (created if absent), every page
 * free (no transaction is active at open: README P1 step 5). */
static int undo_start(wd_db *db)
{
	char path[4096], base[4096];
	bool fresh = false;
	int rc = db_rel_path(db, UNDO_REL, path, sizeof path);
	if (rc == 0 && (fresh = !storage_exists(path)))
		snprintf(base, sizeof base, "%s/%s", db->dir, DB_BASE_DIR);
	if (rc == 0)
		rc = bufmgr_rel_open(db->pool, UNDO_REL, path, BM_REL_CREATE);
	/* a new file is durable in base/ before any record names it (I6) */
	if (rc == 0 && fresh)
		rc = storage_sync_dir(base);
	if (rc == 0)
		rc = undo_open(db->pool, &db->log, &db->undo);
	return rc;
}

/* commit_siblings: how many transactions other than the caller's are open. */
static int active_others(void *arg)
{
	wd_db *db = arg;
	int n;
	pthread_mutex_lock(&db->mu);
	n = db->ntxn;
	pthread_mutex_unlock(&db->mu);
	return n > 0 ? n - 1 : 0;
}

/*
 * P1 step 7: every page is on disk up to the log's end, so the log's end is
 * the new redo point (where replay starts if this run crashes; the first
 * change of each page after it carries a full-page image). Marks the
 * database in production and reserves a batch of transaction ids.
 */
static int start_production(wd_db *db)
{
	control_data cd;
	wd_lsn redo;
	int rc;
	if ((rc = bufmgr_flush_all(db->pool)) != 0)
		return rc;
	if ((rc = wal_flush_to(db->w, wal_insert_pos(db->w))) != 0)
		return rc;
	/* in memory first, as a checkpoint does: a redo point ahead of the
	 * control file's only adds images (wal/README.md I11) */
	if ((rc = wal_set_redo_point(db->w, &redo)) != 0)
		return rc;
	pthread_mutex_lock(&db->ctl_mu);
	cd = db->cd;
	db->next_xid = cd.next_xid;
	cd.next_xid += TXN_XID_BATCH;
	cd.state = CONTROL_IN_PRODUCTION;
	cd.redo_lsn = redo;
	if ((rc = control_write(db->dir, &cd)) == 0)
		db->cd = cd;
	pthread_mutex_unlock(&db->ctl_mu);
	return rc;
}

/* P1 step 3, a new database: control file, base/, the log, the catalog. */
static int create_new(wd_db *db)
{
	char base[4096];
	int rc;
	if ((rc = control_create(db->dir, db->opts.page_size, &db->cd)) != 0)
		return rc;
	snprintf(base, sizeof base, "%s/%s", db->dir, DB_BASE_DIR);
	if ((rc = storage_mkdir(base)) != 0 || (rc = storage_sync_dir(db->dir)) != 0)
		return rc;
	wal_opts_from(&db->wo, &db->opts, db->cd.db_id);
	if ((rc = wal_create(db->dir, &db->wo, &db->w)) != 0)
		return rc;
	wal_set_active_fn(db->w, active_others, db);
	if ((rc = pool_start(db)) != 0 || (rc = undo_start(db)) != 0 ||
	    (rc = catalog_open(db, true)) != 0)
		return rc;
	/* the creation is finished once next_relid leaves the reserved range */
	db->cd.wal_segment_size = db->opts.wal_segment_size;
	db->cd.next_relid = FIRST_USER_RELID;
	return start_production(db);
}

/* Reads DIR/control into db->cd; the layout settings come from it. */
static int read_control(wd_db *db)
{
	int rc = control_read(db->dir, &db->cd);
	if (rc != 0)
		return rc;
	if (db->cd.next_relid < FIRST_USER_RELID || db->cd.wal_segment_size == 0)
		return err_set(WD_ECORRUPT,
			       "%s: the creation of this database never finished "
			       "(control file without a catalog); remove the directory "
			       "and create it again", db->dir);
	db->opts.page_size = db->cd.page_size;
	db->opts.wal_segment_size = db->cd.wal_segment_size;
	return 0;
}

/* P1 step 5, after a crash: heap and index of every table made to agree,
 * free space maps rebuilt. */
/* Milliseconds on the monotonic clock, for the report's pass times. */
static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* P3 of one table, its repairs counted and traced. */
static int repair_one(wd_table *t, uint64_t *fixed)
{
	uint64_t before = *fixed;
	int rc = table_repair(t, fixed);
	if (rc == 0 && *fixed > before)
		TRACE(TR_RECOVERY, "  table %-20s heap %u, index %u: %llu entries repaired",
		      t->name[0] ? t->name : "(catalog)", t->info.heap_rel, t->info.index_rel,
		      (unsigned long long)(*fixed - before));
	return rc;
}

/* P3 for every table the catalog names that has not had it yet. */
static int repair_all(wd_db *db, uint64_t *fixed)
{
	int rc = table_open_all(db);
	for (wd_table *t = db->tables; rc == 0 && t; t = t->next)
		if (!t->repaired && (rc = repair_one(t, fixed)) == 0)
			t->repaired = true;
	return rc;
}

/* P1 step 5: the repairs (P3), then the losers' rollback (P16), timed
 * and counted into db->rr. */
static int after_crash(wd_db *db, const undo_xtab *xt)
{
	uint64_t fixed = 0, losers = 0, steps = 0;
	double t0 = now_ms(), t1;
	int rc;
	TRACE(TR_RECOVERY, "== repair == (heap and index of every table made to agree, P3)");
	rc = repair_one(db->catalog, &fixed);
	if (rc == 0)
		rc = repair_all(db, &fixed);
	t1 = now_ms();
	db->rr.repair_ms = t1 - t0;
	TRACE(TR_RECOVERY, "== undo == (each loser's undo chain, newest first; a CLR per "
	      "step; undo records as block:offset)");
	/* step 5b: the losers, undone through their chains (P16): table
	 * creates and drops first, so that a table whose drop is taken back
	 * is open (and repaired) before the other losers' changes to it are */
	if (rc == 0 && (rc = db_rollback_losers(db, xt, true, &losers, &steps)) == 0 &&
	    (rc = repair_all(db, &fixed)) == 0)
		rc = db_rollback_losers(db, xt, false, &losers, &steps);
	db->rr.undo_ms = now_ms() - t1;
	db->rr.repaired = fixed;
	db->rr.losers_rolled_back = losers;
	db->rr.undo_steps = steps;
	TRACE(TR_RECOVERY, "open %s: %llu index or heap entries repaired", db->dir,
	      (unsigned long long)fixed);
	TRACE(TR_RECOVERY, "open %s: %llu loser transactions rolled back, %llu undo steps",
	      db->dir, (unsigned long long)losers, (unsigned long long)steps);
	/* every map is rebuilt; a loser's undone create leaves a handle of a
	 * table the catalog no longer names: all handles go and reopen lazily */
	db->fsm_stale = false;
	if (rc == 0 && losers > 0 && (rc = close_tables(db)) == 0)
		rc = catalog_open(db, false);
	return rc;
}

/* P1 step 6, at every open: the files of tables that never made it into
 * the catalog or whose drop did not finish are removed. Best effort: a
 * leftover is harmless (no id is reused, I2) and goes at a later open. */
static void remove_leftovers(wd_db *db)
{
	uint64_t removed = 0;
	int rc = db_remove_orphans(db, &removed);
	if (rc != 0 || removed)
		TRACE(TR_TXN, "open %s: %llu leftover files removed%s%s", db->dir,
		      (unsigned long long)removed, rc ? "; stopped: " : "",
		      rc ? wd_last_error() : "");
}

/* The report's first fields and the analysis header of the trace: the
 * state found, the checkpoint the control file names, where the scan
 * starts and where the log ends (from: the redo point; end: wal_find_end). */
static void recovery_begin(wd_db *db, wd_lsn from, wd_lsn end)
{
	db->recovered = true;
	db->rr = (db_recovery_report){.control_state = db->cd.state,
				      .checkpoint_lsn = db->cd.checkpoint_lsn,
				      .checkpoint_redo = db->cd.redo_lsn,
				      .redo_start = from,
				      .wal_end = end,
				      .end_reason_name = "?"};
	TRACE(TR_RECOVERY, "== analysis == (control file state: %s)",
	      control_state_name(db->cd.state));
	if (db->cd.checkpoint_lsn)
		TRACE(TR_RECOVERY, "  checkpoint found at " LSN_FMT ", redo point " LSN_FMT,
		      LSN_ARGS(db->cd.checkpoint_lsn), LSN_ARGS(db->cd.redo_lsn));
	else
		TRACE(TR_RECOVERY, "  no checkpoint yet: the scan starts at the log's beginning");
	TRACE(TR_RECOVERY, "  scan from " LSN_FMT " to the end of WAL at " LSN_FMT,
	      LSN_ARGS(from), LSN_ARGS(end));
}

/* P1 steps 3-6, an existing database. */
static int open_existing(wd_db *db)
{
	undo_xtab *xt = NULL;
	wd_lsn from, end;
	bool crashed;
	int rc;
	if ((rc = read_control(db)) != 0)
		return rc;
	wal_opts_from(&db->wo, &db->opts, db->cd.db_id);
	from = db->cd.redo_lsn ? db->cd.redo_lsn : WAL_SEG_HEADER_SIZE;
	if ((rc = wal_find_end(db->dir, &db->wo, from, &end)) != 0 ||
	    (rc = wal_open(db->dir, &db->wo, end, &db->w)) != 0)
		return rc;
	wal_set_active_fn(db->w, active_others, db);
	if ((rc = pool_start(db)) != 0)
		return rc;
	/* The changes of this open (the repairs of step 5) are the first
	 * since the redo point `from`, where the next replay starts if this
	 * open crashes too (the control file keeps redo_lsn until step 7):
	 * each page's first change after it must carry a full-page image, or
	 * a torn write during the open's final flush could not be repaired
	 * (I7). */
	wal_set_redo_point_at(db->w, from);
	crashed = db->cd.state != CONTROL_SHUTDOWN;
	if (crashed) {
		double t0 = now_ms();
		recovery_begin(db, from, end);
		/* step 4: repeat history from the redo point, noting the
		 * transactions that never ended (the losers) */
		db->cd.state = CONTROL_IN_RECOVERY;
		if ((rc = undo_xtab_create(&xt)) != 0 ||
		    (rc = control_write(db->dir, &db->cd)) != 0 ||
		    (rc = db_replay(db, from, xt)) != 0 || (rc = db_trace_losers(db, xt)) != 0)
			goto out;
		db->rr.redo_ms = now_ms() - t0;
	}
	/* after a crash every free space map is rebuilt from its heap pages
	 * (the maps are hints, not logged), the catalog's included */
	db->fsm_stale = crashed;
	if ((rc = undo_start(db)) != 0 || (rc = catalog_open(db, false)) != 0)
		goto out;
	if (crashed && (rc = after_crash(db, xt)) != 0)
		goto out;
	remove_leftovers(db);
	rc = start_production(db);
out:
	undo_xtab_free(xt);
	return rc;
}

int db_recovery_report_get(wd_db *db, const db_recovery_report **out)
{
	*out = db->recovered ? &db->rr : NULL;
	return db->recovered ? 0 : WD_NOTFOUND;
}

/* ---- checkpoints (recovery/checkpoint.h; README P17) ---- */

/* ckpt_ops.att: the published table of active transactions (P17). */
static int ckpt_att(void *arg, wal_ckpt_att **out, uint32_t *n)
{
	undo_xact *v = NULL;
	size_t k = 0;
	wal_ckpt_att *a;
	int rc = db_att_snapshot(arg, &v, &k);
	*out = NULL;
	*n = 0;
	if (rc != 0)
		return rc;
	if (!(a = malloc((k ? k : 1) * sizeof *a))) {
		free(v);
		return err_set(WD_ENOMEM, "checkpoint: out of memory");
	}
	for (size_t i = 0; i < k; i++)
		a[i] = (wal_ckpt_att){v[i].xid, v[i].last_lsn, v[i].head};
	free(v);
	*out = a;
	*n = (uint32_t)k;
	return 0;
}

static wd_xid ckpt_next_xid(void *arg)
{
	wd_db *db = arg;
	wd_xid x;
	pthread_mutex_lock(&db->ctl_mu);
	x = db->next_xid;
	pthread_mutex_unlock(&db->ctl_mu);
	return x;
}

/* ckpt_ops.control: the checkpoint becomes the one recovery starts at. */
static int ckpt_control(void *arg, wd_lsn ckpt_lsn, wd_lsn redo)
{
	wd_db *db = arg;
	control_data cd;
	int rc = db_check_usable(db);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&db->ctl_mu);
	cd = db->cd;
	cd.checkpoint_lsn = ckpt_lsn;
	cd.redo_lsn = redo;
	if ((rc = db_control_write(db, &cd)) == 0) /* panics on failure */
		db->cd = cd;
	pthread_mutex_unlock(&db->ctl_mu);
	return rc;
}

/* P1 step 8: the checkpointer (recovery README P2), once the database is
 * in production. */
static int checkpointer_open(wd_db *db)
{
	ckpt_ctx c = {.pool = db->pool, .w = db->w, .arg = db,
		      .ops = {ckpt_att, ckpt_next_xid, ckpt_control},
		      .timeout_s = db->opts.checkpoint_timeout_s,
		      .max_wal_bytes = db->opts.max_wal_size_bytes,
		      .completion_target = db->opts.checkpoint_completion_target};
	int rc = checkpointer_create(&c, &db->ckpt);
	if (rc == 0)
		rc = checkpointer_start(db->ckpt);
	return rc;
}

int wd_checkpoint(wd_db *db)
{
	int rc;
	if (!db)
		return err_set(WD_EINVAL, "wd_checkpoint: db is required");
	if ((rc = db_check_usable(db)) != 0)
		return rc;
	return checkpoint_run(db->ckpt, true, NULL);
}

/* Creates dir (an existing one is fine: another process may have won the
 * race) and fsyncs its parent, so that the new directory entry is as
 * durable as the files about to be created in it. */
static int create_dir(const char *dir)
{
	char *copy = strdup(dir);
	int rc;
	if (!copy)
		return err_set(WD_ENOMEM, "%s: out of memory", dir);
	rc = storage_mkdir(dir);
	if (rc == WD_EEXIST)
		rc = 0;
	else if (rc == 0)
		rc = storage_sync_dir(dirname(copy));
	free(copy);
	return rc;
}

/*
 * The public entry (README P1). Step 1: options, directory; step 2: the
 * lock; then create or open; last, the database goes into production.
 */
int wd_open(const char *dir, const wd_options *o, wd_db **out)
{
	wd_db *db = NULL;
	char ctl[4096];
	int rc;
	if (!dir || !*dir || !out)
		return err_set(WD_EINVAL, "wd_open: dir and db are required");
	*out = NULL;
	if ((rc = db_alloc(dir, o, &db)) != 0)
		return rc;
	if ((rc = check_options(&db->opts)) != 0 || (rc = lockmgr_create(&db->locks)) != 0)
		goto fail;
	/* step 1: the directory, durable in its parent */
	if (!storage_exists(dir) && (rc = create_dir(dir)) != 0)
		goto fail;
	/* step 2: one owner */
	if ((rc = db_lock_acquire(db)) != 0 || (rc = walden_register_rmgrs()) != 0)
		goto fail;
	snprintf(ctl, sizeof ctl, "%s/%s", dir, CONTROL_FILE);
	rc = storage_exists(ctl) ? open_existing(db) : create_new(db);
	if (rc == 0)
		rc = checkpointer_open(db);
	if (rc != 0)
		goto fail;
	TRACE(TR_TXN, "open %s page_size=%u redo=" LSN_FMT, dir, db->opts.page_size,
	      LSN_ARGS(db->cd.redo_lsn));
	*out = db;
	return 0;
fail:
	db_free(db);
	return rc;
}

/*
 * Clean shutdown (README P9): every page written and synced, the log
 * flushed and closed, then the control file says SHUTDOWN with the log's
 * end as the redo point, so the next open replays nothing. On a failure
 * the control file keeps IN_PRODUCTION and the next open replays; db is
 * freed either way, except for WD_ESTATE. A database that panicked is
 * freed without writing anything more (WD_EPANIC); one that needs a
 * repair (db_needs_repair) is closed with state IN_PRODUCTION, so the next
 * open repairs it.
 */
int wd_close(wd_db *db)
{
	wd_lsn end;
	int rc, r;
	if (!db)
		return 0;
	pthread_mutex_lock(&db->mu);
	r = db->ntxn;
	pthread_mutex_unlock(&db->mu);
	if (r > 0)
		return err_set(WD_ESTATE, "%s: %d transaction(s) still open", db->dir, r);
	if (atomic_load(&db->panicked)) {
		rc = db_check_usable(db);
		db_free(db);
		return rc;
	}
	/* step 1: the checkpointer stops, then a shutdown checkpoint (its
	 * record is where a crash during the rest of the close restarts) */
	checkpointer_stop(db->ckpt);
	rc = checkpoint_run(db->ckpt, true, NULL);
	if ((r = close_tables(db)) != 0 && rc == 0)
		rc = r;
	if ((r = bufmgr_flush_all(db->pool)) != 0 && rc == 0)
		rc = r;
	end = wal_insert_pos(db->w);
	r = wal_close(db->w);
	db->w = NULL;
	if (r != 0 && rc == 0)
		rc = r;
	if (rc == 0) {
		/* step 4 (a repair pending: the next open must not trust I1) */
		db->cd.state = atomic_load(&db->needs_repair) ? CONTROL_IN_PRODUCTION
							      : CONTROL_SHUTDOWN;
		db->cd.next_xid = db->next_xid;
		db->cd.redo_lsn = end;
		rc = control_write(db->dir, &db->cd);
	}
	db_free(db);
	return rc;
}

/* The panic check every public call makes first. */
int db_check_usable(wd_db *db)
{
	if (atomic_load_explicit(&db->panicked, memory_order_acquire))
		return err_set(WD_EPANIC, "%s: %s; close and reopen the database to recover",
			       db->dir, db->panic_msg);
	if (db->w && wal_is_panicked(db->w))
		return err_set(WD_EPANIC, "%s: a write to the log failed earlier; "
			       "close and reopen the database to recover", db->dir);
	return 0;
}

/* The database's own panic state (the log has its own, wal_panic). The
 * first cause's detail is kept; panic_msg is written once, before the
 * flag is published. */
int db_panic(wd_db *db, int cause)
{
	return db_panic_why(db, cause, "a durable write failed");
}

int db_panic_why(wd_db *db, int cause, const char *what)
{
	static pthread_mutex_t panic_mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&panic_mu);
	if (!atomic_load(&db->panicked)) {
		snprintf(db->panic_msg, sizeof db->panic_msg, "%s (%s: %s)", what,
			 wd_strerror(cause), wd_last_error());
		/* nothing logged from now on may become durable: a transaction
		 * ended by the panic keeps its changes in the log unundone */
		if (db->w)
			(void)wal_panic(db->w, cause);
		atomic_store_explicit(&db->panicked, true, memory_order_release);
		TRACE(TR_TXN, "panic %s: %s", db->dir, db->panic_msg);
	}
	pthread_mutex_unlock(&panic_mu);
	return db_check_usable(db);
}

/*
 * control_write while open. Whatever step failed (the temporary file's
 * fdatasync, the rename, the directory's fsync), the control file on disk
 * may or may not be the new one and a failed fsync must never be retried
 * (DESIGN.md section 3): the database panics. The next open recovers.
 */
int db_control_write(wd_db *db, const control_data *cd)
{
	int rc = control_write(db->dir, cd);
	return rc == 0 ? 0 : db_panic(db, rc);
}

int db_needs_repair(wd_table *t, int code)
{
	wd_db *db = t->db;
	if (!atomic_exchange(&db->needs_repair, true))
		TRACE(TR_TXN, "table %s: heap and index disagree; the next open repairs",
		      *t->name ? t->name : "(catalog)");
	return err_wrap(code, "table %s: heap and index left out of step (the next "
			"open repairs them)", *t->name ? t->name : "(catalog)");
}

bool db_needs_repair_flag(wd_db *db)
{
	return atomic_load(&db->needs_repair);
}

/* DIR/base/<rel>. */
int db_rel_path(const wd_db *db, wd_relid rel, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s/%u", db->dir, DB_BASE_DIR, rel);
	if (n < 0 || (size_t)n >= cap)
		return err_set(WD_EINVAL, "%s: path too long", db->dir);
	return 0;
}

/*
 * Reserves n consecutive relation ids: the control file is rewritten with
 * the higher counter before any file with those ids is created, so no crash
 * can ever let an id be handed out twice (README I2).
 */
int db_alloc_relids(wd_db *db, unsigned n, wd_relid *first)
{
	control_data cd;
	int rc;
	pthread_mutex_lock(&db->ctl_mu);
	cd = db->cd;
	*first = cd.next_relid;
	cd.next_relid += n;
	if (cd.next_relid < *first)
		rc = err_set(WD_ETOOBIG, "%s: relation ids exhausted", db->dir);
	else if ((rc = db_control_write(db, &cd)) == 0)
		db->cd = cd;
	pthread_mutex_unlock(&db->ctl_mu);
	return rc;
}

/* Accessors for tools (txn/db.h). */
bufmgr *db_pool(wd_db *db)
{
	return db->pool;
}

struct wal *db_wal(wd_db *db)
{
	return db->w;
}

uint32_t db_page_size(wd_db *db)
{
	return db->opts.page_size;
}

const char *db_dir(wd_db *db)
{
	return db->dir;
}

/* The row lock manager's counters (tests watch `waits` to know a thread
 * is blocked on a row lock). */
void db_lock_stats(wd_db *db, lock_stats *out)
{
	lockmgr_stats(db->locks, out);
}
