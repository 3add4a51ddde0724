/*
 * fuzz_wal_record.c - fuzz target "wal_record": one WAL record, as
 * walrec_decode (wal/record.c) checks and parses it, then everything
 * recovery and `walden waldump` do with a decoded record: the rmgr's
 * describe routine (waldump's printer), each full-page image restored
 * (walrec_restore_image), the checkpoint and undo decoders (recovery's
 * analysis), and redo through the registered routine (wal_rmgr_redo) on a
 * scratch pool.
 *
 * Input: mode byte, then the record bytes.
 *   bit 0 (FZ_FIX)  write the expected self-LSN and a correct CRC first
 *   bits 1-2        page size 4096 << n for images and redo
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "storage/page.h"
#include "undo/undo_internal.h"
#include "wal/ckpt_rec.h"
#include "wal/rmgr.h"

const char fz_target_name[] = "wal_record";

/* Where the record is expected: LSN 64 of segment 1 of 64 KiB segments. */
#define REC_LSN ((wd_lsn)0x10040)

/* The per-rmgr decoders recovery's analysis pass runs on a record. */
static void decode_payload(const wal_decoded *d, uint32_t ps)
{
	wal_ckpt c;
	undo_write w;
	undo_ptr undone, next;
	if (d->rmgr == WAL_RMGR_XLOG && d->type == XLOG_CHECKPOINT) {
		fz_clear_error();
		if (fz_check_rc(wal_ckpt_decode(d, &c), 0, "wal_ckpt_decode") == 0)
			wal_ckpt_free(&c);
	}
	if (d->rmgr == WAL_RMGR_UNDO && d->type == UNDO_APPEND) {
		fz_clear_error();
		fz_check_rc(undo_append_decode(d, ps, &w), 0, "undo_append_decode");
	}
	if (d->rmgr == WAL_RMGR_UNDO && d->type == UNDO_CLR) {
		fz_clear_error();
		fz_check_rc(undo_clr_decode(d, &undone, &next), 0, "undo_clr_decode");
	}
}

/* Every block's image, expanded into a page of ps bytes. */
static void restore_images(const wal_decoded *d, uint32_t ps)
{
	uint8_t *page = malloc(ps);
	if (!page)
		abort();
	for (unsigned i = 0; i < d->nblocks; i++) {
		if (!(d->blocks[i].flags & WAL_BLK_HAS_IMAGE))
			continue;
		fz_clear_error();
		fz_check_rc(walrec_restore_image(d, i, page, ps), 0, "walrec_restore_image");
	}
	free(page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_input in = fz_input_split(data, size);
	uint32_t ps = PAGE_SIZE_MIN << ((in.mode >> 1) & 3);
	uint8_t *rec = fz_copy_padded(&in, in.len);
	wal_decoded d;
	char line[512];
	uint32_t tot_len = 0;
	int rc;

	fz_register_rmgrs();
	if ((in.mode & FZ_FIX) && in.len >= WAL_REC_HEADER_SIZE &&
	    walrec_check_len(rec, &tot_len) == WAL_END_NONE && tot_len <= in.len)
		walrec_stamp(rec, tot_len, REC_LSN);
	fz_clear_error();
	rc = fz_check_rc(walrec_decode(rec, (uint32_t)in.len, REC_LSN, &d), 0, "walrec_decode");
	if (rc == 0) {
		fz_accepted++;
		wal_rmgr_describe(&d, line, sizeof line);
		if (!memchr(line, '\0', sizeof line))
			abort();
		decode_payload(&d, ps);
		restore_images(&d, ps);
		fz_redo_begin(ps);
		fz_clear_error();
		fz_check_rc(fz_redo(&d), 0, "wal_rmgr_redo");
		fz_redo_end();
	} else if (d.status == WAL_END_NONE) {
		abort(); /* a rejected record must say why */
	}
	free(rec);
	return 0;
}
