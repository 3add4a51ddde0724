/*
 * ops.c - one key's change or read, atomic across the heap and the index:
 * wd_put, wd_get, wd_del (README P6) and the table_* helpers the catalog
 * shares, with the key latches that keep two changes of one key apart (I4).
 *
 * A key latch is a physical latch, not a transaction lock: it is held for
 * one call, so two transactions changing one key are serialised call by
 * call but not isolated (row locks come with the transactions module).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/page.h"
#include "storage/storage.h"
#include "storage/trace.h"
#include "txn/txn_internal.h"

/* A multiplicative hash of the heap relation id and the key, eight bytes a
 * step (every get, put and del computes it): picks the key latch. */
pthread_mutex_t *table_key_latch(wd_table *t, const void *k, size_t klen)
{
	const uint8_t *p = k;
	uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)t->info.heap_rel << 32 | klen), w;
	size_t i = 0;
	for (; i + 8 <= klen; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x9E3779B97F4A7C15ull;
		h ^= h >> 32;
	}
	if (i < klen) {
		w = 0;
		memcpy(&w, p + i, klen - i);
		h = (h ^ w) * 0x9E3779B97F4A7C15ull;
	}
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ull;
	h ^= h >> 32;
	return &t->db->stripes[h & (TXN_STRIPES - 1)];
}

/* ---- test-only fault points (README "Fault points") ---- */

#define FAULT_SLOTS 8

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int faults_armed; /* slots in use: 0 keeps the points free */
static struct {
	char name[48];
	uint64_t left; /* hits until it fires; 0: slot free */
} faults[FAULT_SLOTS];

void db_fault_arm(const char *name, uint64_t nth)
{
	pthread_mutex_lock(&fault_mu);
	if (!name) {
		memset(faults, 0, sizeof faults);
		atomic_store(&faults_armed, 0);
	}
	for (unsigned i = 0; name && nth && i < FAULT_SLOTS; i++)
		if (faults[i].left == 0) {
			snprintf(faults[i].name, sizeof faults[i].name, "%s", name);
			faults[i].left = nth;
			atomic_fetch_add(&faults_armed, 1);
			break;
		}
	pthread_mutex_unlock(&fault_mu);
}

int txn_fault_point(const char *name)
{
	int rc = 0;
	if (atomic_load_explicit(&faults_armed, memory_order_relaxed) == 0)
		return 0;
	pthread_mutex_lock(&fault_mu);
	for (unsigned i = 0; rc == 0 && i < FAULT_SLOTS; i++)
		if (faults[i].left && strcmp(faults[i].name, name) == 0 && --faults[i].left == 0) {
			atomic_fetch_sub(&faults_armed, 1);
			rc = err_set(WD_EIO, "fault point %s: injected failure", name);
		}
	pthread_mutex_unlock(&fault_mu);
	return rc;
}

/* ---- the key's tuple ---- */

static bool same_tid(wd_tid a, heap_tid b)
{
	return a.blk == b.blk && a.slot == b.slot;
}

/*
 * An index entry of t said a tuple lives at block blk and none does. If the
 * heap file ends before blk, or blk is all zero (never written) or neither
 * a heap nor an overflow page, the file is damaged (truncated, a page lost or overwritten):
 * WD_ECORRUPT naming the file and block, and no repair is asked for - it
 * would drop the index entries of every key the page held (README I1).
 * Else 0: the entry and the heap are out of step.
 */
int table_heap_block_lost(wd_table *t, wd_blkno blk)
{
	char path[4096];
	unsigned kind = PAGE_KIND_NONE;
	int rc = heap_block_kind(t->h, blk, &kind);
	if (rc != 0 && rc != WD_NOTFOUND)
		return rc;
	/* an overflow page: the emptied heap page was reused for a long
	 * value's chain, which an entry left out of step may still name */
	if (rc == 0 && (kind == PAGE_KIND_HEAP || kind == PAGE_KIND_OVERFLOW))
		return 0;
	if ((rc = db_rel_path(t->db, t->info.heap_rel, path, sizeof path)) != 0)
		return rc;
	return err_set(WD_ECORRUPT, "%s: block %u: %s, but the index of table %s has keys "
		       "whose tuples live there: the file was cut or the page lost",
		       path, blk, rc == WD_NOTFOUND ? "beyond the end of the file"
		       : kind == PAGE_KIND_NONE ? "never written (all zero)"
		       : "not a heap page", *t->name ? t->name : "(catalog)");
}

/*
 * Reads the tuple at tid, which the index gave for key k, and checks that
 * it is k's (I1): never trust an index entry without looking at the key,
 * or a slot freed and reused by another key would make a call read,
 * overwrite or delete that key's value. With vbuf, the value is copied as
 * heap_fetch does. WD_ECORRUPT naming table, key length and TID (and the
 * database then needs the repair of the next open) if the slot is empty or
 * holds another key; the heap's errors.
 */
static int fetch_own(wd_table *t, const void *k, size_t klen, wd_tid tid, void *vbuf,
		     uint64_t vcap, uint64_t *vlen)
{
	uint8_t kbuf[PAGE_SIZE_MAX / 8]; /* >= btree_max_key >= klen */
	uint32_t kl = 0;
	int rc = heap_fetch(t->h, tid_to_heap(tid), kbuf, sizeof kbuf, &kl, vbuf, vcap, vlen);
	if (rc == WD_NOTFOUND) {
		int lost = table_heap_block_lost(t, tid.blk);
		if (lost != 0)
			return lost;
		return db_needs_repair(t, err_set(WD_ECORRUPT,
			"table %s: the index entry of a key of %zu bytes points at block %u "
			"slot %u, which holds no tuple", *t->name ? t->name : "(catalog)",
			klen, tid.blk, tid.slot));
	}
	if (rc == 0 && (kl != klen || memcmp(kbuf, k, klen) != 0))
		return db_needs_repair(t, err_set(WD_ECORRUPT,
			"table %s: the index entry of a key of %zu bytes points at block %u "
			"slot %u, which holds another key (%u bytes)",
			*t->name ? t->name : "(catalog)", klen, tid.blk, tid.slot, kl));
	return rc;
}

/* *is: the tuple at tid exists and holds k. Errors: the heap's. */
static int tuple_is(wd_table *t, heap_tid tid, const void *k, size_t klen, bool *is)
{
	uint8_t kbuf[PAGE_SIZE_MAX / 8];
	uint32_t kl = 0;
	int rc = heap_fetch(t->h, tid, kbuf, sizeof kbuf, &kl, NULL, 0, NULL);
	*is = rc == 0 && kl == klen && memcmp(kbuf, k, klen) == 0;
	return rc == WD_NOTFOUND ? 0 : rc;
}

/*
 * The undo record of a change (P6 step 2a): what the key held before it, in
 * the transaction's undo chain (undo/), logged before any page of the
 * change is. kind UNDO_ROW_INSERT takes no value; the others take the
 * key's current value, read from the tuple at tid into ru's scratch buffer
 * (grown as needed: values go up to max_value_bytes). No-op without ru
 * (undo steps and repairs are not undone themselves).
 */
static int log_undo(wd_table *t, row_undo *ru, wd_lsn *prev, unsigned kind,
		    const void *k, size_t klen, wd_tid tid)
{
	uint64_t vlen = 0;
	undo_ptr at;
	int rc = 0;
	if (!ru)
		return 0;
	if (kind != UNDO_ROW_INSERT) {
		rc = fetch_own(t, k, klen, tid, ru->buf, ru->cap, &vlen);
		if (rc == 0 && vlen > ru->cap) {
			uint8_t *b = malloc(vlen);
			if (!b)
				return err_set(WD_ENOMEM, "table %s: out of memory for an "
					       "undo record of %llu bytes", t->name,
					       (unsigned long long)vlen);
			free(ru->buf);
			ru->buf = b;
			ru->cap = vlen;
			rc = fetch_own(t, k, klen, tid, ru->buf, ru->cap, &vlen);
		}
	}
	if (rc == 0)
		rc = undo_append(ru->log, ru->chain, prev, kind, t->info.heap_rel, k,
				 (uint32_t)klen, ru->buf, vlen, &at);
	return rc;
}

/* The failure of a step, kept while the compensation runs (its calls may
 * overwrite the detail) and given back after it. */
struct cause {
	int code;
	char msg[512];
};

static void cause_keep(struct cause *c, int code)
{
	c->code = code;
	snprintf(c->msg, sizeof c->msg, "%s", wd_last_error());
}

static int cause_return(const struct cause *c)
{
	return err_set(c->code, "%s", c->msg);
}

/* ---- P6 steps 3-4, and what a failure between them leaves ---- */

/*
 * heap_update failed (cause). It may have failed before changing anything,
 * after replacing the tuple in place (freeing the old value's chain), after
 * inserting the new version elsewhere but before deleting the old one, or
 * after both (freeing the old chain): the key then has two tuples, or its
 * index entry points at a freed slot. Settles it from what the slots hold:
 * a second version is deleted again (the old value stays); a moved tuple
 * gets the index entry (the new value stays). If that fails too, the next
 * open repairs (db_needs_repair).
 */
static int settle_update(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
			 size_t klen, wd_tid tid, heap_tid nt, struct cause *c)
{
	bool old_ok = false, new_ok = false, moved = nt.blk != WD_INVALID_BLKNO &&
						   !same_tid(tid, nt);
	wd_lsn lsn;
	int rc = tuple_is(t, tid_to_heap(tid), k, klen, &old_ok);
	if (rc == 0 && moved)
		rc = tuple_is(t, nt, k, klen, &new_ok);
	if (rc == 0 && old_ok && new_ok)
		rc = heap_delete(t->h, xid, prev, nt);
	else if (rc == 0 && !old_ok && new_ok &&
		 (rc = btree_update_tid(t->bt, xid, *prev, k, klen, tid_from_heap(nt), &lsn)) == 0)
		*prev = lsn;
	else if (rc == 0 && !old_ok && !new_ok)
		rc = WD_ECORRUPT; /* the key lost its tuple */
	return rc == 0 ? cause_return(c) : db_needs_repair(t, cause_return(c));
}

/* An existing key: the heap tuple is replaced, and if it moved the index
 * follows it (step 3). */
static int put_update(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
		      size_t klen, wd_tid tid, const btree_pos *pos, const void *v,
		      size_t vlen, row_undo *ru)
{
	heap_tid nt = {.blk = WD_INVALID_BLKNO};
	struct cause c;
	wd_lsn lsn;
	int rc = ru ? log_undo(t, ru, prev, UNDO_ROW_UPDATE, k, klen, tid)
		    : fetch_own(t, k, klen, tid, NULL, 0, NULL);
	if (rc != 0)
		return rc;
	if ((rc = heap_update(t->h, xid, prev, tid_to_heap(tid), v, vlen, &nt)) != 0) {
		cause_keep(&c, rc);
		return settle_update(t, xid, prev, k, klen, tid, nt, &c);
	}
	if (same_tid(tid, nt))
		return 0;
	if ((rc = txn_fault_point("txn-put-update-index")) == 0)
		rc = btree_update_tid_at(t->bt, pos, xid, *prev, k, klen, tid_from_heap(nt), &lsn);
	if (rc == 0) {
		*prev = lsn;
		return 0;
	}
	/* The old slot is free (another key's insert may already have
	 * taken it) and the new version has no entry: no step undoes the
	 * move. Until the next open points the entry at the new version,
	 * fetch_own keeps every call on k from trusting the entry. */
	return db_needs_repair(t, rc);
}

/* A new key: heap tuple first, then its index entry (step 4), at the
 * position the lookup found. If the index refuses, the tuple is deleted
 * again so nothing unindexed stays; if that fails too, the next open
 * deletes it. */
static int put_insert(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
		      size_t klen, const btree_pos *pos, const void *v, size_t vlen,
		      row_undo *ru)
{
	heap_tid nt;
	struct cause c;
	wd_lsn lsn;
	bool still = true;
	int rc = log_undo(t, ru, prev, UNDO_ROW_INSERT, k, klen, (wd_tid){0});
	if (rc == 0)
		rc = heap_insert(t->h, xid, prev, k, (uint32_t)klen, v, vlen, &nt);
	if (rc != 0)
		return rc;
	storage_crash_point("txn-put-before-index");
	if ((rc = txn_fault_point("txn-put-insert-index")) == 0)
		rc = btree_insert_at(t->bt, pos, xid, *prev, k, klen, tid_from_heap(nt), &lsn);
	if (rc == 0) {
		*prev = lsn;
		return 0;
	}
	cause_keep(&c, rc);
	if ((rc = txn_fault_point("txn-put-insert-undo")) == 0)
		rc = heap_delete(t->h, xid, prev, nt);
	/* a delete that failed after clearing the slot (freeing the chain)
	 * took the tuple away all the same */
	if (rc != 0 && tuple_is(t, nt, k, klen, &still) == 0 && !still)
		rc = 0;
	return rc == 0 ? cause_return(&c) : db_needs_repair(t, cause_return(&c));
}

/*
 * P6 put: under the key latch, look the key up and update or insert. The
 * lookup's position lets the index change of step 3 or 4 go straight to the
 * leaf (btree README P7): one descent per put unless the leaf changed in
 * between. The key latch keeps the answer (present or not) true until the
 * change; the position is only a hint.
 */
int table_put(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k, size_t klen,
	      const void *v, size_t vlen, row_undo *ru)
{
	pthread_mutex_t *m = table_key_latch(t, k, klen);
	btree_pos pos;
	wd_tid tid;
	int rc;
	pthread_mutex_lock(m); /* step 1 */
	rc = btree_lookup_pos(t->bt, k, klen, &tid, &pos); /* step 2 */
	if (rc == 0)
		rc = put_update(t, xid, prev, k, klen, tid, &pos, v, vlen, ru);
	else if (rc == WD_NOTFOUND)
		rc = put_insert(t, xid, prev, k, klen, &pos, v, vlen, ru);
	pthread_mutex_unlock(m); /* step 5 */
	return rc;
}

/* P6 get: under the key latch the index entry and its tuple agree; the
 * tuple's key is checked all the same (fetch_own). */
int table_get(wd_table *t, const void *k, size_t klen, void *buf, size_t cap,
	      size_t *vlen)
{
	pthread_mutex_t *m = table_key_latch(t, k, klen);
	uint64_t len = 0;
	wd_tid tid;
	int rc;
	pthread_mutex_lock(m);
	rc = btree_lookup(t->bt, k, klen, &tid);
	if (rc == 0)
		rc = fetch_own(t, k, klen, tid, buf, cap, &len);
	pthread_mutex_unlock(m);
	*vlen = (size_t)len;
	return rc;
}

/*
 * P6 step 1, a get without the key latch, for wd_get, which holds k's row
 * lock (S, X, or a table lock covering it: I13): no other transaction can
 * change, insert or delete k meanwhile, and this one makes one call at a
 * time (I12), so the index's answer stands - absent is final, and a TID is
 * k's tuple unless the table is damaged. heap_fetch_key compares the key
 * under the heap page's share latch and copies an inline value, as the
 * cursor's fast read does (P8 step 2). 1 for anything else (no tuple,
 * another key, a value on overflow pages, an error): the caller takes the
 * latched path, table_get, which settles and reports it.
 */
static int get_unlatched(wd_table *t, const void *k, size_t klen, void *buf, size_t cap,
			 uint64_t *len)
{
	heap_hold hold = {0};
	wd_tid tid;
	int rc = btree_lookup(t->bt, k, klen, &tid);
	if (rc == WD_NOTFOUND)
		return rc;
	if (rc == 0)
		rc = heap_fetch_key(t->h, &hold, tid_to_heap(tid), k, (uint32_t)klen, buf, cap,
				    len);
	heap_hold_release(t->h, &hold);
	return rc == 0 ? 0 : 1;
}

/*
 * heap_delete of k's tuple at old failed (c) after its index entry went.
 * If the slot still holds k's tuple, the entry is put back (the del is
 * taken back whole); if the tuple went before the failure, the del is done
 * (at worst its overflow chain leaked). Anything else: the next open
 * repairs.
 */
static int settle_del(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k, size_t klen,
		      wd_tid old, struct cause *c)
{
	bool still = false;
	wd_lsn lsn;
	int rc = tuple_is(t, tid_to_heap(old), k, klen, &still);
	if (rc == 0 && still && (rc = txn_fault_point("txn-del-undo")) == 0 &&
	    (rc = btree_insert(t->bt, xid, *prev, k, klen, old, &lsn)) == 0)
		*prev = lsn;
	return rc == 0 ? cause_return(c) : db_needs_repair(t, cause_return(c));
}

/*
 * P6 del: the index entry goes first, then the tuple it pointed at, once
 * that tuple is seen to hold the key (fetch_own; if not, the entry is put
 * back and the call fails with WD_ECORRUPT, changing nothing).
 */
int table_del(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k, size_t klen,
	      row_undo *ru)
{
	pthread_mutex_t *m = table_key_latch(t, k, klen);
	struct cause c;
	wd_tid old;
	wd_lsn lsn;
	int rc = 0;
	pthread_mutex_lock(m);
	/* step 2a: the undo record (the value the key held) before any change */
	if (ru && (rc = btree_lookup(t->bt, k, klen, &old)) == 0)
		rc = log_undo(t, ru, prev, UNDO_ROW_DELETE, k, klen, old);
	if (rc == 0)
		rc = btree_delete(t->bt, xid, *prev, k, klen, &old, &lsn);
	if (rc != 0)
		goto out;
	*prev = lsn;
	if ((rc = fetch_own(t, k, klen, old, NULL, 0, NULL)) != 0) {
		cause_keep(&c, rc);
		if (btree_insert(t->bt, xid, *prev, k, klen, old, &lsn) == 0)
			*prev = lsn;
		rc = cause_return(&c); /* fetch_own marked the repair */
		goto out;
	}
	storage_crash_point("txn-del-before-heap");
	if ((rc = txn_fault_point("txn-del-heap")) == 0)
		rc = heap_delete(t->h, xid, prev, tid_to_heap(old));
	if (rc != 0) {
		cause_keep(&c, rc);
		rc = settle_del(t, xid, prev, k, klen, old, &c);
	}
out:
	pthread_mutex_unlock(m);
	return rc;
}

/* Checks the table and the key of a call on t by txn (entered). */
static int check_call(wd_txn *txn, wd_table *t, const void *k, size_t klen)
{
	size_t max;
	int rc;
	if (!t || (!k && klen))
		return err_set(WD_EINVAL, "table and key are required");
	if ((rc = txn_use_table(txn, t)) != 0)
		return rc;
	if (klen == 0)
		return err_set(WD_EINVAL, "table %s: keys are 1 or more bytes", t->name);
	max = btree_max_key(t->bt);
	if (max > heap_max_key_len(t->h))
		max = heap_max_key_len(t->h);
	if (klen > max)
		return err_set(WD_ETOOBIG,
			       "table %s: key of %zu bytes exceeds the maximum key size "
			       "of %zu bytes (page_size/8)", t->name, klen, max);
	return 0;
}

/* The value checks of wd_put. */
static int check_value(wd_txn *txn, wd_table *t, const void *v, size_t vlen)
{
	if (!v && vlen)
		return err_set(WD_EINVAL, "table %s: value is NULL", t->name);
	if (vlen > txn->db->opts.max_value_bytes)
		return err_set(WD_ETOOBIG,
			       "table %s: value of %zu bytes exceeds the maximum value "
			       "size of %llu bytes (max_value_bytes)", t->name, vlen,
			       (unsigned long long)txn->db->opts.max_value_bytes);
	return 0;
}

/* P6 step 0: the key's exclusive lock, held to the end (LOCKS.md); then
 * the change, its undo record first. */
int wd_put(wd_txn *txn, wd_table *t, const void *k, size_t klen, const void *v,
	   size_t vlen)
{
	int rc = txn_enter(txn, true);
	if (rc != 0)
		return rc;
	if ((rc = check_call(txn, t, k, klen)) == 0 && (rc = check_value(txn, t, v, vlen)) == 0 &&
	    (rc = txn_lock(txn, t, k, klen, LOCK_X)) == 0) {
		txn_op_begin(txn); /* P17: after the lock wait, which may be long */
		rc = table_put(t, txn->xid, &txn->prev, k, klen, v, vlen, &txn->ru);
		txn_op_end(txn, false);
	}
	txn_leave(txn);
	return rc ? err_wrap(rc, "table %s: put", t ? t->name : "?") : 0;
}

/* P6 step 0 of a read: the key's shared lock, held to the end, so the
 * value read is committed and stays so until txn ends. */
int wd_get(wd_txn *txn, wd_table *t, const void *k, size_t klen, void *buf,
	   size_t cap, size_t *vlen)
{
	size_t len = 0;
	int rc = txn_enter(txn, false);
	if (rc == 0) {
		rc = check_call(txn, t, k, klen);
		if (rc == 0 && !vlen)
			rc = err_set(WD_EINVAL, "wd_get: vlen is required");
		if (rc == 0 && !buf && cap)
			rc = err_set(WD_EINVAL, "wd_get: buf is NULL but cap is %zu", cap);
		if (rc == 0 && (rc = txn_lock(txn, t, k, klen, LOCK_S)) == 0) {
			uint64_t l = 0;
			if ((rc = get_unlatched(t, k, klen, buf, cap, &l)) == 0)
				len = (size_t)l;
			else if (rc == 1)
				rc = table_get(t, k, klen, buf, cap, &len);
		}
		txn_leave(txn);
	}
	if (vlen)
		*vlen = rc == 0 ? len : 0;
	if (rc == WD_NOTFOUND)
		return err_set(WD_NOTFOUND, "table %s: key not found", t->name);
	return rc ? err_wrap(rc, "table %s: get", t ? t->name : "?") : 0;
}

int wd_del(wd_txn *txn, wd_table *t, const void *k, size_t klen)
{
	int rc = txn_enter(txn, true);
	if (rc != 0)
		return rc;
	if ((rc = check_call(txn, t, k, klen)) == 0 &&
	    (rc = txn_lock(txn, t, k, klen, LOCK_X)) == 0) {
		txn_op_begin(txn); /* P17 */
		rc = table_del(t, txn->xid, &txn->prev, k, klen, &txn->ru);
		txn_op_end(txn, false);
	}
	txn_leave(txn);
	if (rc == WD_NOTFOUND)
		return err_set(WD_NOTFOUND, "table %s: key not found", t->name);
	return rc ? err_wrap(rc, "table %s: del", t ? t->name : "?") : 0;
}
