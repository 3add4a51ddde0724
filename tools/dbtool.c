/*
 * dbtool.c - helpers the database tools share (walden check, dot, inspect):
 * opening a database without ever creating one, the catalog's list of
 * tables, raw block reads through storage/, keys and JSON strings printed.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "tools/tools.h"
#include "txn/db.h"

const wd_options *tool_open_options;

int tool_open_db(const char *cmd, const char *dir, wd_db **db, control_data *cd,
		 bool *cd_ok)
{
	int rc = control_read(dir, cd);
	*db = NULL;
	*cd_ok = rc == 0;
	if (rc == WD_ENOENT) {
		fprintf(stderr, "walden %s: %s: not a walden database (no %s file)\n", cmd,
			dir, CONTROL_FILE);
		return EXIT_ERROR;
	}
	if (rc == 0)
		rc = wd_open(dir, tool_open_options, db);
	if (rc == 0)
		return EXIT_OK;
	if (rc == WD_EBUSY) {
		fprintf(stderr, "walden %s: %s is in use: %s\n", cmd, dir, wd_last_error());
		return EXIT_ERROR;
	}
	fprintf(stderr, "walden %s: %s: cannot open the database: %s (%s)\n", cmd, dir,
		wd_last_error(), wd_strerror(rc));
	if (rc == WD_ECORRUPT || rc == WD_EVERSION || rc == WD_EFOREIGN)
		return EXIT_DAMAGE;
	return EXIT_ERROR;
}

struct tables {
	tool_table *t;
	size_t n, cap;
};

static int add_table(void *arg, const db_table_info *ti)
{
	struct tables *ts = arg;
	if (ts->n == ts->cap) {
		size_t cap = ts->cap ? 2 * ts->cap : 16;
		tool_table *t = realloc(ts->t, cap * sizeof *t);
		if (!t)
			return WD_ENOMEM;
		ts->t = t;
		ts->cap = cap;
	}
	if (!(ts->t[ts->n].name = strdup(ti->name)))
		return WD_ENOMEM;
	ts->t[ts->n].heap_rel = ti->heap_rel;
	ts->t[ts->n].fsm_rel = ti->fsm_rel;
	ts->t[ts->n].index_rel = ti->index_rel;
	ts->n++;
	return 0;
}

int tool_tables(wd_db *db, tool_table **out, size_t *n)
{
	struct tables ts = {0};
	int rc = db_catalog_list(db, add_table, &ts);
	if (rc != 0) {
		tool_tables_free(ts.t, ts.n);
		return rc;
	}
	*out = ts.t;
	*n = ts.n;
	return 0;
}

void tool_tables_free(tool_table *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].name);
	free(t);
}

void tool_rel_path(const char *dir, wd_relid rel, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s/%u", dir, DB_BASE_DIR, rel);
}

int tool_read_block(const char *path, wd_blkno blk, uint8_t *p, uint32_t page_size,
		    size_t *got)
{
	st_file *f = NULL;
	int rc = storage_open(path, ST_RDONLY, &f);
	*got = 0;
	if (rc == 0)
		rc = storage_read(f, p, page_size, (uint64_t)blk * page_size, got);
	if (f)
		(void)storage_close(f);
	return rc;
}

void tool_print_key(FILE *out, const uint8_t *k, uint32_t len, uint32_t max)
{
	uint32_t n = len < max ? len : max;
	for (uint32_t i = 0; i < n; i++)
		fprintf(out, "%02x", k[i]);
	fputs(" \"", out);
	for (uint32_t i = 0; i < n; i++)
		fputc(isprint(k[i]) && k[i] != '"' && k[i] != '\\' ? k[i] : '.', out);
	fprintf(out, "\"%s", len > n ? "..." : "");
}

void tool_json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}
