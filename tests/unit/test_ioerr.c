/*
 * test_ioerr.c - I/O errors in crash-test states (crashtest/README.md,
 * section "I/O errors"):
 *  - the rules on constructed histories: a commit acknowledged though it
 *    was requested after a failed fsync, or after the engine reported its
 *    panic, is LOST-ACK (one requested before is judged by the power
 *    loss alone); under ENOSPC a panic, or no commit once space returned,
 *    is CHILD-ERROR;
 *  - the trigger syntax (eio-once:N, eio:N, enospc:N) and what a replay
 *    makes of it;
 *  - the I/O-error loop split into parts is the whole loop: each state in
 *    exactly one part, with the whole loop's index, trigger and
 *    resolution;
 *  - a planted fault (commits acknowledged before they are durable) makes
 *    eio campaigns fail with LOST-ACK only.
 *
 * The I/O-error loop (det with EIO once, EIO from then on and ENOSPC at
 * every I/O call k) runs in four parts, the suites test_ioerr_loop_1..4
 * (tests/lib/ioloop.h).
 *
 * Time (scratch in /dev/shm): 1.3 s in release, 4 s under
 * AddressSanitizer.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "crashtest/ct_internal.h"
#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"

/* ---- constructed histories ------------------------------------------------------ */

static void take(ct_history *h, uint8_t kind, ct_buf *b)
{
	assert_int_equal(ct_history_take(h, kind, b->p, b->len), 0);
	ct_buf_free(b);
}

/* REQ of txn id with one write of key k (no oracle: the rules read the
 * history only); flags: bit 0 synchronous, bit 1 wrote a row. */
static void req_flags(ct_history *h, uint64_t id, const char *k, uint8_t flags)
{
	uint8_t ck[CT_MAX_CKEY];
	size_t cl = ct_ckey("t", k, strlen(k), ck);
	ct_buf b = {0};
	ct_put_u64(&b, id);
	ct_put_u8(&b, flags);
	ct_put_u64(&b, 1000);
	ct_put_u32(&b, 1);
	ct_put_u16(&b, (uint16_t)cl);
	ct_put_bytes(&b, ck, cl);
	ct_put_u8(&b, 0);
	ct_put_u32(&b, 1);
	ct_put_u32(&b, 0);
	ct_put_u32(&b, 40);
	ct_put_u32(&b, 0);
	take(h, CT_M_REQ, &b);
}

/* REQ of a synchronous transaction that wrote. */
static void req(ct_history *h, uint64_t id, const char *k)
{
	req_flags(h, id, k, 1 | 2);
}

static void ack(ct_history *h, uint64_t id)
{
	ct_buf b = {0};
	ct_put_u64(&b, id);
	ct_put_u64(&b, 2000);
	take(h, CT_M_ACK, &b);
}

/* IOFAULT: the call that failed; wal: where (CT_WAL_*) */
static void iofault_on(ct_history *h, uint64_t io, st_op op, st_fault_kind kind, uint8_t wal)
{
	ct_buf b = {0};
	ct_put_u64(&b, io);
	ct_put_u8(&b, (uint8_t)op);
	ct_put_u8(&b, (uint8_t)kind);
	ct_put_u8(&b, wal);
	take(h, CT_M_IOFAULT, &b);
}

static void iofault(ct_history *h, uint64_t io, st_op op, st_fault_kind kind)
{
	iofault_on(h, io, op, kind, CT_WAL_SEGMENT);
}

static void panic_msg(ct_history *h)
{
	ct_buf b = {0};
	ct_put_str(&b, "wd_commit: the log panicked");
	take(h, CT_M_PANIC, &b);
}

static void ioend(ct_history *h, uint8_t flags, uint64_t commits)
{
	ct_buf b = {0};
	ct_put_u8(&b, flags);
	ct_put_u64(&b, commits);
	ct_put_str(&b, "");
	take(h, CT_M_IOEND, &b);
}

/* The rules' verdict on h for an error of kind err; *detail kept for
 * the caller to look at (freed by the next call). */
static ct_verdict judge(const ct_history *h, ct_ioerr err, char **detail)
{
	ct_spec s = {.fault = err == CT_IOERR_ENOSPC ? CT_ENOSPC : CT_EIO,
		     .trig = {.kind = CT_TRIG_IO, .n = 10, .err = err},
		     .res = CT_RES_DROP_ALL};
	ct_verdict v = CT_OK;
	free(*detail);
	*detail = NULL;
	ct_ioerr_judge(h, &s, &v, detail, 20);
	return v;
}

/* The verdict on a history of one EIO on op (where: CT_WAL_*), then one
 * synchronous transaction that wrote, requested and acknowledged. */
static ct_verdict ack_after_fault(st_op op, uint8_t where, ct_ioerr err, char **detail)
{
	ct_history h;
	ct_verdict v;
	ct_history_init(&h, NULL);
	iofault_on(&h, 10, op, ST_FAULT_EIO, where);
	req(&h, 4, "d");
	ack(&h, 4);
	v = judge(&h, err, detail);
	ct_history_free(&h);
	return v;
}

static void test_rule_failed_fsync(void **state)
{
	ct_history h;
	char *d = NULL;
	(void)state;
	/* acked before the fsync failed, one in flight across it: fine */
	ct_history_init(&h, NULL);
	req(&h, 1, "a");
	ack(&h, 1);
	req(&h, 2, "b");
	iofault(&h, 10, ST_OP_SYNC, ST_FAULT_EIO);
	ack(&h, 2); /* requested before: the power loss judges it */
	ioend(&h, CT_IOEND_PANICKED, 0);
	assert_int_equal(judge(&h, CT_IOERR_EIO_ONCE, &d), CT_OK);
	assert_non_null(strstr(d, "fired at I/O call 10 (sync)"));
	/* asynchronous or read-only, requested after the failed fsync and
	 * acknowledged before the panic: no flush passed, E2 and the power
	 * loss judge them */
	req_flags(&h, 7, "g", 2);
	ack(&h, 7);
	req_flags(&h, 8, "h", 1);
	ack(&h, 8);
	assert_int_equal(judge(&h, CT_IOERR_EIO_ONCE, &d), CT_OK);
	/* synchronous, requested after the failed fsync and acknowledged:
	 * LOST-ACK */
	req(&h, 3, "c");
	ack(&h, 3);
	assert_int_equal(judge(&h, CT_IOERR_EIO_ONCE, &d), CT_LOST_ACK);
	assert_non_null(strstr(d, "transaction 3 was acknowledged though an fsync of the log "
				  "had failed"));
	assert_null(strstr(d, "transaction 2 "));
	assert_null(strstr(d, "transaction 7 "));
	assert_null(strstr(d, "transaction 8 "));
	ct_history_free(&h);
	/* the fsyncs of a segment being prepared (segment.tmp) and of the WAL
	 * directory are no flush's: a commit that passed a flush meanwhile,
	 * before the log panicked, is judged by E2 and the power loss; a
	 * failed read is no fsync */
	assert_int_equal(ack_after_fault(ST_OP_SYNC, CT_WAL_OTHER, CT_IOERR_EIO, &d), CT_OK);
	assert_int_equal(ack_after_fault(ST_OP_SYNC_DIR, CT_WAL_OTHER, CT_IOERR_EIO, &d), CT_OK);
	assert_int_equal(ack_after_fault(ST_OP_READ, CT_WAL_SEGMENT, CT_IOERR_EIO_ONCE, &d),
			 CT_OK);
	/* a failed fsync of a data file panics the database a moment later:
	 * a commit in that moment is judged by the power loss (and E2) */
	ct_history_init(&h, NULL);
	iofault_on(&h, 10, ST_OP_SYNC, ST_FAULT_EIO, CT_WAL_NONE);
	req(&h, 5, "e");
	ack(&h, 5);
	assert_int_equal(judge(&h, CT_IOERR_EIO_ONCE, &d), CT_OK);
	panic_msg(&h);
	req(&h, 6, "f");
	ack(&h, 6);
	assert_int_equal(judge(&h, CT_IOERR_EIO_ONCE, &d), CT_LOST_ACK);
	assert_null(strstr(d, "transaction 5 "));
	ct_history_free(&h);
	free(d);
}

/* The place of a failed call, from its path. */
static void test_wal_class(void **state)
{
	(void)state;
	assert_int_equal(ct_wal_class("/d/db", "/d/db/wal/000000000000001A"), CT_WAL_SEGMENT);
	assert_int_equal(ct_wal_class("/d/db", "/d/db/wal/segment.tmp"), CT_WAL_OTHER);
	assert_int_equal(ct_wal_class("/d/db", "/d/db/wal"), CT_WAL_OTHER);
	assert_int_equal(ct_wal_class("/d/db", "/d/db/wal/000000000000001"), CT_WAL_OTHER);
	assert_int_equal(ct_wal_class("/d/db", "/d/db/wal/000000000000001G"), CT_WAL_OTHER);
	assert_int_equal(ct_wal_class("/d/db", "/d/db/base/16"), CT_WAL_NONE);
	assert_int_equal(ct_wal_class("/d/db", "/d/db/walnut"), CT_WAL_NONE);
	assert_int_equal(ct_wal_class("/d/db", "/d/db2/wal/000000000000001A"), CT_WAL_NONE);
}

static void test_rule_panic(void **state)
{
	ct_history h;
	char *d = NULL;
	(void)state;
	ct_history_init(&h, NULL);
	iofault(&h, 10, ST_OP_WRITE, ST_FAULT_EIO);
	req(&h, 1, "a");
	panic_msg(&h);
	ack(&h, 1); /* requested before the panic */
	assert_int_equal(judge(&h, CT_IOERR_EIO, &d), CT_OK);
	req(&h, 2, "b");
	ack(&h, 2);
	assert_int_equal(judge(&h, CT_IOERR_EIO, &d), CT_LOST_ACK);
	assert_non_null(strstr(d, "transaction 2 was acknowledged though the engine had "
				  "reported its panic"));
	ct_history_free(&h);
	/* E2 holds for asynchronous commits too */
	ct_history_init(&h, NULL);
	iofault(&h, 10, ST_OP_SYNC, ST_FAULT_EIO);
	panic_msg(&h);
	req_flags(&h, 3, "c", 2);
	ack(&h, 3);
	assert_int_equal(judge(&h, CT_IOERR_EIO, &d), CT_LOST_ACK);
	assert_non_null(strstr(d, "transaction 3 was acknowledged though the engine had "
				  "reported its panic"));
	ct_history_free(&h);
	free(d);
}

static void test_rule_enospc(void **state)
{
	ct_history h;
	char *d = NULL;
	(void)state;
	/* space back, three commits: OK */
	ct_history_init(&h, NULL);
	iofault(&h, 10, ST_OP_WRITE, ST_FAULT_ENOSPC);
	ioend(&h, CT_IOEND_FREED | CT_IOEND_RESUMED, 3);
	assert_int_equal(judge(&h, CT_IOERR_ENOSPC, &d), CT_OK);
	ct_history_free(&h);
	/* no commit once space returned */
	ct_history_init(&h, NULL);
	iofault(&h, 10, ST_OP_ALLOCATE, ST_FAULT_ENOSPC);
	ioend(&h, CT_IOEND_FREED, 1);
	assert_int_equal(judge(&h, CT_IOERR_ENOSPC, &d), CT_CHILD_ERROR);
	assert_non_null(strstr(d, "no commit once space returned"));
	ct_history_free(&h);
	/* the database's creation failed: the next open refuses it (O1) */
	ct_history_init(&h, NULL);
	iofault(&h, 10, ST_OP_ALLOCATE, ST_FAULT_ENOSPC);
	ioend(&h, CT_IOEND_FREED | CT_IOEND_UNCREATED, 0);
	assert_int_equal(judge(&h, CT_IOERR_ENOSPC, &d), CT_OK);
	assert_non_null(strstr(d, "creation failed"));
	ct_history_free(&h);
	/* a panic on ENOSPC */
	ct_history_init(&h, NULL);
	iofault(&h, 10, ST_OP_WRITE, ST_FAULT_ENOSPC);
	panic_msg(&h);
	ioend(&h, CT_IOEND_FREED | CT_IOEND_PANICKED, 0);
	assert_int_equal(judge(&h, CT_IOERR_ENOSPC, &d), CT_CHILD_ERROR);
	assert_non_null(strstr(d, "panicked on ENOSPC"));
	ct_history_free(&h);
	/* never fired: nothing to judge */
	ct_history_init(&h, NULL);
	assert_int_equal(judge(&h, CT_IOERR_ENOSPC, &d), CT_OK);
	assert_non_null(strstr(d, "never fired"));
	ct_history_free(&h);
	free(d);
}

/* ---- the trigger syntax ------------------------------------------------------------ */

static void test_trigger_syntax(void **state)
{
	static const char *const ok[] = {"eio-once:12", "eio:7", "enospc:3500", "io:4"};
	static const ct_ioerr want[] = {CT_IOERR_EIO_ONCE, CT_IOERR_EIO, CT_IOERR_ENOSPC,
					CT_IOERR_NONE};
	ct_trigger t;
	ct_spec s;
	bool has_seed;
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(ct_parse_trigger(ok[i], &t), 0);
		assert_int_equal(t.kind, CT_TRIG_IO);
		assert_int_equal(t.err, want[i]);
		/* the replay line's form of a state with that trigger */
		OK(ct_parse_replay("1:5:drop-all", &s, &has_seed));
		s.trig = t;
		ct_ioerr_fix_spec(&s);
		assert_int_equal(s.fault, want[i] == CT_IOERR_NONE ? CT_POWER
					  : want[i] == CT_IOERR_ENOSPC ? CT_ENOSPC : CT_EIO);
	}
	assert_int_equal(ct_parse_trigger("eio:0", &t), WD_EINVAL);
	assert_int_equal(ct_parse_trigger("enospc:", &t), WD_EINVAL);
	assert_int_equal(ct_parse_trigger("eio-twice:3", &t), WD_EINVAL);
	assert_string_equal(ct_fault_name(CT_EIO), "eio");
	assert_string_equal(ct_fault_name(CT_ENOSPC), "enospc");
	assert_string_equal(ct_ioerr_name(CT_IOERR_EIO_ONCE), "eio-once");
}

/* ---- the loop's parts ---------------------------------------------------------------- */

/* The I/O-error loop split into parts (one test suite each) is the whole
 * loop: every state of the whole loop comes up in exactly one part, with
 * the same index, trigger and resolution; and the parts' state counts add
 * up to the whole loop's. */
static void test_loop_parts(void **state)
{
	static const uint64_t calls[] = {1, 7, 100, 3482};
	static const uint64_t strides[] = {1, 3, 125};
	static const uint32_t parts[] = {2, 3, 4};
	ct_config c;
	ct_profile p = {0};
	(void)state;
	ct_config_default(&c);
	c.faults = (1u << CT_EIO) | (1u << CT_ENOSPC);
	for (size_t a = 0; a < 4; a++)
		for (size_t b = 0; b < 3; b++)
			for (size_t d = 0; d < 3; d++) {
				uint64_t whole, sum = 0;
				uint8_t *seen;
				c.choose_arg = strides[b];
				c.loop_parts = 0;
				whole = ct_ioerr_every_k_states(&c, calls[a]);
				assert_true(whole >= 3);
				seen = calloc(whole, 1);
				assert_non_null(seen);
				c.loop_parts = parts[d];
				for (uint32_t part = 0; part < parts[d]; part++) {
					uint64_t n;
					c.loop_part = part;
					n = ct_ioerr_every_k_states(&c, calls[a]);
					sum += n;
					for (uint64_t i = 0; i < n; i++) {
						ct_spec s, w;
						ct_ioerr_every_k(&c, &p, i, &s);
						assert_true(s.index < whole);
						assert_int_equal(seen[s.index], 0);
						seen[s.index] = 1;
						c.loop_parts = 0;
						ct_ioerr_every_k(&c, &p, s.index, &w);
						c.loop_parts = parts[d];
						assert_int_equal(s.trig.n, w.trig.n);
						assert_true(s.trig.n <= calls[a]);
						assert_int_equal(s.trig.err, w.trig.err);
						assert_int_equal(s.fault, w.fault);
						assert_int_equal(s.res, w.res);
						assert_int_equal(s.res_seed, w.res_seed);
					}
				}
				assert_int_equal(sum, whole);
				free(seen);
			}
}

/* ---- campaigns ---------------------------------------------------------------------- */

static ct_config config(unsigned faults, uint64_t states, char *dir)
{
	ct_config c;
	ct_config_default(&c);
	c.workload = "det";
	c.faults = faults;
	c.states = states;
	c.jobs = 2;
	c.work_dir = dir;
	c.seed = 1;
	return c;
}

/* Commits acknowledged before wd_commit (and made asynchronous): an eio
 * campaign must fail, with LOST-ACK only (acks after a failed fsync or
 * the panic, or lost by the power loss). */
static void test_planted_ack(void **state)
{
	char *dir = tu_tmpdir("ct-ioerr-planted");
	ct_config c = config(1u << CT_EIO, 12, dir);
	ct_summary s;
	(void)state;
	c.plant = CT_PLANT_ACK_UNDURABLE;
	OK(ct_campaign_run(&c, &s));
	print_message("planted early acks, eio: %llu of %llu states fail\n",
		      (unsigned long long)s.failed, (unsigned long long)s.states);
	assert_true(s.failed > 0);
	assert_int_equal(s.by_verdict[CT_LOST_ACK], s.failed);
	ct_summary_free(&s);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_failed_fsync),
		cmocka_unit_test(test_wal_class),
		cmocka_unit_test(test_rule_panic),
		cmocka_unit_test(test_rule_enospc),
		cmocka_unit_test(test_trigger_syntax),
		cmocka_unit_test(test_loop_parts),
		cmocka_unit_test(test_planted_ack),
	};
	/* the campaign's scratch in memory when there is a tmpfs */
	if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
