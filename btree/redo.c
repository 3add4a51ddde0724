/*
 * redo.c - the BTREE resource manager: one redo routine for every record
 * type (each block reference's data is the op list that the running code
 * applied to that page, ops.c), describe routines for waldump, and
 * btree_rmgr_register.
 */
#include <stdio.h>
#include <string.h>

#include "btree/bt_internal.h"
#include "wal/rmgr.h"

/*
 * Redo (README "Crash behaviour"): each block is fetched with
 * redo_fetch_block, which restores a full-page image, zeroes a WILL_INIT
 * page, or decides from the pageLSN; the op list is applied only on
 * REDO_APPLY, so a page that already has the change is left alone.
 */
static int bt_redo(void *vctx, const wal_decoded *rec)
{
	redo_ctx *ctx = vctx;
	for (unsigned i = 0; i < rec->nblocks; i++) {
		const wal_block_ref *ref = &rec->blocks[i];
		redo_action a;
		bm_buf *buf;
		int rc = redo_fetch_block(ctx, rec, i, &buf, &a);
		if (rc)
			return rc;
		if (a == REDO_APPLY) {
			rc = bt_ops_apply(bufmgr_page(buf), ctx->page_size, ref->data,
					  ref->data_len);
			if (rc == 0)
				redo_page_done(ctx, rec, buf);
		}
		redo_release(ctx, buf);
		if (rc)
			return err_wrap(rc, "btree redo of record at " LSN_FMT " block %u",
					LSN_ARGS(rec->lsn), ref->blk);
	}
	return 0;
}

/* Up to 16 bytes of a key, printable ones as is, others as \xNN. */
static void key_str(const uint8_t *k, uint32_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (uint32_t i = 0; i < len && i < 16 && o + 5 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, (k[i] >= 0x20 && k[i] < 0x7f &&
							 k[i] != '\\' && k[i] != '"')
						       ? "%c" : "\\x%02x", k[i]);
	if (len > 16 && o + 4 < cap)
		o += (size_t)snprintf(out + o, cap - o, "...");
	out[o < cap ? o : cap - 1] = 0;
}

/* "key \"abc\" (3 bytes) tid (4,2) blk 7" for leaf records. */
static void describe_leaf(const wal_decoded *rec, char *buf, size_t cap)
{
	const uint8_t *m = rec->main_data;
	char ks[80];
	if (rec->main_len < 2 || rec->main_len < 2u + get_le16(m) + 2 * BT_TID_SIZE) {
		snprintf(buf, cap, "malformed main data (%u bytes)", rec->main_len);
		return;
	}
	uint32_t kl = get_le16(m);
	const uint8_t *t = m + 2 + kl;
	key_str(m + 2, kl, ks, sizeof ks);
	if (rec->type == BTREE_UPDATE_TID)
		snprintf(buf, cap, "key \"%s\" (%u bytes) tid (%u,%u) -> (%u,%u) blk %u", ks, kl,
			 get_le32(t + 6), get_le16(t + 10), get_le32(t), get_le16(t + 4),
			 rec->nblocks ? rec->blocks[0].blk : 0);
	else
		snprintf(buf, cap, "key \"%s\" (%u bytes) tid (%u,%u) blk %u", ks, kl,
			 get_le32(t), get_le16(t + 4), rec->nblocks ? rec->blocks[0].blk : 0);
}

/* Structure records: what the main data names, then the blocks. */
static void describe_smo(const wal_decoded *rec, char *buf, size_t cap)
{
	const uint8_t *m = rec->main_data;
	size_t o;
	if ((rec->type == BTREE_SPLIT || rec->type == BTREE_NEWROOT) && rec->main_len >= 12)
		o = (size_t)snprintf(buf, cap, "blk %u -> %u level %u at item %u;", get_le32(m),
				     get_le32(m + 4), get_le16(m + 8), get_le16(m + 10));
	else if (rec->type == BTREE_UNLINK_PAGE && rec->main_len >= 10)
		o = (size_t)snprintf(buf, cap, "leaf %u: %u pages freed below blk %u;",
				     get_le32(m), get_le16(m + 8), get_le32(m + 4));
	else if (rec->type == BTREE_SHRINK && rec->main_len >= 8)
		o = (size_t)snprintf(buf, cap, "root %u -> %u;", get_le32(m), get_le32(m + 4));
	else
		o = (size_t)snprintf(buf, cap, "%s;", rec->type == BTREE_CREATE ? "new tree" : "?");
	for (unsigned i = 0; i < rec->nblocks && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, " %u%s", rec->blocks[i].blk,
				      (rec->blocks[i].flags & WAL_BLK_WILL_INIT) ? "(init)" : "");
}

static void bt_describe(const wal_decoded *rec, char *buf, size_t cap)
{
	if (rec->type == BTREE_INSERT_LEAF || rec->type == BTREE_DELETE_LEAF ||
	    rec->type == BTREE_UPDATE_TID)
		describe_leaf(rec, buf, cap);
	else
		describe_smo(rec, buf, cap);
}

static const wal_rmgr_ops bt_ops = {bt_redo, bt_describe};

int btree_rmgr_register(void)
{
	return wal_rmgr_register(WAL_RMGR_BTREE, &bt_ops);
}
