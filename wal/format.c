/*
 * format.c - segment headers and segment file names (format.h).
 */
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "storage/bytes.h"
#include "wal/format.h"

static const uint8_t seg_magic[8] = {'W', 'A', 'L', 'D', 'E', 'N', 'W', 'L'};

void wal_seg_header_encode(const wal_seg_header *h, uint8_t out[WAL_SEG_HEADER_SIZE])
{
	memset(out, 0, WAL_SEG_HEADER_SIZE);
	memcpy(out + WSH_MAGIC, seg_magic, sizeof seg_magic);
	put_le32(out + WSH_VERSION, h->version);
	put_le32(out + WSH_SEG_SIZE, h->seg_size);
	memcpy(out + WSH_DB_ID, h->db_id, sizeof h->db_id);
	put_le64(out + WSH_SEGNO, h->segno);
	put_le32(out + WSH_PAGE_SIZE, h->page_size);
	put_le32(out + WSH_CRC, (uint32_t)crc32(0, out, WSH_CRC));
}

int wal_seg_header_decode(const uint8_t *buf, const char *path, wal_seg_header *h)
{
	uint32_t stored = get_le32(buf + WSH_CRC);
	uint32_t computed = (uint32_t)crc32(0, buf, WSH_CRC);
	if (memcmp(buf + WSH_MAGIC, seg_magic, sizeof seg_magic) != 0)
		return err_set(WD_ECORRUPT, "%s: not a walden WAL segment (bad magic)", path);
	if (stored != computed)
		return err_set(WD_ECORRUPT,
			       "%s: WAL segment header CRC mismatch (stored 0x%08x, computed 0x%08x)",
			       path, stored, computed);
	h->version = get_le32(buf + WSH_VERSION);
	if (h->version < WAL_FORMAT_VERSION_MIN || h->version > WAL_FORMAT_VERSION)
		return err_set(WD_EVERSION, "%s: WAL format version %u, this walden reads "
			       "%u to %u", path, h->version, WAL_FORMAT_VERSION_MIN,
			       WAL_FORMAT_VERSION);
	h->seg_size = get_le32(buf + WSH_SEG_SIZE);
	memcpy(h->db_id, buf + WSH_DB_ID, sizeof h->db_id);
	h->segno = get_le64(buf + WSH_SEGNO);
	h->page_size = get_le32(buf + WSH_PAGE_SIZE);
	return 0;
}

int wal_seg_path(char *out, size_t cap, const char *dbdir, uint64_t segno)
{
	int n = snprintf(out, cap, "%s/%s/%016llX", dbdir, WAL_DIR,
			 (unsigned long long)segno);
	if (n < 0 || (size_t)n >= cap)
		return err_set(WD_ETOOBIG, "WAL segment path too long under %s", dbdir);
	return 0;
}

int wal_seg_path_in(char *out, size_t cap, const char *segdir, uint64_t segno)
{
	int n = snprintf(out, cap, "%s/%016llX", segdir, (unsigned long long)segno);
	if (n < 0 || (size_t)n >= cap)
		return err_set(WD_ETOOBIG, "WAL segment path too long under %s", segdir);
	return 0;
}
