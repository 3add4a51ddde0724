/*
 * bufmgr_internal.h - the structs of the buffer pool, shared by the files of
 * bufmgr/ only (bufmgr.c: pool, hash, pin; evict.c: clock sweep, write-out,
 * flushes, drop; rel.c: relation files, read-in, extend). Other modules use
 * bufmgr.h. README.md names the invariants (I1..) referred to here.
 */
#ifndef WALDEN_BUFMGR_INTERNAL_H
#define WALDEN_BUFMGR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "bufmgr/bufmgr.h"
#include "storage/storage.h"

/*
 * Buffer state: one 32-bit atomic word so that a pin is one CAS and the
 * clock sweep reads everything it needs in one load.
 *
 *   bits 0..17   pin count (refcount)
 *   bits 18..21  usage count, 0..BM_MAX_USAGE (clock sweep)
 *   bits 22..    flags below
 *
 * The pin count changes by atomic add/sub/CAS from any thread. Flags change
 * only under the buffer's hdr_mu (with atomic and/or so that concurrent pin
 * changes are never lost); the clock sweep's usage decrement and claim are
 * CASes. See README "Buffer state".
 */
#define BM_REF_ONE 1u
#define BM_REF_MASK 0x3FFFFu
#define BM_USAGE_SHIFT 18
#define BM_USAGE_ONE (1u << BM_USAGE_SHIFT)
#define BM_USAGE_MASK (0xFu << BM_USAGE_SHIFT)
#define BM_MAX_USAGE 5u

#define BM_F_TAG_VALID (1u << 22)  /* tag is in the hash table */
#define BM_F_VALID (1u << 23)      /* page bytes hold the tagged page */
#define BM_F_DIRTY (1u << 24)      /* changed since last written */
#define BM_F_JUST_DIRTIED (1u << 25) /* dirtied since the write-out copy */
#define BM_F_IO (1u << 26)         /* a read or write is in progress */
#define BM_F_IO_ERROR (1u << 27)   /* the last write of this page failed */

#define BM_REFS(s) ((s) & BM_REF_MASK)
#define BM_USAGE(s) (((s) & BM_USAGE_MASK) >> BM_USAGE_SHIFT)

#define BM_NPARTS 128u  /* hash partitions, each with its own mutex */
#define BM_NSTRIPES 16u /* statistics stripes (per-thread counters) */
#define BM_HUGE_PAGE (2u << 20) /* a transparent huge page on x86-64 and arm64 */
#define BM_NONE (-1)    /* end of a hash chain */

typedef struct bm_tag {
	wd_relid rel;
	wd_blkno blk;
} bm_tag;

/* One buffer descriptor. page points into the pool's frame array. */
struct bm_buf {
	/* Written only by the holder of the only pin, under the tag's hash
	 * partition lock(s) and hdr_mu (I2). Read under either lock, or by any
	 * holder of a pin. */
	bm_tag tag;
	int32_t hash_next;        /* next id in the hash chain (partition lock) */
	uint32_t id;
	_Atomic uint32_t state;   /* pin count, usage count, flags */
	wd_lsn rec_lsn;           /* recLSN while dirty (hdr_mu) */
	uint8_t *page;
	pthread_mutex_t hdr_mu;   /* flag changes, tag changes, I/O waits */
	pthread_cond_t io_cv;     /* signalled when BM_F_IO clears */
	pthread_rwlock_t latch;   /* the content latch */
};

/* A hash partition: the chains of buckets b with b % BM_NPARTS == index. */
typedef struct bm_part {
	pthread_mutex_t mu;
} __attribute__((aligned(64))) bm_part;

/* Statistics counters; one stripe per thread (modulo BM_NSTRIPES). */
enum bm_counter {
	BMC_HITS, BMC_MISSES, BMC_FAILED_PINS, BMC_READS, BMC_READ_ERRORS,
	BMC_ZERO_FILLS, BMC_EVICTIONS, BMC_FREE_USED, BMC_WRITES,
	BMC_WRITE_ERRORS, BMC_EVICT_WRITES, BMC_FLUSH_WRITES, BMC_WAL_FLUSHES,
	BMC_WAL_ERRORS, BMC_EXTENDS, BMC_SYNCS,
	BMC__COUNT
};

typedef struct bm_stripe {
	_Atomic uint64_t c[BMC__COUNT];
} __attribute__((aligned(64))) bm_stripe;

/* An open relation file (rel.c). */
typedef struct bm_rel {
	wd_relid id;
	st_file *file;
	_Atomic uint32_t nblocks;  /* logical size in blocks */
	uint32_t alloc_blocks;     /* pages reserved in the file (ext_mu) */
	pthread_mutex_t ext_mu;    /* serialises extension */
	pthread_mutex_t sync_mu;   /* serialises syncs of this file */
	atomic_bool unsynced;      /* written or extended since last sync */
	atomic_bool sync_failed;   /* a sync failed: never retry (WD_EPANIC) */
} bm_rel;

struct bufmgr {
	uint32_t page_size;
	uint32_t nbuf;
	uint32_t chunk_pages;
	uint32_t nbuckets;        /* power of two >= 2 * nbuf */
	uint8_t *frames;          /* nbuf * page_size bytes, page aligned */
	bm_buf *bufs;             /* nbuf descriptors */
	uint64_t huge_bytes;      /* of frames and bufs, advised huge (README "Memory") */
	int32_t *buckets;         /* nbuckets chain heads (partition locks) */
	bm_part parts[BM_NPARTS];
	_Atomic uint64_t hand;    /* clock hand, counts up forever */
	_Atomic uint32_t kept;    /* kept pins (bufmgr_keep_take) */
	uint32_t keep_max;        /* nbuf / BM_KEEP_DIV */
	bufmgr_wal_flush_fn wal_flush;
	void *wal_arg;
	pthread_rwlock_t rels_lock; /* the relation table below */
	bm_rel **rels;
	size_t nrels, rels_cap;
	bm_stripe stats[BM_NSTRIPES];
};

/* Why a page is written: decides the statistic it counts in. */
enum bm_write_why { BM_WHY_EVICT, BM_WHY_FLUSH };

/* ---- bufmgr.c ---- */
uint32_t bm_tag_hash(bm_tag tag);
void bm_count(bufmgr *pool, enum bm_counter c);
pthread_mutex_t *bm_part_lock(bufmgr *pool, uint32_t hash);
int32_t bm_hash_find(bufmgr *pool, bm_tag tag, uint32_t hash);
void bm_hash_insert(bufmgr *pool, bm_buf *buf, uint32_t hash);
void bm_hash_remove(bufmgr *pool, bm_buf *buf, uint32_t hash);
void bm_set_flags(bm_buf *buf, uint32_t set, uint32_t clear);
void bm_wait_io(bm_buf *buf);

/* ---- evict.c ---- */
int bm_claim_victim(bufmgr *pool, bm_buf **victim) WD_MUST_CHECK;
int bm_write_out(bufmgr *pool, bm_buf *buf,
		 enum bm_write_why why) WD_MUST_CHECK;
/* Results of bm_install besides 0 (installed). */
enum { BM_INSTALL_RETRY = 1, BM_INSTALL_EXISTS = 2 };
int bm_install(bufmgr *pool, bm_buf *victim, bm_tag tag, uint32_t hash);

/* ---- rel.c ---- */
bm_rel *bm_rel_get(bufmgr *pool, wd_relid rel);
int bm_fill(bufmgr *pool, bm_buf *buf, int mode) WD_MUST_CHECK;
int bm_sync_all(bufmgr *pool) WD_MUST_CHECK;
void bm_rels_free(bufmgr *pool);

#endif
