/*
 * tools.h - the subcommands of the `walden` program. Each *_main gets the
 * subcommand's own argv (argv[0] is its name) and returns the exit code:
 * 0 ok, 1 error, 2 usage, 3 damage found (check).
 */
#ifndef WALDEN_TOOLS_H
#define WALDEN_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "recovery/control.h"
#include "storage/types.h"
#include "walden.h"

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_DAMAGE = 3 };

int demo_main(int argc, char **argv);
int demo_db_main(int argc, char **argv);
int inspect_main(int argc, char **argv);
int check_main(int argc, char **argv);
int dot_main(int argc, char **argv);
int bench_main(int argc, char **argv);
int waldump_main(int argc, char **argv);
int controldata_main(int argc, char **argv);
int recover_main(int argc, char **argv);
int crashtest_main(int argc, char **argv);

/* Prints "walden <cmd>: <msg>: <wd_last_error()>" to stderr; returns 1. */
int tool_fail(const char *cmd, int rc, const char *what);

/* ---- dbtool.c: what check, dot and inspect share ---- */

/* The catalog's own relations (txn/README.md "Formats", "Directory"). */
#define TOOL_CATALOG_HEAP_REL 1u
#define TOOL_CATALOG_INDEX_REL 2u
#define TOOL_CATALOG_NAME "(catalog)"

/* A table's name and relations, copied out of the catalog. */
typedef struct tool_table {
	char *name;
	wd_relid heap_rel, fsm_rel, index_rel; /* fsm_rel 0: none */
} tool_table;

/*
 * Opens the database in dir for a tool: refuses a directory without a
 * control file (wd_open would create a database there). Prints what went
 * wrong to stderr as "walden <cmd>: ..." and returns an exit code: EXIT_OK
 * (*db open, *cd the control file), EXIT_ERROR (not a database, held by
 * another process, I/O) or EXIT_DAMAGE (a damaged or foreign file stops the
 * open; *cd is valid if the control file was).
 */
int tool_open_db(const char *cmd, const char *dir, wd_db **db, control_data *cd,
		 bool *cd_ok);

/* The options tool_open_db opens with; NULL (the default): the defaults.
 * Set by a caller running a tool in its own process (crashtest's full
 * check: the workload's small buffers instead of 80 MiB of them). */
extern const wd_options *tool_open_options;

/* Every table of the catalog in name order (*n of them); free with
 * tool_tables_free. wd_* error codes. */
int tool_tables(wd_db *db, tool_table **out, size_t *n);
void tool_tables_free(tool_table *t, size_t n);

/* DIR/base/<rel> into out (cap bytes); "base/<rel>" into rel_out if given. */
void tool_rel_path(const char *dir, wd_relid rel, char *out, size_t cap);

/*
 * Reads block blk of the file at path into p (page_size bytes). *got: the
 * bytes there (< page_size: the block is beyond the end or partial).
 */
int tool_read_block(const char *path, wd_blkno blk, uint8_t *p, uint32_t page_size,
		    size_t *got);

/* Prints up to max bytes of a key as hex, then as text in quotes
 * (non-printable bytes as '.'), "..." if longer. */
void tool_print_key(FILE *out, const uint8_t *k, uint32_t len, uint32_t max);

/* Prints s as a JSON string (quotes and escapes). */
void tool_json_str(FILE *out, const char *s);

#endif
