/*
 * test_bench.c - the recovery benchmarks end to end at their --quick
 * scale: `walden bench redo` (a killed writer, then copies of its
 * directory recovered with two pools), `walden bench recovery` (a killed
 * run per max_wal_size, recovered, beside LMDB) and `walden bench fpw`
 * (W5 with full_page_writes and wal_compression on and off). Each must
 * exit 0, leave no scratch data behind and print one JSON line that parses
 * and holds sane values: all the WAL written was replayed, pages were
 * applied, images appear with full_page_writes only and shrink with
 * compression. Never a time compared with anything: speed is what the
 * benchmarks measure, not what the tests check. Also `walden bench read`
 * at a small scale with and without huge pages, their options and
 * usage errors, and the JSON reader these checks rely on. Runs the binary
 * named by WALDEN_BIN (set by the Makefile).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/lib/jsontest.h"
#include "tests/lib/testutil.h"

static char *base; /* the --dir of every run */

struct run {
	int status;
	char out[1 << 16], err[1 << 14];
};

static void run_tool(struct run *r, const char *const *args)
{
	r->status = tu_run_tool(args, r->out, sizeof r->out, r->err, sizeof r->err);
}

/* The run succeeded; its last stdout line is valid JSON, returned. */
static const char *json_of(const struct run *r)
{
	const char *line;
	size_t len = strlen(r->out);
	if (r->status != 0 || len == 0 || r->out[len - 1] != '\n')
		fail_msg("status %d\n--- stdout:\n%s\n--- stderr:\n%s", r->status, r->out, r->err);
	line = r->out + len - 1;
	while (line > r->out && line[-1] != '\n')
		line--;
	if (!jt_valid(line))
		fail_msg("not one JSON value:\n%s", line);
	return line;
}

/* The number at path, which must be there. */
static double num(const char *json, const char *path)
{
	double v;
	if (!jt_number(json, path, &v))
		fail_msg("no number at %s in\n%s", path, json);
	return v;
}

/* A number at path in [lo, hi]. */
static void expect_range(const char *json, const char *path, double lo, double hi)
{
	double v = num(json, path);
	if (v < lo || v > hi)
		fail_msg("%s = %g, outside [%g, %g]", path, v, lo, hi);
}

/* The scratch base holds nothing: the benchmark removed its data. */
static void expect_cleaned(void)
{
	DIR *d = opendir(base);
	struct dirent *de;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			fail_msg("left behind: %s/%s", base, de->d_name);
	closedir(d);
}

static int setup(void **state)
{
	(void)state;
	base = tu_tmpdir("bench");
	return base ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(base);
	free(base);
	return 0;
}

/* The reader itself: paths into objects and arrays, and texts that are
 * not JSON refused. */
static void test_json_reader(void **state)
{
	static const char *const bad[] = {
		"", "{", "{\"a\":1,}", "{\"a\":01}", "[1 2]", "{\"a\":\"\x01\"}", "{} x",
		"{\"a\":nan}", "{a:1}", "[1,]", "\"\\q\"", "-", "1.", "1e",
	};
	const char *ok = " {\"a\":[1,{\"b\":-2.5e3}],\"c\":\"x-y\",\"d\":{},\"e\":true} ";
	char s[8];
	double v;
	(void)state;
	assert_true(jt_valid(ok));
	assert_true(jt_number(ok, "a.1.b", &v));
	assert_true(v == -2500);
	assert_true(jt_number(ok, "a.0", &v) && v == 1);
	assert_int_equal(jt_count(ok, "a"), 2);
	assert_int_equal(jt_count(ok, "d"), 0);
	assert_int_equal(jt_count(ok, ""), 4);
	assert_true(jt_string(ok, "c", s, sizeof s));
	assert_string_equal(s, "x-y");
	assert_false(jt_number(ok, "c", &v));  /* a string */
	assert_false(jt_number(ok, "a.2", &v)); /* no such element */
	assert_false(jt_number(ok, "a.x", &v)); /* not an index */
	assert_false(jt_number(ok, "z", &v));
	assert_false(jt_string(ok, "c", s, 3)); /* does not fit */
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (jt_valid(bad[i]))
			fail_msg("accepted: %s", bad[i]);
}

/* redo: the whole log the killed writer left past its redo point is
 * replayed, with either pool, and the keys read back (the command fails
 * otherwise). --cold, --runs, --pool-mb and --wal-mb taken. */
static void test_redo(void **state)
{
	static const char *const pools[] = {"all-pages", "eighth"};
	struct run *r = malloc(sizeof *r);
	const char *j;
	char s[16], path[64];
	double wal;
	(void)state;
	run_tool(r, (const char *[]){"bench", "redo", "--quick", "--runs", "2", "--cold",
				     "--pool-mb", "8", "--wal-mb", "6", "--json", "--dir", base,
				     NULL});
	j = json_of(r);
	assert_true(jt_string(j, "bench", s, sizeof s));
	assert_string_equal(s, "redo");
	assert_true(num(j, "runs") == 2 && num(j, "wal_mb") == 6 && num(j, "n") == 5000);
	wal = num(j, "write.wal_bytes");
	assert_true(wal >= 6 << 20); /* the writer stops once the target is reached */
	expect_range(j, "write.update_wal_bytes", 1, wal);
	expect_range(j, "data_bytes", 1, 1e12);
	assert_true(num(j, "recovery.all-pages.pool_bytes") == 8 << 20);
	assert_true(num(j, "recovery.eighth.pool_bytes") == 1 << 20);
	for (int p = 0; p < 2; p++) {
#define AT(field) (snprintf(path, sizeof path, "recovery.%s.%s", pools[p], field), path)
		expect_range(j, AT("wal_bytes"), wal, 1e12); /* all of it replayed */
		expect_range(j, AT("records"), 1, 1e12);
		expect_range(j, AT("applied"), 1, 1e12);
		expect_range(j, AT("resident_pct"), 0, 100);
		expect_range(j, AT("open_s"), 1e-9, 1e6);
		expect_range(j, AT("mib_s"), 1e-9, 1e9);
#undef AT
	}
	expect_cleaned();
	free(r);
}

/* recovery: each --max-wal setting (taken in increasing order) runs, is
 * killed and recovered; LMDB runs beside it. */
static void test_recovery(void **state)
{
	struct run *r = malloc(sizeof *r);
	const char *j;
	char path[64];
	(void)state;
	run_tool(r, (const char *[]){"bench", "recovery", "--quick", "--max-wal", "3,1", "--json",
				     "--dir", base, NULL});
	j = json_of(r);
	assert_int_equal(jt_count(j, "settings"), 2);
	assert_true(num(j, "settings.0.max_wal_mb") == 1 && num(j, "settings.1.max_wal_mb") == 3);
	assert_true(num(j, "updates") == 20000);
	for (int k = 0; k < 2; k++) {
#define AT(field) (snprintf(path, sizeof path, "settings.%d.%s", k, field), path)
		expect_range(j, AT("updates_s"), 1e-9, 1e12);
		expect_range(j, AT("ratio_vs_lmdb"), 1e-9, 1e6);
		expect_range(j, AT("update_wal_bytes"), 20000, 1e12); /* > 1 byte per update */
		expect_range(j, AT("checkpoints"), 0, 1e6);
		expect_range(j, AT("wal_bytes"), 1, 1e12);
		expect_range(j, AT("applied"), 1, 1e12);
		expect_range(j, AT("open_s"), 1e-9, 1e6);
#undef AT
	}
	expect_range(j, "lmdb.updates_s", 1e-9, 1e12);
	expect_cleaned();
	free(r);
}

/* fpw: images only with full_page_writes, compressed smaller with
 * wal_compression, more WAL with them than without; the table printed
 * before the JSON line. */
static void test_fpw(void **state)
{
	static const char *const settings[] = {"fpw", "fpw_compression", "no_fpw"};
	struct run *r = malloc(sizeof *r);
	const char *j;
	char path[64];
	(void)state;
	run_tool(r, (const char *[]){"bench", "fpw", "--quick", "--dir", base, NULL});
	j = json_of(r);
	if (!strstr(r->out, "walden bench fpw:") || !strstr(r->out, "full_page_writes off"))
		fail_msg("no table:\n%s", r->out);
	for (int s = 0; s < 3; s++) {
#define AT(field) (snprintf(path, sizeof path, "settings.%s.%s", settings[s], field), path)
		expect_range(j, AT("updates_s"), 1e-9, 1e12);
		expect_range(j, AT("ratio_vs_lmdb"), 1e-9, 1e6);
		expect_range(j, AT("wal_bytes"), 5000, 1e12);
		expect_range(j, AT("records"), 5000, 1e12); /* a record per update at least */
#undef AT
	}
	expect_range(j, "settings.fpw.images", 1, 1e12);
	assert_true(num(j, "settings.fpw_compression.images") == num(j, "settings.fpw.images"));
	assert_true(num(j, "settings.no_fpw.images") == 0);
	assert_true(num(j, "settings.fpw.image_bytes") > num(j, "settings.fpw_compression.image_bytes"));
	assert_true(num(j, "settings.fpw.wal_bytes") > num(j, "settings.no_fpw.wal_bytes"));
	assert_true(num(j, "settings.fpw.heap_images") + num(j, "settings.fpw.index_images") <=
		    num(j, "settings.fpw.images"));
	expect_range(j, "lmdb.updates_s", 1e-9, 1e12);
	expect_cleaned();
	free(r);
}

/*
 * `walden bench read` at a small scale, with the pool on huge pages (the
 * default) and on ordinary pages: both runs measure both engines, and the
 * JSON line says which pages walden's pool was given.
 */
static void test_read_huge_pages(void **state)
{
	struct run *r = malloc(sizeof *r);
	const char *j;
	(void)state;
	for (int huge = 1; huge >= 0; huge--) {
		run_tool(r, (const char *[]){"bench", "read", "--n", "3000", "--runs", "1", "--dir",
					     base, huge ? NULL : "--no-huge-pages", NULL});
		j = json_of(r);
		assert_true(num(j, "huge_pages") == huge);
		assert_int_equal(strstr(r->out, "on ordinary pages") != NULL, !huge);
		expect_range(j, "workloads.point_read.walden", 1e-9, 1e12);
		expect_range(j, "workloads.point_read.lmdb", 1e-9, 1e12);
		expect_range(j, "workloads.point_read.ratio", 1e-9, 1e6);
		expect_cleaned();
	}
	run_tool(r, (const char *[]){"bench", "read", "--help", NULL});
	if (r->status != 0 || !strstr(r->out, "--no-huge-pages"))
		fail_msg("read --help:\n%s", r->out);
	free(r);
}

/* --help of each on stdout with exit 0; misuse exits 2; the list of
 * benchmarks names the new ones. */
static void test_usage(void **state)
{
	static const char *const cmds[] = {"redo", "recovery", "fpw"};
	struct run *r = malloc(sizeof *r);
	char want[64];
	(void)state;
	for (int i = 0; i < 3; i++) {
		run_tool(r, (const char *[]){"bench", cmds[i], "--help", NULL});
		snprintf(want, sizeof want, "usage: walden bench %s", cmds[i]);
		assert_int_equal(r->status, 0);
		if (!strstr(r->out, want) || !strstr(r->out, "--quick") || !strstr(r->out, "--runs"))
			fail_msg("%s --help:\n%s", cmds[i], r->out);
		run_tool(r, (const char *[]){"bench", cmds[i], "stray", NULL});
		assert_int_equal(r->status, 2);
	}
	run_tool(r, (const char *[]){"bench", "recovery", "--max-wal", "64,0", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"bench", "recovery", "--max-wal", "1,2,3,4,5,6,7,8,9", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"bench", "fpw", "--wal-mb", "4", NULL}); /* redo's */
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"bench", "redo", "--runs", "0", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"bench", "--help", NULL});
	assert_int_equal(r->status, 0);
	for (int i = 0; i < 3; i++) {
		snprintf(want, sizeof want, "  %-9s", cmds[i]);
		if (!strstr(r->out, want))
			fail_msg("bench --help does not list %s:\n%s", cmds[i], r->out);
	}
	expect_cleaned();
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_reader),
		cmocka_unit_test(test_redo),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_fpw),
		cmocka_unit_test(test_read_huge_pages),
		cmocka_unit_test(test_usage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
