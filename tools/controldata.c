/*
 * controldata.c - `walden controldata DIR`: every field of DIR/control
 * (recovery/README.md "Format"), like PostgreSQL's pg_controldata, as an
 * aligned list or with --json as one JSON object. Entry point:
 * controldata_main.
 *
 * Read only: the file is read and checked by control_decode, the same code
 * the engine opens a database with, so "CRC ok" here means the engine
 * would accept it. No database is opened and no lock taken: it works on a
 * database that is open in another process, or that crashed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "storage/bytes.h"
#include "storage/storage.h"
#include "tools/tools.h"

/* The CRC field: the last 4 bytes (recovery/README.md "Format"). */
#define CONTROL_CRC_OFF (CONTROL_SIZE - 4u)

/* What controldata shows besides the decoded fields. */
struct cfile {
	char path[4096];
	control_data cd;
	uint32_t crc;   /* as stored (it matched the computed one) */
	int64_t mtime;  /* the file's modification time, unix seconds */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: walden controldata [--json] DIR\n"
		"\n"
		"Prints every field of the control file DIR/control: format version,\n"
		"database id, page size, WAL segment size, state with its raw value\n"
		"(shut down; in production: open, or crashed while open; in crash\n"
		"recovery), the last checkpoint's LSN and its redo LSN (as\n"
		"waldump prints LSNs: high/low 32 bits in hex), the next transaction\n"
		"and relation ids, the time of the last update, the CRC check and the\n"
		"file's modification time. Times are UTC. Reads the file only: no\n"
		"database is opened, so it works while another process has it open\n"
		"or after a crash.\n"
		"Options:\n"
		"  -j, --json   one JSON object instead of the list\n"
		"  -h, --help   this help\n"
		"Exit status: 0 ok, 1 error (no control file, I/O), 2 usage, 3 the\n"
		"control file is damaged or of another version (the message names\n"
		"the file and the reason).\n");
}

/* Unix seconds as "YYYY-MM-DD HH:MM:SS UTC" into out[32]. */
static void format_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, 32, "?");
}

/*
 * Reads and checks dir's control file into f. Returns EXIT_OK, or prints
 * "walden controldata: <file>: <reason>" to stderr and returns the exit
 * code, as the other tools do (tools.h): EXIT_DAMAGE for a damaged or
 * foreign-version file, EXIT_ERROR for a missing one or an I/O failure.
 */
static int read_control(const char *dir, struct cfile *f)
{
	uint8_t buf[CONTROL_SIZE + 1]; /* one more: a longer file is caught */
	st_file *sf = NULL;
	struct stat st;
	size_t got = 0;
	int rc;

	if ((size_t)snprintf(f->path, sizeof f->path, "%s/%s", dir, CONTROL_FILE) >=
	    sizeof f->path) {
		fprintf(stderr, "walden controldata: %s: path too long\n", dir);
		return EXIT_ERROR;
	}
	if (stat(f->path, &st) != 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR) {
			bool dir_there = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
			if (dir_there)
				fprintf(stderr, "walden controldata: %s: missing: %s is not a "
						"walden database\n", f->path, dir);
			else
				fprintf(stderr, "walden controldata: %s: missing: the directory "
						"%s does not exist\n", f->path, dir);
			return EXIT_ERROR;
		}
		fprintf(stderr, "walden controldata: %s: cannot stat: %s\n", f->path, strerror(e));
		return EXIT_ERROR;
	}
	f->mtime = (int64_t)st.st_mtime;
	if ((rc = storage_open(f->path, ST_RDONLY, &sf)) == 0) {
		rc = storage_read(sf, buf, sizeof buf, 0, &got);
		(void)storage_close(sf);
	}
	if (rc != 0) {
		fprintf(stderr, "walden controldata: %s: cannot read: %s (%s)\n", f->path,
			wd_last_error(), wd_strerror(rc));
		return EXIT_ERROR;
	}
	if ((rc = control_decode(buf, got, f->path, &f->cd)) != 0) {
		/* the detail names the file and says what is wrong */
		fprintf(stderr, "walden controldata: damaged control file: %s (%s)\n",
			wd_last_error(), wd_strerror(rc));
		return EXIT_DAMAGE;
	}
	f->crc = get_le32(buf + CONTROL_CRC_OFF);
	return EXIT_OK;
}

static void print_text(const struct cfile *f)
{
	const control_data *cd = &f->cd;
	char id[33], upd[32], mt[32];
	control_format_id(cd->db_id, id);
	format_time((int64_t)cd->update_time, upd);
	format_time(f->mtime, mt);
	printf("control file:             %s\n", f->path);
	printf("format version:           %u\n", cd->version);
	printf("database id:              %s\n", id);
	printf("page size:                %u\n", cd->page_size);
	printf("WAL segment size:         %u\n", cd->wal_segment_size);
	printf("state:                    %s (%u)\n", control_state_name(cd->state), cd->state);
	printf("latest checkpoint LSN:    " LSN_FMT "\n", LSN_ARGS(cd->checkpoint_lsn));
	printf("redo LSN:                 " LSN_FMT "\n", LSN_ARGS(cd->redo_lsn));
	printf("next transaction id:      %" PRIu64 "\n", cd->next_xid);
	printf("next relation id:         %u\n", cd->next_relid);
	printf("flags:                    0x%x%s\n", cd->flags,
	       cd->flags & CONTROL_F_NEEDS_REPAIR ? " (needs repair: the next recovery repairs "
						    "every table in full)" : "");
	printf("last update:              %s (%" PRIu64 ")\n", upd, cd->update_time);
	printf("CRC:                      ok (0x%08x, CRC-32 of bytes 0..%u)\n", f->crc,
	       CONTROL_CRC_OFF - 1);
	printf("file modified:            %s (%" PRId64 ")\n", mt, f->mtime);
}

/* The same fields as one JSON object; LSNs as strings in waldump's form
 * and also as numbers. */
static void print_json(const struct cfile *f)
{
	const control_data *cd = &f->cd;
	char id[33], lsn[32], upd[32], mt[32];
	control_format_id(cd->db_id, id);
	format_time((int64_t)cd->update_time, upd);
	format_time(f->mtime, mt);
	printf("{\"control_file\": ");
	tool_json_str(stdout, f->path);
	printf(", \"format_version\": %u, \"database_id\": \"%s\", \"page_size\": %u, "
	       "\"wal_segment_size\": %u, \"state\": ",
	       cd->version, id, cd->page_size, cd->wal_segment_size);
	tool_json_str(stdout, control_state_name(cd->state));
	printf(", \"state_value\": %u", cd->state);
	snprintf(lsn, sizeof lsn, LSN_FMT, LSN_ARGS(cd->checkpoint_lsn));
	printf(", \"checkpoint_lsn\": \"%s\", \"checkpoint_lsn_value\": %" PRIu64, lsn,
	       cd->checkpoint_lsn);
	snprintf(lsn, sizeof lsn, LSN_FMT, LSN_ARGS(cd->redo_lsn));
	printf(", \"redo_lsn\": \"%s\", \"redo_lsn_value\": %" PRIu64, lsn, cd->redo_lsn);
	printf(", \"next_xid\": %" PRIu64 ", \"next_relid\": %u", cd->next_xid, cd->next_relid);
	printf(", \"flags\": %u, \"needs_repair\": %s", cd->flags,
	       cd->flags & CONTROL_F_NEEDS_REPAIR ? "true" : "false");
	printf(", \"update_time\": %" PRIu64 ", \"update_time_utc\": \"%s\"", cd->update_time, upd);
	printf(", \"crc\": \"0x%08x\", \"crc_ok\": true", f->crc);
	printf(", \"mtime\": %" PRId64 ", \"mtime_utc\": \"%s\"}\n", f->mtime, mt);
}

int controldata_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct cfile f;
	bool json = false;
	int c, ex;

	optind = 0;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	memset(&f, 0, sizeof f);
	if ((ex = read_control(argv[optind], &f)) != EXIT_OK)
		return ex;
	if (json)
		print_json(&f);
	else
		print_text(&f);
	return EXIT_OK;
}
