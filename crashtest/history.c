/*
 * history.c - the driver's record of what the workload child said (README
 * "Protocols" P2, steps D1-D3): every commit requested with its final
 * writes (values rebuilt from the message) and undone operations, every
 * acknowledgement applied to the LMDB oracle, every abort, and the DONE
 * counters; and the LMDB oracle itself: the base state committed once per
 * job, each state's acknowledged changes in one write transaction that is
 * aborted when the state ends. Entry points: ct_history_*, ct_oracle_*.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashtest/ct_internal.h"
#include "storage/bytes.h"

/* ---- the LMDB oracle --------------------------------------------------------
 *
 * Each LMDB record is u64 req_seq of the transaction that wrote it (0: the
 * base), u8 present, then the value. A delete leaves a record with present
 * 0, so that an acknowledgement that arrives late (two threads' ACKs can
 * cross in the pipe) never overwrites the change of a transaction that
 * took the key after it: the writes of a key are ordered by REQ (row
 * locks), not by ACK.
 */

#define ORC_HDR 9

static void *orc_record(uint64_t seq, const ct_kv *kv, size_t *len)
{
	uint8_t *p = malloc(ORC_HDR + kv->vlen + 1);
	if (!p)
		abort();
	put_le64(p, seq);
	p[8] = kv->present;
	if (kv->present && kv->vlen)
		memcpy(p + ORC_HDR, kv->v, kv->vlen);
	*len = ORC_HDR + (kv->present ? kv->vlen : 0);
	return p;
}

static int mdb_fail(int m, const char *what)
{
	return err_set(WD_EIO, "crashtest oracle: %s: %s", what, mdb_strerror(m));
}

int ct_oracle_open(ct_oracle *o, const char *path, const ct_kvset *base)
{
	MDB_txn *t;
	int m;
	*o = (ct_oracle){0};
	if ((m = mdb_env_create(&o->env)) != 0)
		return mdb_fail(m, "mdb_env_create");
	/* one thread uses it; no lock file, no sync: scratch memory with keys */
	if ((m = mdb_env_set_mapsize(o->env, 1ull << 30)) != 0 ||
	    (m = mdb_env_open(o->env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC |
				  MDB_NOMETASYNC | MDB_WRITEMAP, 0600)) != 0 ||
	    (m = mdb_txn_begin(o->env, NULL, 0, &t)) != 0)
		goto fail;
	if ((m = mdb_dbi_open(t, NULL, 0, &o->dbi)) != 0) {
		mdb_txn_abort(t);
		goto fail;
	}
	for (size_t i = 0; base && i < base->n; i++) {
		MDB_val k = {base->kv[i].klen, base->kv[i].k}, v;
		v.mv_data = orc_record(0, &base->kv[i], &v.mv_size);
		m = mdb_put(t, o->dbi, &k, &v, 0);
		free(v.mv_data);
		if (m != 0) {
			mdb_txn_abort(t);
			goto fail;
		}
	}
	if ((m = mdb_txn_commit(t)) != 0)
		goto fail;
	return 0;
fail:
	mdb_env_close(o->env);
	o->env = NULL;
	return mdb_fail(m, path);
}

int ct_oracle_begin(ct_oracle *o)
{
	int m = mdb_txn_begin(o->env, NULL, 0, &o->txn);
	if (m != 0) {
		o->txn = NULL;
		return mdb_fail(m, "mdb_txn_begin");
	}
	return 0;
}

/* D2: an acknowledged transaction's final writes, unless a transaction
 * requested later already wrote the key. */
int ct_oracle_apply(ct_oracle *o, const ct_tx *t)
{
	for (size_t i = 0; i < t->nw; i++) {
		MDB_val k = {t->w[i].klen, t->w[i].k}, v, old;
		int m = mdb_get(o->txn, o->dbi, &k, &old);
		if (m == 0 && old.mv_size >= ORC_HDR && get_le64(old.mv_data) > t->req_seq)
			continue;
		if (m != 0 && m != MDB_NOTFOUND)
			return mdb_fail(m, "reading the oracle");
		v.mv_data = orc_record(t->req_seq, &t->w[i], &v.mv_size);
		m = mdb_put(o->txn, o->dbi, &k, &v, 0);
		free(v.mv_data);
		if (m != 0)
			return mdb_fail(m, "applying an acknowledged commit");
	}
	return 0;
}

int ct_oracle_get(ct_oracle *o, const uint8_t *k, size_t klen, const uint8_t **v,
		  size_t *vlen)
{
	MDB_val key = {klen, (void *)k}, val;
	int m = mdb_get(o->txn, o->dbi, &key, &val);
	if (m == MDB_NOTFOUND)
		return 0;
	if (m != 0)
		return mdb_fail(m, "mdb_get");
	if (val.mv_size < ORC_HDR)
		return err_set(WD_ECORRUPT, "crashtest oracle: a record of %zu bytes", val.mv_size);
	if (!((const uint8_t *)val.mv_data)[8])
		return 0; /* deleted */
	*v = (const uint8_t *)val.mv_data + ORC_HDR;
	*vlen = val.mv_size - ORC_HDR;
	return 1;
}

int ct_oracle_keys(ct_oracle *o, ct_kvset *keys)
{
	MDB_cursor *c;
	MDB_val k, v;
	int m = mdb_cursor_open(o->txn, o->dbi, &c);
	if (m != 0)
		return mdb_fail(m, "mdb_cursor_open");
	for (m = mdb_cursor_get(c, &k, &v, MDB_FIRST); m == 0;
	     m = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		ct_kvset_add(keys, k.mv_data, k.mv_size, NULL, 0, false);
	mdb_cursor_close(c);
	return m == MDB_NOTFOUND ? 0 : mdb_fail(m, "mdb_cursor_get");
}

void ct_oracle_end(ct_oracle *o)
{
	if (o->txn)
		mdb_txn_abort(o->txn); /* back to the base state */
	o->txn = NULL;
}

void ct_oracle_close(ct_oracle *o)
{
	ct_oracle_end(o);
	if (o->env)
		mdb_env_close(o->env);
	o->env = NULL;
}

/* ---- the history ------------------------------------------------------------ */

void ct_history_init(ct_history *h, ct_oracle *o)
{
	*h = (ct_history){.oracle = o};
}

static void index_put(ct_history *h, uint64_t id, size_t idx)
{
	if (2 * (h->ntx + 1) > h->hcap) {
		size_t cap = h->hcap ? 2 * h->hcap : 256;
		uint64_t *k = calloc(cap, sizeof *k);
		size_t *v = calloc(cap, sizeof *v);
		if (!k || !v)
			abort();
		for (size_t i = 0; i < h->hcap; i++)
			if (h->hval[i]) {
				size_t j = (size_t)(ct_fnv(CT_FNV_INIT, &h->hkey[i], 8) % cap);
				while (v[j])
					j = (j + 1) % cap;
				k[j] = h->hkey[i];
				v[j] = h->hval[i];
			}
		free(h->hkey);
		free(h->hval);
		h->hkey = k;
		h->hval = v;
		h->hcap = cap;
	}
	size_t j = (size_t)(ct_fnv(CT_FNV_INIT, &id, 8) % h->hcap);
	while (h->hval[j] && h->hkey[j] != id)
		j = (j + 1) % h->hcap;
	h->hkey[j] = id;
	h->hval[j] = idx + 1;
}

static ct_tx *find_mut(const ct_history *h, uint64_t id)
{
	if (!h->hcap)
		return NULL;
	size_t j = (size_t)(ct_fnv(CT_FNV_INIT, &id, 8) % h->hcap);
	while (h->hval[j]) {
		if (h->hkey[j] == id)
			return &h->tx[h->hval[j] - 1];
		j = (j + 1) % h->hcap;
	}
	return NULL;
}

const ct_tx *ct_history_find(const ct_history *h, uint64_t id)
{
	return find_mut(h, id);
}

static ct_tx *add_tx(ct_history *h, uint64_t id)
{
	if (h->ntx == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		ct_tx *tx = realloc(h->tx, cap * sizeof *tx);
		if (!tx)
			abort();
		h->tx = tx;
		h->cap = cap;
	}
	index_put(h, id, h->ntx);
	h->tx[h->ntx] = (ct_tx){.id = id};
	return &h->tx[h->ntx++];
}

static void note_time(ct_history *h, uint64_t t)
{
	if (!h->first_t || t < h->first_t)
		h->first_t = t;
	if (t > h->last_t)
		h->last_t = t;
}

/* D1: REQ - the transaction's final writes with their values rebuilt. */
static int take_req(ct_history *h, ct_cur *c)
{
	uint64_t id = ct_get_u64(c);
	uint8_t flags = ct_get_u8(c);
	uint64_t t = ct_get_u64(c);
	uint32_t nw = ct_get_u32(c);
	ct_tx *x;
	if (c->bad || find_mut(h, id))
		return -1;
	x = add_tx(h, id);
	x->sync = flags & 1;
	x->wrote = (flags & 2) != 0;
	x->state = CT_TX_REQUESTED;
	x->req_seq = ++h->seq;
	x->t_req = t;
	note_time(h, t);
	ct_kvset ws = {0};
	for (uint32_t i = 0; i < nw && !c->bad; i++) {
		uint16_t cklen = ct_get_u16(c);
		const uint8_t *ck = ct_get_bytes(c, cklen);
		bool del = ct_get_u8(c) != 0;
		uint32_t op = ct_get_u32(c), plen = ct_get_u32(c);
		const uint8_t *payload = ct_get_bytes(c, plen);
		uint32_t total = ct_get_u32(c);
		if (c->bad || !ck || (!payload && plen) || (!del && total < CT_VAL_HDR + plen) ||
		    total > (1u << 30)) {
			c->bad = true;
			break;
		}
		if (del) {
			ct_kvset_add(&ws, ck, cklen, NULL, 0, false);
		} else {
			uint8_t *v = malloc(total);
			if (!v)
				abort();
			ct_value_build(ck, cklen, id, op, payload, plen, total, v);
			ct_kvset_add(&ws, ck, cklen, v, total, true);
			free(v);
		}
		ws.kv[ws.n - 1].op = op;
	}
	x->w = ws.kv;
	x->nw = ws.n;
	x->nrolled = ct_get_u32(c);
	if (c->bad || x->nrolled > c->len) {
		x->nrolled = 0;
		return -1;
	}
	x->rolled = calloc(x->nrolled + 1, sizeof *x->rolled);
	if (!x->rolled)
		abort();
	for (size_t i = 0; i < x->nrolled; i++)
		x->rolled[i] = ct_get_u32(c);
	return c->bad ? -1 : 0;
}

/* D2: ACK - acknowledged: into the oracle. */
static int take_ack(ct_history *h, ct_cur *c)
{
	uint64_t id = ct_get_u64(c), t = ct_get_u64(c);
	ct_tx *x = find_mut(h, id);
	if (c->bad || !x || x->state != CT_TX_REQUESTED)
		return -1;
	x->state = CT_TX_ACKED;
	x->ack_seq = ++h->seq;
	x->t_ack = t;
	note_time(h, t);
	h->acked++;
	if (h->oracle && h->oracle_rc == 0)
		h->oracle_rc = ct_oracle_apply(h->oracle, x);
	return 0;
}

/* ABORT - remembered only to name the transaction in a verdict. */
static int take_abort(ct_history *h, ct_cur *c)
{
	uint64_t id = ct_get_u64(c), t = ct_get_u64(c);
	ct_tx *x;
	if (c->bad || find_mut(h, id))
		return -1;
	x = add_tx(h, id);
	x->state = CT_TX_ABORTED;
	x->req_seq = ++h->seq;
	note_time(h, t);
	h->aborted++;
	return 0;
}

/* WRITER - the WAL writer started or ended a cycle: remembers the start
 * of the last cycle that ended (the async rule, README "Oracle rules").
 * An end without its start (none: the observer is set before the
 * database opens) counts for nothing. */
static int take_writer(ct_history *h, ct_cur *c)
{
	uint8_t phase = ct_get_u8(c);
	uint64_t t = ct_get_u64(c);
	if (c->bad || phase > 1)
		return -1;
	note_time(h, t);
	if (phase == 0) {
		h->writer_start_t = t;
	} else if (h->writer_start_t) {
		h->writer_done_t = h->writer_start_t;
		h->writer_start_t = 0;
	}
	return 0;
}

static int take_done(ct_history *h, ct_cur *c)
{
	ct_profile *p = &h->prof;
	uint32_t np;
	p->commits = ct_get_u64(c);
	p->async_commits = ct_get_u64(c);
	p->aborts = ct_get_u64(c);
	p->sp_rollbacks = ct_get_u64(c);
	p->deadlocks = ct_get_u64(c);
	p->big_values = ct_get_u64(c);
	p->checkpoints = ct_get_u64(c);
	p->open_at_end = ct_get_u64(c);
	p->ops = ct_get_u64(c);
	p->io_calls = ct_get_u64(c);
	np = ct_get_u32(c);
	if (c->bad || np != ct_point_count())
		return -1;
	free(p->hits);
	if (!(p->hits = calloc(np + 1, sizeof *p->hits)))
		abort();
	p->npoints = np;
	for (uint32_t i = 0; i < np; i++)
		p->hits[i] = ct_get_u64(c);
	p->described = ct_get_u8(c) != 0;
	p->leaf_splits = ct_get_u64(c);
	p->internal_splits = ct_get_u64(c);
	p->unlinks = ct_get_u64(c);
	p->wal_checkpoints = ct_get_u64(c);
	p->segment_switches = ct_get_u64(c);
	p->xact_aborts = ct_get_u64(c);
	p->clrs = ct_get_u64(c);
	p->overflow_writes = ct_get_u64(c);
	p->records = ct_get_u64(c);
	free(p->hit_io);
	free(p->hit_off);
	p->hit_io = NULL;
	p->hit_off = NULL;
	if (ct_get_u8(c)) { /* a logging run: where each hit fell */
		size_t total = 0;
		if (!(p->hit_off = calloc(np + 1, sizeof *p->hit_off)))
			abort();
		for (uint32_t i = 0; i < np && !c->bad; i++) {
			/* n may differ from hits[i] by hits a background thread
			 * (the WAL writer's, the checkpointer's) made while DONE
			 * was being built: the list is what ct_place uses */
			uint32_t n = ct_get_u32(c);
			uint64_t *q;
			if (c->bad || n > (c->len - c->off) / 8)
				return -1;
			if (n && !(q = realloc(p->hit_io, (total + n) * sizeof *q)))
				abort();
			else if (n)
				p->hit_io = q;
			p->hit_off[i] = total;
			for (uint32_t k = 0; k < n; k++)
				p->hit_io[total++] = ct_get_u64(c);
		}
		p->hit_off[np] = total;
	}
	h->done = !c->bad;
	return c->bad ? -1 : 0;
}

int ct_history_take_stamped(ct_history *h, uint8_t kind, const uint8_t *body, size_t len)
{
	ct_cur c = {body, len, 0, false};
	h->stamp = ct_get_u64(&c); /* every workload message starts with it */
	if (c.bad)
		return -1;
	return ct_history_take(h, kind, body + 8, len - 8);
}

int ct_history_take(ct_history *h, uint8_t kind, const uint8_t *body, size_t len)
{
	ct_cur c = {body, len, 0, false};
	switch (kind) {
	case CT_M_START:
		h->io0 = ct_get_u64(&c);
		h->started = true;
		return c.bad ? -1 : 0;
	case CT_M_REQ:
		return take_req(h, &c);
	case CT_M_ACK:
		return take_ack(h, &c);
	case CT_M_ABORT:
		return take_abort(h, &c);
	case CT_M_DONE:
		return take_done(h, &c);
	case CT_M_READY:
		h->ready = true;
		return 0;
	case CT_M_ERROR:
		free(h->error);
		h->error = ct_get_str(&c);
		return 0;
	case CT_M_WRITER:
		return take_writer(h, &c);
	case CT_M_IOFAULT:
	case CT_M_PANIC:
	case CT_M_IOEND:
		return ct_ioerr_take(h, kind, &c);
	default:
		return -1;
	}
}

void ct_history_free(ct_history *h)
{
	for (size_t i = 0; i < h->ntx; i++) {
		ct_kvset ws = {h->tx[i].w, h->tx[i].nw, h->tx[i].nw};
		ct_kvset_free(&ws);
		free(h->tx[i].rolled);
	}
	free(h->tx);
	free(h->hkey);
	free(h->hval);
	free(h->error);
	ct_profile_free(&h->prof);
	ct_ioseen_free(&h->io);
	*h = (ct_history){0};
}

void ct_profile_free(ct_profile *p)
{
	free(p->hits);
	free(p->hit_io);
	free(p->hit_off);
	p->hits = p->hit_io = p->hit_off = NULL;
	p->npoints = 0;
}
