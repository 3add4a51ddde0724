/*
 * trace.h - protocol tracing, compiled in and off by default.
 * One line per protocol event; turned on per module by WALDEN_TRACE.
 *   TRACE(TR_BUFMGR, "write rel=%u blk=%u", rel, blk);
 */
#ifndef WALDEN_STORAGE_TRACE_H
#define WALDEN_STORAGE_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "storage/error.h"

enum trace_module {
	TR_STORAGE = 1u << 0,
	TR_BUFMGR = 1u << 1,
	TR_WAL = 1u << 2,
	TR_UNDO = 1u << 3,
	TR_HEAP = 1u << 4,
	TR_BTREE = 1u << 5,
	TR_TXN = 1u << 6,
	TR_RECOVERY = 1u << 7,
};

extern _Atomic unsigned trace_mask;
void trace_init(void);
void trace_emit(unsigned module, const char *fmt, ...) WD_PRINTF(2, 3);

static inline bool trace_on(unsigned module)
{
	trace_init();
	return (atomic_load_explicit(&trace_mask, memory_order_relaxed) & module) != 0;
}

#define TRACE(mod, ...)                                                      \
	do {                                                                 \
		if (trace_on(mod))                                           \
			trace_emit((mod), __VA_ARGS__);                      \
	} while (0)

#endif
