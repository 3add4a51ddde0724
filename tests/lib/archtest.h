/*
 * archtest.h - checks of a WAL archive (wal/README.md P7, I12) for the
 * archiving suites (test_archive, test_archive_conc): listing segment
 * files, and reading archive + live WAL of a closed database as one log,
 * collecting the tags ("@@<n>.<key>##") the suites put at the start of
 * their values, so that a test can ask whether a value was logged.
 */
#ifndef WALDEN_ARCHTEST_H
#define WALDEN_ARCHTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wal/reader.h"
#include "walden.h"

#define AT_TAG_LEN 21u /* "@@" 8 hex digits "." 8 hex digits "##" */

/* Writes the tag of (n, key) - n's low 32 bits - into v[0, AT_TAG_LEN). */
void at_tag(uint8_t *v, uint64_t n, unsigned key);

/* What reading a log found. */
typedef struct at_seen {
	uint64_t records, checkpoints;
	uint64_t *tags; /* n << 32 | key of every tag found, sorted */
	size_t ntags, cap;
} at_seen;

void at_seen_free(at_seen *s);

/* Whether the tag at the start of value v was seen. */
bool at_tag_logged(const at_seen *s, const void *v, size_t vlen);

/* DIR/<16 hex digits of segno>, malloc'd. */
char *at_seg_file(const char *dir, uint64_t segno);

/* The segment numbers named in dir, sorted, into *segs (malloc'd); names
 * ending in ".tmp" are counted in *tmps, any other file in *others. */
size_t at_list_dir(const char *dir, uint64_t **segs, unsigned *tmps, unsigned *others);

/* Reads on from r's position to the end of the log (an error fails the
 * test), noting what it finds in s (if not NULL); returns the end LSN. */
wd_lsn at_read_rest(wal_reader *r, at_seen *s, wal_end_reason *why);

/*
 * After a clean close of the database in dbdir (opened with options o):
 * the archive arch holds exactly segments 0..k-1, k being the segment of
 * the log's end (every completed segment, nothing else, no temporary
 * file); each live segment also archived is byte-identical to its copy;
 * and archive + live WAL, linked into a scratch directory under root, read
 * from 0/40 as one log reach the live log's end. *s receives what the read
 * found (at_seen_free it).
 */
void at_check_archive(const char *root, const char *dbdir, const char *arch,
		      const wd_options *o, at_seen *s);

#endif
