/*
 * insert.c - putting records into the WAL buffers: space reservation, the
 * insertion slots, the copy into the circular buffer, and waiting for
 * in-progress inserts. Entry points: wal_insert, wal_insert_pos,
 * wal_reserved_end, wal_wait_for_inserts (README.insert.md, protocol P1).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <time.h>

#include "storage/bytes.h"
#include "storage/trace.h"
#include "wal/record.h"
#include "wal/wal_internal.h"

#define SPIN_TRIES 64

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Sets every slot idle and the waiting machinery up. */
void wal_insert_init(wal *w)
{
	for (unsigned i = 0; i < WAL_NSLOTS; i++) {
		pthread_mutex_init(&w->slots[i].lock, NULL);
		atomic_init(&w->slots[i].inserting_at, WAL_SLOT_FREE);
		atomic_init(&w->slots[i].records, 0);
	}
	pthread_mutex_init(&w->ins_mx, NULL);
	pthread_cond_init(&w->ins_cv, NULL);
	atomic_init(&w->ins_waiters, 0);
}

void wal_insert_destroy(wal *w)
{
	for (unsigned i = 0; i < WAL_NSLOTS; i++)
		pthread_mutex_destroy(&w->slots[i].lock);
	pthread_mutex_destroy(&w->ins_mx);
	pthread_cond_destroy(&w->ins_cv);
}

/* The end of all space reserved so far (a record boundary, end-LSN form). */
wd_lsn wal_reserved_end(wal *w)
{
	return wal_end_lsn(atomic_load(&w->reserved), w->seg_size);
}

wd_lsn wal_insert_pos(wal *w)
{
	return wal_lsn_from_usable(atomic_load(&w->reserved), w->seg_size);
}

/* Publishes a slot's progress and wakes anyone waiting for it. The store is
 * sequentially consistent so that either a waiter that registered sees the
 * new value, or we see the waiter and broadcast (I3). */
static void slot_advertise(wal *w, struct wal_slot *s, uint64_t at)
{
	atomic_store(&s->inserting_at, at);
	if (atomic_load(&w->ins_waiters) > 0) {
		pthread_mutex_lock(&w->ins_mx);
		pthread_cond_broadcast(&w->ins_cv);
		pthread_mutex_unlock(&w->ins_mx);
	}
}

/* Waits until slot s has nothing uncopied below upto: spins briefly (the
 * copy is usually a few hundred bytes), then sleeps on ins_cv. */
static void slot_wait(wal *w, struct wal_slot *s, wd_lsn upto)
{
	for (int i = 0; i < SPIN_TRIES; i++) {
		if (atomic_load_explicit(&s->inserting_at, memory_order_acquire) >= upto)
			return;
		cpu_relax();
	}
	pthread_mutex_lock(&w->ins_mx);
	atomic_fetch_add(&w->ins_waiters, 1);
	while (atomic_load(&s->inserting_at) < upto) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000 * 1000; /* belt and braces */
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->ins_cv, &w->ins_mx, &ts);
	}
	atomic_fetch_sub(&w->ins_waiters, 1);
	pthread_mutex_unlock(&w->ins_mx);
}

/*
 * Returns once every byte below upto that has been reserved is copied into
 * the buffers (PostgreSQL's WaitXLogInsertionsToFinish). The caller must
 * hold no slot whose progress is below upto, and must not hold the write
 * lock (an inserter waiting for buffer space takes it; I6).
 */
void wal_wait_for_inserts(wal *w, wd_lsn upto)
{
	for (unsigned i = 0; i < WAL_NSLOTS; i++)
		slot_wait(w, &w->slots[i], upto);
}

/* Picks this thread's slot: a per-thread choice spreads inserters over the
 * slots; a thread keeps its slot (good for its cache). */
static struct wal_slot *slot_acquire(wal *w)
{
	static _Atomic unsigned next_slot;
	static __thread unsigned mine = UINT32_MAX;
	struct wal_slot *s;
	if (mine == UINT32_MAX)
		mine = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
	s = &w->slots[mine % WAL_NSLOTS];
	pthread_mutex_lock(&s->lock);
	/* step 1: promise nothing yet; must precede the reservation (I3) */
	atomic_store(&s->inserting_at, 0);
	return s;
}

static void slot_release(wal *w, struct wal_slot *s)
{
	atomic_store_explicit(&s->records, relaxed_get(&s->records) + 1,
			      memory_order_relaxed);
	slot_advertise(w, s, WAL_SLOT_FREE); /* step 5 */
	pthread_mutex_unlock(&s->lock);
}

/*
 * Makes buffer room for LSNs below end: the bytes that lived there must be
 * written out first (I4). Advertises our progress `at` so that the write
 * does not wait for us, then writes up to it. A full disk (ENOSPC) is
 * retried with a growing pause: our space is reserved and must be filled,
 * or every later record would be lost behind a hole. Returns 0 or
 * WD_EPANIC.
 */
static int make_room(wal *w, struct wal_slot *s, wd_lsn at, wd_lsn end)
{
	unsigned pause_ms = 1;
	stat_add(&w->st_buffer_waits, 1);
	slot_advertise(w, s, at);
	while (atomic_load_explicit(&w->written, memory_order_acquire) + w->buf_size < end) {
		int rc = wal_write_upto(w, at);
		if (rc == WD_EPANIC || atomic_load(&w->panicked))
			return WD_EPANIC;
		if (rc != 0) {
			struct timespec ts = {0, (long)pause_ms * 1000000};
			nanosleep(&ts, NULL);
			pause_ms = pause_ms < 100 ? pause_ms * 2 : 100;
		}
	}
	return 0;
}

/* Copies len bytes (src NULL: zeroes) to LSN lsn of the circular buffer,
 * splitting at the wrap. Precondition: room was made (I4). */
static void buf_put(wal *w, wd_lsn lsn, const uint8_t *src, uint64_t len)
{
	uint64_t off = lsn & (w->buf_size - 1);
	uint64_t first = len < w->buf_size - off ? len : w->buf_size - off;
	if (src) {
		memcpy(w->buf + off, src, first);
		memcpy(w->buf, src + first, len - first);
	} else {
		memset(w->buf + off, 0, first);
		memset(w->buf, 0, len - first);
	}
}

/*
 * Copies the record (len bytes, then zero padding up to alen) into the
 * buffers at usable position pos: piece by piece, never across a segment
 * header (which is not in the buffers) and never more than half the buffer
 * at once, making room when the buffer is full (step 4).
 */
static int copy_record(wal *w, struct wal_slot *s, uint64_t pos, const uint8_t *rec,
		       uint32_t len, uint32_t alen)
{
	uint64_t done = 0, max_chunk = w->buf_size / 2;
	while (done < alen) {
		wd_lsn at = wal_lsn_from_usable(pos + done, w->seg_size);
		uint64_t n = w->seg_size - at % w->seg_size;
		int rc;
		if (n > alen - done)
			n = alen - done;
		if (n > max_chunk)
			n = max_chunk;
		if (atomic_load_explicit(&w->written, memory_order_acquire) + w->buf_size <
		    at + n) {
			if ((rc = make_room(w, s, at, at + n)) != 0)
				return rc;
		}
		if (done < len) {
			uint64_t data = n < len - done ? n : len - done;
			buf_put(w, at, rec + done, data);
			buf_put(w, at + data, NULL, n - data);
		} else {
			buf_put(w, at, NULL, n);
		}
		done += n;
	}
	return 0;
}

/* Validates the arguments of wal_insert. */
static int insert_check(wal *w, const uint8_t *rec, uint32_t len)
{
	if (atomic_load_explicit(&w->panicked, memory_order_relaxed))
		return wal_panic_error(w);
	if (!rec || len < WAL_REC_HEADER_SIZE || len > WAL_MAX_RECORD_SIZE)
		return err_set(WD_EINVAL, "wal_insert: bad record length %u", len);
	if (get_le32(rec + WRH_TOT_LEN) != len)
		return err_set(WD_EINVAL, "wal_insert: record tot_len %u but %u bytes given",
			       get_le32(rec + WRH_TOT_LEN), len);
	return 0;
}

/*
 * Appends one record (README protocol P1). The reservation is one atomic
 * add on the usable-byte position, so inserters serialise only there; the
 * stamp (CRC) and the copy run in parallel in their own slots.
 */
int wal_insert(wal *w, uint8_t *rec, uint32_t len, wd_lsn *lsn)
{
	uint32_t alen = wal_align(len);
	struct wal_slot *s;
	uint64_t pos;
	wd_lsn start, end;
	int rc;

	if ((rc = insert_check(w, rec, len)) != 0)
		return rc;
	s = slot_acquire(w);                                /* step 1 */
	pos = atomic_fetch_add(&w->reserved, alen);         /* step 2 */
	start = wal_lsn_from_usable(pos, w->seg_size);
	end = wal_end_lsn(pos + alen, w->seg_size);
	walrec_stamp(rec, len, start);                      /* step 3 */
	rc = copy_record(w, s, pos, rec, len, alen);        /* step 4 */
	slot_release(w, s);                                 /* step 5 */
	if (rc != 0)
		return rc == WD_EPANIC ? wal_panic_error(w) : rc;
	TRACE(TR_WAL, "insert lsn=" LSN_FMT " len=%u rmgr=%u type=%u", LSN_ARGS(start), len,
	      rec[WRH_RMGR], rec[WRH_TYPE]);
	/* step 6: entering a new segment: let the writer prepare the next */
	if (wal_segno(start, w->seg_size) != wal_segno(end - 1, w->seg_size) ||
	    start % w->seg_size == WAL_SEG_HEADER_SIZE)
		wal_writer_wake(w);
	*lsn = start;
	return 0;
}
