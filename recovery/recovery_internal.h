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

/* Per active transaction during the scan: the pages named since its last
 * UNDO-rmgr record (hints.c; README P4 step 2). */
typedef struct hint_tab hint_tab;
int hint_tab_create(hint_tab **out) WD_MUST_CHECK;
void hint_tab_free(hint_tab *t);
/* Feeds one record, in LSN order: COMMIT/ABORT forget the xid, an
 * UNDO-rmgr record empties its page list, any other record of an xid adds
 * its block references (beyond RECOVERY_HINT_BLOCKS: unknown). WD_ENOMEM. */
int hint_tab_note(hint_tab *t, const wal_decoded *rec) WD_MUST_CHECK;
/* One hint per loser of losers[n] whose head is not 0, into a malloc'd
 * array (NULL when *nout is 0). WD_ENOMEM. */
int hint_tab_hints(hint_tab *t, const undo_xact *losers, size_t n, recovery_hint **out,
		   size_t *nout) WD_MUST_CHECK;

/* What analysis (P4) found. */
typedef struct analysis {
	undo_xtab *xt;   /* the transaction table: what is left are the losers */
	dpt *dpt;        /* the dirty page table */
	wd_lsn end;      /* the first LSN without a valid record */
	wal_end_reason end_reason;
	wd_lsn redo_start; /* where redo starts (dpt_redo_start) */
	hint_tab *ht;      /* during the scan */
	recovery_hint *hints; /* at its end: one per loser with an undo record */
	size_t nhints;
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
