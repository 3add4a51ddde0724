/*
 * test_waltail.c - the end of a damaged WAL at the database level
 * (wal/README.md "Reading the log and the end of WAL", R-I2, R-I4): a real
 * database built through the public API by a child that is then killed
 * (every commit synchronous, so all of them are durable), an LMDB oracle
 * of its commits, and a copy of it damaged in one of 15 ways at three
 * places - a record in the middle of a segment, a record spanning two
 * segments, a record at a segment's first position:
 *  - as the tail of the log (nothing valid after the damaged record):
 *    wd_open recovers to the start of the damaged record, the recovery
 *    report names the end reason, the table equals the oracle of the
 *    commits before that LSN, every table checks, and the database works
 *    on (more commits, a clean close, a reopen: still right);
 *  - with the rest of the log kept behind it: the damage is in durable
 *    records, and wd_open fails with WD_ECORRUPT naming the segment file
 *    and the offset, leaving the log as it is; the byte put back, the
 *    database recovers in full;
 *  - a simulated power loss (storage/sim.h) that drops an earlier unsynced
 *    WAL write and keeps a later one: a legitimate hole, which the open
 *    must accept, stopping there, equal to the oracle.
 * The pages of the table never leave the buffer pool before the kill (a
 * large pool, no checkpoint after the first), so any cut of the log after
 * that checkpoint is a state a crash could leave.
 *
 * Takes about 1 s in release and 4-7 s under AddressSanitizer with its
 * scratch in /dev/shm (the default here); on a disk (TMPDIR=/tmp), some
 * 3500 fsyncs make it 20-24 s in either.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/sim.h"
#include "storage/storage.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/oracletest.h"
#include "tests/lib/simtest.h"
#include "tests/lib/testutil.h"
#include "tests/lib/waltest.h"
#include "txn/db.h"
#include "wal/format.h"
#include "wal/reader.h"
#include "wal/record.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

#define SEG WAL_SEG_SIZE_MIN /* 64 KiB: the log spans many segments */
#define TABLE "t"
#define NKEYS 300u
#define MAX_OPS 3u
#define MAX_VAL 2000u
#define WARM 20u    /* transactions before the one checkpoint */
#define NTXN 200u   /* transactions of the base database */
#define PAD_AT 60u  /* the log is padded to a segment boundary before it */
#define MORE 5u     /* transactions after a recovery */
#define PL_TXN 40u  /* asynchronous ones before a power loss */
#define SECTOR 512u

/* In a forked child: expr must succeed, else the child exits with 3. */
#define CK(expr) dt_child_ok((expr), #expr)

/* ---- the workload: transaction n, the same in a child and in the oracle -- */

struct op {
	unsigned key;
	bool del;
	uint32_t vlen;
};

static unsigned txn_ops(uint64_t n, struct op *ops)
{
	uint64_t s = n * 0x9E3779B97F4A7C15ull + 5;
	unsigned nops = 1 + (unsigned)(tu_rand(&s) % MAX_OPS);
	for (unsigned i = 0; i < nops; i++) {
		ops[i].key = (unsigned)(tu_rand(&s) % NKEYS);
		ops[i].del = i > 0 && tu_rand(&s) % 7 == 0; /* each one logs a commit */
		ops[i].vlen = 16 + (uint32_t)(tu_rand(&s) % (MAX_VAL - 16));
	}
	return nops;
}

static size_t key_of(unsigned key, char *k)
{
	return (size_t)snprintf(k, 16, "k%05u", key);
}

/* Runs transaction n on db and commits it. */
static int run_txn(wd_db *db, uint64_t n)
{
	struct op ops[MAX_OPS];
	uint8_t v[MAX_VAL];
	char k[16];
	unsigned nops = txn_ops(n, ops);
	wd_table *t;
	wd_txn *x;
	int rc = wd_begin(db, &x);
	if (rc != 0)
		return rc;
	rc = wd_table_open(x, TABLE, WD_CREATE, &t);
	for (unsigned i = 0; rc == 0 && i < nops; i++) {
		size_t kl = key_of(ops[i].key, k);
		if (ops[i].del) {
			if ((rc = wd_del(x, t, k, kl)) == WD_NOTFOUND)
				rc = 0;
			continue;
		}
		ot_fill(v, ops[i].vlen, n * 1000 + ops[i].key);
		rc = wd_put(x, t, k, kl, v, ops[i].vlen);
	}
	if (rc != 0) {
		(void)wd_abort(x);
		return rc;
	}
	return wd_commit(x);
}

static void oracle_txn(ot_state *o, uint64_t n)
{
	struct op ops[MAX_OPS];
	uint8_t v[MAX_VAL];
	char k[16];
	unsigned nops = txn_ops(n, ops);
	for (unsigned i = 0; i < nops; i++) {
		size_t kl = key_of(ops[i].key, k);
		if (ops[i].del) {
			ot_state_del(o, k, kl);
			continue;
		}
		ot_fill(v, ops[i].vlen, n * 1000 + ops[i].key);
		ot_state_put(o, k, kl, v, ops[i].vlen);
	}
}

/* 64 KiB zero-filled segments; a pool that holds every page, so nothing
 * is written to the data files between checkpoints. */
static void tail_opts(wd_options *o, int sync)
{
	dt_opts(o, sync);
	o->wal_segment_size = SEG;
	o->wal_init_zero = 1;
	o->wal_buffers_bytes = 1u << 20;
	o->buffer_pool_bytes = 4096u * 4096;
}

/* ---- the base database ------------------------------------------------- */

struct rec {
	wd_lsn lsn, end; /* end: the end form, where the next record is read */
	uint32_t len;
	uint8_t nblocks, rmgr, type;
};

static struct {
	char *root, *dir;        /* root: scratch; dir: the crashed database */
	control_data cd;
	struct rec *recs;        /* every record from the checkpoint on */
	size_t nrec;
	wd_lsn commit[NTXN + 1]; /* commit[n]: transaction n's XACT_COMMIT
				  * (0 for those before the checkpoint) */
	wd_lsn end;              /* the end of the whole log */
	unsigned ncase;          /* scratch directories handed out */
} g;

/* Logs an XLOG_NOOP that ends exactly at a segment end: the next record
 * starts at the next segment's first position. */
static int pad_to_boundary(wal *w)
{
	uint32_t room = SEG - (uint32_t)(wal_insert_pos(w) % SEG);
	wal_rec_builder b = {0};
	uint8_t *zero, *rec;
	uint32_t len;
	wd_lsn lsn;
	int rc;
	if (room < WAL_REC_HEADER_SIZE)
		room += (uint32_t)wal_seg_usable(SEG); /* spans the next segment whole */
	zero = calloc(1, room);
	walrec_begin(&b, WAL_RMGR_XLOG, XLOG_NOOP, 0, 0, 0, 0);
	rc = walrec_set_main(&b, zero, room - WAL_REC_HEADER_SIZE);
	if (rc == 0)
		rc = walrec_assemble(&b, &rec, &len);
	if (rc == 0)
		rc = wal_insert(w, rec, len, &lsn);
	walrec_free(&b);
	free(zero);
	return rc;
}

/* The base database: WARM transactions, a checkpoint, the rest (a pad to
 * a segment boundary before PAD_AT), then a SIGKILL-like end: no close. */
static void base_child(void *arg)
{
	wd_options o;
	wd_db *db;
	(void)arg;
	tail_opts(&o, 1);
	CK(wd_open(g.dir, &o, &db));
	for (uint64_t n = 1; n <= NTXN; n++) {
		if (n == WARM + 1)
			CK(wd_checkpoint(db));
		if (n == PAD_AT)
			CK(pad_to_boundary(db_wal(db)));
		CK(run_txn(db, n));
	}
	_exit(0); /* every commit was synchronous: all durable */
}

/* Reads the base log from the checkpoint on into g.recs and g.commit. */
static void read_base(void)
{
	const wal_decoded *d;
	wal_reader *r;
	size_t cap = 1024;
	uint64_t n = WARM;
	wal_end_reason why;
	int rc;
	OK(control_read(g.dir, &g.cd));
	OK(wal_reader_open(g.dir, g.cd.db_id, SEG, g.cd.page_size, &r));
	OK(wal_reader_seek(r, g.cd.checkpoint_lsn));
	g.recs = malloc(cap * sizeof *g.recs);
	while ((rc = wal_reader_next(r, &d)) == 0) {
		if (g.nrec == cap)
			g.recs = realloc(g.recs, (cap *= 2) * sizeof *g.recs);
		g.recs[g.nrec++] = (struct rec){d->lsn, d->end_lsn, d->tot_len, d->nblocks,
						d->rmgr, d->type};
		if (d->rmgr == WAL_RMGR_XACT && d->type == XACT_COMMIT) {
			assert_true(n < NTXN);
			g.commit[++n] = d->lsn;
			/* sync commits: the one before was durable when this was built */
			assert_true(d->flags & WAL_REC_HORIZON);
			assert_true(n == WARM + 1 || d->horizon > g.commit[n - 1]);
		}
	}
	assert_int_equal(rc, WD_NOTFOUND);
	assert_int_equal(n, NTXN);
	wal_reader_end(r, &g.end, &why, NULL);
	assert_int_equal(why, WAL_END_ZERO);
	wal_reader_close(r);
}

static int group_setup(void **state)
{
	(void)state;
	/* Nothing here needs the disk to keep anything (the power loss is
	 * simulated), and the ~3500 fsyncs of some 90 recoveries take 20 s on
	 * a slow disk against 1 s in memory: scratch goes to /dev/shm unless
	 * TMPDIR says otherwise. */
	if (!getenv("TMPDIR") && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 0);
	g.root = tu_tmpdir("waltail");
	g.dir = tu_path(g.root, "base");
	assert_int_equal(tu_run_child(base_child, NULL), 0);
	read_base();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tu_rmrf(g.root);
	free(g.root);
	free(g.dir);
	free(g.recs);
	return 0;
}

/* A fresh copy of the base database (malloc'd path). */
static char *copy_base(void)
{
	char name[32], *dir;
	snprintf(name, sizeof name, "case%u", g.ncase++);
	dir = tu_path(g.root, name);
	tu_copy_tree(g.dir, dir);
	return dir;
}

/* ---- bytes of the log in a copy ---------------------------------------- */

static void seg_path(const char *dir, uint64_t segno, char *path)
{
	OK(wal_seg_path(path, 4096, dir, segno));
}

/* Reads (or writes) n record bytes at lsn, across segment headers. */
static void log_io(const char *dir, wd_lsn lsn, uint8_t *buf, size_t n, bool write)
{
	uint64_t usable = wal_seg_usable(SEG), pos = wal_usable_from_lsn(lsn, SEG);
	char path[4096];
	while (n > 0) {
		uint64_t off = WAL_SEG_HEADER_SIZE + pos % usable;
		size_t k = n < SEG - off ? n : (size_t)(SEG - off);
		int fd;
		seg_path(dir, pos / usable, path);
		assert_true((fd = open(path, write ? O_WRONLY : O_RDONLY)) >= 0);
		if (write)
			assert_int_equal(pwrite(fd, buf, k, (off_t)off), (ssize_t)k);
		else
			assert_int_equal(pread(fd, buf, k, (off_t)off), (ssize_t)k);
		close(fd);
		pos += k;
		buf += k;
		n -= k;
	}
}

/* The newest segment file present (the base log has a few dozen). */
static uint64_t newest_segment(const char *dir)
{
	char path[4096];
	uint64_t newest = 0;
	for (uint64_t s = 1; s < 256; s++) {
		seg_path(dir, s, path);
		if (access(path, F_OK) == 0)
			newest = s;
	}
	return newest;
}

/* Zeroes every record byte from lsn to the end of the newest segment: the
 * log as it was when the writer had written nothing past lsn. */
/* Zeroes the log's usable bytes [pos, stop). */
static void zero_usable(const char *dir, uint64_t pos, uint64_t stop)
{
	uint64_t usable = wal_seg_usable(SEG);
	uint8_t *z = calloc(1, SEG);
	while (pos < stop) {
		size_t k = (size_t)(usable - pos % usable);
		if (k > stop - pos)
			k = (size_t)(stop - pos);
		log_io(dir, wal_lsn_from_usable(pos, SEG), z, k, true);
		pos += k;
	}
	free(z);
}

static void zero_from(const char *dir, wd_lsn lsn)
{
	zero_usable(dir, wal_usable_from_lsn(lsn, SEG),
		    (newest_segment(dir) + 1) * wal_seg_usable(SEG));
}

/* Removes the segments after segno + 1: the log never got there (the
 * writer prepares only the next segment ahead), and a recovery has fewer
 * files to sync. */
static void drop_after(const char *dir, uint64_t segno)
{
	char path[4096];
	for (uint64_t s = newest_segment(dir); s > segno + 1; s--) {
		seg_path(dir, s, path);
		assert_int_equal(unlink(path), 0);
	}
}

/* The write of record r cut short after its first keep bytes: the rest
 * of the record holds what the segment held before, zeros. (A segment
 * file itself is never cut - it only exists whole; a shorter one is
 * refused, wal/README.md R-I5, test_badfiles.) */
static void cut_short(const char *dir, const struct rec *r, uint64_t keep)
{
	uint64_t at = wal_usable_from_lsn(r->lsn, SEG);
	zero_usable(dir, at + keep, at + r->len);
}

/* The LSN of usable byte k of the record at lsn. */
static wd_lsn lsn_plus(wd_lsn lsn, uint64_t k)
{
	return wal_lsn_from_usable(wal_usable_from_lsn(lsn, SEG) + k, SEG);
}

static uint8_t *read_rec(const char *dir, const struct rec *r)
{
	uint8_t *b = malloc(r->len);
	log_io(dir, r->lsn, b, r->len, false);
	return b;
}

/* Rewrites segment segno's header to name new_segno, with a valid CRC. */
static void rewrite_header(const char *dir, uint64_t segno, uint64_t new_segno)
{
	uint8_t buf[WAL_SEG_HEADER_SIZE];
	char path[4096];
	wal_seg_header h;
	int fd;
	seg_path(dir, segno, path);
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
	OK(wal_seg_header_decode(buf, path, &h));
	h.segno = new_segno;
	wal_seg_header_encode(&h, buf);
	assert_int_equal(pwrite(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
	close(fd);
}

static void flip_file_byte(const char *path, uint64_t off, uint8_t mask)
{
	uint8_t c;
	int fd;
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= mask;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

/* ---- the kinds of damage ------------------------------------------------- */

enum pos { MID, ACROSS, START, NPOS };
static const char *const pos_names[NPOS] = {"mid-segment", "across a boundary",
					    "at a segment start"};

enum kind {
	ZEROED,      /* the record and all after it zero */
	GARBAGE,     /* random bytes over the record */
	SHORT_HDR,   /* the write ends inside the record header */
	LEN_SMALL,   /* tot_len below the header size */
	LEN_BIG,     /* tot_len above the limit */
	CRC_FLIP,    /* one bit of the body flipped (its last byte) */
	SELF_LSN,    /* the header names another LSN */
	STALE_LAP,   /* a whole, valid record of an earlier lap of the file */
	FOREIGN,     /* the same record as another database would have it */
	TRUNC_MID,   /* the write ends in the middle of the record */
	SEG_HDR,     /* the header of the segment the record needs, damaged */
	SEG_MISSING, /* the segment the record needs, missing */
	SEG_SEGNO,   /* ... its header names another segment number */
	BAD_BLOCKS,  /* a block header's flags invalid, CRC made good */
	TORN,        /* sectors from the second on keep their old (zero) bytes */
	NKIND
};
static const char *const kind_names[NKIND] = {
	"zeroed tail", "garbage", "short header", "length too small", "length too big",
	"bad CRC", "wrong self-LSN", "record of an earlier lap", "record of another database",
	"truncated mid-record", "damaged segment header", "missing segment",
	"segment header of another number", "bad block references", "torn record"};

/* Segment faults (SEG_*) only matter where the log enters that segment;
 * in the middle of a segment the log ends (zero) before the record and
 * the fault is in the next segment, which must not matter. */
static bool seg_kind(enum kind k)
{
	return k == SEG_HDR || k == SEG_MISSING || k == SEG_SEGNO;
}

/* The index of the record damaged at position p: after a few commits past
 * the checkpoint, with block references, room for the tears and flips. */
static size_t pick(enum pos p)
{
	for (size_t i = 1; i < g.nrec; i++) {
		const struct rec *r = &g.recs[i];
		uint64_t first = SEG - r->lsn % SEG; /* bytes up to the boundary */
		if (r->lsn < g.commit[WARM + 5] || r->lsn < SEG || r->nblocks == 0)
			continue;
		if (p == START && r->lsn % SEG == WAL_SEG_HEADER_SIZE && r->len >= SECTOR)
			return i;
		if (p == MID && r->lsn % SEG > WAL_SEG_HEADER_SIZE && r->len >= 3 * SECTOR &&
		    r->len <= first)
			return i;
		if (p == ACROSS && first >= 2 * WAL_REC_HEADER_SIZE && r->len > first &&
		    r->len - first >= SECTOR + 64 &&
		    wal_segno(r->lsn, SEG) + 3 <= wal_segno(g.end, SEG))
			return i;
	}
	fail_msg("no record for position %s", pos_names[p]);
	return 0;
}

/* Damages record r (at position p) of the copy in dir as kind k; returns
 * the end reason the reader must give. */
static wal_end_reason damage(const char *dir, enum kind k, enum pos p, const struct rec *r)
{
	uint8_t *b = read_rec(dir, r), other[16];
	uint64_t segno = wal_segno(r->lsn, SEG), next = p == START ? segno : segno + 1;
	wal_end_reason want = WAL_END_NONE;
	char path[4096];
	uint64_t s = r->lsn;
	switch (k) {
	case ZEROED:
		zero_from(dir, r->lsn);
		want = WAL_END_ZERO;
		break;
	case GARBAGE: {
		uint32_t len;
		for (uint32_t i = 0; i < r->len; i++)
			b[i] = (uint8_t)tu_rand(&s);
		log_io(dir, r->lsn, b, r->len, true);
		want = walrec_check_len(b, &len) != WAL_END_NONE ? walrec_check_len(b, &len)
								 : WAL_END_BAD_LSN;
		break;
	}
	case SHORT_HDR:
		cut_short(dir, r, WAL_REC_HEADER_SIZE / 2);
		want = WAL_END_BAD_CRC;
		break;
	case LEN_SMALL:
	case LEN_BIG:
		put_le32(b + WRH_TOT_LEN, k == LEN_SMALL ? WAL_REC_HEADER_SIZE / 2
							 : WAL_MAX_RECORD_SIZE + 8);
		log_io(dir, r->lsn, b, WAL_REC_HEADER_SIZE, true);
		want = WAL_END_BAD_LENGTH;
		break;
	case CRC_FLIP:
		b[r->len - 1] ^= 0x10;
		log_io(dir, r->lsn, b, r->len, true);
		want = WAL_END_BAD_CRC;
		break;
	case SELF_LSN:
		put_le64(b + WRH_LSN, r->lsn + WAL_ALIGN);
		log_io(dir, r->lsn, b, WAL_REC_HEADER_SIZE, true);
		want = WAL_END_BAD_LSN;
		break;
	case STALE_LAP: /* valid where it was written, one lap (segment) ago */
		walrec_stamp_db(b, r->len, r->lsn - SEG, wal_crc_seed(g.cd.db_id), 0);
		log_io(dir, r->lsn, b, r->len, true);
		want = WAL_END_BAD_LSN;
		break;
	case FOREIGN: /* the very bytes, stamped by a database of another id */
		memcpy(other, g.cd.db_id, sizeof other);
		other[0] ^= 0x5A;
		walrec_stamp_db(b, r->len, r->lsn, wal_crc_seed(other),
				b[WRH_FLAGS] & WAL_REC_HORIZON ? r->lsn : 0);
		log_io(dir, r->lsn, b, r->len, true);
		want = WAL_END_BAD_CRC;
		break;
	case TRUNC_MID:
		cut_short(dir, r, r->len / 2 + WAL_REC_HEADER_SIZE);
		want = WAL_END_BAD_CRC;
		break;
	case SEG_HDR:
		seg_path(dir, next, path);
		flip_file_byte(path, WSH_PAGE_SIZE, 0x01);
		want = p == START ? WAL_END_BAD_SEG_HEADER : WAL_END_TORN;
		break;
	case SEG_MISSING:
		seg_path(dir, next, path);
		assert_int_equal(unlink(path), 0);
		want = p == START ? WAL_END_MISSING_SEGMENT : WAL_END_TORN;
		break;
	case SEG_SEGNO:
		rewrite_header(dir, next, next - 1);
		want = p == START ? WAL_END_WRONG_SEGNO : WAL_END_TORN;
		break;
	case BAD_BLOCKS:
		put_le16(b + WAL_REC_HEADER_SIZE + 8, 0x80); /* block 0's flags */
		walrec_stamp_db(b, r->len, r->lsn, wal_crc_seed(g.cd.db_id), 0);
		log_io(dir, r->lsn, b, r->len, true);
		want = WAL_END_BAD_BLOCKS;
		break;
	case TORN: { /* the first sector written, the rest still old */
		uint64_t first = SECTOR - r->lsn % SECTOR, zero_at = first;
		if (first < WAL_REC_HEADER_SIZE) /* the header stays whole */
			zero_at += SECTOR;
		if (p == ACROSS) /* the tear falls in the second segment */
			zero_at = (SEG - r->lsn % SEG) + (SECTOR - WAL_SEG_HEADER_SIZE);
		memset(b + zero_at, 0, r->len - zero_at);
		log_io(dir, r->lsn, b, r->len, true);
		want = WAL_END_BAD_CRC;
		break;
	}
	case NKIND:
		break;
	}
	free(b);
	return want;
}

/* ---- a case -------------------------------------------------------------- */

/* The oracle of the transactions whose commit record (commit[n]; 0 for
 * those before the checkpoint) starts before lsn (all of them for lsn 0),
 * in a scratch directory of its own. */
static ot_state *oracle_before(const wd_lsn *commit, wd_lsn lsn, char **odir)
{
	char name[32];
	ot_state *o;
	snprintf(name, sizeof name, "oracle%u", g.ncase++);
	*odir = tu_path(g.root, name);
	o = ot_state_open(*odir);
	for (uint64_t n = 1; n <= NTXN; n++)
		if (n <= WARM || lsn == 0 || commit[n] < lsn)
			oracle_txn(o, n);
	return o;
}

/* The table equals the oracle, and every table checks. */
static void expect_state(ot_state *o, wd_db *db, const char *what)
{
	char *diff = ot_state_diff(o, db, TABLE);
	if (diff)
		fail_msg("%s: %s", what, diff);
	dt_check_all(db);
}

/* After a recovery: MORE transactions, a clean close, a reopen. */
static void works_on(const char *dir, wd_db *db, ot_state *o, const char *what)
{
	wd_options opt;
	for (uint64_t n = NTXN + 1; n <= NTXN + MORE; n++) {
		OK(run_txn(db, n));
		oracle_txn(o, n);
	}
	expect_state(o, db, what);
	OK(wd_close(db));
	tail_opts(&opt, 0);
	OK(wd_open(dir, &opt, &db));
	expect_state(o, db, what);
	OK(wd_close(db));
}

/* Opens dir, which must recover to end for reason why (any reason with
 * WAL_END_NONE), equal to the oracle of the commits before end_rec, and
 * work on. */
static void expect_recovery(const char *dir, const wd_lsn *commit, wd_lsn end,
			    wal_end_reason why, wd_lsn end_rec, const char *what)
{
	const db_recovery_report *rr;
	wd_options opt;
	ot_state *o;
	char *odir;
	wd_db *db = NULL;
	tail_opts(&opt, 0); /* the close flushes */
	if (wd_open(dir, &opt, &db) != 0)
		fail_msg("%s: wd_open: %s", what, wd_last_error());
	OK(db_recovery_report_get(db, &rr));
	if (rr->wal_end != end || (why != WAL_END_NONE && rr->end_reason != (unsigned)why))
		fail_msg("%s: recovery ends at " LSN_FMT " (%s), expected " LSN_FMT " (%s)",
			 what, LSN_ARGS(rr->wal_end), rr->end_reason_name, LSN_ARGS(end),
			 wal_end_reason_name(why));
	o = oracle_before(commit, end_rec, &odir);
	expect_state(o, db, what);
	works_on(dir, db, o, what);
	ot_state_close(o);
	tu_rmrf(odir);
	free(odir);
}

/* Kind k at position p as the tail of the log. */
static void tail_case(enum kind k, enum pos p)
{
	size_t i = pick(p);
	const struct rec *r = &g.recs[i];
	char *dir = copy_base(), what[128];
	wal_end_reason why;
	snprintf(what, sizeof what, "%s %s", kind_names[k], pos_names[p]);
	drop_after(dir, wal_segno(lsn_plus(r->lsn, r->len), SEG));
	if (seg_kind(k) && p == MID) {
		/* the log ends (zero) where r would start; the fault is in the
		 * next segment, which the log never reaches */
		zero_from(dir, r->lsn);
		(void)damage(dir, k, ACROSS, r);
		why = WAL_END_ZERO;
	} else {
		zero_from(dir, r->end); /* r is the last record written */
		why = damage(dir, k, p, r);
	}
	expect_recovery(dir, g.commit, g.recs[i - 1].end, why, r->lsn, what);
	tu_rmrf(dir);
	free(dir);
}

/* Kind k at position p with the rest of the log behind it: refused. */
static void durable_case(enum kind k, enum pos p)
{
	size_t i = pick(p);
	const struct rec *r = &g.recs[i];
	char *dir = copy_base(), path[4096], at[64];
	wd_options opt;
	wd_db *db = NULL;
	wd_lsn d = r->lsn;
	/* two segments of valid records after it are proof enough */
	drop_after(dir, wal_segno(lsn_plus(r->lsn, r->len), SEG) + 1);
	if (k == ZEROED) { /* a zeroed block of durable records */
		uint8_t *z = calloc(1, r->len);
		log_io(dir, r->lsn, z, r->len, true);
		free(z);
	} else {
		(void)damage(dir, k, p, r);
	}
	tail_opts(&opt, 1);
	EXPECT(wd_open(dir, &opt, &db), WD_ECORRUPT);
	seg_path(dir, wal_segno(d, SEG), path);
	snprintf(at, sizeof at, " offset %llu:", (unsigned long long)(d % SEG));
	if (!strstr(wd_last_error(), path) || !strstr(wd_last_error(), at))
		fail_msg("%s %s: the error does not name %s%s: %s", kind_names[k], pos_names[p],
			 path, at, wd_last_error());
	tu_rmrf(dir);
	free(dir);
}

/* ---- tests ---------------------------------------------------------------- */

/* The positions are what they say. */
static void test_positions(void **state)
{
	const struct rec *m = &g.recs[pick(MID)], *a = &g.recs[pick(ACROSS)],
			 *s = &g.recs[pick(START)];
	(void)state;
	assert_true(wal_segno(m->lsn, SEG) == wal_segno(m->lsn + m->len - 1, SEG));
	assert_true(wal_segno(a->lsn, SEG) + 1 == wal_segno(lsn_plus(a->lsn, a->len - 1), SEG));
	assert_true(s->lsn % SEG == WAL_SEG_HEADER_SIZE);
	/* the record before it ends exactly at the boundary (the padding) */
	assert_true(g.recs[pick(START) - 1].lsn % SEG + g.recs[pick(START) - 1].len == SEG);
}

/* Every kind at every position as the tail of the log: recovered to the
 * start of the damaged record, for the right reason, equal to the oracle. */
static void test_tail_matrix(void **state)
{
	(void)state;
	for (int k = 0; k < NKIND; k++)
		for (int p = 0; p < NPOS; p++)
			tail_case((enum kind)k, (enum pos)p);
}

/* The same damage followed by the rest of the (durable) log: refused. */
static void test_durable_damage_refused(void **state)
{
	(void)state;
	for (int k = 0; k < NKIND; k++)
		for (int p = 0; p < NPOS; p++)
			if (!(seg_kind((enum kind)k) && p == MID))
				durable_case((enum kind)k, (enum pos)p);
}

/* A flipped byte behind durable records: refused, the log left as it is;
 * put back, the database recovers in full. */
static void test_flip_refused_then_restored(void **state)
{
	const struct rec *r = &g.recs[pick(MID)];
	char *dir = copy_base(), path[4096];
	uint8_t *before, *after;
	size_t n1 = 0, n2 = 0;
	wd_options opt;
	wd_db *db = NULL;
	(void)state;
	seg_path(dir, wal_segno(r->lsn, SEG), path);
	flip_file_byte(path, r->lsn % SEG + WAL_REC_HEADER_SIZE + 3, 0x04);
	before = simtest_slurp(path, SEG + 1, &n1);
	tail_opts(&opt, 1);
	EXPECT(wd_open(dir, &opt, &db), WD_ECORRUPT);
	after = simtest_slurp(path, SEG + 1, &n2);
	assert_true(n1 == n2 && memcmp(before, after, n1) == 0);
	free(before);
	free(after);
	flip_file_byte(path, r->lsn % SEG + WAL_REC_HEADER_SIZE + 3, 0x04);
	expect_recovery(dir, g.commit, g.end, WAL_END_ZERO, 0, "restored");
	tu_rmrf(dir);
	free(dir);
}

/* ---- a legitimate hole: power loss ----------------------------------------- */

struct pl {
	char *dir, *jdir;
	wd_lsn commit[NTXN + 1];
	struct rec *recs;
	size_t nrec;
};

/* Asynchronous commits, each transaction's records written to the OS
 * (wal_write_to, no fdatasync) on their own, and a WAL writer that does not
 * flush (it flushed last less than wal_writer_delay ago): the last
 * segment's writes stay unsynced until the kill, one per transaction. */
static void pl_child(void *arg)
{
	struct pl *pl = arg;
	wd_options o;
	wd_db *db;
	tail_opts(&o, 0);
	o.wal_writer_delay_ms = 10000;
	o.wal_writer_flush_after_bytes = 1u << 30;
	o.wal_buffers_bytes = 64u * 1024;
	CK(storage_sim_start(pl->jdir));
	CK(wd_open(pl->dir, &o, &db));
	for (uint64_t n = WARM + 1; n <= WARM + PL_TXN; n++) {
		CK(run_txn(db, n));
		CK(wal_write_to(db_wal(db), wal_insert_pos(db_wal(db))));
	}
	_exit(0);
}

/* Every record of the log (as the dead child left it in the OS) from the
 * clean close's checkpoint on, and the commits. */
static void pl_read(struct pl *pl)
{
	const wal_decoded *d;
	control_data cd;
	wal_reader *r;
	uint64_t n = WARM;
	size_t cap = 1024;
	OK(control_read(pl->dir, &cd));
	OK(wal_reader_open(pl->dir, cd.db_id, SEG, cd.page_size, &r));
	OK(wal_reader_seek(r, cd.checkpoint_lsn));
	for (n = WARM + 1; n <= NTXN; n++)
		pl->commit[n] = UINT64_MAX; /* never written: not committed */
	n = WARM;
	pl->recs = malloc(cap * sizeof *pl->recs);
	while (wal_reader_next(r, &d) == 0) {
		if (pl->nrec == cap)
			pl->recs = realloc(pl->recs, (cap *= 2) * sizeof *pl->recs);
		pl->recs[pl->nrec++] = (struct rec){d->lsn, d->end_lsn, d->tot_len, d->nblocks,
						    d->rmgr, d->type};
		if (d->rmgr == WAL_RMGR_XACT && d->type == XACT_COMMIT)
			pl->commit[++n] = d->lsn;
	}
	assert_int_equal(n, WARM + PL_TXN);
	wal_reader_close(r);
}

/* The LSN where pending write op lands, if it is a WAL write. */
static bool wal_write_lsn(const st_sim_op *op, wd_lsn *lsn)
{
	const char *base = strrchr(op->path, '/');
	if (op->kind != ST_SIM_WRITE || !strstr(op->path, "/" WAL_DIR "/") || !base ||
	    strlen(base + 1) != WAL_SEG_NAME_LEN)
		return false;
	*lsn = strtoull(base + 1, NULL, 16) * SEG + op->off;
	return true;
}

/*
 * A plan (dry run of seed) that drops a WAL write and keeps a later one
 * holding a whole record past the record the dropped write cuts: the
 * index of that cut record in *hole. false if the seed does not do it.
 */
static bool plan_has_hole(struct pl *pl, uint64_t seed, size_t *hole)
{
	st_sim_opts so = {.mode = ST_SIM_RANDOM, .seed = seed, .dry_run = true};
	st_sim_report rep;
	wd_lsn lost = UINT64_MAX, lsn;
	bool ok = false;
	OK(storage_sim_materialize(pl->jdir, &so, &rep));
	for (size_t i = 0; i < rep.nops; i++)
		if (wal_write_lsn(&rep.ops[i], &lsn) && rep.ops[i].decision == ST_SIM_DROPPED &&
		    lsn < lost)
			lost = lsn;
	for (size_t i = 0; i < pl->nrec && lost != UINT64_MAX; i++)
		if (pl->recs[i].lsn <= lost && lost < lsn_plus(pl->recs[i].lsn, pl->recs[i].len)) {
			*hole = i;
			break;
		}
	for (size_t i = 0; i < rep.nops && lost != UINT64_MAX && !ok; i++) {
		const st_sim_op *op = &rep.ops[i];
		if (!wal_write_lsn(op, &lsn) || op->decision != ST_SIM_KEPT || lsn <= lost)
			continue;
		for (size_t j = *hole + 1; j < pl->nrec && !ok; j++)
			ok = pl->recs[j].lsn >= lsn &&
			     pl->recs[j].lsn + pl->recs[j].len <= lsn + op->len;
	}
	storage_sim_report_free(&rep);
	return ok;
}

/* A power loss dropped an unsynced WAL write and kept a later one: valid
 * records follow a hole, but none was written after the hole was durable
 * (their horizons say so), so the open accepts the crash, stops at the
 * hole and equals the oracle of the commits before it. */
static void test_power_loss_hole(void **state)
{
	struct pl pl = {0};
	st_sim_opts so = {.mode = ST_SIM_RANDOM};
	wd_options opt;
	wd_db *db;
	size_t hole = 0;
	wd_lsn found = 0;
	const wal_decoded *d;
	control_data cd;
	wal_reader *r;
	(void)state;
	pl.dir = tu_path(g.root, "pl");
	pl.jdir = tu_path(g.root, "pljournal");
	assert_int_equal(mkdir(pl.jdir, 0755), 0);
	tail_opts(&opt, 1);
	OK(wd_open(pl.dir, &opt, &db));
	for (uint64_t n = 1; n <= WARM; n++)
		OK(run_txn(db, n));
	OK(wd_close(db));
	assert_int_equal(tu_run_child(pl_child, &pl), 0);
	pl_read(&pl);
	for (so.seed = 1; so.seed < 1000 && !plan_has_hole(&pl, so.seed, &hole); so.seed++)
		;
	assert_true(so.seed < 1000);
	OK(storage_sim_materialize(pl.jdir, &so, NULL));
	/* the premise: a valid record after the hole, with no horizon past it */
	OK(control_read(pl.dir, &cd));
	OK(wal_reader_open(pl.dir, cd.db_id, SEG, cd.page_size, &r));
	OK(wal_reader_find(r, pl.recs[hole].lsn + WAL_ALIGN, &found));
	assert_true(found > pl.recs[hole].lsn);
	OK(wal_reader_next(r, &d));
	assert_true(d->horizon <= pl.recs[hole].lsn);
	wal_reader_close(r);
	expect_recovery(pl.dir, pl.commit, hole ? pl.recs[hole - 1].end : cd.checkpoint_lsn,
			WAL_END_NONE, pl.recs[hole].lsn, "power-loss hole");
	free(pl.recs);
	tu_rmrf(pl.dir);
	tu_rmrf(pl.jdir);
	free(pl.dir);
	free(pl.jdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_positions),
		cmocka_unit_test(test_tail_matrix),
		cmocka_unit_test(test_durable_damage_refused),
		cmocka_unit_test(test_flip_refused_then_restored),
		cmocka_unit_test(test_power_loss_hole),
	};
	return cmocka_run_group_tests_name("waltail", tests, group_setup, group_teardown);
}
