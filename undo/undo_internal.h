/*
 * undo_internal.h - what the files of undo/ share: struct undo_log, the
 * byte offsets of undo pages, record headers and WAL payloads (tables in
 * undo/README.md, "Formats"), and the page helpers that changes and redo
 * both use so that redo rebuilds the same bytes (README I3).
 */
#ifndef WALDEN_UNDO_INTERNAL_H
#define WALDEN_UNDO_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/bytes.h"
#include "storage/page.h"
#include "undo/undo.h"

/* ---- undo page: the 32-byte page header, then the undo header ---- */
#define UP_XID 32      /* u64 owner transaction */
#define UP_PREV 40     /* u32 previous page of the chain (WD_INVALID_BLKNO) */
#define UP_NEXT 44     /* u32 next page of the chain (WD_INVALID_BLKNO) */
#define UP_SEQ 48      /* u32 the page's number within the chain, from 0 */
#define UP_FIRST 52    /* u32 offset of the first record starting here; 0 */
#define UP_USED 56     /* u32 end of the written bytes */
#define UP_RESERVED 60 /* u32 zero */
#define UNDO_DATA_START 64u /* record bytes from here to the page end */

/* ---- record header (contiguous: never cut by a page end) ---- */
#define UR_MAGIC 0     /* u32 UNDO_REC_MAGIC */
#define UR_KIND 4      /* u8 enum undo_kind; bytes 5..7 zero */
#define UR_REL 8       /* u32 relation of the row */
#define UR_KLEN 12     /* u32 key bytes */
#define UR_VLEN 16     /* u64 value bytes */
#define UR_PREV 24     /* u64 undo_ptr of the chain's previous record */
#define UNDO_REC_HDR 32u
#define UNDO_REC_MAGIC 0x52444E55u /* "UNDR" */

/* ---- WAL: UNDO_APPEND main data (24 bytes) ---- */
#define UA_FLAGS 0     /* u8 UA_F_*; bytes 1..3 zero */
#define UA_OFF 4       /* u32 where the bytes go in block 0 */
#define UA_LEN 8       /* u32 how many */
#define UA_SEQ 12      /* u32 INIT: the new page's number in the chain */
#define UA_REC 16      /* u64 undo_ptr of the record the bytes belong to */
#define UA_MAIN 24u
#define UA_F_INIT 0x01u /* block 0 is formatted afresh (WILL_INIT) */
#define UA_F_ENDS 0x02u /* the record's last bytes */

/* ---- WAL: UNDO_CLR main data (16 bytes) ---- */
#define UC_UNDONE 0    /* u64 undo_ptr of the record whose undo is done */
#define UC_NEXT 8      /* u64 undo_ptr of the next record to undo; 0 */
#define UC_MAIN 16u

struct undo_log {
	bufmgr *pool;
	wal_log_ctx *log;
	uint32_t ps;
	/* the free list (I6): a stack, the most recently freed on top;
	 * capacity for every page of the relation, so a release never
	 * allocates */
	pthread_mutex_t mu;
	wd_blkno *free;
	uint32_t nfree;
	uint32_t cap;
	uint32_t npages; /* pages of the relation known here (open + extends) */
	_Atomic uint64_t records, bytes, allocated, reused, clrs;
};

#define UNDO_COUNT(u, field, n) \
	atomic_fetch_add_explicit(&(u)->field, (n), memory_order_relaxed)

/* One append's bytes on one page: the change, and what its record says. */
typedef struct undo_write {
	wd_xid xid;
	wd_blkno blk;      /* the page written */
	wd_blkno prev_blk; /* init: the chain's previous page, linked to it */
	uint32_t seq;      /* init: the page's number in the chain */
	uint32_t off, len; /* where the bytes go */
	const uint8_t *data;
	undo_ptr rec;      /* the record the bytes belong to */
	bool init, starts, ends;
} undo_write;

/* ---- page.c: the page changes, shared by undo_append and redo ---- */

/* Formats p as an empty undo page of chain xid. */
void undo_page_format(uint8_t *p, uint32_t ps, wd_xid xid, wd_blkno prev_blk, uint32_t seq);

/* Applies w to p (formatting it first if w->init). Precondition: the
 * bytes fit ([off, off + len) inside the page) and off is where the
 * written bytes end (or the data start on a fresh page). */
void undo_page_write(uint8_t *p, uint32_t ps, const undo_write *w);

/* Sets p's next-page link. */
void undo_page_link(uint8_t *p, wd_blkno next);

/* Fields of an undo page the page trusts (it passed undo_page_view_decode
 * or was built here). */
static inline uint32_t undo_page_used(const uint8_t *p) { return get_le32(p + UP_USED); }
static inline wd_blkno undo_page_next(const uint8_t *p) { return get_le32(p + UP_NEXT); }

/* ---- chain.c ---- */

/* Takes a page for chain growth: from the free list (pinned with BM_ZERO:
 * its old bytes are not read) or a new block; *buf pinned, not latched.
 * The pool's errors, WD_ENOMEM. */
int undo_page_take(undo_log *u, wd_blkno *blk, bm_buf **buf) WD_MUST_CHECK;

/* Puts blk back on the free list (a page taken but never used). */
void undo_page_give_back(undo_log *u, wd_blkno blk);

/* Pins page blk of the undo relation (BM_READ); WD_ECORRUPT naming the
 * block if it is beyond the relation (a pointer read from disk). */
int undo_pin(undo_log *u, wd_blkno blk, bm_buf **buf) WD_MUST_CHECK;

/* ---- redo.c: the WAL records read back (redo, describe, xtab) ---- */

/* Checks the shape of UNDO_APPEND rec (blocks, main data, flags, bounds
 * for a page of at most ps bytes) and fills *w from it; w->data is block
 * 0's data (NULL when the block carries an image instead). WD_ECORRUPT
 * naming the record. */
int undo_append_decode(const wal_decoded *rec, uint32_t ps, undo_write *w) WD_MUST_CHECK;

/* The two pointers of UNDO_CLR rec; WD_ECORRUPT if it is malformed. */
int undo_clr_decode(const wal_decoded *rec, undo_ptr *undone, undo_ptr *next) WD_MUST_CHECK;

#endif /* WALDEN_UNDO_INTERNAL_H */
