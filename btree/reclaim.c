/*
 * reclaim.c - deletes that change the tree's structure (README protocol
 * P4): under the exclusive structure lock, delete the key, and if its leaf
 * is now empty unlink it - with every ancestor left without a child - from
 * the tree and the leaf chain and put those pages on the metapage's free
 * list, in one BTREE_UNLINK_PAGE record; then, while the root has a single
 * child, make that child the root (BTREE_SHRINK). Splits take pages from
 * the free list before extending the file, so a tree that shrinks and grows
 * again reuses its pages. Structure records carry xid 0 (never undone).
 */
#include <string.h>

#include "btree/bt_internal.h"
#include "storage/storage.h"
#include "wal/rmgr.h"

#define BT_MAX_DEPTH 64

/* The internal pages passed on the way to a leaf (root first). */
typedef struct bt_path {
	unsigned depth;
	wd_blkno blk[BT_MAX_DEPTH];
	uint32_t nitems[BT_MAX_DEPTH];
	uint32_t idx[BT_MAX_DEPTH]; /* item followed to the next level */
} bt_path;

/* Descends to key's leaf recording the path; the leaf is returned
 * pinned. Precondition: smo exclusive (no other thread changes a page). */
static int descend_path(btree *t, const void *key, size_t klen, bt_path *path,
			bm_buf **leaf)
{
	wd_blkno blk = t->root;
	path->depth = 0;
	for (;;) {
		bm_buf *buf;
		int rc = bt_pin_x(t, blk, &buf);
		if (rc)
			return rc;
		const uint8_t *p = bufmgr_page(buf);
		if (!bt_page_live(p, t->ps) || bt_level(p) != t->level - path->depth) {
			bt_unpin(t, buf);
			return bt_corrupt(t, blk, "descent reached a page of the wrong kind or level");
		}
		if (bt_flags(p) & BTF_LEAF) {
			*leaf = buf;
			return 0;
		}
		unsigned d = path->depth++;
		path->blk[d] = blk;
		path->nitems[d] = bt_nitems(p);
		path->idx[d] = bt_child_search(p, key, klen, 1);
		blk = bt_item_child(p, path->idx[d]);
		bt_unpin(t, buf);
	}
}

/* Main data of UNLINK_PAGE: u32 leaf, u32 parent kept, u16 pages freed. */
static void unlink_main(bt_bytes *s, wd_blkno leaf, wd_blkno ga, uint32_t k)
{
	uint8_t b[10];
	put_le32(b, leaf);
	put_le32(b + 4, ga);
	put_le16(b + 8, (uint16_t)k);
	bt_bytes_put(s, b, sizeof b);
}

/* Ops removing downlink gidx from the surviving ancestor; a new first item
 * loses its key (minus infinity, I4). */
static void remove_downlink(bt_bytes *ops, const uint8_t *gp, uint32_t gidx)
{
	uint8_t item[BT_CHILD_SIZE];
	bt_op_remove(ops, gidx);
	if (gidx == 0)
		bt_op_replace(ops, 0, item, bt_internal_item(item, NULL, 0, bt_item_child(gp, 1)));
}

/* Pins an optional leaf neighbour (INVALID: none), checked to be a live
 * leaf before its links are read; WD_ECORRUPT naming it otherwise. */
static int pin_opt(btree *t, wd_blkno blk, bm_buf **buf)
{
	int rc;
	*buf = NULL;
	if (blk == WD_INVALID_BLKNO || (rc = bt_pin_x(t, blk, buf)) != 0)
		return blk == WD_INVALID_BLKNO ? 0 : rc;
	if (!bt_page_live_at(bufmgr_page(*buf), t->ps, 0)) {
		bt_unpin(t, *buf);
		*buf = NULL;
		return bt_corrupt(t, blk, "leaf sibling link leads to a non-leaf page");
	}
	return 0;
}

/*
 * P4 step 3: the record unlinking pages bufs[0..k) (top ancestor first,
 * the empty leaf last), all pinned, from ancestor ga (item
 * gidx) and from the leaf chain, and pushing them on the free list.
 */
static int unlink_pages(btree *t, bm_buf *ga, uint32_t gidx, bm_buf **bufs, unsigned k)
{
	const uint8_t *leaf = bufmgr_page(bufs[k - 1]);
	wd_blkno lb = bt_left(leaf), rb = bt_right(leaf);
	bm_buf *lbuf = NULL, *rbuf = NULL, *meta = NULL;
	bt_meta mm;
	bt_log lg;
	wd_lsn lsn;
	int rc;
	if ((rc = pin_opt(t, lb, &lbuf)) || (rc = pin_opt(t, rb, &rbuf)) ||
	    (rc = bt_pin_x(t, BT_META_BLK, &meta)))
		goto out;
	bt_meta_decode(bufmgr_page(meta), &mm);
	bt_log_begin(&lg, t, BTREE_UNLINK_PAGE, 0, 0);
	lg.latched = false; /* smo exclusive: pages pinned only */
	remove_downlink(bt_log_page(&lg, ga, false), bufmgr_page(ga), gidx);
	for (unsigned i = 0; i < k; i++)
		bt_op_init(bt_log_page(&lg, bufs[i], true), bt_level(bufmgr_page(bufs[i])),
			   BTF_DELETED, WD_INVALID_BLKNO, WD_INVALID_BLKNO,
			   i + 1 < k ? bufmgr_buf_blkno(bufs[i + 1]) : mm.free_head);
	if (lbuf)
		bt_op_links(bt_log_page(&lg, lbuf, false), bt_left(bufmgr_page(lbuf)), rb);
	if (rbuf)
		bt_op_links(bt_log_page(&lg, rbuf, false), lb, bt_right(bufmgr_page(rbuf)));
	mm.free_head = bufmgr_buf_blkno(bufs[0]);
	mm.nfree += k;
	bt_op_meta(bt_log_page(&lg, meta, true), &mm);
	unlink_main(&lg.main, bufmgr_buf_blkno(bufs[k - 1]), bufmgr_buf_blkno(ga), k);
	rc = bt_log_commit(&lg, &lsn);
	for (unsigned i = 0; rc == 0 && i < k; i++) /* freed: no longer kept (I12) */
		bt_keep_drop(t, bufmgr_buf_blkno(bufs[i]));
	storage_crash_point("btree-unlink-after-wal");
out:
	if (meta)
		bt_unpin(t, meta);
	if (rbuf)
		bt_unpin(t, rbuf);
	if (lbuf)
		bt_unpin(t, lbuf);
	return rc;
}

/*
 * P4 step 2: the empty leaf and its ancestors that have it as their only
 * descendant are unlinked below the lowest ancestor with another child.
 * Skipped (the empty leaf stays, I9) when that would be every page up to
 * the root, or more pages than one record can name.
 */
static int reclaim_leaf(btree *t, const bt_path *path, bm_buf *leaf)
{
	bm_buf *bufs[WAL_MAX_BLOCKS], *ga;
	int j = (int)path->depth - 1;
	unsigned k = 1, got = 0;
	int rc;
	while (j >= 0 && path->nitems[j] == 1) {
		j--;
		k++;
	}
	if (j < 0 || k + 4 > WAL_MAX_BLOCKS)
		return 0;
	if ((rc = bt_pin_x(t, path->blk[j], &ga)) != 0)
		return rc;
	for (unsigned d = (unsigned)j + 1; rc == 0 && d < path->depth; d++)
		if ((rc = bt_pin_x(t, path->blk[d], &bufs[got])) == 0)
			got++;
	bufs[k - 1] = leaf;
	if (rc == 0)
		rc = unlink_pages(t, ga, path->idx[j], bufs, k);
	for (unsigned i = 0; i < got; i++)
		bt_unpin(t, bufs[i]);
	bt_unpin(t, ga);
	return rc;
}

/* P4 step 4: one BTREE_SHRINK record replacing a one-child root by its
 * child (root, child and meta pinned). */
static int shrink_once(btree *t, bm_buf *root, bm_buf *child, bm_buf *meta)
{
	const uint8_t *c = bufmgr_page(child);
	wd_blkno rblk = bufmgr_buf_blkno(root), cblk = bufmgr_buf_blkno(child);
	bt_meta mm;
	bt_log lg;
	wd_lsn lsn;
	uint8_t b[8];
	int rc;
	bt_meta_decode(bufmgr_page(meta), &mm);
	bt_log_begin(&lg, t, BTREE_SHRINK, 0, 0);
	lg.latched = false; /* smo exclusive: pages pinned only */
	bt_op_init(bt_log_page(&lg, root, true), bt_level(bufmgr_page(root)), BTF_DELETED,
		   WD_INVALID_BLKNO, WD_INVALID_BLKNO, mm.free_head);
	bt_op_flags(bt_log_page(&lg, child, false), bt_flags(c) | BTF_ROOT);
	mm.root = cblk;
	mm.level = bt_level(c);
	mm.free_head = rblk;
	mm.nfree++;
	bt_op_meta(bt_log_page(&lg, meta, true), &mm);
	put_le32(b, rblk);
	put_le32(b + 4, cblk);
	bt_bytes_put(&lg.main, b, sizeof b);
	if ((rc = bt_log_commit(&lg, &lsn)) == 0) {
		t->root = cblk;
		t->level = mm.level;
		bt_keep_drop(t, rblk); /* the old root is freed (I12) */
	}
	return rc;
}

/* Shrinks the tree while the root is internal with one child. */
static int shrink_root(btree *t)
{
	int rc = 0;
	while (rc == 0 && t->level > 0) {
		bm_buf *root, *child = NULL, *meta = NULL;
		if ((rc = bt_pin_x(t, t->root, &root)) != 0)
			break;
		bool one = bt_nitems(bufmgr_page(root)) == 1;
		if (one && (rc = bt_pin_x(t, bt_item_child(bufmgr_page(root), 0), &child)) == 0 &&
		    (rc = bt_pin_x(t, BT_META_BLK, &meta)) == 0)
			rc = shrink_once(t, root, child, meta);
		if (meta)
			bt_unpin(t, meta);
		if (child)
			bt_unpin(t, child);
		bt_unpin(t, root);
		if (!one)
			break;
	}
	return rc;
}

/* The delete under the exclusive structure lock (P4). */
static int delete_locked(btree *t, wd_xid xid, wd_lsn prev, const void *key,
			 size_t klen, wd_tid *old, wd_lsn *lsn)
{
	bt_path path;
	bm_buf *leaf = NULL;
	bool found;
	int rc = descend_path(t, key, klen, &path, &leaf);
	if (rc)
		return rc;
	uint8_t *p = bufmgr_page(leaf);
	uint32_t i = bt_leaf_search(p, key, klen, &found);
	if (!found) {
		bt_unpin(t, leaf);
		return WD_NOTFOUND;
	}
	wd_tid was = bt_item_tid(p, i);
	rc = bt_leaf_change(t, leaf, false, BTREE_DELETE_LEAF, xid, prev, i, key, klen, was,
			    was, lsn); /* step 1: the transaction's own record */
	if (rc == 0 && old)
		*old = was;
	/* The delete is done and logged: a failure to reclaim (no buffer, a
	 * panicked log) leaves an empty leaf, which is legal (I9), so it does
	 * not turn the delete into a failure. */
	if (rc == 0 && bt_nitems(p) == 0 && path.depth > 0)
		(void)reclaim_leaf(t, &path, leaf);
	bt_unpin(t, leaf);
	if (rc == 0)
		(void)shrink_root(t);
	return rc;
}

int bt_delete_pessimistic(btree *t, wd_xid xid, wd_lsn prev, const void *key,
			  size_t klen, wd_tid *old, wd_lsn *lsn)
{
	bt_lock_excl(t);
	int rc = delete_locked(t, xid, prev, key, klen, old, lsn);
	bt_unlock(t);
	return rc;
}
