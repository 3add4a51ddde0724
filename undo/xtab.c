/*
 * xtab.c - the transaction table that recovery's analysis rebuilds from the
 * WAL (README P4): xid -> (last LSN, undo head), fed record by record
 * (undo_xtab_note); what is left at the end are the losers
 * (undo_xtab_losers). A hash table with linear probing; xid 0 marks an
 * empty slot (records of xid 0 belong to no transaction).
 */
#include <stdlib.h>
#include <string.h>

#include "undo/undo_internal.h"
#include "wal/rmgr.h"

struct undo_xtab {
	undo_xact *slot; /* cap slots, a power of two; xid 0: empty */
	size_t cap, n;
	/* xids ended since the redo point, while a checkpoint record is
	 * still ahead (undo_xtab_track_ended, undo_xtab_watch_ended); NULL
	 * otherwise. An entry with head_set has ended; with ended_all every
	 * ending xid is added, else only the watched ones (present from the
	 * start) are marked */
	struct undo_xtab *ended;
	bool ended_all;
};

#define XTAB_MIN 64u

int undo_xtab_create(undo_xtab **out)
{
	undo_xtab *t = calloc(1, sizeof *t);
	if (!t || !(t->slot = calloc(XTAB_MIN, sizeof *t->slot))) {
		free(t);
		return err_set(WD_ENOMEM, "transaction table: out of memory");
	}
	t->cap = XTAB_MIN;
	*out = t;
	return 0;
}

void undo_xtab_free(undo_xtab *t)
{
	if (t) {
		undo_xtab_free(t->ended);
		free(t->slot);
		free(t);
	}
}

static size_t home(const undo_xtab *t, wd_xid xid)
{
	return (size_t)((xid * 0x9E3779B97F4A7C15ull) >> 32) & (t->cap - 1);
}

/* The slot holding xid, or the empty slot where it would go. */
static size_t find(const undo_xtab *t, wd_xid xid)
{
	size_t i = home(t, xid);
	while (t->slot[i].xid != 0 && t->slot[i].xid != xid)
		i = (i + 1) & (t->cap - 1);
	return i;
}

/* Doubles the table (kept at most half full, so probes stay short). */
static int grow(undo_xtab *t)
{
	undo_xtab bigger = {.cap = 2 * t->cap, .n = t->n};
	if (!(bigger.slot = calloc(bigger.cap, sizeof *bigger.slot)))
		return err_set(WD_ENOMEM, "transaction table: out of memory for %zu entries",
			       bigger.cap);
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].xid)
			bigger.slot[find(&bigger, t->slot[i].xid)] = t->slot[i];
	free(t->slot);
	*t = bigger;
	return 0;
}

/* xid's entry, made (empty) if absent. */
static int get(undo_xtab *t, wd_xid xid, undo_xact **e)
{
	size_t i = find(t, xid);
	int rc;
	if (t->slot[i].xid == 0) {
		if (2 * (t->n + 1) > t->cap) {
			if ((rc = grow(t)) != 0)
				return rc;
			i = find(t, xid);
		}
		t->slot[i] = (undo_xact){.xid = xid};
		t->n++;
	}
	*e = &t->slot[i];
	return 0;
}

/* Removes xid (backward-shift deletion: no tombstones, so lookups never
 * get slower as transactions come and go). */
static void remove_xid(undo_xtab *t, wd_xid xid)
{
	size_t mask = t->cap - 1, i = find(t, xid), j = i;
	if (t->slot[i].xid == 0)
		return;
	for (;;) {
		j = (j + 1) & mask;
		if (t->slot[j].xid == 0)
			break;
		/* the entry at j may fill the hole at i unless its home lies
		 * cyclically in (i, j] */
		size_t h = home(t, t->slot[j].xid);
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		t->slot[i] = t->slot[j];
		i = j;
	}
	t->slot[i].xid = 0;
	t->n--;
}

/* What rec says about its transaction's undo head: *set if it moves it. */
static int head_of(const wal_decoded *rec, bool *set, undo_ptr *head)
{
	undo_write w;
	undo_ptr undone;
	int rc = 0;
	*set = false;
	if (rec->rmgr != WAL_RMGR_UNDO)
		return 0;
	if (rec->type == UNDO_CLR) {
		rc = undo_clr_decode(rec, &undone, head);
		*set = rc == 0;
	} else if ((rc = undo_append_decode(rec, PAGE_SIZE_MAX, &w)) == 0 && w.ends) {
		/* a record becomes the head once all of it is logged (I8) */
		*head = w.rec;
		*set = true;
	}
	return rc;
}

/* xid's COMMIT or ABORT was noted while ended xids are tracked. */
static int mark_ended(undo_xtab *t, wd_xid xid)
{
	undo_xact *e = NULL;
	size_t i;
	int rc = 0;
	if (t->ended_all)
		rc = get(t->ended, xid, &e);
	else if (t->ended->slot[i = find(t->ended, xid)].xid)
		e = &t->ended->slot[i];
	if (rc == 0 && e)
		e->head_set = true;
	return rc;
}

int undo_xtab_note(undo_xtab *t, const wal_decoded *rec)
{
	undo_xact *e;
	undo_ptr head = 0;
	bool set;
	int rc;
	if (rec->xid == 0)
		return 0;
	if (rec->rmgr == WAL_RMGR_XACT && (rec->type == XACT_COMMIT || rec->type == XACT_ABORT)) {
		remove_xid(t, rec->xid);
		return t->ended ? mark_ended(t, rec->xid) : 0;
	}
	if ((rc = head_of(rec, &set, &head)) != 0 || (rc = get(t, rec->xid, &e)) != 0)
		return rc;
	e->last_lsn = rec->lsn;
	if (set) {
		e->head = head;
		e->head_set = true;
	}
	return 0;
}

int undo_xtab_track_ended(undo_xtab *t, bool on)
{
	if (!on) {
		undo_xtab_free(t->ended);
		t->ended = NULL;
		return 0;
	}
	t->ended_all = true;
	return t->ended ? 0 : undo_xtab_create(&t->ended);
}

int undo_xtab_watch_ended(undo_xtab *t, const wd_xid *xids, size_t n)
{
	undo_xact *e;
	int rc = t->ended ? 0 : undo_xtab_create(&t->ended);
	t->ended_all = false;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (xids[i] != 0)
			rc = get(t->ended, xids[i], &e);
	return rc;
}

/* One checkpoint entry (undo_xtab_seed's rule). */
static int seed_one(undo_xtab *t, const undo_xact *a)
{
	undo_xact *e;
	bool fresh;
	int rc;
	if (a->xid == 0 || (t->ended && t->ended->slot[find(t->ended, a->xid)].head_set))
		return 0; /* its COMMIT or ABORT came after the redo point */
	fresh = t->slot[find(t, a->xid)].xid == 0;
	if ((rc = get(t, a->xid, &e)) != 0)
		return rc;
	if (fresh || a->last_lsn > e->last_lsn)
		e->last_lsn = a->last_lsn;
	/* records after the redo point moved the head: theirs is newer (the
	 * checkpoint's covers every record before the redo point, txn I15) */
	if (!e->head_set) {
		e->head = a->head;
		e->head_set = true;
	}
	return 0;
}

int undo_xtab_seed(undo_xtab *t, const undo_xact *att, size_t n)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = seed_one(t, &att[i]);
	if (rc == 0)
		rc = undo_xtab_track_ended(t, false);
	return rc;
}

static int by_xid(const void *a, const void *b)
{
	wd_xid x = ((const undo_xact *)a)->xid, y = ((const undo_xact *)b)->xid;
	return x < y ? -1 : x > y;
}

int undo_xtab_losers(const undo_xtab *t, undo_xact **out, size_t *n)
{
	undo_xact *v = NULL;
	size_t k = 0;
	if (t->n && !(v = malloc(t->n * sizeof *v)))
		return err_set(WD_ENOMEM, "transaction table: out of memory for %zu losers", t->n);
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].xid)
			v[k++] = t->slot[i];
	if (k > 1)
		qsort(v, k, sizeof *v, by_xid);
	*out = v;
	*n = k;
	return 0;
}
