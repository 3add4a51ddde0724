/*
 * dpt.c - the dirty page table of recovery's analysis (dpt.h; README P4,
 * I4, I7, I8). Entry points: dpt_create/free, dpt_use_checkpoint, dpt_note,
 * dpt_merge_checkpoint, dpt_find, dpt_rules_out_any, dpt_pages, dpt_known,
 * dpt_redo_start, dpt_sorted.
 *
 * Two hash tables of the same kind (open addressing, linear probing, kept
 * at most half full; a slot with rec_lsn 0 is empty, as no record has LSN
 * 0): the pages the scan and the checkpoint name, and the checkpoint's own
 * table, looked up for the rule of I7.
 */
#include <stdlib.h>

#include "recovery/dpt.h"

#define PTAB_MIN 1024u

struct ptab {
	dpt_entry *slot; /* cap slots, a power of two */
	size_t cap, n;
};

struct dpt {
	struct ptab pages; /* every page named: dirty or DPT_CLEAN */
	struct ptab ckpt;  /* the checkpoint's table: rec_lsn = max(recLSN, redo) */
	wd_lsn redo, dpt_lsn;
	bool have_ckpt;
	bool ruled_out;    /* a change noted was on disk by I7 */
	size_t dirty;      /* entries of pages with rec_lsn != DPT_CLEAN */
	wd_lsn min_rec;    /* smallest recLSN a record set (UINT64_MAX: none) */
	wd_lsn ckpt_lsn;   /* the checkpoint record, once it merged a page */
};

static int ptab_init(struct ptab *t, size_t cap)
{
	t->cap = cap;
	t->n = 0;
	if (!(t->slot = calloc(cap, sizeof *t->slot)))
		return err_set(WD_ENOMEM, "dirty page table: out of memory for %zu pages", cap);
	return 0;
}

static size_t home(const struct ptab *t, wd_relid rel, wd_blkno blk)
{
	uint64_t k = ((uint64_t)rel << 32 | blk) * 0x9E3779B97F4A7C15ull;
	return (size_t)(k ^ (k >> 29)) & (t->cap - 1);
}

/* The slot of (rel, blk), or the empty slot where it would go. */
static dpt_entry *slot_of(const struct ptab *t, wd_relid rel, wd_blkno blk)
{
	size_t i = home(t, rel, blk);
	while (t->slot[i].rec_lsn != 0 && (t->slot[i].rel != rel || t->slot[i].blk != blk))
		i = (i + 1) & (t->cap - 1);
	return &t->slot[i];
}

/* Doubles t (no entry is ever removed, so no tombstones either). */
static int grow(struct ptab *t)
{
	struct ptab bigger;
	int rc = ptab_init(&bigger, 2 * t->cap);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].rec_lsn)
			*slot_of(&bigger, t->slot[i].rel, t->slot[i].blk) = t->slot[i];
	bigger.n = t->n;
	free(t->slot);
	*t = bigger;
	return 0;
}

/* The entry of (rel, blk), made (rec_lsn DPT_CLEAN) if absent; *fresh
 * says which. */
static int get(struct ptab *t, wd_relid rel, wd_blkno blk, dpt_entry **e, bool *fresh)
{
	dpt_entry *s = slot_of(t, rel, blk);
	int rc;
	*fresh = s->rec_lsn == 0;
	if (*fresh) {
		if (2 * (t->n + 1) > t->cap) {
			if ((rc = grow(t)) != 0)
				return rc;
			s = slot_of(t, rel, blk);
		}
		*s = (dpt_entry){.rel = rel, .blk = blk, .rec_lsn = DPT_CLEAN};
		t->n++;
	}
	*e = s;
	return 0;
}

int dpt_create(dpt **out)
{
	dpt *d = calloc(1, sizeof *d);
	int rc;
	*out = NULL;
	if (!d)
		return err_set(WD_ENOMEM, "dirty page table: out of memory");
	if ((rc = ptab_init(&d->pages, PTAB_MIN)) != 0 || (rc = ptab_init(&d->ckpt, 16)) != 0) {
		dpt_free(d);
		return rc;
	}
	d->min_rec = UINT64_MAX;
	*out = d;
	return 0;
}

void dpt_free(dpt *d)
{
	if (!d)
		return;
	free(d->pages.slot);
	free(d->ckpt.slot);
	free(d);
}

int dpt_use_checkpoint(dpt *d, wd_lsn redo, wd_lsn dpt_lsn, const wal_ckpt_dpt *v, uint32_t n)
{
	dpt_entry *e;
	bool fresh;
	int rc;
	d->redo = redo;
	d->dpt_lsn = dpt_lsn;
	d->have_ckpt = true;
	for (uint32_t i = 0; i < n; i++) {
		if ((rc = get(&d->ckpt, v[i].rel, v[i].blk, &e, &fresh)) != 0)
			return rc;
		/* I4: nothing below the redo point needs redo; a page listed
		 * twice (the walk over the pool is not atomic: a page evicted,
		 * read back into another buffer and dirtied again) keeps the
		 * lower recLSN */
		wd_lsn rec = v[i].rec_lsn > redo ? v[i].rec_lsn : redo;
		if (fresh || rec < e->rec_lsn)
			e->rec_lsn = rec;
	}
	return 0;
}

/* I7: whether the change of (rel, blk) logged at lsn is on disk by the
 * checkpoint's table. */
static bool on_disk_by_checkpoint(const dpt *d, wd_relid rel, wd_blkno blk, wd_lsn lsn)
{
	const dpt_entry *c;
	if (!d->have_ckpt)
		return false;
	c = slot_of(&d->ckpt, rel, blk);
	if (c->rec_lsn == 0) /* clean when the table was listed */
		return lsn < d->dpt_lsn;
	return lsn < c->rec_lsn; /* dirty since its recLSN (clamped, I4) */
}

/* Makes e dirty from rec on. */
static void make_dirty(dpt *d, dpt_entry *e, wd_lsn rec)
{
	e->rec_lsn = rec;
	d->dirty++;
}

int dpt_note(dpt *d, wd_relid rel, wd_blkno blk, wd_lsn lsn)
{
	dpt_entry *e;
	bool fresh;
	int rc = get(&d->pages, rel, blk, &e, &fresh);
	if (rc != 0)
		return rc;
	if (fresh || e->first_lsn == 0)
		e->first_lsn = lsn;
	if (dpt_is_dirty(e))
		return 0;
	if (on_disk_by_checkpoint(d, rel, blk, lsn)) {
		d->ruled_out = true;
		return 0;
	}
	make_dirty(d, e, lsn);
	if (lsn < d->min_rec)
		d->min_rec = lsn;
	return 0;
}

int dpt_merge_checkpoint(dpt *d, wd_lsn ckpt_lsn, uint32_t *added, uint32_t *present)
{
	*added = *present = 0;
	for (size_t i = 0; i < d->ckpt.cap; i++) {
		const dpt_entry *c = &d->ckpt.slot[i];
		dpt_entry *e;
		bool fresh;
		int rc;
		if (c->rec_lsn == 0)
			continue;
		if ((rc = get(&d->pages, c->rel, c->blk, &e, &fresh)) != 0)
			return rc;
		if (dpt_is_dirty(e)) {
			(*present)++;
			continue;
		}
		/* its records so far are on disk (I7); the change it is dirty
		 * with is logged after the checkpoint record */
		make_dirty(d, e, c->rec_lsn);
		d->ckpt_lsn = ckpt_lsn;
		(*added)++;
	}
	return 0;
}

const dpt_entry *dpt_find(const dpt *d, wd_relid rel, wd_blkno blk)
{
	const dpt_entry *e = slot_of(&d->pages, rel, blk);
	return e->rec_lsn ? e : NULL;
}

bool dpt_rules_out_any(const dpt *d)
{
	return d->ruled_out;
}

size_t dpt_pages(const dpt *d)
{
	return d->dirty;
}

size_t dpt_known(const dpt *d)
{
	return d->pages.n;
}

wd_lsn dpt_redo_start(const dpt *d, wd_lsn end)
{
	wd_lsn s = d->min_rec;
	if (d->ckpt_lsn && d->ckpt_lsn < s)
		s = d->ckpt_lsn;
	return s == UINT64_MAX ? end : s;
}

static int by_page(const void *a, const void *b)
{
	const dpt_entry *x = a, *y = b;
	if (x->rel != y->rel)
		return x->rel < y->rel ? -1 : 1;
	return x->blk < y->blk ? -1 : x->blk > y->blk;
}

int dpt_sorted(const dpt *d, dpt_entry **out, size_t *n)
{
	dpt_entry *v = NULL;
	size_t k = 0;
	if (d->dirty && !(v = malloc(d->dirty * sizeof *v)))
		return err_set(WD_ENOMEM, "dirty page table: out of memory for %zu pages",
			       d->dirty);
	for (size_t i = 0; i < d->pages.cap; i++)
		if (d->pages.slot[i].rec_lsn && dpt_is_dirty(&d->pages.slot[i]))
			v[k++] = d->pages.slot[i];
	if (k > 1)
		qsort(v, k, sizeof *v, by_page);
	*out = v;
	*n = k;
	return 0;
}
