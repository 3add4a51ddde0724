/*
 * test_control.c - the control file: round trip, validation of every kind
 * of damage, and atomic replacement across a crash at each step.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_tmpdir("control");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	free(dir);
	return 0;
}

/* Overwrites DIR/control with len bytes of buf (bypassing the protocol). */
static void write_raw(const uint8_t *buf, size_t len)
{
	char *path = tu_path(dir, CONTROL_FILE);
	st_file *f = NULL;
	assert_int_equal(storage_open(path, ST_CREATE | ST_TRUNC, &f), 0);
	assert_int_equal(storage_write(f, buf, len, 0), 0);
	assert_int_equal(storage_close(f), 0);
	free(path);
}

static void test_create_and_read_back(void **state)
{
	control_data made, read;
	(void)state;
	assert_int_equal(control_create(dir, 16384, &made), 0);
	assert_int_equal(control_read(dir, &read), 0);
	assert_int_equal(read.page_size, 16384);
	assert_int_equal(read.version, CONTROL_VERSION);
	assert_int_equal(read.state, CONTROL_SHUTDOWN);
	assert_memory_equal(read.db_id, made.db_id, CONTROL_DBID_SIZE);
	assert_int_equal(control_create(dir, 8192, NULL), WD_EEXIST);
	read.checkpoint_lsn = 0x1122334455ull;
	read.next_xid = 99;
	read.state = CONTROL_IN_PRODUCTION;
	assert_int_equal(control_write(dir, &read), 0);
	assert_int_equal(control_read(dir, &made), 0);
	assert_true(made.checkpoint_lsn == 0x1122334455ull);
	assert_true(made.next_xid == 99);
	assert_int_equal(made.state, CONTROL_IN_PRODUCTION);
	{
		char *tmp = tu_path(dir, CONTROL_TMP_FILE);
		assert_false(storage_exists(tmp));
		free(tmp);
	}
}

/* Two databases get different ids. */
static void test_ids_are_random(void **state)
{
	char *other = tu_tmpdir("control2");
	control_data a, b;
	(void)state;
	assert_int_equal(control_create(dir, 8192, &a), 0);
	assert_int_equal(control_create(other, 8192, &b), 0);
	assert_memory_not_equal(a.db_id, b.db_id, CONTROL_DBID_SIZE);
	tu_rmrf(other);
	free(other);
}

static void test_bad_page_size_refused(void **state)
{
	(void)state;
	assert_int_equal(control_create(dir, 3000, NULL), WD_EINVAL);
	assert_int_equal(control_create(dir, 131072, NULL), WD_EINVAL);
	assert_non_null(strstr(wd_last_error(), "power of two"));
}

/* Every single flipped byte is caught, and the message names the file. */
static void test_every_damaged_byte_detected(void **state)
{
	uint8_t good[CONTROL_SIZE], bad[CONTROL_SIZE];
	control_data cd;
	(void)state;
	assert_int_equal(control_create(dir, 8192, &cd), 0);
	control_encode(&cd, good);
	for (unsigned i = 0; i < CONTROL_SIZE; i++) {
		memcpy(bad, good, sizeof bad);
		bad[i] ^= 0x40;
		assert_int_equal(control_decode(bad, sizeof bad, "x/control", &cd), WD_ECORRUPT);
		assert_non_null(strstr(wd_last_error(), "x/control"));
	}
	write_raw(good, 100); /* truncated */
	assert_int_equal(control_read(dir, &cd), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "100 bytes"));
	write_raw((const uint8_t *)"this is not a control file at all", 33);
	assert_int_equal(control_read(dir, &cd), WD_ECORRUPT);
}

/* A well-formed file of a future version is refused as such. */
static void test_other_version_refused(void **state)
{
	uint8_t buf[CONTROL_SIZE];
	control_data cd;
	(void)state;
	assert_int_equal(control_create(dir, 8192, &cd), 0);
	cd.version = CONTROL_VERSION + 1;
	control_encode(&cd, buf);
	write_raw(buf, sizeof buf);
	assert_int_equal(control_read(dir, &cd), WD_EVERSION);
	assert_non_null(strstr(wd_last_error(), "version"));
}

static void test_missing_is_enoent(void **state)
{
	control_data cd;
	(void)state;
	assert_int_equal(control_read(dir, &cd), WD_ENOENT);
}

/* Child: rewrites the control file with next_xid = 2, dying at point. */
static void child_rewrite(void *arg)
{
	control_data cd;
	if (control_read(dir, &cd) != 0)
		_exit(1);
	cd.next_xid = 2;
	storage_crash_arm(arg, 1);
	if (control_write(dir, &cd) != 0)
		_exit(1);
	_exit(0);
}

/* A crash at each step leaves the old or the new file, whole, never a mix:
 * before the rename the old one, after it the new one. */
static void test_crash_during_replace(void **state)
{
	static const struct {
		const char *point;
		uint64_t expect_xid;
	} cases[] = {
		{"control-before-rename", 1},
		{"control-before-dir-sync", 2},
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		control_data cd;
		char *sub = tu_tmpdir("control-crash");
		free(dir);
		dir = sub;
		assert_int_equal(control_create(dir, 8192, NULL), 0);
		assert_int_equal(tu_run_child(child_rewrite, (void *)cases[i].point),
				 ST_CRASH_EXIT_CODE);
		assert_int_equal(control_read(dir, &cd), 0);
		assert_int_equal(cd.next_xid, cases[i].expect_xid);
		if (i + 1 < sizeof cases / sizeof cases[0])
			tu_rmrf(dir);
	}
}

struct powerloss_case {
	const char *journal;
	const char *point; /* NULL: the write completes */
};

/* Child: tracks for power loss, rewrites the control file (next_xid = 2)
 * and is killed at the case's crash point or just after the write. */
static void child_rewrite_tracked(void *arg)
{
	const struct powerloss_case *c = arg;
	control_data cd;
	if (storage_sim_start(c->journal) != 0 || control_read(dir, &cd) != 0)
		_exit(1);
	cd.next_xid = 2;
	if (c->point)
		storage_crash_arm(c->point, 1);
	if (control_write(dir, &cd) != 0)
		_exit(1);
	storage_crash_arm("test-end", 1);
	storage_crash_point("test-end");
	_exit(1);
}

/* Under simulated power loss at every step and many seeds, the control
 * file is always the old or the new one, whole; once control_write has
 * returned it is the new one. */
static void test_power_loss_during_replace(void **state)
{
	static const char *const points[] = {"control-before-rename",
					     "control-before-dir-sync", NULL};
	unsigned seen[3][3] = {{0}};
	(void)state;
	for (unsigned p = 0; p < 3; p++) {
		for (uint64_t seed = 1; seed <= 40; seed++) {
			char *db = tu_tmpdir("control-pl"), *journal = tu_path(db, "journal");
			struct powerloss_case c = {journal, points[p]};
			st_sim_opts o = {.mode = seed % 2 ? ST_SIM_TORN : ST_SIM_RANDOM,
					 .seed = seed, .sector_bytes = 512};
			control_data cd;
			free(dir);
			dir = tu_path(db, "db");
			assert_int_equal(storage_mkdir(dir), 0);
			assert_int_equal(storage_mkdir(journal), 0);
			assert_int_equal(control_create(dir, 8192, NULL), 0);
			assert_int_equal(tu_run_child(child_rewrite_tracked, &c), ST_CRASH_EXIT_CODE);
			assert_int_equal(storage_sim_materialize(journal, &o, NULL), 0);
			assert_int_equal(control_read(dir, &cd), 0);
			assert_true(cd.next_xid == 1 || cd.next_xid == 2);
			seen[p][cd.next_xid]++;
			tu_rmrf(db);
			free(db);
			free(journal);
		}
	}
	assert_int_equal(seen[0][2], 0);  /* before the rename: always old */
	assert_true(seen[1][1] > 0);      /* unsynced rename: lost by some seeds */
	assert_true(seen[1][2] > 0);      /* ... and kept by others */
	assert_int_equal(seen[2][1], 0);  /* after the directory fsync: new */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_are_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_page_size_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_damaged_byte_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_is_enoent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_loss_during_replace, setup, teardown),
	};
	return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
