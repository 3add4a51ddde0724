/*
 * control.h - the control file: the one small file that says what a
 * database directory is (id, page size, format) and where recovery starts.
 * Replaced atomically: write a temporary file, fsync it, rename it over the
 * old one, fsync the directory. Format table in recovery/README.md.
 */
#ifndef WALDEN_RECOVERY_CONTROL_H
#define WALDEN_RECOVERY_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"

/* Layout of a database directory:
 *   DIR/control        this file
 *   DIR/base/<relid>   relation (page) files, named by relation id
 */
#define DB_BASE_DIR "base"
#define CONTROL_FILE "control"
#define CONTROL_TMP_FILE "control.tmp"
#define CONTROL_SIZE 512u
#define CONTROL_VERSION 1u
#define CONTROL_DBID_SIZE 16u

enum control_state {
	CONTROL_SHUTDOWN = 0,      /* shut down cleanly: no recovery needed */
	CONTROL_IN_PRODUCTION = 1, /* open, or crashed while open */
	CONTROL_IN_RECOVERY = 2,   /* crashed during recovery */
};

/* control_data.flags */
enum {
	/* heap and index of some table may disagree where no loser's
	 * in-flight change explains it (txn db_needs_repair): the next
	 * recovery repairs every table in full (recovery/README.md P6) */
	CONTROL_F_NEEDS_REPAIR = 1u,
};

typedef struct control_data {
	uint32_t version;
	uint32_t page_size;
	uint8_t db_id[CONTROL_DBID_SIZE];
	uint32_t state;            /* enum control_state */
	uint32_t wal_segment_size; /* bytes; 0 until the WAL exists */
	wd_lsn checkpoint_lsn;     /* LSN of the last checkpoint record */
	wd_lsn redo_lsn;           /* where redo starts for that checkpoint */
	wd_xid next_xid;
	wd_relid next_relid;
	uint32_t flags;            /* CONTROL_F_* (0 in files of older walden) */
	uint64_t update_time;      /* unix seconds of the last write */
} control_data;

const char *control_state_name(uint32_t state);

/*
 * Creates DIR/control for a new database with a fresh random id. Fails
 * with WD_EEXIST if one is there. Durable on return.
 */
int control_create(const char *dir, uint32_t page_size,
		   control_data *out) WD_MUST_CHECK;

/*
 * Reads and validates DIR/control. WD_ENOENT if absent; WD_ECORRUPT for a
 * bad magic, size or CRC; WD_EVERSION for another format version. The
 * detail names the file.
 */
int control_read(const char *dir, control_data *out) WD_MUST_CHECK;

/* Atomically replaces DIR/control with cd (durable on return). */
int control_write(const char *dir, const control_data *cd) WD_MUST_CHECK;

/* control_write, telling in *untouched (on failure) whether it failed
 * before any fsync or rename: creating or writing control.tmp (a full
 * disk, WD_ENOSPC), so that the old control file is in force, nothing was
 * synced, and the caller may go on. */
int control_write_at(const char *dir, const control_data *cd,
		     bool *untouched) WD_MUST_CHECK;

/* Byte-level encoding, exposed for tests and tools. */
void control_encode(const control_data *cd, uint8_t buf[CONTROL_SIZE]);
int control_decode(const uint8_t *buf, uint64_t len, const char *path,
		   control_data *out) WD_MUST_CHECK;

/* Formats the database id as 32 hex digits into out[33]. */
void control_format_id(const uint8_t id[CONTROL_DBID_SIZE], char out[33]);

#endif
