/*
 * trace.c - the trace switchboard: WALDEN_TRACE parsing, the callback, and
 * the default sink (stderr, used only when tracing was asked for).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/trace.h"

_Atomic unsigned trace_mask;

static const struct {
	const char *name;
	unsigned bit;
} modules[] = {
	{"storage", TR_STORAGE}, {"bufmgr", TR_BUFMGR}, {"wal", TR_WAL},
	{"undo", TR_UNDO},       {"heap", TR_HEAP},     {"btree", TR_BTREE},
	{"txn", TR_TXN},         {"recovery", TR_RECOVERY},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static wd_trace_fn sink_fn;
static void *sink_arg;

/* Turns a comma list of module names (or "all") into a bit mask. */
static int parse_modules(const char *list, unsigned *mask)
{
	char buf[256];
	*mask = 0;
	if (strlen(list) >= sizeof buf)
		return err_set(WD_EINVAL, "trace module list too long");
	strcpy(buf, list);
	for (char *save, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		unsigned bit = 0;
		if (strcmp(tok, "all") == 0)
			bit = ~0u;
		for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++)
			if (strcmp(tok, modules[i].name) == 0)
				bit = modules[i].bit;
		if (!bit)
			return err_set(WD_EINVAL, "unknown trace module '%s'", tok);
		*mask |= bit;
	}
	return 0;
}

static void init_from_env(void)
{
	const char *env = getenv("WALDEN_TRACE");
	unsigned mask;
	if (env && parse_modules(env, &mask) == 0)
		atomic_fetch_or(&trace_mask, mask);
}

void trace_init(void)
{
	pthread_once(&once, init_from_env);
}

int wd_trace_enable(const char *list)
{
	unsigned mask;
	int rc;
	trace_init();
	rc = parse_modules(list, &mask);
	if (rc == 0)
		atomic_store(&trace_mask, mask);
	return rc;
}

void wd_trace_set_callback(wd_trace_fn fn, void *arg)
{
	pthread_mutex_lock(&sink_lock);
	sink_fn = fn;
	sink_arg = arg;
	pthread_mutex_unlock(&sink_lock);
}

void trace_emit(unsigned module, const char *fmt, ...)
{
	const char *name = "?";
	char line[512];
	va_list ap;
	for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++)
		if (modules[i].bit == module)
			name = modules[i].name;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&sink_lock);
	if (sink_fn)
		sink_fn(sink_arg, name, line);
	else
		fprintf(stderr, "%s %s\n", name, line);
	pthread_mutex_unlock(&sink_lock);
}
