/*
 * fuzz.h - what the fuzz targets share: the entry point every target
 * defines (libFuzzer's), the mode byte that opens every input, a scratch
 * directory for the targets that need files, and a redo harness (a small
 * buffer pool over scratch relation files) that replays decoded WAL records
 * through the registered redo routines. Targets and invariants:
 * fuzz/README.md.
 *
 *   int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
 *   {
 *       fz_input in = fz_input_split(data, size);  mode byte + body
 *       if (in.mode & FZ_FIX) ... recompute the checksum of the body ...
 *       ... decode in.body, which may be anything ...
 *       if (decoded) fz_accepted++;
 *       return 0;
 *   }
 */
#ifndef WALDEN_FUZZ_H
#define WALDEN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "wal/record.h"
#include "wal/redo.h"

/* The entry point of each target: libFuzzer's name, also called by the
 * corpus replay (fuzz/replay.c). Always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Name of the target linked in (for the replay's messages and the corpus
 * folder fuzz/corpus/<name>). */
extern const char fz_target_name[];

/* Inputs whose structure the target's main decoder accepted (checksum
 * and all): the replay checks that its corpus reaches past the checks. */
extern uint64_t fz_accepted;

/* Bit 0 of the mode byte, in every target: recompute the checksums (CRCs)
 * of the input before decoding it, so that mutated bytes reach the
 * structure decoders behind them. Other bits are the target's. */
#define FZ_FIX 0x01u

typedef struct fz_input {
	uint8_t mode;          /* first byte (0 for an empty input) */
	const uint8_t *body;   /* the rest */
	size_t len;
} fz_input;

fz_input fz_input_split(const uint8_t *data, size_t size);

/* A writable copy of in.body padded with zeroes (or cut) to exactly n
 * bytes; malloc'd, the caller frees. Aborts if out of memory. */
uint8_t *fz_copy_padded(const fz_input *in, size_t n);

/* The process's scratch directory (created on first use under $TMPDIR,
 * default /tmp; removed with its files at exit). Aborts if it cannot be
 * made. */
const char *fz_scratch(void);

/* Writes len bytes as scratch file `name` (replacing it); returns its path
 * in out. Aborts on an I/O error. */
void fz_write_file(const char *name, const void *data, size_t len, char *out,
		   size_t cap);

/* A log in the scratch directory (created on first use, one per process,
 * no writer thread) for handles that require one though the target only
 * reads: btree_open. Aborts if it cannot be made. */
struct wal *fz_wal(uint32_t page_size);

/* ---- redo harness ----
 * fz_redo_begin: a fresh pool of 16 pages of page_size over relation files
 * in the scratch directory (removed at fz_redo_end, so every input starts
 * from empty files). Block references past block 15 and relations past
 * the eighth distinct one are treated as the dirty page table treats
 * pages that need no redo (skip_block), so a record cannot make a target
 * write gigabytes. */
void fz_redo_begin(uint32_t page_size);
/* wal_rmgr_redo of rec in the harness's redo_ctx; its result. */
int fz_redo(const wal_decoded *rec);
void fz_redo_end(void);

/*
 * The "clean error" invariant: rc must be 0 or one of the WD_E* codes
 * (positive results a decoder documents are allowed up to max_positive),
 * and a failure other than WD_NOTFOUND must leave a detail (wd_last_error
 * not empty since fz_clear_error). Aborts,
 * naming what, otherwise: the fuzzer reports it as a crash. Returns rc.
 */
int fz_check_rc(int rc, int max_positive, const char *what);
void fz_clear_error(void);

/* Registers every resource manager once (aborts on failure). */
void fz_register_rmgrs(void);

#endif
