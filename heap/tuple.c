/*
 * tuple.c - byte-level helpers of heap pages that the changes and their
 * redo share, so both produce the very same bytes (README I3): the tuple
 * format, tidying a page after a change, the overflow page format, and a
 * page's free-space category.
 */
#include <string.h>

#include "heap/heap_internal.h"

/* Bytes of a tuple with a klen-byte key and a vlen-byte value, inline or
 * as an overflow pointer. */
uint32_t heap_tuple_len(uint32_t klen, uint64_t vlen, bool overflow)
{
	return HT_HDR + klen + (overflow ? HT_OVF_PTR : (uint32_t)vlen);
}

/* Writes the tuple bytes (heap_tuple_len of them) to out. */
void heap_tuple_build(uint8_t *out, const void *key, uint32_t klen, const void *val,
		      uint64_t vlen, bool overflow, wd_blkno ovf_first)
{
	out[HT_FLAGS] = overflow ? HT_F_OVERFLOW : 0;
	out[HT_RESERVED] = 0;
	put_le16(out + HT_KLEN, (uint16_t)klen);
	put_le64(out + HT_VLEN, vlen);
	if (klen)
		memcpy(out + HT_HDR, key, klen);
	if (overflow)
		put_le32(out + HT_HDR + klen, ovf_first);
	else if (vlen)
		memcpy(out + HT_HDR + klen, val, (size_t)vlen);
}

/*
 * Parses and checks a tuple item of len bytes: the lengths in its header
 * must add up to len exactly. WD_ECORRUPT otherwise (the caller adds the
 * block and slot to the detail).
 */
int heap_tuple_parse(const uint8_t *item, uint32_t len, heap_tuple *t)
{
	if (len < HT_HDR)
		return err_set(WD_ECORRUPT, "tuple of %u bytes is shorter than its header", len);
	t->flags = item[HT_FLAGS];
	t->klen = get_le16(item + HT_KLEN);
	t->vlen = get_le64(item + HT_VLEN);
	t->key = item + HT_HDR;
	if (t->flags & ~HT_F_OVERFLOW)
		return err_set(WD_ECORRUPT, "tuple flags 0x%02x unknown", t->flags);
	if (len != heap_tuple_len(t->klen, t->vlen, t->flags & HT_F_OVERFLOW) ||
	    (!(t->flags & HT_F_OVERFLOW) && t->vlen > len))
		return err_set(WD_ECORRUPT, "tuple of %u bytes with key %u and value %llu bytes",
			       len, t->klen, (unsigned long long)t->vlen);
	if (t->flags & HT_F_OVERFLOW) {
		t->val = NULL;
		t->ovf_first = get_le32(item + HT_HDR + t->klen);
	} else {
		t->val = item + HT_HDR + t->klen;
		t->ovf_first = WD_INVALID_BLKNO;
	}
	return 0;
}

/*
 * After every change of a heap page: drops trailing unused line pointers
 * and zeroes the free hole [lower, upper). A full-page image leaves the
 * hole out and restores it as zeroes, so a hole that is always zero keeps
 * the page identical whether it was rebuilt from an image or by replaying
 * changes (I3), and an empty page identical to a freshly formatted one.
 */
void heap_page_tidy(uint8_t *p)
{
	page_trim_slots(p);
	memset(p + page_lower(p), 0, page_upper(p) - page_lower(p));
}

/*
 * heap_page_tidy for a change made in place on a page that was tidy before
 * it, whose hole was then [old_lower, old_upper): drops trailing unused
 * line pointers and zeroes only the bytes of the new hole that lay outside
 * the old one. The rest of the new hole was in the old hole, which was
 * zero (I3), and page_item_add/replace/clear never leave bytes they wrote
 * inside the hole that results, so the page ends byte for byte as
 * heap_page_tidy would leave it, without clearing the whole hole (up to a
 * page) on every insert. Redo uses heap_page_tidy: a page restored from an
 * image or read from disk is tidied whole.
 */
void heap_page_tidy_from(uint8_t *p, uint32_t old_lower, uint32_t old_upper)
{
	uint32_t lower, upper, from;
	page_trim_slots(p);
	lower = page_lower(p);
	upper = page_upper(p);
	if (lower < old_lower) /* line pointers dropped, or the hole moved down */
		memset(p + lower, 0, (old_lower < upper ? old_lower : upper) - lower);
	from = old_upper > lower ? old_upper : lower;
	if (upper > from) /* items removed or shrunk: their old bytes */
		memset(p + from, 0, upper - from);
}

/* Formats p as an overflow page holding chunk[0, len) and pointing at next. */
void heap_ovf_format(uint8_t *p, uint32_t ps, wd_blkno next, const void *chunk,
		     uint32_t len)
{
	uint8_t *sp;
	page_init(p, ps, PAGE_KIND_OVERFLOW, HOVF_SPECIAL);
	memcpy(p + PAGE_HEADER_SIZE, chunk, len);
	/* lower marks the end of the chunk (4-aligned, as page_verify wants) */
	put_le32(p + PH_LOWER, PAGE_HEADER_SIZE + ((len + 3u) & ~3u));
	sp = page_special_ptr(p);
	put_le32(sp + HOVF_NEXT, next);
	put_le32(sp + HOVF_LEN, len);
}

/* Reads the chain link and chunk length of overflow page p; WD_ECORRUPT if
 * p is not an overflow page or its length does not fit. */
int heap_ovf_parse(const uint8_t *p, uint32_t ps, wd_blkno *next, uint32_t *len)
{
	const uint8_t *sp;
	if (page_kind(p) != PAGE_KIND_OVERFLOW || page_special(p) != ps - HOVF_SPECIAL)
		return err_set(WD_ECORRUPT, "%s page where an overflow page was expected",
			       page_kind_name(page_kind(p)));
	sp = p + page_special(p);
	*next = get_le32(sp + HOVF_NEXT);
	*len = get_le32(sp + HOVF_LEN);
	if (*len > ps - PAGE_HEADER_SIZE - HOVF_SPECIAL)
		return err_set(WD_ECORRUPT, "overflow chunk of %u bytes", *len);
	return 0;
}

/*
 * The free-space category of a page (README "FSM"): FSM_CAT_EMPTY for a
 * page with no tuple (new, or every tuple deleted: it may also become an
 * overflow page), 0 for a page that is not a heap page, else the free bytes
 * (with a line pointer) divided by the unit, capped at FSM_CAT_MAX_PARTIAL.
 * Rounding down keeps FSM-I1: an entry never promises more than is there.
 */
unsigned heap_page_category(const heap *h, const uint8_t *p)
{
	uint32_t c;
	if (page_kind(p) == PAGE_KIND_NONE)
		return FSM_CAT_EMPTY;
	if (page_kind(p) != PAGE_KIND_HEAP)
		return 0;
	if (page_nslots(p) == 0)
		return FSM_CAT_EMPTY;
	c = page_free_space(p) / h->unit;
	return c > FSM_CAT_MAX_PARTIAL ? FSM_CAT_MAX_PARTIAL : c;
}
