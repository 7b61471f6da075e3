/*
 * cmd_counters.c: `scoutfs counters`, a mount's event counters.
 *
 * The daemon sends every counter as "name value\n" text sorted by name, which is printed as
 * it is.  With -t the lines become a table that fills the terminal's width: cells of the
 * name padded to the longest name and the value right-aligned to the widest value, running
 * down the columns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "control/ctl_client.h"

/* more than this much counter text is not something a daemon should send */
#define COUNTERS_MAX_TEXT (64U << 20)
#define TABLE_GAP         3

static const char counters_usage[] =
        "Usage: scoutfs counters [-t] [-p PATH]\n"
        "       scoutfs counters [-t] PATH\n"
        "\n"
        "Print the event counters of the mount that holds PATH.  Counters count\n"
        "things that went wrong, took a slow path or simply happened, in this mount\n"
        "since it was mounted; they only grow.  Names are SUBSYSTEM_EVENT.\n"
        "\n"
        "Options:\n"
        "  -p, --path PATH  a path in the mounted filesystem (may also be given as the\n"
        "                   operand)\n"
        "  -t, --table      print a table as wide as the terminal instead of one counter\n"
        "                   per line\n"
        "      --help       show this help and exit\n"
        "\n"
        "Output:\n"
        "  `NAME VALUE' lines sorted by name; with -t, columns of names and\n"
        "  right-aligned values, sorted down each column.\n";

static const struct option counters_longopts[] = {
	{ "path", required_argument, NULL, 'p' },
	{ "table", no_argument, NULL, 't' },
	{ NULL, 0, NULL, 0 },
};

struct text {
	char *buf;
	size_t len;
	size_t cap;
};

static int text_cb(const void *data, size_t len, void *arg)
{
	struct text *t = arg;
	char *buf;

	if (len > COUNTERS_MAX_TEXT - t->len)
		return -EFBIG;
	if (t->len + len + 1 > t->cap) {
		size_t cap = (t->len + len + 1) * 2;

		buf = realloc(t->buf, cap);
		if (!buf)
			return -ENOMEM;
		t->buf = buf;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, data, len);
	t->len += len;
	t->buf[t->len] = '\0';
	return 0;
}

static int term_width(void)
{
	struct winsize ws;
	const char *env;
	int cols;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	env = getenv("COLUMNS");
	if (env && (cols = atoi(env)) > 0)
		return cols;
	return 80;
}

struct counter_line {
	const char *name;
	const char *value;
};

static int print_table(char *text)
{
	struct counter_line *lines = NULL;
	size_t nr = 0;
	size_t cap = 0;
	int name_w = 0;
	int value_w = 0;
	int cols;
	size_t rows;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (!sp)
			continue;
		*sp = '\0';
		if (nr == cap) {
			struct counter_line *n;

			cap = cap ? cap * 2 : 256;
			n = realloc(lines, cap * sizeof(*lines));
			if (!n) {
				free(lines);
				return -ENOMEM;
			}
			lines = n;
		}
		lines[nr].name = line;
		lines[nr].value = sp + 1;
		if ((int)strlen(line) > name_w)
			name_w = (int)strlen(line);
		if ((int)strlen(sp + 1) > value_w)
			value_w = (int)strlen(sp + 1);
		nr++;
	}

	cols = (term_width() + TABLE_GAP) / (name_w + 1 + value_w + TABLE_GAP);
	if (cols < 1)
		cols = 1;
	rows = nr ? (nr + cols - 1) / cols : 0;

	for (size_t r = 0; r < rows; r++) {
		for (size_t i = r; i < nr; i += rows) {
			printf("%s%-*s %*s", i == r ? "" : "   ", name_w, lines[i].name, value_w,
			       lines[i].value);
		}
		putchar('\n');
	}
	free(lines);
	return 0;
}

static int counters_main(int argc, char **argv)
{
	const char *cmd = "counters";
	struct ctl_conn *conn = NULL;
	struct text text = { NULL, 0, 0 };
	const char *path = NULL;
	int table = 0;
	int ret;
	int c;

	while ((c = cli_getopt(cmd, argc, argv, "p:t", counters_longopts)) != -1) {
		switch (c) {
		case 'p':
			path = optarg;
			break;
		case 't':
			table = 1;
			break;
		default:
			return CLI_EX_USAGE;
		}
	}
	if (argc - optind > 1 || (argc - optind == 1 && path))
		return cli_usage_error(cmd, "too many arguments");
	if (optind < argc)
		path = argv[optind];

	ret = cli_open_mount(cmd, cli_mount_path(path), -1, &conn);
	if (ret)
		return ret;

	ret = ctl_call(conn, CONTROL_CMD_COUNTERS, NULL, 0, -1, text_cb, &text);
	ctl_close(conn);
	if (ret == 0 && text.len > 0) {
		if (table)
			ret = print_table(text.buf);
		else
			fwrite(text.buf, 1, text.len, stdout);
	}
	free(text.buf);
	return ret;
}

const struct cli_cmd cli_cmd_counters = {
	.name = "counters",
	.group = CLI_GROUP_DEBUG,
	.flags = CLI_F_MOUNT,
	.summary = "print a mount's event counters",
	.usage = counters_usage,
	.fn = counters_main,
};
