/*
 * error.h - error codes and the per-thread error detail shared by every
 * module. The codes themselves are public (include/walden.h); this header
 * gives modules the helpers that set the detail and return the code.
 */
#ifndef WALDEN_STORAGE_ERROR_H
#define WALDEN_STORAGE_ERROR_H

#include "walden.h"

#define WD_MUST_CHECK __attribute__((warn_unused_result))
#define WD_PRINTF(a, b) __attribute__((format(printf, a, b)))

/*
 * Records a detail message for the calling thread and returns code, so
 * that a failure reads:   return err_set(WD_ECORRUPT, "%s: bad magic", path);
 * An argument may be wd_last_error() itself (the old detail, quoted).
 */
int err_set(int code, const char *fmt, ...) WD_PRINTF(2, 3);

/*
 * Maps errnum to a WD_E* code (ENOSPC -> WD_ENOSPC, ENOENT -> WD_ENOENT, ...,
 * anything unknown -> WD_EIO), records "<message>: <strerror(errnum)>" and
 * returns the code.
 */
int err_errno(int errnum, const char *fmt, ...) WD_PRINTF(2, 3);

/* The WD_E* code for an errno value. */
int err_code_from_errno(int errnum);

/* Prefixes the current detail with more context: "ctx: <old detail>". */
int err_wrap(int code, const char *fmt, ...) WD_PRINTF(2, 3);

#endif
