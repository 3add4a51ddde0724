/*
 * test_txn_faults.c - transactions at their failures (txn/README.md I14,
 * P4/P5 with P16, P8 step 1a, P14, undo/undo.h's value limit): each test
 * fails on the behaviour before a fix a review asked for:
 *  - a loser table drop and a loser table create (the crash point
 *    txn-ddl-before-commit, with the catalog change made durable by a WAL
 *    flush first, as another thread's group commit would) are taken back
 *    whole by the next open, including a loser's changes to the table the
 *    loser drop had removed; a create whose commit fails in the log's
 *    fdatasync keeps its files (the entry may be durable);
 *  - a panic stops the log: waiters granted their lock after the panic get
 *    WD_EPANIC and neither read nor write, nothing more reaches the log,
 *    the undo pages of the transactions it ended stay off the free list,
 *    the next open rolls everything back;
 *  - a wd_rollback_to that fails midway leaves the transaction able only
 *    to end, and its end takes everything back;
 *  - values over 64 MiB can be overwritten, rolled back and deleted;
 *  - cursors waiting for a row lock hold no buffer pin, so the rollback
 *    they wait for gets buffers from a small pool.
 *
 * Linked with -Wl,--wrap=storage_crash_point (Makefile): every crash point
 * comes to __wrap_storage_crash_point first, which acts on
 * txn-ddl-before-commit in a crash child and passes every other point to
 * the real one.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/testutil.h"
#include "txn/db.h"
#include "txn/txn_internal.h" /* db->undo: its free list, for test 3 */
#include "undo/undo.h"
#include "wal/format.h"
#include "wal/wal.h"
#include "walden.h"

#define PS 4096u

static wd_db *open_opts(const char *dir, const wd_options *o)
{
	wd_db *db = NULL;
	OK(wd_open(dir, o, &db));
	return db;
}

/* The keys of table name in order, joined by spaces into out (a read-only
 * transaction's scan). */
static void scan_keys(wd_db *db, const char *name, char *out, size_t cap)
{
	wd_txn *x;
	wd_table *t;
	wd_cursor *c;
	const void *k, *v;
	size_t kl, vl, n = 0;
	int rc;
	out[0] = 0;
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, name, 0, &t));
	OK(wd_cursor_open(x, t, &c));
	while ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
		assert_true(n + kl + 2 < cap);
		if (n)
			out[n++] = ' ';
		memcpy(out + n, k, kl);
		n += kl;
		out[n] = 0;
	}
	EXPECT(rc, WD_NOTFOUND);
	wd_cursor_close(c);
	OK(wd_commit(x));
}

/* The decimal names of the files in dir/base, sorted, space-separated. */
static void list_base(const char *dir, char *out, size_t cap)
{
	char *base = tu_path(dir, "base");
	char names[256][16];
	unsigned n = 0;
	size_t at = 0;
	struct dirent *e;
	DIR *d = opendir(base);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			size_t len = strlen(e->d_name);
			assert_true(n < 256 && len < 16);
			memcpy(names[n++], e->d_name, len + 1);
		}
	closedir(d);
	free(base);
	qsort(names, n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
	out[0] = 0;
	for (unsigned i = 0; i < n; i++)
		at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? " " : "", names[i]);
	assert_true(at < cap);
}

/* Whether the space-separated list has the word w. */
static bool has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
			return true;
	return false;
}

/* How many words of list are not in ref. */
static unsigned words_not_in(const char *list, const char *ref)
{
	char copy[1024], *save = NULL;
	unsigned n = 0;
	snprintf(copy, sizeof copy, "%s", list);
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		n += !has_word(ref, w);
	return n;
}

/* ---- the crash point hook -------------------------------------------------
 * With ddl_flush_db set (in a crash child), txn-ddl-before-commit - the
 * catalog row of a table create or drop changed, with its undo record, its
 * own transaction not committed - first makes the log durable up to its
 * insert position, as another thread's group commit would carry the
 * catalog change to disk, then ends the process as the real crash point
 * does; the tests of the narrowed repair do the same at the point
 * flush_point names. Every other point, and this one unset, goes to the
 * real one. */
void __real_storage_crash_point(const char *name);
void __wrap_storage_crash_point(const char *name);

static wd_db *ddl_flush_db;
/* the point that flushes and ends the process (NULL: the one above) */
static const char *flush_point;

void __wrap_storage_crash_point(const char *name)
{
	if (ddl_flush_db &&
	    strcmp(name, flush_point ? flush_point : "txn-ddl-before-commit") == 0) {
		struct wal *w = db_wal(ddl_flush_db);
		wd_lsn end = wal_insert_pos(w);
		if (wal_flush_to(w, end) != 0 || wal_flushed_lsn(w) < end)
			_exit(5);
		_exit(ST_CRASH_EXIT_CODE);
	}
	__real_storage_crash_point(name);
}

/* A crash child's failure: says what and exits with 4 (not the crash's). */
static _Noreturn void child_die(const char *what, int rc)
{
	fprintf(stderr, "crash child: %s: %s (%s)\n", what, wd_strerror(rc), wd_last_error());
	_exit(4);
}

#define CHILD_OK(expr)                                                        \
	do {                                                                  \
		int c_ = (expr);                                              \
		if (c_ != 0)                                                  \
			child_die(#expr, c_);                                 \
	} while (0)

/* ---- 1. a loser drop is taken back whole --------------------------------- */

static const char *crash_dir;

/* T holds k=v0 and j=j0, committed. Transaction U overwrites k, inserts n
 * and deletes j (none committed), then drops T: the drop's own transaction
 * dies at txn-ddl-before-commit with its catalog delete durable. */
static void drop_child(void *arg)
{
	wd_db *db;
	wd_txn *u;
	wd_table *t;
	int rc;
	(void)arg;
	CHILD_OK(wd_open(crash_dir, NULL, &db));
	CHILD_OK(wd_begin(db, &u));
	CHILD_OK(wd_table_open(u, "T", 0, &t));
	CHILD_OK(wd_put(u, t, "k", 1, "v1", 2));
	CHILD_OK(wd_put(u, t, "n", 1, "new", 3));
	CHILD_OK(wd_del(u, t, "j", 1));
	ddl_flush_db = db;
	rc = wd_table_drop(u, "T");
	child_die("the drop did not reach txn-ddl-before-commit", rc);
}

static void setup_base(const char *dir)
{
	wd_db *db = dt_open_db(dir, 1);
	wd_txn *x;
	wd_table *t, *o;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "T", WD_CREATE, &t));
	OK(wd_table_open(x, "other", WD_CREATE, &o));
	dt_put_str(x, t, "k", "v0");
	dt_put_str(x, t, "j", "j0");
	dt_put_str(x, o, "o", "o0");
	OK(wd_commit(x));
	OK(wd_close(db));
}

static void test_loser_drop_whole(void **state)
{
	char *root = tu_tmpdir("txnf-drop");
	char before[1024], after[1024];
	wd_db *db;
	wd_txn *x;
	wd_table *t, *o;
	int status;
	(void)state;
	setup_base(root);
	list_base(root, before, sizeof before);
	crash_dir = root;
	status = tu_run_child(drop_child, NULL);
	assert_int_equal(status, ST_CRASH_EXIT_CODE);
	/* the next open takes back the drop, then U's changes to T */
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "T", 0, &t));
	dt_expect_key(x, t, "k", "v0");
	dt_expect_key(x, t, "j", "j0");
	dt_expect_key(x, t, "n", NULL);
	OK(wd_table_open(x, "other", 0, &o));
	dt_expect_key(x, o, "o", "o0");
	OK(wd_commit(x));
	scan_keys(db, "T", after, sizeof after);
	assert_string_equal(after, "j k");
	dt_check_all(db);
	OK(wd_close(db));
	/* the same after a clean reopen; T's files are its own still */
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "T", 0, &t));
	dt_expect_key(x, t, "k", "v0");
	dt_put_str(x, t, "k", "v2"); /* and T is usable */
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	list_base(root, after, sizeof after);
	assert_string_equal(after, before);
	tu_rmrf(root);
	free(root);
}

/* ---- 2. a loser create is taken back ------------------------------------- */

static void create_child(void *arg)
{
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	int rc;
	(void)arg;
	CHILD_OK(wd_open(crash_dir, NULL, &db));
	CHILD_OK(wd_begin(db, &x));
	CHILD_OK(wd_table_open(x, "T", 0, &t));
	CHILD_OK(wd_put(x, t, "k", 1, "v1", 2)); /* a loser too */
	ddl_flush_db = db;
	rc = wd_table_open(x, "N", WD_CREATE, &t);
	child_die("the create did not reach txn-ddl-before-commit", rc);
}

/* db_catalog_list callback: appends the relation ids of a table. */
static int rels_of(void *arg, const db_table_info *ti)
{
	char *s = arg;
	size_t n = strlen(s);
	snprintf(s + n, 1024 - n, "%s%u %u %u", n ? " " : "", ti->heap_rel, ti->fsm_rel,
		 ti->index_rel);
	return 0;
}

static void test_loser_create_undone(void **state)
{
	char *root = tu_tmpdir("txnf-create");
	char before[1024], crashed[1024], after[1024], rels[1024] = "";
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	int status;
	(void)state;
	setup_base(root);
	list_base(root, before, sizeof before);
	crash_dir = root;
	status = tu_run_child(create_child, NULL);
	assert_int_equal(status, ST_CRASH_EXIT_CODE);
	/* the child created N's three files before it died */
	list_base(root, crashed, sizeof crashed);
	assert_int_equal(words_not_in(crashed, before), 3);
	assert_int_equal(words_not_in(before, crashed), 0);
	/* the next open takes the catalog entry back and removes the files */
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	EXPECT(wd_table_open(x, "N", 0, &t), WD_NOTFOUND);
	OK(wd_table_open(x, "T", 0, &t));
	dt_expect_key(x, t, "k", "v0");
	dt_expect_key(x, t, "j", "j0");
	OK(wd_table_open(x, "other", 0, &t));
	dt_expect_key(x, t, "o", "o0");
	OK(wd_commit(x));
	OK(db_catalog_list(db, rels_of, rels));
	dt_check_all(db);
	list_base(root, after, sizeof after);
	assert_string_equal(after, before);
	/* every table file is one the catalog names (base/1-3: the catalog
	 * and the undo log) */
	assert_int_equal(words_not_in(after, rels), 3);
	/* N can be created now, with ids of its own */
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "N", WD_CREATE, &t));
	dt_put_str(x, t, "a", "b");
	OK(wd_commit(x));
	OK(wd_close(db));
	db = dt_open_db(root, 1);
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/*
 * A create whose catalog commit fails in the log's fdatasync: the database
 * panics, but the commit record was written (only its fsync failed) and the
 * next open finds the entry - so the files must still be there. Before the
 * fix the failed create unlinked them, and the table the catalog names had
 * no files after the reopen.
 */
static void test_create_commit_fails_keeps_files(void **state)
{
	char *root = tu_tmpdir("txnf-create-eio");
	char before[1024], after[1024], rels[1024] = "";
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	wd_options o;
	char path[256];
	uint64_t seg;
	(void)state;
	setup_base(root);
	list_base(root, before, sizeof before);
	/* The fdatasync that fails must be the catalog entry's commit's, not
	 * the WAL writer's: the writer runs its first cycle at the open, then
	 * sleeps 10 s (nothing wakes it: no asynchronous commit); a
	 * synchronous commit after that cycle has begun leaves it nothing to
	 * flush. The fault names the current segment (the writer also syncs
	 * the new segments it prepares). */
	dt_opts(&o, 1);
	o.wal_writer_delay_ms = 10000;
	db = open_opts(root, &o);
	for (unsigned i = 0;; i++) {
		wal_counters wc;
		wal_stats(db_wal(db), &wc);
		if (wc.writer_cycles > 0)
			break;
		if (i == 600000)
			fail_msg("the WAL writer did not run within a minute");
		usleep(100);
	}
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "other", 0, &t));
	dt_put_str(x, t, "w", "1");
	OK(wd_commit(x));
	seg = wal_segno(wal_insert_pos(db_wal(db)), o.wal_segment_size);
	OK(wal_seg_path(path, sizeof path, "", seg));
	OK(wd_begin(db, &x));
	OK(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, path));
	EXPECT(wd_table_open(x, "N", WD_CREATE, &t), WD_EPANIC);
	if (!strstr(wd_last_error(), "catalog entry"))
		fail_msg("the create failed before its commit: %s", wd_last_error());
	storage_fault_clear();
	assert_int_equal(wal_segno(wal_insert_pos(db_wal(db)), o.wal_segment_size), seg);
	EXPECT(wd_commit(x), WD_EPANIC);
	EXPECT(wd_close(db), WD_EPANIC);
	/* N's three files stayed */
	list_base(root, after, sizeof after);
	assert_int_equal(words_not_in(after, before), 3);
	/* the commit record reached the file (the write succeeded, its fsync
	 * did not): the next open has N, files and all */
	db = dt_open_db(root, 1);
	OK(db_catalog_list(db, rels_of, rels));
	assert_int_equal(words_not_in(after, rels), 3); /* base/1-3 */
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "N", 0, &t));
	dt_put_str(x, t, "n", "1");
	OK(wd_table_open(x, "T", 0, &t));
	dt_expect_key(x, t, "k", "v0");
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "N", 0, &t));
	dt_expect_key(x, t, "n", "1");
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- 3. a panic stops the log and frees nothing early --------------------- */

/* A call made by a thread of its own: a put, a get or a cursor's first
 * step, on key k (the cursor: from the start of the table). */
enum op_kind { OP_PUT, OP_GET, OP_CURSOR };

struct op_arg {
	wd_txn *x;
	wd_table *t;
	enum op_kind kind;
	const char *k, *v;
	int rc;
	char msg[256]; /* the detail of a failure, or what was read */
};

static void *op_thread(void *p)
{
	struct op_arg *a = p;
	char buf[64];
	const void *k, *v;
	size_t kl, vl = 0;
	wd_cursor *c;
	switch (a->kind) {
	case OP_PUT:
		a->rc = wd_put(a->x, a->t, a->k, strlen(a->k), a->v, strlen(a->v));
		snprintf(a->msg, sizeof a->msg, "%s", a->rc ? wd_last_error() : "");
		break;
	case OP_GET:
		a->rc = wd_get(a->x, a->t, a->k, strlen(a->k), buf, sizeof buf, &vl);
		if (a->rc)
			snprintf(a->msg, sizeof a->msg, "%s", wd_last_error());
		else
			snprintf(a->msg, sizeof a->msg, "read \"%.*s\"",
				 (int)(vl < sizeof buf ? vl : sizeof buf), buf);
		break;
	case OP_CURSOR:
		if ((a->rc = wd_cursor_open(a->x, a->t, &c)) != 0) {
			snprintf(a->msg, sizeof a->msg, "%s", wd_last_error());
			break;
		}
		a->rc = wd_cursor_next(c, &k, &kl, &v, &vl);
		if (a->rc)
			snprintf(a->msg, sizeof a->msg, "%s", wd_last_error());
		else
			snprintf(a->msg, sizeof a->msg, "read %.*s = \"%.*s\"", (int)kl,
				 (const char *)k, (int)vl, (const char *)v);
		wd_cursor_close(c);
		break;
	}
	return NULL;
}

/* Returns true once the lock manager's wait counter is above `above` (a
 * thread is asleep on a row lock), false if *gone becomes true first (the
 * thread ended without waiting); fails after a minute. */
static bool wait_for_waits(wd_db *db, uint64_t above, const atomic_bool *gone,
			   const char *who)
{
	lock_stats st;
	for (unsigned i = 0;; i++) {
		db_lock_stats(db, &st);
		if (st.waits > above)
			return true;
		if (gone && atomic_load(gone))
			return false;
		if (i == 600000)
			fail_msg("%s did not block on its row lock within a minute", who);
		usleep(100);
	}
}

/* Starts op a in thread *th and returns once it waits for a row lock. */
static void start_blocked(wd_db *db, pthread_t *th, struct op_arg *a, const char *who)
{
	lock_stats st;
	db_lock_stats(db, &st);
	a->rc = 1;
	assert_int_equal(pthread_create(th, NULL, op_thread, a), 0);
	assert_true(wait_for_waits(db, st.waits, NULL, who));
}

/* The thread of a must have ended with WD_EPANIC. */
static void join_epanic(pthread_t th, const struct op_arg *a, const char *who)
{
	assert_int_equal(pthread_join(th, NULL), 0);
	if (a->rc != WD_EPANIC)
		fail_msg("%s after the panic: %d (%s), expected WD_EPANIC", who, a->rc,
			 a->msg);
}

static void test_panic_stops_log(void **state)
{
	char *root = tu_tmpdir("txnf-panic");
	wd_db *db = dt_open_db(root, 1);
	wd_txn *x, *a, *b, *c, *y, *r1, *r2;
	wd_table *t, *u;
	struct op_arg pb, g1, c2;
	undo_stats us;
	uint64_t free_pages;
	pthread_t thb, th1, th2;
	wd_lsn end, flushed;
	char keys[256];
	(void)state;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	dt_put_str(x, t, "k", "v0");
	OK(wd_commit(x));

	/* a holds X on k; b waits for it inside wd_put, r1 inside wd_get,
	 * r2 inside its cursor's first step (in that order: FIFO) */
	OK(wd_begin(db, &a));
	dt_put_str(a, t, "k", "vA");
	dt_put_str(a, t, "ka", "vA");
	OK(wd_begin(db, &b));
	dt_put_str(b, t, "kb", "vB");
	OK(wd_begin(db, &r1));
	OK(wd_begin(db, &r2));
	pb = (struct op_arg){.x = b, .t = t, .kind = OP_PUT, .k = "k", .v = "vB"};
	start_blocked(db, &thb, &pb, "b's wd_put");
	g1 = (struct op_arg){.x = r1, .t = t, .kind = OP_GET, .k = "k"};
	start_blocked(db, &th1, &g1, "r1's wd_get");
	c2 = (struct op_arg){.x = r2, .t = t, .kind = OP_CURSOR};
	start_blocked(db, &th2, &c2, "r2's wd_cursor_next");

	/* the database panics: a table create's control-file fsync fails */
	OK(wd_begin(db, &c));
	OK(storage_fault_add(ST_OP_SYNC, ST_FAULT_EIO, 1, 1, "control"));
	EXPECT(wd_table_open(c, "u", WD_CREATE, &u), WD_EPANIC);
	storage_fault_clear();
	/* the log stops with it (I14) */
	assert_true(wal_is_panicked(db_wal(db)));
	end = wal_insert_pos(db_wal(db));
	flushed = wal_flushed_lsn(db_wal(db));
	undo_stats_get(db->undo, &us);
	free_pages = us.pages_free;

	/* a's commit ends it without a commit record, its changes in place:
	 * its locks go, b is granted k's lock - and must not go on to read
	 * or write */
	EXPECT(wd_commit(a), WD_EPANIC);
	join_epanic(thb, &pb, "b's wd_put");
	/* b's end lets the readers have k: they must not see a's "vA" */
	EXPECT(wd_abort(b), WD_EPANIC);
	join_epanic(th1, &g1, "r1's wd_get");
	join_epanic(th2, &c2, "r2's wd_cursor_next");
	/* nothing was logged after the panic, let alone flushed */
	assert_int_equal(wal_insert_pos(db_wal(db)), end);
	assert_int_equal(wal_flushed_lsn(db_wal(db)), flushed);
	EXPECT(wd_begin(db, &y), WD_EPANIC);
	EXPECT(wd_put(c, t, "kc", 2, "c", 1), WD_EPANIC);
	EXPECT(wd_commit(c), WD_EPANIC);
	EXPECT(wd_commit(r1), WD_EPANIC);
	EXPECT(wd_abort(r2), WD_EPANIC);
	assert_int_equal(wal_insert_pos(db_wal(db)), end);
	/* a and b ended unfinished: their undo pages, which the next open
	 * rolls them back through, stay off the free list */
	undo_stats_get(db->undo, &us);
	assert_int_equal(us.pages_free, free_pages);
	EXPECT(wd_close(db), WD_EPANIC);

	/* the next open rolls a and b back */
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	dt_expect_key(x, t, "k", "v0");
	dt_expect_key(x, t, "ka", NULL);
	dt_expect_key(x, t, "kb", NULL);
	EXPECT(wd_table_open(x, "u", 0, &u), WD_NOTFOUND);
	OK(wd_commit(x));
	scan_keys(db, "t", keys, sizeof keys);
	assert_string_equal(keys, "k");
	dt_check_all(db);
	/* and the database works on */
	OK(wd_begin(db, &x));
	dt_put_str(x, t, "k", "v1");
	OK(wd_commit(x));
	OK(wd_close(db));
	db = dt_open_db(root, 1);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	dt_expect_key(x, t, "k", "v1");
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

/* ---- 4. a failed rollback_to leaves only the end -------------------------- */

static void failed_rollback_to(bool by_commit)
{
	char *root = tu_tmpdir("txnf-sp");
	wd_db *db = dt_open_db(root, 0);
	wd_txn *x;
	wd_table *t;
	wd_cursor *c;
	char buf[16], keys[256];
	size_t vlen;
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	dt_put_str(x, t, "base", "0");
	OK(wd_commit(x));

	OK(wd_begin(db, &x));
	dt_put_str(x, t, "a", "1");
	OK(wd_savepoint(x, "A"));
	dt_put_str(x, t, "b", "2");
	dt_put_str(x, t, "c", "3");
	OK(wd_savepoint(x, "B"));
	dt_put_str(x, t, "d", "4");
	dt_put_str(x, t, "e", "5");
	/* the undo of an insert is a del: the 4th step (b's) fails */
	db_fault_arm("txn-del-heap", 4);
	EXPECT(wd_rollback_to(x, "A"), WD_EIO);
	db_fault_arm(NULL, 0);
	/* e, d and c were undone, b not: the chain's head lies before B now */
	EXPECT(wd_rollback_to(x, "B"), WD_ESTATE);
	EXPECT(wd_rollback_to(x, "A"), WD_ESTATE);
	EXPECT(wd_put(x, t, "f", 1, "6", 1), WD_ESTATE);
	EXPECT(wd_del(x, t, "a", 1), WD_ESTATE);
	EXPECT(wd_get(x, t, "a", 1, buf, sizeof buf, &vlen), WD_ESTATE);
	EXPECT(wd_savepoint(x, "C"), WD_ESTATE);
	EXPECT(wd_cursor_open(x, t, &c), WD_ESTATE);
	if (by_commit)
		EXPECT(wd_commit(x), WD_ESTATE); /* rolled back, not committed */
	else
		OK(wd_abort(x));
	/* ended either way */
	EXPECT(wd_abort(x), WD_ESTATE);
	scan_keys(db, "t", keys, sizeof keys);
	assert_string_equal(keys, "base");
	dt_check_all(db);
	OK(wd_close(db));
	db = dt_open_db(root, 0);
	scan_keys(db, "t", keys, sizeof keys);
	assert_string_equal(keys, "base");
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

static void test_failed_rollback_to_abort(void **state)
{
	(void)state;
	failed_rollback_to(false);
}

static void test_failed_rollback_to_commit(void **state)
{
	(void)state;
	failed_rollback_to(true);
}

/* ---- 5. values over 64 MiB can be overwritten and deleted ------------------ */

#define BIG_LEN ((65u << 20) + 12345u)

/* Byte o of the big value: the o%8th byte of a mix of o/8 (so any range can
 * be made or checked without a second copy). */
static uint8_t big_byte(uint64_t o)
{
	uint64_t s = o / 8 * 0x9E3779B97F4A7C15ull + 0x1234;
	uint64_t z = tu_rand(&s);
	return (uint8_t)(z >> (8 * (o % 8)));
}

static void big_fill(uint8_t *p, size_t n)
{
	for (size_t o = 0; o < n; o += 8) {
		uint64_t s = o / 8 * 0x9E3779B97F4A7C15ull + 0x1234;
		uint64_t z = tu_rand(&s);
		memcpy(p + o, &z, n - o < 8 ? n - o : 8);
	}
}

/* The big value of key "big", byte for byte, read into buf (BIG_LEN). */
static void expect_big(wd_db *db, uint8_t *buf)
{
	wd_txn *x;
	wd_table *t;
	size_t vlen = 0;
	OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
	OK(wd_table_open(x, "t", 0, &t));
	memset(buf, 0, BIG_LEN);
	OK(wd_get(x, t, "big", 3, buf, BIG_LEN, &vlen));
	OK(wd_commit(x));
	assert_int_equal(vlen, BIG_LEN);
	for (size_t o = 0; o < BIG_LEN; o += 8) {
		uint64_t s = o / 8 * 0x9E3779B97F4A7C15ull + 0x1234;
		uint64_t z = tu_rand(&s);
		if (memcmp(buf + o, &z, BIG_LEN - o < 8 ? BIG_LEN - o : 8) != 0)
			fail_msg("the big value differs at byte %zu (0x%02x, expected 0x%02x)",
				 o, buf[o], big_byte(o));
	}
}

/* ---- the repair after a crash checks only the losers' in-flight keys -----
 * (txn/README.md P3): a crash between the heap and index records of a
 * loser's row change (the log made durable at the crash point, as another
 * thread's group commit would) is repaired by checking that key alone on
 * the pages the loser's records named; a large committed table is not
 * scanned. */

#define NR_KEYS 6000u

static size_t nr_key(unsigned i, char *k)
{
	return (size_t)snprintf(k, 32, "row%06u", i);
}

static size_t nr_val(unsigned i, uint8_t *v)
{
	size_t n = 20 + i % 50;
	memset(v, 'a' + (int)(i % 26), n);
	return n;
}

static const char *nr_dir, *nr_point;
static size_t nr_big; /* the in-flight value's length (0: a small one) */

/* In a child: NR_KEYS committed rows in table "big", then a loser that
 * overwrites, deletes and inserts some rows and is cut at nr_point in one
 * more change (of row 77: a put, or a del at txn-del-before-heap). */
static void nr_child(void *arg)
{
	uint8_t v[128], *big = NULL;
	char k[32];
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	(void)arg;
	CHILD_OK(wd_open(nr_dir, NULL, &db));
	CHILD_OK(wd_begin(db, &x));
	CHILD_OK(wd_table_open(x, "big", WD_CREATE, &t));
	for (unsigned i = 0; i < NR_KEYS; i++)
		CHILD_OK(wd_put(x, t, k, nr_key(i, k), v, nr_val(i, v)));
	CHILD_OK(wd_commit(x));
	CHILD_OK(wd_begin(db, &x));
	memset(v, 'L', sizeof v);
	CHILD_OK(wd_put(x, t, k, nr_key(5, k), v, 90));
	CHILD_OK(wd_del(x, t, k, nr_key(6, k)));
	CHILD_OK(wd_put(x, t, "loser-new", 9, v, 30));
	ddl_flush_db = db;
	flush_point = nr_point;
	storage_crash_arm(nr_point, 1);
	if (!(big = malloc(nr_big > 4000 ? nr_big : 4000)))
		_exit(6);
	memset(big, 'B', nr_big > 4000 ? nr_big : 4000);
	if (strcmp(nr_point, "txn-del-before-heap") == 0)
		(void)wd_del(x, t, k, nr_key(77, k));
	else if (strcmp(nr_point, "txn-put-before-index") == 0)
		(void)wd_put(x, t, "loser-cut", 9, big, nr_big ? nr_big : 40);
	else /* a moved update at heap-update-after-new-version */
		(void)wd_put(x, t, k, nr_key(77, k), big, 900);
	_exit(7); /* the crash point did not fire */
}

/* The committed rows, into a fresh oracle under root. */
static ot_state *nr_oracle(const char *root)
{
	char *dir = tu_path(root, "oracle");
	uint8_t v[128];
	char k[32];
	ot_state *o = ot_state_open(dir);
	for (unsigned i = 0; i < NR_KEYS; i++)
		ot_state_put(o, k, nr_key(i, k), v, nr_val(i, v));
	free(dir);
	return o;
}

/* Runs nr_child with point and in-flight value length, reopens with the
 * recovery trace and checks heap and index and the oracle. Returns the
 * report's (keys checked, tables repaired in full, entries repaired). */
static void nr_crash_and_check(const char *point, size_t big, uint64_t *keys,
			       uint64_t *tables, uint64_t *fixed, char **trace)
{
	char *root = tu_tmpdir("nr"), *dir = tu_path(root, "db");
	const db_recovery_report *r;
	wd_options o;
	ot_state *orc;
	char *diff;
	wd_db *db;
	nr_dir = dir;
	nr_point = point;
	nr_big = big;
	if (tu_run_child(nr_child, NULL) != ST_CRASH_EXIT_CODE)
		fail_msg("the child did not die at %s", point);
	dt_opts(&o, 1);
	db = dt_open_traced(dir, &o, "recovery", trace);
	OK(db_recovery_report_get(db, &r));
	*keys = r->keys_checked;
	*tables = r->tables_repaired;
	*fixed = r->repaired;
	assert_int_equal(r->losers_rolled_back, 1);
	dt_check_all(db);
	orc = nr_oracle(root);
	if ((diff = ot_state_diff(orc, db, "big")) != NULL)
		fail_msg("after a crash at %s: %s", point, diff);
	ot_state_close(orc);
	OK(wd_close(db));
	tu_rmrf(root);
	free(dir);
	free(root);
}

/* (a) one loser cut between heap and index: one key checked, no table in
 * full, the cut change repaired, the oracle's rows. Fails if the key's
 * repair is skipped (dt_check_all: a tuple without its entry, or the
 * reverse) or if a table is repaired in full. */
static void test_repair_one_key(void **state)
{
	static const char *const points[] = {"txn-put-before-index",
					     "heap-update-after-new-version"};
	(void)state;
	for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
		uint64_t keys, tables, fixed;
		char *trace;
		nr_crash_and_check(points[i], 0, &keys, &tables, &fixed, &trace);
		assert_int_equal(keys, 1);
		assert_int_equal(tables, 0);
		assert_true(fixed >= 1);
		if (!strstr(trace, "of table big (loser xid ") || !strstr(trace, " fixed"))
			fail_msg("no key line for table big in the trace:\n%s", trace);
		free(trace);
	}
}

/* (c) the in-flight value spans more pages than a hint lists, or a del
 * is cut between its index and heap steps: the table is repaired in full,
 * and no key is checked. Fails if the unknown hint is taken for an empty
 * page list, or the cut del for a finished one (the tuple stays). */
static void test_repair_unknown_in_full(void **state)
{
	uint64_t keys, tables, fixed;
	char *trace;
	(void)state;
	nr_crash_and_check("txn-put-before-index", 400 * PS, &keys, &tables, &fixed, &trace);
	assert_int_equal(keys, 0);
	assert_int_equal(tables, 1);
	assert_true(fixed >= 1);
	if (!strstr(trace, "table big in full: loser xid=") || !strstr(trace, "too many pages"))
		fail_msg("no full repair line in the trace:\n%s", trace);
	free(trace);
	/* a del cut after its index step names no heap page: the tuple it was
	 * deleting may lie anywhere, so the table is repaired in full */
	nr_crash_and_check("txn-del-before-heap", 0, &keys, &tables, &fixed, &trace);
	assert_int_equal(keys, 0);
	assert_int_equal(tables, 1);
	assert_true(fixed >= 1);
	if (!strstr(trace, "its heap step not logged"))
		fail_msg("no full repair line in the trace:\n%s", trace);
	free(trace);
}

/* (b) In a child: committed rows, then a transaction whose moved update's
 * index step fails and whose settling cannot happen (db_needs_repair), and
 * which then COMMITS; the process dies. No loser names that key. */
static void nr_mark_child(void *arg)
{
	char v[1200];
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	(void)arg;
	dt_opts(&o, 1);
	CHILD_OK(wd_open(nr_dir, &o, &db));
	CHILD_OK(wd_begin(db, &x));
	CHILD_OK(wd_table_open(x, "t", WD_CREATE, &t));
	for (const char *k = "AKCDE"; *k; k++) {
		memset(v, *k, sizeof v);
		CHILD_OK(wd_put(x, t, k, 1, v, 780));
	}
	CHILD_OK(wd_commit(x));
	CHILD_OK(wd_begin(db, &x));
	db_fault_arm("txn-put-update-index", 1);
	memset(v, 'k', sizeof v);
	if (wd_put(x, t, "K", 1, v, 1000) != WD_EIO || !db_needs_repair_flag(db))
		_exit(8);
	CHILD_OK(wd_commit(x));
	_exit(ST_CRASH_EXIT_CODE); /* killed: no close */
}

static void test_needs_repair_survives_crash(void **state)
{
	char *root = tu_tmpdir("nr-mark"), *dir = tu_path(root, "db");
	const db_recovery_report *r;
	control_data cd;
	wd_options o;
	char *trace, v[1200];
	size_t vlen;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	(void)state;
	nr_dir = dir;
	assert_int_equal(tu_run_child(nr_mark_child, NULL), ST_CRASH_EXIT_CODE);
	OK(control_read(dir, &cd));
	assert_true(cd.flags & CONTROL_F_NEEDS_REPAIR); /* durable at once */
	dt_opts(&o, 1);
	db = dt_open_traced(dir, &o, "recovery", &trace);
	dt_check_all(db);
	OK(db_recovery_report_get(db, &r));
	assert_int_equal(r->tables_repaired, 2); /* the catalog and t */
	assert_true(r->repaired >= 1);
	if (!strstr(trace, "every table in full"))
		fail_msg("no full repair in the trace:\n%s", trace);
	free(trace);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_get(x, t, "K", 1, v, sizeof v, &vlen)); /* the committed update */
	assert_int_equal(vlen, 1000);
	assert_int_equal(v[999], 'k');
	OK(wd_commit(x));
	/* the end checkpoint's control write cleared the mark */
	OK(control_read(dir, &cd));
	assert_false(cd.flags & CONTROL_F_NEEDS_REPAIR);
	assert_false(db_needs_repair_flag(db));
	OK(wd_close(db));
	tu_rmrf(root);
	free(dir);
	free(root);
}

static void test_big_value_overwrite(void **state)
{
	char *root = tu_tmpdir("txnf-big");
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	uint8_t *buf = malloc(BIG_LEN);
	char small[16];
	size_t vlen;
	(void)state;
	assert_non_null(buf);
	dt_opts(&o, 1);
	o.max_value_bytes = 80u << 20;
	o.wal_segment_size = 64u << 20;
	o.wal_buffers_bytes = 16u << 20;
	db = open_opts(root, &o);
	big_fill(buf, BIG_LEN);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	OK(wd_put(x, t, "big", 3, buf, BIG_LEN));
	dt_put_str(x, t, "z", "small");
	OK(wd_commit(x));
	/* overwritten by a small value (its undo record keeps 65 MiB), seen,
	 * then rolled back */
	OK(wd_begin(db, &x));
	OK(wd_put(x, t, "big", 3, "tiny", 4));
	OK(wd_get(x, t, "big", 3, small, sizeof small, &vlen));
	assert_int_equal(vlen, 4);
	assert_memory_equal(small, "tiny", 4);
	OK(wd_abort(x));
	expect_big(db, buf);
	/* overwritten by another big value and rolled back to a savepoint */
	OK(wd_begin(db, &x));
	OK(wd_savepoint(x, "s"));
	memset(buf, 0x5a, BIG_LEN);
	OK(wd_put(x, t, "big", 3, buf, BIG_LEN));
	OK(wd_rollback_to(x, "s"));
	OK(wd_commit(x));
	expect_big(db, buf);
	OK(wd_close(db));
	/* after a clean reopen too; then deleted (also undone once) */
	db = open_opts(root, &o);
	expect_big(db, buf);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	OK(wd_del(x, t, "big", 3));
	OK(wd_abort(x));
	expect_big(db, buf);
	OK(wd_begin(db, &x));
	OK(wd_del(x, t, "big", 3));
	EXPECT(wd_get(x, t, "big", 3, small, sizeof small, &vlen), WD_NOTFOUND);
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	db = open_opts(root, &o);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", 0, &t));
	EXPECT(wd_get(x, t, "big", 3, small, sizeof small, &vlen), WD_NOTFOUND);
	dt_expect_key(x, t, "z", "small");
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	free(buf);
	tu_rmrf(root);
	free(root);
}

/* ---- 6. a cursor waiting for a row lock holds no pin ---------------------- */

/*
 * A pool of 16 pages. Region r (r < NREG = 16) of the table: body rows
 * "rRR-bJJJ" (NBODY of them, values of BODY_V bytes: each region's last
 * body row is on a heap page of its own), then "rRR-m" (inserted by A, not
 * committed), then "rRR-t" (its tail row, loaded after every body, so the
 * tails share a few pages of their own). NCUR cursors, one thread and
 * transaction each, start one after the other once the previous one waits;
 * cursor i scans region region_of(i) (the first four regions get two
 * cursors, the first ones to start): it reads the body and blocks on A's
 * "rRR-m". Before the fix each waiting cursor kept the heap page of its
 * last body row pinned: 16 distinct pages, the whole pool, so A's rollback
 * (which reads its undo page) failed with WD_ENOBUFS and the database
 * panicked. Now a waiter pins nothing: A's abort succeeds, and each cursor
 * reads on to its tail row (A's key is gone). (Had every cursor blocked on
 * one key, they would all have pinned the same page, and the old code
 * would have passed.)
 */
#define NREG 16
#define NCUR 20
#define NBODY 5
#define BODY_V 900

static unsigned region_of(unsigned cur)
{
	return cur < NCUR - NREG ? cur : cur - (NCUR - NREG);
}

struct scan_arg {
	wd_db *db;
	wd_table *t;
	unsigned reg;
	atomic_bool done;
	int rc;
	char msg[384];
};

static void body_key(unsigned reg, unsigned j, char *k)
{
	snprintf(k, 16, "r%02u-b%03u", reg, j);
}

static void value_of(const char *k, uint8_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (uint8_t)(k[i % strlen(k)] + i);
}

/* Thread: cursor i's scan of its region, checked row by row. */
static void *scan_thread(void *p)
{
	struct scan_arg *a = p;
	wd_txn *x = NULL;
	wd_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl;
	char want[16];
	uint8_t wv[BODY_V];
	int rc;
	a->rc = wd_begin_flags(a->db, WD_TXN_RDONLY, &x);
	if (a->rc == 0)
		a->rc = wd_cursor_open(x, a->t, &c);
	snprintf(want, sizeof want, "r%02u-", a->reg);
	if (a->rc == 0)
		a->rc = wd_cursor_seek(c, want, strlen(want));
	for (unsigned j = 0; a->rc == 0 && j <= NBODY; j++) {
		if (j < NBODY)
			body_key(a->reg, j, want);
		else
			snprintf(want, sizeof want, "r%02u-t", a->reg);
		if ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) != 0) {
			a->rc = rc;
			snprintf(a->msg, sizeof a->msg, "cursor %u at %s: %s (%s)", a->reg, want,
				 wd_strerror(rc), wd_last_error());
			break;
		}
		value_of(want, wv, BODY_V);
		if (kl != strlen(want) || memcmp(k, want, kl) != 0 || vl != BODY_V ||
		    memcmp(v, wv, BODY_V) != 0) {
			a->rc = WD_ECORRUPT;
			snprintf(a->msg, sizeof a->msg, "cursor %u: got %.*s (%zu bytes), "
				 "expected %s", a->reg, (int)kl, (const char *)k, vl, want);
		}
	}
	if (a->rc && !a->msg[0])
		snprintf(a->msg, sizeof a->msg, "cursor %u: %s (%s)", a->reg,
			 wd_strerror(a->rc), wd_last_error());
	if (c)
		wd_cursor_close(c);
	if (x && (rc = wd_commit(x)) != 0 && a->rc == 0) {
		a->rc = rc;
		snprintf(a->msg, sizeof a->msg, "cursor %u: commit: %s", a->reg, wd_strerror(rc));
	}
	atomic_store(&a->done, true);
	return NULL;
}

/* The heap block of key k in t (from the index). */
static uint32_t block_of(wd_table *t, const char *k)
{
	wd_tid tid;
	OK(btree_lookup(db_table_btree(t), k, strlen(k), &tid));
	return tid.blk;
}

static void test_waiting_cursor_no_pin(void **state)
{
	char *root = tu_tmpdir("txnf-pin");
	static struct scan_arg sa[NCUR];
	pthread_t th[NCUR];
	wd_options o;
	wd_db *db;
	wd_txn *x, *a;
	wd_table *t;
	lock_stats st;
	uint8_t v[BODY_V];
	char k[16], who[32];
	uint32_t last[NREG], tails[NREG];
	(void)state;
	dt_opts(&o, 1);
	o.buffer_pool_bytes = 16u * PS;
	db = open_opts(root, &o);
	OK(wd_begin(db, &x));
	OK(wd_table_open(x, "t", WD_CREATE, &t));
	for (unsigned i = 0; i < NREG; i++)
		for (unsigned j = 0; j < NBODY; j++) {
			body_key(i, j, k);
			value_of(k, v, BODY_V);
			OK(wd_put(x, t, k, strlen(k), v, BODY_V));
		}
	for (unsigned i = 0; i < NREG; i++) {
		snprintf(k, sizeof k, "r%02u-t", i);
		value_of(k, v, BODY_V);
		OK(wd_put(x, t, k, strlen(k), v, BODY_V));
	}
	OK(wd_commit(x));
	/* the layout the test relies on: each region's last body row on a
	 * page of its own, more such pages than the pool has; the tails on
	 * other pages */
	for (unsigned i = 0; i < NREG; i++) {
		body_key(i, NBODY - 1, k);
		last[i] = block_of(t, k);
		snprintf(k, sizeof k, "r%02u-t", i);
		tails[i] = block_of(t, k);
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(last[i], last[j]);
	}
	for (unsigned i = 0; i < NREG; i++)
		for (unsigned j = 0; j < NREG; j++)
			assert_int_not_equal(tails[i], last[j]);

	/* A holds X on every region's "m" key before any cursor starts */
	OK(wd_begin(db, &a));
	for (unsigned i = 0; i < NREG; i++) {
		snprintf(k, sizeof k, "r%02u-m", i);
		value_of(k, v, BODY_V);
		OK(wd_put(a, t, k, strlen(k), v, BODY_V));
	}
	/* cursor i starts once cursors 0..i-1 wait (one scans at a time) */
	for (unsigned i = 0; i < NCUR; i++) {
		db_lock_stats(db, &st);
		sa[i] = (struct scan_arg){.db = db, .t = t, .reg = region_of(i)};
		atomic_init(&sa[i].done, false);
		assert_int_equal(pthread_create(&th[i], NULL, scan_thread, &sa[i]), 0);
		snprintf(who, sizeof who, "cursor %u", i);
		if (!wait_for_waits(db, st.waits, &sa[i].done, who))
			fail_msg("%s ended before it waited for A's lock: %s", who,
				 sa[i].rc ? sa[i].msg : "it never met A's key");
	}
	/* A's rollback needs buffers the waiting cursors must not hold */
	OK(wd_abort(a));
	for (unsigned i = 0; i < NCUR; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (sa[i].rc != 0)
			fail_msg("%s", sa[i].msg);
	}
	OK(wd_begin(db, &x));
	for (unsigned i = 0; i < NREG; i++) {
		snprintf(k, sizeof k, "r%02u-m", i);
		dt_expect_key(x, t, k, NULL);
	}
	OK(wd_commit(x));
	dt_check_all(db);
	OK(wd_close(db));
	db = open_opts(root, &o);
	dt_check_all(db);
	OK(wd_close(db));
	tu_rmrf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loser_drop_whole),
		cmocka_unit_test(test_loser_create_undone),
		cmocka_unit_test(test_create_commit_fails_keeps_files),
		cmocka_unit_test(test_panic_stops_log),
		cmocka_unit_test(test_failed_rollback_to_abort),
		cmocka_unit_test(test_failed_rollback_to_commit),
		cmocka_unit_test(test_big_value_overwrite),
		cmocka_unit_test(test_repair_one_key),
		cmocka_unit_test(test_repair_unknown_in_full),
		cmocka_unit_test(test_needs_repair_survives_crash),
		cmocka_unit_test(test_waiting_cursor_no_pin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
