/*
 * plant.c - the switch of the planted bugs (plant.h): which one, if any, the
 * environment variable WALDEN_PLANT arms in this process. Compiled to
 * nothing unless WALDEN_PLANTS is defined. Entry point: storage_planted.
 */
#ifdef WALDEN_PLANTS
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/plant.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char armed[64]; /* the planted bug's name, or "" */

/* A forked child (the crash campaign's workload and recovery processes)
 * reads the variable again: its parent may have changed it since. */
static void after_fork(void)
{
	once = (pthread_once_t)PTHREAD_ONCE_INIT;
}

static void read_env(void)
{
	static bool registered;
	const char *v = getenv("WALDEN_PLANT");
	snprintf(armed, sizeof armed, "%s", v ? v : "");
	if (!registered) {
		registered = true;
		pthread_atfork(NULL, NULL, after_fork);
	}
}

bool storage_planted(const char *name)
{
	pthread_once(&once, read_env);
	return armed[0] && strcmp(armed, name) == 0;
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int storage_plant_unused;
#endif
