/*
 * heap.c - opening and closing a heap relation, the logged change every
 * page change goes through (heap_change_apply, heap_log: README P1 steps
 * 3-6), pinning a block by TID (heap_pin_block), statistics.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "heap/heap_internal.h"
#include "storage/storage.h"
#include "wal/record.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

void heap_opts_default(heap_opts *o)
{
	o->max_value_bytes = HEAP_MAX_VALUE_DEFAULT;
	o->fsm_rel = 0;
	o->fsm_trust = true;
}

/* Checks o against the pool and the log. WD_EINVAL with a detail. */
static int check_opts(bufmgr *pool, wal_log_ctx *log, wd_relid rel, const heap_opts *o)
{
	if (!log || !log->w)
		return err_set(WD_EINVAL, "heap rel %u: a WAL logging context is required", rel);
	if (log->page_size != bufmgr_page_size(pool))
		return err_set(WD_EINVAL, "heap rel %u: log page size %u, pool page size %u",
			       rel, log->page_size, bufmgr_page_size(pool));
	if (o->max_value_bytes == 0 || o->max_value_bytes > HEAP_MAX_VALUE_LIMIT)
		return err_set(WD_EINVAL, "heap rel %u: max_value_bytes %llu not in 1..%llu", rel,
			       (unsigned long long)o->max_value_bytes,
			       (unsigned long long)HEAP_MAX_VALUE_LIMIT);
	if (o->fsm_rel == rel)
		return err_set(WD_EINVAL, "heap rel %u: the FSM needs a relation of its own", rel);
	return 0;
}

/* Fills the fixed fields of a new heap object. */
static void heap_setup(heap *h, bufmgr *pool, wal_log_ctx *log, wd_relid rel,
		       const heap_opts *o)
{
	h->pool = pool;
	h->log = log;
	h->rel = rel;
	h->fsm_rel = o->fsm_rel;
	h->ps = bufmgr_page_size(pool);
	h->max_inline = h->ps / 4;
	h->ovf_cap = h->ps - PAGE_HEADER_SIZE - HOVF_SPECIAL;
	h->unit = h->ps / 256;
	h->fsm_per_page = h->ps - PAGE_HEADER_SIZE;
	h->max_value = o->max_value_bytes;
}

int heap_open(bufmgr *pool, wal_log_ctx *log, wd_relid rel, const heap_opts *o,
	      heap **out)
{
	heap_opts def;
	heap *h;
	int rc;

	if (!o) {
		heap_opts_default(&def);
		o = &def;
	}
	if ((rc = check_opts(pool, log, rel, o)) != 0)
		return rc;
	if (!(h = calloc(1, sizeof *h)))
		return err_set(WD_ENOMEM, "heap rel %u: out of memory", rel);
	heap_setup(h, pool, log, rel, o);
	if ((rc = heap_fsm_init(h)) != 0) {
		free(h);
		return rc;
	}
	if ((rc = heap_fsm_load(h, o->fsm_trust)) != 0) {
		heap_close(h);
		return rc;
	}
	*out = h;
	return 0;
}

void heap_close(heap *h)
{
	if (!h)
		return;
	heap_fsm_free(h);
	free(h);
}

uint32_t heap_max_key_len(const heap *h)
{
	return h->max_inline - HT_HDR - HT_OVF_PTR;
}

int heap_nblocks(heap *h, wd_blkno *n)
{
	return bufmgr_rel_nblocks(h->pool, h->rel, n);
}

/*
 * Raises *bound (nblocks_known, fsm_nblocks_known) to nb if that is more:
 * a CAS-max, so a thread that read an older, smaller count never lowers a
 * bound another thread raised meanwhile (the bound only grows, as the
 * relation does while the heap is open).
 */
void heap_bound_raise(_Atomic wd_blkno *bound, wd_blkno nb)
{
	wd_blkno cur = atomic_load_explicit(bound, memory_order_relaxed);
	while (cur < nb && !atomic_compare_exchange_weak_explicit(
				   bound, &cur, nb, memory_order_relaxed, memory_order_relaxed))
		;
}

/*
 * Pins heap block blk for reading into *buf, or sets *past_end (nothing
 * pinned, 0 returned) if the relation has no such block. The pool's block
 * count is asked only for blocks at or past nblocks_known, a lower bound
 * raised here (relations only grow while the heap is open), so readers
 * of existing blocks skip the relation lookup.
 */
int heap_pin_block(heap *h, wd_blkno blk, bool *past_end, bm_buf **buf)
{
	wd_blkno nb;
	int rc;
	*past_end = false;
	if (blk >= atomic_load_explicit(&h->nblocks_known, memory_order_relaxed)) {
		if ((rc = bufmgr_rel_nblocks(h->pool, h->rel, &nb)) != 0)
			return rc;
		heap_bound_raise(&h->nblocks_known, nb);
		if (blk >= nb) {
			*past_end = true;
			return 0;
		}
	}
	return bufmgr_pin(h->pool, h->rel, blk, BM_READ, buf);
}

/*
 * P1 step 3 on page p: carries out change c, then tidies the page (I3).
 * The caller checked that it fits (P1 step 2), so it cannot fail; the
 * asserts catch a check that disagrees with storage/page.c. Used on the
 * buffer itself, or on a private copy when the record needs an image.
 */
void heap_change_apply(const heap *h, uint8_t *p, const heap_change *c)
{
	uint32_t lower, upper;
	int rc = 0;
	if (c->op == HC_OVF_FORMAT) {
		heap_ovf_format(p, h->ps, c->next, c->item, c->len);
		return;
	}
	if (c->op == HC_EMPTY || (c->op == HC_INSERT && c->init))
		page_init(p, h->ps, PAGE_KIND_HEAP, 0);
	if (c->op == HC_EMPTY)
		return;
	lower = page_lower(p);
	upper = page_upper(p);
	if (c->op == HC_INSERT) {
		/* c->slot is the page's first unused slot (insert_slot, under
		 * this latch; 0 on a page just formatted) */
		rc = page_item_add_first_unused(p, c->item, c->len, c->slot);
		assert(rc == c->slot);
	} else if (c->op == HC_REPLACE) {
		rc = page_item_replace(p, c->slot, c->item, c->len);
		assert(rc == 0);
	} else {
		page_item_clear(p, c->slot);
	}
	(void)rc;
	heap_page_tidy_from(p, lower, upper);
}

/* Step 4: the record of c in b, with image (may be NULL: none) as the page
 * after the change. The page in buf is still the page before it, whose LSN
 * the image decision looked at: without an image it is noted in b for the
 * recheck at insert (b->fpw_lsn, step 5). */
static int build_record(heap *h, wal_rec_builder *b, bm_buf *buf, const heap_change *c,
			const uint8_t *image, wd_xid xid, wd_lsn prev, uint8_t **rec,
			uint32_t *len)
{
	int rc;
	walrec_begin(b, WAL_RMGR_HEAP, c->type, xid, prev, 0, 0);
	rc = wal_log_add_block(h->log, b, h->rel, bufmgr_buf_blkno(buf), c->blk_flags,
			       bufmgr_page(buf), image, c->data, c->data_len);
	if (rc == 0)
		rc = walrec_set_main(b, c->main, c->main_len);
	if (rc == 0)
		rc = walrec_assemble(b, rec, len);
	return rc;
}

/*
 * Step 3: the image decision for change c of page (not changed yet). If the
 * record needs a full-page image (I5; never for WAL_BLK_WILL_INIT), *image
 * is the page after the change, made on a private copy (*copy, allocated
 * and changed once: the page cannot move under the latch, so a second
 * decision after a refused insert reuses it); else *image is NULL.
 * WD_ENOMEM.
 */
static int decide_image(heap *h, const uint8_t *page, const heap_change *c, uint8_t **copy,
			const uint8_t **image)
{
	*image = NULL;
	if ((c->blk_flags & WAL_BLK_WILL_INIT) || !wal_log_needs_image(h->log, page))
		return 0;
	if (!*copy) {
		if (!(*copy = malloc(h->ps)))
			return err_set(WD_ENOMEM, "heap rel %u: out of memory", h->rel);
		memcpy(*copy, page, h->ps);
		heap_change_apply(h, *copy, c);
	}
	*image = *copy;
	return 0;
}

/*
 * Steps 3-6 of P1 for change c of the page in buf, which is pinned and
 * exclusively latched, and which the caller has checked c fits (step 2).
 *
 * WAL before the change, and nothing to undo: the record is built and
 * inserted while the page is still untouched (a record without an image
 * needs only c), and only then is c applied to the buffer in place, which
 * cannot fail. Every failure (no memory for the record, wal_insert's
 * WD_ENOSPC or WD_EPANIC) therefore leaves the page exactly as it was.
 *
 * The one exception to "no copy" is a record that must carry a full-page
 * image (wal_log_needs_image on the page's LSN before the change: its
 * first change after the redo point, I5): the image is of the page after
 * the change, so c is applied to a private copy first, the record carries
 * that copy, and the copy goes into the buffer after wal_insert. That is
 * once per page per redo point. The decision is rechecked at insert
 * (wal_insert_fpw, step 5b): if a checkpoint moved the redo point past the
 * page's LSN in between, nothing was inserted, and the record is decided
 * and built again - now with the image. On success the page gets the
 * record's LSN; *xact_prev (may be NULL) becomes the LSN.
 *
 * The buffer is marked dirty BEFORE wal_insert (step 5a), with the insert
 * position as its recLSN (at or before the record's LSN): a checkpoint
 * takes its redo point and then looks for dirty buffers, so a record that
 * lands before the redo point must find its page already dirty, or the
 * checkpoint would skip the page and redo from the redo point would never
 * replay the record (README I8). If wal_insert then fails, the page is
 * dirty but unchanged: at worst one needless write.
 */
int heap_log(heap *h, bm_buf *buf, const heap_change *c, wd_xid xid, wd_lsn *xact_prev)
{
	wal_rec_builder b;
	uint8_t *rec, *page = bufmgr_page(buf), *copy = NULL;
	const uint8_t *image;
	uint32_t len;
	wd_lsn lsn;
	int rc;

	walrec_init(&b);
	do {
		/* step 3, image case only: the change on a private copy */
		rc = decide_image(h, page, c, &copy, &image);
		/* step 4: the record (an image of the page after the change if needed) */
		if (rc == 0)
			rc = build_record(h, &b, buf, c, image, xid, xact_prev ? *xact_prev : 0,
					  &rec, &len);
		/* step 5a: dirty before the record exists (I8); step 5: WAL first,
		 * the image decision rechecked under the reservation (5b) */
		if (rc == 0) {
			bufmgr_mark_dirty(buf, wal_insert_pos(h->log->w));
			rc = wal_insert_fpw(h->log->w, rec, len, b.fpw_lsn, &lsn);
		}
	} while (rc == WAL_INSERT_RETRY); /* the redo point moved: decide again */
	if (rc != 0)
		goto out; /* the page is untouched */
	storage_crash_point("heap-after-wal-insert");
	/* step 6: the change reaches the page, stamped with its record */
	if (image)
		memcpy(page, image, h->ps);
	else
		heap_change_apply(h, page, c);
	page_set_lsn(page, lsn); /* dirty since step 5a */
	if (xact_prev)
		*xact_prev = lsn;
	if (image)
		HEAP_COUNT(h, images);
out:
	walrec_free(&b);
	free(copy);
	return rc;
}

void heap_stats_get(heap *h, heap_stats *o)
{
	struct heap_counters *s = &h->st;
	o->inserts = atomic_load(&s->inserts);
	o->fetches = atomic_load(&s->fetches);
	o->deletes = atomic_load(&s->deletes);
	o->updates_in_place = atomic_load(&s->updates_in_place);
	o->updates_moved = atomic_load(&s->updates_moved);
	o->overflow_written = atomic_load(&s->overflow_written);
	o->overflow_freed = atomic_load(&s->overflow_freed);
	o->extends = atomic_load(&s->extends);
	o->pages_tried = atomic_load(&s->pages_tried);
	o->fsm_wrong = atomic_load(&s->fsm_wrong);
	o->fsm_rebuilt = atomic_load(&s->fsm_rebuilt);
	o->fsm_errors = atomic_load(&s->fsm_errors);
	o->images = atomic_load(&s->images);
	o->chains_orphaned = atomic_load(&s->chains_orphaned);
	o->updates_undone = atomic_load(&s->updates_undone);
}
