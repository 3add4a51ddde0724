/*
 * rmgr.h - resource managers: the table, generated from wal/records.def,
 * that gives every record type a name, a describe routine (waldump) and a
 * redo routine (recovery). The module that owns an rmgr registers its
 * routines at start-up with wal_rmgr_register, so wal/ never calls up into
 * the modules above it (DESIGN.md section 1). XLOG, owned by wal/ itself, is
 * always registered.
 */
#ifndef WALDEN_WAL_RMGR_H
#define WALDEN_WAL_RMGR_H

#include <stdbool.h>
#include <stddef.h>

#include "storage/error.h"
#include "wal/record.h"

/* Resource manager ids: WAL_RMGR_XLOG, WAL_RMGR_XACT, ... */
enum wal_rmgr_id {
#define RMGR(id, name, owner) WAL_RMGR_##name = (id),
#define RECORD(rmgr, id, name, what)
#include "wal/records.def"
#undef RMGR
#undef RECORD
};

/* Record types, named as in records.def (XLOG_NOOP, XACT_COMMIT, ...).
 * Values are per rmgr, so two names may share a value. */
enum wal_record_type {
#define RMGR(id, name, owner)
#define RECORD(rmgr, id, name, what) name = (id),
#include "wal/records.def"
#undef RMGR
#undef RECORD
};

#define WAL_RMGR_MAX 256 /* rmgr ids are one byte */

/* What an owner registers for its rmgr. Either routine may be NULL. */
typedef struct wal_rmgr_ops {
	/* Applies rec during recovery's redo pass. ctx is recovery's (it
	 * gives access to the buffer pool). 0 or a WD_E* code. */
	int (*redo)(void *ctx, const wal_decoded *rec);
	/* Writes a one-line description of rec's payload (no LSN, rmgr or
	 * type: the caller prints those) into buf, always NUL-terminated. */
	void (*describe)(const wal_decoded *rec, char *buf, size_t cap);
} wal_rmgr_ops;

/* The rmgr's name ("XACT"), or NULL if records.def has no such id. */
const char *wal_rmgr_name(unsigned rmgr);

/* The owning module ("txn"), or NULL. */
const char *wal_rmgr_owner(unsigned rmgr);

/* The record type's name ("XACT_COMMIT"), or NULL if unknown. */
const char *wal_record_name(unsigned rmgr, unsigned type);

/* The record type's meaning from records.def, or NULL if unknown. */
const char *wal_record_what(unsigned rmgr, unsigned type);

/* The id of the rmgr named name (case-insensitive), or -1. */
int wal_rmgr_lookup(const char *name);

/* Iteration over records.def: the i-th record type (0-based), false past
 * the last. */
bool wal_record_at(size_t i, unsigned *rmgr, unsigned *type);

/* Iteration over records.def: the i-th rmgr, false past the last. */
bool wal_rmgr_at(size_t i, unsigned *rmgr);

/*
 * Registers ops (which must stay valid for the process) for rmgr.
 * Registering the same ops again is a no-op. Errors: WD_EINVAL (rmgr not
 * in records.def), WD_EEXIST (other ops already registered).
 * Call at start-up, before recovery or waldump reads records.
 */
int wal_rmgr_register(unsigned rmgr, const wal_rmgr_ops *ops) WD_MUST_CHECK;

/* true if rmgr has registered routines. */
bool wal_rmgr_registered(unsigned rmgr);

/*
 * Redoes rec with its rmgr's routine. WD_ENOTSUP (detail names the rmgr
 * and type) if the rmgr or record type is unknown or has no redo.
 */
int wal_rmgr_redo(void *ctx, const wal_decoded *rec) WD_MUST_CHECK;

/*
 * Describes rec into buf with its rmgr's routine; without one, a generic
 * description ("3 blocks, main data 12 bytes"). Never fails; buf is always
 * NUL-terminated (cap > 0).
 */
void wal_rmgr_describe(const wal_decoded *rec, char *buf, size_t cap);

#endif /* WALDEN_WAL_RMGR_H */
