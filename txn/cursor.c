/*
 * cursor.c - ordered iteration over a table (README P8): a B+tree cursor
 * gives keys and TIDs in order, and each value is read from the heap into a
 * buffer the cursor owns and grows. Entry points: wd_cursor_open, _seek,
 * _next, _close.
 *
 * The B+tree cursor holds nothing between calls, so by the time a value is
 * read another thread may have moved or deleted the tuple, and the slot may
 * hold another key's tuple. The fast read (step 2) therefore compares the
 * key it finds with the one the index gave, under the heap page's share
 * latch, and takes the value only if they agree and the value is inline:
 * then it is that key's tuple as it stood at that moment (a key has one
 * tuple, or two while a moved update is between its insert and its delete,
 * and either is a value the key held during the call). Anything else - no
 * tuple, another key, a value on overflow pages (whose chain a concurrent
 * change could free once the page is unlatched) - takes the key's latch
 * and, if the TID is stale, asks the index again under it, which settles
 * it (step 3).
 *
 * The cursor keeps the heap page of its last row pinned (heap_hold), so a
 * run of keys whose tuples share a page (a table loaded in key order) pins
 * it once. The pin is dropped at the end of the scan, on an error, on a
 * seek and at close.
 */
#include <stdlib.h>
#include <string.h>

#include "txn/txn_internal.h"

struct wd_cursor {
	wd_txn *txn;       /* every call enters it (I11, I12) */
	wd_table *t;
	btree_cursor *bc;
	uint8_t *kbuf;     /* the key found in the heap */
	uint32_t kcap;
	uint8_t *vbuf;     /* the value returned */
	uint64_t vcap;
	heap_hold hold;    /* the heap page of the last row, pinned */
};

/* A cursor before the first key of t: a B+tree cursor and the buffers
 * the values are read into. */
int wd_cursor_open(wd_txn *txn, wd_table *t, wd_cursor **out)
{
	wd_cursor *c;
	int rc;
	if (!txn || !t || !out)
		return err_set(WD_EINVAL, "wd_cursor_open: txn, table and cursor are required");
	*out = NULL;
	if ((rc = txn_enter(txn, false)) != 0)
		return rc;
	/* a table of another database: WD_EINVAL; else txn holds t until it
	 * ends, so no drop frees it under the cursor (README I8) */
	rc = txn_use_table(txn, t);
	txn_leave(txn);
	if (rc != 0)
		return rc;
	if (!(c = calloc(1, sizeof *c)))
		return err_set(WD_ENOMEM, "table %s: out of memory", t->name);
	c->txn = txn;
	c->t = t;
	c->kcap = heap_max_key_len(t->h);
	c->vcap = 256;
	c->kbuf = malloc(c->kcap);
	c->vbuf = malloc(c->vcap);
	if (!c->kbuf || !c->vbuf)
		rc = err_set(WD_ENOMEM, "table %s: out of memory", t->name);
	if (rc == 0 && (rc = btree_cursor_open(t->bt, &c->bc)) == 0)
		rc = btree_cursor_seek(c->bc, NULL, 0, BT_FORWARD);
	if (rc != 0) {
		wd_cursor_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Repositions: the next wd_cursor_next returns the first key >= k (the
 * B+tree cursor only stores it). */
int wd_cursor_seek(wd_cursor *c, const void *k, size_t klen)
{
	int rc;
	if (!c || (!k && klen))
		return err_set(WD_EINVAL, "wd_cursor_seek: cursor and key are required");
	if ((rc = txn_enter(c->txn, false)) != 0)
		return rc;
	heap_hold_release(c->t->h, &c->hold);
	rc = btree_cursor_seek(c->bc, klen ? k : NULL, klen, BT_FORWARD);
	txn_leave(c->txn);
	return rc;
}

/*
 * Reads the tuple at tid into the cursor's buffers if it holds key (else
 * WD_NOTFOUND). trusted: tid came from the index under the key latch, so
 * anything but the key's tuple is damage. Caller holds the key latch.
 */
static int fetch_checked(wd_cursor *c, wd_tid tid, const void *key, size_t klen,
			 bool trusted, uint64_t *vlen)
{
	uint32_t kl;
	int rc = heap_fetch(c->t->h, tid_to_heap(tid), c->kbuf, c->kcap, &kl, c->vbuf,
			    c->vcap, vlen);
	bool same = rc == 0 && kl == klen && memcmp(c->kbuf, key, klen) == 0;
	if (!trusted && (rc == WD_NOTFOUND || rc == WD_ECORRUPT || (rc == 0 && !same)))
		return WD_NOTFOUND; /* a stale tid: ask the index */
	/* trusted (the index under the key latch): anything but the key's
	 * tuple is damage, and the next open must repair it (README P10) */
	if (rc == WD_NOTFOUND) {
		int lost = table_heap_block_lost(c->t, tid.blk);
		if (lost != 0)
			return lost;
	}
	if (rc == WD_NOTFOUND || (rc == 0 && !same))
		return db_needs_repair(c->t, err_set(WD_ECORRUPT,
			"table %s: the index entry of a key of %zu bytes points at block %u "
			"slot %u, which holds %s", c->t->name, klen, tid.blk, tid.slot,
			rc == 0 ? "another key" : "no tuple"));
	if (rc != 0 || *vlen <= c->vcap)
		return rc;
	/* the value did not fit: grow and read it again (stable: latched) */
	free(c->vbuf);
	c->vcap = *vlen;
	if (!(c->vbuf = malloc(c->vcap))) {
		c->vcap = 0;
		return err_set(WD_ENOMEM, "table %s: out of memory", c->t->name);
	}
	return heap_fetch(c->t->h, tid_to_heap(tid), NULL, 0, NULL, c->vbuf, c->vcap, vlen);
}

/* The value of key (whose index entry said tid) under its latch;
 * WD_NOTFOUND if the key went away meanwhile. */
static int fetch_value(wd_cursor *c, const void *key, size_t klen, wd_tid tid,
		       uint64_t *vlen)
{
	pthread_mutex_t *m = table_key_latch(c->t, key, klen);
	int rc;
	pthread_mutex_lock(m);
	rc = fetch_checked(c, tid, key, klen, false, vlen);
	if (rc == WD_NOTFOUND && (rc = btree_lookup(c->t->bt, key, klen, &tid)) == 0)
		rc = fetch_checked(c, tid, key, klen, true, vlen);
	pthread_mutex_unlock(m);
	return rc;
}

/*
 * P8 step 2: the value of key straight from its heap page (kept pinned in
 * c->hold), with no key latch, if the tuple at tid holds key and an inline
 * value that fits c->vbuf. Non-zero: take the latched path.
 */
static int fetch_fast(wd_cursor *c, const void *key, size_t klen, wd_tid tid,
		      uint64_t *vlen)
{
	int rc = heap_fetch_key(c->t->h, &c->hold, tid_to_heap(tid), key, (uint32_t)klen,
				c->vbuf, c->vcap, vlen);
	return rc == 0 && *vlen > c->vcap ? WD_ETOOBIG : rc;
}

/* P8 step 1a: the key's shared lock. No pin is held while waiting for it
 * (a waiter holding pins could starve a small pool, even the rollback of
 * the transaction it waits for): if it cannot be had at once, the held
 * heap page goes first. */
static int row_lock(wd_cursor *c, const void *key, size_t klen)
{
	int rc = txn_lock_wait(c->txn, c->t, key, klen, LOCK_S, LOCK_NOWAIT);
	if (rc != WD_EBUSY)
		return rc;
	heap_hold_release(c->t->h, &c->hold);
	return txn_lock(c->txn, c->t, key, klen, LOCK_S);
}

/* P8: the next key whose tuple still exists, and its value, under the
 * key's shared lock (held to the end of the transaction). */
int wd_cursor_next(wd_cursor *c, const void **k, size_t *klen, const void **v,
		   size_t *vlen)
{
	const void *key;
	size_t kl;
	uint64_t vl = 0;
	wd_tid tid;
	int rc;
	if (!c || !k || !klen || !v || !vlen)
		return err_set(WD_EINVAL, "wd_cursor_next: every argument is required");
	if ((rc = txn_enter(c->txn, false)) != 0)
		return rc;
	for (;;) {
		/* step 1 */
		if ((rc = btree_cursor_next(c->bc, &key, &kl, &tid)) != 0)
			break; /* WD_NOTFOUND: the end */
		/* step 1a: the row lock; a wait means the tid may be stale,
		 * which steps 2-3 notice */
		if ((rc = row_lock(c, key, kl)) != 0)
			break;
		/* step 2, else steps 3-4 */
		if (fetch_fast(c, key, kl, tid, &vl) == 0)
			break;
		rc = fetch_value(c, key, kl, tid, &vl);
		if (rc != WD_NOTFOUND)
			break;
		/* the key was deleted since the index gave it: go on */
	}
	txn_leave(c->txn);
	if (rc != 0) {
		heap_hold_release(c->t->h, &c->hold); /* the end, or an error */
		return rc;
	}
	*k = key;
	*klen = kl;
	*v = c->vbuf;
	*vlen = (size_t)vl;
	return 0;
}

/* Frees the cursor and its buffers. NULL is ignored. */
void wd_cursor_close(wd_cursor *c)
{
	if (!c)
		return;
	heap_hold_release(c->t->h, &c->hold);
	btree_cursor_close(c->bc);
	free(c->kbuf);
	free(c->vbuf);
	free(c);
}
