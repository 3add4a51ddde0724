/*
 * kvset.c - sets of rows (composite key, value or absence): the base state,
 * the recovered state, the writes of a transaction. Entry points:
 * ct_kvset_add/sort/find/free/digest, ct_key_cmp.
 */
#include <stdlib.h>
#include <string.h>

#include "crashtest/ct_internal.h"

static void *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	if (!c)
		abort();
	if (n)
		memcpy(c, p, n);
	return c;
}

void ct_kvset_add(ct_kvset *s, const uint8_t *k, size_t klen, const uint8_t *v,
		  size_t vlen, bool present)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		ct_kv *kv = realloc(s->kv, cap * sizeof *kv);
		if (!kv)
			abort();
		s->kv = kv;
		s->cap = cap;
	}
	s->kv[s->n++] = (ct_kv){.k = dup_bytes(k, klen), .klen = (uint32_t)klen,
				.v = present ? dup_bytes(v, vlen) : NULL,
				.vlen = present ? (uint32_t)vlen : 0, .present = present};
}

int ct_key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static int kv_cmp(const void *a, const void *b)
{
	const ct_kv *x = a, *y = b;
	return ct_key_cmp(x->k, x->klen, y->k, y->klen);
}

/* Keys are unique in every set the harness sorts. */
void ct_kvset_sort(ct_kvset *s)
{
	if (s->n > 1)
		qsort(s->kv, s->n, sizeof *s->kv, kv_cmp);
}

const ct_kv *ct_kvset_find(const ct_kvset *s, const uint8_t *k, size_t klen)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ct_key_cmp(s->kv[mid].k, s->kv[mid].klen, k, klen);
		if (c == 0)
			return &s->kv[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void ct_kvset_free(ct_kvset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->kv[i].k);
		free(s->kv[i].v);
	}
	free(s->kv);
	*s = (ct_kvset){0};
}

/* FNV-1a over every (key length, key, value length, value) in order. */
uint64_t ct_kvset_digest(const ct_kvset *s)
{
	uint64_t h = CT_FNV_INIT;
	for (size_t i = 0; i < s->n; i++) {
		h = ct_fnv(h, &s->kv[i].klen, sizeof s->kv[i].klen);
		h = ct_fnv(h, s->kv[i].k, s->kv[i].klen);
		h = ct_fnv(h, &s->kv[i].vlen, sizeof s->kv[i].vlen);
		if (s->kv[i].present)
			h = ct_fnv(h, s->kv[i].v, s->kv[i].vlen);
	}
	return h;
}
