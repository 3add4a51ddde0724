/*
 * test_ioerr_loop_3.c - part 3 of 4 of the I/O-error loop
 * (crashtest/README.md, section "I/O errors"; tests/lib/ioloop.h): det
 * with EIO once, EIO from then on and ENOSPC injected at I/O call
 * k = 1 + (4 j + 2) x stride, j = 0, 1, ..., through the campaign
 * machinery with 2 jobs: every state OK (no crash or hang of the child,
 * no acknowledgement after a failed fsync or the panic, recovery correct
 * after a power loss, commits again once space returns), as many states
 * of each error as the part has steps, nearly every error fired. The
 * four parts together are the whole loop: in release every I/O call of
 * det (stride 1: about 10,440 states, 2,610 a part), under
 * AddressSanitizer every 125th (84 states, 21 a part);
 * WALDEN_IOERR_STRIDE=N takes every N-th.
 *
 * Time (scratch in /dev/shm): in release about 2,610 states, 183 to 191
 * CPU-seconds (children included); on the 2-core machine shared with
 * other work 146 s alone at a load of 3 to 4.5, 175-290 s at 5 to 11,
 * 330 s beside another part; so about 100 s alone on two idle cores
 * (estimated, not measured). Under AddressSanitizer 21 states, 5-6 s.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/ioloop.h"

static void test_ioerr_loop_part3(void **state)
{
	(void)state;
	iol_run_part(2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ioerr_loop_part3),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
