/*
 * cmd_statfs.c: `scoutfs statfs`, the identity and size of a mounted volume.
 *
 * fsid and rid print as 16 hex digits (the forms logs and the control directory use), the
 * rest in decimal.  reserved_meta_blocks is in the reply (`scoutfs df` needs it) but, as in
 * the original, not printed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "control/ctl_client.h"

static const char statfs_usage[] =
        "Usage: scoutfs statfs [-p PATH] [-s FIELD]\n"
        "\n"
        "Print the identity and size of a mounted scoutfs filesystem: its fsid (the\n"
        "volume's identifier), this mount's rid (a random identifier chosen at each\n"
        "mount), committed_seq (every inode meta_seq and data_seq up to it is\n"
        "committed and shown by walk-inodes), and the sizes of its metadata device\n"
        "(in 64 KiB blocks) and data device (in 4 KiB blocks).\n"
        "\n"
        "Options:\n"
        "  -p, --path PATH           a path in the mounted filesystem\n"
        "  -s, --single-field FIELD  print only the value of FIELD: fsid, rid,\n"
        "                            committed_seq, total_meta_blocks or\n"
        "                            total_data_blocks\n"
        "      --help                show this help and exit\n"
        "\n"
        "Output:\n"
        "  One line per field, the name left-aligned in 17 characters then the value;\n"
        "  fsid and rid in 16 hexadecimal digits, the others in decimal.\n";

static const struct option statfs_longopts[] = {
	{ "path", required_argument, NULL, 'p' },
	{ "single-field", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

static const struct {
	const char *name;
	size_t off;
	bool hex;
} fields[] = {
	{ "fsid", offsetof(struct control_statfs_resp, fsid), true },
	{ "rid", offsetof(struct control_statfs_resp, rid), true },
	{ "committed_seq", offsetof(struct control_statfs_resp, committed_seq), false },
	{ "total_meta_blocks", offsetof(struct control_statfs_resp, total_meta_blocks), false },
	{ "total_data_blocks", offsetof(struct control_statfs_resp, total_data_blocks), false },
};

#define NR_FIELDS ((int)(sizeof(fields) / sizeof(fields[0])))

static int statfs_main(int argc, char **argv)
{
	const char *cmd = "statfs";
	struct control_statfs_resp sfm;
	struct ctl_conn *conn = NULL;
	const char *path = NULL;
	int single = -1;
	int ret;
	int c;

	while ((c = cli_getopt(cmd, argc, argv, "p:s:", statfs_longopts)) != -1) {
		switch (c) {
		case 'p':
			path = optarg;
			break;
		case 's':
			for (single = 0; single < NR_FIELDS; single++) {
				if (strcmp(optarg, fields[single].name) == 0)
					break;
			}
			if (single == NR_FIELDS)
				return cli_usage_error(cmd, "unknown field '%s'", optarg);
			break;
		default:
			return CLI_EX_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

	ret = cli_open_mount(cmd, cli_mount_path(path), -1, &conn);
	if (ret)
		return ret;

	ret = ctl_call_fixed(conn, CONTROL_CMD_STATFS, NULL, 0, -1, &sfm, sizeof(sfm));
	ctl_close(conn);
	if (ret < 0)
		return ret;

	for (int f = 0; f < NR_FIELDS; f++) {
		uint64_t v;

		if (single >= 0 && f != single)
			continue;
		memcpy(&v, (const char *)&sfm + fields[f].off, sizeof(v));
		if (single < 0)
			printf("%-17s ", fields[f].name);
		printf(fields[f].hex ? "%016llx\n" : "%llu\n", (unsigned long long)v);
	}
	return 0;
}

const struct cli_cmd cli_cmd_statfs = {
	.name = "statfs",
	.group = CLI_GROUP_INFO,
	.flags = CLI_F_MOUNT,
	.summary = "print a mounted volume's fsid, rid, committed seq and sizes",
	.usage = statfs_usage,
	.fn = statfs_main,
};
