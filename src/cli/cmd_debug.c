/*
 * cmd_debug.c: commands that act on a running mount through its daemon: `sync`, and the
 * debugging views and knobs -- this mount's locks, the server's locks, the quorum agent's
 * state, forcing a log merge, and injecting device faults for tests.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "control/ctl_client.h"

static const struct option path_longopts[] = {
	{ "path", required_argument, NULL, 'p' },
	{ NULL, 0, NULL, 0 },
};

static int print_text(const void *data, size_t len, void *arg)
{
	if (len && fwrite(data, 1, len, stdout) != len)
		return -EIO;
	return 0;
}

/* parse just -p PATH and run one call with no payload, printing any text reply */
static int simple_call(const char *cmd, int argc, char **argv, unsigned int ctl_cmd)
{
	struct ctl_conn *conn = NULL;
	const char *path = NULL;
	int c, ret;

	while ((c = cli_getopt(cmd, argc, argv, "p:", path_longopts)) != -1) {
		if (c != 'p')
			return CLI_EX_USAGE;
		path = optarg;
	}
	if (optind != argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	ret = cli_open_mount(cmd, cli_mount_path(path), -1, &conn);
	if (ret)
		return ret;
	ret = ctl_call(conn, ctl_cmd, NULL, 0, -1, print_text, NULL);
	ctl_close(conn);
	fflush(stdout);
	return ret;
}

static int sync_main(int argc, char **argv)
{
	return simple_call("sync", argc, argv, CONTROL_CMD_SYNC);
}

static int client_locks_main(int argc, char **argv)
{
	return simple_call("client-locks", argc, argv, CONTROL_CMD_CLIENT_LOCKS);
}

static int server_locks_main(int argc, char **argv)
{
	return simple_call("server-locks", argc, argv, CONTROL_CMD_SERVER_LOCKS);
}

static int quorum_status_main(int argc, char **argv)
{
	return simple_call("quorum-status", argc, argv, CONTROL_CMD_QUORUM_STATUS);
}

static int force_merge_main(int argc, char **argv)
{
	return simple_call("force-merge", argc, argv, CONTROL_CMD_FORCE_MERGE);
}

static const char inject_fault_usage[] =
	"Usage: scoutfs inject-fault [-p PATH] {meta|data} {write|flush} {fail|tear|clear}\n"
	"                            [-s SKIP] [-c COUNT] [-m BYTES]\n"
	"\n"
	"Make the mount's daemon fail or tear its I/O to a device, to test that failed\n"
	"commits never damage the filesystem.  After SKIP matching operations go through,\n"
	"the next COUNT (0: all from then on) are faulted: 'fail' returns an I/O error\n"
	"and writes nothing; 'tear' writes only part of a write and then returns an\n"
	"error, as a crash in the middle of a write would.  'clear' removes the rule.\n"
	"Requires CAP_SYS_ADMIN.\n"
	"\n"
	"Options:\n"
	"  -p, --path PATH    a path in the mounted filesystem\n"
	"  -s, --skip SKIP    operations to let through first (default 0)\n"
	"  -c, --count COUNT  operations to fault (default 1; 0 means every one)\n"
	"  -m, --min-bytes N  only writes of at least N bytes match (65536: metadata\n"
	"                     blocks but not the super or quorum blocks)\n"
	"      --help         show this help and exit\n";

static int inject_fault_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "skip", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'c' },
		{ "min-bytes", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "inject-fault";
	struct control_fault_req req = { .count = 1 };
	struct ctl_conn *conn = NULL;
	const char *path = NULL;
	char **av;
	int ac, c, ret;

	av = cli_operands_last(argc, argv, "p:s:c:m:", longopts, &ac);
	if (!av)
		return -ENOMEM;
	while ((c = cli_getopt(cmd, ac, av, "p:s:c:m:", longopts)) != -1) {
		switch (c) {
		case 'p':
			path = optarg;
			break;
		case 's':
			if (cli_parse_u64(cmd, "skip", optarg, &req.skip))
				goto usage;
			break;
		case 'c':
			if (cli_parse_u64(cmd, "count", optarg, &req.count))
				goto usage;
			break;
		case 'm':
			if (cli_parse_size(cmd, "minimum bytes", optarg, &req.min_len))
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (ac - optind != 3) {
		cli_usage_error(cmd, "a device, an operation and an action are required");
		goto usage;
	}
	if (strcmp(av[optind], "meta") == 0)
		req.dev = CONTROL_FAULT_META;
	else if (strcmp(av[optind], "data") == 0)
		req.dev = CONTROL_FAULT_DATA;
	else {
		cli_usage_error(cmd, "unknown device '%s' (meta or data)", av[optind]);
		goto usage;
	}
	if (strcmp(av[optind + 1], "write") == 0)
		req.op = CONTROL_FAULT_WRITE;
	else if (strcmp(av[optind + 1], "flush") == 0)
		req.op = CONTROL_FAULT_FLUSH;
	else {
		cli_usage_error(cmd, "unknown operation '%s' (write or flush)", av[optind + 1]);
		goto usage;
	}
	if (strcmp(av[optind + 2], "fail") == 0)
		req.action = CONTROL_FAULT_FAIL;
	else if (strcmp(av[optind + 2], "tear") == 0)
		req.action = CONTROL_FAULT_TEAR;
	else if (strcmp(av[optind + 2], "clear") == 0)
		req.action = CONTROL_FAULT_CLEAR;
	else {
		cli_usage_error(cmd, "unknown action '%s' (fail, tear or clear)", av[optind + 2]);
		goto usage;
	}

	ret = cli_open_mount(cmd, cli_mount_path(path), -1, &conn);
	if (ret == 0) {
		ret = ctl_call(conn, CONTROL_CMD_FAULT, &req, sizeof(req), -1, NULL, NULL);
		ctl_close(conn);
	}
	free(av);
	return ret;
usage:
	free(av);
	return CLI_EX_USAGE;
}

#define PATH_ONLY_USAGE(name, what)                                                        \
	"Usage: scoutfs " name " [-p PATH]\n"                                              \
	"\n" what "\n"                                                                     \
	"\n"                                                                               \
	"Options:\n"                                                                       \
	"  -p, --path PATH  a path in the mounted filesystem\n"                           \
	"      --help       show this help and exit\n"

const struct cli_cmd cli_cmd_sync = {
	.name = "sync",
	.group = CLI_GROUP_CORE,
	.flags = CLI_F_MOUNT,
	.summary = "commit everything a mount changed and wait until it is durable",
	.usage = PATH_ONLY_USAGE(
		"sync",
		"Commit the open transaction of the mount holding PATH and wait until it is\n"
		"durable.  FUSE does not pass sync(2) on to filesystem daemons, so `sync' alone\n"
		"does not commit a scoutfs mount's changes (they commit on fsync(2), every ten\n"
		"seconds, and when another mount needs them); this command does."),
	.fn = sync_main,
};

const struct cli_cmd cli_cmd_client_locks = {
	.name = "client-locks",
	.group = CLI_GROUP_DEBUG,
	.flags = CLI_F_MOUNT,
	.summary = "list the cluster locks a mount holds",
	.usage = PATH_ONLY_USAGE("client-locks",
				 "Print one line per cluster lock the mount holds: its start key, "
				 "mode,\nusers per mode and pending requests.  Requires "
				 "CAP_SYS_ADMIN."),
	.fn = client_locks_main,
};

const struct cli_cmd cli_cmd_server_locks = {
	.name = "server-locks",
	.group = CLI_GROUP_DEBUG,
	.flags = CLI_F_MOUNT,
	.summary = "list the lock server's table (on the server's mount)",
	.usage = PATH_ONLY_USAGE("server-locks",
				 "Print the lock server's entries: key, mode, list (granted,\n"
				 "requested, invalidated), rid and request id.  Only the mount "
				 "running\nthe server has them (others fail with ENOTCONN).  "
				 "Requires CAP_SYS_ADMIN."),
	.fn = server_locks_main,
};

const struct cli_cmd cli_cmd_quorum_status = {
	.name = "quorum-status",
	.group = CLI_GROUP_DEBUG,
	.flags = CLI_F_MOUNT,
	.summary = "show the quorum agent's state",
	.usage = PATH_ONLY_USAGE("quorum-status",
				 "Print the quorum agent's state: slot, term, role, votes and the "
				 "last\nmessages sent to and received from each slot.  Requires\n"
				 "CAP_SYS_ADMIN; mounts without a quorum slot fail with ENOENT."),
	.fn = quorum_status_main,
};

const struct cli_cmd cli_cmd_force_merge = {
	.name = "force-merge",
	.group = CLI_GROUP_DEBUG,
	.flags = CLI_F_MOUNT,
	.summary = "merge every log tree into the filesystem root now",
	.usage = PATH_ONLY_USAGE("force-merge",
				 "Ask the server (this mount must run it) to finalize every mount's "
				 "log\ntree and merge them into the filesystem root.  Requires "
				 "CAP_SYS_ADMIN."),
	.fn = force_merge_main,
};

const struct cli_cmd cli_cmd_inject_fault = {
	.name = "inject-fault",
	.group = CLI_GROUP_DEBUG,
	.flags = CLI_F_MOUNT,
	.summary = "fail or tear a mount's device writes (testing)",
	.usage = inject_fault_usage,
	.fn = inject_fault_main,
};
