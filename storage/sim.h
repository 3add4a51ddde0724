/*
 * sim.h - simulated power loss: the journal of not-yet-durable changes that
 * the storage layer keeps while tracking is on, and the materialiser that
 * later turns a crashed run's files into one of the states a power loss could
 * have left. Used by tests and the crash-test tools; the engine itself never
 * calls it. Protocol, journal format and invariants: storage/README.md,
 * section "Simulated power loss".
 *
 *   writer (the workload process)           materialiser (afterwards)
 *   storage_sim_start(jdir)                 storage_sim_materialize(jdir, &o, &r)
 *   ... storage_open/write/sync/rename ...  -> files now hold a crash state
 *   (killed, or storage_sim_stop())         storage_sim_report_free(&r)
 */
#ifndef WALDEN_STORAGE_SIM_H
#define WALDEN_STORAGE_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/error.h"

/* ---- writer ------------------------------------------------------------ */

/*
 * Starts tracking, a new *run*: from now on every file opened, created,
 * written, synced, truncated, renamed or unlinked through storage/ (outside
 * journal_dir) is journaled in journal_dir, which must exist, be empty of
 * an earlier unmaterialised journal, and sit on the same filesystem as the
 * tracked files (unlinked files are moved there). Only handles opened in
 * this run are tracked: one kept open from an earlier run stays usable,
 * untracked (its changes count as durable). The environment variable
 * WALDEN_SIM_JOURNAL=dir does the same at the first I/O call.
 *
 * A process that forks while tracking keeps tracking; the child does not
 * (it would append to the same journal): it is untracked unless it calls
 * storage_sim_start itself, on another journal directory.
 *
 * While tracking, the storage calls can fail in two more ways: a write (or
 * shrinking truncate) whose journal record - the old and the new bytes -
 * would pass 4 GiB (a write of more than 2 GiB may) fails with WD_ETOOBIG,
 * nothing written; and a path whose directory cannot be resolved
 * (realpath) fails with that error instead of going untracked.
 *
 * Errors: WD_ESTATE (already tracking, or journal_dir holds a journal that
 * was not materialised), WD_ENOENT, WD_ENOSPC, WD_EIO, WD_ENOMEM.
 */
int storage_sim_start(const char *journal_dir) WD_MUST_CHECK;

/* Stops tracking and closes the journal (which stays for the materialiser).
 * Files already open stay usable, untracked, also after a later
 * storage_sim_start. No effect when not tracking. */
void storage_sim_stop(void);

/* true while tracking is on in this process. */
bool storage_sim_active(void);

/* ---- materialiser ------------------------------------------------------ */

/* How the materialiser resolves each change not covered by an fsync. */
typedef enum st_sim_mode {
	ST_SIM_KEEP_ALL, /* every unsynced change survives */
	ST_SIM_DROP_ALL, /* every unsynced change is lost: the last synced state */
	ST_SIM_RANDOM,   /* each change kept or dropped, by the seed */
	ST_SIM_TORN,     /* each write kept, dropped or torn (sector subset),
			  * a lost extending write maybe leaving its new
			  * length (size_kept); truncates and directory
			  * changes kept or dropped */
	ST_SIM_TEAR_ONE, /* every change kept but one chosen write, torn
			  * with a chosen sector mask (tear_seq,
			  * tear_mask): a test's exact torn page */
} st_sim_mode;

typedef struct st_sim_opts {
	st_sim_mode mode;
	uint64_t seed;         /* same seed + same journal = same state */
	uint32_t sector_bytes; /* tear granularity: power of two 512..65536;
				* 0 means 512 */
	bool dry_run;          /* decide and report only: files and journal
				* are left untouched */
	/* ST_SIM_TEAR_ONE only (ignored otherwise): the pending write to
	 * tear, by its record number (st_sim_op.seq, e.g. from a dry run),
	 * and which of its sectors survive: bit i of tear_mask set means
	 * sector i of the write (file sector off / sector_bytes + i) keeps
	 * its new bytes, clear means it keeps the bytes it had before the
	 * write; sectors from 64 on keep their old bytes. If the write
	 * extended the file, the file keeps its new length (size_kept). */
	uint64_t tear_seq;
	uint64_t tear_mask;
} st_sim_opts;

typedef enum st_sim_kind {
	ST_SIM_WRITE,    /* data: bytes written at off, len */
	ST_SIM_TRUNCATE, /* data: length set to off (len = length before) */
	ST_SIM_CREATE,   /* directory: path created */
	ST_SIM_RENAME,   /* directory: path renamed to `to` */
	ST_SIM_UNLINK,   /* directory: path removed */
} st_sim_kind;

typedef enum st_sim_decision {
	ST_SIM_KEPT,    /* the change survives whole */
	ST_SIM_DROPPED, /* the change is lost */
	ST_SIM_TORN_OP, /* writes only: the sectors set in mask survive */
} st_sim_decision;

/*
 * One pending (unsynced) change and what the crash did to it, in journal
 * order. For writes, sector i of the op is the file sector
 * off / sector_bytes + i (sectors are aligned to the file, not to the
 * write); bit i of mask (mask[i / 8] >> (i % 8) & 1) says whether that
 * sector's new bytes survive. Kept writes have every bit set, dropped ones
 * none. A write that extended the file and was not kept whole may have
 * size_kept (ST_SIM_TORN, ST_SIM_TEAR_ONE): its size change reached the
 * disk, so the file is at least off + len long and the bytes past the old
 * length that no surviving sector wrote read as zero.
 */
typedef struct st_sim_op {
	uint64_t seq;   /* journal record number */
	st_sim_kind kind;
	st_sim_decision decision;
	uint64_t inode; /* simulation identity of the file */
	char *path;     /* data ops: the file's name when the op was issued;
			 * directory ops: the name created, renamed or removed */
	char *to;       /* renames: the new name; else NULL */
	uint64_t off;   /* write offset, or truncate's new length */
	uint64_t len;   /* write length, or truncate's old length */
	uint32_t nsectors; /* writes: sectors touched */
	uint8_t *mask;     /* writes: (nsectors + 7) / 8 bytes */
	bool size_kept; /* writes, dropped or torn: the new length survived
			 * (TORN by the seed, TEAR_ONE always) */
	bool no_effect; /* a kept directory op skipped because its source no
			 * longer named its file (an earlier op was dropped) */
} st_sim_op;

typedef struct st_sim_report {
	uint64_t records;      /* valid journal records read */
	bool tail_torn;        /* the journal ended in a partial or bad record
				* (ignored: a kill in mid-append) */
	uint64_t data_pending, data_kept, data_dropped, data_torn;
	uint64_t dir_pending, dir_kept, dir_dropped;
	uint64_t missing;      /* files with pending writes that were not found
				* (changed outside storage/ or after the kill
				* window); left as they are */
	size_t nops;
	st_sim_op *ops;        /* every pending op, journal order */
} st_sim_report;

/*
 * Reads the journal in journal_dir, decides the fate of every change not
 * covered by an fsync (opts->mode, opts->seed), rewrites the tracked files
 * into that crash state and removes the journal and its stash so the
 * directory is ready for a new run. Must not run while this process tracks
 * into journal_dir. r (may be NULL) receives the plan; free it with
 * storage_sim_report_free. A journal_dir without a journal is an empty plan.
 * Errors: WD_EINVAL (bad opts; under ST_SIM_TEAR_ONE a tear_seq that names
 * no pending write), WD_ESTATE, WD_ECORRUPT (not a journal; a
 * record naming a file identity no earlier record declared; a whole record
 * with the wrong number: two processes appended), WD_EIO (the journal
 * cannot be read whole), WD_ENOMEM. The journal is read and checked whole
 * before any file is touched, so its errors leave every file as it was.
 */
int storage_sim_materialize(const char *journal_dir, const st_sim_opts *opts,
			    st_sim_report *r) WD_MUST_CHECK;

/* ---- prefixes: many crash states from one run -------------------------- */

/*
 * A journal loaded once, to materialise crash states of *prefixes* of the
 * run that wrote it: "the process died just before its I/O call k". Every
 * record carries the I/O count (storage_io_count) of the moment it was
 * appended, which never decreases along the journal (S12); the prefix at
 * io_limit is the records with a count below it, and everything after is
 * treated as never issued (its writes undone, its syncs not counted, its
 * files never created). The run's files and the journal are only read:
 * each crash state is written below another directory, so one run serves
 * any number of states. Protocol: storage/README.md, "Prefixes".
 *
 *   st_sim_journal *h;
 *   storage_sim_journal_open(jdir, &h);          // after the run ended
 *   for each state: make an empty (or base) directory out, then
 *     storage_sim_materialize_prefix(h, k, &o, db, out, &r);
 *   storage_sim_journal_close(h);
 *
 * Errors of open: those of storage_sim_materialize's load (WD_ECORRUPT
 * also for I/O counts that go down), WD_ENOMEM.
 */
typedef struct st_sim_journal st_sim_journal;

int storage_sim_journal_open(const char *journal_dir,
			     st_sim_journal **out) WD_MUST_CHECK;
void storage_sim_journal_close(st_sim_journal *h);
/* Valid records loaded, and the I/O count of the last one (0: none). */
uint64_t storage_sim_journal_records(const st_sim_journal *h);
uint64_t storage_sim_journal_last_io(const st_sim_journal *h);
/* CLOCK_MONOTONIC ns of the last record with an I/O count below
 * io_limit (0: none): the crash of that prefix happened after it. */
uint64_t storage_sim_journal_time(const st_sim_journal *h, uint64_t io_limit);

/*
 * Writes the crash state of the prefix below io_limit, resolved by opts
 * (any mode; the pending changes are those of the prefix, decided by the
 * seed as storage_sim_materialize does), into out: every tracked file the
 * crash state names below root (the directory the run's files live in)
 * is written at the same place below out, with directories made as
 * needed. out must exist; it may hold the files the run started from
 * (a copy of them taken before the run): files the prefix never touched
 * stay as they are there, and files it found already present (IDENT) are
 * replaced or removed. Nothing below root or in the journal directory
 * changes; h may serve the next state. Errors: as storage_sim_materialize,
 * and WD_EINVAL for a crash state naming a file outside root.
 */
int storage_sim_materialize_prefix(st_sim_journal *h, uint64_t io_limit,
				   const st_sim_opts *opts, const char *root,
				   const char *out,
				   st_sim_report *r) WD_MUST_CHECK;

/* Frees what storage_sim_materialize put in r. */
void storage_sim_report_free(st_sim_report *r);

/* "write", "truncate", ... and "kept", "dropped", "torn". */
const char *storage_sim_kind_name(st_sim_kind k);
const char *storage_sim_decision_name(st_sim_decision d);

#endif /* WALDEN_STORAGE_SIM_H */
