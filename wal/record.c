/*
 * record.c - building, stamping and decoding WAL records (record.h):
 * walrec_begin/add_block/set_main/assemble/free, walrec_stamp, walrec_decode,
 * walrec_restore_image. Byte layout: wal/format.h and wal/README.md.
 */
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "storage/bytes.h"
#include "storage/crc.h"
#include "storage/page.h"
#include "wal/record.h"

static const char *const end_reason_names[WAL_END__COUNT] = {
	[WAL_END_NONE] = "valid record",
	[WAL_END_ZERO] = "zero length record",
	[WAL_END_BAD_LENGTH] = "bad record length",
	[WAL_END_BAD_LSN] = "wrong self-LSN (stale or garbage record)",
	[WAL_END_BAD_CRC] = "bad CRC",
	[WAL_END_BAD_BLOCKS] = "bad block references",
	[WAL_END_TORN] = "torn record (runs past the available WAL)",
	[WAL_END_MISSING_SEGMENT] = "missing segment",
	[WAL_END_SHORT_SEGMENT] = "segment file ends",
	[WAL_END_BAD_SEG_HEADER] = "bad segment header",
	[WAL_END_WRONG_SEGNO] = "recycled segment (header of another segment number)",
};

const char *wal_end_reason_name(wal_end_reason r)
{
	if ((unsigned)r < WAL_END__COUNT)
		return end_reason_names[r];
	return "unknown end reason";
}

bool wal_end_reason_clean(wal_end_reason r)
{
	return r == WAL_END_ZERO || r == WAL_END_MISSING_SEGMENT ||
	       r == WAL_END_SHORT_SEGMENT;
}

/* ---- builder ------------------------------------------------------------ */

/* grow's allocation, out of line. */
static int grow_slow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 1024;
	uint8_t *p;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n);
	if (!p)
		return err_set(WD_ENOMEM, "WAL record builder: cannot allocate %zu bytes", n);
	*buf = p;
	*cap = n;
	return 0;
}

/* Makes *buf hold at least need bytes, keeping its contents; doubles. A
 * record's buffers are nearly always big enough already (builders reuse
 * their thread's memory): that test is inline, at every step of a
 * record. */
static inline int grow(uint8_t **buf, size_t *cap, size_t need)
{
	return need <= *cap ? 0 : grow_slow(buf, cap, need);
}

/*
 * The memory of the last builder this thread freed. Every change of a page
 * builds one record, usually in a builder of its own that lives for one
 * call (heap_log, undo_append, a btree change): without this each record
 * would allocate and free its buffers, and write its bytes into memory
 * that is cold again. walrec_free parks a builder's buffers here (if the
 * slot is empty and they are not larger than WAL_BUILDER_KEEP); the next
 * builder that starts empty (walrec_begin) adopts them. The slot belongs
 * to its thread: no lock. Its buffers are freed when the thread exits (a
 * pthread key's destructor); the main thread's stay reachable until exit.
 */
#define WAL_BUILDER_KEEP (256u << 10)

struct builder_mem {
	uint8_t *buf, *main, *zbuf;
	size_t cap, main_cap, zcap;
};

static __thread struct builder_mem tls_mem;
static __thread bool tls_mem_keyed; /* the key's value is set: freed at exit */
static pthread_key_t mem_key;
static pthread_once_t mem_once = PTHREAD_ONCE_INIT;
static bool mem_key_ok;

/* Under AddressSanitizer a parked buffer is poisoned until a builder
 * adopts it, so a use of a record after its walrec_free is still reported
 * (without the reuse it would be a use after free). */
#if defined(__SANITIZE_ADDRESS__)
#define WALDEN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WALDEN_ASAN 1
#endif
#endif
#ifdef WALDEN_ASAN
#include <sanitizer/asan_interface.h>
#define PARKED(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define ADOPTED(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define PARKED(p, n) ((void)(p), (void)(n))
#define ADOPTED(p, n) ((void)(p), (void)(n))
#endif

static void mem_release(void *arg)
{
	struct builder_mem *m = arg;
	free(m->buf);
	free(m->main);
	free(m->zbuf);
	memset(m, 0, sizeof *m);
	/* a later destructor of this thread that frees a builder sets the
	 * key again (glibc then runs the destructors once more) */
	tls_mem_keyed = false;
}

static void mem_key_create(void)
{
	mem_key_ok = pthread_key_create(&mem_key, mem_release) == 0;
}

/* Moves *from (and its capacity) to *to if *to is empty; frees it
 * otherwise or if it is larger than WAL_BUILDER_KEEP. */
static void mem_move(uint8_t **to, size_t *to_cap, uint8_t **from, size_t *from_cap)
{
	if (!*to && *from_cap <= WAL_BUILDER_KEEP) {
		*to = *from;
		*to_cap = *from_cap;
	} else {
		free(*from);
	}
	*from = NULL;
	*from_cap = 0;
}

/* One buffer into the thread's slot (or freed), poisoned there. */
static void park_one(uint8_t **slot, size_t *slot_cap, uint8_t **from, size_t *from_cap)
{
	mem_move(slot, slot_cap, from, from_cap);
	if (*slot)
		PARKED(*slot, *slot_cap);
}

/* walrec_free's half: parks b's buffers in the thread's slot. Without the
 * key (pthread_key_create failed) nothing could free them at thread exit,
 * so they are freed at once. */
static void mem_park(wal_rec_builder *b)
{
	struct builder_mem *m = &tls_mem;
	if (!tls_mem_keyed)
		pthread_once(&mem_once, mem_key_create);
	if (!mem_key_ok || (!tls_mem_keyed && pthread_setspecific(mem_key, m) != 0)) {
		free(b->buf);
		free(b->main);
		free(b->zbuf);
		b->buf = b->main = b->zbuf = NULL;
		b->cap = b->main_cap = b->zcap = 0;
		return;
	}
	tls_mem_keyed = true;
	park_one(&m->buf, &m->cap, &b->buf, &b->cap);
	park_one(&m->main, &m->main_cap, &b->main, &b->main_cap);
	park_one(&m->zbuf, &m->zcap, &b->zbuf, &b->zcap);
}

/* walrec_begin's half: an empty builder adopts the thread's parked buffers. */
static void adopt_one(uint8_t **to, size_t *to_cap, uint8_t **slot, size_t *slot_cap)
{
	if (!*to && *slot) {
		ADOPTED(*slot, *slot_cap);
		mem_move(to, to_cap, slot, slot_cap);
	}
}

static void mem_adopt(wal_rec_builder *b)
{
	struct builder_mem *m = &tls_mem;
	adopt_one(&b->buf, &b->cap, &m->buf, &m->cap);
	adopt_one(&b->main, &b->main_cap, &m->main, &m->main_cap);
	adopt_one(&b->zbuf, &b->zcap, &m->zbuf, &m->zcap);
}

void walrec_begin(wal_rec_builder *b, unsigned rmgr, unsigned type, wd_xid xid,
		  wd_lsn prev, uint64_t undo, unsigned flags)
{
	mem_adopt(b);
	b->rmgr = (uint8_t)rmgr;
	b->type = (uint8_t)type;
	b->flags = (uint8_t)flags;
	b->nblocks = 0;
	b->fpw_lsn = WAL_FPW_NONE;
	b->xid = xid;
	b->prev = prev;
	b->undo = undo;
	b->hdr_len = 0;
	b->len = WAL_REC_PREFIX;
	b->main_len = 0;
}

/* Bytes the record would have if assembled now, plus extra more. */
static uint64_t projected_len(const wal_rec_builder *b, uint64_t extra)
{
	return WAL_REC_HEADER_SIZE + (uint64_t)b->hdr_len + (b->len - WAL_REC_PREFIX) +
	       b->main_len + extra;
}

/* Whether bl gets the 12-byte header: no image, data under 64 KiB. */
static bool block_is_short(const walrec_block *bl)
{
	return !(bl->flags & WAL_BLK_HAS_IMAGE) && bl->data_len <= WAL_BLK_SHORT_DATA_MAX;
}

/*
 * The free hole of a page worth leaving out of its image: [lower, upper)
 * of a heap, btree or undo page whose header bounds are consistent (an
 * undo page's bytes past lower are zero: undo README). Pages of other
 * kinds may keep data anywhere, so they are logged whole.
 */
static void page_hole(const uint8_t *page, uint32_t page_size, uint32_t *off,
		      uint32_t *len)
{
	uint32_t lower = page_lower(page), upper = page_upper(page);
	unsigned kind = page_kind(page);
	*off = 0;
	*len = 0;
	if (kind != PAGE_KIND_HEAP && kind != PAGE_KIND_BTREE && kind != PAGE_KIND_UNDO)
		return;
	if (page[PH_VERSION] != PAGE_FORMAT_VERSION || lower < PAGE_HEADER_SIZE ||
	    lower > upper || upper > page_special(page) || page_special(page) > page_size)
		return;
	if (upper > lower) {
		*off = lower;
		*len = upper - lower;
	}
}

/*
 * Replaces the image just copied to buf[at, at + *len) by its zlib
 * compression when that is smaller. Returns 0 (also when not smaller) or
 * WD_ENOMEM.
 */
static int compress_image(wal_rec_builder *b, size_t at, uint32_t *len, bool *done)
{
	uLongf zlen = compressBound(*len);
	int rc = grow(&b->zbuf, &b->zcap, zlen);
	*done = false;
	if (rc != 0)
		return rc;
	if (compress2(b->zbuf, &zlen, b->buf + at, *len, Z_BEST_SPEED) != Z_OK)
		return err_set(WD_ENOMEM, "WAL record builder: zlib compress2 failed");
	if (zlen < *len) {
		memcpy(b->buf + at, b->zbuf, zlen);
		*len = (uint32_t)zlen;
		*done = true;
	}
	return 0;
}

/* Appends page minus its hole (and compressed if asked) to b->buf and
 * records the image in blk. */
static int add_image(wal_rec_builder *b, walrec_block *blk, const uint8_t *page,
		     uint32_t page_size, bool compress)
{
	uint32_t off, hole, len;
	bool compressed = false;
	int rc;
	page_hole(page, page_size, &off, &hole);
	len = page_size - hole;
	rc = grow(&b->buf, &b->cap, b->len + len);
	if (rc != 0)
		return rc;
	memcpy(b->buf + b->len, page, hole ? off : page_size);
	if (hole)
		memcpy(b->buf + b->len + off, page + off + hole, page_size - off - hole);
	if (compress && (rc = compress_image(b, b->len, &len, &compressed)) != 0)
		return rc;
	blk->flags |= WAL_BLK_HAS_IMAGE | (compressed ? WAL_BLK_COMPRESSED : 0);
	blk->image_len = len;
	blk->hole_off = off;
	blk->hole_len = hole;
	b->len += len;
	return 0;
}

/* Adds block reference nblocks: its header fields now, its image (hole left
 * out, maybe compressed) and data appended to the payload (record.h). */
int walrec_add_block(wal_rec_builder *b, wd_relid rel, wd_blkno blk,
		     unsigned flags, const uint8_t *page, uint32_t page_size,
		     bool compress, const void *data, uint32_t data_len)
{
	walrec_block *bl = &b->blocks[b->nblocks];
	uint64_t worst = WAL_BLK_HEADER_SIZE + (page ? (uint64_t)page_size : 0) + data_len;
	int rc;
	if (b->nblocks >= WAL_MAX_BLOCKS)
		return err_set(WD_EINVAL, "WAL record: more than %u block references",
			       WAL_MAX_BLOCKS);
	if ((flags & ~WAL_BLK_WILL_INIT) != 0 || (page && !page_size_valid(page_size)))
		return err_set(WD_EINVAL, "WAL record: bad block flags 0x%x or page size %u",
			       flags, page_size);
	if (projected_len(b, worst) > WAL_MAX_RECORD_SIZE)
		return err_set(WD_ETOOBIG, "WAL record: more than %u bytes",
			       WAL_MAX_RECORD_SIZE);
	memset(bl, 0, sizeof *bl);
	bl->rel = rel;
	bl->blk = blk;
	bl->flags = (uint16_t)flags;
	bl->payload_off = b->len;
	if (page && (rc = add_image(b, bl, page, page_size, compress)) != 0)
		return rc;
	if ((rc = grow(&b->buf, &b->cap, b->len + data_len)) != 0)
		return rc;
	if (data_len)
		memcpy(b->buf + b->len, data, data_len);
	b->len += data_len;
	bl->data_len = data_len;
	b->hdr_len += block_is_short(bl) ? WAL_BLK_SHORT_SIZE : WAL_BLK_HEADER_SIZE;
	b->nblocks++;
	return 0;
}

/* Copies the main data aside; it goes last, at assemble time. */
int walrec_set_main(wal_rec_builder *b, const void *data, uint32_t len)
{
	int rc;
	b->main_len = 0;
	if (projected_len(b, len) > WAL_MAX_RECORD_SIZE)
		return err_set(WD_ETOOBIG, "WAL record: main data of %u bytes is too big", len);
	if ((rc = grow(&b->main, &b->main_cap, len)) != 0)
		return rc;
	if (len)
		memcpy(b->main, data, len);
	b->main_len = len;
	return 0;
}

/* Encodes bl's header at p, short if it can be; returns its length. */
static uint32_t put_block_header(uint8_t *p, const walrec_block *bl)
{
	put_le32(p + WBH_REL, bl->rel);
	put_le32(p + WBH_BLK, bl->blk);
	if (block_is_short(bl)) {
		put_le16(p + WBH_FLAGS, (uint16_t)(bl->flags | WAL_BLK_SHORT));
		put_le16(p + WBH_SHORT_DATA_LEN, (uint16_t)bl->data_len);
		return WAL_BLK_SHORT_SIZE;
	}
	memset(p + WBH_FLAGS, 0, WAL_BLK_HEADER_SIZE - WBH_FLAGS);
	put_le16(p + WBH_FLAGS, bl->flags);
	put_le32(p + WBH_DATA_LEN, bl->data_len);
	put_le32(p + WBH_IMAGE_LEN, bl->image_len);
	put_le32(p + WBH_HOLE_OFF, bl->hole_off);
	put_le32(p + WBH_HOLE_LEN, bl->hole_len);
	return WAL_BLK_HEADER_SIZE;
}

/* Encodes the record header at p (lsn and crc zero). */
static void put_record_header(uint8_t *p, const wal_rec_builder *b, uint32_t tot_len)
{
	memset(p, 0, WAL_REC_HEADER_SIZE);
	put_le32(p + WRH_TOT_LEN, tot_len);
	put_le64(p + WRH_PREV, b->prev);
	put_le64(p + WRH_XID, b->xid);
	p[WRH_RMGR] = b->rmgr;
	p[WRH_TYPE] = b->type;
	p[WRH_NBLOCKS] = b->nblocks;
	p[WRH_FLAGS] = b->flags;
	put_le32(p + WRH_MAIN_LEN, b->main_len);
	put_le64(p + WRH_UNDO, b->undo);
}

/* Appends the main data and writes the block headers and the record header
 * backwards into the prefix, so the record is contiguous without a copy of
 * the payload. lsn and crc stay zero until walrec_stamp. */
int walrec_assemble(wal_rec_builder *b, uint8_t **rec, uint32_t *len)
{
	size_t start = WAL_REC_PREFIX - WAL_REC_HEADER_SIZE - b->hdr_len, at;
	uint64_t tot = projected_len(b, 0);
	int rc;
	if (tot > WAL_MAX_RECORD_SIZE)
		return err_set(WD_ETOOBIG, "WAL record: %llu bytes", (unsigned long long)tot);
	if ((rc = grow(&b->buf, &b->cap, b->len + b->main_len)) != 0)
		return rc;
	if (b->main_len)
		memcpy(b->buf + b->len, b->main, b->main_len);
	put_record_header(b->buf + start, b, (uint32_t)tot);
	at = start + WAL_REC_HEADER_SIZE;
	for (unsigned i = 0; i < b->nblocks; i++)
		at += put_block_header(b->buf + at, &b->blocks[i]);
	assert(at == WAL_REC_PREFIX);
	*rec = b->buf + start;
	*len = (uint32_t)tot;
	return 0;
}

/* Every field but the block array zero (record.h: walrec_init). */
static void empty_fields(wal_rec_builder *b)
{
	b->rmgr = b->type = b->flags = b->nblocks = 0;
	b->fpw_lsn = 0;
	b->xid = 0;
	b->prev = 0;
	b->undo = 0;
	b->hdr_len = 0;
	b->len = 0;
	b->main_len = 0;
}

void walrec_init(wal_rec_builder *b)
{
	empty_fields(b);
	b->buf = b->main = b->zbuf = NULL;
	b->cap = b->main_cap = b->zcap = 0;
}

/* Parks the memory (mem_park leaves no pointer behind) and empties the
 * record; the block array stays as it is, as in walrec_init. Clearing it
 * was a tenth of the instructions of logging a small record. */
void walrec_free(wal_rec_builder *b)
{
	mem_park(b);
	empty_fields(b);
}

/* CRC-32 of [8, tot_len) then [0, 4): the length, self-LSN and everything
 * after it, with the crc field itself left out. */
uint32_t walrec_crc(const uint8_t *rec, uint32_t tot_len)
{
	return walrec_crc_seeded(rec, tot_len, 0);
}

/* Format 2: the same bytes, the CRC continued from the database's seed, so
 * a well-formed record of another database does not check here. */
uint32_t walrec_crc_seeded(const uint8_t *rec, uint32_t tot_len, uint32_t seed)
{
	uint32_t crc = storage_crc32(seed, rec + WRH_LSN, tot_len - WRH_LSN);
	return storage_crc32(crc, rec, WRH_CRC);
}

uint32_t wal_crc_seed(const uint8_t db_id[16])
{
	return storage_crc32(0, db_id, 16);
}

/* The horizon goes in before the CRC is computed: the CRC covers it. */
void walrec_stamp_db(uint8_t *rec, uint32_t tot_len, wd_lsn lsn, uint32_t seed,
		     wd_lsn horizon)
{
	uint32_t main_len = get_le32(rec + WRH_MAIN_LEN);
	if ((rec[WRH_FLAGS] & WAL_REC_HORIZON) && main_len >= WAL_HORIZON_SIZE &&
	    main_len <= tot_len - WAL_REC_HEADER_SIZE) /* a bad length: the decoder says so */
		put_le64(rec + tot_len - main_len, horizon);
	put_le64(rec + WRH_LSN, lsn);
	put_le32(rec + WRH_CRC, walrec_crc_seeded(rec, tot_len, seed));
}

/* The self-LSN first: the CRC covers it. */
void walrec_stamp(uint8_t *rec, uint32_t tot_len, wd_lsn lsn)
{
	put_le64(rec + WRH_LSN, lsn);
	put_le32(rec + WRH_CRC, walrec_crc(rec, tot_len));
}

/* ---- decoder ------------------------------------------------------------ */

wal_end_reason walrec_check_len(const uint8_t *rec, uint32_t *tot_len)
{
	*tot_len = get_le32(rec + WRH_TOT_LEN);
	if (*tot_len == 0)
		return WAL_END_ZERO;
	if (*tot_len < WAL_REC_HEADER_SIZE || *tot_len > WAL_MAX_RECORD_SIZE)
		return WAL_END_BAD_LENGTH;
	return WAL_END_NONE;
}

/* Sets out->status to why and returns WD_ECORRUPT with the detail
 * "WAL record at <lsn>: <what>". */
static int bad(wal_decoded *out, wal_end_reason why, const char *fmt, ...)
	WD_PRINTF(3, 4);
static int bad(wal_decoded *out, wal_end_reason why, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	out->status = why;
	return err_set(WD_ECORRUPT, "WAL record at " LSN_FMT ": %s", LSN_ARGS(out->lsn),
		       what);
}

/* Parses the block header at p into bl; false if its flags, reserved
 * fields or image fields are inconsistent. A short one (12 bytes) has no
 * image; the caller checked that the header's bytes are there. */
static bool parse_block(const uint8_t *p, wal_block_ref *bl)
{
	bl->rel = get_le32(p + WBH_REL);
	bl->blk = get_le32(p + WBH_BLK);
	bl->flags = get_le16(p + WBH_FLAGS);
	if (bl->flags & WAL_BLK_SHORT) {
		bl->data_len = get_le16(p + WBH_SHORT_DATA_LEN);
		bl->image_len = bl->hole_off = bl->hole_len = 0;
		return !(bl->flags & ~(WAL_BLK_SHORT | WAL_BLK_WILL_INIT));
	}
	bl->data_len = get_le32(p + WBH_DATA_LEN);
	bl->image_len = get_le32(p + WBH_IMAGE_LEN);
	bl->hole_off = get_le32(p + WBH_HOLE_OFF);
	bl->hole_len = get_le32(p + WBH_HOLE_LEN);
	if (bl->flags & ~(WAL_BLK_HAS_IMAGE | WAL_BLK_COMPRESSED | WAL_BLK_WILL_INIT))
		return false;
	if (get_le16(p + 10) != 0 || get_le32(p + 28) != 0)
		return false;
	if (!(bl->flags & WAL_BLK_HAS_IMAGE))
		return bl->image_len == 0 && bl->hole_off == 0 && bl->hole_len == 0 &&
		       !(bl->flags & WAL_BLK_COMPRESSED);
	return bl->image_len > 0 && bl->hole_off <= PAGE_SIZE_MAX &&
	       bl->hole_len <= PAGE_SIZE_MAX;
}

/* Parses the block headers (short or not) and points blocks and main data
 * into rec, checking that every length adds up to tot_len exactly. */
static int parse_body(const uint8_t *rec, wal_decoded *out)
{
	uint64_t pos = WAL_REC_HEADER_SIZE;
	if (out->nblocks > WAL_MAX_BLOCKS)
		return bad(out, WAL_END_BAD_BLOCKS, "%u block references (at most %u)",
			   out->nblocks, WAL_MAX_BLOCKS);
	for (unsigned i = 0; i < out->nblocks; i++) {
		wal_block_ref *bl = &out->blocks[i];
		/* the flags say how long the header is: read them only once the
		 * short form's bytes are known to be there */
		if (pos + WAL_BLK_SHORT_SIZE > out->tot_len ||
		    (!(get_le16(rec + pos + WBH_FLAGS) & WAL_BLK_SHORT) &&
		     pos + WAL_BLK_HEADER_SIZE > out->tot_len))
			return bad(out, WAL_END_BAD_BLOCKS, "block headers exceed tot_len %u",
				   out->tot_len);
		if (!parse_block(rec + pos, bl))
			return bad(out, WAL_END_BAD_BLOCKS, "block %u: inconsistent header "
				   "(flags 0x%x, image %u, hole %u+%u)", i, bl->flags,
				   bl->image_len, bl->hole_off, bl->hole_len);
		pos += wal_block_header_len(bl);
	}
	for (unsigned i = 0; i < out->nblocks; i++) {
		wal_block_ref *bl = &out->blocks[i];
		bl->image = bl->image_len ? rec + pos : NULL;
		pos += bl->image_len;
		bl->data = rec + pos;
		pos += bl->data_len;
		if (pos > out->tot_len)
			return bad(out, WAL_END_BAD_BLOCKS, "block %u: lengths exceed tot_len %u",
				   i, out->tot_len);
	}
	out->main_data = rec + pos;
	if (pos + out->main_len != out->tot_len)
		return bad(out, WAL_END_BAD_BLOCKS, "lengths add up to %llu, not tot_len %u",
			   (unsigned long long)(pos + out->main_len), out->tot_len);
	return 0;
}

/* Fills the fixed header fields of out from rec. */
static void parse_header(const uint8_t *rec, wal_decoded *out)
{
	out->tot_len = get_le32(rec + WRH_TOT_LEN);
	out->prev = get_le64(rec + WRH_PREV);
	out->xid = get_le64(rec + WRH_XID);
	out->rmgr = rec[WRH_RMGR];
	out->type = rec[WRH_TYPE];
	out->nblocks = rec[WRH_NBLOCKS];
	out->flags = rec[WRH_FLAGS];
	out->main_len = get_le32(rec + WRH_MAIN_LEN);
	out->undo = get_le64(rec + WRH_UNDO);
	out->raw = rec;
}

/* R-I1 (README.reader.md): length, completeness, self-LSN, CRC, structure,
 * in that order, so that the cheapest check that can fail decides. */
int walrec_decode(const uint8_t *rec, uint32_t avail, wd_lsn expect_lsn,
		  wal_decoded *out)
{
	return walrec_decode_seeded(rec, avail, expect_lsn, 0, out);
}

int walrec_decode_seeded(const uint8_t *rec, uint32_t avail, wd_lsn expect_lsn,
			 uint32_t seed, wal_decoded *out)
{
	uint32_t tot_len, stored, computed;
	wal_end_reason why;
	memset(out, 0, sizeof *out);
	out->lsn = expect_lsn;
	if (avail < 4)
		return bad(out, WAL_END_TORN, "only %u bytes", avail);
	why = walrec_check_len(rec, &tot_len);
	if (why != WAL_END_NONE)
		return bad(out, why, "tot_len %u (from %u to %u allowed)", tot_len,
			   WAL_REC_HEADER_SIZE, WAL_MAX_RECORD_SIZE);
	if (avail < tot_len)
		return bad(out, WAL_END_TORN, "tot_len %u, only %u bytes", tot_len, avail);
	if (get_le64(rec + WRH_LSN) != expect_lsn)
		return bad(out, WAL_END_BAD_LSN, "it names LSN " LSN_FMT " (stale or garbage)",
			   LSN_ARGS(get_le64(rec + WRH_LSN)));
	stored = get_le32(rec + WRH_CRC);
	computed = walrec_crc_seeded(rec, tot_len, seed);
	if (stored != computed)
		return bad(out, WAL_END_BAD_CRC, "CRC mismatch (stored 0x%08x, computed 0x%08x)",
			   stored, computed);
	parse_header(rec, out);
	if (parse_body(rec, out) != 0)
		return WD_ECORRUPT;
	if (out->flags & WAL_REC_HORIZON) {
		if (out->main_len < WAL_HORIZON_SIZE)
			return bad(out, WAL_END_BAD_BLOCKS, "durable horizon flag with %u "
				   "bytes of main data", out->main_len);
		out->horizon = get_le64(out->main_data);
	}
	return 0;
}

/* Checks that block `block` of d has an image that can expand to page_size
 * bytes and returns that block in *out. */
static int image_block(const wal_decoded *d, unsigned block, uint32_t page_size,
		       const wal_block_ref **out)
{
	const wal_block_ref *bl;
	if (block >= d->nblocks || !(d->blocks[block].flags & WAL_BLK_HAS_IMAGE))
		return err_set(WD_EINVAL, "WAL record at " LSN_FMT ": block %u has no image",
			       LSN_ARGS(d->lsn), block);
	bl = &d->blocks[block];
	if ((uint64_t)bl->hole_off + bl->hole_len > page_size ||
	    (!(bl->flags & WAL_BLK_COMPRESSED) && bl->image_len + bl->hole_len != page_size))
		return err_set(WD_ECORRUPT,
			       "WAL record at " LSN_FMT ": block %u: image of %u bytes with "
			       "hole %u+%u does not make a %u-byte page",
			       LSN_ARGS(d->lsn), block, bl->image_len, bl->hole_off,
			       bl->hole_len, page_size);
	*out = bl;
	return 0;
}

/* Expands the image into page[0, raw) (copy or inflate), then moves the part
 * after the hole up and zeroes the hole. */
int walrec_restore_image(const wal_decoded *d, unsigned block, uint8_t *page,
			 uint32_t page_size)
{
	const wal_block_ref *bl = NULL;
	uint32_t raw = 0;
	uLongf got;
	int rc = image_block(d, block, page_size, &bl);
	if (rc != 0)
		return rc;
	raw = page_size - bl->hole_len;
	got = raw;
	if (!(bl->flags & WAL_BLK_COMPRESSED))
		memcpy(page, bl->image, raw);
	else if (uncompress(page, &got, bl->image, bl->image_len) != Z_OK || got != raw)
		return err_set(WD_ECORRUPT,
			       "WAL record at " LSN_FMT ": block %u: compressed image does "
			       "not expand to %u bytes",
			       LSN_ARGS(d->lsn), block, raw);
	/* page[0, raw) holds the image without its hole: open the hole */
	memmove(page + bl->hole_off + bl->hole_len, page + bl->hole_off,
		raw - bl->hole_off);
	memset(page + bl->hole_off, 0, bl->hole_len);
	return 0;
}
