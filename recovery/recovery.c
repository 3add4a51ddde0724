/*
 * recovery.c - recovery_run (README P3): the passes of crash recovery in
 * order - analysis, redo, then through the database's callbacks the
 * repair and the undo of the losers, and last the end-of-recovery
 * checkpoint - each timed into the report and marked on the trace, with
 * a crash point between each two (README "Crash points").
 */
#define _GNU_SOURCE
#include <time.h>

#include "recovery/recovery_internal.h"
#include "storage/storage.h"
#include "storage/trace.h"
#include "wal/wal.h"

/* Milliseconds on the monotonic clock, for the report's pass times. */
static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Step 1: the report's first fields; the control file says "in crash
 * recovery" from now on, so a crash anywhere later recovers again. */
static int begin(const recovery_ctx *c, recovery_report *r)
{
	*r = (recovery_report){.control_state = c->cd->state,
			       .checkpoint_lsn = c->cd->checkpoint_lsn,
			       .checkpoint_redo = c->cd->redo_lsn,
			       .analysis_start = c->from,
			       .wal_end = c->end,
			       .end_reason_name = "?"};
	c->cd->state = CONTROL_IN_RECOVERY;
	return control_write(c->dir, c->cd);
}

/* Steps 2-3: analysis, the tables on the trace, redo. */
static int analysis_and_redo(const recovery_ctx *c, analysis *a, recovery_report *r)
{
	double t0 = now_ms(), t1;
	int rc = recovery_analysis(c, a, r);
	if (rc == 0)
		rc = recovery_trace_tables(a, r);
	t1 = now_ms();
	r->analysis_ms = t1 - t0;
	if (rc != 0)
		return rc;
	/* the control file says "in crash recovery"; no page changed yet */
	storage_crash_point("recovery-after-analysis");
	rc = recovery_redo(c, a, r);
	r->redo_ms = now_ms() - t1;
	return rc;
}

/* Steps 4-6: the layers above come up, repair, undo (the callbacks). */
static int repair_and_undo(const recovery_ctx *c, const analysis *a, recovery_report *r)
{
	double t0 = now_ms(), t1;
	int rc = c->ops.start(c->arg);
	TRACE(TR_RECOVERY, "== repair == (heap and index made to agree where a crash can "
	      "have cut a row change in half, txn/README.md P3; one line per key checked and "
	      "per entry repaired)");
	if (rc == 0)
		rc = c->ops.repair(c->arg, a->hints, a->nhints, r);
	t1 = now_ms();
	r->repair_ms = t1 - t0;
	if (rc != 0)
		return rc;
	storage_crash_point("recovery-after-repair");
	TRACE(TR_RECOVERY, "== undo == (each loser's undo chain, newest first; a CLR per "
	      "step; undo records as block:offset)");
	rc = c->ops.undo(c->arg, a->xt, &r->losers_rolled_back, &r->undo_steps);
	r->undo_ms = now_ms() - t1;
	return rc;
}

/* Step 7: the end-of-recovery checkpoint (P8). */
static int end_checkpoint(const recovery_ctx *c, recovery_report *r)
{
	ckpt_result res = {0};
	double t0 = now_ms();
	int rc;
	storage_crash_point("recovery-before-end-checkpoint");
	TRACE(TR_RECOVERY, "== end-of-recovery checkpoint == (every page written, the "
	      "control file names it: the next recovery starts there)");
	if ((rc = c->ops.production(c->arg)) == 0)
		rc = checkpoint_run(c->ckpt, true, &res);
	r->checkpoint_ms = now_ms() - t0;
	if (rc != 0 && res.named) {
		/* the checkpoint is in place; only retiring old WAL failed (an
		 * archive refusing a segment): the segments stay, and the open
		 * goes on - the next checkpoint tries again */
		TRACE(TR_RECOVERY, "  old WAL kept: %s", wd_last_error());
		rc = 0;
	}
	if (rc != 0)
		return rc;
	r->end_checkpoint_lsn = res.lsn;
	r->end_checkpoint_redo = res.redo;
	TRACE(TR_RECOVERY, "  checkpoint at " LSN_FMT ", redo point " LSN_FMT ", %llu pages "
	      "written; control file: %s", LSN_ARGS(res.lsn), LSN_ARGS(res.redo),
	      (unsigned long long)res.written, control_state_name(c->cd->state));
	return 0;
}

int recovery_run(const recovery_ctx *c, recovery_report *r)
{
	analysis a = {0};
	int rc = begin(c, r);
	if (rc == 0)
		rc = analysis_and_redo(c, &a, r);
	if (rc == 0)
		rc = repair_and_undo(c, &a, r);
	if (rc == 0)
		rc = end_checkpoint(c, r);
	analysis_free(&a);
	return rc;
}
