/*
 * fsm.c - the free space map: one byte per heap page saying how much room
 * it has (README "FSM"), kept in memory for searching and written to a
 * relation of its own at a clean close (heap_fsm_flush) so that opening a
 * heap does not read the heap. Not WAL-logged: a hint, checked on the page
 * before it is trusted, and rebuilt from the heap after a crash.
 * Entry points: heap_fsm_init/free/load/find/set/flush, heap_fsm_check.
 */
#include <stdlib.h>
#include <string.h>

#include "heap/heap_internal.h"
#include "wal/wal.h"

int heap_fsm_init(heap *h)
{
	if (pthread_mutex_init(&h->fsm_mu, NULL) != 0)
		return err_set(WD_ENOMEM, "heap rel %u: cannot create the FSM lock", h->rel);
	return 0;
}

void heap_fsm_free(heap *h)
{
	pthread_mutex_destroy(&h->fsm_mu);
	free(h->fsm);
	free(h->fsm_max);
	free(h->fsm_dirty);
}

/* Grows the map to hold block blk (zeroed = unknown). Caller holds fsm_mu.
 * WD_ENOMEM. */
static int fsm_grow_locked(heap *h, wd_blkno blk)
{
	size_t e = h->fsm_per_page, cap = h->fsm_cap ? h->fsm_cap : e, old = h->fsm_cap;
	size_t g, og = (old + FSM_GROUP - 1) / FSM_GROUP;
	uint8_t *m, *mx, *wh;
	while (cap <= blk)
		cap *= 2;
	if (cap == old)
		return 0;
	g = (cap + FSM_GROUP - 1) / FSM_GROUP;
	if (!(m = realloc(h->fsm, cap)))
		return err_set(WD_ENOMEM, "heap rel %u: FSM of %zu entries", h->rel, cap);
	h->fsm = m;
	if (!(mx = realloc(h->fsm_max, g)))
		return err_set(WD_ENOMEM, "heap rel %u: FSM of %zu entries", h->rel, cap);
	h->fsm_max = mx;
	if (!(wh = realloc(h->fsm_dirty, cap / e)))
		return err_set(WD_ENOMEM, "heap rel %u: FSM of %zu entries", h->rel, cap);
	h->fsm_dirty = wh;
	memset(h->fsm + old, 0, cap - old);
	/* a group split by the old end keeps its max: its new entries are 0 */
	memset(h->fsm_max + og, 0, g - og);
	memset(h->fsm_dirty + old / e, 1, cap / e - old / e); /* not written yet */
	h->fsm_cap = cap;
	return 0;
}

/* The smallest category whose pages are sure to hold a tuple_len-byte
 * tuple: category c promises at least c * unit bytes. */
unsigned heap_fsm_cat_for(const heap *h, uint32_t tuple_len)
{
	return (tuple_len + h->unit - 1) / h->unit;
}

/*
 * Records that blk's category is cat, in memory: the FSM page holding the
 * entry is marked for heap_fsm_flush if it changed. Takes fsm_mu, which is
 * a leaf lock: callers may hold a page latch.
 */
void heap_fsm_set(heap *h, wd_blkno blk, unsigned cat)
{
	uint8_t v = (uint8_t)(cat + 1);
	pthread_mutex_lock(&h->fsm_mu);
	if (blk >= h->fsm_cap && fsm_grow_locked(h, blk) != 0) {
		HEAP_COUNT(h, fsm_errors); /* a hint lost, not an error */
		goto out;
	}
	if (h->fsm[blk] != v)
		h->fsm_dirty[blk / h->fsm_per_page] = 1;
	h->fsm[blk] = v;
	if (blk >= h->fsm_n)
		h->fsm_n = blk + 1;
	if (h->fsm_max[blk / FSM_GROUP] < v)
		h->fsm_max[blk / FSM_GROUP] = v;
out:
	pthread_mutex_unlock(&h->fsm_mu);
}

/*
 * Scans entries [b, end) of group g = b / FSM_GROUP (end at most the
 * group's end) for one >= want other than skip. If the scan covered the
 * whole group and found nothing, lowers its max to the largest entry seen.
 * Caller holds fsm_mu.
 */
static wd_blkno fsm_scan_group(heap *h, wd_blkno b, wd_blkno end, uint8_t want,
			       wd_blkno skip)
{
	wd_blkno c = b / FSM_GROUP;
	bool whole = b == c * FSM_GROUP;
	uint8_t m = 0;
	for (wd_blkno x = b; x < end; x++) {
		if (h->fsm[x] >= want && x != skip)
			return x;
		if (h->fsm[x] > m)
			m = h->fsm[x];
	}
	if (whole)
		h->fsm_max[c] = m;
	return WD_INVALID_BLKNO;
}

/*
 * A block whose entry is at least min_cat (not skip), searching from the
 * hint onwards and wrapping around, skipping groups whose max is too
 * small; WD_INVALID_BLKNO if none. The found block becomes the hint
 * (one per kind of request), so inserts fill one page before moving on.
 */
wd_blkno heap_fsm_find(heap *h, unsigned min_cat, wd_blkno skip)
{
	uint8_t want = (uint8_t)(min_cat + 1);
	wd_blkno found = WD_INVALID_BLKNO, n, b, done = 0;
	wd_blkno *hint = &h->fsm_hint[min_cat == FSM_CAT_EMPTY];
	pthread_mutex_lock(&h->fsm_mu);
	n = h->fsm_n;
	b = *hint < n ? *hint : 0;
	while (done < n && found == WD_INVALID_BLKNO) {
		wd_blkno c = b / FSM_GROUP;
		wd_blkno end = (c + 1) * FSM_GROUP < n ? (c + 1) * FSM_GROUP : n;
		if (h->fsm_max[c] >= want)
			found = fsm_scan_group(h, b, end, want, skip);
		done += end - b;
		b = end == n ? 0 : end;
	}
	if (found != WD_INVALID_BLKNO)
		*hint = found;
	pthread_mutex_unlock(&h->fsm_mu);
	return found;
}

/* Pins FSM page fb: beyond the file's end, or torn (WD_ECORRUPT), it is
 * taken as zeroes and rewritten from the map in memory. The file's block
 * count is asked only past fsm_nblocks_known (it only grows). */
static int fsm_pin(heap *h, wd_blkno fb, bm_buf **buf)
{
	wd_blkno nb = atomic_load_explicit(&h->fsm_nblocks_known, memory_order_relaxed);
	int rc;
	if (fb >= nb) {
		if ((rc = bufmgr_rel_nblocks(h->pool, h->fsm_rel, &nb)) != 0)
			return rc;
		heap_bound_raise(&h->fsm_nblocks_known, nb);
	}
	rc = bufmgr_pin(h->pool, h->fsm_rel, fb, fb < nb ? BM_READ : BM_ZERO, buf);
	if (rc == WD_ECORRUPT)
		rc = bufmgr_pin(h->pool, h->fsm_rel, fb, BM_ZERO, buf);
	return rc;
}

/*
 * Writes FSM page fb whole from the map (FSM-I2): the entries are copied
 * under the FSM page's exclusive latch and fsm_mu, and the page's mark
 * cleared there, so an entry changed meanwhile marks the page again. The
 * page is not logged: it carries pageLSN 0 and is marked dirty with the
 * current WAL position as its recLSN. A page that cannot be pinned stays
 * marked. Precondition: no latch held, fsm_mu not held
 * (taken inside, as a leaf, under the FSM page latch).
 */
static int fsm_write_page(heap *h, wd_blkno fb)
{
	size_t first = (size_t)fb * h->fsm_per_page;
	bm_buf *buf;
	uint8_t *p;
	int rc = fsm_pin(h, fb, &buf);
	if (rc != 0)
		return rc;
	bufmgr_latch(buf, BM_EXCL);
	p = bufmgr_page(buf);
	if (page_kind(p) != PAGE_KIND_FSM)
		page_init(p, h->ps, PAGE_KIND_FSM, 0);
	pthread_mutex_lock(&h->fsm_mu);
	memcpy(p + PAGE_HEADER_SIZE, h->fsm + first, h->fsm_per_page);
	h->fsm_dirty[fb] = 0;
	pthread_mutex_unlock(&h->fsm_mu);
	bufmgr_mark_dirty(buf, wal_insert_pos(h->log->w));
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
	return 0;
}

/* Whether FSM page fb is marked for heap_fsm_flush (a page past the map
 * has no entries to compare and counts as marked). Takes fsm_mu. */
static bool fsm_page_marked(heap *h, wd_blkno fb)
{
	bool marked;
	pthread_mutex_lock(&h->fsm_mu);
	marked = (size_t)fb * h->fsm_per_page >= h->fsm_cap || h->fsm_dirty[fb];
	pthread_mutex_unlock(&h->fsm_mu);
	return marked;
}

/*
 * FSM-I2: writes every FSM page marked dirty into the pool, whole; the
 * caller's close of the FSM relation (or a checkpoint) takes them to the
 * file. The first failure is returned (counted in fsm_errors); its page
 * stays marked. No FSM relation: nothing to do.
 */
int heap_fsm_flush(heap *h)
{
	size_t npages;
	int rc = 0;
	if (!h->fsm_rel)
		return 0;
	pthread_mutex_lock(&h->fsm_mu);
	npages = (h->fsm_n + h->fsm_per_page - 1) / h->fsm_per_page;
	pthread_mutex_unlock(&h->fsm_mu);
	for (size_t fb = 0; fb < npages; fb++) {
		int r;
		if (fsm_page_marked(h, (wd_blkno)fb) && (r = fsm_write_page(h, (wd_blkno)fb)) != 0) {
			HEAP_COUNT(h, fsm_errors);
			if (rc == 0)
				rc = r;
		}
	}
	return rc;
}

/* Reads heap page blk under a share latch and returns its category. */
static int read_category(heap *h, wd_blkno blk, unsigned *cat)
{
	bm_buf *buf;
	int rc = bufmgr_pin(h->pool, h->rel, blk, BM_READ, &buf);
	if (rc != 0)
		return rc;
	bufmgr_latch(buf, BM_SHARE);
	*cat = heap_page_category(h, bufmgr_page(buf));
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
	return 0;
}

/* Copies the entries of the FSM file for heap blocks [0, nb) into the map;
 * a torn FSM page leaves its entries unknown. *known: entries loaded that
 * were not unknown. */
static int load_file(heap *h, wd_blkno nb, uint64_t *known)
{
	wd_blkno fnb, e = h->fsm_per_page;
	int rc = bufmgr_rel_nblocks(h->pool, h->fsm_rel, &fnb);
	for (wd_blkno fb = 0; rc == 0 && fb < fnb && (uint64_t)fb * e < nb; fb++) {
		bm_buf *buf;
		wd_blkno n = nb - fb * e < e ? nb - fb * e : e;
		if ((rc = bufmgr_pin(h->pool, h->fsm_rel, fb, BM_READ, &buf)) == WD_ECORRUPT) {
			rc = 0; /* torn: rebuilt from the heap below */
			continue;
		}
		if (rc != 0)
			break;
		bufmgr_latch(buf, BM_SHARE);
		if (page_kind(bufmgr_page(buf)) == PAGE_KIND_FSM) {
			const uint8_t *src = bufmgr_page(buf) + PAGE_HEADER_SIZE;
			memcpy(h->fsm + (size_t)fb * e, src, n);
			for (wd_blkno i = 0; i < n; i++)
				*known += h->fsm[(size_t)fb * e + i] != FSM_UNKNOWN;
			/* the map's entries past nb are 0: a page whose bytes
			 * past them are 0 too needs no write at the close */
			h->fsm_dirty[fb] = memcmp(h->fsm + (size_t)fb * e, src, e) != 0;
		}
		bufmgr_unlatch(buf);
		bufmgr_unpin(h->pool, buf);
	}
	return rc;
}

/* Sets every unknown entry of [0, nb) by reading its page (which marks
 * its FSM page for the next heap_fsm_flush). */
static int fill_unknown(heap *h, wd_blkno nb)
{
	unsigned cat;
	int rc = 0;
	for (wd_blkno blk = 0; blk < nb && rc == 0; blk++) {
		if (h->fsm[blk] != FSM_UNKNOWN)
			continue;
		if ((rc = read_category(h, blk, &cat)) == 0) {
			heap_fsm_set(h, blk, cat);
			HEAP_COUNT(h, fsm_rebuilt);
		}
	}
	return rc;
}

/*
 * At open: sizes the map to the relation, loads the FSM file (only if
 * trust_file: heap_opts.fsm_trust), rebuilds the entries it lacks (blocks
 * added after it was written, torn FSM pages, no FSM file, or every entry
 * when the file is not trusted) by reading those heap pages (their FSM
 * pages are written at the next heap_fsm_flush), and sets the max hints.
 * Afterwards every entry equals its page's category (FSM-I1), provided a
 * trusted file was exact; fsm_exact records whether any entry came from
 * the file.
 */
int heap_fsm_load(heap *h, bool trust_file)
{
	uint64_t known = 0;
	wd_blkno nb;
	int rc = bufmgr_rel_nblocks(h->pool, h->rel, &nb);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&h->fsm_mu);
	rc = fsm_grow_locked(h, nb);
	h->fsm_n = nb;
	pthread_mutex_unlock(&h->fsm_mu);
	if (rc == 0 && h->fsm_rel && trust_file)
		rc = load_file(h, nb, &known);
	h->fsm_exact = known == 0;
	for (wd_blkno b = 0; rc == 0 && b < nb; b++)
		if (h->fsm_max[b / FSM_GROUP] < h->fsm[b])
			h->fsm_max[b / FSM_GROUP] = h->fsm[b];
	if (rc == 0)
		rc = fill_unknown(h, nb);
	return rc;
}

/* Counts how the entry of blk compares with its page's true category
 * (FSM-I1: equal, once quiet). */
static int check_entry(heap *h, wd_blkno blk, heap_fsm_report *r)
{
	unsigned cat;
	uint8_t v;
	int rc = read_category(h, blk, &cat);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&h->fsm_mu);
	v = blk < h->fsm_n ? h->fsm[blk] : FSM_UNKNOWN;
	pthread_mutex_unlock(&h->fsm_mu);
	r->pages++;
	if (v == FSM_UNKNOWN) {
		r->unknown++;
	} else if (v - 1u > cat) {
		if (r->over++ == 0 && r->disk_diff == 0)
			r->first_bad = blk;
	} else if (v - 1u < cat) {
		if (r->under++ == 0 && h->fsm_exact && r->over == 0 && r->disk_diff == 0)
			r->first_bad = blk;
	}
	return 0;
}

/* Compares FSM page fb of the file with the map in memory for [0, nb),
 * unless the page is marked for heap_fsm_flush (FSM-I2). */
static int check_file_page(heap *h, wd_blkno fb, wd_blkno nb, heap_fsm_report *r)
{
	wd_blkno e = h->fsm_per_page, n = nb - fb * e < e ? nb - fb * e : e;
	bm_buf *buf;
	int rc;
	if (fsm_page_marked(h, fb))
		return 0;
	if ((rc = bufmgr_pin(h->pool, h->fsm_rel, fb, BM_READ, &buf)) != 0)
		return rc;
	bufmgr_latch(buf, BM_SHARE);
	pthread_mutex_lock(&h->fsm_mu);
	for (wd_blkno i = 0; i < n; i++)
		if (bufmgr_page(buf)[PAGE_HEADER_SIZE + i] != h->fsm[fb * e + i] &&
		    r->disk_diff++ == 0 && r->over == 0 && !(h->fsm_exact && r->under))
			r->first_bad = fb * e + i;
	pthread_mutex_unlock(&h->fsm_mu);
	bufmgr_unlatch(buf);
	bufmgr_unpin(h->pool, buf);
	return 0;
}

int heap_fsm_check(heap *h, heap_fsm_report *r)
{
	wd_blkno nb;
	int rc;
	memset(r, 0, sizeof *r);
	r->first_bad = WD_INVALID_BLKNO;
	if ((rc = bufmgr_rel_nblocks(h->pool, h->rel, &nb)) != 0)
		return rc;
	for (wd_blkno blk = 0; blk < nb && rc == 0; blk++)
		rc = check_entry(h, blk, r);
	for (wd_blkno fb = 0; h->fsm_rel && rc == 0 && (uint64_t)fb * h->fsm_per_page < nb; fb++)
		rc = check_file_page(h, fb, nb, r);
	if (rc != 0)
		return rc;
	if (r->over || (r->under && h->fsm_exact) || r->disk_diff)
		return err_set(WD_ECORRUPT,
			       "heap rel %u: free space map wrong at block %u (%llu entries "
			       "promise more room than the page has, %llu less, %llu FSM file "
			       "bytes differ)", h->rel, r->first_bad, (unsigned long long)r->over,
			       (unsigned long long)r->under, (unsigned long long)r->disk_diff);
	return 0;
}
