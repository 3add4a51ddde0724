/*
 * log.c - one logged change of one or more pages (README protocol P2):
 * apply the op lists to private copies, build one WAL record with a block
 * reference per page (full-page image where the page's first change since
 * the redo point), insert it, then install the copies with its LSN.
 * Changing copies first means a failure before wal_insert returns leaves
 * every page as it was: nothing unlogged ever reaches a buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "btree/bt_internal.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

void bt_log_begin(bt_log *lg, btree *t, unsigned type, wd_xid xid, wd_lsn prev)
{
	memset(lg, 0, sizeof *lg);
	lg->t = t;
	lg->latched = true;
	lg->type = type;
	lg->xid = xid;
	lg->prev = prev;
}

bt_bytes *bt_log_page(bt_log *lg, bm_buf *buf, bool init)
{
	bt_chg *c = &lg->c[lg->n++]; /* callers add at most WAL_MAX_BLOCKS */
	c->buf = buf;
	c->init = init;
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
	return walrec_add_block(b, t->rel, bufmgr_buf_blkno(c->buf),
				c->init ? WAL_BLK_WILL_INIT : 0, image ? copy : NULL,
				t->ps, t->log->compress, c->ops.b, c->ops.len);
}

int bt_log_commit(bt_log *lg, wd_lsn *lsn)
{
	btree *t = lg->t;
	wal_rec_builder b = {0};
	uint8_t *copies = malloc((size_t)lg->n * t->ps), *rec;
	uint32_t len;
	int rc = copies ? 0 : err_set(WD_ENOMEM, "btree: no memory for page copies");

	walrec_begin(&b, WAL_RMGR_BTREE, lg->type, lg->xid, lg->prev, 0, 0);
	for (unsigned i = 0; rc == 0 && i < lg->n; i++)
		rc = log_one(lg, &b, i, copies + (size_t)i * t->ps); /* steps 2, 3 */
	if (rc == 0 && lg->main.oom)
		rc = err_set(WD_ENOMEM, "btree: no memory for a WAL record");
	if (rc == 0 && lg->main.len)
		rc = walrec_set_main(&b, lg->main.b, lg->main.len);
	if (rc == 0)
		rc = walrec_assemble(&b, &rec, &len);
	if (rc == 0)
		rc = wal_insert(t->log->w, rec, len, lsn); /* step 4 */
	for (unsigned i = 0; rc == 0 && i < lg->n; i++) {
		/* step 5: the change reaches the buffer with its LSN */
		uint8_t *page = bufmgr_page(lg->c[i].buf);
		if (!lg->latched)
			bufmgr_latch(lg->c[i].buf, BM_EXCL);
		memcpy(page, copies + (size_t)i * t->ps, t->ps);
		page_set_lsn(page, *lsn);
		bufmgr_mark_dirty(lg->c[i].buf, *lsn);
		if (!lg->latched)
			bufmgr_unlatch(lg->c[i].buf);
	}
	walrec_free(&b);
	free(copies);
	bt_log_abandon(lg);
	return rc;
}
