/*
 * fault.c - crash points, the I/O call counter and injected errors.
 *
 * Entry points: storage_crash_point, storage_crash_arm[_io], storage_io_count,
 * storage_fault_add/parse/clear, and fault_check (called by file.c at the
 * start of every I/O call).
 *
 * Everything here is process-global and thread-safe. Configuration from the
 * environment (WALDEN_CRASH_POINT, WALDEN_CRASH_IO, WALDEN_FAULT) is read
 * once, at the first I/O call or crash point.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/storage_internal.h"
#include "storage/trace.h"

#define MAX_FAULTS 32
#define MAX_POINTS 128
#define NAME_MAX_LEN 64

struct fault {
	st_op op;
	st_fault_kind kind;
	uint64_t nth;   /* first matching call that fails (1-based) */
	uint64_t count; /* how many fail; 0 = forever */
	uint64_t seen;  /* matching calls so far */
	uint64_t from_io; /* calls before this I/O call do not count (0: all) */
	char substr[128];
};

struct point {
	char name[NAME_MAX_LEN];
	const char *addr;     /* the name's address at its first hit (by_addr) */
	_Atomic uint64_t hits;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t io_calls;
static _Atomic uint64_t faults_fired;
static _Atomic int nfaults; /* fast path: no lock when zero */
static struct fault faults[MAX_FAULTS];
static struct point points[MAX_POINTS];
static int npoints;
/* A hit finds its point without the lock or a string compare when its
 * name's address is cached here (call sites pass literals): a point is
 * published after its addr is set, and addr never changes after. */
#define BY_ADDR 64
static struct point *_Atomic by_addr[BY_ADDR];
static struct point *_Atomic armed_point; /* NULL: nothing armed */
static _Atomic uint64_t armed_at;         /* fire when its hits reach this */
static _Atomic uint64_t armed_io; /* fire before this I/O call, 0 = off */
static st_fault_event first_fired; /* under lock; io 0: none yet */
static void (*_Atomic observer)(const char *name, uint64_t io); /* hits */

static const char *const op_names[ST_OP__COUNT] = {
	"open", "read", "write", "sync", "truncate", "allocate",
	"rename", "unlink", "mkdir", "syncdir", "any",
};
static const char *const kind_names[] = {"eio", "enospc", "short", "eintr"};

/* Ends the process the way kill -9 would: no atexit handlers, no stdio
 * flush, nothing written after this point. */
static _Noreturn void crash_now(const char *why)
{
	char msg[160];
	int n = snprintf(msg, sizeof msg, "walden: crash point %s fired\n", why);
	if (getenv("WALDEN_CRASH_QUIET") == NULL && n > 0)
		(void)!write(STDERR_FILENO, msg, (size_t)n);
	_exit(ST_CRASH_EXIT_CODE);
}

static void arm_point(const char *name, uint64_t nth);
static int parse_spec(const char *spec);

/* Reads WALDEN_CRASH_POINT, WALDEN_CRASH_IO and WALDEN_FAULT (once). */
static void read_env(void)
{
	const char *cp = getenv("WALDEN_CRASH_POINT");
	const char *io = getenv("WALDEN_CRASH_IO");
	const char *fs = getenv("WALDEN_FAULT");

	if (cp && *cp) {
		char name[NAME_MAX_LEN];
		const char *colon = strchr(cp, ':');
		size_t len = colon ? (size_t)(colon - cp) : strlen(cp);
		uint64_t nth = colon ? strtoull(colon + 1, NULL, 10) : 1;
		if (len < sizeof name) {
			memcpy(name, cp, len);
			name[len] = '\0';
			arm_point(name, nth ? nth : 1);
		}
	}
	if (io && *io)
		atomic_store(&armed_io, strtoull(io, NULL, 10));
	if (fs && *fs && parse_spec(fs) != 0) {
		/* A bad spec in a test's environment is a test bug: say so
		 * loudly rather than run without the fault it asked for. */
		fprintf(stderr, "walden: bad WALDEN_FAULT '%s': %s\n", fs,
			wd_last_error());
		_exit(2);
	}
}

static void env_init(void)
{
	pthread_once(&env_once, read_env);
}

/* The slot for name, created on first use; NULL when the table is full. */
static struct point *point_slot(const char *name)
{
	for (int i = 0; i < npoints; i++)
		if (strcmp(points[i].name, name) == 0)
			return &points[i];
	if (npoints == MAX_POINTS || strlen(name) >= NAME_MAX_LEN)
		return NULL;
	snprintf(points[npoints].name, NAME_MAX_LEN, "%s", name);
	points[npoints].addr = NULL;
	atomic_store(&points[npoints].hits, 0);
	return &points[npoints++];
}

static size_t addr_hash(const char *name)
{
	return ((uintptr_t)name >> 3) % BY_ADDR;
}

/* The point of a hit of name: from by_addr (lock-free), else looked up
 * (created) under the lock and cached if it is this address's. */
static struct point *hit_slot(const char *name)
{
	size_t h = addr_hash(name);
	struct point *p = atomic_load_explicit(&by_addr[h], memory_order_acquire);
	if (p && p->addr == name)
		return p;
	pthread_mutex_lock(&lock);
	p = point_slot(name);
	if (p && !p->addr)
		p->addr = name;
	if (p && p->addr == name)
		atomic_store_explicit(&by_addr[h], p, memory_order_release);
	pthread_mutex_unlock(&lock);
	return p;
}

/* A hit costs two atomic operations once its point is cached, so points
 * may sit on hot paths (one per record replayed, one per heap change). */
void storage_crash_point(const char *name)
{
	struct point *p;
	bool fire = false;

	env_init();
	p = hit_slot(name);
	if (p) {
		uint64_t hits = atomic_fetch_add(&p->hits, 1) + 1;
		fire = atomic_load(&armed_point) == p && hits >= atomic_load(&armed_at);
	}
	TRACE(TR_STORAGE, "crash point %s%s", name, fire ? " FIRES" : "");
	if (fire)
		crash_now(name);
	{
		void (*fn)(const char *, uint64_t) = atomic_load(&observer);
		if (fn)
			fn(name, atomic_load(&io_calls));
	}
}

/* storage_crash_arm without reading the environment (read_env uses it). */
static void arm_point(const char *name, uint64_t nth)
{
	pthread_mutex_lock(&lock);
	if (!name || strlen(name) >= NAME_MAX_LEN) {
		atomic_store(&armed_point, NULL);
	} else {
		struct point *p = point_slot(name);
		if (p)
			atomic_store(&armed_at, atomic_load(&p->hits) + (nth ? nth : 1));
		atomic_store(&armed_point, p); /* NULL (table full): never fires */
	}
	pthread_mutex_unlock(&lock);
}

void storage_crash_arm(const char *name, uint64_t nth)
{
	env_init();
	arm_point(name, nth);
}

void storage_crash_arm_io(uint64_t nth)
{
	atomic_store(&armed_io, nth);
}

uint64_t storage_crash_hits(const char *name)
{
	uint64_t hits = 0;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < npoints; i++)
		if (strcmp(points[i].name, name) == 0)
			hits = atomic_load(&points[i].hits);
	pthread_mutex_unlock(&lock);
	return hits;
}

void storage_crash_observe(void (*fn)(const char *name, uint64_t io))
{
	atomic_store(&observer, fn);
}

uint64_t storage_io_count(void)
{
	return atomic_load(&io_calls);
}

/* storage_fault_add without reading the environment (read_env uses it). */
static int add_fault(st_op op, st_fault_kind kind, uint64_t nth,
		     uint64_t count, const char *substr, uint64_t from_io)
{
	struct fault *f;
	int rc = 0;

	if ((unsigned)op >= ST_OP__COUNT || (unsigned)kind > ST_FAULT_EINTR)
		return err_set(WD_EINVAL, "fault: unknown operation or kind");
	if (kind == ST_FAULT_SHORT && op != ST_OP_READ && op != ST_OP_WRITE &&
	    op != ST_OP_ANY)
		return err_set(WD_EINVAL, "fault: short transfers apply to read and write only");
	if (substr && strlen(substr) >= sizeof f->substr)
		return err_set(WD_EINVAL, "fault: path filter too long");
	pthread_mutex_lock(&lock);
	if (atomic_load(&nfaults) == MAX_FAULTS) {
		rc = err_set(WD_ENOBUFS, "fault: at most %d faults", MAX_FAULTS);
	} else {
		f = &faults[atomic_load(&nfaults)];
		*f = (struct fault){.op = op, .kind = kind,
				    .nth = nth ? nth : 1, .count = count,
				    .from_io = from_io};
		snprintf(f->substr, sizeof f->substr, "%s", substr ? substr : "");
		atomic_fetch_add(&nfaults, 1);
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

int storage_fault_add(st_op op, st_fault_kind kind, uint64_t nth,
		      uint64_t count, const char *substr)
{
	env_init();
	return add_fault(op, kind, nth, count, substr, 0);
}

int storage_fault_add_at(st_op op, st_fault_kind kind, uint64_t io_index,
			 uint64_t count)
{
	env_init();
	return add_fault(op, kind, 1, count, NULL, io_index);
}

bool storage_fault_first(st_fault_event *e)
{
	bool any;
	env_init();
	pthread_mutex_lock(&lock);
	any = first_fired.io != 0;
	if (any && e)
		*e = first_fired;
	pthread_mutex_unlock(&lock);
	return any;
}

/* Looks name up in a table of n strings; -1 if absent. */
static int lookup(const char *const *table, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(table[i], name) == 0)
			return i;
	return -1;
}

/* Parses one "op:kind[:nth[:count]][@substr]" item. */
static int parse_one(char *item)
{
	char whole[256];
	char *at = strchr(item, '@');
	char *op_s, *kind_s, *nth_s, *count_s, *save;
	int op, kind;

	snprintf(whole, sizeof whole, "%s", item);
	if (at)
		*at++ = '\0';
	op_s = strtok_r(item, ":", &save);
	kind_s = strtok_r(NULL, ":", &save);
	nth_s = strtok_r(NULL, ":", &save);
	count_s = strtok_r(NULL, ":", &save);
	op = op_s ? lookup(op_names, ST_OP__COUNT, op_s) : -1;
	kind = kind_s ? lookup(kind_names, 4, kind_s) : -1;
	if (op < 0 || kind < 0)
		return err_set(WD_EINVAL,
			      "fault spec '%s': want op:kind[:nth[:count]][@path], "
			      "op one of open read write sync truncate allocate "
			      "rename unlink mkdir syncdir any, kind one of eio "
			      "enospc short eintr",
			      whole);
	return add_fault((st_op)op, (st_fault_kind)kind,
				 nth_s ? strtoull(nth_s, NULL, 10) : 1,
				 count_s ? strtoull(count_s, NULL, 10) : 1, at, 0);
}

static int parse_spec(const char *spec)
{
	char *copy = strdup(spec), *save, *item;
	int rc = 0;
	if (!copy)
		return err_set(WD_ENOMEM, "fault spec: out of memory");
	for (item = strtok_r(copy, ",", &save); item && rc == 0;
	     item = strtok_r(NULL, ",", &save))
		rc = parse_one(item);
	free(copy);
	return rc;
}

int storage_fault_parse(const char *spec)
{
	env_init();
	return parse_spec(spec);
}

void storage_fault_clear(void)
{
	env_init();
	pthread_mutex_lock(&lock);
	atomic_store(&nfaults, 0);
	first_fired = (st_fault_event){0};
	pthread_mutex_unlock(&lock);
}

/* Whether an ENOSPC fault applies to op: only calls that take space do
 * (a read or an fdatasync never reports a full disk here). */
static bool takes_space(st_op op)
{
	return op == ST_OP_WRITE || op == ST_OP_ALLOCATE;
}

uint64_t storage_fault_fired(void)
{
	return atomic_load(&faults_fired);
}

int fault_check(st_op op, const char *path)
{
	uint64_t n;
	int result = 0;

	env_init();
	n = atomic_fetch_add(&io_calls, 1) + 1;
	if (atomic_load(&armed_io) == n)
		crash_now("io-call");
	if (atomic_load_explicit(&nfaults, memory_order_acquire) == 0)
		return 0;
	pthread_mutex_lock(&lock);
	/* every fault counts every call it matches; the first that fires wins */
	for (int i = 0; i < atomic_load(&nfaults); i++) {
		struct fault *f = &faults[i];
		if (f->op != op && f->op != ST_OP_ANY)
			continue;
		if (f->substr[0] && (!path || !strstr(path, f->substr)))
			continue;
		/* a fault of the wrong shape for this call does not count */
		if (f->kind == ST_FAULT_SHORT && op != ST_OP_READ && op != ST_OP_WRITE)
			continue;
		if (f->kind == ST_FAULT_ENOSPC && f->op == ST_OP_ANY && !takes_space(op))
			continue;
		if (n < f->from_io)
			continue;
		f->seen++;
		if (!result && f->seen >= f->nth &&
		    (f->count == 0 || f->seen < f->nth + f->count))
			result = 1 + (int)f->kind;
	}
	if (result && first_fired.io == 0) {
		first_fired = (st_fault_event){.io = n, .op = op,
					       .kind = (st_fault_kind)(result - 1)};
		snprintf(first_fired.path, sizeof first_fired.path, "%s", path ? path : "");
	}
	pthread_mutex_unlock(&lock);
	if (result) {
		atomic_fetch_add(&faults_fired, 1);
		TRACE(TR_STORAGE, "inject %s on %s %s", kind_names[result - 1],
		      op_names[op], path ? path : "");
	}
	return result;
}
