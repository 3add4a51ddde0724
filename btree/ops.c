/*
 * ops.c - page-change operations: the small op language in which every
 * B+tree WAL record describes what it did to each page (README "Formats",
 * op list). The running code encodes ops, applies them to a private copy
 * with bt_ops_apply and logs the same bytes; redo applies them again with
 * the same function, so a redone page is byte-for-byte the original.
 */
#include <stdlib.h>
#include <string.h>

#include "btree/bt_internal.h"

void bt_bytes_put(bt_bytes *s, const void *p, uint32_t n)
{
	if (s->oom)
		return;
	if (s->cap == 0) {
		s->b = s->inl;
		s->cap = BT_BYTES_INLINE;
	}
	if (s->len + n > s->cap) {
		uint32_t cap = s->cap * 2;
		while (cap < s->len + n)
			cap *= 2;
		uint8_t *nb = s->b == s->inl ? malloc(cap) : realloc(s->b, cap);
		if (!nb) {
			s->oom = true;
			return;
		}
		if (s->b == s->inl)
			memcpy(nb, s->inl, s->len);
		s->b = nb;
		s->cap = cap;
	}
	memcpy(s->b + s->len, p, n);
	s->len += n;
}

void bt_bytes_init(bt_bytes *s)
{
	s->b = NULL;
	s->len = s->cap = 0;
	s->oom = false;
}

void bt_bytes_free(bt_bytes *s)
{
	if (s->b != s->inl)
		free(s->b);
	s->b = NULL;
	s->len = s->cap = 0;
	s->oom = false;
}

static void put_u8(bt_bytes *s, uint32_t v)
{
	uint8_t b = (uint8_t)v;
	bt_bytes_put(s, &b, 1);
}

static void put_u16(bt_bytes *s, uint32_t v)
{
	uint8_t b[2];
	put_le16(b, (uint16_t)v);
	bt_bytes_put(s, b, 2);
}

static void put_u32(bt_bytes *s, uint32_t v)
{
	uint8_t b[4];
	put_le32(b, v);
	bt_bytes_put(s, b, 4);
}

void bt_op_init(bt_bytes *s, uint32_t level, uint32_t flags, wd_blkno left,
		wd_blkno right, wd_blkno next)
{
	put_u8(s, BTOP_INIT);
	put_u16(s, level);
	put_u16(s, flags);
	put_u32(s, left);
	put_u32(s, right);
	put_u32(s, next);
}

/* The head of an op on one item: code, index and (with_len) the item's
 * length, in one append (every leaf insert, delete and tid update). */
static void put_item_op(bt_bytes *s, unsigned op, uint32_t idx, bool with_len, uint32_t len)
{
	uint8_t h[5];
	h[0] = (uint8_t)op;
	put_le16(h + 1, (uint16_t)idx);
	put_le16(h + 3, (uint16_t)len);
	bt_bytes_put(s, h, with_len ? 5 : 3);
}

void bt_op_add(bt_bytes *s, uint32_t idx, const void *item, uint32_t len)
{
	put_item_op(s, BTOP_ADD, idx, true, len);
	bt_bytes_put(s, item, len);
}

void bt_op_remove(bt_bytes *s, uint32_t idx)
{
	put_item_op(s, BTOP_REMOVE, idx, false, 0);
}

void bt_op_replace(bt_bytes *s, uint32_t idx, const void *item, uint32_t len)
{
	put_item_op(s, BTOP_REPLACE, idx, true, len);
	bt_bytes_put(s, item, len);
}

void bt_op_truncate(bt_bytes *s, uint32_t keep)
{
	put_u8(s, BTOP_TRUNCATE);
	put_u16(s, keep);
}

void bt_op_links(bt_bytes *s, wd_blkno left, wd_blkno right)
{
	put_u8(s, BTOP_LINKS);
	put_u32(s, left);
	put_u32(s, right);
}

void bt_op_flags(bt_bytes *s, uint32_t flags)
{
	put_u8(s, BTOP_FLAGS);
	put_u16(s, flags);
}

void bt_op_meta(bt_bytes *s, const bt_meta *m)
{
	put_u8(s, BTOP_META);
	put_u32(s, m->root);
	put_u32(s, m->level);
	put_u32(s, m->free_head);
	put_u32(s, m->nfree);
}

/* Formats page as an empty tree page with the given special fields. */
static void apply_init(uint8_t *page, uint32_t ps, const uint8_t *a)
{
	uint8_t *s;
	page_init(page, ps, PAGE_KIND_BTREE, BT_SPECIAL);
	s = page_special_ptr(page);
	put_le32(s + BTS_LEFT, get_le32(a + 4));
	put_le32(s + BTS_RIGHT, get_le32(a + 8));
	put_le16(s + BTS_LEVEL, get_le16(a));
	put_le16(s + BTS_FLAGS, get_le16(a + 2));
	put_le32(s + BTS_NEXT, get_le32(a + 12));
}

/* Formats page as the metapage with the fields of a. */
static void apply_meta(uint8_t *page, uint32_t ps, const uint8_t *a)
{
	uint8_t *s;
	page_init(page, ps, PAGE_KIND_META, BT_META_SPECIAL);
	s = page_special_ptr(page);
	put_le32(s + BTM_MAGIC, BT_META_MAGIC);
	put_le32(s + BTM_VERSION, BT_META_VERSION);
	memcpy(s + BTM_ROOT, a, 16);
}

/* Rebuilds page keeping items [0, keep) in order, special area unchanged:
 * a deterministic compaction, so the bytes depend only on the items. */
static int apply_truncate(uint8_t *page, uint32_t ps, uint32_t keep)
{
	uint8_t *old = malloc(ps);
	int rc = 0;
	if (!old)
		return err_set(WD_ENOMEM, "btree truncate: no memory");
	memcpy(old, page, ps);
	page_init(page, ps, PAGE_KIND_BTREE, BT_SPECIAL);
	memcpy(page_special_ptr(page), old + page_special(old), BT_SPECIAL);
	for (uint32_t i = 0; i < keep && rc == 0; i++) {
		uint32_t len;
		const uint8_t *it = page_item_const(old, i, &len);
		if (!it || page_item_add(page, it, len, i) < 0)
			rc = WD_ECORRUPT;
	}
	free(old);
	return rc;
}

/* Applies one op at ops[*pos]; advances *pos. */
static int apply_one(uint8_t *page, uint32_t ps, const uint8_t *ops, uint32_t len,
		     uint32_t *pos)
{
	static const uint8_t fixed[] = {0, 16, 4, 2, 4, 2, 8, 2, 16};
	uint32_t at = *pos, op = ops[at], n, idx;
	bool btree_page = page_kind(page) == PAGE_KIND_BTREE;
	if (op < BTOP_INIT || op > BTOP_META || at + 1 + fixed[op] > len)
		return WD_ECORRUPT;
	const uint8_t *a = ops + at + 1;
	*pos = at + 1 + fixed[op];
	if (op != BTOP_INIT && op != BTOP_META && !btree_page)
		return WD_ECORRUPT;
	idx = get_le16(a);
	switch (op) {
	case BTOP_INIT: apply_init(page, ps, a); return 0;
	case BTOP_META: apply_meta(page, ps, a); return 0;
	case BTOP_REMOVE:
		if (idx >= bt_nitems(page))
			return WD_ECORRUPT;
		page_item_remove(page, idx);
		return 0;
	case BTOP_TRUNCATE:
		return idx > bt_nitems(page) ? WD_ECORRUPT : apply_truncate(page, ps, idx);
	case BTOP_LINKS:
		put_le32(page_special_ptr(page) + BTS_LEFT, get_le32(a));
		put_le32(page_special_ptr(page) + BTS_RIGHT, get_le32(a + 4));
		return 0;
	case BTOP_FLAGS:
		put_le16(page_special_ptr(page) + BTS_FLAGS, (uint16_t)idx);
		return 0;
	}
	/* ADD and REPLACE carry an item */
	n = get_le16(a + 2);
	if (*pos + n > len)
		return WD_ECORRUPT;
	*pos += n;
	if (op == BTOP_ADD)
		return page_item_add(page, a + 4, n, idx) < 0 ? WD_ECORRUPT : 0;
	if (idx >= bt_nitems(page))
		return WD_ECORRUPT;
	return page_item_replace(page, idx, a + 4, n) < 0 ? WD_ECORRUPT : 0;
}

int bt_ops_apply(uint8_t *page, uint32_t ps, const uint8_t *ops, uint32_t len)
{
	uint32_t pos = 0;
	while (pos < len) {
		uint32_t at = pos;
		int rc = apply_one(page, ps, ops, len, &pos);
		if (rc == WD_ECORRUPT)
			return err_set(WD_ECORRUPT,
				       "btree op list: op %u at byte %u does not apply to the page",
				       ops[at], at);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * true if ops is exactly one ADD, REMOVE or REPLACE that bt_ops_apply would
 * apply to page without an error: the index is in range and the item fits
 * (the same tests as page_item_add and page_item_replace). log.c applies
 * such a list to the buffer in place after the record is in the WAL, when a
 * failure could no longer be undone, so this must never say true for a list
 * that would fail. Anything else (several ops, INIT, TRUNCATE, ...) is
 * false: log.c then takes the private-copy path.
 */
bool bt_ops_fit(const uint8_t *page, uint32_t ps, const uint8_t *ops, uint32_t len)
{
	uint32_t n, idx, ilen, f, old;
	if (len < 3 || page[PH_KIND] != PAGE_KIND_BTREE || bt_special_off(page) != ps - BT_SPECIAL)
		return false;
	n = bt_nitems(page);
	idx = get_le16(ops + 1);
	f = get_le32(page + PH_UPPER) - get_le32(page + PH_LOWER); /* without a new slot */
	if (ops[0] == BTOP_REMOVE)
		return len == 3 && idx < n;
	if ((ops[0] != BTOP_ADD && ops[0] != BTOP_REPLACE) || len < 5)
		return false;
	ilen = get_le16(ops + 3);
	if (len != 5 + ilen || ilen == 0)
		return false;
	if (ops[0] == BTOP_ADD)
		return idx <= n && idx != PAGE_SLOT_NEW && f > PAGE_LP_SIZE &&
		       ilen <= f - PAGE_LP_SIZE;
	if (idx >= n)
		return false;
	bt_item(page, idx, &old);
	return ilen <= f + old;
}
