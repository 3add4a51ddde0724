/*
 * test_wal_crash.c - synchronous commits across crashes: a child commits
 * and reports each acknowledged commit LSN to the parent through a pipe
 * (not through storage/); it is killed at each WAL crash point or just
 * before a random I/O call; the parent materialises a power loss (torn
 * writes, several seeds) and checks that every acknowledged commit record
 * is present and valid, and that the log reopens and goes on.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/wal.h"

#define COMMITS 200

static char *root, *db, *journal;

static int setup(void **state)
{
	(void)state;
	root = tu_tmpdir("walcrash");
	db = tu_path(root, "db");
	journal = tu_path(root, "journal");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(root);
	free(root);
	free(db);
	free(journal);
	return 0;
}

struct crash_case {
	const char *point; /* NULL: crash at I/O index io */
	uint64_t nth, io;
	int fd;
	bool writer;       /* with the WAL writer thread (10 ms delay) */
};

/* Child: COMMITS synchronous commits of ~600-byte records (three segments
 * of 64 KiB, prepared inline, or by the writer thread), each LSN reported
 * once wal_commit returned. With the writer, it then waits for the crash
 * (the writer's cycles go on). */
static void child_commit(void *arg)
{
	struct crash_case *c = arg;
	wal_rec_builder b = {0};
	wal_opts o;
	wal *w;
	tw_opts(&o);
	if (c->writer) {
		o.no_writer_thread = false;
		o.writer_delay_ms = 10;
	}
	if (storage_sim_start(journal) != 0)
		_exit(1);
	if (c->point)
		storage_crash_arm(c->point, c->nth);
	else
		storage_crash_arm_io(storage_io_count() + c->io);
	if (wal_create(db, &o, &w) != 0)
		_exit(1);
	for (uint64_t i = 0; i < COMMITS; i++) {
		uint8_t *rec;
		uint32_t len;
		wd_lsn l;
		tw_record(&b, 1, i, 600, &rec, &len);
		if (wal_insert(w, rec, len, &l) != 0 || wal_commit(w, l, true) != 0)
			_exit(1);
		if (write(c->fd, &l, sizeof l) != sizeof l)
			_exit(1);
	}
	alarm(60); /* the crash never came: die by SIGALRM, the test fails */
	while (c->writer)
		pause();
	_exit(0);
}

/* Runs one crash case with one materialisation seed and checks it.
 * Returns the number of acknowledged commits. */
static int run_case(struct crash_case *c, uint64_t seed)
{
	st_sim_opts so = {.mode = ST_SIM_TORN, .seed = seed, .sector_bytes = 512};
	wd_lsn acked[COMMITS], end, end2, l;
	int fds[2], n_acked = 0, status;
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	wal_opts o;
	tw_rec *r;
	size_t n;
	bool clean;
	wal *w;
	tu_rmrf(db);
	tu_rmrf(journal);
	assert_int_equal(storage_mkdir(db), 0);
	assert_int_equal(storage_mkdir(journal), 0);
	assert_int_equal(pipe(fds), 0);
	c->fd = fds[1];
	status = tw_spawn(child_commit, c);
	close(fds[1]);
	while (n_acked < COMMITS && read(fds[0], &acked[n_acked], sizeof l) == sizeof l)
		n_acked++;
	close(fds[0]);
	assert_int_equal(waitpid(status, &status, 0) > 0, 1);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == ST_CRASH_EXIT_CODE);
	assert_int_equal(storage_sim_materialize(journal, &so, NULL), 0);
	tw_opts(&o);
	if (n_acked == 0 && !storage_exists(db)) /* crashed before the WAL existed */
		return 0;
	{
		char *wd = tu_path(db, "wal");
		bool have = storage_exists(wd);
		free(wd);
		if (!have) {
			assert_int_equal(n_acked, 0);
			return 0;
		}
	}
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end, &clean), 0);
	assert_true((size_t)n_acked <= n);
	for (int i = 0; i < n_acked; i++) /* every acknowledged commit, valid */
		assert_true(r[i].lsn == acked[i] && r[i].seq == (uint64_t)i && r[i].pad_ok);
	free(r);
	/* the log reopens at its end and goes on */
	assert_int_equal(wal_find_end(db, &o, WAL_SEG_HEADER_SIZE, &end2), 0);
	assert_true(end2 == end);
	assert_int_equal(wal_open(db, &o, end, &w), 0);
	tw_record(&b, 9, 0, 10, &rec, &len);
	assert_int_equal(wal_insert(w, rec, len, &l), 0);
	assert_int_equal(wal_commit(w, l, true), 0);
	assert_int_equal(wal_close(w), 0);
	assert_int_equal(tw_read_all(db, &o, WAL_SEG_HEADER_SIZE, &r, &n, &end2, &clean), 0);
	assert_true(n >= 1 && r[n - 1].lsn == l && r[n - 1].tid == 9);
	free(r);
	walrec_free(&b);
	return n_acked;
}

/* Every WAL crash point, early and late hits, three seeds each; the
 * writer thread's with the writer on (its 2nd cycle comes during the
 * commits, its 20th mostly after them). */
static void test_crash_points(void **state)
{
	static const struct {
		const char *point;
		uint64_t nth[2];
		bool writer;
	} pts[] = {
		{"wal-before-write", {5, 120}, false},
		{"wal-after-write", {5, 120}, false},
		{"wal-after-flush", {5, 120}, false},
		{"wal-segment-before-dir-sync", {1, 3}, false},
		{"wal-writer-before-cycle", {2, 20}, true},
		{"wal-writer-after-cycle", {2, 20}, true},
	};
	int total = 0;
	(void)state;
	for (size_t p = 0; p < sizeof pts / sizeof pts[0]; p++)
		for (int h = 0; h < 2; h++)
			for (uint64_t seed = 1; seed <= 3; seed++) {
				struct crash_case c = {pts[p].point, pts[p].nth[h], 0, -1,
						       pts[p].writer};
				total += run_case(&c, seed);
			}
	assert_true(total > 500); /* the cases acknowledged commits */
}

/* Crashes just before random I/O calls of the child. */
static void test_crash_random_io(void **state)
{
	uint64_t rng = 42;
	int total = 0;
	(void)state;
	for (int i = 0; i < 12; i++) {
		struct crash_case c = {NULL, 0, 1 + tu_rand(&rng) % 400, -1, false};
		total += run_case(&c, (uint64_t)i + 1);
	}
	assert_true(total > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_points, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_random_io, setup, teardown),
	};
	return cmocka_run_group_tests_name("wal_crash", tests, NULL, NULL);
}
