/*
 * page.c - the common page header, the page checksum and the slotted-page
 * helpers shared by heap and btree. Pure byte manipulation: no I/O.
 */
#include <string.h>

#include "storage/bytes.h"
#include "storage/crc.h"
#include "storage/page.h"

static const char *const kind_names[] = {
	"none", "raw", "heap", "btree", "overflow", "fsm", "undo", "meta",
};

const char *page_kind_name(unsigned kind)
{
	if (kind < sizeof kind_names / sizeof kind_names[0])
		return kind_names[kind];
	return "unknown";
}

bool page_size_valid(uint32_t size)
{
	return size >= PAGE_SIZE_MIN && size <= PAGE_SIZE_MAX &&
	       (size & (size - 1)) == 0;
}

/* ---- header accessors ---- */

/*
 * Formats an empty page: header, no line pointers, all space free, a
 * special area of special_size bytes (rounded up to 8) at the end.
 */
void page_init(uint8_t *p, uint32_t page_size, unsigned kind,
	       uint32_t special_size)
{
	special_size = (special_size + 7u) & ~7u;
	memset(p, 0, page_size);
	p[PH_KIND] = (uint8_t)kind;
	p[PH_VERSION] = PAGE_FORMAT_VERSION;
	put_le32(p + PH_LOWER, PAGE_HEADER_SIZE);
	put_le32(p + PH_UPPER, page_size - special_size);
	put_le32(p + PH_SPECIAL, page_size - special_size);
}

static void set_lower(uint8_t *p, uint32_t v) { put_le32(p + PH_LOWER, v); }
static void set_upper(uint8_t *p, uint32_t v) { put_le32(p + PH_UPPER, v); }

/* ---- checksum ---- */

/* CRC-32 over [0,8) ++ [12,page_size) ++ le32(blkno); see page.h. */
uint32_t page_checksum(const uint8_t *p, uint32_t page_size, wd_blkno blkno)
{
	uint8_t blk[4];
	uint32_t crc;
	put_le32(blk, blkno);
	crc = storage_crc32(0, p, PH_CHECKSUM);
	crc = storage_crc32(crc, p + PH_CHECKSUM + 4, page_size - (PH_CHECKSUM + 4));
	return storage_crc32(crc, blk, sizeof blk);
}

void page_checksum_set(uint8_t *p, uint32_t page_size, wd_blkno blkno)
{
	put_le32(p + PH_CHECKSUM, page_checksum(p, page_size, blkno));
}

bool page_is_zero(const uint8_t *p, uint32_t page_size)
{
	/* zero first byte, and every byte equal to the one before it */
	return p[0] == 0 && memcmp(p, p + 1, page_size - 1) == 0;
}

/*
 * Validates a page read from disk. The checksum comes first: only a page
 * whose bytes are the ones written may have its header believed.
 */
int page_verify(const uint8_t *p, uint32_t page_size, wd_blkno blkno,
		const char *file)
{
	uint32_t stored = get_le32(p + PH_CHECKSUM);
	uint32_t computed;

	if (stored == 0 && page_is_zero(p, page_size))
		return PAGE_VERIFY_NEW;
	computed = page_checksum(p, page_size, blkno);
	if (stored != computed)
		return err_set(WD_ECORRUPT,
			      "%s: block %u: checksum mismatch (stored 0x%08x, "
			      "computed 0x%08x): torn or damaged page",
			      file, blkno, stored, computed);
	if (p[PH_VERSION] != PAGE_FORMAT_VERSION)
		return err_set(WD_ECORRUPT, "%s: block %u: page format version %u, expected %u",
			      file, blkno, p[PH_VERSION], PAGE_FORMAT_VERSION);
	if (page_bounds_check(p, page_size) != 0)
		return err_wrap(WD_ECORRUPT, "%s: block %u", file, blkno);
	return 0;
}

int page_bounds_check(const uint8_t *p, uint32_t page_size)
{
	uint32_t lower = page_lower(p), upper = page_upper(p), special = page_special(p);
	if (lower < PAGE_HEADER_SIZE || lower > upper || upper > special ||
	    special > page_size || (lower - PAGE_HEADER_SIZE) % PAGE_LP_SIZE)
		return err_set(WD_ECORRUPT,
			      "bad page bounds lower=%u upper=%u special=%u page size %u",
			      lower, upper, special, page_size);
	return 0;
}

/* ---- slotted pages ---- */

static const uint8_t *lp_const(const uint8_t *p, uint32_t slot);

/* Marks item [off, off + len) in the bitmap of page bytes; false if a
 * byte was marked already (two items overlap). */
static bool mark_item(uint8_t *used, uint32_t off, uint32_t len)
{
	for (uint32_t b = off; b < off + len; b++) {
		if (used[b / 8] & (1u << (b % 8)))
			return false;
		used[b / 8] |= (uint8_t)(1u << (b % 8));
	}
	return true;
}

int page_layout_check(const uint8_t *p, uint32_t page_size)
{
	uint8_t used[PAGE_SIZE_MAX / 8];
	uint32_t upper = page_upper(p), special = page_special(p);
	int rc;
	if (p[PH_VERSION] != PAGE_FORMAT_VERSION)
		return err_set(WD_ECORRUPT, "page format version %u, expected %u",
			      p[PH_VERSION], PAGE_FORMAT_VERSION);
	if ((rc = page_bounds_check(p, page_size)) != 0)
		return rc;
	if (page_kind(p) != PAGE_KIND_HEAP && page_kind(p) != PAGE_KIND_BTREE)
		return 0;
	memset(used, 0, (page_size + 7) / 8);
	for (uint32_t s = 0; s < page_nslots(p); s++) {
		uint32_t off = get_le16(lp_const(p, s)), len = get_le16(lp_const(p, s) + 2);
		if (len == 0)
			continue;
		if (off < upper || off + len > special)
			return err_set(WD_ECORRUPT,
				      "slot %u: item at %u, %u bytes, outside the item area "
				      "[%u, %u)", s, off, len, upper, special);
		if (!mark_item(used, off, len))
			return err_set(WD_ECORRUPT, "slot %u: item at %u, %u bytes, overlaps "
				      "another item", s, off, len);
	}
	return 0;
}

/* Line pointer of slot i: u16 offset, u16 length; length 0 = unused. */
static uint8_t *lp(uint8_t *p, uint32_t slot)
{
	return p + PAGE_HEADER_SIZE + slot * PAGE_LP_SIZE;
}

static const uint8_t *lp_const(const uint8_t *p, uint32_t slot)
{
	return p + PAGE_HEADER_SIZE + slot * PAGE_LP_SIZE;
}

static void lp_set(uint8_t *p, uint32_t slot, uint32_t off, uint32_t len)
{
	put_le16(lp(p, slot), (uint16_t)off);
	put_le16(lp(p, slot) + 2, (uint16_t)len);
}

uint32_t page_nslots(const uint8_t *p)
{
	return (page_lower(p) - PAGE_HEADER_SIZE) / PAGE_LP_SIZE;
}

uint32_t page_free_space_noslot(const uint8_t *p)
{
	return page_upper(p) - page_lower(p);
}

uint32_t page_free_space(const uint8_t *p)
{
	uint32_t f = page_free_space_noslot(p);
	return f > PAGE_LP_SIZE ? f - PAGE_LP_SIZE : 0;
}

/* Two line pointers a step: a heap page without unused slots (every
 * page of a load) is scanned to its end at each insert. */
uint32_t page_first_unused(const uint8_t *p)
{
	uint32_t n = page_nslots(p), i = 0;
	for (; i + 2 <= n; i += 2) {
		uint64_t two = get_le64(lp_const(p, i)); /* lengths in bits 16-31, 48-63 */
		if ((two & 0xFFFF0000u) == 0)
			return i;
		if ((two >> 48) == 0)
			return i + 1;
	}
	if (i < n && get_le16(lp_const(p, i) + 2) == 0)
		return i;
	return n;
}

/* Puts item into slot: a new line pointer there (later ones shift up; none
 * when appending) if new_lp, else the unused slot's own. */
static int add_at(uint8_t *p, const void *item, uint32_t len, uint32_t slot, bool new_lp)
{
	uint32_t n = page_nslots(p), upper;
	if (len > (new_lp ? page_free_space(p) : page_free_space_noslot(p)))
		return WD_ENOSPC; /* routine: the caller picks another page */
	if (new_lp) {
		/* open a gap at slot (a no-op when appending) */
		memmove(lp(p, slot + 1), lp(p, slot), (n - slot) * PAGE_LP_SIZE);
		set_lower(p, page_lower(p) + PAGE_LP_SIZE);
	}
	upper = page_upper(p) - len;
	memcpy(p + upper, item, len);
	set_upper(p, upper);
	lp_set(p, slot, upper, len);
	return (int)slot;
}

static int bad_len(uint32_t len)
{
	return err_set(WD_EINVAL, "page item of %u bytes", len);
}

int page_item_add(uint8_t *p, const void *item, uint32_t len, uint32_t slot)
{
	uint32_t n = page_nslots(p);
	if (len == 0 || len > 0xFFFFu)
		return bad_len(len);
	if (slot == PAGE_SLOT_NEW) {
		slot = page_first_unused(p);
		return add_at(p, item, len, slot, slot == n);
	}
	if (slot > n)
		return err_set(WD_EINVAL, "page item slot %u beyond %u slots", slot, n);
	return add_at(p, item, len, slot, true);
}

int page_item_add_first_unused(uint8_t *p, const void *item, uint32_t len, uint32_t slot)
{
	uint32_t n = page_nslots(p);
	if (len == 0 || len > 0xFFFFu)
		return bad_len(len);
	if (slot > n || (slot < n && get_le16(lp_const(p, slot) + 2) != 0))
		return err_set(WD_EINVAL, "page item slot %u is neither unused nor the next of %u",
			       slot, n);
	return add_at(p, item, len, slot, slot == n);
}

uint8_t *page_item(uint8_t *p, uint32_t slot, uint32_t *len)
{
	return (uint8_t *)page_item_const(p, slot, len);
}

const uint8_t *page_item_const(const uint8_t *p, uint32_t slot, uint32_t *len)
{
	uint32_t l;
	if (slot >= page_nslots(p))
		return NULL;
	l = get_le16(lp_const(p, slot) + 2);
	if (len)
		*len = l;
	return l ? p + get_le16(lp_const(p, slot)) : NULL;
}

/*
 * Removes the data of slot from the data region, closing the hole by moving
 * every item below it up by its length and fixing their line pointers.
 */
static void remove_data(uint8_t *p, uint32_t slot)
{
	uint32_t off = get_le16(lp(p, slot)), len = get_le16(lp(p, slot) + 2);
	uint32_t upper = page_upper(p), n = page_nslots(p);
	if (len == 0)
		return;
	memmove(p + upper + len, p + upper, off - upper);
	memset(p + upper, 0, len); /* I8: the free area stays zero */
	set_upper(p, upper + len);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t o = get_le16(lp(p, i));
		if (get_le16(lp(p, i) + 2) && o < off)
			put_le16(lp(p, i), (uint16_t)(o + len));
	}
	lp_set(p, slot, 0, 0);
}

void page_item_clear(uint8_t *p, uint32_t slot)
{
	if (slot < page_nslots(p))
		remove_data(p, slot);
}

void page_item_remove(uint8_t *p, uint32_t slot)
{
	uint32_t n = page_nslots(p);
	if (slot >= n)
		return;
	remove_data(p, slot);
	memmove(lp(p, slot), lp(p, slot + 1), (n - slot - 1) * PAGE_LP_SIZE);
	memset(lp(p, n - 1), 0, PAGE_LP_SIZE); /* I8 */
	set_lower(p, page_lower(p) - PAGE_LP_SIZE);
}

int page_item_replace(uint8_t *p, uint32_t slot, const void *item, uint32_t len)
{
	uint32_t old_len, upper;
	if (slot >= page_nslots(p) || len == 0 || len > 0xFFFFu)
		return err_set(WD_EINVAL, "page item replace: bad slot %u or length %u",
			      slot, len);
	old_len = get_le16(lp(p, slot) + 2);
	if (len > page_free_space_noslot(p) + old_len)
		return WD_ENOSPC;
	if (len == old_len) {
		memcpy(p + get_le16(lp(p, slot)), item, len);
		return 0;
	}
	remove_data(p, slot);
	upper = page_upper(p) - len;
	memcpy(p + upper, item, len);
	set_upper(p, upper);
	lp_set(p, slot, upper, len);
	return 0;
}

void page_trim_slots(uint8_t *p)
{
	uint32_t n = page_nslots(p);
	while (n > 0 && get_le16(lp(p, n - 1) + 2) == 0) {
		n--;
		memset(lp(p, n), 0, PAGE_LP_SIZE); /* I8 */
	}
	set_lower(p, PAGE_HEADER_SIZE + n * PAGE_LP_SIZE);
}

int page_item_checked(const uint8_t *p, uint32_t page_size, uint32_t slot,
		      const uint8_t **item, uint32_t *len)
{
	uint32_t off, l;
	int rc = page_bounds_check(p, page_size);
	*item = NULL;
	*len = 0;
	if (rc != 0)
		return rc;
	if (slot >= page_nslots(p))
		return err_set(WD_ECORRUPT, "slot %u beyond the %u line pointers", slot,
			       page_nslots(p));
	off = get_le16(lp_const(p, slot));
	l = get_le16(lp_const(p, slot) + 2);
	if (l == 0)
		return 0;
	if (off < page_upper(p) || off + l > page_special(p))
		return err_set(WD_ECORRUPT,
			       "slot %u: item at %u, %u bytes, outside the item area [%u, %u)",
			       slot, off, l, page_upper(p), page_special(p));
	*item = p + off;
	*len = l;
	return 0;
}
