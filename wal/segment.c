/*
 * segment.c - the life of WAL segment files: created (header, then zero
 * fill or fallocate, synced, renamed into place, directory synced) ahead of
 * use, opened for writing, the tail cleaned when the log is opened,
 * recycled or removed once a checkpoint no longer needs them. A failed
 * fsync of any of these files or of the WAL directory panics the log (I8).
 * Entry points: wal_seg_prepare_through, wal_seg_prepare_next,
 * wal_seg_open_for_write, wal_seg_start, wal_seg_create_dir,
 * wal_remove_segments_before (wal/README.md, P5 and P6; archiving first,
 * P7, is archive.c's).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/plant.h"
#include "storage/trace.h"
#include "wal/wal_internal.h"

#define ZERO_CHUNK (256u * 1024)

static const uint8_t zeroes[ZERO_CHUNK];

/* DIR/wal/<segno> into out[cap]. */
static int seg_path(wal *w, uint64_t segno, char *out, size_t cap)
{
	return wal_seg_path(out, cap, w->dbdir, segno);
}

/* The segment header of segno for this database. */
static void seg_header(wal *w, uint64_t segno, uint8_t out[WAL_SEG_HEADER_SIZE])
{
	wal_seg_header h = {.version = WAL_FORMAT_VERSION, .seg_size = w->seg_size,
			    .segno = segno, .page_size = w->o.page_size};
	memcpy(h.db_id, w->o.db_id, sizeof h.db_id);
	wal_seg_header_encode(&h, out);
}

/* fdatasync of a segment file; a failure panics the log: the kernel may
 * have dropped the pages, and a second fsync would "succeed" (I8). */
static int seg_sync(wal *w, st_file *f)
{
	int rc = storage_sync(f);
	return rc ? wal_panic(w, rc) : 0;
}

/* fsync of DIR/wal; a failure panics the log, as seg_sync: a lost
 * directory entry of a segment would lose every record in it (I8). */
static int seg_sync_dir(wal *w)
{
	int rc = storage_sync_dir(w->waldir);
	return rc ? wal_panic(w, rc) : 0;
}

/* Writes zeroes over [from, to) of f. */
static int write_zeroes(st_file *f, uint64_t from, uint64_t to)
{
	int rc = 0;
	while (rc == 0 && from < to) {
		uint64_t n = to - from < ZERO_CHUNK ? to - from : ZERO_CHUNK;
		rc = storage_write(f, zeroes, n, from);
		from += n;
	}
	return rc;
}

/* Fills a new segment file: header, then zeroes (init_zero) or allocated
 * space, then fdatasync. */
static int seg_fill(wal *w, st_file *f, uint64_t segno)
{
	uint8_t hdr[WAL_SEG_HEADER_SIZE];
	int rc;
	seg_header(w, segno, hdr);
	if ((rc = storage_write(f, hdr, sizeof hdr, 0)) != 0)
		return rc;
	if (w->o.init_zero)
		rc = write_zeroes(f, WAL_SEG_HEADER_SIZE, w->seg_size);
	else
		rc = storage_allocate(f, 0, w->seg_size);
	return rc ? rc : seg_sync(w, f);
}

/*
 * Creates segment segno (P5 steps 1-3): fill a temporary file, sync it,
 * rename it to the segment's name, sync the directory. A crash leaves
 * either no segment file or a whole one (I7). seg_mx held.
 */
static int seg_create(wal *w, uint64_t segno)
{
	char tmp[4096], path[4096];
	st_file *f = NULL;
	int rc;
	snprintf(tmp, sizeof tmp, "%s/%s", w->waldir, WAL_TMP_SEG);
	if ((rc = seg_path(w, segno, path, sizeof path)) != 0)
		return rc;
	if ((rc = storage_open(tmp, ST_CREATE | ST_TRUNC, &f)) != 0)
		goto out;
	if ((rc = seg_fill(w, f, segno)) != 0)                  /* step 1 */
		goto out;
	rc = storage_close(f);
	f = NULL;
	if (rc != 0 || (rc = storage_rename(tmp, path)) != 0)   /* step 2 */
		goto out;
	storage_crash_point("wal-segment-before-dir-sync");
	/* planted bug: no directory fsync, the new name may vanish in a power loss */
	if (!WD_PLANTED("segment-no-dirsync"))
		rc = seg_sync_dir(w);                            /* step 3 */
out:
	if (f && storage_close(f) != 0)
		TRACE(TR_WAL, "close of %s failed", tmp);
	if (rc == 0) {
		stat_add(&w->st_segs_created, 1);
		TRACE(TR_WAL, "segment %llu created", (unsigned long long)segno);
	}
	return rc;
}

/* Creates the segment after prepared_upto if that is below segno. seg_mx
 * held. Returns 1 if it created one, 0 if none was needed, or an error
 * (WD_EPANIC if an fsync failed or the log was panicked already). */
static int prepare_one(wal *w, uint64_t segno, bool inline_)
{
	uint64_t next = atomic_load(&w->prepared_upto) + 1;
	int rc;
	if (next > segno)
		return 0;
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	if ((rc = seg_create(w, next)) != 0)
		return rc;
	atomic_store(&w->prepared_upto, next);
	if (inline_)
		stat_add(&w->st_segs_inline, 1);
	return 1;
}

/* Prepares every segment up to segno that is not prepared yet. inline_:
 * the caller is writing WAL and found its segment missing (counted). */
int wal_seg_prepare_through(wal *w, uint64_t segno, bool inline_)
{
	int rc;
	pthread_mutex_lock(&w->seg_mx);
	while ((rc = prepare_one(w, segno, inline_)) == 1)
		;
	pthread_mutex_unlock(&w->seg_mx);
	return rc;
}

/* The WAL writer's preparation ahead (P5): at most one segment towards
 * need per call, so that a cycle's flush is never held up by more. A
 * failure is traced and remembered (prepare_error) and the next cycle
 * retries; a failed fsync has panicked the log. Returns true if a segment
 * was created. */
bool wal_seg_prepare_next(wal *w, uint64_t need)
{
	int rc;
	pthread_mutex_lock(&w->seg_mx);
	rc = prepare_one(w, need, false);
	pthread_mutex_unlock(&w->seg_mx);
	if (rc < 0)
		TRACE(TR_WAL, "writer: preparing a segment towards %llu failed: %s",
		      (unsigned long long)need, wd_strerror(rc));
	w->prepare_error = rc < 0 ? rc : 0;
	return rc == 1;
}

/* Opens segment segno for writing, preparing it first if the writer has not
 * got there yet. Write lock held. */
int wal_seg_open_for_write(wal *w, uint64_t segno, st_file **out)
{
	char path[4096];
	int rc;
	if (atomic_load(&w->prepared_upto) < segno &&
	    (rc = wal_seg_prepare_through(w, segno, true)) != 0)
		return rc;
	if ((rc = seg_path(w, segno, path, sizeof path)) != 0)
		return rc;
	return storage_open(path, 0, out);
}

/* Makes DIR/wal, durably. WD_EEXIST if it is there. */
int wal_seg_create_dir(const char *dbdir, const char *waldir)
{
	int rc = storage_mkdir(waldir);
	return rc ? rc : storage_sync_dir(dbdir);
}

/* ---- directory listing --------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The segment numbers present in DIR/wal, ascending, in a malloc'd array. */
static int list_segments(wal *w, uint64_t **out, size_t *n)
{
	DIR *d = opendir(w->waldir);
	struct dirent *e;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	if (!d)
		return err_errno(errno, "WAL: cannot list %s", w->waldir);
	while ((e = readdir(d)) != NULL) {
		char *end;
		uint64_t segno;
		if (strlen(e->d_name) != WAL_SEG_NAME_LEN)
			continue;
		segno = strtoull(e->d_name, &end, 16);
		if (*end)
			continue;
		if (*n == cap) {
			uint64_t *p = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof *p);
			if (!p) {
				closedir(d);
				return err_set(WD_ENOMEM, "WAL: listing %s", w->waldir);
			}
			*out = p;
		}
		(*out)[(*n)++] = segno;
	}
	closedir(d);
	if (*n > 1)
		qsort(*out, *n, sizeof **out, cmp_u64);
	return 0;
}

/* ---- opening: the segment of the end of the log ------------------------- */

/*
 * Checks segment k's header at open. 0: ours; 1: absent, or never finished
 * (bad header, recycled name) and holding no record before off, so it may
 * be recreated; else WD_EFOREIGN / WD_ECORRUPT.
 */
static int check_start_segment(wal *w, uint64_t k, uint64_t off)
{
	uint8_t buf[WAL_SEG_HEADER_SIZE];
	char path[4096];
	wal_seg_header h;
	st_file *f = NULL;
	size_t got = 0;
	int rc;
	if ((rc = seg_path(w, k, path, sizeof path)) != 0)
		return rc;
	if ((rc = storage_open(path, ST_RDONLY, &f)) != 0)
		return rc == WD_ENOENT && off == WAL_SEG_HEADER_SIZE ? 1 : rc;
	rc = storage_read(f, buf, sizeof buf, 0, &got);
	if (storage_close(f) != 0 && rc == 0)
		rc = WD_EIO;
	if (rc != 0)
		return rc;
	if (got < sizeof buf || wal_seg_header_decode(buf, path, &h) != 0 || h.segno != k) {
		if (off == WAL_SEG_HEADER_SIZE)
			return 1;
		return err_set(WD_ECORRUPT, "%s: bad segment header below the end of the log", path);
	}
	if (memcmp(h.db_id, w->o.db_id, sizeof h.db_id) != 0)
		return err_set(WD_EFOREIGN, "%s: WAL segment of another database than the "
			       "control file's", path);
	if (h.seg_size != w->seg_size || h.page_size != w->o.page_size)
		return err_set(WD_ECORRUPT, "%s: segment size %u / page size %u, expected %u / %u",
			       path, h.seg_size, h.page_size, w->seg_size, w->o.page_size);
	return 0;
}

/* Zeroes segment k from off to its end and syncs it, erasing whatever an
 * earlier run left past the end of the valid log (I7). */
static int clean_tail(wal *w, uint64_t k, uint64_t off)
{
	char path[4096];
	st_file *f = NULL;
	int rc, rc2;
	if ((rc = seg_path(w, k, path, sizeof path)) != 0 ||
	    (rc = storage_open(path, 0, &f)) != 0)
		return rc;
	if ((rc = write_zeroes(f, off, w->seg_size)) == 0)
		rc = seg_sync(w, f);
	rc2 = storage_close(f);
	return rc ? rc : rc2;
}

/* Removes every segment after k and a leftover temporary file, then syncs
 * the directory (I7). */
static int remove_later(wal *w, uint64_t k)
{
	char path[4096];
	uint64_t *segs;
	size_t n;
	int rc;
	snprintf(path, sizeof path, "%s/%s", w->waldir, WAL_TMP_SEG);
	if (storage_exists(path) && (rc = storage_unlink(path)) != 0)
		return rc;
	if ((rc = list_segments(w, &segs, &n)) != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (segs[i] <= k || (rc = seg_path(w, segs[i], path, sizeof path)) != 0)
			continue;
		if ((rc = storage_unlink(path)) == 0)
			stat_add(&w->st_segs_removed, 1);
	}
	free(segs);
	return rc ? rc : seg_sync_dir(w);
}

/*
 * Readies the files for appending at start_lsn (a record position): checks
 * or recreates its segment k, zeroes the rest of k, removes every later
 * segment. Afterwards no valid record exists at or past start_lsn (I7).
 */
int wal_seg_start(wal *w, wd_lsn start_lsn)
{
	uint64_t k = wal_segno(start_lsn, w->seg_size), off = start_lsn % w->seg_size;
	bool recreate;
	int rc = check_start_segment(w, k, off);
	if (rc < 0)
		return rc;
	recreate = rc == 1;
	if ((rc = remove_later(w, k)) != 0)
		return rc;
	if (recreate) {
		pthread_mutex_lock(&w->seg_mx);
		rc = seg_create(w, k);
		pthread_mutex_unlock(&w->seg_mx);
	} else {
		rc = clean_tail(w, k, off);
	}
	atomic_store(&w->prepared_upto, k);
	return rc;
}

/* ---- recycling and removal ---------------------------------------------- */

/*
 * Renames old segment `from` to future segment `to` and gives it to's
 * header (P6): rename, directory sync, then the header, synced. Its stale
 * records keep their old self-LSNs, so they never pass for new ones.
 */
static int seg_recycle(wal *w, uint64_t from, uint64_t to)
{
	char src[4096], dst[4096];
	uint8_t hdr[WAL_SEG_HEADER_SIZE];
	st_file *f = NULL;
	int rc, rc2;
	if ((rc = seg_path(w, from, src, sizeof src)) != 0 ||
	    (rc = seg_path(w, to, dst, sizeof dst)) != 0 ||
	    (rc = storage_rename(src, dst)) != 0)
		return rc;
	storage_crash_point("wal-recycle-before-dir-sync");
	if ((rc = seg_sync_dir(w)) != 0 || (rc = storage_open(dst, 0, &f)) != 0)
		return rc;
	seg_header(w, to, hdr);
	if ((rc = storage_write(f, hdr, sizeof hdr, 0)) == 0)
		rc = seg_sync(w, f);
	rc2 = storage_close(f);
	TRACE(TR_WAL, "segment %llu recycled as %llu", (unsigned long long)from,
	      (unsigned long long)to);
	return rc ? rc : rc2;
}

/* Removes old segment segno, durably. */
static int seg_remove(wal *w, uint64_t segno)
{
	char path[4096];
	int rc;
	if ((rc = seg_path(w, segno, path, sizeof path)) != 0 ||
	    (rc = storage_unlink(path)) != 0)
		return rc;
	storage_crash_point("wal-remove-before-dir-sync");
	TRACE(TR_WAL, "segment %llu removed", (unsigned long long)segno);
	return seg_sync_dir(w);
}

/* Recycles old segment segno if fewer than recycle_max future segments
 * are prepared, else removes it. seg_mx held. */
static int seg_retire(wal *w, uint64_t segno)
{
	uint64_t cur = wal_segno(wal_insert_pos(w), w->seg_size);
	uint64_t next = atomic_load(&w->prepared_upto) + 1;
	int rc;
	if (w->o.recycle && next - cur <= w->o.recycle_max) {
		if ((rc = seg_recycle(w, segno, next)) == 0) {
			atomic_store(&w->prepared_upto, next);
			stat_add(&w->st_segs_recycled, 1);
		}
		return rc;
	}
	if ((rc = seg_remove(w, segno)) == 0)
		stat_add(&w->st_segs_removed, 1);
	return rc;
}

/*
 * P6: retires every segment below lsn's and the flushed position's, each
 * archived first when there is an archive (P7, I12): a segment that could
 * not be archived stays, and so does every later one; the archiving error
 * is returned once the segments below it are retired.
 */
int wal_remove_segments_before(wal *w, wd_lsn lsn)
{
	uint64_t limit = wal_segno(lsn, w->seg_size), *segs = NULL;
	wd_lsn flushed = atomic_load(&w->flushed);
	size_t n = 0;
	int rc, arc;
	if (atomic_load(&w->panicked))
		return wal_panic_error(w);
	/* never a segment holding unflushed WAL, nor the one being written */
	if (flushed > 0 && wal_segno(flushed - 1, w->seg_size) < limit)
		limit = wal_segno(flushed - 1, w->seg_size);
	/* I12: only what is durable in the archive goes (not under seg_mx:
	 * a copy must not hold up a writer preparing a segment inline) */
	arc = wal_archive_upto(w, limit);
	if (w->archive_dir && atomic_load(&w->archived_next) < limit)
		limit = atomic_load(&w->archived_next);
	pthread_mutex_lock(&w->seg_mx);
	rc = list_segments(w, &segs, &n);
	for (size_t i = 0; rc == 0 && i < n && segs[i] < limit; i++)
		rc = seg_retire(w, segs[i]);
	pthread_mutex_unlock(&w->seg_mx);
	free(segs);
	return rc ? rc : arc;
}
