/*
 * types.h - domain types shared by every module. An LSN never lives in a
 * bare int.
 */
#ifndef WALDEN_STORAGE_TYPES_H
#define WALDEN_STORAGE_TYPES_H

#include <stdint.h>

typedef uint64_t wd_lsn;   /* byte position in the WAL stream */
typedef uint64_t wd_xid;   /* transaction id, never reused */
typedef uint32_t wd_blkno; /* block number within a relation file */
typedef uint32_t wd_relid; /* relation (page file) number */

#define WD_INVALID_LSN ((wd_lsn)0)
#define WD_INVALID_BLKNO ((wd_blkno)0xFFFFFFFFu)

/* LSNs print as two 32-bit hex halves, like PostgreSQL: "0/1A2B3C". */
#define LSN_FMT "%X/%X"
#define LSN_ARGS(l) (unsigned)((l) >> 32), (unsigned)(l)

#endif
