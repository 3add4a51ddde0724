/*
 * wl_det.c - the `det` workload: one thread, synchronous commits, a fixed
 * program drawn from the seed, built to reach every structure change a
 * crash can cut (README "Workloads"): long keys so that leaves and
 * internal pages split, values larger than a page, a range delete that
 * empties leaves (page unlinks), two checkpoints, small WAL segments
 * (switches), aborts and savepoint rollbacks, and a transaction left open
 * at the end. `walden crashtest --workload det --describe` counts them.
 */
#include <stdio.h>
#include <string.h>

#include "crashtest/ct_internal.h"

#define DET_KEYS 1500u
#define DET_KLEN 180u
#define DET_BATCH 20u

static void det_options(wd_options *o)
{
	wd_options_default(o);
	o->page_size = 4096;
	o->buffer_pool_bytes = 64u * 4096; /* pages are evicted all the time */
	o->wal_segment_size = 64u << 10;   /* the smallest: segment switches */
	o->wal_buffers_bytes = 1u << 20;
	o->wal_init_zero = 0;
	/* the WAL writer wakes only to prepare segments: the order of I/O calls
	 * stays (nearly) the same from run to run */
	o->wal_writer_delay_ms = 10000;
	o->checkpoint_timeout_s = 3600;     /* checkpoints only where the program says */
	o->max_wal_size_bytes = 1ull << 40;
	o->synchronous_commit = 1;
}

/* Key i: "dNNNNN-" then letters up to DET_KLEN bytes. */
static size_t det_key(unsigned i, uint8_t *k)
{
	int n = snprintf((char *)k, 16, "d%05u-", i);
	for (unsigned j = (unsigned)n; j < DET_KLEN; j++)
		k[j] = (uint8_t)('a' + (i * 7 + j * 3) % 26);
	return DET_KLEN;
}

/* A value's length: mostly small, every 40th larger than a page. */
static uint32_t det_len(uint64_t *rng, bool big)
{
	return big ? 5000 + (uint32_t)(ct_rand(rng) % 4000)
		   : CT_VAL_HDR + (uint32_t)(ct_rand(rng) % 200);
}

struct det {
	ct_run *r;
	uint64_t rng;
	unsigned perm[DET_KEYS];
	unsigned puts;
};

static int put_key(struct det *d, ct_txn *t, unsigned i)
{
	uint8_t k[DET_KLEN];
	size_t kl = det_key(i, k);
	bool big = ++d->puts % 40 == 0;
	int rc = ct_put(t, 0, k, kl, NULL, 0, det_len(&d->rng, big));
	return rc ? ct_give_up(t, "det: put", rc) : 0;
}

static int del_key(ct_txn *t, unsigned i)
{
	uint8_t k[DET_KLEN];
	size_t kl = det_key(i, k);
	int rc = ct_del(t, 0, k, kl);
	return rc && rc != WD_NOTFOUND ? ct_give_up(t, "det: del", rc) : 0;
}

/* Ends t: abort when abort_it, else commit. */
static int finish(struct det *d, ct_txn *t, bool abort_it)
{
	int rc = abort_it ? ct_abort(t) : ct_commit(t);
	return rc ? ct_fail(d->r, abort_it ? "det: abort" : "det: commit", rc) : 0;
}

static int sp(ct_txn *t, const char *name, bool back)
{
	int rc = back ? ct_rollback_to(t, name) : ct_savepoint(t, name);
	return rc ? ct_give_up(t, "det: savepoint", rc) : 0;
}

/* Phase 1: every key in a shuffled order, 20 a transaction; some batches
 * roll back to a savepoint in the middle, some abort. Checkpoint 1 after
 * the 30th batch. */
static int det_load(struct det *d)
{
	ct_txn t;
	int rc;
	for (unsigned b = 0; b < DET_KEYS / DET_BATCH; b++) {
		if ((rc = ct_begin(d->r, &t, true)) != 0)
			return ct_fail(d->r, "det: begin", rc);
		for (unsigned i = 0; i < DET_BATCH; i++) {
			if ((rc = put_key(d, &t, d->perm[b * DET_BATCH + i])) != 0)
				return rc;
			if (b % 6 == 3 && i == 9) { /* 4 puts taken back */
				if ((rc = sp(&t, "half", false)) != 0)
					return rc;
				for (unsigned j = 0; j < 4; j++)
					if ((rc = put_key(d, &t, d->perm[(b * DET_BATCH + 40 + j) %
									   DET_KEYS])) != 0)
						return rc;
				if ((rc = sp(&t, "half", true)) != 0)
					return rc;
			}
		}
		if ((rc = finish(d, &t, b % 9 == 5)) != 0)
			return rc;
		if (b == 30 && (rc = ct_checkpoint(d->r)) != 0)
			return ct_fail(d->r, "det: checkpoint", rc);
	}
	return 0;
}

/* Phase 2: 40 transactions of 8 overwrites (new lengths: tuples move, big
 * values replace small ones and back). */
static int det_update(struct det *d)
{
	ct_txn t;
	int rc;
	for (unsigned n = 0; n < 40; n++) {
		if ((rc = ct_begin(d->r, &t, true)) != 0)
			return ct_fail(d->r, "det: begin", rc);
		for (unsigned i = 0; i < 8; i++) {
			if (n % 4 == 1 && i == 4 && (rc = sp(&t, "upd", false)) != 0)
				return rc;
			if ((rc = put_key(d, &t, (unsigned)(ct_rand(&d->rng) % DET_KEYS))) != 0)
				return rc;
		}
		if (n % 4 == 1 && (rc = sp(&t, "upd", true)) != 0)
			return rc;
		if ((rc = finish(d, &t, n % 4 == 2)) != 0)
			return rc;
	}
	return 0;
}

/* Phase 3: keys 300..699 deleted, 25 a transaction (leaves empty and are
 * unlinked); some transactions abort (the keys come back), some roll back
 * to a savepoint. Checkpoint 2 after. */
static int det_delete(struct det *d)
{
	ct_txn t;
	int rc;
	for (unsigned n = 0; n < 16; n++) {
		if ((rc = ct_begin(d->r, &t, true)) != 0)
			return ct_fail(d->r, "det: begin", rc);
		for (unsigned i = 0; i < 25; i++) {
			if (n % 4 == 3 && i == 20 && (rc = sp(&t, "del", false)) != 0)
				return rc;
			if ((rc = del_key(&t, 300 + n * 25 + i)) != 0)
				return rc;
		}
		if (n % 4 == 3 && (rc = sp(&t, "del", true)) != 0)
			return rc;
		if ((rc = finish(d, &t, n % 5 == 4)) != 0)
			return rc;
	}
	if ((rc = ct_checkpoint(d->r)) != 0)
		return ct_fail(d->r, "det: checkpoint", rc);
	return 0;
}

/* Phase 4: 200 keys of the emptied range back (pages reused), 20 a
 * transaction, two aborted. Phase 5: a transaction left open. */
static int det_refill(struct det *d)
{
	ct_txn t;
	int rc;
	for (unsigned n = 0; n < 10; n++) {
		if ((rc = ct_begin(d->r, &t, true)) != 0)
			return ct_fail(d->r, "det: begin", rc);
		for (unsigned i = 0; i < 20; i++)
			if ((rc = put_key(d, &t, 300 + (n * 20 + i) * 2)) != 0)
				return rc;
		if ((rc = finish(d, &t, n % 5 == 2)) != 0)
			return rc;
	}
	if ((rc = ct_begin(d->r, &t, true)) != 0)
		return ct_fail(d->r, "det: begin", rc);
	for (unsigned i = 0; i < 10; i++)
		if ((rc = put_key(d, &t, (unsigned)(ct_rand(&d->rng) % DET_KEYS))) != 0 ||
		    (rc = del_key(&t, (unsigned)(ct_rand(&d->rng) % DET_KEYS))) != 0)
			return rc;
	ct_leave_open(&t);
	return 0;
}

static int det_run(ct_run *r)
{
	static struct det d; /* one per process; the perm is 6 KB */
	int rc;
	d = (struct det){.r = r, .rng = r->seed ^ 0x5eed0de7u};
	for (unsigned i = 0; i < DET_KEYS; i++)
		d.perm[i] = i;
	for (unsigned i = DET_KEYS - 1; i > 0; i--) {
		unsigned j = (unsigned)(ct_rand(&d.rng) % (i + 1)), tmp = d.perm[i];
		d.perm[i] = d.perm[j];
		d.perm[j] = tmp;
	}
	if ((rc = det_load(&d)) != 0 || (rc = det_update(&d)) != 0 ||
	    (rc = det_delete(&d)) != 0 || (rc = det_refill(&d)) != 0)
		return rc;
	return 0;
}

const ct_workload ct_wl_det = {
	.name = "det",
	.summary = "one thread, a fixed program from the seed: 1500 long keys (leaf and "
		   "internal splits), overwrites, a range delete (page unlinks), values "
		   "over a page, 2 checkpoints, WAL segment switches, aborts and savepoint "
		   "rollbacks, a transaction open at the end",
	.tables = {"det", NULL},
	.threaded = false,
	.options = det_options,
	.run = det_run,
};
