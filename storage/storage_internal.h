/*
 * storage_internal.h - shared by the files of storage/ only.
 */
#ifndef WALDEN_STORAGE_INTERNAL_H
#define WALDEN_STORAGE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "storage/storage.h"

struct st_file {
	int fd;
	unsigned flags;
	char *path;
	uint64_t sim_inode; /* power-loss simulation identity, 0 if untracked */
	uint64_t sim_run;   /* the tracking run that gave sim_inode (sim.c):
			     * in any other run the number may name another
			     * file, so f is untracked there */
};

/*
 * Called at the start of every I/O call with the call's kind and path.
 * Counts the call (storage_io_count), fires an armed WALDEN_CRASH_IO crash,
 * and returns the fault to inject: 0 for none, otherwise 1 + st_fault_kind.
 */
int fault_check(st_op op, const char *path);

/* ---- simulated power loss (sim.c; storage/README.md) -------------------
 * file.c calls these around the system calls of tracked files. When
 * tracking is off each call site costs one branch: sim_on(), or
 * f->sim_inode for calls on an open file (S7). */

extern _Atomic int sim_state; /* 0: env not read yet, 1: off, 2: tracking */
extern _Atomic uint64_t sim_run_now; /* number of the latest tracking run */
int sim_env_init(void);        /* reads WALDEN_SIM_JOURNAL once */

static inline bool sim_on(void)
{
	int s = atomic_load_explicit(&sim_state, memory_order_acquire);
	if (__builtin_expect(s == 0, 0))
		s = sim_env_init();
	return s == 2;
}

/* true if calls on f are to be journaled: it got its identity in the
 * current tracking run (a handle kept from an earlier run is untracked, S8).
 * The hooks check the run again under the journal lock. */
static inline bool sim_tracks(const st_file *f)
{
	return f->sim_inode && sim_on() &&
	       f->sim_run == atomic_load_explicit(&sim_run_now,
						  memory_order_acquire);
}

/* Before open(2): takes the journal lock, notes whether path exists and
 * strips O_TRUNC (the truncate is journaled by sim_opened instead).
 * Returns "existed". The lock is held until sim_opened, or sim_op_end if
 * the open failed, so that "existed" and the open are one step (S2). */
bool sim_open_prepare(const char *path, int *oflags);
/* After a successful open, with the lock of sim_open_prepare: gives f its
 * identity, journals CREATE or IDENT, performs the ST_TRUNC truncate, and
 * releases the lock. On error the caller closes f. */
int sim_opened(st_file *f, bool existed) WD_MUST_CHECK;
/* Journal a WRITE (with the old bytes) / a length change. On success the
 * journal lock is held until sim_op_end(), so that the record and the
 * system call are one step for every other tracked call. */
int sim_write_begin(st_file *f, const void *buf, size_t len,
		    uint64_t off) WD_MUST_CHECK;
int sim_resize_begin(st_file *f, uint64_t size, bool allocate) WD_MUST_CHECK;
void sim_op_end(void);
/* Sync: the journal position (and run) before fdatasync/fsync, then the
 * SYNC or SYNCDIR record once it returned success, if still in that run. */
uint64_t sim_sync_begin(uint64_t *run);
int sim_synced(st_file *f, uint64_t run, uint64_t covers) WD_MUST_CHECK;
int sim_dir_synced(const char *dir, uint64_t run,
		   uint64_t covers) WD_MUST_CHECK;
/* After a failed fdatasync (injected or real): SYNCFAIL, if still in that
 * run. The unsynced writes it covers are lost to a power loss (S11). */
int sim_sync_failed(st_file *f, uint64_t run, uint64_t covers) WD_MUST_CHECK;
/* rename(2) and unlink(2) under tracking (they keep what they replace or
 * remove in the journal directory's stash). */
int sim_rename(const char *from, const char *to) WD_MUST_CHECK;
int sim_unlink(const char *path) WD_MUST_CHECK;

/* Journal format shared by the writer (sim.c) and the materialiser
 * (sim_crash.c); the byte tables are in storage/README.md. */
#define SIM_JOURNAL "journal"
#define SIM_MAGIC "WDSIMJ02" /* 8 bytes at offset 0 of the journal */
#define SIM_MAGIC_LEN 8
#define SIM_HDR 32  /* u32 length, u16 kind, u16 zero, u64 seq, u64 io
		     * (storage_io_count at the append), u64 time (ns,
		     * CLOCK_MONOTONIC) */
#define SIM_CRC 4   /* zlib crc32 of the record's other bytes, at the end */
#define SIM_REC_MAX UINT32_MAX /* longest record: its length field is a u32 */
enum sim_rec {
	SIM_REC_IDENT = 1,
	SIM_REC_CREATE = 2,
	SIM_REC_WRITE = 3,
	SIM_REC_TRUNCATE = 4,
	SIM_REC_SYNC = 5,
	SIM_REC_RENAME = 6,
	SIM_REC_UNLINK = 7,
	SIM_REC_SYNCDIR = 8,
	SIM_REC_SYNCFAIL = 9,
};

#endif
