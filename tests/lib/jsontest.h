/*
 * jsontest.h - reading the JSON a tool prints, for the suites that check
 * `--json` output: a strict syntax check (RFC 8259 values, one per text)
 * and the value at a path of object keys and array indexes.
 *
 *   if (!jt_valid(line)) fail...;
 *   double b;
 *   jt_number(line, "recovery.all-pages.wal_bytes", &b);
 *   jt_number(line, "settings.0.max_wal_mb", &b);   // arrays: an index
 */
#ifndef WALDEN_JSONTEST_H
#define WALDEN_JSONTEST_H

#include <stdbool.h>
#include <stddef.h>

/* Whether s (up to its NUL) is exactly one JSON value, blanks around. */
bool jt_valid(const char *s);

/* The number at path (keys and indexes joined by '.') in the JSON text s
 * into *out; false if s does not hold a number there. */
bool jt_number(const char *s, const char *path, double *out);

/* The string at path copied (without quotes, escapes left as they are)
 * into buf of cap bytes; false if there is none or it does not fit. */
bool jt_string(const char *s, const char *path, char *buf, size_t cap);

/* The number of members of the object or elements of the array at path
 * ("" for the whole text); -1 if there is no object or array there. */
int jt_count(const char *s, const char *path);

#endif
