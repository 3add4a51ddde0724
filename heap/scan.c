/*
 * scan.c - the sequential scan (README P7): every tuple in TID order, each
 * page copied under a share latch so no latch is held between calls.
 * Entry points: heap_scan_begin, heap_scan_limit, heap_scan_next,
 * heap_scan_end.
 */
#include <stdlib.h>
#include <string.h>

#include "heap/heap_internal.h"

struct heap_scan {
	heap *h;
	wd_blkno blk;      /* block held in page (WD_INVALID_BLKNO: none yet) */
	wd_blkno first, end; /* the blocks scanned: [first, end) (heap_scan_limit) */
	uint32_t slot;     /* next slot of page to look at */
	uint8_t *page;     /* copy of block blk */
	uint8_t *vbuf;     /* overflowed values are read into this */
	uint64_t vcap;
};

int heap_scan_begin(heap *h, heap_scan **out)
{
	heap_scan *s = calloc(1, sizeof *s);
	if (!s || !(s->page = malloc(h->ps))) {
		free(s);
		return err_set(WD_ENOMEM, "heap rel %u: out of memory", h->rel);
	}
	s->h = h;
	s->blk = WD_INVALID_BLKNO;
	s->end = WD_INVALID_BLKNO;
	*out = s;
	return 0;
}

void heap_scan_end(heap_scan *s)
{
	if (!s)
		return;
	free(s->page);
	free(s->vbuf);
	free(s);
}

int heap_scan_limit(heap_scan *s, wd_blkno first, wd_blkno end)
{
	if (s->blk != WD_INVALID_BLKNO || first > end)
		return err_set(WD_EINVAL, "heap rel %u: scan limited to blocks [%u, %u) %s",
			       s->h->rel, first, end, first > end ? "(an empty range backwards)"
								  : "after it started");
	s->first = first;
	s->end = end;
	return 0;
}

/* P7 step 1: copies the next block into s->page; WD_NOTFOUND past the
 * relation's end (read again each time: the heap may grow meanwhile) or
 * the limit. */
static int next_page(heap_scan *s)
{
	wd_blkno nb, blk = s->blk == WD_INVALID_BLKNO ? s->first : s->blk + 1;
	bm_buf *buf;
	int rc = bufmgr_rel_nblocks(s->h->pool, s->h->rel, &nb);
	if (rc != 0)
		return rc;
	if (blk >= nb || blk >= s->end)
		return WD_NOTFOUND;
	if ((rc = bufmgr_pin(s->h->pool, s->h->rel, blk, BM_READ, &buf)) != 0)
		return rc;
	bufmgr_latch(buf, BM_SHARE);
	memcpy(s->page, bufmgr_page(buf), s->h->ps);
	bufmgr_unlatch(buf);
	bufmgr_unpin(s->h->pool, buf);
	s->blk = blk;
	s->slot = 0;
	return 0;
}

/* P7 step 3: the value of an overflowed tuple, read into s->vbuf. */
static int read_value(heap_scan *s, const heap_tuple *t, const uint8_t **val)
{
	if (t->vlen > s->vcap) {
		uint8_t *nb = realloc(s->vbuf, (size_t)t->vlen);
		if (!nb)
			return err_set(WD_ENOMEM, "heap rel %u: value of %llu bytes", s->h->rel,
				       (unsigned long long)t->vlen);
		s->vbuf = nb;
		s->vcap = t->vlen;
	}
	*val = s->vbuf;
	return heap_ovf_read(s->h, t->ovf_first, t->vlen, s->vbuf, s->vcap);
}

int heap_scan_next(heap_scan *s, heap_tid *tid, const uint8_t **key, uint32_t *klen,
		   const uint8_t **val, uint64_t *vlen)
{
	const uint8_t *item = NULL;
	uint32_t len;
	heap_tuple t;
	int rc;

	/* step 2: the next used slot of a heap page */
	while (!item) {
		if (s->blk == WD_INVALID_BLKNO || page_kind(s->page) != PAGE_KIND_HEAP ||
		    s->slot >= page_nslots(s->page)) {
			if ((rc = next_page(s)) != 0)
				return rc;
			continue;
		}
		item = page_item_const(s->page, s->slot++, &len);
	}
	if ((rc = heap_tuple_parse(item, len, &t)) != 0)
		return err_wrap(rc, "heap rel %u block %u slot %u", s->h->rel, s->blk,
				s->slot - 1);
	*tid = (heap_tid){s->blk, (uint16_t)(s->slot - 1)};
	*key = t.key;
	*klen = t.klen;
	*vlen = t.vlen;
	*val = t.val;
	if (t.flags & HT_F_OVERFLOW)
		return read_value(s, &t, val);
	return 0;
}
