/*
 * db.c - opening and closing a database: wd_open (README P1: lock, create
 * or read the control file, open the log, recover after a crash through
 * recover.c, open the catalog) and wd_close (write everything, mark a
 * clean shutdown), plus the small accessors of txn/db.h and the helpers the
 * other files of txn/ share (db_alloc_relids, db_undo_start,
 * db_close_tables, db_production_data).
 */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int db_close_tables(wd_db *db)
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

static int checkpointer_make(wd_db *db);

/* The pool (WAL before data through the log's hook) and the logging
 * context the access methods share. Needs db->w. */
static int pool_start(wd_db *db)
{
	bufmgr_opts bo;
	int rc;
	bufmgr_opts_default(&bo);
	bo.page_size = db->opts.page_size;
	bo.pool_bytes = db->opts.buffer_pool_bytes;
	bo.huge_pages = db->opts.huge_pages != 0;
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
int db_undo_start(wd_db *db)
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

/* The control data of a database going into production (P1 step 7, or
 * recovery's end checkpoint): the next batch of transaction ids reserved
 * (I3). Caller holds ctl_mu. */
void db_production_data(wd_db *db, control_data *cd)
{
	db->next_xid = cd->next_xid;
	cd->next_xid += TXN_XID_BATCH;
	cd->state = CONTROL_IN_PRODUCTION;
}

/*
 * P1 step 7 after a clean shutdown or a creation: every page is on disk up
 * to the log's end, so the log's end is the new redo point (where replay
 * starts if this run crashes; the first change of each page after it
 * carries a full-page image). Marks the database in production and
 * reserves a batch of transaction ids. No checkpoint record: a recovery
 * from here would need nothing one could say (no transaction is active,
 * no page dirty), and the open stays one control file write.
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
	db_production_data(db, &cd);
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
	if ((rc = pool_start(db)) != 0 || (rc = db_undo_start(db)) != 0 ||
	    (rc = checkpointer_make(db)) != 0 || (rc = catalog_open(db, true)) != 0)
		return rc;
	/* the creation is finished once next_relid leaves the reserved range */
	db->cd.wal_segment_size = db->opts.wal_segment_size;
	db->cd.next_relid = FIRST_USER_RELID;
	return start_production(db);
}

/* P1 step 3 when DIR/control does not exist: a new database, unless the
 * directory already holds one's files. create_new makes the control file
 * before base/ and wal/, so they are never there without it: it was lost,
 * and a new database over them would silently show empty tables. */
static int create_checked(wd_db *db, const char *ctl)
{
	static const char *const kept[] = {DB_BASE_DIR, WAL_DIR};
	char path[4096];
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", db->dir, kept[i]);
		if (storage_exists(path))
			return err_set(WD_ECORRUPT, "%s: missing, but %s exists: the directory "
				       "holds a database whose control file was lost (not "
				       "creating a new one over it)", ctl, path);
	}
	return create_new(db);
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

/*
 * A segment gets its name only once it is whole (wal/README.md R-I5): if
 * the segment the log ends in, or the next one (where a record at the end
 * would go on), is shorter than the segment size, it was cut, and the
 * records cut off may be durable commits - not an end of the log to
 * recover up to. WD_ECORRUPT naming the file, else 0.
 */
static int log_not_cut(wd_db *db, wd_lsn end)
{
	uint32_t seg_size = db->opts.wal_segment_size;
	for (uint64_t segno = end / seg_size; segno <= end / seg_size + 1; segno++) {
		char path[4096];
		uint64_t size = seg_size;
		st_file *f;
		int rc = wal_seg_path(path, sizeof path, db->dir, segno);
		if (rc != 0)
			return rc;
		if (!storage_exists(path))
			continue;
		if ((rc = storage_open(path, ST_RDONLY, &f)) != 0)
			return rc;
		rc = storage_size(f, &size);
		storage_close(f);
		if (rc != 0)
			return rc;
		if (size < seg_size)
			return err_set(WD_ECORRUPT, "%s: %llu bytes, but a WAL segment is %u: the "
				       "file was cut, and records after " LSN_FMT " may be lost; "
				       "the log is left as it is", path, (unsigned long long)size,
				       seg_size, LSN_ARGS(end));
	}
	return 0;
}

/* P1 steps 3-7, an existing database: recovery after a crash (P2), or
 * straight into production after a clean shutdown. */
static int open_existing(wd_db *db)
{
	wd_lsn from, end;
	char detail[512];
	unsigned why = 0;
	bool crashed;
	int rc;
	if ((rc = read_control(db)) != 0)
		return rc;
	wal_opts_from(&db->wo, &db->opts, db->cd.db_id);
	from = db->cd.redo_lsn ? db->cd.redo_lsn : WAL_SEG_HEADER_SIZE;
	crashed = db->cd.state != CONTROL_SHUTDOWN;
	/* after a crash, what the dead process left in the OS cache is made
	 * durable before anything is built on it (recovery/README.md P3 step 0) */
	if (crashed && (rc = recovery_sync_files(db->dir)) != 0)
		return rc;
	if ((rc = wal_find_end_why(db->dir, &db->wo, from, &end, &why, detail,
				   sizeof detail)) != 0)
		return rc;
	/* the control file names a checkpoint only once its record is
	 * durable: a log that ends before it is damaged, not cut. Refused
	 * before wal_open, which would zero the log from that end on and
	 * remove the later segments - the checkpoint and every commit after
	 * it (recovery/README.md P3 step 0). The same for a log that ends
	 * before the redo point (a clean shutdown's is the log's end) */
	if ((db->cd.checkpoint_lsn >= from && end <= db->cd.checkpoint_lsn) || end < from)
		return err_set(WD_ECORRUPT, "%s: the log ends at " LSN_FMT " (%s: %s), before "
			       "the %s at " LSN_FMT " the control file names; the log is left "
			       "as it is", db->dir, LSN_ARGS(end),
			       wal_end_reason_name((wal_end_reason)why), detail,
			       end < from ? "redo point" : "checkpoint record",
			       LSN_ARGS(end < from ? from : db->cd.checkpoint_lsn));
	/* nor does a cut segment file: segments only exist whole
	 * (wal/README.md R-I5) */
	if ((rc = log_not_cut(db, end)) != 0)
		return rc;
	/* a crash may leave a hole in the tail, never in durable records: if
	 * a record past the end proves the bytes there were durable, the log
	 * is damaged (wal/README.md R-I4) and left untouched for inspection */
	if (crashed && (rc = wal_check_end(db->dir, &db->wo, end)) != 0)
		return rc;
	if ((rc = wal_open(db->dir, &db->wo, end, &db->w)) != 0)
		return rc;
	wal_set_active_fn(db->w, active_others, db);
	if ((rc = pool_start(db)) != 0 || (rc = checkpointer_make(db)) != 0)
		return rc;
	/* The changes of this open (the repairs and undo of a recovery) are
	 * the first since the redo point `from`, where the next replay starts
	 * if this open crashes too (the control file keeps redo_lsn until
	 * recovery's end checkpoint): each page's first change after it must
	 * carry a full-page image, or a torn write of it could not be
	 * repaired (I7). */
	wal_set_redo_point_at(db->w, from);
	if (crashed)
		rc = db_recover(db, from, end, why); /* steps 4-5 and 7: P2 */
	else if ((rc = db_undo_start(db)) == 0)
		rc = catalog_open(db, false);
	if (rc != 0)
		return rc;
	remove_leftovers(db);
	return db->recovered ? 0 : start_production(db);
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

/* ckpt_ops.panic: a checkpoint's fdatasync of a relation failed. */
static int ckpt_panic(void *arg, int cause)
{
	return db_panic_why(arg, cause, "a checkpoint's fdatasync of a relation failed");
}

/* The checkpointer (recovery README P2), its thread not started yet:
 * recovery's end checkpoint runs on it (P2), the thread starts once the
 * database is in production (P1 step 8). */
static int checkpointer_make(wd_db *db)
{
	ckpt_ctx c = {.pool = db->pool, .w = db->w, .arg = db,
		      .ops = {ckpt_att, ckpt_next_xid, ckpt_control, ckpt_panic},
		      .timeout_s = db->opts.checkpoint_timeout_s,
		      .max_wal_bytes = db->opts.max_wal_size_bytes,
		      .completion_target = db->opts.checkpoint_completion_target};
	return checkpointer_create(&c, &db->ckpt);
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
	lockmgr_set_escalation(db->locks, db->opts.lock_escalation_rows);
	/* step 1: the directory, durable in its parent */
	if (!storage_exists(dir) && (rc = create_dir(dir)) != 0)
		goto fail;
	/* step 2: one owner */
	if ((rc = db_lock_acquire(db)) != 0 || (rc = walden_register_rmgrs()) != 0)
		goto fail;
	snprintf(ctl, sizeof ctl, "%s/%s", dir, CONTROL_FILE);
	rc = storage_exists(ctl) ? open_existing(db) : create_checked(db, ctl);
	if (rc == 0) /* step 8 */
		rc = checkpointer_start(db->ckpt);
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
	if ((r = db_close_tables(db)) != 0 && rc == 0)
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
 * Except a full disk before any of those (control.tmp could not be
 * created or written): the old control file is in force and nothing was
 * synced, so the call fails with WD_ENOSPC and the database goes on
 * (DESIGN.md section 6: usable again once space returns).
 */
int db_control_write(wd_db *db, const control_data *cd)
{
	bool untouched;
	int rc = control_write_at(db->dir, cd, &untouched);
	if (rc == WD_ENOSPC && untouched)
		return rc;
	return rc == 0 ? 0 : db_panic(db, rc);
}

/*
 * The first time: the control file gets CONTROL_F_NEEDS_REPAIR, durably,
 * so that the next recovering open repairs every table in full even after
 * a crash (README P3: the half change may belong to a transaction that
 * then commits, which no loser's undo head names). A failed control write
 * panics the database (db_control_write; also on a full disk, since the
 * mark is tried once). Returns code, wrapped.
 */
int db_needs_repair(wd_table *t, int code)
{
	wd_db *db = t->db;
	char why[512];
	int rc;
	snprintf(why, sizeof why, "%s", wd_last_error());
	if (!atomic_exchange(&db->needs_repair, true)) {
		control_data cd;
		TRACE(TR_TXN, "table %s: heap and index disagree; the next open repairs",
		      *t->name ? t->name : "(catalog)");
		pthread_mutex_lock(&db->ctl_mu);
		cd = db->cd;
		cd.flags |= CONTROL_F_NEEDS_REPAIR;
		rc = db_control_write(db, &cd);
		if (rc == 0)
			db->cd = cd;
		else if (rc == WD_ENOSPC)
			/* the mark must be durable before anything goes on, and
			 * it is set only once: with no room for it, panic (the
			 * next open recovers and repairs in full) */
			(void)db_panic(db, rc);
		pthread_mutex_unlock(&db->ctl_mu);
		err_set(code, "%s", why); /* the cause, not the control write's */
	}
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
