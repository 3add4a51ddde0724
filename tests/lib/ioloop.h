/*
 * ioloop.h - the I/O-error loop of det (crashtest/README.md, section "I/O
 * errors"), run in IOL_PARTS parts, one test suite each
 * (tests/unit/test_ioerr_loop_N.c): part p takes the loop's steps p,
 * p + IOL_PARTS, p + 2 x IOL_PARTS, ... (the I/O calls k = 1 + step x
 * stride), each with EIO once, EIO from then on and ENOSPC, so the parts
 * together are the whole loop and each costs about the same (a state
 * costs more the later its k). The loop resolves its steps drop-all and
 * random:k by turns, so with four parts, 1 and 3 resolve drop-all and
 * 2 and 4 random: the same states as the whole loop. Linked into those
 * suites only: it drives the crashtest module.
 *
 * Time: the whole loop in release is 10,437 states (det seed 1, every k;
 * all OK), some 750 CPU-seconds in all: a part takes 183 to 191 (about
 * 100 user, 88 system, the children included); on the 2-core machine
 * shared with other work 146 s alone at a load of 3 to 4.5, 175-290 s at
 * 5 to 11, 330 s beside another part; about 100 s alone on two idle
 * cores (estimated). Under AddressSanitizer (every 125th k) 21 states and
 * 5-6 s a part.
 */
#ifndef WALDEN_IOLOOP_H
#define WALDEN_IOLOOP_H

#include <stdint.h>

#define IOL_PARTS 4

/* The loop's stride: $WALDEN_IOERR_STRIDE if set, else every I/O call in
 * release and every 125th or so under AddressSanitizer (25 /
 * WALDEN_TEST_SCALE). */
uint64_t iol_stride(void);

/*
 * Runs part `part` (0..IOL_PARTS-1) of the loop with 2 jobs, scratch in
 * /dev/shm unless $TMPDIR says otherwise, and asserts (cmocka) that every
 * state passed, that the part ran as many states of each error as its
 * steps, and that nearly every error fired. Prints the counts and the
 * time per state.
 */
void iol_run_part(unsigned part);

#endif
