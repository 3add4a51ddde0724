/*
 * wal.c - the WAL's life cycle: options, wal_create, wal_open, wal_close,
 * statistics. Entry points: wal_opts_default, wal_opts_from, wal_create,
 * wal_open, wal_find_end, wal_close, wal_set_active_fn, wal_stats
 * (wal/README.md, "Opening").
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/trace.h"
#include "wal/reader.h"
#include "wal/wal_internal.h"

void wal_opts_default(wal_opts *o)
{
	*o = (wal_opts){
		.segment_size = WAL_SEG_SIZE_DEFAULT,
		.buffers_bytes = 16ull << 20,
		.writer_delay_ms = 200,
		.writer_flush_after_bytes = 1ull << 20,
		.commit_delay_us = 0,
		.commit_siblings = 5,
		.init_zero = true,
		.recycle = true,
		.recycle_max = 8,
		.prepare_ahead = 1,
		.page_size = 8192,
		.writer_hibernate_loops = WAL_LOOPS_UNTIL_HIBERNATE,
		.writer_hibernate_factor = WAL_HIBERNATE_FACTOR,
	};
}

void wal_opts_from(wal_opts *o, const wd_options *d, const uint8_t db_id[16])
{
	wal_opts_default(o);
	o->segment_size = d->wal_segment_size;
	o->buffers_bytes = d->wal_buffers_bytes;
	o->writer_delay_ms = d->wal_writer_delay_ms;
	o->writer_flush_after_bytes = d->wal_writer_flush_after_bytes;
	o->commit_delay_us = d->commit_delay_us;
	o->commit_siblings = d->commit_siblings;
	o->init_zero = d->wal_init_zero != 0;
	o->recycle = d->wal_recycle != 0;
	o->page_size = d->page_size;
	o->archive_dir = d->archive_dir && *d->archive_dir ? d->archive_dir : NULL;
	memcpy(o->db_id, db_id, sizeof o->db_id);
}

/* Checks o; WD_EINVAL naming the first bad setting. */
static int opts_check(const wal_opts *o)
{
	uint32_t s = o->segment_size;
	if (s < WAL_SEG_SIZE_MIN || s > WAL_SEG_SIZE_MAX || (s & (s - 1)))
		return err_set(WD_EINVAL, "wal_segment_size %u: not a power of two in [%u, %u]",
			       s, WAL_SEG_SIZE_MIN, WAL_SEG_SIZE_MAX);
	if (o->buffers_bytes < WAL_MIN_BUFFERS || o->buffers_bytes > (1ull << 40))
		return err_set(WD_EINVAL, "wal_buffers_bytes %llu: not in [%u, 2^40]",
			       (unsigned long long)o->buffers_bytes, WAL_MIN_BUFFERS);
	if (o->writer_delay_ms < 1 || o->writer_delay_ms > 10000)
		return err_set(WD_EINVAL, "wal_writer_delay_ms %u: not in [1, 10000]",
			       o->writer_delay_ms);
	if (o->commit_delay_us > 100000 || o->commit_siblings > 1000)
		return err_set(WD_EINVAL, "commit_delay_us %u (max 100000) or commit_siblings "
			       "%u (max 1000) out of range", o->commit_delay_us, o->commit_siblings);
	if (o->writer_hibernate_loops < 1 || o->writer_hibernate_loops > 1000 ||
	    o->writer_hibernate_factor < 1 || o->writer_hibernate_factor > 100000)
		return err_set(WD_EINVAL, "WAL writer hibernation after %u loops (1..1000), "
			       "factor %u (1..100000): out of range", o->writer_hibernate_loops,
			       o->writer_hibernate_factor);
	if (o->prepare_ahead < 1 || o->prepare_ahead > 64)
		return err_set(WD_EINVAL, "WAL prepare_ahead %u: not in [1, 64]", o->prepare_ahead);
	if (o->page_size < 4096 || o->page_size > 65536 || (o->page_size & (o->page_size - 1)))
		return err_set(WD_EINVAL, "page size %u: not a power of two in [4096, 65536]",
			       o->page_size);
	return wal_archive_check_dir(o->archive_dir);
}

/* The largest power of two not above n. */
static uint64_t pow2_floor(uint64_t n)
{
	uint64_t p = 1;
	while (p <= n / 2)
		p *= 2;
	return p;
}

/* Allocates w with its buffers and locks; positions are set by wal_open. */
static int wal_alloc(const char *dbdir, const wal_opts *o, wal **out)
{
	wal *w = aligned_alloc(64, (sizeof *w + 63) & ~(size_t)63);
	if (!w)
		return err_set(WD_ENOMEM, "WAL: out of memory");
	memset(w, 0, sizeof *w);
	w->o = *o;
	w->seg_size = o->segment_size;
	w->crc_seed = wal_crc_seed(o->db_id);
	w->buf_size = pow2_floor(o->buffers_bytes);
	w->buf = aligned_alloc(4096, w->buf_size);
	w->dbdir = strdup(dbdir);
	if (w->buf)
		memset(w->buf, 0, w->buf_size); /* fault the pages in now */
	if (!w->buf || !w->dbdir || asprintf(&w->waldir, "%s/%s", dbdir, WAL_DIR) < 0) {
		free(w->buf);
		free(w->dbdir);
		free(w);
		return err_set(WD_ENOMEM, "WAL: cannot allocate %llu bytes of WAL buffers",
			       (unsigned long long)o->buffers_bytes);
	}
	wal_insert_init(w);
	wal_flush_init(w);
	pthread_mutex_init(&w->seg_mx, NULL);
	*out = w;
	return wal_archive_init(w); /* the caller frees w on a failure */
}

static void wal_free(wal *w)
{
	wal_insert_destroy(w);
	wal_flush_destroy(w);
	pthread_mutex_destroy(&w->seg_mx);
	wal_archive_destroy(w);
	free(w->buf);
	free(w->dbdir);
	free(w->waldir);
	free(w);
}

int wal_open(const char *dbdir, const wal_opts *o, wd_lsn start_lsn, wal **out)
{
	uint64_t pos;
	wal *w = NULL;
	int rc;

	*out = NULL;
	if ((rc = opts_check(o)) != 0)
		return rc;
	if (start_lsn % WAL_ALIGN != 0)
		return err_set(WD_EINVAL, "wal_open: start LSN " LSN_FMT " not 8-byte aligned",
			       LSN_ARGS(start_lsn));
	if ((rc = wal_alloc(dbdir, o, &w)) != 0) {
		if (w)
			wal_free(w);
		return rc;
	}
	pos = wal_usable_from_lsn(start_lsn, w->seg_size);
	atomic_init(&w->reserved, pos);
	w->start_reserved = pos;
	atomic_init(&w->written, wal_end_lsn(pos, w->seg_size));
	atomic_init(&w->flushed, wal_end_lsn(pos, w->seg_size));
	if ((rc = wal_seg_start(w, wal_lsn_from_usable(pos, w->seg_size))) != 0 ||
	    (rc = wal_writer_start(w)) != 0) {
		wal_free(w);
		return rc;
	}
	if ((rc = wal_archive_start(w)) != 0) {
		wal_writer_stop(w);
		wal_free(w);
		return rc;
	}
	TRACE(TR_WAL, "open %s at " LSN_FMT, dbdir, LSN_ARGS(start_lsn));
	*out = w;
	return 0;
}

int wal_create(const char *dbdir, const wal_opts *o, wal **out)
{
	char *waldir;
	int rc;
	*out = NULL;
	if ((rc = opts_check(o)) != 0)
		return rc;
	if (asprintf(&waldir, "%s/%s", dbdir, WAL_DIR) < 0)
		return err_set(WD_ENOMEM, "WAL: out of memory");
	rc = wal_seg_create_dir(dbdir, waldir);
	free(waldir);
	return rc ? rc : wal_open(dbdir, o, WAL_SEG_HEADER_SIZE, out);
}

int wal_find_end(const char *dbdir, const wal_opts *o, wd_lsn from, wd_lsn *end)
{
	return wal_find_end_why(dbdir, o, from, end, NULL, NULL, 0);
}

int wal_find_end_why(const char *dbdir, const wal_opts *o, wd_lsn from, wd_lsn *end,
		     unsigned *why, char *detail, size_t dcap)
{
	const char *d = NULL;
	wal_end_reason reason = WAL_END_NONE;
	const wal_decoded *rec;
	wal_reader *r = NULL;
	int rc;
	if ((rc = opts_check(o)) != 0 ||
	    (rc = wal_reader_open(dbdir, o->db_id, o->segment_size, o->page_size, &r)) != 0)
		return rc;
	if ((rc = wal_reader_seek(r, from)) == 0) {
		while ((rc = wal_reader_next(r, &rec)) == 0)
			;
		if (rc == WD_NOTFOUND) {
			wal_reader_end(r, end, &reason, &d);
			if (why)
				*why = reason;
			if (detail && dcap)
				snprintf(detail, dcap, "%s", d ? d : "");
			rc = 0;
		}
	}
	wal_reader_close(r);
	return rc;
}

/* Why the log ends at end, read again there (reason and detail). */
static void end_reason_at(wal_reader *r, wd_lsn end, char *buf, size_t cap)
{
	const wal_decoded *rec;
	wal_end_reason why = WAL_END_NONE;
	const char *detail = "";
	snprintf(buf, cap, "a valid record");
	if (wal_reader_seek(r, end) != 0 || wal_reader_next(r, &rec) != WD_NOTFOUND)
		return;
	wal_reader_end(r, NULL, &why, &detail);
	snprintf(buf, cap, "%s: %s", wal_end_reason_name(why), detail);
}

int wal_check_end(const char *dbdir, const wal_opts *o, wd_lsn end)
{
	char path[4096], why[700], at[4096];
	wd_lsn found = 0, horizon = 0;
	wal_reader *r = NULL;
	int rc;
	if ((rc = opts_check(o)) != 0 ||
	    (rc = wal_reader_open(dbdir, o->db_id, o->segment_size, o->page_size, &r)) != 0)
		return rc;
	rc = wal_reader_find_durable_after(r, end, &found, &horizon);
	if (rc == 0 && found) {
		wd_lsn d = end % o->segment_size == 0 ? end + WAL_SEG_HEADER_SIZE : end;
		end_reason_at(r, end, why, sizeof why);
		if ((rc = wal_seg_path(path, sizeof path, dbdir, wal_segno(d, o->segment_size))) ||
		    (rc = wal_seg_path(at, sizeof at, dbdir, wal_segno(found, o->segment_size))))
			goto out;
		rc = err_set(WD_ECORRUPT, "%s offset %llu: WAL damaged at " LSN_FMT " (%s), "
			     "but the valid record at " LSN_FMT " (%s offset %llu) was written when "
			     "the log was durable up to " LSN_FMT ": durable records are damaged, "
			     "not a torn tail; the log is left as it is", path,
			     (unsigned long long)(d % o->segment_size), LSN_ARGS(d), why,
			     LSN_ARGS(found), at,
			     (unsigned long long)(found % o->segment_size), LSN_ARGS(horizon));
	}
out:
	wal_reader_close(r);
	return rc;
}

int wal_close(wal *w)
{
	int rc = 0;
	if (!w)
		return 0;
	if (!atomic_load(&w->panicked))
		rc = wal_flush_upto(w, wal_reserved_end(w), false);
	else
		rc = wal_panic_error(w);
	wal_writer_stop(w);
	wal_archive_stop(w); /* archives what the last flush completed (P7) */
	wal_close_file(w);
	TRACE(TR_WAL, "close flushed=" LSN_FMT, LSN_ARGS(atomic_load(&w->flushed)));
	wal_free(w);
	return rc;
}

void wal_set_active_fn(wal *w, int (*fn)(void *arg), void *arg)
{
	w->active_fn = fn;
	w->active_arg = arg;
}

void wal_stats(wal *w, wal_counters *s)
{
	memset(s, 0, sizeof *s);
	for (unsigned i = 0; i < WAL_NSLOTS; i++)
		s->records += relaxed_get(&w->slots[i].records);
	s->bytes = atomic_load(&w->reserved) - w->start_reserved;
	s->buffer_waits = relaxed_get(&w->st_buffer_waits);
	s->insert_stalls = relaxed_get(&w->st_insert_stalls);
	s->commit_delays = relaxed_get(&w->st_commit_delays);
	s->writes = relaxed_get(&w->st_writes);
	s->write_bytes = relaxed_get(&w->st_write_bytes);
	s->fsyncs = relaxed_get(&w->st_fsyncs);
	s->flush_requests = relaxed_get(&w->st_flush_requests);
	s->leader_flushes = relaxed_get(&w->st_leader_flushes);
	s->followers = relaxed_get(&w->st_followers);
	s->max_group = relaxed_get(&w->st_max_group);
	s->async_commits = relaxed_get(&w->st_async_commits);
	s->async_wakeups = relaxed_get(&w->st_async_wakeups);
	s->writer_cycles = relaxed_get(&w->st_writer_cycles);
	s->writer_idle = relaxed_get(&w->st_writer_idle);
	s->writer_writes = relaxed_get(&w->st_writer_writes);
	s->writer_flushes = relaxed_get(&w->st_writer_flushes);
	s->hibernations = relaxed_get(&w->st_hibernations);
	s->segs_created = relaxed_get(&w->st_segs_created);
	s->segs_recycled = relaxed_get(&w->st_segs_recycled);
	s->segs_removed = relaxed_get(&w->st_segs_removed);
	s->segs_prepared_inline = relaxed_get(&w->st_segs_inline);
	s->fpw_retries = relaxed_get(&w->st_fpw_retries);
	s->segs_archived = relaxed_get(&w->st_segs_archived);
	s->segs_archive_found = relaxed_get(&w->st_archive_found);
	s->archive_failures = relaxed_get(&w->st_archive_failures);
}
