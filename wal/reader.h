/*
 * reader.h - reading the log: walks records forward from an LSN, checking
 * each one, and says where and why the log ends; reads single records at
 * a known LSN to follow a transaction's backward (prev) chain. Used by
 * recovery and by `walden waldump`. Protocol and end rules:
 * wal/README.md, "Reading the log and the end of WAL".
 *
 *   wal_reader *r;
 *   wal_reader_open(dir, cd.db_id, cd.wal_segment_size, cd.page_size, &r);
 *   wal_reader_seek(r, cd.redo_lsn);
 *   while ((rc = wal_reader_next(r, &rec)) == 0)
 *       ... rec is valid until the next call on r ...
 *   if (rc == WD_NOTFOUND) wal_reader_end(r, &end, &why, &detail);
 *   wal_reader_close(r);
 *
 * A reader belongs to one thread. It reads through storage/ only, keeps one
 * segment file open, caches one 64 KiB chunk of it, and reuses one record
 * buffer that grows to the largest record read: memory stays bounded by
 * the largest record (at most WAL_MAX_RECORD_SIZE).
 */
#ifndef WALDEN_WAL_READER_H
#define WALDEN_WAL_READER_H

#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"
#include "wal/format.h"
#include "wal/record.h"

typedef struct wal_reader wal_reader;

/*
 * Opens a reader over DIR/wal of the database whose id is db_id (as in the
 * control file), with its segment and page sizes. Every segment read must
 * carry that id, segment size and page size. Errors: WD_EINVAL (sizes),
 * WD_ENOMEM.
 */
int wal_reader_open(const char *dbdir, const uint8_t db_id[16], uint32_t seg_size,
		    uint32_t page_size, wal_reader **out) WD_MUST_CHECK;

/*
 * wal_reader_open over the segment files of segdir instead of DIR/wal: a
 * WAL archive (README P7), whose files are whole segments named as in
 * DIR/wal. The same checks apply to every segment read.
 */
int wal_reader_open_dir(const char *segdir, const uint8_t db_id[16], uint32_t seg_size,
			uint32_t page_size, wal_reader **out) WD_MUST_CHECK;

/* Closes the reader and frees its memory (NULL is fine). */
void wal_reader_close(wal_reader *r);

/*
 * Sets where the next wal_reader_next reads: lsn must be 8-byte aligned and
 * not inside a segment header, except that a segment's first LSN means its
 * first record position (lsn + WAL_SEG_HEADER_SIZE). Clears the end state.
 * WD_EINVAL otherwise.
 */
int wal_reader_seek(wal_reader *r, wd_lsn lsn) WD_MUST_CHECK;

/* The LSN the next wal_reader_next reads (after a record: its end_lsn). */
wd_lsn wal_reader_position(const wal_reader *r);

/*
 * Reads and checks the record at the reader's position and moves past it.
 * Returns 0 with *rec (valid until the next call on r), WD_NOTFOUND at the
 * end of the log (wal_reader_end says where and why; the position stays
 * there, so calling again later reads records written since: --follow), or
 * an error that is not an end of the log:
 *   WD_EFOREIGN  a segment of another database (detail names the file);
 *   WD_ECORRUPT  a segment with this database's id but another segment or
 *                page size; WD_EVERSION  another WAL format version;
 *   WD_EIO, WD_ENOMEM.
 */
int wal_reader_next(wal_reader *r, const wal_decoded **rec) WD_MUST_CHECK;

/*
 * After wal_reader_next returned WD_NOTFOUND: the LSN where the log ends
 * (the first LSN that does not hold a valid record), the reason and a
 * detail naming the file or values (valid until the next call on r). Any
 * out-pointer may be NULL.
 */
void wal_reader_end(const wal_reader *r, wd_lsn *end_lsn, wal_end_reason *reason,
		    const char **detail);

/*
 * Reads the single record at lsn, for following prev pointers: *rec is
 * valid until the next call on r (it replaces the record last returned by
 * wal_reader_next); the forward position and end state do not change.
 * Errors: WD_EINVAL (lsn not a record position), WD_NOTFOUND (its segment
 * is gone), WD_ECORRUPT (no valid record there: the detail says why), and
 * the errors of wal_reader_next.
 */
int wal_reader_read_at(wal_reader *r, wd_lsn lsn, const wal_decoded **rec) WD_MUST_CHECK;

/*
 * Finds the first valid record at or after lsn (scanning 8-byte positions
 * for a record whose self-LSN and CRC check out, up to WAL_MAX_RECORD_SIZE
 * bytes on) and seeks there. For starting at a segment's first position,
 * where the tail of a record begun in the previous segment may lie. 0 with
 * *found, WD_NOTFOUND if there is none, or an error as wal_reader_next.
 */
int wal_reader_find(wal_reader *r, wd_lsn lsn, wd_lsn *found) WD_MUST_CHECK;

/*
 * R-I4, after the log ended at end: looks at every 8-byte position past end
 * in the segments present (those whose header is ours and names the right
 * segment; up to the newest file) for a valid record whose durable horizon
 * (WAL_REC_HORIZON) is past end - proof that the bytes at end were durable
 * before that record was written, so the end is damage, not a torn tail.
 * Sets *found to the first such record's LSN and *horizon to its horizon,
 * or both to 0. A valid record with no such horizon is skipped whole.
 * Errors: WD_EIO, WD_ENOMEM; other trouble at a position only skips it.
 * Moves the reader: seek before reading on.
 */
int wal_reader_find_durable_after(wal_reader *r, wd_lsn end, wd_lsn *found,
				  wd_lsn *horizon) WD_MUST_CHECK;

/*
 * The lowest segment number present in DIR/wal (files named by 16
 * upper-case hex digits). WD_NOTFOUND if there is none or no DIR/wal.
 */
int wal_oldest_segment(const char *dbdir, uint64_t *segno) WD_MUST_CHECK;

/* The same for a directory of segment files (a WAL archive). */
int wal_oldest_segment_in(const char *segdir, uint64_t *segno) WD_MUST_CHECK;

#endif /* WALDEN_WAL_READER_H */
