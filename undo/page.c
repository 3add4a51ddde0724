/*
 * page.c - the bytes of an undo page: formatting, appending record bytes
 * and linking the chain (undo_page_format, undo_page_write,
 * undo_page_link: the helpers both the changes and their redo use, README
 * I3), and the checked decoders of a page and of a record header that
 * undo_read and the tools share (undo_page_view_decode,
 * undo_rec_view_decode); names of kinds and pointers. Layout: README "Formats".
 */
#include <stdio.h>
#include <string.h>

#include "undo/undo_internal.h"

const char *undo_ptr_str(undo_ptr p, char *buf, size_t cap)
{
	if (p == 0)
		snprintf(buf, cap, "none");
	else
		snprintf(buf, cap, "%u/%u", UNDO_PTR_BLK(p), UNDO_PTR_OFF(p));
	return buf;
}

const char *undo_kind_name(unsigned kind)
{
	switch (kind) {
	case UNDO_ROW_INSERT: return "insert";
	case UNDO_ROW_UPDATE: return "update";
	case UNDO_ROW_DELETE: return "delete";
	default: return "unknown";
	}
}

/* used, and lower = used rounded up to 4 (page_verify wants lower 4-aligned
 * past the header): [lower, page end) is the zero tail of the page. */
static void set_used(uint8_t *p, uint32_t used)
{
	put_le32(p + UP_USED, used);
	put_le32(p + PH_LOWER, (used + 3u) & ~3u);
}

void undo_page_format(uint8_t *p, uint32_t ps, wd_xid xid, wd_blkno prev_blk, uint32_t seq)
{
	page_init(p, ps, PAGE_KIND_UNDO, 0);
	put_le64(p + UP_XID, xid);
	put_le32(p + UP_PREV, prev_blk);
	put_le32(p + UP_NEXT, WD_INVALID_BLKNO);
	put_le32(p + UP_SEQ, seq);
	set_used(p, UNDO_DATA_START);
}

void undo_page_write(uint8_t *p, uint32_t ps, const undo_write *w)
{
	if (w->init)
		undo_page_format(p, ps, w->xid, w->prev_blk, w->seq);
	if (w->starts && get_le32(p + UP_FIRST) == 0)
		put_le32(p + UP_FIRST, w->off);
	memcpy(p + w->off, w->data, w->len);
	set_used(p, w->off + w->len);
}

void undo_page_link(uint8_t *p, wd_blkno next)
{
	put_le32(p + UP_NEXT, next);
}

int undo_page_view_decode(const uint8_t *p, uint32_t ps, undo_page_view *v)
{
	memset(v, 0, sizeof *v);
	if (page_kind(p) != PAGE_KIND_UNDO)
		return err_set(WD_ECORRUPT, "%s page where an undo page was expected",
			       page_kind_name(page_kind(p)));
	if (page_bounds_check(p, ps) != 0 || page_special(p) != ps)
		return err_set(WD_ECORRUPT, "undo page with bad bounds (lower %u, upper %u, "
			       "special %u)", page_lower(p), page_upper(p), page_special(p));
	v->xid = get_le64(p + UP_XID);
	v->prev = get_le32(p + UP_PREV);
	v->next = get_le32(p + UP_NEXT);
	v->seq = get_le32(p + UP_SEQ);
	v->first = get_le32(p + UP_FIRST);
	v->used = get_le32(p + UP_USED);
	if (v->used < UNDO_DATA_START || v->used > ps)
		return err_set(WD_ECORRUPT, "undo page: written bytes end at %u, outside [%u, %u]",
			       v->used, UNDO_DATA_START, ps);
	if (v->first && (v->first < UNDO_DATA_START || v->first > v->used - UNDO_REC_HDR))
		return err_set(WD_ECORRUPT, "undo page: first record at %u, outside the "
			       "written bytes [%u, %u)", v->first, UNDO_DATA_START, v->used);
	return 0;
}

/* The header fields of the record at h; WD_ECORRUPT if they make none. */
static int parse_header(const uint8_t *h, undo_rec_view *rv)
{
	if (get_le32(h + UR_MAGIC) != UNDO_REC_MAGIC || h[5] || h[6] || h[7])
		return err_set(WD_ECORRUPT, "no undo record header (magic 0x%08x)",
			       get_le32(h + UR_MAGIC));
	rv->kind = h[UR_KIND];
	rv->rel = get_le32(h + UR_REL);
	rv->klen = get_le32(h + UR_KLEN);
	rv->vlen = get_le64(h + UR_VLEN);
	rv->prev = get_le64(h + UR_PREV);
	if (rv->kind < UNDO_ROW_INSERT || rv->kind > UNDO_ROW_DELETE)
		return err_set(WD_ECORRUPT, "undo record of unknown kind %u", rv->kind);
	if (rv->klen > UNDO_MAX_KEY || rv->vlen > UNDO_MAX_VALUE)
		return err_set(WD_ECORRUPT, "undo record lengths out of bounds (key %u, value %llu)",
			       rv->klen, (unsigned long long)rv->vlen);
	return 0;
}

int undo_rec_view_decode(const uint8_t *p, uint32_t ps, uint32_t off, undo_rec_view *rv)
{
	undo_page_view v;
	uint64_t body;
	int rc;
	memset(rv, 0, sizeof *rv);
	if ((rc = undo_page_view_decode(p, ps, &v)) != 0)
		return rc;
	if (off < UNDO_DATA_START || off > v.used || v.used - off < UNDO_REC_HDR)
		return err_set(WD_ECORRUPT, "no undo record at offset %u: outside the written "
			       "bytes [%u, %u)", off, UNDO_DATA_START, v.used);
	if ((rc = parse_header(p + off, rv)) != 0)
		return rc;
	body = (uint64_t)rv->klen + rv->vlen;
	if (body <= ps - off - UNDO_REC_HDR) {
		rv->end = off + UNDO_REC_HDR + (uint32_t)body;
		if (rv->end > v.used)
			return err_set(WD_ECORRUPT, "undo record at offset %u runs past the "
				       "written bytes (end %u, written to %u)", off, rv->end, v.used);
	} else {
		/* the record continues on the next page: only a full page does */
		rv->end = ps;
		if (v.used != ps)
			return err_set(WD_ECORRUPT, "undo record at offset %u runs past the "
				       "written bytes (%llu bytes, written to %u)", off,
				       (unsigned long long)body, v.used);
	}
	rv->key = p + off + UNDO_REC_HDR;
	rv->key_here = rv->end - off - UNDO_REC_HDR;
	if (rv->key_here > rv->klen)
		rv->key_here = rv->klen;
	return 0;
}
