/*
 * test_api.c - the public API of include/walden.h end to end: databases
 * (create, reopen, the directory lock within and across processes),
 * tables (create, open, drop), put/get/del with their limits, cursors,
 * long randomized runs against LMDB as the oracle, and crashes at random
 * I/O calls after which every acknowledged commit must be there.
 * After every run each table passes db_table_check (btree_check, the free
 * space map, heap and index one to one).
 *
 * Scale: WALDEN_TEST_SCALE (a factor, default 1; 0.2 under ASan) sets the
 * number of operations of the long runs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "heap/heap.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "txn/txn_internal.h"
#include "wal/wal.h"
#include "walden.h"

#define PS 4096u

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static size_t count_tables_cb_n;
static int count_cb(void *arg, const db_table_info *ti)
{
	(void)arg;
	(void)ti;
	count_tables_cb_n++;
	return 0;
}

static size_t count_tables(wd_db *db)
{
	count_tables_cb_n = 0;
	OK(db_catalog_list(db, count_cb, NULL));
	return count_tables_cb_n;
}

/*
 * huge_pages reaches the pool: on by default, the pool advised for huge
 * pages when the kernel takes the advice (bufmgr README "Memory"); 0 keeps
 * it on ordinary pages. Data written either way reads back the same.
 */
static void test_huge_pages_option(void **state)
{
	char *root = tu_tmpdir("api");
	char *dir = tu_path(root, "db");
	bool takes = tu_kernel_takes_huge_advice();
	wd_options o;
	char buf[16];
	size_t vlen;
	(void)state;
	wd_options_default(&o);
	assert_int_equal(o.huge_pages, 1);
	for (int huge = 1; huge >= 0; huge--) {
		wd_db *db;
		wd_txn *x;
		wd_table *t;
		bm_stats st;
		dt_opts(&o, 1);
		o.buffer_pool_bytes = 4u << 20;
		o.huge_pages = (uint32_t)huge;
		OK(wd_open(dir, &o, &db));
		bufmgr_stats(db_pool(db), &st);
		assert_int_equal(st.huge_bytes >= o.buffer_pool_bytes, huge && takes);
		if (!(huge && takes))
			assert_int_equal(st.huge_bytes, 0);
		OK(wd_begin(db, &x));
		OK(wd_table_open(x, "t", WD_CREATE, &t));
		if (huge)
			OK(wd_put(x, t, "k", 1, "on huge", 7));
		OK(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen));
		assert_int_equal(vlen, 7);
		assert_memory_equal(buf, "on huge", 7);
		OK(wd_commit(x));
		OK(wd_close(db));
	}
	tu_rmrf(root);
	free(dir);
	free(root);
}

/* ---- databases -------------------------------------------------------- */

static void test_create_reopen(void **state)
{
	char *root = tu_tmpdir("api");
	char *dir = tu_path(root, "db");
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	char buf[64];
	size_t vlen;
	(void)state;

	db = dt_open_db(dir, 1); /* creates dir */
	assert_int_equal(db_page_size(db), PS);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	OK(wd_put(x, t, "hello", 5, "world", 5));
	OK(wd_commit(x));
	OK(wd_close(db));

	/* the page size comes from the control file, not the options */
	dt_opts(&o, 1);
	o.page_size = 8192;
	OK(wd_open(dir, &o, &db));
	assert_int_equal(db_page_size(db), PS);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "hello", 5, buf, sizeof buf, &vlen));
	assert_int_equal(vlen, 5);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(wd_get(x, t, "nope", 4, buf, sizeof buf, &vlen), WD_NOTFOUND);
	assert_int_equal(vlen, 0);
	/* read-only: nothing to roll back */
	assert_int_equal(wd_abort(x), 0);

	/* close refuses while a transaction is open */
	OK(wd_begin(db, &x));
	assert_int_equal(wd_close(db), WD_ESTATE);
	OK(wd_put(x, t, "k", 1, "v", 1));
	OK(wd_abort(x));
	OK(wd_begin(db, &x));
	assert_int_equal(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen), WD_NOTFOUND);
	OK(wd_commit(x));
	OK(wd_close(db));

	/* bad options */
	dt_opts(&o, 1);
	o.page_size = 5000;
	assert_int_equal(wd_open(dir, &o, &db), WD_EINVAL);
	assert_null(db);
	tu_rmrf(root);
	free(dir);
	free(root);
}

static void test_busy_same_process(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db, *db2 = NULL;
	(void)state;
	db = dt_open_db(root, 1);
	assert_int_equal(wd_open(root, NULL, &db2), WD_EBUSY);
	assert_null(db2);
	assert_non_null(strstr(wd_last_error(), "already open in this process"));
	OK(wd_close(db));
	/* and free again once closed */
	db = dt_open_db(root, 1);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

static const char *busy_dir;

/* In a child: the parent holds busy_dir; exit 0 iff WD_EBUSY names it. */
static void busy_child(void *arg)
{
	char want[64];
	wd_db *db = NULL;
	int rc = wd_open(busy_dir, NULL, &db);
	(void)arg;
	snprintf(want, sizeof want, "in use by process %ld", (long)getppid());
	if (rc != WD_EBUSY || !strstr(wd_last_error(), want)) {
		fprintf(stderr, "child: rc %d, %s\n", rc, wd_last_error());
		_exit(1);
	}
	_exit(0);
}

static void test_busy_other_process(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db;
	(void)state;
	db = dt_open_db(root, 1);
	busy_dir = root;
	assert_int_equal(tu_run_child(busy_child, NULL), 0);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- tables ----------------------------------------------------------- */

static bool rel_file_exists(const char *dir, wd_relid rel)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/base/%u", dir, rel);
	return access(path, F_OK) == 0;
}

static void test_tables(void **state)
{
	char *root = tu_tmpdir("api");
	char name[300];
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x;
	wd_table *a, *b, *a2;
	db_table_info ia;
	char buf[16];
	size_t vlen;
	(void)state;

	OK(wd_begin(db, &x));
	assert_int_equal(wd_table_open(x, "a", 0, &a), WD_NOTFOUND);
	OK(wd_table_open(x, "a", WD_CREATE, &a));
	OK(wd_table_open(x, "b", WD_CREATE, &b));
	OK(wd_table_open(x, "a", 0, &a2));
	assert_ptr_equal(a, a2); /* cached */
	memset(name, 'n', sizeof name);
	name[256] = 0;
	assert_int_equal(wd_table_open(x, name, WD_CREATE, &a2), WD_EINVAL);
	assert_int_equal(wd_table_open(x, "", WD_CREATE, &a2), WD_EINVAL);
	name[255] = 0;
	OK(wd_table_open(x, name, WD_CREATE, &a2));
	assert_int_equal(count_tables(db), 3);
	OK(wd_put(x, a, "k", 1, "in a", 4));
	OK(wd_put(x, b, "k", 1, "in b", 4));
	ia = *db_table_info_of(a);
	assert_true(rel_file_exists(root, ia.heap_rel));
	assert_true(rel_file_exists(root, ia.index_rel));
	OK(wd_commit(x));

	/* drop: files gone, name free, other tables untouched */
	OK(wd_begin(db, &x));
	OK(wd_table_drop(x, "a"));
	assert_int_equal(wd_table_drop(x, "a"), WD_NOTFOUND);
	assert_false(rel_file_exists(root, ia.heap_rel));
	assert_false(rel_file_exists(root, ia.fsm_rel));
	assert_false(rel_file_exists(root, ia.index_rel));
	assert_int_equal(wd_table_open(x, "a", 0, &a), WD_NOTFOUND);
	OK(wd_table_open(x, "a", WD_CREATE, &a));
	assert_true(db_table_info_of(a)->heap_rel > ia.index_rel); /* ids not reused */
	assert_int_equal(wd_get(x, a, "k", 1, buf, sizeof buf, &vlen), WD_NOTFOUND);
	OK(wd_get(x, b, "k", 1, buf, sizeof buf, &vlen));
	assert_memory_equal(buf, "in b", 4);
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));

	/* after reopen: the same tables */
	db = dt_open_db(root, 1);
	assert_int_equal(count_tables(db), 3);
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- put / get / del -------------------------------------------------- */

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = tu_rand(&s);
		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

static void test_put_get_del(void **state)
{
	char *root = tu_tmpdir("api");
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	uint8_t key[PS], *big = malloc(3 * PS + 17), *out = malloc(4 * PS);
	size_t vlen;
	(void)state;
	dt_opts(&o, 1);
	o.max_value_bytes = 1u << 20;
	OK(wd_open(root, &o, &db));
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));

	/* empty value */
	OK(wd_put(x, t, "e", 1, NULL, 0));
	OK(wd_get(x, t, "e", 1, NULL, 0, &vlen));
	assert_int_equal(vlen, 0);
	/* keys: 1..page/8 bytes */
	memset(key, 'K', sizeof key);
	OK(wd_put(x, t, key, PS / 8, "max", 3));
	OK(wd_get(x, t, key, PS / 8, out, 16, &vlen));
	assert_int_equal(vlen, 3);
	assert_int_equal(wd_put(x, t, key, PS / 8 + 1, "x", 1), WD_ETOOBIG);
	assert_non_null(strstr(wd_last_error(), "maximum key size"));
	assert_int_equal(wd_get(x, t, key, PS / 8 + 1, out, 16, &vlen), WD_ETOOBIG);
	assert_int_equal(wd_put(x, t, key, 0, "x", 1), WD_EINVAL);
	/* values longer than a page (overflow) and than the maximum */
	fill(big, 3 * PS + 17, 1);
	OK(wd_put(x, t, "big", 3, big, 3 * PS + 17));
	OK(wd_get(x, t, "big", 3, out, 4 * PS, &vlen));
	assert_int_equal(vlen, 3 * PS + 17);
	assert_memory_equal(out, big, vlen);
	assert_int_equal(wd_put(x, t, "huge", 4, big, (1u << 20) + 1), WD_ETOOBIG);
	assert_non_null(strstr(wd_last_error(), "max_value_bytes"));
	/* short buffer: a prefix copied, the full length reported */
	memset(out, 0, 100);
	OK(wd_get(x, t, "big", 3, out, 100, &vlen));
	assert_int_equal(vlen, 3 * PS + 17);
	assert_memory_equal(out, big, 100);
	/* overwrite: bigger, smaller, inline again */
	OK(wd_put(x, t, "big", 3, "small", 5));
	OK(wd_get(x, t, "big", 3, out, 4 * PS, &vlen));
	assert_int_equal(vlen, 5);
	OK(wd_put(x, t, "e", 1, big, 2000));
	OK(wd_get(x, t, "e", 1, out, 4 * PS, &vlen));
	assert_int_equal(vlen, 2000);
	assert_memory_equal(out, big, 2000);
	/* del */
	OK(wd_del(x, t, "big", 3));
	assert_int_equal(wd_del(x, t, "big", 3), WD_NOTFOUND);
	assert_int_equal(wd_get(x, t, "big", 3, out, 16, &vlen), WD_NOTFOUND);
	assert_int_equal(vlen, 0);
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	free(big);
	free(out);
	tu_rmrf(root);
	free(root);
}

/* Opens db's table "t" in a transaction of its own and returns how many
 * FSM entries its open rebuilt by reading heap pages (not from the FSM
 * file) and the heap's block count. */
static void fsm_open_stats(wd_db *db, uint64_t *rebuilt, wd_blkno *nblocks)
{
	wd_txn *x;
	wd_table *t;
	heap_stats st;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	heap_stats_get(t->h, &st);
	*rebuilt = st.fsm_rebuilt;
	OK(heap_nblocks(t->h, nblocks));
	OK(wd_commit(x));
}

/* Puts (or with del, deletes) keys k00000.. from first to end, step by
 * step, in one transaction. */
static void fsm_rows(wd_db *db, int first, int end, int step, bool del)
{
	uint8_t v[100];
	char k[16];
	wd_txn *x;
	wd_table *t;
	memset(v, 'v', sizeof v);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	for (int i = first; i < end; i += step) {
		snprintf(k, sizeof k, "k%05d", i);
		if (del)
			OK(wd_del(x, t, k, strlen(k)));
		else
			OK(wd_put(x, t, k, strlen(k), v, sizeof v));
	}
	OK(wd_commit(x));
}

/*
 * The free space map lives in memory between opens and reaches its file at
 * the clean close (heap README FSM-I2): the next open reads no heap page
 * to rebuild it (fewer than 8: the zero pages reserved past the end), and
 * its entries are exact - after deletes, entries too low (room the map
 * would never offer) are a failure of dt_check_all - so the rows put then
 * fill the holes without growing the heap.
 */
static void test_fsm_written_at_close(void **state)
{
	char *root = tu_tmpdir("api-fsm");
	wd_options o;
	wd_db *db;
	uint64_t rebuilt;
	wd_blkno n0, n1;
	(void)state;
	dt_opts(&o, 0);
	OK(wd_open(root, &o, &db));
	fsm_rows(db, 0, 4000, 1, false);
	OK(wd_close(db));
	OK(wd_open(root, &o, &db));
	fsm_open_stats(db, &rebuilt, &n0);
	assert_true(n0 >= 40);
	assert_true(rebuilt < 8);
	fsm_rows(db, 0, 4000, 2, true);
	OK(wd_close(db));
	OK(wd_open(root, &o, &db));
	fsm_open_stats(db, &rebuilt, &n1);
	assert_true(rebuilt < 8);
	dt_check_all(db);
	fsm_rows(db, 10000, 11800, 1, false);
	fsm_open_stats(db, &rebuilt, &n1);
	assert_int_equal(n1, n0);
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

static void test_cursor_basic(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 0);
	wd_txn *x;
	wd_table *t;
	wd_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	char kb[16];
	unsigned n = 0;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	for (unsigned i = 0; i < 1000; i += 2) {
		snprintf(kb, sizeof kb, "%05u", i);
		OK(wd_put(x, t, kb, 5, kb, 5));
	}
	OK(wd_cursor_open(x, t, &c));
	while (wd_cursor_next(c, &k, &kl, &v, &vl) == 0) {
		snprintf(kb, sizeof kb, "%05u", 2 * n++);
		assert_int_equal(kl, 5);
		assert_memory_equal(k, kb, 5);
		assert_memory_equal(v, kb, 5);
	}
	assert_int_equal(n, 500);
	OK(wd_cursor_seek(c, "00501", 5));
	OK(wd_cursor_next(c, &k, &kl, &v, &vl));
	assert_memory_equal(k, "00502", 5);
	OK(wd_cursor_seek(c, "1", 1));
	assert_int_equal(wd_cursor_next(c, &k, &kl, &v, &vl), WD_NOTFOUND);
	wd_cursor_close(c);
	OK(wd_commit(x));
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- randomized runs against LMDB -------------------------------------- */

#define ORACLE_KEY_MAX 511u /* LMDB's key limit (the API's is page/8 = 512) */

struct oracle {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
};

static void oracle_open(struct oracle *o, const char *dir)
{
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mdb_env_create(&o->env), 0);
	assert_int_equal(mdb_env_set_mapsize(o->env, 4ull << 30), 0);
	assert_int_equal(mdb_env_open(o->env, dir, MDB_NOSYNC | MDB_NOMETASYNC, 0644), 0);
	assert_int_equal(mdb_txn_begin(o->env, NULL, 0, &o->txn), 0);
	assert_int_equal(mdb_dbi_open(o->txn, NULL, 0, &o->dbi), 0);
}

static void oracle_close(struct oracle *o)
{
	assert_int_equal(mdb_txn_commit(o->txn), 0);
	mdb_env_close(o->env);
}

/* Key i of the key space: length and bytes from i (keys may repeat). */
static size_t key_of(uint64_t seed, uint64_t i, uint8_t *k)
{
	uint64_t s = seed * 1000003u + i;
	uint64_t r = tu_rand(&s);
	size_t len = r % 100 < 85 ? 4 + r % 29 : 1 + (r >> 8) % ORACLE_KEY_MAX;
	fill(k, len, r);
	if (len >= 2) { /* shared prefixes: keys cluster */
		k[0] = (uint8_t)(i % 7);
		k[1] = (uint8_t)((i >> 3) % 251);
	}
	return len;
}

static size_t val_len(uint64_t *s)
{
	uint64_t r = tu_rand(s) % 1000;
	if (r < 700)
		return tu_rand(s) % 120;
	if (r < 920)
		return 120 + tu_rand(s) % 900;
	if (r < 985)
		return 1000 + tu_rand(s) % PS;
	return PS + tu_rand(s) % (2 * PS); /* up to 3 pages */
}

struct run {
	uint64_t seed, s;
	wd_db *db;
	const char *dir;
	wd_txn *x;
	wd_table *t;
	struct oracle o;
	uint8_t *vbuf, *gbuf;
	uint64_t keyspace;
	uint64_t ops, gets, puts, dels, scans, scanned;
};

static void run_get(struct run *r, const uint8_t *k, size_t kl)
{
	MDB_val mk = {kl, (void *)k}, mv;
	size_t vlen;
	int m = mdb_get(r->o.txn, r->o.dbi, &mk, &mv);
	int rc = wd_get(r->x, r->t, k, kl, r->gbuf, 3 * PS, &vlen);
	r->gets++;
	if (m == MDB_NOTFOUND) {
		if (rc != WD_NOTFOUND)
			fail_msg("seed %llu op %llu: get of an absent key: %d (%s)",
				 (unsigned long long)r->seed, (unsigned long long)r->ops, rc,
				 wd_last_error());
		return;
	}
	if (rc != 0)
		fail_msg("seed %llu op %llu: get: %s (%s)", (unsigned long long)r->seed,
			 (unsigned long long)r->ops, wd_strerror(rc), wd_last_error());
	assert_int_equal(vlen, mv.mv_size);
	assert_memory_equal(r->gbuf, mv.mv_data, vlen);
}

static void run_put(struct run *r, const uint8_t *k, size_t kl)
{
	MDB_val mk = {kl, (void *)k}, mv;
	size_t vl = val_len(&r->s);
	fill(r->vbuf, vl, tu_rand(&r->s));
	mv.mv_size = vl;
	mv.mv_data = r->vbuf;
	OK(wd_put(r->x, r->t, k, kl, r->vbuf, vl));
	assert_int_equal(mdb_put(r->o.txn, r->o.dbi, &mk, &mv, 0), 0);
	r->puts++;
}

static void run_del(struct run *r, const uint8_t *k, size_t kl)
{
	MDB_val mk = {kl, (void *)k};
	int m = mdb_del(r->o.txn, r->o.dbi, &mk, NULL);
	int rc = wd_del(r->x, r->t, k, kl);
	assert_int_equal(rc, m == MDB_NOTFOUND ? WD_NOTFOUND : 0);
	r->dels++;
}

/* Compares n items (all if n == 0) from the first key >= k (NULL: the
 * first key) of walden and LMDB. */
static void run_scan(struct run *r, const uint8_t *k, size_t kl, uint64_t n)
{
	MDB_cursor *mc;
	MDB_val mk = {kl, (void *)k}, mv;
	wd_cursor *c;
	const void *wk, *wv;
	size_t wkl, wvl;
	uint64_t i = 0;
	int m, rc;
	assert_int_equal(mdb_cursor_open(r->o.txn, r->o.dbi, &mc), 0);
	OK(wd_cursor_open(r->x, r->t, &c));
	if (k)
		OK(wd_cursor_seek(c, k, kl));
	m = mdb_cursor_get(mc, &mk, &mv, k ? MDB_SET_RANGE : MDB_FIRST);
	for (;;) {
		rc = wd_cursor_next(c, &wk, &wkl, &wv, &wvl);
		if (m == MDB_NOTFOUND) {
			assert_int_equal(rc, WD_NOTFOUND);
			break;
		}
		if (rc != 0)
			fail_msg("seed %llu: scan item %llu: %s (%s)", (unsigned long long)r->seed,
				 (unsigned long long)i, wd_strerror(rc), wd_last_error());
		assert_int_equal(wkl, mk.mv_size);
		assert_memory_equal(wk, mk.mv_data, wkl);
		assert_int_equal(wvl, mv.mv_size);
		assert_memory_equal(wv, mv.mv_data, wvl);
		r->scanned++;
		if (++i == n)
			break;
		m = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT);
	}
	wd_cursor_close(c);
	mdb_cursor_close(mc);
	r->scans++;
}

/* Deletes every key from a random one on, up to n keys in key order: runs
 * of emptied leaves and (keys inserted together) heap pages. */
static void run_wipe(struct run *r, uint64_t n)
{
	MDB_cursor *mc;
	MDB_val mk, mv;
	uint8_t k[ORACLE_KEY_MAX];
	size_t kl = key_of(r->seed, tu_rand(&r->s) % r->keyspace, k);
	assert_int_equal(mdb_cursor_open(r->o.txn, r->o.dbi, &mc), 0);
	mk.mv_size = kl;
	mk.mv_data = k;
	int m = mdb_cursor_get(mc, &mk, &mv, MDB_SET_RANGE);
	for (uint64_t i = 0; i < n && m == 0; i++) {
		OK(wd_del(r->x, r->t, mk.mv_data, mk.mv_size));
		assert_int_equal(mdb_cursor_del(mc, 0), 0);
		r->dels++;
		/* after a delete the cursor sits on the next key */
		m = mdb_cursor_get(mc, &mk, &mv, MDB_GET_CURRENT);
	}
	mdb_cursor_close(mc);
}

static void run_commit(struct run *r)
{
	OK(wd_commit(r->x));
	OK(wd_begin(r->db, &r->x));
}

static void run_reopen(struct run *r)
{
	OK(wd_commit(r->x));
	dt_check_all(r->db);
	OK(wd_close(r->db));
	r->db = dt_open_db(r->dir, 0);
	OK(wd_begin(r->db, &r->x));
	OK(wd_table_open(r->x, "rnd", 0, &r->t));
}

/* One operation of the mix. */
static void run_step(struct run *r)
{
	uint8_t k[ORACLE_KEY_MAX];
	uint64_t c = tu_rand(&r->s) % 1000;
	size_t kl = key_of(r->seed, tu_rand(&r->s) % r->keyspace, k);
	if (c < 450)
		run_put(r, k, kl);
	else if (c < 750)
		run_get(r, k, kl);
	else if (c < 995)
		run_del(r, k, kl);
	else
		run_scan(r, k, kl, 1 + tu_rand(&r->s) % 100);
	r->ops++;
}

static void run_seed(uint64_t seed, uint64_t nops, uint64_t *total)
{
	char *root = tu_tmpdir("api-rnd");
	char *dir = tu_path(root, "db"), *odir = tu_path(root, "lmdb");
	struct run r = {.seed = seed, .s = seed, .dir = dir};
	r.keyspace = 2000 + nops / 20;
	r.vbuf = malloc(3 * PS);
	r.gbuf = malloc(3 * PS);
	oracle_open(&r.o, odir);
	r.db = dt_open_db(dir, 0);
	OK(wd_begin(r.db, &r.x));
	OK(wd_table_open(r.x, "rnd", WD_CREATE, &r.t));
	while (r.ops < nops) {
		run_step(&r);
		if (r.ops % 256 == 0)
			run_commit(&r);
		if (r.ops % 20000 == 0)
			run_wipe(&r, 200 + tu_rand(&r.s) % 2000);
		if (r.ops == nops / 2)
			run_reopen(&r);
	}
	run_scan(&r, NULL, 0, 0); /* everything, in order */
	run_reopen(&r);
	run_scan(&r, NULL, 0, 0);
	OK(wd_commit(r.x));
	dt_check_all(r.db);
	OK(wd_close(r.db));
	oracle_close(&r.o);
	*total += r.ops;
	print_message("seed %llu: %llu ops (%llu puts, %llu gets, %llu dels, %llu scans of "
		      "%llu items)\n", (unsigned long long)seed, (unsigned long long)r.ops,
		      (unsigned long long)r.puts, (unsigned long long)r.gets,
		      (unsigned long long)r.dels, (unsigned long long)r.scans,
		      (unsigned long long)r.scanned);
	free(r.vbuf);
	free(r.gbuf);
	tu_rmrf(root);
	free(dir);
	free(odir);
	free(root);
}

static void test_random_vs_lmdb(void **state)
{
	uint64_t per_seed = (uint64_t)(150000 * dt_scale()), total = 0;
	double t0 = dt_now_s();
	(void)state;
	if (per_seed < 2000)
		per_seed = 2000;
	for (uint64_t seed = 1; seed <= 7; seed++)
		run_seed(tu_seed(seed), per_seed, &total);
	print_message("random vs LMDB: %llu operations in %.1f s (%.0f ops/s)\n",
		      (unsigned long long)total, dt_now_s() - t0, total / (dt_now_s() - t0));
}

/* ---- repairs at open: heap and index back in agreement ------------------ */

static const char *repair_dir;

/* In a child: committed keys a..e, then half-done changes written straight
 * to the heap and the index (as a crash between their records leaves
 * them), the log flushed, and the process gone without wd_close. */
static void repair_child(void *arg)
{
	wd_db *db = NULL;
	wd_txn *x;
	wd_table *t;
	heap_tid tid, t2;
	wd_tid it;
	wd_lsn prev = 0, lsn;
	int rc = 0;
	(void)arg;
	if (wd_open(repair_dir, NULL, &db) || wd_begin(db, &x) ||
	    wd_table_open(x, "r", WD_CREATE, &t))
		_exit(1);
	for (char c = 'a'; c <= 'e'; c++)
		rc |= wd_put(x, t, &c, 1, "old", 3);
	rc |= wd_commit(x);
	heap *h = db_table_heap(t);
	btree *bt = db_table_btree(t);
	/* an insert cut before its index entry */
	rc |= heap_insert(h, 0, &prev, "orphan", 6, "x", 1, &tid);
	/* a del cut after the index entry went: b */
	rc |= btree_delete(bt, 0, 0, "b", 1, NULL, &lsn);
	/* c: its tuple gone, the entry left */
	rc |= btree_lookup(bt, "c", 1, &it);
	rc |= heap_delete(h, 0, &prev, (heap_tid){it.blk, it.slot});
	/* d: a moved update cut before the index followed (new version in,
	 * old one deleted) */
	rc |= btree_lookup(bt, "d", 1, &it);
	rc |= heap_insert(h, 0, &prev, "d", 1, "new", 3, &t2);
	rc |= heap_delete(h, 0, &prev, (heap_tid){it.blk, it.slot});
	/* e: cut after the new version, before the old one went */
	rc |= heap_insert(h, 0, &prev, "e", 1, "new", 3, &t2);
	rc |= wal_flush_to(db_wal(db), wal_insert_pos(db_wal(db)));
	_exit(rc == 0 ? 0 : 2);
}

/* Sets the control file's needs-repair mark, as db_needs_repair does: the
 * children below leave heap and index out of step by direct heap and
 * index calls that no loser's undo record explains - what only a change
 * whose settling failed leaves - so the next open must repair in full. */
static void mark_needs_repair(const char *dir)
{
	control_data cd;
	OK(control_read(dir, &cd));
	cd.flags |= CONTROL_F_NEEDS_REPAIR;
	OK(control_write(dir, &cd));
}

static void test_repair_at_open(void **state)
{
	char *root = tu_tmpdir("api");
	static const char *want[] = {"old", NULL, NULL, "new", "old"};
	/* each repaired entry's trace line: its kind, then what was wrong */
	static const char *const fixes[][2] = {
		{"delete-tuple ", "key 'orphan' had no index entry: deleted"},
		{"delete-tuple ", "key 'b' had no index entry: deleted"},
		{"delete-tuple ", "key 'e' is a second version (the index points at tuple "},
		{"repoint-entry ", "index entry of key 'd' pointed at "},
		{"delete-entry ", "index entry of key 'c' points at "},
	};
	const db_recovery_report *r;
	unsigned lines = 0;
	wd_options o;
	char *trace;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	char buf[8];
	size_t vlen;
	(void)state;
	repair_dir = root;
	assert_int_equal(tu_run_child(repair_child, NULL), 0);
	mark_needs_repair(root);
	dt_opts(&o, 1);
	db = dt_open_traced(root, &o, "recovery", &trace);
	dt_check_all(db);
	/* one trace line per entry repaired, saying what and how */
	for (size_t i = 0; i < sizeof fixes / sizeof *fixes; i++) {
		const char *what = strstr(trace, fixes[i][1]), *line = what;
		while (line && line > trace && line[-1] != '\n')
			line--;
		if (!what || !strstr(line, fixes[i][0]) || strstr(line, fixes[i][0]) > what ||
		    strncmp(line, "  repair table r ", 17) != 0)
			fail_msg("no repair line '%s ... %s' in the trace:\n%s", fixes[i][0],
				 fixes[i][1], trace);
	}
	OK(db_recovery_report_get(db, &r));
	assert_int_equal(r->repaired, sizeof fixes / sizeof *fixes);
	assert_int_equal(r->tables_repaired, 2); /* the catalog and r, in full */
	for (const char *p = trace; (p = strstr(p, "  repair table r ")); p++)
		lines++;
	assert_int_equal(lines, r->repaired);
	free(trace);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "r", 0, &t));
	for (char c = 'a'; c <= 'e'; c++) {
		int rc = wd_get(x, t, &c, 1, buf, sizeof buf, &vlen);
		if (!want[c - 'a']) {
			assert_int_equal(rc, WD_NOTFOUND);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(vlen, 3);
		assert_memory_equal(buf, want[c - 'a'], 3);
	}
	assert_int_equal(wd_get(x, t, "orphan", 6, buf, sizeof buf, &vlen), WD_NOTFOUND);
	OK(wd_commit(x));
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

static const char *orphan_point;

/* In a child: tables "keep" and "gone" exist; "gone" is dropped (or "new"
 * created) and the process dies at orphan_point. */
static void orphan_child(void *arg)
{
	wd_db *db = NULL;
	wd_txn *x;
	wd_table *t, *keep;
	(void)arg;
	if (wd_open(repair_dir, NULL, &db) || wd_begin(db, &x) ||
	    wd_table_open(x, "keep", WD_CREATE, &keep) || wd_put(x, keep, "k", 1, "v", 1) ||
	    wd_table_open(x, "gone", WD_CREATE, &t) || wd_put(x, t, "k", 1, "v", 1) ||
	    wd_commit(x) || wd_begin(db, &x))
		_exit(1);
	/* the drop commits on its own: the second commit is the caller's */
	storage_crash_arm(orphan_point,
			  strcmp(orphan_point, "txn-commit-after-wal-insert") == 0 ? 2 : 1);
	if (strcmp(orphan_point, "txn-drop-before-unlink") == 0)
		(void)wd_table_drop(x, "gone");
	else if (strcmp(orphan_point, "txn-commit-after-wal-insert") == 0) {
		/* a whole drop, then a crash: replay meets records of
		 * relations whose files are gone */
		if (wd_table_drop(x, "gone") == 0 && wd_put(x, keep, "k2", 2, "v", 1) == 0)
			(void)wd_commit(x);
	} else
		(void)wd_table_open(x, "new", WD_CREATE, &t);
	_exit(2); /* not reached */
}

/* Files of a drop cut before its unlinks, or of a create cut before its
 * catalog entry, are removed at the next open. */
static void test_orphans_after_crash(void **state)
{
	static const char *points[] = {"txn-drop-before-unlink", "txn-create-before-catalog",
				       "txn-commit-after-wal-insert"};
	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		char *root = tu_tmpdir("api");
		char *base = tu_path(root, "base");
		wd_db *db;
		wd_txn *x;
		wd_table *t;
		unsigned nfiles = 0;
		struct dirent *de;
		DIR *d;
		repair_dir = root;
		orphan_point = points[i];
		assert_int_equal(tu_run_child(orphan_child, NULL), ST_CRASH_EXIT_CODE);
		db = dt_open_db(root, 1);
		OK(wd_begin(db, &x));
		OK(wd_table_open(x, "keep", 0, &t));
		/* the drop was durable before its files went; the create's
		 * entry never was */
		assert_int_equal(wd_table_open(x, i == 1 ? "new" : "gone", 0, &t), WD_NOTFOUND);
		OK(wd_commit(x));
		dt_check_all(db);
		d = opendir(base);
		while ((de = readdir(d)) != NULL)
			nfiles += de->d_name[0] != '.';
		closedir(d);
		/* catalog heap and index, the undo log, then 3 per remaining table */
		assert_int_equal(nfiles, 3 + 3 * (i == 1 ? 2 : 1));
		OK(wd_close(db));
		tu_rmrf(root);
		free(base);
		free(root);
	}
}

/* ---- crashes at random I/O calls ---------------------------------------- */

#define CR_KEYS 400u
#define CR_TXNS 400u /* per child */

/* Transaction n of the crash test (deterministic): 1..6 puts or dels of
 * keys from a small space, values up to 3 pages. Applies it to model
 * (value lengths, -1 absent) and returns the keys it touched in touched. */
struct cr_op {
	unsigned key;
	int del;
	size_t vlen;
	uint64_t vseed;
};

static unsigned cr_txn(uint64_t seed, uint64_t n, struct cr_op *ops)
{
	uint64_t s = seed * 7919u + n * 104729u;
	unsigned nops = 1 + (unsigned)(tu_rand(&s) % 6);
	for (unsigned i = 0; i < nops; i++) {
		ops[i].key = (unsigned)(tu_rand(&s) % CR_KEYS);
		ops[i].del = tu_rand(&s) % 5 == 0;
		ops[i].vlen = val_len(&s);
		ops[i].vseed = tu_rand(&s);
	}
	return nops;
}

static size_t cr_key(unsigned k, char *buf)
{
	return (size_t)snprintf(buf, 64, "key-%u-%0*u", k, (int)(k % 40), k);
}

struct cr_child {
	const char *dir;
	uint64_t seed, first_txn;
	int fd;           /* write end: one uint64 per acknowledged commit */
	uint64_t crash_after; /* I/O calls from the start of the child */
	bool crash_in_open;
	const char *point;    /* or a named crash point, at hit crash_after */
};

/* Crash points between the records of one put or del: the repairs at open
 * (txn/README.md P3) must put heap and index back in agreement. */
static const char *const cr_points[] = {
	"txn-put-before-index", "txn-del-before-heap", "heap-update-after-new-version",
	"heap-after-overflow-write", "heap-delete-before-overflow-free",
	"txn-commit-after-wal-insert",
};

/*
 * The crash children's work: CR_TXNS transactions of c's seed on table
 * "crash", each acknowledged commit's number written to c->fd; with
 * per_txn_sync each transaction turns synchronous_commit on itself.
 * Returns the first error (a missing key on delete is not one).
 */
static int cr_run_txns(struct cr_child *c, wd_db *db, bool per_txn_sync)
{
	struct cr_op ops[8];
	uint8_t *v = malloc(3 * PS);
	char k[64];
	wd_txn *x;
	wd_table *t;
	int rc = 0;
	for (uint64_t n = c->first_txn; rc == 0 && n < c->first_txn + CR_TXNS; n++) {
		unsigned nops = cr_txn(c->seed, n, ops);
		if ((rc = wd_begin(db, &x)) != 0)
			break;
		if ((per_txn_sync && (rc = wd_txn_set_synchronous(x, 1)) != 0) ||
		    (rc = wd_table_open(x, "crash", WD_CREATE, &t)) != 0)
			break;
		for (unsigned i = 0; i < nops && rc == 0; i++) {
			size_t kl = cr_key(ops[i].key, k);
			fill(v, ops[i].vlen, ops[i].vseed);
			rc = ops[i].del ? wd_del(x, t, k, kl)
					: wd_put(x, t, k, kl, v, ops[i].vlen);
			if (rc == WD_NOTFOUND)
				rc = 0;
		}
		if (rc == 0 && (rc = wd_commit(x)) == 0 &&
		    write(c->fd, &n, sizeof n) != (ssize_t)sizeof n)
			_exit(2);
	}
	free(v);
	return rc;
}

static void cr_child_main(void *arg)
{
	struct cr_child *c = arg;
	wd_options o;
	wd_db *db;
	int rc;
	dt_opts(&o, 1);
	if (c->crash_in_open)
		storage_crash_arm_io(storage_io_count() + c->crash_after);
	if ((rc = wd_open(c->dir, &o, &db)) != 0)
		goto fail;
	if (c->point)
		storage_crash_arm(c->point, c->crash_after);
	else if (!c->crash_in_open)
		storage_crash_arm_io(storage_io_count() + c->crash_after);
	if ((rc = cr_run_txns(c, db, false)) != 0)
		goto fail;
	_exit(wd_close(db) == 0 ? 0 : 3);
fail:
	fprintf(stderr, "crash child: %s (%s)\n", wd_strerror(rc), wd_last_error());
	_exit(4);
}

/* Model of key -> (vlen, vseed) after transactions [1, upto). */
struct cr_val {
	bool present;
	size_t vlen;
	uint64_t vseed;
};

static void cr_apply(uint64_t seed, uint64_t n, struct cr_val *m)
{
	struct cr_op ops[8];
	unsigned nops = cr_txn(seed, n, ops);
	for (unsigned i = 0; i < nops; i++) {
		struct cr_val *e = &m[ops[i].key];
		e->present = !ops[i].del;
		e->vlen = ops[i].vlen;
		e->vseed = ops[i].vseed;
	}
}

static bool cr_matches(const struct cr_val *e, int rc, const uint8_t *got, size_t vlen,
		       uint8_t *scratch)
{
	if (!e->present)
		return rc == WD_NOTFOUND;
	if (rc != 0 || vlen != e->vlen)
		return false;
	fill(scratch, vlen, e->vseed);
	return memcmp(scratch, got, vlen) == 0;
}

/*
 * Runs child_main(c) in a forked child, raising *acked to the last commit
 * number it reported through the pipe, and returns its exit status, which
 * must be 0 (done) or a planned crash.
 */
static int cr_run_child(void (*child_main)(void *), struct cr_child *c, uint64_t *acked,
			uint64_t round)
{
	int p[2], status;
	uint64_t n;
	pid_t pid;
	assert_int_equal(pipe(p), 0);
	c->fd = p[1];
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		child_main(c);
	}
	close(p[1]);
	while (read(p[0], &n, sizeof n) == (ssize_t)sizeof n)
		*acked = n;
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != ST_CRASH_EXIT_CODE)
		fail_msg("round %llu: child exited with %d", (unsigned long long)round,
			 WEXITSTATUS(status));
	return WEXITSTATUS(status);
}

/* After a crash: every key holds its value after the acknowledged
 * transactions [1, acked], or - keys of the one in flight - after it. */
static void cr_verify(const char *dir, uint64_t seed, uint64_t acked)
{
	struct cr_val *m = calloc(CR_KEYS, sizeof *m), *m2 = calloc(CR_KEYS, sizeof *m2);
	uint8_t *got = malloc(3 * PS), *scratch = malloc(3 * PS);
	char k[64];
	wd_db *db = dt_open_db(dir, 1); /* replays */
	wd_txn *x;
	wd_table *t;
	for (uint64_t n = 1; n <= acked; n++)
		cr_apply(seed, n, m);
	memcpy(m2, m, CR_KEYS * sizeof *m);
	cr_apply(seed, acked + 1, m2);
	dt_check_all(db);
	OK(wd_begin(db, &x));
	if (wd_table_open(x, "crash", 0, &t) == 0) {
		for (unsigned i = 0; i < CR_KEYS; i++) {
			size_t vlen = 0, kl = cr_key(i, k);
			int rc = wd_get(x, t, k, kl, got, 3 * PS, &vlen);
			if (!cr_matches(&m[i], rc, got, vlen, scratch) &&
			    !cr_matches(&m2[i], rc, got, vlen, scratch))
				fail_msg("after %llu acknowledged commits: key %u: rc %d, %zu bytes;"
					 " expected %s %zu bytes", (unsigned long long)acked, i, rc,
					 vlen, m[i].present ? "present," : "absent", m[i].vlen);
		}
	} else {
		assert_int_equal(acked, 0);
	}
	OK(wd_commit(x));
	OK(wd_close(db));
	free(m);
	free(m2);
	free(got);
	free(scratch);
}

static void test_crash_acknowledged(void **state)
{
	char *root = tu_tmpdir("api-crash");
	char *dir = tu_path(root, "db");
	uint64_t seed = tu_seed(42), acked = 0, rounds = SANITIZED ? 12 : 24, s = tu_seed(99),
		 crashes = 0;
	(void)state;
	for (uint64_t round = 0; round < rounds; round++) {
		int status;
		bool in_open = round % 4 == 3;
		struct cr_child c = {.dir = dir, .seed = seed, .first_txn = acked + 1,
				     .crash_after = 1 + tu_rand(&s) % (in_open ? 200 : 1000),
				     .crash_in_open = in_open};
		if (round % 4 == 1) { /* a named point, at one of its first hits */
			c.point = cr_points[tu_rand(&s) % (sizeof cr_points / sizeof cr_points[0])];
			c.crash_after = 1 + tu_rand(&s) % 100;
		}
		status = cr_run_child(cr_child_main, &c, &acked, round);
		crashes += status == ST_CRASH_EXIT_CODE;
		/* after every fourth round the next child opens the crashed
		 * database itself: replay, and a crash armed inside it */
		if (round % 4 != 2 || round + 1 == rounds)
			cr_verify(dir, seed, acked);
	}
	print_message("crash test: %llu rounds, %llu crashes, %llu transactions acknowledged\n",
		      (unsigned long long)rounds, (unsigned long long)crashes,
		      (unsigned long long)acked);
	assert_true(crashes > 0);
	tu_rmrf(root);
	free(dir);
	free(root);
}


/* ---- repairs at open carry full-page images (a torn write of the open's
 * own flush is repaired by the next open) -------------------------------- */

static const char *tp_dir, *tp_jdir;
static uint64_t tp_hit;

/* In a child: 200 committed keys, a clean close, then a del cut after its
 * index record (made durable) and the process gone; the parent marks the
 * control file as needing a repair (mark_needs_repair): the next open must
 * repair the heap page of k150. */
static void tp_build(void *arg)
{
	uint8_t v[100];
	char k[16];
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	wd_lsn lsn;
	int rc = 0;
	(void)arg;
	dt_opts(&o, 1);
	memset(v, 'v', sizeof v);
	if (wd_open(tp_dir, &o, &db) || wd_begin(db, &x) || wd_table_open(x, "t", WD_CREATE, &t))
		_exit(1);
	for (int i = 0; i < 200; i++)
		rc |= wd_put(x, t, k, (size_t)snprintf(k, sizeof k, "k%03d", i), v, sizeof v);
	if (rc || wd_commit(x) || wd_close(db))
		_exit(2);
	if (wd_open(tp_dir, &o, &db) || wd_begin(db, &x) || wd_table_open(x, "t", 0, &t))
		_exit(3);
	if (btree_delete(db_table_btree(t), 1, 0, "k150", 4, NULL, &lsn) ||
	    wal_flush_to(db_wal(db), lsn))
		_exit(4);
	_exit(0); /* crash */
}

/* In a child: opens the crashed database (replay, repair) with simulated
 * power loss on, and dies after the tp_hit-th page write. 0: the open
 * finished before that. */
static void tp_open(void *arg)
{
	wd_options o;
	wd_db *db;
	(void)arg;
	dt_opts(&o, 1);
	if (storage_sim_start(tp_jdir) != 0)
		_exit(5);
	storage_crash_arm("bufmgr-after-write", tp_hit);
	if (wd_open(tp_dir, &o, &db) != 0)
		_exit(6);
	_exit(wd_close(db) == 0 ? 0 : 7);
}

static void test_repair_torn_during_open(void **state)
{
	char *root = tu_tmpdir("api-torn");
	char *dir = tu_path(root, "db"), *jdir = tu_path(root, "journal");
	uint64_t torn = 0;
	bool finished = false;
	(void)state;
	tp_dir = dir;
	tp_jdir = jdir;
	for (tp_hit = 1; !finished && tp_hit <= 12; tp_hit++) {
		for (uint64_t seed = 1; seed <= 6; seed++) {
			st_sim_opts so = {.mode = ST_SIM_TORN, .seed = seed * 7919 + tp_hit * 104729};
			st_sim_report rep;
			char buf[128];
			size_t vlen;
			wd_db *db;
			wd_txn *x;
			wd_table *t;
			int ex;
			tu_rmrf(dir);
			tu_rmrf(jdir);
			assert_int_equal(mkdir(jdir, 0755), 0);
			assert_int_equal(tu_run_child(tp_build, NULL), 0);
			mark_needs_repair(dir);
			ex = tu_run_child(tp_open, NULL);
			if (ex != 0 && ex != ST_CRASH_EXIT_CODE)
				fail_msg("open with a crash at write %llu: exit %d",
					 (unsigned long long)tp_hit, ex);
			finished = ex == 0;
			OK(storage_sim_materialize(jdir, &so, &rep));
			torn += rep.data_torn;
			storage_sim_report_free(&rep);
			/* the next open repairs whatever the torn open left */
			db = dt_open_db(dir, 1);
			dt_check_all(db);
			OK(wd_begin(db, &x));
			OK(wd_table_open(x, "t", 0, &t));
			assert_int_equal(wd_get(x, t, "k150", 4, buf, sizeof buf, &vlen),
					 WD_NOTFOUND);
			OK(wd_get(x, t, "k149", 4, buf, sizeof buf, &vlen));
			assert_int_equal(vlen, 100);
			OK(wd_get(x, t, "k151", 4, buf, sizeof buf, &vlen));
			OK(wd_commit(x));
			OK(wd_close(db));
		}
	}
	print_message("crashes at the open's writes 1..%llu, %llu writes torn\n",
		      (unsigned long long)tp_hit - 1, (unsigned long long)torn);
	assert_true(finished);
	assert_true(torn > 0);
	tu_rmrf(root);
	free(dir);
	free(jdir);
	free(root);
}

/* ---- a put or del failing between its heap and index steps ------------- */

static void expect_val(wd_txn *x, wd_table *t, const char *k, char c, size_t len)
{
	char buf[2048];
	size_t vlen;
	int rc = wd_get(x, t, k, strlen(k), buf, sizeof buf, &vlen);
	if (rc != 0)
		fail_msg("get %s: %s (%s)", k, wd_strerror(rc), wd_last_error());
	assert_int_equal(vlen, len);
	for (size_t i = 0; i < len; i++)
		if (buf[i] != c)
			fail_msg("key %s: byte %zu is '%c', expected '%c'", k, i, buf[i], c);
}

static void test_half_done_changes(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x;
	wd_table *t;
	wd_tid kold, jt;
	char v[1200];
	db_check_report rep;
	int rc;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	/* one heap page nearly full: an update of K to 1000 bytes moves it */
	for (const char *k = "AKCDE"; *k; k++) {
		memset(v, *k, sizeof v);
		OK(wd_put(x, t, k, 1, v, 780));
	}

	/* a del whose heap step fails is taken back whole */
	db_fault_arm("txn-del-heap", 1);
	assert_int_equal(wd_del(x, t, "D", 1), WD_EIO);
	expect_val(x, t, "D", 'D', 780);
	OK(db_table_check(t, &rep));
	assert_false(db_needs_repair_flag(db));

	/* a moved update whose index step fails: K's entry points at its
	 * freed slot, which J's insert takes */
	OK(btree_lookup(db_table_btree(t), "K", 1, &kold));
	db_fault_arm("txn-put-update-index", 1);
	memset(v, 'k', sizeof v);
	assert_int_equal(wd_put(x, t, "K", 1, v, 1000), WD_EIO);
	assert_non_null(strstr(wd_last_error(), "next open repairs"));
	assert_true(db_needs_repair_flag(db));
	memset(v, 'J', sizeof v);
	OK(wd_put(x, t, "J", 1, v, 700));
	OK(btree_lookup(db_table_btree(t), "J", 1, &jt));
	assert_true(jt.blk == kold.blk && jt.slot == kold.slot); /* the reuse */
	/* no call on K trusts the entry: J is never read, overwritten or
	 * deleted through it */
	rc = wd_get(x, t, "K", 1, v, sizeof v, &(size_t){0});
	assert_int_equal(rc, WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "key of 1 bytes"));
	memset(v, 'Z', sizeof v);
	assert_int_equal(wd_put(x, t, "K", 1, v, 10), WD_ECORRUPT);
	assert_int_equal(wd_del(x, t, "K", 1), WD_ECORRUPT);
	expect_val(x, t, "J", 'J', 700);
	expect_val(x, t, "A", 'A', 780);
	expect_val(x, t, "C", 'C', 780);
	expect_val(x, t, "E", 'E', 780);

	/* a new key whose index step and the delete taking its tuple back
	 * both fail: an unindexed tuple */
	db_fault_arm("txn-put-insert-index", 1);
	db_fault_arm("txn-put-insert-undo", 1);
	assert_int_equal(wd_put(x, t, "N", 1, "new", 3), WD_EIO);
	assert_int_equal(wd_get(x, t, "N", 1, v, sizeof v, &(size_t){0}), WD_NOTFOUND);

	/* a del whose heap step and the entry's reinsertion both fail */
	db_fault_arm("txn-del-heap", 1);
	db_fault_arm("txn-del-undo", 1);
	assert_int_equal(wd_del(x, t, "C", 1), WD_EIO);
	assert_int_equal(wd_get(x, t, "C", 1, v, sizeof v, &(size_t){0}), WD_NOTFOUND);
	OK(wd_commit(x));

	/* a clean close leaves the repair to the next open */
	OK(wd_close(db));
	db = dt_open_db(root, 1);
	dt_check_all(db);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	expect_val(x, t, "K", 'k', 1000); /* the moved update, completed */
	expect_val(x, t, "J", 'J', 700);
	expect_val(x, t, "A", 'A', 780);
	expect_val(x, t, "D", 'D', 780);
	expect_val(x, t, "E", 'E', 780);
	assert_int_equal(wd_get(x, t, "C", 1, v, sizeof v, &(size_t){0}), WD_NOTFOUND);
	assert_int_equal(wd_get(x, t, "N", 1, v, sizeof v, &(size_t){0}), WD_NOTFOUND);
	OK(wd_commit(x));
	assert_false(db_needs_repair_flag(db));
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- a table of one database, a transaction of another ----------------- */

static void test_cross_database(void **state)
{
	char *root = tu_tmpdir("api");
	char *da = tu_path(root, "a"), *dbb = tu_path(root, "b");
	wd_db *a = dt_open_db(da, 1), *b = dt_open_db(dbb, 1);
	wd_txn *xa, *xb;
	wd_table *ta;
	char buf[8];
	size_t vlen;
	(void)state;
	OK(wd_begin(a, &xa));
	OK(wd_table_open(xa, "t", WD_CREATE, &ta));
	OK(wd_commit(xa));
	OK(wd_begin(b, &xb));
	assert_int_equal(wd_put(xb, ta, "key", 3, "value", 5), WD_EINVAL);
	assert_non_null(strstr(wd_last_error(), "belongs to database"));
	assert_int_equal(wd_get(xb, ta, "key", 3, buf, sizeof buf, &vlen), WD_EINVAL);
	assert_int_equal(wd_del(xb, ta, "key", 3), WD_EINVAL);
	OK(wd_commit(xb));
	OK(wd_begin(a, &xa));
	assert_int_equal(wd_get(xa, ta, "key", 3, buf, sizeof buf, &vlen), WD_NOTFOUND);
	OK(wd_commit(xa));
	OK(wd_close(a));
	OK(wd_close(b));
	tu_rmrf(root);
	free(da);
	free(dbb);
	free(root);
}

/* ---- the directory lock is not inherited by a forked child -------------- */

static void test_lock_not_inherited(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	int p[2], status;
	char c;
	pid_t pid;
	(void)state;
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* a worker that never touches the database */
		close(p[1]);
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	OK(wd_close(db));
	/* the child still runs: the lock went with the parent's close */
	db = dt_open_db(root, 1);
	busy_dir = root; /* and it is the parent's again */
	assert_int_equal(tu_run_child(busy_child, NULL), 0);
	OK(wd_close(db));
	close(p[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	tu_rmrf(root);
	free(root);
}

/* ---- a new database directory is durable in its parent ------------------ */

static char sync_seen[4200];
static bool sync_parent_seen;

static void sync_trace(void *arg, const char *module, const char *line)
{
	(void)arg;
	(void)module;
	if (strcmp(line, sync_seen) == 0)
		sync_parent_seen = true;
}

static void test_create_syncs_parent(void **state)
{
	char *root = tu_tmpdir("api");
	char *dir = tu_path(root, "db");
	wd_db *db;
	(void)state;
	snprintf(sync_seen, sizeof sync_seen, "fsync directory %s", root);
	sync_parent_seen = false;
	wd_trace_set_callback(sync_trace, NULL);
	OK(wd_trace_enable("storage"));
	db = dt_open_db(dir, 1);
	OK(wd_trace_enable(""));
	wd_trace_set_callback(NULL, NULL);
	assert_true(sync_parent_seen);
	OK(wd_close(db));
	tu_rmrf(root);
	free(dir);
	free(root);
}

/* ---- a failed control file write panics --------------------------------- */

static void test_control_write_panics(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x, *y;
	wd_table *t, *u;
	char buf[8];
	size_t vlen;
	int rc = 0;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	OK(wd_put(x, t, "k", 1, "v", 1));
	OK(wd_commit(x));
	/* a table create reserves ids in the control file: its fsync fails */
	OK(wd_begin(db, &x));
	OK(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, "control"));
	assert_int_equal(wd_table_open(x, "u", WD_CREATE, &u), WD_EPANIC);
	storage_fault_clear();
	/* never retried: every later call is WD_EPANIC */
	assert_int_equal(wd_put(x, t, "k2", 2, "v", 1), WD_EPANIC);
	assert_int_equal(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen), WD_EPANIC);
	assert_int_equal(wd_table_open(x, "u", WD_CREATE, &u), WD_EPANIC);
	assert_int_equal(wd_begin(db, &y), WD_EPANIC);
	assert_int_equal(wd_commit(x), WD_EPANIC);
	assert_int_equal(wd_close(db), WD_EPANIC);
	/* the next open recovers */
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen));
	assert_int_equal(wd_table_open(x, "u", 0, &u), WD_NOTFOUND);
	OK(wd_commit(x));
	/* the next batch of transaction ids: the same */
	OK(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, "control"));
	for (unsigned i = 0; i < 5000 && (rc = wd_begin(db, &x)) == 0; i++)
		OK(wd_commit(x));
	storage_fault_clear();
	assert_int_equal(rc, WD_EPANIC);
	assert_int_equal(wd_begin(db, &x), WD_EPANIC);
	assert_int_equal(wd_close(db), WD_EPANIC);
	db = dt_open_db(root, 1);
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/*
 * A failed fdatasync of a relation file (a checkpoint's step 5) or of base/
 * (a table's creation) panics the database like one of the log or the
 * control file: nothing is acknowledged after it (DESIGN.md section 3). A
 * database that went on would acknowledge commits over pages the kernel may
 * have dropped. The next open recovers every acknowledged commit.
 */
static void test_data_fsync_failure_panics(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x;
	wd_table *t, *u;
	char buf[8];
	size_t vlen;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	OK(wd_put(x, t, "k", 1, "v", 1));
	OK(wd_commit(x));
	/* the checkpoint writes t's pages, then its fdatasync of them fails */
	OK(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, "/base/"));
	assert_int_not_equal(wd_checkpoint(db), 0);
	storage_fault_clear();
	assert_int_equal(wd_begin(db, &x), WD_EPANIC);
	assert_int_equal(wd_checkpoint(db), WD_EPANIC);
	assert_int_equal(wd_close(db), WD_EPANIC);
	/* the next open recovers; then base/'s fsync fails in a create */
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen));
	OK(storage_fault_add(ST_OP_SYNC_DIR, ST_FAULT_EIO, 1, 1, "/base"));
	assert_int_not_equal(wd_table_open(x, "u", WD_CREATE, &u), 0);
	storage_fault_clear();
	assert_int_equal(wd_put(x, t, "k2", 2, "v", 1), WD_EPANIC);
	assert_int_equal(wd_commit(x), WD_EPANIC);
	assert_int_equal(wd_begin(db, &x), WD_EPANIC);
	assert_int_equal(wd_close(db), WD_EPANIC);
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen));
	assert_int_equal(wd_get(x, t, "k2", 2, buf, sizeof buf, &vlen), WD_NOTFOUND);
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/*
 * A checkpoint that cannot write control.tmp for want of space fails with
 * WD_ENOSPC and the database goes on: the old control file is in force and
 * nothing was synced (before: the database panicked). A failed fsync of
 * control.tmp still panics (test_control_write_panics).
 */
static void test_control_enospc_goes_on(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x;
	wd_table *t;
	char buf[8];
	size_t vlen;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	OK(wd_put(x, t, "k", 1, "v", 1));
	OK(wd_commit(x));
	OK(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, "control.tmp"));
	assert_int_equal(wd_checkpoint(db), WD_ENOSPC);
	storage_fault_clear();
	OK(wd_begin(db, &x));
	OK(wd_put(x, t, "k2", 2, "v", 1));
	OK(wd_commit(x));
	OK(wd_checkpoint(db));
	OK(wd_close(db));
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "k2", 2, buf, sizeof buf, &vlen));
	OK(wd_commit(x));
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* The disk that fills up under a rollback frees space once the rollback
 * has hit it (the application's part: it makes room). */
struct space_freer {
	atomic_bool done;
	uint64_t fired0; /* storage_fault_fired() before the fault was added */
};

static void *free_space_later(void *arg)
{
	struct space_freer *f = arg;
	struct timespec ms = {0, 1000000L};
	while (!atomic_load(&f->done) && storage_fault_fired() == f->fired0)
		nanosleep(&ms, NULL);
	for (int i = 0; i < 20 && !atomic_load(&f->done); i++)
		nanosleep(&ms, NULL); /* let the rollback meet the full disk */
	storage_fault_clear();
	return NULL;
}

/*
 * An abort on a full disk (every write and allocation ENOSPC) waits for
 * space instead of failing and panicking the database (DESIGN.md section
 * 6: usable again once space returns): its rollback must write dirty pages
 * out to read the ones it undoes, and log CLRs. Once space returns the
 * rollback finishes, the rows are gone, and the database takes commits.
 */
static void test_abort_waits_for_space(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	struct space_freer fr = {0};
	pthread_t th;
	wd_txn *x;
	wd_table *t;
	char k[16], v[900], buf[900];
	size_t vlen;
	uint64_t fired;
	(void)state;
	memset(v, 'v', sizeof v);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	OK(wd_commit(x));
	/* more rows than the pool holds (512 pages): evicted pages to undo */
	OK(wd_begin(db, &x));
	for (unsigned i = 0; i < 3000; i++) {
		int kl = snprintf(k, sizeof k, "k%05u", i);
		OK(wd_put(x, t, k, (size_t)kl, v, sizeof v));
	}
	fired = fr.fired0 = storage_fault_fired();
	OK(storage_fault_add(ST_OP_ANY, ST_FAULT_ENOSPC, 1, 0, NULL));
	assert_int_equal(pthread_create(&th, NULL, free_space_later, &fr), 0);
	OK(wd_abort(x));
	atomic_store(&fr.done, true);
	pthread_join(th, NULL);
	storage_fault_clear();
	assert_true(storage_fault_fired() > fired); /* the rollback met the full disk */
	OK(wd_begin(db, &x));
	assert_int_equal(wd_get(x, t, "k00000", 6, buf, sizeof buf, &vlen), WD_NOTFOUND);
	assert_int_equal(wd_get(x, t, "k02999", 6, buf, sizeof buf, &vlen), WD_NOTFOUND);
	OK(wd_put(x, t, "after", 5, v, 10));
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "after", 5, buf, sizeof buf, &vlen));
	assert_int_equal(wd_get(x, t, "k01000", 6, buf, sizeof buf, &vlen), WD_NOTFOUND);
	OK(wd_commit(x));
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/*
 * A commit whose COMMIT record cannot go in is rolled back; when the ABORT
 * record after that rollback cannot go in either, the rollback stands and
 * the database goes on (it once panicked here, unlike wd_abort in the same
 * place). The same for wd_abort. In a child, killed afterwards: the next
 * open finds both transactions undone (a loser whose last CLR says nothing
 * is left) and the commits around them kept.
 */
static void abort_record_child(void *arg)
{
	wd_db *db = NULL;
	wd_txn *x;
	wd_table *t;
	int rc = 0;
	if (wd_open(arg, NULL, &db) || wd_begin(db, &x) ||
	    wd_table_open(x, "t", WD_CREATE, &t) || wd_put(x, t, "before", 6, "b", 1) ||
	    wd_commit(x))
		_exit(1);
	/* the commit's record fails, then the ABORT after its rollback */
	db_fault_arm("txn-commit-record", 1);
	db_fault_arm("txn-abort-record", 1);
	if (wd_begin(db, &x) || wd_put(x, t, "lost-commit", 11, "c", 1) ||
	    wd_put(x, t, "before", 6, "changed", 7))
		_exit(2);
	if (wd_commit(x) != WD_EIO || !strstr(wd_last_error(), "rolled back"))
		_exit(3);
	/* wd_abort whose ABORT record fails */
	db_fault_arm("txn-abort-record", 1);
	if (wd_begin(db, &x) || wd_put(x, t, "lost-abort", 10, "a", 1) || wd_abort(x) != WD_EIO)
		_exit(4);
	/* the database goes on: not panicked, the rolled-back rows gone */
	rc |= wd_begin(db, &x);
	rc |= wd_get(x, t, "lost-commit", 11, NULL, 0, &(size_t){0}) != WD_NOTFOUND;
	rc |= wd_get(x, t, "lost-abort", 10, NULL, 0, &(size_t){0}) != WD_NOTFOUND;
	rc |= wd_put(x, t, "after", 5, "a", 1);
	rc |= wd_commit(x);
	if (rc)
		_exit(5);
	_exit(0); /* killed: no close */
}

static void test_abort_record_fails(void **state)
{
	char *root = tu_tmpdir("api-abortrec");
	char *dir = tu_path(root, "db");
	char v[16];
	size_t vlen;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	(void)state;
	assert_int_equal(tu_run_child(abort_record_child, dir), 0);
	db = dt_open_db(dir, 0);
	dt_check_all(db);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "before", 6, v, sizeof v, &vlen));
	assert_memory_equal(v, "b", 1);
	assert_int_equal(vlen, 1);
	OK(wd_get(x, t, "after", 5, v, sizeof v, &vlen));
	assert_int_equal(wd_get(x, t, "lost-commit", 11, v, sizeof v, &vlen), WD_NOTFOUND);
	assert_int_equal(wd_get(x, t, "lost-abort", 10, v, sizeof v, &vlen), WD_NOTFOUND);
	OK(wd_commit(x));
	OK(wd_close(db));
	tu_rmrf(root);
	free(dir);
	free(root);
}

/*
 * A table create on a full disk (from each write or allocation it makes in
 * turn; space freed once the create has met it) either fails with
 * WD_ENOSPC, leaving nothing that stops a second create of the same name,
 * or waits for space and succeeds: its catalog entry is durable when it
 * returns. Before, a create whose catalog commit was in the log but not
 * flushed returned WD_ENOSPC after removing the files the catalog named.
 */
static void test_create_enospc_then_again(void **state)
{
	(void)state;
	/* n = 0: only the log's writes fail, so the catalog entry's commit
	 * record goes in and its flush fails; then each write in turn */
	for (uint64_t n = 0; n <= 40; n++) {
		char *root = tu_tmpdir("api");
		wd_db *db = dt_open_db(root, 1);
		struct space_freer fr = {0};
		pthread_t th;
		wd_txn *x;
		wd_table *t;
		char buf[8];
		size_t vlen;
		int rc;
		OK(wd_begin(db, &x));
		fr.fired0 = storage_fault_fired();
		if (n == 0)
			OK(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, "/wal/"));
		else
			OK(storage_fault_add(ST_OP_ANY, ST_FAULT_ENOSPC, n, 0, NULL));
		assert_int_equal(pthread_create(&th, NULL, free_space_later, &fr), 0);
		rc = wd_table_open(x, "t", WD_CREATE, &t);
		atomic_store(&fr.done, true);
		pthread_join(th, NULL);
		storage_fault_clear();
		if (rc != 0) {
			if (rc != WD_ENOSPC)
				fail_msg("write %llu: create: %s (%s)", (unsigned long long)n,
					 wd_strerror(rc), wd_last_error());
			rc = wd_table_open(x, "t", WD_CREATE, &t);
			if (rc != 0)
				fail_msg("write %llu: create once space returned: %s (%s)",
					 (unsigned long long)n, wd_strerror(rc), wd_last_error());
		}
		OK(wd_put(x, t, "k", 1, "v", 1));
		OK(wd_commit(x));
		OK(wd_close(db));
		db = dt_open_db(root, 1);
		OK(wd_begin(db, &x));
		OK(wd_table_open(x, "t", 0, &t));
		OK(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen));
		OK(wd_commit(x));
		dt_check_all(db);
		OK(wd_close(db));
		tu_rmrf(root);
		free(root);
	}
}

/* ---- drops: leftovers, and handles in use ------------------------------- */

static void touch(const char *dir, wd_relid rel)
{
	char path[4096];
	FILE *f;
	snprintf(path, sizeof path, "%s/base/%u", dir, rel);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
}

static void test_drop_leftovers(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x;
	wd_table *t;
	db_table_info ti;
	char sub[64];
	int rc;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "a", WD_CREATE, &t));
	OK(wd_put(x, t, "k", 1, "v", 1));
	ti = *db_table_info_of(t);
	OK(wd_commit(x));
	OK(bufmgr_flush_rel(db_pool(db), ti.heap_rel)); /* written, not synced */
	/* closing the heap's relation fails (its fsync): the files go anyway */
	snprintf(sub, sizeof sub, "base/%u", ti.heap_rel);
	OK(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, sub));
	OK(wd_begin(db, &x));
	rc = wd_table_drop(x, "a");
	storage_fault_clear();
	assert_int_equal(rc, WD_EIO);
	assert_non_null(strstr(wd_last_error(), "dropped, but"));
	assert_false(rel_file_exists(root, ti.heap_rel));
	assert_false(rel_file_exists(root, ti.fsm_rel));
	assert_false(rel_file_exists(root, ti.index_rel));
	assert_int_equal(wd_table_open(x, "a", 0, &t), WD_NOTFOUND);
	OK(wd_commit(x));
	/* the pool keeps the relation whose fsync failed and refuses to
	 * sync it again (never retried): the close leaves it to the next
	 * open's recovery */
	assert_int_equal(wd_close(db), WD_EPANIC);
	db = dt_open_db(root, 1);
	dt_check_all(db);
	OK(wd_close(db));
	/* a leftover of an id handed out goes at a clean open; a file with
	 * an id never handed out is not walden's and stays */
	touch(root, ti.fsm_rel);
	touch(root, 999);
	db = dt_open_db(root, 1);
	assert_false(rel_file_exists(root, ti.fsm_rel));
	assert_true(rel_file_exists(root, 999));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

static void test_drop_busy(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x1, *x2, *x3, *x4;
	wd_table *t, *t2, *u;
	char buf[8];
	size_t vlen;
	(void)state;
	OK(wd_begin(db, &x1));
	OK(wd_table_open(x1, "t", WD_CREATE, &t));
	OK(wd_put(x1, t, "k", 1, "v", 1));
	OK(wd_commit(x1));
	OK(wd_begin(db, &x2));
	OK(wd_table_open(x2, "t", 0, &t2)); /* x2 holds t */
	OK(wd_begin(db, &x3));
	assert_int_equal(wd_table_drop(x3, "t"), WD_EBUSY);
	assert_non_null(strstr(wd_last_error(), "in use by 1 other"));
	OK(wd_begin(db, &x4));
	OK(wd_get(x4, t, "k", 1, buf, sizeof buf, &vlen)); /* x4 holds t by using it */
	OK(wd_commit(x2));
	assert_int_equal(wd_table_drop(x3, "t"), WD_EBUSY);
	OK(wd_get(x4, t, "k", 1, buf, sizeof buf, &vlen)); /* still valid */
	OK(wd_commit(x4));
	OK(wd_table_drop(x3, "t"));
	/* the transaction holding a table may drop it itself */
	OK(wd_table_open(x3, "u", WD_CREATE, &u));
	OK(wd_put(x3, u, "k", 1, "v", 1));
	OK(wd_table_drop(x3, "u"));
	OK(wd_commit(x3));
	assert_int_equal(count_tables(db), 0);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- power loss: acknowledged commits survive --------------------------- */

static const char *pl_jdir;

/* As cr_child_main, with the power-loss simulator on, the database's
 * synchronous_commit off and each transaction's on
 * (wd_txn_set_synchronous). */
static void pl_child_main(void *arg)
{
	struct cr_child *c = arg;
	wd_options o;
	wd_db *db;
	int rc;
	dt_opts(&o, 0);
	o.buffer_pool_bytes = 48u * PS; /* evictions: page writes left unsynced */
	if ((rc = storage_sim_start(pl_jdir)) != 0 || (rc = wd_open(c->dir, &o, &db)) != 0)
		goto fail;
	storage_crash_arm_io(storage_io_count() + c->crash_after);
	if ((rc = cr_run_txns(c, db, true)) != 0)
		goto fail;
	_exit(wd_close(db) == 0 ? 0 : 3);
fail:
	fprintf(stderr, "power-loss child: %s (%s)\n", wd_strerror(rc), wd_last_error());
	_exit(4);
}

static void test_power_loss_acknowledged(void **state)
{
	char *root = tu_tmpdir("api-power");
	char *dir = tu_path(root, "db"), *jdir = tu_path(root, "journal");
	uint64_t seed = tu_seed(7), acked = 0, rounds = SANITIZED ? 6 : 12, s = tu_seed(5),
		 dropped = 0;
	(void)state;
	pl_jdir = jdir;
	assert_int_equal(mkdir(jdir, 0755), 0);
	for (uint64_t round = 0; round < rounds; round++) {
		st_sim_opts so = {.mode = round % 2 ? ST_SIM_DROP_ALL : ST_SIM_TORN,
				  .seed = tu_seed(1000 + round)};
		st_sim_report rep;
		struct cr_child c = {.dir = dir, .seed = seed, .first_txn = acked + 1,
				     .crash_after = 200 + tu_rand(&s) % 1500};
		(void)cr_run_child(pl_child_main, &c, &acked, round);
		OK(storage_sim_materialize(jdir, &so, &rep));
		dropped += rep.data_dropped + rep.data_torn;
		storage_sim_report_free(&rep);
		cr_verify(dir, seed, acked);
	}
	print_message("power loss: %llu rounds, %llu transactions acknowledged, %llu "
		      "unsynced writes lost or torn\n", (unsigned long long)rounds,
		      (unsigned long long)acked, (unsigned long long)dropped);
	assert_true(acked > 0);
	assert_true(dropped > 0);
	tu_rmrf(root);
	free(dir);
	free(jdir);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_reopen),
		cmocka_unit_test(test_huge_pages_option),
		cmocka_unit_test(test_busy_same_process),
		cmocka_unit_test(test_busy_other_process),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_put_get_del),
		cmocka_unit_test(test_fsm_written_at_close),
		cmocka_unit_test(test_cursor_basic),
		cmocka_unit_test(test_random_vs_lmdb),
		cmocka_unit_test(test_repair_at_open),
		cmocka_unit_test(test_orphans_after_crash),
		cmocka_unit_test(test_crash_acknowledged),
		cmocka_unit_test(test_repair_torn_during_open),
		cmocka_unit_test(test_half_done_changes),
		cmocka_unit_test(test_cross_database),
		cmocka_unit_test(test_lock_not_inherited),
		cmocka_unit_test(test_create_syncs_parent),
		cmocka_unit_test(test_control_write_panics),
		cmocka_unit_test(test_data_fsync_failure_panics),
		cmocka_unit_test(test_abort_waits_for_space),
		cmocka_unit_test(test_abort_record_fails),
		cmocka_unit_test(test_control_enospc_goes_on),
		cmocka_unit_test(test_create_enospc_then_again),
		cmocka_unit_test(test_drop_leftovers),
		cmocka_unit_test(test_drop_busy),
		cmocka_unit_test(test_power_loss_acknowledged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
