/*
 * seed.c - `fuzz-seed DIR`: builds two small databases with a workload
 * (tables with a multi-level index, overflowed values, updates, deletes, a
 * rolled-back savepoint, an aborted transaction, an open one whose undo
 * pages are on disk, checkpoints; the second with compressed full-page
 * images) and writes the seed corpus of every fuzz target from the files
 * walden wrote: DIR/<target>/seed-*. Each seed starts with the mode byte
 * of its target (fuzz/README.md), FZ_FIX set so a mutated seed still
 * passes its checksums. The seeds are few per kind (a few dozen per
 * target). Run by `make fuzz-seed`; `make fuzz-merge` then keeps those
 * that add coverage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "recovery/control.h"
#include "storage/page.h"
#include "wal/format.h"
#include "wal/reader.h"
#include "wal/rmgr.h"
#include "walden.h"

#define PS 4096u
#define SEG WAL_SEG_SIZE_MIN
#define PER_KIND 3
#define MAX_INDEX_PAGES 16

static const char *out_dir;
static unsigned nwritten;

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz-seed: %s: %s (%s)\n", what, wd_last_error(), wd_strerror(rc));
	exit(1);
}

static void check(int rc, const char *what)
{
	if (rc != 0)
		die(what, rc);
}

/* Writes DIR/target/name: the mode byte, then len bytes. */
static void seed(const char *target, const char *name, uint8_t mode, const void *data,
		 size_t len)
{
	char path[4200];
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", out_dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/seed-%s", out_dir, target, name);
	if (!(f = fopen(path, "wb")) || fputc(mode, f) == EOF ||
	    (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	nwritten++;
}

/* A whole small file into memory (*len bytes), or NULL. */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* ---- the workload ---- */

static void put_keys(wd_txn *x, wd_table *t, unsigned from, unsigned to, size_t vlen,
		     char fill)
{
	char k[64], v[16384];
	memset(v, fill, sizeof v);
	for (unsigned i = from; i < to; i++) {
		snprintf(k, sizeof k, "key-%06u-%s", i, "padding-to-fill-leaves");
		check(wd_put(x, t, k, strlen(k), v, vlen), "put");
	}
}

static void del_keys(wd_txn *x, wd_table *t, unsigned from, unsigned to)
{
	char k[64];
	for (unsigned i = from; i < to; i++) {
		snprintf(k, sizeof k, "key-%06u-%s", i, "padding-to-fill-leaves");
		check(wd_del(x, t, k, strlen(k)), "del");
	}
}

/* Builds the database; returns it open with a transaction in flight
 * (*open_txn), its changes and undo on disk after a checkpoint. */
static wd_db *workload(const char *dir, const char *archive, int compress,
		       wd_txn **open_txn)
{
	wd_options o;
	wd_db *db;
	wd_txn *x;
	wd_table *t, *big;

	wd_options_default(&o);
	o.page_size = PS;
	o.wal_segment_size = SEG;
	o.buffer_pool_bytes = 64 * PS;
	o.wal_compression = compress;
	o.archive_dir = archive; /* keeps every segment a checkpoint retires */
	check(wd_open(dir, &o, &db), "open");
	check(wd_begin(db, &x), "begin");
	check(wd_table_open(x, "t", WD_CREATE, &t), "table t");
	check(wd_table_open(x, "big", WD_CREATE, &big), "table big");
	put_keys(x, t, 0, 300, 40, 'a');
	put_keys(x, big, 0, 3, 10000, 'b');
	check(wd_commit(x), "commit 1");
	check(wd_checkpoint(db), "checkpoint 1");

	check(wd_begin(db, &x), "begin 2");
	put_keys(x, t, 0, 50, 60, 'c');
	del_keys(x, t, 100, 220);
	put_keys(x, big, 1, 2, 9000, 'd');
	del_keys(x, big, 2, 3);
	check(wd_commit(x), "commit 2");

	check(wd_begin(db, &x), "begin 3");
	put_keys(x, t, 300, 320, 30, 'e');
	check(wd_savepoint(x, "s"), "savepoint");
	put_keys(x, t, 320, 340, 30, 'f');
	check(wd_rollback_to(x, "s"), "rollback to");
	check(wd_abort(x), "abort 3");

	check(wd_checkpoint(db), "checkpoint 2");
	/* first changes after a checkpoint: full-page images */
	check(wd_begin(db, &x), "begin 4");
	put_keys(x, t, 400, 430, 50, 'g');
	del_keys(x, t, 0, 10);
	put_keys(x, big, 0, 1, 12000, 'h');
	check(wd_checkpoint(db), "checkpoint 3");
	*open_txn = x;
	return db;
}

/* ---- harvesting ---- */

/* Up to PER_KIND seeds of each page kind; the first index files whole. */
static void harvest_pages(const char *dir, const char *tag)
{
	static unsigned per_kind[256];
	char base[4200], path[4400], name[128];
	DIR *d;
	struct dirent *e;
	snprintf(base, sizeof base, "%.4000s/%s", dir, DB_BASE_DIR);
	if (!(d = opendir(base)))
		return;
	while ((e = readdir(d)) != NULL) {
		size_t len = 0;
		uint8_t *file;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%.4100s/%.200s", base, e->d_name);
		if (!(file = slurp(path, &len)))
			continue;
		for (size_t b = 0; b < len / PS; b++) {
			const uint8_t *p = file + b * PS;
			unsigned k = page_kind(p);
			if (page_is_zero(p, PS) || per_kind[k] >= PER_KIND)
				continue;
			per_kind[k]++;
			snprintf(name, sizeof name, "%.10s-%.10s-rel%.20s-blk%zu", tag, page_kind_name(k),
				 e->d_name, b);
			/* mode: FZ_FIX, page size 4096, block number b (mod 32) */
			seed("page", name, (uint8_t)(FZ_FIX | (b % 32) << 3), p, PS);
		}
		if (strcmp(e->d_name, "3") == 0) { /* the undo log (UNDO_REL) */
			size_t n = len / PS < MAX_INDEX_PAGES ? len / PS : MAX_INDEX_PAGES;
			snprintf(name, sizeof name, "%.10s-undo-%zupages", tag, len / PS);
			seed("undo_chain", name, FZ_FIX, file, n * PS);
		}
		if (len >= PS && page_kind(file) == PAGE_KIND_META) {
			size_t n = len / PS < MAX_INDEX_PAGES ? len / PS : MAX_INDEX_PAGES;
			snprintf(name, sizeof name, "%.10s-index-rel%.20s-%zupages", tag, e->d_name,
				 len / PS);
			seed("btree_check", name, FZ_FIX, file, n * PS);
		}
		free(file);
	}
	closedir(d);
}

/* Up to PER_KIND records of each (rmgr, type, image, compressed) that r
 * reads from lsn on; returns where the log ends for r. */
static wd_lsn harvest_records(wal_reader *r, wd_lsn lsn, const char *tag)
{
	static unsigned per_kind[256 * 256 * 4];
	const wal_decoded *rec;
	wd_lsn end = lsn;
	char name[128];
	int rc;
	check(wal_reader_seek(r, lsn), "seek");
	while ((rc = wal_reader_next(r, &rec)) == 0) {
		unsigned img = 0, k;
		for (unsigned i = 0; i < rec->nblocks; i++)
			img |= (rec->blocks[i].flags & WAL_BLK_HAS_IMAGE ? 1u : 0) |
			       (rec->blocks[i].flags & WAL_BLK_COMPRESSED ? 2u : 0);
		k = (unsigned)rec->rmgr << 10 | (unsigned)rec->type << 2 | img;
		if (per_kind[k] >= PER_KIND)
			continue;
		per_kind[k]++;
		snprintf(name, sizeof name, "%s-%s-%s%s-lsn%llx", tag,
			 wal_record_name(rec->rmgr, rec->type) ? wal_record_name(rec->rmgr, rec->type)
							       : "unknown",
			 img & 1 ? "image" : "noimage", img & 2 ? "-z" : "",
			 (unsigned long long)rec->lsn);
		/* mode: FZ_FIX, page size 4096 */
		seed("wal_record", name, FZ_FIX, rec->raw, rec->tot_len);
	}
	if (rc != WD_NOTFOUND)
		die("reading the WAL", rc);
	wal_reader_end(r, &end, NULL, NULL);
	return end;
}

/* The whole log: the archive's segments from the start, then DIR/wal. */
static void harvest_log(const char *dir, const char *archive, const control_data *cd,
			const char *tag)
{
	wal_reader *r;
	wd_lsn end;
	check(wal_reader_open_dir(archive, cd->db_id, cd->wal_segment_size, cd->page_size, &r),
	      "archive reader");
	end = harvest_records(r, WAL_SEG_HEADER_SIZE, tag);
	wal_reader_close(r);
	check(wal_reader_open(dir, cd->db_id, cd->wal_segment_size, cd->page_size, &r),
	      "reader");
	harvest_records(r, end, tag);
	wal_reader_close(r);
}

/* The first segments of the archive whole, as their own segment 0 (FZ_FIX). */
static void harvest_segments(const char *dir, const control_data *cd, const char *tag)
{
	char path[4400], name[128];
	uint64_t segno;
	check(wal_oldest_segment_in(dir, &segno), "oldest segment");
	for (unsigned i = 0; i < 3; i++, segno++) {
		size_t len = 0;
		uint8_t *seg;
		if (wal_seg_path_in(path, sizeof path, dir, segno) != 0 || !(seg = slurp(path, &len)))
			break;
		snprintf(name, sizeof name, "%s-segment-%llu", tag, (unsigned long long)segno);
		seed("wal_segment", name, FZ_FIX, seg, len < cd->wal_segment_size ? len : SEG);
		free(seg);
	}
}

static void harvest_control(const char *dir, const char *tag)
{
	char path[4400], name[128];
	size_t len = 0;
	uint8_t *buf;
	snprintf(path, sizeof path, "%s/%s", dir, CONTROL_FILE);
	if (!(buf = slurp(path, &len)))
		die("reading the control file", WD_ENOENT);
	snprintf(name, sizeof name, "%s-control", tag);
	seed("control", name, FZ_FIX, buf, len);
	snprintf(name, sizeof name, "%s-control-exact-length", tag);
	seed("control", name, 2, buf, len);
	free(buf);
}

static void one_database(const char *scratch, const char *tag, int compress)
{
	char dir[4200], archive[4200];
	wd_db *db;
	wd_txn *x;
	control_data cd;
	snprintf(dir, sizeof dir, "%.4000s/%s", scratch, tag);
	snprintf(archive, sizeof archive, "%.4000s/%s-archive", scratch, tag);
	mkdir(archive, 0700);
	db = workload(dir, archive, compress, &x);
	check(control_read(dir, &cd), "control file");
	harvest_pages(dir, tag);
	harvest_log(dir, archive, &cd, tag);
	harvest_segments(archive, &cd, tag);
	harvest_control(dir, tag);
	check(wd_abort(x), "abort 4");
	check(wd_close(db), "close");
}

int main(int argc, char **argv)
{
	char scratch[] = "/tmp/walden-seed-XXXXXX", cmd[256];
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-seed CORPUS_DIR\n");
		return 2;
	}
	out_dir = argv[1];
	mkdir(out_dir, 0755);
	if (!mkdtemp(scratch)) {
		perror("fuzz-seed: scratch directory");
		return 1;
	}
	one_database(scratch, "plain", 0);
	one_database(scratch, "zimages", 1);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
	if (system(cmd) != 0)
		return 1;
	printf("fuzz-seed: %u seeds written under %s\n", nwritten, out_dir);
	return 0;
}
