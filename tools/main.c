/*
 * main.c - the `walden` program: subcommand dispatch, help and version.
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "tools/tools.h"
#include "walden.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static int version_main(int argc, char **argv);
static int help_main(int argc, char **argv);

static const struct command commands[] = {
	{"demo", demo_db_main,
	 "create a database, run transactions, kill the writer with one open, "
	 "recover and show what recovery did"},
	{"demo-wal", demo_main,
	 "the log and pages alone: write pages, kill the writer, simulate a power "
	 "loss and show what survived"},
	{"inspect", inspect_main,
	 "show the control file, a table's relations, or one page decoded "
	 "(tuples, B+tree items, FSM)"},
	{"check", check_main,
	 "verify every page, B+tree, free space map and heap/index agreement "
	 "(exit 3 on damage)"},
	{"dot", dot_main, "print a table's B+tree as Graphviz DOT"},
	{"waldump", waldump_main,
	 "print the write-ahead log: records, statistics, and where and why it ends"},
	{"controldata", controldata_main,
	 "print every field of the control file (state, checkpoint and redo LSN, CRC)"},
	{"recover", recover_main,
	 "open a database, recovering it if it crashed, and report (or --trace) "
	 "what each ARIES pass did"},
	{"crashtest", crashtest_main,
	 "crash-injection campaigns checked against an LMDB oracle (--help)"},
	{"bench", bench_main,
	 "benchmarks beside LMDB and other peers: the table workloads W1-W5, "
	 "commits, transactions, recovery, the pool and the log (--help)"},
	{"version", version_main, "print the version"},
	{"help", help_main, "this list, or a subcommand's help"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden <command> [options]\n"
		"\n"
		"walden is a transactional page store: heap and B+tree pages, a\n"
		"write-ahead log and ARIES recovery. Commands:\n\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\n'walden <command> --help' explains a command.\n"
		"Environment: WALDEN_TRACE=storage,bufmgr|all traces protocol "
		"events to stderr;\nWALDEN_CRASH_POINT, WALDEN_CRASH_IO, "
		"WALDEN_FAULT and WALDEN_SIM_JOURNAL drive\nfault injection "
		"(see storage/README.md).\n");
}

static const struct command *find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int version_main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: walden version\nPrints the version of walden.\n");
		return EXIT_OK;
	}
	printf("walden %s\n", wd_version());
	return EXIT_OK;
}

static int help_main(int argc, char **argv)
{
	const struct command *c;
	char *help_argv[] = {NULL, "--help", NULL};
	if (argc < 2) {
		usage(stdout);
		return EXIT_OK;
	}
	c = find(argv[1]);
	if (!c) {
		fprintf(stderr, "walden: no command '%s'\n", argv[1]);
		return EXIT_USAGE;
	}
	help_argv[0] = (char *)c->name;
	return c->main(2, help_argv);
}

int tool_fail(const char *cmd, int rc, const char *what)
{
	fprintf(stderr, "walden %s: %s: %s (%s)\n", cmd, what, wd_last_error(),
		wd_strerror(rc));
	return EXIT_ERROR;
}

int main(int argc, char **argv)
{
	const struct command *c;
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		return version_main(1, argv + 1);
	c = find(argv[1]);
	if (!c) {
		fprintf(stderr, "walden: unknown command '%s'\n\n", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return c->main(argc - 1, argv + 1);
}
