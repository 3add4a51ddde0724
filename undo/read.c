/*
 * read.c - undo_read (README P2): one record read back by its pointer,
 * its key and value gathered from the chain's pages, every byte checked
 * against the page it comes from (bad bytes are input: WD_ECORRUPT naming
 * the block and offset, never a crash), and undo_rec_free.
 */
#include <stdlib.h>
#include <string.h>

#include "undo/undo_internal.h"

/* Where the body (key then value) of the record being read goes. */
typedef struct body_dst {
	undo_rec *r;
	uint64_t pos; /* body bytes copied so far */
} body_dst;

/*
 * Makes r's value buffer hold at least need bytes (need <= r->vlen). The
 * buffer grows as the chain's pages deliver bytes, doubling and never past
 * vlen: memory follows the bytes found, not a length a damaged header
 * claims (up to UNDO_MAX_VALUE).
 */
static int grow_val(undo_rec *r, uint64_t need)
{
	uint64_t cap = r->vcap ? r->vcap : 256;
	uint8_t *v;
	if (need <= r->vcap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > r->vlen)
		cap = r->vlen;
	if (!(v = realloc(r->val, cap)))
		return err_set(WD_ENOMEM, "undo record: out of memory for %llu bytes of a value",
			       (unsigned long long)cap);
	r->val = v;
	r->vcap = cap;
	return 0;
}

/* Copies n body bytes from src: into the key, then into the value. */
static int body_put(body_dst *d, const uint8_t *src, uint64_t n)
{
	undo_rec *r = d->r;
	int rc;
	if (d->pos < r->klen) {
		uint64_t k = r->klen - d->pos < n ? r->klen - d->pos : n;
		memcpy(r->key + d->pos, src, k);
		d->pos += k;
		src += k;
		n -= k;
	}
	if (n > 0) {
		if ((rc = grow_val(r, d->pos - r->klen + n)) != 0)
			return rc;
		memcpy(r->val + (d->pos - r->klen), src, n);
	}
	d->pos += n;
	return 0;
}

/* Grows r's key buffer to the length the header gave (at most
 * UNDO_MAX_KEY); the value buffer grows as its bytes are found. */
static int reserve(undo_rec *r)
{
	if (r->klen > r->kcap) {
		uint8_t *k = realloc(r->key, r->klen);
		if (!k)
			return err_set(WD_ENOMEM, "undo record: out of memory for a key of %u bytes",
				       r->klen);
		r->key = k;
		r->kcap = r->klen;
	}
	return 0;
}

/* Reads the record header at p from page (already decoded as v) into r. */
static int read_first(undo_log *u, undo_ptr p, const uint8_t *page, undo_rec *r,
		      body_dst *d)
{
	undo_page_view v;
	undo_rec_view rv;
	uint32_t off = UNDO_PTR_OFF(p), here;
	int rc = undo_page_view_decode(page, u->ps, &v);
	if (rc == 0)
		rc = undo_rec_view_decode(page, u->ps, off, &rv);
	if (rc != 0)
		return rc;
	r->self = p;
	r->kind = rv.kind;
	r->rel = rv.rel;
	r->prev = rv.prev;
	r->klen = rv.klen;
	r->vlen = rv.vlen;
	r->xid = v.xid;
	r->seq = v.seq;
	if ((rc = reserve(r)) != 0)
		return rc;
	here = rv.end - off - UNDO_REC_HDR;
	return body_put(d, page + off + UNDO_REC_HDR, here);
}

/*
 * Checks that page (block blk) is the page that follows block from, of
 * sequence number seq, in r's chain, and takes the body bytes it holds.
 * *full: the page is filled to its end (only then may the record go on).
 */
static int read_next(undo_log *u, const uint8_t *page, wd_blkno blk, wd_blkno from,
		     uint32_t seq, undo_rec *r, body_dst *d, bool *full)
{
	undo_page_view v;
	uint64_t left = (uint64_t)r->klen + r->vlen - d->pos, n;
	int rc = undo_page_view_decode(page, u->ps, &v);
	if (rc != 0)
		return rc;
	if (v.xid != r->xid || v.seq != seq || v.prev != from)
		return err_set(WD_ECORRUPT, "block %u is not the next page of the chain (xid "
			       "%llu, page %u after block %u expected; found xid %llu, page %u "
			       "after block %u)", blk, (unsigned long long)r->xid, seq, from,
			       (unsigned long long)v.xid, v.seq, v.prev);
	n = v.used - UNDO_DATA_START < left ? v.used - UNDO_DATA_START : left;
	*full = v.used == u->ps;
	return body_put(d, page + UNDO_DATA_START, n);
}

/* Unlatches and unpins buf. */
static void drop(undo_log *u, bm_buf *buf)
{
	bufmgr_unlatch(buf);
	bufmgr_unpin(u->pool, buf);
}

/* The continuation: pages after the first, linked by next_blk, until the
 * body is complete. Each page is left before the next is taken. */
static int read_rest(undo_log *u, undo_ptr p, bm_buf *buf, undo_rec *r, body_dst *d)
{
	uint64_t body = (uint64_t)r->klen + r->vlen;
	wd_blkno blk = UNDO_PTR_BLK(p), next;
	uint32_t seq = r->seq;
	bool full = true; /* undo_rec_view_decode checked the first page */
	int rc = 0;
	while (rc == 0 && d->pos < body) {
		next = undo_page_next(bufmgr_page(buf));
		if (!full || next == WD_INVALID_BLKNO) {
			rc = err_set(WD_ECORRUPT, "runs past the chain's written bytes (%llu of "
				     "%llu bytes found, chain ends at block %u)",
				     (unsigned long long)d->pos, (unsigned long long)body, blk);
			break;
		}
		drop(u, buf);
		if ((rc = undo_pin(u, next, &buf)) != 0)
			return rc;
		bufmgr_latch(buf, BM_SHARE);
		rc = read_next(u, bufmgr_page(buf), next, blk, ++seq, r, d, &full);
		blk = next;
	}
	drop(u, buf);
	return rc;
}

int undo_read(undo_log *u, undo_ptr p, undo_rec *r)
{
	body_dst d = {.r = r};
	bm_buf *buf;
	int rc;

	if (UNDO_PTR_OFF(p) < UNDO_DATA_START || UNDO_PTR_OFF(p) > u->ps - UNDO_REC_HDR)
		return err_set(WD_ECORRUPT, "undo pointer %u/%u: no record can start there",
			       UNDO_PTR_BLK(p), UNDO_PTR_OFF(p));
	if ((rc = undo_pin(u, UNDO_PTR_BLK(p), &buf)) == 0) {
		bufmgr_latch(buf, BM_SHARE);
		if ((rc = read_first(u, p, bufmgr_page(buf), r, &d)) != 0)
			drop(u, buf);
		else
			rc = read_rest(u, p, buf, r, &d); /* releases buf */
	}
	if (rc != 0)
		return err_wrap(rc, "undo record %u/%u", UNDO_PTR_BLK(p), UNDO_PTR_OFF(p));
	return 0;
}

void undo_rec_free(undo_rec *r)
{
	free(r->key);
	free(r->val);
	memset(r, 0, sizeof *r);
}
