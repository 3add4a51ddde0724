/*
 * view.c - page decoders for the tools (walden inspect, walden check): a
 * tuple, a slot of a heap page, an overflow page and an FSM page, decoded
 * into views without trusting the page. They reuse the parsers the access
 * method runs on (heap_tuple_parse, heap_ovf_parse) and add the bounds
 * checks a damaged file needs. Never print; never read outside the page.
 */
#include <string.h>

#include "heap/heap_internal.h"

int heap_item_view_decode(const uint8_t *item, uint32_t len, heap_item_view *v)
{
	heap_tuple t;
	int rc;
	memset(v, 0, sizeof *v);
	v->ovf_first = WD_INVALID_BLKNO;
	if (!item)
		return err_set(WD_ECORRUPT, "no tuple bytes");
	if ((rc = heap_tuple_parse(item, len, &t)) != 0)
		return rc;
	v->flags = (t.flags & HT_F_OVERFLOW) ? HEAP_ITEM_OVERFLOW : 0;
	v->klen = t.klen;
	v->key = t.key;
	v->vlen = t.vlen;
	v->val = t.val;
	v->ovf_first = t.ovf_first;
	return 0;
}

int heap_slot_view_decode(const uint8_t *page, uint32_t page_size, uint32_t slot,
			  heap_item_view *v)
{
	const uint8_t *item;
	uint32_t len;
	int rc;
	memset(v, 0, sizeof *v);
	v->ovf_first = WD_INVALID_BLKNO;
	if (page_kind(page) != PAGE_KIND_HEAP || page_special(page) != page_size)
		return err_set(WD_ECORRUPT, "a %s page (special at %u), not a heap page",
			       page_kind_name(page_kind(page)), page_special(page));
	if ((rc = page_item_checked(page, page_size, slot, &item, &len)) != 0)
		return rc;
	if (!item)
		return WD_NOTFOUND;
	if ((rc = heap_item_view_decode(item, len, v)) != 0)
		return err_wrap(rc, "slot %u", slot);
	return 0;
}

int heap_overflow_view_decode(const uint8_t *page, uint32_t page_size,
			      heap_overflow_view *v)
{
	int rc;
	memset(v, 0, sizeof *v);
	v->next = WD_INVALID_BLKNO;
	if ((rc = page_bounds_check(page, page_size)) != 0 ||
	    (rc = heap_ovf_parse(page, page_size, &v->next, &v->len)) != 0)
		return rc;
	v->cap = page_size - PAGE_HEADER_SIZE - HOVF_SPECIAL;
	v->chunk = page + PAGE_HEADER_SIZE;
	return 0;
}

enum heap_fsm_state heap_fsm_entry(uint8_t b, uint32_t unit, uint32_t *free_min)
{
	*free_min = 0;
	if (b == FSM_UNKNOWN)
		return HEAP_FSM_UNKNOWN;
	if (b - 1u == FSM_CAT_EMPTY)
		return HEAP_FSM_EMPTY;
	*free_min = (b - 1u) * unit;
	return HEAP_FSM_SPACE;
}

int heap_fsm_view_decode(const uint8_t *page, uint32_t page_size, wd_blkno fsm_blk,
			 heap_fsm_view *v)
{
	int rc;
	memset(v, 0, sizeof *v);
	if ((rc = page_bounds_check(page, page_size)) != 0)
		return rc;
	if (page_kind(page) != PAGE_KIND_FSM || page_special(page) != page_size)
		return err_set(WD_ECORRUPT, "a %s page (special at %u), not an FSM page",
			       page_kind_name(page_kind(page)), page_special(page));
	v->n = page_size - PAGE_HEADER_SIZE;
	v->first = (wd_blkno)((uint64_t)fsm_blk * v->n);
	v->unit = page_size / 256;
	v->entry = page + PAGE_HEADER_SIZE;
	for (uint32_t i = 0; i < v->n; i++) {
		uint32_t fm;
		switch (heap_fsm_entry(v->entry[i], v->unit, &fm)) {
		case HEAP_FSM_UNKNOWN: v->unknown++; break;
		case HEAP_FSM_EMPTY: v->empty++; break;
		case HEAP_FSM_SPACE:
			if (fm == 0)
				v->full++;
			else
				v->partial++;
			break;
		}
	}
	return 0;
}
