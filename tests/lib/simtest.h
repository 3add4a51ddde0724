/*
 * simtest.h - the scratch environment of the power-loss simulator suites
 * (test_sim, test_sim_conc): a "database" directory with one file name in
 * it and a journal directory, as cmocka setup/teardown functions.
 */
#ifndef WALDEN_SIMTEST_H
#define WALDEN_SIMTEST_H

#include <stddef.h>
#include <stdint.h>

struct env {
	char *db;   /* the "database" directory */
	char *jdir; /* the journal directory */
	char *file; /* db/f */
};

/* cmocka setup: *state becomes a fresh struct env. */
int simtest_setup(void **state);

/* cmocka teardown: stops tracking, removes both directories, frees. */
int simtest_teardown(void **state);

/* The first cap bytes of path (malloc'd) and their count; NULL if absent. */
uint8_t *simtest_slurp(const char *path, size_t cap, size_t *len);

#endif
