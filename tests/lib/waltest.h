/*
 * waltest.h - helpers for the WAL insertion/flush suites (test_wal_insert,
 * test_wal_conc, test_wal_crash): small-segment options, records whose
 * payload names their writer and number, a read-back of the whole log
 * through the reader, and polling for another thread's state.
 */
#ifndef WALDEN_WALTEST_H
#define WALDEN_WALTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wal/record.h"
#include "wal/wal.h"

/* 64 KiB segments and buffers, 8 KiB pages, a fixed database id, no
 * writer thread (tests drive wal_writer_step), no recycling limit. */
void tw_opts(wal_opts *o);

/*
 * Builds an XLOG_NOOP record of xid tid whose main data is tid (u32), seq
 * (u64), then pad bytes derived from both; *rec points into b.
 */
void tw_record(wal_rec_builder *b, uint32_t tid, uint64_t seq, uint32_t pad,
	       uint8_t **rec, uint32_t *len);

/* One record read back: its LSN, end, writer and number, and whether its
 * pad bytes are the ones tw_record wrote. */
typedef struct tw_rec {
	wd_lsn lsn, end;
	uint32_t tid, len;
	uint64_t seq;
	bool pad_ok;
} tw_rec;

/*
 * Reads the log of dbdir from `from` to its end (from a segment's first
 * LSN: from the first record that starts in that segment). *out (malloc'd) receives
 * the records, *n their number, *end the end LSN, *clean whether the end
 * reason is a clean one (zero / missing / short). Returns 0 or the reader's
 * error.
 */
int tw_read_all(const char *dbdir, const wal_opts *o, wd_lsn from, tw_rec **out,
		size_t *n, wd_lsn *end, bool *clean);

/* CLOCK_MONOTONIC in ns (the same clock in parent and child). */
uint64_t tw_now_ns(void);

/*
 * Polls cond(arg) every millisecond until it is true or timeout_s seconds
 * pass; returns its last value. For waiting on a state another thread
 * reaches: tests use generous timeouts (>= 10 s) so that only a real hang,
 * never a slow machine, fails them.
 */
bool tw_wait_for(bool (*cond)(void *arg), void *arg, unsigned timeout_s);

/* Forks a child running fn(arg) (which must _exit); returns its pid. */
int tw_spawn(void (*fn)(void *arg), void *arg);

/* len bytes of zeroed memory shared with forked children. */
void *tw_shared(size_t len);
void tw_shared_free(void *p, size_t len);

#endif
