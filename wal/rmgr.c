/*
 * rmgr.c - the resource-manager table (rmgr.h): names generated from
 * wal/records.def, registration, and redo/describe dispatch. Also holds the
 * XLOG rmgr, the one wal/ owns.
 */
#include <stdio.h>
#include <strings.h>

#include "wal/ckpt_rec.h"
#include "wal/rmgr.h"

struct rmgr_def {
	unsigned id;
	const char *name;
	const char *owner;
};

struct record_def {
	unsigned rmgr;
	unsigned type;
	const char *name;
	const char *what;
};

static const struct rmgr_def rmgr_defs[] = {
#define RMGR(id, name, owner) {(id), #name, owner},
#define RECORD(rmgr, id, name, what)
#include "wal/records.def"
#undef RMGR
#undef RECORD
};
#define NRMGRS (sizeof rmgr_defs / sizeof rmgr_defs[0])

static const struct record_def record_defs[] = {
#define RMGR(id, name, owner)
#define RECORD(rmgr, id, name, what) {WAL_RMGR_##rmgr, (id), #name, what},
#include "wal/records.def"
#undef RMGR
#undef RECORD
};
#define NRECORDS (sizeof record_defs / sizeof record_defs[0])

/* ---- XLOG: records of the log itself ------------------------------------ */

/* XLOG records change no page: nothing to redo. */
static int xlog_redo(void *ctx, const wal_decoded *rec)
{
	(void)ctx;
	(void)rec;
	return 0;
}

/* XLOG_NOOP: the payload length; XLOG_CHECKPOINT: its redo point, next
 * xid and tables; unknown XLOG types: the main data length. */
static void xlog_describe(const wal_decoded *rec, char *buf, size_t cap)
{
	if (rec->type == XLOG_CHECKPOINT)
		wal_ckpt_describe(rec, buf, cap);
	else if (rec->type == XLOG_NOOP)
		snprintf(buf, cap, "payload %u bytes", rec->main_len);
	else
		snprintf(buf, cap, "main data %u bytes", rec->main_len);
}

static const wal_rmgr_ops xlog_ops = {xlog_redo, xlog_describe};

/* Registered routines by rmgr id; read and written atomically so a late
 * registration on one thread is seen whole by others. */
static const wal_rmgr_ops *rmgr_ops[WAL_RMGR_MAX] = {
	[WAL_RMGR_XLOG] = &xlog_ops,
};

/* ---- names --------------------------------------------------------------- */

static const struct rmgr_def *find_rmgr(unsigned rmgr)
{
	for (size_t i = 0; i < NRMGRS; i++)
		if (rmgr_defs[i].id == rmgr)
			return &rmgr_defs[i];
	return NULL;
}

/* The records.def entry of (rmgr, type), or NULL; linear, the list is short. */
static const struct record_def *find_record(unsigned rmgr, unsigned type)
{
	for (size_t i = 0; i < NRECORDS; i++)
		if (record_defs[i].rmgr == rmgr && record_defs[i].type == type)
			return &record_defs[i];
	return NULL;
}

const char *wal_rmgr_name(unsigned rmgr)
{
	const struct rmgr_def *d = find_rmgr(rmgr);
	return d ? d->name : NULL;
}

const char *wal_rmgr_owner(unsigned rmgr)
{
	const struct rmgr_def *d = find_rmgr(rmgr);
	return d ? d->owner : NULL;
}

const char *wal_record_name(unsigned rmgr, unsigned type)
{
	const struct record_def *d = find_record(rmgr, type);
	return d ? d->name : NULL;
}

const char *wal_record_what(unsigned rmgr, unsigned type)
{
	const struct record_def *d = find_record(rmgr, type);
	return d ? d->what : NULL;
}

int wal_rmgr_lookup(const char *name)
{
	for (size_t i = 0; i < NRMGRS; i++)
		if (strcasecmp(rmgr_defs[i].name, name) == 0)
			return (int)rmgr_defs[i].id;
	return -1;
}

bool wal_record_at(size_t i, unsigned *rmgr, unsigned *type)
{
	if (i >= NRECORDS)
		return false;
	*rmgr = record_defs[i].rmgr;
	*type = record_defs[i].type;
	return true;
}

bool wal_rmgr_at(size_t i, unsigned *rmgr)
{
	if (i >= NRMGRS)
		return false;
	*rmgr = rmgr_defs[i].id;
	return true;
}

/* ---- registration and dispatch -------------------------------------------- */

int wal_rmgr_register(unsigned rmgr, const wal_rmgr_ops *ops)
{
	const wal_rmgr_ops *expected = NULL;
	if (!find_rmgr(rmgr) || !ops)
		return err_set(WD_EINVAL, "resource manager %u is not in wal/records.def", rmgr);
	if (__atomic_compare_exchange_n(&rmgr_ops[rmgr], &expected, ops, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
	    expected == ops)
		return 0;
	return err_set(WD_EEXIST, "resource manager %s already has other routines",
		       wal_rmgr_name(rmgr));
}

/* The ops registered for rmgr, or NULL (acquire pairs with register). */
static const wal_rmgr_ops *ops_of(unsigned rmgr)
{
	if (rmgr >= WAL_RMGR_MAX)
		return NULL;
	return __atomic_load_n(&rmgr_ops[rmgr], __ATOMIC_ACQUIRE);
}

bool wal_rmgr_registered(unsigned rmgr)
{
	return ops_of(rmgr) != NULL;
}

/* Dispatches redo; unknown rmgrs or types are WD_ENOTSUP, never guessed. */
int wal_rmgr_redo(void *ctx, const wal_decoded *rec)
{
	const wal_rmgr_ops *ops = ops_of(rec->rmgr);
	const char *name = wal_rmgr_name(rec->rmgr);
	if (!ops || !ops->redo || !wal_record_name(rec->rmgr, rec->type))
		return err_set(WD_ENOTSUP,
			       "WAL record at " LSN_FMT ": no redo routine for rmgr %s (%u) "
			       "type 0x%02x",
			       LSN_ARGS(rec->lsn), name ? name : "?", rec->rmgr, rec->type);
	return ops->redo(ctx, rec);
}

/* Dispatches describe, or writes the generic description. */
void wal_rmgr_describe(const wal_decoded *rec, char *buf, size_t cap)
{
	const wal_rmgr_ops *ops = ops_of(rec->rmgr);
	if (cap == 0)
		return;
	buf[0] = '\0';
	if (ops && ops->describe)
		ops->describe(rec, buf, cap);
	else
		snprintf(buf, cap, "%u blocks, main data %u bytes", rec->nblocks,
			 rec->main_len);
}
