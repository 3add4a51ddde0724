/*
 * rmgrs.c - walden_register_rmgrs: one call that registers the routines of
 * every resource manager in records.def, from the module that owns each.
 */
#include <pthread.h>

#include "btree/btree.h"
#include "heap/heap.h"
#include "txn/rmgrs.h"
#include "txn/xact_rmgr.h"
#include "undo/undo.h"
#include "wal/rmgr.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int result;

/* Every registration, each failure reported (the first wins). heap's
 * registration returns nothing (it asserts, compiled out in release
 * builds), so whether it took is asked of the rmgr table. */
static void register_all(void)
{
	int rc = xact_rmgr_register(), r;
	heap_rmgr_register();
	if (rc == 0 && !wal_rmgr_registered(WAL_RMGR_HEAP))
		rc = err_set(WD_ESTATE, "the HEAP resource manager did not register");
	if ((r = btree_rmgr_register()) != 0 && rc == 0)
		rc = r;
	if ((r = undo_rmgr_register()) != 0 && rc == 0)
		rc = r;
	result = rc;
}

int walden_register_rmgrs(void)
{
	pthread_once(&once, register_all);
	return result;
}
