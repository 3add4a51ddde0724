/*
 * redotest.c - see redotest.h.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bufmgr/bufmgr.h"
#include "recovery/control.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tests/lib/redotest.h"
#include "wal/reader.h"
#include "wal/rmgr.h"

struct rt_state {
	bufmgr *pool;
	const char *dir;
	wd_relid open[64];
	unsigned nopen;
};

/* redo_ctx.open_rel: opens target/base/<rel> in the pool once. */
static int rt_open_rel(void *arg, wd_relid rel)
{
	struct rt_state *st = arg;
	char path[4096];
	for (unsigned i = 0; i < st->nopen; i++)
		if (st->open[i] == rel)
			return 0;
	if (st->nopen == sizeof st->open / sizeof st->open[0])
		return WD_ENOBUFS;
	snprintf(path, sizeof path, "%s/%s/%u", st->dir, DB_BASE_DIR, rel);
	st->open[st->nopen++] = rel;
	return bufmgr_rel_open(st->pool, rel, path, BM_REL_CREATE);
}

int rt_replay(const char *src_dir, const wal_opts *o, wd_lsn from,
	      const char *target_dir, uint32_t pool_pages, redo_ctx *stats)
{
	struct rt_state st = {.dir = target_dir};
	redo_ctx ctx = {0};
	wal_reader *r = NULL;
	const wal_decoded *rec;
	bufmgr_opts bo;
	char base[4096];
	int rc;

	snprintf(base, sizeof base, "%s/%s", target_dir, DB_BASE_DIR);
	if (!storage_exists(target_dir) && (rc = storage_mkdir(target_dir)) != 0)
		return rc;
	if (!storage_exists(base) && (rc = storage_mkdir(base)) != 0)
		return rc;
	bufmgr_opts_default(&bo);
	bo.page_size = o->page_size;
	bo.pool_bytes = (uint64_t)pool_pages * o->page_size;
	if ((rc = bufmgr_create(&bo, &st.pool)) != 0)
		return rc;
	ctx = (redo_ctx){.pool = st.pool, .page_size = o->page_size,
			 .open_rel = rt_open_rel, .open_rel_arg = &st};
	rc = wal_reader_open(src_dir, o->db_id, o->segment_size, o->page_size, &r);
	if (rc == 0)
		rc = wal_reader_seek(r, from);
	while (rc == 0 && (rc = wal_reader_next(r, &rec)) == 0)
		rc = wal_rmgr_redo(&ctx, rec);
	if (rc == WD_NOTFOUND)
		rc = bufmgr_flush_all(st.pool);
	wal_reader_close(r);
	bufmgr_destroy(st.pool);
	if (stats)
		*stats = ctx;
	return rc;
}

/* Reads block blk of path into page; false if the file has no such block. */
static bool read_block(const char *path, wd_blkno blk, uint8_t *page, uint32_t ps)
{
	st_file *f = NULL;
	size_t got = 0;
	bool ok = storage_open(path, ST_RDONLY, &f) == 0 &&
		  storage_read(f, page, ps, (uint64_t)blk * ps, &got) == 0 && got == ps;
	if (f)
		(void)storage_close(f);
	return ok;
}

int64_t rt_compare_rel(const char *dir_a, const char *dir_b, wd_relid rel,
		       uint32_t page_size)
{
	char pa[4096], pb[4096];
	uint8_t *a = malloc(page_size), *b = malloc(page_size);
	int64_t diff = -1;
	snprintf(pa, sizeof pa, "%s/%s/%u", dir_a, DB_BASE_DIR, rel);
	snprintf(pb, sizeof pb, "%s/%s/%u", dir_b, DB_BASE_DIR, rel);
	for (wd_blkno blk = 0; diff < 0; blk++) {
		bool ha = read_block(pa, blk, a, page_size);
		bool hb = read_block(pb, blk, b, page_size);
		if (!ha && !hb)
			break;
		/* a page never written reads as zeroes on one side and may be
		 * absent on the other: both mean "no page" */
		if (!ha)
			memset(a, 0, page_size);
		if (!hb)
			memset(b, 0, page_size);
		memset(a + PH_CHECKSUM, 0, 4);
		memset(b + PH_CHECKSUM, 0, 4);
		if (memcmp(a, b, page_size) != 0)
			diff = blk;
	}
	free(a);
	free(b);
	return diff;
}
