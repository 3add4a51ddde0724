/*
 * check.c - btree_check, the verifier behind `walden check` (every
 * invariant of README "Invariants", first violation named by page and
 * item), and btree_dot, the Graphviz picture behind `walden dot`. Both
 * hold the structure lock exclusively, so they see one consistent tree.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "btree/bt_internal.h"

typedef struct chk {
	btree *t;
	btree_check_report *r;
	wd_blkno nblocks;
	uint8_t *seen;          /* per block: 1 reachable, 2 free-listed */
	uint8_t *pages[64];     /* a page copy per depth */
	wd_blkno prev_leaf;     /* the leaf before in key order */
	wd_blkno prev_right;    /* its right link */
	uint8_t *last_key;      /* the greatest key seen so far in leaves */
	uint32_t last_len;
	bool have_last;
} chk;

/* Records the first violation and returns WD_ECORRUPT. */
WD_PRINTF(4, 5)
static int viol(chk *c, wd_blkno blk, int item, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->r->msg, sizeof c->r->msg, fmt, ap);
	va_end(ap);
	c->r->ok = false;
	c->r->bad_blk = blk;
	c->r->bad_item = item;
	return err_set(WD_ECORRUPT, "btree rel %u: block %u item %d: %s", c->t->rel, blk,
		       item, c->r->msg);
}

/* Reads block blk into c->pages[depth] (the latch is not kept: the
 * exclusive structure lock keeps the tree still). */
static int read_copy(chk *c, wd_blkno blk, unsigned depth)
{
	bm_buf *buf;
	int rc;
	if (!c->pages[depth] && !(c->pages[depth] = malloc(c->t->ps)))
		return err_set(WD_ENOMEM, "btree check: no memory");
	if ((rc = bt_pin(c->t, blk, BM_SHARE, &buf)) != 0)
		return rc;
	memcpy(c->pages[depth], bufmgr_page(buf), c->t->ps);
	bt_release(c->t, buf);
	return 0;
}

/* I1-I3, I5: kind, level, flags (no unknown bit), no sibling links on
 * internal pages, and in-page key order. */
static int check_header(chk *c, const uint8_t *p, wd_blkno blk, uint32_t level, bool root)
{
	uint32_t n = bt_nitems(p), flags;
	/* the special area is read only once bt_page_live found it in its one
	 * valid place: page_verify lets a header put it at the page's end */
	if (!bt_page_live(p, c->t->ps))
		return viol(c, blk, -1, "not a live B+tree page (kind %s, special at %u)",
			    page_kind_name(page_kind(p)), page_special(p));
	flags = bt_flags(p);
	if (bt_level(p) != level)
		return viol(c, blk, -1, "level %u, expected %u (leaves at unequal depth)",
			    bt_level(p), level);
	if (flags & ~BTF_KNOWN)
		return viol(c, blk, -1, "unknown flag bits 0x%x", flags & ~BTF_KNOWN);
	if (!!(flags & BTF_LEAF) != (level == 0) || !!(flags & BTF_ROOT) != root)
		return viol(c, blk, -1, "flags 0x%x do not fit level %u%s", flags, level,
			    root ? " (root)" : "");
	if (level > 0 && (bt_left(p) != WD_INVALID_BLKNO || bt_right(p) != WD_INVALID_BLKNO))
		return viol(c, blk, -1, "internal page with sibling links %u/%u (I5: none)",
			    bt_left(p), bt_right(p));
	if (level > 0 && n == 0)
		return viol(c, blk, -1, "internal page without children");
	for (uint32_t i = 0; i < n; i++) {
		btree_item_view iv;
		if (btree_item_view_decode(p, c->t->ps, i, &iv) != 0)
			return viol(c, blk, (int)i, "%s", wd_last_error());
		if (iv.klen > c->t->max_key)
			return viol(c, blk, (int)i, "key of %u bytes, longer than the %u allowed",
				    iv.klen, c->t->max_key);
	}
	if (level > 0) {
		uint32_t l0;
		bt_key(p, 0, &l0);
		if (l0 != 0)
			return viol(c, blk, 0, "first item of an internal page has a key");
	}
	for (uint32_t i = (level > 0) + 1; i < n; i++) {
		uint32_t la, lb;
		const uint8_t *a = bt_key(p, i - 1, &la), *b = bt_key(p, i, &lb);
		if (bt_keycmp(a, la, b, lb) >= 0)
			return viol(c, blk, (int)i, "key not greater than the one before");
	}
	return 0;
}

/* I4: every key of the page lies in [lo, hi) given by the parent. */
static int check_bounds(chk *c, const uint8_t *p, wd_blkno blk, const uint8_t *lo,
			uint32_t lol, const uint8_t *hi, uint32_t hil)
{
	uint32_t n = bt_nitems(p);
	for (uint32_t i = bt_level(p) > 0; i < n; i++) {
		uint32_t l;
		const uint8_t *k = bt_key(p, i, &l);
		if (lo && bt_keycmp(k, l, lo, lol) < 0)
			return viol(c, blk, (int)i, "key below the parent's separator");
		if (hi && bt_keycmp(k, l, hi, hil) >= 0)
			return viol(c, blk, (int)i, "key not below the parent's next separator");
	}
	return 0;
}

/* I5-I6: the leaf chain follows key order, links agree both ways, and the
 * last key of a leaf is below the first key of the next. */
static int check_leaf(chk *c, const uint8_t *p, wd_blkno blk)
{
	uint32_t n = bt_nitems(p), l;
	if (bt_left(p) != c->prev_leaf)
		return viol(c, blk, -1, "left link %u, expected %u", bt_left(p), c->prev_leaf);
	if (c->prev_leaf != WD_INVALID_BLKNO && c->prev_right != blk)
		return viol(c, c->prev_leaf, -1, "right link %u, expected %u (left of right "
			    "is not self)", c->prev_right, blk);
	if (n && c->have_last) {
		const uint8_t *k = bt_key(p, 0, &l);
		if (bt_keycmp(c->last_key, c->last_len, k, l) >= 0)
			return viol(c, blk, 0, "first key not above the left sibling's last key");
	}
	if (n) {
		const uint8_t *k = bt_key(p, n - 1, &l);
		memcpy(c->last_key, k, l);
		c->last_len = l;
		c->have_last = true;
	}
	c->prev_leaf = blk;
	c->prev_right = bt_right(p);
	c->r->leaves++;
	c->r->items += n;
	return 0;
}

/* Depth-first walk of the subtree at blk with key bounds [lo, hi). */
static int check_page(chk *c, wd_blkno blk, uint32_t level, unsigned depth,
		      const uint8_t *lo, uint32_t lol, const uint8_t *hi, uint32_t hil)
{
	int rc;
	if (blk >= c->nblocks || depth >= sizeof c->pages / sizeof c->pages[0])
		return viol(c, blk, -1, "block beyond the relation or tree too deep");
	if (c->seen[blk])
		return viol(c, blk, -1, "page reached twice");
	c->seen[blk] = 1;
	c->r->pages++;
	if ((rc = read_copy(c, blk, depth)) != 0)
		return rc;
	const uint8_t *p = c->pages[depth];
	if ((rc = check_header(c, p, blk, level, depth == 0)) ||
	    (rc = check_bounds(c, p, blk, lo, lol, hi, hil)))
		return rc;
	if (level == 0)
		return check_leaf(c, p, blk);
	c->r->internal++;
	for (uint32_t i = 0, n = bt_nitems(p); i < n; i++) {
		uint32_t kl = 0, nl = 0;
		const uint8_t *k = i ? bt_key(p, i, &kl) : lo;
		const uint8_t *nk = i + 1 < n ? bt_key(p, i + 1, &nl) : hi;
		if (!i)
			kl = lol;
		if (i + 1 >= n)
			nl = hil;
		if ((rc = check_page(c, bt_item_child(p, i), level - 1, depth + 1, k, kl, nk, nl)))
			return rc;
		p = c->pages[depth]; /* unchanged: children use deeper slots */
	}
	return 0;
}

/* I6: the free list holds deleted pages only, none reachable, no cycle.
 * Each entry is checked to be a deleted B+tree page with the special area
 * in its one valid place (bt_page_free) before its next link is read. */
static int check_free(chk *c, wd_blkno head)
{
	for (wd_blkno b = head; b != WD_INVALID_BLKNO;) {
		int rc;
		if (b >= c->nblocks || c->seen[b] == 2)
			return viol(c, b, -1, "free list leaves the relation or loops");
		if (c->seen[b] == 1)
			return viol(c, b, -1, "free-listed page is reachable from the root");
		c->seen[b] = 2;
		if ((rc = read_copy(c, b, 0)) != 0)
			return rc;
		if (!bt_page_free(c->pages[0], c->t->ps))
			return viol(c, b, -1, "free-listed page is not a deleted B+tree page");
		if (bt_flags(c->pages[0]) & ~BTF_KNOWN)
			return viol(c, b, -1, "unknown flag bits 0x%x",
				    bt_flags(c->pages[0]) & ~BTF_KNOWN);
		c->r->free_pages++;
		b = bt_next_free(c->pages[0]);
	}
	return 0;
}

/*
 * Blocks neither reachable nor on the free list must be all zero: a page
 * extended for a split that crashed before its record (README "Crash
 * behaviour"), counted as unused. Anything else is a lost page (a subtree
 * cut off, a deleted page off the list) and damage.
 */
static int check_unused(chk *c)
{
	for (wd_blkno b = 1; b < c->nblocks; b++) {
		int rc;
		if (c->seen[b])
			continue;
		if ((rc = read_copy(c, b, 0)) != 0)
			return rc;
		if (!page_is_zero(c->pages[0], c->t->ps))
			return viol(c, b, -1, "page neither reachable from the root nor on the "
				    "free list (kind %s)", page_kind_name(page_kind(c->pages[0])));
		c->r->unused_pages++;
	}
	return 0;
}

/* Runs every check; the caller holds smo exclusively. */
static int check_all(chk *c)
{
	bt_meta m;
	int rc = bt_meta_read(c->t, &m);
	if (rc)
		return rc;
	if (m.root != c->t->root || m.level != c->t->level)
		return viol(c, BT_META_BLK, -1, "metapage root %u level %u, handle %u level %u",
			    m.root, m.level, c->t->root, c->t->level);
	c->r->height = m.level + 1;
	if ((rc = bufmgr_rel_nblocks(c->t->pool, c->t->rel, &c->nblocks)) != 0)
		return rc;
	c->r->nblocks = c->nblocks;
	if (!(c->seen = calloc(c->nblocks ? c->nblocks : 1, 1)))
		return err_set(WD_ENOMEM, "btree check: no memory");
	c->seen[BT_META_BLK] = 1;
	if ((rc = check_page(c, m.root, m.level, 0, NULL, 0, NULL, 0)) != 0)
		return rc;
	if (c->prev_right != WD_INVALID_BLKNO)
		return viol(c, c->prev_leaf, -1, "last leaf has right link %u", c->prev_right);
	if ((rc = check_free(c, m.free_head)) != 0)
		return rc;
	if (c->r->free_pages != m.nfree)
		return viol(c, BT_META_BLK, -1, "metapage counts %u free pages, list has %llu",
			    m.nfree, (unsigned long long)c->r->free_pages);
	return check_unused(c);
}

int btree_check(btree *t, btree_check_report *r)
{
	chk c = {.t = t, .r = r, .prev_leaf = WD_INVALID_BLKNO,
		 .prev_right = WD_INVALID_BLKNO};
	int rc;
	memset(r, 0, sizeof *r);
	r->ok = true;
	r->bad_blk = WD_INVALID_BLKNO;
	if (!(c.last_key = malloc(t->max_key + 1)))
		return err_set(WD_ENOMEM, "btree check: no memory");
	bt_lock_excl(t);
	rc = check_all(&c);
	bt_unlock(t);
	if (rc == WD_ECORRUPT && r->ok) {
		/* a page the pool refused (checksum, header bounds) */
		r->ok = false;
		snprintf(r->msg, sizeof r->msg, "%s", wd_last_error());
	}
	for (size_t i = 0; i < sizeof c.pages / sizeof c.pages[0]; i++)
		free(c.pages[i]);
	free(c.seen);
	free(c.last_key);
	return rc;
}

/* ---- DOT ---- */

#define DOT_KEY_BYTES 12  /* keys up to this long are shown whole, */
#define DOT_KEY_HEAD 6    /* longer ones as their first bytes .. */
#define DOT_KEY_TAIL 4    /* .. and last bytes (the ones that differ) */
#define DOT_HEAD_KEYS 3   /* keys shown at the start of a long page ... */
#define DOT_TAIL_KEYS 2   /* ... and at its end */

typedef struct dot {
	btree *t;
	FILE *out;
	uint8_t *pages;       /* a page copy per depth */
	wd_blkno *leaves;     /* leaves in key order, for the chain's rank */
	size_t nleaves, cap;
} dot;

static void dot_bytes(FILE *out, const uint8_t *k, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		if (k[i] >= 0x30 && k[i] < 0x7f && !strchr("\\\"{}|<>", k[i]))
			fputc(k[i], out);
		else
			fprintf(out, "\\\\x%02x", k[i]);
	}
}

/* A key shortened for a DOT record label: whole up to DOT_KEY_BYTES,
 * else head..tail, escaped. */
static void dot_key(FILE *out, const uint8_t *k, uint32_t len)
{
	if (len <= DOT_KEY_BYTES) {
		dot_bytes(out, k, len);
		return;
	}
	dot_bytes(out, k, DOT_KEY_HEAD);
	fputs("..", out);
	dot_bytes(out, k + len - DOT_KEY_TAIL, DOT_KEY_TAIL);
}

/* The label's key list: every key of a short page; the first and last few
 * of a long one with the count of those left out between. */
static void dot_keys(FILE *out, const uint8_t *page, uint32_t ps)
{
	uint32_t n = bt_nitems(page);
	for (uint32_t i = 0; i < n; i++) {
		btree_item_view iv;
		if (n > DOT_HEAD_KEYS + DOT_TAIL_KEYS + 1 && i == DOT_HEAD_KEYS) {
			fprintf(out, " ...%u more...", n - DOT_HEAD_KEYS - DOT_TAIL_KEYS);
			i = n - DOT_TAIL_KEYS - 1;
			continue;
		}
		if (i)
			fputs(" ", out);
		if (btree_item_view_decode(page, ps, i, &iv) != 0)
			fputs("(damaged)", out);
		else if (iv.minus_inf)
			fputs("-inf", out);
		else
			dot_key(out, iv.key, iv.klen);
	}
}

/* Prints the subtree at blk: a record node per page ("blk B L<level>
 * (<n> keys)" over its keys), edges to children; notes the leaves. */
static int dot_page(dot *d, wd_blkno blk, unsigned depth)
{
	btree *t = d->t;
	uint8_t *page = d->pages + (size_t)depth * t->ps;
	bm_buf *buf;
	uint32_t n;
	int rc;
	if (depth >= 64)
		return bt_corrupt(t, blk, "tree deeper than 64 levels (a downlink cycle?)");
	if ((rc = bt_pin(t, blk, BM_SHARE, &buf)) != 0)
		return rc;
	memcpy(page, bufmgr_page(buf), t->ps);
	bt_release(t, buf);
	if (!bt_page_live(page, t->ps) || page_bounds_check(page, t->ps) != 0)
		return bt_corrupt(t, blk, "not a live B+tree page");
	n = bt_nitems(page);
	fprintf(d->out, "  n%u [label=\"{blk %u  L%u  (%u keys)|", blk, blk,
		bt_level(page), n);
	dot_keys(d->out, page, t->ps);
	fputs("}\"];\n", d->out);
	if (bt_level(page) == 0) {
		if (d->nleaves == d->cap) {
			size_t cap = d->cap ? 2 * d->cap : 64;
			wd_blkno *l = realloc(d->leaves, cap * sizeof *l);
			if (!l)
				return err_set(WD_ENOMEM, "btree dot: no memory");
			d->leaves = l;
			d->cap = cap;
		}
		d->leaves[d->nleaves++] = blk;
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		btree_item_view iv; /* the item may be damaged: decode it checked */
		char what[300];
		if (btree_item_view_decode(page, t->ps, i, &iv) != 0) {
			snprintf(what, sizeof what, "item %u: %s", i, wd_last_error());
			return bt_corrupt(t, blk, what);
		}
		fprintf(d->out, "  n%u -> n%u;\n", blk, iv.child);
		if ((rc = dot_page(d, iv.child, depth + 1)) != 0)
			return rc;
	}
	return 0;
}

/* The leaf chain: leaves side by side, each right link a dashed edge. The
 * links are read again from the pages, so a broken chain shows as drawn. */
static int dot_chain(dot *d)
{
	fputs("  // leaf chain (right links), leaves on one rank\n  { rank=same;", d->out);
	for (size_t i = 0; i < d->nleaves; i++)
		fprintf(d->out, " n%u;", d->leaves[i]);
	fputs(" }\n", d->out);
	for (size_t i = 0; i < d->nleaves; i++) {
		bm_buf *buf;
		wd_blkno right;
		int rc = bt_pin(d->t, d->leaves[i], BM_SHARE, &buf);
		if (rc)
			return rc;
		right = bt_right(bufmgr_page(buf));
		bt_release(d->t, buf);
		if (right != WD_INVALID_BLKNO)
			fprintf(d->out, "  n%u -> n%u [style=dashed, color=gray40, "
				"constraint=false, label=\"right\", fontsize=8];\n",
				d->leaves[i], right);
	}
	return 0;
}

int btree_dot(btree *t, FILE *out)
{
	dot d = {.t = t, .out = out, .pages = malloc((size_t)t->ps * 64)};
	int rc;
	if (!d.pages)
		return err_set(WD_ENOMEM, "btree dot: no memory");
	bt_lock_excl(t);
	fprintf(out, "digraph btree_%u {\n  node [shape=record, fontsize=10];\n"
		"  // root blk %u, height %u; keys over %u bytes shortened to head..tail\n",
		t->rel, t->root, t->level + 1, DOT_KEY_BYTES);
	rc = dot_page(&d, t->root, 0);
	if (rc == 0)
		rc = dot_chain(&d);
	fputs("}\n", out);
	bt_unlock(t);
	free(d.pages);
	free(d.leaves);
	if (rc == 0 && ferror(out))
		rc = err_set(WD_EIO, "btree dot: writing the output failed");
	return rc;
}
