/*
 * badtest.h - what the bad-input suites (test_badinput.c, test_badfiles.c)
 * share: a small database built once through the public API with an LMDB
 * oracle of its contents and closed cleanly, a snapshot of its files that
 * every trial is rolled back to, the map of its pages by kind, and one
 * trial - open, read every table in full (cursor scans and spot gets), a
 * put taken back, close - that tells a clear error from a wrong answer.
 * Needs <cmocka.h> before it (as dbtest.h does).
 */
#ifndef WALDEN_BADTEST_H
#define WALDEN_BADTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/types.h"
#include "tests/lib/oracletest.h"

/* The kinds of page a flip or a garbage sector is aimed at. */
enum bt_class {
	BT_HEAP,       /* a table's heap page */
	BT_OVERFLOW,   /* a page of a value larger than a page */
	BT_LEAF,       /* a table's B+tree leaf */
	BT_INTERNAL,   /* a table's B+tree internal page */
	BT_META,       /* a B+tree metapage (tables and catalog) */
	BT_FSM,        /* a free space map page */
	BT_UNDO,       /* an undo log page */
	BT_CAT_HEAP,   /* the catalog's heap */
	BT_CAT_LEAF,   /* the catalog's B+tree leaf */
	BT_ZERO,       /* an all-zero page (allocated, never written) */
	BT_NCLASS
};

extern const char *const bt_class_names[BT_NCLASS];

typedef struct bt_file {
	char name[64];      /* path under the database directory: "base/17" */
	uint8_t *data;      /* pristine contents */
	size_t len;
} bt_file;

typedef struct bt_page {
	uint32_t file;      /* index in bt_db.files */
	wd_blkno blk;
	enum bt_class cls;
} bt_page;

typedef struct bt_db {
	char *root;         /* scratch directory holding the two below */
	char *dir;          /* the database */
	char *odir;         /* the LMDB oracle */
	ot_oracle o;
	uint32_t ps;
	bt_file *files;     /* every file of the database as closed */
	size_t nfiles;
	bt_page *pages;     /* every page of every relation file */
	size_t npages;
	size_t nclass[BT_NCLASS];
} bt_db;

/* What one trial saw. */
typedef struct bt_result {
	int rc;             /* the first error (0: none) */
	char msg[512];      /* its detail (wd_last_error) */
	int wrong;          /* rows that differ from the oracle */
	char diag[512];     /* the first difference */
	uint64_t rows;      /* rows read and compared */
} bt_result;

/* Database options of these suites: 4 KiB pages unless page_size is not
 * 0, 256 KiB WAL segments, synchronous commits. */
void bt_opts(wd_options *o, uint32_t page_size);

/* Builds the database under a fresh scratch directory named after tag,
 * with page size page_size (0: 4096) and seed: table "small" (1,500 keys,
 * a fifth deleted, some updated: a two-level index), "big" (values of
 * 5-20 KB on overflow pages), "empty"; closes it and takes the snapshot
 * and the page map. */
void bt_build(bt_db *b, const char *tag, uint32_t page_size, uint64_t seed);

/* Takes the snapshot again from the files as they are now (after a test
 * changed the database on purpose; the page map is kept). */
void bt_snapshot(bt_db *b);

/* Removes the scratch directory and frees everything. */
void bt_free(bt_db *b);

/* Puts every file back as the snapshot has it (rewrites those whose size
 * or mtime moved, recreates missing ones, removes new ones). Every file
 * is left with an mtime of 1 s past the epoch so that any write shows. */
void bt_restore(bt_db *b);

/* The full path of file i of the snapshot (malloc'd). */
char *bt_path(const bt_db *b, uint32_t file);

/* Overwrites len bytes at off of file i on disk. */
void bt_write_at(const bt_db *b, uint32_t file, uint64_t off, const void *p, size_t len);

/* Reads back one byte at off of file i on disk (-1 if the file is
 * shorter). */
int bt_byte_at(const bt_db *b, uint32_t file, uint64_t off);

/* The index of the snapshot file called name (e.g. "control"), -1 if
 * none. */
int bt_file_index(const bt_db *b, const char *name);

/* One trial against the database as it is on disk now: open with bt_opts
 * (page_size as given, 0: the database's), read every table in full
 * against the oracle, a put into each table taken back, close. Stops at
 * the first error of open, and of each table. */
void bt_trial(bt_db *b, uint32_t page_size, bt_result *r);

/* msg names file (e.g. "base/17", or for a relation file its id, as the
 * B+tree and heap checks do: "btree rel 17") and, unless blk is
 * WD_INVALID_BLKNO, "block B". */
bool bt_names(const char *msg, const char *file, wd_blkno blk);

#endif
