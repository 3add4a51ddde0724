/*
 * recov_util.c - what the recovery benchmarks share (bench/recov.h): the
 * option parser, the W2 load and W5 keys of their children, walden's log
 * position, the timed recovering open and the reading of its report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/recov.h"
#include "txn/db.h"
#include "wal/wal.h"

/* ---- options ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* --max-wal: a comma list of MiB values into o, sorted. false if bad. */
static bool parse_max_wal(struct recov_opts *o, const char *arg)
{
	char buf[256], *save = NULL, *tok;
	if (strlen(arg) >= sizeof buf)
		return false;
	strcpy(buf, arg);
	o->nmax_wal = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long long v = bench_parse_count(tok);
		if (v <= 0 || v > (1 << 20) || o->nmax_wal == RECOV_MAX_WAL)
			return false;
		o->max_wal_mb[o->nmax_wal++] = (uint64_t)v;
	}
	qsort(o->max_wal_mb, (size_t)o->nmax_wal, sizeof o->max_wal_mb[0], cmp_u64);
	return o->nmax_wal > 0;
}

/* Applies option c to opts (a struct recov_opts); false if its value is
 * bad. */
static bool recov_opt(void *opts, int c, const char *arg)
{
	struct recov_opts *o = opts;
	long long v = strchr("Wcqdj", c) ? 1 : bench_parse_count(arg);
	if (v <= 0)
		return false;
	switch (c) {
	case 'n': o->t.n = v; return v <= 10000000000ll; /* 16 digits */
	case 'u': o->t.updates = v; return true;
	case 'r': o->t.runs = (int)v; return v <= RECOV_MAX_RUNS;
	case 'm': o->t.pool_mb = (uint64_t)v; return v <= (1 << 20);
	case 'g': o->gen_pool_mb = (uint64_t)v; return v <= (1 << 20);
	case 'w': o->wal_mb = (uint64_t)v; return v <= (1 << 20);
	case 'W': return parse_max_wal(o, arg);
	case 'c': o->cold = true; return true;
	case 'q': o->quick = true; return true;
	case 'd': o->t.base = arg; return true;
	case 'j': o->t.json = true; return true;
	}
	return false;
}

/* Parses argv into o with c's options, then fills what was not given
 * from c's defaults. Returns 0, 1 after --help (exit 0), 2 on misuse
 * (usage printed). */
static int recov_parse(int argc, char **argv, const struct recov_cmd *c, struct recov_opts *o)
{
	const struct recov_opts *d;
	int rc = bench_getopt(argc, argv, c->shortopts, c->longopts, recov_opt, o, c->usage);
	if (rc != 0)
		return rc;
	d = o->quick ? &c->quick : &c->full;
#define DEFAULT(f) (o->f = o->f ? o->f : d->f)
	DEFAULT(t.n), DEFAULT(t.updates), DEFAULT(t.runs), DEFAULT(t.pool_mb);
	DEFAULT(wal_mb), DEFAULT(gen_pool_mb);
#undef DEFAULT
	if (!o->nmax_wal) {
		o->nmax_wal = d->nmax_wal;
		memcpy(o->max_wal_mb, d->max_wal_mb, sizeof o->max_wal_mb);
	}
	o->t.cmd = argv[0];
	o->t.value_bytes = RECOV_VALUE_BYTES;
	return 0;
}

int recov_main(int argc, char **argv, const struct recov_cmd *c)
{
	struct recov_opts o = {0};
	const char *fs;
	char *dir;
	void *res = NULL;
	bool tmpfs;
	int rc = recov_parse(argc, argv, c, &o);
	if (rc != 0)
		return rc == 1 ? 0 : 2;
	if (!(dir = bench_disk_dir(o.t.base, o.t.cmd, &tmpfs))) {
		fprintf(stderr, "walden bench %s: scratch directory: %s\n", o.t.cmd, strerror(errno));
		return 1;
	}
	fs = tmpfs ? "tmpfs: durable commits are meaningless here" : "disk";
	rc = 1;
	if (!(res = calloc(1, c->head_size + (size_t)o.t.runs * c->run_size)))
		fprintf(stderr, "walden bench %s: out of memory\n", o.t.cmd);
	else if (c->measure(&o, dir, res) == 0) {
		c->report(&o, dir, fs, res);
		rc = 0;
	}
	free(res);
	bench_rmrf(dir);
	free(dir);
	return rc;
}

/* ---- in a child ---- */

double recov_load(const struct engine *e, struct eh *h, long long n, int run)
{
	uint64_t *perm = key_permutation((uint64_t)n, 0x5EEDull + (uint64_t)run);
	struct keysrc src = {.mode = K_PERM, .perm = perm, .n = (uint64_t)n};
	uint64_t t0 = bench_now_ns();
	double ops;
	if (!perm) {
		snprintf(h->err, sizeof h->err, "out of memory");
		return -1;
	}
	ops = tables_puts(e, h, &src, (uint64_t)n, W2_PER_TXN, 0);
	free(perm);
	return ops < 0 ? -1 : (double)(bench_now_ns() - t0) / 1e9;
}

struct keysrc recov_update_keys(long long n, int run)
{
	return (struct keysrc){.mode = K_RAND, .n = (uint64_t)n,
			       .state = 0x7AB1E5ull * (uint64_t)(run + 1) + 4};
}

wd_lsn recov_insert_pos(const struct eh *h)
{
	return wal_insert_pos(db_wal(h->db));
}

uint64_t recov_wal_since_redo(const struct eh *h)
{
	struct wal *w = db_wal(h->db);
	wd_lsn pos = wal_insert_pos(w), redo = wal_redo_point(w);
	return pos > redo ? pos - redo : 0;
}

/*
 * The one place that reads walden's recovery report (txn/db.h): the open
 * that recovered db, into r. WD_NOTFOUND if that open did not recover.
 */
static int report_read(wd_db *db, struct recov_rep *r)
{
	const db_recovery_report *rr;
	int rc = db_recovery_report_get(db, &rr);
	if (rc != 0)
		return rc;
	*r = (struct recov_rep){
		.wal_bytes = rr->wal_end > rr->redo_start ? (double)(rr->wal_end - rr->redo_start) : 0,
		.records = (double)rr->records,
		.applied = (double)rr->applied,
		.skipped = (double)rr->skipped,
		.images = (double)rr->images,
		.losers = (double)rr->losers,
		.analysis_ms = rr->analysis_ms,
		.redo_ms = rr->redo_ms,
		.repair_ms = rr->repair_ms,
		.undo_ms = rr->undo_ms,
		.checkpoint_ms = rr->checkpoint_ms,
	};
	return 0;
}

int recov_check_keys(const struct engine *e, struct eh *h, long long n, uint64_t seed)
{
	uint8_t k[KEY_BYTES];
	if (e->begin(h, false) != 0)
		return -1;
	for (int i = 0; i < RECOV_CHECK_KEYS; i++) {
		const void *v;
		size_t vl;
		int rc;
		key_fmt(k, bench_rand(&seed) % (uint64_t)n);
		if ((rc = e->get(h, k, KEY_BYTES, &v, &vl)) != 0 || !value_ok(h, k, v, vl)) {
			if (rc >= 0)
				snprintf(h->err, sizeof h->err, "after recovery, key %.16s: %s",
					 (const char *)k, rc ? "not found" : "wrong value");
			e->abort(h);
			return -1;
		}
	}
	return e->commit(h);
}

/* The table of the recovered database and a walden engine handle on it. */
static int attach_table(wd_db *db, const struct tables_opts *t, struct eh *h)
{
	struct eh base = {.o = t, .db = db};
	wd_txn *x;
	int rc = wd_begin(db, &x);
	if (rc == 0 && (rc = wd_table_open(x, TABLES_TABLE_NAME, 0, &base.t)) != 0)
		(void)wd_abort(x);
	else if (rc == 0)
		rc = wd_commit(x);
	if (rc != 0) {
		snprintf(h->err, sizeof h->err, "table %s after recovery: %s: %s", TABLES_TABLE_NAME,
			 wd_strerror(rc), wd_last_error());
		return -1;
	}
	return walden_engine.attach(h, &base);
}

int recov_open_timed(const struct recov_opts *o, const char *dir, uint64_t pool_bytes,
		     double *open_s, struct recov_rep *r, char *err, size_t err_cap)
{
	struct eh h = {.o = &o->t};
	wd_options wo;
	wd_db *db = NULL;
	uint64_t t0;
	int rc;

	wd_options_default(&wo);
	wo.buffer_pool_bytes = pool_bytes;
	t0 = bench_now_ns();
	rc = wd_open(dir, &wo, &db);
	*open_s = (double)(bench_now_ns() - t0) / 1e9;
	if (rc != 0) {
		snprintf(err, err_cap, "wd_open %s: %s: %s", dir, wd_strerror(rc), wd_last_error());
		return -1;
	}
	if (report_read(db, r) != 0) {
		snprintf(err, err_cap, "wd_open %s ran no recovery", dir);
		(void)wd_close(db);
		return -1;
	}
	rc = attach_table(db, &o->t, &h) == 0 &&
			     recov_check_keys(&walden_engine, &h, o->t.n, 0xC4EC4ull) == 0
		     ? 0
		     : -1;
	if (rc != 0)
		snprintf(err, err_cap, "%s", h.err);
	walden_engine.detach(&h);
	if (wd_close(db) != 0 && rc == 0) {
		snprintf(err, err_cap, "wd_close after recovery: %s", wd_last_error());
		rc = -1;
	}
	return rc;
}

/* What recover_body gets. */
struct recover_job {
	const struct recov_opts *o;
	const char *dir;
	uint64_t pool_bytes;
};

static void recover_body(void *arg, void *res)
{
	const struct recover_job *j = arg;
	struct recov_res *r = res;
	if (recov_open_timed(j->o, j->dir, j->pool_bytes, &r->open_s, &r->rep, r->err,
			     sizeof r->err) == 0)
		r->ok = 1;
}

int recov_recover(const struct recov_opts *o, const char *dir, uint64_t pool_bytes,
		  struct recov_res *r)
{
	struct recover_job j = {o, dir, pool_bytes};
	double resident = 0, total = 0, pct = 0;
	memset(r, 0, sizeof *r);
	if (bench_cache_resident(dir, &resident, &total) == 0 && total > 0)
		pct = 100 * resident / total;
	if (bench_fork(recover_body, &j, r, sizeof *r, NULL, r->err, sizeof r->err) != 0 || !r->ok)
		return -1;
	r->resident_pct = pct;
	return 0;
}
