/*
 * test_crashpoints.c - a crash at every named crash point (storage/README.md
 * "Crash points"), under a seeded random workload, checked against the
 * LMDB oracle (DESIGN.md section 6, first row).
 *
 * 1. Completeness: every crash point the module READMEs list in their
 *    "Crash points" tables is in this suite's table below, or in its
 *    commented exclusion list; a new point without a crash test fails.
 * 2. Workload points: a forked child runs two threads of transactions
 *    (inserts, overwrites and deletes of random keys, long keys that split
 *    leaves and internal pages, runs of deletes that empty leaves, values
 *    of several pages, aborts, savepoint rollbacks, table creates and
 *    drops, durable and asynchronous commits) with 64 KiB WAL segments,
 *    periodic checkpoints, WAL archiving, and wal_recycle on or off; the
 *    point is armed at its first hit and at a later one (half the hits a
 *    counting run of the same workload made; at most the 16th for the WAL
 *    writer's points, which time drives: the child waits for it after its
 *    workload). The child must die there.
 * 3. Recovery points: the same workload ends with a loser transaction
 *    whose records are durable; a recovery of a copy of that directory is
 *    killed at the point (first and a later hit).
 * Then the parent opens (recovers): every table must equal the oracle
 * under the in-flight rule below, check clean, and stay so after a clean
 * close and another open.
 *
 * The in-flight rule: before each commit a thread writes the
 * transaction's changes to its pending list in the oracle, and after
 * wd_commit returns it applies them to the oracle's tables and clears the
 * list, in one LMDB transaction. An asynchronous commit stays pending
 * (group 0) until the thread's next commit that changed something, which
 * is always durable (group 1) and, once acknowledged, settles both; a
 * commit that changed nothing flushes nothing and settles nothing. So
 * after a crash each thread's pending groups may have landed as a prefix:
 * none, the first, or both - never a part of one.
 *
 * Scale: WALDEN_TEST_SCALE (default 1, 0.2 under ASan, where only the
 * first hit of each point is tried). WALDEN_TEST_SEED changes the seed
 * (tu_seed).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
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

#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "txn/db.h"
#include "walden.h"

#define PS 4096u

/* ---- the points ------------------------------------------------------------ */

enum {
	PH_WORK = 1u,     /* armed in the workload */
	PH_RECOVERY = 2u, /* armed in the recovery of a crashed workload */
	PH_TIMED = 4u,    /* hit by the WAL writer's cycles, which time drives */
};

enum {
	CF_ANY,     /* first hit with wal_recycle on, the later one with it off */
	CF_RECYCLE, /* wal_recycle on: old segments are renamed for reuse */
	CF_REMOVE,  /* wal_recycle off: old segments are removed */
};

struct point {
	const char *name;
	unsigned phase, cfg;
};

/* Every documented crash point, and where this suite makes it fire. */
static const struct point points[] = {
	{"bufmgr-before-write", PH_WORK, CF_ANY},
	{"bufmgr-after-write", PH_WORK, CF_ANY},
	{"wal-before-write", PH_WORK, CF_ANY},
	{"wal-after-write", PH_WORK, CF_ANY},
	{"wal-after-flush", PH_WORK, CF_ANY},
	{"wal-segment-before-dir-sync", PH_WORK, CF_ANY},
	{"wal-recycle-before-dir-sync", PH_WORK, CF_RECYCLE},
	{"wal-remove-before-dir-sync", PH_WORK, CF_REMOVE},
	{"wal-archive-before-sync", PH_WORK, CF_ANY},
	{"wal-archive-before-rename", PH_WORK, CF_ANY},
	{"wal-archive-before-dir-sync", PH_WORK, CF_ANY},
	{"wal-archive-after-dir-sync", PH_WORK, CF_ANY},
	{"wal-writer-before-cycle", PH_WORK | PH_TIMED, CF_ANY},
	{"wal-writer-after-cycle", PH_WORK | PH_TIMED, CF_ANY},
	{"undo-after-append", PH_WORK, CF_ANY},
	{"undo-after-apply", PH_WORK | PH_RECOVERY, CF_ANY},
	{"undo-after-clr", PH_WORK | PH_RECOVERY, CF_ANY},
	{"heap-after-wal-insert", PH_WORK, CF_ANY},
	{"heap-after-overflow-write", PH_WORK, CF_ANY},
	{"heap-delete-before-overflow-free", PH_WORK, CF_ANY},
	{"heap-update-after-new-version", PH_WORK, CF_ANY},
	{"heap-update-before-overflow-free", PH_WORK, CF_ANY},
	{"btree-split-after-wal", PH_WORK, CF_ANY},
	{"btree-newroot-after-wal", PH_WORK, CF_ANY},
	{"btree-unlink-after-wal", PH_WORK, CF_ANY},
	{"txn-create-before-catalog", PH_WORK, CF_ANY},
	{"txn-drop-before-unlink", PH_WORK, CF_ANY},
	{"txn-put-before-index", PH_WORK, CF_ANY},
	{"txn-del-before-heap", PH_WORK, CF_ANY},
	{"txn-commit-after-wal-insert", PH_WORK, CF_ANY},
	{"txn-ddl-before-commit", PH_WORK, CF_ANY},
	{"txn-loser-after-abort", PH_RECOVERY, CF_ANY},
	{"control-before-rename", PH_WORK, CF_ANY},
	{"control-before-dir-sync", PH_WORK, CF_ANY},
	{"ckpt-requested", PH_WORK, CF_ANY},
	{"ckpt-begin", PH_WORK, CF_ANY},
	{"ckpt-after-flush", PH_WORK, CF_ANY},
	{"ckpt-after-record", PH_WORK, CF_ANY},
	{"ckpt-after-control", PH_WORK, CF_ANY},
	{"recovery-after-analysis", PH_RECOVERY, CF_ANY},
	{"recovery-redo-record", PH_RECOVERY, CF_ANY},
	{"recovery-after-redo", PH_RECOVERY, CF_ANY},
	{"recovery-after-repair", PH_RECOVERY, CF_ANY},
	{"recovery-before-end-checkpoint", PH_RECOVERY, CF_ANY},
};
#define NPOINTS (sizeof points / sizeof *points)

/* name is a timed point of the table (NULL: none). */
static bool timed_point(const char *name)
{
	for (size_t i = 0; name && i < NPOINTS; i++)
		if (strcmp(points[i].name, name) == 0)
			return (points[i].phase & PH_TIMED) != 0;
	return false;
}

/*
 * Documented crash points this suite leaves out, each with the reason.
 * demo-before-sync: the demo tool's own point (tools/demo.c), in the
 * `walden demo` program, not in the engine; tests/check_demo.sh drives it.
 */
static const char *const excluded[] = {"demo-before-sync"};

/* ---- 1. completeness -------------------------------------------------------- */

/* The repository root: the working directory when it holds the module
 * READMEs (make test), else three levels above the binary
 * (build/MODE/tests/NAME). */
static char *repo_root(void)
{
	char exe[4096];
	ssize_t n;
	struct stat st;
	if (stat("storage/README.md", &st) == 0)
		return strdup(".");
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return NULL;
	exe[n] = 0;
	for (int i = 0; i < 4; i++) {
		char *slash = strrchr(exe, '/');
		if (!slash)
			return NULL;
		*slash = 0;
	}
	return strdup(exe);
}

/* name is a crash point name: lower-case letters, digits and dashes. */
static bool point_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '-'))
			return false;
	return true;
}

/* The point a crash point row names, into out: a table row whose first
 * cell is one backquoted name (`| name | where |`), or a list item that
 * starts with one (`- name - ...`). */
static bool row_point(const char *line, char *out, size_t cap)
{
	const char *a, *b;
	if (strncmp(line, "| `", 3) == 0)
		a = line + 3;
	else if (strncmp(line, "- `", 3) == 0)
		a = line + 3;
	else
		return false;
	b = strchr(a, '`');
	if (!b || !point_name(a, (size_t)(b - a)) || (size_t)(b - a) >= cap)
		return false;
	if (line[0] == '|' && strncmp(b + 1, " |", 2) != 0)
		return false;
	memcpy(out, a, (size_t)(b - a));
	out[b - a] = 0;
	return true;
}

/* Calls fn for every crash point listed under the "## Crash points"
 * heading of path. Returns the number found. */
static unsigned readme_points(const char *path, void (*fn)(const char *name, const char *file))
{
	FILE *f = fopen(path, "r");
	char line[1024], name[128];
	bool in = false;
	unsigned n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "## ", 3) == 0)
			in = strncmp(line, "## Crash points", 15) == 0;
		else if (in && row_point(line, name, sizeof name)) {
			fn(name, path);
			n++;
		}
	}
	fclose(f);
	return n;
}

static int g_missing;

static bool in_list(const char *name)
{
	for (size_t i = 0; i < NPOINTS; i++)
		if (strcmp(points[i].name, name) == 0)
			return true;
	for (size_t i = 0; i < sizeof excluded / sizeof *excluded; i++)
		if (strcmp(excluded[i], name) == 0)
			return true;
	return false;
}

static void check_listed(const char *name, const char *file)
{
	if (!in_list(name)) {
		print_error("crash point %s (%s) has no crash test in test_crashpoints.c\n", name,
			    file);
		g_missing++;
	}
}

static void test_every_point_covered(void **state)
{
	char *root = repo_root();
	unsigned found = 0, readmes = 0;
	DIR *d;
	struct dirent *e;
	(void)state;
	assert_non_null(root);
	assert_non_null(d = opendir(root));
	g_missing = 0;
	while ((e = readdir(d))) {
		char *dir = tu_path(root, e->d_name), *path = tu_path(dir, "README.md");
		struct stat st;
		if (e->d_name[0] != '.' && stat(path, &st) == 0) {
			found += readme_points(path, check_listed);
			readmes++;
		}
		free(path);
		free(dir);
	}
	closedir(d);
	print_message("%u crash points listed in %u module READMEs, %zu in this suite\n",
		      found, readmes, NPOINTS);
	/* the parser must see the tables at all: every point of the suite's
	 * table is one of them, so at least that many are found */
	if (found < NPOINTS)
		fail_msg("only %u crash points found in the READMEs under %s", found, root);
	if (g_missing)
		fail_msg("%d documented crash points have no crash test", g_missing);
	free(root);
}

/* ---- the workload and its oracle -------------------------------------------- */

#define NTHR 2
#define NTAB 4          /* c0, c1 (both threads), d0, d1 (thread 0's, 1's) */
#define RANGE 1000u     /* key ids per thread and table */
#define BURST 300u      /* ids from here on are 100-byte keys */
#define RUN 120u        /* a run of puts or deletes: that many consecutive ids */
#define MAXOPS 160u
#define VMAX (5u * PS)

static const char *const tab_names[NTAB] = {"c0", "c1", "d0", "d1"};

enum { OP_PUT, OP_DEL, OP_CREATE, OP_DROP };

/* One change of a pending transaction, as the oracle stores it. */
struct pop {
	uint8_t kind, tab, thread, pad;
	uint32_t id, vlen;
	uint64_t vseed;
};

/* The oracle's databases. */
struct odbs {
	MDB_dbi tab[NTAB];
	MDB_dbi tables;       /* table name -> "" for each table that exists */
	MDB_dbi pend[NTHR];   /* (group, seq) -> struct pop */
};

static size_t key_of(unsigned thread, uint32_t id, uint8_t *k)
{
	return dt_mixed_key(thread ? "k1" : "k0", id, BURST, k);
}

/* Applies p to the oracle's tables in mt; returns an LMDB code. */
static int op_apply(MDB_txn *mt, const struct odbs *d, const struct pop *p, uint8_t *vbuf)
{
	uint8_t k[128];
	MDB_val mk = {0, k}, mv = {0, vbuf};
	const char *name = tab_names[p->tab];
	int m;
	switch (p->kind) {
	case OP_PUT:
		mk.mv_size = key_of(p->thread, p->id, k);
		ot_fill(vbuf, p->vlen, p->vseed);
		mv.mv_size = p->vlen;
		return mdb_put(mt, d->tab[p->tab], &mk, &mv, 0);
	case OP_DEL:
		mk.mv_size = key_of(p->thread, p->id, k);
		m = mdb_del(mt, d->tab[p->tab], &mk, NULL);
		return m == MDB_NOTFOUND ? 0 : m;
	case OP_CREATE:
		mk = (MDB_val){strlen(name), (void *)name};
		mv = (MDB_val){0, (void *)""};
		return mdb_put(mt, d->tables, &mk, &mv, 0);
	default:
		mk = (MDB_val){strlen(name), (void *)name};
		if ((m = mdb_drop(mt, d->tab[p->tab], 0)) != 0)
			return m;
		m = mdb_del(mt, d->tables, &mk, NULL);
		return m == MDB_NOTFOUND ? 0 : m;
	}
}

/* Applies thread th's pending groups below upto (in order); returns an
 * LMDB code. */
static int pend_apply(MDB_txn *mt, const struct odbs *d, unsigned th, unsigned upto,
		      uint8_t *vbuf)
{
	MDB_cursor *c;
	MDB_val mk, mv;
	int m = mdb_cursor_open(mt, d->pend[th], &c);
	if (m != 0)
		return m;
	for (m = mdb_cursor_get(c, &mk, &mv, MDB_FIRST); m == 0;
	     m = mdb_cursor_get(c, &mk, &mv, MDB_NEXT)) {
		struct pop p;
		if (((const uint8_t *)mk.mv_data)[0] >= upto)
			break;
		memcpy(&p, mv.mv_data, sizeof p);
		if ((m = op_apply(mt, d, &p, vbuf)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return m == MDB_NOTFOUND ? 0 : m;
}

/* The number of pending groups of thread th (0, 1 or 2). */
static unsigned pend_groups(MDB_txn *mt, const struct odbs *d, unsigned th)
{
	MDB_cursor *c;
	MDB_val mk, mv;
	unsigned n = 0;
	MDBOK(mdb_cursor_open(mt, d->pend[th], &c));
	if (mdb_cursor_get(c, &mk, &mv, MDB_LAST) == 0)
		n = ((const uint8_t *)mk.mv_data)[0] + 1u;
	mdb_cursor_close(c);
	return n;
}

/* What the child is asked to do. */
enum { RUN_CRASH, RUN_COUNT, RUN_IMAGE };

struct run {
	const char *dir, *odir, *adir;
	uint64_t seed;
	int recycle;
	int mode;
	const char *point; /* RUN_CRASH: armed at its k-th hit */
	uint64_t k;
	uint64_t *hits;    /* RUN_COUNT: shared, one per point */
};

/* The child's state: the database, the oracle, the tables. */
struct wk {
	const struct run *r;
	wd_db *db;
	MDB_env *env;
	struct odbs d;
	wd_table *t[NTAB]; /* NULL: the table does not exist */
	unsigned ntx;      /* transactions per thread */
};

/* One thread's state. */
struct th {
	struct wk *w;
	unsigned id;
	uint64_t s;
	struct pop ops[MAXOPS];
	unsigned nops;
	bool wrote;         /* the transaction changed a row (logged something) */
	bool async_pending; /* group 0 holds an asynchronous commit */
	uint8_t *v;
};

static void die(const char *what, int rc)
{
	fprintf(stderr, "workload: %s: %s (%s)\n", what, wd_strerror(rc), wd_last_error());
	_exit(4);
}

static void options(wd_options *o, const struct run *r)
{
	dt_opts(o, 1);
	o->buffer_pool_bytes = 64u * PS; /* pages are evicted all the time */
	o->wal_segment_size = 64u << 10;
	o->wal_buffers_bytes = 1u << 20;
	o->wal_writer_delay_ms = 5;
	o->wal_recycle = r->recycle;
	o->archive_dir = r->adir;
}

/* Writes the transaction's changes to the thread's pending list as group
 * g, durably for a killed process (the oracle is MDB_NOSYNC). */
static void th_pend(struct th *h, unsigned g)
{
	MDB_txn *mt;
	CMDBOK(mdb_txn_begin(h->w->env, NULL, 0, &mt));
	for (unsigned i = 0; i < h->nops; i++) {
		uint8_t kb[5] = {(uint8_t)g, (uint8_t)(i >> 24), (uint8_t)(i >> 16),
				 (uint8_t)(i >> 8), (uint8_t)i};
		MDB_val mk = {sizeof kb, kb}, mv = {sizeof h->ops[i], &h->ops[i]};
		CMDBOK(mdb_put(mt, h->w->d.pend[h->id], &mk, &mv, 0));
	}
	CMDBOK(mdb_txn_commit(mt));
}

/* The acknowledged commit settles every pending group of the thread. */
static void th_settle(struct th *h)
{
	MDB_txn *mt;
	CMDBOK(mdb_txn_begin(h->w->env, NULL, 0, &mt));
	CMDBOK(pend_apply(mt, &h->w->d, h->id, 2, h->v));
	CMDBOK(mdb_drop(mt, h->w->d.pend[h->id], 0));
	CMDBOK(mdb_txn_commit(mt));
	h->async_pending = false;
}

/* Commits x: its changes pending first, then wd_commit, then (durable)
 * into the oracle's tables. A transaction that changed nothing (only
 * deletes of absent keys) logs no commit record and flushes nothing (txn
 * README P7), so its commit settles nothing: an asynchronous commit before
 * it stays pending. */
static void th_commit(struct th *h, wd_txn *x, bool async)
{
	int rc;
	if (!h->wrote) {
		if ((rc = wd_commit(x)) != 0)
			die("commit", rc);
		return;
	}
	th_pend(h, h->async_pending ? 1 : 0);
	if ((rc = wd_commit(x)) != 0)
		die("commit", rc);
	if (async)
		h->async_pending = true;
	else
		th_settle(h);
}

/* One put or delete of key id in table tab, recorded in ops. */
static void th_change(struct th *h, wd_txn *x, unsigned tab, uint32_t id, bool del)
{
	struct pop *p = &h->ops[h->nops++];
	uint8_t k[128];
	size_t kl = key_of(h->id, id, k);
	int rc;
	*p = (struct pop){.kind = del ? OP_DEL : OP_PUT, .tab = (uint8_t)tab,
			  .thread = (uint8_t)h->id, .id = id};
	if (del) {
		rc = wd_del(x, h->w->t[tab], k, kl);
		if (rc == 0)
			h->wrote = true;
		else if (rc == WD_NOTFOUND)
			rc = 0;
	} else {
		h->wrote = true;
		p->vlen = dt_mixed_vlen(&h->s, 2 * PS, VMAX);
		p->vseed = tu_rand(&h->s);
		ot_fill(h->v, p->vlen, p->vseed);
		rc = wd_put(x, h->w->t[tab], k, kl, h->v, p->vlen);
	}
	if (rc != 0)
		die(del ? "del" : "put", rc);
}

/* A table of the thread's: a shared one, or now and then its own. */
static unsigned th_table(struct th *h)
{
	unsigned own = 2 + h->id;
	if (h->w->t[own] && tu_rand(&h->s) % 4 == 0)
		return own;
	return (unsigned)(tu_rand(&h->s) % 2);
}

/* Creates the thread's own table, or drops it, in a transaction of its
 * own (durable when the call returns). */
static void th_ddl(struct th *h)
{
	unsigned tab = 2 + h->id;
	bool drop = h->w->t[tab] != NULL;
	wd_txn *x;
	int rc;
	h->ops[0] = (struct pop){.kind = drop ? OP_DROP : OP_CREATE, .tab = (uint8_t)tab,
				 .thread = (uint8_t)h->id};
	h->nops = 1;
	if ((rc = wd_begin(h->w->db, &x)) != 0)
		die("begin", rc);
	th_pend(h, h->async_pending ? 1 : 0);
	if (drop) {
		rc = wd_table_drop(x, tab_names[tab]);
		h->w->t[tab] = NULL;
	} else {
		rc = wd_table_open(x, tab_names[tab], WD_CREATE, &h->w->t[tab]);
	}
	if (rc != 0)
		die(drop ? "drop" : "create", rc);
	if ((rc = wd_commit(x)) != 0)
		die("ddl commit", rc);
	th_settle(h);
}

/*
 * One transaction: a run of deletes (1 in 8) or puts (1 in 8) of
 * consecutive keys (the puts split leaves and internal pages, the deletes
 * empty leaves so they are unlinked), else 1-12 random changes
 * with (1 in 4) a savepoint halfway, rolled back to half the time; thread
 * 0 takes a checkpoint in the middle of every 6th; 1 in 8 aborts; 1 in 6
 * commits asynchronously (never two in a row).
 */
static void th_txn(struct th *h, unsigned i)
{
	wd_txn *x;
	bool async = !h->async_pending && tu_rand(&h->s) % 6 == 0;
	unsigned r = (unsigned)(tu_rand(&h->s) % 8), n, sp, mark = 0;
	int rc;
	if ((rc = wd_begin(h->w->db, &x)) != 0)
		die("begin", rc);
	if (async && (rc = wd_txn_set_synchronous(x, 0)) != 0)
		die("set_synchronous", rc);
	h->nops = 0;
	h->wrote = false;
	if (r <= 1) {
		unsigned tab = th_table(h);
		uint32_t a = (uint32_t)(tu_rand(&h->s) % RANGE);
		for (uint32_t id = a; id < a + RUN && id < RANGE; id++)
			th_change(h, x, tab, id, r == 0);
	} else {
		n = 1 + (unsigned)(tu_rand(&h->s) % 12);
		sp = tu_rand(&h->s) % 4 == 0 ? n / 2 : n + 1;
		for (unsigned j = 0; j < n; j++) {
			if (j == sp) {
				if ((rc = wd_savepoint(x, "sp")) != 0)
					die("savepoint", rc);
				mark = h->nops;
			}
			th_change(h, x, th_table(h), (uint32_t)(tu_rand(&h->s) % RANGE),
				  tu_rand(&h->s) % 5 == 0);
		}
		if (sp < n && tu_rand(&h->s) % 2) {
			if ((rc = wd_rollback_to(x, "sp")) != 0)
				die("rollback_to", rc);
			h->nops = mark;
		}
	}
	if (h->id == 0 && i % 6 == 5 && (rc = wd_checkpoint(h->w->db)) != 0)
		die("checkpoint", rc);
	if (tu_rand(&h->s) % 8 == 0) {
		if ((rc = wd_abort(x)) != 0)
			die("abort", rc);
		return;
	}
	th_commit(h, x, async);
}

static void *th_main(void *arg)
{
	struct th *h = arg;
	for (unsigned i = 0; i < h->w->ntx; i++) {
		th_txn(h, i);
		if (tu_rand(&h->s) % 12 == 0)
			th_ddl(h);
	}
	return NULL;
}

/* After the workload (RUN_IMAGE): a loser with changes of several kinds,
 * made durable by a last synchronous commit, then the process ends
 * without closing. */
static void image_end(struct th *h)
{
	wd_txn *loser;
	int rc;
	if ((rc = wd_begin(h->w->db, &loser)) != 0)
		die("begin", rc);
	h->nops = 0;
	h->wrote = false;
	for (unsigned j = 0; j < 60; j++)
		th_change(h, loser, (unsigned)(j % 2), (uint32_t)(tu_rand(&h->s) % RANGE),
			  j % 4 == 3);
	h->nops = 0;
	h->wrote = false;
	{
		wd_txn *x;
		if ((rc = wd_begin(h->w->db, &x)) != 0)
			die("begin", rc);
		th_change(h, x, 0, RANGE + 1, false); /* a key no other uses */
		th_commit(h, x, false);
	}
	_exit(0);
}

/* The forked child: builds the database and oracle, arms the point, runs
 * two threads, and reports (RUN_COUNT), ends with a loser (RUN_IMAGE), or
 * says the point was never reached (exit 5). */
static void workload_child(void *arg)
{
	const struct run *r = arg;
	struct wk w = {.r = r, .ntx = (unsigned)(120 * (dt_scale() < 0.5 ? 0.5 : dt_scale())) + 12};
	struct th th[NTHR];
	pthread_t tid[NTHR];
	uint64_t base[NPOINTS];
	wd_options o;
	MDB_txn *mt;
	int rc;
	options(&o, r);
	CMDBOK(mdb_env_create(&w.env));
	CMDBOK(mdb_env_set_mapsize(w.env, 1ull << 30));
	CMDBOK(mdb_env_set_maxdbs(w.env, 16));
	CMDBOK(mdb_env_open(w.env, r->odir, MDB_NOSYNC | MDB_NOMETASYNC, 0644));
	if ((rc = wd_open(r->dir, &o, &w.db)) != 0)
		die("open", rc);
	CMDBOK(mdb_txn_begin(w.env, NULL, 0, &mt));
	for (unsigned i = 0; i < NTAB; i++)
		CMDBOK(mdb_dbi_open(mt, tab_names[i], MDB_CREATE, &w.d.tab[i]));
	CMDBOK(mdb_dbi_open(mt, "tables", MDB_CREATE, &w.d.tables));
	CMDBOK(mdb_dbi_open(mt, "pend0", MDB_CREATE, &w.d.pend[0]));
	CMDBOK(mdb_dbi_open(mt, "pend1", MDB_CREATE, &w.d.pend[1]));
	for (unsigned i = 0; i < 2; i++) {
		struct pop p = {.kind = OP_CREATE, .tab = (uint8_t)i};
		wd_txn *x;
		if ((rc = wd_begin(w.db, &x)) != 0 ||
		    (rc = wd_table_open(x, tab_names[i], WD_CREATE, &w.t[i])) != 0 ||
		    (rc = wd_commit(x)) != 0)
			die("create", rc);
		CMDBOK(op_apply(mt, &w.d, &p, NULL));
	}
	CMDBOK(mdb_txn_commit(mt));
	for (size_t i = 0; i < NPOINTS; i++)
		base[i] = storage_crash_hits(points[i].name);
	if (r->mode == RUN_CRASH)
		storage_crash_arm(r->point, r->k);
	for (unsigned i = 0; i < NTHR; i++) {
		th[i] = (struct th){.w = &w, .id = i, .s = r->seed * 2 + i + 1,
				    .v = malloc(VMAX)};
		if (!th[i].v || pthread_create(&tid[i], NULL, th_main, &th[i]) != 0)
			die("thread", WD_ENOMEM);
	}
	for (unsigned i = 0; i < NTHR; i++)
		pthread_join(tid[i], NULL);
	if (r->mode == RUN_IMAGE)
		image_end(&th[0]);
	if (r->mode == RUN_COUNT) {
		for (size_t i = 0; i < NPOINTS; i++)
			r->hits[i] = storage_crash_hits(points[i].name) - base[i];
		_exit(0);
	}
	for (unsigned s = 0; s < 600 && timed_point(r->point); s++)
		usleep(100 * 1000); /* the writer's cycles go on: one will die */
	fprintf(stderr, "workload: ended without reaching %s #%llu\n", r->point,
		(unsigned long long)r->k);
	_exit(5);
}

/* ---- the parent's check ----------------------------------------------------- */

/* db_catalog_list callback: appends the table's name and a space to the
 * 256-byte buffer arg (what does not fit is left out). */
static int list_name(void *arg, const db_table_info *ti)
{
	char *names = arg;
	size_t n = strlen(names);
	snprintf(names + n, 256 - n, "%s ", ti->name);
	return 0;
}

/* db equals the oracle state in mt: the same tables, each with the same
 * keys and values. Else false, diag saying what differs. */
static bool state_equal(wd_db *db, MDB_txn *mt, const struct odbs *d, char *diag, size_t cap)
{
	char have[256] = "", want[256] = "";
	bool eq = true;
	for (unsigned i = 0; i < NTAB; i++) {
		MDB_val mk = {strlen(tab_names[i]), (void *)tab_names[i]}, mv;
		if (mdb_get(mt, d->tables, &mk, &mv) == 0) {
			strcat(want, tab_names[i]);
			strcat(want, " ");
		}
	}
	OK(db_catalog_list(db, list_name, have));
	if (strcmp(have, want) != 0) {
		snprintf(diag, cap, "walden has the tables [%.200s], the oracle [%.200s]", have, want);
		return false;
	}
	for (unsigned i = 0; i < NTAB && eq; i++) {
		char sub[400];
		wd_txn *x;
		wd_table *t;
		if (!strstr(want, tab_names[i]))
			continue;
		OK(wd_begin_flags(db, WD_TXN_RDONLY, &x));
		OK(wd_table_open(x, tab_names[i], 0, &t));
		eq = ot_scan_equal(x, t, mt, d->tab[i], sub, sizeof sub, NULL);
		if (!eq)
			snprintf(diag, cap, "table %s: %.400s", tab_names[i], sub);
		OK(wd_commit(x));
	}
	return eq;
}

/*
 * The database must equal the oracle in odir with, for each thread, a
 * prefix of its pending groups applied (the in-flight rule). Returns the
 * number of groups that landed, for the summary.
 */
static unsigned verify(wd_db *db, const char *odir, const char *when)
{
	ot_oracle o;
	struct odbs d;
	MDB_txn *mt;
	unsigned ng[NTHR], landed = 0;
	char diag[512] = "", first[512] = "";
	bool ok = false;
	uint8_t *vbuf = malloc(VMAX);
	assert_non_null(vbuf);
	ot_reopen(&o, odir);
	for (unsigned i = 0; i < NTAB; i++)
		d.tab[i] = ot_dbi(&o, tab_names[i]);
	d.tables = ot_dbi(&o, "tables");
	d.pend[0] = ot_dbi(&o, "pend0");
	d.pend[1] = ot_dbi(&o, "pend1");
	mt = ot_begin(&o, NULL);
	for (unsigned t = 0; t < NTHR; t++)
		ng[t] = pend_groups(mt, &d, t);
	for (unsigned p0 = 0; p0 <= ng[0] && !ok; p0++)
		for (unsigned p1 = 0; p1 <= ng[1] && !ok; p1++) {
			MDB_txn *nt = ot_begin(&o, mt);
			MDBOK(pend_apply(nt, &d, 0, p0, vbuf));
			MDBOK(pend_apply(nt, &d, 1, p1, vbuf));
			ok = state_equal(db, nt, &d, diag, sizeof diag);
			if (!ok && !first[0])
				memcpy(first, diag, sizeof first);
			landed = p0 + p1;
			mdb_txn_abort(nt);
		}
	mdb_txn_abort(mt);
	ot_close(&o);
	free(vbuf);
	if (!ok)
		fail_msg("%s: the tables are none of the states the oracle allows (pending "
			 "groups %u and %u); without them: %s", when, ng[0], ng[1], first);
	return landed;
}

/* Opens dir (recovery), checks it against the oracle and every table,
 * closes, opens again and checks again. Prints the summary line. */
static void recover_and_check(const struct run *r, const char *what, uint64_t hits)
{
	const db_recovery_report *rep;
	char when[256];
	wd_options o;
	wd_db *db = NULL;
	unsigned landed;
	struct run plain = *r;
	plain.adir = r->mode == RUN_IMAGE ? NULL : r->adir;
	options(&o, &plain);
	snprintf(when, sizeof when, "%s #%llu (seed %llu)", what, (unsigned long long)r->k,
		 (unsigned long long)r->seed);
	OK(wd_open(r->dir, &o, &db));
	OK(db_recovery_report_get(db, &rep));
	landed = verify(db, r->odir, when);
	dt_check_all(db);
	print_message("%-33s hits %5llu  k %5llu  %-7s recovered: losers %llu, records "
		      "replayed %llu (applied %llu), in-flight groups landed %u\n",
		      what, (unsigned long long)hits, (unsigned long long)r->k,
		      r->mode == RUN_IMAGE ? "recov" : r->recycle ? "recycle" : "remove",
		      (unsigned long long)rep->losers, (unsigned long long)rep->redo_records,
		      (unsigned long long)rep->applied, landed);
	OK(wd_close(db));
	OK(wd_open(r->dir, &o, &db));
	strcat(when, ", reopened");
	verify(db, r->odir, when);
	dt_check_all(db);
	OK(wd_close(db));
}

/* ---- 2. crashes in the workload --------------------------------------------- */

static char *g_root;
static uint64_t g_seed;
static uint64_t *g_hits[2]; /* per config (0: remove, 1: recycle): a whole run's hits */

/* A fresh run directory (database, oracle, archive) under the root. */
static void run_dirs(struct run *r, const char *tag)
{
	char *d = tu_path(g_root, tag);
	tu_rmrf(d);
	assert_int_equal(mkdir(d, 0755), 0);
	r->dir = tu_path(d, "db");
	r->odir = tu_path(d, "oracle");
	r->adir = tu_path(d, "archive");
	assert_int_equal(mkdir(r->odir, 0755), 0);
	assert_int_equal(mkdir(r->adir, 0755), 0);
	free(d);
}

static void run_free(struct run *r, const char *tag)
{
	char *d = tu_path(g_root, tag);
	tu_rmrf(d);
	free(d);
	free((void *)r->dir);
	free((void *)r->odir);
	free((void *)r->adir);
}

static int setup(void **state)
{
	(void)state;
	g_seed = tu_seed(20240611);
	g_root = tu_tmpdir("crashpoints");
	for (int c = 0; c < 2; c++) {
		struct run r = {.seed = g_seed + (uint64_t)c, .recycle = c, .mode = RUN_COUNT};
		int status;
		g_hits[c] = tw_shared(NPOINTS * sizeof *g_hits[c]);
		r.hits = g_hits[c];
		run_dirs(&r, "count");
		status = tu_run_child(workload_child, &r);
		run_free(&r, "count");
		if (status != 0) {
			print_error("the counting run (wal_recycle %d) exited with %d\n", c, status);
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int c = 0; c < 2; c++)
		tw_shared_free(g_hits[c], NPOINTS * sizeof *g_hits[c]);
	tu_rmrf(g_root);
	free(g_root);
	return 0;
}

/* The hits to arm point i at: the first, and (not under ASan) half of a
 * whole run's, if that is a later one; for a timed point at most the
 * 16th, which the child waits for if its workload ends first (a cycle
 * every wal_writer_delay). Returns how many (1 or 2). */
static unsigned picks(const struct point *p, uint64_t hits, uint64_t k[2])
{
	k[0] = 1;
	k[1] = hits / 2;
	if ((p->phase & PH_TIMED) && k[1] > 16)
		k[1] = 16;
	return dt_scale() >= 0.5 && k[1] >= 2 ? 2 : 1;
}

/* The workload killed at point i's k-th hit, then recovered and checked. */
static void crash_work(size_t i, int recycle, uint64_t k)
{
	const struct point *p = &points[i];
	struct run r = {.seed = g_seed + (uint64_t)recycle, .recycle = recycle,
			.mode = RUN_CRASH, .point = p->name, .k = k};
	int status;
	run_dirs(&r, "run");
	status = tu_run_child(workload_child, &r);
	if (status == 5)
		fail_msg("%s: the workload (seed %llu) never reached hit %llu", p->name,
			 (unsigned long long)r.seed, (unsigned long long)k);
	if (status != ST_CRASH_EXIT_CODE)
		fail_msg("%s #%llu: the workload child exited with %d, not at the point",
			 p->name, (unsigned long long)k, status);
	recover_and_check(&r, p->name, g_hits[recycle][i]);
	run_free(&r, "run");
}

static void test_workload_points(void **state)
{
	(void)state;
	for (size_t i = 0; i < NPOINTS; i++) {
		const struct point *p = &points[i];
		int cfg[2] = {p->cfg == CF_REMOVE ? 0 : 1, p->cfg == CF_RECYCLE ? 1 : 0};
		uint64_t k[2];
		unsigned n;
		if (!(p->phase & PH_WORK))
			continue;
		if (g_hits[cfg[0]][i] == 0)
			fail_msg("%s: a whole workload (wal_recycle %d, seed %llu) never reaches it",
				 p->name, cfg[0], (unsigned long long)(g_seed + (uint64_t)cfg[0]));
		n = picks(p, g_hits[cfg[1]][i], k);
		for (unsigned j = 0; j < n; j++)
			crash_work(i, cfg[j], k[j]);
	}
}

/* ---- 3. crashes in recovery ------------------------------------------------- */

struct open_args {
	const char *dir, *point;
	uint64_t k;       /* 0: count */
	uint64_t *hits;   /* shared, one per point */
};

/* In a child: opens dir (recovery) with point armed at its k-th hit, or
 * (k 0) counts every point's hits in the open. */
static void open_child(void *arg)
{
	const struct open_args *a = arg;
	struct run plain = {.recycle = 1};
	uint64_t base[NPOINTS];
	wd_options o;
	wd_db *db;
	int rc;
	options(&o, &plain);
	for (size_t i = 0; i < NPOINTS; i++)
		base[i] = storage_crash_hits(points[i].name);
	if (a->k)
		storage_crash_arm(a->point, a->k);
	rc = wd_open(a->dir, &o, &db);
	if (rc != 0)
		die("recovery", rc);
	if (a->k) {
		fprintf(stderr, "recovery ended without reaching %s #%llu\n", a->point,
			(unsigned long long)a->k);
		_exit(5);
	}
	for (size_t i = 0; i < NPOINTS; i++)
		a->hits[i] = storage_crash_hits(points[i].name) - base[i];
	_exit(0);
}

static void test_recovery_points(void **state)
{
	struct run img = {.seed = g_seed + 7, .recycle = 1, .mode = RUN_IMAGE};
	uint64_t *hits = tw_shared(NPOINTS * sizeof *hits);
	char *copy = tu_path(g_root, "copy");
	struct open_args a = {copy, NULL, 0, hits};
	(void)state;
	run_dirs(&img, "image");
	assert_int_equal(tu_run_child(workload_child, &img), 0);
	tu_copy_tree(img.dir, copy);
	assert_int_equal(tu_run_child(open_child, &a), 0);
	tu_rmrf(copy);
	for (size_t i = 0; i < NPOINTS; i++) {
		const struct point *p = &points[i];
		uint64_t k[2];
		unsigned n;
		if (!(p->phase & PH_RECOVERY))
			continue;
		if (hits[i] == 0)
			fail_msg("%s: the recovery of the crashed workload (seed %llu) never "
				 "reaches it", p->name, (unsigned long long)img.seed);
		n = picks(p, hits[i], k);
		for (unsigned j = 0; j < n; j++) {
			struct run r = img;
			int status;
			a = (struct open_args){copy, p->name, k[j], hits};
			tu_copy_tree(img.dir, copy);
			status = tu_run_child(open_child, &a);
			if (status != ST_CRASH_EXIT_CODE)
				fail_msg("%s #%llu: the recovery child exited with %d, not at the "
					 "point", p->name, (unsigned long long)k[j], status);
			r.dir = copy;
			r.k = k[j];
			recover_and_check(&r, p->name, hits[i]);
			tu_rmrf(copy);
		}
	}
	run_free(&img, "image");
	free(copy);
	tw_shared_free(hits, NPOINTS * sizeof *hits);
}

int main(void)
{
	const struct CMUnitTest docs[] = {
		cmocka_unit_test(test_every_point_covered),
	};
	const struct CMUnitTest crashes[] = {
		cmocka_unit_test(test_workload_points),
		cmocka_unit_test(test_recovery_points),
	};
	int failed = cmocka_run_group_tests_name("crash point completeness", docs, NULL, NULL);
	failed += cmocka_run_group_tests_name("a crash at every crash point", crashes, setup,
					      teardown);
	return failed ? 1 : 0;
}
