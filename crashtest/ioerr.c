/*
 * ioerr.c - states with an injected I/O error (README "I/O errors"): the
 * eio and enospc faults. pick's part (the I/O call, the error, the
 * resolution), the trigger syntax, the child's side (arming the error,
 * reporting it, freeing space, going on after it, IOEND) and the driver's
 * (the IOFAULT, PANIC and IOEND messages, the rules that judge them).
 * Entry points: ct_ioerr_pick, ct_ioerr_fix_spec, ct_ioerr_parse_trigger,
 * ct_ioerr_name, ct_ioerr_arm, ct_ioerr_on_error, ct_ioerr_notice,
 * ct_ioerr_finish, ct_ioerr_take, ct_ioseen_free, ct_ioerr_judge.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crashtest/ct_internal.h"
#include "storage/storage.h"

#define RESUME_TXNS 3       /* transactions the child commits after the error */
#define RESUME_PUTS 4       /* rows each */
#define STALL_FREE_MS 1000  /* a call waiting this long for space gets it */
#define RESUME_TABLE "ct-resume"

static const char *const ioerr_names[CT_NIOERR] = {"none", "eio-once", "eio", "enospc"};
static const char *const op_names[ST_OP__COUNT] = {
	"open", "read", "write", "sync", "truncate", "allocate",
	"rename", "unlink", "mkdir", "syncdir", "any",
};

const char *ct_ioerr_name(ct_ioerr e)
{
	return (unsigned)e < CT_NIOERR ? ioerr_names[e] : "?";
}

/* ---- the spec ------------------------------------------------------------------- */

void ct_ioerr_pick(const ct_profile *p, uint64_t r1, uint64_t r2, ct_spec *s)
{
	if (s->fault != CT_EIO && s->fault != CT_ENOSPC)
		return;
	s->trig = (ct_trigger){.kind = CT_TRIG_IO, .n = 1 + r1 % (p->io_calls ? p->io_calls : 1)};
	if (s->fault == CT_ENOSPC)
		s->trig.err = CT_IOERR_ENOSPC;
	else
		s->trig.err = (r2 >> 8) & 1 ? CT_IOERR_EIO : CT_IOERR_EIO_ONCE;
	/* a failed fsync may have lost what it was to make durable: the
	 * power loss drops every unsynced change, or some of them */
	s->res = (r2 >> 16) & 1 ? CT_RES_RANDOM : CT_RES_DROP_ALL;
}

void ct_ioerr_fix_spec(ct_spec *s)
{
	if (s->trig.kind == CT_TRIG_IO && s->trig.err != CT_IOERR_NONE)
		s->fault = s->trig.err == CT_IOERR_ENOSPC ? CT_ENOSPC : CT_EIO;
	else if (s->fault == CT_EIO || s->fault == CT_ENOSPC)
		s->fault = s->res == CT_RES_KILL ? CT_KILL : s->res == CT_RES_TORN ? CT_TORN
									    : CT_POWER;
	if (s->trig.kind == CT_TRIG_POINT)
		s->trig.err = CT_IOERR_NONE;
}

int ct_ioerr_parse_trigger(const char *s, ct_trigger *t)
{
	for (int e = CT_IOERR_EIO_ONCE; e < CT_NIOERR; e++) {
		size_t nl = strlen(ioerr_names[e]);
		char *end;
		if (strncmp(s, ioerr_names[e], nl) != 0 || s[nl] != ':' || s[nl + 1] < '0' ||
		    s[nl + 1] > '9')
			continue;
		*t = (ct_trigger){.kind = CT_TRIG_IO, .err = (ct_ioerr)e};
		t->n = strtoull(s + nl + 1, &end, 10);
		return *end == '\0' && t->n > 0 ? 1 : 0;
	}
	return 0;
}

/* The enabled errors, in the loop's order; their number. */
static int loop_errors(const ct_config *c, ct_ioerr *e)
{
	int n = 0;
	if (c->faults & (1u << CT_EIO)) {
		e[n++] = CT_IOERR_EIO_ONCE;
		e[n++] = CT_IOERR_EIO;
	}
	if (c->faults & (1u << CT_ENOSPC))
		e[n++] = CT_IOERR_ENOSPC;
	return n;
}

/* The loop's parts: how many (1: one, the whole loop) and this one. */
static uint64_t loop_parts(const ct_config *c)
{
	return c->loop_parts > 1 ? c->loop_parts : 1;
}

static uint64_t loop_part(const ct_config *c)
{
	return c->loop_parts > 1 ? c->loop_part : 0;
}

void ct_ioerr_every_k(const ct_config *c, const ct_profile *p, uint64_t i, ct_spec *s)
{
	ct_ioerr e[CT_NIOERR];
	int n = loop_errors(c, e);
	uint64_t stride = c->choose_arg ? c->choose_arg : 1, step;
	(void)p;
	if (n == 0) { /* no eio or enospc enabled: the loop is empty */
		e[0] = CT_IOERR_EIO_ONCE;
		n = 1;
	}
	/* the whole loop's step: a part takes every loop_parts-th */
	step = i / (uint64_t)n * loop_parts(c) + loop_part(c);
	*s = (ct_spec){.seed = c->seed, .index = step * (uint64_t)n + i % (uint64_t)n,
		       .res_seed = 1 + step * stride};
	s->trig = (ct_trigger){.kind = CT_TRIG_IO, .n = 1 + step * stride, .err = e[i % (uint64_t)n]};
	s->res = step % 2 ? CT_RES_RANDOM : CT_RES_DROP_ALL;
	ct_ioerr_fix_spec(s);
}

uint64_t ct_ioerr_every_k_states(const ct_config *c, uint64_t io_calls)
{
	ct_ioerr e[CT_NIOERR];
	uint64_t stride = c->choose_arg ? c->choose_arg : 1;
	uint64_t steps = (io_calls + stride - 1) / stride, parts = loop_parts(c),
		 part = loop_part(c);
	steps = steps > part ? (steps - part + parts - 1) / parts : 0; /* this part's */
	return (uint64_t)loop_errors(c, e) * steps;
}

/* ---- the workload child --------------------------------------------------------- */

struct ct_ioerr_child {
	ct_ioerr err;
	uint64_t io0;         /* the I/O count when the workload started */
	atomic_bool noticed;  /* IOFAULT sent */
	atomic_bool panicked; /* PANIC sent */
	atomic_bool freed;    /* enospc: the fault cleared, space is back */
	atomic_bool stop;     /* the watchdog ends */
	pthread_t watchdog;
	bool watching;
};


uint8_t ct_wal_class(const char *dir, const char *path)
{
	char wal[4096];
	size_t n = (size_t)snprintf(wal, sizeof wal, "%s/wal", dir), i;
	if (n >= sizeof wal || strncmp(path, wal, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return CT_WAL_NONE;
	if (path[n] == '\0' || strlen(path + n + 1) != 16)
		return CT_WAL_OTHER;
	for (i = n + 1; path[i]; i++)
		if (!isxdigit((unsigned char)path[i]))
			return CT_WAL_OTHER;
	return CT_WAL_SEGMENT;
}

void ct_ioerr_notice(ct_run *r)
{
	struct ct_ioerr_child *io = r->io;
	st_fault_event e;
	bool expected = false;
	ct_buf b = {0};
	if (!io || atomic_load(&io->noticed) || !storage_fault_first(&e))
		return;
	if (!atomic_compare_exchange_strong(&io->noticed, &expected, true))
		return;
	ct_put_u64(&b, e.io - io->io0);
	ct_put_u8(&b, (uint8_t)e.op);
	ct_put_u8(&b, (uint8_t)e.kind);
	ct_put_u8(&b, ct_wal_class(r->dir, e.path));
	ct_send_stamped(r, CT_M_IOFAULT, &b);
	ct_buf_free(&b);
}

/* Space returns (enospc): the fault goes; noticed first, so that the
 * IOFAULT message still says which call failed. */
static void free_space(ct_run *r)
{
	bool expected = false;
	ct_ioerr_notice(r);
	if (atomic_compare_exchange_strong(&r->io->freed, &expected, true))
		storage_fault_clear();
}

/*
 * The enospc child's watchdog: a call may wait for space instead of
 * failing (wal/README.md I10: an insert that reserved its place waits
 * until space returns). With one workload thread nobody else would free
 * it, so once the error has fired and STALL_FREE_MS pass without the
 * workload freeing space, the watchdog does.
 */
static void *watchdog_main(void *arg)
{
	ct_run *r = arg;
	struct timespec nap = {0, 5 * 1000000L};
	uint64_t since = 0;
	while (!atomic_load(&r->io->stop) && !atomic_load(&r->io->freed)) {
		nanosleep(&nap, NULL);
		if (!storage_fault_first(NULL))
			continue;
		if (since == 0)
			since = ct_now_ns();
		else if (ct_now_ns() - since > STALL_FREE_MS * 1000000ull)
			free_space(r);
	}
	return NULL;
}

void ct_ioerr_arm(ct_run *r, const ct_trigger *t, uint64_t io0)
{
	static struct ct_ioerr_child io; /* one per child process */
	static const struct {
		st_fault_kind kind;
		uint64_t count;
	} how[CT_NIOERR] = {
		[CT_IOERR_EIO_ONCE] = {ST_FAULT_EIO, 1},
		[CT_IOERR_EIO] = {ST_FAULT_EIO, 0},
		[CT_IOERR_ENOSPC] = {ST_FAULT_ENOSPC, 0},
	};
	memset(&io, 0, sizeof io);
	io.err = t->err;
	io.io0 = io0;
	r->io = &io;
	if (storage_fault_add_at(ST_OP_ANY, how[t->err].kind, io0 + t->n, how[t->err].count) != 0)
		abort(); /* the table is empty in a fresh child */
	if (t->err == CT_IOERR_ENOSPC)
		io.watching = pthread_create(&io.watchdog, NULL, watchdog_main, r) == 0;
}

/* Whether this thread's last failed engine call followed an injected
 * error (ct_ioerr_explained takes it). */
static _Thread_local bool explained;

bool ct_ioerr_explained(void)
{
	bool e = explained;
	explained = false;
	return e;
}

bool ct_ioerr_on_error(ct_run *r, const char *what, int rc)
{
	struct ct_ioerr_child *io = r->io;
	bool expected = false;
	explained = false;
	if (rc == 0)
		return false;
	if (!io) { /* the tests' injected faults (--inject): blamed, no more */
		explained = storage_fault_fired() > 0;
		return false;
	}
	ct_ioerr_notice(r);
	if (!atomic_load(&io->noticed))
		return false; /* not ours: the workload's own failure */
	explained = true;
	if (rc == WD_EPANIC && atomic_compare_exchange_strong(&io->panicked, &expected, true)) {
		ct_buf b = {0};
		char msg[600];
		snprintf(msg, sizeof msg, "%s: %s", what, wd_last_error());
		ct_put_str(&b, msg);
		ct_send_stamped(r, CT_M_PANIC, &b);
		ct_buf_free(&b);
	}
	if (io->err == CT_IOERR_ENOSPC)
		free_space(r); /* the application makes room, then rolls back */
	return true;
}

/* Ends the child as the failure it is: no resume once space returned. */
static _Noreturn void no_resume(ct_run *r, const char *what, int rc)
{
	char msg[700];
	snprintf(msg, sizeof msg, "no commit once space returned (DESIGN.md section 6): %s: "
		 "%s (%s)", what, wd_strerror(rc), wd_last_error());
	ct_child_error(r, msg);
}

/* A failure while going on: enospc must not fail once space is back; eio
 * may (a disk that keeps failing, a panic). Returns rc. */
static int go_on_failed(ct_run *r, const char *what, int rc)
{
	(void)ct_ioerr_on_error(r, what, rc);
	if (r->io->err == CT_IOERR_ENOSPC)
		no_resume(r, what, rc);
	return rc;
}

/* The application goes on: the database (opened again if its open
 * failed), a table of its own, RESUME_TXNS synchronous commits. Returns
 * the commits acknowledged; *uncreated: the creation of the database had
 * failed and the open refuses it. */
static uint64_t go_on(ct_run *r, bool *uncreated)
{
	uint64_t commits = 0;
	wd_txn *x;
	int rc;
	r->failed = false;
	if ((rc = ct_run_open(r)) != 0) {
		/* A database whose creation failed is refused by the next open
		 * until its directory is removed (txn/README.md P1 step 3; the
		 * error says so): README "I/O errors", like O1. */
		if (!r->db && strstr(r->error, CT_UNFINISHED_CREATION)) {
			*uncreated = true;
			return 0;
		}
		(void)go_on_failed(r, "opening the database again", rc);
		return 0;
	}
	r->extra_table = RESUME_TABLE;
	if ((rc = wd_begin(r->db, &x)) != 0)
		return go_on_failed(r, "wd_begin", rc), 0;
	if ((rc = wd_table_open(x, RESUME_TABLE, WD_CREATE, &r->tables[CT_EXTRA_TABLE])) != 0) {
		(void)wd_abort(x);
		return go_on_failed(r, "creating a table", rc), 0;
	}
	if ((rc = wd_commit(x)) != 0)
		return go_on_failed(r, "wd_commit of the table", rc), 0;
	for (unsigned n = 0; n < RESUME_TXNS; n++) {
		ct_txn t;
		if ((rc = ct_begin(r, &t, true)) != 0)
			return go_on_failed(r, "wd_begin", rc), commits;
		for (unsigned i = 0; i < RESUME_PUTS; i++) {
			char k[32], p[16];
			int kl = snprintf(k, sizeof k, "resume-%u-%u", n, i);
			int pl = snprintf(p, sizeof p, "%u", n);
			if ((rc = ct_put(&t, CT_EXTRA_TABLE, k, (size_t)kl, p, (uint32_t)pl,
					 100 + 40 * i)) != 0) {
				if (ct_abort(&t) != 0) { /* reported by the recorder */ }
				return go_on_failed(r, "wd_put", rc), commits;
			}
		}
		if ((rc = ct_commit(&t)) != 0)
			return go_on_failed(r, "wd_commit", rc), commits;
		commits++;
	}
	return commits;
}

void ct_ioerr_finish(ct_run *r, int rc)
{
	struct ct_ioerr_child *io = r->io;
	uint8_t flags = 0;
	uint64_t commits = 0;
	bool uncreated = false;
	ct_buf b = {0};
	char failure[sizeof r->error];
	if (!io)
		return;
	snprintf(failure, sizeof failure, "%s", rc != 0 ? r->error : "");
	ct_ioerr_notice(r);
	atomic_store(&io->stop, true);
	if (io->watching)
		pthread_join(io->watchdog, NULL);
	if (!atomic_load(&io->noticed)) {
		storage_fault_clear(); /* never fired: the state ran to its end */
		return;
	}
	if (atomic_load(&r->own_failed)) { /* I11: not the error's doing */
		char msg[sizeof r->own_error + 64];
		snprintf(msg, sizeof msg, "after the injected error, a failure of its own: %s",
			 r->own_error);
		ct_child_error(r, msg);
	}
	if (io->err == CT_IOERR_ENOSPC)
		free_space(r);
	/* step 2: the engine said it is unusable: the child stops; else it
	 * goes on, and with space back it must commit again */
	if (!atomic_load(&io->panicked) && (r->db || io->err == CT_IOERR_ENOSPC))
		commits = go_on(r, &uncreated);
	flags = (uint8_t)((atomic_load(&io->panicked) ? CT_IOEND_PANICKED : 0) |
			  (atomic_load(&io->freed) ? CT_IOEND_FREED : 0) |
			  (commits == RESUME_TXNS ? CT_IOEND_RESUMED : 0) |
			  (uncreated ? CT_IOEND_UNCREATED : 0));
	ct_put_u8(&b, flags);
	ct_put_u64(&b, commits);
	ct_put_str(&b, failure);
	ct_send_stamped(r, CT_M_IOEND, &b);
	ct_buf_free(&b);
	_exit(ST_CRASH_EXIT_CODE); /* step 3: killed; the power loss follows */
}

/* ---- the driver ------------------------------------------------------------------ */

int ct_ioerr_take(ct_history *h, uint8_t kind, ct_cur *c)
{
	ct_ioseen *io = &h->io;
	if (kind == CT_M_IOFAULT) {
		io->fault = true;
		io->fault_seq = ++h->seq;
		io->fault_io = ct_get_u64(c);
		io->fault_op = ct_get_u8(c);
		io->fault_kind = ct_get_u8(c);
		io->fault_wal = ct_get_u8(c);
	} else if (kind == CT_M_PANIC) {
		io->panic_seq = ++h->seq;
		free(io->panic);
		io->panic = ct_get_str(c);
	} else if (kind == CT_M_IOEND) {
		io->ended = true;
		io->end_flags = ct_get_u8(c);
		io->end_commits = ct_get_u64(c);
		free(io->failure);
		io->failure = ct_get_str(c);
	} else {
		return -1;
	}
	return c->bad ? -1 : 0;
}

void ct_ioseen_free(ct_ioseen *io)
{
	free(io->panic);
	free(io->failure);
	*io = (ct_ioseen){0};
}

struct lines {
	char *p;
	size_t len, n, max;
};

static void add_line(struct lines *l, const char *fmt, ...) WD_PRINTF(2, 3);
static void add_line(struct lines *l, const char *fmt, ...)
{
	char buf[900];
	va_list ap;
	int n;
	if (l->n++ >= l->max)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (!(l->p = realloc(l->p, l->len + (size_t)n + 1)))
		abort();
	memcpy(l->p + l->len, buf, (size_t)n);
	l->len += (size_t)n;
	l->p[l->len] = '\0';
}

/* The acknowledged transactions requested after message seq `after` (with
 * flushed_only, those whose commit had to pass a flush: synchronous, with
 * a commit record). */
static void acks_after(const ct_history *h, uint64_t after, bool flushed_only, const char *why,
		       struct lines *l, ct_verdict *v)
{
	for (size_t i = 0; i < h->ntx; i++) {
		const ct_tx *t = &h->tx[i];
		if (t->state != CT_TX_ACKED || t->req_seq <= after ||
		    (flushed_only && !(t->sync && t->wrote)))
			continue;
		*v = *v > CT_LOST_ACK ? *v : CT_LOST_ACK;
		add_line(l, "LOST-ACK: transaction %llu was acknowledged though %s before it was "
			 "requested", (unsigned long long)t->id, why);
	}
}

void ct_ioerr_judge(const ct_history *h, const ct_spec *s, ct_verdict *v, char **detail,
		    size_t max_lines)
{
	const ct_ioseen *io = &h->io;
	struct lines l = {.max = max_lines ? max_lines : 1}, info = {.max = 1};
	char why[160];
	if (s->fault != CT_EIO && s->fault != CT_ENOSPC)
		return;
	if (!io->fault) {
		add_line(&info, "the injected %s never fired (the workload ended first)",
			 ct_ioerr_name(s->trig.err));
	} else {
		add_line(&info, "injected %s fired at I/O call %llu (%s)%s%s; %llu commits after "
			 "it%s%s%s",
			 ct_ioerr_name(s->trig.err), (unsigned long long)io->fault_io,
			 io->fault_op < ST_OP__COUNT ? op_names[io->fault_op] : "?",
			 io->panic ? "; panic: " : "", io->panic ? io->panic : "",
			 (unsigned long long)io->end_commits,
			 io->end_flags & CT_IOEND_UNCREATED ? " (the database's creation failed: "
			 "the next open refuses it)" : "",
			 io->failure && io->failure[0] ? "; the workload's failure: " : "",
			 io->failure ? io->failure : "");
		/* rule E1: no acknowledgement after a failed fsync of a log
		 * segment of a commit that had to pass a flush (the commits'
		 * durability). An asynchronous or read-only commit passes
		 * none, and the fsyncs of a segment being prepared and of the
		 * WAL directory are no flush's: a commit in the moment before
		 * the log panics is judged then, like the commits after a
		 * failed fsync of a data file or base/, by E2 and the power
		 * loss (README "I/O errors") */
		if (io->fault_kind == ST_FAULT_EIO && io->fault_wal == CT_WAL_SEGMENT &&
		    io->fault_op == ST_OP_SYNC) {
			snprintf(why, sizeof why, "an fsync of the log had failed (I/O call %llu)",
				 (unsigned long long)io->fault_io);
			acks_after(h, io->fault_seq, true, why, &l, v);
		}
	}
	/* rule: no acknowledgement after the panic */
	if (io->panic_seq)
		acks_after(h, io->panic_seq, false, "the engine had reported its panic", &l, v);
	/* rule: work resumes once space returns */
	if (s->fault == CT_ENOSPC && io->fault && io->panic_seq) {
		*v = *v > CT_CHILD_ERROR ? *v : CT_CHILD_ERROR;
		add_line(&l, "CHILD-ERROR: the engine panicked on ENOSPC instead of failing the "
			 "operation and going on once space returned: %s", io->panic);
	} else if (s->fault == CT_ENOSPC && io->fault && io->ended &&
		   !(io->end_flags & (CT_IOEND_RESUMED | CT_IOEND_UNCREATED))) {
		*v = *v > CT_CHILD_ERROR ? *v : CT_CHILD_ERROR;
		add_line(&l, "CHILD-ERROR: no commit once space returned (%llu of %d)",
			 (unsigned long long)io->end_commits, RESUME_TXNS);
	}
	/* problems first (the summary shows the first line), the error last */
	{
		char *old = *detail;
		if (asprintf(detail, "%s%s%s", l.p ? l.p : "", old ? old : "",
			     info.p ? info.p : "") < 0)
			abort();
		free(old);
		free(l.p);
		free(info.p);
	}
}
