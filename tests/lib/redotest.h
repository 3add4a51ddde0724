/*
 * redotest.h - replaying a database's log into another directory through
 * the registered redo routines, and comparing relation files page by page:
 * the harness for "redo rebuilds the same pages" and "redo applied twice
 * gives the same pages" tests of every access method.
 */
#ifndef WALDEN_REDOTEST_H
#define WALDEN_REDOTEST_H

#include <stdint.h>

#include "storage/types.h"
#include "wal/redo.h"
#include "wal/wal.h"

/*
 * Reads the log of src_dir (settings o) from `from` to its end and applies
 * every record with wal_rmgr_redo to the relation files under
 * target_dir/base/ (created on demand) through a pool of pool_pages, then
 * writes and syncs every page. *stats (may be NULL) receives the redo
 * counters. Returns 0 or the first error.
 */
int rt_replay(const char *src_dir, const wal_opts *o, wd_lsn from,
	      const char *target_dir, uint32_t pool_pages, redo_ctx *stats);

/*
 * Compares relation rel of dir_a and dir_b page by page, ignoring the
 * checksum field (bytes 8..11). Returns -1 if they are equal, else the
 * first differing block (a file missing or shorter than the other differs
 * at its end).
 */
int64_t rt_compare_rel(const char *dir_a, const char *dir_b, wd_relid rel,
		       uint32_t page_size);

#endif
