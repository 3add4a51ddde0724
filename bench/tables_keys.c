/*
 * tables_keys.c - the keys and values every table benchmark writes and
 * checks (bench_tables.c, bench_txn.c): keys are the 16-digit zero-padded
 * decimal of a number, values a filler pattern stamped with their key and
 * a version byte, so that a read of the wrong row is caught.
 */
#include <stdlib.h>
#include <string.h>

#include "bench/tables.h"

void key_fmt(uint8_t k[KEY_BYTES], uint64_t x)
{
	for (int i = KEY_BYTES - 1; i >= 0; i--) {
		k[i] = (uint8_t)('0' + x % 10);
		x /= 10;
	}
}

void value_fill(uint8_t *v, size_t vb)
{
	for (size_t i = 0; i < vb; i++)
		v[i] = (uint8_t)('a' + i % 26);
}

uint8_t *value_new(size_t vb)
{
	uint8_t *v = malloc(vb + 1);
	if (v)
		value_fill(v, vb);
	return v;
}

void value_stamp(uint8_t *v, size_t vb, const uint8_t k[KEY_BYTES], uint8_t ver)
{
	memcpy(v, k, vb < KEY_BYTES ? vb : KEY_BYTES);
	if (vb > KEY_BYTES)
		v[KEY_BYTES] = ver;
}

bool value_ok(const struct eh *h, const uint8_t *k, const void *v, size_t vl)
{
	size_t vb = h->o->value_bytes;
	return vl == vb && memcmp(v, k, vb < KEY_BYTES ? vb : KEY_BYTES) == 0;
}
