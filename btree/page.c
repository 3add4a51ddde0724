/*
 * page.c - the B+tree page and metapage formats (README "Formats"): item
 * encoding, key order, binary search within a page, the metapage fields.
 * Pure byte work on page images; no latches, no I/O.
 */
#include <string.h>

#include "btree/bt_internal.h"

/*
 * Item i's key. Leaf items are [tid 6][key], internal items [child 4][key];
 * an internal item of exactly 4 bytes has the empty key (minus infinity
 * when it is item 0). hdr is the item header size of the page.
 */
static inline const uint8_t *item_key(const uint8_t *p, uint32_t i, uint32_t hdr,
				      uint32_t *klen)
{
	uint32_t len;
	const uint8_t *it = bt_item(p, i, &len);
	if (len < hdr) {
		*klen = 0;
		return p; /* damaged: callers that care check with btree_check */
	}
	*klen = len - hdr;
	return it + hdr;
}

static inline uint32_t item_hdr(const uint8_t *p)
{
	return (bt_flags(p) & BTF_LEAF) ? BT_TID_SIZE : BT_CHILD_SIZE;
}

const uint8_t *bt_key(const uint8_t *p, uint32_t i, uint32_t *klen)
{
	if (i >= bt_nitems(p)) {
		*klen = 0;
		return p;
	}
	return item_key(p, i, item_hdr(p), klen);
}

/*
 * Search warm-up. On a page that is not in the CPU caches, every probe of a
 * binary search waits for two misses in turn: the line pointer, then the
 * key it points at. Nine probes of a full 8 KiB leaf are eighteen waits.
 * This issues the misses the first probes will take all at once instead:
 * prefetches of the whole line-pointer array, then of the keys at the
 * positions the first BT_WARM_LEVELS levels of the search can probe (the
 * mids of [lo, hi) exactly as the loop computes them: 1 + 2 + 4 + 8 = 15).
 * They arrive together, in about the time of one miss each round, and the
 * search then finds its first four probes in cache. Prefetches are hints:
 * they change nothing and fault on nothing; an offset that points past the
 * special area (a damaged page) is not prefetched.
 */
#define BT_WARM_MIN_ITEMS 64u /* below: a line-pointer array of 4 lines */

/*
 * The probes of the first BT_WARM_LEVELS levels of a search of n items,
 * level by level (the first probe first: the one the search waits for
 * first), as a complete binary tree in an array (node i's halves are nodes
 * 2i+1 and 2i+2), in an unrolled loop: about half the instructions of
 * the recursion it replaced. With a page, each probe's key is
 * prefetched, and the sum of the key offsets is returned: warm_search
 * stores it, because a compiler may delete a loop whose only effect is a
 * prefetch (gcc 12 did, when this loop returned nothing). With mids
 * instead, the probes are stored there (bt_warm_probes, for the tests).
 */
static inline uint32_t warm_walk(const uint8_t *p, uint32_t n, uint32_t special,
				 uint32_t *mids)
{
	uint32_t lo[BT_WARM_NODES], hi[BT_WARM_NODES], k = 0, sum = 0;
	lo[0] = 0;
	hi[0] = n;
#pragma GCC unroll 16
	for (uint32_t i = 0; i < BT_WARM_NODES; i++) {
		uint32_t mid = lo[i] + (hi[i] - lo[i]) / 2, off;
		if (lo[i] < hi[i]) {
			if (p) {
				off = get_le16(p + PAGE_HEADER_SIZE + mid * PAGE_LP_SIZE);
				if (off + BT_TID_SIZE < special)
					__builtin_prefetch(p + off + BT_TID_SIZE);
				sum += off;
			}
			if (mids)
				mids[k++] = mid;
		} else {
			mid = hi[i]; /* empty: so are its halves */
		}
		if (2 * i + 2 < BT_WARM_NODES) {
			lo[2 * i + 1] = lo[i];
			hi[2 * i + 1] = mid;
			lo[2 * i + 2] = mid < hi[i] ? mid + 1 : hi[i];
			hi[2 * i + 2] = hi[i];
		}
	}
	return mids ? k : sum;
}

uint32_t bt_warm_probes(uint32_t n, uint32_t mids[BT_WARM_NODES])
{
	return warm_walk(NULL, n, 0, mids);
}

/*
 * The leaf page this thread searched last. Searched again, it is in cache
 * (a sequential load searches its rightmost leaf at every put), and the
 * warm-up would only prefetch lines already there: about 330 instructions.
 * A hint per thread, never shared: a frame that holds another page by
 * now costs at most one search without its warm-up.
 */
static __thread const uint8_t *last_searched;
static __thread uint32_t last_warm_sum; /* keeps the warm-up (warm_walk) */

static void warm_search(const uint8_t *p, uint32_t n)
{
	const uint8_t *lps = p + PAGE_HEADER_SIZE, *end = lps + n * PAGE_LP_SIZE;
	if (n < BT_WARM_MIN_ITEMS || p == last_searched)
		return;
	last_searched = p;
	for (const uint8_t *a = lps; a < end; a += 64)
		__builtin_prefetch(a);
	__builtin_prefetch(end - 1); /* the array need not start a line */
	last_warm_sum = warm_walk(p, n, get_le32(p + PH_SPECIAL), NULL);
}

/*
 * Leaf search: a binary search that stops at an equal key, so a lookup that
 * finds its key compares no more keys than it must. It starts with the
 * warm-up above; internal pages do not (few, and hot: measured no gain).
 */
uint32_t bt_leaf_search(const uint8_t *p, const void *key, size_t klen, bool *found)
{
	uint32_t lo = 0, hi = bt_nitems(p);
	warm_search(p, hi);
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2, ml;
		const uint8_t *mk = item_key(p, mid, BT_TID_SIZE, &ml);
		int c = bt_keycmp(mk, ml, key, klen);
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			if (found)
				*found = true;
			return mid;
		}
	}
	if (found)
		*found = false;
	return lo;
}

uint32_t bt_child_search(const uint8_t *p, const void *key, size_t klen, int dir)
{
	uint32_t n = bt_nitems(p), lo = 1, hi = n;
	if (!key)
		return dir < 0 && n ? n - 1 : 0;
	/* first index >= 1 whose key > key; the child is the one before */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2, ml;
		const uint8_t *mk = item_key(p, mid, BT_CHILD_SIZE, &ml);
		int c = bt_keycmp(mk, ml, key, klen);
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			return mid; /* key equals separator mid: child mid */
		}
	}
	return lo - 1;
}

uint32_t bt_leaf_item(uint8_t *buf, const void *key, size_t klen, wd_tid tid)
{
	put_le32(buf, tid.blk);
	put_le16(buf + 4, tid.slot);
	if (klen)
		memcpy(buf + BT_TID_SIZE, key, klen);
	return (uint32_t)(BT_TID_SIZE + klen);
}

uint32_t bt_internal_item(uint8_t *buf, const void *key, size_t klen, wd_blkno child)
{
	put_le32(buf, child);
	if (klen)
		memcpy(buf + BT_CHILD_SIZE, key, klen);
	return (uint32_t)(BT_CHILD_SIZE + klen);
}

void bt_meta_decode(const uint8_t *p, bt_meta *m)
{
	const uint8_t *s = p + page_special(p);
	m->root = get_le32(s + BTM_ROOT);
	m->level = get_le32(s + BTM_LEVEL);
	m->free_head = get_le32(s + BTM_FREE);
	m->nfree = get_le32(s + BTM_NFREE);
}

/* Block 0 must be our metapage: kind, special size, magic, version. */
int bt_meta_check(const uint8_t *p, uint32_t ps, wd_relid rel)
{
	const uint8_t *s = p + page_special(p);
	if (page_kind(p) != PAGE_KIND_META || page_special(p) != ps - BT_META_SPECIAL)
		return err_set(WD_ECORRUPT, "btree rel %u: block 0 is a %s page, not a metapage",
			       rel, page_kind_name(page_kind(p)));
	if (get_le32(s + BTM_MAGIC) != BT_META_MAGIC)
		return err_set(WD_ECORRUPT, "btree rel %u: block 0: bad metapage magic 0x%08x",
			       rel, get_le32(s + BTM_MAGIC));
	if (get_le32(s + BTM_VERSION) != BT_META_VERSION)
		return err_set(WD_EVERSION, "btree rel %u: block 0: format version %u, expected %u",
			       rel, get_le32(s + BTM_VERSION), BT_META_VERSION);
	return 0;
}

/* ---- decoders for the tools (btree.h): nothing trusted ---- */

int btree_page_view_decode(const uint8_t *p, uint32_t ps, btree_page_view *v)
{
	int rc;
	memset(v, 0, sizeof *v);
	v->left = v->right = v->next_free = WD_INVALID_BLKNO;
	if ((rc = page_bounds_check(p, ps)) != 0)
		return rc;
	if (page_kind(p) != PAGE_KIND_BTREE || page_special(p) != ps - BT_SPECIAL)
		return err_set(WD_ECORRUPT, "a %s page (special at %u), not a B+tree page",
			       page_kind_name(page_kind(p)), page_special(p));
	v->level = bt_level(p);
	v->flags = bt_flags(p);
	v->left = bt_left(p);
	v->right = bt_right(p);
	v->next_free = bt_next_free(p);
	v->nitems = bt_nitems(p);
	return 0;
}

int btree_item_view_decode(const uint8_t *p, uint32_t ps, uint32_t slot,
			   btree_item_view *v)
{
	btree_page_view pv;
	const uint8_t *it;
	uint32_t len, hdr;
	int rc;
	memset(v, 0, sizeof *v);
	v->tid.blk = v->child = WD_INVALID_BLKNO;
	if ((rc = btree_page_view_decode(p, ps, &pv)) != 0 ||
	    (rc = page_item_checked(p, ps, slot, &it, &len)) != 0)
		return rc;
	hdr = (pv.flags & BTF_LEAF) ? BT_TID_SIZE : BT_CHILD_SIZE;
	if (!it || len < hdr)
		return err_set(WD_ECORRUPT, "item %u: %u bytes, shorter than its %u-byte header",
			       slot, len, hdr);
	v->key = it + hdr;
	v->klen = len - hdr;
	if (pv.flags & BTF_LEAF) {
		v->tid.blk = get_le32(it);
		v->tid.slot = get_le16(it + 4);
	} else {
		v->child = get_le32(it);
		v->minus_inf = slot == 0;
	}
	return 0;
}

int btree_meta_view_decode(const uint8_t *p, uint32_t ps, btree_meta_view *v)
{
	const uint8_t *s;
	bt_meta m;
	int rc;
	memset(v, 0, sizeof *v);
	v->root = v->free_head = WD_INVALID_BLKNO;
	if ((rc = page_bounds_check(p, ps)) != 0)
		return rc;
	if (page_kind(p) != PAGE_KIND_META || page_special(p) != ps - BT_META_SPECIAL)
		return err_set(WD_ECORRUPT, "a %s page (special at %u), not a B+tree metapage",
			       page_kind_name(page_kind(p)), page_special(p));
	s = p + page_special(p);
	v->magic = get_le32(s + BTM_MAGIC);
	v->version = get_le32(s + BTM_VERSION);
	bt_meta_decode(p, &m);
	v->root = m.root;
	v->level = m.level;
	v->free_head = m.free_head;
	v->nfree = m.nfree;
	if (v->magic != BT_META_MAGIC)
		return err_set(WD_ECORRUPT, "bad metapage magic 0x%08x", v->magic);
	if (v->version != BT_META_VERSION)
		return err_set(WD_EVERSION, "metapage format version %u, expected %u",
			       v->version, BT_META_VERSION);
	return 0;
}
