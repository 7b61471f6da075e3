/*
 * cmd_get_fiemap.c: `scoutfs get-fiemap`, the extents of a file's data.
 *
 * FS_IOC_FIEMAP never reaches a FUSE daemon (the kernel answers it itself), so the file is
 * opened here and passed to the daemon, which lists the file's extent items in batches.  We
 * ask again from just past the last extent until a batch ends with the file's last extent
 * or comes back short.  Extents must come in increasing, non-overlapping order, so a confused
 * daemon cannot keep us looping.
 *
 * Output (kept from the original for scripts): one line per extent,
 *
 *	N: offset: LOGICAL PHYSICAL length: LEN flags: OUL
 *
 * in units of the file's st_blksize (4096) unless -b gives bytes; -L prints only the logical
 * offset and -P only the physical one.  The flags are O (offline: in an archive, no
 * physical blocks), U (unwritten: allocated, reads as zeros) and L (the last extent), or '.'
 * for each that is not set.  A last line counts the extents: "extents: N".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "control/ctl_client.h"

#define FIEMAP_BATCH 1024

static const char fiemap_usage[] =
        "Usage: scoutfs get-fiemap [-L|-P] [-b] FILE\n"
        "\n"
        "Print the extents that map a file's data to blocks of the data device, in file\n"
        "order: written data, unwritten (preallocated) blocks that read as zeros, and\n"
        "offline ranges whose contents are in an archive.  Holes are not listed.\n"
        "Preallocated extents past the end of the file are listed too.\n"
        "\n"
        "Options:\n"
        "  -L, --logical   print only the logical (file) offset of each extent\n"
        "  -P, --physical  print only the physical (data device) offset of each extent\n"
        "  -b, --byte      print offsets and lengths in bytes instead of blocks\n"
        "      --help      show this help and exit\n"
        "\n"
        "Output:\n"
        "  One line per extent, `N: offset: LOGICAL PHYSICAL length: LEN flags: OUL',\n"
        "  in blocks of the file's st_blksize unless -b.  The flags are O (offline), U\n"
        "  (unwritten) and L (last extent of the file), each '.' when not set.  A last\n"
        "  line `extents: N' counts them.\n";

static const struct option fiemap_longopts[] = {
	{ "logical", no_argument, NULL, 'L' },
	{ "physical", no_argument, NULL, 'P' },
	{ "byte", no_argument, NULL, 'b' },
	{ NULL, 0, NULL, 0 },
};

struct fiemap_batch {
	uint64_t start; /* the batch's extents begin at or after this block */
	struct control_fiemap_entry ents[FIEMAP_BATCH];
	size_t nr;
};

static int batch_cb(const void *data, size_t len, void *arg)
{
	struct fiemap_batch *b = arg;
	size_t nr = len / sizeof(b->ents[0]);

	if (len % sizeof(b->ents[0]) || nr > FIEMAP_BATCH - b->nr)
		return -EPROTO;
	for (size_t i = 0; i < nr; i++) {
		struct control_fiemap_entry e;
		uint64_t min_start;

		memcpy(&e, (const char *)data + i * sizeof(e), sizeof(e));
		min_start = b->nr ? b->ents[b->nr - 1].logical + b->ents[b->nr - 1].length : 0;
		if (e.length == 0 || e.logical + e.length < e.logical || e.logical < min_start ||
		    e.logical + e.length <= b->start)
			return -EPROTO;
		b->ents[b->nr++] = e;
	}
	return 0;
}

struct fiemap_opts {
	bool logical; /* print the logical offset */
	bool physical;
	bool bytes;
};

static void print_extent(const struct control_fiemap_entry *e, uint64_t nr, uint64_t unit,
                         const struct fiemap_opts *o)
{
	printf("%llu: offset: ", (unsigned long long)nr);
	if (o->logical)
		printf("%llu ", (unsigned long long)(e->logical * 4096 / unit));
	if (o->physical)
		printf("%llu ", (unsigned long long)(e->physical * 4096 / unit));
	printf("length: %llu flags: %c%c%c\n", (unsigned long long)(e->length * 4096 / unit),
	       (e->flags & CONTROL_FIEMAP_OFFLINE) ? 'O' : '.',
	       (e->flags & CONTROL_FIEMAP_UNWRITTEN) ? 'U' : '.',
	       (e->flags & CONTROL_FIEMAP_LAST) ? 'L' : '.');
}

static int list_extents(struct ctl_conn *conn, int fd, uint64_t unit, const struct fiemap_opts *o)
{
	struct control_fiemap_req req = { .nr_entries = FIEMAP_BATCH };
	struct fiemap_batch *b;
	uint64_t nr = 0;
	bool last = false;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	while (!last) {
		b->nr = 0;
		b->start = req.start_block;
		ret = ctl_call(conn, CONTROL_CMD_GET_FIEMAP, &req, sizeof(req), fd, batch_cb, b);
		if (ret < 0)
			break;
		for (size_t i = 0; i < b->nr; i++)
			print_extent(&b->ents[i], nr++, unit, o);
		last = b->nr < FIEMAP_BATCH || (b->ents[b->nr - 1].flags & CONTROL_FIEMAP_LAST);
		if (b->nr)
			req.start_block = b->ents[b->nr - 1].logical + b->ents[b->nr - 1].length;
	}
	if (ret == 0)
		printf("extents: %llu\n", (unsigned long long)nr);
	free(b);
	return ret;
}

static int get_fiemap_main(int argc, char **argv)
{
	struct fiemap_opts o = { .logical = true, .physical = true };
	const char *cmd = "get-fiemap";
	struct ctl_conn *conn = NULL;
	bool only_l = false, only_p = false;
	const char *file;
	struct stat st;
	uint64_t unit;
	int fd = -1;
	int ret;
	int c;

	while ((c = cli_getopt(cmd, argc, argv, "LPb", fiemap_longopts)) != -1) {
		switch (c) {
		case 'L':
			only_l = true;
			break;
		case 'P':
			only_p = true;
			break;
		case 'b':
			o.bytes = true;
			break;
		default:
			return CLI_EX_USAGE;
		}
	}
	if (only_l && only_p)
		return cli_usage_error(cmd, "can't pass both -P and -L options");
	if (optind >= argc)
		return cli_usage_error(cmd, "no filename given");
	if (argc - optind > 1)
		return cli_usage_error(cmd, "more than one argument given");
	o.logical = !only_p;
	o.physical = !only_l;
	file = argv[optind];

	fd = open(file, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return cli_error(cmd, "failed to open '%s': %s (%d)", file, strerror(errno), errno);
	if (fstat(fd, &st) < 0) {
		ret = cli_error(cmd, "stat failed on '%s': %s (%d)", file, strerror(errno), errno);
		goto out;
	}
	unit = o.bytes || st.st_blksize <= 0 ? 1 : (uint64_t)st.st_blksize;

	ret = cli_open_mount(cmd, file, fd, &conn);
	if (ret)
		goto out;
	ret = list_extents(conn, fd, unit, &o);
out:
	ctl_close(conn);
	close(fd);
	return ret;
}

const struct cli_cmd cli_cmd_get_fiemap = {
	.name = "get-fiemap",
	.group = CLI_GROUP_DEBUG,
	.summary = "print the extents of a file's data",
	.usage = fiemap_usage,
	.fn = get_fiemap_main,
};
