/*
 * sim.c - the writer half of simulated power loss: while tracking is on,
 * journals every change to a tracked file or directory entry that a later
 * crash could lose, with what is needed to undo it.
 *
 * Entry points: storage_sim_start/stop/active, and the sim_* hooks that
 * file.c calls (storage_internal.h). The materialiser is sim_crash.c; the
 * protocol, record formats and invariants are in storage/README.md.
 *
 * One process-wide mutex serialises journal appends; for writes, truncates,
 * renames and unlinks it is held across the record and the system call, so
 * journal order is the order the kernel saw (invariant S2).
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
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
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
	put_le32(r->buf, (uint32_t)r->len);
	put_le16(r->buf + 4, (uint16_t)kind);
	put_le16(r->buf + 6, 0);
	put_le64(r->buf + 8, last_seq + 1);
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

/* ---- names ----------------------------------------------------------------- */

/*
 * The canonical form of path (malloc'd): realpath of its parent directory,
 * "/", its last component. NULL if the parent cannot be resolved or path
 * ends in "/" - such calls are left untracked (they fail anyway, or name a
 * directory).
 */
static char *canon(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char *dir, *real, *out = NULL;

	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return NULL;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	real = dir ? realpath(dir, NULL) : NULL;
	if (real && asprintf(&out, "%s/%s", strcmp(real, "/") ? real : "",
			     base) < 0)
		out = NULL;
	free(real);
	free(dir);
	return out;
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
	if (write(fd, SIM_MAGIC, SIM_MAGIC_LEN) != SIM_MAGIC_LEN) {
		rc = err_errno(errno ? errno : ENOSPC, "sim: write %s", path);
		close(fd);
		unlink(path);
		goto out;
	}
	jfd = fd;
out:
	free(path);
	return rc;
}

int storage_sim_start(const char *journal_dir)
{
	char *real = NULL;
	int rc = 0;

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
	atomic_store(&sim_state, 2);
	TRACE(TR_STORAGE, "sim start journal=%s", jdir);
out:
	free(real);
	pthread_mutex_unlock(&mu);
	return rc;
}

void storage_sim_stop(void)
{
	pthread_mutex_lock(&mu);
	if (atomic_load(&sim_state) == 2) {
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

bool sim_open_prepare(const char *path, int *oflags)
{
	struct stat st;
	*oflags &= ~O_TRUNC;
	return !(*oflags & O_CREAT) || lstat(path, &st) == 0;
}

/* Journals and performs the length change of a tracked file: the old
 * length, and the bytes a shrink removes. Caller holds mu. */
static int resize_locked(st_file *f, uint64_t size, bool allocate)
{
	struct stat st;
	struct rec r;
	uint64_t old;

	if (fstat(f->fd, &st) != 0)
		return err_errno(errno, "sim: stat %s", f->path);
	old = (uint64_t)st.st_size;
	if (allocate && size < old)
		size = old;
	if (size == old)
		return 0; /* nothing a crash could lose */
	rec_init(&r);
	rec_u64(&r, f->sim_inode);
	rec_u64(&r, old);
	rec_u64(&r, size);
	if (size < old) {
		uint8_t *p = rec_grow(&r, old - size);
		if (p && pread(f->fd, p, old - size, (off_t)size) !=
				 (ssize_t)(old - size)) {
			free(r.buf);
			return err_errno(errno ? errno : EIO,
					    "sim: read %s", f->path);
		}
	}
	return journal_append(SIM_REC_TRUNCATE, &r);
}

int sim_opened(st_file *f, bool existed)
{
	char *cp = canon(f->path);
	struct name *n;
	int rc = 0;

	pthread_mutex_lock(&mu);
	if (!cp || jfd < 0 || in_jdir(cp))
		goto untracked;
	n = name_find(cp);
	if (n && existed)
		f->sim_inode = n->inode;
	else
		rc = new_identity(cp, !existed, &f->sim_inode);
	if (rc == 0 && (f->flags & ST_TRUNC))
		rc = resize_locked(f, 0, false);
untracked:
	if (rc == 0 && (f->flags & ST_TRUNC) && ftruncate(f->fd, 0) != 0)
		rc = err_errno(errno, "truncate %s on open", f->path);
	pthread_mutex_unlock(&mu);
	free(cp);
	return rc;
}

/* Reads the bytes [off, off+len) of f that exist into p (pread loop). */
static int read_old(st_file *f, uint8_t *p, uint64_t len, uint64_t off)
{
	uint64_t done = 0;
	while (done < len) {
		ssize_t n = pread(f->fd, p + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_errno(n < 0 ? errno : EIO, "sim: read %s",
					    f->path);
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * Journals a WRITE before the pwrite it describes (S1: the undo image must
 * exist before the change). Returns with mu held on success.
 */
int sim_write_begin(st_file *f, const void *buf, size_t len, uint64_t off)
{
	struct stat st;
	struct rec r;
	uint64_t size, old_len = 0;
	uint8_t *p;
	int rc;

	pthread_mutex_lock(&mu);
	if (jfd < 0)
		return 0; /* tracking stopped meanwhile: nothing to journal */
	if (fstat(f->fd, &st) != 0) {
		rc = err_errno(errno, "sim: stat %s", f->path);
		goto fail;
	}
	size = (uint64_t)st.st_size;
	if (off < size)
		old_len = size - off < len ? size - off : len;
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
	if (jfd >= 0)
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
 * fdatasync or fsync that follows started (S3). */
uint64_t sim_sync_begin(void)
{
	uint64_t seq;
	pthread_mutex_lock(&mu);
	seq = last_seq;
	pthread_mutex_unlock(&mu);
	return seq;
}

int sim_synced(st_file *f, uint64_t covers)
{
	struct rec r;
	int rc = 0;

	pthread_mutex_lock(&mu);
	if (jfd >= 0) {
		rec_init(&r);
		rec_u64(&r, f->sim_inode);
		rec_u64(&r, covers);
		rc = journal_append(SIM_REC_SYNC, &r);
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

int sim_dir_synced(const char *dir, uint64_t covers)
{
	char *real = realpath(dir, NULL);
	struct rec r;
	int rc = 0;

	pthread_mutex_lock(&mu);
	if (real && jfd >= 0 && !in_jdir(real)) {
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

int sim_rename(const char *from, const char *to)
{
	char *cf = canon(from), *ct = canon(to);
	struct stat st;
	int rc = 0;

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

int sim_unlink(const char *path)
{
	char *cp = canon(path);
	struct stat st;
	int rc = 0;

	pthread_mutex_lock(&mu);
	if (!cp || jfd < 0 || in_jdir(cp) || lstat(path, &st) != 0 ||
	    !S_ISREG(st.st_mode)) {
		if (unlink(path) != 0) /* untracked */
			rc = err_errno(errno, "unlink %s", path);
	} else {
		rc = unlink_locked(path, cp);
	}
	pthread_mutex_unlock(&mu);
	TRACE(TR_STORAGE, "unlink %s%s", path, rc ? " failed" : "");
	free(cp);
	return rc;
}
