/*
 * ct_internal.h - what the files of crashtest/ share and nobody else uses:
 * the self-describing values (value.c), the pipe messages (wire.c), sets of
 * rows (kvset.c), the workload's side in the child (recorder.c, wl_*.c),
 * the driver's history of transactions and its LMDB oracle (history.c),
 * the verdict (verdict.c) and one state (state.c). See README.md.
 */
#ifndef WALDEN_CT_INTERNAL_H
#define WALDEN_CT_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crashtest/crashtest.h"
#include "walden.h"

/* ---- limits ---------------------------------------------------------------- */

#define CT_MAX_TABLES 4
#define CT_MAX_CKEY 480      /* composite key: under LMDB's 511-byte limit */
#define CT_MAX_PAYLOAD 64
#define CT_MAX_THREADS 4
#define CT_BASE_TXN_LIMIT (1ull << 40) /* ids of the preparation are below */
#define CT_EXTRA_TABLE (CT_MAX_TABLES - 1) /* a table no workload declares */

/* ---- value.c: the values every workload writes (README "Formats") -------- */

#define CT_VAL_HDR 24u
#define CT_VAL_MAGIC 0x31565443u /* "CTV1" little-endian */

/* What a value says about itself. */
typedef struct ct_tag {
	uint64_t txn;            /* the transaction that wrote it */
	uint32_t op;             /* the operation number within it (from 1) */
	uint32_t plen, total;    /* payload and whole-value length */
	const uint8_t *payload;  /* inside the value */
} ct_tag;

/* The composite key of the oracle: u8 table-name length, name, key. Returns
 * its length (0 if it would not fit CT_MAX_CKEY). */
size_t ct_ckey(const char *table, const void *k, size_t klen, uint8_t *out);

/* Splits a composite key into table name (copied, NUL-terminated, cap
 * >= 256) and the key within it. false if malformed. */
bool ct_ckey_split(const uint8_t *ck, size_t cklen, char *table, const uint8_t **k,
		   size_t *klen);

/* Writes the value (total bytes, total >= CT_VAL_HDR + plen) that txn's
 * op-th operation puts under ck. */
void ct_value_build(const uint8_t *ck, size_t cklen, uint64_t txn, uint32_t op,
		    const void *payload, uint32_t plen, uint32_t total, uint8_t *out);

/* Decodes v and checks that it is exactly what ct_value_build writes for
 * ck and its own header. true with *tag; false with *why. */
bool ct_value_check(const uint8_t *ck, size_t cklen, const uint8_t *v, size_t vlen,
		    ct_tag *tag, const char **why);

/* Readable form of a composite key: table/'key...' (at most cap bytes). */
void ct_ckey_str(const uint8_t *ck, size_t cklen, char *out, size_t cap);

/* FNV-1a 64 over bytes, continuing from h (start with CT_FNV_INIT). */
#define CT_FNV_INIT 0xcbf29ce484222325ull
uint64_t ct_fnv(uint64_t h, const void *p, size_t n);

/* splitmix64 (the same generator the tests use). */
static inline uint64_t ct_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* ---- wire.c: messages through a pipe (README "Protocols" P2) ---------- */

enum ct_msg_kind {
	/* workload child -> driver */
	CT_M_REQ = 1, /* a commit is about to be requested, with its writes */
	CT_M_ACK,     /* ... and wd_commit returned success */
	CT_M_ABORT,   /* a transaction was rolled back (for naming only) */
	CT_M_DONE,    /* the workload ran to its end: its counters */
	CT_M_ERROR,   /* the workload failed: text */
	CT_M_READY,   /* the database and its tables exist (durably) */
	/* recovery child -> driver */
	CT_M_OPENFAIL, /* wd_open failed: i32 code, text */
	CT_M_OPENED,   /* wd_open succeeded: recovery figures */
	CT_M_ROW,      /* one row of the recovered state */
	CT_M_STRUCT,   /* a check failed: text */
	CT_M_RDONE,    /* the recovery child finished: its timings */
	/* workload child -> driver, states with an injected I/O error
	 * (ioerr.c, README "I/O errors") */
	CT_M_IOFAULT,  /* the injected error fired: I/O call, operation, kind */
	CT_M_PANIC,    /* a call returned WD_EPANIC: text */
	CT_M_IOEND,    /* what the child did after the error: flags, commits */
	CT_M_START,    /* workload child: the I/O count it starts from */
	CT_M_WRITER,   /* the WAL writer starts (0) or ends (1) a cycle: time */
};

typedef struct ct_buf {
	uint8_t *p;
	size_t len, cap;
} ct_buf;

void ct_buf_free(ct_buf *b);
void ct_put_u8(ct_buf *b, uint8_t v);
void ct_put_u16(ct_buf *b, uint16_t v);
void ct_put_u32(ct_buf *b, uint32_t v);
void ct_put_u64(ct_buf *b, uint64_t v);
void ct_put_f64(ct_buf *b, double v);
void ct_put_bytes(ct_buf *b, const void *p, size_t n);
void ct_put_str(ct_buf *b, const char *s); /* u32 length, bytes */

/* Sends one message (u32 length, u8 kind, body) with whole writes.
 * Returns 0, or -1 if the pipe is gone. */
int ct_send(int fd, uint8_t kind, const ct_buf *body);

/* Reads whole messages from a pipe; a message cut short by the writer's
 * death is dropped (README "Protocols" P2). */
typedef struct ct_reader {
	int fd;
	ct_buf in;
	size_t off;
	bool eof;
} ct_reader;

/* 1: a message (body valid until the next call), 0: end of stream,
 * -1: error (errno). timeout_ms < 0 waits for ever; on a timeout returns
 * 2. */
int ct_recv(ct_reader *r, int timeout_ms, uint8_t *kind, const uint8_t **body,
	    size_t *len);
void ct_reader_free(ct_reader *r);

/* Parsing a body; a read past the end sets bad and yields zeros. */
typedef struct ct_cur {
	const uint8_t *p;
	size_t len, off;
	bool bad;
} ct_cur;

uint8_t ct_get_u8(ct_cur *c);
uint16_t ct_get_u16(ct_cur *c);
uint32_t ct_get_u32(ct_cur *c);
uint64_t ct_get_u64(ct_cur *c);
double ct_get_f64(ct_cur *c);
const uint8_t *ct_get_bytes(ct_cur *c, size_t n);
char *ct_get_str(ct_cur *c); /* malloc'd, NUL-terminated */

/* Seconds and nanoseconds on CLOCK_MONOTONIC (one clock for all processes). */
uint64_t ct_now_ns(void);
double ct_now_s(void);

/* ---- kvset.c: sets of rows ----------------------------------------------- */

typedef struct ct_kv {
	uint8_t *k;
	uint32_t klen;
	uint8_t *v;     /* NULL when absent (a delete) */
	uint32_t vlen;
	bool present;
	uint32_t op;    /* history: the operation number of the write */
} ct_kv;

typedef struct ct_kvset {
	ct_kv *kv;
	size_t n, cap;
} ct_kvset;

/* Adds a copy of (k, v); v NULL: an absent key (a delete). */
void ct_kvset_add(ct_kvset *s, const uint8_t *k, size_t klen, const uint8_t *v,
		  size_t vlen, bool present);
/* Sorts by key (memcmp, then length); with duplicates the last added wins. */
void ct_kvset_sort(ct_kvset *s);
/* The row of key k in a sorted set, or NULL. */
const ct_kv *ct_kvset_find(const ct_kvset *s, const uint8_t *k, size_t klen);
void ct_kvset_free(ct_kvset *s);
int ct_key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);
uint64_t ct_kvset_digest(const ct_kvset *s);

/* ---- workloads (workload.c, wl_*.c) -------------------------------------- */

typedef struct ct_run ct_run;

typedef struct ct_workload {
	const char *name;
	const char *summary;
	const char *tables[CT_MAX_TABLES]; /* NULL-terminated */
	bool threaded;                     /* honours --threads */
	void (*options)(wd_options *o);
	int (*prepare)(ct_run *r);         /* NULL: starts from nothing */
	int (*run)(ct_run *r);
	/* the workload's own invariant on the recovered rows (sorted), or
	 * NULL: 0 if it holds, else non-zero with msg */
	int (*invariant)(const ct_kvset *rows, char *msg, size_t cap);
} ct_workload;

const ct_workload *ct_workload_find(const char *name);
extern const ct_workload ct_wl_det, ct_wl_random, ct_wl_bank, ct_wl_ring;

/* What wd_open says of a database whose creation never finished
 * (txn/db.c read_control): the one refusal rule O1 accepts. */
#define CT_UNFINISHED_CREATION "the creation of this database never finished"

/* State of the workload in its child (one per process). */
struct ct_run {
	const ct_workload *wl;
	const char *dir;
	uint64_t seed;
	int threads;
	ct_plant plant;
	bool no_fpw;           /* full_page_writes off */
	int fd;                /* messages to the driver; -1: none */
	bool prepare;          /* building the base: ids below CT_BASE_TXN_LIMIT */
	bool describe;         /* count structure changes in the WAL */
	pthread_mutex_t mu;    /* one message at a time */
	_Atomic uint64_t next_txn;
	wd_options opts;
	wd_db *db;
	wd_table *tables[CT_MAX_TABLES];
	_Atomic uint64_t commits, async_commits, aborts, sp_rollbacks, deadlocks;
	_Atomic uint64_t big_values, checkpoints, open_at_end, ops;
	_Atomic uint64_t reads; /* ct_get calls (CT_PLANT_BAD_READ) */
	struct ct_walscan *scan; /* describe */
	const char *extra_table; /* ioerr.c's table, at index CT_EXTRA_TABLE */
	struct ct_ioerr_child *io; /* an injected I/O error (ioerr.c), or NULL */
	uint64_t io0;          /* storage_io_count() at the start: messages
				* are stamped with the calls made since */
	char error[512];       /* the first failure */
	atomic_bool failed;
	char own_error[512];   /* the first one no injected error explains */
	atomic_bool own_failed;
};

/* A transaction as the recorder follows it (README "Protocols" P2). */
typedef struct ct_w {
	uint16_t table;
	uint32_t koff, klen, poff, plen, total, op;
	bool del, live;
} ct_w;

typedef struct ct_txn {
	ct_run *r;
	wd_txn *x;
	uint64_t id;
	uint32_t nextop;
	bool sync;
	ct_w *w;
	size_t nw, wcap;
	ct_buf arena;           /* keys and payloads of w */
	struct {
		char name[16];
		size_t nw;
	} sp[8];
	int nsp;
	uint8_t *vbuf;          /* value being built or read */
	size_t vcap;
} ct_txn;

int ct_begin(ct_run *r, ct_txn *t, bool sync) WD_MUST_CHECK;
int ct_put(ct_txn *t, int table, const void *k, size_t klen, const void *payload,
	   uint32_t plen, uint32_t total) WD_MUST_CHECK;
int ct_del(ct_txn *t, int table, const void *k, size_t klen) WD_MUST_CHECK;
/* Reads k and returns its value's payload (WD_NOTFOUND; WD_ECORRUPT if the
 * value does not check out). */
int ct_get(ct_txn *t, int table, const void *k, size_t klen, uint8_t *payload,
	   size_t cap, uint32_t *plen) WD_MUST_CHECK;
int ct_savepoint(ct_txn *t, const char *name) WD_MUST_CHECK;
int ct_rollback_to(ct_txn *t, const char *name) WD_MUST_CHECK;
int ct_commit(ct_txn *t) WD_MUST_CHECK; /* ends t, also on failure */
int ct_abort(ct_txn *t) WD_MUST_CHECK;  /* ends t */
/* Frees t's memory and leaves its wd_txn open (the crash takes it). */
void ct_leave_open(ct_txn *t);
/* wd_checkpoint, counted (and the WAL scanned first with describe). */
int ct_checkpoint(ct_run *r) WD_MUST_CHECK;
/* Records the first failure of the workload (what, rc) and returns rc;
 * and the first one no injected I/O error explains (own_error, I11). */
int ct_fail(ct_run *r, const char *what, int rc);
/* ct_fail, and ends t (rolled back if it is still open): a workload that
 * gives up on a transaction must not leave it holding row locks that
 * other threads would wait on for ever (README "Invariants", I10). */
int ct_give_up(ct_txn *t, const char *what, int rc);
/* Ends the workload child with ERROR (msg), stamped like every workload
 * message (I9: the driver reads the stamp first, and a recorded run dates
 * the failure by it), and exit status 4. */
_Noreturn void ct_child_error(ct_run *r, const char *msg);
/* Runs fn(r, thread) on r->threads threads and returns the first error. */
int ct_run_threads(ct_run *r, int (*fn)(ct_run *r, int thread));

/* The name of table index i of r (a workload table or the extra one). */
const char *ct_table_name(const ct_run *r, int i);

/* Opens r->dir with the workload's options and its tables (created); on
 * failure it may be called again (the database stays open if it opened). */
int ct_run_open(ct_run *r) WD_MUST_CHECK;
/* Sends DONE with the counters (and the profile of crash points from
 * hits0, I/O calls from io0). */
int ct_run_done(ct_run *r, const uint64_t *hits0, uint64_t io0) WD_MUST_CHECK;

/* START: the child's first message (its io0). */
void ct_run_start(ct_run *r);
/* Sends one workload message, stamped with the I/O calls made since io0
 * (README "Prefix states"), under the message mutex. */
void ct_send_stamped(ct_run *r, uint8_t kind, const ct_buf *b);
/* From now on, notes the I/O count at every crash point hit, for DONE. */
void ct_run_log_hits(ct_run *r);
/* From now on, sends WRITER at the start and the end of each WAL writer
 * cycle (crash points wal-writer-before-cycle and -after-cycle). */
void ct_run_watch_writer(ct_run *r);

/* describe: scans the WAL written since the last scan (recorder.c). */
int ct_walscan_step(ct_run *r) WD_MUST_CHECK;

/* ---- history.c: the driver's record of the workload --------------------- */

enum { CT_TX_REQUESTED, CT_TX_ACKED, CT_TX_ABORTED };
enum { CT_FATE_UNKNOWN, CT_FATE_IN, CT_FATE_OUT };

typedef struct ct_tx {
	uint64_t id;
	int state;
	bool sync;
	bool wrote;                /* changed a row (if only to undo it): its
				    * commit has a log record */
	uint64_t req_seq, ack_seq; /* message order */
	uint64_t t_req, t_ack;     /* child clock, ns */
	ct_kv *w;                  /* final writes, value bytes rebuilt */
	size_t nw;
	uint32_t *rolled;          /* op numbers undone by a savepoint */
	size_t nrolled;
	/* the verdict's */
	bool must;
	int fate;
	char why_in[320], why_out[320];
	const uint8_t *out_k;      /* the key that says it is out */
	uint32_t out_klen;
} ct_tx;

typedef struct ct_oracle {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn; /* the state's changes over the base */
} ct_oracle;

/* Where a failed I/O call was (IOFAULT): not on the log, on a WAL segment
 * file (the flush syncs the one that holds the commits), or on another
 * file of the WAL directory (segment.tmp) or the directory itself. */
enum { CT_WAL_NONE = 0, CT_WAL_SEGMENT = 1, CT_WAL_OTHER = 2 };

/* What the workload child said about an injected I/O error (ioerr.c). */
typedef struct ct_ioseen {
	bool fault;               /* IOFAULT arrived */
	uint64_t fault_seq;       /* its place in the message order */
	uint64_t fault_io;        /* the I/O call that failed (as the trigger) */
	uint8_t fault_op, fault_kind; /* st_op, st_fault_kind */
	uint8_t fault_wal;        /* the failed call was on the log: CT_WAL_* */
	uint64_t panic_seq;       /* PANIC's place, 0: none */
	char *panic;              /* its text */
	bool ended;               /* IOEND arrived */
	uint8_t end_flags;        /* CT_IOEND_* */
	uint64_t end_commits;     /* commits acknowledged after the error */
	char *failure;            /* the workload's first failure, if any */
} ct_ioseen;

enum {
	CT_IOEND_PANICKED = 1, /* the engine reported its panic */
	CT_IOEND_FREED = 2,    /* enospc: space returned */
	CT_IOEND_RESUMED = 4,  /* every commit after the error succeeded */
	CT_IOEND_UNCREATED = 8 /* the database's creation failed: the next
				* open refuses it (txn/README.md P1) */
};

typedef struct ct_history {
	ct_tx *tx;
	size_t ntx, cap;
	uint64_t *hkey;  /* txn id -> index + 1 (open addressing) */
	size_t *hval, hcap;
	uint64_t seq, last_t, first_t;
	uint64_t acked, aborted;
	bool ready;      /* READY arrived: the database was created */
	bool done;       /* DONE arrived: the workload ran to its end */
	bool started;    /* START arrived */
	uint64_t io0;    /* START's: the child's I/O count at its start */
	uint64_t stamp;  /* the last message's I/O stamp */
	/* WRITER's: when the WAL writer's cycle under way started (0: none
	 * under way), and when the last one that ended had started (0: none) */
	uint64_t writer_start_t, writer_done_t;
	char *error;     /* ERROR's text */
	ct_profile prof; /* DONE's counters */
	ct_oracle *oracle;
	int oracle_rc;   /* first LMDB failure */
	uint64_t malformed; /* messages that did not parse (none is ignored) */
	ct_ioseen io;    /* states with an injected I/O error */
} ct_history;

void ct_history_init(ct_history *h, ct_oracle *o);
/* Takes one workload message (its body after the stamp). 0, or -1 for a
 * malformed one. */
int ct_history_take(ct_history *h, uint8_t kind, const uint8_t *body, size_t len);
/* The same for a body that starts with its u64 stamp (h->stamp gets it). */
int ct_history_take_stamped(ct_history *h, uint8_t kind, const uint8_t *body, size_t len);
const ct_tx *ct_history_find(const ct_history *h, uint64_t id);
void ct_history_free(ct_history *h);

int ct_oracle_open(ct_oracle *o, const char *path, const ct_kvset *base) WD_MUST_CHECK;
int ct_oracle_begin(ct_oracle *o) WD_MUST_CHECK;
int ct_oracle_apply(ct_oracle *o, const ct_tx *t) WD_MUST_CHECK;
/* The oracle's value of k: 1 present (*v, *vlen valid until the next
 * change), 0 absent, negative on an LMDB error. */
int ct_oracle_get(ct_oracle *o, const uint8_t *k, size_t klen, const uint8_t **v,
		  size_t *vlen);
/* Every key the oracle has a record of (deleted ones too), in order, into
 * keys (without values). */
int ct_oracle_keys(ct_oracle *o, ct_kvset *keys) WD_MUST_CHECK;
void ct_oracle_end(ct_oracle *o);
void ct_oracle_close(ct_oracle *o);

/* ---- the recovered state (state.c fills it, verdict.c reads it) --------- */

typedef struct ct_recovered {
	bool ran;          /* the recovery child reported at all */
	bool opened;
	bool complete;     /* every table was read to its end */
	bool refused;      /* wd_open returned an error (the child lived on) */
	char *open_error;  /* wd_open's failure, or how the child died */
	char *struct_msg;  /* the first failed check */
	uint64_t malformed; /* messages that did not parse */
	ct_kvset rows;     /* sorted */
	double open_ms, check_s;
	uint64_t records, applied, images, losers, undo_steps;
} ct_recovered;

void ct_recovered_free(ct_recovered *r);

/* ---- verdict.c ------------------------------------------------------------- */

typedef struct ct_judge_in {
	ct_history *h;
	const ct_kvset *base;          /* sorted */
	ct_oracle *oracle;
	const ct_recovered *rec;
	uint64_t async_window_ns;      /* 3 x wal_writer_delay */
	uint64_t writer_delay_ns;      /* wal_writer_delay */
	const ct_workload *wl;         /* its invariant (may be NULL) */
	bool child_error;              /* the workload failed by itself */
	/* out: asynchronous commits acked 3 x wal_writer_delay before the
	 * crash, and those of them no WAL writer cycle covered (excused) */
	uint64_t async_old, async_excused;
} ct_judge_in;

/* Classifies the recovered state (README "Oracle rules"). *detail gets
 * malloc'd lines: every problem (up to max_lines), or what made it OK. */
ct_verdict ct_judge(ct_judge_in *in, size_t max_lines, char **detail);

/* ---- ioerr.c: states with an injected I/O error (README "I/O errors") -- */

/* pick's part: an eio or enospc state gets an I/O trigger (from r1), its
 * error and a drop-all or random resolution (from r2). */
void ct_ioerr_pick(const ct_profile *p, uint64_t r1, uint64_t r2, ct_spec *s);
/* A replayed spec: the fault follows the trigger's error. */
void ct_ioerr_fix_spec(ct_spec *s);
/* "eio-once:N", "eio:N", "enospc:N": 1 parsed, 0 not this form. */
int ct_ioerr_parse_trigger(const char *s, ct_trigger *t);

/* The child: arms the error at I/O call io0 + t->n. */
void ct_ioerr_arm(ct_run *r, const ct_trigger *t, uint64_t io0);
/* The recorder: an engine call failed with rc. Reports the error and a
 * panic, frees space (enospc); true when rc follows the injected error
 * (the caller then ends the transaction as an application would). */
bool ct_ioerr_on_error(ct_run *r, const char *what, int rc);
/* Whether the calling thread's last ct_ioerr_on_error found its error
 * explained by an injected one (also a --inject fault that fired); reading
 * it clears it. ct_fail takes it (README I11). */
bool ct_ioerr_explained(void);
/* The recorder, before each REQ: reports the error once it has fired. */
void ct_ioerr_notice(ct_run *r);
/* Where path lies for the database in dir: CT_WAL_SEGMENT (a file of
 * DIR/wal named by 16 hexadecimal digits), CT_WAL_OTHER (another file
 * there, or DIR/wal itself), CT_WAL_NONE. */
uint8_t ct_wal_class(const char *dir, const char *path);
/* The child after the workload returned rc: returns if the error never
 * fired; else ends with an ERROR if the workload failed by itself (I11),
 * or goes on (commits again), reports IOEND and _exits as a crash
 * (ST_CRASH_EXIT_CODE), or with an ERROR when it cannot commit again once
 * space returned. */
void ct_ioerr_finish(ct_run *r, int rc);

/* The driver: takes IOFAULT, PANIC, IOEND (0, or -1 if malformed). */
int ct_ioerr_take(ct_history *h, uint8_t kind, ct_cur *c);
void ct_ioseen_free(ct_ioseen *io);
/* The rules of README "I/O errors" on top of ct_judge's verdict. */
void ct_ioerr_judge(const ct_history *h, const ct_spec *s, ct_verdict *v, char **detail,
		    size_t max_lines);

/* ---- state.c: one crash state ------------------------------------------ */

typedef struct ct_job {
	const ct_config *c;
	const ct_workload *wl;
	char *dir;            /* the job's scratch directory */
	char *db, *jdir, *rec, *crash;
	const char *base_dir; /* prepared base database, or NULL */
	const ct_kvset *base;
	ct_oracle oracle;
	bool oracle_open;
} ct_job;

int ct_job_init(ct_job *j, const ct_config *c, const ct_workload *wl, const char *dir,
		const char *base_dir, const ct_kvset *base) WD_MUST_CHECK;
void ct_job_free(ct_job *j);

/* Runs one state; max_lines of detail. Returns 0 (the verdict is in r) or
 * an error of the harness itself (no scratch space, fork failed). */
int ct_state_run(ct_job *j, const ct_spec *spec, size_t max_lines, ct_result *r) WD_MUST_CHECK;

/* ---- prefix states (README "Prefix states") ------------------------------ */

typedef struct ct_msg {
	uint8_t kind;
	uint8_t *body; /* with its stamp, as ct_history_take wants it */
	size_t len;
	uint64_t stamp;
} ct_msg;

/* One recorded run of the workload: the power-loss journal of all of it,
 * every message with its I/O stamp, and where each crash point hit fell. */
typedef struct ct_runlog {
	uint64_t run;            /* its number (the replay line names it) */
	char *db;                /* its files, as the run left them */
	ct_msg *msg;
	size_t nmsg, capmsg;
	ct_profile prof;         /* DONE's, with hit_io */
	uint64_t io0;            /* the child's I/O count at its start */
	uint64_t n_io;           /* its I/O calls */
	bool ok;                 /* exit 0 after DONE */
	char *error;             /* else what went wrong ... */
	uint64_t err_stamp;      /* ... from this I/O stamp on (0: all) */
	struct st_sim_journal *journal;
	double t_workload;       /* seconds */
	uint64_t states;         /* states cut from it so far */
} ct_runlog;

/* Runs the workload to its end with the journal on and records it into
 * *L (free with ct_runlog_free). */
int ct_run_record(ct_job *j, uint64_t run, ct_runlog *L) WD_MUST_CHECK;
/* The same in the directories db and jdir (a run the jobs share). */
int ct_run_record_in(const ct_config *c, const ct_workload *wl, const char *db,
		     const char *jdir, const char *base_dir, uint64_t run,
		     ct_runlog *L) WD_MUST_CHECK;
void ct_runlog_free(ct_runlog *L);
/* Sets spec->at (and run) for spec's trigger in run L: an I/O index k
 * is k, the n-th hit of a point the count of I/O calls made before it
 * plus one; past the run's end: n_io + 1. Returns whether it fired. */
bool ct_place(const ct_runlog *L, ct_spec *spec);
/* One prefix state of L (spec->at set). As ct_state_run. */
int ct_state_prefix(ct_job *j, ct_runlog *L, const ct_spec *spec, size_t max_lines,
		    ct_result *r) WD_MUST_CHECK;

/* Runs the workload to its end in a child (no trigger) for the profile;
 * prepare: builds the base database in dir instead (closed cleanly). */
int ct_profile_run(const ct_config *c, const ct_workload *wl, const char *dir,
		   const char *base_dir, bool describe, ct_profile *p) WD_MUST_CHECK;
int ct_prepare_base(const ct_config *c, const ct_workload *wl, const char *dir,
		    ct_kvset *base) WD_MUST_CHECK;

/* cp -r src dst (dst must not exist); rm -rf. Plain POSIX calls. */
int ct_copy_tree(const char *src, const char *dst) WD_MUST_CHECK;
void ct_rmrf(const char *path);

#endif /* WALDEN_CT_INTERNAL_H */
