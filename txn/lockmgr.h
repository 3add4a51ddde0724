/*
 * lockmgr.h - row locks: strict two-phase shared (S) and exclusive (X)
 * locks on (rel, key), held until the owner releases everything at commit
 * or abort; waiting with deadlock detection (a wait-for graph) and an
 * optional timeout. Invariants and protocols: txn/LOCKS.md.
 *
 * Threads: a lockmgr is shared by every thread; a lock_owner belongs to one
 * transaction and is used by one thread at a time (lock_held and the
 * statistics may be read from anywhere the owner is not running).
 */
#ifndef WALDEN_TXN_LOCKMGR_H
#define WALDEN_TXN_LOCKMGR_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/error.h"

enum { LOCK_S = 1, LOCK_X = 2 };

/* The longest key a lock names, in bytes (longer: WD_EINVAL). */
#define LOCK_KEY_MAX 8192u

typedef struct lockmgr lockmgr;

/* A new lock manager with nothing locked. WD_ENOMEM. */
int lockmgr_create(lockmgr **out) WD_MUST_CHECK;

/* Frees lm and every owner still allocated from it. Precondition: no owner
 * holds or waits, and no owner of lm is used afterwards. NULL is a no-op. */
void lockmgr_destroy(lockmgr *lm);

/* The locks of one transaction; xid names it in error details. */
typedef struct lock_owner lock_owner;

/* A new owner holding nothing (recycled from lm when one is free, so
 * cheap). WD_ENOMEM. */
int lock_owner_create(lockmgr *lm, uint64_t xid, lock_owner **out) WD_MUST_CHECK;

/* Releases everything o holds (lock_release_all), then frees o. NULL is a
 * no-op. Precondition: o is not waiting. */
void lock_owner_destroy(lockmgr *lm, lock_owner *o);

/*
 * Acquires mode (LOCK_S or LOCK_X) on (rel, key[0..klen)) for o, waiting
 * while another owner holds a conflicting lock (S-S compatible, everything
 * else conflicts; an owner never conflicts with itself; S then X by the same
 * owner is an upgrade, which waits for the other S holders and goes before
 * every other waiter). Already holding an equal or stronger mode: 0 at once,
 * without taking a mutex or allocating. Waiters are granted in FIFO order.
 * timeout_ms 0 = wait without limit; LOCK_NOWAIT = do not wait: WD_EBUSY
 * (nothing changed, no detail set) if the lock cannot be granted at once.
 *
 * Returns 0 (granted: held until lock_release_all); WD_EDEADLOCK if waiting
 * would close a cycle in the wait-for graph (o is the victim: not granted,
 * not waiting, its other locks stay held; the caller rolls back and calls
 * lock_release_all); WD_ETIMEDOUT after timeout_ms (nothing changed);
 * WD_ENOMEM; WD_EINVAL (bad mode, klen > LOCK_KEY_MAX, NULL key with
 * klen > 0). The detail names rel, the key's first bytes, the mode and the
 * xids of the blockers or of the cycle.
 */
#define LOCK_NOWAIT UINT32_MAX
int lock_acquire(lockmgr *lm, lock_owner *o, uint32_t rel, const void *key, uint32_t klen,
		 int mode, uint32_t timeout_ms) WD_MUST_CHECK;

/* Releases every lock o holds (linear in their number) and grants the
 * waiters that can now go. o stays usable. Precondition: o is not
 * waiting. */
void lock_release_all(lockmgr *lm, lock_owner *o);

/* Whether o holds at least mode on (rel, key) (assertions and tests). Call
 * from o's thread, or while o is not running. */
bool lock_held(lockmgr *lm, const lock_owner *o, uint32_t rel, const void *key, uint32_t klen,
	       int mode);

/*
 * Counters since lockmgr_create (each summed under its own mutex, so a
 * snapshot is not atomic across them while threads run):
 *   acquired  lock_acquire calls that returned 0 (fast ones included)
 *   fast      of those, answered by a lock the owner already held
 *   waits     calls that went to sleep waiting (deadlock victims do not)
 *   deadlocks calls that returned WD_EDEADLOCK
 *   timeouts  calls that returned WD_ETIMEDOUT
 *   held_now  (owner, lock) pairs held at this moment
 */
typedef struct lock_stats {
	uint64_t acquired, fast, waits, deadlocks, timeouts, held_now;
} lock_stats;
void lockmgr_stats(lockmgr *lm, lock_stats *out);

#endif
