/*
 * test_wal_record.c - WAL records: builder, stamp and decoder round trips
 * with 0..8 blocks, images with and without a hole, compressed or not;
 * short block headers (format 3) and long ones, and format 2's long header
 * of a block without an image still read; every single-bit flip detected;
 * self-LSN and length checks; exact page restoration; the CRC definition
 * of wal/format.h; redo refuses a full-page image that is not a sound page;
 * the memory a freed builder leaves to the thread's next one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif
#include <zlib.h>

#include "bufmgr/bufmgr.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "tests/lib/testutil.h"
#include "wal/record.h"
#include "wal/redo.h"
#include "wal/rmgr.h"
#include "walden.h"

#define PS 8192u

/* A page of kind `kind` filled with items of random letters a..d (so it
 * compresses) up to about fill percent of its space; the hole stays zero. */
static uint8_t *make_page(uint32_t size, unsigned kind, unsigned fill, uint64_t seed)
{
	uint8_t *p = malloc(size), item[200];
	page_init(p, size, kind, 16);
	while (page_free_space(p) > size * (100 - fill) / 100) {
		uint32_t len = 8 + (uint32_t)(tu_rand(&seed) % (sizeof item - 8));
		for (uint32_t i = 0; i < len; i++)
			item[i] = (uint8_t)('a' + tu_rand(&seed) % 4);
		if (page_item_add(p, item, len, PAGE_SLOT_NEW) < 0)
			break;
	}
	page_set_lsn(p, tu_rand(&seed));
	return p;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)tu_rand(&seed);
}

/* One block of a round-trip case and what the decoder must give back. */
struct blk_case {
	uint8_t *page;  /* NULL: no image */
	bool compress;
	uint8_t data[300];
	uint32_t data_len;
};

/* Builds block i of n: cycles through no image, heap page with a hole,
 * raw page (logged whole), compressed heap page, incompressible raw page. */
static void make_block(struct blk_case *c, unsigned i, uint64_t seed)
{
	memset(c, 0, sizeof *c);
	switch (i % 5) {
	case 1: c->page = make_page(PS, PAGE_KIND_HEAP, 40, seed); break;
	case 2: c->page = make_page(PS, PAGE_KIND_RAW, 40, seed); break;
	case 3: c->page = make_page(PS, PAGE_KIND_BTREE, 60, seed); c->compress = true; break;
	case 4:
		c->page = malloc(PS);
		fill_random(c->page, PS, seed);
		c->compress = true;
		break;
	}
	c->data_len = (i * 37) % sizeof c->data;
	fill_random(c->data, c->data_len, seed + 1);
}

/* Checks decoded block i against its case, including the restored page. */
static void check_block(const wal_decoded *d, unsigned i, const struct blk_case *c)
{
	const wal_block_ref *bl = &d->blocks[i];
	uint8_t *page = malloc(PS);
	assert_int_equal(bl->rel, 100 + i);
	assert_int_equal(bl->blk, 1000 + i);
	assert_int_equal(bl->data_len, c->data_len);
	if (c->data_len)
		assert_memory_equal(bl->data, c->data, c->data_len);
	assert_int_equal(!!(bl->flags & WAL_BLK_HAS_IMAGE), c->page != NULL);
	assert_int_equal(!!(bl->flags & WAL_BLK_SHORT), c->page == NULL); /* data < 64 KiB */
	assert_int_equal(!!(bl->flags & WAL_BLK_WILL_INIT), i % 2);
	if (c->page) {
		bool hole = page_kind(c->page) == PAGE_KIND_HEAP ||
			    page_kind(c->page) == PAGE_KIND_BTREE;
		assert_int_equal(bl->hole_len != 0, hole);
		if (hole)
			assert_int_equal(bl->hole_len, page_upper(c->page) - page_lower(c->page));
		assert_int_equal(walrec_restore_image(d, i, page, PS), 0);
		assert_memory_equal(page, c->page, PS);
		if (c->compress && hole)
			assert_true(bl->flags & WAL_BLK_COMPRESSED);
		if (c->compress && !hole) /* random bytes: compression not smaller */
			assert_false(bl->flags & WAL_BLK_COMPRESSED);
		if (!c->compress)
			assert_false(bl->flags & WAL_BLK_COMPRESSED);
	} else {
		assert_int_equal(walrec_restore_image(d, i, page, PS), WD_EINVAL);
	}
	free(page);
}

/* Builds, stamps and decodes records with 0..8 blocks of every kind, with
 * one builder reused throughout. */
static void test_round_trip(void **state)
{
	wal_rec_builder b = {0};
	struct blk_case cases[WAL_MAX_BLOCKS];
	uint8_t main_data[777];
	(void)state;
	fill_random(main_data, sizeof main_data, 5);
	for (unsigned n = 0; n <= WAL_MAX_BLOCKS; n++) {
		wd_lsn lsn = 0x1000040ull + n * 8;
		uint8_t *rec;
		uint32_t len;
		wal_decoded d;
		walrec_begin(&b, WAL_RMGR_XACT, XACT_COMMIT, 700 + n, 0x4242 + n, 99, n & 1);
		for (unsigned i = 0; i < n; i++) {
			make_block(&cases[i], i + n, 10 * n + i);
			assert_int_equal(walrec_add_block(&b, 100 + i, 1000 + i, (i % 2) ? WAL_BLK_WILL_INIT : 0,
							  cases[i].page, PS, cases[i].compress,
							  cases[i].data, cases[i].data_len), 0);
		}
		assert_int_equal(walrec_set_main(&b, main_data, n * 97), 0);
		assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
		assert_int_equal(get_le64(rec + WRH_LSN), 0);
		assert_int_equal(get_le32(rec + WRH_CRC), 0);
		walrec_stamp(rec, len, lsn);
		assert_int_equal(walrec_decode(rec, len, lsn, &d), 0);
		assert_int_equal(d.status, WAL_END_NONE);
		assert_int_equal(d.tot_len, len);
		assert_true(d.lsn == lsn && d.prev == 0x4242 + n && d.xid == 700 + n && d.undo == 99);
		assert_int_equal(d.rmgr, WAL_RMGR_XACT);
		assert_int_equal(d.type, XACT_COMMIT);
		assert_int_equal(d.flags, n & 1);
		assert_int_equal(d.nblocks, n);
		assert_int_equal(d.main_len, n * 97);
		assert_memory_equal(d.main_data, main_data, n * 97);
		for (unsigned i = 0; i < n; i++) {
			check_block(&d, (unsigned)i, &cases[i]);
			free(cases[i].page);
		}
	}
	walrec_free(&b);
}

/* The hole really is left out: a heap page with a big hole logs small. */
static void test_hole_left_out(void **state)
{
	wal_rec_builder b = {0};
	uint8_t *page = make_page(PS, PAGE_KIND_HEAP, 10, 3), *rec;
	uint32_t len, hole = page_upper(page) - page_lower(page);
	(void)state;
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	assert_int_equal(walrec_add_block(&b, 1, 2, 0, page, PS, false, NULL, 0), 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	assert_int_equal(len, WAL_REC_HEADER_SIZE + WAL_BLK_HEADER_SIZE + PS - hole);
	/* a header with bounds that do not hold: logged whole */
	put_le32(page + PH_UPPER, PS + 8);
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	assert_int_equal(walrec_add_block(&b, 1, 2, 0, page, PS, false, NULL, 0), 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	assert_int_equal(len, WAL_REC_HEADER_SIZE + WAL_BLK_HEADER_SIZE + PS);
	walrec_free(&b);
	free(page);
}

/*
 * Builds a one-block record in a fresh builder: data_len bytes of data
 * from seed, main data of main_len bytes; stamps and decodes it and checks
 * every byte came back. *kept: whether walrec_begin adopted memory (the
 * builder had a buffer before anything was added). Frees the builder
 * unless keep is set (then the caller does).
 */
static void build_check(wal_rec_builder *b, uint32_t data_len, uint32_t main_len,
			uint64_t seed, bool *kept)
{
	uint8_t *data = malloc(data_len + 1), *main_data = malloc(main_len + 1), *rec;
	uint32_t len;
	wal_decoded d;
	fill_random(data, data_len, seed);
	fill_random(main_data, main_len, seed + 1);
	walrec_begin(b, WAL_RMGR_XLOG, XLOG_NOOP, 7, 0, 0, 0);
	if (kept)
		*kept = b->buf != NULL;
	assert_int_equal(walrec_add_block(b, 1, 2, 0, NULL, PS, false, data, data_len), 0);
	assert_int_equal(walrec_set_main(b, main_data, main_len), 0);
	assert_int_equal(walrec_assemble(b, &rec, &len), 0);
	assert_int_equal(len, WAL_REC_HEADER_SIZE + data_len + main_len +
				      (data_len <= WAL_BLK_SHORT_DATA_MAX ? WAL_BLK_SHORT_SIZE
									  : WAL_BLK_HEADER_SIZE));
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), 0);
	assert_int_equal(!!(d.blocks[0].flags & WAL_BLK_SHORT), data_len <= WAL_BLK_SHORT_DATA_MAX);
	assert_int_equal(d.blocks[0].data_len, data_len);
	assert_memory_equal(d.blocks[0].data, data, data_len);
	assert_int_equal(d.main_len, main_len);
	assert_memory_equal(d.main_data, main_data, main_len);
	free(data);
	free(main_data);
}

/*
 * walrec_init makes an empty builder of any bytes, and an emptied builder
 * keeps its block array: a record with fewer blocks than the last one
 * built in it must not show the old ones. The same records built in
 * zero-initialised builders are the reference.
 */
static void test_builder_init(void **state)
{
	wal_rec_builder b, ref = {0};
	uint8_t data[3][40], *rec, *want;
	uint32_t len, want_len;
	wal_decoded d;
	(void)state;
	memset(&b, 0xA5, sizeof b);
	walrec_init(&b);
	assert_null(b.buf);
	assert_int_equal(b.nblocks, 0);
	build_check(&b, 100, 20, 5, NULL); /* fills it, as any use would */
	walrec_free(&b);
	for (unsigned i = 0; i < 3; i++)
		fill_random(data[i], sizeof data[i], 40 + i);
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 9, 0, 0, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(walrec_add_block(&b, 1, 10 + i, 0, NULL, PS, false, data[i], 40),
				 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	walrec_free(&b); /* the block array still holds three entries */
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 9, 0, 0, 0);
	assert_int_equal(walrec_add_block(&b, 1, 20, 0, NULL, PS, false, data[2], 40), 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	walrec_begin(&ref, WAL_RMGR_XLOG, XLOG_NOOP, 9, 0, 0, 0);
	assert_int_equal(walrec_add_block(&ref, 1, 20, 0, NULL, PS, false, data[2], 40), 0);
	assert_int_equal(walrec_assemble(&ref, &want, &want_len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(rec, want, len);
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), 0);
	assert_int_equal(d.nblocks, 1);
	assert_int_equal(d.blocks[0].blk, 20);
	walrec_free(&b);
	walrec_free(&ref);
}

/*
 * The position arithmetic of wal/format.h (shifts and masks for the
 * power-of-two segment size) against the plain divisions it replaces, for
 * every segment size walden accepts: positions at and around segment
 * boundaries and at random, and the round trip usable -> LSN -> usable.
 */
static void test_position_arithmetic(void **state)
{
	uint64_t seed = 77;
	(void)state;
	for (uint64_t seg = WAL_SEG_SIZE_MIN; seg <= WAL_SEG_SIZE_MAX; seg *= 2) {
		uint64_t u = seg - WAL_SEG_HEADER_SIZE;
		for (unsigned i = 0; i < 4000; i++) {
			uint64_t k = i % 1000, pos, lsn;
			if (i < 1000) /* around the k-th boundary */
				pos = k * u + (tu_rand(&seed) % 3) - (k ? 1 : 0);
			else
				pos = tu_rand(&seed) % (u << 20);
			lsn = wal_lsn_from_usable(pos, (uint32_t)seg);
			assert_int_equal(lsn, (pos / u) * seg + WAL_SEG_HEADER_SIZE + pos % u);
			assert_int_equal(wal_segno(lsn, (uint32_t)seg), lsn / seg);
			assert_int_equal(wal_seg_offset(lsn, (uint32_t)seg), lsn % seg);
			assert_int_equal(wal_usable_from_lsn(lsn, (uint32_t)seg), pos);
			/* an LSN in a segment header maps to the next usable byte */
			lsn = (lsn / seg) * seg + tu_rand(&seed) % WAL_SEG_HEADER_SIZE;
			assert_int_equal(wal_usable_from_lsn(lsn, (uint32_t)seg), (lsn / seg) * u);
		}
	}
}

/* One thread's share of test_builder_memory_reused: small and large
 * records in turn, each in a builder of its own. */
static void *build_in_thread(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	for (unsigned i = 0; i < 20; i++) {
		wal_rec_builder b = {0};
		build_check(&b, (i * 997) % 20000, i * 13, seed + i, NULL);
		walrec_free(&b);
	}
	return NULL;
}

/*
 * A builder that starts empty takes the memory the thread's last freed
 * builder left (walrec_free keeps it): the same buffer comes back, and
 * whatever it held before never shows in the next record. Records of other
 * sizes in turn: a small one in a buffer that held a larger one, one that
 * grows past the adopted buffer, one larger than what is kept (256 KiB,
 * freed instead), two builders alive at once (the second starts without
 * memory). Threads that build and exit leave nothing behind (the leak
 * checker of the sanitizer build would report the buffers otherwise).
 * Release: a few ms; ASan: under a second.
 */
static void test_builder_memory_reused(void **state)
{
	wal_rec_builder a = {0}, b = {0};
	pthread_t th[3];
	uint8_t *first;
	bool kept;
	(void)state;
	build_check(&a, 100, 24, 1, &kept);
	first = a.buf;
	walrec_free(&a);
	assert_null(a.buf);
#ifdef TEST_ASAN
	/* parked memory is poisoned: a record read after its walrec_free is
	 * still reported, as the use after free it would be without reuse */
	assert_true(__asan_address_is_poisoned(first));
#endif
	build_check(&a, 60, 8, 2, &kept); /* the same memory, adopted */
	assert_true(kept);
	assert_ptr_equal(a.buf, first);
#ifdef TEST_ASAN
	assert_false(__asan_address_is_poisoned(first));
#endif
	walrec_free(&a);
	build_check(&a, 50000, 3000, 3, &kept); /* grows past it */
	assert_true(kept);
	walrec_free(&a);
	build_check(&a, 10, 0, 4, &kept); /* small after large: stale bytes unseen */
	assert_true(kept);
	/* a second builder while the first holds the memory: none to adopt */
	build_check(&b, 200, 16, 5, &kept);
	assert_false(kept);
	walrec_free(&b);
	walrec_free(&a); /* only one builder's memory is kept; the other freed */
	build_check(&a, 300u << 10, 0, 6, &kept); /* larger than what is kept */
	assert_true(kept);
	walrec_free(&a);
	build_check(&a, 30, 30, 7, &kept);
	assert_false(kept); /* the large buffer was freed, not kept */
	walrec_free(&a);
	build_check(&a, 30, 30, 8, &kept);
	assert_true(kept); /* and the next one is kept again */
	walrec_free(&a);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, build_in_thread,
						(void *)(uintptr_t)(100 * i)), 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
}

/* Builds a two-block record with images and data at lsn; caller frees b. */
static void sample_record(wal_rec_builder *b, wd_lsn lsn, uint8_t **rec, uint32_t *len)
{
	uint8_t *p1 = make_page(4096, PAGE_KIND_HEAP, 15, 1);
	uint8_t *p2 = make_page(4096, PAGE_KIND_BTREE, 10, 2);
	uint8_t data[40];
	fill_random(data, sizeof data, 9);
	walrec_begin(b, WAL_RMGR_XACT, XACT_ABORT, 12, 0x88, 7, 0);
	assert_int_equal(walrec_add_block(b, 1, 2, 0, p1, 4096, false, data, 17), 0);
	assert_int_equal(walrec_add_block(b, 1, 3, 0, p2, 4096, true, data, 40), 0);
	assert_int_equal(walrec_set_main(b, data, 23), 0);
	assert_int_equal(walrec_assemble(b, rec, len), 0);
	walrec_stamp(*rec, *len, lsn);
	free(p1);
	free(p2);
}

/* Flipping any single bit of a record makes the decoder refuse it. */
static void test_every_bit_flip_detected(void **state)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	wal_decoded d;
	(void)state;
	sample_record(&b, 0x2040, &rec, &len);
	assert_true(len > 500);
	assert_int_equal(walrec_decode(rec, len, 0x2040, &d), 0);
	for (uint32_t bit = 0; bit < len * 8; bit++) {
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(walrec_decode(rec, len, 0x2040, &d), WD_ECORRUPT);
		assert_int_not_equal(d.status, WAL_END_NONE);
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(walrec_decode(rec, len, 0x2040, &d), 0);
	walrec_free(&b);
}

/* A valid record found at another position (stale) is refused as such. */
static void test_self_lsn_checked(void **state)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	wal_decoded d;
	(void)state;
	sample_record(&b, 0x2040, &rec, &len);
	assert_int_equal(walrec_decode(rec, len, 0x2048, &d), WD_ECORRUPT);
	assert_int_equal(d.status, WAL_END_BAD_LSN);
	assert_non_null(strstr(wd_last_error(), "0/2048"));
	assert_int_equal(walrec_decode(rec, len, 0x1002040, &d), WD_ECORRUPT);
	assert_int_equal(d.status, WAL_END_BAD_LSN);
	walrec_free(&b);
}

/* tot_len: zero, below the header, above the maximum, beyond the bytes
 * available; each with a CRC that checks out, so the length check is what
 * fires. */
static void test_length_bounds(void **state)
{
	static const struct {
		uint32_t tot_len;
		wal_end_reason why;
	} cases[] = {
		{0, WAL_END_ZERO},
		{1, WAL_END_BAD_LENGTH},
		{WAL_REC_HEADER_SIZE - 1, WAL_END_BAD_LENGTH},
		{WAL_MAX_RECORD_SIZE + 1, WAL_END_BAD_LENGTH},
		{0xFFFFFFFFu, WAL_END_BAD_LENGTH},
	};
	uint8_t rec[WAL_REC_HEADER_SIZE] = {0};
	wal_rec_builder b = {0};
	uint8_t *r;
	uint32_t len;
	wal_decoded d;
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		put_le32(rec, cases[i].tot_len);
		put_le64(rec + WRH_LSN, 0x40);
		assert_int_equal(walrec_decode(rec, sizeof rec, 0x40, &d), WD_ECORRUPT);
		assert_int_equal(d.status, cases[i].why);
	}
	sample_record(&b, 0x40, &r, &len);
	assert_int_equal(walrec_decode(r, len - 1, 0x40, &d), WD_ECORRUPT);
	assert_int_equal(d.status, WAL_END_TORN);
	assert_int_equal(walrec_decode(r, 3, 0x40, &d), WD_ECORRUPT);
	assert_int_equal(d.status, WAL_END_TORN);
	assert_int_equal(walrec_decode(r, len + 100, 0x40, &d), 0);
	/* a header-only record is the smallest valid one */
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	assert_int_equal(walrec_assemble(&b, &r, &len), 0);
	assert_int_equal(len, WAL_REC_HEADER_SIZE);
	walrec_stamp(r, len, 0x40);
	assert_int_equal(walrec_decode(r, len, 0x40, &d), 0);
	walrec_free(&b);
}

/* Structure that the CRC vouches for but that does not add up. */
static void test_inconsistent_structure(void **state)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	wal_decoded d;
	(void)state;
	sample_record(&b, 0x40, &rec, &len);
	rec[WRH_NBLOCKS] = WAL_MAX_BLOCKS + 1;
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), WD_ECORRUPT);
	assert_int_equal(d.status, WAL_END_BAD_BLOCKS);
	rec[WRH_NBLOCKS] = 2;
	put_le32(rec + WRH_MAIN_LEN, 24);
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), WD_ECORRUPT);
	assert_int_equal(d.status, WAL_END_BAD_BLOCKS);
	put_le32(rec + WRH_MAIN_LEN, 23);
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, 0x80); /* unknown flag */
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), WD_ECORRUPT);
	assert_int_equal(d.status, WAL_END_BAD_BLOCKS);
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, WAL_BLK_HAS_IMAGE);
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), 0);
	walrec_free(&b);
}

/* Stamps rec (len bytes) at 0x40 and decodes it: 0, or the end reason
 * (WAL_END_*) of a refusal. */
static int restamp_decode(uint8_t *rec, uint32_t len, wal_decoded *d)
{
	walrec_stamp(rec, len, 0x40);
	if (walrec_decode(rec, len, 0x40, d) == 0)
		return 0;
	assert_int_not_equal(d->status, WAL_END_NONE);
	return (int)d->status;
}

/*
 * Format 3 gives a block without an image (and under 64 KiB of data) the
 * 12-byte header: rel, blk, flags with SHORT, a 16-bit data length. The
 * same block in format 2's 32-byte header - as a segment written before
 * format 3 holds it - still decodes, to the same reference. A short header
 * with image flags or unknown ones, and a header (short or long) that does
 * not fit in tot_len, are bad block references.
 */
static void test_short_block_headers(void **state)
{
	wal_rec_builder b = {0};
	uint8_t data[10] = "abcdefghij", *rec, buf[WAL_REC_HEADER_SIZE + WAL_BLK_HEADER_SIZE + 10];
	uint32_t len, long_len = sizeof buf;
	wal_decoded d;
	(void)state;
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 7, 0, 0, 0);
	assert_int_equal(walrec_add_block(&b, 16, 33, WAL_BLK_WILL_INIT, NULL, PS, false, data,
					  sizeof data), 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	assert_int_equal(len, WAL_REC_HEADER_SIZE + WAL_BLK_SHORT_SIZE + sizeof data);
	assert_int_equal(get_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS),
			 WAL_BLK_SHORT | WAL_BLK_WILL_INIT);
	assert_int_equal(get_le16(rec + WAL_REC_HEADER_SIZE + WBH_SHORT_DATA_LEN), sizeof data);
	assert_int_equal(restamp_decode(rec, len, &d), 0);
	assert_true(d.blocks[0].rel == 16 && d.blocks[0].blk == 33);
	assert_int_equal(d.blocks[0].flags, WAL_BLK_SHORT | WAL_BLK_WILL_INIT);
	assert_int_equal(d.blocks[0].data_len, sizeof data);
	assert_memory_equal(d.blocks[0].data, data, sizeof data);
	assert_null(d.blocks[0].image);

	/* the format-2 form of the same record */
	memset(buf, 0, sizeof buf);
	memcpy(buf, rec, WAL_REC_HEADER_SIZE);
	put_le32(buf + WRH_TOT_LEN, long_len);
	put_le32(buf + WAL_REC_HEADER_SIZE + WBH_REL, 16);
	put_le32(buf + WAL_REC_HEADER_SIZE + WBH_BLK, 33);
	put_le16(buf + WAL_REC_HEADER_SIZE + WBH_FLAGS, WAL_BLK_WILL_INIT);
	put_le32(buf + WAL_REC_HEADER_SIZE + WBH_DATA_LEN, sizeof data);
	memcpy(buf + WAL_REC_HEADER_SIZE + WAL_BLK_HEADER_SIZE, data, sizeof data);
	assert_int_equal(restamp_decode(buf, long_len, &d), 0);
	assert_true(d.blocks[0].rel == 16 && d.blocks[0].blk == 33);
	assert_int_equal(d.blocks[0].flags, WAL_BLK_WILL_INIT);
	assert_int_equal(d.blocks[0].data_len, sizeof data);
	assert_memory_equal(d.blocks[0].data, data, sizeof data);

	/* a short header may carry WILL_INIT only */
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, WAL_BLK_SHORT | WAL_BLK_HAS_IMAGE);
	assert_int_equal(restamp_decode(rec, len, &d), WAL_END_BAD_BLOCKS);
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, WAL_BLK_SHORT | WAL_BLK_COMPRESSED);
	assert_int_equal(restamp_decode(rec, len, &d), WAL_END_BAD_BLOCKS);
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, WAL_BLK_SHORT | 0x10);
	assert_int_equal(restamp_decode(rec, len, &d), WAL_END_BAD_BLOCKS);
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, WAL_BLK_SHORT);
	assert_int_equal(restamp_decode(rec, len, &d), 0);
	/* a data length past tot_len */
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_SHORT_DATA_LEN, sizeof data + 1);
	assert_int_equal(restamp_decode(rec, len, &d), WAL_END_BAD_BLOCKS);
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_SHORT_DATA_LEN, sizeof data);
	/* without SHORT the same 22 bytes are a long header cut short */
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, 0);
	assert_int_equal(restamp_decode(rec, len, &d), WAL_END_BAD_BLOCKS);
	/* a short header itself cut short: 8 of its 12 bytes */
	put_le16(rec + WAL_REC_HEADER_SIZE + WBH_FLAGS, WAL_BLK_SHORT);
	put_le32(rec + WRH_TOT_LEN, WAL_REC_HEADER_SIZE + 8);
	assert_int_equal(restamp_decode(rec, WAL_REC_HEADER_SIZE + 8, &d), WAL_END_BAD_BLOCKS);
	walrec_free(&b);
}

/* restore_image refuses sizes that do not add up and broken zlib data. */
static void test_restore_errors(void **state)
{
	wal_rec_builder b = {0};
	uint8_t *rec, page[8192];
	uint32_t len;
	wal_decoded d;
	(void)state;
	sample_record(&b, 0x40, &rec, &len);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), 0);
	assert_int_equal(walrec_restore_image(&d, 0, page, 4096), 0);
	assert_int_equal(walrec_restore_image(&d, 0, page, 8192), WD_ECORRUPT);
	assert_int_equal(walrec_restore_image(&d, 1, page, 8192), WD_ECORRUPT);
	assert_int_equal(walrec_restore_image(&d, 2, page, 4096), WD_EINVAL);
	assert_true(d.blocks[1].flags & WAL_BLK_COMPRESSED);
	/* damage the compressed stream (and re-stamp so the CRC agrees) */
	rec[d.blocks[1].image - rec + d.blocks[1].image_len / 2] ^= 0x55;
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), 0);
	assert_int_equal(walrec_restore_image(&d, 1, page, 4096), WD_ECORRUPT);
	/* a hole reaching past the page */
	put_le32(rec + WAL_REC_HEADER_SIZE + WBH_HOLE_OFF, 4000);
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), 0);
	assert_int_equal(walrec_restore_image(&d, 0, page, 4096), WD_ECORRUPT);
	walrec_free(&b);
}

/* The CRC is zlib's crc32 of bytes [8, tot_len) then [0, 4), as format.h
 * says. */
static void test_crc_definition(void **state)
{
	wal_rec_builder b = {0};
	uint8_t *rec;
	uint32_t len;
	uLong crc;
	(void)state;
	sample_record(&b, 0x123458, &rec, &len);
	crc = crc32(0, rec + 8, len - 8);
	crc = crc32(crc, rec, 4);
	assert_int_equal(get_le32(rec + WRH_CRC), (uint32_t)crc);
	assert_int_equal(get_le64(rec + WRH_LSN), 0x123458);
	walrec_free(&b);
}

/* Large main data works; too much is refused; so are a ninth block and
 * bad arguments. */
static void test_limits(void **state)
{
	wal_rec_builder b = {0};
	uint32_t big = 3u << 20, len;
	uint8_t *data = malloc(big), *rec, page[4096] = {0};
	wal_decoded d;
	(void)state;
	fill_random(data, big, 4);
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	assert_int_equal(walrec_set_main(&b, data, big), 0);
	assert_int_equal(walrec_assemble(&b, &rec, &len), 0);
	walrec_stamp(rec, len, 0x40);
	assert_int_equal(walrec_decode(rec, len, 0x40, &d), 0);
	assert_memory_equal(d.main_data, data, big);
	assert_int_equal(walrec_set_main(&b, data, WAL_MAX_RECORD_SIZE), WD_ETOOBIG);
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	for (unsigned i = 0; i < WAL_MAX_BLOCKS; i++)
		assert_int_equal(walrec_add_block(&b, 1, i, 0, NULL, 0, false, NULL, 0), 0);
	assert_int_equal(walrec_add_block(&b, 1, 9, 0, NULL, 0, false, NULL, 0), WD_EINVAL);
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	assert_int_equal(walrec_add_block(&b, 1, 1, WAL_BLK_HAS_IMAGE, NULL, 0, false, NULL, 0),
			 WD_EINVAL);
	assert_int_equal(walrec_add_block(&b, 1, 1, 0, page, 1000, false, NULL, 0), WD_EINVAL);
	walrec_free(&b);
	free(data);
}

/* Names, lookup and dispatch of the rmgr table generated from
 * records.def. */
static int fake_redo_calls;
static int fake_redo(void *ctx, const wal_decoded *rec)
{
	(void)ctx;
	(void)rec;
	fake_redo_calls++;
	return 0;
}

static void test_rmgr_table(void **state)
{
	static const wal_rmgr_ops other = {fake_redo, NULL};
	wal_decoded d = {0};
	char buf[128];
	unsigned rm, ty;
	size_t n;
	(void)state;
	assert_string_equal(wal_rmgr_name(WAL_RMGR_XACT), "XACT");
	assert_string_equal(wal_rmgr_owner(WAL_RMGR_XACT), "txn");
	assert_string_equal(wal_record_name(WAL_RMGR_XACT, XACT_ABORT), "XACT_ABORT");
	assert_string_equal(wal_record_name(WAL_RMGR_XLOG, XLOG_NOOP), "XLOG_NOOP");
	assert_null(wal_record_name(WAL_RMGR_XLOG, 0x77));
	assert_null(wal_rmgr_name(200));
	assert_int_equal(wal_rmgr_lookup("xact"), WAL_RMGR_XACT);
	assert_int_equal(wal_rmgr_lookup("nope"), -1);
	for (n = 0; wal_record_at(n, &rm, &ty); n++)
		assert_non_null(wal_record_name(rm, ty));
	assert_true(n >= 3);
	/* XLOG is built in; XACT is the txn module's to register */
	d.rmgr = WAL_RMGR_XLOG;
	d.type = XLOG_NOOP;
	d.main_len = 12;
	wal_rmgr_describe(&d, buf, sizeof buf);
	assert_string_equal(buf, "payload 12 bytes");
	assert_int_equal(wal_rmgr_redo(NULL, &d), 0);
	d.rmgr = 200;
	assert_int_equal(wal_rmgr_redo(NULL, &d), WD_ENOTSUP);
	wal_rmgr_describe(&d, buf, sizeof buf);
	assert_non_null(strstr(buf, "main data 12 bytes"));
	assert_int_equal(wal_rmgr_register(200, &other), WD_EINVAL);
	assert_int_equal(wal_rmgr_register(WAL_RMGR_XLOG, &other), WD_EEXIST);
	d.rmgr = WAL_RMGR_XACT;
	d.type = XACT_COMMIT;
	if (!wal_rmgr_registered(WAL_RMGR_XACT)) {
		assert_int_equal(wal_rmgr_redo(NULL, &d), WD_ENOTSUP);
		assert_int_equal(wal_rmgr_register(WAL_RMGR_XACT, &other), 0);
		assert_int_equal(wal_rmgr_register(WAL_RMGR_XACT, &other), 0);
	}
	assert_int_equal(wal_rmgr_redo(NULL, &d), 0);
	assert_int_equal(fake_redo_calls, 1);
}

/* Builds, stamps and decodes a one-block record carrying page as its image. */
static void image_record(wal_rec_builder *b, const uint8_t *page, wal_decoded *d)
{
	uint8_t *rec;
	uint32_t len;
	walrec_begin(b, WAL_RMGR_BTREE, BTREE_INSERT_LEAF, 7, 0, 0, 0);
	assert_int_equal(walrec_add_block(b, 5, 1, 0, page, PS, false, "x", 1), 0);
	assert_int_equal(walrec_assemble(b, &rec, &len), 0);
	walrec_stamp(rec, len, 0x1000);
	assert_int_equal(walrec_decode(rec, len, 0x1000, d), 0);
}

/*
 * A full-page image is restored into the pool and then changed by the
 * slotted-page helpers, which trust its line pointers: redo_fetch_block
 * must refuse an image whose items leave the item area or overlap (the
 * record's CRC only says the bytes are the ones logged) and leave the
 * buffer a new page, not the bad bytes; a sound image is restored.
 * (Found by fuzz/fuzz_wal_segment: a record with a 59-byte image and a
 * 4037-byte hole, then an insert into that page, wrote outside the pool.)
 */
static void test_redo_refuses_unsound_image(void **state)
{
	char *dir = tu_tmpdir("redo_image"), *path = tu_path(dir, "rel5");
	uint8_t *good = make_page(PS, PAGE_KIND_BTREE, 50, 3), *bad = malloc(PS);
	wal_rec_builder b = {0};
	bufmgr_opts o;
	bufmgr *pool;
	redo_ctx ctx = {0};
	wal_decoded d;
	redo_action a;
	bm_buf *buf;
	(void)state;
	bufmgr_opts_default(&o);
	o.page_size = PS;
	o.pool_bytes = 16ull * PS;
	assert_int_equal(bufmgr_create(&o, &pool), 0);
	assert_int_equal(bufmgr_rel_open(pool, 5, path, BM_REL_CREATE), 0);
	ctx.pool = pool;
	ctx.page_size = PS;

	/* sound: restored */
	assert_int_equal(page_layout_check(good, PS), 0);
	image_record(&b, good, &d);
	assert_int_equal(redo_fetch_block(&ctx, &d, 0, &buf, &a), 0);
	assert_int_equal(a, REDO_RESTORED);
	assert_memory_equal(bufmgr_page(buf) + 16, good + 16, PS - 16); /* past lsn, crc */
	redo_release(&ctx, buf);

	/* each way of breaking the item layout is refused */
	for (int damage = 0; damage < 3; damage++) {
		uint8_t *lp0 = bad + PAGE_HEADER_SIZE, *lp1 = lp0 + PAGE_LP_SIZE;
		memcpy(bad, good, PS);
		assert_true(page_nslots(bad) >= 2);
		if (damage == 0) /* past the special area */
			put_le16(lp0 + 2, (uint16_t)(page_special(bad) - get_le16(lp0) + 1));
		else if (damage == 1) /* below upper, in the free hole */
			put_le16(lp0, (uint16_t)(page_upper(bad) - 1));
		else { /* two items overlapping, both inside the item area */
			put_le16(lp1, get_le16(lp0));
			put_le16(lp1 + 2, 1);
		}
		assert_int_equal(page_layout_check(bad, PS), WD_ECORRUPT);
		image_record(&b, bad, &d);
		assert_int_equal(redo_fetch_block(&ctx, &d, 0, &buf, &a), WD_ECORRUPT);
		assert_null(buf);
		assert_non_null(strstr(wd_last_error(), "not a sound page"));
		/* the buffer was left a new page, not the bad image */
		assert_int_equal(bufmgr_pin(pool, 5, 1, BM_READ, &buf), 0);
		assert_true(page_is_zero(bufmgr_page(buf), PS));
		bufmgr_unpin(pool, buf);
	}
	walrec_free(&b);
	bufmgr_destroy(pool);
	free(good);
	free(bad);
	tu_rmrf(dir);
	free(dir);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_hole_left_out),
		cmocka_unit_test(test_builder_memory_reused),
		cmocka_unit_test(test_builder_init),
		cmocka_unit_test(test_position_arithmetic),
		cmocka_unit_test(test_every_bit_flip_detected),
		cmocka_unit_test(test_self_lsn_checked),
		cmocka_unit_test(test_length_bounds),
		cmocka_unit_test(test_inconsistent_structure),
		cmocka_unit_test(test_short_block_headers),
		cmocka_unit_test(test_restore_errors),
		cmocka_unit_test(test_crc_definition),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_rmgr_table),
		cmocka_unit_test(test_redo_refuses_unsound_image),
	};
	return cmocka_run_group_tests_name("wal_record", tests, NULL, NULL);
}
