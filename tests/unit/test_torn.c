/*
 * test_torn.c - the torn-page matrix. For every kind of page that reaches
 * the disk, a database in which, after a checkpoint, a page of that kind
 * is changed and written out, then a simulated power loss tears exactly
 * that write into a mix of its old and new sectors (512-byte and 4 KiB
 * sectors of 8 KiB pages; storage/sim.h ST_SIM_TEAR_ONE). The reopen must
 * then repair it - from the full-page image its first change after the
 * checkpoint carries, or by rebuilding it (pages only ever formatted
 * afresh by their records, and the unlogged free space map) - and the
 * database must equal the LMDB oracle and pass every check. With
 * full_page_writes off the same tear must be caught by the page checksum
 * (WD_ECORRUPT naming file and block), never used. The matrix and what
 * each row shows: storage/README.md, "Torn pages".
 */
#define _GNU_SOURCE
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "btree/btree.h"
#include "bufmgr/bufmgr.h"
#include "heap/heap.h"
#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "txn/db.h"
#include "txn/txn_internal.h"
#include "undo/undo.h"
#include "wal/format.h"
#include "wal/reader.h"
#include "walden.h"

#define PS 8192u          /* the default page size: 4 KiB tears mix halves */
#define MAX_STEPS 200u    /* changes tried until a page of the kind is dirty */
#define MAX_DIRTY 4096u
#define ORACLE_MAP (1ull << 30)
/* the free space map case: a value on this many overflow pages puts the
 * tuple pages, and so their map entries, past the first 4 KiB of the map
 * page (entry of block b at byte 32 + b) */
#define BIG_CHUNKS 4070u

/* ---- the kinds of page -------------------------------------------------- */

/* Which relation a kind's page lives in. */
enum rel_class { R_HEAP, R_INDEX, R_FSM, R_CAT_HEAP, R_CAT_INDEX, R_UNDO };

/* How a torn page of the kind comes back when full_page_writes is on. */
enum repair {
	BY_IMAGE,   /* its first change after the redo point carries an image */
	BY_REBUILD, /* every record of it formats it afresh (WAL_BLK_WILL_INIT) */
	BY_FSM,     /* unlogged; rebuilt from the heap pages at the reopen */
};

struct child;

struct kind {
	const char *name;
	enum rel_class rel;
	unsigned page_kind;  /* PAGE_KIND_* */
	int level;           /* tree pages: 0 a leaf, 1 an internal page */
	enum repair repair;
	unsigned nkeys;      /* keys_build: keys [0, nkeys) of table "t", */
	size_t klen, vlen;   /* ... of klen bytes with vlen-byte values */
	/* untracked, before the power-loss run */
	void (*build)(struct child *c);
	/* tracked, before the checkpoint (NULL: nothing) */
	void (*before)(struct child *c);
	/* tracked, after it: the step-th change, repeated until exactly one
	 * page of the kind is dirty */
	void (*after)(struct child *c, unsigned step);
};

/* What the child leaves for the parent (memory shared across the fork). */
struct shared {
	wd_relid rel;
	wd_blkno blk;
	uint8_t old[PS], new[PS];
	char msg[512];
};

struct child {
	const struct kind *k;
	const char *dir, *jdir, *odir;
	wd_options o;
	wd_db *db;
	wd_txn *loser;   /* the undo kind: a transaction never ended */
	MDB_env *env;
	struct shared *out;
};

/* In the child: a failure ends it with status 3 and the detail in out. */
static struct shared *child_out;

static void child_fail(const char *what, int rc, const char *detail)
{
	snprintf(child_out->msg, sizeof child_out->msg, "%s: %d (%s)", what, rc, detail);
	_exit(3);
}

#define CK(expr)                                                              \
	do {                                                                  \
		int ck_ = (expr);                                             \
		if (ck_ != 0)                                                 \
			child_fail(#expr, ck_, wd_last_error());              \
	} while (0)
#define MCK(expr)                                                             \
	do {                                                                  \
		int ck_ = (expr);                                             \
		if (ck_ != 0)                                                 \
			child_fail(#expr, ck_, mdb_strerror(ck_));            \
	} while (0)

/* Opens the oracle's environment in odir: 0 or an LMDB error. */
static int oracle_env(const char *odir, unsigned flags, MDB_env **env)
{
	int rc = mdb_env_create(env);
	if (rc == 0 && (rc = mdb_env_set_mapsize(*env, ORACLE_MAP)) == 0 &&
	    (rc = mdb_env_set_maxdbs(*env, 16)) == 0)
		rc = mdb_env_open(*env, odir, flags, 0644);
	return rc;
}

/* ---- the child's workload: committed changes mirrored in the oracle ----- */

/* Key i: "k%05u" padded with 'p' to klen bytes (klen >= 6). */
static size_t key_of(unsigned i, size_t klen, char *buf)
{
	memset(buf, 'p', klen);
	memcpy(buf, "k", 1);
	for (int d = 5; d >= 1; d--, i /= 10)
		buf[d] = (char)('0' + i % 10);
	return klen;
}

/* A compressible value of vlen bytes that differs with v. */
static uint8_t *value_of(unsigned v, size_t vlen)
{
	uint8_t *b = malloc(vlen ? vlen : 1);
	if (!b)
		child_fail("malloc", WD_ENOMEM, "value");
	memset(b, 'a' + (int)(v % 26), vlen);
	for (size_t i = 0; i + 4 <= vlen; i += 512)
		put_le32(b + i, v + (unsigned)i);
	return b;
}

/* The oracle's write transaction on table name: *dbi, created if absent. */
static MDB_txn *oracle_begin(struct child *c, const char *name, MDB_dbi *dbi)
{
	MDB_txn *mt;
	MCK(mdb_txn_begin(c->env, NULL, 0, &mt));
	MCK(mdb_dbi_open(mt, name, MDB_CREATE, dbi));
	return mt;
}

/* Creates table name in walden and in the oracle. */
static void create_table(struct child *c, const char *name)
{
	MDB_dbi dbi;
	wd_txn *x;
	wd_table *t;
	CK(wd_begin(c->db, &x));
	CK(wd_table_open(x, name, WD_CREATE, &t));
	CK(wd_commit(x));
	MCK(mdb_txn_commit(oracle_begin(c, name, &dbi)));
}

/* One committed put (del: vlen 0 and val NULL) in table "t", mirrored. */
static void commit_change(struct child *c, const void *key, size_t klen, const void *val,
			  size_t vlen)
{
	MDB_val mk = {klen, (void *)key}, mv = {vlen, (void *)val};
	MDB_dbi dbi;
	MDB_txn *mt;
	wd_txn *x;
	wd_table *t;
	CK(wd_begin(c->db, &x));
	CK(wd_table_open(x, "t", 0, &t));
	CK(val ? wd_put(x, t, key, klen, val, vlen) : wd_del(x, t, key, klen));
	CK(wd_commit(x));
	mt = oracle_begin(c, "t", &dbi);
	MCK(val ? mdb_put(mt, dbi, &mk, &mv, 0) : mdb_del(mt, dbi, &mk, NULL));
	MCK(mdb_txn_commit(mt));
}

/* Puts key i (klen bytes) with value v (vlen bytes), committed. */
static void put_key(struct child *c, unsigned i, size_t klen, unsigned v, size_t vlen)
{
	char k[1024];
	uint8_t *val = value_of(v, vlen);
	commit_change(c, k, key_of(i, klen, k), val, vlen);
	free(val);
}

/* Deletes key i (klen bytes), committed. */
static void del_key(struct child *c, unsigned i, size_t klen)
{
	char k[1024];
	commit_change(c, k, key_of(i, klen, k), NULL, 0);
}

/* Table "t" with keys [0, n) of klen bytes and vlen-byte values (value
 * i), in one transaction. */
static void build_table(struct child *c, unsigned n, size_t klen, size_t vlen)
{
	uint8_t *val = value_of(0, vlen);
	MDB_dbi dbi;
	MDB_txn *mt;
	wd_txn *x;
	wd_table *t;
	char k[1024];
	create_table(c, "t");
	CK(wd_begin(c->db, &x));
	CK(wd_table_open(x, "t", 0, &t));
	mt = oracle_begin(c, "t", &dbi);
	for (unsigned i = 0; i < n; i++) {
		MDB_val mk = {key_of(i, klen, k), k}, mv = {vlen, val};
		if (vlen >= 4)
			put_le32(val, i);
		CK(wd_put(x, t, k, klen, val, vlen));
		MCK(mdb_put(mt, dbi, &mk, &mv, 0));
	}
	CK(wd_commit(x));
	MCK(mdb_txn_commit(mt));
	free(val);
}

/* Most kinds: the build makes table "t" with the kind's keys [0, nkeys)
 * and values; each step after the checkpoint puts the next key. */
static void keys_build(struct child *c)
{
	build_table(c, c->k->nkeys, c->k->klen, c->k->vlen);
}

static void keys_after(struct child *c, unsigned step)
{
	put_key(c, c->k->nkeys + step, c->k->klen, step, c->k->vlen);
}

/* heap page: a tuple updated in place (the same length). */
static void heap_after(struct child *c, unsigned step)
{
	put_key(c, 0, c->k->klen, 100 + step, c->k->vlen);
}

/* overflow page: a one-page value written over the empty heap page the
 * build left (a long value written and deleted) or a new one. */
static void overflow_build(struct child *c)
{
	keys_build(c);
	put_key(c, 1000, 16, 1, 5000);
	del_key(c, 1000, 16);
}

static void overflow_after(struct child *c, unsigned step)
{
	put_key(c, 1001 + step, 16, 2 + step, 5000);
}

/* undo page: a transaction updates keys before and after the checkpoint
 * and never ends (a loser: the reopen rolls it back through the page).
 * Each undo record holds the old value, 1800 bytes, so the third crosses
 * into the page's second half. */
static void loser_put(struct child *c, unsigned i)
{
	char k[16];
	uint8_t *v = value_of(i, 100);
	wd_table *t;
	if (!c->loser)
		CK(wd_begin(c->db, &c->loser));
	CK(wd_table_open(c->loser, "t", 0, &t));
	CK(wd_put(c->loser, t, k, key_of(i, sizeof k, k), v, 100));
	free(v);
}

static void undo_before(struct child *c)
{
	loser_put(c, 0);
	loser_put(c, 1);
}

static void undo_after(struct child *c, unsigned step)
{
	loser_put(c, 2 + step);
}

/* catalog heap and index: a table created after the checkpoint. */
static void catalog_build(struct child *c)
{
	create_table(c, "a0");
	create_table(c, "a1");
	create_table(c, "a2");
}

static void catalog_after(struct child *c, unsigned step)
{
	char name[16];
	snprintf(name, sizeof name, "b%u", step);
	create_table(c, name);
}

/* free space map: after a value on BIG_CHUNKS overflow pages, the pages
 * before them full, the tuple page is block ~BIG_CHUNKS, and the puts of
 * keys_after change its map entry. */
static void fsm_build(struct child *c)
{
	create_table(c, "t");
	put_key(c, 9999, c->k->klen, 7, (size_t)BIG_CHUNKS * (PS - 40));
	put_key(c, 0, c->k->klen, 0, c->k->vlen);
}

/* A put changes the tuple page's map entry, in memory; the FSM page gets
 * it when a clean close writes the map (heap README FSM-I2): that write,
 * done here, is the one a crash during the close can tear. */
static void fsm_after(struct child *c, unsigned step)
{
	wd_txn *x;
	wd_table *t;
	keys_after(c, step);
	CK(wd_begin(c->db, &x));
	CK(wd_table_open(x, "t", 0, &t));
	CK(heap_fsm_flush(t->h));
	CK(wd_commit(x));
}

/* The leaf gets one more key; 500-byte keys make a two-level tree, whose
 * root gets a downlink at the next leaf split (internal), or which is one
 * level short of a root split (metapage: the new root is named there). */
static const struct kind kinds[] = {
	{"heap page", R_HEAP, PAGE_KIND_HEAP, 0, BY_IMAGE, 6, 16, 200, keys_build, NULL,
	 heap_after},
	{"overflow page", R_HEAP, PAGE_KIND_OVERFLOW, 0, BY_REBUILD, 3, 16, 200, overflow_build,
	 NULL, overflow_after},
	{"btree leaf", R_INDEX, PAGE_KIND_BTREE, 0, BY_IMAGE, 6, 16, 64, keys_build, NULL,
	 keys_after},
	{"btree internal", R_INDEX, PAGE_KIND_BTREE, 1, BY_IMAGE, 40, 500, 16, keys_build, NULL,
	 keys_after},
	{"btree metapage", R_INDEX, PAGE_KIND_META, 0, BY_REBUILD, 110, 500, 16, keys_build,
	 NULL, keys_after},
	{"undo page", R_UNDO, PAGE_KIND_UNDO, 0, BY_IMAGE, 8, 16, 1800, keys_build, undo_before,
	 undo_after},
	{"catalog heap page", R_CAT_HEAP, PAGE_KIND_HEAP, 0, BY_IMAGE, 0, 0, 0, catalog_build,
	 NULL, catalog_after},
	{"catalog btree leaf", R_CAT_INDEX, PAGE_KIND_BTREE, 0, BY_IMAGE, 0, 0, 0, catalog_build,
	 NULL, catalog_after},
	{"free space map page", R_FSM, PAGE_KIND_FSM, 0, BY_FSM, 1, 16, 200, fsm_build, NULL,
	 fsm_after},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* ---- the child: build, checkpoint, change, write the page, die ---------- */

/* The relation id of the kind's relation in c's database. */
static wd_relid rel_of(struct child *c)
{
	const db_table_info *ti;
	wd_relid rel;
	wd_txn *x;
	wd_table *t;
	switch (c->k->rel) {
	case R_CAT_HEAP: return CATALOG_HEAP_REL;
	case R_CAT_INDEX: return CATALOG_INDEX_REL;
	case R_UNDO: return UNDO_REL;
	default: break;
	}
	CK(wd_begin(c->db, &x));
	CK(wd_table_open(x, "t", 0, &t));
	ti = db_table_info_of(t);
	rel = c->k->rel == R_HEAP ? ti->heap_rel : c->k->rel == R_INDEX ? ti->index_rel
									    : ti->fsm_rel;
	CK(wd_commit(x));
	return rel;
}

struct dirty {
	wd_relid rel;
	wd_blkno blk[MAX_DIRTY];
	unsigned n;
};

static int note_dirty(void *arg, wd_relid rel, wd_blkno blk, wd_lsn rec_lsn)
{
	struct dirty *d = arg;
	(void)rec_lsn;
	if (rel == d->rel && d->n < MAX_DIRTY)
		d->blk[d->n++] = blk;
	return 0;
}

/* true if block blk of rel (in the pool) is a page of c's kind. */
static bool page_matches(struct child *c, wd_relid rel, wd_blkno blk)
{
	bufmgr *pool = db_pool(c->db);
	btree_page_view v;
	bm_buf *buf;
	bool ok;
	CK(bufmgr_pin(pool, rel, blk, BM_READ, &buf));
	bufmgr_latch(buf, BM_SHARE);
	ok = page_kind(bufmgr_page(buf)) == c->k->page_kind;
	if (ok && c->k->page_kind == PAGE_KIND_BTREE)
		ok = btree_page_view_decode(bufmgr_page(buf), PS, &v) == 0 &&
		     (v.level > 0) == (c->k->level > 0);
	bufmgr_unlatch(buf);
	bufmgr_unpin(pool, buf);
	return ok;
}

/* The dirty pages of rel that are of c's kind: their number, the first
 * in *blk. */
static unsigned find_target(struct child *c, wd_relid rel, wd_blkno *blk)
{
	static struct dirty d;
	unsigned n = 0;
	d.rel = rel;
	d.n = 0;
	CK(bufmgr_dirty_pages(db_pool(c->db), note_dirty, &d));
	for (unsigned i = 0; i < d.n; i++)
		if (page_matches(c, rel, d.blk[i]) && n++ == 0)
			*blk = d.blk[i];
	return n;
}

/* Block blk of DIR/base/rel as the file holds it (zeroes past its end). */
static void read_block(const char *dir, wd_relid rel, wd_blkno blk, uint8_t *page)
{
	char path[4200];
	FILE *f;
	size_t n = 0;
	snprintf(path, sizeof path, "%s/base/%u", dir, rel);
	if ((f = fopen(path, "rb")) != NULL) {
		if (fseeko(f, (off_t)blk * PS, SEEK_SET) == 0)
			n = fread(page, 1, PS, f);
		fclose(f);
	}
	memset(page + n, 0, PS - n);
}

/* Writes block blk of rel from the pool to its file (no fsync). */
static void write_page(struct child *c, wd_relid rel, wd_blkno blk)
{
	bm_buf *buf;
	CK(bufmgr_pin(db_pool(c->db), rel, blk, BM_READ, &buf));
	CK(bufmgr_flush_buffer(db_pool(c->db), buf));
	bufmgr_unpin(db_pool(c->db), buf);
}

/*
 * The child: builds the kind's database (untracked) and closes it; opens it
 * again under the power-loss simulator, runs `before`, wd_checkpoint, then
 * `after` until exactly one page of the kind is dirty; notes that page's
 * bytes in the file (its version as of the checkpoint), writes it out
 * (WAL before data: the log is flushed up to its LSN first; commits were
 * synchronous) and notes the bytes again; then dies without closing.
 */
static void child_main(void *arg)
{
	struct child *c = arg;
	struct shared *out = c->out;
	unsigned n = 0;
	child_out = out;
	MCK(oracle_env(c->odir, MDB_NOSYNC | MDB_NOMETASYNC, &c->env));
	CK(wd_open(c->dir, &c->o, &c->db));
	c->k->build(c);
	CK(wd_close(c->db));
	CK(storage_sim_start(c->jdir));
	CK(wd_open(c->dir, &c->o, &c->db));
	out->rel = rel_of(c);
	if (c->k->before)
		c->k->before(c);
	CK(wd_checkpoint(c->db));
	for (unsigned step = 0; n == 0 && step < MAX_STEPS; step++) {
		c->k->after(c, step);
		n = find_target(c, out->rel, &out->blk);
	}
	if (n != 1)
		child_fail("a single dirty page of the kind", (int)n, c->k->name);
	read_block(c->dir, out->rel, out->blk, out->old);
	write_page(c, out->rel, out->blk);
	read_block(c->dir, out->rel, out->blk, out->new);
	mdb_env_close(c->env);
	_exit(0); /* the power goes: nothing closed */
}

/* ---- the parent: tear, reopen, compare ---------------------------------- */

/* The record number of the one pending write of block blk of rel: the
 * page write the child made (the journal may hold no other write of it). */
static uint64_t page_write_seq(const char *jdir, wd_relid rel, wd_blkno blk)
{
	st_sim_opts so = {.mode = ST_SIM_KEEP_ALL, .dry_run = true};
	st_sim_report r;
	char suffix[32];
	uint64_t seq = 0;
	unsigned found = 0;
	snprintf(suffix, sizeof suffix, "/base/%u", rel);
	OK(storage_sim_materialize(jdir, &so, &r));
	for (size_t i = 0; i < r.nops; i++) {
		const st_sim_op *op = &r.ops[i];
		size_t pl = strlen(op->path), sl = strlen(suffix);
		if (op->kind != ST_SIM_WRITE || pl < sl || strcmp(op->path + pl - sl, suffix) != 0 ||
		    op->off >= (uint64_t)(blk + 1) * PS || op->off + op->len <= (uint64_t)blk * PS)
			continue;
		assert_int_equal(op->off, (uint64_t)blk * PS);
		assert_int_equal(op->len, PS);
		seq = op->seq;
		found++;
	}
	storage_sim_report_free(&r);
	if (found != 1)
		fail_msg("rel %u block %u: %u pending writes, want the page write alone", rel, blk,
			 found);
	return seq;
}

/*
 * The tear: of the sectors in which the old and new page differ, the
 * first keeps its new bytes and the next its old ones, alternating (mix 1,
 * "B": the other way round); sectors alike keep their new bytes. Fails the
 * test if the pages differ in one sector only (no tear could mix them).
 */
static uint64_t tear_mask(const uint8_t *old, const uint8_t *new, uint32_t sector, int mix)
{
	uint64_t mask = 0;
	unsigned ndiff = 0;
	for (uint32_t i = 0; i < PS / sector; i++) {
		bool differs = memcmp(old + i * sector, new + i * sector, sector) != 0;
		if (!differs || ndiff++ % 2 == (unsigned)mix)
			mask |= 1ull << i;
	}
	if (ndiff < 2)
		fail_msg("old and new page differ in %u sector(s) of %u bytes: no tear can mix them",
			 ndiff, sector);
	return mask;
}

/* The torn page in the file is the mix the mask names, differs from both
 * versions, and fails its checksum. */
static void check_torn(const char *dir, const struct shared *sh, uint32_t sector,
		       uint64_t mask)
{
	uint8_t torn[PS];
	read_block(dir, sh->rel, sh->blk, torn);
	for (uint32_t i = 0; i < PS / sector; i++) {
		const uint8_t *want = (mask >> i) & 1 ? sh->new : sh->old;
		if (memcmp(torn + i * sector, want + i * sector, sector) != 0)
			fail_msg("sector %u of the torn page is not the version the mask names", i);
	}
	assert_memory_not_equal(torn, sh->old, PS);
	assert_memory_not_equal(torn, sh->new, PS);
	assert_int_not_equal(page_checksum(torn, PS, sh->blk), get_le32(torn + PH_CHECKSUM));
}

/* The block flags of the first record from the control file's redo point
 * that names block blk of rel; -1 if none does. */
static int first_reference(const char *dir, wd_relid rel, wd_blkno blk)
{
	const wal_decoded *rec;
	control_data cd;
	wal_reader *r;
	int rc, flags = -1;
	OK(control_read(dir, &cd));
	OK(wal_reader_open(dir, cd.db_id, cd.wal_segment_size, cd.page_size, &r));
	OK(wal_reader_seek(r, cd.redo_lsn));
	while (flags < 0 && (rc = wal_reader_next(r, &rec)) == 0)
		for (unsigned b = 0; b < rec->nblocks && flags < 0; b++)
			if (rec->blocks[b].rel == rel && rec->blocks[b].blk == blk)
				flags = rec->blocks[b].flags;
	if (flags < 0)
		assert_int_equal(rc, WD_NOTFOUND); /* the end of the log, no error */
	wal_reader_close(r);
	return flags;
}

/* What the log says about the page matches the kind and the settings. */
static void check_log(const char *dir, const struct kind *k, const struct shared *sh,
		      bool fpw, bool compress)
{
	int f = first_reference(dir, sh->rel, sh->blk);
	switch (k->repair) {
	case BY_IMAGE:
		assert_true(f >= 0);
		assert_int_equal(!!(f & WAL_BLK_HAS_IMAGE), fpw);
		assert_int_equal(!!(f & WAL_BLK_COMPRESSED), fpw && compress);
		assert_false(f & WAL_BLK_WILL_INIT);
		break;
	case BY_REBUILD:
		assert_true(f >= 0);
		assert_true(f & WAL_BLK_WILL_INIT);
		assert_false(f & WAL_BLK_HAS_IMAGE);
		break;
	case BY_FSM:
		assert_int_equal(f, -1); /* never logged */
		break;
	}
}

/* Table name holds exactly the oracle's keys and values. */
static void compare_table(wd_db *db, MDB_txn *mt, const char *name)
{
	MDB_cursor *mc;
	MDB_val mk, mv;
	MDB_dbi dbi;
	wd_cursor *wc;
	wd_txn *x;
	wd_table *t;
	uint64_t n = 0, rows = 0;
	const void *k, *v;
	size_t kl, vl;
	int rc;
	MDBOK(mdb_dbi_open(mt, name, 0, &dbi));
	MDBOK(mdb_cursor_open(mt, dbi, &mc));
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, name, 0, &t));
	for (rc = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT), n++) {
		uint8_t *buf = malloc(mv.mv_size + 1);
		size_t got;
		OK(wd_get(x, t, mk.mv_data, mk.mv_size, buf, mv.mv_size + 1, &got));
		assert_int_equal(got, mv.mv_size);
		assert_memory_equal(buf, mv.mv_data, got);
		free(buf);
	}
	assert_int_equal(rc, MDB_NOTFOUND);
	mdb_cursor_close(mc);
	OK(wd_cursor_open(x, t, &wc));
	while ((rc = wd_cursor_next(wc, &k, &kl, &v, &vl)) == 0)
		rows++;
	assert_int_equal(rc, WD_NOTFOUND);
	wd_cursor_close(wc);
	OK(wd_commit(x));
	if (rows != n)
		fail_msg("table %s: %llu rows, the oracle %llu", name, (unsigned long long)rows,
			 (unsigned long long)n);
}

static int count_table(void *arg, const db_table_info *ti)
{
	(void)ti;
	++*(unsigned *)arg;
	return 0;
}

/* The database holds exactly the oracle's tables, keys and values. */
static void oracle_equal(wd_db *db, const char *odir)
{
	MDB_env *env;
	MDB_txn *mt;
	MDB_cursor *mc;
	MDB_val mk, mv;
	MDB_dbi main_dbi;
	unsigned want = 0, have = 0;
	int rc;
	MDBOK(oracle_env(odir, MDB_RDONLY, &env));
	MDBOK(mdb_txn_begin(env, NULL, MDB_RDONLY, &mt));
	MDBOK(mdb_dbi_open(mt, NULL, 0, &main_dbi));
	MDBOK(mdb_cursor_open(mt, main_dbi, &mc));
	for (rc = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT), want++) {
		char name[64];
		assert_true(mk.mv_size < sizeof name);
		memcpy(name, mk.mv_data, mk.mv_size);
		name[mk.mv_size] = '\0';
		compare_table(db, mt, name);
	}
	mdb_cursor_close(mc);
	mdb_txn_abort(mt);
	mdb_env_close(env);
	OK(db_catalog_list(db, count_table, &have));
	assert_int_equal(have, want);
}

/* The test's settings: 8 KiB pages, a pool of 1024 of them (only the map
 * case's build evicts), small WAL segments not zero-filled (less to write
 * and to copy). */
static void torn_opts(wd_options *o, bool fpw, bool compress)
{
	wd_options_default(o);
	o->page_size = PS;
	o->buffer_pool_bytes = 1024ull * PS;
	o->wal_segment_size = 1u << 20;
	o->wal_init_zero = 0;
	o->full_page_writes = fpw;
	o->wal_compression = compress;
}

/* full_page_writes off, a kind repaired by images: the reopen fails with
 * WD_ECORRUPT naming the torn page's file and block. */
static void reopen_caught(const char *dir, const wd_options *o, const struct kind *k,
			  const struct shared *sh)
{
	char want[64];
	wd_db *db = NULL;
	int rc = wd_open(dir, o, &db);
	snprintf(want, sizeof want, "base/%u: block %u: checksum mismatch", sh->rel, sh->blk);
	if (rc != WD_ECORRUPT)
		fail_msg("%s: reopen: %d (%s), want WD_ECORRUPT: the torn page was used", k->name,
			 rc, rc ? wd_last_error() : "success");
	if (!strstr(wd_last_error(), want))
		fail_msg("%s: the error does not name the page (%s): %s", k->name, want,
			 wd_last_error());
	assert_null(db);
}

/* Otherwise the reopen repairs it: images restored (image kinds), the
 * oracle's contents, every check clean, and the page on disk verifies. */
static void reopen_repaired(const char *dir, const char *odir, const wd_options *o,
			    const struct kind *k, const struct shared *sh)
{
	const db_recovery_report *rep;
	uint8_t page[PS];
	char file[32];
	wd_db *db;
	int rc = wd_open(dir, o, &db);
	if (rc != 0)
		fail_msg("%s: reopen: %s (%s)", k->name, wd_strerror(rc), wd_last_error());
	OK(db_recovery_report_get(db, &rep));
	if (k->repair == BY_IMAGE)
		assert_true(rep->images >= 1);
	oracle_equal(db, odir);
	dt_check_all(db);
	OK(wd_close(db));
	read_block(dir, sh->rel, sh->blk, page);
	snprintf(file, sizeof file, "base/%u", sh->rel);
	assert_int_equal(page_verify(page, PS, sh->blk, file), 0);
}

/* One crash of the matrix: the child's run for a kind and settings, kept
 * (db and journal moved to snap/) so that several tears can be made of it,
 * each on a fresh copy in the original place (the journal names absolute
 * paths). */
struct crash {
	const struct kind *k;
	bool fpw, compress;
	char *root, *dir, *jdir, *odir, *snap_dir, *snap_jdir;
	struct shared *sh;
	wd_options o;
};

static void crash_run(struct crash *cr, const struct kind *k, bool fpw, bool compress)
{
	struct child c;
	char *snap;
	int ex;
	*cr = (struct crash){.k = k, .fpw = fpw, .compress = compress};
	cr->root = tu_tmpdir("torn");
	cr->dir = tu_path(cr->root, "db");
	cr->jdir = tu_path(cr->root, "journal");
	cr->odir = tu_path(cr->root, "oracle");
	snap = tu_path(cr->root, "snap");
	cr->snap_dir = tu_path(snap, "db");
	cr->snap_jdir = tu_path(snap, "journal");
	cr->sh = tw_shared(sizeof *cr->sh);
	assert_int_equal(mkdir(cr->jdir, 0755), 0);
	assert_int_equal(mkdir(cr->odir, 0755), 0);
	assert_int_equal(mkdir(snap, 0755), 0);
	free(snap);
	torn_opts(&cr->o, fpw, compress);
	c = (struct child){.k = k, .dir = cr->dir, .jdir = cr->jdir, .odir = cr->odir,
			   .o = cr->o, .out = cr->sh};
	if ((ex = tu_run_child(child_main, &c)) != 0)
		fail_msg("%s: child exit %d: %s", k->name, ex, cr->sh->msg);
	assert_int_equal(rename(cr->dir, cr->snap_dir), 0);
	assert_int_equal(rename(cr->jdir, cr->snap_jdir), 0);
}

static void crash_free(struct crash *cr)
{
	tw_shared_free(cr->sh, sizeof *cr->sh);
	tu_rmrf(cr->root);
	free(cr->snap_jdir);
	free(cr->snap_dir);
	free(cr->odir);
	free(cr->jdir);
	free(cr->dir);
	free(cr->root);
}

/* One case of the matrix: the crash torn at `sector` granularity in the
 * given mix, then reopened. Returns what happened, for the summary (the
 * legend in run_matrix). */
static const char *tear_case(struct crash *cr, uint32_t sector, int mix)
{
	static const char *const repaired[] = {[BY_IMAGE] = "image", [BY_REBUILD] = "init",
					       [BY_FSM] = "scan"};
	const struct kind *k = cr->k;
	const struct shared *sh = cr->sh;
	st_sim_opts so = {.mode = ST_SIM_TEAR_ONE, .sector_bytes = sector};
	bool caught = k->repair == BY_IMAGE && !cr->fpw;

	tu_rmrf(cr->dir);
	tu_rmrf(cr->jdir);
	tu_copy_tree(cr->snap_dir, cr->dir);
	tu_copy_tree(cr->snap_jdir, cr->jdir);
	so.tear_seq = page_write_seq(cr->jdir, sh->rel, sh->blk);
	so.tear_mask = tear_mask(sh->old, sh->new, sector, mix);
	OK(storage_sim_materialize(cr->jdir, &so, NULL));
	check_torn(cr->dir, sh, sector, so.tear_mask);
	check_log(cr->dir, k, sh, cr->fpw, cr->compress);
	if (caught)
		reopen_caught(cr->dir, &cr->o, k, sh);
	else
		reopen_repaired(cr->dir, cr->odir, &cr->o, k, sh);
	return caught ? "caught" : repaired[k->repair];
}

/* ---- the matrix ---------------------------------------------------------- */

static const uint32_t sectors[] = {512, 4096};

/* Runs every kind (those with images only, if images_only): one crash
 * each, torn at both sector sizes in both mixes; prints the rows. */
static void run_matrix(bool fpw, bool compress, bool images_only)
{
	static bool legend;
	if (!legend)
		print_message("image: restored from its full-page image; init: rebuilt by its\n"
			      "records, which format it afresh; scan: rebuilt from the heap pages\n"
			      "(never logged); caught: the reopen fails with WD_ECORRUPT naming file\n"
			      "and block. Mix A: of the sectors in which old and new page differ,\n"
			      "the first keeps its new bytes, the next its old ones, and so on;\n"
			      "B: the other way round.\n");
	legend = true;
	print_message("torn-page matrix: %u-byte pages, full_page_writes %s, wal_compression %s\n",
		      PS, fpw ? "on" : "off", compress ? "on" : "off");
	print_message("  %-20s %-18s %-8s %-8s %-8s %s\n", "page kind", "page", "512 A",
		      "512 B", "4096 A", "4096 B");
	for (size_t i = 0; i < NKINDS; i++) {
		const char *cell[4];
		struct crash cr;
		char where[32];
		if (images_only && kinds[i].repair != BY_IMAGE)
			continue;
		crash_run(&cr, &kinds[i], fpw, compress);
		for (int j = 0; j < 4; j++)
			cell[j] = tear_case(&cr, sectors[j / 2], j % 2);
		snprintf(where, sizeof where, "base/%u block %u", cr.sh->rel, cr.sh->blk);
		print_message("  %-20s %-18s %-8s %-8s %-8s %s\n", kinds[i].name, where, cell[0],
			      cell[1], cell[2], cell[3]);
		crash_free(&cr);
	}
}

static void test_matrix_fpw_on(void **state)
{
	(void)state;
	run_matrix(true, false, false);
}

static void test_matrix_fpw_off(void **state)
{
	(void)state;
	run_matrix(false, false, false);
}

static void test_matrix_compressed(void **state)
{
	(void)state;
	run_matrix(true, true, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix_fpw_on),
		cmocka_unit_test(test_matrix_fpw_off),
		cmocka_unit_test(test_matrix_compressed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
