/*
 * txn_workloads.c - the workloads of `walden bench txn`, each run inside
 * one forked child on one engine (see bench_txn.c for what they measure):
 * txn_rollback_job (one transaction of n changes, then abort, then the
 * table compared with its base) and txn_contended_job (threads of
 * read-modify-write transactions on hot keys, deadlock victims retried,
 * then the counters added up).
 *
 * Every value is VALUE_BYTES long: value_stamp's key and version byte,
 * then at COUNTER_AT a counter in 16 decimal digits, which the contended
 * transactions increment and the checks add up.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/tables.h"
#include "bench/txn.h"

#define LOAD_PER_TXN 10000
#define COUNTER_AT 24 /* after the key (16 bytes) and the version byte */
#define OP_DEL (1ull << 63)
#define MAX_RETRIES 100000 /* past this a transaction is livelocked: an error */

/* ---- values and the committed tables ------------------------------------------ */

/* Makes v the value of key k with version ver and counter cnt. v already
 * holds the filler (value_fill): only the head and counter are written,
 * so that the timed loops do not pay for the rest. */
static void value_make(uint8_t *v, const uint8_t k[KEY_BYTES], uint8_t ver, uint64_t cnt)
{
	value_stamp(v, VALUE_BYTES, k, ver);
	key_fmt(v + COUNTER_AT, cnt);
}

/* The counter of value v of key k into *cnt; false if v is not a value
 * value_make made for k. */
static bool value_counter(const struct eh *h, const uint8_t *k, const void *v, size_t vl,
			  uint64_t *cnt)
{
	const uint8_t *d = (const uint8_t *)v + COUNTER_AT;
	if (!value_ok(h, k, v, vl))
		return false;
	*cnt = 0;
	for (int i = 0; i < KEY_BYTES; i++) {
		if (d[i] < '0' || d[i] > '9')
			return false;
		*cnt = *cnt * 10 + (uint64_t)(d[i] - '0');
	}
	return true;
}

/* Commits keys 0..count-1 (version 0, counter 0), LOAD_PER_TXN per
 * transaction: the starting table of both workloads, untimed. */
static int load(const struct engine *e, struct eh *h, uint64_t count)
{
	uint8_t k[KEY_BYTES], v[VALUE_BYTES];
	value_fill(v, VALUE_BYTES);
	for (uint64_t i = 0; i < count; i++) {
		if (i % LOAD_PER_TXN == 0 && e->begin(h, true) != 0)
			return -1;
		key_fmt(k, i);
		value_make(v, k, 0, 0);
		if (e->put(h, k, KEY_BYTES, v, VALUE_BYTES) != 0)
			return -1;
		if (((i + 1) % LOAD_PER_TXN == 0 || i + 1 == count) && e->commit(h) != 0)
			return -1;
	}
	return 0;
}

/* The first byte where a and b (n bytes each) differ; n if none. */
static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* What byte at of a value holds, for the message of a wrong one. */
static const char *value_part(size_t at)
{
	if (at == KEY_BYTES)
		return "the version: a change was not undone";
	if (at >= COUNTER_AT && at < COUNTER_AT + KEY_BYTES)
		return "the counter";
	return "the key stamp or the filler";
}

/* The check of one row of a scan: returns false (message in h->err)
 * unless row i is key i with the whole value load gave it, but for the
 * counter when not base. *cnt gets its counter. */
static bool row_ok(struct eh *h, uint64_t i, const void *k, size_t kl, const void *v,
		   size_t vl, bool base, uint64_t *cnt)
{
	uint8_t want[KEY_BYTES], expect[VALUE_BYTES];
	bool has_cnt;
	size_t at;
	key_fmt(want, i);
	if (kl != KEY_BYTES || memcmp(k, want, KEY_BYTES) != 0) {
		snprintf(h->err, sizeof h->err, "row %llu: key '%.*s' (%zu B), expected %.16s",
			 (unsigned long long)i, (int)(kl < 40 ? kl : 40), (const char *)k, kl,
			 (const char *)want);
		return false;
	}
	*cnt = 0;
	has_cnt = value_counter(h, want, v, vl, cnt);
	value_fill(expect, VALUE_BYTES);
	value_make(expect, want, 0, base || !has_cnt ? 0 : *cnt);
	if (vl != VALUE_BYTES) {
		snprintf(h->err, sizeof h->err, "key %.16s: value of %zu B, expected %d B",
			 (const char *)want, vl, VALUE_BYTES);
		return false;
	}
	if ((at = first_diff(v, expect, VALUE_BYTES)) == VALUE_BYTES)
		return true;
	snprintf(h->err, sizeof h->err, "key %.16s: value byte %zu is 0x%02x, expected 0x%02x (%s)",
		 (const char *)want, at, ((const uint8_t *)v)[at], expect[at], value_part(at));
	return false;
}

/* Scans the whole table in a read transaction: it must hold exactly keys
 * 0..count-1, each as row_ok says; *sum gets the sum of the counters.
 * -1 (detail in h->err) if not. */
static int scan_check(const struct engine *e, struct eh *h, uint64_t count, bool base,
		      uint64_t *sum)
{
	const void *k, *v;
	size_t kl, vl;
	uint64_t rows = 0, cnt;
	int rc;
	*sum = 0;
	if (e->begin(h, false) != 0 || e->cur_open(h) != 0)
		return -1;
	while ((rc = e->cur_next(h, &k, &kl, &v, &vl)) == 0) {
		if (rows >= count || !row_ok(h, rows, k, kl, v, vl, base, &cnt)) {
			if (rows >= count)
				snprintf(h->err, sizeof h->err, "more than %llu rows",
					 (unsigned long long)count);
			rc = -1;
			break;
		}
		*sum += cnt;
		rows++;
	}
	e->cur_close(h);
	if (rc < 0 || e->commit(h) != 0)
		return -1;
	if (rows != count) {
		snprintf(h->err, sizeof h->err, "%llu rows, expected %llu",
			 (unsigned long long)rows, (unsigned long long)count);
		return -1;
	}
	return 0;
}

/* ---- rollback ------------------------------------------------------------------ */

/* Whether bit x of map is set; sets it to on. */
static bool bit_swap(uint8_t *map, uint64_t x, bool on)
{
	bool was = map[x / 8] >> (x % 8) & 1;
	map[x / 8] = (uint8_t)(on ? map[x / 8] | 1u << (x % 8) : map[x / 8] & ~(1u << (x % 8)));
	return was;
}

/* The rollback transaction's n changes over a base of keys 0..n/4-1:
 * random puts of keys below n/2, and with chance 1/10 a delete of a key
 * present at that point (so that every delete finds its row). Each entry
 * is a key number, OP_DEL set for a delete; r counts the kinds. The list
 * depends on the seed alone: both engines and every run get the same.
 * NULL if out of memory. */
static uint64_t *rollback_ops(uint64_t n, uint64_t seed, struct txn_res *r)
{
	uint64_t space = n / 2, *ops = malloc(n * sizeof *ops);
	uint8_t *present = calloc(space / 8 + 1, 1);
	for (uint64_t x = 0; present && x < n / 4; x++)
		bit_swap(present, x, true);
	for (uint64_t i = 0; ops && present && i < n; i++) {
		uint64_t x = bench_rand(&seed) % space;
		if (bench_rand(&seed) % 10 == 0) {
			for (int tries = 0; tries < 16 && !(present[x / 8] >> (x % 8) & 1); tries++)
				x = bench_rand(&seed) % space;
			if (bit_swap(present, x, false)) {
				ops[i] = x | OP_DEL;
				r->deletes++;
				continue;
			}
		}
		*(bit_swap(present, x, true) ? &r->overwrites : &r->inserts) += 1;
		ops[i] = x;
	}
	if (!present) {
		free(ops);
		ops = NULL;
	}
	free(present);
	return ops;
}

/* Applies change i of ops in h's open transaction (version 1 values,
 * made in v). */
static int apply_op(const struct engine *e, struct eh *h, uint64_t op, uint64_t i, uint8_t *v)
{
	uint8_t k[KEY_BYTES];
	int rc;
	key_fmt(k, op & ~OP_DEL);
	if (!(op & OP_DEL)) {
		value_make(v, k, 1, i);
		return e->put(h, k, KEY_BYTES, v, VALUE_BYTES);
	}
	if ((rc = e->del(h, k, KEY_BYTES)) == 1)
		snprintf(h->err, sizeof h->err, "change %llu: delete of %.16s: not found, "
			 "though this transaction had not deleted it", (unsigned long long)i, k);
	return rc ? -1 : 0;
}

/* The timed part: the n changes of ops in one transaction, then abort.
 * Sets r's forward rate, abort time and rollback steps/s. */
static int rollback_measure(const struct engine *e, struct eh *h, const uint64_t *ops,
			    uint64_t n, struct txn_res *r)
{
	uint8_t v[VALUE_BYTES];
	uint64_t t0, t1, t2;
	value_fill(v, VALUE_BYTES);
	if (e->begin(h, true) != 0)
		return -1;
	t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++)
		if (apply_op(e, h, ops[i], i, v) != 0)
			return -1;
	t1 = bench_now_ns();
	if (e->abort(h) != 0)
		return -1;
	t2 = bench_now_ns();
	r->fwd_ops_s = (double)n * 1e9 / (double)(t1 - t0 ? t1 - t0 : 1);
	r->abort_s = (double)(t2 - t1) / 1e9;
	r->steps_s = (double)n * 1e9 / (double)(t2 - t1 ? t2 - t1 : 1);
	return 0;
}

/* Checks that the table is its base state again, prefixing any failure
 * with when. */
static int base_check(const struct engine *e, struct eh *h, uint64_t base, const char *when)
{
	uint64_t sum;
	char detail[sizeof h->err];
	if (scan_check(e, h, base, true, &sum) == 0)
		return 0;
	snprintf(detail, sizeof detail, "%s", h->err);
	snprintf(h->err, sizeof h->err, "WRONG RESULT %s: the table is not its base state: %.300s",
		 when, detail);
	return -1;
}

void txn_rollback_job(const struct txn_opts *o, const struct engine *e, bool reopen,
		      const char *dir, struct txn_res *r)
{
	struct tables_opts to = o->t;
	struct eh h = {.o = &to};
	uint64_t n = (uint64_t)o->n, *ops;
	to.n = o->n;
	if (!(ops = rollback_ops(n, o->seed * 1000003u, r))) {
		snprintf(r->err, sizeof r->err, "out of memory");
		return;
	}
	if (e->open(&h, dir) != 0 || load(e, &h, n / 4) != 0 ||
	    rollback_measure(e, &h, ops, n, r) != 0 ||
	    base_check(e, &h, n / 4, "after abort") != 0 || e->close(&h) != 0)
		goto out;
	if (reopen && (e->open(&h, dir) != 0 ||
		       base_check(e, &h, n / 4, "after abort, close and reopen") != 0 ||
		       e->close(&h) != 0))
		goto out;
	r->ok = 1;
out:
	if (!r->ok)
		snprintf(r->err, sizeof r->err, "%s", h.err);
	free(ops);
}

/* ---- contended ----------------------------------------------------------------- */

/* What the threads of one contended child share. */
struct crowd {
	const struct txn_opts *o;
	const struct engine *e;
	const struct eh *main;
	pthread_barrier_t go;
};

/* One thread: its handle, random keys and counts. */
struct worker {
	struct crowd *c;
	struct eh h;
	uint64_t quota; /* transactions to commit */
	uint64_t rng, committed, deadlocks, retried, max_retries;
	bool failed;
	pthread_t th;
};

/* A key number: with chance hot_pct% one of the hot 1%, spread over the
 * key space (every 100th key) so that the row locks collide, not the
 * accesses to one leaf page; else any key. */
static uint64_t pick_key(struct worker *w)
{
	uint64_t keys = (uint64_t)w->c->o->keys, hot_n = keys / 100 ? keys / 100 : 1;
	if (bench_rand(&w->rng) % 100 < (uint64_t)w->c->o->hot_pct)
		return bench_rand(&w->rng) % hot_n * (keys / hot_n);
	return bench_rand(&w->rng) % keys;
}

/* Reads the counter of key k into *cnt. 0, EH_DEADLOCK, or -1. */
static int get_counter(struct worker *w, const uint8_t *k, uint64_t *cnt)
{
	const void *v;
	size_t vl;
	int rc = w->c->e->get(&w->h, k, KEY_BYTES, &v, &vl);
	if (rc == 0 && value_counter(&w->h, k, v, vl, cnt))
		return 0;
	if (rc >= 0)
		snprintf(w->h.err, sizeof w->h.err, "WRONG RESULT: get %.16s: %s", k,
			 rc ? "not found" : "wrong value");
	return rc == EH_DEADLOCK ? rc : -1;
}

/* The work of one transaction, in h's open transaction: get a, get b, put
 * a+1, put b+1. The gets take shared locks that the puts upgrade, so two
 * transactions reading the same key deadlock, as do two taking two keys in
 * opposite orders. 0, EH_DEADLOCK (the work was undone), or -1. */
static int rmw(struct worker *w, const uint64_t x[2])
{
	uint8_t k[2][KEY_BYTES], v[VALUE_BYTES];
	uint64_t cnt[2];
	int rc;
	value_fill(v, VALUE_BYTES);
	for (int i = 0; i < 2; i++) {
		key_fmt(k[i], x[i]);
		if ((rc = get_counter(w, k[i], &cnt[i])) != 0)
			return rc;
	}
	for (int i = 0; i < 2; i++) {
		value_make(v, k[i], 0, cnt[i] + 1);
		if ((rc = w->c->e->put(&w->h, k[i], KEY_BYTES, v, VALUE_BYTES)) != 0)
			return rc;
	}
	return 0;
}

/* One transaction on two distinct keys, its work redone in the same
 * transaction while it is chosen as a deadlock victim, then committed.
 * 0 or -1. */
static int one_txn(struct worker *w)
{
	uint64_t x[2], retries = 0;
	int rc;
	x[0] = pick_key(w);
	while ((x[1] = pick_key(w)) == x[0])
		;
	if (w->c->e->begin(&w->h, true) != 0)
		return -1;
	while ((rc = rmw(w, x)) == EH_DEADLOCK && ++retries < MAX_RETRIES)
		;
	if (rc != 0) {
		if (rc == EH_DEADLOCK)
			snprintf(w->h.err, sizeof w->h.err, "livelock: %d deadlocks in a row",
				 MAX_RETRIES);
		w->c->e->abort(&w->h);
		return -1;
	}
	if (w->c->e->commit(&w->h) != 0)
		return -1;
	w->committed++;
	w->deadlocks += retries;
	w->retried += retries > 0;
	w->max_retries = retries > w->max_retries ? retries : w->max_retries;
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	bool attached = w->c->e->attach(&w->h, w->c->main) == 0;
	pthread_barrier_wait(&w->c->go); /* even when attach failed: the others wait */
	w->failed = !attached;
	for (uint64_t i = 0; attached && i < w->quota && !w->failed; i++)
		w->failed = one_txn(w) != 0;
	if (attached)
		w->c->e->detach(&w->h);
	return NULL;
}

/* Sums the workers' counts into r; false (message in r->err) if one
 * failed. */
static bool workers_sum(struct worker *ws, int n, struct txn_res *r)
{
	bool ok = true;
	for (int i = 0; i < n; i++) {
		if (ws[i].failed && ok) {
			snprintf(r->err, sizeof r->err, "thread %d: %s", i, ws[i].h.err);
			ok = false;
		}
		r->committed += (double)ws[i].committed;
		r->deadlocks += (double)ws[i].deadlocks;
		r->retried_txns += (double)ws[i].retried;
		if ((double)ws[i].max_retries > r->max_retries)
			r->max_retries = (double)ws[i].max_retries;
	}
	return ok;
}

/* Runs the threads on the open database of main and times them from the
 * common start to the last one's end. false on error (in r->err). */
static bool run_crowd(const struct txn_opts *o, const struct engine *e, const struct eh *main,
		      uint64_t txns, int run, struct txn_res *r)
{
	struct crowd c = {.o = o, .e = e, .main = main};
	uint64_t nt = (uint64_t)o->threads;
	struct worker *ws = calloc((size_t)o->threads, sizeof *ws);
	uint64_t t0;
	int started = 0;
	bool ok;
	if (!ws || pthread_barrier_init(&c.go, NULL, (unsigned)o->threads + 1) != 0) {
		free(ws);
		snprintf(r->err, sizeof r->err, "out of memory");
		return false;
	}
	for (; started < o->threads; started++) {
		uint64_t i = (uint64_t)started;
		ws[started] = (struct worker){.c = &c, .quota = txns / nt + (i < txns % nt),
					      .rng = o->seed * 7919u + (uint64_t)run * 131u + i};
		if (pthread_create(&ws[started].th, NULL, worker_main, &ws[started]) != 0)
			abort(); /* the barrier counts every thread: no way back */
	}
	pthread_barrier_wait(&c.go);
	t0 = bench_now_ns();
	for (int i = 0; i < started; i++)
		pthread_join(ws[i].th, NULL);
	ok = workers_sum(ws, o->threads, r);
	r->txn_s = r->committed * 1e9 / (double)(bench_now_ns() - t0);
	pthread_barrier_destroy(&c.go);
	free(ws);
	return ok;
}

/* Checks that no update was lost: every key is there with a counter, and
 * the counters add up to 2 per committed transaction. */
static int counters_check(const struct engine *e, struct eh *h, uint64_t keys,
			  const struct txn_res *r)
{
	uint64_t sum;
	char detail[sizeof h->err];
	if (scan_check(e, h, keys, false, &sum) != 0)
		snprintf(detail, sizeof detail, "%s", h->err);
	else if ((double)sum != 2 * r->committed)
		snprintf(detail, sizeof detail, "the counters add up to %llu, expected 2 x %.0f "
			 "committed transactions", (unsigned long long)sum, r->committed);
	else
		return 0;
	snprintf(h->err, sizeof h->err, "WRONG RESULT after the contended run: %.300s",
		 detail);
	return -1;
}

void txn_contended_job(const struct txn_opts *o, const struct engine *e, int run, bool durable,
		       const char *dir, struct txn_res *r)
{
	struct tables_opts to = o->t;
	struct eh h = {.o = &to};
	to.n = o->keys;
	to.nosync = !durable;
	if (e->open(&h, dir) != 0 || load(e, &h, (uint64_t)o->keys) != 0) {
		snprintf(r->err, sizeof r->err, "%s", h.err);
		return;
	}
	if (!run_crowd(o, e, &h, (uint64_t)(durable ? o->durable_txns : o->txns), run, r))
		return;
	if (counters_check(e, &h, (uint64_t)o->keys, r) != 0 || e->close(&h) != 0) {
		snprintf(r->err, sizeof r->err, "%s", h.err);
		return;
	}
	r->ok = 1;
}
