/*
 * xact.c - the life of a transaction: ids (README I3), wd_begin[_flags],
 * wd_commit (the commit point: README P7), wd_abort (P13), the state
 * checks every call makes (txn_enter: I11, I12), the quarantine of ended
 * handles, wd_txn_set_synchronous, and the table references a transaction
 * holds (README I8: txn_use_table).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "storage/storage.h"
#include "storage/trace.h"
#include "txn/txn_internal.h"
#include "wal/record.h"
#include "wal/rmgr.h"

/*
 * Hands out the next transaction id. The control file's next_xid is kept
 * a batch ahead of every id handed out, so after a crash the next run
 * starts past all of them (I3); one control-file write per batch.
 */
static int xid_alloc(wd_db *db, wd_xid *xid)
{
	control_data cd;
	int rc = 0;
	pthread_mutex_lock(&db->ctl_mu);
	if (db->next_xid >= db->cd.next_xid) {
		cd = db->cd;
		cd.next_xid = db->next_xid + TXN_XID_BATCH;
		if ((rc = db_control_write(db, &cd)) == 0) /* panics on failure */
			db->cd = cd;
	}
	if (rc == 0)
		*xid = db->next_xid++;
	pthread_mutex_unlock(&db->ctl_mu);
	return rc;
}

/* The parts of a new handle besides its id: lock owner, undo chain. */
static int txn_alloc(wd_db *db, unsigned flags, wd_txn **out)
{
	wd_txn *txn = calloc(1, sizeof *txn);
	int rc;
	if (!txn)
		return err_set(WD_ENOMEM, "wd_begin: out of memory");
	txn->magic = TXN_MAGIC;
	txn->state = TXN_ACTIVE;
	txn->db = db;
	txn->rdonly = (flags & WD_TXN_RDONLY) != 0;
	txn->sync = db->opts.synchronous_commit != 0;
	if ((rc = xid_alloc(db, &txn->xid)) == 0)
		rc = lock_owner_create(db->locks, txn->xid, &txn->lo);
	if (rc != 0) {
		free(txn);
		return rc;
	}
	undo_chain_init(&txn->undo, txn->xid);
	txn->ru = (row_undo){.log = db->undo, .chain = &txn->undo};
	*out = txn;
	return 0;
}

/* Starts a transaction: a fresh id (I3); counted as open until it ends,
 * so wd_close can refuse and commit_siblings can count it. */
int wd_begin_flags(wd_db *db, unsigned flags, wd_txn **out)
{
	wd_txn *txn = NULL;
	int rc;
	if (!db || !out)
		return err_set(WD_EINVAL, "wd_begin: db and txn are required");
	*out = NULL;
	if (flags & ~WD_TXN_RDONLY)
		return err_set(WD_EINVAL, "wd_begin_flags: unknown flags 0x%x", flags);
	if ((rc = db_check_usable(db)) != 0 || (rc = txn_alloc(db, flags, &txn)) != 0)
		return rc;
	pthread_mutex_lock(&db->mu);
	db->ntxn++;
	/* registered for the checkpoint (P17) */
	txn->act_next = db->active;
	if (db->active)
		db->active->act_prev = txn;
	db->active = txn;
	pthread_mutex_unlock(&db->mu);
	*out = txn;
	return 0;
}

int wd_begin(wd_db *db, wd_txn **out)
{
	return wd_begin_flags(db, 0, out);
}

int txn_begin_internal(wd_db *db, wd_txn **out)
{
	int rc = wd_begin_flags(db, 0, out);
	if (rc == 0)
		(*out)->sync = true;
	return rc;
}

/* Frees a handle's memory (quarantine eviction, wd_close). */
static void txn_free(wd_txn *txn)
{
	txn->magic = 0;
	free(txn);
}

/* Puts an ended txn at the tail of the quarantine, freeing the oldest
 * beyond TXN_QUARANTINE (I11). Caller holds db->mu. */
static void quarantine_locked(wd_db *db, wd_txn *txn)
{
	txn->next_ended = NULL;
	if (db->ended_tail)
		db->ended_tail->next_ended = txn;
	else
		db->ended_head = txn;
	db->ended_tail = txn;
	if (++db->nended > TXN_QUARANTINE) {
		wd_txn *old = db->ended_head;
		db->ended_head = old->next_ended;
		db->nended--;
		txn_free(old);
	}
}

void txn_quarantine_free(wd_db *db)
{
	while (db->ended_head) {
		wd_txn *t = db->ended_head;
		db->ended_head = t->next_ended;
		txn_free(t);
	}
	db->ended_tail = NULL;
	db->nended = 0;
}

/*
 * Ends txn (state: TXN_COMMITTED or TXN_ABORTED): its locks go (strict
 * 2PL: only now), its undo pages go back for reuse (after its COMMIT or
 * ABORT record is in the log: undo README I5) unless it ends unfinished on
 * a panicked database (done = false: the next open rolls it back through
 * those pages), its table references (I8) and memory; the handle itself
 * stays readable in the quarantine (I11).
 */
static void txn_end(wd_txn *txn, int state, bool done)
{
	wd_db *db = txn->db;
	lock_owner_destroy(db->locks, txn->lo);
	txn->lo = NULL;
	if (done)
		undo_chain_release(db->undo, &txn->undo);
	else
		undo_chain_forget(&txn->undo);
	for (unsigned i = 0; i < txn->nsps; i++)
		free(txn->sps[i].name);
	free(txn->sps);
	free(txn->ru.buf);
	pthread_mutex_lock(&db->mu);
	for (unsigned i = 0; i < txn->ntabs; i++)
		txn->tabs[i]->refs--;
	db->ntxn--;
	if (txn->act_prev)
		txn->act_prev->act_next = txn->act_next;
	else
		db->active = txn->act_next;
	if (txn->act_next)
		txn->act_next->act_prev = txn->act_prev;
	txn->act_prev = txn->act_next = NULL;
	free(txn->tabs);
	txn->sps = NULL;
	txn->ru.buf = NULL;
	txn->tabs = NULL;
	txn->last = NULL;
	txn->nsps = txn->ntabs = 0;
	txn->state = state;
	quarantine_locked(db, txn);
	atomic_store_explicit(&txn->busy, 0, memory_order_release);
	pthread_mutex_unlock(&db->mu);
}

/* ---- what a checkpoint sees of a transaction (README I15, P17) ---- */

/* P17 step 1: op_seq turns odd before the operation writes any record
 * (seq_cst: a checkpoint that set its redo point after one of them reads
 * the odd value or a later one). */
void txn_op_begin(wd_txn *txn)
{
	atomic_fetch_add(&txn->op_seq, 1);
}

/* P17 step 1, the end: the copies first, then op_seq even, so a
 * checkpoint that sees op_seq move on sees the copies of this operation. */
void txn_op_end(wd_txn *txn, bool ended)
{
	atomic_store(&txn->pub_prev, txn->prev);
	atomic_store(&txn->pub_head, txn->undo.head);
	if (ended)
		atomic_store(&txn->pub_done, true);
	atomic_fetch_add(&txn->op_seq, 1);
}

/* ---- the state of a handle (README I11, I12) ---- */

/* The handle checks of txn_enter without the database's: wd_commit and
 * wd_abort end a transaction even on a panicked database. */
static int txn_claim(wd_txn *txn)
{
	int idle = 0;
	if (!txn)
		return err_set(WD_EINVAL, "the transaction handle is NULL");
	if (txn->magic != TXN_MAGIC)
		return err_set(WD_EINVAL, "not a transaction handle");
	if (!atomic_compare_exchange_strong(&txn->busy, &idle, 1))
		return err_set(WD_EBUSY, "transaction %llu is in a call on another thread; "
			       "a transaction is used by one thread at a time",
			       (unsigned long long)txn->xid);
	if (txn->state != TXN_ACTIVE) {
		txn_leave(txn);
		return err_set(WD_ESTATE, "transaction %llu has already %s; begin a new one",
			       (unsigned long long)txn->xid,
			       txn->state == TXN_COMMITTED ? "committed" : "been aborted");
	}
	return 0;
}

/* A transaction whose rollback to a savepoint failed midway (P14) allows
 * only its end: its chain no longer matches its savepoints. */
static int check_not_failed(wd_txn *txn)
{
	if (!txn->failed)
		return 0;
	return err_set(WD_ESTATE, "transaction %llu: a rollback to a savepoint failed "
		       "midway; only wd_abort is allowed (wd_commit rolls it back)",
		       (unsigned long long)txn->xid);
}

int txn_enter(wd_txn *txn, bool write)
{
	int rc = txn_claim(txn);
	if (rc != 0)
		return rc;
	if ((rc = check_not_failed(txn)) != 0)
		;
	else if (write && txn->rdonly)
		rc = err_set(WD_EACCES, "transaction %llu is read-only",
			     (unsigned long long)txn->xid);
	else
		rc = db_check_usable(txn->db);
	if (rc != 0)
		txn_leave(txn);
	return rc;
}

void txn_leave(wd_txn *txn)
{
	atomic_store_explicit(&txn->busy, 0, memory_order_release);
}

/* ---- table references (README I8) ---- */

bool txn_holds_table(const wd_txn *txn, const wd_table *t)
{
	for (unsigned i = 0; i < txn->ntabs; i++)
		if (txn->tabs[i] == t)
			return true;
	return false;
}

int txn_hold_table_locked(wd_txn *txn, wd_table *t)
{
	if (t->db != txn->db)
		return err_set(WD_EINVAL, "table %s belongs to database %s, the transaction to %s",
			       t->name, t->db->dir, txn->db->dir);
	if (t == txn->last || t == txn->db->catalog || txn_holds_table(txn, t)) {
		txn->last = t;
		return 0;
	}
	if (txn->ntabs == txn->cap) {
		unsigned cap = txn->cap ? 2 * txn->cap : 4;
		wd_table **v = realloc(txn->tabs, cap * sizeof *v);
		if (!v)
			return err_set(WD_ENOMEM, "table %s: out of memory", t->name);
		txn->tabs = v;
		txn->cap = cap;
	}
	txn->tabs[txn->ntabs++] = t;
	t->refs++;
	txn->last = t;
	return 0;
}

int txn_use_table(wd_txn *txn, wd_table *t)
{
	int rc;
	if (t == txn->last)
		return 0; /* the common case: checked and held already */
	if (t->db != txn->db) /* t->db is constant: no lock needed */
		return err_set(WD_EINVAL, "table %s belongs to database %s, the transaction to %s",
			       t->name, t->db->dir, txn->db->dir);
	pthread_mutex_lock(&txn->db->mu);
	rc = txn_hold_table_locked(txn, t);
	pthread_mutex_unlock(&txn->db->mu);
	return rc;
}

void txn_forget_table_locked(wd_txn *txn, wd_table *t)
{
	for (unsigned i = 0; i < txn->ntabs; i++)
		if (txn->tabs[i] == t) {
			txn->tabs[i] = txn->tabs[--txn->ntabs];
			t->refs--;
			break;
		}
	if (txn->last == t)
		txn->last = NULL;
}

/* Per transaction synchronous_commit (walden.h). */
int wd_txn_set_synchronous(wd_txn *txn, int on)
{
	int rc = txn_enter(txn, false);
	if (rc != 0)
		return rc;
	txn->sync = on != 0;
	txn_leave(txn);
	return 0;
}

/* An XACT record (type) of transaction xid, chained to its last record
 * *prev (I5), which then becomes it. Its main data is the durable horizon
 * (WAL_REC_HORIZON, wal/README.md R-I4): commits and aborts are frequent
 * and each proves the log durable below its horizon. */
int xact_log(wd_db *db, unsigned type, wd_xid xid, wd_lsn *prev)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	wd_lsn lsn;
	int rc;
	static const uint8_t horizon[WAL_HORIZON_SIZE]; /* wal_insert stamps it */
	walrec_begin(&b, WAL_RMGR_XACT, type, xid, *prev, 0, WAL_REC_HORIZON);
	if ((rc = walrec_set_main(&b, horizon, sizeof horizon)) == 0 &&
	    (rc = walrec_assemble(&b, &rec, &len)) == 0)
		rc = wal_insert(db->w, rec, len, &lsn);
	walrec_free(&b);
	if (rc == 0)
		*prev = lsn;
	return rc;
}

/*
 * P7 step 2 failed (no room for the log, say): no COMMIT record exists, so
 * the changes must not stay - released locks would show them, and a later
 * crash would find a loser whose undo pages were reused. The transaction
 * is rolled back (P13) and the call returns the insert's error; if the
 * rollback fails too, the database panics. A rollback that went through
 * and an ABORT record that did not (the log full again) is no panic, as
 * in wd_abort: the last CLR says nothing is left to undo, and the next
 * open writes the ABORT (recovery README P7).
 */
static int commit_failed(wd_txn *txn, int rc)
{
	char why[512];
	bool undone;
	int r;
	snprintf(why, sizeof why, "%s", wd_last_error());
	txn_op_begin(txn);
	undone = (r = txn_rollback(txn, 0)) == 0;
	if (undone && (r = txn_fault_point("txn-abort-record")) == 0)
		r = xact_log(txn->db, XACT_ABORT, txn->xid, &txn->prev);
	txn_op_end(txn, undone && r == 0);
	if (!undone)
		(void)db_panic_why(txn->db, r, "rolling back a transaction whose commit failed");
	txn_end(txn, TXN_ABORTED, undone);
	return err_set(rc, "%s; transaction rolled back", why);
}

/*
 * P7. A transaction that changed nothing writes nothing. Otherwise its
 * commit record goes into the log and, with synchronous_commit, the call
 * returns once the log is durable past it (group commit in wal_commit).
 * Locks go only after that (strict 2PL), so nobody reads its changes
 * before they are as durable as the commit promises. wait_space: a flush
 * failing with WD_ENOSPC after the record went in (the transaction is
 * committed, not yet durable) is tried again once space returns, after
 * pauses doubling from 1 ms to 100 ms, until it succeeds or the log
 * panics - for the catalog's own transactions, which must be durable
 * when they return (txn_commit_durable).
 */
static int commit_txn(wd_txn *txn, bool wait_space)
{
	wd_lsn lsn;
	int rc = txn_claim(txn);
	if (rc != 0)
		return rc;
	if ((rc = db_check_usable(txn->db)) != 0) {
		txn_end(txn, TXN_ABORTED, false); /* the next open rolls it back */
		return rc;
	}
	if (txn->failed)
		return commit_failed(txn, check_not_failed(txn));
	if (txn->prev != 0) {
		txn_op_begin(txn);
		if ((rc = txn_fault_point("txn-commit-record")) == 0)
			rc = xact_log(txn->db, XACT_COMMIT, txn->xid, &txn->prev);
		txn_op_end(txn, rc == 0);
		if (rc != 0)
			return commit_failed(txn, rc);
		lsn = txn->prev;
		storage_crash_point("txn-commit-after-wal-insert");
		/* step 3: THE COMMIT POINT - durable once this returns */
		rc = wal_commit(txn->db->w, lsn, txn->sync);
		for (long ms = 1; rc == WD_ENOSPC && wait_space; ms = ms < 100 ? 2 * ms : 100) {
			struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
			rc = wal_commit(txn->db->w, lsn, txn->sync);
		}
		TRACE(TR_TXN, "commit xid=%llu lsn=" LSN_FMT " rc=%d",
		      (unsigned long long)txn->xid, LSN_ARGS(lsn), rc);
	}
	txn_end(txn, TXN_COMMITTED, true);
	return rc;
}

int wd_commit(wd_txn *txn)
{
	return commit_txn(txn, false);
}

int txn_commit_durable(wd_txn *txn)
{
	return commit_txn(txn, true);
}

/*
 * P13: every change is undone through the undo chain (a CLR per step),
 * then XACT_ABORT closes the transaction's records. A rollback that fails
 * midway cannot be left half done with its locks released: the database
 * panics and the next open finishes it (recovery rolls back every
 * transaction without COMMIT or ABORT). Frees txn either way.
 */
int wd_abort(wd_txn *txn)
{
	bool undone;
	int rc = txn_claim(txn);
	if (rc != 0)
		return rc;
	if ((rc = db_check_usable(txn->db)) != 0) {
		txn_end(txn, TXN_ABORTED, false); /* the next open rolls it back */
		return rc;
	}
	txn_op_begin(txn);
	rc = txn_rollback(txn, 0);
	undone = rc == 0;
	if (!undone)
		rc = db_panic_why(txn->db, rc, "a rollback failed");
	else if (txn->prev != 0 && (rc = txn_fault_point("txn-abort-record")) == 0)
		rc = xact_log(txn->db, XACT_ABORT, txn->xid, &txn->prev);
	txn_op_end(txn, undone && rc == 0);
	TRACE(TR_TXN, "abort xid=%llu rc=%d", (unsigned long long)txn->xid, rc);
	/* undone: its last CLR says nothing is left, ABORT record or not */
	txn_end(txn, TXN_ABORTED, undone);
	return rc;
}
