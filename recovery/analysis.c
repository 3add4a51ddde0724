/*
 * analysis.c - pass 1 of recovery (README P4): one scan of the WAL from
 * the redo point to its end rebuilds the transaction table (which
 * transactions never ended: the losers, with their last LSN and undo
 * chain head; undo/README.md P4) and the dirty page table (which pages
 * may lack a logged change, and from which LSN: dpt.h). Entry points:
 * recovery_analysis, analysis_free, recovery_trace_tables.
 *
 * The checkpoint the control file names is read first, before the scan:
 * its dirty page table tells which changes were on disk when it was
 * listed (I7), which the dirty page table needs from the first record
 * on. When the scan reaches the record itself, its two tables are merged
 * as the textbook does: the active transactions into the transaction
 * table (P4 step 3; undo_xtab_seed), the dirty pages not yet in the dirty
 * page table into it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "recovery/recovery_internal.h"
#include "storage/trace.h"
#include "wal/ckpt_rec.h"
#include "wal/reader.h"
#include "wal/rmgr.h"

struct scan {
	const recovery_ctx *c;
	analysis *a;
	recovery_report *r;
	wal_ckpt ck;   /* the control file's checkpoint, if the scan meets it */
	bool have_ck;
};

/* Checks what the checkpoint record says against the control file and
 * itself (its tables lie before it). */
static int check_checkpoint(const struct scan *s, const wal_decoded *rec)
{
	const wal_ckpt *k = &s->ck;
	if (k->redo != s->c->from)
		return err_set(WD_ECORRUPT, "%s: checkpoint at " LSN_FMT " has redo point " LSN_FMT
			       ", the control file " LSN_FMT, s->c->dir, LSN_ARGS(rec->lsn),
			       LSN_ARGS(k->redo), LSN_ARGS(s->c->from));
	if (k->dpt_lsn > rec->lsn)
		return err_set(WD_ECORRUPT, "%s: checkpoint at " LSN_FMT " lists its dirty pages "
			       "at " LSN_FMT ", after itself", s->c->dir, LSN_ARGS(rec->lsn),
			       LSN_ARGS(k->dpt_lsn));
	/* (a page dirtied with no record, as a free space map's, may have
	 * the checkpoint's own LSN as its recLSN) */
	for (uint32_t i = 0; i < k->ndpt; i++)
		if (k->dpt[i].rec_lsn > rec->lsn)
			return err_set(WD_ECORRUPT, "%s: checkpoint at " LSN_FMT " lists page %u/%u "
				       "dirty since " LSN_FMT ", after itself", s->c->dir,
				       LSN_ARGS(rec->lsn), k->dpt[i].rel, k->dpt[i].blk,
				       LSN_ARGS(k->dpt[i].rec_lsn));
	return 0;
}

/* The checkpoint's active transactions, watched for their end. */
static int watch_ended(struct scan *s)
{
	wd_xid *x = calloc(s->ck.natt ? s->ck.natt : 1, sizeof *x);
	int rc;
	if (!x)
		return err_set(WD_ENOMEM, "analysis: out of memory");
	for (uint32_t i = 0; i < s->ck.natt; i++)
		x[i] = s->ck.att[i].xid;
	rc = undo_xtab_watch_ended(s->a->xt, x, s->ck.natt);
	free(x);
	return rc;
}

/* Step 1: the checkpoint the control file names, if the scan will meet
 * it (a redo point set by an open or a close has none: P1 of txn). */
static int read_checkpoint(struct scan *s, wal_reader *rd)
{
	const control_data *cd = s->c->cd;
	const wal_decoded *rec;
	int rc;
	if (cd->checkpoint_lsn < s->c->from) {
		TRACE(TR_RECOVERY, "  no checkpoint since the redo point %s: the dirty page table "
		      "comes from the records alone", cd->checkpoint_lsn ? "was set" : "(none yet)");
		return 0;
	}
	if ((rc = wal_reader_read_at(rd, cd->checkpoint_lsn, &rec)) != 0)
		return err_wrap(rc == WD_NOTFOUND ? WD_ECORRUPT : rc,
				"%s: the checkpoint record the control file names", s->c->dir);
	if (rec->rmgr != WAL_RMGR_XLOG || rec->type != XLOG_CHECKPOINT) {
		const char *name = wal_record_name(rec->rmgr, rec->type);
		return err_set(WD_ECORRUPT, "%s: the control file names a checkpoint at " LSN_FMT
			       ", where the log holds a %s record", s->c->dir,
			       LSN_ARGS(rec->lsn), name ? name : "unknown");
	}
	if ((rc = wal_ckpt_decode(rec, &s->ck)) != 0)
		return rc;
	s->have_ck = true;
	if ((rc = check_checkpoint(s, rec)) != 0)
		return rc;
	TRACE(TR_RECOVERY, "  checkpoint found at " LSN_FMT ", redo point " LSN_FMT ": %u active "
	      "transaction%s, %u dirty page%s listed at " LSN_FMT, LSN_ARGS(rec->lsn),
	      LSN_ARGS(s->ck.redo), s->ck.natt, s->ck.natt == 1 ? "" : "s", s->ck.ndpt,
	      s->ck.ndpt == 1 ? "" : "s", LSN_ARGS(s->ck.dpt_lsn));
	TRACE(TR_RECOVERY, "    (I7: a page's changes logged below its recLSN there, or below "
	      LSN_FMT " if it is not listed, were on disk then)", LSN_ARGS(s->ck.dpt_lsn));
	/* remember which of its transactions end before it: its table
	 * still names them (only those: memory stays the table's size) */
	if ((rc = watch_ended(s)) == 0)
		rc = dpt_use_checkpoint(s->a->dpt, s->ck.redo, s->ck.dpt_lsn, s->ck.dpt,
					s->ck.ndpt);
	return rc;
}

/* Step 3: the scan reached the checkpoint record: its tables merge. */
static int merge_checkpoint(struct scan *s, const wal_decoded *rec)
{
	undo_xact *v;
	uint32_t added, present;
	int rc;
	if (!(v = calloc(s->ck.natt ? s->ck.natt : 1, sizeof *v)))
		return err_set(WD_ENOMEM, "analysis: out of memory");
	for (uint32_t i = 0; i < s->ck.natt; i++)
		v[i] = (undo_xact){.xid = s->ck.att[i].xid, .last_lsn = s->ck.att[i].last_lsn,
				   .head = s->ck.att[i].head};
	rc = undo_xtab_seed(s->a->xt, v, s->ck.natt);
	TRACE(TR_RECOVERY, "  checkpoint at " LSN_FMT ": %u active transaction%s merged into the "
	      "transaction table (those that ended since the redo point left out)",
	      LSN_ARGS(rec->lsn), s->ck.natt, s->ck.natt == 1 ? "" : "s");
	for (uint32_t i = 0; i < s->ck.natt; i++)
		TRACE(TR_RECOVERY, "    active at checkpoint: xid=%llu last LSN=" LSN_FMT
		      " undo head=%u:%u", (unsigned long long)v[i].xid, LSN_ARGS(v[i].last_lsn),
		      (unsigned)UNDO_PTR_BLK(v[i].head), (unsigned)UNDO_PTR_OFF(v[i].head));
	free(v);
	if (rc == 0)
		rc = dpt_merge_checkpoint(s->a->dpt, rec->lsn, &added, &present);
	if (rc == 0)
		TRACE(TR_RECOVERY, "  checkpoint at " LSN_FMT ": %u dirty page%s in its table: %u "
		      "added to the dirty page table (recLSN at least the redo point), %u already "
		      "there", LSN_ARGS(rec->lsn), s->ck.ndpt, s->ck.ndpt == 1 ? "" : "s", added,
		      present);
	return rc;
}

/* Step 2: one record, to both tables. */
static int note(struct scan *s, const wal_decoded *rec)
{
	int rc = undo_xtab_note(s->a->xt, rec);
	if (rc == 0)
		rc = hint_tab_note(s->a->ht, rec);
	for (unsigned i = 0; rc == 0 && i < rec->nblocks; i++)
		rc = dpt_note(s->a->dpt, rec->blocks[i].rel, rec->blocks[i].blk, rec->lsn);
	if (rc == 0 && s->have_ck && rec->lsn == s->c->cd->checkpoint_lsn)
		rc = merge_checkpoint(s, rec);
	s->r->records++;
	return rc;
}

/* The scan, steps 2-4, with rd at the redo point. */
static int scan(struct scan *s, wal_reader *rd)
{
	const wal_decoded *rec;
	int rc;
	while ((rc = wal_reader_next(rd, &rec)) == 0)
		if ((rc = note(s, rec)) != 0)
			return rc;
	if (rc != WD_NOTFOUND)
		return rc;
	wal_reader_end(rd, &s->a->end, &s->a->end_reason, NULL);
	/* the same end as wal_find_end's: its reason, read before wal_open
	 * zeroed the tail (a stale or damaged tail would now read as zeros) */
	if (s->a->end == s->c->end)
		s->a->end_reason = (wal_end_reason)s->c->end_reason;
	s->r->wal_end = s->a->end;
	s->r->end_reason = s->a->end_reason;
	s->r->end_reason_name = wal_end_reason_name(s->a->end_reason);
	TRACE(TR_RECOVERY, "  end of WAL at " LSN_FMT ": %s; %llu records scanned",
	      LSN_ARGS(s->a->end), s->r->end_reason_name, (unsigned long long)s->r->records);
	/* the control file names the checkpoint only once it is durable:
	 * a log ending before it is damaged, not merely cut */
	if (s->have_ck && s->a->end <= s->c->cd->checkpoint_lsn)
		return err_set(WD_ECORRUPT, "%s: the log ends at " LSN_FMT " (%s), before the "
			       "checkpoint record at " LSN_FMT " the control file names",
			       s->c->dir, LSN_ARGS(s->a->end), s->r->end_reason_name,
			       LSN_ARGS(s->c->cd->checkpoint_lsn));
	return 0;
}

/* Step 5: the hints of the losers (hints.c); the per-transaction page
 * lists are no longer needed. */
static int make_hints(analysis *a)
{
	undo_xact *v = NULL;
	size_t n = 0;
	int rc = undo_xtab_losers(a->xt, &v, &n);
	if (rc == 0)
		rc = hint_tab_hints(a->ht, v, n, &a->hints, &a->nhints);
	free(v);
	hint_tab_free(a->ht);
	a->ht = NULL;
	return rc;
}

int recovery_analysis(const recovery_ctx *c, analysis *a, recovery_report *r)
{
	struct scan s = {.c = c, .a = a, .r = r};
	const control_data *cd = c->cd;
	wal_reader *rd = NULL;
	int rc;
	*a = (analysis){0};
	TRACE(TR_RECOVERY, "== analysis == (control file state: %s)",
	      control_state_name(r->control_state));
	if ((rc = undo_xtab_create(&a->xt)) != 0 || (rc = dpt_create(&a->dpt)) != 0 ||
	    (rc = hint_tab_create(&a->ht)) != 0)
		return rc;
	rc = wal_reader_open(c->dir, cd->db_id, cd->wal_segment_size, cd->page_size, &rd);
	if (rc == 0)
		rc = read_checkpoint(&s, rd);
	if (rc == 0) {
		TRACE(TR_RECOVERY, "  scan from " LSN_FMT " (the redo point) to the end of WAL "
		      "(at " LSN_FMT " when the log was opened)", LSN_ARGS(c->from),
		      LSN_ARGS(c->end));
		rc = wal_reader_seek(rd, c->from);
	}
	if (rc == 0)
		rc = scan(&s, rd);
	if (rc == 0)
		rc = make_hints(a);
	if (rc == 0) {
		a->redo_start = dpt_redo_start(a->dpt, a->end);
		r->dpt_pages = dpt_pages(a->dpt);
		r->redo_start = a->redo_start;
	}
	wal_reader_close(rd);
	wal_ckpt_free(&s.ck);
	return rc;
}

void analysis_free(analysis *a)
{
	undo_xtab_free(a->xt);
	dpt_free(a->dpt);
	hint_tab_free(a->ht);
	free(a->hints);
	*a = (analysis){0};
}

/* The transaction table's part of recovery_trace_tables. */
static int trace_losers(const analysis *a, recovery_report *r)
{
	undo_xact *v = NULL;
	size_t n = 0;
	int rc = undo_xtab_losers(a->xt, &v, &n);
	if (rc != 0)
		return rc;
	r->losers = n;
	TRACE(TR_RECOVERY, "  transaction table: %zu loser%s (active when the log ends; undo "
	      "pointers are undo block:offset)", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++)
		TRACE(TR_RECOVERY, "    loser xid=%-6llu last LSN=" LSN_FMT "  undo head=%u:%u",
		      (unsigned long long)v[i].xid, LSN_ARGS(v[i].last_lsn),
		      (unsigned)UNDO_PTR_BLK(v[i].head), (unsigned)UNDO_PTR_OFF(v[i].head));
	free(v);
	for (size_t i = 0; i < a->nhints; i++) {
		const recovery_hint *h = &a->hints[i];
		if (h->unknown)
			TRACE(TR_RECOVERY, "    in flight: xid=%llu undo head=%u:%u, its pages "
			      "unknown (its table is repaired in full)", (unsigned long long)h->xid,
			      (unsigned)UNDO_PTR_BLK(h->head), (unsigned)UNDO_PTR_OFF(h->head));
		else
			TRACE(TR_RECOVERY, "    in flight: xid=%llu undo head=%u:%u, %u page%s since "
			      "its last undo record", (unsigned long long)h->xid,
			      (unsigned)UNDO_PTR_BLK(h->head), (unsigned)UNDO_PTR_OFF(h->head),
			      h->nblocks, h->nblocks == 1 ? "" : "s");
	}
	return 0;
}

/* The dirty page table's part of recovery_trace_tables. */
static int trace_dpt(const analysis *a)
{
	dpt_entry *v = NULL;
	size_t n = 0, shown;
	int rc = dpt_sorted(a->dpt, &v, &n);
	if (rc != 0)
		return rc;
	TRACE(TR_RECOVERY, "  dirty page table: %zu page%s (of %zu the records and the "
	      "checkpoint name); redo starts at " LSN_FMT, n, n == 1 ? "" : "s",
	      dpt_known(a->dpt), LSN_ARGS(a->redo_start));
	if (n)
		TRACE(TR_RECOVERY, "    %-14s %s", "rel/blk", "recLSN");
	shown = n < RECOVERY_TRACE_DPT_MAX ? n : RECOVERY_TRACE_DPT_MAX;
	for (size_t i = 0; i < shown; i++) {
		char page[32];
		snprintf(page, sizeof page, "%u/%u", v[i].rel, v[i].blk);
		TRACE(TR_RECOVERY, "    %-14s " LSN_FMT, page, LSN_ARGS(v[i].rec_lsn));
	}
	if (n > shown)
		TRACE(TR_RECOVERY, "    ... %zu more", n - shown);
	free(v);
	return 0;
}

int recovery_trace_tables(const analysis *a, recovery_report *r)
{
	int rc;
	TRACE(TR_RECOVERY, "== tables after analysis ==");
	if ((rc = trace_losers(a, r)) != 0)
		return rc;
	return trace_on(TR_RECOVERY) ? trace_dpt(a) : 0;
}
