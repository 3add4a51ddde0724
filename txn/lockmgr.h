/*
 * lockmgr.h - row and table locks: strict two-phase shared (S) and
 * exclusive (X) locks on (rel, key) under intention locks (IS, IX) on
 * table rel, with escalation to a table S lock; held until the owner
 * releases everything at commit or abort; waiting with deadlock detection
 * (a wait-for graph) and an optional timeout. Invariants and protocols:
 * txn/LOCKS.md.
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

/*
 * Modes. Rows are locked S or X; tables (hierarchical locking, LOCKS.md
 * "Table locks") also IS, IX and SIX. LOCK_S and LOCK_X keep their values
 * 1 and 2; 0 is never a mode.
 */
enum { LOCK_S = 1, LOCK_X = 2, LOCK_IS = 3, LOCK_IX = 4, LOCK_SIX = 5 };
#define LOCK_NMODES 6 /* array size: modes are 1..5 */

/* The longest key a lock names, in bytes (longer: WD_EINVAL). */
#define LOCK_KEY_MAX 8192u

typedef struct lockmgr lockmgr;

/* A new lock manager with nothing locked and lock escalation off.
 * WD_ENOMEM. */
int lockmgr_create(lockmgr **out) WD_MUST_CHECK;

/* Lock escalation (LOCKS.md K7): once an owner holds `rows` row locks on
 * one table and asks for another S row lock there, lock_row tries the
 * table's S lock (SIX if it holds IX) without waiting. 0 turns it off.
 * Call before any owner is created. */
void lockmgr_set_escalation(lockmgr *lm, uint32_t rows);

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
 * without a shared mutex or an allocation. An S request with no X request
 * on its bucket of rows is granted unshared, in o alone (LOCKS.md K8); an
 * X request first publishes the unshared S locks of its row, so it sees
 * them like any other. Waiters are granted in FIFO order.
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

/*
 * A row lock the hierarchical way (LOCKS.md K7), as txn/ takes them: mode
 * (LOCK_S or LOCK_X) on (rel, key) for o, after the intention lock on
 * table rel (IS before S, IX before X; a conversion if o holds another
 * table mode). A table lock of o that covers the row (S or SIX for a row
 * S, X for both) answers at once without a row lock. After a new row lock,
 * escalation may take the table's S lock (lockmgr_set_escalation). Waits,
 * timeouts and errors as lock_acquire, for the table lock and the row lock
 * alike (a table lock granted before a row lock failed stays held).
 */
int lock_row(lockmgr *lm, lock_owner *o, uint32_t rel, const void *key, uint32_t klen,
	     int mode, uint32_t timeout_ms) WD_MUST_CHECK;

/*
 * The table lock of rel in mode (any of the five) for o, as a conversion
 * to the least mode covering both what o holds and mode (S and IX give
 * SIX). Waits and errors as lock_acquire. Compatibility: IS with all but
 * X; IX with IS and IX; S with IS and S; SIX with IS; X with none.
 */
int lock_table(lockmgr *lm, lock_owner *o, uint32_t rel, int mode,
	       uint32_t timeout_ms) WD_MUST_CHECK;

/* Whether o holds at least mode on table rel (tests). */
bool lock_table_held(lockmgr *lm, const lock_owner *o, uint32_t rel, int mode);

/* Releases every lock o holds (linear in their number) and grants the
 * waiters that can now go. o stays usable. Precondition: o is not
 * waiting. */
void lock_release_all(lockmgr *lm, lock_owner *o);

/* Whether o holds at least mode on (rel, key), by a row lock or by a table
 * lock on rel that covers it (assertions and tests). Call from o's thread,
 * or while o is not running. */
bool lock_held(lockmgr *lm, lock_owner *o, uint32_t rel, const void *key, uint32_t klen,
	       int mode);

/*
 * Counters since lockmgr_create (each summed under its own mutex, so a
 * snapshot is not atomic across them while threads run):
 *   acquired  requests granted (fast ones included): lock_acquire and
 *             lock_table calls, and the intention, row and escalation
 *             requests of lock_row
 *   fast      of those, answered by a lock the owner already held
 *   unshared  of those, S row locks granted unshared (in the owner alone)
 *   published unshared S locks an X request moved to the shared table
 *   waits     calls that went to sleep waiting (deadlock victims do not)
 *   deadlocks calls that returned WD_EDEADLOCK
 *   timeouts  calls that returned WD_ETIMEDOUT
 *   held_now  (owner, lock) pairs held at this moment (table locks and
 *             unshared ones too)
 *   escalations  table S (or SIX) locks taken by escalation (K7)
 */
typedef struct lock_stats {
	uint64_t acquired, fast, unshared, published, waits, deadlocks, timeouts, held_now,
		escalations;
} lock_stats;
void lockmgr_stats(lockmgr *lm, lock_stats *out);

#endif
