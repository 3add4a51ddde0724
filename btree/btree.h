/*
 * btree.h - the B+tree index: unique variable-length keys (compared as
 * unsigned bytes) mapped to heap tuple ids. The one header other modules
 * include. Protocols, invariants and formats: btree/README.md.
 *
 *   btree *t;
 *   rc = btree_create(pool, rel, &logctx, &t);     // empty relation
 *   rc = btree_insert(t, xid, prev, "k", 1, tid, &lsn);
 *   rc = btree_lookup(t, "k", 1, &tid);           // WD_NOTFOUND if absent
 *   rc = btree_cursor_open(t, &c);
 *   rc = btree_cursor_seek(c, "a", 1, BT_FORWARD);
 *   while ((rc = btree_cursor_next(c, &k, &klen, &tid)) == 0) ...
 *   btree_cursor_close(c);
 *   btree_close(t);
 *
 * Every function is thread-safe: one btree handle is shared by all the
 * threads of a database (a cursor belongs to one thread). Changes are
 * WAL-logged through the wal_log_ctx given at open; each change function
 * takes the transaction's xid and previous LSN (the record header chain)
 * and returns the LSN of the transaction's own record in *lsn. Structure
 * changes (splits, page deletions) are logged separately with xid 0 and are
 * never undone by a rollback (nested top actions, README P2).
 */
#ifndef WALDEN_BTREE_H
#define WALDEN_BTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bufmgr/bufmgr.h"
#include "storage/error.h"
#include "storage/types.h"
#include "wal/redo.h"

/* A heap tuple id; 6 bytes on disk (u32 block, u16 slot, little-endian). */
typedef struct wd_tid {
	wd_blkno blk;
	uint16_t slot;
} wd_tid;

typedef struct btree btree;
typedef struct btree_cursor btree_cursor;

/*
 * Formats relation rel (open in pool, no blocks yet) as an empty tree:
 * block 0 the metapage, block 1 an empty root leaf, one BTREE_CREATE record.
 * log must stay valid while the tree is open. Errors: WD_EEXIST (the
 * relation has blocks), WD_EINVAL, WD_ENOMEM, the bufmgr and WAL errors.
 */
int btree_create(bufmgr *pool, wd_relid rel, wal_log_ctx *log,
		 btree **out) WD_MUST_CHECK;

/* Opens an existing tree (reads the metapage). WD_ECORRUPT if block 0 is
 * not a B+tree metapage of a known version, naming the block. */
int btree_open(bufmgr *pool, wd_relid rel, wal_log_ctx *log,
	       btree **out) WD_MUST_CHECK;

/* Frees the handle (pages stay in the pool). No cursor may be open. */
void btree_close(btree *t);

/* The longest key accepted: page_size / 8 bytes. */
size_t btree_max_key(const btree *t);

/* The heap tid stored under key. WD_NOTFOUND, WD_ETOOBIG, pool errors. */
int btree_lookup(btree *t, const void *key, size_t klen,
		 wd_tid *tid) WD_MUST_CHECK;

/*
 * Adds key -> tid (splitting pages as needed). Errors: WD_EEXIST (key
 * present: the index is unique), WD_ETOOBIG (key longer than
 * btree_max_key), pool and WAL errors (nothing changed).
 */
int btree_insert(btree *t, wd_xid xid, wd_lsn prev, const void *key,
		 size_t klen, wd_tid tid, wd_lsn *lsn) WD_MUST_CHECK;

/*
 * Removes key; *old (may be NULL) receives its tid. A leaf left empty is
 * unlinked and put on the free list (README P4). WD_NOTFOUND, WD_ETOOBIG.
 */
int btree_delete(btree *t, wd_xid xid, wd_lsn prev, const void *key,
		 size_t klen, wd_tid *old, wd_lsn *lsn) WD_MUST_CHECK;

/* Points key at tid (the heap moved the tuple). WD_NOTFOUND, WD_ETOOBIG. */
int btree_update_tid(btree *t, wd_xid xid, wd_lsn prev, const void *key,
		     size_t klen, wd_tid tid, wd_lsn *lsn) WD_MUST_CHECK;

/* ---- one descent per read-modify-write (README P7) ----
 *
 * A caller that looks a key up and then, depending on the answer, inserts
 * it or repoints it (wd_put: heap work in between) passes the position the
 * lookup found to the change. If the leaf has not changed since (same
 * pageLSN) the change goes straight to it, without a second descent;
 * otherwise it descends as btree_insert/btree_update_tid do. Results are
 * exactly those of the calls without a position. A position is a hint,
 * never a lock: it holds no pin, and it may be used once or not at all. */

typedef struct btree_pos {
	wd_blkno leaf;   /* the leaf the lookup ended in; INVALID: none */
	wd_lsn lsn;      /* its pageLSN then */
	uint32_t idx;    /* key's index, or where it would go */
	bool found;      /* key was present */
} btree_pos;

/* btree_lookup that also fills *pos (may be NULL), found or not. With a
 * pos it is a change's lookup: it goes straight to the rightmost leaf when
 * key belongs there (README P8). */
int btree_lookup_pos(btree *t, const void *key, size_t klen, wd_tid *tid,
		     btree_pos *pos) WD_MUST_CHECK;

/* How many lookups the kept rightmost leaf answered (P8; for tests). */
uint64_t btree_rightmost_hits(const btree *t);

/* btree_insert at pos (from btree_lookup_pos of the same key; NULL: none). */
int btree_insert_at(btree *t, const btree_pos *pos, wd_xid xid, wd_lsn prev,
		    const void *key, size_t klen, wd_tid tid,
		    wd_lsn *lsn) WD_MUST_CHECK;

/* btree_update_tid at pos (as btree_insert_at). */
int btree_update_tid_at(btree *t, const btree_pos *pos, wd_xid xid, wd_lsn prev,
			const void *key, size_t klen, wd_tid tid,
			wd_lsn *lsn) WD_MUST_CHECK;

/* ---- cursors ---- */

enum { BT_FORWARD = 1, BT_BACKWARD = -1 };

int btree_cursor_open(btree *t, btree_cursor **out) WD_MUST_CHECK;

/*
 * Positions c: with BT_FORWARD, next returns keys >= key ascending; with
 * BT_BACKWARD, keys <= key descending. key NULL: from the first (forward)
 * or last (backward) key. WD_ETOOBIG, pool errors.
 */
int btree_cursor_seek(btree_cursor *c, const void *key, size_t klen,
		      int dir) WD_MUST_CHECK;

/*
 * The next key in the cursor's direction: *key points into the cursor and
 * stays valid until the next call on c. WD_NOTFOUND at the end. Between
 * calls the cursor holds no pin or latch; it survives concurrent splits and
 * page deletions (README P6).
 */
int btree_cursor_next(btree_cursor *c, const void **key, size_t *klen,
		      wd_tid *tid) WD_MUST_CHECK;

void btree_cursor_close(btree_cursor *c);

/* ---- verification (walden check, walden dot) ---- */

typedef struct btree_check_report {
	uint32_t height;        /* levels; 1 = the root is a leaf */
	uint64_t pages;         /* pages reachable from the root */
	uint64_t leaves, internal;
	uint64_t items;         /* keys in leaves */
	uint64_t free_pages;    /* on the metapage's free list */
	uint64_t unused_pages;  /* neither reachable nor free, all zero (a
				 * crash between extend and log): leaked,
				 * not damage; a non-zero one is damage */
	uint64_t nblocks;       /* blocks of the relation */
	/* the first violation (ok = true: none) */
	bool ok;
	wd_blkno bad_blk;       /* page where it was found */
	int bad_item;           /* item index, -1 if about the page */
	char msg[256];
} btree_check_report;

/*
 * Verifies every invariant of README "Invariants" (order within a page and
 * across siblings, parent/child key bounds, sibling links, equal leaf
 * depth, no sibling links on internal pages, no unknown flag bits, free
 * list disjoint from the tree, every other block all zero) and counts
 * pages and items. Every page is read as untrusted input.
 * Holds the tree's structure lock exclusively while it runs. Returns 0 if
 * the tree is sound, WD_ECORRUPT (detail and r->msg name the page and item)
 * if not, or a pool error.
 */
int btree_check(btree *t, btree_check_report *r) WD_MUST_CHECK;

/* Writes the tree as Graphviz DOT to out (keys shortened, leaf chain
 * dashed). Pool errors, WD_EIO if writing fails. */
int btree_dot(btree *t, FILE *out) WD_MUST_CHECK;

/* ---- page decoders (walden inspect, walden check) ----
 * Pure functions over page images that may come from a damaged file: every
 * offset and length is checked against the page; garbage is WD_ECORRUPT,
 * never a read outside it. Pointers in the views point into the page.
 * Formats: README "Formats". This format has no high keys: a page's upper
 * bound is its parent's next separator (README I4). */

#define BTREE_PAGE_LEAF 0x1u    /* level 0 */
#define BTREE_PAGE_ROOT 0x2u    /* the root */
#define BTREE_PAGE_DELETED 0x4u /* on the free list */

typedef struct btree_page_view {
	uint32_t level;          /* 0 = leaf */
	uint16_t flags;          /* BTREE_PAGE_* */
	wd_blkno left, right;    /* leaf siblings, WD_INVALID_BLKNO if none */
	wd_blkno next_free;      /* deleted pages: the next free page */
	uint32_t nitems;
} btree_page_view;

/* Decodes a tree page's special area and item count. WD_ECORRUPT if page
 * is not a B+tree page (kind, special size) or its header bounds are bad. */
int btree_page_view_decode(const uint8_t *page, uint32_t page_size,
			   btree_page_view *v) WD_MUST_CHECK;

typedef struct btree_item_view {
	const uint8_t *key;
	uint32_t klen;
	bool minus_inf;          /* item 0 of an internal page: no key */
	wd_tid tid;              /* leaf: the heap tuple */
	wd_blkno child;          /* internal: the child, else WD_INVALID_BLKNO */
} btree_item_view;

/* Decodes item slot of tree page page (leaf or internal by its flags).
 * WD_ECORRUPT if the page or the item is damaged. */
int btree_item_view_decode(const uint8_t *page, uint32_t page_size, uint32_t slot,
			   btree_item_view *v) WD_MUST_CHECK;

typedef struct btree_meta_view {
	uint32_t magic, version;
	wd_blkno root;
	uint32_t level;          /* root level (height - 1) */
	wd_blkno free_head;      /* first free page, WD_INVALID_BLKNO if none */
	uint32_t nfree;
} btree_meta_view;

/* Decodes a metapage. Fills every field it can reach, then returns
 * WD_ECORRUPT for a wrong kind, special size or magic, WD_EVERSION for an
 * unknown version. */
int btree_meta_view_decode(const uint8_t *page, uint32_t page_size,
			   btree_meta_view *v) WD_MUST_CHECK;

/* Registers the BTREE rmgr's redo and describe routines (idempotent). */
int btree_rmgr_register(void) WD_MUST_CHECK;

#endif /* WALDEN_BTREE_H */
