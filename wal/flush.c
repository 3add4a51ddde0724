/*
 * flush.c - writing the WAL buffers to the segment files and making them
 * durable: the write lock, group commit (leader and followers), commit,
 * and the panic state. Entry points: wal_write_to, wal_flush_to,
 * wal_commit, wal_write_upto, wal_flush_upto, wal_flushed_lsn,
 * wal_is_panicked (README.insert.md, protocols P2 and P3).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Enters the sticky panic state after a failed fdatasync or WAL write
 * (DESIGN.md section 3; never retried, I8), keeping the first failure's
 * detail, and wakes every waiting committer. Returns WD_EPANIC. */
static int enter_panic(wal *w, int cause)
{
	pthread_mutex_lock(&w->flush_mx);
	if (!atomic_load(&w->panicked))
		snprintf(w->panic_msg, sizeof w->panic_msg, "%s (%s)", wd_last_error(),
			 wd_strerror(cause));
	atomic_store(&w->panicked, true);
	pthread_cond_broadcast(&w->flush_cv);
	pthread_mutex_unlock(&w->flush_mx);
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

/* fdatasync of the segment being written, if it was written since its last
 * sync. Write lock held. A failure panics (I8). */
static int sync_locked(wal *w)
{
	int rc;
	if (!w->wfile || !w->wdirty)
		return 0;
	storage_crash_point("wal-after-write");
	if ((rc = storage_sync(w->wfile)) != 0)
		return enter_panic(w, rc);
	w->wdirty = false;
	stat_add(&w->st_fsyncs, 1);
	return 0;
}

/* Closes the segment being written (it must be clean). Write lock held or
 * the log closing. */
void wal_close_file(wal *w)
{
	if (w->wfile && storage_close(w->wfile) != 0)
		TRACE(TR_WAL, "close of segment %llu failed", (unsigned long long)w->wsegno);
	w->wfile = NULL;
}

/* Makes segment segno the one being written: a finished segment is synced
 * before it is closed, as PostgreSQL's XLogWrite does, so that a flush
 * only ever has to sync the current file. Write lock held. */
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
 * their file offset (two writes if they wrap the buffer). Write lock held. */
static int write_piece(wal *w, wd_lsn from, wd_lsn to)
{
	uint64_t off = from & (w->buf_size - 1), len = to - from;
	uint64_t first = len < w->buf_size - off ? len : w->buf_size - off;
	uint64_t foff = from % w->seg_size;
	int rc;
	storage_crash_point("wal-before-write");
	rc = storage_write(w->wfile, w->buf + off, first, foff);
	if (rc == 0 && len > first)
		rc = storage_write(w->wfile, w->buf, len - first, foff + first);
	if (rc != 0)
		return rc == WD_ENOSPC ? rc : enter_panic(w, rc);
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
 * (nothing lost; the write can be retried), WD_EPANIC.
 */
static int write_locked(wal *w, wd_lsn target)
{
	wd_lsn from = atomic_load(&w->written);
	int rc;
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
			return rc;
		atomic_store_explicit(&w->written, to, memory_order_release);
		from = to;
	}
	return 0;
}

/*
 * Writes (no fdatasync) every copied byte below target. target need not be
 * a record boundary (an inserter making buffer room asks for its own
 * progress). Errors: WD_ENOSPC, WD_EPANIC.
 */
int wal_write_upto(wal *w, wd_lsn target)
{
	int rc = 0;
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	if (atomic_load(&w->written) >= target)
		return 0;
	wal_wait_for_inserts(w, target); /* never under the write lock (I6) */
	pthread_mutex_lock(&w->write_mx);
	if (atomic_load(&w->written) < target)
		rc = write_locked(w, target);
	pthread_mutex_unlock(&w->write_mx);
	return rc;
}

/* PostgreSQL's commit_delay: wait before flushing if enough other
 * transactions are active to make a bigger group likely. */
static void commit_delay(wal *w)
{
	struct timespec ts;
	if (w->o.commit_delay_us == 0 || !w->active_fn ||
	    w->active_fn(w->active_arg) < (int)w->o.commit_siblings)
		return;
	ts.tv_sec = w->o.commit_delay_us / 1000000;
	ts.tv_nsec = (long)(w->o.commit_delay_us % 1000000) * 1000;
	nanosleep(&ts, NULL);
}

/*
 * The leader's flush (P3 steps 3-6): after the optional commit delay, take
 * the whole reserved position as the target (so that everyone who inserted
 * meanwhile rides along), wait for those inserts, write, fdatasync,
 * publish. Not under flush_mx.
 */
static int lead_flush(wal *w, bool delay)
{
	wd_lsn target;
	int rc = 0;
	if (delay)
		commit_delay(w);                        /* step 3 */
	target = wal_reserved_end(w);                   /* step 4 */
	wal_wait_for_inserts(w, target);
	pthread_mutex_lock(&w->write_mx);
	if (atomic_load(&w->flushed) < target) {
		if ((rc = write_locked(w, target)) == 0 && /* step 5 */
		    (rc = sync_locked(w)) == 0) {
			storage_crash_point("wal-after-flush");
			atomic_store(&w->flushed, target); /* step 6: durable */
		}
	}
	pthread_mutex_unlock(&w->write_mx);
	if (rc == 0) {
		TRACE(TR_WAL, "flush upto=" LSN_FMT, LSN_ARGS(target));
		if (w->o.on_flush)
			w->o.on_flush(w->o.on_flush_arg, target, wal_now_ns());
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
	rc = lead_flush(w, delay);
	pthread_mutex_lock(&w->flush_mx);
	w->flushing = false;                                 /* step 7 */
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
	if (synchronous)
		return wal_flush_upto(w, goal_for(w, commit_lsn), true);
	async_commit(w, goal_for(w, commit_lsn));
	return 0;
}
