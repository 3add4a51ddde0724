/*
 * redo.c - fetching a record's pages for redo, and the full-page-image
 * decision of the logging side (redo.h).
 */
#include <string.h>

#include "storage/page.h"
#include "storage/plant.h"
#include "wal/redo.h"
#include "wal/wal.h"

/* Makes sure the relation of block reference ref is open in the pool. */
static int open_rel(redo_ctx *ctx, const wal_block_ref *ref)
{
	return ctx->open_rel ? ctx->open_rel(ctx->open_rel_arg, ref->rel) : 0;
}

/* Pins without reading (the page is about to be replaced or rebuilt). */
static int pin_for_overwrite(redo_ctx *ctx, const wal_block_ref *ref, bm_buf **buf)
{
	int rc = bufmgr_pin(ctx->pool, ref->rel, ref->blk, BM_ZERO, buf);
	if (rc == 0)
		bufmgr_latch(*buf, BM_EXCL);
	return rc;
}

/* A restored full-page image is about to be changed by the rmgr's slotted
 * page helpers, which trust the layout: check it as page_verify checks a
 * page read from disk (the record's CRC vouches for the bytes, not for
 * the writer). An all-zero image is a new page. */
static int check_image(const wal_decoded *rec, unsigned block, const uint8_t *page,
		       uint32_t page_size)
{
	const wal_block_ref *ref = &rec->blocks[block];
	if (page_is_zero(page, page_size) || page_layout_check(page, page_size) == 0)
		return 0;
	return err_wrap(WD_ECORRUPT, "WAL record at " LSN_FMT ": full-page image of rel %u "
			"blk %u is not a sound page", LSN_ARGS(rec->lsn), ref->rel, ref->blk);
}

/* The block fetch itself: every outcome but REDO_SKIP_DPT. */
static int fetch(redo_ctx *ctx, const wal_decoded *rec, unsigned block, bm_buf **buf,
		 redo_action *action)
{
	const wal_block_ref *ref = &rec->blocks[block];
	int rc;
	if ((rc = open_rel(ctx, ref)) != 0)
		return rc;
	if (ref->flags & WAL_BLK_HAS_IMAGE) {
		/* the image replaces whatever is on disk, torn or not */
		if ((rc = pin_for_overwrite(ctx, ref, buf)) != 0)
			return rc;
		rc = walrec_restore_image(rec, block, bufmgr_page(*buf), ctx->page_size);
		if (rc == 0)
			rc = check_image(rec, block, bufmgr_page(*buf), ctx->page_size);
		if (rc != 0) {
			/* the pinned-for-overwrite buffer holds a part of the bad
			 * image under the page's tag: leave it a new (zero) page,
			 * which every redo routine refuses cleanly, not bytes
			 * the slotted-page helpers would trust */
			memset(bufmgr_page(*buf), 0, ctx->page_size);
			redo_release(ctx, *buf);
			*buf = NULL;
			return rc;
		}
		redo_page_done(ctx, rec, *buf);
		ctx->images++;
		*action = REDO_RESTORED;
		return 0;
	}
	if (ref->flags & WAL_BLK_WILL_INIT) {
		if ((rc = pin_for_overwrite(ctx, ref, buf)) != 0)
			return rc;
		memset(bufmgr_page(*buf), 0, ctx->page_size);
		ctx->applied++;
		*action = REDO_APPLY;
		return 0;
	}
	/* a checksum failure here is WD_ECORRUPT naming file and block */
	if ((rc = bufmgr_pin(ctx->pool, ref->rel, ref->blk, BM_READ, buf)) != 0)
		return rc;
	bufmgr_latch(*buf, BM_EXCL);
	/* planted bug: no pageLSN test, a page that has the change gets it again */
	if (page_lsn(bufmgr_page(*buf)) >= rec->lsn && !WD_PLANTED("redo-no-pagelsn")) {
		ctx->skip_page_lsn = page_lsn(bufmgr_page(*buf));
		ctx->page_lsn[block] = ctx->skip_page_lsn;
		ctx->skipped++;
		*action = REDO_SKIP;
	} else {
		ctx->applied++;
		*action = REDO_APPLY;
	}
	return 0;
}

int redo_fetch_block(redo_ctx *ctx, const wal_decoded *rec, unsigned block,
		     bm_buf **buf, redo_action *action)
{
	int rc;
	*buf = NULL;
	if (block >= rec->nblocks)
		return err_set(WD_EINVAL, "redo of record at " LSN_FMT ": no block %u",
			       LSN_ARGS(rec->lsn), block);
	/* the dirty page table first: a page it rules out is not even read */
	if (ctx->skip_block && ctx->skip_block(ctx->skip_block_arg, rec, block)) {
		*action = REDO_SKIP_DPT;
		rc = 0;
	} else {
		rc = fetch(ctx, rec, block, buf, action);
	}
	if (rc == 0)
		ctx->action[block] = *action;
	return rc;
}

void redo_page_done(redo_ctx *ctx, const wal_decoded *rec, bm_buf *buf)
{
	(void)ctx;
	page_set_lsn(bufmgr_page(buf), rec->lsn);
	bufmgr_mark_dirty(buf, rec->lsn);
}

void redo_release(redo_ctx *ctx, bm_buf *buf)
{
	if (!buf)
		return; /* REDO_SKIP_DPT: nothing was pinned */
	bufmgr_unlatch(buf);
	bufmgr_unpin(ctx->pool, buf);
}

bool wal_log_needs_image(const wal_log_ctx *c, const uint8_t *page)
{
	/* a page last changed by the record AT the redo point is rebuilt by
	 * replaying that record: only older pages need an image (and
	 * wal_insert_fpw refuses exactly when fpw_lsn < redo point: the same
	 * rule) */
	if (WD_PLANTED("no-fpi")) /* planted bug: never an image (and below) */
		return false;
	return c->full_page_writes && page_lsn(page) < wal_redo_point(c->w);
}

int wal_log_add_block(const wal_log_ctx *c, wal_rec_builder *b, wd_relid rel,
		      wd_blkno blk, unsigned flags, const uint8_t *page,
		      const uint8_t *image, const void *data, uint32_t data_len)
{
	int rc = walrec_add_block(b, rel, blk, flags, image, c->page_size, c->compress, data,
				  data_len);
	/* only with full_page_writes: without it no decision ever asks for an
	 * image, so a refusal would repeat for ever */
	if (rc == 0 && !image && !(flags & WAL_BLK_WILL_INIT) && c->full_page_writes &&
	    !WD_PLANTED("no-fpi")) { /* planted bug: no recheck, no image at insert */
		wd_lsn lsn = page_lsn(page);
		if (lsn < b->fpw_lsn)
			b->fpw_lsn = lsn;
	}
	return rc;
}
