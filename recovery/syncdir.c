/*
 * syncdir.c - recovery_sync_files: before a recovery reads anything, every
 * relation file and WAL segment of the database directory is fsynced, and
 * then the directories that hold them (README P3 step 0, I11).
 *
 * Why: a process that was killed (not a power loss) leaves its last writes
 * in the OS cache, neither lost nor durable. Recovery believes them - redo
 * skips a record whose page on disk is already newer, and the WAL's end is
 * where those cached segments end - and a later checkpoint syncs only what
 * this process writes. Without this step a power loss after that
 * checkpoint could take back a page write or a WAL record the checkpoint
 * had counted as durable, behind a redo point that will not replay it.
 * PostgreSQL does the same at the start of crash recovery
 * (SyncDataDirectory). A file that is already clean costs one system call.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "recovery/control.h"
#include "recovery/recovery.h"
#include "storage/storage.h"
#include "storage/trace.h"
#include "wal/format.h"

/* fsyncs every regular file directly in dir, then dir; *n counts files. */
static int sync_files_in(const char *dir, uint64_t *n)
{
	char path[4352];
	struct dirent *de;
	struct stat st;
	st_file *f;
	int rc = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_errno(errno, "%s", dir);
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) {
			rc = err_set(WD_EINVAL, "%s: path too long", dir);
			break;
		}
		if (stat(path, &st) != 0) {
			/* a file gone meanwhile is no one's: nothing runs here */
			rc = errno == ENOENT ? 0 : err_errno(errno, "%s", path);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if ((rc = storage_open(path, 0, &f)) != 0)
			break;
		rc = storage_sync(f);
		(void)storage_close(f);
		(*n)++;
	}
	closedir(d);
	return rc ? rc : storage_sync_dir(dir);
}

int recovery_sync_files(const char *dir)
{
	char sub[4200];
	uint64_t n = 0;
	int rc;
	snprintf(sub, sizeof sub, "%s/%s", dir, DB_BASE_DIR);
	rc = sync_files_in(sub, &n);
	snprintf(sub, sizeof sub, "%s/%s", dir, WAL_DIR);
	if (rc == 0)
		rc = sync_files_in(sub, &n);
	if (rc == 0)
		rc = storage_sync_dir(dir);
	TRACE(TR_RECOVERY, "  %llu relation files and WAL segments fsynced before recovery "
	      "(what a killed process left in the OS cache is made durable first)%s",
	      (unsigned long long)n, rc ? ": failed" : "");
	return rc ? err_wrap(rc, "%s: making the files durable before recovery", dir) : 0;
}
