/*
 * rollback.c - undoing a chain (README P3): undo_rollback walks it newest
 * first, has the caller reverse each record and writes a CLR per step
 * (undo_log_clr), so that a crash in the middle never undoes a step twice
 * and recovery resumes where the rollback stopped.
 */
#include <inttypes.h>

#include "storage/plant.h"
#include "storage/storage.h"
#include "undo/undo_internal.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

int undo_log_clr(undo_log *u, wd_xid xid, wd_lsn *xact_prev, undo_ptr undone,
		 undo_ptr undo_next)
{
	wal_rec_builder b = {0};
	uint8_t m[UC_MAIN], *rec;
	uint32_t len;
	wd_lsn lsn;
	int rc;

	put_le64(m + UC_UNDONE, undone);
	put_le64(m + UC_NEXT, undo_next);
	walrec_begin(&b, WAL_RMGR_UNDO, UNDO_CLR, xid, xact_prev ? *xact_prev : 0, 0, WAL_REC_CLR);
	rc = walrec_set_main(&b, m, UC_MAIN);
	if (rc == 0)
		rc = walrec_assemble(&b, &rec, &len);
	if (rc == 0)
		rc = wal_insert(u->log->w, rec, len, &lsn);
	if (rc == 0) {
		if (xact_prev)
			*xact_prev = lsn;
		UNDO_COUNT(u, clrs, 1);
	}
	walrec_free(&b);
	return rc;
}

/* Where a record lies in its chain: pages are numbered in chain order, so
 * (page number, offset) grows with every append (I4). */
static uint64_t chain_pos(const undo_rec *r)
{
	return ((uint64_t)r->seq << 16) | UNDO_PTR_OFF(r->self);
}

/*
 * Checks that r may be undone as the next step of c: it belongs to c's
 * transaction and lies before the record undone last (*last; UINT64_MAX
 * at the first step), so that a damaged prev pointer can neither lead into
 * another transaction's records nor make the walk go round forever.
 */
static int check_step(const undo_chain *c, const undo_rec *r, uint64_t *last)
{
	if (r->xid != c->xid)
		return err_set(WD_ECORRUPT, "undo record %u/%u belongs to xid %" PRIu64
			       ", not to the chain of xid %" PRIu64, UNDO_PTR_BLK(r->self),
			       UNDO_PTR_OFF(r->self), r->xid, c->xid);
	if (chain_pos(r) >= *last)
		return err_set(WD_ECORRUPT, "undo record %u/%u does not lie before the one "
			       "undone before it in the chain of xid %" PRIu64,
			       UNDO_PTR_BLK(r->self), UNDO_PTR_OFF(r->self), c->xid);
	*last = chain_pos(r);
	return 0;
}

/* One step of P3: read c->head, reverse it, log the CLR, move the head. */
static int undo_step(undo_log *u, undo_chain *c, wd_lsn *xact_prev, undo_rec *r,
		     uint64_t *last, undo_apply_fn apply, void *arg)
{
	int rc = undo_read(u, c->head, r);
	if (rc == 0)
		rc = check_step(c, r, last);
	if (rc == 0)
		rc = apply(arg, r); /* step 2: the caller's logical undo */
	if (rc != 0)
		return rc;
	storage_crash_point("undo-after-apply");
	/* planted bug: no CLR, so a crash makes recovery undo the step again */
	if (!WD_PLANTED("undo-no-clr") &&
	    (rc = undo_log_clr(u, c->xid, xact_prev, r->self, r->prev)) != 0) /* step 3 */
		return rc;
	storage_crash_point("undo-after-clr");
	c->head = r->prev; /* step 4 */
	return 0;
}

int undo_rollback(undo_log *u, undo_chain *c, wd_lsn *xact_prev, undo_ptr stop,
		  undo_apply_fn apply, void *arg, uint64_t *steps)
{
	undo_rec r = {0};
	uint64_t last = UINT64_MAX;
	int rc = 0;
	while (rc == 0 && c->head != stop) {
		if (c->head == 0) {
			rc = err_set(WD_ECORRUPT, "the undo chain of xid %" PRIu64 " ends before "
				     "its stop pointer %u/%u", c->xid, UNDO_PTR_BLK(stop),
				     UNDO_PTR_OFF(stop));
			break;
		}
		if ((rc = undo_step(u, c, xact_prev, &r, &last, apply, arg)) == 0 && steps)
			(*steps)++;
	}
	undo_rec_free(&r);
	return rc;
}
