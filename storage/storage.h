/*
 * storage.h - walden's file I/O layer: the one place that calls open, pread,
 * pwrite, fdatasync, ftruncate, fallocate, rename, unlink and directory fsync.
 * It also carries the fault injection that crash tests use (crash points,
 * injected errors, simulated power loss). See storage/README.md.
 */
#ifndef WALDEN_STORAGE_H
#define WALDEN_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walden.h"
#include "storage/error.h"

/* ---- files ------------------------------------------------------------ */

typedef struct st_file st_file;

/* Flags for storage_open. */
enum {
	ST_RDONLY = 1u << 0, /* open read-only (default is read-write) */
	ST_CREATE = 1u << 1, /* create if absent */
	ST_EXCL = 1u << 2,   /* with ST_CREATE: fail with WD_EEXIST if present */
	ST_TRUNC = 1u << 3,  /* truncate to zero length on open */
};

/*
 * Opens (and with ST_CREATE creates, mode 0644) the file at path.
 * Errors: WD_ENOENT, WD_EEXIST, WD_EACCES, WD_EIO, WD_ENOSPC, WD_ENOMEM;
 * the detail names the path.
 */
int storage_open(const char *path, unsigned flags, st_file **out) WD_MUST_CHECK;

/* Closes the file; unsynced data is NOT synced. Returns 0 or WD_EIO. */
int storage_close(st_file *f);

/* The path the file was opened with (for messages). */
const char *storage_path(const st_file *f);

/*
 * Reads up to len bytes at off, retrying short reads and EINTR, stopping only
 * at end of file. *got (may be NULL) receives the bytes read.
 */
int storage_read(st_file *f, void *buf, size_t len, uint64_t off,
		 size_t *got) WD_MUST_CHECK;

/*
 * Writes all len bytes at off, retrying short writes and EINTR.
 * Errors: WD_ENOSPC, WD_EIO (detail: path, offset, length, errno text).
 */
int storage_write(st_file *f, const void *buf, size_t len,
		  uint64_t off) WD_MUST_CHECK;

/*
 * Makes the file's written data durable (fdatasync). On failure the caller
 * must not retry: the kernel may already have dropped the dirty pages
 * (DESIGN.md section 3). Errors: WD_EIO, WD_ENOSPC.
 */
int storage_sync(st_file *f) WD_MUST_CHECK;

/* Sets the file's length. */
int storage_truncate(st_file *f, uint64_t size) WD_MUST_CHECK;

/*
 * Reserves [off, off+len) so later writes there cannot fail with ENOSPC
 * (posix_fallocate; extends the file, new bytes read as zero).
 */
int storage_allocate(st_file *f, uint64_t off, uint64_t len) WD_MUST_CHECK;

/* The file's current length in bytes. */
int storage_size(st_file *f, uint64_t *size) WD_MUST_CHECK;

/* rename(2); to is replaced atomically. Durable only after storage_sync_dir
 * of both parent directories. */
int storage_rename(const char *from, const char *to) WD_MUST_CHECK;

/* unlink(2). Durable only after storage_sync_dir of the parent. */
int storage_unlink(const char *path) WD_MUST_CHECK;

/* mkdir(2) with mode 0755; WD_EEXIST if it exists. */
int storage_mkdir(const char *path) WD_MUST_CHECK;

/* fsync of a directory: makes creates, renames and unlinks in it durable. */
int storage_sync_dir(const char *dir) WD_MUST_CHECK;

/* true if path exists (any file type). */
bool storage_exists(const char *path);

/* ---- crash points ----------------------------------------------------- */

/*
 * A crash point is a named place in the engine where a test may end the
 * process abruptly (_exit without flushing anything, like kill -9).
 *   storage_crash_point("wal-after-write");
 * Armed by the environment, read once at first use:
 *   WALDEN_CRASH_POINT=name[:N]   die at the N-th hit of name (default 1)
 *   WALDEN_CRASH_IO=N             die just before the N-th I/O call
 * or by storage_crash_arm(). A dying process exits with status
 * ST_CRASH_EXIT_CODE so a parent can tell a planned crash from a failure.
 */
#define ST_CRASH_EXIT_CODE 86

void storage_crash_point(const char *name);

/* Arms name to fire on its nth hit from now (nth >= 1). NULL disarms. */
void storage_crash_arm(const char *name, uint64_t nth);

/* Arms a crash just before the nth I/O call from the start of the process
 * (the count storage_io_count() reports). 0 disarms. */
void storage_crash_arm_io(uint64_t nth);

/* Calls fn(name, storage_io_count()) at every crash point hit that does
 * not fire, from the thread that hit it (fn must be thread-safe and may
 * not call storage_*). Tells a crash-test run where each hit falls among
 * the I/O calls. NULL: none. */
void storage_crash_observe(void (*fn)(const char *name, uint64_t io));

/* How often name has been hit in this process. */
uint64_t storage_crash_hits(const char *name);

/* Number of I/O calls (open, read, write, sync, truncate, allocate, rename,
 * unlink, mkdir, sync_dir) made through this layer by this process. */
uint64_t storage_io_count(void);

/* ---- injected errors -------------------------------------------------- */

typedef enum st_op {
	ST_OP_OPEN,
	ST_OP_READ,
	ST_OP_WRITE,
	ST_OP_SYNC,
	ST_OP_TRUNCATE,
	ST_OP_ALLOCATE,
	ST_OP_RENAME,
	ST_OP_UNLINK,
	ST_OP_MKDIR,
	ST_OP_SYNC_DIR,
	ST_OP_ANY,
	ST_OP__COUNT
} st_op;

typedef enum st_fault_kind {
	ST_FAULT_EIO,    /* the call fails with EIO */
	ST_FAULT_ENOSPC, /* the call fails with ENOSPC (writes, allocate) */
	ST_FAULT_SHORT,  /* read/write transfers only part; the layer retries */
	ST_FAULT_EINTR,  /* read/write: one attempt fails with EINTR; the layer
			  * retries. Other calls: counted, no effect */
} st_fault_kind;

/*
 * Adds an injected fault: calls of kind op (on files whose path contains
 * path_substr, if not NULL) fail as kind, starting at the nth matching call
 * (1 = the next one) and for count calls (0 = forever). An ENOSPC fault
 * on ST_OP_ANY counts only writes and allocations (the calls that take
 * space).
 * Environment: WALDEN_FAULT="op:kind[:nth[:count]][@substr],..." e.g.
 *   WALDEN_FAULT=sync:eio:3          third fdatasync fails with EIO
 *   WALDEN_FAULT=write:enospc:1:0@wal every write under a "wal" path fails
 * Returns WD_EINVAL for a bad combination, WD_ENOBUFS when the table is full.
 */
int storage_fault_add(st_op op, st_fault_kind kind, uint64_t nth,
		      uint64_t count, const char *path_substr) WD_MUST_CHECK;

/*
 * Adds a fault that counts only the calls from I/O call io_index on (the
 * numbering of storage_io_count: the io_index-th call of the process):
 * the first call of kind op at or after it fails as kind, and count calls
 * in all (0 = forever). A crash test injects an error "at the k-th I/O
 * call" this way. Errors as storage_fault_add.
 */
int storage_fault_add_at(st_op op, st_fault_kind kind, uint64_t io_index,
			 uint64_t count) WD_MUST_CHECK;

/* Parses a WALDEN_FAULT-style spec and adds each fault. */
int storage_fault_parse(const char *spec) WD_MUST_CHECK;

/* Removes every injected fault (and forgets the first one fired). */
void storage_fault_clear(void);

/* The first injected fault that fired since the last storage_fault_clear:
 * the I/O call it failed (storage_io_count numbering), its operation and
 * kind. */
typedef struct st_fault_event {
	uint64_t io; /* 0: none fired */
	st_op op;
	st_fault_kind kind;
	char path[256]; /* the file or directory of the call (cut to fit) */
} st_fault_event;

/* true and *e (may be NULL) if a fault fired since the last clear. */
bool storage_fault_first(st_fault_event *e);

/* How many faults have fired so far. */
uint64_t storage_fault_fired(void);

#endif /* WALDEN_STORAGE_H */
