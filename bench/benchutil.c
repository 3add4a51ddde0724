/*
 * benchutil.c - helpers shared by the benchmarks: a clock, medians,
 * scratch directories, option values, a measurement in a child process
 * (which may end in a crash). See bench.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_rate(uint64_t ops, uint64_t t0)
{
	uint64_t dt = bench_now_ns() - t0;
	return (double)ops * 1e9 / (double)(dt ? dt : 1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_median_at(const void *recs, size_t stride, size_t n, size_t off)
{
	double col[1024];
	if (n > sizeof col / sizeof col[0])
		n = sizeof col / sizeof col[0];
	for (size_t i = 0; i < n; i++)
		memcpy(&col[i], (const char *)recs + i * stride + off, sizeof col[i]);
	return bench_median(col, n);
}

/* mkdtemp of base/walden-bench-<tag>-XXXXXX, malloc'd; NULL (errno set)
 * on failure. */
static char *make_dir(const char *base, const char *tag)
{
	char *path;
	if (asprintf(&path, "%s/walden-bench-%s-XXXXXX", base, tag) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		int e = errno;
		free(path);
		errno = e;
		return NULL;
	}
	return path;
}

char *bench_scratch_dir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	return make_dir(base && *base ? base : "/tmp", tag);
}

char *bench_disk_dir(const char *base, const char *tag, bool *tmpfs)
{
	const char *b = base ? base : getenv("TMPDIR");
	struct statfs sf;
	char *dir;
	if (!b || !*b)
		b = "/var/tmp"; /* /tmp is often tmpfs, where fsync costs nothing */
	if ((dir = make_dir(b, tag)))
		*tmpfs = statfs(dir, &sf) == 0 && sf.f_type == 0x01021994; /* TMPFS_MAGIC */
	return dir;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void bench_rmrf(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int bench_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
		 bool (*apply)(void *opts, int c, const char *arg), void *opts,
		 void (*usage)(FILE *f, const char *name))
{
	int c;
	optind = 0; /* the next subcommand of this process parses afresh */
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout, argv[0]);
			return 1;
		}
		if (c == '?' || !apply(opts, c, optarg)) {
			if (c != '?')
				fprintf(stderr, "walden bench %s: bad value '%s'\n", argv[0], optarg);
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	return 0;
}

long long bench_parse_count(const char *s)
{
	char *end;
	long long v;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v <= 0)
		return -1;
	return v;
}

/* Reads exactly size bytes from fd unless the writer goes away first;
 * returns how many arrived. */
static size_t read_full(int fd, void *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;
	while (got < size && (n = read(fd, (char *)buf + got, size - got)) != 0)
		if (n > 0)
			got += (size_t)n;
		else if (errno != EINTR)
			break;
	return got;
}

/* bench_fork and bench_fork_crash: the child sends *res, then exits, or
 * kills itself with SIGKILL if die; the parent checks that all of res
 * arrived and, if die, that SIGKILL ended the child. */
static int fork_run(void (*body)(void *arg, void *res), void *arg, void *res, size_t size,
		    struct rusage *ru, bool die, char *why, size_t why_cap)
{
	int fds[2], status = 0;
	size_t got;
	pid_t pid;

	fflush(stdout); /* or the child's exit would print the buffers again */
	fflush(stderr);
	if (pipe(fds) != 0 || (pid = fork()) < 0) {
		snprintf(why, why_cap, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		bool sent;
		close(fds[0]);
		body(arg, res);
		sent = write(fds[1], res, size) == (ssize_t)size;
		if (die && sent)
			kill(getpid(), SIGKILL);
		_exit(sent ? 0 : 1);
	}
	close(fds[1]);
	got = read_full(fds[0], res, size);
	close(fds[0]);
	while (wait4(pid, &status, 0, ru) < 0 && errno == EINTR)
		;
	if (got == size && (!die || (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)))
		return 0;
	snprintf(why, why_cap, "child %s (status 0x%x)",
		 WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "failed", (unsigned)status);
	return -1;
}

int bench_fork(void (*body)(void *arg, void *res), void *arg, void *res, size_t size,
	       struct rusage *ru, char *why, size_t why_cap)
{
	return fork_run(body, arg, res, size, ru, false, why, why_cap);
}

int bench_fork_crash(void (*body)(void *arg, void *res), void *arg, void *res, size_t size,
		     char *why, size_t why_cap)
{
	return fork_run(body, arg, res, size, NULL, true, why, why_cap);
}
