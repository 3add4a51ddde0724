/*
 * control.c - reading, validating and atomically replacing the control file.
 * Entry points: control_create, control_read, control_write.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <zlib.h>

#include "recovery/control.h"
#include "storage/bytes.h"
#include "storage/page.h"
#include "storage/storage.h"

static const uint8_t magic[8] = {'W', 'A', 'L', 'D', 'E', 'N', 'C', 'F'};

/* Field offsets; see the table in recovery/README.md. */
enum {
	CF_MAGIC = 0, CF_VERSION = 8, CF_PAGE_SIZE = 12, CF_DBID = 16,
	CF_STATE = 32, CF_SEGSIZE = 36, CF_CKPT = 40, CF_REDO = 48,
	CF_NEXT_XID = 56, CF_NEXT_REL = 64, CF_FLAGS = 68, CF_TIME = 72,
	CF_CRC = CONTROL_SIZE - 4,
};

const char *control_state_name(uint32_t state)
{
	switch (state) {
	case CONTROL_SHUTDOWN: return "shut down";
	case CONTROL_IN_PRODUCTION: return "in production";
	case CONTROL_IN_RECOVERY: return "in crash recovery";
	}
	return "unknown";
}

void control_format_id(const uint8_t id[CONTROL_DBID_SIZE], char out[33])
{
	for (unsigned i = 0; i < CONTROL_DBID_SIZE; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
}

void control_encode(const control_data *cd, uint8_t buf[CONTROL_SIZE])
{
	memset(buf, 0, CONTROL_SIZE);
	memcpy(buf + CF_MAGIC, magic, sizeof magic);
	put_le32(buf + CF_VERSION, cd->version);
	put_le32(buf + CF_PAGE_SIZE, cd->page_size);
	memcpy(buf + CF_DBID, cd->db_id, CONTROL_DBID_SIZE);
	put_le32(buf + CF_STATE, cd->state);
	put_le32(buf + CF_SEGSIZE, cd->wal_segment_size);
	put_le64(buf + CF_CKPT, cd->checkpoint_lsn);
	put_le64(buf + CF_REDO, cd->redo_lsn);
	put_le64(buf + CF_NEXT_XID, cd->next_xid);
	put_le32(buf + CF_NEXT_REL, cd->next_relid);
	put_le32(buf + CF_FLAGS, cd->flags);
	put_le64(buf + CF_TIME, cd->update_time);
	put_le32(buf + CF_CRC, (uint32_t)crc32(0, buf, CF_CRC));
}

/*
 * Decodes and validates a control file image. The CRC is checked before
 * any field is believed; the version before the layout is trusted.
 */
int control_decode(const uint8_t *buf, uint64_t len, const char *path,
		   control_data *cd)
{
	uint32_t stored, computed;
	if (len != CONTROL_SIZE)
		return err_set(WD_ECORRUPT, "%s: control file is %llu bytes, expected %u",
			      path, (unsigned long long)len, CONTROL_SIZE);
	if (memcmp(buf, magic, sizeof magic) != 0)
		return err_set(WD_ECORRUPT, "%s: not a walden control file (bad magic)",
			      path);
	stored = get_le32(buf + CF_CRC);
	computed = (uint32_t)crc32(0, buf, CF_CRC);
	if (stored != computed)
		return err_set(WD_ECORRUPT,
			      "%s: control file CRC mismatch (stored 0x%08x, computed 0x%08x)",
			      path, stored, computed);
	cd->version = get_le32(buf + CF_VERSION);
	if (cd->version != CONTROL_VERSION)
		return err_set(WD_EVERSION, "%s: control file format version %u, this walden reads %u",
			      path, cd->version, CONTROL_VERSION);
	cd->page_size = get_le32(buf + CF_PAGE_SIZE);
	if (!page_size_valid(cd->page_size))
		return err_set(WD_ECORRUPT, "%s: invalid page size %u", path,
			      cd->page_size);
	memcpy(cd->db_id, buf + CF_DBID, CONTROL_DBID_SIZE);
	cd->state = get_le32(buf + CF_STATE);
	cd->wal_segment_size = get_le32(buf + CF_SEGSIZE);
	cd->checkpoint_lsn = get_le64(buf + CF_CKPT);
	cd->redo_lsn = get_le64(buf + CF_REDO);
	cd->next_xid = get_le64(buf + CF_NEXT_XID);
	cd->next_relid = get_le32(buf + CF_NEXT_REL);
	cd->flags = get_le32(buf + CF_FLAGS);
	cd->update_time = get_le64(buf + CF_TIME);
	return 0;
}

/* dir + "/" + name into buf; WD_ETOOBIG if it does not fit. */
static int join(char *buf, size_t cap, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap)
		return err_set(WD_ETOOBIG, "path too long: %s/%s", dir, name);
	return 0;
}

int control_read(const char *dir, control_data *out)
{
	char path[4096];
	uint8_t buf[CONTROL_SIZE + 1];
	st_file *f = NULL;
	size_t got;
	int rc;

	if ((rc = join(path, sizeof path, dir, CONTROL_FILE)) != 0)
		return rc;
	if ((rc = storage_open(path, ST_RDONLY, &f)) != 0)
		return rc;
	/* read one byte more than expected so a longer file is caught */
	rc = storage_read(f, buf, sizeof buf, 0, &got);
	if (rc == 0)
		rc = control_decode(buf, got, path, out);
	(void)storage_close(f);
	return rc;
}

/*
 * Protocol (recovery/README.md, "Replacing the control file"):
 * 1. write the new image to control.tmp and fdatasync it;
 * 2. rename control.tmp over control (atomic: readers see old or new);
 * 3. fsync the directory so the rename itself is durable.
 */
int control_write(const char *dir, const control_data *cd)
{
	bool untouched;
	return control_write_at(dir, cd, &untouched);
}

int control_write_at(const char *dir, const control_data *cd, bool *untouched)
{
	char tmp[4096], path[4096];
	uint8_t buf[CONTROL_SIZE];
	st_file *f = NULL;
	int rc;

	*untouched = true;
	if ((rc = join(tmp, sizeof tmp, dir, CONTROL_TMP_FILE)) != 0 ||
	    (rc = join(path, sizeof path, dir, CONTROL_FILE)) != 0)
		return rc;
	control_encode(cd, buf);
	/* step 1 */
	if ((rc = storage_open(tmp, ST_CREATE | ST_TRUNC, &f)) != 0)
		return rc;
	rc = storage_write(f, buf, sizeof buf, 0);
	*untouched = rc != 0; /* from here on an fsync or a rename was tried */
	if (rc == 0)
		rc = storage_sync(f);
	if (storage_close(f) != 0 && rc == 0)
		rc = WD_EIO;
	if (rc != 0)
		return rc;
	storage_crash_point("control-before-rename");
	/* step 2 */
	if ((rc = storage_rename(tmp, path)) != 0)
		return rc;
	storage_crash_point("control-before-dir-sync");
	/* step 3 */
	return storage_sync_dir(dir);
}

int control_create(const char *dir, uint32_t page_size, control_data *out)
{
	char path[4096];
	control_data cd = {0};
	int rc;

	if (!page_size_valid(page_size))
		return err_set(WD_EINVAL,
			      "page size %u: must be a power of two from %u to %u",
			      page_size, PAGE_SIZE_MIN, PAGE_SIZE_MAX);
	if ((rc = join(path, sizeof path, dir, CONTROL_FILE)) != 0)
		return rc;
	if (storage_exists(path))
		return err_set(WD_EEXIST, "%s already exists", path);
	if (getrandom(cd.db_id, sizeof cd.db_id, 0) != (ssize_t)sizeof cd.db_id)
		return err_errno(errno, "getrandom for the database id");
	cd.version = CONTROL_VERSION;
	cd.page_size = page_size;
	cd.state = CONTROL_SHUTDOWN;
	cd.next_xid = 1;
	cd.next_relid = 1;
	cd.update_time = (uint64_t)time(NULL);
	if ((rc = control_write(dir, &cd)) != 0)
		return rc;
	if (out)
		*out = cd;
	return 0;
}
