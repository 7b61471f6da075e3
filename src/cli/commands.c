/*
 * commands.c: the one list of the `scoutfs` subcommands.
 *
 * To add a command: write cmd_NAME.c defining `const struct cli_cmd cli_cmd_NAME` (cli.h
 * says what it contains), declare it in cli.h, list it here, and add the file to cli_srcs in
 * meson.build.  `scoutfs --help` shows commands by group in the order listed here, so keep
 * each group alphabetical.
 */
#include <stddef.h>

#include "cli/cli.h"

const struct cli_cmd *const cli_commands[] = {
	/* Core */
	&cli_cmd_check,
	&cli_cmd_mkfs,
	&cli_cmd_sync,

	/* Info */
	&cli_cmd_mount_options,
	&cli_cmd_stat,
	&cli_cmd_statfs,

	/* Search */
	&cli_cmd_walk_inodes,

	/* Agent: release, stage, ... */

	/* Debug */
	&cli_cmd_client_locks,
	&cli_cmd_counters,
	&cli_cmd_force_merge,
	&cli_cmd_get_fiemap,
	&cli_cmd_inject_fault,
	&cli_cmd_print,
	&cli_cmd_quorum_status,
	&cli_cmd_server_locks,

	NULL,
};
