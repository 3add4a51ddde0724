/*
 * tables_engines.c - walden and LMDB behind the one interface of
 * bench/tables.h (open, attach, begin, put, get, del, cursor, commit,
 * abort, close), so that bench_tables.c and bench_txn.c run the very same
 * workload loops on both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "bench/tables.h"

/* -- walden -- */

static int w_fail(struct eh *h, int rc, const char *what)
{
	snprintf(h->err, sizeof h->err, "walden %s: %s: %s", what, wd_strerror(rc),
		 wd_last_error());
	return rc == WD_EDEADLOCK ? EH_DEADLOCK : -1;
}

/* The buffer w_get copies values into, one per handle. */
static int w_buf(struct eh *h)
{
	h->cap = h->o->value_bytes + 64;
	if (!(h->buf = malloc(h->cap)))
		return w_fail(h, WD_ENOMEM, "buffer");
	return 0;
}

/* Opens (creates) the database in dir and the table TABLES_TABLE_NAME in
 * it. */
static int w_open(struct eh *h, const char *dir)
{
	wd_options wo;
	int rc;
	if (h->o->wd)
		wo = *h->o->wd;
	else
		wd_options_default(&wo);
	wo.buffer_pool_bytes = h->o->pool_mb << 20;
	wo.synchronous_commit = !h->o->nosync;
	if (h->o->no_huge)
		wo.huge_pages = 0;
	if ((rc = w_buf(h)) != 0)
		return rc;
	if ((rc = wd_open(dir, &wo, &h->db)) != 0)
		return w_fail(h, rc, "wd_open");
	if ((rc = wd_begin(h->db, &h->txn)) != 0)
		return w_fail(h, rc, "wd_begin");
	if ((rc = wd_table_open(h->txn, TABLES_TABLE_NAME, WD_CREATE, &h->t)) != 0)
		return w_fail(h, rc, "wd_table_open");
	rc = wd_commit(h->txn);
	h->txn = NULL;
	return rc ? w_fail(h, rc, "wd_commit") : 0;
}

static int w_close(struct eh *h)
{
	int rc = wd_close(h->db);
	h->db = NULL;
	free(h->buf);
	h->buf = NULL;
	return rc ? w_fail(h, rc, "wd_close") : 0;
}

static int w_attach(struct eh *h, const struct eh *from)
{
	h->o = from->o;
	h->db = from->db;
	h->t = from->t;
	return w_buf(h);
}

static void w_detach(struct eh *h)
{
	free(h->buf);
	h->buf = NULL;
}

static int w_begin(struct eh *h, bool write)
{
	int rc = wd_begin(h->db, &h->txn);
	(void)write;
	return rc ? w_fail(h, rc, "wd_begin") : 0;
}

static int w_commit(struct eh *h)
{
	int rc = wd_commit(h->txn);
	h->txn = NULL;
	return rc ? w_fail(h, rc, "wd_commit") : 0;
}

static int w_abort(struct eh *h)
{
	int rc = wd_abort(h->txn);
	h->txn = NULL;
	return rc ? w_fail(h, rc, "wd_abort") : 0;
}

static int w_put(struct eh *h, const void *k, size_t kl, const void *v, size_t vl)
{
	int rc = wd_put(h->txn, h->t, k, kl, v, vl);
	return rc ? w_fail(h, rc, "wd_put") : 0;
}

/* wd_get into h->buf, growing it if the value is longer than expected. */
static int w_get(struct eh *h, const void *k, size_t kl, const void **v, size_t *vl)
{
	int rc = wd_get(h->txn, h->t, k, kl, h->buf, h->cap, vl);
	if (rc == 0 && *vl > h->cap) {
		uint8_t *nb = realloc(h->buf, *vl);
		if (!nb)
			return w_fail(h, WD_ENOMEM, "buffer");
		h->buf = nb;
		h->cap = *vl;
		rc = wd_get(h->txn, h->t, k, kl, h->buf, h->cap, vl);
	}
	*v = h->buf;
	return rc == WD_NOTFOUND ? 1 : rc ? w_fail(h, rc, "wd_get") : 0;
}

static int w_del(struct eh *h, const void *k, size_t kl)
{
	int rc = wd_del(h->txn, h->t, k, kl);
	return rc == WD_NOTFOUND ? 1 : rc ? w_fail(h, rc, "wd_del") : 0;
}

static int w_cur_open(struct eh *h)
{
	int rc = wd_cursor_open(h->txn, h->t, &h->cur);
	return rc ? w_fail(h, rc, "wd_cursor_open") : 0;
}

static int w_cur_next(struct eh *h, const void **k, size_t *kl, const void **v, size_t *vl)
{
	int rc = wd_cursor_next(h->cur, k, kl, v, vl);
	return rc == WD_NOTFOUND ? 1 : rc ? w_fail(h, rc, "wd_cursor_next") : 0;
}

static void w_cur_close(struct eh *h)
{
	wd_cursor_close(h->cur);
	h->cur = NULL;
}

const struct engine walden_engine = {
	.open = w_open, .close = w_close, .attach = w_attach, .detach = w_detach,
	.begin = w_begin, .commit = w_commit, .abort = w_abort, .put = w_put, .get = w_get,
	.del = w_del, .cur_open = w_cur_open, .cur_next = w_cur_next, .cur_close = w_cur_close,
};

/* -- LMDB -- */

static int l_fail(struct eh *h, int rc, const char *what)
{
	snprintf(h->err, sizeof h->err, "lmdb %s: %s", what, mdb_strerror(rc));
	return -1;
}

/* A map large enough for a random load's half-full pages, at least 1 GiB. */
static size_t l_mapsize(const struct tables_opts *o)
{
	uint64_t need = (uint64_t)o->n * (KEY_BYTES + o->value_bytes + 64) * 4;
	return need < (1ull << 30) ? (size_t)1 << 30 : (size_t)need;
}

static int l_open(struct eh *h, const char *dir)
{
	MDB_txn *txn;
	int rc;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) /* EEXIST: a reopen */
		return l_fail(h, errno, "mkdir");
	if ((rc = mdb_env_create(&h->env)) != 0)
		return l_fail(h, rc, "mdb_env_create");
	if ((rc = mdb_env_set_mapsize(h->env, l_mapsize(h->o))) != 0)
		return l_fail(h, rc, "mdb_env_set_mapsize");
	if ((rc = mdb_env_open(h->env, dir, h->o->nosync ? MDB_NOSYNC : 0, 0644)) != 0)
		return l_fail(h, rc, "mdb_env_open");
	if ((rc = mdb_txn_begin(h->env, NULL, 0, &txn)) != 0)
		return l_fail(h, rc, "mdb_txn_begin");
	if ((rc = mdb_dbi_open(txn, NULL, 0, &h->dbi)) != 0) {
		mdb_txn_abort(txn);
		return l_fail(h, rc, "mdb_dbi_open");
	}
	rc = mdb_txn_commit(txn);
	return rc ? l_fail(h, rc, "mdb_txn_commit") : 0;
}

static int l_close(struct eh *h)
{
	mdb_env_close(h->env);
	h->env = NULL;
	return 0;
}

static int l_attach(struct eh *h, const struct eh *from)
{
	h->o = from->o;
	h->env = from->env;
	h->dbi = from->dbi;
	return 0;
}

static void l_detach(struct eh *h)
{
	(void)h;
}

static int l_begin(struct eh *h, bool write)
{
	int rc = mdb_txn_begin(h->env, NULL, write ? 0 : MDB_RDONLY, &h->mtxn);
	return rc ? l_fail(h, rc, "mdb_txn_begin") : 0;
}

static int l_commit(struct eh *h)
{
	int rc = mdb_txn_commit(h->mtxn);
	h->mtxn = NULL;
	return rc ? l_fail(h, rc, "mdb_txn_commit") : 0;
}

static int l_abort(struct eh *h)
{
	mdb_txn_abort(h->mtxn);
	h->mtxn = NULL;
	return 0;
}

static int l_put(struct eh *h, const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc = mdb_put(h->mtxn, h->dbi, &key, &val, 0);
	return rc ? l_fail(h, rc, "mdb_put") : 0;
}

static int l_get(struct eh *h, const void *k, size_t kl, const void **v, size_t *vl)
{
	MDB_val key = {kl, (void *)k}, val;
	int rc = mdb_get(h->mtxn, h->dbi, &key, &val);
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc)
		return l_fail(h, rc, "mdb_get");
	*v = val.mv_data;
	*vl = val.mv_size;
	return 0;
}

static int l_del(struct eh *h, const void *k, size_t kl)
{
	MDB_val key = {kl, (void *)k};
	int rc = mdb_del(h->mtxn, h->dbi, &key, NULL);
	return rc == MDB_NOTFOUND ? 1 : rc ? l_fail(h, rc, "mdb_del") : 0;
}

static int l_cur_open(struct eh *h)
{
	int rc = mdb_cursor_open(h->mtxn, h->dbi, &h->mcur);
	h->mcur_started = false;
	return rc ? l_fail(h, rc, "mdb_cursor_open") : 0;
}

static int l_cur_next(struct eh *h, const void **k, size_t *kl, const void **v, size_t *vl)
{
	MDB_val key, val;
	int rc = mdb_cursor_get(h->mcur, &key, &val, h->mcur_started ? MDB_NEXT : MDB_FIRST);
	h->mcur_started = true;
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc)
		return l_fail(h, rc, "mdb_cursor_get");
	*k = key.mv_data;
	*kl = key.mv_size;
	*v = val.mv_data;
	*vl = val.mv_size;
	return 0;
}

static void l_cur_close(struct eh *h)
{
	mdb_cursor_close(h->mcur);
	h->mcur = NULL;
}

const struct engine lmdb_engine = {
	.open = l_open, .close = l_close, .attach = l_attach, .detach = l_detach,
	.begin = l_begin, .commit = l_commit, .abort = l_abort, .put = l_put, .get = l_get,
	.del = l_del, .cur_open = l_cur_open, .cur_next = l_cur_next, .cur_close = l_cur_close,
};
