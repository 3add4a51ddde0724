/*
 * dpt.h - the dirty page table that recovery's analysis rebuilds from the
 * WAL (recovery/README.md P4, I4, I7, I8): (relation, block) -> recLSN, the
 * LSN from which redo must replay that page; every other change of the
 * page is on disk. Redo (P5) skips a block reference whose page is not in
 * the table or whose record lies below the page's recLSN, without reading
 * the page.
 *
 *   dpt *d;
 *   dpt_create(&d);
 *   dpt_use_checkpoint(d, redo, dpt_lsn, ckpt.dpt, ckpt.ndpt); // before the scan
 *   for each record, each block:  dpt_note(d, rel, blk, rec->lsn);
 *   at the checkpoint record:     dpt_merge_checkpoint(d, rec->lsn, &added);
 *   redo:  e = dpt_find(d, rel, blk); skip if !e || !dpt_is_dirty(e) ||
 *          lsn < e->rec_lsn
 *
 * A hash table with linear probing (millions of records may name hundreds
 * of thousands of pages): a lookup per block reference, no allocation but
 * when it doubles. It also remembers the pages that are not dirty (every
 * change scanned so far is on disk), with the first record that named
 * them: redo rebuilds such a page from there if it turns out torn.
 */
#ifndef WALDEN_RECOVERY_DPT_H
#define WALDEN_RECOVERY_DPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/error.h"
#include "storage/types.h"
#include "wal/ckpt_rec.h"

/* rec_lsn of a page no record has dirtied since its changes reached the
 * disk: not in the dirty page table proper. */
#define DPT_CLEAN UINT64_MAX

typedef struct dpt_entry {
	wd_relid rel;
	wd_blkno blk;
	wd_lsn rec_lsn;   /* redo this page from here on; DPT_CLEAN: not dirty */
	wd_lsn first_lsn; /* the first scanned record naming the page; 0: none
			   * (the page came from the checkpoint's table) */
} dpt_entry;

typedef struct dpt dpt;

int dpt_create(dpt **out) WD_MUST_CHECK;
void dpt_free(dpt *d);

/*
 * The checkpoint the control file names, read before the scan: its redo
 * point, the position its table was listed at (dpt_lsn) and that table
 * (n entries). dpt_note applies I7 with it from now on. WD_ENOMEM.
 */
int dpt_use_checkpoint(dpt *d, wd_lsn redo, wd_lsn dpt_lsn, const wal_ckpt_dpt *v,
		       uint32_t n) WD_MUST_CHECK;

/*
 * Block (rel, blk) of the record at lsn (fed in LSN order, P4 step 2):
 * the page is remembered (first_lsn), and becomes dirty with recLSN = lsn
 * unless it is dirty already or the checkpoint says this change is on
 * disk (I7): the page is in the checkpoint's table and lsn lies below
 * max(its recLSN there, the redo point), or it is not and lsn lies below
 * dpt_lsn. WD_ENOMEM.
 */
int dpt_note(dpt *d, wd_relid rel, wd_blkno blk, wd_lsn lsn) WD_MUST_CHECK;

/*
 * At the checkpoint record itself (its LSN ckpt_lsn), the textbook merge
 * (P4 step 3): every page of the checkpoint's table that is not dirty here
 * becomes dirty with recLSN = max(its recLSN there, the redo point) (I4);
 * *added counts them, *present the pages already dirty. WD_ENOMEM.
 */
int dpt_merge_checkpoint(dpt *d, wd_lsn ckpt_lsn, uint32_t *added,
			 uint32_t *present) WD_MUST_CHECK;

/* The entry of (rel, blk), dirty or not, or NULL if no record named it
 * and the checkpoint's table did not either. Valid until the next change
 * of d. */
const dpt_entry *dpt_find(const dpt *d, wd_relid rel, wd_blkno blk);

static inline bool dpt_is_dirty(const dpt_entry *e)
{
	return e->rec_lsn != DPT_CLEAN;
}

/* Whether the table rules out any change a record names (I7 found one
 * on disk): if not, every record lies at or after its page's recLSN and
 * redo need not ask (no checkpoint since the redo point, or nothing was
 * written between its redo point and its listing). */
bool dpt_rules_out_any(const dpt *d);

/* Pages in the dirty page table (the report's dpt_pages), and pages any
 * record or the checkpoint named, dirty or not. */
size_t dpt_pages(const dpt *d);
size_t dpt_known(const dpt *d);

/*
 * Where redo starts (P5 step 1): the smallest recLSN, moved to the first
 * record at or after it (a page the checkpoint's table made dirty with no
 * record since has its first record after the checkpoint record: from
 * there), or end if no page is dirty.
 */
wd_lsn dpt_redo_start(const dpt *d, wd_lsn end);

/* The dirty pages, sorted by relation and block, into a malloc'd array
 * (*out NULL when *n is 0). WD_ENOMEM. */
int dpt_sorted(const dpt *d, dpt_entry **out, size_t *n) WD_MUST_CHECK;

#endif
