/*
 * writer.c - the WAL writer thread: PostgreSQL's WalWriterMain loop around
 * XLogBackgroundFlush (wal_writer_step), hibernation, wake-ups from
 * asynchronous commits, and preparing the next segment ahead of use (after
 * the flush, one segment per cycle). Entry points: wal_writer_step,
 * wal_writer_cycle, wal_writer_hibernating, wal_writer_start/stop/wake,
 * wal_now_ns, wal_cond_init_monotonic, wal_deadline_ms (wal/README.md,
 * protocol P4).
 */
#define _GNU_SOURCE
#include <time.h>

#include "storage/trace.h"
#include "wal/wal_internal.h"

uint64_t wal_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void wal_cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

void wal_deadline_ms(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/*
 * The flush rule (PostgreSQL's XLogBackgroundFlush, README P4 steps 2-4):
 * take the end of all reserved WAL as the write request (it covers the
 * latest async commit); nothing to do if it is flushed. Flush if
 * flush_after is 0, on the first call, when at least writer_delay has
 * passed since the writer's last successful flush, or when at least
 * flush_after bytes are unflushed; otherwise only write to the OS. Not
 * thread-safe against itself: the writer thread, or a test with
 * no_writer_thread, calls it.
 */
int wal_writer_step(wal *w, uint64_t now_ns, bool *did_work)
{
	uint64_t delay_ns = (uint64_t)w->o.writer_delay_ms * 1000000u;
	wd_lsn target, flushed;
	int rc;

	*did_work = false;
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	stat_add(&w->st_writer_cycles, 1);
	target = wal_reserved_end(w);                               /* step 2 */
	flushed = atomic_load(&w->flushed);
	if (target <= flushed) {
		stat_add(&w->st_writer_idle, 1);
		return 0;
	}
	if (w->o.writer_flush_after_bytes == 0 || w->last_flush_ns == 0 ||  /* step 3 */
	    now_ns - w->last_flush_ns >= delay_ns ||
	    target - flushed >= w->o.writer_flush_after_bytes) {
		stat_add(&w->st_writer_flushes, 1);
		if ((rc = wal_flush_upto(w, target, false)) == 0)
			w->last_flush_ns = now_ns; /* only a flush that happened */
	} else {
		stat_add(&w->st_writer_writes, 1);
		rc = wal_write_upto(w, target);                     /* step 4 */
	}
	*did_work = true;
	return rc;
}

/*
 * Keeps prepare_ahead segments past the insert position prepared, so that
 * no committer pays for creating a file (P5), one segment per call so that
 * a flush is never held up by more than one segment's preparation. A
 * failure (a full disk) is remembered and retried next cycle; the write
 * path then prepares inline. Returns true if a segment was prepared and
 * more are still wanted.
 */
static bool prepare_ahead(wal *w, bool *prepared)
{
	uint64_t need = wal_segno(wal_insert_pos(w), w->seg_size) + w->o.prepare_ahead;
	*prepared = false;
	if (atomic_load(&w->prepared_upto) >= need)
		return false;
	*prepared = wal_seg_prepare_next(w, need);
	return *prepared && atomic_load(&w->prepared_upto) < need;
}

/* One cycle (P4 steps 2-4, then P5): flush first, then prepare. *more: a
 * segment was prepared and more are wanted (the loop goes on at once). */
static int writer_cycle(wal *w, uint64_t now_ns, bool *did_work, bool *more)
{
	bool prepared;
	int rc = wal_writer_step(w, now_ns, did_work);
	*more = false;
	if (rc == WD_EPANIC || atomic_load(&w->panicked))
		return rc ? rc : wal_panic_error(w);
	*more = prepare_ahead(w, &prepared);
	if (prepared)
		*did_work = true;
	return rc;
}

int wal_writer_cycle(wal *w, uint64_t now_ns, bool *did_work)
{
	bool more;
	return writer_cycle(w, now_ns, did_work, &more);
}

/* Sleeps up to ms milliseconds or until woken or stopped. writer_mx held.
 * hibernation: this is a hibernation sleep (wal_writer_hibernating). */
static void writer_sleep(wal *w, uint64_t ms, bool hibernation)
{
	struct timespec ts;
	wal_deadline_ms(&ts, ms);
	if (!atomic_load(&w->writer_wake) && !w->writer_stop) {
		w->writer_in_sleep = true;
		w->writer_in_hibernation = hibernation;
		pthread_cond_timedwait(&w->writer_cv, &w->writer_mx, &ts);
		w->writer_in_sleep = w->writer_in_hibernation = false;
	}
}

bool wal_writer_hibernating(wal *w)
{
	bool r;
	if (!w->writer_running)
		return false;
	pthread_mutex_lock(&w->writer_mx);
	r = w->writer_in_sleep && w->writer_in_hibernation && !atomic_load(&w->writer_wake);
	pthread_mutex_unlock(&w->writer_mx);
	return r;
}

/*
 * PostgreSQL's WalWriterMain (P4): reset the wake flag, do one cycle (flush,
 * then prepare); after writer_hibernate_loops idle cycles advertise
 * hibernation (so that an async commit wakes us) and sleep
 * writer_hibernate_factor times longer.
 */
static void *writer_main(void *arg)
{
	wal *w = arg;
	unsigned loops = w->o.writer_hibernate_loops, left = loops;
	bool hibernating = false, did, more;

	pthread_mutex_lock(&w->writer_mx);
	while (!w->writer_stop) {
		atomic_store(&w->writer_wake, false);              /* step 1 */
		pthread_mutex_unlock(&w->writer_mx);
		/* the two points bracket a cycle that went through: a crash
		 * test learns from them that the writer ran (crashtest/README.md,
		 * the async rule), so the first comes before the cycle reads the
		 * clock, and a failed cycle does not reach the second */
		storage_crash_point("wal-writer-before-cycle");
		if (writer_cycle(w, wal_now_ns(), &did, &more) != 0)
			did = false; /* panicked or disk full: the callers see it */
		else
			storage_crash_point("wal-writer-after-cycle");
		if (did)
			left = loops;
		else if (left > 0)
			left--;
		if (hibernating != (left <= 1)) {                   /* step 5 */
			hibernating = left <= 1;
			atomic_store(&w->writer_sleeping, hibernating);
			if (hibernating)
				stat_add(&w->st_hibernations, 1);
		}
		pthread_mutex_lock(&w->writer_mx);
		if (!more)
			writer_sleep(w, (uint64_t)w->o.writer_delay_ms *
						(left > 0 ? 1 : w->o.writer_hibernate_factor),
				     left == 0);
	}
	pthread_mutex_unlock(&w->writer_mx);
	return NULL;
}

/* Wakes the writer (PostgreSQL's SetLatch): cheap when a wake-up is
 * already pending. */
void wal_writer_wake(wal *w)
{
	if (!w->writer_running || atomic_exchange(&w->writer_wake, true))
		return;
	pthread_mutex_lock(&w->writer_mx);
	pthread_cond_signal(&w->writer_cv);
	pthread_mutex_unlock(&w->writer_mx);
}

int wal_writer_start(wal *w)
{
	int e;
	pthread_mutex_init(&w->writer_mx, NULL);
	wal_cond_init_monotonic(&w->writer_cv);
	if (w->o.no_writer_thread)
		return 0;
	if ((e = pthread_create(&w->writer, NULL, writer_main, w)) != 0)
		return err_errno(e, "WAL: cannot start the WAL writer thread");
	w->writer_running = true;
	return 0;
}

/* Stops and joins the writer thread (if any). */
void wal_writer_stop(wal *w)
{
	if (w->writer_running) {
		pthread_mutex_lock(&w->writer_mx);
		w->writer_stop = true;
		pthread_cond_signal(&w->writer_cv);
		pthread_mutex_unlock(&w->writer_mx);
		pthread_join(w->writer, NULL);
		w->writer_running = false;
	}
	pthread_mutex_destroy(&w->writer_mx);
	pthread_cond_destroy(&w->writer_cv);
}
