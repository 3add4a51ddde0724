/*
 * wal.h - the write-ahead log's insertion and flush side: the one header
 * other modules include to append records, make them durable and commit.
 * Protocols and invariants: wal/README.md ("Invariants", "Protocols").
 *
 *   wal *w;
 *   wal_opts o;
 *   wal_opts_from(&o, &db_options, control.db_id);
 *   rc = wal_create(dbdir, &o, &w);           // new database: DIR/wal, segment 0
 *   rc = wal_open(dbdir, &o, end_lsn, &w);    // existing: append at end_lsn
 *   rc = wal_insert(w, rec, len, &lsn);       // rec from walrec_assemble
 *   rc = wal_insert_fpw(w, rec, len, b.fpw_lsn, &lsn); // a change of pages:
 *                                             // WAL_INSERT_RETRY -> decide
 *                                             // images again, rebuild (I11)
 *   rc = wal_set_redo_point(w, &redo);        // a checkpoint's first step
 *   rc = wal_commit(w, lsn, synchronous);     // group commit or async
 *   rc = wal_close(w);                        // flushes, stops the writer
 *
 * Positions. An LSN returned by wal_insert is the record's first byte.
 * wal_flush_to(w, lsn) returns once every record that starts at or before
 * lsn is durable in full (so a pageLSN, which is a record's start, can be
 * passed as is). Every function is thread-safe; one wal is shared by all the
 * threads of a database.
 */
#ifndef WALDEN_WAL_H
#define WALDEN_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"
#include "walden.h"

typedef struct wal wal;

/* Called after every flush with the new flushed LSN and the clock
 * (CLOCK_MONOTONIC ns); benchmarks use it to measure the async loss window.
 * Runs with no WAL lock held; must not call back into the WAL. */
typedef void (*wal_flush_observer)(void *arg, wd_lsn flushed, uint64_t now_ns);

typedef struct wal_opts {
	uint32_t segment_size;      /* power of two, WAL_SEG_SIZE_MIN..MAX */
	uint64_t buffers_bytes;     /* WAL buffers; rounded down to a power of
				     * two, at least 64 KiB */
	uint32_t writer_delay_ms;   /* wal_writer_delay, 1..10000 */
	uint64_t writer_flush_after_bytes; /* wal_writer_flush_after; 0: always */
	uint32_t commit_delay_us;   /* 0..100000 */
	uint32_t commit_siblings;   /* 0..1000 */
	bool init_zero;             /* zero-fill new segments (else fallocate) */
	bool recycle;               /* rename old segments for reuse */
	uint32_t recycle_max;       /* future segments kept by recycling (8) */
	uint32_t prepare_ahead;     /* segments prepared past the insert
				     * position by the writer (1..64, 1) */
	uint32_t page_size;         /* the database's, for segment headers */
	uint8_t db_id[16];          /* the database's (control file) */
	bool no_writer_thread;      /* tests: no WAL writer; drive it with
				     * wal_writer_step / wal_writer_cycle */
	uint32_t writer_hibernate_loops;  /* idle cycles before the writer
				     * hibernates (1..1000; PostgreSQL: 50) */
	uint32_t writer_hibernate_factor; /* a hibernation sleep is this many
				     * writer_delay_ms (1..100000; PostgreSQL:
				     * 25); tests set both */
	wal_flush_observer on_flush; /* may be NULL */
	void *on_flush_arg;
	const char *archive_dir;    /* an existing directory every completed
				     * segment is copied to before it may be
				     * recycled or removed (README P7); NULL
				     * or "": none. Copied by wal_open */
} wal_opts;

/* Defaults: 16 MiB segments and buffers, 200 ms, 1 MiB, no commit delay,
 * 5 siblings, zero-fill, recycle, page 8192, hibernation after 50 idle
 * cycles for 25 x writer_delay_ms, an all-zero database id. */
void wal_opts_default(wal_opts *o);

/* The WAL settings of a database's options plus its identity. */
void wal_opts_from(wal_opts *o, const wd_options *d, const uint8_t db_id[16]);

/*
 * Creates DIR/wal and its first segment, durably (directory fsyncs), and
 * opens the log for appending at the first record position. Errors:
 * WD_EINVAL (bad options), WD_EEXIST (DIR/wal exists), the storage errors.
 */
int wal_create(const char *dbdir, const wal_opts *o, wal **out) WD_MUST_CHECK;

/*
 * Opens the log of DIR for appending at start_lsn, the end of the valid log
 * (found by recovery or wal_find_end). Before anything is appended, the rest
 * of start_lsn's segment is zeroed and synced and every later segment is
 * removed, so no record of an earlier run can ever follow a new one (I7).
 * Errors: WD_EINVAL (bad options, start_lsn not 8-aligned), WD_ENOENT (no
 * segment at or before start_lsn's), WD_EFOREIGN (a segment of another
 * database), WD_ECORRUPT, storage errors.
 */
int wal_open(const char *dbdir, const wal_opts *o, wd_lsn start_lsn,
	     wal **out) WD_MUST_CHECK;

/*
 * The end of the valid log at or after from (a record position, e.g. the
 * redo point or WAL_SEG_HEADER_SIZE): reads forward with the reader
 * (wal/reader.h) and returns the first LSN holding no valid record, the
 * start_lsn for wal_open. Errors: the reader's (WD_EFOREIGN, WD_ECORRUPT,
 * WD_EIO, ...); a clean or damaged tail is an end, not an error.
 */
int wal_find_end(const char *dbdir, const wal_opts *o, wd_lsn from,
		 wd_lsn *end) WD_MUST_CHECK;

/* wal_find_end, also saying why the log ends there (*why: wal_end_reason;
 * may be NULL) and, in detail[dcap] (may be NULL), the reader's detail
 * naming the segment file. Recovery reports this reason: by the time its
 * own scan reads the tail, wal_open has zeroed the rest of the last
 * segment, so a log that ended at a stale record would read as ending at
 * a zero one. */
int wal_find_end_why(const char *dbdir, const wal_opts *o, wd_lsn from, wd_lsn *end,
		     unsigned *why, char *detail, size_t dcap) WD_MUST_CHECK;

/*
 * R-I4, before a crashed log is reopened at end (wal_find_end's): 0 if the
 * end may be the tail a crash left, WD_ECORRUPT if a valid record past it
 * carries a durable horizon beyond it - the bytes at end were fsynced
 * before that record was written, so they are damaged, not unwritten. The
 * error names the segment file and offset of end, why the log ends there,
 * and the record that proves it. Errors also: WD_EIO, WD_ENOMEM.
 */
int wal_check_end(const char *dbdir, const wal_opts *o, wd_lsn end) WD_MUST_CHECK;

/*
 * Flushes everything inserted (unless panicked), stops the WAL writer,
 * closes the files and frees w. Returns the flush's result (WD_EPANIC if the
 * log was panicked); w is freed either way. NULL is ignored.
 */
int wal_close(wal *w);

/*
 * Appends the assembled record rec[0, len) (wal/record.h): reserves
 * wal_align(len) bytes, stamps the record with its LSN and CRC
 * (walrec_stamp, which writes into rec) and copies it into the WAL buffers,
 * in parallel with other inserters. *lsn receives the record's LSN.
 * Disk full (README I10): while WAL writes fail with ENOSPC, an insert that
 * needs buffer room the disk cannot give fails with WD_ENOSPC before it
 * reserves anything. One that has already reserved its space (it raced
 * with the disk filling up, or its record is larger than the buffers) waits
 * until space returns, retrying its write with pauses of up to 100 ms: it
 * cannot give the space back without leaving a hole that would end the log.
 * Errors: WD_EINVAL (len < header size or above WAL_MAX_RECORD_SIZE, or
 * rec's tot_len differs from len), WD_ENOSPC (nothing inserted),
 * WD_EPANIC.
 */
int wal_insert(wal *w, uint8_t *rec, uint32_t len, wd_lsn *lsn) WD_MUST_CHECK;

/* ---- the redo point and the full-page-image recheck (README I11) ---- */

/* wal_insert_fpw's "rebuild the record with images and try again". Positive,
 * so no WD_E* code; it never leaves the module that logs the change. */
#define WAL_INSERT_RETRY 1

/*
 * wal_insert for a record built under an image decision (PostgreSQL's
 * XLogInsertRecord with fpw_lsn): fpw_lsn is the smallest pageLSN of a page
 * the record changes *without* a full-page image (wal_rec_builder.fpw_lsn;
 * WAL_FPW_NONE, wal/record.h, if none: never refused). If, when its space would be reserved, the redo
 * point is above fpw_lsn - a wal_set_redo_point came between the caller's
 * decision (wal_log_needs_image) and now - the record would land after the
 * new redo point without the image that page's first change after it must
 * carry: nothing is reserved or stamped and WAL_INSERT_RETRY is returned.
 * The caller, still holding its page latches, decides again (an image now),
 * rebuilds and calls again. Otherwise exactly wal_insert (same errors).
 */
int wal_insert_fpw(wal *w, uint8_t *rec, uint32_t len, wd_lsn fpw_lsn,
		   wd_lsn *lsn) WD_MUST_CHECK;

/* The redo point: a page last changed before it gets a full-page image with
 * its next change (wal_log_needs_image). 0 until one is set. */
wd_lsn wal_redo_point(wal *w);

/*
 * Makes the current insert position the redo point, atomically with respect
 * to reservations (I11): it holds every insertion slot's lock, as
 * PostgreSQL's checkpoint holds every WAL insertion lock, so every record
 * reserved after it was rechecked against it (wal_insert_fpw) and every
 * record reserved before it lies before it. *redo receives it. Waits for
 * inserts in progress (one stalled for disk space, I10, until space
 * returns). The caller must not be inside wal_insert (it holds no slot).
 * Errors: WD_EPANIC (the redo point does not move).
 */
int wal_set_redo_point(wal *w, wd_lsn *redo) WD_MUST_CHECK;

/* Sets the redo point to an explicit lsn, under the same locks: the open of
 * a database (the redo point its replay started from) and tests. */
void wal_set_redo_point_at(wal *w, wd_lsn lsn);

/*
 * Tests: fn(arg, fpw_lsn) runs at the start of every wal_insert_fpw (and
 * wal_insert, with WAL_FPW_NONE) before anything is checked or reserved,
 * with no WAL lock held - exactly where a checkpoint may move the redo point
 * between a change's image decision and its insert; fn may call
 * wal_set_redo_point. Set it (NULL: none) while no insert runs.
 */
typedef void (*wal_insert_hook)(void *arg, wd_lsn fpw_lsn);
void wal_set_insert_hook(wal *w, wal_insert_hook fn, void *arg);

/* Writes (to the OS, no fdatasync) every record starting at or before lsn.
 * Errors: WD_ENOSPC (the disk is full: nothing lost, the log stays usable
 * and a later call retries), WD_EPANIC (a write failed otherwise, or an
 * fdatasync failed, now or before). */
int wal_write_to(wal *w, wd_lsn lsn) WD_MUST_CHECK;

/*
 * Makes every record starting at or before lsn durable (group commit: one
 * caller leads and fdatasyncs for all waiting ones, after commit_delay when
 * at least commit_siblings other transactions are active; with
 * commit_siblings 0, always, as PostgreSQL). Never waits for an insert that
 * is stalled for disk space (README I10): with a full disk it returns
 * WD_ENOSPC. Errors: as wal_write_to; a failed fdatasync panics the log
 * (this and every later call: WD_EPANIC, and nothing more is ever
 * acknowledged, I8).
 */
int wal_flush_to(wal *w, wd_lsn lsn) WD_MUST_CHECK;

/*
 * The commit of the transaction whose COMMIT record is at commit_lsn.
 * synchronous: returns once it is durable (wal_flush_to). Otherwise returns
 * at once; the WAL writer makes it durable within 3 x writer_delay_ms (it is
 * woken as PostgreSQL's XLogSetAsyncXactLSN does; the bound assumes a disk
 * with space and preparing one segment taking less than a writer_delay).
 * Errors: wal_flush_to's.
 */
int wal_commit(wal *w, wd_lsn commit_lsn, bool synchronous) WD_MUST_CHECK;

/* commit_siblings: fn(arg) returns the number of active transactions
 * other than the caller's. Set before the log is shared. */
void wal_set_active_fn(wal *w, int (*fn)(void *arg), void *arg);

/* Where the next record will start (the end of all reserved space). */
wd_lsn wal_insert_pos(wal *w);
/* Every record ending at or below this is durable / written to the OS. */
wd_lsn wal_flushed_lsn(wal *w);
wd_lsn wal_written_lsn(wal *w);
/* true once an fdatasync (or a write with EIO) failed: reopen to recover. */
bool wal_is_panicked(wal *w);

/*
 * Puts the log in its sticky panic state (cause and the current detail
 * kept): every later insert and flush fails with WD_EPANIC and nothing more
 * reaches the disk. The log does it itself after a failed write or fsync;
 * the database does it when it panics for a reason of its own (a failed
 * control-file fsync, a rollback that cannot finish), so that nothing
 * logged after the panic can become durable. Any lock but the log's own
 * may be held. Returns WD_EPANIC.
 */
int wal_panic(wal *w, int cause);

/*
 * Recycles (wal_recycle, while fewer than recycle_max future segments are
 * prepared) or removes every segment wholly before lsn's segment and before
 * the flushed position, fsyncing the directory after each. Checkpoints call
 * it with their redo point. With an archive_dir, each of those segments is
 * first archived (README P7, I12), in order; a segment that could not be
 * archived, and every later one, is kept, and the archiving error is
 * returned after the segments below it were retired (the next call
 * retries). Errors: storage errors (nothing half done: a segment is either
 * renamed or not), the archive's (WD_EIO, WD_ENOSPC, WD_EEXIST: a
 * different file of the segment's name is in the archive), WD_EPANIC.
 */
int wal_remove_segments_before(wal *w, wd_lsn lsn) WD_MUST_CHECK;

/*
 * Checks that dir (an archive_dir setting; NULL or "" is "no archive" and
 * fine) is an existing directory this process may write: WD_ENOENT,
 * WD_EINVAL (not a directory), WD_EACCES, naming it. wal_open calls it;
 * wd_open calls it before it creates anything.
 */
int wal_archive_check_dir(const char *dir) WD_MUST_CHECK;

/* The bufmgr WAL-before-data hook: bufmgr_set_wal_hook(pool,
 * wal_bufmgr_hook, w). Flushes the WAL up to the page's LSN. */
int wal_bufmgr_hook(void *w, wd_lsn upto);

/*
 * The WAL writer's flush rule (PostgreSQL's XLogBackgroundFlush, README P4
 * steps 2-4) at time now_ns; *did_work says whether there was WAL to write.
 * Errors: those of wal_write_to / wal_flush_to (WD_ENOSPC, WD_EPANIC).
 */
int wal_writer_step(wal *w, uint64_t now_ns, bool *did_work) WD_MUST_CHECK;

/*
 * One whole cycle of the writer thread's loop (README P4 steps 2-5):
 * wal_writer_step first, then at most one segment prepared ahead (P5), so
 * preparing never delays a flush by more than one segment. *did_work: WAL
 * was written or a segment prepared. The writer thread calls it; tests that
 * set no_writer_thread call it (and wal_writer_step) with a fake clock.
 * Errors: wal_writer_step's (a preparation failure is remembered and
 * retried next cycle, except a failed fsync, which panics the log).
 */
int wal_writer_cycle(wal *w, uint64_t now_ns, bool *did_work) WD_MUST_CHECK;

/*
 * Tests: true while the writer thread waits in a hibernation sleep with no
 * wake-up pending, i.e. only a wake-up (wal_commit's, an insert's) or the
 * end of that sleep will make it run again. false without a writer thread.
 */
bool wal_writer_hibernating(wal *w);

/* Counters since open (README.md, "Statistics"). */
typedef struct wal_counters {
	uint64_t records, bytes;     /* inserted (bytes: aligned sizes) */
	uint64_t buffer_waits;       /* inserts that waited for buffer space */
	uint64_t insert_stalls;      /* ... that stalled: the disk was full */
	uint64_t writes, write_bytes; /* storage_write calls and bytes */
	uint64_t fsyncs;             /* fdatasyncs of segments */
	uint64_t commit_delays;      /* leaders that slept commit_delay */
	uint64_t flush_requests;     /* wal_flush_to calls that had to wait */
	uint64_t leader_flushes;     /* flushes done by a committer as leader */
	uint64_t followers;          /* requests served by another's flush */
	uint64_t max_group;          /* most requests one flush released */
	uint64_t async_commits, async_wakeups;
	uint64_t writer_cycles;      /* wal_writer_step calls */
	uint64_t writer_idle;        /* ... that found nothing to write */
	uint64_t writer_writes;      /* ... that only wrote */
	uint64_t writer_flushes;     /* ... that flushed */
	uint64_t hibernations;       /* times the writer went to hibernate */
	uint64_t segs_created, segs_recycled, segs_removed;
	uint64_t segs_prepared_inline; /* prepared by a writer of WAL, not ahead */
	uint64_t fpw_retries;        /* wal_insert_fpw refusals (I11) */
	uint64_t segs_archived;      /* segments copied into the archive (P7) */
	uint64_t segs_archive_found; /* ... found there already, identical */
	uint64_t archive_failures;   /* archiving attempts that failed */
} wal_counters;

void wal_stats(wal *w, wal_counters *out);

#endif /* WALDEN_WAL_H */
