/*
 * rel.c - relation files: the table from wd_relid to open file, open, close,
 * sync, block counts, extension (P5), and filling a freshly installed buffer
 * by reading its page or zeroing it (P1 step 7). See README.md.
 *
 * Entry points: bufmgr_rel_open, bufmgr_rel_close, bufmgr_rel_sync,
 * bufmgr_rel_nblocks, bufmgr_extend; bm_rel_get, bm_fill, bm_sync_all,
 * bm_rels_free for the other files of bufmgr/.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "bufmgr/bufmgr_internal.h"
#include "storage/page.h"
#include "storage/trace.h"

/* ---- the relation table ---- */

/* Index of rel in pool->rels, or -1. Caller holds rels_lock. */
static long find_rel(bufmgr *pool, wd_relid rel)
{
	for (size_t i = 0; i < pool->nrels; i++)
		if (pool->rels[i]->id == rel)
			return (long)i;
	return -1;
}

/*
 * The open relation rel, or NULL. The pointer stays valid while the caller
 * holds a pin on a buffer tagged with rel (bufmgr_rel_close drops every such
 * buffer before it frees the relation) or while the caller is the one
 * closing it. A linear scan: pools serve tens of relations, and the scan is
 * only on a miss or a write, beside a pread or pwrite.
 */
bm_rel *bm_rel_get(bufmgr *pool, wd_relid rel)
{
	bm_rel *r = NULL;
	long i;
	pthread_rwlock_rdlock(&pool->rels_lock);
	if ((i = find_rel(pool, rel)) >= 0)
		r = pool->rels[i];
	pthread_rwlock_unlock(&pool->rels_lock);
	return r;
}

/* Appends r to the table unless its id is already there (WD_EEXIST). */
static int add_rel(bufmgr *pool, bm_rel *r)
{
	int rc = 0;
	pthread_rwlock_wrlock(&pool->rels_lock);
	if (find_rel(pool, r->id) >= 0) {
		rc = err_set(WD_EEXIST, "bufmgr: relation %u is already open", r->id);
		goto out;
	}
	if (pool->nrels == pool->rels_cap) {
		size_t cap = pool->rels_cap ? 2 * pool->rels_cap : 8;
		bm_rel **n = realloc(pool->rels, cap * sizeof *n);
		if (!n) {
			rc = err_set(WD_ENOMEM, "bufmgr: out of memory");
			goto out;
		}
		pool->rels = n;
		pool->rels_cap = cap;
	}
	pool->rels[pool->nrels++] = r;
out:
	pthread_rwlock_unlock(&pool->rels_lock);
	return rc;
}

/* Closes r's file and frees it. Returns storage_close's result. */
static int free_rel(bm_rel *r)
{
	int rc = storage_close(r->file);
	pthread_mutex_destroy(&r->ext_mu);
	pthread_mutex_destroy(&r->sync_mu);
	free(r);
	return rc;
}

/* Frees every relation without writing or syncing (bufmgr_destroy). */
void bm_rels_free(bufmgr *pool)
{
	for (size_t i = 0; i < pool->nrels; i++)
		(void)free_rel(pool->rels[i]);
	free(pool->rels);
	pool->rels = NULL;
	pool->nrels = pool->rels_cap = 0;
}

/*
 * Opens the file and registers it (bufmgr.h). The block count comes from
 * the file size; pages past the last written one that extension reserved
 * read as new pages (README "Relation size").
 */
int bufmgr_rel_open(bufmgr *pool, wd_relid rel, const char *path,
		    unsigned flags)
{
	bm_rel *r = calloc(1, sizeof *r);
	uint64_t size;
	int rc;

	if (!r)
		return err_set(WD_ENOMEM, "bufmgr: out of memory");
	pthread_mutex_init(&r->ext_mu, NULL);
	pthread_mutex_init(&r->sync_mu, NULL);
	r->id = rel;
	rc = storage_open(path, (flags & BM_REL_CREATE) ? ST_CREATE : 0, &r->file);
	if (rc != 0)
		goto out;
	if ((rc = storage_size(r->file, &size)) != 0)
		goto out;
	if (size / pool->page_size >= WD_INVALID_BLKNO) {
		rc = err_set(WD_ETOOBIG, "%s: %llu bytes is too large", path,
			    (unsigned long long)size);
		goto out;
	}
	r->alloc_blocks = (uint32_t)(size / pool->page_size);
	atomic_init(&r->nblocks, r->alloc_blocks);
	if ((rc = add_rel(pool, r)) == 0)
		r = NULL;
out:
	if (r) {
		if (r->file)
			(void)storage_close(r->file);
		pthread_mutex_destroy(&r->ext_mu);
		pthread_mutex_destroy(&r->sync_mu);
		free(r);
	}
	return rc;
}

/*
 * fdatasync of r if written since its last sync. The flag is cleared before
 * the sync (a write landing during the sync sets it again) and under
 * sync_mu, so a second caller waits for the sync in flight instead of
 * returning early. A failed sync is sticky (never retried).
 */
static int rel_sync(bufmgr *pool, bm_rel *r)
{
	int rc = 0;
	pthread_mutex_lock(&r->sync_mu);
	if (atomic_load(&r->sync_failed)) {
		rc = err_set(WD_EPANIC, "%s: an earlier fdatasync failed; reopen to recover",
			    storage_path(r->file));
		goto out;
	}
	if (!atomic_exchange(&r->unsynced, false))
		goto out;
	bm_count(pool, BMC_SYNCS);
	if ((rc = storage_sync(r->file)) != 0)
		atomic_store(&r->sync_failed, true);
out:
	pthread_mutex_unlock(&r->sync_mu);
	return rc;
}

int bufmgr_rel_sync(bufmgr *pool, wd_relid rel)
{
	bm_rel *r = bm_rel_get(pool, rel);
	if (!r)
		return err_set(WD_NOTFOUND, "bufmgr: relation %u is not open", rel);
	return rel_sync(pool, r);
}

/* P6 step 2: syncs every relation written since its last sync. The table
 * lock is held in read mode (no lookups nest inside a sync). */
int bm_sync_all(bufmgr *pool)
{
	int rc = 0;
	pthread_rwlock_rdlock(&pool->rels_lock);
	for (size_t i = 0; i < pool->nrels && rc == 0; i++)
		rc = rel_sync(pool, pool->rels[i]);
	pthread_rwlock_unlock(&pool->rels_lock);
	return rc;
}

int bufmgr_rel_nblocks(bufmgr *pool, wd_relid rel, wd_blkno *nblocks)
{
	bm_rel *r = bm_rel_get(pool, rel);
	if (!r)
		return err_set(WD_NOTFOUND, "bufmgr: relation %u is not open", rel);
	*nblocks = atomic_load(&r->nblocks);
	return 0;
}

/*
 * Writes rel's dirty pages, syncs it, drops its buffers and closes it
 * (bufmgr.h). On a write, sync or drop error the relation stays open.
 */
int bufmgr_rel_close(bufmgr *pool, wd_relid rel)
{
	bm_rel *r = bm_rel_get(pool, rel);
	long i;
	int rc;

	if (!r)
		return err_set(WD_NOTFOUND, "bufmgr: relation %u is not open", rel);
	if ((rc = bufmgr_flush_rel(pool, rel)) != 0)
		return rc;
	if ((rc = rel_sync(pool, r)) != 0)
		return rc;
	if ((rc = bufmgr_drop_rel(pool, rel)) != 0)
		return rc;
	pthread_rwlock_wrlock(&pool->rels_lock);
	i = find_rel(pool, rel);
	pool->rels[i] = pool->rels[--pool->nrels];
	pthread_rwlock_unlock(&pool->rels_lock);
	return free_rel(r);
}

/* ---- P5: extension ---- */

/*
 * P5 steps 1-3: reserves the next block number of r, growing the file by a
 * chunk of pages when the reserved space is used up. Under ext_mu; the block
 * count is a CAS because BM_ZERO pins may raise it concurrently.
 */
static int extend_block(bufmgr *pool, bm_rel *r, wd_blkno *blk)
{
	uint32_t n;
	int rc = 0;

	pthread_mutex_lock(&r->ext_mu);
	do {
		n = atomic_load(&r->nblocks);
		if (n >= WD_INVALID_BLKNO - 1) {
			rc = err_set(WD_ETOOBIG, "%s: relation reached its block limit",
				    storage_path(r->file));
			goto out;
		}
		if (n >= r->alloc_blocks) { /* step 2: reserve a chunk */
			uint32_t chunk = pool->chunk_pages;
			if (chunk > WD_INVALID_BLKNO - 1 - n)
				chunk = WD_INVALID_BLKNO - 1 - n;
			rc = storage_allocate(r->file, (uint64_t)n * pool->page_size,
					      (uint64_t)chunk * pool->page_size);
			if (rc != 0)
				goto out;
			r->alloc_blocks = n + chunk;
			atomic_store(&r->unsynced, true);
		}
	} while (!atomic_compare_exchange_weak(&r->nblocks, &n, n + 1)); /* step 3 */
	*blk = n;
out:
	pthread_mutex_unlock(&r->ext_mu);
	return rc;
}

/* P5: adds a block and returns it pinned, zeroed and exclusively latched. */
int bufmgr_extend(bufmgr *pool, wd_relid rel, wd_blkno *blk, bm_buf **out)
{
	bm_rel *r = bm_rel_get(pool, rel);
	int rc;

	*out = NULL;
	if (!r) {
		rc = err_set(WD_NOTFOUND, "bufmgr: relation %u is not open", rel);
		bm_count(pool, BMC_FAILED_PINS);
		return rc;
	}
	if ((rc = extend_block(pool, r, blk)) != 0) {
		bm_count(pool, BMC_FAILED_PINS);
		return rc;
	}
	bm_count(pool, BMC_EXTENDS);
	TRACE(TR_BUFMGR, "extend rel=%u blk=%u", rel, *blk);
	/* step 4: a buffer for it, never read (counts as hit or miss) */
	if ((rc = bufmgr_pin(pool, rel, *blk, BM_ZERO, out)) != 0)
		return rc;
	bufmgr_latch(*out, BM_EXCL); /* step 5 */
	return 0;
}

/* ---- P1 step 7: filling a buffer ---- */

/* Reads buf's page from its file and checks it. A short read inside the
 * relation (a hole left by a BM_ZERO page not yet written) reads as zeroes. */
static int read_page(bufmgr *pool, bm_buf *buf)
{
	bm_rel *r = bm_rel_get(pool, buf->tag.rel);
	size_t got = 0;
	int rc;

	if (!r)
		return err_set(WD_NOTFOUND, "bufmgr: relation %u is not open", buf->tag.rel);
	bm_count(pool, BMC_READS);
	TRACE(TR_BUFMGR, "read rel=%u blk=%u", buf->tag.rel, buf->tag.blk);
	rc = storage_read(r->file, buf->page, pool->page_size,
			  (uint64_t)buf->tag.blk * pool->page_size, &got);
	if (rc == 0 && got < pool->page_size)
		memset(buf->page + got, 0, pool->page_size - got);
	if (rc == 0)
		rc = page_verify(buf->page, pool->page_size, buf->tag.blk,
				 storage_path(r->file));
	if (rc == PAGE_VERIFY_NEW)
		rc = 0;
	if (rc != 0)
		bm_count(pool, BMC_READ_ERRORS);
	return rc;
}

/*
 * A failed read leaves no valid buffer behind (I7): removes the tag from
 * the hash, clears the flags, wakes waiters (who then retry and meet the
 * error themselves) and drops our pin.
 */
static void fill_failed(bufmgr *pool, bm_buf *buf)
{
	uint32_t hash = bm_tag_hash(buf->tag);
	pthread_mutex_t *mu = bm_part_lock(pool, hash);

	pthread_mutex_lock(mu);
	pthread_mutex_lock(&buf->hdr_mu);
	bm_hash_remove(pool, buf, hash);
	bm_set_flags(buf, 0, BM_F_TAG_VALID | BM_F_IO | BM_F_VALID | BM_USAGE_MASK);
	pthread_cond_broadcast(&buf->io_cv);
	pthread_mutex_unlock(&buf->hdr_mu);
	pthread_mutex_unlock(mu);
	bufmgr_unpin(pool, buf);
}

/*
 * P1 step 7: fills a buffer just installed (pinned by us, TAG_VALID + IO)
 * by reading its page (BM_READ) or zeroing it (BM_ZERO), then makes it
 * VALID and wakes the threads waiting for it. On error the buffer is
 * invalidated and unpinned.
 */
int bm_fill(bufmgr *pool, bm_buf *buf, int mode)
{
	int rc = 0;
	if (mode == BM_ZERO) {
		memset(buf->page, 0, pool->page_size);
		bm_count(pool, BMC_ZERO_FILLS);
	} else if ((rc = read_page(pool, buf)) != 0) {
		fill_failed(pool, buf);
		return rc;
	}
	pthread_mutex_lock(&buf->hdr_mu);
	bm_set_flags(buf, BM_F_VALID, BM_F_IO);
	pthread_cond_broadcast(&buf->io_cv);
	pthread_mutex_unlock(&buf->hdr_mu);
	return 0;
}
