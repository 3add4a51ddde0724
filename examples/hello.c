/* hello.c - the smallest walden program: version, options, error codes. */
#include <stdio.h>
#include <walden.h>

int main(void)
{
	wd_options o;
	wd_options_default(&o);
	printf("walden %s: page size %u bytes, buffer pool %llu MiB\n",
	       wd_version(), o.page_size,
	       (unsigned long long)(o.buffer_pool_bytes >> 20));
	printf("error %d reads: %s\n", WD_ECORRUPT, wd_strerror(WD_ECORRUPT));
	return 0;
}
