/*
 * check.c - db_table_check and db_catalog_check: the consistency check of
 * one table (or the catalog) that tests and `walden check` run (README I1):
 * the B+tree's own invariants, the free space map, and heap and index in
 * one-to-one agreement.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "txn/txn_internal.h"

/* Notes the first problem in r. */
static void problem(db_check_report *r, const char *fmt, ...) WD_PRINTF(2, 3);
static void problem(db_check_report *r, const char *fmt, ...)
{
	va_list ap;
	if (!r->ok)
		return;
	r->ok = false;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
}

/* Every heap tuple's key must map to that tuple in the index. */
static int check_heap_side(wd_table *t, db_check_report *r)
{
	heap_scan *s = NULL;
	heap_tid ht;
	const uint8_t *key, *val;
	uint32_t klen;
	uint64_t vlen;
	wd_tid itid;
	int rc = heap_scan_begin(t->h, &s);
	while (rc == 0 && (rc = heap_scan_next(s, &ht, &key, &klen, &val, &vlen)) == 0) {
		r->heap_tuples++;
		rc = btree_lookup(t->bt, key, klen, &itid);
		if (rc == WD_NOTFOUND) {
			r->unindexed++;
			problem(r, "heap block %u slot %u: its key (%u bytes) is not in the index",
				ht.blk, ht.slot, klen);
			rc = 0;
		} else if (rc == 0 && (itid.blk != ht.blk || itid.slot != ht.slot)) {
			r->misindexed++;
			problem(r, "heap block %u slot %u: the index maps its key to block %u slot %u",
				ht.blk, ht.slot, itid.blk, itid.slot);
		}
	}
	heap_scan_end(s);
	return rc == WD_NOTFOUND ? 0 : rc;
}

/* See db.h. Problems are counted and the first one described; only I/O
 * errors stop the check early. */
int db_table_check(wd_table *t, db_check_report *r)
{
	int rc;
	memset(r, 0, sizeof *r);
	r->ok = true;
	rc = btree_check(t->bt, &r->index);
	if (rc == WD_ECORRUPT) {
		problem(r, "index: %s", r->index.msg);
		rc = 0;
	}
	if (rc == 0 && (rc = heap_fsm_check(t->h, &r->fsm)) == WD_ECORRUPT) {
		problem(r, "free space map: %llu entries over, %llu differ on disk, first block %u",
			(unsigned long long)r->fsm.over, (unsigned long long)r->fsm.disk_diff,
			r->fsm.first_bad);
		rc = 0;
	}
	if (rc == 0)
		rc = check_heap_side(t, r);
	if (rc == 0 && r->heap_tuples - r->unindexed - r->misindexed != r->index.items) {
		/* every tuple counted once maps to its own entry; any other
		 * entry points at no tuple of its key */
		r->dangling = r->index.items - (r->heap_tuples - r->unindexed - r->misindexed);
		problem(r, "index has %llu entries, heap %llu correctly indexed tuples",
			(unsigned long long)r->index.items,
			(unsigned long long)(r->heap_tuples - r->unindexed - r->misindexed));
	}
	if (rc != 0)
		return err_wrap(rc, "checking table %s", *t->name ? t->name : "(catalog)");
	if (!r->ok)
		return err_set(WD_ECORRUPT, "table %s: %s", *t->name ? t->name : "(catalog)",
			       r->msg);
	return 0;
}

int db_catalog_check(wd_db *db, db_check_report *r)
{
	return db_table_check(db->catalog, r);
}
