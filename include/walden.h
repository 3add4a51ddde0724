/*
 * walden.h - the public C interface of walden, a transactional page store.
 *
 * This is the only header a program using walden includes. It grows with the
 * engine: the error codes, version, tracing, options, and the table API
 * (wd_open, wd_begin, wd_put, ...), rollback and savepoints. Checkpoints
 * arrive with the recovery module; nothing is declared here before it
 * works.
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
	/* Non-zero: ask the kernel to back the buffer pool with 2 MiB pages
	 * (transparent huge pages, madvise MADV_HUGEPAGE), so that random
	 * page accesses seldom miss the TLB. The pool works the same if the
	 * kernel declines (THP off or absent). A 2 MiB page is resident
	 * whole, so the pool's memory grows in 2 MiB steps. 0: ordinary
	 * pages. Default 1. */
	uint32_t huge_pages;

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
	 * wal_writer_delay_ms. Default 1. The default of each transaction,
	 * which wd_txn_set_synchronous changes. */
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
	/* WAL archiving (PostgreSQL's archive_mode + archive_command in
	 * spirit): the path of an existing, writable directory, or NULL / ""
	 * for none (default). Every completed WAL segment is copied there
	 * under its own name (16 hex digits), whole, as it was written, and
	 * made durable (temporary name, fdatasync, rename, directory fsync)
	 * before the segment may be recycled or removed; a background thread
	 * copies each segment soon after it completes, and checkpoints and
	 * wd_close copy whatever is left. A segment that cannot be archived
	 * (I/O error, full disk, or a different file of the same name already
	 * in the directory) is kept - the log grows - and wd_checkpoint
	 * returns the error (WD_EIO, WD_ENOSPC, WD_EEXIST naming both files);
	 * the next attempt retries. One database per archive directory; a
	 * missing or unusable directory makes wd_open fail (WD_ENOENT,
	 * WD_EINVAL, WD_EACCES) before anything is created. A setting of the
	 * open, not stored in the database: an open without it retires
	 * segments unarchived, leaving a gap in the archive. The string is
	 * copied by wd_open. Read the archive with
	 * `walden waldump DIR --wal-dir ARCHIVE` (wal/README.md P7). */
	const char *archive_dir;

	/* ---- tables ---- */
	/* Longest value wd_put accepts, in bytes (longer: WD_ETOOBIG); values
	 * longer than a page go to overflow pages. 1 to 2^40. A setting of
	 * the open, not of the database. Default 64 MiB. */
	uint64_t max_value_bytes;

	/* ---- transactions ---- */
	/* How long a call waits for another transaction's lock before it
	 * fails with WD_ETIMEDOUT (the call changes nothing; the transaction
	 * stays usable): up to this long for its table's intention lock (the
	 * first row the transaction touches in a table), and again for the
	 * row. 0: no limit (deadlocks are still detected). A setting of the
	 * open. Default 0. */
	uint32_t lock_timeout_ms;
	/* Lock escalation: once a transaction holds this many row locks on
	 * one table and asks for a shared one there, it tries, without
	 * waiting, to lock the whole table shared (a shared-and-intention-
	 * exclusive lock if it has written to the table); once it has that,
	 * it reads the table's rows without taking more row locks, and writers
	 * of the table wait until it ends. If the table lock cannot be had at
	 * once, the transaction goes on with row locks and tries again after
	 * as many more. The table lock also covers rows nobody read: it can
	 * make transactions whose rows do not overlap wait for each other,
	 * or deadlock (two escalated readers of a table that each then write
	 * a row of it: one is the victim). 0: never escalate (a row lock per
	 * row read, no such waits). A setting of the open. Default 5000 (the
	 * threshold SQL Server uses). */
	uint32_t lock_escalation_rows;

	/* ---- checkpoints (PostgreSQL semantics, DESIGN.md section 5) ---- */
	/* The checkpointer thread starts a checkpoint when this many seconds
	 * have passed since the last one. At least 1. Default 300. */
	uint32_t checkpoint_timeout_s;
	/* ... or when more than this many bytes of WAL were written since the
	 * last checkpoint's redo point. Default 1 GiB. */
	uint64_t max_wal_size_bytes;
	/* A timed checkpoint spreads its page writes over this fraction of
	 * checkpoint_timeout, 0 to 1. Default 0.9. */
	double checkpoint_completion_target;
} wd_options;

void wd_options_default(wd_options *o);

/* ---- databases, transactions, tables ----------------------------------
 *
 * A database is a directory. One process at a time owns it (wd_open takes
 * an exclusive lock; another process gets WD_EBUSY naming the holder);
 * the threads of that process share one wd_db.
 *
 * Isolation: strict two-phase locking on rows. wd_put and wd_del take an
 * exclusive lock on (table, key), wd_get and every row a cursor returns a
 * shared one, all held until the transaction ends. So single-key
 * operations are serializable: the committed transactions have the effect
 * of some serial order, and nobody reads a change before it commits. A
 * cursor scan locks the rows it returns, not the gaps between them: a key
 * another transaction inserts later into a range already scanned, or
 * deletes before the cursor reaches it (even if that transaction then
 * aborts), is not seen - phantoms are possible, as under REPEATABLE READ.
 * Every row lock comes with an intention lock on its table (shared or
 * exclusive intent); a transaction holding many row locks on one table may
 * trade them for a shared lock on the whole table (lock_escalation_rows),
 * which makes writers of that table wait until it ends, as a row lock
 * makes writers of that row wait.
 * A transaction waiting for a lock that would close a cycle is the
 * deadlock victim: its call returns WD_EDEADLOCK and the transaction has
 * been rolled back to its beginning (changes undone, locks released); it
 * stays open and may retry its work, commit or abort.
 *
 * Handles: a transaction is used by one thread at a time (a second thread
 * calling into it meanwhile gets WD_EBUSY). A call on a committed or
 * aborted transaction returns WD_ESTATE - for the last 1024 transactions
 * ended, after which the handle's memory is reused: do not rely on it. A
 * change through a read-only transaction (WD_TXN_RDONLY) returns
 * WD_EACCES.
 *
 * Table create and drop commit on their own, durably, when the call
 * returns: the calling transaction's rollback does not take them back.
 *
 * Panic: if a durable write fails (an fsync of the log or of the control
 * file), every later call on the database returns WD_EPANIC and nothing
 * more is acknowledged; wd_close frees it (returning WD_EPANIC) and the
 * next wd_open recovers.
 *
 * A process that forks while a database is open must not use it in the
 * child; the child does not keep the directory lock (it stays with the
 * parent).
 */
typedef struct wd_db wd_db;         /* an open database directory */
typedef struct wd_txn wd_txn;       /* one transaction, one thread at a time */
typedef struct wd_table wd_table;   /* a named table: heap + B+tree on the key */
typedef struct wd_cursor wd_cursor; /* ordered iteration over a table */

#define WD_CREATE 0x1u /* wd_table_open: create the table if absent */
#define WD_TXN_RDONLY 0x1u /* wd_begin_flags: a transaction that only reads */

/*
 * Opens the database in dir, creating it (and dir) if absent with the page
 * size and WAL segment size of o (NULL: defaults); an existing database
 * keeps its own. Errors: WD_EBUSY (another process has it open),
 * WD_ECORRUPT / WD_EVERSION / WD_EFOREIGN (damaged or foreign files),
 * WD_EINVAL (bad options), I/O errors. The detail names the file.
 */
int wd_open(const char *dir, const wd_options *o, wd_db **db);

/*
 * Stops the checkpointer, writes a shutdown checkpoint, writes every dirty
 * page, makes everything durable, marks the database shut down cleanly
 * and frees db. Fails with WD_ESTATE (db is left open)
 * while transactions are still open. NULL is ignored.
 */
int wd_close(wd_db *db);

/*
 * A checkpoint now, at full speed (recovery/README.md P1): pages dirtied
 * before its redo point written, a checkpoint record with the active
 * transactions, the control file pointed at it, WAL before its redo point
 * recycled. Transactions may run meanwhile. Errors: WD_EPANIC, I/O errors
 * (the control file then keeps the previous checkpoint).
 */
int wd_checkpoint(wd_db *db);

/* Starts a transaction (a 64-bit id, never reused), with the database's
 * synchronous_commit. */
int wd_begin(wd_db *db, wd_txn **txn);

/* wd_begin with flags: WD_TXN_RDONLY (put, del, table create and drop
 * then return WD_EACCES). */
int wd_begin_flags(wd_db *db, unsigned flags, wd_txn **txn);

/* Sets synchronous_commit for txn alone (1: wd_commit returns once the
 * commit is durable; 0: at once, durable within 3 x wal_writer_delay_ms),
 * until it ends. WD_EINVAL if txn is NULL. */
int wd_txn_set_synchronous(wd_txn *txn, int on);

/* Commits: returns once durable when synchronous_commit is on; then
 * releases the transaction's locks. Ends txn, also when the commit fails
 * (if no commit record could be written, the changes are rolled back) -
 * but not on WD_EINVAL, WD_EBUSY or WD_ESTATE, which concern the handle
 * itself. After a failed wd_rollback_to it rolls back and returns
 * WD_ESTATE. */
int wd_commit(wd_txn *txn);

/* Rolls back every change of txn (newest first, through its undo log),
 * releases its locks and ends it. On a full disk it waits until space
 * returns. If the rollback itself fails (an I/O error), the database
 * panics (WD_EPANIC) and the next wd_open finishes it. Ends txn either way
 * (but not on WD_EINVAL, WD_EBUSY, WD_ESTATE). */
int wd_abort(wd_txn *txn);

/*
 * Sets a savepoint called name (1..255 bytes) at this point of txn. A
 * savepoint of the same name set earlier is released (replaced); others
 * nest. Savepoints end with the transaction.
 */
int wd_savepoint(wd_txn *txn, const char *name);

/*
 * Undoes every change txn made since savepoint name (the newest of that
 * name) and keeps the transaction open; the savepoint stays, savepoints
 * set after it are released. Locks taken since are kept until the end.
 * WD_NOTFOUND if there is no such savepoint. If the rollback fails midway
 * (an I/O error), the transaction can only end: every other call returns
 * WD_ESTATE, and wd_commit rolls it back like wd_abort.
 */
int wd_rollback_to(wd_txn *txn, const char *name);

/*
 * Opens the table called name (1..255 bytes), creating it with WD_CREATE.
 * The handle belongs to the database: valid until wd_close or the table is
 * dropped, usable by any transaction of that database (with a transaction
 * of another database every call returns WD_EINVAL). A transaction holds
 * a reference on a table from its wd_table_open, or its first call on the
 * table, until it ends; wd_table_drop refuses while others hold one.
 * Errors: WD_NOTFOUND (absent, no WD_CREATE), WD_EINVAL (bad name).
 */
int wd_table_open(wd_txn *txn, const char *name, unsigned flags, wd_table **t);

/*
 * Drops the table and frees its pages; its handles become invalid. The
 * drop is durable when this returns (also when it then fails to remove
 * the files: the next wd_open removes what is left). Errors: WD_NOTFOUND
 * (no such table), WD_EBUSY (another transaction holds a reference on the
 * table - opened it or used it - and has not ended; nothing changed).
 * Using a handle after its table was dropped is undefined.
 */
int wd_table_drop(wd_txn *txn, const char *name);

/*
 * Inserts or overwrites key k (1..page_size/8 bytes) with value v (0 bytes
 * up to the configured maximum, 64 MiB by default). Keys order as unsigned
 * bytes (memcmp, then shorter first). Waits for the key's exclusive lock.
 * Errors: WD_ETOOBIG, WD_EDEADLOCK, WD_ETIMEDOUT, WD_EACCES, WD_EPANIC, I/O.
 */
int wd_put(wd_txn *txn, wd_table *t, const void *k, size_t klen, const void *v,
	   size_t vlen);

/*
 * Reads the value of k: copies min(cap, value length) bytes to buf and
 * always sets *vlen to the full length (like snprintf: if *vlen > cap, call
 * again with a larger buffer). WD_NOTFOUND if k is absent. Waits for the
 * key's shared lock (WD_EDEADLOCK, WD_ETIMEDOUT).
 */
int wd_get(wd_txn *txn, wd_table *t, const void *k, size_t klen, void *buf,
	   size_t cap, size_t *vlen);

/* Deletes k. WD_NOTFOUND if absent. */
int wd_del(wd_txn *txn, wd_table *t, const void *k, size_t klen);

/*
 * Put, get and del check the tuple the index gives: one that does not
 * hold the key is WD_ECORRUPT (naming table, key length and address), and
 * the call changes nothing. A put or del that fails (I/O, WD_ENOSPC)
 * between its heap and index steps takes its change back; if it cannot,
 * it says so in the detail and the database is marked for repair: wd_close
 * then leaves it as after a crash, and the next wd_open repairs the table.
 */

/* A cursor over t in key order, positioned before the first key. Close it
 * before its transaction ends. */
int wd_cursor_open(wd_txn *txn, wd_table *t, wd_cursor **c);
/* Positions c so that the next wd_cursor_next returns the first key >= k. */
int wd_cursor_seek(wd_cursor *c, const void *k, size_t klen);
/*
 * The next key and value in order; the pointers stay valid until the next
 * call on c. WD_NOTFOUND at the end. Each row returned is locked shared
 * until the transaction ends (see Isolation above: no snapshot, phantoms
 * possible). WD_EDEADLOCK: the transaction was rolled back; close c.
 */
int wd_cursor_next(wd_cursor *c, const void **k, size_t *klen, const void **v,
		   size_t *vlen);
void wd_cursor_close(wd_cursor *c);

#ifdef __cplusplus
}
#endif
#endif /* WALDEN_H */
