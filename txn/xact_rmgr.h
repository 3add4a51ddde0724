/*
 * xact_rmgr.h - the XACT resource manager (commit and abort records): its
 * describe and redo routines, registered with wal_rmgr_register.
 */
#ifndef WALDEN_TXN_XACT_RMGR_H
#define WALDEN_TXN_XACT_RMGR_H

#include "storage/error.h"

/* Registers the XACT rmgr's routines (idempotent). Call at start-up, before
 * reading WAL: wd_open and the tools that dump or replay WAL do. Errors
 * (a programming error: other routines registered for XACT): WD_EEXIST,
 * WD_EINVAL. */
int xact_rmgr_register(void) WD_MUST_CHECK;

#endif
