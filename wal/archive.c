/*
 * archive.c - WAL archiving (the archive_dir setting; PostgreSQL's
 * archive_mode and archive_command in spirit): every completed segment is
 * copied whole into the archive directory and made durable there before it
 * may be recycled or removed (wal/README.md P7, I12). The archiver thread
 * copies each segment soon after a flush completes it; a checkpoint
 * (wal_remove_segments_before) and wal_close copy whatever is left, in
 * their own thread. Entry points: wal_archive_check_dir, wal_archive_init,
 * wal_archive_start, wal_archive_upto, wal_archive_notify,
 * wal_archive_stop, wal_archive_destroy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/trace.h"
#include "wal/reader.h"
#include "wal/wal_internal.h"

#define ARCH_CHUNK (256u * 1024)  /* bytes copied or compared per read */
#define ARCH_RETRY_MS 1000u       /* the archiver retries a failure this soon */
#define ARCH_IDLE_MS 60000u       /* ... else waits this long for a wake-up */
#define ARCH_TMP_SUFFIX ".tmp"

/* The three names one segment's archiving uses. */
struct arch_paths {
	char live[4096]; /* DIR/wal/<segno> */
	char dst[4096];  /* ARCHIVE/<segno> */
	char tmp[4100];  /* ARCHIVE/<segno>.tmp */
};

int wal_archive_check_dir(const char *dir)
{
	struct stat st;
	if (!dir || !*dir)
		return 0;
	if (stat(dir, &st) != 0)
		return err_errno(errno, "archive_dir %s: the WAL archive must be an existing "
				 "directory", dir);
	if (!S_ISDIR(st.st_mode))
		return err_set(WD_EINVAL, "archive_dir %s: not a directory", dir);
	if (access(dir, W_OK | X_OK) != 0)
		return err_errno(errno, "archive_dir %s: cannot create files in it", dir);
	return 0;
}

/* Locks and, with an archive_dir, its canonical path (so a later chdir of
 * the process does not move it), which must not be DIR/wal itself. */
int wal_archive_init(wal *w)
{
	char real[PATH_MAX], live[PATH_MAX];
	int rc;
	pthread_mutex_init(&w->arch_mx, NULL);
	pthread_mutex_init(&w->archiver_mx, NULL);
	wal_cond_init_monotonic(&w->archiver_cv);
	if (!w->o.archive_dir || !*w->o.archive_dir) {
		w->o.archive_dir = NULL;
		return 0;
	}
	if ((rc = wal_archive_check_dir(w->o.archive_dir)) != 0)
		return rc;
	if (!realpath(w->o.archive_dir, real))
		return err_errno(errno, "archive_dir %s", w->o.archive_dir);
	if (realpath(w->waldir, live) && strcmp(real, live) == 0)
		return err_set(WD_EINVAL, "archive_dir %s is the WAL directory itself",
			       w->o.archive_dir);
	if (!(w->archive_dir = strdup(real)))
		return err_set(WD_ENOMEM, "WAL: out of memory");
	w->o.archive_dir = w->archive_dir; /* the caller's string is not kept */
	return 0;
}

void wal_archive_destroy(wal *w)
{
	pthread_mutex_destroy(&w->arch_mx);
	pthread_mutex_destroy(&w->archiver_mx);
	pthread_cond_destroy(&w->archiver_cv);
	free(w->archive_dir);
	w->archive_dir = NULL;
}

/* ---- one segment (P7 steps 1-7) ------------------------------------------ */

static int arch_paths_of(wal *w, uint64_t segno, struct arch_paths *p)
{
	int rc = wal_seg_path(p->live, sizeof p->live, w->dbdir, segno);
	if (rc == 0)
		rc = wal_seg_path_in(p->dst, sizeof p->dst, w->archive_dir, segno);
	if (rc == 0)
		snprintf(p->tmp, sizeof p->tmp, "%s%s", p->dst, ARCH_TMP_SUFFIX);
	return rc;
}

/* Removes path if it is there, keeping the failure rc and its detail (the
 * unlink's own failure is only traced). Returns rc. */
static int discard(const char *path, int rc)
{
	char detail[512];
	snprintf(detail, sizeof detail, "%s", wd_last_error());
	if (storage_exists(path) && storage_unlink(path) != 0)
		TRACE(TR_WAL, "archive: cannot remove %s: %s", path, wd_last_error());
	return err_set(rc, "%s", detail);
}

/* Step 1: fdatasync of the live segment, so that what is archived is
 * durable in DIR/wal too (a run killed between a segment's last write and
 * its fdatasync leaves it complete in the page cache only). A failure
 * panics the log, as any failed fsync of a segment (I8). */
static int sync_live(wal *w, const char *live)
{
	st_file *f = NULL;
	int rc = storage_open(live, 0, &f);
	if (rc == 0 && (rc = storage_sync(f)) != 0)
		rc = wal_panic(w, rc);
	if (f && storage_close(f) != 0 && rc == 0)
		rc = WD_EIO;
	return rc;
}

/* The live segment's first bytes must be segment segno's header of this
 * log: never archive a file that is not what it is named. */
static int check_header(wal *w, uint64_t segno, const uint8_t *buf, const char *live)
{
	wal_seg_header h;
	int rc = wal_seg_header_decode(buf, live, &h);
	if (rc != 0)
		return rc;
	if (h.segno != segno || h.seg_size != w->seg_size ||
	    memcmp(h.db_id, w->o.db_id, sizeof h.db_id) != 0)
		return err_set(WD_ECORRUPT, "%s: its header names segment %llX of size %u "
			       "(or another database): not archived", live,
			       (unsigned long long)h.segno, h.seg_size);
	return 0;
}

/* Reads n bytes at off of f, all of them (a segment file is seg_size long). */
static int read_full(st_file *f, uint8_t *buf, size_t n, uint64_t off)
{
	size_t got = 0;
	int rc = storage_read(f, buf, n, off, &got);
	if (rc == 0 && got != n)
		rc = err_set(WD_ECORRUPT, "%s: ends at byte %llu, inside the segment",
			     storage_path(f), (unsigned long long)(off + got));
	return rc;
}

/* Step 3: the whole live segment into ARCHIVE/<segno>.tmp (truncated
 * first: a leftover of a crashed attempt is rewritten, never trusted),
 * fdatasynced. A failure is an error, not a panic: the live segment is
 * intact and kept, and the next attempt writes a new file (a file whose
 * fdatasync failed is never synced again, I8's reasoning). */
static int copy_to_tmp(wal *w, uint64_t segno, const struct arch_paths *p, uint8_t *buf)
{
	st_file *src = NULL, *dst = NULL;
	int rc = storage_open(p->live, ST_RDONLY, &src);
	if (rc == 0)
		rc = storage_open(p->tmp, ST_CREATE | ST_TRUNC, &dst);
	for (uint64_t off = 0; rc == 0 && off < w->seg_size; off += ARCH_CHUNK) {
		size_t n = w->seg_size - off < ARCH_CHUNK ? w->seg_size - off : ARCH_CHUNK;
		if ((rc = read_full(src, buf, n, off)) == 0 && off == 0)
			rc = check_header(w, segno, buf, p->live);
		if (rc == 0)
			rc = storage_write(dst, buf, n, off);
	}
	storage_crash_point("wal-archive-before-sync");
	if (rc == 0)
		rc = storage_sync(dst);
	if (src && storage_close(src) != 0 && rc == 0)
		rc = WD_EIO;
	if (dst && storage_close(dst) != 0 && rc == 0)
		rc = WD_EIO;
	return rc ? discard(p->tmp, rc) : 0;
}

/* Steps 3-5: copy, rename into place, fsync the archive directory. */
static int archive_copy(wal *w, uint64_t segno, const struct arch_paths *p, uint8_t *buf)
{
	int rc;
	if ((rc = copy_to_tmp(w, segno, p, buf)) != 0)                  /* step 3 */
		return rc;
	storage_crash_point("wal-archive-before-rename");
	if ((rc = storage_rename(p->tmp, p->dst)) != 0)                 /* step 4 */
		return discard(p->tmp, rc);
	storage_crash_point("wal-archive-before-dir-sync");
	/* step 5; after a failure the name goes again, so that the next
	 * attempt renames a new copy and fsyncs anew instead of trusting a
	 * directory whose fsync failed */
	if ((rc = storage_sync_dir(w->archive_dir)) != 0)
		return discard(p->dst, rc);
	stat_add(&w->st_segs_archived, 1);
	return 0;
}

/* Compares files a and b (already open) chunk by chunk: 0 if equal, else 1
 * with why[] saying where they differ. */
static int compare_files(st_file *a, st_file *b, uint32_t size, uint8_t *x, uint8_t *y,
			 char *why, size_t cap)
{
	uint64_t asize = 0;
	int rc = storage_size(a, &asize);
	if (rc == 0 && asize != size) {
		snprintf(why, cap, "%llu bytes, the segment has %u", (unsigned long long)asize,
			 size);
		return 1;
	}
	for (uint64_t off = 0; rc == 0 && off < size; off += ARCH_CHUNK) {
		size_t n = size - off < ARCH_CHUNK ? size - off : ARCH_CHUNK;
		if ((rc = read_full(a, x, n, off)) != 0 || (rc = read_full(b, y, n, off)) != 0)
			break;
		for (size_t i = 0; i < n; i++)
			if (x[i] != y[i]) {
				snprintf(why, cap, "first difference at byte %llu",
					 (unsigned long long)(off + i));
				return 1;
			}
	}
	return rc;
}

/* Step 2: ARCHIVE/<segno> exists already. Identical to the live segment:
 * an earlier run copied it (and maybe died before its directory fsync):
 * fsync the directory and count it archived. Different: WD_EEXIST naming
 * both files; nothing is overwritten and the segment is kept. */
static int archive_found(wal *w, const struct arch_paths *p, uint8_t *x, uint8_t *y)
{
	st_file *a = NULL, *b = NULL;
	char why[128] = "";
	int rc = storage_open(p->dst, ST_RDONLY, &a);
	if (rc == 0)
		rc = storage_open(p->live, ST_RDONLY, &b);
	if (rc == 0)
		rc = compare_files(a, b, w->seg_size, x, y, why, sizeof why);
	if (a)
		(void)storage_close(a); /* read-only: nothing to lose */
	if (b)
		(void)storage_close(b);
	if (rc == 1)
		return err_set(WD_EEXIST, "WAL archive: %s already exists and differs from %s "
			       "(%s); the segment is kept until the archive is put right",
			       p->dst, p->live, why);
	if (rc == 0 && (rc = storage_sync_dir(w->archive_dir)) != 0)
		return discard(p->dst, rc); /* as in archive_copy */
	if (rc == 0)
		stat_add(&w->st_archive_found, 1);
	return rc;
}

/*
 * Archives segment segno (P7): sync it in DIR/wal, then either find it in
 * the archive already or copy it there. arch_mx held; segno is complete
 * (below flushed) and is the next one to archive. A failure is counted and
 * traced, and its detail says which segment and why.
 */
static int archive_segment(wal *w, uint64_t segno)
{
	struct arch_paths p;
	uint8_t *x = malloc(ARCH_CHUNK), *y = malloc(ARCH_CHUNK);
	int rc = arch_paths_of(w, segno, &p);
	if (rc == 0 && (!x || !y))
		rc = err_set(WD_ENOMEM, "WAL archive: out of memory");
	if (rc == 0)
		rc = sync_live(w, p.live);                                  /* step 1 */
	if (rc == 0)
		rc = storage_exists(p.dst) ? archive_found(w, &p, x, y)     /* step 2 */
					   : archive_copy(w, segno, &p, x); /* steps 3-5 */
	free(x);
	free(y);
	if (rc != 0) {
		stat_add(&w->st_archive_failures, 1);
		rc = err_wrap(rc, "WAL segment %016llX not archived (kept in %s)",
			      (unsigned long long)segno, w->waldir);
		TRACE(TR_WAL, "archive: %s", wd_last_error());
		return rc;
	}
	storage_crash_point("wal-archive-after-dir-sync");
	TRACE(TR_WAL, "archive: segment %llu durable in %s", (unsigned long long)segno,
	      w->archive_dir);
	return 0;
}

/*
 * Archives, in order, every segment from archived_next up to (not
 * including) upto that is complete (wholly below `flushed`), stopping at
 * the first failure; archived_next moves past each one (step 6). No-op
 * without an archive. Errors: archive_segment's, WD_EPANIC.
 */
int wal_archive_upto(wal *w, uint64_t upto)
{
	uint64_t complete = atomic_load(&w->flushed) / w->seg_size;
	int rc = 0;
	if (!w->archive_dir)
		return 0;
	if (upto > complete)
		upto = complete;
	if (atomic_load(&w->archived_next) >= upto)
		return 0; /* done: no waiting for the archiver's current copy */
	pthread_mutex_lock(&w->arch_mx);
	for (uint64_t k = atomic_load(&w->archived_next); rc == 0 && k < upto; k++) {
		if (atomic_load(&w->panicked))
			rc = wal_panic_error(w);
		else if ((rc = archive_segment(w, k)) == 0)
			atomic_store(&w->archived_next, k + 1); /* step 6 (I12) */
	}
	pthread_mutex_unlock(&w->arch_mx);
	return rc;
}

/* Every complete segment, one at a time, until done, failed or (stoppable)
 * the archiver is asked to stop. */
static int archive_completed(wal *w, bool stoppable)
{
	int rc = 0;
	while (rc == 0 && !(stoppable && atomic_load(&w->archiver_stop))) {
		uint64_t next = atomic_load(&w->archived_next);
		if (next >= atomic_load(&w->flushed) / w->seg_size)
			break;
		rc = wal_archive_upto(w, next + 1);
	}
	return rc;
}

/* ---- the archiver thread ------------------------------------------------- */

/* The archiver's sleep, archiver_mx held: after a failure a whole
 * ARCH_RETRY_MS whatever wakes it (every flush would, while the segment
 * stays unarchived), else until a wake-up or ARCH_IDLE_MS. */
static void archiver_sleep(wal *w, bool failed)
{
	struct timespec ts;
	wal_deadline_ms(&ts, failed ? ARCH_RETRY_MS : ARCH_IDLE_MS);
	if (failed) {
		while (!atomic_load(&w->archiver_stop) &&
		       pthread_cond_timedwait(&w->archiver_cv, &w->archiver_mx, &ts) == 0)
			;
	} else if (!atomic_load(&w->archiver_wake)) {
		pthread_cond_timedwait(&w->archiver_cv, &w->archiver_mx, &ts);
	}
}

/*
 * PostgreSQL's archiver, as a thread: sleeps until a flush completes a
 * segment (wal_archive_notify) and archives what is complete. After a
 * failure it tries again ARCH_RETRY_MS later; the segment stays in
 * DIR/wal meanwhile. A round with nothing to do (a spurious or timed
 * wake-up) costs two atomic loads.
 */
static void *archiver_main(void *arg)
{
	wal *w = arg;
	int rc = 0;
	pthread_mutex_lock(&w->archiver_mx);
	while (!atomic_load(&w->archiver_stop)) {
		if (rc != 0 || !atomic_load(&w->archiver_wake))
			archiver_sleep(w, rc != 0);
		if (atomic_load(&w->archiver_stop))
			break;
		atomic_store(&w->archiver_wake, false);
		pthread_mutex_unlock(&w->archiver_mx);
		rc = archive_completed(w, true);
		pthread_mutex_lock(&w->archiver_mx);
	}
	pthread_mutex_unlock(&w->archiver_mx);
	return NULL;
}

/* Wakes the archiver if flushed completes a segment not archived yet:
 * called after every published flush, so cheap when there is nothing to
 * do or a wake-up is pending already. No WAL lock held. */
void wal_archive_notify(wal *w, wd_lsn flushed)
{
	if (!atomic_load(&w->archiver_running) ||
	    flushed / w->seg_size <= atomic_load(&w->archived_next) ||
	    atomic_exchange(&w->archiver_wake, true))
		return;
	pthread_mutex_lock(&w->archiver_mx);
	pthread_cond_signal(&w->archiver_cv);
	pthread_mutex_unlock(&w->archiver_mx);
}

/*
 * After wal_seg_start: archiving resumes at the oldest segment in DIR/wal
 * (everything older was archived, or removed before archiving was on), and
 * the archiver thread starts (none with no_writer_thread: checkpoints and
 * wal_close archive) with a wake-up, for what an earlier run left.
 */
int wal_archive_start(wal *w)
{
	uint64_t oldest;
	int rc, e;
	if (!w->archive_dir)
		return 0;
	if ((rc = wal_oldest_segment_in(w->waldir, &oldest)) != 0)
		return rc;
	atomic_store(&w->archived_next, oldest);
	if (w->o.no_writer_thread)
		return 0;
	atomic_store(&w->archiver_wake, true);
	if ((e = pthread_create(&w->archiver, NULL, archiver_main, w)) != 0)
		return err_errno(e, "WAL: cannot start the archiver thread");
	atomic_store(&w->archiver_running, true);
	return 0;
}

/*
 * At wal_close, after the last flush: stops the archiver thread (it ends
 * the segment it is copying) and archives every segment the flush
 * completed, here. A failure is traced only: the segments stay in DIR/wal
 * and the next open archives them. Not once the log is panicked.
 */
void wal_archive_stop(wal *w)
{
	int rc;
	if (atomic_load(&w->archiver_running)) {
		pthread_mutex_lock(&w->archiver_mx);
		atomic_store(&w->archiver_stop, true);
		pthread_cond_signal(&w->archiver_cv);
		pthread_mutex_unlock(&w->archiver_mx);
		pthread_join(w->archiver, NULL);
		atomic_store(&w->archiver_running, false);
	}
	if (w->archive_dir && !atomic_load(&w->panicked) &&
	    (rc = archive_completed(w, false)) != 0)
		TRACE(TR_WAL, "close: archiving stopped: %s (%s)", wd_last_error(), wd_strerror(rc));
}
