/*
 * sim_crash.c - the materialiser half of simulated power loss: reads the
 * journal a tracked run left (the run may have been killed), decides from a
 * seed which unsynced changes a power loss kept, dropped or tore, and turns
 * the files into that crash state.
 *
 * Entry points: storage_sim_materialize, storage_sim_report_free,
 * storage_sim_kind_name, storage_sim_decision_name.
 *
 * It works on the files with plain system calls, never through storage_*:
 * it must not be journaled, fault-injected or counted as workload I/O.
 * The steps (storage/README.md, "Materialising a crash state"):
 *   1 load     read the journal, stop at the first torn or bad record
 *   2 cover    check every identity was declared; find the changes no
 *              SYNC / SYNCDIR covers: the pending ones
 *   3 decide   keep, drop or tear each pending change, by the seed (TORN:
 *              and whether a lost extending write's new length survives),
 *              or as the options name (TEAR_ONE: one write torn by a
 *              given mask, everything else kept)
 *   4 data     per file: undo pending changes newest first (durable
 *              content), then replay the survivors in journal order
 *   5 names    replay directory changes on a name -> inode map, then move
 *              the real files to match it
 *   6 reset    remove the journal, stash and holding files
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "storage/bytes.h"
#include "storage/sim.h"
#include "storage/storage_internal.h"

/* One journal record, decoded. Strings are malloc'd copies; old and data
 * point into the journal buffer. */
struct jrec {
	uint64_t seq;
	uint64_t io;       /* storage_io_count when it was appended (S12) */
	uint64_t time;     /* CLOCK_MONOTONIC ns when it was appended */
	unsigned kind;
	uint64_t inode;
	uint64_t off;      /* WRITE: offset; TRUNCATE: new length */
	uint64_t old_size; /* WRITE, TRUNCATE: length before the change */
	uint64_t len;      /* WRITE: bytes written */
	uint64_t old_len;  /* WRITE: old bytes saved; TRUNCATE: bytes removed */
	uint64_t covers;   /* SYNC, SYNCDIR */
	uint64_t replaced; /* RENAME: inode the target named before, or 0 */
	const uint8_t *old, *data;
	char *path, *to, *stash;
	/* step 2 and 3 */
	bool pending;
	bool lost; /* data change a failed sync dropped (S11) */
	st_sim_decision dec;
	uint32_t nsectors;
	uint8_t *mask;
	bool size_kept; /* WRITE not kept whole: its new length survives */
	bool no_effect;
};

/* A file identity: where it is now, where the crash state puts it. */
struct ino {
	uint64_t synced;    /* highest record number a SYNC of it covers */
	char *loc;          /* its current path (maybe in the stash), or NULL */
	const char *target; /* its name in the crash state, or NULL */
	bool dirty;         /* has pending data changes */
};

struct binding {
	const char *path;
	uint64_t inode;
};

struct sim {
	char *dir; /* canonical journal directory */
	uint8_t *buf;
	size_t buf_len;
	struct jrec *recs;
	size_t nrec;  /* the records in effect: all, or a prefix */
	size_t nall;  /* the records loaded */
	size_t rec_cap;
	bool tail_torn;
	struct ino *inos; /* indexed by inode id; [0] unused */
	uint64_t ninos;
	struct binding *ns; /* the crash state's names */
	size_t nns, ns_cap;
	uint32_t sector;
	uint64_t rng;
	uint64_t missing;
	const st_sim_opts *opts; /* mode, and TEAR_ONE's write and mask */
};

/* Cursor over a record payload; any overrun sets bad. */
struct cur {
	const uint8_t *p;
	size_t left;
	bool bad;
};

/* ---- step 1: load ---------------------------------------------------------- */

static const uint8_t *cur_bytes(struct cur *c, uint64_t n)
{
	const uint8_t *p = c->p;
	if (c->bad || n > c->left) {
		c->bad = true;
		return NULL;
	}
	c->p += n;
	c->left -= n;
	return p;
}

static uint64_t cur_u64(struct cur *c)
{
	const uint8_t *p = cur_bytes(c, 8);
	return p ? get_le64(p) : 0;
}

/* A u16-length string as a malloc'd C string ("" kept as ""). */
static char *cur_str(struct cur *c)
{
	const uint8_t *lp = cur_bytes(c, 2);
	uint16_t n = lp ? get_le16(lp) : 0;
	const uint8_t *p = cur_bytes(c, n);
	char *s;
	if (!p || memchr(p, '\0', n) || !(s = strndup((const char *)p, n))) {
		c->bad = true;
		return NULL;
	}
	return s;
}

/* Decodes a WRITE or TRUNCATE payload. */
static void parse_data(struct jrec *j, struct cur *c)
{
	j->inode = cur_u64(c);
	if (j->kind == SIM_REC_WRITE) {
		j->off = cur_u64(c);
		j->old_size = cur_u64(c);
		j->len = cur_u64(c);
		j->old_len = cur_u64(c);
		j->old = cur_bytes(c, j->old_len);
		j->data = cur_bytes(c, j->len);
		if (j->old_len > j->len)
			c->bad = true;
	} else {
		j->old_size = cur_u64(c);
		j->off = cur_u64(c);
		j->old_len = j->off < j->old_size ? j->old_size - j->off : 0;
		j->old = cur_bytes(c, j->old_len);
	}
}

/* Decodes the payload of j->kind; false if it does not fit exactly. */
static bool parse_payload(struct jrec *j, struct cur *c)
{
	switch (j->kind) {
	case SIM_REC_IDENT:
	case SIM_REC_CREATE:
		j->inode = cur_u64(c);
		j->path = cur_str(c);
		break;
	case SIM_REC_WRITE:
	case SIM_REC_TRUNCATE: parse_data(j, c); break;
	case SIM_REC_SYNC:
	case SIM_REC_SYNCFAIL:
		j->inode = cur_u64(c);
		j->covers = cur_u64(c);
		break;
	case SIM_REC_RENAME:
		j->inode = cur_u64(c);
		j->replaced = cur_u64(c);
		j->path = cur_str(c);
		j->to = cur_str(c);
		j->stash = cur_str(c);
		break;
	case SIM_REC_UNLINK:
		j->inode = cur_u64(c);
		j->path = cur_str(c);
		j->stash = cur_str(c);
		break;
	case SIM_REC_SYNCDIR:
		j->covers = cur_u64(c);
		j->path = cur_str(c);
		break;
	default: return false;
	}
	if (c->bad || c->left != 0)
		return false;
	return j->kind == SIM_REC_SYNCDIR || j->inode != 0;
}

static void jrec_free(struct jrec *j)
{
	free(j->path);
	free(j->to);
	free(j->stash);
	free(j->mask);
}

/*
 * Decodes the record at p (left bytes remain) into j. Returns its length,
 * or 0 if it is torn or bad: wrong length, CRC, sequence number or payload
 * (invariant S4: only a whole, checked record counts). *clash is set for a
 * whole record (length and CRC check out) with another sequence number:
 * not a torn tail but a second writer appending to the journal (S9).
 */
static size_t parse_record(const uint8_t *p, size_t left, uint64_t seq,
			   struct jrec *j, bool *clash)
{
	uint32_t len;
	struct cur c;

	*clash = false;
	if (left < SIM_HDR + SIM_CRC)
		return 0;
	len = get_le32(p);
	if (len < SIM_HDR + SIM_CRC || len > left ||
	    crc32(0L, p, len - SIM_CRC) != get_le32(p + len - SIM_CRC))
		return 0;
	if (get_le64(p + 8) != seq) {
		*clash = true;
		return 0;
	}
	*j = (struct jrec){.seq = seq, .kind = get_le16(p + 4),
			   .io = get_le64(p + 16), .time = get_le64(p + 24)};
	c = (struct cur){.p = p + SIM_HDR, .left = len - SIM_HDR - SIM_CRC};
	if (!parse_payload(j, &c)) {
		jrec_free(j);
		return 0;
	}
	return len;
}

/* Reads the whole journal file into s->buf. A missing journal reads as
 * empty; a read error, or fewer bytes than fstat promised, is WD_EIO naming
 * the file (taking the rest for a torn tail would drop real records). */
static int read_journal(struct sim *s)
{
	char *path = NULL;
	struct stat st;
	int rc = 0, fd = -1;
	size_t done = 0;

	if (asprintf(&path, "%s/%s", s->dir, SIM_JOURNAL) < 0)
		return err_set(WD_ENOMEM, "sim: out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		goto out;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = err_errno(errno, "sim: open %s", path);
		goto out;
	}
	s->buf = malloc((size_t)st.st_size + 1);
	if (!s->buf) {
		rc = err_set(WD_ENOMEM, "sim: %s: out of memory", path);
		goto out;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, s->buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_errno(errno, "sim: read %s at byte %zu", path,
				       done);
			goto out;
		}
		if (n == 0) {
			rc = err_set(WD_EIO, "sim: read %s: ended at byte %zu of "
					     "%lld (changed while read?)",
				     path, done, (long long)st.st_size);
			goto out;
		}
		done += (size_t)n;
	}
	s->buf_len = done;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

/* Step 1: the valid prefix of the journal as s->recs. */
static int load(struct sim *s)
{
	size_t pos = SIM_MAGIC_LEN, n;
	struct jrec j;
	bool clash;
	int rc = read_journal(s);

	if (rc != 0 || s->buf_len < SIM_MAGIC_LEN)
		return rc; /* absent, or killed while being created: empty */
	if (memcmp(s->buf, SIM_MAGIC, SIM_MAGIC_LEN) != 0)
		return err_set(WD_ECORRUPT, "sim: %s/%s is not a journal",
			      s->dir, SIM_JOURNAL);
	while ((n = parse_record(s->buf + pos, s->buf_len - pos, s->nrec + 1,
				 &j, &clash)) != 0) {
		if (s->nrec == s->rec_cap) {
			size_t cap = s->rec_cap ? s->rec_cap * 2 : 64;
			struct jrec *nr = realloc(s->recs, cap * sizeof *nr);
			if (!nr) {
				jrec_free(&j);
				return err_set(WD_ENOMEM, "sim: out of memory");
			}
			s->recs = nr;
			s->rec_cap = cap;
		}
		if (s->nrec > 0 && j.io < s->recs[s->nrec - 1].io) {
			jrec_free(&j);
			return err_set(WD_ECORRUPT, "sim: %s/%s: record %zu has "
						    "I/O count %llu, below the "
						    "one before it (S12)",
				       s->dir, SIM_JOURNAL, s->nrec + 1,
				       (unsigned long long)j.io);
		}
		s->recs[s->nrec++] = j;
		s->nall = s->nrec; /* what sim_free frees, also on an error */
		pos += n;
	}
	s->nall = s->nrec;
	if (clash)
		return err_set(WD_ECORRUPT, "sim: %s/%s: the record at byte %zu "
					    "is whole but numbered %llu, not "
					    "%zu: two processes appended to "
					    "this journal",
			       s->dir, SIM_JOURNAL, pos,
			       (unsigned long long)get_le64(s->buf + pos + 8),
			       s->nrec + 1);
	s->tail_torn = pos < s->buf_len;
	return 0;
}

/* ---- step 2: coverage ------------------------------------------------------ */

static bool is_data(unsigned kind)
{
	return kind == SIM_REC_WRITE || kind == SIM_REC_TRUNCATE;
}

static bool is_dirop(unsigned kind)
{
	return kind == SIM_REC_CREATE || kind == SIM_REC_RENAME ||
	       kind == SIM_REC_UNLINK;
}

/* true if some SYNCDIR of the directory holding path covers record seq. */
static bool dir_covered(const struct sim *s, const char *path, uint64_t seq)
{
	const char *slash = strrchr(path, '/');
	size_t dlen = slash == path ? 1 : (size_t)(slash - path);

	for (size_t i = 0; i < s->nrec; i++) {
		const struct jrec *d = &s->recs[i];
		if (d->kind == SIM_REC_SYNCDIR && d->covers >= seq &&
		    strlen(d->path) == dlen && memcmp(d->path, path, dlen) == 0)
			return true;
	}
	return false;
}

/* The journal's name of record kind k, for messages. */
static const char *rec_name(unsigned k)
{
	static const char *const n[] = {"?",     "IDENT",  "CREATE",
					"WRITE", "TRUNCATE", "SYNC",
					"RENAME", "UNLINK", "SYNCDIR", "SYNCFAIL"};
	return k <= SIM_REC_SYNCFAIL ? n[k] : "?";
}

/*
 * Step 2a: every identity a record names was declared by an earlier IDENT
 * or CREATE, each identity once (S8). A record naming any other number
 * comes from a writer bug (a handle from another run); applied, it would
 * undo or redo bytes of whatever file has that number here, so the
 * journal is refused. declared: s->ninos (nrec + 1) entries, all false.
 * Errors: WD_ECORRUPT naming the journal, the record and the identity.
 */
static int check_identities(struct sim *s, bool *declared)
{
	for (size_t i = 0; i < s->nrec; i++) {
		const struct jrec *j = &s->recs[i];
		bool decl = j->kind == SIM_REC_IDENT || j->kind == SIM_REC_CREATE;
		const char *why = NULL;
		uint64_t bad = 0;

		if (j->kind == SIM_REC_SYNCDIR)
			continue; /* names a directory, not an identity */
		if (j->inode >= s->ninos || j->replaced >= s->ninos) {
			bad = j->inode >= s->ninos ? j->inode : j->replaced;
			why = "beyond any the journal can declare";
		} else if (decl && declared[j->inode]) {
			bad = j->inode;
			why = "declared twice";
		} else if (!decl && !declared[j->inode]) {
			bad = j->inode;
		} else if (j->replaced && !declared[j->replaced]) {
			bad = j->replaced;
		}
		if (bad)
			return err_set(WD_ECORRUPT, "sim: %s/%s: record %llu "
						    "(%s) names file identity "
						    "%llu, %s",
				       s->dir, SIM_JOURNAL,
				       (unsigned long long)j->seq,
				       rec_name(j->kind),
				       (unsigned long long)bad,
				       why ? why
					   : "never declared by an IDENT or "
					     "CREATE before it");
		if (decl)
			declared[j->inode] = true;
	}
	return 0;
}

/*
 * S11: a SYNCFAIL drops the data changes of its file it covers that no
 * SYNC before it covered - the kernel marked them clean unwritten - so
 * they are lost to the power loss whatever a later SYNC covers.
 */
static int mark_lost(struct sim *s)
{
	uint64_t *synced = calloc(s->ninos, sizeof *synced);
	if (!synced)
		return err_set(WD_ENOMEM, "sim: out of memory");
	for (size_t i = 0; i < s->nall; i++) /* an earlier, longer prefix's */
		s->recs[i].lost = false;
	for (size_t i = 0; i < s->nrec; i++) {
		const struct jrec *f = &s->recs[i];
		if (f->kind == SIM_REC_SYNC && f->covers > synced[f->inode])
			synced[f->inode] = f->covers;
		if (f->kind != SIM_REC_SYNCFAIL)
			continue;
		for (size_t k = 0; k < i; k++) {
			struct jrec *j = &s->recs[k];
			if (is_data(j->kind) && j->inode == f->inode &&
			    j->seq > synced[f->inode] && j->seq <= f->covers)
				j->lost = true;
		}
	}
	free(synced);
	return 0;
}

/*
 * Step 2: checks the identities, then marks the pending records. A data
 * change is pending unless a SYNC of its file covers it; a directory
 * change unless a SYNCDIR of every directory it touches (both parents, for
 * a rename) covers it.
 */
static int cover(struct sim *s)
{
	bool *declared;
	int rc;

	s->ninos = s->nall + 1;
	s->inos = calloc(s->ninos, sizeof *s->inos);
	declared = calloc(s->ninos, sizeof *declared);
	if (!s->inos || !declared) {
		free(declared);
		return err_set(WD_ENOMEM, "sim: out of memory");
	}
	rc = check_identities(s, declared);
	free(declared);
	if (rc == 0)
		rc = mark_lost(s);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < s->nrec; i++) {
		struct jrec *j = &s->recs[i];
		if (j->kind == SIM_REC_SYNC && j->covers > s->inos[j->inode].synced)
			s->inos[j->inode].synced = j->covers;
	}
	for (size_t i = 0; i < s->nrec; i++) {
		struct jrec *j = &s->recs[i];
		if (is_data(j->kind))
			j->pending = j->lost || j->seq > s->inos[j->inode].synced;
		else if (is_dirop(j->kind))
			j->pending = !dir_covered(s, j->path, j->seq) ||
				     (j->to && !dir_covered(s, j->to, j->seq));
		if (j->pending && is_data(j->kind))
			s->inos[j->inode].dirty = true;
	}
	return 0;
}

/* ---- step 3: decide -------------------------------------------------------- */

/* splitmix64, as in the tests: small, deterministic, good enough. */
static uint64_t next_rand(struct sim *s)
{
	uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Gives a write its sector mask: all set if kept, none if dropped, one
 * random bit per sector if torn (TEAR_ONE: the options' mask, its first 64
 * sectors). */
static int make_mask(struct sim *s, struct jrec *j)
{
	uint64_t first = j->off / s->sector;
	uint64_t n = j->len ? (j->off + j->len - 1) / s->sector - first + 1 : 0;
	size_t bytes = (size_t)((n + 7) / 8);
	bool chosen = s->opts->mode == ST_SIM_TEAR_ONE;
	uint64_t bits = 0;

	j->nsectors = (uint32_t)n;
	j->mask = calloc(bytes ? bytes : 1, 1);
	if (!j->mask)
		return err_set(WD_ENOMEM, "sim: out of memory");
	for (uint64_t i = 0; i < n; i++) {
		if (i % 64 == 0 && j->dec == ST_SIM_TORN_OP)
			bits = chosen ? (i == 0 ? s->opts->tear_mask : 0) : next_rand(s);
		if (j->dec == ST_SIM_KEPT ||
		    (j->dec == ST_SIM_TORN_OP && ((bits >> (i % 64)) & 1)))
			j->mask[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	return 0;
}

/* The fate of one pending change under mode. */
static st_sim_decision decide_one(struct sim *s, st_sim_mode mode,
				  const struct jrec *j)
{
	unsigned kind = j->kind;
	uint64_t r;

	if (j->lost)
		return ST_SIM_DROPPED; /* S11 */
	if (mode == ST_SIM_TEAR_ONE)
		return kind == SIM_REC_WRITE && j->seq == s->opts->tear_seq
			       ? ST_SIM_TORN_OP : ST_SIM_KEPT;
	if (mode == ST_SIM_KEEP_ALL)
		return ST_SIM_KEPT;
	if (mode == ST_SIM_DROP_ALL)
		return ST_SIM_DROPPED;
	r = next_rand(s);
	if (mode == ST_SIM_TORN && kind == SIM_REC_WRITE)
		return r % 3 == 0 ? ST_SIM_KEPT
				  : r % 3 == 1 ? ST_SIM_DROPPED : ST_SIM_TORN_OP;
	return (r & 1) ? ST_SIM_KEPT : ST_SIM_DROPPED;
}

/*
 * Under TORN, whether a write that extended the file and was not kept
 * whole still leaves the file at its new length (1/2): the filesystem wrote
 * the size update (a journaled metadata change, e.g. ext4 or XFS) but not
 * all the data, so the tail reads as zeros. Under TEAR_ONE the torn write's
 * new length always survives, as it would had the write been kept.
 */
static bool decide_size(struct sim *s, st_sim_mode mode, const struct jrec *j)
{
	if ((mode != ST_SIM_TORN && mode != ST_SIM_TEAR_ONE) ||
	    j->kind != SIM_REC_WRITE || j->dec == ST_SIM_KEPT ||
	    j->off + j->len <= j->old_size)
		return false;
	return mode == ST_SIM_TEAR_ONE || (next_rand(s) & 1);
}

/* Step 3: decides every pending change in journal order (so the same seed
 * over the same journal gives the same plan: invariant S6). Under TEAR_ONE
 * the write to tear must be one of them (else WD_EINVAL: nothing is
 * touched, the files stay as the run left them). */
static int decide(struct sim *s, st_sim_mode mode)
{
	bool torn = false;
	int rc = 0;
	for (size_t i = 0; i < s->nrec && rc == 0; i++) {
		struct jrec *j = &s->recs[i];
		if (!j->pending)
			continue;
		j->dec = decide_one(s, mode, j);
		j->size_kept = decide_size(s, mode, j);
		torn |= j->dec == ST_SIM_TORN_OP;
		if (j->kind == SIM_REC_WRITE)
			rc = make_mask(s, j);
	}
	if (rc == 0 && mode == ST_SIM_TEAR_ONE && !torn)
		rc = err_set(WD_EINVAL, "sim: journal record %llu is no pending "
					"write: nothing to tear",
			     (unsigned long long)s->opts->tear_seq);
	return rc;
}

/* ---- step 4: data ---------------------------------------------------------- */

/* A file's bytes in memory. Bytes at and past len are undefined until
 * content_resize zeroes them. */
struct content {
	uint8_t *b;
	uint64_t len, cap;
};

static int content_reserve(struct content *c, uint64_t n)
{
	uint8_t *nb;
	if (n <= c->cap)
		return 0;
	nb = realloc(c->b, (size_t)n);
	if (!nb)
		return err_set(WD_ENOMEM, "sim: out of memory");
	c->b = nb;
	c->cap = n;
	return 0;
}

/* Sets the length; new bytes read as zero (a hole). */
static int content_resize(struct content *c, uint64_t n)
{
	int rc = content_reserve(c, n);
	if (rc == 0 && n > c->len)
		memset(c->b + c->len, 0, (size_t)(n - c->len));
	if (rc == 0)
		c->len = n;
	return rc;
}

/*
 * Undoes one change: the content goes back to what it was just before it.
 * The saved old bytes sit at the write's offset, or for a shrinking
 * truncate at the new length (j->off) - the same field either way. If the
 * change never reached the file (a kill between record and system call)
 * this rewrites the bytes already there: undo is idempotent.
 */
static int undo(struct content *c, const struct jrec *j)
{
	uint64_t need = j->off + j->old_len;
	int rc = content_resize(c, need > c->len ? need : c->len);

	if (rc == 0 && j->old_size > c->len)
		rc = content_resize(c, j->old_size);
	if (rc == 0) {
		memcpy(c->b + j->off, j->old, (size_t)j->old_len);
		c->len = j->old_size;
	}
	return rc;
}

/*
 * Replays one surviving write: each sector whose mask bit is set gets its
 * new bytes; the length grows to the end of the last surviving sector
 * (never past the write's end), or to the write's end if its size change
 * survived (size_kept; the bytes no surviving sector wrote read as zero).
 * Sectors are aligned to the file.
 */
static int redo_write(struct content *c, const struct jrec *j, uint32_t sector)
{
	uint64_t first = j->off / sector;
	int rc = 0;

	if (j->size_kept && j->off + j->len > c->len)
		rc = content_resize(c, j->off + j->len);
	for (uint32_t i = 0; i < j->nsectors && rc == 0; i++) {
		uint64_t lo = (first + i) * sector, hi = lo + sector;
		if (!((j->mask[i / 8] >> (i % 8)) & 1))
			continue;
		lo = lo < j->off ? j->off : lo;
		hi = hi > j->off + j->len ? j->off + j->len : hi;
		if (hi > c->len)
			rc = content_resize(c, hi);
		if (rc == 0)
			memcpy(c->b + lo, j->data + (lo - j->off),
			       (size_t)(hi - lo));
	}
	return rc;
}

/* Reads path whole into c. */
static int content_load(struct content *c, const char *path)
{
	struct stat st;
	int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t done = 0;

	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = err_errno(errno, "sim: open %s", path);
		goto out;
	}
	rc = content_reserve(c, (uint64_t)st.st_size + 1);
	while (rc == 0 && done < (uint64_t)st.st_size) {
		ssize_t n = read(fd, c->b + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = err_errno(n < 0 ? errno : EIO, "sim: read %s", path);
			break;
		}
		done += (uint64_t)n;
	}
	c->len = done;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Writes c over path (same inode, new length). */
static int content_store(const struct content *c, const char *path)
{
	int rc = 0, fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	uint64_t done = 0;

	if (fd < 0)
		return err_errno(errno, "sim: open %s", path);
	while (done < c->len) {
		ssize_t n = write(fd, c->b + done, (size_t)(c->len - done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = err_errno(n < 0 ? errno : ENOSPC, "sim: write %s",
					  path);
			break;
		}
		done += (uint64_t)n;
	}
	close(fd);
	return rc;
}

/* Replays one durable change whole (after a lost one, S11). */
static int redo_durable(struct content *c, const struct jrec *j)
{
	int rc;
	if (j->kind != SIM_REC_WRITE)
		return content_resize(c, j->off);
	rc = j->off + j->len > c->len ? content_resize(c, j->off + j->len) : 0;
	if (rc == 0)
		memcpy(c->b + j->off, j->data, (size_t)j->len);
	return rc;
}

/* Writes c into a new file path (created, or replaced). */
static int content_create(const struct content *c, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno(errno, "sim: create %s", path);
	close(fd);
	return content_store(c, path);
}

/*
 * Step 4 for one file: from its current bytes, undo its data changes
 * newest first down to its oldest pending one (giving the durable content
 * before it, invariant S3), then replay from there oldest first the
 * durable ones whole and the surviving pending ones as decided, and write
 * the result back. The pending changes of a file are the newest ones,
 * except after a failed sync (S11): a lost change may lie below durable
 * ones, which is why those are undone and replayed too.
 */
static int rebuild_file(struct sim *s, uint64_t inode, const char *path,
			const char *out)
{
	struct content c = {0};
	int rc = content_load(&c, path);
	size_t from = s->nrec;

	for (size_t i = 0; i < s->nrec && from == s->nrec; i++)
		if (s->recs[i].pending && s->recs[i].inode == inode &&
		    is_data(s->recs[i].kind))
			from = i;
	/* records past the prefix in effect (nall == nrec except for
	 * storage_sim_materialize_prefix) were never issued: undone too */
	for (size_t i = s->nall; i-- > from && rc == 0;) {
		const struct jrec *j = &s->recs[i];
		if (j->inode == inode && is_data(j->kind))
			rc = undo(&c, j);
	}
	for (size_t i = from; i < s->nrec && rc == 0; i++) {
		const struct jrec *j = &s->recs[i];
		if (j->inode != inode || !is_data(j->kind))
			continue;
		if (!j->pending)
			rc = redo_durable(&c, j);
		else if (j->dec != ST_SIM_DROPPED || j->size_kept)
			rc = j->kind == SIM_REC_WRITE ? redo_write(&c, j, s->sector)
						      : content_resize(&c, j->off);
	}
	if (rc == 0)
		rc = out ? content_create(&c, out) : content_store(&c, path);
	free(c.b);
	return rc;
}


/*
 * Step 4 for a file the prefix created, forwards: from no bytes, its
 * durable changes in order (a file's pending changes are the last of its
 * changes, S3), then the surviving pending ones, into out. The same bytes
 * rebuild_file gets backwards, at the cost of the prefix's records of the
 * file instead of the rest of the journal's.
 */
static int forward_file(struct sim *s, uint64_t inode, const char *out)
{
	struct content c = {0};
	int rc = 0;

	for (size_t i = 0; i < s->nrec && rc == 0; i++) {
		const struct jrec *j = &s->recs[i];
		if (j->inode != inode || !is_data(j->kind) ||
		    (j->pending && j->dec == ST_SIM_DROPPED && !j->size_kept))
			continue;
		if (j->kind == SIM_REC_TRUNCATE)
			rc = content_resize(&c, j->off);
		else
			rc = j->pending ? redo_write(&c, j, s->sector) : redo_durable(&c, j);
	}
	if (rc == 0)
		rc = content_create(&c, out);
	free(c.b);
	return rc;
}

/* ---- step 5: names --------------------------------------------------------- */

static struct binding *ns_find(struct sim *s, const char *path)
{
	for (size_t i = 0; i < s->nns; i++)
		if (strcmp(s->ns[i].path, path) == 0)
			return &s->ns[i];
	return NULL;
}

static void ns_remove(struct sim *s, const char *path)
{
	struct binding *b = ns_find(s, path);
	if (b)
		*b = s->ns[--s->nns];
}

static int ns_bind(struct sim *s, const char *path, uint64_t inode)
{
	struct binding *b = ns_find(s, path);
	if (!b && s->nns == s->ns_cap) {
		size_t cap = s->ns_cap ? s->ns_cap * 2 : 32;
		struct binding *nb = realloc(s->ns, cap * sizeof *nb);
		if (!nb)
			return err_set(WD_ENOMEM, "sim: out of memory");
		s->ns = nb;
		s->ns_cap = cap;
	}
	if (!b)
		b = &s->ns[s->nns++];
	*b = (struct binding){.path = path, .inode = inode};
	return 0;
}

/* Sets the current location of inode to dir/name (name relative to the
 * journal directory if in_stash). */
static int set_loc(struct sim *s, uint64_t inode, const char *name,
		   bool in_stash)
{
	char *p = NULL;
	if (in_stash ? asprintf(&p, "%s/%s", s->dir, name) < 0
		     : !(p = strdup(name)))
		return err_set(WD_ENOMEM, "sim: out of memory");
	/* a name holds one file: an identity still placed here lost it
	 * outside storage/ (deleted by other code), so it is nowhere now */
	for (uint64_t i = 1; i < s->ninos && !in_stash; i++) {
		if (i != inode && s->inos[i].loc && !strcmp(s->inos[i].loc, p)) {
			free(s->inos[i].loc);
			s->inos[i].loc = NULL;
		}
	}
	free(s->inos[inode].loc);
	s->inos[inode].loc = p;
	return 0;
}

/* Where each file is now: every journaled change, as it happened. */
static int locate(struct sim *s)
{
	int rc = 0;
	for (size_t i = 0; i < s->nall && rc == 0; i++) {
		const struct jrec *j = &s->recs[i];
		if (j->kind == SIM_REC_IDENT || j->kind == SIM_REC_CREATE)
			rc = set_loc(s, j->inode, j->path, false);
		else if (j->kind == SIM_REC_UNLINK)
			rc = set_loc(s, j->inode, j->stash, true);
		else if (j->kind == SIM_REC_RENAME) {
			rc = set_loc(s, j->inode, j->to, false);
			if (rc == 0 && j->replaced)
				rc = set_loc(s, j->replaced, j->stash, true);
		}
	}
	return rc;
}

/*
 * Applies one surviving directory change to the crash state's names. A
 * rename or unlink whose source no longer names its file (because an
 * earlier change was dropped) does nothing (no_effect).
 */
static int ns_apply(struct sim *s, struct jrec *j)
{
	struct binding *b = ns_find(s, j->path);

	switch (j->kind) {
	case SIM_REC_IDENT:
	case SIM_REC_CREATE: return ns_bind(s, j->path, j->inode);
	case SIM_REC_UNLINK:
		if (b && b->inode == j->inode)
			ns_remove(s, j->path);
		else
			j->no_effect = true;
		return 0;
	case SIM_REC_RENAME:
		if (!b || b->inode != j->inode) {
			j->no_effect = true;
			return 0;
		}
		ns_remove(s, j->path);
		return ns_bind(s, j->to, j->inode);
	}
	return 0;
}

/* The crash state's names: durable and kept directory changes, in order;
 * then each file's target name. */
static int crash_names(struct sim *s)
{
	int rc = 0;
	for (size_t i = 0; i < s->nrec && rc == 0; i++) {
		struct jrec *j = &s->recs[i];
		if (j->kind == SIM_REC_IDENT ||
		    (is_dirop(j->kind) && (!j->pending || j->dec == ST_SIM_KEPT)))
			rc = ns_apply(s, j);
	}
	for (size_t i = 0; i < s->nns; i++)
		s->inos[s->ns[i].inode].target = s->ns[i].path;
	return rc;
}

/* The holding name of inode during a rearrangement. */
static char *hold_path(const struct sim *s, uint64_t inode)
{
	char *p = NULL;
	if (asprintf(&p, "%s/hold-%llu", s->dir, (unsigned long long)inode) < 0)
		return NULL;
	return p;
}

/* Moves from to to with rename(2); ENOENT counts as a missing file. */
static int move(struct sim *s, const char *from, const char *to)
{
	if (rename(from, to) == 0)
		return 0;
	if (errno == ENOENT) {
		s->missing++;
		return 0;
	}
	return err_errno(errno, "sim: rename %s to %s", from, to);
}

/*
 * Step 5: moves every file whose current place differs from its crash-state
 * name into a holding name first, then each to its name, so that swaps and
 * chains of renames cannot collide. Files without a name stay held (or in
 * the stash) and go with the reset.
 */
static int rearrange(struct sim *s)
{
	int rc = 0;
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		for (uint64_t i = 1; i < s->ninos && rc == 0; i++) {
			struct ino *n = &s->inos[i];
			char *hold;
			if (!n->loc || (n->target && !strcmp(n->loc, n->target)))
				continue;
			if (!(hold = hold_path(s, i)))
				return err_set(WD_ENOMEM, "sim: out of memory");
			if (pass == 0)
				rc = move(s, n->loc, hold);
			else if (n->target)
				rc = move(s, hold, n->target);
			free(hold);
		}
	}
	return rc;
}

/* Step 4 over every file that has pending data and a crash-state name. */
static int rebuild_data(struct sim *s)
{
	int rc = 0;
	for (uint64_t i = 1; i < s->ninos && rc == 0; i++) {
		struct ino *n = &s->inos[i];
		if (!n->dirty || !n->target)
			continue;
		if (!n->loc || access(n->loc, F_OK) != 0)
			s->missing++;
		else
			rc = rebuild_file(s, i, n->loc, NULL);
	}
	return rc;
}

/* ---- step 6: reset, and the report ----------------------------------------- */

/* Removes the journal and every stash and holding file. */
static int reset(struct sim *s)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return err_errno(errno, "sim: open directory %s", s->dir);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, SIM_JOURNAL) != 0 &&
		    strncmp(e->d_name, "stash-", 6) != 0 &&
		    strncmp(e->d_name, "hold-", 5) != 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0 && rc == 0)
			rc = err_errno(errno, "sim: remove %s/%s", s->dir,
					  e->d_name);
	}
	closedir(d);
	return rc;
}

static void count(st_sim_report *r, const struct jrec *j)
{
	bool data = is_data(j->kind);
	if (data) {
		r->data_pending++;
		r->data_kept += j->dec == ST_SIM_KEPT;
		r->data_dropped += j->dec == ST_SIM_DROPPED;
		r->data_torn += j->dec == ST_SIM_TORN_OP;
	} else {
		r->dir_pending++;
		r->dir_kept += j->dec == ST_SIM_KEPT;
		r->dir_dropped += j->dec == ST_SIM_DROPPED;
	}
}

/* The path a data change's file had when the change was issued. */
static const char *path_at(const struct sim *s, size_t upto, uint64_t inode)
{
	const char *p = NULL;
	for (size_t i = 0; i < upto; i++) {
		const struct jrec *j = &s->recs[i];
		if (j->inode != inode)
			continue;
		if (j->kind == SIM_REC_IDENT || j->kind == SIM_REC_CREATE)
			p = j->path;
		else if (j->kind == SIM_REC_RENAME)
			p = j->to;
	}
	return p ? p : "";
}

/* Moves pending record i into op (taking its mask). */
static int fill_op(struct sim *s, size_t i, st_sim_op *op)
{
	struct jrec *j = &s->recs[i];
	static const st_sim_kind kinds[] = {
		[SIM_REC_CREATE] = ST_SIM_CREATE, [SIM_REC_WRITE] = ST_SIM_WRITE,
		[SIM_REC_TRUNCATE] = ST_SIM_TRUNCATE,
		[SIM_REC_RENAME] = ST_SIM_RENAME, [SIM_REC_UNLINK] = ST_SIM_UNLINK,
	};
	*op = (st_sim_op){.seq = j->seq, .kind = kinds[j->kind],
			  .decision = j->dec, .inode = j->inode,
			  .off = j->off, .nsectors = j->nsectors,
			  .mask = j->mask, .size_kept = j->size_kept,
			  .no_effect = j->no_effect};
	j->mask = NULL;
	op->len = j->kind == SIM_REC_WRITE ? j->len : j->old_size;
	op->path = strdup(is_data(j->kind) ? path_at(s, i, j->inode) : j->path);
	op->to = j->to ? strdup(j->to) : NULL;
	if (!op->path || (j->to && !op->to))
		return err_set(WD_ENOMEM, "sim: out of memory");
	return 0;
}

/* Fills r with the counts and the op list. */
static int report(struct sim *s, st_sim_report *r)
{
	size_t n = 0;
	int rc = 0;

	*r = (st_sim_report){.records = s->nrec, .tail_torn = s->tail_torn,
			     .missing = s->missing};
	for (size_t i = 0; i < s->nrec; i++)
		n += s->recs[i].pending;
	r->ops = calloc(n ? n : 1, sizeof *r->ops);
	if (!r->ops)
		return err_set(WD_ENOMEM, "sim: out of memory");
	for (size_t i = 0; i < s->nrec && rc == 0; i++) {
		if (!s->recs[i].pending)
			continue;
		count(r, &s->recs[i]);
		rc = fill_op(s, i, &r->ops[r->nops++]);
	}
	return rc;
}

/* ---- entry points ---------------------------------------------------------- */

static int check_opts(const st_sim_opts *o, uint32_t *sector)
{
	*sector = o->sector_bytes ? o->sector_bytes : 512;
	if ((unsigned)o->mode > ST_SIM_TEAR_ONE)
		return err_set(WD_EINVAL, "sim: unknown mode %d", (int)o->mode);
	if (*sector < 512 || *sector > 65536 || (*sector & (*sector - 1)))
		return err_set(WD_EINVAL, "sim: sector size %u is not a power "
					 "of two from 512 to 65536", *sector);
	if (sim_on())
		return err_set(WD_ESTATE, "sim: stop tracking before "
					 "materialising a crash state");
	return 0;
}

static void sim_free(struct sim *s)
{
	for (size_t i = 0; i < s->nall; i++)
		jrec_free(&s->recs[i]);
	for (uint64_t i = 0; i < s->ninos; i++)
		free(s->inos[i].loc);
	free(s->inos);
	free(s->recs);
	free(s->ns);
	free(s->buf);
	free(s->dir);
}

/* Steps 4-6: the changes to the files. */
static int apply(struct sim *s)
{
	int rc = locate(s);
	if (rc == 0)
		rc = crash_names(s);
	if (rc == 0)
		rc = rebuild_data(s);
	if (rc == 0)
		rc = rearrange(s);
	if (rc == 0)
		rc = reset(s);
	return rc;
}

int storage_sim_materialize(const char *journal_dir, const st_sim_opts *opts,
			    st_sim_report *r)
{
	struct sim s = {0};
	st_sim_report local = {0}; /* freed on every error path */
	int rc = check_opts(opts, &s.sector);

	if (r)
		*r = (st_sim_report){0};
	if (rc != 0)
		return rc;
	s.rng = opts->seed;
	s.opts = opts;
	s.dir = realpath(journal_dir, NULL);
	if (!s.dir)
		return err_errno(errno, "sim: journal directory %s",
				    journal_dir);
	rc = load(&s);
	if (rc == 0)
		rc = cover(&s);
	if (rc == 0)
		rc = decide(&s, opts->mode);
	if (rc == 0 && !opts->dry_run)
		rc = apply(&s);
	else if (rc == 0)
		rc = crash_names(&s); /* for no_effect in the report */
	if (rc == 0)
		rc = report(&s, r ? r : &local);
	if (!r || rc != 0)
		storage_sim_report_free(r ? r : &local);
	sim_free(&s);
	return rc;
}

/* ---- prefixes of one journal ------------------------------------------------ */

struct st_sim_journal {
	struct sim s;
};

int storage_sim_journal_open(const char *journal_dir, st_sim_journal **out)
{
	st_sim_journal *h = calloc(1, sizeof *h);
	int rc;

	*out = NULL;
	if (!h)
		return err_set(WD_ENOMEM, "sim: out of memory");
	h->s.dir = realpath(journal_dir, NULL);
	if (!h->s.dir) {
		rc = err_errno(errno, "sim: journal directory %s", journal_dir);
		free(h);
		return rc;
	}
	rc = load(&h->s);
	if (rc != 0) {
		storage_sim_journal_close(h);
		return rc;
	}
	*out = h;
	return 0;
}

void storage_sim_journal_close(st_sim_journal *h)
{
	if (!h)
		return;
	sim_free(&h->s);
	free(h);
}

uint64_t storage_sim_journal_records(const st_sim_journal *h)
{
	return h->s.nall;
}

uint64_t storage_sim_journal_last_io(const st_sim_journal *h)
{
	return h->s.nall ? h->s.recs[h->s.nall - 1].io : 0;
}

uint64_t storage_sim_journal_time(const st_sim_journal *h, uint64_t io_limit)
{
	uint64_t t = 0;
	for (size_t i = 0; i < h->s.nall && h->s.recs[i].io < io_limit; i++)
		t = h->s.recs[i].time;
	return t;
}

/* Forgets what an earlier materialisation of h decided. */
static void reset_state(struct sim *s)
{
	for (size_t i = 0; i < s->nall; i++) {
		struct jrec *j = &s->recs[i];
		free(j->mask);
		j->mask = NULL;
		j->nsectors = 0;
		j->pending = j->size_kept = j->no_effect = false;
		j->dec = ST_SIM_KEPT;
	}
	for (uint64_t i = 0; i < s->ninos; i++)
		free(s->inos[i].loc);
	free(s->inos);
	s->inos = NULL;
	s->ninos = 0;
	free(s->ns);
	s->ns = NULL;
	s->nns = s->ns_cap = 0;
	s->missing = 0;
}

/* mkdir -p of the directories above path below out (out exists). */
static int make_parents(const char *path, size_t outlen)
{
	char *p = strdup(path);
	int rc = 0;

	if (!p)
		return err_set(WD_ENOMEM, "sim: out of memory");
	for (char *q = p + outlen + 1; rc == 0 && (q = strchr(q, '/')) != NULL; q++) {
		*q = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			rc = err_errno(errno, "sim: mkdir %s", p);
		*q = '/';
	}
	free(p);
	return rc;
}

/* out + the part of path below root (canonical, rl bytes), or NULL with
 * an error if path lies outside root. */
static char *out_path(const char *path, const char *root, size_t rl,
		      const char *out, int *rc)
{
	char *p = NULL;

	if (strncmp(path, root, rl) != 0 || path[rl] != '/') {
		*rc = err_set(WD_EINVAL, "sim: %s lies outside %s", path, root);
		return NULL;
	}
	if (asprintf(&p, "%s%s", out, path + rl) < 0) {
		*rc = err_set(WD_ENOMEM, "sim: out of memory");
		return NULL;
	}
	return p;
}

/*
 * Steps 4 and 5 of a prefix: every file with a name in the crash state is
 * written below out, its bytes rebuilt from where the whole run left it
 * (records past the prefix undone, pending ones decided); files the prefix
 * saw as already there (IDENT) lose their copy below out first, in case
 * the crash state names them no more. Nothing below root or in the
 * journal directory changes.
 */
static int emit(struct sim *s, const char *root, const char *out)
{
	uint64_t *fwd = NULL, *bwd = NULL;
	char *croot = realpath(root, NULL);
	size_t rl, ol = strlen(out);
	int rc = 0;

	if (!croot && !(croot = strdup(root)))
		return err_set(WD_ENOMEM, "sim: out of memory");
	rl = strlen(croot);
	rc = locate(s);
	if (rc == 0)
		rc = crash_names(s);
	for (size_t i = 0; i < s->nrec && rc == 0; i++) {
		char *op;
		if (s->recs[i].kind != SIM_REC_IDENT)
			continue;
		if ((op = out_path(s->recs[i].path, croot, rl, out, &rc)) != NULL &&
		    unlink(op) != 0 && errno != ENOENT)
			rc = err_errno(errno, "sim: remove %s", op);
		free(op);
	}
	/* per file: records to replay forwards (all of the prefix's; only
	 * for files it created), or to undo backwards (the rest of the
	 * journal's and its pending ones); the cheaper way is taken */
	fwd = calloc(s->ninos, sizeof *fwd);
	bwd = calloc(s->ninos, sizeof *bwd);
	if (!fwd || !bwd)
		rc = err_set(WD_ENOMEM, "sim: out of memory");
	for (size_t i = 0; i < s->nall && rc == 0; i++) {
		const struct jrec *j = &s->recs[i];
		if (i < s->nrec && j->kind == SIM_REC_CREATE)
			fwd[j->inode] |= 1ull << 63;
		if (!is_data(j->kind))
			continue;
		fwd[j->inode] += i < s->nrec;
		bwd[j->inode] += i >= s->nrec || j->pending;
	}
	for (size_t i = 0; i < s->nns && rc == 0; i++) {
		const struct binding *b = &s->ns[i];
		const struct ino *n = &s->inos[b->inode];
		uint64_t f = fwd[b->inode];
		char *op = out_path(b->path, croot, rl, out, &rc);
		if (op && (rc = make_parents(op, ol)) != 0)
			;
		else if (op && (f >> 63) && (f & ~(1ull << 63)) <= bwd[b->inode])
			rc = forward_file(s, b->inode, op);
		else if (op && (!n->loc || access(n->loc, F_OK) != 0))
			s->missing++;
		else if (op)
			rc = rebuild_file(s, b->inode, n->loc, op);
		free(op);
	}
	free(fwd);
	free(bwd);
	free(croot);
	return rc;
}

int storage_sim_materialize_prefix(st_sim_journal *h, uint64_t io_limit,
				   const st_sim_opts *opts, const char *root,
				   const char *out, st_sim_report *r)
{
	struct sim *s = &h->s;
	st_sim_report local = {0};
	int rc = check_opts(opts, &s->sector);

	if (r)
		*r = (st_sim_report){0};
	if (rc != 0)
		return rc;
	reset_state(s);
	s->rng = opts->seed;
	s->opts = opts;
	for (s->nrec = 0; s->nrec < s->nall && s->recs[s->nrec].io < io_limit;)
		s->nrec++;
	rc = cover(s);
	if (rc == 0)
		rc = decide(s, opts->mode);
	if (rc == 0 && !opts->dry_run)
		rc = emit(s, root, out);
	else if (rc == 0)
		rc = crash_names(s);
	if (rc == 0)
		rc = report(s, r ? r : &local);
	if (!r || rc != 0)
		storage_sim_report_free(r ? r : &local);
	s->nrec = s->nall;
	return rc;
}

void storage_sim_report_free(st_sim_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nops; i++) {
		free(r->ops[i].path);
		free(r->ops[i].to);
		free(r->ops[i].mask);
	}
	free(r->ops);
	*r = (st_sim_report){0};
}

const char *storage_sim_kind_name(st_sim_kind k)
{
	static const char *const n[] = {"write", "truncate", "create", "rename",
					"unlink"};
	return (unsigned)k <= ST_SIM_UNLINK ? n[k] : "?";
}

const char *storage_sim_decision_name(st_sim_decision d)
{
	static const char *const n[] = {"kept", "dropped", "torn"};
	return (unsigned)d <= ST_SIM_TORN_OP ? n[d] : "?";
}
