/*
 * record.h - WAL records in memory: the builder that turns a change into
 * record bytes (walrec_begin .. walrec_assemble), the stamp that gives them
 * their LSN and CRC (walrec_stamp), and the decoder that checks and parses
 * record bytes read back (walrec_decode, walrec_restore_image). The byte
 * layout is the contract of wal/format.h; tables in wal/README.md.
 *
 * Building a record (no locks needed; the builder belongs to one thread):
 *
 *   wal_rec_builder b = {0};          zero-initialised = empty (or
 *                                     walrec_init(&b)); walrec_begin
 *                                     adopts the buffers the thread's last
 *                                     walrec_free kept
 *   walrec_begin(&b, WAL_RMGR_HEAP, HEAP_INSERT, xid, prev, undo, 0);
 *   walrec_add_block(&b, rel, blk, 0, page, page_size, compress, d, n);
 *   walrec_set_main(&b, main, main_len);
 *   walrec_assemble(&b, &rec, &len);  rec: builder-owned, lsn = crc = 0
 *   ... reserve WAL space at lsn ...
 *   walrec_stamp(rec, len, lsn);      writes the lsn and the CRC
 *   ... copy rec into the WAL ...
 *   walrec_free(&b);                  or walrec_begin again to reuse it
 *
 * Everything handed to the builder is copied when it is added, so the
 * caller may release a page latch or a data buffer as soon as the call
 * returns.
 */
#ifndef WALDEN_WAL_RECORD_H
#define WALDEN_WAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"
#include "wal/format.h"

/*
 * Why bytes are not a valid record (the decoder's verdict), and, for the
 * reader, why the log ends where it ends. The decoder gives the first five
 * kinds; the reader adds the rest. Names: wal_end_reason_name().
 */
typedef enum wal_end_reason {
	WAL_END_NONE = 0,        /* valid: the log goes on */
	WAL_END_ZERO,            /* tot_len is 0: nothing was written here */
	WAL_END_BAD_LENGTH,      /* tot_len below the header size or too big */
	WAL_END_BAD_LSN,         /* self-LSN is not this position (stale) */
	WAL_END_BAD_CRC,         /* CRC mismatch */
	WAL_END_BAD_BLOCKS,      /* nblocks > WAL_MAX_BLOCKS, or block headers
				  * and lengths that do not add up to tot_len */
	WAL_END_TORN,            /* the record runs past the available bytes */
	WAL_END_MISSING_SEGMENT, /* the segment file does not exist */
	WAL_END_SHORT_SEGMENT,   /* the segment file ends before the record */
	WAL_END_BAD_SEG_HEADER,  /* segment header zero, torn or damaged */
	WAL_END_WRONG_SEGNO,     /* a recycled segment: header of another segno */
	WAL_END__COUNT
} wal_end_reason;

/* "zero length record (clean end)", "bad CRC", ... */
const char *wal_end_reason_name(wal_end_reason r);

/* true for the ends a normal shutdown or crash leaves (zero, missing or
 * short segment): nothing on disk looks damaged. */
bool wal_end_reason_clean(wal_end_reason r);

/* ---- builder ---------------------------------------------------------- */

/* One block reference being built (internal to record.c; callers only
 * read nblocks and fpw_lsn). */
typedef struct walrec_block {
	wd_relid rel;
	wd_blkno blk;
	uint16_t flags;      /* WAL_BLK_* */
	uint32_t data_len;
	uint32_t image_len;  /* stored bytes */
	uint32_t hole_off;
	uint32_t hole_len;
	size_t payload_off;  /* where its image then data start in payload */
} walrec_block;

/* wal_rec_builder.fpw_lsn when the record changes no page without an
 * image (wal_insert_fpw never refuses it). */
#define WAL_FPW_NONE ((wd_lsn)UINT64_MAX)

/* A new field must be emptied in walrec_init and walrec_free (record.c,
 * empty_fields), which clear every field but blocks[]. */
typedef struct wal_rec_builder {
	uint8_t rmgr, type, flags, nblocks;
	/* The smallest pageLSN of a page this record changes without a
	 * full-page image (callers note it with wal_log_add_block, wal/redo.h,
	 * and pass it to wal_insert_fpw, which refuses the record if the redo
	 * point has passed it: wal/README.md I11). WAL_FPW_NONE after
	 * walrec_begin. */
	wd_lsn fpw_lsn;
	wd_xid xid;
	wd_lsn prev;
	uint64_t undo;
	walrec_block blocks[WAL_MAX_BLOCKS];
	uint32_t hdr_len;    /* bytes of the block headers (short or not) */
	/* buf holds, from offset WAL_REC_PREFIX: every block's image and data
	 * in order, then (at assemble) the main data. The headers are written
	 * backwards into the prefix so the record is contiguous. */
	uint8_t *buf;
	size_t len, cap;     /* bytes used (incl. prefix) and allocated */
	uint8_t *main;       /* copy of the main data */
	uint32_t main_len;
	size_t main_cap;
	uint8_t *zbuf;       /* scratch for compression */
	size_t zcap;
} wal_rec_builder;

/* Room before the payload for the record header and the largest number of
 * block headers. */
#define WAL_REC_PREFIX (WAL_REC_HEADER_SIZE + WAL_MAX_BLOCKS * WAL_BLK_HEADER_SIZE)

/*
 * Makes b empty, as = {0} does, but leaves its block array (320 of its
 * 432 bytes) as it is: walrec_add_block fills each entry it adds, and
 * nothing reads an entry at or past nblocks. For builders made once per
 * page change (heap, btree, undo), where clearing it cost more than the
 * rest of starting a record.
 */
void walrec_init(wal_rec_builder *b);

/*
 * Starts a new record in b, forgetting any earlier one but keeping b's
 * memory. b must be zero-initialised or have been used before. flags are
 * WAL_REC_* (record level), prev the transaction's previous record (0:
 * none), undo an undo pointer (0: none).
 */
void walrec_begin(wal_rec_builder *b, unsigned rmgr, unsigned type, wd_xid xid,
		  wd_lsn prev, uint64_t undo, unsigned flags);

/*
 * Adds a block reference. flags: WAL_BLK_WILL_INIT may be given; the image
 * flags are set here. page (may be NULL: no image) is the page's current
 * image of page_size bytes: if it is a valid slotted page (heap or btree,
 * header bounds consistent) its free hole [lower, upper) is left out; with
 * compress the rest is zlib-compressed if that makes it smaller. data
 * (data_len bytes, may be 0) is the rmgr's per-block redo data. Everything
 * is copied. Errors: WD_EINVAL (more than WAL_MAX_BLOCKS, bad page size,
 * image flags given without a page), WD_ETOOBIG (record would exceed
 * WAL_MAX_RECORD_SIZE), WD_ENOMEM.
 */
int walrec_add_block(wal_rec_builder *b, wd_relid rel, wd_blkno blk,
		     unsigned flags, const uint8_t *page, uint32_t page_size,
		     bool compress, const void *data, uint32_t data_len) WD_MUST_CHECK;

/* Sets (replaces) the record's main data; copied. WD_ETOOBIG, WD_ENOMEM. */
int walrec_set_main(wal_rec_builder *b, const void *data, uint32_t len) WD_MUST_CHECK;

/*
 * Lays the record out contiguously: header (lsn and crc zero), block
 * headers, each block's image and data, main data. *rec points into b's
 * memory and stays valid (and writable, for walrec_stamp) until the next
 * walrec_begin/add_block/set_main/free on b. *len is tot_len (without
 * alignment padding). Errors: WD_ETOOBIG, WD_ENOMEM.
 */
int walrec_assemble(wal_rec_builder *b, uint8_t **rec, uint32_t *len) WD_MUST_CHECK;

/* Ends b: b is then empty (no memory, blocks or main data) and may be
 * reused. Its memory is not freed but kept for the thread's next builder
 * that starts empty (each thread keeps one builder's buffers, up to 256
 * KiB each, freed when the thread exits): a record per page change costs
 * no allocation. Under AddressSanitizer the kept memory is poisoned until
 * adopted, so a record read after its walrec_free is still reported. A
 * child forked from a threaded process inherits the other threads' kept
 * buffers with no thread to free them: such children end with _exit (as
 * walden's tests and crashtest do), or a leak checker at exit reports
 * them. */
void walrec_free(wal_rec_builder *b);

/*
 * Gives an assembled record its position: writes lsn at offset 8 and then
 * the CRC (CRC-32 of bytes [8, tot_len) followed by bytes [0, 4)) at
 * offset 4. The format-1 CRC (seed 0); the inserter uses walrec_stamp_db.
 */
void walrec_stamp(uint8_t *rec, uint32_t tot_len, wd_lsn lsn);

/*
 * The format-2 stamp (wal/README.md "CRC"): if the record has
 * WAL_REC_HORIZON, writes horizon into the first 8 bytes of its main data;
 * then the self-LSN; then the CRC continued from seed (wal_crc_seed of the
 * database id) instead of from 0. Called by the inserter once space is
 * reserved, with horizon = the log's flushed LSN at that moment.
 */
void walrec_stamp_db(uint8_t *rec, uint32_t tot_len, wd_lsn lsn, uint32_t seed,
		     wd_lsn horizon);

/* The seed of a database's record CRCs: CRC-32 of its 16-byte id. */
uint32_t wal_crc_seed(const uint8_t db_id[16]);

/* The CRC that walrec_stamp stores (the record's crc field is not read). */
uint32_t walrec_crc(const uint8_t *rec, uint32_t tot_len);

/* ... and the one walrec_stamp_db stores for seed. */
uint32_t walrec_crc_seeded(const uint8_t *rec, uint32_t tot_len, uint32_t seed);

/* ---- decoder ------------------------------------------------------------ */

/* One decoded block reference; pointers point into the record bytes. */
typedef struct wal_block_ref {
	wd_relid rel;
	wd_blkno blk;
	uint16_t flags;        /* WAL_BLK_* (SHORT: the header was 12 bytes) */
	uint32_t data_len;
	const uint8_t *data;
	uint32_t image_len;    /* stored bytes (0: no image) */
	const uint8_t *image;
	uint32_t hole_off;
	uint32_t hole_len;
} wal_block_ref;

/* The bytes of b's header in its record: 12 short, else 32. */
static inline uint32_t wal_block_header_len(const wal_block_ref *b)
{
	return b->flags & WAL_BLK_SHORT ? WAL_BLK_SHORT_SIZE : WAL_BLK_HEADER_SIZE;
}

/* A checked record. Pointers point into the bytes given to walrec_decode
 * (or the reader's buffer) and live as long as those do. */
typedef struct wal_decoded {
	wd_lsn lsn;            /* its own LSN */
	wd_lsn end_lsn;        /* the LSN after it and its padding: where the
				* next record starts (set by the reader; 0
				* from walrec_decode) */
	wd_lsn prev;           /* the transaction's previous record */
	wd_xid xid;
	uint64_t undo;
	uint32_t tot_len;
	uint8_t rmgr, type, flags, nblocks;
	uint32_t main_len;
	const uint8_t *main_data;
	const uint8_t *raw;    /* the record's tot_len bytes */
	wd_lsn horizon;        /* WAL_REC_HORIZON: the log was durable up to
				* here when the record was inserted; else 0 */
	wal_block_ref blocks[WAL_MAX_BLOCKS];
	wal_end_reason status; /* WAL_END_NONE if valid, else why not */
} wal_decoded;

/*
 * Reads the tot_len field of a record's first bytes and checks it against
 * the limits (>= WAL_REC_HEADER_SIZE, <= WAL_MAX_RECORD_SIZE). Returns
 * WAL_END_NONE, WAL_END_ZERO or WAL_END_BAD_LENGTH. Needs 4 bytes.
 */
wal_end_reason walrec_check_len(const uint8_t *rec, uint32_t *tot_len);

/*
 * Checks and parses the record at rec, which should be the record at LSN
 * expect_lsn; avail bytes are readable there. Checks, in this order: tot_len
 * (zero, bounds), that all of it is available (torn), the self-LSN, the CRC,
 * then the block headers and that the lengths add up to tot_len. Returns 0
 * and fills *out, or WD_ECORRUPT with out->status saying why and a detail
 * (err_set) giving the LSN and the values.
 */
int walrec_decode(const uint8_t *rec, uint32_t avail, wd_lsn expect_lsn,
		  wal_decoded *out) WD_MUST_CHECK;

/* walrec_decode for a CRC seeded with seed (walrec_stamp_db); seed 0 is
 * walrec_decode. A record with WAL_REC_HORIZON and fewer than 8 bytes of
 * main data is WAL_END_BAD_BLOCKS. */
int walrec_decode_seeded(const uint8_t *rec, uint32_t avail, wd_lsn expect_lsn,
			 uint32_t seed, wal_decoded *out) WD_MUST_CHECK;

/*
 * Rebuilds the full page of block reference `block` of d into page
 * (page_size bytes): decompresses the image if needed and puts the hole
 * back as zeroes. Errors: WD_EINVAL (no such block or no image),
 * WD_ECORRUPT (sizes that do not add up to page_size, a hole outside the
 * page, zlib failure).
 */
int walrec_restore_image(const wal_decoded *d, unsigned block, uint8_t *page,
			 uint32_t page_size) WD_MUST_CHECK;

#endif /* WALDEN_WAL_RECORD_H */
