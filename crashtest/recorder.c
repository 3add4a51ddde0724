/*
 * recorder.c - the workload's side of a crash state, in the child: the
 * transaction wrappers that write self-describing values and report each
 * commit to the driver before it is requested (REQ, with its whole write
 * set) and after it returned (ACK); opening the database and its tables;
 * the DONE message with what the workload did; the WAL scan of
 * `--describe`. Entry points: ct_begin, ct_put, ct_del, ct_get,
 * ct_savepoint, ct_rollback_to, ct_commit, ct_abort, ct_leave_open,
 * ct_checkpoint, ct_fail, ct_give_up, ct_child_error, ct_run_threads,
 * ct_run_open, ct_run_done, ct_walscan_step. README "Protocols" P2, steps W1-W4;
 * after an injected I/O error each failed call goes to ioerr.c (README
 * "I/O errors", P4 step 2).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashtest/ct_internal.h"
#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/storage.h"
#include "txn/db.h"
#include "wal/reader.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

int ct_fail(ct_run *r, const char *what, int rc)
{
	bool expected = false, own = !ct_ioerr_explained();
	if (atomic_compare_exchange_strong(&r->failed, &expected, true))
		snprintf(r->error, sizeof r->error, "%s: %s (%s)", what, wd_strerror(rc),
			 wd_last_error());
	expected = false;
	if (own && atomic_compare_exchange_strong(&r->own_failed, &expected, true))
		snprintf(r->own_error, sizeof r->own_error, "%s: %s (%s)", what,
			 wd_strerror(rc), wd_last_error());
	return rc;
}

static void send_id(ct_run *r, uint8_t kind, uint64_t id);

_Noreturn void ct_child_error(ct_run *r, const char *msg)
{
	ct_buf b = {0};
	ct_put_str(&b, msg);
	ct_send_stamped(r, CT_M_ERROR, &b);
	_exit(4);
}

/*
 * Sends one message stamped with the I/O calls made so far (README
 * "Prefix states": the stamp is read under the message mutex, so stamps
 * never decrease along the pipe, and a message stamped below k was sent
 * before I/O call k was counted).
 */
void ct_send_stamped(ct_run *r, uint8_t kind, const ct_buf *b)
{
	ct_buf m = {0};
	if (r->fd < 0)
		return;
	pthread_mutex_lock(&r->mu);
	ct_put_u64(&m, storage_io_count() - r->io0);
	if (b)
		ct_put_bytes(&m, b->p, b->len);
	(void)ct_send(r->fd, kind, &m); /* a driver that is gone reads nothing */
	pthread_mutex_unlock(&r->mu);
	ct_buf_free(&m);
}

void ct_run_start(ct_run *r)
{
	ct_buf b = {0};
	ct_put_u64(&b, r->io0);
	ct_send_stamped(r, CT_M_START, &b);
	ct_buf_free(&b);
}

/* ---- where the crash point hits fall among the I/O calls ------------------- */

static struct {
	pthread_mutex_t mu;
	_Atomic bool on; /* a logging run (ct_run_log_hits) */
	uint64_t io0;
	uint32_t *point; /* per hit: the point's index */
	uint64_t *io;    /* per hit: the I/O calls made before it */
	size_t n, cap;
} hitlog = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The run told about the WAL writer's cycles (ct_run_watch_writer). */
static ct_run *_Atomic writer_run;

/* WRITER: the WAL writer thread is at the start (0) or the end (1) of a
 * cycle (README "Oracle rules", the async rule). */
static void send_writer(ct_run *r, uint8_t phase, uint64_t t)
{
	ct_buf b = {0};
	ct_put_u8(&b, phase);
	ct_put_u64(&b, t);
	ct_send_stamped(r, CT_M_WRITER, &b);
	ct_buf_free(&b);
}

static void log_hit(const char *name, uint64_t io)
{
	size_t i = 0, np = ct_point_count();
	while (i < np && strcmp(ct_point_name(i), name) != 0)
		i++;
	if (i == np)
		return;
	pthread_mutex_lock(&hitlog.mu);
	if (hitlog.n == hitlog.cap) {
		size_t cap = hitlog.cap ? 2 * hitlog.cap : 1024;
		uint32_t *p = realloc(hitlog.point, cap * sizeof *p);
		uint64_t *q = p ? realloc(hitlog.io, cap * sizeof *q) : NULL;
		if (p)
			hitlog.point = p;
		if (!p || !q) {
			pthread_mutex_unlock(&hitlog.mu);
			abort(); /* the run's report would be wrong: die (CHILD-ERROR) */
		}
		hitlog.io = q;
		hitlog.cap = cap;
	}
	hitlog.point[hitlog.n] = (uint32_t)i;
	hitlog.io[hitlog.n++] = io - hitlog.io0;
	pthread_mutex_unlock(&hitlog.mu);
}

/* The observer of every crash point hit that does not fire (storage.h).
 * A WRITER "start" reads the clock before the writer's cycle does (the
 * hit comes first); other points read no clock. */
static void observe_hit(const char *name, uint64_t io)
{
	ct_run *r = atomic_load(&writer_run);
	if (r && strcmp(name, "wal-writer-before-cycle") == 0)
		send_writer(r, 0, ct_now_ns());
	else if (r && strcmp(name, "wal-writer-after-cycle") == 0)
		send_writer(r, 1, ct_now_ns());
	if (atomic_load_explicit(&hitlog.on, memory_order_acquire))
		log_hit(name, io);
}

void ct_run_watch_writer(ct_run *r)
{
	atomic_store(&writer_run, r);
	storage_crash_observe(observe_hit);
}

void ct_run_log_hits(ct_run *r)
{
	hitlog.io0 = r->io0;
	atomic_store_explicit(&hitlog.on, true, memory_order_release);
	storage_crash_observe(observe_hit);
}

const char *ct_table_name(const ct_run *r, int i)
{
	return i == CT_EXTRA_TABLE && r->extra_table ? r->extra_table : r->wl->tables[i];
}

/* ---- transactions ---------------------------------------------------------- */

int ct_begin(ct_run *r, ct_txn *t, bool sync)
{
	int rc;
	*t = (ct_txn){.r = r, .sync = sync};
	t->id = atomic_fetch_add(&r->next_txn, 1);
	if ((rc = wd_begin(r->db, &t->x)) != 0) {
		(void)ct_ioerr_on_error(r, "wd_begin", rc);
		return rc;
	}
	/* the planted fault: a commit reported as durable is not */
	if ((!sync || r->plant == CT_PLANT_ACK_UNDURABLE) &&
	    (rc = wd_txn_set_synchronous(t->x, 0)) != 0) {
		/* a panicked database refuses it too (I11: explained) */
		(void)ct_ioerr_on_error(r, "wd_txn_set_synchronous", rc);
		(void)wd_abort(t->x); /* t is not begun: the caller fails */
		t->x = NULL;
	}
	return rc;
}

static void free_txn(ct_txn *t)
{
	free(t->w);
	free(t->vbuf);
	ct_buf_free(&t->arena);
	t->w = NULL;
	t->vbuf = NULL;
	t->nw = t->wcap = t->vcap = 0;
}

static void vbuf_need(ct_txn *t, size_t n)
{
	if (n <= t->vcap)
		return;
	free(t->vbuf);
	t->vcap = n < 4096 ? 4096 : n;
	if (!(t->vbuf = malloc(t->vcap)))
		abort();
}

/* Notes one change the engine made (W1). */
static void note(ct_txn *t, int table, const void *k, size_t klen, bool del,
		 const void *payload, uint32_t plen, uint32_t total, uint32_t op)
{
	if (t->nw == t->wcap) {
		size_t cap = t->wcap ? 2 * t->wcap : 16;
		ct_w *w = realloc(t->w, cap * sizeof *w);
		if (!w)
			abort();
		t->w = w;
		t->wcap = cap;
	}
	ct_w *w = &t->w[t->nw++];
	*w = (ct_w){.table = (uint16_t)table, .koff = (uint32_t)t->arena.len,
		    .klen = (uint32_t)klen, .plen = plen, .total = total, .op = op,
		    .del = del, .live = true};
	ct_put_bytes(&t->arena, k, klen);
	w->poff = (uint32_t)t->arena.len;
	ct_put_bytes(&t->arena, payload, plen);
	atomic_fetch_add(&t->r->ops, 1);
}

/* A call failed after an injected I/O error: the application rolls the
 * transaction back and goes on (README "I/O errors"). The workload sees
 * rc and ends the transaction's code; t has no engine transaction left. */
static void end_failed(ct_txn *t)
{
	int rc = wd_abort(t->x);
	if (rc == 0)
		send_id(t->r, CT_M_ABORT, t->id);
	else
		(void)ct_ioerr_on_error(t->r, "wd_abort after a failed call", rc);
	t->x = NULL;
}

/* A deadlock victim was rolled back to its beginning: nothing it wrote
 * stands any more. */
static int on_error(ct_txn *t, int rc)
{
	if (rc != WD_EDEADLOCK && rc != WD_NOTFOUND && t->x &&
	    ct_ioerr_on_error(t->r, "a call of the workload", rc))
		end_failed(t);
	if (rc == WD_EDEADLOCK) {
		for (size_t i = 0; i < t->nw; i++)
			t->w[i].live = false;
		t->nsp = 0;
		atomic_fetch_add(&t->r->deadlocks, 1);
	}
	return rc;
}

int ct_put(ct_txn *t, int table, const void *k, size_t klen, const void *payload,
	   uint32_t plen, uint32_t total)
{
	uint8_t ck[CT_MAX_CKEY];
	size_t cklen = ct_ckey(ct_table_name(t->r, table), k, klen, ck);
	uint32_t op = ++t->nextop;
	int rc;
	if (cklen == 0 || plen > CT_MAX_PAYLOAD)
		return err_set(WD_EINVAL, "crashtest: key or payload too long");
	if (total < CT_VAL_HDR + plen)
		total = CT_VAL_HDR + plen;
	vbuf_need(t, total);
	ct_value_build(ck, cklen, t->id, op, payload, plen, total, t->vbuf);
	rc = wd_put(t->x, t->r->tables[table], k, klen, t->vbuf, total);
	if (rc != 0)
		return on_error(t, rc);
	note(t, table, k, klen, false, payload, plen, total, op);
	if (total > t->r->opts.page_size)
		atomic_fetch_add(&t->r->big_values, 1);
	return 0;
}

int ct_del(ct_txn *t, int table, const void *k, size_t klen)
{
	uint32_t op = ++t->nextop;
	int rc = wd_del(t->x, t->r->tables[table], k, klen);
	if (rc != 0)
		return on_error(t, rc);
	note(t, table, k, klen, true, NULL, 0, 0, op);
	return 0;
}

int ct_get(ct_txn *t, int table, const void *k, size_t klen, uint8_t *payload,
	   size_t cap, uint32_t *plen)
{
	uint8_t ck[CT_MAX_CKEY];
	size_t cklen = ct_ckey(ct_table_name(t->r, table), k, klen, ck), vlen = 0;
	const char *why;
	ct_tag tag;
	int rc;
	vbuf_need(t, 4096);
	rc = wd_get(t->x, t->r->tables[table], k, klen, t->vbuf, t->vcap, &vlen);
	if (rc == 0 && vlen > t->vcap) {
		vbuf_need(t, vlen);
		rc = wd_get(t->x, t->r->tables[table], k, klen, t->vbuf, t->vcap, &vlen);
	}
	if (rc != 0)
		return on_error(t, rc);
	if (t->r->plant == CT_PLANT_BAD_READ && atomic_fetch_add(&t->r->reads, 1) == 19)
		return err_set(WD_ECORRUPT, "crashtest: a value read back: planted damage");
	if (!ct_value_check(ck, cklen, t->vbuf, vlen, &tag, &why))
		return err_set(WD_ECORRUPT, "crashtest: a value read back: %s", why);
	if (tag.plen > cap)
		return err_set(WD_ECORRUPT, "crashtest: a value read back: payload too long");
	memcpy(payload, tag.payload, tag.plen);
	*plen = tag.plen;
	return 0;
}

int ct_savepoint(ct_txn *t, const char *name)
{
	int rc = wd_savepoint(t->x, name), i;
	if (rc != 0)
		return on_error(t, rc);
	for (i = 0; i < t->nsp && strcmp(t->sp[i].name, name) != 0; i++)
		;
	if (i < t->nsp) { /* released and set again */
		memmove(&t->sp[i], &t->sp[i + 1], (size_t)(t->nsp - i - 1) * sizeof t->sp[0]);
		t->nsp--;
	}
	if (t->nsp == (int)(sizeof t->sp / sizeof t->sp[0]))
		return err_set(WD_EINVAL, "crashtest: more than 8 savepoints");
	snprintf(t->sp[t->nsp].name, sizeof t->sp[0].name, "%s", name);
	t->sp[t->nsp++].nw = t->nw;
	return 0;
}

int ct_rollback_to(ct_txn *t, const char *name)
{
	int rc = wd_rollback_to(t->x, name), i;
	if (rc != 0)
		return on_error(t, rc);
	for (i = t->nsp - 1; i >= 0 && strcmp(t->sp[i].name, name) != 0; i--)
		;
	if (i < 0)
		return err_set(WD_EINVAL, "crashtest: savepoint %s unknown to the recorder", name);
	for (size_t j = t->sp[i].nw; j < t->nw; j++)
		t->w[j].live = false;
	t->nsp = i + 1; /* later savepoints are released */
	atomic_fetch_add(&t->r->sp_rollbacks, 1);
	return 0;
}

/* Whether write i is its key's last live write in t. */
static bool is_final(const ct_txn *t, size_t i)
{
	const ct_w *a = &t->w[i];
	if (!a->live)
		return false;
	for (size_t j = i + 1; j < t->nw; j++) {
		const ct_w *b = &t->w[j];
		if (b->live && b->table == a->table && b->klen == a->klen &&
		    memcmp(t->arena.p + b->koff, t->arena.p + a->koff, a->klen) == 0)
			return false;
	}
	return true;
}

/* W2: REQ - id, sync, time, the final writes, the undone operations. */
static void send_req(ct_txn *t)
{
	ct_buf b = {0};
	uint32_t nfinal = 0, nrolled = 0;
	size_t at;
	ct_ioerr_notice(t->r); /* an I/O error that fired goes before this REQ */
	ct_put_u64(&b, t->id);
	ct_put_u8(&b, (uint8_t)(t->sync | (t->nw > 0) << 1)); /* bit 1: changed a row */
	ct_put_u64(&b, ct_now_ns());
	at = b.len;
	ct_put_u32(&b, 0);
	for (size_t i = 0; i < t->nw; i++) {
		const ct_w *w = &t->w[i];
		uint8_t ck[CT_MAX_CKEY];
		size_t cklen;
		if (!is_final(t, i))
			continue;
		cklen = ct_ckey(ct_table_name(t->r, w->table), t->arena.p + w->koff, w->klen,
				ck);
		ct_put_u16(&b, (uint16_t)cklen);
		ct_put_bytes(&b, ck, cklen);
		ct_put_u8(&b, w->del);
		ct_put_u32(&b, w->op);
		ct_put_u32(&b, w->plen);
		ct_put_bytes(&b, t->arena.p + w->poff, w->plen);
		ct_put_u32(&b, w->total);
		nfinal++;
	}
	put_le32(b.p + at, nfinal);
	at = b.len;
	ct_put_u32(&b, 0);
	for (size_t i = 0; i < t->nw; i++)
		if (!t->w[i].live) {
			ct_put_u32(&b, t->w[i].op);
			nrolled++;
		}
	put_le32(b.p + at, nrolled);
	ct_send_stamped(t->r, CT_M_REQ, &b);
	ct_buf_free(&b);
}

static void send_id(ct_run *r, uint8_t kind, uint64_t id)
{
	ct_buf b = {0};
	ct_put_u64(&b, id);
	ct_put_u64(&b, ct_now_ns());
	ct_send_stamped(r, kind, &b);
	ct_buf_free(&b);
}

int ct_commit(ct_txn *t)
{
	bool planted = t->r->plant == CT_PLANT_ACK_UNDURABLE;
	int rc;
	if (!t->x) { /* ended by a failed call (end_failed) */
		free_txn(t);
		return WD_ESTATE;
	}
	send_req(t);                       /* W2: from here it may be durable */
	if (planted) /* the planted fault: acknowledged before it is even asked */
		send_id(t->r, CT_M_ACK, t->id);
	rc = wd_commit(t->x);
	if (rc == 0) {
		if (!planted)
			send_id(t->r, CT_M_ACK, t->id); /* W3: acknowledged */
		atomic_fetch_add(&t->r->commits, 1);
		if (!t->sync)
			atomic_fetch_add(&t->r->async_commits, 1);
	} else {
		(void)ct_ioerr_on_error(t->r, "wd_commit", rc); /* in flight */
	}
	free_txn(t);
	return rc;
}

int ct_abort(ct_txn *t)
{
	int rc = t->x ? wd_abort(t->x) : 0;
	if (rc == 0 && t->x) {
		send_id(t->r, CT_M_ABORT, t->id);
		atomic_fetch_add(&t->r->aborts, 1);
	} else if (rc != 0) {
		(void)ct_ioerr_on_error(t->r, "wd_abort", rc);
	}
	free_txn(t);
	return rc;
}

int ct_give_up(ct_txn *t, const char *what, int rc)
{
	(void)ct_fail(t->r, what, rc);
	if (t->x)
		end_failed(t);
	free_txn(t);
	return rc;
}

void ct_leave_open(ct_txn *t)
{
	atomic_fetch_add(&t->r->open_at_end, 1);
	free_txn(t);
}

int ct_checkpoint(ct_run *r)
{
	int rc;
	if (r->describe && (rc = ct_walscan_step(r)) != 0)
		return rc;
	if ((rc = wd_checkpoint(r->db)) == 0)
		atomic_fetch_add(&r->checkpoints, 1);
	else
		(void)ct_ioerr_on_error(r, "wd_checkpoint", rc);
	return rc;
}

/* ---- threads, open, done ----------------------------------------------------- */

struct thread_arg {
	ct_run *r;
	int id;
	int (*fn)(ct_run *r, int thread);
	int rc;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	a->rc = a->fn(a->r, a->id);
	return NULL;
}

int ct_run_threads(ct_run *r, int (*fn)(ct_run *r, int thread))
{
	struct thread_arg a[CT_MAX_THREADS];
	pthread_t th[CT_MAX_THREADS];
	int n = r->threads < 1 ? 1 : r->threads > CT_MAX_THREADS ? CT_MAX_THREADS : r->threads;
	int rc = 0, started = 0;
	for (int i = 0; i < n; i++) {
		a[i] = (struct thread_arg){r, i, fn, 0};
		if (pthread_create(&th[i], NULL, thread_main, &a[i]) != 0) {
			rc = ct_fail(r, "starting a workload thread", WD_ENOMEM);
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		if (rc == 0)
			rc = a[i].rc;
	}
	return rc;
}

int ct_run_open(ct_run *r)
{
	wd_txn *x;
	int rc;
	r->wl->options(&r->opts);
	if (r->no_fpw)
		r->opts.full_page_writes = 0;
	if (!r->db && (rc = wd_open(r->dir, &r->opts, &r->db)) != 0) {
		r->db = NULL;
		(void)ct_ioerr_on_error(r, "wd_open", rc);
		return ct_fail(r, "wd_open", rc);
	}
	if ((rc = wd_begin(r->db, &x)) != 0) {
		(void)ct_ioerr_on_error(r, "wd_begin", rc);
		return ct_fail(r, "wd_begin", rc);
	}
	for (int i = 0; r->wl->tables[i]; i++)
		if ((rc = wd_table_open(x, r->wl->tables[i], WD_CREATE, &r->tables[i])) != 0) {
			(void)ct_ioerr_on_error(r, "wd_table_open", rc);
			(void)wd_abort(x); /* so that a second try finds no lock held */
			return ct_fail(r, "wd_table_open", rc);
		}
	if ((rc = wd_commit(x)) != 0) {
		(void)ct_ioerr_on_error(r, "wd_commit", rc);
		return ct_fail(r, "wd_commit", rc);
	}
	ct_send_stamped(r, CT_M_READY, NULL); /* W1: from here the database exists */
	return 0;
}

/* ---- describe: the structure changes in the WAL ---------------------------- */

struct ct_walscan {
	wal_reader *rd;
	uint64_t last_seg;
	uint64_t leaf_splits, internal_splits, unlinks, checkpoints;
	uint64_t switches, aborts, clrs, overflow_writes, records;
};

static void scan_count(struct ct_walscan *s, const wal_decoded *d, uint32_t seg_size)
{
	uint64_t seg = wal_segno(d->lsn, seg_size);
	if (s->records++ > 0 && seg != s->last_seg)
		s->switches++;
	s->last_seg = seg;
	if (d->rmgr == WAL_RMGR_BTREE && (d->type == BTREE_SPLIT || d->type == BTREE_NEWROOT)) {
		uint16_t level = d->main_len >= 10 ? get_le16(d->main_data + 8) : 0;
		if (level == 0)
			s->leaf_splits++;
		else
			s->internal_splits++;
	}
	s->unlinks += d->rmgr == WAL_RMGR_BTREE && d->type == BTREE_UNLINK_PAGE;
	s->checkpoints += d->rmgr == WAL_RMGR_XLOG && d->type == XLOG_CHECKPOINT;
	s->aborts += d->rmgr == WAL_RMGR_XACT && d->type == XACT_ABORT;
	s->clrs += d->rmgr == WAL_RMGR_UNDO && d->type == UNDO_CLR;
	s->overflow_writes += d->rmgr == WAL_RMGR_HEAP && d->type == HEAP_OVERFLOW_WRITE;
}

/* Flushes the log and reads every record written since the last call. */
int ct_walscan_step(ct_run *r)
{
	struct wal *w = db_wal(r->db);
	const wal_decoded *d;
	control_data cd;
	int rc;
	if ((rc = wal_flush_to(w, wal_insert_pos(w))) != 0)
		return ct_fail(r, "describe: flushing the WAL", rc);
	if ((rc = control_read(r->dir, &cd)) != 0)
		return ct_fail(r, "describe: the control file", rc);
	if (!r->scan) {
		uint64_t segno;
		if (!(r->scan = calloc(1, sizeof *r->scan)))
			return WD_ENOMEM;
		if ((rc = wal_reader_open(r->dir, cd.db_id, cd.wal_segment_size, cd.page_size,
					  &r->scan->rd)) != 0 ||
		    (rc = wal_oldest_segment(r->dir, &segno)) != 0 ||
		    (rc = wal_reader_seek(r->scan->rd, segno * cd.wal_segment_size)) != 0)
			return ct_fail(r, "describe: opening the WAL", rc);
	}
	while ((rc = wal_reader_next(r->scan->rd, &d)) == 0)
		scan_count(r->scan, d, cd.wal_segment_size);
	return rc == WD_NOTFOUND ? 0 : ct_fail(r, "describe: reading the WAL", rc);
}

int ct_run_done(ct_run *r, const uint64_t *hits0, uint64_t io0)
{
	struct ct_walscan none = {0}, *s = r->scan ? r->scan : &none;
	ct_buf b = {0};
	int rc = 0;
	if (r->describe && (rc = ct_walscan_step(r)) != 0)
		return rc;
	s = r->scan ? r->scan : &none;
	ct_put_u64(&b, atomic_load(&r->commits));
	ct_put_u64(&b, atomic_load(&r->async_commits));
	ct_put_u64(&b, atomic_load(&r->aborts));
	ct_put_u64(&b, atomic_load(&r->sp_rollbacks));
	ct_put_u64(&b, atomic_load(&r->deadlocks));
	ct_put_u64(&b, atomic_load(&r->big_values));
	ct_put_u64(&b, atomic_load(&r->checkpoints));
	ct_put_u64(&b, atomic_load(&r->open_at_end));
	ct_put_u64(&b, atomic_load(&r->ops));
	ct_put_u64(&b, storage_io_count() - io0);
	ct_put_u32(&b, (uint32_t)ct_point_count());
	for (size_t i = 0; i < ct_point_count(); i++)
		ct_put_u64(&b, storage_crash_hits(ct_point_name(i)) - hits0[i]);
	ct_put_u8(&b, r->describe);
	ct_put_u64(&b, s->leaf_splits);
	ct_put_u64(&b, s->internal_splits);
	ct_put_u64(&b, s->unlinks);
	ct_put_u64(&b, s->checkpoints);
	ct_put_u64(&b, s->switches);
	ct_put_u64(&b, s->aborts);
	ct_put_u64(&b, s->clrs);
	ct_put_u64(&b, s->overflow_writes);
	ct_put_u64(&b, s->records);
	/* where each crash point's hits fell (a logging run only) */
	pthread_mutex_lock(&hitlog.mu);
	ct_put_u8(&b, atomic_load(&hitlog.on));
	for (size_t p = 0; atomic_load(&hitlog.on) && p < ct_point_count(); p++) {
		uint32_t n = 0;
		for (size_t i = 0; i < hitlog.n; i++)
			n += hitlog.point[i] == p;
		ct_put_u32(&b, n);
		for (size_t i = 0; i < hitlog.n; i++)
			if (hitlog.point[i] == p)
				ct_put_u64(&b, hitlog.io[i]);
	}
	pthread_mutex_unlock(&hitlog.mu);
	ct_send_stamped(r, CT_M_DONE, &b);
	ct_buf_free(&b);
	if (r->scan) {
		wal_reader_close(r->scan->rd);
		free(r->scan);
		r->scan = NULL;
	}
	return 0;
}
