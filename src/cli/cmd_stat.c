/*
 * cmd_stat.c: `scoutfs stat`, the scoutfs fields of one file.
 *
 * The file is opened here and its descriptor passed to the daemon, which reads the fields of
 * exactly the inode we opened (and we must have been allowed to open it).  Kept from the
 * original for the test goldens: when the daemon fails the request, the error is printed as
 * "ioctl failed: <strerror> (<errno>)" and the exit status is still 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "control/ctl_client.h"

static const char stat_usage[] =
        "Usage: scoutfs stat [-s FIELD] FILE\n"
        "\n"
        "Print the scoutfs fields of a file in a mounted scoutfs filesystem: the\n"
        "sequence numbers of the transactions that last changed its metadata (meta_seq)\n"
        "and its contents or size (data_seq), its data version (a counter that changes\n"
        "whenever its contents or size change), its blocks that are online (stored) and\n"
        "offline (released to an archive), and its creation time.\n"
        "\n"
        "Options:\n"
        "  -s, --single-field FIELD  print only the value of FIELD: meta_seq,\n"
        "                            data_seq, data_version, online_blocks,\n"
        "                            offline_blocks or crtime\n"
        "      --help                show this help and exit\n"
        "\n"
        "Output:\n"
        "  One line per field, the name left-aligned in 17 characters then the value;\n"
        "  crtime is SECONDS.NANOSECONDS with nine digits of nanoseconds.\n";

static const char stat_exit_status[] =
        "Exit status:\n"
        "  0   success, and also when the filesystem refused the request (the error is\n"
        "      printed as `ioctl failed: ...', as the original did)\n"
        "  1   the file could not be opened or is not in a scoutfs filesystem\n"
        "  64  invalid arguments\n";

static const struct option stat_longopts[] = {
	{ "single-field", required_argument, NULL, 's' },
	{ NULL, 0, NULL, 0 },
};

enum stat_field {
	F_META_SEQ,
	F_DATA_SEQ,
	F_DATA_VERSION,
	F_ONLINE_BLOCKS,
	F_OFFLINE_BLOCKS,
	F_CRTIME,
	F_NR,
};

static const char *const field_names[F_NR] = {
	[F_META_SEQ] = "meta_seq",
	[F_DATA_SEQ] = "data_seq",
	[F_DATA_VERSION] = "data_version",
	[F_ONLINE_BLOCKS] = "online_blocks",
	[F_OFFLINE_BLOCKS] = "offline_blocks",
	[F_CRTIME] = "crtime",
};

static void print_value(const struct control_stat_resp *st, int f)
{
	static const size_t offs[F_NR] = {
		[F_META_SEQ] = offsetof(struct control_stat_resp, meta_seq),
		[F_DATA_SEQ] = offsetof(struct control_stat_resp, data_seq),
		[F_DATA_VERSION] = offsetof(struct control_stat_resp, data_version),
		[F_ONLINE_BLOCKS] = offsetof(struct control_stat_resp, online_blocks),
		[F_OFFLINE_BLOCKS] = offsetof(struct control_stat_resp, offline_blocks),
	};
	uint64_t v;

	if (f == F_CRTIME) {
		printf("%llu.%09u\n", (unsigned long long)st->crtime_sec, st->crtime_nsec);
		return;
	}
	memcpy(&v, (const char *)st + offs[f], sizeof(v));
	printf("%llu\n", (unsigned long long)v);
}

static int stat_main(int argc, char **argv)
{
	const char *cmd = "stat";
	struct control_stat_resp st;
	struct ctl_conn *conn = NULL;
	const char *file;
	int single = -1;
	int fd = -1;
	int ret;
	int c;

	while ((c = cli_getopt(cmd, argc, argv, "s:", stat_longopts)) != -1) {
		switch (c) {
		case 's':
			for (single = 0; single < F_NR; single++) {
				if (strcmp(optarg, field_names[single]) == 0)
					break;
			}
			if (single == F_NR)
				return cli_usage_error(cmd, "unknown field '%s'", optarg);
			break;
		default:
			return CLI_EX_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(cmd, "missing file");
	if (argc - optind > 1)
		return cli_usage_error(cmd, "too many arguments");
	file = argv[optind];

	/* nonblocking so that a fifo does not wait for a writer */
	fd = open(file, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return cli_error(cmd, "cannot open '%s': %s", file, strerror(errno));

	ret = cli_open_mount(cmd, file, fd, &conn);
	if (ret)
		goto out;

	ret = ctl_call_fixed(conn, CONTROL_CMD_STAT, NULL, 0, fd, &st, sizeof(st));
	if (ret < 0) {
		fprintf(stderr, "ioctl failed: %s (%d)\n", strerror(-ret), -ret);
		ret = 0;
		goto out;
	}

	for (int f = 0; f < F_NR; f++) {
		if (single >= 0 && f != single)
			continue;
		if (single < 0)
			printf("%-17s ", field_names[f]);
		print_value(&st, f);
	}
out:
	ctl_close(conn);
	close(fd);
	return ret;
}

const struct cli_cmd cli_cmd_stat = {
	.name = "stat",
	.group = CLI_GROUP_INFO,
	.summary = "print the scoutfs fields of a file (seqs, data version, blocks)",
	.usage = stat_usage,
	.exit_status = stat_exit_status,
	.fn = stat_main,
};
