/*
 * bytes.h - explicit little-endian encoding. Every on-disk integer in walden
 * is little-endian and is read and written through these helpers, never by
 * copying a struct.
 */
#ifndef WALDEN_STORAGE_BYTES_H
#define WALDEN_STORAGE_BYTES_H

#include <stdint.h>
#include <string.h>

/*
 * Each helper is one load or store of the host's integer, byte-swapped on a
 * big-endian host: memcpy of a scalar (never of a struct) compiles to a
 * single move, and the order of the bytes in memory is the little-endian
 * one either way.
 */
#if !defined(__BYTE_ORDER__)
#error "walden needs __BYTE_ORDER__ (gcc or clang) to encode its on-disk integers"
#elif __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LE16(v) __builtin_bswap16(v)
#define LE32(v) __builtin_bswap32(v)
#define LE64(v) __builtin_bswap64(v)
#else
#define LE16(v) (v)
#define LE32(v) (v)
#define LE64(v) (v)
#endif

static inline void put_le16(uint8_t *p, uint16_t v)
{
	v = LE16(v);
	memcpy(p, &v, sizeof v);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	v = LE32(v);
	memcpy(p, &v, sizeof v);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	v = LE64(v);
	memcpy(p, &v, sizeof v);
}

static inline uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof v);
	return LE16(v);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return LE32(v);
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return LE64(v);
}

#undef LE16
#undef LE32
#undef LE64

#endif
