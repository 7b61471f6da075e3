/*
 * cli_support.h: running the `scoutfs` command in a child process, for the tests that check
 * its messages, outputs and exit statuses (test_cli, test_check).
 */
#ifndef SCOUTFS_TESTS_CLI_SUPPORT_H
#define SCOUTFS_TESTS_CLI_SUPPORT_H

#include <stdarg.h>

/*
 * Run exe as "scoutfs" with the NULL-terminated arguments that start with arg (ap holds the
 * ones after it), its stdout written to out_path and its stderr to err_path, or to out_path
 * too when err_path is NULL.  Returns its exit status; fails the test (through cmocka) when
 * the command can't be run or doesn't exit normally.
 */
int cli_run(const char *exe, const char *out_path, const char *err_path, const char *arg,
            va_list ap);

#endif
