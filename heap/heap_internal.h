/*
 * heap_internal.h - what the files of heap/ share and nobody else includes:
 * struct heap, the tuple and overflow page formats (README "Formats"), the
 * WAL record layouts, the free space map and the logging step.
 */
#ifndef WALDEN_HEAP_INTERNAL_H
#define WALDEN_HEAP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "heap/heap.h"
#include "storage/bytes.h"
#include "storage/page.h"

/* ---- tuple format (README "Tuple") ---- */
#define HT_FLAGS 0     /* u8  HT_F_* */
#define HT_RESERVED 1  /* u8  zero */
#define HT_KLEN 2      /* u16 key length */
#define HT_VLEN 4      /* u64 value length (the whole value, even overflowed) */
#define HT_HDR 12      /* key bytes follow, then the value or an overflow pointer */
#define HT_OVF_PTR 4   /* u32 first overflow block, after the key */
#define HT_F_OVERFLOW 0x01u

/* A parsed tuple; pointers point into the bytes given to heap_tuple_parse. */
typedef struct heap_tuple {
	unsigned flags;
	uint32_t klen;
	uint64_t vlen;
	const uint8_t *key;
	const uint8_t *val;  /* inline value (NULL if overflowed) */
	wd_blkno ovf_first;  /* first overflow block (if overflowed) */
} heap_tuple;

/* ---- overflow page format: body [32, 32 + len), special = next, len ---- */
#define HOVF_SPECIAL 8u
#define HOVF_NEXT 0 /* u32 next block of the chain, WD_INVALID_BLKNO at the end */
#define HOVF_LEN 4  /* u32 chunk bytes on this page */

/* ---- free space map entries (README "FSM") ---- */
#define FSM_UNKNOWN 0u   /* stored byte: not known yet */
#define FSM_CAT_EMPTY 254u /* category of a page with no tuple at all */
#define FSM_CAT_MAX_PARTIAL 253u

/* ---- WAL record main data ---- */
#define HR_INSERT_MAIN 4   /* u16 slot, u8 HR_F_*, u8 zero; block data: tuple */
#define HR_UPDATE_MAIN 4   /* u16 slot, u16 zero; block data: new tuple */
#define HR_DELETE_MAIN 4   /* u16 slot, u16 zero; no block data */
#define HR_OVF_WRITE_MAIN 8 /* u32 next, u32 len; block data: the chunk */
#define HR_OVF_FREE_MAIN 4 /* u32 next of the freed page (for waldump) */
#define HR_F_INIT 0x01u    /* HEAP_INSERT: the page is initialised first */

/* Internal result (positive, never returned by heap.h's calls): the tuple
 * does not fit on this page, which is untouched; the caller tries another.
 * Kept apart from WD_ENOSPC, which means the disk (the WAL) is full: a
 * WAL insert failing with WD_ENOSPC ends the change instead of sending it
 * round the pages (and the file growing) for ever. */
#define HEAP_NO_ROOM 1

struct heap_counters {
	_Atomic uint64_t inserts, fetches, deletes, updates_in_place, updates_moved,
		overflow_written, overflow_freed, extends, pages_tried, fsm_wrong,
		fsm_rebuilt, fsm_errors, images, chains_orphaned, updates_undone;
};

/* FSM entries summed up by one fsm_max byte: a search skips a group whose
 * max is too small, so a sequential load's page-full search reads a few
 * hundred maxima, not a whole FSM page of entries (README "FSM"). */
#define FSM_GROUP 64u

struct heap {
	bufmgr *pool;
	wal_log_ctx *log;
	wd_relid rel, fsm_rel;
	uint32_t ps;           /* page size */
	uint32_t max_inline;   /* longest tuple kept on a heap page */
	uint32_t ovf_cap;      /* value bytes per overflow page */
	uint32_t unit;         /* FSM category unit: ps / 256 bytes */
	uint32_t fsm_per_page; /* FSM entries per FSM page: ps - 32 */
	uint64_t max_value;
	/* free space map in memory; fsm_mu is a leaf lock (README lock order) */
	pthread_mutex_t fsm_mu;
	uint8_t *fsm;          /* one stored byte per heap block */
	uint8_t *fsm_max;      /* per group of FSM_GROUP entries: >= every
				* entry of the group */
	size_t fsm_cap;        /* entries allocated, a multiple of fsm_per_page */
	wd_blkno fsm_n;        /* entries in use */
	wd_blkno fsm_hint[2];  /* where the next search starts: [0] for room
				* for a tuple, [1] for an empty page, so
				* overflow chains do not pull tuple inserts
				* away from the page they are filling */
	uint8_t *fsm_dirty;    /* per FSM page: 1 = the file's page may differ
				* from the map (an entry changed, or the page
				* was not loaded from the file); written whole
				* by heap_fsm_flush, FSM-I2 */
	/* Blocks known to exist in the heap and the FSM relation: lower
	 * bounds of bufmgr_rel_nblocks (relations only grow while the heap
	 * is open), so the hot paths ask the pool only past them. */
	_Atomic wd_blkno nblocks_known, fsm_nblocks_known;
	/* Every entry was read from its page at open (fsm_trust off, or no
	 * FSM file entry loaded): entries too low are then a violation of
	 * FSM-I1 for heap_fsm_check, not a stale file the caller vouched for. */
	bool fsm_exact;
	struct heap_counters st;
};

#define HEAP_COUNT(h, field) atomic_fetch_add_explicit(&(h)->st.field, 1, memory_order_relaxed)

/* ---- tuple.c: byte-level helpers shared by changes and redo ---- */
uint32_t heap_tuple_len(uint32_t klen, uint64_t vlen, bool overflow);
void heap_tuple_build(uint8_t *out, const void *key, uint32_t klen, const void *val,
		      uint64_t vlen, bool overflow, wd_blkno ovf_first);
int heap_tuple_parse(const uint8_t *item, uint32_t len, heap_tuple *t) WD_MUST_CHECK;
void heap_page_tidy(uint8_t *p);
void heap_page_tidy_from(uint8_t *p, uint32_t old_lower, uint32_t old_upper);
void heap_ovf_format(uint8_t *p, uint32_t ps, wd_blkno next, const void *chunk,
		     uint32_t len);
int heap_ovf_parse(const uint8_t *p, uint32_t ps, wd_blkno *next, uint32_t *len) WD_MUST_CHECK;
unsigned heap_page_category(const heap *h, const uint8_t *p);

/* ---- heap.c: the logged change of one page (README P1 steps 3-6) ---- */

/* What a change does to its page; heap_change_apply carries it out. */
enum heap_change_op {
	HC_INSERT,     /* page_item_add(item) into slot (the first unused one) */
	HC_REPLACE,    /* page_item_replace(slot, item) */
	HC_CLEAR,      /* page_item_clear(slot) */
	HC_OVF_FORMAT, /* heap_ovf_format(next, item): an overflow page */
	HC_EMPTY,      /* page_init as an empty heap page */
};

/*
 * One change of one page and its WAL record. The change is checked to
 * fit before it is described (P1 step 2), so applying it cannot fail.
 */
typedef struct heap_change {
	enum heap_change_op op;
	bool init;              /* HC_INSERT: format the page first */
	uint16_t slot;          /* HC_INSERT: the slot it will get; others: the slot */
	const uint8_t *item;    /* tuple or chunk */
	uint32_t len;
	wd_blkno next;          /* HC_OVF_FORMAT: chain link */
	/* the record */
	unsigned type;          /* HEAP_* */
	unsigned blk_flags;     /* WAL_BLK_WILL_INIT or 0 */
	const void *data;       /* block data */
	uint32_t data_len;
	const void *main;       /* main data */
	uint32_t main_len;
} heap_change;

void heap_change_apply(const heap *h, uint8_t *p, const heap_change *c);
int heap_log(heap *h, bm_buf *buf, const heap_change *c, wd_xid xid,
	     wd_lsn *xact_prev) WD_MUST_CHECK;
int heap_pin_block(heap *h, wd_blkno blk, bool *past_end, bm_buf **buf) WD_MUST_CHECK;

/* ---- fsm.c ---- */
int heap_fsm_init(heap *h) WD_MUST_CHECK;
void heap_fsm_free(heap *h);
int heap_fsm_load(heap *h, bool trust_file) WD_MUST_CHECK;
wd_blkno heap_fsm_find(heap *h, unsigned min_cat, wd_blkno skip);
void heap_fsm_set(heap *h, wd_blkno blk, unsigned cat);
unsigned heap_fsm_cat_for(const heap *h, uint32_t tuple_len);

/* ---- overflow.c ---- */
int heap_ovf_write(heap *h, wd_xid xid, wd_lsn *prev, const uint8_t *val,
		   uint64_t vlen, wd_blkno *first) WD_MUST_CHECK;
int heap_ovf_read(heap *h, wd_blkno first, uint64_t vlen, uint8_t *buf,
		  uint64_t cap) WD_MUST_CHECK;
int heap_ovf_free(heap *h, wd_xid xid, wd_lsn *prev, wd_blkno first,
		  uint64_t vlen) WD_MUST_CHECK;
void heap_ovf_discard(heap *h, wd_xid xid, wd_lsn *prev, wd_blkno first,
		      uint64_t vlen);
void heap_bound_raise(_Atomic wd_blkno *bound, wd_blkno nb);
int heap_take_page(heap *h, unsigned min_cat, wd_blkno skip, wd_blkno *blk,
		   bm_buf **buf) WD_MUST_CHECK;
void heap_release_page(heap *h, wd_blkno blk, bm_buf *buf);

#endif /* WALDEN_HEAP_INTERNAL_H */
