/*
 * xact_rmgr.c - the XACT resource manager: describe and redo routines for
 * XACT_COMMIT and XACT_ABORT, registered by xact_rmgr_register.
 *
 * Commit and abort records change no page, so their redo does nothing;
 * recovery's analysis pass reads them to tell winners from losers. Their
 * main data is the durable horizon (WAL_REC_HORIZON), which the describe
 * routine shows; a record without the flag (format 1) shows its length.
 */
#include <stdio.h>

#include "txn/xact_rmgr.h"
#include "wal/rmgr.h"

/* Commit and abort change no page: nothing to redo. */
static int xact_redo(void *ctx, const wal_decoded *rec)
{
	(void)ctx;
	(void)rec;
	return 0;
}

/* "commit of xid 7" (and the main data length, whose layout txn fixes later). */
static void xact_describe(const wal_decoded *rec, char *buf, size_t cap)
{
	const char *what = rec->type == XACT_COMMIT  ? "commit"
			   : rec->type == XACT_ABORT ? "abort"
						     : "unknown";
	if (rec->flags & WAL_REC_HORIZON)
		snprintf(buf, cap, "%s of xid %llu, log durable to " LSN_FMT " when written",
			 what, (unsigned long long)rec->xid, LSN_ARGS(rec->horizon));
	else if (rec->main_len)
		snprintf(buf, cap, "%s of xid %llu, %u bytes of main data", what,
			 (unsigned long long)rec->xid, rec->main_len);
	else
		snprintf(buf, cap, "%s of xid %llu", what, (unsigned long long)rec->xid);
}

static const wal_rmgr_ops xact_ops = {xact_redo, xact_describe};

int xact_rmgr_register(void)
{
	/* fails only for an unknown id or other ops: a programming error,
	 * reported (not asserted: release builds must see it too) */
	int rc = wal_rmgr_register(WAL_RMGR_XACT, &xact_ops);
	return rc ? err_wrap(rc, "registering the XACT resource manager") : 0;
}
