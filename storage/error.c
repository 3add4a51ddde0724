/*
 * error.c - wd_strerror, and the per-thread detail behind wd_last_error().
 *
 * The detail is thread-local rather than per-database: several threads share
 * one database, and a per-database buffer would let one thread's failure
 * overwrite the message another thread is about to read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "storage/error.h"

#define ERRMSG_MAX 512

static _Thread_local char errmsg[ERRMSG_MAX];

const char *wd_strerror(int err)
{
	switch (err) {
	case WD_OK: return "success";
	case WD_NOTFOUND: return "not found";
	case WD_EINVAL: return "invalid argument";
	case WD_ENOMEM: return "out of memory";
	case WD_EIO: return "I/O error";
	case WD_ENOSPC: return "no space left on device";
	case WD_ECORRUPT: return "data corrupted on disk";
	case WD_EPANIC: return "database in panic state after a failed durable write; reopen to recover";
	case WD_EBUSY: return "resource busy";
	case WD_EEXIST: return "already exists";
	case WD_ENOENT: return "no such file or directory";
	case WD_ENOTSUP: return "operation not supported";
	case WD_EACCES: return "permission denied";
	case WD_ENOBUFS: return "no free buffer: every page of the pool is pinned";
	case WD_EVERSION: return "unsupported on-disk format version";
	case WD_EFOREIGN: return "file belongs to another database";
	case WD_ETOOBIG: return "size exceeds its limit";
	case WD_EDEADLOCK: return "deadlock detected; transaction chosen as victim";
	case WD_ETIMEDOUT: return "timed out";
	case WD_ESTATE: return "not allowed in the current state";
	}
	return "unknown error code";
}

const char *wd_last_error(void)
{
	return errmsg;
}

const char *wd_version(void)
{
	return WALDEN_VERSION_STRING;
}

int err_code_from_errno(int errnum)
{
	switch (errnum) {
	case ENOSPC:
	case EDQUOT: return WD_ENOSPC;
	case ENOENT:
	case ENOTDIR: return WD_ENOENT;
	case EEXIST: return WD_EEXIST;
	case EACCES:
	case EPERM:
	case EROFS: return WD_EACCES;
	case ENOMEM: return WD_ENOMEM;
	case EINVAL: return WD_EINVAL;
	case EBUSY:
	case EAGAIN: return WD_EBUSY;
	default: return WD_EIO;
	}
}

/* Formats into a copy first: an argument may be wd_last_error() itself
 * ("...: %s", wd_last_error()), and vsnprintf must not read the buffer it
 * writes. */
static void set_msg(const char *fmt, va_list ap)
{
	char msg[ERRMSG_MAX];
	vsnprintf(msg, sizeof msg, fmt, ap);
	memcpy(errmsg, msg, sizeof errmsg);
}

int err_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	set_msg(fmt, ap);
	va_end(ap);
	return code;
}

int err_errno(int errnum, const char *fmt, ...)
{
	char head[ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	snprintf(errmsg, sizeof errmsg, "%.440s: %.60s", head, strerror(errnum));
	return err_code_from_errno(errnum);
}

int err_wrap(int code, const char *fmt, ...)
{
	char head[ERRMSG_MAX], old[ERRMSG_MAX];
	va_list ap;
	memcpy(old, errmsg, sizeof old);
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	snprintf(errmsg, sizeof errmsg, "%.200s: %.300s", head, old);
	return code;
}
