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
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
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

#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
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

/* The factor WALDEN_TEST_SCALE gives the long runs. */
static double test_scale(void)
{
	const char *s = getenv("WALDEN_TEST_SCALE");
	if (s && *s)
		return atof(s);
	return SANITIZED ? 0.2 : 1.0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Options for tests: small pages, segments and pool (so pages are evicted
 * and read back all the time), asynchronous commit unless asked. */
static void test_opts(wd_options *o, int sync)
{
	wd_options_default(o);
	o->page_size = PS;
	o->buffer_pool_bytes = 512u * PS;
	o->wal_segment_size = 4u << 20;
	o->wal_buffers_bytes = 4u << 20;
	o->wal_init_zero = 0;
	o->synchronous_commit = sync;
}

#define OK(expr)                                                              \
	do {                                                                  \
		int rc_ = (expr);                                             \
		if (rc_ != 0)                                                 \
			fail_msg("%s: %s (%s)", #expr, wd_strerror(rc_),      \
				 wd_last_error());                            \
	} while (0)

static wd_db *open_db(const char *dir, int sync)
{
	wd_options o;
	wd_db *db = NULL;
	test_opts(&o, sync);
	OK(wd_open(dir, &o, &db));
	return db;
}

/* db_catalog_list callback: checks one table. */
static int check_one(void *arg, const db_table_info *ti)
{
	wd_db *db = arg;
	wd_txn *x;
	wd_table *t;
	db_check_report r;
	int rc;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, ti->name, 0, &t));
	rc = db_table_check(t, &r);
	if (rc != 0)
		fail_msg("table %s: %s", ti->name, wd_last_error());
	OK(wd_commit(x));
	return 0;
}

/* Every table of db passes db_table_check. */
static void check_all(wd_db *db)
{
	db_check_report r;
	if (db_catalog_check(db, &r) != 0)
		fail_msg("catalog: %s", wd_last_error());
	OK(db_catalog_list(db, check_one, db));
}

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

	db = open_db(dir, 1); /* creates dir */
	assert_int_equal(db_page_size(db), PS);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	OK(wd_put(x, t, "hello", 5, "world", 5));
	OK(wd_commit(x));
	OK(wd_close(db));

	/* the page size comes from the control file, not the options */
	test_opts(&o, 1);
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
	assert_int_equal(wd_abort(x), WD_ENOTSUP);
	OK(wd_close(db));

	/* bad options */
	test_opts(&o, 1);
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
	db = open_db(root, 1);
	assert_int_equal(wd_open(root, NULL, &db2), WD_EBUSY);
	assert_null(db2);
	assert_non_null(strstr(wd_last_error(), "already open in this process"));
	OK(wd_close(db));
	/* and free again once closed */
	db = open_db(root, 1);
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
	db = open_db(root, 1);
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
	wd_db *db = open_db(root, 1);
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
	check_all(db);
	OK(wd_close(db));

	/* after reopen: the same tables */
	db = open_db(root, 1);
	assert_int_equal(count_tables(db), 3);
	check_all(db);
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
	test_opts(&o, 1);
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
	check_all(db);
	OK(wd_close(db));
	free(big);
	free(out);
	tu_rmrf(root);
	free(root);
}

static void test_cursor_basic(void **state)
{
	char *root = tu_tmpdir("api");
	wd_db *db = open_db(root, 0);
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
	check_all(r->db);
	OK(wd_close(r->db));
	r->db = open_db(r->dir, 0);
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
	r.db = open_db(dir, 0);
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
	check_all(r.db);
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
	uint64_t per_seed = (uint64_t)(150000 * test_scale()), total = 0;
	double t0 = now_s();
	(void)state;
	if (per_seed < 2000)
		per_seed = 2000;
	for (uint64_t seed = 1; seed <= 7; seed++)
		run_seed(seed, per_seed, &total);
	print_message("random vs LMDB: %llu operations in %.1f s (%.0f ops/s)\n",
		      (unsigned long long)total, now_s() - t0, total / (now_s() - t0));
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

static void test_repair_at_open(void **state)
{
	char *root = tu_tmpdir("api");
	static const char *want[] = {"old", NULL, NULL, "new", "old"};
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	char buf[8];
	size_t vlen;
	(void)state;
	repair_dir = root;
	assert_int_equal(tu_run_child(repair_child, NULL), 0);
	db = open_db(root, 1);
	check_all(db);
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
	wd_table *t;
	(void)arg;
	if (wd_open(repair_dir, NULL, &db) || wd_begin(db, &x) ||
	    wd_table_open(x, "keep", WD_CREATE, &t) || wd_put(x, t, "k", 1, "v", 1) ||
	    wd_table_open(x, "gone", WD_CREATE, &t) || wd_put(x, t, "k", 1, "v", 1) ||
	    wd_commit(x) || wd_begin(db, &x))
		_exit(1);
	storage_crash_arm(orphan_point, 1);
	if (strcmp(orphan_point, "txn-drop-before-unlink") == 0)
		(void)wd_table_drop(x, "gone");
	else if (strcmp(orphan_point, "txn-commit-after-wal-insert") == 0) {
		/* a whole drop, then a crash: replay meets records of
		 * relations whose files are gone */
		if (wd_table_drop(x, "gone") == 0)
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
		db = open_db(root, 1);
		OK(wd_begin(db, &x));
		OK(wd_table_open(x, "keep", 0, &t));
		/* the drop was durable before its files went; the create's
		 * entry never was */
		assert_int_equal(wd_table_open(x, i == 1 ? "new" : "gone", 0, &t), WD_NOTFOUND);
		OK(wd_commit(x));
		check_all(db);
		d = opendir(base);
		while ((de = readdir(d)) != NULL)
			nfiles += de->d_name[0] != '.';
		closedir(d);
		/* catalog heap and index, then 3 per remaining table */
		assert_int_equal(nfiles, 2 + 3 * (i == 1 ? 2 : 1));
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

static void cr_child_main(void *arg)
{
	struct cr_child *c = arg;
	struct cr_op ops[8];
	uint8_t *v = malloc(3 * PS);
	char k[64];
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	int rc;
	test_opts(&o, 1);
	if (c->crash_in_open)
		storage_crash_arm_io(storage_io_count() + c->crash_after);
	if ((rc = wd_open(c->dir, &o, &db)) != 0)
		goto fail;
	if (c->point)
		storage_crash_arm(c->point, c->crash_after);
	else if (!c->crash_in_open)
		storage_crash_arm_io(storage_io_count() + c->crash_after);
	for (uint64_t n = c->first_txn; n < c->first_txn + CR_TXNS; n++) {
		unsigned nops = cr_txn(c->seed, n, ops);
		if ((rc = wd_begin(db, &x)) != 0 ||
		    (rc = wd_table_open(x, "crash", WD_CREATE, &t)) != 0)
			goto fail;
		for (unsigned i = 0; i < nops; i++) {
			size_t kl = cr_key(ops[i].key, k);
			fill(v, ops[i].vlen, ops[i].vseed);
			rc = ops[i].del ? wd_del(x, t, k, kl)
					: wd_put(x, t, k, kl, v, ops[i].vlen);
			if (rc != 0 && rc != WD_NOTFOUND)
				goto fail;
		}
		if ((rc = wd_commit(x)) != 0)
			goto fail;
		if (write(c->fd, &n, sizeof n) != (ssize_t)sizeof n)
			_exit(2);
	}
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

/* After a crash: every key holds its value after the acknowledged
 * transactions [1, acked], or - keys of the one in flight - after it. */
static void cr_verify(const char *dir, uint64_t seed, uint64_t acked)
{
	struct cr_val *m = calloc(CR_KEYS, sizeof *m), *m2 = calloc(CR_KEYS, sizeof *m2);
	uint8_t *got = malloc(3 * PS), *scratch = malloc(3 * PS);
	char k[64];
	wd_db *db = open_db(dir, 1); /* replays */
	wd_txn *x;
	wd_table *t;
	for (uint64_t n = 1; n <= acked; n++)
		cr_apply(seed, n, m);
	memcpy(m2, m, CR_KEYS * sizeof *m);
	cr_apply(seed, acked + 1, m2);
	check_all(db);
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
	uint64_t seed = 42, acked = 0, rounds = SANITIZED ? 12 : 24, s = 99, crashes = 0;
	(void)state;
	for (uint64_t round = 0; round < rounds; round++) {
		int p[2], status;
		uint64_t n;
		bool in_open = round % 4 == 3;
		struct cr_child c = {.dir = dir, .seed = seed, .first_txn = acked + 1,
				     .crash_after = 1 + tu_rand(&s) % (in_open ? 200 : 1000),
				     .crash_in_open = in_open};
		if (round % 4 == 1) { /* a named point, at one of its first hits */
			c.point = cr_points[tu_rand(&s) % (sizeof cr_points / sizeof cr_points[0])];
			c.crash_after = 1 + tu_rand(&s) % 100;
		}
		pid_t pid;
		assert_int_equal(pipe(p), 0);
		c.fd = p[1];
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			cr_child_main(&c);
		}
		close(p[1]);
		while (read(p[0], &n, sizeof n) == (ssize_t)sizeof n)
			acked = n;
		close(p[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != ST_CRASH_EXIT_CODE)
			fail_msg("round %llu: child exited with %d", (unsigned long long)round,
				 WEXITSTATUS(status));
		crashes += WEXITSTATUS(status) == ST_CRASH_EXIT_CODE;
		if (getenv("CR_DEBUG")) print_message("round %llu: exit %d acked %llu after %llu %s\n", (unsigned long long)round, WEXITSTATUS(status), (unsigned long long)acked, (unsigned long long)c.crash_after, c.point ? c.point : "I/O");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_reopen),
		cmocka_unit_test(test_busy_same_process),
		cmocka_unit_test(test_busy_other_process),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_put_get_del),
		cmocka_unit_test(test_cursor_basic),
		cmocka_unit_test(test_random_vs_lmdb),
		cmocka_unit_test(test_repair_at_open),
		cmocka_unit_test(test_orphans_after_crash),
		cmocka_unit_test(test_crash_acknowledged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
