/*
 * evict.c - making room and writing pages: the clock sweep (P2), retagging
 * a victim (P3), write-out with WAL before data (P4), and the calls built on
 * write-out: bufmgr_flush_buffer, bufmgr_flush_rel, bufmgr_flush_all (P6),
 * bufmgr_dirty_pages, and bufmgr_drop_rel (P7). See README.md.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bufmgr/bufmgr_internal.h"
#include "storage/page.h"
#include "storage/trace.h"

/* ---- P2: clock sweep ---- */

/*
 * Claims a victim: advances the clock hand, decrementing usage counts, until
 * it finds an unpinned buffer with usage 0 and pins it with a CAS 0 -> 1
 * (I1: a pinned buffer is never a victim). Returns 0 with *victim pinned
 * once, or WD_ENOBUFS after two full sweeps that met only pinned buffers.
 */
int bm_claim_victim(bufmgr *pool, bm_buf **victim)
{
	uint64_t pinned_run = 0;
	for (;;) {
		uint64_t tick = atomic_fetch_add_explicit(&pool->hand, 1,
							  memory_order_relaxed);
		bm_buf *b = &pool->bufs[tick % pool->nbuf];
		uint32_t s = atomic_load(&b->state);
		if (BM_REFS(s) != 0) { /* step 1: skip pinned buffers */
			if (++pinned_run >= 2ull * pool->nbuf)
				return err_set(WD_ENOBUFS, "bufmgr: all %u buffers stayed pinned for two clock sweeps",
					      pool->nbuf);
			continue;
		}
		pinned_run = 0;
		if (BM_USAGE(s) > 0) { /* step 2: give it another round */
			atomic_compare_exchange_strong(&b->state, &s,
						       s - BM_USAGE_ONE);
			continue;
		}
		/* step 3: claim it; fails if someone pinned it meanwhile */
		if (atomic_compare_exchange_strong(&b->state, &s, s + BM_REF_ONE)) {
			*victim = b;
			return 0;
		}
	}
}

/* ---- P3: retagging the victim ---- */

/* Locks the partitions of hashes a and b in index order (once if equal). */
static void lock_two(bufmgr *pool, uint32_t a, uint32_t b)
{
	pthread_mutex_t *la = bm_part_lock(pool, a), *lb = bm_part_lock(pool, b);
	if (la == lb) {
		pthread_mutex_lock(la);
	} else if (la < lb) {
		pthread_mutex_lock(la);
		pthread_mutex_lock(lb);
	} else {
		pthread_mutex_lock(lb);
		pthread_mutex_lock(la);
	}
}

static void unlock_two(bufmgr *pool, uint32_t a, uint32_t b)
{
	pthread_mutex_t *la = bm_part_lock(pool, a), *lb = bm_part_lock(pool, b);
	pthread_mutex_unlock(la);
	if (lb != la)
		pthread_mutex_unlock(lb);
}

/*
 * Gives the victim (pinned once by us) the new tag. Under both partition
 * locks and hdr_mu it checks that nobody else pinned or dirtied the victim
 * since the write-out (else BM_INSTALL_RETRY) and that no other thread
 * installed tag first (else BM_INSTALL_EXISTS); then moves it in the hash
 * and leaves it TAG_VALID + IO, not VALID (I2, I7): readers of tag wait for
 * bm_fill. Returns 0 when installed.
 */
int bm_install(bufmgr *pool, bm_buf *v, bm_tag tag, uint32_t hash)
{
	bm_tag old = v->tag; /* stable: we hold the only pin (I2) */
	bool had = (atomic_load(&v->state) & BM_F_TAG_VALID) != 0;
	uint32_t old_hash = had ? bm_tag_hash(old) : hash;
	uint32_t s, n;
	int rc = 0;

	lock_two(pool, old_hash, hash);
	pthread_mutex_lock(&v->hdr_mu);
	s = atomic_load(&v->state);
	if (BM_REFS(s) != 1 || (s & BM_F_DIRTY) || !(s & BM_F_TAG_VALID) != !had) {
		rc = BM_INSTALL_RETRY;
		goto out;
	}
	if (bm_hash_find(pool, tag, hash) != BM_NONE) {
		rc = BM_INSTALL_EXISTS;
		goto out;
	}
	if (had)
		bm_hash_remove(pool, v, old_hash);
	bm_count(pool, (s & BM_F_VALID) ? BMC_EVICTIONS : BMC_FREE_USED);
	if (s & BM_F_VALID)
		TRACE(TR_BUFMGR, "evict rel=%u blk=%u for rel=%u blk=%u", old.rel,
		      old.blk, tag.rel, tag.blk);
	v->tag = tag;
	v->rec_lsn = WD_INVALID_LSN;
	bm_hash_insert(pool, v, hash);
	do /* keep the pin count, reset usage and flags */
		n = (s & BM_REF_MASK) | BM_USAGE_ONE | BM_F_TAG_VALID | BM_F_IO;
	while (!atomic_compare_exchange_weak(&v->state, &s, n));
out:
	pthread_mutex_unlock(&v->hdr_mu);
	unlock_two(pool, old_hash, hash);
	return rc;
}

/* ---- P4: write-out ---- */

/*
 * P4 step 1: waits for any I/O on buf to end, then starts ours if the page
 * is still valid and dirty (I6: one I/O per buffer at a time). false if
 * there is nothing to write.
 */
static bool begin_write(bm_buf *buf)
{
	bool go;
	pthread_mutex_lock(&buf->hdr_mu);
	bm_wait_io(buf);
	go = (atomic_load(&buf->state) & (BM_F_VALID | BM_F_DIRTY)) ==
	     (BM_F_VALID | BM_F_DIRTY);
	if (go)
		bm_set_flags(buf, BM_F_IO, 0);
	pthread_mutex_unlock(&buf->hdr_mu);
	return go;
}

/*
 * P4 step 6: ends our write. On success the buffer becomes clean unless it
 * was dirtied again after our copy (JUST_DIRTIED); on failure it stays
 * dirty with IO_ERROR. Wakes waiters.
 */
static void end_write(bm_buf *buf, bool ok)
{
	pthread_mutex_lock(&buf->hdr_mu);
	if (!ok) {
		bm_set_flags(buf, BM_F_IO_ERROR, BM_F_IO);
	} else if (atomic_load(&buf->state) & BM_F_JUST_DIRTIED) {
		bm_set_flags(buf, 0, BM_F_IO | BM_F_IO_ERROR);
	} else {
		buf->rec_lsn = WD_INVALID_LSN;
		bm_set_flags(buf, 0, BM_F_IO | BM_F_IO_ERROR | BM_F_DIRTY);
	}
	pthread_cond_broadcast(&buf->io_cv);
	pthread_mutex_unlock(&buf->hdr_mu);
}

/*
 * P4 step 2: copies the page under a share latch (so no change is half
 * made), clearing JUST_DIRTIED first: any change after the copy sets it
 * again (bufmgr_mark_dirty needs the exclusive latch).
 */
static void copy_page(bufmgr *pool, bm_buf *buf, uint8_t *copy)
{
	pthread_rwlock_rdlock(&buf->latch);
	pthread_mutex_lock(&buf->hdr_mu);
	bm_set_flags(buf, 0, BM_F_JUST_DIRTIED);
	pthread_mutex_unlock(&buf->hdr_mu);
	memcpy(copy, buf->page, pool->page_size);
	pthread_rwlock_unlock(&buf->latch);
}

/* P4 step 3: WAL before data (I5). The hook's error is returned as is. */
static int flush_wal(bufmgr *pool, bm_tag tag, wd_lsn lsn)
{
	int rc;
	if (!pool->wal_flush)
		return 0;
	rc = pool->wal_flush(pool->wal_arg, lsn);
	bm_count(pool, rc == 0 ? BMC_WAL_FLUSHES : BMC_WAL_ERRORS);
	if (rc != 0)
		return err_wrap(rc, "bufmgr: WAL flush to " LSN_FMT " before writing rel %u block %u",
				   LSN_ARGS(lsn), tag.rel, tag.blk);
	return 0;
}

/*
 * P4 steps 4-5: checksums the copy (an all-zero page is written as zeroes,
 * so it reads back as "new") and writes it at its block.
 */
static int write_page(bufmgr *pool, bm_tag tag, uint8_t *copy,
		      enum bm_write_why why)
{
	bm_rel *r = bm_rel_get(pool, tag.rel);
	int rc;

	if (!r) /* cannot happen: a pinned tag's relation stays open */
		return err_set(WD_ESTATE, "bufmgr: relation %u closed under a pinned page", tag.rel);
	if (!page_is_zero(copy, pool->page_size))
		page_checksum_set(copy, pool->page_size, tag.blk);
	bm_count(pool, why == BM_WHY_EVICT ? BMC_EVICT_WRITES : BMC_FLUSH_WRITES);
	storage_crash_point("bufmgr-before-write");
	rc = storage_write(r->file, copy, pool->page_size,
			   (uint64_t)tag.blk * pool->page_size);
	if (rc != 0) {
		bm_count(pool, BMC_WRITE_ERRORS);
		return err_wrap(rc, "bufmgr: rel %u block %u", tag.rel, tag.blk);
	}
	bm_count(pool, BMC_WRITES);
	/* after the write, never before: a sync racing with us must not
	 * clear the flag before our bytes are in the file */
	atomic_store(&r->unsynced, true);
	storage_crash_point("bufmgr-after-write");
	return 0;
}

/*
 * P4: writes buf if it is dirty. Precondition: the caller holds a pin on
 * buf and no latch on it. On error the buffer stays dirty (I8). Used by
 * eviction (why = BM_WHY_EVICT) and the flush calls.
 */
int bm_write_out(bufmgr *pool, bm_buf *buf, enum bm_write_why why)
{
	uint8_t *copy = NULL;
	wd_lsn lsn;
	int rc = 0;

	if (!begin_write(buf)) /* step 1 */
		return 0;
	if (posix_memalign((void **)&copy, 64, pool->page_size) != 0) {
		rc = err_set(WD_ENOMEM, "bufmgr: no memory to write a page");
		goto out;
	}
	copy_page(pool, buf, copy); /* step 2 */
	lsn = page_lsn(copy);
	if ((rc = flush_wal(pool, buf->tag, lsn)) != 0) /* step 3: WAL before data */
		goto out;
	rc = write_page(pool, buf->tag, copy, why); /* steps 4-5 */
	TRACE(TR_BUFMGR, "write rel=%u blk=%u lsn=" LSN_FMT " %s%s", buf->tag.rel,
	      buf->tag.blk, LSN_ARGS(lsn), why == BM_WHY_EVICT ? "evict" : "flush",
	      rc ? " FAILED" : "");
out:
	end_write(buf, rc == 0); /* step 6 */
	free(copy);
	return rc;
}

int bufmgr_flush_buffer(bufmgr *pool, bm_buf *buf)
{
	assert(BM_REFS(atomic_load(&buf->state)) > 0);
	return bm_write_out(pool, buf, BM_WHY_FLUSH);
}

/* ---- P6: flushing many buffers ---- */

/*
 * Pins buf if it holds a dirty page (of rel, unless all_rels). The pin is
 * taken under hdr_mu, which bm_install holds while it checks the pin count,
 * so the tag cannot change under us.
 */
static bool pin_if_dirty(bm_buf *buf, bool all_rels, wd_relid rel)
{
	bool pin;
	pthread_mutex_lock(&buf->hdr_mu);
	pin = (atomic_load(&buf->state) & (BM_F_VALID | BM_F_DIRTY)) ==
		      (BM_F_VALID | BM_F_DIRTY) &&
	      (all_rels || buf->tag.rel == rel);
	if (pin)
		atomic_fetch_add(&buf->state, BM_REF_ONE);
	pthread_mutex_unlock(&buf->hdr_mu);
	return pin;
}

/* Writes every dirty buffer (of rel unless all_rels); stops at an error. */
static int flush_dirty(bufmgr *pool, bool all_rels, wd_relid rel)
{
	int rc = 0;
	for (uint32_t i = 0; i < pool->nbuf && rc == 0; i++) {
		bm_buf *b = &pool->bufs[i];
		if (!(atomic_load(&b->state) & BM_F_DIRTY) ||
		    !pin_if_dirty(b, all_rels, rel))
			continue;
		rc = bm_write_out(pool, b, BM_WHY_FLUSH);
		bufmgr_unpin(pool, b);
	}
	return rc;
}

int bufmgr_flush_rel(bufmgr *pool, wd_relid rel)
{
	return flush_dirty(pool, false, rel);
}

/* P6: step 1 write every dirty buffer, step 2 sync every written file. */
int bufmgr_flush_all(bufmgr *pool)
{
	int rc = flush_dirty(pool, true, 0);
	if (rc == 0)
		rc = bm_sync_all(pool);
	return rc;
}

/* Pins buf if it holds a dirty page with a recLSN below lsn (read under
 * hdr_mu with the flags, as pin_if_dirty). */
static bool pin_if_dirty_before(bm_buf *buf, wd_lsn lsn)
{
	bool pin;
	pthread_mutex_lock(&buf->hdr_mu);
	pin = (atomic_load(&buf->state) & (BM_F_VALID | BM_F_DIRTY)) ==
		      (BM_F_VALID | BM_F_DIRTY) &&
	      buf->rec_lsn < lsn;
	if (pin)
		atomic_fetch_add(&buf->state, BM_REF_ONE);
	pthread_mutex_unlock(&buf->hdr_mu);
	return pin;
}

int bufmgr_flush_before(bufmgr *pool, wd_lsn lsn, void (*pace)(void *arg, uint64_t n),
			void *arg)
{
	uint64_t n = 0;
	int rc = 0;
	for (uint32_t i = 0; i < pool->nbuf && rc == 0; i++) {
		bm_buf *b = &pool->bufs[i];
		if (!(atomic_load(&b->state) & BM_F_DIRTY) || !pin_if_dirty_before(b, lsn))
			continue;
		rc = bm_write_out(pool, b, BM_WHY_FLUSH);
		bufmgr_unpin(pool, b);
		if (rc == 0 && pace)
			pace(arg, ++n);
	}
	return rc;
}

int bufmgr_sync_all(bufmgr *pool)
{
	return bm_sync_all(pool);
}

/* Reports each dirty buffer's tag and recLSN, read together under hdr_mu. */
int bufmgr_dirty_pages(bufmgr *pool, bufmgr_dirty_fn fn, void *arg)
{
	for (uint32_t i = 0; i < pool->nbuf; i++) {
		bm_buf *b = &pool->bufs[i];
		bm_tag tag;
		wd_lsn rec = 0;
		bool dirty;
		int rc;
		if (!(atomic_load(&b->state) & BM_F_DIRTY))
			continue;
		pthread_mutex_lock(&b->hdr_mu);
		dirty = (atomic_load(&b->state) & BM_F_DIRTY) != 0;
		tag = b->tag;
		rec = b->rec_lsn;
		pthread_mutex_unlock(&b->hdr_mu);
		if (dirty && (rc = fn(arg, tag.rel, tag.blk, rec)) != 0)
			return rc;
	}
	return 0;
}

/* ---- P7: dropping a relation's buffers ---- */

/*
 * Claims buf (CAS pin count 0 -> 1) if it carries a page of rel; the same
 * claim as the clock sweep, so that dropping and evicting exclude each
 * other. 1: claimed, *tag set; 0: not a buffer of rel; -1: pinned, retry.
 */
static int claim_for_drop(bm_buf *buf, wd_relid rel, bm_tag *tag)
{
	uint32_t s;
	bool mine;
	pthread_mutex_lock(&buf->hdr_mu);
	s = atomic_load(&buf->state);
	mine = (s & BM_F_TAG_VALID) && buf->tag.rel == rel;
	*tag = buf->tag;
	pthread_mutex_unlock(&buf->hdr_mu);
	if (!mine)
		return 0;
	if (BM_REFS(s) != 0 ||
	    !atomic_compare_exchange_strong(&buf->state, &s, s + BM_REF_ONE))
		return -1;
	return 1;
}

/*
 * Removes a claimed buffer from the hash and empties it, if it still
 * carries tag and we still hold its only pin with no I/O under way (I2):
 * a flush may have pinned it between our claim and these locks, and must
 * finish first. Drops our pin either way. Returns false if the caller must
 * retry (someone else holds a pin or an I/O is in progress).
 */
static bool forget_buffer(bufmgr *pool, bm_buf *buf, bm_tag tag)
{
	uint32_t hash = bm_tag_hash(tag);
	pthread_mutex_t *mu = bm_part_lock(pool, hash);
	uint32_t s, n;
	bool done = true;

	pthread_mutex_lock(mu);
	pthread_mutex_lock(&buf->hdr_mu);
	s = atomic_load(&buf->state);
	if ((s & BM_F_TAG_VALID) && buf->tag.rel == tag.rel &&
	    buf->tag.blk == tag.blk) {
		if (BM_REFS(s) != 1 || (s & BM_F_IO)) {
			done = false;
		} else {
			bm_hash_remove(pool, buf, hash);
			buf->rec_lsn = WD_INVALID_LSN;
			do /* keep the pin count, drop usage and every flag */
				n = s & BM_REF_MASK;
			while (!atomic_compare_exchange_weak(&buf->state, &s, n));
		}
	}
	pthread_mutex_unlock(&buf->hdr_mu);
	pthread_mutex_unlock(mu);
	bufmgr_unpin(pool, buf);
	return done;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* P7: forgets every buffer of rel, waiting out transient pins (bufmgr.h). */
int bufmgr_drop_rel(bufmgr *pool, wd_relid rel)
{
	for (uint32_t i = 0; i < pool->nbuf; i++) {
		bm_buf *b = &pool->bufs[i];
		uint64_t deadline = 0;
		bm_tag tag;
		int got;
		/* claim, then forget; either may find another pin: retry */
		while ((got = claim_for_drop(b, rel, &tag)) < 0 ||
		       (got > 0 && !forget_buffer(pool, b, tag))) {
			if (!deadline)
				deadline = now_ms() + 1000;
			else if (now_ms() > deadline)
				return err_set(WD_EBUSY, "bufmgr: rel %u block %u stays pinned; cannot drop it",
					      rel, tag.blk);
			sched_yield();
		}
	}
	return 0;
}
