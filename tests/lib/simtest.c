/*
 * simtest.c - see simtest.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "storage/sim.h"
#include "tests/lib/simtest.h"
#include "tests/lib/testutil.h"

int simtest_setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);
	e->db = tu_tmpdir("sim-db");
	e->jdir = tu_tmpdir("sim-j");
	e->file = tu_path(e->db, "f");
	*state = e;
	return 0;
}

int simtest_teardown(void **state)
{
	struct env *e = *state;
	storage_sim_stop();
	tu_rmrf(e->db);
	tu_rmrf(e->jdir);
	free(e->db);
	free(e->jdir);
	free(e->file);
	free(e);
	return 0;
}

uint8_t *simtest_slurp(const char *path, size_t cap, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *b = malloc(cap);
	*len = 0;
	if (!fp) {
		free(b);
		return NULL;
	}
	*len = fread(b, 1, cap, fp);
	fclose(fp);
	return b;
}
