/*
 * hints.c - analysis's record of where each transaction's in-flight row
 * change lies (README P4 step 2, P6): per active transaction, the pages
 * its records named since its last UNDO-rmgr record, and whether the scan
 * saw an undo record of it at all. At the end, one recovery_hint per
 * loser tells the repair which key and pages to check instead of every
 * table. Entry points: hint_tab_create, hint_tab_free, hint_tab_note,
 * hint_tab_hints.
 *
 * Why the pages since the last UNDO-rmgr record: a row change logs its
 * undo record first (txn I10), the head moving to it once its last byte
 * is logged, then its heap and index records; an undo step logs its heap
 * and index records, then its CLR. So whatever the crash cut, the cut
 * change's records all follow the transaction's newest UNDO-rmgr record,
 * and every earlier change of it was complete before that record.
 */
#include <stdlib.h>
#include <string.h>

#include "recovery/recovery_internal.h"
#include "wal/rmgr.h"

/* One active transaction. */
struct hint_entry {
	wd_xid xid;
	bool undo_seen;  /* the scan saw an UNDO-rmgr record of it */
	bool overflow;   /* more than RECOVERY_HINT_BLOCKS pages since then */
	uint32_t n;
	recovery_block b[RECOVERY_HINT_BLOCKS];
};

/* The transactions active at this point of the scan, unordered: as many
 * as there were at once, usually a handful (one per writing thread), so a
 * search from the last one used is cheap; an entry goes when its
 * transaction ends, which keeps the table's memory bounded. */
struct hint_tab {
	struct hint_entry *v;
	size_t n, cap, last;
};

int hint_tab_create(hint_tab **out)
{
	if (!(*out = calloc(1, sizeof **out)))
		return err_set(WD_ENOMEM, "analysis: out of memory for the hint table");
	return 0;
}

void hint_tab_free(hint_tab *t)
{
	if (t) {
		free(t->v);
		free(t);
	}
}

/* xid's entry, or NULL. */
static struct hint_entry *hint_find(hint_tab *t, wd_xid xid)
{
	if (t->last < t->n && t->v[t->last].xid == xid)
		return &t->v[t->last];
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].xid == xid) {
			t->last = i;
			return &t->v[i];
		}
	return NULL;
}

/* xid's entry, made empty if new. */
static int hint_get(hint_tab *t, wd_xid xid, struct hint_entry **e)
{
	if ((*e = hint_find(t, xid)) != NULL)
		return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		struct hint_entry *v = realloc(t->v, cap * sizeof *v);
		if (!v)
			return err_set(WD_ENOMEM, "analysis: out of memory for %zu hint entries",
				       cap);
		t->v = v;
		t->cap = cap;
	}
	*e = &t->v[t->last = t->n++];
	**e = (struct hint_entry){.xid = xid};
	return 0;
}

/* Forgets xid (the last entry takes its place). */
static void hint_remove(hint_tab *t, wd_xid xid)
{
	struct hint_entry *e = hint_find(t, xid);
	if (e)
		*e = t->v[--t->n];
}

/* Adds page (rel, blk) to e's list unless there. */
static void hint_add_block(struct hint_entry *e, wd_relid rel, wd_blkno blk)
{
	if (e->overflow)
		return;
	for (uint32_t i = 0; i < e->n; i++)
		if (e->b[i].rel == rel && e->b[i].blk == blk)
			return;
	if (e->n == RECOVERY_HINT_BLOCKS) {
		e->overflow = true;
		return;
	}
	e->b[e->n++] = (recovery_block){rel, blk};
}

int hint_tab_note(hint_tab *t, const wal_decoded *rec)
{
	struct hint_entry *e;
	int rc;
	if (rec->xid == 0)
		return 0;
	if (rec->rmgr == WAL_RMGR_XACT && (rec->type == XACT_COMMIT || rec->type == XACT_ABORT)) {
		hint_remove(t, rec->xid); /* ended: nothing of it is in flight */
		return 0;
	}
	if ((rc = hint_get(t, rec->xid, &e)) != 0)
		return rc;
	if (rec->rmgr == WAL_RMGR_UNDO) {
		/* every change before it was complete; a new one starts */
		e->undo_seen = true;
		e->overflow = false;
		e->n = 0;
		return 0;
	}
	for (unsigned i = 0; i < rec->nblocks; i++)
		hint_add_block(e, rec->blocks[i].rel, rec->blocks[i].blk);
	return 0;
}

int hint_tab_hints(hint_tab *t, const undo_xact *losers, size_t n, recovery_hint **out,
		   size_t *nout)
{
	recovery_hint *v = NULL;
	size_t k = 0;
	if (n && !(v = calloc(n, sizeof *v)))
		return err_set(WD_ENOMEM, "analysis: out of memory for %zu hints", n);
	for (size_t i = 0; i < n; i++) {
		const struct hint_entry *e = hint_find(t, losers[i].xid);
		if (losers[i].head == 0)
			continue; /* no complete undo record: it changed no row */
		v[k].xid = losers[i].xid;
		v[k].head = losers[i].head;
		if (!e || !e->undo_seen || e->overflow) {
			v[k++].unknown = true;
			continue;
		}
		v[k].nblocks = e->n;
		memcpy(v[k++].blocks, e->b, e->n * sizeof *e->b);
	}
	*out = v;
	*nout = k;
	return 0;
}
