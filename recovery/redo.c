/*
 * redo.c - pass 2 of recovery (README P5): history repeated from the
 * first record the dirty page table needs to the end of the log, through
 * the registered redo routines. Entry point: recovery_redo.
 *
 * Every block reference goes first to the dirty page table (skip_block,
 * the redo_ctx callback): a page that is not in it, or a record below the
 * page's recLSN, is skipped without the page being read - the textbook
 * ARIES rule (I8). Otherwise redo_fetch_block decides as always: an image
 * replaces the page, a page whose pageLSN is not older keeps it, anything
 * else is applied.
 *
 * A skipped page is trusted to be on disk whole. After a power loss it may
 * not be: a write of it after the checkpoint, torn (DESIGN.md section 6).
 * The first record redo does read it for then fails its checksum; the
 * page is rebuilt from the first record after the redo point that named
 * it (which carries its image, wal/README.md I11) by replaying that page's
 * records alone up to there, and the record is redone (P5 step 3).
 *
 * Relations are opened on demand (recovery_ops.rel_open); a record whose
 * relation is gone belongs to a dropped table and is skipped
 * (txn/README.md I6). Every relation opened here is written, synced and
 * closed at the end, before the layers above open them again.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "recovery/recovery_internal.h"
#include "storage/storage.h"
#include "storage/trace.h"
#include "wal/reader.h"
#include "wal/redo.h"
#include "wal/rmgr.h"

struct redo_pass {
	const recovery_ctx *c;
	const analysis *a;
	recovery_report *r;
	redo_ctx ctx;
	wd_relid *rels; /* relations seen: */
	bool *present;  /* ... open in the pool, or absent (dropped) */
	size_t n, cap;
	bool trace;     /* the per-record trace: one flag check when off */
	/* the dirty page table's decision per block of the current record:
	 * DPT_CLEAN (not in the table) or the recLSN it lies below */
	wd_lsn why[WAL_MAX_BLOCKS];
	int fetched;    /* the block skip_block let through last (-1: none) */
	bool only;      /* rebuilding one page: every other block skipped */
	wd_relid only_rel;
	wd_blkno only_blk;
};

/* Whether rel's file exists, opening it in the pool the first time. */
static int rel_present(struct redo_pass *rp, wd_relid rel, bool *present)
{
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
			return err_set(WD_ENOMEM, "redo: out of memory");
		rp->present = p;
		rp->cap = cap;
	}
	rc = rp->c->ops.rel_open(rp->c->arg, rel);
	if (rc != 0 && rc != WD_ENOENT)
		return rc;
	*present = rc == 0;
	rp->rels[rp->n] = rel;
	rp->present[rp->n++] = *present;
	return 0;
}

/* redo_ctx.skip_block: the dirty page table's test (I8), or, while a
 * page is rebuilt, "that page alone". */
static bool skip_block(void *arg, const wal_decoded *rec, unsigned block)
{
	struct redo_pass *rp = arg;
	const wal_block_ref *ref = &rec->blocks[block];
	const dpt_entry *e;
	if (rp->only)
		return ref->rel != rp->only_rel || ref->blk != rp->only_blk;
	e = dpt_find(rp->a->dpt, ref->rel, ref->blk);
	if (!e || !dpt_is_dirty(e)) {
		rp->why[block] = DPT_CLEAN;
		rp->r->skipped_not_dirty++;
		return true;
	}
	if (rec->lsn < e->rec_lsn) {
		rp->why[block] = e->rec_lsn;
		rp->r->skipped_rec_lsn++;
		return true;
	}
	rp->fetched = (int)block;
	return false;
}

/* What happened to block i of rec, for the trace, into out[cap]. */
static void block_decision(const struct redo_pass *rp, const wal_decoded *rec, unsigned i,
			   char *out, size_t cap)
{
	switch (rp->ctx.action[i]) {
	case REDO_APPLY:
		snprintf(out, cap, "%s", rec->blocks[i].flags & WAL_BLK_WILL_INIT
						 ? "applied (page rebuilt from nothing)"
						 : "applied");
		break;
	case REDO_SKIP:
		snprintf(out, cap, "skipped (page LSN " LSN_FMT " >= record)",
			 LSN_ARGS(rp->ctx.page_lsn[i]));
		break;
	case REDO_RESTORED:
		snprintf(out, cap, "image restored");
		break;
	case REDO_SKIP_DPT:
		if (rp->why[i] == DPT_CLEAN)
			snprintf(out, cap, "skipped (not in dirty page table)");
		else
			snprintf(out, cap, "skipped (before recLSN " LSN_FMT ")",
				 LSN_ARGS(rp->why[i]));
		break;
	default:
		snprintf(out, cap, "not fetched by its redo routine");
	}
}

/* The trace of one record: a line with its first block's decision, one
 * more per other block. */
static void trace_record(const struct redo_pass *rp, const wal_decoded *rec, bool present)
{
	char what[96], where[48] = "-", lsn[24];
	snprintf(lsn, sizeof lsn, LSN_FMT, LSN_ARGS(rec->lsn));
	if (rec->nblocks > 0)
		snprintf(where, sizeof where, "%u/%u", rec->blocks[0].rel, rec->blocks[0].blk);
	if (!present)
		snprintf(what, sizeof what, "relation dropped");
	else if (rec->nblocks == 0)
		snprintf(what, sizeof what, "no page (analysis only)");
	else
		block_decision(rp, rec, 0, what, sizeof what);
	TRACE(TR_RECOVERY, "  %-12s %-24s %-10s %-6llu %s", lsn,
	      wal_record_name(rec->rmgr, rec->type), where, (unsigned long long)rec->xid,
	      what);
	for (unsigned i = 1; present && i < rec->nblocks; i++) {
		snprintf(where, sizeof where, "%u/%u", rec->blocks[i].rel, rec->blocks[i].blk);
		block_decision(rp, rec, i, what, sizeof what);
		TRACE(TR_RECOVERY, "  %-12s %-24s %-10s %-6s %s", "", "", where, "", what);
	}
}

/* Whether rec names page (rel, blk). */
static bool names(const wal_decoded *rec, wd_relid rel, wd_blkno blk)
{
	for (unsigned i = 0; i < rec->nblocks; i++)
		if (rec->blocks[i].rel == rel && rec->blocks[i].blk == blk)
			return true;
	return false;
}

/*
 * P5 step 3: page e, torn on disk, rebuilt by its own records from the
 * first after the redo point (with its image, or WILL_INIT) up to upto,
 * every other page left alone. Without an image to start from (no
 * full_page_writes) its first read fails as the torn page's did:
 * WD_ECORRUPT naming file and block.
 */
static int rebuild_page(struct redo_pass *rp, const dpt_entry *e, wd_lsn upto)
{
	const control_data *cd = rp->c->cd;
	const wal_decoded *rec;
	wal_reader *rd = NULL;
	int rc = wal_reader_open(rp->c->dir, cd->db_id, cd->wal_segment_size, cd->page_size, &rd);
	TRACE(TR_RECOVERY, "    page %u/%u fails its checksum (a torn write after the checkpoint): "
	      "rebuilt from its first record after the redo point, " LSN_FMT ", by its own "
	      "records up to " LSN_FMT, e->rel, e->blk, LSN_ARGS(e->first_lsn), LSN_ARGS(upto));
	if (rc == 0)
		rc = wal_reader_seek(rd, e->first_lsn);
	rp->only = true;
	rp->only_rel = e->rel;
	rp->only_blk = e->blk;
	while (rc == 0 && (rc = wal_reader_next(rd, &rec)) == 0 && rec->lsn < upto)
		if (names(rec, e->rel, e->blk))
			rc = wal_rmgr_redo(&rp->ctx, rec);
	rp->only = false;
	wal_reader_close(rd);
	if (rc == 0)
		rp->r->pages_rebuilt++;
	return rc == WD_NOTFOUND ? err_set(WD_ECORRUPT, "redo: the log ends before " LSN_FMT
					   " while rebuilding page %u/%u", LSN_ARGS(upto),
					   e->rel, e->blk)
				 : rc;
}

/* The page of the block whose fetch failed, if the dirty page table let
 * redo skip some of its records (it has some before rec): NULL if not.
 * Only a failed fetch (the page read and its checksum; redo_fetch_block
 * sets action[] on success alone) makes a candidate: an error of the redo
 * routine on a page that read fine is no torn write, and rebuilding would
 * hide it. */
static const dpt_entry *torn_candidate(const struct redo_pass *rp, const wal_decoded *rec)
{
	const wal_block_ref *ref;
	const dpt_entry *e;
	if (rp->fetched < 0 || rp->ctx.action[rp->fetched] != REDO_NOT_FETCHED)
		return NULL;
	ref = &rec->blocks[rp->fetched];
	e = dpt_find(rp->a->dpt, ref->rel, ref->blk);
	return e && e->first_lsn && e->first_lsn < rec->lsn ? e : NULL;
}

/* The counters an attempt at a record moves. */
struct counters {
	uint64_t applied, skipped, images, not_dirty, rec_lsn;
};

static struct counters counters_get(const struct redo_pass *rp)
{
	return (struct counters){rp->ctx.applied, rp->ctx.skipped, rp->ctx.images,
				 rp->r->skipped_not_dirty, rp->r->skipped_rec_lsn};
}

static void counters_set(struct redo_pass *rp, const struct counters *k)
{
	rp->ctx.applied = k->applied;
	rp->ctx.skipped = k->skipped;
	rp->ctx.images = k->images;
	rp->r->skipped_not_dirty = k->not_dirty;
	rp->r->skipped_rec_lsn = k->rec_lsn;
}

/* wal_rmgr_redo of rec, with the rebuild of a torn page it meets (P5
 * step 3): each page at most once, the counters as if it had not failed. */
static int redo_record(struct redo_pass *rp, const wal_decoded *rec)
{
	struct counters before = counters_get(rp);
	const dpt_entry *e, *rebuilt[WAL_MAX_BLOCKS];
	unsigned n = 0;
	int rc;
	for (;;) {
		for (unsigned i = 0; i < rec->nblocks; i++)
			rp->ctx.action[i] = REDO_NOT_FETCHED;
		rp->fetched = -1;
		rc = wal_rmgr_redo(&rp->ctx, rec);
		if (rc != WD_ECORRUPT || !(e = torn_candidate(rp, rec)))
			return rc;
		for (unsigned i = 0; i < n; i++)
			if (rebuilt[i] == e) /* rebuilt and still failing: not torn */
				return rc;
		rebuilt[n++] = e;
		counters_set(rp, &before);
		if ((rc = rebuild_page(rp, e, rec->lsn)) != 0)
			return err_wrap(rc, "rebuilding torn page %u/%u", e->rel, e->blk);
		counters_set(rp, &before);
	}
}

/* P5 step 2: one record, unless a relation it names is gone. */
static int redo_one(struct redo_pass *rp, const wal_decoded *rec)
{
	uint64_t changed = rp->ctx.applied + rp->ctx.images;
	bool present = true;
	int rc;
	for (unsigned i = 0; i < rec->nblocks && present; i++)
		if ((rc = rel_present(rp, rec->blocks[i].rel, &present)) != 0)
			return rc;
	rp->r->redo_records++;
	if (!present)
		rp->r->dropped++;
	else if ((rc = redo_record(rp, rec)) != 0)
		return rc;
	if (rp->trace)
		trace_record(rp, rec, present);
	/* a crash after any record that changed a page (tests pick the nth) */
	if (rp->ctx.applied + rp->ctx.images != changed)
		storage_crash_point("recovery-redo-record");
	return 0;
}

/* Step 4: every page replayed is written and synced; the relations close. */
static int finish(struct redo_pass *rp)
{
	int rc = bufmgr_flush_all(rp->c->pool), r;
	for (size_t i = 0; i < rp->n; i++)
		if (rp->present[i] && (r = bufmgr_rel_close(rp->c->pool, rp->rels[i])) != 0 &&
		    rc == 0)
			rc = r;
	return rc;
}

/* Steps 1-2: the records from the redo start to the end analysis found. */
static int redo_scan(struct redo_pass *rp)
{
	const control_data *cd = rp->c->cd;
	const wal_decoded *rec;
	wal_reader *rd = NULL;
	int rc = wal_reader_open(rp->c->dir, cd->db_id, cd->wal_segment_size, cd->page_size, &rd);
	if (rc == 0)
		rc = wal_reader_seek(rd, rp->a->redo_start);
	while (rc == 0 && wal_reader_position(rd) < rp->a->end &&
	       (rc = wal_reader_next(rd, &rec)) == 0)
		rc = redo_one(rp, rec);
	if (rc == WD_NOTFOUND) /* analysis read further: the log changed under us */
		rc = err_set(WD_ECORRUPT, "%s: redo met the end of WAL at " LSN_FMT ", before "
			     "the end analysis found at " LSN_FMT, rp->c->dir,
			     LSN_ARGS(wal_reader_position(rd)), LSN_ARGS(rp->a->end));
	wal_reader_close(rd);
	return rc;
}

int recovery_redo(const recovery_ctx *c, const analysis *a, recovery_report *r)
{
	struct redo_pass rp = {.c = c, .a = a, .r = r, .trace = trace_on(TR_RECOVERY),
			       .fetched = -1};
	int rc, r2;
	rp.ctx = (redo_ctx){.pool = c->pool, .page_size = c->page_size};
	/* a table that rules nothing out is not asked (I8 skips nothing then;
	 * a torn page is restored from its image as without the table) */
	if (dpt_rules_out_any(a->dpt)) {
		rp.ctx.skip_block = skip_block;
		rp.ctx.skip_block_arg = &rp;
	}
	TRACE(TR_RECOVERY, "== redo == (from " LSN_FMT " to the end of WAL at " LSN_FMT
	      "; a page's change is redone unless the dirty page table or its page LSN "
	      "says it is on disk)", LSN_ARGS(a->redo_start), LSN_ARGS(a->end));
	if (!rp.ctx.skip_block)
		TRACE(TR_RECOVERY, "  (the dirty page table rules out no change: every record "
		      "lies at or after its page's recLSN, so redo does not ask it)");
	TRACE(TR_RECOVERY, "  %-12s %-24s %-10s %-6s %s", "LSN", "rmgr/type", "rel/blk",
	      "xid", "decision");
	rc = redo_scan(&rp);
	r->applied = rp.ctx.applied;
	r->skipped = rp.ctx.skipped;
	r->images = rp.ctx.images;
	TRACE(TR_RECOVERY, "  redo from " LSN_FMT ": %llu records, %llu page changes applied, "
	      "%llu images restored, skipped: %llu page newer, %llu not in the dirty page "
	      "table, %llu before recLSN; %llu records of dropped relations, %llu torn pages "
	      "rebuilt, rc=%d", LSN_ARGS(a->redo_start), (unsigned long long)r->redo_records,
	      (unsigned long long)r->applied, (unsigned long long)r->images,
	      (unsigned long long)r->skipped, (unsigned long long)r->skipped_not_dirty,
	      (unsigned long long)r->skipped_rec_lsn, (unsigned long long)r->dropped,
	      (unsigned long long)r->pages_rebuilt, rc);
	/* pages replayed, only some of them written (evictions) */
	if (rc == 0)
		storage_crash_point("recovery-after-redo");
	r2 = finish(&rp);
	free(rp.rels);
	free(rp.present);
	return rc ? rc : r2;
}
