/*
 * flush.c - writing the WAL buffers to the segment files and making them
 * durable: the write lock, group commit (leader and followers), commit,
 * and the panic state. Entry points: wal_write_to, wal_flush_to,
 * wal_commit, wal_write_round, wal_write_upto, wal_flush_upto, wal_panic,
 * wal_flushed_lsn, wal_is_panicked (wal/README.md, protocols P2 and P3,
 * invariants I4, I5, I8, I10).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/plant.h"
#include "storage/trace.h"
#include "wal/wal_internal.h"

void wal_flush_init(wal *w)
{
	pthread_mutex_init(&w->write_mx, NULL);
	pthread_mutex_init(&w->flush_mx, NULL);
	pthread_cond_init(&w->flush_cv, NULL);
}

void wal_flush_destroy(wal *w)
{
	pthread_mutex_destroy(&w->write_mx);
	pthread_mutex_destroy(&w->flush_mx);
	pthread_cond_destroy(&w->flush_cv);
}

/* The error every call returns once the log is panicked, with the first
 * failure's detail. */
int wal_panic_error(wal *w)
{
	int rc;
	pthread_mutex_lock(&w->flush_mx);
	rc = err_set(WD_EPANIC, "WAL is in the panic state (reopen to recover): %s",
		     w->panic_msg);
	pthread_mutex_unlock(&w->flush_mx);
	return rc;
}

/*
 * Enters the sticky panic state after a failed fdatasync (of a segment, a
 * new segment's file or the WAL directory) or a WAL write failing other
 * than with ENOSPC (DESIGN.md section 3; never retried, I8), keeping the
 * first failure's detail, and wakes every waiting committer and stalled
 * inserter. `panicked` is set under flush_mx, where `flushed` is published,
 * so no flush publishes after it (I8). Any lock but flush_mx and ins_mx may
 * be held. Returns WD_EPANIC.
 */
int wal_panic(wal *w, int cause)
{
	pthread_mutex_lock(&w->flush_mx);
	if (!atomic_load(&w->panicked))
		snprintf(w->panic_msg, sizeof w->panic_msg, "%s (%s)", wd_last_error(),
			 wd_strerror(cause));
	atomic_store(&w->panicked, true);
	pthread_cond_broadcast(&w->flush_cv);
	pthread_mutex_unlock(&w->flush_mx);
	wal_wake_stalled(w);
	TRACE(TR_WAL, "panic: %s", w->panic_msg);
	return wal_panic_error(w);
}

bool wal_is_panicked(wal *w)
{
	return atomic_load(&w->panicked);
}

wd_lsn wal_flushed_lsn(wal *w)
{
	return atomic_load(&w->flushed);
}

wd_lsn wal_written_lsn(wal *w)
{
	return atomic_load(&w->written);
}

/* WD_EPANIC if the log is panicked. Checked under the write lock before
 * every write, fdatasync and publication of `flushed`: a thread that was
 * already on its way when another one panicked the log must not write,
 * sync (the failed file's pages may be gone, and a second fdatasync would
 * "succeed") or acknowledge anything (I8). */
static int panic_check(wal *w)
{
	return atomic_load(&w->panicked) ? wal_panic_error(w) : 0;
}

/* fdatasync of the segment being written, if it was written since its last
 * sync. Write lock held. A failure panics (I8), so a file whose sync failed
 * is never synced again. */
static int sync_locked(wal *w)
{
	int rc;
	if (!w->wfile || !w->wdirty)
		return 0;
	if ((rc = panic_check(w)) != 0)
		return rc;
	storage_crash_point("wal-after-write");
	rc = storage_sync(w->wfile);
	/* planted bug: a second fdatasync after a failed one "succeeds" on a
	 * page cache that already dropped the data; the right code panics */
	if (rc != 0 && WD_PLANTED("fsync-retry"))
		rc = storage_sync(w->wfile);
	if (rc != 0)
		return wal_panic(w, rc);
	w->wdirty = false;
	stat_add(&w->st_fsyncs, 1);
	return 0;
}

/* Closes the segment being written (it must be clean, or the log
 * panicked). Write lock held or the log closing. */
void wal_close_file(wal *w)
{
	if (w->wfile && storage_close(w->wfile) != 0)
		TRACE(TR_WAL, "close of segment %llu failed", (unsigned long long)w->wsegno);
	w->wfile = NULL;
}

/* Makes segment segno the one being written: a finished segment is synced
 * before it is closed, as PostgreSQL's XLogWrite does, so that a flush
 * only ever has to sync the current file. A missing segment is prepared
 * inline (P5; a failed fsync there panics). Write lock held. */
static int switch_segment(wal *w, uint64_t segno)
{
	int rc;
	if (w->wfile && w->wsegno == segno)
		return 0;
	if ((rc = sync_locked(w)) != 0)
		return rc;
	wal_close_file(w);
	if ((rc = wal_seg_open_for_write(w, segno, &w->wfile)) != 0)
		return rc;
	w->wsegno = segno;
	w->wdirty = false;
	return 0;
}

/* Writes the buffer bytes of LSNs [from, to), all in one segment, at
 * their file offset (two writes if they wrap the buffer). Write lock held.
 * ENOSPC is a clean error (I10); any other failure panics (I8). */
static int write_piece(wal *w, wd_lsn from, wd_lsn to)
{
	uint64_t off = from & (w->buf_size - 1), len = to - from;
	uint64_t first = len < w->buf_size - off ? len : w->buf_size - off;
	uint64_t foff = from % w->seg_size;
	int rc;
	if ((rc = panic_check(w)) != 0)
		return rc;
	storage_crash_point("wal-before-write");
	rc = storage_write(w->wfile, w->buf + off, first, foff);
	if (rc == 0 && len > first)
		rc = storage_write(w->wfile, w->buf, len - first, foff + first);
	if (rc != 0)
		return rc == WD_ENOSPC ? rc : wal_panic(w, rc);
	w->wdirty = true;
	stat_add(&w->st_writes, len > first ? 2 : 1);
	stat_add(&w->st_write_bytes, len);
	return 0;
}

/*
 * Writes [written, target) to the segment files, segment by segment,
 * skipping segment headers (written when the segment was prepared).
 * `written` advances after each piece, so inserters waiting for buffer
 * room go on as early as possible. Write lock held; every byte below
 * target is copied (the caller waited for inserts). Errors: WD_ENOSPC
 * (nothing lost; the write can be retried; disk_full stays set until a
 * write succeeds), WD_EPANIC, other errors of inline segment creation.
 */
static int write_locked(wal *w, wd_lsn target)
{
	wd_lsn from = atomic_load(&w->written);
	int rc = 0;
	while (from < target) {
		uint64_t segno = from / w->seg_size;
		wd_lsn seg_end = (segno + 1) * w->seg_size, to;
		if (from % w->seg_size < WAL_SEG_HEADER_SIZE) {
			from = segno * w->seg_size + WAL_SEG_HEADER_SIZE;
			if (from >= target)
				break;
		}
		to = target < seg_end ? target : seg_end;
		if ((rc = switch_segment(w, segno)) != 0 || (rc = write_piece(w, from, to)) != 0)
			break;
		atomic_store(&w->written, to); /* seq_cst: see wal_wake_stalled */
		atomic_store_explicit(&w->disk_full, false, memory_order_relaxed);
		wal_wake_stalled(w);
		from = to;
	}
	if (rc == WD_ENOSPC)
		atomic_store_explicit(&w->disk_full, true, memory_order_relaxed);
	return rc;
}

/*
 * One write attempt (P2): waits for the inserts below target, except
 * behind a stalled one (I10), and writes (no fdatasync) every byte that is
 * copied. *reached receives how far that is: target, or less behind a
 * stalled insert. Not under the write lock (I6). Errors: WD_ENOSPC,
 * WD_EPANIC.
 */
int wal_write_round(wal *w, wd_lsn target, wd_lsn *reached)
{
	int rc;
	*reached = wal_wait_for_inserts(w, target, NULL); /* never under the write lock (I6) */
	pthread_mutex_lock(&w->write_mx);
	if ((rc = panic_check(w)) == 0 && atomic_load(&w->written) < *reached)
		rc = write_locked(w, *reached);
	pthread_mutex_unlock(&w->write_mx);
	return rc;
}

/*
 * Writes (no fdatasync) every copied byte below target. target need not be
 * a record boundary. Behind an insert stalled for disk space, writes what
 * is copied and, if that went through (so the stalled inserter can go on),
 * tries again; never waits for a blocked insert (I10). Errors: WD_ENOSPC,
 * WD_EPANIC.
 */
int wal_write_upto(wal *w, wd_lsn target)
{
	for (;;) {
		wd_lsn reached;
		int rc;
		if (atomic_load(&w->panicked))
			return wal_panic_error(w);
		if (atomic_load(&w->written) >= target)
			return 0;
		if ((rc = wal_write_round(w, target, &reached)) != 0 || reached >= target)
			return rc;
	}
}

/* PostgreSQL's commit_delay: wait before flushing if at least
 * commit_siblings other transactions are active, making a bigger group
 * likely. As PostgreSQL's MinimumActiveBackends(0), commit_siblings 0
 * means always; otherwise the active-transaction callback must say so. */
static void commit_delay(wal *w)
{
	struct timespec ts;
	if (w->o.commit_delay_us == 0)
		return;
	if (w->o.commit_siblings > 0 &&
	    (!w->active_fn || w->active_fn(w->active_arg) < (int)w->o.commit_siblings))
		return;
	stat_add(&w->st_commit_delays, 1);
	ts.tv_sec = w->o.commit_delay_us / 1000000;
	ts.tv_nsec = (long)(w->o.commit_delay_us % 1000000) * 1000;
	nanosleep(&ts, NULL);
}

/*
 * P3 steps 5-6 under the write lock (flush_mx too, to publish): write up to
 * lim, fdatasync, and if the log is still not panicked, publish boundary
 * (<= lim, a record boundary whose records are all copied) as `flushed`.
 * Writes up to lim even when boundary is flushed already: that is what
 * lets an insert stalled at lim go on (I10). *published: flushed moved.
 */
static int flush_locked(wal *w, wd_lsn lim, wd_lsn boundary, bool *published)
{
	int rc = 0;
	*published = false;
	if ((rc = panic_check(w)) != 0)
		return rc;
	if (atomic_load(&w->written) < lim && (rc = write_locked(w, lim)) != 0)
		return rc;                                  /* step 5 */
	if (atomic_load(&w->flushed) >= boundary)
		return 0;
	if ((rc = sync_locked(w)) != 0)
		return rc;
	storage_crash_point("wal-after-flush");
	pthread_mutex_lock(&w->flush_mx);
	if (!atomic_load(&w->panicked)) {
		atomic_store(&w->flushed, boundary);        /* step 6: durable */
		*published = true;
	}
	pthread_mutex_unlock(&w->flush_mx);
	return *published ? 0 : wal_panic_error(w);
}

/*
 * The leader's flush (P3 steps 3-7): after the optional commit delay, take
 * the whole reserved position as the target (so that everyone who inserted
 * meanwhile rides along), wait for those inserts, write, fdatasync,
 * publish. Behind an insert stalled for disk space (I10), flushes the
 * records below it; if goal lies beyond, and the write went through (the
 * stalled insert can go on now), goes round again; a full disk ends it
 * with WD_ENOSPC. Not under flush_mx.
 */
static int lead_flush(wal *w, wd_lsn goal, bool delay)
{
	wd_lsn target;
	int rc = 0;
	if (delay)
		commit_delay(w);                            /* step 3 */
	target = wal_reserved_end(w);                       /* step 4 */
	for (;;) {
		wd_lsn boundary = target, lim;
		bool published;
		lim = wal_wait_for_inserts(w, target, &boundary);
		pthread_mutex_lock(&w->write_mx);
		rc = flush_locked(w, lim, boundary, &published);
		pthread_mutex_unlock(&w->write_mx);
		if (rc != 0)
			break;
		if (published) {                            /* step 6 */
			TRACE(TR_WAL, "flush upto=" LSN_FMT, LSN_ARGS(boundary));
			if (w->o.on_flush)
				w->o.on_flush(w->o.on_flush_arg, boundary, wal_now_ns());
			wal_archive_notify(w, boundary); /* a segment completed? (P7) */
		}
		if (atomic_load(&w->flushed) >= goal || boundary >= target)
			break;                              /* step 7 */
	}
	return rc;
}

/*
 * Group commit (P3): returns once flushed >= goal. The first caller to
 * find no flush in progress leads; the others wait on flush_cv and either
 * find their goal reached or lead the next flush. delay: apply
 * commit_delay/commit_siblings (committers; the WAL writer does not).
 */
int wal_flush_upto(wal *w, wd_lsn goal, bool delay)
{
	bool lead = false;
	uint64_t waiting;
	int rc = 0;
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	if (atomic_load(&w->flushed) >= goal)                /* step 1 */
		return 0;
	stat_add(&w->st_flush_requests, 1);
	pthread_mutex_lock(&w->flush_mx);
	w->group++;
	for (;;) {                                           /* step 2 */
		if (atomic_load(&w->panicked)) {
			rc = WD_EPANIC;
			break;
		}
		if (atomic_load(&w->flushed) >= goal) {
			stat_add(&w->st_followers, 1);
			break;
		}
		if (!w->flushing) {
			w->flushing = lead = true;
			break;
		}
		pthread_cond_wait(&w->flush_cv, &w->flush_mx);
	}
	w->group--;
	pthread_mutex_unlock(&w->flush_mx);
	if (!lead)
		return rc ? wal_panic_error(w) : 0;
	rc = lead_flush(w, goal, delay);
	pthread_mutex_lock(&w->flush_mx);
	w->flushing = false;                                 /* step 8 */
	waiting = w->group;
	pthread_cond_broadcast(&w->flush_cv);
	pthread_mutex_unlock(&w->flush_mx);
	stat_add(&w->st_leader_flushes, 1);
	stat_max(&w->st_max_group, waiting + 1);
	return rc;
}

/* The goal that makes every record starting at or before lsn durable:
 * past lsn (flushed positions are record boundaries, I5), but never past
 * what is reserved now. */
static wd_lsn goal_for(wal *w, wd_lsn lsn)
{
	wd_lsn end = wal_reserved_end(w);
	return lsn >= end ? end : lsn + 1;
}

int wal_write_to(wal *w, wd_lsn lsn)
{
	wd_lsn goal = goal_for(w, lsn);
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	if (atomic_load(&w->written) >= goal)
		return 0;
	return wal_write_upto(w, wal_reserved_end(w));
}

int wal_flush_to(wal *w, wd_lsn lsn)
{
	return wal_flush_upto(w, goal_for(w, lsn), true);
}

int wal_bufmgr_hook(void *w, wd_lsn upto)
{
	return wal_flush_to(w, upto);
}

/*
 * An asynchronous commit: PostgreSQL's XLogSetAsyncXactLSN. Raises the
 * async target; wakes the writer if it hibernates, or else if a whole
 * WAL_BLCKSZ block beyond the flushed position is waiting.
 */
static void async_commit(wal *w, wd_lsn target)
{
	uint64_t prev = atomic_load(&w->async_lsn);
	wd_lsn rq = target;
	stat_add(&w->st_async_commits, 1);
	while (prev < target && !atomic_compare_exchange_weak(&w->async_lsn, &prev, target))
		;
	if (target <= prev)
		return; /* someone asked for more already */
	if (!atomic_load(&w->writer_sleeping)) {
		rq -= rq % WAL_BLCKSZ;
		if (rq <= atomic_load(&w->flushed))
			return;
	}
	stat_add(&w->st_async_wakeups, 1);
	wal_writer_wake(w);
}

/* The commit point of a transaction: durable on return when synchronous
 * (P3), else handed to the WAL writer (P4). */
int wal_commit(wal *w, wd_lsn commit_lsn, bool synchronous)
{
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	/* planted bug: a synchronous commit acknowledged once its record is
	 * written to the OS, before the fdatasync the right code waits for */
	if (synchronous && WD_PLANTED("commit-no-fsync"))
		return wal_write_upto(w, goal_for(w, commit_lsn));
	if (synchronous)
		return wal_flush_upto(w, goal_for(w, commit_lsn), true);
	async_commit(w, goal_for(w, commit_lsn));
	return 0;
}
