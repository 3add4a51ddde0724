/*
 * xact.c - transactions as far as they go before the transactions module:
 * ids (README I3), wd_begin, wd_commit (the commit point: README P7),
 * wd_abort (not supported yet for a transaction that changed anything),
 * wd_txn_set_synchronous, and the table references a transaction holds
 * (README I8: txn_use_table).
 */
#include <stdlib.h>

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

/* Starts a transaction: a fresh id (I3); counted as open until it ends,
 * so wd_close can refuse and commit_siblings can count it. */
int wd_begin(wd_db *db, wd_txn **out)
{
	wd_txn *txn;
	int rc;
	if (!db || !out)
		return err_set(WD_EINVAL, "wd_begin: db and txn are required");
	*out = NULL;
	if ((rc = db_check_usable(db)) != 0)
		return rc;
	if (!(txn = calloc(1, sizeof *txn)))
		return err_set(WD_ENOMEM, "wd_begin: out of memory");
	txn->db = db;
	txn->sync = db->opts.synchronous_commit != 0;
	if ((rc = xid_alloc(db, &txn->xid)) != 0) {
		free(txn);
		return rc;
	}
	pthread_mutex_lock(&db->mu);
	db->ntxn++;
	pthread_mutex_unlock(&db->mu);
	*out = txn;
	return 0;
}

/* Ends txn: it no longer counts as open, its table references go (I8),
 * and its memory. */
static void txn_end(wd_txn *txn)
{
	wd_db *db = txn->db;
	pthread_mutex_lock(&db->mu);
	for (unsigned i = 0; i < txn->ntabs; i++)
		txn->tabs[i]->refs--;
	db->ntxn--;
	pthread_mutex_unlock(&db->mu);
	free(txn->tabs);
	free(txn);
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
	if (!txn)
		return err_set(WD_EINVAL, "wd_txn_set_synchronous: txn is required");
	txn->sync = on != 0;
	return 0;
}

/* P7 steps 1-2: the XACT_COMMIT record, chained to the transaction's last
 * record. */
static int log_commit(wd_txn *txn, wd_lsn *lsn)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	int rc;
	walrec_begin(&b, WAL_RMGR_XACT, XACT_COMMIT, txn->xid, txn->prev, 0, 0);
	if ((rc = walrec_assemble(&b, &rec, &len)) == 0)
		rc = wal_insert(txn->db->w, rec, len, lsn);
	walrec_free(&b);
	return rc;
}

/*
 * P7. A transaction that changed nothing writes nothing. Otherwise its
 * commit record goes into the log and, with synchronous_commit, the call
 * returns once the log is durable past it (group commit in wal_commit).
 */
int wd_commit(wd_txn *txn)
{
	wd_lsn lsn;
	int rc;
	if (!txn)
		return err_set(WD_EINVAL, "wd_commit: txn is required");
	rc = db_check_usable(txn->db);
	if (rc == 0 && txn->prev != 0) {
		rc = log_commit(txn, &lsn);
		if (rc == 0) {
			storage_crash_point("txn-commit-after-wal-insert");
			/* step 3: THE COMMIT POINT - durable once this returns */
			rc = wal_commit(txn->db->w, lsn, txn->sync);
			TRACE(TR_TXN, "commit xid=%llu lsn=" LSN_FMT " rc=%d",
			      (unsigned long long)txn->xid, LSN_ARGS(lsn), rc);
		}
	}
	txn_end(txn);
	return rc;
}

/*
 * Rollback needs the undo log, which does not exist yet: a transaction that
 * changed something gets WD_ENOTSUP and its changes stay; one that changed
 * nothing ends normally. Frees txn either way.
 */
int wd_abort(wd_txn *txn)
{
	int rc = 0;
	if (!txn)
		return err_set(WD_EINVAL, "wd_abort: txn is required");
	if (txn->prev != 0)
		rc = err_set(WD_ENOTSUP, "wd_abort: rollback is not supported yet; "
			     "the changes of transaction %llu stay",
			     (unsigned long long)txn->xid);
	txn_end(txn);
	return rc;
}
