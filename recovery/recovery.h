/*
 * recovery.h - crash recovery (recovery/README.md P3-P8): the ARIES passes
 * over a PostgreSQL-style checkpoint. recovery_run is called by the open
 * of a database whose control file does not say "shut down cleanly":
 *
 *   analysis   one scan from the redo point to the end of valid WAL:
 *              the transaction table (the losers) and the dirty page table
 *   redo       from the smallest recLSN: history repeated, page by page,
 *              skipping what the dirty page table says is on disk
 *   repair     heap and index made to agree      } through recovery_ops:
 *   undo       every loser rolled back, CLRs      } the layers above
 *   end-of-recovery checkpoint: the control file names it, in production
 *
 *   recovery_ctx c = {.dir = dir, .cd = &cd, .pool = pool, .page_size = ps,
 *                     .from = cd.redo_lsn, .end = end, .ckpt = cp,
 *                     .ops = {rel_open, start, repair, undo, production},
 *                     .arg = db};
 *   recovery_report r;
 *   recovery_run(&c, &r);
 *
 * The recovery module sits above wal, bufmgr and undo and below the access
 * methods and transactions (DESIGN.md section 1): what needs tables comes
 * through recovery_ops, as the checkpoint's needs come through ckpt_ops.
 */
#ifndef WALDEN_RECOVERY_RECOVERY_H
#define WALDEN_RECOVERY_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "bufmgr/bufmgr.h"
#include "recovery/checkpoint.h"
#include "recovery/control.h"
#include "storage/error.h"
#include "storage/types.h"
#include "undo/undo.h"

typedef struct recovery_report recovery_report;

/* A page a transaction's records named (recovery_hint.blocks). */
typedef struct recovery_block {
	wd_relid rel;
	wd_blkno blk;
} recovery_block;

/* At most this many distinct pages per hint; beyond, it is unknown. */
#define RECOVERY_HINT_BLOCKS 64u

/*
 * What analysis says about the one row change of a loser a crash may have
 * cut in half (README P4 step 5, P6): the change whose undo record is the
 * loser's undo chain head - being applied, or being undone - and the
 * pages the loser's records named since its last UNDO-rmgr record (an
 * undo append or a CLR), which are the pages that change touched. unknown:
 * analysis cannot vouch for the list (no undo record of the loser was
 * seen by the scan, so its head came from the checkpoint and the change
 * may have begun before the redo point; or more than RECOVERY_HINT_BLOCKS
 * pages): its table is repaired in full.
 */
typedef struct recovery_hint {
	wd_xid xid;
	undo_ptr head;  /* never 0: a loser with no undo record changed nothing */
	bool unknown;
	uint32_t nblocks;
	recovery_block blocks[RECOVERY_HINT_BLOCKS];
} recovery_hint;

/* What the database gives recovery. Every callback returns 0 or a WD_E*
 * code; arg is recovery_ctx.arg. No other thread runs meanwhile. */
typedef struct recovery_ops {
	/* redo: relation rel's file opened in the pool (no create);
	 * WD_ENOENT if it is gone (a dropped table's: its records are
	 * skipped, txn/README.md I6) */
	int (*rel_open)(void *arg, wd_relid rel);
	/* after redo: the layers above come up on the replayed pages (the
	 * undo log, the catalog) */
	int (*start)(void *arg);
	/* P6: heap and index of every table agree again, given the n hints
	 * of analysis (one per loser with an undo record; valid until undo
	 * returns): r->repaired, r->keys_checked and r->tables_repaired grow
	 * (txn/README.md P3) */
	int (*repair)(void *arg, const recovery_hint *hints, size_t n, recovery_report *r);
	/* P7: every loser of xt rolled back, each ending with XACT_ABORT;
	 * *losers and *steps grow (txn/README.md P16) */
	int (*undo)(void *arg, const undo_xtab *xt, uint64_t *losers, uint64_t *steps);
	/* P8 step 1: the control data in memory says "in production" with
	 * the next transaction ids reserved; the end checkpoint's control
	 * write makes it durable */
	int (*production)(void *arg);
} recovery_ops;

typedef struct recovery_ctx {
	const char *dir;
	control_data *cd;   /* the database's control data (state written) */
	bufmgr *pool;
	uint32_t page_size;
	wd_lsn from;        /* where analysis starts: the control file's redo
			     * point (or the log's first record) */
	wd_lsn end;         /* the end wal_find_end found (trace) */
	unsigned end_reason; /* ... and why the log ends there (wal_end_reason) */
	checkpointer *ckpt; /* created, its thread not started: the end
			     * checkpoint (P8) runs on it */
	recovery_ops ops;
	void *arg;
} recovery_ctx;

/* What one recovery did, pass by pass (README "Recovery report and
 * trace"; `walden recover` prints it). */
struct recovery_report {
	unsigned control_state;      /* the state found (control.h) */
	wd_lsn checkpoint_lsn;       /* the control file's last checkpoint */
	wd_lsn checkpoint_redo;      /* ... and its redo point */
	wd_lsn analysis_start;       /* where analysis started */
	wd_lsn wal_end;              /* the first LSN without a valid record */
	unsigned end_reason;         /* wal_end_reason: why the log ends there */
	const char *end_reason_name; /* wal_end_reason_name(end_reason) */
	uint64_t records;            /* records analysis scanned */
	uint64_t dpt_pages;          /* pages in the dirty page table */
	wd_lsn redo_start;           /* the first record redo read */
	uint64_t redo_records;       /* records redo read */
	uint64_t applied;            /* page changes applied */
	uint64_t skipped;            /* ... skipped: pageLSN >= record LSN */
	uint64_t skipped_not_dirty;  /* ... skipped, page not in the table */
	uint64_t skipped_rec_lsn;    /* ... skipped, record below its recLSN */
	uint64_t images;             /* full-page images restored */
	uint64_t dropped;            /* records of dropped relations, skipped */
	uint64_t pages_rebuilt;      /* torn pages rebuilt from their image */
	uint64_t repaired;           /* heap/index entries repaired (P6) */
	uint64_t keys_checked;       /* keys of losers' in-flight changes checked (P6) */
	uint64_t tables_repaired;    /* tables (the catalog included) repaired in full */
	uint64_t losers;             /* transactions active at the end of the log */
	uint64_t losers_rolled_back;
	uint64_t undo_steps;         /* undo records undone = CLRs written */
	wd_lsn end_checkpoint_lsn;   /* the end-of-recovery checkpoint record */
	wd_lsn end_checkpoint_redo;  /* ... and its redo point */
	double analysis_ms, redo_ms, repair_ms, undo_ms, checkpoint_ms;
};

/*
 * P3: recovers the database. Writes state "in crash recovery" first, so a
 * crash anywhere later recovers again from the same redo point; returns
 * with the control file naming the end-of-recovery checkpoint, "in
 * production". *r is filled as far as recovery got. Errors: the log's,
 * the pool's, the callbacks', WD_ECORRUPT for a damaged checkpoint record
 * or page that no image repairs (naming it).
 */
int recovery_run(const recovery_ctx *c, recovery_report *r) WD_MUST_CHECK;

/*
 * Before a recovery (README P2): fsyncs every relation file in DIR/base and
 * every WAL segment in DIR/wal, then those directories and DIR, so that
 * what a killed process left in the OS cache - believed by redo and by the
 * search for the log's end - is durable before anything is built on it
 * (I11). Errors: the first failed open or fsync, naming the file.
 */
int recovery_sync_files(const char *dir) WD_MUST_CHECK;

#endif
