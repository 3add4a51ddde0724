/*
 * oracle.h - an LMDB database as the oracle of one walden table's committed
 * state, for the crash suites: the test applies every transaction it knows
 * committed, optionally inside a batch it can take back (the one in flight
 * when a child died may or may not have made it), and compares the table
 * with the oracle, in full (or_diff) or as a digest a forked child can
 * check without LMDB (or_digest, or_table_digest).
 */
#ifndef WALDEN_ORACLE_H
#define WALDEN_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "walden.h"

typedef struct or_db or_db;

/* A fresh oracle in directory dir (created; must not hold one yet). Fails
 * the test on an LMDB error. */
or_db *or_open(const char *dir);

/* Closes the oracle (any open batch is dropped) and frees it. */
void or_close(or_db *o);

/* Puts and deletes (a missing key is fine) go into the open batch, if any,
 * else straight into the oracle. */
void or_put(or_db *o, const void *k, size_t klen, const void *v, size_t vlen);
void or_del(or_db *o, const void *k, size_t klen);

/* A batch: a nested LMDB transaction, kept (or_commit) or taken back
 * (or_abort) as a whole. One at a time. */
void or_begin(or_db *o);
void or_commit(or_db *o);
void or_abort(or_db *o);

/*
 * Compares table name of db (a table that does not exist counts as empty)
 * with the oracle, both in key order: NULL if they hold the same keys with
 * the same values, else a malloc'd line describing the first difference.
 */
char *or_diff(or_db *o, wd_db *db, const char *name);

/* Calls fn for every key and value of the oracle, in key order. */
void or_foreach(or_db *o, void (*fn)(void *arg, const void *k, size_t klen, const void *v,
				     size_t vlen),
		void *arg);

/* The number of keys and a 64-bit hash (FNV-1a over each key and value,
 * with their lengths, in key order) of the oracle, and of table name of db
 * (0 and the empty hash if it does not exist; an error is returned). */
void or_digest(or_db *o, uint64_t *count, uint64_t *hash);
int or_table_digest(wd_db *db, const char *name, uint64_t *count, uint64_t *hash);

#endif
