/*
 * fuzz_btree_check.c - fuzz target "btree_check": a whole B+tree index
 * file (metapage, then tree pages) as `walden check` verifies it and
 * `walden dot` draws it: btree_open reads the metapage, btree_check
 * (btree/check.c) walks every page read from the file as untrusted input,
 * btree_dot writes the tree as DOT. A file btree_check passes must then be
 * readable by the running code: a forward and a backward cursor scan give
 * its items in strictly increasing (decreasing) key order, as many as the
 * check counted, and a lookup of each key scanned finds it.
 *
 * Input: mode byte, then up to 16 pages of 4096 bytes (the last one padded
 * with zeroes) written as the index file.
 *   bit 0 (FZ_FIX)  store the correct checksum in every page that is not
 *                   all zero (a never-written page)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree/btree.h"
#include "bufmgr/bufmgr.h"
#include "fuzz/fuzz.h"
#include "storage/page.h"

const char fz_target_name[] = "btree_check";

#define PAGE_SIZE PAGE_SIZE_MIN
#define MAX_PAGES 16
#define REL 2

/* Scans t in direction dir: keys strictly ordered, each found by a lookup;
 * returns the count, or -1 if the scan stopped on an error. */
static int64_t scan(btree *t, int dir)
{
	btree_cursor *c = NULL;
	uint8_t last[PAGE_SIZE];
	size_t last_len = 0;
	const void *k;
	size_t klen;
	wd_tid tid, found;
	int64_t n = 0;
	int rc;

	if (btree_cursor_open(t, &c) != 0)
		return -1;
	rc = btree_cursor_seek(c, NULL, 0, dir);
	while (rc == 0 && (rc = btree_cursor_next(c, &k, &klen, &tid)) == 0) {
		int cmp = memcmp(last, k, last_len < klen ? last_len : klen);
		if (cmp == 0)
			cmp = last_len < klen ? -1 : last_len > klen;
		if (n > 0 && cmp * dir >= 0)
			abort(); /* the check passed a tree out of order */
		if (klen > sizeof last)
			abort();
		memcpy(last, k, klen);
		last_len = klen;
		if (btree_lookup(t, k, klen, &found) != 0 || found.blk != tid.blk ||
		    found.slot != tid.slot)
			abort(); /* a key the scan returns must be found */
		n++;
	}
	btree_cursor_close(c);
	return rc == WD_NOTFOUND ? n : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_input in = fz_input_split(data, size);
	size_t npages = (in.len + PAGE_SIZE - 1) / PAGE_SIZE;
	uint8_t *file;
	char path[4300];
	bufmgr_opts o;
	bufmgr *pool = NULL;
	wal_log_ctx log = {.w = fz_wal(PAGE_SIZE), .page_size = PAGE_SIZE};
	btree *t = NULL;
	btree_check_report r;
	FILE *null;
	int rc;

	if (npages > MAX_PAGES)
		npages = MAX_PAGES;
	file = fz_copy_padded(&in, npages * PAGE_SIZE + 1);
	if (in.mode & FZ_FIX)
		for (size_t b = 0; b < npages; b++)
			if (!page_is_zero(file + b * PAGE_SIZE, PAGE_SIZE)) /* a new page stays new */
				page_checksum_set(file + b * PAGE_SIZE, PAGE_SIZE, (wd_blkno)b);
	fz_write_file("index", file, npages * PAGE_SIZE, path, sizeof path);
	free(file);

	bufmgr_opts_default(&o);
	o.page_size = PAGE_SIZE;
	o.pool_bytes = (uint64_t)BM_MIN_BUFFERS * PAGE_SIZE;
	if (bufmgr_create(&o, &pool) != 0 || bufmgr_rel_open(pool, REL, path, 0) != 0)
		abort();
	fz_clear_error();
	if (fz_check_rc(btree_open(pool, REL, &log, &t), 0, "btree_open") == 0) {
		fz_clear_error();
		rc = fz_check_rc(btree_check(t, &r), 0, "btree_check");
		if (rc == 0 && !r.ok)
			abort(); /* a violation must be an error */
		if (rc == 0) {
			fz_accepted++;
			if (scan(t, BT_FORWARD) != (int64_t)r.items ||
			    scan(t, BT_BACKWARD) != (int64_t)r.items)
				abort(); /* the tree the check passed does not read back */
		}
		if ((null = fopen("/dev/null", "w")) != NULL) {
			fz_clear_error();
			fz_check_rc(btree_dot(t, null), 0, "btree_dot");
			fclose(null);
		}
		btree_close(t);
	}
	bufmgr_destroy(pool);
	return 0;
}
