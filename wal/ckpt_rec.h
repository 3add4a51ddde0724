/*
 * ckpt_rec.h - the main data of an XLOG_CHECKPOINT record: its encoding
 * (the checkpoint writes it), decoding (recovery's analysis, waldump).
 * Byte table in recovery/README.md "Formats".
 *
 *   wal_ckpt c = {.redo = redo, .next_xid = x, .att = a, .natt = na,
 *                 .dpt = d, .ndpt = nd};
 *   uint8_t *buf; uint32_t len;
 *   wal_ckpt_encode(&c, &buf, &len);   ... walrec_set_main(&b, buf, len)
 *   wal_ckpt_decode(rec, &c);          ... wal_ckpt_free(&c)
 */
#ifndef WALDEN_WAL_CKPT_REC_H
#define WALDEN_WAL_CKPT_REC_H

#include <stddef.h>
#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"
#include "wal/record.h"

#define WAL_CKPT_FIXED 24u    /* redo, next_xid, natt, ndpt */
#define WAL_CKPT_ATT_SIZE 24u /* xid, last_lsn, undo head */
#define WAL_CKPT_DPT_SIZE 16u /* rel, blk, rec_lsn */
#define WAL_CKPT_TAIL 8u      /* dpt_lsn, after the tables (absent: old layout) */

typedef struct wal_ckpt_att {
	wd_xid xid;
	wd_lsn last_lsn;
	uint64_t head; /* an undo_ptr (undo/undo.h) */
} wal_ckpt_att;

typedef struct wal_ckpt_dpt {
	wd_relid rel;
	wd_blkno blk;
	wd_lsn rec_lsn;
} wal_ckpt_dpt;

typedef struct wal_ckpt {
	wd_lsn redo;
	wd_xid next_xid;
	/* the insert position read just before the dirty pages were listed:
	 * a page the table leaves out had every change logged below it on
	 * disk (recovery/README.md I7). Decoding a record without it (the
	 * first layout) gives redo, which says nothing more than I4. */
	wd_lsn dpt_lsn;
	wal_ckpt_att *att;
	uint32_t natt;
	wal_ckpt_dpt *dpt;
	uint32_t ndpt;
} wal_ckpt;

/* Encodes c into a malloc'd buffer. WD_ENOMEM, WD_ETOOBIG (larger than a
 * record may be). */
int wal_ckpt_encode(const wal_ckpt *c, uint8_t **out, uint32_t *len) WD_MUST_CHECK;

/* Decodes the main data of rec (an XLOG_CHECKPOINT); the tables are
 * malloc'd (wal_ckpt_free). Both layouts are read: with the dpt_lsn tail,
 * and without it (dpt_lsn = redo). WD_ECORRUPT naming the LSN if the
 * lengths do not agree, or dpt_lsn lies below redo; WD_ENOMEM. */
int wal_ckpt_decode(const wal_decoded *rec, wal_ckpt *c) WD_MUST_CHECK;

void wal_ckpt_free(wal_ckpt *c);

/* The describe text of waldump: counts, then entries while they fit. */
void wal_ckpt_describe(const wal_decoded *rec, char *buf, size_t cap);

#endif
