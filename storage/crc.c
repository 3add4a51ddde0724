/*
 * crc.c - storage_crc32 (crc.h): ISA-L's CRC-32, then vzeroupper where the
 * CPU has AVX; a few bytes, a byte at a time with zlib's table.
 */
#include <isa-l/crc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <zlib.h>

#include "storage/crc.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX__)
/* Clears the upper halves of the vector registers (VZEROUPPER), if the CPU
 * has AVX (the instruction faults otherwise). Code built without AVX keeps
 * nothing there, so nothing of ours is lost. */
static void clear_upper(void)
{
	static int has_avx = -1; /* -1: not asked yet; a benign race */
	int h = __atomic_load_n(&has_avx, __ATOMIC_RELAXED);
	if (h < 0) {
		h = __builtin_cpu_supports("avx") ? 1 : 0;
		__atomic_store_n(&has_avx, h, __ATOMIC_RELAXED);
	}
	if (h)
		__asm__ volatile("vzeroupper" ::: "memory");
}
#else
static void clear_upper(void)
{
}
#endif

/* Below this many bytes a table lookup per byte costs less than ISA-L's
 * set-up: a WAL record's CRC ends with its 4-byte length field (about 75
 * instructions through ISA-L, 25 here), three records per put. */
#define CRC_SHORT 16u

/* zlib's own table, the same polynomial and reflection: the byte-at-a-time
 * CRC is zlib's crc32 (crc.h), computed inline. */
static uint32_t crc_short(uint32_t crc, const uint8_t *p, uint64_t len)
{
	static const z_crc_t *_Atomic table;
	const z_crc_t *t = atomic_load_explicit(&table, memory_order_relaxed);
	if (!t) {
		t = get_crc_table(); /* a constant table: a race stores the same */
		atomic_store_explicit(&table, t, memory_order_relaxed);
	}
	crc = ~crc;
	while (len-- > 0)
		crc = (uint32_t)t[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

/* Never inlined: vzeroupper must not land in a caller built with AVX that
 * keeps values in the upper halves (link-time optimisation could). */
__attribute__((noinline)) uint32_t storage_crc32(uint32_t crc, const void *p, uint64_t len)
{
	if (len < CRC_SHORT)
		return crc_short(crc, p, len); /* no vector register touched */
	crc = crc32_gzip_refl(crc, p, len);
	clear_upper();
	return crc;
}
