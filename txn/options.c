/*
 * options.c - wd_options_default: the one place every setting gets its
 * default value.
 */
#include "storage/page.h"
#include "walden.h"

void wd_options_default(wd_options *o)
{
	o->page_size = PAGE_SIZE_DEFAULT;
	o->buffer_pool_bytes = 64ull << 20;
	o->huge_pages = 1;
	o->wal_segment_size = 16u << 20;
	o->wal_buffers_bytes = 16ull << 20;
	o->wal_writer_delay_ms = 200;
	o->wal_writer_flush_after_bytes = 1ull << 20;
	o->synchronous_commit = 1;
	o->commit_delay_us = 0;
	o->commit_siblings = 5;
	o->wal_init_zero = 1;
	o->wal_recycle = 1;
	o->full_page_writes = 1;
	o->wal_compression = 0;
	o->archive_dir = NULL;
	o->max_value_bytes = 64ull << 20;
	o->lock_timeout_ms = 0;
	o->lock_escalation_rows = 5000;
	o->checkpoint_timeout_s = 300;
	o->max_wal_size_bytes = 1ull << 30;
	o->checkpoint_completion_target = 0.9;
}
