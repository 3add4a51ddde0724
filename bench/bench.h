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

#include <stddef.h>
#include <stdint.h>

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

/* ---- helpers (benchutil.c) ---- */

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* The median of n values (sorts v in place). */
double bench_median(double *v, size_t n);

/* A fresh directory under $TMPDIR (default /tmp), malloc'd; NULL on
 * failure (errno set). */
char *bench_scratch_dir(const char *tag);

/* Removes dir and everything in it. */
void bench_rmrf(const char *dir);

/* Parses a positive integer option value; returns -1 if it is not one. */
long long bench_parse_count(const char *s);

/* splitmix64: the deterministic generator of the random page sequences. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

#endif
