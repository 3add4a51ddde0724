/*
 * wal_internal.h - the WAL's shared state, for the files of wal/ only
 * (insert.c, flush.c, writer.c, segment.c, archive.c, wal.c). Map,
 * invariants and protocols: wal/README.md ("Invariants", "Protocols").
 */
#ifndef WALDEN_WAL_INTERNAL_H
#define WALDEN_WAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "storage/storage.h"
#include "wal/format.h"
#include "wal/wal.h"

#define WAL_NSLOTS 8u               /* insertion slots (PostgreSQL: 8) */
#define WAL_SLOT_FREE UINT64_MAX    /* inserting_at of an unused slot */
#define WAL_BLCKSZ 8192u            /* PostgreSQL's XLOG_BLCKSZ, for the
				     * async-commit wake-up rule only */
#define WAL_LOOPS_UNTIL_HIBERNATE 50u /* default writer_hibernate_loops */
#define WAL_HIBERNATE_FACTOR 25u      /* default writer_hibernate_factor */
#define WAL_STALL_PAUSE_MAX_MS 100u   /* a stalled inserter's longest retry pause */
#define WAL_MIN_BUFFERS (64u * 1024)
#define WAL_TMP_SEG "segment.tmp"

/*
 * One insertion slot (PostgreSQL's WAL insertion lock). An inserter holds
 * `lock` from before its reservation until its record is copied, and
 * advertises in inserting_at how far it got (I3): 0 = "reserved, nothing
 * promised yet", an LSN p = "no byte of mine below p is still uncopied",
 * WAL_SLOT_FREE = idle. Padded to its own cache line.
 *
 * Stalls (I10): an inserter that needs buffer room while the disk is full
 * cannot give its reserved space back, so it waits, "stalled", for space.
 * stall_seq is odd while it is stalled; rec_start (its record's start,
 * end-LSN form), inserting_at and stall_written (`written` when the stall
 * began) do not change while it is odd, so a reader that sees the same odd
 * stall_seq before and after reading them has one consistent snapshot
 * (a seqlock). The slot is *blocked* while it is stalled and `written` is
 * still stall_written: no write has succeeded since, so it cannot go on,
 * and waiters stop at its inserting_at instead of waiting for it.
 */
struct wal_slot {
	pthread_mutex_t lock;
	_Atomic uint64_t inserting_at;
	_Atomic uint64_t rec_start;     /* end-LSN form; valid while inserting */
	_Atomic uint64_t stall_seq;     /* odd: stalled for disk space */
	_Atomic uint64_t stall_written; /* `written` when the stall began */
	_Atomic uint64_t records;       /* inserted through this slot (stats) */
} __attribute__((aligned(64)));

struct wal {
	char *dbdir, *waldir;
	wal_opts o;
	uint32_t seg_size;
	uint32_t crc_seed;  /* wal_crc_seed(o.db_id): format-2 record CRCs */
	uint64_t buf_size;  /* power of two */
	uint8_t *buf;       /* byte at LSN x is buf[x & (buf_size - 1)] (I4) */
	/* The redo point (I11): read-mostly, on the configuration's lines and
	 * not beside `reserved`, so the one load per insert stays a cache hit.
	 * Stored only by redo_point_store, holding every slot's lock. */
	_Atomic uint64_t redo_point;
	wal_insert_hook insert_hook; /* tests; set before the log is shared */
	void *insert_hook_arg;

	/* ---- insertion (insert.c) ---- */
	_Atomic uint64_t reserved __attribute__((aligned(64))); /* usable bytes */
	struct wal_slot slots[WAL_NSLOTS];
	pthread_mutex_t ins_mx;        /* waiters for inserting_at progress */
	pthread_cond_t ins_cv;         /* also: `written` moved, for stalls */
	_Atomic int ins_waiters;
	_Atomic int stalled_slots;     /* slots stalled for disk space (I10) */

	/* ---- writing and flushing (flush.c) ---- */
	_Atomic uint64_t written __attribute__((aligned(64))); /* end-LSN form */
	_Atomic uint64_t flushed;      /* a record boundary (I5) */
	_Atomic bool panicked;         /* set under flush_mx, never cleared */
	_Atomic bool disk_full;        /* the last WAL write failed: ENOSPC */
	pthread_mutex_t write_mx;      /* the write lock: files, `written` */
	st_file *wfile;                /* segment being written, or NULL */
	uint64_t wsegno;
	bool wdirty;                   /* wfile written since its last sync */
	pthread_mutex_t flush_mx;      /* group commit */
	pthread_cond_t flush_cv;
	bool flushing;                 /* a leader is flushing */
	/* `flushed` is stored only under write_mx and flush_mx, after checking
	 * `panicked` (I8). Lock order: a slot's lock (all eight in index
	 * order, only in wal_set_redo_point, I11), write_mx, seg_mx, then
	 * flush_mx or ins_mx (both leaves). */
	uint64_t group;                /* requests waiting on this flush */
	char panic_msg[256];
	int (*active_fn)(void *);
	void *active_arg;

	/* ---- segments (segment.c) ---- */
	pthread_mutex_t seg_mx;        /* preparing, recycling, removing */
	_Atomic uint64_t prepared_upto; /* segments up to this one exist */

	/* ---- archiving (archive.c, P7) ---- */
	char *archive_dir;             /* canonical path; NULL: no archiving */
	pthread_mutex_t arch_mx;       /* one segment archived at a time */
	_Atomic uint64_t archived_next; /* every segment below it that is in
					 * DIR/wal is durable in the archive
					 * (I12); moved only under arch_mx */
	pthread_t archiver;
	_Atomic bool archiver_running; /* read by flushing threads */
	pthread_mutex_t archiver_mx;
	pthread_cond_t archiver_cv;
	_Atomic bool archiver_stop;    /* set under archiver_mx */
	_Atomic bool archiver_wake;    /* a wake-up is pending */

	/* ---- the WAL writer (writer.c) ---- */
	pthread_t writer;
	bool writer_running;
	pthread_mutex_t writer_mx;
	pthread_cond_t writer_cv;
	bool writer_stop;
	bool writer_in_sleep;          /* in writer_sleep's wait (writer_mx) */
	bool writer_in_hibernation;    /* ... a hibernation sleep (writer_mx) */
	_Atomic bool writer_wake;      /* a wake-up is pending */
	_Atomic bool writer_sleeping;  /* hibernating (PostgreSQL's flag) */
	_Atomic uint64_t async_lsn;    /* latest async commit's target */
	uint64_t last_flush_ns;        /* writer's own last flush; 0: never */
	int prepare_error;             /* last failure preparing ahead */

	/* ---- statistics ---- */
	_Atomic uint64_t st_buffer_waits, st_insert_stalls, st_writes, st_write_bytes,
		st_fsyncs, st_commit_delays;
	_Atomic uint64_t st_flush_requests, st_leader_flushes, st_followers,
		st_max_group;
	_Atomic uint64_t st_async_commits, st_async_wakeups;
	_Atomic uint64_t st_writer_cycles, st_writer_idle, st_writer_writes,
		st_writer_flushes, st_hibernations;
	_Atomic uint64_t st_segs_created, st_segs_recycled, st_segs_removed,
		st_segs_inline;
	_Atomic uint64_t st_fpw_retries;
	_Atomic uint64_t st_segs_archived, st_archive_found, st_archive_failures;
	uint64_t start_reserved; /* `reserved` at open, for stats.bytes */
};

/* ---- position helpers -------------------------------------------------- */

/* The LSN just past usable byte pos - 1: a record ending at usable
 * position pos ends at this LSN. At a segment boundary this is the
 * boundary itself (not the next segment's first record byte), so that
 * end positions compare correctly with start LSNs (I5). */
static inline wd_lsn wal_end_lsn(uint64_t pos, uint32_t seg_size)
{
	uint64_t u = wal_seg_usable(seg_size);
	if (pos > 0 && pos % u == 0)
		return (pos / u) * seg_size;
	return wal_lsn_from_usable(pos, seg_size);
}

static inline uint64_t relaxed_get(_Atomic uint64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

static inline void stat_add(_Atomic uint64_t *a, uint64_t n)
{
	atomic_fetch_add_explicit(a, n, memory_order_relaxed);
}

static inline void stat_max(_Atomic uint64_t *a, uint64_t v)
{
	uint64_t cur = relaxed_get(a);
	while (v > cur && !atomic_compare_exchange_weak_explicit(
				  a, &cur, v, memory_order_relaxed, memory_order_relaxed))
		;
}

uint64_t wal_now_ns(void);

/* Initialises cv to time out on CLOCK_MONOTONIC, and fills *ts with the
 * CLOCK_MONOTONIC time ms milliseconds from now, for pthread_cond_timedwait
 * on such a condition variable (a wall-clock jump never stretches a wait). */
void wal_cond_init_monotonic(pthread_cond_t *cv);
void wal_deadline_ms(struct timespec *ts, uint64_t ms);

/* insert.c */
void wal_insert_init(wal *w);
void wal_insert_destroy(wal *w);
wd_lsn wal_reserved_end(wal *w);
wd_lsn wal_wait_for_inserts(wal *w, wd_lsn upto, wd_lsn *boundary);
void wal_wake_stalled(wal *w);

/* flush.c */
void wal_flush_init(wal *w);
void wal_flush_destroy(wal *w);
int wal_panic_error(wal *w);
int wal_write_round(wal *w, wd_lsn target, wd_lsn *reached) WD_MUST_CHECK;
int wal_write_upto(wal *w, wd_lsn target) WD_MUST_CHECK;
int wal_flush_upto(wal *w, wd_lsn goal, bool leader_delay) WD_MUST_CHECK;
void wal_close_file(wal *w);

/* segment.c */
int wal_seg_prepare(wal *w, uint64_t segno, bool inline_) WD_MUST_CHECK;
int wal_seg_prepare_through(wal *w, uint64_t segno, bool inline_) WD_MUST_CHECK;
int wal_seg_open_for_write(wal *w, uint64_t segno, st_file **out) WD_MUST_CHECK;
int wal_seg_start(wal *w, wd_lsn start_lsn) WD_MUST_CHECK;
int wal_seg_create_dir(const char *dbdir, const char *waldir) WD_MUST_CHECK;
bool wal_seg_prepare_next(wal *w, uint64_t need);

/* archive.c */
int wal_archive_init(wal *w) WD_MUST_CHECK;
int wal_archive_start(wal *w) WD_MUST_CHECK;
void wal_archive_stop(wal *w);
void wal_archive_destroy(wal *w);
int wal_archive_upto(wal *w, uint64_t upto) WD_MUST_CHECK;
void wal_archive_notify(wal *w, wd_lsn flushed);

/* writer.c */
int wal_writer_start(wal *w) WD_MUST_CHECK;
void wal_writer_stop(wal *w);
void wal_writer_wake(wal *w);

#endif
