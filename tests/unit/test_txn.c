/*
 * test_txn.c - transactions through the public API (txn/README.md I10-I13,
 * P12-P16): wd_abort puts back exactly what was there, for every kind of
 * change (inserts, overwrites that keep, grow or shrink a tuple, deletes,
 * values on overflow pages up to a few MiB, splits, emptied leaves);
 * savepoints and wd_rollback_to over long random transactions; the
 * rollback of a transaction of a million changes; the rules of handles
 * (WD_ESTATE, WD_EACCES, WD_EBUSY, wd_close with open transactions), lock
 * timeouts, deadlock victims and table create/drop outside the caller's
 * rollback; crashes (a killed process, the undo crash points, a crash
 * inside the open's own rollback of the losers, simulated power loss);
 * and what waldump shows of an abort. State is always compared with LMDB
 * holding what the table must hold, and every table passes db_table_check.
 *
 * Scale: WALDEN_TEST_SCALE (a factor, default 1; 0.2 under ASan) sets the
 * size of the long runs; the million-change transaction is 100,000 changes
 * under ASan unless WALDEN_TEST_SCALE is set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
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

/* ---- 1. an abort restores exactly --------------------------------------- */

/* A change applied to walden (in x) and to the oracle (in mt) alike. */
struct ab {
	wd_txn *x;
	wd_table *t;
	MDB_txn *mt;
	MDB_dbi dbi;
	uint8_t *v, *g; /* value and read buffers, AB_VMAX bytes */
	uint64_t s;
	uint64_t changes;
};

#define AB_VMAX (4u << 20)

/* Key i: its decimal digits (so keys order as i does), then letters up to
 * pad bytes. */
static size_t ab_key(unsigned i, size_t pad, uint8_t *k)
{
	size_t n = (size_t)snprintf((char *)k, 16, "%08u", i);
	for (; n < pad; n++)
		k[n] = (uint8_t)('a' + (i + n) % 26);
	return n;
}

static void ab_put(struct ab *a, unsigned i, size_t pad, size_t vlen, uint64_t vseed)
{
	uint8_t k[256];
	MDB_val mk = {ab_key(i, pad, k), k}, mv = {vlen, a->v};
	ot_fill(a->v, vlen, vseed);
	OK(wd_put(a->x, a->t, k, mk.mv_size, a->v, vlen));
	MDBOK(mdb_put(a->mt, a->dbi, &mk, &mv, 0));
	a->changes++;
}

static void ab_del(struct ab *a, unsigned i, size_t pad)
{
	uint8_t k[256];
	MDB_val mk = {ab_key(i, pad, k), k};
	int m = mdb_del(a->mt, a->dbi, &mk, NULL);
	int rc = wd_del(a->x, a->t, k, mk.mv_size);
	if (rc != (m == MDB_NOTFOUND ? WD_NOTFOUND : 0))
		fail_msg("del of key %u: %d (%s), the oracle %d", i, rc, wd_last_error(), m);
	a->changes += m == 0;
}

static void ab_get(struct ab *a, unsigned i, size_t pad)
{
	uint8_t k[256];
	MDB_val mk = {ab_key(i, pad, k), k}, mv;
	size_t vlen;
	int m = mdb_get(a->mt, a->dbi, &mk, &mv);
	int rc = wd_get(a->x, a->t, k, mk.mv_size, a->g, AB_VMAX, &vlen);
	if (m == MDB_NOTFOUND) {
		EXPECT(rc, WD_NOTFOUND);
		return;
	}
	OK(rc);
	assert_int_equal(vlen, mv.mv_size);
	assert_memory_equal(a->g, mv.mv_data, vlen);
}

/* Value lengths of the mixed runs: mostly small, some over a page. */
static size_t mixed_len(uint64_t *s)
{
	uint64_t r = tu_rand(s) % 100;
	if (r < 60)
		return tu_rand(s) % 120;
	if (r < 85)
		return 120 + tu_rand(s) % 900;
	if (r < 95)
		return 1000 + tu_rand(s) % PS;
	return PS + tu_rand(s) % (2 * PS);
}

static void base_1000_small(struct ab *a)
{
	for (unsigned i = 0; i < 2000; i += 2)
		ab_put(a, i, 12, 10 + i % 200, i);
}

static void chg_insert(struct ab *a)
{
	for (unsigned i = 1; i < 2000; i += 2)
		ab_put(a, i, 12, 10 + tu_rand(&a->s) % 300, tu_rand(&a->s));
	for (unsigned i = 2000; i < 2600; i++)
		ab_put(a, i, 12, tu_rand(&a->s) % 200, tu_rand(&a->s));
}

static void base_same(struct ab *a)
{
	for (unsigned i = 0; i < 1000; i++)
		ab_put(a, i, 20, 100, i);
}

static void chg_same(struct ab *a)
{
	for (unsigned i = 0; i < 1000; i++)
		ab_put(a, i, 20, 100, i + 1000000);
}

static void base_small_vals(struct ab *a)
{
	for (unsigned i = 0; i < 1000; i++)
		ab_put(a, i, 16, 40, i);
}

/* every tuple grows from 40 to 1200 bytes: they move off their pages */
static void chg_bigger(struct ab *a)
{
	for (unsigned i = 0; i < 1000; i++)
		ab_put(a, i, 16, 1200, i + 7);
}

static void base_big_vals(struct ab *a)
{
	for (unsigned i = 0; i < 600; i++)
		ab_put(a, i, 16, 1800, i);
}

static void chg_smaller(struct ab *a)
{
	for (unsigned i = 0; i < 600; i++)
		ab_put(a, i, 16, i % 10 == 0 ? 0 : 12, i + 3);
}

static void base_3000(struct ab *a)
{
	for (unsigned i = 0; i < 3000; i++)
		ab_put(a, i, 24, 30 + i % 150, i);
}

static void chg_delete(struct ab *a)
{
	for (unsigned i = 0; i < 3000; i += 3)
		ab_del(a, i, 24);
	for (unsigned i = 1000; i < 1800; i++) /* a run: whole leaves emptied */
		ab_del(a, i, 24);
}

/* Values over a page, up to 3 MiB, replaced by small ones and back. */
static const size_t big_sizes[] = {PS + 1,  3 * PS,  100000, 1u << 20, 3u << 20, 10,
				   500,     0,       2 * PS + 7, 64,   (1u << 20) + 4096};

static void base_overflow(struct ab *a)
{
	for (unsigned i = 0; i < sizeof big_sizes / sizeof big_sizes[0]; i++)
		ab_put(a, i, 8, big_sizes[i], i);
	for (unsigned i = 20; i < 200; i++)
		ab_put(a, i, 8, 50, i);
}

static void chg_overflow(struct ab *a)
{
	ab_put(a, 0, 8, 5, 100);             /* a page + 1 -> 5 bytes */
	ab_put(a, 5, 8, 2u << 20, 101);      /* 10 bytes -> 2 MiB */
	ab_put(a, 3, 8, (1u << 20) + 3, 102);/* 1 MiB -> another 1 MiB */
	ab_del(a, 4, 8);                     /* 3 MiB: deleted */
	ab_put(a, 100, 8, 1536u << 10, 103); /* a new 1.5 MiB */
	ab_put(a, 1, 8, 3 * PS, 104);        /* three pages, other bytes */
	ab_put(a, 2, 8, 0, 105);             /* 100 KB -> empty ... */
	ab_put(a, 2, 8, 200000, 106);        /* ... -> 200 KB, one key twice */
	ab_put(a, 7, 8, 3 * PS + 5, 107);    /* empty -> overflow */
	ab_del(a, 10, 8);
	ab_put(a, 10, 8, 90000, 108);        /* deleted, then inserted again */
	for (unsigned i = 20; i < 200; i += 7)
		ab_put(a, i, 8, PS + i, 109 + i); /* inline -> overflow */
}

static void base_few_long_keys(struct ab *a)
{
	for (unsigned i = 0; i < 7000; i += 175)
		ab_put(a, i, 120, 60, i);
}

/* 6000 keys of 120 bytes: about 30 to a leaf, so hundreds of leaf splits
 * and internal splits under them (the check asks for 3 levels). */
static void chg_splits(struct ab *a)
{
	for (unsigned i = 0; i < 7000; i++)
		if (i % 175 != 0)
			ab_put(a, i, 120, 20 + tu_rand(&a->s) % 180, tu_rand(&a->s));
	for (unsigned i = 0; i < 7000; i += 50) /* and some of the old ones */
		ab_put(a, i, 120, 500, i + 9);
}

static void base_leaves(struct ab *a)
{
	for (unsigned i = 0; i < 3000; i++)
		ab_put(a, i, 40, 20 + i % 300, i);
}

/* every key deleted in order (every leaf and heap page emptied), then a
 * few new ones */
static void chg_empty_leaves(struct ab *a)
{
	for (unsigned i = 0; i < 3000; i++)
		ab_del(a, i, 40);
	for (unsigned i = 5000; i < 5200; i++)
		ab_put(a, i, 40, 100, i);
	for (unsigned i = 0; i < 3000; i += 500) /* and some again */
		ab_put(a, i, 40, 33, i + 1);
}

static void base_mixed(struct ab *a)
{
	for (unsigned i = 0; i < 2000; i++)
		if (tu_rand(&a->s) % 4 != 0)
			ab_put(a, i, 4 + i % 60, mixed_len(&a->s), tu_rand(&a->s));
}

/* 5000 random puts, deletes and reads over 2000 keys: each key changed
 * many times in one transaction (its undo records must go newest first) */
static void chg_mixed(struct ab *a)
{
	for (unsigned n = 0; n < 5000; n++) {
		unsigned i = (unsigned)(tu_rand(&a->s) % 2000), r = tu_rand(&a->s) % 10;
		if (r < 5)
			ab_put(a, i, 4 + i % 60, mixed_len(&a->s), tu_rand(&a->s));
		else if (r < 8)
			ab_del(a, i, 4 + i % 60);
		else
			ab_get(a, i, 4 + i % 60);
	}
}

struct abort_case {
	const char *name;
	void (*base)(struct ab *a);
	void (*change)(struct ab *a);
	uint32_t min_height; /* the B+tree height the change must reach */
};

static const struct abort_case abort_cases[] = {
	{"insert", base_1000_small, chg_insert, 0},
	{"overwrite-same-size", base_same, chg_same, 0},
	{"overwrite-bigger", base_small_vals, chg_bigger, 0},
	{"overwrite-smaller", base_big_vals, chg_smaller, 0},
	{"delete", base_3000, chg_delete, 0},
	{"overflow", base_overflow, chg_overflow, 0},
	{"splits", base_few_long_keys, chg_splits, 3},
	{"empty-leaves", base_leaves, chg_empty_leaves, 0},
	{"mixed", base_mixed, chg_mixed, 0},
};
#define NCASES (sizeof abort_cases / sizeof abort_cases[0])

/* Builds the case's committed base in walden and the oracle, runs its
 * change (compared, seen from inside the transaction), aborts, and
 * compares the table with the base. */
static void run_abort_case(wd_db *db, ot_oracle *o, const struct abort_case *c,
			   MDB_dbi dbi, uint8_t *v, uint8_t *g)
{
	struct ab a = {.dbi = dbi, .v = v, .g = g, .s = 0xab0 + strlen(c->name)};
	db_check_report rep;
	char diag[512];
	uint64_t base_items, items;
	OK(wd_begin(db, &a.x));
	OK(wd_table_open(a.x, c->name, WD_CREATE, &a.t));
	a.mt = ot_begin(o, NULL);
	c->base(&a);
	OK(wd_commit(a.x));
	MDBOK(mdb_txn_commit(a.mt));
	base_items = ot_compare_committed(db, c->name, o, dbi, "as built");

	OK(wd_begin(db, &a.x));
	OK(wd_table_open(a.x, c->name, 0, &a.t));
	a.mt = ot_begin(o, NULL);
	a.changes = 0;
	c->change(&a);
	/* the transaction sees its own changes */
	if (!ot_scan_equal(a.x, a.t, a.mt, dbi, diag, sizeof diag, &items))
		fail_msg("case %s, before the abort: %s", c->name, diag);
	if (db_table_check(a.t, &rep) != 0)
		fail_msg("case %s, before the abort: %s", c->name, wd_last_error());
	if (rep.index.height < c->min_height)
		fail_msg("case %s: the B+tree has %u levels, the case needs %u", c->name,
			 rep.index.height, c->min_height);
	OK(wd_abort(a.x));
	mdb_txn_abort(a.mt);
	assert_int_equal(ot_compare_committed(db, c->name, o, dbi, "after the abort"), base_items);
	print_message("abort %-20s %6llu changes undone (%llu items -> %llu), tree height %u\n",
		      c->name, (unsigned long long)a.changes, (unsigned long long)items,
		      (unsigned long long)base_items, rep.index.height);
	assert_true(a.changes > 0);
}

static void test_abort_restores(void **state)
{
	char *root = tu_tmpdir("txn-abort");
	char *dir = tu_path(root, "db"), *odir = tu_path(root, "lmdb");
	uint8_t *v = malloc(AB_VMAX), *g = malloc(AB_VMAX);
	MDB_dbi dbis[NCASES];
	ot_oracle o;
	wd_db *db;
	(void)state;
	ot_open(&o, odir);
	db = dt_open_db(dir, 0);
	for (unsigned i = 0; i < NCASES; i++) {
		dbis[i] = ot_dbi(&o, abort_cases[i].name);
		run_abort_case(db, &o, &abort_cases[i], dbis[i], v, g);
		dt_check_all(db);
	}
	OK(wd_close(db));
	/* after a reopen: the same */
	db = dt_open_db(dir, 0);
	for (unsigned i = 0; i < NCASES; i++)
		ot_compare_committed(db, abort_cases[i].name, &o, dbis[i], "after the reopen");
	dt_check_all(db);
	OK(wd_close(db));
	ot_close(&o);
	free(v);
	free(g);
	tu_rmrf(root);
	free(dir);
	free(odir);
	free(root);
}

/* ---- 2. savepoints ------------------------------------------------------- */

#define SP_KEYS 1500u
#define SP_NAMES 6u
#define SP_VMAX (200u * 1024)

static const char *const sp_names[SP_NAMES] = {"a", "b", "sp-c", "d", "savepoint e",
					       "f"};

/* What a key holds in the model: its value is ot_fill(vseed) of len bytes. */
struct mval {
	uint64_t vseed;
	uint32_t len;
	bool present;
};

struct sp_set {
	unsigned name;
	struct mval *snap; /* the model when it was set */
};

/* The key space (shared by every seed): key i starts with a bijection of
 * i (so keys are distinct) and goes on for 0..36 bytes; order[] lists the
 * keys in key order. */
static uint8_t sp_key[SP_KEYS][40];
static size_t sp_klen[SP_KEYS];
static unsigned sp_order[SP_KEYS];

static int sp_cmp(const void *pa, const void *pb)
{
	unsigned a = *(const unsigned *)pa, b = *(const unsigned *)pb;
	size_t m = sp_klen[a] < sp_klen[b] ? sp_klen[a] : sp_klen[b];
	int c = memcmp(sp_key[a], sp_key[b], m);
	return c ? c : (sp_klen[a] > sp_klen[b]) - (sp_klen[a] < sp_klen[b]);
}

static void sp_keys_init(void)
{
	uint64_t s = 777;
	for (unsigned i = 0; i < SP_KEYS; i++) {
		uint32_t h = i * 2654435761u;
		sp_key[i][0] = (uint8_t)(h >> 24);
		sp_key[i][1] = (uint8_t)(h >> 16);
		sp_key[i][2] = (uint8_t)(h >> 8);
		sp_key[i][3] = (uint8_t)h;
		sp_klen[i] = 4 + tu_rand(&s) % 37;
		ot_fill(sp_key[i] + 4, sp_klen[i] - 4, tu_rand(&s));
		sp_order[i] = i;
	}
	qsort(sp_order, SP_KEYS, sizeof sp_order[0], sp_cmp);
}

struct sp_run {
	wd_txn *x;
	wd_table *t;
	uint64_t s;
	struct mval model[SP_KEYS];
	struct sp_set sps[SP_NAMES]; /* oldest first */
	unsigned nsps;
	uint8_t *v, *g;
	uint64_t puts, dels, gets, sets, replaced, rollbacks, twice, unknown, scans;
};

static size_t sp_val_len(uint64_t *s)
{
	uint64_t r = tu_rand(s) % 1000;
	if (r < 600)
		return tu_rand(s) % 120;
	if (r < 850)
		return 120 + tu_rand(s) % 900;
	if (r < 950)
		return 1000 + tu_rand(s) % PS;
	if (r < 995)
		return PS + tu_rand(s) % (2 * PS);
	return 20000 + tu_rand(s) % (SP_VMAX - 20000);
}

static void sp_put(struct sp_run *r, unsigned i)
{
	struct mval m = {.vseed = tu_rand(&r->s), .len = (uint32_t)sp_val_len(&r->s),
			 .present = true};
	ot_fill(r->v, m.len, m.vseed);
	OK(wd_put(r->x, r->t, sp_key[i], sp_klen[i], r->v, m.len));
	r->model[i] = m;
	r->puts++;
}

static void sp_del(struct sp_run *r, unsigned i)
{
	EXPECT(wd_del(r->x, r->t, sp_key[i], sp_klen[i]), r->model[i].present ? 0 : WD_NOTFOUND);
	r->model[i].present = false;
	r->dels++;
}

static void sp_get(struct sp_run *r, unsigned i)
{
	size_t vlen;
	int rc = wd_get(r->x, r->t, sp_key[i], sp_klen[i], r->g, SP_VMAX, &vlen);
	r->gets++;
	if (!r->model[i].present) {
		EXPECT(rc, WD_NOTFOUND);
		return;
	}
	OK(rc);
	assert_int_equal(vlen, r->model[i].len);
	ot_fill(r->v, vlen, r->model[i].vseed);
	assert_memory_equal(r->g, r->v, vlen);
}

/* A full scan inside the transaction equals the model. */
static void sp_scan(struct sp_run *r, const char *when)
{
	const void *k, *v;
	size_t kl, vl;
	wd_cursor *c;
	OK(wd_cursor_open(r->x, r->t, &c));
	for (unsigned n = 0; n < SP_KEYS; n++) {
		unsigned i = sp_order[n];
		if (!r->model[i].present)
			continue;
		int rc = wd_cursor_next(c, &k, &kl, &v, &vl);
		if (rc != 0)
			fail_msg("%s: scan: key #%u missing: %s", when, i, wd_strerror(rc));
		if (kl != sp_klen[i] || memcmp(k, sp_key[i], kl) != 0)
			fail_msg("%s: scan: another key where key #%u should be", when, i);
		assert_int_equal(vl, r->model[i].len);
		ot_fill(r->v, vl, r->model[i].vseed);
		if (memcmp(v, r->v, vl) != 0)
			fail_msg("%s: scan: key #%u has another value", when, i);
	}
	EXPECT(wd_cursor_next(c, &k, &kl, &v, &vl), WD_NOTFOUND);
	wd_cursor_close(c);
	r->scans++;
}

static int sp_find(const struct sp_run *r, unsigned name)
{
	for (unsigned j = 0; j < r->nsps; j++)
		if (r->sps[j].name == name)
			return (int)j;
	return -1;
}

static void sp_drop_from(struct sp_run *r, unsigned j)
{
	while (r->nsps > j)
		free(r->sps[--r->nsps].snap);
}

/* wd_savepoint: an older one of the name is released; the new one goes
 * last (walden.h). */
static void sp_set_point(struct sp_run *r, unsigned name)
{
	int old = sp_find(r, name);
	OK(wd_savepoint(r->x, sp_names[name]));
	if (old >= 0) {
		free(r->sps[old].snap);
		memmove(&r->sps[old], &r->sps[old + 1],
			(r->nsps - (unsigned)old - 1) * sizeof r->sps[0]);
		r->nsps--;
		r->replaced++;
	}
	r->sps[r->nsps].name = name;
	r->sps[r->nsps].snap = malloc(sizeof r->model);
	memcpy(r->sps[r->nsps++].snap, r->model, sizeof r->model);
	r->sets++;
}

/* wd_rollback_to: the model goes back to the snapshot, the savepoints
 * after it go, it stays. */
static void sp_rollback(struct sp_run *r, unsigned name)
{
	int j = sp_find(r, name);
	if (j < 0) {
		EXPECT(wd_rollback_to(r->x, sp_names[name]), WD_NOTFOUND);
		r->unknown++;
		return;
	}
	OK(wd_rollback_to(r->x, sp_names[name]));
	memcpy(r->model, r->sps[j].snap, sizeof r->model);
	sp_drop_from(r, (unsigned)j + 1);
	r->rollbacks++;
	if (tu_rand(&r->s) % 4 == 0) { /* again, with nothing changed since */
		OK(wd_rollback_to(r->x, sp_names[name]));
		r->twice++;
	}
}

/* The committed model into the oracle: every key as the model says. */
static void sp_to_oracle(const struct mval *m, ot_oracle *o, MDB_dbi dbi, uint8_t *v)
{
	MDB_txn *mt = ot_begin(o, NULL);
	for (unsigned i = 0; i < SP_KEYS; i++) {
		MDB_val mk = {sp_klen[i], sp_key[i]}, mv = {m[i].len, v};
		if (m[i].present) {
			ot_fill(v, m[i].len, m[i].vseed);
			MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
		} else {
			int rc = mdb_del(mt, dbi, &mk, NULL);
			assert_true(rc == 0 || rc == MDB_NOTFOUND);
		}
	}
	MDBOK(mdb_txn_commit(mt));
}

static void test_savepoints_random(void **state)
{
	char *root = tu_tmpdir("txn-sp");
	char *dir = tu_path(root, "db"), *odir = tu_path(root, "lmdb");
	uint64_t nops = (uint64_t)(4000 * dt_scale());
	struct sp_run *r = calloc(1, sizeof *r);
	struct mval *committed = calloc(SP_KEYS, sizeof *committed);
	ot_oracle o;
	MDB_dbi dbi;
	wd_db *db;
	(void)state;
	if (nops < 1000)
		nops = 1000;
	sp_keys_init();
	ot_open(&o, odir);
	dbi = ot_dbi(&o, "sp");
	db = dt_open_db(dir, 0);
	r->v = malloc(SP_VMAX);
	r->g = malloc(SP_VMAX);
	/* a committed base: the undo of a change to an old key puts its old
	 * value back */
	r->s = 1;
	OK(wd_begin(db, &r->x));
	OK(wd_table_open(r->x, "sp", WD_CREATE, &r->t));
	for (unsigned i = 0; i < SP_KEYS; i += 2)
		sp_put(r, i);
	OK(wd_commit(r->x));
	memcpy(committed, r->model, sizeof r->model);
	sp_to_oracle(committed, &o, dbi, r->v);
	for (uint64_t seed = 1; seed <= 6; seed++) {
		r->s = tu_seed(seed * 1000003u);
		memcpy(r->model, committed, sizeof r->model);
		OK(wd_begin(db, &r->x));
		OK(wd_table_open(r->x, "sp", 0, &r->t));
		/* a savepoint before any change: its point is the empty chain */
		sp_set_point(r, (unsigned)(seed % SP_NAMES));
		for (uint64_t n = 0; n < nops; n++) {
			unsigned i = (unsigned)(tu_rand(&r->s) % SP_KEYS);
			uint64_t c = tu_rand(&r->s) % 1000;
			if (c < 450)
				sp_put(r, i);
			else if (c < 650)
				sp_del(r, i);
			else if (c < 820)
				sp_get(r, i);
			else if (c < 890)
				sp_set_point(r, (unsigned)(tu_rand(&r->s) % SP_NAMES));
			else if (c < 940)
				sp_rollback(r, (unsigned)(tu_rand(&r->s) % SP_NAMES));
			else if (c < 945)
				sp_scan(r, "during the transaction");
			else if (c < 950) { /* a run of neighbours: splits */
				unsigned from = (unsigned)(tu_rand(&r->s) % SP_KEYS);
				unsigned len = 20 + (unsigned)(tu_rand(&r->s) % 150);
				for (unsigned j = from; j < from + len && j < SP_KEYS; j++)
					sp_put(r, sp_order[j]);
			} else if (c < 953) { /* a savepoint, nothing changed, back */
				unsigned name = (unsigned)(tu_rand(&r->s) % SP_NAMES);
				sp_set_point(r, name);
				sp_rollback(r, name);
			} else
				sp_get(r, sp_order[i]);
		}
		sp_scan(r, "at the end");
		if (seed % 2) {
			OK(wd_commit(r->x));
			memcpy(committed, r->model, sizeof r->model);
			sp_to_oracle(committed, &o, dbi, r->v);
		} else {
			OK(wd_abort(r->x));
		}
		sp_drop_from(r, 0);
		ot_compare_committed(db, "sp", &o, dbi, seed % 2 ? "after the commit" : "after the abort");
		dt_check_all(db);
	}
	print_message("savepoints: 6 seeds x %llu ops: %llu puts, %llu dels, %llu gets, %llu "
		      "savepoints (%llu replacing one), %llu rollbacks (%llu twice), %llu unknown "
		      "names, %llu scans\n", (unsigned long long)nops,
		      (unsigned long long)r->puts, (unsigned long long)r->dels,
		      (unsigned long long)r->gets, (unsigned long long)r->sets,
		      (unsigned long long)r->replaced, (unsigned long long)r->rollbacks,
		      (unsigned long long)r->twice, (unsigned long long)r->unknown,
		      (unsigned long long)r->scans);
	assert_true(r->replaced > 0 && r->rollbacks > 0 && r->twice > 0 && r->unknown > 0);
	OK(wd_close(db));
	db = dt_open_db(dir, 0);
	ot_compare_committed(db, "sp", &o, dbi, "after the reopen");
	dt_check_all(db);
	OK(wd_close(db));
	ot_close(&o);
	free(r->v);
	free(r->g);
	free(r);
	free(committed);
	tu_rmrf(root);
	free(dir);
	free(odir);
	free(root);
}

/* The rules of wd_savepoint and wd_rollback_to, one by one. */
static void test_savepoint_rules(void **state)
{
	char *root = tu_tmpdir("txn-sp-rules");
	char name[300];
	wd_db *db = dt_open_db(root, 0);
	wd_txn *x;
	wd_table *t;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	dt_put_str(x, t, "k", "base");
	OK(wd_commit(x));

	OK(wd_begin(db, &x));
	/* unknown names; bad names */
	EXPECT(wd_rollback_to(x, "nope"), WD_NOTFOUND);
	EXPECT(wd_savepoint(x, ""), WD_EINVAL);
	EXPECT(wd_savepoint(x, NULL), WD_EINVAL);
	memset(name, 'n', sizeof name);
	name[256] = 0;
	EXPECT(wd_savepoint(x, name), WD_EINVAL);
	name[255] = 0;
	OK(wd_savepoint(x, name)); /* 255 bytes: fine */
	/* set, nothing changed, rolled back to, twice */
	OK(wd_savepoint(x, "a"));
	OK(wd_rollback_to(x, "a"));
	OK(wd_rollback_to(x, "a"));
	dt_expect_key(x, t, "k", "base");
	/* changes, back, changes, back again to the same point */
	dt_put_str(x, t, "k", "one");
	dt_put_str(x, t, "new", "1");
	OK(wd_rollback_to(x, "a"));
	dt_expect_key(x, t, "k", "base");
	dt_expect_key(x, t, "new", NULL);
	dt_put_str(x, t, "k", "two");
	OK(wd_del(x, t, "k", 1));
	OK(wd_rollback_to(x, "a"));
	dt_expect_key(x, t, "k", "base");
	/* nested: going back to the outer releases the inner */
	dt_put_str(x, t, "k", "outer");
	OK(wd_savepoint(x, "b"));
	dt_put_str(x, t, "k", "inner");
	OK(wd_savepoint(x, "c"));
	dt_put_str(x, t, "x", "inner-x");
	OK(wd_rollback_to(x, "b"));
	dt_expect_key(x, t, "k", "outer");
	dt_expect_key(x, t, "x", NULL);
	EXPECT(wd_rollback_to(x, "c"), WD_NOTFOUND);
	OK(wd_rollback_to(x, "b")); /* b stays */
	/* a name set again replaces the old savepoint: rollback goes to the
	 * newer one; the ones set between stay */
	dt_put_str(x, t, "k", "first");
	OK(wd_savepoint(x, "r"));
	dt_put_str(x, t, "k", "second");
	OK(wd_savepoint(x, "between"));
	dt_put_str(x, t, "k", "third");
	OK(wd_savepoint(x, "r"));
	dt_put_str(x, t, "k", "fourth");
	OK(wd_rollback_to(x, "r"));
	dt_expect_key(x, t, "k", "third");
	OK(wd_rollback_to(x, "between"));
	dt_expect_key(x, t, "k", "second");
	EXPECT(wd_rollback_to(x, "r"), WD_NOTFOUND); /* set after "between" */
	OK(wd_rollback_to(x, "a"));
	dt_expect_key(x, t, "k", "base");
	/* the transaction is still open and commits what is left */
	dt_put_str(x, t, "after", "yes");
	OK(wd_commit(x));
	OK(wd_begin(db, &x));
	dt_expect_key(x, t, "k", "base");
	dt_expect_key(x, t, "after", "yes");
	dt_expect_key(x, t, "new", NULL);
	/* a savepoint, changes, wd_abort: everything goes */
	OK(wd_savepoint(x, "s"));
	dt_put_str(x, t, "k", "aborted");
	OK(wd_abort(x));
	OK(wd_begin(db, &x));
	dt_expect_key(x, t, "k", "base");
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- 3. a million changes rolled back ------------------------------------ */

static size_t mk_key(uint64_t i, char *k)
{
	return (size_t)snprintf(k, 32, "m%07llu", (unsigned long long)i);
}

static void test_million_rollback(void **state)
{
	char *root = tu_tmpdir("txn-million");
	char *dir = tu_path(root, "db"), *odir = tu_path(root, "lmdb");
	const char *env = getenv("WALDEN_TEST_SCALE");
	uint64_t n = (uint64_t)(1000000 * dt_scale()), keys, s = tu_seed(4242), changes = 0;
	uint64_t puts = 0, dels = 0;
	uint8_t v[64];
	char k[32];
	ot_oracle o;
	MDB_dbi dbi;
	MDB_txn *mt;
	wd_options opts;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	double t0, t1, t2;
	(void)state;
	if (SANITIZED && !(env && *env))
		n = 100000;
	if (n < 10000)
		n = 10000;
	keys = n / 5;
	ot_open(&o, odir);
	dbi = ot_dbi(&o, "m");
	dt_opts(&opts, 0);
	opts.buffer_pool_bytes = 32u << 20; /* the rates of the machinery, not of eviction */
	opts.wal_segment_size = 16u << 20;
	OK(wd_open(dir, &opts, &db));
	/* the committed base: half the keys */
	mt = ot_begin(&o, NULL);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "m", WD_CREATE, &t));
	for (uint64_t i = 0; i < keys; i += 2) {
		MDB_val mk = {mk_key(i, k), k}, mv = {8 + i % 24, v};
		ot_fill(v, mv.mv_size, i);
		OK(wd_put(x, t, k, mk.mv_size, v, mv.mv_size));
		MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
		if (i % 20000 == 0) {
			OK(wd_commit(x));
			OK(wd_begin(db, &x));
		}
	}
	OK(wd_commit(x));
	MDBOK(mdb_txn_commit(mt));

	/* one transaction: n random puts (new keys and overwrites) and
	 * deletes over the key space */
	OK(wd_begin(db, &x));
	t0 = dt_now_s();
	for (uint64_t j = 0; j < n; j++) {
		uint64_t i = tu_rand(&s) % keys;
		size_t kl = mk_key(i, k);
		if (tu_rand(&s) % 10 == 0) {
			int rc = wd_del(x, t, k, kl);
			if (rc != 0 && rc != WD_NOTFOUND)
				fail_msg("del: %s (%s)", wd_strerror(rc), wd_last_error());
			changes += rc == 0;
			dels++;
		} else {
			size_t vl = 1 + tu_rand(&s) % 40;
			ot_fill(v, vl, j);
			OK(wd_put(x, t, k, kl, v, vl));
			changes++;
			puts++;
		}
	}
	t1 = dt_now_s();
	OK(wd_abort(x));
	t2 = dt_now_s();
	print_message("%llu-operation transaction (%llu puts, %llu dels over %llu keys): "
		      "%llu changes in %.2f s (%.0f changes/s); rolled back in %.2f s "
		      "(%.0f changes/s, %.2fx the forward time)\n",
		      (unsigned long long)n, (unsigned long long)puts, (unsigned long long)dels,
		      (unsigned long long)keys, (unsigned long long)changes, t1 - t0,
		      changes / (t1 - t0), t2 - t1, changes / (t2 - t1), (t2 - t1) / (t1 - t0));
	assert_true(changes > n / 2);
	assert_int_equal(ot_compare_committed(db, "m", &o, dbi, "after the rollback"), keys / 2);
	dt_check_all(db);
	OK(wd_close(db));
	db = dt_open_db(dir, 0);
	ot_compare_committed(db, "m", &o, dbi, "after the reopen");
	OK(wd_close(db));
	ot_close(&o);
	tu_rmrf(root);
	free(dir);
	free(odir);
	free(root);
}

/* ---- 4. the rules of transactions ---------------------------------------- */

static void test_ended_handles(void **state)
{
	char *root = tu_tmpdir("txn-rules");
	wd_db *db = dt_open_db(root, 0);
	wd_txn *x, *y;
	wd_table *t, *t2;
	wd_cursor *c;
	char buf[8];
	size_t vlen;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	dt_put_str(x, t, "k", "v");
	OK(wd_commit(x));
	for (int ended = 0; ended < 2; ended++) {
		OK(wd_begin(db, &x));
		dt_put_str(x, t, "k", ended ? "aborted" : "committed");
		OK(wd_savepoint(x, "s"));
		if (ended)
			OK(wd_abort(x));
		else
			OK(wd_commit(x));
		/* every call on the ended handle: WD_ESTATE */
		EXPECT(wd_put(x, t, "k", 1, "z", 1), WD_ESTATE);
		EXPECT(wd_get(x, t, "k", 1, buf, sizeof buf, &vlen), WD_ESTATE);
		EXPECT(wd_del(x, t, "k", 1), WD_ESTATE);
		EXPECT(wd_savepoint(x, "s2"), WD_ESTATE);
		EXPECT(wd_rollback_to(x, "s"), WD_ESTATE);
		EXPECT(wd_cursor_open(x, t, &c), WD_ESTATE);
		EXPECT(wd_table_open(x, "t", 0, &t2), WD_ESTATE);
		EXPECT(wd_table_drop(x, "t"), WD_ESTATE);
		EXPECT(wd_txn_set_synchronous(x, 1), WD_ESTATE);
		EXPECT(wd_commit(x), WD_ESTATE);
		EXPECT(wd_abort(x), WD_ESTATE);
		assert_non_null(strstr(wd_last_error(), ended ? "aborted" : "committed"));
	}
	/* nothing of those calls changed anything */
	OK(wd_begin(db, &y));
	dt_expect_key(y, t, "k", "committed");
	OK(wd_commit(y));

	/* read-only: reads work, changes are WD_EACCES */
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "other", WD_CREATE, &t2));
	dt_put_str(x, t2, "o", "1");
	OK(wd_commit(x));
	EXPECT(wd_begin_flags(db, 0x80, &x), WD_EINVAL);
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, "t", 0, &t));
	dt_expect_key(x, t, "k", "committed");
	EXPECT(wd_put(x, t, "k", 1, "z", 1), WD_EACCES);
	EXPECT(wd_put(x, t, "new", 3, "z", 1), WD_EACCES);
	EXPECT(wd_del(x, t, "k", 1), WD_EACCES);
	EXPECT(wd_table_open(x, "created", WD_CREATE, &t2), WD_EACCES);
	EXPECT(wd_table_drop(x, "other"), WD_EACCES);
	OK(wd_cursor_open(x, t, &c));
	{
		const void *k, *v;
		size_t kl, vl;
		OK(wd_cursor_next(c, &k, &kl, &v, &vl));
		assert_int_equal(kl, 1);
		assert_memory_equal(k, "k", 1);
		EXPECT(wd_cursor_next(c, &k, &kl, &v, &vl), WD_NOTFOUND);
	}
	wd_cursor_close(c);
	OK(wd_savepoint(x, "ro")); /* harmless */
	OK(wd_rollback_to(x, "ro"));
	OK(wd_commit(x));
	OK(wd_begin(db, &x));
	dt_expect_key(x, t, "k", "committed");
	dt_expect_key(x, t, "new", NULL);
	assert_int_equal(wd_table_open(x, "created", 0, &t2), WD_NOTFOUND);
	OK(wd_table_open(x, "other", 0, &t2));
	dt_expect_key(x, t2, "o", "1");
	OK(wd_commit(x));

	/* wd_close with open transactions: refused, the database usable */
	OK(wd_begin(db, &x));
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &y));
	dt_put_str(x, t, "k", "open at close");
	EXPECT(wd_close(db), WD_ESTATE);
	dt_expect_key(x, t, "k", "open at close");
	OK(wd_abort(x));
	EXPECT(wd_close(db), WD_ESTATE); /* y still open */
	dt_expect_key(y, t, "k", "committed");
	OK(wd_abort(y));
	OK(wd_close(db));
	db = dt_open_db(root, 0);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	dt_expect_key(x, t, "k", "committed");
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* Lock timeouts: the call fails and changes nothing; the transaction goes
 * on and commits its other keys. */
static void test_lock_timeout(void **state)
{
	char *root = tu_tmpdir("txn-timeout");
	wd_options o;
	wd_db *db;
	wd_txn *a, *b, *c;
	wd_table *t;
	lock_stats st;
	char buf[16];
	size_t vlen;
	(void)state;
	dt_opts(&o, 0);
	o.lock_timeout_ms = 50;
	OK(wd_open(root, &o, &db));
	OK(wd_begin(db, &a));
	OK(wd_table_open(a, "t", WD_CREATE, &t));
	dt_put_str(a, t, "k", "v0");
	dt_put_str(a, t, "j", "j0");
	dt_put_str(a, t, "m", "m0");
	OK(wd_commit(a));

	OK(wd_begin(db, &a));
	dt_put_str(a, t, "k", "vA"); /* X on k */
	dt_expect_key(a, t, "j", "j0"); /* S on j */
	OK(wd_begin(db, &b));
	EXPECT(wd_put(b, t, "k", 1, "vB", 2), WD_ETIMEDOUT);
	assert_non_null(strstr(wd_last_error(), "timed out"));
	EXPECT(wd_get(b, t, "k", 1, buf, sizeof buf, &vlen), WD_ETIMEDOUT);
	EXPECT(wd_del(b, t, "k", 1), WD_ETIMEDOUT);
	EXPECT(wd_put(b, t, "j", 1, "jB", 2), WD_ETIMEDOUT); /* A's S blocks X */
	dt_expect_key(b, t, "j", "j0");                         /* S and S: fine */
	dt_put_str(b, t, "m", "mB");
	OK(wd_savepoint(b, "after-timeouts"));
	OK(wd_commit(b));
	OK(wd_abort(a));
	db_lock_stats(db, &st);
	assert_true(st.timeouts >= 4);
	OK(wd_begin(db, &c));
	dt_expect_key(c, t, "k", "v0"); /* neither A's (aborted) nor B's (timed out) */
	dt_expect_key(c, t, "j", "j0");
	dt_expect_key(c, t, "m", "mB");
	OK(wd_commit(c));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* A transaction is used by one thread at a time: while thread 1 waits
 * inside wd_put on x, every call on x from another thread is WD_EBUSY. */
static void test_busy_handle(void **state)
{
	char *root = tu_tmpdir("txn-busy");
	wd_db *db = dt_open_db(root, 0);
	wd_txn *x, *c, *y;
	wd_table *t, *t2;
	wd_cursor *cur;
	lock_stats st;
	pthread_t th;
	struct dt_put_arg pa;
	char buf[16];
	size_t vlen;
	(void)state;
	OK(wd_begin(db, &c));
	OK(wd_table_open(c, "t", WD_CREATE, &t));
	dt_put_str(c, t, "k", "base");
	dt_put_str(c, t, "other", "o");
	OK(wd_commit(c));

	OK(wd_begin(db, &c));
	dt_put_str(c, t, "k", "from-c"); /* C holds X on k */
	OK(wd_begin(db, &x));
	dt_expect_key(x, t, "other", "o");
	db_lock_stats(db, &st);
	pa = (struct dt_put_arg){.x = x, .t = t, .k = "k", .v = "from-x", .rc = 1};
	assert_int_equal(pthread_create(&th, NULL, dt_put_thread, &pa), 0);
	dt_wait_for_lock_waiter(db, st.waits); /* thread 1 is inside wd_put(x) */
	EXPECT(wd_get(x, t, "other", 5, buf, sizeof buf, &vlen), WD_EBUSY);
	assert_non_null(strstr(wd_last_error(), "another thread"));
	EXPECT(wd_put(x, t, "z", 1, "z", 1), WD_EBUSY);
	EXPECT(wd_del(x, t, "other", 5), WD_EBUSY);
	EXPECT(wd_savepoint(x, "s"), WD_EBUSY);
	EXPECT(wd_rollback_to(x, "s"), WD_EBUSY);
	EXPECT(wd_cursor_open(x, t, &cur), WD_EBUSY);
	EXPECT(wd_table_open(x, "t", 0, &t2), WD_EBUSY);
	EXPECT(wd_txn_set_synchronous(x, 0), WD_EBUSY);
	EXPECT(wd_commit(x), WD_EBUSY);
	EXPECT(wd_abort(x), WD_EBUSY);
	/* C ends: thread 1's put gets the lock and finishes */
	OK(wd_commit(c));
	assert_int_equal(pthread_join(th, NULL), 0);
	OK(pa.rc);
	/* x is whole: its put, and none of the refused calls */
	dt_expect_key(x, t, "k", "from-x");
	dt_expect_key(x, t, "z", NULL);
	OK(wd_commit(x));
	OK(wd_begin(db, &y));
	dt_expect_key(y, t, "k", "from-x");
	dt_expect_key(y, t, "other", "o");
	OK(wd_commit(y));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* The deadlock victim (the requester closing the cycle) is rolled back to
 * its beginning, its locks released, and stays usable. */
static void test_deadlock_victim(void **state)
{
	char *root = tu_tmpdir("txn-deadlock");
	char *odir = tu_path(root, "lmdb"), *dir = tu_path(root, "db");
	wd_db *db = dt_open_db(dir, 0);
	wd_txn *t1, *t2, *t3;
	wd_table *t;
	lock_stats st, st2;
	pthread_t th;
	struct dt_put_arg pa;
	ot_oracle o;
	MDB_dbi dbi;
	MDB_txn *mt;
	int rc;
	(void)state;
	ot_open(&o, odir);
	dbi = ot_dbi(&o, "t");
	OK(wd_begin(db, &t1));
	OK(wd_table_open(t1, "t", WD_CREATE, &t));
	dt_put_str(t1, t, "a", "a0");
	dt_put_str(t1, t, "b", "b0");
	dt_put_str(t1, t, "c", "c0");
	OK(wd_commit(t1));

	/* X against X: T1 has a, T2 has c and b; T1 waits for b; T2 asks
	 * for a and closes the cycle */
	OK(wd_begin(db, &t1));
	OK(wd_begin(db, &t2));
	dt_put_str(t1, t, "a", "a1");
	dt_put_str(t2, t, "c", "c2");
	OK(wd_savepoint(t2, "sp"));
	dt_put_str(t2, t, "b", "b2");
	dt_put_str(t2, t, "new", "n2");
	db_lock_stats(db, &st);
	pa = (struct dt_put_arg){.x = t1, .t = t, .k = "b", .v = "b1", .rc = 1};
	assert_int_equal(pthread_create(&th, NULL, dt_put_thread, &pa), 0);
	dt_wait_for_lock_waiter(db, st.waits);
	rc = wd_put(t2, t, "a", 1, "a2", 2);
	if (rc != WD_EDEADLOCK)
		fail_msg("the put closing the cycle: %d (%s)", rc, wd_last_error());
	assert_non_null(strstr(wd_last_error(), "deadlock"));
	assert_non_null(strstr(wd_last_error(), "rolled back"));
	/* the victim's release let T1 go on */
	assert_int_equal(pthread_join(th, NULL), 0);
	OK(pa.rc);
	db_lock_stats(db, &st2);
	assert_int_equal(st2.deadlocks, st.deadlocks + 1);
	/* T2 is back at its beginning: its savepoints went too */
	EXPECT(wd_rollback_to(t2, "sp"), WD_NOTFOUND);
	OK(wd_commit(t1));
	/* a third transaction sees T1's changes and none of T2's, without
	 * waiting for T2, which still runs but holds nothing */
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &t3));
	dt_expect_key(t3, t, "a", "a1");
	dt_expect_key(t3, t, "b", "b1");
	dt_expect_key(t3, t, "c", "c0");
	dt_expect_key(t3, t, "new", NULL);
	OK(wd_commit(t3));
	/* T2 retries its work and commits */
	dt_expect_key(t2, t, "a", "a1");
	dt_put_str(t2, t, "c", "c2");
	dt_put_str(t2, t, "b", "b2");
	dt_put_str(t2, t, "a", "a2");
	OK(wd_commit(t2));

	/* S against S, both upgrading: T2 is the victim again, then aborts */
	OK(wd_begin(db, &t1));
	OK(wd_begin(db, &t2));
	dt_expect_key(t1, t, "c", "c2");
	dt_expect_key(t2, t, "c", "c2");
	dt_put_str(t2, t, "b", "b-lost");
	db_lock_stats(db, &st);
	pa = (struct dt_put_arg){.x = t1, .t = t, .k = "c", .v = "c1", .rc = 1};
	assert_int_equal(pthread_create(&th, NULL, dt_put_thread, &pa), 0);
	dt_wait_for_lock_waiter(db, st.waits);
	EXPECT(wd_put(t2, t, "c", 1, "c-lost", 6), WD_EDEADLOCK);
	assert_int_equal(pthread_join(th, NULL), 0);
	OK(pa.rc);
	OK(wd_abort(t2));
	OK(wd_commit(t1));

	/* the oracle: T1, T2, T1 again */
	mt = ot_begin(&o, NULL);
	{
		static const char *const kv[][2] = {{"a", "a2"}, {"b", "b2"}, {"c", "c1"}};
		for (unsigned i = 0; i < 3; i++) {
			MDB_val mk = {1, (void *)kv[i][0]}, mv = {2, (void *)kv[i][1]};
			MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
		}
	}
	MDBOK(mdb_txn_commit(mt));
	ot_compare_committed(db, "t", &o, dbi, "after the deadlocks");
	dt_check_all(db);
	OK(wd_close(db));
	ot_close(&o);
	tu_rmrf(root);
	free(odir);
	free(dir);
	free(root);
}

static int count_tables_n;
static int count_cb(void *arg, const db_table_info *ti)
{
	(void)arg;
	(void)ti;
	count_tables_n++;
	return 0;
}

/* Table create and drop commit on their own: the caller's abort keeps
 * them. */
static void test_ddl_not_undone(void **state)
{
	char *root = tu_tmpdir("txn-ddl");
	wd_db *db = dt_open_db(root, 0);
	wd_txn *x;
	wd_table *t;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "gone", WD_CREATE, &t));
	dt_put_str(x, t, "k", "v");
	OK(wd_commit(x));

	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "made", WD_CREATE, &t));
	dt_put_str(x, t, "k", "v"); /* undone by the abort; the table is not */
	OK(wd_table_drop(x, "gone"));
	OK(wd_abort(x));
	for (int pass = 0; pass < 2; pass++) {
		OK(wd_begin(db, &x));
		OK(wd_table_open(x, "made", 0, &t));
		dt_expect_key(x, t, "k", NULL);
		EXPECT(wd_table_open(x, "gone", 0, &t), WD_NOTFOUND);
		OK(wd_commit(x));
		count_tables_n = 0;
		OK(db_catalog_list(db, count_cb, NULL));
		assert_int_equal(count_tables_n, 1);
		dt_check_all(db);
		OK(wd_close(db));
		db = dt_open_db(root, 0); /* and after a reopen */
	}
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- 5. crashes ---------------------------------------------------------- */

/*
 * The crash children run a script (ck_script) that is a function of a
 * seed: committed transactions on the keys of range 0, and two
 * transactions that never commit - loser 1 on range 1 (and a burst of new
 * long keys: splits), loser 2 on range 2 - interleaved with committed ones.
 * The parent runs the same script against LMDB, keeping the committed
 * transactions only (and loser 1's operations aside, for the crash in its
 * commit). The ranges are disjoint, so one thread can run all three
 * transactions without waiting for itself.
 */
#define CK_RANGE 700u
#define CK_BURST 100000u /* loser 1's burst keys: CK_BURST + j, 100 bytes */
#define CK_VMAX (320u * 1024)

enum ck_mode {
	CK_EXIT,   /* _exit once the losers' records are durable */
	CK_APPLY,  /* wd_abort(loser 1) dies at undo-after-apply */
	CK_CLR,    /* ... at undo-after-clr */
	CK_COMMIT, /* wd_commit(loser 1) dies at txn-commit-after-wal-insert */
	CK_APPEND, /* loser 1 dies at undo-after-append in a change */
};
static const char *const ck_mode_names[] = {"exit", "undo-after-apply", "undo-after-clr",
					    "txn-commit-after-wal-insert",
					    "undo-after-append"};

struct ck_op {
	unsigned key;
	bool del;
	uint32_t vlen;
	uint64_t vseed;
};

struct ck_exec {
	void (*op)(struct ck_exec *e, int slot, const struct ck_op *op);
	void (*commit)(struct ck_exec *e); /* slot 0's transaction */
};

static size_t ck_key(unsigned id, uint8_t *k)
{
	return dt_mixed_key("ck", id, CK_BURST, k);
}

static uint32_t ck_vlen(uint64_t *s)
{
	return dt_mixed_vlen(s, 50000, CK_VMAX);
}

static void ck_rand_op(uint64_t *s, int slot, struct ck_op *op)
{
	op->key = (unsigned)slot * CK_RANGE + (unsigned)(tu_rand(s) % CK_RANGE);
	op->del = tu_rand(s) % 5 == 0;
	op->vlen = ck_vlen(s);
	op->vseed = tu_rand(s);
}

static void ck_script(uint64_t seed, struct ck_exec *e)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	struct ck_op op;
	for (unsigned n = 0; n < 12; n++) { /* committed, before the losers */
		unsigned k = 1 + (unsigned)(tu_rand(&s) % 10);
		for (unsigned i = 0; i < k; i++) {
			ck_rand_op(&s, 0, &op);
			e->op(e, 0, &op);
		}
		e->commit(e);
	}
	for (unsigned step = 0; step < 900; step++) {
		unsigned r = (unsigned)(tu_rand(&s) % 10);
		ck_rand_op(&s, r < 6 ? 1 : r < 9 ? 2 : 0, &op);
		e->op(e, r < 6 ? 1 : r < 9 ? 2 : 0, &op);
		if (step == 450)
			for (unsigned j = 0; j < 1200; j++) {
				op = (struct ck_op){.key = CK_BURST + j,
						    .vlen = 20 + (uint32_t)(tu_rand(&s) % 100),
						    .vseed = tu_rand(&s)};
				e->op(e, 1, &op);
			}
		if (step % 150 == 149) { /* a commit: the losers' records so far are durable */
			ck_rand_op(&s, 0, &op);
			e->op(e, 0, &op);
			e->commit(e);
		}
	}
	ck_rand_op(&s, 0, &op);
	e->op(e, 0, &op);
	e->commit(e);
}

/* ---- the child: the script against walden, then the crash ---- */

struct ck_child {
	const char *dir, *jdir; /* jdir: power-loss simulation on */
	uint64_t seed, nth;
	enum ck_mode mode;
};

struct ck_wd {
	struct ck_exec e;
	wd_db *db;
	wd_txn *x[3];
	wd_table *t;
	uint8_t *v;
};

static void ck_die(const char *what, int rc)
{
	fprintf(stderr, "crash child: %s: %s (%s)\n", what, wd_strerror(rc), wd_last_error());
	_exit(4);
}

static void ck_wd_op(struct ck_exec *e, int slot, const struct ck_op *op)
{
	struct ck_wd *w = (struct ck_wd *)e;
	uint8_t k[128];
	size_t kl = ck_key(op->key, k);
	int rc;
	if (!w->x[slot] && ((rc = wd_begin(w->db, &w->x[slot])) != 0 ||
			    (rc = wd_table_open(w->x[slot], "ck", 0, &w->t)) != 0))
		ck_die("begin", rc);
	ot_fill(w->v, op->vlen, op->vseed);
	rc = op->del ? wd_del(w->x[slot], w->t, k, kl)
		     : wd_put(w->x[slot], w->t, k, kl, w->v, op->vlen);
	if (rc != 0 && rc != WD_NOTFOUND)
		ck_die("change", rc);
}

static void ck_wd_commit(struct ck_exec *e)
{
	struct ck_wd *w = (struct ck_wd *)e;
	int rc = wd_commit(w->x[0]); /* synchronous: durable, with all before it */
	w->x[0] = NULL;
	if (rc != 0)
		ck_die("commit", rc);
}

static void ck_child_main(void *arg)
{
	struct ck_child *c = arg;
	struct ck_wd w = {.e = {ck_wd_op, ck_wd_commit}, .v = malloc(CK_VMAX)};
	uint64_t s = c->seed ^ 0x5555;
	wd_options o;
	int rc;
	dt_opts(&o, 1);
	o.buffer_pool_bytes = 128u * PS; /* the losers' pages go to disk */
	if (c->jdir && (rc = storage_sim_start(c->jdir)) != 0)
		ck_die("sim", rc);
	if ((rc = wd_open(c->dir, &o, &w.db)) != 0)
		ck_die("open", rc);
	ck_script(c->seed, &w.e);
	switch (c->mode) {
	case CK_EXIT:
		_exit(0); /* the last commit made every loser record durable */
	case CK_APPLY:
	case CK_CLR:
		storage_crash_arm(c->mode == CK_APPLY ? "undo-after-apply" : "undo-after-clr",
				  c->nth);
		rc = wd_abort(w.x[1]);
		ck_die("the abort did not crash", rc);
		break;
	case CK_COMMIT:
		storage_crash_arm("txn-commit-after-wal-insert", 1);
		rc = wd_commit(w.x[1]);
		ck_die("the commit did not crash", rc);
		break;
	case CK_APPEND:
		storage_crash_arm("undo-after-append", c->nth);
		for (unsigned i = 0; i < 3000; i++) {
			struct ck_op op;
			ck_rand_op(&s, 1, &op);
			op.del = false;
			ck_wd_op(&w.e, 1, &op);
		}
		ck_die("no append crashed", 0);
		break;
	}
	_exit(9);
}

/* A child opening the crashed database dies at the nth hit of point, in
 * the open's own rollback of the losers. */
static const char *oc_dir, *oc_point;
static uint64_t oc_nth;

static void ck_open_crash_main(void *arg)
{
	wd_options o;
	wd_db *db;
	int rc;
	(void)arg;
	dt_opts(&o, 1);
	storage_crash_arm(oc_point, oc_nth);
	rc = wd_open(oc_dir, &o, &db);
	fprintf(stderr, "open-crash child: the open %s without reaching %s #%llu\n",
		rc ? "failed" : "finished", oc_point, (unsigned long long)oc_nth);
	_exit(rc ? 4 : 5);
}

/* ---- the parent: the same script against LMDB ---- */

struct ck_lm {
	struct ck_exec e;
	MDB_txn *mt;
	MDB_dbi dbi;
	uint8_t *v;
	struct ck_op *l1; /* loser 1's operations, in order */
	size_t nl1, cap;
};

static void ck_lm_apply(MDB_txn *mt, MDB_dbi dbi, uint8_t *v, const struct ck_op *op)
{
	uint8_t k[128];
	MDB_val mk = {ck_key(op->key, k), k}, mv = {op->vlen, v};
	if (op->del) {
		int rc = mdb_del(mt, dbi, &mk, NULL);
		assert_true(rc == 0 || rc == MDB_NOTFOUND);
	} else {
		ot_fill(v, op->vlen, op->vseed);
		MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
	}
}

static void ck_lm_op(struct ck_exec *e, int slot, const struct ck_op *op)
{
	struct ck_lm *l = (struct ck_lm *)e;
	if (slot == 0) {
		ck_lm_apply(l->mt, l->dbi, l->v, op);
	} else if (slot == 1) {
		if (l->nl1 == l->cap) {
			l->cap = l->cap ? 2 * l->cap : 1024;
			l->l1 = realloc(l->l1, l->cap * sizeof *l->l1);
		}
		l->l1[l->nl1++] = *op;
	}
}

static void ck_lm_commit(struct ck_exec *e)
{
	(void)e;
}

/* What the open after a crash reports (its trace): losers and steps. */
static uint64_t ck_losers, ck_steps;

static void ck_trace(void *arg, const char *module, const char *line)
{
	const char *p = strstr(line, " loser transactions rolled back, ");
	(void)arg;
	(void)module;
	if (!p)
		return;
	while (p > line && p[-1] != ' ')
		p--;
	unsigned long long n = 0, steps = 0;
	if (sscanf(p, "%llu loser transactions rolled back, %llu undo steps", &n, &steps) == 2) {
		ck_losers += n;
		ck_steps += steps;
	}
}

/* Opens the crashed database (replay, repairs, the losers' rollback) and
 * compares with the oracle: the committed transactions, and with
 * CK_COMMIT possibly loser 1 too (its commit record may have reached the
 * disk). Commits the state found to the oracle. */
static void ck_verify(const char *dir, struct ck_lm *l, ot_oracle *o, enum ck_mode mode,
		      uint64_t *l1_committed)
{
	char diag[512], diag2[512];
	wd_txn *x;
	wd_table *t;
	wd_db *db;
	ck_losers = ck_steps = 0;
	wd_trace_set_callback(ck_trace, NULL);
	OK(wd_trace_enable("recovery"));
	db = dt_open_db(dir, 1);
	OK(wd_trace_enable(""));
	wd_trace_set_callback(NULL, NULL);
	dt_check_all(db);
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, "ck", 0, &t));
	if (!ot_scan_equal(x, t, l->mt, l->dbi, diag, sizeof diag, NULL)) {
		MDB_txn *with = ot_begin(o, l->mt);
		for (size_t i = 0; i < l->nl1; i++)
			ck_lm_apply(with, l->dbi, l->v, &l->l1[i]);
		if (mode != CK_COMMIT || !ot_scan_equal(x, t, with, l->dbi, diag2, sizeof diag2, NULL))
			fail_msg("after the crash (%s): %s%s%s", ck_mode_names[mode], diag,
				 mode == CK_COMMIT ? "; with loser 1 committed: " : "",
				 mode == CK_COMMIT ? diag2 : "");
		MDBOK(mdb_txn_commit(with)); /* loser 1's commit made it */
		(*l1_committed)++;
	}
	OK(wd_commit(x));
	OK(wd_close(db));
}

struct ck_round {
	enum ck_mode mode;
	const char *open_crash; /* a crash point armed in a child's open, or NULL */
	int sim;                /* 0, or power loss: 1 ST_SIM_DROP_ALL, 2 ST_SIM_TORN */
};

static const struct ck_round ck_rounds[] = {
	{CK_EXIT, NULL, 0},
	{CK_APPLY, NULL, 0},
	{CK_CLR, NULL, 0},
	{CK_COMMIT, NULL, 0},
	{CK_APPEND, NULL, 0},
	{CK_EXIT, "undo-after-apply", 0},
	{CK_APPLY, "undo-after-clr", 0},
	{CK_EXIT, NULL, 1},
	{CK_CLR, NULL, 2},
	{CK_COMMIT, "undo-after-apply", 0},
	{CK_EXIT, "undo-after-clr", 0},
	{CK_APPLY, NULL, 1},
	{CK_EXIT, NULL, 2},
	{CK_APPEND, "undo-after-apply", 0},
};

static void test_crash_losers(void **state)
{
	char *root = tu_tmpdir("txn-crash");
	char *dir = tu_path(root, "db"), *odir = tu_path(root, "lmdb");
	char *jdir = tu_path(root, "journal");
	unsigned nrounds = sizeof ck_rounds / sizeof ck_rounds[0];
	uint64_t s = 31337, losers = 0, steps = 0, open_crashes = 0, l1_committed = 0;
	uint64_t lost = 0;
	struct ck_lm l = {.e = {ck_lm_op, ck_lm_commit}, .v = malloc(CK_VMAX)};
	ot_oracle o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	(void)state;
	ot_open(&o, odir);
	l.dbi = ot_dbi(&o, "ck");
	/* the base: every key of the three ranges */
	db = dt_open_db(dir, 1);
	l.mt = ot_begin(&o, NULL);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "ck", WD_CREATE, &t));
	for (unsigned i = 0; i < 3 * CK_RANGE; i++) {
		uint8_t k[128];
		struct ck_op op = {.key = i, .vlen = ck_vlen(&s), .vseed = tu_rand(&s)};
		ot_fill(l.v, op.vlen, op.vseed);
		OK(wd_put(x, t, k, ck_key(i, k), l.v, op.vlen));
		ck_lm_apply(l.mt, l.dbi, l.v, &op);
	}
	OK(wd_commit(x));
	MDBOK(mdb_txn_commit(l.mt));
	OK(wd_close(db));

	for (unsigned r = 0; r < nrounds; r++) {
		const struct ck_round *cr = &ck_rounds[r];
		struct ck_child c = {.dir = dir, .seed = 1000 + r, .mode = cr->mode,
				     .nth = 1 + tu_rand(&s) % (cr->mode == CK_APPEND ? 60 : 1000)};
		int status;
		if (cr->sim) {
			tu_rmrf(jdir);
			assert_int_equal(mkdir(jdir, 0755), 0);
			c.jdir = jdir;
		}
		status = tu_run_child(ck_child_main, &c);
		if (status != (cr->mode == CK_EXIT ? 0 : ST_CRASH_EXIT_CODE))
			fail_msg("round %u (%s): the child exited with %d", r,
				 ck_mode_names[cr->mode], status);
		if (cr->sim) {
			st_sim_opts so = {.mode = cr->sim == 1 ? ST_SIM_DROP_ALL : ST_SIM_TORN,
					  .seed = 77 + r};
			st_sim_report rep;
			OK(storage_sim_materialize(jdir, &so, &rep));
			lost += rep.data_dropped + rep.data_torn;
			storage_sim_report_free(&rep);
		}
		/* the parent's view: the same script on LMDB */
		l.mt = ot_begin(&o, NULL);
		l.nl1 = 0;
		ck_script(c.seed, &l.e);
		if (cr->open_crash) { /* twice: the second resumes the first's work */
			for (int twice = 0; twice < 2; twice++) {
				oc_dir = dir;
				oc_point = cr->open_crash;
				oc_nth = 1 + tu_rand(&s) % 100;
				status = tu_run_child(ck_open_crash_main, NULL);
				if (status != ST_CRASH_EXIT_CODE)
					fail_msg("round %u: the open crashing at %s #%llu exited "
						 "with %d", r, oc_point, (unsigned long long)oc_nth,
						 status);
				open_crashes++;
			}
		}
		ck_verify(dir, &l, &o, cr->mode, &l1_committed);
		MDBOK(mdb_txn_commit(l.mt));
		if (!cr->open_crash && !cr->sim && ck_losers == 0)
			fail_msg("round %u (%s): the open rolled back no loser", r,
				 ck_mode_names[cr->mode]);
		losers += ck_losers;
		steps += ck_steps;
		/* a clean reopen: the same */
		db = dt_open_db(dir, 1);
		ot_compare_committed(db, "ck", &o, l.dbi, "after a clean reopen");
		OK(wd_close(db));
	}
	print_message("crashes: %u rounds, %llu losers rolled back at open (%llu undo steps), "
		      "%llu crashes inside the open's rollback, loser 1's commit durable %llu "
		      "times, %llu unsynced writes lost or torn\n", nrounds,
		      (unsigned long long)losers, (unsigned long long)steps,
		      (unsigned long long)open_crashes, (unsigned long long)l1_committed,
		      (unsigned long long)lost);
	assert_true(losers > 0 && steps > 0 && open_crashes > 0);
	ot_close(&o);
	free(l.v);
	free(l.l1);
	tu_rmrf(root);
	free(dir);
	free(odir);
	free(jdir);
	free(root);
}

/* ---- 6. what waldump shows of an abort ----------------------------------- */

static void test_waldump_abort(void **state)
{
	char *root = tu_tmpdir("txn-dump");
	static char out[1 << 20], err[4096];
	const char *args[] = {"waldump", root, NULL};
	const char *chk[] = {"check", root, NULL};
	char big[3 * PS];
	char undone[32] = "", xid[32] = "";
	unsigned clrs = 0, aborts = 0;
	bool chain_ok = true, ended = false;
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x;
	wd_table *t;
	int rc;
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	dt_put_str(x, t, "old", "value");
	dt_put_str(x, t, "gone", "soon");
	OK(wd_commit(x));
	OK(wd_begin(db, &x));
	dt_put_str(x, t, "new", "1");        /* insert */
	dt_put_str(x, t, "old", "changed");  /* update */
	OK(wd_del(x, t, "gone", 4));      /* delete */
	memset(big, 'b', sizeof big);
	OK(wd_put(x, t, "big", 3, big, sizeof big)); /* on overflow pages */
	OK(wd_abort(x));
	OK(wd_close(db));
	rc = tu_run_tool(args, out, sizeof out, err, sizeof err);
	if (rc != 0)
		fail_msg("waldump: exit %d: %s", rc, err);
	/* the CLRs of the abort, each naming the next one's record, the last
	 * none, then XACT_ABORT of the same transaction */
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char *p;
		if (strstr(line, "UNDO/UNDO_CLR")) {
			char lx[32], u[32], un[32];
			assert_non_null(p = strstr(line, "xid="));
			assert_int_equal(sscanf(p, "xid=%31s", lx), 1);
			assert_non_null(p = strstr(line, "undone="));
			assert_int_equal(sscanf(p, "undone=%31s undo_next=%31s", u, un), 2);
			assert_non_null(strstr(line, " clr "));
			if (clrs == 0)
				strcpy(xid, lx);
			else if (strcmp(lx, xid) != 0 || strcmp(u, undone) != 0)
				chain_ok = false;
			strcpy(undone, un); /* the next CLR undoes this one's next */
			ended = strcmp(un, "none") == 0;
			clrs++;
		} else if (strstr(line, "XACT/XACT_ABORT")) {
			char want[64];
			snprintf(want, sizeof want, "xid=%s ", xid);
			assert_true(clrs > 0 && ended);
			assert_non_null(strstr(line, want));
			assert_non_null(strstr(line, "abort of xid"));
			aborts++;
		}
	}
	assert_int_equal(clrs, 4); /* one per change */
	assert_true(chain_ok);
	assert_int_equal(aborts, 1);
	rc = tu_run_tool(chk, out, sizeof out, err, sizeof err);
	if (rc != 0)
		fail_msg("walden check: exit %d: %s%s", rc, out, err);
	tu_rmrf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abort_restores),
		cmocka_unit_test(test_savepoint_rules),
		cmocka_unit_test(test_savepoints_random),
		cmocka_unit_test(test_million_rollback),
		cmocka_unit_test(test_ended_handles),
		cmocka_unit_test(test_lock_timeout),
		cmocka_unit_test(test_busy_handle),
		cmocka_unit_test(test_deadlock_victim),
		cmocka_unit_test(test_ddl_not_undone),
		cmocka_unit_test(test_crash_losers),
		cmocka_unit_test(test_waldump_abort),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
