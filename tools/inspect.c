/*
 * inspect.c - `walden inspect`: the control file (like pg_controldata), a
 * table's relations (--table), and single pages of relation files (like
 * pageinspect), decoded field by field by the modules' decoders (heap.h,
 * btree.h, undo.h): heap tuples, overflow pages, FSM pages, B+tree pages
 * and metapages, undo pages; other kinds as raw line pointers.
 */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree/btree.h"
#include "heap/heap.h"
#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tools/tools.h"
#include "txn/db.h"
#include "undo/undo.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden inspect DIR                      show the control file\n"
		"       walden inspect DIR --table T            show table T's relations\n"
		"       walden inspect DIR --table T --block B [--heap|--fsm|--index]\n"
		"       walden inspect DIR --rel R --block B    show one page of DIR/base/R\n"
		"       walden inspect --file F --block B [--page-size N]\n"
		"\n"
		"Decodes on-disk structures field by field, checking every checksum.\n"
		"A page is decoded by its kind: heap pages (each line pointer with its\n"
		"tuple's flags, key in hex and text, value length, inline or first\n"
		"overflow block), overflow pages (next block, chunk length), FSM pages\n"
		"(the entry of each heap block), B+tree pages (level, flags, sibling\n"
		"links, each item's key and TID or child block), metapages, undo pages\n"
		"(DIR/base/3: owner transaction, chain links, each record starting\n"
		"there with its kind, relation, previous record, key and value length);\n"
		"other kinds as raw line pointers. --table opens the database (its lock is\n"
		"taken: not while another process has it open).\n"
		"Options:\n"
		"  -t, --table T       a table by name: its relations, heap and FSM\n"
		"                      summary, index height, pages and items\n"
		"  -b, --block B       block number in the file\n"
		"  -H, --heap          with --table --block: the table's heap (default)\n"
		"  -F, --fsm           ... its free space map\n"
		"  -I, --index         ... its B+tree index\n"
		"  -r, --rel R         relation id (file DIR/base/R)\n"
		"  -f, --file F        a page file given by path (needs --page-size\n"
		"                      unless a control file is given as DIR)\n"
		"  -p, --page-size N   page size for --file (default from DIR, else 8192)\n"
		"  -k, --key-bytes N   key bytes shown (default 16)\n"
		"  -h, --help          this help\n"
		"Exit status: 0 ok, 1 error, 2 usage, 3 the page or file is damaged.\n");
}

static uint32_t key_bytes = 16;

static void print_control(const char *dir, const control_data *cd)
{
	char id[33];
	control_format_id(cd->db_id, id);
	printf("control file             %s/%s\n", dir, CONTROL_FILE);
	printf("format version           %u\n", cd->version);
	printf("database id              %s\n", id);
	printf("page size                %u\n", cd->page_size);
	printf("state                    %s\n", control_state_name(cd->state));
	printf("WAL segment size         %u\n", cd->wal_segment_size);
	printf("latest checkpoint LSN    " LSN_FMT "\n", LSN_ARGS(cd->checkpoint_lsn));
	printf("redo LSN                 " LSN_FMT "\n", LSN_ARGS(cd->redo_lsn));
	printf("next transaction id      %" PRIu64 "\n", cd->next_xid);
	printf("next relation id         %u\n", cd->next_relid);
	printf("last updated             %" PRIu64 " (unix time)\n", cd->update_time);
}

/* Prints up to 16 bytes of an item as hex and as text. */
static void print_item_bytes(const uint8_t *it, uint32_t len)
{
	uint32_t n = len < 16 ? len : 16;
	for (uint32_t i = 0; i < n; i++)
		printf("%02x ", it[i]);
	printf("%*s\"", (int)(3 * (16 - n)), "");
	for (uint32_t i = 0; i < n; i++)
		putchar(isprint(it[i]) ? it[i] : '.');
	printf("\"%s\n", len > n ? "..." : "");
}

static void print_blk(const char *what, wd_blkno b)
{
	if (b == WD_INVALID_BLKNO)
		printf("%s -", what);
	else
		printf("%s %u", what, b);
}

/* Raw line pointers (pages of kinds without a decoder). */
static void print_raw_slots(const uint8_t *p, uint32_t page_size)
{
	printf("  slots      %u\n", page_nslots(p));
	for (uint32_t s = 0; s < page_nslots(p); s++) {
		const uint8_t *it;
		uint32_t len;
		printf("  %5u  ", s);
		if (page_item_checked(p, page_size, s, &it, &len) != 0) {
			printf("DAMAGED: %s\n", wd_last_error());
			continue;
		}
		if (!it) {
			printf("unused\n");
			continue;
		}
		printf("off %5u len %5u  ", (uint32_t)(it - p), len);
		print_item_bytes(it, len);
	}
}

/* Heap page: one line per line pointer. Returns the number of bad ones. */
static unsigned print_heap(const uint8_t *p, uint32_t page_size)
{
	unsigned bad = 0;
	printf("  heap page  %u line pointers, %u bytes free\n", page_nslots(p),
	       page_free_space(p));
	for (uint32_t s = 0; s < page_nslots(p); s++) {
		const uint8_t *it;
		uint32_t len;
		heap_item_view v;
		int rc = heap_slot_view_decode(p, page_size, s, &v);
		printf("  slot %4u  ", s);
		if (rc == WD_NOTFOUND) {
			printf("unused\n");
			continue;
		}
		if (page_item_checked(p, page_size, s, &it, &len) == 0 && it)
			printf("off %5u len %5u  ", (uint32_t)(it - p), len);
		if (rc != 0) {
			printf("DAMAGED: %s\n", wd_last_error());
			bad++;
			continue;
		}
		printf("flags 0x%02x  value %" PRIu64 " bytes ", v.flags, v.vlen);
		if (v.flags & HEAP_ITEM_OVERFLOW)
			printf("overflow -> blk %u", v.ovf_first);
		else
			printf("inline");
		printf("  key[%u] ", v.klen);
		tool_print_key(stdout, v.key, v.klen, key_bytes);
		putchar('\n');
	}
	return bad;
}

static unsigned print_overflow(const uint8_t *p, uint32_t page_size)
{
	heap_overflow_view v;
	if (heap_overflow_view_decode(p, page_size, &v) != 0) {
		printf("  overflow   DAMAGED: %s\n", wd_last_error());
		return 1;
	}
	printf("  overflow   chunk %u bytes (at most %u), ", v.len, v.cap);
	if (v.next == WD_INVALID_BLKNO)
		printf("end of chain\n");
	else
		printf("next blk %u\n", v.next);
	printf("  chunk      ");
	print_item_bytes(v.chunk, v.len);
	return 0;
}

/* FSM page: the counts, then every known entry, eight per line. */
static unsigned print_fsm(const uint8_t *p, uint32_t page_size, wd_blkno blk)
{
	heap_fsm_view v;
	uint32_t last = 0, col = 0;
	if (heap_fsm_view_decode(p, page_size, blk, &v) != 0) {
		printf("  fsm        DAMAGED: %s\n", wd_last_error());
		return 1;
	}
	for (uint32_t i = 0; i < v.n; i++)
		if (v.entry[i])
			last = i + 1;
	printf("  fsm page   entries for heap blocks %u..%u, unit %u bytes\n", v.first,
	       v.first + v.n - 1, v.unit);
	printf("  entries    %u known (%u empty pages, %u full, %u with room), %u unknown\n",
	       v.n - v.unknown, v.empty, v.full, v.partial, v.unknown);
	for (uint32_t i = 0; i < last; i++) {
		uint32_t fm;
		char what[16];
		switch (heap_fsm_entry(v.entry[i], v.unit, &fm)) {
		case HEAP_FSM_UNKNOWN: snprintf(what, sizeof what, "?"); break;
		case HEAP_FSM_EMPTY: snprintf(what, sizeof what, "empty"); break;
		default:
			if (fm)
				snprintf(what, sizeof what, "%u+", fm);
			else
				snprintf(what, sizeof what, "full");
			break;
		}
		printf("%s%7u:%-6s", col ? " " : "  ", v.first + i, what);
		if (++col == 8) {
			putchar('\n');
			col = 0;
		}
	}
	if (col)
		putchar('\n');
	return 0;
}

static unsigned print_btree(const uint8_t *p, uint32_t page_size)
{
	btree_page_view v;
	unsigned bad = 0;
	if (btree_page_view_decode(p, page_size, &v) != 0) {
		printf("  btree      DAMAGED: %s\n", wd_last_error());
		return 1;
	}
	printf("  btree page level %u (%s), flags 0x%04x%s%s%s\n", v.level,
	       v.level ? "internal" : "leaf", v.flags,
	       v.flags & BTREE_PAGE_LEAF ? " LEAF" : "", v.flags & BTREE_PAGE_ROOT ? " ROOT" : "",
	       v.flags & BTREE_PAGE_DELETED ? " DELETED" : "");
	printf("  links     ");
	print_blk(" left", v.left);
	print_blk("  right", v.right);
	print_blk("  next-free", v.next_free);
	printf("\n  high key   none (this format keeps none: a page's bound is its "
	       "parent's next separator)\n");
	printf("  items      %u\n", v.nitems);
	for (uint32_t i = 0; i < v.nitems; i++) {
		btree_item_view iv;
		printf("  item %4u  ", i);
		if (btree_item_view_decode(p, page_size, i, &iv) != 0) {
			printf("DAMAGED: %s\n", wd_last_error());
			bad++;
			continue;
		}
		if (v.flags & BTREE_PAGE_LEAF)
			printf("tid (%u,%u)  ", iv.tid.blk, iv.tid.slot);
		else
			printf("child %u  ", iv.child);
		printf("key[%u] ", iv.klen);
		if (iv.minus_inf)
			printf("-inf");
		else
			tool_print_key(stdout, iv.key, iv.klen, key_bytes);
		putchar('\n');
	}
	return bad;
}

static unsigned print_meta(const uint8_t *p, uint32_t page_size)
{
	btree_meta_view m;
	int rc = btree_meta_view_decode(p, page_size, &m);
	if (rc != 0 && m.magic == 0 && m.version == 0) {
		printf("  metapage   DAMAGED: %s\n", wd_last_error());
		return 1;
	}
	printf("  metapage   B+tree, magic 0x%08x%s, version %u\n", m.magic,
	       rc == 0 ? "" : " (WRONG)", m.version);
	printf("  root       blk %u, level %u (height %u)\n", m.root, m.level, m.level + 1);
	printf("  free list ");
	print_blk(" head", m.free_head);
	printf(", %u pages\n", m.nfree);
	if (rc != 0) {
		printf("  damage     %s\n", wd_last_error());
		return 1;
	}
	return 0;
}

/* Undo page: its chain links, then each record that starts on it. */
static unsigned print_undo(const uint8_t *p, uint32_t page_size, wd_blkno blk)
{
	undo_page_view v;
	undo_rec_view rv;
	char at[32], prev[32];
	if (undo_page_view_decode(p, page_size, &v) != 0) {
		printf("  undo       DAMAGED: %s\n", wd_last_error());
		return 1;
	}
	printf("  undo page  xid %" PRIu64 ", chain page %u,", v.xid, v.seq);
	print_blk(" prev blk", v.prev);
	print_blk(", next blk", v.next);
	printf("\n  written    to byte %u of %u\n", v.used, page_size);
	if (!v.first)
		printf("  records    none start here (the page holds the rest of the one before)\n");
	for (uint32_t off = v.first; off && off < v.used; off = rv.end) {
		snprintf(at, sizeof at, "%u/%u", blk, off);
		printf("  record %-8s ", at);
		if (undo_rec_view_decode(p, page_size, off, &rv) != 0) {
			printf("DAMAGED: %s\n", wd_last_error());
			return 1;
		}
		printf("%-6s  rel %u  prev %s  value %" PRIu64 " bytes%s  key[%u] ",
		       undo_kind_name(rv.kind), rv.rel, undo_ptr_str(rv.prev, prev, sizeof prev),
		       rv.vlen, rv.end == page_size ? " (continues on the next page)" : "", rv.klen);
		tool_print_key(stdout, rv.key, rv.key_here, key_bytes);
		putchar('\n');
	}
	return 0;
}

/* Decodes one page image. Returns EXIT_DAMAGE if it fails verification or
 * does not decode. */
static int print_page(const char *path, wd_blkno blk, const uint8_t *p,
		      uint32_t page_size)
{
	int v = page_verify(p, page_size, blk, path);
	uint32_t stored = get_le32(p + PH_CHECKSUM);
	unsigned bad = 0;

	printf("file %s block %u (%u bytes at offset %" PRIu64 ")\n", path, blk,
	       page_size, (uint64_t)blk * page_size);
	if (v == PAGE_VERIFY_NEW) {
		printf("  all zero: never written\n");
		return EXIT_OK;
	}
	printf("  checksum   0x%08x %s\n", stored,
	       stored == page_checksum(p, page_size, blk) ? "ok" : "MISMATCH");
	if (v != 0)
		printf("  damage     %s\n", wd_last_error());
	printf("  lsn        " LSN_FMT "\n", LSN_ARGS(page_lsn(p)));
	printf("  kind       %s (%u)  version %u  flags 0x%04x\n",
	       page_kind_name(page_kind(p)), page_kind(p), p[PH_VERSION],
	       page_flags(p));
	printf("  lower %u  upper %u  special %u  free %u\n", page_lower(p),
	       page_upper(p), page_special(p),
	       page_upper(p) >= page_lower(p) ? page_upper(p) - page_lower(p) : 0);
	if (page_bounds_check(p, page_size) != 0)
		return EXIT_DAMAGE; /* nothing below the header can be found */
	if (v != 0)
		printf("  (decoded anyway; the bytes are not the ones written)\n");
	switch (page_kind(p)) {
	case PAGE_KIND_HEAP: bad = print_heap(p, page_size); break;
	case PAGE_KIND_OVERFLOW: bad = print_overflow(p, page_size); break;
	case PAGE_KIND_FSM: bad = print_fsm(p, page_size, blk); break;
	case PAGE_KIND_BTREE: bad = print_btree(p, page_size); break;
	case PAGE_KIND_META: bad = print_meta(p, page_size); break;
	case PAGE_KIND_UNDO: bad = print_undo(p, page_size, blk); break;
	default: print_raw_slots(p, page_size); break;
	}
	return v != 0 || bad ? EXIT_DAMAGE : EXIT_OK;
}

static int inspect_page(const char *path, wd_blkno blk, uint32_t page_size)
{
	uint8_t *p = malloc(page_size);
	size_t got = 0;
	int rc;

	if (!p)
		return tool_fail("inspect", WD_ENOMEM, "allocating a page");
	rc = tool_read_block(path, blk, p, page_size, &got);
	if (rc != 0) {
		free(p);
		return tool_fail("inspect", rc, "reading the page");
	}
	if (got < page_size) {
		fprintf(stderr, "walden inspect: %s: block %u is beyond the end of the file "
				"(%zu of %u bytes there)\n", path, blk, got, page_size);
		free(p);
		return EXIT_DAMAGE;
	}
	rc = print_page(path, blk, p, page_size);
	free(p);
	return rc;
}

/* ---- --table ---- */

/* Counts of one heap file's pages, read raw. */
struct heap_sum {
	wd_blkno blocks;
	uint64_t heap, overflow, fresh, empty, damaged;
	uint64_t tuples, overflowed, free_bytes;
};

static int sum_heap(const char *path, uint32_t ps, struct heap_sum *h)
{
	uint8_t *p = malloc(ps);
	int rc = p ? 0 : WD_ENOMEM;
	memset(h, 0, sizeof *h);
	for (wd_blkno b = 0; rc == 0; b++) {
		size_t got;
		if ((rc = tool_read_block(path, b, p, ps, &got)) != 0 || got < ps)
			break;
		h->blocks++;
		int v = page_verify(p, ps, b, path);
		if (v == PAGE_VERIFY_NEW) {
			h->fresh++;
			continue;
		}
		if (v != 0) {
			h->damaged++;
			continue;
		}
		if (page_kind(p) == PAGE_KIND_OVERFLOW) {
			h->overflow++;
			continue;
		}
		if (page_kind(p) != PAGE_KIND_HEAP) {
			h->damaged++;
			continue;
		}
		h->heap++;
		h->free_bytes += page_free_space(p);
		if (page_nslots(p) == 0)
			h->empty++;
		for (uint32_t s = 0; s < page_nslots(p); s++) {
			heap_item_view iv;
			int r = heap_slot_view_decode(p, ps, s, &iv);
			if (r == 0) {
				h->tuples++;
				h->overflowed += !!(iv.flags & HEAP_ITEM_OVERFLOW);
			} else if (r != WD_NOTFOUND) {
				h->damaged++;
				break;
			}
		}
	}
	free(p);
	return rc;
}

/* Counts of an FSM file's entries for heap blocks [0, nheap). */
struct fsm_sum {
	wd_blkno blocks;
	uint64_t unknown, empty, full, partial, damaged, promised;
};

static int sum_fsm(const char *path, uint32_t ps, wd_blkno nheap, struct fsm_sum *f)
{
	uint8_t *p = malloc(ps);
	int rc = p ? 0 : WD_ENOMEM;
	uint64_t seen = 0;
	memset(f, 0, sizeof *f);
	for (wd_blkno b = 0; rc == 0; b++) {
		heap_fsm_view v;
		size_t got;
		if ((rc = tool_read_block(path, b, p, ps, &got)) != 0 || got < ps)
			break;
		f->blocks++;
		if (page_verify(p, ps, b, path) != 0 || heap_fsm_view_decode(p, ps, b, &v) != 0) {
			f->damaged++;
			continue;
		}
		for (uint32_t i = 0; i < v.n && (uint64_t)v.first + i < nheap; i++, seen++) {
			uint32_t fm;
			switch (heap_fsm_entry(v.entry[i], v.unit, &fm)) {
			case HEAP_FSM_UNKNOWN: f->unknown++; break;
			case HEAP_FSM_EMPTY: f->empty++; break;
			case HEAP_FSM_SPACE:
				if (fm)
					f->partial++;
				else
					f->full++;
				f->promised += fm;
				break;
			}
		}
	}
	if (seen < nheap)
		f->unknown += nheap - seen; /* beyond the file: not yet written */
	free(p);
	return rc == WD_ENOENT ? 0 : rc;
}

static int inspect_table(const char *dir, const char *name, bool want_block, int which,
			 wd_blkno blk)
{
	control_data cd;
	bool cd_ok;
	wd_db *db;
	wd_txn *x = NULL;
	wd_table *t = NULL;
	db_table_info info;
	const db_table_info *ti = &info; /* a copy: the handle dies with db */
	btree_check_report br;
	heap_fsm_report fr;
	struct heap_sum hs;
	struct fsm_sum fs;
	char hp[4200], fp[4200], ip[4200];
	int rc, ex = tool_open_db("inspect", dir, &db, &cd, &cd_ok), bc, fc;

	if (ex != EXIT_OK)
		return ex;
	if ((rc = wd_begin(db, &x)) == 0)
		rc = wd_table_open(x, name, 0, &t);
	if (rc != 0) {
		if (rc == WD_NOTFOUND)
			fprintf(stderr, "walden inspect: %s: no table '%s'\n", dir, name);
		else
			(void)tool_fail("inspect", rc, "opening the table");
		if (x)
			(void)wd_commit(x);
		(void)wd_close(db);
		return rc == WD_ECORRUPT ? EXIT_DAMAGE : EXIT_ERROR;
	}
	info = *db_table_info_of(t);
	tool_rel_path(dir, ti->heap_rel, hp, sizeof hp);
	tool_rel_path(dir, ti->fsm_rel, fp, sizeof fp);
	tool_rel_path(dir, ti->index_rel, ip, sizeof ip);
	if (want_block) {
		const char *path = which == 'F' ? fp : which == 'I' ? ip : hp;
		(void)wd_commit(x);
		if ((rc = wd_close(db)) != 0)
			return tool_fail("inspect", rc, "closing the database");
		if (which == 'F' && !ti->fsm_rel) {
			fprintf(stderr, "walden inspect: table %s has no FSM file\n", name);
			return EXIT_ERROR;
		}
		printf("table %s, %s\n", name, which == 'F' ? "free space map" :
		       which == 'I' ? "index" : "heap");
		return inspect_page(path, blk, cd.page_size);
	}
	bc = btree_check(db_table_btree(t), &br);
	fc = heap_fsm_check(db_table_heap(t), &fr);
	(void)wd_commit(x);
	rc = bufmgr_flush_all(db_pool(db)); /* the files show what the pool holds */
	if (rc == 0)
		rc = sum_heap(hp, cd.page_size, &hs);
	if (rc == 0 && ti->fsm_rel)
		rc = sum_fsm(fp, cd.page_size, hs.blocks, &fs);
	if (rc != 0) {
		ex = tool_fail("inspect", rc, "reading the table's files");
		(void)wd_close(db);
		return ex;
	}
	printf("table %s\n", name);
	printf("  heap     %s/%u  %u blocks: %" PRIu64 " heap pages (%" PRIu64 " empty), %"
	       PRIu64 " overflow, %" PRIu64 " never written%s\n", DB_BASE_DIR, ti->heap_rel,
	       hs.blocks, hs.heap, hs.empty, hs.overflow, hs.fresh,
	       hs.damaged ? ", DAMAGED pages" : "");
	printf("           %" PRIu64 " tuples (%" PRIu64 " with overflowed values), %" PRIu64
	       " bytes free on heap pages\n", hs.tuples, hs.overflowed, hs.free_bytes);
	if (ti->fsm_rel) {
		printf("  fsm      %s/%u  %u blocks: of %u heap blocks %" PRIu64 " empty, %"
		       PRIu64 " full, %" PRIu64 " with room (>= %" PRIu64 " bytes in all), %"
		       PRIu64 " unknown%s\n", DB_BASE_DIR, ti->fsm_rel, fs.blocks, hs.blocks,
		       fs.empty, fs.full, fs.partial, fs.promised, fs.unknown,
		       fs.damaged ? ", DAMAGED pages" : "");
	} else {
		printf("  fsm      none (rebuilt from the heap at every open)\n");
	}
	printf("           check: %s", fc == 0 ? "ok" : "WRONG");
	printf(" (%" PRIu64 " entries promise too much, %" PRIu64 " too little, %" PRIu64
	       " file bytes differ)\n", fr.over, fr.under, fr.disk_diff);
	if (bc == 0 || bc == WD_ECORRUPT) {
		printf("  index    %s/%u  %" PRIu64 " blocks: height %u, %" PRIu64 " pages (%"
		       PRIu64 " internal, %" PRIu64 " leaves), %" PRIu64 " items, %" PRIu64
		       " free, %" PRIu64 " unused\n", DB_BASE_DIR, ti->index_rel, br.nblocks,
		       br.height, br.pages, br.internal, br.leaves, br.items, br.free_pages,
		       br.unused_pages);
		if (bc == 0)
			printf("           check: ok\n");
		else
			printf("           check: DAMAGED at block %u item %d: %s\n", br.bad_blk,
			       br.bad_item, br.msg);
	} else {
		printf("  index    %s/%u  not readable: %s\n", DB_BASE_DIR, ti->index_rel,
		       wd_last_error());
	}
	if ((rc = wd_close(db)) != 0)
		return tool_fail("inspect", rc, "closing the database");
	if (bc != 0 || fc != 0 || hs.damaged || (ti->fsm_rel && fs.damaged))
		return bc == 0 || bc == WD_ECORRUPT || fc == WD_ECORRUPT ? EXIT_DAMAGE : EXIT_ERROR;
	return EXIT_OK;
}

int inspect_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"table", required_argument, NULL, 't'},
		{"heap", no_argument, NULL, 'H'},
		{"fsm", no_argument, NULL, 'F'},
		{"index", no_argument, NULL, 'I'},
		{"rel", required_argument, NULL, 'r'},
		{"block", required_argument, NULL, 'b'},
		{"file", required_argument, NULL, 'f'},
		{"page-size", required_argument, NULL, 'p'},
		{"key-bytes", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *file = NULL, *table = NULL;
	long long rel = -1, blk = -1, kb;
	uint32_t page_size = 0;
	int which = 0;
	control_data cd;
	char path[4096], *end;
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "t:HFIr:b:f:p:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 't': table = optarg; break;
		case 'H': case 'F': case 'I':
			if (which && which != c) {
				usage(stderr);
				return EXIT_USAGE;
			}
			which = c;
			break;
		case 'r': rel = strtoll(optarg, &end, 10); if (*end || end == optarg) rel = -2; break;
		case 'b': blk = strtoll(optarg, &end, 10); if (*end || end == optarg) blk = -2; break;
		case 'f': file = optarg; break;
		case 'p': page_size = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'k':
			kb = strtoll(optarg, &end, 10);
			if (*end || kb < 1 || kb > 4096) {
				usage(stderr);
				return EXIT_USAGE;
			}
			key_bytes = (uint32_t)kb;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		dir = argv[optind++];
	if (optind < argc || rel == -2 || blk == -2 || blk > UINT32_MAX || rel > UINT32_MAX ||
	    (which && (!table || blk < 0))) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (table) {
		if (!dir || file || rel >= 0 || !*table) {
			usage(stderr);
			return EXIT_USAGE;
		}
		return inspect_table(dir, table, blk >= 0, which, (wd_blkno)blk);
	}
	if ((!dir && !file) || (file && blk < 0) || (rel >= 0) != (blk >= 0 && !file)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (page_size && !page_size_valid(page_size)) {
		fprintf(stderr, "walden inspect: page size %u: must be a power of two "
				"from 4096 to 65536\n", page_size);
		return EXIT_USAGE;
	}
	if (dir) {
		rc = control_read(dir, &cd);
		if (rc != 0)
			return rc == WD_ECORRUPT ? (tool_fail("inspect", rc, "control file"), EXIT_DAMAGE)
						 : tool_fail("inspect", rc, "control file");
		if (!page_size)
			page_size = cd.page_size;
	}
	if (!page_size)
		page_size = PAGE_SIZE_DEFAULT;
	if (file)
		return inspect_page(file, (wd_blkno)blk, page_size);
	if (rel < 0) {
		print_control(dir, &cd);
		return EXIT_OK;
	}
	snprintf(path, sizeof path, "%s/%s/%lld", dir, DB_BASE_DIR, rel);
	return inspect_page(path, (wd_blkno)blk, page_size);
}
