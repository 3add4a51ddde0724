/*
 * split.c - inserts that change the tree's structure (README protocol P5):
 * under the exclusive structure lock, descend from the root splitting every
 * full page on the way down (pre-emptive splitting), so that each split has
 * a parent with room for the new downlink and is one self-contained WAL
 * record: BTREE_SPLIT (page, new right page, parent, leaf right sibling,
 * metapage) or BTREE_NEWROOT (old root, new right page, new root,
 * metapage). Both are logged with xid 0: a rollback never undoes them.
 */
#include <string.h>

#include "btree/bt_internal.h"
#include "storage/storage.h"
#include "wal/rmgr.h"

/* A downlink of the longest key any page size allows; seplen is checked
 * against the tree's own limit (t->max_key <= PAGE_SIZE_MAX / 8) first. */
#define ITEM_MAX (BT_CHILD_SIZE + PAGE_SIZE_MAX / 8)

/* true if an internal page might not take one more downlink of any size. */
static bool internal_full(const btree *t, const uint8_t *p)
{
	return page_free_space(p) < BT_CHILD_SIZE + t->max_key;
}

/* true if page p must split before key can go in (leaf) or before a
 * downlink can (internal). */
static bool needs_split(const btree *t, const uint8_t *p, size_t klen)
{
	if (bt_flags(p) & BTF_LEAF)
		return page_free_space(p) < BT_TID_SIZE + klen;
	return internal_full(t, p);
}

/*
 * Takes a page for a split: the head of the metapage's free list (its
 * next pointer becomes the head; *m is updated and *popped set) or, with
 * the list empty, a new block from bufmgr_extend. Returned pinned (smo
 * is exclusive). A free-list entry that is not a deleted B+tree page
 * (kind, special offset, flag: bt_page_free) is WD_ECORRUPT, checked before
 * its next pointer is read.
 */
static int alloc_page(btree *t, bt_meta *m, bool *popped, bm_buf **out)
{
	wd_blkno blk = m->free_head;
	int rc;
	if (blk == WD_INVALID_BLKNO) {
		/* a new page is returned latched; we keep only the pin */
		if ((rc = bufmgr_extend(t->pool, t->rel, &blk, out)) == 0)
			bufmgr_unlatch(*out);
		return rc;
	}
	if ((rc = bt_pin_x(t, blk, out)) != 0)
		return rc;
	const uint8_t *p = bufmgr_page(*out);
	if (!bt_page_free(p, t->ps)) {
		bt_unpin(t, *out);
		return bt_corrupt(t, blk, "free-list entry is not a deleted page");
	}
	m->free_head = bt_next_free(p);
	m->nfree = m->nfree ? m->nfree - 1 : 0;
	*popped = true;
	return 0;
}

/*
 * true if inserting key appends to p: p is the last page of its level
 * (rightmost: the caller knows it from the descent) and key sorts after
 * every key on it. Such an insert is a sequential load's; its split keeps
 * the page full (split_point).
 */
static bool appends(const uint8_t *p, bool rightmost, const void *key, size_t klen)
{
	uint32_t n = bt_nitems(p), lastlen;
	const uint8_t *last;
	if (!rightmost || n < 2)
		return false;
	last = bt_key(p, n - 1, &lastlen);
	return bt_keycmp(last, lastlen, key, klen) < 0;
}

/*
 * The split point, kept in [1, n-1] so both halves have an item. An
 * appending insert (appends) splits at n - 1: the left page stays full and
 * the right one gets the last item and then the new key, so a sequential
 * load leaves full pages behind it instead of half-full ones. Otherwise
 * the first index m where items [0, m) hold at least half the bytes.
 */
static uint32_t split_point(const uint8_t *p, bool append)
{
	uint32_t n = bt_nitems(p), total = 0, acc = 0, m = n - 1, len;
	if (append)
		return m;
	for (uint32_t i = 0; i < n; i++) {
		page_item_const(p, i, &len);
		total += len + PAGE_LP_SIZE;
	}
	for (uint32_t i = 0; i < n; i++) {
		page_item_const(p, i, &len);
		acc += len + PAGE_LP_SIZE;
		if (acc >= total / 2) {
			m = i + 1;
			break;
		}
	}
	if (m >= n)
		m = n - 1;
	return m ? m : 1;
}

/*
 * The separator of a split of page p (block blk) at m: the key of item m,
 * pointing into p (the page's bytes stay as they are until bt_log_commit
 * installs the new ones, after the downlink was copied into the op list).
 * A key longer than the tree's limit can only come from a damaged page
 * that passed its checksum: WD_ECORRUPT naming the block, before anything
 * is copied into a buffer sized by that limit.
 */
static int split_sep(btree *t, const uint8_t *p, wd_blkno blk, uint32_t m,
		     const uint8_t **sep, uint32_t *seplen)
{
	*sep = bt_key(p, m, seplen);
	if (*seplen > t->max_key)
		return bt_corrupt(t, blk, "separator key longer than the key limit");
	return 0;
}

/*
 * Op lists for splitting page p (block pblk) at m into itself and the new
 * page rblk: the right page gets items [m, n) (an internal page's first
 * item loses its key: minus infinity), the left keeps [0, m). flags are the
 * left page's new flags.
 */
static void split_ops(const uint8_t *p, wd_blkno pblk, wd_blkno rblk, uint32_t m,
		      uint32_t flags, bt_bytes *left, bt_bytes *right)
{
	bool leaf = bt_flags(p) & BTF_LEAF;
	uint32_t n = bt_nitems(p), len;
	bt_op_init(right, bt_level(p), leaf ? BTF_LEAF : 0, leaf ? pblk : WD_INVALID_BLKNO,
		   leaf ? bt_right(p) : WD_INVALID_BLKNO, WD_INVALID_BLKNO);
	for (uint32_t i = m; i < n; i++) {
		const uint8_t *it = page_item_const(p, i, &len);
		bt_op_add(right, i - m, it, (!leaf && i == m) ? BT_CHILD_SIZE : len);
	}
	bt_op_truncate(left, m);
	if (leaf)
		bt_op_links(left, bt_left(p), rblk);
	if (flags != bt_flags(p))
		bt_op_flags(left, flags);
}

/* Main data of SPLIT and NEWROOT: u32 left, u32 right, u16 level, u16 m. */
static void split_main(bt_bytes *s, wd_blkno l, wd_blkno r, uint32_t level, uint32_t m)
{
	uint8_t b[12];
	put_le32(b, l);
	put_le32(b + 4, r);
	put_le16(b + 8, (uint16_t)level);
	put_le16(b + 10, (uint16_t)m);
	bt_bytes_put(s, b, sizeof b);
}

/*
 * Splits child (item pidx of parent) into itself and a new right page, and
 * adds the downlink to the parent: one BTREE_SPLIT record (P5 steps 3-4).
 * Preconditions: smo exclusive; parent, child and meta pinned and
 * pinned (not latched: smo exclusive, README "Concurrency"); the parent
 * has room for one downlink (P5 step 2).
 */
static int split_child(btree *t, bm_buf *parent, uint32_t pidx, bm_buf *child,
		       bm_buf *meta, bool append)
{
	uint8_t item[ITEM_MAX];
	const uint8_t *p = bufmgr_page(child), *sep;
	wd_blkno cblk = bufmgr_buf_blkno(child), sib = bt_right(p);
	bool leaf = bt_flags(p) & BTF_LEAF, popped = false;
	bm_buf *right = NULL, *sbuf = NULL;
	uint32_t m = split_point(p, append), seplen;
	bt_meta mm;
	bt_log lg;
	wd_lsn lsn;
	int rc;

	bt_meta_decode(bufmgr_page(meta), &mm);
	if ((rc = split_sep(t, p, cblk, m, &sep, &seplen)) != 0 ||
	    (rc = alloc_page(t, &mm, &popped, &right)) != 0)
		return rc;
	if (leaf && sib != WD_INVALID_BLKNO && (rc = bt_pin_x(t, sib, &sbuf)) != 0)
		goto out;
	if (sbuf && !bt_page_live_at(bufmgr_page(sbuf), t->ps, 0)) {
		rc = bt_corrupt(t, sib, "leaf sibling link leads to a non-leaf page");
		goto out;
	}
	wd_blkno rblk = bufmgr_buf_blkno(right);
	bt_log_begin(&lg, t, BTREE_SPLIT, 0, 0); /* nested top action: xid 0 */
	lg.latched = false; /* smo exclusive: pages pinned only */
	bt_bytes *lops = bt_log_page(&lg, child, false);
	split_ops(p, cblk, rblk, m, bt_flags(p), lops, bt_log_page(&lg, right, true));
	bt_op_add(bt_log_page(&lg, parent, false), pidx + 1, item,
		  bt_internal_item(item, sep, seplen, rblk));
	if (sbuf)
		bt_op_links(bt_log_page(&lg, sbuf, false), rblk, bt_right(bufmgr_page(sbuf)));
	if (popped)
		bt_op_meta(bt_log_page(&lg, meta, true), &mm);
	split_main(&lg.main, cblk, rblk, bt_level(p), m);
	rc = bt_log_commit(&lg, &lsn);
	storage_crash_point("btree-split-after-wal");
out:
	if (sbuf)
		bt_unpin(t, sbuf);
	bt_unpin(t, right);
	return rc;
}

/*
 * Splits the root: the old root keeps the left half, a new page the right
 * half, and a new root one level up points at both; the metapage names the
 * new root. One BTREE_NEWROOT record. Preconditions: smo exclusive; root
 * and meta pinned.
 */
static int split_root(btree *t, bm_buf *root, bm_buf *meta, bool append)
{
	uint8_t item[ITEM_MAX];
	const uint8_t *p = bufmgr_page(root), *sep;
	wd_blkno oblk = bufmgr_buf_blkno(root);
	bm_buf *right = NULL, *nroot = NULL;
	uint32_t m = split_point(p, append), seplen, lvl = bt_level(p);
	bool popped = false;
	bt_meta mm;
	bt_log lg;
	wd_lsn lsn;
	int rc;

	bt_meta_decode(bufmgr_page(meta), &mm);
	if ((rc = split_sep(t, p, oblk, m, &sep, &seplen)) != 0 ||
	    (rc = alloc_page(t, &mm, &popped, &right)) != 0)
		return rc;
	if ((rc = alloc_page(t, &mm, &popped, &nroot)) != 0)
		goto out;
	wd_blkno rblk = bufmgr_buf_blkno(right), nblk = bufmgr_buf_blkno(nroot);
	bt_log_begin(&lg, t, BTREE_NEWROOT, 0, 0);
	lg.latched = false; /* smo exclusive: pages pinned only */
	bt_bytes *lops = bt_log_page(&lg, root, false);
	split_ops(p, oblk, rblk, m, bt_flags(p) & ~BTF_ROOT, lops,
		  bt_log_page(&lg, right, true));
	bt_bytes *rops = bt_log_page(&lg, nroot, true);
	bt_op_init(rops, lvl + 1, BTF_ROOT, WD_INVALID_BLKNO, WD_INVALID_BLKNO,
		   WD_INVALID_BLKNO);
	bt_op_add(rops, 0, item, bt_internal_item(item, NULL, 0, oblk));
	bt_op_add(rops, 1, item, bt_internal_item(item, sep, seplen, rblk));
	mm.root = nblk;
	mm.level = lvl + 1;
	bt_op_meta(bt_log_page(&lg, meta, true), &mm);
	split_main(&lg.main, oblk, rblk, lvl, m);
	if ((rc = bt_log_commit(&lg, &lsn)) == 0) {
		t->root = nblk;
		t->level = lvl + 1;
	}
	storage_crash_point("btree-newroot-after-wal");
	bt_unpin(t, nroot);
out:
	bt_unpin(t, right);
	return rc;
}

/* P5 step 1: splits the root while it is too full for this insert. The
 * root is checked to be a live page of the root's level (P1) before its
 * special area is read; WD_ECORRUPT naming it otherwise. */
static int ensure_root_room(btree *t, const void *key, size_t klen)
{
	for (;;) {
		bm_buf *root, *meta;
		int rc = bt_pin_x(t, t->root, &root);
		if (rc)
			return rc;
		if (!bt_page_live_at(bufmgr_page(root), t->ps, t->level)) {
			bt_unpin(t, root);
			return bt_corrupt(t, t->root, "root is not a live page of the root's level");
		}
		if (!needs_split(t, bufmgr_page(root), klen)) {
			bt_unpin(t, root);
			return 0;
		}
		if ((rc = bt_pin_x(t, BT_META_BLK, &meta)) == 0) {
			rc = split_root(t, root, meta,
					appends(bufmgr_page(root), true, key, klen));
			bt_unpin(t, meta);
		}
		bt_unpin(t, root);
		if (rc)
			return rc;
	}
}

/*
 * One step down from parent cur (P5 step 2): pins the child for key and
 * splits it first if it is full; *next receives the child to descend into.
 * A duplicate key found in a child leaf is WD_EEXIST before that leaf is
 * split. Splits made higher up on the way down (and root splits by
 * ensure_root_room) stay: each is a complete structure change on its own
 * (P5), so an insert that returns WD_EEXIST may have split pages.
 * *rightmost: in, whether cur is the last page of its level; out, whether
 * *next is (the last child of a rightmost page).
 */
static int step_down(btree *t, bm_buf *cur, const void *key, size_t klen, bool *rightmost,
		     bm_buf **next)
{
	const uint8_t *p = bufmgr_page(cur);
	uint32_t idx = bt_child_search(p, key, klen, 1);
	bm_buf *child, *meta;
	bool found = false;
	int rc = bt_pin_x(t, bt_item_child(p, idx), &child);
	if (rc)
		return rc;
	const uint8_t *c = bufmgr_page(child);
	if (!bt_page_live(c, t->ps) || bt_level(c) + 1 != bt_level(p)) {
		rc = bt_corrupt(t, bufmgr_buf_blkno(child), "child is not a live page one level down");
		goto fail;
	}
	if (bt_flags(c) & BTF_LEAF)
		bt_leaf_search(c, key, klen, &found);
	if (found) {
		rc = err_set(WD_EEXIST, "btree rel %u: key already present", t->rel);
		goto fail;
	}
	if (!needs_split(t, c, klen)) {
		*rightmost = *rightmost && idx == bt_nitems(p) - 1;
		*next = child;
		return 0;
	}
	if ((rc = bt_pin_x(t, BT_META_BLK, &meta)) != 0)
		goto fail;
	rc = split_child(t, cur, idx, child, meta,
			 appends(c, *rightmost && idx == bt_nitems(p) - 1, key, klen));
	bt_unpin(t, meta);
	bt_unpin(t, child);
	if (rc)
		return rc;
	/* the parent now has the new downlink: pick the half for key */
	idx = bt_child_search(p, key, klen, 1);
	*rightmost = *rightmost && idx == bt_nitems(p) - 1;
	return bt_pin_x(t, bt_item_child(p, idx), next);
fail:
	bt_unpin(t, child);
	return rc;
}

/* The insert under the exclusive structure lock (P5). */
static int insert_locked(btree *t, wd_xid xid, wd_lsn prev, const void *key,
			 size_t klen, wd_tid tid, wd_lsn *lsn)
{
	wd_tid none = {WD_INVALID_BLKNO, 0};
	bm_buf *cur, *next;
	bool found;
	bool rightmost = true; /* the root is the last page of its level */
	int rc = ensure_root_room(t, key, klen);
	if (rc || (rc = bt_pin_x(t, t->root, &cur)) != 0)
		return rc;
	while (!(bt_flags(bufmgr_page(cur)) & BTF_LEAF)) {
		rc = step_down(t, cur, key, klen, &rightmost, &next);
		bt_unpin(t, cur);
		if (rc)
			return rc;
		cur = next;
	}
	uint32_t i = bt_leaf_search(bufmgr_page(cur), key, klen, &found);
	if (found)
		rc = err_set(WD_EEXIST, "btree rel %u: key already present", t->rel);
	else
		rc = bt_leaf_change(t, cur, false, BTREE_INSERT_LEAF, xid, prev, i, key, klen,
				    tid, none, lsn);
	bt_unpin(t, cur);
	return rc;
}

int bt_insert_pessimistic(btree *t, wd_xid xid, wd_lsn prev, const void *key,
			  size_t klen, wd_tid tid, wd_lsn *lsn)
{
	bt_lock_excl(t);
	int rc = insert_locked(t, xid, prev, key, klen, tid, lsn);
	bt_unlock(t);
	return rc;
}
