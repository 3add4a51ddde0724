/*
 * wl_bank.c - the two workloads with an invariant of their own, checked
 * on every recovered state besides the oracle (README "Workloads"):
 *  - `bank`: 40 accounts of 1000 in a prepared base; transactions move a
 *    random amount between two of them; the total stays 40,000.
 *  - `ring`: 30 nodes, each pointing at the next, in a prepared base; a
 *    transaction takes a node out and puts it back after another one,
 *    moving three pointers; the nodes stay one ring.
 * Both read before they write, so with several threads deadlock victims
 * are common: they are aborted and retried.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashtest/ct_internal.h"

#define BANK_N 40u
#define BANK_START 1000
#define BANK_TXNS 60u /* per thread */
#define RING_N 30u
#define RING_TXNS 50u

static void inv_options(wd_options *o)
{
	wd_options_default(o);
	o->page_size = 4096;
	o->buffer_pool_bytes = 32u * 4096;
	o->wal_segment_size = 128u << 10;
	o->wal_buffers_bytes = 1u << 20;
	o->wal_init_zero = 0;
	o->wal_writer_delay_ms = 1; /* asynchronous commits: 3 ms window */
	o->commit_delay_us = 100;
	o->commit_siblings = 1;
	o->checkpoint_timeout_s = 3600;
	o->max_wal_size_bytes = 256u << 10;
	o->synchronous_commit = 1;
}

static size_t name_of(const char *fmt, unsigned i, uint8_t *k)
{
	return (size_t)snprintf((char *)k, 16, fmt, i);
}

/* Reads an integer payload of k. */
static int get_num(ct_txn *t, const char *fmt, unsigned i, long long *v)
{
	uint8_t k[16], p[CT_MAX_PAYLOAD + 1];
	uint32_t pl;
	int rc = ct_get(t, 0, k, name_of(fmt, i, k), p, CT_MAX_PAYLOAD, &pl);
	if (rc != 0)
		return rc;
	p[pl] = 0;
	*v = atoll((const char *)p);
	return 0;
}

static int put_num(ct_txn *t, const char *fmt, unsigned i, long long v, uint64_t *rng)
{
	uint8_t k[16];
	char p[32];
	int pl = snprintf(p, sizeof p, "%lld", v);
	return ct_put(t, 0, k, name_of(fmt, i, k), p, (uint32_t)pl,
		      CT_VAL_HDR + (uint32_t)pl + (uint32_t)(ct_rand(rng) % 80));
}

/* One transaction body (bank: a transfer; ring: a move); retried while it
 * is a deadlock victim. */
typedef int (*body_fn)(ct_txn *t, uint64_t *rng);

static int retry_txn(ct_run *r, uint64_t *rng, body_fn body, bool leave_open)
{
	for (int tries = 0; tries < 100; tries++) {
		bool sync = ct_rand(rng) % 5 != 0, abort_it = ct_rand(rng) % 12 == 0;
		ct_txn t;
		int rc;
		if ((rc = ct_begin(r, &t, sync)) != 0)
			return ct_fail(r, "begin", rc);
		rc = body(&t, rng);
		if (rc == WD_EDEADLOCK) {
			if ((rc = ct_abort(&t)) != 0)
				return ct_fail(r, "abort", rc);
			continue;
		}
		if (rc != 0)
			return ct_give_up(&t, r->wl->name, rc);
		if (leave_open) {
			ct_leave_open(&t);
			return 0;
		}
		rc = abort_it ? ct_abort(&t) : ct_commit(&t);
		return rc ? ct_fail(r, abort_it ? "abort" : "commit", rc) : 0;
	}
	return ct_fail(r, "a transaction was a deadlock victim 100 times", WD_EDEADLOCK);
}

/* ---- bank ---------------------------------------------------------------- */

static int bank_prepare(ct_run *r)
{
	uint64_t rng = r->seed;
	ct_txn t;
	int rc;
	if ((rc = ct_begin(r, &t, true)) != 0)
		return ct_fail(r, "bank: begin", rc);
	for (unsigned i = 0; i < BANK_N; i++)
		if ((rc = put_num(&t, "acct-%03u", i, BANK_START, &rng)) != 0)
			return ct_give_up(&t, "bank: put", rc);
	return (rc = ct_commit(&t)) ? ct_fail(r, "bank: commit", rc) : 0;
}

static int transfer(ct_txn *t, uint64_t *rng)
{
	unsigned a = (unsigned)(ct_rand(rng) % BANK_N);
	unsigned b = (a + 1 + (unsigned)(ct_rand(rng) % (BANK_N - 1))) % BANK_N;
	long long amount = 1 + (long long)(ct_rand(rng) % 100), va, vb;
	int rc;
	if ((rc = get_num(t, "acct-%03u", a, &va)) != 0 ||
	    (rc = get_num(t, "acct-%03u", b, &vb)) != 0 ||
	    (rc = put_num(t, "acct-%03u", a, va - amount, rng)) != 0)
		return rc;
	return put_num(t, "acct-%03u", b, vb + amount, rng);
}

static int bank_thread(ct_run *r, int th)
{
	uint64_t rng = r->seed * 131 + (uint64_t)th * 0x9E3779B9u + 7;
	int rc;
	for (unsigned n = 0; n < BANK_TXNS; n++)
		if ((rc = retry_txn(r, &rng, transfer, false)) != 0)
			return rc;
	return 0;
}

/* The threads, then a transfer left open (after they end: its locks would
 * keep them waiting for ever). */
static int bank_run(ct_run *r)
{
	uint64_t rng = r->seed * 139 + 3;
	int rc = ct_run_threads(r, bank_thread);
	return rc ? rc : retry_txn(r, &rng, transfer, true);
}

/* The payload of row i of rows as a number; false if it does not decode. */
static bool row_num(const ct_kv *row, long long *v)
{
	char p[CT_MAX_PAYLOAD + 1];
	const char *why;
	ct_tag tag;
	if (!row->present || !ct_value_check(row->k, row->klen, row->v, row->vlen, &tag, &why) ||
	    tag.plen > CT_MAX_PAYLOAD)
		return false;
	memcpy(p, tag.payload, tag.plen);
	p[tag.plen] = 0;
	*v = atoll(p);
	return true;
}

/* The rows of table name, in key order, into out (pointers into rows). */
static size_t table_rows(const ct_kvset *rows, const char *name, const ct_kv **out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < rows->n; i++) {
		char t[256];
		const uint8_t *k;
		size_t kl;
		if (ct_ckey_split(rows->kv[i].k, rows->kv[i].klen, t, &k, &kl) &&
		    strcmp(t, name) == 0) {
			if (n < cap)
				out[n] = &rows->kv[i];
			n++;
		}
	}
	return n;
}

static int bank_invariant(const ct_kvset *rows, char *msg, size_t cap)
{
	const ct_kv *acct[BANK_N];
	size_t n = table_rows(rows, "bank", acct, BANK_N);
	long long total = 0, v;
	if (n != BANK_N) {
		snprintf(msg, cap, "bank: %zu accounts, expected %u", n, BANK_N);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!row_num(acct[i], &v)) {
			snprintf(msg, cap, "bank: account %zu does not decode", i);
			return 1;
		}
		total += v;
	}
	if (total != (long long)BANK_N * BANK_START) {
		snprintf(msg, cap, "bank: the balances add up to %lld, expected %lld", total,
			 (long long)BANK_N * BANK_START);
		return 1;
	}
	return 0;
}

const ct_workload ct_wl_bank = {
	.name = "bank",
	.summary = "40 accounts of 1000 (prepared base); 1-4 threads transfer random "
		   "amounts (read, then write both), deadlock victims retried; after every "
		   "crash the balances must still add up to 40000",
	.tables = {"bank", NULL},
	.threaded = true,
	.options = inv_options,
	.prepare = bank_prepare,
	.run = bank_run,
	.invariant = bank_invariant,
};

/* ---- ring ----------------------------------------------------------------- */

static int ring_prepare(ct_run *r)
{
	uint64_t rng = r->seed;
	ct_txn t;
	int rc;
	if ((rc = ct_begin(r, &t, true)) != 0)
		return ct_fail(r, "ring: begin", rc);
	for (unsigned i = 0; i < RING_N; i++)
		if ((rc = put_num(&t, "node-%03u", i, (i + 1) % RING_N, &rng)) != 0)
			return ct_give_up(&t, "ring: put", rc);
	return (rc = ct_commit(&t)) ? ct_fail(r, "ring: commit", rc) : 0;
}

/* Takes b = next(a) out and puts it after y: a->c, y->b, b->z. */
static int ring_move(ct_txn *t, uint64_t *rng)
{
	unsigned a = (unsigned)(ct_rand(rng) % RING_N), y;
	long long b, c, z;
	int rc;
	if ((rc = get_num(t, "node-%03u", a, &b)) != 0 ||
	    (rc = get_num(t, "node-%03u", (unsigned)b, &c)) != 0)
		return rc;
	do
		y = (unsigned)(ct_rand(rng) % RING_N);
	while (y == a || y == (unsigned)b);
	if ((rc = get_num(t, "node-%03u", y, &z)) != 0 ||
	    (rc = put_num(t, "node-%03u", a, c, rng)) != 0 ||
	    (rc = put_num(t, "node-%03u", y, b, rng)) != 0)
		return rc;
	return put_num(t, "node-%03u", (unsigned)b, z, rng);
}

static int ring_thread(ct_run *r, int th)
{
	uint64_t rng = r->seed * 137 + (uint64_t)th * 0x9E3779B9u + 11;
	int rc;
	for (unsigned n = 0; n < RING_TXNS; n++)
		if ((rc = retry_txn(r, &rng, ring_move, false)) != 0)
			return rc;
	return 0;
}

static int ring_run(ct_run *r)
{
	uint64_t rng = r->seed * 149 + 3;
	int rc = ct_run_threads(r, ring_thread);
	return rc ? rc : retry_txn(r, &rng, ring_move, true);
}

static int ring_invariant(const ct_kvset *rows, char *msg, size_t cap)
{
	const ct_kv *node[RING_N];
	bool seen[RING_N] = {false};
	size_t n = table_rows(rows, "ring", node, RING_N);
	long long at = 0, next;
	if (n != RING_N) {
		snprintf(msg, cap, "ring: %zu nodes, expected %u", n, RING_N);
		return 1;
	}
	for (unsigned step = 0; step < RING_N; step++) {
		seen[at] = true;
		if (!row_num(node[at], &next) || next < 0 || next >= RING_N) {
			snprintf(msg, cap, "ring: node %lld points nowhere", at);
			return 1;
		}
		if (seen[next] && !(step == RING_N - 1 && next == 0)) {
			snprintf(msg, cap, "ring: from node 0, node %lld comes back after %u "
				 "steps: not one ring of %u", next, step + 1, RING_N);
			return 1;
		}
		at = next;
	}
	if (at != 0) {
		snprintf(msg, cap, "ring: %u steps from node 0 end at node %lld", RING_N, at);
		return 1;
	}
	return 0;
}

const ct_workload ct_wl_ring = {
	.name = "ring",
	.summary = "30 nodes each pointing at the next (prepared base); 1-4 threads move "
		   "a node elsewhere (three pointers a transaction), deadlock victims "
		   "retried; after every crash the nodes must still form one ring",
	.tables = {"ring", NULL},
	.threaded = true,
	.options = inv_options,
	.prepare = ring_prepare,
	.run = ring_run,
	.invariant = ring_invariant,
};
