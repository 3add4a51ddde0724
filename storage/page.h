/*
 * page.h - the common page format: a 32-byte header on every page, the page
 * checksum, and slotted-page helpers shared by heap and btree.
 *
 * Layout of a slotted page (byte tables in storage/README.md):
 *
 *   +--------+------------------+ ... free ... +---------------+---------+
 *   | header | line pointers -> |              | <- item data  | special |
 *   +--------+------------------+--------------+---------------+---------+
 *   0        32               lower          upper         special   page_size
 *
 * Line pointers grow up from the header, item data grows down from the
 * special area; the data region [upper, special) has no holes (removing an
 * item compacts it), so free space is always upper - lower.
 *
 * All functions take the page image as bytes plus its size; none does I/O.
 */
#ifndef WALDEN_STORAGE_PAGE_H
#define WALDEN_STORAGE_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/bytes.h"
#include "storage/error.h"
#include "storage/types.h"

#define PAGE_HEADER_SIZE 32u
#define PAGE_LP_SIZE 4u
#define PAGE_FORMAT_VERSION 1u
#define PAGE_SIZE_MIN 4096u
#define PAGE_SIZE_MAX 65536u
#define PAGE_SIZE_DEFAULT 8192u

/* Header field offsets (little-endian). */
#define PH_LSN 0      /* u64 pageLSN: LSN of the last change */
#define PH_CHECKSUM 8 /* u32 CRC-32, see page_checksum() */
#define PH_FLAGS 12   /* u16 page-kind specific flags */
#define PH_KIND 14    /* u8  page kind (enum page_kind) */
#define PH_VERSION 15 /* u8  PAGE_FORMAT_VERSION */
#define PH_LOWER 16   /* u32 end of the line-pointer array */
#define PH_UPPER 20   /* u32 start of item data */
#define PH_SPECIAL 24 /* u32 start of the special area */
#define PH_RESERVED 28 /* u32 zero */

/* Page kinds. Values are on disk: never reuse one. */
enum page_kind {
	PAGE_KIND_NONE = 0, /* all-zero page, never written */
	PAGE_KIND_RAW = 1,  /* header only, body owned by the user (tests, bench) */
	PAGE_KIND_HEAP = 2,
	PAGE_KIND_BTREE = 3,
	PAGE_KIND_OVERFLOW = 4,
	PAGE_KIND_FSM = 5,
	PAGE_KIND_UNDO = 6,
	PAGE_KIND_META = 7,
};

/* A name for a page kind ("heap", ...) or "unknown". */
const char *page_kind_name(unsigned kind);

/* true if size is a power of two in [PAGE_SIZE_MIN, PAGE_SIZE_MAX]. */
bool page_size_valid(uint32_t size);

/* ---- header ---- */
void page_init(uint8_t *p, uint32_t page_size, unsigned kind,
	       uint32_t special_size);
/* Inline: every page change and search reads them, several times. */
static inline wd_lsn page_lsn(const uint8_t *p) { return get_le64(p + PH_LSN); }
static inline void page_set_lsn(uint8_t *p, wd_lsn lsn) { put_le64(p + PH_LSN, lsn); }
static inline unsigned page_kind(const uint8_t *p) { return p[PH_KIND]; }
static inline uint16_t page_flags(const uint8_t *p) { return get_le16(p + PH_FLAGS); }
static inline void page_set_flags(uint8_t *p, uint16_t f) { put_le16(p + PH_FLAGS, f); }
static inline uint32_t page_lower(const uint8_t *p) { return get_le32(p + PH_LOWER); }
static inline uint32_t page_upper(const uint8_t *p) { return get_le32(p + PH_UPPER); }
static inline uint32_t page_special(const uint8_t *p) { return get_le32(p + PH_SPECIAL); }
static inline uint8_t *page_special_ptr(uint8_t *p) { return p + page_special(p); }

/* ---- checksum ----
 * CRC-32 (the zlib/gzip polynomial 0xEDB88320, reflected) over bytes
 * [0, 8) and [12, page_size) of the page followed by the block number as 4
 * little-endian bytes, so a page written to the wrong block fails too.
 * Computed with ISA-L (bit-identical to zlib's crc32, about 20x faster),
 * through storage_crc32 (storage/crc.h). */
uint32_t page_checksum(const uint8_t *p, uint32_t page_size, wd_blkno blkno);
void page_checksum_set(uint8_t *p, uint32_t page_size, wd_blkno blkno);

/* true if every byte of the page is zero: a page never written. */
bool page_is_zero(const uint8_t *p, uint32_t page_size);

/*
 * Checks a page just read from file `file` at block blkno: 0 if valid,
 * PAGE_VERIFY_NEW if all-zero (never written), else WD_ECORRUPT with a
 * detail naming the file, the block and what is wrong (checksum mismatch,
 * bad header bounds, unknown version).
 */
#define PAGE_VERIFY_NEW 1
int page_verify(const uint8_t *p, uint32_t page_size, wd_blkno blkno,
		const char *file) WD_MUST_CHECK;

/* ---- slotted pages ----
 * Slots are numbered from 0. A slot whose line pointer has length 0 is
 * unused (left by page_item_clear and reusable by page_item_add). */
#define PAGE_SLOT_NEW 0xFFFFu /* page_item_add: reuse an unused slot or append */

uint32_t page_nslots(const uint8_t *p);
/* Bytes available for one more item including its line pointer. */
uint32_t page_free_space(const uint8_t *p);
/* Bytes available if a new line pointer is not needed (item reuses a slot). */
uint32_t page_free_space_noslot(const uint8_t *p);

/*
 * Adds an item. slot == PAGE_SLOT_NEW: into the first unused slot, else a
 * new slot at the end (heap style: slot numbers are stable). Otherwise the
 * item is inserted AT index slot (0..nslots) and later line pointers shift
 * up by one (btree style: slots kept in key order).
 * Returns the slot used (>= 0) or WD_ENOSPC if it does not fit, WD_EINVAL.
 */
int page_item_add(uint8_t *p, const void *item, uint32_t len, uint32_t slot);

/* The first unused slot of p, or page_nslots(p) if every slot is in use:
 * the slot page_item_add(PAGE_SLOT_NEW) would take. */
uint32_t page_first_unused(const uint8_t *p);

/*
 * page_item_add(PAGE_SLOT_NEW) for a caller that already asked
 * page_first_unused (slot) and has not changed p since: the same result
 * and bytes without scanning the line pointers again (a heap insert looks
 * for its slot before it logs the change, then applies it). Only that slot
 * being unused, or nslots, is checked: WD_EINVAL otherwise.
 */
int page_item_add_first_unused(uint8_t *p, const void *item, uint32_t len, uint32_t slot);

/* The item in slot (NULL if the slot is out of range or unused). */
uint8_t *page_item(uint8_t *p, uint32_t slot, uint32_t *len);
const uint8_t *page_item_const(const uint8_t *p, uint32_t slot, uint32_t *len);

/* Removes slot's data and marks it unused; other slot numbers stay. */
void page_item_clear(uint8_t *p, uint32_t slot);

/* Removes slot's data and its line pointer; later slots shift down. */
void page_item_remove(uint8_t *p, uint32_t slot);

/* Replaces slot's data with len bytes; WD_ENOSPC if it does not fit. */
int page_item_replace(uint8_t *p, uint32_t slot, const void *item, uint32_t len);

/* Drops trailing unused line pointers (heap: after clears). */
void page_trim_slots(uint8_t *p);

/* ---- reading pages that may be damaged (walden inspect, walden check) ----
 * The accessors above trust the page (it passed page_verify or was built
 * here). These two never read outside [p, p + page_size). */

/* 0 if lower, upper and special are in order and inside the page (what
 * page_verify checks after the checksum), else WD_ECORRUPT saying which. */
int page_bounds_check(const uint8_t *p, uint32_t page_size) WD_MUST_CHECK;

/*
 * The layout the slotted-page helpers (page_item_add/remove/replace/clear)
 * rely on, for a page about to be changed that did not come through
 * page_verify (a full-page image restored by redo): format version,
 * page_bounds_check, and for the slotted kinds (heap, B+tree) every used
 * line pointer's item inside [upper, special) with no two items
 * overlapping (so moving items stays inside the page; I7 holds for pages
 * walden writes, which also leave no gap). 0 or WD_ECORRUPT saying what.
 */
int page_layout_check(const uint8_t *p, uint32_t page_size) WD_MUST_CHECK;

/*
 * Slot's item, checked: 0 with *item and *len set (*item NULL, *len 0 for
 * an unused slot), or WD_ECORRUPT if the header bounds are bad, slot is
 * beyond the line pointers, or the item does not lie within
 * [upper, special).
 */
int page_item_checked(const uint8_t *p, uint32_t page_size, uint32_t slot,
		      const uint8_t **item, uint32_t *len) WD_MUST_CHECK;

#endif
