/*
 * bufmgr.h - the buffer pool: the one header other modules include to read
 * and write pages of relation files. Protocols, invariants and the statistics
 * equations are in bufmgr/README.md.
 *
 * A page is used like this (README, protocol P1):
 *
 *   bm_buf *b;
 *   int rc = bufmgr_pin(pool, rel, blk, BM_READ, &b);  // find or read it
 *   if (rc) return rc;
 *   bufmgr_latch(b, BM_EXCL);                          // content latch
 *   ... change bufmgr_page(b), set its pageLSN ...
 *   bufmgr_mark_dirty(b, rec_lsn);
 *   bufmgr_unlatch(b);
 *   bufmgr_unpin(pool, b);                             // may now be evicted
 *
 * A pin keeps the page in memory and its identity fixed; the latch protects
 * its bytes. Pins and latches are cheap and short: never hold a latch across
 * a call that may wait for another thread's pin (bufmgr_flush_*, drop_rel).
 *
 * Every function here is thread-safe unless stated otherwise. bufmgr knows
 * nothing of page kinds; it reaches the WAL only through the hook set with
 * bufmgr_set_wal_hook (WAL before data, README invariant I5).
 */
#ifndef WALDEN_BUFMGR_H
#define WALDEN_BUFMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"

typedef struct bufmgr bufmgr; /* a buffer pool */
typedef struct bm_buf bm_buf; /* one buffer (frame + descriptor) of a pool */

/* ---- pool ---------------------------------------------------------------- */

typedef struct bufmgr_opts {
	/* Bytes of page memory; rounded down to whole pages; must give at
	 * least BM_MIN_BUFFERS pages. Default 64 MiB. */
	uint64_t pool_bytes;
	/* Page size: a power of two in [4096, 65536]. Default 8192. */
	uint32_t page_size;
	/* Relation files grow this many pages at a time (bufmgr_extend);
	 * 1..65536. Default 8. */
	uint32_t extend_chunk_pages;
	/* Frames and descriptors on 2 MiB pages where the kernel has
	 * transparent huge pages (README "Memory"). Default true. */
	bool huge_pages;
} bufmgr_opts;

#define BM_MIN_BUFFERS 16u

/* Fills every field of o with its default. */
void bufmgr_opts_default(bufmgr_opts *o);

/*
 * Creates a pool with o (NULL: defaults). Errors: WD_EINVAL (bad page size,
 * too few buffers, bad chunk), WD_ENOMEM.
 */
int bufmgr_create(const bufmgr_opts *o, bufmgr **out) WD_MUST_CHECK;

/*
 * Frees the pool and closes every relation file still open WITHOUT writing
 * or syncing anything: dirty pages are lost, as in a crash. For a clean
 * shutdown call bufmgr_flush_all first. Precondition: no buffer is pinned
 * and no other thread uses the pool. NULL is ignored.
 */
void bufmgr_destroy(bufmgr *pool);

uint32_t bufmgr_page_size(const bufmgr *pool);
uint32_t bufmgr_nbuffers(const bufmgr *pool);

/*
 * The WAL-before-data hook: before a dirty page whose pageLSN is upto is
 * written, the pool calls wal_flush(arg, upto), which must return only once
 * the WAL is durable up to and including upto (0), or fail (a WD_E* code;
 * the page then stays dirty and unwritten). Called with a pin held on the
 * buffer and no bufmgr lock or latch held. With no hook (the default) pages
 * are written without waiting: right only for data without WAL (tests,
 * benchmarks). Set it before the pool is shared between threads.
 */
typedef int (*bufmgr_wal_flush_fn)(void *arg, wd_lsn upto);
void bufmgr_set_wal_hook(bufmgr *pool, bufmgr_wal_flush_fn fn, void *arg);

/* ---- relation files -------------------------------------------------- */

/* Flags of bufmgr_rel_open. */
enum { BM_REL_CREATE = 1u << 0 /* create the file if absent */ };

/*
 * Registers relation rel as the page file at path. The relation's block
 * count starts as the file size divided by the page size (a partial last
 * page is ignored and later overwritten). Errors: WD_EEXIST (rel already
 * open), WD_ENOENT (absent without BM_REL_CREATE), the errors of
 * storage_open, WD_ENOMEM.
 */
int bufmgr_rel_open(bufmgr *pool, wd_relid rel, const char *path,
		    unsigned flags) WD_MUST_CHECK;

/*
 * Writes the relation's dirty pages, syncs the file if it was written since
 * its last sync, forgets its buffers and closes it. Precondition: no other
 * thread pins pages of rel or calls bufmgr_rel_sync/extend/nblocks on it any
 * more (those use the relation without a reference count). Errors: WD_NOTFOUND (not open), the
 * write and sync errors (the relation then stays open), WD_EBUSY (a buffer of
 * rel stayed pinned).
 */
int bufmgr_rel_close(bufmgr *pool, wd_relid rel) WD_MUST_CHECK;

/*
 * fdatasync of the relation's file if a page was written to it (or it was
 * extended) since its last sync. A failed sync is never retried: the
 * relation then answers WD_EPANIC to every later sync (DESIGN.md section 3).
 * Errors: WD_NOTFOUND, WD_EIO, WD_ENOSPC, WD_EPANIC.
 */
int bufmgr_rel_sync(bufmgr *pool, wd_relid rel) WD_MUST_CHECK;

/* The relation's block count (README "Relation size"). WD_NOTFOUND. */
int bufmgr_rel_nblocks(bufmgr *pool, wd_relid rel,
		       wd_blkno *nblocks) WD_MUST_CHECK;

/*
 * Appends a block to rel: *blk receives its number, *out the buffer,
 * pinned, exclusively latched and all zeroes (a "new" page the caller
 * formats and marks dirty). The file grows extend_chunk_pages at a time
 * (posix_fallocate), so the space for the page is reserved before it is
 * ever written. Errors: WD_NOTFOUND, WD_ENOSPC, WD_EIO, WD_ENOBUFS,
 * WD_ETOOBIG (the relation reached 2^32-1 blocks).
 */
int bufmgr_extend(bufmgr *pool, wd_relid rel, wd_blkno *blk,
		  bm_buf **out) WD_MUST_CHECK;

/*
 * Forgets every buffer of rel without writing it (the relation is being
 * dropped or truncated). Waits for transient pins (an eviction or flush in
 * another thread, including a write-out under way); a pin that stays for a
 * second gives WD_EBUSY naming the block. When it returns 0 no write of a
 * page of rel is in progress or will start. Precondition: the caller holds
 * no pin of rel, and no other thread calls bufmgr_rel_* on rel meanwhile.
 */
int bufmgr_drop_rel(bufmgr *pool, wd_relid rel) WD_MUST_CHECK;

/* ---- pages ------------------------------------------------------------ */

/* Modes of bufmgr_pin. */
enum {
	BM_READ = 0, /* the page as on disk (read if not cached) */
	BM_ZERO = 1, /* if not cached, do not read: the page becomes all
		      * zeroes (recovery of a block beyond the end of the
		      * file; raises the block count to blk+1). A cached
		      * page is returned as it is. */
};

/*
 * Pins page (rel, blk) and returns its buffer in *out: from the pool if
 * cached (a hit), else read from the file into a buffer freed by the clock
 * sweep (a miss), after writing the victim out if dirty. The page is
 * checked with page_verify; an all-zero page is returned as zeroes.
 * Errors: WD_NOTFOUND (rel not open), WD_ECORRUPT (checksum or header
 * failure, or blk beyond the end of the relation with BM_READ; the detail
 * names file and block), WD_EIO, WD_ENOBUFS (every buffer pinned), and the
 * errors of writing the victim (the WAL hook's, WD_EIO, WD_ENOSPC).
 */
int bufmgr_pin(bufmgr *pool, wd_relid rel, wd_blkno blk, int mode,
	       bm_buf **out) WD_MUST_CHECK;

/* Releases one pin. Precondition: the caller holds a pin and no latch that
 * it took on buf through this pin. */
void bufmgr_unpin(bufmgr *pool, bm_buf *buf);

/* Adds one more pin to a buffer the caller has pinned already. */
void bufmgr_pin_again(bm_buf *buf);

/*
 * Kept pins: pins held beyond one operation (the B+tree keeps its upper
 * levels and its rightmost leaf pinned, btree/README I12, I13). Before
 * keeping a pin a module takes a share of a pool-wide budget of
 * nbuffers / BM_KEEP_DIV buffers, so kept pins can never leave the pool
 * without victims; it gives the share back when it unpins.
 * bufmgr_keep_take: true if a share was taken, false if the budget is
 * spent (then the caller must not keep it).
 */
#define BM_KEEP_DIV 16u
bool bufmgr_keep_take(bufmgr *pool);
void bufmgr_keep_give(bufmgr *pool);

/* The page bytes (page_size of them). Valid while pinned; read them under
 * a share latch, change them under the exclusive latch. */
uint8_t *bufmgr_page(bm_buf *buf);

/* The identity of a pinned buffer. */
wd_relid bufmgr_buf_rel(const bm_buf *buf);
wd_blkno bufmgr_buf_blkno(const bm_buf *buf);

/* Content latch modes. */
enum { BM_SHARE = 1, BM_EXCL = 2 };

/* Takes the content latch (a reader-writer lock that prefers writers).
 * Precondition: buf pinned; not already latched by this thread. */
void bufmgr_latch(bm_buf *buf, int mode);

/* Releases the content latch taken by bufmgr_latch. */
void bufmgr_unlatch(bm_buf *buf);

/*
 * Marks the page changed. rec_lsn is the LSN from which redo must replay to
 * recreate the change (the change's WAL record); it becomes the buffer's
 * recLSN if the buffer was clean and is ignored otherwise. Precondition:
 * the caller holds the exclusive latch and has set the pageLSN.
 */
void bufmgr_mark_dirty(bm_buf *buf, wd_lsn rec_lsn);

/* true if the buffer holds changes not yet written. */
bool bufmgr_is_dirty(bm_buf *buf);

/* ---- writing ---------------------------------------------------------- */

/*
 * Writes buf if dirty (WAL hook first). Precondition: buf pinned by the
 * caller, who holds no latch on it. Errors: the hook's, WD_EIO, WD_ENOSPC;
 * the buffer then stays dirty.
 */
int bufmgr_flush_buffer(bufmgr *pool, bm_buf *buf) WD_MUST_CHECK;

/*
 * The checkpoint write: writes every buffer dirty when it is reached, then
 * fdatasyncs every relation file written since its last sync. Stops at the
 * first error and returns it. Precondition: the caller holds no latch.
 */
int bufmgr_flush_all(bufmgr *pool) WD_MUST_CHECK;

/*
 * A checkpoint's write (recovery/README.md P1 step 2): writes every buffer
 * dirty with a recLSN below lsn when it is reached (a page dirtied at or
 * after lsn is left: the log from lsn on redoes it). No sync. After each
 * write pace(arg, writes so far) is called, if not NULL, with no pin or
 * latch held: an unforced checkpoint sleeps there to spread its writes.
 * Stops at the first error (the buffer stays dirty).
 */
int bufmgr_flush_before(bufmgr *pool, wd_lsn lsn, void (*pace)(void *arg, uint64_t n),
			void *arg) WD_MUST_CHECK;

/* fdatasync of every relation file written since its last sync (as the
 * second step of bufmgr_flush_all). A failed sync is never retried. */
int bufmgr_sync_all(bufmgr *pool) WD_MUST_CHECK;

/* Writes every dirty buffer of rel (no sync). As bufmgr_flush_all. */
int bufmgr_flush_rel(bufmgr *pool, wd_relid rel) WD_MUST_CHECK;

/*
 * Calls fn for each buffer dirty at the moment it is looked at, with its
 * tag and recLSN (a dirty page table for a checkpoint record). A non-zero
 * return from fn stops the walk and is returned. fn runs with no bufmgr
 * lock held.
 */
typedef int (*bufmgr_dirty_fn)(void *arg, wd_relid rel, wd_blkno blk,
			       wd_lsn rec_lsn);
int bufmgr_dirty_pages(bufmgr *pool, bufmgr_dirty_fn fn,
		       void *arg) WD_MUST_CHECK;

/* ---- statistics ------------------------------------------------------- */

/*
 * Counters since bufmgr_create. The equations they satisfy once no call is
 * in flight are in README.md, "Statistics".
 */
typedef struct bm_stats {
	uint64_t hits;          /* pins that found the page in the pool */
	uint64_t misses;        /* pins that filled a buffer themselves */
	uint64_t failed_pins;   /* pins (and extends) that returned an error */
	uint64_t reads;         /* page reads from a file (successful or not) */
	uint64_t read_errors;   /* reads that failed: I/O error or bad page */
	uint64_t zero_fills;    /* buffers filled with zeroes, not read */
	uint64_t evictions;     /* valid pages replaced to make room */
	uint64_t free_used;     /* fills that took a buffer holding no page */
	uint64_t writes;        /* page writes that succeeded */
	uint64_t write_errors;  /* page writes that failed */
	uint64_t evict_writes;  /* writes (ok or not) made to evict a page */
	uint64_t flush_writes;  /* writes (ok or not) made by the flush calls */
	uint64_t wal_flushes;   /* WAL hook calls that returned 0 */
	uint64_t wal_errors;    /* WAL hook calls that failed */
	uint64_t extends;       /* blocks added by bufmgr_extend */
	uint64_t syncs;         /* fdatasync calls made */
	/* snapshots, not counters */
	uint64_t pinned;        /* sum of all pin counts right now */
	uint64_t kept;          /* of those, kept pins (bufmgr_keep_take) */
	uint64_t dirty;         /* buffers dirty right now */
	uint64_t valid;         /* buffers holding a page right now */
	uint64_t huge_bytes;    /* bytes advised for huge pages at creation */
} bm_stats;

void bufmgr_stats(bufmgr *pool, bm_stats *out);

#endif /* WALDEN_BUFMGR_H */
