/*
 * test_sim.c - simulated power loss (storage/sim.c, storage/sim_crash.c):
 * the crash states the materialiser builds are exactly those its plan
 * describes, synced data always survives, unsynced directory entries can
 * vanish or revert, it all works after the writer was killed, and the
 * writer's and the materialiser's checks refuse what would corrupt files.
 * The multi-threaded cases are in test_sim_conc.c (run under TSan too).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/simtest.h"
#include "tests/lib/testutil.h"

#define OK(call)                                                          \
	do {                                                              \
		int rc_ = (call);                                         \
		if (rc_ != 0)                                             \
			fail_msg("%s: %s (%s)", #call, wd_strerror(rc_), \
				 wd_last_error());                        \
	} while (0)

/* In a forked child: any failure ends it with status 3. */
#define CHILD_OK(call)                                                    \
	do {                                                              \
		if ((call) != 0)                                          \
			_exit(3);                                         \
	} while (0)

#define CAP 32768
#define MAX_OPS 64

static int setup(void **state)
{
	return simtest_setup(state);
}

static int teardown(void **state)
{
	return simtest_teardown(state);
}

/* The bytes of path (malloc'd) and their count; NULL if absent. */
static uint8_t *slurp(const char *path, size_t *len)
{
	return simtest_slurp(path, CAP * 4, len);
}

static void assert_file(const char *path, const void *want, size_t len)
{
	size_t got_len;
	uint8_t *got = slurp(path, &got_len);
	if (!got)
		fail_msg("%s: absent, want %zu bytes", path, len);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, want, len);
	free(got);
}

/* Writes a whole small file through storage/, synced. */
static void put_file(const char *path, const char *text, bool sync)
{
	st_file *f;
	OK(storage_open(path, ST_CREATE | ST_TRUNC, &f));
	OK(storage_write(f, text, strlen(text), 0));
	if (sync)
		OK(storage_sync(f));
	OK(storage_close(f));
}

static void fill_rand(uint8_t *b, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)tu_rand(rng);
}

/* ---- a random data workload and its independent model ------------------- */

struct wop {
	st_sim_kind kind;
	uint64_t off, len; /* as st_sim_op reports them */
	bool extends;      /* writes: off + len was past the length then */
	uint8_t data[4096];
};

struct model {
	uint8_t durable[CAP], cur[CAP];
	size_t dlen, clen;
	struct wop ops[MAX_OPS]; /* changes since the last sync */
	int nops;
};

static void model_resize(uint8_t *b, size_t *len, size_t n)
{
	if (n > *len)
		memset(b + *len, 0, n - *len);
	*len = n;
}

/* One random write, truncate, allocate or sync on f, mirrored in m. */
static void workload_step(st_file *f, struct model *m, uint64_t *rng)
{
	uint64_t r = tu_rand(rng) % 100, off = tu_rand(rng) % 14000;
	uint64_t len = 1 + tu_rand(rng) % 4000;
	struct wop *w = &m->ops[m->nops];

	if (r < 65) {
		*w = (struct wop){.kind = ST_SIM_WRITE, .off = off, .len = len,
				  .extends = off + len > m->clen};
		fill_rand(w->data, len, rng);
		OK(storage_write(f, w->data, len, off));
		if (off + len > m->clen)
			model_resize(m->cur, &m->clen, off + len);
		memcpy(m->cur + off, w->data, len);
		m->nops++;
	} else if (r < 88) {
		uint64_t size = r < 80 ? tu_rand(rng) % 16000 : off + len;
		if (r < 80)
			OK(storage_truncate(f, size));
		else
			OK(storage_allocate(f, off, len));
		if (size == m->clen || (r >= 80 && size < m->clen))
			return; /* no change in length: nothing journaled */
		*w = (struct wop){.kind = ST_SIM_TRUNCATE, .off = size,
				  .len = m->clen};
		model_resize(m->cur, &m->clen, size);
		m->nops++;
	} else {
		OK(storage_sync(f));
		memcpy(m->durable, m->cur, m->clen);
		m->dlen = m->clen;
		m->nops = 0;
	}
}

/* Runs a tracked workload of about 20 changes on e->file; m receives the
 * durable content and the changes after the last sync. */
static void run_workload(struct env *e, uint64_t seed, struct model *m)
{
	uint64_t rng = seed * 7919 + 1;
	st_file *f;

	m->clen = 6000 + tu_rand(&rng) % 4000;
	m->nops = 0;
	fill_rand(m->cur, m->clen, &rng);
	unlink(e->file);
	OK(storage_sim_start(e->jdir));
	OK(storage_open(e->file, ST_CREATE, &f));
	OK(storage_write(f, m->cur, m->clen, 0));
	OK(storage_sync(f));
	OK(storage_sync_dir(e->db));
	memcpy(m->durable, m->cur, m->clen);
	m->dlen = m->clen;
	for (int i = 0; i < 20 && m->nops < MAX_OPS - 1; i++)
		workload_step(f, m, &rng);
	OK(storage_close(f));
	storage_sim_stop();
}

static bool mask_bit(const st_sim_op *op, uint32_t i)
{
	return (op->mask[i / 8] >> (i % 8)) & 1;
}

/*
 * The content the plan r describes, computed from the model alone: the
 * durable bytes, then each surviving change in order (writes: the sectors
 * whose mask bit is set; the length grows to the end of the last one, or
 * to the write's end if its size change survived: size_kept).
 */
static size_t expected(const struct model *m, const st_sim_report *r,
		       uint32_t sector, uint8_t *out)
{
	size_t len = m->dlen;
	memcpy(out, m->durable, len);
	for (size_t i = 0; i < r->nops; i++) {
		const st_sim_op *op = &r->ops[i];
		const struct wop *w = &m->ops[i];
		if (op->kind == ST_SIM_TRUNCATE && op->decision != ST_SIM_DROPPED)
			model_resize(out, &len, op->off);
		if (op->size_kept && w->off + w->len > len)
			model_resize(out, &len, w->off + w->len);
		for (uint32_t s = 0; op->kind == ST_SIM_WRITE && s < op->nsectors;
		     s++) {
			uint64_t lo = (w->off / sector + s) * sector, hi = lo + sector;
			if (!mask_bit(op, s))
				continue;
			lo = lo < w->off ? w->off : lo;
			hi = hi > w->off + w->len ? w->off + w->len : hi;
			if (hi > len)
				model_resize(out, &len, hi);
			memcpy(out + lo, w->data + (lo - w->off), hi - lo);
		}
	}
	return len;
}

/* The plan lists exactly the model's pending changes, with masks that
 * agree with their decisions. */
static void check_plan(const struct model *m, const st_sim_report *r,
		       st_sim_mode mode, uint32_t sector)
{
	assert_int_equal(r->nops, m->nops);
	assert_int_equal(r->data_pending, m->nops);
	assert_int_equal(r->data_kept + r->data_dropped + r->data_torn,
			 r->data_pending);
	for (size_t i = 0; i < r->nops; i++) {
		const st_sim_op *op = &r->ops[i];
		assert_int_equal(op->kind, m->ops[i].kind);
		assert_int_equal(op->off, m->ops[i].off);
		assert_int_equal(op->len, m->ops[i].len);
		/* only a lost or torn write that extended the file, under TORN */
		if (op->size_kept)
			assert_true(mode == ST_SIM_TORN && m->ops[i].extends &&
				    op->decision != ST_SIM_KEPT);
		if (op->kind != ST_SIM_WRITE)
			continue;
		assert_int_equal(op->nsectors, (op->off + op->len - 1) / sector -
							op->off / sector + 1);
		for (uint32_t s = 0; s < op->nsectors; s++)
			if (op->decision != ST_SIM_TORN_OP)
				assert_int_equal(mask_bit(op, s),
						 op->decision == ST_SIM_KEPT);
	}
}

/* Runs the workload of seed, materialises it, checks file == model. */
static void model_round(struct env *e, uint64_t seed, st_sim_mode mode,
			uint32_t sector, st_sim_report *r)
{
	struct model *m = calloc(1, sizeof *m);
	uint8_t *want = malloc(CAP);
	st_sim_opts o = {.mode = mode, .seed = seed, .sector_bytes = sector};
	size_t want_len;

	run_workload(e, seed, m);
	OK(storage_sim_materialize(e->jdir, &o, r));
	check_plan(m, r, mode, sector);
	want_len = expected(m, r, sector, want);
	assert_file(e->file, want, want_len);
	free(want);
	free(m);
}

/* (2) Over many seeds, modes and both sector sizes, the file after the
 * crash is exactly the model's prediction from the plan. */
static void test_model_many_seeds(void **state)
{
	struct env *e = *state;
	uint64_t torn = 0, kept = 0, dropped = 0, size_kept[2] = {0};

	for (uint64_t seed = 0; seed < 160; seed++) {
		st_sim_report r;
		st_sim_mode mode = seed % 4 == 0 ? ST_SIM_RANDOM : ST_SIM_TORN;
		model_round(e, seed, mode, (seed / 2) % 2 ? 4096 : 512, &r);
		torn += r.data_torn;
		kept += r.data_kept;
		dropped += r.data_dropped;
		for (size_t i = 0; i < r.nops; i++)
			if (r.ops[i].size_kept)
				size_kept[r.ops[i].decision == ST_SIM_TORN_OP]++;
		storage_sim_report_free(&r);
	}
	/* the seeds exercised every fate, and a lost write's length kept */
	assert_true(torn > 20 && kept > 20 && dropped > 20);
	assert_true(size_kept[0] > 5 && size_kept[1] > 5);
}

/* (1) The same seed over the same journal gives the same plan and the same
 * bytes; another seed gives another plan. */
static void test_seed_determinism(void **state)
{
	struct env *e = *state;
	struct model *m = calloc(1, sizeof *m);
	st_sim_opts o = {.mode = ST_SIM_TORN, .seed = 42, .dry_run = true};
	st_sim_report a, b, c;
	uint8_t *bytes1;
	size_t len1;
	bool differ = false;
	uint64_t w;

	/* a workload that leaves a handful of changes pending */
	for (w = 5;; w++) {
		run_workload(e, w, m);
		if (m->nops > 5)
			break;
		OK(storage_sim_materialize(e->jdir, &o, NULL));
		OK(storage_sim_materialize(e->jdir, &(st_sim_opts){0}, NULL));
	}
	OK(storage_sim_materialize(e->jdir, &o, &a));
	OK(storage_sim_materialize(e->jdir, &o, &b));
	o.seed = 43;
	OK(storage_sim_materialize(e->jdir, &o, &c));
	assert_true(a.nops > 3);
	assert_int_equal(a.nops, b.nops);
	for (size_t i = 0; i < a.nops; i++) {
		assert_int_equal(a.ops[i].decision, b.ops[i].decision);
		assert_memory_equal(a.ops[i].mask, b.ops[i].mask,
				    (a.ops[i].nsectors + 7) / 8);
		differ |= a.ops[i].decision != c.ops[i].decision;
	}
	assert_true(differ);
	/* for real, twice: identical bytes */
	o = (st_sim_opts){.mode = ST_SIM_TORN, .seed = 42};
	OK(storage_sim_materialize(e->jdir, &o, NULL));
	bytes1 = slurp(e->file, &len1);
	run_workload(e, w, m);
	OK(storage_sim_materialize(e->jdir, &o, NULL));
	assert_file(e->file, bytes1, len1);
	free(bytes1);
	free(m);
	storage_sim_report_free(&a);
	storage_sim_report_free(&b);
	storage_sim_report_free(&c);
}

/* (4) KEEP_ALL leaves the pre-crash bytes; DROP_ALL gives exactly the last
 * synced bytes. */
static void test_keep_all_drop_all(void **state)
{
	struct env *e = *state;
	struct model *m = calloc(1, sizeof *m);
	st_sim_opts o = {.mode = ST_SIM_KEEP_ALL};
	st_sim_report r;

	run_workload(e, 11, m);
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_true(r.data_pending > 0);
	assert_int_equal(r.data_kept, r.data_pending);
	assert_file(e->file, m->cur, m->clen);
	storage_sim_report_free(&r);

	run_workload(e, 11, m);
	o.mode = ST_SIM_DROP_ALL;
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_int_equal(r.data_dropped, r.data_pending);
	assert_file(e->file, m->durable, m->dlen);
	storage_sim_report_free(&r);
	free(m);
}

/* (3) Data covered by a completed fsync survives every mode and seed. */
static void test_synced_survives(void **state)
{
	struct env *e = *state;
	uint8_t a[8192], b[8192];
	uint64_t rng = 3;

	fill_rand(a, sizeof a, &rng);
	fill_rand(b, sizeof b, &rng);
	for (uint64_t seed = 0; seed < 64; seed++) {
		st_sim_opts o = {.mode = (st_sim_mode)(seed % 4), .seed = seed,
				 .sector_bytes = seed % 8 < 4 ? 512 : 4096};
		size_t len;
		uint8_t *got;
		st_file *f;

		unlink(e->file);
		OK(storage_sim_start(e->jdir));
		OK(storage_open(e->file, ST_CREATE, &f));
		OK(storage_write(f, a, sizeof a, 0));
		OK(storage_sync(f));
		OK(storage_sync_dir(e->db));
		OK(storage_write(f, b, sizeof b, sizeof a)); /* never synced */
		OK(storage_close(f));
		storage_sim_stop();
		OK(storage_sim_materialize(e->jdir, &o, NULL));
		got = slurp(e->file, &len);
		assert_non_null(got);
		assert_true(len >= sizeof a);
		assert_memory_equal(got, a, sizeof a);
		free(got);
	}
}

/* (S11) A failed fdatasync drops the writes it should have made durable:
 * a later fdatasync that succeeds does not bring them back, under every
 * power-loss mode and seed; what that later sync covers alone survives.
 * Without SYNCFAIL the second sync would cover them too and the retry
 * after a failed fsync would look harmless. */
static void test_failed_sync_loses(void **state)
{
	struct env *e = *state;
	uint8_t a[8192], b[8192], c[4096], want[8192 + 4096];
	uint64_t rng = 5;

	fill_rand(a, sizeof a, &rng);
	fill_rand(b, sizeof b, &rng);
	fill_rand(c, sizeof c, &rng);
	memcpy(want, a, sizeof a);
	memcpy(want + sizeof a, c, sizeof c);
	for (uint64_t seed = 0; seed < 32; seed++) {
		st_sim_opts o = {.mode = (st_sim_mode)(seed % 4), .seed = seed,
				 .sector_bytes = seed % 8 < 4 ? 512 : 4096};
		st_file *f;

		unlink(e->file);
		OK(storage_sim_start(e->jdir));
		OK(storage_open(e->file, ST_CREATE, &f));
		OK(storage_write(f, a, sizeof a, 0));
		OK(storage_sync(f));
		OK(storage_sync_dir(e->db));
		OK(storage_write(f, b, sizeof b, 0)); /* over a: lost below */
		OK(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, NULL));
		assert_int_equal(storage_sync(f), WD_EIO);
		storage_fault_clear();
		OK(storage_write(f, c, sizeof c, sizeof a));
		OK(storage_sync(f)); /* "succeeds": covers b and c, keeps only c */
		OK(storage_close(f));
		storage_sim_stop();
		OK(storage_sim_materialize(e->jdir, &o, NULL));
		assert_file(e->file, want, sizeof want);
	}
}

/* Creates db/new, writes and fdatasyncs it (the directory only if
 * sync_dir), and materialises with o. Returns whether it survived. */
static bool created_file_survives(struct env *e, bool sync_dir,
				  const st_sim_opts *o)
{
	char *path = tu_path(e->db, "new");
	size_t len;
	uint8_t *got;

	OK(storage_sim_start(e->jdir));
	put_file(path, "hello", true);
	if (sync_dir)
		OK(storage_sync_dir(e->db));
	storage_sim_stop();
	OK(storage_sim_materialize(e->jdir, o, NULL));
	got = slurp(path, &len);
	if (got) { /* its data was synced: if it is there, it is whole */
		assert_int_equal(len, 5);
		assert_memory_equal(got, "hello", 5);
	}
	unlink(path);
	free(path);
	free(got);
	return got != NULL;
}

/* (5) A created file whose directory was not fsynced vanishes under
 * DROP_ALL and under some RANDOM seeds, and survives once the directory is
 * synced. */
static void test_unsynced_create_vanishes(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL};
	int survived = 0;

	assert_false(created_file_survives(e, false, &o));
	assert_true(created_file_survives(e, true, &o));
	o.mode = ST_SIM_KEEP_ALL;
	assert_true(created_file_survives(e, false, &o));
	o.mode = ST_SIM_RANDOM;
	for (o.seed = 0; o.seed < 32; o.seed++)
		survived += created_file_survives(e, false, &o);
	assert_true(survived > 0 && survived < 32);
}

/* Sets up db/a, db/b, db/c ("A", "B", "C"), all durable, then renames a
 * over b and unlinks c without syncing the directory. */
static void rename_unlink_workload(struct env *e, char **a, char **b, char **c)
{
	*a = tu_path(e->db, "a");
	*b = tu_path(e->db, "b");
	*c = tu_path(e->db, "c");
	OK(storage_sim_start(e->jdir));
	put_file(*a, "A", true);
	put_file(*b, "B", true);
	put_file(*c, "C", true);
	OK(storage_sync_dir(e->db));
	OK(storage_rename(*a, *b));
	OK(storage_unlink(*c));
	assert_false(storage_exists(*a));
	assert_false(storage_exists(*c));
	storage_sim_stop();
}

/* (6) An unsynced rename can revert (old name back, replaced target
 * restored) and an unsynced unlink can be undone; each follows its own
 * decision under RANDOM. */
static void test_rename_unlink_revert(void **state)
{
	struct env *e = *state;
	char *a, *b, *c;
	st_sim_report r;

	for (uint64_t seed = 0; seed < 24; seed++) {
		st_sim_opts o = {.mode = seed == 0	 ? ST_SIM_DROP_ALL
					 : seed == 1 ? ST_SIM_KEEP_ALL
						     : ST_SIM_RANDOM,
				 .seed = seed};
		bool ren, unl;
		rename_unlink_workload(e, &a, &b, &c);
		OK(storage_sim_materialize(e->jdir, &o, &r));
		assert_int_equal(r.dir_pending, 2);
		assert_int_equal(r.nops, 2);
		assert_int_equal(r.ops[0].kind, ST_SIM_RENAME);
		assert_int_equal(r.ops[1].kind, ST_SIM_UNLINK);
		ren = r.ops[0].decision == ST_SIM_KEPT;
		unl = r.ops[1].decision == ST_SIM_KEPT;
		if (seed < 2)
			assert_true(ren == (seed == 1) && unl == (seed == 1));
		assert_int_equal(storage_exists(a), !ren);
		assert_file(b, ren ? "A" : "B", 1);
		if (!ren)
			assert_file(a, "A", 1);
		assert_int_equal(storage_exists(c), !unl);
		if (!unl)
			assert_file(c, "C", 1);
		storage_sim_report_free(&r);
		unlink(a), unlink(b), unlink(c);
		free(a), free(b), free(c);
	}
}

/* A chain x -> y -> z: when the first rename is dropped the second finds
 * no source, has no effect, and x keeps its name. */
static void test_rename_chain(void **state)
{
	struct env *e = *state;
	char *x = tu_path(e->db, "x"), *y = tu_path(e->db, "y");
	char *z = tu_path(e->db, "z");
	int no_effect = 0;

	for (uint64_t seed = 0; seed < 24; seed++) {
		st_sim_opts o = {.mode = ST_SIM_RANDOM, .seed = seed};
		st_sim_report r;
		bool k1, k2;
		OK(storage_sim_start(e->jdir));
		put_file(x, "X", true);
		OK(storage_sync_dir(e->db));
		OK(storage_rename(x, y));
		OK(storage_rename(y, z));
		storage_sim_stop();
		OK(storage_sim_materialize(e->jdir, &o, &r));
		assert_int_equal(r.nops, 2);
		k1 = r.ops[0].decision == ST_SIM_KEPT;
		k2 = r.ops[1].decision == ST_SIM_KEPT;
		assert_int_equal(r.ops[1].no_effect, k2 && !k1);
		no_effect += r.ops[1].no_effect;
		assert_file(!k1 ? x : k2 ? z : y, "X", 1);
		assert_int_equal(storage_exists(x) + storage_exists(y) +
					 storage_exists(z), 1);
		storage_sim_report_free(&r);
		unlink(x), unlink(y), unlink(z);
	}
	assert_true(no_effect > 0);
	free(x), free(y), free(z);
}

/* Rename a over b, then unlink b: if the rename is dropped, b names its
 * old file again and the kept unlink must leave that file alone. */
static void test_unlink_after_dropped_rename(void **state)
{
	struct env *e = *state;
	char *a = tu_path(e->db, "a"), *b = tu_path(e->db, "b");
	int cases = 0;

	for (uint64_t seed = 0; seed < 24; seed++) {
		st_sim_opts o = {.mode = ST_SIM_RANDOM, .seed = seed};
		st_sim_report r;
		bool k1, k2;
		OK(storage_sim_start(e->jdir));
		put_file(a, "A", true);
		put_file(b, "B", true);
		OK(storage_sync_dir(e->db));
		OK(storage_rename(a, b));
		OK(storage_unlink(b));
		storage_sim_stop();
		OK(storage_sim_materialize(e->jdir, &o, &r));
		assert_int_equal(r.nops, 2);
		k1 = r.ops[0].decision == ST_SIM_KEPT;
		k2 = r.ops[1].decision == ST_SIM_KEPT;
		assert_int_equal(storage_exists(a), !k1);
		if (!k1) {
			assert_file(a, "A", 1);
			assert_file(b, "B", 1);
		} else if (k2) {
			assert_false(storage_exists(b));
		} else {
			assert_file(b, "A", 1);
		}
		cases += !k1 && k2;
		storage_sim_report_free(&r);
		unlink(a), unlink(b);
	}
	assert_true(cases > 0);
	free(a), free(b);
}

/* ---- (7) a killed writer ------------------------------------------------ */

/* The child's workload: durable "AAAA...", then an unsynced overwrite of
 * its first 4 KiB and an unsynced rename f -> g; then it dies. */
static void killed_child(void *arg)
{
	struct env *e = arg;
	char *g = tu_path(e->db, "g");
	static uint8_t a[8192], b[4096];
	st_file *f;

	memset(a, 'A', sizeof a);
	memset(b, 'B', sizeof b);
	CHILD_OK(storage_sim_start(e->jdir));
	CHILD_OK(storage_open(e->file, ST_CREATE, &f));
	CHILD_OK(storage_write(f, a, sizeof a, 0));
	CHILD_OK(storage_sync(f));
	CHILD_OK(storage_sync_dir(e->db));
	CHILD_OK(storage_write(f, b, sizeof b, 0));
	CHILD_OK(storage_rename(e->file, g));
	if (getenv("SIM_TEST_SIGKILL"))
		raise(SIGKILL);
	storage_crash_arm("sim-test", 1);
	storage_crash_point("sim-test");
	_exit(4); /* not reached */
}

/* (7) The writer is killed (crash point, then SIGKILL); the state is
 * materialised afterwards in this process. */
static void test_killed_child(void **state)
{
	struct env *e = *state;
	char *g = tu_path(e->db, "g");
	uint8_t want[8192];
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL};
	st_sim_report r;

	setenv("WALDEN_CRASH_QUIET", "1", 1);
	assert_int_equal(tu_run_child(killed_child, e), ST_CRASH_EXIT_CODE);
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_int_equal(r.data_pending, 1);
	assert_int_equal(r.dir_pending, 1);
	memset(want, 'A', sizeof want);
	assert_file(e->file, want, sizeof want);
	assert_false(storage_exists(g));
	storage_sim_report_free(&r);

	unlink(e->file);
	setenv("SIM_TEST_SIGKILL", "1", 1);
	assert_int_equal(tu_run_child(killed_child, e), 128 + SIGKILL);
	unsetenv("SIM_TEST_SIGKILL");
	o.mode = ST_SIM_KEEP_ALL;
	OK(storage_sim_materialize(e->jdir, &o, NULL));
	memset(want, 'B', 4096);
	assert_file(g, want, sizeof want);
	assert_false(storage_exists(e->file));
	free(g);
}

/* ---- (8) torn writes ------------------------------------------------------ */

/*
 * Durable OLD bytes, then one unsynced write of NEW bytes at off (not
 * sector aligned); under TORN every byte must be NEW exactly where its
 * file sector's mask bit is set, OLD elsewhere.
 */
static void torn_at(struct env *e, uint32_t sector)
{
	static uint8_t old[20000], new[12000];
	const uint64_t off = 700;
	int mixed = 0, torn = 0;
	uint64_t rng = sector;

	fill_rand(old, sizeof old, &rng);
	fill_rand(new, sizeof new, &rng);
	for (uint64_t seed = 0; seed < 40; seed++) {
		st_sim_opts o = {.mode = ST_SIM_TORN, .seed = seed,
				 .sector_bytes = sector};
		st_sim_report r;
		uint8_t *got;
		size_t len, n_new = 0;
		st_file *f;

		unlink(e->file);
		OK(storage_sim_start(e->jdir));
		OK(storage_open(e->file, ST_CREATE, &f));
		OK(storage_write(f, old, sizeof old, 0));
		OK(storage_sync(f));
		OK(storage_sync_dir(e->db));
		OK(storage_write(f, new, sizeof new, off));
		OK(storage_close(f));
		storage_sim_stop();
		OK(storage_sim_materialize(e->jdir, &o, &r));
		assert_int_equal(r.nops, 1);
		assert_int_equal(r.ops[0].nsectors,
				 (off + sizeof new - 1) / sector - off / sector + 1);
		got = slurp(e->file, &len);
		assert_int_equal(len, sizeof old);
		for (size_t i = 0; i < len; i++) {
			bool in = i >= off && i < off + sizeof new;
			bool keep = in && mask_bit(&r.ops[0], (uint32_t)(i / sector -
							      off / sector));
			if (got[i] != (keep ? new[i - off] : old[i]))
				fail_msg("sector %u seed %llu byte %zu wrong",
					 sector, (unsigned long long)seed, i);
			n_new += keep;
		}
		torn += r.ops[0].decision == ST_SIM_TORN_OP;
		mixed += n_new > 0 && n_new < sizeof new;
		free(got);
		storage_sim_report_free(&r);
	}
	assert_true(torn > 0 && mixed > 0);
}

static void test_torn_512(void **state)
{
	torn_at(*state, 512);
}

static void test_torn_4096(void **state)
{
	torn_at(*state, 4096);
}

/* ---- one chosen write torn with a chosen mask (TEAR_ONE) --------------- */

/* Durable OLD (20000 bytes), then three unsynced writes: N1 at 700 (3000
 * bytes), N2 at 8192 (8192 bytes, 16 sectors of 512) and N3 at 20480
 * (3000 bytes: the file grows, a hole of 480 bytes before it). */
static void tear_one_workload(struct env *e, const uint8_t *old, const uint8_t *n1,
			      const uint8_t *n2, const uint8_t *n3)
{
	st_file *f;
	unlink(e->file);
	OK(storage_sim_start(e->jdir));
	OK(storage_open(e->file, ST_CREATE, &f));
	OK(storage_write(f, old, 20000, 0));
	OK(storage_sync(f));
	OK(storage_sync_dir(e->db));
	OK(storage_write(f, n1, 3000, 700));
	OK(storage_write(f, n2, 8192, 8192));
	OK(storage_write(f, n3, 3000, 20480));
	OK(storage_close(f));
	storage_sim_stop();
}

/*
 * Materialises the workload with write number `which` (0..2) torn by mask:
 * the plan says so (every other change kept, the mask as given, the
 * extending N3 keeping its length), and the file holds N1..N3 whole but
 * for the torn write, whose sectors hold its new bytes exactly where the
 * mask says and the bytes before it elsewhere.
 */
static void tear_one_round(struct env *e, unsigned which, uint64_t mask)
{
	static uint8_t old[20000], n[3][8192], want[23480];
	static const uint64_t off[3] = {700, 8192, 20480}, len[3] = {3000, 8192, 3000};
	uint64_t rng = 99, seqs[3];
	st_sim_opts o = {.mode = ST_SIM_KEEP_ALL, .dry_run = true};
	st_sim_report r;
	uint8_t *got;
	size_t glen;

	fill_rand(old, sizeof old, &rng);
	for (int i = 0; i < 3; i++)
		fill_rand(n[i], sizeof n[i], &rng);
	tear_one_workload(e, old, n[0], n[1], n[2]);
	OK(storage_sim_materialize(e->jdir, &o, &r)); /* the plan's numbers */
	assert_int_equal(r.nops, 3);
	for (int i = 0; i < 3; i++)
		seqs[i] = r.ops[i].seq;
	storage_sim_report_free(&r);
	o = (st_sim_opts){.mode = ST_SIM_TEAR_ONE, .tear_seq = seqs[which], .tear_mask = mask};
	OK(storage_sim_materialize(e->jdir, &o, &r));
	for (unsigned i = 0; i < 3; i++) {
		const st_sim_op *op = &r.ops[i];
		assert_int_equal(op->decision, i == which ? ST_SIM_TORN_OP : ST_SIM_KEPT);
		assert_int_equal(op->size_kept, i == which && i == 2);
		for (uint32_t b = 0; b < op->nsectors; b++)
			assert_int_equal(mask_bit(op, b),
					 i != which || (b < 64 && ((mask >> b) & 1)));
	}
	memset(want, 0, sizeof want);
	memcpy(want, old, sizeof old);
	for (unsigned i = 0; i < 3; i++)
		for (uint64_t b = off[i]; b < off[i] + len[i]; b++) {
			uint64_t sec = b / 512 - off[i] / 512;
			if (i != which || ((mask >> sec) & 1))
				want[b] = n[i][b - off[i]];
		}
	got = slurp(e->file, &glen);
	assert_int_equal(glen, sizeof want);
	assert_memory_equal(got, want, sizeof want);
	free(got);
	storage_sim_report_free(&r);
}

static void test_tear_one(void **state)
{
	struct env *e = *state;
	static uint8_t old[20000], n[8192];
	st_sim_opts o = {.mode = ST_SIM_TEAR_ONE, .tear_seq = 1, .tear_mask = 1};
	uint64_t rng = 5;
	size_t len;
	uint8_t *got;

	tear_one_round(e, 1, 0xA5C3); /* a page-sized write, 16 sectors */
	tear_one_round(e, 1, 0);      /* all old: as if dropped */
	tear_one_round(e, 0, 0x2);    /* an unaligned write: sectors of the file */
	tear_one_round(e, 2, 0x1);    /* extending: length kept, a zero tail */
	/* a number that names no pending write (1 is the IDENT) is refused,
	 * and the files stay as the run left them, the journal in place */
	fill_rand(old, sizeof old, &rng);
	fill_rand(n, sizeof n, &rng);
	tear_one_workload(e, old, n, n, n);
	assert_int_equal(storage_sim_materialize(e->jdir, &o, NULL), WD_EINVAL);
	assert_non_null(strstr(wd_last_error(), "no pending write"));
	got = slurp(e->file, &len);
	assert_int_equal(len, 23480);
	assert_memory_equal(got + 700, n, 3000);
	free(got);
	o.mode = ST_SIM_DROP_ALL;
	OK(storage_sim_materialize(e->jdir, &o, NULL));
	assert_file(e->file, old, sizeof old);
}

/* ---- (9) a torn journal tail ------------------------------------------- */

/* Durable 'A' x 4096; unsynced 'B' over [0,1024), then 'C' over
 * [2048,3072). Returns the journal's path. */
static char *two_writes(struct env *e)
{
	uint8_t a[4096];
	st_file *f;

	memset(a, 'A', sizeof a);
	unlink(e->file);
	OK(storage_sim_start(e->jdir));
	OK(storage_open(e->file, ST_CREATE, &f));
	OK(storage_write(f, a, sizeof a, 0));
	OK(storage_sync(f));
	OK(storage_sync_dir(e->db));
	memset(a, 'B', 1024);
	OK(storage_write(f, a, 1024, 0));
	memset(a, 'C', 1024);
	OK(storage_write(f, a, 1024, 2048));
	OK(storage_close(f));
	storage_sim_stop();
	return tu_path(e->jdir, "journal");
}

/* (9) A record cut short, garbage after the last record, or a flipped byte
 * in it: the bad record and anything after it is ignored. */
static void test_torn_journal_tail(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL};
	char *j = two_writes(e);
	uint8_t want[4096];
	st_sim_report r;
	struct stat st;
	FILE *fp;

	/* cut mid-record: as if killed while appending C's record (its write
	 * then never happened; here it did, so C stays as if durable) */
	assert_int_equal(stat(j, &st), 0);
	assert_int_equal(truncate(j, st.st_size - 10), 0);
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_true(r.tail_torn);
	assert_int_equal(r.nops, 1);
	assert_int_equal(r.ops[0].off, 0);
	memset(want, 'A', sizeof want);
	memset(want + 2048, 'C', 1024);
	assert_file(e->file, want, sizeof want);
	storage_sim_report_free(&r);

	/* garbage (half a header) after intact records: both writes dropped */
	free(two_writes(e));
	fp = fopen(j, "ab");
	fwrite("\x40\x00\x00\x00\x03\x00", 1, 6, fp);
	fclose(fp);
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_true(r.tail_torn);
	assert_int_equal(r.nops, 2);
	memset(want, 'A', sizeof want);
	assert_file(e->file, want, sizeof want);
	storage_sim_report_free(&r);

	/* a flipped byte inside the last record fails its CRC */
	free(two_writes(e));
	assert_int_equal(stat(j, &st), 0);
	fp = fopen(j, "r+b");
	fseek(fp, st.st_size - 100, SEEK_SET);
	fputc('Z', fp);
	fclose(fp);
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_true(r.tail_torn);
	assert_int_equal(r.nops, 1);
	storage_sim_report_free(&r);
	free(j);
}

/* ---- (10) restarts, forks and the journal's own checks -------------------- */

/*
 * A handle opened in one run and still open in the next is untracked there
 * (its old identity number names another file now): its write counts as
 * durable, and the file the number now names is left alone. A fresh handle
 * on the same file is tracked.
 */
static void test_restart_old_handle(void **state)
{
	struct env *e = *state;
	char *a = tu_path(e->db, "A"), *b = tu_path(e->db, "B");
	st_sim_opts o = {.mode = ST_SIM_KEEP_ALL};
	st_sim_report r;
	st_file *fa, *fb, *fa2;

	OK(storage_sim_start(e->jdir)); /* run 1: A gets identity 1 */
	OK(storage_open(a, ST_CREATE, &fa));
	OK(storage_write(fa, "AAAAAAAA", 8, 0));
	OK(storage_sync(fa));
	OK(storage_sync_dir(e->db));
	storage_sim_stop();
	OK(storage_sim_materialize(e->jdir, &o, NULL));

	OK(storage_sim_start(e->jdir)); /* run 2: B gets identity 1 */
	OK(storage_open(b, ST_CREATE, &fb));
	OK(storage_write(fb, "BBBBBBBBBBBBBBBB", 16, 0));
	OK(storage_sync(fb));
	OK(storage_sync_dir(e->db));
	OK(storage_write(fa, "aaaa", 4, 0)); /* run 1's handle: untracked */
	OK(storage_open(a, 0, &fa2));         /* a new handle: tracked */
	OK(storage_write(fa2, "zz", 2, 6));
	storage_sim_stop();
	o.mode = ST_SIM_DROP_ALL;
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_int_equal(r.nops, 1); /* fa2's write only */
	assert_int_equal(r.ops[0].off, 6);
	assert_int_equal(r.ops[0].len, 2);
	assert_file(b, "BBBBBBBBBBBBBBBB", 16);
	assert_file(a, "aaaaAAAA", 8);
	storage_sim_report_free(&r);
	OK(storage_close(fa));
	OK(storage_close(fa2));
	OK(storage_close(fb));
	free(a);
	free(b);
}

/* A hand-made journal, laid out as storage/README.md "Journal format" says
 * (an independent check of the byte tables, too). */
struct jbuf {
	uint8_t b[4096];
	size_t len, at; /* at: start of the open record */
};

static void jb_int(struct jbuf *j, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		j->b[j->len++] = (uint8_t)(v >> (8 * i));
}

static void jb_str(struct jbuf *j, const char *s)
{
	jb_int(j, strlen(s), 2);
	memcpy(j->b + j->len, s, strlen(s));
	j->len += strlen(s);
}

static void jb_begin(struct jbuf *j)
{
	if (j->len == 0) {
		memcpy(j->b, "WDSIMJ02", 8);
		j->len = 8;
	}
	j->at = j->len;
	j->len += 32; /* header, filled by jb_end */
}

static void jb_end(struct jbuf *j, unsigned kind, uint64_t seq)
{
	size_t end = j->len;
	j->len = j->at;
	jb_int(j, end + 4 - j->at, 4);
	jb_int(j, kind, 2);
	jb_int(j, 0, 2);
	jb_int(j, seq, 8);
	jb_int(j, seq, 8); /* I/O count */
	jb_int(j, 0, 8);   /* time */
	j->len = end;
	jb_int(j, crc32(0L, j->b + j->at, (uInt)(end - j->at)), 4);
}

/* IDENT of identity id for path (canonical), as record seq. */
static void jb_ident(struct jbuf *j, uint64_t seq, uint64_t id, const char *path)
{
	jb_begin(j);
	jb_int(j, id, 8);
	jb_str(j, path);
	jb_end(j, 1, seq);
}

/* WRITE of 5 bytes at 0 over a 5-byte file: old "hello", new "HELLO". */
static void jb_write(struct jbuf *j, uint64_t seq, uint64_t id)
{
	jb_begin(j);
	jb_int(j, id, 8);
	jb_int(j, 0, 8); /* offset */
	jb_int(j, 5, 8); /* old length */
	jb_int(j, 5, 8); /* length */
	jb_int(j, 5, 8); /* old count */
	memcpy(j->b + j->len, "helloHELLO", 10);
	j->len += 10;
	jb_end(j, 3, seq);
}

/* Writes j as the journal of e and "HELLO" into e->file; returns the
 * file's canonical path. */
static char *jb_install(struct env *e, const struct jbuf *j)
{
	char *jp = tu_path(e->jdir, "journal"), *real = realpath(e->db, NULL);
	char *cp = tu_path(real, "f");
	FILE *fp = fopen(jp, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(j->b, 1, j->len, fp), j->len);
	fclose(fp);
	fp = fopen(e->file, "wb");
	assert_non_null(fp);
	fputs("HELLO", fp);
	fclose(fp);
	free(jp);
	free(real);
	return cp;
}

/* (1) A data record whose identity no IDENT or CREATE declared is refused
 * (WD_ECORRUPT naming it), not applied to whatever file has that number;
 * the same journal with the identity declared materialises. */
static void test_undeclared_identity(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL};
	struct jbuf j = {0};
	char *cp = jb_install(e, &j);

	jb_ident(&j, 1, 1, cp); /* well formed: WRITE of identity 1 */
	jb_write(&j, 2, 1);
	free(jb_install(e, &j));
	OK(storage_sim_materialize(e->jdir, &o, NULL));
	assert_file(e->file, "hello", 5); /* the write undone */

	j = (struct jbuf){0}; /* WRITE of identity 2, never declared */
	jb_ident(&j, 1, 1, cp);
	jb_write(&j, 2, 2);
	free(jb_install(e, &j));
	assert_int_equal(storage_sim_materialize(e->jdir, &o, NULL),
			 WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "identity 2"));
	assert_file(e->file, "HELLO", 5); /* untouched */

	j = (struct jbuf){0}; /* identity 1 declared twice */
	jb_ident(&j, 1, 1, cp);
	jb_ident(&j, 2, 1, cp);
	free(jb_install(e, &j));
	assert_int_equal(storage_sim_materialize(e->jdir, &o, NULL),
			 WD_ECORRUPT);
	free(cp);
}

/* (8) A whole record with a repeated number (two writers) is refused
 * loudly, not taken for a torn tail. */
static void test_sequence_clash(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL, .dry_run = true};
	struct jbuf j = {0};
	char *cp = jb_install(e, &j);

	jb_ident(&j, 1, 1, cp);
	jb_write(&j, 2, 1);
	jb_write(&j, 2, 1);
	free(jb_install(e, &j));
	assert_int_equal(storage_sim_materialize(e->jdir, &o, NULL),
			 WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "two processes"));
	j.len -= 4; /* the same, torn: a tail, as before */
	free(jb_install(e, &j));
	o.dry_run = false;
	OK(storage_sim_materialize(e->jdir, &o, NULL));
	assert_file(e->file, "hello", 5);
	free(cp);
}

/* Child of test_fork_untracked: tracking is off here; writes through the
 * parent's handle and a new file are not journaled. */
static void fork_child(void *arg)
{
	struct env *e = arg;
	char *g = tu_path(e->db, "g");
	st_file *f;

	if (storage_sim_active())
		_exit(3);
	CHILD_OK(storage_open(e->file, 0, &f));
	CHILD_OK(storage_write(f, "child", 5, 0));
	CHILD_OK(storage_close(f));
	CHILD_OK(storage_open(g, ST_CREATE, &f));
	CHILD_OK(storage_write(f, "g", 1, 0));
	_exit(0);
}

/* (8) A child forked while tracking is untracked; the parent goes on
 * tracking and its journal stays one clean sequence. */
static void test_fork_untracked(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL};
	st_sim_report r;
	st_file *f;

	OK(storage_sim_start(e->jdir));
	OK(storage_open(e->file, ST_CREATE, &f));
	OK(storage_write(f, "parent", 6, 0));
	OK(storage_sync(f));
	OK(storage_sync_dir(e->db));
	assert_int_equal(tu_run_child(fork_child, e), 0);
	assert_true(storage_sim_active());
	OK(storage_write(f, "P", 1, 0)); /* after the fork: tracked */
	OK(storage_close(f));
	storage_sim_stop();
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_false(r.tail_torn);
	assert_int_equal(r.records, 5); /* CREATE WRITE SYNC SYNCDIR WRITE */
	assert_int_equal(r.nops, 1);    /* the parent's last write */
	assert_file(e->file, "childt", 6); /* the child's write counts as done */
	storage_sim_report_free(&r);
}

/* ---- (11) limits and errors of the writer ----------------------------------- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

/* In a child: caps the address space at what it uses plus 512 MiB, so a
 * regression that builds a huge record fails with ENOMEM instead of using
 * gigabytes (not under sanitizers, which reserve large shadow maps). */
static void cap_memory(void)
{
#ifndef SANITIZED
	unsigned long pages = 0;
	FILE *fp = fopen("/proc/self/statm", "r");
	if (fp && fscanf(fp, "%lu", &pages) == 1) {
		rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) +
			     ((rlim_t)512 << 20);
		setrlimit(RLIMIT_AS, &(struct rlimit){cap, cap});
	}
	if (fp)
		fclose(fp);
#endif
}

#define BIG ((size_t)3 << 30) /* fits a record alone, not twice */

/* Child of test_write_too_big: a 3 GiB write over 3 GiB of file needs a
 * 6 GiB record: refused before anything is read or written. */
static void too_big_child(void *arg)
{
	struct env *e = arg;
	void *buf = mmap(NULL, BIG, PROT_READ,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	st_file *f;
	int rc;

	if (buf == MAP_FAILED)
		_exit(5);
	cap_memory();
	CHILD_OK(storage_sim_start(e->jdir));
	CHILD_OK(storage_open(e->file, ST_CREATE, &f));
	CHILD_OK(storage_truncate(f, BIG)); /* a hole: no disk space */
	CHILD_OK(storage_sync(f));
	CHILD_OK(storage_sync_dir(e->db));
	rc = storage_write(f, buf, BIG, 0);
	if (rc != WD_ETOOBIG || !strstr(wd_last_error(), e->file))
		_exit(6);
	CHILD_OK(storage_write(f, "x", 1, 0)); /* smaller ones go on */
	CHILD_OK(storage_sync(f));
	_exit(0);
}

/* (3) A write whose record (old + new bytes) would pass the u32 length
 * is refused with WD_ETOOBIG instead of wrapping the length. */
static void test_write_too_big(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL};
	st_sim_report r;
	struct stat st;

	assert_int_equal(tu_run_child(too_big_child, e), 0);
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_false(r.tail_torn);
	assert_int_equal(r.records, 6); /* CREATE TRUNCATE SYNC SYNCDIR WRITE SYNC */
	assert_int_equal(r.nops, 0);
	assert_int_equal(stat(e->file, &st), 0);
	assert_int_equal(st.st_size, BIG);
	assert_true(st.st_blocks < 1024); /* the big write never happened */
	storage_sim_report_free(&r);
}

/* Child of test_unresolvable_dir: as an unprivileged user, in db/p/a with
 * p not searchable, "b/f" opens (relative to a) but its directory has no
 * realpath. Exit 0: every tracked call failed with WD_EACCES. */
static void unresolvable_child(void *arg)
{
	struct env *e = arg;
	st_file *f;
	int fd;

	if (getuid() == 0 && setuid(65534) != 0)
		_exit(7); /* no unprivileged user to be */
	CHILD_OK(storage_sim_start(e->jdir));
	if (chdir(e->db) != 0 || mkdir("p", 0755) != 0 || mkdir("p/a", 0755) ||
	    mkdir("p/a/b", 0755) || chdir("p/a") != 0 ||
	    (fd = open("b/g", O_CREAT | O_WRONLY, 0644)) < 0 || close(fd) ||
	    chmod("..", 0) != 0)
		_exit(8);
	if (storage_open("b/f", ST_CREATE, &f) != WD_EACCES ||
	    !strstr(wd_last_error(), "b/f"))
		_exit(9);
	if (storage_rename("b/g", "b/h") != WD_EACCES ||
	    storage_unlink("b/g") != WD_EACCES)
		_exit(10);
	_exit(chmod("..", 0755) == 0 ? 0 : 11);
}

/* (6) A tracked call whose directory cannot be resolved fails with that
 * error instead of silently going untracked. */
static void test_unresolvable_dir(void **state)
{
	struct env *e = *state;
	int st;

	assert_int_equal(chmod(e->db, 0777), 0);
	assert_int_equal(chmod(e->jdir, 0777), 0);
	st = tu_run_child(unresolvable_child, e);
	if (st == 7)
		skip();
	assert_int_equal(st, 0);
}

/* Child of test_short_journal_header: a file size limit of 4 bytes makes
 * the journal's 8-byte magic a short write (with a stale errno). */
static void short_header_child(void *arg)
{
	struct env *e = arg;
	int rc;

	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &(struct rlimit){4, 4}) != 0)
		_exit(5);
	errno = EACCES;
	rc = storage_sim_start(e->jdir);
	_exit(rc == WD_ENOSPC && !storage_sim_active() ? 0 : 6);
}

/* (7) A short write of the journal header is WD_ENOSPC (not whatever errno
 * held), and leaves no journal behind. */
static void test_short_journal_header(void **state)
{
	struct env *e = *state;
	char *j = tu_path(e->jdir, "journal");

	assert_int_equal(tu_run_child(short_header_child, e), 0);
	assert_false(storage_exists(j));
	free(j);
}

/* (7) A short read of the bytes a truncate removes is WD_EIO, not a stale
 * errno: a sysfs file claims 4096 bytes and reads a few. */
static void test_short_old_read(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL};
	st_sim_report r;
	st_file *f;
	int rc;

	if (storage_open("/sys/devices/system/cpu/online", ST_RDONLY, &f))
		skip();
	OK(storage_close(f));
	OK(storage_sim_start(e->jdir));
	OK(storage_open("/sys/devices/system/cpu/online", ST_RDONLY, &f));
	errno = EACCES;
	rc = storage_truncate(f, 0);
	assert_int_equal(rc, WD_EIO);
	assert_non_null(strstr(wd_last_error(), "ended at byte"));
	OK(storage_close(f));
	storage_sim_stop();
	OK(storage_sim_materialize(e->jdir, &o, &r));
	assert_int_equal(r.nops, 0); /* no TRUNCATE was journaled */
	storage_sim_report_free(&r);
}

/* (5) A journal that cannot be read whole is WD_EIO naming it, not a torn
 * tail (which would silently drop its records): here, a directory. */
static void test_journal_read_error(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_DROP_ALL, .dry_run = true};
	char *j = tu_path(e->jdir, "journal");
	struct stat st;

	assert_int_equal(mkdir(j, 0755), 0);
	assert_int_equal(stat(j, &st), 0);
	if (st.st_size == 0) { /* nothing to read on this filesystem */
		rmdir(j);
		free(j);
		skip();
	}
	assert_int_equal(storage_sim_materialize(e->jdir, &o, NULL), WD_EIO);
	assert_non_null(strstr(wd_last_error(), j));
	assert_int_equal(rmdir(j), 0);
	free(j);
}

/* ---- (12) a lost write's size change ----------------------------------------- */

/* (4) Durable 'A' x 4096, then an unsynced write of 'B' x 1000 at 8192.
 * Under TORN the write can be lost (or torn) while its size change
 * survives: the file is 9192 bytes, zeros wherever no surviving sector of
 * the write landed - as XFS or ext4 can leave it. */
static void test_size_kept_zero_tail(void **state)
{
	struct env *e = *state;
	static uint8_t a[4096], b[1000];
	int dropped_long = 0, dropped_short = 0, torn_long = 0;

	memset(a, 'A', sizeof a);
	memset(b, 'B', sizeof b);
	for (uint64_t seed = 0; seed < 64; seed++) {
		st_sim_opts o = {.mode = seed < 48 ? ST_SIM_TORN : ST_SIM_RANDOM,
				 .seed = seed, .sector_bytes = 512};
		uint64_t want_len = sizeof a;
		st_sim_report r;
		const st_sim_op *op;
		uint8_t *got;
		size_t len;
		st_file *f;

		unlink(e->file);
		OK(storage_sim_start(e->jdir));
		OK(storage_open(e->file, ST_CREATE, &f));
		OK(storage_write(f, a, sizeof a, 0));
		OK(storage_sync(f));
		OK(storage_sync_dir(e->db));
		OK(storage_write(f, b, sizeof b, 8192));
		OK(storage_close(f));
		storage_sim_stop();
		OK(storage_sim_materialize(e->jdir, &o, &r));
		assert_int_equal(r.nops, 1);
		op = &r.ops[0];
		if (o.mode != ST_SIM_TORN || op->decision == ST_SIM_KEPT)
			assert_false(op->size_kept);
		for (uint32_t s = 0; s < op->nsectors; s++) {
			uint64_t end = (8192 / 512 + s + 1) * 512;
			if (mask_bit(op, s) && end > want_len)
				want_len = end < 9192 ? end : 9192;
		}
		if (op->size_kept)
			want_len = 9192;
		got = slurp(e->file, &len);
		assert_int_equal(len, want_len);
		for (size_t i = 0; i < len; i++) {
			uint8_t want = i < 4096 ? 'A' : 0;
			if (i >= 8192 && mask_bit(op, (uint32_t)(i / 512 - 16)))
				want = 'B';
			if (got[i] != want)
				fail_msg("seed %llu byte %zu: %u, want %u",
					 (unsigned long long)seed, i, got[i], want);
		}
		dropped_long += op->decision == ST_SIM_DROPPED && op->size_kept;
		dropped_short += op->decision == ST_SIM_DROPPED && !op->size_kept;
		torn_long += op->decision == ST_SIM_TORN_OP && op->size_kept;
		free(got);
		storage_sim_report_free(&r);
	}
	assert_true(dropped_long > 0 && dropped_short > 0 && torn_long > 0);
}

/* Misuse: starting twice, starting on an unmaterialised journal,
 * materialising while tracking, a bad sector size. */
static void test_states(void **state)
{
	struct env *e = *state;
	st_sim_opts o = {.mode = ST_SIM_KEEP_ALL, .sector_bytes = 1000};

	OK(storage_sim_start(e->jdir));
	assert_true(storage_sim_active());
	assert_int_equal(storage_sim_start(e->jdir), WD_ESTATE);
	o.sector_bytes = 512;
	assert_int_equal(storage_sim_materialize(e->jdir, &o, NULL), WD_ESTATE);
	storage_sim_stop();
	assert_false(storage_sim_active());
	assert_int_equal(storage_sim_start(e->jdir), WD_ESTATE);
	o.sector_bytes = 1000;
	assert_int_equal(storage_sim_materialize(e->jdir, &o, NULL), WD_EINVAL);
	o.sector_bytes = 4096;
	OK(storage_sim_materialize(e->jdir, &o, NULL));
	OK(storage_sim_start(e->jdir)); /* the journal was reset */
	storage_sim_stop();
	OK(storage_sim_materialize(e->jdir, &o, NULL));
}

/* ---- (20) prefixes of one journal ---------------------------------------- */

struct prefix_run {
	const char *dir, *jdir;
	uint64_t arm; /* 0: run to the end; else crash before I/O call arm */
};

/*
 * A fixed program over dir (single thread, so each call's records carry
 * its own I/O count): creates, overlapping and extending writes, syncs, a
 * directory sync, a truncate, a rename over a file, an unlink, a file in
 * a subdirectory. Ends (or dies at the armed call) without stopping.
 */
static void prefix_child(void *arg)
{
	const struct prefix_run *p = arg;
	char *a = tu_path(p->dir, "a"), *b = tu_path(p->dir, "b");
	char *c = tu_path(p->dir, "c"), *sub = tu_path(p->dir, "sub");
	char *x = tu_path(sub, "x");
	static uint8_t buf[9000];
	uint64_t rng = 42;
	st_file *fa, *fb, *fx;

	fill_rand(buf, sizeof buf, &rng);
	CHILD_OK(storage_sim_start(p->jdir));
	if (p->arm)
		storage_crash_arm_io(storage_io_count() + p->arm);
	CHILD_OK(storage_open(a, ST_CREATE, &fa));
	CHILD_OK(storage_open(b, ST_CREATE, &fb));
	CHILD_OK(storage_write(fa, buf, 5000, 0));
	CHILD_OK(storage_write(fb, buf + 100, 3000, 0));
	CHILD_OK(storage_sync(fa));
	CHILD_OK(storage_sync_dir(p->dir));
	CHILD_OK(storage_write(fa, buf + 7, 1500, 4000));
	CHILD_OK(storage_write(fb, buf + 9, 700, 2900));
	CHILD_OK(storage_sync(fb));
	CHILD_OK(storage_mkdir(sub));
	CHILD_OK(storage_open(x, ST_CREATE, &fx));
	CHILD_OK(storage_write(fx, buf + 300, 2000, 0));
	CHILD_OK(storage_truncate(fa, 3000));
	CHILD_OK(storage_write(fa, buf + 11, 800, 2600));
	CHILD_OK(storage_rename(b, a)); /* a's old file goes to the stash */
	CHILD_OK(storage_open(c, ST_CREATE, &fx));
	CHILD_OK(storage_write(fx, buf + 50, 4096, 0));
	CHILD_OK(storage_sync(fx));
	CHILD_OK(storage_sync_dir(p->dir));
	CHILD_OK(storage_unlink(c));
	CHILD_OK(storage_write(fb, buf + 13, 600, 3300));
	_exit(0);
}

/* The regular files below dir, as "relative-path\0bytes" entries joined
 * and sorted by name (a simple, comparable digest of a tree). */
static void tree_files(const char *dir, const char *rel, char ***names, size_t *n)
{
	char *path = rel[0] ? tu_path(dir, rel) : strdup(dir);
	DIR *d = opendir(path);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char *r, *full;
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		if (asprintf(&r, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) < 0)
			abort();
		full = tu_path(dir, r);
		assert_int_equal(lstat(full, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			tree_files(dir, r, names, n);
			free(r);
		} else {
			*names = realloc(*names, (*n + 1) * sizeof **names);
			(*names)[(*n)++] = r;
		}
		free(full);
	}
	closedir(d);
	free(path);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The two trees hold the same regular files with the same bytes. */
static void assert_same_tree(const char *want, const char *got, const char *what)
{
	char **wn = NULL, **gn = NULL;
	size_t nw = 0, ng = 0;
	tree_files(want, "", &wn, &nw);
	tree_files(got, "", &gn, &ng);
	if (nw > 1) /* an empty tree has no array at all */
		qsort(wn, nw, sizeof *wn, str_cmp);
	if (ng > 1)
		qsort(gn, ng, sizeof *gn, str_cmp);
	if (nw != ng)
		fail_msg("%s: %zu files, the prefix gave %zu", what, nw, ng);
	for (size_t i = 0; i < nw; i++) {
		char *wp = tu_path(want, wn[i]), *gp = tu_path(got, gn[i]);
		size_t wl, gl;
		uint8_t *wb, *gb;
		if (strcmp(wn[i], gn[i]) != 0)
			fail_msg("%s: file %s, the prefix gave %s", what, wn[i], gn[i]);
		wb = slurp(wp, &wl);
		gb = slurp(gp, &gl);
		if (wl != gl || memcmp(wb, gb, wl) != 0)
			fail_msg("%s: %s differs (%zu and %zu bytes)", what, wn[i], wl, gl);
		free(wb);
		free(gb);
		free(wp);
		free(gp);
		free(wn[i]);
		free(gn[i]);
	}
	free(wn);
	free(gn);
}

/*
 * (20) One run's journal gives, for every k, exactly the crash state of a
 * run killed before its I/O call k, under every mode and seed: the killed
 * run is materialised in place, the prefix of the whole run's journal
 * into another directory, and the trees are compared byte for byte. The
 * whole run's files and journal are not touched (the last round reads
 * them again), and a record with a falling I/O count is refused.
 */
static void test_prefix_equals_killed_run(void **state)
{
	struct env *e = *state;
	char *full = tu_path(e->db, "full"), *jfull = tu_path(e->jdir, "full");
	char *kdir = tu_path(e->db, "killed"), *kj = tu_path(e->jdir, "killed");
	char *out = tu_path(e->db, "out");
	struct prefix_run pr = {.dir = full, .jdir = jfull};
	st_sim_journal *h;
	uint64_t io0 = storage_io_count(), n;
	int rounds = 0;

	setenv("WALDEN_CRASH_QUIET", "1", 1);
	assert_int_equal(mkdir(full, 0755), 0);
	assert_int_equal(mkdir(jfull, 0755), 0);
	assert_int_equal(tu_run_child(prefix_child, &pr), 0);
	OK(storage_sim_journal_open(jfull, &h));
	n = storage_sim_journal_last_io(h) - io0;
	assert_true(n >= 20);
	assert_true(storage_sim_journal_time(h, io0 + 2) > 0);
	assert_true(storage_sim_journal_time(h, io0 + 2) <=
		    storage_sim_journal_time(h, io0 + n + 1));
	for (uint64_t k = 1; k <= n + 1; k++) {
		for (int m = 0; m < 4; m++) {
			static const st_sim_mode modes[4] = {ST_SIM_KEEP_ALL, ST_SIM_DROP_ALL,
							     ST_SIM_RANDOM, ST_SIM_TORN};
			st_sim_opts o = {.mode = modes[m], .seed = k * 7 + (uint64_t)m};
			struct prefix_run kr = {.dir = kdir, .jdir = kj, .arm = k};
			st_sim_report r1, r2;
			char what[96];
			tu_rmrf(kdir);
			tu_rmrf(kj);
			tu_rmrf(out);
			assert_int_equal(mkdir(kdir, 0755), 0);
			assert_int_equal(mkdir(kj, 0755), 0);
			assert_int_equal(mkdir(out, 0755), 0);
			assert_int_equal(tu_run_child(prefix_child, &kr),
					 k <= n ? ST_CRASH_EXIT_CODE : 0);
			OK(storage_sim_materialize(kj, &o, &r1));
			OK(storage_sim_materialize_prefix(h, io0 + k, &o, full, out, &r2));
			snprintf(what, sizeof what, "crash before call %llu, %s",
				 (unsigned long long)k, m == 0 ? "keep-all" : m == 1 ? "drop-all"
						   : m == 2 ? "random" : "torn");
			assert_int_equal(r1.data_pending, r2.data_pending);
			assert_int_equal(r1.dir_pending, r2.dir_pending);
			assert_int_equal(r1.data_torn, r2.data_torn);
			assert_same_tree(kdir, out, what);
			storage_sim_report_free(&r1);
			storage_sim_report_free(&r2);
			rounds++;
		}
	}
	assert_int_equal(rounds, 4 * (int)(n + 1));
	storage_sim_journal_close(h);

	/* a falling I/O count is refused (S12) */
	{
		char *jp = tu_path(jfull, "journal");
		size_t len;
		uint8_t *b = simtest_slurp(jp, 1 << 24, &len);
		FILE *f;
		uint32_t l1 = (uint32_t)(b[8] | b[9] << 8 | b[10] << 16 | (uint32_t)b[11] << 24);
		size_t second = 8 + l1;
		assert_true(len > second + 32);
		memset(b + second + 16, 0, 8); /* its I/O count: 0 */
		{
			uint32_t l2 = (uint32_t)(b[second] | b[second + 1] << 8 |
						 b[second + 2] << 16 | (uint32_t)b[second + 3] << 24);
			uint32_t crc = (uint32_t)crc32(0L, b + second, l2 - 4);
			for (int i = 0; i < 4; i++)
				b[second + l2 - 4 + i] = (uint8_t)(crc >> (8 * i));
		}
		f = fopen(jp, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(b, 1, len, f), len);
		fclose(f);
		assert_int_equal(storage_sim_journal_open(jfull, &h), WD_ECORRUPT);
		assert_non_null(strstr(wd_last_error(), "I/O count"));
		free(b);
		free(jp);
	}
	free(full);
	free(jfull);
	free(kdir);
	free(kj);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_seed_determinism, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_many_seeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_synced_survives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_all_drop_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_sync_loses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsynced_create_vanishes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_unlink_revert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlink_after_dropped_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_512, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_4096, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tear_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_journal_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_old_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undeclared_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequence_clash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_untracked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unresolvable_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_journal_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_old_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_read_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_kept_zero_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_equals_killed_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
