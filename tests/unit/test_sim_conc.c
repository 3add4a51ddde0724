/*
 * test_sim_conc.c - simulated power loss (storage/sim.c) under concurrent
 * callers; run under ThreadSanitizer too (a *_conc suite). The
 * single-threaded cases are in test_sim.c.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/simtest.h"
#include "tests/lib/testutil.h"


#define OK(call)                                                          \
	do {                                                              \
		int rc_ = (call);                                         \
		if (rc_ != 0)                                             \
			fail_msg("%s: %s (%s)", #call, wd_strerror(rc_), \
				 wd_last_error());                        \
	} while (0)

#define CAP 32768

static int setup(void **state)
{
	return simtest_setup(state);
}

static int teardown(void **state)
{
	return simtest_teardown(state);
}

/* The bytes of path (malloc'd) and their count; NULL if absent. */
static uint8_t *slurp(const char *path, size_t *len)
{
	return simtest_slurp(path, CAP * 4, len);
}

/* ---- several writers on one tracked file ------------------------------------ */

struct writer {
	st_file *f;
	int id;
};

/* Thread body: 64 writes of 512 bytes into its own quarter of the file,
 * some of them synced. */
static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[512];
	for (int i = 0; i < 64; i++) {
		memset(buf, 'a' + w->id * 4 + i % 4, sizeof buf);
		if (storage_write(w->f, buf, sizeof buf,
				  (uint64_t)(w->id * 64 + i) * 512) != 0 ||
		    (i % 16 == 15 && storage_sync(w->f) != 0))
			return "fail";
	}
	return NULL;
}

/* Four threads write one tracked file at once: KEEP_ALL gives the bytes
 * they left, DROP_ALL keeps at least every synced write. */
static void test_threads(void **state)
{
	struct env *e = *state;
	for (int mode = ST_SIM_KEEP_ALL; mode <= ST_SIM_DROP_ALL; mode++) {
		st_sim_opts o = {.mode = (st_sim_mode)mode};
		struct writer w[4];
		pthread_t t[4];
		uint8_t *before, *after;
		size_t blen, alen;
		void *res;
		st_file *f;

		unlink(e->file);
		OK(storage_sim_start(e->jdir));
		OK(storage_open(e->file, ST_CREATE, &f));
		for (int i = 0; i < 4; i++) {
			w[i] = (struct writer){.f = f, .id = i};
			assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			assert_int_equal(pthread_join(t[i], &res), 0);
			assert_null(res);
		}
		OK(storage_sync_dir(e->db));
		OK(storage_close(f));
		storage_sim_stop();
		before = slurp(e->file, &blen);
		assert_int_equal(blen, 4 * 64 * 512);
		OK(storage_sim_materialize(e->jdir, &o, NULL));
		after = slurp(e->file, &alen);
		if (mode == ST_SIM_KEEP_ALL) {
			assert_int_equal(alen, blen);
			assert_memory_equal(after, before, blen);
		}
		for (int id = 0; id < 4; id++) /* writes 0..15 were synced */
			for (size_t i = 0; i < 16; i++)
				assert_memory_equal(after + (id * 64 + i) * 512,
						    before + (id * 64 + i) * 512, 512);
		free(before);
		free(after);
	}
}

/* ---- two threads creating one new file ------------------------------------- */

struct creator {
	const char *path;
	atomic_int *go;
	int id;
	int rc;
	st_file *f;
};

/* Thread body: waits for the start, creates path, writes its byte at its
 * own offset. */
static void *creator_thread(void *arg)
{
	struct creator *c = arg;
	while (!atomic_load(c->go))
		;
	c->rc = storage_open(c->path, ST_CREATE, &c->f);
	if (c->rc == 0)
		c->rc = storage_write(c->f, c->id ? "B" : "A", 1, (uint64_t)c->id);
	return NULL;
}

/* (2) Two threads create the same new path at once, many times: the
 * journal gets one CREATE, and both handles' writes carry its identity
 * (before the fix both could see "not there" and declare two identities
 * for one file, the first one's writes then applied to nothing). */
static void test_create_race(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_KEEP_ALL};

	for (int round = 0; round < 300; round++) {
		atomic_int go = 0;
		struct creator c[2] = {{e->file, &go, 0, 0, NULL},
				       {e->file, &go, 1, 0, NULL}};
		pthread_t t[2];
		st_sim_report r;
		size_t creates = 0;
		uint64_t id = 0;

		unlink(e->file);
		OK(storage_sim_start(e->jdir));
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, creator_thread, &c[i]), 0);
		atomic_store(&go, 1);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(pthread_join(t[i], NULL), 0);
			OK(c[i].rc);
			OK(storage_close(c[i].f));
		}
		storage_sim_stop();
		OK(storage_sim_materialize(e->jdir, &o, &r));
		for (size_t i = 0; i < r.nops; i++) {
			if (r.ops[i].kind == ST_SIM_CREATE) {
				creates++;
				id = r.ops[i].inode;
			}
		}
		if (creates != 1)
			fail_msg("round %d: %zu CREATE records for one file",
				 round, creates);
		for (size_t i = 0; i < r.nops; i++)
			assert_int_equal(r.ops[i].inode, id);
		storage_sim_report_free(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_race, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
