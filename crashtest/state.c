/*
 * state.c - one crash state (README "Protocols" P2): the workload child
 * with its trigger, the driver reading its REQ/ACK messages into the
 * history and the oracle, the power-loss materialisation, the recovery
 * child (wd_open, every row, the checks), the verdict, and a failing
 * state's files kept. Also the profile run, the prepared base, and the
 * job's scratch directories. Entry points: ct_state_run, ct_profile_run,
 * ct_prepare_base, ct_job_init/free, ct_copy_tree, ct_rmrf.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crashtest/ct_internal.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "txn/db.h"

#define CHILD_TIMEOUT_S 120.0 /* a child that takes longer is hung */

/* A child's time limit: its own (ct_config.child_timeout_s), else the default. */
static double child_limit(double own)
{
	return own > 0 ? own : CHILD_TIMEOUT_S;
}

/* ---- files --------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void ct_rmrf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int copy_file(const char *src, const char *dst)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
	ssize_t n;
	if (in < 0)
		return err_errno(errno, "crashtest: %s", src);
	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
		rc = err_errno(errno, "crashtest: %s", dst);
		goto out;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				rc = err_errno(errno ? errno : ENOSPC, "crashtest: %s", dst);
				goto out;
			}
			off += w;
		}
	if (n < 0)
		rc = err_errno(errno, "crashtest: %s", src);
out:
	close(in);
	if (out >= 0)
		close(out);
	return rc;
}

int ct_copy_tree(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	struct dirent *e;
	int rc = 0;
	if (!d)
		return err_errno(errno, "crashtest: %s", src);
	if (mkdir(dst, 0755) != 0) {
		closedir(d);
		return err_errno(errno, "crashtest: %s", dst);
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char s[4096], t[4096];
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(s, sizeof s, "%s/%s", src, e->d_name);
		snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
		if (lstat(s, &st) != 0)
			rc = err_errno(errno, "crashtest: %s", s);
		else if (S_ISDIR(st.st_mode))
			rc = ct_copy_tree(s, t);
		else if (S_ISREG(st.st_mode))
			rc = copy_file(s, t);
	}
	closedir(d);
	return rc;
}

/* ---- children -------------------------------------------------------------------- */

/*
 * Forks fn(arg, write end of a pipe) and returns the read end in *rfd.
 * Called by single-threaded processes only (I6): the child may then use
 * malloc, stdio and the engine freely. The child dies with its parent
 * (I13): it holds a copy of the job's result pipe, and an orphan that
 * hung would keep the driver waiting on that pipe for ever.
 */
static pid_t spawn(void (*fn)(void *arg, int fd), void *arg, int *rfd)
{
	int p[2];
	pid_t pid, parent = getpid();
	if (pipe2(p, O_CLOEXEC) != 0)
		return err_errno(errno, "crashtest: pipe");
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(1); /* the parent is gone already: no one reads */
		close(p[0]);
		setenv("WALDEN_CRASH_QUIET", "1", 1);
		fn(arg, p[1]);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return err_errno(errno, "crashtest: fork");
	}
	*rfd = p[0];
	return pid;
}

/* Waits for pid; kills it first if kill_it. Returns the wait status. */
static int reap(pid_t pid, bool kill_it)
{
	int status = 0;
	if (kill_it)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static void status_str(int status, char *out, size_t cap)
{
	if (WIFSIGNALED(status))
		snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(out, cap, "exit status %d", WEXITSTATUS(status));
}

/* ---- the workload child --------------------------------------------------------- */

struct wchild {
	const ct_workload *wl;
	const char *dir, *jdir; /* jdir: power loss journal, or NULL */
	uint64_t seed;
	int threads;
	ct_plant plant;
	const char *io_faults;  /* WALDEN_FAULT spec armed at W0, or NULL */
	bool no_fpw;            /* full_page_writes off */
	const ct_trigger *trig; /* NULL: run to the end */
	bool prepare, describe;
	bool log_hits;          /* note where each crash point hit falls */
	struct ct_runlog *log;  /* keep every message (a recorded run) */
	double timeout_s;       /* hung after this long (0: CHILD_TIMEOUT_S) */
};

/* The planted stalls (README "Planted faults"): CT_PLANT_STALL_S seconds
 * of silence, or of one message every 10 ms (send it, kind: START or
 * STRUCT), as a child stuck in a loop would. */
static void plant_stall(bool chatty, void (*send)(void *arg), void *arg)
{
	const struct timespec tick = {0, 10 * 1000000L};
	double t0 = ct_now_s();
	while (ct_now_s() - t0 < CT_PLANT_STALL_S) {
		if (chatty)
			send(arg);
		nanosleep(&tick, NULL);
	}
}

static void send_start(void *arg)
{
	ct_run_start(arg);
}

/* CT_PLANT_FOREIGN_JOURNAL: the journal's magic overwritten, so that the
 * materialiser refuses it (not a journal). "journal" is the file name
 * storage/ gives it (storage/README.md, the journal format; SIM_JOURNAL in
 * storage_internal.h, not exported by storage/sim.h). */
static void plant_foreign_journal(ct_run *r, const char *jdir)
{
	char *path;
	int fd;
	if (asprintf(&path, "%s/journal", jdir) < 0)
		abort();
	fd = open(path, O_WRONLY);
	free(path);
	if (fd < 0 || pwrite(fd, "FOREIGN!", 8, 0) != 8)
		ct_child_error(r, "the planted foreign journal: cannot write it");
	close(fd);
}

/* W0-W4: sim on, trigger armed, the workload, DONE. Dies at the trigger. */
static void workload_child(void *arg, int fd)
{
	const struct wchild *a = arg;
	static ct_run r; /* the workload's threads point into it */
	uint64_t *hits0 = calloc(ct_point_count() + 1, sizeof *hits0), io0;
	char msg[640];
	int rc;
	r = (ct_run){.wl = a->wl, .dir = a->dir, .seed = a->seed, .threads = a->threads,
		     .plant = a->plant, .fd = fd, .prepare = a->prepare,
		     .describe = a->describe, .no_fpw = a->no_fpw};
	pthread_mutex_init(&r.mu, NULL);
	r.io0 = storage_io_count(); /* an ERROR before START is stamped near 0 */
	atomic_store(&r.next_txn, a->prepare ? 1 : CT_BASE_TXN_LIMIT + 1);
	if (!a->wl->threaded)
		r.threads = 1;
	if (!hits0)
		ct_child_error(&r, "out of memory");
	if (a->jdir && (rc = storage_sim_start(a->jdir)) != 0) {
		snprintf(msg, sizeof msg, "storage_sim_start: %s", wd_last_error());
		ct_child_error(&r, msg);
	}
	if (a->jdir && a->plant == CT_PLANT_FOREIGN_JOURNAL)
		plant_foreign_journal(&r, a->jdir);
	for (size_t i = 0; i < ct_point_count(); i++)
		hits0[i] = storage_crash_hits(ct_point_name(i));
	io0 = storage_io_count();
	r.io0 = io0;
	ct_run_start(&r);
	if (a->plant == CT_PLANT_STALL || a->plant == CT_PLANT_CHATTER)
		plant_stall(a->plant == CT_PLANT_CHATTER, send_start, &r);
	if (a->log_hits)
		ct_run_log_hits(&r);
	ct_run_watch_writer(&r); /* the async rule's evidence */
	if (a->trig && a->trig->kind == CT_TRIG_POINT)
		storage_crash_arm(a->trig->point, a->trig->n);
	else if (a->trig && a->trig->err != CT_IOERR_NONE)
		ct_ioerr_arm(&r, a->trig, io0); /* an I/O error, not a death */
	else if (a->trig)
		storage_crash_arm_io(io0 + a->trig->n);
	if (a->io_faults && (rc = storage_fault_parse(a->io_faults)) != 0) {
		snprintf(msg, sizeof msg, "injected faults: %s", wd_last_error());
		ct_child_error(&r, msg);
	}
	rc = ct_run_open(&r);
	if (rc == 0)
		rc = a->prepare ? a->wl->prepare(&r) : a->wl->run(&r);
	if (rc == 0 && a->prepare && (rc = wd_close(r.db)) != 0)
		ct_fail(&r, "wd_close", rc);
	/* a failed I/O call the campaign injected ends the workload as the
	 * panic state would end a server: a crash, not the workload's fault */
	if (rc != 0 && a->io_faults && storage_fault_fired() > 0 && !atomic_load(&r.own_failed))
		_exit(ST_CRASH_EXIT_CODE);
	ct_ioerr_finish(&r, rc); /* returns only if no I/O error fired */
	if (rc != 0)
		ct_child_error(&r, r.error[0] ? r.error : wd_last_error());
	if (ct_run_done(&r, hits0, io0) != 0)
		ct_child_error(&r, r.error);
	_exit(0); /* the end of the workload is a crash too: no wd_close */
}

/* Keeps one workload message of a recorded run. */
static void log_msg(ct_runlog *L, uint8_t kind, const uint8_t *body, size_t len,
		    uint64_t stamp)
{
	ct_msg *m;
	if (L->nmsg == L->capmsg) {
		L->capmsg = L->capmsg ? 2 * L->capmsg : 256;
		if (!(L->msg = realloc(L->msg, L->capmsg * sizeof *L->msg)))
			abort();
	}
	m = &L->msg[L->nmsg++];
	*m = (ct_msg){.kind = kind, .len = len, .stamp = stamp, .body = malloc(len ? len : 1)};
	if (!m->body)
		abort();
	memcpy(m->body, body, len);
}

/* Reads the workload child's messages into h until it ends. *hung: it
 * outlived its time limit and was killed, whether it went silent or kept
 * sending. Returns the wait status. */
static int drive_workload(struct wchild *w, ct_history *h, bool *hung, int *err)
{
	ct_reader rd = {0};
	double t0 = ct_now_s();
	uint8_t kind;
	const uint8_t *body;
	size_t len;
	int rc;
	pid_t pid = spawn(workload_child, w, &rd.fd);
	*hung = false;
	*err = 0;
	if (pid < 0) {
		*err = (int)pid;
		return 0;
	}
	while ((rc = ct_recv(&rd, 1000, &kind, &body, &len)) != 0) {
		if (rc == 1 && ct_history_take_stamped(h, kind, body, len) != 0)
			h->malformed++;
		if (rc == 1 && w->log)
			log_msg(w->log, kind, body, len, h->stamp);
		if (ct_now_s() - t0 > child_limit(w->timeout_s)) {
			*hung = true;
			break;
		}
		if (rc < 0)
			break;
	}
	close(rd.fd);
	ct_reader_free(&rd);
	return reap(pid, *hung);
}

/* ---- the recovery child ---------------------------------------------------------- */

struct rchild {
	const ct_workload *wl;
	const char *dir;
	ct_plant plant;
	ct_check_fn full_check;
	bool no_fpw; /* full_page_writes off */
	double timeout_s; /* hung after this long (0: CHILD_TIMEOUT_S) */
};

struct dump {
	int fd;
	wd_txn *x;
	const struct rchild *a;
	bool planted;
	char err[400];
};

static void send_text(int fd, uint8_t kind, const char *fmt, ...) WD_PRINTF(3, 4);
static void send_text(int fd, uint8_t kind, const char *fmt, ...)
{
	char msg[640];
	ct_buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ct_put_str(&b, msg);
	(void)ct_send(fd, kind, &b);
	ct_buf_free(&b);
}

static void send_chatter(void *arg)
{
	send_text(*(int *)arg, CT_M_STRUCT, "planted chatter");
}

/* One row to the driver, with the planted faults of the recovery side. */
static void send_row(struct dump *d, const char *table, const void *k, size_t kl,
		     const void *v, size_t vl)
{
	uint8_t ck[CT_MAX_CKEY];
	size_t cklen = ct_ckey(table, k, kl, ck);
	bool first_table = strcmp(table, d->a->wl->tables[0]) == 0;
	ct_buf b = {0};
	if (cklen == 0) { /* no workload writes such a key: it is damage */
		send_text(d->fd, CT_M_STRUCT, "table %s: a key of %zu bytes, longer than any "
			  "workload writes", table, kl);
		return;
	}
	if (first_table && !d->planted && d->a->plant == CT_PLANT_DROP_KEY) {
		d->planted = true;
		return;
	}
	ct_put_u16(&b, (uint16_t)cklen);
	ct_put_bytes(&b, ck, cklen);
	ct_put_u32(&b, (uint32_t)vl);
	ct_put_bytes(&b, v, vl);
	if (first_table && !d->planted && d->a->plant == CT_PLANT_CORRUPT_VALUE && vl > 30) {
		d->planted = true;
		b.p[b.len - vl + 30] ^= 0x20; /* a filler byte */
	}
	(void)ct_send(d->fd, CT_M_ROW, &b);
	ct_buf_free(&b);
}

/* db_catalog_list callback: every row of one table. */
static int dump_table(void *arg, const db_table_info *ti)
{
	struct dump *d = arg;
	wd_table *t;
	wd_cursor *c;
	const void *k, *v;
	size_t kl, vl;
	int rc;
	if ((rc = wd_table_open(d->x, ti->name, 0, &t)) != 0 ||
	    (rc = wd_cursor_open(d->x, t, &c)) != 0) {
		snprintf(d->err, sizeof d->err, "table %s: %s", ti->name, wd_last_error());
		return rc;
	}
	while ((rc = wd_cursor_next(c, &k, &kl, &v, &vl)) == 0)
		send_row(d, ti->name, k, kl, v, vl);
	wd_cursor_close(c);
	if (rc != WD_NOTFOUND) {
		snprintf(d->err, sizeof d->err, "reading table %s: %s (%s)", ti->name,
			 wd_strerror(rc), wd_last_error());
		return rc;
	}
	return 0;
}

/* db_catalog_list callback: db_table_check of one table. */
static int check_table(void *arg, const db_table_info *ti)
{
	struct dump *d = arg;
	db_check_report rep;
	wd_table *t;
	int rc = wd_table_open(d->x, ti->name, 0, &t);
	if (rc == 0)
		rc = db_table_check(t, &rep);
	if (rc != 0)
		snprintf(d->err, sizeof d->err, "table %s: %s", ti->name,
			 rc == WD_ECORRUPT ? rep.msg : wd_last_error());
	return rc;
}

/* R1-R5: open (recover), report, every row, checks, close, full check. */
static void recovery_child(void *arg, int fd)
{
	const struct rchild *a = arg;
	struct dump d = {.fd = fd, .a = a};
	const db_recovery_report *rr;
	db_check_report cr;
	wd_options o;
	wd_db *db;
	ct_buf b = {0};
	double t0 = ct_now_s(), t1;
	bool complete = false;
	int rc;
	a->wl->options(&o);
	if (a->no_fpw)
		o.full_page_writes = 0;
	if (a->plant == CT_PLANT_CHATTER_RECOVERY)
		plant_stall(true, send_chatter, &fd);
	if ((rc = wd_open(a->dir, &o, &db)) != 0) {
		ct_put_u32(&b, (uint32_t)-rc);
		ct_put_str(&b, wd_last_error());
		(void)ct_send(fd, CT_M_OPENFAIL, &b);
		_exit(0);
	}
	t1 = ct_now_s();
	ct_put_f64(&b, (t1 - t0) * 1000.0);
	if (db_recovery_report_get(db, &rr) == 0) {
		ct_put_u64(&b, rr->records);
		ct_put_u64(&b, rr->applied);
		ct_put_u64(&b, rr->images);
		ct_put_u64(&b, rr->losers);
		ct_put_u64(&b, rr->undo_steps);
	} else { /* no report: zeros, so that the message has its length */
		for (int i = 0; i < 5; i++)
			ct_put_u64(&b, 0);
	}
	(void)ct_send(fd, CT_M_OPENED, &b);
	ct_buf_free(&b);
	if ((rc = wd_begin_flags(db, WD_TXN_RDONLY, &d.x)) != 0) {
		send_text(fd, CT_M_STRUCT, "wd_begin after recovery: %s", wd_last_error());
	} else {
		rc = db_catalog_list(db, dump_table, &d);
		complete = rc == 0;
		if (rc != 0)
			send_text(fd, CT_M_STRUCT, "%s", d.err[0] ? d.err : wd_last_error());
		else if (a->full_check)
			; /* R4 is part of the full check (ct_check_fn), run once there */
		else if ((rc = db_catalog_check(db, &cr)) != 0)
			send_text(fd, CT_M_STRUCT, "catalog: %s", rc == WD_ECORRUPT ? cr.msg
							      : wd_last_error());
		else if ((rc = db_catalog_list(db, check_table, &d)) != 0)
			send_text(fd, CT_M_STRUCT, "%s", d.err[0] ? d.err : wd_last_error());
		if ((rc = wd_commit(d.x)) != 0)
			send_text(fd, CT_M_STRUCT, "ending the reading transaction: %s",
				  wd_last_error());
	}
	if ((rc = wd_close(db)) != 0)
		send_text(fd, CT_M_STRUCT, "wd_close after recovery: %s (%s)", wd_strerror(rc),
			  wd_last_error());
	else if (a->full_check) {
		char msg[512] = "";
		if (a->full_check(a->dir, &o, msg, sizeof msg) != 0)
			send_text(fd, CT_M_STRUCT, "walden check: %s", msg);
	}
	ct_put_u8(&b, complete);
	ct_put_f64(&b, ct_now_s() - t1);
	(void)ct_send(fd, CT_M_RDONE, &b);
	ct_buf_free(&b);
	_exit(0);
}

static void take_recovery_msg(ct_recovered *r, uint8_t kind, const uint8_t *body, size_t len)
{
	ct_cur c = {body, len, 0, false};
	r->ran = true;
	if (kind == CT_M_OPENFAIL) {
		uint32_t code = ct_get_u32(&c);
		char *msg = ct_get_str(&c);
		free(r->open_error);
		r->refused = true;
		if (asprintf(&r->open_error, "wd_open: %s (%s)", wd_strerror(-(int)code), msg) < 0)
			abort();
		free(msg);
	} else if (kind == CT_M_OPENED) {
		r->opened = true;
		r->open_ms = ct_get_f64(&c);
		r->records = ct_get_u64(&c);
		r->applied = ct_get_u64(&c);
		r->images = ct_get_u64(&c);
		r->losers = ct_get_u64(&c);
		r->undo_steps = ct_get_u64(&c);
	} else if (kind == CT_M_ROW) {
		uint16_t kl = ct_get_u16(&c);
		const uint8_t *k = ct_get_bytes(&c, kl);
		uint32_t vl = ct_get_u32(&c);
		const uint8_t *v = ct_get_bytes(&c, vl);
		if (!c.bad && k && (v || !vl))
			ct_kvset_add(&r->rows, k, kl, v, vl, true);
	} else if (kind == CT_M_STRUCT) {
		char *msg = ct_get_str(&c);
		if (!r->struct_msg)
			r->struct_msg = msg;
		else
			free(msg);
	} else if (kind == CT_M_RDONE) {
		r->complete = ct_get_u8(&c) != 0;
		r->check_s = ct_get_f64(&c);
	} else {
		c.bad = true;
	}
	if (c.bad) /* a row dropped, a count lost: the verdict says so */
		r->malformed++;
}

/* Runs the recovery child on dir and collects what it says into *r. */
static int drive_recovery(const struct rchild *a, ct_recovered *r)
{
	ct_reader rd = {0};
	double t0 = ct_now_s();
	uint8_t kind;
	const uint8_t *body;
	size_t len;
	bool hung = false;
	int rc, status;
	char st[96];
	pid_t pid = spawn(recovery_child, (void *)a, &rd.fd);
	if (pid < 0)
		return (int)pid;
	while ((rc = ct_recv(&rd, 1000, &kind, &body, &len)) != 0) {
		if (rc == 1)
			take_recovery_msg(r, kind, body, len);
		if (ct_now_s() - t0 > child_limit(a->timeout_s)) {
			hung = true;
			break;
		}
		if (rc < 0)
			break;
	}
	close(rd.fd);
	ct_reader_free(&rd);
	status = reap(pid, hung);
	ct_kvset_sort(&r->rows);
	if (hung || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    (r->opened && !r->complete && !r->struct_msg)) {
		r->refused = false;
		status_str(status, st, sizeof st);
		free(r->open_error);
		if (asprintf(&r->open_error, "the recovery process %s%s%s",
			     hung ? "hung and was killed" : "died: ", hung ? "" : st,
			     r->opened ? " (after wd_open returned)" : "") < 0)
			abort();
		r->opened = false;
	}
	return 0;
}

void ct_recovered_free(ct_recovered *r)
{
	free(r->open_error);
	free(r->struct_msg);
	ct_kvset_free(&r->rows);
	*r = (ct_recovered){0};
}

/* ---- jobs --------------------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
	char *p;
	if (asprintf(&p, "%s/%s", a, b) < 0)
		abort();
	return p;
}

int ct_job_init(ct_job *j, const ct_config *c, const ct_workload *wl, const char *dir,
		const char *base_dir, const ct_kvset *base)
{
	char *opath;
	int rc;
	*j = (ct_job){.c = c, .wl = wl, .base_dir = base_dir, .base = base};
	j->dir = strdup(dir);
	j->db = join(dir, "db");
	j->jdir = join(dir, "journal");
	j->rec = join(dir, "recovered");
	j->crash = join(dir, "crash");
	if (!j->dir)
		abort();
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return err_errno(errno, "crashtest: %s", dir);
	opath = join(dir, "oracle.mdb");
	rc = ct_oracle_open(&j->oracle, opath, base);
	free(opath);
	j->oracle_open = rc == 0;
	return rc;
}

void ct_job_free(ct_job *j)
{
	if (j->oracle_open)
		ct_oracle_close(&j->oracle);
	free(j->dir);
	free(j->db);
	free(j->jdir);
	free(j->rec);
	free(j->crash);
	*j = (ct_job){0};
}

/* A fresh database directory: empty, or a copy of the base. */
static int fresh_db(const char *db, const char *base_dir)
{
	ct_rmrf(db);
	if (base_dir)
		return ct_copy_tree(base_dir, db);
	return 0;
}

/* ---- one state ---------------------------------------------------------------- */

static const st_sim_mode sim_modes[CT_NRES] = {
	[CT_RES_KEEP_ALL] = ST_SIM_KEEP_ALL, [CT_RES_DROP_ALL] = ST_SIM_DROP_ALL,
	[CT_RES_RANDOM] = ST_SIM_RANDOM, [CT_RES_TORN] = ST_SIM_TORN,
};

/* M1: the crash state of a power loss, from the journal. A failure is
 * the harness's (the files never got the power loss): no verdict. */
static int materialise(ct_job *j, const ct_spec *s, ct_result *r)
{
	st_sim_opts o = {.mode = sim_modes[s->res], .seed = s->res_seed,
			 .sector_bytes = s->res == CT_RES_TORN ? j->c->tear_bytes : 512};
	st_sim_report rep;
	int rc;
	rc = storage_sim_materialize(j->jdir, &o, &rep);
	if (rc != 0)
		return err_set(rc, "crashtest: materialising the power loss: %s",
			       wd_last_error());
	r->data_kept = rep.data_kept;
	r->data_dropped = rep.data_dropped;
	r->data_torn = rep.data_torn;
	storage_sim_report_free(&rep);
	return 0;
}

/* K1: a failing state's files (as the crash left them) and how to replay it. */
static void keep_failure(ct_job *j, const ct_result *r, const char *src)
{
	char *dir, *db, *readme, line[1024];
	FILE *f;
	if (asprintf(&dir, "%s/state-%llu-%llu-%s", j->c->keep_dir,
		     (unsigned long long)r->spec.seed, (unsigned long long)r->spec.index,
		     ct_verdict_name(r->verdict)) < 0)
		abort();
	ct_rmrf(dir);
	if (mkdir(j->c->keep_dir, 0755) != 0 && errno != EEXIST)
		goto out;
	db = join(dir, "db");
	readme = join(dir, "README");
	if (mkdir(dir, 0755) == 0 && ct_copy_tree(src, db) == 0 &&
	    (f = fopen(readme, "w")) != NULL) {
		ct_replay_line(j->c, &r->spec, line, sizeof line);
		fprintf(f, "replay: %s\n", line);
		fprintf(f, "files: db/ holds the crash state before recovery; look with "
			"`walden recover --trace db` or `walden check db` (on a copy)\n");
		fprintf(f, "verdict: %s\n%s", ct_verdict_name(r->verdict), r->detail);
		fclose(f);
	}
	free(db);
	free(readme);
out:
	free(dir);
}

/* The workload child's ending: *fired, or the text of what went wrong. */
static bool workload_ended_well(int status, bool hung, const ct_history *h, bool *fired,
				char *err, size_t cap)
{
	char st[96];
	*fired = WIFEXITED(status) && WEXITSTATUS(status) == ST_CRASH_EXIT_CODE;
	if (*fired || (WIFEXITED(status) && WEXITSTATUS(status) == 0 && h->done))
		return true;
	status_str(status, st, sizeof st);
	snprintf(err, cap, "%s%s%s", hung ? "the workload hung and was killed" : st,
		 h->error ? ": " : "", h->error ? h->error : "");
	return false;
}

/* The workload's wal_writer_delay: DESIGN.md section 3, asynchronous
 * commits older than 3 x wal_writer_delay must survive. */
static uint64_t writer_delay_ns(const ct_workload *wl)
{
	wd_options o;
	wl->options(&o);
	return o.wal_writer_delay_ms * 1000000ull;
}

/* V1 for a recovered state: the verdict against the history and the
 * oracle, and what the result reports of both (counts, the recovered
 * rows' digest, the recovery child's times). */
static void judge_state(ct_job *j, ct_history *h, const ct_recovered *rec,
			bool child_error, size_t max_lines, ct_result *r)
{
	uint64_t delay = writer_delay_ns(j->wl);
	ct_judge_in in = {.h = h, .base = j->base, .oracle = &j->oracle, .rec = rec,
			  .async_window_ns = 3 * delay, .writer_delay_ns = delay, .wl = j->wl,
			  .child_error = child_error};
	r->verdict = ct_judge(&in, max_lines, &r->detail);
	r->async_old = in.async_old;
	r->async_excused = in.async_excused;
	r->acked = h->acked;
	r->aborted = h->aborted;
	r->inflight = h->ntx - h->acked - h->aborted;
	r->keys = rec->rows.n;
	r->digest = ct_kvset_digest(&rec->rows);
	r->recovery_ms = rec->open_ms;
	r->t_recovery = rec->open_ms / 1000.0;
	r->t_check = rec->check_s;
}

int ct_state_run(ct_job *j, const ct_spec *s, size_t max_lines, ct_result *r)
{
	bool power = s->res != CT_RES_KILL, hung, ok;
	struct wchild w = {.wl = j->wl, .dir = j->db, .jdir = power ? j->jdir : NULL,
			   .seed = s->seed, .threads = j->c->threads, .plant = j->c->plant,
			   .io_faults = j->c->io_faults, .no_fpw = j->c->no_full_page_writes,
			   .trig = &s->trig, .timeout_s = j->c->child_timeout_s};
	struct rchild rc_arg = {.wl = j->wl, .plant = j->c->plant, .full_check = j->c->full_check,
				.no_fpw = j->c->no_full_page_writes,
				.timeout_s = j->c->child_timeout_s};
	ct_recovered rec = {0};
	ct_history h;
	char err[700] = "";
	double t0, t1, t2, t3;
	int rc, status, ferr;
	*r = (ct_result){.spec = *s};
	if ((rc = fresh_db(j->db, j->base_dir)) != 0)
		return rc;
	if (power) {
		ct_rmrf(j->jdir);
		if (mkdir(j->jdir, 0755) != 0)
			return err_errno(errno, "crashtest: %s", j->jdir);
	}
	if ((rc = ct_oracle_begin(&j->oracle)) != 0)
		return rc;
	ct_history_init(&h, &j->oracle);
	t0 = ct_now_s();
	status = drive_workload(&w, &h, &hung, &ferr);                 /* D1-D3 */
	if (ferr) {
		rc = ferr;
		goto out;
	}
	t1 = ct_now_s();
	ok = workload_ended_well(status, hung, &h, &r->fired, err, sizeof err);
	if (power && (rc = materialise(j, s, r)) != 0)                 /* M1 */
		goto out;
	t2 = ct_now_s();
	rc_arg.dir = j->db;
	if (j->c->keep_dir) { /* recover a copy: the crash state stays for K1 */
		ct_rmrf(j->rec);
		if (access(j->db, F_OK) != 0) /* died before wd_open made it */
			rc = mkdir(j->db, 0755) == 0 ? 0 : err_errno(errno, "crashtest: %s", j->db);
		if (rc != 0 || (rc = ct_copy_tree(j->db, j->rec)) != 0)
			goto out;
		rc_arg.dir = j->rec;
	}
	if ((rc = drive_recovery(&rc_arg, &rec)) != 0)                 /* R1-R5 */
		goto out;
	t3 = ct_now_s();
	if (!ok && !h.error)
		h.error = strdup(err);
	else if (!ok && strcmp(h.error, err) != 0) {
		free(h.error);
		h.error = strdup(err);
	}
	judge_state(j, &h, &rec, !ok, max_lines, r);                      /* V1 */
	ct_ioerr_judge(&h, s, &r->verdict, &r->detail, max_lines);
	r->t_workload = t1 - t0;
	r->t_materialise = t2 - t1;
	r->t_verdict = ct_now_s() - t3;
	if (r->verdict != CT_OK && j->c->keep_dir)
		keep_failure(j, r, j->db);                              /* K1 */
	rc = 0;
out:
	ct_oracle_end(&j->oracle);
	ct_history_free(&h);
	ct_recovered_free(&rec);
	return rc;
}

/* ---- prefix states (README "Prefix states") ------------------------------------ */

void ct_runlog_free(ct_runlog *L)
{
	for (size_t i = 0; i < L->nmsg; i++)
		free(L->msg[i].body);
	free(L->msg);
	free(L->error);
	free(L->db);
	ct_profile_free(&L->prof);
	storage_sim_journal_close(L->journal);
	*L = (ct_runlog){0};
}

int ct_run_record(ct_job *j, uint64_t run, ct_runlog *L)
{
	return ct_run_record_in(j->c, j->wl, j->db, j->jdir, j->base_dir, run, L);
}

int ct_run_record_in(const ct_config *c, const ct_workload *wl, const char *db,
		     const char *jdir, const char *base_dir, uint64_t run, ct_runlog *L)
{
	struct wchild w = {.wl = wl, .dir = db, .jdir = jdir, .seed = c->seed,
			   .threads = c->threads, .plant = c->plant, .log_hits = true,
			   .log = L, .no_fpw = c->no_full_page_writes,
			   .timeout_s = c->child_timeout_s};
	ct_history h;
	char err[700] = "";
	double t0 = ct_now_s();
	bool hung, fired;
	int rc, status, ferr;
	*L = (ct_runlog){.run = run, .db = strdup(db)};
	if (!L->db)
		abort();
	if ((rc = fresh_db(db, base_dir)) != 0)
		return rc;
	ct_rmrf(jdir);
	if (mkdir(jdir, 0755) != 0)
		return err_errno(errno, "crashtest: %s", jdir);
	ct_history_init(&h, NULL);
	status = drive_workload(&w, &h, &hung, &ferr);
	if ((rc = ferr) != 0)
		goto out;
	L->t_workload = ct_now_s() - t0;
	L->ok = workload_ended_well(status, hung, &h, &fired, err, sizeof err) && !fired;
	L->io0 = h.io0;
	if (!L->ok) {
		if (!err[0])
			snprintf(err, sizeof err, "the workload's crash point fired in a run "
				 "with no trigger");
		L->error = strdup(err);
		for (size_t i = 0; i < L->nmsg; i++)
			if (L->msg[i].kind == CT_M_ERROR) {
				L->err_stamp = L->msg[i].stamp;
				break;
			}
	}
	L->prof = h.prof;
	h.prof = (ct_profile){0};
	if ((rc = storage_sim_journal_open(jdir, &L->journal)) != 0)
		goto out;
	if (L->ok) {
		L->n_io = L->prof.io_calls;
	} else { /* a run that journaled nothing after START has made no call */
		uint64_t last = storage_sim_journal_last_io(L->journal);
		L->n_io = last > L->io0 ? last - L->io0 : 0;
	}
	if (!L->ok && L->nmsg && L->msg[L->nmsg - 1].stamp > L->n_io)
		L->n_io = L->msg[L->nmsg - 1].stamp;
out:
	ct_history_free(&h);
	return rc;
}

bool ct_place(const ct_runlog *L, ct_spec *s)
{
	const ct_profile *p = &L->prof;
	uint64_t at = L->n_io + 1;
	s->run = L->run;
	if (s->trig.kind == CT_TRIG_IO) {
		at = s->trig.n <= L->n_io ? s->trig.n : L->n_io + 1;
	} else if (p->hit_off) {
		for (size_t i = 0; i < p->npoints; i++)
			if (strcmp(ct_point_name(i), s->trig.point) == 0 && s->trig.n >= 1 &&
			    s->trig.n <= p->hit_off[i + 1] - p->hit_off[i]) {
				/* the hit saw io calls made: dying there leaves them */
				s->at = p->hit_io[p->hit_off[i] + s->trig.n - 1] + 1;
				return true;
			}
	}
	s->at = at;
	return at <= L->n_io;
}

int ct_state_prefix(ct_job *j, ct_runlog *L, const ct_spec *s, size_t max_lines,
		    ct_result *r)
{
	const char *crash = j->c->keep_dir ? j->crash : j->rec;
	struct rchild ra = {.wl = j->wl, .dir = j->rec, .plant = j->c->plant,
			    .full_check = j->c->full_check, .no_fpw = j->c->no_full_page_writes,
			    .timeout_s = j->c->child_timeout_s};
	st_sim_opts o = {.mode = s->res == CT_RES_KILL ? ST_SIM_KEEP_ALL : sim_modes[s->res],
			 .seed = s->res_seed,
			 .sector_bytes = s->res == CT_RES_TORN ? j->c->tear_bytes : 512};
	st_sim_report rep;
	ct_recovered rec = {0};
	ct_history h;
	uint64_t jt;
	bool child_error = !L->ok && s->at > L->err_stamp;
	double t1, t2, t3;
	int rc;
	*r = (ct_result){.spec = *s};
	r->fired = s->at <= L->n_io;
	ct_rmrf(j->rec);
	ct_rmrf(j->crash);
	rc = j->base_dir ? ct_copy_tree(j->base_dir, crash)
			 : mkdir(crash, 0755) == 0 ? 0 : err_errno(errno, "crashtest: %s", crash);
	if (rc != 0)
		return rc;
	if ((rc = ct_oracle_begin(&j->oracle)) != 0)
		return rc;
	ct_history_init(&h, &j->oracle);
	t1 = ct_now_s();
	for (size_t i = 0; i < L->nmsg && L->msg[i].stamp < s->at; i++) /* D1, D2 */
		if (L->msg[i].kind != CT_M_DONE &&
		    ct_history_take_stamped(&h, L->msg[i].kind, L->msg[i].body, L->msg[i].len) != 0)
			h.malformed++;
	rc = storage_sim_materialize_prefix(L->journal, L->io0 + s->at, &o, L->db, crash,
					    &rep);                 /* M1 */
	if (rc != 0) {
		rc = err_set(rc, "crashtest: materialising the prefix at %llu: %s",
			     (unsigned long long)s->at, wd_last_error());
		goto out;
	}
	r->data_kept = rep.data_kept;
	r->data_dropped = rep.data_dropped;
	r->data_torn = rep.data_torn;
	storage_sim_report_free(&rep);
	/* the crash came after the last record of the prefix, too */
	jt = storage_sim_journal_time(L->journal, L->io0 + s->at);
	if (jt > h.last_t)
		h.last_t = jt;
	t2 = ct_now_s();
	if (j->c->keep_dir && (rc = ct_copy_tree(crash, j->rec)) != 0)
		goto out;
	if ((rc = drive_recovery(&ra, &rec)) != 0)                       /* R1-R5 */
		goto out;
	t3 = ct_now_s();
	if (child_error) {
		free(h.error);
		h.error = strdup(L->error ? L->error : "the workload failed");
	}
	judge_state(j, &h, &rec, child_error, max_lines, r);               /* V1 */
	L->states++;
	r->t_workload = L->states == 1 ? L->t_workload : 0; /* the run, once */
	r->t_materialise = t2 - t1;
	r->t_verdict = ct_now_s() - t3;
	if (r->verdict != CT_OK && j->c->keep_dir)
		keep_failure(j, r, crash);                                 /* K1 */
	rc = 0;
out:
	ct_oracle_end(&j->oracle);
	ct_history_free(&h);
	ct_recovered_free(&rec);
	return rc;
}

void ct_result_free(ct_result *r)
{
	free(r->detail);
	r->detail = NULL;
}

/* ---- the profile and the base ------------------------------------------------- */

int ct_profile_run(const ct_config *c, const ct_workload *wl, const char *dir,
		   const char *base_dir, bool describe, ct_profile *p)
{
	char *db = join(dir, "profile-db");
	struct wchild w = {.wl = wl, .dir = db, .seed = c->seed, .threads = c->threads,
			   .describe = describe, .no_fpw = c->no_full_page_writes};
	ct_history h;
	bool hung;
	int rc, status, ferr;
	*p = (ct_profile){0};
	ct_history_init(&h, NULL);
	if ((rc = fresh_db(db, base_dir)) != 0)
		goto out;
	status = drive_workload(&w, &h, &hung, &ferr);
	if ((rc = ferr) != 0)
		goto out;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !h.done) {
		char st[96];
		status_str(status, st, sizeof st);
		rc = err_set(WD_ESTATE, "the %s workload failed on its own, before any crash "
			     "(%s): %s", wl->name, hung ? "hung" : st,
			     h.error ? h.error : "no message");
		goto out;
	}
	if (h.malformed) {
		rc = err_set(WD_ESTATE, "the %s workload's profile run: %llu malformed messages",
			     wl->name, (unsigned long long)h.malformed);
		goto out;
	}
	*p = h.prof;
	h.prof = (ct_profile){0};
out:
	ct_history_free(&h);
	ct_rmrf(db);
	free(db);
	return rc;
}

int ct_prepare_base(const ct_config *c, const ct_workload *wl, const char *dir,
		    ct_kvset *base)
{
	struct wchild w = {.wl = wl, .dir = dir, .seed = c->seed, .threads = 1, .prepare = true,
			   .no_fpw = c->no_full_page_writes};
	struct rchild ra = {.wl = wl, .dir = dir, .no_fpw = c->no_full_page_writes};
	ct_recovered rec = {0};
	ct_history h;
	bool hung;
	int rc, status, ferr;
	ct_history_init(&h, NULL);
	ct_rmrf(dir);
	status = drive_workload(&w, &h, &hung, &ferr);
	if ((rc = ferr) != 0)
		goto out;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !h.done) {
		rc = err_set(WD_ESTATE, "preparing the %s base: %s", wl->name,
			     h.error ? h.error : "the child failed");
		goto out;
	}
	if ((rc = drive_recovery(&ra, &rec)) != 0)
		goto out;
	if (!rec.opened || !rec.complete || rec.struct_msg) {
		rc = err_set(WD_ESTATE, "reading the %s base: %s", wl->name,
			     rec.open_error ? rec.open_error : rec.struct_msg ? rec.struct_msg
									   : "incomplete");
		goto out;
	}
	*base = rec.rows;
	rec.rows = (ct_kvset){0};
out:
	ct_history_free(&h);
	ct_recovered_free(&rec);
	return rc;
}
