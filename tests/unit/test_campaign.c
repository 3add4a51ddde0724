/*
 * test_campaign.c - the crash-test campaigns CI runs, through the walden
 * binary ($WALDEN_BIN, so with `walden check` as the full check): the
 * exhaustive det campaign (a crash before every I/O call of a run, each
 * resolved four ways) and a randomized campaign of 20,000 states (kill,
 * power and torn, two threads). Each must end with 0 violations, and its
 * triggers must have fired: every I/O index in exhaustive mode, crash
 * points and I/O indices in the randomized one.
 *
 * Time (2 cores shared with other jobs, /dev/shm): release 6.8 minutes
 * at a load of 4-6 (the exhaustive campaign, about 13,900 states, 5.1
 * minutes; the 20,000 randomized states 1.7), 12.5 minutes at 7-10;
 * under AddressSanitizer (WALDEN_TEST_SCALE below 1, 0.2 by default)
 * exhaustive with --stride 32 (about 440 states) and 500 randomized
 * states: 3 minutes.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"

#define OUT_CAP (256 * 1024)

/* /dev/shm when there is one (a campaign writes a database per state). */
static const char *scratch_dir(void)
{
	struct stat st;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	return NULL;
}

/* The number after `prefix` in out, or fails the test. */
static unsigned long long number_after(const char *out, const char *prefix)
{
	const char *p = strstr(out, prefix);
	if (!p)
		fail_msg("no '%s' in the summary:\n%s", prefix, out);
	return strtoull(p + strlen(prefix), NULL, 10);
}

/* Runs `walden crashtest ARGS --dir D -q`, checks its exit status and
 * the closing line "N passed, 0 failed"; returns the summary (malloc'd). */
static char *campaign(const char *const *args, unsigned long long *states)
{
	const char *argv[24];
	char *out = malloc(OUT_CAP), err[4096];
	const char *dir = scratch_dir();
	char *tmp = dir ? NULL : tu_tmpdir("ct-campaign");
	size_t n = 0;
	int rc;
	assert_non_null(out);
	while (args[n]) {
		argv[n] = args[n];
		n++;
	}
	argv[n++] = "--dir";
	argv[n++] = dir ? dir : tmp;
	argv[n++] = "-q";
	argv[n] = NULL;
	rc = tu_run_tool(argv, out, OUT_CAP, err, sizeof err);
	if (rc != 0) { /* the whole summary: cmocka's message would cut it */
		fprintf(stderr, "%s\n%s\n", out, err);
		fail_msg("exit status %d (summary above)", rc);
	}
	*states = number_after(out, "states: ");
	{
		char want[64];
		snprintf(want, sizeof want, "%llu passed, 0 failed", *states);
		if (!strstr(out, want)) {
			fprintf(stderr, "%s\n", out);
			fail_msg("want '%s' (summary above)", want);
		}
	}
	if (tmp) {
		tu_rmrf(tmp);
		free(tmp);
	}
	return out;
}

/*
 * Exhaustive det: 4 states for every I/O call of one run (every 32nd call
 * under AddressSanitizer), every index covered, no violation.
 */
static void test_exhaustive_det(void **state)
{
	bool small = dt_scale() < 1.0;
	const char *args[] = {"crashtest", "--workload", "det", "--exhaustive", "--jobs", "2",
			      small ? "--stride" : NULL, "32", NULL};
	unsigned long long states, n, distinct;
	char *out;
	(void)state;
	out = campaign(args, &states);
	n = number_after(out, "exhaustive: N = ");
	distinct = number_after(out, "I/O indices: ");
	print_message("exhaustive det: N = %llu, %llu states, %llu indices\n", n, states,
		      distinct);
	assert_true(n > 1000); /* det makes thousands of I/O calls */
	assert_int_equal(distinct, small ? (n + 31) / 32 : n);
	assert_int_equal(states, 4 * distinct);
	assert_non_null(strstr(out, "index covered: yes, 0 violations"));
	assert_int_equal(number_after(out, "by resolution: kill 0, keep-all "), distinct);
	free(out);
}

/*
 * 20,000 randomized states (500 under AddressSanitizer) of the random
 * workload with two threads, kill, power and torn (the prefix states; EIO
 * and ENOSPC states run in test_ioerr and test_crashtest): no violation;
 * crash points and I/O indices fired; the states came from many recorded
 * runs; the async rule held some old enough asynchronous commits to
 * surviving (crashtest/README.md: it excuses those no WAL writer cycle
 * covered).
 */
static void test_random_campaign(void **state)
{
	char n[32];
	unsigned long long want = dt_scale() < 1.0 ? 500 : 20000, states;
	const char *args[] = {"crashtest", "--workload", "random", "--threads", "2", "--fault",
			      "kill,power,torn", "--states", n, "--jobs", "2", "--seed", "11", NULL};
	char *out;
	(void)state;
	snprintf(n, sizeof n, "%llu", want);
	out = campaign(args, &states);
	assert_int_equal(states, want);
	assert_true(number_after(out, "crash points: ") >= 10);
	assert_true(number_after(out, "I/O indices: ") >= 100);
	assert_true(number_after(out, "by fault: kill ") > 0);
	assert_true(number_after(out, "workload runs: ") >= want / 16);
	{ /* the async rule held commits to it, not only excused them */
		unsigned long long old = number_after(out, "to have to survive: ");
		unsigned long long excused =
			number_after(strstr(out, "to have to survive: "), ", of which ");
		print_message("asynchronous commits old enough: %llu, excused %llu\n", old,
			      excused);
		assert_true(old > excused);
	}
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exhaustive_det),
		cmocka_unit_test(test_random_campaign),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
