/*
 * inspect.c - `walden inspect`: the control file (like pg_controldata) and
 * single pages of relation files (like pageinspect), decoded field by field.
 */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"
#include "tools/tools.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden inspect DIR                      show the control file\n"
		"       walden inspect DIR --rel R --block B    show one page of DIR/base/R\n"
		"       walden inspect --file F --block B [--page-size N]\n"
		"\n"
		"Decodes on-disk structures field by field, checking every checksum.\n"
		"Options:\n"
		"  -r, --rel R         relation id (file DIR/base/R)\n"
		"  -b, --block B       block number in the file\n"
		"  -f, --file F        a page file given by path (needs --page-size\n"
		"                      unless a control file is given as DIR)\n"
		"  -p, --page-size N   page size for --file (default from DIR, else 8192)\n"
		"  -h, --help          this help\n"
		"Exit status: 0 ok, 1 error, 2 usage, 3 the page or file is damaged.\n");
}

static void print_control(const char *dir, const control_data *cd)
{
	char id[33];
	control_format_id(cd->db_id, id);
	printf("control file             %s/%s\n", dir, CONTROL_FILE);
	printf("format version           %u\n", cd->version);
	printf("database id              %s\n", id);
	printf("page size                %u\n", cd->page_size);
	printf("state                    %s\n", control_state_name(cd->state));
	printf("WAL segment size         %u\n", cd->wal_segment_size);
	printf("latest checkpoint LSN    " LSN_FMT "\n", LSN_ARGS(cd->checkpoint_lsn));
	printf("redo LSN                 " LSN_FMT "\n", LSN_ARGS(cd->redo_lsn));
	printf("next transaction id      %" PRIu64 "\n", cd->next_xid);
	printf("next relation id         %u\n", cd->next_relid);
	printf("last updated             %" PRIu64 " (unix time)\n", cd->update_time);
}

/* Prints up to 16 bytes of an item as hex and as text. */
static void print_item_bytes(const uint8_t *it, uint32_t len)
{
	uint32_t n = len < 16 ? len : 16;
	for (uint32_t i = 0; i < n; i++)
		printf("%02x ", it[i]);
	printf("%*s\"", (int)(3 * (16 - n)), "");
	for (uint32_t i = 0; i < n; i++)
		putchar(isprint(it[i]) ? it[i] : '.');
	printf("\"%s\n", len > n ? "..." : "");
}

/* Decodes one page image. Returns EXIT_DAMAGE if it fails verification. */
static int print_page(const char *path, wd_blkno blk, const uint8_t *p,
		      uint32_t page_size)
{
	int v = page_verify(p, page_size, blk, path);
	uint32_t stored = get_le32(p + PH_CHECKSUM);

	printf("file %s block %u (%u bytes at offset %" PRIu64 ")\n", path, blk,
	       page_size, (uint64_t)blk * page_size);
	if (v == PAGE_VERIFY_NEW) {
		printf("  all zero: never written\n");
		return EXIT_OK;
	}
	printf("  checksum   0x%08x %s\n", stored,
	       stored == page_checksum(p, page_size, blk) ? "ok" : "MISMATCH");
	if (v != 0)
		printf("  damage     %s\n", wd_last_error());
	printf("  lsn        " LSN_FMT "\n", LSN_ARGS(page_lsn(p)));
	printf("  kind       %s (%u)  version %u  flags 0x%04x\n",
	       page_kind_name(page_kind(p)), page_kind(p), p[PH_VERSION],
	       page_flags(p));
	printf("  lower %u  upper %u  special %u  free %u\n", page_lower(p),
	       page_upper(p), page_special(p),
	       page_upper(p) >= page_lower(p) ? page_upper(p) - page_lower(p) : 0);
	if (v != 0)
		return EXIT_DAMAGE; /* bounds are not to be trusted */
	printf("  slots      %u\n", page_nslots(p));
	for (uint32_t s = 0; s < page_nslots(p); s++) {
		uint32_t len = 0;
		const uint8_t *it = page_item_const(p, s, &len);
		printf("  %5u  ", s);
		if (!it) {
			printf("unused\n");
			continue;
		}
		printf("off %5u len %5u  ", (uint32_t)(it - p), len);
		print_item_bytes(it, len);
	}
	return EXIT_OK;
}

static int inspect_page(const char *path, wd_blkno blk, uint32_t page_size)
{
	uint8_t *p = malloc(page_size);
	st_file *f = NULL;
	size_t got = 0;
	int rc;

	if (!p)
		return tool_fail("inspect", WD_ENOMEM, "allocating a page");
	rc = storage_open(path, ST_RDONLY, &f);
	if (rc == 0)
		rc = storage_read(f, p, page_size, (uint64_t)blk * page_size, &got);
	if (f)
		(void)storage_close(f);
	if (rc != 0) {
		free(p);
		return tool_fail("inspect", rc, "reading the page");
	}
	if (got < page_size) {
		fprintf(stderr, "walden inspect: %s: block %u is beyond the end of the file "
				"(%zu of %u bytes there)\n", path, blk, got, page_size);
		free(p);
		return EXIT_DAMAGE;
	}
	rc = print_page(path, blk, p, page_size);
	free(p);
	return rc;
}

int inspect_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"rel", required_argument, NULL, 'r'},
		{"block", required_argument, NULL, 'b'},
		{"file", required_argument, NULL, 'f'},
		{"page-size", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *file = NULL;
	long long rel = -1, blk = -1;
	uint32_t page_size = 0;
	control_data cd;
	char path[4096];
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "r:b:f:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': rel = strtoll(optarg, NULL, 10); break;
		case 'b': blk = strtoll(optarg, NULL, 10); break;
		case 'f': file = optarg; break;
		case 'p': page_size = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		dir = argv[optind++];
	if (optind < argc || (!dir && !file) || (file && blk < 0) ||
	    (rel >= 0) != (blk >= 0 && !file) || blk > UINT32_MAX || rel > UINT32_MAX) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (page_size && !page_size_valid(page_size)) {
		fprintf(stderr, "walden inspect: page size %u: must be a power of two "
				"from 4096 to 65536\n", page_size);
		return EXIT_USAGE;
	}
	if (dir) {
		rc = control_read(dir, &cd);
		if (rc != 0)
			return rc == WD_ECORRUPT ? (tool_fail("inspect", rc, "control file"), EXIT_DAMAGE)
						 : tool_fail("inspect", rc, "control file");
		if (!page_size)
			page_size = cd.page_size;
	}
	if (!page_size)
		page_size = PAGE_SIZE_DEFAULT;
	if (file)
		return inspect_page(file, (wd_blkno)blk, page_size);
	if (rel < 0) {
		print_control(dir, &cd);
		return EXIT_OK;
	}
	snprintf(path, sizeof path, "%s/%s/%lld", dir, DB_BASE_DIR, rel);
	return inspect_page(path, (wd_blkno)blk, page_size);
}
