/*
 * heapam.c - tuple operations on heap pages (README P1, P2, P5, P6):
 * choosing a page with room (heap_take_page / heap_release_page), insert,
 * fetch, update in place or moved, delete.
 * Entry points: heap_insert, heap_fetch, heap_update, heap_delete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap/heap_internal.h"
#include "storage/storage.h"
#include "wal/rmgr.h"

/*
 * P2 steps 1-2: a page that the FSM says has category min_cat or more (not
 * skip), pinned and exclusively latched; a new block if the map knows
 * none. The map is a hint: the caller checks the page itself.
 */
int heap_take_page(heap *h, unsigned min_cat, wd_blkno skip, wd_blkno *blk, bm_buf **buf)
{
	int rc;
	*blk = heap_fsm_find(h, min_cat, skip);
	if (*blk == WD_INVALID_BLKNO) {
		rc = bufmgr_extend(h->pool, h->rel, blk, buf); /* latched, zero */
		if (rc == 0)
			HEAP_COUNT(h, extends);
		return rc;
	}
	if ((rc = bufmgr_pin(h->pool, h->rel, *blk, BM_READ, buf)) != 0)
		return rc;
	bufmgr_latch(*buf, BM_EXCL);
	HEAP_COUNT(h, pages_tried);
	return 0;
}

/* P1 step 7 and P2 step 5: records the page's true category in the map
 * (under the latch, so the map follows the page's changes in order),
 * unlatches and unpins. The FSM page is written at the close (FSM-I2). */
void heap_release_page(heap *h, wd_blkno blk, bm_buf *buf)
{
	heap_fsm_set(h, blk, heap_page_category(h, bufmgr_page(buf)));
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
}

/*
 * P1 step 2 of an insert: whether a tlen-byte tuple fits on heap page p,
 * and *slot, the slot it will get: the first unused slot (line pointer
 * length 0), else a new one at the end (page_first_unused, the rule of
 * page_item_add(PAGE_SLOT_NEW), which redo uses). heap_change_apply puts
 * the tuple there without looking for it again.
 */
static bool insert_slot(const uint8_t *p, uint32_t tlen, uint16_t *slot)
{
	uint32_t n = page_nslots(p), s;
	if (tlen > page_free_space_noslot(p))
		return false;
	s = page_first_unused(p);
	*slot = (uint16_t)s;
	return s < n || tlen <= page_free_space(p); /* a new slot needs a pointer */
}

/*
 * P1 steps 2-6 of an insert on the latched page buf: HEAP_NO_ROOM if it is
 * no heap page or the tuple does not fit (the page untouched). An empty page
 * is formatted afresh and the record says so (WAL_BLK_WILL_INIT), so redo
 * needs no image of it.
 */
static int try_add(heap *h, bm_buf *buf, wd_xid xid, wd_lsn *prev, const uint8_t *tuple,
		   uint32_t tlen, uint16_t *slot)
{
	const uint8_t *p = bufmgr_page(buf);
	bool init = heap_page_category(h, p) == FSM_CAT_EMPTY;
	uint8_t main[HR_INSERT_MAIN];
	heap_change c = {.op = HC_INSERT, .init = init, .item = tuple, .len = tlen,
			 .type = HEAP_INSERT, .blk_flags = init ? WAL_BLK_WILL_INIT : 0,
			 .data = tuple, .data_len = tlen, .main = main, .main_len = sizeof main};

	/* step 2: room on a heap page (or an empty page to format) */
	if (!init && page_kind(p) != PAGE_KIND_HEAP)
		return HEAP_NO_ROOM; /* an overflow page the map did not know of */
	c.slot = 0;
	if (!init && !insert_slot(p, tlen, &c.slot))
		return HEAP_NO_ROOM;
	*slot = c.slot;
	put_le16(main, c.slot);
	main[2] = init ? HR_F_INIT : 0;
	main[3] = 0;
	/* steps 3-6 */
	return heap_log(h, buf, &c, xid, prev);
}

/* P2: puts the tuple on some page other than skip with room for it,
 * correcting map entries that promised too much, and returns its TID. */
static int place_tuple(heap *h, wd_xid xid, wd_lsn *prev, const uint8_t *tuple,
		       uint32_t tlen, wd_blkno skip, heap_tid *tid)
{
	unsigned cat = heap_fsm_cat_for(h, tlen);
	uint16_t slot = 0;
	wd_blkno blk;
	bm_buf *buf;
	int rc;

	for (;;) {
		/* P1 step 1 (P2 steps 1-3) */
		if ((rc = heap_take_page(h, cat, skip, &blk, &buf)) != 0)
			return rc;
		rc = try_add(h, buf, xid, prev, tuple, tlen, &slot);
		/* P1 step 7 (P2 steps 4-5) */
		heap_release_page(h, blk, buf);
		if (rc != HEAP_NO_ROOM)
			break;
		HEAP_COUNT(h, fsm_wrong); /* stale entry, now corrected */
	}
	if (rc == 0)
		*tid = (heap_tid){blk, slot};
	return rc;
}

/* WD_ETOOBIG unless the key and value are within the heap's limits. */
static int check_sizes(const heap *h, const void *key, uint32_t klen, const void *val,
		       uint64_t vlen)
{
	if (klen > heap_max_key_len(h))
		return err_set(WD_ETOOBIG, "heap rel %u: key of %u bytes exceeds the limit of "
			       "%u bytes", h->rel, klen, heap_max_key_len(h));
	if (vlen > h->max_value)
		return err_set(WD_ETOOBIG, "heap rel %u: value of %llu bytes exceeds the "
			       "maximum value size of %llu bytes (max_value_bytes)", h->rel,
			       (unsigned long long)vlen, (unsigned long long)h->max_value);
	if ((klen && !key) || (vlen && !val))
		return err_set(WD_EINVAL, "heap rel %u: NULL key or value", h->rel);
	return 0;
}

/* true if a tuple with this key and value is too long to stay inline. */
static bool needs_overflow(const heap *h, uint32_t klen, uint64_t vlen)
{
	return HT_HDR + (uint64_t)klen + vlen > h->max_inline;
}

/* Tuples of up to this many bytes are built on the caller's stack. */
#define HEAP_SMALL_TUPLE 512

/* Builds the tuple for (key, val): inline, or pointing at a chain written
 * first (P3). *tuple is the caller's small (HEAP_SMALL_TUPLE bytes) if it
 * fits there, else malloc'd; *first is the chain or WD_INVALID_BLKNO. */
static int make_tuple(heap *h, wd_xid xid, wd_lsn *prev, const void *key, uint32_t klen,
		      const void *val, uint64_t vlen, uint8_t *small, uint8_t **tuple,
		      uint32_t *tlen, wd_blkno *first)
{
	bool ovf = needs_overflow(h, klen, vlen);
	int rc;
	*first = WD_INVALID_BLKNO;
	if (ovf && (rc = heap_ovf_write(h, xid, prev, val, vlen, first)) != 0)
		return rc;
	if (ovf)
		storage_crash_point("heap-after-overflow-write");
	*tlen = heap_tuple_len(klen, vlen, ovf);
	if (*tlen <= HEAP_SMALL_TUPLE)
		*tuple = small;
	else if (!(*tuple = malloc(*tlen))) {
		if (ovf)
			heap_ovf_discard(h, xid, prev, *first, vlen);
		return err_set(WD_ENOMEM, "heap rel %u: out of memory", h->rel);
	}
	heap_tuple_build(*tuple, key, klen, val, vlen, ovf, *first);
	return 0;
}

int heap_insert(heap *h, wd_xid xid, wd_lsn *xact_prev, const void *key, uint32_t klen,
		const void *val, uint64_t vlen, heap_tid *tid)
{
	uint8_t small[HEAP_SMALL_TUPLE], *tuple = NULL;
	uint32_t tlen;
	wd_blkno first;
	int rc = check_sizes(h, key, klen, val, vlen);

	if (rc == 0)
		rc = make_tuple(h, xid, xact_prev, key, klen, val, vlen, small, &tuple, &tlen,
				&first);
	if (rc != 0)
		return rc;
	rc = place_tuple(h, xid, xact_prev, tuple, tlen, WD_INVALID_BLKNO, tid);
	if (rc != 0 && first != WD_INVALID_BLKNO)
		heap_ovf_discard(h, xid, xact_prev, first, vlen);
	if (rc == 0)
		HEAP_COUNT(h, inserts);
	if (tuple != small)
		free(tuple);
	return rc;
}

/* WD_NOTFOUND naming the TID. */
static int no_tuple(const heap *h, heap_tid tid)
{
	return err_set(WD_NOTFOUND, "heap rel %u: no tuple at (%u, %u)", h->rel, tid.blk,
		       tid.slot);
}

/* Pins tid's page with the latch of mode; WD_NOTFOUND if the block is past
 * the end or not a heap page, or the slot is empty (*item: the tuple). */
static int pin_tuple(heap *h, heap_tid tid, int mode, bm_buf **buf, uint8_t **item,
		     uint32_t *len)
{
	bool past_end;
	int rc = heap_pin_block(h, tid.blk, &past_end, buf);
	if (rc != 0)
		return rc;
	if (past_end)
		return no_tuple(h, tid);
	bufmgr_latch(*buf, mode);
	if (page_kind(bufmgr_page(*buf)) != PAGE_KIND_HEAP ||
	    !(*item = page_item(bufmgr_page(*buf), tid.slot, len))) {
		bufmgr_unlatch(*buf);
		bufmgr_unpin(h->pool, *buf);
		return no_tuple(h, tid);
	}
	return 0;
}

/* The kind of page block blk of h's relation holds (PAGE_KIND_NONE: all
 * zero, never written), or WD_NOTFOUND if the file has no such block. */
int heap_block_kind(heap *h, wd_blkno blk, unsigned *kind)
{
	bool past_end;
	bm_buf *buf;
	int rc = heap_pin_block(h, blk, &past_end, &buf);
	if (rc != 0)
		return rc;
	if (past_end)
		return WD_NOTFOUND;
	bufmgr_latch(buf, BM_SHARE);
	*kind = page_kind(bufmgr_page(buf));
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
	return 0;
}

/* A copy of the tuple at tid (*raw, malloc'd) and its parse. */
static int load_tuple(heap *h, heap_tid tid, uint8_t **raw, heap_tuple *t)
{
	uint8_t *item;
	uint32_t len;
	bm_buf *buf;
	int rc = pin_tuple(h, tid, BM_SHARE, &buf, &item, &len);
	if (rc != 0)
		return rc;
	if ((*raw = malloc(len)) != NULL)
		memcpy(*raw, item, len);
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
	if (!*raw)
		return err_set(WD_ENOMEM, "heap rel %u: out of memory", h->rel);
	if ((rc = heap_tuple_parse(*raw, len, t)) != 0) {
		free(*raw);
		*raw = NULL;
		return err_wrap(rc, "heap rel %u block %u slot %u", h->rel, tid.blk, tid.slot);
	}
	return 0;
}

/*
 * Parses the tuple item[0, len) at tid of a latched page and copies
 * min(klen, kcap) key bytes to kbuf and, if the value is inline,
 * min(vlen, vcap) value bytes to vbuf; *t keeps the lengths, flags and
 * chain (its pointers are into the page: not to be used once unlatched).
 */
static int copy_tuple(heap *h, heap_tid tid, const uint8_t *item, uint32_t len,
		      void *kbuf, uint32_t kcap, void *vbuf, uint64_t vcap, heap_tuple *t)
{
	int rc = heap_tuple_parse(item, len, t);
	if (rc != 0)
		return err_wrap(rc, "heap rel %u block %u slot %u", h->rel, tid.blk, tid.slot);
	if (kcap && t->klen)
		memcpy(kbuf, t->key, t->klen < kcap ? t->klen : kcap);
	if (vcap && t->vlen && !(t->flags & HT_F_OVERFLOW))
		memcpy(vbuf, t->val, (size_t)(t->vlen < vcap ? t->vlen : vcap));
	return 0;
}

/* Reads the tuple at tid straight into the caller's buffers, under a share
 * latch (no copy of the tuple, no allocation); an overflowed value is read
 * from its chain after the page is released. */
int heap_fetch(heap *h, heap_tid tid, void *kbuf, uint32_t kcap, uint32_t *klen,
	       void *vbuf, uint64_t vcap, uint64_t *vlen)
{
	uint8_t *item;
	uint32_t len;
	heap_tuple t;
	bm_buf *buf;
	int rc = pin_tuple(h, tid, BM_SHARE, &buf, &item, &len);
	if (rc != 0)
		return rc;
	rc = copy_tuple(h, tid, item, len, kbuf, kcap, vbuf, vcap, &t);
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
	if (rc != 0)
		return rc;
	if (klen)
		*klen = t.klen;
	if (vlen)
		*vlen = t.vlen;
	if (vcap && t.vlen && (t.flags & HT_F_OVERFLOW))
		rc = heap_ovf_read(h, t.ovf_first, t.vlen, vbuf, vcap);
	if (rc == 0)
		HEAP_COUNT(h, fetches);
	return rc;
}

void heap_hold_release(heap *h, heap_hold *hold)
{
	if (hold->buf)
		bufmgr_unpin(h->pool, hold->buf);
	hold->buf = NULL;
}

/*
 * Makes hold pin block blk of h's relation: kept if it does already (same
 * relation and block: a hold passed to another heap never reads that
 * heap's block from this one's page), else the old page is unpinned and
 * blk pinned. *past_end (nothing held) if there is no blk.
 */
static int hold_block(heap *h, heap_hold *hold, wd_blkno blk, bool *past_end)
{
	int rc;
	*past_end = false;
	if (hold->buf && hold->blk == blk && hold->rel == h->rel)
		return 0;
	heap_hold_release(h, hold);
	rc = heap_pin_block(h, blk, past_end, &hold->buf);
	if (rc != 0 || *past_end) {
		hold->buf = NULL;
	} else {
		hold->rel = h->rel;
		hold->blk = blk;
	}
	return rc;
}

/*
 * A fetch by tid on a page out of the CPU caches waits for misses in turn:
 * the header (page kind), the line pointer, then each line of the tuple as
 * the parse, the key compare and the copy reach it. The first two are
 * prefetched before the latch is taken (the latch's own atomic operation
 * then overlaps them), the tuple's lines as soon as the line pointer gives
 * them. Hints only: they change nothing and fault on nothing; nothing past
 * the page is prefetched.
 */
#define HEAP_PREFETCH_TUPLE_BYTES 256u

static inline void prefetch_slot(const heap *h, const uint8_t *p, uint32_t slot)
{
	__builtin_prefetch(p);
	if (PAGE_HEADER_SIZE + (uint64_t)slot * PAGE_LP_SIZE < h->ps)
		__builtin_prefetch(p + PAGE_HEADER_SIZE + slot * PAGE_LP_SIZE);
}

static inline void prefetch_tuple(const heap *h, const uint8_t *p, const uint8_t *item,
				  uint32_t len)
{
	uint32_t off = (uint32_t)(item - p), end = off + len;
	if (end > h->ps)
		end = h->ps;
	if (end > off + HEAP_PREFETCH_TUPLE_BYTES)
		end = off + HEAP_PREFETCH_TUPLE_BYTES;
	for (uint32_t o = off + 64; o < end; o += 64)
		__builtin_prefetch(p + o);
}

int heap_fetch_key(heap *h, heap_hold *hold, heap_tid tid, const void *key, uint32_t klen,
		   void *vbuf, uint64_t vcap, uint64_t *vlen)
{
	const uint8_t *p, *item;
	bool past_end, same = false;
	uint32_t len;
	heap_tuple t;
	int rc = hold_block(h, hold, tid.blk, &past_end);
	if (rc != 0 || past_end)
		return rc != 0 ? rc : WD_NOTFOUND;
	p = bufmgr_page(hold->buf);
	prefetch_slot(h, p, tid.slot);
	bufmgr_latch(hold->buf, BM_SHARE);
	if (page_kind(p) != PAGE_KIND_HEAP || !(item = page_item_const(p, tid.slot, &len))) {
		rc = WD_NOTFOUND;
	} else {
		prefetch_tuple(h, p, item, len);
		if ((rc = heap_tuple_parse(item, len, &t)) == 0)
			same = t.klen == klen && memcmp(t.key, key, klen) == 0;
	}
	if (rc == 0 && same && !(t.flags & HT_F_OVERFLOW)) {
		if (vcap && t.vlen)
			memcpy(vbuf, t.val, (size_t)(t.vlen < vcap ? t.vlen : vcap));
		*vlen = t.vlen;
	}
	bufmgr_unlatch(hold->buf);
	if (rc != 0)
		return rc == WD_NOTFOUND ? WD_NOTFOUND
					 : err_wrap(rc, "heap rel %u block %u slot %u", h->rel,
						    tid.blk, tid.slot);
	if (!same)
		return WD_NOTFOUND;
	if (t.flags & HT_F_OVERFLOW)
		return WD_ETOOBIG;
	HEAP_COUNT(h, fetches);
	return 0;
}

/*
 * P5 on tid's page: removes the tuple (its slot becomes reusable, trailing
 * empty slots go) and logs HEAP_DELETE. *t: the tuple's lengths, flags and
 * chain, read under the same latch (its pointers are not to be used).
 */
static int delete_slot(heap *h, wd_xid xid, wd_lsn *prev, heap_tid tid, heap_tuple *t)
{
	uint8_t main[HR_DELETE_MAIN] = {0}, *item;
	heap_change c = {.op = HC_CLEAR, .slot = tid.slot, .type = HEAP_DELETE, .main = main,
			 .main_len = sizeof main};
	uint32_t len;
	bm_buf *buf;
	int rc = pin_tuple(h, tid, BM_EXCL, &buf, &item, &len);
	if (rc != 0)
		return rc;
	/* step 2: the tuple (for its chain); a clear always fits */
	rc = copy_tuple(h, tid, item, len, NULL, 0, NULL, 0, t);
	put_le16(main, tid.slot);
	if (rc == 0)
		rc = heap_log(h, buf, &c, xid, prev);
	heap_release_page(h, tid.blk, buf);
	return rc;
}

/*
 * A chain nothing points at any more: the tuple that did was deleted or
 * replaced, and that change is logged and done. Freed (P4); if freeing
 * fails part-way (wal_insert's WD_ENOSPC, an unreadable page), the rest
 * is left as an orphan and counted, like heap_ovf_discard: the change it
 * follows has happened, so its caller reports success (README "Orphans").
 */
static void free_old_chain(heap *h, wd_xid xid, wd_lsn *prev, const heap_tuple *t)
{
	if (!(t->flags & HT_F_OVERFLOW))
		return;
	if (heap_ovf_free(h, xid, prev, t->ovf_first, t->vlen) != 0)
		HEAP_COUNT(h, chains_orphaned);
}

int heap_delete(heap *h, wd_xid xid, wd_lsn *xact_prev, heap_tid tid)
{
	heap_tuple t;
	int rc = delete_slot(h, xid, xact_prev, tid, &t);
	if (rc != 0)
		return rc; /* the tuple is still there */
	HEAP_COUNT(h, deletes);
	if (t.flags & HT_F_OVERFLOW) {
		/* P5 step 2: the tuple is gone, so nothing points at the chain */
		storage_crash_point("heap-delete-before-overflow-free");
		free_old_chain(h, xid, xact_prev, &t);
	}
	return 0;
}

/* P6 step 3: replaces the tuple at tid in place with tuple[0, tlen),
 * logged as HEAP_UPDATE; HEAP_NO_ROOM (page untouched) if it does not fit. */
static int replace_slot(heap *h, wd_xid xid, wd_lsn *prev, heap_tid tid,
			const uint8_t *tuple, uint32_t tlen)
{
	uint8_t main[HR_UPDATE_MAIN] = {0}, *item;
	heap_change c = {.op = HC_REPLACE, .slot = tid.slot, .item = tuple, .len = tlen,
			 .type = HEAP_UPDATE, .data = tuple, .data_len = tlen, .main = main,
			 .main_len = sizeof main};
	uint32_t len;
	bm_buf *buf;
	int rc = pin_tuple(h, tid, BM_EXCL, &buf, &item, &len);
	if (rc != 0)
		return rc;
	/* step 2: page_item_replace's test, before anything changes */
	if (tlen > page_free_space_noslot(bufmgr_page(buf)) + len) {
		rc = HEAP_NO_ROOM;
	} else {
		put_le16(main, tid.slot);
		rc = heap_log(h, buf, &c, xid, prev);
	}
	heap_release_page(h, tid.blk, buf);
	return rc;
}

/*
 * P6 step 4d: the old version's delete failed (cause) after the new version
 * went in at nt: the new version is deleted again, so nothing observable
 * changed (*newtid stays tid) and the cause is returned. If that delete
 * fails too, both versions are live: *newtid = nt and a distinct detail
 * (heap.h). *new_live says whether the new version (and so its chain) stays.
 */
static int undo_move(heap *h, wd_xid xid, wd_lsn *prev, heap_tid tid, heap_tid nt,
		     int cause, heap_tid *newtid, bool *new_live)
{
	char why[512];
	heap_tuple gone;
	int rc;
	snprintf(why, sizeof why, "%s", wd_last_error());
	rc = delete_slot(h, xid, prev, nt, &gone);
	if (rc == 0) {
		HEAP_COUNT(h, updates_undone);
		return err_set(cause, "%s (heap rel %u: update of (%u, %u) taken back: its new "
			       "version at (%u, %u) deleted again)", why, h->rel, tid.blk, tid.slot,
			       nt.blk, nt.slot);
	}
	*new_live = true;
	*newtid = nt;
	return err_set(cause, "heap rel %u: update of (%u, %u) left two versions of its key: "
		       "deleting the old one failed (%s) and so did deleting the new one at "
		       "(%u, %u) again (%s); delete one of them", h->rel, tid.blk, tid.slot, why,
		       nt.blk, nt.slot, wd_last_error());
}

/*
 * P6 step 4: the new version did not fit in place: insert it elsewhere
 * (4b), then delete the old one (4c). Either both happen (0, *newtid the
 * new TID) or, seen from outside, neither (undo_move). Step 4a pins the old
 * page before the insert and keeps it pinned, so the delete between the two
 * records needs no read and no free buffer: what is left to fail is the
 * WAL (its record, or memory for it). No latch is held across the insert
 * (one heap page latch at a time).
 */
static int move_tuple(heap *h, wd_xid xid, wd_lsn *prev, heap_tid tid,
		      const uint8_t *tuple, uint32_t tlen, heap_tid *newtid, bool *new_live)
{
	heap_tuple gone;
	heap_tid nt;
	bool past_end;
	bm_buf *keep;
	int rc = heap_pin_block(h, tid.blk, &past_end, &keep); /* 4a */
	if (rc != 0 || past_end)
		return rc != 0 ? rc : no_tuple(h, tid);
	if ((rc = place_tuple(h, xid, prev, tuple, tlen, tid.blk, &nt)) != 0) /* 4b */
		goto out;
	storage_crash_point("heap-update-after-new-version");
	if ((rc = delete_slot(h, xid, prev, tid, &gone)) == 0) { /* 4c */
		*newtid = nt;
		*new_live = true;
		HEAP_COUNT(h, updates_moved);
	} else {
		rc = undo_move(h, xid, prev, tid, nt, rc, newtid, new_live);
	}
out:
	bufmgr_unpin(h->pool, keep);
	return rc;
}

int heap_update(heap *h, wd_xid xid, wd_lsn *xact_prev, heap_tid tid, const void *val,
		uint64_t vlen, heap_tid *newtid)
{
	uint8_t small[HEAP_SMALL_TUPLE], *raw = NULL, *tuple = NULL;
	bool new_live = false;
	heap_tuple old;
	wd_blkno first = WD_INVALID_BLKNO;
	uint32_t tlen;
	int rc = check_sizes(h, NULL, 0, val, vlen);

	*newtid = tid;
	/* step 1: the key (kept) and the old chain; step 2: the new tuple */
	if (rc == 0 && (rc = load_tuple(h, tid, &raw, &old)) == 0)
		rc = make_tuple(h, xid, xact_prev, old.key, old.klen, val, vlen, small, &tuple,
				&tlen, &first);
	if (rc != 0)
		goto out;
	if ((rc = replace_slot(h, xid, xact_prev, tid, tuple, tlen)) == 0) { /* step 3 */
		new_live = true;
		HEAP_COUNT(h, updates_in_place);
	} else if (rc == HEAP_NO_ROOM) {
		rc = move_tuple(h, xid, xact_prev, tid, tuple, tlen, newtid, &new_live);
	}
	/* the new chain: kept while a live tuple points at it */
	if (!new_live && first != WD_INVALID_BLKNO)
		heap_ovf_discard(h, xid, xact_prev, first, vlen);
	/* step 5: the update is done; nothing points at the old chain */
	if (rc == 0 && (old.flags & HT_F_OVERFLOW)) {
		storage_crash_point("heap-update-before-overflow-free");
		free_old_chain(h, xid, xact_prev, &old);
	}
out:
	free(raw);
	if (tuple != small)
		free(tuple);
	return rc;
}
