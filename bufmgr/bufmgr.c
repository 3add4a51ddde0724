/*
 * bufmgr.c - the pool itself: create/destroy, the partitioned hash table
 * from tag to buffer, pin and unpin (protocol P1), content latches, dirty
 * marking and statistics. Eviction and write-out are in evict.c, relation
 * files and read-in in rel.c. See README.md for the invariants I1..I9.
 *
 * Entry points: bufmgr_opts_default, bufmgr_create, bufmgr_destroy,
 * bufmgr_pin, bufmgr_unpin, bufmgr_pin_again, bufmgr_page, bufmgr_latch,
 * bufmgr_unlatch, bufmgr_mark_dirty, bufmgr_stats, and small accessors.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bufmgr/bufmgr_internal.h"
#include "storage/page.h"
#include "storage/trace.h"

/* ---- statistics stripes ---- */

/*
 * Each thread counts into its own stripe (threads beyond BM_NSTRIPES
 * share), so two threads pinning pages never bounce one counter cache line.
 * initial-exec keeps the thread-local access a single instruction even in
 * the -fPIC library.
 */
static _Atomic unsigned next_stripe;
static _Thread_local unsigned my_stripe __attribute__((tls_model("initial-exec")));

static inline bm_stripe *stripe(bufmgr *pool)
{
	unsigned s = my_stripe;
	if (__builtin_expect(s == 0, 0)) {
		s = atomic_fetch_add(&next_stripe, 1) % BM_NSTRIPES + 1;
		my_stripe = s;
	}
	return &pool->stats[s - 1];
}

static inline void count(bufmgr *pool, enum bm_counter c)
{
	atomic_fetch_add_explicit(&stripe(pool)->c[c], 1, memory_order_relaxed);
}

/* Adds one to counter c of the calling thread's stripe. */
void bm_count(bufmgr *pool, enum bm_counter c)
{
	count(pool, c);
}

/*
 * Sums the stripes and takes a snapshot of the buffers. Exact (the
 * equations of README "Statistics" hold) when no call is in flight.
 */
void bufmgr_stats(bufmgr *pool, bm_stats *out)
{
	uint64_t sum[BMC__COUNT] = {0};
	for (unsigned i = 0; i < BM_NSTRIPES; i++)
		for (unsigned c = 0; c < BMC__COUNT; c++)
			sum[c] += atomic_load_explicit(&pool->stats[i].c[c],
						       memory_order_relaxed);
	memset(out, 0, sizeof *out);
	out->hits = sum[BMC_HITS];
	out->misses = sum[BMC_MISSES];
	out->failed_pins = sum[BMC_FAILED_PINS];
	out->reads = sum[BMC_READS];
	out->read_errors = sum[BMC_READ_ERRORS];
	out->zero_fills = sum[BMC_ZERO_FILLS];
	out->evictions = sum[BMC_EVICTIONS];
	out->free_used = sum[BMC_FREE_USED];
	out->writes = sum[BMC_WRITES];
	out->write_errors = sum[BMC_WRITE_ERRORS];
	out->evict_writes = sum[BMC_EVICT_WRITES];
	out->flush_writes = sum[BMC_FLUSH_WRITES];
	out->wal_flushes = sum[BMC_WAL_FLUSHES];
	out->wal_errors = sum[BMC_WAL_ERRORS];
	out->extends = sum[BMC_EXTENDS];
	out->syncs = sum[BMC_SYNCS];
	out->kept = atomic_load(&pool->kept);
	out->huge_bytes = pool->huge_bytes;
	for (uint32_t i = 0; i < pool->nbuf; i++) {
		uint32_t s = atomic_load(&pool->bufs[i].state);
		out->pinned += BM_REFS(s);
		out->dirty += (s & BM_F_DIRTY) != 0;
		out->valid += (s & BM_F_VALID) != 0;
	}
}

/* ---- create / destroy ---- */

void bufmgr_opts_default(bufmgr_opts *o)
{
	o->pool_bytes = 64ull << 20;
	o->page_size = PAGE_SIZE_DEFAULT;
	o->extend_chunk_pages = 8;
	o->huge_pages = true;
}

/* Checks o and computes the buffer count. WD_EINVAL names the bad field. */
static int check_opts(const bufmgr_opts *o, uint32_t *nbuf)
{
	uint64_t n;
	if (!page_size_valid(o->page_size))
		return err_set(WD_EINVAL, "bufmgr: page size %u is not a power of two in [%u, %u]",
			      o->page_size, PAGE_SIZE_MIN, PAGE_SIZE_MAX);
	n = o->pool_bytes / o->page_size;
	if (n < BM_MIN_BUFFERS || n > (1u << 30))
		return err_set(WD_EINVAL, "bufmgr: pool of %llu bytes holds %llu pages of %u bytes; need %u to 2^30",
			      (unsigned long long)o->pool_bytes,
			      (unsigned long long)n, o->page_size, BM_MIN_BUFFERS);
	if (o->extend_chunk_pages < 1 || o->extend_chunk_pages > 65536)
		return err_set(WD_EINVAL, "bufmgr: extend chunk of %u pages not in [1, 65536]",
			      o->extend_chunk_pages);
	*nbuf = (uint32_t)n;
	return 0;
}

/* Initialises descriptor i: empty, unpinned, its frame at page i. */
static void init_buf(bufmgr *pool, uint32_t i)
{
	bm_buf *b = &pool->bufs[i];
	pthread_rwlockattr_t ra;

	b->id = i;
	b->hash_next = BM_NONE;
	b->page = pool->frames + (size_t)i * pool->page_size;
	atomic_init(&b->state, 0);
	pthread_mutex_init(&b->hdr_mu, NULL);
	pthread_cond_init(&b->io_cv, NULL);
	pthread_rwlockattr_init(&ra);
	/* glibc's default lets a stream of readers starve a writer */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&b->latch, &ra);
	pthread_rwlockattr_destroy(&ra);
}

/*
 * len bytes for the frames or the descriptors, page aligned. With huge and
 * at least one huge page's worth, 2 MiB aligned and advised for transparent
 * huge pages before anything touches them (README "Memory"); the bytes the
 * kernel took the advice for are added to pool->huge_bytes. NULL if out of
 * memory. Freed with free().
 */
static void *alloc_big(bufmgr *pool, size_t len, bool huge)
{
	void *p = NULL;
	huge = huge && len >= BM_HUGE_PAGE;
	if (posix_memalign(&p, huge ? BM_HUGE_PAGE : 4096, len) != 0)
		return NULL;
	if (huge && madvise(p, len, MADV_HUGEPAGE) == 0)
		pool->huge_bytes += len;
	return p;
}

/* Allocates the frames, descriptors (zeroed) and hash buckets of a pool
 * with nbuf buffers. WD_ENOMEM. */
static int alloc_pool(bufmgr *pool, uint32_t nbuf, bool huge)
{
	size_t dlen = (size_t)nbuf * sizeof *pool->bufs;
	pool->nbuckets = BM_NPARTS;
	while (pool->nbuckets < 2 * nbuf)
		pool->nbuckets *= 2;
	if (!(pool->frames = alloc_big(pool, (size_t)nbuf * pool->page_size, huge)))
		return err_set(WD_ENOMEM, "bufmgr: cannot allocate %u pages of %u bytes",
			      nbuf, pool->page_size);
	pool->bufs = alloc_big(pool, dlen, huge);
	pool->buckets = malloc(pool->nbuckets * sizeof *pool->buckets);
	if (!pool->bufs || !pool->buckets)
		return err_set(WD_ENOMEM, "bufmgr: cannot allocate %u descriptors", nbuf);
	memset(pool->bufs, 0, dlen);
	for (uint32_t i = 0; i < pool->nbuckets; i++)
		pool->buckets[i] = BM_NONE;
	return 0;
}

/*
 * Creates a pool (see bufmgr.h). Every buffer starts empty, unpinned and
 * out of the hash table, so the clock sweep hands them out first.
 */
int bufmgr_create(const bufmgr_opts *o, bufmgr **out)
{
	bufmgr_opts def;
	bufmgr *pool = NULL;
	uint32_t nbuf = 0;
	int rc;

	*out = NULL;
	if (!o) {
		bufmgr_opts_default(&def);
		o = &def;
	}
	if ((rc = check_opts(o, &nbuf)) != 0)
		goto out;
	pool = aligned_alloc(64, (sizeof *pool + 63) & ~(size_t)63);
	if (!pool) {
		rc = err_set(WD_ENOMEM, "bufmgr: out of memory");
		goto out;
	}
	memset(pool, 0, sizeof *pool);
	pool->page_size = o->page_size;
	pool->chunk_pages = o->extend_chunk_pages;
	pool->nbuf = nbuf;
	pool->keep_max = nbuf / BM_KEEP_DIV;
	pthread_rwlock_init(&pool->rels_lock, NULL);
	for (unsigned i = 0; i < BM_NPARTS; i++)
		pthread_mutex_init(&pool->parts[i].mu, NULL);
	if ((rc = alloc_pool(pool, nbuf, o->huge_pages)) != 0)
		goto out;
	for (uint32_t i = 0; i < nbuf; i++)
		init_buf(pool, i);
	*out = pool;
	pool = NULL;
out:
	if (pool) {
		free(pool->frames);
		free(pool->bufs);
		free(pool->buckets);
		free(pool);
	}
	return rc;
}

/* Frees the pool; see bufmgr.h (dirty pages are dropped, as in a crash). */
void bufmgr_destroy(bufmgr *pool)
{
	if (!pool)
		return;
	bm_rels_free(pool);
	for (uint32_t i = 0; i < pool->nbuf; i++) {
		bm_buf *b = &pool->bufs[i];
		assert(BM_REFS(atomic_load(&b->state)) == 0);
		pthread_mutex_destroy(&b->hdr_mu);
		pthread_cond_destroy(&b->io_cv);
		pthread_rwlock_destroy(&b->latch);
	}
	for (unsigned i = 0; i < BM_NPARTS; i++)
		pthread_mutex_destroy(&pool->parts[i].mu);
	pthread_rwlock_destroy(&pool->rels_lock);
	free(pool->frames);
	free(pool->bufs);
	free(pool->buckets);
	free(pool);
}

uint32_t bufmgr_page_size(const bufmgr *pool) { return pool->page_size; }
uint32_t bufmgr_nbuffers(const bufmgr *pool) { return pool->nbuf; }

void bufmgr_set_wal_hook(bufmgr *pool, bufmgr_wal_flush_fn fn, void *arg)
{
	pool->wal_flush = fn;
	pool->wal_arg = arg;
}

/* ---- hash table: tag -> buffer id ---- */

/* A 32-bit mix of the tag (murmur3 finaliser): low bits pick the bucket and
 * the partition, so neighbouring blocks spread over partitions. */
uint32_t bm_tag_hash(bm_tag tag)
{
	uint64_t x = ((uint64_t)tag.rel << 32) | tag.blk;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x;
}

/* The lock of the partition holding hash's bucket. nbuckets is a multiple
 * of BM_NPARTS, so bucket & (BM_NPARTS-1) == hash & (BM_NPARTS-1). */
pthread_mutex_t *bm_part_lock(bufmgr *pool, uint32_t hash)
{
	return &pool->parts[hash & (BM_NPARTS - 1)].mu;
}

/* The id of the buffer tagged tag, or BM_NONE. Caller holds the partition
 * lock of hash. */
int32_t bm_hash_find(bufmgr *pool, bm_tag tag, uint32_t hash)
{
	int32_t id = pool->buckets[hash & (pool->nbuckets - 1)];
	while (id != BM_NONE) {
		bm_buf *b = &pool->bufs[id];
		if (b->tag.blk == tag.blk && b->tag.rel == tag.rel)
			return id;
		id = b->hash_next;
	}
	return BM_NONE;
}

/* Links buf (already carrying its new tag) into its bucket. Caller holds
 * the partition lock of hash. */
void bm_hash_insert(bufmgr *pool, bm_buf *buf, uint32_t hash)
{
	int32_t *head = &pool->buckets[hash & (pool->nbuckets - 1)];
	buf->hash_next = *head;
	*head = (int32_t)buf->id;
}

/* Unlinks buf from the bucket of hash. Caller holds that partition lock. */
void bm_hash_remove(bufmgr *pool, bm_buf *buf, uint32_t hash)
{
	int32_t *link = &pool->buckets[hash & (pool->nbuckets - 1)];
	while (*link != (int32_t)buf->id) {
		assert(*link != BM_NONE);
		link = &pool->bufs[*link].hash_next;
	}
	*link = buf->hash_next;
	buf->hash_next = BM_NONE;
}

/* ---- buffer state ---- */

/* Sets and clears flags. Caller holds buf->hdr_mu (I3); pin counts that
 * other threads change meanwhile are preserved by the atomic and/or. */
void bm_set_flags(bm_buf *buf, uint32_t set, uint32_t clear)
{
	if (clear)
		atomic_fetch_and(&buf->state, ~clear);
	if (set)
		atomic_fetch_or(&buf->state, set);
}

/* Waits until no I/O is in progress on buf. Caller holds buf->hdr_mu. */
void bm_wait_io(bm_buf *buf)
{
	while (atomic_load(&buf->state) & BM_F_IO)
		pthread_cond_wait(&buf->io_cv, &buf->hdr_mu);
}

/* Adds a pin and raises the usage count (capped at BM_MAX_USAGE) in one
 * CAS. Returns the new state. */
static inline uint32_t pin_and_use(bm_buf *buf)
{
	uint32_t s = atomic_load_explicit(&buf->state, memory_order_relaxed);
	uint32_t n;
	do {
		n = s + BM_REF_ONE;
		if (BM_USAGE(s) < BM_MAX_USAGE)
			n += BM_USAGE_ONE;
	} while (!atomic_compare_exchange_weak(&buf->state, &s, n));
	return n;
}

bool bufmgr_keep_take(bufmgr *pool)
{
	uint32_t k = atomic_load_explicit(&pool->kept, memory_order_relaxed);
	do {
		if (k >= pool->keep_max)
			return false;
	} while (!atomic_compare_exchange_weak(&pool->kept, &k, k + 1));
	return true;
}

void bufmgr_keep_give(bufmgr *pool)
{
	uint32_t old = atomic_fetch_sub(&pool->kept, 1);
	(void)old;
	assert(old > 0);
}

void bufmgr_pin_again(bm_buf *buf)
{
	assert(BM_REFS(atomic_load(&buf->state)) > 0);
	atomic_fetch_add(&buf->state, BM_REF_ONE);
}

/* Releases one pin: a single atomic decrement (P1 step 6). */
void bufmgr_unpin(bufmgr *pool, bm_buf *buf)
{
	uint32_t old = atomic_fetch_sub_explicit(&buf->state, BM_REF_ONE,
						 memory_order_release);
	(void)pool;
	(void)old;
	assert(BM_REFS(old) > 0);
}

uint8_t *bufmgr_page(bm_buf *buf) { return buf->page; }
wd_relid bufmgr_buf_rel(const bm_buf *buf) { return buf->tag.rel; }
wd_blkno bufmgr_buf_blkno(const bm_buf *buf) { return buf->tag.blk; }

/* ---- pin ---- */

/* Results of pin_cached besides 0 (pinned a valid page). */
enum { PIN_ABSENT = 1, PIN_RETRY = 2 };

/*
 * Waits for another thread's read-in of buf (which we have pinned) to end.
 * true if the page became valid and still carries tag; false if the read
 * failed (the reader removed the tag, I7): the caller unpins and retries.
 */
static bool wait_valid(bm_buf *buf, bm_tag tag)
{
	bool ok;
	pthread_mutex_lock(&buf->hdr_mu);
	bm_wait_io(buf);
	ok = (atomic_load(&buf->state) & (BM_F_VALID | BM_F_TAG_VALID)) ==
		     (BM_F_VALID | BM_F_TAG_VALID) &&
	     buf->tag.rel == tag.rel && buf->tag.blk == tag.blk;
	pthread_mutex_unlock(&buf->hdr_mu);
	return ok;
}

/*
 * P1 steps 1-2: looks tag up under its partition lock and pins the buffer
 * found there. 0 with *out pinned and valid; PIN_ABSENT if the page is not
 * in the pool; PIN_RETRY if it was being read and the read failed.
 */
static int pin_cached(bufmgr *pool, bm_tag tag, uint32_t hash, bm_buf **out)
{
	pthread_mutex_t *mu = bm_part_lock(pool, hash);
	bm_buf *buf = NULL;
	uint32_t s = 0;
	int32_t id;

	pthread_mutex_lock(mu);
	id = bm_hash_find(pool, tag, hash);
	if (id != BM_NONE) {
		buf = &pool->bufs[id];
		s = pin_and_use(buf); /* step 2: pin under the partition lock (I2) */
	}
	pthread_mutex_unlock(mu);
	if (!buf)
		return PIN_ABSENT;
	if (!(s & BM_F_VALID) && !wait_valid(buf, tag)) {
		bufmgr_unpin(pool, buf); /* step 3: someone's read failed */
		return PIN_RETRY;
	}
	*out = buf;
	return 0;
}

/*
 * P1 steps 4-8 (a miss): claims a victim, writes it out if dirty, installs
 * tag and fills the buffer. 0 with *out pinned and valid; PIN_RETRY if the
 * victim was taken back or another thread installed tag first; or an error.
 */
static int load_page(bufmgr *pool, bm_tag tag, uint32_t hash, int mode,
		     bm_buf **out)
{
	bm_buf *victim = NULL;
	int rc;

	if ((rc = bm_claim_victim(pool, &victim)) != 0) /* step 4 */
		return rc;
	if (atomic_load(&victim->state) & BM_F_DIRTY) {
		/* step 5: write the victim (WAL before data inside) */
		rc = bm_write_out(pool, victim, BM_WHY_EVICT);
		if (rc != 0)
			goto fail;
	}
	rc = bm_install(pool, victim, tag, hash); /* step 6 */
	if (rc != 0) {
		rc = PIN_RETRY;
		goto fail;
	}
	if ((rc = bm_fill(pool, victim, mode)) != 0) /* step 7 */
		return rc; /* bm_fill invalidated and unpinned the victim */
	*out = victim;
	return 0;
fail:
	bufmgr_unpin(pool, victim);
	return rc;
}

/*
 * Checks that rel is open and, for BM_READ, that blk lies inside it; for
 * BM_ZERO raises the block count to blk + 1 (bufmgr.h).
 */
static int check_block(bufmgr *pool, bm_tag tag, int mode)
{
	bm_rel *r = bm_rel_get(pool, tag.rel);
	uint32_t n;
	if (!r)
		return err_set(WD_NOTFOUND, "bufmgr: relation %u is not open", tag.rel);
	n = atomic_load(&r->nblocks);
	if (mode == BM_ZERO) {
		while (n <= tag.blk &&
		       !atomic_compare_exchange_weak(&r->nblocks, &n, tag.blk + 1))
			;
		return 0;
	}
	if (tag.blk >= n)
		return err_set(WD_ECORRUPT, "%s: block %u is beyond the end of the file (%u blocks)",
			      storage_path(r->file), tag.blk, n);
	return 0;
}

/* bufmgr_pin without the failure count; see bufmgr.h and README P1. */
static int pin_page(bufmgr *pool, bm_tag tag, int mode, bm_buf **out)
{
	uint32_t hash = bm_tag_hash(tag);
	int rc;

	if (mode != BM_READ && mode != BM_ZERO)
		return err_set(WD_EINVAL, "bufmgr_pin: bad mode %d", mode);
	if (tag.blk == WD_INVALID_BLKNO)
		return err_set(WD_EINVAL, "bufmgr_pin: invalid block number");
	for (;;) {
		rc = pin_cached(pool, tag, hash, out); /* steps 1-3 */
		if (rc == 0) {
			count(pool, BMC_HITS);
			return 0;
		}
		if (rc == PIN_RETRY)
			continue;
		if ((rc = check_block(pool, tag, mode)) != 0)
			return rc;
		rc = load_page(pool, tag, hash, mode, out); /* steps 4-7 */
		if (rc == 0)
			count(pool, BMC_MISSES);
		if (rc != PIN_RETRY)
			return rc;
	}
}

/* See bufmgr.h. Every call counts once: hit, miss or failed pin. */
int bufmgr_pin(bufmgr *pool, wd_relid rel, wd_blkno blk, int mode,
	       bm_buf **out)
{
	int rc;
	*out = NULL;
	rc = pin_page(pool, (bm_tag){.rel = rel, .blk = blk}, mode, out);
	if (rc != 0)
		count(pool, BMC_FAILED_PINS);
	return rc;
}

/* ---- latches and dirty marking ---- */

void bufmgr_latch(bm_buf *buf, int mode)
{
	assert(BM_REFS(atomic_load(&buf->state)) > 0);
	if (mode == BM_EXCL)
		pthread_rwlock_wrlock(&buf->latch);
	else
		pthread_rwlock_rdlock(&buf->latch);
}

void bufmgr_unlatch(bm_buf *buf)
{
	pthread_rwlock_unlock(&buf->latch);
}

/*
 * Marks buf dirty (I4). JUST_DIRTIED tells a write-out in flight that the
 * page changed after it took its copy, so it must leave the buffer dirty.
 * Fast path: both flags already set, nothing to do (they are cleared only
 * under a share latch, which our exclusive latch excludes).
 */
void bufmgr_mark_dirty(bm_buf *buf, wd_lsn rec_lsn)
{
	const uint32_t both = BM_F_DIRTY | BM_F_JUST_DIRTIED;
	uint32_t s = atomic_load(&buf->state);
	assert(BM_REFS(s) > 0 && (s & BM_F_VALID));
	if ((s & both) == both)
		return;
	pthread_mutex_lock(&buf->hdr_mu);
	if (!(atomic_load(&buf->state) & BM_F_DIRTY))
		buf->rec_lsn = rec_lsn;
	bm_set_flags(buf, both, 0);
	pthread_mutex_unlock(&buf->hdr_mu);
}

bool bufmgr_is_dirty(bm_buf *buf)
{
	return (atomic_load(&buf->state) & BM_F_DIRTY) != 0;
}
