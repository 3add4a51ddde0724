/*
 * oracle.c - see oracle.h. One long write transaction holds the oracle's
 * state (MDB_NOSYNC: it only has to outlive the test process); a batch is
 * a nested transaction inside it.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <lmdb.h>
#include <cmocka.h>

#include "tests/lib/dbtest.h"
#include "tests/lib/oracle.h"

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

struct or_db {
	MDB_env *env;
	MDB_txn *main, *batch;
	MDB_dbi dbi;
};

or_db *or_open(const char *dir)
{
	or_db *o = calloc(1, sizeof *o);
	assert_non_null(o);
	assert_int_equal(mkdir(dir, 0755), 0);
	MDBOK(mdb_env_create(&o->env));
	MDBOK(mdb_env_set_mapsize(o->env, 4ull << 30));
	MDBOK(mdb_env_open(o->env, dir, MDB_NOSYNC | MDB_NOMETASYNC, 0644));
	MDBOK(mdb_txn_begin(o->env, NULL, 0, &o->main));
	MDBOK(mdb_dbi_open(o->main, NULL, 0, &o->dbi));
	return o;
}

void or_close(or_db *o)
{
	if (o->batch)
		mdb_txn_abort(o->batch);
	mdb_txn_abort(o->main);
	mdb_env_close(o->env);
	free(o);
}

static MDB_txn *cur(or_db *o)
{
	return o->batch ? o->batch : o->main;
}

void or_put(or_db *o, const void *k, size_t klen, const void *v, size_t vlen)
{
	MDB_val mk = {klen, (void *)k}, mv = {vlen, (void *)v};
	MDBOK(mdb_put(cur(o), o->dbi, &mk, &mv, 0));
}

void or_del(or_db *o, const void *k, size_t klen)
{
	MDB_val mk = {klen, (void *)k};
	int m = mdb_del(cur(o), o->dbi, &mk, NULL);
	if (m != 0 && m != MDB_NOTFOUND)
		fail_msg("mdb_del: %s", mdb_strerror(m));
}

void or_begin(or_db *o)
{
	assert_null(o->batch);
	MDBOK(mdb_txn_begin(o->env, o->main, 0, &o->batch));
}

void or_commit(or_db *o)
{
	assert_non_null(o->batch);
	MDBOK(mdb_txn_commit(o->batch));
	o->batch = NULL;
}

void or_abort(or_db *o)
{
	assert_non_null(o->batch);
	mdb_txn_abort(o->batch);
	o->batch = NULL;
}

/* A key for messages: printable bytes as they are, others as \xNN. */
static void show(const void *p, size_t n, char *out, size_t cap)
{
	const unsigned char *b = p;
	size_t j = 0;
	for (size_t i = 0; i < n && j + 5 < cap; i++)
		j += (size_t)snprintf(out + j, cap - j, b[i] >= 32 && b[i] < 127 ? "%c" : "\\x%02x",
				      b[i]);
	out[j] = 0;
}

/* Orders keys as walden and LMDB both do: memcmp, then shorter first. */
static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* The first difference between the walden cursor c (NULL: empty table)
 * and the oracle, or NULL. */
static char *first_difference(or_db *o, wd_cursor *c)
{
	const void *wk = NULL, *wv = NULL;
	size_t wkl = 0, wvl = 0;
	MDB_cursor *mc;
	MDB_val mk, mv;
	char *msg = NULL, ks[128];
	int w = c ? wd_cursor_next(c, &wk, &wkl, &wv, &wvl) : WD_NOTFOUND;
	int m;
	MDBOK(mdb_cursor_open(cur(o), o->dbi, &mc));
	m = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST);
	for (uint64_t i = 0; !msg; i++) {
		int order;
		if (w != 0 && w != WD_NOTFOUND) {
			(void)!asprintf(&msg, "walden cursor: %s (%s)", wd_strerror(w), wd_last_error());
			break;
		}
		if (w == WD_NOTFOUND && m == MDB_NOTFOUND)
			break;
		order = w == WD_NOTFOUND ? 1 : m == MDB_NOTFOUND ? -1
					   : key_cmp(wk, wkl, mk.mv_data, mk.mv_size);
		if (order < 0)
			show(wk, wkl, ks, sizeof ks);
		else
			show(mk.mv_data, mk.mv_size, ks, sizeof ks);
		if (order < 0)
			(void)!asprintf(&msg, "key %llu '%s': in walden only", (unsigned long long)i, ks);
		else if (order > 0)
			(void)!asprintf(&msg, "key %llu '%s': in the oracle only", (unsigned long long)i, ks);
		else if (wvl != mv.mv_size || memcmp(wv, mv.mv_data, wvl) != 0)
			(void)!asprintf(&msg, "key %llu '%s': walden has %zu bytes, the oracle %zu%s",
					(unsigned long long)i, ks, wvl, mv.mv_size,
					wvl == mv.mv_size ? " (other bytes)" : "");
		w = wd_cursor_next(c, &wk, &wkl, &wv, &wvl);
		m = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT);
	}
	mdb_cursor_close(mc);
	return msg;
}

char *or_diff(or_db *o, wd_db *db, const char *name)
{
	wd_cursor *c = NULL;
	wd_table *t;
	wd_txn *x;
	char *msg;
	int rc;
	OK(wd_begin(db, &x));
	rc = wd_table_open(x, name, 0, &t);
	if (rc != 0 && rc != WD_NOTFOUND)
		fail_msg("table %s: %s (%s)", name, wd_strerror(rc), wd_last_error());
	if (rc == 0)
		OK(wd_cursor_open(x, t, &c));
	msg = first_difference(o, c);
	if (c)
		wd_cursor_close(c);
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

void or_foreach(or_db *o, void (*fn)(void *arg, const void *k, size_t klen, const void *v,
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

void or_digest(or_db *o, uint64_t *count, uint64_t *hash)
{
	struct digest d = {0, FNV_BASIS};
	or_foreach(o, digest_one, &d);
	*count = d.count;
	*hash = d.hash;
}

int or_table_digest(wd_db *db, const char *name, uint64_t *count, uint64_t *hash)
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
