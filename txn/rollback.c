/*
 * rollback.c - taking changes back: the logical undo of one row change
 * (apply_step), a transaction's rollback to a point of its undo chain
 * (txn_rollback: wd_abort, savepoints, deadlock victims), savepoints
 * (wd_savepoint, wd_rollback_to), row locks with the victim's rollback
 * (txn_lock), and the rollback of losers after a crash
 * (db_rollback_losers). README P12-P16.
 *
 * Undo is logical: a record says what a key held before a change (nothing,
 * or a value), and the step puts that back through the same table_put /
 * table_del a forward change uses, which find the key wherever splits have
 * moved it. The transaction still holds the key's exclusive lock, so no
 * other transaction changed the key since. A step is idempotent (put the
 * old value, or delete the key if present), which is what makes a step cut
 * by a crash safe to run again: the CLR after it is what marks it done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/storage.h"
#include "storage/trace.h"
#include "txn/txn_internal.h"
#include "wal/rmgr.h"

/* What a step needs: the database, the transaction whose tables it may
 * use (NULL in recovery), and its id and last record. */
struct undo_step {
	wd_db *db;
	wd_txn *txn;
	wd_xid xid;
	wd_lsn *prev;
	/* recovery's trace: the step whose CLR is not traced yet */
	bool trace, pending;
	undo_ptr undone, undo_next;
};

void txn_key_shown(const void *key, size_t klen, char out[TXN_KEY_SHOWN])
{
	const uint8_t *k = key;
	size_t n = klen < 16 ? klen : 16, o = 0;
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, TXN_KEY_SHOWN - o,
				      k[i] >= 0x20 && k[i] < 0x7f ? "%c" : "\\x%02x", k[i]);
	snprintf(out + o, TXN_KEY_SHOWN - o, "%s", klen > n ? "..." : "");
}

/* Recovery's trace of the CLR the previous step ended with: undo_rollback
 * writes it after apply_step returns, so it is the transaction's newest
 * record when the next step starts (or the rollback ends). */
static void trace_clr(struct undo_step *s)
{
	if (!s->pending)
		return;
	s->pending = false;
	TRACE(TR_RECOVERY, "    CLR " LSN_FMT " for undo record %u:%u, undo-next %u:%u%s",
	      LSN_ARGS(*s->prev), (unsigned)UNDO_PTR_BLK(s->undone),
	      (unsigned)UNDO_PTR_OFF(s->undone), (unsigned)UNDO_PTR_BLK(s->undo_next),
	      (unsigned)UNDO_PTR_OFF(s->undo_next), s->undo_next ? "" : " (chain done)");
}

/* Recovery's trace of one undo step, before it is taken (rel's table t). */
static void trace_step(struct undo_step *s, const undo_rec *r, const wd_table *t)
{
	char key[TXN_KEY_SHOWN] = "";
	trace_clr(s);
	if (r->key)
		txn_key_shown(r->key, r->klen, key);
	TRACE(TR_RECOVERY, "  undo xid=%-6llu record %u:%-5u %-7s table %-12s key '%s'",
	      (unsigned long long)s->xid, (unsigned)UNDO_PTR_BLK(r->self),
	      (unsigned)UNDO_PTR_OFF(r->self), undo_kind_name(r->kind),
	      !t ? "(dropped)" : t->name[0] ? t->name : "(catalog)", key);
	s->pending = true;
	s->undone = r->self;
	s->undo_next = r->prev;
}

/* The open handle of the table whose heap is rel, or NULL (dropped since:
 * nothing to undo there); txn's own handles first (txn may be NULL). */
wd_table *table_by_rel(wd_db *db, wd_txn *txn, wd_relid rel)
{
	wd_table *t = NULL;
	if (rel == CATALOG_HEAP_REL)
		return db->catalog;
	pthread_mutex_lock(&db->mu);
	for (unsigned i = 0; txn && i < txn->ntabs && !t; i++)
		if (txn->tabs[i]->info.heap_rel == rel)
			t = txn->tabs[i];
	for (wd_table *c = db->tables; c && !t; c = c->next)
		if (c->info.heap_rel == rel)
			t = c;
	pthread_mutex_unlock(&db->mu);
	return t;
}

/* P12 step 3: reverses one row change, logically (see the file comment).
 * The changes it makes are ordinary heap and index records of the
 * transaction; undo_rollback writes the CLR once it returns. */
static int apply_step(void *arg, const undo_rec *r)
{
	struct undo_step *s = arg;
	wd_table *t = table_by_rel(s->db, s->txn, r->rel);
	int rc;
	if (s->trace)
		trace_step(s, r, t);
	if (!t) {
		TRACE(TR_TXN, "undo xid=%llu: relation %u is gone, record skipped",
		      (unsigned long long)s->xid, r->rel);
		return 0;
	}
	switch (r->kind) {
	case UNDO_ROW_INSERT:
		rc = table_del(t, s->xid, s->prev, r->key, r->klen, NULL);
		return rc == WD_NOTFOUND ? 0 : rc; /* done before a crash */
	case UNDO_ROW_UPDATE:
	case UNDO_ROW_DELETE:
		return table_put(t, s->xid, s->prev, r->key, r->klen, r->val, r->vlen, NULL);
	default:
		return err_set(WD_ECORRUPT, "undo record at block %u offset %u: unknown kind %u",
			       (unsigned)UNDO_PTR_BLK(r->self), (unsigned)UNDO_PTR_OFF(r->self),
			       r->kind);
	}
}

/* Forgets the savepoints from index i on. */
static void savepoints_drop_from(wd_txn *txn, unsigned i)
{
	while (txn->nsps > i)
		free(txn->sps[--txn->nsps].name);
}

/*
 * P12 for a live transaction. A step that fails with WD_ENOSPC (a full
 * disk: no dirty page can be written out to make room, no WAL written) is
 * run again once space returns, after pauses doubling from 1 ms to 100 ms:
 * a rollback may not give up midway, since a failed one panics the
 * database (I14) and DESIGN.md section 6 wants it usable again once space
 * returns. A step is idempotent and undo_rollback resumes at the record
 * not yet undone, so the retry is safe; it ends early only if the database
 * panics meanwhile. Like the log's stalled insert (wal/README.md I10), it
 * waits for as long as the disk stays full.
 */
int txn_rollback(wd_txn *txn, undo_ptr stop)
{
	struct undo_step s = {.db = txn->db, .txn = txn, .xid = txn->xid, .prev = &txn->prev};
	uint64_t steps = 0;
	long pause_ms = 1;
	int rc;
	if (txn->undo.head == stop)
		return 0;
	while ((rc = undo_rollback(txn->db->undo, &txn->undo, &txn->prev, stop, apply_step, &s,
				   &steps)) == WD_ENOSPC && db_check_usable(txn->db) == 0) {
		struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
		TRACE(TR_TXN, "rollback xid=%llu: no space, waiting %ld ms",
		      (unsigned long long)txn->xid, pause_ms);
		nanosleep(&ts, NULL);
		pause_ms = pause_ms < 100 ? pause_ms * 2 : 100;
	}
	TRACE(TR_TXN, "rollback xid=%llu: %llu steps, rc=%d", (unsigned long long)txn->xid,
	      (unsigned long long)steps, rc);
	/* the savepoints are the caller's business: stop 0 is also the point
	 * of a savepoint set before the first change, which stays */
	return rc;
}

/* ---- row locks and deadlock victims (P15) ---- */

/* The victim's part of P15: back to its beginning, its locks released. */
static int victim(wd_txn *txn)
{
	wd_db *db = txn->db;
	char why[512];
	int rc;
	snprintf(why, sizeof why, "%s", wd_last_error());
	/* the victim: back to its beginning, so the others can go on */
	txn_op_begin(txn); /* P17 */
	rc = txn_rollback(txn, 0);
	txn_op_end(txn, false);
	if (rc != 0)
		return db_panic_why(db, rc, "rolling back a deadlock victim failed");
	savepoints_drop_from(txn, 0); /* as if just begun */
	lock_release_all(db->locks, txn->lo);
	return err_set(WD_EDEADLOCK, "%s; transaction %llu was rolled back (changes undone, "
		       "locks released) and may retry its work or end", why,
		       (unsigned long long)txn->xid);
}

int txn_lock_wait(wd_txn *txn, wd_table *t, const void *k, size_t klen, int mode,
		  uint32_t timeout_ms)
{
	int rc = lock_row(txn->db->locks, txn->lo, t->info.heap_rel, k, (uint32_t)klen, mode,
			  timeout_ms);
	if (rc == WD_EDEADLOCK)
		return victim(txn);
	/* a panic while it waited may have freed the holder's locks with its
	 * changes still in place (P13): nothing read or written now counts */
	if (rc == 0)
		rc = db_check_usable(txn->db);
	return rc;
}

int txn_lock(wd_txn *txn, wd_table *t, const void *k, size_t klen, int mode)
{
	return txn_lock_wait(txn, t, k, klen, mode, txn->db->opts.lock_timeout_ms);
}

/* ---- savepoints (P14) ---- */

static int check_sp_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > SAVEPOINT_NAME_MAX)
		return err_set(WD_EINVAL, "savepoint name of %zu bytes: must be 1 to %u bytes",
			       n, SAVEPOINT_NAME_MAX);
	return 0;
}

/* The newest savepoint named name, or -1. */
static int sp_find(const wd_txn *txn, const char *name)
{
	for (unsigned i = txn->nsps; i-- > 0;)
		if (strcmp(txn->sps[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Sets savepoint name at the chain's head; an older one of the same name
 * is released (it goes, the ones after it stay). */
static int sp_set(wd_txn *txn, const char *name)
{
	int old = sp_find(txn, name);
	char *copy;
	if (old >= 0) {
		free(txn->sps[old].name);
		memmove(&txn->sps[old], &txn->sps[old + 1],
			(txn->nsps - (unsigned)old - 1) * sizeof *txn->sps);
		txn->nsps--;
	}
	if (txn->nsps == txn->spcap) {
		unsigned cap = txn->spcap ? 2 * txn->spcap : 4;
		savepoint *v = realloc(txn->sps, cap * sizeof *v);
		if (!v)
			return err_set(WD_ENOMEM, "savepoint %s: out of memory", name);
		txn->sps = v;
		txn->spcap = cap;
	}
	if (!(copy = strdup(name)))
		return err_set(WD_ENOMEM, "savepoint %s: out of memory", name);
	txn->sps[txn->nsps++] = (savepoint){.name = copy, .at = txn->undo.head};
	return 0;
}

int wd_savepoint(wd_txn *txn, const char *name)
{
	int rc = txn_enter(txn, false);
	if (rc != 0)
		return rc;
	if ((rc = check_sp_name(name)) == 0)
		rc = sp_set(txn, name);
	txn_leave(txn);
	return rc;
}

/*
 * Undoes every change made since savepoint name was set (a CLR per step);
 * the savepoint stays, the ones set after it go. Locks taken since stay
 * (strict 2PL keeps them to the end; holding them longer is safe). On a
 * failure midway the transaction allows only its end (txn->failed: its
 * chain's head may be past other savepoints now); wd_abort goes on from
 * the step that failed.
 */
int wd_rollback_to(wd_txn *txn, const char *name)
{
	int rc = txn_enter(txn, false), i;
	if (rc != 0)
		return rc;
	if ((rc = check_sp_name(name)) != 0)
		goto out;
	if ((i = sp_find(txn, name)) < 0) {
		rc = err_set(WD_NOTFOUND, "transaction %llu has no savepoint named %s",
			     (unsigned long long)txn->xid, name);
		goto out;
	}
	txn_op_begin(txn); /* P17 */
	rc = txn_rollback(txn, txn->sps[i].at);
	txn_op_end(txn, false);
	if (rc == 0)
		savepoints_drop_from(txn, (unsigned)i + 1);
	else
		txn->failed = true; /* its head is past some savepoints: end only */
out:
	txn_leave(txn);
	return rc;
}

/* ---- after a crash (P16) ---- */

/* One loser: its chain from the head recovery found, then XACT_ABORT. */
static int rollback_loser(wd_db *db, const undo_xact *x, uint64_t *steps)
{
	wd_lsn prev = x->last_lsn;
	struct undo_step s = {.db = db, .txn = NULL, .xid = x->xid, .prev = &prev,
			      .trace = trace_on(TR_RECOVERY)};
	undo_chain c;
	int rc;
	undo_chain_for_loser(&c, x);
	TRACE(TR_RECOVERY, "  loser xid=%llu: undo chain from %u:%u, last LSN " LSN_FMT,
	      (unsigned long long)x->xid, (unsigned)UNDO_PTR_BLK(x->head),
	      (unsigned)UNDO_PTR_OFF(x->head), LSN_ARGS(x->last_lsn));
	rc = undo_rollback(db->undo, &c, &prev, 0, apply_step, &s, steps);
	if (rc == 0)
		trace_clr(&s);
	if (rc == 0)
		rc = xact_log(db, XACT_ABORT, x->xid, &prev);
	if (rc == 0)
		TRACE(TR_RECOVERY, "  loser xid=%llu: XACT_ABORT at " LSN_FMT " (rolled back)",
		      (unsigned long long)x->xid, LSN_ARGS(prev));
	if (rc == 0) /* P16 step 2: the ABORT inserted, maybe not durable */
		storage_crash_point("txn-loser-after-abort");
	if (rc != 0)
		TRACE(TR_RECOVERY, "  loser xid=%llu: rollback stopped, rc=%d",
		      (unsigned long long)x->xid, rc);
	return rc;
}

/* Whether loser x is a table create or drop (P16 step 2): their
 * transactions change one catalog row and nothing else, and user
 * transactions never change the catalog (P4, P5). */
static int loser_is_ddl(wd_db *db, const undo_xact *x, bool *ddl)
{
	undo_rec r = {0};
	int rc = 0;
	*ddl = false;
	if (x->head != 0 && (rc = undo_read(db->undo, x->head, &r)) == 0)
		*ddl = r.rel == CATALOG_HEAP_REL;
	undo_rec_free(&r);
	return rc;
}

int db_rollback_losers(wd_db *db, const undo_xtab *xt, bool ddl, uint64_t *n,
		       uint64_t *steps)
{
	undo_xact *v = NULL;
	size_t nl = 0;
	bool is_ddl;
	int rc = undo_xtab_losers(xt, &v, &nl);
	for (size_t i = 0; rc == 0 && i < nl; i++) {
		if ((rc = loser_is_ddl(db, &v[i], &is_ddl)) != 0 || is_ddl != ddl)
			continue;
		rc = rollback_loser(db, &v[i], steps);
		(*n)++;
	}
	free(v);
	return rc;
}
