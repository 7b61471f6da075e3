/*
 * cmd_walk_inodes.c: `scoutfs walk-inodes`, printing a range of an inode index.
 *
 * The daemon answers each WALK_INODES call with a batch of entries in order and may return
 * fewer than asked (it only shows seqs that are stable cluster-wide, semantics.md 1.5).  We
 * keep asking from just past the last entry until a call returns nothing.  Entries are
 * checked to be ascending and inside the range asked for, so a confused daemon cannot keep us
 * looping.
 *
 * Output (kept from the original for scripts): a header line every 25 rows, and rows of the
 * running row number, major (the seq), minor and inode number, left-aligned in columns of
 * 20, 20, 10 and 20 characters:
 *
 *	#                    major                minor      ino
 *	0                    5                    0          1
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "control/ctl_client.h"
#include "util/util.h"

#define WALK_BATCH      1024
#define ROWS_PER_HEADER 25

static const char walk_usage[] =
        "Usage: scoutfs walk-inodes [-p PATH] {meta_seq|data_seq} FIRST LAST\n"
        "       scoutfs walk-inodes {meta_seq|data_seq} FIRST LAST PATH\n"
        "\n"
        "Print the inodes recorded in an inode index between two positions.\n"
        "\n"
        "The meta_seq index holds every inode, ordered by the sequence number of the\n"
        "last transaction that changed it; the data_seq index holds regular files,\n"
        "ordered by the sequence number of the last transaction that changed their\n"
        "contents or size.  An entry only appears once the transaction that made it,\n"
        "and every older transaction in the cluster, has been committed (see\n"
        "`scoutfs statfs -s committed_seq').  Entries are not updated atomically with\n"
        "the inodes: check what you find.\n"
        "\n"
        "FIRST and LAST are positions MAJOR[.MINOR[.INO]] (missing parts are 0), each\n"
        "part a decimal, 0x-hexadecimal or 0-octal number; -1 as a part means its\n"
        "largest value, so `0 -1' walks the whole index.  MAJOR is the sequence number;\n"
        "MINOR is always 0 for these indexes.\n"
        "\n"
        "Options:\n"
        "  -p, --path PATH  a path in the mounted filesystem (may also be given as the\n"
        "                   last operand)\n"
        "      --help       show this help and exit\n"
        "\n"
        "Output:\n"
        "  A header line `# major minor ino' every 25 rows, then one row per entry: the\n"
        "  row number (from 0), the major (sequence number), the minor and the inode\n"
        "  number, left-aligned in columns 20, 20, 10 and 20 characters wide.\n";

static const struct option walk_longopts[] = {
	{ "path", required_argument, NULL, 'p' },
	{ NULL, 0, NULL, 0 },
};

/* one part of a position: "-1" is the largest value, else an unsigned number up to max */
static bool parse_part(const char *str, uint64_t max, uint64_t *val)
{
	if (strcmp(str, "-1") == 0) {
		*val = max;
		return true;
	}
	return parse_u64(str, val) == 0 && *val <= max;
}

static bool parse_pos(const char *str, struct control_walk_inodes_entry *pos)
{
	static const uint64_t maxes[3] = { UINT64_MAX, UINT32_MAX, UINT64_MAX };
	uint64_t vals[3] = { 0, 0, 0 };
	char *copy = strdup(str);
	char *p = copy;
	bool ok = copy != NULL;
	int i;

	for (i = 0; ok && p; i++) {
		char *dot = strchr(p, '.');

		if (dot)
			*dot = '\0';
		ok = i < 3 && parse_part(p, maxes[i], &vals[i]);
		p = dot ? dot + 1 : NULL;
	}
	free(copy);

	if (ok) {
		memset(pos, 0, sizeof(*pos));
		pos->major = vals[0];
		pos->minor = (uint32_t)vals[1];
		pos->ino = vals[2];
	}
	return ok;
}

static int pos_cmp(const struct control_walk_inodes_entry *a,
                   const struct control_walk_inodes_entry *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return 0;
}

/* the position just after pos; false if pos is the very last one */
static bool pos_next(struct control_walk_inodes_entry *pos)
{
	if (++pos->ino != 0)
		return true;
	if (++pos->minor != 0)
		return true;
	return ++pos->major != 0;
}

struct batch {
	const struct control_walk_inodes_req *req;
	struct control_walk_inodes_entry ents[WALK_BATCH];
	size_t nr;
};

static int batch_cb(const void *data, size_t len, void *arg)
{
	const struct control_walk_inodes_entry *ents = data;
	struct batch *b = arg;
	size_t nr = len / sizeof(*ents);

	if (len % sizeof(*ents) || nr > WALK_BATCH - b->nr)
		return -EPROTO;

	for (size_t i = 0; i < nr; i++) {
		struct control_walk_inodes_entry e;

		memcpy(&e, &ents[i], sizeof(e));
		/* inside [first, last] and after the previous entry */
		if (pos_cmp(&e, &b->req->first) < 0 || pos_cmp(&e, &b->req->last) > 0 ||
		    (b->nr > 0 && pos_cmp(&e, &b->ents[b->nr - 1]) <= 0))
			return -EPROTO;
		b->ents[b->nr++] = e;
	}
	return 0;
}

static int walk(struct ctl_conn *conn, struct control_walk_inodes_req *req)
{
	struct batch *b;
	uint64_t row = 0;
	int ret;

	b = malloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->req = req;

	for (;;) {
		b->nr = 0;
		ret = ctl_call(conn, CONTROL_CMD_WALK_INODES, req, sizeof(*req), -1, batch_cb, b);
		if (ret < 0 || b->nr == 0)
			break;

		for (size_t i = 0; i < b->nr; i++, row++) {
			if (row % ROWS_PER_HEADER == 0)
				printf("%-20s %-20s %-10s %-20s\n", "#", "major", "minor", "ino");
			printf("%-20llu %-20llu %-10u %-20llu\n", (unsigned long long)row,
			       (unsigned long long)b->ents[i].major, b->ents[i].minor,
			       (unsigned long long)b->ents[i].ino);
		}

		req->first = b->ents[b->nr - 1];
		if (!pos_next(&req->first) || pos_cmp(&req->first, &req->last) > 0)
			break;
	}

	free(b);
	return ret;
}

static int walk_inodes_main(int argc, char **argv)
{
	struct control_walk_inodes_req req = { .nr_entries = WALK_BATCH };
	const char *cmd = "walk-inodes";
	struct ctl_conn *conn = NULL;
	const char *path = NULL;
	char **args;
	int nr_args;
	int ret;
	int c;

	/* FIRST and LAST may be "-1", which getopt would take for an option */
	args = cli_operands_last(argc, argv, "p:", walk_longopts, &nr_args);
	if (!args)
		return -ENOMEM;

	while ((c = cli_getopt(cmd, nr_args, args, "p:", walk_longopts)) != -1) {
		switch (c) {
		case 'p':
			path = optarg;
			break;
		default:
			ret = CLI_EX_USAGE;
			goto out;
		}
	}

	nr_args -= optind;
	if (nr_args < 3) {
		ret = cli_usage_error(cmd, "%s",
		                      nr_args == 0   ? "missing index, first and last"
		                      : nr_args == 1 ? "missing first and last positions"
		                                     : "missing last position");
		goto out;
	}
	if (nr_args > 4 || (nr_args == 4 && path)) {
		ret = cli_usage_error(cmd, "too many arguments");
		goto out;
	}
	if (nr_args == 4)
		path = args[optind + 3];

	if (strcasecmp(args[optind], "meta_seq") == 0) {
		req.index = CONTROL_WALK_META_SEQ;
	} else if (strcasecmp(args[optind], "data_seq") == 0) {
		req.index = CONTROL_WALK_DATA_SEQ;
	} else {
		ret = cli_usage_error(cmd, "unknown index '%s' (meta_seq or data_seq)",
		                      args[optind]);
		goto out;
	}
	if (!parse_pos(args[optind + 1], &req.first)) {
		ret = cli_usage_error(cmd, "invalid first position '%s' (try 1.0.1024 or -1)",
		                      args[optind + 1]);
		goto out;
	}
	if (!parse_pos(args[optind + 2], &req.last)) {
		ret = cli_usage_error(cmd, "invalid last position '%s' (try 1.0.1024 or -1)",
		                      args[optind + 2]);
		goto out;
	}

	ret = cli_open_mount(cmd, cli_mount_path(path), -1, &conn);
	if (ret)
		goto out;

	ret = walk(conn, &req);
out:
	ctl_close(conn);
	free(args);
	return ret;
}

const struct cli_cmd cli_cmd_walk_inodes = {
	.name = "walk-inodes",
	.group = CLI_GROUP_SEARCH,
	.flags = CLI_F_MOUNT,
	.summary = "print a range of an inode index (meta_seq or data_seq)",
	.usage = walk_usage,
	.fn = walk_inodes_main,
};
