/* hello.c - the smallest walden program: open, put, commit, get, close. */
#include <stdio.h>
#include <stdlib.h>
#include <walden.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "%s: %s (%s)\n", what, wd_strerror(rc), wd_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "hello.db";
	wd_db *db;
	wd_txn *txn;
	wd_table *t;
	char buf[64];
	size_t len;
	int rc;

	if ((rc = wd_open(dir, NULL, &db)) != 0) /* creates it if absent */
		return fail("open", rc);
	if ((rc = wd_begin(db, &txn)) != 0 ||
	    (rc = wd_table_open(txn, "greetings", WD_CREATE, &t)) != 0 ||
	    (rc = wd_put(txn, t, "hello", 5, "world", 5)) != 0 ||
	    (rc = wd_commit(txn)) != 0) /* durable once this returns */
		return fail("write", rc);
	if ((rc = wd_begin(db, &txn)) != 0 ||
	    (rc = wd_get(txn, t, "hello", 5, buf, sizeof buf, &len)) != 0 ||
	    (rc = wd_commit(txn)) != 0)
		return fail("read", rc);
	printf("hello -> %.*s (walden %s)\n", (int)len, buf, wd_version());
	return (rc = wd_close(db)) != 0 ? fail("close", rc) : 0;
}
