/*
 * repair.c - what an open after a crash does once history is replayed
 * (README P3), while there is no undo log to roll back the change that was
 * in flight in each thread:
 *  - table_repair makes a table's heap and index agree one to one again;
 *    table_repair_key does the same for one key, looking only at the
 *    tuples of that key on given heap blocks and at its index entry.
 *    A put or del is two or three records (heap, index); a crash between
 *    them leaves a tuple no index entry points at, an index entry pointing
 *    at a deleted tuple, or two tuples of one key. Each case is finished or
 *    taken back, whichever keeps the key's last complete value (README
 *    "Crash behaviour" has the table);
 *  - db_remove_orphans (at every open, crash or not) removes the files of
 *    tables whose catalog entry never became durable or whose drop did not
 *    finish unlinking.
 * Repairs are logged with xid 0 (they belong to no transaction).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/page.h"
#include "storage/storage.h"
#include "storage/trace.h"
#include "txn/txn_internal.h"

enum fix_kind {
	FIX_DELETE_TUPLE, /* a tuple the index does not point at */
	FIX_REPOINT,      /* the index points at a deleted tuple; this one is its key's */
	FIX_DELETE_ENTRY, /* an index entry whose key has no tuple */
};

struct fix {
	enum fix_kind kind;
	wd_tid tid;   /* the tuple (FIX_DELETE_ENTRY: the entry's target) */
	wd_tid itid;  /* where the key's index entry points, if indexed */
	bool indexed; /* the key has an index entry */
	size_t klen;
	uint8_t *key;
};

struct fixes {
	struct fix *v;
	size_t n, cap;
};

/* Records a fix to apply once the scan is over; itid: where the index
 * points for that key (NULL: nowhere). */
static int fix_add(struct fixes *f, enum fix_kind kind, wd_tid tid, const wd_tid *itid,
		   const void *key, size_t klen)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 8;
		struct fix *v = realloc(f->v, cap * sizeof *v);
		if (!v)
			return err_set(WD_ENOMEM, "repair: out of memory");
		f->v = v;
		f->cap = cap;
	}
	if (!(f->v[f->n].key = malloc(klen ? klen : 1)))
		return err_set(WD_ENOMEM, "repair: out of memory");
	memcpy(f->v[f->n].key, key, klen);
	f->v[f->n].kind = kind;
	f->v[f->n].tid = tid;
	f->v[f->n].indexed = itid != NULL;
	f->v[f->n].itid = itid ? *itid : tid;
	f->v[f->n++].klen = klen;
	return 0;
}

/* true if the tuple at tid exists and holds key. */
static bool tuple_has_key(wd_table *t, wd_tid tid, const void *key, size_t klen)
{
	uint8_t kbuf[PAGE_SIZE_MAX / 4]; /* > heap_max_key_len */
	uint32_t kl;
	if (heap_fetch(t->h, tid_to_heap(tid), kbuf, sizeof kbuf, &kl, NULL, 0, NULL) != 0)
		return false;
	return kl == klen && klen <= sizeof kbuf && memcmp(kbuf, key, klen) == 0;
}

/* Step 1's decision for one tuple (tid, holding key): absent from the
 * index, deleted; the index pointing at another tuple of the key, a second
 * version, deleted; pointing at a tuple of another key or none, the
 * entry repointed here. */
static int tuple_check(wd_table *t, wd_tid tid, const void *key, size_t klen, struct fixes *f)
{
	wd_tid itid;
	int rc = btree_lookup(t->bt, key, klen, &itid);
	if (rc == WD_NOTFOUND)
		return fix_add(f, FIX_DELETE_TUPLE, tid, NULL, key, klen);
	if (rc == 0 && (itid.blk != tid.blk || itid.slot != tid.slot))
		rc = fix_add(f, tuple_has_key(t, itid, key, klen) ? FIX_DELETE_TUPLE : FIX_REPOINT,
			     tid, &itid, key, klen);
	return rc;
}

/* Step 2's decision for one index entry (key -> tid): deleted unless its
 * tuple exists and holds key. */
static int entry_check(wd_table *t, wd_tid tid, const void *key, size_t klen, struct fixes *f)
{
	return tuple_has_key(t, tid, key, klen) ? 0
						 : fix_add(f, FIX_DELETE_ENTRY, tid, &tid, key, klen);
}

/* What a repair looks at: the whole table (key NULL), or the tuples of
 * one key on the listed heap blocks and its index entry. */
struct scope {
	const void *key;
	size_t klen;
	const wd_blkno *blocks;
	size_t nblocks;
};

/* Step 1 over the heap blocks [first, end) (end WD_INVALID_BLKNO: to the
 * relation's end): each tuple in scope is checked against the index. */
static int scan_heap(wd_table *t, const struct scope *sc, wd_blkno first, wd_blkno end,
		     struct fixes *f)
{
	heap_tid ht;
	const uint8_t *key, *val;
	uint32_t klen;
	uint64_t vlen;
	heap_scan *s = NULL;
	int rc = heap_scan_begin(t->h, &s);
	if (rc == 0)
		rc = heap_scan_limit(s, first, end);
	while (rc == 0 && (rc = heap_scan_next(s, &ht, &key, &klen, &val, &vlen)) == 0)
		if (!sc->key || (klen == sc->klen && memcmp(key, sc->key, klen) == 0))
			rc = tuple_check(t, tid_from_heap(ht), key, klen, f);
	heap_scan_end(s);
	return rc == WD_NOTFOUND ? 0 : rc;
}

/* Step 1: the whole heap, or each listed block. */
static int check_heap(wd_table *t, const struct scope *sc, struct fixes *f)
{
	int rc = 0;
	if (!sc->key)
		return scan_heap(t, sc, 0, WD_INVALID_BLKNO, f);
	for (size_t i = 0; rc == 0 && i < sc->nblocks; i++)
		if (sc->blocks[i] != WD_INVALID_BLKNO)
			rc = scan_heap(t, sc, sc->blocks[i], sc->blocks[i] + 1, f);
	return rc;
}

/* Step 2: every index entry, or the key's. */
static int check_index(wd_table *t, const struct scope *sc, struct fixes *f)
{
	btree_cursor *c;
	const void *key;
	size_t klen;
	wd_tid tid;
	int rc;
	if (sc->key) {
		rc = btree_lookup(t->bt, sc->key, sc->klen, &tid);
		if (rc == 0)
			rc = entry_check(t, tid, sc->key, sc->klen, f);
		return rc == WD_NOTFOUND ? 0 : rc;
	}
	if ((rc = btree_cursor_open(t->bt, &c)) != 0)
		return rc;
	rc = btree_cursor_seek(c, NULL, 0, BT_FORWARD);
	while (rc == 0 && (rc = btree_cursor_next(c, &key, &klen, &tid)) == 0)
		rc = entry_check(t, tid, key, klen, f);
	btree_cursor_close(c);
	return rc == WD_NOTFOUND ? 0 : rc;
}

/* Recovery's trace line of a fix made: the table, the kind, what was
 * wrong and what was done, the key as the undo trace shows keys. */
static void fix_trace(const wd_table *t, const struct fix *x)
{
	static const char *const kinds[] = {"delete-tuple", "repoint-entry", "delete-entry"};
	char key[TXN_KEY_SHOWN], what[240];
	txn_key_shown(x->key, x->klen, key);
	if (x->kind == FIX_DELETE_TUPLE && !x->indexed)
		snprintf(what, sizeof what, "tuple %u/%u key '%s' had no index entry: deleted",
			 x->tid.blk, x->tid.slot, key);
	else if (x->kind == FIX_DELETE_TUPLE)
		snprintf(what, sizeof what, "tuple %u/%u key '%s' is a second version (the index "
			 "points at tuple %u/%u): deleted", x->tid.blk, x->tid.slot, key,
			 x->itid.blk, x->itid.slot);
	else if (x->kind == FIX_REPOINT)
		snprintf(what, sizeof what, "index entry of key '%s' pointed at %u/%u, which "
			 "holds no tuple of that key: now points at tuple %u/%u", key, x->itid.blk,
			 x->itid.slot, x->tid.blk, x->tid.slot);
	else
		snprintf(what, sizeof what, "index entry of key '%s' points at %u/%u, which "
			 "holds no tuple of that key: deleted", key, x->tid.blk, x->tid.slot);
	TRACE(TR_RECOVERY, "  repair table %-12s %-13s %s", *t->name ? t->name : "(catalog)",
	      kinds[x->kind], what);
}

/* Step 3: applies one fix (the conditions still hold: nothing else runs). */
static int fix_apply(wd_table *t, const struct fix *x)
{
	wd_lsn prev = 0, lsn;
	switch (x->kind) {
	case FIX_DELETE_TUPLE:
		return heap_delete(t->h, 0, &prev, tid_to_heap(x->tid));
	case FIX_REPOINT:
		return btree_update_tid(t->bt, 0, 0, x->key, x->klen, x->tid, &lsn);
	case FIX_DELETE_ENTRY:
		return btree_delete(t->bt, 0, 0, x->key, x->klen, NULL, &lsn);
	}
	return WD_EINVAL;
}

/* P3 steps 1-3 within scope sc; *fixed grows by the fixes made. */
static int repair_scope(wd_table *t, const struct scope *sc, uint64_t *fixed)
{
	struct fixes f = {0};
	int rc = check_heap(t, sc, &f);
	/* repoints first, so the index step sees them */
	for (size_t i = 0; rc == 0 && i < f.n; i++)
		if (f.v[i].kind == FIX_REPOINT && (rc = fix_apply(t, &f.v[i])) == 0)
			fix_trace(t, &f.v[i]);
	if (rc == 0)
		rc = check_index(t, sc, &f);
	for (size_t i = 0; rc == 0 && i < f.n; i++)
		if (f.v[i].kind != FIX_REPOINT && (rc = fix_apply(t, &f.v[i])) == 0)
			fix_trace(t, &f.v[i]);
	*fixed += f.n;
	for (size_t i = 0; i < f.n; i++)
		free(f.v[i].key);
	free(f.v);
	return rc;
}

/* P3 steps 1-3 on one table; *fixed grows by the fixes made. Nothing
 * else may run on t. */
int table_repair(wd_table *t, uint64_t *fixed)
{
	struct scope all = {0};
	int rc = repair_scope(t, &all, fixed);
	return rc ? err_wrap(rc, "repairing table %s", *t->name ? t->name : "(catalog)")
		  : 0;
}

int table_repair_key(wd_table *t, const void *key, size_t klen, const wd_blkno *blocks,
		     size_t n, uint64_t *fixed)
{
	struct scope one = {.key = key, .klen = klen, .blocks = blocks, .nblocks = n};
	int rc = repair_scope(t, &one, fixed);
	return rc ? err_wrap(rc, "repairing a key of table %s",
			     *t->name ? t->name : "(catalog)")
		  : 0;
}

/* The relation ids the catalog names (db_catalog_list collects them). */
struct relset {
	wd_relid *v;
	size_t n, cap;
};

static int relset_add(void *arg, const db_table_info *ti)
{
	struct relset *rs = arg;
	if (rs->n + 3 > rs->cap) {
		size_t cap = rs->cap ? 2 * rs->cap : 48;
		wd_relid *v = realloc(rs->v, cap * sizeof *v);
		if (!v)
			return err_set(WD_ENOMEM, "leftover files: out of memory");
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = ti->heap_rel;
	rs->v[rs->n++] = ti->fsm_rel;
	rs->v[rs->n++] = ti->index_rel;
	return 0;
}

/*
 * true if base/<rel> is a leftover: a table id (>= 16) handed out already
 * (< next_relid, so a create or drop made it, I2) that no catalog entry
 * names. A file with an id never handed out is not walden's doing: it is
 * left alone (walden check reports it).
 */
static bool is_leftover(const wd_db *db, const struct relset *rs, wd_relid rel)
{
	if (rel < FIRST_USER_RELID || rel >= db->cd.next_relid)
		return false;
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i] == rel)
			return false;
	return true;
}

/* A base/ file name as a relation id; false for anything else. */
static bool parse_relid(const char *name, wd_relid *rel)
{
	char *end;
	unsigned long v;
	if (name[0] < '0' || name[0] > '9')
		return false;
	v = strtoul(name, &end, 10);
	if (*end != '\0' || v > UINT32_MAX)
		return false;
	*rel = (wd_relid)v;
	return true;
}

/* P1 step 6 (P3 step 4): unlinks every leftover of base/ (is_leftover),
 * then fsyncs base/. Nothing else may run on db. */
int db_remove_orphans(wd_db *db, uint64_t *removed)
{
	char base[4096], path[4200];
	struct relset rs = {0};
	struct dirent *de;
	wd_relid rel;
	DIR *d = NULL;
	int rc = db_catalog_list(db, relset_add, &rs);
	snprintf(base, sizeof base, "%s/%s", db->dir, DB_BASE_DIR);
	if (rc == 0 && !(d = opendir(base)))
		rc = err_errno(errno, "%s", base);
	if (rc != 0)
		goto out;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!parse_relid(de->d_name, &rel) || !is_leftover(db, &rs, rel))
			continue;
		if (snprintf(path, sizeof path, "%s/%u", base, rel) >= (int)sizeof path)
			rc = err_set(WD_EINVAL, "%s: path too long", base);
		else if ((rc = storage_unlink(path)) == 0)
			(*removed)++;
	}
	closedir(d);
	if (rc == 0 && *removed)
		rc = storage_sync_dir(base);
out:
	free(rs.v);
	return rc;
}
