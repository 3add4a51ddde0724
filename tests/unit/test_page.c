/*
 * test_page.c - the page header, the checksum and the slotted-page helpers;
 * the little-endian encoders and storage_crc32 under them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "storage/bytes.h"
#include "storage/crc.h"
#include "storage/page.h"
#include "tests/lib/testutil.h"

/* A page of the given size with a valid header, random items and checksum. */
static uint8_t *random_page(uint32_t size, uint64_t seed, wd_blkno blk)
{
	uint8_t *p = malloc(size), item[300];
	page_init(p, size, PAGE_KIND_RAW, 16);
	for (;;) {
		uint32_t len = 1 + (uint32_t)(tu_rand(&seed) % sizeof item);
		for (uint32_t i = 0; i < len; i++)
			item[i] = (uint8_t)tu_rand(&seed);
		if (page_item_add(p, item, len, PAGE_SLOT_NEW) < 0)
			break;
	}
	page_set_lsn(p, tu_rand(&seed));
	page_checksum_set(p, size, blk);
	return p;
}

/*
 * The encoders put the least significant byte first at any alignment, and
 * read back what they wrote; bytes around the field are left alone. The
 * expected bytes are spelled out, not computed with the helpers. Instant.
 */
static void test_le_bytes(void **state)
{
	static const uint8_t want[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
	uint8_t buf[24];
	(void)state;
	for (unsigned off = 0; off < 8; off++) {
		memset(buf, 0xEE, sizeof buf);
		put_le64(buf + off, 0x0102030405060708ull);
		assert_memory_equal(buf + off, want, 8);
		assert_true(get_le64(buf + off) == 0x0102030405060708ull);
		assert_int_equal(buf[off + 8], 0xEE);
		if (off)
			assert_int_equal(buf[off - 1], 0xEE);
		memset(buf, 0xEE, sizeof buf);
		put_le32(buf + off, 0x05060708u);
		assert_memory_equal(buf + off, want, 4);
		assert_int_equal(get_le32(buf + off), 0x05060708u);
		assert_int_equal(buf[off + 4], 0xEE);
		put_le16(buf + off, 0x0708);
		assert_memory_equal(buf + off, want, 2);
		assert_int_equal(get_le16(buf + off), 0x0708);
	}
}

/*
 * storage_crc32 is zlib's crc32 for every length from 0 to 2 KiB and
 * every start alignment (the byte-at-a-time path below 16 bytes and
 * ISA-L's above), and continues a CRC as zlib does; the SSE code
 * that follows it (memset, memcpy of small, fixed sizes, which the
 * compiler inlines) still computes right values. Release: a few ms.
 */
static void test_crc32_matches_zlib(void **state)
{
	uint8_t *buf = malloc(2048 + 64), copy[48];
	uint64_t seed = 11;
	(void)state;
	for (unsigned i = 0; i < 2048 + 64; i++)
		buf[i] = (uint8_t)tu_rand(&seed);
	for (uint32_t len = 0; len <= 2048; len += 1 + len / 16) {
		unsigned off = len % 61;
		uint32_t c = storage_crc32(0, buf + off, len);
		assert_int_equal(c, (uint32_t)crc32(0, buf + off, len));
		assert_int_equal(storage_crc32(c, buf, 16),
				 (uint32_t)crc32(crc32(0, buf + off, len), buf, 16));
		/* continued by a few bytes, as a WAL record's CRC ends */
		assert_int_equal(storage_crc32(c, buf + 7, len % 16),
				 (uint32_t)crc32(crc32(0, buf + off, len), buf + 7, len % 16));
		memset(copy, (int)len & 0xFF, sizeof copy);
		memcpy(copy + 8, buf + off, 32);
		assert_int_equal(copy[0], (uint8_t)len);
		assert_memory_equal(copy + 8, buf + off, 32);
	}
	free(buf);
}

/* The checksum is the zlib CRC-32 of the bytes page.h says it covers. */
static void test_checksum_matches_zlib(void **state)
{
	(void)state;
	for (uint32_t size = PAGE_SIZE_MIN; size <= PAGE_SIZE_MAX; size *= 2) {
		uint8_t *p = random_page(size, size, 77), blk[4];
		uLong crc = crc32(0, p, 8);
		crc = crc32(crc, p + 12, size - 12);
		put_le32(blk, 77);
		crc = crc32(crc, blk, 4);
		assert_int_equal(page_checksum(p, size, 77), (uint32_t)crc);
		free(p);
	}
}

/* Flipping any single bit of a page makes page_verify fail with ECORRUPT. */
static void test_every_single_bit_flip_detected(void **state)
{
	(void)state;
	for (uint32_t size = PAGE_SIZE_MIN; size <= PAGE_SIZE_MAX; size *= 2) {
		uint8_t *p = random_page(size, 1000 + size, 3);
		assert_int_equal(page_verify(p, size, 3, "f"), 0);
		for (uint32_t bit = 0; bit < size * 8; bit++) {
			p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(page_verify(p, size, 3, "f"), WD_ECORRUPT);
			p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		assert_int_equal(page_verify(p, size, 3, "f"), 0);
		free(p);
	}
}

/* A valid page read at another block number fails (misdirected write). */
static void test_wrong_block_detected(void **state)
{
	uint8_t *p = random_page(8192, 5, 10);
	(void)state;
	assert_int_equal(page_verify(p, 8192, 10, "base/1"), 0);
	assert_int_equal(page_verify(p, 8192, 11, "base/1"), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "base/1"));
	assert_non_null(strstr(wd_last_error(), "block 11"));
	assert_non_null(strstr(wd_last_error(), "checksum mismatch"));
	free(p);
}

/* An all-zero page is "never written"; one stray byte makes it corrupt. */
static void test_zero_page_is_new(void **state)
{
	uint8_t *p = calloc(1, 8192);
	(void)state;
	assert_true(page_is_zero(p, 8192));
	assert_int_equal(page_verify(p, 8192, 4, "f"), PAGE_VERIFY_NEW);
	p[8191] = 1;
	assert_false(page_is_zero(p, 8192));
	assert_int_equal(page_verify(p, 8192, 4, "f"), WD_ECORRUPT);
	free(p);
}

/* A page with a correct checksum but impossible bounds is still caught. */
static void test_bad_bounds_detected(void **state)
{
	uint8_t *p = malloc(8192);
	(void)state;
	page_init(p, 8192, PAGE_KIND_RAW, 0);
	put_le32(p + PH_UPPER, 9000);
	page_checksum_set(p, 8192, 0);
	assert_int_equal(page_verify(p, 8192, 0, "f"), WD_ECORRUPT);
	assert_non_null(strstr(wd_last_error(), "bad page bounds"));
	page_init(p, 8192, PAGE_KIND_RAW, 0);
	p[PH_VERSION] = 9;
	page_checksum_set(p, 8192, 0);
	assert_int_equal(page_verify(p, 8192, 0, "f"), WD_ECORRUPT);
	free(p);
}

static void test_page_size_valid(void **state)
{
	(void)state;
	assert_true(page_size_valid(4096));
	assert_true(page_size_valid(65536));
	assert_false(page_size_valid(2048));
	assert_false(page_size_valid(131072));
	assert_false(page_size_valid(12288));
	assert_false(page_size_valid(0));
}

static void test_header_fields(void **state)
{
	uint8_t p[4096];
	(void)state;
	page_init(p, sizeof p, PAGE_KIND_HEAP, 13);
	assert_int_equal(page_kind(p), PAGE_KIND_HEAP);
	assert_int_equal(page_special(p), 4096 - 16); /* rounded up to 8 */
	assert_int_equal(page_upper(p), 4096 - 16);
	assert_int_equal(page_lower(p), PAGE_HEADER_SIZE);
	page_set_lsn(p, 0x0102030405060708ull);
	assert_int_equal(p[0], 0x08); /* little-endian on disk */
	assert_true(page_lsn(p) == 0x0102030405060708ull);
	page_set_flags(p, 0xBEEF);
	assert_int_equal(page_flags(p), 0xBEEF);
	assert_string_equal(page_kind_name(PAGE_KIND_BTREE), "btree");
	assert_string_equal(page_kind_name(200), "unknown");
}

/* A model of a slotted page: the items each slot should hold. */
struct model {
	uint32_t n;
	uint32_t len[2048];
	uint8_t data[2048][64];
};

static void check_model(const uint8_t *p, const struct model *m)
{
	uint32_t used = 0;
	/* I8: the free area is all zero after any sequence of operations */
	for (uint32_t i = page_lower(p); i < page_upper(p); i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(page_nslots(p), m->n);
	for (uint32_t i = 0; i < m->n; i++) {
		uint32_t len = 0;
		const uint8_t *it = page_item_const(p, i, &len);
		assert_int_equal(len, m->len[i]);
		if (m->len[i]) {
			assert_non_null(it);
			assert_memory_equal(it, m->data[i], len);
			assert_true(it >= p + page_upper(p));
			assert_true(it + len <= p + page_special(p));
		} else {
			assert_null(it);
		}
		used += len;
	}
	/* the data region has no holes */
	assert_int_equal(page_special(p) - page_upper(p), used);
}

/*
 * A heap-style add, made twice: by page_item_add(PAGE_SLOT_NEW) on p and
 * by page_first_unused + page_item_add_first_unused on a copy (the heap's
 * insert path). page_first_unused is the first slot without an item (odd
 * and even ones: it reads two line pointers a step). The same slot and the
 * same bytes, or the same refusal; the second way also refuses a slot in
 * use and one past the end.
 */
static int add_both_ways(uint8_t *p, uint32_t ps, const uint8_t *item, uint32_t len)
{
	uint8_t *q = malloc(ps);
	uint32_t n = page_nslots(p), s;
	int rc;
	memcpy(q, p, ps);
	s = page_first_unused(q);
	for (uint32_t i = 0; i < n; i++) /* the first slot without an item */
		if (!page_item_const(q, i, NULL)) {
			assert_int_equal(s, i);
			break;
		}
	assert_true(s <= n);
	if (s < n)
		assert_null(page_item_const(q, s, NULL));
	else
		for (uint32_t i = 0; i < n; i++)
			assert_non_null(page_item_const(q, i, NULL));
	rc = page_item_add(p, item, len, PAGE_SLOT_NEW);
	assert_int_equal(page_item_add_first_unused(q, item, len, s), rc);
	assert_memory_equal(p, q, ps);
	assert_int_equal(page_item_add_first_unused(q, item, len, page_nslots(q) + 1), WD_EINVAL);
	for (uint32_t i = 0; i < n && i < 4; i++)
		if (page_item_const(q, i, NULL))
			assert_int_equal(page_item_add_first_unused(q, item, len, i), WD_EINVAL);
	assert_memory_equal(p, q, ps);
	free(q);
	return rc;
}

/* Random add / insert-at / clear / remove / replace against a model. */
static void test_slotted_random_against_model(void **state)
{
	struct model *m = calloc(1, sizeof *m);
	uint8_t p[8192], item[64];
	uint64_t seed = 42;
	(void)state;
	page_init(p, sizeof p, PAGE_KIND_RAW, 24);
	for (int step = 0; step < 20000; step++) {
		uint32_t op = (uint32_t)(tu_rand(&seed) % 5), len = 1 + (uint32_t)(tu_rand(&seed) % 64);
		uint32_t slot = m->n ? (uint32_t)(tu_rand(&seed) % m->n) : 0;
		int rc;
		memset(item, (int)(step & 0xFF), len);
		item[0] = (uint8_t)op;
		if (op == 0 || m->n == 0) { /* heap-style add */
			rc = add_both_ways(p, sizeof p, item, len);
			if (rc == WD_ENOSPC)
				continue;
			assert_true(rc >= 0);
			if ((uint32_t)rc == m->n)
				m->n++;
			else
				assert_int_equal(m->len[rc], 0); /* reused an unused slot */
			m->len[rc] = len;
			memcpy(m->data[rc], item, len);
		} else if (op == 1) { /* btree-style insert at index */
			rc = page_item_add(p, item, len, slot);
			if (rc == WD_ENOSPC)
				continue;
			assert_int_equal(rc, (int)slot);
			memmove(&m->len[slot + 1], &m->len[slot], (m->n - slot) * sizeof m->len[0]);
			memmove(m->data[slot + 1], m->data[slot], (m->n - slot) * sizeof m->data[0]);
			m->n++;
			m->len[slot] = len;
			memcpy(m->data[slot], item, len);
		} else if (op == 2) {
			page_item_clear(p, slot);
			m->len[slot] = 0;
		} else if (op == 3) {
			page_item_remove(p, slot);
			memmove(&m->len[slot], &m->len[slot + 1], (m->n - slot - 1) * sizeof m->len[0]);
			memmove(m->data[slot], m->data[slot + 1], (m->n - slot - 1) * sizeof m->data[0]);
			m->n--;
		} else if (m->len[slot]) {
			rc = page_item_replace(p, slot, item, len);
			if (rc == WD_ENOSPC)
				continue;
			assert_int_equal(rc, 0);
			m->len[slot] = len;
			memcpy(m->data[slot], item, len);
		}
		check_model(p, m);
	}
	page_trim_slots(p);
	while (m->n && m->len[m->n - 1] == 0)
		m->n--;
	check_model(p, m);
	free(m);
}

/*
 * page_layout_check (what redo asks of a restored image) passes every heap
 * page the slotted-page helpers build, at every step of random adds,
 * clears and replaces, and refuses one moved line pointer: into the free
 * hole, past the special area, onto another item.
 */
static void test_layout_check(void **state)
{
	uint8_t p[4096], bad[4096], item[64];
	uint64_t seed = 7;
	unsigned damaged = 0;
	(void)state;
	page_init(p, sizeof p, PAGE_KIND_HEAP, 0);
	for (int step = 0; step < 5000; step++) {
		uint32_t n = page_nslots(p), len = 1 + (uint32_t)(tu_rand(&seed) % sizeof item);
		uint32_t op = (uint32_t)(tu_rand(&seed) % 3), slot = n ? (uint32_t)(tu_rand(&seed) % n) : 0;
		memset(item, step & 0xff, len);
		if (op == 0 || n == 0)
			(void)page_item_add(p, item, len, PAGE_SLOT_NEW);
		else if (op == 1)
			page_item_clear(p, slot);
		else if (page_item_const(p, slot, NULL))
			(void)page_item_replace(p, slot, item, len);
		assert_int_equal(page_layout_check(p, sizeof p), 0);
	}
	for (uint32_t s = 0; s + 1 < page_nslots(p); s++) {
		uint8_t *lp0 = bad + PAGE_HEADER_SIZE + s * PAGE_LP_SIZE, *lp1 = lp0 + PAGE_LP_SIZE;
		if (!page_item_const(p, s, NULL) || !page_item_const(p, s + 1, NULL))
			continue;
		memcpy(bad, p, sizeof p);
		put_le16(lp0, (uint16_t)(page_upper(bad) - 1));
		assert_int_equal(page_layout_check(bad, sizeof bad), WD_ECORRUPT);
		memcpy(bad, p, sizeof p);
		put_le16(lp0, (uint16_t)(page_special(bad) - get_le16(lp0 + 2) + 1));
		assert_int_equal(page_layout_check(bad, sizeof bad), WD_ECORRUPT);
		memcpy(bad, p, sizeof p);
		put_le16(lp1, get_le16(lp0));
		put_le16(lp1 + 2, 1);
		assert_int_equal(page_layout_check(bad, sizeof bad), WD_ECORRUPT);
		damaged++;
	}
	assert_true(damaged > 0);
	memcpy(bad, p, sizeof p);
	bad[PH_VERSION] = 0;
	assert_int_equal(page_layout_check(bad, sizeof bad), WD_ECORRUPT);
}

/* Free space is exact: an item of exactly page_free_space bytes fits. */
static void test_free_space_exact(void **state)
{
	uint8_t p[4096], big[4096];
	int rc;
	(void)state;
	memset(big, 7, sizeof big);
	page_init(p, sizeof p, PAGE_KIND_RAW, 0);
	assert_int_equal(page_free_space(p), 4096 - PAGE_HEADER_SIZE - PAGE_LP_SIZE);
	assert_int_equal(page_item_add(p, big, page_free_space(p) + 1, PAGE_SLOT_NEW), WD_ENOSPC);
	rc = page_item_add(p, big, page_free_space(p), PAGE_SLOT_NEW);
	assert_int_equal(rc, 0);
	assert_int_equal(page_free_space_noslot(p), 0);
	assert_int_equal(page_item_add(p, big, 1, PAGE_SLOT_NEW), WD_ENOSPC);
	assert_int_equal(page_item_add(p, big, 0, PAGE_SLOT_NEW), WD_EINVAL);
	assert_int_equal(page_item_add(p, big, 1, 5), WD_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_le_bytes),
		cmocka_unit_test(test_crc32_matches_zlib),
		cmocka_unit_test(test_checksum_matches_zlib),
		cmocka_unit_test(test_every_single_bit_flip_detected),
		cmocka_unit_test(test_wrong_block_detected),
		cmocka_unit_test(test_zero_page_is_new),
		cmocka_unit_test(test_bad_bounds_detected),
		cmocka_unit_test(test_page_size_valid),
		cmocka_unit_test(test_header_fields),
		cmocka_unit_test(test_slotted_random_against_model),
		cmocka_unit_test(test_free_space_exact),
		cmocka_unit_test(test_layout_check),
	};
	return cmocka_run_group_tests_name("page", tests, NULL, NULL);
}
