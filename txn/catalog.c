/*
 * catalog.c - the catalog: a table like any other (heap relation 1, B+tree
 * relation 2, no FSM file) whose keys are table names and whose values are
 * the tables' relation ids (README "Formats: catalog entry"). Entry
 * points: catalog_open, catalog_lookup, catalog_encode/decode,
 * db_catalog_list.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/bytes.h"
#include "txn/txn_internal.h"

/* Catalog value byte offsets (README "Formats"). */
enum {
	CV_VERSION = 0,
	CV_HEAP = 4,
	CV_FSM = 8,
	CV_INDEX = 12,
	CV_FLAGS = 16,
};

/* The 20-byte catalog value of ti (README "Formats"). */
void catalog_encode(const db_table_info *ti, uint8_t out[CATALOG_VALUE_SIZE])
{
	put_le32(out + CV_VERSION, CATALOG_VALUE_VERSION);
	put_le32(out + CV_HEAP, ti->heap_rel);
	put_le32(out + CV_FSM, ti->fsm_rel);
	put_le32(out + CV_INDEX, ti->index_rel);
	put_le32(out + CV_FLAGS, ti->flags);
}

/* Decodes the entry of name; bytes from disk are input: WD_ECORRUPT. */
int catalog_decode(const char *name, const uint8_t *v, size_t len, db_table_info *ti)
{
	if (len != CATALOG_VALUE_SIZE)
		return err_set(WD_ECORRUPT, "catalog entry of table %s: %zu bytes, expected %u",
			       name, len, CATALOG_VALUE_SIZE);
	if (get_le32(v + CV_VERSION) != CATALOG_VALUE_VERSION)
		return err_set(WD_EVERSION, "catalog entry of table %s: version %u, expected %u",
			       name, get_le32(v + CV_VERSION), CATALOG_VALUE_VERSION);
	ti->name = name;
	ti->heap_rel = get_le32(v + CV_HEAP);
	ti->fsm_rel = get_le32(v + CV_FSM);
	ti->index_rel = get_le32(v + CV_INDEX);
	ti->flags = get_le32(v + CV_FLAGS);
	if (ti->heap_rel < FIRST_USER_RELID || ti->fsm_rel < FIRST_USER_RELID ||
	    ti->index_rel < FIRST_USER_RELID)
		return err_set(WD_ECORRUPT, "catalog entry of table %s: reserved relation id",
			       name);
	return 0;
}

/* Opens (create: formats) the catalog's heap 1 and B+tree 2. */
int catalog_open(wd_db *db, bool create)
{
	db_table_info info = {.name = "",
			      .heap_rel = CATALOG_HEAP_REL,
			      .fsm_rel = 0, /* small: its map is rebuilt at open */
			      .index_rel = CATALOG_INDEX_REL};
	return table_handle_open(db, "", &info, create, &db->catalog);
}

/* The entry of name: 0, WD_NOTFOUND, WD_ECORRUPT, or a pool error. */
int catalog_lookup(wd_db *db, const char *name, db_table_info *ti)
{
	uint8_t v[CATALOG_VALUE_SIZE + 1];
	size_t vlen;
	int rc = table_get(db->catalog, name, strlen(name), v, sizeof v, &vlen);
	if (rc != 0)
		return rc;
	return catalog_decode(name, v, vlen, ti);
}

/* One step of db_catalog_list: the entry of key, or WD_NOTFOUND if it went
 * away since the cursor saw it. */
static int list_one(wd_db *db, const void *key, size_t klen,
		    int (*fn)(void *, const db_table_info *), void *arg)
{
	char name[TABLE_NAME_MAX + 1];
	uint8_t v[CATALOG_VALUE_SIZE + 1];
	db_table_info ti;
	size_t vlen;
	int rc;
	if (klen == 0 || klen > TABLE_NAME_MAX)
		return err_set(WD_ECORRUPT, "catalog: a table name of %zu bytes", klen);
	memcpy(name, key, klen);
	name[klen] = '\0';
	if ((rc = table_get(db->catalog, name, klen, v, sizeof v, &vlen)) != 0)
		return rc;
	if ((rc = catalog_decode(name, v, vlen, &ti)) != 0)
		return rc;
	return fn ? fn(arg, &ti) : 0;
}

/* Walks the catalog's index in name order; entries that vanish between
 * the index and the heap (a concurrent drop) are skipped. */
int db_catalog_list(wd_db *db, int (*fn)(void *arg, const db_table_info *ti),
		    void *arg)
{
	btree_cursor *c;
	const void *key;
	size_t klen;
	wd_tid tid;
	int rc;
	if ((rc = btree_cursor_open(db->catalog->bt, &c)) != 0)
		return rc;
	rc = btree_cursor_seek(c, NULL, 0, BT_FORWARD);
	while (rc == 0 && (rc = btree_cursor_next(c, &key, &klen, &tid)) == 0) {
		rc = list_one(db, key, klen, fn, arg);
		if (rc == WD_NOTFOUND)
			rc = 0; /* dropped meanwhile */
	}
	btree_cursor_close(c);
	return rc == WD_NOTFOUND ? 0 : rc;
}
