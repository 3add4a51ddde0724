/*
 * workload.c - the table of built-in workloads (README "Workloads").
 * Entry points: ct_workload_find, ct_workload_names, ct_workload_summary.
 */
#include <string.h>

#include "crashtest/ct_internal.h"

static const ct_workload *const all[] = {&ct_wl_det, &ct_wl_random, &ct_wl_bank, &ct_wl_ring};

const char *const ct_workload_names[] = {"det", "random", "bank", "ring", NULL};

const ct_workload *ct_workload_find(const char *name)
{
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (name && strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

const char *ct_workload_summary(const char *name)
{
	const ct_workload *w = ct_workload_find(name);
	return w ? w->summary : NULL;
}
