/*
 * test_waldump.c - `walden waldump` end to end: a database with a known log
 * is dumped with each option, and bad input (not a database, a segment of
 * another database, bad usage) gets a clear error and the right exit code.
 * Runs the binary named by WALDEN_BIN (set by the Makefile).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "recovery/control.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

static char *root, *db;

/* Output of one run of the tool. */
struct run {
	int status;
	char out[1 << 16], err[4096];
};

/* Runs the walden binary (WALDEN_BIN) with args, capturing its output. */
static void run_tool(struct run *r, const char *const *args)
{
	r->status = tu_run_tool(args, r->out, sizeof r->out, r->err, sizeof r->err);
}

static unsigned count_lines(const char *s, const char *needle)
{
	unsigned n = 0;
	for (const char *line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, needle, strlen(needle)) == 0)
			n++;
	return n;
}

/* A database whose log holds: 5 commits (xids 1..5), 3 no-ops of xid 2,
 * one no-op with a full-page image of block 7 of relation 1. */
static void make_db(const char *dir, control_data *cd)
{
	wal_rec_builder b = {0};
	uint8_t *rec, page[8192];
	uint32_t len;
	wal_opts o;
	wd_lsn lsn;
	wal *w;
	assert_int_equal(storage_mkdir(dir), 0);
	assert_int_equal(control_create(dir, 8192, cd), 0);
	tw_opts(&o);
	memcpy(o.db_id, cd->db_id, sizeof o.db_id);
	cd->wal_segment_size = o.segment_size;
	assert_int_equal(control_write(dir, cd), 0);
	assert_int_equal(wal_create(dir, &o, &w), 0);
	for (uint64_t xid = 1; xid <= 5; xid++) {
		if (xid == 2)
			for (uint64_t i = 0; i < 3; i++) {
				tw_record(&b, 2, i, 30, &rec, &len);
				assert_int_equal(wal_insert(w, rec, len, &lsn), 0);
			}
		/* the last commit as xact_log writes it: with the durable horizon */
		walrec_begin(&b, WAL_RMGR_XACT, XACT_COMMIT, xid, 0, 0,
			     xid == 5 ? WAL_REC_HORIZON : 0);
		if (xid == 5) {
			static const uint8_t horizon[WAL_HORIZON_SIZE];
			assert_int_equal(wal_flush_to(w, lsn), 0);
			assert_int_equal(walrec_set_main(&b, horizon, sizeof horizon), 0);
		}
		assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
		assert_int_equal(wal_insert(w, rec, len, &lsn), 0);
	}
	page_init(page, sizeof page, PAGE_KIND_HEAP, 0);
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 9, 0, 0, 0);
	assert_int_equal(walrec_add_block(&b, 1, 7, 0, page, sizeof page, false, NULL, 0), 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	assert_int_equal(wal_insert(w, rec, len, &lsn), 0);
	assert_int_equal(wal_flush_to(w, lsn), 0);
	assert_int_equal(wal_close(w), 0);
	walrec_free(&b);
}

static int setup(void **state)
{
	control_data cd;
	(void)state;
	root = tu_tmpdir("waldump");
	db = tu_path(root, "db");
	make_db(db, &cd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(root);
	free(root);
	free(db);
	return 0;
}

static void test_dump_every_record(void **state)
{
	struct run *r = malloc(sizeof *r);
	(void)state;
	run_tool(r, (const char *[]){"waldump", db, NULL});
	assert_int_equal(r->status, 0);
	assert_int_equal(count_lines(r->out, "lsn="), 9);
	assert_int_equal(count_lines(r->out, "end of WAL at "), 1);
	assert_non_null(strstr(r->out, "(clean end)"));
	assert_non_null(strstr(r->out, "XACT/XACT_COMMIT"));
	assert_non_null(strstr(r->out, "commit of xid 5"));
	/* the commit's durable horizon (wal/README.md R-I4) */
	assert_non_null(strstr(r->out, " durable="));
	assert_non_null(strstr(r->out, "log durable to "));
	free(r);
}

static void test_filters_and_stats(void **state)
{
	struct run *r = malloc(sizeof *r);
	(void)state;
	run_tool(r, (const char *[]){"waldump", "--xid", "2", db, NULL});
	assert_int_equal(r->status, 0);
	assert_int_equal(count_lines(r->out, "lsn="), 4);
	run_tool(r, (const char *[]){"waldump", "--rmgr", "XACT", db, NULL});
	assert_int_equal(r->status, 0);
	assert_int_equal(count_lines(r->out, "lsn="), 5);
	run_tool(r, (const char *[]){"waldump", "--stats", db, NULL});
	assert_int_equal(r->status, 0);
	assert_int_equal(count_lines(r->out, "lsn="), 0);
	assert_non_null(strstr(r->out, "XACT_COMMIT"));
	run_tool(r, (const char *[]){"waldump", "--fpi", "--xid", "9", db, NULL});
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "rel 1 blk 7"));
	assert_non_null(strstr(r->out, "image"));
	free(r);
}

static void test_not_a_database(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *nothing = tu_path(root, "nothing");
	(void)state;
	assert_int_equal(storage_mkdir(nothing), 0);
	run_tool(r, (const char *[]){"waldump", nothing, NULL});
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "not a walden database"));
	free(nothing);
	free(r);
}

/* A segment copied in from another database is an error naming it. */
static void test_foreign_segment(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *other = tu_path(root, "other"), from[4096], to[4096];
	control_data cd;
	(void)state;
	make_db(other, &cd);
	assert_int_equal(wal_seg_path(from, sizeof from, other, 0), 0);
	assert_int_equal(wal_seg_path(to, sizeof to, db, 0), 0);
	assert_int_equal(rename(from, to), 0);
	run_tool(r, (const char *[]){"waldump", db, NULL});
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->err, "another database"));
	assert_non_null(strstr(r->err, to));
	free(other);
	free(r);
}

static void test_usage_errors(void **state)
{
	struct run *r = malloc(sizeof *r);
	(void)state;
	run_tool(r, (const char *[]){"waldump", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"waldump", "--start", "nonsense", db, NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"waldump", "--help", NULL});
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "usage: walden waldump"));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dump_every_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
	};
	return cmocka_run_group_tests_name("waldump", tests, NULL, NULL);
}
