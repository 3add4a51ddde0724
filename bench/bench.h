/*
 * bench.h - the benchmarks behind `walden bench <name>`, and the small
 * helpers they share (bench/benchutil.c).
 *
 * Each *_main takes the subcommand's arguments (argv[0] is the subcommand
 * name, e.g. "pin"), parses them with getopt_long, prints a table and one
 * JSON line on stdout (only the JSON line with --json), diagnostics on
 * stderr, and returns the process exit code: 0 ok, 1 error, 2 usage.
 */
#ifndef WALDEN_BENCH_H
#define WALDEN_BENCH_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* `walden bench pin`: ns per cached pin+unpin (1 and 2 threads) beside a
 * memcpy of one page. */
int bench_pin_main(int argc, char **argv);

/* `walden bench pool`: out-of-core random page reads through the pool
 * versus raw pread of the same pages. */
int bench_pool_main(int argc, char **argv);

/* `walden bench commit`: durable WAL commits/s at 1..64 threads against
 * the fdatasync rate of the disk, async commits/s and loss window, LMDB
 * durable commits (bench_commit.c). */
int bench_commit_main(int argc, char **argv);

/* `walden bench walinsert`: bytes/s of WAL records appended by 1 and 2
 * threads with no flush, beside memcpy of the same bytes
 * (bench_walinsert.c). */
int bench_walinsert_main(int argc, char **argv);

/* `walden bench load|read|scan|update|tables` (bench_tables.c): the table
 * API (wd_put, wd_get, cursors) beside LMDB on the same workload in the same
 * run, as walden/LMDB ratios against targets, with peak RSS against the
 * buffer pool and the size on disk. load: W1 sequential and W2 random load,
 * 1000 puts per durable commit; read: W3 random gets, cache warm; scan: W4
 * a full cursor scan; update: W5 random overwrites, 100 per durable commit;
 * tables: all five. */
int bench_load_main(int argc, char **argv);
int bench_read_main(int argc, char **argv);
int bench_scan_main(int argc, char **argv);
int bench_update_main(int argc, char **argv);
int bench_tables_main(int argc, char **argv);

/* `walden bench txn` (bench_txn.c): the rollback of one transaction of N
 * changes (forward ops/s, undo steps/s) and short read-modify-write
 * transactions of T threads on hot keys with deadlock victims retried
 * (committed transactions/s), each beside LMDB, results checked. */
int bench_txn_main(int argc, char **argv);

/* `walden bench redo` (bench_redo.c): replay speed of ~1 GiB of WAL
 * written with checkpoints held off, recovered with a pool that holds
 * every page and with one 8x smaller, beside the speed that wrote it. */
int bench_redo_main(int argc, char **argv);

/* `walden bench recovery` (bench_recovery.c): recovery time after a
 * crash as max_wal_size grows, and the forward W5 throughput each setting
 * costs, beside LMDB W5. */
int bench_recovery_main(int argc, char **argv);

/* `walden bench fpw` (bench_fpw.c): W5 with full_page_writes and
 * wal_compression on and off: WAL bytes and images per update, updates/s
 * beside LMDB W5. */
int bench_fpw_main(int argc, char **argv);

/* ---- helpers (benchutil.c) ---- */

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* ops per second from t0 (bench_now_ns) to now. */
double bench_rate(uint64_t ops, uint64_t t0);

/* The median of n values (sorts v in place). */
double bench_median(double *v, size_t n);

/* The median of the doubles at byte offset off of n records stride bytes
 * apart (one field over the runs); at most 1024 records are read. */
double bench_median_at(const void *recs, size_t stride, size_t n, size_t off);

/* A fresh directory under $TMPDIR (default /tmp), malloc'd; NULL on
 * failure (errno set). */
char *bench_scratch_dir(const char *tag);

/* A fresh directory walden-bench-<tag>-XXXXXX under base, else $TMPDIR,
 * else /var/tmp, malloc'd; *tmpfs tells whether it is on tmpfs (where a
 * durable commit costs nothing). NULL on failure (errno set). */
char *bench_disk_dir(const char *base, const char *tag, bool *tmpfs);

/* Removes dir and everything in it. */
void bench_rmrf(const char *dir);

/*
 * Parses a subcommand's options with getopt_long: hands each to
 * apply(opts, c, optarg), which returns false for a bad value; -h/--help
 * prints usage(stdout, argv[0]). Returns 0, 1 after --help (exit 0), or 2
 * on misuse (an unknown option, a bad value, a stray argument), having
 * printed usage on stderr.
 */
int bench_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
		 bool (*apply)(void *opts, int c, const char *arg), void *opts,
		 void (*usage)(FILE *f, const char *name));

/* Parses a positive integer option value; returns -1 if it is not one. */
long long bench_parse_count(const char *s);

/*
 * Runs body(arg, res) in a forked child, so that each measurement has a
 * process of its own (heap, buffer pool, map), and copies the child's
 * *res (size bytes) back through a pipe. Returns 0 once all of res has
 * arrived; otherwise -1 with how the child ended (a signal, its status)
 * in why. ru, if not NULL, receives the child's resource usage.
 */
int bench_fork(void (*body)(void *arg, void *res), void *arg, void *res, size_t size,
	       struct rusage *ru, char *why, size_t why_cap);

/*
 * bench_fork for a crash: the child runs body, sends *res and kills itself
 * with SIGKILL, leaving whatever body left open (a database) as a crash
 * leaves it. Returns 0 once all of res arrived and SIGKILL ended the
 * child; otherwise -1 with how the child ended in why.
 */
int bench_fork_crash(void (*body)(void *arg, void *res), void *arg, void *res, size_t size,
		     char *why, size_t why_cap);

/* ---- file trees and the OS page cache (benchfs.c) ---- */

/*
 * Calls fn(arg, path, st) for every entry under dir, recursively (not for
 * dir itself), a directory before what it holds; links are not followed.
 * Returns the first non-zero return of fn, or -1 (errno set) if a
 * directory cannot be read or an entry stat'd.
 */
int bench_walk(const char *dir, int (*fn)(void *arg, const char *path, const struct stat *st),
	       void *arg);

/* Sizes of the regular files under a database directory: apparent and
 * allocated bytes in all, and of those under its wal/. */
struct bench_du {
	double bytes, alloc, wal_bytes, wal_alloc;
};
void bench_du(const char *dir, struct bench_du *out);

/*
 * Copies the tree src to dst (which must not exist): directories, then
 * every regular file, each made durable (fdatasync) so that the kernel's
 * write-back of the copy does not run into a measurement that follows.
 * 0, or -1 with the failing file and errno text in why.
 */
int bench_copy_tree(const char *src, const char *dst, char *why, size_t why_cap);

/* How many bytes of the regular files under dir are in the OS page cache
 * (mincore of a read-only map of each) out of how many. 0, or -1. */
int bench_cache_resident(const char *dir, double *resident, double *total);

/* Asks the kernel to drop the (clean) cached pages of every regular file
 * under dir: fdatasync, then posix_fadvise(POSIX_FADV_DONTNEED). Needs no
 * privilege; the kernel may keep some. 0, or -1 (errno set). */
int bench_cache_drop(const char *dir);

/* splitmix64: the deterministic generator of the random page sequences. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

#endif
