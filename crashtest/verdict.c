/*
 * verdict.c - the classifier (README "Oracle rules" and "Verdict
 * classes"): for every key, which transaction's value the recovered state
 * shows; from that, which transactions the state includes, and whether
 * that set is one the durability contract allows. Entry point: ct_judge.
 *
 * Terms. A transaction is *requested* once its REQ arrived, *acked* once
 * its ACK did. It *must* be in the state if it was acked synchronously, or
 * asynchronously more than 3 x wal_writer_delay before the crash (taken as
 * the last message the child sent, which errs on the lenient side) and
 * the WAL writer ran a whole cycle, without an error, that started at
 * least one wal_writer_delay after the ACK (so a writer thread starved of
 * CPU while the others went on excuses it: README "Oracle rules"). Every
 * other requested transaction *may* be in. The writers of a key are the
 * requested transactions whose final writes touch it, in REQ order; row
 * locks make that the order their commits took effect, so the state must
 * show, for each key, the value of its last included writer (or the base
 * value if none is included): the included writers of a key form a prefix
 * of its list (rule O2). A transaction is in or out as a whole (O3); and a
 * transaction acked before another was requested precedes it in the log,
 * so if the later one is in, the earlier one is too (O4).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashtest/ct_internal.h"

/* One write of a requested transaction to a key. */
typedef struct wref {
	const uint8_t *k;
	uint32_t klen;
	size_t tx, w;
	uint64_t seq;
} wref;

/* A key whose value more than one writer (or the base) could explain. */
typedef struct ambig {
	const uint8_t *k;
	uint32_t klen;
	size_t first, m; /* its writers: wr[first .. first + m) */
	size_t *cand;    /* candidate positions 0 (base) .. m */
	size_t ncand;
	bool done;       /* decided */
} ambig;

struct judge {
	ct_judge_in *in;
	ct_history *h;
	wref *wr;
	size_t nwr;
	ambig *amb;
	size_t namb, ambcap;
	ct_buf out;
	size_t lines, max_lines, problems;
	ct_verdict worst;
	uint64_t count[CT_NVERDICTS];
	uint64_t keys;
	bool prefix_reported;
};

static void say(struct judge *j, const char *fmt, ...) WD_PRINTF(2, 3);
static void say(struct judge *j, const char *fmt, ...)
{
	char line[640];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	ct_put_bytes(&j->out, line, strlen(line));
	ct_put_u8(&j->out, '\n');
	j->lines++;
}

static void problem(struct judge *j, ct_verdict v, const char *fmt, ...) WD_PRINTF(3, 4);
static void problem(struct judge *j, ct_verdict v, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	j->count[v]++;
	j->problems++;
	if (v > j->worst)
		j->worst = v;
	if (j->lines >= j->max_lines)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	say(j, "%s: %s", ct_verdict_name(v), msg);
}

/* "txn 17 (sync, acked)" */
static void tx_str(const ct_tx *t, char *out, size_t cap)
{
	const char *st = t->state == CT_TX_ACKED ? "acknowledged"
			 : t->state == CT_TX_ABORTED ? "aborted" : "requested, not acknowledged";
	snprintf(out, cap, "txn %llu (%s%s)", (unsigned long long)t->id,
		 t->state == CT_TX_ABORTED ? "" : t->sync ? "sync, " : "async, ", st);
}

static void key_str(const uint8_t *k, size_t kl, char *out, size_t cap)
{
	ct_ckey_str(k, kl, out, cap);
}

/* ---- setup: who must be in, who wrote what ------------------------------------ */

/*
 * Who must be in. An asynchronous commit needs both: its age (DESIGN.md
 * section 3: acked 3 x wal_writer_delay before the crash), and a WAL
 * writer cycle that started a delay after the ACK and ended without an
 * error before the crash. Such a cycle leaves the commit durable
 * (wal/README.md P4): it reads the reserved end after the commit and
 * flushes up to it, unless its last flush is less than a delay old - and
 * that flush started after the ACK and succeeded. Counts the old enough
 * ones and those the second condition excused.
 */
static void mark_must(struct judge *j)
{
	uint64_t crash = j->h->last_t, ran = j->h->writer_done_t;
	j->in->async_old = j->in->async_excused = 0;
	for (size_t i = 0; i < j->h->ntx; i++) {
		ct_tx *t = &j->h->tx[i];
		bool old = t->state == CT_TX_ACKED && !t->sync &&
			   t->t_ack + j->in->async_window_ns <= crash;
		bool seen = ran && t->t_ack + j->in->writer_delay_ns <= ran;
		j->in->async_old += old;
		j->in->async_excused += old && !seen;
		t->must = t->state == CT_TX_ACKED && (t->sync || (old && seen));
		t->fate = t->must ? CT_FATE_IN : CT_FATE_UNKNOWN;
		t->why_in[0] = t->why_out[0] = '\0';
		if (t->must)
			snprintf(t->why_in, sizeof t->why_in, "it was acknowledged%s",
				 t->sync ? "" : " long enough before the crash, and a WAL "
					       "writer cycle after it ended");
	}
}

static int wref_cmp(const void *a, const void *b)
{
	const wref *x = a, *y = b;
	int c = ct_key_cmp(x->k, x->klen, y->k, y->klen);
	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void collect_writes(struct judge *j)
{
	size_t n = 0;
	for (size_t i = 0; i < j->h->ntx; i++)
		if (j->h->tx[i].state != CT_TX_ABORTED)
			n += j->h->tx[i].nw;
	if (!(j->wr = calloc(n + 1, sizeof *j->wr)))
		abort();
	for (size_t i = 0; i < j->h->ntx; i++) {
		const ct_tx *t = &j->h->tx[i];
		if (t->state == CT_TX_ABORTED)
			continue;
		for (size_t w = 0; w < t->nw; w++)
			j->wr[j->nwr++] = (wref){t->w[w].k, t->w[w].klen, i, w, t->req_seq};
	}
	qsort(j->wr, j->nwr, sizeof *j->wr, wref_cmp);
}

/* The first write to k in wr, and how many there are. */
static size_t writers_of(const struct judge *j, const uint8_t *k, size_t kl, size_t *m)
{
	size_t lo = 0, hi = j->nwr, first;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ct_key_cmp(j->wr[mid].k, j->wr[mid].klen, k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	first = lo;
	while (lo < j->nwr && ct_key_cmp(j->wr[lo].k, j->wr[lo].klen, k, kl) == 0)
		lo++;
	*m = lo - first;
	return first;
}

static ct_tx *wtx(const struct judge *j, size_t first, size_t pos) /* pos 1..m */
{
	return &j->h->tx[j->wr[first + pos - 1].tx];
}

static const ct_kv *wkv(const struct judge *j, size_t first, size_t pos)
{
	const wref *r = &j->wr[first + pos - 1];
	return &j->h->tx[r->tx].w[r->w];
}

static bool same(const ct_kv *rv, const ct_kv *want)
{
	bool rp = rv && rv->present, wp = want && want->present;
	if (rp != wp)
		return false;
	return !rp || (rv->vlen == want->vlen && memcmp(rv->v, want->v, rv->vlen) == 0);
}

/* After a problem on k: its writers in order, and what the state shows. */
static void key_history(struct judge *j, const uint8_t *k, size_t kl, size_t first, size_t m,
			const ct_kv *rv)
{
	const ct_kv *bv = ct_kvset_find(j->in->base, k, kl);
	char line[600], ks[96];
	size_t n;
	ct_tag tag;
	const char *why;
	if (j->lines >= j->max_lines)
		return;
	key_str(k, kl, ks, sizeof ks);
	n = (size_t)snprintf(line, sizeof line, "  %s: base %s", ks, bv ? "present" : "absent");
	for (size_t i = 1; i <= m && i <= 12 && n < sizeof line; i++) {
		const ct_tx *t = wtx(j, first, i);
		const ct_kv *w = wkv(j, first, i);
		n += (size_t)snprintf(line + n, sizeof line - n, ", txn %llu %s%s%s",
				      (unsigned long long)t->id, w->present ? "put" : "del",
				      t->state == CT_TX_ACKED ? (t->sync ? "(sync ack)" : "(async ack)")
							      : "(in flight)",
				      t->must ? "!" : "");
	}
	if (m > 12 && n < sizeof line)
		n += (size_t)snprintf(line + n, sizeof line - n, ", ... (%zu writers)", m);
	if (n < sizeof line) {
		if (!rv || !rv->present)
			snprintf(line + n, sizeof line - n, "; the state: absent");
		else if (ct_value_check(k, kl, rv->v, rv->vlen, &tag, &why))
			snprintf(line + n, sizeof line - n, "; the state: txn %llu op %u",
				 (unsigned long long)tag.txn, tag.op);
		else
			snprintf(line + n, sizeof line - n, "; the state: a damaged value");
	}
	say(j, "%s", line);
}

/* ---- a value no allowed state holds --------------------------------------------- */

/* k shows rv, which matches neither the base nor any writer of k: name whose
 * it is. must_pos: the last writer that must be in (0: none). */
static void foreign(struct judge *j, const uint8_t *k, size_t kl, const ct_kv *rv,
		    size_t first, size_t must_pos)
{
	char ks[96], ts[96];
	const char *why;
	const ct_tx *x;
	ct_tag tag;
	key_str(k, kl, ks, sizeof ks);
	if (!rv || !rv->present) {
		if (must_pos) {
			tx_str(wtx(j, first, must_pos), ts, sizeof ts);
			problem(j, CT_LOST_ACK, "%s is absent; %s wrote it", ks, ts);
		} else {
			problem(j, CT_LOST_ACK, "%s is absent; the base state holds it", ks);
		}
		return;
	}
	if (!ct_value_check(k, kl, rv->v, rv->vlen, &tag, &why)) {
		problem(j, CT_SILENT_CORRUPT, "%s: a value of %u bytes read without an error, "
			"but %s", ks, rv->vlen, why);
		return;
	}
	x = ct_history_find(j->h, tag.txn);
	if (!x && tag.txn < CT_BASE_TXN_LIMIT && j->in->base->n > 0) {
		problem(j, CT_LOST_ACK, "%s shows an earlier value of the base (txn %llu): the "
			"base's own value is lost", ks, (unsigned long long)tag.txn);
	} else if (!x) {
		problem(j, CT_DIRTY, "%s shows a value of txn %llu, which never asked to commit "
			"(unfinished at the crash)", ks, (unsigned long long)tag.txn);
	} else if (x->state == CT_TX_ABORTED) {
		problem(j, CT_DIRTY, "%s shows a value of txn %llu, which aborted", ks,
			(unsigned long long)tag.txn);
	} else {
		bool rolled = false;
		for (size_t i = 0; i < x->nrolled; i++)
			rolled |= x->rolled[i] == tag.op;
		tx_str(x, ts, sizeof ts);
		if (rolled)
			problem(j, CT_DIRTY, "%s shows operation %u of %s, undone by a rollback to "
				"a savepoint", ks, tag.op, ts);
		else
			problem(j, CT_PARTIAL, "%s shows operation %u of %s, which a later "
				"operation of the same transaction overwrote", ks, tag.op, ts);
	}
}

/* ---- fates: in or out, with the key that says so --------------------------------- */

static void set_fate(struct judge *j, ct_tx *t, int fate, const uint8_t *k, size_t kl,
		     const char *how)
{
	char ks[96], ts[96];
	if (t->fate == fate)
		return;
	key_str(k, kl, ks, sizeof ks);
	if (t->fate == CT_FATE_UNKNOWN) {
		t->fate = fate;
		if (fate == CT_FATE_OUT) {
			t->out_k = k;
			t->out_klen = (uint32_t)kl;
		}
		snprintf(fate == CT_FATE_IN ? t->why_in : t->why_out, sizeof t->why_in, "%.95s %.200s",
			 ks, how);
		return;
	}
	tx_str(t, ts, sizeof ts);
	if (fate == CT_FATE_OUT && t->must)
		problem(j, CT_LOST_ACK, "%s is missing: %s %s", ts, ks, how);
	else if (fate == CT_FATE_OUT)
		problem(j, CT_PARTIAL, "%s is only partly there: %s; but %s %s", ts, t->why_in,
			ks, how);
	else
		problem(j, CT_PARTIAL, "%s is only partly there: %s; but %s %s", ts, ks, how,
			t->why_out);
	size_t m, first = writers_of(j, k, kl, &m);
	key_history(j, k, kl, first, m, ct_kvset_find(&j->in->rec->rows, k, kl));
	if (fate == CT_FATE_IN && t->out_k) { /* and the key that said out */
		first = writers_of(j, t->out_k, t->out_klen, &m);
		key_history(j, t->out_k, t->out_klen, first, m,
			    ct_kvset_find(&j->in->rec->rows, t->out_k, t->out_klen));
	}
}

/* The state shows writer c of k (0: the base): writers 1..c are in, the
 * rest out (O2). */
static void cut(struct judge *j, const uint8_t *k, size_t kl, size_t first, size_t m,
		size_t c)
{
	char how[160];
	for (size_t i = 1; i <= m; i++) {
		ct_tx *t = wtx(j, first, i);
		if (i == c)
			snprintf(how, sizeof how, "shows its value");
		else if (i < c)
			snprintf(how, sizeof how, "shows txn %llu's value, written after it",
				 (unsigned long long)wtx(j, first, c)->id);
		else if (c == 0)
			snprintf(how, sizeof how, "shows the base value, written before it");
		else
			snprintf(how, sizeof how, "shows txn %llu's value, written before it",
				 (unsigned long long)wtx(j, first, c)->id);
		set_fate(j, t, i <= c ? CT_FATE_IN : CT_FATE_OUT, k, kl, how);
	}
}

/* ---- per key --------------------------------------------------------------- */

static void judge_key(struct judge *j, const uint8_t *k, size_t kl)
{
	const ct_kv *rv = ct_kvset_find(&j->in->rec->rows, k, kl);
	const ct_kv *bv = ct_kvset_find(j->in->base, k, kl);
	size_t m, first = writers_of(j, k, kl, &m), must_pos = 0, ncand = 0;
	size_t *cand = calloc(m + 2, sizeof *cand);
	char ks[96], ts[96];
	if (!cand)
		abort();
	j->keys++;
	for (size_t i = 1; i <= m; i++)
		if (wtx(j, first, i)->must)
			must_pos = i;
	if (same(rv, bv))
		cand[ncand++] = 0;
	for (size_t i = 1; i <= m; i++)
		if (same(rv, wkv(j, first, i)))
			cand[ncand++] = i;
	if (ncand == 0) {
		foreign(j, k, kl, rv, first, must_pos);
		key_history(j, k, kl, first, m, rv);
	} else if (cand[ncand - 1] < must_pos) {
		key_str(k, kl, ks, sizeof ks);
		tx_str(wtx(j, first, must_pos), ts, sizeof ts);
		if (cand[ncand - 1] == 0)
			problem(j, CT_LOST_ACK, "%s is missing: %s shows the base value", ts, ks);
		else
			problem(j, CT_LOST_ACK, "%s is missing: %s shows the earlier txn %llu's "
				"value", ts, ks,
				(unsigned long long)wtx(j, first, cand[ncand - 1])->id);
		key_history(j, k, kl, first, m, rv);
	} else if (ncand == 1) {
		cut(j, k, kl, first, m, cand[0]);
	} else {
		if (j->namb == j->ambcap) {
			j->ambcap = j->ambcap ? 2 * j->ambcap : 64;
			if (!(j->amb = realloc(j->amb, j->ambcap * sizeof *j->amb)))
				abort();
		}
		j->amb[j->namb++] = (ambig){k, (uint32_t)kl, first, m, cand, ncand, false};
		return;
	}
	free(cand);
}

/* Whether the state can show writer c of a key: writers 1..c may be in,
 * the rest may be out, by the fates known so far. */
static bool feasible(const struct judge *j, const ambig *a, size_t c)
{
	for (size_t i = 1; i <= a->m; i++) {
		int f = wtx(j, a->first, i)->fate;
		if ((i <= c && f == CT_FATE_OUT) || (i > c && f == CT_FATE_IN))
			return false;
	}
	return true;
}

/* A key with several candidates (deletes look alike). 1: decided (one
 * candidate left, its fates set, or none left: a problem), 0: still open. */
static int judge_ambiguous(struct judge *j, ambig *a)
{
	size_t n = 0, c = 0;
	char ks[96], ts[96];
	for (size_t i = 0; i < a->ncand; i++)
		if (feasible(j, a, a->cand[i])) {
			n++;
			c = a->cand[i];
		}
	if (n == 1)
		cut(j, a->k, a->klen, a->first, a->m, c);
	if (n != 0)
		return n == 1;
	/* none: name the fate it contradicts, from the newest candidate */
	key_str(a->k, a->klen, ks, sizeof ks);
	c = a->cand[a->ncand - 1];
	for (size_t i = a->m; i > c; i--) {
		const ct_tx *t = wtx(j, a->first, i);
		if (t->fate == CT_FATE_IN) {
			tx_str(t, ts, sizeof ts);
			problem(j, t->must ? CT_LOST_ACK : CT_PARTIAL, "%s is only partly there: "
				"%s; but %s shows an older value", ts, t->why_in, ks);
			key_history(j, a->k, a->klen, a->first, a->m,
				    ct_kvset_find(&j->in->rec->rows, a->k, a->klen));
			return 1;
		}
	}
	for (size_t i = 1; i <= c; i++) {
		const ct_tx *t = wtx(j, a->first, i);
		if (t->fate == CT_FATE_OUT) {
			tx_str(t, ts, sizeof ts);
			problem(j, CT_PARTIAL, "%s is missing (%s), yet %s shows a value written "
				"after it", ts, t->why_out, ks);
			key_history(j, a->k, a->klen, a->first, a->m,
				    ct_kvset_find(&j->in->rec->rows, a->k, a->klen));
			return 1;
		}
	}
	return 1;
}

/*
 * O4: a transaction in the state brings every one acked before its REQ
 * (its commit record precedes in the log); one out takes out every one
 * requested after its ACK. Only transactions that changed something count:
 * one that only read commits without a log record (txn/README.md I5).
 * Returns whether a fate changed.
 */
static bool propagate_prefix(struct judge *j)
{
	const ct_tx *in = NULL, *out = NULL;
	char a[96], b[96], how[320];
	bool changed = false;
	for (size_t i = 0; i < j->h->ntx; i++) {
		const ct_tx *t = &j->h->tx[i];
		if (t->fate == CT_FATE_IN && t->state != CT_TX_ABORTED && t->wrote &&
		    (!in || t->req_seq > in->req_seq))
			in = t;
		if (t->state == CT_TX_ACKED && t->fate == CT_FATE_OUT &&
		    (!out || t->ack_seq < out->ack_seq))
			out = t;
	}
	if (in && out && out->ack_seq < in->req_seq) {
		if (j->prefix_reported)
			return false;
		j->prefix_reported = true;
		tx_str(out, a, sizeof a);
		tx_str(in, b, sizeof b);
		problem(j, CT_LOST_ACK, "%s is missing (%s), yet %s, requested after it was "
			"acknowledged, is there (%s)", a, out->why_out, b, in->why_in);
		if (out->out_k) {
			size_t m, first = writers_of(j, out->out_k, out->out_klen, &m);
			key_history(j, out->out_k, out->out_klen, first, m,
				    ct_kvset_find(&j->in->rec->rows, out->out_k, out->out_klen));
		}
		return false;
	}
	for (size_t i = 0; i < j->h->ntx; i++) {
		ct_tx *t = &j->h->tx[i];
		if (t->fate != CT_FATE_UNKNOWN || t->state == CT_TX_ABORTED)
			continue;
		if (in && t->state == CT_TX_ACKED && t->ack_seq < in->req_seq) {
			t->fate = CT_FATE_IN;
			snprintf(how, sizeof how, "acknowledged before txn %llu, which is in, was "
				 "requested", (unsigned long long)in->id);
			snprintf(t->why_in, sizeof t->why_in, "%s", how);
			changed = true;
		} else if (out && t->wrote && t->req_seq > out->ack_seq) {
			t->fate = CT_FATE_OUT;
			snprintf(t->why_out, sizeof t->why_out, "requested after txn %llu, which "
				 "is out, was acknowledged", (unsigned long long)out->id);
			changed = true;
		}
	}
	return changed;
}

/* ---- the state ---------------------------------------------------------------- */

static int key_ptr_cmp(const void *a, const void *b)
{
	const ct_kv *x = a, *y = b;
	return ct_key_cmp(x->k, x->klen, y->k, y->klen);
}

/* Every key any source names, once, in order (pointers only). */
static ct_kv *universe(struct judge *j, const ct_kvset *okeys, size_t *n)
{
	const ct_kvset *rows = &j->in->rec->rows, *base = j->in->base;
	size_t cap = j->nwr + rows->n + base->n + okeys->n + 1, u = 0;
	ct_kv *all = calloc(cap, sizeof *all);
	if (!all)
		abort();
	for (size_t i = 0; i < j->nwr; i++)
		all[u++] = (ct_kv){.k = (uint8_t *)j->wr[i].k, .klen = j->wr[i].klen};
	for (size_t i = 0; i < rows->n; i++)
		all[u++] = (ct_kv){.k = rows->kv[i].k, .klen = rows->kv[i].klen};
	for (size_t i = 0; i < base->n; i++)
		all[u++] = (ct_kv){.k = base->kv[i].k, .klen = base->kv[i].klen};
	for (size_t i = 0; i < okeys->n; i++)
		all[u++] = (ct_kv){.k = okeys->kv[i].k, .klen = okeys->kv[i].klen};
	qsort(all, u, sizeof *all, key_ptr_cmp);
	*n = 0;
	for (size_t i = 0; i < u; i++)
		if (*n == 0 || key_ptr_cmp(&all[*n - 1], &all[i]) != 0)
			all[(*n)++] = all[i];
	return all;
}

/* The fast path: a key whose writers must all be in has exactly the
 * oracle's value. */
static bool oracle_agrees(struct judge *j, const uint8_t *k, size_t kl)
{
	const ct_kv *rv = ct_kvset_find(&j->in->rec->rows, k, kl);
	const uint8_t *v;
	size_t m, vlen, first = writers_of(j, k, kl, &m);
	int got;
	for (size_t i = 1; i <= m; i++)
		if (!wtx(j, first, i)->must)
			return false;
	got = j->in->oracle ? ct_oracle_get(j->in->oracle, k, kl, &v, &vlen) : -1;
	if (got < 0)
		return false;
	if (!got)
		return !rv;
	return rv && rv->vlen == vlen && memcmp(rv->v, v, vlen) == 0;
}

static void judge_rows(struct judge *j)
{
	ct_kvset okeys = {0};
	size_t n;
	ct_kv *all;
	if (j->in->oracle && ct_oracle_keys(j->in->oracle, &okeys) != 0)
		problem(j, CT_CHILD_ERROR, "the LMDB oracle: %s", wd_last_error());
	all = universe(j, &okeys, &n);
	for (size_t i = 0; i < n; i++) {
		if (oracle_agrees(j, all[i].k, all[i].klen)) {
			j->keys++;
			continue;
		}
		judge_key(j, all[i].k, all[i].klen);
	}
	/* the fixpoint: keys with one candidate left and O4 decide fates */
	for (bool changed = true; changed;) {
		changed = propagate_prefix(j);
		for (size_t i = 0; i < j->namb; i++)
			if (!j->amb[i].done && judge_ambiguous(j, &j->amb[i]) != 0) {
				j->amb[i].done = true;
				changed = true;
			}
	}
	free(all);
	ct_kvset_free(&okeys);
}

/* Why an OK state is OK, in one line. */
static void explain_ok(struct judge *j)
{
	uint64_t must = 0, may_in = 0, may_out = 0, may_unknown = 0;
	for (size_t i = 0; i < j->h->ntx; i++) {
		const ct_tx *t = &j->h->tx[i];
		if (t->state == CT_TX_ABORTED)
			continue;
		if (t->must)
			must++;
		else if (t->fate == CT_FATE_IN)
			may_in++;
		else if (t->fate == CT_FATE_OUT)
			may_out++;
		else
			may_unknown++;
	}
	say(j, "OK: %llu keys; %llu commits that had to survive did; of %llu that may or "
	    "may not have: %llu in, %llu out, %llu undecided (no key tells); %llu aborted "
	    "transactions left no trace",
	    (unsigned long long)j->keys, (unsigned long long)must,
	    (unsigned long long)(may_in + may_out + may_unknown), (unsigned long long)may_in,
	    (unsigned long long)may_out, (unsigned long long)may_unknown,
	    (unsigned long long)j->h->aborted);
	if (j->in->async_excused)
		say(j, "%llu asynchronous commits were old enough to have to survive but "
		    "were excused: no WAL writer cycle that started a wal_writer_delay "
		    "after them ended before the crash",
		    (unsigned long long)j->in->async_excused);
}

ct_verdict ct_judge(ct_judge_in *in, size_t max_lines, char **detail)
{
	struct judge j = {.in = in, .h = in->h, .max_lines = max_lines ? max_lines : 1};
	const ct_recovered *rec = in->rec;
	char msg[512];
	if (in->child_error)
		problem(&j, CT_CHILD_ERROR, "the workload failed by itself: %s",
			in->h->error ? in->h->error : "(no message)");
	if (in->h->oracle_rc != 0)
		problem(&j, CT_CHILD_ERROR, "the LMDB oracle failed");
	if (in->h->malformed || rec->malformed) /* what was not read cannot be judged */
		problem(&j, CT_CHILD_ERROR, "malformed messages: %llu from the workload child, "
			"%llu from the recovery child", (unsigned long long)in->h->malformed,
			(unsigned long long)rec->malformed);
	if (!rec->opened && !in->h->ready && rec->refused && in->base->n == 0 &&
	    rec->open_error && strstr(rec->open_error, CT_UNFINISHED_CREATION)) {
		/* O1: the crash came before the database was created (a workload
		 * with no base: bank's and ring's were closed cleanly before):
		 * refusing it with this clear error is right (txn/README.md P1
		 * step 3); any other refusal is NO-RECOVERY */
		say(&j, "OK: the crash came before the database's creation finished; the open "
		    "refused it with a clear error: %s", rec->open_error ? rec->open_error : "");
	} else if (!rec->opened) {
		problem(&j, CT_NO_RECOVERY, "%s", rec->open_error ? rec->open_error : "no report");
	} else {
		if (rec->struct_msg)
			problem(&j, CT_STRUCT, "%s", rec->struct_msg);
		if (rec->complete) {
			mark_must(&j);
			collect_writes(&j);
			judge_rows(&j);
			if (in->wl && in->wl->invariant &&
			    in->wl->invariant(&rec->rows, msg, sizeof msg) != 0)
				problem(&j, CT_INVARIANT, "%s", msg);
		}
	}
	if (j.worst == CT_OK && rec->opened)
		explain_ok(&j);
	else if (j.problems > j.lines)
		say(&j, "(%zu more problems not shown)", j.problems - j.lines);
	ct_put_u8(&j.out, 0);
	*detail = (char *)j.out.p;
	for (size_t i = 0; i < j.namb; i++)
		free(j.amb[i].cand);
	free(j.amb);
	free(j.wr);
	return j.worst;
}

static const char *const verdict_names[CT_NVERDICTS] = {
	"OK", "CHILD-ERROR", "INVARIANT", "PARTIAL", "DIRTY", "LOST-ACK",
	"SILENT-CORRUPT", "STRUCT", "NO-RECOVERY",
};

const char *ct_verdict_name(ct_verdict v)
{
	return (unsigned)v < CT_NVERDICTS ? verdict_names[v] : "?";
}
