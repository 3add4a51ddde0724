/*
 * test_sim.c - simulated power loss (storage/sim.c, storage/sim_crash.c):
 * the crash states the materialiser builds are exactly those its plan
 * describes, synced data always survives, unsynced directory entries can
 * vanish or revert, and it all works after the writer was killed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/sim.h"
#include "storage/storage.h"
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

struct env {
	char *db;   /* the "database" directory */
	char *jdir; /* the journal directory */
	char *file; /* db/f */
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	e->db = tu_tmpdir("sim-db");
	e->jdir = tu_tmpdir("sim-j");
	e->file = tu_path(e->db, "f");
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	storage_sim_stop();
	tu_rmrf(e->db);
	tu_rmrf(e->jdir);
	free(e->db);
	free(e->jdir);
	free(e->file);
	free(e);
	return 0;
}

/* The bytes of path (malloc'd) and their count; NULL if absent. */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *b = malloc(CAP * 4);
	*len = 0;
	if (!fp) {
		free(b);
		return NULL;
	}
	*len = fread(b, 1, CAP * 4, fp);
	fclose(fp);
	return b;
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
		*w = (struct wop){.kind = ST_SIM_WRITE, .off = off, .len = len};
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
 * whose mask bit is set; the length grows to the end of the last one).
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
		       uint32_t sector)
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
	check_plan(m, r, sector);
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
	uint64_t torn = 0, kept = 0, dropped = 0;

	for (uint64_t seed = 0; seed < 160; seed++) {
		st_sim_report r;
		st_sim_mode mode = seed % 4 == 0 ? ST_SIM_RANDOM : ST_SIM_TORN;
		model_round(e, seed, mode, (seed / 2) % 2 ? 4096 : 512, &r);
		torn += r.data_torn;
		kept += r.data_kept;
		dropped += r.data_dropped;
		storage_sim_report_free(&r);
	}
	/* the seeds exercised every fate */
	assert_true(torn > 20 && kept > 20 && dropped > 20);
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

struct writer {
	st_file *f;
	int id;
};

/* Thread body: 64 writes of 512 bytes into its own quarter of the file,
 * some of them synced. */
static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[512];
	for (int i = 0; i < 64; i++) {
		memset(buf, 'a' + w->id * 4 + i % 4, sizeof buf);
		if (storage_write(w->f, buf, sizeof buf,
				  (uint64_t)(w->id * 64 + i) * 512) != 0 ||
		    (i % 16 == 15 && storage_sync(w->f) != 0))
			return "fail";
	}
	return NULL;
}

/* Four threads write one tracked file at once: KEEP_ALL gives the bytes
 * they left, DROP_ALL keeps at least every synced write. */
static void test_threads(void **state)
{
	struct env *e = *state;
	for (int mode = ST_SIM_KEEP_ALL; mode <= ST_SIM_DROP_ALL; mode++) {
		st_sim_opts o = {.mode = (st_sim_mode)mode};
		struct writer w[4];
		pthread_t t[4];
		uint8_t *before, *after;
		size_t blen, alen;
		void *res;
		st_file *f;

		unlink(e->file);
		OK(storage_sim_start(e->jdir));
		OK(storage_open(e->file, ST_CREATE, &f));
		for (int i = 0; i < 4; i++) {
			w[i] = (struct writer){.f = f, .id = i};
			assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			assert_int_equal(pthread_join(t[i], &res), 0);
			assert_null(res);
		}
		OK(storage_sync_dir(e->db));
		OK(storage_close(f));
		storage_sim_stop();
		before = slurp(e->file, &blen);
		assert_int_equal(blen, 4 * 64 * 512);
		OK(storage_sim_materialize(e->jdir, &o, NULL));
		after = slurp(e->file, &alen);
		if (mode == ST_SIM_KEEP_ALL) {
			assert_int_equal(alen, blen);
			assert_memory_equal(after, before, blen);
		}
		for (int id = 0; id < 4; id++) /* writes 0..15 were synced */
			for (size_t i = 0; i < 16; i++)
				assert_memory_equal(after + (id * 64 + i) * 512,
						    before + (id * 64 + i) * 512, 512);
		free(before);
		free(after);
	}
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_seed_determinism, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_many_seeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_synced_survives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_all_drop_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsynced_create_vanishes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_unlink_revert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlink_after_dropped_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_512, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_4096, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_journal_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
