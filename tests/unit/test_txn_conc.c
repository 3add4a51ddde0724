/*
 * test_txn_conc.c - transactions of many threads (also run under
 * ThreadSanitizer): isolation as the row locks promise it (strict
 * two-phase locking, txn/README.md I13) and deadlock victims (P15).
 *
 *  - test_serializable: 8 threads run short transactions (2-6 reads,
 *    writes and deletes) over 10,000 keys, 90% of the operations on 100 hot
 *    keys, so that transactions wait, upgrade S to X and deadlock. Every
 *    value written is unique and names its writer; each transaction notes
 *    what it read and wrote and, just before wd_commit (all its locks
 *    still held), takes a ticket from a global counter. Replaying the
 *    committed transactions in ticket order against LMDB must give every
 *    read the value LMDB has at that point, and the final table must
 *    equal LMDB. Victims either abort or go on with the same handle (it
 *    is rolled back and usable); some transactions abort on purpose.
 *  - test_bank: transfers between 64 accounts (read both, write both:
 *    upgrades, deadlocks) while readers sum every account in one
 *    transaction, by a cursor scan or by gets in random order: with shared
 *    locks held to the end the sum is always exact. The transfers, replayed
 *    in ticket order against LMDB, give the final table.
 *  - test_bank_escalating: the same with lock_escalation_rows 8, so an
 *    audit holding 8 row locks tries the table's S lock (txn/LOCKS.md K7)
 *    and, when it gets it, reads the rest without row locks while the
 *    tellers' intention locks wait for it; one audit runs alone first, so
 *    that at least one escalation is certain. The sums must stay exact.
 *
 * A deadlock is forced once in each run (two transactions crossing on two
 * keys behind a barrier: exactly one of them is the victim), so the count
 * asserted is never left to chance.
 */
#define _GNU_SOURCE
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "walden.h"

#define PS 4096u

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static wd_db *db;
static atomic_ulong tickets;
static atomic_uint errors;
static char first_error[512];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

/* Threads report failures here (cmocka's asserts are for the main
 * thread); the main thread fails the test with the first one. */
static void note_error(const char *fmt, ...)
{
	va_list ap;
	atomic_fetch_add(&errors, 1);
	pthread_mutex_lock(&err_mu);
	if (!first_error[0]) {
		va_start(ap, fmt);
		vsnprintf(first_error, sizeof first_error, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_mu);
}

static void check_errors(void)
{
	if (atomic_load(&errors))
		fail_msg("%u errors in the threads; the first: %s", atomic_load(&errors),
			 first_error);
}

/* escalation_rows: lock_escalation_rows, 0 for the default. */
static wd_db *open_db_esc(const char *dir, uint32_t escalation_rows)
{
	wd_options o;
	wd_db *d = NULL;
	wd_options_default(&o);
	if (escalation_rows)
		o.lock_escalation_rows = escalation_rows;
	o.page_size = PS;
	o.buffer_pool_bytes = 256u * PS;
	o.wal_segment_size = 4u << 20;
	o.wal_buffers_bytes = 4u << 20;
	o.wal_init_zero = 0;
	o.synchronous_commit = 0;
	OK(wd_open(dir, &o, &d));
	return d;
}

static wd_db *open_db(const char *dir)
{
	return open_db_esc(dir, 0);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = tu_rand(&s);
		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

/* The table through a read-only transaction equals dbi of mt, and passes
 * db_table_check. */
static void compare_final(const char *name, MDB_txn *mt, MDB_dbi dbi)
{
	MDB_cursor *mc;
	MDB_val mk, mv;
	wd_txn *x;
	wd_table *t;
	wd_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	uint64_t n = 0;
	db_check_report r;
	int m, rc;
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, name, 0, &t));
	OK(wd_cursor_open(x, t, &c));
	MDBOK(mdb_cursor_open(mt, dbi, &mc));
	for (m = mdb_cursor_get(mc, &mk, &mv, MDB_FIRST); m == 0;
	     m = mdb_cursor_get(mc, &mk, &mv, MDB_NEXT), n++) {
		if ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) != 0)
			fail_msg("%s item %llu: %s", name, (unsigned long long)n, wd_strerror(rc));
		if (kl != mk.mv_size || memcmp(k, mk.mv_data, kl) != 0)
			fail_msg("%s item %llu: another key than the oracle's", name,
				 (unsigned long long)n);
		if (vl != mv.mv_size || memcmp(v, mv.mv_data, vl) != 0)
			fail_msg("%s item %llu (%.*s): another value than the oracle's", name,
				 (unsigned long long)n, (int)kl, (const char *)k);
	}
	assert_int_equal(wd_cursor_next(c, &k, &kl, &v, &vl), WD_NOTFOUND);
	wd_cursor_close(c);
	mdb_cursor_close(mc);
	if (db_table_check(t, &r) != 0)
		fail_msg("%s: %s", name, wd_last_error());
	OK(wd_commit(x));
}

/* ---- a deadlock, forced ------------------------------------------------- */

struct cross {
	wd_table *t;
	pthread_barrier_t *bar;
	const char *mine, *theirs, *val;
	int rc; /* of the put that crosses */
};

/* Takes X on its key, meets the other at the barrier, then asks for the
 * other's key: whichever asks second closes the cycle. The victim goes on
 * with the same handle: its two puts again, then the commit. */
static void *cross_thread(void *p)
{
	struct cross *c = p;
	wd_txn *x;
	int rc = wd_begin(db, &x);
	if (rc == 0)
		rc = wd_put(x, c->t, c->mine, 2, c->val, strlen(c->val));
	pthread_barrier_wait(c->bar);
	if (rc == 0)
		rc = c->rc = wd_put(x, c->t, c->theirs, 2, c->val, strlen(c->val));
	if (rc == WD_EDEADLOCK &&
	    (rc = wd_put(x, c->t, c->mine, 2, c->val, strlen(c->val))) == 0)
		rc = wd_put(x, c->t, c->theirs, 2, c->val, strlen(c->val));
	if (rc == 0)
		rc = wd_commit(x);
	if (rc != 0)
		note_error("crossing transaction: %s (%s)", wd_strerror(rc), wd_last_error());
	return NULL;
}

/* Returns 1: the one deadlock of two transactions crossing on "d1"/"d2".
 * The victim commits last, so both keys end with its value. */
static unsigned force_deadlock(wd_table *t)
{
	pthread_barrier_t bar;
	pthread_t th[2];
	struct cross c[2] = {{t, &bar, "d1", "d2", "first", 1}, {t, &bar, "d2", "d1", "second", 1}};
	wd_txn *x;
	char buf[16];
	size_t vl;
	int victim;
	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, cross_thread, &c[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	check_errors();
	/* exactly one victim */
	assert_true((c[0].rc == WD_EDEADLOCK) != (c[1].rc == WD_EDEADLOCK));
	assert_true(c[0].rc == 0 || c[1].rc == 0);
	victim = c[0].rc == WD_EDEADLOCK ? 0 : 1;
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	for (int i = 0; i < 2; i++) {
		OK(wd_get(x, t, c[i].mine, 2, buf, sizeof buf, &vl));
		assert_int_equal(vl, strlen(c[victim].val));
		assert_memory_equal(buf, c[victim].val, vl);
	}
	OK(wd_commit(x));
	return 1;
}

/* ---- 7. serializability ------------------------------------------------- */

#define THREADS 8
#define KEYS 10000u
#define HOT 100u
#define MAXOPS 6
#define VMAX (2 * PS + 200)

enum { OP_READ = 1, OP_WRITE, OP_DEL };

/* What one operation of a committed transaction did: a read saw id (0:
 * absent); a write wrote id with len bytes; a delete found the key or
 * not. */
struct rec_op {
	uint32_t key;
	uint8_t kind;
	bool found;
	uint32_t len;
	uint64_t id;
};

struct rec_txn {
	uint64_t ticket;
	unsigned nops;
	struct rec_op ops[MAXOPS];
};

struct worker {
	unsigned w, ntx;
	wd_table *t;
	struct rec_txn *recs; /* committed, in this thread's order */
	unsigned nrecs;
	uint64_t deadlocks, reused, aborted, retries;
};

static size_t key_of(uint32_t i, char *k)
{
	return (size_t)snprintf(k, 24, "key%05u", i);
}

/* A value: its id (u64), its length (u32), then bytes from the id. */
static void make_val(uint8_t *v, uint32_t len, uint64_t id)
{
	fill(v + 12, len - 12, id);
	memcpy(v, &id, 8);
	memcpy(v + 8, &len, 4);
}

/* The id of a value read, or 0 (and an error noted) if it is not one
 * make_val wrote. */
static uint64_t val_id(const uint8_t *v, size_t len, uint8_t *scratch)
{
	uint64_t id;
	uint32_t l;
	if (len < 12)
		return 0;
	memcpy(&id, v, 8);
	memcpy(&l, v + 8, 4);
	if (l != len)
		return 0;
	make_val(scratch, l, id);
	return memcmp(scratch, v, len) == 0 ? id : 0;
}

static uint32_t val_len(uint64_t *s)
{
	return tu_rand(s) % 50 == 0 ? PS + (uint32_t)(tu_rand(s) % (PS + 200))
				    : 12 + (uint32_t)(tu_rand(s) % 150);
}

static uint32_t pick_key(uint64_t *s)
{
	if (tu_rand(s) % 10 != 0)
		return (uint32_t)(tu_rand(s) % HOT) * (KEYS / HOT); /* hot */
	return (uint32_t)(tu_rand(s) % KEYS);
}

/*
 * One attempt at transaction n of the worker in x: its operations, noted
 * in r. Returns 0, WD_EDEADLOCK (x was rolled back), or another error.
 */
static int run_ops(struct worker *wk, wd_txn *x, uint64_t n, uint64_t *s, struct rec_txn *r,
		   uint8_t *v, uint8_t *scratch)
{
	char k[24];
	r->nops = 2 + (unsigned)(tu_rand(s) % (MAXOPS - 1));
	for (unsigned i = 0; i < r->nops; i++) {
		struct rec_op *op = &r->ops[i];
		uint64_t c = tu_rand(s) % 100;
		size_t kl, vl;
		int rc;
		op->key = pick_key(s);
		kl = key_of(op->key, k);
		if (c < 50) {
			op->kind = OP_READ;
			rc = wd_get(x, wk->t, k, kl, v, VMAX, &vl);
			if (rc == 0 && (vl > VMAX || !(op->id = val_id(v, vl, scratch))))
				note_error("key %s: a value no writer wrote (%zu bytes)", k, vl);
			if (rc == WD_NOTFOUND) {
				op->id = 0;
				rc = 0;
			}
		} else if (c < 90) {
			op->kind = OP_WRITE;
			op->len = val_len(s);
			op->id = ((uint64_t)(wk->w + 1) << 40) | (n << 4) | i;
			make_val(v, op->len, op->id);
			rc = wd_put(x, wk->t, k, kl, v, op->len);
		} else {
			op->kind = OP_DEL;
			rc = wd_del(x, wk->t, k, kl);
			op->found = rc == 0;
			if (rc == WD_NOTFOUND)
				rc = 0;
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void *worker_main(void *p)
{
	struct worker *wk = p;
	uint64_t s = 0x5eed + wk->w * 7919;
	uint8_t *v = malloc(VMAX), *scratch = malloc(VMAX);
	wd_txn *x = NULL;
	int rc = 0;
	for (uint64_t n = 1; n <= wk->ntx && rc == 0; n++) {
		struct rec_txn *r = &wk->recs[wk->nrecs];
		if (!x && (rc = wd_begin(db, &x)) != 0)
			break;
		while ((rc = run_ops(wk, x, n, &s, r, v, scratch)) == WD_EDEADLOCK) {
			wk->deadlocks++;
			if (tu_rand(&s) % 2) { /* the victim goes on, same handle */
				wk->reused++;
			} else if ((rc = wd_abort(x)) != 0 || (rc = wd_begin(db, &x)) != 0) {
				break;
			}
			wk->retries++;
		}
		if (rc != 0)
			break;
		if (tu_rand(&s) % 20 == 0) { /* aborted on purpose: no trace */
			rc = wd_abort(x);
			x = NULL;
			wk->aborted++;
			continue;
		}
		/* every lock still held: the ticket orders this transaction
		 * after each one it depends on */
		r->ticket = atomic_fetch_add(&tickets, 1);
		rc = wd_commit(x);
		x = NULL;
		wk->nrecs++;
	}
	if (rc != 0)
		note_error("worker %u: %s (%s)", wk->w, wd_strerror(rc), wd_last_error());
	if (x)
		(void)wd_abort(x);
	free(v);
	free(scratch);
	return NULL;
}

static int by_ticket(const void *a, const void *b)
{
	const struct rec_txn *x = *(struct rec_txn *const *)a, *y = *(struct rec_txn *const *)b;
	return (x->ticket > y->ticket) - (x->ticket < y->ticket);
}

/* The committed transactions in ticket order against LMDB: every read
 * must see what LMDB holds at that point. */
static void replay(struct worker *wks, MDB_txn *mt, MDB_dbi dbi, uint64_t *reads)
{
	size_t n = 0, j = 0;
	uint8_t *v = malloc(VMAX);
	struct rec_txn **all;
	for (unsigned w = 0; w < THREADS; w++)
		n += wks[w].nrecs;
	all = malloc(n * sizeof *all);
	for (unsigned w = 0; w < THREADS; w++)
		for (unsigned i = 0; i < wks[w].nrecs; i++)
			all[j++] = &wks[w].recs[i];
	qsort(all, n, sizeof *all, by_ticket);
	for (size_t i = 0; i < n; i++) {
		for (unsigned o = 0; o < all[i]->nops; o++) {
			const struct rec_op *op = &all[i]->ops[o];
			char k[24];
			MDB_val mk = {key_of(op->key, k), k}, mv;
			int m = mdb_get(mt, dbi, &mk, &mv);
			uint64_t have = 0;
			if (m == 0)
				memcpy(&have, mv.mv_data, 8);
			if (op->kind == OP_READ && have != op->id)
				fail_msg("ticket %llu op %u: read of %s saw id %llx, the serial order "
					 "says %llx", (unsigned long long)all[i]->ticket, o, k,
					 (unsigned long long)op->id, (unsigned long long)have);
			if (op->kind == OP_DEL && op->found != (m == 0))
				fail_msg("ticket %llu op %u: del of %s %s the key, the serial order "
					 "says it %s", (unsigned long long)all[i]->ticket, o, k,
					 op->found ? "found" : "did not find",
					 m == 0 ? "was there" : "was absent");
			if (op->kind == OP_WRITE) {
				make_val(v, op->len, op->id);
				mv = (MDB_val){op->len, v};
				MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
			} else if (op->kind == OP_DEL && m == 0) {
				MDBOK(mdb_del(mt, dbi, &mk, NULL));
			}
			*reads += op->kind == OP_READ;
		}
	}
	free(all);
	free(v);
}

static void test_serializable(void **state)
{
	char *root = tu_tmpdir("txn-conc");
	char *dir = tu_path(root, "db"), *odir = tu_path(root, "lmdb");
	unsigned ntx = SANITIZED ? 1200 : 6000;
	struct worker wks[THREADS];
	pthread_t th[THREADS];
	uint8_t *v = malloc(VMAX);
	uint64_t commits = 0, deadlocks = 0, reused = 0, aborted = 0, reads = 0;
	MDB_env *env;
	MDB_txn *mt;
	MDB_dbi dbi;
	lock_stats st;
	wd_txn *x;
	wd_table *t, *forced;
	(void)state;
	assert_int_equal(mkdir(odir, 0755), 0);
	MDBOK(mdb_env_create(&env));
	MDBOK(mdb_env_set_mapsize(env, 4ull << 30));
	MDBOK(mdb_env_open(env, odir, MDB_NOSYNC | MDB_NOMETASYNC, 0644));
	MDBOK(mdb_txn_begin(env, NULL, 0, &mt));
	MDBOK(mdb_dbi_open(mt, NULL, 0, &dbi));
	db = open_db(dir);
	/* every key present at the start, with a value of id 1 + key */
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "hot", WD_CREATE, &t));
	OK(wd_table_open(x, "forced", WD_CREATE, &forced));
	for (uint32_t i = 0; i < KEYS; i++) {
		char k[24];
		MDB_val mk = {key_of(i, k), k}, mv = {40, v};
		make_val(v, 40, 1 + i);
		OK(wd_put(x, t, k, mk.mv_size, v, 40));
		MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
	}
	OK(wd_commit(x));

	deadlocks += force_deadlock(forced);
	atomic_store(&tickets, 1);
	for (unsigned w = 0; w < THREADS; w++) {
		wks[w] = (struct worker){.w = w, .ntx = ntx, .t = t,
					 .recs = calloc(ntx, sizeof(struct rec_txn))};
		assert_int_equal(pthread_create(&th[w], NULL, worker_main, &wks[w]), 0);
	}
	for (unsigned w = 0; w < THREADS; w++)
		pthread_join(th[w], NULL);
	check_errors();
	for (unsigned w = 0; w < THREADS; w++) {
		commits += wks[w].nrecs;
		deadlocks += wks[w].deadlocks;
		reused += wks[w].reused;
		aborted += wks[w].aborted;
	}
	assert_int_equal(commits + aborted, (uint64_t)THREADS * ntx);
	replay(wks, mt, dbi, &reads);
	compare_final("hot", mt, dbi);
	db_lock_stats(db, &st);
	print_message("serializable: %u threads x %u transactions: %llu committed (%llu reads "
		      "checked in ticket order), %llu aborted on purpose, %llu deadlock victims "
		      "(1 forced; %llu went on with the same handle), lock waits %llu\n",
		      THREADS, ntx, (unsigned long long)commits, (unsigned long long)reads,
		      (unsigned long long)aborted, (unsigned long long)deadlocks,
		      (unsigned long long)reused, (unsigned long long)st.waits);
	assert_true(deadlocks >= 1);
	assert_int_equal(st.deadlocks, deadlocks); /* every victim was seen */
	OK(wd_close(db));
	db = open_db(dir); /* and after a reopen */
	compare_final("hot", mt, dbi);
	OK(wd_close(db));
	mdb_txn_abort(mt);
	mdb_env_close(env);
	for (unsigned w = 0; w < THREADS; w++)
		free(wks[w].recs);
	free(v);
	tu_rmrf(root);
	free(dir);
	free(odir);
	free(root);
}

/* ---- the bank: a sum under shared locks is always exact ------------------ */

#define ACCTS 64u
#define INIT 1000
#define TELLERS 6
#define AUDITORS 2

struct transfer {
	uint64_t ticket;
	uint32_t from, to;
	int64_t amount;
};

struct teller {
	unsigned w, n;
	wd_table *t;
	struct transfer *done;
	unsigned ndone;
	uint64_t deadlocks;
};

static atomic_int tellers_left;
static atomic_ulong sums_done, sum_deadlocks;

static size_t acct_key(uint32_t a, char *k)
{
	return (size_t)snprintf(k, 16, "acct%03u", a);
}

static int get_balance(wd_txn *x, wd_table *t, uint32_t a, int64_t *bal)
{
	char k[16], buf[32];
	size_t vl;
	int rc = wd_get(x, t, k, acct_key(a, k), buf, sizeof buf - 1, &vl);
	if (rc == 0) {
		buf[vl < sizeof buf ? vl : sizeof buf - 1] = 0;
		*bal = strtoll(buf, NULL, 10);
	}
	return rc;
}

static int put_balance(wd_txn *x, wd_table *t, uint32_t a, int64_t bal)
{
	char k[16], buf[32];
	int n = snprintf(buf, sizeof buf, "%lld", (long long)bal);
	return wd_put(x, t, k, acct_key(a, k), buf, (size_t)n);
}

static void *teller_main(void *p)
{
	struct teller *tl = p;
	uint64_t s = 99 + tl->w;
	wd_txn *x = NULL;
	int rc = 0;
	while (tl->ndone < tl->n && rc == 0) {
		struct transfer *tr = &tl->done[tl->ndone];
		int64_t a = 0, b = 0;
		if (!x && (rc = wd_begin(db, &x)) != 0)
			break;
		tr->from = (uint32_t)(tu_rand(&s) % ACCTS);
		tr->to = (uint32_t)((tr->from + 1 + tu_rand(&s) % (ACCTS - 1)) % ACCTS);
		if ((rc = get_balance(x, tl->t, tr->from, &a)) == 0 &&
		    (rc = get_balance(x, tl->t, tr->to, &b)) == 0) {
			tr->amount = (int64_t)(tu_rand(&s) % 100);
			if (tr->amount > a)
				tr->amount = a;
			if ((rc = put_balance(x, tl->t, tr->from, a - tr->amount)) == 0)
				rc = put_balance(x, tl->t, tr->to, b + tr->amount);
		}
		if (rc == WD_EDEADLOCK) { /* rolled back: try again, same handle */
			tl->deadlocks++;
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		tr->ticket = atomic_fetch_add(&tickets, 1);
		rc = wd_commit(x);
		x = NULL;
		tl->ndone++;
	}
	if (rc != 0)
		note_error("teller %u: %s (%s)", tl->w, wd_strerror(rc), wd_last_error());
	if (x)
		(void)wd_abort(x);
	atomic_fetch_sub(&tellers_left, 1);
	return NULL;
}

/* One audit: every balance in one transaction (a cursor scan, or gets in
 * random order). Returns 0 and the sum and count, or WD_EDEADLOCK. */
static int audit(wd_table *t, uint64_t *s, int64_t *sum, unsigned *count)
{
	wd_txn *x;
	int rc = wd_begin_flags(db, WD_TXN_RDONLY, &x);
	*sum = 0;
	*count = 0;
	if (rc != 0)
		return rc;
	if (tu_rand(s) % 2) {
		wd_cursor *c;
		const void *k, *v;
		size_t kl, vl;
		if ((rc = wd_cursor_open(x, t, &c)) != 0)
			goto out;
		while ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
			char buf[32];
			memcpy(buf, v, vl < 31 ? vl : 31);
			buf[vl < 31 ? vl : 31] = 0;
			*sum += strtoll(buf, NULL, 10);
			(*count)++;
		}
		wd_cursor_close(c);
		if (rc == WD_NOTFOUND)
			rc = 0;
	} else {
		uint32_t start = (uint32_t)(tu_rand(s) % ACCTS), step = 1 + 2 * (uint32_t)(tu_rand(s) % 31);
		for (uint32_t i = 0; i < ACCTS && rc == 0; i++) {
			int64_t bal = 0;
			/* an odd step walks every account, from a random one */
			if ((rc = get_balance(x, t, (start + i * step) % ACCTS, &bal)) == 0) {
				*sum += bal;
				(*count)++;
			}
		}
	}
out:
	if (rc == 0)
		rc = wd_commit(x);
	else
		(void)wd_abort(x);
	return rc;
}

static void *auditor_main(void *p)
{
	wd_table *t = p;
	uint64_t s = (uint64_t)(uintptr_t)p ^ (uint64_t)pthread_self();
	unsigned min = SANITIZED ? 30 : 150, done = 0;
	while (atomic_load(&tellers_left) > 0 || done < min) {
		int64_t sum;
		unsigned count;
		int rc = audit(t, &s, &sum, &count);
		if (rc == WD_EDEADLOCK) {
			atomic_fetch_add(&sum_deadlocks, 1);
			continue;
		}
		if (rc != 0) {
			note_error("audit: %s (%s)", wd_strerror(rc), wd_last_error());
			break;
		}
		if (sum != (int64_t)ACCTS * INIT || count != ACCTS)
			note_error("audit: %u accounts summing to %lld, expected %u and %lld", count,
				   (long long)sum, ACCTS, (long long)ACCTS * INIT);
		done++;
		atomic_fetch_add(&sums_done, 1);
	}
	return NULL;
}

static int by_transfer_ticket(const void *a, const void *b)
{
	const struct transfer *x = *(struct transfer *const *)a, *y = *(struct transfer *const *)b;
	return (x->ticket > y->ticket) - (x->ticket < y->ticket);
}

/* The bank with escalation after escalation_rows row locks (0: the
 * default) and n transfers per teller. */
static void run_bank(uint32_t escalation_rows, unsigned n)
{
	char *root = tu_tmpdir("txn-bank");
	char *dir = tu_path(root, "db"), *odir = tu_path(root, "lmdb");
	struct teller tl[TELLERS];
	pthread_t tt[TELLERS], at[AUDITORS];
	struct transfer **all;
	uint64_t deadlocks = 0;
	size_t nall = 0;
	int64_t bal[ACCTS];
	MDB_env *env;
	MDB_txn *mt;
	MDB_dbi dbi;
	wd_txn *x;
	wd_table *t, *forced;
	assert_int_equal(mkdir(odir, 0755), 0);
	MDBOK(mdb_env_create(&env));
	MDBOK(mdb_env_open(env, odir, MDB_NOSYNC | MDB_NOMETASYNC, 0644));
	MDBOK(mdb_txn_begin(env, NULL, 0, &mt));
	MDBOK(mdb_dbi_open(mt, NULL, 0, &dbi));
	db = open_db_esc(dir, escalation_rows);
	atomic_store(&sums_done, 0);
	atomic_store(&sum_deadlocks, 0);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "bank", WD_CREATE, &t));
	OK(wd_table_open(x, "forced", WD_CREATE, &forced));
	for (uint32_t a = 0; a < ACCTS; a++) {
		OK(put_balance(x, t, a, INIT));
		bal[a] = INIT;
	}
	OK(wd_commit(x));
	deadlocks += force_deadlock(forced);
	if (escalation_rows) {
		/* an audit alone: nothing keeps it from escalating */
		uint64_t s = 1;
		int64_t sum;
		unsigned count;
		lock_stats st;
		OK(audit(t, &s, &sum, &count)); /* by cursor or by gets: both escalate */
		db_lock_stats(db, &st);
		assert_true(st.escalations >= 1);
		assert_int_equal(sum, (int64_t)ACCTS * INIT);
	}

	atomic_store(&tickets, 1);
	atomic_store(&tellers_left, TELLERS);
	for (unsigned w = 0; w < TELLERS; w++) {
		tl[w] = (struct teller){.w = w, .n = n, .t = t,
					.done = calloc(n, sizeof(struct transfer))};
		assert_int_equal(pthread_create(&tt[w], NULL, teller_main, &tl[w]), 0);
	}
	for (unsigned a = 0; a < AUDITORS; a++)
		assert_int_equal(pthread_create(&at[a], NULL, auditor_main, t), 0);
	for (unsigned w = 0; w < TELLERS; w++)
		pthread_join(tt[w], NULL);
	for (unsigned a = 0; a < AUDITORS; a++)
		pthread_join(at[a], NULL);
	check_errors();

	/* the transfers in ticket order: each one possible, and the oracle */
	all = malloc((size_t)TELLERS * n * sizeof *all);
	for (unsigned w = 0; w < TELLERS; w++) {
		deadlocks += tl[w].deadlocks;
		for (unsigned i = 0; i < tl[w].ndone; i++)
			all[nall++] = &tl[w].done[i];
	}
	assert_int_equal(nall, (size_t)TELLERS * n);
	qsort(all, nall, sizeof *all, by_transfer_ticket);
	for (size_t i = 0; i < nall; i++) {
		assert_true(all[i]->amount <= bal[all[i]->from]);
		bal[all[i]->from] -= all[i]->amount;
		bal[all[i]->to] += all[i]->amount;
	}
	for (uint32_t a = 0; a < ACCTS; a++) {
		char k[16], buf[32];
		MDB_val mk = {acct_key(a, k), k};
		MDB_val mv = {(size_t)snprintf(buf, sizeof buf, "%lld", (long long)bal[a]), buf};
		MDBOK(mdb_put(mt, dbi, &mk, &mv, 0));
	}
	compare_final("bank", mt, dbi);
	{
		lock_stats st;
		db_lock_stats(db, &st);
		print_message("bank: %u tellers x %u transfers, %lu audits all exact, deadlock "
			      "victims: %llu tellers (1 forced), %lu audits; %llu escalations\n",
			      TELLERS, n, atomic_load(&sums_done), (unsigned long long)deadlocks,
			      atomic_load(&sum_deadlocks), (unsigned long long)st.escalations);
	}
	assert_true(deadlocks >= 1);
	assert_true(atomic_load(&sums_done) >= AUDITORS * (SANITIZED ? 30u : 150u));
	OK(wd_close(db));
	mdb_txn_abort(mt);
	mdb_env_close(env);
	for (unsigned w = 0; w < TELLERS; w++)
		free(tl[w].done);
	free(all);
	tu_rmrf(root);
	free(dir);
	free(odir);
	free(root);
}

static void test_bank(void **state)
{
	(void)state;
	run_bank(0, SANITIZED ? 1000 : 5000);
}

/* About half a second in release, two in asan, five in tsan (fewer
 * transfers under the sanitizers). */
static void test_bank_escalating(void **state)
{
	(void)state;
	run_bank(8, SANITIZED ? 300 : 1500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serializable),
		cmocka_unit_test(test_bank),
		cmocka_unit_test(test_bank_escalating),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
