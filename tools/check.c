/*
 * check.c - `walden check DIR [--table T] [--json]`, like amcheck: every
 * page of every relation file read raw and verified (checksum, header,
 * line pointers, and each tuple, FSM page, B+tree item and metapage through
 * the modules' decoders), then the catalog and each table checked through
 * the engine (db_catalog_check, db_table_check: every B+tree invariant, the
 * free space map, heap and index one to one); the undo log's pages (base/3)
 * by the undo decoders. Each violation is reported
 * with its table, relation, file, block and item. Exit 0 all sound, 3
 * damage found, 1 error, 2 usage. Entry point: check_main.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "btree/btree.h"
#include "heap/heap.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tools/tools.h"
#include "txn/db.h"
#include "undo/undo.h"

/* What a relation file is to its table; decides which page kinds fit. */
enum role { ROLE_HEAP, ROLE_FSM, ROLE_INDEX, ROLE_ORPHAN, ROLE_ANY, ROLE_UNDO };
static const char *const role_names[] = {"heap", "fsm", "index", "orphan", "file", "undo"};

struct problem {
	int table;              /* index in check.t, -1: none */
	enum role role;
	char file[32];          /* "base/17" or "" */
	int64_t blk;            /* -1: about no one block */
	int64_t item;           /* -1: about the page or file */
	char msg[512];
};

struct tstat {
	bool checked;           /* db_table_check ran to the end */
	bool skipped;           /* not compared: pages damaged */
	bool ok;
	uint64_t tuples, index_pages, heap_pages, bad_pages;
	uint32_t height;
};

struct check {
	const char *dir;
	const char *only;       /* --table */
	bool json;
	uint32_t ps;
	wd_relid next_relid;    /* the control file's: ids below were handed out */
	uint8_t *page;
	tool_table *t;          /* t[0]: the catalog */
	size_t nt;
	struct tstat *ts;
	struct problem *pr;
	size_t npr, cap;
	uint64_t pages;         /* pages read raw */
	int error;              /* EXIT_ERROR once something could not be read */
	bool report;            /* got far enough to print a report */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden check DIR [--table T] [--json]\n"
		"\n"
		"Verifies the database in DIR, like PostgreSQL's amcheck:\n"
		"  1. every page of every relation file under DIR/base (the catalog,\n"
		"     each table's heap, free space map and index; files no table\n"
		"     names are orphans, damage unless their id was handed out to a\n"
		"     table: then a leftover of an unfinished create or drop, noted on\n"
		"     stderr and removed by the next open): checksum, header bounds,\n"
		"     line pointers, and\n"
		"     each tuple, overflow page, FSM page, B+tree page and metapage;\n"
		"     the undo log (base/3): each undo page and the records on it;\n"
		"  2. the catalog, then each table: every B+tree invariant (key order\n"
		"     within a page and across siblings, parent/child key bounds,\n"
		"     sibling links, equal leaf depth, the free list), the free space\n"
		"     map against the pages, and heap and index in one-to-one agreement.\n"
		"Prints one line per table (\"users: 1000 tuples, index height 2 (12\n"
		"pages), heap 30 pages, ok\") and one line per violation naming table,\n"
		"relation, file, block and item. Opening the database may run crash\n"
		"recovery first, as any open does.\n"
		"Options:\n"
		"  -t, --table T   check only table T (its three files and the table)\n"
		"  -j, --json      one JSON object on stdout instead of text\n"
		"  -h, --help      this help\n"
		"Exit status: 0 sound, 1 error (not a database, in use, I/O), 2 usage,\n"
		"3 damage found.\n");
}

/* Records a problem (printed at the end). */
WD_PRINTF(7, 8)
static void problem(struct check *c, int table, enum role role, const char *file,
		    int64_t blk, int64_t item, const char *fmt, ...)
{
	struct problem *p;
	va_list ap;
	if (c->npr == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		struct problem *n = realloc(c->pr, cap * sizeof *n);
		if (!n) {
			c->error = EXIT_ERROR;
			return;
		}
		c->pr = n;
		c->cap = cap;
	}
	p = &c->pr[c->npr++];
	p->table = table;
	p->role = role;
	snprintf(p->file, sizeof p->file, "%s", file ? file : "");
	p->blk = blk;
	p->item = item;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof p->msg, fmt, ap);
	va_end(ap);
	if (table >= 0 && blk >= 0 && c->ts)
		c->ts[table].bad_pages++;
}

/* wd_last_error() without a leading "<file>: block <blk>: " (the report
 * names file and block in fields of their own). */
static const char *detail_after(const char *file, wd_blkno blk)
{
	char prefix[64];
	const char *d = wd_last_error();
	int n = snprintf(prefix, sizeof prefix, "%s: block %u: ", file, blk);
	if (n > 0 && strncmp(d, prefix, (size_t)n) == 0)
		return d + n;
	return d;
}

/* ---- pass 1: raw pages ---- */

/* An undo page: its header, then each record starting on it (*item: the
 * number of the record at fault on the page). */
static int decode_undo(const uint8_t *p, uint32_t ps, int64_t *item)
{
	undo_page_view v;
	undo_rec_view rv;
	int64_t n = 0;
	int rc = undo_page_view_decode(p, ps, &v);
	for (uint32_t off = v.first; rc == 0 && off && off < v.used; off = rv.end, n++)
		if ((rc = undo_rec_view_decode(p, ps, off, &rv)) != 0)
			*item = n;
	return rc;
}

/* Decodes page p (verified) by its kind; 0 or WD_ECORRUPT, *item the item
 * at fault (-1 the page). */
static int decode_page(const uint8_t *p, uint32_t ps, wd_blkno blk, int64_t *item)
{
	uint32_t n = page_nslots(p);
	int rc = 0;
	*item = -1;
	switch (page_kind(p)) {
	case PAGE_KIND_HEAP:
		for (uint32_t s = 0; s < n && rc == 0; s++) {
			heap_item_view v;
			rc = heap_slot_view_decode(p, ps, s, &v);
			if (rc == WD_NOTFOUND)
				rc = 0;
			else if (rc != 0)
				*item = s;
		}
		return rc;
	case PAGE_KIND_OVERFLOW: {
		heap_overflow_view v;
		return heap_overflow_view_decode(p, ps, &v);
	}
	case PAGE_KIND_FSM: {
		heap_fsm_view v;
		return heap_fsm_view_decode(p, ps, blk, &v);
	}
	case PAGE_KIND_META: {
		btree_meta_view v;
		return btree_meta_view_decode(p, ps, &v);
	}
	case PAGE_KIND_BTREE: {
		btree_page_view pv;
		if ((rc = btree_page_view_decode(p, ps, &pv)) != 0)
			return rc;
		for (uint32_t i = 0; i < pv.nitems && rc == 0; i++) {
			btree_item_view v;
			if ((rc = btree_item_view_decode(p, ps, i, &v)) != 0)
				*item = i;
		}
		return rc;
	}
	case PAGE_KIND_UNDO:
		return decode_undo(p, ps, item);
	default:
		return err_set(WD_ECORRUPT, "page of kind %s (%u), which no relation holds",
			       page_kind_name(page_kind(p)), page_kind(p));
	}
}

/* Whether a page of kind k belongs in block blk of a file of role r. */
static bool kind_fits(enum role r, unsigned k, wd_blkno blk)
{
	switch (r) {
	case ROLE_HEAP: return k == PAGE_KIND_HEAP || k == PAGE_KIND_OVERFLOW;
	case ROLE_FSM: return k == PAGE_KIND_FSM;
	case ROLE_INDEX: return blk == 0 ? k == PAGE_KIND_META : k == PAGE_KIND_BTREE;
	case ROLE_UNDO: return k == PAGE_KIND_UNDO;
	default: return true;
	}
}

/* Verifies every page of DIR/base/<rel>; problems are recorded. */
static void scan_file(struct check *c, int table, enum role role, wd_relid rel)
{
	char path[4200], file[32];
	st_file *f = NULL;
	uint64_t size = 0;
	int rc;

	tool_rel_path(c->dir, rel, path, sizeof path);
	snprintf(file, sizeof file, "%s/%u", DB_BASE_DIR, rel);
	rc = storage_open(path, ST_RDONLY, &f);
	if (rc == WD_ENOENT || rc == WD_NOTFOUND) {
		problem(c, table, role, file, -1, -1, "the file is missing");
		return;
	}
	if (rc == 0)
		rc = storage_size(f, &size);
	if (rc == 0 && size % c->ps)
		problem(c, table, role, file, (int64_t)(size / c->ps), -1,
			"file of %" PRIu64 " bytes ends in a partial page", size);
	for (wd_blkno b = 0; rc == 0 && (uint64_t)b < size / c->ps; b++) {
		size_t got = 0;
		int64_t item;
		if ((rc = storage_read(f, c->page, c->ps, (uint64_t)b * c->ps, &got)) != 0)
			break;
		c->pages++;
		int v = page_verify(c->page, c->ps, b, file);
		if (v == PAGE_VERIFY_NEW)
			continue;
		if (v != 0) {
			problem(c, table, role, file, b, -1, "%s", detail_after(file, b));
			continue;
		}
		if (!kind_fits(role, page_kind(c->page), b)) {
			problem(c, table, role, file, b, -1, "a %s page, which a%s %s file "
				"does not hold%s", page_kind_name(page_kind(c->page)),
				role == ROLE_INDEX || role == ROLE_UNDO ? "n" : "", role_names[role],
				role == ROLE_INDEX && b == 0 ? " in block 0 (the metapage)" : "");
			continue;
		}
		if (decode_page(c->page, c->ps, b, &item) != 0)
			problem(c, table, role, file, b, item, "%s", wd_last_error());
	}
	if (f)
		(void)storage_close(f);
	if (rc != 0) {
		fprintf(stderr, "walden check: %s: %s (%s)\n", path, wd_last_error(),
			wd_strerror(rc));
		c->error = EXIT_ERROR;
	}
}

static bool parse_relid(const char *name, wd_relid *rel)
{
	char *end;
	unsigned long v;
	if (name[0] < '0' || name[0] > '9')
		return false;
	errno = 0;
	v = strtoul(name, &end, 10);
	if (*end || errno || v > UINT32_MAX)
		return false;
	*rel = (wd_relid)v;
	return true;
}

static bool known_rel(const struct check *c, wd_relid rel)
{
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i].heap_rel == rel || c->t[i].index_rel == rel ||
		    (c->t[i].fsm_rel && c->t[i].fsm_rel == rel))
			return true;
	return false;
}

/*
 * Files of DIR/base that no table names: orphans (every file, as ROLE_ANY,
 * when the catalog could not be read: c->nt == 0). A file whose id was
 * handed out to a table (below next_relid) is the leftover of a create or
 * drop that did not finish - legitimate, removed by the next open (txn
 * README P1 step 6) - and only noted on stderr; one with an id never
 * handed out is damage.
 */
static void scan_others(struct check *c)
{
	char base[4200];
	struct dirent *de;
	wd_relid *rels = NULL;
	size_t n = 0, cap = 0;
	DIR *d;
	snprintf(base, sizeof base, "%s/%s", c->dir, DB_BASE_DIR);
	if (!(d = opendir(base))) {
		fprintf(stderr, "walden check: %s: %s\n", base, strerror(errno));
		c->error = EXIT_ERROR;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		wd_relid rel;
		if (!parse_relid(de->d_name, &rel) || known_rel(c, rel))
			continue;
		if (n == cap) {
			wd_relid *r = realloc(rels, (cap = cap ? 2 * cap : 16) * sizeof *r);
			if (!r)
				break;
			rels = r;
		}
		rels[n++] = rel;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) { /* in id order, for a stable report */
		for (size_t j = i + 1; j < n; j++)
			if (rels[j] < rels[i]) {
				wd_relid x = rels[i];
				rels[i] = rels[j];
				rels[j] = x;
			}
		if (rels[i] == UNDO_REL) { /* not a table's: the undo log */
			scan_file(c, -1, ROLE_UNDO, rels[i]);
			continue;
		}
		if (c->nt && rels[i] >= DB_FIRST_TABLE_RELID && rels[i] < c->next_relid) {
			fprintf(stderr, "walden check: note: %s/%u: leftover of an unfinished "
				"create or drop, removed at the next open\n", DB_BASE_DIR, rels[i]);
			continue;
		}
		if (c->nt) {
			char file[32];
			snprintf(file, sizeof file, "%s/%u", DB_BASE_DIR, rels[i]);
			problem(c, -1, ROLE_ORPHAN, file, -1, -1,
				"orphan file: no catalog entry names it");
		}
		scan_file(c, -1, c->nt ? ROLE_ORPHAN : ROLE_ANY, rels[i]);
	}
	free(rels);
}

static void scan_table(struct check *c, size_t i)
{
	scan_file(c, (int)i, ROLE_HEAP, c->t[i].heap_rel);
	if (c->t[i].fsm_rel)
		scan_file(c, (int)i, ROLE_FSM, c->t[i].fsm_rel);
	scan_file(c, (int)i, ROLE_INDEX, c->t[i].index_rel);
}

/* ---- pass 2: through the engine ---- */

static void rel_file(char *out, size_t cap, wd_relid rel)
{
	snprintf(out, cap, "%s/%u", DB_BASE_DIR, rel);
}

/* Turns a db_table_check result into problems and statistics. */
static void table_result(struct check *c, size_t i, int rc, const db_check_report *r,
			 wd_table *tab)
{
	struct tstat *s = &c->ts[i];
	char file[32];
	wd_blkno nb = 0;
	bool said = false;

	if (rc != 0 && rc != WD_ECORRUPT) {
		fprintf(stderr, "walden check: table %s: %s (%s)\n", c->t[i].name,
			wd_last_error(), wd_strerror(rc));
		c->error = EXIT_ERROR;
		return;
	}
	s->checked = true;
	s->ok = rc == 0 && r->ok;
	s->tuples = r->heap_tuples;
	s->height = r->index.height;
	s->index_pages = r->index.pages;
	if (tab && heap_nblocks(db_table_heap(tab), &nb) == 0)
		s->heap_pages = nb;
	if (rc == 0)
		return;
	if (!r->index.ok) {
		rel_file(file, sizeof file, c->t[i].index_rel);
		problem(c, (int)i, ROLE_INDEX, file, r->index.bad_blk == WD_INVALID_BLKNO ? -1 :
			(int64_t)r->index.bad_blk, r->index.bad_item, "%s", r->index.msg);
		said = true;
	}
	if (r->fsm.over || r->fsm.disk_diff) {
		rel_file(file, sizeof file, c->t[i].fsm_rel ? c->t[i].fsm_rel : c->t[i].heap_rel);
		problem(c, (int)i, ROLE_FSM, file, -1, -1,
			"free space map wrong from the entry of heap block %u: %" PRIu64
			" entries promise more room than their page has, %" PRIu64
			" FSM file bytes differ from the map", r->fsm.first_bad, r->fsm.over,
			r->fsm.disk_diff);
		said = true;
	}
	if (r->index.ok && (r->unindexed || r->misindexed || r->dangling)) {
		rel_file(file, sizeof file, c->t[i].heap_rel);
		problem(c, (int)i, ROLE_HEAP, file, -1, -1,
			"heap and index disagree: %" PRIu64 " tuples not indexed, %" PRIu64
			" indexed elsewhere, %" PRIu64 " index entries without their tuple%s%s",
			r->unindexed, r->misindexed, r->dangling, said ? "" : "; first: ",
			said ? "" : r->msg);
		said = true;
	}
	if (!said)
		problem(c, (int)i, ROLE_ANY, "", -1, -1, "%s", wd_last_error());
}

static void check_tables(struct check *c, wd_db *db)
{
	wd_txn *x = NULL;
	db_check_report r;
	int rc;
	if (!c->only) {
		rc = db_catalog_check(db, &r);
		table_result(c, 0, rc, &r, NULL);
		c->ts[0].heap_pages = 0;
	}
	if ((rc = wd_begin(db, &x)) != 0) {
		c->error = tool_fail("check", rc, "starting a transaction");
		return;
	}
	for (size_t i = 1; i < c->nt; i++) {
		wd_table *tab;
		if (c->ts[i].bad_pages) {
			c->ts[i].skipped = true;
			continue;
		}
		rc = wd_table_open(x, c->t[i].name, 0, &tab);
		if (rc == WD_ECORRUPT) {
			problem(c, (int)i, ROLE_ANY, "", -1, -1, "the table does not open: %s",
				wd_last_error());
			continue;
		}
		if (rc != 0) {
			c->error = tool_fail("check", rc, c->t[i].name);
			continue;
		}
		rc = db_table_check(tab, &r);
		table_result(c, i, rc, &r, tab);
	}
	if ((rc = wd_commit(x)) != 0)
		c->error = tool_fail("check", rc, "committing");
}

/* ---- report ---- */

static const char *tname(const struct check *c, int i)
{
	return i < 0 ? NULL : c->t[i].name;
}

static void print_problem_text(const struct problem *p, const char *table)
{
	if (table)
		printf("%s: ", table);
	if (p->file[0])
		printf("%s %s", role_names[p->role], p->file);
	else
		printf("%s", role_names[p->role]);
	if (p->blk >= 0)
		printf(" block %" PRId64, p->blk);
	if (p->item >= 0)
		printf(" item %" PRId64, p->item);
	printf(": %s\n", p->msg);
}

static void print_text(const struct check *c)
{
	for (size_t i = 0; i < c->nt; i++) {
		const struct tstat *s = &c->ts[i];
		bool any = false;
		if (c->only && i == 0)
			continue;
		for (size_t j = 0; j < c->npr; j++)
			if (c->pr[j].table == (int)i) {
				print_problem_text(&c->pr[j], c->t[i].name);
				any = true;
			}
		if (s->skipped)
			printf("%s: %" PRIu64 " damaged page%s; heap and index not compared, "
			       "DAMAGED\n", c->t[i].name, s->bad_pages, s->bad_pages == 1 ? "" : "s");
		else if (s->checked && i == 0)
			printf("%s: %zu table%s, index height %u (%" PRIu64 " pages), %s\n",
			       c->t[i].name, c->nt - 1, c->nt == 2 ? "" : "s", s->height,
			       s->index_pages, any ? "DAMAGED" : "ok");
		else if (s->checked)
			printf("%s: %" PRIu64 " tuples, index height %u (%" PRIu64 " pages%s), "
			       "heap %" PRIu64 " pages, %s\n", c->t[i].name, s->tuples, s->height,
			       s->index_pages, s->ok ? "" : " reached before the check stopped",
			       s->heap_pages, any ? "DAMAGED" : "ok");
		else if (any)
			printf("%s: DAMAGED\n", c->t[i].name);
	}
	for (size_t j = 0; j < c->npr; j++)
		if (c->pr[j].table < 0)
			print_problem_text(&c->pr[j], NULL);
	printf("%s: %" PRIu64 " pages read, %zu problem%s%s\n", c->dir, c->pages, c->npr,
	       c->npr == 1 ? "" : "s", c->npr ? " found" : ", ok");
}

static void print_json(const struct check *c)
{
	bool first = true;
	printf("{\"database\": ");
	tool_json_str(stdout, c->dir);
	printf(", \"ok\": %s, \"pages_read\": %" PRIu64 ",\n \"tables\": [",
	       c->npr || c->error ? "false" : "true", c->pages);
	for (size_t i = 0; i < c->nt; i++) {
		const struct tstat *s = &c->ts[i];
		bool bad = s->skipped || (s->checked && !s->ok);
		for (size_t j = 0; j < c->npr; j++)
			bad |= c->pr[j].table == (int)i;
		if (c->only && i == 0)
			continue;
		printf("%s\n  {\"name\": ", first ? "" : ",");
		first = false;
		tool_json_str(stdout, c->t[i].name);
		printf(", \"catalog\": %s, \"ok\": %s, \"checked\": %s, \"tuples\": %" PRIu64
		       ", \"index_height\": %u, \"index_pages\": %" PRIu64 ", \"heap_pages\": %"
		       PRIu64 ", \"damaged_pages\": %" PRIu64 "}", i == 0 ? "true" : "false",
		       bad ? "false" : "true", s->checked ? "true" : "false", s->tuples,
		       s->height, s->index_pages, s->heap_pages, s->bad_pages);
	}
	printf("],\n \"problems\": [");
	for (size_t j = 0; j < c->npr; j++) {
		const struct problem *p = &c->pr[j];
		printf("%s\n  {\"table\": ", j ? "," : "");
		if (tname(c, p->table))
			tool_json_str(stdout, tname(c, p->table));
		else
			printf("null");
		printf(", \"relation\": \"%s\", \"file\": ", role_names[p->role]);
		if (p->file[0])
			tool_json_str(stdout, p->file);
		else
			printf("null");
		if (p->blk >= 0)
			printf(", \"block\": %" PRId64, p->blk);
		else
			printf(", \"block\": null");
		if (p->item >= 0)
			printf(", \"item\": %" PRId64, p->item);
		else
			printf(", \"item\": null");
		printf(", \"message\": ");
		tool_json_str(stdout, p->msg);
		printf("}");
	}
	printf("]}\n");
}

/* ---- main ---- */

/* The catalog as entry 0, then the tables (all, or --table). */
static int collect_tables(struct check *c, wd_db *db)
{
	tool_table *all = NULL;
	size_t n = 0, keep = 0;
	int rc = tool_tables(db, &all, &n);
	if (rc != 0)
		return rc;
	if (!(c->t = calloc(n + 1, sizeof *c->t)) || !(c->ts = calloc(n + 1, sizeof *c->ts)) ||
	    !(c->t[0].name = strdup(TOOL_CATALOG_NAME))) {
		tool_tables_free(all, n);
		return err_set(WD_ENOMEM, "out of memory");
	}
	c->t[0].heap_rel = TOOL_CATALOG_HEAP_REL;
	c->t[0].index_rel = TOOL_CATALOG_INDEX_REL;
	c->nt = 1;
	for (size_t i = 0; i < n; i++) {
		if (!c->only || strcmp(all[i].name, c->only) == 0) {
			c->t[c->nt++] = all[i];
			keep++;
		} else {
			free(all[i].name);
		}
	}
	free(all);
	if (c->only && !keep)
		return err_set(WD_NOTFOUND, "no table '%s' in the catalog", c->only);
	return 0;
}

static int run(struct check *c)
{
	control_data cd;
	bool cd_ok;
	wd_db *db = NULL;
	int rc, ex = tool_open_db("check", c->dir, &db, &cd, &cd_ok);

	if (ex == EXIT_ERROR || (ex == EXIT_DAMAGE && !cd_ok))
		return ex;
	c->ps = cd.page_size;
	c->next_relid = cd.next_relid;
	if (!(c->page = malloc(c->ps))) {
		(void)wd_close(db);
		return tool_fail("check", WD_ENOMEM, "allocating a page");
	}
	c->report = true;
	if (ex == EXIT_DAMAGE) {
		/* the catalog is out of reach: every file, by page kind */
		problem(c, -1, ROLE_ANY, "", -1, -1, "the database does not open: %s",
			wd_last_error());
		scan_others(c);
		return EXIT_DAMAGE;
	}
	rc = collect_tables(c, db);
	if (rc == WD_NOTFOUND && c->only) {
		c->report = false;
		fprintf(stderr, "walden check: %s: %s\n", c->dir, wd_last_error());
		(void)wd_close(db);
		return EXIT_ERROR;
	}
	if (rc != 0) {
		int code = rc == WD_ECORRUPT || rc == WD_EVERSION ? EXIT_DAMAGE : EXIT_ERROR;
		if (code == EXIT_ERROR) {
			c->report = false;
			(void)tool_fail("check", rc, "reading the catalog");
		} else {
			problem(c, -1, ROLE_ANY, "", -1, -1, "the catalog does not list: %s",
				wd_last_error());
			free(c->t);
			c->t = NULL;
			c->nt = 0;
			scan_others(c);
		}
		(void)wd_close(db);
		return code;
	}
	/* pass 1 reads the files: first whatever an open changed (recovery,
	 * a rebuilt FSM) goes to them */
	if ((rc = bufmgr_flush_all(db_pool(db))) != 0) {
		(void)tool_fail("check", rc, "writing the pool's pages");
		(void)wd_close(db);
		return EXIT_ERROR;
	}
	for (size_t i = c->only ? 1 : 0; i < c->nt; i++)
		scan_table(c, i);
	if (!c->only)
		scan_others(c);
	check_tables(c, db);
	if ((rc = wd_close(db)) != 0)
		(void)tool_fail("check", rc, "closing the database");
	return c->npr ? EXIT_DAMAGE : c->error;
}

int check_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"table", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct check c = {0};
	int opt, ex;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "t:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 't': c.only = optarg; break;
		case 'j': c.json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || (c.only && !*c.only)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	c.dir = argv[optind];
	ex = run(&c);
	if (c.report) {
		if (!c.ts && !(c.ts = calloc(1, sizeof *c.ts)))
			ex = EXIT_ERROR;
		else if (c.json)
			print_json(&c);
		else
			print_text(&c);
		if (ex == EXIT_OK && c.error)
			ex = c.error;
	}
	if (c.t)
		tool_tables_free(c.t, c.nt);
	free(c.ts);
	free(c.pr);
	free(c.page);
	return ex;
}
