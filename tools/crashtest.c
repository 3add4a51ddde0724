/*
 * crashtest.c - `walden crashtest`: crash-injection campaigns against the
 * LMDB oracle (crashtest/README.md). Parses the command line, runs a
 * campaign (ct_campaign_run), one state (--replay) or a description of a
 * workload (--describe), and passes `walden check` (check_main, its output
 * captured) as the full check of each recovered state. Entry point:
 * crashtest_main.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashtest/crashtest.h"
#include "tools/tools.h"

/* Prints text from column 10, wrapped before column 78; the first line
 * after `head`. */
static void wrapped(FILE *out, const char *head, const char *text)
{
	int col = fprintf(out, "  %-7s", head);
	while (*text) {
		size_t w = strcspn(text, " ");
		if (col > 10 && col + 1 + (int)w > 77) {
			fprintf(out, "\n%9s", "");
			col = 9;
		}
		col += fprintf(out, " %.*s", (int)w, text);
		text += w + (text[w] ? 1 : 0);
	}
	fputc('\n', out);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden crashtest [options]\n"
		"       walden crashtest --replay SEED:INDEX:RESOLUTION [--at RUN:K | --trigger T]\n"
		"       walden crashtest --exhaustive [--workload det] [--seed S] [--tear B]\n"
		"       walden crashtest --describe [--workload NAME] [--seed S]\n"
		"\n"
		"Runs a crash-injection campaign: many crash states, each checked against\n"
		"an LMDB oracle of what the workload's acknowledged commits say must be\n"
		"there. A crash STATE is one run of a workload in a child process against a\n"
		"fresh database (or a copy of a prepared one), killed at a TRIGGER - the\n"
		"n-th hit of a named crash point, or just before its n-th I/O call - whose\n"
		"files are then taken as they are (kill) or turned into one state a power\n"
		"loss allows (power, torn). The child reports each commit it is about to\n"
		"request, with all its writes, and each acknowledgement; the driver keeps\n"
		"the acknowledged ones in LMDB. A second child recovers the state (wd_open),\n"
		"reads every table, runs the table checks and `walden check`; the driver\n"
		"then names, for every key, the transaction whose value it shows, and gives\n"
		"a verdict. A state is correct when it holds every acknowledged commit\n"
		"(asynchronous ones: those older than 3 x wal_writer_delay), plus some of\n"
		"the commits in flight, each entirely, and nothing else.\n"
		"\n"
		"One run serves many states: a process killed just before its I/O call k\n"
		"leaves exactly the effects of calls 1..k-1, so the workload runs once to\n"
		"its end with every change journaled (storage/sim.h) and each message\n"
		"stamped with its I/O count, and a state is cut from that run at k: the\n"
		"journal's prefix materialised, the messages sent before k as its history.\n"
		"\n"
		"Options:\n"
		"  -w, --workload NAME    det (default), random, bank, ring (below)\n"
		"  -s, --seed S           the campaign's seed (default 1): workload, triggers\n"
		"                         and resolutions all follow from it\n"
		"  -n, --states N         run N states (default 100)\n"
		"  -m, --minutes M        run for M minutes instead\n"
		"  -f, --fault KIND       kill, power, torn, eio, enospc or all (comma list;\n"
		"                         default kill):\n"
		"                         kill   the process dies; its writes stay in the\n"
		"                                page cache\n"
		"                         power  power loss: each write not covered by an\n"
		"                                fsync kept (keep-all), lost (drop-all), or\n"
		"                                kept or lost by a seed (random)\n"
		"                         torn   power loss where a write may also survive in\n"
		"                                part: a random subset of its sectors\n"
		"                         eio    an I/O call fails with EIO, once or from\n"
		"                                then on; the workload rolls back and goes\n"
		"                                on, or stops at the engine's panic; then a\n"
		"                                power loss (drop-all or random)\n"
		"                         enospc writes fail with ENOSPC; the workload frees\n"
		"                                space and must commit again; then a power\n"
		"                                loss (drop-all or random)\n"
		"  -t, --threads T        workload threads, 1 to 4 (random, bank, ring; det\n"
		"                         has one)\n"
		"      --tear BYTES       sector size of torn writes: 512 (default) or 4096\n"
		"      --no-full-page-writes  run the workload with full_page_writes off:\n"
		"                         no page is reset from an image in redo, so every\n"
		"                         record leans on the pageLSN test (not with torn)\n"
		"      --inject SPEC      also arm SPEC, a WALDEN_FAULT list of injected\n"
		"                         errors (op:kind[:nth[:count]][@path], e.g.\n"
		"                         sync:eio:20:1@/wal/0), in every state's workload\n"
		"                         child; a workload that fails once one fired ends\n"
		"                         as a crash (each state runs on its own)\n"
		"  -j, --jobs J           states run in parallel (default 2)\n"
		"      --max-failures N   stop taking new states once N have failed (the\n"
		"                         states already running finish; default: never)\n"
		"      --stop-on-violation  the same as --max-failures 1\n"
		"  -k, --keep-failures DIR  copy each failing state's files (before\n"
		"                         recovery) to DIR/state-SEED-INDEX-VERDICT with a\n"
		"                         README giving its replay command\n"
		"  -r, --replay SEED:INDEX:RESOLUTION  run that one state again and print\n"
		"                         its verdict in full; RESOLUTION is kill, keep-all,\n"
		"                         drop-all, random[:S] or torn[:S]\n"
		"      --at RUN:K         with --replay: the state cut from run RUN just before\n"
		"                         its I/O call K (what the summary prints for it)\n"
		"      --trigger T        with --replay: point:NAME:N or io:N, the state cut\n"
		"                         where it falls in a recorded run (with --rerun:\n"
		"                         armed in a workload run of its own); or an error\n"
		"                         injected at I/O call N: eio-once:N, eio:N,\n"
		"                         enospc:N, which make the fault eio or enospc (the\n"
		"                         summary prints it; without it the trigger is\n"
		"                         computed again from a profile run)\n"
		"      --describe         run the workload once to its end and print what it\n"
		"                         did: commits, aborts, savepoint rollbacks, values\n"
		"                         over a page, checkpoints, crash point hits, I/O\n"
		"                         calls, and from its WAL the leaf and internal splits,\n"
		"                         page unlinks and segment switches\n"
		"      --exhaustive       det only: a state before every I/O call k = 1..N of\n"
		"                         the workload (N: its I/O calls), each resolved four\n"
		"                         ways: keep-all, drop-all, random, torn (4 N states;\n"
		"                         --states and --minutes are ignored)\n"
		"      --stride S         with --exhaustive: every S-th I/O call only\n"
		"                         (k = 1, 1+S, 1+2S, ...; for slow builds)\n"
		"      --per-run N        states cut from one workload run (default 16)\n"
		"      --rerun            a workload run of its own for every state (slower;\n"
		"                         the trigger armed in the child)\n"
		"  -d, --dir DIR          scratch directory (default $TMPDIR or /tmp); use a\n"
		"                         tmpfs (/dev/shm when there is one) for speed: the\n"
		"                         states write whole databases\n"
		"  -q, --quiet            no progress line\n"
		"  -h, --help             this help\n"
		"\n"
		"Workloads:\n");
	for (int i = 0; ct_workload_names[i]; i++)
		wrapped(out, ct_workload_names[i], ct_workload_summary(ct_workload_names[i]));
	fprintf(out,
		"\n"
		"Triggers: even state indices die at a crash point the workload reaches\n"
		"(each in turn, at a random hit), odd ones before a random I/O call; eio\n"
		"and enospc states inject their error at a random I/O call instead.\n"
		"\n"
		"Verdicts:\n"
		"  OK              the recovered state is one the contract allows\n"
		"  LOST-ACK        an acknowledged commit is missing, or a commit was\n"
		"                  acknowledged after a failed fsync or the engine's panic\n"
		"  PARTIAL         part of a transaction is visible\n"
		"  DIRTY           an aborted or unfinished transaction (or a write undone\n"
		"                  by a savepoint rollback) is visible\n"
		"  NO-RECOVERY     the open failed (or its process died) on a state the\n"
		"                  fault model allows\n"
		"  STRUCT          a table check or `walden check` fails after recovery\n"
		"  SILENT-CORRUPT  a damaged value was read without an error\n"
		"  INVARIANT       the workload's invariant is broken (bank: the total;\n"
		"                  ring: one ring)\n"
		"  CHILD-ERROR     the workload failed with an error of its own (a crash, a\n"
		"                  hang), or could not commit again once space returned\n"
		"\n"
		"Output: a progress line on stderr (states done, states/s, violations, time\n"
		"left), then a summary on stdout: states per fault, trigger and resolution,\n"
		"crash points fired out of those defined (the others listed), I/O indices\n"
		"covered, verdicts per class, states/s, recovery time p50/p99, where the\n"
		"time goes, and for each violation the line that reproduces it, e.g.\n"
		"  walden crashtest --workload det --replay 1:17:torn:99 --tear 512 \\\n"
		"      --at 8:1234\n"
		"ending with 'N passed, N failed'.\n"
		"Exit status: 0 no violation, 1 a violation or an error, 2 usage.\n");
}

/* `walden check DIR` with its output captured: the full check of a
 * recovered state (runs in the recovery child). */
static int full_check(const char *dir, const wd_options *o, char *msg, size_t cap)
{
	char *argv[] = {"check", (char *)dir, NULL}, line[512];
	FILE *f = tmpfile();
	int out, err, ex;
	size_t n = 0;
	if (!f)
		return 0; /* no scratch file: the engine's checks still ran */
	fflush(stdout);
	fflush(stderr);
	out = dup(STDOUT_FILENO);
	err = dup(STDERR_FILENO);
	dup2(fileno(f), STDOUT_FILENO);
	dup2(fileno(f), STDERR_FILENO);
	tool_open_options = o; /* the workload's buffer sizes */
	ex = check_main(2, argv);
	tool_open_options = NULL;
	fflush(stdout);
	fflush(stderr);
	dup2(out, STDOUT_FILENO);
	dup2(err, STDERR_FILENO);
	close(out);
	close(err);
	msg[0] = '\0';
	if (ex != EXIT_OK) {
		rewind(f);
		while (fgets(line, sizeof line, f) && n + 2 < cap) {
			size_t l = strcspn(line, "\n");
			if (l >= 4 && strncmp(line + l - 4, ", ok", 4) == 0)
				continue;
			n += (size_t)snprintf(msg + n, cap - n, "%s%.*s", n ? "; " : "", (int)l, line);
		}
	}
	fclose(f);
	return ex;
}

static int parse_faults(const char *s, unsigned *mask)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof buf, "%s", s);
	*mask = 0;
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (strcmp(w, "kill") == 0)
			*mask |= 1u << CT_KILL;
		else if (strcmp(w, "power") == 0)
			*mask |= 1u << CT_POWER;
		else if (strcmp(w, "torn") == 0)
			*mask |= 1u << CT_TORN;
		else if (strcmp(w, "eio") == 0)
			*mask |= 1u << CT_EIO;
		else if (strcmp(w, "enospc") == 0)
			*mask |= 1u << CT_ENOSPC;
		else if (strcmp(w, "all") == 0)
			*mask |= CT_FAULTS_ALL;
		else {
			fprintf(stderr, "walden crashtest: --fault %s: expected kill, power, torn, "
				"eio, enospc or all\n", w);
			return -1;
		}
	}
	return *mask ? 0 : -1;
}

static bool parse_num(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0;
}

struct cli {
	ct_config c;
	const char *replay, *trigger, *at;
	bool describe;
};

/* Parses argv into cl (one case per option, hence the length); returns -1
 * after printing a usage error, 1 for --help. */
static int parse(int argc, char **argv, struct cli *cl)
{
	static const struct option opts[] = {
		{"workload", required_argument, NULL, 'w'},
		{"seed", required_argument, NULL, 's'},
		{"states", required_argument, NULL, 'n'},
		{"minutes", required_argument, NULL, 'm'},
		{"fault", required_argument, NULL, 'f'},
		{"threads", required_argument, NULL, 't'},
		{"tear", required_argument, NULL, 'T'},
		{"jobs", required_argument, NULL, 'j'},
		{"keep-failures", required_argument, NULL, 'k'},
		{"replay", required_argument, NULL, 'r'},
		{"trigger", required_argument, NULL, 'g'},
		{"at", required_argument, NULL, 'a'},
		{"exhaustive", no_argument, NULL, 'X'},
		{"per-run", required_argument, NULL, 'P'},
		{"rerun", no_argument, NULL, 'R'},
		{"stride", required_argument, NULL, 'S'},
		{"describe", no_argument, NULL, 'D'},
		{"max-failures", required_argument, NULL, 'M'},
		{"no-full-page-writes", no_argument, NULL, 'F'},
		{"inject", required_argument, NULL, 'I'},
		{"stop-on-violation", no_argument, NULL, 'V'},
		{"dir", required_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	int opt;
	ct_config_default(&cl->c);
	cl->c.progress = stderr;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "w:s:n:m:f:t:j:k:r:d:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			if (!ct_workload_summary(optarg)) {
				fprintf(stderr, "walden crashtest: no workload '%s' (det, random, "
					"bank, ring)\n", optarg);
				return -1;
			}
			cl->c.workload = optarg;
			break;
		case 's':
			if (!parse_num(optarg, &cl->c.seed))
				goto bad;
			break;
		case 'n':
			if (!parse_num(optarg, &cl->c.states) || cl->c.states == 0)
				goto bad;
			break;
		case 'm': {
			char *end;
			cl->c.minutes = strtod(optarg, &end);
			if (*end || !(cl->c.minutes > 0))
				goto bad;
			cl->c.states = 0;
			break;
		}
		case 'f':
			if (parse_faults(optarg, &cl->c.faults) != 0)
				return -1;
			break;
		case 't':
			if (!parse_num(optarg, &v) || v < 1 || v > 4)
				goto bad;
			cl->c.threads = (int)v;
			break;
		case 'T':
			if (!parse_num(optarg, &v) || (v != 512 && v != 4096))
				goto bad;
			cl->c.tear_bytes = (uint32_t)v;
			break;
		case 'j':
			if (!parse_num(optarg, &v) || v < 1 || v > 64)
				goto bad;
			cl->c.jobs = (int)v;
			break;
		case 'k': cl->c.keep_dir = optarg; break;
		case 'r': cl->replay = optarg; break;
		case 'g': cl->trigger = optarg; break;
		case 'a': cl->at = optarg; break;
		case 'X': cl->c.exhaustive = true; break;
		case 'R': cl->c.rerun = true; break;
		case 'S':
			if (!parse_num(optarg, &v) || v < 1 || v > 1000000)
				goto bad;
			cl->c.stride = (uint32_t)v;
			break;
		case 'P':
			if (!parse_num(optarg, &v) || v < 1 || v > 1000000)
				goto bad;
			cl->c.per_run = (uint32_t)v;
			break;
		case 'D': cl->describe = true; break;
		case 'M':
			if (!parse_num(optarg, &cl->c.max_failures) || cl->c.max_failures == 0)
				goto bad;
			break;
		case 'V': cl->c.max_failures = 1; break;
		case 'F': cl->c.no_full_page_writes = true; break;
		case 'I': cl->c.io_faults = optarg; break;
		case 'd': cl->c.work_dir = optarg; break;
		case 'q': cl->c.progress = NULL; break;
		case 'h': return 1;
		default: return -1;
		}
		continue;
bad:
		fprintf(stderr, "walden crashtest: bad value '%s' for an option (see --help)\n",
			optarg);
		return -1;
	}
	if (cl->c.no_full_page_writes && (cl->c.faults & (1u << CT_TORN))) {
		fprintf(stderr, "walden crashtest: --no-full-page-writes cannot go with torn "
			"writes: without full-page images a torn page is beyond repair\n");
		return -1;
	}
	if (optind != argc || ((cl->trigger || cl->at) && !cl->replay) ||
	    (cl->trigger && cl->at)) {
		fprintf(stderr, "walden crashtest: %s\n", optind != argc
			? "unexpected arguments" : cl->trigger && cl->at
			? "--at and --trigger name a state two ways: give one"
			: cl->trigger ? "--trigger needs --replay" : "--at needs --replay");
		return -1;
	}
	return 0;
}

static int do_replay(struct cli *cl)
{
	ct_spec spec;
	ct_trigger trig;
	ct_result r;
	bool has_seed;
	int rc;
	if (ct_parse_replay(cl->replay, &spec, &has_seed) != 0 ||
	    (cl->trigger && ct_parse_trigger(cl->trigger, &trig) != 0) ||
	    (cl->at && ct_parse_at(cl->at, &spec) != 0)) {
		fprintf(stderr, "walden crashtest: %s\n", wd_last_error());
		return EXIT_USAGE;
	}
	cl->c.seed = spec.seed;
	if ((rc = ct_replay(&cl->c, &spec, has_seed, cl->trigger ? &trig : NULL, &r)) != 0)
		return tool_fail("crashtest", rc, "replaying the state");
	ct_result_print(&r, &cl->c, stdout);
	rc = r.verdict == CT_OK ? EXIT_OK : EXIT_ERROR;
	ct_result_free(&r);
	return rc;
}

int crashtest_main(int argc, char **argv)
{
	struct cli cl = {0};
	ct_summary s;
	ct_profile p;
	int rc = parse(argc, argv, &cl);
	if (rc != 0) {
		usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	}
	cl.c.full_check = full_check;
	if (cl.replay)
		return do_replay(&cl);
	if (cl.describe) {
		if ((rc = ct_describe(&cl.c, true, &p)) != 0)
			return tool_fail("crashtest", rc, "describing the workload");
		ct_profile_print(&p, &cl.c, stdout);
		ct_profile_free(&p);
		return EXIT_OK;
	}
	if ((rc = ct_campaign_run(&cl.c, &s)) != 0) {
		ct_summary_free(&s);
		return tool_fail("crashtest", rc, "running the campaign");
	}
	ct_summary_print(&s, &cl.c, stdout);
	rc = s.failed ? EXIT_ERROR : EXIT_OK;
	ct_summary_free(&s);
	return rc;
}
