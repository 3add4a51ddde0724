/*
 * crc.h - the CRC-32 of pages and WAL records (segment headers, the control
 * file and the power-loss journal use zlib's crc32: the same function, on
 * paths where its speed does not matter): storage_crc32, ISA-L's
 * crc32_gzip_refl (the zlib/gzip polynomial, reflected; bit-identical to
 * zlib's crc32) followed by a clean-up of the vector registers' upper
 * halves.
 */
#ifndef WALDEN_STORAGE_CRC_H
#define WALDEN_STORAGE_CRC_H

#include <stdint.h>

/*
 * Continues crc over len bytes at p (start from 0), as zlib's crc32 does.
 *
 * Why not call ISA-L directly: on a CPU with AVX-512 its fastest routine
 * returns with the upper halves of the vector registers dirty (no
 * vzeroupper), and until something clears them every SSE instruction the
 * compiler emits (the inlined memset and memcpy of a few dozen bytes all
 * over the write path) pays an AVX-SSE transition penalty: after a WAL
 * insert, building the next record cost several times its work. So the
 * upper halves are cleared on the way out, where the CPU has AVX.
 */
uint32_t storage_crc32(uint32_t crc, const void *p, uint64_t len);

#endif /* WALDEN_STORAGE_CRC_H */
