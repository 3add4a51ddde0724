/*
 * test_heap_conc.c - concurrent changes to one heap (also run under TSan):
 * 4 threads insert, update (in place and moved), delete and fetch their
 * own tuples, some with overflowed values, through a pool smaller than the
 * data; afterwards every thread's tuples equal its model, a scan yields
 * exactly their union, the free space map is right, and replaying the log
 * rebuilds the same pages. Meanwhile the main thread runs checkpoints (redo
 * point moved, every dirty page written) several times; a copy of the heap
 * file as the last one left it, with pages torn, is repaired by replay from
 * the last redo point alone (full-page images, README I5, I8).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "bufmgr/bufmgr.h"
#include "heap/heap.h"
#include "storage/storage.h"
#include "tests/lib/redotest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/format.h"
#include "wal/reader.h"
#include "wal/wal.h"

#define PS 8192u
#define REL 1
#define FSM_REL 2
#define NTHREADS 4
#define NOPS 1000
#define MAXITEMS NOPS
#define NCHECKPOINTS 4

/* Checkpoint c (1..NCHECKPOINTS) starts once every worker has done c
 * fifths of its operations and waits there for it (gate c), so
 * each redo point has changes after it; the workers then run on while the
 * checkpoint writes the dirty pages. */
static _Atomic unsigned gate_arrived[NCHECKPOINTS + 1], workers_out, ckpt_started;

/* Gate c, if operation i is where it stands: wait for checkpoint c's redo
 * point. */
static void gate(unsigned i)
{
	for (unsigned c = 1; c <= NCHECKPOINTS; c++)
		if (i == c * NOPS / (NCHECKPOINTS + 1)) {
			atomic_fetch_add(&gate_arrived[c], 1);
			while (atomic_load(&ckpt_started) < c)
				usleep(100);
		}
}

typedef struct titem {
	bool live;
	heap_tid tid;
	char key[32];
	uint32_t klen;
	uint64_t vlen, seed; /* value bytes derive from (seed, i) */
} titem;

typedef struct worker {
	heap *h;
	unsigned id;
	uint64_t rng;
	titem it[MAXITEMS];
	unsigned n;
	int failed;       /* first unexpected return code (0: none) */
	char why[256];
} worker;

/* The value of an item: vlen bytes derived from its seed. */
static uint8_t *make_value(uint64_t seed, uint64_t vlen)
{
	uint8_t *v = malloc(vlen ? vlen : 1);
	for (uint64_t i = 0; v && i < vlen; i++)
		v[i] = (uint8_t)((seed * 2654435761u) >> (i % 24) ^ i);
	return v;
}

static uint64_t pick_vlen(worker *w)
{
	uint64_t r = tu_rand(&w->rng) % 100;
	return r < 80 ? tu_rand(&w->rng) % 400 : r < 95 ? 400 + tu_rand(&w->rng) % 1500
						   : 3000 + tu_rand(&w->rng) % 30000;
}

/* Records the first failure (cmocka asserts are not thread-safe). */
static void note_fail(worker *w, int rc, const char *what)
{
	if (!w->failed) {
		w->failed = rc ? rc : -1000;
		snprintf(w->why, sizeof w->why, "thread %u %s: %d %s", w->id, what, rc,
			 wd_last_error());
	}
}

/* Fetches item it and compares it with the model. */
static void verify(worker *w, titem *it)
{
	uint8_t *want = make_value(it->seed, it->vlen), *got = malloc(it->vlen + 1);
	char k[32];
	uint32_t klen;
	uint64_t vlen;
	int rc = heap_fetch(w->h, it->tid, k, sizeof k, &klen, got, it->vlen + 1, &vlen);
	if (rc || klen != it->klen || memcmp(k, it->key, klen) || vlen != it->vlen ||
	    memcmp(got, want, vlen))
		note_fail(w, rc, "fetch mismatch");
	free(want);
	free(got);
}

static void do_insert(worker *w)
{
	titem *it = &w->it[w->n];
	uint8_t *v;
	int rc;
	it->klen = (uint32_t)snprintf(it->key, sizeof it->key, "t%u-%u", w->id, w->n);
	it->vlen = pick_vlen(w);
	it->seed = tu_rand(&w->rng);
	v = make_value(it->seed, it->vlen);
	rc = heap_insert(w->h, w->id + 1, NULL, it->key, it->klen, v, it->vlen, &it->tid);
	free(v);
	if (rc)
		return note_fail(w, rc, "insert");
	it->live = true;
	w->n++;
}

static void do_update(worker *w, titem *it)
{
	uint64_t seed = tu_rand(&w->rng), vlen = pick_vlen(w);
	uint8_t *v = make_value(seed, vlen);
	heap_tid nt;
	int rc = heap_update(w->h, w->id + 1, NULL, it->tid, v, vlen, &nt);
	free(v);
	if (rc)
		return note_fail(w, rc, "update");
	it->tid = nt;
	it->seed = seed;
	it->vlen = vlen;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	for (unsigned i = 0; i < NOPS && !w->failed; i++) {
		uint64_t r = tu_rand(&w->rng) % 100;
		gate(i);
		titem *it = w->n ? &w->it[tu_rand(&w->rng) % w->n] : NULL;
		if (!it || !it->live || r < 40) {
			if (w->n < MAXITEMS)
				do_insert(w);
		} else if (r < 65) {
			do_update(w, it);
		} else if (r < 80) {
			int rc = heap_delete(w->h, w->id + 1, NULL, it->tid);
			if (rc)
				note_fail(w, rc, "delete");
			it->live = false;
		} else {
			verify(w, it);
		}
	}
	atomic_fetch_add(&workers_out, 1);
	return NULL;
}

/* Counts scanned tuples and checks each belongs to a live model item. */
static unsigned scan_all(heap *h, worker *ws)
{
	heap_scan *s;
	heap_tid tid;
	const uint8_t *k, *v;
	uint32_t klen;
	uint64_t vlen;
	unsigned n = 0;
	int rc;
	assert_int_equal(heap_scan_begin(h, &s), 0);
	while ((rc = heap_scan_next(s, &tid, &k, &klen, &v, &vlen)) == 0) {
		bool found = false;
		for (unsigned t = 0; t < NTHREADS && !found; t++)
			for (unsigned i = 0; i < ws[t].n && !found; i++)
				found = ws[t].it[i].live && ws[t].it[i].tid.blk == tid.blk &&
					ws[t].it[i].tid.slot == tid.slot &&
					ws[t].it[i].klen == klen && !memcmp(ws[t].it[i].key, k, klen);
		assert_true(found);
		n++;
	}
	assert_int_equal(rc, WD_NOTFOUND);
	heap_scan_end(s);
	return n;
}

/*
 * NCHECKPOINTS checkpoints while the workers run, checkpoint c once they
 * are at gate c: the redo point becomes the insert position, the workers
 * go on, and every dirty page is written and synced (bufmgr_flush_all) as
 * they change pages, as recovery/'s checkpoint does. Returns the last
 * redo point.
 */
static wd_lsn run_checkpoints(wal *w, bufmgr *pool)
{
	wd_lsn redo = 0;
	for (unsigned c = 1; c <= NCHECKPOINTS; c++) {
		while (atomic_load(&gate_arrived[c]) + atomic_load(&workers_out) < NTHREADS)
			usleep(100);
		assert_int_equal(wal_set_redo_point(w, &redo), 0);
		atomic_store(&ckpt_started, c); /* the workers go on */
		assert_int_equal(bufmgr_flush_all(pool), 0);
	}
	return redo;
}

/* Copies file from to file to. */
static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[65536];
	size_t n;
	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/*
 * Tears (second half garbage) up to 8 blocks of relation file path that
 * the log changes after redo; the first record of each from redo must be
 * able to rebuild it alone (a full-page image or WAL_BLK_WILL_INIT: the
 * image decision is rechecked at insert, wal/README.md I11, so a
 * checkpoint between decision and insert cannot leave one out). Returns
 * the blocks torn.
 */
static unsigned tear_after(const char *db, const wal_opts *wo, wd_lsn redo, const char *path)
{
	static uint8_t seen[1 << 16];
	uint8_t junk[PS / 2];
	const wal_decoded *rec;
	wal_reader *r;
	unsigned torn = 0;
	st_file *f;
	memset(seen, 0, sizeof seen);
	memset(junk, 0xA5, sizeof junk);
	assert_int_equal(storage_open(path, 0, &f), 0);
	assert_int_equal(wal_reader_open(db, wo->db_id, wo->segment_size, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, redo), 0);
	while (wal_reader_next(r, &rec) == 0 && torn < 8) {
		const wal_block_ref *b = &rec->blocks[0];
		if (rec->nblocks != 1 || b->rel != REL || b->blk >= sizeof seen || seen[b->blk]++)
			continue;
		assert_true(b->flags & (WAL_BLK_HAS_IMAGE | WAL_BLK_WILL_INIT));
		assert_int_equal(storage_write(f, junk, sizeof junk, (uint64_t)b->blk * PS + PS / 2),
				 0);
		torn++;
	}
	wal_reader_close(r);
	assert_int_equal(storage_close(f), 0);
	return torn;
}

static void test_concurrent_own_tuples(void **state)
{
	char *root = tu_tmpdir("heap-conc"), *db = tu_path(root, "db"), *base, *rp, *fp, *b, *c;
	worker *ws = calloc(NTHREADS, sizeof *ws);
	pthread_t th[NTHREADS];
	wal_log_ctx log = {0};
	heap_fsm_report fr;
	bufmgr_opts bo;
	wal_opts wo;
	bufmgr *pool;
	unsigned live = 0;
	wd_lsn redo;
	heap *h;
	wal *w;
	(void)state;
	heap_rmgr_register();
	base = tu_path(db, "base");
	rp = tu_path(base, "1");
	fp = tu_path(base, "2");
	assert_int_equal(storage_mkdir(db), 0);
	assert_int_equal(storage_mkdir(base), 0);
	tw_opts(&wo);
	wo.no_writer_thread = false;
	wo.buffers_bytes = 1024 * 1024;
	assert_int_equal(wal_create(db, &wo, &w), 0);
	bufmgr_opts_default(&bo);
	bo.page_size = PS;
	bo.pool_bytes = 48 * PS;
	assert_int_equal(bufmgr_create(&bo, &pool), 0);
	bufmgr_set_wal_hook(pool, wal_bufmgr_hook, w);
	assert_int_equal(bufmgr_rel_open(pool, REL, rp, BM_REL_CREATE), 0);
	assert_int_equal(bufmgr_rel_open(pool, FSM_REL, fp, BM_REL_CREATE), 0);
	log.w = w;
	log.full_page_writes = true;
	log.page_size = PS;
	{
		heap_opts ho;
		heap_opts_default(&ho);
		ho.fsm_rel = FSM_REL;
		assert_int_equal(heap_open(pool, &log, REL, &ho, &h), 0);
	}
	for (unsigned t = 0; t < NTHREADS; t++) {
		ws[t] = (worker){.h = h, .id = t, .rng = 100 + t};
		assert_int_equal(pthread_create(&th[t], NULL, worker_main, &ws[t]), 0);
	}
	/* checkpoints while they run */
	redo = run_checkpoints(w, pool);
	for (unsigned t = 0; t < NTHREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	/* the heap file as a crash now would leave it: what the last
	 * checkpoint and the evictions since wrote */
	c = tu_path(root, "crashed");
	{
		char *cb = tu_path(c, "base"), *cr = tu_path(cb, "1");
		assert_int_equal(storage_mkdir(c), 0);
		assert_int_equal(storage_mkdir(cb), 0);
		copy_file(rp, cr);
		free(cb);
		free(cr);
	}
	for (unsigned t = 0; t < NTHREADS; t++) {
		if (ws[t].failed)
			fail_msg("%s", ws[t].why);
		for (unsigned i = 0; i < ws[t].n; i++)
			if (ws[t].it[i].live) {
				verify(&ws[t], &ws[t].it[i]);
				live++;
			}
		assert_int_equal(ws[t].failed, 0);
	}
	assert_int_equal(scan_all(h, ws), live);
	assert_int_equal(heap_fsm_check(h, &fr), 0);
	assert_int_equal(heap_fsm_flush(h), 0);
	heap_close(h);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_destroy(pool);
	assert_int_equal(wal_close(w), 0);
	/* the interleaved log replays to the same pages */
	b = tu_path(root, "replica");
	assert_int_equal(rt_replay(db, &wo, WAL_SEG_HEADER_SIZE, b, 16, NULL), 0);
	assert_int_equal(rt_compare_rel(db, b, REL, PS), -1);
	/* the crashed copy, torn, is repaired by replay from the last redo
	 * point alone: every page changed before it was written by then */
	{
		char *cb = tu_path(c, "base"), *cr = tu_path(cb, "1");
		assert_true(tear_after(db, &wo, redo, cr) > 0);
		assert_true(rt_compare_rel(db, c, REL, PS) >= 0);
		assert_int_equal(rt_replay(db, &wo, redo, c, 16, NULL), 0);
		assert_int_equal(rt_compare_rel(db, c, REL, PS), -1);
		free(cb);
		free(cr);
	}
	tu_rmrf(root);
	free(root), free(db), free(base), free(rp), free(fp), free(b), free(c), free(ws);
}

/* ---- the redo point moved under heap inserts (wal/README.md I11) ---- */

#define RACE_THREADS 4
#define RACE_INSERTS 2500
#define RACE_MAX_REDOS (1u << 20)
/* the workers go on past RACE_INSERTS until the main thread has this many
 * distinct redo points, however the threads are scheduled */
#define RACE_MIN_REDOS 8

static _Atomic unsigned race_running;
static atomic_bool race_enough; /* RACE_MIN_REDOS redo points taken */

typedef struct race_worker {
	heap *h;
	unsigned id;
	int failed;
	char why[256];
} race_worker;

/* Small tuples into the shared heap: the threads fill the same pages. */
static void *race_main(void *arg)
{
	race_worker *w = arg;
	uint8_t val[120];
	heap_tid tid;
	char key[32];
	memset(val, (int)w->id, sizeof val);
	for (unsigned i = 0; (i < RACE_INSERTS || !atomic_load(&race_enough)) && !w->failed;
	     i++) {
		uint32_t klen = (uint32_t)snprintf(key, sizeof key, "r%u-%u", w->id, i);
		int rc = heap_insert(w->h, w->id + 1, NULL, key, klen, val, 20 + i % 100, &tid);
		if (rc) {
			w->failed = rc;
			snprintf(w->why, sizeof w->why, "thread %u insert %u: %s", w->id, i,
				 wd_last_error());
		}
	}
	atomic_fetch_sub(&race_running, 1);
	return NULL;
}

/* The largest of the sorted redo points r[0..n) at or below lsn (0: none):
 * the one in force when the record at lsn was reserved. */
static wd_lsn redo_in_force(const wd_lsn *r, size_t n, wd_lsn lsn)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r[mid] <= lsn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? r[lo - 1] : 0;
}

/*
 * Reads the whole log and tracks each heap page's last change: a record
 * that changes a page without an image or WAL_BLK_WILL_INIT must find its
 * previous change at or after the redo point in force at its LSN - else a
 * torn write of the page could not be repaired by replay from that redo
 * point. Returns the records so checked; *images counts the images.
 */
static uint64_t check_first_changes(const char *db, const wal_opts *wo, const wd_lsn *redos,
				    size_t nredo, uint64_t *images)
{
	static wd_lsn last[1 << 16];
	const wal_decoded *rec;
	wal_reader *r;
	uint64_t checked = 0;
	int rc;
	memset(last, 0, sizeof last);
	*images = 0;
	assert_int_equal(wal_reader_open(db, wo->db_id, wo->segment_size, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, WAL_SEG_HEADER_SIZE), 0);
	while ((rc = wal_reader_next(r, &rec)) == 0) {
		const wal_block_ref *b = &rec->blocks[0];
		assert_int_equal(rec->nblocks, 1);
		assert_true(b->rel == REL && b->blk < (1 << 16));
		if (b->flags & WAL_BLK_HAS_IMAGE) {
			(*images)++;
		} else if (!(b->flags & WAL_BLK_WILL_INIT)) {
			wd_lsn in_force = redo_in_force(redos, nredo, rec->lsn);
			if (last[b->blk] < in_force)
				fail_msg("record at %llu changes block %u without an image; its "
					 "previous change at %llu is before the redo point %llu",
					 (unsigned long long)rec->lsn, b->blk,
					 (unsigned long long)last[b->blk],
					 (unsigned long long)in_force);
			checked++;
		}
		last[b->blk] = rec->lsn;
	}
	assert_int_equal(rc, WD_NOTFOUND);
	wal_reader_close(r);
	return checked;
}

/*
 * RACE_THREADS threads insert small tuples into one heap (sharing its
 * pages) while the main thread moves the redo point over and over
 * (wal_set_redo_point, as a checkpoint's first step). Afterwards every
 * record that changes a page without an image has the page's previous
 * change at or after the redo point in force at its LSN (check_first_changes);
 * and the final heap file with pages changed after a redo point of the
 * middle of the run torn is repaired by replay from that redo point alone.
 */
static void test_fpi_race_under_inserts(void **state)
{
	static wd_lsn redos[RACE_MAX_REDOS];
	char *root = tu_tmpdir("heap-fpi-race"), *db = tu_path(root, "db"), *base, *rp, *fp, *b;
	race_worker *ws = calloc(RACE_THREADS, sizeof *ws);
	pthread_t th[RACE_THREADS];
	wal_log_ctx log = {0};
	wal_counters wc;
	bufmgr_opts bo;
	wal_opts wo;
	bufmgr *pool;
	heap_opts ho;
	size_t nredo = 0;
	uint64_t checked, images;
	heap *h;
	wal *w;
	(void)state;
	heap_rmgr_register();
	base = tu_path(db, "base");
	rp = tu_path(base, "1");
	fp = tu_path(base, "2");
	assert_int_equal(storage_mkdir(db), 0);
	assert_int_equal(storage_mkdir(base), 0);
	tw_opts(&wo);
	wo.no_writer_thread = false;
	wo.segment_size = 4u << 20;
	wo.buffers_bytes = 1024 * 1024;
	assert_int_equal(wal_create(db, &wo, &w), 0);
	bufmgr_opts_default(&bo);
	bo.page_size = PS;
	bo.pool_bytes = 256 * PS;
	assert_int_equal(bufmgr_create(&bo, &pool), 0);
	bufmgr_set_wal_hook(pool, wal_bufmgr_hook, w);
	assert_int_equal(bufmgr_rel_open(pool, REL, rp, BM_REL_CREATE), 0);
	assert_int_equal(bufmgr_rel_open(pool, FSM_REL, fp, BM_REL_CREATE), 0);
	log.w = w;
	log.full_page_writes = true;
	log.page_size = PS;
	heap_opts_default(&ho);
	ho.fsm_rel = FSM_REL;
	assert_int_equal(heap_open(pool, &log, REL, &ho, &h), 0);
	atomic_store(&race_running, RACE_THREADS);
	atomic_store(&race_enough, false);
	for (unsigned t = 0; t < RACE_THREADS; t++) {
		ws[t] = (race_worker){.h = h, .id = t};
		assert_int_equal(pthread_create(&th[t], NULL, race_main, &ws[t]), 0);
	}
	while (atomic_load(&race_running) > 0 && nredo < RACE_MAX_REDOS) {
		wd_lsn redo;
		assert_int_equal(wal_set_redo_point(w, &redo), 0);
		if (nredo == 0 || redo != redos[nredo - 1])
			redos[nredo++] = redo;
		if (nredo >= RACE_MIN_REDOS)
			atomic_store(&race_enough, true);
	}
	for (unsigned t = 0; t < RACE_THREADS; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		if (ws[t].failed)
			fail_msg("%s", ws[t].why);
	}
	wal_stats(w, &wc);
	heap_close(h);
	assert_int_equal(bufmgr_flush_all(pool), 0);
	bufmgr_destroy(pool);
	assert_int_equal(wal_close(w), 0);
	checked = check_first_changes(db, &wo, redos, nredo, &images);
	print_message("%zu redo points, %llu records without an image checked, %llu images, "
		      "%llu inserts refused and rebuilt\n", nredo, (unsigned long long)checked,
		      (unsigned long long)images, (unsigned long long)wc.fpw_retries);
	assert_true(nredo >= RACE_MIN_REDOS);
	/* the final file with up to 8 pages changed since a redo point of the
	 * middle of the run torn: replay from that redo point alone repairs
	 * them */
	b = tu_path(root, "replica");
	assert_int_equal(rt_replay(db, &wo, WAL_SEG_HEADER_SIZE, b, 16, NULL), 0);
	{
		char *bb = tu_path(b, "base"), *br = tu_path(bb, "1");
		assert_true(tear_after(db, &wo, redos[nredo / 2], br) > 0);
		assert_int_equal(rt_replay(db, &wo, redos[nredo / 2], b, 16, NULL), 0);
		assert_int_equal(rt_compare_rel(db, b, REL, PS), -1);
		free(bb);
		free(br);
	}
	tu_rmrf(root);
	free(root), free(db), free(base), free(rp), free(fp), free(b), free(ws);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_own_tuples),
		cmocka_unit_test(test_fpi_race_under_inserts),
	};
	return cmocka_run_group_tests_name("heap_conc", tests, NULL, NULL);
}
