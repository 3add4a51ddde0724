/*
 * test_wal_reader.c - the WAL reader over logs laid out by hand (a small
 * writer below places records into segment files with storage_write, so
 * these tests do not depend on the inserter): every record comes back,
 * across segment boundaries and segment headers, and the log ends at the
 * right LSN for the right reason in every end case of wal/README.md; prev
 * chains; resynchronisation; reading on after the log grows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "storage/bytes.h"
#include "storage/storage.h"
#include "tests/lib/testutil.h"
#include "wal/reader.h"
#include "wal/record.h"
#include "wal/rmgr.h"

#define SEG (64u * 1024)
#define PS 4096u
#define MAXREC 4096

/* ---- a hand-made log ------------------------------------------------------ */

struct tlog {
	char *dir;
	uint8_t db_id[16];
	bool zero_fill;             /* new segments are SEG zero bytes long */
	uint32_t version;           /* format of new segments and records */
	uint64_t pos;               /* usable position of the next record */
	size_t n;
	wd_lsn lsn[MAXREC];         /* every record appended */
	uint32_t len[MAXREC];
	wd_xid xid[MAXREC];
	wal_rec_builder b;
};

static struct tlog *tl;

static int setup(void **state)
{
	(void)state;
	tl = calloc(1, sizeof *tl);
	tl->dir = tu_tmpdir("walreader");
	memset(tl->db_id, 0xA5, sizeof tl->db_id);
	tl->zero_fill = true;
	tl->version = WAL_FORMAT_VERSION;
	{
		char *w = tu_path(tl->dir, WAL_DIR);
		assert_int_equal(storage_mkdir(w), 0);
		free(w);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	walrec_free(&tl->b);
	tu_rmrf(tl->dir);
	free(tl->dir);
	free(tl);
	return 0;
}

static char *seg_path(uint64_t segno)
{
	char *p = malloc(4096);
	assert_int_equal(wal_seg_path(p, 4096, tl->dir, segno), 0);
	return p;
}

/* Writes the header of file segno, saying it is segment hdr_segno of the
 * database id. */
static void write_header(uint64_t segno, uint64_t hdr_segno, const uint8_t id[16])
{
	wal_seg_header h = {tl->version, SEG, {0}, hdr_segno, PS};
	uint8_t buf[WAL_SEG_HEADER_SIZE];
	char *path = seg_path(segno);
	st_file *f;
	memcpy(h.db_id, id, 16);
	wal_seg_header_encode(&h, buf);
	assert_int_equal(storage_open(path, ST_CREATE, &f), 0);
	assert_int_equal(storage_write(f, buf, sizeof buf, 0), 0);
	assert_int_equal(storage_close(f), 0);
	free(path);
}

/* Opens segment segno for writing, creating it (header, zero fill) first. */
static st_file *open_seg(uint64_t segno)
{
	char *path = seg_path(segno);
	st_file *f;
	if (!storage_exists(path)) {
		write_header(segno, segno, tl->db_id);
		assert_int_equal(storage_open(path, 0, &f), 0);
		if (tl->zero_fill)
			assert_int_equal(storage_truncate(f, SEG), 0);
	} else {
		assert_int_equal(storage_open(path, 0, &f), 0);
	}
	free(path);
	return f;
}

/* Writes n bytes at usable position pos, across segment boundaries. */
static void put_bytes(uint64_t pos, const uint8_t *p, size_t n)
{
	uint64_t usable = wal_seg_usable(SEG);
	while (n > 0) {
		uint64_t off = WAL_SEG_HEADER_SIZE + pos % usable;
		size_t k = n < SEG - off ? n : (size_t)(SEG - off);
		st_file *f = open_seg(pos / usable);
		assert_int_equal(storage_write(f, p, k, off), 0);
		assert_int_equal(storage_close(f), 0);
		pos += k;
		p += k;
		n -= k;
	}
}

/* Main data of record i: a pattern derived from i. */
static void pattern(uint8_t *p, uint32_t n, size_t i)
{
	uint64_t s = i * 7919 + 1;
	for (uint32_t k = 0; k < n; k++)
		p[k] = (uint8_t)tu_rand(&s);
}

/* Builds and stamps a NOOP record with main_len bytes at lsn; prev links
 * to the last record of the same xid. Returns the builder's bytes. */
static uint8_t *build(wd_lsn lsn, uint32_t main_len, wd_xid xid, uint32_t *len)
{
	uint8_t *data = malloc(main_len + 1), *rec;
	wd_lsn prev = 0;
	for (size_t i = 0; i < tl->n; i++)
		if (xid && tl->xid[i] == xid)
			prev = tl->lsn[i];
	pattern(data, main_len, tl->n);
	walrec_begin(&tl->b, WAL_RMGR_XLOG, XLOG_NOOP, xid, prev, 0, 0);
	assert_int_equal(walrec_set_main(&tl->b, data, main_len), 0);
	assert_int_equal(walrec_assemble(&tl->b, &rec, len), 0);
	if (tl->version >= 2)
		walrec_stamp_db(rec, *len, lsn, wal_crc_seed(tl->db_id), 0);
	else
		walrec_stamp(rec, *len, lsn);
	free(data);
	return rec;
}

/* Appends a record with main_len bytes of main data; returns its LSN. */
static wd_lsn append(uint32_t main_len, wd_xid xid)
{
	wd_lsn lsn = wal_lsn_from_usable(tl->pos, SEG);
	uint32_t len;
	uint8_t *rec = build(lsn, main_len, xid, &len);
	put_bytes(tl->pos, rec, len);
	assert_true(tl->n < MAXREC);
	tl->lsn[tl->n] = lsn;
	tl->len[tl->n] = len;
	tl->xid[tl->n] = xid;
	tl->n++;
	tl->pos += wal_align(len);
	return lsn;
}

/* Appends one record sized so that `left` bytes of the segment remain
 * after it (left a multiple of 8 below the usable size). */
static void append_leaving(uint32_t left)
{
	uint64_t usable = wal_seg_usable(SEG);
	uint64_t rem = usable - tl->pos % usable;
	if (rem < left + WAL_REC_HEADER_SIZE)
		rem += usable;
	append((uint32_t)(rem - left - WAL_REC_HEADER_SIZE), 0);
}

/* The LSN where the next record would go. */
static wd_lsn next_lsn(void)
{
	return wal_lsn_from_usable(tl->pos, SEG);
}

/* A varied log: small records, large ones spanning two and three
 * segments, a record ending exactly at a segment end, record headers cut
 * by a segment boundary. */
static void varied_log(void)
{
	for (int i = 0; i < 40; i++)
		append((uint32_t)(i * 53) % 700, (wd_xid)(i % 3 + 1));
	append(100000, 4); /* spans at least two segment headers */
	append_leaving(0); /* ends exactly at a segment end */
	append(10, 5);
	append_leaving(16); /* the next header is cut after 16 bytes */
	append(300, 5);
	append_leaving(8);
	append(5000, 6);
	for (int i = 0; i < 20; i++)
		append((uint32_t)(i * 211) % 3000, 7);
}

/* Reads the whole log from its first position, checks every record
 * against what was appended, and returns the end. */
static void read_all(size_t expect_n, wd_lsn *end, wal_end_reason *why)
{
	wal_reader *r;
	const wal_decoded *d;
	size_t i = 0;
	int rc;
	assert_int_equal(wal_reader_open(tl->dir, tl->db_id, SEG, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, 0), 0);
	while ((rc = wal_reader_next(r, &d)) == 0) {
		uint8_t *want = malloc(d->main_len + 1);
		assert_true(i < expect_n);
		assert_true(d->lsn == tl->lsn[i]);
		assert_int_equal(d->tot_len, tl->len[i]);
		assert_true(d->xid == tl->xid[i]);
		pattern(want, d->main_len, i);
		assert_memory_equal(d->main_data, want, d->main_len);
		free(want);
		if (i + 1 < tl->n)
			assert_true(d->end_lsn == tl->lsn[i + 1]);
		i++;
	}
	assert_int_equal(rc, WD_NOTFOUND);
	assert_int_equal(i, expect_n);
	wal_reader_end(r, end, why, NULL);
	wal_reader_close(r);
}

/* ---- end cases ---------------------------------------------------------------- */

static void test_clean_end(void **state)
{
	wd_lsn end;
	wal_end_reason why;
	(void)state;
	varied_log();
	assert_true(tl->pos / wal_seg_usable(SEG) >= 3);
	read_all(tl->n, &end, &why);
	assert_true(end == next_lsn());
	assert_int_equal(why, WAL_END_ZERO);
	assert_true(wal_end_reason_clean(why));
}

/* An empty log: only segment 0's header. */
static void test_empty_log(void **state)
{
	wd_lsn end;
	wal_end_reason why;
	st_file *f;
	(void)state;
	f = open_seg(0);
	assert_int_equal(storage_close(f), 0);
	read_all(0, &end, &why);
	assert_true(end == WAL_SEG_HEADER_SIZE);
	assert_int_equal(why, WAL_END_ZERO);
}

static void test_garbage_tail(void **state)
{
	uint8_t junk[700];
	uint64_t s = 3;
	wd_lsn end;
	wal_end_reason why;
	(void)state;
	varied_log();
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)tu_rand(&s);
	put_bytes(tl->pos, junk, sizeof junk);
	read_all(tl->n, &end, &why);
	assert_true(end == next_lsn());
	assert_true(why == WAL_END_BAD_LENGTH || why == WAL_END_BAD_LSN);
	/* garbage with a plausible length is caught by the self-LSN */
	put_le32(junk, 200);
	put_bytes(tl->pos, junk, sizeof junk);
	read_all(tl->n, &end, &why);
	assert_int_equal(why, WAL_END_BAD_LSN);
}

static void test_bad_length(void **state)
{
	uint8_t b[8] = {0};
	wd_lsn end;
	wal_end_reason why;
	(void)state;
	varied_log();
	put_le32(b, 20);
	put_bytes(tl->pos, b, sizeof b);
	read_all(tl->n, &end, &why);
	assert_true(end == next_lsn());
	assert_int_equal(why, WAL_END_BAD_LENGTH);
}

/* A flipped byte in record k (one spanning segments, too) ends the log at
 * k. */
static void test_bad_crc(void **state)
{
	size_t ks[] = {5, 40};
	(void)state;
	varied_log();
	for (size_t j = 0; j < 2; j++) {
		size_t k = ks[j];
		uint64_t pos = wal_usable_from_lsn(tl->lsn[k], SEG) + tl->len[k] - 3;
		uint8_t byte;
		wd_lsn end;
		wal_end_reason why;
		char *p = seg_path(pos / wal_seg_usable(SEG));
		st_file *f;
		assert_int_equal(storage_open(p, 0, &f), 0);
		assert_int_equal(storage_read(f, &byte, 1, WAL_SEG_HEADER_SIZE +
					      pos % wal_seg_usable(SEG), NULL), 0);
		assert_int_equal(storage_close(f), 0);
		byte ^= 0x10;
		put_bytes(pos, &byte, 1);
		read_all(k, &end, &why);
		assert_true(end == tl->lsn[k]);
		assert_int_equal(why, WAL_END_BAD_CRC);
		byte ^= 0x10;
		put_bytes(pos, &byte, 1);
		free(p);
	}
}

/* A valid record that names an older LSN (as a recycled segment's would)
 * ends the log. */
static void test_stale_record(void **state)
{
	wd_lsn end, at;
	wal_end_reason why;
	uint32_t len;
	uint8_t *rec;
	(void)state;
	varied_log();
	at = next_lsn();
	rec = build(at - 2 * SEG, 64, 0, &len);
	put_bytes(tl->pos, rec, len);
	read_all(tl->n, &end, &why);
	assert_true(end == at);
	assert_int_equal(why, WAL_END_BAD_LSN);
}

/* A recycled segment: the log ends at a segment end and the next file is
 * an old segment renamed. With its header rewritten, its first record
 * names an old LSN; without, its header names the old segment number. */
static void test_recycled_segment(void **state)
{
	uint8_t *old = malloc(SEG);
	char *p0 = seg_path(0), *pn;
	st_file *f;
	uint64_t segno;
	wd_lsn end;
	wal_end_reason why;
	(void)state;
	varied_log();
	append_leaving(0);
	segno = tl->pos / wal_seg_usable(SEG);
	pn = seg_path(segno);
	assert_int_equal(storage_open(p0, ST_RDONLY, &f), 0);
	assert_int_equal(storage_read(f, old, SEG, 0, NULL), 0);
	assert_int_equal(storage_close(f), 0);
	assert_int_equal(storage_open(pn, ST_CREATE, &f), 0);
	assert_int_equal(storage_write(f, old, SEG, 0), 0);
	assert_int_equal(storage_close(f), 0);
	read_all(tl->n, &end, &why);
	assert_true(end == next_lsn() && end == segno * SEG + WAL_SEG_HEADER_SIZE);
	assert_int_equal(why, WAL_END_WRONG_SEGNO);
	write_header(segno, segno, tl->db_id);
	read_all(tl->n, &end, &why);
	assert_true(end == next_lsn());
	assert_int_equal(why, WAL_END_BAD_LSN);
	free(old);
	free(p0);
	free(pn);
}

/* The last record is cut: by the end of a file that is not zero-filled,
 * or because the segment it continues into does not exist. */
static void test_torn_record(void **state)
{
	char *p;
	st_file *f;
	wd_lsn end, last;
	wal_end_reason why;
	(void)state;
	tl->zero_fill = false;
	for (int i = 0; i < 10; i++)
		append(100, 0);
	last = append(3000, 0);
	p = seg_path(0);
	assert_int_equal(storage_open(p, 0, &f), 0);
	assert_int_equal(storage_truncate(f, last % SEG + 1000), 0);
	assert_int_equal(storage_close(f), 0);
	read_all(tl->n - 1, &end, &why);
	assert_true(end == last);
	assert_int_equal(why, WAL_END_TORN);
	/* cut right after the previous record: the file simply ends */
	assert_int_equal(storage_open(p, 0, &f), 0);
	assert_int_equal(storage_truncate(f, last % SEG), 0);
	assert_int_equal(storage_close(f), 0);
	read_all(tl->n - 1, &end, &why);
	assert_int_equal(why, WAL_END_SHORT_SEGMENT);
	free(p);
	/* a record running into a missing segment */
	tl->zero_fill = true;
	tl->n = 0;
	tl->pos = 0;
	tu_rmrf(tl->dir);
	assert_int_equal(storage_mkdir(tl->dir), 0);
	{
		char *w = tu_path(tl->dir, WAL_DIR);
		assert_int_equal(storage_mkdir(w), 0);
		free(w);
	}
	append(1000, 0);
	last = append(100000, 0);
	p = seg_path(1);
	assert_int_equal(storage_unlink(p), 0);
	read_all(1, &end, &why);
	assert_true(end == last);
	assert_int_equal(why, WAL_END_TORN);
	free(p);
}

/* The log fills a segment exactly and the next segment does not exist. */
static void test_missing_segment(void **state)
{
	wd_lsn end;
	wal_end_reason why;
	(void)state;
	varied_log();
	append_leaving(0);
	read_all(tl->n, &end, &why);
	assert_true(end == next_lsn());
	assert_int_equal(end % SEG, WAL_SEG_HEADER_SIZE);
	assert_int_equal(why, WAL_END_MISSING_SEGMENT);
	/* a zero header (file created, header write lost) */
	{
		char *p = seg_path(end / SEG);
		st_file *f;
		assert_int_equal(storage_open(p, ST_CREATE, &f), 0);
		assert_int_equal(storage_truncate(f, SEG), 0);
		assert_int_equal(storage_close(f), 0);
		free(p);
	}
	read_all(tl->n, &end, &why);
	assert_int_equal(why, WAL_END_BAD_SEG_HEADER);
}

/* A segment of another database is an error naming the file, not an end. */
static void test_foreign_segment(void **state)
{
	uint8_t other[16];
	wal_reader *r;
	const wal_decoded *d;
	size_t n = 0;
	char *p;
	int rc;
	(void)state;
	varied_log();
	memset(other, 0x5A, sizeof other);
	write_header(1, 1, other);
	p = seg_path(1);
	assert_int_equal(wal_reader_open(tl->dir, tl->db_id, SEG, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, 0), 0);
	while ((rc = wal_reader_next(r, &d)) == 0)
		n++;
	assert_int_equal(rc, WD_EFOREIGN);
	assert_non_null(strstr(wd_last_error(), p));
	assert_non_null(strstr(wd_last_error(), "another database"));
	assert_true(n > 0 && n < tl->n);
	/* other sizes with our id: also an error */
	write_header(1, 1, tl->db_id);
	wal_reader_close(r);
	assert_int_equal(wal_reader_open(tl->dir, tl->db_id, SEG, 8192, &r), 0);
	assert_int_equal(wal_reader_next(r, &d), WD_ECORRUPT);
	wal_reader_close(r);
	free(p);
}

/* ---- chains, resynchronisation, following ------------------------------- */

/* Following prev pointers from each transaction's last record visits its
 * records newest first. */
static void test_prev_chain(void **state)
{
	wal_reader *r;
	const wal_decoded *d;
	(void)state;
	varied_log();
	assert_int_equal(wal_reader_open(tl->dir, tl->db_id, SEG, PS, &r), 0);
	for (wd_xid x = 1; x <= 7; x++) {
		size_t i = tl->n, seen = 0;
		wd_lsn at = 0;
		while (i-- > 0 && !at)
			if (tl->xid[i] == x)
				at = tl->lsn[i];
		for (i = tl->n; i-- > 0;) {
			if (tl->xid[i] != x)
				continue;
			assert_true(at == tl->lsn[i]);
			assert_int_equal(wal_reader_read_at(r, at, &d), 0);
			assert_true(d->lsn == tl->lsn[i] && d->xid == x);
			at = d->prev;
			seen++;
		}
		assert_true(at == 0 && seen > 0);
	}
	assert_int_equal(wal_reader_read_at(r, tl->lsn[3] + 8, &d), WD_ECORRUPT);
	assert_int_equal(wal_reader_read_at(r, tl->lsn[3] + 4, &d), WD_EINVAL);
	assert_int_equal(wal_reader_read_at(r, 40 * SEG + 64, &d), WD_NOTFOUND);
	/* the forward position is not disturbed by read_at */
	assert_int_equal(wal_reader_seek(r, tl->lsn[10]), 0);
	assert_int_equal(wal_reader_read_at(r, tl->lsn[2], &d), 0);
	assert_int_equal(wal_reader_next(r, &d), 0);
	assert_true(d->lsn == tl->lsn[10]);
	wal_reader_close(r);
}

/* Starting at a segment whose first bytes continue a record of the one
 * before, wal_reader_find lands on the first record that starts there. */
static void test_find_first_record(void **state)
{
	wal_reader *r;
	const wal_decoded *d;
	wd_lsn found;
	size_t first = 0;
	(void)state;
	varied_log();
	while (tl->lsn[first] < SEG)
		first++;
	assert_true(tl->lsn[first] > SEG + WAL_SEG_HEADER_SIZE); /* a tail before it */
	assert_int_equal(wal_reader_open(tl->dir, tl->db_id, SEG, PS, &r), 0);
	assert_int_equal(wal_reader_seek(r, SEG), 0);
	assert_int_equal(wal_reader_next(r, &d), WD_NOTFOUND);
	assert_int_equal(wal_reader_find(r, SEG, &found), 0);
	assert_true(found == tl->lsn[first]);
	assert_int_equal(wal_reader_next(r, &d), 0);
	assert_true(d->lsn == tl->lsn[first]);
	assert_int_equal(wal_reader_find(r, next_lsn(), &found), WD_NOTFOUND);
	wal_reader_close(r);
}

/* After the end, records appended later are read by calling next again
 * (waldump --follow), also into a segment created since. */
static void test_read_on_after_growth(void **state)
{
	wal_reader *r;
	const wal_decoded *d;
	wd_lsn end;
	wal_end_reason why;
	(void)state;
	append(10, 0);
	append_leaving(0);
	assert_int_equal(wal_reader_open(tl->dir, tl->db_id, SEG, PS, &r), 0);
	assert_int_equal(wal_reader_next(r, &d), 0);
	assert_int_equal(wal_reader_next(r, &d), 0);
	assert_int_equal(wal_reader_next(r, &d), WD_NOTFOUND);
	wal_reader_end(r, &end, &why, NULL);
	assert_int_equal(why, WAL_END_MISSING_SEGMENT);
	append(30, 0);
	append(40, 0);
	assert_int_equal(wal_reader_next(r, &d), 0);
	assert_true(d->lsn == tl->lsn[2] && d->main_len == 30);
	assert_int_equal(wal_reader_next(r, &d), 0);
	assert_int_equal(wal_reader_next(r, &d), WD_NOTFOUND);
	wal_reader_end(r, &end, &why, NULL);
	assert_int_equal(why, WAL_END_ZERO);
	append(50, 0);
	assert_int_equal(wal_reader_next(r, &d), 0);
	assert_int_equal(d->main_len, 50);
	wal_reader_close(r);
}

/* Segments of formats 1 (records CRC'd from 0) and 2 are still read by
 * this format-3 reader, and so is a format-2 record appended to a format-1
 * segment after an upgrade; in a format-2 segment a record CRC'd from 0 -
 * as another database's would not be either - is a bad CRC. */
static void test_format_versions(void **state)
{
	wd_lsn end, bad_at;
	wal_end_reason why;
	(void)state;
	tl->version = 1;
	for (int i = 0; i < 30; i++)
		append(700, 1); /* into segment 0 */
	tl->version = 2;
	append(100, 2); /* a format-2 record in the format-1 segment 0 */
	append_leaving(0);
	assert_int_equal(storage_close(open_seg(1)), 0); /* format 2 */
	tl->version = 1; /* a format-1 record in the format-2 segment 1 */
	bad_at = next_lsn();
	append(10, 3);
	read_all(tl->n - 1, &end, &why);
	assert_true(end == bad_at);
	assert_int_equal(why, WAL_END_BAD_CRC);
}

static void test_oldest_segment(void **state)
{
	uint64_t segno = 99;
	(void)state;
	assert_int_equal(wal_oldest_segment(tl->dir, &segno), WD_NOTFOUND);
	varied_log();
	assert_int_equal(wal_oldest_segment(tl->dir, &segno), 0);
	assert_int_equal(segno, 0);
	{
		char *p = seg_path(0);
		assert_int_equal(storage_unlink(p), 0);
		free(p);
	}
	assert_int_equal(wal_oldest_segment(tl->dir, &segno), 0);
	assert_int_equal(segno, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_clean_end),        T(test_empty_log),
		T(test_garbage_tail),     T(test_bad_length),
		T(test_bad_crc),          T(test_stale_record),
		T(test_recycled_segment), T(test_torn_record),
		T(test_missing_segment),  T(test_foreign_segment),
		T(test_prev_chain),       T(test_find_first_record),
		T(test_read_on_after_growth), T(test_oldest_segment),
		T(test_format_versions),
	};
	return cmocka_run_group_tests_name("wal_reader", tests, NULL, NULL);
}
