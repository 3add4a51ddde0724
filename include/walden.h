/*
 * walden.h - the public C interface of walden, a transactional page store.
 *
 * This is the only header a program using walden includes. It grows with the
 * engine: today it holds the error codes, version, tracing and the options
 * that fix a database's physical layout. The transaction API of the design
 * (wd_open, wd_begin, wd_put, ...) arrives with the access-method and
 * transaction modules; nothing is declared here before it works.
 *
 * Conventions (as in lmdb.h):
 *  - Every fallible call returns int: 0 on success, a negative WD_E* code on
 *    failure. wd_strerror() names every code; wd_last_error() gives the detail
 *    of the last failure on the calling thread (file name, offset, errno text).
 *  - The library never prints and never exits, except where a test has armed
 *    a crash point on purpose (see storage/README.md).
 */
#ifndef WALDEN_H
#define WALDEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WALDEN_VERSION_MAJOR 0
#define WALDEN_VERSION_MINOR 1
#define WALDEN_VERSION_PATCH 0
#define WALDEN_VERSION_STRING "0.1.0"

/* Error codes. 0 is success; every failure is one of these, never an errno. */
enum wd_error {
	WD_OK = 0,
	WD_NOTFOUND = -1,  /* key or file not found (not an error for lookups) */
	WD_EINVAL = -2,    /* invalid argument or option */
	WD_ENOMEM = -3,    /* out of memory */
	WD_EIO = -4,       /* the operating system reported an I/O error */
	WD_ENOSPC = -5,    /* no space left on the device */
	WD_ECORRUPT = -6,  /* bytes on disk fail a check (checksum, magic, size) */
	WD_EPANIC = -7,    /* a durable write failed earlier; reopen to recover */
	WD_EBUSY = -8,     /* the resource is held by someone else */
	WD_EEXIST = -9,    /* the file or object already exists */
	WD_ENOENT = -10,   /* the file or directory does not exist */
	WD_ENOTSUP = -11,  /* not supported (yet) */
	WD_EACCES = -12,   /* permission denied */
	WD_ENOBUFS = -13,  /* every buffer of the pool is pinned */
	WD_EVERSION = -14, /* on-disk format version not understood */
	WD_EFOREIGN = -15, /* a file belongs to another database */
	WD_ETOOBIG = -16,  /* a key, value or setting exceeds its limit */
	WD_EDEADLOCK = -17,/* chosen as a deadlock victim */
	WD_ETIMEDOUT = -18,/* a wait timed out */
	WD_ESTATE = -19,   /* the call is not allowed in the object's state */
};
#define WD_ERROR_LAST WD_ESTATE /* the most negative code, for iteration */

/* A short, constant description of an error code ("checksum failure..."). */
const char *wd_strerror(int err);

/*
 * The detail of the last failure on the calling thread, e.g.
 * "base/16384: block 7: checksum mismatch (stored 0x1234, computed 0x5678)".
 * Valid until the thread's next failing walden call. Never NULL.
 */
const char *wd_last_error(void);

/* The library's version string, "0.1.0". */
const char *wd_version(void);

/*
 * Tracing. Compiled in, off by default. Turn modules on with the
 * WALDEN_TRACE environment variable (WALDEN_TRACE=storage,bufmgr or "all")
 * or wd_trace_enable(). Each event is one line such as
 *   "bufmgr write rel=16384 blk=7 lsn=0/1A2B"
 * delivered to the callback, or to stderr when no callback is set.
 */
typedef void (*wd_trace_fn)(void *arg, const char *module, const char *line);
void wd_trace_set_callback(wd_trace_fn fn, void *arg);
int wd_trace_enable(const char *modules); /* comma list; WD_EINVAL on unknown */

/*
 * Database options. wd_options_default() fills every field; change what you
 * need before passing the struct to the engine.
 */
typedef struct wd_options {
	/* Page size in bytes, fixed when the database is created: a power of
	 * two from 4096 to 65536. Default 8192. */
	uint32_t page_size;
	/* Size of the buffer pool in bytes (rounded down to whole pages, at
	 * least 16 pages). Default 64 MiB. */
	uint64_t buffer_pool_bytes;

	/* ---- write-ahead log (PostgreSQL semantics, DESIGN.md section 4) ---- */
	/* Bytes per WAL segment file, fixed at creation: a power of two from
	 * 64 KiB to 1 GiB. Default 16 MiB. */
	uint32_t wal_segment_size;
	/* Bytes of in-memory WAL buffers. Default 16 MiB. */
	uint64_t wal_buffers_bytes;
	/* How often the WAL writer flushes, in time: after a flush it sleeps
	 * this long unless an asynchronous commit wakes it. Default 200 ms. */
	uint32_t wal_writer_delay_ms;
	/* How often it flushes, in volume: if less than wal_writer_delay has
	 * passed since the last flush and less than this many bytes were
	 * written since, WAL is only written to the OS, not flushed. 0: flush
	 * every time. Default 1 MiB. */
	uint64_t wal_writer_flush_after_bytes;
	/* 1: wd_commit returns once the commit record is durable. 0: it returns
	 * at once; the WAL writer makes it durable within 3 x
	 * wal_writer_delay_ms. Default 1; settable per transaction. */
	int synchronous_commit;
	/* Group commit: a committer about to flush waits this many
	 * microseconds first, if at least commit_siblings other transactions
	 * are active, so that one fdatasync serves more commits. Default 0
	 * (off) and 5. */
	uint32_t commit_delay_us;
	uint32_t commit_siblings;
	/* New segments are filled with zeroes (1, default) rather than only
	 * allocated: a zero-filled file makes fdatasync cheaper later. */
	int wal_init_zero;
	/* Old segments are renamed for reuse (1, default) instead of removed. */
	int wal_recycle;
	/* Log a page's whole image at its first change after a checkpoint (1,
	 * default), so torn pages can be repaired. */
	int full_page_writes;
	/* zlib-compress full-page images (default 0). */
	int wal_compression;
} wd_options;

void wd_options_default(wd_options *o);

#ifdef __cplusplus
}
#endif
#endif /* WALDEN_H */
