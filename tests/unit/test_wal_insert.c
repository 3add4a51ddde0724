/*
 * test_wal_insert.c - the WAL's insertion and flush side, single-threaded:
 * records at their LSNs with valid CRCs across segments and buffer wraps,
 * segment preparation, recycling and removal, write vs flush under power
 * loss, fdatasync EIO panics, ENOSPC is a clean error, the WAL writer's
 * PostgreSQL rules on a fake clock, async commits durable within
 * 3 x wal_writer_delay, and reopening at the end of the log.
 */
#define _GNU_SOURCE
#include <setjmp.h>
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

/* The writer thread hibernates when idle; an async commit wakes it and
 * the commit becomes durable without anyone calling flush. */
static void test_writer_hibernates_and_wakes(void **state)
{
	wal_rec_builder b = {0};
	wal_counters st;
	wal_opts o;
	wal *w;
	wd_lsn l;
	(void)state;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 1;
	assert_int_equal(wal_create(db, &o, &w), 0);
	for (int i = 0; i < 5000; i++) {
		wal_stats(w, &st);
		if (st.hibernations > 0)
			break;
		usleep(1000);
	}
	assert_true(st.hibernations > 0); /* 50 idle cycles of 1 ms */
	l = put(w, &b, 1, 0, 10);
	assert_int_equal(wal_commit(w, l, false), 0);
	for (int i = 0; i < 5000 && wal_flushed_lsn(w) <= l; i++)
		usleep(1000);
	assert_true(wal_flushed_lsn(w) > l);
	wal_stats(w, &st);
	assert_true(st.async_wakeups >= 1);
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

struct async_case {
	const char *journal;
	int fd; /* pipe to the parent */
};

/* Child: async commits, each reported (lsn, ack time) to the parent,
 * forever; the parent kills it. */
static void child_async(void *arg)
{
	struct async_case *c = arg;
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	tw_opts(&o);
	o.no_writer_thread = false;
	o.writer_delay_ms = 100;
	if (storage_sim_start(c->journal) != 0 || wal_create(db, &o, &w) != 0)
		_exit(1);
	for (uint64_t i = 0;; i++) {
		uint8_t *rec;
		uint32_t len;
		uint64_t msg[2];
		tw_record(&b, 1, i, 50, &rec, &len);
		if (wal_insert(w, rec, len, &msg[0]) != 0 || wal_commit(w, msg[0], false) != 0)
			_exit(1);
		msg[1] = tw_now_ns();
		if (write(c->fd, msg, sizeof msg) != sizeof msg)
			_exit(1);
		usleep(500);
	}
}

/* Every async commit acknowledged more than 3 x wal_writer_delay before the
 * crash is durable (DESIGN.md section 3): the child reports each
 * acknowledged commit through a pipe; the parent kills it, materialises a
 * power loss that drops every unsynced write and reads the log back. */
static void test_async_commit_window(void **state)
{
	char *journal = tu_path(root, "journal");
	int fds[2];
	struct async_case c;
	st_sim_opts so = {.mode = ST_SIM_DROP_ALL};
	uint64_t (*msgs)[2] = calloc(1 << 20, sizeof *msgs), t_kill, deadline;
	size_t count = 0, n, old = 0;
	wd_lsn end;
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
	deadline = tw_now_ns() + 1200 * MS;
	while (tw_now_ns() < deadline && count < (1 << 20) &&
	       read(fds[0], msgs[count], sizeof msgs[0]) == sizeof msgs[0])
		count++;
	t_kill = tw_now_ns(); /* the crash happens after this */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	while (count < (1 << 20) && read(fds[0], msgs[count], sizeof msgs[0]) == sizeof msgs[0])
		count++;
	close(fds[0]);
	assert_int_equal(storage_sim_materialize(journal, &so, NULL), 0);
	tw_opts(&o);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	for (size_t i = 0; i < count; i++) {
		if (msgs[i][1] + 3 * 100 * MS >= t_kill)
			continue;
		old++;
		assert_true(i < n);          /* present, in order */
		assert_true(r[i].lsn == msgs[i][0]);
	}
	assert_true(old > 50);            /* the test tested something */
	assert_true(count > old);         /* and some were recent */
	free(r);
	free(msgs);
	free(journal);
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
		cmocka_unit_test_setup_teardown(test_async_commit_window, setup, teardown),
	};
	return cmocka_run_group_tests_name("wal_insert", tests, NULL, NULL);
}
