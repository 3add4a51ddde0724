/*
 * lockmgr.c - row and table locks (strict two-phase S/X locks on (rel,
 * key) under IS/IX/S/SIX/X locks on table rel): lock_acquire, lock_row,
 * lock_table, lock_release_all, lock_held, owners, statistics; a wait runs
 * the deadlock detector of deadlock.c. Invariants L1..L11 and protocols
 * K1..K8: txn/LOCKS.md. The structures: lockmgr_internal.h.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/trace.h"
#include "txn/lockmgr_internal.h"

#define PART_MIN_BUCKETS 16u  /* a power of two */
#define PART_FREE_MAX 32u     /* recycled lock objects kept per partition */
#define OBJ_RECYCLE_KCAP 64u  /* objects with more key room go back to malloc */
#define ENT_CHUNK_SHIFT 8u
#define ENT_CHUNK (1u << ENT_CHUNK_SHIFT) /* entries per slab chunk */
#define LOCAL_MIN 16u         /* first size of an owner's local table */
#define LOCAL_KEEP 1024u      /* a recycled owner keeps a table this small */
#define DIR_KEEP 16u          /* ... and a chunk directory this small */
#define OWNER_IDLE_MAX 64u    /* recycled owners kept by the manager */
#define NAME_BLK 4096u        /* bytes of an arena block (a longer key: its own) */

/* A request, its key hashed once. */
typedef struct lock_req {
	uint64_t hash;
	const uint8_t *key;
	uint32_t rel, klen;
	int mode;
	/* a conversion that keeps its place behind conflicting waiters
	 * (escalation, K7 step 4) instead of going before them (L4) */
	bool behind_waiters;
} lock_req;

/* ---- hashing ---- */

static inline uint64_t hash_step(uint64_t h, uint64_t w)
{
	h ^= w * 0x9E3779B97F4A7C15ull;
	h = (h << 27) | (h >> 37);
	return h * 0xC2B2AE3D27D4EB4Full;
}

/* The key bytes of an object or request: none for a table's. */
static inline uint32_t key_bytes(uint32_t klen)
{
	return klen == LOCK_TABLE_KLEN ? 0 : klen;
}

/* A 64-bit hash of (rel, key), eight bytes a step (a table's lock: of rel
 * and LOCK_TABLE_KLEN). The low PART_BITS pick the partition; the bits
 * above pick buckets. */
static uint64_t lock_hash(uint32_t rel, const uint8_t *key, uint32_t klen)
{
	uint64_t h = 0x243F6A8885A308D3ull ^ ((uint64_t)rel << 32 | klen);
	uint64_t w;
	uint32_t i = 0;
	klen = key_bytes(klen);
	for (; i + 8 <= klen; i += 8) {
		memcpy(&w, key + i, 8);
		h = hash_step(h, w);
	}
	if (i < klen) {
		w = 0;
		memcpy(&w, key + i, klen - i);
		h = hash_step(h, w);
	}
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDull;
	return h ^ (h >> 33);
}

static uint64_t obj_hash(const lock_obj *ob)
{
	return lock_hash(ob->rel, ob->key, ob->klen);
}

static bool obj_matches(const lock_obj *ob, const lock_req *r)
{
	return ob->rel == r->rel && ob->klen == r->klen &&
	       (key_bytes(r->klen) == 0 || memcmp(ob->key, r->key, r->klen) == 0);
}

static lock_part *part_of(lockmgr *lm, uint64_t hash)
{
	return &lm->parts[hash & (NPARTS - 1)];
}

/* ---- partitions: the objects' hash table (caller holds the mutex) ---- */

/* Rehashes p into nb buckets. Best effort: without memory the chains just
 * stay longer. */
static void part_resize(lock_part *p, uint32_t nb)
{
	lock_obj **nbk = calloc(nb, sizeof *nbk);
	if (!nbk)
		return;
	for (uint32_t b = 0; b <= p->mask; b++) {
		for (lock_obj *ob = p->buckets[b], *next; ob; ob = next) {
			uint32_t i = (uint32_t)(obj_hash(ob) >> PART_BITS) & (nb - 1);
			next = ob->next;
			ob->next = nbk[i];
			nbk[i] = ob;
		}
	}
	free(p->buckets);
	p->buckets = nbk;
	p->mask = nb - 1;
}

/* A recycled object with room for klen key bytes, or a new one; NULL
 * without memory. */
static lock_obj *obj_alloc(lock_part *p, uint32_t klen)
{
	lock_obj *ob = p->free;
	uint32_t kcap = klen < 8 ? 8 : (klen + 7u) & ~7u;
	if (ob && ob->kcap >= klen) {
		p->free = ob->next;
		p->nfree--;
		return ob;
	}
	ob = malloc(offsetof(lock_obj, key) + kcap);
	if (ob)
		ob->kcap = (uint16_t)kcap;
	return ob;
}

static void obj_free(lock_part *p, lock_obj *ob)
{
	if (ob->kcap <= OBJ_RECYCLE_KCAP && p->nfree < PART_FREE_MAX) {
		ob->next = p->free;
		p->free = ob;
		p->nfree++;
		return;
	}
	free(ob);
}

/* The object of r in p, created (no holder, no waiter) if absent.
 * WD_ENOMEM. */
static int obj_get(lock_part *p, const lock_req *r, lock_obj **out)
{
	lock_obj **b = &p->buckets[(r->hash >> PART_BITS) & p->mask];
	lock_obj *ob;
	for (ob = *b; ob; ob = ob->next)
		if (obj_matches(ob, r))
			goto out;
	ob = obj_alloc(p, key_bytes(r->klen));
	if (!ob)
		return err_set(WD_ENOMEM, "lock manager: no memory for a lock on rel %u", r->rel);
	ob->next = *b;
	ob->holders = NULL;
	ob->rel = r->rel;
	ob->ns = 0;
	ob->nx = 0;
	ob->klen = (uint16_t)r->klen;
	if (key_bytes(r->klen))
		memcpy(ob->key, r->key, r->klen);
	*b = ob;
	if (++p->nobj > 2 * (p->mask + 1))
		part_resize(p, 2 * (p->mask + 1));
out:
	*out = ob;
	return 0;
}

/* Whether ob has a waiter: a walk of the partition's waiters, which are
 * few (a wait is rare), so objects need no queue of their own (L4). */
static bool obj_has_waiters(const lock_part *p, const lock_obj *ob)
{
	for (const lock_owner *w = p->whead; w; w = w->wnext)
		if (w->went->obj == ob)
			return true;
	return false;
}

/* Frees ob if nobody holds or waits for it any more (L2); hash is its
 * hash. Shrinks the table once it is mostly empty. */
static void obj_drop_if_unused(lock_part *p, lock_obj *ob, uint64_t hash)
{
	lock_obj **link = &p->buckets[(hash >> PART_BITS) & p->mask];
	if (ob->holders || obj_has_waiters(p, ob))
		return;
	while (*link != ob)
		link = &(*link)->next;
	*link = ob->next;
	obj_free(p, ob);
	p->nobj--;
	if (p->mask + 1 > PART_MIN_BUCKETS && p->nobj < (p->mask + 1) / 8)
		part_resize(p, (p->mask + 1) / 2);
}

/* ---- an owner's slab, local table and arena (its mutex, L5) ---- */

static inline void owner_lock(lock_owner *o)
{
	pthread_mutex_lock(&o->mu);
}

static inline void owner_unlock(lock_owner *o)
{
	pthread_mutex_unlock(&o->mu);
}

/* Adds delta to one of o's counters. Each has a single writer at a time
 * (the owner's thread, or whoever holds o->mu), so no read-modify-write is
 * needed; lockmgr_stats reads them from other threads (L8). */
static inline void count_add64(_Atomic uint64_t *c, int64_t delta)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)delta,
			      memory_order_relaxed);
}

static inline void count_add32(_Atomic uint32_t *c, int32_t delta)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint32_t)delta,
			      memory_order_relaxed);
}

static inline lock_ent *ent_at(const lock_owner *o, uint32_t i)
{
	return &o->chunks[i >> ENT_CHUNK_SHIFT][i & (ENT_CHUNK - 1)];
}

static inline uint32_t local_bucket(uint64_t hash, uint32_t lcap)
{
	return (uint32_t)(hash >> PART_BITS) & (lcap - 1);
}

/* Whether e is o's lock on r's row or table: by its object's name, which
 * does not change while o holds it (L2), or by its own while unshared. */
static bool ent_matches(const lock_ent *e, const lock_req *r)
{
	if (e->obj)
		return obj_matches(e->obj, r);
	return e->name.rel == r->rel && e->name.klen == r->klen &&
	       (r->klen == 0 || memcmp(e->name.key, r->key, r->klen) == 0);
}

/* The entry of r that o holds, or NULL. Caller holds o->mu (L5). */
static lock_ent *local_find(const lock_owner *o, const lock_req *r)
{
	if (!o->lcap)
		return NULL;
	for (uint32_t i = o->local[local_bucket(r->hash, o->lcap)]; i;) {
		lock_ent *e = ent_at(o, i - 1);
		if (e->hash == r->hash && ent_matches(e, r))
			return e;
		i = e->lnext;
	}
	return NULL;
}

static void local_insert(lock_owner *o, uint32_t idx, uint64_t hash)
{
	uint32_t *b = &o->local[local_bucket(hash, o->lcap)];
	lock_ent *e = ent_at(o, idx);
	e->lnext = *b;
	e->hash = hash;
	*b = idx + 1;
}

/* Doubles the local table (rehashing every held entry). WD_ENOMEM. */
static int local_grow(lock_owner *o)
{
	uint32_t ncap = o->lcap ? 2 * o->lcap : LOCAL_MIN;
	uint32_t *nb = calloc(ncap, sizeof *nb);
	if (!nb)
		return err_set(WD_ENOMEM, "lock manager: no memory for %u locks of xid %llu",
			       ncap, (unsigned long long)o->xid);
	free(o->local);
	o->local = nb;
	o->lcap = ncap;
	for (uint32_t i = 0; i < o->nent; i++)
		local_insert(o, i, ent_at(o, i)->hash);
	return 0;
}

/* Adds a chunk of ENT_CHUNK entries to the slab. WD_ENOMEM. */
static int chunk_add(lock_owner *o)
{
	lock_ent *c;
	if (o->nchunks == o->dircap) {
		uint32_t ncap = o->dircap ? 2 * o->dircap : 4;
		lock_ent **d = realloc(o->chunks, ncap * sizeof *d);
		if (!d)
			goto nomem;
		o->chunks = d;
		o->dircap = ncap;
	}
	if (!(c = malloc(ENT_CHUNK * sizeof *c)))
		goto nomem;
	o->chunks[o->nchunks++] = c;
	return 0;
nomem:
	return err_set(WD_ENOMEM, "lock manager: no memory for the locks of xid %llu",
		       (unsigned long long)o->xid);
}

/* The next free entry of o's slab, with room made for it in the local
 * table; it counts only once ent_commit'ed (K1 step 2). WD_ENOMEM. */
static int ent_reserve(lock_owner *o, lock_ent **out)
{
	int rc = 0;
	if (o->nent + 1 > o->lcap)
		rc = local_grow(o);
	if (rc == 0 && o->nent == o->nchunks << ENT_CHUNK_SHIFT)
		rc = chunk_add(o);
	if (rc == 0)
		*out = ent_at(o, o->nent);
	return rc;
}

/* The reserved entry is granted: o holds it until lock_release_all. */
static void ent_commit(lock_owner *o, uint64_t hash)
{
	local_insert(o, o->nent, hash);
	o->nent++;
}

/* A copy of key[0..klen) in o's arena, where it stays until the arena is
 * emptied (lock_release_all); NULL without memory. */
static const uint8_t *name_copy(lock_owner *o, const uint8_t *key, uint32_t klen)
{
	name_blk *b = o->names;
	if (!b || b->cap - b->used < klen) {
		uint32_t cap = klen > NAME_BLK ? klen : NAME_BLK;
		if (!(b = malloc(offsetof(name_blk, bytes) + cap)))
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = o->names;
		o->names = b;
	}
	if (klen)
		memcpy(b->bytes + b->used, key, klen);
	b->used += klen;
	return b->bytes + b->used - klen;
}

/* Empties o's arena, keeping one block of the usual size for the next
 * transaction. */
static void names_clear(lock_owner *o)
{
	name_blk *keep = NULL;
	for (name_blk *b = o->names, *next; b; b = next) {
		next = b->next;
		if (!keep && b->cap == NAME_BLK) {
			keep = b;
			continue;
		}
		free(b);
	}
	if (keep) {
		keep->next = NULL;
		keep->used = 0;
	}
	o->names = keep;
}

/* ---- granting (caller holds the partition mutex) ---- */

/* Whether a request for want through entry self (pending: mode 0, or the
 * mode held, which a conversion replaces) conflicts with the locks granted
 * to other owners. A row counts its S and X holders; a table's holders are
 * few (one per transaction using it) and are walked. */
static bool granted_conflict(const lock_obj *ob, const lock_ent *self, int want)
{
	if (obj_is_table(ob)) {
		for (const lock_ent *h = ob->holders; h; h = h->next)
			if (h != self && modes_conflict(h->mode, want))
				return true;
		return false;
	}
	if (want == LOCK_S)
		return ob->nx > 0;
	return ob->nx > 0 || ob->ns > (self->mode == LOCK_S ? 1u : 0u);
}

/* Whether a new request must wait (K1 step 4): a conflicting holder, or,
 * unless it is a conversion that may go first (L4; an escalation may not:
 * K7 step 4), a waiter of ob whose request conflicts (FIFO). */
static bool must_wait(const lock_part *p, const lock_ent *e, int want, bool behind_waiters)
{
	const lock_obj *ob = e->obj;
	if (granted_conflict(ob, e, want))
		return true;
	if (e->mode && !behind_waiters)
		return false; /* a conversion goes before every waiter */
	for (const lock_owner *w = p->whead; w; w = w->wnext)
		if (w->went->obj == ob && modes_conflict(w->want, want))
			return true;
	return false;
}

/* The S and X holder counts follow a grant or release of mode (the
 * intention modes and SIX, tables' only, are not counted: L1). */
static void count_mode(lock_obj *ob, int mode, int delta)
{
	if (mode == LOCK_S)
		ob->ns = (uint32_t)((int64_t)ob->ns + delta);
	else if (mode == LOCK_X)
		ob->nx = (uint8_t)(ob->nx + delta);
}

/* Links e (its object set) into its object's holders. */
static void holder_link(lock_part *p, lock_ent *e)
{
	lock_obj *ob = e->obj;
	e->prev = NULL;
	e->next = ob->holders;
	if (ob->holders)
		ob->holders->prev = e;
	ob->holders = e;
	p->held++;
}

/* Grants want to e: a new holder, or a conversion (S raised to X; a table
 * mode raised to a stronger one). */
static void ent_grant(lock_part *p, lock_ent *e, int want)
{
	lock_obj *ob = e->obj;
	if (e->mode)
		count_mode(ob, e->mode, -1);
	else
		holder_link(p, e);
	count_mode(ob, want, +1);
	e->mode = (uint8_t)want;
	p->granted++;
}

static void ent_ungrant(lock_part *p, lock_ent *e)
{
	lock_obj *ob = e->obj;
	if (e->prev)
		e->prev->next = e->next;
	else
		ob->holders = e->next;
	if (e->next)
		e->next->prev = e->prev;
	count_mode(ob, e->mode, -1);
	p->held--;
}

/* Queues o for want on e's object: a conversion at the head, others at
 * the tail (L4). */
static void waiter_add(lock_part *p, lock_owner *o, lock_ent *e, int want)
{
	o->wpart = p;
	o->went = e;
	o->want = (uint8_t)want;
	o->waiting = true;
	if (e->mode) {
		o->wprev = NULL;
		o->wnext = p->whead;
		*(p->whead ? &p->whead->wprev : &p->wtail) = o;
		p->whead = o;
	} else {
		o->wnext = NULL;
		o->wprev = p->wtail;
		*(p->wtail ? &p->wtail->wnext : &p->whead) = o;
		p->wtail = o;
	}
}

static void waiter_remove(lock_part *p, lock_owner *o)
{
	*(o->wprev ? &o->wprev->wnext : &p->whead) = o->wnext;
	*(o->wnext ? &o->wnext->wprev : &p->wtail) = o->wprev;
	o->waiting = false;
}

/*
 * K5: after ob lost a holder or a waiter, grants in queue order every waiter
 * of ob that no holder and no earlier waiter of ob blocks, and wakes it.
 * Afterwards every waiter left is blocked by someone (L3).
 */
static void grant_waiters(lock_part *p, lock_obj *ob)
{
	unsigned queued = 0; /* the modes of earlier waiters of ob that stay */
	for (lock_owner *w = p->whead, *next; w; w = next) {
		next = w->wnext;
		if (w->went->obj != ob)
			continue;
		if (granted_conflict(ob, w->went, w->want) ||
		    (lock_conflicts[w->want] & queued)) {
			if (w->want == LOCK_X)
				return; /* it blocks every later waiter */
			queued |= LM_BIT(w->want);
			continue;
		}
		waiter_remove(p, w);
		ent_grant(p, w->went, w->want);
		pthread_cond_signal(&w->cv);
	}
}

/* o stops waiting without its grant (timeout or deadlock): it leaves the
 * queue, those behind it are re-examined, its object goes if unused. */
void lockmgr_waiter_leave(lock_owner *o)
{
	lock_part *p = o->wpart;
	lock_obj *ob = o->went->obj;
	waiter_remove(p, o);
	grant_waiters(p, ob);
	if (!ob->holders)
		obj_drop_if_unused(p, ob, o->went->hash);
}

/* ---- waiting (K3) ---- */

/* Sleeps until o is granted (0) or, with a deadline, until it passes
 * (WD_ETIMEDOUT: o leaves the queue). A grant that races with the timeout
 * wins. */
static int sleep_until_granted(lock_owner *o, const struct timespec *deadline,
			       uint32_t timeout_ms)
{
	lock_part *p = o->wpart;
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	while (o->waiting) {
		if (!deadline) {
			pthread_cond_wait(&o->cv, &p->mu);
		} else if (pthread_cond_timedwait(&o->cv, &p->mu, deadline) == ETIMEDOUT &&
			   o->waiting) {
			rc = deadlock_report_timeout(o, timeout_ms);
			p->timeouts++;
			lockmgr_waiter_leave(o);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* K3: o is queued. The deadline counts from now; then deadlock detection,
 * then sleep. */
static int wait_for_grant(lockmgr *lm, lock_owner *o, uint32_t timeout_ms)
{
	struct timespec deadline;
	int rc;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	if ((rc = deadlock_detect(lm, o)) != 0)
		return rc;
	rc = sleep_until_granted(o, timeout_ms ? &deadline : NULL, timeout_ms);
	if (rc)
		TRACE(TR_TXN, "lock %s", wd_last_error());
	return rc;
}

/*
 * K1 steps 2-6: the request is not answered by a lock o holds. held is o's
 * entry on the object if it holds a weaker mode (a conversion to r->mode),
 * else NULL. Called with o->mu held; returns with it released (it is let
 * go for the wait: a publisher may need it meanwhile, K8).
 */
static int acquire_slow(lockmgr *lm, lock_owner *o, const lock_req *r, lock_ent *held,
			uint32_t timeout_ms)
{
	lock_part *p = part_of(lm, r->hash);
	lock_ent *e = held;
	lock_obj *ob = NULL;
	bool wait = false;
	int rc = 0;
	if (!held && (rc = ent_reserve(o, &e)) != 0) {
		owner_unlock(o);
		return rc;
	}
	pthread_mutex_lock(&p->mu);
	if (!held && (rc = obj_get(p, r, &ob)) == 0)
		*e = (lock_ent){.obj = ob, .owner = o, .hash = r->hash, .mode = 0};
	if (rc == 0 && !(wait = must_wait(p, e, r->mode, r->behind_waiters))) {
		ent_grant(p, e, r->mode);
	} else if (rc == 0 && timeout_ms == LOCK_NOWAIT) {
		wait = false; /* the caller waits later, after letting go of pins */
		rc = WD_EBUSY;
		if (!held)
			obj_drop_if_unused(p, ob, r->hash);
	} else if (rc == 0) {
		waiter_add(p, o, e, r->mode);
	}
	pthread_mutex_unlock(&p->mu);
	if (wait) {
		owner_unlock(o);
		rc = wait_for_grant(lm, o, timeout_ms);
		owner_lock(o);
	}
	if (rc == 0 && !held)
		ent_commit(o, r->hash);
	owner_unlock(o);
	return rc;
}

/* ---- unshared S row locks (K8) ---- */

/* K8 step 2: an S request on a row o holds nothing on, while no X request
 * is counted on its bucket: granted in o alone (an entry without an
 * object, its name in o's arena). false: the request goes the shared way
 * (an X request counted, or no memory here - K1 then reports it). Caller
 * holds o->mu. */
static bool try_unshared(lockmgr *lm, lock_owner *o, const lock_req *r)
{
	uint32_t b = unsh_bucket(r->hash);
	const uint8_t *name;
	lock_ent *e;
	/* raise our count before reading theirs: an X request raises its
	 * count before reading ours, so one of the two sees the other */
	atomic_fetch_add(&lm->unshared[b], 1);
	if (atomic_load(&lm->xreq[b]) != 0 || ent_reserve(o, &e) != 0 ||
	    !(name = name_copy(o, r->key, r->klen))) {
		atomic_fetch_sub(&lm->unshared[b], 1);
		return false;
	}
	*e = (lock_ent){.obj = NULL, .owner = o, .name = {name, r->rel, (uint16_t)r->klen},
			.mode = LOCK_S};
	ent_commit(o, r->hash);
	count_add32(&o->nunshared, 1);
	count_add64(&o->ugranted, 1);
	return true;
}

/* Moves o's unshared entry e (r's row) into the shared table: the row's
 * object, found or made, gets e as an S holder. WD_ENOMEM. Caller holds
 * o->mu, not a partition mutex. */
static int ent_publish(lockmgr *lm, lock_owner *o, lock_ent *e, const lock_req *r)
{
	lock_part *p = part_of(lm, r->hash);
	lock_obj *ob;
	int rc;
	pthread_mutex_lock(&p->mu);
	if ((rc = obj_get(p, r, &ob)) == 0) {
		e->obj = ob; /* the name is the object's from here on */
		holder_link(p, e);
		count_mode(ob, LOCK_S, +1);
	}
	pthread_mutex_unlock(&p->mu);
	if (rc == 0) {
		atomic_fetch_sub(&lm->unshared[unsh_bucket(r->hash)], 1);
		count_add32(&o->nunshared, -1);
		atomic_fetch_add_explicit(&lm->published, 1, memory_order_relaxed);
	}
	return rc;
}

/* K8 step 3: an X request on r's row, counted on its bucket, found
 * unshared S locks counted there: publishes every live owner's unshared
 * lock on the row (the requester's own included). Caller holds no mutex. */
static int publish_row(lockmgr *lm, const lock_req *r)
{
	int rc = 0;
	pthread_mutex_lock(&lm->mu);
	for (lock_owner *o = lm->live; o && rc == 0; o = o->next) {
		lock_ent *e;
		owner_lock(o);
		if ((e = local_find(o, r)) != NULL && !e->obj)
			rc = ent_publish(lm, o, e, r);
		owner_unlock(o);
	}
	pthread_mutex_unlock(&lm->mu);
	return rc;
}

/* Checks a row request and fills r, all but its hash (req_hash). */
static int req_check(lock_req *r, uint32_t rel, const void *key, uint32_t klen, int mode)
{
	if (mode != LOCK_S && mode != LOCK_X)
		return err_set(WD_EINVAL, "lock on rel %u: bad mode %d", rel, mode);
	if (klen > LOCK_KEY_MAX || (!key && klen))
		return err_set(WD_EINVAL, "lock on rel %u: bad key (%u bytes, at most %u)",
			       rel, klen, LOCK_KEY_MAX);
	*r = (lock_req){.key = key, .rel = rel, .klen = klen, .mode = mode};
	return 0;
}

static void req_hash(lock_req *r)
{
	r->hash = lock_hash(r->rel, r->key, r->klen);
}

static int req_init(lock_req *r, uint32_t rel, const void *key, uint32_t klen, int mode)
{
	int rc = req_check(r, rel, key, klen, mode);
	if (rc == 0)
		req_hash(r);
	return rc;
}

/* ---- modes: which covers which ---- */

/* Bit b of lock_covers_mask[a]: holding a grants everything b would (X
 * covers all; SIX covers IS, IX, S; S and IX each cover IS). */
static const uint8_t lock_covers_mask[LOCK_NMODES] = {
	[LOCK_IS] = LM_BIT(LOCK_IS),
	[LOCK_IX] = LM_BIT(LOCK_IS) | LM_BIT(LOCK_IX),
	[LOCK_S] = LM_BIT(LOCK_IS) | LM_BIT(LOCK_S),
	[LOCK_SIX] = LM_BIT(LOCK_IS) | LM_BIT(LOCK_IX) | LM_BIT(LOCK_S) | LM_BIT(LOCK_SIX),
	[LOCK_X] = 0x3E, /* every mode 1..5 */
};

static inline bool mode_covers(int held, int want)
{
	return (lock_covers_mask[held] & LM_BIT(want)) != 0;
}

/* The weakest mode covering both a (0: none) and b: what a conversion
 * asks for. S and IX (either way round) give SIX. */
static int mode_join(int a, int b)
{
	static const uint8_t by_strength[] = {LOCK_IS, LOCK_IX, LOCK_S, LOCK_SIX, LOCK_X};
	if (a == 0)
		return b;
	for (unsigned i = 0; i < sizeof by_strength; i++)
		if (mode_covers(by_strength[i], a) && mode_covers(by_strength[i], b))
			return by_strength[i];
	return LOCK_X;
}

static void count_fast(lock_owner *o)
{
	count_add64(&o->fast, 1);
}

/*
 * K1 on a row, with K8: an X request is counted on its row's bucket and
 * publishes the row's unshared S locks first; step 1 then looks in o's
 * table; an S request on a row o holds nothing on may be granted unshared;
 * the rest is K1 steps 2-6 (acquire_slow). *added: a new entry (not a hit,
 * not a conversion).
 */
static int row_acquire(lockmgr *lm, lock_owner *o, const lock_req *r, uint32_t timeout_ms,
		       bool *added)
{
	uint32_t b = unsh_bucket(r->hash);
	bool x = r->mode == LOCK_X;
	lock_ent *e;
	int rc = 0;
	*added = false;
	if (x) {
		/* counted until the release of the X lock, or the failure */
		atomic_fetch_add(&lm->xreq[b], 1);
		if (atomic_load(&lm->unshared[b]) != 0 && (rc = publish_row(lm, r)) != 0)
			goto out;
	}
	owner_lock(o);
	e = local_find(o, r);
	if (e && mode_covers(e->mode, r->mode)) {
		owner_unlock(o);
		count_fast(o);
		if (x) /* the X held is counted already */
			atomic_fetch_sub(&lm->xreq[b], 1);
		return 0;
	}
	if (!x && !e && try_unshared(lm, o, r)) {
		owner_unlock(o);
		*added = true;
		return 0;
	}
	assert(!e || e->obj); /* an X request published its row's (K8 step 3) */
	if ((rc = acquire_slow(lm, o, r, e, timeout_ms)) == 0) {
		*added = !e;
		return 0;
	}
out:
	if (x)
		atomic_fetch_sub(&lm->xreq[b], 1);
	return rc;
}

/* K1 (and K8): a row lock alone, without the table's intention lock. */
int lock_acquire(lockmgr *lm, lock_owner *o, uint32_t rel, const void *key, uint32_t klen,
		 int mode, uint32_t timeout_ms)
{
	lock_req r = {0}; /* gcc cannot tell that req_init fills it on success */
	bool added;
	int rc = req_init(&r, rel, key, klen, mode);
	if (rc != 0)
		return rc;
	return row_acquire(lm, o, &r, timeout_ms, &added);
}

/* ---- table locks and escalation (K7) ---- */

/* o's state for table rel, added (mode 0) if o has none. The last one
 * found is tried first: a transaction works on one table at a time, mostly.
 * WD_ENOMEM. */
static int tab_get(lockmgr *lm, lock_owner *o, uint32_t rel, lock_tab **out)
{
	lock_tab *tb;
	if (o->tlast < o->ntabs && o->tabs[o->tlast].rel == rel) {
		*out = &o->tabs[o->tlast];
		return 0;
	}
	for (uint32_t i = 0; i < o->ntabs; i++) {
		if (o->tabs[i].rel == rel) {
			o->tlast = i;
			*out = &o->tabs[i];
			return 0;
		}
	}
	if (o->ntabs == o->tabcap) {
		uint32_t ncap = o->tabcap ? 2 * o->tabcap : 4;
		lock_tab *nt = realloc(o->tabs, ncap * sizeof *nt);
		if (!nt)
			return err_set(WD_ENOMEM, "lock manager: no memory for the tables of xid %llu",
				       (unsigned long long)o->xid);
		o->tabs = nt;
		o->tabcap = ncap;
	}
	tb = &o->tabs[o->ntabs];
	*tb = (lock_tab){.rel = rel, .esc_at = lm->escalate_rows};
	o->tlast = o->ntabs++;
	*out = tb;
	return 0;
}

static const lock_tab *tab_find(const lock_owner *o, uint32_t rel)
{
	for (uint32_t i = 0; i < o->ntabs; i++)
		if (o->tabs[i].rel == rel)
			return &o->tabs[i];
	return NULL;
}

/* Raises o's lock on table tb to cover mode (a conversion to the join of
 * both); tb->mode follows on success. timeout_ms as lock_acquire;
 * behind_waiters: the conversion does not go before conflicting waiters. */
static int tab_raise(lockmgr *lm, lock_owner *o, lock_tab *tb, int mode, uint32_t timeout_ms,
		     bool behind_waiters)
{
	lock_req r = {.rel = tb->rel, .klen = LOCK_TABLE_KLEN, .key = NULL,
		      .behind_waiters = behind_waiters};
	lock_ent *e;
	int rc;
	r.hash = lock_hash(tb->rel, NULL, LOCK_TABLE_KLEN);
	r.mode = mode_join(tb->mode, mode);
	owner_lock(o);
	e = tb->mode ? local_find(o, &r) : NULL;
	assert(!tb->mode || (e && e->mode == tb->mode));
	if ((rc = acquire_slow(lm, o, &r, e, timeout_ms)) == 0)
		tb->mode = (uint8_t)r.mode;
	return rc;
}

int lock_table(lockmgr *lm, lock_owner *o, uint32_t rel, int mode, uint32_t timeout_ms)
{
	lock_tab *tb;
	int rc;
	if (mode < LOCK_S || mode >= LOCK_NMODES)
		return err_set(WD_EINVAL, "lock on table rel %u: bad mode %d", rel, mode);
	if ((rc = tab_get(lm, o, rel, &tb)) != 0)
		return rc;
	if (mode_covers(tb->mode, mode)) {
		count_fast(o);
		return 0;
	}
	return tab_raise(lm, o, tb, mode, timeout_ms, false);
}

bool lock_table_held(lockmgr *lm, const lock_owner *o, uint32_t rel, int mode)
{
	const lock_tab *tb = tab_find(o, rel);
	(void)lm;
	return tb && mode > 0 && mode < LOCK_NMODES && mode_covers(tb->mode, mode);
}

/* K7 step 4: o took its tb->rows'th row lock on the table and asks for S
 * rows there: try the table's S (SIX over IX) without waiting, and behind
 * any conflicting waiter (a writer queued for IX is not overtaken, so a
 * stream of scanners cannot starve it). Best effort: if it cannot be had
 * now, the next try is a threshold later. */
static void escalate(lockmgr *lm, lock_owner *o, lock_tab *tb)
{
	if (tab_raise(lm, o, tb, LOCK_S, LOCK_NOWAIT, true) == 0) {
		atomic_fetch_add_explicit(&lm->escalations, 1, memory_order_relaxed);
		TRACE(TR_TXN, "lock escalation: xid %llu holds %s on table rel %u after %u row locks",
		      (unsigned long long)o->xid, lock_mode_name(tb->mode), tb->rel, tb->rows);
		return;
	}
	tb->esc_at = tb->rows + lm->escalate_rows;
}

/* K7: the table's intention lock, then the row lock, unless a table lock
 * covers the row. Each of the two may wait up to timeout_ms. */
int lock_row(lockmgr *lm, lock_owner *o, uint32_t rel, const void *key, uint32_t klen,
	     int mode, uint32_t timeout_ms)
{
	lock_req r;
	lock_tab *tb;
	bool added;
	int rc = req_check(&r, rel, key, klen, mode);
	if (rc != 0 || (rc = tab_get(lm, o, rel, &tb)) != 0)
		return rc;
	/* step 1: a table lock that covers the row answers (the key is not
	 * even hashed) */
	if (mode_covers(tb->mode, mode)) {
		count_fast(o);
		return 0;
	}
	req_hash(&r);
	/* step 2: the intention lock on the table */
	if (!mode_covers(tb->mode, mode == LOCK_S ? LOCK_IS : LOCK_IX) &&
	    (rc = tab_raise(lm, o, tb, mode == LOCK_S ? LOCK_IS : LOCK_IX, timeout_ms,
			       false)) != 0)
		return rc;
	/* step 3: the row lock (K1, K8) */
	if ((rc = row_acquire(lm, o, &r, timeout_ms, &added)) != 0)
		return rc;
	/* step 4: escalation */
	if (added && ++tb->rows >= tb->esc_at && lm->escalate_rows && mode == LOCK_S)
		escalate(lm, o, tb);
	return 0;
}

void lockmgr_set_escalation(lockmgr *lm, uint32_t rows)
{
	lm->escalate_rows = rows;
}

bool lock_held(lockmgr *lm, lock_owner *o, uint32_t rel, const void *key, uint32_t klen,
	       int mode)
{
	lock_req r;
	const lock_ent *e;
	bool held;
	if (req_init(&r, rel, key, klen, mode) != 0)
		return false;
	owner_lock(o);
	e = local_find(o, &r);
	held = e && mode_covers(e->mode, mode);
	owner_unlock(o);
	return held || lock_table_held(lm, o, rel, mode);
}

/* ---- release (K2) ---- */

/* Releases e (hash: its object's), grants what can now go, drops the
 * object if unused. Caller holds p, e's partition. */
static void release_ent(lock_part *p, lock_ent *e, uint64_t hash)
{
	lock_obj *ob = e->obj;
	ent_ungrant(p, e);
	if (p->whead)
		grant_waiters(p, ob);
	if (!ob->holders)
		obj_drop_if_unused(p, ob, hash);
}

/* K2: every entry of the slab in order, keeping a partition's mutex
 * across a run of entries in it; then the slab, the local table and the
 * arena are empty. Caller holds o->mu. */
static void release_locked(lockmgr *lm, lock_owner *o)
{
	lock_part *cur = NULL;
	for (uint32_t i = 0; i < o->nent; i++) {
		lock_ent *e = ent_at(o, i);
		uint64_t hash = e->hash;
		lock_part *p = part_of(lm, hash);
		bool x_row;
		if (!e->obj) { /* unshared: only its count to take back */
			atomic_fetch_sub(&lm->unshared[unsh_bucket(hash)], 1);
			continue;
		}
		if (p != cur) {
			if (cur)
				pthread_mutex_unlock(&cur->mu);
			pthread_mutex_lock(&p->mu);
			cur = p;
		}
		x_row = e->mode == LOCK_X && !obj_is_table(e->obj);
		release_ent(p, e, hash);
		if (x_row) /* K8: counted since its request; the row is free now */
			atomic_fetch_sub(&lm->xreq[unsh_bucket(hash)], 1);
	}
	if (cur)
		pthread_mutex_unlock(&cur->mu);
	o->nent = 0;
	atomic_store_explicit(&o->nunshared, 0, memory_order_relaxed);
	if (o->lcap)
		memset(o->local, 0, o->lcap * sizeof *o->local);
	names_clear(o);
	o->ntabs = 0;
	o->tlast = 0;
}

void lock_release_all(lockmgr *lm, lock_owner *o)
{
	owner_lock(o);
	release_locked(lm, o);
	owner_unlock(o);
}

/* ---- owners (K6) ---- */

static lock_owner *owner_new(void)
{
	lock_owner *o = calloc(1, sizeof *o);
	pthread_condattr_t ca;
	int rc;
	if (!o)
		return NULL;
	rc = pthread_condattr_init(&ca);
	if (rc == 0) {
		rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (rc == 0)
			rc = pthread_cond_init(&o->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (rc == 0 && (rc = pthread_mutex_init(&o->mu, NULL)) != 0)
		pthread_cond_destroy(&o->cv);
	if (rc != 0) {
		free(o);
		return NULL;
	}
	return o;
}

static void owner_free(lock_owner *o)
{
	for (uint32_t i = 0; i < o->nchunks; i++)
		free(o->chunks[i]);
	free(o->chunks);
	free(o->local);
	free(o->tabs);
	names_clear(o);
	free(o->names);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

/* Gives back what a big transaction made o grow, keeping the first chunk
 * and a small table for the next transaction. Caller holds o->mu (o is
 * still live: a publisher may look into it). */
static void owner_trim(lock_owner *o)
{
	while (o->nchunks > 1)
		free(o->chunks[--o->nchunks]);
	if (o->dircap > DIR_KEEP) {
		lock_ent **d = realloc(o->chunks, DIR_KEEP * sizeof *d);
		if (d) {
			o->chunks = d;
			o->dircap = DIR_KEEP;
		}
	}
	if (o->lcap > LOCAL_KEEP) {
		free(o->local);
		o->local = NULL;
		o->lcap = 0;
	}
}

static void live_link(lockmgr *lm, lock_owner *o)
{
	o->prev = NULL;
	o->next = lm->live;
	if (lm->live)
		lm->live->prev = o;
	lm->live = o;
}

static void live_unlink(lockmgr *lm, lock_owner *o)
{
	*(o->prev ? &o->prev->next : &lm->live) = o->next;
	if (o->next)
		o->next->prev = o->prev;
}

/* An idle owner if one is kept, else a new one. */
int lock_owner_create(lockmgr *lm, uint64_t xid, lock_owner **out)
{
	lock_owner *o;
	*out = NULL;
	pthread_mutex_lock(&lm->mu);
	if ((o = lm->idle) != NULL) {
		lm->idle = o->next;
		lm->nidle--;
	}
	pthread_mutex_unlock(&lm->mu);
	if (!o && !(o = owner_new()))
		return err_set(WD_ENOMEM, "lock manager: no memory for the owner of xid %llu",
			       (unsigned long long)xid);
	o->xid = xid;
	pthread_mutex_lock(&lm->mu);
	live_link(lm, o);
	pthread_mutex_unlock(&lm->mu);
	*out = o;
	return 0;
}

/* Releases o's locks, folds its counter into the manager's and keeps it
 * idle for the next transaction (or frees it when enough are kept). */
void lock_owner_destroy(lockmgr *lm, lock_owner *o)
{
	bool keep;
	if (!o)
		return;
	assert(!o->waiting);
	owner_lock(o); /* K2, then the trim: a publisher may still look in */
	release_locked(lm, o);
	owner_trim(o);
	owner_unlock(o);
	pthread_mutex_lock(&lm->mu);
	live_unlink(lm, o);
	lm->fast_done += atomic_load_explicit(&o->fast, memory_order_relaxed);
	atomic_store_explicit(&o->fast, 0, memory_order_relaxed);
	lm->ugranted_done += atomic_load_explicit(&o->ugranted, memory_order_relaxed);
	atomic_store_explicit(&o->ugranted, 0, memory_order_relaxed);
	keep = lm->nidle < OWNER_IDLE_MAX;
	if (keep) {
		o->next = lm->idle;
		lm->idle = o;
		lm->nidle++;
	}
	pthread_mutex_unlock(&lm->mu);
	if (!keep)
		owner_free(o);
}

/* ---- the manager ---- */

static void part_free(lock_part *p)
{
	for (uint32_t b = 0; b <= p->mask; b++) {
		for (lock_obj *ob = p->buckets[b], *next; ob; ob = next) {
			next = ob->next;
			free(ob);
		}
	}
	for (lock_obj *ob = p->free, *next; ob; ob = next) {
		next = ob->next;
		free(ob);
	}
	free(p->buckets);
	pthread_mutex_destroy(&p->mu);
}

int lockmgr_create(lockmgr **out)
{
	lockmgr *lm = aligned_alloc(_Alignof(lockmgr), sizeof *lm);
	uint32_t i;
	*out = NULL;
	if (!lm)
		return err_set(WD_ENOMEM, "lock manager: no memory");
	memset(lm, 0, sizeof *lm);
	for (i = 0; i < NPARTS; i++) {
		lock_part *p = &lm->parts[i];
		p->mask = PART_MIN_BUCKETS - 1;
		p->buckets = calloc(PART_MIN_BUCKETS, sizeof *p->buckets);
		if (!p->buckets || pthread_mutex_init(&p->mu, NULL) != 0) {
			free(p->buckets);
			break;
		}
	}
	if (i < NPARTS || pthread_mutex_init(&lm->mu, NULL) != 0) {
		while (i-- > 0)
			part_free(&lm->parts[i]);
		free(lm);
		return err_set(WD_ENOMEM, "lock manager: no memory");
	}
	*out = lm;
	return 0;
}

void lockmgr_destroy(lockmgr *lm)
{
	if (!lm)
		return;
	for (lock_owner *o = lm->live, *next; o; o = next) {
		next = o->next;
		assert(o->nent == 0 && !o->waiting);
		owner_free(o);
	}
	for (lock_owner *o = lm->idle, *next; o; o = next) {
		next = o->next;
		owner_free(o);
	}
	for (uint32_t i = 0; i < NPARTS; i++)
		part_free(&lm->parts[i]);
	pthread_mutex_destroy(&lm->mu);
	free(lm);
}

void lockmgr_stats(lockmgr *lm, lock_stats *out)
{
	uint64_t fast, unshared, nunshared = 0;
	memset(out, 0, sizeof *out);
	for (uint32_t i = 0; i < NPARTS; i++) {
		lock_part *p = &lm->parts[i];
		pthread_mutex_lock(&p->mu);
		out->acquired += p->granted;
		out->waits += p->waits;
		out->deadlocks += p->deadlocks;
		out->timeouts += p->timeouts;
		out->held_now += p->held;
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_lock(&lm->mu);
	fast = lm->fast_done;
	unshared = lm->ugranted_done;
	for (lock_owner *o = lm->live; o; o = o->next) {
		fast += atomic_load_explicit(&o->fast, memory_order_relaxed);
		unshared += atomic_load_explicit(&o->ugranted, memory_order_relaxed);
		nunshared += atomic_load_explicit(&o->nunshared, memory_order_relaxed);
	}
	pthread_mutex_unlock(&lm->mu);
	out->fast = fast;
	out->unshared = unshared;
	out->acquired += fast + unshared;
	out->held_now += nunshared;
	out->published = atomic_load_explicit(&lm->published, memory_order_relaxed);
	out->escalations = atomic_load_explicit(&lm->escalations, memory_order_relaxed);
}
