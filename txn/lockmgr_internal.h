/*
 * lockmgr_internal.h - what lockmgr.c and deadlock.c share and nobody else
 * includes: the lock manager's structures and the calls between the two
 * files. Invariants L1..L11 and protocols K1..K8: txn/LOCKS.md.
 *
 * Map: a lock_obj per locked (rel, key) lives in one of NPARTS partitions
 * (hash chains, a FIFO of waiters, counters, one mutex each); a lock_ent
 * per (owner, object) pair lives in its owner's slab and is found again
 * through the owner's local hash table, under the owner's own mutex. An
 * S row lock with no X request in its bucket (UNSH_BUCKETS by hash) is
 * unshared: an entry without an object, its name in the owner's arena,
 * until an X request on the row publishes it (LOCKS.md K8).
 */
#ifndef WALDEN_TXN_LOCKMGR_INTERNAL_H
#define WALDEN_TXN_LOCKMGR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "txn/lockmgr.h"

#define PART_BITS 6u
#define NPARTS (1u << PART_BITS)

/* The buckets of the unshared-S and X-request counts: bits 40.. of the
 * hash, which neither the partition (bits 0..5) nor a bucket table (bits
 * 6..) of fewer than 2^34 buckets uses. */
#define UNSH_BITS 12u
#define UNSH_BUCKETS (1u << UNSH_BITS)
static inline uint32_t unsh_bucket(uint64_t hash)
{
	return (uint32_t)(hash >> 40) & (UNSH_BUCKETS - 1);
}

typedef struct lock_obj lock_obj;
typedef struct lock_ent lock_ent;
typedef struct lock_part lock_part;

/* One locked (rel, key), or table rel when klen is LOCK_TABLE_KLEN (no
 * key bytes): exists while it has a holder or a waiter (L2). Every field
 * is guarded by its partition's mutex; rel, klen and key do not change
 * while the object exists. ns and nx count the S and X holders (the only
 * modes of a row); a table's conflicts are found by walking its holders. */
struct lock_obj {
	lock_obj *next;    /* hash chain, or the partition's free list */
	lock_ent *holders; /* granted entries, doubly linked */
	uint32_t rel;
	uint32_t ns;       /* S holders */
	uint16_t klen, kcap;
	uint8_t nx;        /* X holders: 0 or 1 (L1) */
	uint8_t key[];
};

/* The klen of a table's lock object: above LOCK_KEY_MAX, so no row's. */
#define LOCK_TABLE_KLEN 0xFFFFu

static inline bool obj_is_table(const lock_obj *ob)
{
	return ob->klen == LOCK_TABLE_KLEN;
}

/* An owner's state for one table it locked (K7; the owner's thread only):
 * the table mode held, the row locks taken there, and the row count at
 * which escalation is tried next. */
typedef struct lock_tab {
	uint32_t rel;
	uint32_t rows;
	uint32_t esc_at;
	uint8_t mode; /* 0 or a mode; the entry itself is in the slab */
} lock_tab;

/* One owner's lock on one object: allocated from the owner's slab, linked
 * into the object's holders while granted. An unshared S lock has no
 * object: its name (key bytes in the owner's arena) takes the place of the
 * links until a publication gives it both (owner's mutex, L5). */
struct lock_ent {
	lock_obj *obj;         /* NULL: unshared */
	lock_owner *owner;
	union {
		struct {
			lock_ent *next, *prev; /* the object's holders (partition mutex) */
		};
		struct {
			const uint8_t *key;
			uint32_t rel;
			uint16_t klen;
		} name;                /* unshared: what the entry locks */
	};
	uint64_t hash;         /* lock_hash of the object's name: compared
				* first by the local lookup, and it finds the
				* partition at release without hashing again */
	uint32_t lnext;        /* owner's local chain: slab index + 1, 0 ends */
	uint8_t mode;          /* 0 while pending, then LOCK_S or LOCK_X */
};

/* A block of the owner's name arena: the key bytes of its unshared
 * entries, which stay where they are until lock_release_all. */
typedef struct name_blk name_blk;
struct name_blk {
	name_blk *next;
	uint32_t cap, used;
	uint8_t bytes[];
};

struct lock_owner {
	uint64_t xid;
	/* The slab, the local table and the arena: changed by the owner's
	 * thread, looked into by publishers (which turn an unshared entry
	 * into a holder), all under mu (L5). */
	pthread_mutex_t mu;
	lock_ent **chunks;       /* chunk directory */
	uint32_t nchunks, dircap;
	uint32_t nent;           /* entries in use = locks held */
	uint32_t *local;         /* lcap buckets (a power of two): index + 1 */
	uint32_t lcap;
	name_blk *names;         /* the arena, newest block first */
	_Atomic uint32_t nunshared; /* entries still unshared (mu; read relaxed) */
	lock_tab *tabs;          /* the tables locked (K7), ntabs of tabcap:
				  * the owner's thread only */
	uint32_t ntabs, tabcap, tlast;
	_Atomic uint64_t fast;   /* one writer: the owner's thread */
	_Atomic uint64_t ugranted; /* unshared grants; one writer, the owner's */
	/* Waiting: guarded by wpart's mutex (K3). */
	pthread_cond_t cv;       /* on CLOCK_MONOTONIC */
	lock_part *wpart;
	lock_ent *went;          /* the entry being granted (held S: upgrade) */
	lock_owner *wnext, *wprev;
	uint8_t want;
	bool waiting;
	/* Detector scratch: guarded by holding every partition mutex (K4). */
	uint64_t seen;
	lock_owner *bfs_parent, *bfs_next;
	/* The manager's live or idle list: lm->mu. */
	lock_owner *next, *prev;
};

struct lock_part {
	pthread_mutex_t mu;
	lock_obj **buckets;
	uint32_t mask, nobj;
	lock_obj *free;
	uint32_t nfree;
	lock_owner *whead, *wtail; /* waiters on this partition's objects (L4) */
	uint64_t granted, waits, deadlocks, timeouts, held;
} __attribute__((aligned(64)));

struct lockmgr {
	lock_part parts[NPARTS];
	/* Per bucket of row hashes (unsh_bucket): X row requests pending or
	 * granted, and S row locks held unshared. Sequentially consistent, so
	 * of an X request and an unshared S on one bucket at least one sees
	 * the other's count (LOCKS.md K8). */
	_Atomic uint32_t xreq[UNSH_BUCKETS];
	_Atomic uint32_t unshared[UNSH_BUCKETS];
	_Atomic uint64_t published; /* unshared entries moved to the table */
	pthread_mutex_t mu;        /* the owner lists, fast_done, ugranted_done */
	lock_owner *live, *idle;
	uint32_t nidle;
	uint64_t fast_done;        /* fast acquires of destroyed owners */
	uint64_t ugranted_done;    /* unshared grants of destroyed owners */
	uint64_t epoch;            /* detector visits; every partition mutex */
	uint32_t escalate_rows;    /* K7 threshold, 0 = off; set before use */
	_Atomic uint64_t escalations;
};

/* The compatibility matrix (LOCKS.md "Table locks") as bit masks: bit b of
 * lock_conflicts[a] is set when modes a and b conflict. Mode 0 (none)
 * conflicts with nothing. For rows (S and X only) it is S-S compatible,
 * everything else in conflict. */
#define LM_BIT(m) (1u << (m))
static const uint8_t lock_conflicts[LOCK_NMODES] = {
	[LOCK_IS] = LM_BIT(LOCK_X),
	[LOCK_IX] = LM_BIT(LOCK_S) | LM_BIT(LOCK_SIX) | LM_BIT(LOCK_X),
	[LOCK_S] = LM_BIT(LOCK_IX) | LM_BIT(LOCK_SIX) | LM_BIT(LOCK_X),
	[LOCK_SIX] = LM_BIT(LOCK_IX) | LM_BIT(LOCK_S) | LM_BIT(LOCK_SIX) | LM_BIT(LOCK_X),
	[LOCK_X] = LM_BIT(LOCK_IS) | LM_BIT(LOCK_IX) | LM_BIT(LOCK_S) | LM_BIT(LOCK_SIX) |
		   LM_BIT(LOCK_X),
};

/* The grants (lockmgr.c) and the edges of the wait-for graph (deadlock.c)
 * both ask this. */
static inline bool modes_conflict(int a, int b)
{
	return (lock_conflicts[a] & LM_BIT(b)) != 0;
}

/* The mode's name in error details and traces. */
static inline const char *lock_mode_name(int m)
{
	static const char *const names[LOCK_NMODES] = {"none", "S", "X", "IS", "IX", "SIX"};
	return m > 0 && m < LOCK_NMODES ? names[m] : "?";
}

/* ---- lockmgr.c ---- */

/* o stops waiting without its grant (K5 step 3). Caller holds o's
 * partition mutex. */
void lockmgr_waiter_leave(lock_owner *o);

/* ---- deadlock.c ---- */

/* K4: WD_EDEADLOCK if a cycle of the wait-for graph runs through o, which
 * then no longer waits; else 0. Caller holds no partition mutex. */
int deadlock_detect(lockmgr *lm, lock_owner *o) WD_MUST_CHECK;

/* K3 step 4: sets the detail of o's timeout (the request and who blocks
 * it) and returns WD_ETIMEDOUT. Caller holds o's partition mutex. */
int deadlock_report_timeout(lock_owner *o, uint32_t timeout_ms) WD_MUST_CHECK;

#endif
