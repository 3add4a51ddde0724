/*
 * rmgrs.h - registering every resource manager of walden at once: what
 * wd_open (before recovery) and the tools that dump or replay WAL call.
 */
#ifndef WALDEN_TXN_RMGRS_H
#define WALDEN_TXN_RMGRS_H

#include "storage/error.h"

/* Registers XACT, HEAP, BTREE and UNDO (XLOG is built into wal/). Idempotent and
 * thread-safe. Fails only on a programming error (an id registered twice
 * with different routines). */
int walden_register_rmgrs(void) WD_MUST_CHECK;

#endif
