/*
 * test_tools.c - `walden check`, `walden dot` and `walden inspect --table /
 * --block` end to end: a database made through the public API (three
 * tables, values longer than a page, a 2-level index) is checked, drawn and
 * inspected; then copies of it are damaged on disk (a byte of a heap page,
 * a byte of an index page, two index items swapped under a valid checksum,
 * an orphan file) and check must exit 3 naming table, file, block and item.
 * `walden controldata`: every control-file field, --json, the state of a
 * database killed while open, and a damaged or missing control file.
 * `walden recover`: the report and --trace of a database killed with a
 * transaction open, --json, a clean database, a missing directory.
 * Runs the binary named by WALDEN_BIN (set by the Makefile).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "btree/btree.h"
#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "wal/wal.h"
#include "walden.h"

#define PS 8192u
#define NUSERS 3000   /* a 2-level index on 8 KiB pages */
#define NBLOBS 12     /* values of 10..21 KB: overflow chains */

static char *root, *pristine;
static wd_relid users_heap, users_index, blobs_heap;

struct run {
	int status;
	char out[1 << 18], err[8192];
};

/* Runs the walden binary (WALDEN_BIN) with args, capturing its output. */
static void run_tool(struct run *r, const char *const *args)
{
	r->status = tu_run_tool(args, r->out, sizeof r->out, r->err, sizeof r->err);
}

/* Lines of s starting with prefix. */
static unsigned count_lines(const char *s, const char *prefix)
{
	unsigned n = 0;
	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

/* Fails with both outputs shown unless needle is in hay. */
static void expect_in(const char *hay, const char *needle, const struct run *r)
{
	if (!strstr(hay, needle))
		fail_msg("expected \"%s\" in the output\n--- stdout:\n%s\n--- stderr:\n%s",
			 needle, r->out, r->err);
}

static wd_relid rel_of(wd_table *t, int which)
{
	const db_table_info *ti = db_table_info_of(t);
	return which == 0 ? ti->heap_rel : ti->index_rel;
}

/* users: NUSERS small tuples; blobs: NBLOBS long values; empty: none. */
static void make_db(const char *dir)
{
	static char big[10000 + NBLOBS * 1000];
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *users, *blobs, *empty;
	char k[32], v[64];
	wd_options_default(&o);
	o.page_size = PS;
	memset(big, 'B', sizeof big);
	assert_int_equal(wd_open(dir, &o, &db), 0);
	assert_int_equal(wd_begin(db, &x), 0);
	assert_int_equal(wd_table_open(x, "users", WD_CREATE, &users), 0);
	assert_int_equal(wd_table_open(x, "blobs", WD_CREATE, &blobs), 0);
	assert_int_equal(wd_table_open(x, "empty", WD_CREATE, &empty), 0);
	for (int i = 0; i < NUSERS; i++) {
		int kl = snprintf(k, sizeof k, "user%06d", i);
		int vl = snprintf(v, sizeof v, "value of user %d", i);
		assert_int_equal(wd_put(x, users, k, (size_t)kl, v, (size_t)vl), 0);
	}
	for (int i = 0; i < NBLOBS; i++) {
		int kl = snprintf(k, sizeof k, "blob%02d", i);
		assert_int_equal(wd_put(x, blobs, k, (size_t)kl, big, 10000 + (size_t)i * 1000), 0);
	}
	users_heap = rel_of(users, 0);
	users_index = rel_of(users, 1);
	blobs_heap = rel_of(blobs, 0);
	assert_int_equal(wd_commit(x), 0);
	assert_int_equal(wd_close(db), 0);
}

static int setup(void **state)
{
	(void)state;
	root = tu_tmpdir("tools");
	pristine = tu_path(root, "pristine");
	make_db(pristine);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(root);
	free(root);
	free(pristine);
	return 0;
}

/* A fresh copy of the pristine database, to be damaged. */
static char *copy_db(const char *name)
{
	char cmd[8192];
	char *dir = tu_path(root, name);
	tu_rmrf(dir);
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", pristine, dir);
	assert_int_equal(system(cmd), 0);
	return dir;
}

static char *rel_path(const char *dir, wd_relid rel)
{
	char name[64];
	snprintf(name, sizeof name, "base/%u", rel);
	return tu_path(dir, name);
}

static void read_block(const char *path, wd_blkno blk, uint8_t *p)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, p, PS, (off_t)blk * PS), (ssize_t)PS);
	close(fd);
}

static void write_block(const char *path, wd_blkno blk, const uint8_t *p)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, PS, (off_t)blk * PS), (ssize_t)PS);
	close(fd);
}

/* The first block of the index whose page is a leaf with > 10 items. */
static wd_blkno find_leaf(const char *idx, uint8_t *p)
{
	for (wd_blkno b = 1; b < 64; b++) {
		btree_page_view v;
		read_block(idx, b, p);
		if (btree_page_view_decode(p, PS, &v) == 0 && (v.flags & BTREE_PAGE_LEAF) &&
		    v.nitems > 10)
			return b;
	}
	fail_msg("no leaf in %s", idx);
	return 0;
}

/* ---- sound database ---- */

static void test_check_ok(void **state)
{
	struct run *r = malloc(sizeof *r);
	(void)state;
	run_tool(r, (const char *[]){"check", pristine, NULL});
	if (r->status != 0)
		fail_msg("check exit %d\n%s\n%s", r->status, r->out, r->err);
	/* one ok line per table, the catalog's too */
	assert_int_equal(count_lines(r->out, "users: 3000 tuples, index height 2 ("), 1);
	assert_int_equal(count_lines(r->out, "blobs: 12 tuples, index height 1 ("), 1);
	assert_int_equal(count_lines(r->out, "empty: 0 tuples, index height 1 ("), 1);
	assert_int_equal(count_lines(r->out, "(catalog): 3 tables"), 1);
	expect_in(r->out, "pages), ok\n", r);
	expect_in(r->out, "0 problems, ok", r);

	run_tool(r, (const char *[]){"check", pristine, "--table", "users", "--json", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "\"ok\": true", r);
	expect_in(r->out, "\"name\": \"users\"", r);
	expect_in(r->out, "\"tuples\": 3000", r);
	assert_null(strstr(r->out, "blobs"));
	free(r);
}

static void test_dot(void **state)
{
	struct run *r = malloc(sizeof *r);
	(void)state;
	run_tool(r, (const char *[]){"dot", pristine, "--table", "users", NULL});
	assert_int_equal(r->status, 0);
	assert_int_equal(strncmp(r->out, "digraph", 7), 0);
	expect_in(r->out, "leaf chain", r);
	expect_in(r->out, "style=dashed", r);
	expect_in(r->out, "rank=same", r);
	expect_in(r->out, "L1", r);          /* the internal root */
	expect_in(r->out, "-inf", r);
	expect_in(r->out, "user000000", r);  /* a whole short key */
	expect_in(r->out, "more...", r);     /* long pages shortened */
	assert_true(r->out[strlen(r->out) - 2] == '}');
	run_tool(r, (const char *[]){"dot", pristine, "--table", "nope", NULL});
	assert_int_equal(r->status, 1);
	expect_in(r->err, "no table 'nope'", r);
	run_tool(r, (const char *[]){"dot", pristine, NULL});
	assert_int_equal(r->status, 2);
	free(r);
}

static void test_inspect(void **state)
{
	struct run *r = malloc(sizeof *r);
	uint8_t *p = malloc(PS);
	char *idx = rel_path(pristine, users_index), blk[16];
	(void)state;
	run_tool(r, (const char *[]){"inspect", pristine, "--table", "users", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "table users", r);
	expect_in(r->out, "3000 tuples", r);
	expect_in(r->out, "height 2", r);
	expect_in(r->out, "3000 items", r);
	expect_in(r->out, "fsm ", r);

	run_tool(r, (const char *[]){"inspect", pristine, "--table", "blobs", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "12 tuples (12 with overflowed values)", r);

	/* a heap page: tuples with flags, keys, value lengths */
	run_tool(r, (const char *[]){"inspect", pristine, "--table", "users", "--block", "0", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "heap page", r);
	expect_in(r->out, "slot    0", r);
	expect_in(r->out, "flags 0x00  value 15 bytes inline  key[10] 75736572303030303030 "
		  "\"user000000\"", r);

	/* the blobs heap: a tuple pointing at its chain, and an overflow page */
	run_tool(r, (const char *[]){"inspect", pristine, "--table", "blobs", "--heap",
				     "--block", "1", NULL});
	assert_int_equal(r->status, 0);
	assert_true(strstr(r->out, "overflow -> blk") || strstr(r->out, "chunk "));

	/* an index leaf and the metapage */
	snprintf(blk, sizeof blk, "%u", find_leaf(idx, p));
	run_tool(r, (const char *[]){"inspect", pristine, "--table", "users", "--index",
				     "--block", blk, NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "btree page level 0 (leaf)", r);
	expect_in(r->out, "item    0  tid (", r);
	expect_in(r->out, "key[10] 7573657230", r);
	run_tool(r, (const char *[]){"inspect", pristine, "--table", "users", "--index",
				     "--block", "0", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "metapage   B+tree, magic 0x54424457, version 1", r);
	expect_in(r->out, "(height 2)", r);

	/* the FSM, and the raw --rel form */
	run_tool(r, (const char *[]){"inspect", pristine, "--table", "users", "--fsm",
				     "--block", "0", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "fsm page   entries for heap blocks 0..", r);
	snprintf(blk, sizeof blk, "%u", users_heap);
	run_tool(r, (const char *[]){"inspect", pristine, "--rel", blk, "--block", "0", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "\"user000000\"", r);

	run_tool(r, (const char *[]){"inspect", pristine, "--table", "nope", NULL});
	assert_int_equal(r->status, 1);
	run_tool(r, (const char *[]){"inspect", pristine, "--index", "--block", "0", NULL});
	assert_int_equal(r->status, 2);
	free(idx);
	free(p);
	free(r);
}

/* ---- damage ---- */

static void test_heap_byte_flipped(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = copy_db("heapflip"), *hp = rel_path(dir, users_heap), want[128];
	uint8_t *p = malloc(PS);
	(void)state;
	read_block(hp, 1, p);
	p[PS / 2] ^= 0x40;
	write_block(hp, 1, p);
	run_tool(r, (const char *[]){"check", dir, NULL});
	assert_int_equal(r->status, 3);
	snprintf(want, sizeof want, "users: heap base/%u block 1: checksum mismatch", users_heap);
	expect_in(r->out, want, r);
	expect_in(r->out, "users: 1 damaged page", r);
	/* the other tables are still checked and sound */
	assert_int_equal(count_lines(r->out, "blobs: 12 tuples"), 1);
	run_tool(r, (const char *[]){"check", dir, "--json", NULL});
	assert_int_equal(r->status, 3);
	expect_in(r->out, "\"table\": \"users\", \"relation\": \"heap\"", r);
	expect_in(r->out, "\"block\": 1", r);
	/* inspect shows the page decoded anyway, marked */
	run_tool(r, (const char *[]){"inspect", dir, "--table", "users", "--block", "1", NULL});
	assert_int_equal(r->status, 3);
	expect_in(r->out, "MISMATCH", r);
	tu_rmrf(dir);
	free(dir);
	free(hp);
	free(p);
	free(r);
}

static void test_index_byte_flipped(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = copy_db("indexflip"), *idx = rel_path(dir, users_index), want[128];
	uint8_t *p = malloc(PS);
	wd_blkno leaf;
	(void)state;
	leaf = find_leaf(idx, p);
	p[PS - 100] ^= 0x01;
	write_block(idx, leaf, p);
	run_tool(r, (const char *[]){"check", dir, NULL});
	assert_int_equal(r->status, 3);
	snprintf(want, sizeof want, "users: index base/%u block %u: checksum mismatch",
		 users_index, leaf);
	expect_in(r->out, want, r);
	tu_rmrf(dir);
	free(dir);
	free(idx);
	free(p);
	free(r);
}

/* Two items of a leaf swapped, the checksum made right: only the B+tree
 * check can see it. */
static void test_key_order_violation(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = copy_db("swapped"), *idx = rel_path(dir, users_index), want[160];
	uint8_t *p = malloc(PS), lp[PAGE_LP_SIZE];
	uint8_t *a = NULL, *b = NULL;
	wd_blkno leaf;
	(void)state;
	leaf = find_leaf(idx, p);
	a = p + PAGE_HEADER_SIZE + 5 * PAGE_LP_SIZE;
	b = p + PAGE_HEADER_SIZE + 6 * PAGE_LP_SIZE;
	memcpy(lp, a, sizeof lp);
	memcpy(a, b, sizeof lp);
	memcpy(b, lp, sizeof lp);
	page_checksum_set(p, PS, leaf);
	write_block(idx, leaf, p);
	run_tool(r, (const char *[]){"check", dir, NULL});
	assert_int_equal(r->status, 3);
	snprintf(want, sizeof want, "users: index base/%u block %u item 6: key not greater "
		 "than the one before", users_index, leaf);
	expect_in(r->out, want, r);
	expect_in(r->out, "users: 3000 tuples, index height 2", r);
	expect_in(r->out, "DAMAGED", r);
	run_tool(r, (const char *[]){"check", dir, "--json", NULL});
	assert_int_equal(r->status, 3);
	expect_in(r->out, "\"item\": 6", r);
	tu_rmrf(dir);
	free(dir);
	free(idx);
	free(p);
	free(r);
}

/* A heap tuple whose header lengths do not add up, with a valid checksum:
 * the page decoders catch it before any engine code reads it. */
static void test_bad_tuple(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = copy_db("badtuple"), *hp = rel_path(dir, users_heap), want[160];
	uint8_t *p = malloc(PS), *it;
	uint32_t len;
	(void)state;
	read_block(hp, 0, p);
	it = page_item(p, 3, &len);
	assert_non_null(it);
	put_le16(it + 2, 500); /* klen */
	page_checksum_set(p, PS, 0);
	write_block(hp, 0, p);
	run_tool(r, (const char *[]){"check", dir, NULL});
	assert_int_equal(r->status, 3);
	snprintf(want, sizeof want, "users: heap base/%u block 0 item 3: slot 3: tuple of",
		 users_heap);
	expect_in(r->out, want, r);
	tu_rmrf(dir);
	free(dir);
	free(hp);
	free(p);
	free(r);
}

static void test_orphan_file(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = copy_db("orphan"), *hp = rel_path(dir, blobs_heap), cmd[8192];
	(void)state;
	snprintf(cmd, sizeof cmd, "cp '%s' '%s/base/999'", hp, dir);
	assert_int_equal(system(cmd), 0);
	run_tool(r, (const char *[]){"check", dir, NULL});
	assert_int_equal(r->status, 3);
	expect_in(r->out, "orphan base/999: orphan file: no catalog entry names it", r);
	tu_rmrf(dir);
	free(dir);
	free(hp);
	free(r);
}

/* ---- walden controldata ---- */

/* A new database of one committed row, closed cleanly (state shut down). */
static char *fresh_db(const char *name)
{
	char *dir = tu_path(root, name);
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	tu_rmrf(dir);
	wd_options_default(&o);
	o.page_size = PS;
	assert_int_equal(wd_open(dir, &o, &db), 0);
	assert_int_equal(wd_begin(db, &x), 0);
	assert_int_equal(wd_table_open(x, "t", WD_CREATE, &t), 0);
	assert_int_equal(wd_put(x, t, "k", 1, "v", 1), 0);
	assert_int_equal(wd_commit(x), 0);
	assert_int_equal(wd_close(db), 0);
	return dir;
}

/* In a child: opens the database, commits a row and dies without closing. */
static void open_and_die(void *arg)
{
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	if (wd_open(arg, NULL, &db) != 0 || wd_begin(db, &x) != 0 ||
	    wd_table_open(x, "t", 0, &t) != 0 || wd_put(x, t, "k2", 2, "v", 1) != 0 ||
	    wd_commit(x) != 0)
		_exit(1);
	raise(SIGKILL);
	_exit(2); /* not reached */
}

/* Expects line "<label>:<padding><value>" in the list output. */
static void expect_field(const struct run *r, const char *label, const char *value)
{
	char want[256];
	snprintf(want, sizeof want, "%s:%*s%s\n", label, (int)(25 - strlen(label)), "", value);
	expect_in(r->out, want, r);
}

/*
 * walden controldata: every field of a cleanly closed database as the
 * engine reads it (control_read), the raw state, the CRC and the file's
 * mtime; the same as --json; a database killed while open is "in
 * production"; help.
 */
static void test_controldata(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = fresh_db("cd-fresh"), *cf = tu_path(dir, "control");
	char v[128], id[33];
	control_data cd;
	struct stat st;
	(void)state;
	assert_int_equal(control_read(dir, &cd), 0);
	control_format_id(cd.db_id, id);
	assert_int_equal(stat(cf, &st), 0);
	run_tool(r, (const char *[]){"controldata", dir, NULL});
	assert_int_equal(r->status, 0);
	expect_field(r, "control file", cf);
	expect_field(r, "format version", "1");
	expect_field(r, "database id", id);
	expect_field(r, "page size", "8192");
	snprintf(v, sizeof v, "%u", cd.wal_segment_size);
	expect_field(r, "WAL segment size", v);
	expect_field(r, "state", "shut down (0)");
	snprintf(v, sizeof v, LSN_FMT, LSN_ARGS(cd.checkpoint_lsn));
	expect_field(r, "latest checkpoint LSN", v);
	snprintf(v, sizeof v, LSN_FMT, LSN_ARGS(cd.redo_lsn));
	expect_field(r, "redo LSN", v);
	assert_true(cd.redo_lsn > 0);
	snprintf(v, sizeof v, "%" PRIu64, cd.next_xid);
	expect_field(r, "next transaction id", v);
	snprintf(v, sizeof v, "%u", cd.next_relid);
	expect_field(r, "next relation id", v);
	expect_field(r, "flags", "0x0");
	snprintf(v, sizeof v, "(%" PRIu64 ")\n", cd.update_time);
	expect_in(r->out, v, r);
	expect_in(r->out, "CRC:                      ok (0x", r);
	snprintf(v, sizeof v, "UTC (%lld)\n", (long long)st.st_mtime);
	expect_in(r->out, "file modified:", r);
	expect_in(r->out, v, r);

	/* --json: one object with the same values */
	run_tool(r, (const char *[]){"controldata", "--json", dir, NULL});
	assert_int_equal(r->status, 0);
	assert_int_equal(r->out[0], '{');
	assert_non_null(strstr(r->out, "}\n"));
	assert_int_equal(strlen(strstr(r->out, "}\n")), 2); /* ends there */
	unsigned quotes = 0;
	for (const char *p = r->out; *p; p++)
		quotes += *p == '"' && p[-1] != '\\';
	assert_int_equal(quotes % 2, 0);
	expect_in(r->out, "\"state\": \"shut down\"", r);
	expect_in(r->out, "\"state_value\": 0", r);
	expect_in(r->out, "\"page_size\": 8192", r);
	snprintf(v, sizeof v, "\"database_id\": \"%s\"", id);
	expect_in(r->out, v, r);
	snprintf(v, sizeof v, "\"redo_lsn\": \"" LSN_FMT "\"", LSN_ARGS(cd.redo_lsn));
	expect_in(r->out, v, r);
	snprintf(v, sizeof v, "\"next_xid\": %" PRIu64, cd.next_xid);
	expect_in(r->out, v, r);
	expect_in(r->out, "\"crc_ok\": true", r);
	expect_in(r->out, "\"flags\": 0, \"needs_repair\": false", r);

	/* killed while open: in production, and the tool changed nothing */
	assert_int_equal(tu_run_child(open_and_die, dir), 128 + SIGKILL);
	run_tool(r, (const char *[]){"controldata", dir, NULL});
	assert_int_equal(r->status, 0);
	expect_field(r, "state", "in production (1)");
	run_tool(r, (const char *[]){"controldata", "-j", dir, NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "\"state\": \"in production\", \"state_value\": 1", r);
	assert_int_equal(control_read(dir, &cd), 0);
	assert_int_equal(cd.state, 1);

	/* help */
	run_tool(r, (const char *[]){"help", "controldata", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "usage: walden controldata", r);
	run_tool(r, (const char *[]){"controldata", "--help", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "usage: walden controldata", r);
	run_tool(r, (const char *[]){"--help", NULL});
	expect_in(r->out, "  controldata print every field of the control file", r);
	run_tool(r, (const char *[]){"controldata", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"controldata", dir, "extra", NULL});
	assert_int_equal(r->status, 2);
	free(cf);
	free(dir);
	free(r);
}

/* A flipped byte of the control file, no control file, no directory: a
 * message naming the file and the reason, exit 2, nothing on stdout. */
static void test_controldata_errors(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = fresh_db("cd-damaged"), *cf = tu_path(dir, "control");
	char *gone = tu_path(root, "cd-no-such-dir"), *gone_cf = tu_path(gone, "control");
	char *empty = tu_path(root, "cd-empty"), *empty_cf = tu_path(empty, "control");
	char want[4200];
	uint8_t b;
	(void)state;
	FILE *f = fopen(cf, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 60, SEEK_SET), 0); /* inside next_xid */
	assert_int_equal(fread(&b, 1, 1, f), 1);
	b ^= 0x10;
	assert_int_equal(fseek(f, 60, SEEK_SET), 0);
	assert_int_equal(fwrite(&b, 1, 1, f), 1);
	assert_int_equal(fclose(f), 0);
	run_tool(r, (const char *[]){"controldata", dir, NULL});
	assert_int_equal(r->status, 3); /* EXIT_DAMAGE, as inspect */
	snprintf(want, sizeof want, "walden controldata: damaged control file: %s: control "
		 "file CRC mismatch (stored 0x", cf);
	expect_in(r->err, want, r);
	assert_int_equal(r->out[0], '\0');
	run_tool(r, (const char *[]){"controldata", "--json", dir, NULL});
	assert_int_equal(r->status, 3);
	expect_in(r->err, "CRC mismatch", r);
	assert_int_equal(r->out[0], '\0');

	run_tool(r, (const char *[]){"controldata", gone, NULL});
	assert_int_equal(r->status, 1); /* EXIT_ERROR: not a database */
	snprintf(want, sizeof want, "%s: missing: the directory %s does not exist", gone_cf,
		 gone);
	expect_in(r->err, want, r);

	assert_int_equal(mkdir(empty, 0755), 0);
	run_tool(r, (const char *[]){"controldata", empty, NULL});
	assert_int_equal(r->status, 1);
	snprintf(want, sizeof want, "%s: missing: %s is not a walden database", empty_cf, empty);
	expect_in(r->err, want, r);
	assert_false(access(empty_cf, F_OK) == 0); /* created nothing */
	free(empty_cf);
	free(empty);
	free(gone_cf);
	free(gone);
	free(cf);
	free(dir);
	free(r);
}

/* ---- walden recover ---- */

#define REC_CHANGES 5 /* the loser's changes: 3 inserts, an update, a delete */

/* In a child: commits rows, then leaves a transaction of REC_CHANGES
 * changes open, makes the whole log durable and dies (the loser). */
static void loser_and_die(void *arg)
{
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	char k[16];
	int fail = wd_open(arg, NULL, &db) || wd_begin(db, &x) || wd_table_open(x, "t", 0, &t);
	for (int i = 0; !fail && i < 20; i++)
		fail = wd_put(x, t, k, (size_t)snprintf(k, sizeof k, "c%02d", i), "v", 1);
	if (fail || wd_commit(x) || wd_begin(db, &x) || wd_table_open(x, "t", 0, &t))
		_exit(1);
	for (int i = 0; !fail && i < 3; i++)
		fail = wd_put(x, t, k, (size_t)snprintf(k, sizeof k, "new%d", i), "n", 1);
	if (fail || wd_put(x, t, "k", 1, "changed", 7) || wd_del(x, t, "c05", 3) ||
	    wal_flush_to(db_wal(db), wal_insert_pos(db_wal(db))))
		_exit(1);
	_exit(0); /* no close, no abort: the transaction is a loser */
}

/* A database killed with a transaction open (fresh_db's table t). */
static char *crashed_db(const char *name)
{
	char *dir = fresh_db(name);
	assert_int_equal(tu_run_child(loser_and_die, dir), 0);
	return dir;
}

/*
 * walden recover after a crash: recovery ran, one loser rolled back with
 * one undo step per change, records scanned; the database then checks
 * clean and a second recover finds nothing to do.
 */
static void test_recover_report(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = crashed_db("rec-report"), want[128];
	(void)state;
	run_tool(r, (const char *[]){"recover", dir, NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "recovery ran (control file state: in production)", r);
	expect_in(r->out, "  losers rolled back:           1\n", r);
	snprintf(want, sizeof want, "  undo steps (CLRs written):    %d\n", REC_CHANGES);
	expect_in(r->out, want, r);
	expect_in(r->out, "  records scanned:              ", r);
	assert_null(strstr(r->out, "  records scanned:              0\n"));
	expect_in(r->out, "end of WAL:", r);
	/* the passes, each timed, with the dirty page table and its skips */
	expect_in(r->out, "\nanalysis                        ", r);
	expect_in(r->out, "\nredo                            ", r);
	expect_in(r->out, "  dirty page table:             ", r);
	assert_null(strstr(r->out, "  dirty page table:             0 pages\n"));
	expect_in(r->out, "  skipped, not in the table:    ", r);
	expect_in(r->out, "  skipped, before recLSN:       ", r);
	expect_in(r->out, "  torn pages rebuilt:           0\n", r);
	expect_in(r->out, "\nend-of-recovery checkpoint      ", r);
	assert_null(strstr(r->out, "  checkpoint:                   0/0 "));
	run_tool(r, (const char *[]){"check", dir, NULL});
	if (r->status != 0)
		fail_msg("check after recover: %d\n%s\n%s", r->status, r->out, r->err);
	run_tool(r, (const char *[]){"recover", dir, NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "no recovery needed (shut down cleanly)", r);
	free(dir);
	free(r);
}

/* --trace: the section headers, a redo line applied, the loser's undo
 * steps and its ABORT, in that order; --json of another crash. */
static void test_recover_trace_json(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *dir = crashed_db("rec-trace"), *dir2 = crashed_db("rec-json");
	char want[64];
	const char *undo, *redo, *p;
	unsigned long long xid = 0;
	(void)state;
	run_tool(r, (const char *[]){"recover", "--trace", dir, NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "== analysis ==", r);
	expect_in(r->out, "== tables after analysis ==", r);
	expect_in(r->out, "== redo ==", r);
	expect_in(r->out, "== repair ==", r);
	expect_in(r->out, "  key 'c05' of table ", r); /* the loser's last change */
	expect_in(r->out, "== undo ==", r);
	expect_in(r->out, "== end-of-recovery checkpoint ==", r);
	expect_in(r->out, "== report ==", r);
	expect_in(r->out, "  keys checked (in flight):     1\n", r);
	expect_in(r->out, "  tables repaired in full:      0\n", r);
	expect_in(r->out, "recovery ran", r);
	expect_in(r->out, " applied\n", r);
	redo = strstr(r->out, "== redo ==");
	undo = strstr(r->out, "== undo ==");
	assert_true(strstr(r->out, "== analysis ==") < strstr(r->out, "== tables after analysis"));
	assert_true(strstr(r->out, "== tables after analysis") < redo);
	assert_true(redo < strstr(r->out, "== repair =="));
	assert_true(strstr(r->out, "== repair ==") < undo);
	assert_true(undo < strstr(r->out, "== end-of-recovery checkpoint =="));
	/* the dirty page table, sorted, one entry a line */
	expect_in(r->out, "  dirty page table: ", r);
	expect_in(r->out, "    rel/blk        recLSN\n", r);
	expect_in(strstr(r->out, "== end-of-recovery checkpoint =="), "control file: in production",
		  r);
	assert_non_null(p = strstr(r->out, "  loser xid="));
	assert_int_equal(sscanf(p, "  loser xid=%llu", &xid), 1);
	snprintf(want, sizeof want, "  undo xid=%-6llu record ", xid);
	assert_true(strstr(r->out, want) > undo);
	assert_int_equal(count_lines(undo, want), REC_CHANGES);
	assert_int_equal(count_lines(undo, "    CLR "), REC_CHANGES);
	snprintf(want, sizeof want, "  loser xid=%llu: XACT_ABORT at ", xid);
	expect_in(undo, want, r);

	run_tool(r, (const char *[]){"recover", "--json", dir2, NULL});
	assert_int_equal(r->status, 0);
	assert_int_equal(r->out[0], '{');
	assert_int_equal(strlen(strstr(r->out, "}\n")), 2);
	expect_in(r->out, "\"recovered\": true", r);
	expect_in(r->out, "\"control_state\": \"in production\"", r);
	expect_in(r->out, "\"losers_rolled_back\": 1,", r);
	/* the loser's last change (a del, complete): its key alone checked */
	expect_in(r->out, "\"keys_checked\": 1,", r);
	expect_in(r->out, "\"tables_repaired\": 0,", r);
	snprintf(want, sizeof want, "\"undo_steps\": %d,", REC_CHANGES);
	expect_in(r->out, want, r);
	assert_null(strstr(r->out, "\"records_scanned\": 0,"));
	assert_null(strstr(r->out, "\"dpt_pages\": 0,"));
	assert_null(strstr(r->out, "\"end_checkpoint_lsn\": \"0/0\""));
	expect_in(r->out, "\"skipped_not_in_dpt\": ", r);
	expect_in(r->out, "\"skipped_before_reclsn\": ", r);
	expect_in(r->out, "\"redo_start\": \"", r);
	expect_in(r->out, "\"analysis_ms\": ", r);
	expect_in(r->out, "\"redo_ms\": ", r);
	expect_in(r->out, "\"checkpoint_ms\": ", r);
	run_tool(r, (const char *[]){"recover", "-j", dir2, NULL});
	expect_in(r->out, "\"recovered\": false", r);
	free(dir2);
	free(dir);
	free(r);
}

/* A missing directory and one that is not a database: exit 1, a clear
 * message, nothing created; usage and help. */
static void test_recover_errors(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *gone = tu_path(root, "rec-no-such-dir"), *empty = tu_path(root, "rec-empty");
	char *empty_cf = tu_path(empty, "control");
	struct stat st;
	(void)state;
	run_tool(r, (const char *[]){"recover", gone, NULL});
	assert_int_equal(r->status, 1);
	expect_in(r->err, "not a walden database", r);
	assert_int_not_equal(stat(gone, &st), 0); /* not created */
	assert_int_equal(mkdir(empty, 0755), 0);
	run_tool(r, (const char *[]){"recover", "--trace", empty, NULL});
	assert_int_equal(r->status, 1);
	expect_in(r->err, "not a walden database", r);
	assert_false(access(empty_cf, F_OK) == 0);
	run_tool(r, (const char *[]){"recover", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"recover", "--help", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "usage: walden recover", r);
	run_tool(r, (const char *[]){"help", "recover", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "usage: walden recover", r);
	free(empty_cf);
	free(empty);
	free(gone);
	free(r);
}

/* ---- errors and usage ---- */

static void test_errors(void **state)
{
	struct run *r = malloc(sizeof *r);
	char *empty = tu_path(root, "notadb"), *flag;
	wd_db *db;
	(void)state;
	assert_int_equal(mkdir(empty, 0755), 0);
	run_tool(r, (const char *[]){"check", empty, NULL});
	assert_int_equal(r->status, 1);
	expect_in(r->err, "not a walden database", r);
	flag = tu_path(empty, "control");
	assert_false(access(flag, F_OK) == 0); /* check created nothing */
	run_tool(r, (const char *[]){"dot", empty, "--table", "users", NULL});
	assert_int_equal(r->status, 1);

	/* in use by another process (this one) */
	assert_int_equal(wd_open(pristine, NULL, &db), 0);
	run_tool(r, (const char *[]){"check", pristine, NULL});
	assert_int_equal(r->status, 1);
	expect_in(r->err, "in use", r);
	assert_int_equal(wd_close(db), 0);

	run_tool(r, (const char *[]){"check", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"check", pristine, "extra", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"check", pristine, "--bogus", NULL});
	assert_int_equal(r->status, 2);
	run_tool(r, (const char *[]){"check", "--help", NULL});
	assert_int_equal(r->status, 0);
	expect_in(r->out, "usage: walden check", r);
	run_tool(r, (const char *[]){"dot", "--help", NULL});
	assert_int_equal(r->status, 0);
	run_tool(r, (const char *[]){"check", pristine, "--table", "nope", NULL});
	assert_int_equal(r->status, 1);
	run_tool(r, (const char *[]){"--help", NULL});
	expect_in(r->out, "check", r);
	expect_in(r->out, "dot ", r);
	free(flag);
	free(empty);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_ok),
		cmocka_unit_test(test_dot),
		cmocka_unit_test(test_inspect),
		cmocka_unit_test(test_heap_byte_flipped),
		cmocka_unit_test(test_index_byte_flipped),
		cmocka_unit_test(test_key_order_violation),
		cmocka_unit_test(test_bad_tuple),
		cmocka_unit_test(test_orphan_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_controldata),
		cmocka_unit_test(test_controldata_errors),
		cmocka_unit_test(test_recover_report),
		cmocka_unit_test(test_recover_trace_json),
		cmocka_unit_test(test_recover_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
