/*
 * waltest.c - see waltest.h.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "storage/bytes.h"
#include "tests/lib/waltest.h"
#include "wal/reader.h"
#include "wal/rmgr.h"

void tw_opts(wal_opts *o)
{
	wal_opts_default(o);
	o->segment_size = WAL_SEG_SIZE_MIN;
	o->buffers_bytes = 64 * 1024;
	o->no_writer_thread = true;
	for (int i = 0; i < 16; i++)
		o->db_id[i] = (uint8_t)(0xA0 + i);
}

static uint8_t pad_byte(uint32_t tid, uint64_t seq, uint32_t i)
{
	return (uint8_t)(tid * 31 + seq * 7 + i);
}

void tw_record(wal_rec_builder *b, uint32_t tid, uint64_t seq, uint32_t pad,
	       uint8_t **rec, uint32_t *len)
{
	uint8_t *m = malloc(12 + (size_t)pad);
	assert(m);
	put_le32(m, tid);
	put_le64(m + 4, seq);
	for (uint32_t i = 0; i < pad; i++)
		m[12 + i] = pad_byte(tid, seq, i);
	walrec_begin(b, WAL_RMGR_XLOG, XLOG_NOOP, tid, 0, 0, 0);
	if (walrec_set_main(b, m, 12 + pad) != 0 || walrec_assemble(b, rec, len) != 0)
		abort();
	free(m);
}

/* Decodes one record's payload into r. */
static void tw_decode(const wal_decoded *d, tw_rec *r)
{
	r->lsn = d->lsn;
	r->end = d->end_lsn;
	r->len = d->tot_len;
	r->pad_ok = d->main_len >= 12;
	if (!r->pad_ok)
		return;
	r->tid = get_le32(d->main_data);
	r->seq = get_le64(d->main_data + 4);
	for (uint32_t i = 12; i < d->main_len; i++)
		if (d->main_data[i] != pad_byte(r->tid, r->seq, i - 12))
			r->pad_ok = false;
}

int tw_read_all(const char *dbdir, const wal_opts *o, wd_lsn from, tw_rec **out,
		size_t *n, wd_lsn *end, bool *clean)
{
	const wal_decoded *d;
	wal_reader *r = NULL;
	wal_end_reason why = WAL_END_NONE;
	size_t cap = 0;
	int rc;
	*out = NULL;
	*n = 0;
	if ((rc = wal_reader_open(dbdir, o->db_id, o->segment_size, o->page_size, &r)) != 0)
		return rc;
	if (from % o->segment_size == 0) { /* may start inside a record */
		wd_lsn found;
		if ((rc = wal_reader_find(r, from, &found)) != 0)
			goto out;
	} else if ((rc = wal_reader_seek(r, from)) != 0) {
		goto out;
	}
	while ((rc = wal_reader_next(r, &d)) == 0) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 256;
			*out = realloc(*out, cap * sizeof **out);
			assert(*out);
		}
		tw_decode(d, &(*out)[(*n)++]);
	}
	if (rc == WD_NOTFOUND) {
		wal_reader_end(r, end, &why, NULL);
		*clean = wal_end_reason_clean(why);
		rc = 0;
	}
out:
	wal_reader_close(r);
	return rc;
}

uint64_t tw_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool tw_wait_for(bool (*cond)(void *arg), void *arg, unsigned timeout_s)
{
	uint64_t deadline = tw_now_ns() + (uint64_t)timeout_s * 1000000000u;
	while (!cond(arg)) {
		if (tw_now_ns() >= deadline)
			return cond(arg);
		usleep(1000);
	}
	return true;
}

int tw_spawn(void (*fn)(void *arg), void *arg)
{
	pid_t pid;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	return pid;
}

void *tw_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert(p != MAP_FAILED);
	return p;
}

void tw_shared_free(void *p, size_t len)
{
	munmap(p, len);
}
