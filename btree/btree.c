/*
 * btree.c - the tree handle (create, open, close), the structure lock, the
 * descent (one latch at a time), and the optimistic paths of lookup,
 * insert, delete and update_tid (README protocols P1, P3). Operations that
 * must change the tree's structure fall back to split.c and reclaim.c under
 * the exclusive structure lock.
 */
#include <stdlib.h>
#include <string.h>

#include "btree/bt_internal.h"
#include "wal/rmgr.h"

void bt_lock_shared(btree *t) { pthread_rwlock_rdlock(&t->smo); }

/* A kept pin (I12, I13) goes, with its share of the pool's budget. */
static void keep_release(btree *t, bm_buf *b)
{
	bufmgr_unpin(t->pool, b);
	bufmgr_keep_give(t->pool);
}

/* P8: the kept pin on the rightmost leaf goes. Under smo exclusive (no
 * thread is using it) or at close. */
static void rightmost_drop(btree *t)
{
	bm_buf *b = atomic_exchange_explicit(&t->rightmost, NULL, memory_order_relaxed);
	if (b)
		keep_release(t, b);
}

/* Exclusive: the structure may change, so the rightmost leaf may stop
 * being that (I13). */
void bt_lock_excl(btree *t)
{
	pthread_rwlock_wrlock(&t->smo);
	rightmost_drop(t);
}
void bt_unlock(btree *t) { pthread_rwlock_unlock(&t->smo); }

int bt_pin(btree *t, wd_blkno blk, int mode, bm_buf **buf)
{
	int rc = bufmgr_pin(t->pool, t->rel, blk, BM_READ, buf);
	if (rc == 0)
		bufmgr_latch(*buf, mode);
	return rc;
}

void bt_release(btree *t, bm_buf *buf)
{
	bufmgr_unlatch(buf);
	bufmgr_unpin(t->pool, buf);
}

int bt_pin_x(btree *t, wd_blkno blk, bm_buf **buf)
{
	return bufmgr_pin(t->pool, t->rel, blk, BM_READ, buf);
}

void bt_unpin(btree *t, bm_buf *buf)
{
	bufmgr_unpin(t->pool, buf);
}

int bt_key_ok(const btree *t, size_t klen)
{
	if (klen > t->max_key)
		return err_set(WD_ETOOBIG, "btree rel %u: key of %zu bytes exceeds the "
			       "limit of %u bytes (page size / 8)", t->rel, klen, t->max_key);
	return 0;
}

int bt_corrupt(btree *t, wd_blkno blk, const char *what)
{
	return err_set(WD_ECORRUPT, "btree rel %u: block %u: %s", t->rel, blk, what);
}

size_t btree_max_key(const btree *t) { return t->max_key; }

/* Allocates a handle with its writer-preferring structure lock. */
static int handle_new(bufmgr *pool, wd_relid rel, wal_log_ctx *log, btree **out)
{
	pthread_rwlockattr_t a;
	btree *t;
	if (!pool || !log || !log->w)
		return err_set(WD_EINVAL, "btree rel %u: a pool and a WAL are required", rel);
	if (log->page_size != bufmgr_page_size(pool)) /* images are log->page_size */
		return err_set(WD_EINVAL, "btree rel %u: log page size %u, pool page size %u",
			       rel, log->page_size, bufmgr_page_size(pool));
	if (!(t = calloc(1, sizeof *t)))
		return err_set(WD_ENOMEM, "btree rel %u: no memory", rel);
	t->pool = pool;
	t->rel = rel;
	t->log = log;
	t->ps = bufmgr_page_size(pool);
	t->max_key = t->ps / 8;
	pthread_rwlockattr_init(&a);
	/* writers first: a structure change is never starved by readers */
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&t->smo, &a);
	pthread_rwlockattr_destroy(&a);
	*out = t;
	return 0;
}

void btree_close(btree *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < BT_KEEP_SLOTS; i++) {
		bm_buf *b = atomic_load(&t->keep[i]);
		if (b)
			keep_release(t, b);
	}
	rightmost_drop(t);
	pthread_rwlock_destroy(&t->smo);
	free(t);
}

/* Logs BTREE_CREATE: the metapage and the empty root leaf, both rebuilt by
 * redo (WILL_INIT). */
static int create_pages(btree *t, bm_buf *meta, bm_buf *root)
{
	bt_meta m = {.root = bufmgr_buf_blkno(root), .level = 0,
		     .free_head = WD_INVALID_BLKNO, .nfree = 0};
	bt_log lg;
	wd_lsn lsn;
	bt_log_begin(&lg, t, BTREE_CREATE, 0, 0);
	lg.latched = false; /* nobody else knows the relation yet */
	bt_op_meta(bt_log_page(&lg, meta, true), &m);
	bt_op_init(bt_log_page(&lg, root, true), 0, BTF_LEAF | BTF_ROOT,
		   WD_INVALID_BLKNO, WD_INVALID_BLKNO, WD_INVALID_BLKNO);
	t->root = m.root;
	t->level = 0;
	return bt_log_commit(&lg, &lsn);
}

int btree_create(bufmgr *pool, wd_relid rel, wal_log_ctx *log, btree **out)
{
	bm_buf *meta = NULL, *root = NULL;
	wd_blkno nblocks, b0, b1;
	btree *t = NULL;
	int rc;
	if ((rc = handle_new(pool, rel, log, &t)) != 0)
		return rc;
	if ((rc = bufmgr_rel_nblocks(pool, rel, &nblocks)) != 0)
		goto out;
	if (nblocks != 0) {
		rc = err_set(WD_EEXIST, "btree rel %u: relation already has %u blocks", rel, nblocks);
		goto out;
	}
	/* extend returns the page latched: keep only the pin, so that no
	 * thread ever holds two page latches (README "Concurrency") */
	if ((rc = bufmgr_extend(pool, rel, &b0, &meta)) != 0)
		goto out;
	bufmgr_unlatch(meta);
	if ((rc = bufmgr_extend(pool, rel, &b1, &root)) != 0)
		goto out;
	bufmgr_unlatch(root);
	if (b0 != BT_META_BLK)
		rc = err_set(WD_EINVAL, "btree rel %u: metapage landed in block %u", rel, b0);
	else
		rc = create_pages(t, meta, root);
out:
	if (root)
		bt_unpin(t, root);
	if (meta)
		bt_unpin(t, meta);
	if (rc) {
		btree_close(t);
		t = NULL;
	}
	*out = t;
	return rc;
}

int bt_meta_read(btree *t, bt_meta *m)
{
	bm_buf *buf;
	int rc = bt_pin(t, BT_META_BLK, BM_SHARE, &buf);
	if (rc)
		return rc;
	rc = bt_meta_check(bufmgr_page(buf), t->ps, t->rel);
	if (rc == 0)
		bt_meta_decode(bufmgr_page(buf), m);
	bt_release(t, buf);
	return rc;
}

int btree_open(bufmgr *pool, wd_relid rel, wal_log_ctx *log, btree **out)
{
	bt_meta m;
	btree *t = NULL;
	int rc = handle_new(pool, rel, log, &t);
	if (rc == 0 && (rc = bt_meta_read(t, &m)) == 0) {
		t->root = m.root;
		t->level = m.level;
	}
	if (rc) {
		btree_close(t);
		t = NULL;
	}
	*out = t;
	return rc;
}

/*
 * A page reached by descent must be a live tree page of the expected level.
 * Only cheap header fields are looked at: bufmgr_pin verified the checksum
 * and header bounds when it read the page, so what is left to catch is a
 * sound page of the wrong kind or place (a damaged downlink).
 */
static inline int check_child(btree *t, bm_buf *buf, uint32_t level)
{
	const uint8_t *p = bufmgr_page(buf);
	if (__builtin_expect(!bt_page_live_at(p, t->ps, level), 0))
		return bt_corrupt(t, bufmgr_buf_blkno(buf),
				  "descent reached a page that is not a live B+tree page "
				  "of the expected level");
	return 0;
}

/*
 * I12 (kept upper levels): the buffer kept for blk, or NULL. A kept buffer
 * is pinned by the handle, so its tag cannot change (bufmgr I2) and the
 * check against blk is exact; the pool has one buffer per page, so it holds
 * the page's current bytes.
 */
static inline _Atomic(bm_buf *) *keep_slot(btree *t, wd_blkno blk)
{
	return &t->keep[blk % BT_KEEP_SLOTS];
}

static inline bm_buf *keep_find(btree *t, wd_blkno blk)
{
	bm_buf *b = atomic_load_explicit(keep_slot(t, blk), memory_order_acquire);
	return b && bufmgr_buf_blkno(b) == blk ? b : NULL;
}

/* Offers our pin on buf to an empty slot of kept pins (I12, I13). true:
 * the handle owns the pin now (the caller must not unpin); false: the slot
 * is taken or the pool's budget of kept pins is spent. */
static bool keep_offer_to(btree *t, _Atomic(bm_buf *) *slot, bm_buf *buf)
{
	bm_buf *none = NULL;
	if (atomic_load_explicit(slot, memory_order_relaxed) || !bufmgr_keep_take(t->pool))
		return false;
	if (atomic_compare_exchange_strong_explicit(slot, &none, buf, memory_order_release,
						    memory_order_relaxed))
		return true;
	bufmgr_keep_give(t->pool);
	return false;
}

/* keep_offer_to the slot of buf, an internal page (I12). */
static bool keep_offer(btree *t, bm_buf *buf)
{
	return keep_offer_to(t, keep_slot(t, bufmgr_buf_blkno(buf)), buf);
}

void bt_keep_drop(btree *t, wd_blkno blk)
{
	_Atomic(bm_buf *) *slot = keep_slot(t, blk);
	bm_buf *b = atomic_load_explicit(slot, memory_order_relaxed);
	if (b && bufmgr_buf_blkno(b) == blk) {
		atomic_store_explicit(slot, NULL, memory_order_relaxed);
		keep_release(t, b);
	}
}

/*
 * P1 (descent): from the root, at each level read the child's block and
 * unpin the parent. Holding smo (shared or exclusive) freezes internal
 * pages (I7): nobody writes their bytes while we hold it, and bufmgr only
 * reads a page (under a share latch) to write it out, so internal pages are
 * read pinned but unlatched, and the child read is still the right child
 * when we get to it. Only the leaf, whose contents change under shared smo,
 * is latched, in leaf_mode: a thread never holds two page latches.
 * Internal pages come from the kept set when they are in it (I12), and a
 * page pinned here is offered to it; leaves are always pinned here.
 */
int bt_descend(btree *t, const void *key, size_t klen, int dir, int leaf_mode,
	       bm_buf **leaf)
{
	uint32_t level = t->level;
	wd_blkno blk = t->root;
	bm_buf *cur;
	bool kept;
	int rc;
	for (;;) {
		kept = level > 0 && (cur = keep_find(t, blk)) != NULL;
		if (!kept && (rc = bt_pin_x(t, blk, &cur)) != 0)
			return rc;
		if (level == 0)
			bufmgr_latch(cur, leaf_mode);
		if ((rc = check_child(t, cur, level)) != 0)
			break;
		if (level == 0) {
			*leaf = cur;
			return 0;
		}
		const uint8_t *p = bufmgr_page(cur);
		blk = bt_item_child(p, bt_child_search(p, key, klen, dir));
		if (!kept && !keep_offer(t, cur))
			bt_unpin(t, cur);
		level--;
	}
	if (level == 0)
		bufmgr_unlatch(cur);
	if (!kept)
		bt_unpin(t, cur);
	return rc;
}

/* Main data of leaf records: u16 klen, key, tid, old tid. */
static void leaf_main(bt_bytes *m, const void *key, size_t klen, wd_tid tid, wd_tid old)
{
	uint8_t b[2 * BT_TID_SIZE + 2];
	put_le16(b, (uint16_t)klen);
	bt_bytes_put(m, b, 2);
	bt_bytes_put(m, key, (uint32_t)klen);
	bt_leaf_item(b, NULL, 0, tid);
	bt_leaf_item(b + BT_TID_SIZE, NULL, 0, old);
	bt_bytes_put(m, b, 2 * BT_TID_SIZE);
}

int bt_leaf_change(btree *t, bm_buf *buf, bool latched, unsigned type, wd_xid xid,
		   wd_lsn prev, uint32_t idx, const void *key, size_t klen, wd_tid tid,
		   wd_tid old, wd_lsn *lsn)
{
	uint8_t item[BT_TID_SIZE + PAGE_SIZE_MAX / 8];
	uint32_t ilen = bt_leaf_item(item, key, klen, tid);
	bt_log lg;
	bt_bytes *ops;
	bt_log_begin(&lg, t, type, xid, prev); /* step 1 done by the caller */
	lg.latched = latched;
	ops = bt_log_page(&lg, buf, false);
	if (type == BTREE_INSERT_LEAF)
		bt_op_add(ops, idx, item, ilen);
	else if (type == BTREE_DELETE_LEAF)
		bt_op_remove(ops, idx);
	else
		bt_op_replace(ops, idx, item, ilen);
	leaf_main(&lg.main, key, klen, tid, old);
	return bt_log_commit(&lg, lsn); /* steps 2-5 */
}

/* The position of key in the latched leaf (README P7). */
static void pos_set(btree_pos *pos, bm_buf *leaf, uint32_t idx, bool found)
{
	if (!pos)
		return;
	pos->leaf = bufmgr_buf_blkno(leaf);
	pos->lsn = page_lsn(bufmgr_page(leaf));
	pos->idx = idx;
	pos->found = found;
}

/*
 * P8 (the rightmost leaf): the kept rightmost leaf, share-latched, if key
 * belongs there (*leaf; the caller unlatches it and must not unpin it);
 * else false, holding nothing, and the hint is switched off. Under smo
 * shared no page joins or leaves the tree and no key range moves (I7), and
 * the kept buffer is the rightmost leaf (I13). Its range runs from its
 * lower bound, at or below its first key (I4), to the end of the key
 * space: a key at or after its first key belongs there, the leaf a descent
 * would reach. The page is checked all the same (a live leaf without a
 * right link). Precondition: smo shared.
 */
static bool rightmost_leaf(btree *t, const void *key, size_t klen, bm_buf **leaf)
{
	const uint8_t *p, *first;
	uint32_t flen;
	bm_buf *b;
	if (!atomic_load_explicit(&t->rightmost_on, memory_order_relaxed) ||
	    !(b = atomic_load_explicit(&t->rightmost, memory_order_acquire)))
		return false;
	bufmgr_latch(b, BM_SHARE);
	p = bufmgr_page(b);
	if (bt_page_live_at(p, t->ps, 0) && bt_right(p) == WD_INVALID_BLKNO && bt_nitems(p) > 0) {
		first = bt_key(p, 0, &flen);
		if (bt_keycmp(key, klen, first, flen) >= 0) {
			atomic_store_explicit(&t->rightmost_hits,
					      atomic_load_explicit(&t->rightmost_hits,
								   memory_order_relaxed) + 1,
					      memory_order_relaxed);
			*leaf = b;
			return true;
		}
	}
	bufmgr_unlatch(b);
	atomic_store_explicit(&t->rightmost_on, false, memory_order_relaxed);
	return false;
}

/* P8: a descent of a change's lookup ended in leaf, pinned by us. If it is
 * the rightmost leaf (no right link) the handle keeps a pin of its own on
 * it, within the pool's budget of kept pins, and the hint is switched on. */
static void rightmost_note(btree *t, bm_buf *leaf)
{
	bm_buf *b;
	if (bt_right(bufmgr_page(leaf)) != WD_INVALID_BLKNO)
		return;
	b = atomic_load_explicit(&t->rightmost, memory_order_relaxed);
	if (!b) {
		bufmgr_pin_again(leaf); /* the handle's own, ours stays ours */
		if (keep_offer_to(t, &t->rightmost, leaf))
			b = leaf;
		else
			bufmgr_unpin(t->pool, leaf);
	}
	if (b == leaf && !atomic_load_explicit(&t->rightmost_on, memory_order_relaxed))
		atomic_store_explicit(&t->rightmost_on, true, memory_order_relaxed);
}

/* Unlatches leaf; unpins it unless it is the kept rightmost leaf we used
 * without a pin of our own (kept). */
static void leaf_release(btree *t, bm_buf *leaf, bool kept)
{
	if (kept)
		bufmgr_unlatch(leaf);
	else
		bt_release(t, leaf);
}

/* The leaf for key, share-latched: for a change's lookup (pos given) the
 * kept rightmost leaf when key belongs there (P8, *kept), else a descent
 * (P1). */
static int lookup_leaf(btree *t, const void *key, size_t klen, bool change, bm_buf **leaf,
		       bool *kept)
{
	int rc;
	*kept = change && rightmost_leaf(t, key, klen, leaf);
	if (*kept)
		return 0;
	rc = bt_descend(t, key, klen, 1, BM_SHARE, leaf);
	if (rc == 0 && change)
		rightmost_note(t, *leaf);
	return rc;
}

uint64_t btree_rightmost_hits(const btree *t)
{
	return atomic_load_explicit(&t->rightmost_hits, memory_order_relaxed);
}

int btree_lookup_pos(btree *t, const void *key, size_t klen, wd_tid *tid,
		     btree_pos *pos)
{
	bm_buf *leaf;
	bool found, kept;
	uint32_t i;
	int rc = bt_key_ok(t, klen);
	if (pos)
		pos->leaf = WD_INVALID_BLKNO;
	if (rc)
		return rc;
	bt_lock_shared(t);
	if ((rc = lookup_leaf(t, key, klen, pos != NULL, &leaf, &kept)) == 0) {
		i = bt_leaf_search(bufmgr_page(leaf), key, klen, &found);
		if (found)
			*tid = bt_item_tid(bufmgr_page(leaf), i);
		else
			rc = WD_NOTFOUND;
		pos_set(pos, leaf, i, found);
		leaf_release(t, leaf, kept);
	}
	bt_unlock(t);
	return rc;
}

int btree_lookup(btree *t, const void *key, size_t klen, wd_tid *tid)
{
	return btree_lookup_pos(t, key, klen, tid, NULL);
}

/*
 * P7 step 2: pins pos's leaf (unless it is the kept rightmost leaf, P8:
 * *kept) and latches it exclusively; true if its pageLSN is still the one
 * the lookup saw. Then (I8) not a byte of it has changed, and neither has
 * its key range (a split or unlink that moves keys into or out of a leaf
 * changes that leaf, README P7), so the leaf is where a descent would lead
 * and pos->idx is still key's place. false, holding nothing, if it changed
 * or cannot be pinned: the caller descends (and meets any error there).
 * Precondition: smo shared.
 */
static bool revisit(btree *t, const btree_pos *pos, bm_buf **leaf, bool *kept)
{
	const uint8_t *p;
	bm_buf *b;
	if (!pos || pos->leaf == WD_INVALID_BLKNO)
		return false;
	/* the kept rightmost leaf needs no pin of ours (P8) */
	b = atomic_load_explicit(&t->rightmost, memory_order_acquire);
	*kept = b && bufmgr_buf_blkno(b) == pos->leaf;
	if (*kept) {
		bufmgr_latch(b, BM_EXCL);
		*leaf = b;
	} else if (bt_pin(t, pos->leaf, BM_EXCL, leaf) != 0) {
		return false;
	}
	p = bufmgr_page(*leaf);
	if (page_lsn(p) == pos->lsn && bt_page_live(p, t->ps) && (bt_flags(p) & BTF_LEAF) &&
	    pos->idx <= bt_nitems(p))
		return true;
	leaf_release(t, *leaf, *kept);
	return false;
}

/*
 * P3 step 3 for an insert, in the exclusively latched leaf where key
 * belongs (index i, found: key present). *split: the item does not fit.
 */
static int insert_in_leaf(btree *t, bm_buf *leaf, uint32_t i, bool found, wd_xid xid,
			  wd_lsn prev, const void *key, size_t klen, wd_tid tid,
			  wd_lsn *lsn, bool *split)
{
	wd_tid none = {WD_INVALID_BLKNO, 0};
	if (found)
		return err_set(WD_EEXIST, "btree rel %u: key already present", t->rel);
	if (page_free_space(bufmgr_page(leaf)) < BT_TID_SIZE + klen) {
		*split = true;
		return 0;
	}
	return bt_leaf_change(t, leaf, true, BTREE_INSERT_LEAF, xid, prev, i, key, klen, tid,
			      none, lsn);
}

/*
 * The exclusively latched leaf for key and the key's index in it: the
 * remembered position if it is still current (revisit), else a descent and
 * a search. Precondition: the shared structure lock is held. On success
 * the caller releases *leaf with leaf_release(t, *leaf, *kept).
 */
static int find_leaf(btree *t, const btree_pos *pos, const void *key, size_t klen,
		     bm_buf **leaf, bool *kept, uint32_t *i, bool *found)
{
	int rc;
	if (revisit(t, pos, leaf, kept)) {
		*i = pos->idx;
		*found = pos->found;
		return 0;
	}
	*kept = false; /* a descent pins its leaf */
	if ((rc = bt_descend(t, key, klen, 1, BM_EXCL, leaf)) == 0)
		*i = bt_leaf_search(bufmgr_page(*leaf), key, klen, found);
	return rc;
}

/*
 * P3 (optimistic insert), or P7 with a position: shared structure lock,
 * exclusive leaf latch; if the item fits, one INSERT_LEAF record. If not,
 * everything is released and the insert restarts under the exclusive
 * structure lock (split.c).
 */
int btree_insert_at(btree *t, const btree_pos *pos, wd_xid xid, wd_lsn prev,
		    const void *key, size_t klen, wd_tid tid, wd_lsn *lsn)
{
	bool found, kept, split = false;
	bm_buf *leaf;
	uint32_t i;
	int rc = bt_key_ok(t, klen);
	if (rc)
		return rc;
	bt_lock_shared(t);
	if ((rc = find_leaf(t, pos, key, klen, &leaf, &kept, &i, &found)) == 0) {
		rc = insert_in_leaf(t, leaf, i, found, xid, prev, key, klen, tid, lsn, &split);
		leaf_release(t, leaf, kept);
	}
	bt_unlock(t);
	if (split)
		rc = bt_insert_pessimistic(t, xid, prev, key, klen, tid, lsn);
	return rc;
}

int btree_insert(btree *t, wd_xid xid, wd_lsn prev, const void *key, size_t klen,
		 wd_tid tid, wd_lsn *lsn)
{
	return btree_insert_at(t, NULL, xid, prev, key, klen, tid, lsn);
}

/* P3 (optimistic delete): as insert; a delete that would empty a non-root
 * leaf restarts under the exclusive lock to reclaim the page (reclaim.c). */
int btree_delete(btree *t, wd_xid xid, wd_lsn prev, const void *key, size_t klen,
		 wd_tid *old, wd_lsn *lsn)
{
	bool found, reclaim = false;
	bm_buf *leaf;
	uint32_t i;
	int rc = bt_key_ok(t, klen);
	if (rc)
		return rc;
	bt_lock_shared(t);
	if ((rc = bt_descend(t, key, klen, 1, BM_EXCL, &leaf)) == 0) {
		uint8_t *p = bufmgr_page(leaf);
		i = bt_leaf_search(p, key, klen, &found);
		wd_tid was = found ? bt_item_tid(p, i) : (wd_tid){0, 0};
		if (!found)
			rc = WD_NOTFOUND;
		else if (bt_nitems(p) == 1 && !(bt_flags(p) & BTF_ROOT))
			reclaim = true;
		else if ((rc = bt_leaf_change(t, leaf, true, BTREE_DELETE_LEAF, xid, prev, i,
					      key, klen, was, was, lsn)) == 0 && old)
			*old = was;
		bt_release(t, leaf);
	}
	bt_unlock(t);
	if (reclaim)
		rc = bt_delete_pessimistic(t, xid, prev, key, klen, old, lsn);
	return rc;
}

int btree_update_tid_at(btree *t, const btree_pos *pos, wd_xid xid, wd_lsn prev,
			const void *key, size_t klen, wd_tid tid, wd_lsn *lsn)
{
	bool found, kept;
	bm_buf *leaf;
	uint32_t i;
	int rc = bt_key_ok(t, klen);
	if (rc)
		return rc;
	bt_lock_shared(t);
	if ((rc = find_leaf(t, pos, key, klen, &leaf, &kept, &i, &found)) == 0) {
		uint8_t *p = bufmgr_page(leaf);
		if (!found)
			rc = WD_NOTFOUND;
		else
			rc = bt_leaf_change(t, leaf, true, BTREE_UPDATE_TID, xid, prev, i, key,
					    klen, tid, bt_item_tid(p, i), lsn);
		leaf_release(t, leaf, kept);
	}
	bt_unlock(t);
	return rc;
}

int btree_update_tid(btree *t, wd_xid xid, wd_lsn prev, const void *key,
		     size_t klen, wd_tid tid, wd_lsn *lsn)
{
	return btree_update_tid_at(t, NULL, xid, prev, key, klen, tid, lsn);
}
