/*
 * undotest.h - what the undo suites (test_undo, test_undo_conc) share: a
 * database directory with a WAL, a pool and the undo log; a model of each
 * chain's records (random kinds, keys and values) appended and read back
 * through the chain; checks that work in cmocka's thread, in a forked
 * crash child and in worker threads alike.
 */
#ifndef WALDEN_UNDOTEST_H
#define WALDEN_UNDOTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bufmgr/bufmgr.h"
#include "undo/undo.h"
#include "wal/redo.h"
#include "wal/wal.h"

#define UT_PS 8192u

/* How a failed check ends: a cmocka failure (the test's own thread), the
 * exit of a forked child (status 3), or abort() (a worker thread, where
 * cmocka must not be called). Per thread; cmocka by default. */
enum { UT_CMOCKA = 0, UT_CHILD, UT_THREAD };
extern _Thread_local int ut_mode;

/* Checks that rc is 0 / that cond holds, failing as ut_mode says. */
void ut_ok(int rc, const char *expr, const char *file, int line);
#define UT_OK(expr) ut_ok((expr), #expr, __FILE__, __LINE__)
#define UT_CHECK(cond) ut_ok((cond) ? 0 : WD_EINVAL, #cond, __FILE__, __LINE__)

/* ---- environment ---- */

typedef struct ut_env {
	char *root, *db, *relpath; /* relpath: DIR/base/3 */
	wal_opts wo;
	wal *w;
	bufmgr *pool;
	wal_log_ctx log;
	undo_log *u;
} ut_env;

/* A fresh scratch root with DIR/base, the rmgrs registered, WAL options
 * (4 MiB segments, 1 MiB buffers, no writer thread); nothing opened. */
void ut_env_paths(ut_env *e, const char *tag);

/* Creates the WAL and opens pool, relation 3 and the undo log. */
void ut_env_start(ut_env *e, uint32_t pool_pages);

/* ut_env_paths + ut_env_start. */
void ut_env_create(ut_env *e, const char *tag, uint32_t pool_pages);

/* Closes everything; clean: pages written and synced first (else, as in a
 * crash, only the WAL inserted so far survives). */
void ut_env_stop(ut_env *e, bool clean);

/* Reopens a stopped environment, the WAL appended at its end. */
void ut_env_reopen(ut_env *e, uint32_t pool_pages);

/* Stops (cleanly) if open, removes the scratch root, frees. */
void ut_env_free(ut_env *e);

/* ---- the model of a chain ---- */

typedef struct ut_rec {
	unsigned kind;
	wd_relid rel;
	uint8_t *key, *val;
	uint32_t klen;
	uint64_t vlen;
	undo_ptr self, prev;
} ut_rec;

typedef struct ut_chain {
	undo_chain c;
	ut_rec *r; /* the live records, oldest first */
	size_t n, cap;
	wd_lsn prev; /* the transaction's last WAL record */
} ut_chain;

void ut_chain_init(ut_chain *mc, wd_xid xid);

/* Drops the model's records from index n on (undone by a rollback). */
void ut_model_cut(ut_chain *mc, size_t n);

/* After a reopen every page is free again (undo_open): forgets the
 * chain's pages, which must not be released twice. */
void ut_forget_pages(ut_chain *mc);

/* Frees the model and releases the chain's pages (if the log is open). */
void ut_chain_free(ut_env *e, ut_chain *mc);

/* len deterministic bytes of seed (malloc'd). */
uint8_t *ut_bytes(uint64_t seed, uint64_t len);

/* A record of random kind and relation with key and value lengths given
 * (contents random), or all random (keys 0..299 bytes, values from empty
 * to several pages). */
ut_rec ut_make_rec(uint64_t *rng, uint32_t klen, uint64_t vlen);
ut_rec ut_rand_rec(uint64_t *rng);

/* Appends m to mc (the model takes m's buffers); its pointer. */
undo_ptr ut_append(ut_env *e, ut_chain *mc, ut_rec m);

/* true if r holds m's kind, relation, key and value. */
bool ut_same_content(const undo_rec *r, const ut_rec *m);

/* Reads the chain from head through the prev pointers: the model's
 * records, newest first, then the end. */
void ut_check_chain(ut_env *e, const ut_chain *mc);

/* Writes XACT_COMMIT or XACT_ABORT of xid, prev *prev (then its LSN). */
void ut_log_xact(ut_env *e, wd_xid xid, unsigned type, wd_lsn *prev);

/* Replays the log of e (stopped) from `from` into ROOT/replica through the
 * redo routines (*st, may be NULL: the counters) and checks that relation 3
 * there equals e's page by page. */
void ut_replay_same(ut_env *e, wd_lsn from, redo_ctx *st);

/* A rollback callback that does nothing. */
int ut_no_apply(void *arg, const undo_rec *r);

#endif
