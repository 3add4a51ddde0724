/*
 * testutil.c - see testutil.h.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

char *tu_path(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
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
