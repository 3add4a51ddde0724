/*
 * fuzz_page.c - fuzz target "page": one page of a relation file, decoded
 * as `walden inspect` and `walden check` decode it. page_verify (checksum,
 * header bounds, version), page_bounds_check, then by kind: heap line
 * pointers and tuples (heap_slot_view_decode, and catalog_decode on every
 * inline value that could be a catalog entry), overflow pages, FSM pages,
 * B+tree pages and their items, B+tree metapages, undo pages and the
 * records starting on them; any other kind as raw line pointers
 * (page_item_checked). Every decoder must stay inside the page whatever
 * the header says.
 *
 * Input: mode byte, then the page (padded with zeroes or cut to the page
 * size).
 *   bit 0 (FZ_FIX)  store the correct checksum for the block first
 *   bits 1-2        page size 4096 << n
 *   bits 3-7        block number (the checksum and FSM pages depend on it)
 */
#include <stdlib.h>
#include <string.h>

#include "btree/btree.h"
#include "fuzz/fuzz.h"
#include "heap/heap.h"
#include "storage/page.h"
#include "txn/txn_internal.h"
#include "undo/undo.h"

const char fz_target_name[] = "page";

/* A heap tuple's inline value read as a catalog entry (catalog pages are
 * heap pages: walden inspect --table on the catalog reads them so). */
static void catalog_value(const heap_item_view *v)
{
	char name[64];
	db_table_info ti;
	uint32_t n = v->klen < sizeof name - 1 ? v->klen : (uint32_t)sizeof name - 1;
	if (!v->val)
		return;
	memcpy(name, v->key, n);
	name[n] = '\0';
	fz_clear_error();
	fz_check_rc(catalog_decode(name, v->val, v->vlen, &ti), 0, "catalog_decode");
}

static void heap_page(const uint8_t *p, uint32_t ps)
{
	uint32_t n = page_nslots(p);
	for (uint32_t s = 0; s < n; s++) {
		heap_item_view v;
		fz_clear_error();
		if (fz_check_rc(heap_slot_view_decode(p, ps, s, &v), 0, "heap_slot_view_decode") == 0)
			catalog_value(&v);
	}
}

static void btree_page(const uint8_t *p, uint32_t ps)
{
	btree_page_view pv;
	fz_clear_error();
	if (fz_check_rc(btree_page_view_decode(p, ps, &pv), 0, "btree_page_view_decode") != 0)
		return;
	for (uint32_t i = 0; i < pv.nitems; i++) {
		btree_item_view v;
		fz_clear_error();
		fz_check_rc(btree_item_view_decode(p, ps, i, &v), 0, "btree_item_view_decode");
	}
}

/* The walk of walden inspect and walden check: v.first, then rv.end. */
static void undo_page(const uint8_t *p, uint32_t ps)
{
	undo_page_view v;
	undo_rec_view rv;
	unsigned n = 0;
	fz_clear_error();
	if (fz_check_rc(undo_page_view_decode(p, ps, &v), 0, "undo_page_view_decode") != 0)
		return;
	for (uint32_t off = v.first; off && off < v.used; off = rv.end) {
		fz_clear_error();
		if (fz_check_rc(undo_rec_view_decode(p, ps, off, &rv), 0,
				"undo_rec_view_decode") != 0)
			break;
		if (rv.end <= off || ++n > ps)
			abort(); /* the walk must move forward */
	}
}

static void raw_slots(const uint8_t *p, uint32_t ps)
{
	uint32_t n = page_nslots(p);
	for (uint32_t s = 0; s < n; s++) {
		const uint8_t *it;
		uint32_t len;
		fz_clear_error();
		if (fz_check_rc(page_item_checked(p, ps, s, &it, &len), 0, "page_item_checked") == 0 &&
		    it && (it < p || it + len > p + ps))
			abort();
	}
}

static void decode_kind(const uint8_t *p, uint32_t ps, wd_blkno blk)
{
	heap_overflow_view ov;
	heap_fsm_view fv;
	btree_meta_view mv;
	fz_clear_error();
	switch (page_kind(p)) {
	case PAGE_KIND_HEAP: heap_page(p, ps); break;
	case PAGE_KIND_OVERFLOW:
		fz_check_rc(heap_overflow_view_decode(p, ps, &ov), 0, "heap_overflow_view_decode");
		break;
	case PAGE_KIND_FSM:
		fz_check_rc(heap_fsm_view_decode(p, ps, blk, &fv), 0, "heap_fsm_view_decode");
		break;
	case PAGE_KIND_BTREE: btree_page(p, ps); break;
	case PAGE_KIND_META:
		fz_check_rc(btree_meta_view_decode(p, ps, &mv), 0, "btree_meta_view_decode");
		break;
	case PAGE_KIND_UNDO: undo_page(p, ps); break;
	default: raw_slots(p, ps); break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_input in = fz_input_split(data, size);
	uint32_t ps = PAGE_SIZE_MIN << ((in.mode >> 1) & 3);
	wd_blkno blk = in.mode >> 3;
	uint8_t *p = fz_copy_padded(&in, ps);
	int v;

	if (in.mode & FZ_FIX)
		page_checksum_set(p, ps, blk);
	fz_clear_error();
	v = fz_check_rc(page_verify(p, ps, blk, "fuzz"), PAGE_VERIFY_NEW, "page_verify");
	fz_clear_error();
	/* inspect decodes a page whose bounds hold even if its checksum fails */
	if (v != PAGE_VERIFY_NEW &&
	    fz_check_rc(page_bounds_check(p, ps), 0, "page_bounds_check") == 0) {
		if (v == 0)
			fz_accepted++;
		decode_kind(p, ps, blk);
	}
	free(p);
	return 0;
}
