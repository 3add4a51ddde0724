/*
 * test_storage.c - the file layer: round trips, retry of short transfers and
 * EINTR, errors that name the file, injected EIO/ENOSPC by call number and
 * by path, crash points (API and environment) and crashes at an I/O index.
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

#include "storage/storage.h"
#include "tests/lib/testutil.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_tmpdir("storage");
	storage_fault_clear();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	storage_fault_clear();
	tu_rmrf(dir);
	free(dir);
	return 0;
}

static st_file *open_new(const char *name)
{
	char *path = tu_path(dir, name);
	st_file *f = NULL;
	assert_int_equal(storage_open(path, ST_CREATE | ST_TRUNC, &f), 0);
	free(path);
	return f;
}

static void fill(uint8_t *buf, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)tu_rand(&seed);
}

static void test_write_read_round_trip(void **state)
{
	st_file *f = open_new("a");
	uint8_t out[10000], in[10000];
	size_t got;
	uint64_t size;
	(void)state;
	fill(out, sizeof out, 1);
	assert_int_equal(storage_write(f, out, sizeof out, 100), 0);
	assert_int_equal(storage_sync(f), 0);
	assert_int_equal(storage_size(f, &size), 0);
	assert_int_equal(size, 10100);
	assert_int_equal(storage_read(f, in, sizeof in, 100, &got), 0);
	assert_int_equal(got, sizeof in);
	assert_memory_equal(in, out, sizeof in);
	/* a read past the end stops at end of file */
	assert_int_equal(storage_read(f, in, sizeof in, 5100, &got), 0);
	assert_int_equal(got, 5000);
	assert_int_equal(storage_truncate(f, 50), 0);
	assert_int_equal(storage_size(f, &size), 0);
	assert_int_equal(size, 50);
	assert_int_equal(storage_allocate(f, 0, 1 << 16), 0);
	assert_int_equal(storage_size(f, &size), 0);
	assert_int_equal(size, 1 << 16);
	assert_int_equal(storage_close(f), 0);
}

/* Injected short transfers and EINTR are absorbed by the retry loops. */
static void test_short_and_eintr_are_retried(void **state)
{
	st_file *f = open_new("b");
	uint8_t out[8192], in[8192];
	size_t got;
	uint64_t fired = storage_fault_fired();
	(void)state;
	fill(out, sizeof out, 2);
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_SHORT, 1, 1, NULL), 0);
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_EINTR, 2, 1, NULL), 0);
	assert_int_equal(storage_fault_add(ST_OP_READ, ST_FAULT_SHORT, 1, 1, NULL), 0);
	assert_int_equal(storage_fault_add(ST_OP_READ, ST_FAULT_EINTR, 2, 1, NULL), 0);
	assert_int_equal(storage_write(f, out, 4096, 0), 0);
	assert_int_equal(storage_write(f, out + 4096, 4096, 4096), 0);
	assert_int_equal(storage_read(f, in, 4096, 0, &got), 0);
	assert_int_equal(got, 4096);
	assert_int_equal(storage_read(f, in + 4096, 4096, 4096, &got), 0);
	assert_int_equal(got, 4096);
	assert_memory_equal(in, out, sizeof out);
	assert_int_equal(storage_fault_fired() - fired, 4);
	assert_int_equal(storage_close(f), 0);
}

/* ENOSPC on the 2nd write only; the detail names the file and offset. */
static void test_enospc_on_nth_write(void **state)
{
	st_file *f = open_new("c");
	uint8_t buf[512] = {1};
	(void)state;
	assert_int_equal(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 2, 1, NULL), 0);
	assert_int_equal(storage_write(f, buf, sizeof buf, 0), 0);
	assert_int_equal(storage_write(f, buf, sizeof buf, 512), WD_ENOSPC);
	assert_non_null(strstr(wd_last_error(), dir));
	assert_non_null(strstr(wd_last_error(), "/c"));
	assert_non_null(strstr(wd_last_error(), "offset 512"));
	assert_int_equal(storage_write(f, buf, sizeof buf, 512), 0); /* space is back */
	assert_int_equal(storage_close(f), 0);
}

/* Faults counted from an I/O call: EIO on exactly call k; ENOSPC on any
 * operation skips the calls that take no space (reads, syncs) and hits
 * the first write at or after k, then every one; storage_fault_first
 * names the first call that failed. */
static void test_fault_at_io_call(void **state)
{
	st_file *f = open_new("at");
	uint8_t buf[512] = {1};
	st_fault_event e;
	uint64_t k;
	(void)state;
	assert_false(storage_fault_first(&e));
	k = storage_io_count() + 2;
	assert_int_equal(storage_fault_add_at(ST_OP_ANY, ST_FAULT_EIO, k, 1), 0);
	assert_int_equal(storage_write(f, buf, sizeof buf, 0), 0);   /* k - 1 */
	assert_int_equal(storage_sync(f), WD_EIO);                    /* k */
	assert_int_equal(storage_read(f, buf, sizeof buf, 0, NULL), 0); /* k + 1 */
	assert_true(storage_fault_first(&e));
	assert_int_equal(e.io, k);
	assert_int_equal(e.op, ST_OP_SYNC);
	assert_int_equal(e.kind, ST_FAULT_EIO);
	storage_fault_clear();
	assert_false(storage_fault_first(NULL));
	k = storage_io_count() + 1;
	assert_int_equal(storage_fault_add_at(ST_OP_ANY, ST_FAULT_ENOSPC, k, 0), 0);
	assert_int_equal(storage_read(f, buf, sizeof buf, 0, NULL), 0); /* k: no space taken */
	assert_int_equal(storage_sync(f), 0);                          /* k + 1 */
	assert_int_equal(storage_write(f, buf, sizeof buf, 512), WD_ENOSPC);
	assert_int_equal(storage_allocate(f, 0, 8192), WD_ENOSPC);
	assert_int_equal(storage_write(f, buf, sizeof buf, 512), WD_ENOSPC);
	assert_true(storage_fault_first(&e));
	assert_int_equal(e.io, k + 2);
	assert_int_equal(e.op, ST_OP_WRITE);
	assert_int_equal(e.kind, ST_FAULT_ENOSPC);
	storage_fault_clear();
	assert_int_equal(storage_write(f, buf, sizeof buf, 512), 0); /* space is back */
	assert_int_equal(storage_close(f), 0);
}

/* EIO on fsync, forever, only for paths containing "wal-0". */
static void test_eio_on_sync_by_path(void **state)
{
	st_file *w = open_new("wal-000"), *d = open_new("data");
	uint8_t buf[16] = {0};
	(void)state;
	assert_int_equal(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 0, "wal-0"), 0);
	assert_int_equal(storage_write(w, buf, sizeof buf, 0), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(storage_sync(w), WD_EIO);
		assert_non_null(strstr(wd_last_error(), "wal-000"));
		assert_int_equal(storage_sync(d), 0);
	}
	storage_fault_clear();
	assert_int_equal(storage_sync(w), 0);
	assert_int_equal(storage_close(w), 0);
	assert_int_equal(storage_close(d), 0);
}

/* Errors from the OS come back as WD_E codes naming the file. */
static void test_os_errors_name_the_file(void **state)
{
	char *missing = tu_path(dir, "no/such/file");
	char *a = tu_path(dir, "x"), *b = tu_path(dir, "y");
	st_file *f = NULL;
	(void)state;
	assert_int_equal(storage_open(missing, 0, &f), WD_ENOENT);
	assert_null(f);
	assert_non_null(strstr(wd_last_error(), missing));
	assert_int_equal(storage_open(a, ST_CREATE | ST_EXCL, &f), 0);
	assert_int_equal(storage_close(f), 0);
	assert_int_equal(storage_open(a, ST_CREATE | ST_EXCL, &f), WD_EEXIST);
	assert_int_equal(storage_rename(a, b), 0);
	assert_false(storage_exists(a));
	assert_true(storage_exists(b));
	assert_int_equal(storage_unlink(a), WD_ENOENT);
	assert_non_null(strstr(wd_last_error(), a));
	assert_int_equal(storage_unlink(b), 0);
	assert_int_equal(storage_sync_dir(dir), 0);
	assert_int_equal(storage_sync_dir(missing), WD_ENOENT);
	assert_int_equal(storage_mkdir(a), 0);
	assert_int_equal(storage_mkdir(a), WD_EEXIST);
	free(missing);
	free(a);
	free(b);
}

static void test_fault_spec_parsing(void **state)
{
	uint8_t buf[4] = {0};
	st_file *f = open_new("d");
	(void)state;
	assert_int_equal(storage_fault_parse("write:enospc:2:2@/d,sync:eio"), 0);
	assert_int_equal(storage_write(f, buf, 4, 0), 0);
	assert_int_equal(storage_write(f, buf, 4, 0), WD_ENOSPC);
	assert_int_equal(storage_write(f, buf, 4, 0), WD_ENOSPC);
	assert_int_equal(storage_write(f, buf, 4, 0), 0);
	assert_int_equal(storage_sync(f), WD_EIO);
	assert_int_equal(storage_sync(f), 0);
	assert_int_equal(storage_fault_parse("write:melt"), WD_EINVAL);
	assert_non_null(strstr(wd_last_error(), "write:melt"));
	assert_int_equal(storage_fault_parse("bogus:eio"), WD_EINVAL);
	assert_int_equal(storage_fault_parse("sync:short"), WD_EINVAL);
	assert_int_equal(storage_close(f), 0);
}

/* A detail may quote the one before it: err_set's arguments may point
 * into the buffer it writes (the formatted text is built apart first). */
static void test_detail_quotes_the_last(void **state)
{
	(void)state;
	assert_int_equal(err_set(WD_EIO, "first cause %d", 7), WD_EIO);
	assert_int_equal(err_set(WD_ENOSPC, "second (%s), again (%s)", wd_last_error(),
				 wd_last_error()), WD_ENOSPC);
	assert_string_equal(wd_last_error(), "second (first cause 7), again (first cause 7)");
	assert_int_equal(err_wrap(WD_EIO, "outer"), WD_EIO);
	assert_string_equal(wd_last_error(),
			    "outer: second (first cause 7), again (first cause 7)");
}

/* Every error code has its own message; unknown codes say so. */
static void test_every_error_has_a_message(void **state)
{
	(void)state;
	for (int e = 0; e >= WD_ERROR_LAST; e--) {
		assert_string_not_equal(wd_strerror(e), "unknown error code");
		for (int other = e - 1; other >= WD_ERROR_LAST; other--)
			assert_string_not_equal(wd_strerror(e), wd_strerror(other));
	}
	assert_string_equal(wd_strerror(WD_ERROR_LAST - 1), "unknown error code");
	assert_string_equal(wd_strerror(1), "unknown error code");
}

struct trace_capture {
	int lines;
	char last[512];
};

static void capture(void *arg, const char *module, const char *line)
{
	struct trace_capture *c = arg;
	c->lines++;
	snprintf(c->last, sizeof c->last, "%s %s", module, line);
}

/* Tracing reaches the callback only for enabled modules. */
static void test_trace_callback(void **state)
{
	struct trace_capture c = {0};
	st_file *f = open_new("t");
	(void)state;
	wd_trace_set_callback(capture, &c);
	assert_int_equal(wd_trace_enable("bufmgr"), 0);
	assert_int_equal(storage_sync(f), 0);
	assert_int_equal(c.lines, 0);
	assert_int_equal(wd_trace_enable("bufmgr,storage"), 0);
	assert_int_equal(storage_sync(f), 0);
	assert_int_equal(c.lines, 1);
	assert_non_null(strstr(c.last, "storage fdatasync"));
	assert_non_null(strstr(c.last, "/t"));
	assert_int_equal(wd_trace_enable("storage,nonsense"), WD_EINVAL);
	assert_non_null(strstr(wd_last_error(), "nonsense"));
	assert_int_equal(wd_trace_enable(""), 0); /* all off */
	assert_int_equal(storage_sync(f), 0);
	assert_int_equal(c.lines, 1);
	wd_trace_set_callback(NULL, NULL);
	assert_int_equal(storage_close(f), 0);
}

/* ---- crash points: these run in forked children ---- */

struct crash_args {
	const char *path;
	uint64_t nth;
};

/* Appends one byte per hit of "test-point"; armed to die at the nth hit. */
static void child_hits_point(void *arg)
{
	struct crash_args *a = arg;
	st_file *f = NULL;
	if (storage_open(a->path, ST_CREATE, &f) != 0)
		_exit(1);
	storage_crash_arm("test-point", a->nth);
	for (int i = 0; i < 10; i++) {
		uint8_t b = (uint8_t)i;
		if (storage_write(f, &b, 1, (uint64_t)i) != 0)
			_exit(1);
		storage_crash_point("other-point");
		storage_crash_point("test-point");
	}
	_exit(0);
}

static uint64_t file_size(const char *path)
{
	st_file *f = NULL;
	uint64_t size = 0;
	assert_int_equal(storage_open(path, ST_RDONLY, &f), 0);
	assert_int_equal(storage_size(f, &size), 0);
	assert_int_equal(storage_close(f), 0);
	return size;
}

static void test_crash_point_fires_on_nth_hit(void **state)
{
	struct crash_args a = {tu_path(dir, "cp"), 4};
	(void)state;
	assert_int_equal(tu_run_child(child_hits_point, &a), ST_CRASH_EXIT_CODE);
	assert_int_equal(file_size(a.path), 4); /* died after the 4th write */
	free((char *)a.path);
}

/* Arming "test-point" for hit 11 of 10: the child finishes normally. */
static void test_unfired_crash_point_is_harmless(void **state)
{
	struct crash_args a = {tu_path(dir, "cp2"), 11};
	(void)state;
	assert_int_equal(tu_run_child(child_hits_point, &a), 0);
	assert_int_equal(file_size(a.path), 10);
	free((char *)a.path);
	assert_int_equal(storage_crash_hits("never-hit"), 0);
}

/* Arms a crash at the I/O call 3 beyond the open, then writes 10 bytes. */
static void child_crash_at_io(void *arg)
{
	struct crash_args *a = arg;
	st_file *f = NULL;
	if (storage_open(a->path, ST_CREATE, &f) != 0)
		_exit(1);
	storage_crash_arm_io(storage_io_count() + a->nth);
	for (int i = 0; i < 10; i++) {
		uint8_t b = (uint8_t)i;
		if (storage_write(f, &b, 1, (uint64_t)i) != 0)
			_exit(1);
	}
	_exit(0);
}

static void test_crash_at_io_index(void **state)
{
	struct crash_args a = {tu_path(dir, "io"), 3};
	(void)state;
	assert_int_equal(tu_run_child(child_crash_at_io, &a), ST_CRASH_EXIT_CODE);
	assert_int_equal(file_size(a.path), 2); /* the 3rd write never ran */
	free((char *)a.path);
}

/* The environment arms crash points in a fresh process (re-exec'd). */
static void test_crash_point_from_environment(void **state)
{
	char *path = tu_path(dir, "env");
	int status;
	pid_t pid;
	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("WALDEN_CRASH_POINT", "test-point:3", 1);
		setenv("WALDEN_FAULT", "write:enospc:2", 1);
		execl("/proc/self/exe", "test_storage", "--env-child", path, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), ST_CRASH_EXIT_CODE);
	assert_int_equal(file_size(path), 3);
	free(path);
}

/* Body of the re-exec'd child: a write then a hit of test-point, 10 times.
 * WALDEN_FAULT makes the 2nd write fail; if it was not read the child
 * exits 1 instead of reaching the 3rd hit of the crash point. */
static int env_child(const char *path)
{
	st_file *f = NULL;
	if (storage_open(path, ST_CREATE, &f) != 0)
		return 1;
	for (int i = 0; i < 10; i++) {
		uint8_t b = 1;
		int rc = storage_write(f, &b, 1, (uint64_t)i);
		if (rc != (i == 1 ? WD_ENOSPC : 0))
			return 1;
		storage_crash_point("test-point");
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_read_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_and_eintr_are_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_on_nth_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eio_on_sync_by_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_at_io_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_os_errors_name_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_spec_parsing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_error_has_a_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detail_quotes_the_last, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trace_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_point_fires_on_nth_hit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unfired_crash_point_is_harmless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_at_io_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_point_from_environment, setup, teardown),
	};
	if (argc == 3 && strcmp(argv[1], "--env-child") == 0)
		return env_child(argv[2]);
	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
