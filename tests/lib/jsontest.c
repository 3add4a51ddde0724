/*
 * jsontest.c - a small strict JSON reader for the tests (jsontest.h): a
 * recursive-descent skip of one value is all it needs, both to check the
 * syntax and to walk to the value at a path.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/jsontest.h"

#define MAX_DEPTH 64

static const char *blanks(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* A string at p: the position after its closing quote, or NULL. */
static const char *skip_string(const char *p)
{
	if (*p != '"')
		return NULL;
	for (p++; *p && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p != '\\')
			continue;
		p++;
		if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (!isxdigit((unsigned char)p[i]))
					return NULL;
			p += 4;
		} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
			return NULL;
		}
	}
	return *p == '"' ? p + 1 : NULL;
}

static const char *skip_digits(const char *p)
{
	if (!isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	return p;
}

/* A number at p (-? int frac? exp?): the position after it, or NULL. */
static const char *skip_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (!(p = skip_digits(p)))
		return NULL;
	if (*p == '.' && !(p = skip_digits(p + 1)))
		return NULL;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		p = skip_digits(p);
	}
	return p;
}

static const char *skip_value(const char *p, int depth);

/* The members of an object or elements of an array at p ('{' or '['):
 * the position after it, or NULL; *n counts them if n is not NULL. */
static const char *skip_container(const char *p, int depth, int *n)
{
	char close = *p == '{' ? '}' : ']';
	int count = 0;
	p = blanks(p + 1);
	if (*p == close) {
		if (n)
			*n = 0;
		return p + 1;
	}
	for (;;) {
		if (close == '}') {
			if (!(p = skip_string(blanks(p))) || *(p = blanks(p)) != ':')
				return NULL;
			p++;
		}
		if (!(p = skip_value(p, depth + 1)))
			return NULL;
		count++;
		p = blanks(p);
		if (*p == close)
			break;
		if (*p++ != ',')
			return NULL;
	}
	if (n)
		*n = count;
	return p + 1;
}

/* One value after blanks at p: the position after it, or NULL. */
static const char *skip_value(const char *p, int depth)
{
	p = blanks(p);
	if (depth > MAX_DEPTH)
		return NULL;
	switch (*p) {
	case '{':
	case '[': return skip_container(p, depth, NULL);
	case '"': return skip_string(p);
	case 't': return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f': return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n': return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
	default: return skip_number(p);
	}
}

bool jt_valid(const char *s)
{
	const char *end = skip_value(s, 0);
	return end && *blanks(end) == '\0';
}

/* In the object or array at p, the value named by the path component
 * [name, name + len): a key, or an index. NULL if absent. */
static const char *member(const char *p, const char *name, size_t len)
{
	bool obj = *p == '{';
	long want = obj ? -1 : strtol(name, NULL, 10);
	if ((*p != '{' && *p != '[') || (!obj && !isdigit((unsigned char)*name)))
		return NULL;
	p = blanks(p + 1);
	for (long i = 0; *p && *p != '}' && *p != ']'; i++) {
		bool hit = i == want;
		if (obj) {
			const char *k = p, *after = skip_string(p);
			if (!after)
				return NULL;
			hit = (size_t)(after - k - 2) == len && strncmp(k + 1, name, len) == 0;
			p = blanks(after) + 1; /* past ':' */
		}
		p = blanks(p);
		if (hit)
			return p;
		if (!(p = skip_value(p, 1)))
			return NULL;
		p = blanks(p);
		if (*p == ',')
			p = blanks(p + 1);
	}
	return NULL;
}

/* The value at path in a valid text s, after blanks; NULL if absent. */
static const char *find(const char *s, const char *path)
{
	const char *p = blanks(s);
	if (!jt_valid(s))
		return NULL;
	while (p && *path) {
		size_t len = strcspn(path, ".");
		p = member(p, path, len);
		path += len + (path[len] == '.');
	}
	return p;
}

bool jt_number(const char *s, const char *path, double *out)
{
	const char *p = find(s, path);
	if (!p || (*p != '-' && !isdigit((unsigned char)*p)))
		return false;
	*out = strtod(p, NULL);
	return true;
}

bool jt_string(const char *s, const char *path, char *buf, size_t cap)
{
	const char *p = find(s, path), *end;
	size_t len;
	if (!p || !(end = skip_string(p)))
		return false;
	len = (size_t)(end - p - 2);
	if (len >= cap)
		return false;
	memcpy(buf, p + 1, len);
	buf[len] = '\0';
	return true;
}

int jt_count(const char *s, const char *path)
{
	const char *p = find(s, path);
	int n;
	if (!p || (*p != '{' && *p != '[') || !skip_container(p, 0, &n))
		return -1;
	return n;
}
