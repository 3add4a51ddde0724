/*
 * waldump.c - `walden waldump DIR`: the write-ahead log one record per line
 * (like pg_waldump), per-type statistics, and where and why the log ends.
 * Entry point: waldump_main. Reads with wal/reader.h; names and
 * descriptions come from the rmgr table (wal/rmgr.h).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recovery/control.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tools/tools.h"
#include "txn/rmgrs.h"
#include "wal/reader.h"
#include "wal/rmgr.h"

#define FOLLOW_POLL_MS 200
#define MAX_KINDS 1024 /* record types counted; more are left out */

struct dump_opts {
	const char *dir;
	const char *wal_dir; /* --wal-dir: segments from here, not DIR/wal */
	wd_lsn start, end;
	bool has_start, has_end, has_xid, fpi, stats, follow;
	wd_xid xid;
	int rmgr; /* -1: every rmgr */
};

/* Statistics of one record type. */
struct kind_stats {
	unsigned rmgr, type;
	uint64_t count, total, header, image, data;
};

struct dump {
	struct dump_opts o;
	char segdir[4096];      /* where the segments are read */
	control_data cd;
	uint32_t seg_size;
	wal_reader *r;
	uint8_t *page;          /* scratch for --fpi image checks */
	struct kind_stats kinds[MAX_KINDS];
	size_t nkinds;
	wd_lsn stop_lsn;        /* where the dump stopped before the end */
};

static volatile sig_atomic_t interrupted;

/* SIGINT/SIGTERM during --follow: finish with the usual last line. */
static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden waldump DIR [options]\n"
		"\n"
		"Prints the write-ahead log of the database in DIR, one record per line:\n"
		"  lsn=0/40 prev=0/0 xid=7 XACT/XACT_COMMIT len=64 blocks=[rel 1 blk 3 img 812] ...\n"
		"A commit or abort shows durable=LSN: the log was durable (fsynced) up to\n"
		"there when the record was written.\n"
		"and, last, where the log ends and why (the first record whose length,\n"
		"self-LSN or CRC does not check out, a torn tail, a missing segment).\n"
		"Options:\n"
		"  -s, --start LSN   first LSN (\"0/1A2B\"; default: the start of the\n"
		"                    oldest segment present)\n"
		"  -e, --end LSN     stop before the first record at or after LSN\n"
		"  -x, --xid X       only records of transaction X\n"
		"  -r, --rmgr NAME   only records of resource manager NAME ('list' lists)\n"
		"  -b, --fpi         show each block reference and full-page image\n"
		"  -z, --stats       per record type: records and bytes (header, image,\n"
		"                    data) instead of one line per record\n"
		"  -f, --follow      at the end, wait for new records (every %d ms) until\n"
		"                    interrupted\n"
		"  -w, --wal-dir D   read the segments from directory D (a WAL archive,\n"
		"                    the archive_dir setting) instead of DIR/wal; the\n"
		"                    control file still comes from DIR\n"
		"  -h, --help        this help\n"
		"Exit status: 0 ok, 1 error (not a database, a file of another\n"
		"database, I/O), 2 usage.\n",
		FOLLOW_POLL_MS);
}

/* Parses "HI/LO" (hex halves, as LSNs print). */
static bool parse_lsn(const char *s, wd_lsn *out)
{
	char *end;
	unsigned long long hi, lo;
	hi = strtoull(s, &end, 16);
	if (end == s || *end != '/' || hi > 0xFFFFFFFFull)
		return false;
	s = end + 1;
	lo = strtoull(s, &end, 16);
	if (end == s || *end != '\0' || lo > 0xFFFFFFFFull)
		return false;
	*out = (hi << 32) | lo;
	return true;
}

/* --rmgr list: every record type of records.def. */
static void list_rmgrs(void)
{
	unsigned rm, ty;
	printf("%-6s %-5s %-20s %-6s %s\n", "rmgr", "type", "name", "owner", "meaning");
	for (size_t i = 0; wal_record_at(i, &rm, &ty); i++)
		printf("%-6s 0x%02x  %-20s %-6s %s\n", wal_rmgr_name(rm), ty,
		       wal_record_name(rm, ty), wal_rmgr_owner(rm), wal_record_what(rm, ty));
}

/* Handles one option; returns -1 to go on, else an exit code. */
static int parse_option(int c, struct dump_opts *o)
{
	char *end;
	switch (c) {
	case 's': o->has_start = true; return parse_lsn(optarg, &o->start) ? -1 : EXIT_USAGE;
	case 'e': o->has_end = true; return parse_lsn(optarg, &o->end) ? -1 : EXIT_USAGE;
	case 'x':
		o->has_xid = true;
		o->xid = strtoull(optarg, &end, 10);
		return *optarg && !*end ? -1 : EXIT_USAGE;
	case 'r':
		if (strcmp(optarg, "list") == 0) {
			list_rmgrs();
			return EXIT_OK;
		}
		o->rmgr = wal_rmgr_lookup(optarg);
		return o->rmgr >= 0 ? -1 : EXIT_USAGE;
	case 'b': o->fpi = true; return -1;
	case 'z': o->stats = true; return -1;
	case 'f': o->follow = true; return -1;
	case 'w': o->wal_dir = optarg; return -1;
	case 'h': usage(stdout); return EXIT_OK;
	default: return EXIT_USAGE;
	}
}

/* Fills o from argv; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct dump_opts *o)
{
	static const struct option opts[] = {
		{"start", required_argument, NULL, 's'},
		{"end", required_argument, NULL, 'e'},
		{"xid", required_argument, NULL, 'x'},
		{"rmgr", required_argument, NULL, 'r'},
		{"fpi", no_argument, NULL, 'b'},
		{"stats", no_argument, NULL, 'z'},
		{"follow", no_argument, NULL, 'f'},
		{"wal-dir", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, rc;
	memset(o, 0, sizeof *o);
	o->rmgr = -1;
	optind = 0;
	while ((c = getopt_long(argc, argv, "s:e:x:r:bzfw:h", opts, NULL)) != -1) {
		if ((rc = parse_option(c, o)) == -1)
			continue;
		if (rc == EXIT_USAGE && c != '?')
			fprintf(stderr, "walden waldump: bad value for -%c: '%s'%s\n", c,
				optarg, c == 'r' ? " (--rmgr list names them)" : "");
		if (rc == EXIT_USAGE)
			fprintf(stderr, "Try 'walden waldump --help'.\n");
		return rc;
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	o->dir = argv[optind];
	return -1;
}

/* ---- opening ------------------------------------------------------------- */

/*
 * The segment size when the control file does not record it yet: from the
 * header of the oldest segment, which must belong to this database. 0 if
 * there is no segment at all.
 */
static int probe_seg_size(struct dump *d)
{
	uint8_t buf[WAL_SEG_HEADER_SIZE];
	char path[4096];
	wal_seg_header h;
	st_file *f = NULL;
	uint64_t segno;
	size_t got = 0;
	int rc = wal_oldest_segment_in(d->segdir, &segno);
	if (rc == WD_NOTFOUND)
		return 0;
	if (rc == 0)
		rc = wal_seg_path_in(path, sizeof path, d->segdir, segno);
	if (rc == 0)
		rc = storage_open(path, ST_RDONLY, &f);
	if (rc == 0)
		rc = storage_read(f, buf, sizeof buf, 0, &got);
	if (f)
		(void)storage_close(f);
	if (rc == 0 && got < sizeof buf)
		rc = err_set(WD_ECORRUPT, "%s: shorter than a segment header", path);
	if (rc == 0)
		rc = wal_seg_header_decode(buf, path, &h);
	if (rc == 0 && memcmp(h.db_id, d->cd.db_id, sizeof h.db_id) != 0)
		rc = err_set(WD_EFOREIGN, "%s: WAL segment of another database", path);
	if (rc == 0)
		d->seg_size = h.seg_size;
	return rc;
}

/* Reads DIR/control and opens the reader. Returns an exit code or -1. */
static int open_db(struct dump *d)
{
	int rc = control_read(d->o.dir, &d->cd);
	if (d->o.wal_dir)
		snprintf(d->segdir, sizeof d->segdir, "%s", d->o.wal_dir);
	else
		snprintf(d->segdir, sizeof d->segdir, "%s/%s", d->o.dir, WAL_DIR);
	if (rc == WD_ENOENT) {
		fprintf(stderr, "walden waldump: %s: not a walden database (no %s file)\n",
			d->o.dir, CONTROL_FILE);
		return EXIT_ERROR;
	}
	if (rc != 0)
		return tool_fail("waldump", rc, "control file");
	d->seg_size = d->cd.wal_segment_size;
	if (!d->seg_size && (rc = probe_seg_size(d)) != 0)
		return tool_fail("waldump", rc, "first WAL segment");
	if (!d->seg_size)
		d->seg_size = WAL_SEG_SIZE_DEFAULT; /* no WAL yet: any size reads nothing */
	rc = wal_reader_open_dir(d->segdir, d->cd.db_id, d->seg_size, d->cd.page_size, &d->r);
	if (rc == 0 && !(d->page = malloc(d->cd.page_size)))
		rc = err_set(WD_ENOMEM, "out of memory");
	return rc ? tool_fail("waldump", rc, "opening the WAL") : -1;
}

/*
 * Positions the reader at the first record to show. The default start, a
 * segment's first byte, may hold the tail of a record begun in a removed
 * segment (the segment header does not say how long): if no record starts
 * there, the first one that does is found. A damaged record (bad CRC) is
 * not skipped: the log ends there.
 */
static int position(struct dump *d)
{
	const wal_decoded *rec;
	wal_end_reason why;
	wd_lsn start = d->o.start, found;
	uint64_t segno;
	int rc;
	if (!d->o.has_start)
		start = wal_oldest_segment_in(d->segdir, &segno) == 0 ? segno * d->seg_size : 0;
	if ((rc = wal_reader_seek(d->r, start)) != 0)
		return rc;
	start = wal_reader_position(d->r);
	if ((rc = wal_reader_next(d->r, &rec)) != WD_NOTFOUND)
		return rc < 0 ? rc : wal_reader_seek(d->r, start);
	wal_reader_end(d->r, NULL, &why, NULL);
	if ((why != WAL_END_BAD_LSN && why != WAL_END_BAD_LENGTH && why != WAL_END_ZERO) ||
	    start == WAL_SEG_HEADER_SIZE) /* nothing comes before LSN 0/40 */
		return wal_reader_seek(d->r, start);
	rc = wal_reader_find(d->r, start, &found);
	if (rc == WD_NOTFOUND)
		return wal_reader_seek(d->r, start);
	if (rc == 0)
		fprintf(stderr, "walden waldump: no record starts at " LSN_FMT
				"; first record at " LSN_FMT " (%llu bytes skipped)\n",
			LSN_ARGS(start), LSN_ARGS(found),
			(unsigned long long)(wal_usable_from_lsn(found, d->seg_size) -
					     wal_usable_from_lsn(start, d->seg_size)));
	return rc;
}

/* ---- printing ------------------------------------------------------------- */

/* "XACT/XACT_COMMIT", or numbers for types records.def does not know. */
static void type_name(unsigned rmgr, unsigned type, char *buf, size_t cap)
{
	const char *rn = wal_rmgr_name(rmgr), *tn = wal_record_name(rmgr, type);
	if (rn && tn)
		snprintf(buf, cap, "%s/%s", rn, tn);
	else
		snprintf(buf, cap, "%s%s%u/0x%02x", rn ? rn : "rmgr", rn ? "#" : "", rmgr,
			 type);
}

/* "blocks=[rel 1 blk 3 img 812, rel 1 blk 4]". */
static void print_blocks(const wal_decoded *rec)
{
	printf("blocks=[");
	for (unsigned i = 0; i < rec->nblocks; i++) {
		const wal_block_ref *b = &rec->blocks[i];
		printf("%srel %u blk %u", i ? ", " : "", b->rel, b->blk);
		if (b->image_len)
			printf(" img %u", b->image_len);
	}
	printf("]");
}

/* --fpi: one line per block reference; images are expanded as a check. */
static void print_block_details(struct dump *d, const wal_decoded *rec)
{
	for (unsigned i = 0; i < rec->nblocks; i++) {
		const wal_block_ref *b = &rec->blocks[i];
		printf("    block %u: rel %u blk %u%s header %u data %u", i, b->rel, b->blk,
		       b->flags & WAL_BLK_WILL_INIT ? " will-init" : "", wal_block_header_len(b),
		       b->data_len);
		if (b->flags & WAL_BLK_HAS_IMAGE) {
			int rc = walrec_restore_image(rec, i, d->page, d->cd.page_size);
			printf(" image %u bytes%s hole %u+%u: %s", b->image_len,
			       b->flags & WAL_BLK_COMPRESSED ? " (zlib)" : "", b->hole_off,
			       b->hole_len, rc == 0 ? "restores to" : wd_last_error());
			if (rc == 0)
				printf(" %s page, lsn " LSN_FMT, page_kind_name(page_kind(d->page)),
				       LSN_ARGS(page_lsn(d->page)));
		}
		printf("\n");
	}
}

/* One line per record (format in usage()), then --fpi block lines. */
static void print_record(struct dump *d, const wal_decoded *rec)
{
	char name[64], desc[4096]; /* a checkpoint's tables are long */
	type_name(rec->rmgr, rec->type, name, sizeof name);
	wal_rmgr_describe(rec, desc, sizeof desc);
	printf("lsn=" LSN_FMT " prev=" LSN_FMT " xid=%" PRIu64 " %s len=%u ",
	       LSN_ARGS(rec->lsn), LSN_ARGS(rec->prev), rec->xid, name, rec->tot_len);
	if (rec->flags & WAL_REC_CLR)
		printf("clr ");
	if (rec->undo)
		printf("undo=%" PRIX64 " ", rec->undo);
	if (rec->flags & WAL_REC_HORIZON)
		printf("durable=" LSN_FMT " ", LSN_ARGS(rec->horizon));
	print_blocks(rec);
	printf(" %s\n", desc);
	if (d->o.fpi)
		print_block_details(d, rec);
}

/* Adds rec to its type's statistics (header, image, data bytes). */
static void count(struct dump *d, const wal_decoded *rec)
{
	struct kind_stats *k = NULL;
	uint64_t image = 0, data = rec->main_len;
	for (size_t i = 0; i < d->nkinds && !k; i++)
		if (d->kinds[i].rmgr == rec->rmgr && d->kinds[i].type == rec->type)
			k = &d->kinds[i];
	if (!k && d->nkinds == MAX_KINDS)
		return;
	if (!k) {
		k = &d->kinds[d->nkinds++];
		memset(k, 0, sizeof *k);
		k->rmgr = rec->rmgr;
		k->type = rec->type;
	}
	k->header += WAL_REC_HEADER_SIZE;
	for (unsigned i = 0; i < rec->nblocks; i++) {
		k->header += wal_block_header_len(&rec->blocks[i]);
		image += rec->blocks[i].image_len;
		data += rec->blocks[i].data_len;
	}
	k->count++;
	k->total += rec->tot_len;
	k->image += image;
	k->data += data;
}

/* Orders statistics by rmgr, then type. */
static int cmp_kinds(const void *a, const void *b)
{
	const struct kind_stats *x = a, *y = b;
	unsigned kx = x->rmgr << 8 | x->type, ky = y->rmgr << 8 | y->type;
	return kx < ky ? -1 : kx > ky;
}

/* One row of the --stats table. */
static void print_stats_line(const char *name, const struct kind_stats *k)
{
	printf("%-24s %10" PRIu64 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64
	       "\n", name, k->count, k->total, k->header, k->image, k->data);
}

/* The --stats table: one row per record type seen, then the total. */
static void print_stats(struct dump *d)
{
	struct kind_stats all = {0};
	char name[64];
	qsort(d->kinds, d->nkinds, sizeof d->kinds[0], cmp_kinds);
	printf("%-24s %10s %12s %12s %12s %12s\n", "type", "records", "bytes", "header",
	       "image", "data");
	for (size_t i = 0; i < d->nkinds; i++) {
		const struct kind_stats *k = &d->kinds[i];
		type_name(k->rmgr, k->type, name, sizeof name);
		print_stats_line(name, k);
		all.count += k->count;
		all.total += k->total;
		all.header += k->header;
		all.image += k->image;
		all.data += k->data;
	}
	print_stats_line("total", &all);
}

/* The last line: where the log ends and why; or, when the dump stopped
 * before the end (stopped: why), where it stopped. */
static void print_end(struct dump *d, const char *stopped)
{
	wd_lsn end;
	wal_end_reason why;
	const char *detail;
	if (stopped) {
		printf("stopped at " LSN_FMT ": %s (the log goes on)\n",
		       LSN_ARGS(d->stop_lsn), stopped);
		return;
	}
	wal_reader_end(d->r, &end, &why, &detail);
	printf("end of WAL at " LSN_FMT ": %s%s", LSN_ARGS(end), wal_end_reason_name(why),
	       wal_end_reason_clean(why) ? " (clean end)" : "");
	if (why != WAL_END_ZERO && detail[0])
		printf(": %s", detail);
	printf("%s\n", interrupted ? " (following interrupted)" : "");
}

/* ---- the loop ------------------------------------------------------------- */

/* The --xid and --rmgr filters. */
static bool wanted(const struct dump *d, const wal_decoded *rec)
{
	return (!d->o.has_xid || rec->xid == d->o.xid) &&
	       (d->o.rmgr < 0 || rec->rmgr == (unsigned)d->o.rmgr);
}

/* Sleeps ms milliseconds (cut short by a signal). */
static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Reads records to the end of the log (or --end); with --follow, waits at
 * the end for more until interrupted. Returns an exit code. */
static int dump_loop(struct dump *d)
{
	const wal_decoded *rec;
	const char *stopped = NULL;
	int rc;
	for (;;) {
		rc = wal_reader_next(d->r, &rec);
		if (rc == WD_NOTFOUND && d->o.follow && !interrupted) {
			fflush(stdout);
			sleep_ms(FOLLOW_POLL_MS);
			continue;
		}
		if (rc != 0)
			break;
		if (interrupted) {
			d->stop_lsn = rec->lsn;
			stopped = "interrupted";
			break;
		}
		if (d->o.has_end && rec->lsn >= d->o.end) {
			d->stop_lsn = rec->lsn;
			stopped = "reached --end";
			break;
		}
		if (!wanted(d, rec))
			continue;
		count(d, rec);
		if (!d->o.stats)
			print_record(d, rec);
	}
	if (rc != 0 && rc != WD_NOTFOUND)
		return tool_fail("waldump", rc, "reading WAL");
	if (d->o.stats)
		print_stats(d);
	print_end(d, stopped);
	return EXIT_OK;
}

/* --follow runs until SIGINT or SIGTERM; the handler only sets a flag, so
 * the dump ends with its usual last line. */
static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Runs a parsed dump: open, position, loop. Returns the exit code. */
static int run(struct dump *d)
{
	int rc;
	if ((rc = walden_register_rmgrs()) != 0)
		return tool_fail("waldump", rc, "registering resource managers");
	if ((rc = open_db(d)) != -1)
		return rc;
	if ((rc = position(d)) != 0)
		return tool_fail("waldump", rc, "finding the first record");
	if (d->o.follow)
		catch_signals();
	return dump_loop(d);
}

/* walden waldump: argv[0] is "waldump". Exit 0 ok, 1 error, 2 usage. */
int waldump_main(int argc, char **argv)
{
	struct dump *d = calloc(1, sizeof *d);
	int rc;
	if (!d)
		return tool_fail("waldump", WD_ENOMEM, "starting");
	rc = parse_args(argc, argv, &d->o);
	if (rc == -1)
		rc = run(d);
	wal_reader_close(d->r);
	free(d->page);
	free(d);
	return rc;
}
