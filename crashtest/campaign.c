/*
 * campaign.c - a campaign (README protocols P1, P3): the prepared base and the
 * profile run, the choice of each state's trigger and resolution from
 * (seed, index), the jobs that run states in parallel, the progress line,
 * the summary; and the single-state replay and the workload's description.
 * Entry points: ct_config_default, ct_campaign_run, ct_summary_print/free,
 * ct_replay, ct_result_print, ct_replay_line, ct_parse_replay,
 * ct_parse_trigger, ct_describe, ct_profile_print, the name functions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crashtest/ct_internal.h"

#define MAX_JOBS 64
#define SHOWN_VIOLATIONS 50

static const char *const fault_names[CT_NFAULTS] = {"kill", "power", "torn", "eio",
						   "enospc"};
static const char *const res_names[CT_NRES] = {"kill", "keep-all", "drop-all", "random",
					       "torn"};

const char *ct_fault_name(ct_fault f)
{
	return (unsigned)f < CT_NFAULTS ? fault_names[f] : "?";
}

const char *ct_res_name(ct_res r)
{
	return (unsigned)r < CT_NRES ? res_names[r] : "?";
}

void ct_config_default(ct_config *c)
{
	*c = (ct_config){.workload = "det", .seed = 1, .states = 100,
			 .faults = 1u << CT_KILL, .threads = 1, .tear_bytes = 512, .jobs = 2};
}

static int check_config(const ct_config *c, const ct_workload **wl)
{
	if (!(*wl = ct_workload_find(c->workload)))
		return err_set(WD_EINVAL, "no workload '%s' (det, random, bank, ring)",
			       c->workload ? c->workload : "");
	if (c->threads < 1 || c->threads > CT_MAX_THREADS)
		return err_set(WD_EINVAL, "--threads %d: must be 1 to %d", c->threads,
			       CT_MAX_THREADS);
	if (c->tear_bytes != 512 && c->tear_bytes != 4096)
		return err_set(WD_EINVAL, "--tear %u: must be 512 or 4096", c->tear_bytes);
	if (c->jobs < 1 || c->jobs > MAX_JOBS)
		return err_set(WD_EINVAL, "--jobs %d: must be 1 to %d", c->jobs, MAX_JOBS);
	if (!(c->faults & CT_FAULTS_ALL))
		return err_set(WD_EINVAL, "no fault kind chosen");
	if (c->no_full_page_writes && (c->faults & (1u << CT_TORN)))
		return err_set(WD_EINVAL, "--no-full-page-writes with torn writes: without "
			       "full-page images a torn page cannot be repaired (DESIGN.md "
			       "section 5); use kill or power");
	if (c->loop_parts > 1 && c->loop_part >= c->loop_parts)
		return err_set(WD_EINVAL, "I/O-error loop: part %u of %u", c->loop_part,
			       c->loop_parts);
	if (c->stride > 1 && !c->exhaustive)
		return err_set(WD_EINVAL, "--stride goes with --exhaustive");
	if (c->exhaustive && ((*wl)->threaded || c->rerun))
		return err_set(WD_EINVAL, "--exhaustive needs the deterministic workload (det), "
			       "whose every run makes the same I/O calls, and prefix states "
			       "(not --rerun)");
	return 0;
}

/* ---- setup: scratch root, base, profile ------------------------------------------ */

struct setup {
	const ct_workload *wl;
	char *root, *base_dir;
	ct_kvset base;
	ct_profile prof;
};

static void teardown(struct setup *su)
{
	if (su->root)
		ct_rmrf(su->root);
	free(su->root);
	free(su->base_dir);
	ct_kvset_free(&su->base);
	ct_profile_free(&su->prof);
	*su = (struct setup){0};
}

static int setup(const ct_config *c, bool describe, struct setup *su)
{
	const char *tmp = c->work_dir ? c->work_dir : getenv("TMPDIR");
	int rc;
	*su = (struct setup){0};
	if ((rc = check_config(c, &su->wl)) != 0)
		return rc;
	if (asprintf(&su->root, "%s/walden-crashtest-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
		abort();
	if (!mkdtemp(su->root)) {
		rc = err_errno(errno, "crashtest: scratch directory %s", su->root);
		free(su->root);
		su->root = NULL;
		return rc;
	}
	if (su->wl->prepare) {
		if (asprintf(&su->base_dir, "%s/base", su->root) < 0)
			abort();
		if ((rc = ct_prepare_base(c, su->wl, su->base_dir, &su->base)) != 0)
			goto fail;
	}
	if ((rc = ct_profile_run(c, su->wl, su->root, su->base_dir, describe, &su->prof)) != 0)
		goto fail;
	return 0;
fail:
	teardown(su);
	return rc;
}

/* ---- each state's trigger and resolution ------------------------------------------- */

/*
 * State index i of seed S: even indices die at a crash point the profile
 * run reached (round robin over them, so a campaign of 2 x their number
 * states fires each one), at a hit drawn from 1..its hits; odd indices
 * before an I/O call drawn from 1..the profile's I/O calls. The fault is
 * drawn among those enabled (a replay gets it from its resolution); power
 * losses resolve keep-all, drop-all or random (1:1:2), torn ones torn.
 */
static void pick(const ct_config *c, const ct_profile *p, uint64_t idx, ct_spec *s)
{
	uint64_t rng = c->seed * 0x9E3779B97F4A7C15ull ^ (idx + 1) * 0xD1B54A32D192ED03ull;
	uint64_t r1 = ct_rand(&rng), r2 = ct_rand(&rng), r3 = ct_rand(&rng),
		 r4 = ct_rand(&rng);
	static const ct_res power_res[4] = {CT_RES_KEEP_ALL, CT_RES_DROP_ALL, CT_RES_RANDOM,
					    CT_RES_RANDOM};
	size_t reached = 0, nf = 0, pick_nth;
	ct_fault faults[CT_NFAULTS];
	*s = (ct_spec){.seed = c->seed, .index = idx, .res_seed = r3};
	for (size_t i = 0; i < p->npoints; i++)
		reached += p->hits[i] > 0;
	if (idx % 2 == 0 && reached > 0) {
		pick_nth = (size_t)((idx / 2) % reached);
		for (size_t i = 0; i < p->npoints; i++)
			if (p->hits[i] > 0 && pick_nth-- == 0) {
				s->trig.kind = CT_TRIG_POINT;
				snprintf(s->trig.point, sizeof s->trig.point, "%s", ct_point_name(i));
				s->trig.n = 1 + r1 % p->hits[i];
				break;
			}
	} else {
		s->trig.kind = CT_TRIG_IO;
		s->trig.n = 1 + r1 % (p->io_calls ? p->io_calls : 1);
	}
	for (int f = 0; f < CT_NFAULTS; f++)
		if (c->faults & (1u << f))
			faults[nf++] = (ct_fault)f;
	s->fault = nf ? faults[r4 % nf] : CT_KILL;
	s->res = s->fault == CT_KILL ? CT_RES_KILL
		 : s->fault == CT_TORN ? CT_RES_TORN : power_res[r2 % 4];
	ct_ioerr_pick(p, r1, r2, s); /* eio, enospc: ioerr.c */
}

/*
 * Exhaustive mode: state i dies before I/O call k = i / 4 * stride + 1 of
 * the recorded run (every call in turn, or every stride-th) and resolves
 * i % 4: keep-all, drop-all, random, torn (the last two with a seed from
 * (seed, i)).
 */
static uint64_t stride(const ct_config *c)
{
	return c->stride ? c->stride : 1;
}

static void pick_exhaustive(const ct_config *c, uint64_t idx, ct_spec *s)
{
	uint64_t rng = c->seed * 0x9E3779B97F4A7C15ull ^ (idx + 1) * 0xD1B54A32D192ED03ull;
	static const ct_res res[4] = {CT_RES_KEEP_ALL, CT_RES_DROP_ALL, CT_RES_RANDOM,
				      CT_RES_TORN};
	*s = (ct_spec){.seed = c->seed, .index = idx, .res = res[idx % 4],
		       .res_seed = ct_rand(&rng)};
	s->fault = s->res == CT_RES_TORN ? CT_TORN : CT_POWER;
	s->trig.kind = CT_TRIG_IO;
	s->trig.n = idx / 4 * stride(c) + 1;
}

/* Whether spec's state is cut from a recorded run (README "Prefix
 * states"): every fault that only ends the process or loses unsynced
 * changes is; a fault that changes what the process does next needs a
 * run of its own, as does --rerun. */
static bool from_journal(const ct_config *c, const ct_spec *s)
{
	return !c->rerun && !c->io_faults &&
	       (s->fault == CT_KILL || s->fault == CT_POWER || s->fault == CT_TORN);
}

#define PER_RUN_DEFAULT 16

static uint64_t per_run(const ct_config *c)
{
	return c->per_run ? c->per_run : PER_RUN_DEFAULT;
}

/* ---- the campaign ----------------------------------------------------------------- */

/*
 * The jobs are processes, not threads: every fork (the workload and
 * recovery children) then happens in a single-threaded process. A fork in a
 * multi-threaded process copies whatever lock another thread holds at that
 * moment - AddressSanitizer's allocator lock, for one - and the child
 * hangs on it. Each job takes state indices from a counter in shared
 * memory and sends each result to the driver through its pipe.
 */
struct campaign {
	const ct_config *c;
	struct setup *su;
	ct_summary *s;
	_Atomic uint64_t *next; /* shared with the job processes: next[0] the
				 * next block, next[1] violations, next[2] the
				 * lowest failing state index */
	uint64_t limit;
	ct_runlog *shared;      /* exhaustive: the one run every job cuts */
	double start, deadline;
	double *rec_ms;
	size_t nrec, caprec;
	uint64_t *io;
	size_t nio, capio;
	size_t violcap;
	int err;
};

static void push(void **arr, size_t *n, size_t *cap, size_t size, const void *v)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 256;
		if (!(*arr = realloc(*arr, *cap * size)))
			abort();
	}
	memcpy((char *)*arr + *n * size, v, size);
	(*n)++;
}

/* Adds one result to the summary. */
static void record(struct campaign *cp, const ct_result *r)
{
	ct_summary *s = cp->s;
	s->states++;
	s->by_fault[r->spec.fault]++;
	s->by_ioerr[r->spec.trig.err]++;
	s->by_res[r->spec.res]++;
	s->by_verdict[r->verdict]++;
	s->async_old += r->async_old;
	s->async_excused += r->async_excused;
	if (r->verdict == CT_OK)
		s->passed++;
	else
		s->failed++;
	if (!r->fired) {
		s->ran_to_end++;
	} else {
		s->by_trigger[r->spec.trig.kind]++;
		if (r->spec.trig.kind == CT_TRIG_IO)
			push((void **)&cp->io, &cp->nio, &cp->capio, sizeof *cp->io, &r->spec.trig.n);
		for (size_t i = 0; r->spec.trig.kind == CT_TRIG_POINT && i < s->npoints; i++)
			if (strcmp(ct_point_name(i), r->spec.trig.point) == 0)
				s->point_fired[i]++;
	}
	if (r->recovery_ms > 0)
		push((void **)&cp->rec_ms, &cp->nrec, &cp->caprec, sizeof *cp->rec_ms,
		     &r->recovery_ms);
	s->t_workload += r->t_workload;
	s->runs += !r->spec.at || r->t_workload > 0; /* a prefix state's run: once */
	s->t_materialise += r->t_materialise;
	s->t_recovery += r->t_recovery;
	s->t_check += r->t_check;
	s->t_verdict += r->t_verdict;
	if (r->verdict != CT_OK) {
		const char *d = r->detail ? r->detail : "", *nl = strchr(d, '\n');
		ct_violation v = {.spec = r->spec, .verdict = r->verdict,
				  .first = strndup(d, nl ? (size_t)(nl - d) : strlen(d))};
		push((void **)&s->viol, &s->nviol, &cp->violcap, sizeof v, &v);
	}
}

/* ---- results through the job's pipe ---- */

enum { JOB_RESULT = 1, JOB_ERROR };

static void put_result(ct_buf *b, const ct_result *r)
{
	ct_put_u64(b, r->spec.seed);
	ct_put_u64(b, r->spec.index);
	ct_put_u8(b, (uint8_t)r->spec.fault);
	ct_put_u8(b, (uint8_t)r->spec.trig.kind);
	ct_put_str(b, r->spec.trig.point);
	ct_put_u64(b, r->spec.trig.n);
	ct_put_u8(b, (uint8_t)r->spec.trig.err);
	ct_put_u8(b, (uint8_t)r->spec.res);
	ct_put_u64(b, r->spec.res_seed);
	ct_put_u64(b, r->spec.run);
	ct_put_u64(b, r->spec.at);
	ct_put_u8(b, (uint8_t)r->verdict);
	ct_put_u8(b, r->fired);
	ct_put_u64(b, r->acked);
	ct_put_u64(b, r->inflight);
	ct_put_u64(b, r->aborted);
	ct_put_u64(b, r->async_old);
	ct_put_u64(b, r->async_excused);
	ct_put_u64(b, r->keys);
	ct_put_u64(b, r->digest);
	ct_put_f64(b, r->t_workload);
	ct_put_f64(b, r->t_materialise);
	ct_put_f64(b, r->t_recovery);
	ct_put_f64(b, r->t_check);
	ct_put_f64(b, r->t_verdict);
	ct_put_f64(b, r->recovery_ms);
	ct_put_str(b, r->detail ? r->detail : "");
}

static bool get_result(const uint8_t *body, size_t len, ct_result *r)
{
	ct_cur c = {body, len, 0, false};
	char *point;
	*r = (ct_result){0};
	r->spec.seed = ct_get_u64(&c);
	r->spec.index = ct_get_u64(&c);
	r->spec.fault = (ct_fault)(ct_get_u8(&c) % CT_NFAULTS);
	r->spec.trig.kind = ct_get_u8(&c) ? CT_TRIG_IO : CT_TRIG_POINT;
	point = ct_get_str(&c);
	snprintf(r->spec.trig.point, sizeof r->spec.trig.point, "%s", point);
	free(point);
	r->spec.trig.n = ct_get_u64(&c);
	r->spec.trig.err = (ct_ioerr)(ct_get_u8(&c) % CT_NIOERR);
	r->spec.res = (ct_res)(ct_get_u8(&c) % CT_NRES);
	r->spec.res_seed = ct_get_u64(&c);
	r->spec.run = ct_get_u64(&c);
	r->spec.at = ct_get_u64(&c);
	r->verdict = (ct_verdict)(ct_get_u8(&c) % CT_NVERDICTS);
	r->fired = ct_get_u8(&c) != 0;
	r->acked = ct_get_u64(&c);
	r->inflight = ct_get_u64(&c);
	r->aborted = ct_get_u64(&c);
	r->async_old = ct_get_u64(&c);
	r->async_excused = ct_get_u64(&c);
	r->keys = ct_get_u64(&c);
	r->digest = ct_get_u64(&c);
	r->t_workload = ct_get_f64(&c);
	r->t_materialise = ct_get_f64(&c);
	r->t_recovery = ct_get_f64(&c);
	r->t_check = ct_get_f64(&c);
	r->t_verdict = ct_get_f64(&c);
	r->recovery_ms = ct_get_f64(&c);
	r->detail = ct_get_str(&c);
	return !c.bad;
}

/*
 * One state of a job: its spec from (seed, index) and the profile - of
 * the recorded run *L for a prefix state (recorded first if it is not
 * run number `run`), of the campaign otherwise - then the state.
 */
static int job_state(struct campaign *cp, ct_job *job, ct_runlog *L, uint64_t run,
		     uint64_t idx, ct_result *r)
{
	const ct_config *c = cp->c;
	ct_spec spec;
	int rc;
	if (c->exhaustive)
		pick_exhaustive(c, idx, &spec);
	else if (c->choose)
		c->choose(c, &cp->su->prof, idx, &spec);
	else
		pick(c, &cp->su->prof, idx, &spec);
	if (!from_journal(c, &spec)) {
		/* a run of its own, in the directory and journal the job's
		 * recorded run lives in: the next prefix state records again */
		ct_runlog_free(L);
		return ct_state_run(job, &spec, 8, r);
	}
	if (cp->shared) {
		L = cp->shared;
	} else if (!L->journal || L->run != run) {
		ct_runlog_free(L);
		if ((rc = ct_run_record(job, run, L)) != 0)
			return rc;
	}
	if (!c->exhaustive && !c->choose && L->prof.hits) /* this run's own hits and calls */
		pick(c, &L->prof, idx, &spec);
	ct_place(L, &spec);
	return ct_state_prefix(job, L, &spec, 8, r);
}

/* A job process: blocks of states (a block: the states one recorded run
 * serves) until the counter passes the limit or the deadline passes;
 * each result to fd. In exhaustive mode a job records one run for all. */
static _Noreturn void job_process(struct campaign *cp, int id, int fd)
{
	ct_job job;
	ct_runlog L = {0};
	ct_buf b = {0};
	uint64_t blk = per_run(cp->c);
	char *dir;
	int rc;
	if (asprintf(&dir, "%s/job-%d", cp->su->root, id) < 0)
		abort();
	rc = ct_job_init(&job, cp->c, cp->su->wl, dir, cp->su->base_dir, &cp->su->base);
	while (rc == 0) {
		uint64_t first, run;
		bool stop = false;
		/* a limit of violations stops the jobs: no new block, and in a
		 * block no state above the lowest failing one (next[2]), so every
		 * state below the first violation still runs */
		if (cp->c->max_failures && atomic_load(&cp->next[1]) >= cp->c->max_failures)
			break;
		first = atomic_fetch_add(cp->next, 1) * blk;
		run = first / blk;
		for (uint64_t idx = first; idx < first + blk && rc == 0 && !stop; idx++) {
			ct_result r;
			if (idx >= cp->limit || (cp->deadline > 0 && ct_now_s() >= cp->deadline) ||
			    (cp->c->max_failures &&
			     atomic_load(&cp->next[1]) >= cp->c->max_failures &&
			     idx > atomic_load(&cp->next[2]))) {
				stop = true;
				break;
			}
			if ((rc = job_state(cp, &job, &L, run, idx, &r)) != 0)
				break;
			if (r.verdict != CT_OK) {
				uint64_t low = atomic_load(&cp->next[2]);
				while (idx < low && !atomic_compare_exchange_weak(&cp->next[2], &low, idx))
					;
				atomic_fetch_add(&cp->next[1], 1);
			}
			b.len = 0;
			put_result(&b, &r);
			ct_result_free(&r);
			if (ct_send(fd, JOB_RESULT, &b) != 0)
				stop = true;
		}
		if (stop)
			break;
	}
	ct_runlog_free(&L);
	if (rc != 0) {
		b.len = 0;
		ct_put_str(&b, wd_last_error());
		(void)ct_send(fd, JOB_ERROR, &b);
	}
	ct_buf_free(&b);
	ct_job_free(&job);
	free(dir);
	_exit(0);
}

/* The progress line: \r on a terminal each second, a plain line each 10 s. */
static void progress(struct campaign *cp, bool tty, bool final)
{
	FILE *f = cp->c->progress;
	double el = ct_now_s() - cp->start, rate, left;
	uint64_t done = cp->s->states, failed = cp->s->failed;
	if (!f)
		return;
	rate = el > 0 ? (double)done / el : 0;
	if (cp->deadline > 0)
		left = cp->deadline - ct_now_s();
	else
		left = rate > 0 ? (double)(cp->limit - done) / rate : 0;
	if (left < 0 || final)
		left = 0;
	if (cp->deadline > 0)
		fprintf(f, "%sstates %llu, %.1f states/s, %llu violations, %.0f s left%s",
			tty ? "\r" : "", (unsigned long long)done, rate,
			(unsigned long long)failed, left, tty ? "   " : "\n");
	else
		fprintf(f, "%sstates %llu/%llu, %.1f states/s, %llu violations, %.0f s left%s",
			tty ? "\r" : "", (unsigned long long)done, (unsigned long long)cp->limit,
			rate, (unsigned long long)failed, left, tty ? "   " : "\n");
	if (tty && final)
		fputc('\n', f);
	fflush(f);
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void finish(struct campaign *cp)
{
	ct_summary *s = cp->s;
	s->elapsed_s = ct_now_s() - cp->start;
	if (cp->nrec) {
		qsort(cp->rec_ms, cp->nrec, sizeof *cp->rec_ms, dbl_cmp);
		s->p50_recovery_ms = cp->rec_ms[(cp->nrec - 1) / 2];
		s->p99_recovery_ms = cp->rec_ms[(99 * cp->nrec + 99) / 100 - 1]; /* ceil(.99n) */
	}
	if (cp->nio)
		qsort(cp->io, cp->nio, sizeof *cp->io, u64_cmp);
	for (size_t i = 0; i < cp->nio; i++)
		if (i == 0 || cp->io[i] != cp->io[i - 1])
			s->io_distinct++;
	s->io_max = s->profile.io_calls;
	s->stride = cp->c->exhaustive ? stride(cp->c) : 1;
	free(cp->rec_ms);
	free(cp->io);
}

/* Starts the job processes; their pipes' read ends into rd. */
static int start_jobs(struct campaign *cp, ct_reader *rd, pid_t *pid)
{
	int started = 0;
	fflush(NULL);
	for (int i = 0; i < cp->c->jobs; i++) {
		int p[2];
		if (pipe(p) != 0)
			break;
		pid[i] = fork();
		if (pid[i] == 0) {
			close(p[0]);
			for (int k = 0; k < started; k++)
				close(rd[k].fd);
			job_process(cp, i, p[1]);
		}
		close(p[1]);
		if (pid[i] < 0) {
			close(p[0]);
			break;
		}
		rd[started++] = (ct_reader){.fd = p[0]};
	}
	return started;
}

/* Reads results from every job until all pipes end. */
static void collect(struct campaign *cp, ct_reader *rd, int n, bool tty)
{
	double last = ct_now_s();
	int open = n;
	while (open > 0) {
		for (int i = 0; i < n; i++) {
			uint8_t kind;
			const uint8_t *body;
			size_t len;
			int rc;
			if (rd[i].fd < 0)
				continue;
			while ((rc = ct_recv(&rd[i], 0, &kind, &body, &len)) == 1) {
				ct_result r;
				if (kind == JOB_RESULT) {
					if (get_result(body, len, &r))
						record(cp, &r);
					else if (!cp->err)
						cp->err = err_set(WD_EIO, "crashtest job %d: a result "
								  "that does not parse", i);
					ct_result_free(&r);
				}
				if (kind == JOB_ERROR && !cp->err) {
					ct_cur c = {body, len, 0, false};
					char *msg = ct_get_str(&c);
					cp->err = err_set(WD_EIO, "crashtest job %d: %s", i, msg);
					free(msg);
				}
			}
			if (rc == 0 || rc < 0) {
				close(rd[i].fd);
				rd[i].fd = -1;
				open--;
			}
		}
		if (open > 0) {
			struct timespec ts = {0, 50 * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (ct_now_s() - last >= (tty ? 1.0 : 10.0)) {
			progress(cp, tty, false);
			last = ct_now_s();
		}
	}
}

/*
 * Exhaustive mode's run: det, recorded once in the scratch root, before
 * the jobs are forked (they inherit it and only read its files and
 * journal). Its I/O calls are the N of the campaign: det's order of I/O
 * calls is not fixed (the WAL writer thread prepares the next segment
 * when the log enters one, at a moment of its own), so two runs may
 * differ by a few calls and the states must all come from one.
 */
static int exhaustive_run(struct campaign *cp, struct setup *su)
{
	char *db, *jdir;
	int rc;
	if (!(cp->shared = calloc(1, sizeof *cp->shared)))
		abort();
	if (asprintf(&db, "%s/run-db", su->root) < 0 ||
	    asprintf(&jdir, "%s/run-journal", su->root) < 0)
		abort();
	rc = ct_run_record_in(cp->c, su->wl, db, jdir, su->base_dir, 0, cp->shared);
	free(db);
	free(jdir);
	if (rc == 0 && !cp->shared->ok)
		rc = err_set(WD_ESTATE, "the %s workload failed on its own: %s", su->wl->name,
			     cp->shared->error);
	if (rc != 0) {
		ct_runlog_free(cp->shared);
		free(cp->shared);
		cp->shared = NULL;
		return rc;
	}
	su->prof.io_calls = cp->shared->n_io;
	cp->shared->states = 1; /* its time counted here, not once per job */
	cp->s->runs = 1;
	cp->limit = 4 * ((cp->shared->n_io + stride(cp->c) - 1) / stride(cp->c));
	cp->deadline = 0;
	return 0;
}

int ct_campaign_run(const ct_config *c, ct_summary *s)
{
	struct setup su;
	struct campaign cp = {.c = c, .s = s};
	ct_reader rd[MAX_JOBS];
	pid_t pid[MAX_JOBS];
	bool tty = c->progress && isatty(fileno(c->progress));
	int rc, started;
	*s = (ct_summary){0};
	if (c->states == 0 && !(c->minutes > 0) && !c->exhaustive)
		return err_set(WD_EINVAL, "give --states N or --minutes M");
	if ((rc = setup(c, false, &su)) != 0)
		return rc;
	cp.su = &su;
	s->npoints = ct_point_count();
	if (!(s->point_fired = calloc(s->npoints + 1, sizeof *s->point_fired)))
		abort();
	cp.next = mmap(NULL, 3 * sizeof *cp.next, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	if (cp.next == MAP_FAILED) {
		rc = err_errno(errno, "crashtest: shared memory for the state counter");
		teardown(&su);
		return rc;
	}
	atomic_store(&cp.next[0], 0);
	atomic_store(&cp.next[1], 0);
	atomic_store(&cp.next[2], UINT64_MAX);
	cp.start = ct_now_s();
	cp.limit = c->states ? c->states : UINT64_MAX;
	cp.deadline = c->states ? 0 : cp.start + c->minutes * 60.0;
	if (c->exhaustive) { /* every I/O call of one run, four ways */
		rc = exhaustive_run(&cp, &su);
		if (rc != 0) {
			munmap((void *)cp.next, 3 * sizeof *cp.next);
			teardown(&su);
			return rc;
		}
		s->exhaustive = true;
	}
	started = start_jobs(&cp, rd, pid);
	collect(&cp, rd, started, tty);
	for (int i = 0; i < started; i++) {
		int status = 0;
		while (waitpid(pid[i], &status, 0) < 0 && errno == EINTR)
			;
		/* a job ends with _exit(0), its failures sent as JOB_ERROR: any
		 * other end lost the states of the block it had taken */
		if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) && !cp.err)
			cp.err = err_set(WD_EIO, "crashtest job %d died (%s %d): the states it "
					 "had taken did not run", i,
					 WIFSIGNALED(status) ? "signal" : "exit status",
					 WIFSIGNALED(status) ? WTERMSIG(status)
							     : WEXITSTATUS(status));
	}
	progress(&cp, tty, true);
	s->profile = su.prof;
	su.prof = (ct_profile){0};
	finish(&cp);
	for (int i = 0; i < started; i++)
		ct_reader_free(&rd[i]);
	munmap((void *)cp.next, 3 * sizeof *cp.next);
	if (cp.shared) {
		ct_runlog_free(cp.shared);
		free(cp.shared);
	}
	rc = started == 0 ? err_set(WD_ENOMEM, "crashtest: no job process started") : cp.err;
	teardown(&su);
	return rc;
}

void ct_summary_free(ct_summary *s)
{
	for (size_t i = 0; i < s->nviol; i++)
		free(s->viol[i].first);
	free(s->viol);
	free(s->point_fired);
	ct_profile_free(&s->profile);
	*s = (ct_summary){0};
}

/* ---- reproduction lines ----------------------------------------------------------- */

static void trig_str(const ct_trigger *t, char *out, size_t cap)
{
	if (t->kind == CT_TRIG_POINT)
		snprintf(out, cap, "point:%s:%llu", t->point, (unsigned long long)t->n);
	else
		snprintf(out, cap, "%s:%llu", t->err ? ct_ioerr_name(t->err) : "io",
			 (unsigned long long)t->n);
}

static void res_str(const ct_spec *s, char *out, size_t cap)
{
	if (s->res == CT_RES_RANDOM || s->res == CT_RES_TORN)
		snprintf(out, cap, "%s:%llu", ct_res_name(s->res), (unsigned long long)s->res_seed);
	else
		snprintf(out, cap, "%s", ct_res_name(s->res));
}

void ct_replay_line(const ct_config *c, const ct_spec *s, char *out, size_t cap)
{
	char trig[96], res[64], extra[256] = "";
	const ct_workload *wl = ct_workload_find(c->workload);
	trig_str(&s->trig, trig, sizeof trig);
	res_str(s, res, sizeof res);
	if (wl && wl->threaded)
		snprintf(extra, sizeof extra, " --threads %d", c->threads);
	if (s->res == CT_RES_TORN)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --tear %u",
			 c->tear_bytes);
	if (c->no_full_page_writes)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
			 " --no-full-page-writes");
	if (c->io_faults)
		snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --inject %s",
			 c->io_faults);
	if (s->at) /* a prefix state: the run and the I/O call it was cut at */
		snprintf(trig, sizeof trig, "%llu:%llu", (unsigned long long)s->run,
			 (unsigned long long)s->at);
	snprintf(out, cap, "walden crashtest --workload %s%s --replay %llu:%llu:%s --%s %s",
		 c->workload, extra, (unsigned long long)s->seed, (unsigned long long)s->index,
		 res, s->at ? "at" : "trigger", trig);
}

static void list_points(FILE *out, const ct_summary *s, bool reached)
{
	bool any = false;
	for (size_t i = 0; i < s->npoints; i++) {
		bool r = s->profile.hits && s->profile.hits[i] > 0;
		if (s->point_fired[i] == 0 && r == reached) {
			fprintf(out, "%s%s", any ? ", " : "", ct_point_name(i));
			any = true;
		}
	}
	fprintf(out, "%s", any ? "" : "none");
}

void ct_summary_print(const ct_summary *s, const ct_config *c, FILE *out)
{
	size_t fired = 0, reached = 0;
	double n = s->states ? (double)s->states : 1;
	char line[1024], faults[64] = "";
	for (int f = 0; f < CT_NFAULTS; f++)
		if (c->faults & (1u << f))
			snprintf(faults + strlen(faults), sizeof faults - strlen(faults), "%s%s",
				 faults[0] ? "," : "", ct_fault_name((ct_fault)f));
	for (size_t i = 0; i < s->npoints; i++) {
		fired += s->point_fired[i] > 0;
		reached += s->profile.hits && s->profile.hits[i] > 0;
	}
	fprintf(out, "walden crashtest: workload %s, seed %llu, faults %s, threads %d, jobs %d, "
		"tear %u\n", c->workload, (unsigned long long)c->seed, faults, c->threads,
		c->jobs, c->tear_bytes);
	fprintf(out, "states: %llu in %.1f s, %.2f states/s\n", (unsigned long long)s->states,
		s->elapsed_s, s->elapsed_s > 0 ? (double)s->states / s->elapsed_s : 0);
	fprintf(out, "by fault: kill %llu, power %llu, torn %llu, eio %llu (once %llu, "
		"from then on %llu), enospc %llu\n",
		(unsigned long long)s->by_fault[CT_KILL], (unsigned long long)s->by_fault[CT_POWER],
		(unsigned long long)s->by_fault[CT_TORN], (unsigned long long)s->by_fault[CT_EIO],
		(unsigned long long)s->by_ioerr[CT_IOERR_EIO_ONCE],
		(unsigned long long)s->by_ioerr[CT_IOERR_EIO],
		(unsigned long long)s->by_fault[CT_ENOSPC]);
	fprintf(out, "by trigger: crash point %llu, I/O index %llu, trigger not reached (died "
		"at the workload's end) %llu\n", (unsigned long long)s->by_trigger[CT_TRIG_POINT],
		(unsigned long long)s->by_trigger[CT_TRIG_IO], (unsigned long long)s->ran_to_end);
	fprintf(out, "by resolution:");
	for (int r = 0; r < CT_NRES; r++)
		fprintf(out, "%s %s %llu", r ? "," : "", ct_res_name((ct_res)r),
			(unsigned long long)s->by_res[r]);
	fprintf(out, "\ncrash points: %zu of %zu defined fired (%zu reached by the workload)\n",
		fired, s->npoints, reached);
	fprintf(out, "  reached, not fired: ");
	list_points(out, s, true);
	fprintf(out, "\n  not reached by this workload: ");
	list_points(out, s, false);
	fprintf(out, "\nI/O indices: %llu distinct fired; the profile run made %llu I/O calls "
		"(each recorded run of a threaded workload makes its own number)\n",
		(unsigned long long)s->io_distinct, (unsigned long long)s->io_max);
	fprintf(out, "workload runs: %llu (%.1f states a run)\n", (unsigned long long)s->runs,
		s->runs ? (double)s->states / (double)s->runs : 0);
	if (s->exhaustive)
		fprintf(out, "exhaustive: N = %llu I/O calls, %llu states (4 a call: keep-all, "
			"drop-all, random, torn), every %sI/O index covered: %s, %llu "
			"violations\n", (unsigned long long)s->io_max,
			(unsigned long long)s->states, s->stride > 1 ? "stride-th " : "",
			s->io_distinct == (s->io_max + s->stride - 1) / s->stride &&
			s->states == 4 * s->io_distinct ? "yes" : "no",
			(unsigned long long)s->failed);
	fprintf(out, "verdicts:");
	for (int v = 0; v < CT_NVERDICTS; v++)
		fprintf(out, "%s %s %llu", v ? "," : "", ct_verdict_name((ct_verdict)v),
			(unsigned long long)s->by_verdict[v]);
	fprintf(out, "\nasynchronous commits old enough (3 x wal_writer_delay) to have to survive: "
		"%llu, of which %llu excused (no WAL writer cycle after them ended before the "
		"crash)", (unsigned long long)s->async_old, (unsigned long long)s->async_excused);
	fprintf(out, "\nrecovery (wd_open): p50 %.1f ms, p99 %.1f ms\n", s->p50_recovery_ms,
		s->p99_recovery_ms);
	fprintf(out, "time per state (mean): workload %.1f ms, materialise %.1f ms, recovery "
		"%.1f ms, read and check %.1f ms, verdict %.1f ms\n", 1000 * s->t_workload / n,
		1000 * s->t_materialise / n, 1000 * s->t_recovery / n, 1000 * s->t_check / n,
		1000 * s->t_verdict / n);
	if (s->nviol)
		fprintf(out, "violations:\n");
	for (size_t i = 0; i < s->nviol && i < SHOWN_VIOLATIONS; i++) {
		ct_replay_line(c, &s->viol[i].spec, line, sizeof line);
		fprintf(out, "  state %llu (%s): %s\n    %s\n",
			(unsigned long long)s->viol[i].spec.index,
			ct_fault_name(s->viol[i].spec.fault), s->viol[i].first, line);
	}
	if (s->nviol > SHOWN_VIOLATIONS)
		fprintf(out, "  ... and %zu more\n", s->nviol - SHOWN_VIOLATIONS);
	fprintf(out, "%llu passed, %llu failed\n", (unsigned long long)s->passed,
		(unsigned long long)s->failed);
}

/* ---- replay ------------------------------------------------------------------------- */

static int parse_u64(const char *s, char **end, uint64_t *v)
{
	errno = 0;
	if (!s || *s < '0' || *s > '9')
		return -1;
	*v = strtoull(s, end, 10);
	return errno ? -1 : 0;
}

int ct_parse_replay(const char *str, ct_spec *spec, bool *has_res_seed)
{
	char *end;
	const char *r;
	size_t rl;
	*spec = (ct_spec){0};
	*has_res_seed = false;
	if (parse_u64(str, &end, &spec->seed) != 0 || *end != ':' ||
	    parse_u64(end + 1, &end, &spec->index) != 0 || *end != ':')
		goto bad;
	r = end + 1;
	rl = strcspn(r, ":");
	for (int i = 0; i < CT_NRES; i++)
		if (strlen(res_names[i]) == rl && strncmp(r, res_names[i], rl) == 0) {
			spec->res = (ct_res)i;
			spec->fault = i == CT_RES_KILL ? CT_KILL : i == CT_RES_TORN ? CT_TORN
										 : CT_POWER;
			if (r[rl] == '\0')
				return 0;
			if ((i == CT_RES_RANDOM || i == CT_RES_TORN) &&
			    parse_u64(r + rl + 1, &end, &spec->res_seed) == 0 && *end == '\0') {
				*has_res_seed = true;
				return 0;
			}
			goto bad;
		}
bad:
	return err_set(WD_EINVAL, "--replay '%s': expected SEED:INDEX:RESOLUTION with "
		       "RESOLUTION kill, keep-all, drop-all, random[:S] or torn[:S]",
		       str ? str : "");
}

int ct_parse_at(const char *s, ct_spec *spec)
{
	char *end;
	if (parse_u64(s, &end, &spec->run) == 0 && *end == ':' &&
	    parse_u64(end + 1, &end, &spec->at) == 0 && *end == '\0' && spec->at > 0)
		return 0;
	return err_set(WD_EINVAL, "--at '%s': expected RUN:K (K >= 1)", s ? s : "");
}

int ct_parse_trigger(const char *s, ct_trigger *t)
{
	char *end;
	*t = (ct_trigger){0};
	if (s && ct_ioerr_parse_trigger(s, t) == 1)
		return 0;
	if (s && strncmp(s, "io:", 3) == 0 && parse_u64(s + 3, &end, &t->n) == 0 &&
	    *end == '\0' && t->n > 0) {
		t->kind = CT_TRIG_IO;
		return 0;
	}
	if (s && strncmp(s, "point:", 6) == 0) {
		const char *name = s + 6, *colon = strrchr(name, ':');
		size_t nl = colon ? (size_t)(colon - name) : 0;
		if (colon && nl > 0 && nl < sizeof t->point &&
		    parse_u64(colon + 1, &end, &t->n) == 0 && *end == '\0' && t->n > 0) {
			t->kind = CT_TRIG_POINT;
			memcpy(t->point, name, nl);
			t->point[nl] = '\0';
			for (size_t i = 0; i < ct_point_count(); i++)
				if (strcmp(ct_point_name(i), t->point) == 0)
					return 0;
			return err_set(WD_EINVAL, "--trigger '%s': no crash point '%s' (see "
				       "crashtest/points.def)", s, t->point);
		}
	}
	return err_set(WD_EINVAL, "--trigger '%s': expected point:NAME:N, io:N, eio-once:N, "
		       "eio:N or enospc:N (N >= 1)", s ? s : "");
}

int ct_replay(const ct_config *c, const ct_spec *want, bool has_res_seed,
	      const ct_trigger *trig, ct_result *r)
{
	struct setup su;
	ct_config cc = *c;
	ct_spec spec;
	ct_job job;
	char *dir;
	int rc;
	*r = (ct_result){0};
	cc.seed = want->seed;
	if (!trig) { /* the resolution's fault (an eio or enospc state has its
		      * error in its --trigger) */
		cc.faults &= ~((1u << CT_EIO) | (1u << CT_ENOSPC));
		if (!cc.faults)
			cc.faults = 1u << want->fault;
	}
	if ((rc = setup(&cc, false, &su)) != 0)
		return rc;
	pick(&cc, &su.prof, want->index, &spec);
	spec.fault = want->fault;
	spec.res = want->res;
	if (has_res_seed)
		spec.res_seed = want->res_seed;
	if (trig)
		spec.trig = *trig;
	ct_ioerr_fix_spec(&spec);
	if (asprintf(&dir, "%s/replay", su.root) < 0)
		abort();
	rc = ct_job_init(&job, &cc, su.wl, dir, su.base_dir, &su.base);
	if (rc == 0 && (want->at || from_journal(&cc, &spec))) {
		/* a prefix state: record the run, cut it where the line says
		 * (or where the state's trigger falls in it) */
		ct_runlog L;
		uint64_t run = want->at ? want->run : want->index / per_run(&cc);
		if ((rc = ct_run_record(&job, run, &L)) == 0) {
			if (!want->at && !trig && L.prof.hits) { /* this run's trigger */
				pick(&cc, &L.prof, want->index, &spec);
				spec.fault = want->fault;
				spec.res = want->res;
				if (has_res_seed)
					spec.res_seed = want->res_seed;
			}
			ct_place(&L, &spec);
			if (want->at)
				spec.at = want->at;
			rc = ct_state_prefix(&job, &L, &spec, 1000, r);
		}
		ct_runlog_free(&L);
	} else if (rc == 0) {
		rc = ct_state_run(&job, &spec, 1000, r);
	}
	ct_job_free(&job);
	free(dir);
	teardown(&su);
	return rc;
}

void ct_result_print(const ct_result *r, const ct_config *c, FILE *out)
{
	char trig[96], res[64], line[1024];
	trig_str(&r->spec.trig, trig, sizeof trig);
	res_str(&r->spec, res, sizeof res);
	fprintf(out, "state %llu:%llu of workload %s: fault %s, trigger %s (%s), resolution %s",
		(unsigned long long)r->spec.seed, (unsigned long long)r->spec.index, c->workload,
		ct_fault_name(r->spec.fault), trig,
		r->fired ? "fired" : "not reached: died at the workload's end", res);
	if (r->spec.res == CT_RES_TORN)
		fprintf(out, " (sectors of %u bytes)", c->tear_bytes);
	if (r->spec.at)
		fprintf(out, "\ncut from run %llu just before its I/O call %llu",
			(unsigned long long)r->spec.run, (unsigned long long)r->spec.at);
	fprintf(out, "\nworkload: %llu commits acknowledged, %llu requested and not "
		"acknowledged, %llu aborted; %.1f ms\n", (unsigned long long)r->acked,
		(unsigned long long)r->inflight, (unsigned long long)r->aborted,
		1000 * r->t_workload);
	if (r->spec.res != CT_RES_KILL)
		fprintf(out, "power loss: unsynced writes kept %llu, dropped %llu, torn %llu\n",
			(unsigned long long)r->data_kept, (unsigned long long)r->data_dropped,
			(unsigned long long)r->data_torn);
	fprintf(out, "recovery: wd_open %.1f ms; %llu rows, digest %016llx\n", r->recovery_ms,
		(unsigned long long)r->keys, (unsigned long long)r->digest);
	fprintf(out, "verdict: %s\n%s", ct_verdict_name(r->verdict), r->detail ? r->detail : "");
	ct_replay_line(c, &r->spec, line, sizeof line);
	fprintf(out, "replay: %s\n", line);
}

/* ---- describe -------------------------------------------------------------------------- */

int ct_describe(const ct_config *c, bool describe, ct_profile *p)
{
	struct setup su;
	int rc = setup(c, describe, &su);
	*p = (ct_profile){0};
	if (rc != 0)
		return rc;
	*p = su.prof;
	su.prof = (ct_profile){0};
	teardown(&su);
	return 0;
}

void ct_profile_print(const ct_profile *p, const ct_config *c, FILE *out)
{
	fprintf(out, "workload %s, seed %llu, threads %d: one run to its end\n", c->workload,
		(unsigned long long)c->seed, c->threads);
	fprintf(out, "  commits %llu (asynchronous %llu), aborts %llu, savepoint rollbacks %llu, "
		"deadlock victims %llu\n", (unsigned long long)p->commits,
		(unsigned long long)p->async_commits, (unsigned long long)p->aborts,
		(unsigned long long)p->sp_rollbacks, (unsigned long long)p->deadlocks);
	fprintf(out, "  operations %llu, values larger than a page %llu, checkpoints asked "
		"%llu, transactions open at the end %llu\n", (unsigned long long)p->ops,
		(unsigned long long)p->big_values, (unsigned long long)p->checkpoints,
		(unsigned long long)p->open_at_end);
	if (p->described)
		fprintf(out, "  in the WAL (%llu records): leaf splits %llu, internal splits %llu, "
			"page unlinks %llu, checkpoints %llu, segment switches %llu, "
			"XACT_ABORT %llu, CLRs %llu, overflow pages written %llu\n",
			(unsigned long long)p->records, (unsigned long long)p->leaf_splits,
			(unsigned long long)p->internal_splits, (unsigned long long)p->unlinks,
			(unsigned long long)p->wal_checkpoints,
			(unsigned long long)p->segment_switches, (unsigned long long)p->xact_aborts,
			(unsigned long long)p->clrs, (unsigned long long)p->overflow_writes);
	fprintf(out, "  I/O calls %llu; crash points reached:\n", (unsigned long long)p->io_calls);
	for (size_t i = 0; i < p->npoints; i++)
		fprintf(out, "    %-34s %8llu%s\n", ct_point_name(i), (unsigned long long)p->hits[i],
			p->hits[i] ? "" : "  (not reached)");
}
