/*
 * crc.c - storage_crc32 (crc.h): ISA-L's CRC-32, then vzeroupper where the
 * CPU has AVX.
 */
#include <isa-l/crc.h>
#include <stdbool.h>

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

/* Never inlined: vzeroupper must not land in a caller built with AVX that
 * keeps values in the upper halves (link-time optimisation could). */
__attribute__((noinline)) uint32_t storage_crc32(uint32_t crc, const void *p, uint64_t len)
{
	crc = crc32_gzip_refl(crc, p, len);
	clear_upper();
	return crc;
}
