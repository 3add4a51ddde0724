/*
 * heap.h - heap relations: (key, value) tuples on slotted pages, addressed
 * by TID (block, slot), with a free space map and overflow pages for large
 * values. The one header other modules (txn, the catalog, tools) include.
 * Protocols, invariants and formats: heap/README.md.
 *
 *   heap *h;
 *   heap_opts o;
 *   heap_opts_default(&o);
 *   o.fsm_rel = fsm_relid;                      // opened in the pool too
 *   rc = heap_open(pool, log, rel, &o, &h);     // rel opened in the pool
 *   rc = heap_insert(h, xid, &prev, k, klen, v, vlen, &tid);
 *   rc = heap_fetch(h, tid, kbuf, kcap, &klen, vbuf, vcap, &vlen);
 *   rc = heap_update(h, xid, &prev, tid, v2, v2len, &newtid); // index follows
 *   rc = heap_delete(h, xid, &prev, tid);
 *   heap_close(h);
 *
 * Every change writes one WAL record per page it changes (rmgr HEAP) whose
 * header carries xid and *xact_prev; on success *xact_prev becomes the
 * change's last record's LSN so the transaction's records form a chain.
 * Redo routines: heap_rmgr_register(). All calls are thread-safe for
 * distinct tuples; two threads changing the same tuple at once must be kept
 * apart by the caller (txn row locks).
 */
#ifndef WALDEN_HEAP_H
#define WALDEN_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bufmgr/bufmgr.h"
#include "storage/error.h"
#include "storage/types.h"
#include "wal/redo.h"

/* A tuple's address: block of the heap relation and slot on that page. */
typedef struct heap_tid {
	wd_blkno blk;
	uint16_t slot;
} heap_tid;

typedef struct heap heap; /* an open heap relation */

#define HEAP_MAX_VALUE_DEFAULT (64ull * 1024 * 1024)
#define HEAP_MAX_VALUE_LIMIT (1ull << 40) /* largest accepted setting */

typedef struct heap_opts {
	/* Values longer than this are refused with WD_ETOOBIG.
	 * 1..HEAP_MAX_VALUE_LIMIT; default 64 MiB. */
	uint64_t max_value_bytes;
	/* Relation holding the free space map (README "FSM"), already open
	 * in the pool; 0: no FSM file, the map is rebuilt by a scan of the
	 * heap at every heap_open. */
	wd_relid fsm_rel;
	/* Whether the FSM file may be trusted (default true): it is as the
	 * heap left it at its last heap_close after a clean shutdown (every
	 * FSM page written). false: the file is taken as unknown and every
	 * entry is rebuilt from its heap page at heap_open (one read per
	 * page), then the file rewritten. Pass false when the database was
	 * not shut down cleanly: the FSM is not WAL-logged, so after a crash
	 * its entries may be stale in either direction, and an entry that
	 * promises too little is never corrected otherwise (its page is never
	 * tried), leaving the page's room unused for ever (README FSM-I1). */
	bool fsm_trust;
} heap_opts;

void heap_opts_default(heap_opts *o);

/*
 * Opens heap relation rel (already open in pool, empty or holding heap and
 * overflow pages) with log for WAL (required). Loads the free space map
 * from o->fsm_rel (unless !o->fsm_trust: then every entry is rebuilt) and
 * fills entries it lacks (pages added after it was last written, torn FSM
 * pages) by reading those heap pages. o NULL: defaults.
 * Errors: WD_EINVAL (bad options, page size mismatch), WD_ENOMEM, the pool's.
 */
int heap_open(bufmgr *pool, wal_log_ctx *log, wd_relid rel, const heap_opts *o,
	      heap **out) WD_MUST_CHECK;

/* Frees h (pages stay in the pool; the caller flushes and closes the
 * relations). Precondition: no call on h in flight. NULL is ignored. A
 * clean close calls heap_fsm_flush first; without it (a crash) the FSM
 * file keeps what the last flush wrote. */
void heap_close(heap *h);

/*
 * Writes the FSM pages whose entries changed since they were last written
 * (or loaded) into the pool, whole (README FSM-I2): the map in memory is
 * the FSM between opens, and the file holds it only after this, at a
 * clean close. The caller then flushes the FSM relation. Errors: the
 * pool's (the first; the pages not written stay marked).
 */
int heap_fsm_flush(heap *h) WD_MUST_CHECK;

/* Longest key accepted (klen): a quarter page less the tuple header; at
 * least twice the btree's 1/8-page key limit. */
uint32_t heap_max_key_len(const heap *h);

/*
 * Inserts (key, value) and returns its TID. Values longer than an inline
 * tuple allows go to a chain of overflow pages written first. xact_prev
 * (may be NULL) is the transaction's previous record LSN, updated to this
 * change's last record. Errors: WD_ETOOBIG (key or value over its limit;
 * the detail gives both sizes), WD_EINVAL, the pool's and the WAL's.
 */
int heap_insert(heap *h, wd_xid xid, wd_lsn *xact_prev, const void *key,
		uint32_t klen, const void *val, uint64_t vlen,
		heap_tid *tid) WD_MUST_CHECK;

/*
 * Reads the tuple at tid: copies min(klen, kcap) key bytes to kbuf and
 * min(vlen, vcap) value bytes to vbuf (either buffer may be NULL with cap
 * 0) and always sets *klen and *vlen (either pointer may be NULL) to the
 * full lengths, so a caller whose buffer was short can retry.
 * Errors: WD_NOTFOUND (no tuple at tid), WD_ECORRUPT (a broken overflow
 * chain or bad tuple, naming the block), the pool's.
 */
int heap_fetch(heap *h, heap_tid tid, void *kbuf, uint32_t kcap, uint32_t *klen,
	       void *vbuf, uint64_t vcap, uint64_t *vlen) WD_MUST_CHECK;

/*
 * The kind of page at block blk (storage/page.h; PAGE_KIND_NONE for a page
 * never written) into *kind. WD_NOTFOUND if the file ends before blk; the
 * pool's errors (WD_ECORRUPT naming file and block for a damaged page).
 * For a caller that found no tuple where an index entry says one lives:
 * a heap page missing or blank there is damage to the file, not a change
 * half done.
 */
int heap_block_kind(heap *h, wd_blkno blk, unsigned *kind) WD_MUST_CHECK;

/* ---- reading many tuples: a page kept pinned between reads ---- */

/*
 * A heap page pinned between calls of heap_fetch_key, so a reader that
 * goes through many tuples of one page (a cursor over keys loaded in
 * order) pins it once. Zero-initialise it; heap_fetch_key keeps the page
 * of its last TID pinned (a TID on another block unpins it first);
 * heap_hold_release unpins it. A held pin keeps the page in the pool and
 * makes bufmgr_drop_rel of the relation wait: release it before the heap
 * is closed or dropped. Never latched between calls.
 */
typedef struct heap_hold {
	bm_buf *buf;     /* pinned page, or NULL */
	wd_relid rel;    /* its relation (a hold used with another heap re-pins) */
	wd_blkno blk;
} heap_hold;

/* Unpins hold's page, if any; hold is then empty. */
void heap_hold_release(heap *h, heap_hold *hold);

/*
 * Reads the value of the tuple at tid if it holds key[0, klen) and its
 * value is inline: copies min(vlen, vcap) value bytes to vbuf and sets
 * *vlen to the full length, comparing the key and copying the value under
 * one share latch of the page, which hold keeps pinned afterwards. Meant
 * for callers that know which key they expect and can fall back on
 * heap_fetch under their own protection. Returns WD_NOTFOUND (block past
 * the end, no heap page, empty slot, another key) and WD_ETOOBIG (the
 * value is on an overflow chain, which this call never reads: a chain may
 * be freed by a concurrent change of the key once the page is unlatched,
 * so reading it needs the caller's key latch), WD_ECORRUPT (a bad tuple),
 * the pool's errors. Never allocates.
 */
int heap_fetch_key(heap *h, heap_hold *hold, heap_tid tid, const void *key, uint32_t klen,
		   void *vbuf, uint64_t vcap, uint64_t *vlen) WD_MUST_CHECK;

/*
 * Replaces the value of the tuple at tid (the key stays). In place when the
 * new tuple fits on the same page (*newtid == tid); otherwise the new
 * version is inserted elsewhere and the old one deleted (*newtid differs:
 * the caller's index must follow). *newtid is always set.
 *
 * Outcomes (README P6):
 *  - 0: the update happened; the old value's overflow chain is freed, or,
 *    if freeing it fails once the tuple no longer points at it, left as an
 *    orphan (counted in heap_stats.chains_orphaned, README "Orphans") -
 *    the update is still done and reported as such.
 *  - an error with *newtid == tid: nothing observable changed; tid holds
 *    the old value. This includes a move whose delete of the old version
 *    failed after the new version was inserted: the new version is deleted
 *    again (compensation) before returning. Its records stay in the WAL
 *    (insert then delete of the new version: redo repeats both).
 *  - an error with *newtid != tid (only when both the delete of the old
 *    version and the compensating delete of the new one failed, e.g. the
 *    WAL disk is full): BOTH versions are live, tid with the old value and
 *    *newtid with the new one, both holding the key. The caller must
 *    remove one (heap_delete(*newtid) once the cause is gone, which keeps
 *    the old value) or have the next open repair it; the detail says so.
 * Errors: as heap_insert, WD_NOTFOUND (no tuple at tid).
 */
int heap_update(heap *h, wd_xid xid, wd_lsn *xact_prev, heap_tid tid,
		const void *val, uint64_t vlen, heap_tid *newtid) WD_MUST_CHECK;

/*
 * Deletes the tuple at tid and frees its overflow pages; its space and
 * slot are reused by later inserts. 0 once the tuple is gone (HEAP_DELETE
 * logged), also if freeing its chain then fails: the chain is left as an
 * orphan (heap_stats.chains_orphaned). An error means the tuple is still
 * there, unchanged. Errors: WD_NOTFOUND, the pool's, the WAL's.
 */
int heap_delete(heap *h, wd_xid xid, wd_lsn *xact_prev, heap_tid tid) WD_MUST_CHECK;

/* ---- sequential scan ---- */

typedef struct heap_scan heap_scan;

/* Starts a scan of every tuple in TID order. WD_ENOMEM. */
int heap_scan_begin(heap *h, heap_scan **out) WD_MUST_CHECK;

/* Restricts scan s, before its first heap_scan_next, to the blocks
 * [first, end) (README P7): heap_scan_next returns WD_NOTFOUND after the
 * last tuple of block end - 1 (or of the relation, if shorter). Overflow
 * pages in the range hold no tuples and are passed over as always.
 * WD_EINVAL after the scan started or for first > end. */
int heap_scan_limit(heap_scan *s, wd_blkno first, wd_blkno end) WD_MUST_CHECK;

/*
 * The next tuple: its TID, key and value (pointers into the scan's memory,
 * valid until the next call on s). WD_NOTFOUND at the end. Each page is
 * copied under a share latch, so a scan sees every page at one moment but
 * not the relation at one moment; tuples the caller deletes concurrently
 * must be kept from it by the caller (txn locks).
 */
int heap_scan_next(heap_scan *s, heap_tid *tid, const uint8_t **key,
		   uint32_t *klen, const uint8_t **val, uint64_t *vlen) WD_MUST_CHECK;

void heap_scan_end(heap_scan *s);

/* ---- free space map check (walden check) ---- */

typedef struct heap_fsm_report {
	uint64_t pages;      /* heap blocks examined */
	uint64_t over;       /* entries promising more space than the page has */
	uint64_t under;      /* entries promising less (room never offered) */
	uint64_t unknown;    /* entries not known (never happens after open) */
	uint64_t disk_diff;  /* FSM file bytes differing from the map in memory */
	wd_blkno first_bad;  /* first block counted as a violation */
} heap_fsm_report;

/*
 * Checks the free space map against every page, and the FSM file's pages
 * that need no heap_fsm_flush against the map in memory (FSM-I2). Call
 * with no change in flight. Invariant FSM-I1: no entry promises more than
 * its page has (`over`: always a violation); and no entry promises less
 * (`under`) - a violation when every entry was read from its page at open
 * (fsm_trust off, or no FSM file to load), else only counted: `under`
 * entries after an open with fsm_trust mean the FSM file was stale (a
 * crash the caller did not pass on as fsm_trust = false, or a close that
 * did not flush), room that is never offered. Returns 0 if the map holds,
 * else WD_ECORRUPT naming the first bad block; *r always filled.
 */
int heap_fsm_check(heap *h, heap_fsm_report *r) WD_MUST_CHECK;

/* ---- statistics ---- */

typedef struct heap_stats {
	uint64_t inserts, fetches, deletes;
	uint64_t updates_in_place, updates_moved;
	uint64_t overflow_written;   /* overflow pages written */
	uint64_t overflow_freed;     /* overflow pages returned to free space */
	uint64_t extends;            /* pages added to the relation */
	uint64_t pages_tried;        /* pages latched to place a tuple */
	uint64_t fsm_wrong;          /* ... whose entry promised too much */
	uint64_t fsm_rebuilt;        /* entries rebuilt by reading the page */
	uint64_t fsm_errors;         /* FSM file writes that failed (ignored) */
	uint64_t chains_orphaned;    /* overflow chains no tuple points at that
				      * could not be freed (README "Orphans") */
	uint64_t updates_undone;     /* moves taken back: old delete failed */
	uint64_t images;             /* records that carried a full-page image */
} heap_stats;

void heap_stats_get(heap *h, heap_stats *out);

/* The relation's block count (heap and overflow pages). */
int heap_nblocks(heap *h, wd_blkno *n) WD_MUST_CHECK;

/* ---- page decoders (walden inspect, walden check) ----
 * Pure functions over page images, which may come straight from a damaged
 * file: they validate every length and offset against the page and return
 * WD_ECORRUPT (detail says what) rather than read outside it. Pointers in
 * the views point into the bytes given. Formats: README "Formats". */

#define HEAP_ITEM_OVERFLOW 0x01u /* heap_item_view.flags: value on a chain */

typedef struct heap_item_view {
	unsigned flags;          /* HEAP_ITEM_OVERFLOW or 0 */
	uint32_t klen;
	const uint8_t *key;
	uint64_t vlen;           /* the whole value, also when overflowed */
	const uint8_t *val;      /* inline value (vlen bytes), NULL if overflowed */
	wd_blkno ovf_first;      /* first overflow block, WD_INVALID_BLKNO if inline */
} heap_item_view;

/* Decodes one tuple item of len bytes (its header lengths must add up to
 * len). WD_ECORRUPT otherwise. */
int heap_item_view_decode(const uint8_t *item, uint32_t len,
			  heap_item_view *v) WD_MUST_CHECK;

/* Decodes the tuple in slot of heap page page: 0, WD_NOTFOUND for an
 * unused slot, WD_ECORRUPT (the page is not a heap page, the line pointer
 * leaves the item area, or the tuple does not parse). */
int heap_slot_view_decode(const uint8_t *page, uint32_t page_size, uint32_t slot,
			  heap_item_view *v) WD_MUST_CHECK;

typedef struct heap_overflow_view {
	wd_blkno next;           /* next block of the chain, WD_INVALID_BLKNO at the end */
	uint32_t len;            /* chunk bytes on this page */
	uint32_t cap;            /* the most a page holds (page size - 40) */
	const uint8_t *chunk;
} heap_overflow_view;

/* Decodes an overflow page. WD_ECORRUPT if it is none or its length does
 * not fit. */
int heap_overflow_view_decode(const uint8_t *page, uint32_t page_size,
			      heap_overflow_view *v) WD_MUST_CHECK;

/* What one stored FSM byte says about its heap page. */
enum heap_fsm_state {
	HEAP_FSM_UNKNOWN = 0,    /* never written: read from the page at open */
	HEAP_FSM_SPACE = 1,      /* a heap page with at least free_min bytes free */
	HEAP_FSM_EMPTY = 2,      /* no tuple (new or emptied): usable for anything */
};

typedef struct heap_fsm_view {
	wd_blkno first;          /* heap block of entry 0 */
	uint32_t n;              /* entries on the page (page size - 32) */
	uint32_t unit;           /* bytes per category step (page size / 256) */
	const uint8_t *entry;    /* n stored bytes; see heap_fsm_entry */
	/* counts over the n entries */
	uint32_t unknown, empty, full, partial; /* full: category 0 */
} heap_fsm_view;

/* Decodes FSM page fsm_blk of a free space map relation. WD_ECORRUPT if it
 * is not an FSM page. */
int heap_fsm_view_decode(const uint8_t *page, uint32_t page_size, wd_blkno fsm_blk,
			 heap_fsm_view *v) WD_MUST_CHECK;

/* The meaning of stored FSM byte b with unit bytes per step; *free_min:
 * bytes at least free for a new tuple and its line pointer (HEAP_FSM_SPACE). */
enum heap_fsm_state heap_fsm_entry(uint8_t b, uint32_t unit, uint32_t *free_min);

/* Registers the HEAP rmgr's redo and describe routines (idempotent). Call
 * at start-up, before recovery or waldump reads WAL. */
void heap_rmgr_register(void);

#endif /* WALDEN_HEAP_H */
