/*
 * insert.c - putting records into the WAL buffers: space reservation, the
 * insertion slots, the full-page-image recheck against the redo point, the
 * copy into the circular buffer, stalls for disk space, and waiting for
 * in-progress inserts. Entry points: wal_insert, wal_insert_fpw,
 * wal_set_redo_point(_at), wal_redo_point, wal_insert_pos, wal_reserved_end,
 * wal_wait_for_inserts, wal_wake_stalled (wal/README.md, protocol P1,
 * invariants I3, I6, I10, I11).
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
		atomic_init(&w->slots[i].rec_start, 0);
		atomic_init(&w->slots[i].stall_seq, 0);
		atomic_init(&w->slots[i].stall_written, 0);
		atomic_init(&w->slots[i].records, 0);
	}
	atomic_init(&w->redo_point, 0);
	pthread_mutex_init(&w->ins_mx, NULL);
	wal_cond_init_monotonic(&w->ins_cv);
	atomic_init(&w->ins_waiters, 0);
	atomic_init(&w->stalled_slots, 0);
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

/* Wakes everyone sleeping on ins_cv (waiters for slot progress, stalled
 * inserters). */
static void ins_broadcast(wal *w)
{
	pthread_mutex_lock(&w->ins_mx);
	pthread_cond_broadcast(&w->ins_cv);
	pthread_mutex_unlock(&w->ins_mx);
}

/* Publishes a slot's progress and wakes anyone waiting for it. The store is
 * sequentially consistent so that either a waiter that registered sees the
 * new value, or we see the waiter and broadcast (I3). */
static void slot_advertise(wal *w, struct wal_slot *s, uint64_t at)
{
	atomic_store(&s->inserting_at, at);
	if (atomic_load(&w->ins_waiters) > 0)
		ins_broadcast(w);
}

/* Called after `written` moved (flush.c, write lock held): a stalled
 * inserter may have room now, and its slot is no longer blocked (I10). The
 * caller's store of `written` is sequentially consistent, as is the
 * stalled_slots increment of a stalling inserter, so one of the two sees
 * the other. */
void wal_wake_stalled(wal *w)
{
	if (atomic_load(&w->stalled_slots) > 0)
		ins_broadcast(w);
}

/*
 * Whether slot s is blocked (I10): stalled for disk space with no write
 * succeeded since. If so, *at and *start receive its advertised progress and
 * its record's start from one consistent snapshot (the stall_seq seqlock).
 */
static bool slot_blocked(wal *w, struct wal_slot *s, wd_lsn *at, wd_lsn *start)
{
	uint64_t seq = atomic_load(&s->stall_seq), sw;
	if (!(seq & 1))
		return false;
	*at = atomic_load(&s->inserting_at);
	*start = atomic_load(&s->rec_start);
	sw = atomic_load(&s->stall_written);
	return atomic_load(&s->stall_seq) == seq && sw == atomic_load(&w->written) &&
	       *at != 0 && *start <= *at;
}

/*
 * Waits until slot s has nothing uncopied below upto, or is blocked (I10):
 * spins briefly (the copy is usually a few hundred bytes), then sleeps on
 * ins_cv. Returns how far the slot lets a write go: upto, or the blocked
 * slot's progress (and then lowers *boundary to its record's start).
 */
static wd_lsn slot_wait(wal *w, struct wal_slot *s, wd_lsn upto, wd_lsn *boundary)
{
	wd_lsn at = upto, start = 0;
	bool blocked = false;
	for (int i = 0; i < SPIN_TRIES; i++) {
		if (atomic_load_explicit(&s->inserting_at, memory_order_acquire) >= upto)
			return upto;
		cpu_relax();
	}
	pthread_mutex_lock(&w->ins_mx);
	atomic_fetch_add(&w->ins_waiters, 1);
	while (atomic_load(&s->inserting_at) < upto) {
		struct timespec ts;
		if ((blocked = slot_blocked(w, s, &at, &start)))
			break;
		wal_deadline_ms(&ts, 10); /* belt and braces */
		pthread_cond_timedwait(&w->ins_cv, &w->ins_mx, &ts);
	}
	atomic_fetch_sub(&w->ins_waiters, 1);
	pthread_mutex_unlock(&w->ins_mx);
	if (!blocked)
		return upto;
	if (boundary && start < *boundary)
		*boundary = start;
	return at < upto ? at : upto;
}

/*
 * Returns once every byte below upto that has been reserved is copied into
 * the buffers (PostgreSQL's WaitXLogInsertionsToFinish), except behind an
 * insert stalled for disk space (I10): then returns the lowest such slot's
 * progress, below which every byte is copied. *boundary (optional; the
 * caller sets it to upto, a record boundary) is lowered to the start of the
 * lowest blocked record, so that it stays a record boundary with every
 * record ending at or below it copied (I5). The caller must hold no slot
 * whose progress is below upto, and must not hold the write lock (an
 * inserter waiting for buffer space takes it; I6).
 */
wd_lsn wal_wait_for_inserts(wal *w, wd_lsn upto, wd_lsn *boundary)
{
	wd_lsn limit = upto;
	for (unsigned i = 0; i < WAL_NSLOTS; i++) {
		wd_lsn l = slot_wait(w, &w->slots[i], upto, boundary);
		if (l < limit)
			limit = l;
	}
	return limit;
}

/*
 * Steps 1 and 2a: picks this thread's slot (a per-thread choice spreads
 * inserters over the slots; a thread keeps its slot, good for its cache),
 * locks it, and rechecks the caller's image decision (I11): NULL, with
 * nothing held, if the redo point has passed fpw_lsn since. The load needs
 * no ordering of its own: wal_set_redo_point stores the redo point holding
 * this lock, so the lock orders the two.
 */
static struct wal_slot *slot_acquire(wal *w, wd_lsn fpw_lsn)
{
	static _Atomic unsigned next_slot;
	static __thread unsigned mine = UINT32_MAX;
	struct wal_slot *s;
	if (mine == UINT32_MAX)
		mine = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
	s = &w->slots[mine % WAL_NSLOTS];
	pthread_mutex_lock(&s->lock);
	/* step 2a: a page changed without an image, last changed before the
	 * redo point, would need one now */
	if (fpw_lsn < atomic_load_explicit(&w->redo_point, memory_order_relaxed)) {
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	/* step 1: promise nothing yet; must precede the reservation (I3) */
	atomic_store(&s->inserting_at, 0);
	return s;
}

/*
 * Stores the redo point (I11): lsn, or with lsn NULL the insert position,
 * read while every slot's lock is held - that is, between reservations:
 * no inserter is between its recheck (step 2a) and its reservation (step
 * 2). Locks are taken in index order, the only place more than one slot
 * is held (wal_internal.h, lock order). Returns the redo point stored.
 */
static wd_lsn redo_point_store(wal *w, const wd_lsn *lsn)
{
	wd_lsn redo;
	for (unsigned i = 0; i < WAL_NSLOTS; i++)
		pthread_mutex_lock(&w->slots[i].lock);
	redo = lsn ? *lsn : wal_insert_pos(w);
	atomic_store_explicit(&w->redo_point, redo, memory_order_release);
	for (unsigned i = WAL_NSLOTS; i-- > 0;)
		pthread_mutex_unlock(&w->slots[i].lock);
	TRACE(TR_WAL, "redo point " LSN_FMT, LSN_ARGS(redo));
	return redo;
}

int wal_set_redo_point(wal *w, wd_lsn *redo)
{
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	*redo = redo_point_store(w, NULL);
	return 0;
}

void wal_set_redo_point_at(wal *w, wd_lsn lsn)
{
	(void)redo_point_store(w, &lsn);
}

wd_lsn wal_redo_point(wal *w)
{
	return atomic_load_explicit(&w->redo_point, memory_order_acquire);
}

void wal_set_insert_hook(wal *w, wal_insert_hook fn, void *arg)
{
	w->insert_hook = fn;
	w->insert_hook_arg = arg;
}

/* Step 5: frees the slot; counts the record only if it went in (ok). */
static void slot_release(wal *w, struct wal_slot *s, bool ok)
{
	if (ok)
		atomic_store_explicit(&s->records, relaxed_get(&s->records) + 1,
				      memory_order_relaxed);
	slot_advertise(w, s, WAL_SLOT_FREE);
	pthread_mutex_unlock(&s->lock);
}

/* Marks slot s stalled for disk space, blocked while `written` stays at
 * seen (I10), and wakes waiters so that they stop waiting for it. A slot
 * already stalled gets a new stall_written (the seqlock goes even, then odd
 * again). */
static void slot_stall(wal *w, struct wal_slot *s, wd_lsn seen)
{
	if (atomic_load(&s->stall_seq) & 1)
		atomic_fetch_add(&s->stall_seq, 1);
	else
		atomic_fetch_add(&w->stalled_slots, 1);
	atomic_store(&s->stall_written, seen);
	atomic_fetch_add(&s->stall_seq, 1); /* odd: stalled */
	ins_broadcast(w);
}

static void slot_unstall(wal *w, struct wal_slot *s)
{
	if (atomic_load(&s->stall_seq) & 1) {
		atomic_fetch_add(&s->stall_seq, 1);
		atomic_fetch_sub(&w->stalled_slots, 1);
	}
}

/* A stalled inserter's pause: until `written` moves away from seen (a write
 * went through: there may be space), the log panics, or ms pass. */
static void stall_pause(wal *w, wd_lsn seen, unsigned ms)
{
	struct timespec ts;
	wal_deadline_ms(&ts, ms);
	pthread_mutex_lock(&w->ins_mx);
	if (atomic_load(&w->written) == seen && !atomic_load(&w->panicked))
		pthread_cond_timedwait(&w->ins_cv, &w->ins_mx, &ts);
	pthread_mutex_unlock(&w->ins_mx);
}

/*
 * Makes buffer room for LSNs below end (P1 step 4): the bytes that lived
 * there must be written out first (I4). Advertises our progress `at` so
 * that the write does not wait for us, then writes up to it. If no write
 * goes through (the disk is full, or an insert below us is stalled), the
 * slot stalls (I10): waiters stop at `at` instead of waiting for us, and we
 * retry after a pause that doubles up to WAL_STALL_PAUSE_MAX_MS, or at once
 * when someone's write moves `written`. We never give up while the log is
 * usable: our space is reserved, and a hole would end the log there (R-I2),
 * losing every later record. Returns 0 or WD_EPANIC.
 */
static int make_room(wal *w, struct wal_slot *s, wd_lsn at, wd_lsn end)
{
	unsigned pause_ms = 1;
	bool counted = false;
	int rc = 0, wrc;
	stat_add(&w->st_buffer_waits, 1);
	slot_advertise(w, s, at);
	for (;;) {
		wd_lsn seen = atomic_load(&w->written), reached;
		if (seen + w->buf_size >= end)
			break;
		wrc = wal_write_round(w, at, &reached);
		if (wrc == WD_EPANIC || atomic_load(&w->panicked)) {
			rc = WD_EPANIC;
			break;
		}
		if (atomic_load(&w->written) != seen)
			continue; /* progress: look again */
		if (!counted) {
			stat_add(&w->st_insert_stalls, 1);
			TRACE(TR_WAL, "insert stalled at " LSN_FMT ": %s", LSN_ARGS(at),
			      wrc ? wd_strerror(wrc) : "an insert below is stalled");
			counted = true;
		}
		slot_stall(w, s, seen);
		stall_pause(w, seen, pause_ms);
		pause_ms = pause_ms * 2 < WAL_STALL_PAUSE_MAX_MS ? pause_ms * 2
								 : WAL_STALL_PAUSE_MAX_MS;
	}
	slot_unstall(w, s);
	return rc;
}

/* Copies len bytes (src NULL: zeroes) to LSN lsn of the circular buffer,
 * splitting at the wrap. Precondition: room was made (I4). */
static void buf_put(wal *w, wd_lsn lsn, const uint8_t *src, uint64_t len)
{
	uint64_t off = lsn & (w->buf_size - 1);
	uint64_t first = len < w->buf_size - off ? len : w->buf_size - off;
	/* the second piece (past the wrap) and padding are usually empty */
	if (src) {
		memcpy(w->buf + off, src, first);
		if (len > first)
			memcpy(w->buf, src + first, len - first);
	} else if (len > 0) {
		memset(w->buf + off, 0, first);
		if (len > first)
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
		uint64_t n = w->seg_size - wal_seg_offset(at, w->seg_size);
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

/*
 * While the disk is known to be full (the last WAL write failed with
 * ENOSPC), an insert that would need buffer room fails before it reserves
 * anything (I10): it first tries to write out what is copied, and returns
 * that write's WD_ENOSPC. Called holding no slot (I6).
 */
static int room_check(wal *w, uint32_t alen)
{
	uint64_t pos = atomic_load(&w->reserved);
	wd_lsn reached;
	int rc;
	if (atomic_load(&w->written) + w->buf_size >= wal_end_lsn(pos + alen, w->seg_size))
		return 0;
	rc = wal_write_round(w, wal_end_lsn(pos, w->seg_size), &reached);
	if (rc == WD_ENOSPC)
		return err_set(WD_ENOSPC, "wal_insert: no space for WAL (%s)", wd_last_error());
	return rc;
}

/* Validates the arguments of wal_insert and checks for a full disk. */
static int insert_check(wal *w, const uint8_t *rec, uint32_t len)
{
	if (atomic_load_explicit(&w->panicked, memory_order_relaxed))
		return wal_panic_error(w);
	if (!rec || len < WAL_REC_HEADER_SIZE || len > WAL_MAX_RECORD_SIZE)
		return err_set(WD_EINVAL, "wal_insert: bad record length %u", len);
	if (get_le32(rec + WRH_TOT_LEN) != len)
		return err_set(WD_EINVAL, "wal_insert: record tot_len %u but %u bytes given",
			       get_le32(rec + WRH_TOT_LEN), len);
	if (atomic_load_explicit(&w->disk_full, memory_order_relaxed))
		return room_check(w, wal_align(len));
	return 0;
}

/*
 * Appends one record (README protocol P1). The reservation is one atomic
 * add on the usable-byte position, so inserters serialise only there; the
 * stamp (CRC) and the copy run in parallel in their own slots. The recheck
 * (step 2a, I11) is one load under the slot's lock, which the inserter
 * holds anyway: no extra lock per insert.
 */
int wal_insert_fpw(wal *w, uint8_t *rec, uint32_t len, wd_lsn fpw_lsn, wd_lsn *lsn)
{
	uint32_t alen = wal_align(len);
	struct wal_slot *s;
	uint64_t pos;
	wd_lsn start, end;
	int rc;

	if (w->insert_hook)
		w->insert_hook(w->insert_hook_arg, fpw_lsn);
	if ((rc = insert_check(w, rec, len)) != 0)
		return rc;
	if (!(s = slot_acquire(w, fpw_lsn))) {              /* steps 1, 2a */
		stat_add(&w->st_fpw_retries, 1);
		TRACE(TR_WAL, "insert refused: page LSN " LSN_FMT " before the redo point, "
		      "rebuild with an image", LSN_ARGS(fpw_lsn));
		return WAL_INSERT_RETRY;
	}
	pos = atomic_fetch_add(&w->reserved, alen);         /* step 2 */
	start = wal_lsn_from_usable(pos, w->seg_size);
	end = wal_end_lsn(pos + alen, w->seg_size);
	atomic_store_explicit(&s->rec_start, wal_end_lsn(pos, w->seg_size),
			      memory_order_relaxed); /* read after a stall (I10) */
	/* step 3; the horizon is read after the reservation, so it is at
	 * most what was durable before any byte of this record is written
	 * (R-I4) */
	walrec_stamp_db(rec, len, start, w->crc_seed, atomic_load(&w->flushed));
	rc = copy_record(w, s, pos, rec, len, alen);        /* step 4 */
	slot_release(w, s, rc == 0);                        /* step 5 */
	if (rc != 0)
		return rc == WD_EPANIC ? wal_panic_error(w) : rc;
	TRACE(TR_WAL, "insert lsn=" LSN_FMT " len=%u rmgr=%u type=%u", LSN_ARGS(start), len,
	      rec[WRH_RMGR], rec[WRH_TYPE]);
	/* step 6: entering a new segment: let the writer prepare the next */
	if (wal_segno(start, w->seg_size) != wal_segno(end - 1, w->seg_size) ||
	    wal_seg_offset(start, w->seg_size) == WAL_SEG_HEADER_SIZE)
		wal_writer_wake(w);
	*lsn = start;
	return 0;
}

int wal_insert(wal *w, uint8_t *rec, uint32_t len, wd_lsn *lsn)
{
	return wal_insert_fpw(w, rec, len, WAL_FPW_NONE, lsn);
}
