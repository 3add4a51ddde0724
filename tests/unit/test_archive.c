/*
 * test_archive.c - WAL archiving (wal/README.md P7, I12) and recovery over
 * recycled segments full of stale records, with 64 KiB segments and an
 * LMDB oracle of the committed state (tests/lib/oracletest.h):
 *  - after a workload with checkpoints and a clean close the archive holds
 *    segments 0..k-1 (k: the segment of the log's end), each identical to
 *    the live one where both exist, and archive plus live WAL read from the
 *    first LSN give every record in sequence to the end, with every value
 *    the oracle holds; `walden waldump --wal-dir` reads the archive;
 *  - a child killed at each archive crash point, or losing power (TORN,
 *    RANDOM, DROP_ALL seeds): no half-written file under a final name, no
 *    segment missing from archive + live WAL after recovery, the table
 *    equals the oracle;
 *  - injected ENOSPC / EIO on the archive's writes, fdatasync, rename and
 *    directory fsync: the segment is kept, wd_checkpoint reports it (and
 *    the trace says so), the database stays usable, and once the fault is
 *    gone the next checkpoint archives and retires it;
 *  - a different file under a segment's name in the archive: WD_EEXIST
 *    naming both, nothing from there on archived or retired until it is
 *    removed; an identical one counts as archived (WAL level, driven by
 *    hand); the archiver thread archives without any checkpoint;
 *  - an unusable archive_dir fails wd_open before anything is created;
 *  - with wal_recycle, a child killed when the log ends mid-segment in a
 *    recycled segment, exactly at a segment boundary before a recycled
 *    one, and right after a switch into one: the next open's recovery ends
 *    exactly at the last durable record's end (no stale record taken), the
 *    table equals the oracle, and the work goes on over new stale segments,
 *    crash after crash.
 */
#define _GNU_SOURCE
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/archtest.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/simtest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "txn/db.h"
#include "wal/format.h"
#include "wal/reader.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define SEG WAL_SEG_SIZE_MIN /* 64 KiB: many segments */
#define NKEYS 500u
#define MAX_OPS 4u
#define MAX_VAL 640u
#define TABLE "t"
#define CKPT_EVERY 40u       /* a child's checkpoints, in transactions */

/* In a forked child: expr must succeed, else the child exits with 3. */
#define CK(expr) dt_child_ok((expr), #expr)

static void arch_opts(wd_options *o, const char *archive)
{
	dt_opts(o, 1);
	o->wal_segment_size = SEG;
	o->wal_buffers_bytes = 1u << 20;
	o->archive_dir = archive;
}

/* ---- the workload: transaction n, the same in a child and in the oracle -- */

struct op {
	unsigned key;
	bool del;
	uint32_t vlen;
};

static unsigned txn_ops(uint64_t n, struct op *ops)
{
	uint64_t s = n * 0x9E3779B97F4A7C15ull + 17;
	unsigned nops = 1 + (unsigned)(tu_rand(&s) % MAX_OPS);
	for (unsigned i = 0; i < nops; i++) {
		ops[i].key = (unsigned)(tu_rand(&s) % NKEYS);
		ops[i].del = tu_rand(&s) % 6 == 0;
		ops[i].vlen = 24 + (uint32_t)(tu_rand(&s) % (MAX_VAL - 24));
	}
	return nops;
}

static size_t key_of(unsigned key, char *k)
{
	return (size_t)snprintf(k, 16, "k%05u", key);
}

/* The tag of (n, key) - what the WAL check looks for - then bytes of
 * (n, key). */
static void value_of(uint64_t n, unsigned key, uint8_t *v, uint32_t vlen)
{
	uint64_t s = n * 31 + key;
	at_tag(v, n, key);
	for (uint32_t i = AT_TAG_LEN; i < vlen; i++)
		v[i] = (uint8_t)tu_rand(&s);
}

/* Runs transaction n on db and commits it. */
static int run_txn(wd_db *db, uint64_t n)
{
	struct op ops[MAX_OPS];
	uint8_t v[MAX_VAL];
	char k[16];
	unsigned nops = txn_ops(n, ops);
	wd_table *t;
	wd_txn *x;
	int rc = wd_begin(db, &x);
	if (rc != 0)
		return rc;
	rc = wd_table_open(x, TABLE, WD_CREATE, &t);
	for (unsigned i = 0; rc == 0 && i < nops; i++) {
		size_t kl = key_of(ops[i].key, k);
		if (ops[i].del) {
			if ((rc = wd_del(x, t, k, kl)) == WD_NOTFOUND)
				rc = 0;
			continue;
		}
		value_of(n, ops[i].key, v, ops[i].vlen);
		rc = wd_put(x, t, k, kl, v, ops[i].vlen);
	}
	if (rc != 0) {
		(void)wd_abort(x);
		return rc;
	}
	return wd_commit(x);
}

static void oracle_txn(ot_state *o, uint64_t n)
{
	struct op ops[MAX_OPS];
	uint8_t v[MAX_VAL];
	char k[16];
	unsigned nops = txn_ops(n, ops);
	for (unsigned i = 0; i < nops; i++) {
		size_t kl = key_of(ops[i].key, k);
		if (ops[i].del) {
			ot_state_del(o, k, kl);
			continue;
		}
		value_of(n, ops[i].key, v, ops[i].vlen);
		ot_state_put(o, k, kl, v, ops[i].vlen);
	}
}

/* The oracle catches up with transactions (*applied, upto]. */
static void oracle_upto(ot_state *o, uint64_t *applied, uint64_t upto)
{
	while (*applied < upto)
		oracle_txn(o, ++*applied);
}

/* The table equals the oracle after transactions 1..acked, or 1..acked+1
 * (the one in flight when the child died); *applied follows. */
static void expect_oracle(ot_state *o, wd_db *db, uint64_t *applied, uint64_t acked)
{
	char *without, *with;
	oracle_upto(o, applied, acked);
	if (!(without = ot_state_diff(o, db, TABLE)))
		return;
	ot_batch_begin(o);
	oracle_txn(o, acked + 1);
	if (!(with = ot_state_diff(o, db, TABLE))) {
		ot_batch_commit(o);
		++*applied;
		free(without);
		return;
	}
	ot_batch_abort(o);
	fail_msg("after %llu acknowledged commits: %s; with the one in flight: %s",
		 (unsigned long long)acked, without, with);
}

/* ---- files ---------------------------------------------------------------- */

/* The file at path (malloc'd), its length in *len - at most one byte more
 * than a segment, enough to tell a segment's size; NULL if absent. */
static uint8_t *slurp(const char *path, size_t *len)
{
	return simtest_slurp(path, SEG + 1, len);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* The oldest segment in DBDIR/wal. */
static uint64_t oldest_live(const char *dbdir)
{
	uint64_t s;
	OK(wal_oldest_segment(dbdir, &s));
	return s;
}

static bool exists_seg(const char *dir, uint64_t segno)
{
	char *p = at_seg_file(dir, segno);
	bool r = storage_exists(p);
	free(p);
	return r;
}

/*
 * Before a crashed database is opened again: every file of the archive
 * under a segment's name is a whole segment of this database naming that
 * segment, identical to DBDIR/wal's file of that name if there is one -
 * never a half-written copy. (Temporary ".tmp" files may be left.)
 */
static void check_archive_files(const char *dbdir, const char *arch)
{
	char *wal_dir = tu_path(dbdir, WAL_DIR);
	control_data cd;
	uint64_t *segs;
	unsigned tmps, others;
	size_t n = at_list_dir(arch, &segs, &tmps, &others);
	OK(control_read(dbdir, &cd));
	assert_int_equal(others, 0);
	for (size_t i = 0; i < n; i++) {
		char *a = at_seg_file(arch, segs[i]), *l = at_seg_file(wal_dir, segs[i]);
		size_t alen = 0, llen = 0;
		uint8_t *ab = slurp(a, &alen), *lb = slurp(l, &llen);
		wal_seg_header h;
		assert_non_null(ab);
		if (alen != SEG)
			fail_msg("%s: %zu bytes under a segment's name", a, alen);
		OK(wal_seg_header_decode(ab, a, &h));
		assert_int_equal(h.segno, segs[i]);
		assert_memory_equal(h.db_id, cd.db_id, sizeof h.db_id);
		if (lb && (llen != alen || memcmp(ab, lb, alen) != 0))
			fail_msg("%s differs from the live %s", a, l);
		free(ab);
		free(lb);
		free(a);
		free(l);
	}
	free(segs);
	free(wal_dir);
}

/* ot_state_foreach: the value's tag was seen in the log. */
static void tag_seen(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
	if (!at_tag_logged(arg, v, vlen))
		fail_msg("key %.*s: its value (%.*s) is in no WAL record", (int)klen,
			 (const char *)k, (int)AT_TAG_LEN, (const char *)v);
}

/* Every value the oracle holds was read in the log. */
static void expect_values_logged(ot_state *o, at_seen *s)
{
	ot_state_foreach(o, tag_seen, s);
	at_seen_free(s);
}

/* ---- a test's directories ------------------------------------------------- */

struct aenv {
	char *root, *db, *arch, *jdir, *odir;
	ot_state *o;
	uint64_t applied;           /* transactions the oracle holds */
	volatile uint64_t *acked;   /* shared with children */
};

static void env_init(struct aenv *e, const char *tag)
{
	memset(e, 0, sizeof *e);
	e->root = tu_tmpdir(tag);
	e->db = tu_path(e->root, "db");
	e->arch = tu_path(e->root, "archive");
	e->jdir = tu_path(e->root, "journal");
	e->odir = tu_path(e->root, "oracle");
	assert_int_equal(mkdir(e->arch, 0755), 0);
	assert_int_equal(mkdir(e->jdir, 0755), 0);
	e->o = ot_state_open(e->odir);
	e->acked = tw_shared(sizeof *e->acked);
}

static void env_free(struct aenv *e)
{
	ot_state_close(e->o);
	tw_shared_free((void *)e->acked, sizeof *e->acked);
	tu_rmrf(e->root);
	free(e->root);
	free(e->db);
	free(e->arch);
	free(e->jdir);
	free(e->odir);
}

/* Runs transactions (applied, applied + n] on db, the oracle following. */
static void run_txns(struct aenv *e, wd_db *db, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		OK(run_txn(db, e->applied + 1));
		oracle_txn(e->o, ++e->applied);
	}
}

/* Closes db, checks the archive, and that every value the oracle holds is
 * in the log read back. */
static void close_and_check(struct aenv *e, wd_db *db, at_seen *s)
{
	wd_options o;
	arch_opts(&o, e->arch);
	OK(wd_close(db));
	at_check_archive(e->root, e->db, e->arch, &o, s);
	expect_values_logged(e->o, s);
}

static void wal_counters_of(wd_db *db, wal_counters *c)
{
	wal_stats(db_wal(db), c);
}

/* ---- the archive holds every segment, in order ------------------------------ */

static void test_archive_holds_every_segment(void **state)
{
	static char out[1 << 16], err[4096];
	struct aenv e;
	at_seen s;
	wd_options o;
	wd_db *db;
	wal_counters c;
	unsigned checkpoints = 0;
	(void)state;
	env_init(&e, "walarch-all");
	arch_opts(&o, e.arch);
	OK(wd_open(e.db, &o, &db));
	for (unsigned round = 0; round < 6; round++) {
		run_txns(&e, db, 100);
		OK(wd_checkpoint(db));
		checkpoints++;
	}
	wal_counters_of(db, &c);
	assert_true(c.segs_archived > 10);
	assert_int_equal(c.archive_failures, 0);
	assert_true(oldest_live(e.db) > 0); /* segments were retired */
	assert_null(ot_state_diff(e.o, db, TABLE));
	close_and_check(&e, db, &s);
	/* every checkpoint record, the shutdown one too: nothing lost */
	assert_int_equal(s.checkpoints, checkpoints + 1);
	print_message("%llu records in archive + live WAL, %llu segments archived\n",
		      (unsigned long long)s.records, (unsigned long long)c.segs_archived);
	/* waldump reads the archive with the database's control file */
	assert_int_equal(tu_run_tool((const char *[]){"waldump", e.db, "--wal-dir", e.arch,
						      "--stats", NULL},
				     out, sizeof out, err, sizeof err), 0);
	if (!strstr(out, "XLOG/XLOG_CHECKPOINT") || !strstr(out, "HEAP/HEAP_INSERT") ||
	    !strstr(out, "end of WAL at "))
		fail_msg("waldump --wal-dir: %s%s", out, err);
	env_free(&e);
}

/* ---- crashes ----------------------------------------------------------------- */

struct crash_child {
	const char *db, *arch, *jdir; /* jdir: power-loss journal, or NULL */
	const char *point;            /* a crash point at its nth hit, or */
	uint64_t nth, io;             /* ... the io-th I/O call after the open */
	uint64_t first;               /* first transaction number */
	volatile uint64_t *acked;
};

/* Transactions from c->first on, a checkpoint every CKPT_EVERY, until the
 * armed crash ends the process. */
static void crash_child(void *arg)
{
	struct crash_child *c = arg;
	wd_options o;
	wd_db *db;
	arch_opts(&o, c->arch);
	if (c->jdir)
		CK(storage_sim_start(c->jdir));
	CK(wd_open(c->db, &o, &db));
	if (c->point)
		storage_crash_arm(c->point, c->nth);
	else
		storage_crash_arm_io(storage_io_count() + c->io);
	for (uint64_t n = c->first; n < c->first + 100000; n++) {
		CK(run_txn(db, n));
		*c->acked = n;
		if (n % CKPT_EVERY == 0)
			CK(wd_checkpoint(db));
	}
	_exit(4); /* never crashed */
}

struct round {
	const char *point;
	uint64_t nth, io;
	int mode; /* st_sim_mode of the power loss, or -1: none */
	uint64_t seed;
};

/*
 * One crash: a child continues the workload until the round's crash, a
 * power loss is materialised if asked; then no half-written file is in
 * the archive, the database recovers to the oracle's state, a checkpoint
 * archives and retires what is left, and after a clean close the archive
 * and the live WAL hold the whole log with every value.
 */
static void crash_round(struct aenv *e, const struct round *rd)
{
	struct crash_child c = {e->db, e->arch, rd->mode >= 0 ? e->jdir : NULL, rd->point,
				rd->nth, rd->io, e->applied + 1, e->acked};
	at_seen s;
	wd_options o;
	wal_counters wc;
	wd_db *db;
	int status;
	*e->acked = e->applied;
	status = tu_run_child(crash_child, &c);
	if (status != ST_CRASH_EXIT_CODE)
		fail_msg("%s %llu / io %llu: child exit %d", rd->point ? rd->point : "io",
			 (unsigned long long)rd->nth, (unsigned long long)rd->io, status);
	if (rd->mode >= 0) {
		st_sim_opts so = {.mode = (st_sim_mode)rd->mode, .seed = rd->seed};
		st_sim_report rep;
		OK(storage_sim_materialize(e->jdir, &so, &rep));
		storage_sim_report_free(&rep);
	}
	check_archive_files(e->db, e->arch);
	arch_opts(&o, e->arch);
	OK(wd_open(e->db, &o, &db));
	expect_oracle(e->o, db, &e->applied, *e->acked);
	dt_check_all(db);
	OK(wd_checkpoint(db));
	wal_counters_of(db, &wc);
	/* killed after its rename: the copy is found, identical, next time */
	if (rd->mode < 0 && rd->point && strcmp(rd->point, "wal-archive-before-rename") != 0 &&
	    strcmp(rd->point, "wal-archive-before-sync") != 0)
		assert_true(wc.segs_archive_found >= 1);
	close_and_check(e, db, &s);
}

static const char *const arch_points[] = {
	"wal-archive-before-sync", "wal-archive-before-rename", "wal-archive-before-dir-sync",
	"wal-archive-after-dir-sync",
};
#define NPOINTS (sizeof arch_points / sizeof arch_points[0])

static void test_archive_crash_points(void **state)
{
	struct aenv e;
	(void)state;
	env_init(&e, "walarch-kill");
	for (unsigned i = 0; i < 2 * NPOINTS; i++) {
		struct round rd = {arch_points[i % NPOINTS], i < NPOINTS ? 1 : 3, 0, -1, 0};
		crash_round(&e, &rd);
	}
	print_message("%u crashes, %llu transactions committed\n", (unsigned)(2 * NPOINTS),
		      (unsigned long long)e.applied);
	env_free(&e);
}

static void test_archive_power_loss(void **state)
{
	static const st_sim_mode modes[] = {ST_SIM_TORN, ST_SIM_RANDOM, ST_SIM_DROP_ALL};
	unsigned rounds = dt_scale() < 1 ? 6 : 12;
	uint64_t s = 4242;
	struct aenv e;
	(void)state;
	env_init(&e, "walarch-power");
	for (unsigned i = 0; i < rounds; i++) {
		struct round rd = {NULL, 0, 0, (int)modes[i % 3], 1000 + i};
		if (i % 2 == 0) {
			rd.point = arch_points[tu_rand(&s) % NPOINTS];
			rd.nth = 1 + tu_rand(&s) % 4;
		} else {
			rd.io = 500 + tu_rand(&s) % 5000;
		}
		crash_round(&e, &rd);
	}
	print_message("%u power losses, %llu transactions committed\n", rounds,
		      (unsigned long long)e.applied);
	env_free(&e);
}

/* ---- a failing archive copy -------------------------------------------------- */

static unsigned not_archived_lines;

static void count_trace(void *arg, const char *module, const char *line)
{
	(void)arg;
	if (strcmp(module, "wal") == 0 && strstr(line, "not archived"))
		not_archived_lines++;
}

static void test_archive_copy_errors(void **state)
{
	static const struct {
		st_op op;
		st_fault_kind kind;
		int want;
	} faults[] = {
		{ST_OP_WRITE, ST_FAULT_ENOSPC, WD_ENOSPC},
		{ST_OP_SYNC, ST_FAULT_EIO, WD_EIO},
		{ST_OP_RENAME, ST_FAULT_EIO, WD_EIO},
		{ST_OP_SYNC_DIR, ST_FAULT_EIO, WD_EIO},
	};
	struct aenv e;
	at_seen s;
	wd_options o;
	wd_db *db;
	(void)state;
	env_init(&e, "walarch-fault");
	arch_opts(&o, e.arch);
	OK(wd_open(e.db, &o, &db));
	run_txns(&e, db, 100);
	OK(wd_checkpoint(db));
	for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
		uint64_t kept = oldest_live(e.db);
		wal_counters before, after;
		int rc;
		wal_counters_of(db, &before);
		OK(storage_fault_add(faults[i].op, faults[i].kind, 1, 0, e.arch));
		run_txns(&e, db, 150); /* segments complete meanwhile */
		not_archived_lines = 0;
		wd_trace_set_callback(count_trace, NULL);
		OK(wd_trace_enable("wal"));
		rc = wd_checkpoint(db);
		OK(wd_trace_enable(""));
		wd_trace_set_callback(NULL, NULL);
		EXPECT(rc, faults[i].want);
		if (!strstr(wd_last_error(), "not archived") || !strstr(wd_last_error(), e.arch))
			fail_msg("the error does not name the segment and archive: %s",
				 wd_last_error());
		assert_true(not_archived_lines > 0);
		/* the segment is kept, not in the archive, the database usable */
		assert_int_equal(oldest_live(e.db), kept);
		assert_false(exists_seg(e.arch, kept));
		wal_counters_of(db, &after);
		assert_true(after.archive_failures > before.archive_failures);
		assert_int_equal(after.segs_archived, before.segs_archived);
		run_txns(&e, db, 5);
		/* the fault gone, the next checkpoint archives and retires it */
		storage_fault_clear();
		OK(wd_checkpoint(db));
		assert_true(exists_seg(e.arch, kept));
		assert_true(oldest_live(e.db) > kept);
	}
	assert_null(ot_state_diff(e.o, db, TABLE));
	close_and_check(&e, db, &s);
	env_free(&e);
}

/* ---- a different file under a segment's name ----------------------------- */

static void test_archive_foreign_file(void **state)
{
	static const char junk[] = "not a WAL segment of this database\n";
	char real[4096], *planted, *live, *wal_dir, want[8192];
	const db_recovery_report *r;
	struct aenv e;
	at_seen s;
	wd_options o;
	wd_db *db;
	wal_counters c;
	uint64_t f, *segs;
	unsigned tmps, others;
	size_t n, len;
	uint8_t *back;
	(void)state;
	env_init(&e, "walarch-foreign");
	assert_non_null(realpath(e.arch, real));
	arch_opts(&o, e.arch);
	OK(wd_open(e.db, &o, &db));
	/* a segment the log has not reached yet */
	f = wal_insert_pos(db_wal(db)) / SEG + 2;
	planted = at_seg_file(e.arch, f);
	wal_dir = tu_path(e.db, WAL_DIR);
	live = at_seg_file(wal_dir, f);
	write_file(planted, junk, sizeof junk - 1);
	run_txns(&e, db, 300);
	EXPECT(wd_checkpoint(db), WD_EEXIST);
	snprintf(want, sizeof want, "%s/%016llX already exists and differs from %s", real,
		 (unsigned long long)f, live);
	if (!strstr(wd_last_error(), want))
		fail_msg("the error does not name both files: %s", wd_last_error());
	/* kept: that segment and every later one; the planted file untouched */
	assert_int_equal(oldest_live(e.db), f);
	n = at_list_dir(e.arch, &segs, &tmps, &others);
	assert_int_equal(n, f + 1);
	assert_int_equal(segs[n - 1], f);
	free(segs);
	back = slurp(planted, &len);
	assert_int_equal(len, sizeof junk - 1);
	assert_memory_equal(back, junk, len);
	free(back);
	wal_counters_of(db, &c);
	assert_true(c.archive_failures >= 1);
	/* the shutdown checkpoint fails the same way: wd_close says so and
	 * leaves the control file in production; the next open replays from
	 * that checkpoint and archiving resumes at the kept segment */
	EXPECT(wd_close(db), WD_EEXIST);
	OK(wd_open(e.db, &o, &db));
	OK(db_recovery_report_get(db, &r));
	assert_int_equal(oldest_live(e.db), f);
	assert_null(ot_state_diff(e.o, db, TABLE));
	EXPECT(wd_checkpoint(db), WD_EEXIST);
	/* put right: the next checkpoint archives it and the rest */
	assert_int_equal(unlink(planted), 0);
	OK(wd_checkpoint(db));
	assert_true(oldest_live(e.db) > f);
	assert_true(exists_seg(e.arch, f + 1));
	assert_null(ot_state_diff(e.o, db, TABLE));
	close_and_check(&e, db, &s);
	free(planted);
	free(live);
	free(wal_dir);
	env_free(&e);
}

/* ---- WAL level: found, conflict, the archiver thread ---------------------- */

/* Inserts no-op records until the insert position passes upto; returns
 * the last LSN. */
static wd_lsn fill_to(wal *w, wd_lsn upto, uint64_t *seq)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	wd_lsn lsn = 0;
	while (wal_insert_pos(w) < upto) {
		tw_record(&b, 1, (*seq)++, 600, &rec, &len);
		OK(wal_insert(w, rec, len, &lsn));
	}
	walrec_free(&b);
	return lsn;
}

/* A new log in db (created) archiving into arch (created): tw_opts, with
 * the writer and archiver threads if threads. */
static wal *archived_wal(const char *db, const char *arch, bool threads)
{
	wal_opts o;
	wal *w;
	assert_int_equal(mkdir(arch, 0755), 0);
	assert_int_equal(mkdir(db, 0755), 0);
	tw_opts(&o);
	o.no_writer_thread = !threads;
	o.archive_dir = arch;
	OK(wal_create(db, &o, &w));
	return w;
}

static void test_wal_found_and_conflict(void **state)
{
	char *root = tu_tmpdir("walarch-wal"), *db = tu_path(root, "db");
	char *arch = tu_path(root, "archive"), *wal_dir = tu_path(db, WAL_DIR);
	wal *w = archived_wal(db, arch, false);
	uint8_t *seg[4];
	uint64_t seq = 0, *segs, k;
	unsigned tmps, others;
	size_t len, n;
	wal_counters c;
	(void)state;
	OK(wal_flush_to(w, fill_to(w, 4 * SEG + 1000, &seq)));
	for (int i = 0; i < 4; i++) {
		char *p = at_seg_file(wal_dir, (uint64_t)i);
		seg[i] = slurp(p, &len);
		assert_int_equal(len, SEG);
		free(p);
	}
	/* segment 0 is there already, identical; segment 1's name holds a
	 * whole segment of this log - segment 2 */
	{
		char *a0 = at_seg_file(arch, 0), *a1 = at_seg_file(arch, 1);
		write_file(a0, seg[0], SEG);
		write_file(a1, seg[2], SEG);
		free(a0);
		free(a1);
	}
	EXPECT(wal_remove_segments_before(w, 4 * SEG + WAL_SEG_HEADER_SIZE), WD_EEXIST);
	if (!strstr(wd_last_error(), "0000000000000001 already exists and differs from") ||
	    !strstr(wd_last_error(), "first difference at byte 32"))
		fail_msg("%s", wd_last_error());
	wal_stats(w, &c);
	assert_int_equal(c.segs_archive_found, 1);
	assert_int_equal(c.segs_archived, 0);
	assert_int_equal(c.archive_failures, 1);
	assert_false(exists_seg(wal_dir, 0)); /* archived: retired */
	assert_true(exists_seg(wal_dir, 1));  /* kept */
	/* put right: 1, 2, 3 go */
	{
		char *a1 = at_seg_file(arch, 1);
		assert_int_equal(unlink(a1), 0);
		free(a1);
	}
	OK(wal_remove_segments_before(w, 4 * SEG + WAL_SEG_HEADER_SIZE));
	wal_stats(w, &c);
	assert_int_equal(c.segs_archived, 3);
	for (uint64_t i = 0; i < 4; i++) {
		char *a = at_seg_file(arch, i);
		uint8_t *b = slurp(a, &len);
		assert_false(exists_seg(wal_dir, i));
		assert_int_equal(len, SEG);
		assert_memory_equal(b, seg[i], SEG);
		free(b);
		free(a);
		free(seg[i]);
	}
	/* the close archives what its flush completed */
	fill_to(w, 6 * SEG + 1000, &seq);
	k = wal_insert_pos(w) / SEG;
	OK(wal_close(w));
	n = at_list_dir(arch, &segs, &tmps, &others);
	assert_int_equal(n, k);
	assert_int_equal(segs[n - 1], k - 1);
	assert_int_equal(tmps + others, 0);
	free(segs);
	tu_rmrf(root);
	free(root);
	free(db);
	free(arch);
	free(wal_dir);
}

/* tw_wait_for: three segments archived. */
static bool three_archived(void *arg)
{
	wal_counters c;
	wal_stats(arg, &c);
	return c.segs_archived >= 3;
}

/* tw_wait_for: the archiver failed, and tried again. */
static bool failed_twice(void *arg)
{
	wal_counters c;
	wal_stats(arg, &c);
	return c.archive_failures >= 2;
}

/* With the WAL writer and the archiver running, completed segments reach
 * the archive without any checkpoint; while the archive's disk is full the
 * archiver keeps trying, and gets there once space returns. */
static void test_wal_archiver_thread(void **state)
{
	char *root = tu_tmpdir("walarch-thread"), *db = tu_path(root, "db");
	char *arch = tu_path(root, "archive");
	wal *w = archived_wal(db, arch, true);
	uint64_t seq = 0;
	wal_counters c;
	(void)state;
	OK(storage_fault_add(ST_OP_WRITE, ST_FAULT_ENOSPC, 1, 0, arch));
	OK(wal_commit(w, fill_to(w, 3 * SEG + 1000, &seq), true));
	assert_true(tw_wait_for(failed_twice, w, 30)); /* only a hang fails */
	wal_stats(w, &c);
	assert_int_equal(c.segs_archived, 0);
	assert_false(exists_seg(arch, 0));
	storage_fault_clear();
	assert_true(tw_wait_for(three_archived, w, 30));
	assert_true(exists_seg(arch, 0) && exists_seg(arch, 1) && exists_seg(arch, 2));
	assert_false(exists_seg(arch, 3)); /* not complete */
	OK(wal_close(w));
	tu_rmrf(root);
	free(root);
	free(db);
	free(arch);
}

/* ---- wd_open refuses an unusable archive directory ------------------------- */

static void test_archive_dir_unusable(void **state)
{
	char *root = tu_tmpdir("walarch-bad"), *db = tu_path(root, "db");
	char *missing = tu_path(root, "missing"), *file = tu_path(root, "file");
	char *wal_dir = tu_path(db, WAL_DIR), *ctl = tu_path(db, CONTROL_FILE);
	wd_options o;
	wd_db *d;
	(void)state;
	write_file(file, "x", 1);
	arch_opts(&o, missing);
	EXPECT(wd_open(db, &o, &d), WD_ENOENT);
	assert_non_null(strstr(wd_last_error(), missing));
	assert_false(storage_exists(db)); /* nothing created */
	o.archive_dir = file;
	EXPECT(wd_open(db, &o, &d), WD_EINVAL);
	assert_non_null(strstr(wd_last_error(), "not a directory"));
	assert_false(storage_exists(db));
	o.archive_dir = ""; /* off */
	OK(wd_open(db, &o, &d));
	OK(wd_close(d));
	o.archive_dir = wal_dir;
	EXPECT(wd_open(db, &o, &d), WD_EINVAL);
	assert_non_null(strstr(wd_last_error(), "the WAL directory itself"));
	assert_true(storage_exists(ctl));
	tu_rmrf(root);
	free(root);
	free(db);
	free(missing);
	free(file);
	free(wal_dir);
	free(ctl);
}

/* ---- recovery over recycled segments holding stale records ------------------ */

enum moment {
	MID,      /* the log ends mid-segment where a whole valid record of an
		   * earlier life of the (recycled) segment starts */
	BOUNDARY, /* ... exactly at a segment's end; the next file is recycled */
	SWITCH,   /* ... right after the switch into a recycled segment */
};

static const char *const moment_names[] = {"mid-segment", "at a boundary", "after a switch"};

/* Shared with the children of the stale-segment test. */
struct stale_state {
	uint64_t acked;                 /* last transaction committed */
	wd_lsn end;                     /* where the log ended when it died */
	int recovered;                  /* its open recovered the one before */
	wd_lsn rec_end;                 /* ... the report: end of WAL, reason */
	unsigned rec_reason;
	uint64_t want_count, want_hash; /* the oracle's digest (the parent's) */
	uint64_t got_count, got_hash;   /* the table's after the open */
	enum moment m;
};

static struct stale_state *stale;
static const char *stale_db;

/* The u32 at lsn in its live segment file (a record's tot_len): 0 if the
 * file is absent or short. */
static uint32_t word_at(const char *dbdir, wd_lsn lsn)
{
	char path[4096];
	uint8_t b[4];
	size_t got = 0;
	st_file *f;
	if (wal_seg_path(path, sizeof path, dbdir, wal_segno(lsn, SEG)) != 0 ||
	    storage_open(path, ST_RDONLY, &f) != 0)
		return 0;
	if (storage_read(f, b, sizeof b, lsn % SEG, &got) != 0)
		got = 0;
	(void)storage_close(f);
	return got == sizeof b ? get_le32(b) : 0;
}

/* Stale bytes - an old record's, from an earlier life of a recycled file -
 * where the next record would start, with room for a whole header. */
static bool stale_at(wd_lsn lsn)
{
	return lsn % SEG + WAL_REC_HEADER_SIZE <= SEG && word_at(stale_db, lsn) != 0;
}

/* Whether a whole record of an earlier life of lsn's (recycled) segment
 * starts at lsn: its self-LSN names this offset of another segment and it
 * decodes there - CRC and all. Only its self-LSN tells it from a new one. */
static bool stale_record_at(wd_lsn lsn)
{
	uint64_t off = lsn % SEG;
	uint8_t hdr[WAL_REC_HEADER_SIZE], *buf;
	char path[4096];
	size_t got = 0;
	bool found = false;
	wal_decoded d;
	st_file *f;
	if (off + sizeof hdr > SEG || wal_seg_path(path, sizeof path, stale_db, wal_segno(lsn, SEG)) != 0 ||
	    storage_open(path, ST_RDONLY, &f) != 0)
		return false;
	if (storage_read(f, hdr, sizeof hdr, off, &got) == 0 && got == sizeof hdr) {
		uint32_t len = get_le32(hdr + WRH_TOT_LEN);
		wd_lsn old = get_le64(hdr + WRH_LSN);
		if (len >= WAL_REC_HEADER_SIZE && off + len <= SEG && old != lsn && old % SEG == off &&
		    (buf = malloc(len)) != NULL) {
			control_data cd;
			found = storage_read(f, buf, len, off, &got) == 0 && got == len &&
				control_read(stale_db, &cd) == 0 &&
				walrec_decode_seeded(buf, len, old, wal_crc_seed(cd.db_id),
						     &d) == 0;
			free(buf);
		}
	}
	(void)storage_close(f);
	return found;
}

/* Logs an XLOG_NOOP that ends exactly at the end of the current segment
 * (which has room for one) and makes it durable. */
static int pad_to_boundary(wal *w)
{
	uint32_t room = SEG - (uint32_t)(wal_insert_pos(w) % SEG);
	uint8_t *zero = calloc(1, room);
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	wd_lsn lsn;
	int rc;
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	rc = walrec_set_main(&b, zero, room - WAL_REC_HEADER_SIZE);
	if (rc == 0)
		rc = walrec_assemble(&b, &rec, &len);
	if (rc == 0)
		rc = wal_insert(w, rec, len, &lsn);
	if (rc == 0)
		rc = wal_flush_to(w, lsn);
	walrec_free(&b);
	free(zero);
	return rc;
}

/* Whether the log, which ends at e (and ended at prev one transaction
 * before), is at the moment m; BOUNDARY pads the segment first. */
static bool at_moment(enum moment m, wal *w, wd_lsn prev, wd_lsn *e)
{
	switch (m) {
	case MID:
		return *e % SEG >= SEG / 4 && stale_record_at(*e);
	case SWITCH:
		return wal_segno(*e, SEG) != wal_segno(prev, SEG) && stale_at(*e);
	case BOUNDARY:
		if (SEG - *e % SEG < WAL_REC_HEADER_SIZE + 8 ||
		    !stale_at((wal_segno(*e, SEG) + 1) * SEG + WAL_SEG_HEADER_SIZE))
			return false;
		CK(pad_to_boundary(w));
		*e = wal_insert_pos(w);
		return true;
	}
	return false;
}

/* One round: open (recovering the last round's crash, reported in
 * `stale`), work on with a checkpoint every 25 transactions (recycling
 * segments) until the log ends at the round's moment, then SIGKILL. */
static void stale_child(void *arg)
{
	const db_recovery_report *r;
	wd_options o;
	wd_db *db;
	wal *w;
	wd_lsn prev;
	(void)arg;
	arch_opts(&o, NULL);
	CK(wd_open(stale_db, &o, &db));
	if (db_recovery_report_get(db, &r) == 0) {
		stale->recovered = 1;
		stale->rec_end = r->wal_end;
		stale->rec_reason = r->end_reason;
	}
	CK(ot_table_digest(db, TABLE, &stale->got_count, &stale->got_hash));
	w = db_wal(db);
	prev = wal_insert_pos(w);
	for (uint64_t i = 0; i < 20000; i++) {
		wd_lsn e;
		CK(run_txn(db, stale->acked + 1));
		stale->acked++;
		if (i % 25 == 24)
			CK(wd_checkpoint(db));
		e = wal_insert_pos(w);
		if (at_moment(stale->m, w, prev, &e)) {
			CK(wal_flush_to(w, e)); /* everything is durable already */
			stale->end = e;
			kill(getpid(), SIGKILL);
		}
		prev = e;
	}
	_exit(4); /* the moment never came */
}

/* Where and why the log of a crashed database ends, read from its
 * control file's redo point as recovery's first scan (wal_find_end) does. */
static wd_lsn scan_end(const char *dbdir, wal_end_reason *why)
{
	control_data cd;
	wal_reader *r;
	wd_lsn end;
	OK(control_read(dbdir, &cd));
	OK(wal_reader_open(dbdir, cd.db_id, cd.wal_segment_size, cd.page_size, &r));
	OK(wal_reader_seek(r, cd.redo_lsn));
	end = at_read_rest(r, NULL, why);
	wal_reader_close(r);
	return end;
}

/*
 * The next open's recovery (in a child, or the parent's) ended where the
 * killed child's log did, end. The log's end was decided at stale bytes
 * (scan_why); the report names that reason, the one the search for the
 * end found before the open zeroed the rest of the end's segment
 * (wal/README.md I7; recovery/README.md P3 step 0).
 */
static void expect_recovered_end(wd_lsn end, wd_lsn rec_end, unsigned rec_why,
				 wal_end_reason scan_why, enum moment m)
{
	if (rec_end != end)
		fail_msg("%s: recovery ended at " LSN_FMT ", the log at " LSN_FMT,
			 moment_names[m], LSN_ARGS(rec_end), LSN_ARGS(end));
	if (rec_why != scan_why)
		fail_msg("%s: recovery reports the end as %s; the log ends at %s",
			 moment_names[m], wal_end_reason_name(rec_why),
			 wal_end_reason_name(scan_why));
}

static void test_recovery_over_stale_segments(void **state)
{
	static const enum moment plan[] = {MID, BOUNDARY, SWITCH, MID, BOUNDARY, SWITCH};
	const size_t rounds = sizeof plan / sizeof plan[0];
	const db_recovery_report *r;
	unsigned reasons[WAL_END_WRONG_SEGNO + 1] = {0};
	wal_end_reason why = WAL_END_NONE;
	struct aenv e;
	wd_options o;
	wd_db *db;
	wd_lsn end = 0;
	(void)state;
	env_init(&e, "walarch-stale");
	stale = tw_shared(sizeof *stale);
	stale_db = e.db;
	for (size_t i = 0; i < rounds; i++) {
		int status;
		stale->recovered = 0;
		stale->m = plan[i];
		ot_state_digest(e.o, &stale->want_count, &stale->want_hash);
		status = tu_run_child(stale_child, NULL);
		if (status != 128 + SIGKILL)
			fail_msg("round %zu (%s): child exit %d", i, moment_names[plan[i]], status);
		if (i > 0) {
			assert_true(stale->recovered);
			expect_recovered_end(end, stale->rec_end, stale->rec_reason, why,
					     plan[i - 1]);
			if (stale->got_count != stale->want_count || stale->got_hash != stale->want_hash)
				fail_msg("after the crash %s: the table (%llu keys) differs from the "
					 "oracle (%llu keys)", moment_names[plan[i - 1]],
					 (unsigned long long)stale->got_count,
					 (unsigned long long)stale->want_count);
		}
		oracle_upto(e.o, &e.applied, stale->acked);
		/* the moment is on disk: stale bytes where the next record goes,
		 * and the log ends there, at a stale record */
		end = stale->end;
		assert_true(word_at(e.db, end) != 0);
		if (plan[i] == BOUNDARY)
			assert_int_equal(end % SEG, WAL_SEG_HEADER_SIZE);
		else
			assert_true(end % SEG > WAL_SEG_HEADER_SIZE);
		if (scan_end(e.db, &why) != end || (why != WAL_END_BAD_LSN && why != WAL_END_BAD_LENGTH) ||
		    (plan[i] == MID && why != WAL_END_BAD_LSN))
			fail_msg("%s: the log ends at " LSN_FMT " (%s), expected " LSN_FMT
				 " at a stale record", moment_names[plan[i]],
				 LSN_ARGS(scan_end(e.db, &why)), wal_end_reason_name(why),
				 LSN_ARGS(end));
		reasons[why]++;
	}
	arch_opts(&o, NULL);
	OK(wd_open(e.db, &o, &db));
	OK(db_recovery_report_get(db, &r));
	expect_recovered_end(end, r->wal_end, r->end_reason, why, plan[rounds - 1]);
	assert_null(ot_state_diff(e.o, db, TABLE));
	dt_check_all(db);
	run_txns(&e, db, 50);
	assert_null(ot_state_diff(e.o, db, TABLE));
	OK(wd_close(db));
	print_message("%zu crashes, %llu transactions; ends: %u wrong self-LSN, %u bad length\n",
		      rounds, (unsigned long long)e.applied, reasons[WAL_END_BAD_LSN],
		      reasons[WAL_END_BAD_LENGTH]);
	tw_shared_free(stale, sizeof *stale);
	env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_archive_holds_every_segment),
		cmocka_unit_test(test_archive_crash_points),
		cmocka_unit_test(test_archive_power_loss),
		cmocka_unit_test(test_archive_copy_errors),
		cmocka_unit_test(test_archive_foreign_file),
		cmocka_unit_test(test_wal_found_and_conflict),
		cmocka_unit_test(test_wal_archiver_thread),
		cmocka_unit_test(test_archive_dir_unusable),
		cmocka_unit_test(test_recovery_over_stale_segments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
