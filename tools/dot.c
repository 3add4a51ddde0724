/*
 * dot.c - `walden dot DIR --table T`: the table's B+tree as Graphviz DOT on
 * stdout (btree_dot: one record node per page with its keys shortened,
 * downlinks, the leaf chain dashed with the leaves on one rank). The tool
 * never runs `dot` itself. Entry point: dot_main.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/tools.h"
#include "txn/db.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden dot DIR --table T\n"
		"\n"
		"Prints the B+tree index of table T as Graphviz DOT on stdout: a node\n"
		"per page (block, level, key count, keys shortened to 8 bytes; long\n"
		"pages show their first and last keys), an edge per downlink, and the\n"
		"leaf chain as dashed 'right' edges with the leaves side by side.\n"
		"Render it with e.g.  walden dot db --table users | dot -Tsvg > users.svg\n"
		"Options:\n"
		"  -t, --table T   the table (required)\n"
		"  -h, --help      this help\n"
		"Exit status: 0 ok, 1 error (not a database, in use, no such table),\n"
		"2 usage, 3 the tree is damaged.\n");
}

int dot_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"table", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *table = NULL;
	control_data cd;
	bool cd_ok;
	wd_db *db;
	wd_txn *x;
	wd_table *t;
	int c, rc, ex;

	optind = 0;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (c) {
		case 't': table = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || !table || !*table) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((ex = tool_open_db("dot", argv[optind], &db, &cd, &cd_ok)) != EXIT_OK)
		return ex;
	if ((rc = wd_begin(db, &x)) != 0) {
		ex = tool_fail("dot", rc, "starting a transaction");
		(void)wd_close(db);
		return ex;
	}
	rc = wd_table_open(x, table, 0, &t);
	if (rc == WD_NOTFOUND)
		fprintf(stderr, "walden dot: %s: no table '%s'\n", argv[optind], table);
	else if (rc != 0)
		ex = tool_fail("dot", rc, "opening the table");
	else if ((rc = btree_dot(db_table_btree(t), stdout)) != 0 || fflush(stdout) != 0)
		ex = tool_fail("dot", rc ? rc : WD_EIO, "drawing the tree");
	if (rc == WD_NOTFOUND)
		ex = EXIT_ERROR;
	else if (rc == WD_ECORRUPT)
		ex = EXIT_DAMAGE;
	(void)wd_commit(x);
	if ((rc = wd_close(db)) != 0 && ex == EXIT_OK)
		ex = tool_fail("dot", rc, "closing the database");
	return ex;
}
