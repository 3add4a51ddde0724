/*
 * fuzz_undo_chain.c - fuzz target "undo_chain": the undo relation
 * (DIR/base/3) as rollback and recovery's undo pass read it. Every record
 * that starts on a page (undo_page_view_decode, undo_rec_view_decode, the
 * walk of walden inspect) is read with undo_read (undo/read.c: header,
 * key and value gathered across the chain's pages), then its prev chain is
 * followed as a rollback does, record by record. A record read must have
 * the lengths its header view gave, and memory must follow the bytes the
 * chain holds, not the lengths a header claims (the value buffer, which
 * doubles as it fills, is never more than twice the relation).
 *
 * Input: mode byte, then up to 16 pages of 4096 bytes written as the undo
 * relation.
 *   bit 0 (FZ_FIX)  store the correct checksum in every page that is not
 *                   all zero
 */
#include <stdlib.h>

#include "bufmgr/bufmgr.h"
#include "fuzz/fuzz.h"
#include "storage/page.h"
#include "undo/undo.h"

const char fz_target_name[] = "undo_chain";

#define PAGE_SIZE PAGE_SIZE_MIN
#define MAX_PAGES 16
#define MAX_STEPS 16

/* undo_read of p, then of each prev, as a rollback walks the chain. */
static void read_chain(undo_log *u, undo_ptr p, const undo_rec_view *first, undo_rec *r,
		       size_t chain_bytes)
{
	for (unsigned step = 0; p != 0 && step < MAX_STEPS; step++) {
		int rc;
		fz_clear_error();
		rc = fz_check_rc(undo_read(u, p, r), 0, "undo_read");
		if (r->vcap > 2 * chain_bytes + 256)
			abort(); /* memory for a length no page holds (the
				  * buffer doubles: twice the bytes found) */
		if (rc != 0)
			return;
		fz_accepted++;
		if (step == 0 && (r->klen != first->klen || r->vlen != first->vlen ||
				  r->kind != first->kind || r->prev != first->prev))
			abort(); /* the record read is not the one its header says */
		p = r->prev;
	}
}

/* Every record starting on block b. */
static void page_records(undo_log *u, const uint8_t *page, wd_blkno b, undo_rec *r,
			 size_t chain_bytes)
{
	undo_page_view v;
	undo_rec_view rv;
	if (undo_page_view_decode(page, PAGE_SIZE, &v) != 0)
		return;
	for (uint32_t off = v.first; off && off < v.used; off = rv.end) {
		if (undo_rec_view_decode(page, PAGE_SIZE, off, &rv) != 0)
			return;
		read_chain(u, UNDO_PTR(b, off), &rv, r, chain_bytes);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_input in = fz_input_split(data, size);
	size_t npages = (in.len + PAGE_SIZE - 1) / PAGE_SIZE;
	uint8_t *file;
	char path[4300];
	bufmgr_opts o;
	bufmgr *pool = NULL;
	wal_log_ctx log = {.w = fz_wal(PAGE_SIZE), .page_size = PAGE_SIZE};
	undo_log *u = NULL;
	undo_rec r = {0};

	if (npages > MAX_PAGES)
		npages = MAX_PAGES;
	file = fz_copy_padded(&in, npages * PAGE_SIZE + 1);
	if (in.mode & FZ_FIX)
		for (size_t b = 0; b < npages; b++)
			if (!page_is_zero(file + b * PAGE_SIZE, PAGE_SIZE))
				page_checksum_set(file + b * PAGE_SIZE, PAGE_SIZE, (wd_blkno)b);
	fz_write_file("undo", file, npages * PAGE_SIZE, path, sizeof path);

	bufmgr_opts_default(&o);
	o.page_size = PAGE_SIZE;
	o.pool_bytes = (uint64_t)BM_MIN_BUFFERS * PAGE_SIZE;
	if (bufmgr_create(&o, &pool) != 0 || bufmgr_rel_open(pool, UNDO_REL, path, 0) != 0 ||
	    undo_open(pool, &log, &u) != 0)
		abort();
	for (size_t b = 0; b < npages; b++)
		page_records(u, file + b * PAGE_SIZE, (wd_blkno)b, &r, npages * PAGE_SIZE);
	undo_rec_free(&r);
	undo_close(u);
	bufmgr_destroy(pool);
	free(file);
	return 0;
}
