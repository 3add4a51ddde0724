/*
 * file.c - the file operations every module uses: open, read, write, sync,
 * truncate, allocate, size, rename, unlink, mkdir, directory sync.
 *
 * Each call (1) asks the fault injector whether to fail, (2) performs the
 * system call, retrying EINTR and short transfers, and (3) turns errno into a
 * WD_E* code whose detail names the file. Simulated power loss hooks in
 * around writes, syncs and directory changes (sim.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_internal.h"
#include "storage/trace.h"

/*
 * The errno an injected fault makes the call fail with, or 0 for faults the
 * call survives (none, a short transfer, EINTR: the retry loops absorb them).
 */
static int hard_errno(int fault)
{
	switch (fault - 1) {
	case ST_FAULT_EIO: return EIO;
	case ST_FAULT_ENOSPC: return ENOSPC;
	default: return 0;
	}
}

int storage_open(const char *path, unsigned flags, st_file **out)
{
	int oflags = (flags & ST_RDONLY) ? O_RDONLY : O_RDWR;
	int fault = fault_check(ST_OP_OPEN, path);
	bool sim = sim_on(), existed = false;
	st_file *f;
	int fd, rc;

	*out = NULL;
	if (flags & ST_CREATE)
		oflags |= O_CREAT;
	if (flags & ST_EXCL)
		oflags |= O_EXCL;
	if (flags & ST_TRUNC)
		oflags |= O_TRUNC;
	if (hard_errno(fault))
		return err_errno(hard_errno(fault), "open %s (injected)", path);
	f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return err_set(WD_ENOMEM, "open %s: out of memory", path);
	}
	if (sim) /* takes the journal lock until sim_opened / sim_op_end */
		existed = sim_open_prepare(path, &oflags);
	do
		fd = open(path, oflags | O_CLOEXEC, 0644);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		rc = err_errno(errno, "open %s", path);
		if (sim)
			sim_op_end();
		free(f->path);
		free(f);
		return rc;
	}
	f->fd = fd;
	f->flags = flags;
	if (sim && (rc = sim_opened(f, existed)) != 0) {
		(void)storage_close(f);
		return rc;
	}
	TRACE(TR_STORAGE, "open %s fd=%d", path, fd);
	*out = f;
	return 0;
}

int storage_close(st_file *f)
{
	int rc = 0;
	if (!f)
		return 0;
	if (close(f->fd) != 0 && errno != EINTR)
		rc = err_errno(errno, "close %s", f->path);
	free(f->path);
	free(f);
	return rc;
}

const char *storage_path(const st_file *f)
{
	return f->path;
}

int storage_read(st_file *f, void *buf, size_t len, uint64_t off, size_t *got)
{
	int fault = fault_check(ST_OP_READ, f->path);
	size_t done = 0;

	if (got)
		*got = 0;
	if (hard_errno(fault))
		return err_errno(hard_errno(fault),
				    "read %s at offset %llu (injected)", f->path,
				    (unsigned long long)off);
	while (done < len) {
		size_t want = len - done;
		ssize_t n;
		if (fault == 1 + ST_FAULT_SHORT && want > 1) {
			want /= 2; /* injected short read: the loop must go on */
			fault = 0;
		}
		if (fault == 1 + ST_FAULT_EINTR) {
			/* as if interrupted before any byte moved: the real
			 * EINTR branch below must retry */
			fault = 0;
			n = -1;
			errno = EINTR;
		} else {
			n = pread(f->fd, (char *)buf + done, want, (off_t)(off + done));
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_errno(errno, "read %s at offset %llu",
					    f->path,
					    (unsigned long long)(off + done));
		if (n == 0)
			break; /* end of file */
		done += (size_t)n;
	}
	if (got)
		*got = done;
	return 0;
}

/* The pwrite loop of storage_write; fault is a survivable injected fault. */
static int write_all(st_file *f, const void *buf, size_t len, uint64_t off,
		     int fault)
{
	size_t done = 0;

	while (done < len) {
		size_t want = len - done;
		ssize_t n;
		if (fault == 1 + ST_FAULT_SHORT && want > 1) {
			want /= 2; /* injected short write: the loop must go on */
			fault = 0;
		}
		if (fault == 1 + ST_FAULT_EINTR) {
			fault = 0; /* as in storage_read */
			n = -1;
			errno = EINTR;
		} else {
			n = pwrite(f->fd, (const char *)buf + done, want,
				   (off_t)(off + done));
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_errno(errno,
					    "write %s: %zu bytes at offset %llu",
					    f->path, len - done,
					    (unsigned long long)(off + done));
		if (n == 0)
			return err_errno(ENOSPC, "write %s at offset %llu: wrote nothing",
					    f->path, (unsigned long long)(off + done));
		done += (size_t)n;
	}
	return 0;
}

int storage_write(st_file *f, const void *buf, size_t len, uint64_t off)
{
	int fault = fault_check(ST_OP_WRITE, f->path);
	bool sim = sim_tracks(f);
	int rc;

	if (hard_errno(fault))
		return err_errno(hard_errno(fault),
				    "write %s: %zu bytes at offset %llu (injected)",
				    f->path, len, (unsigned long long)off);
	if (sim && (rc = sim_write_begin(f, buf, len, off)) != 0)
		return rc;
	rc = write_all(f, buf, len, off, fault);
	if (sim)
		sim_op_end();
	return rc;
}

/* A failed fdatasync of a tracked file: SYNCFAIL in the journal, so the
 * writes it should have made durable are lost to a power loss even if a
 * later sync succeeds (S11). Returns rc, the sync's error, unless the
 * journal failed. */
static int sync_failed(st_file *f, uint64_t run, uint64_t covers, int rc)
{
	char detail[512];
	int jrc;
	snprintf(detail, sizeof detail, "%s", wd_last_error());
	if ((jrc = sim_sync_failed(f, run, covers)) != 0)
		return jrc;
	return err_set(rc, "%s", detail);
}

int storage_sync(st_file *f)
{
	int fault = fault_check(ST_OP_SYNC, f->path);
	bool sim = sim_tracks(f);
	uint64_t run = 0, covers = sim ? sim_sync_begin(&run) : 0;
	int rc;

	if (hard_errno(fault)) {
		rc = err_errno(hard_errno(fault), "fdatasync %s (injected)", f->path);
		return sim ? sync_failed(f, run, covers, rc) : rc;
	}
	do
		rc = fdatasync(f->fd);
	while (rc != 0 && errno == EINTR);
	if (rc != 0) {
		rc = err_errno(errno, "fdatasync %s", f->path);
		return sim ? sync_failed(f, run, covers, rc) : rc;
	}
	TRACE(TR_STORAGE, "fdatasync %s", f->path);
	return sim ? sim_synced(f, run, covers) : 0;
}

int storage_truncate(st_file *f, uint64_t size)
{
	int fault = fault_check(ST_OP_TRUNCATE, f->path);
	bool sim = sim_tracks(f);
	int rc;

	if (hard_errno(fault))
		return err_errno(hard_errno(fault), "truncate %s (injected)",
				    f->path);
	if (sim && (rc = sim_resize_begin(f, size, false)) != 0)
		return rc;
	do
		rc = ftruncate(f->fd, (off_t)size);
	while (rc != 0 && errno == EINTR);
	if (sim)
		sim_op_end();
	if (rc != 0)
		return err_errno(errno, "truncate %s to %llu bytes", f->path,
				    (unsigned long long)size);
	return 0;
}

int storage_allocate(st_file *f, uint64_t off, uint64_t len)
{
	int fault = fault_check(ST_OP_ALLOCATE, f->path);
	bool sim = sim_tracks(f);
	int rc;

	if (hard_errno(fault))
		return err_errno(hard_errno(fault),
				    "allocate %s (injected)", f->path);
	if (sim && (rc = sim_resize_begin(f, off + len, true)) != 0)
		return rc;
	do
		rc = posix_fallocate(f->fd, (off_t)off, (off_t)len);
	while (rc == EINTR);
	if (sim)
		sim_op_end();
	if (rc != 0)
		return err_errno(rc, "allocate %s: %llu bytes at offset %llu",
				    f->path, (unsigned long long)len,
				    (unsigned long long)off);
	return 0;
}

int storage_size(st_file *f, uint64_t *size)
{
	struct stat st;
	if (fstat(f->fd, &st) != 0)
		return err_errno(errno, "stat %s", f->path);
	*size = (uint64_t)st.st_size;
	return 0;
}

int storage_rename(const char *from, const char *to)
{
	int fault = fault_check(ST_OP_RENAME, to);
	if (hard_errno(fault))
		return err_errno(hard_errno(fault), "rename %s to %s (injected)",
				    from, to);
	if (sim_on())
		return sim_rename(from, to);
	if (rename(from, to) != 0)
		return err_errno(errno, "rename %s to %s", from, to);
	TRACE(TR_STORAGE, "rename %s -> %s", from, to);
	return 0;
}

int storage_unlink(const char *path)
{
	int fault = fault_check(ST_OP_UNLINK, path);
	if (hard_errno(fault))
		return err_errno(hard_errno(fault), "unlink %s (injected)", path);
	if (sim_on())
		return sim_unlink(path);
	if (unlink(path) != 0)
		return err_errno(errno, "unlink %s", path);
	TRACE(TR_STORAGE, "unlink %s", path);
	return 0;
}

int storage_mkdir(const char *path)
{
	int fault = fault_check(ST_OP_MKDIR, path);
	if (hard_errno(fault))
		return err_errno(hard_errno(fault), "mkdir %s (injected)", path);
	if (mkdir(path, 0755) != 0)
		return err_errno(errno, "mkdir %s", path);
	return 0;
}

int storage_sync_dir(const char *dir)
{
	int fault = fault_check(ST_OP_SYNC_DIR, dir);
	bool sim = sim_on();
	uint64_t run = 0, covers = sim ? sim_sync_begin(&run) : 0;
	int fd, rc;

	if (hard_errno(fault))
		return err_errno(hard_errno(fault),
				    "fsync directory %s (injected)", dir);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(errno, "open directory %s", dir);
	do
		rc = fsync(fd);
	while (rc != 0 && errno == EINTR);
	if (rc != 0) {
		rc = err_errno(errno, "fsync directory %s", dir);
		close(fd);
		return rc;
	}
	close(fd);
	TRACE(TR_STORAGE, "fsync directory %s", dir);
	return sim ? sim_dir_synced(dir, run, covers) : 0;
}

bool storage_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}
