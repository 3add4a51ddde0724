/*
 * recover.c - `walden recover DIR [--trace] [--json]`: opens the database
 * (which recovers it if the control file does not say "shut down
 * cleanly"), prints the recovery report (txn/db.h db_recovery_report,
 * recovery/README.md "Recovery report and trace") and closes it cleanly.
 * With --trace, every decision of the recovery passes is printed first,
 * in order, through the library's trace callback. Entry point:
 * recover_main.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "tools/tools.h"
#include "txn/db.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden recover [--trace] [--json] DIR\n"
		"\n"
		"Opens the database in DIR, which runs crash recovery if the control\n"
		"file does not say \"shut down cleanly\" (analysis from the last\n"
		"checkpoint's redo point to the end of the WAL, redo from the smallest\n"
		"recLSN of the dirty page table, the repair of heap and index, the\n"
		"undo of every loser transaction, an end-of-recovery checkpoint),\n"
		"prints what recovery did, and closes the database cleanly. The\n"
		"report: the control file state found, the checkpoint used, where\n"
		"analysis and redo started, where and why the WAL ends, records\n"
		"scanned, the dirty page table's size, page changes applied, skipped\n"
		"because the page was newer, not in the dirty page table or before\n"
		"its recLSN, full-page images restored, torn pages rebuilt, records of\n"
		"dropped relations, keys checked, tables repaired in full, entries\n"
		"repaired, losers found and rolled back,\n"
		"undo steps (one CLR each), the end-of-recovery checkpoint and the\n"
		"time of each pass.\n"
		"Options:\n"
		"  -t, --trace  print every recovery decision first, in order: the\n"
		"               checkpoint found and merged, the losers and the dirty\n"
		"               page table after analysis, each redo record (applied,\n"
		"               skipped and why, image restored, relation dropped),\n"
		"               each key checked and entry repaired, each undo step,\n"
		"               CLR and ABORT,\n"
		"               the end-of-recovery checkpoint\n"
		"  -j, --json   the report as one JSON object\n"
		"  -h, --help   this help\n"
		"Exit status: 0 ok, 1 error (not a database, in use, recovery failed),\n"
		"2 usage. A directory without a control file is refused, never created.\n");
}

/* The trace sink: each recovery event on its own line of stdout. The
 * engine's one-line summaries ("open DIR: ...") repeat the report. */
static void print_trace(void *arg, const char *module, const char *line)
{
	(void)arg;
	(void)module;
	if (strncmp(line, "open ", 5) == 0)
		return;
	printf("%s\n", line);
}

static void lsn_str(wd_lsn l, char out[24])
{
	snprintf(out, 24, LSN_FMT, LSN_ARGS(l));
}

static void print_text(const char *dir, const control_data *cd, const db_recovery_report *r)
{
	char a[24], b[24];
	if (!r) {
		printf("%s: no recovery needed (%s)\n", dir,
		       cd->state == CONTROL_SHUTDOWN ? "shut down cleanly"
						     : control_state_name(cd->state));
		return;
	}
	printf("%s: recovery ran (control file state: %s)\n", dir,
	       control_state_name(r->control_state));
	lsn_str(r->checkpoint_lsn, a);
	lsn_str(r->checkpoint_redo, b);
	if (r->checkpoint_lsn)
		printf("  checkpoint used:              %s (redo point %s)\n", a, b);
	else
		printf("  checkpoint used:              none (the log from its start)\n");
	lsn_str(r->wal_end, a);
	printf("  end of WAL:                   %s (%s)\n", a, r->end_reason_name);
	printf("analysis                        %.1f ms\n", r->analysis_ms);
	lsn_str(r->analysis_start, a);
	printf("  started at:                   %s\n", a);
	printf("  records scanned:              %" PRIu64 "\n", r->records);
	printf("  losers found:                 %" PRIu64 "\n", r->losers);
	printf("  dirty page table:             %" PRIu64 " pages\n", r->dpt_pages);
	printf("redo                            %.1f ms\n", r->redo_ms);
	lsn_str(r->redo_start, a);
	printf("  started at:                   %s (the smallest recLSN, or the end if no page is dirty)\n", a);
	printf("  records read:                 %" PRIu64 "\n", r->redo_records);
	printf("  page changes applied:         %" PRIu64 "\n", r->applied);
	printf("  skipped, page newer:          %" PRIu64 " (pageLSN >= record LSN)\n",
	       r->skipped);
	printf("  skipped, not in the table:    %" PRIu64 " (page not in the dirty page "
	       "table)\n", r->skipped_not_dirty);
	printf("  skipped, before recLSN:       %" PRIu64 " (record older than the page's "
	       "recLSN)\n", r->skipped_rec_lsn);
	printf("  full-page images restored:    %" PRIu64 "\n", r->images);
	printf("  torn pages rebuilt:           %" PRIu64 "\n", r->pages_rebuilt);
	printf("  skipped, relation dropped:    %" PRIu64 "\n", r->dropped);
	printf("repair                          %.1f ms\n", r->repair_ms);
	printf("  keys checked (in flight):     %" PRIu64 "\n", r->keys_checked);
	printf("  tables repaired in full:      %" PRIu64 "\n", r->tables_repaired);
	printf("  heap/index entries repaired:  %" PRIu64 "\n", r->repaired);
	printf("undo                            %.1f ms\n", r->undo_ms);
	printf("  losers rolled back:           %" PRIu64 "\n", r->losers_rolled_back);
	printf("  undo steps (CLRs written):    %" PRIu64 "\n", r->undo_steps);
	lsn_str(r->end_checkpoint_lsn, a);
	lsn_str(r->end_checkpoint_redo, b);
	printf("end-of-recovery checkpoint      %.1f ms\n", r->checkpoint_ms);
	printf("  checkpoint:                   %s (redo point %s)\n", a, b);
}

static void print_json(const char *dir, const control_data *cd, const db_recovery_report *r)
{
	char a[24], b[24], c[24], d[24], e[24], f[24], g[24];
	printf("{\"dir\": ");
	tool_json_str(stdout, dir);
	printf(", \"recovered\": %s, \"control_state\": ", r ? "true" : "false");
	tool_json_str(stdout, control_state_name(r ? r->control_state : cd->state));
	if (!r) {
		printf("}\n");
		return;
	}
	lsn_str(r->checkpoint_lsn, a);
	lsn_str(r->checkpoint_redo, b);
	lsn_str(r->analysis_start, c);
	lsn_str(r->redo_start, d);
	lsn_str(r->wal_end, e);
	lsn_str(r->end_checkpoint_lsn, f);
	lsn_str(r->end_checkpoint_redo, g);
	printf(", \"checkpoint_lsn\": \"%s\", \"checkpoint_redo\": \"%s\", \"analysis_start\": "
	       "\"%s\", \"redo_start\": \"%s\", \"wal_end\": \"%s\", \"end_reason\": ", a, b, c, d,
	       e);
	tool_json_str(stdout, r->end_reason_name);
	printf(", \"records_scanned\": %" PRIu64 ", \"dpt_pages\": %" PRIu64
	       ", \"redo_records\": %" PRIu64 ", \"applied\": %" PRIu64
	       ", \"skipped_page_newer\": %" PRIu64 ", \"skipped_not_in_dpt\": %" PRIu64
	       ", \"skipped_before_reclsn\": %" PRIu64 ", \"images_restored\": %" PRIu64
	       ", \"pages_rebuilt\": %" PRIu64 ", \"skipped_dropped\": %" PRIu64
	       ", \"keys_checked\": %" PRIu64 ", \"tables_repaired\": %" PRIu64
	       ", \"repaired\": %" PRIu64 ", \"losers\": %" PRIu64
	       ", \"losers_rolled_back\": %" PRIu64 ", \"undo_steps\": %" PRIu64,
	       r->records, r->dpt_pages, r->redo_records, r->applied, r->skipped,
	       r->skipped_not_dirty, r->skipped_rec_lsn, r->images, r->pages_rebuilt, r->dropped,
	       r->keys_checked, r->tables_repaired, r->repaired, r->losers,
	       r->losers_rolled_back, r->undo_steps);
	printf(", \"end_checkpoint_lsn\": \"%s\", \"end_checkpoint_redo\": \"%s\"", f, g);
	printf(", \"analysis_ms\": %.3f, \"redo_ms\": %.3f, \"repair_ms\": %.3f, \"undo_ms\": "
	       "%.3f, \"checkpoint_ms\": %.3f}\n", r->analysis_ms, r->redo_ms, r->repair_ms,
	       r->undo_ms, r->checkpoint_ms);
}

int recover_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"trace", no_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const db_recovery_report *r = NULL;
	bool json = false, trace = false, cd_ok;
	control_data cd;
	const char *dir;
	wd_db *db = NULL;
	int c, ex, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "tjh", opts, NULL)) != -1) {
		switch (c) {
		case 't': trace = true; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	dir = argv[optind];
	if (trace) {
		wd_trace_set_callback(print_trace, NULL);
		if ((rc = wd_trace_enable("recovery")) != 0)
			return tool_fail("recover", rc, "cannot enable tracing");
	}
	/* refuses a directory without a control file: wd_open would create */
	ex = tool_open_db("recover", dir, &db, &cd, &cd_ok);
	if (trace) {
		(void)wd_trace_enable("");
		wd_trace_set_callback(NULL, NULL);
	}
	if (ex != EXIT_OK)
		return EXIT_ERROR;
	if (db_recovery_report_get(db, &r) != 0)
		r = NULL;
	if (trace && !json)
		printf("== report ==\n");
	if (json)
		print_json(dir, &cd, r);
	else
		print_text(dir, &cd, r);
	fflush(stdout);
	if ((rc = wd_close(db)) != 0)
		return tool_fail("recover", rc, "cannot close the database");
	return EXIT_OK;
}
