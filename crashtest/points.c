/*
 * points.c - the list of crash points (points.def) as a table. Entry
 * points: ct_point_count, ct_point_name, ct_point_module.
 */
#include "crashtest/crashtest.h"

static const struct {
	const char *name, *module;
} points[] = {
#define POINT(name, module) {name, module},
#include "crashtest/points.def"
#undef POINT
};

size_t ct_point_count(void)
{
	return sizeof points / sizeof points[0];
}

const char *ct_point_name(size_t i)
{
	return i < ct_point_count() ? points[i].name : NULL;
}

const char *ct_point_module(size_t i)
{
	return i < ct_point_count() ? points[i].module : NULL;
}
