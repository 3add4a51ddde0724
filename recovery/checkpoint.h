/*
 * checkpoint.h - fuzzy checkpoints (recovery/README.md P1, P2): a redo
 * point, the pages dirtied before it written, an XLOG_CHECKPOINT record
 * with the active transactions and the dirty pages, the relation files
 * synced, the control file pointed at the record, old WAL recycled. And
 * the checkpointer thread that runs them on time or on WAL volume.
 *
 *   ckpt_ctx c = {.pool = pool, .w = w, .ops = {att, next_xid, control},
 *                 .arg = db, .timeout_s = 300, ...};
 *   checkpointer *cp;
 *   checkpointer_create(&c, &cp);
 *   checkpointer_start(cp);            // the background thread
 *   checkpoint_run(cp, true, &res);    // wd_checkpoint, shutdown
 *   checkpointer_free(cp);             // stops the thread first
 *
 * The recovery module sits above bufmgr and wal and knows nothing of
 * transactions: the database gives what it needs through ckpt_ops.
 */
#ifndef WALDEN_RECOVERY_CHECKPOINT_H
#define WALDEN_RECOVERY_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bufmgr/bufmgr.h"
#include "storage/error.h"
#include "storage/types.h"
#include "wal/ckpt_rec.h"
#include "wal/wal.h"

typedef struct ckpt_ops {
	/* P1 step 3: the active transactions (txn/README.md P17), called
	 * after the redo point is set; a malloc'd array. */
	int (*att)(void *arg, wal_ckpt_att **out, uint32_t *n);
	/* the next transaction id the database will hand out */
	wd_xid (*next_xid)(void *arg);
	/* P1 step 6: the control file says checkpoint_lsn and redo_lsn,
	 * durably on return (the database panics if that fails) */
	int (*control)(void *arg, wd_lsn ckpt_lsn, wd_lsn redo);
	/* P1 step 5 failed (an fdatasync of a relation): the database enters
	 * its panic state and the call returns WD_EPANIC (NULL: the log's
	 * panic, wal_panic) */
	int (*panic)(void *arg, int cause);
} ckpt_ops;

typedef struct ckpt_ctx {
	bufmgr *pool;
	wal *w;
	ckpt_ops ops;
	void *arg;
	uint32_t timeout_s;        /* checkpoint_timeout */
	uint64_t max_wal_bytes;    /* max_wal_size */
	double completion_target;  /* checkpoint_completion_target, 0..1 */
} ckpt_ctx;

/* What one checkpoint did. */
typedef struct ckpt_result {
	wd_lsn redo;       /* its redo point */
	wd_lsn lsn;        /* its XLOG_CHECKPOINT record */
	uint64_t written;  /* buffers written */
	uint32_t natt, ndpt;
	bool named;        /* step 6 done: the control file names it (a later
			    * error is step 7's: old WAL not retired) */
} ckpt_result;

typedef struct checkpointer checkpointer;

int checkpointer_create(const ckpt_ctx *ctx, checkpointer **out) WD_MUST_CHECK;

/* Starts the background thread (P2). WD_EIO if the thread cannot start. */
int checkpointer_start(checkpointer *cp) WD_MUST_CHECK;

/* Stops the thread (a checkpoint it runs finishes first, at full speed);
 * checkpoint_run still works. Idempotent. */
void checkpointer_stop(checkpointer *cp);

/* checkpointer_stop, then frees cp. NULL is fine. */
void checkpointer_free(checkpointer *cp);

/*
 * P1: one checkpoint, serialized with any other. forced: at full speed
 * (wd_checkpoint, shutdown); otherwise its writes are spread over
 * completion_target x timeout_s. out may be NULL. Errors: the pool's
 * write and sync errors, the log's, the control callback's; a failed step
 * leaves the control file at the previous checkpoint.
 */
int checkpoint_run(checkpointer *cp, bool forced, ckpt_result *out) WD_MUST_CHECK;

/* Checkpoints completed by cp (tests watch the thread through it). */
uint64_t checkpointer_count(checkpointer *cp);

#endif
