/*
 * bt_internal.h - what the files of btree/ share: the tree handle, the page
 * and metapage formats (README "Formats"), key comparison and in-page
 * search, the page-change operations that both the running code and redo
 * apply (ops.c), and the logged-change helper (log.c). Only the .c files
 * of btree/ include it.
 */
#ifndef WALDEN_BT_INTERNAL_H
#define WALDEN_BT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "btree/btree.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "wal/record.h"

/* ---- the handle ---- */

#define BT_KEEP_SLOTS 64u

struct btree {
	bufmgr *pool;
	wd_relid rel;
	wal_log_ctx *log;
	uint32_t ps;           /* page size */
	uint32_t max_key;      /* ps / 8 */
	/* The structure lock (README P1): shared for every descent and leaf
	 * change, exclusive for structure changes. Writer-preferring. */
	pthread_rwlock_t smo;
	/* Cached from the metapage: written under smo exclusive, read under
	 * smo shared or exclusive. */
	wd_blkno root;
	uint32_t level;        /* root level; 0 = the root is a leaf */
	/* Kept upper levels (README "Kept upper levels", I12): slot
	 * blk % BT_KEEP_SLOTS holds NULL or a buffer of this relation that the
	 * handle keeps pinned. Filled by descents (CAS from NULL), emptied
	 * only by btree_close. */
	_Atomic(bm_buf *) keep[BT_KEEP_SLOTS];
	/* The rightmost leaf (README P8, I13): NULL or a buffer the handle
	 * keeps pinned (a kept pin, as keep[]). Set by a change's lookup under
	 * smo shared (CAS from NULL); emptied only under smo exclusive
	 * (bt_lock_excl) and by btree_close. So while a thread holds smo
	 * shared the buffer stays pinned and is the rightmost leaf, and the
	 * thread latches it without a pin of its own. rightmost_on: worth
	 * trying (cleared when a lookup's key sorted before its first key,
	 * set when a descent ended there). rightmost_hits counts its uses
	 * (tests; approximate when threads race, exact in one thread). */
	_Atomic(bm_buf *) rightmost;
	atomic_bool rightmost_on;
	_Atomic uint64_t rightmost_hits;
};

/* ---- page format (README "Formats") ---- */

#define BT_META_BLK 0u
#define BT_META_MAGIC 0x54424457u /* "WDBT" little-endian */
#define BT_META_VERSION 1u
#define BT_META_SPECIAL 24u
#define BT_SPECIAL 16u

/* offsets in the B+tree special area */
#define BTS_LEFT 0
#define BTS_RIGHT 4
#define BTS_LEVEL 8
#define BTS_FLAGS 10
#define BTS_NEXT 12

/* page flags (special area) */
#define BTF_LEAF BTREE_PAGE_LEAF
#define BTF_ROOT BTREE_PAGE_ROOT
#define BTF_DELETED BTREE_PAGE_DELETED

/* offsets in the metapage special area */
#define BTM_MAGIC 0
#define BTM_VERSION 4
#define BTM_ROOT 8
#define BTM_LEVEL 12
#define BTM_FREE 16
#define BTM_NFREE 20

#define BT_TID_SIZE 6u
#define BT_CHILD_SIZE 4u

typedef struct bt_meta {
	wd_blkno root;
	uint32_t level;
	wd_blkno free_head;
	uint32_t nfree;
} bt_meta;

/*
 * Page accessors for the hot paths (descent, in-page search). They read the
 * common header directly (storage/page.h offsets PH_*; a line pointer is u16
 * offset, u16 length, storage/README.md) instead of calling the out-of-line
 * storage helpers once per probe. Like those helpers they trust the page's
 * header bounds, which bufmgr_pin checked (page_verify) when it read the
 * page; btree_check and the view decoders are the paths that trust nothing.
 */
static inline uint32_t bt_special_off(const uint8_t *p) { return get_le32(p + PH_SPECIAL); }
static inline const uint8_t *bt_spec(const uint8_t *p) { return p + bt_special_off(p); }
static inline wd_blkno bt_left(const uint8_t *p) { return get_le32(bt_spec(p) + BTS_LEFT); }
static inline wd_blkno bt_right(const uint8_t *p) { return get_le32(bt_spec(p) + BTS_RIGHT); }
static inline uint32_t bt_level(const uint8_t *p) { return get_le16(bt_spec(p) + BTS_LEVEL); }
static inline uint16_t bt_flags(const uint8_t *p) { return get_le16(bt_spec(p) + BTS_FLAGS); }
static inline wd_blkno bt_next_free(const uint8_t *p) { return get_le32(bt_spec(p) + BTS_NEXT); }
static inline uint32_t bt_nitems(const uint8_t *p)
{
	return (get_le32(p + PH_LOWER) - PAGE_HEADER_SIZE) / PAGE_LP_SIZE;
}
/* Item i's bytes and length (i < bt_nitems; tree pages have no unused slot). */
static inline const uint8_t *bt_item(const uint8_t *p, uint32_t i, uint32_t *len)
{
	const uint8_t *lp = p + PAGE_HEADER_SIZE + i * PAGE_LP_SIZE;
	*len = get_le16(lp + 2);
	return p + get_le16(lp);
}

/*
 * true if p looks like a live B+tree page: btree kind, our special size, not
 * deleted. The cheap check that keeps a descent from reading a page of
 * another kind (a bad downlink to a page with a valid checksum) as a tree
 * page; the header bounds themselves were checked when the page was read.
 */
static inline bool bt_page_live(const uint8_t *p, uint32_t ps)
{
	/* the flags are read at the special area's one valid place, not
	 * through the header's offset: the two loads (header, end of page)
	 * then miss the cache in parallel, not one after the other */
	return p[PH_KIND] == PAGE_KIND_BTREE && bt_special_off(p) == ps - BT_SPECIAL &&
	       !(get_le16(p + ps - BT_SPECIAL + BTS_FLAGS) & BTF_DELETED);
}

/*
 * true if p is a page on the free list: btree kind, our special size, flag
 * DELETED. Like bt_page_live it reads the special area at its one valid
 * place, so a damaged header (special offset at the end of the page, which
 * page_verify allows) is not read past; only after it is true may
 * bt_next_free(p) be read (I6).
 */
static inline bool bt_page_free(const uint8_t *p, uint32_t ps)
{
	return p[PH_KIND] == PAGE_KIND_BTREE && bt_special_off(p) == ps - BT_SPECIAL &&
	       (get_le16(p + ps - BT_SPECIAL + BTS_FLAGS) & BTF_DELETED);
}

/* Every flag this format knows (README "Formats"); others are damage. */
#define BTF_KNOWN (BTF_LEAF | BTF_ROOT | BTF_DELETED)

/* bt_page_live and at the given level (the descent's check, README P1). */
static inline bool bt_page_live_at(const uint8_t *p, uint32_t ps, uint32_t level)
{
	return bt_page_live(p, ps) && get_le16(p + ps - BT_SPECIAL + BTS_LEVEL) == level;
}

/* Key of item i (leaf: after the tid; internal: after the child). */
const uint8_t *bt_key(const uint8_t *p, uint32_t i, uint32_t *klen);

/* Leaf item i's tid ({INVALID, 0} if i is out of range or too short). */
static inline wd_tid bt_item_tid(const uint8_t *p, uint32_t i)
{
	wd_tid t = {WD_INVALID_BLKNO, 0};
	uint32_t len;
	if (i < bt_nitems(p)) {
		const uint8_t *it = bt_item(p, i, &len);
		if (len >= BT_TID_SIZE) {
			t.blk = get_le32(it);
			t.slot = get_le16(it + 4);
		}
	}
	return t;
}

/* Internal item i's child (INVALID if out of range or too short). */
static inline wd_blkno bt_item_child(const uint8_t *p, uint32_t i)
{
	uint32_t len;
	const uint8_t *it = i < bt_nitems(p) ? bt_item(p, i, &len) : NULL;
	return it && len >= BT_CHILD_SIZE ? get_le32(it) : WD_INVALID_BLKNO;
}

/* Eight key bytes as a number whose order is their unsigned-byte order. */
static inline uint64_t bt_key_word(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* Unsigned-byte order: memcmp's over the common length, then shorter
 * first; -1, 0 or 1. Inline, eight bytes a step: the binary searches of
 * every descent compare short keys, where a call of memcmp costs more than
 * the comparison. */
static inline int bt_keycmp(const void *a, size_t alen, const void *b, size_t blen)
{
	const uint8_t *x = a, *y = b;
	size_t n = alen < blen ? alen : blen;
	for (; n >= 8; x += 8, y += 8, n -= 8) {
		uint64_t u = bt_key_word(x), v = bt_key_word(y);
		if (u != v)
			return u < v ? -1 : 1;
	}
	for (; n; x++, y++, n--)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return alen < blen ? -1 : alen > blen;
}

/* Leaf (p must be one: items are read as [tid][key]): first index whose
 * key >= key (nitems if none); *found if equal. */
uint32_t bt_leaf_search(const uint8_t *p, const void *key, size_t klen, bool *found);

/* The search warm-up (README "Search warm-up"): the probes of the first
 * BT_WARM_LEVELS levels of bt_leaf_search over n items, level by level,
 * into mids; returns how many. */
#define BT_WARM_LEVELS 4u
#define BT_WARM_NODES ((1u << BT_WARM_LEVELS) - 1)
uint32_t bt_warm_probes(uint32_t n, uint32_t mids[BT_WARM_NODES]);

/* Internal: the index of the child whose range holds key (the last item
 * whose key <= key; item 0 is minus infinity). key NULL: dir < 0 the last
 * child, else the first. */
uint32_t bt_child_search(const uint8_t *p, const void *key, size_t klen, int dir);

void bt_meta_decode(const uint8_t *p, bt_meta *m);
/* 0, or WD_ECORRUPT naming the block if p is not a known metapage. */
int bt_meta_check(const uint8_t *p, uint32_t ps, wd_relid rel);

/* Encodes a leaf item (tid, key) or an internal item (child, key) into buf. */
uint32_t bt_leaf_item(uint8_t *buf, const void *key, size_t klen, wd_tid tid);
uint32_t bt_internal_item(uint8_t *buf, const void *key, size_t klen, wd_blkno child);

/* ---- page-change operations (ops.c; README "Formats", op list) ---- */

enum bt_op {
	BTOP_INIT = 1,     /* u16 level, u16 flags, u32 left, u32 right, u32 next */
	BTOP_ADD = 2,      /* u16 index, u16 len, bytes */
	BTOP_REMOVE = 3,   /* u16 index */
	BTOP_REPLACE = 4,  /* u16 index, u16 len, bytes */
	BTOP_TRUNCATE = 5, /* u16 keep: rebuild with items [0, keep) */
	BTOP_LINKS = 6,    /* u32 left, u32 right */
	BTOP_FLAGS = 7,    /* u16 flags */
	BTOP_META = 8,     /* u32 root, u32 level, u32 free, u32 nfree */
};

/*
 * A growable byte string (an op list or main data). The first
 * BT_BYTES_INLINE bytes live in the struct, so the op list and main data of
 * a leaf change with a key of up to about 100 bytes need no malloc. Zero
 * initialised = empty; a bt_bytes must not be copied or moved once used.
 */
#define BT_BYTES_INLINE 160u
typedef struct bt_bytes {
	uint8_t *b;
	uint32_t len, cap;
	bool oom;
	uint8_t inl[BT_BYTES_INLINE];
} bt_bytes;

void bt_bytes_init(bt_bytes *s);
void bt_bytes_put(bt_bytes *s, const void *p, uint32_t n);
void bt_bytes_free(bt_bytes *s);

void bt_op_init(bt_bytes *s, uint32_t level, uint32_t flags, wd_blkno left,
		wd_blkno right, wd_blkno next);
void bt_op_add(bt_bytes *s, uint32_t idx, const void *item, uint32_t len);
void bt_op_remove(bt_bytes *s, uint32_t idx);
void bt_op_replace(bt_bytes *s, uint32_t idx, const void *item, uint32_t len);
void bt_op_truncate(bt_bytes *s, uint32_t keep);
void bt_op_links(bt_bytes *s, wd_blkno left, wd_blkno right);
void bt_op_flags(bt_bytes *s, uint32_t flags);
void bt_op_meta(bt_bytes *s, const bt_meta *m);

/*
 * Applies an op list to page (ps bytes). The same function serves the
 * running code (on a private copy) and redo, so both produce the same bytes.
 * WD_ECORRUPT if the ops do not parse or do not fit the page.
 */
int bt_ops_apply(uint8_t *page, uint32_t ps, const uint8_t *ops,
		 uint32_t len) WD_MUST_CHECK;

/* true if ops is a single ADD, REMOVE or REPLACE that bt_ops_apply is sure
 * to apply to page (index in range, item fits): log.c then changes the
 * buffer in place, after logging, instead of a private copy. */
bool bt_ops_fit(const uint8_t *page, uint32_t ps, const uint8_t *ops, uint32_t len);

/* ---- logged changes (log.c; README P2) ---- */

typedef struct bt_chg {
	bm_buf *buf;      /* pinned; exclusively latched by the caller if latched */
	bool init;        /* the ops rebuild the page: WAL_BLK_WILL_INIT */
	bt_bytes ops;
} bt_chg;

typedef struct bt_log {
	btree *t;
	/* true: the caller holds every page's exclusive latch (shared smo).
	 * false: smo exclusive, pages only pinned; step 4a latches them all
	 * exclusively until step 5 has installed them (README I11). */
	bool latched;
	unsigned type;
	wd_xid xid;
	wd_lsn prev;
	unsigned n;
	bt_chg c[WAL_MAX_BLOCKS];
	bt_bytes main;
} bt_log;

void bt_log_begin(bt_log *lg, btree *t, unsigned type, wd_xid xid, wd_lsn prev);
/* Adds a page to the change; its op list is returned to be filled. */
bt_bytes *bt_log_page(bt_log *lg, bm_buf *buf, bool init);
/*
 * Steps 2-5 of P2: applies each page's ops to a private copy (or, for a
 * single page needing no image, in place after the insert), builds the
 * record (images where wal_log_needs_image), inserts it with the recheck
 * (wal_insert_fpw; refused, everything is decided again), then installs
 * the copies with the record's LSN and marks them dirty. On error no page
 * has changed. Frees lg's memory either way.
 */
int bt_log_commit(bt_log *lg, wd_lsn *lsn) WD_MUST_CHECK;
void bt_log_abandon(bt_log *lg);

/* ---- pinning, key limit, errors (btree.c) ---- */

int bt_pin(btree *t, wd_blkno blk, int mode, bm_buf **buf) WD_MUST_CHECK;
void bt_release(btree *t, bm_buf *buf);
/* Pin only, for pages no other thread changes while we hold smo: any tree
 * page under smo exclusive, internal pages under smo shared (I7; bufmgr
 * only reads a page, under a share latch, to write it out). */
int bt_pin_x(btree *t, wd_blkno blk, bm_buf **buf) WD_MUST_CHECK;
void bt_unpin(btree *t, bm_buf *buf);
int bt_key_ok(const btree *t, size_t klen) WD_MUST_CHECK;
int bt_corrupt(btree *t, wd_blkno blk, const char *what);

/*
 * Descends from the root to the leaf whose range holds key (key NULL: the
 * leftmost for dir > 0, the rightmost for dir < 0), one latch at a time.
 * Precondition: smo held (shared or exclusive). The leaf is returned pinned
 * and latched in leaf_mode. Errors: pool errors, WD_ECORRUPT.
 */
int bt_descend(btree *t, const void *key, size_t klen, int dir, int leaf_mode,
	       bm_buf **leaf) WD_MUST_CHECK;

/* I12: forgets blk's kept buffer, if it has one, and gives its pin back.
 * For a page that stops being an internal page of the tree (freed by an
 * unlink or a shrink). Precondition: smo exclusive, so no descent is using
 * the kept buffer without a pin of its own. */
void bt_keep_drop(btree *t, wd_blkno blk);

/* smo lock helpers */
void bt_lock_shared(btree *t);
void bt_lock_excl(btree *t);
void bt_unlock(btree *t);

/* ---- structure changes (split.c, reclaim.c), under smo exclusive ---- */

int bt_insert_pessimistic(btree *t, wd_xid xid, wd_lsn prev, const void *key,
			  size_t klen, wd_tid tid, wd_lsn *lsn) WD_MUST_CHECK;
int bt_delete_pessimistic(btree *t, wd_xid xid, wd_lsn prev, const void *key,
			  size_t klen, wd_tid *old, wd_lsn *lsn) WD_MUST_CHECK;

/*
 * Logs and applies one leaf change of a transaction (INSERT_LEAF: add item
 * at idx; DELETE_LEAF: remove idx; UPDATE_TID: replace idx) on buf, which
 * is pinned and, if latched, exclusively latched (else smo is exclusive). Main data: key and tids (README).
 */
int bt_leaf_change(btree *t, bm_buf *buf, bool latched, unsigned type, wd_xid xid,
		   wd_lsn prev, uint32_t idx, const void *key, size_t klen, wd_tid tid,
		   wd_tid old, wd_lsn *lsn) WD_MUST_CHECK;

/* Reads and writes the metapage (smo exclusive). */
int bt_meta_read(btree *t, bt_meta *m) WD_MUST_CHECK;

#endif /* WALDEN_BT_INTERNAL_H */
