/*
 * cursor.c - ordered scans forward and backward from any key (README
 * protocol P6). A cursor keeps a private copy of the leaf it is reading and
 * the key it last returned; it holds no pin, latch or lock between calls.
 * To move on it takes the structure lock shared and looks at its leaf
 * again: if the pageLSN is unchanged, the sibling links in its copy are
 * still the page's, and it steps right (forward) or left (backward); if the
 * page changed (split, merge, freed, reused), it descends again by key.
 */
#include <stdlib.h>
#include <string.h>

#include "btree/bt_internal.h"

struct btree_cursor {
	btree *t;
	uint8_t *page;     /* copy of the current leaf */
	bool have_page;
	bool eof;
	wd_blkno blk;      /* the leaf the copy came from */
	wd_lsn lsn;        /* its pageLSN at the copy */
	int dir;           /* BT_FORWARD or BT_BACKWARD */
	int64_t pos;       /* next item of the copy to return */
	uint8_t *last;     /* the position: last key returned, or the seek key */
	size_t last_len;
	int64_t last_pos;  /* >= 0: the last key returned is item last_pos of
			    * the copy, not yet copied into last */
	bool has_last;     /* false: from the first/last key */
	bool inclusive;    /* the seek key itself qualifies */
};

int btree_cursor_open(btree *t, btree_cursor **out)
{
	btree_cursor *c = calloc(1, sizeof *c);
	if (c)
		c->page = malloc(t->ps);
	if (c)
		c->last = malloc(t->max_key ? t->max_key : 1);
	if (!c || !c->page || !c->last) {
		btree_cursor_close(c);
		return err_set(WD_ENOMEM, "btree cursor: no memory");
	}
	c->t = t;
	c->dir = BT_FORWARD;
	c->last_pos = -1;
	*out = c;
	return 0;
}

void btree_cursor_close(btree_cursor *c)
{
	if (!c)
		return;
	free(c->page);
	free(c->last);
	free(c);
}

int btree_cursor_seek(btree_cursor *c, const void *key, size_t klen, int dir)
{
	int rc = key ? bt_key_ok(c->t, klen) : 0;
	if (rc)
		return rc;
	c->dir = dir < 0 ? BT_BACKWARD : BT_FORWARD;
	c->has_last = key != NULL;
	c->last_len = key ? klen : 0;
	if (key && klen)
		memcpy(c->last, key, klen);
	c->inclusive = true;
	c->last_pos = -1;
	c->have_page = false;
	c->eof = false;
	return 0;
}

/* The first item of the copy that qualifies after the position. */
static int64_t first_pos(const btree_cursor *c)
{
	int64_t n = bt_nitems(c->page);
	bool found;
	if (!c->has_last)
		return c->dir > 0 ? 0 : n - 1;
	int64_t i = bt_leaf_search(c->page, c->last, c->last_len, &found);
	if (c->dir > 0)
		return (found && !c->inclusive) ? i + 1 : i;
	return (found && c->inclusive) ? i : i - 1;
}

/* Copies the (share-latched) leaf buf into the cursor. */
static void load(btree_cursor *c, bm_buf *buf)
{
	memcpy(c->page, bufmgr_page(buf), c->t->ps);
	c->blk = bufmgr_buf_blkno(buf);
	c->lsn = page_lsn(c->page);
	c->have_page = true;
	c->pos = first_pos(c);
}

static bool in_range(const btree_cursor *c)
{
	return c->pos >= 0 && c->pos < (int64_t)bt_nitems(c->page);
}

/* Follows sibling links from the copy until an item qualifies or the
 * chain ends. Precondition: smo shared (links stable: I7). */
static int walk(btree_cursor *c)
{
	while (!in_range(c)) {
		wd_blkno sib = c->dir > 0 ? bt_right(c->page) : bt_left(c->page);
		bm_buf *buf;
		int rc;
		if (sib == WD_INVALID_BLKNO) {
			c->eof = true;
			return 0;
		}
		if ((rc = bt_pin(c->t, sib, BM_SHARE, &buf)) != 0)
			return rc;
		const uint8_t *p = bufmgr_page(buf);
		if (!bt_page_live(p, c->t->ps) || !(bt_flags(p) & BTF_LEAF)) {
			bt_release(c->t, buf);
			return bt_corrupt(c->t, sib, "leaf sibling link leads to a non-leaf page");
		}
		load(c, buf);
		bt_release(c->t, buf);
	}
	return 0;
}

/* Descends by the position key and walks to the first qualifying item. */
static int reposition(btree_cursor *c)
{
	bm_buf *leaf;
	int rc = bt_descend(c->t, c->has_last ? c->last : NULL, c->last_len, c->dir,
			    BM_SHARE, &leaf);
	if (rc)
		return rc;
	load(c, leaf);
	bt_release(c->t, leaf);
	return walk(c);
}

/* P6: moves past the end of the copy, by sibling link if the leaf is
 * unchanged since it was copied, else by a new descent. */
static int step(btree_cursor *c)
{
	bm_buf *buf;
	int rc = 0;
	bool same = false;
	if (c->last_pos >= 0) {
		/* the position leaves the copy: keep the key itself */
		uint32_t len;
		const uint8_t *k = bt_key(c->page, (uint32_t)c->last_pos, &len);
		memcpy(c->last, k, len);
		c->last_len = len;
		c->last_pos = -1;
	}
	bt_lock_shared(c->t);
	if (c->have_page && (rc = bt_pin(c->t, c->blk, BM_SHARE, &buf)) == 0) {
		same = page_lsn(bufmgr_page(buf)) == c->lsn;
		bt_release(c->t, buf);
	}
	if (rc == 0)
		rc = same ? walk(c) : reposition(c);
	bt_unlock(c->t);
	return rc;
}

/* Returns the next key (README P6). WD_NOTFOUND at the end; WD_ECORRUPT
 * naming the leaf if it holds a key longer than the limit. */
int btree_cursor_next(btree_cursor *c, const void **key, size_t *klen, wd_tid *tid)
{
	uint32_t len;
	int rc;
	if (c->eof)
		return WD_NOTFOUND;
	if (!c->have_page || !in_range(c)) {
		if ((rc = step(c)) != 0)
			return rc;
		if (c->eof)
			return WD_NOTFOUND;
	}
	const uint8_t *k = bt_key(c->page, (uint32_t)c->pos, &len);
	/* c->last holds max_key bytes: a longer key is a damaged page that
	 * passed its checksum (input, not a bug) */
	if (len > c->t->max_key)
		return bt_corrupt(c->t, c->blk, "leaf key longer than the key limit");
	*key = k;
	*klen = len;
	if (tid)
		*tid = bt_item_tid(c->page, (uint32_t)c->pos);
	/* the position: copied out of the page copy only when the copy is
	 * about to be replaced (step) */
	c->last_pos = c->pos;
	c->has_last = true;
	c->inclusive = false;
	c->pos += c->dir;
	return 0;
}
