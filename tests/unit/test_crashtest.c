/*
 * test_crashtest.c - crash-injection campaigns (crashtest/README.md):
 *  - the verdict classifier on constructed histories and recovered
 *    states, one per class and rule, so that a classifier that always says
 *    OK (or always names the wrong class) fails;
 *  - `det --describe`: the workload does what its table says (splits of
 *    leaves and internal pages, unlinks, checkpoints, segment switches,
 *    aborts, savepoint rollbacks, values over a page, one open at the end);
 *  - a small campaign per workload and fault kind passes with no violation;
 *  - a replayed state gives the same verdict and the same recovered rows;
 *  - planted faults (a commit acknowledged before it is durable, a damaged
 *    value, a lost row) make campaigns fail with the right class, and a
 *    failing state's files are kept with the line that replays it;
 *  - --max-failures stops a failing campaign early; --no-full-page-writes
 *    campaigns pass and refuse torn writes;
 *  - the harness's own limits: a job that dies fails the campaign, also
 *    while its child stalls; a child that keeps sending past its time
 *    limit is killed as hung; a journal that does not load fails the
 *    campaign instead of giving a verdict;
 *  - the command line: help, usage errors, a run.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "crashtest/ct_internal.h"
#include "recovery/control.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"

#define NOW 1000000000000ull /* child clock of the constructed histories, ns */

/* ---- constructed histories ---------------------------------------------------- */

/* One write of a constructed transaction (table "t"); del: a delete. */
struct cw {
	const char *key;
	uint32_t op, total;
	bool del;
};

struct fixture {
	char *root;
	ct_oracle oracle;
	ct_history h;
	ct_kvset base;
	ct_recovered rec;
	const ct_workload *wl;
	uint64_t window_ns;
};

static size_t ck_of(const char *key, uint8_t *ck)
{
	return ct_ckey("t", key, strlen(key), ck);
}

/* The value txn's op-th operation writes under key. */
static void value_of(const char *key, uint64_t txn, uint32_t op, uint32_t total, uint8_t *out)
{
	uint8_t ck[CT_MAX_CKEY];
	ct_value_build(ck, ck_of(key, ck), txn, op, NULL, 0, total, out);
}

static void fx_init(struct fixture *f, const struct cw *base, size_t nbase)
{
	char *path;
	*f = (struct fixture){.root = tu_tmpdir("ct-verdict"), .window_ns = 60000000ull};
	for (size_t i = 0; i < nbase; i++) {
		uint8_t ck[CT_MAX_CKEY], v[256];
		value_of(base[i].key, 7, base[i].op, base[i].total, v);
		ct_kvset_add(&f->base, ck, ck_of(base[i].key, ck), v, base[i].total, true);
	}
	ct_kvset_sort(&f->base);
	path = tu_path(f->root, "oracle.mdb");
	OK(ct_oracle_open(&f->oracle, path, &f->base));
	free(path);
	OK(ct_oracle_begin(&f->oracle));
	ct_history_init(&f->h, &f->oracle);
	f->rec.opened = f->rec.complete = true;
}

static void fx_free(struct fixture *f)
{
	ct_oracle_close(&f->oracle);
	ct_history_free(&f->h);
	ct_kvset_free(&f->base);
	ct_recovered_free(&f->rec);
	tu_rmrf(f->root);
	free(f->root);
}

static void take(struct fixture *f, uint8_t kind, const ct_buf *b)
{
	assert_int_equal(ct_history_take(&f->h, kind, b->p, b->len), 0);
}

/* REQ of txn id at child time t with writes w and undone operations. */
static void req(struct fixture *f, uint64_t id, bool sync, uint64_t t, const struct cw *w,
		size_t n, const uint32_t *rolled, size_t nrolled)
{
	ct_buf b = {0};
	ct_put_u64(&b, id);
	ct_put_u8(&b, (uint8_t)(sync | 2));
	ct_put_u64(&b, t);
	ct_put_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		uint8_t ck[CT_MAX_CKEY];
		size_t cl = ck_of(w[i].key, ck);
		ct_put_u16(&b, (uint16_t)cl);
		ct_put_bytes(&b, ck, cl);
		ct_put_u8(&b, w[i].del);
		ct_put_u32(&b, w[i].op);
		ct_put_u32(&b, 0);
		ct_put_u32(&b, w[i].total);
	}
	ct_put_u32(&b, (uint32_t)nrolled);
	for (size_t i = 0; i < nrolled; i++)
		ct_put_u32(&b, rolled[i]);
	take(f, CT_M_REQ, &b);
	ct_buf_free(&b);
}

static void idmsg(struct fixture *f, uint8_t kind, uint64_t id, uint64_t t)
{
	ct_buf b = {0};
	ct_put_u64(&b, id);
	ct_put_u64(&b, t);
	take(f, kind, &b);
	ct_buf_free(&b);
}

/* A committed, acknowledged transaction. */
static void commit(struct fixture *f, uint64_t id, bool sync, uint64_t t, const struct cw *w,
		   size_t n)
{
	req(f, id, sync, t, w, n, NULL, 0);
	idmsg(f, CT_M_ACK, id, t + 10);
}

/* The WAL writer started (0) or ended (1) a cycle at child time t. */
static void writer(struct fixture *f, uint8_t phase, uint64_t t)
{
	ct_buf b = {0};
	ct_put_u8(&b, phase);
	ct_put_u64(&b, t);
	take(f, CT_M_WRITER, &b);
	ct_buf_free(&b);
}

/* The recovered state shows txn's op-th value (total bytes) under key. */
static void shows(struct fixture *f, const char *key, uint64_t txn, uint32_t op, uint32_t total)
{
	uint8_t ck[CT_MAX_CKEY], v[256];
	value_of(key, txn, op, total, v);
	ct_kvset_add(&f->rec.rows, ck, ck_of(key, ck), v, total, true);
}

/* Judges and checks the class; the detail must name `names` (if given). */
static void expect(struct fixture *f, ct_verdict want, const char *names)
{
	ct_judge_in in = {.h = &f->h, .base = &f->base, .oracle = &f->oracle, .rec = &f->rec,
			  .async_window_ns = f->window_ns, .writer_delay_ns = f->window_ns / 3,
			  .wl = f->wl};
	char *detail = NULL;
	ct_verdict v;
	ct_kvset_sort(&f->rec.rows);
	v = ct_judge(&in, 20, &detail);
	if (v != want || (names && !strstr(detail, names)))
		fail_msg("verdict %s, expected %s naming '%s':\n%s", ct_verdict_name(v),
			 ct_verdict_name(want), names ? names : "", detail);
	free(detail);
}

#define W(...) ((const struct cw[]){__VA_ARGS__}), (sizeof((const struct cw[]){__VA_ARGS__}) / sizeof(struct cw))

/* ---- the classes ------------------------------------------------------------------ */

static void test_verdict_ok_and_lost(void **state)
{
	struct fixture f;
	(void)state;
	/* exactly the acknowledged state: OK */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 40, false}, {"b", 2, 50, false}));
	commit(&f, 101, true, NOW + 100, W({"a", 1, 60, false}));
	shows(&f, "a", 101, 1, 60);
	shows(&f, "b", 100, 2, 50);
	expect(&f, CT_OK, "OK");
	fx_free(&f);
	/* the second commit lost on one key: LOST-ACK naming it */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 40, false}, {"b", 2, 50, false}));
	commit(&f, 101, true, NOW + 100, W({"a", 1, 60, false}));
	shows(&f, "a", 100, 1, 40);
	shows(&f, "b", 100, 2, 50);
	expect(&f, CT_LOST_ACK, "txn 101");
	fx_free(&f);
	/* an acknowledged row gone entirely: LOST-ACK */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 40, false}, {"b", 2, 50, false}));
	shows(&f, "b", 100, 2, 50);
	expect(&f, CT_LOST_ACK, "txn 100");
	fx_free(&f);
	/* a row of the prepared base gone: LOST-ACK */
	fx_init(&f, W({"z", 1, 30, false}));
	expect(&f, CT_LOST_ACK, "base");
	fx_free(&f);
	/* an acknowledged delete undone: LOST-ACK */
	fx_init(&f, W({"z", 1, 30, false}));
	commit(&f, 100, true, NOW, W({"z", 1, 0, true}));
	shows(&f, "z", 7, 1, 30);
	expect(&f, CT_LOST_ACK, "txn 100");
	fx_free(&f);
}

static void test_verdict_in_flight(void **state)
{
	struct fixture f;
	(void)state;
	/* a commit requested, not acknowledged: in whole, or out whole */
	for (int in = 0; in < 2; in++) {
		fx_init(&f, W({"z", 1, 30, false}));
		commit(&f, 100, true, NOW, W({"a", 1, 40, false}));
		req(&f, 101, true, NOW + 100, W({"b", 1, 40, false}, {"z", 2, 0, true}), NULL, 0);
		shows(&f, "a", 100, 1, 40);
		if (in)
			shows(&f, "b", 101, 1, 40);
		else
			shows(&f, "z", 7, 1, 30);
		expect(&f, CT_OK, in ? "1 in, 0 out" : "0 in, 1 out");
		fx_free(&f);
	}
	/* half of it: PARTIAL naming it */
	fx_init(&f, NULL, 0);
	req(&f, 101, true, NOW, W({"b", 1, 40, false}, {"c", 2, 40, false}), NULL, 0);
	shows(&f, "b", 101, 1, 40);
	expect(&f, CT_PARTIAL, "txn 101");
	fx_free(&f);
	/* two in flight on one key: the later one visible without the earlier
	 * one's other key - the earlier must be in (row locks order them) */
	fx_init(&f, NULL, 0);
	req(&f, 101, true, NOW, W({"k", 1, 40, false}, {"m", 2, 40, false}), NULL, 0);
	req(&f, 102, true, NOW + 5, W({"k", 1, 50, false}), NULL, 0);
	shows(&f, "k", 102, 1, 50);
	expect(&f, CT_PARTIAL, "txn 101");
	fx_free(&f);
}

static void test_verdict_dirty(void **state)
{
	struct fixture f;
	const uint32_t rolled[] = {2};
	(void)state;
	/* an aborted transaction's value */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 40, false}));
	idmsg(&f, CT_M_ABORT, 101, NOW + 5);
	shows(&f, "a", 101, 1, 44);
	expect(&f, CT_DIRTY, "txn 101, which aborted");
	fx_free(&f);
	/* a transaction that never asked to commit (open at the crash) */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 40, false}));
	shows(&f, "a", 100, 1, 40);
	shows(&f, "q", 555, 3, 44);
	expect(&f, CT_DIRTY, "txn 555, which never asked to commit");
	fx_free(&f);
	/* a write undone by a rollback to a savepoint */
	fx_init(&f, NULL, 0);
	req(&f, 100, true, NOW, W({"a", 1, 40, false}), rolled, 1);
	idmsg(&f, CT_M_ACK, 100, NOW + 10);
	shows(&f, "a", 100, 1, 40);
	shows(&f, "s", 100, 2, 40);
	expect(&f, CT_DIRTY, "rollback to a savepoint");
	fx_free(&f);
	/* an overwritten operation of a committed transaction: PARTIAL */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 3, 40, false}));
	shows(&f, "a", 100, 1, 40);
	expect(&f, CT_PARTIAL, "a later operation of the same transaction");
	fx_free(&f);
}

static void test_verdict_corrupt_and_recovery(void **state)
{
	struct fixture f;
	(void)state;
	/* one flipped byte in an acknowledged value read back: SILENT-CORRUPT */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 80, false}));
	shows(&f, "a", 100, 1, 80);
	f.rec.rows.kv[0].v[60] ^= 1;
	expect(&f, CT_SILENT_CORRUPT, "t/'a'");
	fx_free(&f);
	/* another key's value (moved): SILENT-CORRUPT too */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 80, false}, {"b", 2, 80, false}));
	shows(&f, "a", 100, 1, 80);
	shows(&f, "b", 100, 1, 80);
	value_of("a", 100, 2, 80, f.rec.rows.kv[1].v); /* "b" holds bytes made for "a" */
	expect(&f, CT_SILENT_CORRUPT, "t/'b'");
	fx_free(&f);
	/* the open failed: NO-RECOVERY, unless the database never got created
	 * and the open says so (O1); any other refusal, or one of a database
	 * that had a base, is NO-RECOVERY even before READY */
	for (int c = 0; c < 4; c++) {
		static const struct cw base[] = {{"z", 1, 60, false}};
		bool ready = c == 1, other = c == 2, has_base = c == 3;
		fx_init(&f, base, has_base ? 1 : 0);
		if (ready)
			take(&f, CT_M_READY, &(ct_buf){0});
		f.rec.opened = false;
		f.rec.refused = true;
		f.rec.open_error = strdup(other ? "wd_open: data corrupted on disk (control: "
					  "checksum mismatch)"
					: "wd_open: data corrupted on disk (db: the creation of this "
					  "database never finished (control file without a "
					  "catalog); remove the directory and create it again)");
		expect(&f, c == 0 ? CT_OK : CT_NO_RECOVERY, "wd_open");
		fx_free(&f);
	}
	/* O1's text is what wd_open says of a creation that never finished */
	{
		char *d = tu_tmpdir("ct-unfinished");
		wd_options o;
		wd_db *db;
		wd_options_default(&o);
		OK(control_create(d, o.page_size, NULL));
		EXPECT(wd_open(d, &o, &db), WD_ECORRUPT);
		assert_non_null(strstr(wd_last_error(), CT_UNFINISHED_CREATION));
		tu_rmrf(d);
		free(d);
	}
	/* a check failed: STRUCT */
	fx_init(&f, NULL, 0);
	f.rec.struct_msg = strdup("table t: heap and index disagree");
	expect(&f, CT_STRUCT, "disagree");
	fx_free(&f);
}

/*
 * A message that does not parse is never ignored. An acknowledgement cut
 * short (its time missing) would leave its commit in flight, so a lost
 * row of it would pass; the count the driver keeps of such messages makes
 * the state CHILD-ERROR. The same for the recovery child's (a row).
 */
static void test_verdict_malformed(void **state)
{
	struct fixture f;
	ct_buf b = {0};
	(void)state;
	fx_init(&f, NULL, 0);
	req(&f, 100, true, NOW, W({"a", 1, 80, false}), NULL, 0);
	ct_put_u64(&b, 100); /* an ACK without its time */
	assert_int_equal(ct_history_take(&f.h, CT_M_ACK, b.p, b.len), -1);
	ct_buf_free(&b);
	f.h.malformed++; /* as drive_workload counts it */
	expect(&f, CT_CHILD_ERROR, "malformed messages: 1 from the workload child");
	fx_free(&f);
	fx_init(&f, NULL, 0);
	f.rec.malformed = 1;
	expect(&f, CT_CHILD_ERROR, "0 from the workload child, 1 from the recovery child");
	fx_free(&f);
}

static void test_verdict_async(void **state)
{
	struct fixture f;
	(void)state;
	/* a recent asynchronous commit may be lost ... */
	fx_init(&f, NULL, 0);
	commit(&f, 100, true, NOW, W({"a", 1, 40, false}));
	commit(&f, 101, false, NOW + 1000, W({"b", 1, 40, false}));
	shows(&f, "a", 100, 1, 40);
	expect(&f, CT_OK, "0 in, 1 out");
	fx_free(&f);
	/* ... one older than 3 x wal_writer_delay may not, once a WAL writer
	 * cycle that started a delay after its ACK (NOW + 10) has ended (an
	 * abort, which binds nobody, dates the crash); a crash 1 ns sooner
	 * leaves it free */
	for (int sooner = 0; sooner < 2; sooner++) {
		fx_init(&f, NULL, 0);
		commit(&f, 101, false, NOW, W({"b", 1, 40, false}));
		writer(&f, 0, NOW + 10 + f.window_ns / 3);
		writer(&f, 1, NOW + 20 + f.window_ns / 3);
		idmsg(&f, CT_M_ABORT, 102, NOW + 10 + f.window_ns - (uint64_t)sooner);
		if (sooner)
			expect(&f, CT_OK, "0 in, 1 out");
		else
			expect(&f, CT_LOST_ACK, "txn 101 (async, acknowledged) is missing");
		fx_free(&f);
	}
	/* the writer starved: no cycle at all, a cycle that started too soon,
	 * one that never ended, an end without its start - excused, and said */
	for (int c = 0; c < 4; c++) {
		fx_init(&f, NULL, 0);
		commit(&f, 101, false, NOW, W({"b", 1, 40, false}));
		if (c == 1) {
			writer(&f, 0, NOW + 9 + f.window_ns / 3);
			writer(&f, 1, NOW + f.window_ns);
		} else if (c == 2) {
			writer(&f, 0, NOW + f.window_ns);
		} else if (c == 3) {
			writer(&f, 1, NOW + f.window_ns);
		}
		idmsg(&f, CT_M_ABORT, 102, NOW + 2 * f.window_ns);
		expect(&f, CT_OK, "1 asynchronous commits were old enough to have to survive but "
				  "were excused");
		fx_free(&f);
	}
	/* a prefix: a recent async commit lost while one requested after it
	 * was acknowledged survived (its commit record came later in the log) */
	fx_init(&f, NULL, 0);
	commit(&f, 101, false, NOW, W({"b", 1, 40, false}));
	commit(&f, 102, false, NOW + 1000, W({"c", 1, 40, false}));
	shows(&f, "c", 102, 1, 40);
	expect(&f, CT_LOST_ACK, "txn 101");
	fx_free(&f);
	/* the same, undecided by its own key (a delete of an absent key), the
	 * later one's presence puts it in: OK */
	fx_init(&f, NULL, 0);
	commit(&f, 101, false, NOW, W({"b", 1, 0, true}));
	commit(&f, 102, false, NOW + 1000, W({"c", 1, 40, false}));
	shows(&f, "c", 102, 1, 40);
	expect(&f, CT_OK, "2 in, 0 out");
	fx_free(&f);
}

static void test_verdict_invariant(void **state)
{
	struct fixture f;
	ct_kvset rows = {0};
	char msg[256];
	(void)state;
	/* the bank's total off by one transfer's half: INVARIANT */
	for (int broken = 0; broken < 2; broken++) {
		for (unsigned i = 0; i < 40; i++) {
			uint8_t ck[CT_MAX_CKEY], v[64];
			char k[16], p[16];
			int pl = snprintf(p, sizeof p, "%d", i == 3 && broken ? 990 : 1000);
			size_t cl = ct_ckey("bank", k, (size_t)snprintf(k, sizeof k, "acct-%03u", i),
					    ck);
			ct_value_build(ck, cl, 5, 1, p, (uint32_t)pl, 40, v);
			ct_kvset_add(&rows, ck, cl, v, 40, true);
		}
		ct_kvset_sort(&rows);
		assert_int_equal(ct_wl_bank.invariant(&rows, msg, sizeof msg) != 0, broken);
		ct_kvset_free(&rows);
	}
	/* and through the verdict */
	fx_init(&f, NULL, 0);
	f.wl = &ct_wl_ring;
	expect(&f, CT_INVARIANT, "ring: 0 nodes");
	fx_free(&f);
}

/* ---- workloads and campaigns -------------------------------------------------------- */

static ct_config config(const char *workload, unsigned faults, uint64_t states, char *dir)
{
	ct_config c;
	ct_config_default(&c);
	c.workload = workload;
	c.faults = faults;
	c.states = states;
	c.threads = 2;
	c.work_dir = dir;
	c.seed = 3;
	return c;
}

static void test_det_describe(void **state)
{
	char *dir = tu_tmpdir("ct-describe");
	ct_config c = config("det", 1u << CT_KILL, 1, dir);
	ct_profile p;
	(void)state;
	OK(ct_describe(&c, true, &p));
	print_message("det: %llu leaf splits, %llu internal, %llu unlinks, %llu checkpoints, "
		      "%llu segment switches, %llu aborts, %llu savepoint rollbacks, %llu big "
		      "values, %llu open at the end, %llu I/O calls\n",
		      (unsigned long long)p.leaf_splits, (unsigned long long)p.internal_splits,
		      (unsigned long long)p.unlinks, (unsigned long long)p.wal_checkpoints,
		      (unsigned long long)p.segment_switches, (unsigned long long)p.aborts,
		      (unsigned long long)p.sp_rollbacks, (unsigned long long)p.big_values,
		      (unsigned long long)p.open_at_end, (unsigned long long)p.io_calls);
	assert_true(p.described);
	assert_true(p.leaf_splits >= 30);
	assert_true(p.internal_splits >= 5);
	assert_true(p.unlinks >= 1);
	assert_true(p.wal_checkpoints >= 2 && p.checkpoints == 2);
	assert_true(p.segment_switches >= 1);
	assert_true(p.aborts >= 20 && p.xact_aborts == p.aborts);
	assert_true(p.sp_rollbacks >= 20);
	assert_true(p.big_values >= 1 && p.overflow_writes >= 1);
	assert_int_equal(p.open_at_end, 1);
	assert_int_equal(p.npoints, ct_point_count());
	ct_profile_free(&p);
	tu_rmrf(dir);
	free(dir);
}

/* A campaign of n states must pass whole. */
static void campaign_clean(const char *workload, unsigned faults, uint64_t n)
{
	char *dir = tu_tmpdir("ct-campaign");
	ct_config c = config(workload, faults, n, dir);
	ct_summary s;
	OK(ct_campaign_run(&c, &s));
	if (s.failed) {
		ct_summary_print(&s, &c, stderr);
		fail_msg("%s: %llu violations", workload, (unsigned long long)s.failed);
	}
	assert_int_equal(s.states, n);
	assert_int_equal(s.passed, n);
	assert_true(s.by_trigger[CT_TRIG_POINT] + s.by_trigger[CT_TRIG_IO] > 0);
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
}

static uint64_t scaled(uint64_t n)
{
	uint64_t m = (uint64_t)((double)n * dt_scale());
	return m < 2 ? 2 : m;
}

static void test_campaigns(void **state)
{
	static const char *const wls[] = {"det", "random", "bank", "ring"};
	(void)state;
	for (size_t w = 0; w < 4; w++)
		for (int f = 0; f < CT_NFAULTS; f++)
			campaign_clean(wls[w], 1u << f, scaled(6));
}

/* ct_replay twice: same verdict, same rows. */
static void replay_twice(const char *workload, const char *token, const char *trig)
{
	char *dir = tu_tmpdir("ct-replay");
	ct_config c = config(workload, CT_FAULTS_ALL, 1, dir);
	ct_result a, b;
	ct_trigger t;
	ct_spec spec;
	bool has_seed;
	OK(ct_parse_replay(token, &spec, &has_seed));
	if (trig)
		OK(ct_parse_trigger(trig, &t));
	OK(ct_replay(&c, &spec, has_seed, trig ? &t : NULL, &a));
	OK(ct_replay(&c, &spec, has_seed, trig ? &t : NULL, &b));
	/* the spec is the same but for where the state is cut (at): det's
	 * WAL writer prepares segments at moments of its own, so the I/O
	 * count of a crash point hit can move by a call or two (README I1) */
	if (a.verdict != CT_OK || b.verdict != a.verdict || a.digest != b.digest ||
	    a.keys != b.keys || a.spec.fault != b.spec.fault || a.spec.res != b.spec.res ||
	    a.spec.res_seed != b.spec.res_seed || a.spec.index != b.spec.index ||
	    memcmp(&a.spec.trig, &b.spec.trig, sizeof a.spec.trig) != 0)
		fail_msg("%s %s: %s %llu rows %016llx, then %s %llu rows %016llx\n%s\n%s", workload,
			 token, ct_verdict_name(a.verdict), (unsigned long long)a.keys,
			 (unsigned long long)a.digest, ct_verdict_name(b.verdict),
			 (unsigned long long)b.keys, (unsigned long long)b.digest, a.detail,
			 b.detail);
	assert_true(a.fired);
	assert_true(a.keys > 0);
	ct_result_free(&a);
	ct_result_free(&b);
	tu_rmrf(dir);
	free(dir);
}

/*
 * A det state cut from a recorded run and the same state run in a workload
 * run of its own with the trigger armed (--rerun): the same verdict and
 * the same rows, for crash point hits (the same place of the same program)
 * killed and lost in a power cut.
 */
static void test_prefix_matches_rerun(void **state)
{
	static const struct {
		const char *token, *trig;
	} st[] = {
		{"3:2:kill", "point:btree-split-after-wal:40"},
		{"3:4:kill", "point:txn-commit-after-wal-insert:90"},
		{"3:6:drop-all", "point:undo-after-clr:10"},
		{"3:8:keep-all", "point:heap-after-overflow-write:20"},
	};
	char *dir = tu_tmpdir("ct-prefix");
	(void)state;
	for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
		ct_config c = config("det", CT_FAULTS_ALL, 1, dir);
		ct_result a, b;
		ct_trigger t;
		ct_spec spec;
		bool has_seed;
		OK(ct_parse_replay(st[i].token, &spec, &has_seed));
		OK(ct_parse_trigger(st[i].trig, &t));
		OK(ct_replay(&c, &spec, has_seed, &t, &a));
		c.rerun = true;
		OK(ct_replay(&c, &spec, has_seed, &t, &b));
		print_message("det %s at %s: cut at I/O call %llu, %llu rows\n", st[i].token,
			      st[i].trig, (unsigned long long)a.spec.at,
			      (unsigned long long)a.keys);
		if (a.verdict != CT_OK || b.verdict != CT_OK || a.digest != b.digest ||
		    a.keys != b.keys || !a.fired || !b.fired || a.spec.at == 0 || b.spec.at != 0)
			fail_msg("%s %s: prefix %s %llu rows %016llx, own run %s %llu rows "
				 "%016llx\n%s\n%s", st[i].token, st[i].trig,
				 ct_verdict_name(a.verdict), (unsigned long long)a.keys,
				 (unsigned long long)a.digest, ct_verdict_name(b.verdict),
				 (unsigned long long)b.keys, (unsigned long long)b.digest,
				 a.detail, b.detail);
		ct_result_free(&a);
		ct_result_free(&b);
	}
	tu_rmrf(dir);
	free(dir);
}

static void test_replay(void **state)
{
	(void)state;
	/* det: the state's trigger from the profile (a crash point at even
	 * indices), killed, and resolved as a torn power loss by a given seed */
	replay_twice("det", "3:40:kill", NULL);
	replay_twice("det", "3:12:torn:77", NULL);
	replay_twice("det", "3:9:drop-all", "point:btree-split-after-wal:50");
	/* the parsers refuse what they cannot read */
	{
		ct_spec s;
		ct_trigger t;
		bool h;
		EXPECT(ct_parse_replay("3:x:kill", &s, &h), WD_EINVAL);
		EXPECT(ct_parse_replay("3:4:sideways", &s, &h), WD_EINVAL);
		EXPECT(ct_parse_replay("3:4:kill:9", &s, &h), WD_EINVAL);
		EXPECT(ct_parse_trigger("point:no-such-point:3", &t), WD_EINVAL);
		EXPECT(ct_parse_trigger("io:0", &t), WD_EINVAL);
		OK(ct_parse_replay("3:4:random:9", &s, &h));
		assert_true(h && s.res == CT_RES_RANDOM && s.fault == CT_POWER && s.res_seed == 9);
	}
}

/* A campaign with a planted fault must fail, every failure of class want
 * (or want2). Returns the failures. */
static uint64_t campaign_planted(const char *workload, ct_plant plant, unsigned faults,
				 uint64_t n, ct_verdict want, ct_verdict want2, const char *keep)
{
	char *dir = tu_tmpdir("ct-planted");
	ct_config c = config(workload, faults, n, dir);
	ct_summary s;
	uint64_t failed;
	c.plant = plant;
	c.keep_dir = keep;
	OK(ct_campaign_run(&c, &s));
	print_message("%s, planted fault %d: %llu of %llu states fail\n", workload, (int)plant,
		      (unsigned long long)s.failed, (unsigned long long)s.states);
	if (s.failed == 0 ||
	    s.by_verdict[want] + (want2 != want ? s.by_verdict[want2] : 0) != s.failed) {
		ct_summary_print(&s, &c, stderr);
		fail_msg("planted fault %d: %llu failures, %llu of class %s", (int)plant,
			 (unsigned long long)s.failed, (unsigned long long)s.by_verdict[want],
			 ct_verdict_name(want));
	}
	failed = s.failed;
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
	return failed;
}

/*
 * The 20th read of a bank run fails (WD_ECORRUPT) while its transaction
 * holds row locks; the workload gives up on it (I10), so the other thread
 * goes on, and the states the failure precedes are CHILD-ERROR naming it.
 * Had the transaction stayed open, the other thread would wait for its
 * locks until the child is killed as hung (120 s), and the states would
 * say so instead.
 */
static void planted_bad_read(void)
{
	char *dir = tu_tmpdir("ct-badread");
	ct_config c = config("bank", 1u << CT_KILL, 16, dir);
	ct_summary s;
	c.plant = CT_PLANT_BAD_READ;
	OK(ct_campaign_run(&c, &s));
	print_message("bank, a failed read: %llu of %llu states fail\n",
		      (unsigned long long)s.failed, (unsigned long long)s.states);
	if (s.failed == 0 || s.by_verdict[CT_CHILD_ERROR] != s.failed)
		ct_summary_print(&s, &c, stderr);
	assert_true(s.failed > 0);
	assert_int_equal(s.by_verdict[CT_CHILD_ERROR], s.failed);
	for (size_t i = 0; i < s.nviol; i++) {
		if (!strstr(s.viol[i].first, "planted damage") || strstr(s.viol[i].first, "hung"))
			fail_msg("state %llu: %s", (unsigned long long)s.viol[i].spec.index,
				 s.viol[i].first);
	}
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
}

/*
 * The same plant in eio-once states of bank (one thread), the error
 * injected at each of the run's first 80 I/O calls: where the engine
 * absorbed the error and the workload went on to its failed read, the
 * failure is the workload's own (I11) and the state CHILD-ERROR. Blamed
 * on the injected error, the child would go on as after an engine
 * failure and the state would pass.
 */
static void planted_bad_read_after_eio(void)
{
	char *dir = tu_tmpdir("ct-badread-eio");
	ct_config c = config("bank", CT_FAULTS_ALL, 1, dir);
	unsigned own = 0, child_errors = 0;
	c.plant = CT_PLANT_BAD_READ;
	c.threads = 1;
	for (unsigned k = 1; k <= 80; k++) {
		char trig[32];
		ct_spec spec;
		ct_trigger t;
		ct_result r;
		bool has_seed;
		snprintf(trig, sizeof trig, "eio-once:%u", k);
		OK(ct_parse_replay("3:0:drop-all", &spec, &has_seed));
		OK(ct_parse_trigger(trig, &t));
		OK(ct_replay(&c, &spec, has_seed, &t, &r));
		if (strstr(r.detail, "planted damage") && r.verdict != CT_CHILD_ERROR)
			fail_msg("%s: %s", trig, r.detail);
		own += strstr(r.detail, "a failure of its own") != NULL;
		child_errors += r.verdict == CT_CHILD_ERROR;
		ct_result_free(&r);
	}
	print_message("bank, a failed read after eio-once at calls 1-80: %u CHILD-ERROR, "
		      "%u after an absorbed error\n", child_errors, own);
	assert_true(own > 0);
	tu_rmrf(dir);
	free(dir);
}

static void test_planted_faults(void **state)
{
	(void)state;
	/* commits acknowledged before they are durable: lost by power losses
	 * and kills (most states: the WAL writer of det sleeps 10 s, so only
	 * page writes flush the log now and then); not scaled down, so that
	 * some state fails under sanitizers too */
	campaign_planted("det", CT_PLANT_ACK_UNDURABLE, 1u << CT_POWER | 1u << CT_KILL, 16,
			 CT_LOST_ACK, CT_LOST_ACK, NULL);
	/* a damaged value read back without an error */
	campaign_planted("det", CT_PLANT_CORRUPT_VALUE, 1u << CT_KILL, scaled(4),
			 CT_SILENT_CORRUPT, CT_SILENT_CORRUPT, NULL);
	/* a row the recovered state lost (acknowledged, or of a transaction in
	 * flight whose other rows are there) */
	campaign_planted("det", CT_PLANT_DROP_KEY, 1u << CT_KILL, scaled(4), CT_LOST_ACK,
			 CT_PARTIAL, NULL);
	/* the same with two threads, asynchronous commits, power losses; not
	 * scaled down either: a state cut before anything committed has no
	 * row to drop, and two states under a sanitizer were sometimes both
	 * such */
	campaign_planted("random", CT_PLANT_DROP_KEY, CT_FAULTS_ALL, 6, CT_LOST_ACK, CT_PARTIAL,
			 NULL);
	/* a read that fails while its transaction holds row locks */
	planted_bad_read();
	planted_bad_read_after_eio();
}

/* --max-failures: a campaign that fails from its first states stops taking
 * new ones once the limit is reached (the jobs finish the states they run:
 * at most one more each), and every state below the first failure ran.
 * About 1 s in release, a few under ASan (about 10 states). */
static void test_max_failures(void **state)
{
	char *dir = tu_tmpdir("ct-maxfail");
	ct_config c = config("det", 1u << CT_POWER, 200, dir);
	ct_summary s;
	uint64_t first = UINT64_MAX;
	(void)state;
	c.plant = CT_PLANT_ACK_UNDURABLE;
	c.max_failures = 2;
	OK(ct_campaign_run(&c, &s));
	for (size_t i = 0; i < s.nviol; i++)
		if (s.viol[i].spec.index < first)
			first = s.viol[i].spec.index;
	print_message("max-failures 2: %llu states, %llu failed, first at %llu\n",
		      (unsigned long long)s.states, (unsigned long long)s.failed,
		      (unsigned long long)first);
	assert_true(s.failed >= 2);
	/* the states below the first failure all run, and may fail too */
	assert_true(s.failed <= 2 + (uint64_t)c.jobs * 16);
	assert_true(s.states < 200);
	assert_true(s.states >= first + 1);
	ct_summary_free(&s);
	/* full-page writes off: a campaign of kills and power losses passes,
	 * torn writes (which need the images) are refused */
	c = config("det", 1u << CT_KILL | 1u << CT_POWER, scaled(6), dir);
	c.no_full_page_writes = true;
	OK(ct_campaign_run(&c, &s));
	assert_int_equal(s.failed, 0);
	ct_summary_free(&s);
	c.faults |= 1u << CT_TORN;
	EXPECT(ct_campaign_run(&c, &s), WD_EINVAL);
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
}

static void test_keep_failures(void **state)
{
	char *keep = tu_tmpdir("ct-keep");
	char cmd[512], line[1024];
	FILE *f;
	bool replay = false;
	(void)state;
	campaign_planted("det", CT_PLANT_CORRUPT_VALUE, 1u << CT_TORN, 2, CT_SILENT_CORRUPT,
			 CT_SILENT_CORRUPT, keep);
	snprintf(cmd, sizeof cmd, "cat %s/state-3-*-SILENT-CORRUPT/README && "
		 "ls %s/state-3-*-SILENT-CORRUPT/db/control >/dev/null", keep, keep);
	assert_non_null(f = popen(cmd, "r"));
	while (fgets(line, sizeof line, f))
		replay |= strstr(line, "replay: walden crashtest --workload det") &&
			  strstr(line, "--replay 3:") && strstr(line, ":torn:") &&
			  strstr(line, "--tear 512") && strstr(line, "--at ");
	assert_int_equal(pclose(f), 0);
	assert_true(replay);
	tu_rmrf(keep);
	free(keep);
}

/* The pids of parent's children (from /proc), up to cap. */
static int children_of(pid_t parent, pid_t *out, int cap)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d && n < cap && (e = readdir(d))) {
		char path[300], buf[512], *rp;
		FILE *f;
		size_t len;
		int ppid;
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		len = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[len] = 0;
		if ((rp = strrchr(buf, ')')) && sscanf(rp + 1, " %*c %d", &ppid) == 1 &&
		    ppid == parent)
			out[n++] = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

/* The text of the file at path into buf (cap bytes with the NUL).
 * Returns false if it cannot be opened. */
static bool read_text(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	buf[fread(buf, 1, cap - 1, f)] = 0;
	fclose(f);
	return true;
}

/* SIGKILLs a job of the campaign driver drv: its child that has children
 * of its own (a workload or recovery child), waiting for one up to 2
 * minutes (sanitizers). Returns whether it killed one. */
static bool kill_a_job(pid_t drv)
{
	for (int i = 0; i < 1200; i++) {
		pid_t c[16], g[4];
		int n = children_of(drv, c, 16);
		for (int k = 0; k < n; k++)
			if (children_of(c[k], g, 4) > 0 && kill(c[k], SIGKILL) == 0)
				return true;
		usleep(100000);
	}
	return false;
}

/*
 * A job process that dies takes the states of its block with it: the
 * campaign fails and names it, instead of summing up the states that did
 * run as if they were all. The job is the driver's child that has
 * children (the workload and recovery children); the profile run's child
 * has none.
 */
static void test_job_death(void **state)
{
	char *dir = tu_tmpdir("ct-jobdeath"), *errpath = tu_path(dir, "stderr");
	const char *bin = getenv("WALDEN_BIN") ? getenv("WALDEN_BIN") : "build/release/walden";
	char text[4096] = "";
	bool killed;
	int status = 0;
	pid_t drv;
	(void)state;
	assert_true((drv = fork()) >= 0);
	if (drv == 0) {
		int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(bin, bin, "crashtest", "--workload", "det", "--minutes", "0.1", "--jobs", "2",
		      "--quiet", "--dir", dir, (char *)NULL);
		_exit(127);
	}
	killed = kill_a_job(drv);
	while (waitpid(drv, &status, 0) < 0 && errno == EINTR)
		;
	assert_true(read_text(errpath, text, sizeof text));
	print_message("a job killed: %s", text);
	assert_true(killed);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	assert_non_null(strstr(text, "died (signal 9)"));
	tu_rmrf(dir);
	free(errpath);
	free(dir);
}

/* ---- the harness's own limits ------------------------------------------------------ */

/* One state of det (kill) with a planted stall and a limit of limit_s
 * seconds: its verdict must be want and its detail must say what hung. */
static void stalled_state(ct_plant plant, unsigned limit_s, ct_verdict want, const char *says)
{
	char *dir = tu_tmpdir("ct-stall");
	ct_config c = config("det", 1u << CT_KILL, 1, dir);
	ct_summary s;
	c.plant = plant;
	c.child_timeout_s = limit_s;
	OK(ct_campaign_run(&c, &s));
	print_message("det, planted fault %d: %llu of %llu states fail: %s\n", (int)plant,
		      (unsigned long long)s.failed, (unsigned long long)s.states,
		      s.nviol ? s.viol[0].first : "");
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.by_verdict[want], 1);
	assert_non_null(strstr(s.viol[0].first, says));
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
}

/*
 * A child that keeps sending is killed at its time limit as surely as one
 * that went silent: the planted chatter sends for 90 s, the limit is 2 s.
 * Were the limit checked only in seconds without a message, the state
 * would take the 90 s and end otherwise.
 */
static void test_chatty_child(void **state)
{
	(void)state;
	/* the workload chatters from its start: 2 s are enough to see it */
	stalled_state(CT_PLANT_CHATTER, 2, CT_CHILD_ERROR, "the workload hung and was killed");
	/* the workload must finish within the limit before recovery chatters:
	 * under a sanitizer on a busy machine it took more than 2 s */
	stalled_state(CT_PLANT_CHATTER_RECOVERY, 20, CT_NO_RECOVERY,
		      "the recovery process hung and was killed");
}

/*
 * A power-loss state whose journal the materialiser refuses is the
 * harness's failure, not a verdict: the files never got the power loss.
 * Both ways to a state: a run of its own (P2) and a recorded run (P4).
 */
static void test_materialise_failure(void **state)
{
	char *dir = tu_tmpdir("ct-foreign");
	ct_config c = config("det", 1u << CT_POWER, 1, dir);
	(void)state;
	c.plant = CT_PLANT_FOREIGN_JOURNAL;
	for (int rerun = 0; rerun < 2; rerun++) {
		ct_spec spec;
		ct_result r;
		bool has_seed;
		int rc;
		c.rerun = rerun;
		OK(ct_parse_replay("3:12:drop-all", &spec, &has_seed));
		rc = ct_replay(&c, &spec, has_seed, NULL, &r);
		print_message("a foreign journal, %s: %d %s\n", rerun ? "P2" : "P4", rc,
			      rc ? wd_last_error() : r.detail);
		assert_int_equal(rc, WD_ECORRUPT);
		assert_non_null(strstr(wd_last_error(), rerun ? "materialising the power loss"
							       : "journal"));
		ct_result_free(&r);
	}
	tu_rmrf(dir);
	free(dir);
}

/*
 * A job that dies while its workload child stalls (90 s, silent, below
 * the 120 s limit) must not keep the campaign waiting: the child dies
 * with the job (I13). It holds a copy of the job's result pipe, so
 * otherwise the driver would wait on that pipe until the stall ended.
 * The driver here is a forked process running the campaign; it gets 45 s.
 */
static void test_orphan_dies(void **state)
{
	char *dir = tu_tmpdir("ct-orphan"), *errpath = tu_path(dir, "error");
	char text[1024] = "";
	bool killed, ended = false;
	int status = 0;
	pid_t drv;
	(void)state;
	assert_true((drv = fork()) >= 0);
	if (drv == 0) {
		ct_config c = config("det", 1u << CT_KILL, 1, dir);
		ct_summary s;
		FILE *f;
		int rc;
		c.plant = CT_PLANT_STALL;
		c.jobs = 1;
		rc = ct_campaign_run(&c, &s);
		if ((f = fopen(errpath, "w"))) {
			fputs(rc ? wd_last_error() : "the campaign ended well", f);
			fclose(f);
		}
		_exit(rc ? 3 : 0);
	}
	killed = kill_a_job(drv);
	for (int i = 0; i < 450 && !ended; i++) {
		pid_t w = waitpid(drv, &status, WNOHANG);
		ended = w == drv;
		if (!ended)
			usleep(100000);
	}
	if (!ended) { /* still waiting on the stalled child's pipe */
		kill(drv, SIGKILL);
		waitpid(drv, &status, 0);
	}
	(void)read_text(errpath, text, sizeof text);
	print_message("a job killed while its child stalls: %s\n", ended ? text : "hangs");
	assert_true(killed);
	assert_true(ended);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	assert_non_null(strstr(text, "died (signal 9)"));
	tu_rmrf(dir);
	free(errpath);
	free(dir);
}

/* ---- the command line ----------------------------------------------------------------- */

static void test_cli(void **state)
{
	static char out[65536], err[4096];
	const char *help[] = {"crashtest", "--help", NULL};
	const char *eio[] = {"crashtest", "--fault", "eio,melt", NULL};
	const char *bad[] = {"crashtest", "--threads", "9", NULL};
	const char *trig[] = {"crashtest", "--trigger", "io:3", NULL};
	const char *nofpw[] = {"crashtest", "--no-full-page-writes", "--fault", "torn", NULL};
	const char *run[] = {"crashtest", "--workload", "ring", "--states", "3", "--fault",
			     "all", "--quiet", NULL};
	const char *desc[] = {"crashtest", "--workload", "det", "--describe", NULL};
	const char *last;
	(void)state;
	assert_int_equal(tu_run_tool(help, out, sizeof out, err, sizeof err), 0);
	assert_non_null(strstr(out, "LOST-ACK"));
	assert_non_null(strstr(out, "SILENT-CORRUPT"));
	assert_non_null(strstr(out, "--replay SEED:INDEX:RESOLUTION"));
	assert_non_null(strstr(out, "--max-failures N"));
	assert_non_null(strstr(out, "--stop-on-violation"));
	assert_non_null(strstr(out, "--no-full-page-writes"));
	assert_non_null(strstr(out, "--inject SPEC"));
	assert_non_null(strstr(out, "eio-once:N"));
	assert_int_equal(tu_run_tool(eio, out, sizeof out, err, sizeof err), 2);
	assert_non_null(strstr(err, "--fault melt: expected kill, power, torn, eio, enospc"));
	assert_int_equal(tu_run_tool(bad, out, sizeof out, err, sizeof err), 2);
	assert_int_equal(tu_run_tool(trig, out, sizeof out, err, sizeof err), 2);
	assert_non_null(strstr(err, "--trigger needs --replay"));
	assert_int_equal(tu_run_tool(nofpw, out, sizeof out, err, sizeof err), 2);
	assert_non_null(strstr(err, "torn page is beyond repair"));
	assert_int_equal(tu_run_tool(run, out, sizeof out, err, sizeof err), 0);
	last = out + strlen(out) - 1;
	while (last > out && last[-1] != '\n')
		last--;
	assert_string_equal(last, "3 passed, 0 failed\n");
	assert_non_null(strstr(out, "crash points:"));
	assert_non_null(strstr(out, "recovery (wd_open): p50"));
	assert_int_equal(tu_run_tool(desc, out, sizeof out, err, sizeof err), 0);
	assert_non_null(strstr(out, "leaf splits"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict_ok_and_lost),
		cmocka_unit_test(test_verdict_in_flight),
		cmocka_unit_test(test_verdict_dirty),
		cmocka_unit_test(test_verdict_corrupt_and_recovery),
		cmocka_unit_test(test_verdict_async),
		cmocka_unit_test(test_verdict_malformed),
		cmocka_unit_test(test_verdict_invariant),
		cmocka_unit_test(test_det_describe),
		cmocka_unit_test(test_campaigns),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_prefix_matches_rerun),
		cmocka_unit_test(test_planted_faults),
		cmocka_unit_test(test_max_failures),
		cmocka_unit_test(test_keep_failures),
		cmocka_unit_test(test_job_death),
		cmocka_unit_test(test_chatty_child),
		cmocka_unit_test(test_materialise_failure),
		cmocka_unit_test(test_orphan_dies),
		cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
