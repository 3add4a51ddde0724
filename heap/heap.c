/*
 * heap.c - opening and closing a heap relation, the logging steps every
 * change shares (heap_log: README P1 steps 4-6), statistics.
 */
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
	if ((rc = heap_fsm_load(h)) != 0) {
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
 * Steps 4-6 of P1 for one change of one page. buf is pinned and exclusively
 * latched and still holds the page as it was before the change; newpage is
 * the page after it (the caller changed a private copy). Step 4 decides the
 * full-page image on the old page's LSN (wal_log_needs_image) and takes it
 * of the new page, since redo of an image only restores it. Step 5 inserts
 * the record; only then (step 6) does the buffer take the new bytes, the
 * record's LSN and the dirty mark, so a failure leaves the page untouched.
 * On success *xact_prev (may be NULL) becomes the record's LSN.
 */
int heap_log(heap *h, bm_buf *buf, const uint8_t *newpage, const heap_logrec *r,
	     wd_xid xid, wd_lsn *xact_prev)
{
	wal_rec_builder b = {0};
	uint8_t *rec, *page = bufmgr_page(buf);
	bool image;
	uint32_t len;
	wd_lsn lsn;
	int rc;

	/* step 4: the record, with an image on the page's first change since
	 * the redo point (a page rebuilt from nothing needs none) */
	image = !(r->blk_flags & WAL_BLK_WILL_INIT) && wal_log_needs_image(h->log, page);
	walrec_begin(&b, WAL_RMGR_HEAP, r->type, xid, xact_prev ? *xact_prev : 0, 0, 0);
	rc = walrec_add_block(&b, h->rel, bufmgr_buf_blkno(buf), r->blk_flags,
			      image ? newpage : NULL, h->ps, h->log->compress, r->data,
			      r->data_len);
	if (rc == 0)
		rc = walrec_set_main(&b, r->main, r->main_len);
	if (rc == 0)
		rc = walrec_assemble(&b, &rec, &len);
	/* step 5: WAL first */
	if (rc == 0)
		rc = wal_insert(h->log->w, rec, len, &lsn);
	if (rc != 0)
		goto out;
	storage_crash_point("heap-after-wal-insert");
	/* step 6: the change reaches the page, stamped with its record */
	memcpy(page, newpage, h->ps);
	page_set_lsn(page, lsn);
	bufmgr_mark_dirty(buf, lsn);
	if (xact_prev)
		*xact_prev = lsn;
	if (image)
		HEAP_COUNT(h, images);
out:
	walrec_free(&b);
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
}
