/*
 * format.h - the on-disk format of the write-ahead log: LSNs and segments,
 * the segment header, the record header, block references. The byte tables
 * are in wal/README.md ("Formats"); this header is their code twin.
 *
 * The log is one byte stream addressed by LSN (a 64-bit byte position).
 * It is cut into segment files of wal_segment_size bytes: segment n holds
 * LSNs [n * S, (n + 1) * S) at file offsets [0, S). Each segment begins with
 * a WAL_SEG_HEADER_SIZE-byte header that takes up LSN space but holds no
 * record bytes; records (8-byte aligned) fill the rest and may span into the
 * next segment, continuing right after its header. LSN 0 is never a record
 * (segment 0's header is there), so WD_INVALID_LSN = 0.
 *
 * Position arithmetic uses "usable bytes": the count of record bytes before
 * a position, skipping segment headers. wal_lsn_from_usable and
 * wal_usable_from_lsn convert.
 */
#ifndef WALDEN_WAL_FORMAT_H
#define WALDEN_WAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"

/* Version 2: record CRCs are seeded with the database id and XACT records
 * carry the durable horizon (wal/README.md "Formats"). Version 3: a block
 * reference without an image has a 12-byte short header. Segments of
 * versions 1 and 2 are still read (wal/README.md "Older segments"). */
#define WAL_FORMAT_VERSION 3u
#define WAL_FORMAT_VERSION_MIN 1u
#define WAL_SEG_HEADER_SIZE 64u
#define WAL_SEG_SIZE_MIN (64u * 1024)          /* tests use small segments */
#define WAL_SEG_SIZE_MAX (1024u * 1024 * 1024)
#define WAL_SEG_SIZE_DEFAULT (16u * 1024 * 1024)
#define WAL_ALIGN 8u
#define WAL_DIR "wal"              /* DIR/wal/<16 hex digits of segno> */
#define WAL_SEG_NAME_LEN 16

/* ---- segment header (64 bytes, little-endian) ----
 *  0  8  magic "WALDENWL"
 *  8  4  format version (WAL_FORMAT_VERSION)
 * 12  4  segment size in bytes
 * 16 16  database id (as in the control file)
 * 32  8  segment number (the segment's first LSN / segment size)
 * 40  4  page size of the database (full-page images are this big)
 * 44 16  reserved, zero
 * 60  4  CRC-32 of bytes [0, 60)
 */
#define WSH_MAGIC 0
#define WSH_VERSION 8
#define WSH_SEG_SIZE 12
#define WSH_DB_ID 16
#define WSH_SEGNO 32
#define WSH_PAGE_SIZE 40
#define WSH_CRC 60

typedef struct wal_seg_header {
	uint32_t version;
	uint32_t seg_size;
	uint8_t db_id[16];
	uint64_t segno;
	uint32_t page_size;
} wal_seg_header;

void wal_seg_header_encode(const wal_seg_header *h, uint8_t out[WAL_SEG_HEADER_SIZE]);
/*
 * Decodes and checks a segment header read from file `path`. Errors:
 * WD_ECORRUPT (bad magic or CRC: names the file), WD_EVERSION.
 * Identity checks (db id, segno, sizes) are the caller's.
 */
int wal_seg_header_decode(const uint8_t *buf, const char *path,
			  wal_seg_header *h) WD_MUST_CHECK;

/* ---- record header (48 bytes, little-endian) ----
 *  0  4  tot_len   bytes of the whole record (header + block headers +
 *                  payload), not counting alignment padding after it
 *  4  4  crc       CRC-32 of bytes [8, tot_len) followed by bytes [0, 4)
 *  8  8  lsn       the record's own LSN: a record found at another position
 *                  (stale, from a recycled segment) is not this record
 * 16  8  prev      the previous record of the same transaction (0: none)
 * 24  8  xid       transaction id (0: not in a transaction)
 * 32  1  rmgr      resource manager id (wal/records.def)
 * 33  1  type      record type within the rmgr (wal/records.def)
 * 34  1  nblocks   block references that follow the header
 * 35  1  flags     WAL_REC_* below
 * 36  4  main_len  bytes of main (record-level) data at the end
 * 40  8  undo      undo pointer of the change (0: none)
 * then nblocks block headers (32 bytes each), then for each block in order
 * its image bytes then its data bytes, then main_len bytes of main data.
 */
#define WAL_REC_HEADER_SIZE 48u
#define WRH_TOT_LEN 0
#define WRH_CRC 4
#define WRH_LSN 8
#define WRH_PREV 16
#define WRH_XID 24
#define WRH_RMGR 32
#define WRH_TYPE 33
#define WRH_NBLOCKS 34
#define WRH_FLAGS 35
#define WRH_MAIN_LEN 36
#define WRH_UNDO 40

#define WAL_MAX_BLOCKS 8u                     /* block references per record */
#define WAL_MAX_RECORD_SIZE (64u * 1024 * 1024) /* larger tot_len = bad length */

/* Record flags. */
#define WAL_REC_CLR 0x01u /* compensation log record (redo-only) */
/* The first 8 bytes of the main data are the durable horizon: the end-form
 * LSN up to which the log was durable when the record was inserted, stamped
 * by wal_insert (format version 2; wal/README.md R-I4). */
#define WAL_REC_HORIZON 0x02u
#define WAL_HORIZON_SIZE 8u

/* ---- block reference header (32 bytes; short: 12) ----
 *  0  4  rel        relation id
 *  4  4  blk        block number
 *  8  2  flags      WAL_BLK_* below
 * 10  2  reserved   zero
 * 12  4  data_len   bytes of per-block data (rmgr-defined)
 * 16  4  image_len  bytes of the stored image (after hole removal and
 *                   compression), 0 if no image
 * 20  4  hole_off   offset of the free hole left out of the image
 * 24  4  hole_len   length of that hole (0: none); the image expands to
 *                   page_size = stored (uncompressed) + hole_len bytes
 * 28  4  reserved   zero
 * Short (format 3; flag WAL_BLK_SHORT), for a block without an image and
 * with less than 64 KiB of data - most of them:
 *  0  4  rel, 4  4  blk, 8  2  flags (as above)
 * 10  2  data_len
 */
#define WAL_BLK_HEADER_SIZE 32u
#define WAL_BLK_SHORT_SIZE 12u
#define WAL_BLK_SHORT_DATA_MAX 0xFFFFu
#define WBH_SHORT_DATA_LEN 10
#define WBH_REL 0
#define WBH_BLK 4
#define WBH_FLAGS 8
#define WBH_DATA_LEN 12
#define WBH_IMAGE_LEN 16
#define WBH_HOLE_OFF 20
#define WBH_HOLE_LEN 24

#define WAL_BLK_HAS_IMAGE 0x01u  /* a full-page image follows */
#define WAL_BLK_COMPRESSED 0x02u /* the image is zlib-compressed */
#define WAL_BLK_WILL_INIT 0x04u  /* redo rebuilds the page from nothing */
#define WAL_BLK_SHORT 0x08u      /* the 12-byte header: no image fields */

/* ---- position arithmetic ----
 * seg_size is a power of two (checked wherever one is set or read: wal.c,
 * reader.c), so dividing by it is a shift: a 64-bit division takes tens
 * of cycles, and a WAL insert made several. Only the usable bytes of a
 * segment (seg_size - 64) need a true division. */

static inline uint64_t wal_seg_usable(uint32_t seg_size)
{
	return (uint64_t)seg_size - WAL_SEG_HEADER_SIZE;
}

/* lsn / seg_size and lsn % seg_size. */
static inline uint64_t wal_segno(wd_lsn lsn, uint32_t seg_size)
{
	return lsn >> __builtin_ctz(seg_size);
}

static inline uint64_t wal_seg_offset(wd_lsn lsn, uint32_t seg_size)
{
	return lsn & (seg_size - 1);
}

/* The LSN of usable byte number `pos` (pos 0 is LSN 64 of segment 0). */
static inline wd_lsn wal_lsn_from_usable(uint64_t pos, uint32_t seg_size)
{
	uint64_t u = wal_seg_usable(seg_size), q = pos / u;
	return (q << __builtin_ctz(seg_size)) + WAL_SEG_HEADER_SIZE + (pos - q * u);
}

/* The usable byte number at lsn; an LSN inside a segment header maps to
 * the first usable byte after it. */
static inline uint64_t wal_usable_from_lsn(wd_lsn lsn, uint32_t seg_size)
{
	uint64_t off = wal_seg_offset(lsn, seg_size);
	uint64_t base = wal_segno(lsn, seg_size) * wal_seg_usable(seg_size);
	return base + (off < WAL_SEG_HEADER_SIZE ? 0 : off - WAL_SEG_HEADER_SIZE);
}

static inline uint32_t wal_align(uint32_t len)
{
	return (len + WAL_ALIGN - 1) & ~(WAL_ALIGN - 1);
}

/* Formats "DIR/wal/000000000000002A" for segment segno into out. */
int wal_seg_path(char *out, size_t cap, const char *dbdir,
		 uint64_t segno) WD_MUST_CHECK;

/* Formats "SEGDIR/000000000000002A": segment segno in a directory of
 * segment files (DIR/wal, or a WAL archive, README P7). */
int wal_seg_path_in(char *out, size_t cap, const char *segdir,
		    uint64_t segno) WD_MUST_CHECK;

#endif
