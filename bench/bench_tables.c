/*
 * bench_tables.c - `walden bench load|read|scan|update|tables`: the public
 * table API (wd_put, wd_get, cursors) beside LMDB on the same workloads in
 * the same run, each rate as a walden/LMDB ratio against its target.
 *
 * Keys are 16 bytes, the zero-padded decimal of a number below N; values
 * are --value-bytes (default 100) bytes that begin with the key's digits and
 * a version byte (so every read is checked). The workloads:
 *
 *   W1 seq-load     keys 0..N-1 in order, 1000 puts per durable commit
 *   W2 rand-load    the same keys in a random permutation
 *   W3 point-read   --reads (N) random gets, cache warm, 1000 per transaction
 *   W4 scan         one full ordered cursor scan (N keys, checked in order)
 *   W5 rand-update  --updates (N/5) random overwrites, 100 per durable commit
 *
 * A job is one forked child per (run, engine): it clears its peak RSS,
 * builds its key order, opens a fresh database, loads it (W1 or W2, timed
 * when that workload was asked for), runs the asked-for phases W3, W4, W5
 * in that order on the loaded table, closes the database (timed apart:
 * walden writes its dirty pages there), sums the files under its directory
 * (apparent and allocated bytes) and sends all of it to the parent through
 * a pipe with its VmHWM. Separate processes keep the engines from sharing a
 * heap, pool or map; the OS page cache is shared. The engines alternate
 * which goes first from run to run. Rates are the medians of --runs runs;
 * ratios are the medians of the per-run ratios.
 *
 * walden: wd_options_default, buffer_pool_bytes from --pool-mb, synchronous
 * commit. LMDB: default (durable) flags, one write transaction per batch,
 * read-only transactions for gets and the scan, mdb_get and mdb_cursor_get.
 *
 * The engines sit behind one interface (bench/tables.h, tables_engines.c),
 * so both run this file's workload loops unchanged.
 *
 * Entry points: bench_load_main, bench_read_main, bench_scan_main,
 * bench_update_main, bench_tables_main.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/tables.h"

#define MAX_RUNS 101
#define READ_PER_TXN 1000
#define MIB (1024.0 * 1024.0)

enum wl { W_SEQ, W_RAND, W_READ, W_SCAN, W_UPDATE, W__N };
#define WL(w) (1u << (w))

static const struct {
	const char *label;
	const char *json;
	double target; /* walden ops/s over LMDB ops/s */
} wls[W__N] = {
	{"W1 seq-load, 1000 puts/txn", "seq_load", 0.8},
	{"W2 rand-load, 1000 puts/txn", "rand_load", 3},
	{"W3 point-read, 1000 gets/txn", "point_read", 0.8},
	{"W4 full cursor scan", "scan", 0.3},
	{"W5 rand-update, 100 puts/txn", "rand_update", 3},
};

enum { E_WALDEN, E_LMDB, E__N };
static const char *const eng_names[E__N] = {"walden", "lmdb"};

/* A job loads with W_SEQ (then runs W3..W5 if asked) or with W_RAND. */
enum { J_SEQ, J_RAND, J__N };
static const char *const job_names[J__N] = {"seq", "rand"};


/* What a child sends back. Rates of workloads not measured stay 0. */
struct child_res {
	int ok;
	double ops[W__N];
	double close_s;
	double rss_base_kb, rss_peak_kb;
	double disk_bytes, disk_alloc, wal_bytes, wal_alloc;
	char err[512];
};

/* ---- options ---------------------------------------------------------------- */

static void tables_usage(FILE *f, const char *name)
{
	fprintf(f,
		"usage: walden bench %s [options]\n"
		"walden's table API beside LMDB on the same workload in the same run:\n"
		"  load    W1 sequential and W2 random load, 1000 puts per durable commit\n"
		"  read    W3 random point gets on a loaded table, 1000 per transaction\n"
		"  scan    W4 one full ordered cursor scan of a loaded table\n"
		"  update  W5 random overwrites, 100 per durable commit\n"
		"  tables  all five\n"
		"Keys are 16-byte zero-padded decimals. A table and a JSON line.\n"
		"  -n, --n N             keys loaded (default 1000000)\n"
		"  -r, --runs N          runs; medians are reported (default 3)\n"
		"  -m, --pool-mb N       walden buffer pool in MiB (default 256)\n"
		"  -v, --value-bytes N   value size (default 100)\n"
		"  -R, --reads N         W3 gets (default N)\n"
		"  -u, --updates N       W5 overwrites (default N/5)\n"
		"  -d, --dir DIR         scratch directory base (default $TMPDIR or\n"
		"                        /var/tmp; must be a real disk, not tmpfs)\n"
		"  -H, --no-huge-pages   walden's pool on ordinary pages (huge_pages 0;\n"
		"                        default: 2 MiB pages where the kernel has THP)\n"
		"  -j, --json            print only the JSON line\n"
		"  -h, --help            this text\n"
		"Each engine and run is a forked child; its peak RSS (VmHWM) and the\n"
		"database's size on disk are reported. The scratch files are removed.\n",
		name);
}

/* Applies one option to opts (a struct tables_opts); false if its value
 * is bad. */
static bool tables_opt(void *opts, int c, const char *arg)
{
	struct tables_opts *o = opts;
	long long v = c == 'd' || c == 'j' || c == 'H' ? 1 : bench_parse_count(arg);
	if (v <= 0)
		return false;
	switch (c) {
	case 'n': o->n = v; return v <= 10000000000ll; /* 16 digits; memory */
	case 'r': o->runs = (int)v; return v <= MAX_RUNS;
	case 'm': o->pool_mb = (uint64_t)v; return v <= (1 << 20);
	case 'v': o->value_bytes = (size_t)v; return v <= (1 << 20);
	case 'R': o->reads = v; return true;
	case 'u': o->updates = v; return true;
	case 'd': o->base = arg; return true;
	case 'j': o->json = true; return true;
	case 'H': o->no_huge = true; return true;
	}
	return false;
}

/* Parses argv into o. Returns 0, 1 after --help (exit 0), 2 on misuse. */
static int tables_parse(int argc, char **argv, struct tables_opts *o)
{
	static const struct option longopts[] = {
		{"n", required_argument, NULL, 'n'},
		{"runs", required_argument, NULL, 'r'},
		{"pool-mb", required_argument, NULL, 'm'},
		{"value-bytes", required_argument, NULL, 'v'},
		{"reads", required_argument, NULL, 'R'},
		{"updates", required_argument, NULL, 'u'},
		{"dir", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},
		{"no-huge-pages", no_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int rc = bench_getopt(argc, argv, "n:r:m:v:R:u:d:jHh", longopts, tables_opt, o, tables_usage);
	if (rc != 0)
		return rc;
	if (!o->reads)
		o->reads = o->n;
	if (!o->updates)
		o->updates = o->n / 5 ? o->n / 5 : 1;
	return 0;
}

static const struct engine *const engines[E__N] = {&walden_engine, &lmdb_engine};

/* ---- keys, values and the workloads ------------------------------------------ */

/* W3: count gets of keys from src, READ_PER_TXN per transaction, each
 * value checked. Returns ops/s, -1 on error or a wrong or missing value. */
static double run_gets(const struct engine *e, struct eh *h, struct keysrc *src,
		       uint64_t count)
{
	uint8_t k[KEY_BYTES];
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < count; i++) {
		const void *v;
		size_t vl;
		int rc;
		if (i % READ_PER_TXN == 0 && e->begin(h, false) != 0)
			return -1;
		key_fmt(k, key_next(src));
		if ((rc = e->get(h, k, KEY_BYTES, &v, &vl)) != 0 || !value_ok(h, k, v, vl)) {
			if (rc >= 0)
				snprintf(h->err, sizeof h->err, "get %.16s: %s", (const char *)k,
					 rc ? "not found" : "wrong value");
			return -1;
		}
		if (((i + 1) % READ_PER_TXN == 0 || i + 1 == count) && e->commit(h) != 0)
			return -1;
	}
	return bench_rate(count, t0);
}

/* W4: one cursor pass over the table in a read transaction, checking that
 * the n keys come in increasing order with their values. Returns rows/s,
 * -1 on error. */
static double run_scan(const struct engine *e, struct eh *h, uint64_t n)
{
	uint8_t prev[KEY_BYTES] = {0};
	uint64_t rows = 0, t0 = bench_now_ns();
	const void *k, *v;
	size_t kl, vl;
	int rc;
	if (e->begin(h, false) != 0 || e->cur_open(h) != 0)
		return -1;
	while ((rc = e->cur_next(h, &k, &kl, &v, &vl)) == 0) {
		if (kl != KEY_BYTES || (rows && memcmp(prev, k, KEY_BYTES) >= 0) ||
		    !value_ok(h, k, v, vl)) {
			snprintf(h->err, sizeof h->err, "scan: row %llu out of order or wrong",
				 (unsigned long long)rows);
			return -1;
		}
		memcpy(prev, k, KEY_BYTES);
		rows++;
	}
	e->cur_close(h);
	if (rc < 0 || e->commit(h) != 0)
		return -1;
	if (rows != n) {
		snprintf(h->err, sizeof h->err, "scan: %llu rows, expected %llu",
			 (unsigned long long)rows, (unsigned long long)n);
		return -1;
	}
	return bench_rate(rows, t0);
}

/* ---- one child: a job on one engine ------------------------------------------ */

/* Resets this process's peak RSS (VmHWM) to its current RSS. */
static void hwm_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "5", 1) != 1) {
			/* older kernels: the peak then includes the parent's */
		}
		close(fd);
	}
}

/* A "Field:   123 kB" line of /proc/self/status, in kB; 0 if absent. */
static double proc_status_kb(const char *field)
{
	char line[256];
	double kb = 0;
	size_t len = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, len) == 0) {
			kb = atof(line + len);
			break;
		}
	fclose(f);
	return kb;
}

/* Measures workload w into r->ops[w] if it was asked for (or always runs
 * it when it is the job's load). false on error. */
static bool phase(const struct tables_opts *o, const struct engine *e, struct eh *h,
		  enum wl w, int run, const uint64_t *perm, struct child_res *r)
{
	struct keysrc src = {.n = (uint64_t)o->n, .state = 0x7AB1E5ull * (uint64_t)(run + 1) + w};
	double ops;
	switch (w) {
	case W_SEQ:
	case W_RAND:
		src.mode = perm ? K_PERM : K_SEQ;
		src.perm = perm;
		ops = tables_puts(e, h, &src, (uint64_t)o->n, W2_PER_TXN, 0);
		break;
	case W_READ:
		src.mode = K_RAND;
		ops = run_gets(e, h, &src, (uint64_t)o->reads);
		break;
	case W_SCAN: ops = run_scan(e, h, (uint64_t)o->n); break;
	default:
		src.mode = K_RAND;
		ops = tables_puts(e, h, &src, (uint64_t)o->updates, W5_PER_TXN, 1);
		break;
	}
	if (ops < 0)
		return false;
	if (o->mask & WL(w))
		r->ops[w] = ops;
	return true;
}

/* The body of a child: job j of engine eng in run `run`, in dir. */
static void child_job(const struct tables_opts *o, int eng, int j, int run, const char *dir,
		      struct child_res *r)
{
	const struct engine *e = engines[eng];
	struct eh h = {.o = o};
	struct bench_du d;
	uint64_t *perm = NULL;
	uint64_t t0;

	hwm_reset();
	if (j == J_RAND && !(perm = key_permutation((uint64_t)o->n, 0x5EEDull + (uint64_t)run))) {
		snprintf(r->err, sizeof r->err, "out of memory");
		return;
	}
	r->rss_base_kb = proc_status_kb("VmRSS:");
	if (e->open(&h, dir) != 0 || !phase(o, e, &h, j == J_RAND ? W_RAND : W_SEQ, run, perm, r))
		goto fail;
	for (enum wl w = W_READ; j == J_SEQ && w <= W_UPDATE; w++)
		if ((o->mask & WL(w)) && !phase(o, e, &h, w, run, NULL, r))
			goto fail;
	t0 = bench_now_ns();
	if (e->close(&h) != 0)
		goto fail;
	r->close_s = (double)(bench_now_ns() - t0) / 1e9;
	bench_du(dir, &d);
	r->disk_bytes = d.bytes;
	r->disk_alloc = d.alloc;
	r->wal_bytes = d.wal_bytes;
	r->wal_alloc = d.wal_alloc;
	r->rss_peak_kb = proc_status_kb("VmHWM:");
	r->ok = 1;
	free(perm);
	return;
fail:
	snprintf(r->err, sizeof r->err, "%s", h.err);
	free(perm);
}

/* What spawn_job hands its child. */
struct job {
	const struct tables_opts *o;
	int eng, j, run;
	const char *dir;
};

static void job_body(void *arg, void *res)
{
	const struct job *jb = arg;
	child_job(jb->o, jb->eng, jb->j, jb->run, jb->dir, res);
}

/* Runs child_job in a forked child and collects its result into r. The
 * database directory is removed afterwards. 0 or -1 (message printed). */
static int spawn_job(const struct tables_opts *o, int eng, int j, int run, const char *base,
		     struct child_res *r)
{
	char dir[4200];
	struct job jb = {o, eng, j, run, dir};
	struct rusage ru = {0};
	int rc;

	snprintf(dir, sizeof dir, "%s/%s-%s-%d", base, eng_names[eng], job_names[j], run);
	memset(r, 0, sizeof *r);
	rc = bench_fork(job_body, &jb, r, sizeof *r, &ru, r->err, sizeof r->err);
	bench_rmrf(dir);
	if (rc != 0 || !r->ok) {
		fprintf(stderr, "walden bench %s: %s, %s job, run %d: %s\n", o->cmd,
			eng_names[eng], job_names[j], run + 1, r->err);
		return -1;
	}
	if (r->rss_peak_kb <= 0)
		r->rss_peak_kb = (double)ru.ru_maxrss;
	return 0;
}

/* ---- medians and the report -------------------------------------------------- */

/* Medians over the runs of one job and engine. */
struct med {
	double ops[W__N], ratio[W__N];
	double close_s, rss_base_kb, rss_peak_kb, disk_bytes, disk_alloc, wal_bytes, wal_alloc;
};

/* The median over runs of the double at byte offset off in res[run][j][e]. */
static double med_field(const struct tables_opts *o, struct child_res (*res)[J__N][E__N],
			int j, int e, size_t off)
{
	return bench_median_at(&res[0][j][e], sizeof res[0], (size_t)o->runs, off);
}

static void medians(const struct tables_opts *o, struct child_res (*res)[J__N][E__N],
		    struct med m[J__N][E__N])
{
	double col[MAX_RUNS];
	for (int j = 0; j < J__N; j++)
		for (int e = 0; e < E__N; e++) {
			struct med *x = &m[j][e];
#define MF(f) (x->f = med_field(o, res, j, e, offsetof(struct child_res, f)))
			MF(close_s), MF(rss_base_kb), MF(rss_peak_kb), MF(disk_bytes);
			MF(disk_alloc), MF(wal_bytes), MF(wal_alloc);
#undef MF
			for (int w = 0; w < W__N; w++) {
				x->ops[w] = med_field(o, res, j, e, offsetof(struct child_res, ops) +
									 (size_t)w * sizeof(double));
				for (int i = 0; i < o->runs; i++)
					col[i] = res[i][j][E_LMDB].ops[w] > 0
							 ? res[i][j][E_WALDEN].ops[w] / res[i][j][E_LMDB].ops[w]
							 : 0;
				x->ratio[w] = bench_median(col, (size_t)o->runs);
			}
		}
}

/* The job that measures workload w. */
static int job_of(enum wl w)
{
	return w == W_RAND ? J_RAND : J_SEQ;
}

static bool job_used(const struct tables_opts *o, int j)
{
	return j == J_RAND ? (o->mask & WL(W_RAND)) != 0 : (o->mask & ~WL(W_RAND)) != 0;
}

/* "seq-load job + W3 + W5": the load and the phases that ran after it. */
static void job_label(const struct tables_opts *o, int j, char *buf, size_t cap)
{
	size_t len = (size_t)snprintf(buf, cap, "%s-load job", job_names[j]);
	for (int w = W_READ; j == J_SEQ && w <= W_UPDATE && len < cap; w++)
		if (o->mask & WL(w))
			len += (size_t)snprintf(buf + len, cap - len, " + W%d", w + 1);
}

static void report_table(const struct tables_opts *o, const char *dir, const char *fs,
			 struct med m[J__N][E__N])
{
	char label[64];

	printf("walden bench %s: N=%lld, %d B keys, %zu B values, pool %llu MiB%s, %d run(s), "
	       "medians\nscratch %s (%s)\n",
	       o->cmd, o->n, KEY_BYTES, o->value_bytes, (unsigned long long)o->pool_mb,
	       o->no_huge ? " on ordinary pages" : "", o->runs, dir, fs);
	printf("  %-31s %13s %13s %8s %8s\n", "workload", "walden ops/s", "LMDB ops/s",
	       "ratio", "target");
	for (int w = 0; w < W__N; w++) {
		const struct med *x = &m[job_of(w)][E_WALDEN];
		if (!(o->mask & WL(w)))
			continue;
		printf("  %-31s %13.0f %13.0f %8.2f  >= %-4g %s\n", wls[w].label, x->ops[w],
		       m[job_of(w)][E_LMDB].ops[w], x->ratio[w], wls[w].target,
		       x->ratio[w] >= wls[w].target ? "met" : "NOT met");
	}
	for (int j = 0; j < J__N; j++) {
		const struct med *wd = &m[j][E_WALDEN], *lm = &m[j][E_LMDB];
		if (!job_used(o, j))
			continue;
		job_label(o, j, label, sizeof label);
		printf("  %-31s %13s %13s %8s\n", label, "walden", "LMDB", "w/L");
		printf("    peak RSS (VmHWM), MiB         %13.1f %13.1f %8.2f\n",
		       wd->rss_peak_kb / 1024, lm->rss_peak_kb / 1024,
		       lm->rss_peak_kb > 0 ? wd->rss_peak_kb / lm->rss_peak_kb : 0);
		printf("    RSS before open, MiB          %13.1f %13.1f\n", wd->rss_base_kb / 1024,
		       lm->rss_base_kb / 1024);
		printf("    peak RSS / pool (%llu MiB)     %13.2f %13.2f\n",
		       (unsigned long long)o->pool_mb, wd->rss_peak_kb / 1024 / (double)o->pool_mb,
		       lm->rss_peak_kb / 1024 / (double)o->pool_mb);
		printf("    on disk, apparent MiB         %13.1f %13.1f %8.2f\n", wd->disk_bytes / MIB,
		       lm->disk_bytes / MIB, lm->disk_bytes > 0 ? wd->disk_bytes / lm->disk_bytes : 0);
		printf("    on disk, allocated MiB        %13.1f %13.1f %8.2f\n", wd->disk_alloc / MIB,
		       lm->disk_alloc / MIB, lm->disk_alloc > 0 ? wd->disk_alloc / lm->disk_alloc : 0);
		printf("      of which wal/, allocated    %13.1f %13s\n", wd->wal_alloc / MIB, "-");
		printf("    data without wal/, allocated  %13.1f %13.1f %8.2f\n",
		       (wd->disk_alloc - wd->wal_alloc) / MIB, lm->disk_alloc / MIB,
		       lm->disk_alloc > 0 ? (wd->disk_alloc - wd->wal_alloc) / lm->disk_alloc : 0);
		printf("    close, s                      %13.3f %13.3f\n", wd->close_s, lm->close_s);
	}
}

static void report_json(const struct tables_opts *o, const char *dir, const char *fs,
			struct med m[J__N][E__N])
{
	bool first = true;
	printf("{\"bench\":\"%s\",\"n\":%lld,\"key_bytes\":%d,\"value_bytes\":%zu,"
	       "\"pool_mb\":%llu,\"huge_pages\":%d,\"reads\":%lld,\"updates\":%lld,\"runs\":%d,"
	       "\"dir\":\"%s\",\"fs\":\"%s\",\"workloads\":{",
	       o->cmd, o->n, KEY_BYTES, o->value_bytes, (unsigned long long)o->pool_mb,
	       !o->no_huge, o->reads, o->updates, o->runs, dir, fs);
	for (int w = 0; w < W__N; w++) {
		const struct med *x = &m[job_of(w)][E_WALDEN];
		if (!(o->mask & WL(w)))
			continue;
		printf("%s\"%s\":{\"walden\":%.0f,\"lmdb\":%.0f,\"ratio\":%.3f,\"target\":%g,"
		       "\"met\":%s}",
		       first ? "" : ",", wls[w].json, x->ops[w], m[job_of(w)][E_LMDB].ops[w],
		       x->ratio[w], wls[w].target, x->ratio[w] >= wls[w].target ? "true" : "false");
		first = false;
	}
	printf("},\"jobs\":{");
	first = true;
	for (int j = 0; j < J__N; j++) {
		if (!job_used(o, j))
			continue;
		printf("%s\"%s\":{", first ? "" : ",", job_names[j]);
		for (int e = 0; e < E__N; e++) {
			const struct med *x = &m[j][e];
			printf("%s\"%s\":{\"rss_peak_mb\":%.1f,\"rss_base_mb\":%.1f,"
			       "\"disk_mb\":%.1f,\"disk_alloc_mb\":%.1f,\"wal_alloc_mb\":%.1f,"
			       "\"close_s\":%.3f}",
			       e ? "," : "", eng_names[e], x->rss_peak_kb / 1024,
			       x->rss_base_kb / 1024, x->disk_bytes / MIB, x->disk_alloc / MIB,
			       x->wal_alloc / MIB, x->close_s);
		}
		printf("}");
		first = false;
	}
	printf("}}\n");
}

/* ---- driver ----------------------------------------------------------------- */

/* The scratch base under --dir, $TMPDIR or /var/tmp; and its fs kind. */
static char *tables_dir(const struct tables_opts *o, const char **fs)
{
	bool tmpfs;
	char *dir = bench_disk_dir(o->base, o->cmd, &tmpfs);
	*fs = tmpfs ? "tmpfs: durable commits are meaningless here" : "disk";
	return dir;
}

/* Every job of every run, engines alternating which goes first. */
static int tables_measure(const struct tables_opts *o, const char *dir,
			  struct child_res (*res)[J__N][E__N])
{
	for (int i = 0; i < o->runs; i++)
		for (int j = 0; j < J__N; j++)
			for (int k = 0; k < E__N && job_used(o, j); k++) {
				int e = i % 2 ? E__N - 1 - k : k;
				uint64_t t0 = bench_now_ns();
				if (spawn_job(o, e, j, i, dir, &res[i][j][e]) != 0)
					return -1;
				if (!o->json)
					fprintf(stderr, "run %d/%d: %s %s-load job done in %.1f s\n",
						i + 1, o->runs, eng_names[e], job_names[j],
						(double)(bench_now_ns() - t0) / 1e9);
			}
	return 0;
}

/* The body of every subcommand: the workloads in mask. */
static int tables_main(int argc, char **argv, unsigned mask)
{
	struct tables_opts o = {.cmd = argv[0], .mask = mask, .n = 1000000, .runs = 3,
				.pool_mb = 256, .value_bytes = 100};
	struct child_res (*res)[J__N][E__N] = NULL;
	struct med m[J__N][E__N];
	const char *fs = "";
	char *dir = NULL;
	int rc, status = 1;

	if ((rc = tables_parse(argc, argv, &o)) != 0)
		return rc == 1 ? 0 : 2;
	if (!(dir = tables_dir(&o, &fs))) {
		perror("walden bench: scratch directory");
		return 1;
	}
	if (!(res = calloc((size_t)o.runs, sizeof *res)) || tables_measure(&o, dir, res) != 0)
		goto out;
	medians(&o, res, m);
	if (!o.json)
		report_table(&o, dir, fs, m);
	report_json(&o, dir, fs, m);
	status = 0;
out:
	free(res);
	bench_rmrf(dir);
	free(dir);
	return status;
}

int bench_load_main(int argc, char **argv)
{
	return tables_main(argc, argv, WL(W_SEQ) | WL(W_RAND));
}

int bench_read_main(int argc, char **argv)
{
	return tables_main(argc, argv, WL(W_READ));
}

int bench_scan_main(int argc, char **argv)
{
	return tables_main(argc, argv, WL(W_SCAN));
}

int bench_update_main(int argc, char **argv)
{
	return tables_main(argc, argv, WL(W_UPDATE));
}

int bench_tables_main(int argc, char **argv)
{
	return tables_main(argc, argv, WL(W__N) - 1);
}
