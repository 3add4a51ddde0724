/*
 * redo.h - what a resource manager's redo routine needs to apply a record
 * to its pages (PostgreSQL's XLogReadBufferForRedo), and what an access
 * method needs to decide whether a change carries a full-page image.
 *
 * Redo routines (registered with wal_rmgr_register) receive a redo_ctx as
 * their ctx argument. For each block reference they call redo_fetch_block:
 *
 *   bm_buf *buf;
 *   redo_action a;
 *   int rc = redo_fetch_block(ctx, rec, 0, &buf, &a);
 *   if (rc) return rc;
 *   if (a == REDO_APPLY) {
 *       ... change bufmgr_page(buf) as the original did ...
 *       redo_page_done(ctx, rec, buf);     // pageLSN := rec->lsn, dirty
 *   }
 *   redo_release(ctx, buf);                // unlatch, unpin (any action;
 *                                          // no-op for REDO_SKIP_DPT)
 *
 * A routine acts on REDO_APPLY only: every other action (the page has the
 * change, an image replaced it, or recovery's dirty page table says it
 * needs no redo and was not even read) leaves the page alone.
 *
 * This file sits in wal/ and uses bufmgr/ (redo is about pages in the
 * pool); bufmgr never calls back into it.
 */
#ifndef WALDEN_WAL_REDO_H
#define WALDEN_WAL_REDO_H

#include <stdbool.h>
#include <stdint.h>

#include "bufmgr/bufmgr.h"
#include "storage/error.h"
#include "storage/types.h"
#include "wal/record.h"

/*
 * What redo needs: the pool the pages live in, and a way to make sure a
 * relation file is open in it (recovery opens DIR/base/<rel> on demand).
 */
typedef enum redo_action {
	REDO_APPLY,    /* page older than the record: apply the change */
	REDO_SKIP,     /* page already has this change (pageLSN >= lsn) */
	REDO_RESTORED, /* the record's full-page image was put in place */
	REDO_SKIP_DPT, /* skip_block said no: the page was not read, no buffer */
	REDO_NOT_FETCHED, /* (action[] only) the routine did not fetch the block */
} redo_action;

typedef struct redo_ctx {
	bufmgr *pool;
	uint32_t page_size;
	int (*open_rel)(void *arg, wd_relid rel); /* 0 or a WD_E* code */
	void *open_rel_arg;
	/* Recovery's dirty page table test (recovery/README.md P5), asked
	 * first for every block reference; NULL: every block is fetched.
	 * true: the page already holds the change on disk, so it is neither
	 * read nor pinned (REDO_SKIP_DPT, *buf NULL). */
	bool (*skip_block)(void *arg, const wal_decoded *rec, unsigned block);
	void *skip_block_arg;
	/* statistics a recovery report prints */
	uint64_t applied, skipped, images;
	wd_lsn skip_page_lsn; /* the pageLSN of the last REDO_SKIP (trace) */
	/* what redo_fetch_block did with each block reference of the record
	 * being redone, and the pageLSN a REDO_SKIP found (the trace); the
	 * caller sets action[] to REDO_NOT_FETCHED before the record */
	redo_action action[WAL_MAX_BLOCKS];
	wd_lsn page_lsn[WAL_MAX_BLOCKS];
} redo_ctx;

/*
 * Pins block reference `block` of rec and latches it exclusively.
 *  - ctx->skip_block says the page needs no redo: nothing is read or
 *    pinned, *buf = NULL -> REDO_SKIP_DPT;
 *  - the reference carries an image: the page becomes the image, its
 *    pageLSN the record's LSN, the buffer dirty -> REDO_RESTORED; an image
 *    that is not a sound page (page_layout_check: version, header bounds,
 *    slotted items inside the item area and not overlapping) is
 *    WD_ECORRUPT naming the record, rel and block;
 *  - WAL_BLK_WILL_INIT: the page is not read (it may not exist or be torn)
 *    -> REDO_APPLY on a zeroed page;
 *  - otherwise the page is read and checked: pageLSN >= rec->lsn ->
 *    REDO_SKIP, else REDO_APPLY.
 * A page that fails its checksum with no image to replace it is
 * WD_ECORRUPT, naming file and block (never repaired silently).
 * On success the caller must call redo_release(ctx, *buf).
 */
int redo_fetch_block(redo_ctx *ctx, const wal_decoded *rec, unsigned block,
		     bm_buf **buf, redo_action *action) WD_MUST_CHECK;

/* After applying: sets the pageLSN to rec->lsn and marks the buffer dirty. */
void redo_page_done(redo_ctx *ctx, const wal_decoded *rec, bm_buf *buf);

/* Unlatches and unpins a buffer from redo_fetch_block (NULL: nothing). */
void redo_release(redo_ctx *ctx, bm_buf *buf);

/* ---- full-page writes (the logging side) ---- */

/*
 * The logging context access methods pass around: the log (which keeps the
 * redo point of the latest checkpoint, wal_redo_point: 0 before the first)
 * and the settings that decide images.
 */
typedef struct wal_log_ctx {
	struct wal *w;
	bool full_page_writes;
	bool compress;
	uint32_t page_size;
} wal_log_ctx;

/*
 * true if a change to page must carry a full-page image: full_page_writes is
 * on and the page was last changed before the redo point (this is its first
 * change since the checkpoint), so a torn write of it can be repaired.
 * A page that redo rebuilds from nothing (WAL_BLK_WILL_INIT) needs none.
 * The decision is only provisional: a checkpoint may move the redo point
 * before the record is inserted, so a record built on it is inserted with
 * wal_insert_fpw, which rechecks under the reservation and refuses it
 * (WAL_INSERT_RETRY) if the page would now need its image; the caller then
 * decides again and rebuilds (wal/README.md I11, P1 step 2a).
 * Precondition: the caller holds the page's exclusive latch (or otherwise
 * keeps every other change away from it), so its pageLSN cannot move.
 */
bool wal_log_needs_image(const wal_log_ctx *c, const uint8_t *page);

/*
 * walrec_add_block for one page of a change, with the settings of c (page
 * size, compression): page is the page as it is *before* the change (its
 * pageLSN is the one the image decision looked at), image the page after
 * the change if the decision asked for a full-page image, else NULL. A
 * block added without an image, not WAL_BLK_WILL_INIT, with
 * full_page_writes on, notes page's LSN in b->fpw_lsn, which the caller
 * passes to wal_insert_fpw. Errors: walrec_add_block's.
 */
int wal_log_add_block(const wal_log_ctx *c, wal_rec_builder *b, wd_relid rel,
		      wd_blkno blk, unsigned flags, const uint8_t *page,
		      const uint8_t *image, const void *data,
		      uint32_t data_len) WD_MUST_CHECK;

#endif
