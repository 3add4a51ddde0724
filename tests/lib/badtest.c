/*
 * badtest.c - the helpers of badtest.h: the database of the bad-input
 * suites, its snapshot and page map, and one open-read-close trial judged
 * against the LMDB oracle.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "btree/btree.h"
#include "storage/error.h"
#include "storage/page.h"
#include "tests/lib/badtest.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "undo/undo.h"

#define SMALL_KEYS 1500u
#define BIG_KEYS 12u
#define PROBE_KEY "~probe"

const char *const bt_class_names[BT_NCLASS] = {
	"heap", "overflow", "btree leaf", "btree internal", "btree meta",
	"free space map", "undo", "catalog heap", "catalog btree", "all-zero",
};

static const char *const tables[] = {"small", "big", "empty"};
#define NTABLES (sizeof tables / sizeof tables[0])

void bt_opts(wd_options *o, uint32_t page_size)
{
	dt_opts(o, 1);
	if (page_size)
		o->page_size = page_size;
	o->wal_segment_size = 256u << 10;
	o->wal_buffers_bytes = 1u << 20;
}

/* ---- building ------------------------------------------------------------ */

/* Puts k -> a value of vlen bytes from seed into table t of x and dbi of mt. */
static void put_both(wd_txn *x, wd_table *t, MDB_txn *mt, MDB_dbi dbi, const void *k,
		     size_t klen, size_t vlen, uint64_t seed)
{
	uint8_t *v = malloc(vlen ? vlen : 1);
	MDB_val mk = {klen, (void *)k}, mv;
	assert_non_null(v);
	ot_fill(v, vlen, seed);
	OK(wd_put(x, t, k, klen, v, vlen));
	mv.mv_size = vlen;
	mv.mv_data = v;
	MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
	free(v);
}

/* Deletes k from both. */
static void del_both(wd_txn *x, wd_table *t, MDB_txn *mt, MDB_dbi dbi, const void *k,
		     size_t klen)
{
	MDB_val mk = {klen, (void *)k};
	OK(wd_del(x, t, k, klen));
	MDBOK(mdb_del(mt, dbi, &mk, NULL));
}

/* The contents of the three tables, committed in batches of 100 changes
 * (so the undo log spans pages). */
static void fill(bt_db *b, wd_db *db, uint64_t seed)
{
	uint8_t k[128];
	uint64_t s = seed;
	wd_txn *x = NULL;
	MDB_txn *mt = NULL;
	MDB_dbi dbi[NTABLES];
	wd_table *t[NTABLES];
	for (size_t i = 0; i < NTABLES; i++) {
		t[i] = dt_table(db, tables[i], WD_CREATE);
		dbi[i] = ot_dbi(&b->o, tables[i]);
	}
	for (unsigned step = 0; step < SMALL_KEYS + SMALL_KEYS / 5 + 200 + BIG_KEYS; step++) {
		size_t kl;
		if (step % 100 == 0) {
			if (x) {
				OK(wd_commit(x));
				MDBOK(mdb_txn_commit(mt));
			}
			OK(wd_begin(db, &x));
			mt = ot_begin(&b->o, NULL);
		}
		if (step < SMALL_KEYS) {          /* inserts */
			kl = dt_mixed_key("sm", step, 1200, k);
			put_both(x, t[0], mt, dbi[0], k, kl, 20 + tu_rand(&s) % 180, tu_rand(&s));
		} else if (step < SMALL_KEYS + SMALL_KEYS / 5) { /* a fifth deleted */
			kl = dt_mixed_key("sm", (step - SMALL_KEYS) * 5, 1200, k);
			del_both(x, t[0], mt, dbi[0], k, kl);
		} else if (step < SMALL_KEYS + SMALL_KEYS / 5 + 200) { /* updates */
			unsigned id = (unsigned)(tu_rand(&s) % SMALL_KEYS) | 1u;
			kl = dt_mixed_key("sm", id, 1200, k);
			put_both(x, t[0], mt, dbi[0], k, kl, 10 + tu_rand(&s) % 300, tu_rand(&s));
		} else {                          /* values on overflow pages */
			unsigned id = step - (SMALL_KEYS + SMALL_KEYS / 5 + 200);
			kl = (size_t)snprintf((char *)k, sizeof k, "big%04u", id);
			put_both(x, t[1], mt, dbi[1], k, kl, 5000 + tu_rand(&s) % 15000,
				 tu_rand(&s));
		}
	}
	OK(wd_commit(x));
	MDBOK(mdb_txn_commit(mt));
}

/* ---- the snapshot ---------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	assert_non_null(p = malloc(*len ? *len : 1));
	assert_int_equal(pread(fd, p, *len, 0), (ssize_t)*len);
	close(fd);
	return p;
}

/* Adds the regular files of dir/sub (sub "" for dir itself; not the lock
 * file, which is not data) to the snapshot. */
static void snap_dir(bt_db *b, const char *sub)
{
	char *path;
	DIR *d;
	struct dirent *e;
	assert_true(asprintf(&path, "%s/%s", b->dir, sub) > 0);
	assert_non_null(d = opendir(path));
	while ((e = readdir(d)) != NULL) {
		char rel[320], *full;
		struct stat st;
		bt_file *f;
		snprintf(rel, sizeof rel, "%s%s%s", sub, *sub ? "/" : "", e->d_name);
		assert_true(asprintf(&full, "%s/%s", b->dir, rel) > 0);
		if (lstat(full, &st) != 0 || !S_ISREG(st.st_mode) || strcmp(rel, "lock") == 0) {
			free(full);
			continue;
		}
		assert_non_null(b->files = realloc(b->files, (b->nfiles + 1) * sizeof *b->files));
		f = &b->files[b->nfiles++];
		assert_true(strlen(rel) < sizeof f->name);
		memcpy(f->name, rel, strlen(rel) + 1);
		f->data = slurp(full, &f->len);
		free(full);
	}
	closedir(d);
	free(path);
}

/* The class of page p (verified) of relation rel. */
static enum bt_class classify(wd_relid rel, const uint8_t *p, uint32_t ps)
{
	btree_page_view v;
	unsigned kind = page_kind(p);
	if (kind == PAGE_KIND_NONE)
		return BT_ZERO;
	if (rel == UNDO_REL)
		return BT_UNDO;
	if (kind == PAGE_KIND_META)
		return BT_META;
	if (rel < DB_FIRST_TABLE_RELID)
		return kind == PAGE_KIND_HEAP ? BT_CAT_HEAP : BT_CAT_LEAF;
	switch (kind) {
	case PAGE_KIND_HEAP: return BT_HEAP;
	case PAGE_KIND_OVERFLOW: return BT_OVERFLOW;
	case PAGE_KIND_FSM: return BT_FSM;
	default:
		assert_int_equal(btree_page_view_decode(p, ps, &v), 0);
		return v.level == 0 ? BT_LEAF : BT_INTERNAL;
	}
}

/* Maps every page of every base/ file to its class. */
static void map_pages(bt_db *b)
{
	for (uint32_t i = 0; i < b->nfiles; i++) {
		bt_file *f = &b->files[i];
		wd_relid rel;
		if (strncmp(f->name, "base/", 5) != 0)
			continue;
		rel = (wd_relid)strtoul(f->name + 5, NULL, 10);
		assert_int_equal(f->len % b->ps, 0);
		for (wd_blkno blk = 0; blk < f->len / b->ps; blk++) {
			const uint8_t *p = f->data + (size_t)blk * b->ps;
			bt_page *pg;
			int rc = page_verify(p, b->ps, blk, f->name);
			if (rc < 0)
				fail_msg("pristine %s block %u: %s", f->name, blk, wd_last_error());
			assert_non_null(b->pages = realloc(b->pages, (b->npages + 1) * sizeof *b->pages));
			pg = &b->pages[b->npages++];
			pg->file = i;
			pg->blk = blk;
			pg->cls = classify(rel, p, b->ps);
			b->nclass[pg->cls]++;
		}
	}
}

void bt_snapshot(bt_db *b)
{
	for (size_t i = 0; i < b->nfiles; i++)
		free(b->files[i].data);
	free(b->files);
	b->files = NULL;
	b->nfiles = 0;
	snap_dir(b, "");
	snap_dir(b, "base");
	snap_dir(b, "wal");
	bt_restore(b);
}

void bt_build(bt_db *b, const char *tag, uint32_t page_size, uint64_t seed)
{
	wd_options o;
	wd_db *db;
	memset(b, 0, sizeof *b);
	b->root = tu_tmpdir(tag);
	b->dir = tu_path(b->root, "db");
	b->odir = tu_path(b->root, "oracle");
	ot_open(&b->o, b->odir);
	bt_opts(&o, page_size);
	b->ps = o.page_size;
	OK(wd_open(b->dir, &o, &db));
	fill(b, db, seed);
	dt_check_all(db);
	OK(wd_close(db));
	snap_dir(b, "");
	snap_dir(b, "base");
	snap_dir(b, "wal");
	map_pages(b);
	bt_restore(b);
}

void bt_free(bt_db *b)
{
	ot_close(&b->o);
	tu_rmrf(b->root);
	for (size_t i = 0; i < b->nfiles; i++)
		free(b->files[i].data);
	free(b->files);
	free(b->pages);
	free(b->dir);
	free(b->odir);
	free(b->root);
	memset(b, 0, sizeof *b);
}

char *bt_path(const bt_db *b, uint32_t file)
{
	return tu_path(b->dir, b->files[file].name);
}

int bt_file_index(const bt_db *b, const char *name)
{
	for (size_t i = 0; i < b->nfiles; i++)
		if (strcmp(b->files[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Rewrites file f whole from the snapshot. */
static void rewrite(const bt_file *f, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->data, f->len), (ssize_t)f->len);
	close(fd);
}

/* Removes the files of dir/sub the snapshot does not hold. */
static void remove_new(const bt_db *b, const char *sub)
{
	char *path;
	DIR *d;
	struct dirent *e;
	assert_true(asprintf(&path, "%s/%s", b->dir, sub) > 0);
	if ((d = opendir(path)) == NULL) {
		assert_int_equal(mkdir(path, 0755), 0);
		free(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		char rel[320], *full;
		struct stat st;
		snprintf(rel, sizeof rel, "%s%s%s", sub, *sub ? "/" : "", e->d_name);
		assert_true(asprintf(&full, "%s/%s", b->dir, rel) > 0);
		if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && strcmp(rel, "lock") != 0 &&
		    bt_file_index(b, rel) < 0)
			assert_int_equal(unlink(full), 0);
		free(full);
	}
	closedir(d);
	free(path);
}

void bt_restore(bt_db *b)
{
	const struct timespec old[2] = {{1, 0}, {1, 0}};
	remove_new(b, "base");
	remove_new(b, "wal");
	remove_new(b, "");
	for (uint32_t i = 0; i < b->nfiles; i++) {
		bt_file *f = &b->files[i];
		char *path = bt_path(b, i);
		struct stat st;
		if (stat(path, &st) != 0 || (size_t)st.st_size != f->len ||
		    st.st_mtim.tv_sec != 1 || st.st_mtim.tv_nsec != 0) {
			rewrite(f, path);
			assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
		}
		free(path);
	}
}

void bt_write_at(const bt_db *b, uint32_t file, uint64_t off, const void *p, size_t len)
{
	char *path = bt_path(b, file);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
	free(path);
}

int bt_byte_at(const bt_db *b, uint32_t file, uint64_t off)
{
	char *path = bt_path(b, file);
	uint8_t c;
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? pread(fd, &c, 1, (off_t)off) : -1;
	if (fd >= 0)
		close(fd);
	free(path);
	return n == 1 ? c : -1;
}

/* msg holds word whole (not followed by a digit: base/1 is not in
 * base/17). */
static bool has_word(const char *msg, const char *word)
{
	size_t n = strlen(word);
	const char *at = strstr(msg, word);
	while (at && (at[n] >= '0' && at[n] <= '9'))
		at = strstr(at + 1, word);
	return at != NULL;
}

bool bt_names(const char *msg, const char *file, wd_blkno blk)
{
	char want[96];
	bool named = has_word(msg, file);
	/* the access methods' own checks name a relation file by its id */
	if (!named && strncmp(file, "base/", 5) == 0) {
		snprintf(want, sizeof want, "rel %s", file + 5);
		named = has_word(msg, want);
	}
	if (!named || blk == WD_INVALID_BLKNO)
		return named;
	snprintf(want, sizeof want, "block %u", blk);
	return has_word(msg, want);
}

/* ---- one trial --------------------------------------------------------------- */

/* Notes the first error of the trial. */
static void note_error(bt_result *r, int rc)
{
	if (r->rc == 0) {
		r->rc = rc;
		snprintf(r->msg, sizeof r->msg, "%s", wd_last_error());
	}
}

/* Notes a row that differs from the oracle. */
WD_PRINTF(2, 3)
static void note_wrong(bt_result *r, const char *fmt, ...)
{
	va_list ap;
	if (r->wrong++ == 0) {
		va_start(ap, fmt);
		vsnprintf(r->diag, sizeof r->diag, fmt, ap);
		va_end(ap);
	}
}

/* A cursor over t beside the oracle's dbi: every row returned must be the
 * oracle's next one. 0, or the error that stopped the scan. */
static int scan(wd_txn *x, wd_table *t, MDB_txn *mt, MDB_dbi dbi, const char *name,
		bt_result *r)
{
	MDB_cursor *mc;
	MDB_val mk, mv;
	wd_cursor *c;
	const void *wk, *wv;
	size_t wkl, wvl;
	int m, rc;
	if ((rc = wd_cursor_open(x, t, &c)) != 0)
		return rc;
	MDBOK(mdb_cursor_open(mt, dbi, &mc));
	m = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST);
	for (;;) {
		rc = wd_cursor_next(c, &wk, &wkl, &wv, &wvl);
		if (rc != 0 && rc != WD_NOTFOUND)
			break;
		if (rc == WD_NOTFOUND || m == MDB_NOTFOUND) {
			if (rc != WD_NOTFOUND || m != MDB_NOTFOUND)
				note_wrong(r, "%s: scan ends %s the oracle", name,
					   rc == WD_NOTFOUND ? "before" : "after");
			rc = 0;
			break;
		}
		r->rows++;
		if (wkl != mk.mv_size || memcmp(wk, mk.mv_data, wkl) != 0 ||
		    wvl != mv.mv_size || memcmp(wv, mv.mv_data, wvl) != 0) {
			note_wrong(r, "%s: row %llu differs from the oracle's", name,
				   (unsigned long long)r->rows);
			rc = 0;
			break;
		}
		m = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT);
	}
	wd_cursor_close(c);
	mdb_cursor_close(mc);
	return rc;
}

/* Spot gets: every third key of the oracle, and the deleted keys of
 * "small" (which must be absent). */
static int gets(wd_txn *x, wd_table *t, MDB_txn *mt, MDB_dbi dbi, const char *name,
		bt_result *r)
{
	static uint8_t buf[1u << 15];
	MDB_cursor *mc;
	MDB_val mk, mv;
	size_t vl;
	unsigned i = 0;
	int m, rc = 0;
	MDBOK(mdb_cursor_open(mt, dbi, &mc));
	for (m = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST); m == 0 && rc == 0;
	     m = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT), i++) {
		if (i % 3)
			continue;
		rc = wd_get(x, t, mk.mv_data, mk.mv_size, buf, sizeof buf, &vl);
		if (rc == WD_NOTFOUND || (rc == 0 && (vl != mv.mv_size ||
						      memcmp(buf, mv.mv_data, vl) != 0))) {
			note_wrong(r, "%s: get of the oracle's key %u %s", name, i,
				   rc ? "finds nothing" : "gives another value");
			rc = 0;
		}
	}
	mdb_cursor_close(mc);
	for (unsigned id = 0; rc == 0 && strcmp(name, "small") == 0 && id < SMALL_KEYS;
	     id += 5) {
		uint8_t k[128];
		size_t kl = dt_mixed_key("sm", id, 1200, k);
		MDB_val ok = {kl, k};
		if (mdb_get(mt, dbi, &ok, &mv) == 0)
			continue; /* put back by an update */
		rc = wd_get(x, t, k, kl, buf, sizeof buf, &vl);
		if (rc == 0)
			note_wrong(r, "%s: deleted key %u found", name, id);
		rc = rc == WD_NOTFOUND ? 0 : rc;
	}
	return rc;
}

/* Reads table name in full, then puts a key into it in a transaction
 * taken back (the free space map, the undo log and a leaf are used). */
static void read_table(wd_db *db, MDB_txn *mt, MDB_dbi dbi, const char *name, bt_result *r)
{
	wd_txn *x;
	wd_table *t;
	int rc;
	if ((rc = wd_begin(db, &x)) != 0) {
		note_error(r, rc);
		return;
	}
	if ((rc = wd_table_open(x, name, 0, &t)) != 0 ||
	    (rc = scan(x, t, mt, dbi, name, r)) != 0 || (rc = gets(x, t, mt, dbi, name, r)) != 0 ||
	    (rc = wd_put(x, t, PROBE_KEY, sizeof PROBE_KEY - 1, "v", 1)) != 0) {
		if (rc == WD_NOTFOUND)
			note_wrong(r, "table %s not found", name);
		else
			note_error(r, rc);
	}
	rc = wd_abort(x);
	if (rc != 0)
		note_error(r, rc);
}

void bt_trial(bt_db *b, uint32_t page_size, bt_result *r)
{
	wd_options o;
	wd_db *db = NULL;
	MDB_txn *mt;
	int rc;
	memset(r, 0, sizeof *r);
	bt_opts(&o, page_size ? page_size : b->ps);
	if ((rc = wd_open(b->dir, &o, &db)) != 0) {
		note_error(r, rc);
		return;
	}
	MDBOK(mdb_txn_begin(b->o.env, NULL, MDB_RDONLY, &mt));
	for (size_t i = 0; i < NTABLES; i++) {
		MDB_dbi dbi;
		MDBOK(mdb_dbi_open(mt, tables[i], 0, &dbi));
		read_table(db, mt, dbi, tables[i], r);
	}
	mdb_txn_abort(mt);
	if ((rc = wd_close(db)) != 0)
		note_error(r, rc);
}
