/*
 * tables_keys.c - the keys and values every table benchmark writes and
 * checks (bench_tables.c, bench_txn.c, the recovery benchmarks): keys are
 * the 16-digit zero-padded decimal of a number, in order, in a random
 * permutation or at random; values a filler pattern stamped with their key
 * and a version byte, so that a read of the wrong row is caught; and the
 * put loop of the loads and updates (tables_puts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
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

uint64_t key_next(struct keysrc *s)
{
	switch (s->mode) {
	case K_SEQ: return s->i++;
	case K_PERM: return s->perm[s->i++];
	default: return bench_rand(&s->state) % s->n;
	}
}

uint64_t *key_permutation(uint64_t n, uint64_t seed)
{
	uint64_t *p = malloc((n ? n : 1) * sizeof *p);
	for (uint64_t i = 0; p && i < n; i++)
		p[i] = i;
	for (uint64_t i = n ? n - 1 : 0; p && i > 0; i--) {
		uint64_t j = bench_rand(&seed) % (i + 1), t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
	return p;
}

double tables_puts(const struct engine *e, struct eh *h, struct keysrc *src, uint64_t count,
		   uint64_t per_txn, uint8_t ver)
{
	size_t vb = h->o->value_bytes;
	uint8_t k[KEY_BYTES], *v = value_new(vb);
	uint64_t t0 = bench_now_ns();
	double r = -1;
	if (!v) {
		snprintf(h->err, sizeof h->err, "out of memory");
		return -1;
	}
	for (uint64_t i = 0; i < count; i++) {
		if (i % per_txn == 0 && e->begin(h, true) != 0)
			goto out;
		key_fmt(k, key_next(src));
		value_stamp(v, vb, k, ver);
		if (e->put(h, k, KEY_BYTES, v, vb) != 0)
			goto out;
		if (((i + 1) % per_txn == 0 || i + 1 == count) && e->commit(h) != 0)
			goto out;
	}
	r = bench_rate(count, t0);
out:
	free(v);
	return r;
}
