/*
 * deadlock.c - the wait-for graph of the row locks (its edges are the
 * blocks of L3) and what is built on it: deadlock detection (K4) and the
 * error details of a deadlock (the cycle) and a timeout (the blockers).
 * Entry points: deadlock_detect, deadlock_report_timeout. txn/LOCKS.md.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "storage/trace.h"
#include "txn/lockmgr_internal.h"

#define KEY_SHOWN 8u /* key bytes an error detail shows */

/* ---- error details ---- */

typedef struct msgbuf {
	char s[480];
	size_t len;
} msgbuf;

static void WD_PRINTF(2, 3) msg_add(msgbuf *m, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (m->len >= sizeof m->s - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(m->s + m->len, sizeof m->s - m->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		m->len += (size_t)n;
}

/* "X on rel 16 key 0x3031" (the first KEY_SHOWN bytes, then the length),
 * or "IX on table rel 16". */
static void msg_request(msgbuf *m, const lock_obj *ob, int mode)
{
	if (obj_is_table(ob)) {
		msg_add(m, "%s on table rel %u", lock_mode_name(mode), ob->rel);
		return;
	}
	msg_add(m, "%s on rel %u key ", lock_mode_name(mode), ob->rel);
	if (!ob->klen)
		msg_add(m, "(empty)");
	else
		msg_add(m, "0x");
	for (uint32_t i = 0; i < ob->klen && i < KEY_SHOWN; i++)
		msg_add(m, "%02x", ob->key[i]);
	if (ob->klen > KEY_SHOWN)
		msg_add(m, "... (%u bytes)", ob->klen);
}

/* ---- the wait-for graph (K4) ---- */

/* Called for each owner that blocks a waiter; true stops the walk. */
typedef bool (*blocker_fn)(lock_owner *b, int mode, bool holds, void *arg);

/* The out-edges of waiter w (L3): every other holder of its object whose
 * mode conflicts with its request, and every earlier waiter of the object
 * whose request conflicts. Caller holds w's partition mutex. */
static bool for_each_blocker(lock_owner *w, blocker_fn fn, void *arg)
{
	lock_obj *ob = w->went->obj;
	for (lock_ent *h = ob->holders; h; h = h->next)
		if (h->owner != w && modes_conflict(h->mode, w->want) &&
		    fn(h->owner, h->mode, true, arg))
			return true;
	for (lock_owner *v = w->wpart->whead; v && v != w; v = v->wnext)
		if (v->went->obj == ob && modes_conflict(v->want, w->want) &&
		    fn(v, v->want, false, arg))
			return true;
	return false;
}

typedef struct bfs {
	uint64_t epoch;
	lock_owner *root, *from, *tail, *found;
} bfs;

/* Visits blocker b of s->from: the root again closes a cycle; a waiter not
 * seen yet joins the queue. */
static bool bfs_visit(lock_owner *b, int mode, bool holds, void *arg)
{
	bfs *s = arg;
	(void)mode;
	(void)holds;
	if (b == s->root) {
		s->found = s->from;
		return true;
	}
	if (!b->waiting || b->seen == s->epoch)
		return false;
	b->seen = s->epoch;
	b->bfs_parent = s->from;
	b->bfs_next = NULL;
	s->tail->bfs_next = b;
	s->tail = b;
	return false;
}

/* Breadth-first search of the wait-for graph from root: the last owner of
 * a shortest cycle through root (its bfs_parent chain leads back to root),
 * or NULL. Only waiters have out-edges. Caller holds every partition. */
static lock_owner *find_cycle(lockmgr *lm, lock_owner *root)
{
	bfs s = {.epoch = ++lm->epoch, .root = root, .tail = root};
	root->seen = s.epoch;
	root->bfs_next = NULL;
	for (lock_owner *n = root; n && !s.found; n = n->bfs_next) {
		s.from = n;
		for_each_blocker(n, bfs_visit, &s);
	}
	return s.found;
}

/* Sets the detail of a deadlock: the cycle from root round to root. */
static int report_cycle(lock_owner *root, lock_owner *last)
{
	msgbuf m = {.len = 0};
	for (lock_owner *c = last; c != root; c = c->bfs_parent)
		c->bfs_parent->bfs_next = c; /* forward links along the path */
	last->bfs_next = root;
	msg_add(&m, "deadlock: xid %llu", (unsigned long long)root->xid);
	for (lock_owner *n = root;; n = n->bfs_next) {
		msg_add(&m, "%s waits for xid %llu (wants ", n == root ? "" : " which",
			(unsigned long long)n->bfs_next->xid);
		msg_request(&m, n->went->obj, n->want);
		msg_add(&m, ")");
		if (n->bfs_next == root)
			break;
	}
	return err_set(WD_EDEADLOCK, "%s", m.s);
}

static void lock_all(lockmgr *lm)
{
	for (uint32_t i = 0; i < NPARTS; i++)
		pthread_mutex_lock(&lm->parts[i].mu);
}

static void unlock_all(lockmgr *lm)
{
	for (uint32_t i = NPARTS; i-- > 0;)
		pthread_mutex_unlock(&lm->parts[i].mu);
}

/* K4: with every partition held (a consistent graph), o - still waiting -
 * is the victim if a cycle runs through it: it leaves the queue and gets
 * WD_EDEADLOCK. Otherwise 0 (o waits on, or was granted meanwhile). */
int deadlock_detect(lockmgr *lm, lock_owner *o)
{
	int rc = 0;
	lock_owner *last;
	lock_all(lm);
	if (o->waiting) {
		if ((last = find_cycle(lm, o)) != NULL) {
			rc = report_cycle(o, last);
			o->wpart->deadlocks++;
			lockmgr_waiter_leave(o);
		} else {
			o->wpart->waits++;
		}
	}
	unlock_all(lm);
	if (rc)
		TRACE(TR_TXN, "lock %s", wd_last_error());
	return rc;
}

/* ---- the detail of a timeout (K3 step 4) ---- */

typedef struct blockers_msg {
	msgbuf *m;
	int n;
} blockers_msg;

static bool add_blocker(lock_owner *b, int mode, bool holds, void *arg)
{
	blockers_msg *bm = arg;
	if (bm->n++ == 4) {
		msg_add(bm->m, ", ...");
		return true;
	}
	msg_add(bm->m, "%s xid %llu (%s %s)", bm->n == 1 ? "" : ",",
		(unsigned long long)b->xid, holds ? "holds" : "waits for",
		lock_mode_name(mode));
	return false;
}

/* Sets the detail of a timeout: the request and who blocks it. */
int deadlock_report_timeout(lock_owner *o, uint32_t timeout_ms)
{
	msgbuf m = {.len = 0};
	blockers_msg bm = {.m = &m, .n = 0};
	msg_add(&m, "lock wait timed out after %u ms: xid %llu wants ", timeout_ms,
		(unsigned long long)o->xid);
	msg_request(&m, o->went->obj, o->want);
	msg_add(&m, "; blocked by");
	for_each_blocker(o, add_blocker, &bm);
	return err_set(WD_ETIMEDOUT, "%s", m.s);
}
