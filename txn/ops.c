/*
 * ops.c - one key's change or read, atomic across the heap and the index:
 * wd_put, wd_get, wd_del (README P6) and the table_* helpers the catalog
 * shares, with the key latches that keep two changes of one key apart (I4).
 *
 * A key latch is a physical latch, not a transaction lock: it is held for
 * one call, so two transactions changing one key are serialised call by
 * call but not isolated (row locks come with the transactions module).
 */
#include <stdint.h>
#include <string.h>

#include "storage/storage.h"
#include "storage/trace.h"
#include "txn/txn_internal.h"

/* FNV-1a over the heap relation id and the key: picks the key latch. */
pthread_mutex_t *table_key_latch(wd_table *t, const void *k, size_t klen)
{
	const uint8_t *p = k;
	uint64_t h = 0xcbf29ce484222325ull ^ t->info.heap_rel;
	for (size_t i = 0; i < klen; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	h ^= h >> 29;
	return &t->db->stripes[h & (TXN_STRIPES - 1)];
}

/* An existing key: the heap tuple is replaced, and if it moved the index
 * follows it (step 3). */
static int put_update(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
		      size_t klen, wd_tid tid, const btree_pos *pos, const void *v,
		      size_t vlen)
{
	heap_tid nt;
	wd_lsn lsn;
	int rc = heap_update(t->h, xid, prev, tid_to_heap(tid), v, vlen, &nt);
	if (rc != 0 || (nt.blk == tid.blk && nt.slot == tid.slot))
		return rc;
	rc = btree_update_tid_at(t->bt, pos, xid, *prev, k, klen, tid_from_heap(nt), &lsn);
	if (rc == 0)
		*prev = lsn;
	return rc;
}

/* A new key: heap tuple first, then its index entry (step 4), at the
 * position the lookup found. If the index refuses, the tuple is deleted
 * again so nothing unindexed stays. */
static int put_insert(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k,
		      size_t klen, const btree_pos *pos, const void *v, size_t vlen)
{
	heap_tid nt;
	wd_lsn lsn;
	int rc = heap_insert(t->h, xid, prev, k, (uint32_t)klen, v, vlen, &nt);
	if (rc != 0)
		return rc;
	storage_crash_point("txn-put-before-index");
	rc = btree_insert_at(t->bt, pos, xid, *prev, k, klen, tid_from_heap(nt), &lsn);
	if (rc == 0)
		*prev = lsn;
	else if (heap_delete(t->h, xid, prev, nt) != 0)
		rc = err_wrap(rc, "table %s: a tuple left unindexed (its delete failed too)",
			      t->name);
	return rc;
}

/*
 * P6 put: under the key latch, look the key up and update or insert. The
 * lookup's position lets the index change of step 3 or 4 go straight to the
 * leaf (btree README P7): one descent per put unless the leaf changed in
 * between. The key latch keeps the answer (present or not) true until the
 * change; the position is only a hint.
 */
int table_put(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k, size_t klen,
	      const void *v, size_t vlen)
{
	pthread_mutex_t *m = table_key_latch(t, k, klen);
	btree_pos pos;
	wd_tid tid;
	int rc;
	pthread_mutex_lock(m); /* step 1 */
	rc = btree_lookup_pos(t->bt, k, klen, &tid, &pos); /* step 2 */
	if (rc == 0)
		rc = put_update(t, xid, prev, k, klen, tid, &pos, v, vlen);
	else if (rc == WD_NOTFOUND)
		rc = put_insert(t, xid, prev, k, klen, &pos, v, vlen);
	pthread_mutex_unlock(m); /* step 5 */
	return rc;
}

/* P6 get: under the key latch the index entry and its tuple agree. */
int table_get(wd_table *t, const void *k, size_t klen, void *buf, size_t cap,
	      size_t *vlen)
{
	pthread_mutex_t *m = table_key_latch(t, k, klen);
	uint64_t len = 0;
	wd_tid tid;
	int rc;
	pthread_mutex_lock(m);
	rc = btree_lookup(t->bt, k, klen, &tid);
	if (rc == 0) {
		rc = heap_fetch(t->h, tid_to_heap(tid), NULL, 0, NULL, buf, cap, &len);
		if (rc == WD_NOTFOUND) /* the latch rules out a race: damage */
			rc = err_set(WD_ECORRUPT, "table %s: the index points at "
				     "block %u slot %u, which holds no tuple",
				     t->name, tid.blk, tid.slot);
	}
	pthread_mutex_unlock(m);
	*vlen = (size_t)len;
	return rc;
}

/* P6 del: the index entry goes first, then the tuple it pointed at. */
int table_del(wd_table *t, wd_xid xid, wd_lsn *prev, const void *k, size_t klen)
{
	pthread_mutex_t *m = table_key_latch(t, k, klen);
	wd_tid old;
	wd_lsn lsn;
	int rc;
	pthread_mutex_lock(m);
	rc = btree_delete(t->bt, xid, *prev, k, klen, &old, &lsn);
	if (rc == 0) {
		*prev = lsn;
		storage_crash_point("txn-del-before-heap");
		rc = heap_delete(t->h, xid, prev, tid_to_heap(old));
	}
	pthread_mutex_unlock(m);
	return rc;
}

/* Checks the transaction, the database and the key of a call on t. */
static int check_call(wd_txn *txn, wd_table *t, const void *k, size_t klen)
{
	size_t max;
	int rc;
	if (!txn || !t || (!k && klen))
		return err_set(WD_EINVAL, "txn, table and key are required");
	if ((rc = db_check_usable(txn->db)) != 0)
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

int wd_put(wd_txn *txn, wd_table *t, const void *k, size_t klen, const void *v,
	   size_t vlen)
{
	int rc = check_call(txn, t, k, klen);
	if (rc != 0)
		return rc;
	if (!v && vlen)
		return err_set(WD_EINVAL, "table %s: value is NULL", t->name);
	if (vlen > txn->db->opts.max_value_bytes)
		return err_set(WD_ETOOBIG,
			       "table %s: value of %zu bytes exceeds the maximum value "
			       "size of %llu bytes (max_value_bytes)", t->name, vlen,
			       (unsigned long long)txn->db->opts.max_value_bytes);
	rc = table_put(t, txn->xid, &txn->prev, k, klen, v, vlen);
	return rc ? err_wrap(rc, "table %s: put", t->name) : 0;
}

int wd_get(wd_txn *txn, wd_table *t, const void *k, size_t klen, void *buf,
	   size_t cap, size_t *vlen)
{
	size_t len = 0;
	int rc = check_call(txn, t, k, klen);
	if (rc == 0 && !vlen)
		rc = err_set(WD_EINVAL, "wd_get: vlen is required");
	if (rc == 0 && !buf && cap)
		rc = err_set(WD_EINVAL, "wd_get: buf is NULL but cap is %zu", cap);
	if (rc == 0)
		rc = table_get(t, k, klen, buf, cap, &len);
	if (vlen)
		*vlen = rc == 0 ? len : 0;
	if (rc == WD_NOTFOUND)
		return err_set(WD_NOTFOUND, "table %s: key not found", t->name);
	return rc ? err_wrap(rc, "table %s: get", t->name) : 0;
}

int wd_del(wd_txn *txn, wd_table *t, const void *k, size_t klen)
{
	int rc = check_call(txn, t, k, klen);
	if (rc == 0)
		rc = table_del(t, txn->xid, &txn->prev, k, klen);
	if (rc == WD_NOTFOUND)
		return err_set(WD_NOTFOUND, "table %s: key not found", t->name);
	return rc ? err_wrap(rc, "table %s: del", t->name) : 0;
}
