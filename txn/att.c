/*
 * att.c - db_att_snapshot: the table of active transactions a fuzzy
 * checkpoint writes into its record (README I15, P17), read while
 * transactions run. Transactions change prev and undo.head without a lock;
 * they publish copies at the end of each operation (txn_op_end) and keep
 * an odd op_seq while one runs, as PostgreSQL's delayChkpt.
 */
#include <stdlib.h>
#include <time.h>

#include "txn/txn_internal.h"

/* A transaction inside an operation when the snapshot began. */
struct busy {
	const wd_txn *txn;
	wd_xid xid;
	uint64_t seq;
};

/* P17 step 2a: the registered transactions whose op_seq is odd now.
 * Caller holds db->mu. */
static int collect_busy(wd_db *db, struct busy **out, size_t *n)
{
	size_t k = 0, cap = 0;
	struct busy *v = NULL;
	for (const wd_txn *t = db->active; t; t = t->act_next)
		cap++;
	if (cap && !(v = malloc(cap * sizeof *v)))
		return err_set(WD_ENOMEM, "checkpoint: out of memory");
	for (wd_txn *t = db->active; t; t = t->act_next) {
		uint64_t s = atomic_load(&t->op_seq);
		if (s & 1)
			v[k++] = (struct busy){t, t->xid, s};
	}
	*out = v;
	*n = k;
	return 0;
}

/* Whether b is still registered and inside the same operation. The
 * handle is compared by address and xid while db->mu is held, so an ended
 * (unregistered) one is never read. Caller holds db->mu. */
static bool still_busy(wd_db *db, const struct busy *b)
{
	for (wd_txn *t = db->active; t; t = t->act_next)
		if (t == b->txn && t->xid == b->xid)
			return atomic_load(&t->op_seq) == b->seq;
	return false;
}

/* P17 step 2b: waits (without db->mu, which an operation may need) until
 * every busy transaction has moved on. */
static void wait_busy(wd_db *db, const struct busy *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		bool busy;
		pthread_mutex_lock(&db->mu);
		busy = still_busy(db, &v[i]);
		pthread_mutex_unlock(&db->mu);
		if (busy) /* an operation is short; a stalled one (disk full) */
			nanosleep(&(struct timespec){0, 50000}, NULL); /* not spun on */
		else
			i++;
	}
}

/* P17 step 3: the published values. Caller holds db->mu. */
static int read_published(wd_db *db, undo_xact **out, size_t *n)
{
	size_t k = 0, cap = 0;
	undo_xact *v = NULL;
	for (const wd_txn *t = db->active; t; t = t->act_next)
		cap++;
	if (cap && !(v = malloc(cap * sizeof *v)))
		return err_set(WD_ENOMEM, "checkpoint: out of memory");
	for (wd_txn *t = db->active; t; t = t->act_next) {
		wd_lsn prev = atomic_load(&t->pub_prev);
		/* nothing written, or its end is logged: not a loser */
		if (prev == 0 || atomic_load(&t->pub_done))
			continue;
		v[k++] = (undo_xact){.xid = t->xid, .last_lsn = prev,
				     .head = atomic_load(&t->pub_head)};
	}
	*out = v;
	*n = k;
	return 0;
}

int db_att_snapshot(wd_db *db, undo_xact **out, size_t *n)
{
	struct busy *b = NULL;
	size_t nb = 0;
	int rc;
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&db->mu);
	rc = collect_busy(db, &b, &nb);
	pthread_mutex_unlock(&db->mu);
	if (rc != 0)
		return rc;
	wait_busy(db, b, nb);
	free(b);
	pthread_mutex_lock(&db->mu);
	rc = read_published(db, out, n);
	pthread_mutex_unlock(&db->mu);
	return rc;
}
