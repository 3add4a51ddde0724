/*
 * rmgrs.c - walden_register_rmgrs: one call that registers the routines of
 * every resource manager in records.def, from the module that owns each.
 */
#include <pthread.h>

#include "btree/btree.h"
#include "heap/heap.h"
#include "txn/rmgrs.h"
#include "txn/xact_rmgr.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int result;

static void register_all(void)
{
	xact_rmgr_register();
	heap_rmgr_register();
	result = btree_rmgr_register();
}

int walden_register_rmgrs(void)
{
	pthread_once(&once, register_all);
	return result;
}
