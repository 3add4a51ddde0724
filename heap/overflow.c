/*
 * overflow.c - values too long for a heap page, stored on a chain of
 * overflow pages of the same relation (README P3, P4): writing a chain
 * (last chunk first, so each page is written once, knowing its next),
 * reading it, and freeing it back to free space. Every overflow page write
 * and free is one WAL record that rebuilds the page from nothing
 * (WAL_BLK_WILL_INIT), so none of them needs a full-page image.
 * Entry points: heap_ovf_write, heap_ovf_read, heap_ovf_free.
 */
#include <string.h>

#include "heap/heap_internal.h"
#include "wal/rmgr.h"

/* Pages a chain for a vlen-byte value has (at least 1: a bound for
 * following a chain, which must never loop). */
static uint64_t chain_pages(const heap *h, uint64_t vlen)
{
	uint64_t n = (vlen + h->ovf_cap - 1) / h->ovf_cap;
	return n ? n : 1;
}

/* An empty page (no tuple), pinned and exclusively latched: from the FSM
 * (checked under the latch: the map is a hint) or a new block. */
static int take_empty(heap *h, wd_blkno *blk, bm_buf **buf)
{
	for (;;) {
		int rc = heap_take_page(h, FSM_CAT_EMPTY, WD_INVALID_BLKNO, blk, buf);
		if (rc != 0)
			return rc;
		if (heap_page_category(h, bufmgr_page(*buf)) == FSM_CAT_EMPTY)
			return 0;
		HEAP_COUNT(h, fsm_wrong);
		heap_release_page(h, *blk, *buf); /* corrects its entry */
	}
}

/* P3 steps 1-4 for one page: formats an empty page as an overflow page
 * holding chunk[0, len) that points at next, logged. *blk: its block. */
static int write_one(heap *h, wd_xid xid, wd_lsn *prev, const uint8_t *chunk,
		     uint32_t len, wd_blkno next, wd_blkno *blk)
{
	uint8_t main[HR_OVF_WRITE_MAIN];
	heap_change c = {.op = HC_OVF_FORMAT, .item = chunk, .len = len, .next = next,
			 .type = HEAP_OVERFLOW_WRITE, .blk_flags = WAL_BLK_WILL_INIT,
			 .data = chunk, .data_len = len, .main = main, .main_len = sizeof main};
	bm_buf *buf;
	int rc = take_empty(h, blk, &buf);
	if (rc != 0)
		return rc;
	put_le32(main, next);
	put_le32(main + 4, len);
	rc = heap_log(h, buf, &c, xid, prev);
	heap_release_page(h, *blk, buf);
	if (rc == 0)
		HEAP_COUNT(h, overflow_written);
	return rc;
}

/*
 * P3: writes val[0, vlen) to a new chain of overflow pages, the last chunk
 * first, and returns its first block. On failure the pages already written
 * are freed again (best effort; a crash leaves them orphaned, README
 * "Crash behaviour").
 */
int heap_ovf_write(heap *h, wd_xid xid, wd_lsn *prev, const uint8_t *val,
		   uint64_t vlen, wd_blkno *first)
{
	uint64_t n = chain_pages(h, vlen);
	wd_blkno next = WD_INVALID_BLKNO, blk;
	int rc = 0;

	for (uint64_t i = n; i-- > 0 && rc == 0;) {
		uint64_t off = i * h->ovf_cap;
		uint32_t len = (uint32_t)(vlen - off < h->ovf_cap ? vlen - off : h->ovf_cap);
		rc = write_one(h, xid, prev, val + off, len, next, &blk);
		if (rc == 0)
			next = blk;
	}
	if (rc != 0 && next != WD_INVALID_BLKNO)
		heap_ovf_discard(h, xid, prev, next, vlen);
	if (rc == 0)
		*first = next;
	return rc;
}

/*
 * Copies up to cap bytes of overflow page blk's chunk to out under a share
 * latch; *next: the chain link. The chunk must hold exactly `expect` bytes
 * (the chain's chunk i holds min(ovf_cap, vlen - i * ovf_cap), P3 step 1):
 * any other length means a damaged chain, WD_ECORRUPT naming the block.
 */
static int read_one(heap *h, wd_blkno first, wd_blkno blk, uint32_t expect, uint8_t *out,
		    uint64_t cap, wd_blkno *next)
{
	bm_buf *buf;
	uint32_t len = 0;
	int rc = bufmgr_pin(h->pool, h->rel, blk, BM_READ, &buf);
	if (rc != 0)
		return rc;
	bufmgr_latch(buf, BM_SHARE);
	rc = heap_ovf_parse(bufmgr_page(buf), h->ps, next, &len);
	if (rc == 0 && len == expect)
		memcpy(out, bufmgr_page(buf) + PAGE_HEADER_SIZE, len < cap ? len : cap);
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
	if (rc != 0)
		return err_wrap(rc, "heap rel %u: overflow block %u (chain from block %u)", h->rel,
				blk, first);
	if (len != expect)
		return err_set(WD_ECORRUPT, "heap rel %u: overflow block %u (chain from block %u) "
			       "holds a chunk of %u bytes where the value needs %u", h->rel, blk,
			       first, len, expect);
	return 0;
}

/*
 * Reads the first min(vlen, cap) bytes of the value whose chain starts at
 * first into buf, checking the chain against the value (never a silent
 * wrong answer): every chunk read must have the length P3 gave it, and
 * when the whole value is read the chain must end there (next ==
 * WD_INVALID_BLKNO). WD_ECORRUPT naming the block otherwise: a chain
 * shorter or longer than the value, a chunk of the wrong length, a page on
 * it that is not an overflow page.
 */
int heap_ovf_read(heap *h, wd_blkno first, uint64_t vlen, uint8_t *buf, uint64_t cap)
{
	uint64_t want = vlen < cap ? vlen : cap, got = 0;
	wd_blkno blk = first, prev = first;
	int rc;
	while (got < want) {
		uint64_t left = vlen - got;
		uint32_t expect = (uint32_t)(left < h->ovf_cap ? left : h->ovf_cap);
		if (blk == WD_INVALID_BLKNO)
			return err_set(WD_ECORRUPT,
				       "heap rel %u: overflow chain from block %u ends at block %u "
				       "after %llu of %llu bytes", h->rel, first, prev,
				       (unsigned long long)got, (unsigned long long)vlen);
		prev = blk;
		if ((rc = read_one(h, first, blk, expect, buf + got, want - got, &blk)) != 0)
			return rc;
		got += expect; /* chunks are whole ovf_cap pages but the last */
	}
	if (got == vlen && vlen > 0 && blk != WD_INVALID_BLKNO)
		return err_set(WD_ECORRUPT,
			       "heap rel %u: overflow chain from block %u goes on past the end of "
			       "its %llu-byte value (block %u points at block %u)", h->rel, first,
			       (unsigned long long)vlen, prev, blk);
	return 0;
}

/* P4 for one page: turns overflow page blk back into an empty heap page,
 * logged; *next: its chain link. */
static int free_one(heap *h, wd_xid xid, wd_lsn *prev, wd_blkno blk, wd_blkno *next)
{
	uint8_t main[HR_OVF_FREE_MAIN];
	heap_change c = {.op = HC_EMPTY, .type = HEAP_OVERFLOW_FREE,
			 .blk_flags = WAL_BLK_WILL_INIT, .main = main, .main_len = sizeof main};
	uint32_t len;
	bm_buf *buf;
	int rc = bufmgr_pin(h->pool, h->rel, blk, BM_READ, &buf);
	if (rc != 0)
		return rc;
	bufmgr_latch(buf, BM_EXCL);
	rc = heap_ovf_parse(bufmgr_page(buf), h->ps, next, &len);
	if (rc == 0) {
		put_le32(main, *next);
		rc = heap_log(h, buf, &c, xid, prev);
	} else {
		rc = err_wrap(rc, "heap rel %u: overflow block %u", h->rel, blk);
	}
	heap_release_page(h, blk, buf); /* an empty page: free space again */
	if (rc == 0)
		HEAP_COUNT(h, overflow_freed);
	return rc;
}

/* P4: frees every page of the chain starting at first (of a vlen-byte
 * value); each becomes an empty heap page, reusable by inserts and chains. */
int heap_ovf_free(heap *h, wd_xid xid, wd_lsn *prev, wd_blkno first, uint64_t vlen)
{
	wd_blkno blk = first;
	int rc = 0;
	for (uint64_t i = 0; rc == 0 && blk != WD_INVALID_BLKNO; i++) {
		if (i == chain_pages(h, vlen))
			return err_set(WD_ECORRUPT, "heap rel %u: overflow chain from block %u "
				       "longer than its %llu-byte value", h->rel, first,
				       (unsigned long long)vlen);
		rc = free_one(h, xid, prev, blk, &blk);
	}
	return rc;
}

/* Frees a chain that no tuple points at, after a failure part-way through
 * a change: best effort, the caller already has an error to report. What
 * cannot be freed is left as an orphan and counted (chains_orphaned,
 * README "Orphans"). */
void heap_ovf_discard(heap *h, wd_xid xid, wd_lsn *prev, wd_blkno first, uint64_t vlen)
{
	if (heap_ovf_free(h, xid, prev, first, vlen) != 0)
		HEAP_COUNT(h, chains_orphaned);
}
