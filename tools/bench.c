/*
 * bench.c - `walden bench <name>`: dispatch to the benchmarks of bench/.
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "tools/tools.h"

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
} benches[] = {
	{"pin", bench_pin_main,
	 "ns per cached pin+unpin, 1 and 2 threads, beside memcpy of a page"},
	{"pool", bench_pool_main,
	 "random reads of data 8x the pool (in the OS cache) vs raw pread"},
	{"commit", bench_commit_main,
	 "durable commits/s at 1..64 threads vs fdatasync and LMDB; async commits"},
	{"walinsert", bench_walinsert_main,
	 "bytes/s of WAL records appended by 1 and 2 threads vs memcpy"},
	{"load", bench_load_main,
	 "W1 sequential and W2 random table load, durable, vs LMDB"},
	{"read", bench_read_main,
	 "W3 random point gets on a loaded table, cache warm, vs LMDB"},
	{"scan", bench_scan_main,
	 "W4 a full ordered cursor scan of a loaded table vs LMDB"},
	{"update", bench_update_main,
	 "W5 random overwrites, 100 per durable commit, vs LMDB"},
	{"tables", bench_tables_main,
	 "W1..W5 together (load, read, scan, update) vs LMDB"},
	{"txn", bench_txn_main,
	 "abort of N changes (undo steps/s); hot-key transactions, deadlocks, vs LMDB"},
	{"redo", bench_redo_main,
	 "replay of ~1 GiB of WAL after a kill: MiB/s, records/s, vs writing it"},
	{"recovery", bench_recovery_main,
	 "recovery time vs max_wal_size, and each setting's W5 cost vs LMDB"},
	{"fpw", bench_fpw_main,
	 "W5 with full_page_writes / wal_compression on, off: WAL bytes, vs LMDB"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: walden bench <benchmark> [options]\n\n"
		     "Runs a benchmark and prints a table and one JSON line.\n"
		     "Speed is compared within one run (ratios), never with\n"
		     "absolute thresholds. Benchmarks:\n\n");
	for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
		fprintf(out, "  %-9s %s\n", benches[i].name, benches[i].summary);
	fprintf(out, "\n'walden bench <benchmark> --help' lists its options.\n");
}

int bench_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
		if (strcmp(argv[1], benches[i].name) == 0)
			return benches[i].main(argc - 1, argv + 1);
	fprintf(stderr, "walden bench: unknown benchmark '%s'\n\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
