/*
 * log.c - one logged change of one or more pages (README protocol P2):
 * build one WAL record with a block reference per page (its op list, and a
 * full-page image where the page's first change since the redo point),
 * mark every page dirty, insert the record (wal_insert_fpw rechecks the
 * image decisions against the redo point; refused, the change is decided
 * and built again: bt_log_commit), then change the buffers and stamp them
 * with its LSN. A change
 * of several pages (a split), or one that needs an image, applies its op
 * lists to private copies first and installs the copies; a single-page
 * change that cannot fail (the common leaf insert, delete or update) is
 * applied to the buffer in place after the insert. Either way a failure
 * before wal_insert returns leaves every page as it was: nothing unlogged
 * ever reaches a buffer (I10); and every page is dirty before its record
 * exists (I11).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "btree/bt_internal.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

void bt_log_begin(bt_log *lg, btree *t, unsigned type, wd_xid xid, wd_lsn prev)
{
	/* no memset: the 8 change slots are set up by bt_log_page as used */
	lg->t = t;
	lg->latched = true;
	lg->type = type;
	lg->xid = xid;
	lg->prev = prev;
	lg->n = 0;
	bt_bytes_init(&lg->main);
}

bt_bytes *bt_log_page(bt_log *lg, bm_buf *buf, bool init)
{
	bt_chg *c = &lg->c[lg->n++]; /* callers add at most WAL_MAX_BLOCKS */
	c->buf = buf;
	c->init = init;
	bt_bytes_init(&c->ops);
	return &c->ops;
}

void bt_log_abandon(bt_log *lg)
{
	for (unsigned i = 0; i < lg->n; i++)
		bt_bytes_free(&lg->c[i].ops);
	bt_bytes_free(&lg->main);
	lg->n = 0;
}

/* step 2 and 3 for page i: change the copy, add its block reference. The
 * image decision looks at the page before the change (its pageLSN). */
static int log_one(bt_log *lg, wal_rec_builder *b, unsigned i, uint8_t *copy)
{
	btree *t = lg->t;
	bt_chg *c = &lg->c[i];
	const uint8_t *page = bufmgr_page(c->buf);
	bool image = !c->init && wal_log_needs_image(t->log, page);
	int rc;
	if (c->ops.oom)
		return err_set(WD_ENOMEM, "btree: no memory for a WAL record");
	if (c->init)
		memset(copy, 0, t->ps);
	else
		memcpy(copy, page, t->ps);
	if ((rc = bt_ops_apply(copy, t->ps, c->ops.b, c->ops.len)) != 0)
		return rc;
	return wal_log_add_block(t->log, b, t->rel, bufmgr_buf_blkno(c->buf),
				 c->init ? WAL_BLK_WILL_INIT : 0, page, image ? copy : NULL,
				 c->ops.b, c->ops.len);
}

/*
 * Step 4a under exclusive smo (lg->latched false): latches every page of
 * the change exclusively, lowest buffer address first. Each must stay
 * latched from its step 4a mark until its step 5 install (I11), so all of
 * them are held together; one order for every set of frames (the one undo
 * uses for its page pairs, undo I9) keeps any cycle out, and nobody else
 * latches a tree page meanwhile except bufmgr's write-out copy, which
 * holds one share latch and waits for nothing under it. The pages are
 * distinct (one block reference each).
 */
static void latch_all(bt_log *lg)
{
	uintptr_t last = 0;
	for (unsigned k = 0; k < lg->n; k++) {
		bm_buf *next = NULL;
		for (unsigned i = 0; i < lg->n; i++) {
			uintptr_t a = (uintptr_t)lg->c[i].buf;
			if (a > last && (!next || a < (uintptr_t)next))
				next = lg->c[i].buf;
		}
		assert(next != NULL);
		bufmgr_latch(next, BM_EXCL);
		last = (uintptr_t)next;
	}
}

static void unlatch_all(bt_log *lg)
{
	for (unsigned i = 0; i < lg->n; i++)
		bufmgr_unlatch(lg->c[i].buf);
}

/* Step 5 for page i, under its exclusive latch (since step 1 or 4a): its
 * new bytes (the copy, or with copy NULL its ops applied to the buffer
 * itself) reach the buffer with the record's LSN. Dirty since step 4a. */
static int install(bt_log *lg, unsigned i, const uint8_t *copy, wd_lsn lsn)
{
	bt_chg *c = &lg->c[i];
	uint8_t *page = bufmgr_page(c->buf);
	int rc = 0;
	if (copy)
		memcpy(page, copy, lg->t->ps);
	else
		rc = bt_ops_apply(page, lg->t->ps, c->ops.b, c->ops.len);
	assert(rc == 0); /* bt_ops_fit promised it (P2 step 2) */
	if (rc == 0)
		page_set_lsn(page, lsn);
	return rc;
}

/*
 * Step 3 (main data), 4 and 5 once the block references are in b.
 *
 * Step 4a: every page of the change is marked dirty BEFORE wal_insert,
 * with the insert position as its recLSN (at or before the record's LSN),
 * and stays exclusively latched until step 5 has installed it: a
 * checkpoint takes its redo point and then writes the buffers dirty at
 * that moment, so a record that lands before the redo point must find its
 * pages already dirty, and the write must wait for the latch so that the
 * page goes out with the change; otherwise the checkpoint skips (or
 * writes too early) the page and redo from its redo point never replays
 * the record (README I11). If the insert then fails, the pages are dirty
 * but unchanged: at worst one needless write each.
 *
 * Step 4b: the insert rechecks the image decisions (b->fpw_lsn,
 * wal/README.md I11) and returns WAL_INSERT_RETRY, nothing inserted, if
 * the redo point passed a page logged without an image. copies: the
 * pages' new bytes, page size apart; NULL for the in-place case.
 */
static int insert_and_install(bt_log *lg, wal_rec_builder *b, const uint8_t *copies,
			      wd_lsn *lsn)
{
	wal *w = lg->t->log->w;
	wd_lsn pos;
	uint8_t *rec;
	uint32_t len;
	int rc = 0;
	if (lg->main.oom)
		return err_set(WD_ENOMEM, "btree: no memory for a WAL record");
	if (lg->main.len)
		rc = walrec_set_main(b, lg->main.b, lg->main.len);
	if (rc == 0)
		rc = walrec_assemble(b, &rec, &len);
	if (rc != 0)
		return rc;
	if (!lg->latched)
		latch_all(lg); /* step 4a: latched and dirty before the record exists */
	pos = wal_insert_pos(w); /* (I11) */
	for (unsigned i = 0; i < lg->n; i++)
		bufmgr_mark_dirty(lg->c[i].buf, pos);
	rc = wal_insert_fpw(w, rec, len, b->fpw_lsn, lsn); /* step 4b */
	for (unsigned i = 0; rc == 0 && i < lg->n; i++) /* step 5 */
		rc = install(lg, i, copies ? copies + (size_t)i * lg->t->ps : NULL, *lsn);
	if (!lg->latched)
		unlatch_all(lg);
	return rc;
}

/*
 * The in-place case of P2 (one page, no image, ops that bt_ops_fit says
 * cannot fail: every transaction leaf change outside a checkpoint's first
 * touch). The record does not depend on the changed bytes, so it is built
 * and inserted first and the ops are then applied to the buffer itself,
 * under the exclusive latch: no page copy, and still nothing unlogged ever
 * reaches the buffer (I10). Redo applies the same ops with the same
 * function to the same before-image, so the pages are byte-identical.
 */
static bool can_apply_in_place(const bt_log *lg)
{
	const bt_chg *c = &lg->c[0];
	const uint8_t *page;
	if (lg->n != 1 || c->init || c->ops.oom)
		return false;
	page = bufmgr_page(c->buf);
	return !wal_log_needs_image(lg->t->log, page) &&
	       bt_ops_fit(page, lg->t->ps, c->ops.b, c->ops.len);
}

static int commit_in_place(bt_log *lg, wd_lsn *lsn)
{
	btree *t = lg->t;
	bt_chg *c = &lg->c[0];
	wal_rec_builder b;
	int rc;
	walrec_init(&b);
	walrec_begin(&b, WAL_RMGR_BTREE, lg->type, lg->xid, lg->prev, 0, 0);
	rc = wal_log_add_block(t->log, &b, t->rel, bufmgr_buf_blkno(c->buf), 0,
			       bufmgr_page(c->buf), NULL, c->ops.b, c->ops.len); /* step 3 */
	if (rc == 0)
		rc = insert_and_install(lg, &b, NULL, lsn); /* steps 4, 5 (in place) */
	walrec_free(&b);
	return rc;
}

/* The general case of P2: every page changed on a private copy first. */
static int commit_copies(bt_log *lg, wd_lsn *lsn)
{
	btree *t = lg->t;
	wal_rec_builder b = {0};
	uint8_t *copies = malloc((size_t)lg->n * t->ps);
	int rc = copies ? 0 : err_set(WD_ENOMEM, "btree: no memory for page copies");

	walrec_begin(&b, WAL_RMGR_BTREE, lg->type, lg->xid, lg->prev, 0, 0);
	for (unsigned i = 0; rc == 0 && i < lg->n; i++)
		rc = log_one(lg, &b, i, copies + (size_t)i * t->ps); /* steps 2, 3 */
	if (rc == 0)
		rc = insert_and_install(lg, &b, copies, lsn); /* steps 4, 5 */
	walrec_free(&b);
	free(copies);
	return rc;
}

/* P2 steps 2-5. A refused insert (a checkpoint moved the redo point past
 * a page's LSN after the image decision, step 4b) changed nothing (the
 * pages are dirty since step 4a, and stay so): decide again, now with that
 * page's image (so never in place), and rebuild. */
int bt_log_commit(bt_log *lg, wd_lsn *lsn)
{
	int rc;
	do
		rc = can_apply_in_place(lg) ? commit_in_place(lg, lsn) : commit_copies(lg, lsn);
	while (rc == WAL_INSERT_RETRY);
	bt_log_abandon(lg);
	return rc;
}
