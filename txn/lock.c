/*
 * lock.c - one owner per database directory: db_lock_acquire takes an
 * exclusive lock on DIR/lock (README P1 step 2, "Formats: lock file") and
 * db_lock_release drops it.
 *
 * Two guards, because each misses a case the other catches:
 *  - a POSIX record lock (fcntl F_SETLK) on all of DIR/lock, held while
 *    this process keeps the fd open: another process is refused. Such a
 *    lock belongs to the process, not to the open file, so a child forked
 *    while a database is open (a worker that never touches it) does not
 *    hold it, whenever it gets to run: the parent's wd_close releases it
 *    at once and the parent's next open takes it again. (An open file
 *    description lock, F_OFD_SETLK, would go with the descriptor into
 *    every child and outlive the parent's close until the child ran or
 *    exited.) The catch of POSIX locks - closing *any* descriptor of the
 *    file drops the process's lock - is why this file is opened only here,
 *    once per database;
 *  - a registry of the directories this process has open (device and inode
 *    of DIR), so that a second wd_open in the same process, which the
 *    process's own lock would let through, is refused with a message
 *    saying so, before the file is opened a second time. Entries carry the
 *    pid that made them: a child after fork() ignores its parent's.
 * A pthread_atfork child handler closes, in the child, every inherited
 * lock descriptor (it holds no lock, so this releases nothing): the child
 * cannot touch the file through the parent's descriptor. The child must
 * not use the parent's wd_db (walden.h).
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

struct reg_entry {
	dev_t dev;
	ino_t ino;
	pid_t pid;
	int fd;       /* the lock file's descriptor; -1 in a forked child */
	struct reg_entry *next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reg_entry *reg_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* fork(): the registry is locked across it, so the child sees it whole. */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&reg_mu);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&reg_mu);
}

/* In the child: every lock descriptor inherited from the parent is closed
 * (the lock is the parent's process's and stays); the entries stay,
 * marked, so that the child's db_lock_release closes nothing twice. */
static void atfork_child(void)
{
	for (struct reg_entry *e = reg_head; e; e = e->next)
		if (e->fd >= 0) {
			close(e->fd);
			e->fd = -1;
		}
	pthread_mutex_unlock(&reg_mu);
}

static void atfork_install(void)
{
	(void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* This process's entry for db, or NULL. Caller holds reg_mu. */
static struct reg_entry *registry_find(const wd_db *db, pid_t me)
{
	for (struct reg_entry *e = reg_head; e; e = e->next)
		if (e->dev == db->dev && e->ino == db->ino && e->pid == me)
			return e;
	return NULL;
}

/* Removes this process's entry for db (a no-op if absent), closing its
 * lock descriptor if it has one. An entry inherited through fork() is not
 * this process's: its descriptor was closed at the fork, and is left. */
static void registry_remove(const wd_db *db)
{
	pid_t me = getpid();
	pthread_mutex_lock(&reg_mu);
	for (struct reg_entry **pp = &reg_head; *pp; pp = &(*pp)->next) {
		struct reg_entry *e = *pp;
		if (e->dev == db->dev && e->ino == db->ino && e->pid == me) {
			if (e->fd >= 0)
				close(e->fd);
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

/* Takes the process's lock on fd; WD_EBUSY naming the holder if another
 * process holds it. */
static int lock_fd(const wd_db *db, int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char pid[32];
	int n;
	if (fcntl(fd, F_SETLK, &fl) != 0) {
		if (errno == EAGAIN || errno == EACCES)
			return err_set(WD_EBUSY, "%s is in use by process %ld",
				       db->dir, holder_pid(fd));
		return err_errno(errno, "%s/%s: lock", db->dir, LOCK_FILE);
	}
	/* the pid first, then the length: a refused open reading meanwhile
	 * finds a pid, never an empty file */
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (pwrite(fd, pid, (size_t)n, 0) != n || ftruncate(fd, n) != 0)
		return err_errno(errno, "%s/%s: writing the pid", db->dir, LOCK_FILE);
	return 0;
}

/*
 * Makes this process the only owner of db->dir (which exists): registry
 * first, then the lock file, all under reg_mu so that a fork() sees the
 * entry with its descriptor or neither. Sets db->lock_fd, dev and ino.
 * Errors: WD_EBUSY (the detail says who holds it), I/O errors.
 */
int db_lock_acquire(wd_db *db)
{
	char path[4096];
	struct stat st;
	struct reg_entry *e = NULL;
	pid_t me = getpid();
	int rc = 0, fd = -1;
	pthread_once(&atfork_once, atfork_install);
	if (stat(db->dir, &st) != 0)
		return err_errno(errno, "%s", db->dir);
	db->dev = st.st_dev;
	db->ino = st.st_ino;
	snprintf(path, sizeof path, "%s/%s", db->dir, LOCK_FILE);
	pthread_mutex_lock(&reg_mu);
	if (registry_find(db, me))
		rc = err_set(WD_EBUSY, "%s is already open in this process", db->dir);
	else if (!(e = malloc(sizeof *e)))
		rc = err_set(WD_ENOMEM, "%s: out of memory", db->dir);
	else if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		rc = err_errno(errno, "%s", path);
	else
		rc = lock_fd(db, fd);
	if (rc == 0) {
		*e = (struct reg_entry){db->dev, db->ino, me, fd, reg_head};
		reg_head = e;
		db->lock_fd = fd;
	}
	pthread_mutex_unlock(&reg_mu);
	if (rc != 0) {
		if (fd >= 0)
			close(fd);
		free(e);
	}
	return rc;
}

/* Drops the lock (closing the fd, which the registry entry owns, releases
 * it) and the registry entry. The file stays: removing it would race with
 * a process about to lock it. */
void db_lock_release(wd_db *db)
{
	db->lock_fd = -1;
	registry_remove(db);
}
