/*
 * ckpt_rec.c - XLOG_CHECKPOINT main data: wal_ckpt_encode, wal_ckpt_decode,
 * wal_ckpt_describe (byte table in recovery/README.md "Formats").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/bytes.h"
#include "wal/ckpt_rec.h"
#include "wal/format.h"

int wal_ckpt_encode(const wal_ckpt *c, uint8_t **out, uint32_t *len)
{
	uint64_t n = WAL_CKPT_FIXED + (uint64_t)c->natt * WAL_CKPT_ATT_SIZE +
		     (uint64_t)c->ndpt * WAL_CKPT_DPT_SIZE + WAL_CKPT_TAIL;
	uint8_t *b, *p;
	if (n > WAL_MAX_RECORD_SIZE / 2)
		return err_set(WD_ETOOBIG, "checkpoint record: %llu bytes of tables",
			       (unsigned long long)n);
	if (!(b = malloc(n)))
		return err_set(WD_ENOMEM, "checkpoint record: out of memory");
	put_le64(b, c->redo);
	put_le64(b + 8, c->next_xid);
	put_le32(b + 16, c->natt);
	put_le32(b + 20, c->ndpt);
	p = b + WAL_CKPT_FIXED;
	for (uint32_t i = 0; i < c->natt; i++, p += WAL_CKPT_ATT_SIZE) {
		put_le64(p, c->att[i].xid);
		put_le64(p + 8, c->att[i].last_lsn);
		put_le64(p + 16, c->att[i].head);
	}
	for (uint32_t i = 0; i < c->ndpt; i++, p += WAL_CKPT_DPT_SIZE) {
		put_le32(p, c->dpt[i].rel);
		put_le32(p + 4, c->dpt[i].blk);
		put_le64(p + 8, c->dpt[i].rec_lsn);
	}
	put_le64(p, c->dpt_lsn);
	*out = b;
	*len = (uint32_t)n;
	return 0;
}

/* The tables of c from p (lengths already checked). */
static void decode_tables(const uint8_t *p, wal_ckpt *c)
{
	for (uint32_t i = 0; i < c->natt; i++, p += WAL_CKPT_ATT_SIZE)
		c->att[i] = (wal_ckpt_att){get_le64(p), get_le64(p + 8), get_le64(p + 16)};
	for (uint32_t i = 0; i < c->ndpt; i++, p += WAL_CKPT_DPT_SIZE)
		c->dpt[i] = (wal_ckpt_dpt){get_le32(p), get_le32(p + 4), get_le64(p + 8)};
}

int wal_ckpt_decode(const wal_decoded *rec, wal_ckpt *c)
{
	const uint8_t *m = rec->main_data;
	uint64_t tables;
	memset(c, 0, sizeof *c);
	if (rec->main_len < WAL_CKPT_FIXED)
		goto bad;
	c->redo = get_le64(m);
	c->next_xid = get_le64(m + 8);
	c->natt = get_le32(m + 16);
	c->ndpt = get_le32(m + 20);
	tables = WAL_CKPT_FIXED + (uint64_t)c->natt * WAL_CKPT_ATT_SIZE +
		 (uint64_t)c->ndpt * WAL_CKPT_DPT_SIZE;
	if (rec->main_len == tables + WAL_CKPT_TAIL)
		c->dpt_lsn = get_le64(m + tables);
	else if (rec->main_len == tables)
		/* the first layout: an unlisted page gives nothing beyond I4;
		 * a listed page's recLSN still holds (recovery I7) */
		c->dpt_lsn = c->redo;
	else
		goto bad;
	if (c->dpt_lsn < c->redo)
		return err_set(WD_ECORRUPT, "checkpoint record at " LSN_FMT ": its dirty page "
			       "table was listed at " LSN_FMT ", before its redo point " LSN_FMT,
			       LSN_ARGS(rec->lsn), LSN_ARGS(c->dpt_lsn), LSN_ARGS(c->redo));
	c->att = malloc((c->natt ? c->natt : 1) * sizeof *c->att);
	c->dpt = malloc((c->ndpt ? c->ndpt : 1) * sizeof *c->dpt);
	if (!c->att || !c->dpt) {
		wal_ckpt_free(c);
		return err_set(WD_ENOMEM, "checkpoint record: out of memory");
	}
	decode_tables(m + WAL_CKPT_FIXED, c);
	return 0;
bad:
	return err_set(WD_ECORRUPT, "checkpoint record at " LSN_FMT ": main data of %u bytes "
		       "does not match its table counts", LSN_ARGS(rec->lsn), rec->main_len);
}

void wal_ckpt_free(wal_ckpt *c)
{
	free(c->att);
	free(c->dpt);
	c->att = NULL;
	c->dpt = NULL;
}

/* Appends to buf at *off, stopping (with "...") when it is full. */
static bool add(char *buf, size_t cap, size_t *off, const char *s)
{
	size_t n = strlen(s);
	if (*off + n + 4 >= cap) {
		if (*off + 4 < cap)
			*off += (size_t)snprintf(buf + *off, cap - *off, "...");
		return false;
	}
	memcpy(buf + *off, s, n + 1);
	*off += n;
	return true;
}

void wal_ckpt_describe(const wal_decoded *rec, char *buf, size_t cap)
{
	wal_ckpt c;
	char s[96];
	size_t off = 0;
	if (cap == 0)
		return;
	buf[0] = 0;
	if (wal_ckpt_decode(rec, &c) != 0) {
		snprintf(buf, cap, "bad checkpoint data (%u bytes)", rec->main_len);
		return;
	}
	snprintf(s, sizeof s, "redo " LSN_FMT " next_xid %llu att %u dpt %u listed at " LSN_FMT,
		 LSN_ARGS(c.redo), (unsigned long long)c.next_xid, c.natt, c.ndpt,
		 LSN_ARGS(c.dpt_lsn));
	bool ok = add(buf, cap, &off, s);
	for (uint32_t i = 0; ok && i < c.natt; i++) {
		snprintf(s, sizeof s, "%s xid %llu last " LSN_FMT " undo %llX", i ? "," : "; att:",
			 (unsigned long long)c.att[i].xid, LSN_ARGS(c.att[i].last_lsn),
			 (unsigned long long)c.att[i].head);
		ok = add(buf, cap, &off, s);
	}
	for (uint32_t i = 0; ok && i < c.ndpt; i++) {
		snprintf(s, sizeof s, "%s rel %u blk %u rec " LSN_FMT, i ? "," : "; dpt:",
			 c.dpt[i].rel, c.dpt[i].blk, LSN_ARGS(c.dpt[i].rec_lsn));
		ok = add(buf, cap, &off, s);
	}
	wal_ckpt_free(&c);
}
