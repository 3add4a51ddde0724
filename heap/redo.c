/*
 * redo.c - the HEAP resource manager: redo routines that repeat each
 * change on its page with the same helpers the change used (so the bytes
 * are the same, README I3), describe routines for waldump, and
 * heap_rmgr_register. redo_fetch_block applies the pageLSN test (I4) and
 * restores full-page images; a record is applied only on REDO_APPLY.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "heap/heap_internal.h"
#include "wal/rmgr.h"

/* WD_ECORRUPT naming the record. */
static int bad_record(const wal_decoded *rec, const char *why)
{
	return err_set(WD_ECORRUPT, "HEAP record at " LSN_FMT " (%s): %s", LSN_ARGS(rec->lsn),
		       wal_record_name(rec->rmgr, rec->type) ? wal_record_name(rec->rmgr, rec->type)
							     : "unknown type",
		       why);
}

/* The expected main-data length of each record type (0: unknown type). */
static uint32_t main_len_of(unsigned type)
{
	switch (type) {
	case HEAP_INSERT: return HR_INSERT_MAIN;
	case HEAP_UPDATE: return HR_UPDATE_MAIN;
	case HEAP_DELETE: return HR_DELETE_MAIN;
	case HEAP_OVERFLOW_WRITE: return HR_OVF_WRITE_MAIN;
	case HEAP_OVERFLOW_FREE: return HR_OVF_FREE_MAIN;
	default: return 0;
	}
}

/* Redo of HEAP_INSERT on page p: the tuple must land in the recorded slot. */
static int apply_insert(const wal_decoded *rec, uint8_t *p, uint32_t ps)
{
	const wal_block_ref *b = &rec->blocks[0];
	unsigned slot = get_le16(rec->main_data);
	int got;
	if (rec->main_data[2] & HR_F_INIT)
		page_init(p, ps, PAGE_KIND_HEAP, 0);
	else if (page_kind(p) != PAGE_KIND_HEAP)
		return bad_record(rec, "insert into a page that is not a heap page");
	got = page_item_add(p, b->data, b->data_len, PAGE_SLOT_NEW);
	if (got < 0 || (unsigned)got != slot)
		return bad_record(rec, "the tuple does not go to its recorded slot");
	heap_page_tidy(p);
	return 0;
}

/* Redo of HEAP_UPDATE and HEAP_DELETE on page p. */
static int apply_update_delete(const wal_decoded *rec, uint8_t *p)
{
	unsigned slot = get_le16(rec->main_data);
	uint32_t len;
	if (page_kind(p) != PAGE_KIND_HEAP || !page_item(p, slot, &len))
		return bad_record(rec, "no tuple in the recorded slot");
	if (rec->type == HEAP_DELETE)
		page_item_clear(p, slot);
	else if (page_item_replace(p, slot, rec->blocks[0].data, rec->blocks[0].data_len) != 0)
		return bad_record(rec, "the new tuple does not fit");
	heap_page_tidy(p);
	return 0;
}

/* Redo of the overflow records, which rebuild the page from nothing. */
static int apply_overflow(const wal_decoded *rec, uint8_t *p, uint32_t ps)
{
	const wal_block_ref *b = &rec->blocks[0];
	if (rec->type == HEAP_OVERFLOW_FREE) {
		page_init(p, ps, PAGE_KIND_HEAP, 0);
		return 0;
	}
	if (get_le32(rec->main_data + 4) != b->data_len ||
	    b->data_len > ps - PAGE_HEADER_SIZE - HOVF_SPECIAL)
		return bad_record(rec, "overflow chunk length");
	heap_ovf_format(p, ps, get_le32(rec->main_data), b->data, b->data_len);
	return 0;
}

/* The redo routine: one block per record; applies it when redo_fetch_block
 * says the page is older than the record. */
static int heap_redo(void *vctx, const wal_decoded *rec)
{
	redo_ctx *ctx = vctx;
	redo_action a;
	bm_buf *buf;
	uint8_t *p;
	int rc;

	if (rec->nblocks != 1 || !main_len_of(rec->type) || rec->main_len != main_len_of(rec->type))
		return bad_record(rec, "bad block count or main data length");
	if ((rc = redo_fetch_block(ctx, rec, 0, &buf, &a)) != 0)
		return rc;
	if (a == REDO_APPLY) {
		p = bufmgr_page(buf);
		if (rec->type == HEAP_INSERT)
			rc = apply_insert(rec, p, ctx->page_size);
		else if (rec->type == HEAP_UPDATE || rec->type == HEAP_DELETE)
			rc = apply_update_delete(rec, p);
		else
			rc = apply_overflow(rec, p, ctx->page_size);
		if (rc == 0)
			redo_page_done(ctx, rec, buf);
	}
	redo_release(ctx, buf);
	return rc;
}

/* "key 12 bytes, value 400 bytes" (+ where an overflowed value lives). */
static void describe_tuple(const wal_block_ref *b, char *buf, size_t cap)
{
	heap_tuple t;
	if (heap_tuple_parse(b->data, b->data_len, &t) != 0)
		snprintf(buf, cap, "bad tuple of %u bytes", b->data_len);
	else if (t.flags & HT_F_OVERFLOW)
		snprintf(buf, cap, "key %u bytes, value %llu bytes in overflow from blk %u",
			 t.klen, (unsigned long long)t.vlen, t.ovf_first);
	else
		snprintf(buf, cap, "key %u bytes, value %llu bytes", t.klen,
			 (unsigned long long)t.vlen);
}

/* One line for waldump: "insert slot 3 (key 12 bytes, value 400 bytes)". */
static void heap_describe(const wal_decoded *rec, char *buf, size_t cap)
{
	char tup[96];
	const uint8_t *m = rec->main_data;
	if (rec->nblocks != 1 || rec->main_len != main_len_of(rec->type)) {
		snprintf(buf, cap, "malformed (%u blocks, main data %u bytes)", rec->nblocks,
			 rec->main_len);
		return;
	}
	if (rec->type == HEAP_INSERT || rec->type == HEAP_UPDATE)
		describe_tuple(&rec->blocks[0], tup, sizeof tup);
	if (rec->type == HEAP_INSERT)
		snprintf(buf, cap, "insert slot %u%s (%s)", get_le16(m),
			 (m[2] & HR_F_INIT) ? " on a new page" : "", tup);
	else if (rec->type == HEAP_UPDATE)
		snprintf(buf, cap, "update slot %u in place (%s)", get_le16(m), tup);
	else if (rec->type == HEAP_DELETE)
		snprintf(buf, cap, "delete slot %u", get_le16(m));
	else if (rec->type == HEAP_OVERFLOW_WRITE && get_le32(m) == WD_INVALID_BLKNO)
		snprintf(buf, cap, "overflow chunk %u bytes, end of chain", get_le32(m + 4));
	else if (rec->type == HEAP_OVERFLOW_WRITE)
		snprintf(buf, cap, "overflow chunk %u bytes, next blk %u", get_le32(m + 4),
			 get_le32(m));
	else
		snprintf(buf, cap, "overflow page freed, becomes an empty heap page");
}

static const wal_rmgr_ops heap_ops = {heap_redo, heap_describe};

void heap_rmgr_register(void)
{
	/* fails only for an unknown id or other ops: a programming error */
	int rc = wal_rmgr_register(WAL_RMGR_HEAP, &heap_ops);
	assert(rc == 0);
	(void)rc;
}
