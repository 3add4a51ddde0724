/*
 * sim.c - the writer half of simulated power loss: while tracking is on,
 * journals every change to a tracked file or directory entry that a later
 * crash could lose, with what is needed to undo it.
 *
 * Entry points: storage_sim_start/stop/active, and the sim_* hooks that
 * file.c calls (storage_internal.h). The materialiser is sim_crash.c; the
 * protocol, record formats and invariants are in storage/README.md.
 *
 * One process-wide mutex serialises journal appends; for opens, writes,
 * truncates, renames and unlinks it is held across the record and the
 * system call, so journal order is the order the kernel saw (invariant S2).
 * Each storage_sim_start begins a new run; a handle keeps the run that gave
 * it its identity and is untracked in any other (S8). A forked child stops
 * tracking (S9).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "storage/bytes.h"
#include "storage/sim.h"
#include "storage/storage_internal.h"
#include "storage/trace.h"

struct name {
	char *path; /* canonical: realpath of the parent + "/" + base name */
	uint64_t inode;
};

/* A record being built: SIM_HDR bytes reserved, then the payload. */
struct rec {
	uint8_t *buf;
	size_t len, cap;
	bool oom;
};

_Atomic int sim_state;
_Atomic uint64_t sim_run_now; /* written under mu by storage_sim_start */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static bool atfork_failed;   /* register_atfork could not register */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int jfd = -1;         /* the journal, O_APPEND; -1 when off */
static bool jbroken;         /* an append failed: refuse further ones */
static char *jdir;           /* canonical journal directory */
static size_t jdir_len;
static uint64_t last_seq;    /* number of the last record appended */
static uint64_t next_inode = 1;
static uint64_t next_stash;
static struct name *names;   /* path -> inode for tracked names */
static size_t nnames, names_cap;

/* ---- records ------------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds: the clock every process of a machine
 * shares, so a journal's times compare with its writer's other clocks. */
static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Makes room for n more bytes; sets oom instead of failing. */
static uint8_t *rec_grow(struct rec *r, size_t n)
{
	if (r->oom)
		return NULL;
	if (r->len + n > r->cap) {
		size_t cap = (r->len + n) * 2 + 64;
		uint8_t *b = realloc(r->buf, cap);
		if (!b) {
			r->oom = true;
			return NULL;
		}
		r->buf = b;
		r->cap = cap;
	}
	r->len += n;
	return r->buf + r->len - n;
}

static void rec_u64(struct rec *r, uint64_t v)
{
	uint8_t *p = rec_grow(r, 8);
	if (p)
		put_le64(p, v);
}

static void rec_bytes(struct rec *r, const void *src, size_t n)
{
	uint8_t *p = rec_grow(r, n);
	if (p && n)
		memcpy(p, src, n);
}

/* A string: u16 length, then the bytes (no terminator). */
static void rec_str(struct rec *r, const char *s)
{
	size_t n = strlen(s);
	uint8_t *p = rec_grow(r, 2);
	if (p)
		put_le16(p, (uint16_t)n);
	rec_bytes(r, s, n);
}

static void rec_init(struct rec *r)
{
	*r = (struct rec){0};
	(void)rec_grow(r, SIM_HDR);
}

/*
 * Seals r as record kind (header, CRC) and appends it with one write(2).
 * Caller holds mu. A failed or short append leaves garbage at the journal's
 * end, after which the materialiser reads nothing, so it breaks tracking for
 * good (jbroken). Frees r's buffer. Errors: WD_ENOMEM, WD_EIO, WD_ENOSPC.
 */
static int journal_append(unsigned kind, struct rec *r)
{
	size_t done = 0;
	uint8_t *tail = rec_grow(r, SIM_CRC);
	int rc = 0;

	if (!tail) {
		rc = err_set(WD_ENOMEM, "sim journal: out of memory");
		goto out;
	}
	if (jbroken || jfd < 0) {
		rc = err_set(WD_EIO, "sim journal: broken by an earlier failure");
		goto out;
	}
	if (r->len > SIM_REC_MAX) { /* the callers refuse these earlier */
		rc = err_set(WD_ETOOBIG, "sim journal: a %zu-byte record",
			     r->len);
		goto out;
	}
	put_le32(r->buf, (uint32_t)r->len);
	put_le16(r->buf + 4, (uint16_t)kind);
	put_le16(r->buf + 6, 0);
	put_le64(r->buf + 8, last_seq + 1);
	/* S12: read under mu, so the stamps never decrease along the
	 * journal; the call's own count was taken before (fault_check) */
	put_le64(r->buf + 16, storage_io_count());
	put_le64(r->buf + 24, now_ns());
	put_le32(tail, (uint32_t)crc32(0L, r->buf, (uInt)(r->len - SIM_CRC)));
	while (done < r->len) {
		ssize_t n = write(jfd, r->buf + done, r->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			jbroken = true;
			rc = err_errno(n < 0 ? errno : ENOSPC,
					  "sim journal %s/%s", jdir, SIM_JOURNAL);
			goto out;
		}
		done += (size_t)n;
	}
	last_seq++;
out:
	free(r->buf);
	r->buf = NULL;
	return rc;
}

/*
 * WD_ETOOBIG unless a record with payload bytes of payload fits the u32
 * length field (SIM_REC_MAX); what and f name the call in the message.
 * Checked before the record is built, so nothing is read or allocated.
 */
static int rec_check_size(uint64_t payload, const char *what, const st_file *f)
{
	if (payload <= SIM_REC_MAX - SIM_HDR - SIM_CRC)
		return 0;
	return err_set(WD_ETOOBIG, "sim: %s %s needs a journal record of %llu "
				   "bytes (the old and the new bytes), over "
				   "the limit of %llu: split it into smaller "
				   "calls",
		       what, f->path,
		       (unsigned long long)(payload + SIM_HDR + SIM_CRC),
		       (unsigned long long)SIM_REC_MAX);
}

/* ---- names ----------------------------------------------------------------- */

/*
 * Sets *out to the canonical form of path (malloc'd): realpath of its
 * parent directory, "/", its last component. A path that does not end in
 * a file name ("", "dir/", ".", "..") names a directory: *out is NULL and
 * the call is left untracked. Errors (*out NULL): WD_ENOMEM, or the
 * parent's realpath failed (WD_ENOENT, WD_EACCES for a directory above it
 * that may not be searched, ...) - never silently untracked, or a tracked
 * file's changes would escape the journal (S10).
 */
static int canon(const char *path, char **out)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char *dir, *real = NULL;
	int rc = 0;

	*out = NULL;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return 0;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir) {
		rc = err_set(WD_ENOMEM, "sim: out of memory");
		goto out;
	}
	real = realpath(dir, NULL);
	if (!real) {
		rc = err_errno(errno, "sim: resolve directory %s of %s", dir,
			       path);
		goto out;
	}
	if (asprintf(out, "%s/%s", strcmp(real, "/") ? real : "", base) < 0) {
		*out = NULL;
		rc = err_set(WD_ENOMEM, "sim: out of memory");
	}
out:
	free(real);
	free(dir);
	return rc;
}

/* true if the canonical path cp lies in the journal directory. */
static bool in_jdir(const char *cp)
{
	return strncmp(cp, jdir, jdir_len) == 0 &&
	       (cp[jdir_len] == '/' || cp[jdir_len] == '\0');
}

static struct name *name_find(const char *cp)
{
	for (size_t i = 0; i < nnames; i++)
		if (strcmp(names[i].path, cp) == 0)
			return &names[i];
	return NULL;
}

static void name_unbind(const char *cp)
{
	struct name *n = name_find(cp);
	if (!n)
		return;
	free(n->path);
	*n = names[--nnames];
}

/* Binds cp to inode, replacing any earlier binding. */
static int name_bind(const char *cp, uint64_t inode)
{
	struct name *n = name_find(cp);
	if (n) {
		n->inode = inode;
		return 0;
	}
	if (nnames == names_cap) {
		size_t cap = names_cap ? names_cap * 2 : 32;
		struct name *nn = realloc(names, cap * sizeof *nn);
		if (!nn)
			return err_set(WD_ENOMEM, "sim: out of memory");
		names = nn;
		names_cap = cap;
	}
	names[nnames].path = strdup(cp);
	if (!names[nnames].path)
		return err_set(WD_ENOMEM, "sim: out of memory");
	names[nnames++].inode = inode;
	return 0;
}

/*
 * Journals a new identity: CREATE if this run made the file, IDENT if it
 * was there before tracking saw it. Caller holds mu. *inode receives it.
 */
static int new_identity(const char *cp, bool created, uint64_t *inode)
{
	struct rec r;
	int rc;

	rec_init(&r);
	rec_u64(&r, next_inode);
	rec_str(&r, cp);
	rc = journal_append(created ? SIM_REC_CREATE : SIM_REC_IDENT, &r);
	if (rc == 0)
		rc = name_bind(cp, next_inode);
	if (rc == 0)
		*inode = next_inode++;
	return rc;
}

/* The identity of the existing file cp, journaling IDENT on first sight.
 * Caller holds mu. */
static int identity_of(const char *cp, uint64_t *inode)
{
	struct name *n = name_find(cp);
	if (n) {
		*inode = n->inode;
		return 0;
	}
	return new_identity(cp, false, inode);
}

/* A fresh stash name, relative to the journal directory. */
static void stash_name(char *buf, size_t cap)
{
	snprintf(buf, cap, "stash-%ld-%llu", (long)getpid(),
		 (unsigned long long)++next_stash);
}

/* ---- start and stop --------------------------------------------------------- */

/* Opens a fresh journal in the canonical directory dir. Caller holds mu. */
static int journal_create(const char *dir)
{
	char *path = NULL;
	int rc = 0, fd;
	ssize_t n;

	if (asprintf(&path, "%s/%s", dir, SIM_JOURNAL) < 0)
		return err_set(WD_ENOMEM, "sim: out of memory");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		rc = err_set(WD_ESTATE, "sim: %s holds a journal not yet "
				       "materialised", dir);
		goto out;
	}
	if (fd < 0) {
		rc = err_errno(errno, "sim: create %s", path);
		goto out;
	}
	n = write(fd, SIM_MAGIC, SIM_MAGIC_LEN);
	if (n != SIM_MAGIC_LEN) { /* errno means something only if n < 0 */
		rc = err_errno(n < 0 ? errno : ENOSPC, "sim: write %s", path);
		close(fd);
		unlink(path);
		goto out;
	}
	jfd = fd;
out:
	free(path);
	return rc;
}

/* Forgets the journal and the names. Caller holds mu; tracking is on. */
static void stop_locked(void)
{
	close(jfd);
	jfd = -1;
	for (size_t i = 0; i < nnames; i++)
		free(names[i].path);
	free(names);
	names = NULL;
	nnames = names_cap = 0;
	free(jdir);
	jdir = NULL;
	atomic_store(&sim_state, 1);
}

/*
 * fork(2) while tracking (S9): the child would append to the same journal
 * with the same record numbers, which the materialiser cannot untangle. So
 * the forking thread takes mu around the fork (no append is half done in
 * the child's copy), and the child stops tracking: it closes its copy of
 * the journal descriptor, the parent's journal is untouched. The child may
 * call storage_sim_start itself (on another journal directory).
 */
static void fork_prepare(void)
{
	pthread_mutex_lock(&mu);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&mu);
}

static void fork_child(void)
{
	if (atomic_load(&sim_state) == 2)
		stop_locked();
	pthread_mutex_unlock(&mu);
}

static void register_atfork(void)
{
	/* can only fail with ENOMEM, leaving S9 unkept: checked in start */
	if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
		atfork_failed = true;
}

int storage_sim_start(const char *journal_dir)
{
	char *real = NULL;
	int rc = 0;

	pthread_once(&atfork_once, register_atfork);
	if (atfork_failed)
		return err_set(WD_ENOMEM, "sim: pthread_atfork: out of memory");
	pthread_mutex_lock(&mu);
	if (atomic_load(&sim_state) == 2) {
		rc = err_set(WD_ESTATE, "sim: already tracking into %s", jdir);
		goto out;
	}
	real = realpath(journal_dir, NULL);
	if (!real) {
		rc = err_errno(errno, "sim: journal directory %s", journal_dir);
		goto out;
	}
	rc = journal_create(real);
	if (rc != 0)
		goto out;
	jdir = real;
	jdir_len = strlen(real);
	real = NULL;
	jbroken = false;
	last_seq = 0;
	next_inode = 1;
	next_stash = 0;
	/* earlier handles' identities are void from here on (S8) */
	atomic_fetch_add(&sim_run_now, 1);
	atomic_store(&sim_state, 2);
	TRACE(TR_STORAGE, "sim start journal=%s run=%llu", jdir,
	      (unsigned long long)atomic_load(&sim_run_now));
out:
	free(real);
	pthread_mutex_unlock(&mu);
	return rc;
}

void storage_sim_stop(void)
{
	pthread_mutex_lock(&mu);
	if (atomic_load(&sim_state) == 2)
		stop_locked();
	pthread_mutex_unlock(&mu);
}

bool storage_sim_active(void)
{
	return sim_on();
}

/* Reads WALDEN_SIM_JOURNAL. A journal that cannot be started would make a
 * crash campaign silently test nothing, so, like a bad WALDEN_FAULT in
 * fault.c, it ends the process with a message instead. */
static void read_env(void)
{
	const char *dir = getenv("WALDEN_SIM_JOURNAL");
	int expected = 0;

	if (dir && *dir && storage_sim_start(dir) != 0) {
		fprintf(stderr, "walden: WALDEN_SIM_JOURNAL=%s: %s\n", dir,
			wd_last_error());
		_exit(2);
	}
	atomic_compare_exchange_strong(&sim_state, &expected, 1);
}

int sim_env_init(void)
{
	pthread_once(&env_once, read_env);
	return atomic_load(&sim_state);
}

/* ---- hooks: open, write, resize, sync --------------------------------------- */

/* true if f belongs to the current run and tracking is on (S8). Caller
 * holds mu. */
static bool tracked_locked(const st_file *f)
{
	return jfd >= 0 && f->sim_inode &&
	       f->sim_run == atomic_load(&sim_run_now);
}

/* Takes mu for the whole open (S2): with another thread creating the same
 * new path, whichever opens second sees the file as existing and, in
 * sim_opened, as already named - one CREATE, one identity. */
bool sim_open_prepare(const char *path, int *oflags)
{
	struct stat st;

	pthread_mutex_lock(&mu);
	*oflags &= ~O_TRUNC;
	return !(*oflags & O_CREAT) || lstat(path, &st) == 0;
}

/* Reads the bytes [off, off+len) of f that exist into p (pread loop). A
 * read that ends early (the file is shorter than fstat said) is WD_EIO. */
static int read_old(st_file *f, uint8_t *p, uint64_t len, uint64_t off)
{
	uint64_t done = 0;
	while (done < len) {
		ssize_t n = pread(f->fd, p + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_errno(errno, "sim: read %s", f->path);
		if (n == 0)
			return err_set(WD_EIO, "sim: read %s: ended at byte %llu, "
					       "before the length fstat gave "
					       "(%llu)", f->path,
				       (unsigned long long)(off + done),
				       (unsigned long long)(off + len));
		done += (uint64_t)n;
	}
	return 0;
}

/* Journals and performs the length change of a tracked file: the old
 * length, and the bytes a shrink removes. Caller holds mu. */
static int resize_locked(st_file *f, uint64_t size, bool allocate)
{
	struct stat st;
	struct rec r;
	uint64_t old;
	uint8_t *p;
	int rc;

	if (fstat(f->fd, &st) != 0)
		return err_errno(errno, "sim: stat %s", f->path);
	old = (uint64_t)st.st_size;
	if (allocate && size < old)
		size = old;
	if (size == old)
		return 0; /* nothing a crash could lose */
	/* payload: identity, old and new length, the bytes a shrink removes */
	if ((rc = rec_check_size(3 * 8 + (size < old ? old - size : 0),
				 "truncate of", f)) != 0)
		return rc;
	rec_init(&r);
	rec_u64(&r, f->sim_inode);
	rec_u64(&r, old);
	rec_u64(&r, size);
	if (size < old) {
		p = rec_grow(&r, old - size);
		if (p && (rc = read_old(f, p, old - size, size)) != 0) {
			free(r.buf);
			return rc;
		}
	}
	return journal_append(SIM_REC_TRUNCATE, &r);
}

/*
 * Gives f its identity: the one its name has if the file existed (or a
 * racing open created it first), else a new one with CREATE or IDENT; then
 * journals and performs an ST_TRUNC truncate. Called with mu held by
 * sim_open_prepare; releases it. Errors: those of canon (a path that
 * cannot be resolved is an error, not an untracked file), of the journal,
 * and of the truncate.
 */
int sim_opened(st_file *f, bool existed)
{
	char *cp = NULL;
	struct name *n;
	int rc = 0;

	if (jfd < 0)
		goto untracked; /* tracking stopped meanwhile */
	rc = canon(f->path, &cp);
	if (rc != 0 || !cp || in_jdir(cp))
		goto untracked;
	n = name_find(cp);
	if (n && existed) /* existed: decided under mu, with the open */
		f->sim_inode = n->inode;
	else
		rc = new_identity(cp, !existed, &f->sim_inode);
	if (rc == 0)
		f->sim_run = atomic_load(&sim_run_now);
	if (rc == 0 && (f->flags & ST_TRUNC))
		rc = resize_locked(f, 0, false);
untracked:
	if (rc == 0 && (f->flags & ST_TRUNC) && ftruncate(f->fd, 0) != 0)
		rc = err_errno(errno, "truncate %s on open", f->path);
	pthread_mutex_unlock(&mu);
	free(cp);
	return rc;
}

/*
 * Journals a WRITE before the pwrite it describes (S1: the undo image must
 * exist before the change). Returns with mu held on success. Errors:
 * WD_ETOOBIG when old and new bytes would not fit one record, and those of
 * reading the old bytes and of the journal.
 */
int sim_write_begin(st_file *f, const void *buf, size_t len, uint64_t off)
{
	struct stat st;
	struct rec r;
	uint64_t size, old_len = 0;
	uint8_t *p;
	int rc;

	pthread_mutex_lock(&mu);
	if (!tracked_locked(f))
		return 0; /* stopped, or restarted, meanwhile: not journaled */
	if (fstat(f->fd, &st) != 0) {
		rc = err_errno(errno, "sim: stat %s", f->path);
		goto fail;
	}
	size = (uint64_t)st.st_size;
	if (off < size)
		old_len = size - off < len ? size - off : len;
	/* payload: five u64 (below), the old bytes, the new bytes */
	if ((rc = rec_check_size(5 * 8 + old_len + (uint64_t)len, "write to",
				 f)) != 0)
		goto fail;
	rec_init(&r);
	rec_u64(&r, f->sim_inode);
	rec_u64(&r, off);
	rec_u64(&r, size);
	rec_u64(&r, len);
	rec_u64(&r, old_len);
	p = rec_grow(&r, old_len);
	if (p && (rc = read_old(f, p, old_len, off)) != 0) {
		free(r.buf);
		goto fail;
	}
	rec_bytes(&r, buf, len);
	rc = journal_append(SIM_REC_WRITE, &r);
	if (rc == 0)
		return 0;
fail:
	pthread_mutex_unlock(&mu);
	return rc;
}

/* Journals a truncate or allocate (size = off + len) before the system
 * call. Returns with mu held on success. */
int sim_resize_begin(st_file *f, uint64_t size, bool allocate)
{
	int rc = 0;
	pthread_mutex_lock(&mu);
	if (tracked_locked(f))
		rc = resize_locked(f, size, allocate);
	if (rc != 0)
		pthread_mutex_unlock(&mu);
	return rc;
}

void sim_op_end(void)
{
	pthread_mutex_unlock(&mu);
}

/* The last record number: everything up to it completed before the
 * fdatasync or fsync that follows started (S3). *run receives the run it
 * belongs to: a number from another run covers nothing of this one. */
uint64_t sim_sync_begin(uint64_t *run)
{
	uint64_t seq;
	pthread_mutex_lock(&mu);
	seq = last_seq;
	*run = atomic_load(&sim_run_now);
	pthread_mutex_unlock(&mu);
	return seq;
}

/* Journals a SYNC or SYNCFAIL of f covering its records up to covers. */
static int journal_sync(st_file *f, uint64_t run, uint64_t covers, unsigned kind)
{
	struct rec r;
	int rc = 0;

	pthread_mutex_lock(&mu);
	if (tracked_locked(f) && run == f->sim_run) {
		rec_init(&r);
		rec_u64(&r, f->sim_inode);
		rec_u64(&r, covers);
		rc = journal_append(kind, &r);
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

int sim_synced(st_file *f, uint64_t run, uint64_t covers)
{
	return journal_sync(f, run, covers, SIM_REC_SYNC);
}

/* Journals SYNCFAIL after a failed fdatasync (S11): the kernel marked the
 * dirty pages clean without writing them, so a later sync that succeeds
 * does not make them durable. */
int sim_sync_failed(st_file *f, uint64_t run, uint64_t covers)
{
	return journal_sync(f, run, covers, SIM_REC_SYNCFAIL);
}

/* Journals SYNCDIR after a directory fsync. A directory whose realpath
 * fails is an error: without the record the materialiser could drop
 * directory changes that are durable. */
int sim_dir_synced(const char *dir, uint64_t run, uint64_t covers)
{
	char *real = realpath(dir, NULL);
	struct rec r;
	int rc = 0;

	if (!real)
		return err_errno(errno, "sim: resolve directory %s", dir);
	pthread_mutex_lock(&mu);
	if (jfd >= 0 && run == atomic_load(&sim_run_now) && !in_jdir(real)) {
		rec_init(&r);
		rec_u64(&r, covers);
		rec_str(&r, real);
		rc = journal_append(SIM_REC_SYNCDIR, &r);
	}
	pthread_mutex_unlock(&mu);
	free(real);
	return rc;
}

/* ---- hooks: rename and unlink ------------------------------------------------ */

/* jdir + "/" + name into buf. */
static void jpath(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", jdir, name);
}

/* rename(2) errors, with EXDEV explained: the stash must share the
 * filesystem of the tracked files. */
static int move_err(int errnum, const char *what, const char *a, const char *b)
{
	if (errnum == EXDEV)
		return err_set(WD_ENOTSUP, "sim: %s %s to %s: the journal "
					  "directory must be on the same "
					  "filesystem as the tracked files",
			      what, a, b);
	return err_errno(errnum, "%s %s to %s", what, a, b);
}

/* Journals a RENAME of inode from cf to ct (replaced: the inode that ct
 * named before, kept in stash). Caller holds mu. */
static int rename_record(uint64_t inode, uint64_t replaced, const char *cf,
			 const char *ct, const char *stash)
{
	struct rec r;
	int rc;

	rec_init(&r);
	rec_u64(&r, inode);
	rec_u64(&r, replaced);
	rec_str(&r, cf);
	rec_str(&r, ct);
	rec_str(&r, stash);
	rc = journal_append(SIM_REC_RENAME, &r);
	name_unbind(cf);
	if (rc == 0)
		rc = name_bind(ct, inode);
	return rc;
}

/*
 * Tracked rename: a replaced target is first hard-linked into the stash so
 * that a dropped rename can restore it (S5), then rename(2), then the
 * record (directory records follow their change: S1). Caller holds mu;
 * cf and ct are canonical and distinct, cf a regular file.
 */
static int rename_locked(const char *from, const char *to, const char *cf,
			 const char *ct)
{
	char stash[64] = "", sp[PATH_MAX + 80];
	uint64_t inode, replaced = 0;
	struct stat st;
	int rc = identity_of(cf, &inode);

	if (rc == 0 && lstat(to, &st) == 0 && S_ISREG(st.st_mode)) {
		rc = identity_of(ct, &replaced);
		stash_name(stash, sizeof stash);
		jpath(sp, sizeof sp, stash);
		if (rc == 0 && link(to, sp) != 0)
			rc = move_err(errno, "sim: link", to, sp);
	}
	if (rc != 0)
		return rc;
	if (rename(from, to) != 0) {
		rc = err_errno(errno, "rename %s to %s", from, to);
		if (stash[0])
			unlink(sp);
		return rc;
	}
	return rename_record(inode, replaced, cf, ct, stash);
}

/* Errors: those of canon for either path (not left untracked), of the
 * rename and of the journal. */
int sim_rename(const char *from, const char *to)
{
	char *cf = NULL, *ct = NULL;
	struct stat st;
	int rc = canon(from, &cf);

	if (rc == 0)
		rc = canon(to, &ct);
	if (rc != 0)
		goto out;
	pthread_mutex_lock(&mu);
	if (!cf || !ct || jfd < 0 || in_jdir(cf) || in_jdir(ct) ||
	    strcmp(cf, ct) == 0 || lstat(from, &st) != 0 ||
	    !S_ISREG(st.st_mode)) {
		if (rename(from, to) != 0) /* untracked */
			rc = err_errno(errno, "rename %s to %s", from, to);
	} else {
		rc = rename_locked(from, to, cf, ct);
	}
	pthread_mutex_unlock(&mu);
out:
	TRACE(TR_STORAGE, "rename %s -> %s%s", from, to, rc ? " failed" : "");
	free(cf);
	free(ct);
	return rc;
}

/* Tracked unlink: the file moves into the stash (S5), then UNLINK is
 * journaled. Caller holds mu; cp is canonical, path a regular file. */
static int unlink_locked(const char *path, const char *cp)
{
	char stash[64], sp[PATH_MAX + 80];
	uint64_t inode;
	struct rec r;
	int rc = identity_of(cp, &inode);

	if (rc != 0)
		return rc;
	stash_name(stash, sizeof stash);
	jpath(sp, sizeof sp, stash);
	if (rename(path, sp) != 0)
		return move_err(errno, "sim: unlink (move)", path, sp);
	rec_init(&r);
	rec_u64(&r, inode);
	rec_str(&r, cp);
	rec_str(&r, stash);
	rc = journal_append(SIM_REC_UNLINK, &r);
	name_unbind(cp);
	return rc;
}

/* Errors: those of canon (not left untracked), of the unlink or stash move
 * and of the journal. */
int sim_unlink(const char *path)
{
	char *cp = NULL;
	struct stat st;
	int rc = canon(path, &cp);

	if (rc != 0)
		goto out;
	pthread_mutex_lock(&mu);
	if (!cp || jfd < 0 || in_jdir(cp) || lstat(path, &st) != 0 ||
	    !S_ISREG(st.st_mode)) {
		if (unlink(path) != 0) /* untracked */
			rc = err_errno(errno, "unlink %s", path);
	} else {
		rc = unlink_locked(path, cp);
	}
	pthread_mutex_unlock(&mu);
out:
	TRACE(TR_STORAGE, "unlink %s%s", path, rc ? " failed" : "");
	free(cp);
	return rc;
}
