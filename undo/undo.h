/*
 * undo.h - the undo log: per-transaction chains of undo records ("how to
 * reverse this row change"), kept apart from the WAL in the pages of one
 * relation (UNDO_REL) that go through the buffer pool and are protected by
 * the WAL. undo/ stores records, reads them back, walks a chain for
 * rollback writing a CLR per step, reuses the pages of finished
 * transactions, and rebuilds the transaction table from the WAL for
 * recovery. What a record means is up to the caller (txn/). Invariants,
 * protocols and byte formats: undo/README.md.
 *
 *   undo_chain c = {0};
 *   undo_chain_init(&c, xid);
 *   undo_append(u, &c, &prev, UNDO_ROW_UPDATE, rel, k, klen, old, oldlen, &p);
 *   ... change the row (its WAL records carry prev) ...
 *   commit:   XACT_COMMIT into the WAL, then undo_chain_release(u, &c);
 *   rollback: undo_rollback(u, &c, &prev, 0, apply, arg, NULL), XACT_ABORT,
 *             then undo_chain_release(u, &c).
 */
#ifndef WALDEN_UNDO_H
#define WALDEN_UNDO_H

#include <stddef.h>
#include <stdint.h>

#include "bufmgr/bufmgr.h"
#include "storage/error.h"
#include "storage/types.h"
#include "wal/record.h"
#include "wal/redo.h"

#define UNDO_REL 3u /* relation id of the undo log: DIR/base/3 */

/* Where an undo record starts: (block << 16) | byte offset in the page.
 * 0 is "none" (offset 0 is the page header, never a record). */
typedef uint64_t undo_ptr;
#define UNDO_PTR(blk, off) (((undo_ptr)(blk) << 16) | (undo_ptr)(off))
#define UNDO_PTR_BLK(p) ((wd_blkno)((p) >> 16))
#define UNDO_PTR_OFF(p) ((uint32_t)((p)&0xFFFFu))

/* p as "blk/off", or "none" for 0, in buf (cap bytes); returns buf. */
const char *undo_ptr_str(undo_ptr p, char *buf, size_t cap);

/* Record kinds (on disk: never reuse a value). */
enum undo_kind { UNDO_ROW_INSERT = 1, UNDO_ROW_UPDATE = 2, UNDO_ROW_DELETE = 3 };

/* "insert", "update", "delete", or "unknown". */
const char *undo_kind_name(unsigned kind);

/* Limits of one record (undo_append refuses more with WD_ETOOBIG; a
 * stored length above them is damage). The value limit is the largest
 * max_value_bytes a database accepts (heap/heap.h HEAP_MAX_VALUE_LIMIT,
 * 2^40): any value a put could store, a later overwrite or delete must be
 * able to keep in undo. */
#define UNDO_MAX_KEY (64u * 1024)
#define UNDO_MAX_VALUE (1ull << 40)

typedef struct undo_log undo_log; /* one per database */

/*
 * Opens the undo log of the relation UNDO_REL, which must already be open
 * in pool; log is the WAL logging context the changes go through (its page
 * size must be the pool's). Every existing block is taken as free (README
 * I6): call it when no transaction has undo to keep - after a clean
 * shutdown, or after recovery's redo, provided nothing appends before every
 * loser is rolled back (that rollback only reads undo pages and writes
 * CLRs). Errors: WD_EINVAL, WD_NOTFOUND (relation not open), WD_ENOMEM.
 */
int undo_open(bufmgr *pool, wal_log_ctx *log, undo_log **out) WD_MUST_CHECK;

/* Frees u (NULL is fine). Writes nothing: the pool holds the pages. */
void undo_close(undo_log *u);

/* One transaction's chain; owned by the transaction (zero it, then
 * undo_chain_init). Used by one thread at a time. */
typedef struct undo_chain {
	wd_xid xid;
	undo_ptr head; /* newest live record; 0: none. Rollback starts here */
	/* private to undo/ */
	wd_blkno *pages;   /* the pages the chain owns, in chain order */
	uint32_t npages, cap;
	uint32_t off;      /* write offset in pages[npages - 1] */
} undo_chain;

void undo_chain_init(undo_chain *c, wd_xid xid);

/*
 * Appends the record {kind, rel, prev = c->head, key, value} to c (README
 * P1): one UNDO_APPEND WAL record per page the record touches, each of
 * transaction c->xid with *xact_prev as its prev. On success c->head =
 * *out = the record's pointer and *xact_prev (may be NULL) = the LSN of the
 * last WAL record written. Errors: WD_EINVAL (bad kind), WD_ETOOBIG (key
 * or value over the limits), WD_ENOMEM, the pool's and the WAL's errors.
 * On error c->head is unchanged (bytes already logged for the record stay
 * in the chain's pages, unreachable) and *xact_prev names the last record
 * that went in.
 */
int undo_append(undo_log *u, undo_chain *c, wd_lsn *xact_prev, unsigned kind,
		wd_relid rel, const void *key, uint32_t klen, const void *val,
		uint64_t vlen, undo_ptr *out) WD_MUST_CHECK;

/* A record read back. Zero it before the first undo_read; the buffers
 * belong to the struct and are reused by later reads (undo_rec_free). */
typedef struct undo_rec {
	unsigned kind;
	wd_relid rel;
	undo_ptr self, prev;
	uint8_t *key; /* klen bytes (NULL if klen is 0 and nothing was read yet) */
	uint32_t klen;
	uint8_t *val; /* vlen bytes (likewise) */
	uint64_t vlen;
	wd_xid xid;   /* the transaction whose chain holds the record */
	/* private to undo/ */
	uint32_t seq; /* number of its page within the chain */
	uint32_t kcap;
	uint64_t vcap;
} undo_rec;

/*
 * Reads the record at p into r (README P2), following the chain's pages
 * for the bytes that continue past the first. WD_ECORRUPT naming the block
 * and offset for a pointer or bytes that do not make a record (pointer
 * outside the relation or the page, not an undo page, bad magic, kind or
 * lengths, a record running past the chain's written bytes, a next page of
 * another chain); WD_ENOMEM; the pool's errors. After an error r's fields
 * are unspecified (its buffers stay r's: undo_rec_free).
 */
int undo_read(undo_log *u, undo_ptr p, undo_rec *r) WD_MUST_CHECK;
void undo_rec_free(undo_rec *r);

/*
 * Writes the CLR (redo-only WAL record UNDO_CLR) of transaction xid, prev
 * *xact_prev (then set to its LSN): "undoing record `undone` is complete;
 * the next step is undo_next" (0: none left). The WAL's errors.
 */
int undo_log_clr(undo_log *u, wd_xid xid, wd_lsn *xact_prev, undo_ptr undone,
		 undo_ptr undo_next) WD_MUST_CHECK;

/*
 * The rollback driver (README P3): walks c from c->head back to, not
 * including, stop (0: the whole chain; else a record of the chain, such as
 * an earlier c->head kept by a savepoint), newest first. For each record:
 * apply(arg, &rec) reverses it (the caller's logical undo, idempotent),
 * crash point "undo-after-apply", undo_log_clr(rec.self, rec.prev), crash
 * point "undo-after-clr", c->head = rec.prev. Stops at the first error,
 * with c->head naming the record not yet undone (a retry resumes there).
 * *steps (may be NULL) += records undone. Errors: apply's, undo_read's,
 * the WAL's; WD_ECORRUPT if the chain reaches its end without meeting stop,
 * holds a record of another transaction or does not go back.
 */
typedef int (*undo_apply_fn)(void *arg, const undo_rec *rec);
int undo_rollback(undo_log *u, undo_chain *c, wd_lsn *xact_prev, undo_ptr stop,
		  undo_apply_fn apply, void *arg, uint64_t *steps) WD_MUST_CHECK;

/*
 * Gives c's pages back for reuse and leaves c empty (head 0, no pages).
 * Precondition: the transaction's XACT_COMMIT or XACT_ABORT is in the WAL,
 * so every later reuse is logged after it (README I5). Cannot fail.
 */
void undo_chain_release(undo_log *u, undo_chain *c);

/* Leaves c empty without giving its pages back: a transaction that ends
 * unfinished on a panicked database (its changes are rolled back by the
 * next open, through those pages, which must not be reused before). */
void undo_chain_forget(undo_chain *c);

/* ---- recovery: the transaction table rebuilt from the WAL ---------- */

typedef struct undo_xact {
	wd_xid xid;
	wd_lsn last_lsn; /* its newest WAL record: prev of what it writes next */
	undo_ptr head;   /* its newest complete undo record not yet undone */
	bool head_set;   /* xtab: head was set by a record or a checkpoint */
} undo_xact;

typedef struct undo_xtab undo_xtab; /* xid -> undo_xact, a hash table */

int undo_xtab_create(undo_xtab **out) WD_MUST_CHECK;
void undo_xtab_free(undo_xtab *t);

/*
 * Feeds one record read from the WAL, in LSN order (README P4): a record
 * with xid != 0 makes xid active with last_lsn = rec->lsn; an UNDO_APPEND
 * that ends an undo record sets head to that record (a record cut short by
 * a crash never becomes the head); UNDO_CLR sets head to its undo_next;
 * XACT_COMMIT and XACT_ABORT remove xid. WD_ECORRUPT for a malformed UNDO
 * record, WD_ENOMEM.
 */
int undo_xtab_note(undo_xtab *t, const wal_decoded *rec) WD_MUST_CHECK;

/*
 * Analysis from a checkpoint (README P4 step 1, recovery/README.md P4):
 * with on, the xids of the COMMIT and ABORT records noted from now on are
 * remembered, so that undo_xtab_seed can tell a transaction of the
 * checkpoint's table that ended after the redo point. WD_ENOMEM.
 */
int undo_xtab_track_ended(undo_xtab *t, bool on) WD_MUST_CHECK;

/*
 * As undo_xtab_track_ended(t, true), but only the n xids given (the
 * checkpoint's table, read before the scan) are remembered: memory stays
 * the size of that table however many transactions end before the scan
 * reaches the record. WD_ENOMEM.
 */
int undo_xtab_watch_ended(undo_xtab *t, const wd_xid *xids, size_t n) WD_MUST_CHECK;

/*
 * Merges the checkpoint record's table of active transactions (n entries;
 * head_set ignored) when the scan meets it: an entry whose xid ended since
 * the redo point is skipped; an unknown one is added; a known one keeps the
 * newer last_lsn, and its head unless no record since the redo point set
 * it (then the checkpoint's). Stops tracking ended xids. WD_ENOMEM.
 */
int undo_xtab_seed(undo_xtab *t, const undo_xact *att, size_t n) WD_MUST_CHECK;

/* The transactions still active (losers) in xid order, into a malloc'd
 * array (*out NULL when *n is 0). WD_ENOMEM. */
int undo_xtab_losers(const undo_xtab *t, undo_xact **out, size_t *n) WD_MUST_CHECK;

/* A chain for rolling back loser x: its xid and head, owning no pages
 * (undo_chain_release is a no-op for it). */
void undo_chain_for_loser(undo_chain *c, const undo_xact *x);

/* ---- statistics, tools ------------------------------------------------ */

typedef struct undo_stats {
	uint64_t records;         /* records appended */
	uint64_t bytes;           /* their bytes (headers, keys, values) */
	uint64_t pages_allocated; /* pages added to the relation */
	uint64_t pages_reused;    /* pages taken from the free list */
	uint64_t pages_free;      /* pages on the free list now */
	uint64_t clrs;            /* CLRs written */
} undo_stats;

void undo_stats_get(undo_log *u, undo_stats *out);

/* What an undo page holds, decoded for tools (walden inspect, check)
 * without trusting it: nothing outside the page is read. */
typedef struct undo_page_view {
	wd_xid xid;          /* the chain that owns (or last owned) the page */
	wd_blkno prev, next; /* neighbours in the chain; WD_INVALID_BLKNO: none */
	uint32_t seq;        /* the page's number within the chain */
	uint32_t first;      /* offset of the first record starting here; 0: none */
	uint32_t used;       /* end of the written bytes */
} undo_page_view;

/* Decodes the undo header of page p (page size ps): WD_ECORRUPT if p is
 * not an undo page or the fields are out of bounds. */
int undo_page_view_decode(const uint8_t *p, uint32_t ps, undo_page_view *v) WD_MUST_CHECK;

/* One record header read from a page; the key's first bytes as far as the
 * page holds them. */
typedef struct undo_rec_view {
	unsigned kind;
	wd_relid rel;
	undo_ptr prev;
	uint32_t klen;
	uint64_t vlen;
	const uint8_t *key; /* points into the page */
	uint32_t key_here;  /* key bytes on this page (<= klen) */
	uint32_t end;       /* offset after the record on this page; ps if it
			     * continues on the chain's next page */
} undo_rec_view;

/*
 * Decodes the record header at offset off of undo page p: WD_ECORRUPT if
 * it lies outside the written bytes or is no record (magic, kind, lengths).
 * Walking a page: off = v.first, then rv.end while rv.end < v.used.
 */
int undo_rec_view_decode(const uint8_t *p, uint32_t ps, uint32_t off,
			 undo_rec_view *rv) WD_MUST_CHECK;

/* Registers the UNDO rmgr's redo and describe routines. Fails only on a
 * programming error (other routines registered for it). */
int undo_rmgr_register(void) WD_MUST_CHECK;

#endif /* WALDEN_UNDO_H */
