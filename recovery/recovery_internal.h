/*
 * recovery_internal.h - what the passes of recovery share (README P4-P5):
 * the result of analysis, which redo reads. Included by the files of
 * recovery/ and the recovery suite only.
 */
#ifndef WALDEN_RECOVERY_INTERNAL_H
#define WALDEN_RECOVERY_INTERNAL_H

#include "recovery/dpt.h"
#include "recovery/recovery.h"
#include "wal/record.h"

/* What analysis (P4) found. */
typedef struct analysis {
	undo_xtab *xt;   /* the transaction table: what is left are the losers */
	dpt *dpt;        /* the dirty page table */
	wd_lsn end;      /* the first LSN without a valid record */
	wal_end_reason end_reason;
	wd_lsn redo_start; /* where redo starts (dpt_redo_start) */
} analysis;

/* P4: one scan from c->from to the end of valid WAL. Fills *a (free it
 * with analysis_free, also on failure) and r's analysis fields. */
int recovery_analysis(const recovery_ctx *c, analysis *a, recovery_report *r) WD_MUST_CHECK;
void analysis_free(analysis *a);

/* The trace's "== tables after analysis ==": each loser, each dirty page
 * (sorted; the first RECOVERY_TRACE_DPT_MAX, then a count). Sets
 * r->losers. WD_ENOMEM. */
#define RECOVERY_TRACE_DPT_MAX 200u
int recovery_trace_tables(const analysis *a, recovery_report *r) WD_MUST_CHECK;

/* P5: redo from a->redo_start to a->end; every page it changed written
 * and synced, the relations it opened closed. Fills r's redo fields. */
int recovery_redo(const recovery_ctx *c, const analysis *a, recovery_report *r) WD_MUST_CHECK;

#endif
