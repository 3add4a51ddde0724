/*
 * tools.h - the subcommands of the `walden` program. Each *_main gets the
 * subcommand's own argv (argv[0] is its name) and returns the exit code:
 * 0 ok, 1 error, 2 usage, 3 damage found (check).
 */
#ifndef WALDEN_TOOLS_H
#define WALDEN_TOOLS_H

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_DAMAGE = 3 };

int demo_main(int argc, char **argv);
int inspect_main(int argc, char **argv);
int bench_main(int argc, char **argv);
int waldump_main(int argc, char **argv);

/* Prints "walden <cmd>: <msg>: <wd_last_error()>" to stderr; returns 1. */
int tool_fail(const char *cmd, int rc, const char *what);

#endif
