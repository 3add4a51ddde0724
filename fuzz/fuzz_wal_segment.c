/*
 * fuzz_wal_segment.c - fuzz target "wal_segment": a WAL segment file as
 * recovery and `walden waldump` read it. The segment header check
 * (wal_seg_header_decode, through the reader), then the reader
 * (wal/reader.c) walking its records to the end of the log, each record
 * described by its rmgr and redone on a scratch pool in order (so a record
 * that formats a page is followed by records that change it), prev
 * pointers followed with wal_reader_read_at, and wal_reader_find
 * resynchronising from the first record position.
 *
 * Input: mode byte, then the segment's bytes (segment 0 of a database with
 * 64 KiB segments and 4 KiB pages; padded with zeroes to 64 KiB).
 *   bit 0 (FZ_FIX)  rewrite the header as this database's segment 0 with
 *                   a correct CRC, and give every record that can be
 *                   walked from the first position (tot_len by tot_len)
 *                   its self-LSN and a correct CRC
 *   bit 1           do not pad: the file is as long as the input
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "wal/reader.h"
#include "wal/rmgr.h"

const char fz_target_name[] = "wal_segment";

#define SEG_SIZE WAL_SEG_SIZE_MIN
#define PAGE_SIZE PAGE_SIZE_MIN
#define MAX_RECORDS 256

static const uint8_t db_id[16] = {0x77, 0x61, 0x6c, 0x64, 0x65, 0x6e, 0x66, 0x75,
				  0x7a, 0x7a, 0x64, 0x62, 0x69, 0x64, 0x30, 0x31};

/* FZ_FIX: this database's header, then each record's LSN and CRC. */
static void fix_segment(uint8_t *seg, size_t len)
{
	wal_seg_header h = {.version = WAL_FORMAT_VERSION, .seg_size = SEG_SIZE,
			    .segno = 0, .page_size = PAGE_SIZE};
	size_t pos = WAL_SEG_HEADER_SIZE;
	uint32_t tot, seed = wal_crc_seed(db_id);
	memcpy(h.db_id, db_id, sizeof db_id);
	if (len < WAL_SEG_HEADER_SIZE)
		return;
	wal_seg_header_encode(&h, seg);
	while (pos + WAL_REC_HEADER_SIZE <= len &&
	       walrec_check_len(seg + pos, &tot) == WAL_END_NONE && tot <= len - pos) {
		walrec_stamp_db(seg + pos, tot, (wd_lsn)pos, seed, 0);
		pos += (tot + WAL_ALIGN - 1) / WAL_ALIGN * WAL_ALIGN;
	}
}

/* WALDEN_FUZZ_VERBOSE: each record and its block references on stderr. */
static void trace(const wal_decoded *rec, const char *line)
{
	const char *name = wal_record_name(rec->rmgr, rec->type);
	fprintf(stderr, "lsn 0x%llx %s: %s\n", (unsigned long long)rec->lsn, name ? name : "?",
		line);
	for (unsigned i = 0; i < rec->nblocks; i++)
		fprintf(stderr, "  block %u: rel %u blk %u flags 0x%x data %u image %u\n", i,
			rec->blocks[i].rel, rec->blocks[i].blk, rec->blocks[i].flags,
			rec->blocks[i].data_len, rec->blocks[i].image_len);
}

/* The reader's walk: describe and redo every record, follow prev. */
static void walk(wal_reader *r)
{
	const wal_decoded *rec;
	wd_lsn end, prev, found;
	wal_end_reason why;
	const char *detail;
	char line[512];
	int rc = 0, redo_rc, n = 0;

	fz_redo_begin(PAGE_SIZE);
	while (n++ < MAX_RECORDS) {
		fz_clear_error();
		if ((rc = fz_check_rc(wal_reader_next(r, &rec), 0, "wal_reader_next")) != 0)
			break;
		fz_accepted++;
		wal_rmgr_describe(rec, line, sizeof line);
		prev = rec->prev;
		fz_clear_error();
		if (getenv("WALDEN_FUZZ_VERBOSE"))
			trace(rec, line);
		redo_rc = fz_check_rc(fz_redo(rec), 0, "wal_rmgr_redo");
		if (getenv("WALDEN_FUZZ_VERBOSE"))
			fprintf(stderr, "  -> redo %s\n", redo_rc ? wd_last_error() : "ok");
		if (prev) {
			fz_clear_error();
			fz_check_rc(wal_reader_read_at(r, prev, &rec), 0, "wal_reader_read_at");
		}
	}
	if (rc == WD_NOTFOUND) {
		wal_reader_end(r, &end, &why, &detail);
		if (why == WAL_END_NONE || !detail)
			abort(); /* the end of the log must say why */
	}
	fz_redo_end();
	fz_clear_error();
	fz_check_rc(wal_reader_find(r, WAL_SEG_HEADER_SIZE, &found), 0, "wal_reader_find");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_input in = fz_input_split(data, size);
	size_t len = (in.mode & 2) ? (in.len < SEG_SIZE ? in.len : SEG_SIZE) : SEG_SIZE;
	uint8_t *seg = fz_copy_padded(&in, SEG_SIZE);
	char dir[4200], path[4300], name[64];
	wal_reader *r = NULL;

	fz_register_rmgrs();
	snprintf(dir, sizeof dir, "%s/wal", fz_scratch());
	mkdir(dir, 0700);
	if (in.mode & FZ_FIX)
		fix_segment(seg, len);
	snprintf(name, sizeof name, "wal/%016llX", 0ull);
	fz_write_file(name, seg, len, path, sizeof path);
	fz_clear_error();
	if (fz_check_rc(wal_reader_open_dir(dir, db_id, SEG_SIZE, PAGE_SIZE, &r), 0,
			"wal_reader_open_dir") == 0 &&
	    fz_check_rc(wal_reader_seek(r, WAL_SEG_HEADER_SIZE), 0, "wal_reader_seek") == 0)
		walk(r);
	wal_reader_close(r);
	free(seg);
	return 0;
}
