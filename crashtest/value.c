/*
 * value.c - the self-describing values of the workloads (README "Formats"):
 * each value names the transaction and operation that wrote it and is
 * filled with bytes derived from its key, header and payload, so that the
 * verdict can say whose value a key shows and notice a damaged one.
 * Entry points: ct_ckey, ct_ckey_split, ct_ckey_str, ct_value_build,
 * ct_value_check, ct_fnv.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "crashtest/ct_internal.h"
#include "storage/bytes.h"

uint64_t ct_fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

size_t ct_ckey(const char *table, const void *k, size_t klen, uint8_t *out)
{
	size_t tl = strlen(table);
	if (tl > 255 || 1 + tl + klen > CT_MAX_CKEY)
		return 0;
	out[0] = (uint8_t)tl;
	memcpy(out + 1, table, tl);
	memcpy(out + 1 + tl, k, klen);
	return 1 + tl + klen;
}

bool ct_ckey_split(const uint8_t *ck, size_t cklen, char *table, const uint8_t **k,
		   size_t *klen)
{
	if (cklen < 1 || (size_t)ck[0] + 1 > cklen)
		return false;
	memcpy(table, ck + 1, ck[0]);
	table[ck[0]] = '\0';
	*k = ck + 1 + ck[0];
	*klen = cklen - 1 - ck[0];
	return true;
}

void ct_ckey_str(const uint8_t *ck, size_t cklen, char *out, size_t cap)
{
	char table[256];
	const uint8_t *k;
	size_t kl, n, show;
	if (!ct_ckey_split(ck, cklen, table, &k, &kl)) {
		snprintf(out, cap, "(bad key of %zu bytes)", cklen);
		return;
	}
	n = (size_t)snprintf(out, cap, "%s/'", table);
	show = kl < 20 ? kl : 20;
	for (size_t i = 0; i < show && n + 2 < cap; i++)
		out[n++] = isprint(k[i]) ? (char)k[i] : '.';
	if (n < cap)
		snprintf(out + n, cap - n, "%s'", kl > show ? "..." : "");
}

/* The seed of the filler: key, header and payload. */
static uint64_t filler_seed(const uint8_t *ck, size_t cklen, const uint8_t *hdr,
			    const void *payload, uint32_t plen)
{
	uint64_t h = ct_fnv(CT_FNV_INIT, ck, cklen);
	h = ct_fnv(h, hdr, CT_VAL_HDR);
	return ct_fnv(h, payload, plen);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed, r = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			r = ct_rand(&s);
		p[i] = (uint8_t)(r >> (8 * (i % 8)));
	}
}

/* Header (24 bytes, little-endian): u32 magic, u64 txn, u32 op, u32 plen,
 * u32 total; then the payload, then the filler up to total. */
void ct_value_build(const uint8_t *ck, size_t cklen, uint64_t txn, uint32_t op,
		    const void *payload, uint32_t plen, uint32_t total, uint8_t *out)
{
	put_le32(out, CT_VAL_MAGIC);
	put_le64(out + 4, txn);
	put_le32(out + 12, op);
	put_le32(out + 16, plen);
	put_le32(out + 20, total);
	if (plen)
		memcpy(out + CT_VAL_HDR, payload, plen);
	fill(out + CT_VAL_HDR + plen, total - CT_VAL_HDR - plen,
	     filler_seed(ck, cklen, out, payload, plen));
}

bool ct_value_check(const uint8_t *ck, size_t cklen, const uint8_t *v, size_t vlen,
		    ct_tag *tag, const char **why)
{
	uint64_t s, r = 0;
	size_t start;
	if (vlen < CT_VAL_HDR || get_le32(v) != CT_VAL_MAGIC) {
		*why = "not a value any workload writes (no header)";
		return false;
	}
	tag->txn = get_le64(v + 4);
	tag->op = get_le32(v + 12);
	tag->plen = get_le32(v + 16);
	tag->total = get_le32(v + 20);
	tag->payload = v + CT_VAL_HDR;
	if (tag->total != vlen || tag->plen > vlen - CT_VAL_HDR) {
		*why = "its length disagrees with its header";
		return false;
	}
	start = CT_VAL_HDR + tag->plen;
	s = filler_seed(ck, cklen, v, tag->payload, tag->plen);
	for (size_t i = 0; i < vlen - start; i++) {
		if (i % 8 == 0)
			r = ct_rand(&s);
		if (v[start + i] != (uint8_t)(r >> (8 * (i % 8)))) {
			*why = "its bytes do not match its header, payload and key";
			return false;
		}
	}
	return true;
}
