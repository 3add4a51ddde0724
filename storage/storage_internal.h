/*
 * storage_internal.h - shared by the files of storage/ only.
 */
#ifndef WALDEN_STORAGE_INTERNAL_H
#define WALDEN_STORAGE_INTERNAL_H

#include "storage/storage.h"

struct st_file {
	int fd;
	unsigned flags;
	char *path;
	uint64_t sim_inode; /* power-loss simulation identity, 0 if untracked */
};

/*
 * Called at the start of every I/O call with the call's kind and path.
 * Counts the call (storage_io_count), fires an armed WALDEN_CRASH_IO crash,
 * and returns the fault to inject: 0 for none, otherwise 1 + st_fault_kind.
 */
int fault_check(st_op op, const char *path);

#endif
