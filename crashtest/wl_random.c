/*
 * wl_random.c - the `random` workload: 1-4 threads of short transactions
 * on one shared key space (lock waits and deadlock victims), durable
 * commits from several threads at once (group commit), asynchronous
 * commits left to the WAL writer, savepoint rollbacks, aborts, values up to
 * three pages, checkpoints from thread 0 and from the checkpointer (by WAL
 * volume), and a transaction open at the end (README "Workloads").
 */
#include <stdio.h>
#include <string.h>

#include "crashtest/ct_internal.h"

#define RND_KEYS 400u
#define RND_TXNS 90u /* per thread */

static void random_options(wd_options *o)
{
	wd_options_default(o);
	o->page_size = 4096;
	o->buffer_pool_bytes = 96u * 4096;
	o->wal_segment_size = 256u << 10;
	o->wal_buffers_bytes = 1u << 20;
	o->wal_init_zero = 0;
	o->wal_writer_delay_ms = 2;        /* asynchronous commits: 6 ms window */
	o->commit_delay_us = 200;          /* group commit: wait for siblings */
	o->commit_siblings = 1;
	o->checkpoint_timeout_s = 3600;
	o->max_wal_size_bytes = 384u << 10; /* the checkpointer runs by volume */
	o->synchronous_commit = 1;
}

static size_t rnd_key(uint64_t *rng, uint8_t *k)
{
	unsigned i = (unsigned)(ct_rand(rng) % RND_KEYS);
	int n = snprintf((char *)k, 32, "r%04u", i);
	for (unsigned j = 0; j < i % 24; j++) /* lengths 5..28 */
		k[n + j] = (uint8_t)('a' + (i + j) % 26);
	return (size_t)n + i % 24;
}

static uint32_t rnd_len(uint64_t *rng)
{
	uint64_t x = ct_rand(rng) % 100;
	if (x < 3)
		return 5000 + (uint32_t)(ct_rand(rng) % 7000);
	return CT_VAL_HDR + (uint32_t)(ct_rand(rng) % 280);
}

/* One operation of t: put (60%), del (25%) or get. */
static int rnd_op(ct_txn *t, uint64_t *rng)
{
	uint8_t k[64], p[CT_MAX_PAYLOAD];
	size_t kl = rnd_key(rng, k);
	uint64_t x = ct_rand(rng) % 100;
	uint32_t pl;
	int rc;
	if (x < 60)
		return ct_put(t, 0, k, kl, NULL, 0, rnd_len(rng));
	rc = x < 85 ? ct_del(t, 0, k, kl) : ct_get(t, 0, k, kl, p, sizeof p, &pl);
	return rc == WD_NOTFOUND ? 0 : rc;
}

/* One transaction; a deadlock victim is aborted. */
static int rnd_txn(ct_run *r, uint64_t *rng, bool leave_open)
{
	bool sync = ct_rand(rng) % 4 != 0, use_sp = ct_rand(rng) % 7 == 0;
	unsigned nops = 1 + (unsigned)(ct_rand(rng) % 6);
	ct_txn t;
	int rc;
	if ((rc = ct_begin(r, &t, sync)) != 0)
		return ct_fail(r, "random: begin", rc);
	for (unsigned i = 0; i < nops; i++) {
		if (use_sp && i == 1 && (rc = ct_savepoint(&t, "sp")) != 0)
			break;
		if ((rc = rnd_op(&t, rng)) != 0)
			break;
	}
	if (rc == 0 && use_sp && nops > 1)
		rc = ct_rollback_to(&t, "sp");
	if (rc == WD_EDEADLOCK)
		return (rc = ct_abort(&t)) ? ct_fail(r, "random: abort", rc) : 0;
	if (rc != 0)
		return ct_give_up(&t, "random: operation", rc);
	if (leave_open) {
		ct_leave_open(&t);
		return 0;
	}
	if (ct_rand(rng) % 10 == 0)
		return (rc = ct_abort(&t)) ? ct_fail(r, "random: abort", rc) : 0;
	return (rc = ct_commit(&t)) ? ct_fail(r, "random: commit", rc) : 0;
}

static int random_thread(ct_run *r, int th)
{
	uint64_t rng = r->seed * 31 + (uint64_t)th * 0x9E3779B9u + 1;
	int rc;
	for (unsigned n = 0; n < RND_TXNS; n++) {
		if ((rc = rnd_txn(r, &rng, false)) != 0)
			return rc;
		if (th == 0 && n % 30 == 29 && (rc = ct_checkpoint(r)) != 0)
			return ct_fail(r, "random: checkpoint", rc);
	}
	return 0;
}

/* The threads, then a transaction left open (after they end: its locks
 * would keep them waiting for ever). */
static int random_run(ct_run *r)
{
	uint64_t rng = r->seed * 37 + 5;
	int rc = ct_run_threads(r, random_thread);
	return rc ? rc : rnd_txn(r, &rng, true);
}

const ct_workload ct_wl_random = {
	.name = "random",
	.summary = "1-4 threads of short transactions on shared keys from the seed: "
		   "durable commits grouped, asynchronous commits, deadlock victims, "
		   "savepoint rollbacks, aborts, values up to 3 pages, checkpoints by "
		   "hand and by WAL volume",
	.tables = {"random", NULL},
	.threaded = true,
	.options = random_options,
	.run = random_run,
};
