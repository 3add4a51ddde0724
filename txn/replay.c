/*
 * replay.c - db_replay: after a crash, repeats history from the redo point
 * to the end of the log through the registered redo routines (README P2).
 * It is the redo pass of ARIES with its analysis folded in: every record
 * also goes to the transaction table (undo_xtab_note), whose losers the
 * open rolls back afterwards (README P16). When the scan meets the
 * checkpoint record the control file names, its table of active
 * transactions is merged into the transaction table (README I15,
 * recovery/README.md P3): transactions active at the checkpoint may have
 * written only before the redo point.
 *
 * Relations are opened on demand. A record whose relation file is absent
 * belongs to a table that was dropped (its files go only after the drop is
 * durable, README P5) or whose files were removed as orphans: it is
 * skipped. Every relation opened here is written, synced and closed before
 * the catalog and the tables open them again.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "storage/trace.h"
#include "txn/txn_internal.h"
#include "wal/ckpt_rec.h"
#include "wal/reader.h"
#include "wal/rmgr.h"

struct replay {
	wd_db *db;
	wd_relid *rels;   /* relations seen: */
	bool *present;    /* ... open in the pool, or absent (dropped) */
	size_t n, cap;
	uint64_t records, skipped_dropped;
	bool trace; /* the per-record trace: one flag check when off */
};

/* Whether rel's file exists, opening it in the pool the first time. */
static int rel_present(struct replay *rp, wd_relid rel, bool *present)
{
	char path[4096];
	int rc;
	for (size_t i = 0; i < rp->n; i++)
		if (rp->rels[i] == rel) {
			*present = rp->present[i];
			return 0;
		}
	if (rp->n == rp->cap) {
		size_t cap = rp->cap ? 2 * rp->cap : 16;
		wd_relid *r = realloc(rp->rels, cap * sizeof *r);
		bool *p = r ? realloc(rp->present, cap * sizeof *p) : NULL;
		if (r)
			rp->rels = r;
		if (!p)
			return err_set(WD_ENOMEM, "replay: out of memory");
		rp->present = p;
		rp->cap = cap;
	}
	if ((rc = db_rel_path(rp->db, rel, path, sizeof path)) != 0)
		return rc;
	rc = bufmgr_rel_open(rp->db->pool, rel, path, 0);
	if (rc != 0 && rc != WD_ENOENT)
		return rc;
	*present = rc == 0;
	rp->rels[rp->n] = rel;
	rp->present[rp->n++] = *present;
	return 0;
}

/* The redo trace line of rec: what redo did to its pages, told by the
 * counters that moved (before: ctx as it was before the record). */
static void trace_record(const redo_ctx *before, const redo_ctx *ctx,
			 const wal_decoded *rec, bool present)
{
	char what[96], where[48] = "-", lsn[24];
	snprintf(lsn, sizeof lsn, LSN_FMT, LSN_ARGS(rec->lsn));
	if (rec->nblocks > 0)
		snprintf(where, sizeof where, "%u/%u%s", rec->blocks[0].rel,
			 rec->blocks[0].blk, rec->nblocks > 1 ? " +" : "");
	if (!present)
		snprintf(what, sizeof what, "relation dropped");
	else if (rec->nblocks == 0)
		snprintf(what, sizeof what, "no page (analysis only)");
	else if (ctx->images > before->images)
		snprintf(what, sizeof what, "image restored");
	else if (ctx->applied > before->applied)
		snprintf(what, sizeof what, "applied");
	else if (ctx->skipped > before->skipped)
		snprintf(what, sizeof what, "skipped (page LSN " LSN_FMT " >= record)",
			 LSN_ARGS(ctx->skip_page_lsn));
	else
		snprintf(what, sizeof what, "nothing to do");
	TRACE(TR_RECOVERY, "  %-12s %-24s %-10s %-6llu %s", lsn,
	      wal_record_name(rec->rmgr, rec->type), where, (unsigned long long)rec->xid,
	      what);
}

/* Step 2: applies one record, unless a relation it names is gone. */
static int replay_one(struct replay *rp, redo_ctx *ctx, const wal_decoded *rec)
{
	redo_ctx before = {0};
	bool present = true;
	int rc;
	for (unsigned i = 0; i < rec->nblocks && present; i++)
		if ((rc = rel_present(rp, rec->blocks[i].rel, &present)) != 0)
			return rc;
	rp->records++;
	if (rp->trace)
		before = *ctx;
	if (!present)
		rp->skipped_dropped++;
	else if ((rc = wal_rmgr_redo(ctx, rec)) != 0)
		return rc;
	if (rp->trace)
		trace_record(&before, ctx, rec, present);
	return 0;
}

/* Step 3: every page replayed is written and synced; the relations close. */
static int replay_finish(struct replay *rp)
{
	int rc = bufmgr_flush_all(rp->db->pool), r;
	for (size_t i = 0; i < rp->n; i++)
		if (rp->present[i] && (r = bufmgr_rel_close(rp->db->pool, rp->rels[i])) != 0 &&
		    rc == 0)
			rc = r;
	return rc;
}

/* P2 step 2a: rec is the control file's checkpoint (it names the redo
 * point replay started from): its active transactions join xt. */
static int merge_checkpoint(wd_db *db, wd_lsn from, const wal_decoded *rec, undo_xtab *xt)
{
	wal_ckpt c;
	undo_xact *v;
	int rc;
	if (rec->rmgr != WAL_RMGR_XLOG || rec->type != XLOG_CHECKPOINT ||
	    rec->lsn != db->cd.checkpoint_lsn)
		return 0;
	if ((rc = wal_ckpt_decode(rec, &c)) != 0)
		return rc;
	if (c.redo != from) {
		wal_ckpt_free(&c);
		return err_set(WD_ECORRUPT, "%s: checkpoint at " LSN_FMT " has redo point " LSN_FMT
			       ", the control file " LSN_FMT, db->dir, LSN_ARGS(rec->lsn),
			       LSN_ARGS(c.redo), LSN_ARGS(from));
	}
	if (!(v = calloc(c.natt ? c.natt : 1, sizeof *v))) {
		wal_ckpt_free(&c);
		return err_set(WD_ENOMEM, "replay: out of memory");
	}
	for (uint32_t i = 0; i < c.natt; i++)
		v[i] = (undo_xact){.xid = c.att[i].xid, .last_lsn = c.att[i].last_lsn,
				   .head = c.att[i].head};
	rc = undo_xtab_seed(xt, v, c.natt);
	TRACE(TR_RECOVERY, "  checkpoint at " LSN_FMT ": %u active transactions merged "
	      "into the transaction table", LSN_ARGS(rec->lsn), c.natt);
	for (uint32_t i = 0; i < c.natt; i++)
		TRACE(TR_RECOVERY, "    active at checkpoint: xid=%llu last LSN=" LSN_FMT
		      " undo head=%u:%u", (unsigned long long)v[i].xid, LSN_ARGS(v[i].last_lsn),
		      (unsigned)UNDO_PTR_BLK(v[i].head), (unsigned)UNDO_PTR_OFF(v[i].head));
	free(v);
	wal_ckpt_free(&c);
	return rc;
}

/* P2: steps 1-3; reports its counters on the recovery trace. */
int db_replay(wd_db *db, wd_lsn from, undo_xtab *xt)
{
	struct replay rp = {.db = db, .trace = trace_on(TR_RECOVERY)};
	wal_end_reason why = WAL_END_NONE;
	redo_ctx ctx = {.pool = db->pool, .page_size = db->opts.page_size};
	const wal_decoded *rec;
	wal_reader *r = NULL;
	int rc, r2;
	TRACE(TR_RECOVERY, "== redo == (analysis folded in: every record also goes to the "
	      "transaction table)");
	TRACE(TR_RECOVERY, "  %-12s %-24s %-10s %-6s %s", "LSN", "rmgr/type", "rel/blk",
	      "xid", "decision");
	/* step 1: read from the redo point */
	rc = wal_reader_open(db->dir, db->cd.db_id, db->cd.wal_segment_size,
			     db->cd.page_size, &r);
	if (rc == 0)
		rc = wal_reader_seek(r, from);
	/* a checkpoint ahead: remember who ends before it (its table may
	 * name them) */
	if (rc == 0 && db->cd.checkpoint_lsn >= from)
		rc = undo_xtab_track_ended(xt, true);
	while (rc == 0 && (rc = wal_reader_next(r, &rec)) == 0) {
		/* the transaction table (analysis, folded into this pass) */
		if ((rc = undo_xtab_note(xt, rec)) == 0 &&
		    (rc = merge_checkpoint(db, from, rec, xt)) == 0)
			rc = replay_one(&rp, &ctx, rec);
	}
	if (rc == WD_NOTFOUND) {
		rc = 0; /* the end of the log */
		wal_reader_end(r, &db->rr.wal_end, &why, NULL);
		db->rr.end_reason = why;
		db->rr.end_reason_name = wal_end_reason_name(why);
	}
	wal_reader_close(r);
	r2 = replay_finish(&rp);
	TRACE(TR_RECOVERY, "  redo from " LSN_FMT ": %llu records, %llu page changes applied, "
	      "%llu skipped (page newer), %llu images, %llu of dropped relations, rc=%d",
	      LSN_ARGS(from),
	      (unsigned long long)rp.records, (unsigned long long)ctx.applied,
	      (unsigned long long)ctx.skipped, (unsigned long long)ctx.images,
	      (unsigned long long)rp.skipped_dropped, rc);
	db->rr.records = rp.records;
	db->rr.applied = ctx.applied;
	db->rr.skipped = ctx.skipped;
	db->rr.images = ctx.images;
	db->rr.dropped = rp.skipped_dropped;
	if (rc == 0)
		TRACE(TR_RECOVERY, "  end of WAL at " LSN_FMT ": %s", LSN_ARGS(db->rr.wal_end),
		      wal_end_reason_name(why));
	free(rp.rels);
	free(rp.present);
	return rc ? rc : r2;
}

/* The transaction table after analysis: the losers, on the trace. */
int db_trace_losers(wd_db *db, const undo_xtab *xt)
{
	undo_xact *v = NULL;
	size_t n = 0;
	int rc = undo_xtab_losers(xt, &v, &n);
	if (rc != 0)
		return rc;
	db->rr.losers = n;
	TRACE(TR_RECOVERY, "== analysis: transaction table at the end of the log ==");
	TRACE(TR_RECOVERY, "  %zu loser transaction%s (active when the log ends)", n,
	      n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++)
		TRACE(TR_RECOVERY, "  loser xid=%-6llu last LSN=" LSN_FMT "  undo head=%u:%u "
		      "(undo block:offset)",
		      (unsigned long long)v[i].xid, LSN_ARGS(v[i].last_lsn),
		      (unsigned)UNDO_PTR_BLK(v[i].head), (unsigned)UNDO_PTR_OFF(v[i].head));
	free(v);
	return 0;
}
