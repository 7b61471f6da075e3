/*
 * scoutfs.c: main() of the `scoutfs` command.
 *
 * It only dispatches: finds the subcommand in the table of commands.c, answers --help and
 * --version for every command the same way, runs the command, and turns what the command
 * returns into the message and exit status documented in cli.h.  Everything a command does
 * lives in its own cmd_*.c file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "control/control_proto.h"
#include "format/format.h"

#ifndef SCOUTFS_VERSION
#define SCOUTFS_VERSION "unknown"
#endif

static const char *const group_names[CLI_GROUP_NR] = {
	[CLI_GROUP_CORE] = "Core",   [CLI_GROUP_INFO] = "Info",   [CLI_GROUP_SEARCH] = "Search",
	[CLI_GROUP_AGENT] = "Agent", [CLI_GROUP_DEBUG] = "Debug",
};

static const char common_exit_status[] =
        "Exit status:\n"
        "  0   success\n"
        "  1   the command failed; the reason is printed on stderr\n"
        "  64  invalid arguments\n";

static const char mount_environment[] =
        "Environment:\n"
        "  SCOUTFS_MOUNT_PATH  the mount to use when -p is not given (else the current\n"
        "                      directory)\n"
        "  SCOUTFS_RUN_DIR     where mounts' control sockets live (default " CONTROL_RUN_DIR_DEFAULT
        ")\n";

static void print_version(void)
{
	printf("scoutfs %s\n"
	       "Supported format versions: %d-%d\n"
	       "Control protocol version: %d\n",
	       SCOUTFS_VERSION, SCOUTFS_FORMAT_VERSION_MIN, SCOUTFS_FORMAT_VERSION_MAX,
	       CONTROL_VERSION);
}

static void print_usage(FILE *f)
{
	const struct cli_cmd *const *c;
	int width = 0;

	for (c = cli_commands; *c; c++) {
		int len = (int)strlen((*c)->name);

		if (len > width)
			width = len;
	}

	fprintf(f, "Usage: scoutfs COMMAND [OPTIONS] [ARGS]\n"
	           "       scoutfs COMMAND --help\n"
	           "       scoutfs --help | --version\n"
	           "\n"
	           "A clustered archival filesystem.  Online commands act on a mounted filesystem\n"
	           "through its daemon; offline commands read or write its devices.\n");

	for (int g = 0; g < CLI_GROUP_NR; g++) {
		bool any = false;

		for (c = cli_commands; *c; c++) {
			if ((*c)->group != (enum cli_group)g)
				continue;
			if (!any)
				fprintf(f, "\n%s commands:\n", group_names[g]);
			any = true;
			fprintf(f, "  %-*s  %s\n", width, (*c)->name, (*c)->summary);
		}
	}

	fprintf(f, "\nSupported format versions: %d-%d\n", SCOUTFS_FORMAT_VERSION_MIN,
	        SCOUTFS_FORMAT_VERSION_MAX);
}

static void print_cmd_help(const struct cli_cmd *cmd)
{
	printf("%s\n%s", cmd->usage, cmd->exit_status ? cmd->exit_status : common_exit_status);
	if (cmd->flags & CLI_F_MOUNT)
		printf("\n%s", mount_environment);
}

static const struct cli_cmd *find_cmd(const char *name)
{
	for (const struct cli_cmd *const *c = cli_commands; *c; c++) {
		if (strcmp((*c)->name, name) == 0)
			return *c;
	}
	return NULL;
}

/* is --help among the arguments (before any "--")? */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

static int unknown_command(const char *name)
{
	fprintf(stderr,
	        "scoutfs: unrecognized command: '%s'\n"
	        "Try `scoutfs --help' for a list of commands.\n",
	        name);
	return CLI_EX_USAGE;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	const char *name;
	int ret;

	if (argc < 2) {
		print_usage(stderr);
		return CLI_EX_USAGE;
	}
	name = argv[1];

	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    (strcmp(name, "help") == 0 && argc == 2)) {
		print_usage(stdout);
		return CLI_EX_OK;
	}
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
		print_version();
		return CLI_EX_OK;
	}
	if (strcmp(name, "help") == 0) {
		cmd = find_cmd(argv[2]);
		if (!cmd)
			return unknown_command(argv[2]);
		print_cmd_help(cmd);
		return CLI_EX_OK;
	}
	if (name[0] == '-') {
		fprintf(stderr,
		        "scoutfs: unrecognized option '%s'\n"
		        "Try `scoutfs --help' for more information.\n",
		        name);
		return CLI_EX_USAGE;
	}

	cmd = find_cmd(name);
	if (!cmd)
		return unknown_command(name);

	argc--;
	argv++;
	if (wants_help(argc, argv)) {
		print_cmd_help(cmd);
		return CLI_EX_OK;
	}

	optind = 1;
	ret = cmd->fn(argc, argv);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (ret == 0)
			ret = cli_error(cmd->name, "error writing output: %s", strerror(errno));
	}
	if (ret < 0) {
		fprintf(stderr, "scoutfs: %s failed: %s (%d)\n", cmd->name, strerror(-ret), -ret);
		ret = CLI_EX_FAIL;
	}
	return ret;
}
