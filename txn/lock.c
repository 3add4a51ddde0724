/*
 * lock.c - one owner per database directory: db_lock_acquire takes an
 * exclusive lock on DIR/lock (README P1 step 2, "Formats: lock file") and
 * db_lock_release drops it.
 *
 * Two guards, because each misses a case the other catches:
 *  - an open-file-description lock (fcntl F_OFD_SETLK) on DIR/lock, held
 *    while the fd is open: another process is refused, and since OFD locks
 *    belong to the open file, so is a second open() in this process;
 *  - a registry of the directories this process has open (device and inode
 *    of DIR), so that a second wd_open in the same process gets a message
 *    saying so rather than naming its own pid. Entries carry the pid that
 *    made them: a child after fork() ignores its parent's.
 * The lock file is not data: it is read and written with plain system calls,
 * not through storage/ (no crash point or fault applies to it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "txn/txn_internal.h"

#ifndef F_OFD_SETLK
#define F_OFD_SETLK F_SETLK
#endif

struct reg_entry {
	dev_t dev;
	ino_t ino;
	pid_t pid;
	struct reg_entry *next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reg_entry *reg_head;

/* Adds (dev, ino) to the registry unless this process has it already. */
static int registry_add(const wd_db *db)
{
	struct reg_entry *e;
	pid_t me = getpid();
	int rc = 0;
	pthread_mutex_lock(&reg_mu);
	for (e = reg_head; e; e = e->next)
		if (e->dev == db->dev && e->ino == db->ino && e->pid == me)
			break;
	if (e)
		rc = err_set(WD_EBUSY, "%s is already open in this process", db->dir);
	else if (!(e = malloc(sizeof *e)))
		rc = err_set(WD_ENOMEM, "%s: out of memory", db->dir);
	else {
		*e = (struct reg_entry){db->dev, db->ino, me, reg_head};
		reg_head = e;
	}
	pthread_mutex_unlock(&reg_mu);
	return rc;
}

/* Removes this process's entry for db (a no-op if absent). */
static void registry_remove(const wd_db *db)
{
	pid_t me = getpid();
	pthread_mutex_lock(&reg_mu);
	for (struct reg_entry **pp = &reg_head; *pp; pp = &(*pp)->next) {
		struct reg_entry *e = *pp;
		if (e->dev == db->dev && e->ino == db->ino && e->pid == me) {
			*pp = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
}

/* The pid written in the lock file by its holder, or 0 if unreadable. */
static long holder_pid(int fd)
{
	char buf[32] = {0};
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	return n > 0 ? strtol(buf, NULL, 10) : 0;
}

/* Takes the OFD lock on fd; WD_EBUSY naming the holder if it is held. */
static int lock_fd(const wd_db *db, int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char pid[32];
	int n;
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		if (errno == EAGAIN || errno == EACCES)
			return err_set(WD_EBUSY, "%s is in use by process %ld",
				       db->dir, holder_pid(fd));
		return err_errno(errno, "%s/%s: lock", db->dir, LOCK_FILE);
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		return err_errno(errno, "%s/%s: writing the pid", db->dir, LOCK_FILE);
	return 0;
}

/*
 * Makes this process the only owner of db->dir (which exists): registry
 * first, then the lock file. Sets db->lock_fd, dev and ino. Errors:
 * WD_EBUSY (the detail says who holds it), I/O errors.
 */
int db_lock_acquire(wd_db *db)
{
	char path[4096];
	struct stat st;
	int rc, fd = -1;
	if (stat(db->dir, &st) != 0)
		return err_errno(errno, "%s", db->dir);
	db->dev = st.st_dev;
	db->ino = st.st_ino;
	if ((rc = registry_add(db)) != 0)
		return rc;
	snprintf(path, sizeof path, "%s/%s", db->dir, LOCK_FILE);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		rc = err_errno(errno, "%s", path);
	else
		rc = lock_fd(db, fd);
	if (rc != 0) {
		if (fd >= 0)
			close(fd);
		registry_remove(db);
		return rc;
	}
	db->lock_fd = fd;
	return 0;
}

/* Drops the lock (closing the fd releases it) and the registry entry. The
 * file stays: removing it would race with a process about to lock it. */
void db_lock_release(wd_db *db)
{
	if (db->lock_fd >= 0)
		close(db->lock_fd);
	db->lock_fd = -1;
	registry_remove(db);
}
