/*
 * cli_support.c: the child process of a command test (cli_support.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four above */
#include <cmocka.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_support.h"

#define MAX_ARGS 32

/* exit statuses of the child that mean the command never ran */
#define EX_NO_REDIRECT 120
#define EX_NO_EXEC     121

int cli_run(const char *exe, const char *out_path, const char *err_path, const char *arg,
            va_list ap)
{
	char *argv[MAX_ARGS];
	int nr = 0;
	int status;
	pid_t pid;

	argv[nr++] = "scoutfs";
	for (const char *a = arg; a && nr < MAX_ARGS - 1; a = va_arg(ap, const char *))
		argv[nr++] = (char *)a;
	argv[nr] = NULL;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = err_path ? open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : out;

		if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(EX_NO_REDIRECT);
		execv(exe, argv);
		_exit(EX_NO_EXEC);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	status = WEXITSTATUS(status);
	assert_true(status != EX_NO_REDIRECT && status != EX_NO_EXEC);
	return status;
}
