/*
 * crashtest.h - crash-injection campaigns with an LMDB oracle: what
 * `walden crashtest` (tools/crashtest.c) and the tests use. A campaign runs
 * many crash *states*: a child process runs a deterministic workload
 * against a fresh (or prepared) database and dies at a trigger; the power
 * loss simulator may then turn its files into one state a power cut allows;
 * a second child recovers (wd_open), dumps every table and checks them; the
 * driver compares the dump with what the workload's acknowledged commits
 * say must be there and gives a verdict. Protocol, oracle rules, verdict
 * classes and workloads: crashtest/README.md.
 *
 *   ct_config c;
 *   ct_config_default(&c);
 *   c.workload = "det"; c.states = 200; c.faults = CT_FAULTS_ALL;
 *   ct_summary s;
 *   ct_campaign_run(&c, &s);          // progress on c.progress
 *   ct_summary_print(&s, &c, stdout);  // ends "N passed, N failed"
 *   ct_summary_free(&s);
 */
#ifndef WALDEN_CRASHTEST_H
#define WALDEN_CRASHTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "storage/error.h"
#include "walden.h"

/* ---- faults, triggers, resolutions -------------------------------------- */

typedef enum ct_fault {
	CT_KILL,  /* the process dies (kill -9): the page cache keeps every write */
	CT_POWER, /* power loss: unsynced changes kept, dropped, or some of each */
	CT_TORN,  /* power loss with torn writes (sectors of --tear bytes) */
	CT_EIO,   /* an I/O call fails with EIO (once or from then on), the
		   * workload goes on, then a power loss (README "I/O errors") */
	CT_ENOSPC, /* writes fail with ENOSPC until the child frees space,
		    * the workload must commit again, then a power loss */
	CT_NFAULTS
} ct_fault;
#define CT_FAULTS_ALL ((1u << CT_NFAULTS) - 1)

typedef enum ct_trigger_kind {
	CT_TRIG_POINT, /* die at the n-th hit of a named crash point */
	CT_TRIG_IO,    /* die just before the n-th I/O call of the child */
} ct_trigger_kind;

/* CT_TRIG_IO with an error: at I/O call n the child does not die, an
 * error is injected (CT_EIO, CT_ENOSPC; README "I/O errors"). */
typedef enum ct_ioerr {
	CT_IOERR_NONE,      /* die before call n */
	CT_IOERR_EIO_ONCE,  /* call n fails with EIO, later calls work */
	CT_IOERR_EIO,       /* call n and every later call fail with EIO */
	CT_IOERR_ENOSPC,    /* the first write or allocation from call n on and
			     * every later one fail with ENOSPC, until the
			     * child frees space */
	CT_NIOERR
} ct_ioerr;

typedef struct ct_trigger {
	ct_trigger_kind kind;
	char point[64]; /* CT_TRIG_POINT */
	uint64_t n;     /* hit number or I/O index, from 1 */
	ct_ioerr err;   /* CT_TRIG_IO: the error injected at n, or none */
} ct_trigger;

/* How the files of a crashed child become the crash state. */
typedef enum ct_res {
	CT_RES_KILL,     /* as the killed process left them (CT_KILL) */
	CT_RES_KEEP_ALL, /* power loss: every unsynced change survived */
	CT_RES_DROP_ALL, /* power loss: every unsynced change was lost */
	CT_RES_RANDOM,   /* power loss: each kept or lost, by res_seed */
	CT_RES_TORN,     /* power loss: each kept, lost or torn, by res_seed */
	CT_NRES
} ct_res;

/* One crash state of a campaign: everything needed to run it again. */
typedef struct ct_spec {
	uint64_t seed;  /* the campaign's */
	uint64_t index; /* 0, 1, 2, ... */
	ct_fault fault;
	ct_trigger trig;
	ct_res res;
	uint64_t res_seed; /* CT_RES_RANDOM / CT_RES_TORN */
	/* a prefix state (README "Prefix states"): cut from the journal of
	 * run number `run` just before its I/O call `at` (the trigger says
	 * why that call); at == 0: a state of its own run (the trigger
	 * armed in the workload child) */
	uint64_t run, at;
} ct_spec;

/* ---- verdicts ------------------------------------------------------------ */

/* In order of severity, most severe last (a state's verdict is the most
 * severe problem found). README "Verdict classes". */
typedef enum ct_verdict {
	CT_OK,
	CT_CHILD_ERROR,    /* the workload failed with an error of its own */
	CT_INVARIANT,      /* the workload's invariant broken (bank, ring) */
	CT_PARTIAL,        /* part of a transaction visible */
	CT_DIRTY,          /* an aborted or unfinished transaction visible */
	CT_LOST_ACK,       /* an acknowledged commit missing */
	CT_SILENT_CORRUPT, /* a damaged value read without an error */
	CT_STRUCT,         /* a check fails after recovery */
	CT_NO_RECOVERY,    /* the open failed (or died) on an allowed state */
	CT_NVERDICTS
} ct_verdict;

const char *ct_verdict_name(ct_verdict v);
const char *ct_fault_name(ct_fault f);
const char *ct_res_name(ct_res r);
const char *ct_ioerr_name(ct_ioerr e); /* "eio-once", "eio", "enospc" */

/* ---- test-only planted faults (README "Planted faults") ------------------- */

typedef enum ct_plant {
	CT_PLANT_NONE,
	CT_PLANT_ACK_UNDURABLE, /* the child acknowledges each commit before
				 * it calls wd_commit, which it makes
				 * asynchronous: not durable when reported */
	CT_PLANT_CORRUPT_VALUE, /* the recovery child flips a byte of the
				 * first value it reads */
	CT_PLANT_DROP_KEY,      /* the recovery child hides the first key of
				 * the workload's first table */
	CT_PLANT_BAD_READ,      /* the workload child's 20th read reports its
				 * value damaged (WD_ECORRUPT) while its
				 * transaction holds row locks */
	CT_PLANT_STALL,         /* the workload child, after START, waits
				 * CT_PLANT_STALL_S in silence before its
				 * work */
	CT_PLANT_CHATTER,       /* the workload child, after START, sends
				 * START again every 10 ms for
				 * CT_PLANT_STALL_S before its work */
	CT_PLANT_CHATTER_RECOVERY, /* the recovery child does the same
				    * with STRUCT before wd_open */
	CT_PLANT_FOREIGN_JOURNAL, /* the workload child overwrites its
				   * power-loss journal's magic */
} ct_plant;

#define CT_PLANT_STALL_S 90 /* the stall and chatter plants' length, s */

/* ---- configuration ------------------------------------------------------- */

/*
 * A full check of a recovered, cleanly closed database (the tool passes
 * `walden check`), opened with the workload's options o (its buffer and
 * WAL buffer sizes: the defaults' 80 MiB cost more than the check). It
 * must run db_catalog_check and db_table_check of every table, which the
 * recovery child then leaves to it. Returns 0 if sound; otherwise writes
 * what is wrong into msg and returns non-zero. Runs in the recovery child.
 */
typedef int (*ct_check_fn)(const char *dir, const wd_options *o, char *msg, size_t cap);

struct ct_profile; /* below: what a run of the workload to its end did */

typedef struct ct_config {
	const char *workload;  /* "det", "random", "bank", "ring" */
	uint64_t seed;
	uint64_t states;       /* states to run; 0: until `minutes` pass */
	double minutes;
	unsigned faults;       /* bits 1 << ct_fault */
	int threads;           /* workload threads, 1..4 (det: always 1) */
	uint32_t tear_bytes;   /* sector size of torn writes: 512 or 4096 */
	int jobs;              /* states run in parallel, 1..64 */
	const char *keep_dir;  /* copy failing states here (NULL: no) */
	const char *work_dir;  /* scratch directory (NULL: $TMPDIR or /tmp) */
	ct_check_fn full_check;/* NULL: the engine's table checks only */
	FILE *progress;        /* progress lines (NULL: none) */
	uint64_t max_failures; /* stop after this many violations (0: never) */
	bool no_full_page_writes; /* the workload runs with full_page_writes
				   * off (no torn writes then) */
	ct_plant plant;        /* tests only */
	/* tests only: a workload or recovery child alive this long is hung
	 * and killed (0: 120 s) */
	double child_timeout_s;
	/* tests only: a WALDEN_FAULT spec (storage/storage.h) armed in each
	 * state's workload child (not the profile run); a workload that then
	 * fails ends as a crash (the panic state), not CHILD-ERROR */
	const char *io_faults;
	/* The spec of state i instead of pick's (a loop over every I/O call,
	 * ct_ioerr_every_k; NULL: pick), with its argument. A replay line
	 * still reproduces such a state: it gives the trigger. */
	void (*choose)(const struct ct_config *c, const struct ct_profile *p, uint64_t i,
		       ct_spec *s);
	uint64_t choose_arg;
	/* ct_ioerr_every_k in parts (one test suite each): this part takes
	 * the loop's steps loop_part, loop_part + loop_parts, ... (loop_parts
	 * 0 or 1: every step) */
	uint32_t loop_part, loop_parts;
	bool exhaustive;       /* det: every I/O index, four resolutions each */
	uint32_t stride;       /* exhaustive: every stride-th index (0, 1: all) */
	bool rerun;            /* one workload run per state (no prefixes) */
	uint32_t per_run;      /* prefix states cut from one run (0: 16) */
} ct_config;

void ct_config_default(ct_config *c);

/* The names of the built-in workloads, NULL-terminated, and one line each. */
extern const char *const ct_workload_names[];
const char *ct_workload_summary(const char *name);

/* ---- one state's result -------------------------------------------------- */

typedef struct ct_result {
	ct_spec spec;
	ct_verdict verdict;
	bool fired;           /* the trigger fired (else: ran to the end) */
	char *detail;         /* malloc'd lines: what was found (and why OK) */
	uint64_t acked, inflight, aborted, unfinished_writes;
	/* asynchronous commits acked 3 x wal_writer_delay before the crash,
	 * and those of them excused: no WAL writer cycle covered them */
	uint64_t async_old, async_excused;
	uint64_t keys;        /* rows in the recovered state */
	uint64_t digest;      /* of the recovered rows (FNV-1a over key, value) */
	uint64_t data_kept, data_dropped, data_torn; /* the power-loss plan */
	/* seconds: the workload child, the materialiser, the recovery child's
	 * wd_open, its reading and checking, the verdict */
	double t_workload, t_materialise, t_recovery, t_check, t_verdict;
	double recovery_ms;   /* wd_open of the recovery child */
} ct_result;

void ct_result_free(ct_result *r);

/* ---- the workload's profile ---------------------------------------------- */

/* What a run of the workload to its end (no trigger) did. */
typedef struct ct_profile {
	uint64_t io_calls;   /* I/O calls of the child */
	size_t npoints;      /* ct_point_count() */
	uint64_t *hits;      /* per crash point (ct_point_name(i)) */
	/* a logging run (README "Prefix states"): the I/O calls made before
	 * each hit, point i's in hit_io[hit_off[i] .. hit_off[i + 1]) in hit
	 * order; NULL otherwise */
	uint64_t *hit_io, *hit_off;
	/* what the workload did (README "Workloads") */
	uint64_t commits, async_commits, aborts, sp_rollbacks, deadlocks;
	uint64_t big_values, checkpoints, open_at_end, ops;
	/* from the WAL, with describe (det --describe) */
	bool described;
	uint64_t leaf_splits, internal_splits, unlinks, wal_checkpoints;
	uint64_t segment_switches, xact_aborts, clrs, overflow_writes, records;
} ct_profile;

void ct_profile_free(ct_profile *p);

/* ---- summary ------------------------------------------------------------- */

typedef struct ct_violation {
	ct_spec spec;
	ct_verdict verdict;
	char *first;   /* the first line of the detail */
} ct_violation;

typedef struct ct_summary {
	uint64_t states, passed, failed;
	uint64_t by_fault[CT_NFAULTS];
	uint64_t by_ioerr[CT_NIOERR]; /* eio and enospc states per error */
	uint64_t by_trigger[2], ran_to_end;
	uint64_t by_res[CT_NRES];
	uint64_t by_verdict[CT_NVERDICTS];
	uint64_t async_old, async_excused; /* sums over the states (ct_result) */
	uint64_t *point_fired;   /* per crash point: states that died there */
	size_t npoints;
	uint64_t io_distinct, io_max; /* distinct I/O indices that fired */
	uint64_t runs;                /* workload runs the states came from */
	bool exhaustive;
	uint64_t stride;              /* exhaustive: every stride-th index */
	double elapsed_s;
	double p50_recovery_ms, p99_recovery_ms;
	double t_workload, t_materialise, t_recovery, t_check, t_verdict; /* sums */
	ct_profile profile;
	size_t nviol;
	ct_violation *viol;
} ct_summary;

/*
 * Runs a campaign. Fills *s (free with ct_summary_free). Returns 0 when
 * every state ran (violations are in s, not an error), or a WD_E* code
 * when the campaign itself could not run (bad config: WD_EINVAL with the
 * reason in the detail; the workload's profile run failed; no scratch
 * space).
 */
int ct_campaign_run(const ct_config *c, ct_summary *s) WD_MUST_CHECK;

/* Prints the summary (README "Summary"), ending "N passed, N failed". */
void ct_summary_print(const ct_summary *s, const ct_config *c, FILE *out);
void ct_summary_free(ct_summary *s);

/* The command line that replays spec under c (for summaries, README files). */
void ct_replay_line(const ct_config *c, const ct_spec *spec, char *out, size_t cap);

/*
 * The I/O-error loop (README "I/O errors"): as c->choose, state i injects
 * each enabled error (eio: once, then from then on; enospc) in turn at I/O
 * call 1 + step x stride (stride = c->choose_arg, 0 meaning 1; step =
 * i / errors, or with c->loop_parts > 1 the (i / errors)-th step of part
 * c->loop_part: (i / errors) x loop_parts + loop_part), resolved drop-all
 * and random:K by turns. The spec's index is the whole loop's (step x
 * errors + i % errors), whatever the part. ct_ioerr_every_k_states is the
 * number of states (of the part) that covers 1..io_calls.
 */
void ct_ioerr_every_k(const ct_config *c, const struct ct_profile *p, uint64_t i,
		      ct_spec *s);
uint64_t ct_ioerr_every_k_states(const ct_config *c, uint64_t io_calls);

/* ---- replay and describe ------------------------------------------------- */

/*
 * Parses "SEED:INDEX:RESOLUTION" (RESOLUTION: kill, keep-all, drop-all,
 * random[:S], torn[:S]) into spec (seed, index, res, res_seed if given,
 * and the fault the resolution implies). *has_res_seed says whether S
 * was given. WD_EINVAL with the reason otherwise.
 */
int ct_parse_replay(const char *s, ct_spec *spec, bool *has_res_seed) WD_MUST_CHECK;

/* Parses "RUN:K" (a prefix state: run number, I/O call, K >= 1) into
 * spec->run and spec->at. WD_EINVAL otherwise. */
int ct_parse_at(const char *s, ct_spec *spec) WD_MUST_CHECK;

/* Parses "point:NAME:N", "io:N" or an injected error at I/O call N:
 * "eio-once:N", "eio:N", "enospc:N". WD_EINVAL otherwise. */
int ct_parse_trigger(const char *s, ct_trigger *t) WD_MUST_CHECK;

/*
 * Runs exactly one state: spec's seed and index; its trigger from the
 * profile unless trig is given; its resolution seed from the index unless
 * has_res_seed. A trigger with an injected error makes the fault eio or
 * enospc. *r gets the result with every problem in detail.
 */
int ct_replay(const ct_config *c, const ct_spec *spec, bool has_res_seed,
	      const ct_trigger *trig, ct_result *r) WD_MUST_CHECK;

/* Prints a result in detail (the replay's output). */
void ct_result_print(const ct_result *r, const ct_config *c, FILE *out);

/* Runs the workload to its end once and fills *p; describe also counts the
 * structure changes in its WAL (leaf and internal splits, ...). */
int ct_describe(const ct_config *c, bool describe, ct_profile *p) WD_MUST_CHECK;
void ct_profile_print(const ct_profile *p, const ct_config *c, FILE *out);

/* ---- crash points (crashtest/points.def) ---------------------------------- */

size_t ct_point_count(void);
const char *ct_point_name(size_t i);
const char *ct_point_module(size_t i);

#endif /* WALDEN_CRASHTEST_H */
