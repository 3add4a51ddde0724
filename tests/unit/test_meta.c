/*
 * test_meta.c - the planted-bug meta-test: proof that the crash campaign
 * (crashtest/) catches real recovery bugs. Built only in the plant flavour
 * (make MODE=plant, -DWALDEN_PLANTS), where WD_PLANTED(name) in the engine
 * (storage/plant.h) arms the known bug $WALDEN_PLANT names. For each bug of
 * the table in storage/README.md ("Planted bugs") the suite runs a campaign
 * chosen to reach it (workload, fault kind, full-page writes, an injected
 * EIO), stopping at the first violation, and asserts that a violation of an
 * expected class comes within MAX_STATES states; a control runs every one
 * of those campaigns with no bug planted and asserts that they pass. The
 * last test prints the table: plant, caught, states needed, verdict,
 * replay line, and "caught N / planted N".
 *
 * Time (2 cores, 2 jobs, scratch on tmpfs): 15 to 35 s in the plant
 * flavour (release flags), about 2 minutes on a machine loaded 5 times
 * over; the control's 192 states are the fixed part, undo-no-clr the
 * variable one (28 to 352 states in six runs). The suite is not built under
 * the sanitizers: the plants exist only in the plant flavour, whose new
 * paths (the campaign options, the SYNCFAIL record) the release and ASan
 * suites test_crashtest and test_sim cover.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crashtest/crashtest.h"
#include "tests/lib/testutil.h"

/* Within how many crash states each planted bug must be caught. A bug the
 * campaign no longer catches runs this many states before the test fails
 * (about 20 minutes): the failure itself is the finding. */
#define MAX_STATES 10000
/* States of each control campaign (no bug planted). */
#define CONTROL_STATES 24

#define V(x) (1u << (x))
#define KILL (1u << CT_KILL)
#define POWER (1u << CT_POWER)
#define TORN (1u << CT_TORN)

/*
 * The WAL fdatasync the EIO plant fails: the 20th fdatasync of a WAL
 * segment file ("wal/0..."), a commit's flush (sync_locked) - not the sync
 * of a new segment's fill, which goes to wal/segment.tmp and panics with
 * or without the plant. It comes early in det, so most states' triggers
 * fire after it.
 */
#define EIO_AT_WAL_SYNC "sync:eio:20:1@/wal/0"

/* One planted bug and the campaign that must catch it. */
struct plant {
	const char *name;     /* WALDEN_PLANT */
	const char *what;     /* for the table */
	unsigned faults;      /* fault kinds of its campaign */
	bool no_fpw;          /* full_page_writes off */
	const char *io_faults;/* injected in the workload child */
	unsigned expect;      /* verdict classes that count as caught */
	/* the result */
	bool ran, caught;
	uint64_t states, needed;
	ct_verdict verdict;
	char replay[1024];
};

/* Designated, so that the results start zero without a warning. */
#define PLANT(n, w, f, nofpw, io, ex)                                            \
	{.name = (n), .what = (w), .faults = (f), .no_fpw = (nofpw), .io_faults = (io), \
	 .expect = (ex)}

static struct plant plants[] = {
	PLANT("commit-no-fsync", "commit acknowledged before the WAL fsync", POWER, false,
	      NULL, V(CT_LOST_ACK) | V(CT_NO_RECOVERY)),
	PLANT("no-fpi", "first change after a checkpoint without its full-page image", TORN,
	      false, NULL, V(CT_NO_RECOVERY) | V(CT_STRUCT) | V(CT_SILENT_CORRUPT)),
	PLANT("segment-no-dirsync", "no directory fsync after creating a WAL segment", POWER,
	      false, NULL, V(CT_NO_RECOVERY) | V(CT_LOST_ACK)),
	PLANT("undo-no-clr", "rollback writes no CLRs", KILL, false, NULL,
	      V(CT_STRUCT) | V(CT_NO_RECOVERY) | V(CT_DIRTY) | V(CT_PARTIAL)),
	PLANT("redo-no-pagelsn", "redo without the pageLSN test", KILL, true, NULL,
	      V(CT_NO_RECOVERY) | V(CT_STRUCT) | V(CT_SILENT_CORRUPT)),
	PLANT("ckpt-no-sync", "control file names a checkpoint whose pages are not synced",
	      POWER, false, NULL, V(CT_LOST_ACK) | V(CT_NO_RECOVERY) | V(CT_STRUCT)),
	PLANT("fsync-retry", "fsync retried after EIO instead of the panic state", POWER,
	      false, EIO_AT_WAL_SYNC, V(CT_LOST_ACK) | V(CT_NO_RECOVERY)),
	PLANT("ckpt-retire-early", "WAL segments retired before the control file names "
	      "the checkpoint", KILL, false, NULL, V(CT_NO_RECOVERY)),
};
#define NPLANTS (sizeof plants / sizeof plants[0])

static ct_config config(const struct plant *p, uint64_t states, const char *dir)
{
	ct_config c;
	ct_config_default(&c);
	c.workload = "det"; /* one thread, its I/O order repeats: exact replays */
	c.seed = 1;
	c.states = states;
	c.faults = p->faults;
	c.no_full_page_writes = p->no_fpw;
	c.io_faults = p->io_faults;
	c.jobs = 2;
	c.work_dir = dir;
	return c;
}

/* The control: each plant's campaign, no bug planted, passes. */
static void test_control(void **state)
{
	char *dir = tu_tmpdir("meta-control");
	(void)state;
	unsetenv("WALDEN_PLANT");
	for (size_t i = 0; i < NPLANTS; i++) {
		ct_config c = config(&plants[i], CONTROL_STATES, dir);
		ct_summary s;
		char line[1024];
		assert_int_equal(ct_campaign_run(&c, &s), 0);
		for (size_t k = 0; k < s.nviol; k++) {
			ct_replay_line(&c, &s.viol[k].spec, line, sizeof line);
			print_message("control of %s: %s: %s\n  %s\n", plants[i].name,
				      ct_verdict_name(s.viol[k].verdict), s.viol[k].first, line);
		}
		assert_int_equal(s.states, CONTROL_STATES);
		assert_int_equal(s.failed, 0);
		ct_summary_free(&s);
	}
	tu_rmrf(dir);
	free(dir);
}

/* One plant: its campaign with the bug armed stops at the first violation;
 * the violation of the lowest state index is the one reported (every
 * state below it ran: the jobs take indices in order). */
static void test_plant(void **state)
{
	struct plant *p = *state;
	char *dir = tu_tmpdir("meta-plant");
	ct_config c = config(p, MAX_STATES, dir);
	ct_summary s;
	const ct_violation *first = NULL;
	setenv("WALDEN_PLANT", p->name, 1);
	c.max_failures = 1;
	assert_int_equal(ct_campaign_run(&c, &s), 0);
	unsetenv("WALDEN_PLANT");
	for (size_t k = 0; k < s.nviol; k++)
		if (!first || s.viol[k].spec.index < first->spec.index)
			first = &s.viol[k];
	p->ran = true;
	p->states = s.states;
	if (first) {
		char line[900];
		p->caught = (p->expect & V(first->verdict)) != 0;
		p->needed = first->spec.index + 1;
		p->verdict = first->verdict;
		ct_replay_line(&c, &first->spec, line, sizeof line);
		snprintf(p->replay, sizeof p->replay, "WALDEN_PLANT=%s %s", p->name, line);
		print_message("%s: %s after %llu states: %s\n", p->name,
			      ct_verdict_name(first->verdict), (unsigned long long)p->needed,
			      first->first);
	}
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
	assert_non_null(first);
	assert_true(p->caught);
	assert_true(p->needed <= MAX_STATES);
}

/* The table of every plant, and caught N / planted N. */
static void test_table(void **state)
{
	size_t caught = 0;
	(void)state;
	print_message("%-20s %-6s %-7s %-15s %s\n", "plant", "caught", "states", "verdict",
		      "replay");
	for (size_t i = 0; i < NPLANTS; i++) {
		const struct plant *p = &plants[i];
		caught += p->caught;
		if (p->needed)
			print_message("%-20s %-6s %-7llu %-15s %s\n", p->name,
				      p->caught ? "yes" : "no", (unsigned long long)p->needed,
				      ct_verdict_name(p->verdict), p->replay);
		else
			print_message("%-20s %-6s %-7llu %-15s %s\n", p->name, "no",
				      (unsigned long long)p->states, "-",
				      p->ran ? "no violation" : "not run");
	}
	print_message("caught %zu / planted %zu\n", caught, NPLANTS);
	assert_int_equal(caught, NPLANTS);
}

int main(void)
{
	struct CMUnitTest tests[NPLANTS + 2];
	size_t n = 0;
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_control);
	for (size_t i = 0; i < NPLANTS; i++) {
		tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_plant, &plants[i]);
		tests[n++].name = plants[i].name;
	}
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_table);
	return _cmocka_run_group_tests("test_meta", tests, n, NULL, NULL);
}
