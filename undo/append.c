/*
 * append.c - undo_append (README P1): a record's bytes (header, key,
 * value) written into its chain's pages one page at a time, each page's
 * share logged as one UNDO_APPEND record before it reaches the page (WAL
 * before data, dirty before logged, as heap_log: heap/README I2, I8).
 */
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "undo/undo_internal.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

/* Records of up to this many bytes are staged on the stack (one page's
 * share is copied into append_ctx.bytes before it is logged). */
#define UNDO_SMALL_SHARE 512

/* The bytes of one record as one stream: header, key, value. */
typedef struct rec_src {
	const uint8_t *part[3];
	uint64_t len[3];
	uint64_t total;
} rec_src;

/* What one undo_append carries from page to page; undo_append sets each
 * field (a new one must be set there too). */
typedef struct append_ctx {
	undo_log *u;
	undo_chain *c;
	wal_rec_builder b;
	uint8_t *bytes;  /* one page's share of the record */
	uint8_t *img[2]; /* the pages after the change, for full-page images */
	wd_lsn prev;     /* the transaction's last WAL record */
} append_ctx;

/* Copies n bytes of s from stream position pos to dst. */
static void src_copy(const rec_src *s, uint64_t pos, uint8_t *dst, uint32_t n)
{
	for (int i = 0; i < 3 && n > 0; i++) {
		uint64_t take;
		if (pos >= s->len[i]) {
			pos -= s->len[i];
			continue;
		}
		take = s->len[i] - pos < n ? s->len[i] - pos : n;
		memcpy(dst, s->part[i] + pos, take);
		dst += take;
		n -= (uint32_t)take;
		pos = 0;
	}
}

/*
 * Step 3, only if block i needs a full-page image (wal_log_needs_image on
 * the page before the change; never for the page formatted afresh): the
 * change made on a private copy, which the record carries as the image.
 * Made again from the page if a refused insert (step 5) asks to decide
 * again: the page has not changed (it is latched).
 */
static int image_of(append_ctx *a, int i, const uint8_t *page, const undo_write *w,
		    const uint8_t **img)
{
	uint32_t ps = a->u->ps;
	*img = NULL;
	if ((i == 0 && w->init) || !wal_log_needs_image(a->u->log, page))
		return 0;
	if (!a->img[i] && !(a->img[i] = malloc(ps)))
		return err_set(WD_ENOMEM, "undo log: out of memory for a page image");
	memcpy(a->img[i], page, ps);
	if (i == 0)
		undo_page_write(a->img[0], ps, w);
	else
		undo_page_link(a->img[1], w->blk);
	*img = a->img[i];
	return 0;
}

/* Step 4: the UNDO_APPEND record of w in a->b (README "Formats"). Block 0
 * is the page written (its bytes, or its image); block 1, for a new page
 * after another, the chain's previous page, whose next link redo sets.
 * page and opage are the pages before the change: a block without an
 * image notes its LSN in a->b.fpw_lsn for the recheck at insert. */
static int build_append(append_ctx *a, const undo_write *w, const uint8_t *page,
			const uint8_t *opage, const uint8_t *img0, const uint8_t *img1,
			uint8_t **rec, uint32_t *len)
{
	uint8_t m[UA_MAIN] = {0};
	const wal_log_ctx *log = a->u->log;
	int rc;
	m[UA_FLAGS] = (uint8_t)((w->init ? UA_F_INIT : 0) | (w->ends ? UA_F_ENDS : 0));
	put_le32(m + UA_OFF, w->off);
	put_le32(m + UA_LEN, w->len);
	put_le32(m + UA_SEQ, w->init ? w->seq : 0);
	put_le64(m + UA_REC, w->rec);
	walrec_begin(&a->b, WAL_RMGR_UNDO, UNDO_APPEND, w->xid, a->prev, w->starts ? w->rec : 0, 0);
	rc = wal_log_add_block(log, &a->b, UNDO_REL, w->blk, w->init ? WAL_BLK_WILL_INIT : 0,
			       page, img0, img0 ? NULL : w->data, img0 ? 0 : w->len);
	if (rc == 0 && w->init && w->prev_blk != WD_INVALID_BLKNO)
		rc = wal_log_add_block(log, &a->b, UNDO_REL, w->prev_blk, 0, opage, img1, NULL,
				       0);
	if (rc == 0)
		rc = walrec_set_main(&a->b, m, UA_MAIN);
	if (rc == 0)
		rc = walrec_assemble(&a->b, rec, len);
	return rc;
}

/*
 * Steps 3-6 of P1 for w on the page in buf and, for a new page after
 * another, the previous page in old; both pinned and exclusively latched.
 * As heap_log: the record is built from w alone and inserted while the
 * pages are untouched; both buffers are marked dirty before wal_insert (a
 * checkpoint's redo point taken in between must find them dirty, I7);
 * only then do the pages change, which cannot fail. The insert rechecks
 * the image decisions (wal_insert_fpw): refused because a checkpoint moved
 * the redo point past a page's LSN meanwhile, nothing was inserted, and
 * steps 3-5 run again, now with that page's image. Any error leaves both
 * pages as they were.
 */
static int log_write(append_ctx *a, const undo_write *w, bm_buf *buf, bm_buf *old)
{
	uint8_t *page = bufmgr_page(buf), *opage = old ? bufmgr_page(old) : NULL, *rec;
	const uint8_t *img0 = NULL, *img1 = NULL;
	uint32_t len;
	wd_lsn lsn;
	int rc;
	do {
		rc = image_of(a, 0, page, w, &img0);
		if (rc == 0 && old)
			rc = image_of(a, 1, opage, w, &img1);
		if (rc == 0)
			rc = build_append(a, w, page, opage, img0, img1, &rec, &len);
		if (rc != 0)
			return rc;
		bufmgr_mark_dirty(buf, wal_insert_pos(a->u->log->w)); /* step 5a (I7) */
		if (old)
			bufmgr_mark_dirty(old, wal_insert_pos(a->u->log->w));
		/* step 5: WAL first, the image decisions rechecked */
		rc = wal_insert_fpw(a->u->log->w, rec, len, a->b.fpw_lsn, &lsn);
	} while (rc == WAL_INSERT_RETRY);
	if (rc != 0)
		return rc;
	storage_crash_point("undo-after-append");
	/* step 6: the change reaches the pages, stamped with the record */
	if (img0)
		memcpy(page, img0, a->u->ps);
	else
		undo_page_write(page, a->u->ps, w);
	page_set_lsn(page, lsn);
	if (old) {
		if (img1)
			memcpy(opage, img1, a->u->ps);
		else
			undo_page_link(opage, w->blk);
		page_set_lsn(opage, lsn);
	}
	a->prev = lsn;
	return 0;
}

/* Room in the chain's page array for one more page. */
static int chain_reserve(undo_chain *c)
{
	wd_blkno *p;
	uint32_t cap;
	if (c->npages < c->cap)
		return 0;
	cap = c->cap ? 2 * c->cap : 8;
	if (cap <= c->cap || !(p = realloc(c->pages, (size_t)cap * sizeof *p)))
		return err_set(WD_ENOMEM, "undo chain of xid %llu: out of memory for %u pages",
			       (unsigned long long)c->xid, cap);
	c->pages = p;
	c->cap = cap;
	return 0;
}

/*
 * Latches a and b (b may be NULL) exclusively, the lower buffer address
 * first (I9): two chains moving to new pages at once may hold each other's
 * frames (a frame holds different pages over time), and one order for
 * every pair of frames keeps any cycle out.
 */
static void latch_pair(bm_buf *a, bm_buf *b)
{
	if (b && (uintptr_t)b < (uintptr_t)a) {
		bufmgr_latch(b, BM_EXCL);
		b = NULL;
	}
	bufmgr_latch(a, BM_EXCL);
	if (b)
		bufmgr_latch(b, BM_EXCL);
}

/*
 * Step 2, new page: the chain's previous page (if any) pinned first, then
 * a page taken, then both latched; the two are written by one record (the
 * new page formatted, the old one linked to it). Nobody else writes either
 * page: each belongs to this chain.
 */
static int start_page(append_ctx *a, undo_write *w, bm_buf **buf, bm_buf **old)
{
	undo_chain *c = a->c;
	int rc = chain_reserve(c);
	if (rc != 0)
		return rc;
	w->init = true;
	w->seq = c->npages;
	w->off = UNDO_DATA_START;
	w->prev_blk = c->npages ? c->pages[c->npages - 1] : WD_INVALID_BLKNO;
	if (w->prev_blk != WD_INVALID_BLKNO &&
	    (rc = bufmgr_pin(a->u->pool, UNDO_REL, w->prev_blk, BM_READ, old)) != 0)
		return rc;
	if ((rc = undo_page_take(a->u, &w->blk, buf)) != 0) {
		if (*old)
			bufmgr_unpin(a->u->pool, *old);
		*old = NULL;
		return rc;
	}
	latch_pair(*buf, *old);
	return 0;
}

/* Step 2, same page: the chain's current page, where its bytes end. */
static int current_page(append_ctx *a, undo_write *w, bm_buf **buf)
{
	undo_chain *c = a->c;
	int rc;
	w->blk = c->pages[c->npages - 1];
	w->off = c->off;
	if ((rc = bufmgr_pin(a->u->pool, UNDO_REL, w->blk, BM_READ, buf)) != 0)
		return rc;
	bufmgr_latch(*buf, BM_EXCL);
	return 0;
}

static void release(undo_log *u, bm_buf *buf)
{
	if (buf) {
		bufmgr_unlatch(buf);
		bufmgr_unpin(u->pool, buf);
	}
}

/*
 * Steps 2-7 of P1 for the record's bytes from stream position *pos on, as
 * many as the page has room for; *pos moves past them. The header always
 * lies in one page: a record starts on a new page when fewer than
 * UNDO_REC_HDR bytes are left. *rec is set at the first step.
 */
static int append_step(append_ctx *a, const rec_src *s, uint64_t *pos, undo_ptr *rec)
{
	undo_chain *c = a->c;
	uint32_t ps = a->u->ps, need = *pos == 0 ? UNDO_REC_HDR : 1;
	bool fresh = c->npages == 0 || ps - c->off < need;
	bm_buf *buf = NULL, *old = NULL;
	undo_write w = {.xid = c->xid, .prev_blk = WD_INVALID_BLKNO};
	int rc = fresh ? start_page(a, &w, &buf, &old) : current_page(a, &w, &buf);
	if (rc != 0)
		return rc;
	if (*pos == 0)
		*rec = UNDO_PTR(w.blk, w.off);
	w.rec = *rec;
	w.starts = *pos == 0;
	w.len = s->total - *pos < ps - w.off ? (uint32_t)(s->total - *pos) : ps - w.off;
	w.ends = *pos + w.len == s->total;
	w.data = a->bytes;
	src_copy(s, *pos, a->bytes, w.len);
	rc = log_write(a, &w, buf, old);
	if (rc == 0) { /* step 7: the chain follows its pages */
		if (fresh)
			c->pages[c->npages++] = w.blk;
		c->off = w.off + w.len;
		*pos += w.len;
	}
	release(a->u, old);
	release(a->u, buf);
	if (rc != 0 && fresh)
		undo_page_give_back(a->u, w.blk); /* untouched: never part of the chain */
	return rc;
}

/* The record header (README "Formats"). */
static void encode_header(uint8_t *h, unsigned kind, wd_relid rel, uint32_t klen,
			  uint64_t vlen, undo_ptr prev)
{
	memset(h, 0, UNDO_REC_HDR);
	put_le32(h + UR_MAGIC, UNDO_REC_MAGIC);
	h[UR_KIND] = (uint8_t)kind;
	put_le32(h + UR_REL, rel);
	put_le32(h + UR_KLEN, klen);
	put_le64(h + UR_VLEN, vlen);
	put_le64(h + UR_PREV, prev);
}

static int check_args(const undo_chain *c, unsigned kind, const void *key, uint32_t klen,
		      const void *val, uint64_t vlen)
{
	if (kind < UNDO_ROW_INSERT || kind > UNDO_ROW_DELETE || (klen && !key) || (vlen && !val))
		return err_set(WD_EINVAL, "undo chain of xid %llu: bad record (kind %u)",
			       (unsigned long long)c->xid, kind);
	if (klen > UNDO_MAX_KEY || vlen > UNDO_MAX_VALUE)
		return err_set(WD_ETOOBIG, "undo chain of xid %llu: key of %u bytes or value of "
			       "%llu bytes over the limits (%u, %llu)", (unsigned long long)c->xid,
			       klen, (unsigned long long)vlen, UNDO_MAX_KEY, UNDO_MAX_VALUE);
	return 0;
}

int undo_append(undo_log *u, undo_chain *c, wd_lsn *xact_prev, unsigned kind, wd_relid rel,
		const void *key, uint32_t klen, const void *val, uint64_t vlen, undo_ptr *out)
{
	uint8_t hdr[UNDO_REC_HDR], small[UNDO_SMALL_SHARE];
	rec_src s = {{hdr, key, val}, {UNDO_REC_HDR, klen, vlen}, UNDO_REC_HDR + klen + vlen};
	append_ctx a;
	uint64_t pos = 0;
	undo_ptr rec = 0;
	int rc = check_args(c, kind, key, klen, val, vlen);

	if (rc != 0)
		return rc;
	/* field by field: = {...} would clear the builder's block array too */
	a.u = u;
	a.c = c;
	walrec_init(&a.b);
	a.bytes = NULL;
	a.img[0] = a.img[1] = NULL;
	a.prev = xact_prev ? *xact_prev : 0;
	encode_header(hdr, kind, rel, klen, vlen, c->head);
	/* one page's share at most: a small record's fits on the stack */
	if (s.total <= sizeof small)
		a.bytes = small;
	else if (!(a.bytes = malloc(u->ps)))
		return err_set(WD_ENOMEM, "undo log: out of memory");
	while (rc == 0 && pos < s.total) {
		rc = append_step(&a, &s, &pos, &rec);
		if (xact_prev)
			*xact_prev = a.prev; /* the last record that went in */
	}
	if (rc == 0) {
		c->head = *out = rec;
		UNDO_COUNT(u, records, 1);
		UNDO_COUNT(u, bytes, s.total);
	}
	walrec_free(&a.b);
	if (a.bytes != small)
		free(a.bytes);
	free(a.img[0]);
	free(a.img[1]);
	return rc;
}
