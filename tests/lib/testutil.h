/*
 * testutil.h - small helpers shared by the test suites: scratch directories,
 * path joining, deterministic random numbers, running a child process that
 * is expected to crash.
 */
#ifndef WALDEN_TESTUTIL_H
#define WALDEN_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A fresh empty directory under $TMPDIR (default /tmp), named after tag.
 * The caller frees the string and may remove the tree with tu_rmrf. */
char *tu_tmpdir(const char *tag);

/* rm -rf path (no error if absent). */
void tu_rmrf(const char *path);

/* Copies the tree at from (directories and regular files) to to, which
 * must not exist. Aborts on an error. */
void tu_copy_tree(const char *from, const char *to);

/* Whether this kernel takes madvise(MADV_HUGEPAGE) on anonymous memory
 * (transparent huge pages built in), asked on a 2 MiB region of its own:
 * what the buffer pool's huge_pages should then get (bufmgr README). */
bool tu_kernel_takes_huge_advice(void);

/* dir + "/" + name in a malloc'd string. */
char *tu_path(const char *dir, const char *name);

/* splitmix64: a small deterministic generator for reproducible tests. */
static inline uint64_t tu_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/*
 * A randomized test's seed: dflt, or, when WALDEN_TEST_SEED=S is set, dflt
 * mixed with S (never 0), so that a soak run with S = 1, 2, 3, ... walks
 * sequences the default run never takes while each test keeps a stream of
 * its own. A failure under S is reproduced by running the suite with the
 * same S (and WALDEN_TEST_SCALE, which sets the lengths).
 */
uint64_t tu_seed(uint64_t dflt);

/*
 * Runs fn(arg) in a forked child and waits for it. Returns the child's exit
 * status (0..255), or 128 + signal number if a signal ended it.
 */
int tu_run_child(void (*fn)(void *arg), void *arg);

/*
 * Runs the walden binary named by $WALDEN_BIN (default build/release/walden)
 * with args (NULL-terminated; args[0] is the subcommand), capturing stdout
 * into out and stderr into err (NUL-terminated, truncated to fit). Returns
 * the exit status, or 128 + signal number.
 */
int tu_run_tool(const char *const *args, char *out, size_t out_cap, char *err,
		size_t err_cap);

#endif
