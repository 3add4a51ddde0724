/*
 * oracletest.c - the LMDB oracle helpers of oracletest.h, shared by the
 * suites that compare walden tables with what they must hold.
 */
#define _GNU_SOURCE
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/testutil.h"

void ot_fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = tu_rand(&s);
		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

/* The first bytes of a key, in hex, for messages. */
static const char *hex(const void *p, size_t n, char out[64])
{
	const uint8_t *b = p;
	size_t i, m = n < 24 ? n : 24;
	for (i = 0; i < m; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	out[2 * i] = 0;
	return out;
}

/* The environment in dir, which exists. */
void ot_reopen(ot_oracle *o, const char *dir)
{
	MDBOK(mdb_env_create(&o->env));
	MDBOK(mdb_env_set_mapsize(o->env, 16ull << 30));
	MDBOK(mdb_env_set_maxdbs(o->env, 64));
	MDBOK(mdb_env_open(o->env, dir, MDB_NOSYNC | MDB_NOMETASYNC, 0644));
}

void ot_open(ot_oracle *o, const char *dir)
{
	assert_int_equal(mkdir(dir, 0755), 0);
	ot_reopen(o, dir);
}

void ot_close(ot_oracle *o)
{
	mdb_env_close(o->env);
}

/* A write transaction of the oracle (nested in parent if not NULL). */
MDB_txn *ot_begin(ot_oracle *o, MDB_txn *parent)
{
	MDB_txn *t;
	MDBOK(mdb_txn_begin(o->env, parent, 0, &t));
	return t;
}

/* The oracle's table called name, created if absent. */
MDB_dbi ot_dbi(ot_oracle *o, const char *name)
{
	MDB_txn *t = ot_begin(o, NULL);
	MDB_dbi d;
	MDBOK(mdb_dbi_open(t, name, MDB_CREATE, &d));
	MDBOK(mdb_txn_commit(t));
	return d;
}

/*
 * Walks t through x with a cursor and dbi of mt with an LMDB cursor side by
 * side: true if they hold the same keys with the same values. On the first
 * difference diag says what. *items: the items compared.
 */
bool ot_scan_equal(wd_txn *x, wd_table *t, MDB_txn *mt, MDB_dbi dbi, char *diag,
		   size_t dcap, uint64_t *items)
{
	MDB_cursor *mc;
	MDB_val mk, mv;
	wd_cursor *c;
	const void *wk, *wv;
	size_t wkl, wvl;
	uint64_t i = 0;
	char h1[64], h2[64];
	bool eq = false;
	int m, rc;
	MDBOK(mdb_cursor_open(mt, dbi, &mc));
	OK(wd_cursor_open(x, t, &c));
	m = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST);
	for (;; i++) {
		rc = wd_cursor_next(c, &wk, &wkl, &wv, &wvl);
		if (rc != 0 && rc != WD_NOTFOUND)
			fail_msg("scan item %llu: %s (%s)", (unsigned long long)i,
				 wd_strerror(rc), wd_last_error());
		if (m == MDB_NOTFOUND && rc == WD_NOTFOUND) {
			eq = true;
			break;
		}
		if (m == MDB_NOTFOUND) {
			snprintf(diag, dcap, "item %llu: walden has an extra key %s (%zu bytes)",
				 (unsigned long long)i, hex(wk, wkl, h1), wkl);
			break;
		}
		if (rc == WD_NOTFOUND) {
			snprintf(diag, dcap, "item %llu: walden lacks key %s (%zu bytes)",
				 (unsigned long long)i, hex(mk.mv_data, mk.mv_size, h1), mk.mv_size);
			break;
		}
		if (wkl != mk.mv_size || memcmp(wk, mk.mv_data, wkl) != 0) {
			snprintf(diag, dcap, "item %llu: walden has key %s (%zu bytes), the oracle "
				 "%s (%zu bytes)", (unsigned long long)i, hex(wk, wkl, h1), wkl,
				 hex(mk.mv_data, mk.mv_size, h2), mk.mv_size);
			break;
		}
		if (wvl != mv.mv_size || memcmp(wv, mv.mv_data, wvl) != 0) {
			snprintf(diag, dcap, "item %llu: key %s: walden's value has %zu bytes, "
				 "the oracle's %zu%s", (unsigned long long)i, hex(wk, wkl, h1), wvl,
				 mv.mv_size, wvl == mv.mv_size ? " (contents differ)" : "");
			break;
		}
		m = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT);
	}
	wd_cursor_close(c);
	mdb_cursor_close(mc);
	if (items)
		*items = i;
	return eq;
}

/* The committed contents of table name equal dbi of the oracle (read by a
 * read-only transaction). Returns the number of items. */
uint64_t ot_compare_committed(wd_db *db, const char *name, ot_oracle *o, MDB_dbi dbi,
			      const char *when)
{
	char diag[512];
	uint64_t items = 0;
	MDB_txn *mt = ot_begin(o, NULL);
	wd_txn *x;
	wd_table *t;
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, name, 0, &t));
	if (!ot_scan_equal(x, t, mt, dbi, diag, sizeof diag, &items))
		fail_msg("table %s %s: %s", name, when, diag);
	OK(wd_commit(x));
	mdb_txn_abort(mt);
	return items;
}

/* ---- one table's committed state ---------------------------------------- */

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

struct ot_state {
	ot_oracle env;
	MDB_txn *main, *batch;
	MDB_dbi dbi;
};

ot_state *ot_state_open(const char *dir)
{
	ot_state *o = calloc(1, sizeof *o);
	assert_non_null(o);
	ot_open(&o->env, dir);
	o->main = ot_begin(&o->env, NULL);
	MDBOK(mdb_dbi_open(o->main, NULL, 0, &o->dbi));
	return o;
}

void ot_state_close(ot_state *o)
{
	if (o->batch)
		mdb_txn_abort(o->batch);
	mdb_txn_abort(o->main);
	ot_close(&o->env);
	free(o);
}

/* The transaction changes go into: the batch, if one is open. */
static MDB_txn *cur(ot_state *o)
{
	return o->batch ? o->batch : o->main;
}

void ot_state_put(ot_state *o, const void *k, size_t klen, const void *v, size_t vlen)
{
	MDB_val mk = {klen, (void *)k}, mv = {vlen, (void *)v};
	MDBOK(mdb_put(cur(o), o->dbi, &mk, &mv, 0));
}

void ot_state_del(ot_state *o, const void *k, size_t klen)
{
	MDB_val mk = {klen, (void *)k};
	int m = mdb_del(cur(o), o->dbi, &mk, NULL);
	if (m != 0 && m != MDB_NOTFOUND)
		fail_msg("mdb_del: %s", mdb_strerror(m));
}

void ot_batch_begin(ot_state *o)
{
	assert_null(o->batch);
	o->batch = ot_begin(&o->env, o->main);
}

void ot_batch_commit(ot_state *o)
{
	assert_non_null(o->batch);
	MDBOK(mdb_txn_commit(o->batch));
	o->batch = NULL;
}

void ot_batch_abort(ot_state *o)
{
	assert_non_null(o->batch);
	mdb_txn_abort(o->batch);
	o->batch = NULL;
}

/* The state must be empty (the walden table does not exist): NULL, or a
 * line naming its first key. */
static char *expect_empty(ot_state *o)
{
	MDB_cursor *mc;
	MDB_val mk, mv;
	char h[64], *msg = NULL;
	MDBOK(mdb_cursor_open(cur(o), o->dbi, &mc));
	if (mdb_cursor_get(mc, &mk, &mv, MDB_FIRST) == 0)
		(void)!asprintf(&msg, "item 0: walden has no table, the oracle has key %s "
			       "(%zu bytes)", hex(mk.mv_data, mk.mv_size, h), mk.mv_size);
	mdb_cursor_close(mc);
	return msg;
}

char *ot_state_diff(ot_state *o, wd_db *db, const char *name)
{
	char diag[512], *msg = NULL;
	wd_table *t;
	wd_txn *x;
	int rc;
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	rc = wd_table_open(x, name, 0, &t);
	if (rc != 0 && rc != WD_NOTFOUND)
		fail_msg("table %s: %s (%s)", name, wd_strerror(rc), wd_last_error());
	if (rc == WD_NOTFOUND)
		msg = expect_empty(o);
	else if (!ot_scan_equal(x, t, cur(o), o->dbi, diag, sizeof diag, NULL))
		assert_non_null(msg = strdup(diag));
	OK(wd_commit(x));
	return msg;
}

/* FNV-1a of n bytes, preceded by n as 8 little-endian bytes. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (int i = 0; i < 8; i++)
		h = (h ^ (((uint64_t)n >> (8 * i)) & 0xff)) * FNV_PRIME;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

void ot_state_foreach(ot_state *o,
		      void (*fn)(void *arg, const void *k, size_t klen, const void *v,
				 size_t vlen),
		      void *arg)
{
	MDB_cursor *mc;
	MDB_val mk, mv;
	MDBOK(mdb_cursor_open(cur(o), o->dbi, &mc));
	for (int m = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST); m == 0;
	     m = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT))
		fn(arg, mk.mv_data, mk.mv_size, mv.mv_data, mv.mv_size);
	mdb_cursor_close(mc);
}

struct digest {
	uint64_t count, hash;
};

static void digest_one(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
	struct digest *d = arg;
	d->hash = hash_bytes(hash_bytes(d->hash, k, klen), v, vlen);
	d->count++;
}

void ot_state_digest(ot_state *o, uint64_t *count, uint64_t *hash)
{
	struct digest d = {0, FNV_BASIS};
	ot_state_foreach(o, digest_one, &d);
	*count = d.count;
	*hash = d.hash;
}

int ot_table_digest(wd_db *db, const char *name, uint64_t *count, uint64_t *hash)
{
	struct digest d = {0, FNV_BASIS};
	const void *k, *v;
	size_t kl, vl;
	wd_cursor *c = NULL;
	wd_table *t;
	wd_txn *x;
	int rc = wd_begin(db, &x);
	*count = 0;
	*hash = FNV_BASIS;
	if (rc != 0)
		return rc;
	rc = wd_table_open(x, name, 0, &t);
	if (rc == 0)
		rc = wd_cursor_open(x, t, &c);
	while (rc == 0 && (rc = wd_cursor_next(c, &k, &kl, &v, &vl)) == 0)
		digest_one(&d, k, kl, v, vl);
	*count = d.count;
	*hash = d.hash;
	if (c)
		wd_cursor_close(c);
	if (rc == WD_NOTFOUND)
		rc = 0;
	if (rc != 0) {
		(void)wd_abort(x);
		return rc;
	}
	return wd_commit(x);
}
