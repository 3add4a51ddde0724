/*
 * testutil.c - see testutil.h.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/testutil.h"

char *tu_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;
	if (asprintf(&path, "%s/walden-%s-XXXXXX", base && *base ? base : "/tmp",
		     tag) < 0)
		abort();
	if (!mkdtemp(path))
		abort();
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmrf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tu_copy_tree's state: nftw's callback has no argument of its own. */
static const char *copy_from, *copy_to;

/* Copies one regular file's bytes from src to dst (created, mode 0644). */
static int copy_file(const char *src, const char *dst)
{
	char buf[1 << 16];
	ssize_t n = 0;
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644);
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			n = -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return in < 0 || out < 0 || n < 0 ? -1 : 0;
}

static int copy_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char *dst;
	int rc;
	(void)ftw;
	if (asprintf(&dst, "%s%s", copy_to, path + strlen(copy_from)) < 0)
		abort();
	if (flag == FTW_D)
		rc = mkdir(dst, st->st_mode & 07777);
	else if (flag == FTW_F)
		rc = copy_file(path, dst);
	else
		rc = -1; /* unreadable directories, links: not in a database */
	free(dst);
	return rc;
}

void tu_copy_tree(const char *from, const char *to)
{
	copy_from = from;
	copy_to = to;
	if (nftw(from, copy_one, 16, FTW_PHYS) != 0)
		abort();
}

char *tu_path(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

uint64_t tu_seed(uint64_t dflt)
{
	const char *env = getenv("WALDEN_TEST_SEED");
	uint64_t x;
	if (!env || !*env)
		return dflt;
	x = strtoull(env, NULL, 0) ^ (dflt * 0xD6E8FEB86659FD93ull);
	x = tu_rand(&x);
	return x ? x : 1;
}

int tu_run_child(void (*fn)(void *arg), void *arg)
{
	int status;
	pid_t pid;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		abort();
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* Reads fd to its end into buf (NUL-terminated, truncated to cap - 1). */
static void slurp(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
}

int tu_run_tool(const char *const *args, char *out, size_t out_cap, char *err,
		size_t err_cap)
{
	const char *bin = getenv("WALDEN_BIN");
	char errpath[] = "/tmp/walden-tool-err-XXXXXX";
	const char *argv[32] = {bin && *bin ? bin : "build/release/walden"};
	int pipefd[2], errfd = mkstemp(errpath), status;
	pid_t pid;
	for (int i = 0; args[i] && i < 30; i++)
		argv[i + 1] = args[i];
	if (errfd < 0 || pipe(pipefd) != 0)
		abort();
	fflush(NULL);
	if ((pid = fork()) < 0)
		abort();
	if (pid == 0) {
		dup2(pipefd[1], 1);
		dup2(errfd, 2);
		close(pipefd[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	slurp(pipefd[0], out, out_cap); /* stderr goes to a file: no deadlock */
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) != pid)
		abort();
	lseek(errfd, 0, SEEK_SET);
	slurp(errfd, err, err_cap);
	close(errfd);
	unlink(errpath);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

bool tu_kernel_takes_huge_advice(void)
{
	void *p = NULL;
	bool ok;
	if (posix_memalign(&p, 2u << 20, 2u << 20) != 0)
		abort();
	ok = madvise(p, 2u << 20, MADV_HUGEPAGE) == 0;
	free(p);
	return ok;
}
