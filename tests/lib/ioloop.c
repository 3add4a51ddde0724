/*
 * ioloop.c - the I/O-error loop of det in parts (ioloop.h). Entry points:
 * iol_stride, iol_run_part.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "crashtest/crashtest.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/ioloop.h"
#include "tests/lib/testutil.h"

uint64_t iol_stride(void)
{
	const char *e = getenv("WALDEN_IOERR_STRIDE");
	double scale = dt_scale();
	if (e && *e && atoll(e) > 0)
		return (uint64_t)atoll(e);
	return scale >= 1.0 ? 1 : (uint64_t)(25 / (scale > 0.04 ? scale : 0.04));
}

/* Every state writes, recovers and reads a database: scratch in memory
 * when there is a tmpfs (the power loss is the storage layer's simulation,
 * so the files need not reach a disk), unless $TMPDIR names a place. */
static void scratch_in_memory(void)
{
	struct statvfs v;
	/* a small tmpfs (a container's 64 MiB /dev/shm) would add real
	 * ENOSPC to the injected ones: 1 GiB free or the default place */
	if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0 &&
	    statvfs("/dev/shm", &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize >= (1ull << 30))
		setenv("TMPDIR", "/dev/shm", 1);
}

static void print_summary(unsigned part, const ct_config *c, uint64_t io_calls,
			  const ct_summary *s)
{
	double n = s->states ? (double)s->states : 1;
	print_message("I/O-error loop, part %u of %d: %llu states (eio-once %llu, eio %llu, "
		      "enospc %llu; I/O calls 1 + (%u + %d j) x %llu of %llu) in %.1f s, %.1f "
		      "states/s; per state: workload %.1f ms, materialise %.1f ms, recovery "
		      "%.1f ms, read and check %.1f ms\n",
		      part + 1, IOL_PARTS, (unsigned long long)s->states,
		      (unsigned long long)s->by_ioerr[CT_IOERR_EIO_ONCE],
		      (unsigned long long)s->by_ioerr[CT_IOERR_EIO],
		      (unsigned long long)s->by_ioerr[CT_IOERR_ENOSPC], part, IOL_PARTS,
		      (unsigned long long)c->choose_arg, (unsigned long long)io_calls,
		      s->elapsed_s, s->elapsed_s > 0 ? (double)s->states / s->elapsed_s : 0,
		      1000 * s->t_workload / n, 1000 * s->t_materialise / n,
		      1000 * s->t_recovery / n, 1000 * s->t_check / n);
}

void iol_run_part(unsigned part)
{
	char *dir;
	ct_config c;
	ct_profile p;
	ct_summary s;
	uint64_t n, io_calls, margin;
	assert_true(part < IOL_PARTS);
	scratch_in_memory();
	dir = tu_tmpdir("ct-ioerr-loop");
	ct_config_default(&c);
	c.workload = "det";
	c.seed = 1;
	c.faults = (1u << CT_EIO) | (1u << CT_ENOSPC);
	c.jobs = 2;
	c.work_dir = dir;
	c.choose = ct_ioerr_every_k;
	c.choose_arg = iol_stride();
	c.loop_part = part;
	c.loop_parts = IOL_PARTS;
	OK(ct_describe(&c, false, &p));
	/* the loop's k run over the calls of this profile run and 2% more:
	 * det's count drifts from run to run (I1; 3,417 to 3,477 in five
	 * runs), and each part takes its own profile, so without the margin
	 * a k near the end that one part's profile lacks would be nobody's.
	 * A k past a run's end never fires: the margin's states may not
	 * fire, besides the 10% allowance below. */
	io_calls = p.io_calls + p.io_calls / 50;
	n = ct_ioerr_every_k_states(&c, io_calls);
	margin = n - ct_ioerr_every_k_states(&c, p.io_calls);
	ct_profile_free(&p);
	if (n == 0) { /* a stride so large that this part has no step */
		print_message("I/O-error loop, part %u of %d: no step at stride %llu of %llu "
			      "I/O calls\n", part + 1, IOL_PARTS,
			      (unsigned long long)c.choose_arg, (unsigned long long)io_calls);
		tu_rmrf(dir);
		free(dir);
		return;
	}
	c.states = n;
	OK(ct_campaign_run(&c, &s));
	print_summary(part, &c, io_calls, &s);
	if (s.failed) {
		ct_summary_print(&s, &c, stderr);
		fail_msg("I/O-error loop, part %u: %llu violations", part + 1,
			 (unsigned long long)s.failed);
	}
	assert_int_equal(s.states, n);
	assert_int_equal(s.passed, n);
	assert_int_equal(s.by_ioerr[CT_IOERR_EIO_ONCE] * 3, n);
	assert_int_equal(s.by_ioerr[CT_IOERR_EIO] * 3, n);
	assert_int_equal(s.by_ioerr[CT_IOERR_ENOSPC] * 3, n);
	/* the errors fired: a state whose error never fired ran to its end */
	assert_true(s.by_trigger[CT_TRIG_IO] >= n - margin - n / 10);
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
}
