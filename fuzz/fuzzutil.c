/*
 * fuzzutil.c - the fuzz targets' shared harness (fuzz.h): mode byte,
 * scratch directory, redo harness.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bufmgr/bufmgr.h"
#include "walden.h"
#include "fuzz/fuzz.h"
#include "txn/rmgrs.h"
#include "wal/wal.h"
#include "wal/rmgr.h"

uint64_t fz_accepted;

fz_input fz_input_split(const uint8_t *data, size_t size)
{
	fz_input in = {0, data, 0};
	if (size > 0) {
		in.mode = data[0];
		in.body = data + 1;
		in.len = size - 1;
	}
	return in;
}

uint8_t *fz_copy_padded(const fz_input *in, size_t n)
{
	uint8_t *p = calloc(1, n ? n : 1);
	if (!p)
		abort();
	if (in->len && n)
		memcpy(p, in->body, in->len < n ? in->len : n);
	return p;
}

/* ---- scratch directory ---- */

static char scratch[4096];

/* Removes dir with its files and subdirectories (the scratch tree). */
static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4400];
	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (unlink(path) != 0)
			remove_tree(path);
	}
	closedir(d);
	rmdir(dir);
}

static void scratch_remove(void)
{
	remove_tree(scratch);
}

const char *fz_scratch(void)
{
	const char *tmp = getenv("TMPDIR");
	if (scratch[0])
		return scratch;
	snprintf(scratch, sizeof scratch, "%s/walden-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(scratch)) {
		perror("fuzz: scratch directory");
		abort();
	}
	atexit(scratch_remove);
	return scratch;
}

void fz_write_file(const char *name, const void *data, size_t len, char *out, size_t cap)
{
	int fd;
	snprintf(out, cap, "%s/%s", fz_scratch(), name);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) || close(fd) != 0) {
		perror(out);
		abort();
	}
}

void fz_clear_error(void)
{
	(void)err_set(0, "%s", "");
}

int fz_check_rc(int rc, int max_positive, const char *what)
{
	if (rc > max_positive || rc < WD_ERROR_LAST) {
		fprintf(stderr, "fuzz: %s returned %d, not a walden error code\n", what, rc);
		abort();
	}
	if (rc < WD_NOTFOUND && wd_last_error()[0] == '\0') {
		fprintf(stderr, "fuzz: %s failed (%s) without a detail\n", what,
			wd_strerror(rc));
		abort();
	}
	return rc;
}

void fz_register_rmgrs(void)
{
	if (walden_register_rmgrs() != 0) {
		fprintf(stderr, "fuzz: resource managers: %s\n", wd_last_error());
		abort();
	}
}

/* ---- a log for handles that want one ---- */

struct wal *fz_wal(uint32_t page_size)
{
	static struct wal *w;
	char dir[4400];
	wal_opts o;
	if (w)
		return w;
	snprintf(dir, sizeof dir, "%s/log", fz_scratch());
	if (mkdir(dir, 0700) != 0) {
		perror(dir);
		abort();
	}
	wal_opts_default(&o);
	o.segment_size = WAL_SEG_SIZE_MIN;
	o.buffers_bytes = WAL_SEG_SIZE_MIN;
	o.page_size = page_size;
	o.no_writer_thread = true;
	if (wal_create(dir, &o, &w) != 0) {
		fprintf(stderr, "fuzz: log: %s\n", wd_last_error());
		abort();
	}
	return w;
}

/* ---- redo harness ---- */

#define FZ_MAX_RELS 8
#define FZ_MAX_BLOCKS 16

static struct {
	bufmgr *pool;
	redo_ctx ctx;
	wd_relid rels[FZ_MAX_RELS];
	unsigned nrels;
} rh;

static void rel_path(wd_relid rel, char *out, size_t cap)
{
	snprintf(out, cap, "%s/rel%u", fz_scratch(), rel);
}

static int find_rel(wd_relid rel)
{
	for (unsigned i = 0; i < rh.nrels; i++)
		if (rh.rels[i] == rel)
			return (int)i;
	return -1;
}

/* redo_ctx.open_rel: opens scratch file rel<N> on first use. */
static int open_rel(void *arg, wd_relid rel)
{
	char path[4400];
	(void)arg;
	if (find_rel(rel) >= 0)
		return 0;
	if (rh.nrels == FZ_MAX_RELS)
		return err_set(WD_ENOBUFS, "fuzz redo: more than %u relations", FZ_MAX_RELS);
	rel_path(rel, path, sizeof path);
	unlink(path);
	rh.rels[rh.nrels++] = rel;
	return bufmgr_rel_open(rh.pool, rel, path, BM_REL_CREATE);
}

/* redo_ctx.skip_block: pages the harness will not hold. */
static bool skip_block(void *arg, const wal_decoded *rec, unsigned block)
{
	const wal_block_ref *b = &rec->blocks[block];
	(void)arg;
	return b->blk >= FZ_MAX_BLOCKS || (find_rel(b->rel) < 0 && rh.nrels == FZ_MAX_RELS);
}

void fz_redo_begin(uint32_t page_size)
{
	bufmgr_opts o;
	bufmgr_opts_default(&o);
	o.page_size = page_size;
	o.pool_bytes = (uint64_t)BM_MIN_BUFFERS * page_size;
	o.extend_chunk_pages = 1;
	if (bufmgr_create(&o, &rh.pool) != 0) {
		fprintf(stderr, "fuzz: buffer pool: %s\n", wd_last_error());
		abort();
	}
	rh.nrels = 0;
	rh.ctx = (redo_ctx){.pool = rh.pool, .page_size = page_size, .open_rel = open_rel,
			    .skip_block = skip_block};
}

int fz_redo(const wal_decoded *rec)
{
	for (unsigned i = 0; i < WAL_MAX_BLOCKS; i++)
		rh.ctx.action[i] = REDO_NOT_FETCHED;
	return wal_rmgr_redo(&rh.ctx, rec);
}

void fz_redo_end(void)
{
	char path[4400];
	bufmgr_destroy(rh.pool);
	rh.pool = NULL;
	for (unsigned i = 0; i < rh.nrels; i++) {
		rel_path(rh.rels[i], path, sizeof path);
		unlink(path);
	}
	rh.nrels = 0;
}
