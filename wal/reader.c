/*
 * reader.c - the WAL reader (reader.h): wal_reader_open(_dir)/seek/next/
 * end, wal_reader_read_at for prev chains, wal_reader_find to
 * resynchronise, wal_oldest_segment(_in). The end-of-log rules carried out
 * here are numbered in wal/README.md, "Reading the log and the end of WAL"
 * (steps R1..R7).
 *
 * Internal helpers return a negative WD_E* code for an error, 0 when they
 * delivered, or STOPPED when the log cannot go on; r->stop_reason and
 * r->stop_detail then say why.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "wal/reader.h"

#define STOPPED 1
#define SHORT_FILE 2 /* the R-I4 scan: a segment file cut short */
#define READ_CHUNK (64u * 1024) /* <= WAL_SEG_SIZE_MIN: one chunk, one segment */
#define DETAIL_CAP 512

struct wal_reader {
	char *segdir;            /* where the segment files are: DIR/wal */
	uint8_t db_id[16];
	uint32_t seg_size;
	uint32_t page_size;
	uint32_t seed;           /* wal_crc_seed(db_id): format-2 record CRCs */
	st_file *seg;            /* the open segment, header checked; or NULL */
	uint64_t segno;          /* its number */
	uint32_t seg_version;    /* its format version */
	uint32_t first_version;  /* ... of the segment a record starts in */
	char seg_path[4096];     /* its path */
	uint8_t *chunk;          /* READ_CHUNK bytes of seg from chunk_off */
	uint64_t chunk_off;
	size_t chunk_len;        /* valid bytes (fewer at the end of the file) */
	int chunk_valid;
	uint8_t *rec;            /* record buffer, grows to the largest record */
	size_t rec_cap;
	wal_decoded dec;
	wd_lsn pos;              /* LSN of the next record */
	wal_end_reason stop_reason;
	char stop_detail[DETAIL_CAP];
	wd_lsn end_lsn;          /* after WD_NOTFOUND from next */
	wal_end_reason end_reason;
	char end_detail[DETAIL_CAP];
};

/* Records why the log cannot go on; returns STOPPED. */
static int stop(wal_reader *r, wal_end_reason why, const char *fmt, ...)
	WD_PRINTF(3, 4);
static int stop(wal_reader *r, wal_end_reason why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->stop_detail, sizeof r->stop_detail, fmt, ap);
	va_end(ap);
	r->stop_reason = why;
	return STOPPED;
}

/* Forgets the open segment and the cached chunk, so the next read sees the
 * files as they are now (segments created or extended since). */
static void drop_segment(wal_reader *r)
{
	if (r->seg)
		(void)storage_close(r->seg); /* read-only: nothing to lose */
	r->seg = NULL;
	r->chunk_valid = 0;
}

int wal_reader_open(const char *dbdir, const uint8_t db_id[16], uint32_t seg_size,
		    uint32_t page_size, wal_reader **out)
{
	char segdir[4096];
	int n = snprintf(segdir, sizeof segdir, "%s/%s", dbdir, WAL_DIR);
	*out = NULL;
	if (n < 0 || (size_t)n >= sizeof segdir)
		return err_set(WD_ETOOBIG, "WAL directory path too long under %s", dbdir);
	return wal_reader_open_dir(segdir, db_id, seg_size, page_size, out);
}

/* Allocates the reader and its chunk; files are opened lazily (R2). */
int wal_reader_open_dir(const char *segdir, const uint8_t db_id[16], uint32_t seg_size,
			uint32_t page_size, wal_reader **out)
{
	wal_reader *r;
	*out = NULL;
	if (seg_size < WAL_SEG_SIZE_MIN || seg_size > WAL_SEG_SIZE_MAX ||
	    (seg_size & (seg_size - 1)) != 0 || !page_size_valid(page_size))
		return err_set(WD_EINVAL, "WAL segment size %u or page size %u not valid",
			       seg_size, page_size);
	r = calloc(1, sizeof *r);
	if (!r || !(r->segdir = strdup(segdir)) || !(r->chunk = malloc(READ_CHUNK))) {
		wal_reader_close(r);
		return err_set(WD_ENOMEM, "WAL reader: out of memory");
	}
	memcpy(r->db_id, db_id, sizeof r->db_id);
	r->seed = wal_crc_seed(db_id);
	r->seg_size = seg_size;
	r->page_size = page_size;
	r->pos = WAL_SEG_HEADER_SIZE;
	*out = r;
	return 0;
}

void wal_reader_close(wal_reader *r)
{
	if (!r)
		return;
	drop_segment(r);
	free(r->segdir);
	free(r->chunk);
	free(r->rec);
	free(r);
}

/* ---- segments ------------------------------------------------------------ */

/* Formats a database id as 32 hex digits into out[33]. */
static void format_id(const uint8_t id[16], char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* true if n bytes at p are all zero. */
static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Checks the header of segment file f, which should be segment segno of
 * this database (R2). A header not written or damaged, or one of another
 * segment number (a recycled file), ends the log; a file of another
 * database or with other sizes is an error.
 */
static int check_seg_header(wal_reader *r, st_file *f, const char *path, uint64_t segno,
			    uint32_t *version)
{
	uint8_t buf[WAL_SEG_HEADER_SIZE];
	char ours[33], theirs[33];
	wal_seg_header h;
	size_t got = 0;
	int rc = storage_read(f, buf, sizeof buf, 0, &got);
	if (rc != 0)
		return rc;
	if (got < sizeof buf || all_zero(buf, sizeof buf))
		return stop(r, WAL_END_BAD_SEG_HEADER, "%s: segment header not written "
			    "(%zu bytes in the file, header zero)", path, got);
	rc = wal_seg_header_decode(buf, path, &h);
	if (rc == WD_ECORRUPT)
		return stop(r, WAL_END_BAD_SEG_HEADER, "%s", wd_last_error());
	if (rc != 0)
		return rc;
	if (memcmp(h.db_id, r->db_id, sizeof r->db_id) != 0) {
		format_id(h.db_id, theirs);
		format_id(r->db_id, ours);
		return err_set(WD_EFOREIGN, "%s: WAL segment of another database "
			       "(id %s; the control file names %s: one of the two was copied from another "
			       "database)", path, theirs, ours);
	}
	if (h.seg_size != r->seg_size || h.page_size != r->page_size)
		return err_set(WD_ECORRUPT, "%s: segment size %u and page size %u, but the "
			       "database has %u and %u", path, h.seg_size, h.page_size,
			       r->seg_size, r->page_size);
	if (h.segno != segno)
		return stop(r, WAL_END_WRONG_SEGNO, "%s: header names segment %llX "
			    "(a recycled file not yet reused)", path,
			    (unsigned long long)h.segno);
	*version = h.version;
	return 0;
}

/* Makes segment segno the open one (R1, R2). */
static int open_segment(wal_reader *r, uint64_t segno)
{
	char path[sizeof r->seg_path];
	st_file *f = NULL;
	int rc;
	if (r->seg && r->segno == segno)
		return 0;
	drop_segment(r);
	if ((rc = wal_seg_path_in(path, sizeof path, r->segdir, segno)) != 0)
		return rc;
	rc = storage_open(path, ST_RDONLY, &f);
	if (rc == WD_ENOENT)
		return stop(r, WAL_END_MISSING_SEGMENT, "%s does not exist", path);
	if (rc != 0)
		return rc;
	rc = check_seg_header(r, f, path, segno, &r->seg_version);
	if (rc != 0) {
		(void)storage_close(f);
		return rc;
	}
	r->seg = f;
	r->segno = segno;
	memcpy(r->seg_path, path, sizeof path);
	return 0;
}

/* Reads the READ_CHUNK-aligned chunk of the open segment holding off. */
static int fill_chunk(wal_reader *r, uint64_t off)
{
	uint64_t at = off - off % READ_CHUNK;
	size_t got = 0;
	int rc = storage_read(r->seg, r->chunk, READ_CHUNK, at, &got);
	r->chunk_valid = 0;
	if (rc != 0)
		return rc;
	r->chunk_off = at;
	r->chunk_len = got;
	r->chunk_valid = 1;
	return 0;
}

/* Copies n bytes at file offset off of segment segno into dst; *got says
 * how many arrived before a stop. */
static int read_seg_bytes(wal_reader *r, uint64_t segno, uint64_t off, uint8_t *dst,
			  size_t n, size_t *got)
{
	int rc = open_segment(r, segno);
	*got = 0;
	while (rc == 0 && *got < n) {
		uint64_t at = off + *got;
		size_t k;
		if (!r->chunk_valid || at < r->chunk_off || at >= r->chunk_off + READ_CHUNK) {
			if ((rc = fill_chunk(r, at)) != 0)
				break;
		}
		if (at >= r->chunk_off + r->chunk_len)
			return stop(r, WAL_END_SHORT_SEGMENT, "%s ends at byte %llu",
				    r->seg_path,
				    (unsigned long long)(r->chunk_off + r->chunk_len));
		k = r->chunk_off + r->chunk_len - at;
		k = k < n - *got ? k : n - *got;
		memcpy(dst + *got, r->chunk + (at - r->chunk_off), k);
		*got += k;
	}
	return rc;
}

/* Copies n record bytes from usable position pos on, across segment
 * boundaries and past segment headers (R3); *got as read_seg_bytes. */
static int read_bytes(wal_reader *r, uint64_t pos, uint8_t *dst, size_t n, size_t *got)
{
	uint64_t usable = wal_seg_usable(r->seg_size);
	*got = 0;
	while (*got < n) {
		uint64_t p = pos + *got;
		uint64_t off = WAL_SEG_HEADER_SIZE + p % usable;
		size_t k = n - *got, g = 0;
		int rc;
		if (k > r->seg_size - off)
			k = (size_t)(r->seg_size - off);
		rc = read_seg_bytes(r, p / usable, off, dst + *got, k, &g);
		if (*got == 0 && g > 0)
			r->first_version = r->seg_version;
		*got += g;
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- records -------------------------------------------------------------- */

static int reserve_rec(wal_reader *r, size_t need)
{
	size_t n = r->rec_cap ? r->rec_cap : 8192;
	uint8_t *p;
	if (need <= r->rec_cap)
		return 0;
	while (n < need)
		n *= 2;
	if (!(p = realloc(r->rec, n)))
		return err_set(WD_ENOMEM, "WAL reader: cannot allocate %zu bytes", n);
	r->rec = p;
	r->rec_cap = n;
	return 0;
}

/* Turns the stop in progress into a torn record at lsn (R4, R5). */
static int torn(wal_reader *r, wd_lsn lsn, uint32_t tot_len, size_t got)
{
	char why[DETAIL_CAP];
	memcpy(why, r->stop_detail, sizeof why);
	return stop(r, WAL_END_TORN, "record at " LSN_FMT " of %u bytes: only %zu "
		    "available (%s: %s)", LSN_ARGS(lsn), tot_len, got,
		    wal_end_reason_name(r->stop_reason), why);
}

/* Reads the record header at lsn and checks what can be checked before the
 * rest is read: its length and self-LSN (R4). Sets *tot_len. */
static int read_header(wal_reader *r, wd_lsn lsn, uint64_t pos, uint32_t *tot_len)
{
	size_t got = 0;
	wal_end_reason why;
	int rc = read_bytes(r, pos, r->rec, WAL_REC_HEADER_SIZE, &got);
	if (rc < 0 || (rc == STOPPED && got == 0))
		return rc; /* nothing of a record here: the stop stands */
	if (got < 4)
		return torn(r, lsn, 0, got);
	why = walrec_check_len(r->rec, tot_len);
	if (why != WAL_END_NONE)
		return stop(r, why, "record at " LSN_FMT ": tot_len %u", LSN_ARGS(lsn),
			    *tot_len);
	if (got < WAL_REC_HEADER_SIZE)
		return torn(r, lsn, *tot_len, got);
	if (get_le64(r->rec + WRH_LSN) != lsn)
		return stop(r, WAL_END_BAD_LSN, "record at " LSN_FMT " names LSN " LSN_FMT
			    " (a stale record of a recycled segment, or garbage)",
			    LSN_ARGS(lsn), LSN_ARGS(get_le64(r->rec + WRH_LSN)));
	return 0;
}

/* Reads and checks the whole record at lsn into r->rec and *out (R4, R5). */
static int read_record(wal_reader *r, wd_lsn lsn, wal_decoded *out)
{
	uint64_t pos = wal_usable_from_lsn(lsn, r->seg_size);
	uint32_t tot_len = 0;
	size_t got = 0;
	int rc = reserve_rec(r, WAL_REC_HEADER_SIZE);
	if (rc == 0)
		rc = read_header(r, lsn, pos, &tot_len);
	if (rc == 0)
		rc = reserve_rec(r, tot_len);
	if (rc != 0)
		return rc;
	rc = read_bytes(r, pos + WAL_REC_HEADER_SIZE, r->rec + WAL_REC_HEADER_SIZE,
			tot_len - WAL_REC_HEADER_SIZE, &got);
	if (rc == STOPPED)
		return torn(r, lsn, tot_len, got + WAL_REC_HEADER_SIZE);
	if (rc != 0)
		return rc;
	/* format 2: the CRC is seeded with the database id, so another
	 * database's record does not check; a version-1 segment may hold
	 * records of both forms (appended to after an upgrade) */
	rc = walrec_decode_seeded(r->rec, tot_len, lsn, r->seed, out);
	if (rc != 0 && out->status == WAL_END_BAD_CRC && r->first_version < 2)
		rc = walrec_decode(r->rec, tot_len, lsn, out);
	if (rc != 0)
		return stop(r, out->status, "%s", wd_last_error());
	out->end_lsn = wal_lsn_from_usable(pos + wal_align(tot_len), r->seg_size);
	return 0;
}

/* ---- the reader's interface --------------------------------------------- */

/* true if lsn can be a record's position (8-aligned, not in a header). */
static bool record_position(const wal_reader *r, wd_lsn lsn)
{
	return lsn % WAL_ALIGN == 0 && lsn % r->seg_size >= WAL_SEG_HEADER_SIZE;
}

int wal_reader_seek(wal_reader *r, wd_lsn lsn)
{
	if (lsn % r->seg_size == 0)
		lsn += WAL_SEG_HEADER_SIZE;
	if (!record_position(r, lsn))
		return err_set(WD_EINVAL, "LSN " LSN_FMT " is not a record position",
			       LSN_ARGS(lsn));
	r->pos = lsn;
	r->end_reason = WAL_END_NONE;
	return 0;
}

wd_lsn wal_reader_position(const wal_reader *r)
{
	return r->pos;
}

/* R1..R6: one record forward, or the end of the log. */
int wal_reader_next(wal_reader *r, const wal_decoded **rec)
{
	int rc = read_record(r, r->pos, &r->dec);
	*rec = NULL;
	if (rc < 0)
		return rc;
	if (rc == STOPPED) {
		/* R6: the log ends here; forget cached bytes so a later call
		 * sees what has been written since */
		drop_segment(r);
		r->end_lsn = r->pos;
		r->end_reason = r->stop_reason;
		memcpy(r->end_detail, r->stop_detail, sizeof r->end_detail);
		return WD_NOTFOUND;
	}
	r->end_reason = WAL_END_NONE;
	r->pos = r->dec.end_lsn;
	*rec = &r->dec;
	return 0;
}

void wal_reader_end(const wal_reader *r, wd_lsn *end_lsn, wal_end_reason *reason,
		    const char **detail)
{
	if (end_lsn)
		*end_lsn = r->end_lsn;
	if (reason)
		*reason = r->end_reason;
	if (detail)
		*detail = r->end_detail;
}

/* One record at lsn for prev chains; the forward position is untouched. */
int wal_reader_read_at(wal_reader *r, wd_lsn lsn, const wal_decoded **rec)
{
	int rc;
	*rec = NULL;
	if (!record_position(r, lsn))
		return err_set(WD_EINVAL, "LSN " LSN_FMT " is not a record position",
			       LSN_ARGS(lsn));
	rc = read_record(r, lsn, &r->dec);
	if (rc == STOPPED)
		return err_set(r->stop_reason == WAL_END_MISSING_SEGMENT ? WD_NOTFOUND
									 : WD_ECORRUPT,
			       "no valid WAL record at " LSN_FMT ": %s: %s", LSN_ARGS(lsn),
			       wal_end_reason_name(r->stop_reason), r->stop_detail);
	if (rc == 0)
		*rec = &r->dec;
	return rc;
}

/* R7: a candidate position is tried in full only if its header already
 * names it and has a plausible length, so the scan is a cheap compare. */
int wal_reader_find(wal_reader *r, wd_lsn lsn, wd_lsn *found)
{
	uint64_t pos0, pos;
	int rc = wal_reader_seek(r, lsn);
	if (rc != 0)
		return rc;
	pos0 = wal_usable_from_lsn(r->pos, r->seg_size);
	for (pos = pos0; pos < pos0 + WAL_MAX_RECORD_SIZE; pos += WAL_ALIGN) {
		wd_lsn at = wal_lsn_from_usable(pos, r->seg_size);
		uint8_t h[WAL_REC_HEADER_SIZE];
		uint32_t len;
		size_t got = 0;
		rc = read_bytes(r, pos, h, sizeof h, &got);
		if (rc < 0)
			return rc;
		if (got < sizeof h)
			break;
		if (get_le64(h + WRH_LSN) != at || walrec_check_len(h, &len) != WAL_END_NONE)
			continue;
		rc = read_record(r, at, &r->dec);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			r->pos = *found = at;
			return 0;
		}
	}
	return err_set(WD_NOTFOUND, "no valid WAL record at or after " LSN_FMT,
		       LSN_ARGS(lsn));
}

/* The highest segment number in segdir (as wal_oldest_segment_in). */
static int newest_segment_in(const char *segdir, uint64_t *segno);

/* true if rc means the scan cannot go on at all (rather than: nothing
 * valid at this position). */
static bool scan_fatal(int rc)
{
	return rc == WD_EIO || rc == WD_ENOMEM;
}

/* R-I4 scan: from usable position pos on, within the cached chunk, skips
 * every position whose header cannot name it (self-LSN differs: zeroes,
 * stale records, record bodies). Returns the first position left to look
 * at: a candidate, or the first one the chunk does not hold. */
static uint64_t skip_in_chunk(const wal_reader *r, uint64_t pos)
{
	uint64_t usable = wal_seg_usable(r->seg_size), off = WAL_SEG_HEADER_SIZE + pos % usable;
	wd_lsn at = wal_lsn_from_usable(pos, r->seg_size);
	if (!r->seg || r->segno != pos / usable || !r->chunk_valid || off < r->chunk_off)
		return pos;
	/* within one chunk of one segment, LSN and offset move together */
	while (off + WRH_LSN + 8 <= r->chunk_off + r->chunk_len &&
	       get_le64(r->chunk + (off - r->chunk_off) + WRH_LSN) != at) {
		off += WAL_ALIGN;
		at += WAL_ALIGN;
		pos += WAL_ALIGN;
	}
	return pos;
}

/* R-I4 scan: the record at usable position pos, if one of this log is
 * there: 0 with r->dec, STOPPED if not, SHORT_FILE if the segment file
 * ends before pos (cut short), or a fatal error. */
static int candidate_at(wal_reader *r, uint64_t pos)
{
	wd_lsn at = wal_lsn_from_usable(pos, r->seg_size);
	uint8_t h[WRH_LSN + 8];
	uint32_t len;
	size_t got = 0;
	int rc = read_bytes(r, pos, h, sizeof h, &got);
	if (rc < 0 && scan_fatal(rc))
		return rc;
	if (rc == STOPPED && got == 0 && r->stop_reason == WAL_END_SHORT_SEGMENT)
		return SHORT_FILE;
	if (got < sizeof h || get_le64(h + WRH_LSN) != at ||
	    walrec_check_len(h, &len) != WAL_END_NONE)
		return STOPPED;
	rc = read_record(r, at, &r->dec);
	return rc < 0 && !scan_fatal(rc) ? STOPPED : rc;
}

/*
 * R-I4: a candidate is read in full only where its header names the very
 * position with a plausible length (as R7); a valid record without a
 * horizon past end is skipped whole. The scan goes over the segments of
 * this log present after end (others - missing, foreign, renumbered, cut
 * short - are passed over) and stops after the first whole one past end's
 * segment that holds no record of this log at all: the log was never
 * written beyond it (a zero-filled or recycled segment). Stopping there can
 * only miss damage, never make a hole count as damage.
 */
int wal_reader_find_durable_after(wal_reader *r, wd_lsn end, wd_lsn *found,
				  wd_lsn *horizon)
{
	uint64_t usable = wal_seg_usable(r->seg_size), last, pos, cur;
	bool scanned = false, seen = false;
	int rc;
	*found = *horizon = 0;
	if ((rc = newest_segment_in(r->segdir, &last)) != 0)
		return rc == WD_NOTFOUND ? 0 : rc;
	pos = wal_usable_from_lsn(end, r->seg_size) + WAL_ALIGN;
	for (cur = pos / usable; pos / usable <= last;) {
		if (pos / usable != cur) { /* into the next segment */
			if (cur > wal_segno(end, r->seg_size) && scanned && !seen)
				break;
			cur = pos / usable;
			scanned = seen = false;
		}
		rc = open_segment(r, cur);
		if (rc == STOPPED || (rc < 0 && !scan_fatal(rc))) {
			pos = (cur + 1) * usable; /* not a segment of this log */
			continue;
		}
		if (rc < 0)
			return rc;
		scanned = true;
		if ((pos = skip_in_chunk(r, pos)) / usable != cur)
			continue;
		if ((rc = candidate_at(r, pos)) < 0)
			return rc;
		if (rc == SHORT_FILE) {
			scanned = false;
			pos = (cur + 1) * usable;
			continue;
		}
		if (rc == STOPPED) {
			pos += WAL_ALIGN;
			continue;
		}
		seen = true;
		if (r->dec.horizon > end) {
			*found = wal_lsn_from_usable(pos, r->seg_size);
			*horizon = r->dec.horizon;
			return 0;
		}
		pos = wal_usable_from_lsn(r->dec.end_lsn, r->seg_size);
	}
	return 0;
}

int wal_oldest_segment(const char *dbdir, uint64_t *segno)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dbdir, WAL_DIR);
	return wal_oldest_segment_in(path, segno);
}

/* Lists the directory (readdir: directory listing is not file I/O the
 * fault model injects into, so it does not go through storage/). */
static int segment_range_in(const char *path, uint64_t *oldest, uint64_t *newest)
{
	struct dirent *de;
	bool any = false;
	DIR *d;
	if (!(d = opendir(path)))
		return err_set(WD_NOTFOUND, "%s: no WAL directory", path);
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		uint64_t no;
		if (strlen(n) != WAL_SEG_NAME_LEN ||
		    strspn(n, "0123456789ABCDEF") != WAL_SEG_NAME_LEN)
			continue;
		no = strtoull(n, NULL, 16);
		if (!any || no < *oldest)
			*oldest = no;
		if (!any || no > *newest)
			*newest = no;
		any = true;
	}
	closedir(d);
	return any ? 0 : err_set(WD_NOTFOUND, "%s: no WAL segments", path);
}

int wal_oldest_segment_in(const char *path, uint64_t *segno)
{
	uint64_t newest;
	return segment_range_in(path, segno, &newest);
}

static int newest_segment_in(const char *segdir, uint64_t *segno)
{
	uint64_t oldest;
	return segment_range_in(segdir, &oldest, segno);
}
