/*
 * replay.c - the corpus replay: a cmocka suite linked with one fuzz
 * target's entry point instead of libFuzzer, so `make test` feeds every
 * file of fuzz/corpus/<target>/ through the target in the release, ASan+UBSan
 * and clang builds. A decoder that crashes, reads outside its buffer or
 * returns something other than a walden error code on a corpus file fails
 * the suite (the target aborts, or the sanitizer stops it).
 *
 * WALDEN_FUZZ_CORPUS=dir replays another folder (a crash reproducer's).
 * All six targets take 2 to 10 s in release and 6 to 12 s under
 * ASan+UBSan (measured; file I/O in $TMPDIR dominates: wal_segment writes
 * files for every input).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fuzz/fuzz.h"

static char corpus[4096];

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The corpus's file names, sorted (a replay in a fixed order). */
static char **list_corpus(size_t *n)
{
	DIR *d = opendir(corpus);
	struct dirent *e;
	char **names = NULL;
	size_t cap = 0;
	*n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			names = realloc(names, cap * sizeof *names);
			assert_non_null(names);
		}
		names[(*n)++] = strdup(e->d_name);
	}
	closedir(d);
	if (*n)
		qsort(names, *n, sizeof *names, cmp_names);
	return names;
}

/* Reads a whole file; aborts the test on an error. */
static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;
	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	*len = (size_t)st.st_size;
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

/* Every corpus file goes through the target without a crash, and some of
 * them get past the checksums into the structure decoders (a corpus of
 * rejected inputs would prove nothing about the decoders behind them). */
static void test_replay_corpus(void **state)
{
	size_t n, len;
	char **names = list_corpus(&n);
	char path[8192];
	(void)state;
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", corpus, names[i]);
		uint8_t *buf = read_all(path, &len);
		assert_int_equal(LLVMFuzzerTestOneInput(buf, len), 0);
		free(buf);
		free(names[i]);
	}
	free(names);
	printf("%s: %zu corpus files replayed, %llu accepted by the decoder\n",
	       fz_target_name, n, (unsigned long long)fz_accepted);
	assert_true(fz_accepted > 0);
}

/* Empty, one-byte and all-0xff inputs of every length up to a few pages:
 * the edges a corpus does not keep (each mode byte). */
static void test_edges(void **state)
{
	static uint8_t buf[3 * 4096 + 1];
	(void)state;
	assert_int_equal(LLVMFuzzerTestOneInput(NULL, 0), 0);
	for (unsigned mode = 0; mode < 8; mode++) {
		for (size_t len = 1; len <= sizeof buf; len = len < 64 ? len + 1 : len * 2 + 1) {
			memset(buf, 0xff, len);
			buf[0] = (uint8_t)mode;
			assert_int_equal(LLVMFuzzerTestOneInput(buf, len), 0);
			memset(buf, 0, len);
			buf[0] = (uint8_t)mode;
			assert_int_equal(LLVMFuzzerTestOneInput(buf, len), 0);
		}
	}
}

int main(void)
{
	const char *env = getenv("WALDEN_FUZZ_CORPUS");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_corpus),
		cmocka_unit_test(test_edges),
	};
	if (env && *env)
		snprintf(corpus, sizeof corpus, "%s", env);
	else
		snprintf(corpus, sizeof corpus, "fuzz/corpus/%s", fz_target_name);
	return cmocka_run_group_tests_name(fz_target_name, tests, NULL, NULL);
}
