/*
 * benchfs.c - file trees for the benchmarks: a walk, the size of a
 * database directory, a durable copy of one (the recovery benchmarks
 * recover copies of one crashed directory), and how much of a tree sits
 * in the OS page cache, with a best-effort way to drop it without
 * privileges. See bench.h.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"

int bench_walk(const char *dir, int (*fn)(void *arg, const char *path, const struct stat *st),
	       void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = 0;
	if (!d)
		return -1;
	while (rc == 0 && (errno = 0, de = readdir(d))) {
		char path[4096];
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) {
			errno = ENAMETOOLONG;
			rc = -1;
		} else if (lstat(path, &st) != 0) {
			rc = -1;
		} else if ((rc = fn(arg, path, &st)) == 0 && S_ISDIR(st.st_mode)) {
			rc = bench_walk(path, fn, arg);
		}
	}
	if (rc == 0 && errno)
		rc = -1;
	closedir(d);
	return rc;
}

/* ---- sizes ---- */

struct du_walk {
	struct bench_du *out;
	char wal[4200]; /* "<dir>/wal/" */
};

static int du_one(void *arg, const char *path, const struct stat *st)
{
	struct du_walk *w = arg;
	if (!S_ISREG(st->st_mode))
		return 0;
	w->out->bytes += (double)st->st_size;
	w->out->alloc += (double)st->st_blocks * 512;
	if (strncmp(path, w->wal, strlen(w->wal)) == 0) {
		w->out->wal_bytes += (double)st->st_size;
		w->out->wal_alloc += (double)st->st_blocks * 512;
	}
	return 0;
}

void bench_du(const char *dir, struct bench_du *out)
{
	struct du_walk w = {.out = out};
	memset(out, 0, sizeof *out);
	snprintf(w.wal, sizeof w.wal, "%s/wal/", dir);
	(void)bench_walk(dir, du_one, &w); /* a file that went away counts 0 */
}

/* ---- a durable copy ---- */

struct copy_walk {
	size_t src_len;
	const char *dst;
	char *why;
	size_t why_cap;
};

/* Copies len bytes from in to out: copy_file_range, or read and write
 * where the kernel cannot (another file system, an old kernel). */
static int copy_bytes(int in, int out, off_t len)
{
	static char buf[1 << 20];
	off_t done = 0;
	while (done < len) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)(len - done), 0);
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			      errno == EOPNOTSUPP)) {
			n = read(in, buf, sizeof buf);
			if (n > 0 && write(out, buf, (size_t)n) != n)
				n = -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? (errno = EIO, -1) : -1; /* 0: the file shrank */
		done += n;
	}
	return 0;
}

static int copy_one(void *arg, const char *path, const struct stat *st)
{
	struct copy_walk *w = arg;
	char to[4200];
	int in = -1, out = -1, rc = -1;
	snprintf(to, sizeof to, "%s%s", w->dst, path + w->src_len);
	if (S_ISDIR(st->st_mode))
		rc = mkdir(to, st->st_mode & 07777);
	else if (!S_ISREG(st->st_mode))
		errno = ENOTSUP; /* a database directory holds nothing else */
	else if ((in = open(path, O_RDONLY | O_CLOEXEC)) >= 0 &&
		 (out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 07777)) >= 0)
		rc = copy_bytes(in, out, st->st_size) == 0 && fdatasync(out) == 0 ? 0 : -1;
	if (rc != 0)
		snprintf(w->why, w->why_cap, "copy %s to %s: %s", path, to, strerror(errno));
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) != 0 && rc == 0) {
		snprintf(w->why, w->why_cap, "close %s: %s", to, strerror(errno));
		rc = -1;
	}
	return rc;
}

int bench_copy_tree(const char *src, const char *dst, char *why, size_t why_cap)
{
	struct copy_walk w = {strlen(src), dst, why, why_cap};
	*why = '\0';
	if (mkdir(dst, 0755) != 0) {
		snprintf(why, why_cap, "mkdir %s: %s", dst, strerror(errno));
		return -1;
	}
	if (bench_walk(src, copy_one, &w) != 0) {
		if (!*why)
			snprintf(why, why_cap, "read %s: %s", src, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the OS page cache ---- */

struct resident_walk {
	double resident, total;
};

/* Adds the file's cached and total bytes: mincore over a read-only map
 * (mapping reads nothing in; only the residency vector is filled). */
static int resident_one(void *arg, const char *path, const struct stat *st)
{
	struct resident_walk *w = arg;
	long page = sysconf(_SC_PAGESIZE);
	size_t len = (size_t)st->st_size, pages = (len + (size_t)page - 1) / (size_t)page;
	unsigned char *vec;
	void *map;
	int fd;
	if (!S_ISREG(st->st_mode) || len == 0)
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -1;
	if (!(vec = malloc(pages)) || mincore(map, len, vec) != 0) {
		free(vec);
		munmap(map, len);
		return -1;
	}
	for (size_t i = 0; i < pages; i++)
		if (vec[i] & 1)
			w->resident += (double)page;
	w->total += (double)len;
	free(vec);
	munmap(map, len);
	return 0;
}

int bench_cache_resident(const char *dir, double *resident, double *total)
{
	struct resident_walk w = {0, 0};
	int rc = bench_walk(dir, resident_one, &w);
	*resident = w.resident < w.total ? w.resident : w.total; /* the last page's tail */
	*total = w.total;
	return rc;
}

static int drop_one(void *arg, const char *path, const struct stat *st)
{
	int fd, rc;
	(void)arg;
	if (!S_ISREG(st->st_mode))
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	/* only clean pages can be dropped: write back first */
	rc = fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 ? 0 : -1;
	close(fd);
	return rc;
}

int bench_cache_drop(const char *dir)
{
	return bench_walk(dir, drop_one, NULL);
}
