/*
 * cli.h: the framework of the `scoutfs` command.
 *
 * Every subcommand is one file, cmd_NAME.c, that defines one struct cli_cmd:
 *
 *	const struct cli_cmd cli_cmd_walk_inodes = {
 *		.name = "walk-inodes",
 *		.group = CLI_GROUP_SEARCH,
 *		.flags = CLI_F_MOUNT,
 *		.summary = "print a range of an inode index",
 *		.usage = "Usage: scoutfs walk-inodes ...\n\n...",
 *		.fn = walk_inodes_main,
 *	};
 *
 * and one line in commands.c lists it; the file goes into cli_srcs in meson.build.  main()
 * (scoutfs.c) finds the command, answers `scoutfs NAME --help` from .usage itself, and runs
 * .fn with argv[0] set to the command name, so .fn parses its options with cli_getopt()
 * and its own argv.
 *
 * What .fn returns decides the exit status:
 *	0		success (exit 0)
 *	-errno		the operation failed: main prints "scoutfs: NAME failed: <strerror>
 *(<errno>)" and exits 1 > 0		the exit status itself; the command already said why
 *(cli_usage_error() returns CLI_EX_USAGE, cli_error() returns CLI_EX_FAIL)
 *
 * Online commands (CLI_F_MOUNT) act on a mounted filesystem through its daemon: they take
 * -p/--path (cli_mount_path() supplies the fallbacks) and connect with cli_open_mount().
 * Offline commands read or write devices with the lower layers and need neither.
 */
#ifndef SCOUTFS_CLI_H
#define SCOUTFS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

struct ctl_conn;

/* exit statuses */
#define CLI_EX_OK    0
#define CLI_EX_FAIL  1
#define CLI_EX_USAGE 64 /* as sysexits.h EX_USAGE */

/* the headings of `scoutfs --help`, in this order */
enum cli_group {
	CLI_GROUP_CORE = 0, /* making and changing volumes */
	CLI_GROUP_INFO,     /* reading state */
	CLI_GROUP_SEARCH,   /* finding inodes */
	CLI_GROUP_AGENT,    /* archive agents: release, stage, ... */
	CLI_GROUP_DEBUG,    /* counters, printing structures, ... */
	CLI_GROUP_NR,
};

/* the command works on a mount through its daemon (-p PATH; adds an ENVIRONMENT section) */
#define CLI_F_MOUNT (1U << 0)

struct cli_cmd {
	const char *name;
	enum cli_group group;
	unsigned int flags; /* CLI_F_* */
	/* one line for the list of commands, lower case, no full stop */
	const char *summary;
	/*
	 * The text of `scoutfs NAME --help`: a "Usage:" synopsis, a description, the options
	 * and what is printed.  main() appends the exit statuses (exit_status, or the common
	 * ones if NULL) and, for CLI_F_MOUNT commands, the environment variables.
	 */
	const char *usage;
	const char *exit_status;
	int (*fn)(int argc, char **argv);
};

/* commands.c: every command, NULL terminated */
extern const struct cli_cmd *const cli_commands[];

extern const struct cli_cmd cli_cmd_check;
extern const struct cli_cmd cli_cmd_counters;
extern const struct cli_cmd cli_cmd_mkfs;
extern const struct cli_cmd cli_cmd_mount_options;
extern const struct cli_cmd cli_cmd_print;
extern const struct cli_cmd cli_cmd_sync;
extern const struct cli_cmd cli_cmd_client_locks;
extern const struct cli_cmd cli_cmd_server_locks;
extern const struct cli_cmd cli_cmd_quorum_status;
extern const struct cli_cmd cli_cmd_force_merge;
extern const struct cli_cmd cli_cmd_get_fiemap;
extern const struct cli_cmd cli_cmd_inject_fault;
extern const struct cli_cmd cli_cmd_stat;
extern const struct cli_cmd cli_cmd_statfs;
extern const struct cli_cmd cli_cmd_walk_inodes;

/* ---------------------------------------------------------------------------------------- */
/* helpers shared by the commands (cli_util.c) */

/*
 * Print "CMD: message" and "Try `scoutfs CMD --help' for more information." on stderr and
 * return CLI_EX_USAGE.
 */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* print "scoutfs: CMD: message" on stderr and return CLI_EX_FAIL */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * getopt_long() that reports errors as usage errors of cmd.  Returns the option character,
 * -1 after the last option (optind is then the first operand), or '?' after printing the
 * error (the caller returns CLI_EX_USAGE).  shortopts is as for getopt without a leading ':'.
 */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/*
 * getopt takes "-1" for an option.  For commands whose operands may be negative numbers,
 * this rewrites argv (into a new array the caller frees) with every option first, then
 * "--", then the operands in their order; an argument that looks like a negative number is
 * an operand unless it is an option's argument.  (An option missing its argument is left
 * last, for getopt to report.)  Returns NULL when out of memory.
 */
char **cli_operands_last(int argc, char **argv, const char *shortopts,
                         const struct option *longopts, int *new_argc);

/*
 * Parse a u64 (base 0: decimal, 0x hex, 0 octal) or, for cli_parse_size, a u64 with a
 * K/M/G/T/P suffix (powers of 1024).  On junk or overflow print a usage error naming what
 * and return CLI_EX_USAGE.
 */
int cli_parse_u64(const char *cmd, const char *what, const char *str, uint64_t *val);
int cli_parse_size(const char *cmd, const char *what, const char *str, uint64_t *val);

/* the mount path: the -p argument, else $SCOUTFS_MOUNT_PATH, else the current directory */
const char *cli_mount_path(const char *opt_path);

/*
 * Connect to the daemon of the mount holding path (cli_mount_path() of -p), or of the open
 * file fd if fd >= 0 (path then only names it).  Prints "scoutfs: CMD: why" and returns
 * CLI_EX_FAIL on failure.
 */
int cli_open_mount(const char *cmd, const char *path, int fd, struct ctl_conn **conn);

/* ---------------------------------------------------------------------------------------- */
/* progress of long offline commands (cli_progress.c) */

enum cli_progress_mode {
	CLI_PROGRESS_AUTO = 0, /* on a terminal, steps that take longer than a moment */
	CLI_PROGRESS_ALWAYS,   /* every step as it begins (--progress) */
	CLI_PROGRESS_NEVER,
};

struct cli_progress;

/*
 * Start reporting the steps of cmd on stderr ("scoutfs CMD: STEP...").  -ENOMEM only; a
 * command may go on without progress (the functions below accept NULL).
 */
int cli_progress_start(const char *cmd, enum cli_progress_mode mode, struct cli_progress **ret);
/* a new step begins */
void cli_progress_step(struct cli_progress *pr, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* the command is over: "done" or "failed" if anything was shown; frees pr */
void cli_progress_done(struct cli_progress *pr, bool ok);

#endif
