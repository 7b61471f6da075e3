/*
 * cmd_mount_options.c: `scoutfs mount-options`, a mount's options, shown and changed.
 *
 * The original showed its mount options in /proc/mounts and let most of them be changed
 * through files in sysfs.  A FUSE mount's line in /proc/mounts holds only FUSE's own options,
 * so both go through the mount's daemon instead: with no NAME=VALUE the options are printed,
 * with some they are changed (all or none) and then printed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "control/ctl_client.h"

static const char mount_options_usage[] =
	"Usage: scoutfs mount-options [-p PATH] [NAME=VALUE ...]\n"
	"\n"
	"Print the mount options of the mount that holds PATH or, given NAME=VALUE pairs,\n"
	"change them while it is mounted and print the result.  Either every change is\n"
	"made or, if one is refused, none is.\n"
	"\n"
	"These may change while mounted, with the ranges `mount.scoutfs --help' gives:\n"
	"  quorum_heartbeat_timeout_ms, orphan_scan_delay_ms, log_merge_wait_timeout_ms,\n"
	"  lock_idle_count, ino_alloc_per_lock, data_prealloc_blocks,\n"
	"  data_prealloc_contig_only\n"
	"metadev_path, quorum_slot_nr, tcp_keepalive_timeout_ms and acl/noacl are fixed at\n"
	"mount.  Changes last until the filesystem is unmounted.  Printing needs no\n"
	"privilege; changing needs CAP_SYS_ADMIN.\n"
	"\n"
	"Options:\n"
	"  -p, --path PATH  a path in the mounted filesystem\n"
	"      --help       show this help and exit\n"
	"\n"
	"Output:\n"
	"  One NAME=VALUE line per option (acl or noacl alone), in the order the original\n"
	"  showed them in /proc/mounts; quorum_slot_nr only for quorum members.\n";

static const struct option mount_options_longopts[] = {
	{ "path", required_argument, NULL, 'p' },
	{ NULL, 0, NULL, 0 },
};

/* the reply: the options, or why a change was refused (the error reply's payload) */
struct reply {
	char *buf;
	size_t len;
};

static int gather(const void *data, size_t len, void *arg)
{
	struct reply *r = arg;
	char *p = realloc(r->buf, r->len + len + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p + r->len, data, len);
	r->len += len;
	p[r->len] = '\0';
	r->buf = p;
	return 0;
}

/* the NAME=VALUE operands joined with commas, as one option string */
static int join_changes(const char *cmd, int argc, char **argv, char **ret)
{
	size_t len = 1;
	char *str;

	for (int i = 0; i < argc; i++) {
		if (!strchr(argv[i], '=') || strchr(argv[i], ','))
			return cli_usage_error(cmd, "'%s' is not NAME=VALUE", argv[i]);
		len += strlen(argv[i]) + 1;
	}
	str = calloc(1, len);
	if (!str)
		return -ENOMEM;
	for (int i = 0; i < argc; i++) {
		if (i)
			strcat(str, ",");
		strcat(str, argv[i]);
	}
	*ret = str;
	return 0;
}

static int mount_options_main(int argc, char **argv)
{
	const char *cmd = "mount-options";
	struct reply reply = { NULL, 0 };
	struct ctl_conn *conn = NULL;
	const char *path = NULL;
	char *changes = NULL;
	int c, ret;

	while ((c = cli_getopt(cmd, argc, argv, "p:", mount_options_longopts)) != -1) {
		if (c != 'p')
			return CLI_EX_USAGE;
		path = optarg;
	}
	if (optind < argc) {
		ret = join_changes(cmd, argc - optind, argv + optind, &changes);
		if (ret)
			return ret;
	}
	ret = cli_open_mount(cmd, cli_mount_path(path), -1, &conn);
	if (ret)
		goto out;
	if (changes)
		ret = ctl_call(conn, CONTROL_CMD_SET_MOUNT_OPTIONS, changes, strlen(changes), -1,
			       gather, &reply);
	else
		ret = ctl_call(conn, CONTROL_CMD_MOUNT_OPTIONS, NULL, 0, -1, gather, &reply);
	ctl_close(conn);
	if (ret == 0 && reply.len)
		fputs(reply.buf, stdout);
	else if (ret == -EINVAL && reply.len)
		ret = cli_error(cmd, "%s", reply.buf);
out:
	free(reply.buf);
	free(changes);
	return ret;
}

const struct cli_cmd cli_cmd_mount_options = {
	.name = "mount-options",
	.group = CLI_GROUP_INFO,
	.flags = CLI_F_MOUNT,
	.summary = "print or change a mount's options",
	.usage = mount_options_usage,
	.fn = mount_options_main,
};
