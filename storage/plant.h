/*
 * plant.h - known recovery bugs a test build can plant in the engine, one at
 * a time, to prove the crash campaign catches them (storage/README.md
 * section "Planted bugs", the meta-test tests/unit/test_meta.c).
 *
 *   if (WD_PLANTED("commit-no-fsync"))  // the bug: skip the right step
 *           return wal_write_upto(w, goal);
 *
 * In every normal build WD_PLANTED(name) is the constant false and the
 * compiler drops the planted branch. Built with -DWALDEN_PLANTS (make
 * MODE=plant) it is true when the environment variable WALDEN_PLANT names
 * name; the variable is read once per process (again after a fork).
 */
#ifndef WALDEN_STORAGE_PLANT_H
#define WALDEN_STORAGE_PLANT_H

#include <stdbool.h>

#ifdef WALDEN_PLANTS
bool storage_planted(const char *name);
#define WD_PLANTED(name) storage_planted(name)
#else
#define WD_PLANTED(name) false
#endif

#endif /* WALDEN_STORAGE_PLANT_H */
