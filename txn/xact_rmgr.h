/*
 * xact_rmgr.h - the XACT resource manager (commit and abort records): its
 * describe and redo routines, registered with wal_rmgr_register.
 */
#ifndef WALDEN_TXN_XACT_RMGR_H
#define WALDEN_TXN_XACT_RMGR_H

/* Registers the XACT rmgr's routines (idempotent). Call at start-up, before
 * reading WAL: wd_open and the tools that dump or replay WAL do. */
void xact_rmgr_register(void);

#endif
