/*
 * checkpoint.c - checkpoint_run (README P1: a fuzzy checkpoint in the
 * style of PostgreSQL's CreateCheckPoint) and the checkpointer thread
 * (P2). Entry points: checkpointer_create/start/free, checkpoint_run,
 * checkpointer_count.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recovery/checkpoint.h"
#include "storage/plant.h"
#include "storage/storage.h"
#include "storage/trace.h"
#include "wal/record.h"
#include "wal/rmgr.h"

struct checkpointer {
	ckpt_ctx c;
	pthread_mutex_t run_mu;  /* one checkpoint at a time */
	pthread_mutex_t mu;      /* guards stop, the thread's sleep */
	pthread_cond_t cv;
	bool stop, started;
	pthread_t thread;
	/* Forced checkpoints asked for and not finished (wd_checkpoint, the
	 * shutdown's): while one is, a paced checkpoint writes at full speed.
	 * A count, raised before run_mu is taken and lowered after the forced
	 * run: nobody clears another's request (a flag that each run cleared
	 * once it held run_mu lost a request made just before the checkpointer
	 * took run_mu, and that forced caller then waited the whole paced
	 * schedule, up to checkpoint_timeout_s). */
	atomic_uint forced;
	atomic_bool closing;     /* checkpointer_stop: finish at full speed */
	atomic_uint_fast64_t done;
	_Atomic uint64_t last_ns; /* when the last checkpoint ended (or start) */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int checkpointer_create(const ckpt_ctx *ctx, checkpointer **out)
{
	checkpointer *cp = calloc(1, sizeof *cp);
	if (!cp)
		return err_set(WD_ENOMEM, "checkpointer: out of memory");
	cp->c = *ctx;
	pthread_mutex_init(&cp->run_mu, NULL);
	pthread_mutex_init(&cp->mu, NULL);
	pthread_cond_init(&cp->cv, NULL);
	atomic_store(&cp->last_ns, now_ns());
	*out = cp;
	return 0;
}

uint64_t checkpointer_count(checkpointer *cp)
{
	return atomic_load(&cp->done);
}

/* ---- P1 step 2: the writes, spread for an unforced checkpoint ---- */

struct pacing {
	checkpointer *cp;
	wd_lsn redo;
	bool forced;       /* full speed: only count */
	uint64_t n;        /* buffers written so far */
	uint64_t total;    /* buffers to write, counted before */
	uint64_t start_ns, budget_ns;
};

static int count_before(void *arg, wd_relid rel, wd_blkno blk, wd_lsn rec_lsn)
{
	struct { wd_lsn redo; uint64_t n; } *c = arg;
	(void)rel;
	(void)blk;
	if (rec_lsn < c->redo)
		c->n++;
	return 0;
}

/* Whether a paced checkpoint that has done fraction done of its writes
 * is ahead of schedule: ahead of the time budget and ahead of the WAL
 * budget (completion_target x max_wal_size written since its redo point),
 * as PostgreSQL's IsCheckpointOnSchedule. */
static bool ahead(const struct pacing *p, double done)
{
	const ckpt_ctx *c = &p->cp->c;
	wd_lsn pos = wal_insert_pos(c->w);
	double t = (double)(now_ns() - p->start_ns) / (double)(p->budget_ns ? p->budget_ns : 1);
	double w = (double)(pos > p->redo ? pos - p->redo : 0) /
		     (c->completion_target * (double)c->max_wal_bytes + 1.0);
	return done > t && done > w;
}

/* After the nth write: naps (10 ms at a time) while ahead of schedule,
 * unless a forced checkpoint waits or the checkpointer stops. */
static void pace(void *arg, uint64_t n)
{
	struct pacing *p = arg;
	double done;
	p->n = n;
	if (p->forced)
		return;
	done = (double)n / (double)(p->total ? p->total : 1);
	while (atomic_load(&p->cp->forced) == 0 && !atomic_load(&p->cp->closing) &&
	       ahead(p, done))
		nanosleep(&(struct timespec){0, 10000000L}, NULL);
}

static int write_dirty(checkpointer *cp, wd_lsn redo, bool forced, uint64_t *written)
{
	struct { wd_lsn redo; uint64_t n; } cnt = {redo, 0};
	struct pacing p = {.cp = cp, .redo = redo, .forced = forced, .start_ns = now_ns()};
	int rc;
	if (!forced) {
		if (bufmgr_dirty_pages(cp->c.pool, count_before, &cnt) != 0)
			cnt.n = 0; /* count_before never fails */
		p.total = cnt.n;
		p.budget_ns = (uint64_t)(cp->c.completion_target * cp->c.timeout_s * 1e9);
	}
	rc = bufmgr_flush_before(cp->c.pool, redo, pace, &p);
	*written = p.n;
	return rc;
}

/* ---- P1 step 3: the dirty page table ---- */

struct dpt {
	wal_ckpt_dpt *v;
	uint32_t n, cap;
};

static int dpt_add(void *arg, wd_relid rel, wd_blkno blk, wd_lsn rec_lsn)
{
	struct dpt *d = arg;
	if (d->n == d->cap) {
		uint32_t cap = d->cap ? 2 * d->cap : 64;
		wal_ckpt_dpt *v = realloc(d->v, cap * sizeof *v);
		if (!v)
			return err_set(WD_ENOMEM, "checkpoint: out of memory for the dirty page table");
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = (wal_ckpt_dpt){rel, blk, rec_lsn};
	return 0;
}

/* ---- P1 step 4: the record ---- */

/* Logs XLOG_CHECKPOINT with c as main data and makes it durable. */
static int log_record(checkpointer *cp, const wal_ckpt *c, wd_lsn *lsn)
{
	wal_rec_builder b = {0};
	uint8_t *main = NULL, *rec;
	uint32_t mlen, len;
	int rc = wal_ckpt_encode(c, &main, &mlen);
	if (rc != 0)
		return rc;
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_CHECKPOINT, 0, 0, 0, 0);
	if ((rc = walrec_set_main(&b, main, mlen)) == 0 &&
	    (rc = walrec_assemble(&b, &rec, &len)) == 0)
		rc = wal_insert(cp->c.w, rec, len, lsn);
	walrec_free(&b);
	free(main);
	if (rc == 0)
		rc = wal_flush_to(cp->c.w, *lsn);
	return rc;
}

/* Steps 3-4: the tables, the record. */
static int tables_and_record(checkpointer *cp, wd_lsn redo, ckpt_result *r)
{
	wal_ckpt c = {.redo = redo, .next_xid = cp->c.ops.next_xid(cp->c.arg)};
	struct dpt d = {0};
	int rc = cp->c.ops.att(cp->c.arg, &c.att, &c.natt);
	/* I7: the position first, then the pages. A record below it was
	 * reserved before, and its page marked dirty before that (heap, btree,
	 * undo step 5a): a page the walk finds clean was written since, with
	 * the change, before step 5 syncs it */
	c.dpt_lsn = wal_insert_pos(cp->c.w);
	if (rc == 0)
		rc = bufmgr_dirty_pages(cp->c.pool, dpt_add, &d);
	c.dpt = d.v;
	c.ndpt = d.n;
	if (rc == 0)
		rc = log_record(cp, &c, &r->lsn);
	r->natt = c.natt;
	r->ndpt = c.ndpt;
	free(c.att);
	free(d.v);
	return rc;
}

/* P1 steps 1-7 (the README numbers them), under run_mu. */
static int run_locked(checkpointer *cp, bool forced, ckpt_result *r)
{
	int rc;
	storage_crash_point("ckpt-begin");
	if ((rc = wal_set_redo_point(cp->c.w, &r->redo)) != 0) /* step 1 */
		return rc;
	if ((rc = write_dirty(cp, r->redo, forced, &r->written)) != 0) /* step 2 */
		return rc;
	storage_crash_point("ckpt-after-flush");
	if ((rc = tables_and_record(cp, r->redo, r)) != 0) /* steps 3-4 */
		return rc;
	storage_crash_point("ckpt-after-record");
	/* planted bug: the pages of step 2 not synced before the control file
	 * names the checkpoint: its redo point is not yet safe */
	if (!WD_PLANTED("ckpt-no-sync") &&
	    (rc = bufmgr_sync_all(cp->c.pool)) != 0) { /* step 5 */
		/* a failed fdatasync is never retried and nothing may be
		 * acknowledged after it (DESIGN.md section 3): panic */
		if (rc == WD_EPANIC && wal_is_panicked(cp->c.w))
			return rc;
		return cp->c.ops.panic ? cp->c.ops.panic(cp->c.arg, rc) : wal_panic(cp->c.w, rc);
	}
	/* planted bug: segments retired before the control file names the
	 * checkpoint whose redo point lets them go (step 7 before step 6) */
	if (WD_PLANTED("ckpt-retire-early") &&
	    (rc = wal_remove_segments_before(cp->c.w, r->redo)) != 0)
		return rc;
	/* step 6: from now on recovery starts at this checkpoint */
	if ((rc = cp->c.ops.control(cp->c.arg, r->lsn, r->redo)) != 0)
		return rc;
	r->named = true;
	storage_crash_point("ckpt-after-control");
	return wal_remove_segments_before(cp->c.w, r->redo); /* step 7 */
}

int checkpoint_run(checkpointer *cp, bool forced, ckpt_result *out)
{
	ckpt_result r = {0};
	int rc;
	if (forced) {
		/* a paced one running, or about to take run_mu: it hurries */
		atomic_fetch_add(&cp->forced, 1);
		storage_crash_point("ckpt-requested");
	}
	pthread_mutex_lock(&cp->run_mu);
	rc = run_locked(cp, forced, &r);
	atomic_store(&cp->last_ns, now_ns());
	if (rc == 0)
		atomic_fetch_add(&cp->done, 1);
	pthread_mutex_unlock(&cp->run_mu);
	if (forced)
		atomic_fetch_sub(&cp->forced, 1);
	TRACE(TR_RECOVERY, "checkpoint%s redo=" LSN_FMT " lsn=" LSN_FMT " written=%llu "
	      "att=%u dpt=%u rc=%d", forced ? " (forced)" : "", LSN_ARGS(r.redo),
	      LSN_ARGS(r.lsn), (unsigned long long)r.written, r.natt, r.ndpt, rc);
	if (out)
		*out = r;
	return rc;
}

/* ---- P2: the checkpointer thread ---- */

/* Whether a checkpoint is due: checkpoint_timeout since the last, or more
 * than max_wal_size of WAL since its redo point. */
static bool due(checkpointer *cp)
{
	uint64_t since = now_ns() - atomic_load(&cp->last_ns);
	wd_lsn pos = wal_insert_pos(cp->c.w), redo = wal_redo_point(cp->c.w);
	if (wal_is_panicked(cp->c.w))
		return false;
	return since >= (uint64_t)cp->c.timeout_s * 1000000000ull ||
	       (pos > redo && pos - redo > cp->c.max_wal_bytes);
}

static void *checkpointer_main(void *arg)
{
	checkpointer *cp = arg;
	pthread_mutex_lock(&cp->mu);
	while (!cp->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100000000L; /* poll every 100 ms */
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cp->cv, &cp->mu, &ts);
		if (cp->stop || !due(cp))
			continue;
		pthread_mutex_unlock(&cp->mu);
		/* a failure is traced; the next try waits a whole timeout */
		if (checkpoint_run(cp, false, NULL) != 0)
			TRACE(TR_RECOVERY, "checkpointer: %s", wd_last_error());
		pthread_mutex_lock(&cp->mu);
	}
	pthread_mutex_unlock(&cp->mu);
	return NULL;
}

int checkpointer_start(checkpointer *cp)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_destroy(&cp->cv);
	pthread_cond_init(&cp->cv, &a);
	pthread_condattr_destroy(&a);
	atomic_store(&cp->closing, false);
	if (pthread_create(&cp->thread, NULL, checkpointer_main, cp) != 0)
		return err_set(WD_EIO, "checkpointer: cannot start its thread");
	cp->started = true;
	return 0;
}

void checkpointer_stop(checkpointer *cp)
{
	if (!cp->started)
		return;
	pthread_mutex_lock(&cp->mu);
	cp->stop = true;
	atomic_store(&cp->closing, true);
	pthread_cond_signal(&cp->cv);
	pthread_mutex_unlock(&cp->mu);
	pthread_join(cp->thread, NULL);
	cp->started = false;
}

void checkpointer_free(checkpointer *cp)
{
	if (!cp)
		return;
	checkpointer_stop(cp);
	pthread_cond_destroy(&cp->cv);
	pthread_mutex_destroy(&cp->mu);
	pthread_mutex_destroy(&cp->run_mu);
	free(cp);
}
