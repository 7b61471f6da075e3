/*
 * cli_util.c: what every command needs: the standard error messages, option parsing that
 * reports errors the same way everywhere, number parsing, and reaching a mount's daemon.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "control/ctl_client.h"
#include "util/util.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry `scoutfs %s --help' for more information.\n", cmd);
	return CLI_EX_USAGE;
}

int cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "scoutfs: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EX_FAIL;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
	char opts[128];
	const char *arg;
	int c;

	/* leading ':' reports a missing argument as ':' and keeps getopt quiet */
	snprintf(opts, sizeof(opts), ":%s", shortopts);
	opterr = 0;
	c = getopt_long(argc, argv, opts, longopts, NULL);
	if (c != '?' && c != ':')
		return c;

	arg = (optind > 0 && optind <= argc) ? argv[optind - 1] : "";
	if (c == ':') {
		if (strncmp(arg, "--", 2) == 0)
			cli_usage_error(cmd, "option '%s' requires an argument", arg);
		else
			cli_usage_error(cmd, "option requires an argument -- '%c'", optopt);
	} else if (optopt) {
		cli_usage_error(cmd, "invalid option -- '%c'", optopt);
	} else {
		cli_usage_error(cmd, "unrecognized option '%s'", arg);
	}
	return '?';
}

/* does the long option named by arg ("--name" or "--name=value") take the next argument? */
static bool long_takes_next(const char *arg, const struct option *longopts)
{
	const char *name = arg + 2;
	size_t len = strcspn(name, "=");
	const struct option *found = NULL;
	int matches = 0;

	if (name[len] == '=' || !longopts)
		return false;
	for (const struct option *o = longopts; o->name; o++) {
		if (strncmp(o->name, name, len) != 0)
			continue;
		if (strlen(o->name) == len) {
			found = o;
			matches = 1;
			break;
		}
		found = o;
		matches++;
	}
	return matches == 1 && found->has_arg == required_argument;
}

/* does the bundle of short options in arg ("-xyz") end with one that takes the next argument? */
static bool short_takes_next(const char *arg, const char *shortopts)
{
	for (const char *p = arg + 1; *p; p++) {
		const char *o = strchr(shortopts, *p);

		if (!o || *p == ':')
			return false;
		if (o[1] == ':')
			return o[2] != ':' && p[1] == '\0';
	}
	return false;
}

static bool looks_like_option(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0' && !(arg[1] >= '0' && arg[1] <= '9');
}

char **cli_operands_last(int argc, char **argv, const char *shortopts,
                         const struct option *longopts, int *new_argc)
{
	char **out = calloc(argc + 2, sizeof(char *));
	char **operands = calloc(argc + 1, sizeof(char *));
	int nr_out = 0;
	int nr_ops = 0;
	int i;

	if (!out || !operands) {
		free(out);
		free(operands);
		return NULL;
	}

	out[nr_out++] = argv[0];
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--") == 0) {
			for (i++; i < argc; i++)
				operands[nr_ops++] = argv[i];
			break;
		}
		if (!looks_like_option(arg)) {
			operands[nr_ops++] = argv[i];
			continue;
		}
		out[nr_out++] = argv[i];
		if (strncmp(arg, "--", 2) == 0 ? long_takes_next(arg, longopts)
		                               : short_takes_next(arg, shortopts)) {
			/* a missing argument: leave it last for getopt to report */
			if (i + 1 == argc)
				goto done;
			out[nr_out++] = argv[++i];
		}
	}

	out[nr_out++] = "--";
	for (i = 0; i < nr_ops; i++)
		out[nr_out++] = operands[i];
done:
	out[nr_out] = NULL;
	free(operands);
	*new_argc = nr_out;
	return out;
}

int cli_parse_u64(const char *cmd, const char *what, const char *str, uint64_t *val)
{
	if (parse_u64(str, val) < 0)
		return cli_usage_error(cmd, "invalid %s '%s'", what, str);
	return 0;
}

int cli_parse_size(const char *cmd, const char *what, const char *str, uint64_t *val)
{
	if (parse_human_u64(str, val) < 0)
		return cli_usage_error(
		        cmd, "invalid %s '%s' (a number with an optional K, M, G, T or P suffix)",
		        what, str);
	return 0;
}

const char *cli_mount_path(const char *opt_path)
{
	const char *env;

	if (opt_path)
		return opt_path;
	env = getenv("SCOUTFS_MOUNT_PATH");
	if (env && *env)
		return env;
	return ".";
}

int cli_open_mount(const char *cmd, const char *path, int fd, struct ctl_conn **conn)
{
	char cwd[PATH_MAX];
	char err[PATH_MAX + 256];
	int ret;

	/* name the current directory by its path in messages */
	if (strcmp(path, ".") == 0 && getcwd(cwd, sizeof(cwd)))
		path = cwd;

	if (fd >= 0)
		ret = ctl_open_fd(fd, path, conn, err, sizeof(err));
	else
		ret = ctl_open_path(path, conn, err, sizeof(err));
	if (ret < 0)
		return cli_error(cmd, "%s", err);
	return 0;
}
