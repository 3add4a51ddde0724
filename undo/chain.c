/*
 * chain.c - the undo log object and its pages: undo_open/close, the free
 * list (README I6, P5: undo_page_take, undo_page_give_back,
 * undo_chain_release), chains (undo_chain_init, undo_chain_for_loser),
 * pinning a page named by a pointer (undo_pin), statistics.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "undo/undo_internal.h"

/*
 * Every block of the relation goes on the free list (I6), pushed from the
 * last down, so that block 0 is taken first and a fresh log fills its file
 * in order. Room is kept for 64 more pages before the first extend.
 */
int undo_open(bufmgr *pool, wal_log_ctx *log, undo_log **out)
{
	undo_log *u;
	wd_blkno n;
	int rc;

	if (!pool || !log || !log->w || !out)
		return err_set(WD_EINVAL, "undo log: a pool and a WAL logging context are required");
	if (log->page_size != bufmgr_page_size(pool))
		return err_set(WD_EINVAL, "undo log: log page size %u, pool page size %u",
			       log->page_size, bufmgr_page_size(pool));
	if ((rc = bufmgr_rel_nblocks(pool, UNDO_REL, &n)) != 0)
		return err_wrap(rc, "undo log: relation %u", UNDO_REL);
	if (!(u = calloc(1, sizeof *u)) || !(u->free = malloc(((size_t)n + 64) * sizeof *u->free))) {
		free(u);
		return err_set(WD_ENOMEM, "undo log: out of memory for %u pages", n);
	}
	u->pool = pool;
	u->log = log;
	u->ps = log->page_size;
	u->cap = n + 64;
	u->npages = n;
	for (wd_blkno b = n; b-- > 0;)
		u->free[u->nfree++] = b;
	pthread_mutex_init(&u->mu, NULL);
	*out = u;
	return 0;
}

void undo_close(undo_log *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->mu);
	free(u->free);
	free(u);
}

void undo_chain_init(undo_chain *c, wd_xid xid)
{
	memset(c, 0, sizeof *c);
	c->xid = xid;
}

void undo_chain_for_loser(undo_chain *c, const undo_xact *x)
{
	undo_chain_init(c, x->xid);
	c->head = x->head;
}

/* Reserves room for one more page on the free list, for a page about to
 * be added to the relation (so that releasing it never allocates). */
static int reserve_page(undo_log *u)
{
	int rc = 0;
	pthread_mutex_lock(&u->mu);
	if (u->npages == u->cap) {
		uint32_t cap = u->cap < UINT32_MAX / 2 ? 2 * u->cap : UINT32_MAX;
		wd_blkno *f = cap > u->cap ? realloc(u->free, (size_t)cap * sizeof *f) : NULL;
		if (!f)
			rc = err_set(WD_ENOMEM, "undo log: out of memory for a free list of %u pages",
				     cap);
		else {
			u->free = f;
			u->cap = cap;
		}
	}
	if (rc == 0)
		u->npages++;
	pthread_mutex_unlock(&u->mu);
	return rc;
}

/* Pops the free list into *blk; false if it is empty. */
static bool pop_free(undo_log *u, wd_blkno *blk)
{
	bool got;
	pthread_mutex_lock(&u->mu);
	got = u->nfree > 0;
	if (got)
		*blk = u->free[--u->nfree];
	pthread_mutex_unlock(&u->mu);
	return got;
}

/*
 * P1 step 2 for a new page. A free page is pinned with BM_ZERO: it is about
 * to be formatted afresh (WAL_BLK_WILL_INIT), so its old bytes are never
 * read - a page torn or damaged in an earlier life costs nothing. A new
 * block comes latched from bufmgr_extend; the latch goes at once, so that
 * the caller takes the latches it needs in its own order (I9).
 */
int undo_page_take(undo_log *u, wd_blkno *blk, bm_buf **buf)
{
	int rc;
	if (pop_free(u, blk)) {
		if ((rc = bufmgr_pin(u->pool, UNDO_REL, *blk, BM_ZERO, buf)) != 0) {
			undo_page_give_back(u, *blk);
			return err_wrap(rc, "undo log: taking free block %u", *blk);
		}
		UNDO_COUNT(u, reused, 1);
		return 0;
	}
	if ((rc = reserve_page(u)) != 0)
		return rc;
	if ((rc = bufmgr_extend(u->pool, UNDO_REL, blk, buf)) != 0) {
		pthread_mutex_lock(&u->mu);
		u->npages--;
		pthread_mutex_unlock(&u->mu);
		return err_wrap(rc, "undo log: adding a page");
	}
	bufmgr_unlatch(*buf); /* nobody knows the block yet */
	UNDO_COUNT(u, allocated, 1);
	return 0;
}

void undo_page_give_back(undo_log *u, wd_blkno blk)
{
	pthread_mutex_lock(&u->mu);
	assert(u->nfree < u->cap);
	u->free[u->nfree++] = blk;
	pthread_mutex_unlock(&u->mu);
}

/*
 * P5. The chain's newest page goes on top of the free list: it is the one
 * most likely still in the pool, so the next chain starts on a cached page.
 */
void undo_chain_release(undo_log *u, undo_chain *c)
{
	pthread_mutex_lock(&u->mu);
	for (uint32_t i = 0; i < c->npages; i++) {
		assert(u->nfree < u->cap);
		u->free[u->nfree++] = c->pages[i];
	}
	pthread_mutex_unlock(&u->mu);
	free(c->pages);
	undo_chain_init(c, c->xid);
}

void undo_chain_forget(undo_chain *c)
{
	free(c->pages);
	undo_chain_init(c, c->xid);
}

int undo_pin(undo_log *u, wd_blkno blk, bm_buf **buf)
{
	wd_blkno n;
	int rc = bufmgr_rel_nblocks(u->pool, UNDO_REL, &n);
	if (rc != 0)
		return rc;
	if (blk >= n)
		return err_set(WD_ECORRUPT, "block %u beyond the end of the undo log (%u blocks)",
			       blk, n);
	return bufmgr_pin(u->pool, UNDO_REL, blk, BM_READ, buf);
}

void undo_stats_get(undo_log *u, undo_stats *out)
{
	out->records = atomic_load(&u->records);
	out->bytes = atomic_load(&u->bytes);
	out->pages_allocated = atomic_load(&u->allocated);
	out->pages_reused = atomic_load(&u->reused);
	out->clrs = atomic_load(&u->clrs);
	pthread_mutex_lock(&u->mu);
	out->pages_free = u->nfree;
	pthread_mutex_unlock(&u->mu);
}
