/*
 * test_badinput.c - damaged data pages (DESIGN.md section 6: "bit flip in
 * a data page ... a clear error naming the file and page; never a silent
 * wrong answer"). A database is built once through the public API beside
 * an LMDB oracle and closed cleanly (tests/lib/badtest.c); then, one at a
 * time, a damage is done to exactly one page of one relation file - of
 * every kind: heap, overflow, B+tree leaf, internal page and metapage,
 * free space map, undo, the catalog's heap and B+tree, all-zero pages -
 * and the database is opened, every table read in full (a cursor scan
 * and spot gets against the oracle, a put taken back), and closed. Each
 * damage must end in WD_ECORRUPT naming the file and the block, or leave
 * the rows exactly the oracle's (the page rebuilt, as the free space map
 * is, or never read); a row that differs fails the test. `walden check`
 * must name the damaged file and block for a sample of them. The files
 * are put back after each trial (badtest's snapshot).
 *
 *   test_bit_flips        10,000 single-bit flips, the kinds in turn
 *   test_garbage_sectors  1,000 512-byte sectors overwritten with random
 *                         bytes, zeros, or another page's sector
 *
 * Scale: WALDEN_TEST_SCALE (default 1, 0.2 under ASan) multiplies the
 * number of flips and sectors. Time on the 2-core machine (scratch in
 * /dev/shm, the machine busy): about 100 s in release (8.4 ms a flip,
 * 9-12 ms a sector), 90 s under ASan (2,000 flips, 200 sectors).
 */
#define _GNU_SOURCE
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/lib/badtest.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/testutil.h"
#include "walden.h"

#define FLIPS 10000u
#define SECTORS 1000u
#define SECTOR 512u
#define CHECK_PER_CLASS 3u /* walden check runs per kind of page */
#define UNREAD_CHECKS 10u  /* ... and on the first damages no read reached */

/* What the damages of one kind of page came to. */
struct tally {
	unsigned tried[BT_NCLASS];
	unsigned caught[BT_NCLASS];    /* WD_ECORRUPT naming file and block */
	unsigned rebuilt[BT_NCLASS];   /* no error, the page rewritten */
	unsigned unread[BT_NCLASS];    /* no error, the damage still on disk */
	unsigned same[BT_NCLASS];      /* the damage changed no byte */
	unsigned checked[BT_NCLASS];   /* walden check named file and block */
};

/* One damage: bytes [off, off+len) of a page replaced by what. */
struct damage {
	const bt_page *pg;
	uint32_t off, len;             /* within the page */
	uint8_t what[SECTOR];
	char how[160];
};

static unsigned scaled(unsigned n)
{
	double v = n * dt_scale();
	return v < 50 ? 50 : (unsigned)v;
}

/* The pages of the map in class c (n of them). */
static const bt_page **pages_of(const bt_db *b, enum bt_class c, size_t *n)
{
	const bt_page **v = calloc(b->nclass[c] + 1, sizeof *v);
	assert_non_null(v);
	*n = 0;
	for (size_t i = 0; i < b->npages; i++)
		if (b->pages[i].cls == c)
			v[(*n)++] = &b->pages[i];
	return v;
}

/* The damaged page's file name and byte offset in that file. */
static uint64_t file_off(const bt_db *b, const struct damage *d)
{
	return (uint64_t)d->pg->blk * b->ps + d->off;
}

/* Runs `walden check` on the database damaged by d: it must say damage
 * was found (exit 3) and name the file and block. */
static void run_check(bt_db *b, const struct damage *d)
{
	static char out[1u << 16], err[1u << 14];
	const bt_file *f = &b->files[d->pg->file];
	int st;
	bt_restore(b);
	bt_write_at(b, d->pg->file, file_off(b, d), d->what, d->len);
	st = tu_run_tool((const char *[]){"check", b->dir, NULL}, out, sizeof out, err,
			 sizeof err);
	if (st != 3 || !(bt_names(out, f->name, d->pg->blk) || bt_names(err, f->name, d->pg->blk)))
		fail_msg("walden check after %s in %s block %u (%s): exit %d, does not name "
			 "the page\n%s\n%s", d->how, f->name, d->pg->blk,
			 bt_class_names[d->pg->cls], st, out, err);
}

/* Does damage d, runs a trial and judges it (the test fails on a wrong
 * row, another error code, or a message not naming file and block). */
static void judge(bt_db *b, const struct damage *d, struct tally *t, bool check)
{
	const bt_file *f = &b->files[d->pg->file];
	uint64_t off = file_off(b, d);
	enum bt_class c = d->pg->cls;
	bt_result r;
	t->tried[c]++;
	if (memcmp(f->data + off, d->what, d->len) == 0) {
		t->same[c]++;
		return;
	}
	bt_write_at(b, d->pg->file, off, d->what, d->len);
	bt_trial(b, 0, &r);
	if (r.wrong)
		fail_msg("%s in %s block %u (%s): a wrong answer, %s (error: %s)", d->how, f->name,
			 d->pg->blk, bt_class_names[c], r.diag, r.rc ? r.msg : "none");
	if (r.rc != 0) {
		if (r.rc != WD_ECORRUPT || !bt_names(r.msg, f->name, d->pg->blk))
			fail_msg("%s in %s block %u (%s): %s: %s", d->how, f->name, d->pg->blk,
				 bt_class_names[c], wd_strerror(r.rc), r.msg);
		t->caught[c]++;
	} else {
		bool kept = true;
		for (uint32_t i = 0; i < d->len && kept; i++)
			kept = bt_byte_at(b, d->pg->file, off + i) == d->what[i];
		if (kept) {
			/* a page no read reached: walden check must still see it */
			check = check || t->unread[c] < UNREAD_CHECKS;
			t->unread[c]++;
		} else {
			t->rebuilt[c]++;
		}
	}
	if (check) {
		run_check(b, d);
		t->checked[c]++;
	}
	bt_restore(b);
}

static void print_tally(const char *what, const struct tally *t, unsigned n, double s)
{
	printf("%s: %u in %.1f s (%.2f ms each)\n", what, n, s, 1000 * s / n);
	printf("  %-15s %6s %6s %7s %6s %9s %7s\n", "page kind", "tried", "caught", "rebuilt",
	       "unread", "no change", "checked");
	for (int c = 0; c < BT_NCLASS; c++)
		if (t->tried[c])
			printf("  %-15s %6u %6u %7u %6u %9u %7u\n", bt_class_names[c], t->tried[c],
			       t->caught[c], t->rebuilt[c], t->unread[c], t->same[c],
			       t->checked[c]);
}

/* The kinds present in b (every kind of test_badinput's list must be). */
static size_t kinds(const bt_db *b, enum bt_class *present)
{
	size_t n = 0;
	for (int c = 0; c < BT_NCLASS; c++) {
		if (b->nclass[c] == 0 && c != BT_ZERO)
			fail_msg("the database has no %s page", bt_class_names[c]);
		if (b->nclass[c])
			present[n++] = (enum bt_class)c;
	}
	return n;
}

/* ---- single-bit flips --------------------------------------------------------- */

static void test_bit_flips(void **state)
{
	bt_db b;
	struct tally t = {0};
	enum bt_class present[BT_NCLASS];
	const bt_page **by[BT_NCLASS];
	size_t nby[BT_NCLASS], np;
	unsigned n = scaled(FLIPS);
	uint64_t s = 0xF11B5u;
	double t0;
	(void)state;
	bt_build(&b, "flips", 0, 1);
	np = kinds(&b, present);
	for (size_t i = 0; i < np; i++)
		by[present[i]] = pages_of(&b, present[i], &nby[present[i]]);
	t0 = dt_now_s();
	for (unsigned i = 0; i < n; i++) {
		enum bt_class c = present[i % np];
		struct damage d = {.pg = by[c][tu_rand(&s) % nby[c]], .len = 1};
		uint32_t bit = (uint32_t)(tu_rand(&s) % (b.ps * 8u));
		d.off = bit / 8;
		d.what[0] = b.files[d.pg->file].data[file_off(&b, &d)] ^ (uint8_t)(1u << (bit % 8));
		snprintf(d.how, sizeof d.how, "bit %u of byte %u flipped", bit % 8, d.off);
		judge(&b, &d, &t, i < CHECK_PER_CLASS * np);
	}
	print_tally("single-bit flips", &t, n, dt_now_s() - t0);
	for (size_t i = 0; i < np; i++) {
		enum bt_class c = present[i];
		/* every byte of a page is under its checksum: no flip goes unseen
		 * by a read, so every kind a read reaches is caught */
		assert_int_equal(t.same[c], 0);
		free(by[c]);
	}
	bt_free(&b);
}

/* ---- garbage sectors ------------------------------------------------------------ */

static void test_garbage_sectors(void **state)
{
	bt_db b;
	struct tally t = {0};
	enum bt_class present[BT_NCLASS];
	const bt_page **by[BT_NCLASS];
	size_t nby[BT_NCLASS], np;
	unsigned n = scaled(SECTORS);
	uint64_t s = 0x5EC7u;
	double t0;
	(void)state;
	bt_build(&b, "sectors", 0, 2);
	np = kinds(&b, present);
	for (size_t i = 0; i < np; i++)
		by[present[i]] = pages_of(&b, present[i], &nby[present[i]]);
	t0 = dt_now_s();
	for (unsigned i = 0; i < n; i++) {
		enum bt_class c = present[i % np];
		struct damage d = {.pg = by[c][tu_rand(&s) % nby[c]], .len = SECTOR};
		uint32_t sec = (uint32_t)(tu_rand(&s) % (b.ps / SECTOR));
		d.off = sec * SECTOR;
		switch ((i / np) % 3) {
		case 0:
			for (uint32_t j = 0; j < SECTOR; j += 8) {
				uint64_t r = tu_rand(&s);
				memcpy(d.what + j, &r, 8);
			}
			snprintf(d.how, sizeof d.how, "sector %u overwritten with random bytes", sec);
			break;
		case 1:
			snprintf(d.how, sizeof d.how, "sector %u zeroed", sec);
			break;
		default: {
			const bt_page *o = &b.pages[tu_rand(&s) % b.npages];
			uint32_t osec = (uint32_t)(tu_rand(&s) % (b.ps / SECTOR));
			memcpy(d.what, b.files[o->file].data + (size_t)o->blk * b.ps + osec * SECTOR,
			       SECTOR);
			snprintf(d.how, sizeof d.how, "sector %u replaced by sector %u of %s block %u",
				 sec, osec, b.files[o->file].name, o->blk);
		}
		}
		judge(&b, &d, &t, i < CHECK_PER_CLASS * np);
	}
	print_tally("garbage sectors", &t, n, dt_now_s() - t0);
	for (size_t i = 0; i < np; i++)
		free(by[present[i]]);
	bt_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_garbage_sectors),
	};
	/* thousands of opens and closes: their fsyncs cost nothing on tmpfs */
	if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
