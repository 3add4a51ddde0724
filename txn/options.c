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
}
