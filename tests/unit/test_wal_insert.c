/*
 * test_wal_insert.c - the WAL's insertion and flush side: records at their
 * LSNs with valid CRCs across segments and buffer wraps, segment
 * preparation, recycling and removal, write vs flush under power loss,
 * fdatasync EIO panics (also for a leader already on its way, and for a new
 * segment's or the directory's fsync), ENOSPC is a clean error that never
 * hangs a committer, the WAL writer's PostgreSQL rules on a fake clock
 * (flush before preparing, the async timing rule), hibernation and the
 * async wake-up, async commits after a crash form a prefix covering every
 * reported flush, commit_delay, and reopening at the end of the log.
 * Interleavings between threads are forced (a parked leader, waiting for an
 * injected fault to fire), never hoped for; deadlines are >= 10 s.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/wal.h"

static char *root, *db;

static int setup(void **state)
{
	(void)state;
	root = tu_tmpdir("walins");
	db = tu_path(root, "db");
	assert_int_equal(storage_mkdir(db), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	storage_fault_clear();
	tu_rmrf(root);
	free(root);
	free(db);
	return 0;
}

/* Inserts one record of (tid, seq) with pad bytes; returns its LSN. */
static wd_lsn put(wal *w, wal_rec_builder *b, uint32_t tid, uint64_t seq, uint32_t pad)
{
	uint8_t *rec;
	uint32_t len;
	wd_lsn lsn = 0;
	tw_record(b, tid, seq, pad, &rec, &len);
	assert_int_equal(wal_insert(w, rec, len, &lsn), 0);
	return lsn;
}

static bool seg_exists(uint64_t segno)
{
	char path[4096];
	assert_int_equal(wal_seg_path(path, sizeof path, db, segno), 0);
	return storage_exists(path);
}

/* Records of many sizes, some bigger than the buffers and a segment, read
 * back at the LSNs wal_insert gave, in order, with good CRCs. */
static void test_insert_read_back(void **state)
{
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	wd_lsn lsns[600], end;
	tw_rec *r;
	size_t n;
	bool clean;
	uint64_t seed = 1;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	for (uint64_t i = 0; i < 600; i++) {
		uint32_t pad = (uint32_t)(tu_rand(&seed) % 700);
		if (i % 97 == 5)
			pad = 100000 + (uint32_t)i; /* > buffers, spans segments */
		lsns[i] = put(w, &b, 1, i, pad);
		assert_true(i == 0 || lsns[i] > lsns[i - 1]);
		assert_int_equal(lsns[i] % 8, 0);
	}
	assert_true(lsns[0] == WAL_SEG_HEADER_SIZE);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	assert_int_equal(n, 600);
	for (size_t i = 0; i < n; i++) {
		assert_true(r[i].lsn == lsns[i]);
		assert_int_equal(r[i].seq, i);
		assert_true(r[i].pad_ok);
	}
	assert_true(clean);
	assert_true(wal_segno(end, o.segment_size) >= 10);
	free(r);
	walrec_free(&b);
}

/* Reopening at the end found by wal_find_end continues the log; a stale
 * tail written after the end is erased first. */
static void test_reopen_continues(void **state)
{
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	wd_lsn end, end2, l;
	tw_rec *r;
	size_t n;
	bool clean;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	for (int i = 0; i < 100; i++)
		put(w, &b, 1, (uint64_t)i, 300);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(wal_find_end(db, &o, WAL_SEG_HEADER_SIZE, &end), 0);
	assert_int_equal(wal_open(db, &o, end, &w), 0);
	l = put(w, &b, 2, 0, 10);
	assert_true(l == end);
	assert_true(wal_insert_pos(w) > end);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end2, &clean), 0);
	assert_int_equal(n, 101);
	assert_int_equal(r[100].tid, 2);
	free(r);
	/* reopening before the last record (as if it had been lost): the
	 * stale record must be gone, not found after a shorter new one */
	assert_int_equal(wal_open(db, &o, l, &w), 0);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(wal_find_end(db, &o, WAL_SEG_HEADER_SIZE, &end2), 0);
	assert_true(end2 == l);
	walrec_free(&b);
}

/* The writer thread prepares the next segment before any insert reaches
 * it; old segments are recycled (renamed ahead) or removed, and the log
 * continues through recycled files. */
static void test_segments_prepare_recycle_remove(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st;
	wal_opts o;
	wal *w;
	wd_lsn l = 0, end, first;
	uint64_t limit, count = 0;
	tw_rec *r;
	size_t n;
	bool clean;
	(void)state;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 5;
	o.recycle_max = 2;
	assert_int_equal(wal_create(db, &o, &w), 0);
	put(w, &b, 1, 0, 100); /* wakes the writer: segment 0 entered */
	for (int i = 0; i < 2000 && !seg_exists(1); i++)
		usleep(5000);
	assert_true(seg_exists(1)); /* prepared ahead, before any use */
	for (uint64_t i = 1; wal_segno(wal_insert_pos(w), o.segment_size) < 5; i++)
		l = put(w, &b, 1, i, 1000);
	assert_int_equal(wal_flush_to(w, l), 0);
	limit = wal_segno(wal_flushed_lsn(w) - 1, o.segment_size);
	assert_true(limit >= 4);
	assert_int_equal(wal_remove_segments_before(w, wal_insert_pos(w)), 0);
	wal_stats(w, &st);
	assert_int_equal(st.segs_recycled + st.segs_removed, limit);
	{ /* recycled until recycle_max future segments exist, whatever the
	   * writer had prepared already */
		uint64_t cur = wal_segno(wal_insert_pos(w), o.segment_size);
		assert_true(st.segs_recycled >= 1 && st.segs_recycled <= 2);
		assert_true(seg_exists(cur + 1) && seg_exists(cur + 2));
		assert_false(seg_exists(cur + 3));
	}
	for (uint64_t s = 0; s < limit; s++)
		assert_false(seg_exists(s));
	assert_true(seg_exists(limit));
	/* write on through the recycled segments and read it all back */
	first = wal_insert_pos(w);
	for (uint64_t i = 0; wal_segno(wal_insert_pos(w), o.segment_size) < limit + 4; i++)
		l = put(w, &b, 2, i, 1000), count++;
	wal_stats(w, &st);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, first, &r, &n, &end, &clean), 0);
	assert_int_equal(n, count);
	assert_true(r[n - 1].lsn == l);
	assert_true(clean);
	free(r);
	/* without recycling, old segments are removed */
	o.recycle = false;
	assert_int_equal(wal_open(db, &o, end, &w), 0);
	assert_int_equal(wal_remove_segments_before(w, end), 0);
	wal_stats(w, &st);
	assert_true(st.segs_removed >= 4 && st.segs_recycled == 0);
	assert_false(seg_exists(4));
	assert_true(seg_exists(wal_segno(end, o.segment_size)));
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

struct pl_case {
	const char *journal;
	wd_lsn *out;          /* shared page: [0] flushed record, [1] last */
	int records_after;
};

/* Child: 50 records, flush_to the 50th, N more only written; killed. */
static void child_write_vs_flush(void *arg)
{
	struct pl_case *c = arg;
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	wd_lsn l = 0;
	tw_opts(&o);
	if (storage_sim_start(c->journal) != 0 || wal_create(db, &o, &w) != 0)
		_exit(1);
	for (int i = 0; i < 50; i++) {
		uint8_t *rec;
		uint32_t len;
		tw_record(&b, 1, (uint64_t)i, 200, &rec, &len);
		if (wal_insert(w, rec, len, &l) != 0)
			_exit(1);
	}
	if (wal_flush_to(w, l) != 0)
		_exit(1);
	c->out[0] = l;
	for (int i = 50; i < 50 + c->records_after; i++) {
		uint8_t *rec;
		uint32_t len;
		tw_record(&b, 1, (uint64_t)i, 200, &rec, &len);
		if (wal_insert(w, rec, len, &l) != 0)
			_exit(1);
	}
	if (wal_write_to(w, l) != 0)
		_exit(1);
	c->out[1] = l;
	storage_crash_arm("test-end", 1);
	storage_crash_point("test-end");
	_exit(1);
}

/* Flushed records survive a power loss that drops every unsynced write;
 * records only written do not (DROP_ALL) but do under KEEP_ALL. */
static void test_write_vs_flush_power_loss(void **state)
{
	wd_lsn *shared = tw_shared(2 * sizeof(wd_lsn));
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		char *journal = tu_path(root, mode ? "j1" : "j0");
		struct pl_case c = {journal, shared, 20};
		st_sim_opts so = {.mode = mode ? ST_SIM_KEEP_ALL : ST_SIM_DROP_ALL};
		wal_opts o;
		tw_rec *r;
		size_t n;
		wd_lsn end;
		bool clean;
		tu_rmrf(db);
		assert_int_equal(storage_mkdir(db), 0);
		assert_int_equal(storage_mkdir(journal), 0);
		assert_int_equal(tu_run_child(child_write_vs_flush, &c), ST_CRASH_EXIT_CODE);
		assert_int_equal(storage_sim_materialize(journal, &so, NULL), 0);
		tw_opts(&o);
		assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
		assert_int_equal(n, mode ? 70 : 50);
		assert_true(r[n - 1].lsn == (mode ? shared[1] : shared[0]));
		free(r);
		free(journal);
	}
	tw_shared_free(shared, 2 * sizeof(wd_lsn));
}

/* A failed fdatasync panics the log: that flush and every later call fail
 * with WD_EPANIC, and nothing more is acknowledged as flushed. */
static void test_fsync_eio_panics(void **state)
{
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	wd_lsn l, flushed;
	uint8_t *rec;
	uint32_t len;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	l = put(w, &b, 1, 0, 10);
	assert_int_equal(wal_flush_to(w, l), 0);
	flushed = wal_flushed_lsn(w);
	l = put(w, &b, 1, 1, 10);
	assert_int_equal(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, "/wal/"), 0);
	assert_int_equal(wal_commit(w, l, true), WD_EPANIC);
	assert_true(wal_is_panicked(w));
	assert_non_null(strstr(wd_last_error(), "panic"));
	assert_true(wal_flushed_lsn(w) == flushed);
	storage_fault_clear(); /* a later fsync would work: must not be tried */
	tw_record(&b, 1, 2, 10, &rec, &len);
	assert_int_equal(wal_insert(w, rec, len, &l), WD_EPANIC);
	assert_int_equal(wal_flush_to(w, l), WD_EPANIC);
	assert_int_equal(wal_write_to(w, l), WD_EPANIC);
	assert_int_equal(wal_commit(w, l, false), WD_EPANIC);
	assert_int_equal(wal_bufmgr_hook(w, l), WD_EPANIC);
	assert_true(wal_flushed_lsn(w) == flushed);
	assert_int_equal(wal_close(w), WD_EPANIC);
	walrec_free(&b);
}

/* A full disk while writing WAL is a clean error; once space returns the
 * same records are written and nothing is lost. */
static void test_enospc_write(void **state)
{
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	wd_lsn l = 0, end;
	tw_rec *r;
	size_t n;
	bool clean;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	for (int i = 0; i < 10; i++)
		l = put(w, &b, 1, (uint64_t)i, 100);
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 2, "/wal/"), 0);
	assert_int_equal(wal_flush_to(w, l), WD_ENOSPC);
	assert_false(wal_is_panicked(w));
	assert_true(wal_flushed_lsn(w) <= l);
	assert_int_equal(wal_write_to(w, l), WD_ENOSPC);
	assert_int_equal(wal_flush_to(w, l), 0);
	assert_true(wal_flushed_lsn(w) > l);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	assert_int_equal(n, 10);
	free(r);
	walrec_free(&b);
}

#define MS 1000000ull

/* The WAL writer's rules (PostgreSQL's XLogBackgroundFlush) on a fake
 * clock: first call flushes; below flush_after within the delay only
 * writes; flush_after bytes or the delay flush; nothing to do is idle. */
static void test_writer_rules(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st;
	wal_opts o;
	wal *w;
	bool did;
	uint64_t t = 1000 * MS, fs;
	(void)state;
	tw_opts(&o);
	o.writer_delay_ms = 200;
	o.writer_flush_after_bytes = 8192;
	assert_int_equal(wal_create(db, &o, &w), 0);
	assert_int_equal(wal_writer_step(w, t, &did), 0);
	assert_false(did); /* nothing inserted: idle */
	put(w, &b, 1, 0, 100);
	assert_int_equal(wal_writer_step(w, t, &did), 0); /* first: flush */
	assert_true(did);
	wal_stats(w, &st);
	assert_int_equal(st.writer_flushes, 1);
	fs = st.fsyncs;
	assert_int_equal(fs, 1);
	put(w, &b, 1, 1, 1000);
	assert_int_equal(wal_writer_step(w, t + 10 * MS, &did), 0); /* write only */
	assert_true(did);
	assert_true(wal_written_lsn(w) == wal_insert_pos(w));
	assert_true(wal_flushed_lsn(w) < wal_written_lsn(w));
	assert_int_equal(wal_writer_step(w, t + 20 * MS, &did), 0); /* still unflushed */
	assert_true(did);
	wal_stats(w, &st);
	assert_int_equal(st.writer_writes, 2);
	assert_int_equal(st.fsyncs, fs);
	put(w, &b, 1, 2, 9000);                       /* >= flush_after */
	assert_int_equal(wal_writer_step(w, t + 30 * MS, &did), 0);
	wal_stats(w, &st);
	assert_int_equal(st.writer_flushes, 2);
	assert_int_equal(st.fsyncs, fs + 1);
	assert_true(wal_flushed_lsn(w) == wal_written_lsn(w));
	put(w, &b, 1, 3, 10);
	assert_int_equal(wal_writer_step(w, t + 229 * MS, &did), 0); /* 199 ms: write */
	wal_stats(w, &st);
	assert_int_equal(st.writer_flushes, 2);
	assert_int_equal(wal_writer_step(w, t + 230 * MS, &did), 0); /* 200 ms: flush */
	wal_stats(w, &st);
	assert_int_equal(st.writer_flushes, 3);
	assert_int_equal(st.fsyncs, fs + 2);
	assert_int_equal(wal_writer_step(w, t + 231 * MS, &did), 0);
	assert_false(did);
	wal_stats(w, &st);
	assert_int_equal(st.writer_idle, 2);
	assert_int_equal(wal_close(w), 0);
	/* flush_after 0: every cycle with WAL flushes */
	o.writer_flush_after_bytes = 0;
	assert_int_equal(wal_find_end(db, &o, WAL_SEG_HEADER_SIZE, &t), 0);
	assert_int_equal(wal_open(db, &o, t, &w), 0);
	for (int i = 0; i < 3; i++) {
		put(w, &b, 2, (uint64_t)i, 10);
		assert_int_equal(wal_writer_step(w, 5 * MS + (uint64_t)i * MS, &did), 0);
	}
	wal_stats(w, &st);
	assert_int_equal(st.writer_flushes, 3);
	assert_int_equal(st.writer_writes, 0);
	assert_int_equal(st.fsyncs, 3);
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

struct hib_case {
	wal *w;
	wd_lsn lsn;
};

static bool writer_hibernating(void *arg)
{
	return wal_writer_hibernating(((struct hib_case *)arg)->w);
}

static bool lsn_flushed(void *arg)
{
	struct hib_case *c = arg;
	return wal_flushed_lsn(c->w) > c->lsn;
}

/* The writer thread hibernates when idle; an async commit wakes it and the
 * commit becomes durable without anyone calling flush. Deterministic: the
 * first record is inserted and flushed (its own wake-up spent), the test
 * waits until the writer is seen in a hibernation sleep with no wake-up
 * pending, and only then commits a record that does not start a segment
 * (inserting it wakes nobody). The hibernation sleep lasts 60 s, so a flush
 * within 30 s can only come from async_commit's wake-up (P4, PostgreSQL's
 * XLogSetAsyncXactLSN). */
static void test_writer_hibernates_and_wakes(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st0, st;
	wal_opts o;
	wal *w;
	struct hib_case c;
	wd_lsn l;
	(void)state;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 10;
	o.writer_hibernate_loops = 3;
	o.writer_hibernate_factor = 6000; /* 60 s */
	assert_int_equal(wal_create(db, &o, &w), 0);
	c.w = w;
	l = put(w, &b, 1, 0, 10);
	assert_int_equal(wal_flush_to(w, l), 0);
	assert_true(tw_wait_for(writer_hibernating, &c, 30));
	wal_stats(w, &st0);
	assert_true(st0.hibernations >= 1);
	c.lsn = put(w, &b, 1, 1, 10);
	assert_true(c.lsn % o.segment_size != WAL_SEG_HEADER_SIZE);
	assert_int_equal(wal_commit(w, c.lsn, false), 0);
	assert_true(tw_wait_for(lsn_flushed, &c, 30));
	wal_stats(w, &st);
	assert_true(st.async_wakeups >= st0.async_wakeups + 1); /* it was asleep */
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

/* The timing rule behind the async bound, on a fake clock without a writer
 * thread: an async commit made at t, at any point of the writer's delay
 * period, is not flushed by a step before last_flush + delay (only
 * written), and is flushed by the step at t + delay (P4 step 3). With the
 * writer woken at least every delay, that is the 3 x delay bound of
 * DESIGN.md section 3 with margin. */
static void test_async_timing_rule(void **state)
{
	static const uint64_t offsets_ms[] = {0, 1, 50, 199};
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	bool did;
	uint64_t last = 1000 * MS, delay = 200 * MS;
	(void)state;
	tw_opts(&o);
	o.writer_delay_ms = 200;
	o.writer_flush_after_bytes = 1 << 20;
	assert_int_equal(wal_create(db, &o, &w), 0);
	put(w, &b, 1, 0, 10);
	assert_int_equal(wal_writer_step(w, last, &did), 0); /* first: flush */
	for (unsigned i = 0; i < sizeof offsets_ms / sizeof offsets_ms[0]; i++) {
		uint64_t t = last + offsets_ms[i] * MS;
		wd_lsn l = put(w, &b, 1, i + 1, 10);
		assert_int_equal(wal_commit(w, l, false), 0); /* at time t */
		if (t + MS < last + delay) {
			assert_int_equal(wal_writer_step(w, t + MS, &did), 0);
			assert_true(did);
			assert_true(wal_written_lsn(w) > l);
			assert_true(wal_flushed_lsn(w) <= l); /* only written */
		}
		assert_int_equal(wal_writer_step(w, t + delay, &did), 0);
		assert_true(wal_flushed_lsn(w) > l); /* durable by t + delay */
		last = t + delay;
	}
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

struct async_case {
	const char *journal;
	int fd; /* pipe to the parent */
};

enum { MSG_ACK = 1, MSG_FLUSH = 2 };

/* The child's flush observer: reports each flushed LSN through the pipe
 * (after the fdatasync that made it durable). */
static void report_flush(void *arg, wd_lsn flushed, uint64_t now_ns)
{
	uint64_t msg[2] = {MSG_FLUSH, flushed};
	(void)now_ns;
	if (write(*(int *)arg, msg, sizeof msg) != sizeof msg)
		_exit(1);
}

/* Child: async commits, each acknowledged commit reported (MSG_ACK, lsn)
 * to the parent, forever, with the WAL writer reporting each flush
 * (MSG_FLUSH, flushed); the parent kills it. */
static void child_async(void *arg)
{
	struct async_case *c = arg;
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 10;
	o.on_flush = report_flush;
	o.on_flush_arg = &c->fd;
	if (storage_sim_start(c->journal) != 0 || wal_create(db, &o, &w) != 0)
		_exit(1);
	for (uint64_t i = 0;; i++) {
		uint8_t *rec;
		uint32_t len;
		uint64_t msg[2] = {MSG_ACK, 0};
		tw_record(&b, 1, i, 50, &rec, &len);
		if (wal_insert(w, rec, len, &msg[1]) != 0 || wal_commit(w, msg[1], false) != 0)
			_exit(1);
		if (write(c->fd, msg, sizeof msg) != sizeof msg)
			_exit(1);
		usleep(200);
	}
}

/* Async commits across a crash (DESIGN.md section 3, "a prefix of the
 * committed transactions"): the child reports acknowledged commits and the
 * WAL writer's flushes through one pipe; after SIGKILL and a power loss
 * that drops every unsynced write, the log holds a prefix of the commits in
 * order, and that prefix covers every commit below the last flush the child
 * reported. No wall-clock margins: the 3 x delay window itself is measured
 * by `walden bench commit`, and its timing rule by test_async_timing_rule. */
static void test_async_commits_prefix_after_crash(void **state)
{
	char *journal = tu_path(root, "journal");
	size_t cap = 1 << 20, nacks = 0, nflush = 0, covered = 0, n;
	wd_lsn *acks = calloc(cap, sizeof *acks), flushed = 0, end;
	st_sim_opts so = {.mode = ST_SIM_DROP_ALL};
	uint64_t msg[2], deadline;
	struct async_case c;
	int fds[2];
	wal_opts o;
	tw_rec *r;
	bool clean;
	pid_t pid;
	(void)state;
	assert_int_equal(storage_mkdir(journal), 0);
	assert_int_equal(pipe(fds), 0);
	c = (struct async_case){journal, fds[1]};
	pid = tw_spawn(child_async, &c);
	close(fds[1]);
	deadline = tw_now_ns() + 60000 * MS; /* only against a hang */
	for (bool killed = false;;) {
		if (!killed && ((nflush >= 5 && nacks >= 200) || tw_now_ns() > deadline)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			killed = true;
		}
		if (read(fds[0], msg, sizeof msg) != sizeof msg)
			break; /* killed and drained */
		if (msg[0] == MSG_ACK && nacks < cap)
			acks[nacks++] = msg[1];
		else if (msg[0] == MSG_FLUSH && msg[1] > flushed)
			flushed = msg[1], nflush++;
	}
	close(fds[0]);
	assert_true(nflush >= 5 && nacks >= 200);
	assert_int_equal(storage_sim_materialize(journal, &so, NULL), 0);
	tw_opts(&o);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	for (size_t i = 0; i < n; i++) /* a prefix, in order */
		assert_int_equal(r[i].seq, i);
	for (size_t i = 0; i < nacks; i++) {
		if (acks[i] >= flushed)
			continue;
		covered++;
		assert_true(i < n); /* below a reported flush: present */
		assert_true(r[i].lsn == acks[i]);
	}
	assert_true(covered >= 100); /* the test tested something */
	assert_true(end >= flushed);
	free(r);
	free(acks);
	free(journal);
}

/* ---- a leader already on its way when another thread panics (B1) ---- */

struct park {
	pthread_mutex_t mx;
	pthread_cond_t cv;
	int state; /* 0 not yet, 1 parked, 2 released, 3 done */
	wal *w;
	wd_lsn lsn;
	int rc;
	_Atomic int done;
};

static struct park park = {.mx = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* The active-transaction callback, called by a leader in commit_delay
 * (P3 step 3), after it became leader and before it picks its target:
 * parks the first caller until the test releases it. */
static int parking_active(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&park.mx);
	if (park.state == 0) {
		park.state = 1;
		pthread_cond_broadcast(&park.cv);
		while (park.state == 1)
			pthread_cond_wait(&park.cv, &park.mx);
	}
	pthread_mutex_unlock(&park.mx);
	return 10;
}

static void *park_committer(void *arg)
{
	(void)arg;
	park.rc = wal_flush_to(park.w, park.lsn);
	atomic_store(&park.done, 1);
	return NULL;
}

static void park_set(int st)
{
	pthread_mutex_lock(&park.mx);
	park.state = st;
	pthread_cond_broadcast(&park.cv);
	pthread_mutex_unlock(&park.mx);
}

static bool parked(void *arg)
{
	bool r;
	(void)arg;
	pthread_mutex_lock(&park.mx);
	r = park.state == 1;
	pthread_mutex_unlock(&park.mx);
	return r;
}

static _Atomic int flushes_seen;

static void count_flush(void *arg, wd_lsn flushed, uint64_t now_ns)
{
	(void)arg, (void)flushed, (void)now_ns;
	atomic_fetch_add(&flushes_seen, 1);
}

/* A committer that became leader before the log panicked must not write,
 * fdatasync or acknowledge afterwards (I8): the leader is parked in
 * commit_delay; the main thread's write crosses into segment 1 and the
 * fdatasync of segment 0 fails with EIO (once: the kernel reports a
 * writeback error once, a second fdatasync would "succeed"); released, the
 * leader must return WD_EPANIC with no write, no fsync and no flush. */
static void test_panic_stops_leader_in_flight(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st0, st;
	pthread_t th;
	wal_opts o;
	wal *w;
	wd_lsn flushed, last = 0;
	(void)state;
	tw_opts(&o);
	o.buffers_bytes = 1 << 20; /* nothing is written while inserting */
	o.commit_delay_us = 1;
	o.commit_siblings = 1;
	o.on_flush = count_flush;
	atomic_store(&flushes_seen, 0);
	assert_int_equal(wal_create(db, &o, &w), 0);
	wal_set_active_fn(w, parking_active, NULL);
	for (uint64_t i = 0; wal_segno(wal_insert_pos(w), o.segment_size) < 1; i++)
		last = put(w, &b, 1, i, 1000);
	flushed = wal_flushed_lsn(w);
	park.state = 0;
	park.w = w;
	park.lsn = last;
	atomic_store(&park.done, 0);
	assert_int_equal(pthread_create(&th, NULL, park_committer, NULL), 0);
	assert_true(tw_wait_for(parked, NULL, 30)); /* the leader is on its way */
	assert_int_equal(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, "/wal/"), 0);
	assert_int_equal(wal_write_to(w, last), WD_EPANIC); /* fdatasync(seg 0): EIO */
	assert_true(wal_is_panicked(w));
	wal_stats(w, &st0);
	park_set(2);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(park.rc, WD_EPANIC);
	wal_stats(w, &st);
	assert_true(wal_flushed_lsn(w) == flushed);
	assert_int_equal(st.fsyncs, st0.fsyncs);   /* no fdatasync after the panic */
	assert_int_equal(st.writes, st0.writes);   /* no write after the panic */
	assert_int_equal(atomic_load(&flushes_seen), 0);
	assert_int_equal(wal_commit(w, last, true), WD_EPANIC);
	assert_int_equal(wal_close(w), WD_EPANIC);
	walrec_free(&b);
}

/* A failed fsync while creating a segment inline (the temporary file's, or
 * the WAL directory's after the rename) panics the log: never retried
 * (DESIGN.md section 3, I8), unlike a plain error. */
static void test_segment_fsync_failure_panics(void **state)
{
	static const struct {
		st_op op;
		const char *path;
	} cases[] = {{ST_OP_SYNC, "segment.tmp"}, {ST_OP_SYNC_DIR, "/wal"}};
	(void)state;
	for (unsigned k = 0; k < 2; k++) {
		wal_rec_builder b = {0};
		wal_opts o;
		wal *w;
		wd_lsn last = 0, flushed;
		uint64_t fired;
		tu_rmrf(db);
		assert_int_equal(storage_mkdir(db), 0);
		tw_opts(&o);
		o.buffers_bytes = 1 << 20;
		assert_int_equal(wal_create(db, &o, &w), 0);
		for (uint64_t i = 0; wal_segno(wal_insert_pos(w), o.segment_size) < 1; i++)
			last = put(w, &b, 1, i, 1000);
		flushed = wal_flushed_lsn(w);
		assert_int_equal(storage_fault_add(cases[k].op, ST_FAULT_EIO, 1, 1, cases[k].path), 0);
		assert_int_equal(wal_flush_to(w, last), WD_EPANIC); /* segment 1 inline */
		assert_true(wal_is_panicked(w));
		fired = storage_fault_fired();
		storage_fault_clear();
		assert_int_equal(wal_flush_to(w, last), WD_EPANIC); /* not retried */
		assert_int_equal(storage_fault_fired(), fired);
		assert_true(wal_flushed_lsn(w) == flushed);
		assert_int_equal(wal_close(w), WD_EPANIC);
		walrec_free(&b);
	}
}

/* ---- a full disk: no committer hangs, nothing is lost (R1, I10) ---- */

struct enospc_thread {
	wal *w;
	wd_lsn lsn;
	uint32_t pad;
	int rc;
	_Atomic int done;
};

static void *big_insert(void *arg)
{
	struct enospc_thread *t = arg;
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	tw_record(&b, 2, 0, t->pad, &rec, &len);
	t->rc = wal_insert(t->w, rec, len, &t->lsn);
	atomic_store(&t->done, 1);
	walrec_free(&b);
	return NULL;
}

static void *flush_thread(void *arg)
{
	struct enospc_thread *t = arg;
	t->rc = wal_flush_to(t->w, t->lsn);
	atomic_store(&t->done, 1);
	return NULL;
}

/* storage_fault_fired() moved past *arg (the count is process-wide). */
static bool fault_fired(void *arg)
{
	return storage_fault_fired() > *(uint64_t *)arg;
}

static bool thread_done(void *arg)
{
	return atomic_load(&((struct enospc_thread *)arg)->done) != 0;
}

/* DESIGN.md section 6, ENOSPC: with every WAL write failing ENOSPC, an
 * insert that has reserved its space and needs buffer room stalls (it may
 * not leave a hole); a committer whose record is copied gets WD_ENOSPC
 * instead of waiting for it, as do new inserts that need room, the WAL
 * writer and another commit; once space returns the stalled insert
 * finishes, everything flushes, and every record is in the log, in order. */
static void test_enospc_stalled_insert_no_hang(void **state)
{
	wal_rec_builder b = {0};
	struct enospc_thread a = {0}, f = {0};
	wal_counters st;
	pthread_t ta, tf;
	uint8_t *rec;
	uint32_t len;
	wal_opts o;
	wal *w;
	wd_lsn lb, lc, end, dummy;
	uint64_t fired = storage_fault_fired();
	tw_rec *r;
	size_t n;
	bool clean, did;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	lb = put(w, &b, 1, 0, 100); /* fully copied */
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, "/wal/"), 0);
	a = (struct enospc_thread){.w = w, .pad = 70000}; /* > the 64 KiB buffers */
	assert_int_equal(pthread_create(&ta, NULL, big_insert, &a), 0);
	assert_true(tw_wait_for(fault_fired, &fired, 30)); /* its write failed */
	f = (struct enospc_thread){.w = w, .lsn = lb};
	assert_int_equal(pthread_create(&tf, NULL, flush_thread, &f), 0);
	assert_true(tw_wait_for(thread_done, &f, 30)); /* no hang */
	assert_int_equal(pthread_join(tf, NULL), 0);
	assert_int_equal(f.rc, WD_ENOSPC);
	assert_false(wal_is_panicked(w));
	assert_false(atomic_load(&a.done)); /* still stalled, holding its space */
	tw_record(&b, 3, 0, 40000, &rec, &len); /* needs room: refused at once */
	assert_int_equal(wal_insert(w, rec, len, &dummy), WD_ENOSPC);
	assert_int_equal(wal_commit(w, lb, true), WD_ENOSPC);
	assert_int_equal(wal_writer_step(w, 1000 * MS, &did), WD_ENOSPC);
	wal_stats(w, &st);
	assert_true(st.insert_stalls >= 1);
	assert_true(wal_flushed_lsn(w) <= lb);
	storage_fault_clear(); /* space returns */
	assert_true(tw_wait_for(thread_done, &a, 30));
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(a.rc, 0);
	assert_true(a.lsn > lb);
	lc = put(w, &b, 1, 1, 100);
	assert_int_equal(wal_commit(w, lc, true), 0);
	assert_true(wal_flushed_lsn(w) > lc);
	wal_stats(w, &st);
	assert_int_equal(st.records, 3);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	assert_int_equal(n, 3);
	assert_true(r[0].lsn == lb && r[1].lsn == a.lsn && r[2].lsn == lc);
	assert_true(r[1].tid == 2 && r[1].pad_ok);
	assert_true(clean);
	free(r);
	walrec_free(&b);
}

/* ---- the writer: flush before preparing (R2), last_flush (nit 3) ---- */

struct prep_seen {
	int flushes;
	bool seg2_at_flush;
};

static void note_seg2(void *arg, wd_lsn flushed, uint64_t now_ns)
{
	struct prep_seen *p = arg;
	(void)flushed, (void)now_ns;
	p->flushes++;
	p->seg2_at_flush = seg_exists(2);
}

/* A writer cycle flushes before it prepares segments, and prepares at most
 * one per cycle (P4, P5): preparing (zero-fill + fsync of whole segments)
 * never holds up the flush an async commit waits for. */
static void test_writer_flushes_before_preparing(void **state)
{
	wal_rec_builder b = {0};
	struct prep_seen p = {0};
	wal_opts o;
	wal *w;
	bool did;
	(void)state;
	tw_opts(&o);
	o.buffers_bytes = 1 << 20;
	o.prepare_ahead = 2;
	o.on_flush = note_seg2;
	o.on_flush_arg = &p;
	assert_int_equal(wal_create(db, &o, &w), 0);
	for (uint64_t i = 0; wal_segno(wal_insert_pos(w), o.segment_size) < 1; i++)
		put(w, &b, 1, i, 1000);
	assert_false(seg_exists(1));
	assert_int_equal(wal_writer_cycle(w, 1000 * MS, &did), 0);
	assert_true(did);
	assert_int_equal(p.flushes, 1);
	assert_false(p.seg2_at_flush);  /* flushed first */
	assert_true(seg_exists(2));     /* then prepared one segment */
	assert_false(seg_exists(3));
	assert_int_equal(wal_writer_cycle(w, 1001 * MS, &did), 0);
	assert_true(did && seg_exists(3)); /* the next cycle, the next one */
	assert_int_equal(wal_writer_cycle(w, 1002 * MS, &did), 0);
	assert_false(did);
	assert_int_equal(p.flushes, 1);
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

/* The writer's last flush time is that of a flush that happened: after a
 * failed first flush (ENOSPC), the next cycle still flushes. */
static void test_writer_failed_flush_not_remembered(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st;
	wal_opts o;
	wal *w;
	wd_lsn l;
	bool did;
	(void)state;
	tw_opts(&o);
	o.writer_delay_ms = 200;
	o.writer_flush_after_bytes = 1 << 20;
	assert_int_equal(wal_create(db, &o, &w), 0);
	l = put(w, &b, 1, 0, 100);
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 1, "/wal/"), 0);
	assert_int_equal(wal_writer_step(w, 1000 * MS, &did), WD_ENOSPC);
	assert_int_equal(wal_writer_step(w, 1010 * MS, &did), 0);
	wal_stats(w, &st);
	assert_int_equal(st.writer_flushes, 2); /* not just a write */
	assert_int_equal(st.writer_writes, 0);
	assert_true(wal_flushed_lsn(w) > l);
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

static int five_active(void *arg)
{
	(void)arg;
	return 5;
}

/* commit_delay applies as in PostgreSQL: with commit_siblings 0 always
 * (MinimumActiveBackends(0) is true), otherwise when the callback reports
 * at least commit_siblings other active transactions. */
static void test_commit_delay_siblings(void **state)
{
	static const struct {
		uint32_t siblings;
		bool callback;
		uint64_t delays;
	} cases[] = {{0, false, 1}, {5, false, 0}, {5, true, 1}, {6, true, 0}};
	(void)state;
	for (unsigned k = 0; k < 4; k++) {
		wal_rec_builder b = {0};
		wal_counters st;
		wal_opts o;
		wal *w;
		wd_lsn l;
		uint64_t t0;
		tu_rmrf(db);
		assert_int_equal(storage_mkdir(db), 0);
		tw_opts(&o);
		o.commit_delay_us = 20000;
		o.commit_siblings = cases[k].siblings;
		assert_int_equal(wal_create(db, &o, &w), 0);
		if (cases[k].callback)
			wal_set_active_fn(w, five_active, NULL);
		l = put(w, &b, 1, 0, 10);
		t0 = tw_now_ns();
		assert_int_equal(wal_commit(w, l, true), 0);
		wal_stats(w, &st);
		assert_int_equal(st.commit_delays, cases[k].delays);
		if (cases[k].delays)
			assert_true(tw_now_ns() - t0 >= 20 * MS); /* it slept */
		assert_int_equal(wal_close(w), 0);
		walrec_free(&b);
	}
}

/* wal_stats counts records that went in: an insert that fails with
 * WD_EPANIC (a write with EIO while making room) is not counted. */
static void test_failed_insert_not_counted(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st;
	uint8_t *rec;
	uint32_t len;
	wal_opts o;
	wal *w;
	wd_lsn l;
	int k = 0;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	while (wal_insert_pos(w) < 50000) /* fits in the 64 KiB buffers */
		put(w, &b, 1, (uint64_t)k++, 1000);
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_EIO, 1, 0, "/wal/"), 0);
	tw_record(&b, 1, (uint64_t)k, 30000, &rec, &len); /* needs room */
	assert_int_equal(wal_insert(w, rec, len, &l), WD_EPANIC);
	wal_stats(w, &st);
	assert_int_equal(st.records, (uint64_t)k);
	assert_int_equal(wal_close(w), WD_EPANIC);
	walrec_free(&b);
}

/* The insert hook of test_fpw_recheck: moves the redo point once, right
 * between the caller's image decision and its insert. */
static struct {
	wal *w;
	unsigned calls;
	wd_lsn seen, redo;
} fpw_hook;

static void fpw_hook_fn(void *arg, wd_lsn fpw_lsn)
{
	(void)arg;
	if (fpw_hook.calls++ == 0) {
		fpw_hook.seen = fpw_lsn;
		assert_int_equal(wal_set_redo_point(fpw_hook.w, &fpw_hook.redo), 0);
	}
}

/*
 * The full-page-image recheck (README I11, P1 step 2a): a record built
 * without an image of a page last changed at P is refused with
 * WAL_INSERT_RETRY - nothing reserved, stamped or counted - once
 * wal_set_redo_point has moved the redo point past P; it goes in when the
 * redo point has not passed P (P at or after it), and WAL_FPW_NONE always
 * does. wal_set_redo_point returns the insert position; a move made by the
 * insert hook, between decision and insert, is seen by that very insert.
 * Read back, the log holds exactly the records that went in.
 */
static void test_fpw_recheck(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st;
	uint8_t *rec, before[256];
	uint32_t len;
	wal_opts o;
	wal *w;
	wd_lsn p, l, redo, pos, lsns[8];
	unsigned n = 0;
	tw_rec *got;
	size_t nr;
	wd_lsn end;
	bool clean;
	(void)state;
	tw_opts(&o);
	assert_int_equal(wal_create(db, &o, &w), 0);
	assert_int_equal(wal_redo_point(w), 0);
	p = lsns[n++] = put(w, &b, 1, 0, 10); /* the page's last change */
	/* no redo point past P yet */
	tw_record(&b, 1, 1, 10, &rec, &len);
	assert_int_equal(wal_insert_fpw(w, rec, len, p, &lsns[n++]), 0);
	/* the redo point moves past P: refused, nothing reserved or stamped */
	pos = wal_insert_pos(w);
	assert_int_equal(wal_set_redo_point(w, &redo), 0);
	assert_int_equal(redo, pos);
	assert_int_equal(wal_redo_point(w), redo);
	tw_record(&b, 1, 2, 10, &rec, &len);
	assert_true(len <= sizeof before);
	memcpy(before, rec, len);
	l = 12345;
	assert_int_equal(wal_insert_fpw(w, rec, len, p, &l), WAL_INSERT_RETRY);
	assert_int_equal(l, 12345);
	assert_int_equal(wal_insert_pos(w), pos);
	assert_memory_equal(rec, before, len);
	wal_stats(w, &st);
	assert_int_equal(st.records, 2);
	assert_int_equal(st.fpw_retries, 1);
	/* a page last changed AT the redo point needs no image: goes in */
	assert_int_equal(wal_insert_fpw(w, rec, len, redo, &lsns[n]), 0);
	assert_int_equal(lsns[n++], redo);
	/* P after the redo point, and no page without an image: go in */
	tw_record(&b, 1, 3, 10, &rec, &len);
	assert_int_equal(wal_insert_fpw(w, rec, len, redo + 8, &lsns[n++]), 0);
	tw_record(&b, 1, 4, 10, &rec, &len);
	assert_int_equal(wal_insert_fpw(w, rec, len, WAL_FPW_NONE, &lsns[n++]), 0);
	/* moved by the hook between decision and insert: that insert sees it */
	fpw_hook.w = w;
	p = lsns[n - 1];
	wal_set_insert_hook(w, fpw_hook_fn, NULL);
	tw_record(&b, 1, 5, 10, &rec, &len);
	pos = wal_insert_pos(w);
	assert_int_equal(wal_insert_fpw(w, rec, len, p, &l), WAL_INSERT_RETRY);
	assert_int_equal(fpw_hook.seen, p);
	assert_int_equal(fpw_hook.redo, pos);
	assert_int_equal(wal_insert_pos(w), pos);
	/* the caller's second try (with an image: WAL_FPW_NONE) goes in */
	assert_int_equal(wal_insert_fpw(w, rec, len, WAL_FPW_NONE, &lsns[n]), 0);
	assert_int_equal(lsns[n++], pos);
	assert_int_equal(fpw_hook.calls, 2);
	wal_set_insert_hook(w, NULL, NULL);
	/* an explicit redo point (the open's) */
	wal_set_redo_point_at(w, WAL_SEG_HEADER_SIZE);
	assert_int_equal(wal_redo_point(w), WAL_SEG_HEADER_SIZE);
	tw_record(&b, 1, 6, 10, &rec, &len);
	assert_int_equal(wal_insert_fpw(w, rec, len, lsns[0], &lsns[n++]), 0);
	wal_stats(w, &st);
	assert_int_equal(st.records, n);
	assert_int_equal(st.fpw_retries, 2);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &got, &nr, &end, &clean), 0);
	assert_int_equal(nr, n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(got[i].lsn, lsns[i]);
		assert_int_equal(got[i].seq, i);
		assert_true(got[i].pad_ok);
	}
	assert_true(clean);
	free(got);
	walrec_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segments_prepare_recycle_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_vs_flush_power_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_eio_panics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_hibernates_and_wakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_timing_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_commits_prefix_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_panic_stops_leader_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_fsync_failure_panics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_stalled_insert_no_hang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_flushes_before_preparing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_failed_flush_not_remembered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_delay_siblings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_insert_not_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fpw_recheck, setup, teardown),
	};
	return cmocka_run_group_tests_name("wal_insert", tests, NULL, NULL);
}
