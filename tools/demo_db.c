/*
 * demo_db.c - `walden demo DIR`: the main job end to end. A writer process
 * creates a database and runs transactions - committed ones, an aborted
 * one, one rolled back to a savepoint, a checkpoint between them - and
 * is killed (SIGKILL) while one transaction is still open with its
 * changes in the durable log. The demo then opens the database: recovery
 * runs (analysis, redo, repair, undo, end-of-recovery checkpoint) and its
 * trace is printed, abridged, with the report; last, every key is read
 * back and compared with what the script committed, and the demo exits
 * non-zero on any difference. The writer's script is deterministic, so
 * the expected state needs no oracle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/tools.h"
#include "txn/db.h"
#include "walden.h"

#define NKEYS 2000u    /* keys the first transaction inserts */
#define NUPDATE 300u   /* keys the second one updates (every 7th) */
#define NLOSER 400u    /* keys the open transaction updates (every 5th) */
#define NLOSER_DEL 100u /* ... and deletes (every 13th) */
#define LINES_MAX 6u   /* record or undo-step lines shown per section */

/* The key of number i, and the value transaction `gen` gave it. */
static size_t key_of(unsigned i, char *k)
{
	return (size_t)sprintf(k, "account-%05u", i);
}

static size_t val_of(unsigned i, unsigned gen, char *v)
{
	return (size_t)sprintf(v, "balance %u (set by transaction %u)", 100 + i * gen, gen);
}

/* The writer's steps fail loudly: the parent sees a non-SIGKILL exit. */
static void must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "demo writer: %s: %s\n", what, wd_last_error());
		_exit(2);
	}
}

static void put(wd_txn *x, wd_table *t, unsigned i, unsigned gen)
{
	char k[32], v[64];
	size_t kl = key_of(i, k), vl = val_of(i, gen, v);
	must(wd_put(x, t, k, kl, v, vl), "put");
}

/* The writer (a child process): the script, then SIGKILL. */
static void writer(const char *dir)
{
	wd_options o;
	wd_db *db;
	wd_txn *x, *loser;
	wd_table *t;
	char k[32];
	wd_options_default(&o);
	must(wd_open(dir, &o, &db), "open");
	/* 1: the accounts, committed */
	must(wd_begin(db, &x), "begin");
	must(wd_table_open(x, "accounts", WD_CREATE, &t), "table");
	for (unsigned i = 0; i < NKEYS; i++)
		put(x, t, i, 1);
	must(wd_commit(x), "commit 1");
	must(wd_checkpoint(db), "checkpoint");
	/* 2: every 7th account updated, committed */
	must(wd_begin(db, &x), "begin");
	for (unsigned i = 0; i < NUPDATE; i++)
		put(x, t, i * 7 % NKEYS, 2);
	must(wd_commit(x), "commit 2");
	/* 3: new accounts, aborted */
	must(wd_begin(db, &x), "begin");
	for (unsigned i = 0; i < 50; i++)
		put(x, t, NKEYS + i, 3);
	must(wd_abort(x), "abort 3");
	/* 4: one change kept, the rest rolled back to a savepoint */
	must(wd_begin(db, &x), "begin");
	put(x, t, 1, 4);
	must(wd_savepoint(x, "sp"), "savepoint");
	for (unsigned i = 2; i < 40; i++)
		put(x, t, i, 4);
	must(wd_rollback_to(x, "sp"), "rollback to");
	must(wd_commit(x), "commit 4");
	/* 5: the loser - updates and deletes, never ended */
	must(wd_begin(db, &loser), "begin");
	for (unsigned i = 0; i < NLOSER; i++)
		put(loser, t, i * 5 % NKEYS + 3, 5);
	for (unsigned i = 0; i < NLOSER_DEL; i++)
		must(wd_del(loser, t, k, key_of(i * 13 % NKEYS + 4, k)), "del");
	/* 6: a durable commit after it: its flush carries the loser's records
	 * to disk too, as another thread's group commit would */
	must(wd_begin(db, &x), "begin");
	put(x, t, NKEYS - 1, 6);
	must(wd_commit(x), "commit 6");
	fflush(NULL);
	raise(SIGKILL);
	_exit(3);
}

/* The value the script left committed for key i (0 if none). */
static unsigned expected_gen(unsigned i)
{
	unsigned gen = i < NKEYS ? 1 : 0;
	for (unsigned j = 0; j < NUPDATE; j++)
		if (j * 7 % NKEYS == i)
			gen = 2;
	if (i == 1)
		gen = 4;
	if (i == NKEYS - 1)
		gen = 6;
	return gen;
}

/* Abridges the recovery trace: per-record redo lines and per-step undo
 * lines beyond the first few of each section are counted, not printed. */
struct abridge {
	unsigned shown, hidden;
};

static bool is_detail(const char *line)
{
	/* "  0/0001A2B8 ..." (a redo record) and its further blocks (indented
	 * to the rel/blk column), "  undo xid=", "    CLR " */
	if (strncmp(line, "  undo xid=", 11) == 0 || strncmp(line, "    CLR ", 8) == 0 ||
	    strspn(line, " ") > 20)
		return true;
	return line[0] == ' ' && line[1] == ' ' && line[2] >= '0' && line[2] <= '9' &&
	       strchr(line, '/') && strchr(line, '/') < line + 12;
}

static void on_trace(void *arg, const char *module, const char *line)
{
	struct abridge *a = arg;
	(void)module;
	if (strncmp(line, "open ", 5) == 0)
		return; /* the engine's one-line summaries: the report has them */
	if (is_detail(line)) {
		if (a->shown++ < LINES_MAX)
			printf("%s\n", line);
		else
			a->hidden++;
		return;
	}
	if (a->hidden)
		printf("  ... %u more lines like these (walden recover --trace shows every "
		       "one)\n", a->hidden);
	a->shown = a->hidden = 0;
	printf("%s\n", line);
}

/* Every key of the table against the script; prints the verdict. */
static int verify(wd_db *db)
{
	unsigned wrong = 0, checked = 0;
	wd_txn *x;
	wd_table *t;
	char k[32], v[64], buf[128];
	size_t got;
	int rc = wd_begin(db, &x);
	if (rc == 0)
		rc = wd_table_open(x, "accounts", 0, &t);
	for (unsigned i = 0; rc == 0 && i < NKEYS + 50; i++, checked++) {
		unsigned gen = expected_gen(i);
		size_t kl = key_of(i, k), vl = gen ? val_of(i, gen, v) : 0;
		int g = wd_get(x, t, k, kl, buf, sizeof buf, &got);
		if (g != 0 && g != WD_NOTFOUND)
			rc = g; /* an error, not an answer */
		else if ((gen ? g != 0 || got != vl || memcmp(buf, v, vl) != 0 : g != WD_NOTFOUND) &&
			 wrong++ < 5)
			printf("  WRONG: %s: expected %s\n", k, gen ? v : "no such key");
	}
	if (rc == 0)
		rc = wd_commit(x);
	if (rc != 0) {
		printf("  reading the table failed: %s\n", wd_last_error());
		return 1;
	}
	printf("  %u keys read: %s\n", checked,
	       wrong ? "some differ from what was committed" : "every one as committed");
	printf("  transactions 1, 2, 4 and 6 are there; the aborted 3 left nothing; 4 kept its\n"
	       "  change before the savepoint only; the %u updates and %u deletes of the open\n"
	       "  transaction 5 were rolled back by recovery\n", NLOSER, NLOSER_DEL);
	return wrong ? 1 : 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden demo DIR\n"
		"Crash recovery end to end. A writer process creates the database DIR\n"
		"(which must not exist) and runs transactions: %u accounts committed, a\n"
		"checkpoint, %u of them updated and committed, 50 new ones aborted, one\n"
		"rolled back to a savepoint, and one transaction left open with %u updates\n"
		"and %u deletes in the durable log - then it is killed (SIGKILL). The\n"
		"demo opens DIR again: recovery runs, and its trace is printed (abridged)\n"
		"with the report; then every key is read back and compared with what was\n"
		"committed. Exit 0 if all agree, 1 if not, 2 on a usage error.\n"
		"To look further: walden recover --trace (on a copy taken before the\n"
		"open), walden waldump DIR, walden controldata DIR, walden inspect DIR\n"
		"--table accounts. The page-level demonstration of the log and of a\n"
		"simulated power loss is `walden demo-wal`.\n",
		NKEYS, NUPDATE, NLOSER, NLOSER_DEL);
}

int demo_db_main(int argc, char **argv)
{
	struct abridge a = {0};
	const db_recovery_report *r;
	const char *dir;
	wd_db *db;
	wd_options o;
	int status, rc;
	pid_t pid;
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return 2;
	}
	dir = argv[1];
	if (access(dir, F_OK) == 0) {
		fprintf(stderr, "walden demo: %s exists; give a new directory\n", dir);
		return 2;
	}
	printf("== the writer (a child process) ==\n"
	       "  1: %u accounts inserted, committed; a checkpoint\n"
	       "  2: %u accounts updated, committed\n"
	       "  3: 50 accounts inserted, aborted (rolled back with CLRs)\n"
	       "  4: one update kept, 38 rolled back to a savepoint, committed\n"
	       "  5: %u updates and %u deletes - never committed\n"
	       "  6: one update, committed durably (the log up to it is on disk)\n"
	       "  then the writer is killed with SIGKILL, transaction 5 still open\n"
	       "  (the log numbers transactions by xid: creating the table took one of its\n"
	       "  own, so step N runs as xid N + 1)\n",
	       NKEYS, NUPDATE, NLOSER, NLOSER_DEL);
	fflush(NULL);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "walden demo: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0)
		writer(dir);
	if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status) ||
	    WTERMSIG(status) != SIGKILL) {
		fprintf(stderr, "walden demo: the writer failed before the crash\n");
		return 1;
	}
	printf("  killed.\n\n== recovery: wd_open(%s), with the recovery trace ==\n", dir);
	wd_trace_set_callback(on_trace, &a);
	wd_options_default(&o);
	rc = wd_trace_enable("recovery");
	if (rc == 0)
		rc = wd_open(dir, &o, &db);
	wd_trace_enable("");
	wd_trace_set_callback(NULL, NULL);
	if (rc != 0) {
		fprintf(stderr, "walden demo: open: %s\n", wd_last_error());
		return 1;
	}
	if (db_recovery_report_get(db, &r) == 0)
		printf("\n== the report ==\n  %llu records scanned, %llu page changes applied, "
		       "%llu skipped (page newer), %llu images; %llu loser(s) rolled back with "
		       "%llu CLRs; %llu key(s) checked by the repair\n  analysis %.0f ms, redo "
		       "%.0f ms, repair %.0f ms, undo %.0f ms, end checkpoint %.0f ms\n",
		       (unsigned long long)r->records, (unsigned long long)r->applied,
		       (unsigned long long)r->skipped, (unsigned long long)r->images,
		       (unsigned long long)r->losers_rolled_back,
		       (unsigned long long)r->undo_steps, (unsigned long long)r->keys_checked,
		       r->analysis_ms, r->redo_ms, r->repair_ms, r->undo_ms, r->checkpoint_ms);
	printf("\n== after recovery: every key against the script ==\n");
	rc = verify(db);
	if (wd_close(db) != 0 && rc == 0) {
		fprintf(stderr, "walden demo: close: %s\n", wd_last_error());
		rc = 1;
	}
	printf("\nnext: walden waldump %s | less; walden controldata %s; walden inspect %s "
	       "--table accounts\n", dir, dir, dir);
	return rc;
}
