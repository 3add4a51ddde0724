/*
 * writer.c - the WAL writer thread: PostgreSQL's WalWriterMain loop around
 * XLogBackgroundFlush (wal_writer_step), hibernation, wake-ups from
 * asynchronous commits, and preparing the next segment ahead of use.
 * Entry points: wal_writer_step, wal_writer_start/stop/wake
 * (README.insert.md, protocol P4).
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

/*
 * One cycle (PostgreSQL's XLogBackgroundFlush, README P4 steps 2-4): take
 * the end of all reserved WAL as the write request (it covers the latest
 * async commit); nothing to do if it is flushed. Flush if flush_after is 0,
 * on the first call, when at least writer_delay has passed since the
 * writer's last flush, or when at least flush_after bytes are unflushed;
 * otherwise only write to the OS. Not thread-safe against itself: the
 * writer thread, or a test with no_writer_thread, calls it.
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
		w->last_flush_ns = now_ns;
		stat_add(&w->st_writer_flushes, 1);
		rc = wal_flush_upto(w, target, false);
	} else {
		stat_add(&w->st_writer_writes, 1);
		rc = wal_write_upto(w, target);                     /* step 4 */
	}
	*did_work = true;
	return rc;
}

/* Keeps prepare_ahead segments past the insert position prepared, so that
 * no committer pays for creating a file (P5). A failure (a full disk) is
 * remembered and retried next cycle; the write path then prepares inline. */
static void prepare_ahead(wal *w)
{
	uint64_t need = wal_segno(wal_insert_pos(w), w->seg_size) + w->o.prepare_ahead;
	int rc;
	if (atomic_load(&w->prepared_upto) >= need)
		return;
	rc = wal_seg_prepare_through(w, need, false);
	if (rc != 0)
		TRACE(TR_WAL, "writer: preparing segment %llu failed: %s",
		      (unsigned long long)need, wd_strerror(rc));
	w->prepare_error = rc;
}

/* Sleeps up to ms milliseconds or until woken or stopped. writer_mx held. */
static void writer_sleep(wal *w, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	if (!atomic_load(&w->writer_wake) && !w->writer_stop)
		pthread_cond_timedwait(&w->writer_cv, &w->writer_mx, &ts);
}

/*
 * PostgreSQL's WalWriterMain (P4): reset the wake flag, prepare ahead, do
 * one cycle; after WAL_LOOPS_UNTIL_HIBERNATE idle cycles advertise
 * hibernation (so that an async commit wakes us) and sleep 25x longer.
 */
static void *writer_main(void *arg)
{
	wal *w = arg;
	unsigned left = WAL_LOOPS_UNTIL_HIBERNATE;
	bool hibernating = false, did;

	pthread_mutex_lock(&w->writer_mx);
	while (!w->writer_stop) {
		atomic_store(&w->writer_wake, false);              /* step 1 */
		pthread_mutex_unlock(&w->writer_mx);
		prepare_ahead(w);
		if (wal_writer_step(w, wal_now_ns(), &did) != 0)
			did = false; /* panicked or disk full: the callers see it */
		if (did)
			left = WAL_LOOPS_UNTIL_HIBERNATE;
		else if (left > 0)
			left--;
		if (hibernating != (left <= 1)) {                   /* step 5 */
			hibernating = left <= 1;
			atomic_store(&w->writer_sleeping, hibernating);
			if (hibernating)
				stat_add(&w->st_hibernations, 1);
		}
		pthread_mutex_lock(&w->writer_mx);
		writer_sleep(w, (uint64_t)w->o.writer_delay_ms *
					(left > 0 ? 1 : WAL_HIBERNATE_FACTOR));
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
	pthread_cond_init(&w->writer_cv, NULL);
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
