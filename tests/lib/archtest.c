/*
 * archtest.c - see archtest.h.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "recovery/control.h"
#include "tests/lib/archtest.h"
#include "tests/lib/dbtest.h"
#include "tests/lib/simtest.h"
#include "tests/lib/testutil.h"
#include "wal/format.h"
#include "wal/rmgr.h"
#include "wal/wal.h"

void at_tag(uint8_t *v, uint64_t n, unsigned key)
{
	char tag[AT_TAG_LEN + 1];
	snprintf(tag, sizeof tag, "@@%08llx.%08x##", (unsigned long long)(n & 0xFFFFFFFFu), key);
	memcpy(v, tag, AT_TAG_LEN);
}

void at_seen_free(at_seen *s)
{
	free(s->tags);
	s->tags = NULL;
	s->ntags = s->cap = 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The tag at p (AT_TAG_LEN bytes) as n << 32 | key; false if it is none. */
static bool parse_tag(const uint8_t *p, uint64_t *out)
{
	unsigned long long n;
	unsigned key;
	char tag[AT_TAG_LEN + 1];
	if (p[0] != '@' || p[1] != '@' || p[19] != '#' || p[20] != '#')
		return false;
	memcpy(tag, p, AT_TAG_LEN);
	tag[AT_TAG_LEN] = 0;
	if (sscanf(tag, "@@%8llx.%8x##", &n, &key) != 2)
		return false;
	*out = (uint64_t)n << 32 | key;
	return true;
}

bool at_tag_logged(const at_seen *s, const void *v, size_t vlen)
{
	uint64_t want;
	return vlen >= AT_TAG_LEN && parse_tag(v, &want) &&
	       bsearch(&want, s->tags, s->ntags, sizeof want, cmp_u64) != NULL;
}

/* Collects the tags in p[0, len). */
static void collect_tags(at_seen *s, const uint8_t *p, uint32_t len)
{
	for (const uint8_t *q = p; (q = memchr(q, '@', (size_t)(p + len - q))) != NULL; q++) {
		uint64_t t;
		if ((size_t)(p + len - q) < AT_TAG_LEN || !parse_tag(q, &t))
			continue;
		if (s->ntags == s->cap)
			s->tags = realloc(s->tags, (s->cap = s->cap ? 2 * s->cap : 4096) * sizeof *s->tags);
		s->tags[s->ntags++] = t;
	}
}

size_t at_list_dir(const char *dir, uint64_t **segs, unsigned *tmps, unsigned *others)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0, cap = 64;
	*segs = malloc(cap * sizeof **segs);
	*tmps = *others = 0;
	assert_non_null(d);
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		if (nm[0] == '.')
			continue;
		if (strlen(nm) == WAL_SEG_NAME_LEN &&
		    strspn(nm, "0123456789ABCDEF") == WAL_SEG_NAME_LEN) {
			if (n == cap)
				*segs = realloc(*segs, (cap *= 2) * sizeof **segs);
			(*segs)[n++] = strtoull(nm, NULL, 16);
		} else if (strlen(nm) > 4 && strcmp(nm + strlen(nm) - 4, ".tmp") == 0) {
			++*tmps;
		} else {
			++*others;
		}
	}
	closedir(d);
	qsort(*segs, n, sizeof **segs, cmp_u64);
	return n;
}

char *at_seg_file(const char *dir, uint64_t segno)
{
	char name[WAL_SEG_NAME_LEN + 1];
	snprintf(name, sizeof name, "%016llX", (unsigned long long)segno);
	return tu_path(dir, name);
}

wd_lsn at_read_rest(wal_reader *r, at_seen *s, wal_end_reason *why)
{
	const wal_decoded *rec;
	wd_lsn at;
	int rc;
	while ((rc = wal_reader_next(r, &rec)) == 0) {
		if (!s)
			continue;
		s->records++;
		s->checkpoints += rec->rmgr == WAL_RMGR_XLOG && rec->type == XLOG_CHECKPOINT;
		collect_tags(s, rec->raw, rec->tot_len);
	}
	if (rc != WD_NOTFOUND)
		fail_msg("reading the WAL: %s (%s)", wd_strerror(rc), wd_last_error());
	wal_reader_end(r, &at, why, NULL);
	return at;
}

/* Reads the log in segdir from its first record to its end, which must be
 * `end` (where the live log ends: a clean end, or stale bytes of a
 * recycled segment). */
static void read_log(const char *segdir, const control_data *cd, wd_lsn end, at_seen *s)
{
	wal_end_reason why;
	wal_reader *r;
	wd_lsn at;
	OK(wal_reader_open_dir(segdir, cd->db_id, cd->wal_segment_size, cd->page_size, &r));
	OK(wal_reader_seek(r, WAL_SEG_HEADER_SIZE));
	at = at_read_rest(r, s, &why);
	if (at != end)
		fail_msg("archive + live WAL end at " LSN_FMT " (%s), the live WAL at " LSN_FMT,
			 LSN_ARGS(at), wal_end_reason_name(why), LSN_ARGS(end));
	wal_reader_close(r);
	qsort(s->tags, s->ntags, sizeof *s->tags, cmp_u64);
}

/* Links (or, for a live segment also archived, compares) the files of a
 * closed database into a fresh directory holding the whole log. */
static void link_log(const char *dbdir, const char *arch, uint64_t narch, uint32_t seg_size,
		     const char *comb)
{
	char *wal_dir = tu_path(dbdir, WAL_DIR);
	uint64_t *live;
	unsigned tmps, others;
	size_t n = at_list_dir(wal_dir, &live, &tmps, &others);
	tu_rmrf(comb);
	assert_int_equal(mkdir(comb, 0755), 0);
	for (uint64_t i = 0; i < narch; i++) {
		char *a = at_seg_file(arch, i), *c = at_seg_file(comb, i);
		assert_int_equal(link(a, c), 0);
		free(a);
		free(c);
	}
	for (size_t i = 0; i < n; i++) {
		char *l = at_seg_file(wal_dir, live[i]), *c = at_seg_file(comb, live[i]);
		if (live[i] >= narch) {
			assert_int_equal(link(l, c), 0);
		} else {
			size_t llen, clen, cap = 1u + (size_t)seg_size; /* a longer file shows */
			uint8_t *lb = simtest_slurp(l, cap, &llen);
			uint8_t *cb = simtest_slurp(c, cap, &clen);
			if (!lb || !cb || llen != clen || memcmp(lb, cb, llen) != 0)
				fail_msg("live segment %s differs from its archived copy", l);
			free(lb);
			free(cb);
		}
		free(l);
		free(c);
	}
	free(live);
	free(wal_dir);
}

void at_check_archive(const char *root, const char *dbdir, const char *arch,
		      const wd_options *o, at_seen *s)
{
	char *comb = tu_path(root, "whole-log");
	control_data cd;
	wal_opts wo;
	wd_lsn end;
	uint64_t *segs, k;
	unsigned tmps, others;
	size_t n;
	memset(s, 0, sizeof *s);
	OK(control_read(dbdir, &cd));
	wal_opts_from(&wo, o, cd.db_id);
	OK(wal_find_end(dbdir, &wo, cd.redo_lsn, &end));
	k = wal_segno(end, cd.wal_segment_size);
	n = at_list_dir(arch, &segs, &tmps, &others);
	if (tmps || others)
		fail_msg("%u temporary and %u other files left in the archive", tmps, others);
	for (size_t i = 0; i < n; i++)
		if (segs[i] != i)
			fail_msg("archive: segment %llX where %llX should be (a gap)",
				 (unsigned long long)segs[i], (unsigned long long)i);
	if (n != k)
		fail_msg("archive: segments 0..%llX; the log ends at " LSN_FMT
			 " (segments 0..%llX complete)", (unsigned long long)n - 1, LSN_ARGS(end),
			 (unsigned long long)k - 1);
	link_log(dbdir, arch, n, cd.wal_segment_size, comb);
	read_log(comb, &cd, end, s);
	tu_rmrf(comb);
	free(comb);
	free(segs);
}
