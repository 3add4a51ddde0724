/*
 * redo.c - the UNDO resource manager: the decoders of its two records
 * (undo_append_decode, undo_clr_decode, shared with the transaction
 * table), the redo routine that repeats an append on its page with the
 * helpers the append used (README I3), waldump's describe routine, and
 * undo_rmgr_register.
 */
#include <stdio.h>
#include <string.h>

#include "undo/undo_internal.h"
#include "wal/rmgr.h"

/* WD_ECORRUPT naming the record. */
static int bad_record(const wal_decoded *rec, const char *why)
{
	const char *name = wal_record_name(rec->rmgr, rec->type);
	return err_set(WD_ECORRUPT, "UNDO record at " LSN_FMT " (%s): %s", LSN_ARGS(rec->lsn),
		       name ? name : "unknown type", why);
}

/* The fields of w from rec's main data and blocks. */
static void fill_write(const wal_decoded *rec, undo_write *w)
{
	const uint8_t *m = rec->main_data;
	const wal_block_ref *b0 = &rec->blocks[0];
	memset(w, 0, sizeof *w);
	w->xid = rec->xid;
	w->blk = b0->blk;
	w->prev_blk = rec->nblocks == 2 ? rec->blocks[1].blk : WD_INVALID_BLKNO;
	w->seq = get_le32(m + UA_SEQ);
	w->off = get_le32(m + UA_OFF);
	w->len = get_le32(m + UA_LEN);
	w->data = b0->image_len ? NULL : b0->data;
	w->rec = get_le64(m + UA_REC);
	w->init = m[UA_FLAGS] & UA_F_INIT;
	w->ends = m[UA_FLAGS] & UA_F_ENDS;
	w->starts = rec->undo != 0;
}

int undo_append_decode(const wal_decoded *rec, uint32_t ps, undo_write *w)
{
	const uint8_t *m = rec->main_data;
	const wal_block_ref *b0 = &rec->blocks[0];
	if (rec->type != UNDO_APPEND || rec->main_len != UA_MAIN || rec->nblocks < 1 ||
	    rec->nblocks > 2)
		return bad_record(rec, "bad block count or main data length");
	fill_write(rec, w);
	if ((m[UA_FLAGS] & ~(UA_F_INIT | UA_F_ENDS)) || m[1] || m[2] || m[3])
		return bad_record(rec, "unknown flags");
	if (b0->rel != UNDO_REL || (rec->nblocks == 2 && rec->blocks[1].rel != UNDO_REL))
		return bad_record(rec, "a block of another relation");
	if (w->init != !!(b0->flags & WAL_BLK_WILL_INIT) || (rec->nblocks == 2 && !w->init))
		return bad_record(rec, "the page formatted and its flags disagree");
	if (w->off < UNDO_DATA_START || w->off > ps || w->len == 0 || w->len > ps - w->off ||
	    (w->init && w->off != UNDO_DATA_START))
		return bad_record(rec, "bytes outside the page");
	if (!b0->image_len && b0->data_len != w->len)
		return bad_record(rec, "block data length is not the length written");
	if (w->rec == 0 || (w->starts && (rec->undo != w->rec ||
					  w->rec != UNDO_PTR(w->blk, w->off))))
		return bad_record(rec, "the record started is not where its bytes go");
	return 0;
}

int undo_clr_decode(const wal_decoded *rec, undo_ptr *undone, undo_ptr *next)
{
	if (rec->type != UNDO_CLR || rec->main_len != UC_MAIN || rec->nblocks != 0)
		return bad_record(rec, "bad block count or main data length");
	*undone = get_le64(rec->main_data + UC_UNDONE);
	*next = get_le64(rec->main_data + UC_NEXT);
	return 0;
}

/* Redo of w on block i of its record: 0 the page written, 1 the previous
 * page of the chain, linked to it. */
static int apply_block(const wal_decoded *rec, unsigned i, uint8_t *p, uint32_t ps,
		       const undo_write *w)
{
	if ((i == 1 || !w->init) && page_kind(p) != PAGE_KIND_UNDO)
		return bad_record(rec, "a change of a page that is not an undo page");
	if (i == 1) {
		undo_page_link(p, w->blk);
		return 0;
	}
	if (!w->data)
		return bad_record(rec, "no bytes to write");
	if (!w->init && undo_page_used(p) != w->off)
		return bad_record(rec, "bytes not where the page's written bytes end");
	undo_page_write(p, ps, w);
	return 0;
}

/* Block i of rec: applied if redo_fetch_block says the page is older. */
static int redo_block(redo_ctx *ctx, const wal_decoded *rec, unsigned i, const undo_write *w)
{
	redo_action a;
	bm_buf *buf;
	int rc = redo_fetch_block(ctx, rec, i, &buf, &a);
	if (rc != 0)
		return rc;
	if (a == REDO_APPLY && (rc = apply_block(rec, i, bufmgr_page(buf), ctx->page_size, w)) == 0)
		redo_page_done(ctx, rec, buf);
	redo_release(ctx, buf);
	return rc;
}

/* The redo routine: UNDO_APPEND changes one or two pages; UNDO_CLR none
 * (it is read by recovery's analysis, undo_xtab_note). */
static int undo_redo(void *vctx, const wal_decoded *rec)
{
	redo_ctx *ctx = vctx;
	undo_ptr undone, next;
	undo_write w;
	int rc;
	if (rec->type == UNDO_CLR)
		return undo_clr_decode(rec, &undone, &next);
	if ((rc = undo_append_decode(rec, ctx->page_size, &w)) != 0)
		return rc;
	rc = redo_block(ctx, rec, 0, &w);
	if (rc == 0 && rec->nblocks == 2)
		rc = redo_block(ctx, rec, 1, &w);
	return rc;
}

/* One line for waldump, e.g. "blk 5 off 64 bytes 120, formats the page
 * (chain page 1, after blk 4), record 5/64 starts here and ends". */
static void describe_append(const undo_write *w, char *buf, size_t cap)
{
	char fmt[80] = "", p[32];
	if (w->init && w->prev_blk != WD_INVALID_BLKNO)
		snprintf(fmt, sizeof fmt, ", formats the page (chain page %u, after blk %u)",
			 w->seq, w->prev_blk);
	else if (w->init)
		snprintf(fmt, sizeof fmt, ", formats the page (chain page %u)", w->seq);
	snprintf(buf, cap, "blk %u off %u bytes %u%s%s, record %s %s%s", w->blk, w->off, w->len,
		 w->data ? "" : " (as page image)", fmt, undo_ptr_str(w->rec, p, sizeof p),
		 w->starts ? "starts here" : "continues", w->ends ? " and ends" : "");
}

static void undo_describe(const wal_decoded *rec, char *buf, size_t cap)
{
	char a[32], b[32];
	undo_ptr undone, next;
	undo_write w;
	if (rec->type == UNDO_CLR && undo_clr_decode(rec, &undone, &next) == 0)
		snprintf(buf, cap, "undone=%s undo_next=%s", undo_ptr_str(undone, a, sizeof a),
			 undo_ptr_str(next, b, sizeof b));
	else if (rec->type == UNDO_APPEND && undo_append_decode(rec, PAGE_SIZE_MAX, &w) == 0)
		describe_append(&w, buf, cap);
	else
		snprintf(buf, cap, "malformed (%u blocks, main data %u bytes)", rec->nblocks,
			 rec->main_len);
}

static const wal_rmgr_ops undo_ops = {undo_redo, undo_describe};

int undo_rmgr_register(void)
{
	/* fails only for other routines under the same id: a programming
	 * error, reported (release builds must see it too) */
	int rc = wal_rmgr_register(WAL_RMGR_UNDO, &undo_ops);
	return rc ? err_wrap(rc, "registering the UNDO resource manager") : 0;
}
