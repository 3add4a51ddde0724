/*
 * oracletest.c - the LMDB oracle helpers of oracletest.h, shared by the
 * suites that compare walden tables with what they must hold.
 */
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
